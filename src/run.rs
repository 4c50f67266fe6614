//! `microlambda run` and `microlambda resume`: the checkpoint engine driven locally, without NATS.
//!
//! `run` starts the job in a worker forked by a zygote, as a node does; at each preemption it takes a stop-mode
//! checkpoint (the worker exits), and restores it in a fresh worker, until the job completes: the first restore
//! in a child the base zygote forked ahead, the later ones in a child of a zygote that has executed the job's
//! module and imported the libraries the first restore imported (the pool's module zygote, started in the
//! background once that restore said what it imported). The result
//! is printed as JSON on stdout, exactly as `json.dumps` gives it.
use crate::actors::pool::{Lease, WorkerPool, Zygotes};
use crate::worker::protocol::{CaptureStats, CheckpointErrorKind, CheckpointMode, FromWorker, ModuleSpec, ToWorker};
use crate::worker::WorkerOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `run` (parsed by the binary).
#[derive(Debug, Clone, Default)]
pub struct RunArgs {
    /// `FILE.py[:FUNC]`.
    pub target: String,
    pub input: String,
    pub preempt_every_ms: Option<u64>,
    pub preempt_at_ms: Vec<u64>,
    pub checkpoint_dir: Option<PathBuf>,
    pub stats: bool,
    /// How long one checkpoint may wait for a resumable instant.
    pub deadline_ms: u64,
    /// Snapshot-and-continue instead of evicting at each preemption (the worker keeps running).
    pub continue_mode: bool,
    pub key: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error(transparent)]
    Worker(#[from] crate::worker::WorkerError),
    #[error("the job failed: {0}")]
    Job(String),
    #[error("the worker died: {0}")]
    WorkerDied(String),
}

/// One checkpoint as `--stats` reports it.
#[derive(Debug, Clone)]
pub struct CheckpointRecord {
    pub seq: u64,
    pub stats: CaptureStats,
    pub restore_us: Option<u64>,
}

/// The result of a run.
#[derive(Debug)]
pub struct RunOutcome {
    pub output_json: String,
    pub checkpoints: Vec<CheckpointRecord>,
    pub failed_checkpoints: Vec<String>,
    pub wall: Duration,
    /// From the job's first `Started` (its module imported) to its result: what the job itself took,
    /// restores included, and `worker_wait`.
    pub ran: Duration,
    /// How long the moves waited for their new worker: the checkpoint opened and verified, and a child of a
    /// zygote taken (one forked ahead, or a fork now when a move follows the one before it closely).
    pub worker_wait: Duration,
}

/// Module spec for a job file: a stable module name derived from the file name.
pub fn module_for_file(path: &Path) -> Result<ModuleSpec, RunError> {
    let source =
        std::fs::read_to_string(path).map_err(|source| RunError::Read { path: path.display().to_string(), source })?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("job");
    // The file's own name, as `import` would give it (so tracebacks and class names read as under plain Python).
    // A dot would make it look like a package path to pickle; such names get a prefix.
    let module_name = if !stem.is_empty() && !stem.contains('.') {
        stem.to_string()
    } else {
        let clean: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        format!("mljob_{clean}")
    };
    let filename = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string();
    Ok(ModuleSpec { module_name, filename, source })
}

fn split_target(target: &str) -> (&str, &str) {
    match target.rsplit_once(':') {
        Some((f, func)) if !func.is_empty() && !func.contains('/') => (f, func),
        _ => (target, "main"),
    }
}

