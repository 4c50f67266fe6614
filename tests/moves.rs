//! The edges of moving jobs, on a real mesh: r_limit slices, a checkpoint too large for one message (object
//! store), a job whose state cannot be saved when it must leave, a job that raises after a move, and bad
//! messages on the internal subjects (malformed, forged, signed with another key): each gets a clear answer
//! and changes nothing.
mod common;

use common::{events_until_final, final_record, job_on_n1, reference_output, submit, Mesh};
use microlambda::checkpoint::{CheckpointBody, Compression, Envelope};
use microlambda::wire::{Adopt, CheckpointRef, CheckpointStore, EventKind, JobEvent};
use serde_json::{json, Value};
use std::time::Duration;

const FAST: &[(&str, &str)] = &[
    ("PLACEMENT__COOLDOWN_MS", "300"),
    ("PLACEMENT__ORPHAN_GRACE_MS", "1500"),
    ("NODE__CHECKPOINT_INTERVAL_MS", "300"),
];

const SLICED: &str = r#"
import time

def main(x):
    total, log = 0, []
    for i in range(x["n"]):
        total += i * i % 7
        if i % 50 == 0:
            log.append(total)
            time.sleep(0.01)
    return {"total": total, "log": log[-4:], "parts": len(log)}
"#;

async fn run(bus: &microlambda::bus::Bus, job_id: &str, body: Value, limit: Duration) -> Vec<JobEvent> {
    let mut events = bus.subscribe_events(job_id).await.unwrap();
    let mut body = body;
    body["job_id"] = job_id.into();
    let r = submit(bus, &body.to_string()).await;
    assert_eq!(r["status"], "accepted", "{r}");
    events_until_final(&mut events, limit).await
}

fn count(evs: &[JobEvent], name: &str) -> usize {
    evs.iter().filter(|e| e.kind.name() == name).count()
}

#[tokio::test]
async fn a_job_with_an_r_limit_runs_in_slices_and_its_output_is_exact() {
    let mesh = Mesh::start_env(&[("n1", 0.1), ("n2", 0.1)], &[], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 2).await;
    let input = json!({"n": 6000});
    let want = reference_output(SLICED, &input);
    // ~1.2 s of work in slices of at most 250 ms.
    let body = json!({"function": {"source": SLICED}, "input": input, "r_limit_ms": 250});
    let evs = run(&bus, "sliced-1", body, Duration::from_secs(30)).await;
    let EventKind::Completed { output, .. } = &evs.last().unwrap().kind else { panic!("{evs:#?}") };
    assert_eq!(output, &want);
    let slices = count(&evs, "started");
    assert!(slices >= 4, "{slices} slices: {evs:#?}");
    assert!(evs.iter().any(|e| matches!(&e.kind, EventKind::Parked { reason, .. } if reason == "slice")));
    // Every slice after the first resumes from the checkpoint the previous one ended with.
    let resumed: Vec<Option<u64>> = evs
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Started { resumed_from, .. } => Some(*resumed_from),
            _ => None,
        })
        .collect();
    assert_eq!(resumed[0], None);
    assert!(resumed[1..].iter().all(Option::is_some), "{resumed:?}");
    let rec = final_record(&bus, "sliced-1", Duration::from_secs(5)).await;
    assert_eq!(rec["slices"].as_u64().unwrap() as usize, slices, "{rec}");
    // Every slice ended its worker; each node's pool is back to one warm worker per slot, and no more.
    let mut loads = bus.subscribe_loads().await.unwrap();
    let mut warm: std::collections::HashMap<String, u64> = Default::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while warm.len() < 2 || warm.values().any(|&w| w != 2) {
        let m = tokio::time::timeout_at(deadline, futures::StreamExt::next(&mut loads))
            .await
            .unwrap_or_else(|_| panic!("pools not refilled: {warm:?}"))
            .unwrap();
        let r: Value = serde_json::from_slice(&m.payload).unwrap();
        let w = r["warm_workers"].as_u64().unwrap();
        assert!(w <= 2, "more warm workers than slots: {r}");
        warm.insert(r["node"].as_str().unwrap().to_string(), w);
    }
}

/// ~2 MiB of numpy state: over the server's 1 MiB max payload, so it moves through the object store.
const BIG: &str = r#"
import time
import numpy as np

