//! Library modules' own lists, dicts, sets and bytearrays, saved by reference.
//!
//! The checkpoint pickler saves what a library module owns by reference, so that a restore gets the restoring
//! process's own object (`python/microlambda_rt/pickler.py`, the extern index). The C pickler saves an exact
//! `list`, `dict`, `set` or `bytearray` itself, without asking `reducer_override`, so such an object came back
//! as a copy of what it held at the checkpoint: a registry a library fills at run time then missed what was
//! registered after the restore. Pillow's `Image.open` holds `PIL.Image.ID` as its local `formats` while it
//! loads the plugins that register themselves there; resumed with a copy, it looked for the PNG plugin in the
//! copy, and raised `UnidentifiedImageError` (`tests/corpus_libs/29_pil_open_streams.py`). The one hook that
//! sees these objects is `persistent_id` ([`super::numbers`]), and this table is what it looks them up in:
//! - [`index_containers`]: those library modules bind as globals, as the runtime indexes each module; the
//!   persistent id is `(module, name)`;
//! - [`index_classes`]: those in the own dicts of the classes library modules define (an `Enum`'s
//!   `_value2member_map_`, which `Flag` fills with the members it makes at run time; a class's registry of its
//!   subclasses), nested classes' too, walked here because a library-heavy worker has tens of thousands of
//!   class attributes; the persistent id is `(module, (name, steps))`, the path `_extern_path` follows;
//! - [`index_instances`]: those in the own dicts of the instances library modules bind (`logging.root.handlers`),
//!   and of the instances their classes hold (`logging.Logger.manager.loggerDict`), one level deep;
//! - [`index_paths`]: those a library function holds as default values (`def f(x, cache={})`), entered by the
//!   runtime for the functions of the frames it captures, with the same kind of path.
//!
//! [`library_container`] is the persistent id of an object that its path still reaches (its module binds the
//! path's first object under that name, and the last holder — the module, a class's dict, a function's
//! defaults — still holds it), and [`module_container`] loads one as the restoring process's own (through the
//! runtime's `_extern_container`, which imports the module if need be and follows the path).
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::ptr;
use std::sync::Mutex;

use super::numbers::AddrHasher;

/// Where a container is held, checked when it is saved: by the module's namespace under the path's first name
/// (that is all for a module's global), and then by the path's last holder.
enum Holder {
    /// The module binds the container itself.
    Module,
    /// A class's own dict, under a name.
    Class(Py<PyAny>, Py<PyString>),
    /// A function's positional defaults, at an index.
    Default(Py<PyAny>, usize),
    /// A function's keyword-only defaults, under a name.
    KwDefault(Py<PyAny>, Py<PyString>),
    /// An instance's own dict (its `__dict__` found again when checked: it may have been replaced), under a name.
    Instance(Py<PyAny>, Py<PyString>),
}

/// One container a library owns: the persistent id it is written as (its strings are copies: the pickler saves
/// a persistent id's items through the same hook), the module's namespace and the object it must bind under the
/// path's first name, where the container is held, and the container itself (held, so the address stays its
/// own).
struct Entry {
    pid: Py<PyTuple>,
    namespace: Py<PyDict>,
    root: Py<PyAny>,
    holder: Holder,
    _held: Py<PyAny>,
}

static LIB_CONTAINERS: Mutex<Table> = Mutex::new(HashMap::with_hasher(BuildHasherDefault::new()));

type Table = HashMap<usize, Entry, BuildHasherDefault<AddrHasher>>;

/// Where the walks of [`index_classes`] and [`index_instances`] started: a library module's name, the name it
/// binds the first object under, its namespace and that object.
struct Origin<'a, 'py> {
    module: &'a Bound<'py, PyString>,
    name: &'a Bound<'py, PyString>,
    namespace: &'a Bound<'py, PyDict>,
    root: &'a Bound<'py, PyAny>,
    /// The runtime's extern index (`pickler._EXTERN`, id -> path), where a class walk enters the other objects
    /// a class holds, and the types it leaves to the pickler's own reductions.
    externs: Option<(&'a Bound<'py, PyDict>, &'a Bound<'py, PyTuple>)>,
}

