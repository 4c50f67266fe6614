//! `docker-compose.yml` as real containers: the image `make images` builds, the mesh up under a compose
//! project of its own (a unique name, NATS published on a free loopback port of the host), jobs submitted
//! from the host (with `microlambda submit` and with nats-py), their exact outputs, a job moved between
//! containers by a radio spike and shown by the dashboard service, Prometheus scraping every node and
//! placement, and the project taken down with its volumes whatever happens. The mesh is secured as compose
//! makes it (its own identities, in its own `auth` volume): the test connects as its ops identity, and as its
//! client from the command line and nats-py, each seed printed by `compose run auth auth seed`. Chaos across the containers: a node killed (`docker kill`), frozen (`docker pause`) and cut off from NATS
//! (`docker network disconnect`) while it runs a job, the placement leader killed, the nats-server killed and
//! restarted; each run loses no job, completes each once, with the output of an uninterrupted run.
//! Needs a Docker engine, Compose (`docker compose` or `docker-compose`) and the images: ignored by a plain
//! `cargo nextest run`, run by `make test-compose` (which builds the images first), `make test`'s fourth phase.
mod common;

use common::{final_record, next_event, node_of, reference_output, submit_body, walker_input};
use futures::StreamExt;
use microlambda::bus::{Auth, Bus, Subscriber};
use microlambda::wire::{EventKind, JobEvent, LoadReport};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const IMAGE: &str = "microlambda:dev";

/// The JetStream replicas the compose mesh creates its streams and buckets with (`MICROLAMBDA_NATS_REPLICAS`
/// in docker-compose.yml): the test's own connections create any that are missing the same way, so whoever
/// comes first, no one meets a stream "already in use with a different configuration".
const REPLICAS: usize = 3;

/// The mesh services (the loadgen's scenario runs a minute: not started here).
const MESH: &[&str] = &["nats", "nats-2", "nats-3", "placement", "placement-2", "node-1", "node-2", "node-3"];

