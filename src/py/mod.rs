//! The worker process: one embedded CPython that runs one job (or one slice of one) and checkpoints it.
//!
//! A worker is a fresh child of the node's zygote ([`zygote_main`]), or a stand-alone `microlambda worker`
//! (`microlambda run`). Threads, started in the child after the fork: the **main thread** runs the job
//! (CPython 3.11 runs pending calls only there, and the checkpoint trigger relies on them); the **control
//! thread** reads commands from the host and forwards checkpoint requests straight to [`trigger`] (no GIL
//! needed); the **writer thread** owns the protocol stream and sends a checkpoint's raw parts off the job's
//! thread. The host seals them: the worker never has the checkpoint key.
//!
//! Architecture invariant: job code never sees the protocol's fds as its fd 0/1 for output: fd 1 points at
//! stderr, so a job that prints cannot corrupt the protocol.
//!
//! Architecture invariant: a worker runs one job and ends; nothing of a job (modules, globals, threads,
//! processes it forked) is left for another.
mod codeflow;
pub mod frame311;
mod heldbyc;
mod interp;
mod libstate;
mod numbers;
mod session;
mod statics;
pub mod trigger;
mod warm;
pub(crate) use warm::Warm;
mod zygote;

pub use interp::PYTHON_MINOR;
pub use zygote::zygote_main;

use crate::checkpoint::FrameIdentity;
use crate::config::WorkerLimits;
use crate::worker::protocol::{
    read_frame, write_captured, write_frame, CaptureStats, FromChild, FromWorker, JobError, JobErrorKind, ModuleSpec,
    ToChild,
};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList};
use std::io::{BufReader, BufWriter};
use std::os::fd::FromRawFd;
use std::sync::mpsc;
use std::time::Instant;

/// The pickled state of one checkpoint, copied out of Python.
pub(crate) struct CapturedState {
    /// The pickle, as the bytes object the capture made (not copied: bytes never change).
    state: HeldBytes,
    buffers: Vec<Vec<u8>>,
    frames: Vec<FrameIdentity>,
    /// The library packages the state needs (`capture.library_imports`), recorded in the envelope.
    imports: Vec<String>,
    stats: CaptureStats,
}

impl CapturedState {
    fn extract(py: Python<'_>, r: &Bound<'_, PyAny>) -> PyResult<Self> {
        let state = HeldBytes::new(r.get_item(0)?.cast_into::<PyBytes>()?.unbind(), py);
        let mut buffers = Vec::new();
        for b in r.get_item(1)?.try_iter()? {
            buffers.push(pybuffer_bytes(&b?)?);
        }
        let mut frames = Vec::new();
        for f in r.get_item(2)?.try_iter()? {
            let (module, qualname, firstlineno, code_hash): (String, String, u32, String) = f?.extract()?;
            frames.push(FrameIdentity { module, qualname, firstlineno, code_hash });
        }
        let imports: Vec<String> = r.get_item(3)?.extract()?;
        let baseline: Option<f64> = r.get_item(4)?.extract()?;
        let stats = CaptureStats { baseline_us: baseline.map(|s| (s * 1e6) as u64), ..CaptureStats::default() };
        Ok(Self { state, buffers, frames, imports, stats })
    }

    /// The state's size when it is over `cap` (0: no cap).
    fn over(&self, cap: u64) -> Option<u64> {
        let size = (self.state.len() + self.buffers.iter().map(Vec::len).sum::<usize>()) as u64;
        (cap > 0 && size > cap).then_some(size)
    }
}