impl<'py> Origin<'_, 'py> {
    /// Enter `value`, the container at the end of `steps`, held by `holder`.
    fn enter(&self, table: &mut Table, steps: Vec<Bound<'py, PyTuple>>, holder: Holder, value: &Bound<'py, PyAny>) {
        let py = value.py();
        let Ok(path) = PyTuple::new(py, steps) else { return };
        let Some(pid) = path_pid(py, self.module, self.name, path) else { return };
        enter(table, pid, self.namespace, self.root, holder, value);
    }
}

/// The items of the dict at `d` whose keys are exact strings, as owned references, read with `PyDict_Next`
/// (which stays in bounds if the dict changes; nothing that could run Python code is called while reading).
///
/// # Safety
/// `d` is a live dict or null, and the GIL is held.
unsafe fn str_items<'py>(py: Python<'py>, d: *mut ffi::PyObject) -> Vec<(Bound<'py, PyString>, Bound<'py, PyAny>)> {
    let mut out = Vec::new();
    if d.is_null() {
        return out;
    }
    let (mut pos, mut k, mut v): (ffi::Py_ssize_t, *mut ffi::PyObject, *mut ffi::PyObject) =
        (0, ptr::null_mut(), ptr::null_mut());
    // SAFETY: as the caller promises; `PyDict_Next` hands borrowed references, taken here as owned ones.
    unsafe {
        while ffi::PyDict_Next(d, &mut pos, &mut k, &mut v) != 0 {
            if ffi::PyUnicode_CheckExact(k) != 0 {
                out.push((Bound::from_borrowed_ptr(py, k).cast_into_unchecked(), Bound::from_borrowed_ptr(py, v)));
            }
        }
    }
    out
}

/// The path `steps` with the step `("d", key)` after them.
fn step<'py>(steps: &[Bound<'py, PyTuple>], key: &Bound<'py, PyString>) -> Option<Vec<Bound<'py, PyTuple>>> {
    let s = PyTuple::new(key.py(), [PyString::new(key.py(), "d").into_any(), key.clone().into_any()]).ok()?;
    let mut path = steps.to_vec();
    path.push(s);
    Some(path)
}

/// How deep [`index_classes`] goes into classes nested in classes.
const NESTED_CLASSES: usize = 3;

/// Whether `t` is one of the container types the C pickler saves itself and that a library mutates in place.
fn mutable_container(t: *mut ffi::PyTypeObject) -> bool {
    t == ptr::addr_of_mut!(ffi::PyList_Type)
        || t == ptr::addr_of_mut!(ffi::PyDict_Type)
        || t == ptr::addr_of_mut!(ffi::PySet_Type)
        || t == ptr::addr_of_mut!(ffi::PyByteArray_Type)
}

/// Enter `value` (when it is a mutable container no entry has yet) under the persistent id `pid`.
fn enter(
    table: &mut Table,
    pid: Bound<'_, PyTuple>,
    namespace: &Bound<'_, PyDict>,
    root: &Bound<'_, PyAny>,
    holder: Holder,
    value: &Bound<'_, PyAny>,
) {
    if !mutable_container(value.get_type().as_type_ptr()) {
        return;
    }
    table.entry(value.as_ptr() as usize).or_insert_with(|| Entry {
        pid: pid.unbind(),
        namespace: namespace.clone().unbind(),
        root: root.clone().unbind(),
        holder,
        _held: value.clone().unbind(),
    });
}

/// A fresh copy of `s` (see [`Entry`]).
fn copied<'py>(py: Python<'py>, s: &Bound<'py, PyString>) -> Option<Bound<'py, PyString>> {
    s.to_str().ok().map(|t| PyString::new(py, t))
}

