//! One job on one node, from its assignment (or its arrival from another node) to the moment it leaves the
//! node: resolve its code, run or restore it in a warm worker, checkpoint it periodically, move or park it on
//! request or at the end of a slice, and commit its outcome.
//!
//! Guarantees:
//! - Every write the job actor makes to the job's record (a committed checkpoint, a move, a park, the outcome)
//!   is a compare-and-set on the revision it last wrote or was handed. When one fails, the node no longer owns
//!   the job: the actor kills its worker and ends without publishing anything more (fencing). So no output is
//!   ever published twice, and a node that wakes up after a pause or a partition cannot overwrite the job's
//!   newer state.
//! - A checkpoint is persisted in JetStream (and acknowledged) before the record points to it, and the record
//!   points to it before the job is handed on: progress is lost only back to the last committed checkpoint.
//! - Events are published after the write they describe: `started`, `checkpointed`..., then exactly one of
//!   `completed` / `failed` (or the job leaves with `migrated` / `parked`, published by whoever commits it).
//! - A job that raises, hangs or kills its worker fails alone; the node goes on.
//!
//! The stay is split in three: [`start`] takes the job on (ownership, checkpoint, code), [`phase`] decides as a
//! pure state machine what happens while it runs, and [`driver`] carries the decisions out.
mod driver;
pub mod phase;
mod start;

use super::pool::WorkerPool;
use crate::bus::{Bus, Message as NatsMessage};
use crate::checkpoint::Envelope;
use crate::config::NodeConfig;
use crate::wire::{Adopt, Assignment, JobLoad};
use crate::worker::ModuleSpec;
use actix::prelude::*;
use phase::Event;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// How a job left the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnd {
    Completed,
    Failed,
    /// Handed to another node.
    Moved,
    /// Checkpointed and waiting for placement.
    Parked,
    /// A session answered a request: checkpointed, it waits for the next one.
    Idle,
    /// Another node (or placement) owns it now: stopped without a word.
    Fenced,
    /// An adopt that this node refused or that turned out not to be its job.
    NotTaken,
}

/// Sent to the node when the job actor is done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct JobDone {
    pub job_id: String,
    /// Which hosting of the job ended (a node may host a job again while its last stay is winding down).
    pub token: u64,
    pub end: JobEnd,
}

/// Leave the node: move to `to`, or park when `to` is none.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub to: Option<String>,
}

/// Check ownership now (placement saw the job reported here but believes it is elsewhere).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CheckOwner;

/// A function's module as a node fetched it.
#[derive(Debug, Clone)]
struct CachedFunction {
    spec: ModuleSpec,
    /// A deployed function's entry (an inline source's is the record's).
    entry: String,
    /// An inline source's last write to the store of sources (seconds since the epoch; 0 for a deployed one).
    written_s: u64,
}

/// Function modules, shared by a node's jobs: deployed ones by (tenant/name, revision), inline sources by
/// (`sha256/<digest>`, 0).
#[derive(Debug, Default)]
pub struct FunctionCache {
    map: Mutex<HashMap<(String, u64), CachedFunction>>,
    capacity: usize,
}

impl FunctionCache {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self { map: Mutex::new(HashMap::new()), capacity: capacity.max(1) })
    }
    fn get(&self, name: &str, rev: u64) -> Option<CachedFunction> {
        self.map.lock().ok()?.get(&(name.to_string(), rev)).cloned()
    }
    fn put(&self, name: &str, rev: u64, v: CachedFunction) {
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= self.capacity {
                m.clear();
            }
            m.insert((name.to_string(), rev), v);
        }
    }
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Everything a job actor needs from its node.
#[derive(Clone)]
pub struct JobContext {
    pub node_id: String,
    pub bus: Bus,
    pub pool: Arc<WorkerPool>,
    pub functions: Arc<FunctionCache>,
    pub cfg: Arc<NodeConfig>,
    /// Verifies checkpoints before they reach a worker.
    pub envelope: Arc<Envelope>,
    /// Counts the job's events and moves.
    pub metrics: crate::metrics::NodeMetrics,
}

/// What the node shows of a job in its load report (shared with the node actor).
#[derive(Debug, Default)]
pub struct JobStatus {
    pub priority: i32,
    /// Running time at the start of the current slice.
    run_base_ms: u64,
    slice_started: Option<std::time::Instant>,
    checkpoint_bytes: u64,
    leaving: bool,
}

