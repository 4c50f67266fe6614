//! A local mesh on one machine: the embedded nats-server (unless a URL is given), a placement process and N
//! node processes (children of the same binary), stopped with their children on exit or Ctrl-C. With
//! `--demo` it submits a stream of sample jobs and shows the live load table and the results; `--scenario`
//! runs a scenario file on it ([`run_scenario`], in `testbed/scenario.rs`).
//!
//! Size: a little over 700 lines: the testbed's processes (servers, placements, nodes), their identities and
//! its demo share the one `Testbed`; the scenario runner is already apart.
use crate::actors::placement::NodesSnapshot;
use crate::auth::{mesh_identities, node_identity, AuthDir};
use crate::bus::{Auth, Bus};
use crate::client::watch::LoadTable;
use crate::client::{self, ClientError, SubmitArgs};
use crate::config::Settings;
use crate::natsd::{NatsServer, NatsdError, ServerOptions, SyncInterval};
use crate::wire::{now_ms, EventKind, JobEvent, LoadReport};
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod scenario;
mod sessions;
pub use scenario::{run_scenario, ScenarioArgs, ScenarioOutcome};

#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    #[error("embedded nats-server: {0}")]
    Natsd(#[from] NatsdError),
    #[error("cannot start {what}: {source}")]
    Spawn { what: String, source: std::io::Error },
    #[error("client: {0}")]
    Client(#[from] ClientError),
    #[error("bus: {0}")]
    Bus(#[from] crate::bus::BusError),
    #[error("{0}")]
    NotReady(String),
    #[error("identities: {0}")]
    Auth(#[from] crate::auth::AuthError),
}

/// The running processes of a testbed; dropping it stops them all.
#[derive(Debug)]
pub struct Testbed {
    pub url: String,
    pub node_ids: Vec<String>,
    children: Vec<(String, Child)>,
    /// Settings for the children, as `MICROLAMBDA_<SECTION>__<KEY>` variables.
    env: Vec<(String, String)>,
    exe: PathBuf,
    /// The identities of a secured embedded server (`testbed.secure`), each child connecting as its own.
    auth: Option<AuthDir>,
    /// The identities' directory when it is the testbed's own (a temporary one), removed on drop.
    auth_tmp: Option<PathBuf>,
    // Last: the servers stop after the processes that use them. Empty with an external NATS; more than one
    // for a cluster (`testbed.nats_servers`), named nats-1, nats-2, ...
    natsd: Vec<NatsServer>,
    /// The server a `kill_nats` of the jobs bucket's leader killed.
    killed_leader: Option<String>,
}

/// The testbed's `[node]` and `[placement]` settings as environment variables for its children (every key,
/// so a child's own config file cannot disagree with the testbed's; a nested table's keys one level down,
/// `MICROLAMBDA_NODE__LIMITS__MEMORY_MB`).
fn child_env(s: &Settings) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let sections = [("NODE", serde_json::to_value(&s.node)), ("PLACEMENT", serde_json::to_value(&s.placement))];
    for (section, value) in sections {
        let Ok(value) = value else { continue };
        env_of(&format!("MICROLAMBDA_{section}"), value, &mut out);
    }
    out
}

fn env_of(prefix: &str, value: serde_json::Value, out: &mut Vec<(String, String)>) {
    let serde_json::Value::Object(map) = value else { return };
    for (k, v) in map {
        let key = format!("{prefix}__{}", k.to_uppercase());
        let text = match v {
            serde_json::Value::Null => continue,
            serde_json::Value::Array(items) if items.is_empty() => continue,
            serde_json::Value::Object(_) => {
                env_of(&key, v, out);
                continue;
            }
            serde_json::Value::String(s) => s,
            serde_json::Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_string).unwrap_or_else(|| i.to_string()))
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        out.push((key, text));
    }
}

impl Testbed {
    /// Start the processes; `exe` is the `microlambda` binary. The embedded server listens on a free port.
    pub fn start(settings: &Settings, nats: Option<&str>, exe: &Path) -> Result<Self, TestbedError> {
        Self::start_on(settings, nats, exe, None)
    }

    /// [`Testbed::start`] with the embedded server on `port` when that is free.
    pub fn start_on(
        settings: &Settings,
        nats: Option<&str>,
        exe: &Path,
        port: Option<u16>,
    ) -> Result<Self, TestbedError> {
        Self::start_in(settings, nats, exe, port, None)
    }

    /// [`Testbed::start_on`] keeping a secured server's identities in `auth_dir` (made when missing, kept
    /// after); without it in a temporary directory of its own.
    pub fn start_in(
        settings: &Settings,
        nats: Option<&str>,
        exe: &Path,
        port: Option<u16>,
        auth_dir: Option<&Path>,
    ) -> Result<Self, TestbedError> {
        let node_ids: Vec<String> = (0..settings.testbed.nodes).map(|i| format!("node-{}", i + 1)).collect();
        let mut settings = settings.clone();
        let (auth, auth_tmp) = match nats {
            Some(_) => (None, None),
            None if !settings.testbed.secure => (None, None),
            None => {
                let tmp = std::env::temp_dir().join(format!(
                    "microlambda-auth-{}-{}",
                    std::process::id(),
                    rand::random::<u32>()
                ));
                let dir = auth_dir.map_or(tmp.clone(), Path::to_path_buf);
                let tls_hosts = match settings.testbed.tls {
                    true => vec!["127.0.0.1".to_string(), "localhost".to_string()],
                    false => Vec::new(),
                };
                let server = crate::auth::ServerSettings { tls_hosts, ..Default::default() };
                let a = AuthDir::create_with(&dir, &mesh_identities(&node_ids), &server)?;
                (Some(a), auth_dir.is_none().then_some(tmp))
            }
        };
        // Secure by default: the mesh's own key unless the settings give one (an unsecured testbed: a key of
        // this run's).
        if crate::config::is_public_key(&settings.node.checkpoint_key) {
            settings.node.checkpoint_key = match &auth {
                Some(a) => a.mesh_key()?,
                None => crate::auth::random_key(),
            };
        }
        let servers = settings.testbed.nats_servers.max(1);
        let natsd = match nats {
            Some(_) => Vec::new(),
            None => {
                let opts = ServerOptions {
                    config: auth.as_ref().map(|a| a.server_config()),
                    sync: SyncInterval::parse(&settings.testbed.nats_sync_interval)?,
                    ..Default::default()
                };
                let exe = settings.testbed.nats_server.as_deref();
                if servers == 1 {
                    vec![NatsServer::start_opts(exe, port, &opts)?]
                } else {
                    crate::natsd::start_cluster(exe, servers, &opts)?
                }
            }
        };
        let url = match nats {
            Some(u) => u.to_string(),
            None => crate::natsd::cluster_url(&natsd),
        };
        // The streams and buckets are made first, with as many replicas as servers: by the ops identity on a
        // secured server; on an open cluster too, so that no process makes them with fewer.
        let replicas = if nats.is_some() { crate::bus::replicas()? } else { servers };
        if auth.is_some() || replicas > 1 {
            let ops = auth.as_ref().map_or_else(Auth::process, |a| a.auth("ops"));
            setup(&url, &ops, Duration::from_millis(settings.placement.lease_ms), replicas)?;
        }
        let mut env = child_env(&settings);
        env.push(("MICROLAMBDA_NATS_REPLICAS".into(), replicas.to_string()));
        let mut tb = Testbed {
            url,
            node_ids: Vec::new(),
            children: Vec::new(),
            natsd,
            killed_leader: None,
            env,
            exe: exe.to_path_buf(),
            auth,
            auth_tmp,
        };
        for i in 0..settings.testbed.placements.max(1) {
            let name = if i == 0 { "placement".to_string() } else { format!("placement-{}", i + 1) };
            tb.spawn(&name, &["placement".into()])?;
        }
        for i in 0..settings.testbed.nodes {
            let id = format!("node-{}", i + 1);
            let loads = &settings.testbed.radio_loads;
            let radio = if loads.is_empty() { 0.0 } else { loads[i % loads.len()] };
            tb.spawn(&id, &["node".into(), format!("--id={id}"), format!("--radio-load={radio}")])?;
            tb.node_ids.push(id);
        }
        Ok(tb)
    }

    fn spawn(&mut self, what: &str, args: &[String]) -> Result<(), TestbedError> {
        let mut cmd = Command::new(&self.exe);
        cmd.args(args).arg(format!("--nats={}", self.url)).stdin(Stdio::null());
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Some(a) = &self.auth {
            let identity = if what.starts_with("placement") { "placement".to_string() } else { node_identity(what) };
            cmd.env("MICROLAMBDA_NKEY", a.nkey_file(&identity));
            if let Some(ca) = a.tls_ca() {
                cmd.env("MICROLAMBDA_TLS_CA", ca);
            }
        }
        if std::env::var_os("MICROLAMBDA_LOG").is_none() {
            cmd.env("MICROLAMBDA_LOG", "warn");
        }
        crate::proc::die_with_parent(&mut cmd);
        // Its own process group: a Ctrl-C in the terminal reaches the testbed only, which stops the children
        // in order (placement and nodes while NATS is still up, then the server).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().map_err(|source| TestbedError::Spawn { what: what.into(), source })?;
        self.children.push((what.into(), child));
        Ok(())
    }

    /// The credentials of one of the testbed's identities (`ops`, `client`, `placement`, `node-<id>`,
    /// `radio-<id>`); this process's own ([`Auth::process`]) when the server is not the testbed's secured one.
    pub fn auth(&self, identity: &str) -> Auth {
        self.auth.as_ref().map_or_else(Auth::process, |a| a.auth(identity))
    }

    /// The identities' directory of a secured testbed.
    pub fn auth_dir(&self) -> Option<&Path> {
        self.auth.as_ref().map(AuthDir::dir)
    }

    /// Connect to the testbed as one of its identities ([`Testbed::auth`]).
    pub async fn connect(
        &self,
        cfg: &crate::config::ClientConfig,
        identity: &str,
        name: &str,
    ) -> Result<Bus, TestbedError> {
        let timeout = Duration::from_millis(cfg.request_timeout_ms);
        Ok(Bus::connect_as(&self.url, name, timeout, &self.auth(identity)).await?)
    }

    /// The embedded nats-server's configuration file, when it has one (secured, or a `nats_sync_interval`).
    pub fn nats_config_file(&self) -> Option<&Path> {
        self.natsd.first().and_then(NatsServer::config_file)
    }

    /// The pid of a child (`placement`, `placement-2`, `node-1`, ...), while it runs.
    pub fn pid(&mut self, what: &str) -> Option<u32> {
        let (_, c) = self.children.iter_mut().find(|(w, _)| w == what)?;
        matches!(c.try_wait(), Ok(None)).then(|| c.id())
    }

    /// SIGKILL a child (a crash: no clean-up).
    pub fn kill(&mut self, what: &str) -> bool {
        match self.children.iter_mut().find(|(w, _)| w == what) {
            Some((_, c)) => {
                let _ = c.kill();
                let _ = c.wait();
                true
            }
            None => false,
        }
    }

    /// Stop the embedded nats-server (the first of a cluster) and start it again on the same port and store
    /// (clients reconnect).
    pub fn restart_nats(&mut self, down_for: Duration) -> Result<(), TestbedError> {
        match self.natsd.first_mut() {
            Some(s) => Ok(s.restart(down_for)?),
            None => Err(TestbedError::NotReady("the testbed uses an external NATS: it cannot restart it".into())),
        }
    }

    /// SIGKILL one server of the testbed's cluster (`nats-2`, or [`crate::scenario::JOBS_LEADER`]: the one
    /// leading the jobs bucket's stream now): a crash, nothing flushed. Returns the server's name.
    pub fn kill_nats(&mut self, name: &str) -> Result<String, TestbedError> {
        let name = if name == crate::scenario::JOBS_LEADER {
            let leader = self.stream_leader(&format!("KV_{}", crate::bus::JOBS_BUCKET)).ok_or_else(|| {
                TestbedError::NotReady("no server of the cluster names a leader of the jobs bucket".into())
            })?;
            self.killed_leader = Some(leader.clone());
            leader
        } else {
            name.to_string()
        };
        self.cluster_server(&name)?.kill();
        Ok(name)
    }

    /// Start a killed server of the cluster again on its port and store (`jobs-leader`: the one
    /// [`Testbed::kill_nats`] killed as the leader); returns once its JetStream is healthy, with its name. The
    /// process dies with the calling thread (see [`NatsServer::restart`]).
    pub fn start_nats(&mut self, name: &str) -> Result<String, TestbedError> {
        let name = match (name == crate::scenario::JOBS_LEADER, &self.killed_leader) {
            (true, Some(killed)) => killed.clone(),
            (true, None) => return Err(TestbedError::NotReady("no jobs-bucket leader was killed".into())),
            (false, _) => name.to_string(),
        };
        self.cluster_server(&name)?.start_again()?;
        Ok(name)
    }

    /// The name of the cluster's server that leads JetStream stream `stream` (from `/jsz` of the first live
    /// server that replicates it), or none.
    pub fn stream_leader(&self, stream: &str) -> Option<String> {
        self.natsd.iter().find_map(|s| {
            let (code, body) = s.monitor("/jsz?accounts=true&streams=true")?;
            let v: serde_json::Value = (code == 200).then(|| serde_json::from_str(&body).ok()).flatten()?;
            let accounts = v["account_details"].as_array()?;
            let streams = accounts.iter().filter_map(|a| a["stream_detail"].as_array()).flatten();
            let leader = streams.filter(|st| st["name"] == stream).find_map(|st| st["cluster"]["leader"].as_str())?;
            Some(leader.to_string())
        })
    }

    fn cluster_server(&mut self, name: &str) -> Result<&mut NatsServer, TestbedError> {
        let names: Vec<String> = self.natsd.iter().filter_map(|s| s.name().map(str::to_string)).collect();
        self.natsd.iter_mut().find(|s| s.name() == Some(name)).ok_or_else(|| {
            TestbedError::NotReady(format!("no nats-server {name} in this testbed (its cluster: {names:?})"))
        })
    }

    /// Wait until placement knows every node.
    pub async fn wait_ready(&self, bus: &Bus, limit: Duration) -> Result<(), TestbedError> {
        let start = Instant::now();
        loop {
            if let Ok(s) = bus.nodes::<NodesSnapshot>().await {
                if s.nodes.len() >= self.node_ids.len() {
                    return Ok(());
                }
            }
            if start.elapsed() > limit {
                return Err(TestbedError::NotReady(format!(
                    "placement did not see {} nodes within {limit:?}",
                    self.node_ids.len()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stop the children (SIGTERM, then SIGKILL after a grace period) and the server.
    pub fn stop(&mut self) {
        for (_, c) in &self.children {
            crate::proc::terminate(c.id());
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        for (what, c) in &mut self.children {
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        tracing::warn!("{what} did not stop: killing it");
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        self.children.clear();
        self.natsd.clear();
        if let Some(dir) = self.auth_tmp.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// [`Bus::setup`] from synchronous code that may run inside a runtime (a thread of its own).
fn setup(url: &str, ops: &Auth, lease_ttl: Duration, replicas: usize) -> Result<(), TestbedError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|source| TestbedError::Spawn { what: "runtime".into(), source })?;
                Ok(rt.block_on(Bus::setup_replicas(url, ops, lease_ttl, replicas))?)
            })
            .join()
            .unwrap_or_else(|_| Err(TestbedError::NotReady("set-up panicked".into())))
    })
}

/// The testbed's URL in [`crate::config::testbed_url_file`] while it runs, for the clients' default `--nats`;
/// removed on drop (unless another testbed wrote its own since).
struct UrlFile(Option<PathBuf>);

impl UrlFile {
    fn write(url: &str, auth_dir: Option<&Path>) -> Self {
        let Some(path) = crate::config::testbed_url_file() else { return UrlFile(None) };
        let auth = auth_dir.map(|d| d.display().to_string()).unwrap_or_default();
        let written = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, format!("{url}\n{}\n{auth}\n", std::process::id()))?;
            std::fs::rename(&tmp, &path)
        });
        match written {
            Ok(()) => UrlFile(Some(path)),
            Err(e) => {
                println!("testbed: cannot write {} ({e}): give the clients --nats {url}", path.display());
                UrlFile(None)
            }
        }
    }
}

impl Drop for UrlFile {
    fn drop(&mut self) {
        let Some(path) = &self.0 else { return };
        let ours = std::fs::read_to_string(path)
            .is_ok_and(|t| t.lines().nth(1).map(str::trim) == Some(&std::process::id().to_string()));
        if ours {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// How to call this binary from a shell: `microlambda` when that is what `$PATH` finds, else its full path.
fn exe_for_hint(exe: &Path) -> String {
    let on_path = std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            let c = d.join("microlambda");
            c.is_file() && std::fs::canonicalize(&c).ok() == std::fs::canonicalize(exe).ok()
        })
    });
    if on_path {
        "microlambda".into()
    } else {
        exe.display().to_string()
    }
}

/// `microlambda testbed`: run until Ctrl-C, or with `demo` run the demo and exit.
pub async fn run(mut settings: Settings, nats: Option<String>, demo: bool) -> Result<(), TestbedError> {
    if demo {
        settings.node.job_timeout_ms = settings.testbed.demo_job_timeout_ms;
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("microlambda"));
    let port = settings.testbed.port;
    // The identities live beside the URL file, so that a later testbed keeps them (and its clients' keys).
    let auth_dir = crate::config::testbed_url_file().and_then(|f| f.parent().map(|d| d.join("testbed-auth")));
    let mut tb = Testbed::start_in(&settings, nats.as_deref(), &exe, Some(port), auth_dir.as_deref())?;
    let how = match tb.natsd.len() {
        0 => "external".to_string(),
        1 => "embedded".to_string(),
        n => format!("an embedded cluster of {n}"),
    };
    println!("testbed: NATS at {} ({how})", tb.url);
    if let Some(s) = tb.natsd.first().filter(|s| tb.natsd.len() == 1 && port != 0 && s.port() != port) {
        println!("testbed: port {port} is taken, so NATS listens on {} instead", s.port());
    }
    if let Some(dir) = tb.auth_dir() {
        println!(
            "testbed: NATS requires credentials; one nkey per identity in {} (owner-only): client.nk submits, \
             deploys and reads job events, ops.nk administers (docs/SECURITY.md)",
            dir.display()
        );
    }
    // The --tls-ca flag a client elsewhere gives, when the server speaks TLS.
    let tls = tb.auth.as_ref().and_then(AuthDir::tls_ca);
    if let Some(ca) = &tls {
        println!("testbed: NATS speaks TLS only, with the testbed's own certificate authority {}", ca.display());
    }
    let tls = tls.map(|ca| format!(" --tls-ca {}", ca.display())).unwrap_or_default();
    let url_file = UrlFile::write(&tb.url, tb.auth_dir());
    let bus = tb.connect(&settings.client, "ops", "testbed").await?;
    let ready = tb.wait_ready(&bus, Duration::from_secs(30));
    tokio::select! {
        r = ready => r?,
        _ = crate::runtime::shutdown_signal() => { tb.stop(); return Ok(()); }
    }
    println!("testbed: placement and {} nodes up: {}", tb.node_ids.len(), tb.node_ids.join(", "));
    if demo {
        let r = tokio::select! {
            r = run_demo(&bus, &settings, &tb) => r,
            _ = crate::runtime::shutdown_signal() => Ok(()),
        };
        tb.stop();
        println!("testbed: stopped");
        return r;
    }
    let me = exe_for_hint(&exe);
    println!(
        "testbed: jobs time out after {} ms (node.job_timeout_ms); Ctrl-C to stop. In another terminal:",
        settings.node.job_timeout_ms
    );
    if url_file.0.is_some() {
        println!("  {me} watch");
        println!("  {me} submit examples/job.py --input '{{\"n\": 1000}}' --wait");
    } else {
        let nkey = tb.auth_dir().map(|d| format!(" --nkey {}", d.join("ops.nk").display())).unwrap_or_default();
        println!("  {me} watch --nats {}{nkey}{tls}", tb.url);
    }
    if let Some(dir) = tb.auth_dir() {
        println!("  from elsewhere: {me} submit --nats {} --nkey {}/client.nk{tls} ...", tb.url, dir.display());
    }
    crate::runtime::shutdown_signal().await;
    tb.stop();
    println!("testbed: stopped");
    Ok(())
}

const DEMO_FIB: &str = r#"
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)

