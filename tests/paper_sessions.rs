//! The paper's three workloads as sessions on a real mesh (examples/paper/: face, ride, stress, with their real
//! libraries): each is opened as a session, sent a few requests and moved between two of them by a radio spike,
//! and its replies must equal those of the same module driven in plain CPython (examples/paper/local.py), so the
//! state each keeps between requests (the last face, the taxis, the SVM and the last 90 s of features) survives
//! the checkpoints between requests and the move; and with a runtime limit shorter than a request, the slices
//! that stop a request in the middle of the libraries' code. Needs the real libraries (`make setup-libs`, part of
//! `make test`); without them each test says so and passes.
mod common;

use common::{radio, started_on, submit, until, Mesh};
use microlambda::report::sessions::same_json as same;
use microlambda::wire::{EventKind, JobEvent};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

const FAST: &[(&str, &str)] = &[
    ("PLACEMENT__COOLDOWN_MS", "300"),
    ("PLACEMENT__ORPHAN_GRACE_MS", "1500"),
    ("NODE__CHECKPOINT_INTERVAL_MS", "300"),
];

/// A request on a loaded two-core machine: a worker imports the libraries, restores, then computes.
const REPLY_WITHIN: Duration = Duration::from_secs(90);

/// Whether the venv has the modules the workload imports; when not, why the test is skipped.
fn missing(modules: &str) -> Option<String> {
    let out = Command::new(common::python()).arg("-c").arg(format!("import {modules}")).output().expect("python");
    (!out.status.success()).then(|| {
        format!(
            "SKIPPED: the venv lacks {modules} (run `make setup-libs`): {}",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default()
        )
    })
}

/// The replies of the module run in plain CPython (in a worker's environment): the opening's, then one per request.
fn reference(file: &str, entry: &str, opening: &Value, requests: &[Value]) -> Vec<Value> {
    let out = microlambda::worker::host::reference_command(common::python())
        .current_dir(ROOT)
        .arg("examples/paper/local.py")
        .arg(format!("examples/paper/{file}"))
        .arg(entry)
        .arg(opening.to_string())
        .arg(Value::from(requests.to_vec()).to_string())
        .output()
        .expect("python");
    assert!(out.status.success(), "reference run failed: {}", String::from_utf8_lossy(&out.stderr));
    let replies: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(replies.len(), requests.len() + 1, "{replies:?}");
    replies
}

/// The events up to the session's next reply, which must be request `n`'s.
async fn reply_events(events: &mut microlambda::bus::Subscriber, n: u64) -> (Vec<JobEvent>, Value) {
    let evs = until(events, REPLY_WITHIN, |e| matches!(e.kind, EventKind::Reply { .. })).await;
    let Some(JobEvent { kind: EventKind::Reply { reply, .. }, .. }) = evs.last() else { unreachable!() };
    assert_eq!(reply.n, n, "{evs:#?}");
    assert!(reply.error.is_none(), "request {n} failed: {reply:?}");
    let output = reply.output.clone().unwrap_or(Value::Null);
    (evs, output)
}

/// Open `examples/paper/<file>` as session `id` (with `r_limit_ms` when given: its requests then run in slices),
/// send `requests` (n1's radio spikes, and n2's falls, before request `move_before`), and check every reply
/// against plain CPython's; returns the mesh's replies and the number of slices that ended mid-request.
async fn session(
    id: &str,
    file: &str,
    entry: &str,
    opening: Value,
    requests: &[Value],
    move_before: usize,
    r_limit_ms: Option<u64>,
) -> (Vec<Value>, usize) {
    let want = reference(file, entry, &opening, requests);
    let source = std::fs::read_to_string(format!("{ROOT}/examples/paper/{file}")).unwrap();
    let mesh = Mesh::start_env(&[("n1", 0.1), ("n2", 0.95)], &[], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 2).await;
    let mut events = bus.subscribe_events(id).await.unwrap();
    let mut body =
        json!({"function": {"source": source, "entry": entry}, "input": opening, "job_id": id, "session": true});
    if let Some(ms) = r_limit_ms {
        body["r_limit_ms"] = json!(ms);
    }
    let r = submit(&bus, &body.to_string()).await;
    assert_eq!(r["status"], "accepted", "{r}");
    let (_, opened) = reply_events(&mut events, 0).await;
    assert!(same(&opened, &want[0]), "opening: mesh {opened} != CPython {}", want[0]);
    let mut got = vec![opened];
    let mut slices = 0;
    for (i, req) in requests.iter().enumerate() {
        let n = i as u64 + 1;
        if i == move_before {
            radio(&bus, &[("n1", 0.95), ("n2", 0.1)]).await;
        }
        let body = json!({"session": id, "input": req}).to_string();
        let sent = std::time::Instant::now();
        let r: Value = bus.session_request_raw(body.into_bytes().into()).await.expect("sessions.request reply");
        assert_eq!(r["n"], n, "{r}");
        let (evs, output) = reply_events(&mut events, n).await;
        let node = if i < move_before { "n1" } else { "n2" };
        let starts = started_on(&evs);
        if r_limit_ms.is_none() {
            assert_eq!(starts, [node], "request {n}: {evs:#?}");
        }
        assert!(!starts.is_empty() && starts.iter().all(|s| s == node), "request {n}: {evs:#?}");
        let sliced =
            evs.iter().filter(|e| matches!(&e.kind, EventKind::Parked { reason, .. } if reason == "slice")).count();
        slices += sliced;
        // Where it waits for the next request: the checkpoint taken in stop mode before the reply.
        let idle = evs.iter().rev().find_map(|e| match &e.kind {
            EventKind::Checkpointed { bytes, capture_ms, mode, .. } if mode == "stop" => Some((*bytes, *capture_ms)),
            _ => None,
        });
        let (bytes, capture_ms) = idle.unwrap_or_else(|| panic!("request {n}: no idle checkpoint: {evs:#?}"));
        let periodic = evs.iter().filter(|e| matches!(&e.kind, EventKind::Checkpointed { mode, .. } if mode != "stop"));
        eprintln!(
            "{id} request {n} on {node}: reply in {} ms; idle checkpoint {bytes} B captured in {capture_ms:.2} ms; \
             {} periodic checkpoints; {sliced} slices",
            sent.elapsed().as_millis(),
            periodic.count()
        );
        assert!(same(&output, &want[i + 1]), "request {n}: mesh {output} != CPython {}", want[i + 1]);
        got.push(output);
    }
    let rec = bus.status::<Value>(json!({"job_id": id}).to_string().into_bytes().into()).await.unwrap();
    assert_eq!(
        (rec["state"].as_str(), rec["session"]["next"].as_u64()),
        (Some("idle"), Some(requests.len() as u64 + 1))
    );
    while let Some(e) = common::next_event(&mut events, Duration::from_millis(500)).await {
        assert!(!matches!(e.kind, EventKind::Reply { .. }), "a reply nobody asked for: {e:?}");
    }
    (got, slices)
}

