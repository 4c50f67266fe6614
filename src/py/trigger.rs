//! Checkpoint triggering: from any thread to a snapshot taken on the interpreter's main thread.
//!
//! 1. [`request`] (the worker's control thread, no GIL) queues a pending call and sets the interpreter's eval
//!    breaker itself. A bare `Py_AddPendingCall` from another thread does not set it in 3.11 (the breaker is
//!    computed for the calling thread, CPython issue #95820), nor does `_PyEval_SignalReceived`; waiting for a
//!    GIL switch would cost the switch interval (5 ms). The main thread runs the pending call at its next
//!    eval-breaker check (a loop back-edge, a call or a return), where the breaker is recomputed.
//! 2. The pending call ([`arm`]) installs a C-level tracer and asks for per-instruction events in every frame.
//! 3. At the next trace event ([`tracer`]), the frame's stack pointer is exact: the chain of frames is read
//!    ([`super::frame311::RawFrame`]) and handed to `microlambda_rt.capture`. If that instant is not resumable
//!    (a frame called from C...), the tracer waits for the next event, up to the request's deadline.
//! 4. A wait that lasts is waited *untraced*: while any tracer is installed, CPython 3.11 runs every instruction
//!    of every frame through its tracing path (unspecialised, a line check each), 3-5x slower. A request whose
//!    chain is blocked behind a call from C (`sorted(key=)`, `map`, numpy calling back) or whose state could not
//!    be saved yet is *parked*: the tracer is removed, and the request's poller thread arms it again [`POLL`]
//!    later, through the same pending call. The job runs at full speed between polls. Other waits (an object in
//!    the middle of its own method, an instruction that is not resumable) usually end within a few
//!    instructions: the tracer stays on through them for [`TRACED_WAIT`], then the request parks for its
//!    back-off before it tries again.
//! 5. A wait for a call from C to return has a known end: the instructions the waiting frame goes on at
//!    ([`Plant`], computed by the capture). A *breakpoint* is written there into the code's executed
//!    (adaptive) bytecode: a jump to itself, which checks the eval breaker each time round. The poller pokes
//!    the main thread every [`SPIN_POLL`] ([`poke`]): when it spins on a breakpoint, the original instructions
//!    are put back and the tracer armed, so the checkpoint is taken at the first instant after the call — the
//!    short gaps between two calls into C (`sorted(...)` then `list(map(...))`) are not missed — while the job
//!    ran untraced all along. Breakpoints live only while a request is parked: every arm, the end of the job and
//!    the request's end take them out first, so nothing else (the capture's own reading of `co_code`) sees them.
//!
//! Nothing here costs anything while no checkpoint is requested: the tracer is installed only for a request.
//!
//! Size: one protocol (request, arm, trace, park, plant, poll) over one `State` behind one lock, whose steps
//! schedule each other through CPython pending calls; in several files its invariants would span them all.
use super::frame311::{self, RawFrame};
use super::Outgoing;
use crate::worker::protocol::{CaptureStats, CheckpointError, CheckpointErrorKind, CheckpointMode, FromWorker};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::os::raw::{c_int, c_void};
use std::sync::mpsc::Sender;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

struct Request {
    seq: u64,
    mode: CheckpointMode,
    requested: Instant,
    deadline: Instant,
    waited: u64,
    reason: Option<String>,
    /// The last attempt found state that cannot be saved; retried (it may be transient, like a traceback held
    /// by a library call) until the deadline, with a growing back-off.
    unpicklable: Option<String>,
    retry_after: Option<Instant>,
    backoff: Duration,
    /// The C boundary the last attempt waited on (a frame in a call from C that cannot be resumed): while the
    /// chain still meets C at that same boundary, the answer is the same, and the walk and the capture attempt
    /// are skipped.
    blocked: Option<Boundary>,
    /// Parked: the tracer is off until the poller arms it again at this instant.
    parked_until: Option<Instant>,
    /// Where the frame blocked at `blocked` goes on after its call from C.
    plant: Option<Plant>,
    /// Since when the tracer has been trying every event for this request (waits with no C boundary).
    traced_from: Option<Instant>,
    /// A breakpoint was reached by another frame than the waiting one (code that the call from C runs again):
    /// no more breakpoints for this request, which polls instead.
    no_plant: bool,
}

/// Breakpoints to write for a wait on a call from C: units of `code` and the breakpoint's code unit, for the
/// waiting interpreter frame at `frame`.
struct Plant {
    code: Py<PyAny>,
    units: Vec<usize>,
    value: u16,
    frame: usize,
}

