//! Durability. The mesh on a three-server NATS cluster: three real nats-server processes routed to each other
//! on loopback ports, JetStream on each with its own store, every stream and bucket with three replicas,
//! placement (leader and standby) and three nodes given the three URLs. The server leading the jobs bucket
//! (stream `KV_ml_jobs`) is killed with SIGKILL mid-run while a node's radio spikes, or frozen with SIGSTOP and
//! thawed; jobs are submitted before, during and after. Every job completes exactly once with the output of an
//! uninterrupted run in plain CPython, and its record says the same. And JetStream's fsync policy
//! (`testbed.nats_sync_interval`) is the one the server runs with. A process started while JetStream has no
//! quorum waits for it rather than exit.
mod common;

use common::{final_record, next_event, reference_output, submit_body, until, walker_input, Mesh, WALKER};
use microlambda::bus::{Bus, Subscriber};
use microlambda::natsd::{NatsServer, ServerOptions, SyncInterval};
use microlambda::wire::{EventKind, JobEvent};
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Settings that make the mesh react within seconds (as tests/migration.rs).
const FAST: &[(&str, &str)] = &[
    ("PLACEMENT__COOLDOWN_MS", "300"),
    ("PLACEMENT__ORPHAN_GRACE_MS", "1500"),
    ("PLACEMENT__LEASE_MS", "1000"),
    ("PLACEMENT__RESCAN_MS", "2000"),
    ("NODE__CHECKPOINT_INTERVAL_MS", "300"),
    ("NODE__COMMIT_RETRY_MS", "30000"),
];

/// How long a server stays frozen: past JetStream's longest election (9 s) and a client's ping-out (3 s), so the
/// mesh must take submissions while it is frozen.
const FROZEN: Duration = Duration::from_secs(20);

const NODES: &[(&str, f64)] = &[("n1", 0.1), ("n2", 0.2), ("n3", 0.3)];

/// Every stream and bucket of the mesh.
const STREAMS: &[&str] = &["KV_ml_jobs", "KV_ml_functions", "KV_ml_lease", "KV_ml_sessions", "ML_CKPT", "OBJ_ml_ckpt"];

/// JetStream through one server (`url`: one of the cluster's).
async fn jetstream(url: &str) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(async_nats::connect(url).await.expect("connect"))
}

/// The name of the server leading the jobs bucket's stream, after checking that every stream of the mesh has
/// three replicas.
async fn jobs_leader(mesh: &Mesh) -> String {
    let js = jetstream(&mesh.nats.url()).await;
    for name in STREAMS {
        let mut s = js.get_stream(*name).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(s.info().await.unwrap().config.num_replicas, 3, "{name}");
    }
    let mut jobs = js.get_stream("KV_ml_jobs").await.unwrap();
    jobs.info().await.unwrap().cluster.clone().and_then(|c| c.leader).expect("a leader of KV_ml_jobs")
}

/// Submit until accepted (an error reply or no answer is a refusal: nothing was taken; the retry has the same
/// job id, so a submit whose reply was lost is not doubled). How long it took and how many were refused.
async fn submit_until_accepted(bus: &Bus, body: &str, limit: Duration) -> (Duration, usize) {
    let t0 = Instant::now();
    let mut refused = 0;
    let mut why: Vec<String> = Vec::new();
    loop {
        let reason: String = match bus.submit_raw::<Value>(body.to_string().into_bytes().into()).await {
            Ok(r) if r["status"] == "accepted" => {
                if refused > 0 {
                    eprintln!("refused {refused} times, at (s, reason): {why:?}");
                }
                return (t0.elapsed(), refused);
            }
            Ok(r) => r["error"]["message"].as_str().unwrap_or("?").chars().take(60).collect(),
            Err(e) => e.to_string().chars().take(60).collect(),
        };
        refused += 1;
        if why.last().is_none_or(|w| !w.ends_with(reason.as_str())) {
            why.push(format!("{:.1} {reason}", t0.elapsed().as_secs_f64()));
        }
        assert!(t0.elapsed() < limit, "not accepted within {limit:?} ({refused} refusals)");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The jobs of a run, their reference outputs computed beside the mesh.
#[derive(Default)]
struct Jobs(Vec<(String, std::thread::JoinHandle<Value>)>);

impl Jobs {
    /// `n` [`WALKER`] jobs of ~`secs` seconds, each submitted until accepted; the longest wait for an acceptance.
    async fn submit(&mut self, bus: &Bus, prefix: &str, n: u64, secs: u64) -> (Duration, usize) {
        let (mut longest, mut refused) = (Duration::ZERO, 0);
        for i in 0..n {
            let job_id = format!("{prefix}-{i}");
            let input = walker_input(100 * secs + i, secs * 20, 0.05);
            let (took, r) = submit_until_accepted(bus, &submit_body(&job_id, &input), Duration::from_secs(30)).await;
            longest = longest.max(took);
            refused += r;
            self.0.push((job_id, std::thread::spawn(move || reference_output(WALKER, &input))));
        }
        (longest, refused)
    }

    fn outputs(self) -> HashMap<String, Value> {
        self.0.into_iter().map(|(j, h)| (j, h.join().expect("reference run"))).collect()
    }
}

/// Every job of `want` final in its record as completed with its exact output, no job completed twice or failed
/// in the events (events sent while a server was going down can be lost: the records are the truth). The
/// records' total of moves.
async fn exactly_once(bus: &Bus, sub: &mut Subscriber, seen: &mut Vec<JobEvent>, want: &HashMap<String, Value>) -> u32 {
    let mut moves = 0;
    for (job_id, out) in want {
        let rec = final_record(bus, job_id, Duration::from_secs(60)).await;
        assert_eq!((&rec["state"], &rec["output"]), (&Value::from("completed"), out), "{job_id}: {rec}");
        moves += rec["moves"].as_u64().unwrap_or(0) as u32;
    }
    // Late duplicates would show here.
    let end = Instant::now() + Duration::from_secs(2);
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        if let Some(e) = next_event(sub, left).await {
            seen.push(e);
        }
    }
    let mut completions: HashMap<&str, usize> = HashMap::new();
    for e in seen.iter() {
        match &e.kind {
            EventKind::Completed { output, .. } => {
                *completions.entry(&e.job_id).or_default() += 1;
                assert_eq!(Some(output), want.get(&e.job_id), "wrong output for {}", e.job_id);
            }
            EventKind::Failed { .. } => panic!("a job failed: {e:?}"),
            _ => {}
        }
    }
    let twice: Vec<_> = completions.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "completed more than once: {twice:?}\n{seen:#?}");
    let missed = want.keys().filter(|j| !completions.contains_key(j.as_str())).count();
    eprintln!("{} jobs completed once each; {missed} completion events missed; {moves} moves", want.len());
    moves
}

