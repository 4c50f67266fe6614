//! The differential-corpus harness shared by `tests/checkpoint_corpus.rs` (programs written for the engine) and
//! `tests/checkpoint_corpus_libs.rs` (ordinary programs using real libraries): run a corpus program under
//! preemption in `microlambda run` and compare its output with an uninterrupted run in plain CPython
//! (in a worker's environment: `PYTHONHASHSEED=0`, the host's variables cleared), byte for byte.
//!
//! Per program: preemption every few milliseconds at a seeded random interval; preemption at seeded random
//! instants; chained checkpoints (each restored run checkpointed again, many times); and a run started from
//! another working directory. The seed of each case is printed, so a failure can be replayed with the same
//! command. Every preempted run must actually have taken checkpoints (`--stats`), or it would prove nothing.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn python() -> PathBuf {
    root().join(".venv/bin/python")
}

pub fn bin() -> PathBuf {
    std::env::var_os("MICROLAMBDA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_microlambda")))
}

/// How a corpus is run: where its programs are, and the schedules of its preemption cases.
pub struct Corpus {
    /// The programs' folder, relative to the repository root; `inputs.json` in it maps file name to input.
    pub dir: &'static str,
    /// `--preempt-every` is drawn from this range (ms)...
    pub every: (u64, u64),
    /// ...`--preempt-at` instants from this one (four of them)...
    pub at: (u64, u64),
    /// ...the chained case preempts at this fixed interval and must take at least two checkpoints...
    pub chained_every: u64,
    /// ...and the other-cwd case draws its interval from this range.
    pub every2: (u64, u64),
    /// Every preempted case (but `--preempt-at`) must take checkpoints; otherwise only the first
    /// (`--preempt-every`) must: programs that spend long stretches in C calls are waited out.
    pub all_cases_checkpoint: bool,
    /// The four schedules above are in thousandths of the job's own running time, measured by a first
    /// uninterrupted `microlambda run` (its `ran:`), rather than in milliseconds: a program's time varies
    /// several-fold between a quiet machine and a loaded one, and a fixed interval longer than the job takes no
    /// checkpoint at all.
    pub relative: bool,
}

/// The shortest interval a relative schedule gives (ms).
const MIN_INTERVAL_MS: u64 = 10;

pub fn input_for(corpus: &Corpus, file: &str) -> String {
    let path = root().join(corpus.dir).join("inputs.json");
    let inputs: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(!inputs[file].is_null(), "{file} has no input in {}/inputs.json", corpus.dir);
    inputs[file].to_string()
}

/// The uninterrupted result, computed by plain CPython, and how long its `main` ran (ms).
pub fn reference(path: &Path, input: &str) -> (String, f64) {
    let code = "import importlib.util, json, sys, time\n\
                spec = importlib.util.spec_from_file_location(sys.argv[1], sys.argv[2])\n\
                m = importlib.util.module_from_spec(spec); sys.modules[sys.argv[1]] = m; spec.loader.exec_module(m)\n\
                t = time.perf_counter(); out = m.main(json.loads(sys.argv[3])); t = time.perf_counter() - t\n\
                print(json.dumps(out)); print(t * 1e3, file=sys.stderr)";
    let stem = path.file_stem().unwrap().to_str().unwrap();
    let o = microlambda::worker::host::reference_command(python())
        .args(["-c", code, stem, path.to_str().unwrap(), input])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "reference run of {} failed:\n{err}", path.display());
    let ms = err.lines().last().and_then(|l| l.trim().parse().ok()).expect("the reference run prints its time");
    (String::from_utf8(o.stdout).unwrap().trim().to_string(), ms)
}

pub struct Run {
    pub out: String,
    pub checkpoints: usize,
    /// The job's own running time (`ran:` of `--stats`), its checkpoints' pauses and restores included.
    pub ran_ms: f64,
    pub err: String,
}

impl Run {
    /// The `--stats` lines about checkpoints that were not taken (waits, with their reasons).
    pub fn not_taken(&self) -> Vec<&str> {
        self.err.lines().filter(|l| l.contains("not taken")).collect()
    }
}

pub fn run(path: &Path, input: &str, flags: &[String], cwd: Option<&Path>) -> Run {
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
    let ran_ms = err
        .lines()
        .find_map(|l| l.split_once("ran: ").map(|(_, r)| r))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("--stats prints the job's running time (ran: X ms)");
    Run { out: String::from_utf8(o.stdout).unwrap().trim().to_string(), checkpoints, ran_ms, err }
}

/// A small deterministic generator (splitmix64), seeded per program.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