/// A breakpoint written into a code object, with the unit it replaced.
struct Planted {
    _code: Py<PyAny>,
    addr: *mut u16,
    orig: u16,
}

/// The longest wait between two tries of state that could not be saved (a traceback held by a library call):
/// parked requests cost nothing between tries, so they retry often enough to find a short window.
const MAX_BACKOFF: Duration = Duration::from_millis(16);

/// How often a parked request with breakpoints looks whether the job spins on one.
const SPIN_POLL: Duration = Duration::from_micros(200);

/// How long a parked request stays untraced before it looks again.
const POLL: Duration = Duration::from_millis(2);
/// How long the tracer tries every event of a wait that has no C boundary to wait on before it parks for the
/// request's back-off ([`MAX_BACKOFF`] at most), so a job waited for that way runs mostly untraced.
const TRACED_WAIT: Duration = Duration::from_millis(4);

/// A call a wait is for: the caller, the caller's instruction, the called frame and its function (addresses).
/// The callee was entered from C, or it is the outermost frame of an import.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Boundary(usize, usize, usize, usize);

/// The call that made the interpreter frame at `callee`, if it has a caller.
///
/// # Safety
/// `callee` must be a live interpreter frame of the current chain (GIL held).
unsafe fn boundary_of(callee: usize) -> Option<Boundary> {
    unsafe {
        let fr = callee as *mut frame311::InterpFrame;
        let prev = (*fr).previous;
        (!prev.is_null())
            .then(|| Boundary(prev as usize, (*prev).prev_instr as usize, fr as usize, (*fr).f_func as usize))
    }
}

/// Whether the chain of the current trace event still meets `b`: the frame that waited there is still in
/// the same call, so every instant is as unresumable as when it was last tried. A walk of pointers only (a
/// thousand frames of recursion cost microseconds; reading them for a capture costs milliseconds).
///
/// # Safety
/// `frame` must be the frame of the current trace event (GIL held).
unsafe fn chain_meets(frame: *mut ffi::PyFrameObject, b: Boundary) -> bool {
    unsafe {
        let mut fr = frame311::interp_frame(frame);
        loop {
            let prev = (*fr).previous;
            if prev.is_null() {
                return false;
            }
            if fr as usize == b.2 {
                return boundary_of(fr as usize) == Some(b);
            }
            fr = prev;
        }
    }
}

struct PrevTrace {
    func: Option<ffi::Py_tracefunc>,
    obj: *mut ffi::PyObject,
}

struct State {
    job_running: bool,
    active: Option<Request>,
    installed: Option<PrevTrace>,
    planted: Vec<Planted>,
    /// The interpreter frame the breakpoints in `planted` wait for.
    planted_for: usize,
}

// SAFETY: the raw pointer in PrevTrace is only dereferenced on the interpreter's main thread with the GIL held.
unsafe impl Send for State {}

static STATE: Mutex<State> =
    Mutex::new(State { job_running: false, active: None, installed: None, planted: Vec::new(), planted_for: 0 });
static OUT: OnceLock<Sender<Outgoing>> = OnceLock::new();
static INTERP: std::sync::atomic::AtomicPtr<ffi::PyInterpreterState> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// Largest checkpoint (state plus buffers); 0: no cap.
static CHECKPOINT_CAP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub(super) fn init(out: Sender<Outgoing>, interp: *mut ffi::PyInterpreterState, checkpoint_cap: u64) {
    let _ = OUT.set(out);
    CHECKPOINT_CAP.store(checkpoint_cap, std::sync::atomic::Ordering::SeqCst);
    INTERP.store(interp, std::sync::atomic::Ordering::SeqCst);
}

/// Where the checkpoints of a child's own warm-up run go instead of the host ([`divert`]).
static DIVERT: Mutex<Option<Sender<Outgoing>>> = Mutex::new(None);

pub(super) fn send(msg: Outgoing) {
    if let Some(d) = DIVERT.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        let _ = d.send(msg);
        return;
    }
    if let Some(o) = OUT.get() {
        let _ = o.send(msg);
    }
}

/// Send what the trigger reports to `to` instead of the host, until called with None: a fresh child's warm-up
/// (`warm::warm_restore_path`) takes a checkpoint of its own run and restores it, before it says it is ready.
pub(super) fn divert(to: Option<Sender<Outgoing>>) {
    *DIVERT.lock().unwrap_or_else(|e| e.into_inner()) = to;
}

