//! The running job's decisions as a pure state machine: what to do when the worker reports, when the node asks
//! the job to leave, when a timer is due or when a write the driver made comes back. No I/O and no clock: every
//! input carries [`Now`], every output is an [`Effect`] the driver ([`super::driver`]) carries out, so the rules
//! are table-tested without NATS or workers.
//!
//! The phases, from the moment the worker was told to run or restore the job:
//! - [`Phase::Starting`]: waiting for the worker's `Started`; a leave request waits for it.
//! - [`Phase::Confirming`]: an adopted job started; the record is being made ours (`Placed`).
//! - [`Phase::Running`]: the job runs; the slice end and the next periodic checkpoint are timed.
//! - [`Phase::Checkpointing`] / [`Phase::Committing`]: a snapshot-and-continue checkpoint is taken, then
//!   committed; a leave request waits for it.
//! - [`Phase::Stopping`]: a stop-mode checkpoint was asked for, to leave the node.
//! - [`Phase::Done`]: a terminal effect was issued; nothing more happens.
//!
//! The job timeout applies in every phase.
use super::JobEnd;
use crate::wire::JobFailure;
use crate::worker::protocol::{CaptureStats, CheckpointErrorKind};
use crate::worker::{CheckpointMode, JobErrorKind};

/// How often a stop request that found no job running (`NoJob`: it has not started yet, or a `Completed` is on
/// its way) is repeated before the job leaves from its last committed checkpoint: 20 tries 5 ms apart cover
/// the ~100 ms a worker may need between accepting a job and running its first line.
pub const STOP_RETRIES_NO_JOB: u32 = 20;
/// How long to wait before repeating a stop request that found no job: short, the job is expected to be
/// stoppable at once. A stop that ran out of time is repeated at once: its worker already waited its deadline.
pub const STOP_RETRY_DELAY_MS: u64 = 5;

/// Why a job parks (the strings are the protocol's `parked` reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkReason {
    /// Its slice (`r_limit_ms`) ended.
    Slice,
    /// It was asked to leave with no node to go to.
    Evacuated,
    /// The node it was moving to did not take it.
    Refused,
}

impl ParkReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ParkReason::Slice => "slice",
            ParkReason::Evacuated => "evacuated",
            ParkReason::Refused => "refused",
        }
    }
}

/// What a stop-mode checkpoint is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Move(String),
    Park(ParkReason),
    /// A session answered request `n` with `output_json` and waits for the next: checkpoint it there.
    Idle {
        n: u64,
        output_json: String,
    },
}

/// Why a job failed (the strings are the protocol's failure kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The job raised, or its code or input or output was refused by the worker.
    Job(JobErrorKind),
    /// The output is not JSON.
    BadOutput,
    /// It ran longer than `node.job_timeout_ms` over all its slices.
    Timeout,
    /// Its worker process ended.
    WorkerExited,
    /// Its function is not deployed.
    UnknownFunction,
    /// The node could not run it.
    Runtime,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Job(k) => match k {
                JobErrorKind::Syntax => "syntax",
                JobErrorKind::BadEntry => "bad_entry",
                JobErrorKind::BadInput => "bad_input",
                JobErrorKind::Raised => "raised",
                JobErrorKind::BadOutput => "bad_output",
                JobErrorKind::Restore => "restore",
                JobErrorKind::Runtime => "runtime",
                JobErrorKind::OutOfMemory => "out_of_memory",
                JobErrorKind::OutputTooLarge => "output_too_large",
            },
            FailureKind::BadOutput => "bad_output",
            FailureKind::Timeout => "timeout",
            FailureKind::WorkerExited => "worker_exited",
            FailureKind::UnknownFunction => crate::wire::code::UNKNOWN_FUNCTION,
            FailureKind::Runtime => "runtime",
        }
    }
}

pub fn failure(kind: FailureKind, message: impl Into<String>, traceback: Option<String>) -> JobFailure {
    JobFailure { kind: kind.as_str().into(), message: message.into(), traceback }
}