def main(x):
    a = np.arange(x["n"], dtype=np.float64)
    for i in range(x["rounds"]):
        a = a * 1.0001 + 1.0
        time.sleep(0.02)
    return {"sum": round(float(a.sum()), 3), "first": round(float(a[0]), 6)}
"#;

#[tokio::test]
async fn a_checkpoint_over_the_max_payload_moves_through_the_object_store() {
    let mesh = Mesh::start_env(&[("n1", 0.1), ("n2", 0.9)], &[], FAST);
    let bus = mesh.bus().await;
    let input = json!({"n": 300_000, "rounds": 100});
    let want = reference_output(BIG, &input);
    let body = json!({"function": {"source": BIG}, "input": input, "job_id": "big-1"});
    let mut events = job_on_n1(&mesh, &bus, "big-1", &body.to_string()).await;
    bus.publish_radio("n1", 0.95).await.unwrap();
    let evs = events_until_final(&mut events, Duration::from_secs(30)).await;
    let EventKind::Completed { node, output } = &evs.last().unwrap().kind else { panic!("{evs:#?}") };
    assert_eq!((node.as_str(), output), ("n2", &want));
    let moved = evs.iter().find_map(|e| match &e.kind {
        EventKind::Migrated { bytes, .. } => Some(*bytes),
        _ => None,
    });
    let bytes = moved.unwrap_or_else(|| panic!("no move: {evs:#?}"));
    assert!(bytes > 1 << 20, "{bytes} bytes: not over the max payload");
    let rec = final_record(&bus, "big-1", Duration::from_secs(5)).await;
    assert_eq!(
        rec["checkpoint"]["store"]["object"]["name"].as_str().map(|s| s.starts_with("big-1.")),
        Some(true),
        "{rec}"
    );
}

/// A job holding a socket in a local: its state cannot be saved.
const LOCKED: &str = r#"
import socket, time

def main(x):
    conn = socket.socket()
    acc = 0
    for i in range(x["n"]):
        acc += i
        if i % 20 == 0:
            time.sleep(0.01)
    conn.close()
    return acc
"#;

#[tokio::test]
async fn a_job_whose_state_cannot_be_saved_still_leaves_and_ends_exactly() {
    let mesh = Mesh::start_env(&[("n1", 0.1), ("n2", 0.9)], &[], FAST);
    let bus = mesh.bus().await;
    let input = json!({"n": 6000});
    let want = reference_output(LOCKED, &input);
    let body = json!({"function": {"source": LOCKED}, "input": input, "job_id": "locked-1"});
    let mut events = job_on_n1(&mesh, &bus, "locked-1", &body.to_string()).await;
    bus.publish_radio("n1", 0.95).await.unwrap();
    let evs = events_until_final(&mut events, Duration::from_secs(30)).await;
    // It left n1 at once all the same, and started over on n2 (no checkpoint to resume from).
    assert_eq!(evs.last().unwrap().kind, EventKind::Completed { node: "n2".into(), output: want }, "{evs:#?}");
    assert!(
        evs.iter().any(|e| matches!(&e.kind, EventKind::Started { node, resumed_from: None } if node == "n2")),
        "{evs:#?}"
    );
}

const RAISES_LATER: &str = r#"
import time

def main(x):
    for i in range(x["n"]):
        time.sleep(0.01)
    return 1 / (x["n"] - x["n"])
"#;

#[tokio::test]
async fn a_job_that_raises_after_a_move_fails_once_with_its_traceback() {
    let mesh = Mesh::start_env(&[("n1", 0.1), ("n2", 0.9)], &[], FAST);
    let bus = mesh.bus().await;
    let body = json!({"function": {"source": RAISES_LATER}, "input": {"n": 200}, "job_id": "raise-1"});
    let mut events = job_on_n1(&mesh, &bus, "raise-1", &body.to_string()).await;
    bus.publish_radio("n1", 0.95).await.unwrap();
    let evs = events_until_final(&mut events, Duration::from_secs(20)).await;
    assert_eq!(count(&evs, "migrated"), 1, "{evs:#?}");
    let EventKind::Failed { node, error } = &evs.last().unwrap().kind else { panic!("{evs:#?}") };
    assert_eq!(node.as_deref(), Some("n2"));
    assert_eq!(error.kind, "raised");
    assert!(error.message.contains("ZeroDivisionError"), "{}", error.message);
    assert!(error.traceback.as_deref().unwrap_or("").contains("line 7"), "{error:?}");
    let more = events_until_final(&mut events, Duration::from_secs(1)).await;
    assert!(more.is_empty(), "events after the end: {more:#?}");
}

