//! The container a C function is filling from a generator it drives: `list(g)`, `sorted(g)`, `sep.join(g)`,
//! `set(g)`, `frozenset(g)`, `tuple(g)` (whose tuple is handed over as the list of the items filled so far). The C function keeps the new container in a C local while it pulls the generator's
//! items, so nothing in Python refers to it; a checkpoint inside the generator needs it (it holds the items
//! gathered so far) to resume the call as "the container so far, extended by the rest".
//!
//! It is found the way the garbage collector finds roots, restricted to one type and one stretch of the C
//! stack: among the objects the collector tracks (its generations' lists, the frozen one included, read
//! directly: `gc.get_objects()` would build a list of them all, a third of the time), those of exactly that type whose only reference is not held
//! by any tracked object (each tracked object's `tp_traverse` visits what it holds), and whose address is a word
//! of the C stack between the eval loop running the caller (the frame in the call) and the eval loop running the
//! generator, which that C function entered: the C function's own frames and what the eval loop beneath saved
//! of its registers. Each eval loop keeps a `_PyCFrame` in its C frame, linked from the thread state, naming the
//! frame it runs: that bounds the stretch. The caller holds an extra reference to what the job's frames' variables
//! and value stacks hold (the capture's plans) and to the variables of the runtime's frames that run the job, so an
//! object a frame's variable holds, whose address a stale word of that stretch may still name, is not taken for
//! the C function's; what the capture itself made is newer than the stretch and cannot be named there. Anything
//! but exactly one object left is no answer, and the checkpoint waits for the call to return, as it did before.
//!
//! The same knowledge of the collector's state gives the capture its young count to put back ([`young_count`]).
use super::frame311::{InterpFrame, RawFrame};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyType;
use std::os::raw::{c_int, c_void};

/// The words of a stretch of C stack, as a set that answers "not one of them" for most addresses with one
/// bit (the traversal asks it for every reference of every tracked object: a hash per visit cost more than the
/// rest of the traversal).
struct Words {
    bits: [u64; 64],
    list: Vec<usize>,
}

impl Words {
    fn bit(a: usize) -> usize {
        (a >> 4) & 4095
    }

    fn new(list: Vec<usize>) -> Self {
        let mut bits = [0u64; 64];
        for &a in &list {
            let k = Self::bit(a);
            bits[k >> 6] |= 1 << (k & 63);
        }
        Words { bits, list }
    }

    fn has(&self, a: usize) -> bool {
        let k = Self::bit(a);
        self.bits[k >> 6] >> (k & 63) & 1 == 1 && self.list.contains(&a)
    }
}

/// The search's one pass: the stack's words, the tracked objects they name (of the type, with one reference),
/// and those of the words that some tracked object holds.
struct Pass {
    words: Words,
    named: Vec<usize>,
    held: Vec<usize>,
}