/// `_mlrs.warm_checkpoint()`: the warm-up's run asks for a snapshot of itself. Only while the trigger is
/// diverted (the warm-up): a job calling it is ignored, so it cannot send the host checkpoints nobody asked for.
#[pyfunction]
pub fn warm_checkpoint() {
    if DIVERT.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
        request(WARM_SEQ, CheckpointMode::Continue, 1000);
    }
}

/// The sequence number of the warm-up's checkpoint (a job's start at 1).
pub(super) const WARM_SEQ: u64 = u64::MAX;

fn fail(seq: u64, kind: CheckpointErrorKind, message: String) {
    fail_after(seq, kind, message, None);
}

fn fail_after(seq: u64, kind: CheckpointErrorKind, message: String, waited_for: Option<String>) {
    send(Outgoing::Msg(FromWorker::CheckpointFailed { seq, error: CheckpointError { kind, message, waited_for } }));
}

fn lock() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Called from the control thread.
pub fn request(seq: u64, mode: CheckpointMode, deadline_ms: u64) {
    let now = Instant::now();
    {
        let mut st = lock();
        if !st.job_running {
            drop(st);
            return fail(seq, CheckpointErrorKind::NoJob, "no job is running".into());
        }
        if st.active.is_some() {
            drop(st);
            return fail(seq, CheckpointErrorKind::Internal, "another checkpoint is in progress".into());
        }
        st.active = Some(Request {
            seq,
            mode,
            requested: now,
            deadline: now + Duration::from_millis(deadline_ms),
            waited: 0,
            reason: None,
            unpicklable: None,
            retry_after: None,
            backoff: Duration::from_millis(1),
            blocked: None,
            parked_until: None,
            traced_from: None,
            plant: None,
            no_plant: false,
        });
    }
    schedule_arm();
    std::thread::spawn(move || poll(seq));
}

/// Ask the main thread to run [`arm`] at its next eval-breaker check (once: an arm already queued will do).
fn schedule_arm() {
    schedule_once(&ARM_QUEUED, arm);
}

/// Ask the main thread to run [`poke`] (once: a poke already queued will do).
fn schedule_poke() {
    schedule_once(&POKE_QUEUED, poke);
}

