//! The identity of numbers across a checkpoint.
//!
//! pickle writes `int` and `float` by value and never memoizes them, so a number two places share before a
//! checkpoint (an estimator's attribute and the dict its parameters were read into) comes back as two equal
//! objects, and code that checks `is` (scikit-learn's `clone`) fails after the restore. The pickler's only hook
//! that sees these objects is `persistent_id`, which the C pickler calls for every object it saves, so its cost
//! is paid per object (`python/bench/number_ids.py` measures it). [`number_ids`] is a C-level function
//! (`METH_O`, no pyo3 argument handling): one type comparison for the objects that are not numbers, and for a
//! number referenced from fewer places than [`SHARED_REFS`], one more.
//!
//! A shared number is written the first time as itself (its persistent id is the number) and after that as the
//! index of its first time (a persistent id of 4 bytes); [`number_loads`] makes the loading side's
//! `persistent_load`, which keeps every number it is given in order and returns the one an index names.
//!
//! The same hook keeps the identity of the strings library modules bind as globals (`argparse.SUPPRESS`, which
//! argparse compares with `is`): pickle writes a str by value, so a parser saved with its actions came back with
//! equal strings that `is` no longer matched, and printed `help='==SUPPRESS=='` in its namespaces. Such a string
//! ([`index_strings`] lists them, per module as the runtime indexes it) is written as (module, name, value) and
//! loaded as the restoring process's own object when that module binds an equal string under that name.
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use std::collections::HashMap;
use std::ffi::CStr;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::raw::c_long;
use std::ptr;
use std::sync::Mutex;

/// The strings library modules bind, by address: the persistent id each is written as, `(module, name, value)`
/// made of copies (the pickler saves a persistent id's items through the same hook, so the id must not hold the
/// string it stands for, nor another in this table), and the string itself (held, so the address stays its own).
#[allow(clippy::type_complexity)]
static LIB_STRS: Mutex<HashMap<usize, (Py<PyTuple>, Py<PyAny>), BuildHasherDefault<AddrHasher>>> =
    Mutex::new(HashMap::with_hasher(BuildHasherDefault::new()));

/// Addresses hash as themselves (their low bits are alignment).
#[derive(Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64 >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Add `(module, name, value)` entries, the str globals of library modules just indexed. Strings of one
/// character are the interpreter's own shared objects, which a load gives back by itself: not listed (so no
/// copy made here, which for them is the same object, is in the table).
#[pyfunction]
pub fn index_strings(py: Python<'_>, entries: Vec<(Bound<'_, PyString>, Bound<'_, PyString>, Bound<'_, PyAny>)>) {
    let Ok(mut table) = LIB_STRS.lock() else { return };
    for (module, name, value) in entries {
        let Ok(v) = value.cast_exact::<PyString>() else { continue };
        let (Ok(m), Ok(n), Ok(text)) = (module.to_str(), name.to_str(), v.to_str()) else { continue };
        if text.chars().nth(1).is_none() {
            continue;
        }
        let copies = [PyString::new(py, m), PyString::new(py, n), PyString::new(py, text)];
        if let Ok(t) = PyTuple::new(py, copies) {
            table.entry(value.as_ptr() as usize).or_insert_with(|| (t.unbind(), value.clone().unbind()));
        }
    }
}

const SAVED: &CStr = c"microlambda.number_ids";
const LOADED: &CStr = c"microlambda.number_loads";

/// What a pickler's `persistent_id` has seen: each shared number's index, and a reference to each (the pickler
/// may free a temporary number whose address a later one then takes).
struct Saved {
    index: HashMap<usize, u32>,
    held: Vec<*mut ffi::PyObject>,
}

/// The references an int or a float has when `persistent_id` is called for it, from which its identity is kept:
/// one from its container and one the pickler holds while it saves a list's or a dict's items; a third means
/// another place may hold the same object. Numbers with fewer are written by value, as pickle does, and cost one
/// type and one count comparison (a list of a million floats stays a list of floats). A number that only a tuple
/// (which the pickler does not hold an extra reference to) and one other place share is reached with two when
/// the tuple comes first, and comes back as two equal objects (`tests/corpus/51_number_identity.py` checks the
/// shapes that are kept).
const SHARED_REFS: ffi::Py_ssize_t = 3;

/// The numbers a `persistent_load` has been given, in order.
struct Loaded {
    held: Vec<*mut ffi::PyObject>,
}

