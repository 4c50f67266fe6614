//! House rules that a reader cannot see from one file: module docs, where subject names live, where pyo3 is
//! allowed, which layer may use which, and that a long file says why it is long.
use std::path::{Path, PathBuf};

fn files_named(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_named(&p, ext, out);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
}

/// Every file ending in `.ext` below the given folders of the repository, with its text.
fn files_ending(dirs: &[&str], ext: &str) -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v = Vec::new();
    for d in dirs {
        files_named(&root.join(d), ext, &mut v);
    }
    v.into_iter().map(|p| (p.clone(), std::fs::read_to_string(&p).unwrap())).collect()
}

fn files(dirs: &[&str]) -> Vec<(PathBuf, String)> {
    files_ending(dirs, "rs")
}

#[test]
fn every_module_says_why_it_exists() {
    for (p, src) in files(&["src", "actors", "loadgen/src", "bench/src"]) {
        assert!(src.trim_start().starts_with("//!"), "{} does not open with a //! line", p.display());
    }
}

#[test]
fn only_the_bus_knows_subject_names() {
    let subjects = [
        "\"jobs.submit",
        "\"jobs.status",
        "\"jobs.events",
        "\"sessions.request",
        "\"ml_sessions",
        "\"node.load",
        "\"node.run",
        "\"node.gone",
        "\"radio.load",
        "\"placement.nodes",
        "\"placement.requeue",
        "\"node.ctl.",
        "\"node.adopt.",
        "\"ml.ckpt",
        "\"ml_jobs",
        "\"ml_functions",
        "\"ml_lease",
        "\"ml_ckpt",
        "\"ML_CKPT",
    ];
    for (p, src) in files(&["src", "actors", "loadgen/src", "bench/src"]) {
        if p.ends_with("src/bus.rs") {
            continue;
        }
        for s in subjects {
            assert!(!src.contains(s), "{} names a subject or bucket ({s}); only src/bus.rs may", p.display());
        }
    }
}

#[test]
fn only_the_http_module_serves_http() {
    for (p, src) in files(&["src", "actors", "loadgen/src", "bench/src"]) {
        if p.ends_with("src/http.rs") {
            continue;
        }
        for name in ["hyper", "http_body_util"] {
            assert!(!src.contains(&format!("{name}::")), "{} uses {name}: serve HTTP through src/http.rs", p.display());
        }
    }
}

#[test]
fn actors_never_touch_pyo3() {
    for (p, src) in files(&["actors", "loadgen/src", "bench/src"]) {
        for needle in ["pyo3::", "use pyo3", "crate::py::", "microlambda::py::"] {
            assert!(!src.contains(needle), "{} uses {needle}; Python runs only in worker processes", p.display());
        }
    }
}

/// The product's modules by layer, bottom-up: the engine and the edge (wire, bus, checkpoint, workers...), then
/// the actors, then the applications built from them. The tools (`bench/`, `loadgen/`) sit on top, in their
/// own crates.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "base",
        &[
            "wire",
            "bus",
            "auth",
            "checkpoint",
            "config",
            "proc",
            "runtime",
            "natsd",
            "http",
            "metrics",
            "stats",
            "table",
            "worker",
            "py",
            "plot",
            "scenario",
            "burn",
        ],
    ),
    ("actors", &["actors"]),
    ("app", &["client", "testbed", "run", "report"]),
];