/// The key local runs sign checkpoints with: `MICROLAMBDA_KEY` (hex or text), else a key file created on first
/// use in the user's state directory, so `resume` can open what `run` wrote.
pub fn local_key() -> Vec<u8> {
    if let Ok(k) = std::env::var("MICROLAMBDA_KEY") {
        if !k.is_empty() {
            return k.into_bytes();
        }
    }
    let dir = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("microlambda");
    let path = dir.join("local.key");
    if let Ok(k) = std::fs::read(&path) {
        if k.len() >= 32 {
            return k;
        }
    }
    let key: [u8; 32] = rand::random();
    let _ = std::fs::create_dir_all(&dir);
    let tmp = dir.join(format!("local.key.{}", std::process::id()));
    if std::fs::write(&tmp, key).is_ok() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600));
        }
        let _ = std::fs::rename(&tmp, &path);
    }
    std::fs::read(&path).unwrap_or_else(|_| key.to_vec())
}

enum Start {
    Fresh {
        entry: String,
        input_json: String,
    },
    /// A checkpoint and the job's input (JSON: a checkpoint may save parts of it by reference), if known.
    Checkpoint(Vec<u8>, Option<String>),
}

/// Run a job to completion under the given preemption schedule.
pub async fn run(args: &RunArgs) -> Result<RunOutcome, RunError> {
    let (file, func) = split_target(&args.target);
    let module = module_for_file(Path::new(file))?;
    drive(args, module, Start::Fresh { entry: func.to_string(), input_json: args.input.clone() }).await
}

/// Continue a saved checkpoint to the end. The job's source is read from the file the checkpoint names, or
/// from `source` when given; its input from the `.input` file beside it (a checkpoint that refers to its
/// input is refused without it).
pub async fn resume(args: &RunArgs, checkpoint: &Path, source: Option<&Path>) -> Result<RunOutcome, RunError> {
    let bytes = std::fs::read(checkpoint)
        .map_err(|source| RunError::Read { path: checkpoint.display().to_string(), source })?;
    let env = crate::checkpoint::Envelope::new(&args.key);
    let body = env.open(&bytes).map_err(|e| RunError::Job(format!("{}: {e}", checkpoint.display())))?;
    let src_path = match source {
        Some(p) => p.to_path_buf(),
        None => {
            let meta = checkpoint.with_extension("source");
            let p = std::fs::read_to_string(&meta).map_err(|_| {
                RunError::Usage(format!("give the job's source file with --source ({} not found)", meta.display()))
            })?;
            PathBuf::from(p.trim())
        }
    };
    let mut module = module_for_file(&src_path)?;
    module.module_name = body.module_name.clone();
    let input_json = std::fs::read_to_string(checkpoint.with_extension("input")).ok();
    drive(args, module, Start::Checkpoint(bytes, input_json)).await
}

/// The set and module zygotes a local run keeps besides its base one: its restores need one module and one set.
fn local_zygotes() -> Zygotes {
    Zygotes { sets: 1, modules: 1, ..Zygotes::default() }
}

async fn drive(args: &RunArgs, module: ModuleSpec, start: Start) -> Result<RunOutcome, RunError> {
    let t_start = Instant::now();
    // One slot: the job's worker, forked by a zygote as on a node (a worker forked ahead waits for the next
    // move, and a restore's module and libraries get zygotes of their own once it has imported them).
    let pool = WorkerPool::new(WorkerOptions::new(args.key.clone()), 1, local_zygotes());
    let r = drive_in(args, module, start, &pool, t_start).await;
    pool.shutdown().await;
    r
}

