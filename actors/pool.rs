//! A node's job slots and its zygote: a fixed number of slots; every job start and every restore gets a fresh
//! worker process forked by the zygote (which has the runtime warm and the node's modules imported), and that
//! worker ends with its job. Workers are forked ahead of need (one per slot), so a job does not wait for the
//! fork.
//!
//! With `node.isolation = "reuse"` a worker that ended its job cleanly is kept for the next one (forked from the
//! same zygote, still without the key and under the same limits), which saves the fork but lets a job see what
//! the one before it left in the interpreter.
//!
//! Set zygotes: a restore needs the library packages its checkpoint names (`CheckpointBody::imports`), and a
//! child of the base zygote imports again those it lacks (0.15-1.7 s for scikit-learn, scipy, osmnx). So the
//! pool also keeps up to `node.zygote_sets` zygotes, each with one such module set imported besides
//! `node.preload`: a restore whose set one of them covers takes the child that zygote keeps forked ahead (the
//! fork of a process holding ~150 MB of libraries, and the child's start, are then out of the restore's path:
//! what a restore spent outside the worker's own restore went from 7.8 to 3.2 ms, docs/BENCHMARKS.md; a child
//! ahead shares the zygote's pages until it writes). A restore no live set zygote covers forks from
//! the base zygote as before and, once its worker says which modules the restore imported, a zygote is started
//! in the background with the set's packages and those modules imported (a package's top-level import does not
//! bring in the submodules the job used); one start at a time, and a set whose zygote did not come up cleanly
//! is not tried again for [`SET_RETRY_AFTER`]. The choice is the pure [`SetTable`]. With
//! `node.isolation = "reuse"` set zygotes are not used. Tests: `pool::tests` (the choice, LRU, bounds) and
//! tests/zygote_sets.rs (real restores); docs/ARCHITECTURE.md lists the invariants.
//!
//! Module zygotes (`node.module_zygotes`): a session restores its module at every request, and a child of a
//! base or set zygote runs the module's top level again each time (loading a street graph, training a model:
//! 0.3-3 s for the paper's workloads). So the pool also keeps up to `node.module_zygotes` zygotes that have,
//! besides a set's libraries, executed one job module, keyed by [`module_key`] (the module's name, file name
//! and source); each keeps one child forked ahead, so a restore of that module takes a process that only has
//! to unpickle. Learned at a job's start when its top level was slow ([`WorkerPool::started`]: started here and
//! told to the other nodes, and a restore that comes meanwhile waits for it), and like set zygotes: a restore
//! no module zygote serves forks as before, and once its worker says what it imported, a module zygote is
//! started in the background (and then no set zygote for that restore: the module zygote covers its set). Its children load nothing: `load_module` in the
//! worker takes the module as the zygote left it, for that identical source only. The zygote runs job code,
//! so it is confined as a worker (`node.limits`, the job user, the niceness: `src/py/zygote.rs`) and a module
//! whose top level raises, hangs (the start timeout), exits, or leaves a thread, an open file or a process is
//! not kept (remembered as a failure for [`SET_RETRY_AFTER`]): its restores go on the ordinary way. Starts never
//! fork from a module zygote: a top level's own values (a `uuid4()`, a timestamp, a draw of the RNG) would be
//! the same in every job forked from it, where each start runs it afresh; a restore takes those values from
//! the checkpoint (docs/ARCHITECTURE.md).
//!
//! Taught zygotes: what a child of a set or module zygote imported again at its restore (a job's lazy imports,
//! which the checkpoint lists: pandas' reshape module, PIL's image plugins) is sent to that zygote to import
//! ([`WorkerPool::teach`]), so that its later children have it from the fork and do not index it at every
//! capture; an import that leaves a thread, a process or a file behind retires the zygote.
//!
//! Memory is bounded: at most `node.zygote_sets` set zygotes are in the table, the least recently used is
//! dropped from it when another comes; a dropped zygote is killed at once, or when the last lease of a worker
//! it forked ends (killing it would kill that job: its children die with it), so at most `slots` more live on
//! for a while. Remembered failures are bounded too ([`MAX_FAILED_SETS`]).
//!
//! Guarantees (`fork`, the default): a worker serves one lease; nothing of a job reaches another job's process; a worker's process
//! group is killed when its lease ends, whichever way (release, discard, reap). The zygote is started on first
//! use and again if it died; a set zygote that died is dropped from the table and started again when a
//! restore needs its set.
//!
//! Size: one `WorkerPool` owns the slots and the three kinds of zygote (base, set, module), because a restore
//! chooses among all of them (module, then set, then base zygote) and all share the slots and the refills;
//! the pure choice ([`SetTable`]) and its tests sit at the end.
use crate::checkpoint::Envelope;
use crate::wire::WarmHint;
use crate::worker::{
    open_for_restore, ModuleSpec, OpenedCheckpoint, WorkerError, WorkerOptions, WorkerProcess, Zygote,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a set whose zygote failed to start (or came up without some of its modules, or with threads) is
/// not tried again.
pub const SET_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How long after the job of a restore that took the child a set or module zygote kept forked ahead has left
/// its worker the zygote forks the next one (its commit and reply go first). Forked at once at the take, the
/// child's start and warm-up (~10 ms of CPU) ran beside the restore it was taken for, its request and its
/// checkpoint, on the same cores: a warm session's request to reply 7.0-7.4 ms p50 against 5.4-5.6 ms with
/// the fork 20 ms later (docs/BENCHMARKS.md, "The next child forked after the request"); and 20 ms after the
/// take fell in the middle of a ride session's request (~20-30 ms), beside its checkpoint.
pub const REFILL_AFTER: Duration = Duration::from_millis(5);
/// A job that holds the child it took longer than this (a long job, not a session's request) does not delay
/// the next child further: it is forked this long after the take.
pub const REFILL_AT_LATEST: Duration = Duration::from_millis(250);
/// Failed sets remembered at most (the oldest forgotten first).
pub const MAX_FAILED_SETS: usize = 64;
/// A checkpoint naming more packages than this gets no zygote of its own (its names are the job's doing).
const MAX_SET_LEN: usize = 256;
/// A set zygote imports its set's packages and the modules a restore imported up to this many bytes of names
/// in all, in import order (the zygote's first message lists them and must fit one 64 KiB datagram; a
/// scikit-learn job's restore through the base zygote imports ~1,500 modules, 37 KB of names).
const MAX_EXTRA_BYTES: usize = 48 * 1024;
/// A zygote builds the code index of the modules a restore looked code up in up to this many bytes of names
/// (a scikit-learn job's restore: ~30 modules).
const MAX_INDEX_BYTES: usize = 8 * 1024;
/// A set or module zygote is taught at most this many bytes of module names over its life, besides those it
/// started with (see [`WorkerPool::teach`]); one `Import` fits one datagram.
const MAX_TAUGHT_BYTES: usize = 48 * 1024;

/// The zygotes a pool keeps besides its base one.
#[derive(Debug, Clone, Copy)]
pub struct Zygotes {
    /// Set zygotes at most (`node.zygote_sets`).
    pub sets: usize,
    /// Module zygotes at most (`node.module_zygotes`).
    pub modules: usize,
    /// How long a module zygote may take to come up (`node.module_zygote_start_ms`).
    pub module_start: Duration,
    /// A job start whose module's top level took at least this long starts a zygote of its module
    /// (`node.module_zygote_min_load_ms`).
    pub module_min_load: Duration,
}

impl Default for Zygotes {
    /// None besides the base zygote.
    fn default() -> Self {
        Self { sets: 0, modules: 0, module_start: Duration::from_secs(30), module_min_load: Duration::from_millis(100) }
    }
}

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
    /// Set by [`Pool::shutdown`]: no more forks (a refill racing the node's stop is not an error).
    closed: std::sync::atomic::AtomicBool,
    /// Opens checkpoints for restores (the same key as the workers' handles).
    envelope: Arc<Envelope>,
    /// The set zygotes (`node.zygote_sets`).
    sets: Mutex<SetTable<Arc<WarmZygote>>>,
    /// Restores forked from a set zygote since the node started (in the load report).
    set_restores: AtomicU64,
    /// The module zygotes (`node.module_zygotes`), keyed by a one-name set: [`module_key`].
    modules: Mutex<SetTable<Arc<WarmZygote>>>,
    /// Restores forked from a module zygote since the node started (in the load report).
    module_restores: AtomicU64,
    /// Module zygotes that failed (in the load report).
    module_failures: AtomicU64,
    /// Restores from a set or module zygote that took the child it had forked ahead (in the load report).
    ahead_restores: AtomicU64,
    module_start: Duration,
    module_min_load: Duration,
    /// The module zygote starting for a module whose top level took a known time (a job start's, a peer's), and
    /// until when a restore of that module waits for it rather than running the top level itself.
    module_eta: Mutex<Option<(String, Instant)>>,
    /// Told when a module zygote is up or failed to come up (restores waiting for one look again).
    module_up: tokio::sync::Notify,
    /// Where the module sets this pool learns go, for the other nodes ([`WorkerPool::tell_learned`]).
    learned: Mutex<Option<tokio::sync::mpsc::UnboundedSender<WarmHint>>>,
    /// The sets already told (at most [`MAX_FAILED_SETS`], the oldest forgotten first).
    told: Mutex<Vec<Vec<String>>>,
    /// Set zygotes started for another node's set ([`WorkerPool::prewarm`]).
    peer_sets: AtomicU64,
    /// Module zygotes started for another node's module ([`WorkerPool::prewarm`]).
    peer_modules: AtomicU64,
    /// Modules whose import made a zygote unfit to fork (a thread, a process or a file left behind): never
    /// taught again (at most [`MAX_REFUSED_MODULES`], the oldest forgotten first).
    refused: Mutex<Vec<String>>,
    /// Modules taught to set and module zygotes since the node started (imported there).
    taught: AtomicU64,
}

