//! The placement actor: carries out the [`Scheduler`]'s decisions on the mesh. It places waiting jobs (a
//! compare-and-set of the record to `placed` on the chosen node, then the assignment), evacuates hot nodes,
//! fences stale copies, reads records to check on jobs, and takes jobs back from lost nodes so they resume
//! from their last checkpoints.
//!
//! Guarantees: a job is never dropped (it is in the record store, and waits in the queue until a node can take
//! it); placement never blocks on a job (every request runs beside the actor; its outcome comes back as a
//! message); a job changes owner only by a compare-and-set on its record, so a placement that lost its lease
//! while still running cannot place a job twice.
pub use super::scheduler::{choose_node, NodeView, QueuedJob};
use super::scheduler::{Action, Rules, Scheduler, Whereabouts};
use crate::bus::{Bus, BusErrorKind};
use crate::config::PlacementConfig;
use crate::metrics::PlacementMetrics;
use crate::wire::{now_ms, Assignment, EventKind, JobEvent, JobRecord, JobState, LoadReport, NodeCommand, NodeGone};
use actix::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A job waits for a node (new from the gateway, parked by a node, or recovered after a takeover).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue(pub QueuedJob);

/// A waiting job the leader's rescan found in the records: queued unless placement knows it
/// ([`Scheduler::enqueue_unknown`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stranded(pub QueuedJob);

/// A job found running at a takeover: placement counts it on its node.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Running {
    pub job_id: String,
    pub at: Whereabouts,
}

/// A job the leader's rescan found placed or moving: tracked unless placement knows it already.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FoundRunning {
    pub job_id: String,
    pub at: Whereabouts,
}

/// A node's load report.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NodeLoad(pub LoadReport);

/// A node's radio load changed (`radio.load.<node>`): placement acts on it before the node's next report.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RadioChanged {
    pub node: String,
    pub load: f64,
}

/// A job ended (its final event was seen).
#[derive(Message)]
#[rtype(result = "()")]
pub struct JobEnded {
    pub job_id: String,
}

/// A job runs on `to` after a move (its `migrated` event).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Migrated {
    pub job_id: String,
    pub to: String,
}

/// A record read for a check.
#[derive(Message)]
#[rtype(result = "()")]
struct Observed {
    record: JobRecord,
    revision: u64,
}

/// How soon a record that could not be read or taken back is read again, when no tick would.
const CHECK_AGAIN: Duration = Duration::from_millis(250);

#[derive(Message)]
#[rtype(result = "()")]
struct CheckFailed {
    job_id: String,
}

/// How sending a job to a node ended, when it did not start there.
#[derive(Message)]
#[rtype(result = "()")]
struct AssignFailed {
    job_id: String,
    node: String,
    gone: bool,
    /// The job, back to waiting (its record was put back); none when the record must be checked instead.
    again: Option<QueuedJob>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Tick;

/// Stop the actor (leadership lost, or shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

/// What `placement.nodes` answers: the known nodes and the queue length.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodesSnapshot {
    pub nodes: Vec<NodeView>,
    pub queued: usize,
}

#[derive(Message)]
#[rtype(result = "NodesSnapshot")]
pub struct Snapshot;

pub struct PlacementActor {
    cfg: PlacementConfig,
    bus: Bus,
    sched: Scheduler,
    metrics: PlacementMetrics,
}

impl PlacementActor {
    pub fn new(cfg: PlacementConfig, bus: Bus, metrics: PlacementMetrics) -> Self {
        let sched = Scheduler::new(Rules::from_config(&cfg), now_ms());
        Self { cfg, bus, sched, metrics }
    }

    fn run_actions(&mut self, actions: Vec<Action>, ctx: &mut Context<Self>) {
        for a in actions {
            self.run_action(a, ctx);
        }
    }

