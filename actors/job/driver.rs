//! The thin driver of a job's stay: it owns the worker lease and the record's revision, feeds the worker's
//! messages, the node's requests and the timers into the [`Machine`], and carries out the effects it returns
//! (worker requests, record writes, events, the pool).
//!
//! Size: every effect of the [`Machine`] and every way a stay ends (finish, leave, park, go idle) is carried
//! out here, since each writes through the driver's lease and record revision, which only this module holds.
use super::phase::{failure, Captured, CommitError, Effect, Event, Exit, FailureKind, Machine, Now, ParkReason, Rules};
use super::start::{establish, resolve, Established};
use super::{slice_limit, JobContext, JobEnd, JobStart, JobStatus};
use crate::actors::pool::{Lease, WorkerPool};
use crate::actors::session;
use crate::bus::BusErrorKind;
use crate::wire::{
    now_ms, Adopt, CheckpointRef, CheckpointStore, EventKind, JobEvent, JobFailure, JobRecord, JobState, Requeue,
    SessionInput, SessionReply,
};
use crate::worker::protocol::CaptureStats;
use crate::worker::{FromWorker, ToWorker};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The first pause between tries of a record or checkpoint write NATS did not answer; it doubles each try.
const RETRY_FIRST_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause between such tries: a second keeps a reconnecting node from hammering NATS.
const RETRY_MAX_PAUSE: Duration = Duration::from_secs(1);
/// The least a periodic checkpoint waits for NATS (else `checkpoint_interval_ms`): the next one comes soon,
/// but a short interval should not make every write give up at the first hiccup.
const PERIODIC_MIN_WAIT: Duration = Duration::from_millis(500);
/// How long a worker that ended its job gets to answer the checkpoint request still in flight before it is
/// killed (a capture answers within its deadline; an answer that never comes must not reach the next job).
const SETTLE_WAIT: Duration = Duration::from_millis(200);
/// How often a parked job is offered to placement, how long each offer waits and the pause between offers:
/// 40 offers cover about 90 s of placement being away (it also reads parked jobs from the records when it
/// starts, so giving up loses nothing).
const REQUEUE_TRIES: u32 = 40;
const REQUEUE_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEUE_PAUSE: Duration = Duration::from_millis(250);

struct Driver {
    jc: JobContext,
    job_id: String,
    rec: JobRecord,
    rev: u64,
    status: Arc<Mutex<JobStatus>>,
    next_seq: u64,
    /// Where the job came from and when it was asked to leave there, when it was adopted.
    adopted: Option<(String, u64)>,
    /// This hosting persisted a checkpoint (committed or not), so there may be some to clean up.
    took_checkpoint: bool,
    /// `started` was published for this run (the outcome publishes it first when it was not: a module that
    /// does not load, a worker that exits before it reports the start).
    started: bool,
    /// The checkpoint this run continues from.
    resumed_from: Option<u64>,
    /// A session running a close: its end, even a failure, ends the session.
    closing: bool,
}

impl Driver {
    fn node(&self) -> &str {
        &self.jc.node_id
    }

    async fn event(&self, kind: EventKind) {
        self.jc.metrics.event(&kind);
        if let Err(e) = self.jc.bus.publish_event(&self.rec.tenant, &JobEvent::new(&self.job_id, kind)).await {
            tracing::warn!(job_id = %self.job_id, "cannot publish an event: {e}");
        }
    }

