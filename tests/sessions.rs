//! Stateful sessions on a real mesh (docs/PROTOCOL.md, "Sessions"): a generator or a `handle` class keeps state
//! across requests, each answered once and in order, between them a checkpoint that holds no worker; moved
//! between and during requests, recovered after kill -9 of its node; and the bad cases, each with a clear
//! error that loses nothing.
mod common;

use common::{next_reply, open, radio, request, started_on, submit, until, Mesh};
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

/// Send request `n` and collect the session's events up to its reply.
async fn ask(bus: &Bus, events: &mut microlambda::bus::Subscriber, id: &str, input: Value, n: u64) -> Vec<JobEvent> {
    let r = request(bus, id, input).await;
    assert_eq!(r["n"], n, "{r}");
    let evs = until(events, Duration::from_secs(30), |e| matches!(e.kind, EventKind::Reply { .. })).await;
    assert!(matches!(&evs.last().unwrap().kind, EventKind::Reply { reply, .. } if reply.n == n), "{evs:#?}");
    evs
}

fn reply_of(evs: &[JobEvent]) -> SessionReply {
    match &evs.last().unwrap().kind {
        EventKind::Reply { reply, .. } => reply.clone(),
        _ => unreachable!(),
    }
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
    // The node holds no job for it: its next load report lists none running.
    let mut loads = bus.subscribe_loads().await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut loads)).await.unwrap().unwrap();
    let load: microlambda::wire::LoadReport = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!((load.jobs_running, load.jobs.len()), (0, 0), "{load:?}");
}

/// A class session: `handle` keeps the state on the instance; a request that raises is answered with its error
/// and the session goes on from where it was before that request (its half-done change is not kept).
const LEDGER: &str = r#"
class Ledger:
    def __init__(self, owner):
        self.owner, self.entries = owner, []

    def handle(self, req):
        self.entries.append(req["amount"])
        if req["amount"] < 0:
            raise ValueError(f"negative amount {req['amount']}")
        return {"owner": self.owner, "balance": sum(self.entries), "entries": len(self.entries)}
"#;

