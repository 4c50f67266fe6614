//! The node actor, one per BBU: reports the node's load, takes assignments from placement and hosts a job
//! actor per running job on a small pool of warm worker processes.
//!
//! Guarantees: the node answers every assignment at once (accepted, or refused with a reason) and never waits
//! on a job in its own handlers; a job actor's end (whatever the job did) is reported back as [`JobDone`];
//! an assignment for a job id the node already runs is accepted without running it again.
use super::job::{FunctionCache, JobActor, JobContext, JobDone};
use super::pool::WorkerPool;
use crate::bus::{Bus, Message as NatsMessage};
use crate::config::NodeConfig;
use crate::wire::{now_ms, AssignReply, Assignment, LoadReport, RadioLoad};
use crate::worker::WorkerOptions;
use actix::prelude::*;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("bus: {0}")]
    Bus(#[from] crate::bus::BusError),
    #[error("sysinfo: {0}")]
    Sysinfo(String),
}

/// An assignment arrived on the node's subject.
#[derive(Message)]
#[rtype(result = "()")]
struct Assign(NatsMessage);

/// A new radio load for this node.
#[derive(Message)]
#[rtype(result = "()")]
struct SetRadio(f64);

/// Publish a load report now.
#[derive(Message)]
#[rtype(result = "()")]
struct Report;

pub struct NodeActor {
    cfg: NodeConfig,
    bus: Bus,
    radio_load: f64,
    sys: sysinfo::System,
    running: HashMap<String, Addr<JobActor>>,
    pool: Arc<WorkerPool>,
    functions: Arc<FunctionCache>,
}

impl NodeActor {
    pub fn new(cfg: NodeConfig, bus: Bus) -> Result<Self, NodeError> {
        let mut opts = WorkerOptions::new(cfg.checkpoint_key.as_bytes().to_vec());
        if let Some(exe) = &cfg.worker_exe {
            opts.exe = exe.clone();
        }
        opts.preload = cfg.preload.clone();
        let mut sys = sysinfo::System::new().map_err(|e| NodeError::Sysinfo(e.to_string()))?;
        sys.refresh_cpu_usage();
        Ok(Self {
            radio_load: cfg.radio_load,
            pool: WorkerPool::new(opts, cfg.slots),
            functions: FunctionCache::new(cfg.function_cache),
            cfg,
            bus,
            sys,
            running: HashMap::new(),
        })
    }

    fn report(&mut self) -> LoadReport {
        self.sys.refresh_cpu_usage();
        self.sys.refresh_memory();
        let busy = (self.sys.global_cpu_usage() as f64 / 100.0).clamp(0.0, 1.0);
        LoadReport {
            node: self.cfg.id.clone(),
            ts: now_ms(),
            cpu_headroom: 1.0 - busy,
            radio_load: self.radio_load,
            mem_available_bytes: self.sys.available_memory(),
            jobs_running: self.running.len(),
            slots: self.cfg.slots,
            warm_workers: self.pool.idle_count(),
        }
    }
}

impl Actor for NodeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let interval = Duration::from_millis(self.cfg.report_interval_ms);
        ctx.run_interval(interval, |_, ctx| ctx.notify(Report));
        let pool = self.pool.clone();
        tokio::spawn(async move {
            if let Err(e) = pool.warm_up().await {
                tracing::warn!("cannot start warm workers: {e}");
            }
        });
        tracing::info!(node = %self.cfg.id, slots = self.cfg.slots, "node up");
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        let pool = self.pool.clone();
        tokio::spawn(async move { pool.shutdown().await });
        Running::Stop
    }
}

impl Handler<Report> for NodeActor {
    type Result = ();
    fn handle(&mut self, _: Report, _: &mut Context<Self>) {
        let r = self.report();
        let bus = self.bus.clone();
        tokio::spawn(async move {
            if let Err(e) = bus.publish_load(&r).await {
                tracing::warn!("cannot publish load: {e}");
            }
        });
    }
}

