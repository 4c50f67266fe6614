//! The mesh on a real nats-server with real node and placement processes: the gateway's answers to bad
//! input, placement by radio load, queueing when no node can take a job, idempotent job ids, load reports
//! a SIGKILLed node noticed as gone, and a node burning CPU as its radio load says (`node.burn_threads`). None
//! of these needs a job to run Python to completion.
mod common;

use common::{events_until_final, submit, Mesh, REPORT_MS};
use futures::StreamExt;
use microlambda::actors::placement::NodesSnapshot;
use microlambda::bus::BusErrorKind;
use microlambda::wire::{EventKind, JobEvent};
use serde_json::{json, Value};
use std::time::Duration;

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn bad_submissions_get_clear_errors_and_the_gateway_keeps_serving() {
    let mesh = Mesh::start(&[("n1", 0.1)], &[]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let cases: Vec<(String, &str, &str)> = vec![
        ("{\"function\": ".into(), "bad_json", "not valid JSON"),
        ("[]".into(), "bad_request", "JSON object"),
        (r#"{"input": 1}"#.into(), "bad_request", "missing field `function`"),
        (r#"{"function": {"name": "f"}, "inptu": 1}"#.into(), "bad_request", "unknown field `inptu`"),
        (r#"{"function": {"name": 7}}"#.into(), "bad_request", "invalid type"),
        (r#"{"function": {"name": "f"}, "priority": "high"}"#.into(), "bad_request", "invalid type"),
        (r#"{"function": {}}"#.into(), "bad_request", "missing \"source\""),
        (r#"{"function": {"name": "nope"}}"#.into(), "unknown_function", "nope"),
        (
            format!(r#"{{"function": {{"source": "def main(x): return x"}}, "input": "{}"}}"#, "x".repeat(300 * 1024)),
            "payload_too_large",
            "limit is 262144",
        ),
    ];
    for (body, code, needle) in &cases {
        let reply = submit(&bus, body).await;
        assert_eq!(error_code(&reply), *code, "{reply}");
        let msg = reply["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{code}: {msg:?} should mention {needle:?}");
    }
    // Over the server's own limit: the client library refuses to send it, naming the limit.
    let huge = format!(r#"{{"function": {{"name": "f"}}, "input": "{}"}}"#, "x".repeat(2 << 20));
    let err = bus.submit_raw::<Value>(huge.into_bytes().into()).await.unwrap_err();
    assert_eq!(err.kind, BusErrorKind::TooLarge, "{err}");
    // Status: bad requests and unknown ids are errors too.
    let st: Value = bus.status(b"nope".to_vec().into()).await.unwrap();
    assert_eq!(error_code(&st), "bad_json");
    let st: Value = bus.status(br#"{"id": "x"}"#.to_vec().into()).await.unwrap();
    assert_eq!(error_code(&st), "bad_request");
    let st: Value = bus.status(br#"{"job_id": "never-submitted"}"#.to_vec().into()).await.unwrap();
    assert_eq!(error_code(&st), "not_found");
    // Still serving good requests.
    let ok = submit(&bus, r#"{"function": {"source": "def main(x): return x"}, "input": 1, "job_id": "fine-1"}"#).await;
    assert_eq!(ok, json!({"job_id": "fine-1", "status": "accepted"}));
    let st: Value = bus.status(br#"{"job_id": "fine-1"}"#.to_vec().into()).await.unwrap();
    assert_eq!(st["job_id"], "fine-1", "{st}");
}

#[tokio::test]
async fn jobs_go_to_the_node_under_the_radio_threshold_and_follow_radio_changes() {
    let mesh = Mesh::start(&[("busy", 0.9), ("calm", 0.1)], &[]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 2).await;
    let mut events = bus.subscribe_all_events().await.unwrap();
    let placed_on = |events: Vec<JobEvent>| -> Vec<String> {
        events
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::Placed { node } => Some(node),
                _ => None,
            })
            .collect()
    };
    for i in 0..4 {
        let r = submit(
            &bus,
            &format!(r#"{{"function": {{"source": "def main(x): return x"}}, "input": {i}, "job_id": "a{i}"}}"#),
        )
        .await;
        assert_eq!(r["status"], "accepted", "{r}");
    }
    let evs = collect(&mut events, 4, Duration::from_secs(10)).await;
    assert_eq!(placed_on(evs), vec!["calm"; 4]);

    // The radio load flips: placement follows within a report interval or two.
    bus.publish_radio("calm", 0.95).await.unwrap();
    bus.publish_radio("busy", 0.05).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3 * REPORT_MS)).await;
    for i in 0..2 {
        submit(
            &bus,
            &format!(r#"{{"function": {{"source": "def main(x): return x"}}, "input": {i}, "job_id": "b{i}"}}"#),
        )
        .await;
    }
    let evs = collect(&mut events, 2, Duration::from_secs(10)).await;
    assert_eq!(placed_on(evs), vec!["busy"; 2]);
}

/// Events until `placed` events for `n` jobs have been seen.
async fn collect(sub: &mut microlambda::bus::Subscriber, n: usize, limit: Duration) -> Vec<JobEvent> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    while out.iter().filter(|e: &&JobEvent| matches!(e.kind, EventKind::Placed { .. })).count() < n {
        match tokio::time::timeout_at(deadline, sub.next()).await {
            Ok(Some(m)) => out.push(serde_json::from_slice(&m.payload).unwrap()),
            _ => panic!("only {out:?} within {limit:?}"),
        }
    }
    out
}

#[tokio::test]
async fn a_job_no_node_can_take_waits_queued_until_one_can() {
    let mesh = Mesh::start(&[("n1", 0.95)], &[]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let mut events = bus.subscribe_events("q1").await.unwrap();
    let r = submit(&bus, r#"{"function": {"source": "def main(x): return x"}, "job_id": "q1"}"#).await;
    assert_eq!(r["status"], "accepted");
    let first = events_until_final(&mut events, Duration::from_millis(1500)).await;
    assert!(
        first.iter().all(|e| !matches!(e.kind, EventKind::Placed { .. })),
        "placed on an overloaded node: {first:?}"
    );
    let snap: NodesSnapshot = bus.nodes().await.unwrap();
    assert_eq!(snap.queued, 1);
    let st: Value = bus.status(br#"{"job_id": "q1"}"#.to_vec().into()).await.unwrap();
    assert_eq!(st["state"], "queued");

    bus.publish_radio("n1", 0.3).await.unwrap();
    let later = events_until_final(&mut events, Duration::from_secs(5)).await;
    assert!(later.iter().any(|e| e.kind == EventKind::Placed { node: "n1".into() }), "{later:?}");
}

#[tokio::test]
async fn the_same_job_id_twice_is_accepted_once() {
    let mesh = Mesh::start(&[("n1", 0.1)], &[]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let mut events = bus.subscribe_events("once").await.unwrap();
    let body = r#"{"function": {"source": "def main(x): return x"}, "input": 5, "job_id": "once"}"#;
    let first = submit(&bus, body).await;
    let second = submit(&bus, body).await;
    assert_eq!(first, json!({"job_id": "once", "status": "accepted"}));
    assert_eq!(second, json!({"job_id": "once", "status": "accepted", "duplicate": true}));
    let mut accepted = 0;
    let mut placed = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, events.next()).await {
        let e: JobEvent = serde_json::from_slice(&m.payload).unwrap();
        match e.kind {
            EventKind::Accepted => accepted += 1,
            EventKind::Placed { .. } => placed += 1,
            _ => {}
        }
    }
    assert_eq!((accepted, placed), (1, 1));
}

#[tokio::test]
async fn load_reports_carry_the_documented_fields() {
    let mesh = Mesh::start(&[("n1", 0.25)], &[]);
    let bus = mesh.bus().await;
    let mut loads = bus.subscribe_loads().await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), loads.next()).await.expect("a report within 5 s").unwrap();
    assert_eq!(m.subject.as_str(), "node.load.n1");
    let v: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(v["node"], "n1");
    assert!(v["ts"].as_u64().unwrap() > 1_600_000_000_000);
    let cpu = v["cpu_headroom"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&cpu), "{v}");
    assert_eq!(v["radio_load"], 0.25);
    assert!(v["mem_available_bytes"].as_u64().unwrap() > 0);
    assert_eq!(v["jobs_running"], 0);
    assert_eq!(v["slots"], 2);
}

#[tokio::test]
async fn a_node_killed_with_sigkill_is_noticed_as_gone() {
    let mut mesh = Mesh::start(&[("stays", 0.1), ("dies", 0.1)], &[]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 2).await;
    let mut gone = bus.subscribe_gone().await.unwrap();
    let killed_at = std::time::Instant::now();
    mesh.node("dies").kill();
    let m = tokio::time::timeout(Duration::from_secs(5), gone.next()).await.expect("node.gone within 5 s").unwrap();
    let noticed = killed_at.elapsed();
    assert_eq!(m.subject.as_str(), "node.gone.dies");
    // 3 missed reports of 200 ms, checked every 200 ms: ~0.8 s; the bound leaves room for a loaded machine.
    assert!(noticed < Duration::from_millis(3000), "{noticed:?}");
    let snap: NodesSnapshot = bus.nodes().await.unwrap();
    let ids: Vec<&str> = snap.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["stays"]);
    // Jobs still go to the survivor.
    let mut events = bus.subscribe_events("after").await.unwrap();
    submit(&bus, r#"{"function": {"source": "def main(x): return x"}, "job_id": "after"}"#).await;
    let evs = events_until_final(&mut events, Duration::from_secs(5)).await;
    assert!(evs.iter().any(|e| e.kind == EventKind::Placed { node: "stays".into() }), "{evs:?}");
}

#[tokio::test]
async fn a_queued_job_survives_a_placement_restart() {
    let mut mesh = Mesh::start(&[("n1", 0.95)], &[]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let mut events = bus.subscribe_events("survivor").await.unwrap();
    let r = submit(&bus, r#"{"function": {"source": "def main(x): return x"}, "job_id": "survivor"}"#).await;
    assert_eq!(r["status"], "accepted");
    // Placement dies with the job in its queue (SIGKILL: no clean-up).
    mesh.placement.as_mut().unwrap().kill();
    mesh.start_placement();
    mesh.ready(&bus, 1).await;
    bus.publish_radio("n1", 0.2).await.unwrap();
    let evs = events_until_final(&mut events, Duration::from_secs(10)).await;
    assert!(evs.iter().any(|e| e.kind == EventKind::Placed { node: "n1".into() }), "{evs:?}");
    assert!(evs.last().unwrap().is_final(), "{evs:?}");
}

/// A job submitted before the mesh is up is taken once it is: `microlambda submit` sends it again while nobody
/// answers `jobs.submit` (for up to `client.retry_ms`), and the job id it names makes the repeats one job. Past
/// `client.retry_ms` it gives up with what the last try got.
#[tokio::test]
async fn a_job_submitted_before_the_mesh_is_up_is_taken_once_it_is() {
    let mut mesh = Mesh::nats_only();
    let exe = env!("CARGO_BIN_EXE_microlambda");
    let url = mesh.url();
    let submit = |job_id: &str| {
        let mut c = std::process::Command::new(exe);
        c.args(["submit", "examples/job.py", "--nats", &url, "--job-id", job_id]);
        c
    };
    let t0 = std::time::Instant::now();
    let gave_up = submit("early-0").env("MICROLAMBDA_CLIENT__RETRY_MS", "600").output().unwrap();
    let took = t0.elapsed();
    let err = String::from_utf8_lossy(&gave_up.stderr);
    assert!(!gave_up.status.success() && err.contains("nobody answers"), "{err}");
    assert!(took >= Duration::from_millis(600) && took < Duration::from_secs(5), "gave up after {took:?}");

    let client = submit("early-1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("microlambda submit");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    mesh.start_placement();
    let out = tokio::task::spawn_blocking(move || client.wait_with_output()).await.unwrap().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "submit failed: {stderr}");
    assert_eq!(stdout.trim(), "early-1", "accepted once, not as a duplicate: {stderr}");
    let bus = mesh.bus().await;
    let (rec, _) = bus.record("early-1").await.unwrap().expect("the job's record");
    assert_eq!(rec.job_id, "early-1");
}

/// CPU time (user + system) a process has used so far, from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) in parentheses: utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest.split_whitespace().skip(11).take(2).map(|x| x.parse().unwrap()).collect();
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Duration::from_secs_f64((f[0] + f[1]) as f64 / hz)
}

#[tokio::test]
async fn a_node_with_burn_threads_burns_cpu_as_its_radio_load_says() {
    let mut mesh = Mesh::start_env(&[("n1", 0.9)], &[], &[("NODE__BURN_THREADS", "1")]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let pid = mesh.node("n1").pid();
    let window = Duration::from_secs(2);
    let used = |from: Duration| cpu_time(pid).saturating_sub(from);
    let t = cpu_time(pid);
    tokio::time::sleep(window).await;
    let hot = used(t);
    bus.publish_radio("n1", 0.0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = cpu_time(pid);
    tokio::time::sleep(window).await;
    let quiet = used(t);
    // At 0.9 a thread spins 9 ms of every 10 (less on a loaded machine); at 0 it sleeps.
    assert!(hot >= Duration::from_millis(250) && hot > quiet * 4, "radio 0.9: {hot:?}, radio 0: {quiet:?} of CPU");
    println!("node CPU over {window:?}: {hot:?} at radio 0.9, {quiet:?} at 0");
}
