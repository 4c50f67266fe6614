//! Host side of one worker process: start it (forked by a [`super::Zygote`], or spawned stand-alone), talk the
//! pipe protocol, seal and open its checkpoints, kill it with everything it forked.
//!
//! The process boundary is the isolation: job code that raises, hangs, calls `os._exit` or segfaults ends or
//! stalls only its worker, never the host. The key stays on this side: the worker sends a checkpoint's raw
//! parts and this handle compresses and seals them; a restore is opened and verified here and the worker gets
//! the parts.
use super::protocol::{
    CaptureStats, ChildConfig, FromChild, FromWorker, JobError, JobErrorKind, ModuleSpec, ToChild, ToWorker, MAX_FRAME,
};
use crate::checkpoint::{self, CheckpointBody, Envelope, FrameIdentity};
use crate::config::WorkerLimits;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot start worker {exe}: {source}")]
    Spawn { exe: String, source: std::io::Error },
    #[error("worker did not become ready: {0}")]
    NotReady(String),
    #[error("worker pipe: {0}")]
    Pipe(#[from] std::io::Error),
    #[error("worker exited")]
    Exited,
    #[error("zygote: {0}")]
    Zygote(String),
}

/// How workers are started.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The `microlambda` binary (defaults to the running executable).
    pub exe: PathBuf,
    /// Key that signs and verifies checkpoints. It stays in the host: workers never get it.
    pub key: Vec<u8>,
    /// Modules imported at start-up, so jobs that need them do not pay for the import (the zygote's).
    pub preload: Vec<String>,
    /// How long start-up may take.
    pub start_timeout: Duration,
    /// Scheduling niceness added to the worker (0: none), so the node's own control work (and the radio, on a
    /// BBU) comes before job code.
    pub nice: i32,
    /// Limits set in the worker process before job code runs.
    pub limits: WorkerLimits,
    /// A worker serves job after job (`node.isolation = "reuse"`) instead of ending with its first job.
    pub reuse: bool,
    /// During a key rotation: the previous key, still accepted for restores until the instant.
    pub previous_key: Option<(Vec<u8>, std::time::Instant)>,
    /// For a module zygote: the job module it executes once before forking (see [`ChildConfig::module`]).
    pub module: Option<ModuleSpec>,
    /// For a set or module zygote: the modules whose code index it builds before forking.
    pub index: Vec<String>,
    /// For a set or module zygote: its children serve restores only (see [`ChildConfig::restores`]).
    pub restores: bool,
}

impl WorkerOptions {
    /// The envelope these options seal and open checkpoints with (the previous key too, while accepted).
    pub fn envelope(&self) -> Envelope {
        let e = Envelope::new(&self.key);
        match &self.previous_key {
            Some((old, until)) => e.accepting_until(old, *until),
            None => e,
        }
    }

    /// Defaults; `preload` from the host's `MICROLAMBDA_PRELOAD` (comma-separated), which `microlambda run` uses.
    pub fn new(key: Vec<u8>) -> Self {
        let preload = std::env::var("MICROLAMBDA_PRELOAD").unwrap_or_default();
        Self {
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("microlambda")),
            key,
            preload: preload.split(',').map(str::trim).filter(|m| !m.is_empty()).map(String::from).collect(),
            start_timeout: Duration::from_secs(30),
            nice: 0,
            limits: WorkerLimits::default(),
            reuse: false,
            previous_key: None,
            module: None,
            index: Vec::new(),
            restores: false,
        }
    }

    /// What a worker process is told first: no key in it.
    pub(crate) fn child_config(&self) -> ChildConfig {
        ChildConfig {
            python: std::env::var("MICROLAMBDA_PYTHON").ok().filter(|p| !p.is_empty()),
            preload: self.preload.clone(),
            limits: self.limits.clone(),
            nice: self.nice,
            reuse: self.reuse,
            module: self.module.clone(),
            index: self.index.clone(),
            restores: self.restores,
        }
    }
}

