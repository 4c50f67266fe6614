//! Jobs that move, on a real nats-server with real node and placement processes and real CPython workers: a
//! radio spike moves a running job and its output is still exact; a node killed with SIGKILL loses only the
//! work since the job's last checkpoint; a paused node whose job was moved never publishes when it wakes;
//! placement fails over to a standby; a hot node with no placement parks its jobs itself; a nats-server
//! restart loses no job; a soak of 300 jobs with radio spikes and a node kill completes every job exactly once.
mod common;

use common::{
    final_record, job_on_n1, next_event, node_of, reference_output, submit, submit_body, until, walker_input, Mesh,
    WALKER,
};
use microlambda::proc::signal_tree;
use microlambda::wire::{EventKind, JobEvent};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Settings that make the mesh react quickly enough for tests.
const FAST: &[(&str, &str)] = &[
    ("PLACEMENT__COOLDOWN_MS", "300"),
    ("PLACEMENT__ORPHAN_GRACE_MS", "1500"),
    ("PLACEMENT__LEASE_MS", "1000"),
    ("NODE__CHECKPOINT_INTERVAL_MS", "300"),
    ("NODE__COMMIT_RETRY_MS", "30000"),
];

fn started_on(e: &JobEvent, node: &str) -> bool {
    matches!(&e.kind, EventKind::Started { node: n, .. } if n == node)
}

#[tokio::test]
async fn a_radio_spike_moves_the_running_job_and_its_output_is_exact() {
    let mesh = Mesh::start_env(&[("n1", 0.1), ("n2", 0.9)], &[], FAST);
    let bus = mesh.bus().await;
    let input = walker_input(7, 120, 0.02);
    let want = reference_output(WALKER, &input);
    let mut events = job_on_n1(&mesh, &bus, "spike-1", &submit_body("spike-1", &input)).await;

    let spike = Instant::now();
    bus.publish_radio("n1", 0.95).await.unwrap();
    let moved = until(&mut events, Duration::from_secs(10), |e| started_on(e, "n2")).await;
    let took = spike.elapsed();
    assert!(
        moved
            .iter()
            .any(|e| matches!(&e.kind, EventKind::Checkpointed { node, mode, .. } if node == "n1" && mode == "stop")),
        "{moved:#?}"
    );
    let migrated = moved.iter().find_map(|e| match &e.kind {
        EventKind::Migrated { from, to, ms, bytes } => Some((from.clone(), to.clone(), *ms, *bytes)),
        _ => None,
    });
    let (from, to, ms, bytes) = migrated.unwrap_or_else(|| panic!("no migrated event: {moved:#?}"));
    assert_eq!((from.as_str(), to.as_str()), ("n1", "n2"));
    assert!(bytes > 0 && ms >= 0.0, "{ms} {bytes}");
    let resumed = moved.iter().find_map(|e| match &e.kind {
        EventKind::Started { node, resumed_from } if node == "n2" => *resumed_from,
        _ => None,
    });
    assert!(resumed.is_some(), "the job restarted instead of resuming: {moved:#?}");
    // A generous bound: the benchmark measures the real figure.
    assert!(took < Duration::from_secs(3), "evacuation took {took:?}");

    let rest = until(&mut events, Duration::from_secs(20), JobEvent::is_final).await;
    assert_eq!(rest.last().unwrap().kind, EventKind::Completed { node: "n2".into(), output: want.clone() });
    let rec = final_record(&bus, "spike-1", Duration::from_secs(5)).await;
    assert_eq!(rec["output"], want);
    assert_eq!(rec["node"], "n2");
    assert!(rec["moves"].as_u64().unwrap() >= 1, "{rec}");
}

#[tokio::test]
async fn a_node_killed_mid_job_loses_only_the_work_since_its_last_checkpoint() {
    let mut mesh = Mesh::start_env(&[("n1", 0.1), ("n2", 0.9)], &[], FAST);
    let bus = mesh.bus().await;
    let input = walker_input(11, 150, 0.02);
    let want = reference_output(WALKER, &input);
    let mut events = job_on_n1(&mesh, &bus, "kill-1", &submit_body("kill-1", &input)).await;
    let ck = until(
        &mut events,
        Duration::from_secs(10),
        |e| matches!(&e.kind, EventKind::Checkpointed { node, mode, .. } if node == "n1" && mode == "continue"),
    )
    .await;
    let EventKind::Checkpointed { seq, .. } = ck.last().unwrap().kind.clone() else { unreachable!() };

    mesh.node("n1").kill();
    let evs = until(&mut events, Duration::from_secs(20), JobEvent::is_final).await;
    assert_eq!(evs.last().unwrap().kind, EventKind::Completed { node: "n2".into(), output: want.clone() });
    let resumed = evs.iter().find_map(|e| match &e.kind {
        EventKind::Started { node, resumed_from } if node == "n2" => Some(*resumed_from),
        _ => None,
    });
    let from = resumed.flatten().unwrap_or_else(|| panic!("not resumed from a checkpoint: {evs:#?}"));
    assert!(from >= seq, "resumed from checkpoint {from}, {seq} was committed before the kill");
    assert!(
        evs.iter().any(|e| matches!(&e.kind, EventKind::Parked { reason, .. } if reason == "node_lost")),
        "{evs:#?}"
    );
    let rec = final_record(&bus, "kill-1", Duration::from_secs(5)).await;
    assert_eq!(rec["output"], want);
}