/// Why a write to the record did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitError {
    /// The record moved on: the node no longer owns the job.
    Fenced,
    /// NATS did not answer in time (the write may or may not have landed: checked on the next try).
    Unavailable(String),
}

/// A checkpoint the worker took, with the job's running time at that point.
#[derive(Debug, Clone, PartialEq)]
pub struct Captured {
    pub seq: u64,
    pub envelope: Vec<u8>,
    pub stats: CaptureStats,
    pub run_ms: u64,
}

/// The time of an input: `ms` on a monotonic clock (timers), `wall_ms` since the epoch (what is published).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub ms: u64,
    pub wall_ms: u64,
}

/// What the timings depend on (from [`crate::config::NodeConfig`] and the job's record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub node_id: String,
    pub job_timeout_ms: u64,
    /// How long a slice runs before it is checkpointed to park (see [`super::slice_limit`]); none: no slices.
    pub slice_ms: Option<u64>,
    /// Between periodic checkpoints; none: no periodic checkpoints.
    pub periodic_ms: Option<u64>,
    /// The deadline a periodic capture gets to find a resumable instant.
    pub periodic_deadline_ms: u64,
    /// The deadline a slice-end capture gets.
    pub slice_margin_ms: u64,
    /// The deadline a move or evacuation capture gets.
    pub evacuate_deadline_ms: u64,
}

/// An input to the machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The worker runs the job (fresh, or restored).
    Started,
    Completed {
        output_json: String,
    },
    Failed {
        kind: JobErrorKind,
        message: String,
        traceback: Option<String>,
    },
    /// The worker is gone without a word (os._exit, a segfault, the OOM killer); `status` is how it ended.
    WorkerExited {
        status: String,
    },
    Checkpointed {
        seq: u64,
        envelope: Vec<u8>,
        stats: CaptureStats,
        stopped: bool,
    },
    CheckpointFailed {
        seq: u64,
        kind: CheckpointErrorKind,
        message: String,
    },
    /// The node asks the job to leave: move to `to`, or park when `to` is none (or this node).
    Leave {
        to: Option<String>,
    },
    /// Placement believes the job is elsewhere: check the record.
    CheckOwner,
    /// The answer to [`Effect::CheckOwner`].
    OwnerChecked {
        ours: bool,
    },
    /// The answer to [`Effect::CommitAdoption`].
    AdoptionCommitted(Result<(), CommitError>),
    /// The answer to [`Effect::CommitPeriodic`].
    PeriodicCommitted(Result<(), CommitError>),
    /// [`Machine::wake`] is due.
    Tick,
    /// A session answered request `n` and waits for the next.
    SessionReply {
        n: u64,
        output_json: String,
    },
}

/// An output of the machine, for the driver to carry out in order. Effects marked *answer* are followed by the
/// driver feeding their answer back before any other event; effects marked *terminal* end the job's stay.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Show the job as running in the load report (its slice began now).
    ShowRunning,
    /// Show the job as leaving in the load report.
    ShowLeaving,
    /// Ask the worker for a checkpoint, after waiting `after_ms`.
    Checkpoint {
        seq: u64,
        mode: CheckpointMode,
        deadline_ms: u64,
        after_ms: u64,
    },
    /// Publish `started`.
    PublishStarted,
    /// *answer*: commit the adopted job's record as placed here, then publish `migrated`.
    CommitAdoption,
    /// *answer*: persist a snapshot-and-continue checkpoint, point the record at it, publish `checkpointed`.
    CommitPeriodic(Captured),
    /// *answer*: read the record and say whether this node still owns the job.
    CheckOwner,
    /// Hand the worker back: at once, or after the answer to the checkpoint request in flight.
    Release {
        in_flight: bool,
    },
    /// Kill the worker.
    Discard,
    /// Collect a worker that is exiting: awaited, or in the background (not on a move's path).
    Reap {
        background: bool,
    },
    Warn(String),
    /// *terminal*: commit the outcome, then publish `completed` or `failed`.
    Finish {
        outcome: Result<serde_json::Value, JobFailure>,
        run_ms: u64,
    },
    /// *terminal*: leave from `captured`, or from the last committed checkpoint when none.
    Leave {
        exit: Exit,
        captured: Option<Captured>,
        began_ms: u64,
    },
    /// *terminal*: stop without a word.
    End(JobEnd),
}

