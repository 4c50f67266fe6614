//! The worker process (`microlambda worker`): one embedded CPython that runs jobs and checkpoints them.
//!
//! Threads: the **main thread** initialises the interpreter and runs every job (CPython 3.11 runs pending calls
//! only there, and the checkpoint trigger relies on them); the **control thread** reads commands from stdin and
//! forwards checkpoint requests straight to [`trigger`] (no GIL needed); the **writer thread** owns the protocol
//! stream, and seals checkpoints (compression, MAC) off the job's thread so the job's pause stays short.
//!
//! Architecture invariant: job code never sees fd 1; it is moved aside at start and fd 1 points at stderr, so a
//! job that prints cannot corrupt the protocol.
pub mod frame311;
mod interp;
pub mod trigger;

use crate::checkpoint::{self, CheckpointBody, Envelope, FrameIdentity};
use crate::worker::protocol::{
    read_frame, write_checkpointed, write_frame, CaptureStats, FromWorker, JobError, JobErrorKind, ModuleSpec, ToWorker,
};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList};
use std::io::{BufReader, BufWriter};
use std::os::fd::FromRawFd;
use std::sync::mpsc;
use std::time::Instant;

/// The pickled state of one checkpoint, copied out of Python.
pub(crate) struct CapturedState {
    state: Vec<u8>,
    buffers: Vec<Vec<u8>>,
    frames: Vec<FrameIdentity>,
    stats: CaptureStats,
}

impl CapturedState {
    fn extract(_py: Python<'_>, r: &Bound<'_, PyAny>) -> PyResult<Self> {
        let state_obj = r.get_item(0)?;
        let state = pybuffer_bytes(&state_obj)?;
        let mut buffers = Vec::new();
        for b in r.get_item(1)?.try_iter()? {
            buffers.push(pybuffer_bytes(&b?)?);
        }
        let mut frames = Vec::new();
        for f in r.get_item(2)?.try_iter()? {
            let (module, qualname, firstlineno, code_hash): (String, String, u32, String) = f?.extract()?;
            frames.push(FrameIdentity { module, qualname, firstlineno, code_hash });
        }
        Ok(Self { state, buffers, frames, stats: CaptureStats::default() })
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
    /// The job that checkpoints belong to (set before it runs).
    Job {
        job_id: String,
        module_name: String,
        source_sha256: [u8; 32],
    },
}

/// Commands for the main thread.
enum MainCmd {
    Run { job_id: String, module: ModuleSpec, entry: String, input_json: String },
    Restore { job_id: String, module: ModuleSpec, checkpoint: Vec<u8> },
    Shutdown,
}

/// Entry point of `microlambda worker`. Returns the process exit code.
pub fn worker_main() -> i32 {
    // SAFETY: plain fd syscalls at start-up, before any other thread exists.
    let (proto_out, stdin) = unsafe {
        let fd = libc::dup(1);
        if fd < 0 || libc::dup2(2, 1) < 0 {
            eprintln!("microlambda worker: cannot set up its file descriptors");
            return 2;
        }
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        (std::fs::File::from_raw_fd(fd), std::io::stdin())
    };
    let mut input = BufReader::new(stdin);
    let key = match read_frame::<_, ToWorker>(&mut input) {
        Ok(Some(ToWorker::Hello { key })) => key,
        other => {
            eprintln!("microlambda worker: expected Hello first, got {other:?}");
            return 2;
        }
    };
    let interp = match interp::start() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("microlambda worker: {e}");
            return 3;
        }
    };
    let (out_tx, out_rx) = mpsc::channel::<Outgoing>();
    let envelope = Envelope::new(&key);
    let writer = std::thread::Builder::new()
        .name("ml-writer".into())
        .spawn(move || writer_loop(proto_out, out_rx, Envelope::new(&key)))
        .expect("spawn writer");
    trigger::init(out_tx.clone(), interp.interp);
    let (main_tx, main_rx) = mpsc::channel::<MainCmd>();
    let ctl_out = out_tx.clone();
    std::thread::Builder::new()
        .name("ml-control".into())
        .spawn(move || control_loop(input, main_tx, ctl_out))
        .expect("spawn control");
    let _ = out_tx.send(Outgoing::Msg(FromWorker::Ready { pid: std::process::id(), python: interp.version.clone() }));
    for cmd in main_rx {
        match cmd {
            MainCmd::Shutdown => break,
            MainCmd::Run { job_id, module, entry, input_json } => {
                announce_job(&out_tx, &job_id, &module);
                let msg = Python::attach(|py| run_job(py, &out_tx, &job_id, &module, &entry, &input_json));
                let _ = out_tx.send(Outgoing::Msg(msg));
            }
            MainCmd::Restore { job_id, module, checkpoint } => {
                announce_job(&out_tx, &job_id, &module);
                let msg = Python::attach(|py| restore_job(py, &out_tx, &envelope, &job_id, &module, &checkpoint));
                let _ = out_tx.send(Outgoing::Msg(msg));
            }
        }
    }
    drop(out_tx);
    let _ = writer.join();
    0
}

