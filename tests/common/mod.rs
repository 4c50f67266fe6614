//! Test fixtures: a real nats-server on a free loopback port and real `microlambda` node and placement
//! processes, all killed on drop (and on test-process death, through PR_SET_PDEATHSIG).
#![allow(dead_code)]
use futures::StreamExt;
use microlambda::bus::Bus;
use microlambda::natsd::NatsServer;
use microlambda::wire::JobEvent;
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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_microlambda"));
    cmd.args(args).env("MICROLAMBDA_LOG", "warn").stdin(Stdio::null());
    microlambda::proc::die_with_parent(&mut cmd);
    Proc(cmd.spawn().expect("spawn microlambda"))
}

/// A mesh of one nats-server, a placement and some nodes.
pub struct Mesh {
    pub nodes: Vec<(String, Proc)>,
    pub placement: Option<Proc>,
    pub nats: NatsServer,
}

impl Mesh {
    pub fn nats_only() -> Self {
        Mesh {
            nodes: Vec::new(),
            placement: None,
            nats: NatsServer::start(None).expect("nats-server (run `make setup`)"),
        }
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

    pub fn url(&self) -> String {
        self.nats.url()
    }

    pub fn start_placement(&mut self) {
        self.placement = Some(spawn(&[
            "placement".into(),
            format!("--nats={}", self.url()),
            format!("--report-interval-ms={REPORT_MS}"),
            "--missed-reports=3".into(),
            "--radio-threshold=0.8".into(),
        ]));
    }

    pub fn start_node(&mut self, id: &str, radio: f64, extra: &[&str]) {
        let mut args = vec![
            "node".to_string(),
            format!("--nats={}", self.url()),
            format!("--id={id}"),
            format!("--radio-load={radio}"),
            format!("--report-interval-ms={REPORT_MS}"),
            "--slots=2".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        self.nodes.push((id.to_string(), spawn(&args)));
    }

    pub fn node(&mut self, id: &str) -> &mut Proc {
        &mut self.nodes.iter_mut().find(|(n, _)| n == id).expect("node").1
    }

    pub async fn bus(&self) -> Bus {
        Bus::connect(&self.url(), "test", Duration::from_secs(5)).await.expect("connect")
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