/// Add `(module, name, namespace, value)` entries: the exact lists, dicts, sets and bytearrays bound as globals
/// by a library module just indexed (`namespace` is its `__dict__`). The first path found to an object keeps it.
#[pyfunction]
#[allow(clippy::type_complexity)]
pub fn index_containers(
    py: Python<'_>,
    entries: Vec<(Bound<'_, PyString>, Bound<'_, PyString>, Bound<'_, PyDict>, Bound<'_, PyAny>)>,
) {
    let Ok(mut table) = LIB_CONTAINERS.lock() else { return };
    for (module, name, namespace, value) in entries {
        let (Some(m), Some(n)) = (copied(py, &module), copied(py, &name)) else { continue };
        let Ok(pid) = PyTuple::new(py, [m, n]) else { continue };
        enter(&mut table, pid, &namespace, &value, Holder::Module, &value);
    }
}

/// The persistent id `(module, (name, steps))` of a container at the end of a path (`_extern_path`'s form).
fn path_pid<'py>(
    py: Python<'py>,
    module: &Bound<'py, PyString>,
    name: &Bound<'py, PyString>,
    steps: Bound<'py, PyTuple>,
) -> Option<Bound<'py, PyTuple>> {
    let path = PyTuple::new(py, [copied(py, name)?.into_any(), steps.into_any()]).ok()?;
    PyTuple::new(py, [copied(py, module)?.into_any(), path.into_any()]).ok()
}

/// Add `(module, name, namespace, class)` entries: the classes a library module just indexed binds
/// (`namespace` is its `__dict__`). Each class the module defines under that name (its `__module__` and
/// `__qualname__` say so: an alias is another module's, or another name's) has the lists, dicts, sets and
/// bytearrays of its own dict entered, and its nested classes theirs, with the path `(("d", attr), ...)`; the
/// other objects of its own dict that keep an identity of their own (instances of Python classes, `object()`
/// sentinels: `MutableMapping`'s `__marker`, `logging.Logger.manager`) go into `externs`, the runtime's extern
/// index, under `(module, name, path)`, so the pickler saves them by reference as well (`_extern_path`), but for
/// instances of the types in `by_value` (locks: one a class holds, held by the job's thread at the checkpoint,
/// is saved held, and a reference would be the restoring process's own, free: matplotlib's
/// `Figure._render_lock`, released on resume by the `with` that took it, raised "cannot release un-acquired
/// lock").
#[pyfunction]
#[allow(clippy::type_complexity)]
pub fn index_classes(
    entries: Vec<(Bound<'_, PyString>, Bound<'_, PyString>, Bound<'_, PyDict>, Bound<'_, PyAny>)>,
    externs: Bound<'_, PyDict>,
    by_value: Bound<'_, PyTuple>,
) {
    let Ok(mut table) = LIB_CONTAINERS.lock() else { return };
    for (module, name, namespace, cls) in entries {
        if defined_as(&cls, &module, &name) {
            let externs = Some((&externs, &by_value));
            let at = Origin { module: &module, name: &name, namespace: &namespace, root: &cls, externs };
            walk_class(&mut table, &at, &cls, Vec::new(), &name);
        }
    }
}