/// Settings of every mesh container in the chaos tests (`MICROLAMBDA_<SECTION>__<KEY>`), so that the mesh
/// reacts within seconds: a node silent for 3 reports of 500 ms is gone, a dead leader's lease expires after
/// 1 s, running jobs are checkpointed every 500 ms.
const CHAOS: &[(&str, &str)] = &[
    ("PLACEMENT__REPORT_INTERVAL_MS", "500"),
    ("PLACEMENT__MISSED_REPORTS", "3"),
    ("PLACEMENT__COOLDOWN_MS", "300"),
    ("PLACEMENT__ORPHAN_GRACE_MS", "1500"),
    ("PLACEMENT__LEASE_MS", "1000"),
    ("NODE__REPORT_INTERVAL_MS", "500"),
    ("NODE__CHECKPOINT_INTERVAL_MS", "500"),
    ("NODE__COMMIT_RETRY_MS", "30000"),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `docker compose` when the plugin is there, else the standalone `docker-compose`.
fn compose_program() -> Vec<String> {
    let plugin = Command::new("docker").args(["compose", "version"]).output();
    if plugin.is_ok_and(|o| o.status.success()) {
        vec!["docker".into(), "compose".into()]
    } else {
        vec!["docker-compose".into()]
    }
}

/// `docker ARGS`, which must succeed: its stdout.
fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(out.status.success(), "docker {args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A compose project that is taken down (`down -v`: containers, network, named volumes) when dropped, so a
/// failing assertion or a panic leaves nothing behind.
struct Project {
    program: Vec<String>,
    name: String,
    /// The host ports of the three nats servers (`nats` first).
    ports: [u16; 3],
    /// Free loopback ports for the prometheus and dashboard services.
    prometheus_port: u16,
    dashboard_port: u16,
    /// A second compose file with settings for every mesh service ([`Project::with_settings`]).
    settings: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Project {
    /// A project named `<prefix><pid>x<nanos>` (lower-case letters and digits: compose keeps it as it is).
    fn new(prefix: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("{prefix}{}x{nanos}", std::process::id());
        // Free loopback ports for the nats services (the host's 4222 may be a testbed's).
        let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (ports, prometheus_port, dashboard_port) = ([free(), free(), free()], free(), free());
        let dir = tempfile::tempdir().unwrap();
        Project { program: compose_program(), name, ports, prometheus_port, dashboard_port, settings: None, _dir: dir }
    }

    /// Give every mesh service (placements and nodes) these settings, e.g. `("NODE__SLOTS", "4")`.
    fn with_settings(mut self, env: &[(&str, &str)]) -> Self {
        let mut yaml = String::from("services:\n");
        for service in MESH.iter().filter(|s| !s.starts_with("nats")) {
            yaml.push_str(&format!("  {service}:\n    environment:\n"));
            for (k, v) in env {
                yaml.push_str(&format!("      MICROLAMBDA_{k}: \"{v}\"\n"));
            }
        }
        let path = self._dir.path().join("settings.yml");
        std::fs::write(&path, yaml).unwrap();
        self.settings = Some(path);
        self
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.program[0]);
        cmd.args(&self.program[1..]).args(["-p", &self.name, "-f"]).arg(root().join("docker-compose.yml"));
        if let Some(s) = &self.settings {
            cmd.arg("-f").arg(s);
        }
        let out = cmd
            .args(args)
            .current_dir(root())
            .env("MICROLAMBDA_NATS_PORT", self.ports[0].to_string())
            .env("MICROLAMBDA_NATS_PORT_2", self.ports[1].to_string())
            .env("MICROLAMBDA_NATS_PORT_3", self.ports[2].to_string())
            .env("MICROLAMBDA_PROMETHEUS_PORT", self.prometheus_port.to_string())
            .env("MICROLAMBDA_DASHBOARD_PORT", self.dashboard_port.to_string())
            .output()
            .unwrap_or_else(|e| panic!("{:?}: {e}", self.program));
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "compose {args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The `nats` server's URL on the host (what the README's commands give).
    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.ports[0])
    }

    /// The three servers' URLs on the host: a client that must survive one server's loss lists them all (the
    /// cluster tells it the others by their service names, which do not resolve on the host).
    fn urls(&self) -> Vec<String> {
        self.ports.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect()
    }

    /// The container id of a service.
    fn container(&self, service: &str) -> String {
        let id = self.ok(&["ps", "-q", service]).trim().to_string();
        assert!(!id.is_empty(), "no container for {service}");
        id
    }

    /// The project's network (compose's default one).
    fn network(&self) -> String {
        format!("{}_default", self.name)
    }

    /// A file with the nkey seed of the mesh's identity `name` (`ops`, `client`, ...), as the `auth` service
    /// prints it (the mesh must have been up: its first start makes the identities).
    fn nkey(&self, name: &str) -> PathBuf {
        let path = self._dir.path().join(format!("{name}.nk"));
        if !path.is_file() {
            let seed = self.ok(&["run", "--rm", "-T", "--no-deps", "auth", "auth", "seed", name]);
            assert!(seed.trim().starts_with("SU"), "not a user seed for {name}: {seed}");
            std::fs::write(&path, seed).unwrap();
        }
        path
    }

    /// The mesh's CA certificate (the servers speak TLS only), as the `auth` service prints it.
    fn ca(&self) -> PathBuf {
        let path = self._dir.path().join("ca.pem");
        if !path.is_file() {
            let pem = self.ok(&["run", "--rm", "-T", "--no-deps", "auth", "auth", "ca"]);
            assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "not a certificate: {pem}");
            std::fs::write(&path, pem).unwrap();
        }
        path
    }

    /// The credentials of the mesh's identity `name`, trusting the mesh's CA.
    fn auth(&self, name: &str) -> Auth {
        Auth { nkey: Some(self.nkey(name)), tls_ca: Some(self.ca()), ..Default::default() }
    }

    /// The host's connection to the compose mesh as its ops identity, as its services make theirs (same
    /// replicas).
    async fn connect(&self, name: &str, timeout: Duration) -> Bus {
        Bus::connect_replicas(&self.urls().join(","), name, timeout, &self.auth("ops"), REPLICAS).await.unwrap()
    }

    /// The mesh up (the image must exist: `make images`), and a connection from the host once placement sees
    /// the three nodes.
    async fn up(&self) -> Bus {
        let image = Command::new("docker").args(["image", "inspect", IMAGE]).output().expect("docker");
        assert!(image.status.success(), "no image {IMAGE}: run `make images` (or `make test-compose`)");
        let mut args = vec!["up", "-d", "--no-build"];
        args.extend(MESH);
        self.ok(&args);
        let bus = self.connect("compose-docker-test", Duration::from_secs(5)).await;
        wait_nodes(&bus, 3, Duration::from_secs(90)).await;
        bus
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What the containers said, for the failure's report.
            let logs = self.run(&["logs", "--no-color", "--tail", "40"]);
            eprintln!("{}", String::from_utf8_lossy(&logs.stdout));
        }
        let down = self.run(&["down", "-v", "--remove-orphans", "-t", "3"]);
        if !down.status.success() {
            eprintln!("compose down -v failed: {}", String::from_utf8_lossy(&down.stderr));
        }
    }
}