#[tokio::test]
async fn bad_requests_get_clear_errors_and_lose_nothing() {
    let mesh = Mesh::start_env(&[("n1", 0.1)], &[], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let (mut events, opening) = open(&bus, "ledger", LEDGER, "Ledger", json!("ann")).await;
    assert_eq!(opening, Value::Null);

    // Requests to no session, or to a plain job.
    let r = request(&bus, "nobody", json!(1)).await;
    assert_eq!(r["error"]["code"], "unknown_session", "{r}");
    let plain = json!({"function": {"source": "def main(x):\n    return x\n"}, "input": 1, "job_id": "plain-1"});
    assert_eq!(submit(&bus, &plain.to_string()).await["status"], "accepted");
    let r = request(&bus, "plain-1", json!(1)).await;
    assert_eq!(r["error"]["code"], "unknown_session", "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("not a session"), "{r}");
    let r = request(&bus, "bad id", json!(1)).await;
    assert_eq!(r["error"]["code"], "bad_request", "{r}");
    let r = bus.session_request_raw::<Value>(br#"{"session": "ledger", "inptu": 1}"#.to_vec().into()).await.unwrap();
    assert_eq!(r["error"]["code"], "bad_request", "{r}");

    // A request that raises: answered with the error; the next one sees the state before it.
    assert_eq!(request(&bus, "ledger", json!({"amount": 10})).await["n"], 1);
    let reply = next_reply(&mut events, 1).await;
    assert_eq!(reply.output, Some(json!({"owner": "ann", "balance": 10, "entries": 1})));
    assert_eq!(request(&bus, "ledger", json!({"amount": -5})).await["n"], 2);
    let reply = next_reply(&mut events, 2).await;
    let error = reply.error.clone().unwrap_or_else(|| panic!("no error: {reply:?}"));
    assert_eq!(error.kind, "raised");
    assert!(error.message.contains("ValueError: negative amount -5"), "{error:?}");
    let tb = error.traceback.as_deref().unwrap_or_default();
    assert!(tb.contains("in handle") && !tb.contains("__ml_session__"), "{error:?}");
    assert_eq!(request(&bus, "ledger", json!({"amount": 7})).await["n"], 3);
    let reply = next_reply(&mut events, 3).await;
    assert_eq!(reply.output, Some(json!({"owner": "ann", "balance": 17, "entries": 2})), "{reply:?}");
    let rec = record(&bus, "ledger").await;
    assert_eq!((rec["state"].as_str(), rec["session"]["next"].as_u64()), (Some("idle"), Some(4)), "{rec}");
}

#[tokio::test]
async fn a_session_that_ends_or_cannot_start_says_so() {
    let mesh = Mesh::start_env(&[("n1", 0.1)], &[], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;

    // A function that is neither a generator function nor a class with handle(): the opening fails.
    let mut events = bus.subscribe_events("wrong-1").await.unwrap();
    let src = "def main(x):\n    return x + 1\n";
    let body = json!({"function": {"source": src}, "input": 1, "job_id": "wrong-1", "session": true});
    assert_eq!(submit(&bus, &body.to_string()).await["status"], "accepted");
    let reply = next_reply(&mut events, 0).await;
    let error = reply.error.clone().unwrap_or_else(|| panic!("no error: {reply:?}"));
    assert!(error.message.contains("generator function or a class with a handle(request) method"), "{error:?}");
    let evs = until(&mut events, Duration::from_secs(10), JobEvent::is_final).await;
    assert!(matches!(evs.last().unwrap().kind, EventKind::Failed { .. }), "{evs:#?}");
    let r = request(&bus, "wrong-1", json!(1)).await;
    assert_eq!(r["error"]["code"], "session_closed", "{r}");

    // A generator that returns after two requests: the request that ended it says so, with the return value.
    let src = "def two(x):\n    a = yield x\n    b = yield a + x\n    return {'sum': a + b + x}\n";
    let (mut events, opening) = open(&bus, "two-1", src, "two", json!(1)).await;
    assert_eq!(opening, json!(1));
    request(&bus, "two-1", json!(10)).await;
    assert_eq!(next_reply(&mut events, 1).await.output, Some(json!(11)));
    request(&bus, "two-1", json!(100)).await;
    let reply = next_reply(&mut events, 2).await;
    assert_eq!(reply.output, Some(json!({"sum": 111})), "{reply:?}");
    assert_eq!(reply.error.map(|e| e.kind).as_deref(), Some("session_ended"));
    let evs = until(&mut events, Duration::from_secs(10), JobEvent::is_final).await;
    assert!(matches!(&evs.last().unwrap().kind, EventKind::Completed { output, .. } if output == &json!({"sum": 111})));
    let r = request(&bus, "two-1", json!(1)).await;
    assert_eq!(r["error"]["code"], "session_closed", "{r}");
}

/// A walk whose every step depends on the last: each request runs `steps` of it (sleeping `sleep` s a step,
/// so a request can be caught mid-way), and the reply is the state and how many requests it has seen. As a
/// generator and as a class.
const WALKER: &str = r#"
import time

def walker(seed):
    state, seen = seed, 0
    req = yield state
    while True:
        for i in range(req["steps"]):
            state = (state * 31 + i) % 1000003
            time.sleep(req.get("sleep", 0))
        seen += 1
        req = yield {"state": state, "seen": seen}

class Walker:
    def __init__(self, seed):
        self.state, self.seen = seed, 0

    def handle(self, req):
        for i in range(req["steps"]):
            self.state = (self.state * 31 + i) % 1000003
            time.sleep(req.get("sleep", 0))
        self.seen += 1
        return {"state": self.state, "seen": self.seen}
"#;

fn walk(state: u64, steps: u64) -> u64 {
    (0..steps).fold(state, |s, i| (s * 31 + i) % 1000003)
}

#[tokio::test]
async fn replies_stay_in_order_across_a_move_between_requests_and_one_during_a_request() {
    moves("walker", json!(7)).await;
}

#[tokio::test]
async fn a_class_session_moved_during_a_request_resumes_it_where_it_was() {
    moves("Walker", Value::Null).await;
}

/// Moves between and during requests of a session of `entry`: a generator (driven by the session's loop through
/// `generator.send`) and a class's `handle` are both resumed mid-request.
async fn moves(entry: &str, opening_reply: Value) {
    let mesh = Mesh::start_env(&[("n1", 0.1), ("n2", 0.95)], &[], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 2).await;
    let id = format!("walk-{entry}");
    let id = id.as_str();
    let (mut events, opening) = open(&bus, id, WALKER, entry, json!(7)).await;
    assert_eq!(opening, opening_reply);
    let mut state = 7;

    // Request 1 on n1 (n2 is hot).
    let evs = ask(&bus, &mut events, id, json!({"steps": 50}), 1).await;
    assert_eq!(started_on(&evs), ["n1"], "{evs:#?}");
    state = walk(state, 50);
    assert_eq!(reply_of(&evs).output, Some(json!({"state": state, "seen": 1})));

    // Between requests, n1's radio spikes (and n2's falls): request 2 runs on n2, from the checkpoint n1 took.
    radio(&bus, &[("n1", 0.95), ("n2", 0.1)]).await;
    let evs = ask(&bus, &mut events, id, json!({"steps": 60}), 2).await;
    assert_eq!(started_on(&evs), ["n2"], "{evs:#?}");
    state = walk(state, 60);
    assert_eq!(reply_of(&evs).output, Some(json!({"state": state, "seen": 2})));

    // During request 3 (about 1.5 s), n2's radio spikes: it moves to n1 mid-request and answers once.
    // (It starts on n2 while n1 is still hot; n1 cools down (300 ms) while it runs.)
    let idle_seq = record(&bus, id).await["session"]["idle_checkpoint"]["seq"].as_u64().unwrap();
    assert_eq!(request(&bus, id, json!({"steps": 150, "sleep": 0.01})).await["n"], 3);
    let mut evs = until(&mut events, Duration::from_secs(10), |e| matches!(&e.kind, EventKind::Started { .. })).await;
    assert_eq!(started_on(&evs), ["n2"], "{evs:#?}");
    radio(&bus, &[("n1", 0.1)]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    radio(&bus, &[("n2", 0.95)]).await;
    evs.extend(until(&mut events, Duration::from_secs(30), |e| matches!(e.kind, EventKind::Reply { .. })).await);
    assert!(
        evs.iter().any(|e| matches!(&e.kind, EventKind::Migrated { from, to, .. } if from == "n2" && to == "n1")),
        "not moved during the request: {evs:#?}"
    );
    let resumed = evs.iter().find_map(|e| match &e.kind {
        EventKind::Started { node, resumed_from } if node == "n1" => *resumed_from,
        _ => None,
    });
    assert!(resumed.is_some_and(|s| s > idle_seq), "not resumed mid-request: {evs:#?}");
    state = walk(state, 150);
    let reply = reply_of(&evs);
    assert_eq!((reply.n, reply.output), (3, Some(json!({"state": state, "seen": 3}))));

    // Request 4 on n1, where the session now waits; nothing was answered twice.
    let evs = ask(&bus, &mut events, id, json!({"steps": 5}), 4).await;
    state = walk(state, 5);
    assert_eq!(reply_of(&evs).output, Some(json!({"state": state, "seen": 4})));
    let rec = record(&bus, id).await;
    assert_eq!((rec["state"].as_str(), rec["session"]["next"].as_u64()), (Some("idle"), Some(5)), "{rec}");
    assert!(rec["moves"].as_u64().unwrap() >= 1, "{rec}");
    no_more_replies(&mut events).await;
}

/// No reply comes after the last one asked for (none answered twice).
async fn no_more_replies(events: &mut microlambda::bus::Subscriber) {
    while let Some(e) = common::next_event(events, Duration::from_millis(500)).await {
        assert!(!matches!(e.kind, EventKind::Reply { .. }), "a reply nobody asked for: {e:?}");
    }
}

#[tokio::test]
async fn a_session_whose_node_is_killed_mid_request_answers_once_from_another_node() {
    let mut mesh = Mesh::start_env(&[("n1", 0.1), ("n2", 0.95)], &[], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 2).await;
    // A class session: its request is checkpointed while it runs (periodic checkpoints).
    let (mut events, _) = open(&bus, "walk-k", WALKER, "Walker", json!(3)).await;
    let evs = ask(&bus, &mut events, "walk-k", json!({"steps": 10}), 1).await;
    let mut state = walk(3, 10);
    assert_eq!(reply_of(&evs).output, Some(json!({"state": state, "seen": 1})));

    // Request 2 (about 2 s) on n1 (n2 is hot); kill -9 n1 after a periodic checkpoint.
    assert_eq!(request(&bus, "walk-k", json!({"steps": 200, "sleep": 0.01})).await["n"], 2);
    let is_ck = |e: &JobEvent| matches!(&e.kind, EventKind::Checkpointed { node, mode, .. } if node == "n1" && mode == "continue");
    let mut evs = until(&mut events, Duration::from_secs(10), |e| matches!(&e.kind, EventKind::Started { .. })).await;
    assert_eq!(started_on(&evs), ["n1"], "{evs:#?}");
    radio(&bus, &[("n2", 0.1)]).await; // n2 cools down while the request runs
    evs.extend(until(&mut events, Duration::from_secs(10), is_ck).await);
    let Some(EventKind::Checkpointed { seq, .. }) = evs.last().map(|e| e.kind.clone()) else { unreachable!() };
    mesh.node("n1").kill();
    evs.extend(until(&mut events, Duration::from_secs(30), |e| matches!(e.kind, EventKind::Reply { .. })).await);
    assert!(
        evs.iter().any(|e| matches!(&e.kind, EventKind::Parked { reason, .. } if reason == "node_lost")),
        "{evs:#?}"
    );
    assert_eq!(started_on(&evs), ["n1", "n2"], "{evs:#?}");
    let resumed = evs.iter().find_map(|e| match &e.kind {
        EventKind::Started { node, resumed_from } if node == "n2" => *resumed_from,
        _ => None,
    });
    assert!(resumed.is_some_and(|r| r >= seq), "not resumed from the request's checkpoint {seq}: {evs:#?}");
    state = walk(state, 200);
    let reply = reply_of(&evs);
    assert_eq!((reply.n, reply.output), (2, Some(json!({"state": state, "seen": 2}))));

    // The session goes on from there.
    let evs = ask(&bus, &mut events, "walk-k", json!({"steps": 4}), 3).await;
    state = walk(state, 4);
    assert_eq!(reply_of(&evs).output, Some(json!({"state": state, "seen": 3})));
    no_more_replies(&mut events).await;
}

#[tokio::test]
async fn two_sessions_of_one_client_on_different_nodes_keep_their_own_state() {
    let mesh = Mesh::start_env(&[("n1", 0.1), ("n2", 0.95)], &[], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 2).await;
    let (mut ev_a, _) = open(&bus, "two-a", WALKER, "walker", json!(1)).await;
    let (mut ev_b, _) = open(&bus, "two-b", WALKER, "walker", json!(2)).await;
    let (mut a, mut b) = (1, 2);
    for k in 1..=3u64 {
        // Each round, a's request with n2 hot (it runs on n1), then b's with n1 hot (on n2, once n2 cooled).
        radio(&bus, &[("n1", 0.1), ("n2", 0.95)]).await;
        let evs_a = ask(&bus, &mut ev_a, "two-a", json!({"steps": 20 * k}), k).await;
        radio(&bus, &[("n1", 0.95), ("n2", 0.1)]).await;
        let evs_b = ask(&bus, &mut ev_b, "two-b", json!({"steps": 30 * k}), k).await;
        assert_eq!(started_on(&evs_a), ["n1"], "{evs_a:#?}");
        assert_eq!(started_on(&evs_b), ["n2"], "{evs_b:#?}");
        (a, b) = (walk(a, 20 * k), walk(b, 30 * k));
        assert_eq!(reply_of(&evs_a).output, Some(json!({"state": a, "seen": k})));
        assert_eq!(reply_of(&evs_b).output, Some(json!({"state": b, "seen": k})));
    }
    no_more_replies(&mut ev_a).await;
}

/// Placement's affinity: a session's requests go back to the node that took its checkpoint (its module warm
/// there) while that node can take them and its headroom is within `placement.affinity_margin` of the best
/// node's (1 here: whenever it can take them), though another node's radio is quieter; a node over the
/// threshold still sends them elsewhere. (Without the rule the quieter node, with 2.5x the headroom, took
/// them.)
#[tokio::test]
async fn a_sessions_requests_go_back_to_the_node_that_took_its_checkpoint() {
    let env = [FAST, &[("PLACEMENT__AFFINITY_MARGIN", "1")]].concat();
    let mesh = Mesh::start_env(&[("n1", 0.1), ("n2", 0.95)], &[], &env);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 2).await;
    let (mut events, _) = open(&bus, "affine", COUNTER, "counter", json!(0)).await;
    radio(&bus, &[("n1", 0.6), ("n2", 0.0)]).await;
    tokio::time::sleep(Duration::from_millis(600)).await; // n2's cooldown (300 ms) and a report after it
    let mut total = 0;
    for n in 1..=3u64 {
        let evs = ask(&bus, &mut events, "affine", json!(n), n).await;
        total += n;
        assert_eq!(started_on(&evs), ["n1"], "request {n}: {evs:#?}");
        assert_eq!(reply_of(&evs).output, Some(json!({"k": n, "total": total})));
    }
    radio(&bus, &[("n1", 0.95)]).await;
    let evs = ask(&bus, &mut events, "affine", json!(4), 4).await;
    assert_eq!(started_on(&evs), ["n2"], "{evs:#?}");
    assert_eq!(reply_of(&evs).output, Some(json!({"k": 4, "total": total + 4})));
}

#[tokio::test]
async fn requests_sent_without_waiting_are_answered_in_order_each_once() {
    let mesh = Mesh::start_env(&[("n1", 0.1), ("n2", 0.1)], &[], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 2).await;
    let (mut events, _) = open(&bus, "burst", COUNTER, "counter", json!(0)).await;
    // Back to back, then spaced so that some arrive while the session is going idle.
    let mut sent = 0u64;
    for (i, pause_ms) in [0, 0, 0, 0, 0, 3, 7, 11, 13, 17, 19, 23].into_iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        assert_eq!(request(&bus, "burst", json!(i + 1)).await["n"], i as u64 + 1);
        sent += 1;
    }
    let mut total = 0;
    for n in 1..=sent {
        let reply = next_reply(&mut events, n).await;
        total += n;
        assert_eq!(reply.output, Some(json!({"k": n, "total": total})), "{reply:?}");
    }
    no_more_replies(&mut events).await;
    let rec = record(&bus, "burst").await;
    assert_eq!((rec["state"].as_str(), rec["session"]["next"].as_u64()), (Some("idle"), Some(sent + 1)), "{rec}");
}

#[tokio::test]
async fn a_request_sent_again_with_its_id_is_answered_once_with_the_first_ones_number() {
    let mesh = Mesh::start_env(&[("n1", 0.1)], &[], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let (mut events, _) = open(&bus, "again", COUNTER, "counter", json!(0)).await;
    let send = |body: Value| {
        let bus = bus.clone();
        async move { bus.session_request_raw::<Value>(body.to_string().into_bytes().into()).await.unwrap() }
    };
    // As a client repeats a request whose answer said `unavailable` (the store may have recorded it): the
    // repeat, before and after the session answered it, gets the same number.
    let first = json!({"session": "again", "input": 5, "request_id": "req-a"});
    assert_eq!(send(first.clone()).await["n"], 1);
    assert_eq!(send(first.clone()).await["n"], 1, "a repeat while unanswered");
    let reply = next_reply(&mut events, 1).await;
    assert_eq!(reply.output, Some(json!({"k": 1, "total": 5})));
    assert_eq!(send(first).await["n"], 1, "a repeat after the answer");
    // Another id is another request; no id, each send is one.
    assert_eq!(send(json!({"session": "again", "input": 7, "request_id": "req-b"})).await["n"], 2);
    assert_eq!(next_reply(&mut events, 2).await.output, Some(json!({"k": 2, "total": 12})));
    assert_eq!(request(&bus, "again", json!(1)).await["n"], 3);
    assert_eq!(request(&bus, "again", json!(1)).await["n"], 4);
    assert_eq!(next_reply(&mut events, 3).await.output, Some(json!({"k": 3, "total": 13})));
    assert_eq!(next_reply(&mut events, 4).await.output, Some(json!({"k": 4, "total": 14})));
    no_more_replies(&mut events).await;
    // An id that is no token is refused before anything is recorded.
    let bad = send(json!({"session": "again", "input": 1, "request_id": "a.b"})).await;
    assert_eq!(bad["error"]["code"], "bad_request", "{bad}");
    assert_eq!(record(&bus, "again").await["session"]["next"], 5);
}

#[tokio::test]
async fn a_request_longer_than_the_sessions_r_limit_runs_in_slices_and_answers_once() {
    let mesh = Mesh::start_env(&[("n1", 0.1), ("n2", 0.1)], &[], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 2).await;
    let mut events = bus.subscribe_events("sliced").await.unwrap();
    let body = json!({"function": {"source": WALKER, "entry": "Walker"}, "input": 5, "job_id": "sliced",
        "session": true, "r_limit_ms": 200});
    assert_eq!(submit(&bus, &body.to_string()).await["status"], "accepted");
    next_reply(&mut events, 0).await;
    // About 0.8 s of work in slices of at most 200 ms; then a short request in one slice.
    let evs = ask(&bus, &mut events, "sliced", json!({"steps": 80, "sleep": 0.01}), 1).await;
    let slices =
        evs.iter().filter(|e| matches!(&e.kind, EventKind::Parked { reason, .. } if reason == "slice")).count();
    assert!(slices >= 3, "{slices} slices: {evs:#?}");
    let state = walk(5, 80);
    assert_eq!(reply_of(&evs).output, Some(json!({"state": state, "seen": 1})));
    let evs = ask(&bus, &mut events, "sliced", json!({"steps": 3}), 2).await;
    assert_eq!(reply_of(&evs).output, Some(json!({"state": walk(state, 3), "seen": 2})));
    no_more_replies(&mut events).await;
}

/// A class with a `close()`: what it returns ends the session; a generator with cleanup in `finally`.
const CLOSABLE: &str = r#"
class Tally:
    def __init__(self, start):
        self.total = start

    def handle(self, x):
        self.total += x
        return self.total

    def close(self):
        return {"closed_at": self.total}

def tally(start):
    total = start
    try:
        while True:
            total += yield total
    finally:
        total = -1
"#;

async fn close(bus: &Bus, id: &str) -> Value {
    let body = json!({"session": id, "close": true}).to_string();
    bus.session_request_raw::<Value>(body.into_bytes().into()).await.expect("sessions.request reply")
}

#[tokio::test]
async fn a_session_closed_by_its_client_ends_after_the_requests_before_the_close() {
    let mesh = Mesh::start_env(&[("n1", 0.1)], &[], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let (mut events, _) = open(&bus, "tally-1", CLOSABLE, "Tally", json!(100)).await;
    // A request and the close sent back to back: the close is request 2, taken after request 1's answer.
    assert_eq!(request(&bus, "tally-1", json!(5)).await["n"], 1);
    assert_eq!(close(&bus, "tally-1").await, json!({"session": "tally-1", "n": 2}));
    assert_eq!(next_reply(&mut events, 1).await.output, Some(json!(105)));
    let reply = next_reply(&mut events, 2).await;
    assert_eq!(reply.output, Some(json!({"closed_at": 105})), "{reply:?}");
    let error = reply.error.unwrap_or_else(|| panic!("no session_ended"));
    assert_eq!(error.kind, "session_ended");
    assert!(error.message.contains("closed"), "{error:?}");
    let evs = until(&mut events, Duration::from_secs(10), JobEvent::is_final).await;
    assert!(
        matches!(&evs.last().unwrap().kind, EventKind::Completed { output, .. } if output == &json!({"closed_at": 105}))
    );
    let r = request(&bus, "tally-1", json!(1)).await;
    assert_eq!(r["error"]["code"], "session_closed", "{r}");
    let r = close(&bus, "tally-1").await;
    assert_eq!(r["error"]["code"], "session_closed", "{r}");

    // A generator is closed where it waits (its finally runs): the close's reply has no output to give.
    let (mut events, _) = open(&bus, "tally-2", CLOSABLE, "tally", json!(1)).await;
    assert_eq!(close(&bus, "tally-2").await["n"], 1);
    let reply = next_reply(&mut events, 1).await;
    assert_eq!((reply.output, reply.error.map(|e| e.kind)), (None, Some("session_ended".into())));
    let rec = record(&bus, "tally-2").await;
    assert_eq!(rec["state"], "completed", "{rec}");

    // A close carries no input.
    let body = json!({"session": "tally-2", "close": true, "input": 3}).to_string();
    let r = bus.session_request_raw::<Value>(body.into_bytes().into()).await.unwrap();
    assert_eq!(r["error"]["code"], "bad_request", "{r}");
}

#[tokio::test]
async fn a_session_idle_longer_than_session_idle_ms_is_closed_and_one_in_use_is_not() {
    let env = [FAST, &[("PLACEMENT__SESSION_IDLE_MS", "2500")]].concat();
    let mesh = Mesh::start_env(&[("n1", 0.1)], &[], &env);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let (mut idle, _) = open(&bus, "idle-1", CLOSABLE, "Tally", json!(7)).await;
    let (mut busy, _) = open(&bus, "busy-1", CLOSABLE, "Tally", json!(0)).await;
    // busy-1 gets a request every second, so it is never idle for 2.5 s; idle-1 gets none after its opening.
    for n in 1..=5 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(request(&bus, "busy-1", json!(1)).await["n"], n);
        assert_eq!(next_reply(&mut busy, n).await.output, Some(json!(n)));
    }
    let reply = next_reply(&mut idle, 1).await;
    assert_eq!(reply.output, Some(json!({"closed_at": 7})), "{reply:?}");
    assert_eq!(reply.error.map(|e| e.kind).as_deref(), Some("session_ended"));
    assert_eq!(record(&bus, "idle-1").await["state"], "completed");
    assert_eq!(record(&bus, "busy-1").await["state"], "idle");
}

/// `microlambda session ...` against the mesh: (stdout, stderr, exit code).
fn session_cli(mesh: &Mesh, home: &std::path::Path, args: &[&str]) -> (String, String, Option<i32>) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_microlambda"))
        .arg("session")
        .args(args)
        .args(["--nats", &mesh.url()])
        .env("MICROLAMBDA_LOG", "off")
        .env("XDG_CACHE_HOME", home)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (text(&out.stdout), text(&out.stderr), out.status.code())
}

#[tokio::test]
async fn the_session_commands_open_ask_and_close_a_session() {
    let mesh = Mesh::start_env(&[("n1", 0.1)], &[], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let file = home.join("closable.py");
    std::fs::write(&file, CLOSABLE).unwrap();
    let f = file.to_str().unwrap();
    let ok = |args: &[&str]| {
        let (out, err, code) = session_cli(&mesh, home, args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        (out, err)
    };
    assert_eq!(ok(&["open", f, "--entry", "Tally", "--input", "10", "--id", "cli-1"]).0, "cli-1\nnull\n");
    assert_eq!(ok(&["request", "cli-1", "--input", "5"]).0, "15\n");
    assert_eq!(ok(&["request", "cli-1", "--input", "-3"]).0, "12\n");
    let (out, err) = ok(&["close", "cli-1"]);
    assert_eq!(out, "{\"closed_at\":12}\n");
    assert!(err.contains("the session was closed"), "{err}");
    // After the close, and to no session: refused, exit 1, one line.
    let (_, err, code) = session_cli(&mesh, home, &["request", "cli-1", "--input", "1"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("session_closed") && err.contains("returned or was closed"), "{err}");
    let (_, err, code) = session_cli(&mesh, home, &["request", "nobody", "--input", "1"]);
    assert_eq!((code, err.lines().count()), (Some(1), 1), "{err}");
    assert!(err.contains("unknown_session"), "{err}");
    // A request that raises: its error and traceback on stderr, exit 1; the session goes on.
    let src = "def main(x):\n    t = x\n    while True:\n        t = t / (yield t)\n";
    std::fs::write(&file, src).unwrap();
    assert_eq!(ok(&["open", f, "--input", "8", "--id", "cli-2"]).0, "cli-2\n8\n");
    let (_, err, code) = session_cli(&mesh, home, &["request", "cli-2", "--input", "0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("ZeroDivisionError") && err.contains("Traceback"), "{err}");
    assert_eq!(ok(&["request", "cli-2", "--input", "2"]).0, "4.0\n");
}

/// A session opened while no gateway is up yet (the mesh is starting) is taken once one is, and so is a
/// request sent while the placement is down: the client sends them again while nobody answers, each once.
#[tokio::test]
async fn a_session_opened_and_asked_while_no_gateway_is_up_is_answered_once_one_is() {
    let mut mesh = Mesh::nats_only();
    mesh.env.extend(FAST.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("counter.py");
    std::fs::write(&file, "def main(x):\n    t = x\n    while True:\n        t = t + (yield t)\n").unwrap();
    let url = mesh.url();
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_microlambda"))
            .arg("session")
            .args(args)
            .args(["--nats", &url])
            .env("MICROLAMBDA_LOG", "off")
            .env("XDG_CACHE_HOME", home.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("microlambda session")
    };
    let output = |c: std::process::Child| async move {
        let o = tokio::task::spawn_blocking(move || c.wait_with_output()).await.unwrap().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (o.status.code(), text(&o.stdout), text(&o.stderr))
    };
    let opening = cli(&["open", file.to_str().unwrap(), "--input", "1", "--id", "early-s"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    mesh.start_placement();
    mesh.start_node("n1", 0.1, &[]);
    assert_eq!(output(opening).await, (Some(0), "early-s\n1\n".into(), String::new()));

    mesh.placement.take().expect("the placement").kill();
    let asking = cli(&["request", "early-s", "--input", "10"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    mesh.start_placement();
    let (code, out, err) = output(asking).await;
    assert_eq!((code, out.as_str()), (Some(0), "11\n"), "{err}");
    let bus = mesh.bus().await;
    let (rec, _) = bus.record("early-s").await.unwrap().expect("the session's record");
    assert_eq!(rec.session.expect("a session").next, 2, "the opening and one request, each once");
}
