//! The pipe protocol between a host (node or `microlambda run`) and a worker process (a zygote's child, or a
//! stand-alone `microlambda worker`).
//!
//! Two layers. The host's users (the job actor, `microlambda run`) speak [`ToWorker`] / [`FromWorker`] with a
//! [`super::WorkerProcess`]: checkpoints there are sealed envelopes. On the pipe itself the host speaks
//! [`ToChild`] / [`FromChild`]: checkpoints travel as their raw parts, because the key that seals and opens
//! envelopes stays in the host (the worker never has it). Frames are a little-endian u32 length followed by a
//! postcard body; the worker's protocol output is not its fd 1 (fd 1 points at stderr, so job code that prints
//! cannot corrupt the stream).
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

/// Largest frame either side accepts (a checkpoint travels in one frame).
pub const MAX_FRAME: usize = 1 << 30;

/// The Python source of a job: one module, loaded under `module_name` in the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleSpec {
    /// Name the module is registered under in `sys.modules` (stable for a job: checkpoints refer to it).
    pub module_name: String,
    /// File name shown in tracebacks.
    pub filename: String,
    pub source: String,
}

/// How a checkpoint request ends for the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckpointMode {
    /// Snapshot and keep running (periodic checkpoints for crash recovery).
    Continue,
    /// Snapshot, report it, and end the worker process at once (eviction). The job's `finally` blocks do not
    /// run here; they run where the job is restored.
    Stop,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    /// Run `entry(json.loads(input_json))` from `module`.
    Run { job_id: String, module: ModuleSpec, entry: String, input_json: String, next_seq: u64 },
    /// Continue a job from a signed checkpoint (envelope bytes as produced by a worker).
    Restore {
        job_id: String,
        module: ModuleSpec,
        #[serde(with = "serde_bytes")]
        checkpoint: Vec<u8>,
        /// The job's input (JSON), for a checkpoint that saved parts of it by reference.
        #[serde(default)]
        input_json: Option<String>,
    },
    /// Take a checkpoint of the running job. `deadline_ms` bounds how long the engine waits for a resumable
    /// instant (a frame called from C, a long C call).
    Checkpoint { seq: u64, mode: CheckpointMode, deadline_ms: u64 },
    /// Exit cleanly once idle.
    Shutdown,
    /// A session's request `n` (its input as JSON), for the session waiting for it (it may be sent before the
    /// job runs: the worker keeps it until the session asks).
    SessionRequest { n: u64, input_json: String },
}

/// What a worker process is told before anything else (no secret in it: checkpoints are sealed by the host).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildConfig {
    /// The venv's interpreter (`sys.executable`), so the worker finds the venv without an environment.
    pub python: Option<String>,
    /// Modules imported before any job (in the zygote, so every child has them).
    pub preload: Vec<String>,
    pub limits: crate::config::WorkerLimits,
    /// Niceness a zygote's child adds to the job's thread when its job comes (the zygote, and a child until
    /// then, run at the node's priority, so forks and start-ups are not delayed behind job code).
    pub nice: i32,
    /// Serve job after job (`node.isolation = "reuse"`) instead of ending after the first.
    pub reuse: bool,
    /// A module zygote's job module: executed once in the zygote, confined as a worker is (its limits, its
    /// user, its niceness), after the imports and before any fork; its children serve restores of this
    /// identical source only. None for the base and set zygotes and for workers.
    #[serde(default)]
    pub module: Option<ModuleSpec>,
    /// Library modules whose code index a set or module zygote builds before it forks (those a restore of its
    /// set looked code up in): its children's restores find the frames' code without walking the modules.
    #[serde(default)]
    pub index: Vec<String>,
    /// A set or module zygote's: its children serve restores only, so each one's warm-up before it is ready
    /// also restores a checkpoint of its own trivial run (the restore path's first writes to shared pages).
    #[serde(default)]
    pub restores: bool,
}

/// Host to worker, on the pipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToChild {
    /// First message of a stand-alone `microlambda worker` (a zygote gets it on its socket instead).
    Hello(ChildConfig),
    Run {
        job_id: String,
        module: ModuleSpec,
        entry: String,
        input_json: String,
    },
    /// Continue a job from the parts of a checkpoint the host has opened and verified.
    Restore {
        job_id: String,
        module: ModuleSpec,
        seq: u64,
        #[serde(with = "serde_bytes")]
        state: Vec<u8>,
        buffers: Vec<serde_bytes::ByteBuf>,
        /// The job's input (JSON), for a checkpoint that saved parts of it by reference.
        #[serde(default)]
        input_json: Option<String>,
    },
    Checkpoint {
        seq: u64,
        mode: CheckpointMode,
        deadline_ms: u64,
    },
    Shutdown,
    SessionRequest {
        n: u64,
        input_json: String,
    },
}