/// The contents of a Python bytes object, readable from any thread without the GIL: a bytes object never changes
/// and the reference held keeps it alive (dropped off the GIL, pyo3 defers the decrement to its pool).
pub(crate) struct HeldBytes {
    _owner: Py<PyBytes>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the pointed-to memory is an immutable bytes object's, kept alive by `_owner` (itself Send).
unsafe impl Send for HeldBytes {}

impl HeldBytes {
    fn new(owner: Py<PyBytes>, py: Python<'_>) -> Self {
        let b = owner.bind(py).as_bytes();
        let (ptr, len) = (b.as_ptr(), b.len());
        Self { _owner: owner, ptr, len }
    }
}

impl std::ops::Deref for HeldBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: see the type; `ptr` and `len` were read from the live, immutable bytes object.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

fn pybuffer_bytes(o: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let buf = pyo3::buffer::PyBuffer::<u8>::get(o)?;
    buf.to_vec(o.py())
}

/// What the writer thread sends.
pub(crate) enum Outgoing {
    Msg(FromWorker),
    Checkpoint {
        seq: u64,
        requested: Instant,
        stop: bool,
        state: Box<CapturedState>,
    },
    /// The job is over: flush, end what it forked, end the process.
    End,
}

/// Commands for the main thread.
enum MainCmd {
    Run {
        job_id: String,
        module: ModuleSpec,
        entry: String,
        input_json: String,
    },
    Restore {
        job_id: String,
        module: ModuleSpec,
        seq: u64,
        state: Vec<u8>,
        buffers: Vec<Vec<u8>>,
        input_json: Option<String>,
    },
    Shutdown,
}

/// Entry point of `microlambda worker` (stand-alone: one job, then exit). Returns the process exit code.
pub fn worker_main() -> i32 {
    // SAFETY: plain fd syscalls at start-up, before any other thread exists.
    let proto_out = unsafe {
        let fd = libc::dup(1);
        if fd < 0 || libc::dup2(2, 1) < 0 {
            eprintln!("microlambda worker: cannot set up its file descriptors");
            return 2;
        }
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        std::fs::File::from_raw_fd(fd)
    };
    // SAFETY: fd 0 is the command pipe; nothing else in this process reads it.
    let mut input = BufReader::new(unsafe { std::fs::File::from_raw_fd(0) });
    let cfg = match read_frame::<_, ToChild>(&mut input) {
        Ok(Some(ToChild::Hello(cfg))) => cfg,
        other => {
            eprintln!("microlambda worker: expected Hello first, got {other:?}");
            return 2;
        }
    };
    let interp = match interp::start(cfg.python.as_deref(), &cfg.preload) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("microlambda worker: {e}");
            return 3;
        }
    };
    if let Err(e) = apply_limits(&cfg.limits) {
        eprintln!("microlambda worker: cannot set its limits: {e}");
        return 3;
    }
    // A stand-alone worker is reniced by its host at spawn.
    child_main(input, proto_out, interp.interp, &interp.version, &cfg.limits, 0, cfg.reuse, Warm::Off)
}

