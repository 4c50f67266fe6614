//! Stateful sessions on a real mesh (docs/PROTOCOL.md, "Sessions"): a generator or a `handle` class keeps state
//! across requests, each answered once and in order, between them a checkpoint that holds no worker; moved
//! between and during requests, recovered after kill -9 of its node; and the bad cases, each with a clear
//! error that loses nothing.
mod common;

use common::{submit, until, Mesh};
use microlambda::bus::Bus;
use microlambda::wire::{EventKind, JobEvent, SessionReply};
use serde_json::{json, Value};
use std::time::Duration;

const FAST: &[(&str, &str)] = &[
    ("PLACEMENT__COOLDOWN_MS", "300"),
    ("PLACEMENT__ORPHAN_GRACE_MS", "1500"),
    ("NODE__CHECKPOINT_INTERVAL_MS", "300"),
];

/// A running total: the opening input is the start, each request adds to it; the reply is the request's
/// number in the session, the total and the history's length (so a request handled twice or lost shows).
const COUNTER: &str = r#"
def counter(start):
    total, seen = start, []
    x = yield {"total": total}
    while True:
        seen.append(x)
        total += x
        x = yield {"k": len(seen), "total": total}
"#;

/// Open a session and wait for its opening reply.
async fn open(bus: &Bus, id: &str, source: &str, entry: &str, input: Value) -> (microlambda::bus::Subscriber, Value) {
    let mut events = bus.subscribe_events(id).await.unwrap();
    let body = json!({"function": {"source": source, "entry": entry}, "input": input, "job_id": id, "session": true});
    let r = submit(bus, &body.to_string()).await;
    assert_eq!(r["status"], "accepted", "{r}");
    let reply = next_reply(&mut events, 0).await;
    (events, reply.output.unwrap_or(Value::Null))
}

async fn request(bus: &Bus, id: &str, input: Value) -> Value {
    let body = json!({"session": id, "input": input}).to_string();
    bus.session_request_raw::<Value>(body.into_bytes().into()).await.expect("sessions.request reply")
}

/// The `reply` event of request `n` (panics on a reply to another request first: replies come in order).
async fn next_reply(events: &mut microlambda::bus::Subscriber, n: u64) -> SessionReply {
    let evs = until(events, Duration::from_secs(30), |e| matches!(e.kind, EventKind::Reply { .. })).await;
    let Some(JobEvent { kind: EventKind::Reply { reply, .. }, .. }) = evs.last() else { unreachable!() };
    assert_eq!(reply.n, n, "{evs:#?}");
    reply.clone()
}

async fn record(bus: &Bus, id: &str) -> Value {
    bus.status::<Value>(json!({"job_id": id}).to_string().into_bytes().into()).await.unwrap()
}

#[tokio::test]
async fn a_generator_session_answers_each_request_in_order_and_holds_no_worker_between() {
    let mesh = Mesh::start_env(&[("n1", 0.1)], &[], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let (mut events, opening) = open(&bus, "s1", COUNTER, "counter", json!(100)).await;
    assert_eq!(opening, json!({"total": 100}));
    for (i, x) in [5, 7, 11].into_iter().enumerate() {
        let n = i as u64 + 1;
        let r = request(&bus, "s1", json!(x)).await;
        assert_eq!(r, json!({"session": "s1", "n": n}));
        let reply = next_reply(&mut events, n).await;
        let total = 100 + [5, 7, 11][..=i].iter().sum::<i64>();
        assert_eq!(reply.output, Some(json!({"k": n, "total": total})), "{reply:?}");
    }
    let rec = record(&bus, "s1").await;
    assert_eq!(rec["state"], "idle", "{rec}");
    assert_eq!(rec["session"]["next"], 4, "{rec}");
    assert!(rec.get("node").is_none(), "{rec}");
}