/// Queue `call` unless `queued` says it already is (the call clears it when it runs). Already queued, the eval
/// breaker is set again: another thread taking the GIL recomputes it for itself, a thread that cannot run
/// pending calls, and clears it (CPython issue #95820 again), so a queued call could wait for the next one
/// queued (a poke 2 ms late, the job spinning on its breakpoint meanwhile).
fn schedule_once(queued: &std::sync::atomic::AtomicBool, call: extern "C" fn(*mut c_void) -> c_int) {
    if queued.swap(true, std::sync::atomic::Ordering::SeqCst) {
        // SAFETY: stores atomics of the (main, never freed) interpreter.
        unsafe { frame311::set_eval_breaker(INTERP.load(std::sync::atomic::Ordering::SeqCst)) };
    } else if !schedule(call) {
        queued.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Our pending calls queued and not yet run: at most one of each is ever queued. CPython's queue has 32 slots;
/// a poke every 0.2 ms while the main thread sat in a long C call filled it, and the arm that was to take the
/// breakpoints out at a request's end was dropped: the job then spun on a breakpoint for ever.
static ARM_QUEUED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static POKE_QUEUED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the call was queued (CPython's queue may be full: 100 tries 0.1 ms apart).
fn schedule(call: extern "C" fn(*mut c_void) -> c_int) -> bool {
    // SAFETY: Py_AddPendingCall may be called from any thread without the GIL; set_eval_breaker only stores
    // atomics of the (main, never freed) interpreter.
    unsafe {
        let mut tries = 0;
        let mut queued = ffi::Py_AddPendingCall(Some(call), std::ptr::null_mut()) == 0;
        while !queued && tries < 100 {
            tries += 1;
            std::thread::sleep(Duration::from_micros(100));
            queued = ffi::Py_AddPendingCall(Some(call), std::ptr::null_mut()) == 0;
        }
        frame311::set_eval_breaker(INTERP.load(std::sync::atomic::Ordering::SeqCst));
        queued
    }
}

/// The poller of the latest request, woken when breakpoints are written (see [`park`]).
static POLLER: Mutex<Option<std::thread::Thread>> = Mutex::new(None);

/// The request's own thread: arms a parked request again when its park ends, and fails it at its deadline
/// (a tracer still installed then removes itself at its next event, finding no request).
fn poll(seq: u64) {
    *POLLER.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::thread::current());
    loop {
        let now = Instant::now();
        let mut st = lock();
        let traced = st.installed.is_some();
        let Some(r) = st.active.as_mut().filter(|r| r.seq == seq) else {
            // The tracer holds the request while it looks at an instant (the tracer is installed then, and
            // the request comes back or ends): only a request gone with no tracer left has ended.
            if st.active.is_none() && st.installed.is_some() {
                drop(st);
                std::thread::park_timeout(POLL); // woken if that look parks the request with breakpoints
                continue;
            }
            // Ended: no breakpoint may outlive its request (an arm, finding none, takes them out).
            if !st.planted.is_empty() {
                drop(st);
                schedule_arm();
            }
            return;
        };
        if now >= r.deadline {
            let r = st.active.take().expect("checked above");
            let planted = !st.planted.is_empty();
            drop(st);
            if planted {
                schedule_arm(); // finds no request: takes the breakpoints out
            }
            return fail_at_deadline(&r);
        }
        let wake = r.parked_until.is_some_and(|t| now >= t);
        if wake {
            r.parked_until = None;
        }
        // Neither parked nor traced: its arm ran while the tracer of the request before it was still installed
        // (inside that one's capture, which runs Python) and did nothing. Arm it again.
        let unarmed = !wake && r.parked_until.is_none() && !traced;
        let mut next = r.parked_until.unwrap_or(now + POLL).min(r.deadline);
        let spinning = !wake && !st.planted.is_empty();
        if spinning {
            next = next.min(now + SPIN_POLL);
        }
        drop(st);
        if wake || unarmed {
            schedule_arm();
        } else if spinning {
            schedule_poke();
        }
        // Woken early when breakpoints are written: the job may reach one within microseconds, and it spins
        // there until a poke (a generator driven through C by zip() comes back after each item).
        std::thread::park_timeout(next.saturating_duration_since(Instant::now()).max(Duration::from_micros(50)));
    }
}

fn fail_at_deadline(r: &Request) {
    match &r.unpicklable {
        Some(msg) => fail(r.seq, CheckpointErrorKind::Unpicklable, msg.clone()),
        None => fail(r.seq, CheckpointErrorKind::Deadline, deadline_message(r)),
    }
}

fn deadline_message(r: &Request) -> String {
    match &r.reason {
        Some(why) => format!("no resumable instant within the deadline ({} events waited; last: {why})", r.waited),
        None => "no resumable instant within the deadline: the job is inside a long call into C".into(),
    }
}

/// The main thread starts running job code.
pub fn job_started() {
    lock().job_running = true;
}

/// The main thread returned from job code (GIL held).
pub fn job_ended(_py: Python<'_>) {
    unplant_all();
    let (req, prev) = {
        let mut st = lock();
        st.job_running = false;
        (st.active.take(), st.installed.take())
    };
    if let Some(prev) = prev {
        // SAFETY: main thread, GIL held.
        unsafe { restore_trace(prev) };
    }
    if let Some(r) = req {
        // Only state that cannot be saved is worth telling: a wait for a call that was about to return is not.
        let waited_for = r.unpicklable.map(|why| format!("{} events waited; last: {why}", r.waited));
        fail_after(
            r.seq,
            CheckpointErrorKind::NoJob,
            "the job ended before a checkpoint could be taken".into(),
            waited_for,
        );
    }
}

unsafe fn restore_trace(prev: PrevTrace) {
    unsafe {
        ffi::PyEval_SetTrace(prev.func, prev.obj);
        if !prev.obj.is_null() {
            ffi::Py_DECREF(prev.obj);
        }
    }
}

fn uninstall() {
    let prev = lock().installed.take();
    if let Some(prev) = prev {
        // SAFETY: only called from the tracer, on the main thread with the GIL held.
        unsafe { restore_trace(prev) };
    }
}

/// The pending call: runs on the main thread, inside the eval loop, GIL held.
extern "C" fn arm(_: *mut c_void) -> c_int {
    ARM_QUEUED.store(false, std::sync::atomic::Ordering::SeqCst);
    unplant_all();
    let mut st = lock();
    if !st.job_running || st.installed.is_some() {
        return 0;
    }
    if st.active.as_ref().is_none_or(|r| r.parked_until.is_some()) {
        return 0;
    }
    // SAFETY: main thread with the GIL (pending calls run only there); tstate fields read at checked offsets.
    unsafe {
        let ts = ffi::PyThreadState_Get() as *const u8;
        let func: Option<ffi::Py_tracefunc> =
            std::ptr::read_unaligned(ts.add(frame311::TSTATE_C_TRACEFUNC) as *const Option<ffi::Py_tracefunc>);
        let obj: *mut ffi::PyObject = std::ptr::read_unaligned(ts.add(frame311::TSTATE_C_TRACEOBJ) as *const _);
        if !obj.is_null() {
            ffi::Py_INCREF(obj);
        }
        st.installed = Some(PrevTrace { func, obj });
        drop(st);
        ffi::PyEval_SetTrace(Some(tracer), std::ptr::null_mut());
        let mut f = ffi::PyEval_GetFrame();
        let mut owned = false;
        while !f.is_null() {
            frame311::set_trace_opcodes(f);
            let back = ffi::PyFrame_GetBack(f);
            if owned {
                ffi::Py_DECREF(f as *mut ffi::PyObject);
            }
            f = back;
            owned = true;
        }
    }
    0
}

/// The pending call of a parked request with breakpoints: if the main thread spins on one, the job has come
/// back from its call into C; take the breakpoints out and arm the tracer, which fires before the instruction
/// that was replaced.
///
/// A breakpoint reached by another frame (the code waited in runs again inside the call from C: recursion
/// through C, as an `lru_cache`d function calling itself) would make every such return spin until a poke: the
/// breakpoints are taken out and the request polls for the rest of its life.
extern "C" fn poke(_: *mut c_void) -> c_int {
    POKE_QUEUED.store(false, std::sync::atomic::Ordering::SeqCst);
    // SAFETY: pending calls run on the main thread with the GIL.
    let here = unsafe { frame311::current_frame_and_instr() };
    let hit = {
        let mut st = lock();
        let hit = here.filter(|(_, at)| st.planted.iter().any(|p| p.addr == *at));
        if let Some((frame, _)) = hit {
            let ours = frame == st.planted_for;
            if let Some(r) = st.active.as_mut() {
                if ours {
                    r.parked_until = None;
                } else {
                    r.no_plant = true;
                    r.plant = None;
                }
            }
        }
        hit
    };
    match hit {
        Some(_) => arm(std::ptr::null_mut()), // takes the breakpoints out; arms the tracer only when ours
        None => 0,
    }
}

/// Write the breakpoints of `plant` (main thread, GIL held).
fn plant_all(py: Python<'_>, plant: &Plant) {
    let mut st = lock();
    if st.planted.is_empty() {
        st.planted_for = plant.frame;
    } else if st.planted_for != plant.frame {
        return; // breakpoints of one waiting frame at a time
    }
    for &unit in &plant.units {
        // SAFETY: the code object is alive (held by `plant` and by each Planted), GIL held: the interpreter
        // itself writes these units (quickening) under the same lock.
        unsafe {
            let Some(addr) = frame311::code_unit(plant.code.as_ptr(), unit) else { continue };
            if st.planted.iter().any(|p| p.addr == addr) {
                continue;
            }
            st.planted.push(Planted { _code: plant.code.clone_ref(py), addr, orig: *addr });
            *addr = plant.value;
        }
    }
}

/// Put back every unit a breakpoint replaced (main thread, GIL held).
fn unplant_all() {
    let planted = std::mem::take(&mut lock().planted);
    for p in planted.iter().rev() {
        // SAFETY: as in plant_all; the code object is still held by `p`.
        unsafe { *p.addr = p.orig };
    }
}

const PY_TRACE_CALL: c_int = 0;
const PY_TRACE_LINE: c_int = 2;
const PY_TRACE_OPCODE: c_int = 7;

unsafe extern "C" fn tracer(
    _obj: *mut ffi::PyObject,
    frame: *mut ffi::PyFrameObject,
    what: c_int,
    _arg: *mut ffi::PyObject,
) -> c_int {
    // Snapshots are taken only in LINE and OPCODE events: the eval loop flushes the exact stack pointer just
    // before them. A CALL event only asks for opcode events in the new frame.
    match what {
        PY_TRACE_CALL => {
            unsafe { frame311::set_trace_opcodes(frame) };
            return 0;
        }
        PY_TRACE_LINE | PY_TRACE_OPCODE => {}
        _ => return 0,
    }
    // SAFETY: trace functions run on the thread that holds the GIL.
    let py = unsafe { Python::assume_attached() };
    let req = {
        let mut st = lock();
        if st.installed.is_none() {
            // An event after the tracer was taken out: CPython 3.11 can call it once more for the instruction it
            // was at (a line event, then that instruction's opcode event). Not ours to act on: taking the
            // request now would let the poller, seeing neither a request nor a tracer, take it for ended and
            // stop arming it (a held value's wait was never answered: the poller had gone).
            return 0;
        }
        st.active.take()
    };
    let Some(req) = req else {
        uninstall();
        return 0;
    };
    if let Some(t) = req.retry_after.filter(|t| Instant::now() < *t) {
        park(py, req, t);
        return 0;
    }
    // SAFETY: the frame of this trace event. A held value's wait whose breakpoints were taken out tries again
    // (see Outcome::Held).
    let held_unplanted = req.no_plant && req.unpicklable.is_some();
    if !held_unplanted && req.blocked.is_some_and(|b| unsafe { chain_meets(frame, b) }) {
        let mut req = req;
        req.waited += 1;
        park(py, req, Instant::now() + POLL);
        return 0;
    }
    unsafe { attempt(py, frame, req) };
    0
}

enum Outcome {
    Taken,
    /// Not resumable here; with the boundary when it is a call from C that must return first (and where the
    /// waiting frame goes on after it, when breakpoints can be written there).
    Wait(String, Option<(Boundary, Option<Plant>)>),
    /// State that cannot be saved, held by a frame that is not the job's entry: a wait for that frame to return
    /// (every try in between would pickle the state again to find the same), reported as unpicklable if the
    /// deadline comes first.
    Held(String, Option<(Boundary, Option<Plant>)>),
    Failed(CheckpointErrorKind, String),
}

unsafe fn attempt(py: Python<'_>, frame: *mut ffi::PyFrameObject, mut req: Request) {
    let t0 = Instant::now();
    let outcome = match unsafe { walk(py, frame) } {
        Err(why) => Outcome::Wait(why, None),
        Ok(mut chain) => {
            let r = capture(py, &chain, &req, t0, frame);
            for f in chain.iter_mut() {
                f.borrow_mut(py).invalidate();
            }
            chain.clear();
            r
        }
    };
    match outcome {
        Outcome::Taken => {
            if req.mode == CheckpointMode::Stop {
                // The writer thread sends the checkpoint and ends the process; the job must not run on.
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            uninstall();
        }
        Outcome::Wait(why, blocked) => unsafe { wait(py, frame, req, t0, why, blocked) },
        // Only with a breakpoint where the holder's caller goes on: without one, the wait would poll by the
        // boundary alone, and a loop calling the holder again from the same instruction (a new frame at the same
        // address) would look like the same call until the deadline; the back-off retry finds the gaps.
        Outcome::Held(msg, Some(blocked)) if blocked.1.is_some() && !req.no_plant => {
            req.unpicklable = Some(msg.clone());
            unsafe { wait(py, frame, req, t0, msg, Some(blocked)) }
        }
        Outcome::Held(msg, _) | Outcome::Failed(CheckpointErrorKind::Unpicklable, msg) => {
            req.waited += 1;
            req.reason = Some(msg.clone());
            req.unpicklable = Some(msg);
            let retry = Instant::now() + req.backoff;
            req.retry_after = Some(retry);
            req.backoff = (req.backoff * 2).min(MAX_BACKOFF);
            (req.blocked, req.plant) = (None, None);
            req.traced_from = None; // a later wait with no C boundary gets its own TRACED_WAIT
            park(py, req, retry);
        }
        Outcome::Failed(kind, msg) => {
            fail(req.seq, kind, msg);
            uninstall();
        }
    }
}

/// Go on waiting after an attempt that found no resumable instant: parked on the boundary it met (a call that
/// must return first), traced for a few more events, or parked for the back-off when traced tries last.
///
/// # Safety
/// `frame` is the frame of the current trace event (GIL held).
unsafe fn wait(
    py: Python<'_>,
    frame: *mut ffi::PyFrameObject,
    mut req: Request,
    t0: Instant,
    why: String,
    blocked: Option<(Boundary, Option<Plant>)>,
) {
    req.waited += 1;
    (req.blocked, req.plant) = match blocked {
        Some((b, plant)) => (Some(b), plant),
        None => (None, None),
    };
    req.reason = Some(why);
    if req.blocked.is_some() {
        req.traced_from = None;
        park(py, req, Instant::now() + POLL);
    } else if t0.duration_since(*req.traced_from.get_or_insert(t0)) >= TRACED_WAIT {
        // Traced, the job runs tens of times slower: a wait that lasts goes on untraced, with the back-off of a
        // retry, instead of slowing the job until the deadline (06_osmnx_stats ran 350 s instead of 7 s under
        // --preempt-every 300 that way, when a generator driven through C was such a wait; it now waits on a
        // breakpoint like a call from C).
        req.traced_from = None;
        let until = Instant::now() + req.backoff;
        req.backoff = (req.backoff * 2).min(MAX_BACKOFF);
        park(py, req, until);
    } else {
        requeue(frame, req);
    }
}

/// Wait untraced until `until` (the request's poller arms the tracer again), or fail at the deadline. A wait
/// for a call from C also writes its breakpoints (see the module's notes).
fn park(py: Python<'_>, mut req: Request, until: Instant) {
    if Instant::now() >= req.deadline {
        fail_at_deadline(&req);
    } else {
        req.parked_until = Some(until.min(req.deadline));
        let plant = req.blocked.and(req.plant.as_ref()).filter(|_| !req.no_plant);
        if let Some(plant) = plant {
            plant_all(py, plant);
        }
        let planted = plant.is_some();
        lock().active = Some(req); // before the tracer goes: the poller then always sees one of the two
        if planted {
            if let Some(t) = POLLER.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                t.unpark(); // to its spin cadence now, not at the end of its current sleep
            }
        }
    }
    uninstall();
}

fn requeue(frame: *mut ffi::PyFrameObject, req: Request) {
    if Instant::now() >= req.deadline {
        fail_at_deadline(&req);
        uninstall();
    } else {
        lock().active = Some(req);
        // SAFETY: the frame of the current trace event.
        unsafe { frame311::set_trace_opcodes(frame) };
    }
}

/// Read the chain of frames from the innermost to the job's entry frame (the one with no previous frame: jobs
/// are called straight from Rust). Whether a frame entered from C can be resumed (a stateless trampoline, a
/// generator driven by a loop) is decided in Python, from the caller's instruction and operands.
unsafe fn walk(py: Python<'_>, frame: *mut ffi::PyFrameObject) -> Result<Vec<Py<RawFrame>>, String> {
    let null = null_sentinel(py);
    let mut out = Vec::new();
    unsafe {
        let mut fr = frame311::interp_frame(frame);
        loop {
            let prev = (*fr).previous;
            if prev.is_null() && !(*fr).is_entry {
                return Err("the entry frame is not an entry".into());
            }
            let raw = RawFrame::read(py, fr, &null).map_err(|e| e.to_string())?;
            out.push(Py::new(py, raw).map_err(|e| e.to_string())?);
            if prev.is_null() {
                break;
            }
            fr = prev;
        }
    }
    Ok(out)
}

/// The runtime package, from `sys.modules`. Not through `import`: that looks `__import__` up in the builtins of
/// the frame the trace event is in, and code run by `eval(expr, {"__builtins__": {}})` has none (KeyError).
fn runtime(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let name = pyo3::types::PyString::new(py, "microlambda_rt");
    // SAFETY: GIL held; PyImport_GetModule returns a new reference or NULL.
    let m = unsafe { ffi::PyImport_GetModule(name.as_ptr()) };
    if m.is_null() {
        return Err(
            PyErr::take(py).unwrap_or_else(|| pyo3::exceptions::PyImportError::new_err("microlambda_rt is not loaded"))
        );
    }
    // SAFETY: a new, non-NULL reference.
    Ok(unsafe { Bound::from_owned_ptr(py, m) })
}

fn null_sentinel(py: Python<'_>) -> Py<PyAny> {
    static NULL: OnceLock<Py<PyAny>> = OnceLock::new();
    NULL.get_or_init(|| runtime(py).and_then(|m| m.getattr("NULL")).map(|o| o.unbind()).expect("runtime loaded"))
        .clone_ref(py)
}

/// A first safe point later than this after the request, with nothing waited past, means the job was inside a
/// call into C when it was asked (the trigger itself takes tens of microseconds).
const IN_C_AFTER: Duration = Duration::from_millis(2);

/// Where a frame stands, for a person: `qualname (file:line)`.
///
/// # Safety
/// `frame` must be a live frame object (GIL held).
unsafe fn position(py: Python<'_>, frame: *mut ffi::PyFrameObject) -> String {
    unsafe {
        let line = ffi::PyFrame_GetLineNumber(frame);
        let code = Bound::from_owned_ptr(py, ffi::PyFrame_GetCode(frame) as *mut ffi::PyObject);
        let name = code.getattr("co_qualname").map(|n| n.to_string()).unwrap_or_default();
        let file = code.getattr("co_filename").map(|n| n.to_string()).unwrap_or_default();
        format!("{name} ({file}:{line})")
    }
}

/// The boundary a WaitForReturn waits on (where the waiting frame's callee was entered from C), and the
/// breakpoints: the code of the waiting frame and the units it goes on at.
fn wait_plant(
    py: Python<'_>,
    chain: &[Py<RawFrame>],
    e: &Bound<'_, pyo3::exceptions::PyBaseException>,
) -> Option<(Boundary, Option<Plant>)> {
    let index: usize = e.getattr("index").ok()?.extract().ok()?;
    let callee = chain.get(index.checked_sub(1)?)?.borrow(py).addr();
    // SAFETY: the chain was read in this trace event; its frames are live.
    let boundary = unsafe { boundary_of(callee) }?;
    Some((boundary, plant_of(py, chain, index, e)))
}

fn plant_of(
    py: Python<'_>,
    chain: &[Py<RawFrame>],
    index: usize,
    e: &Bound<'_, pyo3::exceptions::PyBaseException>,
) -> Option<Plant> {
    let units: Vec<usize> = e.getattr("units").ok()?.extract().ok()?;
    let value: u16 = e.getattr("breakpoint").ok()?.extract().ok()?;
    let waiting = chain.get(index)?.bind(py);
    let code = waiting.getattr("code").ok()?.unbind();
    // Recursion through C: the waiting frame's code runs again inside the call it waits on; every return of a
    // deeper frame would reach the breakpoint. Such a wait polls instead.
    let again = chain[..index].iter().any(|f| f.bind(py).getattr("code").is_ok_and(|c| c.is(&code)));
    let frame = waiting.borrow().addr();
    (!units.is_empty() && !again).then_some(Plant { code, units, value, frame })
}

fn capture(
    py: Python<'_>,
    chain: &[Py<RawFrame>],
    req: &Request,
    t0: Instant,
    frame: *mut ffi::PyFrameObject,
) -> Outcome {
    let rt = match runtime(py) {
        Ok(m) => m,
        Err(e) => return Outcome::Failed(CheckpointErrorKind::Internal, e.to_string()),
    };
    let list = match PyList::new(py, chain.iter().map(|f| f.clone_ref(py))) {
        Ok(l) => l,
        Err(e) => return Outcome::Failed(CheckpointErrorKind::Internal, e.to_string()),
    };
    let exc = frame311::thread_exception(py);
    match rt.getattr("capture").and_then(|f| f.call1((list, exc))) {
        Ok(r) => match super::CapturedState::extract(py, &r) {
            Ok(state) if state.over(CHECKPOINT_CAP.load(std::sync::atomic::Ordering::SeqCst)).is_some() => {
                let size = state.over(CHECKPOINT_CAP.load(std::sync::atomic::Ordering::SeqCst)).unwrap_or(0);
                Outcome::Failed(
                    CheckpointErrorKind::TooLarge,
                    format!("the job's state is {size} bytes, over the node's cap (node.limits.checkpoint_bytes)"),
                )
            }
            Ok(mut state) => {
                let now = Instant::now();
                let baseline_us = state.stats.baseline_us;
                state.stats = CaptureStats {
                    trigger_us: (t0 - req.requested).as_micros() as u64,
                    pause_us: ((now - t0).as_micros() as u64).saturating_sub(baseline_us.unwrap_or(0)),
                    baseline_us,
                    waited_events: req.waited,
                    waited_reason: req.reason.clone().or_else(|| {
                        (t0 - req.requested > IN_C_AFTER).then(|| {
                            // SAFETY: the frame of the current trace event.
                            let at = unsafe { position(py, frame) };
                            format!("inside a call into C that returned to {at}")
                        })
                    }),
                    frames: chain.len() as u32,
                    ..Default::default()
                };
                send(Outgoing::Checkpoint {
                    seq: req.seq,
                    requested: req.requested,
                    stop: req.mode == CheckpointMode::Stop,
                    state: Box::new(state),
                });
                Outcome::Taken
            }
            Err(e) => Outcome::Failed(CheckpointErrorKind::Internal, e.to_string()),
        },
        Err(e) => {
            let name = e.get_type(py).name().map(|n| n.to_string()).unwrap_or_default();
            let msg = e.value(py).to_string();
            match name.as_str() {
                "NotResumable" => Outcome::Wait(msg, None),
                "WaitForReturn" => Outcome::Wait(msg, wait_plant(py, chain, e.value(py))),
                "HeldUntilReturn" => Outcome::Held(msg, wait_plant(py, chain, e.value(py))),
                "CheckpointError" => Outcome::Failed(CheckpointErrorKind::Unpicklable, msg),
                _ => {
                    if std::env::var_os("ML_DEBUG").is_some() {
                        e.display(py);
                    }
                    Outcome::Failed(CheckpointErrorKind::Internal, format!("{name}: {msg}"))
                }
            }
        }
    }
}