    /// Compare-and-set the record to `new`, retrying while NATS is unreachable for up to `retry_for`.
    async fn commit(&mut self, new: JobRecord, retry_for: Duration) -> Result<(), CommitError> {
        let deadline = Instant::now() + retry_for;
        let mut ambiguous = false;
        let mut backoff = RETRY_FIRST_PAUSE;
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
                    backoff = (backoff * 2).min(RETRY_MAX_PAUSE);
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
        let mut backoff = RETRY_FIRST_PAUSE;
        self.took_checkpoint = true;
        loop {
            match self.jc.bus.persist_checkpoint(&self.job_id, self.rec.epoch, seq, envelope).await {
                Ok(at) => return Ok(at),
                Err(e) if Instant::now() + backoff > deadline => return Err(e.to_string()),
                Err(e) => {
                    tracing::warn!(job_id = %self.job_id, "cannot persist checkpoint {seq}, retrying: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_MAX_PAUSE);
                }
            }
        }
    }

    fn set_status(&self, f: impl FnOnce(&mut JobStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    /// Publish `started` when this run has not (every run on a node that ends begins with it).
    async fn ensure_started(&mut self) {
        if !self.started {
            self.started = true;
            self.event(EventKind::Started { node: self.node().to_string(), resumed_from: self.resumed_from }).await;
        }
    }

    /// Whether `c` must be kept: it is where the session last waited (a failed request goes back to it).
    fn keeps(&self, c: &CheckpointRef) -> bool {
        self.rec.session.as_ref().and_then(|s| s.idle_checkpoint.as_ref()).is_some_and(|i| i.store == c.store)
    }

    fn drop_later(&self, c: Option<CheckpointRef>) {
        if let Some(c) = c.filter(|c| !self.keeps(c)) {
            let bus = self.jc.bus.clone();
            tokio::spawn(async move {
                let _ = bus.drop_checkpoint(&c.store).await;
            });
        }
    }

    /// A session's request failed after the session had waited once: answer it with the error and go back to
    /// where the session waited before it (idle). None: the failure ends the session (its opening failed, or
    /// its code or checkpoint cannot run any more).
    async fn roll_back(&mut self, f: &JobFailure) -> Option<JobEnd> {
        const ENDS_THE_SESSION: [&str; 5] = ["syntax", "bad_entry", "bad_input", "restore", "unknown_function"];
        let s = self.rec.session.clone()?;
        let idle = s.idle_checkpoint.clone()?;
        if self.closing || ENDS_THE_SESSION.contains(&f.kind.as_str()) {
            return None;
        }
        let mut error = f.clone();
        error.traceback = error.traceback.map(|t| crate::wire::hide_runtime_frames(&t));
        let reply = SessionReply { n: s.next, output: None, error: Some(error) };
        let mut rec = self.rec.clone();
        rec.state = JobState::Idle;
        rec.node = None;
        rec.moving_from = None;
        rec.parked = None;
        rec.epoch += 1;
        let abandoned =
            rec.checkpoint.replace(idle).filter(|c| Some(&c.store) != rec.checkpoint.as_ref().map(|i| &i.store));
        rec.run_ms = s.idle_run_ms;
        if let Some(st) = rec.session.as_mut() {
            st.next += 1;
            st.last_reply = Some(reply.clone());
            st.idle_since_ms = Some(now_ms());
        }
        if let Err(e) = self.commit(rec, self.retry_for()).await {
            return Some(fenced(self, e));
        }
        self.ensure_started().await;
        self.event(EventKind::Reply { node: self.node().to_string(), reply }).await;
        self.drop_later(abandoned);
        wake_later(self);
        Some(JobEnd::Idle)
    }

    /// The final outcome: commit, then publish. Returns how the job ended. A session's request that fails is
    /// answered and the session goes on ([`Self::roll_back`]); a session that ends answers its last request.
    async fn finish(&mut self, outcome: Result<serde_json::Value, JobFailure>, run_ms: u64) -> JobEnd {
        if let Err(f) = &outcome {
            if let Some(end) = self.roll_back(f).await {
                return end;
            }
        }
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
            Err(mut error) => {
                error.traceback = error.traceback.map(|t| crate::wire::hide_runtime_frames(&t));
                rec.state = JobState::Failed;
                rec.error = Some(error.clone());
                (JobEnd::Failed, EventKind::Failed { node: Some(self.node().to_string()), error })
            }
        };
        let closing = self.closing;
        let reply = rec.session.as_mut().map(|s| {
            let reply = match &kind {
                EventKind::Completed { output, .. } => {
                    SessionReply { n: s.next, output: Some(output.clone()), error: Some(failure_of_end(closing)) }
                }
                EventKind::Failed { error, .. } => SessionReply { n: s.next, output: None, error: Some(error.clone()) },
                _ => SessionReply { n: s.next, output: None, error: None },
            };
            s.last_reply = Some(reply.clone());
            reply
        });
        match self.commit(rec, self.retry_for()).await {
            Ok(()) => {
                // Every run on a node that ends here begins with `started` (docs/PROTOCOL.md).
                self.ensure_started().await;
                if let Some(reply) = reply {
                    self.event(EventKind::Reply { node: self.node().to_string(), reply }).await;
                }
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
pub(super) async fn drive(
    start: JobStart,
    jc: JobContext,
    mut cmds: mpsc::UnboundedReceiver<Event>,
    status: Arc<Mutex<JobStatus>>,
) -> (String, JobEnd) {
    let (job_id, adopted) = match &start {
        JobStart::Assigned(a) => (a.record.job_id.clone(), None),
        JobStart::Adopted { adopt, .. } => (adopt.job_id.clone(), Some((adopt.from.clone(), adopt.began_ms))),
    };
    let began = Instant::now();
    let established = match establish(start, &jc).await {
        Ok(e) => e,
        Err(end) => return (job_id, end),
    };
    tracing::debug!(job_id = %job_id, established_us = began.elapsed().as_micros() as u64, "established");
    let Established { rec, rev, resume } = established;
    let resumed_from = resume.as_ref().map(|(c, _)| c.seq);
    let run_base_ms = resume.as_ref().map_or(0, |(c, _)| c.run_ms);
    let mut d = Driver {
        jc: jc.clone(),
        job_id: job_id.clone(),
        next_seq: rec.checkpoint.as_ref().map_or(0, |c| c.seq) + 1,
        rec,
        rev,
        status,
        adopted,
        took_checkpoint: false,
        started: false,
        resumed_from,
        closing: false,
    };
    d.set_status(|s| {
        s.priority = d.rec.priority;
        s.run_base_ms = run_base_ms;
        s.checkpoint_bytes = d.rec.checkpoint.as_ref().map_or(0, |c| c.bytes);
    });
    let end = run(&mut d, &mut cmds, resume, run_base_ms).await;
    (job_id, end)
}

/// The running stay: from a worker to the job leaving the node.
async fn run(
    d: &mut Driver,
    cmds: &mut mpsc::UnboundedReceiver<Event>,
    resume: Option<(CheckpointRef, Vec<u8>)>,
    run_base_ms: u64,
) -> JobEnd {
    let cfg = d.jc.cfg.clone();
    if run_base_ms >= cfg.job_timeout_ms + d.rec.session.as_ref().map_or(0, |s| s.idle_run_ms) {
        let f = failure(
            FailureKind::Timeout,
            format!("job timeout: ran {run_base_ms} ms in all (node.job_timeout_ms)"),
            None,
        );
        return d.finish(Err(f), run_base_ms).await;
    }
    let (module, entry) = match resolve(&d.rec, &d.jc).await {
        Ok(m) => m,
        Err(f) => return d.finish(Err(f), run_base_ms).await,
    };
    let resumed_from = resume.as_ref().map(|(c, _)| c.seq);
    // A restore's worker is chosen by the libraries its checkpoint names (a set zygote that has them
    // imported), so the pool opens the checkpoint; a start takes a worker forked ahead.
    // A session's request is read while the worker comes.
    let acquire = async {
        match resume {
            Some((_, checkpoint)) => d.jc.pool.acquire_restore(&module, checkpoint).await.map(|(l, o)| (l, Some(o))),
            None => d.jc.pool.acquire().await.map(|l| (l, None)),
        }
    };
    let t_acq = Instant::now();
    let (acquired, request) = tokio::join!(acquire, session_request(d));
    tracing::debug!(job_id = %d.job_id, acquired_us = t_acq.elapsed().as_micros() as u64, "worker and request");
    d.closing = matches!(&request, Some(ToWorker::SessionRequest { input_json, .. }) if input_json.is_empty());
    let (mut lease, opened) = match acquired {
        Ok(l) => l,
        Err(e) => {
            let f = failure(FailureKind::Runtime, format!("worker could not start: {e}"), None);
            return d.finish(Err(f), 0).await;
        }
    };
    // A start's module, and when it was sent: its `Started` comes once the module's top level ran, and a slow
    // one is worth a module zygote (`WorkerPool::started`).
    let mut fresh = None;
    let sent = match opened {
        Some(opened) => {
            let input_json = serde_json::to_string(&d.rec.input).unwrap_or_else(|_| "null".into());
            lease.worker.restore(&d.job_id, &module, opened, Some(&input_json)).await
        }
        None => {
            let input_json = serde_json::to_string(&d.rec.input).unwrap_or_else(|_| "null".into());
            fresh = Some((module.clone(), Instant::now()));
            let run = ToWorker::Run { job_id: d.job_id.clone(), module, entry, input_json, next_seq: d.next_seq };
            lease.worker.send(&run).await
        }
    };
    let sent = match (sent, request) {
        (Ok(()), Some(r)) => lease.worker.send(&r).await,
        (sent, _) => sent,
    };
    if let Err(e) = sent {
        let status = d.jc.pool.reap(lease).await;
        let f =
            failure(FailureKind::WorkerExited, format!("worker exited before the job started: {e} ({status})"), None);
        return d.finish(Err(f), run_base_ms).await;
    }
    // A session's timeout applies to each request: it counts from where it last waited.
    let timeout_base_ms = d.rec.session.as_ref().map_or(0, |s| s.idle_run_ms);
    let rules = Rules {
        node_id: d.node().to_string(),
        job_timeout_ms: cfg.job_timeout_ms + timeout_base_ms,
        slice_ms: slice_limit(&cfg, d.rec.r_limit_ms),
        periodic_ms: (cfg.checkpoint_interval_ms > 0).then_some(cfg.checkpoint_interval_ms),
        periodic_deadline_ms: cfg.periodic_deadline_ms,
        slice_margin_ms: cfg.slice_margin_ms,
        evacuate_deadline_ms: cfg.evacuate_deadline_ms,
    };
    let t0 = Instant::now();
    let now = || Now { ms: t0.elapsed().as_millis() as u64, wall_ms: now_ms() };
    let mut m = Machine::new(rules, run_base_ms, d.adopted.is_some(), d.next_seq, now());
    let mut lease = Some(lease);
    loop {
        let Some(worker) = lease.as_mut().map(|l| &mut l.worker) else {
            // Every effect that gives the worker up is followed by a terminal one.
            return JobEnd::Fenced;
        };
        let wake = m.wake().map(|ms| t0 + Duration::from_millis(ms));
        let event = tokio::select! {
            msg = worker.recv() => match msg {
                None => {
                    let status = d.jc.pool.reap(lease.take().expect("a lease")).await;
                    Event::WorkerExited { status: status.to_string() }
                }
                Some(FromWorker::Started { imported, .. }) => {
                    tracing::debug!(job_id = %d.job_id, since_acquire_us = t_acq.elapsed().as_micros() as u64, "worker started");
                    if let Some((module, sent)) = fresh.take() {
                        d.jc.pool.started(&module, sent.elapsed(), &imported);
                    }
                    Event::Started
                }
                Some(FromWorker::Restored { restore_us, imported, indexed, .. }) => {
                    tracing::debug!(job_id = %d.job_id, restore_us, "restored");
                    if let Some(l) = lease.as_ref() {
                        d.jc.pool.restored(l, &imported, &indexed);
                    }
                    continue;
                }
                Some(FromWorker::Ready { .. }) => continue,
                Some(FromWorker::Completed { output_json, .. }) => Event::Completed { output_json },
                Some(FromWorker::Failed { error, .. }) => {
                    Event::Failed { kind: error.kind, message: error.message, traceback: error.traceback }
                }
                Some(FromWorker::Checkpointed { seq, envelope, stats, stopped }) => {
                    tracing::debug!(job_id = %d.job_id, since_acquire_us = t_acq.elapsed().as_micros() as u64, seq, capture_us = stats.capture_us, trigger_us = stats.trigger_us, pause_us = stats.pause_us, state_bytes = stats.state_bytes, "checkpointed");
                    Event::Checkpointed { seq, envelope, stats, stopped }
                }
                Some(FromWorker::CheckpointFailed { seq, error }) => {
                    Event::CheckpointFailed { seq, kind: error.kind, message: error.message }
                }
                Some(FromWorker::SessionReply { n, output_json }) => {
                    tracing::debug!(job_id = %d.job_id, since_acquire_us = t_acq.elapsed().as_micros() as u64, n, "session replied");
                    Event::SessionReply { n, output_json }
                }
            },
            Some(cmd) = cmds.recv() => cmd,
            _ = sleep_until(wake) => Event::Tick,
        };
        let mut effects: VecDeque<Effect> = m.on(event, now()).into();
        while let Some(effect) = effects.pop_front() {
            let answer = match effect {
                Effect::ShowRunning => {
                    d.set_status(|s| s.slice_started = Some(std::time::Instant::now()));
                    None
                }
                Effect::ShowLeaving => {
                    d.set_status(|s| s.leaving = true);
                    None
                }
                Effect::Checkpoint { seq, mode, deadline_ms, after_ms } => {
                    tracing::debug!(job_id = %d.job_id, since_acquire_us = t_acq.elapsed().as_micros() as u64, seq, "checkpoint asked");
                    if after_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(after_ms)).await;
                    }
                    if let Some(l) = lease.as_mut() {
                        // A request that cannot be sent is lost with the worker: its exit comes next.
                        let _ = l.worker.send(&ToWorker::Checkpoint { seq, mode, deadline_ms }).await;
                    }
                    None
                }
                Effect::PublishStarted => {
                    d.started = true;
                    d.event(EventKind::Started { node: d.node().to_string(), resumed_from }).await;
                    None
                }
                Effect::CommitAdoption => Some(Event::AdoptionCommitted(confirm(d).await)),
                Effect::CommitPeriodic(ck) => Some(Event::PeriodicCommitted(periodic_commit(d, &ck).await)),
                Effect::CheckOwner => {
                    let ours = matches!(d.jc.bus.record(&d.job_id).await, Ok(Some((_, rev))) if rev == d.rev);
                    Some(Event::OwnerChecked { ours })
                }
                Effect::Release { in_flight } => {
                    if let Some(l) = lease.take() {
                        settle(l, in_flight, &d.jc.pool).await;
                    }
                    None
                }
                Effect::Discard => {
                    if let Some(l) = lease.take() {
                        d.jc.pool.discard(l).await;
                    }
                    None
                }
                Effect::Reap { background } => {
                    if let Some(l) = lease.take() {
                        if background {
                            let pool = d.jc.pool.clone();
                            tokio::spawn(async move { pool.reap(l).await });
                        } else {
                            d.jc.pool.reap(l).await;
                        }
                    }
                    None
                }
                Effect::Warn(w) => {
                    tracing::warn!(job_id = %d.job_id, "{w}");
                    None
                }
                Effect::Finish { outcome, run_ms } => return d.finish(outcome, run_ms).await,
                Effect::Leave { exit, captured, began_ms } => return leave(d, exit, captured, began_ms).await,
                Effect::End(end) => return end,
            };
            if let Some(event) = answer {
                // An answer comes before anything else: its effects go first.
                for e in m.on(event, now()).into_iter().rev() {
                    effects.push_front(e);
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// An adopted job runs: make the record say it is placed here, then announce the move.
async fn confirm(d: &mut Driver) -> Result<(), CommitError> {
    let Some((from, began_ms)) = d.adopted.clone() else { return Ok(()) };
    let mut rec = d.rec.clone();
    rec.state = JobState::Placed;
    rec.moving_from = None;
    rec.slices += 1;
    d.commit(rec, d.retry_for()).await?;
    let ms = now_ms().saturating_sub(began_ms) as f64;
    let bytes = d.rec.checkpoint.as_ref().map_or(0, |c| c.bytes);
    d.event(EventKind::Migrated { from, to: d.node().to_string(), ms, bytes }).await;
    Ok(())
}

/// Hand a worker back after its job ended: at once when no checkpoint request is in flight, else after its
/// answer arrives (so it does not reach the next job), or kill it.
async fn settle(mut lease: Lease, in_flight: bool, pool: &Arc<WorkerPool>) {
    if in_flight {
        match tokio::time::timeout(SETTLE_WAIT, lease.worker.recv()).await {
            Ok(Some(FromWorker::CheckpointFailed { .. })) => {}
            _ => {
                pool.discard(lease).await;
                return;
            }
        }
    }
    pool.release(lease);
}

/// A snapshot-and-continue checkpoint: persist it, point the record at it.
async fn periodic_commit(d: &mut Driver, ck: &Captured) -> Result<(), CommitError> {
    let (seq, envelope, stats, run_ms) = (ck.seq, &ck.envelope[..], &ck.stats, ck.run_ms);
    // A periodic checkpoint is worth a short wait only: the next one comes soon.
    let short = Duration::from_millis(d.jc.cfg.checkpoint_interval_ms).max(PERIODIC_MIN_WAIT);
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
    d.event(checkpointed(d.node(), seq, envelope.len(), stats, "continue")).await;
    d.drop_later(superseded);
    Ok(())
}

/// The `checkpointed` event of a committed checkpoint.
fn checkpointed(node: &str, seq: u64, bytes: usize, stats: &CaptureStats, mode: &str) -> EventKind {
    EventKind::Checkpointed {
        node: node.to_string(),
        seq,
        bytes: bytes as u64,
        capture_ms: stats.capture_us as f64 / 1e3,
        mode: mode.into(),
        ttsp_ms: stats.trigger_us as f64 / 1e3,
        waited: stats.waited_reason.clone(),
    }
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
            d.event(checkpointed(d.node(), ck.seq, ck.envelope.len(), &ck.stats, "stop")).await;
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
                    d.jc.metrics.moved_out();
                    tracing::debug!(job_id = %d.job_id, adopted_us = t0.elapsed().as_micros() as u64, "left");
                    JobEnd::Moved
                }
                other => {
                    let why = match other {
                        Ok(r) => r.reason.unwrap_or_else(|| "refused".into()),
                        Err(e) => e.to_string(),
                    };
                    tracing::warn!(job_id = %d.job_id, to, "move not taken ({why}): parking the job");
                    park(d, ParkReason::Refused).await
                }
            }
        }
        Exit::Park(reason) => {
            rec.state = JobState::Parked;
            rec.node = None;
            rec.parked = Some(reason.as_str().into());
            park_with(d, rec, reason).await
        }
        Exit::Idle { n, output_json } => {
            let previous_idle = d.rec.session.as_ref().and_then(|s| s.idle_checkpoint.clone());
            let end = go_idle(d, rec, n, &output_json).await;
            if end == JobEnd::Idle && previous_idle != superseded {
                d.drop_later(previous_idle);
            }
            end
        }
    };
    if matches!(end, JobEnd::Moved | JobEnd::Parked | JobEnd::Idle) {
        d.drop_later(superseded);
    }
    end
}

/// A session answered request `n` and was checkpointed where it waits for the next: commit the answer and
/// that checkpoint (idle), publish the `reply`, and wake it again when its next request is already there.
async fn go_idle(d: &mut Driver, mut rec: JobRecord, n: u64, output_json: &str) -> JobEnd {
    let output = serde_json::from_str(output_json).unwrap_or(serde_json::Value::Null);
    let reply = SessionReply { n, output: Some(output), error: None };
    rec.state = JobState::Idle;
    rec.node = None;
    rec.moving_from = None;
    rec.parked = None;
    let (checkpoint, run_ms) = (rec.checkpoint.clone(), rec.run_ms);
    if let Some(s) = rec.session.as_mut() {
        if s.next != n {
            tracing::warn!(job_id = %d.job_id, "the session answered request {n} while its record expects {}", s.next);
        }
        s.next = n + 1;
        s.idle_checkpoint = checkpoint;
        s.idle_run_ms = run_ms;
        s.idle_since_ms = Some(now_ms());
        s.last_reply = Some(reply.clone());
    }
    if let Err(e) = d.commit(rec, d.retry_for()).await {
        return fenced(d, e);
    }
    d.event(EventKind::Reply { node: d.node().to_string(), reply }).await;
    wake_later(d);
    JobEnd::Idle
}

/// The request a session takes next, for its worker (recorded by the gateway before it woke the session);
/// none for a plain job or a session's opening.
async fn session_request(d: &Driver) -> Option<ToWorker> {
    let n = d.rec.session.as_ref().map(|s| s.next).filter(|n| *n > 0)?;
    match d.jc.bus.session_request_input(&d.job_id, n).await {
        Ok(Some(SessionInput::Input(input))) => {
            let input_json = serde_json::to_string(&input).unwrap_or_else(|_| "null".into());
            Some(ToWorker::SessionRequest { n, input_json })
        }
        // A close reaches the driver loop as an empty request (no JSON is empty).
        Ok(Some(SessionInput::Close)) => Some(ToWorker::SessionRequest { n, input_json: String::new() }),
        // Woken for a request that is not there: the session waits until its timeout, then the request fails.
        Ok(None) => {
            tracing::error!(job_id = %d.job_id, "the session's request {n} is not recorded");
            None
        }
        Err(e) => {
            tracing::error!(job_id = %d.job_id, "cannot read the session's request {n}: {e}");
            None
        }
    }
}

/// Wake the session when its next request is already recorded (the gateway wakes it otherwise), and offer it
/// to placement.
fn wake_later(d: &Driver) {
    let (bus, job_id) = (d.jc.bus.clone(), d.job_id.clone());
    tokio::spawn(async move {
        match session::wake(&bus, &job_id).await {
            Ok(Some((_, revision))) => requeue(bus, Requeue { job_id, revision }).await,
            Ok(None) => {}
            Err(e) => tracing::warn!(job_id, "cannot wake the session: {e}"),
        }
    });
}

/// The error of a session's last request when its function returned, or when that request was a close.
fn failure_of_end(closing: bool) -> JobFailure {
    let message = if closing {
        "the session was closed: this request closed it, and it takes no more"
    } else {
        "the session's function returned: this request ended it, and it takes no more"
    };
    JobFailure { kind: crate::wire::code::SESSION_ENDED.into(), message: message.into(), traceback: None }
}

fn fenced(d: &Driver, e: CommitError) -> JobEnd {
    tracing::info!(job_id = %d.job_id, "cannot hand the job on ({e:?}): it is owned elsewhere");
    JobEnd::Fenced
}

/// Park a job the record shows as moving from this node (the receiver did not take it).
async fn park(d: &mut Driver, reason: ParkReason) -> JobEnd {
    let mut rec = d.rec.clone();
    rec.state = JobState::Parked;
    rec.node = None;
    rec.moving_from = None;
    rec.epoch += 1;
    rec.parked = Some(reason.as_str().into());
    park_with(d, rec, reason).await
}

/// Commit a parked record, announce it and ask placement for a node.
async fn park_with(d: &mut Driver, rec: JobRecord, reason: ParkReason) -> JobEnd {
    if let Err(e) = d.commit(rec, d.retry_for()).await {
        return fenced(d, e);
    }
    let seq = d.rec.checkpoint.as_ref().map(|c| c.seq);
    d.event(EventKind::Parked { node: Some(d.node().to_string()), reason: reason.as_str().into(), seq }).await;
    let (bus, r) = (d.jc.bus.clone(), Requeue { job_id: d.job_id.clone(), revision: d.rev });
    tokio::spawn(requeue(bus, r));
    JobEnd::Parked
}

/// Offer a parked job to placement until it answers.
async fn requeue(bus: crate::bus::Bus, r: Requeue) {
    // Placement reads parked jobs from the records when it starts, so giving up here loses nothing.
    for attempt in 1..=REQUEUE_TRIES {
        match bus.requeue(&r, REQUEUE_TIMEOUT).await {
            Ok(()) => return,
            Err(e) if attempt == REQUEUE_TRIES => {
                tracing::warn!(job_id = %r.job_id, "placement did not take the parked job: {e}")
            }
            Err(_) => tokio::time::sleep(REQUEUE_PAUSE).await,
        }
    }
}
