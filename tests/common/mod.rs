//! Test fixtures: a real nats-server on a free loopback port and real `microlambda` node and placement
//! processes, all killed on drop (and on test-process death, through PR_SET_PDEATHSIG).
#![allow(dead_code)]
use futures::StreamExt;
use microlambda::auth::{mesh_identities, node_identity, AuthDir};
use microlambda::bus::Bus;
use microlambda::natsd::NatsServer;
use microlambda::wire::{EventKind, JobEvent};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const REPORT_MS: u64 = 200;

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Proc {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
    /// SIGKILL now and reap.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    /// SIGTERM first, so a node stops its worker processes, then SIGKILL after a grace period.
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.0.try_wait() {
            return; // already reaped: its pid may belong to someone else now
        }
        microlambda::proc::terminate(self.0.id());
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
    }
}

pub fn spawn(args: &[String]) -> Proc {
    spawn_env(args, &[])
}

pub fn spawn_env(args: &[String], env: &[(String, String)]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_microlambda"));
    cmd.args(args).env("MICROLAMBDA_LOG", "warn").stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    microlambda::proc::die_with_parent(&mut cmd);
    Proc(cmd.spawn().expect("spawn microlambda"))
}

/// A mesh of one nats-server, a placement and some nodes.
pub struct Mesh {
    pub nodes: Vec<(String, Proc)>,
    pub placement: Option<Proc>,
    /// Standby placements.
    pub standbys: Vec<Proc>,
    pub nats: NatsServer,
    /// The other servers of a cluster ([`Mesh::start_cluster`]); `nats` is the first. Empty on one server.
    pub peers: Vec<NatsServer>,
    /// Settings given to every process (`MICROLAMBDA_<SECTION>__<KEY>`).
    pub env: Vec<(String, String)>,
    /// A secured mesh's identities ([`Mesh::start_secure`]): each process connects as its own user.
    pub auth: Option<AuthDir>,
    _auth_dir: Option<tempfile::TempDir>,
}

impl Mesh {
    pub fn nats_only() -> Self {
        Mesh {
            nodes: Vec::new(),
            placement: None,
            standbys: Vec::new(),
            nats: NatsServer::start(None).expect("nats-server (run `make setup`)"),
            peers: Vec::new(),
            // Nodes refuse to start without a key of the mesh's own.
            env: vec![("MICROLAMBDA_NODE__CHECKPOINT_KEY".into(), microlambda::auth::random_key())],
            auth: None,
            _auth_dir: None,
        }
    }

    /// A nats-server that requires the users of a mesh of `nodes` (each with its role's permissions), set up
    /// by the ops identity; no mesh process yet.
    /// Besides [`mesh_identities`], `viewer` is a client that may not deploy and `tenant-b` a second client
    /// that may (another tenant than `client`).
    pub async fn nats_secure(nodes: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let ids: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
        let mut identities = mesh_identities(&ids);
        identities.push(("viewer".into(), microlambda::bus::Role::Client { deploy: false }));
        identities.push(("tenant-b".into(), microlambda::bus::Role::Client { deploy: true }));
        let auth = AuthDir::create(&tmp.path().join("auth"), &identities).expect("auth dir");
        let nats = NatsServer::start_with(None, None, Some(&auth.server_config())).expect("nats-server");
        Bus::setup(&nats.url(), &auth.auth("ops"), Duration::from_millis(1500)).await.expect("setup as ops");
        let key = auth.mesh_key().expect("mesh key");
        Mesh {
            nodes: Vec::new(),
            placement: None,
            standbys: Vec::new(),
            nats,
            peers: Vec::new(),
            env: vec![("MICROLAMBDA_NODE__CHECKPOINT_KEY".into(), key)],
            auth: Some(auth),
            _auth_dir: Some(tmp),
        }
    }

    /// [`Mesh::start`] on a secured server: placement, nodes and [`Mesh::bus`] each connect as their own user.
    pub async fn start_secure(nodes: &[(&str, f64)], extra: &[&str], env: &[(&str, &str)]) -> Self {
        let ids: Vec<&str> = nodes.iter().map(|(n, _)| *n).collect();
        let mut m = Self::nats_secure(&ids).await;
        m.env.extend(env.iter().map(|(k, v)| (format!("MICROLAMBDA_{k}"), v.to_string())));
        m.start_placement();
        for (id, radio) in nodes {
            m.start_node(id, *radio, extra);
        }
        m
    }

