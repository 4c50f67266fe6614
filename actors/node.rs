//! The node actor, one per BBU: reports the node's load, takes assignments from placement and jobs handed
//! over by other nodes, and hosts a job actor per job on a small pool of warm worker processes; placement's
//! commands (evacuate, fence) go to the job actors.
//!
//! Guarantees: the node answers every assignment and command at once and never waits on a job in its own
//! handlers; a job actor's end (whatever the job did) is reported back as [`JobDone`]; an assignment for a job
//! id the node already runs is accepted without running it again; a job from another node is taken only into a
//! free slot, so it restores at once.
use super::job::{CheckOwner, FunctionCache, JobActor, JobContext, JobDone, JobStart, JobStatus, Leave};
use super::pool::{WorkerPool, Zygotes};
use crate::burn::{Burner, LoadCell};
use crate::bus::{Bus, Message as NatsMessage};
use crate::checkpoint::{key_id, Envelope};
use crate::config::NodeConfig;
use crate::metrics::NodeMetrics;
use crate::wire::{now_ms, AssignReply, Assignment, CommandReply, LoadReport, NodeCommand, RadioLoad, WarmHint};
use crate::worker::WorkerOptions;
use actix::prelude::*;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("bus: {0}")]
    Bus(#[from] crate::bus::BusError),
    #[error("sysinfo: {0}")]
    Sysinfo(String),
    /// A setting the node refuses to run with (no checkpoint key of the mesh's own).
    #[error("{0}")]
    Config(String),
}

/// An assignment arrived on the node's subject.
#[derive(Message)]
#[rtype(result = "()")]
struct Assign(NatsMessage);

/// A job handed over by another node.
#[derive(Message)]
#[rtype(result = "()")]
struct AdoptJob(NatsMessage);

/// A command from placement.
#[derive(Message)]
#[rtype(result = "()")]
struct Command(NatsMessage);

/// A new radio load for this node.
#[derive(Message)]
#[rtype(result = "()")]
struct SetRadio(f64);

/// Publish a load report now.
#[derive(Message)]
#[rtype(result = "()")]
struct Report;

struct Hosted {
    addr: Addr<JobActor>,
    status: Arc<Mutex<JobStatus>>,
    /// The ownership epoch the job came with, and which hosting this is.
    epoch: u64,
    token: u64,
}

pub struct NodeActor {
    cfg: Arc<NodeConfig>,
    bus: Bus,
    radio_load: f64,
    sys: sysinfo::System,
    running: HashMap<String, Hosted>,
    pool: Arc<WorkerPool>,
    functions: Arc<FunctionCache>,
    envelope: Arc<Envelope>,
    next_token: u64,
    /// Since when the radio load has been at or above `self_evacuate_above`.
    hot_since: Option<Instant>,
    metrics: NodeMetrics,
    /// The threads standing in for baseband processing (`node.burn_threads`), and the load they follow.
    burn: Option<(Arc<LoadCell>, Burner)>,
}

impl NodeActor {
    pub fn new(cfg: NodeConfig, bus: Bus, metrics: NodeMetrics) -> Result<Self, NodeError> {
        let mut opts = WorkerOptions::new(cfg.checkpoint_key.as_bytes().to_vec());
        if let Some(exe) = &cfg.worker_exe {
            opts.exe = exe.clone();
        }
        opts.preload = cfg.preload.clone();
        opts.nice = cfg.worker_nice;
        opts.limits = cfg.limits.clone();
        if !cfg.limits.network {
            crate::proc::can_make_a_network_namespace().map_err(|e| {
                NodeError::Config(format!(
                    "node.limits.network = false, but this node cannot give its jobs a network namespace ({e}): \
                     run it as root, or grant its container CAP_SYS_ADMIN, or allow jobs the network"
                ))
            })?;
        }
        opts.reuse = cfg.isolation == crate::config::Isolation::Reuse;
        if !cfg.previous_checkpoint_key.is_empty() {
            let until = std::time::Instant::now() + Duration::from_secs(cfg.previous_key_grace_s);
            opts.previous_key = Some((cfg.previous_checkpoint_key.as_bytes().to_vec(), until));
        }
        let mut sys = sysinfo::System::new().map_err(|e| NodeError::Sysinfo(e.to_string()))?;
        sys.refresh_cpu_usage();
        let burn = match cfg.burn_threads {
            0 => None,
            n => {
                let load = Arc::new(LoadCell::new(cfg.radio_load));
                let b =
                    Burner::start(n, load.clone()).map_err(|e| NodeError::Config(format!("node.burn_threads: {e}")))?;
                Some((load, b))
            }
        };
        Ok(Self {
            radio_load: cfg.radio_load,
            pool: WorkerPool::new(
                opts.clone(),
                cfg.slots,
                Zygotes {
                    sets: cfg.zygote_sets,
                    modules: cfg.module_zygotes,
                    module_start: Duration::from_millis(cfg.module_zygote_start_ms),
                    module_min_load: Duration::from_millis(cfg.module_zygote_min_load_ms),
                },
            ),
            functions: FunctionCache::new(cfg.function_cache),
            envelope: Arc::new(opts.envelope()),
            cfg: Arc::new(cfg),
            bus,
            sys,
            running: HashMap::new(),
            next_token: 0,
            hot_since: None,
            metrics,
            burn,
        })
    }