def main(x):
    return {"n": x["n"], "fib": fib(x["n"])}
"#;

const DEMO_SQUARES: &str = r#"
def main(x):
    return sum(i * i for i in range(x))
"#;

const DEMO_RAISES: &str = r#"
def main(x):
    return {"ratio": 1 / x}
"#;

const DEMO_SYNTAX: &str = "def main(x)\n    return x\n";

/// A long job with state, still running when node-1's radio load steps up: it moves, and ends exactly.
const DEMO_LONG: &str = r#"
import time
def main(x):
    total, seen = 0, []
    for i in range(x["steps"]):
        total += i * i % 97
        if i % 100 == 0:
            seen.append(total)
            time.sleep(0.01)
    return {"total": total, "checkpoints_of_progress": len(seen)}
"#;

const DEMO_HANGS: &str = r#"
import time
def main(x):
    while True:
        time.sleep(0.1)
"#;

/// The demo's terminal: event lines scroll, the load table stays under them and updates in place (on a
/// terminal; into a pipe or file every table is printed in turn).
struct Screen {
    tty: bool,
    /// The table as shown, and how many lines of the terminal it takes.
    table: String,
    shown: usize,
}

impl Screen {
    fn new() -> Self {
        use std::io::IsTerminal;
        Screen { tty: std::io::stdout().is_terminal(), table: String::new(), shown: 0 }
    }

