//! Differential corpus: every program in `tests/corpus/` must give, under random preemption, output identical to
//! an uninterrupted run in plain CPython (`PYTHONHASHSEED=0`, as workers run).
//!
//! Per program: preemption every few milliseconds at a seeded random interval; preemption at seeded random
//! instants; chained checkpoints (each restored run checkpointed again, many times); and a run started from
//! another working directory. The seed of each case is printed, so a failure can be replayed with the same
//! command. Every preempted run must actually have taken checkpoints (`--stats`), or it would prove nothing.
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    root().join(".venv/bin/python")
}

fn bin() -> PathBuf {
    std::env::var_os("MICROLAMBDA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_microlambda")))
}

fn input_for(file: &str) -> String {
    let inputs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("tests/corpus/inputs.json")).unwrap()).unwrap();
    inputs[file].to_string()
}

/// The uninterrupted result, computed by plain CPython.
fn reference(path: &Path, input: &str) -> String {
    let code = "import importlib.util, json, sys\n\
                spec = importlib.util.spec_from_file_location(sys.argv[1], sys.argv[2])\n\
                m = importlib.util.module_from_spec(spec); sys.modules[sys.argv[1]] = m; spec.loader.exec_module(m)\n\
                print(json.dumps(m.main(json.loads(sys.argv[3]))))";
    let stem = path.file_stem().unwrap().to_str().unwrap();
    let o = Command::new(python())
        .args(["-c", code, stem, path.to_str().unwrap(), input])
        .env("PYTHONHASHSEED", "0")
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "reference run of {} failed", path.display());
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

struct Run {
    out: String,
    checkpoints: usize,
    err: String,
}

fn run(path: &Path, input: &str, flags: &[String], cwd: Option<&Path>) -> Run {
    let mut cmd = Command::new(bin());
    cmd.arg("run").arg(path).args(["--input", input, "--stats"]).args(flags).env("MICROLAMBDA_KEY", "corpus-key");
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "microlambda run {} {:?} failed:\n{err}", path.display(), flags);
    let checkpoints = err
        .lines()
        .find_map(|l| l.strip_prefix("checkpoints: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Run { out: String::from_utf8(o.stdout).unwrap().trim().to_string(), checkpoints, err }
}

/// A small deterministic generator (splitmix64), seeded per program.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

fn seed_for(file: &str) -> u64 {
    if let Ok(s) = std::env::var("CORPUS_SEED") {
        return s.parse().expect("CORPUS_SEED is a number");
    }
    file.bytes().fold(1469598103934665603u64, |h, b| (h ^ b as u64).wrapping_mul(1099511628211))
}

fn check(file: &str) {
    let path = root().join("tests/corpus").join(file);
    let input = input_for(file);
    let expected = reference(&path, &input);
    let seed = seed_for(file);
    let mut rng = Rng(seed);
    let every = rng.range(5, 25).to_string();
    let at: Vec<String> = {
        let mut v: Vec<u64> = (0..4).map(|_| rng.range(1, 300)).collect();
        v.sort();
        vec![v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")]
    };
    let every2 = rng.range(8, 30).to_string();
    let elsewhere = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<String>, Option<&Path>, usize)> = vec![
        ("preempt-every", vec!["--preempt-every".into(), every.clone()], None, 1),
        ("preempt-at", vec!["--preempt-at".into(), at[0].clone()], None, 1),
        ("chained", vec!["--preempt-every".into(), "40".into()], None, 2),
        ("other-cwd", vec!["--preempt-every".into(), every2.clone()], Some(elsewhere.path()), 1),
    ];
    for (name, flags, cwd, min_ck) in cases {
        let r = run(&path, &input, &flags, cwd);
        eprintln!("{file} {name} {flags:?} (CORPUS_SEED={seed}): {} checkpoints", r.checkpoints);
        assert_eq!(
            r.out, expected,
            "{file}: output differs under {name} {flags:?} (replay with CORPUS_SEED={seed})\n{}",
            r.err
        );
        if name != "preempt-at" {
            assert!(r.checkpoints >= min_ck, "{file} {name}: only {} checkpoints were taken\n{}", r.checkpoints, r.err);
        }
    }
}

macro_rules! corpus {
    ($($name:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $name() {
                check($file);
            }
        )*

        #[test]
        fn every_corpus_program_has_a_test() {
            let listed = [$($file),*];
            for e in std::fs::read_dir(root().join("tests/corpus")).unwrap() {
                let name = e.unwrap().file_name().into_string().unwrap();
                if name.ends_with(".py") {
                    assert!(listed.contains(&name.as_str()), "{name} is not in the corpus test list");
                }
            }
            assert!(listed.len() >= 30);
        }
    };
}

corpus! {
    builtin_iterators => "01_builtin_iterators.py",
    break_continue_else => "02_break_continue_else.py",
    method_call_chain => "03_method_call_chain.py",
    try_except_finally => "04_try_except_finally.py",
    with_blocks => "05_with_blocks.py",
    exception_chaining => "06_exception_chaining.py",
    closures_nonlocal => "07_closures_nonlocal.py",
    comprehensions => "08_comprehensions.py",
    call_shapes => "09_call_shapes.py",
    deep_recursion => "10_deep_recursion.py",
    module_state => "11_module_state.py",
    random_state => "12_random_state.py",
    numpy_closure_module_state => "13_numpy_closure_module_state.py",
    classes_dataclasses => "14_classes_dataclasses.py",
    generators_suspended => "15_generators_suspended.py",
    generator_iterated => "16_generator_iterated.py",
    generator_send_yield_from => "17_generator_send_yield_from.py",
    generator_try_finally => "18_generator_try_finally.py",
    lambdas_in_data => "19_lambdas_in_data.py",
    strings_bytes_sets => "20_strings_bytes_sets.py",
    match_statements => "21_match.py",
    c_callbacks => "22_c_callbacks.py",
    nested_functions => "23_nested_functions.py",
    instances_as_keys => "24_instances_as_keys.py",
    dijkstra => "25_dijkstra.py",
    knn_numpy => "26_knn_numpy.py",
    numeric_loops => "27_numeric_loops.py",
    misc_semantics => "28_misc_semantics.py",
    global_in_nested => "30_global_in_nested.py",
    shared_cells => "31_shared_cells.py",
    getitem_and_star_call => "32_getitem_and_star_call.py",
    handled_exception_kwargs => "33_handled_exception_kwargs.py",
    while_nested_break => "34_while_nested_break.py",
    static_hint => "35_static_hint.py",
    live_views => "36_live_views.py",
    numpy_views => "37_numpy_views.py",
    trampolines => "38_trampolines.py",
    none_in_cells => "39_none_in_cells.py",
}
