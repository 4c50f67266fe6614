//! A local mesh on one machine: the embedded nats-server (unless a URL is given), a placement process and N
//! node processes (children of the same binary), stopped with their children on exit or Ctrl-C. With
//! `--demo` it submits a stream of sample jobs and shows the live load table and the results.
use crate::actors::placement::NodesSnapshot;
use crate::bus::Bus;
use crate::client::watch::LoadTable;
use crate::client::{self, ClientError, SubmitArgs};
use crate::config::Settings;
use crate::natsd::{NatsServer, NatsdError};
use crate::wire::{now_ms, EventKind, JobEvent, LoadReport};
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    // Last: the server stops after the processes that use it.
    natsd: Option<NatsServer>,
}

/// The testbed's `[node]` and `[placement]` settings as environment variables for its children (every key,
/// so a child's own config file cannot disagree with the testbed's).
fn child_env(s: &Settings) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let sections = [("NODE", serde_json::to_value(&s.node)), ("PLACEMENT", serde_json::to_value(&s.placement))];
    for (section, value) in sections {
        let Ok(serde_json::Value::Object(map)) = value else { continue };
        for (k, v) in map {
            let text = match v {
                serde_json::Value::Null => continue,
                serde_json::Value::Array(items) if items.is_empty() => continue,
                serde_json::Value::String(s) => s,
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_string).unwrap_or_else(|| i.to_string()))
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            out.push((format!("MICROLAMBDA_{section}__{}", k.to_uppercase()), text));
        }
    }
    out
}

impl Testbed {
    /// Start the processes; `exe` is the `microlambda` binary.
    pub fn start(settings: &Settings, nats: Option<&str>, exe: &Path) -> Result<Self, TestbedError> {
        let natsd = match nats {
            Some(_) => None,
            None => Some(NatsServer::start(settings.testbed.nats_server.as_deref())?),
        };
        let url = match (nats, &natsd) {
            (Some(u), _) => u.to_string(),
            (None, Some(s)) => s.url(),
            (None, None) => unreachable!(),
        };
        let env = child_env(settings);
        let mut tb = Testbed { url, node_ids: Vec::new(), children: Vec::new(), natsd, env, exe: exe.to_path_buf() };
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
        if std::env::var_os("MICROLAMBDA_LOG").is_none() {
            cmd.env("MICROLAMBDA_LOG", "warn");
        }
        crate::proc::die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|source| TestbedError::Spawn { what: what.into(), source })?;
        self.children.push((what.into(), child));
        Ok(())
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

    /// Stop the embedded nats-server and start it again on the same port and store (clients reconnect).
    pub fn restart_nats(&mut self, down_for: Duration) -> Result<(), TestbedError> {
        match &mut self.natsd {
            Some(s) => Ok(s.restart(down_for)?),
            None => Err(TestbedError::NotReady("the testbed uses an external NATS: it cannot restart it".into())),
        }
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
        self.natsd.take();
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `microlambda testbed`: run until Ctrl-C, or with `demo` run the demo and exit.
pub async fn run(settings: Settings, nats: Option<String>, demo: bool) -> Result<(), TestbedError> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("microlambda"));
    let mut tb = Testbed::start(&settings, nats.as_deref(), &exe)?;
    println!("testbed: NATS at {} ({})", tb.url, if tb.natsd.is_some() { "embedded" } else { "external" });
    let bus = client::connect(&tb.url, &settings.client, "testbed").await?;
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
    println!("testbed: Ctrl-C to stop. Try: microlambda watch --nats {}", tb.url);
    crate::runtime::shutdown_signal().await;
    tb.stop();
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

const DEMO_HANGS: &str = r#"
import time
def main(x):
    while True:
        time.sleep(0.1)
"#;

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
    client::deploy(bus, &fib, "fib", "main").await?;
    client::deploy(bus, &squares, "squares", "main").await?;
    println!("demo: deployed functions fib, squares; submitting {} jobs", settings.testbed.demo_jobs);

    let mut loads = bus.subscribe_loads().await?;
    let mut events = bus.subscribe_all_events().await?;
    let mut table = LoadTable::default();
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
    let mut plan = plan.into_iter();
    let mut submit_tick = tokio::time::interval(Duration::from_millis(300));
    let mut show_tick = tokio::time::interval(Duration::from_secs(1));
    let started = Instant::now();
    let limit = Duration::from_millis(settings.node.job_timeout_ms) + Duration::from_secs(30);
    let mut radio_step_done = false;
    loop {
        tokio::select! {
            _ = submit_tick.tick() => {
                if let Some(a) = plan.next() {
                    let id = a.job_id.clone().unwrap_or_default();
                    match client::submit(bus, &settings.client, a).await {
                        Ok(_) => { pending.insert(id); }
                        Err(e) => println!("demo: submit {id}: {e}"),
                    }
                }
                if !radio_step_done && started.elapsed() > Duration::from_secs(5) {
                    // A radio load step, as loadgen would publish it: node-1 gets busy with radio work.
                    if let Some(first) = tb.node_ids.first() {
                        bus.publish_radio(first, 0.95).await.ok();
                        println!("demo: radio load of {first} steps to 95%: placement stops sending it jobs");
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
                    EventKind::Completed { node, output } => {
                        ok += 1;
                        *per_node.entry(node.clone()).or_default() += 1;
                        println!("  {:<16} completed on {node}: {output}", ev.job_id);
                        pending.remove(&ev.job_id);
                    }
                    EventKind::Failed { node, error } => {
                        failed += 1;
                        let first = error.message.lines().next().unwrap_or("");
                        println!("  {:<16} failed on {}: {} ({first})", ev.job_id, node.as_deref().unwrap_or("-"), error.kind);
                        pending.remove(&ev.job_id);
                    }
                    _ => {}
                }
            }
            _ = show_tick.tick(), if !table.nodes.is_empty() => {
                print!("{}", table.render(now_ms()));
            }
        }
        let submitted_all = plan.len() == 0;
        if submitted_all && pending.is_empty() {
            break;
        }
        if started.elapsed() > limit {
            println!("demo: {} jobs still pending after {limit:?}", pending.len());
            break;
        }
    }
    print!("{}", table.render(now_ms()));
    println!(
        "demo: {ok} completed, {failed} failed (3 on purpose: a raise, a syntax error, a timeout) in {:.1}s; jobs per node: {per_node:?}",
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