    fn report(&mut self) -> LoadReport {
        self.sys.refresh_cpu_usage();
        self.sys.refresh_memory();
        let busy = (self.sys.global_cpu_usage() as f64 / 100.0).clamp(0.0, 1.0);
        let mut jobs: Vec<_> =
            self.running.iter().filter_map(|(id, h)| h.status.lock().ok().map(|s| s.load(id))).collect();
        jobs.sort_by(|a, b| a.job_id.cmp(&b.job_id));
        LoadReport {
            node: self.cfg.id.clone(),
            ts: now_ms(),
            cpu_headroom: 1.0 - busy,
            radio_load: self.radio_load,
            mem_available_bytes: self.sys.available_memory(),
            jobs_running: self.running.len(),
            slots: self.cfg.slots,
            warm_workers: self.pool.idle_count(),
            set_zygotes: self.pool.set_zygotes(),
            set_zygote_restores: self.pool.set_zygote_restores(),
            module_zygotes: self.pool.module_zygotes(),
            module_zygote_restores: self.pool.module_zygote_restores(),
            module_zygote_failures: self.pool.module_zygote_failures(),
            restores_forked_ahead: self.pool.restores_forked_ahead(),
            modules_taught: self.pool.modules_taught(),
            set_zygotes_from_peers: self.pool.set_zygotes_from_peers(),
            module_zygotes_from_peers: self.pool.module_zygotes_from_peers(),
            jobs,
        }
    }

    fn context(&self) -> JobContext {
        JobContext {
            node_id: self.cfg.id.clone(),
            bus: self.bus.clone(),
            pool: self.pool.clone(),
            functions: self.functions.clone(),
            cfg: self.cfg.clone(),
            envelope: self.envelope.clone(),
            metrics: self.metrics.clone(),
        }
    }

    fn host(&mut self, job_id: String, epoch: u64, start: JobStart, ctx: &mut Context<Self>) {
        let status = Arc::new(Mutex::new(JobStatus::default()));
        self.next_token += 1;
        let token = self.next_token;
        let addr = JobActor::new(token, start, self.context(), ctx.address().recipient(), status.clone()).start();
        self.running.insert(job_id, Hosted { addr, status, epoch, token });
    }

    /// Whether the node already hosts this job at this epoch or a later one (a repeated delivery). An older
    /// hosting is on its way out: its record moved on when it parked or moved the job.
    fn hosts(&self, job_id: &str, epoch: u64) -> bool {
        self.running.get(job_id).is_some_and(|h| h.epoch >= epoch)
    }

    /// Note the radio load, and when it has just crossed `self_evacuate_above`, look again once
    /// `self_evacuate_after_ms` has passed.
    fn set_radio(&mut self, load: f64, ctx: &mut Context<Self>) {
        self.radio_load = load;
        if let Some((cell, _)) = &self.burn {
            cell.set(load);
        }
        self.pool.hold_refills(load >= self.cfg.hold_refills_above);
        if load < self.cfg.self_evacuate_above {
            self.hot_since = None;
        } else if self.hot_since.is_none() {
            self.hot_since = Some(Instant::now());
            if self.cfg.self_evacuate_after_ms > 0 {
                // A margin past the limit, so the check sees it passed.
                let after = Duration::from_millis(self.cfg.self_evacuate_after_ms + 1);
                ctx.run_later(after, |act, _| act.shed_if_still_hot());
            }
        }
    }

    /// Placement evacuates a hot node within milliseconds; a job still here (and not leaving) long after the
    /// radio load crossed the line means no placement acted on it: the node parks the job itself.
    fn shed_if_still_hot(&mut self) {
        let after = Duration::from_millis(self.cfg.self_evacuate_after_ms);
        if after.is_zero() || self.hot_since.is_none_or(|t| t.elapsed() < after) {
            return;
        }
        let staying: Vec<_> = self
            .running
            .values()
            .filter(|h| h.status.lock().is_ok_and(|s| !s.is_leaving()))
            .map(|h| h.addr.clone())
            .collect();
        if staying.is_empty() {
            return;
        }
        tracing::warn!(
            node = %self.cfg.id,
            radio_load = self.radio_load,
            jobs = staying.len(),
            "radio load over {} for {} ms and no evacuation came: parking the node's jobs",
            self.cfg.self_evacuate_above,
            after.as_millis()
        );
        for addr in staying {
            addr.do_send(Leave { to: None });
        }
    }