/// Tell the writer which job the next checkpoints belong to.
fn announce_job(out: &mpsc::Sender<Outgoing>, job_id: &str, module: &ModuleSpec) {
    let _ = out.send(Outgoing::Job {
        job_id: job_id.to_string(),
        module_name: module.module_name.clone(),
        source_sha256: checkpoint::source_digest(&module.source),
    });
}

fn control_loop(mut input: BufReader<std::io::Stdin>, main: mpsc::Sender<MainCmd>, out: mpsc::Sender<Outgoing>) {
    loop {
        match read_frame::<_, ToWorker>(&mut input) {
            Ok(Some(ToWorker::Checkpoint { seq, mode, deadline_ms })) => trigger::request(seq, mode, deadline_ms),
            Ok(Some(ToWorker::Run { job_id, module, entry, input_json, .. })) => {
                let _ = main.send(MainCmd::Run { job_id, module, entry, input_json });
            }
            Ok(Some(ToWorker::Restore { job_id, module, checkpoint })) => {
                let _ = main.send(MainCmd::Restore { job_id, module, checkpoint });
            }
            Ok(Some(ToWorker::Hello { .. })) => {}
            Ok(Some(ToWorker::Shutdown)) | Ok(None) => {
                let _ = main.send(MainCmd::Shutdown);
                // A job may be running: the host closing our stdin means nobody will read the result.
                std::thread::sleep(std::time::Duration::from_millis(200));
                std::process::exit(0);
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
                std::process::exit(2);
            }
        }
    }
}

fn writer_loop(out: std::fs::File, rx: mpsc::Receiver<Outgoing>, envelope: Envelope) {
    let mut w = BufWriter::with_capacity(1 << 16, out);
    let mut job: Option<(String, String, [u8; 32])> = None;
    for item in rx {
        match item {
            Outgoing::Msg(m) => {
                if write_frame(&mut w, &m).is_err() {
                    std::process::exit(0);
                }
            }
            Outgoing::Job { job_id, module_name, source_sha256 } => job = Some((job_id, module_name, source_sha256)),
            Outgoing::Checkpoint { seq, requested, stop, state } => {
                let CapturedState { state, buffers, frames, mut stats } = *state;
                let tw = Instant::now();
                let arrive = requested.elapsed();
                let (job_id, module_name, source_sha256) = job.clone().unwrap_or_default();
                stats.state_bytes = (state.len() + buffers.iter().map(Vec::len).sum::<usize>()) as u64;
                let (state_compression, state) = checkpoint::compress_parts(state);
                let buffers = buffers
                    .into_iter()
                    .map(|b| {
                        let (c, b) = checkpoint::compress_parts(b);
                        (c, serde_bytes::ByteBuf::from(b))
                    })
                    .collect();
                let body = CheckpointBody {
                    python: interp::PYTHON_MINOR.to_string(),
                    job_id,
                    seq,
                    created_unix_ms: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0),
                    module_name,
                    source_sha256,
                    frames,
                    state_compression,
                    state,
                    buffers,
                };
                let t_comp = tw.elapsed();
                let sealed = envelope.seal_parts(&body);
                if std::env::var_os("ML_DEBUG").is_some() {
                    eprintln!("writer: arrive {arrive:?} compress {t_comp:?} seal {:?}", tw.elapsed());
                }
                stats.envelope_bytes = sealed.len() as u64;
                stats.capture_us = requested.elapsed().as_micros() as u64;
                let ok = write_checkpointed(&mut w, seq, &sealed, stats, stop).is_ok();
                if stop || !ok {
                    // SAFETY: ending the process at once is the point of a stop-mode checkpoint: no Python
                    // clean-up, no `finally` blocks run here (they run where the job is restored).
                    unsafe { libc::_exit(0) };
                }
            }
        }
    }
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
) -> FromWorker {
    let failed = |error| FromWorker::Failed { job_id: job_id.to_string(), error };
    let m = match load_module(py, module) {
        Ok(m) => m,
        Err(e) => return failed(e),
    };
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
    // The job counts as running before `Started` is sent: a checkpoint request answering it must find it.
    trigger::job_started();
    let _ = out.send(Outgoing::Msg(FromWorker::Started { job_id: job_id.to_string() }));
    let t = Instant::now();
    let r = f.call1((arg,));
    trigger::job_ended(py);
    finish(py, job_id, r, t)
}