    fn run_action(&mut self, a: Action, ctx: &mut Context<Self>) {
        let bus = self.bus.clone();
        let me = ctx.address();
        match a {
            Action::Assign { job, node } => {
                let timeout = Duration::from_millis(self.cfg.dispatch_timeout_ms);
                let metrics = self.metrics.clone();
                tokio::spawn(async move {
                    match assign(&bus, job, &node, timeout).await {
                        Some(failed) => me.do_send(failed),
                        None => metrics.placed(),
                    }
                });
            }
            Action::Evacuate { node, moves } => {
                let timeout = Duration::from_millis(self.cfg.dispatch_timeout_ms);
                tracing::info!(node = %node, jobs = moves.len(), "evacuating");
                self.metrics.evacuating(moves.len());
                tokio::spawn(async move {
                    match bus.command(&node, &NodeCommand::Evacuate { moves }, timeout).await {
                        // Jobs the node does not hold: their records say where they are.
                        Ok(reply) => {
                            for job_id in reply.unknown {
                                check(&bus, &me, job_id).await;
                            }
                        }
                        // The orphan check brings them back if the node never acts.
                        Err(e) => tracing::warn!(node = %node, "evacuation not delivered: {e}"),
                    }
                });
            }
            Action::Fence { node, jobs } => {
                let timeout = Duration::from_millis(self.cfg.dispatch_timeout_ms);
                tracing::info!(node = %node, ?jobs, "fencing stale copies");
                tokio::spawn(async move {
                    if let Err(e) = bus.command(&node, &NodeCommand::Fence { jobs }, timeout).await {
                        tracing::warn!(node = %node, "fence not delivered: {e}");
                    }
                });
            }
            Action::Check { job_id } => {
                tokio::spawn(async move { check(&bus, &me, job_id).await });
            }
            Action::TakeBack { record, revision, reason } => {
                tokio::spawn(async move {
                    let job_id = record.job_id.clone();
                    let from = record.node.clone();
                    let waiting = to_waiting(record, &reason);
                    match bus.update_record(&waiting, revision).await {
                        Ok(rev) => {
                            tracing::info!(job = %job_id, ?from, reason, "taken back");
                            let seq = waiting.checkpoint.as_ref().map(|c| c.seq);
                            let ev = EventKind::Parked { node: from, reason, seq };
                            let _ = bus.publish_event(&waiting.tenant, &JobEvent::new(&job_id, ev)).await;
                            me.do_send(Enqueue(QueuedJob { record: waiting, revision: rev }));
                        }
                        Err(e) if e.kind == BusErrorKind::WrongRevision => check(&bus, &me, job_id).await,
                        Err(e) => {
                            tracing::warn!(job = %job_id, "cannot take the job back yet: {e}");
                            me.do_send(CheckFailed { job_id });
                        }
                    }
                });
            }
            Action::Gone { node, last_seen_ms, jobs } => {
                tracing::warn!(node = %node, jobs = jobs.len(), "node gone");
                tokio::spawn(async move {
                    let _ = bus.publish_gone(&NodeGone { node, last_seen_ms, lost_jobs: jobs }).await;
                });
            }
        }
    }
}

/// The record of a job put back to waiting: parked when it has a checkpoint to resume from, else queued.
fn to_waiting(mut r: JobRecord, reason: &str) -> JobRecord {
    r.state = if r.checkpoint.is_some() { JobState::Parked } else { JobState::Queued };
    r.parked = Some(reason.to_string());
    r.node = None;
    r.moving_from = None;
    r.epoch += 1;
    r
}

/// Read a job's record for the scheduler.
async fn check(bus: &Bus, me: &Addr<PlacementActor>, job_id: String) {
    match bus.record(&job_id).await {
        Ok(Some((record, revision))) => me.do_send(Observed { record, revision }),
        // Expired or never recorded: nothing left to track.
        Ok(None) => me.do_send(JobEnded { job_id }),
        Err(e) => {
            tracing::warn!(job = %job_id, "cannot read the record: {e}");
            me.do_send(CheckFailed { job_id });
        }
    }
}

/// Place a waiting job on `node`: compare-and-set its record to `placed` there, then send it. Returns what to
/// tell the actor when the job did not start there.
async fn assign(bus: &Bus, job: QueuedJob, node: &str, timeout: Duration) -> Option<AssignFailed> {
    let job_id = job.record.job_id.clone();
    let original = job.record.clone();
    let mut rec = job.record;
    rec.state = JobState::Placed;
    rec.node = Some(node.to_string());
    rec.epoch += 1;
    rec.slices += 1;
    rec.parked = None;
    rec.moving_from = None;
    let revision = match bus.update_record(&rec, job.revision).await {
        Ok(r) => r,
        // Someone else moved it on (another placement, or it ended): the record says what is true.
        Err(e) if e.kind == BusErrorKind::WrongRevision => {
            return Some(AssignFailed { job_id, node: node.into(), gone: false, again: None })
        }
        Err(e) => {
            tracing::warn!(job = %job_id, "cannot record the placement: {e}");
            tokio::time::sleep(Duration::from_millis(200)).await;
            let again = QueuedJob { record: original, revision: job.revision };
            return Some(AssignFailed { job_id, node: node.into(), gone: false, again: Some(again) });
        }
    };
    let placed = JobEvent::new(&job_id, EventKind::Placed { node: node.to_string() });
    let _ = bus.publish_event(&rec.tenant, &placed).await;
    let a = Assignment { record: rec.clone(), revision };
    let (gone, why) = match bus.assign(node, &a, timeout).await {
        Ok(r) if r.accepted => return None,
        Ok(r) => (false, r.reason.unwrap_or_else(|| "refused".into())),
        Err(e) => (e.kind == BusErrorKind::NoResponders, e.to_string()),
    };
    // It did not start there (refused, no such node), or may have (timed out): put the record back to waiting,
    // which also fences a node that did start it.
    tracing::info!(job = %job_id, node, "assignment failed: {why}");
    let waiting = to_waiting(rec, "refused");
    match bus.update_record(&waiting, revision).await {
        Ok(rev) => Some(AssignFailed {
            job_id,
            node: node.into(),
            gone,
            again: Some(QueuedJob { record: waiting, revision: rev }),
        }),
        Err(_) => Some(AssignFailed { job_id, node: node.into(), gone, again: None }),
    }
}