    fn answer<T: serde::Serialize + Send + Sync + 'static>(&self, msg: NatsMessage, reply: T) {
        let bus = self.bus.clone();
        tokio::spawn(async move {
            if let Err(e) = bus.reply(&msg, &reply).await {
                tracing::warn!("cannot answer {}: {e}", msg.subject);
            }
        });
    }
}

impl Actor for NodeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let interval = Duration::from_millis(self.cfg.report_interval_ms);
        ctx.run_interval(interval, |_, ctx| ctx.notify(Report));
        self.set_radio(self.radio_load, ctx);
        let pool = self.pool.clone();
        tokio::spawn(async move {
            if let Err(e) = pool.warm_up().await {
                tracing::warn!("cannot start warm workers: {e}");
            }
        });
        // The module sets this node learns, told to the others (they keep zygotes for them).
        let (tx, mut learned) = tokio::sync::mpsc::unbounded_channel();
        self.pool.tell_learned(tx);
        let (bus, id) = (self.bus.clone(), self.cfg.id.clone());
        tokio::spawn(async move {
            while let Some(hint) = learned.recv().await {
                if let Err(e) = bus.publish_warm(&id, &hint).await {
                    tracing::warn!("cannot tell the other nodes a module set: {e}");
                }
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
        // Jobs that came while the node was hot are shed too.
        self.shed_if_still_hot();
        let r = self.report();
        self.metrics.report(&r);
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
    fn handle(&mut self, m: SetRadio, ctx: &mut Context<Self>) {
        self.set_radio(m.0.clamp(0.0, 1.0), ctx);
    }
}

impl Handler<Assign> for NodeActor {
    type Result = ();
    fn handle(&mut self, Assign(msg): Assign, ctx: &mut Context<Self>) {
        let reply = match serde_json::from_slice::<Assignment>(&msg.payload) {
            Err(e) => AssignReply { accepted: false, reason: Some(format!("bad assignment: {e}")) },
            Ok(a) if a.record.node.as_deref() != Some(self.cfg.id.as_str()) => AssignReply {
                accepted: false,
                reason: Some(format!("assignment is for node {:?}, this is {}", a.record.node, self.cfg.id)),
            },
            Ok(a) if self.hosts(&a.record.job_id, a.record.epoch) => {
                AssignReply { accepted: true, reason: Some("already running here".into()) }
            }
            Ok(_) if self.running.len() >= 2 * self.cfg.slots => AssignReply {
                accepted: false,
                reason: Some(format!("full: {} jobs on {} slots", self.running.len(), self.cfg.slots)),
            },
            Ok(a) => {
                let (job_id, epoch) = (a.record.job_id.clone(), a.record.epoch);
                self.host(job_id, epoch, JobStart::Assigned(Box::new(a)), ctx);
                AssignReply { accepted: true, reason: None }
            }
        };
        self.answer(msg, reply);
    }
}

impl Handler<AdoptJob> for NodeActor {
    type Result = ();
    fn handle(&mut self, AdoptJob(msg): AdoptJob, ctx: &mut Context<Self>) {
        let refuse = |why: String| AssignReply { accepted: false, reason: Some(why) };
        let adopt = match Bus::decode_adopt(&msg) {
            Ok(a) => a,
            Err(e) => return self.answer(msg, refuse(format!("bad adopt message: {e}"))),
        };
        if !crate::wire::is_valid_token(&adopt.job_id) {
            return self.answer(msg, refuse(format!("bad job id {:?}", adopt.job_id)));
        }
        if self.hosts(&adopt.job_id, adopt.epoch) {
            return self.answer(msg, refuse("the job is already on this node".into()));
        }
        if self.running.len() >= self.cfg.slots {
            let why = format!("no free slot: {} jobs on {} slots", self.running.len(), self.cfg.slots);
            return self.answer(msg, refuse(why));
        }
        // The job actor verifies the checkpoint and answers the request.
        let (job_id, epoch) = (adopt.job_id.clone(), adopt.epoch);
        self.host(job_id, epoch, JobStart::Adopted { adopt: Box::new(adopt), request: msg }, ctx);
    }
}

impl Handler<Command> for NodeActor {
    type Result = ();
    fn handle(&mut self, Command(msg): Command, _: &mut Context<Self>) {
        let cmd = match serde_json::from_slice::<NodeCommand>(&msg.payload) {
            Ok(c) => c,
            Err(e) => {
                let reply = CommandReply { error: Some(format!("bad command: {e}")), ..Default::default() };
                return self.answer(msg, reply);
            }
        };
        let mut reply = CommandReply::default();
        let mut note = |id: &str, known: bool| {
            if known {
                reply.known.push(id.to_string());
            } else {
                reply.unknown.push(id.to_string());
            }
        };
        match cmd {
            NodeCommand::Evacuate { moves } => {
                for m in moves {
                    let h = self.running.get(&m.job_id);
                    if let Some(h) = h {
                        h.addr.do_send(Leave { to: m.to });
                    }
                    note(&m.job_id, h.is_some());
                }
            }
            NodeCommand::Fence { jobs } => {
                for j in jobs {
                    let h = self.running.get(&j);
                    if let Some(h) = h {
                        h.addr.do_send(CheckOwner);
                    }
                    note(&j, h.is_some());
                }
            }
        }
        self.answer(msg, reply);
    }
}

impl Handler<JobDone> for NodeActor {
    type Result = ();
    fn handle(&mut self, m: JobDone, _: &mut Context<Self>) {
        tracing::debug!(job = %m.job_id, end = ?m.end, "job left the node");
        if self.running.get(&m.job_id).is_some_and(|h| h.token == m.token) {
            self.running.remove(&m.job_id);
        }
    }
}

/// Run a node until Ctrl-C / SIGTERM. Call inside an actix System on a multi-thread tokio runtime
/// ([`crate::runtime::block_on`]).
pub async fn run(cfg: NodeConfig, nats: &str) -> Result<(), NodeError> {
    let key = cfg.checked_key().map_err(|e| NodeError::Config(e.to_string()))?;
    let previous = (!cfg.previous_checkpoint_key.is_empty()).then(|| {
        format!(
            ", still accepting {} for {} s",
            key_id(cfg.previous_checkpoint_key.as_bytes()),
            cfg.previous_key_grace_s
        )
    });
    tracing::info!("node {}: checkpoint key {}{}", cfg.id, key_id(key.as_bytes()), previous.unwrap_or_default());
    let metrics = NodeMetrics::new(&cfg.id);
    if !cfg.metrics_listen.is_empty() {
        crate::metrics::serve("node.metrics_listen", &cfg.metrics_listen, metrics.registry())
            .await
            .map_err(|e| NodeError::Config(e.to_string()))?;
    }
    let bus = Bus::connect(nats, &format!("node {}", cfg.id), Duration::from_secs(5)).await?;
    let mut assignments = bus.serve_assignments(&cfg.id).await?;
    let mut adopts = bus.serve_adopt(&cfg.id).await?;
    let mut commands = bus.serve_commands(&cfg.id).await?;
    let mut radio = bus.subscribe_radio(&cfg.id).await?;
    let mut warm = bus.subscribe_warm().await?;
    let id = cfg.id.clone();
    let node = NodeActor::new(cfg, bus, metrics)?;
    let pool = node.pool.clone();
    let addr = node.start();
    addr.do_send(Report);
    let mut feeds = Vec::new();
    let a = addr.clone();
    feeds.push(tokio::spawn(async move {
        while let Some(m) = assignments.next().await {
            a.do_send(Assign(m));
        }
    }));
    let a = addr.clone();
    feeds.push(tokio::spawn(async move {
        while let Some(m) = adopts.next().await {
            a.do_send(AdoptJob(m));
        }
    }));
    let a = addr.clone();
    feeds.push(tokio::spawn(async move {
        while let Some(m) = commands.next().await {
            a.do_send(Command(m));
        }
    }));
    let a = addr.clone();
    feeds.push(tokio::spawn(async move {
        while let Some(m) = radio.next().await {
            match serde_json::from_slice::<RadioLoad>(&m.payload) {
                Ok(r) if (0.0..=1.0).contains(&r.load) => a.do_send(SetRadio(r.load)),
                _ => tracing::warn!("ignoring bad radio load {:?}", String::from_utf8_lossy(&m.payload)),
            }
        }
    }));
    feeds.push(tokio::spawn(async move {
        while let Some(m) = warm.next().await {
            if Bus::node_of(&m) == id {
                continue;
            }
            match serde_json::from_slice::<WarmHint>(&m.payload) {
                Ok(hint) => {
                    pool.prewarm(&hint);
                }
                Err(e) => tracing::warn!("ignoring a bad module set from {}: {e}", m.subject),
            }
        }
    }));
    crate::runtime::shutdown_signal().await;
    for f in feeds {
        f.abort();
    }
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
