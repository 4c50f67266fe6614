//! Host side of one worker process: spawn `microlambda worker`, talk the pipe protocol, kill it.
//!
//! The process boundary is the isolation: job code that raises, hangs, calls `os._exit` or segfaults ends or
//! stalls only its worker, never the host.
use super::protocol::{FromWorker, ToWorker, MAX_FRAME};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

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
}

/// How workers are started.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The `microlambda` binary (defaults to the running executable).
    pub exe: PathBuf,
    /// Key that signs and verifies checkpoints.
    pub key: Vec<u8>,
    /// Modules imported at start-up, so jobs that need them do not pay for the import (a warm worker).
    pub preload: Vec<String>,
    /// How long start-up may take.
    pub start_timeout: Duration,
    /// Scheduling niceness added to the worker (0: none), so the node's own control work (and the radio, on a
    /// BBU) comes before job code.
    pub nice: i32,
}

impl WorkerOptions {
    pub fn new(key: Vec<u8>) -> Self {
        Self {
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("microlambda")),
            key,
            preload: Vec::new(),
            start_timeout: Duration::from_secs(30),
            nice: 0,
        }
    }
}

/// A running worker process.
pub struct WorkerProcess {
    child: Child,
    stdin: ChildStdin,
    rx: mpsc::Receiver<FromWorker>,
    pid: u32,
    python: String,
}

impl WorkerProcess {
    /// Start a worker and wait until its interpreter is up.
    pub async fn spawn(opts: &WorkerOptions) -> Result<Self, WorkerError> {
        let mut std_cmd = std::process::Command::new(&opts.exe);
        std_cmd.arg("worker").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        std_cmd.env("PYTHONHASHSEED", "0");
        if !opts.preload.is_empty() {
            std_cmd.env("MICROLAMBDA_PRELOAD", opts.preload.join(","));
        }
        // A node that crashes takes its workers with it (a BBU that dies stops its jobs; they resume elsewhere
        // from their checkpoints). The signal follows the spawning thread: a runtime worker, not a blocking one.
        crate::proc::die_with_parent(&mut std_cmd);
        if opts.nice != 0 {
            crate::proc::renice(&mut std_cmd, opts.nice);
        }
        let mut cmd = Command::from(std_cmd);
        cmd.kill_on_drop(true);
        let mut child =
            cmd.spawn().map_err(|source| WorkerError::Spawn { exe: opts.exe.display().to_string(), source })?;
        let pid = child.id().unwrap_or(0);
        let mut stdin = child.stdin.take().expect("piped stdin");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let (tx, mut rx) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                match read_frame_async(&mut stdout).await {
                    Ok(Some(mut msg)) => {
                        if super::protocol::has_attachment(&msg) {
                            match read_attachment(&mut stdout).await {
                                Ok(bytes) => {
                                    if let FromWorker::Checkpointed { envelope, .. } = &mut msg {
                                        *envelope = bytes;
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!(pid, "worker stream broken in a checkpoint: {e}");
                                    break;
                                }
                            }
                        }
                        if tx.send(msg).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(pid, "worker stream broken: {e}");
                        break;
                    }
                }
            }
        });
        write_frame_async(&mut stdin, &ToWorker::Hello { key: opts.key.clone() }).await?;
        let python = match tokio::time::timeout(opts.start_timeout, rx.recv()).await {
            Ok(Some(FromWorker::Ready { python, .. })) => python,
            Ok(Some(other)) => return Err(WorkerError::NotReady(format!("unexpected first message {other:?}"))),
            Ok(None) => {
                let status = child.wait().await.ok();
                return Err(WorkerError::NotReady(format!("worker exited during start-up ({status:?})")));
            }
            Err(_) => return Err(WorkerError::NotReady("start-up timed out".into())),
        };
        Ok(Self { child, stdin, rx, pid, python })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `sys.version` of the worker's interpreter.
    pub fn python_version(&self) -> &str {
        &self.python
    }

    pub async fn send(&mut self, msg: &ToWorker) -> Result<(), WorkerError> {
        write_frame_async(&mut self.stdin, msg).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                WorkerError::Exited
            } else {
                WorkerError::Pipe(e)
            }
        })
    }

    /// Next message; `None` once the worker has exited (or closed its stream).
    pub async fn recv(&mut self) -> Option<FromWorker> {
        self.rx.recv().await
    }

    /// Kill the process (SIGKILL) and reap it.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Wait for the process to exit and return its status description.
    pub async fn wait(mut self) -> String {
        match self.child.wait().await {
            Ok(s) => s.to_string(),
            Err(e) => e.to_string(),
        }
    }
}

async fn write_frame_async<T: serde::Serialize>(w: &mut ChildStdin, msg: &T) -> std::io::Result<()> {
    let body = postcard::to_stdvec(msg).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let mut buf = Vec::with_capacity(body.len() + 4);
    buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buf.extend_from_slice(&body);
    w.write_all(&buf).await?;
    w.flush().await
}

/// The envelope that follows a `Checkpointed` frame (see `protocol::write_checkpointed`).
async fn read_attachment<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 8];
    r.read_exact(&mut len).await?;
    let len = u64::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "checkpoint over the limit"));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(body)
}

async fn read_frame_async<R, T>(r: &mut R) -> std::io::Result<Option<T>>
where
    R: tokio::io::AsyncRead + Unpin,
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