impl Actor for PlacementActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let every = Duration::from_millis((self.cfg.report_interval_ms / 2).clamp(20, 250));
        ctx.run_interval(every, |_, ctx| ctx.notify(Tick));
        tracing::info!(threshold = self.cfg.radio_threshold, "placement leading");
    }
}

impl Handler<Enqueue> for PlacementActor {
    type Result = ();
    fn handle(&mut self, m: Enqueue, ctx: &mut Context<Self>) {
        let a = self.sched.enqueue(m.0, now_ms());
        self.run_actions(a, ctx);
    }
}

impl Handler<Stranded> for PlacementActor {
    type Result = ();
    fn handle(&mut self, m: Stranded, ctx: &mut Context<Self>) {
        let a = self.sched.enqueue_unknown(m.0, now_ms());
        self.run_actions(a, ctx);
    }
}

impl Handler<Running> for PlacementActor {
    type Result = ();
    fn handle(&mut self, m: Running, _: &mut Context<Self>) {
        self.sched.adopt_running(&m.job_id, m.at, now_ms());
    }
}

impl Handler<FoundRunning> for PlacementActor {
    type Result = ();
    fn handle(&mut self, m: FoundRunning, _: &mut Context<Self>) {
        self.sched.adopt_unknown(&m.job_id, m.at, now_ms());
    }
}

impl Handler<NodeLoad> for PlacementActor {
    type Result = ();
    fn handle(&mut self, NodeLoad(r): NodeLoad, ctx: &mut Context<Self>) {
        let a = self.sched.on_load(&r, now_ms());
        self.run_actions(a, ctx);
    }
}

impl Handler<RadioChanged> for PlacementActor {
    type Result = ();
    fn handle(&mut self, m: RadioChanged, ctx: &mut Context<Self>) {
        let a = self.sched.on_radio(&m.node, m.load, now_ms());
        self.run_actions(a, ctx);
    }
}

impl Handler<JobEnded> for PlacementActor {
    type Result = ();
    fn handle(&mut self, m: JobEnded, ctx: &mut Context<Self>) {
        let a = self.sched.job_ended(&m.job_id, now_ms());
        self.run_actions(a, ctx);
    }
}

impl Handler<Migrated> for PlacementActor {
    type Result = ();
    fn handle(&mut self, m: Migrated, _: &mut Context<Self>) {
        self.sched.confirmed(&m.job_id, &m.to, now_ms());
    }
}

impl Handler<Observed> for PlacementActor {
    type Result = ();
    fn handle(&mut self, m: Observed, ctx: &mut Context<Self>) {
        let a = self.sched.observed(m.record, m.revision, now_ms());
        self.run_actions(a, ctx);
    }
}

impl Handler<CheckFailed> for PlacementActor {
    type Result = ();
    fn handle(&mut self, m: CheckFailed, ctx: &mut Context<Self>) {
        if !self.sched.check_failed(&m.job_id) {
            // Untracked (a take-back whose write failed had untracked it): nothing else would read its record
            // again, and the job would wait for the next leader. Read it again shortly.
            let job_id = m.job_id;
            ctx.run_later(CHECK_AGAIN, move |act, ctx| act.run_actions(vec![Action::Check { job_id }], ctx));
        }
    }
}

impl Handler<AssignFailed> for PlacementActor {
    type Result = ();
    fn handle(&mut self, m: AssignFailed, ctx: &mut Context<Self>) {
        self.sched.assign_failed(&m.job_id, &m.node, m.gone);
        let a = match m.again {
            Some(job) => self.sched.enqueue(job, now_ms()),
            None => vec![Action::Check { job_id: m.job_id }],
        };
        self.run_actions(a, ctx);
    }
}

impl Handler<Tick> for PlacementActor {
    type Result = ();
    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        let a = self.sched.tick(now_ms(), self.bus.is_connected());
        self.run_actions(a, ctx);
    }
}

impl Handler<Stop> for PlacementActor {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Snapshot> for PlacementActor {
    type Result = MessageResult<Snapshot>;
    fn handle(&mut self, _: Snapshot, _: &mut Context<Self>) -> Self::Result {
        MessageResult(NodesSnapshot { nodes: self.sched.views(), queued: self.sched.queued() })
    }
}
