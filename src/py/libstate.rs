//! Library modules' own lists, dicts, sets and bytearrays, saved by reference.
//!
//! The checkpoint pickler saves what a library module owns by reference, so that a restore gets the restoring
//! process's own object (`python/microlambda_rt/pickler.py`, the extern index). The C pickler saves an exact
//! `list`, `dict`, `set` or `bytearray` itself, without asking `reducer_override`, so such an object came back
//! as a copy of what it held at the checkpoint: a registry a library fills at run time then missed what was
//! registered after the restore. Pillow's `Image.open` holds `PIL.Image.ID` as its local `formats` while it
//! loads the plugins that register themselves there; resumed with a copy, it looked for the PNG plugin in the
//! copy, and raised `UnidentifiedImageError` (`tests/corpus_libs/29_pil_open_streams.py`). The one hook that
//! sees these objects is `persistent_id` ([`super::numbers`]): [`index_containers`] lists the containers library
//! modules bind, as the runtime indexes each module; [`library_container`] is the persistent id `(module, name)`
//! of one that its module still binds under that name, and [`module_container`] loads it as the restoring
//! process's own (through the runtime's `_extern_container`, which imports the module if need be).
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::ptr;
use std::sync::Mutex;

use super::numbers::AddrHasher;

/// One container a library module binds: the persistent id `(module, name)` it is written as (copies of the
/// strings: the pickler saves a persistent id's items through the same hook), the module's namespace, checked
/// to still bind it under that name when it is saved, and the container itself (held, so the address stays
/// its own).
struct Entry {
    pid: Py<PyTuple>,
    namespace: Py<PyDict>,
    _held: Py<PyAny>,
}

static LIB_CONTAINERS: Mutex<HashMap<usize, Entry, BuildHasherDefault<AddrHasher>>> =
    Mutex::new(HashMap::with_hasher(BuildHasherDefault::new()));

/// Whether `t` is one of the container types the C pickler saves itself and that a library mutates in place.
fn mutable_container(t: *mut ffi::PyTypeObject) -> bool {
    t == ptr::addr_of_mut!(ffi::PyList_Type)
        || t == ptr::addr_of_mut!(ffi::PyDict_Type)
        || t == ptr::addr_of_mut!(ffi::PySet_Type)
        || t == ptr::addr_of_mut!(ffi::PyByteArray_Type)
}

/// Add `(module, name, namespace, value)` entries: the exact lists, dicts, sets and bytearrays bound as globals
/// by a library module just indexed (`namespace` is its `__dict__`). The first module found binding an object
/// keeps it.
#[pyfunction]
#[allow(clippy::type_complexity)]
pub fn index_containers(
    py: Python<'_>,
    entries: Vec<(Bound<'_, PyString>, Bound<'_, PyString>, Bound<'_, PyDict>, Bound<'_, PyAny>)>,
) {
    let Ok(mut table) = LIB_CONTAINERS.lock() else { return };
    for (module, name, namespace, value) in entries {
        if !mutable_container(value.get_type().as_type_ptr()) {
            continue;
        }
        let (Ok(m), Ok(n)) = (module.to_str(), name.to_str()) else { continue };
        let Ok(pid) = PyTuple::new(py, [PyString::new(py, m), PyString::new(py, n)]) else { continue };
        table.entry(value.as_ptr() as usize).or_insert_with(|| Entry {
            pid: pid.unbind(),
            namespace: namespace.unbind(),
            _held: value.unbind(),
        });
    }
}

/// The persistent id of `obj` when it is a container a library module binds (a new reference), else null
/// with no error set.
///
/// # Safety
/// `obj` is a live object and the GIL is held.
pub(super) unsafe fn library_container(obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: as the caller promises; the entry's objects are held by the table.
    unsafe {
        if !mutable_container(ffi::Py_TYPE(obj)) {
            return ptr::null_mut();
        }
        let Ok(table) = LIB_CONTAINERS.lock() else { return ptr::null_mut() };
        let Some(e) = table.get(&(obj as usize)) else { return ptr::null_mut() };
        let pid = e.pid.as_ptr();
        let bound = ffi::PyDict_GetItemWithError(e.namespace.as_ptr(), ffi::PyTuple_GetItem(pid, 1));
        if bound != obj {
            ffi::PyErr_Clear();
            return ptr::null_mut(); // rebound since: the module's object is another, this one is the job's
        }
        ffi::Py_INCREF(pid);
        pid
    }
}

/// Whether `pid` is a persistent id [`library_container`] writes: a tuple of two strings.
///
/// # Safety
/// `pid` is a live object and the GIL is held.
pub(super) unsafe fn is_container_pid(pid: *mut ffi::PyObject) -> bool {
    // SAFETY: as the caller promises.
    unsafe {
        ffi::PyTuple_CheckExact(pid) != 0
            && ffi::PyTuple_Size(pid) == 2
            && ffi::PyUnicode_CheckExact(ffi::PyTuple_GetItem(pid, 0)) != 0
            && ffi::PyUnicode_CheckExact(ffi::PyTuple_GetItem(pid, 1)) != 0
    }
}

/// The restoring process's own container named by `pid`, `(module, name)`: `_extern_container(module, name)`
/// of the runtime's pickler (a new reference, or null with its error set).
///
/// # Safety
/// `pid` is a live tuple that [`is_container_pid`] accepted and the GIL is held.
pub(super) unsafe fn module_container(pid: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: as the caller promises; each reference taken here is released or handed back.
    unsafe {
        let m = ffi::PyImport_ImportModule(c"microlambda_rt.pickler".as_ptr());
        if m.is_null() {
            return ptr::null_mut();
        }
        let f = ffi::PyObject_GetAttrString(m, c"_extern_container".as_ptr());
        ffi::Py_DecRef(m);
        if f.is_null() {
            return ptr::null_mut();
        }
        let r = ffi::PyObject_Call(f, pid, ptr::null_mut());
        ffi::Py_DecRef(f);
        r
    }
}