/// A visit of `tp_traverse`: what a tracked object holds is not held only by C.
unsafe extern "C" fn held_by_an_object(obj: *mut ffi::PyObject, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Pass` of `search`, alive for the traversal.
    let pass = unsafe { &mut *(arg as *mut Pass) };
    let a = obj as usize;
    if pass.words.has(a) && !pass.held.contains(&a) {
        pass.held.push(a); // at most one entry per word (a word may name None, which most objects hold)
    }
    0
}

/// `PyInterpreterState.gc` (`struct _gc_runtime_state`, Include/internal/pycore_interp.h, 3.11).
const INTERP_GC: usize = 648;
/// In it: `generations[3]` (each a `PyGC_Head` list head and two ints), `generation0` (a pointer to the first
/// head, which the layout check compares) and `permanent_generation` (what `gc.freeze()` moved: the zygote's).
const GC_GENERATIONS: usize = 24;
const GC_GENERATION_SIZE: usize = 24;
const GC_GENERATION0: usize = 96;
const GC_PERMANENT: usize = 104;

/// The heads of the collector's lists of tracked objects (three generations and the frozen one), or None when
/// the layout does not check out (`generation0` must point at the first head).
fn gc_heads() -> Option<[usize; 4]> {
    // SAFETY: the interpreter state is live while the GIL is held; the words read are inside its gc state.
    unsafe {
        let interp = ffi::PyInterpreterState_Get() as usize;
        let gc = interp + INTERP_GC;
        let first = gc + GC_GENERATIONS;
        if *((gc + GC_GENERATION0) as *const usize) != first {
            return None;
        }
        Some([first, first + GC_GENERATION_SIZE, first + 2 * GC_GENERATION_SIZE, gc + GC_PERMANENT])
    }
}

/// Calls `f` on every object the collector tracks. `f` must not run Python code nor create or free objects.
fn each_tracked(heads: &[usize; 4], mut f: impl FnMut(*mut ffi::PyObject)) {
    let head_size = 2 * std::mem::size_of::<usize>(); // PyGC_Head: _gc_next, _gc_prev, before the object
    for &head in heads {
        // SAFETY: outside a collection (the GIL is held and no Python code runs), `_gc_next` links every tracked
        // object of the list and comes back to its head.
        unsafe {
            let mut g = *(head as *const usize);
            while g != head && g != 0 {
                f((g + head_size) as *mut ffi::PyObject);
                g = *(g as *const usize);
            }
        }
    }
}

/// The tracked objects of exactly type `tp` with one reference that a word of `words` names, and those of them
/// that no tracked object holds: one walk of the collector's lists, each object checked and traversed.
fn search(heads: &[usize; 4], tp: *mut ffi::PyTypeObject, words: Vec<usize>) -> (usize, Vec<usize>) {
    // A tuple being filled by `tuple(g)` has NULL slots past its count (it grows ahead of the items), which
    // tells it from the tuples only an untracked object holds, which the traversal cannot see (a code object's
    // constants, which the caller's eval loop names on the stack). Caught exactly full, it is not found: a wait.
    let tuple = tp == std::ptr::addr_of_mut!(ffi::PyTuple_Type);
    let mut pass = Pass { words: Words::new(words), named: Vec::new(), held: Vec::new() };
    each_tracked(heads, |o| {
        // SAFETY: a live object; its traversal only reads, and `pass` outlives it.
        unsafe {
            if pass.words.has(o as usize) && ffi::Py_TYPE(o) == tp && ffi::Py_REFCNT(o) == 1 && (!tuple || unfilled(o))
            {
                pass.named.push(o as usize);
            }
            if let Some(traverse) = (*ffi::Py_TYPE(o)).tp_traverse {
                traverse(o, held_by_an_object, (&mut pass as *mut Pass).cast());
            }
        }
    });
    let named = pass.named.len();
    (named, pass.named.into_iter().filter(|a| !pass.held.contains(a)).collect())
}

/// `PyThreadState.cframe`: the `_PyCFrame` of the innermost running eval loop.
const TSTATE_CFRAME: usize = 56;

/// `_PyCFrame` (Include/cpython/pystate.h, 3.11): one per running `_PyEval_EvalFrameDefault`, in its C frame.
#[repr(C)]
struct CFrame {
    use_tracing: u8,
    current_frame: *mut InterpFrame,
    previous: *mut CFrame,
}

/// The frame that the innermost running eval loop's `_PyCFrame` names (checked at start-up against the current
/// frame, [`super::frame311::self_check`]).
pub(super) fn current_frame_of_cframe() -> usize {
    // SAFETY: the thread state and its current `_PyCFrame` are read while the GIL is held.
    unsafe {
        let ts = ffi::PyThreadState_Get() as *const u8;
        let c = *(ts.add(TSTATE_CFRAME) as *const *mut CFrame);
        if c.is_null() {
            0
        } else {
            (*c).current_frame as usize
        }
    }
}

/// The stretch of C stack `[low, high)` between the eval loop whose current frame is `caller` (stopped in a
/// call into C) and the eval loop that C entered, whose first frame is `callee`; None when they are not found
/// so (the frames are not in this thread's running eval loops, or something else runs between them).
fn between(caller: usize, callee: usize) -> Option<(usize, usize)> {
    // SAFETY: the thread state and its chain of `_PyCFrame`s (each in a live eval loop's C frame, as this
    // thread is inside all of them) are read while the GIL is held; interpreter frames of running loops are live.
    unsafe {
        let ts = ffi::PyThreadState_Get() as *const u8;
        let mut c = *(ts.add(TSTATE_CFRAME) as *const *mut CFrame);
        let mut below: *mut CFrame = std::ptr::null_mut();
        while !c.is_null() {
            if (*c).current_frame as usize == caller {
                if below.is_null() {
                    return None;
                }
                let mut f = (*below).current_frame;
                while !f.is_null() && !(*f).is_entry {
                    f = (*f).previous;
                }
                return (f as usize == callee && (below as usize) < c as usize).then_some((below as usize, c as usize));
            }
            below = c;
            c = (*c).previous;
        }
        None
    }
}

/// The words of this thread's C stack in `[low, high)`.
fn words(low: usize, high: usize) -> Vec<usize> {
    let word = std::mem::size_of::<usize>();
    let mut at = (low + word - 1) & !(word - 1);
    let mut out = Vec::new();
    while at + word <= high {
        // SAFETY: inside the C frames of eval loops this thread is running: mapped, readable, and not written
        // while this thread reads them.
        out.push(unsafe { std::ptr::read_volatile(at as *const usize) });
        at += word;
    }
    out
}

/// The objects of exactly type `t` that only C holds, between the eval loop running `caller` and the one
/// running `callee` (see the module's doc): the capture takes the one when there is exactly one. With, for
/// ML_DEBUG, how many words that stretch of stack has and how many of them name an object of the type with
/// one reference.
#[pyfunction]
pub fn held_by_c(
    py: Python<'_>,
    t: &Bound<'_, PyType>,
    caller: PyRef<'_, RawFrame>,
    callee: PyRef<'_, RawFrame>,
) -> (Vec<Py<PyAny>>, usize, usize) {
    let (Some((low, high)), Some(heads)) = (between(caller.addr(), callee.addr()), gc_heads()) else {
        return (Vec::new(), 0, 0);
    };
    let tp = t.as_type_ptr();
    let (named, cands) = search(&heads, tp, words(low, high));
    let out = cands.iter().map(|&a| {
        let o = a as *mut ffi::PyObject;
        // SAFETY: live objects (nothing ran since they were found); a tuple's items are read only up to its
        // first NULL slot, as `PySequence_Tuple` fills it in order and its unfilled slots are NULL.
        unsafe {
            if tp == std::ptr::addr_of_mut!(ffi::PyTuple_Type) {
                filled_prefix(py, o)
            } else {
                Bound::from_borrowed_ptr(py, o).unbind()
            }
        }
    });
    (out.collect(), (high - low) / std::mem::size_of::<usize>(), named)
}

/// Whether the tuple `t` has an unfilled (NULL) last slot.
///
/// # Safety
/// `t` must be a live tuple.
unsafe fn unfilled(t: *mut ffi::PyObject) -> bool {
    // SAFETY: per the caller; reads one slot within its size.
    unsafe {
        let n = ffi::Py_SIZE(t);
        n > 0 && ffi::PyTuple_GET_ITEM(t, n - 1).is_null()
    }
}

/// The items a tuple being filled by `tuple(g)` holds so far, as a new list: the slots before the first NULL
/// (a tuple with NULL slots must not reach Python code).
///
/// # Safety
/// `t` must be a live tuple and the GIL held.
unsafe fn filled_prefix(py: Python<'_>, t: *mut ffi::PyObject) -> Py<PyAny> {
    let out = pyo3::types::PyList::empty(py);
    // SAFETY: per the caller; each non-NULL slot is a live object the tuple holds.
    unsafe {
        for i in 0..ffi::Py_SIZE(t) {
            let v = ffi::PyTuple_GET_ITEM(t, i);
            if v.is_null() {
                break;
            }
            let _ = out.append(Bound::from_borrowed_ptr(py, v));
        }
    }
    out.into_any().unbind()
}

/// The objects the collector tracks at the addresses `addrs`, in their order (None where no tracked object is
/// there): one walk of the collector's lists, comparing addresses only. An address read from a word that may be
/// stale (a frame's stack slot) names a live object when this finds one there, so the object may be read.
#[pyfunction]
pub fn tracked_at(py: Python<'_>, addrs: Vec<usize>) -> Vec<Option<Py<PyAny>>> {
    let mut out: Vec<Option<Py<PyAny>>> = addrs.iter().map(|_| None).collect();
    let Some(heads) = gc_heads() else { return out };
    let mut found: Vec<(usize, usize)> = Vec::new(); // (index in addrs, address)
    each_tracked(&heads, |o| {
        let a = o as usize;
        for (i, &want) in addrs.iter().enumerate() {
            if want == a {
                found.push((i, a));
            }
        }
    });
    for (i, a) in found {
        // SAFETY: a live tracked object (nothing ran since the walk found it).
        out[i] = Some(unsafe { Bound::from_borrowed_ptr(py, a as *mut ffi::PyObject) }.unbind());
    }
    out
}

/// In a `gc_generation`, after its list head: `threshold` and `count` (C ints).
const GC_THRESHOLD: usize = 16;
const GC_COUNT: usize = 20;

/// The youngest generation's allocation count (what `gc.get_count()[0]` reads), set to `count` first when given:
/// the capture puts back the count it found, as its own allocations, all freed again, are no allocation of the
/// job's (a tuple freed onto CPython's free list is never counted off, so a capture left thousands counted,
/// and the job's next allocation ran a collection inside the pause; the full ones took 150-190 ms). Read and
/// written only where the layout checks out: `generation0` points at the first head, and the words read hold
/// what `gc.get_count()` and `gc.get_threshold()` said just before (`count_now`, `threshold_now`, from the
/// caller; the count may have grown by the few tuples those calls made since); else None.
#[pyfunction]
#[pyo3(signature = (count_now, threshold_now, count=None))]
pub fn young_count(count_now: i64, threshold_now: i64, count: Option<i64>) -> Option<i64> {
    let heads = gc_heads()?;
    let (t, c) = ((heads[0] + GC_THRESHOLD) as *mut c_int, (heads[0] + GC_COUNT) as *mut c_int);
    // SAFETY: the GIL is held (a pyfunction); both words are inside the interpreter's gc state, whose layout
    // `gc_heads` checked, and hold what the interpreter's own API reported just before this call.
    unsafe {
        if i64::from(*t) != threshold_now || !(count_now..=count_now + 8).contains(&i64::from(*c)) {
            return None;
        }
        if let Some(n) = count.and_then(|n| c_int::try_from(n).ok()).filter(|n| *n >= 0) {
            *c = n;
        }
        Some(i64::from(*c))
    }
}