impl Handler<SetRadio> for NodeActor {
    type Result = ();
    fn handle(&mut self, m: SetRadio, _: &mut Context<Self>) {
        self.radio_load = m.0.clamp(0.0, 1.0);
    }
}

impl Handler<Assign> for NodeActor {
    type Result = ();
    fn handle(&mut self, Assign(msg): Assign, ctx: &mut Context<Self>) {
        let reply = match serde_json::from_slice::<Assignment>(&msg.payload) {
            Err(e) => AssignReply { accepted: false, reason: Some(format!("bad assignment: {e}")) },
            Ok(a) if self.running.contains_key(&a.record.job_id) => {
                AssignReply { accepted: true, reason: Some("already running here".into()) }
            }
            Ok(_) if self.running.len() >= 2 * self.cfg.slots => AssignReply {
                accepted: false,
                reason: Some(format!("full: {} jobs on {} slots", self.running.len(), self.cfg.slots)),
            },
            Ok(a) => {
                let job_id = a.record.job_id.clone();
                let jc = JobContext {
                    node_id: self.cfg.id.clone(),
                    bus: self.bus.clone(),
                    pool: self.pool.clone(),
                    functions: self.functions.clone(),
                    timeout: Duration::from_millis(self.cfg.job_timeout_ms),
                };
                let addr = JobActor::new(a, jc, ctx.address().recipient()).start();
                self.running.insert(job_id, addr);
                AssignReply { accepted: true, reason: None }
            }
        };
        let bus = self.bus.clone();
        tokio::spawn(async move {
            if let Err(e) = bus.reply(&msg, &reply).await {
                tracing::warn!("cannot answer an assignment: {e}");
            }
        });
    }
}

impl Handler<JobDone> for NodeActor {
    type Result = ();
    fn handle(&mut self, m: JobDone, _: &mut Context<Self>) {
        self.running.remove(&m.job_id);
    }
}

/// Run a node until Ctrl-C / SIGTERM. Call inside an actix System on a multi-thread tokio runtime
/// ([`crate::runtime::block_on`]).
pub async fn run(cfg: NodeConfig, nats: &str) -> Result<(), NodeError> {
    let bus = Bus::connect(nats, &format!("node {}", cfg.id), Duration::from_secs(5)).await?;
    let mut assignments = bus.serve_assignments(&cfg.id).await?;
    let mut radio = bus.subscribe_radio(&cfg.id).await?;
    let addr = NodeActor::new(cfg, bus)?.start();
    addr.do_send(Report);
    let a2 = addr.clone();
    let feed_assign = tokio::spawn(async move {
        while let Some(m) = assignments.next().await {
            a2.do_send(Assign(m));
        }
    });
    let a3 = addr.clone();
    let feed_radio = tokio::spawn(async move {
        while let Some(m) = radio.next().await {
            match serde_json::from_slice::<RadioLoad>(&m.payload) {
                Ok(r) if (0.0..=1.0).contains(&r.load) => a3.do_send(SetRadio(r.load)),
                _ => tracing::warn!("ignoring bad radio load {:?}", String::from_utf8_lossy(&m.payload)),
            }
        }
    });
    crate::runtime::shutdown_signal().await;
    feed_assign.abort();
    feed_radio.abort();
    // Stop the actor (kills the idle workers); running jobs' workers die with their handles.
    let pool = addr.send(TakePool).await.ok();
    if let Some(pool) = pool {
        pool.shutdown().await;
    }
    Ok(())
}

/// Hand out the pool (for shutdown).
#[derive(Message)]
#[rtype(result = "Arc<WorkerPool>")]
struct TakePool;

impl Handler<TakePool> for NodeActor {
    type Result = MessageResult<TakePool>;
    fn handle(&mut self, _: TakePool, ctx: &mut Context<Self>) -> Self::Result {
        ctx.stop();
        MessageResult(self.pool.clone())
    }
}