/// A stop-mode checkpoint request in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub seq: u64,
    pub exit: Exit,
    /// When the job was asked to leave (wall clock; the receiver measures the move from it).
    pub began_ms: u64,
    pub tries: u32,
}

/// Where the job is (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Starting { queued: Option<Exit> },
    Confirming { queued: Option<Exit> },
    Running,
    Checkpointing { seq: u64, queued: Option<Exit> },
    Committing { queued: Option<Exit> },
    Stopping(Stop),
    Done,
}

/// One job's stay on the node, from the worker being told to run it.
#[derive(Debug, Clone)]
pub struct Machine {
    rules: Rules,
    phase: Phase,
    /// Running time before this stay (from the checkpoint resumed).
    run_base_ms: u64,
    /// The job came from another node and its record still says `moving`.
    adopted: bool,
    next_seq: u64,
    timeout_at: u64,
    slice_started: Option<u64>,
    next_periodic: Option<u64>,
    /// A periodic capture found state it cannot pickle: no more periodic checkpoints for this job.
    periodic_off: bool,
}

impl Machine {
    /// A stay that told its worker to run or restore the job at `now`; `next_seq` is the next checkpoint's.
    pub fn new(rules: Rules, run_base_ms: u64, adopted: bool, next_seq: u64, now: Now) -> Self {
        // Until it runs, only the job timeout applies (it counts from now: start-up and restore included).
        let timeout_at = now.ms + rules.job_timeout_ms.saturating_sub(run_base_ms);
        Self {
            rules,
            phase: Phase::Starting { queued: None },
            run_base_ms,
            adopted,
            next_seq,
            timeout_at,
            slice_started: None,
            next_periodic: None,
            periodic_off: false,
        }
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The job's running time over all its slices at `now`.
    pub fn run_ms(&self, now: Now) -> u64 {
        self.run_base_ms + self.slice_started.map_or(0, |t| now.ms.saturating_sub(t))
    }

    /// When the next [`Event::Tick`] is due: the job timeout, the slice end or the next periodic checkpoint.
    pub fn wake(&self) -> Option<u64> {
        if self.phase == Phase::Done {
            return None;
        }
        let (slice_at, periodic_at) = match self.phase {
            Phase::Running => (
                self.slice_started.zip(self.rules.slice_ms).map(|(t, l)| t + l),
                self.next_periodic.filter(|_| !self.periodic_off),
            ),
            _ => (None, None),
        };
        [slice_at, periodic_at, Some(self.timeout_at)].into_iter().flatten().min()
    }

    fn seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Ask for a stop-mode checkpoint to leave for `exit`. Every stop gets `evacuate_deadline_ms`, a slice's
    /// too: a request costs the job nothing while it sits in a call into C, and the instant that call returns
    /// is often the only one for a long while (dlib's detector, then its encoder); a short deadline repeated
    /// leaves gaps between one request and the next, and a slice that fell in them every time never ended.
    fn stop(&mut self, exit: Exit, began_ms: u64, tries: u32, after_ms: u64) -> Effect {
        let seq = self.seq();
        let deadline_ms = self.rules.evacuate_deadline_ms;
        self.phase = Phase::Stopping(Stop { seq, exit, began_ms, tries });
        Effect::Checkpoint { seq, mode: CheckpointMode::Stop, deadline_ms, after_ms }
    }

    /// Back to running after a periodic checkpoint (taken or not); a leave that waited for it starts now.
    fn resume(&mut self, queued: Option<Exit>, now: Now) -> Vec<Effect> {
        self.next_periodic = self.rules.periodic_ms.map(|p| now.ms + p);
        self.phase = Phase::Running;
        match queued {
            Some(exit) => vec![self.stop(exit, now.wall_ms, 0, 0)],
            None => vec![],
        }
    }

    /// The last effects of the stay.
    fn end(&mut self, effects: Vec<Effect>) -> Vec<Effect> {
        self.phase = Phase::Done;
        effects
    }

    fn in_flight(&self) -> bool {
        matches!(self.phase, Phase::Checkpointing { .. } | Phase::Stopping(_))
    }

    pub fn on(&mut self, event: Event, now: Now) -> Vec<Effect> {
        if self.phase == Phase::Done {
            return vec![];
        }
        match event {
            Event::Started => self.started(now),
            Event::AdoptionCommitted(r) => match (&mut self.phase, r) {
                (Phase::Confirming { queued }, Ok(())) => {
                    let queued = queued.take();
                    self.running(queued, now)
                }
                (Phase::Confirming { .. }, Err(_)) => self.end(vec![Effect::Discard, Effect::End(JobEnd::Fenced)]),
                _ => vec![],
            },
            Event::Completed { output_json } => {
                let run_ms = self.run_ms(now);
                let outcome = serde_json::from_str(&output_json)
                    .map_err(|e| failure(FailureKind::BadOutput, format!("output is not JSON: {e}"), None));
                let release = Effect::Release { in_flight: self.in_flight() };
                self.end(vec![release, Effect::Finish { outcome, run_ms }])
            }
            Event::Failed { kind, message, traceback } => {
                let run_ms = self.run_ms(now);
                let outcome = Err(failure(FailureKind::Job(kind), message, traceback));
                let release = Effect::Release { in_flight: self.in_flight() };
                self.end(vec![release, Effect::Finish { outcome, run_ms }])
            }
            Event::WorkerExited { status } => {
                let run_ms = self.run_ms(now);
                let f = failure(FailureKind::WorkerExited, format!("worker exited: {status}"), None);
                self.end(vec![Effect::Finish { outcome: Err(f), run_ms }])
            }
            Event::Checkpointed { seq, envelope, stats, stopped } => {
                let captured = Captured { seq, envelope, stats, run_ms: self.run_ms(now) };
                self.checkpointed(captured, stopped, now)
            }
            Event::PeriodicCommitted(r) => match (&mut self.phase, r) {
                (Phase::Committing { .. }, Err(CommitError::Fenced)) => {
                    self.end(vec![Effect::Discard, Effect::End(JobEnd::Fenced)])
                }
                (Phase::Committing { queued }, r) => {
                    let queued = queued.take();
                    let mut effects = match r {
                        Err(CommitError::Unavailable(e)) => {
                            vec![Effect::Warn(format!("checkpoint not committed: {e}"))]
                        }
                        _ => vec![],
                    };
                    effects.extend(self.resume(queued, now));
                    effects
                }
                _ => vec![],
            },
            Event::CheckpointFailed { seq, kind, message } => self.checkpoint_failed(seq, kind, message, now),
            Event::Leave { to } => self.leave(to, now),
            Event::CheckOwner => vec![Effect::CheckOwner],
            Event::OwnerChecked { ours: true } => vec![],
            Event::OwnerChecked { ours: false } => self.end(vec![
                Effect::Warn("the job is owned elsewhere: stopping it here".into()),
                Effect::Discard,
                Effect::End(JobEnd::Fenced),
            ]),
            Event::Tick => self.tick(now),
            Event::SessionReply { n, output_json } => self.session_reply(Exit::Idle { n, output_json }, now),
        }
    }

    /// A session answered: it leaves the node checkpointed where it waits, whatever else was asked (a move or
    /// a park would only take it elsewhere to wait). A stop in flight is taken after the answer, so it is
    /// that checkpoint.
    fn session_reply(&mut self, idle: Exit, now: Now) -> Vec<Effect> {
        match &mut self.phase {
            Phase::Done => vec![],
            Phase::Stopping(stop) => {
                stop.exit = idle;
                vec![]
            }
            Phase::Starting { queued }
            | Phase::Confirming { queued }
            | Phase::Checkpointing { queued, .. }
            | Phase::Committing { queued } => {
                *queued = Some(idle);
                vec![Effect::ShowLeaving]
            }
            Phase::Running => vec![Effect::ShowLeaving, self.stop(idle, now.wall_ms, 0, 0)],
        }
    }

    fn started(&mut self, now: Now) -> Vec<Effect> {
        let Phase::Starting { queued } = &mut self.phase else {
            return vec![Effect::Warn("the worker said the job started twice".into())];
        };
        let queued = queued.take();
        self.slice_started = Some(now.ms);
        self.timeout_at = now.ms + self.rules.job_timeout_ms.saturating_sub(self.run_base_ms);
        self.next_periodic = self.rules.periodic_ms.map(|p| now.ms + p);
        if self.adopted {
            // Ours for good once the record says so.
            self.phase = Phase::Confirming { queued };
            return vec![Effect::ShowRunning, Effect::CommitAdoption];
        }
        let mut effects = vec![Effect::ShowRunning];
        effects.extend(self.running(queued, now));
        effects
    }

    fn running(&mut self, queued: Option<Exit>, now: Now) -> Vec<Effect> {
        self.phase = Phase::Running;
        let mut effects = vec![Effect::PublishStarted];
        if let Some(exit) = queued {
            effects.push(self.stop(exit, now.wall_ms, 0, 0));
        }
        effects
    }

    fn checkpointed(&mut self, captured: Captured, stopped: bool, now: Now) -> Vec<Effect> {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Stopping(stop) if stopped => {
                // The worker is on its way out; reaping it is not on the move's path.
                let leave = Effect::Leave { exit: stop.exit, captured: Some(captured), began_ms: stop.began_ms };
                self.end(vec![Effect::Reap { background: true }, leave])
            }
            Phase::Checkpointing { seq, queued } if seq == captured.seq && !stopped => {
                self.phase = Phase::Committing { queued };
                vec![Effect::CommitPeriodic(captured)]
            }
            other => {
                self.phase = other;
                let warn = Effect::Warn(format!(
                    "unexpected checkpoint {} (stopped: {stopped}) in {:?}",
                    captured.seq, self.phase
                ));
                if !stopped {
                    return vec![warn];
                }
                // The worker is gone with the job's state: treat it as a stop to park.
                let exit = Exit::Park(ParkReason::Evacuated);
                let leave = Effect::Leave { exit, captured: Some(captured), began_ms: now.wall_ms };
                self.end(vec![warn, Effect::Reap { background: false }, leave])
            }
        }
    }