#[tokio::test]
async fn face_says_whether_each_frame_shows_a_new_face_across_a_move() {
    if let Some(why) = missing("face_recognition") {
        eprintln!("{why}");
        return;
    }
    // obama_small, biden (new), obama2 (new: not biden), obama2 again (the same face), by name and by index.
    let requests = [json!(0), json!(2), json!("obama2.jpg"), json!(3)];
    let (got, _) = session("face-1", "face.py", "faces", Value::Null, &requests, 2, None).await;
    let new: Vec<_> = got[1..].iter().map(|r| r["new"].clone()).collect();
    assert_eq!(new, [json!(true), json!(true), json!(true), json!(false)], "{got:?}");
    assert_eq!(got[4]["distance"], json!(0.0), "{got:?}");
}

#[tokio::test]
async fn ride_never_gives_one_taxi_to_two_riders_at_once_across_a_move() {
    if let Some(why) = missing("osmnx, networkx") {
        eprintln!("{why}");
        return;
    }
    let requests: Vec<Value> = [(10, 900, 0), (2000, 5, 30), (11, 12, 60), (1500, 1700, 90), (100, 200, 100)]
        .into_iter()
        .map(|(p, d, t)| json!({"pickup": p, "dropoff": d, "t": t}))
        .collect();
    let (got, _) = session("ride-1", "ride.py", "Dispatch", json!({"taxis": 4, "seed": 5}), &requests, 3, None).await;
    // Each taxi's rides follow one another: a ride's pick-up comes after that taxi's previous drop-off.
    let mut free_at = [0.0f64; 4];
    for r in &got[1..] {
        let taxi = r["taxi"].as_u64().expect("a taxi") as usize;
        let (pickup, dropoff) = (r["pickup_s"].as_f64().unwrap(), r["dropoff_s"].as_f64().unwrap());
        assert!(pickup >= free_at[taxi] && dropoff >= pickup, "{got:?}");
        assert!(free_at[taxi] <= r["t"].as_f64().unwrap() + 300.0, "not free within 5 minutes: {got:?}");
        free_at[taxi] = dropoff;
    }
    assert_eq!(got.last().unwrap()["rides"], json!(requests.len()), "{got:?}");
}

#[tokio::test]
async fn stress_labels_the_last_two_minutes_across_a_move() {
    if let Some(why) = missing("neurokit2, sklearn") {
        eprintln!("{why}");
        return;
    }
    // Two calm windows, then stressed ones: the label turns once the last two minutes are mostly stressed.
    let requests: Vec<Value> = [(65, 12), (68, 13), (100, 22), (105, 24), (110, 25)]
        .into_iter()
        .enumerate()
        .map(|(i, (hr, rr))| json!({"hr": hr, "rr": rr, "seed": i + 1}))
        .collect();
    let (got, _) = session("stress-1", "stress.py", "stress", Value::Null, &requests, 2, None).await;
    let labels: Vec<_> = got[1..].iter().map(|r| r["label"].as_str().unwrap().to_string()).collect();
    assert_eq!(labels, ["calm", "calm", "calm", "stressed", "stressed"], "{got:?}");
    let windows: Vec<_> = got[1..].iter().map(|r| r["windows"].as_u64().unwrap()).collect();
    assert_eq!(windows, [1, 2, 3, 3, 3], "{got:?}");
}

/// A runtime limit shorter than a request: each request of the stress and face workloads runs in slices, each
/// stopped by a checkpoint wherever it stands in NeuroKit2, scikit-learn or dlib's callers and resumed from it, and
/// the replies are still those of plain CPython.
#[tokio::test]
async fn stress_and_face_requests_sliced_by_a_short_r_limit_answer_as_in_cpython() {
    if let Some(why) = missing("neurokit2, sklearn, face_recognition") {
        eprintln!("{why}");
        return;
    }
    let requests: Vec<Value> = [(66, 12), (104, 23)]
        .into_iter()
        .enumerate()
        .map(|(i, (hr, rr))| json!({"hr": hr, "rr": rr, "seed": i + 7}))
        .collect();
    let (_, slices) = session("stress-sliced", "stress.py", "stress", Value::Null, &requests, 1, Some(150)).await;
    assert!(slices >= 1, "no request ran in slices");
    let requests = [json!("obama.jpg"), json!("obama2.jpg")];
    let (got, slices) = session("face-sliced", "face.py", "faces", Value::Null, &requests, 1, Some(120)).await;
    assert!(slices >= 1, "no request ran in slices");
    assert_eq!(got[2]["new"], json!(false), "{got:?}");
}