/// The environment a worker process starts with: the node's is cleared (it may hold the mesh's key and NATS
/// URL), and only what Python and job code need is set. `PYTHONHASHSEED=0`: string hashes, hence the order of
/// sets, must be the same where a checkpoint is taken and where it is restored. Plain-CPython reference runs
/// use it too ([`reference_command`]).
pub(crate) fn child_env(single_threaded_blas: bool) -> Vec<(String, String)> {
    let mut env = vec![("PYTHONHASHSEED".to_string(), "0".to_string())];
    // The locale, the runtime's diagnostics (ML_DEBUG, ML_PROFILE, ML_BASELINE: docs/CHECKPOINTS.md; ML_WARMUP:
    // docs/BENCHMARKS.md) and the BLAS libraries' choice of kernels, which an operator pins so that nodes with
    // unlike CPUs compute the same numbers (a job moved between them goes on as it would have), nothing else of
    // the host's environment.
    for k in [
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "TZ",
        "ML_DEBUG",
        "ML_PROFILE",
        "ML_BASELINE",
        "ML_WARMUP",
        "OPENBLAS_CORETYPE",
        "MKL_CBWR",
    ] {
        if let Ok(v) = std::env::var(k) {
            env.push((k.to_string(), v));
        }
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
    }
    if single_threaded_blas {
        // A zygote must be single-threaded when it forks: BLAS libraries start their thread pools at import.
        for k in ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"] {
            env.push((k.to_string(), "1".to_string()));
        }
    }
    env
}

/// A command running `program` (plain CPython, for a reference run that workers' outputs are compared with:
/// the scenarios', the benchmarks' and the tests') in a worker's environment ([`child_env`], BLAS
/// single-threaded). A host variable that changes numbers, which a worker did not see (`OPENBLAS_CORETYPE`,
/// now passed on), made a reference differ from every worker run (13_scipy_optimize's BFGS took 482
/// iterations instead of 265).
pub fn reference_command(program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    cmd.env_clear().envs(child_env(true));
    cmd
}

/// The job a worker runs: what its checkpoints are sealed with.
#[derive(Debug, Clone, Default)]
struct JobMeta {
    job_id: String,
    module_name: String,
    source_sha256: [u8; 32],
}

/// Seals a worker's checkpoints (host side).
struct Sealer {
    envelope: Arc<Envelope>,
    job: Mutex<JobMeta>,
    checkpoint_cap: u64,
}

impl Sealer {
    fn seal(
        &self,
        seq: u64,
        stopped: bool,
        frames: Vec<FrameIdentity>,
        imports: Vec<String>,
        mut stats: CaptureStats,
        mut parts: Vec<Vec<u8>>,
    ) -> FromWorker {
        let job = self.job.lock().map(|j| j.clone()).unwrap_or_default();
        stats.state_bytes = parts.iter().map(Vec::len).sum::<usize>() as u64;
        let state = if parts.is_empty() { Vec::new() } else { parts.remove(0) };
        let (state_compression, state, buffers) = checkpoint::compress_checkpoint(state, parts);
        let body = CheckpointBody {
            python: crate::py::PYTHON_MINOR.to_string(),
            job_id: job.job_id,
            seq,
            created_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            module_name: job.module_name,
            source_sha256: job.source_sha256,
            frames,
            imports,
            state_compression,
            state,
            buffers,
        };
        let envelope = self.envelope.seal_parts(&body).to_vec();
        stats.envelope_bytes = envelope.len() as u64;
        FromWorker::Checkpointed { seq, envelope, stats, stopped }
    }
}

/// A checkpoint opened and verified for a restore of one module: what the worker gets, and the library
/// packages it needs (the pool picks the zygote to fork the worker from by them).
pub struct OpenedCheckpoint {
    seq: u64,
    state: Vec<u8>,
    buffers: Vec<Vec<u8>>,
    pub imports: Vec<String>,
}