fn release(held: &[*mut ffi::PyObject]) {
    for &o in held {
        // SAFETY: capsule destructors run with the GIL held; each pointer holds one reference taken when kept.
        unsafe { ffi::Py_DecRef(o) };
    }
}

unsafe extern "C" fn drop_saved(cap: *mut ffi::PyObject) {
    // SAFETY: the capsule was made by `number_ids` around a boxed `Saved`.
    let s = unsafe { Box::from_raw(ffi::PyCapsule_GetPointer(cap, SAVED.as_ptr()).cast::<Saved>()) };
    release(&s.held);
}

unsafe extern "C" fn drop_loaded(cap: *mut ffi::PyObject) {
    // SAFETY: the capsule was made by `number_loads` around a boxed `Loaded`.
    let s = unsafe { Box::from_raw(ffi::PyCapsule_GetPointer(cap, LOADED.as_ptr()).cast::<Loaded>()) };
    release(&s.held);
}

fn none() -> *mut ffi::PyObject {
    // SAFETY: the GIL is held; the caller hands this new reference to None to the interpreter.
    unsafe {
        let n = ffi::Py_None();
        ffi::Py_INCREF(n);
        n
    }
}

/// Whether `obj`, an exact `int` or `float`, is one whose identity a load would not keep by itself (ints from
/// -5 to 256 are the interpreter's own shared objects).
///
/// # Safety
/// `obj` is a live exact int or float and the GIL is held.
unsafe fn keeps_no_identity(obj: *mut ffi::PyObject) -> bool {
    // SAFETY: as the caller promises.
    unsafe {
        if ffi::Py_TYPE(obj) != ptr::addr_of_mut!(ffi::PyLong_Type) {
            return true;
        }
        let mut overflow = 0;
        let v: c_long = ffi::PyLong_AsLongAndOverflow(obj, &mut overflow);
        overflow != 0 || !(-5..=256).contains(&v)
    }
}

/// The persistent id of a library module's string (a new reference), or None.
///
/// # Safety
/// `obj` is a live exact str and the GIL is held.
unsafe fn library_string(obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
    let Ok(table) = LIB_STRS.lock() else { return none() };
    match table.get(&(obj as usize)) {
        Some((pid, _)) => {
            let p = pid.as_ptr();
            // SAFETY: the GIL is held; the caller hands this new reference to the pickler.
            unsafe { ffi::Py_INCREF(p) };
            p
        }
        None => none(),
    }
}

unsafe extern "C" fn save_id(cap: *mut ffi::PyObject, obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: called by the interpreter with the GIL held, `cap` the capsule `number_ids` bound, `obj` borrowed.
    unsafe {
        let t = ffi::Py_TYPE(obj);
        // A string held in two places besides the pickler's hand (a library module's and the job's) may be one
        // a library compares with `is`.
        if t == ptr::addr_of_mut!(ffi::PyUnicode_Type) {
            return if ffi::Py_REFCNT(obj) < SHARED_REFS { none() } else { library_string(obj) };
        }
        if (t != ptr::addr_of_mut!(ffi::PyFloat_Type) && t != ptr::addr_of_mut!(ffi::PyLong_Type))
            || ffi::Py_REFCNT(obj) < SHARED_REFS
            || !keeps_no_identity(obj)
        {
            return none();
        }
        let s = &mut *ffi::PyCapsule_GetPointer(cap, SAVED.as_ptr()).cast::<Saved>();
        if let Some(&i) = s.index.get(&(obj as usize)) {
            let b = i.to_le_bytes();
            return ffi::PyBytes_FromStringAndSize(b.as_ptr().cast(), b.len() as ffi::Py_ssize_t);
        }
        let Ok(i) = u32::try_from(s.held.len()) else {
            return none(); // past four billion shared numbers: the rest by value
        };
        s.index.insert(obj as usize, i);
        ffi::Py_INCREF(obj);
        s.held.push(obj);
        ffi::Py_INCREF(obj);
        obj
    }
}

