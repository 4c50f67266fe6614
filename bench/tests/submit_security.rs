//! `microlambda-bench submit --compare-security` end to end, small: three real testbeds (open, nkey users,
//! nkey users and TLS) each run the trivial jobs to the end, and the table compares each with the open one.
//! It asserts what the run must produce, not how fast (docs/BENCHMARKS.md has the figures).
use std::process::Command;

#[test]
fn compare_security_runs_every_mode_to_the_end_and_tables_them_against_the_open_server() {
    let out = Command::new(env!("CARGO_BIN_EXE_microlambda-bench"))
        .args(["submit", "--compare-security", "1", "--jobs", "40", "--concurrency", "4", "--nodes", "1"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("MICROLAMBDA_LOG", "warn")
        .output()
        .expect("microlambda-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let rounds: Vec<&str> = stdout.lines().filter(|l| l.starts_with("round 1: ")).collect();
    assert_eq!(rounds.len(), 3, "{stdout}");
    assert!(rounds.iter().all(|l| l.ends_with("; 0 failed")), "{stdout}");
    for mode in ["open", "nkey users", "nkey users + TLS"] {
        let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with(&format!("| {mode} |"))).collect();
        assert_eq!(rows.len(), 2, "{mode}: {stdout}");
        for r in rows {
            let cells: Vec<&str> = r.trim_matches('|').split('|').map(str::trim).collect();
            let ratio: f64 = cells[4].parse().unwrap_or_else(|e| panic!("{e}: {r}"));
            assert!(ratio > 0.0, "{r}");
            if mode == "open" {
                assert_eq!(cells[4], "1.000", "{r}");
            }
        }
    }
}