async fn drive_in(
    args: &RunArgs,
    module: ModuleSpec,
    start: Start,
    pool: &Arc<WorkerPool>,
    t_start: Instant,
) -> Result<RunOutcome, RunError> {
    let job_id = format!("local-{}", std::process::id());
    let (mut lease, input_json) = match start {
        Start::Fresh { entry, input_json } => {
            let mut lease = pool.acquire().await?;
            let run = ToWorker::Run {
                job_id: job_id.clone(),
                module: module.clone(),
                entry,
                input_json: input_json.clone(),
                next_seq: 0,
            };
            lease.worker.send(&run).await?;
            (lease, Some(input_json))
        }
        Start::Checkpoint(bytes, input_json) => {
            (restore_in_new_worker(pool, &job_id, &module, bytes, input_json.as_deref()).await?, input_json)
        }
    };
    pool.spawn_refill();
    // Preemption instants count from the moment the job starts running (not from process start-up).
    let mut schedule: Vec<Instant> = Vec::new();
    let mut started = false;
    let mut t_started = Instant::now();
    let mut slice_start = Instant::now();
    let mut seq = 0u64;
    let mut records: Vec<CheckpointRecord> = Vec::new();
    let mut failed = Vec::new();
    let mut in_flight = false;
    let mut worker_wait = Duration::ZERO;
    loop {
        let next = if started { next_preemption(&schedule, args.preempt_every_ms, slice_start) } else { None };
        let worker = &mut lease.worker;
        let msg = match next {
            Some(at) if !in_flight => {
                tokio::select! {
                    m = worker.recv() => m,
                    _ = tokio::time::sleep_until(at.into()) => {
                        if schedule.last().is_some_and(|t| *t <= Instant::now()) {
                            schedule.pop();
                        }
                        seq += 1;
                        let mode = if args.continue_mode { CheckpointMode::Continue } else { CheckpointMode::Stop };
                        // A worker ends with its job: one that has just answered and exited cannot take the
                        // request, and its answer is still to be read (or its end, if it died).
                        let request = ToWorker::Checkpoint { seq, mode, deadline_ms: args.deadline_ms };
                        if let Err(e) = worker.send(&request).await {
                            tracing::debug!("checkpoint request not delivered: {e}");
                        }
                        in_flight = true;
                        slice_start = Instant::now();
                        continue;
                    }
                }
            }
            _ => worker.recv().await,
        };
        let Some(msg) = msg else {
            let status = pool.reap(lease).await;
            return Err(RunError::WorkerDied(status));
        };
        match msg {
            FromWorker::Completed { output_json, .. } => {
                pool.discard(lease).await;
                return Ok(RunOutcome {
                    output_json,
                    checkpoints: records,
                    failed_checkpoints: failed,
                    wall: t_start.elapsed(),
                    ran: t_started.elapsed(),
                    worker_wait,
                });
            }
            FromWorker::Failed { error, .. } => {
                pool.discard(lease).await;
                let mut m = error.message;
                if let Some(tb) = error.traceback {
                    m = format!("{m}\n{}", crate::wire::hide_runtime_frames(&tb));
                }
                return Err(RunError::Job(m));
            }
            FromWorker::Checkpointed { seq: s, envelope, stats, stopped } => {
                in_flight = false;
                if let Some(dir) = &args.checkpoint_dir {
                    save_checkpoint(dir, s, &envelope, &module, input_json.as_deref())?;
                }
                records.push(CheckpointRecord { seq: s, stats, restore_us: None });
                if stopped {
                    // The worker has sent its checkpoint and is ending: its slot goes to the restore.
                    pool.discard(lease).await;
                    let asked = Instant::now();
                    lease = restore_in_new_worker(pool, &job_id, &module, envelope, input_json.as_deref()).await?;
                    worker_wait += asked.elapsed();
                    // No preemption until the restored job runs (a request before it would find no job).
                    in_flight = true;
                }
                slice_start = Instant::now();
            }
            FromWorker::Restored { restore_us, imported, indexed, .. } => {
                if let Some(r) = records.last_mut() {
                    r.restore_us = Some(restore_us);
                }
                pool.restored(&lease, &imported, &indexed);
            }
            FromWorker::CheckpointFailed { seq: s, error } => {
                in_flight = false;
                // A request the job's end answered is worth a line only when it had waited (for what, then).
                if error.kind != CheckpointErrorKind::NoJob
                    || error.waited_for.is_some()
                    || std::env::var_os("ML_DEBUG").is_some()
                {
                    let waited = error.waited_for.map(|w| format!(" ({w})")).unwrap_or_default();
                    failed.push(format!("checkpoint {s}: {:?}: {}{waited}", error.kind, error.message));
                }
                // State that cannot be saved (a lock, a socket, a stale iterator) ends the request, as any other
                // request that found no resumable instant before its deadline: the job runs on, as on a node,
                // and the reason is reported (`not taken`), naming the variable.
            }
            FromWorker::Started { .. } => {
                if !started {
                    started = true;
                    let t0 = Instant::now();
                    t_started = t0;
                    schedule = args.preempt_at_ms.iter().map(|ms| t0 + Duration::from_millis(*ms)).collect();
                    schedule.sort();
                    schedule.reverse(); // pop() gives the earliest
                }
                slice_start = Instant::now();
                in_flight = false;
            }
            // `run` drives plain jobs: a session's replies are not expected here.
            FromWorker::Ready { .. } | FromWorker::SessionReply { .. } => {}
        }
    }
}

