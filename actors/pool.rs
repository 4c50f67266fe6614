//! A node's warm worker processes: a fixed number of slots, each backed by a `microlambda worker` process
//! that is reused for the next job when the last one ended cleanly, so short jobs do not pay interpreter
//! start-up.
use crate::worker::{WorkerError, WorkerOptions, WorkerProcess};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Shared by the node actor and its job actors.
pub struct WorkerPool {
    opts: WorkerOptions,
    idle: Mutex<Vec<WorkerProcess>>,
    slots: Arc<Semaphore>,
    size: usize,
    /// One refill at a time, so that several ending jobs do not start more workers than there are slots.
    refilling: tokio::sync::Mutex<()>,
    /// Refills wait while this is set: starting interpreters takes the CPU the radio needs on a busy BBU
    /// (and would slow the evacuation under way); jobs that do come start their own worker.
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

    pub fn idle_count(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Wait for a free slot, then take a warm worker or start one.
    pub async fn acquire(&self) -> Result<Lease, WorkerError> {
        let permit = self.slots.clone().acquire_owned().await.map_err(|_| WorkerError::Exited)?;
        let warm = self.idle.lock().ok().and_then(|mut v| v.pop());
        let worker = match warm {
            Some(w) => w,
            None => WorkerProcess::spawn(&self.opts).await?,
        };
        Ok(Lease { worker, _permit: permit })
    }

    /// Give a healthy worker back for the next job (frees the slot).
    pub fn release(&self, lease: Lease) {
        let Lease { worker, _permit } = lease;
        if let Ok(mut v) = self.idle.lock() {
            if v.len() < self.size {
                v.push(worker);
                return;
            }
        }
        tokio::spawn(worker.kill());
    }

    /// Kill a leased worker (timeout, fencing, a failed start) and free its slot; a new warm worker is started
    /// in the background.
    pub async fn discard(self: &Arc<Self>, lease: Lease) {
        let Lease { worker, _permit } = lease;
        worker.kill().await;
        drop(_permit);
        self.spawn_refill();
    }

    /// Reap a leased worker that ended by itself (a stop-mode checkpoint, or the job killed its process) and free
    /// its slot; a new warm worker is started in the background. Returns how the process ended.
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

    /// Start workers until every free slot has a warm one (unless refills are held). The slot of an ended job must be free before this
    /// runs ([`WorkerPool::discard`] and [`WorkerPool::reap`] see to it), or it would not be refilled. Errors
    /// are returned (the node logs them and keeps going: a job then starts its own worker and reports the
    /// error if that fails too).
    pub async fn warm_up(&self) -> Result<(), WorkerError> {
        let _one = self.refilling.lock().await;
        while !self.is_held() && self.idle_count() < self.size.min(self.slots.available_permits()) {
            let w = WorkerProcess::spawn(&self.opts).await?;
            if let Ok(mut v) = self.idle.lock() {
                v.push(w);
            }
        }
        Ok(())
    }

    /// Replace a killed or dead worker in the background.
    pub fn spawn_refill(self: &Arc<Self>) {
        let pool = self.clone();
        tokio::spawn(async move {
            if let Err(e) = pool.warm_up().await {
                tracing::warn!("cannot start a warm worker: {e}");
            }
        });
    }

    /// Kill the idle workers (node shutdown).
    pub async fn shutdown(&self) {
        let idle: Vec<_> = self.idle.lock().map(|mut v| v.drain(..).collect()).unwrap_or_default();
        for w in idle {
            w.kill().await;
        }
    }
}
