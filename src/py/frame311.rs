//! CPython 3.11 frame layout: the only Rust code that knows the interpreter's internal structures.
//!
//! Offsets were read with `offsetof` against the installed `internal/pycore_frame.h` and are checked again at
//! worker start ([`self_check`]) against the public API, so a mismatched build fails loudly instead of reading
//! garbage. Adding 3.12 or 3.13 means another module like this one (their frames differ) and a switch in
//! `interp.rs`.
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use std::os::raw::{c_char, c_int};
use std::sync::atomic::{AtomicBool, Ordering};

/// `_PyInterpreterFrame` (Include/internal/pycore_frame.h, 3.11).
#[repr(C)]
pub struct InterpFrame {
    pub f_func: *mut ffi::PyObject,
    pub f_globals: *mut ffi::PyObject,
    pub f_builtins: *mut ffi::PyObject,
    pub f_locals: *mut ffi::PyObject,
    pub f_code: *mut ffi::PyObject,
    pub frame_obj: *mut ffi::PyObject,
    pub previous: *mut InterpFrame,
    pub prev_instr: *mut u16,
    pub stacktop: c_int,
    pub is_entry: bool,
    pub owner: c_char,
    pub localsplus: [*mut ffi::PyObject; 0],
}

const _: () = {
    assert!(std::mem::offset_of!(InterpFrame, f_globals) == 8);
    assert!(std::mem::offset_of!(InterpFrame, f_code) == 32);
    assert!(std::mem::offset_of!(InterpFrame, previous) == 48);
    assert!(std::mem::offset_of!(InterpFrame, prev_instr) == 56);
    assert!(std::mem::offset_of!(InterpFrame, stacktop) == 64);
    assert!(std::mem::offset_of!(InterpFrame, is_entry) == 68);
    assert!(std::mem::offset_of!(InterpFrame, owner) == 69);
    assert!(std::mem::offset_of!(InterpFrame, localsplus) == 72);
};

pub const FRAME_OWNED_BY_GENERATOR: c_char = 1;
/// `PyFrameObject.f_frame`.
const FRAMEOBJ_F_FRAME: usize = 24;
/// `PyFrameObject.f_trace_opcodes` (a char).
const FRAMEOBJ_TRACE_OPCODES: usize = 45;
/// `PyCodeObject.co_nlocalsplus` (int).
const CODE_NLOCALSPLUS: usize = 76;
/// `PyCodeObject.co_stacksize` (int).
const CODE_STACKSIZE: usize = 68;
/// `PyCodeObject.co_code_adaptive` (the code units start here).
const CODE_ADAPTIVE: usize = 184;
/// `PyGenObject.gi_exc_state.exc_value`.
const GEN_EXC_VALUE: usize = 48;
/// `PyGenObject.gi_frame_state` (int8).
const GEN_FRAME_STATE: usize = 75;
/// `PyGenObject.gi_iframe`.
const GEN_IFRAME: usize = 80;
/// `PyThreadState.c_tracefunc` / `c_traceobj`.
pub const TSTATE_C_TRACEFUNC: usize = 72;
pub const TSTATE_C_TRACEOBJ: usize = 88;
/// `PyThreadState.exc_info` (pointer to the topmost `_PyErr_StackItem {exc_value, previous_item}`).
const TSTATE_EXC_INFO: usize = 120;

/// A new strong reference to a borrowed, non-NULL pointer.
///
/// # Safety
/// `p` must be a live object and the GIL held.
unsafe fn borrowed(py: Python<'_>, p: *mut ffi::PyObject) -> Py<PyAny> {
    unsafe { Bound::from_borrowed_ptr(py, p).unbind() }
}

/// `PyInterpreterState.ceval.eval_breaker` (an atomic int).
const INTERP_EVAL_BREAKER: usize = 100;
/// `PyInterpreterState.ceval.pending.calls_to_do`.
const INTERP_CALLS_TO_DO: usize = 120;