/// A worker that has the checkpoint's module and libraries when a zygote of the pool has them (else one the
/// base zygote forked), given the checkpoint to continue.
async fn restore_in_new_worker(
    pool: &Arc<WorkerPool>,
    job_id: &str,
    module: &ModuleSpec,
    checkpoint: Vec<u8>,
    input_json: Option<&str>,
) -> Result<Lease, RunError> {
    let (mut lease, opened) = pool.acquire_restore(module, checkpoint).await?;
    lease.worker.restore(job_id, module, opened, input_json).await?;
    Ok(lease)
}

fn next_preemption(schedule: &[Instant], every: Option<u64>, slice_start: Instant) -> Option<Instant> {
    let a = schedule.last().copied();
    let b = every.map(|ms| slice_start + Duration::from_millis(ms.max(1)));
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Keep a checkpoint as `<module>-<seq>.mlck`, its source file's name and its job's input beside it, written
/// before the checkpoint appears (a checkpoint file is never there without them).
fn save_checkpoint(
    dir: &Path,
    seq: u64,
    bytes: &[u8],
    module: &ModuleSpec,
    input_json: Option<&str>,
) -> Result<(), RunError> {
    let io = |source| RunError::Read { path: dir.display().to_string(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    let path = dir.join(format!("{}-{seq:04}.mlck", module.module_name));
    std::fs::write(path.with_extension("source"), &module.filename).map_err(io)?;
    if let Some(input) = input_json {
        std::fs::write(path.with_extension("input"), input).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(())
}

/// `--stats` lines.
pub fn format_stats(o: &RunOutcome) -> String {
    let mut s = format!(
        "checkpoints: {}  wall: {:.1} ms  ran: {:.1} ms  (waiting for new workers: {:.1} ms)\n",
        o.checkpoints.len(),
        o.wall.as_secs_f64() * 1e3,
        o.ran.as_secs_f64() * 1e3,
        o.worker_wait.as_secs_f64() * 1e3
    );
    s.push_str("seq  capture_ms  pause_ms     ttsp_ms  state_B  envelope_B  frames  waited  restore_ms\n");
    for r in &o.checkpoints {
        s.push_str(&format!(
            "{:<4} {:>10.3} {:>9.3} {:>11.3} {:>8} {:>11} {:>7} {:>7} {:>11}\n",
            r.seq,
            r.stats.capture_us as f64 / 1e3,
            r.stats.pause_us as f64 / 1e3,
            r.stats.trigger_us as f64 / 1e3,
            r.stats.state_bytes,
            r.stats.envelope_bytes,
            r.stats.frames,
            r.stats.waited_events,
            r.restore_us.map(|u| format!("{:.3}", u as f64 / 1e3)).unwrap_or_else(|| "-".into()),
        ));
    }
    for r in o.checkpoints.iter().filter(|r| r.stats.waited_reason.is_some()) {
        s.push_str(&format!("waited at {}: {}\n", r.seq, r.stats.waited_reason.as_deref().unwrap_or_default()));
    }
    for f in &o.failed_checkpoints {
        s.push_str(&format!("not taken: {f}\n"));
    }
    s
}