/// Modules remembered as refused at most.
const MAX_REFUSED_MODULES: usize = 1024;

/// A set or module zygote and the one child it keeps forked ahead for the next restore it serves (set zygotes
/// hold a job's libraries, ~150 MB: forking one on demand, and the child's start, were half of such a restore).
/// The child shares the zygote's pages until it writes to them; it dies with the entry (its drop kills it).
struct WarmZygote {
    zygote: Arc<Zygote>,
    ahead: Mutex<Option<WorkerProcess>>,
    taught: Mutex<Taught>,
}

/// What a warm zygote was taught ([`WorkerPool::teach`]).
#[derive(Default)]
struct Taught {
    /// Names sent to it (imported there, or that did not import).
    names: std::collections::HashSet<String>,
    /// Their bytes, against [`MAX_TAUGHT_BYTES`].
    bytes: usize,
    /// An `Import` is under way (one at a time).
    busy: bool,
}

impl WarmZygote {
    fn new(zygote: Arc<Zygote>) -> Arc<Self> {
        Arc::new(Self { zygote, ahead: Mutex::new(None), taught: Mutex::new(Taught::default()) })
    }

    /// The child forked ahead if it is alive (true), else a fork now (false).
    async fn take(&self) -> Result<(WorkerProcess, bool), WorkerError> {
        let ready = self.ahead.lock().ok().and_then(|mut a| a.take());
        if let Some(mut w) = ready {
            if w.is_alive() {
                return Ok((w, true));
            }
        }
        Ok((self.zygote.fork_now().await?, false))
    }

    /// Fork the next child ahead, in the background, unless one is there: now, or with `after_end`, once that
    /// lease has ended (its sender dropped) and [`REFILL_AFTER`] more, or [`REFILL_AT_LATEST`] from now.
    fn refill(self: &Arc<Self>, after_end: Option<tokio::sync::oneshot::Receiver<()>>) {
        let mz = self.clone();
        tokio::spawn(async move {
            if let Some(ended) = after_end {
                let latest = tokio::time::Instant::now() + REFILL_AT_LATEST;
                if tokio::time::timeout_at(latest, ended).await.is_ok() {
                    tokio::time::sleep_until(latest.min(tokio::time::Instant::now() + REFILL_AFTER)).await;
                }
            }
            if mz.ahead.lock().map(|a| a.is_some()).unwrap_or(true) {
                return;
            }
            match mz.zygote.fork().await {
                Ok(w) => {
                    let surplus = match mz.ahead.lock() {
                        Ok(mut a) if a.is_none() => {
                            *a = Some(w);
                            None
                        }
                        _ => Some(w),
                    };
                    if let Some(w) = surplus {
                        w.kill().await;
                    }
                }
                Err(e) => tracing::warn!(zygote = mz.zygote.pid(), "a zygote did not fork ahead: {e}"),
            }
        });
    }
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
    /// The set or module zygote the worker was forked from: a zygote dropped from the table lives until its
    /// last lease ends (its children die with it); what the worker imports again, it is taught.
    warm: Option<Arc<WarmZygote>>,
    /// A restore's module set that no set zygote covered (see [`WorkerPool::restored`]).
    set: Option<Vec<String>>,
    /// A restore no module zygote served: its [`module_key`], module and set (see [`WorkerPool::restored`]).
    learn: Option<(String, ModuleSpec, Vec<String>)>,
    /// Dropped with the lease: the zygote that forked the worker ahead forks the next one then.
    _ended: Option<tokio::sync::oneshot::Sender<()>>,
}