/// Make the main thread look at its pending calls at its next eval-breaker check. Safe from any thread: an
/// atomic store into the (never freed) main interpreter. Returns false when no pending call is queued, which
/// would mean the layout is not the one this module was written for.
///
/// # Safety
/// `interp` must be the main interpreter.
pub unsafe fn set_eval_breaker(interp: *mut ffi::PyInterpreterState) -> bool {
    use std::sync::atomic::{AtomicI32, Ordering};
    unsafe {
        let base = interp as *mut u8;
        let calls = &*(base.add(INTERP_CALLS_TO_DO) as *const AtomicI32);
        let breaker = &*(base.add(INTERP_EVAL_BREAKER) as *const AtomicI32);
        breaker.store(1, Ordering::SeqCst);
        calls.load(Ordering::SeqCst) != 0
    }
}

unsafe fn field<T: Copy>(base: *const u8, off: usize) -> T {
    // SAFETY: callers pass a live object of the right type and an offset inside it.
    unsafe { (base.add(off) as *const T).read_unaligned() }
}

/// The interpreter frame of a frame object.
///
/// # Safety
/// `f` must be a live `PyFrameObject`.
pub unsafe fn interp_frame(f: *mut ffi::PyFrameObject) -> *mut InterpFrame {
    unsafe { field(f as *const u8, FRAMEOBJ_F_FRAME) }
}

/// Ask for an OPCODE trace event at every instruction of this frame.
///
/// # Safety
/// `f` must be a live `PyFrameObject`.
pub unsafe fn set_trace_opcodes(f: *mut ffi::PyFrameObject) {
    unsafe { *(f as *mut u8).add(FRAMEOBJ_TRACE_OPCODES) = 1 };
}

unsafe fn nlocalsplus(code: *mut ffi::PyObject) -> usize {
    unsafe { field::<c_int>(code as *const u8, CODE_NLOCALSPLUS) as usize }
}

unsafe fn first_instr(code: *mut ffi::PyObject) -> *const u16 {
    unsafe { (code as *const u8).add(CODE_ADAPTIVE) as *const u16 }
}

/// The code unit `unit` of a code object's adaptive (quickened, executed) bytecode, or None past its end.
///
/// # Safety
/// `code` must be a live code object (GIL held); the pointer is valid while the code object lives.
pub unsafe fn code_unit(code: *mut ffi::PyObject, unit: usize) -> Option<*mut u16> {
    unsafe {
        let units = ffi::Py_SIZE(code) as usize; // a 3.11 code object's size is its number of code units
        (unit < units).then(|| first_instr(code).add(unit) as *mut u16)
    }
}

/// The current thread's innermost interpreter frame (its address) and its `prev_instr`, if it has one.
///
/// # Safety
/// GIL held.
pub unsafe fn current_frame_and_instr() -> Option<(usize, *mut u16)> {
    unsafe {
        let f = ffi::PyEval_GetFrame();
        (!f.is_null()).then(|| {
            let fr = interp_frame(f);
            (fr as usize, (*fr).prev_instr)
        })
    }
}

/// Index (in code units) of the frame's `prev_instr`.
///
/// # Safety
/// `fr` must be a live interpreter frame.
pub unsafe fn unit_of(fr: *const InterpFrame) -> isize {
    unsafe { (*fr).prev_instr.cast_const().offset_from(first_instr((*fr).f_code)) }
}

/// Opcode (possibly specialised) of the unit at `prev_instr`.
///
/// # Safety
/// `fr` must be a live interpreter frame.
pub unsafe fn prev_opcode(fr: *const InterpFrame) -> u8 {
    unsafe { (*(*fr).prev_instr & 0xff) as u8 }
}

/// The handled exception at the bottom of the thread's exception stack (what `sys.exception()` gives outside
/// any running generator). Returns a new reference or None.
pub fn thread_exception(py: Python<'_>) -> Py<PyAny> {
    // SAFETY: we hold the GIL; the exc_info chain is the interpreter's own and stays put while we read it.
    unsafe {
        let ts = ffi::PyThreadState_Get() as *const u8;
        let mut item: *const *mut ffi::PyObject = field(ts, TSTATE_EXC_INFO);
        loop {
            let prev: *const *mut ffi::PyObject = *(item.add(1) as *const *const *mut ffi::PyObject);
            if prev.is_null() {
                break;
            }
            item = prev;
        }
        let v = *item;
        if v.is_null() {
            py.None()
        } else {
            borrowed(py, v)
        }
    }
}