/// Whether `cls` is a heap type whose own dict says it was defined in `module` under the qualified name
/// `qualname` (read from the type object, never through a metaclass's attribute lookup).
fn defined_as(cls: &Bound<'_, PyAny>, module: &Bound<'_, PyString>, qualname: &Bound<'_, PyString>) -> bool {
    // SAFETY: the GIL is held (`cls` is bound); a heap type's object is a `PyHeapTypeObject`, whose
    // `ht_qualname` is a str it owns; `tp_dict` is the type's own dict (or null before it is ready).
    unsafe {
        if ffi::PyType_Check(cls.as_ptr()) == 0 {
            return false;
        }
        let t = cls.as_ptr().cast::<ffi::PyTypeObject>();
        if ffi::PyType_GetFlags(t) & ffi::Py_TPFLAGS_HEAPTYPE == 0 || (*t).tp_dict.is_null() {
            return false;
        }
        let q = (*t.cast::<ffi::PyHeapTypeObject>()).ht_qualname;
        let m = ffi::PyDict_GetItemString((*t).tp_dict, c"__module__".as_ptr());
        if m.is_null() {
            return false;
        }
        ffi::PyUnicode_CheckExact(q) != 0
            && ffi::PyUnicode_CheckExact(m) != 0
            && ffi::PyUnicode_Compare(q, qualname.as_ptr()) == 0
            && ffi::PyUnicode_Compare(m, module.as_ptr()) == 0
    }
}

/// Enter the containers of `cls`'s own dict (reached from `at` by `steps`), and walk the classes nested in it and
/// the instances it holds.
fn walk_class<'py>(
    table: &mut Table,
    at: &Origin<'_, 'py>,
    cls: &Bound<'py, PyAny>,
    steps: Vec<Bound<'py, PyTuple>>,
    qualname: &Bound<'py, PyString>,
) {
    let py = cls.py();
    // SAFETY: `defined_as` accepted `cls`, so its `tp_dict` is a live dict.
    for (key, value) in unsafe { str_items(py, (*cls.as_ptr().cast::<ffi::PyTypeObject>()).tp_dict) } {
        if mutable_container(value.get_type().as_type_ptr()) {
            let Some(path) = step(&steps, &key) else { continue };
            at.enter(table, path, Holder::Class(cls.clone().unbind(), key.unbind()), &value);
        } else if value.is_instance_of::<PyType>() {
            let (Ok(k), Ok(q)) = (key.to_str(), qualname.to_str()) else { continue };
            let inner = PyString::new(py, &format!("{q}.{k}"));
            if steps.len() + 1 < NESTED_CLASSES && defined_as(&value, at.module, &inner) {
                let Some(path) = step(&steps, &key) else { continue };
                walk_class(table, at, &value, path, &inner);
            }
        } else if !(key.to_str().is_ok_and(|k| k.starts_with("__") && k.ends_with("__"))) {
            if let Some((externs, by_value)) = at.externs {
                if keeps_identity(&value) && !by_value.iter().any(|t| t.as_ptr() == value.get_type().as_ptr()) {
                    enter_extern(externs, at, &value, &steps, &key);
                }
            }
            // An instance the class holds (`logging.Logger.manager`, whose `loggerDict` every getLogger fills).
            walk_instance(table, at, &value, &steps, Some(&key));
        }
    }
}

/// Whether `obj` is an instance of a heap type (a class statement's) or a bare `object()`: what the pickler
/// would save by value, losing its identity, and what a class holds to compare with `is`. Functions,
/// descriptors, class and static methods and other built-in objects are saved by reference without the index.
fn keeps_identity(obj: &Bound<'_, PyAny>) -> bool {
    let t = obj.get_type().as_type_ptr();
    // SAFETY: the GIL is held (`obj` is bound); `t` is its live type.
    t == ptr::addr_of_mut!(ffi::PyBaseObject_Type)
        || (unsafe { ffi::PyType_GetFlags(t) } & ffi::Py_TPFLAGS_HEAPTYPE != 0 && !obj.is_instance_of::<PyType>())
}

/// Enter `value`, held by a class reached from `at` by `steps` under `key`, in the extern index `externs`
/// unless it has an entry already (the first path found keeps an object, as in the runtime's index).
fn enter_extern<'py>(
    externs: &Bound<'py, PyDict>,
    at: &Origin<'_, 'py>,
    value: &Bound<'py, PyAny>,
    steps: &[Bound<'py, PyTuple>],
    key: &Bound<'py, PyString>,
) {
    let id = value.as_ptr() as usize;
    if externs.contains(id).unwrap_or(true) {
        return;
    }
    let Some(path) = step(steps, key).and_then(|p| PyTuple::new(value.py(), p).ok()) else { return };
    let Ok(r) = PyTuple::new(value.py(), [at.module.clone().into_any(), at.name.clone().into_any(), path.into_any()])
    else {
        return;
    };
    let _ = externs.set_item(id, r);
}