#[tokio::test]
async fn a_paused_node_whose_job_moved_never_publishes_when_it_wakes() {
    let mut mesh = Mesh::start_env(&[("n1", 0.1), ("n2", 0.9)], &[], FAST);
    let bus = mesh.bus().await;
    // Long enough that the paused copy still has work left when it wakes.
    let input = walker_input(5, 150, 0.02);
    let want = reference_output(WALKER, &input);
    let mut events = job_on_n1(&mesh, &bus, "pause-1", &submit_body("pause-1", &input)).await;
    until(&mut events, Duration::from_secs(10), |e| matches!(&e.kind, EventKind::Checkpointed { .. })).await;

    // The whole BBU freezes: the node and its workers.
    let n1 = mesh.node("n1").pid();
    signal_tree(n1, libc::SIGSTOP);
    let evs = until(&mut events, Duration::from_secs(20), JobEvent::is_final).await;
    assert_eq!(evs.last().unwrap().kind, EventKind::Completed { node: "n2".into(), output: want.clone() });

    // It wakes up still holding its copy of the job, and must stay silent about it.
    let woke = Instant::now();
    signal_tree(n1, libc::SIGCONT);
    let mut after = Vec::new();
    while woke.elapsed() < Duration::from_secs(4) {
        if let Some(e) = next_event(&mut events, Duration::from_millis(200)).await {
            after.push(e);
        }
    }
    assert!(after.iter().all(|e| node_of(e) != Some("n1")), "the woken node spoke about the job: {after:#?}");
    assert!(!after.iter().any(JobEvent::is_final), "a second outcome: {after:#?}");
    let rec = final_record(&bus, "pause-1", Duration::from_secs(5)).await;
    assert_eq!((rec["node"].clone(), rec["output"].clone()), (json!("n2"), want));
    // And it is back in the mesh.
    mesh.ready(&bus, 2).await;
}