/// Open and check a checkpoint for a restore of `module`. CPU-bound (the MAC over every byte, decompression):
/// call it off the async threads.
pub fn open_for_restore(
    envelope: &Envelope,
    module: &super::ModuleSpec,
    bytes: &[u8],
) -> Result<OpenedCheckpoint, String> {
    let mut body = envelope.open(bytes).map_err(|e| e.to_string())?;
    if body.python != crate::py::PYTHON_MINOR {
        return Err(checkpoint::EnvelopeError::PythonMismatch {
            found: body.python,
            running: crate::py::PYTHON_MINOR.into(),
        }
        .to_string());
    }
    if body.source_sha256 != checkpoint::source_digest(&module.source) || body.module_name != module.module_name {
        return Err(checkpoint::EnvelopeError::SourceMismatch.to_string());
    }
    let (seq, imports) = (body.seq, std::mem::take(&mut body.imports));
    let (state, buffers) = body.into_parts().map_err(|e| e.to_string())?;
    Ok(OpenedCheckpoint { seq, state, buffers, imports })
}

/// How the process ends and is reaped.
pub(crate) enum End {
    /// Spawned by this process (`microlambda run`): reaped through tokio.
    Spawned(Child),
    /// Forked by a zygote, which reaps it and reports the wait status.
    Forked(Option<oneshot::Receiver<i32>>),
}

/// A running worker process (its own process group).
pub struct WorkerProcess {
    writer: Box<dyn AsyncWrite + Send + Unpin>,
    rx: mpsc::Receiver<FromWorker>,
    /// Answers made by the host itself (a restore refused before the worker saw it).
    injected: VecDeque<FromWorker>,
    pid: u32,
    python: String,
    end: End,
    sealer: Arc<Sealer>,
    ended: bool,
}

impl WorkerProcess {
    /// Start a stand-alone worker (no zygote: `microlambda run`, benches) and wait until its interpreter is up.
    pub async fn spawn(opts: &WorkerOptions) -> Result<Self, WorkerError> {
        use std::os::unix::process::CommandExt;
        let mut std_cmd = std::process::Command::new(&opts.exe);
        std_cmd.arg("worker").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        std_cmd.env_clear().envs(child_env(false));
        std_cmd.process_group(0);
        // A node that crashes takes its workers with it (a BBU that dies stops its jobs; they resume elsewhere
        // from their checkpoints). The signal follows the spawning thread: a runtime worker, not a blocking one.
        crate::proc::die_with_parent(&mut std_cmd);
        if opts.nice != 0 {
            crate::proc::renice(&mut std_cmd, opts.nice);
        }
        let mut cmd = tokio::process::Command::from(std_cmd);
        cmd.kill_on_drop(true);
        let mut child =
            cmd.spawn().map_err(|source| WorkerError::Spawn { exe: opts.exe.display().to_string(), source })?;
        let pid = child.id().unwrap_or(0);
        let mut stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        write_frame_async(&mut stdin, &ToChild::Hello(opts.child_config())).await?;
        let envelope = Arc::new(opts.envelope());
        Self::start(Box::new(stdin), stdout, pid, End::Spawned(child), envelope, opts).await
    }