    /// Every process's settings, and its identity on a secured mesh.
    fn env_as(&self, identity: &str) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        if let Some(a) = &self.auth {
            env.push(("MICROLAMBDA_NKEY".into(), a.nkey_file(identity).display().to_string()));
        }
        env
    }

    /// A connection as one of a secured mesh's identities (`client`, `ops`, `node-<id>`, `radio-<id>`...).
    pub async fn bus_as(&self, identity: &str) -> Bus {
        let auth = self.auth.as_ref().expect("a secured mesh").auth(identity);
        Bus::connect_as(&self.url(), identity, Duration::from_secs(5), &auth).await.expect("connect")
    }

    /// Like [`Mesh::start`], with settings for every process, e.g. `("PLACEMENT__COOLDOWN_MS", "300")`.
    pub fn start_env(nodes: &[(&str, f64)], extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut m = Self::nats_only();
        m.env.extend(env.iter().map(|(k, v)| (format!("MICROLAMBDA_{k}"), v.to_string())));
        m.start_placement();
        for (id, radio) in nodes {
            m.start_node(id, *radio, extra);
        }
        m
    }

    fn placement_args(&self) -> Vec<String> {
        vec![
            "placement".into(),
            format!("--nats={}", self.url()),
            format!("--report-interval-ms={REPORT_MS}"),
            "--missed-reports=3".into(),
            "--radio-threshold=0.8".into(),
        ]
    }

    pub fn start_standby(&mut self) {
        let p = spawn_env(&self.placement_args(), &self.env_as("placement"));
        self.standbys.push(p);
    }

    /// Nodes as (id, radio load); `extra` adds node flags (e.g. a job timeout).
    pub fn start(nodes: &[(&str, f64)], extra: &[&str]) -> Self {
        let mut m = Self::nats_only();
        m.start_placement();
        for (id, radio) in nodes {
            m.start_node(id, *radio, extra);
        }
        m
    }

    /// The server's URL; a cluster's every server, comma-separated (each process picks one and fails over).
    pub fn url(&self) -> String {
        std::iter::once(&self.nats).chain(&self.peers).map(NatsServer::url).collect::<Vec<_>>().join(",")
    }

    /// A mesh on a cluster of `servers` nats-servers (routes and JetStream on loopback ports, each its own
    /// store, named `nats-1`..; `natsd::start_cluster`), every stream and bucket made first with `servers`
    /// replicas, then placement, a standby and the nodes, each given every server's URL (and
    /// `MICROLAMBDA_NATS_REPLICAS`). `env` as in [`Mesh::start_env`].
    pub async fn start_cluster(servers: usize, nodes: &[(&str, f64)], extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut all = microlambda::natsd::start_cluster(None, servers, &Default::default()).expect("nats cluster");
        let nats = all.remove(0);
        let mut m = Mesh {
            nodes: Vec::new(),
            placement: None,
            standbys: Vec::new(),
            nats,
            peers: all,
            env: vec![
                ("MICROLAMBDA_NODE__CHECKPOINT_KEY".into(), microlambda::auth::random_key()),
                ("MICROLAMBDA_NATS_REPLICAS".into(), servers.to_string()),
            ],
            auth: None,
            _auth_dir: None,
        };
        m.env.extend(env.iter().map(|(k, v)| (format!("MICROLAMBDA_{k}"), v.to_string())));
        // The lease bucket's entries live as long as placement's lease.
        let lease_ms = m
            .env
            .iter()
            .find(|(k, _)| k == "MICROLAMBDA_PLACEMENT__LEASE_MS")
            .map_or(1500, |(_, v)| v.parse().expect("lease ms"));
        let auth = microlambda::bus::Auth::default();
        Bus::setup_replicas(&m.url(), &auth, Duration::from_millis(lease_ms), servers).await.expect("setup");
        m.start_placement();
        m.start_standby();
        for (id, radio) in nodes {
            m.start_node(id, *radio, extra);
        }
        m
    }

    /// Every server of the mesh (one, or a cluster's).
    pub fn servers(&mut self) -> impl Iterator<Item = &mut NatsServer> {
        std::iter::once(&mut self.nats).chain(self.peers.iter_mut())
    }

    /// The cluster's server named `name` (`nats-2`).
    pub fn server(&mut self, name: &str) -> &mut NatsServer {
        self.servers().find(|s| s.name() == Some(name)).unwrap_or_else(|| panic!("no server {name}"))
    }

    pub fn start_placement(&mut self) {
        self.placement = Some(spawn_env(&self.placement_args(), &self.env_as("placement")));
    }

    pub fn start_node(&mut self, id: &str, radio: f64, extra: &[&str]) {
        let mut args = vec![
            "node".to_string(),
            format!("--nats={}", self.url()),
            format!("--id={id}"),
            format!("--radio-load={radio}"),
            format!("--report-interval-ms={REPORT_MS}"),
        ];
        if !extra.iter().any(|a| a.starts_with("--slots")) {
            args.push("--slots=2".into());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let env = self.env_as(&node_identity(id));
        self.nodes.push((id.to_string(), spawn_env(&args, &env)));
    }

    pub fn node(&mut self, id: &str) -> &mut Proc {
        &mut self.nodes.iter_mut().find(|(n, _)| n == id).expect("node").1
    }

    /// A connection for the test itself (as ops on a secured mesh: it may do anything).
    pub async fn bus(&self) -> Bus {
        match &self.auth {
            Some(_) => self.bus_as("ops").await,
            None => Bus::connect(&self.url(), "test", Duration::from_secs(5)).await.expect("connect"),
        }
    }

    /// Wait until placement knows `n` nodes.
    pub async fn ready(&self, bus: &Bus, n: usize) {
        for _ in 0..200 {
            if let Ok(s) = bus.nodes::<microlambda::actors::placement::NodesSnapshot>().await {
                if s.nodes.len() >= n {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("placement did not see {n} nodes");
    }
}

/// The venv's Python (what workers run), for reference outputs.
pub fn python() -> std::path::PathBuf {
    microlambda::config::python_executable().expect("no venv python: set MICROLAMBDA_PYTHON or run make setup")
}

/// What plain CPython gives for `main(input)` of a module source, run uninterrupted: the reference every
/// checkpointed, moved or sliced run must match.
pub fn reference_output(source: &str, input: &serde_json::Value) -> serde_json::Value {
    let script =
        format!("{source}\n\nimport json as _j, sys as _s\n_s.stdout.write(_j.dumps(main(_j.loads(_s.argv[1]))))\n");
    let out = Command::new(python()).arg("-c").arg(script).arg(input.to_string()).output().expect("python");
    assert!(out.status.success(), "reference run failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("reference output is JSON")
}

/// The job's record once it is final (polling `jobs.status`), or panic after `limit`.
pub async fn final_record(bus: &Bus, job_id: &str, limit: Duration) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let body = serde_json::json!({ "job_id": job_id }).to_string();
        if let Ok(v) = bus.status::<serde_json::Value>(body.into_bytes().into()).await {
            if v["state"] == "completed" || v["state"] == "failed" {
                return v;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "job {job_id} not final within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The next event, or none within `limit`.
pub async fn next_event(sub: &mut microlambda::bus::Subscriber, limit: Duration) -> Option<JobEvent> {
    match tokio::time::timeout(limit, sub.next()).await {
        Ok(Some(m)) => Some(serde_json::from_slice(&m.payload).expect("event JSON")),
        _ => None,
    }
}

/// Events until one matches `want` (all of them returned), or panic after `limit`.
pub async fn until(
    sub: &mut microlambda::bus::Subscriber,
    limit: Duration,
    want: impl Fn(&JobEvent) -> bool,
) -> Vec<JobEvent> {
    let deadline = std::time::Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match next_event(sub, left).await {
            Some(e) => {
                let done = want(&e);
                seen.push(e);
                if done {
                    return seen;
                }
            }
            None => panic!("not seen within {limit:?}; events: {seen:#?}"),
        }
    }
}

/// Submit `body` (a `jobs.submit` request) while `n2` is hot so that the job starts on `n1`, then cool `n2`
/// (past its cool-down) so that it can take the job when `n1` gets hot. Returns the job's events.
pub async fn job_on_n1(mesh: &Mesh, bus: &Bus, job_id: &str, body: &str) -> microlambda::bus::Subscriber {
    mesh.ready(bus, 2).await;
    let mut events = bus.subscribe_events(job_id).await.unwrap();
    let r = submit(bus, body).await;
    assert_eq!(r["status"], "accepted", "{r}");
    let on_n1 = |e: &JobEvent| matches!(&e.kind, microlambda::wire::EventKind::Started { node, .. } if node == "n1");
    until(&mut events, Duration::from_secs(15), on_n1).await;
    bus.publish_radio("n2", 0.1).await.unwrap();
    // Past n2's cool-down (300 ms in the tests' settings) and a report.
    tokio::time::sleep(Duration::from_millis(600)).await;
    events
}

/// Submit a raw JSON body and return the reply as JSON.
pub async fn submit(bus: &Bus, body: &str) -> serde_json::Value {
    bus.submit_raw(body.to_string().into_bytes().into()).await.expect("submit reply")
}

/// Collect a job's events until the final one (or `limit`).
pub async fn events_until_final(sub: &mut microlambda::bus::Subscriber, limit: Duration) -> Vec<JobEvent> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, sub.next()).await {
        let ev: JobEvent = serde_json::from_slice(&m.payload).expect("event JSON");
        let fin = ev.is_final();
        out.push(ev);
        if fin {
            break;
        }
    }
    out
}

/// The nodes the events say the session started on.
pub fn started_on(evs: &[JobEvent]) -> Vec<String> {
    evs.iter()
        .filter_map(|e| match &e.kind {
            EventKind::Started { node, .. } => Some(node.clone()),
            _ => None,
        })
        .collect()
}

/// Set the nodes' radio loads (placement prefers the node with the lower one; 0.8 and over is evacuated).
pub async fn radio(bus: &Bus, loads: &[(&str, f64)]) {
    for (node, load) in loads {
        bus.publish_radio(node, *load).await.unwrap();
    }
    bus.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Open a session and wait for its opening reply.
pub async fn open(
    bus: &Bus,
    id: &str,
    source: &str,
    entry: &str,
    input: serde_json::Value,
) -> (microlambda::bus::Subscriber, serde_json::Value) {
    let mut events = bus.subscribe_events(id).await.unwrap();
    let body = serde_json::json!({"function": {"source": source, "entry": entry}, "input": input, "job_id": id, "session": true});
    let r = submit(bus, &body.to_string()).await;
    assert_eq!(r["status"], "accepted", "{r}");
    let reply = next_reply(&mut events, 0).await;
    (events, reply.output.unwrap_or(serde_json::Value::Null))
}

pub async fn request(bus: &Bus, id: &str, input: serde_json::Value) -> serde_json::Value {
    let body = serde_json::json!({"session": id, "input": input}).to_string();
    bus.session_request_raw::<serde_json::Value>(body.into_bytes().into()).await.expect("sessions.request reply")
}

/// The `reply` event of request `n` (panics on a reply to another request first: replies come in order).
pub async fn next_reply(events: &mut microlambda::bus::Subscriber, n: u64) -> microlambda::wire::SessionReply {
    let evs = until(events, Duration::from_secs(30), |e| matches!(e.kind, EventKind::Reply { .. })).await;
    let Some(JobEvent { kind: EventKind::Reply { reply, .. }, .. }) = evs.last() else { unreachable!() };
    assert_eq!(reply.n, n, "{evs:#?}");
    reply.clone()
}

/// A loopback port free right now (for a listener a child process opens).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `GET path` on `addr` (HOST:PORT) over plain HTTP/1.1: the status code and the body.
pub async fn http_get(addr: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("a whole answer")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("not HTTP: {text:?}"));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("{head}"));
    (status, body.to_string())
}

/// A job with state that runs ~2 s with [`walker_input`]`(_, 120, 0.02)`, mostly waiting (a checkpoint can land
/// almost anywhere in it); longer with more or longer sleeps.
pub const WALKER: &str = r#"
import random, time

def main(x):
    rng = random.Random(x["seed"])
    acc, seen = 0, []
    for i in range(x["steps"]):
        acc = (acc * 31 + rng.randrange(1000)) % 1000003
        if i % x["every"] == 0:
            seen.append(acc)
            time.sleep(x["sleep"])
    return {"acc": acc, "last": seen[-3:], "n": len(seen)}
"#;

/// [`WALKER`]'s input: `sleeps` sleeps of `sleep_s` seconds, 20 steps apart.
pub fn walker_input(seed: u64, sleeps: u64, sleep_s: f64) -> serde_json::Value {
    serde_json::json!({"seed": seed, "steps": sleeps * 20, "every": 20, "sleep": sleep_s})
}

/// A `jobs.submit` body running [`WALKER`] on `input`.
pub fn submit_body(job_id: &str, input: &serde_json::Value) -> String {
    serde_json::json!({"function": {"source": WALKER}, "input": input, "job_id": job_id}).to_string()
}

/// The node an event speaks for (the destination of a move), if any.
pub fn node_of(e: &JobEvent) -> Option<&str> {
    match &e.kind {
        EventKind::Placed { node }
        | EventKind::Started { node, .. }
        | EventKind::Checkpointed { node, .. }
        | EventKind::Reply { node, .. }
        | EventKind::Completed { node, .. } => Some(node),
        EventKind::Failed { node, .. } | EventKind::Parked { node, .. } => node.as_deref(),
        EventKind::Migrated { to, .. } => Some(to),
        EventKind::Accepted => None,
    }
}

/// The next load report (of any node) for which `want` holds, or panic after `limit`.
pub async fn report_where(bus: &Bus, limit: Duration, want: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let mut loads = bus.subscribe_loads().await.unwrap();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let m = tokio::time::timeout_at(deadline, loads.next())
            .await
            .unwrap_or_else(|_| panic!("no such load report within {limit:?}"))
            .unwrap();
        let r: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        if want(&r) {
            return r;
        }
    }
}