/// Set the process's resource limits (before any job code runs). `RLIMIT_NPROC` is set later, once the worker's
/// own threads run ([`child_main`]).
pub(crate) fn apply_limits(l: &WorkerLimits) -> std::io::Result<()> {
    let set = |res, v: u64| -> std::io::Result<()> {
        if v == 0 {
            return Ok(());
        }
        let r = libc::rlimit { rlim_cur: v as libc::rlim_t, rlim_max: v as libc::rlim_t };
        // SAFETY: setrlimit with a valid struct.
        if unsafe { libc::setrlimit(res, &r) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    set(libc::RLIMIT_AS, l.memory_mb << 20)?;
    // The soft limit sends SIGXCPU (the worker dies, the node reports it); the hard one a second later SIGKILL.
    if l.cpu_seconds > 0 {
        let r = libc::rlimit { rlim_cur: l.cpu_seconds as libc::rlim_t, rlim_max: (l.cpu_seconds + 1) as libc::rlim_t };
        // SAFETY: setrlimit with a valid struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_CPU, &r) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    set(libc::RLIMIT_FSIZE, l.file_size_mb << 20)?;
    set(libc::RLIMIT_NOFILE, l.open_files)?;
    if !l.network {
        leave_the_network()?; // while the user may (before it drops to run_as_uid)
    }
    // SAFETY: dropping privileges in this process: groups first, then the group, then the user (after which
    // none of it can be undone). A child of a module zygote already runs as them (and could not call
    // setgroups again): nothing to do then.
    unsafe {
        let gid_done = libc::getgid() == l.run_as_gid && libc::getegid() == l.run_as_gid;
        if l.run_as_gid != 0
            && !gid_done
            && (libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(l.run_as_gid) != 0)
        {
            return Err(std::io::Error::last_os_error());
        }
        let uid_done = libc::getuid() == l.run_as_uid && libc::geteuid() == l.run_as_uid;
        if l.run_as_uid != 0 && !uid_done && libc::setuid(l.run_as_uid) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // SAFETY: a write past RLIMIT_FSIZE then fails with EFBIG (an OSError in the job) instead of killing us.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    Ok(())
}

/// Whether this process already runs in a network namespace of its own: a child of a module zygote inherits
/// the zygote's (and, run as another user, could not make one).
static OWN_NETWORK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Leave the node's network (`node.limits.network = false`): a namespace of this process's own, where no
/// interface is up, so a job reaches no address, not even the node's ports on 127.0.0.1. The worker's own
/// channels to the node (pipes, a socket pair) are open files and go on working.
fn leave_the_network() -> std::io::Result<()> {
    use std::sync::atomic::Ordering;
    if OWN_NETWORK.load(Ordering::Relaxed) {
        return Ok(());
    }
    // SAFETY: unshare(2) on this process; it only changes which network the process's new sockets see.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(std::io::Error::new(e.kind(), format!("no network namespace (node.limits.network = false): {e}")));
    }
    OWN_NETWORK.store(true, Ordering::Relaxed);
    Ok(())
}

/// Run one job in this process and end it (or, with `reuse`, job after job until told to shut down). `input` reads the host's commands, `proto_out` carries the answers.
/// `warm`: what a fresh child of a zygote runs before it says it is ready ([`warm::warm_child`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn child_main(
    input: BufReader<std::fs::File>,
    proto_out: std::fs::File,
    interp: *mut pyo3::ffi::PyInterpreterState,
    version: &str,
    limits: &WorkerLimits,
    nice: i32,
    reuse: bool,
    warm: Warm,
) -> i32 {
    let (out_tx, out_rx) = mpsc::channel::<Outgoing>();
    let writer = std::thread::Builder::new()
        .name("ml-writer".into())
        .spawn(move || writer_loop(proto_out, out_rx))
        .expect("spawn writer");
    trigger::init(out_tx.clone(), interp, limits.checkpoint_bytes);
    let (main_tx, main_rx) = mpsc::channel::<MainCmd>();
    let ctl_out = out_tx.clone();
    std::thread::Builder::new()
        .name("ml-control".into())
        .spawn(move || control_loop(input, main_tx, ctl_out))
        .expect("spawn control");
    if limits.processes > 0 {
        let r = libc::rlimit { rlim_cur: limits.processes as libc::rlim_t, rlim_max: limits.processes as libc::rlim_t };
        // SAFETY: setrlimit with a valid struct.
        unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &r) };
    }
    warm::warm_child(caps_of(limits), warm);
    if std::env::var_os("ML_DEBUG").is_some() {
        eprintln!("worker: ready, {} page faults", minor_faults());
    }
    let _ = out_tx.send(Outgoing::Msg(FromWorker::Ready { pid: std::process::id(), python: version.to_string() }));
    let caps = caps_of(limits);
    let mut reniced = false;
    while let Ok(cmd) = main_rx.recv() {
        if nice != 0 && !reniced {
            // Job code runs behind the node's own work (and the radio). Niceness is per thread on Linux: this
            // thread runs the job, and the threads the job starts inherit it; the worker's start-up, before a
            // job came, ran at the zygote's priority so that it is ready in time.
            // SAFETY: nice(2) on this thread; its result (the new niceness, possibly -1) is not an error sign.
            unsafe { libc::nice(nice) };
            reniced = true;
        }
        let t_job = Instant::now();
        let faults = minor_faults();
        let msg = match cmd {
            MainCmd::Shutdown => break,
            MainCmd::Run { job_id, module, entry, input_json } => {
                Python::attach(|py| run_job(py, &out_tx, &job_id, &module, &entry, &input_json, caps))
            }
            MainCmd::Restore { job_id, module, seq, state, buffers, input_json } => Python::attach(|py| {
                let parts = (seq, &state[..], &buffers[..], input_json.as_deref());
                restore_job(py, &out_tx, &job_id, &module, parts, caps)
            }),
        };
        session::clear();
        if reuse {
            // The next job finds no process of this one (its answer goes out after they are gone).
            flush_std();
            end_descendants();
        }
        let _ = out_tx.send(Outgoing::Msg(msg));
        if std::env::var_os("ML_DEBUG").is_some() {
            eprintln!("worker: job {:?}, {} minor page faults", t_job.elapsed(), minor_faults() - faults);
        }
        if !reuse {
            break;
        }
    }
    flush_std();
    let _ = out_tx.send(Outgoing::End);
    let _ = writer.join();
    0
}

