//! A node's job slots and its zygote: a fixed number of slots; every job start and every restore gets a fresh
//! worker process forked by the zygote (which has the runtime warm and the node's modules imported), and that
//! worker ends with its job. Workers are forked ahead of need (one per slot), so a job does not wait for the
//! fork.
//!
//! With `node.isolation = "reuse"` a worker that ended its job cleanly is kept for the next one (forked from the
//! same zygote, still without the key and under the same limits), which saves the fork but lets a job see what
//! the one before it left in the interpreter.
//!
//! Guarantees (`fork`, the default): a worker serves one lease; nothing of a job reaches another job's process; a worker's process
//! group is killed when its lease ends, whichever way (release, discard, reap). The zygote is started on first
//! use and again if it died.
use crate::worker::{WorkerError, WorkerOptions, WorkerProcess, Zygote};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Shared by the node actor and its job actors.
pub struct WorkerPool {
    opts: WorkerOptions,
    zygote: tokio::sync::Mutex<Option<Arc<Zygote>>>,
    /// Forked ahead of need, not yet given a job.
    idle: Mutex<Vec<WorkerProcess>>,
    slots: Arc<Semaphore>,
    size: usize,
    /// One refill at a time, so that several ending jobs do not fork more workers than there are slots.
    refilling: tokio::sync::Mutex<()>,
    /// Refills wait while this is set: the radio needs the CPU on a busy BBU (and the evacuation under way);
    /// jobs that do come fork their own worker.
    held: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool").field("size", &self.size).field("idle", &self.idle_count()).finish()
    }
}

/// A worker checked out for one job, with its slot.
pub struct Lease {
    pub worker: WorkerProcess,
    _permit: OwnedSemaphorePermit,
}

impl WorkerPool {
    pub fn new(opts: WorkerOptions, size: usize) -> Arc<Self> {
        Arc::new(Self {
            opts,
            zygote: tokio::sync::Mutex::new(None),
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(size)),
            size,
            refilling: tokio::sync::Mutex::new(()),
            held: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// How many workers are kept forked ahead: one per slot, whether its slot is busy or not, so that a slot
    /// whose job just ended has its next worker ready while the refill for it is still forking (under load a
    /// fork waits for the CPU too).
    fn ahead(&self) -> usize {
        self.size
    }

    /// Workers forked ahead of need.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// The zygote, started (again) when there is none alive.
    async fn zygote(&self) -> Result<Arc<Zygote>, WorkerError> {
        let mut z = self.zygote.lock().await;
        if let Some(zy) = z.as_ref().filter(|zy| zy.is_alive()) {
            return Ok(zy.clone());
        }
        if z.take().is_some() {
            tracing::warn!("the zygote died: starting another");
            if let Ok(mut v) = self.idle.lock() {
                v.clear();
            }
        }
        let zy = Zygote::start(&self.opts).await?;
        tracing::info!(pid = zy.pid(), "zygote up");
        *z = Some(zy.clone());
        Ok(zy)
    }

    async fn fork(&self) -> Result<WorkerProcess, WorkerError> {
        let z = self.zygote().await?;
        match z.fork().await {
            Ok(w) => Ok(w),
            Err(e) => {
                // The zygote may have just died, before its reader saw the socket close: once more with a live one.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                if z.is_alive() {
                    return Err(e);
                }
                self.zygote().await?.fork().await
            }
        }
    }

    /// Wait for a free slot, then take a worker forked ahead or fork one.
    pub async fn acquire(&self) -> Result<Lease, WorkerError> {
        let permit = self.slots.clone().acquire_owned().await.map_err(|_| WorkerError::Exited)?;
        let worker = match self.take_ready() {
            Some(w) => w,
            None => self.fork().await?,
        };
        Ok(Lease { worker, _permit: permit })
    }

    /// A worker forked ahead that is still alive (the dead are dropped: their groups are killed on drop).
    fn take_ready(&self) -> Option<WorkerProcess> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(mut w) = idle.pop() {
            if w.is_alive() {
                return Some(w);
            }
        }
        None
    }