impl JobStatus {
    /// Whether the job has been asked to leave (a move, a park or the end of a slice).
    pub fn is_leaving(&self) -> bool {
        self.leaving
    }

    pub fn load(&self, job_id: &str) -> JobLoad {
        JobLoad {
            job_id: job_id.to_string(),
            priority: self.priority,
            run_ms: self.run_base_ms + self.slice_started.map_or(0, |t| t.elapsed().as_millis() as u64),
            checkpoint_bytes: self.checkpoint_bytes,
            leaving: self.leaving,
        }
    }
}

/// How a job comes to the node.
pub enum JobStart {
    /// From placement: a fresh start, or a resume from the record's checkpoint.
    Assigned(Box<Assignment>),
    /// From another node; the request is answered once the checkpoint verifies.
    Adopted { adopt: Box<Adopt>, request: NatsMessage },
}

/// The job's address on its node: the node sends it [`Leave`] and [`CheckOwner`], and it tells the node
/// [`JobDone`] and stops when the stay ends. The stay itself is one task on this actor's context (the driver
/// feeding the pure [`phase::Machine`]) that waits on the worker, NATS writes and timers in one `select!`; the
/// handlers pass their message into that task's channel, because a handler holding the stay across its awaits
/// (an atomic response) would keep the mailbox shut, and `Leave` must reach a job that is waiting on its worker.
pub struct JobActor {
    token: u64,
    start: Option<JobStart>,
    jc: JobContext,
    node: Recipient<JobDone>,
    status: Arc<Mutex<JobStatus>>,
    cmds: mpsc::UnboundedSender<Event>,
    rx: Option<mpsc::UnboundedReceiver<Event>>,
}

impl JobActor {
    pub fn new(
        token: u64,
        start: JobStart,
        jc: JobContext,
        node: Recipient<JobDone>,
        status: Arc<Mutex<JobStatus>>,
    ) -> Self {
        let (cmds, rx) = mpsc::unbounded_channel();
        Self { token, start: Some(start), jc, node, status, cmds, rx: Some(rx) }
    }
}

impl Actor for JobActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (Some(start), Some(rx)) = (self.start.take(), self.rx.take()) else {
            ctx.stop();
            return;
        };
        let jc = self.jc.clone();
        let status = self.status.clone();
        let fut = async move { driver::drive(start, jc, rx, status).await };
        ctx.spawn(actix::fut::wrap_future::<_, Self>(fut).map(|(job_id, end), act, ctx| {
            act.node.do_send(JobDone { job_id, token: act.token, end });
            ctx.stop();
        }));
    }
}

impl Handler<Leave> for JobActor {
    type Result = ();
    fn handle(&mut self, m: Leave, _: &mut Context<Self>) {
        let _ = self.cmds.send(Event::Leave { to: m.to });
    }
}

impl Handler<CheckOwner> for JobActor {
    type Result = ();
    fn handle(&mut self, _: CheckOwner, _: &mut Context<Self>) {
        let _ = self.cmds.send(Event::CheckOwner);
    }
}

/// The longest a slice may run: the job's `r_limit_ms` and the node's limit, less the margin a checkpoint
/// needs, in ms. None: no slicing.
fn slice_limit(cfg: &NodeConfig, job_limit: Option<u64>) -> Option<u64> {
    let node_limit = (cfg.r_limit_ms > 0).then_some(cfg.r_limit_ms);
    let limit = match (job_limit, node_limit) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    let margin = cfg.slice_margin_ms.min(limit / 4);
    Some(limit - margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_end_a_margin_before_the_limit() {
        let mut cfg = NodeConfig { slice_margin_ms: 20, ..Default::default() };
        assert_eq!(slice_limit(&cfg, None), None);
        assert_eq!(slice_limit(&cfg, Some(200)), Some(180));
        // The margin is at most a quarter of a short limit.
        assert_eq!(slice_limit(&cfg, Some(60)), Some(45));
        cfg.r_limit_ms = 100;
        assert_eq!(slice_limit(&cfg, Some(500)), Some(80));
        assert_eq!(slice_limit(&cfg, None), Some(80));
    }
}