/// Worker to host, on the pipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromChild {
    /// Everything but checkpoints, as the host's users see it.
    Msg(FromWorker),
    /// A checkpoint's raw parts: followed by `parts` attachments (the pickled state, then each out-of-band
    /// buffer), each a u64 LE length and the bytes. The host compresses and seals them.
    /// `imports`: the library packages the state needs (sealed into the envelope, see `CheckpointBody`).
    Captured {
        seq: u64,
        stopped: bool,
        frames: Vec<crate::checkpoint::FrameIdentity>,
        imports: Vec<String>,
        stats: CaptureStats,
        parts: u32,
    },
}

/// Node to zygote, on its socket (a `SOCK_SEQPACKET` pair: one message per datagram).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToZygote {
    Hello(Box<ChildConfig>),
    /// Fork a child; the message carries two fds (`SCM_RIGHTS`): the read end of the child's command pipe,
    /// then the write end of its protocol pipe.
    Fork {
        token: u64,
        /// The child has a job waiting (a fork on demand): it skips the warm-up a set or module zygote's child
        /// runs while it waits forked ahead (a base zygote's child runs its trivial job either way).
        #[serde(default)]
        now: bool,
    },
    /// Import these modules (plain dotted names) before the next fork: what children forked from a set or
    /// module zygote imported again in each (a restore's, a request's lazy imports), so that the next children
    /// find them imported and indexed. Answered by `Imported` with the same token.
    Import {
        token: u64,
        modules: Vec<String>,
    },
}

/// Zygote to node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromZygote {
    /// Interpreter up, runtime warm, preloads imported but `failed` (modules that did not import); `threads`
    /// is the zygote's thread count (1 when fork is safe); `libraries`: the library packages it has imported,
    /// as a checkpoint names them (the runtime's own dependencies among them).
    Ready {
        pid: u32,
        python: String,
        threads: u32,
        failed: Vec<String>,
        libraries: Vec<String>,
        /// A module zygote whose job module could not be kept: its top level raised, or left a thread, an
        /// open file or a process behind (the node kills it and restores the ordinary way).
        #[serde(default)]
        module_error: Option<String>,
    },
    Forked {
        token: u64,
        pid: u32,
    },
    ForkFailed {
        token: u64,
        error: String,
    },
    /// The modules of `Import` `token` are imported but `failed`; `unsafe_to_fork`: why the zygote must not
    /// fork any more (an import left a thread, a process or an open file behind).
    Imported {
        token: u64,
        imported: u32,
        failed: Vec<String>,
        unsafe_to_fork: Option<String>,
    },
    /// A child was reaped (`status` as from `waitpid`). Sent after `Forked` for the same pid.
    Exited {
        pid: u32,
        status: i32,
    },
}

/// Timings of one checkpoint, measured inside the worker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaptureStats {
    /// Request received by the worker to state captured and pickled.
    pub capture_us: u64,
    /// Time to safe point: from the request to the instant the snapshot was taken (the trigger's latency plus
    /// any wait for a resumable instant).
    pub trigger_us: u64,
    /// How long the job's own thread was stopped for the snapshot.
    pub pause_us: u64,
    /// Pickled state (before compression).
    pub state_bytes: u64,
    /// The signed envelope.
    pub envelope_bytes: u64,
    /// Trace events seen at instants that could not be resumed (waited past them).
    pub waited_events: u64,
    /// Why the engine waited, when it did: the last reason seen, or the call into C the job was inside.
    pub waited_reason: Option<String>,
    pub frames: u32,
    /// With `ML_BASELINE` in the worker's environment (benchmarks): how long `pickle.dumps` took on the job's
    /// live variables at the same instant, the lower bound of any checkpointer (not counted in `pause_us` and
    /// `capture_us`). None without it, or where the live variables cannot be pickled plainly.
    pub baseline_us: Option<u64>,
}