/// The module a file of the library belongs to: `src/client/watch.rs` -> `client`, `actors/job.rs` -> `actors`.
fn module_of(root: &Path, p: &Path) -> String {
    let rel = p.strip_prefix(root).unwrap();
    let mut parts = rel.iter().map(|c| c.to_string_lossy().into_owned());
    let top = parts.next().unwrap();
    if top == "actors" {
        return top;
    }
    let first = parts.next().unwrap();
    first.trim_end_matches(".rs").to_string()
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

/// The top-level modules a file names through `crate::` (`crate::bus::Bus`, `crate::{bus, wire}`).
fn crate_uses(src: &str) -> Vec<String> {
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let mut out = Vec::new();
    for (i, _) in src.match_indices("crate::") {
        let rest = &src[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut start) = (0, 0);
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.push(ident(group[start..j].trim()));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(ident(group[start..j].trim()));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.push(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

#[test]
fn layers_read_bottom_up() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (p, src) in files(&["src", "actors"]) {
        let module = module_of(root, &p);
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(layer) = layer_of(&module) else {
            panic!("{}: module `{module}` has no layer in tests/tidy.rs LAYERS; give it one", p.display());
        };
        for used in crate_uses(&src) {
            let Some(used_layer) = layer_of(&used) else { continue };
            assert!(
                used_layer <= layer,
                "{} ({}) uses crate::{used} ({}): a layer uses only the layers below it",
                p.display(),
                LAYERS[layer].0,
                LAYERS[used_layer].0
            );
        }
        // The clients speak the public API and nothing else; the testbed is built on them, never the reverse.
        if module == "client" || module == "report" || module == "run" {
            assert!(!crate_uses(&src).contains(&"testbed".to_string()), "{} uses the testbed", p.display());
        }
    }
}

#[test]
fn the_product_holds_no_benchmark_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (p, src) in files(&["src", "actors"]) {
        let name = p.strip_prefix(root).unwrap().display().to_string();
        assert!(!name.contains("bench"), "{name}: benchmarks live in bench/ (the microlambda-bench crate)");
        for needle in ["microlambda_bench", "microlambda_loadgen", "mod bench"] {
            assert!(!src.contains(needle), "{name} mentions {needle}: the product never depends on its tools");
        }
        // The bus's observers are for tools: the product learns what happens through its own messages.
        if !name.ends_with("src/bus.rs") {
            assert!(!src.contains("observe_internal"), "{name} observes internal traffic; only tools may");
        }
    }
}

#[test]
fn crate_uses_reads_plain_and_grouped_paths() {
    let src = "use crate::bus::Bus;\nuse crate::{wire::{A, B}, config};\nlet x = crate::stats::percentile(&v, 0.5);";
    assert_eq!(crate_uses(src), ["bus", "wire", "config", "stats"]);
}

/// Lines above which a file must say at its top why it is that long (issue 10).
const LONG_FILE: usize = 700;

/// The lines of a file's top doc: its leading `//!` lines (Rust) or its module docstring (Python), trimmed.
fn top_doc(src: &str) -> Vec<&str> {
    let src = src.trim_start();
    if src.starts_with("//!") {
        return src.lines().map_while(|l| l.trim_start().strip_prefix("//!")).map(str::trim).collect();
    }
    let body = src.strip_prefix("\"\"\"").and_then(|s| s.split("\"\"\"").next()).unwrap_or("");
    body.lines().map(str::trim).collect()
}

/// No file over ~700 lines without a reason stated at its top: a long file carries a `Size:` line in its top
/// doc (a sentence on what keeps it together), or it is split where it has a seam.
#[test]
fn long_files_say_why() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rust = files(&["src", "actors", "bench", "loadgen"]);
    let python = files_ending(&["python/microlambda_rt"], "py");
    let mut silent = Vec::new();
    for (p, src) in rust.iter().chain(&python) {
        let n = src.lines().count();
        if n > LONG_FILE && !top_doc(src).iter().any(|l| l.starts_with("Size:")) {
            silent.push(format!("{} ({n} lines)", p.strip_prefix(root).unwrap().display()));
        }
    }
    assert!(silent.is_empty(), "over {LONG_FILE} lines with no `Size:` line in the top doc: {silent:#?}");
}

#[test]
fn top_doc_reads_rust_and_python_headers() {
    let rust = "//! Why.\n//!\n//! Size: one table.\nuse std::fs;\n//! not the top\n";
    assert_eq!(top_doc(rust), ["Why.", "", "Size: one table."]);
    let python = "\"\"\"Why.\n\n    Size: one table.\n\"\"\"\nimport os\n\"\"\"Size: not the top\"\"\"\n";
    assert_eq!(top_doc(python), ["Why.", "", "Size: one table."]);
    assert!(top_doc("use std::fs;\n//! Size: too late\n").is_empty());
}
