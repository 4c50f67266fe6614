//! The job kinds of loadgen/jobs/ fit the checkpoint engine: each one, moved to a new worker every 23 ms by
//! `microlambda run --preempt-every 23`, prints exactly what an uninterrupted run and plain CPython print.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `microlambda` binary built beside this test (target/<profile>/microlambda).
fn microlambda_exe() -> PathBuf {
    let me = std::env::current_exe().unwrap();
    me.parent().and_then(|deps| deps.parent()).unwrap().join("microlambda")
}

fn jobs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs")
}

/// The venv's interpreter: `MICROLAMBDA_PYTHON` (the Makefile sets it), else the workspace's `.venv`.
fn python() -> PathBuf {
    microlambda::config::python_executable().expect("no venv python: set MICROLAMBDA_PYTHON or run make setup")
}

fn ok(what: &str, o: Output) -> (String, String) {
    let (out, err) = (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned());
    assert!(o.status.success(), "{what}: {}\nstdout: {out}\nstderr: {err}", o.status);
    (out, err)
}

fn run(kind: &str, input: &str, extra: &[&str]) -> (String, String) {
    let file = jobs_dir().join(format!("{kind}.py"));
    let o = Command::new(microlambda_exe())
        .arg("run")
        .arg(&file)
        .args(["--input", input])
        .args(extra)
        .env("MICROLAMBDA_LOG", "warn")
        .output()
        .expect("the microlambda binary (cargo build --workspace --bins)");
    ok(&format!("microlambda run {kind} {extra:?}"), o)
}

fn plain_python(kind: &str, input: &str) -> String {
    let code = format!(
        "import json, sys; sys.path.insert(0, sys.argv[1]); import {kind} as X; \
         print(json.dumps(X.main(json.loads(sys.argv[2]))))"
    );
    let o = microlambda::worker::host::reference_command(python())
        .args(["-c", &code])
        .arg(jobs_dir())
        .arg(input)
        .output()
        .expect("the venv's python (make setup)");
    ok(&format!("python {kind}"), o).0
}

#[test]
fn every_job_kind_survives_preemption_byte_for_byte() {
    // (kind, a small input: long enough for a few preemptions, short for a debug build)
    let cases = [
        ("counter", r#"{"steps": 600, "sleep_every": 10}"#),
        ("ride", r#"{"requests": 120}"#),
        ("stress", r#"{"windows": 80, "train": 10}"#),
        ("face", r#"{"probes": 60}"#),
    ];
    for (kind, input) in cases {
        let (whole, _) = run(kind, input, &[]);
        let (moved, stats) = run(kind, input, &["--preempt-every", "23", "--stats"]);
        assert_eq!(moved, whole, "{kind}: preempted run differs from the uninterrupted one\n{stats}");
        assert_eq!(plain_python(kind, input), whole, "{kind}: the worker differs from plain CPython");
        let checkpoints: usize = stats
            .lines()
            .find_map(|l| l.strip_prefix("checkpoints: "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{kind}: no checkpoint count in\n{stats}"));
        assert!(checkpoints >= 1, "{kind}: never preempted\n{stats}");
        let out: serde_json::Value = serde_json::from_str(&whole).unwrap_or_else(|e| panic!("{kind}: {e}: {whole}"));
        assert!(out.is_object(), "{kind}: {out}");
    }
}
