//! A shipped scenario end to end from one command, as a user runs it: `microlambda testbed --scenario
//! configs/scenarios/chaos.toml` (radio spikes, a node killed, the nats-server restarted, jobs in slices) must
//! end with every job completed exactly once with the output of an uninterrupted run, and write its report.
use serde_json::Value;
use std::process::{Command, Stdio};

#[test]
fn the_chaos_scenario_loses_nothing_and_duplicates_nothing() {
    let out = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_microlambda"));
    cmd.args(["testbed", "--scenario", "configs/scenarios/chaos.toml", "--out"])
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
    // The faults happened and jobs left nodes (slices, evacuations, the killed node's jobs).
    let faults: Vec<&str> = report["faults"].as_array().unwrap().iter().map(|f| f[1].as_str().unwrap()).collect();
    assert_eq!(faults, ["kill node-2", "restart nats"]);
    assert!(t["parks"].as_u64().unwrap() > 0 && t["slices"].as_u64().unwrap() > n, "{t}");
    assert!(!report["evacuations"].as_array().unwrap().is_empty());
    let svg = std::fs::read_to_string(out.path().join("timeline.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("node-2"), "{}", &svg[..svg.len().min(200)]);
    assert!(std::fs::read_to_string(out.path().join("report.md")).unwrap().contains("| job |"));
}