unsafe extern "C" fn load_id(cap: *mut ffi::PyObject, pid: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: called by the unpickler with the GIL held, `cap` the capsule `number_loads` bound, `pid` borrowed.
    unsafe {
        let s = &mut *ffi::PyCapsule_GetPointer(cap, LOADED.as_ptr()).cast::<Loaded>();
        if ffi::PyBytes_CheckExact(pid) != 0 && ffi::PyBytes_Size(pid) == 4 {
            let mut b = [0u8; 4];
            ptr::copy_nonoverlapping(ffi::PyBytes_AsString(pid).cast::<u8>(), b.as_mut_ptr(), 4);
            return match s.held.get(u32::from_le_bytes(b) as usize) {
                Some(&o) => {
                    ffi::Py_INCREF(o);
                    o
                }
                None => {
                    ffi::PyErr_SetString(ffi::PyExc_ValueError, c"a shared number's index before its value".as_ptr());
                    ptr::null_mut()
                }
            };
        }
        if ffi::PyTuple_CheckExact(pid) != 0 && ffi::PyTuple_Size(pid) == 3 {
            return module_string(pid);
        }
        let t = ffi::Py_TYPE(pid);
        if t != ptr::addr_of_mut!(ffi::PyFloat_Type) && t != ptr::addr_of_mut!(ffi::PyLong_Type) {
            ffi::PyErr_SetString(ffi::PyExc_ValueError, c"a persistent id that is not a shared number".as_ptr());
            return ptr::null_mut();
        }
        ffi::Py_INCREF(pid);
        s.held.push(pid);
        ffi::Py_INCREF(pid);
        pid
    }
}

/// A library module's string, `(module, name, value)`: the restoring process's own object when the module is
/// imported and binds a string equal to `value` under `name`, else `value` (a new reference either way).
///
/// # Safety
/// `pid` is a live 3-tuple and the GIL is held.
unsafe fn module_string(pid: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: as the caller promises; every reference taken here is released or handed back.
    unsafe {
        let (module, name, value) =
            (ffi::PyTuple_GetItem(pid, 0), ffi::PyTuple_GetItem(pid, 1), ffi::PyTuple_GetItem(pid, 2));
        let modules = ffi::PyImport_GetModuleDict();
        let m =
            if ffi::PyUnicode_CheckExact(module) != 0 { ffi::PyDict_GetItem(modules, module) } else { ptr::null_mut() };
        if !m.is_null() {
            let v = ffi::PyObject_GetAttr(m, name);
            if v.is_null() {
                ffi::PyErr_Clear();
            } else if ffi::PyUnicode_CheckExact(v) != 0 && ffi::PyUnicode_Compare(v, value) == 0 {
                return v;
            } else {
                ffi::PyErr_Clear();
                ffi::Py_DecRef(v);
            }
        }
        ffi::Py_INCREF(value);
        value
    }
}

/// The method definitions the two functions are made from: the interpreter keeps a pointer to them.
struct Defs(ffi::PyMethodDef, ffi::PyMethodDef);
// SAFETY: the definitions are never written after they are made; they hold static strings and functions.
unsafe impl Sync for Defs {}

static DEFS: Defs = Defs(
    ffi::PyMethodDef {
        ml_name: c"persistent_id".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunction: save_id },
        ml_flags: ffi::METH_O,
        ml_doc: ptr::null(),
    },
    ffi::PyMethodDef {
        ml_name: c"persistent_load".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunction: load_id },
        ml_flags: ffi::METH_O,
        ml_doc: ptr::null(),
    },
);

fn bound<T>(
    py: Python<'_>,
    state: T,
    name: &'static CStr,
    free: unsafe extern "C" fn(*mut ffi::PyObject),
    def: &'static ffi::PyMethodDef,
) -> PyResult<Py<PyAny>> {
    let raw = Box::into_raw(Box::new(state));
    // SAFETY: the capsule owns the box from here (its destructor frees it); the function holds the capsule.
    unsafe {
        let cap = ffi::PyCapsule_New(raw.cast(), name.as_ptr(), Some(free));
        if cap.is_null() {
            drop(Box::from_raw(raw));
            return Err(PyErr::fetch(py));
        }
        let f = ffi::PyCFunction_NewEx(ptr::from_ref(def).cast_mut(), cap, ptr::null_mut());
        ffi::Py_DecRef(cap);
        Ok(Bound::from_owned_ptr_or_err(py, f)?.unbind())
    }
}

/// A `persistent_id` for one pickler that keeps the identity of every `int` and `float` it reaches with at
/// least [`SHARED_REFS`] references.
#[pyfunction]
pub fn number_ids(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let s = Saved { index: HashMap::new(), held: Vec::new() };
    bound(py, s, SAVED, drop_saved, &DEFS.0)
}

/// The `persistent_load` for one load of a pickle written with [`number_ids`].
#[pyfunction]
pub fn number_loads(py: Python<'_>) -> PyResult<Py<PyAny>> {
    bound(py, Loaded { held: Vec::new() }, LOADED, drop_loaded, &DEFS.1)
}