/// A frame as seen during one trace event. Valid only inside that event: [`RawFrame::invalidate`] is called
/// before the tracer returns, after which reading the stack fails.
#[pyclass(unsendable, module = "_mlrs")]
pub struct RawFrame {
    ptr: *mut InterpFrame,
    #[pyo3(get)]
    code: Py<PyAny>,
    #[pyo3(get)]
    func: Py<PyAny>,
    #[pyo3(get)]
    globals: Py<PyAny>,
    /// `prev_instr` in code units from the start of the code.
    #[pyo3(get)]
    unit: isize,
    /// Stack depth when `stacktop` is valid, else -1.
    #[pyo3(get)]
    stacktop: isize,
    #[pyo3(get)]
    is_entry: bool,
    #[pyo3(get)]
    owner: i32,
    /// Locals, cells and free variables (`localsplus[:nlocalsplus]`), NULL as `microlambda_rt.NULL`.
    #[pyo3(get)]
    locals: Py<PyList>,
    /// The generator object owning this frame, if any.
    #[pyo3(get)]
    gen: Py<PyAny>,
    #[pyo3(get)]
    gen_exc: Py<PyAny>,
    nlp: usize,
    null: Py<PyAny>,
}

impl RawFrame {
    /// Read a frame. `stack_valid` says whether `stacktop` may be trusted for this frame.
    ///
    /// # Safety
    /// `fr` must be a live interpreter frame, the GIL held, and the frame must stay alive while the returned
    /// object is valid.
    pub unsafe fn read(py: Python<'_>, fr: *mut InterpFrame, null: &Py<PyAny>) -> PyResult<Self> {
        unsafe {
            let code = (*fr).f_code;
            let nlp = nlocalsplus(code);
            let slots = (*fr).localsplus.as_ptr();
            let locals = PyList::empty(py);
            for i in 0..nlp {
                let v = *slots.add(i);
                if v.is_null() {
                    locals.append(null.bind(py))?;
                } else {
                    locals.append(Bound::from_borrowed_ptr(py, v))?;
                }
            }
            let st = (*fr).stacktop as isize;
            let stacktop = if st >= nlp as isize { st - nlp as isize } else { -1 };
            let owner = (*fr).owner;
            let (gen, gen_exc) = if owner == FRAME_OWNED_BY_GENERATOR {
                let g = (fr as *mut u8).sub(GEN_IFRAME) as *mut ffi::PyObject;
                let e: *mut ffi::PyObject = field(g as *const u8, GEN_EXC_VALUE);
                (borrowed(py, g), if e.is_null() { py.None() } else { borrowed(py, e) })
            } else {
                (py.None(), py.None())
            };
            let opt = |p: *mut ffi::PyObject| {
                if p.is_null() {
                    py.None()
                } else {
                    borrowed(py, p)
                }
            };
            Ok(Self {
                ptr: fr,
                code: borrowed(py, code),
                func: opt((*fr).f_func),
                globals: borrowed(py, (*fr).f_globals),
                unit: unit_of(fr),
                stacktop,
                is_entry: (*fr).is_entry,
                owner: owner as i32,
                locals: locals.unbind(),
                gen,
                gen_exc,
                nlp,
                null: null.clone_ref(py),
            })
        }
    }

    pub fn invalidate(&mut self) {
        self.ptr = std::ptr::null_mut();
    }

    /// The interpreter frame's address (an identity while the frame runs; never dereferenced through this).
    pub fn addr(&self) -> usize {
        self.ptr as usize
    }
}

#[pymethods]
impl RawFrame {
    /// The address held in stack slot `i` (0 for NULL), read without touching the object. A frame sitting in a C
    /// call may also be past it, releasing its operands one by one while a finalizer runs Python: its slots may
    /// then hold freed objects, so a slot is compared by address with an object known to be alive before the
    /// stack is read.
    fn slot_id(&self, i: usize) -> PyResult<usize> {
        if self.ptr.is_null() {
            return Err(pyo3::exceptions::PyRuntimeError::new_err("frame read outside its trace event"));
        }
        // SAFETY: valid while ptr is set; `i` is checked against the code's stack size.
        unsafe {
            let max = field::<c_int>((*self.ptr).f_code as *const u8, CODE_STACKSIZE) as usize;
            if i >= max {
                return Err(pyo3::exceptions::PyValueError::new_err("slot over the code's stack size"));
            }
            Ok(*(*self.ptr).localsplus.as_ptr().add(self.nlp + i) as usize)
        }
    }

