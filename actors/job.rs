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
use super::pool::{Lease, WorkerPool};
use crate::bus::{Bus, BusErrorKind, Message as NatsMessage};
use crate::checkpoint::Envelope;
use crate::config::NodeConfig;
use crate::wire::{
    now_ms, Adopt, AssignReply, Assignment, CheckpointRef, CheckpointStore, EventKind, JobEvent, JobFailure, JobLoad,
    JobRecord, JobState, Requeue,
};
use crate::worker::protocol::{CaptureStats, CheckpointErrorKind};
use crate::worker::{CheckpointMode, FromWorker, JobErrorKind, ModuleSpec, ToWorker};
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How a job left the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnd {
    Completed,
    Failed,
    /// Handed to another node.
    Moved,
    /// Checkpointed and waiting for placement.
    Parked,
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

/// Deployed function modules by (name, revision), shared by a node's jobs.
#[derive(Debug, Default)]
pub struct FunctionCache {
    map: Mutex<HashMap<(String, u64), (ModuleSpec, String)>>,
    capacity: usize,
}

impl FunctionCache {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self { map: Mutex::new(HashMap::new()), capacity: capacity.max(1) })
    }
    fn get(&self, name: &str, rev: u64) -> Option<(ModuleSpec, String)> {
        self.map.lock().ok()?.get(&(name.to_string(), rev)).cloned()
    }
    fn put(&self, name: &str, rev: u64, v: (ModuleSpec, String)) {
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

pub struct JobActor {
    token: u64,
    start: Option<JobStart>,
    jc: JobContext,
    node: Recipient<JobDone>,
    status: Arc<Mutex<JobStatus>>,
    cmds: mpsc::UnboundedSender<Cmd>,
    rx: Option<mpsc::UnboundedReceiver<Cmd>>,
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

enum Cmd {
    Leave(Option<String>),
    CheckOwner,
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
        let fut = async move { drive(start, jc, rx, status).await };
        ctx.spawn(actix::fut::wrap_future::<_, Self>(fut).map(|(job_id, end), act, ctx| {
            act.node.do_send(JobDone { job_id, token: act.token, end });
            ctx.stop();
        }));
    }
}

impl Handler<Leave> for JobActor {
    type Result = ();
    fn handle(&mut self, m: Leave, _: &mut Context<Self>) {
        let _ = self.cmds.send(Cmd::Leave(m.to));
    }
}

impl Handler<CheckOwner> for JobActor {
    type Result = ();
    fn handle(&mut self, _: CheckOwner, _: &mut Context<Self>) {
        let _ = self.cmds.send(Cmd::CheckOwner);
    }
}

fn failure(kind: &str, message: impl Into<String>, traceback: Option<String>) -> JobFailure {
    JobFailure { kind: kind.into(), message: message.into(), traceback }
}

fn kind_name(k: JobErrorKind) -> &'static str {
    match k {
        JobErrorKind::Syntax => "syntax",
        JobErrorKind::BadEntry => "bad_entry",
        JobErrorKind::BadInput => "bad_input",
        JobErrorKind::Raised => "raised",
        JobErrorKind::BadOutput => "bad_output",
        JobErrorKind::Restore => "restore",
        JobErrorKind::Runtime => "runtime",
        JobErrorKind::OutOfMemory => "out_of_memory",
        JobErrorKind::OutputTooLarge => "output_too_large",
    }
}

/// Module name of a source: stable per source text, so a warm worker can keep it and a checkpoint taken on
/// one node restores on another.
fn module_for(source: &str, filename: &str) -> ModuleSpec {
    let digest = ring::digest::digest(&ring::digest::SHA256, source.as_bytes());
    let hex: String = digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    ModuleSpec { module_name: format!("mlfn_{hex}"), filename: filename.into(), source: source.into() }
}

async fn resolve(rec: &JobRecord, jc: &JobContext) -> Result<(ModuleSpec, String), JobFailure> {
    let f = &rec.function;
    if let Some(src) = &f.source {
        let entry = f.entry.clone().unwrap_or_else(|| "main".into());
        return Ok((module_for(src, "<job>.py"), entry));
    }
    let name = f.name.clone().unwrap_or_default();
    let rev = rec.function_revision.unwrap_or(0);
    if let Some(hit) = jc.functions.get(&name, rev) {
        let entry = f.entry.clone().unwrap_or(hit.1.clone());
        return Ok((hit.0, entry));
    }
    match jc.bus.function_at(&name, rev).await {
        Ok(Some(d)) => {
            let spec = module_for(&d.source, &format!("{name}.py"));
            jc.functions.put(&name, rev, (spec.clone(), d.entry.clone()));
            Ok((spec, f.entry.clone().unwrap_or(d.entry)))
        }
        Ok(None) => Err(failure("unknown_function", format!("function {name:?} revision {rev} is not deployed"), None)),
        Err(e) => Err(failure("runtime", format!("cannot fetch function {name:?}: {e}"), None)),
    }
}