fn caps_of(limits: &WorkerLimits) -> Caps {
    Caps { output: limits.output_bytes, traceback: limits.traceback_bytes }
}

/// Flush the job's `sys.stdout` and `sys.stderr` (both go to the worker's stderr).
fn flush_std() {
    Python::attach(|py| {
        for s in ["stdout", "stderr"] {
            let _ = py.import("sys").and_then(|sys| sys.getattr(s)?.call_method0("flush"));
        }
    });
}

pub(crate) fn minor_faults() -> i64 {
    // SAFETY: getrusage fills the struct.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru.ru_minflt
    }
}

/// Kill every process this one forked (and what they forked), then return. The worker is a child subreaper,
/// so processes whose parent has exited are still found here, even after `setsid`.
///
/// Without children (no process of the job is left, or it never forked: the common case) it returns before it
/// reads `/proc`. That matters for the cost of a job: every `/proc/<pid>/task/...` entry read here is a dentry
/// the kernel must invalidate when this process is reaped, and with the worker's threads gone that walk cost the
/// zygote's `wait4` about 3 ms of system time per job (docs/BENCHMARKS.md).
fn end_descendants() {
    if !has_children() {
        return;
    }
    let me = std::process::id();
    for _ in 0..3 {
        let kids = crate::proc::children_of(me);
        if kids.is_empty() {
            return;
        }
        for k in kids {
            crate::proc::signal_tree(k, libc::SIGKILL);
        }
        // SAFETY: reap what was killed (children of this process only).
        unsafe { while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {} }
    }
}

/// Whether this process has a child, alive or not yet reaped (zombies are reaped here); no `/proc` read.
fn has_children() -> bool {
    loop {
        // SAFETY: waitpid on this process's own children, without blocking.
        let r = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        match r {
            0 => return true,
            r if r > 0 => continue,
            _ => return std::io::Error::last_os_error().raw_os_error() != Some(libc::ECHILD),
        }
    }
}

fn control_loop(mut input: BufReader<std::fs::File>, main: mpsc::Sender<MainCmd>, out: mpsc::Sender<Outgoing>) {
    loop {
        match read_frame::<_, ToChild>(&mut input) {
            Ok(Some(ToChild::Checkpoint { seq, mode, deadline_ms })) => {
                trigger::request(seq, mode, deadline_ms);
                session::nudge();
            }
            Ok(Some(ToChild::Run { job_id, module, entry, input_json })) => {
                let _ = main.send(MainCmd::Run { job_id, module, entry, input_json });
            }
            Ok(Some(ToChild::Restore { job_id, module, seq, state, buffers, input_json })) => {
                let buffers = buffers.into_iter().map(|b| b.into_vec()).collect();
                let _ = main.send(MainCmd::Restore { job_id, module, seq, state, buffers, input_json });
            }
            Ok(Some(ToChild::Hello(_))) => {}
            Ok(Some(ToChild::SessionRequest { n, input_json })) => session::deliver(n, input_json),
            Ok(Some(ToChild::Shutdown)) | Ok(None) => {
                let _ = main.send(MainCmd::Shutdown);
                // A job may be running: the host closing our stdin means nobody will read the result.
                std::thread::sleep(std::time::Duration::from_millis(200));
                end_descendants();
                // SAFETY: ending the process without Python's clean-up (the job's result is not wanted).
                unsafe { libc::_exit(0) };
            }
            Err(e) => {
                let _ = out.send(Outgoing::Msg(FromWorker::Failed {
                    job_id: String::new(),
                    error: JobError {
                        kind: JobErrorKind::Runtime,
                        message: format!("bad command: {e}"),
                        traceback: None,
                    },
                }));
                std::thread::sleep(std::time::Duration::from_millis(50));
                end_descendants();
                // SAFETY: as above.
                unsafe { libc::_exit(2) };
            }
        }
    }
}