    /// The bottom `depth` items of the value stack, NULL as `microlambda_rt.NULL`.
    fn stack<'py>(&self, py: Python<'py>, depth: usize) -> PyResult<Bound<'py, PyList>> {
        if self.ptr.is_null() {
            return Err(pyo3::exceptions::PyRuntimeError::new_err("frame read outside its trace event"));
        }
        let out = PyList::empty(py);
        // SAFETY: valid while ptr is set (inside the trace event); depth comes from the frame's own stacktop or
        // the compiler's static depth at the instruction it is suspended at, so every slot read is live.
        unsafe {
            let max = field::<c_int>((*self.ptr).f_code as *const u8, CODE_STACKSIZE) as usize;
            if depth > max {
                return Err(pyo3::exceptions::PyValueError::new_err("depth over the code's stack size"));
            }
            let base = (*self.ptr).localsplus.as_ptr().add(self.nlp);
            for i in 0..depth {
                let v = *base.add(i);
                if v.is_null() {
                    out.append(self.null.bind(py))?;
                } else {
                    out.append(Bound::from_borrowed_ptr(py, v))?;
                }
            }
        }
        Ok(out)
    }
}

/// `gi_frame_state` of a generator: -2 created, -1 suspended, 0 running, 1 completed, 4 cleared.
#[pyfunction]
pub fn gen_state(g: &Bound<'_, PyAny>) -> PyResult<i32> {
    check_gen(g)?;
    // SAFETY: checked to be a generator object.
    Ok(unsafe { field::<i8>(g.as_ptr() as *const u8, GEN_FRAME_STATE) } as i32)
}

fn check_gen(g: &Bound<'_, PyAny>) -> PyResult<()> {
    // SAFETY: type check only.
    if unsafe { ffi::PyGen_CheckExact(g.as_ptr()) } == 0 {
        return Err(pyo3::exceptions::PyTypeError::new_err("not a generator"));
    }
    Ok(())
}

/// What the pickler saves of a suspended or created generator, read in one pass over its frame (whose stack is
/// flushed while it is not running): `(code, unit, globals, slots, values, stack, mask, exc)` — the code it runs,
/// its `prev_instr` unit, its globals, the indices of its bound locals (a tuple) and their values (a list), its
/// value stack (a list, NULL as `null`) and which stack items are NULL (a tuple of bools), and the exception it
/// is handling (or None).
#[pyfunction]
pub fn gen_parts<'py>(
    py: Python<'py>,
    g: &Bound<'py, PyAny>,
    null: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let st = gen_state(g)?;
    if st != -1 && st != -2 {
        return Err(pyo3::exceptions::PyValueError::new_err("generator is not suspended"));
    }
    // SAFETY: a suspended (or created) generator owns its frame, alive as long as `g`, which the caller holds;
    // every slot below nlocalsplus + stacktop is initialised while the generator is not running.
    unsafe {
        let fr = (g.as_ptr() as *mut u8).add(GEN_IFRAME) as *mut InterpFrame;
        let code = (*fr).f_code;
        let nlp = nlocalsplus(code);
        let base = (*fr).localsplus.as_ptr();
        let mut slots = Vec::with_capacity(nlp);
        let values = PyList::empty(py);
        for i in 0..nlp {
            let v = *base.add(i);
            if !v.is_null() {
                slots.push(i);
                values.append(Bound::from_borrowed_ptr(py, v))?;
            }
        }
        let depth = ((*fr).stacktop as usize).saturating_sub(nlp);
        let stack = PyList::empty(py);
        let mut mask = Vec::with_capacity(depth);
        for i in 0..depth {
            let v = *base.add(nlp + i);
            mask.push(v.is_null());
            if v.is_null() {
                stack.append(null)?;
            } else {
                stack.append(Bound::from_borrowed_ptr(py, v))?;
            }
        }
        let e: *mut ffi::PyObject = field(g.as_ptr() as *const u8, GEN_EXC_VALUE);
        let exc = if e.is_null() { py.None() } else { borrowed(py, e) };
        (
            borrowed(py, code),
            unit_of(fr),
            borrowed(py, (*fr).f_globals),
            PyTuple::new(py, slots)?,
            values,
            stack,
            PyTuple::new(py, mask)?,
            exc,
        )
            .into_pyobject(py)
    }
}

