//! House rules that a reader cannot see from one file: module docs, where subject names live, where pyo3 is
//! allowed.
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn files(dirs: &[&str]) -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v = Vec::new();
    for d in dirs {
        rust_files(&root.join(d), &mut v);
    }
    v.into_iter().map(|p| (p.clone(), std::fs::read_to_string(&p).unwrap())).collect()
}

#[test]
fn every_module_says_why_it_exists() {
    for (p, src) in files(&["src", "actors", "loadgen/src"]) {
        assert!(src.trim_start().starts_with("//!"), "{} does not open with a //! line", p.display());
    }
}

#[test]
fn only_the_bus_knows_subject_names() {
    let subjects = [
        "\"jobs.submit",
        "\"jobs.status",
        "\"jobs.events",
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
    for (p, src) in files(&["src", "actors", "loadgen/src"]) {
        if p.ends_with("src/bus.rs") {
            continue;
        }
        for s in subjects {
            assert!(!src.contains(s), "{} names a subject or bucket ({s}); only src/bus.rs may", p.display());
        }
    }
}

#[test]
fn actors_never_touch_pyo3() {
    for (p, src) in files(&["actors", "loadgen/src"]) {
        for needle in ["pyo3::", "use pyo3", "crate::py::", "microlambda::py::"] {
            assert!(!src.contains(needle), "{} uses {needle}; Python runs only in worker processes", p.display());
        }
    }
}