/// A move of a job nobody handed over, carrying `inline` as its checkpoint.
fn adopt(job_id: &str, inline: Vec<u8>) -> Adopt {
    let checkpoint = CheckpointRef {
        seq: 1,
        bytes: inline.len() as u64,
        run_ms: 0,
        taken_ms: 0,
        node: "intruder".into(),
        store: CheckpointStore::Stream { seq: 999_999 },
    };
    Adopt {
        job_id: job_id.into(),
        revision: 1,
        epoch: 1,
        from: "intruder".into(),
        began_ms: 0,
        checkpoint: Some(checkpoint),
        inline,
    }
}

#[tokio::test]
async fn bad_messages_on_internal_subjects_get_clear_answers_and_change_nothing() {
    let mesh = Mesh::start_env(&[("n1", 0.1)], &[], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let raw = async_nats::connect(mesh.url()).await.unwrap();
    let ask = |subject: &'static str, body: &'static [u8]| {
        let raw = raw.clone();
        async move {
            let m = raw.request(subject, body.into()).await.expect("an answer");
            serde_json::from_slice::<Value>(&m.payload).expect("a JSON answer")
        }
    };
    // Commands: not JSON, unknown command, unknown jobs.
    let r = ask("node.ctl.n1", b"{not json").await;
    assert!(r["error"].as_str().unwrap().contains("bad command"), "{r}");
    let r = ask("node.ctl.n1", br#"{"cmd": "explode"}"#).await;
    assert!(r["error"].as_str().unwrap().contains("unknown variant"), "{r}");
    let r = ask("node.ctl.n1", br#"{"cmd": "evacuate", "moves": [{"job_id": "nobody", "to": null}]}"#).await;
    assert_eq!(r["unknown"], json!(["nobody"]), "{r}");
    // Adopt: not postcard, a forged checkpoint, one signed with another key.
    let r = ask("node.adopt.n1", b"\xff\xff\xff").await;
    assert_eq!(r["accepted"], false);
    assert!(r["reason"].as_str().unwrap().contains("bad adopt message"), "{r}");
    let forged = bus
        .adopt("n1", &adopt("forged-1", b"MLCK not really a checkpoint".to_vec()), Duration::from_secs(2))
        .await
        .unwrap();
    assert!(!forged.accepted);
    assert!(forged.reason.as_deref().unwrap().contains("checkpoint refused"), "{forged:?}");
    let body = CheckpointBody {
        python: "3.11".into(),
        job_id: "forged-2".into(),
        seq: 1,
        created_unix_ms: 0,
        module_name: "m".into(),
        source_sha256: [0; 32],
        frames: Vec::new(),
        imports: Vec::new(),
        state_compression: Compression::None,
        state: b"cos\nsystem\n(S'echo pwned'\ntR.".to_vec(),
        buffers: Vec::new(),
    };
    let other_key = Envelope::new(b"not the mesh key").seal_parts(&body).to_vec();
    let r = bus.adopt("n1", &adopt("forged-2", other_key), Duration::from_secs(2)).await.unwrap();
    assert!(!r.accepted);
    // Refused by the key it names (a checkpoint of another mesh), before its tag is even checked.
    let why = r.reason.as_deref().unwrap();
    let other_id = microlambda::checkpoint::key_id(b"not the mesh key");
    assert!(why.contains(&format!("signed with key {other_id}, which this node does not hold")), "{r:?}");
    // Requeue: not JSON.
    let r = ask("placement.requeue", b"[]").await;
    assert_eq!(r["error"]["code"], "bad_request", "{r}");
    // The node still runs jobs.
    let evs = run(
        &bus,
        "still-fine",
        json!({"function": {"source": "def main(x):\n    return x * 3\n"}, "input": 3}),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(evs.last().unwrap().kind, EventKind::Completed { node: "n1".into(), output: json!(9) });
}