    /// A job ended cleanly: its worker ends with it (it exits by itself; its group is killed here), and a worker
    /// is forked for the free slot. With `node.isolation = "reuse"` a live worker is kept for the next job
    /// instead (up to one idle per slot: a worker forked ahead is let go to make room for it).
    pub fn release(self: &Arc<Self>, lease: Lease) {
        let Lease { mut worker, _permit } = lease;
        if self.opts.reuse && worker.is_alive() {
            // `node.isolation = "reuse"`: the worker serves the next job (it has ended what this one forked); it is
            // taken first (the idle list is a stack), and one forked ahead beyond one per slot is let go instead.
            let surplus = match self.idle.lock() {
                Ok(mut v) => {
                    v.push(worker);
                    if v.len() > self.ahead() {
                        Some(v.remove(0))
                    } else {
                        None
                    }
                }
                Err(_) => None,
            };
            if let Some(w) = surplus {
                tokio::spawn(w.kill());
            }
            return;
        }
        drop(_permit);
        tokio::spawn(worker.kill());
        self.spawn_refill();
    }

    /// Kill a leased worker (timeout, fencing, a failed start) and free its slot; a worker is forked for it in
    /// the background.
    pub async fn discard(self: &Arc<Self>, lease: Lease) {
        let Lease { worker, _permit } = lease;
        worker.kill().await;
        drop(_permit);
        self.spawn_refill();
    }

    /// Reap a leased worker that ended by itself (a stop-mode checkpoint, or the job killed its process) and free
    /// its slot; a worker is forked for it in the background. Returns how the process ended.
    pub async fn reap(self: &Arc<Self>, lease: Lease) -> String {
        let Lease { worker, _permit } = lease;
        let status = worker.wait().await;
        drop(_permit);
        self.spawn_refill();
        status
    }

    /// Hold refills (the node's radio load is high) or let them go again (a held refill starts now).
    pub fn hold_refills(self: &Arc<Self>, hold: bool) {
        let was = self.held.swap(hold, std::sync::atomic::Ordering::SeqCst);
        if was && !hold {
            self.spawn_refill();
        }
    }

    fn is_held(&self) -> bool {
        self.held.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Start the zygote, then fork workers until there is one ahead per slot (unless refills are held): a slot
    /// whose job just ended finds its next worker ready even when the refill for it is not done. Errors are
    /// returned (the node logs them and keeps going: a job then forks
    /// its own worker and reports the error if that fails too).
    pub async fn warm_up(&self) -> Result<(), WorkerError> {
        let _one = self.refilling.lock().await;
        let zygote = self.zygote().await?;
        // The forks are asked for together: the zygote forks them one after the other, and each child's start
        // (waiting for the CPU on a loaded node) overlaps the others'.
        let need = if self.is_held() { 0 } else { self.ahead().saturating_sub(self.idle_count()) };
        let mut forks = tokio::task::JoinSet::new();
        for _ in 0..need {
            let z = zygote.clone();
            forks.spawn(async move { z.fork().await });
        }
        let mut first_error = None;
        while let Some(r) = forks.join_next().await {
            match r {
                Ok(Ok(w)) => {
                    // Below the workers kept for reuse (the idle list is a stack); one past one per slot (a job
                    // forked its own meanwhile, or a reused worker came back) is let go.
                    let surplus = match self.idle.lock() {
                        Ok(mut v) if v.len() < self.ahead() => {
                            v.insert(0, w);
                            None
                        }
                        _ => Some(w),
                    };
                    if let Some(w) = surplus {
                        w.kill().await;
                    }
                }
                Ok(Err(e)) => first_error = first_error.or(Some(e)),
                Err(e) => first_error = first_error.or(Some(WorkerError::Zygote(e.to_string()))),
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Fork a worker for a free slot in the background.
    pub fn spawn_refill(self: &Arc<Self>) {
        let pool = self.clone();
        tokio::spawn(async move {
            if let Err(e) = pool.warm_up().await {
                tracing::warn!("cannot fork a worker: {e}");
            }
        });
    }

    /// Kill the workers forked ahead and the zygote (node shutdown).
    pub async fn shutdown(&self) {
        let idle: Vec<_> = self.idle.lock().map(|mut v| v.drain(..).collect()).unwrap_or_default();
        for w in idle {
            w.kill().await;
        }
        if let Some(z) = self.zygote.lock().await.take() {
            z.kill();
        }
    }
}