fn writer_loop(out: std::fs::File, rx: mpsc::Receiver<Outgoing>) {
    let mut w = BufWriter::with_capacity(1 << 16, out);
    for item in rx {
        match item {
            Outgoing::Msg(m) => {
                if write_frame(&mut w, &FromChild::Msg(m)).is_err() {
                    end_descendants();
                    // SAFETY: nobody reads us any more.
                    unsafe { libc::_exit(0) };
                }
            }
            Outgoing::End => {
                end_descendants();
                // SAFETY: the job's answer is written (write_frame flushes); no Python clean-up is wanted.
                unsafe { libc::_exit(0) };
            }
            Outgoing::Checkpoint { seq, requested, stop, state } => {
                let CapturedState { state, buffers, frames, imports, mut stats } = *state;
                stats.capture_us =
                    (requested.elapsed().as_micros() as u64).saturating_sub(stats.baseline_us.unwrap_or(0));
                let mut parts: Vec<&[u8]> = vec![&state];
                parts.extend(buffers.iter().map(Vec::as_slice));
                let ok = write_captured(&mut w, seq, stop, frames, imports, stats, &parts).is_ok();
                if stop || !ok {
                    end_descendants();
                    // SAFETY: ending the process at once is the point of a stop-mode checkpoint: no Python
                    // clean-up, no `finally` blocks run here (they run where the job is restored).
                    unsafe { libc::_exit(0) };
                }
            }
        }
    }
}

/// Caps on what a job sends back.
#[derive(Clone, Copy)]
struct Caps {
    output: u64,
    traceback: u64,
}

/// Cut `s` to its last `cap` bytes (0: no cap), at a character boundary, saying so.
fn cut_tail(s: String, cap: u64) -> String {
    let cap = cap as usize;
    if cap == 0 || s.len() <= cap {
        return s;
    }
    let mut from = s.len() - cap;
    while !s.is_char_boundary(from) {
        from += 1;
    }
    format!("[{from} bytes cut]...{}", &s[from..])
}

fn job_error(kind: JobErrorKind, message: impl Into<String>, traceback: Option<String>) -> JobError {
    JobError { kind, message: message.into(), traceback }
}

fn describe(py: Python<'_>, e: &PyErr) -> (String, Option<String>) {
    let msg = format!("{}: {}", e.get_type(py).name().map(|n| n.to_string()).unwrap_or_default(), e.value(py));
    let tb = py
        .import("microlambda_rt")
        .and_then(|rt| rt.getattr("format_exception")?.call1((e.value(py), e.traceback(py))))
        .and_then(|s| s.extract::<String>())
        .ok();
    (msg, tb)
}

fn load_module<'py>(py: Python<'py>, module: &ModuleSpec) -> Result<Bound<'py, PyAny>, JobError> {
    let rt = py.import("microlambda_rt").map_err(|e| job_error(JobErrorKind::Runtime, e.to_string(), None))?;
    rt.getattr("load_module").and_then(|f| f.call1((&module.module_name, &module.filename, &module.source))).map_err(
        |e| {
            let (msg, tb) = describe(py, &e);
            if e.is_instance_of::<pyo3::exceptions::PySyntaxError>(py) {
                job_error(JobErrorKind::Syntax, format!("the job's source does not compile: {msg}"), tb)
            } else {
                job_error(JobErrorKind::Raised, format!("the job's module raised while loading: {msg}"), tb)
            }
        },
    )
}