/// Why a write to the record did not happen.
#[derive(Debug)]
enum CommitError {
    /// The record moved on: the node no longer owns the job.
    Fenced,
    /// NATS did not answer in time (the write may or may not have landed: checked on the next try).
    Unavailable(String),
}

/// What a stop-mode checkpoint is for.
#[derive(Debug, Clone, PartialEq)]
enum Exit {
    Move(String),
    Park(&'static str),
}

/// A checkpoint request in flight.
#[derive(Debug, Clone)]
enum Pending {
    Periodic { seq: u64 },
    Stop { seq: u64, exit: Exit, began_ms: u64, tries: u32 },
}

struct Driver {
    jc: JobContext,
    job_id: String,
    rec: JobRecord,
    rev: u64,
    status: Arc<Mutex<JobStatus>>,
    next_seq: u64,
    /// This hosting persisted a checkpoint (committed or not), so there may be some to clean up.
    took_checkpoint: bool,
}

impl Driver {
    fn node(&self) -> &str {
        &self.jc.node_id
    }

    async fn event(&self, kind: EventKind) {
        if let Err(e) = self.jc.bus.publish_event(&JobEvent::new(&self.job_id, kind)).await {
            tracing::warn!(job_id = %self.job_id, "cannot publish an event: {e}");
        }
    }