/// Set the exception a (suspended) generator is handling.
#[pyfunction]
pub fn set_gen_exc(g: &Bound<'_, PyAny>, exc: &Bound<'_, PyAny>) -> PyResult<()> {
    check_gen(g)?;
    // SAFETY: checked to be a suspended generator (not running: we are not inside it); we swap a strong ref.
    unsafe {
        let slot = (g.as_ptr() as *mut u8).add(GEN_EXC_VALUE) as *mut *mut ffi::PyObject;
        let old = *slot;
        let new = if exc.is_none() { std::ptr::null_mut() } else { exc.clone().into_ptr() };
        *slot = new;
        if !old.is_null() {
            ffi::Py_DECREF(old);
        }
    }
    Ok(())
}

/// `PyContextToken.tok_used` (int), after the object head and its context, variable and old value.
const TOKEN_USED: usize = 40;

/// Whether a `contextvars.Token` was already used to reset its variable (Python does not expose it).
#[pyfunction]
pub fn token_used(t: &Bound<'_, PyAny>) -> PyResult<bool> {
    // SAFETY: type check only.
    if unsafe { ffi::PyContextToken_CheckExact(t.as_ptr()) } == 0 {
        return Err(pyo3::exceptions::PyTypeError::new_err("not a contextvars.Token"));
    }
    // SAFETY: checked to be a token.
    Ok(unsafe { field::<c_int>(t.as_ptr() as *const u8, TOKEN_USED) } != 0)
}

/// An object head (reference count, type) and the object's first two fields: enough for `PyMethodObject`
/// (`im_func`, `im_self`), `map` (`iters`, `func`), and `itertools.starmap`, `filter` and
/// `itertools.filterfalse` (`func`, `it`).
const HEAD_AND_TWO: usize = 4;

extern "C" {
    /// `types.MethodType` (libpython exports it; pyo3-ffi does not declare it).
    static PyMethod_Type: ffi::PyTypeObject;
}

/// The function and the object of the bound method at `addr`, as addresses, or None when `addr` does not hold a
/// live bound method ([`object_parts`]).
#[pyfunction]
pub fn method_parts(addr: usize) -> Option<(usize, usize)> {
    read_parts(addr, std::ptr::addr_of!(PyMethod_Type) as usize)
}

/// The first two fields of the object at `addr`, as addresses, or None when `addr` does not hold a live object
/// of exactly the type `t`. For a value-stack slot of a frame in a C call, which may hold a freed object (see
/// [`RawFrame::slot_id`]): the words are copied with `process_vm_readv` on this process, which fails on an
/// unmapped page instead of faulting, and a freed block is told by its reference count (pymalloc keeps its free
/// list in that word: 0 or an address). No reference is taken.
/// None too when this process may not read itself that way (a seccomp profile that refuses the call): such
/// calls from C then stay waits.
#[pyfunction]
pub fn object_parts(addr: usize, t: &Bound<'_, pyo3::types::PyType>) -> Option<(usize, usize)> {
    read_parts(addr, t.as_ptr() as usize)
}

/// Whether `process_vm_readv` on this process works here (checked by [`self_check`]).
static SELF_READS: AtomicBool = AtomicBool::new(true);

fn read_parts(addr: usize, type_addr: usize) -> Option<(usize, usize)> {
    if addr == 0 || !addr.is_multiple_of(std::mem::align_of::<usize>()) || !SELF_READS.load(Ordering::Relaxed) {
        return None;
    }
    let mut words = [0usize; HEAD_AND_TWO];
    let local = libc::iovec { iov_base: words.as_mut_ptr().cast(), iov_len: std::mem::size_of_val(&words) };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: std::mem::size_of_val(&words) };
    // SAFETY: reads this process's memory into a local buffer; the kernel checks the remote range.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n != std::mem::size_of_val(&words) as isize {
        return None;
    }
    let live = (1..1 << 32).contains(&words[0]);
    (live && words[1] == type_addr).then_some((words[2], words[3]))
}

