//! Set zygotes, end to end on a real node: a restore of a job whose checkpoint needs a library the base zygote
//! lacks is forked from the base zygote first (and restored correctly), and a later restore of the same module
//! set from a zygote started for that set. Observables: the worker's parent pid (its zygote's), which the job
//! records at every slice, and the node's load report (`set_zygotes`, `set_zygote_restores`).
mod common;

use common::{events_until_final, reference_output, report_where, submit, Mesh};
use microlambda::wire::EventKind;
use microlambda::worker::{WorkerOptions, Zygote};
use serde_json::json;
use std::time::Duration;

/// `idna`: a small pure-Python package of the venv, not stdlib, that neither the runtime nor `node.preload`
/// imports. The job notes its zygote (its parent) each time it finds itself in a new process, i.e. at every
/// slice.
const USES_IDNA: &str = r#"
import os, time
import idna

def main(x):
    total, zygotes, pid = 0, [], None
    for i in range(x["n"]):
        if os.getpid() != pid:
            pid = os.getpid()
            zygotes.append(os.getppid())
        total += i * i % 7
        if i % 50 == 0:
            time.sleep(0.01)
    return {"total": total, "name": idna.encode("bücher.example").decode(), "zygotes": zygotes}
"#;

const FAST: &[(&str, &str)] = &[
    ("PLACEMENT__COOLDOWN_MS", "300"),
    ("PLACEMENT__ORPHAN_GRACE_MS", "1500"),
    ("NODE__CHECKPOINT_INTERVAL_MS", "300"),
    ("NODE__ZYGOTE_SETS", "2"),
    // Set zygotes alone: a module zygote would serve these restores (same module) first (tests/module_zygotes.rs).
    ("NODE__MODULE_ZYGOTES", "0"),
];

#[tokio::test]
async fn a_restore_needing_a_library_forks_from_a_zygote_of_its_set_once_there_is_one() {
    let mesh = Mesh::start_env(&[("n1", 0.1)], &["--slots=1"], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let input = json!({"n": 12000});
    let mut want = reference_output(USES_IDNA, &input);
    // ~2.4 s of work in slices of at most 250 ms: every slice after the first is a restore on n1.
    let body = json!({"job_id": "sets-1", "function": {"source": USES_IDNA}, "input": input, "r_limit_ms": 250});
    let mut events = bus.subscribe_events("sets-1").await.unwrap();
    let r = submit(&bus, &body.to_string()).await;
    assert_eq!(r["status"], "accepted", "{r}");
    let evs = events_until_final(&mut events, Duration::from_secs(60)).await;
    let EventKind::Completed { output, .. } = &evs.last().unwrap().kind else { panic!("{evs:#?}") };
    let zygotes: Vec<u64> = output["zygotes"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    want["zygotes"] = output["zygotes"].clone();
    assert_eq!(output, &want, "every slice resumed exactly");
    assert!(zygotes.len() >= 4, "{zygotes:?}: too few slices to see a set zygote come");
    // The job started from the base zygote, and its first restore (no zygote has idna yet) forked there too.
    assert_eq!(zygotes[1], zygotes[0], "the first restore forks from the base zygote: {zygotes:?}");
    // Meanwhile a zygote with idna came up: a later restore forked from it.
    let base = zygotes[0];
    assert!(zygotes[2..].iter().any(|&z| z != base), "no restore forked from a set zygote: {zygotes:?}");
    // The node says so too.
    let report =
        report_where(&bus, Duration::from_secs(10), |r| r["set_zygote_restores"].as_u64().unwrap_or(0) > 0).await;
    println!("zygote of each slice: {zygotes:?}; load report: {report}");
    assert_eq!(report["set_zygotes"], 1, "{report}");
    let from_set = zygotes[2..].iter().filter(|&&z| z != base).count() as u64;
    assert_eq!(report["set_zygote_restores"].as_u64().unwrap(), from_set, "{report}");
    // The set zygote keeps a child forked ahead, refilled at each restore; the slices are 250 ms apart, so all
    // but a restore whose refill was slower than a slice find it ready.
    if from_set >= 2 {
        assert!(
            report["restores_forked_ahead"].as_u64().unwrap() >= 1,
            "no restore took a child forked ahead: {report}"
        );
    }
}

#[tokio::test]
async fn a_zygote_comes_up_without_a_module_that_does_not_import_and_names_it() {
    let mut opts = WorkerOptions::new(b"k".to_vec());
    opts.exe = env!("CARGO_BIN_EXE_microlambda").into();
    opts.preload = vec!["no_such_module_zz".into(), "idna".into()];
    let z = Zygote::start(&opts).await.expect("the zygote comes up all the same");
    assert_eq!(z.failed_imports(), ["no_such_module_zz".to_string()]);
    assert!(z.libraries().contains(&"idna".to_string()), "{:?}", z.libraries());
    assert!(!z.libraries().contains(&"no_such_module_zz".to_string()));
    // It forks workers as any zygote does.
    let w = z.fork().await.expect("a worker");
    w.kill().await;
}

#[tokio::test]
async fn a_set_one_node_learned_is_warm_on_another_before_a_job_is_evacuated_there() {
    // n2 hot (no jobs placed there) but under the level where a node holds its forks, so it can warm a zygote.
    let env: Vec<(&str, &str)> = FAST.iter().copied().chain([("NODE__HOLD_REFILLS_ABOVE", "0.9")]).collect();
    let mesh = Mesh::start_env(&[("n1", 0.1), ("n2", 0.85)], &["--slots=1"], &env);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 2).await;
    let input = json!({"n": 60000});
    let reference = reference_output(USES_IDNA, &input);
    // Slices of 250 ms on n1: its first restore there needs idna, which no zygote has; n1 tells n2 the set.
    let body = json!({"job_id": "warm-1", "function": {"source": USES_IDNA}, "input": input, "r_limit_ms": 250});
    let mut events = bus.subscribe_events("warm-1").await.unwrap();
    let r = submit(&bus, &body.to_string()).await;
    assert_eq!(r["status"], "accepted", "{r}");
    // n2 starts a zygote for the set without having restored anything.
    let warm = report_where(&bus, Duration::from_secs(30), |r| r["node"] == "n2" && r["set_zygotes"] == 1).await;
    assert_eq!(warm["set_zygotes_from_peers"], 1, "{warm}");
    assert_eq!(warm["set_zygote_restores"], 0, "{warm}");
    // Now n2 cools and n1 gets hot: the job goes to n2 and restores there from that zygote.
    bus.publish_radio("n2", 0.1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    bus.publish_radio("n1", 0.95).await.unwrap();
    let evs = events_until_final(&mut events, Duration::from_secs(90)).await;
    let EventKind::Completed { output, node } = &evs.last().unwrap().kind else { panic!("{evs:#?}") };
    assert_eq!(node, "n2", "{evs:#?}");
    let mut want = reference;
    want["zygotes"] = output["zygotes"].clone();
    assert_eq!(output, &want, "every slice resumed exactly");
    let served = report_where(&bus, Duration::from_secs(10), |r| r["node"] == "n2").await;
    assert!(served["set_zygote_restores"].as_u64().unwrap() >= 1, "n2 restored cold: {served}");
    println!("n2 warmed by n1: {warm}; after: {served}");
}