    fn checkpoint_failed(&mut self, seq: u64, kind: CheckpointErrorKind, message: String, now: Now) -> Vec<Effect> {
        match &mut self.phase {
            Phase::Checkpointing { seq: want, queued } if *want == seq => {
                let queued = queued.take();
                let mut effects = vec![];
                if kind == CheckpointErrorKind::Unpicklable {
                    effects.push(Effect::Warn(format!("no periodic checkpoints for this job: {message}")));
                    self.periodic_off = true;
                }
                effects.extend(self.resume(queued, now));
                effects
            }
            Phase::Stopping(stop) if stop.seq == seq => {
                let retry = match (&stop.exit, kind) {
                    // Not running yet or any more: a Completed may be on its way; try again shortly.
                    (_, CheckpointErrorKind::NoJob) => stop.tries < STOP_RETRIES_NO_JOB,
                    // A slice cannot end where the job cannot be resumed, or while it holds state that cannot be
                    // saved (often held briefly: a decoder, a traceback): keep going and try again. Leaving from
                    // the last committed checkpoint would run the whole slice again.
                    (
                        Exit::Park(ParkReason::Slice),
                        CheckpointErrorKind::Deadline | CheckpointErrorKind::Unpicklable,
                    ) => true,
                    // A session waits for its request in a loop of short calls: the next try finds a line.
                    (Exit::Idle { .. }, CheckpointErrorKind::Deadline) => true,
                    _ => false,
                };
                let (exit, began_ms, tries) = (stop.exit.clone(), stop.began_ms, stop.tries);
                if retry {
                    let after_ms = if kind == CheckpointErrorKind::NoJob { STOP_RETRY_DELAY_MS } else { 0 };
                    return vec![self.stop(exit, began_ms, tries + 1, after_ms)];
                }
                if matches!(exit, Exit::Idle { .. }) {
                    // Its answer is not committed and the state it answered from cannot be saved: the request
                    // fails (the session goes back to where it waited before it).
                    let run_ms = self.run_ms(now);
                    let message = format!(
                        "the session cannot wait for its next request: its state cannot be checkpointed ({message})"
                    );
                    let outcome = Err(failure(FailureKind::Runtime, message, None));
                    return self.end(vec![Effect::Discard, Effect::Finish { outcome, run_ms }]);
                }
                // The radio needs the node now: leave from the last committed checkpoint.
                self.end(vec![
                    Effect::Warn(format!(
                        "cannot checkpoint to leave ({message}): resuming from the last committed checkpoint"
                    )),
                    Effect::Discard,
                    Effect::Leave { exit, captured: None, began_ms },
                ])
            }
            _ => vec![],
        }
    }