    fn erase(&mut self) {
        if self.tty && self.shown > 0 {
            print!("\x1b[{}A\x1b[J", self.shown);
            self.shown = 0;
        }
    }

    fn draw(&mut self) {
        use std::io::Write;
        if self.tty {
            print!("{}", self.table);
            self.shown = self.table.lines().count();
        }
        let _ = std::io::stdout().flush();
    }

    /// A line above the table.
    fn line(&mut self, text: String) {
        self.erase();
        println!("{text}");
        self.draw();
    }

    /// A new state of the table.
    fn table(&mut self, table: String) {
        self.erase();
        if !self.tty {
            print!("{table}");
        }
        self.table = table;
        self.draw();
    }

    /// The last table, left on the screen.
    fn finish(&mut self, table: String) {
        self.table(table);
        self.shown = 0;
    }
}

async fn run_demo(bus: &Bus, settings: &Settings, tb: &Testbed) -> Result<(), TestbedError> {
    let dir = std::env::temp_dir().join(format!("microlambda-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| TestbedError::Spawn { what: "demo dir".into(), source })?;
    let write = |name: &str, src: &str| -> PathBuf {
        let p = dir.join(name);
        let _ = std::fs::write(&p, src);
        p
    };
    let fib = write("fib.py", DEMO_FIB);
    let squares = write("squares.py", DEMO_SQUARES);
    let raises = write("raises.py", DEMO_RAISES);
    let syntax = write("syntax.py", DEMO_SYNTAX);
    let hangs = write("hangs.py", DEMO_HANGS);
    let long = write("long.py", DEMO_LONG);
    client::deploy(bus, &fib, "fib", "main").await?;
    client::deploy(bus, &squares, "squares", "main").await?;
    println!("demo: deployed functions fib, squares; submitting {} jobs", settings.testbed.demo_jobs);

    let mut loads = bus.subscribe_loads().await?;
    let mut events = bus.subscribe_all_events().await?;
    let mut table = LoadTable::default();
    let mut screen = Screen::new();
    let mut pending = std::collections::HashSet::new();
    let mut per_node: std::collections::BTreeMap<String, usize> = Default::default();
    let (mut ok, mut failed) = (0usize, 0usize);

    let n = settings.testbed.demo_jobs.max(5);
    let mut plan: Vec<SubmitArgs> = Vec::new();
    for i in 0..n {
        let base = SubmitArgs {
            file: None,
            name: None,
            entry: None,
            input: serde_json::Value::Null,
            job_id: Some(format!("demo-{}-{i:03}", now_ms() % 100_000)),
            priority: 0,
            r_limit_ms: None,
            wait: false,
        };
        let a = match i {
            // Long jobs: node-1's radio steps up while one of them runs there.
            1 | 12 | 13 => SubmitArgs { file: Some(long.clone()), input: serde_json::json!({"steps": 20_000}), ..base },
            3 => SubmitArgs { file: Some(raises.clone()), input: 0.into(), ..base },
            5 => SubmitArgs { file: Some(syntax.clone()), input: 1.into(), ..base },
            7 => SubmitArgs { file: Some(hangs.clone()), input: 1.into(), ..base },
            i if i % 2 == 0 => {
                SubmitArgs { name: Some("fib".into()), input: serde_json::json!({"n": 18 + (i % 6)}), ..base }
            }
            i => SubmitArgs { name: Some("squares".into()), input: (100_000 * (i % 4 + 1)).into(), ..base },
        };
        plan.push(a);
    }
    let plan_ids: Vec<String> = plan.iter().map(|a| a.job_id.clone().unwrap_or_default()).collect();
    let mut plan = plan.into_iter();
    let mut submit_tick = tokio::time::interval(Duration::from_millis(300));
    let mut show_tick = tokio::time::interval(Duration::from_secs(1));
    let started = Instant::now();
    let limit = Duration::from_millis(settings.node.job_timeout_ms) + Duration::from_secs(30);
    let mut radio_step_done = false;
    let long_ids: std::collections::HashSet<String> =
        [1usize, 12, 13].iter().filter_map(|&i| plan_ids.get(i).cloned()).collect();
    let mut long_on_first: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = submit_tick.tick() => {
                if let Some(a) = plan.next() {
                    let id = a.job_id.clone().unwrap_or_default();
                    match client::submit(bus, &settings.client, a).await {
                        Ok(_) => { pending.insert(id); }
                        Err(e) => screen.line(format!("demo: submit {id}: {e}")),
                    }
                }
                // Once a long job has run on node-1 for a second (or at 8 s at the latest).
                let step_now = long_on_first.is_some_and(|t| t.elapsed() > Duration::from_secs(1))
                    || started.elapsed() > Duration::from_secs(8);
                if !radio_step_done && step_now {
                    // A radio load step, as loadgen would publish it: node-1 gets busy with radio work.
                    if let Some(first) = tb.node_ids.first() {
                        bus.publish_radio(first, 0.95).await.ok();
                        screen.line(format!("demo: radio load of {first} steps to 95%: its jobs move, and it gets no new ones"));
                    }
                    radio_step_done = true;
                }
            }
            Some(m) = loads.next() => {
                if let Ok(r) = serde_json::from_slice::<LoadReport>(&m.payload) { table.update(r); }
            }
            Some(m) = events.next() => {
                let Ok(ev) = serde_json::from_slice::<JobEvent>(&m.payload) else { continue };
                if !pending.contains(&ev.job_id) { continue; }
                match &ev.kind {
                    EventKind::Started { node, .. } if long_ids.contains(&ev.job_id) && Some(node) == tb.node_ids.first() => {
                        long_on_first.get_or_insert_with(Instant::now);
                    }
                    EventKind::Completed { node, output } => {
                        ok += 1;
                        *per_node.entry(node.clone()).or_default() += 1;
                        screen.line(format!("  {:<16} completed on {node}: {output}", ev.job_id));
                        pending.remove(&ev.job_id);
                    }
                    EventKind::Migrated { from, to, ms, bytes } => {
                        if *bytes > 0 {
                            screen.line(format!("  {:<16} moved {from} -> {to} in {ms:.0} ms as a {bytes}-byte checkpoint", ev.job_id));
                        } else {
                            screen.line(format!("  {:<16} moved {from} -> {to} in {ms:.0} ms, starting over (no checkpoint could be taken)", ev.job_id));
                        }
                    }
                    EventKind::Failed { node, error } => {
                        failed += 1;
                        let first = error.message.lines().next().unwrap_or("");
                        screen.line(format!("  {:<16} failed on {}: {} ({first})", ev.job_id, node.as_deref().unwrap_or("-"), error.kind));
                        pending.remove(&ev.job_id);
                    }
                    _ => {}
                }
            }
            _ = show_tick.tick(), if !table.nodes.is_empty() => {
                screen.table(table.render(now_ms()));
            }
        }
        let submitted_all = plan.len() == 0;
        if submitted_all && pending.is_empty() {
            break;
        }
        if started.elapsed() > limit {
            screen.line(format!("demo: {} jobs still pending after {limit:?}", pending.len()));
            break;
        }
    }
    screen.finish(table.render(now_ms()));
    println!(
        "demo: {ok} completed, {failed} failed (3 on purpose: a raise, a syntax error, a timeout) in {:.1}s; jobs per node: {per_node:?}",
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