/// Wait until placement knows `n` nodes, or panic after `limit`.
async fn wait_nodes(bus: &Bus, n: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(s) = bus.nodes::<microlambda::actors::placement::NodesSnapshot>().await {
            if s.nodes.len() == n {
                return;
            }
        }
        assert!(Instant::now() < deadline, "placement did not see {n} nodes within {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every job event of the mesh from before the first submission on, kept.
struct Watch {
    sub: Subscriber,
    seen: Vec<JobEvent>,
}

impl Watch {
    async fn new(bus: &Bus) -> Self {
        Watch { sub: bus.subscribe_all_events().await.unwrap(), seen: Vec::new() }
    }

    /// The first event from now on that matches `want`, or panic after `limit`.
    async fn until(&mut self, limit: Duration, want: impl Fn(&JobEvent) -> bool) -> JobEvent {
        let evs = common::until(&mut self.sub, limit, want).await;
        let last = evs.last().unwrap().clone();
        self.seen.extend(evs);
        last
    }

    /// Events for `d`.
    async fn listen(&mut self, d: Duration) -> Vec<JobEvent> {
        let end = Instant::now() + d;
        let mut got = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            if let Some(e) = next_event(&mut self.sub, left).await {
                got.push(e);
            }
        }
        self.seen.extend(got.iter().cloned());
        got
    }

    /// Completions per job (events seen so far and until every job of `want` has one, or `limit`).
    async fn completions(&mut self, want: &HashMap<String, Value>, limit: Duration) -> HashMap<String, usize> {
        let deadline = Instant::now() + limit;
        loop {
            let done = completions(&self.seen);
            if want.keys().all(|j| done.contains_key(j)) {
                return done;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { return done };
            if let Some(e) = next_event(&mut self.sub, left).await {
                self.seen.push(e);
            }
        }
    }
}

/// Completed events per job, each with its node.
fn completions(events: &[JobEvent]) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for e in events {
        if matches!(e.kind, EventKind::Completed { .. }) {
            *n.entry(e.job_id.clone()).or_default() += 1;
        }
    }
    n
}

/// `n` jobs of ~`secs` seconds each (checkpointed on the way), submitted from the host at once.
async fn submit_jobs(bus: &Bus, prefix: &str, n: u64, secs: u64) -> Expected {
    let mut runs = Vec::new();
    for i in 0..n {
        let job_id = format!("{prefix}-{i}");
        let input = walker_input(1000 + i, secs * 20, 0.05);
        // A mesh just up may refuse at first (its JetStream still electing leaders: CI saw one such
        // refusal); a retry with the same job id is idempotent.
        let (took, refusals) = submit_until_accepted(bus, &submit_body(&job_id, &input), Duration::from_secs(30)).await;
        if !refusals.is_empty() {
            eprintln!("{job_id}: accepted after {took:?} and {} refusals: {refusals:?}", refusals.len());
        }
        runs.push((job_id, std::thread::spawn(move || reference_output(common::WALKER, &input))));
    }
    Expected(runs)
}

/// The outputs of the jobs' uninterrupted runs, made beside the mesh's (each takes the job's seconds).
struct Expected(Vec<(String, std::thread::JoinHandle<Value>)>);

impl Expected {
    /// Job id -> output, once every reference run has ended.
    fn outputs(self) -> HashMap<String, Value> {
        self.0.into_iter().map(|(j, h)| (j, h.join().expect("reference run"))).collect()
    }
}

/// The node running `job_id` once it has committed a periodic checkpoint there (the fault then lands
/// mid-run, with progress to keep).
async fn running_on(watch: &mut Watch, job_id: &str) -> String {
    let ck = watch
        .until(Duration::from_secs(30), |e| {
            e.job_id == job_id && matches!(&e.kind, EventKind::Checkpointed { mode, .. } if mode == "continue")
        })
        .await;
    node_of(&ck).unwrap().to_string()
}

/// 0 lost, 0 duplicated, exact outputs: every job of `want` completed once in the events, with its exact
/// output, and its record says the same.
async fn exactly_once(bus: &Bus, watch: &mut Watch, want: &HashMap<String, Value>) {
    let done = watch.completions(want, Duration::from_secs(90)).await;
    // Late duplicates would show here.
    watch.listen(Duration::from_secs(2)).await;
    let done_after = completions(&watch.seen);
    let lost: Vec<&String> = want.keys().filter(|j| !done.contains_key(*j)).collect();
    assert!(lost.is_empty(), "never completed: {lost:?}\n{:#?}", watch.seen);
    let twice: Vec<(&String, &usize)> = done_after.iter().filter(|(j, &c)| c > 1 && want.contains_key(*j)).collect();
    assert!(twice.is_empty(), "completed more than once: {twice:?}\n{:#?}", watch.seen);
    for e in &watch.seen {
        if let EventKind::Completed { output, .. } = &e.kind {
            assert_eq!(Some(output), want.get(&e.job_id), "wrong output for {}", e.job_id);
        }
        assert!(!matches!(e.kind, EventKind::Failed { .. }), "a job failed: {e:?}");
    }
    for (job_id, out) in want {
        let rec = final_record(bus, job_id, Duration::from_secs(10)).await;
        assert_eq!((&rec["state"], &rec["output"]), (&Value::from("completed"), out), "{job_id}: {rec}");
    }
}

/// The node's load reports from now on until one lists none of the jobs of `want` (its copies of them are
/// gone: fenced, or never there), or panic after `limit`. True when a report listed one first (the node came
/// back still holding a copy).
async fn drops_its_copies(loads: &mut Subscriber, node: &str, want: &HashMap<String, Value>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut held = false;
    loop {
        let left = deadline.checked_duration_since(Instant::now()).unwrap_or_default();
        let m = tokio::time::timeout(left, loads.next())
            .await
            .unwrap_or_else(|_| panic!("{node} sent no report free of the jobs it no longer owns within {limit:?}"))
            .expect("load subscription");
        let r: LoadReport = serde_json::from_slice(&m.payload).expect("load report JSON");
        if r.node != node {
            continue;
        }
        if !r.jobs.iter().any(|j| want.contains_key(&j.job_id)) {
            return held;
        }
        held = true;
    }
}

/// Submit `body` until it is accepted (an error reply or no answer is a refusal: the job was not taken), or
/// panic after `limit`: how long it took, and the refusals.
async fn submit_until_accepted(bus: &Bus, body: &str, limit: Duration) -> (Duration, Vec<String>) {
    let t0 = Instant::now();
    let mut refusals = Vec::new();
    loop {
        match bus.submit_raw::<Value>(body.to_string().into_bytes().into()).await {
            Ok(r) if r["status"] == "accepted" => return (t0.elapsed(), refusals),
            Ok(r) => refusals.push(r.to_string()),
            Err(e) => refusals.push(e.to_string()),
        }
        if t0.elapsed() > limit {
            let mut kinds = refusals.clone();
            kinds.dedup();
            panic!("not accepted within {limit:?}: {} refusals, {kinds:?}", refusals.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The node a job completed on, from the events.
fn completed_on<'a>(events: &'a [JobEvent], job_id: &str) -> Option<&'a str> {
    events.iter().find_map(|e| match &e.kind {
        EventKind::Completed { node, .. } if e.job_id == job_id => Some(node.as_str()),
        _ => None,
    })
}

#[tokio::test]
#[ignore = "needs Docker, Compose and the images: make test-compose"]
async fn a_job_submitted_from_the_host_runs_in_the_compose_mesh() {
    let project = Project::new("mlsmoke");
    // The mesh as compose starts it (default settings) without the loadgen; --no-build: the image is given.
    let _bus = project.up().await;

    // The mesh is secured: with no identity, or one it does not know, no one gets in.
    let stranger = tempfile::tempdir().unwrap();
    let unknown = microlambda::auth::AuthDir::create(stranger.path(), &[("ops".into(), microlambda::bus::Role::Ops)])
        .unwrap()
        .auth("ops");
    let ca = project.ca();
    let strangers = [
        ("no identity", Auth { tls_ca: Some(ca.clone()), ..Default::default() }, "refused this identity"),
        ("an unknown nkey", Auth { tls_ca: Some(ca.clone()), ..unknown }, "refused this identity"),
        ("a client not trusting the mesh's CA", Auth { tls_ca: None, ..project.auth("client") }, "requires TLS"),
    ];
    for (who, auth, why) in strangers {
        let r = Bus::connect_replicas(&project.url(), "stranger", Duration::from_secs(2), &auth, REPLICAS).await;
        let e = r.err().unwrap_or_else(|| panic!("{who} connected to the compose mesh"));
        assert!(e.to_string().contains(why), "{who}: {e}");
    }

    // The README's command, against the published port, from the host, as the client identity whose seed
    // `compose run auth auth seed client` prints (what the `connect` service says).
    let source = std::fs::read_to_string(root().join("examples/job.py")).unwrap();
    let input = serde_json::json!({"n": 1000});
    let client = project.nkey("client");
    let out = Command::new(env!("CARGO_BIN_EXE_microlambda"))
        .current_dir(root())
        .args(["submit", "examples/job.py", "--input", &input.to_string(), "--wait", "--nats", &project.url()])
        .arg("--nkey")
        .arg(&client)
        .arg("--tls-ca")
        .arg(&ca)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "submit: {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(got, common::reference_output(&source, &input));

    // What `docker compose up` says first: the URL a client on the host connects to, this project's port.
    let said = project.ok(&["up", "--no-build", "--no-deps", "--no-color", "connect"]);
    assert!(said.contains(&format!("--nats {}", project.url())), "{said}");
    assert!(said.contains("auth seed client > client.nk"), "{said}");
    assert!(said.contains("auth ca > ca.pem"), "{said}");

    // A client in another language from the host: nats-py (tests/client.py) submits, follows and reads a job.
    let python = root().join(".venv/bin/python");
    let out = Command::new(&python)
        .arg(root().join("tests/client.py"))
        .arg(project.url())
        .arg(&client)
        .arg(&ca)
        .output()
        .expect("nats-py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "client.py: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[1]["event"], "completed", "{stdout}");
    assert_eq!(lines[2]["output"], serde_json::json!({"hello": "from nats-py"}), "{stdout}");

    // Jobs run as the image's unprivileged `job` user, who can read neither the mesh's identities and key nor
    // the node's environment, in a container limited to the CPU a BBU spares (1 core).
    let probe = "import os\n\ndef reads(path):\n    try:\n        open(path, 'rb').read()\n        return 'read'\n    except \
                 OSError as e:\n        return type(e).__name__\n\ndef main(_):\n    return {'uid': os.getuid(), 'key': \
                 reads('/auth/mesh.key'), 'seed': reads('/auth/ops.nk'), 'node_environ': reads('/proc/1/environ')}\n";
    // A job module submitted from the host as the client, its output.
    let run = |name: &str, source: &str| -> Value {
        let file = stranger.path().join(name);
        std::fs::write(&file, source).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_microlambda"))
            .args(["submit", "--wait", "--nats", &project.url(), "--nkey"])
            .arg(&client)
            .arg("--tls-ca")
            .arg(&ca)
            .arg(&file)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    };
    let seen = run("probe.py", probe);
    let denied = Value::from("PermissionError");
    assert_eq!(seen["uid"], 10002, "{seen}");
    assert_eq!((&seen["key"], &seen["seed"], &seen["node_environ"]), (&denied, &denied, &denied), "{seen}");
    let cpus = docker(&["inspect", "-f", "{{.HostConfig.NanoCpus}}", &project.container("node-1")]);
    assert_eq!(cpus.trim(), "1000000000");
    // A fork bomb stops at the job user's process limit (512, all node containers together), and its processes
    // end with the job: the job user's processes on this host (containers share its kernel) come back to what
    // they were.
    let before = processes_of(10002);
    let bomb = "import os, time\n\ndef main(_):\n    n = 0\n    try:\n        while n < 5000:\n            if os.fork() \
                == 0:\n                time.sleep(120)\n                os._exit(0)\n            n += 1\n    except OSError as e:\n        \
                return {'forked': n, 'stopped_by': type(e).__name__}\n    return {'forked': n, 'stopped_by': None}\n";
    let got = run("bomb.py", bomb);
    assert_eq!(got["stopped_by"], "BlockingIOError", "{got}");
    assert!(got["forked"].as_u64().is_some_and(|n| n > 0 && n < 512), "{got}");
    let settled = eventually(Duration::from_secs(15), || async {
        let now = processes_of(10002);
        (now <= before + 2).then_some(now)
    })
    .await;
    assert!(
        settled.is_some(),
        "the bomb's processes outlived it: {} of uid 10002, {before} before",
        processes_of(10002)
    );

    // A radio spike moves a running job to another container; the dashboard shows the move.
    project.ok(&["up", "-d", "--no-build", "dashboard"]);
    let bus = project.connect("smoke", Duration::from_secs(5)).await;
    let mut watch = Watch::new(&bus).await;
    let input = walker_input(42, 160, 0.05);
    let r: Value = bus.submit_raw(submit_body("smoke-move", &input).into_bytes().into()).await.unwrap();
    assert_eq!(r["status"], "accepted", "{r}");
    let want = std::thread::spawn(move || reference_output(common::WALKER, &input));
    let from = running_on(&mut watch, "smoke-move").await;
    bus.publish_radio(&from, 0.95).await.unwrap();
    let done = watch.until(Duration::from_secs(90), |e| e.job_id == "smoke-move" && e.is_final()).await;
    let EventKind::Completed { node, output } = &done.kind else { panic!("{done:?}") };
    assert_ne!(node, &from, "the job stayed on the hot node");
    assert_eq!(output, &want.join().unwrap());
    let addr = format!("127.0.0.1:{}", project.dashboard_port);
    let shown = eventually(Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(&addr).await.ok()?;
        let (status, body) = common::http_get(&addr, "/api/state").await;
        let state: Value = serde_json::from_str(&body).ok()?;
        let moved =
            state["migrations"].as_array()?.iter().any(|m| m["job_id"] == "smoke-move" && m["from"] == from.as_str());
        (status == 200 && moved).then_some(state)
    })
    .await;
    assert!(shown.is_some(), "the dashboard never showed smoke-move leaving {from}");

    // Prometheus scrapes the three nodes and both placements, and has the five jobs' completions (the README's,
    // the probe's, the fork bomb's, nats-py's and the moved one).
    project.ok(&["up", "-d", "--no-build", "prometheus"]);
    let addr = format!("127.0.0.1:{}", project.prometheus_port);
    let scraped = eventually(Duration::from_secs(60), || async {
        tokio::net::TcpStream::connect(&addr).await.ok()?;
        let up = prometheus_value(&addr, "count(up==1)").await;
        let done = prometheus_value(&addr, "sum(microlambda_node_jobs_completed_total)").await;
        (up == "5" && done == "5").then_some(())
    })
    .await;
    assert!(scraped.is_some(), "prometheus never had 5 targets up and the 5 jobs' completions");
}

/// How many processes of user `uid` this host runs (those of every container included).
fn processes_of(uid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.flatten()
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter(|status| {
            let real = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().next());
            real == Some(uid.to_string().as_str())
        })
        .count()
}

/// `f`'s first `Some` within `limit` (tried every 500 ms).
async fn eventually<T, F, Fut>(limit: Duration, f: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(v) = f().await {
            return Some(v);
        }
    }
    None
}