/// The interned string `"__dict__"` (made once, kept for the process's life), or null.
///
/// # Safety
/// The GIL is held.
unsafe fn dunder_dict() -> *mut ffi::PyObject {
    static NAME: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    // SAFETY: as the caller promises; the string is never released, so the address stays its own.
    *NAME.get_or_init(|| unsafe { ffi::PyUnicode_InternFromString(c"__dict__".as_ptr()) as usize })
        as *mut ffi::PyObject
}

/// The own dict of `obj` (a new reference) when it is an instance of a class made by a `class` statement or a
/// C extension's heap type (not a function, method, module or other built-in object that happens to have a
/// dict), which keeps one as Python classes do (a `__dict__` getset descriptor first in its MRO, so
/// `obj.__dict__` is what a restore's path follows), else None with no error set.
///
/// # Safety
/// `obj` is a live object and the GIL is held.
pub(super) unsafe fn instance_dict(obj: *mut ffi::PyObject) -> Option<*mut ffi::PyObject> {
    // SAFETY: as the caller promises; the type's MRO and dicts are borrowed while nothing else runs.
    unsafe {
        let t = ffi::Py_TYPE(obj);
        let flags = ffi::PyType_GetFlags(t);
        if ffi::PyType_Check(obj) != 0
            || flags & ffi::Py_TPFLAGS_HEAPTYPE == 0
            || ((*t).tp_dictoffset == 0 && flags & ffi::Py_TPFLAGS_MANAGED_DICT == 0)
        {
            return None;
        }
        let mro = (*t).tp_mro;
        if mro.is_null() || ffi::PyTuple_CheckExact(mro) == 0 {
            return None;
        }
        let name = dunder_dict();
        if name.is_null() {
            return None;
        }
        let mut descr = ptr::null_mut();
        for i in 0..ffi::PyTuple_Size(mro) {
            let d = (*ffi::PyTuple_GetItem(mro, i).cast::<ffi::PyTypeObject>()).tp_dict;
            if !d.is_null() {
                descr = ffi::PyDict_GetItem(d, name);
                if !descr.is_null() {
                    break;
                }
            }
        }
        if descr.is_null() || ffi::Py_TYPE(descr) != ptr::addr_of_mut!(ffi::PyGetSetDescr_Type) {
            return None;
        }
        let d = ffi::PyObject_GenericGetDict(obj, ptr::null_mut());
        if d.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        if ffi::PyDict_CheckExact(d) == 0 {
            ffi::Py_DecRef(d);
            return None;
        }
        Some(d)
    }
}

/// Enter the containers in the own dict of `obj`, a library's instance reached from `at` by `steps` and then,
/// when given, the step `("d", via)` (made only for an instance that has containers: a class holds many more
/// functions than instances). One level: an instance's instances are the library's data, not its registries.
fn walk_instance<'py>(
    table: &mut Table,
    at: &Origin<'_, 'py>,
    obj: &Bound<'py, PyAny>,
    steps: &[Bound<'py, PyTuple>],
    via: Option<&Bound<'py, PyString>>,
) {
    let py = obj.py();
    // SAFETY: the GIL is held; `instance_dict` returns a new reference, owned by `own`.
    let items = unsafe {
        let Some(own) = instance_dict(obj.as_ptr()) else { return };
        let own = Bound::from_owned_ptr(py, own);
        str_items(py, own.as_ptr())
    };
    let mut prefix = None;
    for (key, value) in items {
        if !mutable_container(value.get_type().as_type_ptr()) {
            continue;
        }
        if prefix.is_none() {
            prefix = match via {
                None => Some(steps.to_vec()),
                Some(v) => step(steps, v),
            };
        }
        let Some(base) = &prefix else { return };
        let Some(path) = step(base, &key) else { continue };
        at.enter(table, path, Holder::Instance(obj.clone().unbind(), key.unbind()), &value);
    }
}