    /// Compare-and-set the record to `new`, retrying while NATS is unreachable for up to `retry_for`.
    async fn commit(&mut self, new: JobRecord, retry_for: Duration) -> Result<(), CommitError> {
        let deadline = Instant::now() + retry_for;
        let mut ambiguous = false;
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.jc.bus.update_record(&new, self.rev).await {
                Ok(rev) => {
                    self.rec = new;
                    self.rev = rev;
                    return Ok(());
                }
                Err(e) if e.kind == BusErrorKind::WrongRevision => {
                    if ambiguous {
                        // An earlier try may have landed without its answer reaching us.
                        if let Ok(Some((cur, rev))) = self.jc.bus.record(&self.job_id).await {
                            if cur == new {
                                self.rec = new;
                                self.rev = rev;
                                return Ok(());
                            }
                        }
                    }
                    return Err(CommitError::Fenced);
                }
                Err(e) => {
                    ambiguous = true;
                    if Instant::now() + backoff > deadline {
                        return Err(CommitError::Unavailable(e.to_string()));
                    }
                    tracing::warn!(job_id = %self.job_id, "record write failed, retrying: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    fn retry_for(&self) -> Duration {
        Duration::from_millis(self.jc.cfg.commit_retry_ms)
    }

    /// Persist a checkpoint, retrying while NATS is unreachable for up to `retry_for`.
    async fn persist(&mut self, seq: u64, envelope: &[u8], retry_for: Duration) -> Result<CheckpointStore, String> {
        let deadline = Instant::now() + retry_for;
        let mut backoff = Duration::from_millis(50);
        self.took_checkpoint = true;
        loop {
            match self.jc.bus.persist_checkpoint(&self.job_id, self.rec.epoch, seq, envelope).await {
                Ok(at) => return Ok(at),
                Err(e) if Instant::now() + backoff > deadline => return Err(e.to_string()),
                Err(e) => {
                    tracing::warn!(job_id = %self.job_id, "cannot persist checkpoint {seq}, retrying: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    fn set_status(&self, f: impl FnOnce(&mut JobStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    /// The final outcome: commit, then publish. Returns how the job ended.
    async fn finish(&mut self, outcome: Result<serde_json::Value, JobFailure>, run_ms: u64) -> JobEnd {
        let mut rec = self.rec.clone();
        rec.node = Some(self.node().to_string());
        rec.finished_ms = Some(now_ms());
        rec.run_ms = run_ms;
        let (end, kind) = match outcome {
            Ok(output) => {
                rec.state = JobState::Completed;
                rec.output = Some(output.clone());
                (JobEnd::Completed, EventKind::Completed { node: self.node().to_string(), output })
            }
            Err(error) => {
                rec.state = JobState::Failed;
                rec.error = Some(error.clone());
                (JobEnd::Failed, EventKind::Failed { node: Some(self.node().to_string()), error })
            }
        };
        match self.commit(rec, self.retry_for()).await {
            Ok(()) => {
                self.event(kind).await;
                // Its checkpoints are of no use any more (a job that never took one has none to remove).
                if self.rec.checkpoints > 0 || self.took_checkpoint {
                    let (bus, job_id, last) = (self.jc.bus.clone(), self.job_id.clone(), self.rec.checkpoint.clone());
                    tokio::spawn(async move {
                        let _ = bus.purge_checkpoints(&job_id).await;
                        if let Some(c) = last {
                            let _ = bus.drop_checkpoint(&c.store).await;
                        }
                    });
                }
                end
            }
            Err(CommitError::Fenced) => {
                tracing::info!(job_id = %self.job_id, "the job is owned elsewhere now: its outcome here is dropped");
                JobEnd::Fenced
            }
            Err(CommitError::Unavailable(e)) => {
                tracing::error!(job_id = %self.job_id, "cannot commit the outcome: {e}; the job resumes elsewhere");
                JobEnd::Fenced
            }
        }
    }
}

/// Run the job until it leaves the node; returns its id and how it left.
async fn drive(
    start: JobStart,
    jc: JobContext,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    status: Arc<Mutex<JobStatus>>,
) -> (String, JobEnd) {
    let (job_id, adopted) = match &start {
        JobStart::Assigned(a) => (a.record.job_id.clone(), None),
        JobStart::Adopted { adopt, .. } => (adopt.job_id.clone(), Some((adopt.from.clone(), adopt.began_ms))),
    };
    let established = match establish(start, &jc).await {
        Ok(e) => e,
        Err(end) => return (job_id, end),
    };
    let Established { rec, rev, resume } = established;
    let run_base_ms = resume.as_ref().map_or(0, |(c, _)| c.run_ms);
    let mut d = Driver {
        jc: jc.clone(),
        job_id: job_id.clone(),
        next_seq: rec.checkpoint.as_ref().map_or(0, |c| c.seq) + 1,
        rec,
        rev,
        status,
        took_checkpoint: false,
    };
    d.set_status(|s| {
        s.priority = d.rec.priority;
        s.run_base_ms = run_base_ms;
        s.checkpoint_bytes = d.rec.checkpoint.as_ref().map_or(0, |c| c.bytes);
    });
    let end = run(&mut d, &mut cmds, resume, run_base_ms, adopted).await;
    (job_id, end)
}

struct Established {
    rec: JobRecord,
    rev: u64,
    /// The checkpoint to restore and its bytes (verified); none: a fresh start.
    resume: Option<(CheckpointRef, Vec<u8>)>,
}

/// Take ownership as handed over, and get the checkpoint to resume from.
async fn establish(start: JobStart, jc: &JobContext) -> Result<Established, JobEnd> {
    match start {
        JobStart::Assigned(a) => {
            let a = *a;
            let rec = a.record;
            let resume = match rec.checkpoint.clone() {
                None => None,
                Some(c) => match fetch_verified(jc, &rec.job_id, &c).await {
                    Ok(bytes) => Some((c, bytes)),
                    Err(e) => {
                        // Without its checkpoint the job can only start over, which is still exact.
                        tracing::error!(job_id = %rec.job_id, "checkpoint {} unusable ({e}): starting over", c.seq);
                        None
                    }
                },
            };
            Ok(Established { rec, rev: a.revision, resume })
        }
        JobStart::Adopted { adopt, request } => {
            let bus = &jc.bus;
            let t0 = Instant::now();
            let refuse = |why: String| {
                let (bus, request) = (bus.clone(), request.clone());
                async move {
                    let _ = bus.reply(&request, &AssignReply { accepted: false, reason: Some(why) }).await;
                }
            };
            // The checkpoint must verify (signature, job, sequence) before anything else happens.
            let resume = match &adopt.checkpoint {
                None => None,
                Some(c) if adopt.inline.is_empty() => match fetch_verified(jc, &adopt.job_id, c).await {
                    Ok(b) => Some((c.clone(), b)),
                    Err(e) => {
                        refuse(format!("checkpoint not available: {e}")).await;
                        return Err(JobEnd::NotTaken);
                    }
                },
                Some(c) => match verify(jc, &adopt.job_id, c, &adopt.inline) {
                    Ok(()) => Some((c.clone(), adopt.inline.clone())),
                    Err(e) => {
                        refuse(e).await;
                        return Err(JobEnd::NotTaken);
                    }
                },
            };
            let _ = bus.reply(&request, &AssignReply { accepted: true, reason: None }).await;
            tracing::debug!(job_id = %adopt.job_id, replied_us = t0.elapsed().as_micros() as u64, "adopt: verified");
            // The record says whether the job really is ours now.
            match bus.record(&adopt.job_id).await {
                Ok(Some((rec, rev)))
                    if rev == adopt.revision
                        && rec.state == JobState::Moving
                        && rec.node.as_deref() == Some(jc.node_id.as_str()) =>
                {
                    tracing::debug!(job_id = %adopt.job_id, read_us = t0.elapsed().as_micros() as u64, "adopt: record read");
                    Ok(Established { rec, rev, resume })
                }
                Ok(other) => {
                    tracing::warn!(job_id = %adopt.job_id, "adopted job is not ours per its record ({:?})",
                        other.map(|(r, rev)| (r.state, r.node, rev)));
                    Err(JobEnd::NotTaken)
                }
                Err(e) => {
                    tracing::warn!(job_id = %adopt.job_id, "cannot read the adopted job's record: {e}");
                    Err(JobEnd::NotTaken)
                }
            }
        }
    }
}

fn verify(jc: &JobContext, job_id: &str, c: &CheckpointRef, bytes: &[u8]) -> Result<(), String> {
    let body = jc.envelope.open(bytes).map_err(|e| format!("checkpoint refused: {e}"))?;
    if body.job_id != job_id || body.seq != c.seq {
        return Err(format!("checkpoint refused: it is {} #{}, expected {job_id} #{}", body.job_id, body.seq, c.seq));
    }
    Ok(())
}

async fn fetch_verified(jc: &JobContext, job_id: &str, c: &CheckpointRef) -> Result<Vec<u8>, String> {
    let mut last = String::new();
    for attempt in 0..5 {
        match jc.bus.fetch_checkpoint(&c.store).await {
            Ok(bytes) => {
                verify(jc, job_id, c, &bytes)?;
                return Ok(bytes);
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
    }
    Err(last)
}

/// The running phase: from a worker to the job leaving the node.
async fn run(
    d: &mut Driver,
    cmds: &mut mpsc::UnboundedReceiver<Cmd>,
    resume: Option<(CheckpointRef, Vec<u8>)>,
    run_base_ms: u64,
    adopted: Option<(String, u64)>,
) -> JobEnd {
    let cfg = d.jc.cfg.clone();
    let job_timeout = Duration::from_millis(cfg.job_timeout_ms);
    if run_base_ms >= cfg.job_timeout_ms {
        let f = failure("timeout", format!("job timeout: ran {run_base_ms} ms in all (node.job_timeout_ms)"), None);
        return d.finish(Err(f), run_base_ms).await;
    }
    let (module, entry) = match resolve(&d.rec, &d.jc).await {
        Ok(m) => m,
        Err(f) => return d.finish(Err(f), run_base_ms).await,
    };
    let mut lease = match d.jc.pool.acquire().await {
        Ok(l) => l,
        Err(e) => return d.finish(Err(failure("runtime", format!("worker could not start: {e}"), None)), 0).await,
    };
    let resumed_from = resume.as_ref().map(|(c, _)| c.seq);
    let first = match resume {
        Some((_, checkpoint)) => ToWorker::Restore { job_id: d.job_id.clone(), module, checkpoint },
        None => {
            let input_json = serde_json::to_string(&d.rec.input).unwrap_or_else(|_| "null".into());
            ToWorker::Run { job_id: d.job_id.clone(), module, entry, input_json, next_seq: d.next_seq }
        }
    };
    if let Err(e) = lease.worker.send(&first).await {
        let status = d.jc.pool.reap(lease).await;
        let f = failure("worker_exited", format!("worker exited before the job started: {e} ({status})"), None);
        return d.finish(Err(f), run_base_ms).await;
    }
    let slice_limit = slice_limit(&cfg, d.rec.r_limit_ms);
    let periodic = (cfg.checkpoint_interval_ms > 0).then(|| Duration::from_millis(cfg.checkpoint_interval_ms));
    let mut slice_started: Option<Instant> = None;
    let mut pending: Option<Pending> = None;
    let mut queued_exit: Option<Exit> = None;
    let mut next_periodic: Option<Instant> = None;
    let mut periodic_off = false;
    let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
    // Until it runs, only the job timeout applies (it counts from now: start-up and restore included).
    let mut timeout_at = Instant::now() + job_timeout.saturating_sub(Duration::from_millis(run_base_ms));
    let run_ms = |started: Option<Instant>| run_base_ms + started.map_or(0, |t| t.elapsed().as_millis() as u64);
    loop {
        let slice_at = match (slice_started, slice_limit, &pending) {
            (Some(t), Some(l), None) if queued_exit.is_none() => Some(t + l),
            _ => None,
        };
        let periodic_at =
            if pending.is_none() && queued_exit.is_none() && !periodic_off { next_periodic } else { None };
        let wake = [slice_at, periodic_at, Some(timeout_at)].into_iter().flatten().min().unwrap_or(far);
        tokio::select! {
            msg = lease.worker.recv() => {
                let Some(msg) = msg else {
                    // The worker is gone without a word (os._exit, a segfault, the OOM killer).
                    let status = d.jc.pool.reap(lease).await;
                    let f = failure("worker_exited", format!("worker exited: {status}"), None);
                    return d.finish(Err(f), run_ms(slice_started)).await;
                };
                match msg {
                    FromWorker::Started { .. } => {
                        let now = Instant::now();
                        slice_started = Some(now);
                        timeout_at = now + job_timeout.saturating_sub(Duration::from_millis(run_base_ms));
                        next_periodic = periodic.map(|p| now + p);
                        d.set_status(|s| s.slice_started = Some(std::time::Instant::now()));
                        if let Some((from, began_ms)) = &adopted {
                            // Ours for good once the record says so.
                            let mut rec = d.rec.clone();
                            rec.state = JobState::Placed;
                            rec.moving_from = None;
                            rec.slices += 1;
                            match d.commit(rec, d.retry_for()).await {
                                Ok(()) => {
                                    let ms = now_ms().saturating_sub(*began_ms) as f64;
                                    let bytes = d.rec.checkpoint.as_ref().map_or(0, |c| c.bytes);
                                    d.event(EventKind::Migrated { from: from.clone(), to: d.node().to_string(), ms, bytes }).await;
                                }
                                Err(_) => {
                                    d.jc.pool.discard(lease).await;
                                    return JobEnd::Fenced;
                                }
                            }
                        }
                        d.event(EventKind::Started { node: d.node().to_string(), resumed_from }).await;
                        if let Some(exit) = queued_exit.take() {
                            pending = Some(request_stop(&mut lease, d, exit, now_ms(), &cfg).await);
                        }
                    }
                    FromWorker::Restored { restore_us, .. } => {
                        tracing::debug!(job_id = %d.job_id, restore_us, "restored");
                    }
                    FromWorker::Ready { .. } => {}
                    FromWorker::Completed { output_json, .. } => {
                        let run = run_ms(slice_started);
                        settle(lease, pending.is_some(), &d.jc.pool).await;
                        let out = serde_json::from_str(&output_json)
                            .map_err(|e| failure("bad_output", format!("output is not JSON: {e}"), None));
                        return d.finish(out, run).await;
                    }
                    FromWorker::Failed { error, .. } => {
                        let run = run_ms(slice_started);
                        settle(lease, pending.is_some(), &d.jc.pool).await;
                        return d.finish(Err(failure(kind_name(error.kind), error.message, error.traceback)), run).await;
                    }
                    FromWorker::Checkpointed { seq, envelope, stats, stopped } => {
                        let at_ms = run_ms(slice_started);
                        match pending.take() {
                            Some(Pending::Stop { exit, began_ms, .. }) if stopped => {
                                // The worker is on its way out; reaping it is not on the move's path.
                                let pool = d.jc.pool.clone();
                                tokio::spawn(async move { pool.reap(lease).await });
                                let ck = Captured { seq, envelope, stats, run_ms: at_ms };
                                return leave(d, exit, Some(ck), began_ms).await;
                            }
                            Some(Pending::Periodic { seq: want }) if want == seq && !stopped => {
                                match periodic_commit(d, seq, &envelope, &stats, at_ms).await {
                                    Ok(()) => {}
                                    Err(CommitError::Fenced) => {
                                        d.jc.pool.discard(lease).await;
                                        return JobEnd::Fenced;
                                    }
                                    Err(CommitError::Unavailable(e)) => {
                                        tracing::warn!(job_id = %d.job_id, "checkpoint {seq} not committed: {e}");
                                    }
                                }
                                next_periodic = periodic.map(|p| Instant::now() + p);
                                if let Some(exit) = queued_exit.take() {
                                    pending = Some(request_stop(&mut lease, d, exit, now_ms(), &cfg).await);
                                }
                            }
                            other => {
                                tracing::warn!(job_id = %d.job_id, seq, stopped, "unexpected checkpoint ({other:?})");
                                if stopped {
                                    // The worker is gone with the job's state: treat it as a stop to park.
                                    d.jc.pool.reap(lease).await;
                                    let ck = Captured { seq, envelope, stats, run_ms: at_ms };
                                    return leave(d, Exit::Park("evacuated"), Some(ck), now_ms()).await;
                                }
                                pending = other;
                            }
                        }
                    }
                    FromWorker::CheckpointFailed { seq, error } => match pending.take() {
                        Some(Pending::Periodic { seq: want }) if want == seq => {
                            if error.kind == CheckpointErrorKind::Unpicklable {
                                tracing::warn!(job_id = %d.job_id, "no periodic checkpoints for this job: {}", error.message);
                                periodic_off = true;
                            }
                            next_periodic = periodic.map(|p| Instant::now() + p);
                            if let Some(exit) = queued_exit.take() {
                                pending = Some(request_stop(&mut lease, d, exit, now_ms(), &cfg).await);
                            }
                        }
                        Some(Pending::Stop { seq: want, exit, began_ms, tries }) if want == seq => {
                            let retry = match (&exit, error.kind) {
                                // Not running yet or any more: a Completed may be on its way; try again shortly.
                                (_, CheckpointErrorKind::NoJob) => tries < 20,
                                // A slice cannot end where the job cannot be resumed: keep going and try again.
                                (Exit::Park("slice"), CheckpointErrorKind::Deadline) => true,
                                _ => false,
                            };
                            if retry {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                                let mut p = request_stop(&mut lease, d, exit, began_ms, &cfg).await;
                                if let Pending::Stop { tries: t, .. } = &mut p {
                                    *t = tries + 1;
                                }
                                pending = Some(p);
                            } else {
                                // The radio needs the node now: leave from the last committed checkpoint.
                                tracing::warn!(job_id = %d.job_id, "cannot checkpoint to leave ({}): resuming from the last committed checkpoint", error.message);
                                d.jc.pool.discard(lease).await;
                                return leave(d, exit, None, began_ms).await;
                            }
                        }
                        other => pending = other,
                    },
                }
            }
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Leave(to)) => {
                    let exit = match to {
                        Some(n) if n != d.node() => Exit::Move(n),
                        _ => Exit::Park("evacuated"),
                    };
                    d.set_status(|s| s.leaving = true);
                    match (&pending, slice_started) {
                        (Some(Pending::Stop { .. }), _) => {}
                        (Some(Pending::Periodic { .. }), _) | (None, None) => queued_exit = Some(exit),
                        (None, Some(_)) => pending = Some(request_stop(&mut lease, d, exit, now_ms(), &cfg).await),
                    }
                }
                Some(Cmd::CheckOwner) => {
                    let ours = matches!(d.jc.bus.record(&d.job_id).await, Ok(Some((_, rev))) if rev == d.rev);
                    if !ours {
                        tracing::info!(job_id = %d.job_id, "the job is owned elsewhere: stopping it here");
                        d.jc.pool.discard(lease).await;
                        return JobEnd::Fenced;
                    }
                }
                None => {}
            },
            _ = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                if now >= timeout_at {
                    d.jc.pool.discard(lease).await;
                    let f = failure(
                        "timeout",
                        format!("job timeout: still running after {} ms in all (node.job_timeout_ms); worker killed", cfg.job_timeout_ms),
                        None,
                    );
                    return d.finish(Err(f), run_ms(slice_started)).await;
                }
                if slice_at.is_some_and(|t| now >= t) {
                    d.set_status(|s| s.leaving = true);
                    pending = Some(request_stop(&mut lease, d, Exit::Park("slice"), now_ms(), &cfg).await);
                } else if periodic_at.is_some_and(|t| now >= t) {
                    let seq = d.next_seq;
                    d.next_seq += 1;
                    let req = ToWorker::Checkpoint { seq, mode: CheckpointMode::Continue, deadline_ms: 200 };
                    if lease.worker.send(&req).await.is_ok() {
                        pending = Some(Pending::Periodic { seq });
                    }
                    next_periodic = None;
                }
            }
        }
    }
}

/// The longest a slice may run: the job's `r_limit_ms` and the node's limit, less the margin a checkpoint
/// needs. None: no slicing.
fn slice_limit(cfg: &NodeConfig, job_limit: Option<u64>) -> Option<Duration> {
    let node_limit = (cfg.r_limit_ms > 0).then_some(cfg.r_limit_ms);
    let limit = match (job_limit, node_limit) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    let margin = cfg.slice_margin_ms.min(limit / 4);
    Some(Duration::from_millis(limit - margin))
}

async fn request_stop(lease: &mut Lease, d: &mut Driver, exit: Exit, began_ms: u64, cfg: &NodeConfig) -> Pending {
    let seq = d.next_seq;
    d.next_seq += 1;
    let deadline_ms = match exit {
        Exit::Park("slice") => cfg.slice_margin_ms.max(20),
        _ => cfg.evacuate_deadline_ms,
    };
    let _ = lease.worker.send(&ToWorker::Checkpoint { seq, mode: CheckpointMode::Stop, deadline_ms }).await;
    Pending::Stop { seq, exit, began_ms, tries: 0 }
}

/// Hand a worker back after its job ended: at once when no checkpoint request is in flight, else after its
/// answer arrives (so it does not reach the next job), or kill it.
async fn settle(mut lease: Lease, in_flight: bool, pool: &Arc<WorkerPool>) {
    if in_flight {
        match tokio::time::timeout(Duration::from_millis(200), lease.worker.recv()).await {
            Ok(Some(FromWorker::CheckpointFailed { .. })) => {}
            _ => {
                pool.discard(lease).await;
                return;
            }
        }
    }
    pool.release(lease);
}

/// A checkpoint taken in stop mode.
struct Captured {
    seq: u64,
    envelope: Vec<u8>,
    stats: CaptureStats,
    run_ms: u64,
}

/// A snapshot-and-continue checkpoint: persist it, point the record at it.
async fn periodic_commit(
    d: &mut Driver,
    seq: u64,
    envelope: &[u8],
    stats: &CaptureStats,
    run_ms: u64,
) -> Result<(), CommitError> {
    // A periodic checkpoint is worth a short wait only: the next one comes soon.
    let short = Duration::from_millis(d.jc.cfg.checkpoint_interval_ms.max(500));
    let store = d.persist(seq, envelope, short).await.map_err(CommitError::Unavailable)?;
    let c = CheckpointRef {
        seq,
        bytes: envelope.len() as u64,
        run_ms,
        taken_ms: now_ms(),
        node: d.node().to_string(),
        store,
    };
    let superseded = d.rec.checkpoint.clone();
    let mut rec = d.rec.clone();
    rec.checkpoint = Some(c);
    rec.run_ms = run_ms;
    rec.checkpoints += 1;
    d.commit(rec, short).await?;
    d.set_status(|s| s.checkpoint_bytes = envelope.len() as u64);
    d.event(EventKind::Checkpointed {
        node: d.node().to_string(),
        seq,
        bytes: envelope.len() as u64,
        capture_ms: stats.capture_us as f64 / 1e3,
        mode: "continue".into(),
    })
    .await;
    if let Some(old) = superseded {
        let bus = d.jc.bus.clone();
        tokio::spawn(async move {
            let _ = bus.drop_checkpoint(&old.store).await;
        });
    }
    Ok(())
}

/// The job leaves the node from `captured` (or, when the capture failed, from its last committed
/// checkpoint): persist, commit the move or the park, hand it over.
async fn leave(d: &mut Driver, exit: Exit, captured: Option<Captured>, began_ms: u64) -> JobEnd {
    let retry = d.retry_for();
    let t0 = Instant::now();
    let (checkpoint, inline, run_ms) = match captured {
        Some(ck) => {
            let store = match d.persist(ck.seq, &ck.envelope, retry).await {
                Ok(s) => s,
                Err(e) => {
                    // Nothing else can be done: the last committed checkpoint stands, and placement finds the
                    // job again when this node reports it no more.
                    tracing::error!(job_id = %d.job_id, "cannot persist the checkpoint to leave: {e}");
                    return JobEnd::Fenced;
                }
            };
            d.event(EventKind::Checkpointed {
                node: d.node().to_string(),
                seq: ck.seq,
                bytes: ck.envelope.len() as u64,
                capture_ms: ck.stats.capture_us as f64 / 1e3,
                mode: "stop".into(),
            })
            .await;
            let c = CheckpointRef {
                seq: ck.seq,
                bytes: ck.envelope.len() as u64,
                run_ms: ck.run_ms,
                taken_ms: now_ms(),
                node: d.node().to_string(),
                store,
            };
            let inline = if d.jc.bus.fits_inline(ck.envelope.len()) { ck.envelope } else { Vec::new() };
            tracing::debug!(job_id = %d.job_id, persisted_us = t0.elapsed().as_micros() as u64, "leaving: checkpoint persisted");
            (Some(c), inline, ck.run_ms)
        }
        None => {
            let c = d.rec.checkpoint.clone();
            let run = c.as_ref().map_or(0, |c| c.run_ms);
            (c, Vec::new(), run)
        }
    };
    let superseded = d.rec.checkpoint.clone().filter(|old| Some(&old.store) != checkpoint.as_ref().map(|c| &c.store));
    let mut rec = d.rec.clone();
    rec.epoch += 1;
    rec.run_ms = run_ms;
    if checkpoint.as_ref().is_some_and(|c| Some(c.seq) != d.rec.checkpoint.as_ref().map(|o| o.seq)) {
        rec.checkpoints += 1;
    }
    rec.checkpoint = checkpoint.clone();
    let end = match exit {
        Exit::Move(to) => {
            rec.state = JobState::Moving;
            rec.node = Some(to.clone());
            rec.moving_from = Some(d.node().to_string());
            rec.moves += 1;
            if let Err(e) = d.commit(rec, retry).await {
                return fenced(d, e);
            }
            tracing::debug!(job_id = %d.job_id, committed_us = t0.elapsed().as_micros() as u64, "leaving: record moving");
            let adopt = Adopt {
                job_id: d.job_id.clone(),
                revision: d.rev,
                epoch: d.rec.epoch,
                from: d.node().to_string(),
                began_ms,
                checkpoint: checkpoint.clone(),
                inline,
            };
            let timeout = Duration::from_millis(d.jc.cfg.adopt_timeout_ms);
            match d.jc.bus.adopt(&to, &adopt, timeout).await {
                Ok(r) if r.accepted => {
                    tracing::debug!(job_id = %d.job_id, adopted_us = t0.elapsed().as_micros() as u64, "left");
                    JobEnd::Moved
                }
                other => {
                    let why = match other {
                        Ok(r) => r.reason.unwrap_or_else(|| "refused".into()),
                        Err(e) => e.to_string(),
                    };
                    tracing::warn!(job_id = %d.job_id, to, "move not taken ({why}): parking the job");
                    park(d, "refused").await
                }
            }
        }
        Exit::Park(reason) => {
            rec.state = JobState::Parked;
            rec.node = None;
            rec.parked = Some(reason.into());
            park_with(d, rec, reason).await
        }
    };
    if let Some(old) = superseded.filter(|_| matches!(end, JobEnd::Moved | JobEnd::Parked)) {
        let bus = d.jc.bus.clone();
        tokio::spawn(async move {
            let _ = bus.drop_checkpoint(&old.store).await;
        });
    }
    end
}

fn fenced(d: &Driver, e: CommitError) -> JobEnd {
    tracing::info!(job_id = %d.job_id, "cannot hand the job on ({e:?}): it is owned elsewhere");
    JobEnd::Fenced
}

/// Park a job the record shows as moving from this node (the receiver did not take it).
async fn park(d: &mut Driver, reason: &'static str) -> JobEnd {
    let mut rec = d.rec.clone();
    rec.state = JobState::Parked;
    rec.node = None;
    rec.moving_from = None;
    rec.epoch += 1;
    rec.parked = Some(reason.into());
    park_with(d, rec, reason).await
}

/// Commit a parked record, announce it and ask placement for a node.
async fn park_with(d: &mut Driver, rec: JobRecord, reason: &'static str) -> JobEnd {
    if let Err(e) = d.commit(rec, d.retry_for()).await {
        return fenced(d, e);
    }
    let seq = d.rec.checkpoint.as_ref().map(|c| c.seq);
    d.event(EventKind::Parked { node: Some(d.node().to_string()), reason: reason.into(), seq }).await;
    let (bus, r) = (d.jc.bus.clone(), Requeue { job_id: d.job_id.clone(), revision: d.rev });
    tokio::spawn(async move {
        // Placement reads parked jobs from the records when it starts, so giving up here loses nothing.
        for attempt in 0..40u32 {
            match bus.requeue(&r, Duration::from_secs(2)).await {
                Ok(()) => return,
                Err(e) if attempt == 39 => {
                    tracing::warn!(job_id = %r.job_id, "placement did not take the parked job: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    });
    JobEnd::Parked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_are_stable_per_source() {
        let a = module_for("def main(x): return x", "f.py");
        let b = module_for("def main(x): return x", "g.py");
        let c = module_for("def main(x): return 1", "f.py");
        assert_eq!(a.module_name, b.module_name);
        assert_ne!(a.module_name, c.module_name);
        assert!(a.module_name.starts_with("mlfn_"));
    }

    #[test]
    fn slices_end_a_margin_before_the_limit() {
        let mut cfg = NodeConfig { slice_margin_ms: 20, ..Default::default() };
        assert_eq!(slice_limit(&cfg, None), None);
        assert_eq!(slice_limit(&cfg, Some(200)), Some(Duration::from_millis(180)));
        // The margin is at most a quarter of a short limit.
        assert_eq!(slice_limit(&cfg, Some(60)), Some(Duration::from_millis(45)));
        cfg.r_limit_ms = 100;
        assert_eq!(slice_limit(&cfg, Some(500)), Some(Duration::from_millis(80)));
        assert_eq!(slice_limit(&cfg, None), Some(Duration::from_millis(80)));
    }
}