/// The value of a Prometheus query's one result (empty when there is none yet).
async fn prometheus_value(addr: &str, query: &str) -> String {
    let q: String = query.bytes().map(|b| format!("%{b:02X}")).collect();
    let (status, body) = common::http_get(addr, &format!("/api/v1/query?query={q}")).await;
    if status != 200 {
        return format!("HTTP {status}");
    }
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["data"]["result"][0]["value"][1].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
#[ignore = "needs Docker, Compose and the images: make test-compose"]
async fn a_killed_node_container_s_job_finishes_elsewhere_with_its_exact_output() {
    let project = Project::new("mlkill").with_settings(CHAOS);
    let bus = project.up().await;
    let mut watch = Watch::new(&bus).await;
    let expected = submit_jobs(&bus, "kill", 3, 6).await;
    let victim = running_on(&mut watch, "kill-0").await;

    docker(&["kill", &project.container(&victim)]);
    let want = expected.outputs();
    exactly_once(&bus, &mut watch, &want).await;
    let ended = completed_on(&watch.seen, "kill-0").unwrap();
    assert_ne!(ended, victim, "{:#?}", watch.seen);
    // It went on from a checkpoint the dead node had committed, not from the start.
    let resumed = watch.seen.iter().any(|e| {
        e.job_id == "kill-0" && matches!(&e.kind, EventKind::Started { node, resumed_from: Some(_) } if node == ended)
    });
    assert!(resumed, "kill-0 restarted from scratch on {ended}: {:#?}", watch.seen);
}

/// A node cut off from the mesh (`cut`) while it runs a job: placement declares it lost and its jobs finish
/// elsewhere; back (`heal`), it drops its stale copies and publishes nothing about them (fencing); 0 lost,
/// 0 duplicated, exact outputs. `name` is the project's prefix and the jobs'.
async fn a_node_cut_off_and_back_stays_silent(name: &str, cut: impl Fn(&Project, &str), heal: impl Fn(&Project, &str)) {
    let project = Project::new(&format!("ml{name}")).with_settings(CHAOS);
    let bus = project.up().await;
    let mut watch = Watch::new(&bus).await;
    // Long enough that the stale copies still have work left when they are back.
    let expected = submit_jobs(&bus, name, 3, 10).await;
    let job = format!("{name}-0");
    let victim = running_on(&mut watch, &job).await;
    let container = project.container(&victim);

    cut(&project, &container);
    let lost =
        |e: &JobEvent| e.job_id == job && matches!(&e.kind, EventKind::Parked { reason, .. } if reason == "node_lost");
    watch.until(Duration::from_secs(20), lost).await;
    let want = expected.outputs();
    let done = watch.completions(&want, Duration::from_secs(90)).await;
    assert!(done.contains_key(&job), "{job} did not finish while {victim} was cut off: {:#?}", watch.seen);
    assert_ne!(completed_on(&watch.seen, &job), Some(victim.as_str()));
    let back = watch.seen.len();
    let mut loads = bus.subscribe_loads().await.unwrap();
    let healed = Instant::now();
    heal(&project, &container);
    // Its workers still hold their copies: each is stopped at its next write or by placement's fence, silently.
    let held = drops_its_copies(&mut loads, &victim, &want, Duration::from_secs(60)).await;
    eprintln!("{name}: {victim} back, holding a stale copy: {held}, without one after {:?}", healed.elapsed());
    let after = watch.listen(Duration::from_secs(4)).await;
    assert!(
        after.iter().all(|e| !want.contains_key(&e.job_id) || node_of(e) != Some(victim.as_str())),
        "{victim} spoke about a job it no longer owns once back: {:#?}",
        &watch.seen[back..]
    );
    exactly_once(&bus, &mut watch, &want).await;
    // And it is back in the mesh.
    wait_nodes(&bus, 3, Duration::from_secs(60)).await;
}

/// Fencing: a frozen node (the whole container, as a stalled BBU) whose jobs were taken and finished
/// elsewhere says nothing about them when it wakes.
#[tokio::test]
#[ignore = "needs Docker, Compose and the images: make test-compose"]
async fn a_paused_node_container_never_publishes_for_its_moved_job_after_unpause() {
    a_node_cut_off_and_back_stays_silent(
        "pause",
        |_, container| {
            docker(&["pause", container]);
        },
        |_, container| {
            docker(&["unpause", container]);
        },
    )
    .await;
}

#[tokio::test]
#[ignore = "needs Docker, Compose and the images: make test-compose"]
async fn a_node_container_cut_off_from_nats_loses_its_jobs_to_the_mesh_and_stays_silent_when_back() {
    a_node_cut_off_and_back_stays_silent(
        "net",
        |p, container| {
            docker(&["network", "disconnect", &p.network(), container]);
        },
        // Back on the network under its service name (the other containers find it as compose named it).
        |p, container| {
            let service =
                docker(&["inspect", "-f", "{{index .Config.Labels \"com.docker.compose.service\"}}", container]);
            docker(&["network", "connect", "--alias", service.trim(), &p.network(), container]);
        },
    )
    .await;
}

#[tokio::test]
#[ignore = "needs Docker, Compose and the images: make test-compose"]
async fn the_standby_placement_container_takes_over_when_the_leader_is_killed() {
    let project = Project::new("mllead").with_settings(CHAOS);
    let bus = project.up().await;
    let mut watch = Watch::new(&bus).await;
    let expected = submit_jobs(&bus, "lead", 2, 6).await;
    running_on(&mut watch, "lead-0").await;

    // The leader: the placement container whose log says it took the lease the bucket names.
    let lease = bus.lease(Duration::from_millis(1000)).await.unwrap();
    let holder = lease.holder().await.unwrap().expect("a leader");
    let leader = ["placement", "placement-2"]
        .into_iter()
        .find(|s| project.ok(&["logs", "--no-color", s]).contains(&holder))
        .unwrap_or_else(|| panic!("no placement container logged taking the lease as {holder}"));
    let killed = Instant::now();
    docker(&["kill", &project.container(leader)]);

    // Jobs keep being placed: the standby answers a submission and places it.
    let probe = project.connect("probe", Duration::from_millis(500)).await;
    let input = walker_input(77, 20, 0.05);
    let body = submit_body("lead-after", &input);
    let took = loop {
        let r: Result<Value, _> = probe.submit_raw(body.clone().into_bytes().into()).await;
        if r.is_ok_and(|r| r["status"] == "accepted") {
            break killed.elapsed();
        }
        assert!(killed.elapsed() < Duration::from_secs(15), "no placement answers after {leader} was killed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("leader {leader} killed: the standby took submissions after {took:?}");
    let mut want = expected.outputs();
    want.insert("lead-after".into(), reference_output(common::WALKER, &input));
    exactly_once(&bus, &mut watch, &want).await;
    let new = lease.holder().await.unwrap().expect("a leader");
    assert_ne!(new, holder);
}

/// R3 on the three-server cluster: the server that leads the jobs bucket is killed mid-run; the mesh goes on
/// (a job submitted while it is down is placed and completes) and, once it is back, no job is lost or doubled.
#[tokio::test]
#[ignore = "needs Docker, Compose and the images: make test-compose"]
async fn a_killed_nats_server_of_three_leaves_the_mesh_working_and_loses_no_job() {
    let project = Project::new("mlnats").with_settings(CHAOS);
    let bus = project.up().await;
    // Every stream and bucket of the mesh is on the three servers; the jobs bucket's leader is the victim.
    let seed = Auth::read_seed(&project.nkey("ops")).unwrap();
    let nc = async_nats::ConnectOptions::with_nkey(seed)
        .add_root_certificates(project.ca())
        .require_tls(true)
        .connect(project.urls().iter().map(|u| u.parse().unwrap()).collect::<Vec<async_nats::ServerAddr>>())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(nc);
    let mut streams = Vec::new();
    for name in ["KV_ml_jobs", "KV_ml_functions", "KV_ml_lease", "ML_CKPT", "OBJ_ml_ckpt"] {
        let info = js.get_stream(name).await.unwrap_or_else(|e| panic!("{name}: {e}")).info().await.unwrap().clone();
        streams.push((name, info.config.num_replicas));
    }
    assert!(streams.iter().all(|(_, r)| *r == 3), "not all R3: {streams:?}");
    let mut jobs = js.get_stream("KV_ml_jobs").await.unwrap();
    let leader =
        jobs.info().await.unwrap().cluster.clone().and_then(|c| c.leader).expect("a leader of the jobs bucket");
    let mut watch = Watch::new(&bus).await;
    let expected = submit_jobs(&bus, "nats", 3, 8).await;
    running_on(&mut watch, "nats-0").await;

    let victim = project.container(&leader);
    docker(&["kill", &victim]);
    // With one server of three down, the mesh still takes and runs a job (its streams have a quorum of two),
    // once the jobs bucket has elected a new leader: until then a submission is refused (an error reply, never
    // an acceptance that is then lost), and the client submits again.
    let input = walker_input(99, 20, 0.05);
    let body = submit_body("nats-during", &input);
    let (took, refusals) = submit_until_accepted(&bus, &body, Duration::from_secs(30)).await;
    eprintln!("{leader} killed: a submission accepted after {took:?}, {} refused before: {refusals:?}", refusals.len());
    let during = HashMap::from([("nats-during".to_string(), reference_output(common::WALKER, &input))]);
    for (job_id, out) in &during {
        let rec = final_record(&bus, job_id, Duration::from_secs(60)).await;
        assert_eq!((&rec["state"], &rec["output"]), (&Value::from("completed"), out), "{job_id}: {rec}");
    }
    docker(&["start", &victim]);
    let want = expected.outputs();
    // Events sent by a client while its server was going down can be lost (core NATS): the records are the truth.
    for (job_id, out) in &want {
        let rec = final_record(&bus, job_id, Duration::from_secs(90)).await;
        assert_eq!((&rec["state"], &rec["output"]), (&Value::from("completed"), out), "{job_id}: {rec}");
    }
    watch.listen(Duration::from_secs(2)).await;
    let twice: Vec<(String, usize)> = completions(&watch.seen).into_iter().filter(|(_, c)| *c > 1).collect();
    assert!(twice.is_empty(), "completed more than once: {twice:?}\n{:#?}", watch.seen);
    let lost = want.keys().chain(during.keys()).filter(|j| !completions(&watch.seen).contains_key(*j)).count();
    eprintln!(
        "killed {leader} (leader of KV_ml_jobs); {lost} completion events of {} missed",
        want.len() + during.len()
    );
    // The mesh places and runs a new job with the three servers back.
    let mut fresh = Watch::new(&bus).await;
    let after = submit_jobs(&bus, "nats-after", 1, 1).await.outputs();
    exactly_once(&bus, &mut fresh, &after).await;
}
