//! Python jobs end to end: submitted over NATS by a separate client, run by real nodes in warm worker
//! processes; outputs on events and in the job record; every way a job can go wrong fails that job alone.
mod common;

use common::{events_until_final, submit, Mesh};
use microlambda::wire::{EventKind, FunctionRef, JobEvent, JobRecord};
use serde_json::{json, Value};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

async fn run_job(bus: &microlambda::bus::Bus, job_id: &str, body: Value) -> Vec<JobEvent> {
    let mut events = bus.subscribe_events(job_id).await.unwrap();
    let mut body = body;
    body["job_id"] = job_id.into();
    let reply = submit(bus, &body.to_string()).await;
    assert_eq!(reply["status"], "accepted", "{reply}");
    events_until_final(&mut events, LIMIT).await
}

fn last(evs: &[JobEvent]) -> &EventKind {
    &evs.last().expect("some events").kind
}

fn failure(evs: &[JobEvent]) -> (String, String, Option<String>) {
    match last(evs) {
        EventKind::Failed { error, .. } => (error.kind.clone(), error.message.clone(), error.traceback.clone()),
        other => panic!("expected failed, got {other:?} in {evs:?}"),
    }
}

#[tokio::test]
async fn a_job_runs_and_its_output_is_on_the_events_and_in_the_record() {
    let mesh = Mesh::start(&[("n1", 0.1)], &[]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let src = "def main(x):\n    return {'sum': sum(x['xs']), 'n': len(x['xs'])}\n";
    let evs = run_job(&bus, "ok-1", json!({"function": {"source": src}, "input": {"xs": [1, 2, 3]}})).await;
    let kinds: Vec<&str> = evs.iter().map(|e| e.kind.name()).collect();
    assert_eq!(kinds, ["accepted", "placed", "started", "completed"]);
    assert_eq!(last(&evs), &EventKind::Completed { node: "n1".into(), output: json!({"sum": 6, "n": 3}) });
    let st: Value = bus.status(br#"{"job_id": "ok-1"}"#.to_vec().into()).await.unwrap();
    assert_eq!(st["state"], "completed", "{st}");
    assert_eq!(st["output"], json!({"sum": 6, "n": 3}));
    assert_eq!(st["node"], "n1");
    // The record names the source by its digest; the text is stored once, apart.
    let (rec, _) = bus.record("ok-1").await.unwrap().expect("the record");
    let sha256 = microlambda::wire::source_sha256(src);
    assert_eq!((rec.function.source.as_deref(), rec.function.source_sha256.as_deref()), (None, Some(&*sha256)));
    let (stored, written_s) = bus.source(&sha256).await.unwrap().expect("the stored source");
    assert_eq!(stored, src);
    assert!(written_s.abs_diff(microlambda::wire::now_ms() / 1000) < 120, "{written_s}");
}

#[tokio::test]
async fn deployed_functions_run_by_name() {
    let mesh = Mesh::start(&[("n1", 0.1)], &[]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("double.py");
    std::fs::write(&f, "def twice(x):\n    return 2 * x\n").unwrap();
    microlambda::client::deploy(&bus, &f, "double", "twice").await.unwrap();
    for i in 0..3 {
        let evs = run_job(&bus, &format!("d{i}"), json!({"function": {"name": "double"}, "input": i})).await;
        assert_eq!(last(&evs), &EventKind::Completed { node: "n1".into(), output: json!(2 * i) });
    }
    // A new version is picked up by its revision, not served stale from the node's cache.
    std::fs::write(&f, "def twice(x):\n    return 'v2'\n").unwrap();
    microlambda::client::deploy(&bus, &f, "double", "twice").await.unwrap();
    let evs = run_job(&bus, "d-v2", json!({"function": {"name": "double"}, "input": 1})).await;
    assert_eq!(last(&evs), &EventKind::Completed { node: "n1".into(), output: json!("v2") });
}

#[tokio::test]
async fn failing_jobs_fail_alone_with_the_reason() {
    let mesh = Mesh::start(&[("n1", 0.1)], &["--job-timeout-ms=1500"]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;

    let raises = "def helper(x):\n    raise ValueError('bad value %r' % x)\n\ndef main(x):\n    return helper(x)\n";
    let evs = run_job(&bus, "raises", json!({"function": {"source": raises}, "input": 7})).await;
    let (kind, msg, tb) = failure(&evs);
    assert_eq!(kind, "raised");
    assert!(msg.contains("ValueError") && msg.contains("bad value 7"), "{msg}");
    assert!(tb.expect("a traceback").contains("bad value 7"));

    let evs = run_job(&bus, "syntax", json!({"function": {"source": "def main(x)\n    return x\n"}})).await;
    let (kind, msg, _) = failure(&evs);
    assert_eq!(kind, "syntax", "{msg}");

    let evs =
        run_job(&bus, "no-entry", json!({"function": {"source": "def main(x):\n    return x\n", "entry": "other"}}))
            .await;
    assert_eq!(failure(&evs).0, "bad_entry");

    let hangs = "import time\ndef main(x):\n    while True:\n        time.sleep(0.05)\n";
    let evs = run_job(&bus, "hangs", json!({"function": {"source": hangs}})).await;
    let (kind, msg, _) = failure(&evs);
    assert_eq!(kind, "timeout");
    assert!(msg.contains("1500 ms"), "{msg}");

    let exits = "import os\ndef main(x):\n    os._exit(3)\n";
    let evs = run_job(&bus, "exits", json!({"function": {"source": exits}})).await;
    let (kind, msg, _) = failure(&evs);
    assert_eq!(kind, "worker_exited");
    assert!(msg.starts_with("worker exited:") && msg.contains('3'), "{msg}");

    let segv = "import ctypes\ndef main(x):\n    return ctypes.string_at(0)\n";
    let evs = run_job(&bus, "segv", json!({"function": {"source": segv}})).await;
    let (kind, msg, _) = failure(&evs);
    assert_eq!(kind, "worker_exited");
    assert!(msg.contains("signal") || msg.contains("SIGSEGV"), "{msg}");

    // The node is fine: the next job runs and the failed records say why.
    let evs =
        run_job(&bus, "after", json!({"function": {"source": "def main(x):\n    return x + 1\n"}, "input": 1})).await;
    assert_eq!(last(&evs), &EventKind::Completed { node: "n1".into(), output: json!(2) });
    let st: Value = bus.status(br#"{"job_id": "hangs"}"#.to_vec().into()).await.unwrap();
    assert_eq!(st["state"], "failed");
    assert_eq!(st["error"]["kind"], "timeout");
}

#[tokio::test]
async fn a_client_in_python_submits_and_reads_the_result() {
    let mesh = Mesh::start(&[("n1", 0.1)], &[]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/client.py");
    let out = std::process::Command::new(python).args([script, &mesh.url()]).output().expect("run the nats-py client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // accepted reply, the completed event, the status record, and a bad request's error.
    assert_eq!(lines[0]["status"], "accepted");
    assert_eq!(lines[1]["event"], "completed");
    assert_eq!(lines[1]["output"], json!({"hello": "from nats-py"}));
    assert_eq!(lines[2]["state"], "completed");
    assert_eq!(lines[2]["output"], json!({"hello": "from nats-py"}));
    assert_eq!(lines[3]["error"]["code"], "bad_request");
}

#[tokio::test]

async fn a_raising_job_reports_the_python_traceback_with_its_frames() {
    let mesh = Mesh::start(&[("n1", 0.1)], &[]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let raises = "def helper(x):\n    raise ValueError('bad value %r' % x)\n\ndef main(x):\n    return helper(x)\n";
    let evs = run_job(&bus, "raises", json!({"function": {"source": raises}, "input": 7})).await;
    let tb = failure(&evs).2.expect("a traceback");
    assert!(tb.contains("Traceback") && tb.contains("in helper") && tb.contains("line 2"), "{tb}");
}

#[tokio::test]
async fn a_hanging_job_does_not_hold_up_other_jobs() {
    let mesh = Mesh::start(&[("n1", 0.1)], &["--job-timeout-ms=4000"]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let mut hang_events = bus.subscribe_events("stuck").await.unwrap();
    let hangs = "import time\ndef main(x):\n    while True:\n        time.sleep(0.05)\n";
    let r = submit(&bus, &json!({"function": {"source": hangs}, "job_id": "stuck"}).to_string()).await;
    assert_eq!(r["status"], "accepted");
    let t = std::time::Instant::now();
    for i in 0..5 {
        let evs = run_job(
            &bus,
            &format!("quick{i}"),
            json!({"function": {"source": "def main(x):\n    return x\n"}, "input": i}),
        )
        .await;
        assert_eq!(last(&evs), &EventKind::Completed { node: "n1".into(), output: json!(i) });
    }
    assert!(t.elapsed() < Duration::from_secs(3), "quick jobs waited for the stuck one: {:?}", t.elapsed());
    let evs = events_until_final(&mut hang_events, LIMIT).await;
    assert_eq!(failure(&evs).0, "timeout");
}

/// docs/PROTOCOL.md: a job that runs in one go publishes `accepted`, `placed`, `started`, then exactly one of
/// `completed` / `failed`, whatever its outcome (a module that does not compile or a worker that exits before
/// the call included); the traceback shows the job's own frames, not the runtime's.
#[tokio::test]
async fn every_outcome_has_the_documented_event_sequence() {
    let mesh = Mesh::start(&[("n1", 0.1)], &["--job-timeout-ms=1500"]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let cases: &[(&str, Value, &str)] = &[
        ("completes", json!({"function": {"source": "def main(x):\n    return x\n"}, "input": 1}), "completed"),
        ("raises", json!({"function": {"source": "def main(x):\n    return 1 / 0\n"}}), "raised"),
        ("syntax", json!({"function": {"source": "def main(x)\n    return x\n"}}), "syntax"),
        ("no-entry", json!({"function": {"source": "def main(x):\n    return x\n", "entry": "other"}}), "bad_entry"),
        ("bad-output", json!({"function": {"source": "def main(x):\n    return {1, 2}\n"}}), "bad_output"),
        ("hangs", json!({"function": {"source": "import time\ndef main(x):\n    time.sleep(60)\n"}}), "timeout"),
        ("exits-at-import", json!({"function": {"source": "import os\nos._exit(3)\n"}}), "worker_exited"),
        ("exits-0", json!({"function": {"source": "import os\ndef main(x):\n    os._exit(3)\n"}}), "worker_exited"),
        ("exits-1", json!({"function": {"source": "import os\ndef main(x):\n    os._exit(0)\n"}}), "worker_exited"),
        ("exits-2", json!({"function": {"source": "import os\ndef main(x):\n    os._exit(1)\n"}}), "worker_exited"),
    ];
    for (id, body, outcome) in cases {
        let evs = run_job(&bus, id, body.clone()).await;
        let kinds: Vec<&str> = evs.iter().map(|e| e.kind.name()).collect();
        let end = if *outcome == "completed" { "completed" } else { "failed" };
        assert_eq!(kinds, ["accepted", "placed", "started", end], "{id}: {evs:?}");
        if end == "failed" {
            let (kind, msg, tb) = failure(&evs);
            assert_eq!(kind, *outcome, "{id}: {msg}");
            if let Some(tb) = tb {
                assert!(!tb.contains("microlambda_rt"), "{id}: the runtime's frames show:\n{tb}");
            }
        }
    }
    let evs = run_job(&bus, "syntax-tb", json!({"function": {"source": "def main(x)\n    return x\n"}})).await;
    let (_, _, tb) = failure(&evs);
    if let Some(tb) = tb {
        assert!(tb.contains("SyntaxError") && tb.contains("def main(x)"), "{tb}");
    }
}

/// Writes the record of a job as a submit writes it, with no message to placement: as when a submit's
/// queueing was lost (placement changed leader between the write and the message).
async fn write_stranded(bus: &microlambda::bus::Bus, job_id: &str) {
    let f = FunctionRef::inline("def main(x):\n    return x * 3\n");
    bus.create_record(&JobRecord::queued(job_id, f, json!(5), 0, None)).await.unwrap();
}

#[tokio::test]
async fn a_waiting_job_placement_never_heard_of_is_placed_by_the_leaders_rescan() {
    let mesh = Mesh::start_env(&[("n1", 0.1)], &[], &[("PLACEMENT__RESCAN_MS", "500")]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let mut events = bus.subscribe_events("stranded-1").await.unwrap();
    write_stranded(&bus, "stranded-1").await;
    let evs = events_until_final(&mut events, LIMIT).await;
    assert_eq!(last(&evs), &EventKind::Completed { node: "n1".into(), output: json!(15) });
}

#[tokio::test]
async fn a_job_whose_source_is_no_longer_stored_fails_saying_so() {
    let mesh = Mesh::start_env(&[("n1", 0.1)], &[], &[("PLACEMENT__RESCAN_MS", "500")]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let mut events = bus.subscribe_events("unstored-1").await.unwrap();
    // A record as the gateway writes it, naming a source the store does not hold (expired, or never stored).
    let sha256 = microlambda::wire::source_sha256("def main(x):\n    return 'never stored'\n");
    let f = FunctionRef { source_sha256: Some(sha256.clone()), ..FunctionRef::default() };
    bus.create_record(&JobRecord::queued("unstored-1", f, json!(5), 0, None)).await.unwrap();
    let (kind, msg, _) = failure(&events_until_final(&mut events, LIMIT).await);
    assert_eq!(kind, "unknown_function", "{msg}");
    assert!(msg.contains(&sha256) && msg.contains("no longer stored"), "{msg}");
}

#[tokio::test]
async fn a_retried_submit_of_a_job_whose_queueing_was_lost_places_it() {
    // The rescan is a minute away (the default): the retry alone must queue it.
    let mesh = Mesh::start(&[("n1", 0.1)], &[]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    write_stranded(&bus, "stranded-2").await;
    let src = "def main(x):\n    return x * 3\n";
    let evs = run_job(&bus, "stranded-2", json!({"function": {"source": src}, "input": 5})).await;
    assert_eq!(last(&evs), &EventKind::Completed { node: "n1".into(), output: json!(15) });
}

#[tokio::test]
async fn the_unfinished_records_are_read_in_one_pass_without_the_finished_deleted_or_unreadable_ones() {
    let mesh = Mesh::nats_only();
    let bus = mesh.bus().await;
    assert!(bus.unfinished_records().await.unwrap().is_empty(), "an empty bucket");
    for i in 0..50 {
        write_stranded(&bus, &format!("open-{i:02}")).await;
    }
    // Finished ones (the bulk of a real bucket), one updated twice (only its last entry counts).
    for i in 0..200 {
        let id = format!("done-{i:03}");
        write_stranded(&bus, &id).await;
        let (mut r, rev) = bus.record(&id).await.unwrap().unwrap();
        r.state = microlambda::wire::JobState::Completed;
        bus.update_record(&r, rev).await.unwrap();
    }
    // A deleted key and a value that is no record, written as anyone with the bucket's rights could.
    let kv = async_nats::jetstream::new(async_nats::connect(mesh.url()).await.unwrap())
        .get_key_value("ml_jobs")
        .await
        .unwrap();
    write_stranded(&bus, "gone").await;
    kv.delete("gone").await.unwrap();
    kv.put("garbage", "not json".into()).await.unwrap();
    let open = bus.unfinished_records().await.unwrap();
    let mut ids: Vec<&str> = open.iter().map(|(r, _)| r.job_id.as_str()).collect();
    ids.sort();
    let want: Vec<String> = (0..50).map(|i| format!("open-{i:02}")).collect();
    assert_eq!(ids, want.iter().map(String::as_str).collect::<Vec<_>>());
    // Each with the revision a compare-and-set needs.
    for (r, rev) in &open {
        assert_eq!(bus.record(&r.job_id).await.unwrap().unwrap().1, *rev, "{}", r.job_id);
    }
}
