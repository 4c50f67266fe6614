//! The container a C function is filling from a generator it drives: `list(g)`, `sorted(g)`, `sep.join(g)`,
//! `set(g)`, `frozenset(g)`. The C function keeps the new container in a C local while it pulls the generator's
//! items, so nothing in Python refers to it; a checkpoint inside the generator needs it (it holds the items
//! gathered so far) to resume the call as "the container so far, extended by the rest".
//!
//! It is found the way the garbage collector finds roots, restricted to one type and one stretch of the C
//! stack: among the objects the collector tracks, those of exactly that type whose only reference is not held
//! by any tracked object (each tracked object's `tp_traverse` visits what it holds), and whose address is a word
//! of the C stack between the eval loop running the caller (the frame in the call) and the eval loop running the
//! generator, which that C function entered: the C function's own frames and what the eval loop beneath saved
//! of its registers. Each eval loop keeps a `_PyCFrame` in its C frame, linked from the thread state, naming the
//! frame it runs: that bounds the stretch. The caller holds an extra reference to what the job's frames' variables
//! and value stacks hold (the capture's plans) and to the variables of the runtime's frames that run the job, so an
//! object a frame's variable holds, whose address a stale word of that stretch may still name, is not taken for
//! the C function's; what the capture itself made is newer than the stretch and cannot be named there. Anything
//! but exactly one object left is no answer, and the checkpoint waits for the call to return, as it did before.
use super::frame311::{InterpFrame, RawFrame};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyType};
use std::collections::HashSet;
use std::os::raw::{c_int, c_void};

/// A visit of `tp_traverse`: what a tracked object holds is not held only by C.
unsafe extern "C" fn held_by_an_object(obj: *mut ffi::PyObject, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the set passed by `held_by_no_object`, alive for the traversal.
    let set = unsafe { &mut *(arg as *mut HashSet<usize>) };
    set.remove(&(obj as usize));
    0
}

/// Addresses of the objects in `objs` (the collector's `gc.get_objects()`) of exactly type `tp` with one
/// reference besides the list's, among `words`.
fn in_words(objs: &Bound<'_, PyList>, tp: *mut ffi::PyTypeObject, words: &HashSet<usize>) -> HashSet<usize> {
    let list = objs.as_ptr();
    let mut out = HashSet::new();
    // SAFETY: `objs` is a list the caller holds, unchanged while the GIL is held; its items are live objects.
    unsafe {
        for i in 0..objs.len() as ffi::Py_ssize_t {
            let o = ffi::PyList_GET_ITEM(list, i);
            if ffi::Py_TYPE(o) == tp && ffi::Py_REFCNT(o) == 2 && words.contains(&(o as usize)) {
                out.insert(o as usize);
            }
        }
    }
    out
}

/// Drops from `cands` what an object in `objs` holds (its `tp_traverse` visits it).
fn held_by_no_object(objs: &Bound<'_, PyList>, cands: &mut HashSet<usize>) {
    let list = objs.as_ptr();
    // SAFETY: as in `in_words`; the traversal only reads, and `cands` outlives it.
    unsafe {
        for i in 0..objs.len() as ffi::Py_ssize_t {
            if cands.is_empty() {
                break;
            }
            let o = ffi::PyList_GET_ITEM(list, i);
            if let Some(traverse) = (*ffi::Py_TYPE(o)).tp_traverse {
                traverse(o, held_by_an_object, (cands as *mut HashSet<usize>).cast());
            }
        }
    }
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
fn words(low: usize, high: usize) -> HashSet<usize> {
    let mut out = HashSet::new();
    let word = std::mem::size_of::<usize>();
    let mut at = (low + word - 1) & !(word - 1);
    while at + word <= high {
        // SAFETY: inside the C frames of eval loops this thread is running: mapped, readable, and not written
        // while this thread reads them.
        out.insert(unsafe { std::ptr::read_volatile(at as *const usize) });
        at += word;
    }
    out
}

/// The objects of exactly type `t` that only C holds, between the eval loop running `caller` and the one
/// running `callee` (see the module's doc): the capture takes the one when there is exactly one. With, for
/// ML_DEBUG, how many words that stretch of stack has and how many of them name an object of the type with
/// one reference. `objs` is `gc.get_objects()`, taken by the caller just before.
#[pyfunction]
pub fn held_by_c(
    py: Python<'_>,
    objs: &Bound<'_, PyList>,
    t: &Bound<'_, PyType>,
    caller: PyRef<'_, RawFrame>,
    callee: PyRef<'_, RawFrame>,
) -> (Vec<Py<PyAny>>, usize, usize) {
    let Some((low, high)) = between(caller.addr(), callee.addr()) else { return (Vec::new(), 0, 0) };
    let words = words(low, high);
    let mut cands = in_words(objs, t.as_type_ptr(), &words);
    let named = cands.len();
    held_by_no_object(objs, &mut cands);
    // SAFETY: live objects of `objs`, which holds a reference to each for this call.
    let out = cands.iter().map(|&a| unsafe { Bound::from_borrowed_ptr(py, a as *mut ffi::PyObject) }.unbind());
    (out.collect(), (high - low) / std::mem::size_of::<usize>(), named)
}