#[tokio::test]
async fn a_standby_placement_takes_over_within_three_seconds() {
    let mut mesh = Mesh::start_env(&[("n1", 0.1)], &[], FAST);
    mesh.start_standby();
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    // A job runs across the failover.
    let input = walker_input(3, 100, 0.02);
    let want = reference_output(WALKER, &input);
    let mut events = bus.subscribe_events("across").await.unwrap();
    assert_eq!(submit(&bus, &submit_body("across", &input)).await["status"], "accepted");
    until(&mut events, Duration::from_secs(15), |e| started_on(e, "n1")).await;

    // Kill whichever process leads (SIGKILL: no lease release).
    let lease = bus.lease(Duration::from_millis(1000)).await.unwrap();
    let holder = lease.holder().await.unwrap().expect("a leader");
    let leader_pid: u32 = holder.split('-').nth(1).unwrap().parse().unwrap();
    let killed = Instant::now();
    if mesh.placement.as_ref().is_some_and(|p| p.pid() == leader_pid) {
        mesh.placement.as_mut().unwrap().kill();
    } else {
        let s = mesh.standbys.iter_mut().find(|p| p.pid() == leader_pid).expect("the leader is one of ours");
        s.kill();
    }
    // The standby answers submissions and places jobs.
    let mut events2 = bus.subscribe_events("after-failover").await.unwrap();
    let body =
        json!({"function": {"source": "def main(x):\n    return x + 1\n"}, "input": 41, "job_id": "after-failover"});
    // Probe with short requests: one that reached the dead leader's subscription must not hide the takeover.
    let probe = microlambda::bus::Bus::connect(&mesh.url(), "probe", Duration::from_millis(250)).await.unwrap();
    let took = loop {
        if submit_raw_ok(&probe, &body).await.is_some() {
            break killed.elapsed();
        }
        assert!(killed.elapsed() < Duration::from_secs(10), "no placement answers");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("takeover: {took:?}");
    assert!(took < Duration::from_secs(3), "takeover took {took:?}");
    let evs = until(&mut events2, Duration::from_secs(10), JobEvent::is_final).await;
    assert_eq!(evs.last().unwrap().kind, EventKind::Completed { node: "n1".into(), output: json!(42) });
    let evs = until(&mut events, Duration::from_secs(20), JobEvent::is_final).await;
    assert_eq!(evs.last().unwrap().kind, EventKind::Completed { node: "n1".into(), output: want });
}

#[tokio::test]
async fn a_hot_node_parks_its_jobs_itself_when_no_placement_leads() {
    let mut mesh = Mesh::start_env(&[("n1", 0.1), ("n2", 0.9)], &[], FAST);
    let bus = mesh.bus().await;
    let input = walker_input(5, 150, 0.02);
    let want = reference_output(WALKER, &input);
    let mut events = job_on_n1(&mesh, &bus, "alone-1", &submit_body("alone-1", &input)).await;

    // No placement leads (and none stands by): nobody will send an evacuate command.
    mesh.placement.as_mut().unwrap().kill();
    let spike = Instant::now();
    bus.publish_radio("n1", 0.95).await.unwrap();
    let parked = |e: &JobEvent| matches!(&e.kind, EventKind::Parked { node, .. } if node.as_deref() == Some("n1"));
    let evs = until(&mut events, Duration::from_secs(10), parked).await;
    let took = spike.elapsed();
    // The node gave placement its chance first (node.self_evacuate_after_ms, 1 s by default).
    assert!(took >= Duration::from_millis(1000) && took < Duration::from_secs(5), "parked after {took:?}");
    let stop = evs.iter().find_map(|e| match &e.kind {
        EventKind::Checkpointed { node, mode, seq, .. } if node == "n1" && mode == "stop" => Some(*seq),
        _ => None,
    });
    let stop = stop.unwrap_or_else(|| panic!("no stop checkpoint before the park: {evs:#?}"));
    // Parked, it runs nowhere until placement is back.
    assert!(next_event(&mut events, Duration::from_millis(800)).await.is_none());
    // (jobs.status needs placement: read the record itself.)
    let (rec, _) = bus.record("alone-1").await.unwrap().expect("the record");
    assert_eq!((rec.state, rec.checkpoint.map(|c| c.seq)), (microlambda::wire::JobState::Parked, Some(stop)));

    mesh.start_placement();
    let evs = until(&mut events, Duration::from_secs(20), JobEvent::is_final).await;
    let resumed = evs.iter().find_map(|e| match &e.kind {
        EventKind::Started { node, resumed_from } if node == "n2" => Some(*resumed_from),
        _ => None,
    });
    assert_eq!(resumed, Some(Some(stop)), "{evs:#?}");
    assert_eq!(evs.last().unwrap().kind, EventKind::Completed { node: "n2".into(), output: want });
}

/// Submit, retrying nothing: the reply when it is an acceptance.
async fn submit_raw_ok(bus: &microlambda::bus::Bus, body: &Value) -> Option<Value> {
    let r: Value = bus.submit_raw(body.to_string().into_bytes().into()).await.ok()?;
    (r["status"] == "accepted").then_some(r)
}

#[tokio::test]
async fn a_nats_server_restart_mid_run_loses_no_job() {
    let mut mesh = Mesh::start_env(&[("n1", 0.1), ("n2", 0.1)], &[], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 2).await;
    let mut all = bus.subscribe_all_events().await.unwrap();
    let mut want = HashMap::new();
    for i in 0..4u64 {
        let input = walker_input(100 + i, 120, 0.02);
        want.insert(format!("restart-{i}"), reference_output(WALKER, &input));
        assert_eq!(submit(&bus, &submit_body(&format!("restart-{i}"), &input)).await["status"], "accepted");
    }
    let mut started = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while started.len() < 4 {
        let e = next_event(&mut all, deadline.saturating_duration_since(Instant::now())).await.expect("starts");
        if matches!(e.kind, EventKind::Started { .. }) {
            started.insert(e.job_id);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    mesh.nats.restart(Duration::from_millis(1000)).expect("nats-server restarts");
    for (job_id, out) in &want {
        let rec = final_record(&bus, job_id, Duration::from_secs(60)).await;
        assert_eq!(rec["state"], "completed", "{rec}");
        assert_eq!(&rec["output"], out, "{job_id}");
    }
    // Placement leads again: a new job is placed and runs.
    let mut events = bus.subscribe_events("after-restart").await.unwrap();
    let body =
        json!({"function": {"source": "def main(x):\n    return x * 2\n"}, "input": 21, "job_id": "after-restart"});
    let deadline = Instant::now() + Duration::from_secs(15);
    while submit_raw_ok(&bus, &body).await.is_none() {
        assert!(Instant::now() < deadline, "no placement answers after the restart");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let evs = until(&mut events, Duration::from_secs(15), JobEvent::is_final).await;
    assert!(
        matches!(&evs.last().unwrap().kind, EventKind::Completed { output, .. } if output == &json!(42)),
        "{evs:#?}"
    );
    // Outcomes are published once at most (events sent while the server was down may be lost).
    let mut completed: HashMap<String, usize> = HashMap::new();
    while let Some(e) = next_event(&mut all, Duration::from_millis(300)).await {
        if e.is_final() {
            *completed.entry(e.job_id).or_default() += 1;
        }
    }
    assert!(completed.values().all(|&n| n <= 1), "{completed:?}");
}

#[tokio::test]
async fn a_soak_of_300_jobs_with_radio_spikes_and_a_node_kill_completes_every_job_exactly_once() {
    let mut mesh = Mesh::start_env(&[("n1", 0.1), ("n2", 0.1), ("n3", 0.1), ("n4", 0.1)], &["--slots=4"], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 4).await;
    let mut all = bus.subscribe_all_events().await.unwrap();
    // A few distinct inputs, so the reference outputs are cheap; some jobs run in slices.
    let inputs: Vec<Value> = (0..6).map(|s| walker_input(s, 8 + 4 * s, 0.02)).collect();
    let refs: Vec<Value> = inputs.iter().map(|i| reference_output(WALKER, i)).collect();
    let n = 300;
    let mut want: HashMap<String, Value> = HashMap::new();
    let mut rng_state = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move |m: u64| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state % m
    };
    let start = Instant::now();
    let mut spiked: Option<(String, Instant)> = None;
    let mut killed = false;
    for i in 0..n {
        let k = rand(inputs.len() as u64) as usize;
        let job_id = format!("soak-{i:03}");
        let mut body = json!({"function": {"source": WALKER}, "input": inputs[k], "job_id": job_id});
        if i % 3 == 0 {
            body["r_limit_ms"] = json!(200);
        }
        let r = submit(&bus, &body.to_string()).await;
        assert_eq!(r["status"], "accepted", "{r}");
        want.insert(job_id, refs[k].clone());
        // A radio spike on a random node every ~0.8 s, lasting ~0.6 s.
        if i % 20 == 10 && spiked.is_none() {
            let node = format!("n{}", 1 + rand(if killed { 3 } else { 4 }));
            bus.publish_radio(&node, 0.95).await.unwrap();
            spiked = Some((node, Instant::now()));
        }
        if let Some((node, at)) = &spiked {
            if at.elapsed() > Duration::from_millis(600) {
                bus.publish_radio(node, 0.1).await.unwrap();
                spiked = None;
            }
        }
        if i == 150 {
            mesh.node("n4").kill();
            killed = true;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    if let Some((node, _)) = spiked {
        bus.publish_radio(&node, 0.1).await.unwrap();
    }
    let mut completed: HashMap<String, usize> = HashMap::new();
    let mut failed = Vec::new();
    let (mut moves, mut parks) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(150);
    while completed.len() + failed.len() < n && Instant::now() < deadline {
        let Some(e) = next_event(&mut all, Duration::from_secs(1)).await else { continue };
        match &e.kind {
            EventKind::Completed { output, .. } => {
                assert_eq!(Some(output), want.get(&e.job_id), "wrong output for {}", e.job_id);
                *completed.entry(e.job_id.clone()).or_default() += 1;
            }
            EventKind::Failed { error, .. } => failed.push((e.job_id.clone(), error.clone())),
            EventKind::Migrated { .. } => moves += 1,
            EventKind::Parked { .. } => parks += 1,
            _ => {}
        }
    }
    // Late duplicates would show here.
    while let Some(e) = next_event(&mut all, Duration::from_millis(500)).await {
        if let EventKind::Completed { .. } = e.kind {
            *completed.entry(e.job_id).or_default() += 1;
        }
    }
    assert!(failed.is_empty(), "failed: {failed:#?}");
    let missing: Vec<&String> = want.keys().filter(|j| !completed.contains_key(*j)).collect();
    assert!(missing.is_empty(), "never completed: {missing:?}");
    let twice: Vec<(&String, &usize)> = completed.iter().filter(|(_, &c)| c > 1).collect();
    assert!(twice.is_empty(), "completed more than once: {twice:?}");
    for (job_id, out) in want.iter().take(20) {
        let rec = final_record(&bus, job_id, Duration::from_secs(5)).await;
        assert_eq!(&rec["output"], out);
    }
    eprintln!("soak: {n} jobs in {:.1} s, {moves} moves, {parks} parks", start.elapsed().as_secs_f64());
    assert!(moves > 0 && parks > 0, "the spikes and slices did not move anything: {moves} moves, {parks} parks");
}