/// Until a job has committed a periodic checkpoint (the fault then lands mid-run, with progress to keep).
async fn mid_run(sub: &mut Subscriber, seen: &mut Vec<JobEvent>) {
    let ck = |e: &JobEvent| matches!(&e.kind, EventKind::Checkpointed { mode, .. } if mode == "continue");
    seen.extend(until(sub, Duration::from_secs(30), ck).await);
}

/// Publish `node`'s radio load every 100 ms until aborted.
fn radio_every_100ms(bus: Bus, node: &'static str, load: f64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let _ = bus.publish_radio(node, load).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// A mesh on three servers with six [`WALKER`] jobs of `secs` seconds running (a checkpoint committed), a client
/// that gives up on a request after 1 s (and submits again), and the server leading the jobs bucket.
struct MidRun {
    mesh: Mesh,
    bus: Bus,
    probe: Bus,
    sub: Subscriber,
    seen: Vec<JobEvent>,
    jobs: Jobs,
    leader: String,
}

impl MidRun {
    async fn start(extra: &[&str], secs: u64) -> Self {
        let mesh = Mesh::start_cluster(3, NODES, extra, FAST).await;
        let bus = mesh.bus().await;
        mesh.ready(&bus, 3).await;
        let mut sub = bus.subscribe_all_events().await.unwrap();
        let mut seen = Vec::new();
        let mut jobs = Jobs::default();
        jobs.submit(&bus, "before", 6, secs).await;
        mid_run(&mut sub, &mut seen).await;
        let probe = Bus::connect(&mesh.url(), "probe", Duration::from_secs(1)).await.unwrap();
        let leader = jobs_leader(&mesh).await;
        MidRun { mesh, bus, probe, sub, seen, jobs, leader }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_server_killed_mid_run_during_a_radio_spike_loses_and_doubles_no_job() {
    // Four slots: n2 and n3 have room for n1's jobs when it is hot.
    let MidRun { mut mesh, bus, probe, mut sub, mut seen, mut jobs, leader } = MidRun::start(&["--slots=4"], 8).await;
    mesh.server(&leader).kill();
    let killed = Instant::now();
    // n1 is hot at once: its jobs move while the cluster elects the buckets' new leaders. The radio source
    // says so every 100 ms, as a real one does (a single message can be lost while its server goes down).
    let spike = radio_every_100ms(bus.clone(), "n1", 0.95);
    let (stall, refused) = jobs.submit(&probe, "during", 3, 2).await;
    let accepted = killed.elapsed();
    eprintln!(
        "killed {leader} (leader of KV_ml_jobs): the first submission accepted after {stall:?} ({refused} refused), \
         all three {accepted:?} after the kill"
    );
    mesh.server(&leader).start_again().expect("the killed server comes back");
    spike.abort();
    bus.publish_radio("n1", 0.1).await.unwrap();
    jobs.submit(&bus, "after", 3, 1).await;

    let want = jobs.outputs();
    let moves = exactly_once(&bus, &mut sub, &mut seen, &want).await;
    // The spike is a stressor, not the claim: while n1's own server is down placement may find n1 unreachable
    // for the whole spike ("evacuation not delivered: no responders", seen once in CI), and then nothing moves.
    eprintln!("the spike on n1 moved {moves} jobs");
    // The killed server is back in the cluster and the buckets still have their three replicas.
    jobs_leader(&mesh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_server_frozen_and_thawed_mid_run_loses_and_doubles_no_job() {
    let MidRun { mut mesh, bus, probe, mut sub, mut seen, mut jobs, leader } = MidRun::start(&[], 6).await;
    let pid = mesh.server(&leader).pid();
    mesh.server(&leader).pause(true);
    let frozen = Instant::now();
    // Thawed after FROZEN, whatever happens meanwhile: longer than a lease and a few load reports, so a leader
    // or a node connected to it is cut off, and all of it wakes up at once.
    let thaw = tokio::spawn(async move {
        tokio::time::sleep(FROZEN).await;
        // SAFETY: kill(2) on the server, still our child (the mesh holds it).
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) };
    });
    // The mesh works on without it: its clients leave it, its streams elect leaders among the other two.
    let (stall, refused) = jobs.submit(&probe, "during", 3, 2).await;
    let accepted = frozen.elapsed();
    eprintln!(
        "froze {leader} (leader of KV_ml_jobs): the first submission accepted after {stall:?} ({refused} refused), \
         all three {accepted:?} after the freeze"
    );
    assert!(accepted < FROZEN, "no submission was accepted while {leader} was frozen");
    thaw.await.unwrap();
    mesh.server(&leader).wait_healthy(Duration::from_secs(30)).expect("the thawed server catches up");
    jobs.submit(&bus, "after", 3, 1).await;

    let want = jobs.outputs();
    exactly_once(&bus, &mut sub, &mut seen, &want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_server_flushes_jetstream_as_nats_sync_interval_says() {
    // The server reports what it runs with (`/varz`): the default flushes every 2 minutes.
    for (setting, always, interval_ns) in
        [("always", true, 120_000_000_000u64), ("250ms", false, 250_000_000), ("default", false, 120_000_000_000)]
    {
        let opts = ServerOptions { sync: SyncInterval::parse(setting).unwrap(), monitor: true, ..Default::default() };
        let server = NatsServer::start_opts(None, None, &opts).expect("nats-server");
        let varz = server.varz().expect("/varz");
        let js = &varz["jetstream"]["config"];
        assert_eq!(js["sync_always"].as_bool().unwrap_or(false), always, "{setting}: {js}");
        assert_eq!(js["sync_interval"].as_u64(), Some(interval_ns), "{setting}: {js}");
    }
    // The testbed's setting reaches its secured server's configuration, and the mesh runs on it.
    let mut settings = microlambda::config::Settings::default();
    settings.testbed.nats_sync_interval = "always".into();
    settings.testbed.nodes = 1;
    settings.testbed.port = 0;
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_microlambda"));
    let tb = microlambda::testbed::Testbed::start(&settings, None, exe).expect("testbed");
    let conf = std::fs::read_to_string(tb.nats_config_file().expect("a configuration file")).unwrap();
    assert!(conf.contains("sync_interval: always") && conf.contains("authorization"), "{conf}");
    let bus = tb.connect(&settings.client, "client", "test").await.expect("connect as the client");
    tb.wait_ready(&bus, Duration::from_secs(30)).await.expect("placement sees the node");
    let input = walker_input(5, 2, 0.01);
    let r = common::submit(&bus, &submit_body("synced", &input)).await;
    assert_eq!(r["status"], "accepted", "{r}");
    let rec = final_record(&bus, "synced", Duration::from_secs(30)).await;
    assert_eq!(rec["output"], reference_output(WALKER, &input), "{rec}");
    // A value that is neither is refused with the setting's name.
    settings.testbed.nats_sync_interval = "sometimes".into();
    let err = settings.validate().unwrap_err().to_string();
    assert!(err.contains("testbed.nats_sync_interval") && err.contains("always"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_started_while_the_cluster_has_no_jetstream_quorum_connects_once_it_has() {
    // Two servers of three down: the one left answers clients but cannot serve JetStream (no meta leader), as a
    // cluster just up or busy may not for a while (compose's node container exited on "stream ML_CKPT:
    // jetstream request timed out"). A process connecting then waits for JetStream, and opens the mesh's
    // streams and buckets once the others are back.
    let mut servers = microlambda::natsd::start_cluster(None, 3, &Default::default()).expect("nats cluster");
    servers[1].kill();
    servers[2].kill();
    let url = servers[0].url();
    let auth = microlambda::bus::Auth::default();
    let connecting =
        tokio::spawn(async move { Bus::connect_replicas(&url, "early", Duration::from_secs(1), &auth, 3).await });
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!connecting.is_finished(), "connected (or gave up) while JetStream had no quorum");
    let back = Instant::now();
    for s in &mut servers[1..] {
        s.start_again().expect("server back");
    }
    let bus = tokio::time::timeout(Duration::from_secs(60), connecting)
        .await
        .expect("still connecting a minute after the quorum came back")
        .unwrap()
        .expect("connect once JetStream answers");
    eprintln!("connected {:?} after the quorum came back", back.elapsed());
    // The streams it made have the replicas asked for.
    let js = jetstream(&servers[0].url()).await;
    let mut s = js.get_stream("KV_ml_jobs").await.expect("jobs bucket");
    assert_eq!(s.info().await.unwrap().config.num_replicas, 3);
    drop(bus);
}