    fn leave(&mut self, to: Option<String>, now: Now) -> Vec<Effect> {
        let exit = match to {
            Some(n) if n != self.rules.node_id => Exit::Move(n),
            _ => Exit::Park(ParkReason::Evacuated),
        };
        let mut effects = vec![Effect::ShowLeaving];
        match &mut self.phase {
            // Ending its slice: it leaves for `exit` instead, and a stop that fails now falls back to the last
            // committed checkpoint as an evacuation does (a slice's would be tried again, for as long as the job
            // sits in a long call into C, while the radio waits).
            Phase::Stopping(stop) if stop.exit == Exit::Park(ParkReason::Slice) => {
                stop.exit = exit;
                stop.began_ms = now.wall_ms;
            }
            // Already leaving.
            Phase::Stopping(_) | Phase::Done => {}
            // A session that answered leaves to wait anyway.
            Phase::Starting { queued: Some(Exit::Idle { .. }) }
            | Phase::Confirming { queued: Some(Exit::Idle { .. }) }
            | Phase::Checkpointing { queued: Some(Exit::Idle { .. }), .. }
            | Phase::Committing { queued: Some(Exit::Idle { .. }) } => {}
            // Leaves once it runs, or once the periodic checkpoint is done (a later request replaces an earlier).
            Phase::Starting { queued }
            | Phase::Confirming { queued }
            | Phase::Checkpointing { queued, .. }
            | Phase::Committing { queued } => *queued = Some(exit),
            Phase::Running => effects.push(self.stop(exit, now.wall_ms, 0, 0)),
        }
        effects
    }