/// Add `(module, name, namespace, value)` entries: the instances a library module just indexed binds (any
/// other value is passed over). The lists, dicts, sets and bytearrays of each one's own dict are entered, with
/// the path `(("d", attr),)`: `logging.root.handlers`, the registry dict a library's default registry object
/// holds.
#[pyfunction]
#[allow(clippy::type_complexity)]
pub fn index_instances(entries: Vec<(Bound<'_, PyString>, Bound<'_, PyString>, Bound<'_, PyDict>, Bound<'_, PyAny>)>) {
    let Ok(mut table) = LIB_CONTAINERS.lock() else { return };
    for (module, name, namespace, value) in entries {
        walk_instance(
            &mut table,
            &Origin { module: &module, name: &name, namespace: &namespace, root: &value, externs: None },
            &value,
            &[],
            None,
        );
    }
}

/// Add `(module, name, steps, namespace, root, holder, key, value)` entries: a container `value` that a
/// library function holds as a default, `holder` the function, `key` the default's index (an int) or its
/// keyword (a str), the function reached from `namespace[name]` (which is `root`) by `steps`.
#[pyfunction]
#[allow(clippy::type_complexity)]
pub fn index_paths(
    py: Python<'_>,
    entries: Vec<(
        Bound<'_, PyString>,
        Bound<'_, PyString>,
        Bound<'_, PyTuple>,
        Bound<'_, PyDict>,
        Bound<'_, PyAny>,
        Bound<'_, PyAny>,
        Bound<'_, PyAny>,
        Bound<'_, PyAny>,
    )>,
) {
    let Ok(mut table) = LIB_CONTAINERS.lock() else { return };
    for (module, name, steps, namespace, root, holder, key, value) in entries {
        let holder = if let Ok(k) = key.extract::<usize>() {
            Holder::Default(holder.unbind(), k)
        } else if let Ok(k) = key.cast_into::<PyString>() {
            Holder::KwDefault(holder.unbind(), k.unbind())
        } else {
            continue;
        };
        let Some(pid) = path_pid(py, &module, &name, steps) else { continue };
        enter(&mut table, pid, &namespace, &root, holder, &value);
    }
}

/// Whether `holder` still holds `obj` where the entry says (a borrowed lookup: no Python code runs).
///
/// # Safety
/// `obj` is a live object and the GIL is held.
unsafe fn still_held(holder: &Holder, obj: *mut ffi::PyObject) -> bool {
    // SAFETY: as the caller promises; the holders are held by the table; borrowed references only.
    unsafe {
        let found = match holder {
            Holder::Module => return true,
            Holder::Class(cls, key) => {
                let d = (*cls.as_ptr().cast::<ffi::PyTypeObject>()).tp_dict;
                if d.is_null() {
                    ptr::null_mut()
                } else {
                    ffi::PyDict_GetItemWithError(d, key.as_ptr())
                }
            }
            Holder::Default(f, i) => {
                let t = ffi::PyFunction_GetDefaults(f.as_ptr());
                if t.is_null() || ffi::PyTuple_Size(t) <= *i as ffi::Py_ssize_t {
                    ptr::null_mut()
                } else {
                    ffi::PyTuple_GetItem(t, *i as ffi::Py_ssize_t)
                }
            }
            Holder::KwDefault(f, key) => {
                let d = ffi::PyFunction_GetKwDefaults(f.as_ptr());
                if d.is_null() {
                    ptr::null_mut()
                } else {
                    ffi::PyDict_GetItemWithError(d, key.as_ptr())
                }
            }
            Holder::Instance(o, key) => {
                let Some(d) = instance_dict(o.as_ptr()) else { return false };
                let found = ffi::PyDict_GetItemWithError(d, key.as_ptr());
                ffi::Py_DecRef(d);
                found
            }
        };
        ffi::PyErr_Clear();
        found == obj
    }
}