fn run_job(
    py: Python<'_>,
    out: &mpsc::Sender<Outgoing>,
    job_id: &str,
    module: &ModuleSpec,
    entry: &str,
    input_json: &str,
    caps: Caps,
) -> FromWorker {
    let failed = |error| FromWorker::Failed { job_id: job_id.to_string(), error };
    let t0 = Instant::now();
    let m = match load_module(py, module) {
        Ok(m) => m,
        Err(e) => return failed(e),
    };
    let t_load = t0.elapsed();
    let rt = py.import("microlambda_rt").expect("runtime loaded at start");
    let (f, arg) = match rt.getattr("start").and_then(|s| s.call1((&m, entry, input_json))) {
        Ok(t) => match t.extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>() {
            Ok(v) => v,
            Err(e) => return failed(job_error(JobErrorKind::Runtime, e.to_string(), None)),
        },
        Err(e) => {
            let (msg, _) = describe(py, &e);
            let kind = if e.is_instance_of::<pyo3::exceptions::PyLookupError>(py) {
                JobErrorKind::BadEntry
            } else {
                JobErrorKind::BadInput
            };
            return failed(job_error(kind, msg, None));
        }
    };
    let t_start = t0.elapsed();
    // The job counts as running before `Started` is sent: a checkpoint request answering it must find it.
    trigger::job_started();
    // A slow top level: what it imported, for a zygote of the module to import first (`WorkerPool::started`).
    let imported = if t_load >= crate::worker::protocol::TOP_LEVEL_WORTH_A_ZYGOTE {
        rt.getattr("restored_imports").and_then(|f| f.call0()).and_then(|v| v.extract()).unwrap_or_default()
    } else {
        Vec::new()
    };
    let _ = out.send(Outgoing::Msg(FromWorker::Started { job_id: job_id.to_string(), imported }));
    let t = Instant::now();
    let r = f.call1((arg,));
    trigger::job_ended(py);
    let t_call = t0.elapsed();
    let m = finish(py, job_id, r, t, caps);
    if std::env::var_os("ML_DEBUG").is_some() {
        eprintln!("run: load {t_load:?} start {t_start:?} call {t_call:?} finish {:?}", t0.elapsed());
    }
    m
}

fn finish(py: Python<'_>, job_id: &str, r: PyResult<Bound<'_, PyAny>>, t: Instant, caps: Caps) -> FromWorker {
    let m = finish_uncapped(py, job_id, r, t);
    match m {
        FromWorker::Completed { output_json, .. } if caps.output > 0 && output_json.len() as u64 > caps.output => {
            FromWorker::Failed {
                job_id: job_id.to_string(),
                error: job_error(
                    JobErrorKind::OutputTooLarge,
                    format!(
                        "the job's output is {} bytes of JSON, over the node's cap of {} (node.limits.output_bytes)",
                        output_json.len(),
                        caps.output
                    ),
                    None,
                ),
            }
        }
        FromWorker::Failed { job_id, error } => FromWorker::Failed {
            job_id,
            error: JobError {
                kind: error.kind,
                message: cut_tail(error.message, caps.traceback),
                traceback: error.traceback.map(|t| cut_tail(t, caps.traceback)),
            },
        },
        other => other,
    }
}