/// Why a job failed, kept apart from runtime failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobErrorKind {
    /// The job's module does not compile.
    Syntax,
    /// The module has no such function, or it is not callable.
    BadEntry,
    /// The input is not valid JSON.
    BadInput,
    /// The job raised.
    Raised,
    /// The return value is not JSON-serializable.
    BadOutput,
    /// A checkpoint could not be restored (bad signature, changed code, ...).
    Restore,
    /// The runtime itself failed.
    Runtime,
    /// The job ran out of memory under the node's limit (`node.limits.memory_mb`).
    OutOfMemory,
    /// The job's output is over the node's cap (`node.limits.output_bytes`).
    OutputTooLarge,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobError {
    pub kind: JobErrorKind,
    pub message: String,
    /// Python traceback, when the job raised.
    pub traceback: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckpointErrorKind {
    /// No job is running (it may have just completed).
    NoJob,
    /// No resumable instant came before the deadline.
    Deadline,
    /// Some state cannot be serialized; the message names it.
    Unpicklable,
    /// The state is over the node's cap (`node.limits.checkpoint_bytes`).
    TooLarge,
    /// Anything else.
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointError {
    pub kind: CheckpointErrorKind,
    pub message: String,
    /// What could not be saved when the request ended, when its last try found such state: a `NoJob` after
    /// such a wait says what kept the checkpoint from being taken while the job ran (state held to the end, such
    /// as a database connection or a running coroutine).
    pub waited_for: Option<String>,
}

/// A job module's top level that took less than this to load imported nothing worth naming to the node (see
/// `FromWorker::Started`): it is not worth a module zygote (`node.module_zygote_min_load_ms`).
pub const TOP_LEVEL_WORTH_A_ZYGOTE: std::time::Duration = std::time::Duration::from_millis(10);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromWorker {
    /// Interpreter up and checked.
    Ready {
        pid: u32,
        python: String,
    },
    Started {
        job_id: String,
        /// A start's: the modules its module's top level imported, in order, when it took at least
        /// [`TOP_LEVEL_WORTH_A_ZYGOTE`] (a zygote of the module imports them first); empty otherwise and after a
        /// restore (`Restored` says it then).
        imported: Vec<String>,
    },
    /// A `Restore` was accepted: the checkpoint verified, the frames rebuilt; `Started` follows.
    Restored {
        job_id: String,
        seq: u64,
        restore_us: u64,
        /// The modules the restore imported (its process lacked them): a zygote started for the checkpoint's
        /// module set imports them too.
        imported: Vec<String>,
        /// The library modules the restore looked code up in (built their code index): such a zygote builds
        /// them before it forks.
        indexed: Vec<String>,
    },
    Checkpointed {
        seq: u64,
        #[serde(with = "serde_bytes")]
        envelope: Vec<u8>,
        stats: CaptureStats,
        /// True when the worker exits right after this message ([`CheckpointMode::Stop`]).
        stopped: bool,
    },
    CheckpointFailed {
        seq: u64,
        error: CheckpointError,
    },
    Completed {
        job_id: String,
        output_json: String,
        run_us: u64,
    },
    Failed {
        job_id: String,
        error: JobError,
    },
    /// A session answered its request `n` and waits for the next (the host then checkpoints it to stop).
    SessionReply {
        n: u64,
        output_json: String,
    },
}

/// Write one frame.
pub fn write_frame<W: Write, T: Serialize>(w: &mut W, msg: &T) -> io::Result<()> {
    let body = postcard::to_stdvec(msg).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    w.write_all(&(body.len() as u32).to_le_bytes())?;
    w.write_all(&body)?;
    w.flush()
}

/// Write a [`FromChild::Captured`] frame and its parts as attachments (written piece by piece, never
/// concatenated or encoded again). Hosts read them back with `read_attachment`.
pub fn write_captured<W: Write>(
    w: &mut W,
    seq: u64,
    stopped: bool,
    frames: Vec<crate::checkpoint::FrameIdentity>,
    imports: Vec<String>,
    stats: CaptureStats,
    parts: &[&[u8]],
) -> io::Result<()> {
    let msg = FromChild::Captured { seq, stopped, frames, imports, stats, parts: parts.len() as u32 };
    let body = postcard::to_stdvec(&msg).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    w.write_all(&(body.len() as u32).to_le_bytes())?;
    w.write_all(&body)?;
    for p in parts {
        w.write_all(&(p.len() as u64).to_le_bytes())?;
        w.write_all(p)?;
    }
    w.flush()
}

/// Read one frame; `Ok(None)` on a clean end of stream.
pub fn read_frame<R: Read, T: for<'de> Deserialize<'de>>(r: &mut R) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes is over the limit")));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    postcard::from_bytes(&body).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_end_cleanly() {
        let mut buf = Vec::new();
        let msg = ToWorker::Checkpoint { seq: 3, mode: CheckpointMode::Stop, deadline_ms: 50 };
        write_frame(&mut buf, &msg).unwrap();
        let mut r = &buf[..];
        let back: Option<ToWorker> = read_frame(&mut r).unwrap();
        assert_eq!(back, Some(msg));
        let end: Option<ToWorker> = read_frame(&mut r).unwrap();
        assert_eq!(end, None);
    }

    #[test]
    fn oversized_frame_is_refused() {
        let mut buf = ((MAX_FRAME + 1) as u32).to_le_bytes().to_vec();
        buf.extend_from_slice(&[0; 8]);
        let err = read_frame::<_, ToWorker>(&mut &buf[..]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