    /// Wrap a worker's pipes and wait for its `Ready`.
    pub(crate) async fn start<R: AsyncRead + Unpin + Send + 'static>(
        writer: Box<dyn AsyncWrite + Send + Unpin>,
        reader: R,
        pid: u32,
        end: End,
        envelope: Arc<Envelope>,
        opts: &WorkerOptions,
    ) -> Result<Self, WorkerError> {
        let sealer = Arc::new(Sealer {
            envelope,
            job: Mutex::new(JobMeta::default()),
            checkpoint_cap: opts.limits.checkpoint_bytes,
        });
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(read_loop(reader, tx, sealer.clone(), pid));
        let mut w =
            Self { writer, rx, injected: VecDeque::new(), pid, python: String::new(), end, sealer, ended: false };
        match tokio::time::timeout(opts.start_timeout, w.rx.recv()).await {
            Ok(Some(FromWorker::Ready { python, .. })) => w.python = python,
            Ok(Some(other)) => {
                w.kill_now();
                return Err(WorkerError::NotReady(format!("unexpected first message {other:?}")));
            }
            Ok(None) => {
                let status = w.wait_status().await;
                return Err(WorkerError::NotReady(format!("worker exited during start-up ({status})")));
            }
            Err(_) => {
                w.kill_now();
                return Err(WorkerError::NotReady("start-up timed out".into()));
            }
        }
        Ok(w)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `sys.version` of the worker's interpreter.
    pub fn python_version(&self) -> &str {
        &self.python
    }

    /// Whether the process has not been seen to exit (a worker forked ahead can die while it waits: its zygote
    /// died, or it was killed).
    pub fn is_alive(&mut self) -> bool {
        match &mut self.end {
            End::Spawned(c) => matches!(c.try_wait(), Ok(None)),
            End::Forked(rx) => match rx.as_mut().map(|r| r.try_recv()) {
                Some(Err(oneshot::error::TryRecvError::Empty)) => true,
                Some(_) => {
                    *rx = None;
                    false
                }
                None => false,
            },
        }
    }

    /// Send a command. A `Restore` is opened and verified here first; a checkpoint that does not verify never
    /// reaches the worker, and the answer is a `Failed` (kind `Restore`) from [`WorkerProcess::recv`].
    pub async fn send(&mut self, msg: &ToWorker) -> Result<(), WorkerError> {
        let frame = match msg {
            ToWorker::Run { job_id, module, entry, input_json, .. } => {
                self.set_job(job_id, module);
                ToChild::Run {
                    job_id: job_id.clone(),
                    module: module.clone(),
                    entry: entry.clone(),
                    input_json: input_json.clone(),
                }
            }
            ToWorker::Restore { job_id, module, checkpoint, input_json } => {
                let env = self.sealer.envelope.clone();
                let (m, bytes) = (module.clone(), checkpoint.clone());
                let opened = tokio::task::spawn_blocking(move || open_for_restore(&env, &m, &bytes))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                return self.restore(job_id, module, opened, input_json.as_deref()).await;
            }
            ToWorker::Checkpoint { seq, mode, deadline_ms } => {
                ToChild::Checkpoint { seq: *seq, mode: *mode, deadline_ms: *deadline_ms }
            }
            ToWorker::Shutdown => ToChild::Shutdown,
            ToWorker::SessionRequest { n, input_json } => {
                ToChild::SessionRequest { n: *n, input_json: input_json.clone() }
            }
        };
        self.write(&frame).await
    }

    /// Continue a job from a checkpoint the host opened ([`open_for_restore`]); one that did not open never
    /// reaches the worker, and the answer is a `Failed` (kind `Restore`) from [`WorkerProcess::recv`].
    /// `input_json`: the job's input, which the checkpoint may have saved parts of by reference.
    pub async fn restore(
        &mut self,
        job_id: &str,
        module: &super::ModuleSpec,
        opened: Result<OpenedCheckpoint, String>,
        input_json: Option<&str>,
    ) -> Result<(), WorkerError> {
        self.set_job(job_id, module);
        let frame = match opened {
            Ok(OpenedCheckpoint { seq, state, buffers, .. }) => ToChild::Restore {
                job_id: job_id.to_string(),
                module: module.clone(),
                seq,
                state,
                buffers: buffers.into_iter().map(serde_bytes::ByteBuf::from).collect(),
                input_json: input_json.map(str::to_string),
            },
            Err(message) => {
                self.injected.push_back(FromWorker::Failed {
                    job_id: job_id.to_string(),
                    error: JobError { kind: JobErrorKind::Restore, message, traceback: None },
                });
                return Ok(());
            }
        };
        self.write(&frame).await
    }

    async fn write(&mut self, frame: &ToChild) -> Result<(), WorkerError> {
        write_frame_async(&mut self.writer, frame).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                WorkerError::Exited
            } else {
                WorkerError::Pipe(e)
            }
        })
    }

    fn set_job(&self, job_id: &str, module: &super::ModuleSpec) {
        if let Ok(mut j) = self.sealer.job.lock() {
            *j = JobMeta {
                job_id: job_id.to_string(),
                module_name: module.module_name.clone(),
                source_sha256: checkpoint::source_digest(&module.source),
            };
        }
    }

    /// Next message; `None` once the worker has exited (or closed its stream).
    pub async fn recv(&mut self) -> Option<FromWorker> {
        if let Some(m) = self.injected.pop_front() {
            return Some(m);
        }
        self.rx.recv().await
    }

    /// SIGKILL the process group at once (no wait).
    fn kill_now(&mut self) {
        super::fdpass::kill_group(self.pid);
        if let End::Spawned(c) = &mut self.end {
            let _ = c.start_kill();
        }
    }

    /// Kill the process and everything it forked (SIGKILL to its process group) and reap it.
    pub async fn kill(mut self) {
        self.kill_now();
        let _ = self.wait_status().await;
    }

    /// Wait for the process to exit and return its status description. Whatever it forked is killed then.
    pub async fn wait(mut self) -> String {
        self.wait_status().await
    }

    async fn wait_status(&mut self) -> String {
        let s = match &mut self.end {
            End::Spawned(c) => match c.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            },
            End::Forked(rx) => match rx.take() {
                Some(rx) => match rx.await {
                    Ok(raw) => {
                        use std::os::unix::process::ExitStatusExt;
                        std::process::ExitStatus::from_raw(raw).to_string()
                    }
                    Err(_) => "its zygote is gone".to_string(),
                },
                None => "already reaped".to_string(),
            },
        };
        // The group outlives its leader while a process it forked lives: end it too.
        super::fdpass::kill_group(self.pid);
        self.ended = true;
        s
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if !self.ended {
            super::fdpass::kill_group(self.pid);
        }
    }
}