/// The persistent id of `obj` when it is a container a library owns (a new reference), else null with no
/// error set.
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
        let first = ffi::PyTuple_GetItem(pid, 1);
        let name = if ffi::PyTuple_CheckExact(first) != 0 { ffi::PyTuple_GetItem(first, 0) } else { first };
        let bound = ffi::PyDict_GetItemWithError(e.namespace.as_ptr(), name);
        if bound != e.root.as_ptr() || !still_held(&e.holder, obj) {
            ffi::PyErr_Clear();
            return ptr::null_mut(); // rebound since: the library's object is another, this one is the job's
        }
        ffi::Py_INCREF(pid);
        pid
    }
}

/// The persistent id `obj` is saved under when it is a container a library owns, else None: what the runtime's
/// pickler asks before it saves an iterator over such a container with the items it had.
#[pyfunction]
pub fn container_ref(obj: &Bound<'_, PyAny>) -> Option<Py<PyAny>> {
    // SAFETY: the GIL is held; `library_container` returns a new reference or null with no error set.
    unsafe { Bound::from_owned_ptr_or_opt(obj.py(), library_container(obj.as_ptr())).map(Bound::unbind) }
}

/// Whether `pid` is a persistent id [`library_container`] writes: a tuple of a string and a string or a
/// `(name, steps)` tuple.
///
/// # Safety
/// `pid` is a live object and the GIL is held.
pub(super) unsafe fn is_container_pid(pid: *mut ffi::PyObject) -> bool {
    // SAFETY: as the caller promises.
    unsafe {
        if ffi::PyTuple_CheckExact(pid) == 0 || ffi::PyTuple_Size(pid) != 2 {
            return false;
        }
        let (m, rest) = (ffi::PyTuple_GetItem(pid, 0), ffi::PyTuple_GetItem(pid, 1));
        ffi::PyUnicode_CheckExact(m) != 0
            && (ffi::PyUnicode_CheckExact(rest) != 0
                || (ffi::PyTuple_CheckExact(rest) != 0
                    && ffi::PyTuple_Size(rest) == 2
                    && ffi::PyUnicode_CheckExact(ffi::PyTuple_GetItem(rest, 0)) != 0
                    && ffi::PyTuple_CheckExact(ffi::PyTuple_GetItem(rest, 1)) != 0))
    }
}

/// The restoring process's own container named by `pid`: `_extern_container(module, name or (name, steps))` of
/// the runtime's pickler (a new reference, or null with its error set).
///
/// # Safety
/// `pid` is a live tuple that [`is_container_pid`] accepted and the GIL is held.
pub(super) unsafe fn module_container(pid: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: as the caller promises.
    unsafe { call_pickler(c"_extern_container", pid) }
}

/// `microlambda_rt.pickler.<name>(*args)`: a new reference, or null with its error set.
///
/// # Safety
/// `args` is a live tuple and the GIL is held.
pub(super) unsafe fn call_pickler(name: &std::ffi::CStr, args: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: as the caller promises; each reference taken here is released or handed back.
    unsafe {
        let m = ffi::PyImport_ImportModule(c"microlambda_rt.pickler".as_ptr());
        if m.is_null() {
            return ptr::null_mut();
        }
        let f = ffi::PyObject_GetAttrString(m, name.as_ptr());
        ffi::Py_DecRef(m);
        if f.is_null() {
            return ptr::null_mut();
        }
        let r = ffi::PyObject_Call(f, args, ptr::null_mut());
        ffi::Py_DecRef(f);
        r
    }
}