fn finish(py: Python<'_>, job_id: &str, r: PyResult<Bound<'_, PyAny>>, t: Instant) -> FromWorker {
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
            let msg = if e.is_instance_of::<pyo3::exceptions::PySystemExit>(py) {
                format!("the job called sys.exit ({msg})")
            } else {
                msg
            };
            failed(job_error(JobErrorKind::Raised, msg, tb))
        }
    }
}

fn restore_job(
    py: Python<'_>,
    out: &mpsc::Sender<Outgoing>,
    envelope: &Envelope,
    job_id: &str,
    module: &ModuleSpec,
    bytes: &[u8],
) -> FromWorker {
    let t0 = Instant::now();
    let failed = |msg: String| FromWorker::Failed {
        job_id: job_id.to_string(),
        error: job_error(JobErrorKind::Restore, msg, None),
    };
    let body = match envelope.open(bytes) {
        Ok(b) => b,
        Err(e) => return failed(e.to_string()),
    };
    if body.python != interp::PYTHON_MINOR {
        return failed(
            checkpoint::EnvelopeError::PythonMismatch { found: body.python, running: interp::PYTHON_MINOR.into() }
                .to_string(),
        );
    }
    if body.source_sha256 != checkpoint::source_digest(&module.source) || body.module_name != module.module_name {
        return failed(checkpoint::EnvelopeError::SourceMismatch.to_string());
    }
    let seq = body.seq;
    let t_open = t0.elapsed();
    let (state, buffers) = match body.into_parts() {
        Ok(p) => p,
        Err(e) => return failed(e.to_string()),
    };
    let t_parts = t0.elapsed();
    if let Err(e) = load_module(py, module) {
        return FromWorker::Failed { job_id: job_id.to_string(), error: e };
    }
    let t_load = t0.elapsed();
    let rt = py.import("microlambda_rt").expect("runtime loaded at start");
    let data = PyBytes::new(py, &state);
    let bufs = match PyList::new(py, buffers.iter().map(|b| PyByteArray::new(py, b))) {
        Ok(l) => l,
        Err(e) => return failed(e.to_string()),
    };
    let (f, exc) = match rt.getattr("restore").and_then(|r| r.call1((data, bufs))) {
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
        eprintln!("restore: open {:?} parts {:?} load {:?} total {:?}", t_open, t_parts, t_load, t0.elapsed());
    }
    let _ = out.send(Outgoing::Msg(FromWorker::Restored { job_id: job_id.to_string(), seq, restore_us }));
    trigger::job_started(); // before `Started`, as for a fresh run
    let _ = out.send(Outgoing::Msg(FromWorker::Started { job_id: job_id.to_string() }));
    if !exc.is_none() {
        // SAFETY: GIL held; sets the thread's handled exception (what `sys.exception()` gives) before the
        // restored frames resume, as it was when the checkpoint was taken.
        unsafe { pyo3::ffi::PyErr_SetHandledException(exc.as_ptr()) };
    }
    let t = Instant::now();
    let r = f.call0();
    trigger::job_ended(py);
    // SAFETY: GIL held; clear what the job left as handled so the next job starts clean.
    unsafe { pyo3::ffi::PyErr_SetHandledException(std::ptr::null_mut()) };
    finish(py, job_id, r, t)
}