/// Read the worker's stream: messages as they come, checkpoints sealed here (off the async threads).
async fn read_loop<R: AsyncRead + Unpin>(mut r: R, tx: mpsc::Sender<FromWorker>, sealer: Arc<Sealer>, pid: u32) {
    loop {
        let msg = match read_frame_async::<_, FromChild>(&mut r).await {
            Ok(Some(FromChild::Msg(m))) => m,
            Ok(Some(FromChild::Captured { seq, stopped, frames, imports, stats, parts })) => {
                let cap = if sealer.checkpoint_cap == 0 { MAX_FRAME as u64 } else { sealer.checkpoint_cap };
                let mut total = 0u64;
                let mut ps = Vec::with_capacity(parts as usize);
                for _ in 0..parts {
                    match read_attachment(&mut r, cap.saturating_sub(total)).await {
                        Ok(b) => {
                            total += b.len() as u64;
                            ps.push(b);
                        }
                        Err(e) => {
                            tracing::warn!(pid, "worker stream broken in a checkpoint: {e}");
                            super::fdpass::kill_group(pid);
                            return;
                        }
                    }
                }
                let s = sealer.clone();
                match tokio::task::spawn_blocking(move || s.seal(seq, stopped, frames, imports, stats, ps)).await {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(pid, "sealing a checkpoint failed: {e}");
                        return;
                    }
                }
            }
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(pid, "worker stream broken: {e}");
                return;
            }
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
}

async fn write_frame_async<W: AsyncWrite + Unpin + ?Sized, T: serde::Serialize>(
    w: &mut W,
    msg: &T,
) -> std::io::Result<()> {
    let body = postcard::to_stdvec(msg).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let mut buf = Vec::with_capacity(body.len() + 4);
    buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buf.extend_from_slice(&body);
    w.write_all(&buf).await?;
    w.flush().await
}

/// One part that follows a `Captured` frame (see `protocol::write_captured`), at most `limit` bytes.
async fn read_attachment<R: AsyncRead + Unpin>(r: &mut R, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 8];
    r.read_exact(&mut len).await?;
    let len = u64::from_le_bytes(len);
    if len > limit || len > MAX_FRAME as u64 {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "checkpoint over the limit"));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).await?;
    Ok(body)
}

async fn read_frame_async<R, T>(r: &mut R) -> std::io::Result<Option<T>>
where
    R: AsyncRead + Unpin,
    T: for<'de> serde::Deserialize<'de>,
{
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "frame over the limit"));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    postcard::from_bytes(&body).map(Some).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
