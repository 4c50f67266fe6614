//! Shipped scenarios end to end from one command, as a user runs them: `microlambda testbed --scenario
//! configs/scenarios/chaos.toml` (radio spikes, a node killed, the nats-server restarted, jobs in slices) and
//! `configs/scenarios/cluster.toml` (300 jobs on a three-server NATS cluster, one server killed with SIGKILL and
//! started again, radio spikes) must end with every job completed exactly once with the output of an
//! uninterrupted run, and write their reports.
use serde_json::Value;
use std::process::{Command, Stdio};

/// Run a shipped scenario; its report, checked for no job lost, duplicated or wrong, every output compared.
fn run_clean(file: &str) -> (Value, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_microlambda"));
    cmd.args(["testbed", "--scenario", file, "--out"])
        .arg(out.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("MICROLAMBDA_LOG", "error")
        .stdin(Stdio::null());
    microlambda::proc::die_with_parent(&mut cmd);
    let run = cmd.output().expect("microlambda testbed");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{}\n{stdout}\n{}", run.status, String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("**OK**"), "{stdout}");
    let report: Value = serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    let t = &report["totals"];
    let n = t["submitted"].as_u64().unwrap();
    assert!(n > 20, "{t}");
    assert_eq!((t["lost"].as_u64(), t["duplicated"].as_u64(), t["wrong"].as_u64()), (Some(0), Some(0), Some(0)), "{t}");
    assert_eq!(t["completed"].as_u64(), Some(n), "{t}");
    assert_eq!(t["checked"].as_u64(), Some(n), "every output compared with an uninterrupted run: {t}");
    (report, out)
}

fn faults(report: &Value) -> Vec<&str> {
    report["faults"].as_array().unwrap().iter().map(|f| f[1].as_str().unwrap()).collect()
}

#[test]
fn the_chaos_scenario_loses_nothing_and_duplicates_nothing() {
    let (report, out) = run_clean("configs/scenarios/chaos.toml");
    let t = &report["totals"];
    let n = t["submitted"].as_u64().unwrap();
    // The faults happened and jobs left nodes (slices, evacuations, the killed node's jobs).
    assert_eq!(faults(&report), ["kill node-2", "restart nats"]);
    assert!(t["parks"].as_u64().unwrap() > 0 && t["slices"].as_u64().unwrap() > n, "{t}");
    assert!(!report["evacuations"].as_array().unwrap().is_empty());
    let svg = std::fs::read_to_string(out.path().join("timeline.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("node-2"), "{}", &svg[..svg.len().min(200)]);
    assert!(std::fs::read_to_string(out.path().join("report.md")).unwrap().contains("| job |"));
}

#[test]
fn the_cluster_scenario_loses_no_job_of_300_when_the_jobs_buckets_leader_is_killed() {
    let (report, _out) = run_clean("configs/scenarios/cluster.toml");
    assert_eq!(report["totals"]["submitted"].as_u64(), Some(300));
    // The server that led the jobs bucket when the fault came, killed and started again.
    let done = faults(&report);
    assert_eq!(done.len(), 2, "{done:?}");
    let killed = done[0].strip_prefix("kill jobs-leader (").and_then(|n| n.strip_suffix(')')).expect("a leader named");
    assert!(["nats-1", "nats-2", "nats-3"].contains(&killed), "{done:?}");
    assert_eq!(done[1], format!("start jobs-leader ({killed})"));
    assert!(!report["evacuations"].as_array().unwrap().is_empty(), "the radio spikes moved jobs");
}