fn finish_uncapped(py: Python<'_>, job_id: &str, r: PyResult<Bound<'_, PyAny>>, t: Instant) -> FromWorker {
    let run_us = t.elapsed().as_micros() as u64;
    let rt = py.import("microlambda_rt").expect("runtime loaded at start");
    let _ = rt.getattr("finish").and_then(|f| f.call0());
    let failed = |error| FromWorker::Failed { job_id: job_id.to_string(), error };
    match r {
        Ok(v) => match rt.getattr("encode_output").and_then(|f| f.call1((v,))).and_then(|s| s.extract::<String>()) {
            Ok(output_json) => FromWorker::Completed { job_id: job_id.to_string(), output_json, run_us },
            Err(e) => {
                let (msg, _) = describe(py, &e);
                failed(job_error(JobErrorKind::BadOutput, format!("the job's return value is not JSON: {msg}"), None))
            }
        },
        Err(e) => {
            let (msg, tb) = describe(py, &e);
            if e.is_instance_of::<pyo3::exceptions::PyMemoryError>(py) {
                let msg = format!("the job ran out of memory (node.limits.memory_mb): {msg}");
                return failed(job_error(JobErrorKind::OutOfMemory, msg, tb));
            }
            let msg = if e.is_instance_of::<pyo3::exceptions::PySystemExit>(py) {
                format!("the job called sys.exit ({msg})")
            } else {
                msg
            };
            failed(job_error(JobErrorKind::Raised, msg, tb))
        }
    }
}

/// A checkpoint's parts to restore: its sequence number, state, buffers and the job's input (JSON).
type RestoreParts<'a> = (u64, &'a [u8], &'a [Vec<u8>], Option<&'a str>);

fn restore_job(
    py: Python<'_>,
    out: &mpsc::Sender<Outgoing>,
    job_id: &str,
    module: &ModuleSpec,
    (seq, state, buffers, input_json): RestoreParts<'_>,
    caps: Caps,
) -> FromWorker {
    // The host has opened and verified the checkpoint (it holds the key); these are its parts.
    let t0 = Instant::now();
    let faults0 = minor_faults();
    let failed = |msg: String| FromWorker::Failed {
        job_id: job_id.to_string(),
        error: job_error(JobErrorKind::Restore, msg, None),
    };
    let (t_open, t_parts) = (t0.elapsed(), t0.elapsed());
    if let Err(e) = load_module(py, module) {
        return FromWorker::Failed { job_id: job_id.to_string(), error: e };
    }
    let t_load = t0.elapsed();
    let rt = py.import("microlambda_rt").expect("runtime loaded at start");
    let data = PyBytes::new(py, state);
    let bufs = match PyList::new(py, buffers.iter().map(|b| PyByteArray::new(py, b))) {
        Ok(l) => l,
        Err(e) => return failed(e.to_string()),
    };
    let (f, exc) = match rt.getattr("restore").and_then(|r| r.call1((data, bufs, input_json))) {
        Ok(t) => match t.extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>() {
            Ok(v) => v,
            Err(e) => return failed(e.to_string()),
        },
        Err(e) => {
            let (msg, _) = describe(py, &e);
            return failed(format!("cannot restore the checkpoint: {msg}"));
        }
    };
    let restore_us = t0.elapsed().as_micros() as u64;
    if std::env::var_os("ML_DEBUG").is_some() {
        eprintln!(
            "restore: open {:?} parts {:?} load {:?} total {:?}, {} page faults",
            t_open,
            t_parts,
            t_load,
            t0.elapsed(),
            minor_faults() - faults0
        );
    }
    let names = |f: &str| rt.getattr(f).and_then(|f| f.call0()).and_then(|v| v.extract()).unwrap_or_default();
    let (imported, indexed) = (names("restored_imports"), names("indexed_modules"));
    let _ = out.send(Outgoing::Msg(FromWorker::Restored {
        job_id: job_id.to_string(),
        seq,
        restore_us,
        imported,
        indexed,
    }));
    trigger::job_started(); // before `Started`, as for a fresh run
    let _ = out.send(Outgoing::Msg(FromWorker::Started { job_id: job_id.to_string(), imported: Vec::new() }));
    if !exc.is_none() {
        // SAFETY: GIL held; sets the thread's handled exception (what `sys.exception()` gives) before the
        // restored frames resume, as it was when the checkpoint was taken.
        unsafe { pyo3::ffi::PyErr_SetHandledException(exc.as_ptr()) };
    }
    let t = Instant::now();
    let r = f.call0();
    trigger::job_ended(py);
    // SAFETY: GIL held; clear what the job left as handled.
    unsafe { pyo3::ffi::PyErr_SetHandledException(std::ptr::null_mut()) };
    finish(py, job_id, r, t, caps)
}