pub fn seed_for(file: &str) -> u64 {
    if let Ok(s) = std::env::var("CORPUS_SEED") {
        return s.parse().expect("CORPUS_SEED is a number");
    }
    file.bytes().fold(1469598103934665603u64, |h, b| (h ^ b as u64).wrapping_mul(1099511628211))
}

pub fn check(corpus: &Corpus, file: &str) {
    let path = root().join(corpus.dir).join(file);
    let input = input_for(corpus, file);
    let (expected, reference_ms) = reference(&path, &input);
    let seed = seed_for(file);
    let mut rng = Rng(seed);
    let ran_ms = if corpus.relative {
        let r = run(&path, &input, &[], None);
        assert_eq!(r.out, expected, "{file}: output differs in an uninterrupted run\n{}", r.err);
        Some(r.ran_ms)
    } else {
        None
    };
    let scale = |x: u64| match ran_ms {
        Some(ms) => (x as f64 * ms / 1000.0).round().max(MIN_INTERVAL_MS as f64) as u64,
        None => x,
    };
    if let Some(ms) = ran_ms {
        eprintln!("{file}: the job ran {ms:.0} ms uninterrupted; schedules scaled to it");
    }
    let every = scale(rng.range(corpus.every.0, corpus.every.1)).to_string();
    let at: Vec<String> = {
        let mut v: Vec<u64> = (0..4).map(|_| scale(rng.range(corpus.at.0, corpus.at.1))).collect();
        v.sort();
        vec![v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")]
    };
    let every2 = scale(rng.range(corpus.every2.0, corpus.every2.1)).to_string();
    let elsewhere = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<String>, Option<&Path>, usize)> = vec![
        ("preempt-every", vec!["--preempt-every".into(), every.clone()], None, 1),
        ("preempt-at", vec!["--preempt-at".into(), at[0].clone()], None, 1),
        ("chained", vec![], None, 2),
        ("other-cwd", vec!["--preempt-every".into(), every2.clone()], Some(elsewhere.path()), 1),
    ];
    // The chained case preempts at its fixed interval, or at an eighth of the program's time in plain CPython
    // where that is shorter, so that it takes at least two checkpoints (at 25 ms, a ~60 ms program's two were a
    // coin toss on a loaded machine: the slices after a restore are what is left; an estimate from the first
    // case's running time counted a debug build's captures and restores and its waits for new workers in, so
    // that a 30 ms program looked 150 ms long and took one checkpoint at 15 ms). Not below the shortest
    // interval the corpus's first case draws, or MIN_INTERVAL_MS where schedules are relative.
    let floor = if corpus.relative { MIN_INTERVAL_MS } else { corpus.every.0.max(1) };
    let chained_every = scale(corpus.chained_every).min((reference_ms / 8.0).max(floor as f64) as u64);
    for (name, mut flags, cwd, min_ck) in cases {
        if name == "chained" {
            flags = vec!["--preempt-every".into(), chained_every.to_string()];
        }
        let r = run(&path, &input, &flags, cwd);
        eprintln!("{file} {name} {flags:?} (CORPUS_SEED={seed}): {} checkpoints", r.checkpoints);
        for l in r.not_taken() {
            eprintln!("  {l}");
        }
        assert_eq!(
            r.out, expected,
            "{file}: output differs under {name} {flags:?} (replay with CORPUS_SEED={seed})\n{}",
            r.err
        );
        if name == "preempt-every" || (corpus.all_cases_checkpoint && name != "preempt-at") {
            assert!(r.checkpoints >= min_ck, "{file} {name}: only {} checkpoints were taken\n{}", r.checkpoints, r.err);
        }
    }
}

/// Every `.py` file of the corpus's folder is in the test list, and the list is at least `min` long.
pub fn every_program_has_a_test(corpus: &Corpus, listed: &[&str], min: usize) {
    for e in std::fs::read_dir(root().join(corpus.dir)).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".py") {
            assert!(listed.contains(&name.as_str()), "{name} is not in the corpus test list");
        }
    }
    assert!(listed.len() >= min);
}

/// One `#[test]` per program of a corpus (attributes such as `#[ignore = "..."]` pass through), and one that
/// checks that every program of the folder is listed: `corpus_tests!(CORPUS, MIN_PROGRAMS, { name => "file.py", })`.
macro_rules! corpus_tests {
    ($corpus:expr, $min:expr, { $($(#[$attr:meta])* $name:ident => $file:literal,)* }) => {
        $(
            #[test]
            $(#[$attr])*
            fn $name() {
                corpus::check(&$corpus, $file);
            }
        )*

        #[test]
        fn every_corpus_program_has_a_test() {
            corpus::every_program_has_a_test(&$corpus, &[$($file),*], $min);
        }
    };
}