impl WorkerPool {
    /// `zygotes`: the set and module zygotes to keep besides the base one (none with `node.isolation = "reuse"`).
    pub fn new(opts: WorkerOptions, size: usize, zygotes: Zygotes) -> Arc<Self> {
        Arc::new(Self {
            envelope: Arc::new(opts.envelope()),
            sets: Mutex::new(SetTable::new(if opts.reuse { 0 } else { zygotes.sets })),
            set_restores: AtomicU64::new(0),
            modules: Mutex::new(SetTable::new(if opts.reuse { 0 } else { zygotes.modules })),
            module_restores: AtomicU64::new(0),
            module_failures: AtomicU64::new(0),
            ahead_restores: AtomicU64::new(0),
            module_start: zygotes.module_start,
            module_min_load: zygotes.module_min_load,
            module_eta: Mutex::new(None),
            module_up: tokio::sync::Notify::new(),
            peer_modules: AtomicU64::new(0),
            refused: Mutex::new(Vec::new()),
            taught: AtomicU64::new(0),
            learned: Mutex::new(None),
            told: Mutex::new(Vec::new()),
            peer_sets: AtomicU64::new(0),
            opts,
            zygote: tokio::sync::Mutex::new(None),
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(size)),
            size,
            refilling: tokio::sync::Mutex::new(()),
            held: std::sync::atomic::AtomicBool::new(false),
            closed: std::sync::atomic::AtomicBool::new(false),
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

    /// Fork a worker for a job that waits for it.
    async fn fork(&self) -> Result<WorkerProcess, WorkerError> {
        let z = self.zygote().await?;
        match z.fork_now().await {
            Ok(w) => Ok(w),
            Err(e) => {
                // The zygote may have just died, before its reader saw the socket close: once more with a live one.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                if z.is_alive() {
                    return Err(e);
                }
                self.zygote().await?.fork_now().await
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
        Ok(Lease { worker, _permit: permit, warm: None, set: None, learn: None, _ended: None })
    }

    /// For a restore: wait for a free slot, open and verify the checkpoint, then take a worker that has the
    /// libraries it names imported when a set zygote covers them (else as [`WorkerPool::acquire`]; once the
    /// worker says what its restore imported, [`WorkerPool::restored`] starts a zygote for the set). The checkpoint is opened after the slot is free, so a
    /// restore waiting for one holds only its bytes. A checkpoint that does not open gets a worker all the
    /// same: [`WorkerProcess::restore`] answers its error.
    pub async fn acquire_restore(
        self: &Arc<Self>,
        module: &ModuleSpec,
        checkpoint: Vec<u8>,
    ) -> Result<(Lease, Result<OpenedCheckpoint, String>), WorkerError> {
        let permit = self.slots.clone().acquire_owned().await.map_err(|_| WorkerError::Exited)?;
        let (env, m) = (self.envelope.clone(), module.clone());
        let opened = tokio::task::spawn_blocking(move || open_for_restore(&env, &m, &checkpoint))
            .await
            .map_err(|e| WorkerError::Zygote(format!("opening a checkpoint: {e}")))?;
        let base = self.zygote().await?;
        let set = opened.as_ref().ok().and_then(|o| set_of(&o.imports, base.libraries()));
        let mut learn = None;
        if opened.is_ok() {
            let key = module_key(module);
            if let Some((worker, z, _ended)) =
                self.take_warm(self.module_zygote_for_soon(&key).await, &self.module_restores, "module").await
            {
                let lease = Lease { worker, _permit: permit, warm: Some(z), set: None, learn: None, _ended };
                return Ok((lease, opened));
            }
            learn = Some((key, module.clone(), set.clone().unwrap_or_default()));
        }
        let z = set.as_ref().and_then(|s| self.set_zygote_for(s));
        if let Some((worker, z, _ended)) = self.take_warm(z, &self.set_restores, "set").await {
            return Ok((Lease { worker, _permit: permit, warm: Some(z), set: None, learn, _ended }, opened));
        }
        let worker = match self.take_ready() {
            Some(w) => w,
            None => self.fork().await?,
        };
        Ok((Lease { worker, _permit: permit, warm: None, set, learn, _ended: None }, opened))
    }

    /// The child `wz` keeps forked ahead (or one forked now), counted in `served`, and the next one forked ahead
    /// in the background once the lease ends (the sender returned goes in it: see [`WarmZygote::refill`]) unless
    /// refills are held; none when there is no such zygote or it cannot fork (the restore then forks from a
    /// zygote below it).
    async fn take_warm(
        &self,
        wz: Option<Arc<WarmZygote>>,
        served: &AtomicU64,
        kind: &str,
    ) -> Option<(WorkerProcess, Arc<WarmZygote>, Option<tokio::sync::oneshot::Sender<()>>)> {
        let wz = wz?;
        match wz.take().await {
            Ok((worker, ahead)) => {
                served.fetch_add(1, Ordering::Relaxed);
                self.ahead_restores.fetch_add(u64::from(ahead), Ordering::Relaxed);
                tracing::debug!(pid = worker.pid(), zygote = wz.zygote.pid(), "restore forked from a {kind} zygote");
                let mut ended = None;
                if !self.is_held() {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    wz.refill(Some(rx));
                    ended = Some(tx);
                }
                Some((worker, wz, ended))
            }
            Err(e) => {
                tracing::warn!(zygote = wz.zygote.pid(), "a {kind} zygote did not fork, using one below it: {e}");
                None
            }
        }
    }

    /// A child of `wz` imported `imported` again (its restore, from the checkpoint's list of what the job
    /// imported while it ran: pandas' lazily imported reshape module, PIL's image plugins): the zygote imports
    /// them in the background (`ToZygote::Import`), so that its next children neither import them nor index
    /// them at their capture, and the child it had forked ahead without them is forked again. Only names it was
    /// not taught before ([`to_teach`]), one import at a time (a batch that comes meanwhile is left: the next
    /// child names it again). A zygote an import made unfit to fork is retired (its set or module is then
    /// started afresh by a later restore) and the batch never taught again. Not while refills are held.
    fn teach(self: &Arc<Self>, wz: &Arc<WarmZygote>, imported: &[String]) {
        if imported.is_empty() || self.is_held() || self.is_closed() {
            return;
        }
        let names = {
            let Ok(refused) = self.refused.lock() else { return };
            let Ok(mut t) = wz.taught.lock() else { return };
            if t.busy {
                return;
            }
            let names = to_teach(imported, &t.names, t.bytes, &refused);
            if names.is_empty() {
                return;
            }
            t.busy = true;
            t.bytes += names.iter().map(|m| m.len() + 2).sum::<usize>();
            t.names.extend(names.iter().cloned());
            names
        };
        let (pool, wz) = (self.clone(), wz.clone());
        tokio::spawn(async move {
            let t0 = Instant::now();
            let outcome = wz.zygote.import(names.clone()).await;
            if let Ok(mut t) = wz.taught.lock() {
                t.busy = false;
            }
            match outcome {
                Ok(done) if done.unsafe_to_fork.is_some() => {
                    tracing::warn!(zygote = wz.zygote.pid(), why = ?done.unsafe_to_fork, ?names, "an import made a zygote unfit to fork: retired, and these modules not taught again");
                    if let Ok(mut r) = pool.refused.lock() {
                        r.extend(names);
                        let over = r.len().saturating_sub(MAX_REFUSED_MODULES);
                        r.drain(..over);
                    }
                }
                Ok(done) => {
                    let ms = t0.elapsed().as_secs_f64() * 1e3;
                    tracing::debug!(zygote = wz.zygote.pid(), imported = done.imported, failed = ?done.failed, ms, "a zygote was taught modules");
                    pool.taught.fetch_add(u64::from(done.imported), Ordering::Relaxed);
                    if done.imported > 0 {
                        // The child forked ahead before the import lacks them: fork it again.
                        let stale = wz.ahead.lock().ok().and_then(|mut a| a.take());
                        if let Some(w) = stale {
                            w.kill().await;
                            if !pool.is_held() {
                                wz.refill(None);
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(zygote = wz.zygote.pid(), "teaching a zygote modules failed: {e}"),
            }
        });
    }

    /// Modules taught to set and module zygotes (imported there) since the node started.
    pub fn modules_taught(&self) -> u64 {
        self.taught.load(Ordering::Relaxed)
    }

    /// The worker of `lease` restored its job and had to import `imported` for it: when the restore's module
    /// set has no zygote and the table wants one, one is started in the background with the set's packages
    /// and these modules imported (a package's own import does not bring in the submodules the job used).
    ///
    /// A restore no module zygote served starts one for its module first (it covers the set too); a set zygote
    /// is started only when the module gets none (the table is off, busy starting another, or the module failed
    /// in a zygote recently), not when the module's zygote came up while this restore was forked below it.
    ///
    /// A set no zygote of this node covered is also told to the other nodes ([`WorkerPool::tell_learned`]).
    ///
    /// A restore forked from a set or module zygote that still imported modules teaches them to that zygote
    /// ([`WorkerPool::teach`]).
    pub fn restored(self: &Arc<Self>, lease: &Lease, imported: &[String], indexed: &[String]) {
        if let Some(wz) = &lease.warm {
            self.teach(wz, imported);
        }
        if let Some(set) = &lease.set {
            self.tell(set, imported, indexed);
        }
        if let Some((key, module, set)) = &lease.learn {
            let (extra, index) = (extra_modules(set, imported), bounded_names(indexed));
            let start = ModuleStart { key: key.clone(), module: module.clone(), set: set.clone(), extra, index };
            if self.start_module(start, None, false) {
                tracing::info!(module = %module.module_name, ?set, "starting a module zygote");
                return;
            }
            // Its module zygote is starting, or came up while this restore forked below it: that zygote serves
            // the module's next restores, and covers its set.
            if let Ok(t) = self.modules.lock() {
                let k = std::slice::from_ref(key);
                if t.starting.as_deref() == Some(k) || t.sets().contains(&k) {
                    return;
                }
            }
        }
        let Some(set) = &lease.set else { return };
        let Ok(mut t) = self.sets.lock() else { return };
        if t.should_start(set, Instant::now()) {
            t.starting = Some(set.clone());
            let (pool, set) = (self.clone(), set.clone());
            let (extra, index) = (extra_modules(&set, imported), bounded_names(indexed));
            tracing::info!(?set, modules = extra.len(), "starting a zygote for a module set");
            tokio::spawn(async move { pool.start_set_zygote(set, extra, index).await });
        }
    }

    /// A job of `module` started here and its module's top level took `load`: when that is at least
    /// `node.module_zygote_min_load_ms` and no zygote of the module is up or starting, one is started in the
    /// background (its own run of the top level imports the module's libraries) and the other nodes are told
    /// the module, so that the job's first restore here or on another node (a slice end, an evacuation) forks
    /// from it instead of running the top level again. A restore that comes while it starts waits for it, up to
    /// twice `load` and a second after its start (it is then sooner than a top level of its own).
    ///
    /// `imported`: what the top level imported, in order; the zygote imports them before it runs the module
    /// (as a set zygote does), so that what a library leaves open at its import (a database file) is not taken
    /// for the job's top level leaving it.
    ///
    /// Not while refills are held: the radio needs the CPU (the node is shedding its jobs, not taking restores).
    pub fn started(self: &Arc<Self>, module: &ModuleSpec, load: Duration, imported: &[String]) {
        if load < self.module_min_load || self.is_closed() || self.is_held() {
            return;
        }
        let start = ModuleStart::of(module, extra_modules(&[], imported));
        let (key, extra) = (start.key.clone(), start.extra.clone());
        if self.start_module(start, Some(load), false) {
            tracing::info!(module = %module.module_name, load_ms = load.as_millis() as u64, "starting a module zygote for a started job");
            self.tell_module(&key, module, load, extra);
        }
    }

    /// Start `start`'s module zygote when the module table wants one (`room`: only without dropping another);
    /// true when one is starting. `load`: the module's top-level time when known (a job's start, a peer's),
    /// for which restores of the module wait for this zygote rather than run the top level themselves.
    fn start_module(self: &Arc<Self>, start: ModuleStart, load: Option<Duration>, room: bool) -> bool {
        let Ok(mut t) = self.modules.lock() else { return false };
        t.forget_dead(|mz| mz.zygote.is_alive());
        let k = [start.key.clone()];
        if (room && !t.has_room()) || !t.should_start(&k, Instant::now()) {
            return false;
        }
        t.starting = Some(k.to_vec());
        // A restore waits for it until twice the top level's time and a second (a zygote's own start, a busy
        // CPU) after now: a restore of its own would run the same top level on the same CPU.
        let eta = load.map(|load| Instant::now() + load * 2 + Duration::from_secs(1));
        tokio::spawn(self.clone().start_module_zygote(start, eta));
        true
    }

    /// Tell the other nodes a module this node started a zygote for at a job's start (once per module).
    fn tell_module(&self, key: &str, module: &ModuleSpec, load: Duration, modules: Vec<String>) {
        let Ok(learned) = self.learned.lock() else { return };
        let Some(tx) = learned.as_ref() else { return };
        if !self.first_telling(std::slice::from_ref(&key.to_string())) {
            return;
        }
        let hint =
            WarmHint { module: Some(module.clone()), load_ms: load.as_millis() as u64, modules, ..WarmHint::default() };
        let _ = tx.send(hint);
    }

    /// Send each module set this pool learns from a restore that no zygote of its own served (once per set) to
    /// `tx`: the node tells the other nodes (`node.warm.<node>`), whose pools [`WorkerPool::prewarm`] it.
    pub fn tell_learned(&self, tx: tokio::sync::mpsc::UnboundedSender<WarmHint>) {
        if let Ok(mut l) = self.learned.lock() {
            *l = Some(tx);
        }
    }

    fn tell(&self, set: &[String], imported: &[String], indexed: &[String]) {
        let Ok(learned) = self.learned.lock() else { return };
        let Some(tx) = learned.as_ref() else { return };
        if !self.first_telling(set) {
            return;
        }
        let hint = WarmHint {
            set: set.to_vec(),
            modules: extra_modules(set, imported),
            index: bounded_names(indexed),
            ..WarmHint::default()
        };
        let _ = tx.send(hint);
    }

    /// Whether `set` is told for the first time (it is remembered as told).
    fn first_telling(&self, set: &[String]) -> bool {
        let Ok(mut told) = self.told.lock() else { return false };
        if told.iter().any(|s| s == set) {
            return false;
        }
        told.push(set.to_vec());
        let over = told.len().saturating_sub(MAX_FAILED_SETS);
        told.drain(..over);
        true
    }

    /// Another node learned `hint`'s module set: start a zygote for it (its packages and modules imported, its
    /// code index built) when the set table has room without dropping one, none covers the set or is starting,
    /// and refills are not
    /// held (the radio needs the CPU). The names come from another process: only plain names are imported, within
    /// the same bounds as a set learned here. True when a zygote is starting.
    pub fn prewarm(self: &Arc<Self>, hint: &WarmHint) -> bool {
        if self.is_held() || self.is_closed() {
            return false;
        }
        if let Some(module) = &hint.module {
            // A module another node started a job of: its zygote here, when the table has room for it.
            let start = ModuleStart::of(module, extra_modules(&[], &hint.modules));
            self.first_telling(std::slice::from_ref(&start.key));
            let load = Duration::from_millis(hint.load_ms.min(self.module_start.as_millis() as u64));
            if !self.start_module(start, Some(load), true) {
                return false;
            }
            self.peer_modules.fetch_add(1, Ordering::Relaxed);
            tracing::info!(module = %module.module_name, "starting a module zygote for a module another node started");
            return true;
        }
        let Some(set) = set_of(&hint.set, &[]) else { return false };
        let Ok(mut t) = self.sets.lock() else { return false };
        t.forget_dead(|wz| wz.zygote.is_alive());
        if !t.has_room() || !t.should_start(&set, Instant::now()) {
            return false;
        }
        t.starting = Some(set.clone());
        // A set taken from another node is not told back.
        self.first_telling(&set);
        self.peer_sets.fetch_add(1, Ordering::Relaxed);
        let (extra, index) = (extra_modules(&set, &hint.modules), bounded_names(&hint.index));
        tracing::info!(?set, modules = extra.len(), "starting a zygote for a module set another node learned");
        tokio::spawn(self.clone().start_set_zygote(set, extra, index));
        true
    }

    /// Set zygotes started for another node's module set since the node started.
    pub fn set_zygotes_from_peers(&self) -> u64 {
        self.peer_sets.load(Ordering::Relaxed)
    }

    /// Module zygotes started for another node's module since the node started.
    pub fn module_zygotes_from_peers(&self) -> u64 {
        self.peer_modules.load(Ordering::Relaxed)
    }

    /// Restores forked from a module zygote since the node started.
    pub fn module_zygote_restores(&self) -> u64 {
        self.module_restores.load(Ordering::Relaxed)
    }

    /// Module zygotes that did not come up, or whose module could not be kept, since the node started.
    pub fn module_zygote_failures(&self) -> u64 {
        self.module_failures.load(Ordering::Relaxed)
    }

    /// Module zygotes in the table (live or not yet seen dead).
    pub fn module_zygotes(&self) -> usize {
        self.modules.lock().map(|t| t.live.len()).unwrap_or(0)
    }

    /// The live module zygote for `key`, or none.
    fn module_zygote_for(&self, key: &str) -> Option<Arc<WarmZygote>> {
        let mut t = self.modules.lock().ok()?;
        t.forget_dead(|mz| mz.zygote.is_alive());
        t.pick(&[key.to_string()])
    }

    /// The live module zygote for `key`; or, while one for it is starting with a known time (see
    /// [`WorkerPool::started`]), that one once it is up, waited for until its time is over; or none.
    async fn module_zygote_for_soon(&self, key: &str) -> Option<Arc<WarmZygote>> {
        loop {
            let up = self.module_up.notified();
            tokio::pin!(up);
            up.as_mut().enable();
            if let Some(z) = self.module_zygote_for(key) {
                return Some(z);
            }
            let until = match self.module_eta.lock().ok()?.as_ref() {
                Some((k, until)) if k == key && *until > Instant::now() => *until,
                _ => return None,
            };
            tracing::debug!(
                left_ms = (until - Instant::now()).as_millis() as u64,
                "a restore waits for its module zygote"
            );
            if tokio::time::timeout_at(until.into(), up).await.is_err() {
                return None;
            }
        }
    }

    /// Start a zygote with `node.preload`, the set and its extra modules imported that then executes the module
    /// (confined as a worker), put it in the table and fork its first child ahead. One whose module could not be
    /// kept (see the module doc), or that is not single-threaded or lacks one of the set's packages, is killed
    /// and the key not tried again for a while. `eta`: until when restores of the module wait for it.
    async fn start_module_zygote(self: Arc<Self>, start: ModuleStart, eta: Option<Instant>) {
        let ModuleStart { key, module, set, extra, index } = start;
        if let (Some(until), Ok(mut e)) = (eta, self.module_eta.lock()) {
            *e = Some((key.clone(), until));
        }
        let mut opts = self.opts.clone();
        opts.preload.extend(set.iter().cloned());
        opts.preload.extend(extra);
        opts.index = index;
        opts.restores = true;
        opts.module = Some(module.clone());
        opts.start_timeout = self.module_start;
        let t0 = Instant::now();
        let outcome = start_checked(&opts, &set).await.map(WarmZygote::new);
        let dropped = {
            let Ok(mut t) = self.modules.lock() else { return };
            t.starting = None;
            match outcome {
                Ok(mz) => {
                    let (pid, ms) = (mz.zygote.pid(), t0.elapsed().as_millis() as u64);
                    tracing::info!(pid, module = %module.module_name, ms, "module zygote up");
                    mz.refill(None);
                    t.add(vec![key.clone()], mz)
                }
                Err(e) => {
                    tracing::warn!(module = %module.module_name, "no zygote for this module (not tried again for a while): {e}");
                    t.failed(vec![key.clone()], Instant::now());
                    self.module_failures.fetch_add(1, Ordering::Relaxed);
                    Vec::new()
                }
            }
        };
        if let Ok(mut e) = self.module_eta.lock() {
            if e.as_ref().is_some_and(|(k, _)| *k == key) {
                *e = None;
            }
        }
        self.module_up.notify_waiters();
        drop(dropped);
    }

    /// Restores from a set or module zygote, since the node started, that took a child forked ahead (not forked
    /// on demand: the refill after the last one had not finished, or refills were held).
    pub fn restores_forked_ahead(&self) -> u64 {
        self.ahead_restores.load(Ordering::Relaxed)
    }

    /// Restores forked from a set zygote since the node started.
    pub fn set_zygote_restores(&self) -> u64 {
        self.set_restores.load(Ordering::Relaxed)
    }

    /// Set zygotes in the table (live or not yet seen dead).
    pub fn set_zygotes(&self) -> usize {
        self.sets.lock().map(|t| t.live.len()).unwrap_or(0)
    }

    /// A live set zygote that covers `set` (what of a checkpoint's packages the base zygote lacks), or none.
    fn set_zygote_for(&self, set: &[String]) -> Option<Arc<WarmZygote>> {
        let mut t = self.sets.lock().ok()?;
        t.forget_dead(|wz| wz.zygote.is_alive());
        t.pick(set)
    }

    /// Start a zygote with `node.preload`, `set` and `extra` (modules a restore of the set imported) imported and
    /// put it in the table. One that comes up without one of the set's packages, or with threads (forks would
    /// not be safe), is killed and its set not tried again for a while; a module of `extra` that does not
    /// import in it is left out (some import only after another, or only where a job ran before).
    async fn start_set_zygote(self: Arc<Self>, set: Vec<String>, extra: Vec<String>, index: Vec<String>) {
        let mut opts = self.opts.clone();
        opts.preload.extend(set.iter().cloned());
        opts.preload.extend(extra);
        opts.index = index;
        opts.restores = true;
        let t0 = Instant::now();
        let outcome = start_checked(&opts, &set).await.map(WarmZygote::new);
        let dropped = {
            let Ok(mut t) = self.sets.lock() else { return };
            t.starting = None;
            match outcome {
                Ok(wz) => {
                    let (pid, ms) = (wz.zygote.pid(), t0.elapsed().as_millis() as u64);
                    tracing::info!(pid, ?set, ms, "set zygote up");
                    wz.refill(None);
                    t.add(set, wz)
                }
                Err(e) => {
                    tracing::warn!(?set, "no zygote for this module set (not tried again for a while): {e}");
                    t.failed(set, Instant::now());
                    Vec::new()
                }
            }
        };
        // A dropped zygote dies when its last Arc goes: here, or when the leases of its workers end.
        drop(dropped);
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
        let Lease { mut worker, _permit, warm, .. } = lease;
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
        tokio::spawn(async move {
            worker.kill().await;
            drop(warm);
        });
        self.spawn_refill();
    }

    /// Kill a leased worker (timeout, fencing, a failed start) and free its slot; a worker is forked for it in
    /// the background.
    pub async fn discard(self: &Arc<Self>, lease: Lease) {
        let Lease { worker, _permit, warm, .. } = lease;
        worker.kill().await;
        drop(warm);
        drop(_permit);
        self.spawn_refill();
    }

    /// Reap a leased worker that ended by itself (a stop-mode checkpoint, or the job killed its process) and free
    /// its slot; a worker is forked for it in the background. Returns how the process ended.
    pub async fn reap(self: &Arc<Self>, lease: Lease) -> String {
        let Lease { worker, _permit, warm, .. } = lease;
        let status = worker.wait().await;
        drop(warm);
        drop(_permit);
        self.spawn_refill();
        status
    }

    /// Hold refills (the node's radio load is high) or let them go again (a held refill starts now).
    pub fn hold_refills(self: &Arc<Self>, hold: bool) {
        let was = self.held.swap(hold, std::sync::atomic::Ordering::SeqCst);
        if was && !hold {
            self.spawn_refill();
            for table in [&self.sets, &self.modules] {
                let warm: Vec<_> =
                    table.lock().map(|t| t.live.iter().map(|(_, z)| z.clone()).collect()).unwrap_or_default();
                warm.iter().for_each(|z| z.refill(None));
            }
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
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
        if self.is_closed() {
            return Ok(());
        }
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
                Ok(Ok(w)) if self.is_closed() => w.kill().await,
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
            match pool.warm_up().await {
                Err(e) if pool.is_closed() => tracing::debug!("a refill ended by the node's stop: {e}"),
                Err(e) => tracing::warn!("cannot fork a worker: {e}"),
                Ok(()) => {}
            }
        });
    }

    /// Kill the workers forked ahead and the zygote (node shutdown).
    pub async fn shutdown(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let idle: Vec<_> = self.idle.lock().map(|mut v| v.drain(..).collect()).unwrap_or_default();
        for w in idle {
            w.kill().await;
        }
        if let Some(z) = self.zygote.lock().await.take() {
            z.kill();
        }
        for table in [&self.sets, &self.modules] {
            let warm: Vec<_> = table.lock().map(|mut t| t.live.drain(..).map(|(_, z)| z).collect()).unwrap_or_default();
            for wz in warm {
                let ahead = wz.ahead.lock().ok().and_then(|mut a| a.take());
                if let Some(w) = ahead {
                    w.kill().await;
                }
                wz.zygote.kill();
            }
        }
    }
}

/// The module set a restore needs a zygote for: the checkpoint's packages the base zygote lacks (`base`: the
/// packages it has, `node.preload`'s and the runtime's own; sorted, no duplicates). None when the base zygote has them all, or when the names are not all plain identifiers or are
/// too many (they come from what the job imported: a zygote imports only names a real package can have).
pub fn set_of(imports: &[String], base: &[String]) -> Option<Vec<String>> {
    let mut set: Vec<String> = imports.iter().filter(|m| !base.contains(m)).cloned().collect();
    set.sort();
    set.dedup();
    let plain = |m: &String| m.len() <= 128 && plain_name(m);
    (!set.is_empty() && set.len() <= MAX_SET_LEN && set.iter().all(plain)).then_some(set)
}

/// Start a set or module zygote: one that comes up without one of `set`'s packages, or with more than one
/// thread (forks would not be safe), is killed (dropped) and its error returned.
async fn start_checked(opts: &WorkerOptions, set: &[String]) -> Result<Arc<Zygote>, String> {
    match Zygote::start(opts).await {
        Ok(z) if z.failed_imports().iter().any(|m| set.contains(m)) => {
            Err(format!("{:?} did not import", z.failed_imports()))
        }
        Ok(z) if z.threads() != 1 => Err(format!("{} threads after its imports", z.threads())),
        Ok(z) => Ok(z),
        Err(e) => Err(e.to_string()),
    }
}

/// What a module zygote starts with: its key, the module, the library set and the modules to import first.
struct ModuleStart {
    key: String,
    module: ModuleSpec,
    set: Vec<String>,
    extra: Vec<String>,
    index: Vec<String>,
}

impl ModuleStart {
    /// A zygote of `module` alone (no library set, no code index) importing `extra` first.
    fn of(module: &ModuleSpec, extra: Vec<String>) -> Self {
        ModuleStart { key: module_key(module), module: module.clone(), set: Vec::new(), extra, index: Vec::new() }
    }
}

/// What identifies a module zygote: the job module (name, file name, source: a zygote serves restores of the
/// identical module only), as one hex BLAKE3 digest. Not the library set: a zygote of the module serves any of
/// its restores (one started with the set a restore needed has it imported; one started at a job's start has
/// what the top level imported; a package a checkpoint needs beyond that, the child imports, as any restore).
pub fn module_key(module: &ModuleSpec) -> String {
    let mut h = blake3::Hasher::new();
    for part in [&module.module_name, &module.filename, &module.source] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().to_hex().to_string()
}

/// The modules whose code index a zygote builds before forking: plain dotted names, within [`MAX_INDEX_BYTES`]
/// (they come from the job's process, and share the zygote's first message with the modules it imports).
fn bounded_names(indexed: &[String]) -> Vec<String> {
    plain_modules_within(indexed, 0, MAX_INDEX_BYTES)
}

/// The modules a restore imported that a zygote for `set` imports too: plain dotted names, in import order,
/// within [`MAX_EXTRA_BYTES`] with the set's.
fn extra_modules(set: &[String], imported: &[String]) -> Vec<String> {
    plain_modules_within(imported, set.iter().map(|m| m.len() + 2).sum(), MAX_EXTRA_BYTES)
}

/// The plain module names of `names`, in order, while they fit in `limit` bytes of a zygote's first message
/// after the `used` ones (two bytes of framing each).
fn plain_modules_within(names: &[String], used: usize, limit: usize) -> Vec<String> {
    let mut bytes = used;
    names
        .iter()
        .filter(|m| plain_module(m))
        .take_while(|m| {
            bytes += m.len() + 2;
            bytes <= limit
        })
        .cloned()
        .collect()
}

/// Which of `imported` (what a child of a warm zygote imported again) the zygote is taught: plain names, in
/// order, not `taught` before nor `refused`, while the names taught over its life (`used` bytes so far) fit in
/// [`MAX_TAUGHT_BYTES`].
fn to_teach(
    imported: &[String],
    taught: &std::collections::HashSet<String>,
    used: usize,
    refused: &[String],
) -> Vec<String> {
    let fresh: Vec<String> =
        imported.iter().filter(|m| !taught.contains(*m) && !refused.contains(m)).cloned().collect();
    plain_modules_within(&fresh, used, MAX_TAUGHT_BYTES)
}

/// A dotted module name of plain identifiers (a module a restore imported, for a set zygote to import).
fn plain_module(m: &str) -> bool {
    m.len() <= 256 && m.split('.').all(plain_name)
}

/// An ASCII identifier.
fn plain_name(p: &str) -> bool {
    let mut c = p.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_') && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// Which set zygote a restore forks from, and which the pool starts or drops: no processes, no clock (the
/// caller passes `now`), so that it is tested as a table. `Z` is the zygote handle.
#[derive(Debug)]
pub struct SetTable<Z> {
    capacity: usize,
    /// Least recently used first.
    live: Vec<(Vec<String>, Z)>,
    /// The set whose zygote is starting (one at a time).
    starting: Option<Vec<String>>,
    /// Sets whose zygote failed, and when.
    failed: Vec<(Vec<String>, Instant)>,
}

impl<Z: Clone> SetTable<Z> {
    pub fn new(capacity: usize) -> Self {
        Self { capacity, live: Vec::new(), starting: None, failed: Vec::new() }
    }

    /// The zygote whose set contains `set` (both sorted), the smallest such (the fewest pages of libraries the
    /// job does not use), marked most recently used.
    pub fn pick(&mut self, set: &[String]) -> Option<Z> {
        let i = (0..self.live.len())
            .filter(|&i| covers(&self.live[i].0, set))
            .min_by_key(|&i| (self.live[i].0.len(), std::cmp::Reverse(i)))?;
        let entry = self.live.remove(i);
        let z = entry.1.clone();
        self.live.push(entry);
        Some(z)
    }

    /// Whether to start a zygote for `set` now: none covers it, none is starting, the table has room for
    /// zygotes at all, and the set did not fail within [`SET_RETRY_AFTER`].
    pub fn should_start(&self, set: &[String], now: Instant) -> bool {
        self.capacity > 0
            && self.starting.is_none()
            && !self.live.iter().any(|(s, _)| covers(s, set))
            && !self.failed.iter().any(|(s, at)| s == set && now.duration_since(*at) < SET_RETRY_AFTER)
    }

    /// Whether a zygote can come in without dropping one (a set another node told is no reason to drop one
    /// this node's restores use).
    pub fn has_room(&self) -> bool {
        self.live.len() < self.capacity
    }

    /// A zygote for `set` is up: it goes in as the most recently used; the least recently used beyond the
    /// capacity is returned, for the caller to kill.
    pub fn add(&mut self, set: Vec<String>, z: Z) -> Vec<Z> {
        self.failed.retain(|(s, _)| *s != set);
        self.live.push((set, z));
        let over = self.live.len().saturating_sub(self.capacity);
        self.live.drain(..over).map(|(_, z)| z).collect()
    }

    /// The zygote for `set` did not come up at `now`.
    pub fn failed(&mut self, set: Vec<String>, now: Instant) {
        self.failed.retain(|(s, _)| *s != set);
        self.failed.push((set, now));
        let over = self.failed.len().saturating_sub(MAX_FAILED_SETS);
        self.failed.drain(..over);
    }

    /// Drop the zygotes that died.
    pub fn forget_dead(&mut self, alive: impl Fn(&Z) -> bool) {
        self.live.retain(|(_, z)| alive(z));
    }

    /// The sets in the table, least recently used first.
    pub fn sets(&self) -> Vec<&[String]> {
        self.live.iter().map(|(s, _)| s.as_slice()).collect()
    }
}

/// Whether sorted `have` contains every name of sorted `need`.
fn covers(have: &[String], need: &[String]) -> bool {
    need.iter().all(|m| have.binary_search(m).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_modules_a_zygote_indexes_are_plain_names_within_the_bound() {
        let named = set(&["sklearn.svm._base", "numpy", "os; rm", "a..b", "", "x.1y"]);
        assert_eq!(bounded_names(&named), set(&["sklearn.svm._base", "numpy"]));
        let many: Vec<String> = (0..2000).map(|i| format!("pkg.module_{i:04}")).collect();
        let kept = bounded_names(&many);
        assert!(kept.len() < many.len() && kept.iter().map(|m| m.len() + 1).sum::<usize>() <= MAX_INDEX_BYTES);
        assert_eq!(kept[..], many[..kept.len()], "the first ones, in order");
    }

    #[test]
    fn a_zygote_is_taught_plain_names_it_was_not_taught_nor_refused_within_its_bound() {
        let taught: std::collections::HashSet<String> = set(&["pandas.core.methods.to_dict"]).into_iter().collect();
        let refused = set(&["zz_threaded"]);
        let named = set(&["PIL.PngImagePlugin", "pandas.core.methods.to_dict", "zz_threaded", "os; rm", "decimal"]);
        assert_eq!(to_teach(&named, &taught, 0, &refused), set(&["PIL.PngImagePlugin", "decimal"]));
        // Over its life: what it was taught before counts against the bound.
        let nearly = MAX_TAUGHT_BYTES - ("decimal".len() + 2);
        assert_eq!(to_teach(&named, &taught, nearly, &refused), Vec::<String>::new(), "the first name does not fit");
        assert_eq!(to_teach(&set(&["decimal"]), &taught, nearly, &refused), set(&["decimal"]));
        assert_eq!(to_teach(&set(&["decimal"]), &taught, nearly + 1, &refused), Vec::<String>::new());
    }

    #[test]
    fn the_set_is_what_the_base_zygote_lacks_and_only_plain_names() {
        let base = set(&["cloudpickle", "numpy"]);
        assert_eq!(set_of(&set(&["sklearn", "numpy", "scipy"]), &base), Some(set(&["scipy", "sklearn"])));
        assert_eq!(set_of(&set(&["cloudpickle", "numpy"]), &base), None, "the base zygote has them all");
        assert_eq!(set_of(&[], &base), None);
        for bad in ["os; rm", "../x", "", "1abc", "a.b", "é"] {
            assert_eq!(set_of(&set(&["six", bad]), &[]), None, "{bad:?} is not a package name");
        }
        let many: Vec<String> = (0..=MAX_SET_LEN).map(|i| format!("m{i}")).collect();
        assert_eq!(set_of(&many, &[]), None);
        // The modules a restore imported, which a set zygote imports too, are dotted plain names.
        assert!(plain_module("sklearn.neighbors._base"));
        for bad in ["sklearn..x", ".x", "x.", "a.b-c", "a b"] {
            assert!(!plain_module(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_module_zygote_serves_the_identical_module_only() {
        let m = |name: &str, file: &str, src: &str| ModuleSpec {
            module_name: name.into(),
            filename: file.into(),
            source: src.into(),
        };
        let a = m("mlfn_a", "<job>", "X = 1\n");
        let key = module_key(&a);
        assert_eq!(key, module_key(&a.clone()), "the same module, the same zygote");
        let others = [
            module_key(&m("mlfn_b", "<job>", "X = 1\n")),
            module_key(&m("mlfn_a", "<other>", "X = 1\n")),
            module_key(&m("mlfn_a", "<job>", "X = 2\n")),
            // Parts are length-prefixed: moving a byte from one to the next is another key.
            module_key(&m("mlfn_a<", "job>", "X = 1\n")),
        ];
        for (i, k) in others.iter().enumerate() {
            assert_ne!(*k, key, "case {i}");
        }
        // The table picks by exact key (a one-name set covers only itself).
        let mut t = SetTable::new(2);
        t.add(vec![key.clone()], 1);
        assert_eq!(t.pick(std::slice::from_ref(&key)), Some(1));
        assert_eq!(t.pick(&others[..1]), None);
    }

    #[test]
    fn a_restore_forks_from_the_smallest_zygote_whose_set_covers_it() {
        let mut t = SetTable::new(3);
        assert!(t.add(set(&["numpy", "scipy", "sklearn"]), 1).is_empty());
        assert!(t.add(set(&["numpy", "scipy"]), 2).is_empty());
        let cases: &[(&[&str], Option<i32>)] = &[
            (&["scipy"], Some(2)),
            (&["numpy", "scipy"], Some(2)),
            (&["sklearn"], Some(1)),
            (&["numpy", "sklearn"], Some(1)),
            (&["osmnx"], None),
            (&["numpy", "osmnx"], None),
        ];
        for (need, want) in cases {
            assert_eq!(t.pick(&set(need)), *want, "{need:?}");
        }
    }

    #[test]
    fn the_least_recently_used_zygote_is_dropped_for_a_new_one() {
        let mut t = SetTable::new(2);
        assert!(t.add(set(&["a"]), 1).is_empty());
        assert!(t.add(set(&["b"]), 2).is_empty());
        // "a" used since "b" came: "b" is the least recently used now.
        assert_eq!(t.pick(&set(&["a"])), Some(1));
        assert!(!t.has_room(), "full: a told set would drop one");
        assert_eq!(t.add(set(&["c"]), 3), vec![2]);
        assert_eq!(t.sets(), vec![set(&["a"]).as_slice(), set(&["c"]).as_slice()]);
        assert_eq!(t.pick(&set(&["b"])), None);
        // A dead zygote leaves the table.
        t.forget_dead(|z| *z != 1);
        assert_eq!(t.pick(&set(&["a"])), None);
    }

    #[test]
    fn one_start_at_a_time_none_when_covered_or_disabled_and_failures_wait() {
        let now = Instant::now();
        let mut t: SetTable<u32> = SetTable::new(2);
        let s = set(&["sklearn"]);
        assert!(t.should_start(&s, now));
        t.starting = Some(s.clone());
        assert!(!t.should_start(&set(&["scipy"]), now), "one start at a time");
        t.starting = None;
        t.failed(s.clone(), now);
        assert!(!t.should_start(&s, now + SET_RETRY_AFTER / 2), "failed recently");
        assert!(t.should_start(&set(&["scipy"]), now), "other sets are not held back");
        assert!(t.should_start(&s, now + SET_RETRY_AFTER), "tried again after a while");
        t.add(set(&["numpy", "sklearn"]), 7);
        assert!(!t.should_start(&s, now + SET_RETRY_AFTER), "covered");
        assert!(!SetTable::<u32>::new(0).should_start(&s, now), "node.zygote_sets = 0");
        for i in 0..MAX_FAILED_SETS + 10 {
            t.failed(set(&[&format!("m{i}")]), now);
        }
        assert_eq!(t.failed.len(), MAX_FAILED_SETS, "failures are remembered within a bound");
    }
}