/// Whether `process_vm_readv` can copy a word of this process (a local one).
fn readable_here() -> bool {
    let src = 0x5eed_usize;
    let mut dst = 0usize;
    let local = libc::iovec { iov_base: (&mut dst as *mut usize).cast(), iov_len: std::mem::size_of::<usize>() };
    let remote =
        libc::iovec { iov_base: (&src as *const usize).cast_mut().cast(), iov_len: std::mem::size_of::<usize>() };
    // SAFETY: copies one word between two locals of this frame.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    n == std::mem::size_of::<usize>() as isize && dst == src
}

/// Check the layout against the public API from inside a running Python frame.
#[pyfunction]
pub fn self_check(py: Python<'_>) -> PyResult<()> {
    // SAFETY: called from Python, so there is a current frame.
    unsafe {
        let f = ffi::PyEval_GetFrame();
        if f.is_null() {
            return Err(pyo3::exceptions::PyRuntimeError::new_err("self_check needs a Python caller"));
        }
        let fr = interp_frame(f);
        let code = ffi::PyFrame_GetCode(f) as *mut ffi::PyObject;
        let same_code = (*fr).f_code == code;
        ffi::Py_DECREF(code);
        let lasti = ffi::PyFrame_GetLasti(f) as isize;
        let mine = unit_of(fr) * 2;
        let globals = ffi::PyEval_GetGlobals();
        // The thread state's `_PyCFrame` names the frame its eval loop runs (the container search relies on it).
        let cframe_ok = super::heldbyc::current_frame_of_cframe() == fr as usize;
        if !same_code || lasti != mine || (*fr).f_globals != globals || !cframe_ok {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                "CPython frame layout mismatch (code {same_code}, lasti {lasti} vs {mine}): this build is not \
                 supported"
            )));
        }
    }
    // The bound-method layout, read as a stack slot is: a method of a plain function, and a builtin method
    // (another type) refused.
    let bound = py.eval(c"(lambda: 0).__get__(1)", None, None)?;
    let builtin = py.eval(c"[].append", None, None)?;
    let want = (bound.getattr("__func__")?.as_ptr() as usize, bound.getattr("__self__")?.as_ptr() as usize);
    match method_parts(bound.as_ptr() as usize) {
        // The read itself is refused (seccomp): no slot is read this way, those calls stay waits.
        None if !readable_here() => SELF_READS.store(false, Ordering::Relaxed),
        got if got != Some(want) || method_parts(builtin.as_ptr() as usize).is_some() => {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "CPython bound method layout mismatch: this build is not supported",
            ));
        }
        _ => {}
    }
    // `map` (iterators, function), `itertools.starmap`, `filter` and `itertools.filterfalse` (function,
    // iterator), read the same way.
    if SELF_READS.load(Ordering::Relaxed) {
        let m = py.eval(c"map(abs, ())", None, None)?;
        let sm = py.eval(c"__import__('itertools').starmap(abs, ())", None, None)?;
        let fl = py.eval(c"filter(abs, ())", None, None)?;
        let ff = py.eval(c"__import__('itertools').filterfalse(abs, ())", None, None)?;
        let abs = py.eval(c"abs", None, None)?.as_ptr() as usize;
        let map_ok = object_parts(m.as_ptr() as usize, &m.get_type()).is_some_and(|(_, f)| f == abs);
        let func_first = |o: &Bound<'_, PyAny>| {
            let it = o.call_method0("__reduce__").and_then(|r| r.get_item(1)?.get_item(1));
            let it = it.map(|i| i.as_ptr() as usize).ok();
            object_parts(o.as_ptr() as usize, &o.get_type()).is_some_and(|(f, i)| f == abs && Some(i) == it)
        };
        if !map_ok || !func_first(&sm) || !func_first(&fl) || !func_first(&ff) {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "CPython map/starmap/filter layout mismatch: this build is not supported",
            ));
        }
    }
    // The token layout: `tok_used` flips when the token resets its variable.
    let var = py.import("contextvars")?.getattr("ContextVar")?.call1(("microlambda_self_check",))?;
    let tok = var.call_method1("set", (1,))?;
    let before = token_used(&tok)?;
    var.call_method1("reset", (&tok,))?;
    if before || !token_used(&tok)? {
        return Err(pyo3::exceptions::PyRuntimeError::new_err(
            "CPython contextvars.Token layout mismatch: this build is not supported",
        ));
    }
    Ok(())
}