    fn tick(&mut self, now: Now) -> Vec<Effect> {
        if now.ms >= self.timeout_at {
            let run_ms = self.run_ms(now);
            let message = format!(
                "job timeout: still running after {} ms in all (node.job_timeout_ms); worker killed",
                self.rules.job_timeout_ms
            );
            let outcome = Err(failure(FailureKind::Timeout, message, None));
            return self.end(vec![Effect::Discard, Effect::Finish { outcome, run_ms }]);
        }
        if self.phase != Phase::Running {
            return vec![];
        }
        let slice_at = self.slice_started.zip(self.rules.slice_ms).map(|(t, l)| t + l);
        if slice_at.is_some_and(|t| now.ms >= t) {
            return vec![Effect::ShowLeaving, self.stop(Exit::Park(ParkReason::Slice), now.wall_ms, 0, 0)];
        }
        if !self.periodic_off && self.next_periodic.is_some_and(|t| now.ms >= t) {
            let seq = self.seq();
            self.next_periodic = None;
            self.phase = Phase::Checkpointing { seq, queued: None };
            let deadline_ms = self.rules.periodic_deadline_ms;
            return vec![Effect::Checkpoint { seq, mode: CheckpointMode::Continue, deadline_ms, after_ms: 0 }];
        }
        vec![]
    }
}

#[cfg(test)]
mod tests;
