//! What a job's static globals reach, saved by reference.
//!
//! A job names its big read-only objects in `__microlambda_static__` (a street graph, a trained model): the
//! module's top level builds them again in the restoring process, so a checkpoint saves them by reference. Only
//! the global itself was: the objects inside it that library code holds in its frames were saved by value.
//! networkx's Dijkstra holds the graph's adjacency dict (`G._adj`, or a reverse view's, which is `G._pred`) as
//! a local for the whole search, so every checkpoint of the paper's ride workload pickled the Helsinki graph's
//! 24,000 node and edge dicts (760 KB, 13 ms of its 16 ms pause), though the graph was declared static.
//!
//! [`index_static`] walks a static global once per process (at the module's load, so a zygote's children
//! inherit the walk) through dict values, list and tuple items and instances' own dicts, and keeps, per object
//! reached, its parent and the step from it: a link, not a path, so the table stays small. The pickler's
//! `persistent_id` ([`super::numbers`]) asks [`static_ref`] of every object it saves: an object in the table is
//! written as its path from the global, `(module, name, kinds, keys)`, once the path is followed again from the
//! module's namespace and reaches that very object (so an object the job took out of the structure, or one at a
//! dead object's address elsewhere, is saved by value as before). [`static_load`] follows the path in the
//! restoring process. The walk does not enter the module's other globals (a dict a static model shares with a
//! global the job fills is the job's), nor locks, iterators and tuples of plain values.
//!
//! What the declaration promises is what makes this right: everything a static global reaches is what the
//! module's top level builds again. A job that changes a static object in place loses the change at a restore,
//! as it already did for the global itself (docs/CHECKPOINTS.md).
//!
//! The job's input is the other thing a restoring process can build again: its record holds it. [`index_input`]
//! walks it (JSON: dicts, lists and plain values) as a root of its own, bound in the runtime's `pickler` module
//! under a name that carries its digest, keeping what each container was: a dict's version tag (PEP 509: new at
//! every change of any dict, and at every dict's creation), a list's items (held, so that an item at the same
//! address later is that very object, not a new string where a freed one was). Nothing promises
//! the input stays as it came, so [`static_ref`] saves an input object by reference only where it and all it
//! holds are as walked ([`clean`]): an input the job only reads is one reference in every checkpoint, whatever
//! its size; what the job changed is saved by value, the parts it left alone still by reference.
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::ptr;
use std::sync::Mutex;

use super::libstate::{call_pickler, instance_dict};
use super::numbers::AddrHasher;

/// Objects indexed per process at most: a static graph of millions of nodes is walked up to here, the rest
/// saved by value as before (about 60 bytes an entry).
const MAX_LINKS: usize = 1 << 20;

/// A step: the holder's own dict (an instance's attribute), a dict's key, a list's or tuple's index; the
/// letters of the steps the runtime's `_follow` takes (`python/microlambda_rt/pickler.py`).
const ATTR: u8 = b'd';
const KEY: u8 = b'm';
const INDEX: u8 = b'i';

/// How an object is reached: from `parent` (an address in the table, or for a root, the index of its root)
/// by `kind` and `key`; a root's kind is 0.
struct Link {
    parent: usize,
    kind: u8,
    key: Option<Py<PyAny>>,
    /// Under the input's root: a dict's version tag when walked.
    print: u64,
    /// Under the input's root: a list's items when walked (a tuple holding them, so that an item at the same
    /// address is that very object, not another one allocated where a freed item was).
    items: Option<Py<PyAny>>,
}

/// A static global: the module and name it is bound under, the module's namespace, and the object (held, so
/// its address stays its own).
struct Root {
    module: Py<PyString>,
    name: Py<PyString>,
    namespace: Py<PyDict>,
    obj: Py<PyAny>,
    /// The job's input ([`index_input`]): its objects are saved by reference only as they were walked; the
    /// addresses its walk entered (dropped from the table when another input takes its place).
    input: Option<Vec<usize>>,
}

struct Table {
    roots: Vec<Root>,
    links: HashMap<usize, Link, BuildHasherDefault<AddrHasher>>,
}

static TABLE: Mutex<Table> =
    Mutex::new(Table { roots: Vec::new(), links: HashMap::with_hasher(BuildHasherDefault::new()) });

/// Whether `obj` is saved by value whatever holds it (numbers, strings, bytes, None, tuples of those: such a
/// tuple may be a key of its own path) or by reference anyway (types, modules, functions, code), or has state a
/// top level run again does not rebuild (an iterator, a generator, an open file: where it stands; a lock:
/// whether it is held, which the pickler's own reduction saves): not entered.
///
/// # Safety
/// `obj` is a live object and the GIL is held.
unsafe fn not_entered(obj: *mut ffi::PyObject) -> bool {
    // SAFETY: as the caller promises.
    unsafe {
        obj == ffi::Py_None()
            || ffi::PyLong_Check(obj) != 0
            || ffi::PyFloat_Check(obj) != 0
            || ffi::PyUnicode_Check(obj) != 0
            || ffi::PyBytes_Check(obj) != 0
            || ffi::PyComplex_Check(obj) != 0
            || ffi::PyType_Check(obj) != 0
            || ffi::PyModule_Check(obj) != 0
            || ffi::PyFunction_Check(obj) != 0
            || ffi::PyCFunction_Check(obj) != 0
            || ffi::PyCode_Check(obj) != 0
            || (*ffi::Py_TYPE(obj)).tp_iternext.is_some()
            || plain_key(obj, false)
            || is_lock(obj)
    }
}

/// Whether `obj` is a `_thread.lock` or `_thread.RLock`.
///
/// # Safety
/// `obj` is a live object and the GIL is held.
unsafe fn is_lock(obj: *mut ffi::PyObject) -> bool {
    // SAFETY: as the caller promises; a type's name is a C string that lives as long as the type.
    unsafe {
        let name = (*ffi::Py_TYPE(obj)).tp_name;
        !name.is_null() && matches!(std::ffi::CStr::from_ptr(name).to_bytes(), b"_thread.lock" | b"_thread.RLock")
    }
}

/// Whether `key` can stand in a path: a lookup with it runs no Python code, and it pickles by value (an exact
/// str, int, float but NaN (no NaN loaded finds the entry again) or bytes, or a tuple of those: networkx's
/// node ids, a grid graph's coordinates).
///
/// # Safety
/// `key` is a live object and the GIL is held.
unsafe fn plain_key(key: *mut ffi::PyObject, nested: bool) -> bool {
    // SAFETY: as the caller promises.
    unsafe {
        let t = ffi::Py_TYPE(key);
        if t == ptr::addr_of_mut!(ffi::PyUnicode_Type)
            || t == ptr::addr_of_mut!(ffi::PyLong_Type)
            || t == ptr::addr_of_mut!(ffi::PyBytes_Type)
        {
            return true;
        }
        if t == ptr::addr_of_mut!(ffi::PyFloat_Type) {
            return !ffi::PyFloat_AS_DOUBLE(key).is_nan();
        }
        if nested || t != ptr::addr_of_mut!(ffi::PyTuple_Type) {
            return false;
        }
        (0..ffi::PyTuple_Size(key)).all(|i| plain_key(ffi::PyTuple_GetItem(key, i), true))
    }
}

/// Walk `root` (the root numbered `at`), entering every object it reaches that no link has yet.
///
/// # Safety
/// The GIL is held; `root` is live and no Python code runs during the walk (only borrowed lookups).
unsafe fn walk(
    py: Python<'_>,
    links: &mut HashMap<usize, Link, BuildHasherDefault<AddrHasher>>,
    root: *mut ffi::PyObject,
    at: usize,
    skip: &std::collections::HashSet<usize>,
    mut entered: Option<&mut Vec<usize>>,
) {
    // SAFETY: as the caller promises; every object reached is held by its parent while the walk runs.
    unsafe {
        if links.contains_key(&(root as usize)) || links.len() >= MAX_LINKS {
            return;
        }
        let verify = entered.is_some();
        let print = |o| if verify { snapshot(py, o) } else { (0, None) };
        let (p, items) = print(root);
        links.insert(root as usize, Link { parent: at, kind: 0, key: None, print: p, items });
        if let Some(e) = entered.as_deref_mut() {
            e.push(root as usize);
        }
        let mut queue = VecDeque::from([root]);
        let mut enter = |links: &mut HashMap<usize, Link, BuildHasherDefault<AddrHasher>>,
                         queue: &mut VecDeque<*mut ffi::PyObject>,
                         parent: *mut ffi::PyObject,
                         kind: u8,
                         key: *mut ffi::PyObject,
                         v: *mut ffi::PyObject| {
            if not_entered(v)
                || links.len() >= MAX_LINKS
                || links.contains_key(&(v as usize))
                || skip.contains(&(v as usize))
            {
                return;
            }
            let key = Bound::from_borrowed_ptr(py, key).unbind();
            let (p, items) = print(v);
            links.insert(v as usize, Link { parent: parent as usize, kind, key: Some(key), print: p, items });
            if let Some(e) = entered.as_deref_mut() {
                e.push(v as usize);
            }
            queue.push_back(v);
        };
        while let Some(o) = queue.pop_front() {
            if ffi::PyDict_Check(o) != 0 {
                let (mut pos, mut k, mut v) = (0, ptr::null_mut(), ptr::null_mut());
                while ffi::PyDict_Next(o, &mut pos, &mut k, &mut v) != 0 {
                    if plain_key(k, false) {
                        enter(links, &mut queue, o, KEY, k, v);
                    }
                }
            } else if ffi::PyList_Check(o) != 0 || ffi::PyTuple_Check(o) != 0 {
                let list = ffi::PyList_Check(o) != 0;
                let n = if list { ffi::PyList_Size(o) } else { ffi::PyTuple_Size(o) };
                for i in 0..n {
                    let v = if list { ffi::PyList_GetItem(o, i) } else { ffi::PyTuple_GetItem(o, i) };
                    if not_entered(v) {
                        continue; // no index made for the numbers of a list of numbers
                    }
                    let ix = ffi::PyLong_FromSsize_t(i);
                    if ix.is_null() {
                        ffi::PyErr_Clear();
                        return;
                    }
                    enter(links, &mut queue, o, INDEX, ix, v);
                    ffi::Py_DecRef(ix);
                }
            } else if let Some(d) = instance_dict(o) {
                let (mut pos, mut k, mut v) = (0, ptr::null_mut(), ptr::null_mut());
                while ffi::PyDict_Next(d, &mut pos, &mut k, &mut v) != 0 {
                    if ffi::PyUnicode_CheckExact(k) != 0 {
                        enter(links, &mut queue, o, ATTR, k, v);
                    }
                }
                // The instance holds its dict: what the dict holds stays alive after this reference goes.
                ffi::Py_DecRef(d);
            }
        }
    }
}

impl Root {
    fn new(
        module: &Bound<'_, PyString>,
        name: &Bound<'_, PyString>,
        root: &Bound<'_, PyAny>,
        namespace: &Bound<'_, PyDict>,
        input: Option<Vec<usize>>,
    ) -> Self {
        let copy = |s: &Bound<'_, PyString>| PyString::new(root.py(), &s.to_string_lossy()).unbind();
        Root {
            module: copy(module),
            name: copy(name),
            namespace: namespace.clone().unbind(),
            obj: root.clone().unbind(),
            input,
        }
    }
}

/// [`walk`] with the collector held off while it holds borrowed pointers (materializing an instance's dict
/// allocates, and a collection could run finalizers).
///
/// # Safety
/// The GIL is held and `root` is live.
unsafe fn walk_collector_off(
    py: Python<'_>,
    links: &mut HashMap<usize, Link, BuildHasherDefault<AddrHasher>>,
    root: *mut ffi::PyObject,
    at: usize,
    skip: &std::collections::HashSet<usize>,
    entered: Option<&mut Vec<usize>>,
) {
    // SAFETY: as the caller promises; no Python code runs in the walk.
    unsafe {
        let was = ffi::PyGC_Disable();
        walk(py, links, root, at, skip, entered);
        if was != 0 {
            ffi::PyGC_Enable();
        }
    }
}

/// Index what the static global `namespace[name]` (`root`, of module `module`) reaches, unless this process
/// has walked that very object under that name already; the walk does not enter what `others()` lists (the
/// module's globals not declared static: a dict a static object shares with one is the job's, saved with the
/// globals), asked only when there is a walk to make. Returns how many objects the table holds.
#[pyfunction]
pub fn index_static(
    module: &Bound<'_, PyString>,
    name: &Bound<'_, PyString>,
    root: &Bound<'_, PyAny>,
    namespace: &Bound<'_, PyDict>,
    others: &Bound<'_, PyAny>,
) -> usize {
    let py = root.py();
    let Ok(mut t) = TABLE.lock() else { return 0 };
    let (module_s, name_s) = (module.to_string_lossy(), name.to_string_lossy());
    let same =
        |r: &Root| r.module.bind(py).to_string_lossy() == module_s && r.name.bind(py).to_string_lossy() == name_s;
    if let Some(i) = t.roots.iter().position(same) {
        if t.roots[i].obj.as_ptr() == root.as_ptr() {
            return t.links.len();
        }
    }
    let entry = Root::new(module, name, root, namespace, None);
    // A rebound global takes its old slot: the old object's links stay, and are saved by reference only where
    // their path from the new object still leads to them (`static_ref` follows it).
    let at = match t.roots.iter().position(same) {
        Some(i) => {
            t.roots[i] = entry;
            i
        }
        None => {
            t.roots.push(entry);
            t.roots.len() - 1
        }
    };
    let Table { links, .. } = &mut *t;
    let others: Vec<Bound<'_, PyAny>> = others.call0().and_then(|o| o.extract()).unwrap_or_default();
    let skip = others.iter().map(|o| o.as_ptr() as usize).collect();
    // SAFETY: the GIL is held and `root` is live.
    unsafe { walk_collector_off(py, links, root.as_ptr(), at, &skip, None) };
    t.links.len()
}

/// Index the job's input, `namespace[name]` (`root`, bound in the runtime's module `module`), in place of the
/// input indexed before (another job's, in a worker that serves several): the input's walk keeps each
/// container's state, so that only what the job left as it came is saved by reference. Returns how many
/// objects the walk entered.
#[pyfunction]
pub fn index_input(
    module: &Bound<'_, PyString>,
    name: &Bound<'_, PyString>,
    root: &Bound<'_, PyAny>,
    namespace: &Bound<'_, PyDict>,
) -> usize {
    let py = root.py();
    drop(take_input(py));
    let Ok(mut t) = TABLE.lock() else { return 0 };
    let entry = Root::new(module, name, root, namespace, Some(Vec::new()));
    let Table { roots, links } = &mut *t;
    let at = match roots.iter().position(|r| r.input.is_some()) {
        Some(i) => {
            roots[i] = entry; // the input taken out above: nothing of it is released here
            i
        }
        None => {
            roots.push(entry);
            roots.len() - 1
        }
    };
    let mut entered = Vec::new();
    // SAFETY: the GIL is held and `root` is live.
    unsafe { walk_collector_off(py, links, root.as_ptr(), at, &Default::default(), Some(&mut entered)) };
    let n = entered.len();
    roots[at].input = Some(entered);
    n
}

/// Take the job's input out of the table: its links, and the input itself from its root (which stays, empty, for
/// the next input). The caller drops what is returned once the table's lock is released: releasing the input can
/// run a finalizer of an object the job put into it.
fn take_input(py: Python<'_>) -> Option<(Py<PyAny>, Vec<Link>)> {
    let Ok(mut t) = TABLE.lock() else { return None };
    let Table { roots, links } = &mut *t;
    let root = roots.iter_mut().find(|r| r.input.is_some())?;
    let gone = root.input.replace(Vec::new()).unwrap_or_default().iter().filter_map(|a| links.remove(a)).collect();
    Some((std::mem::replace(&mut root.obj, py.None()), gone))
}

/// Forget the job's input: the job ended, or a restore is about to decode its own.
#[pyfunction]
pub fn forget_input(py: Python<'_>) {
    drop(take_input(py));
}

/// What an input container is when walked: an exact dict's version tag (CPython 3.11 gives every dict a new
/// one at its creation and at each change, PEP 509), an exact list's items (held); nothing for anything else.
///
/// # Safety
/// `o` is a live object and the GIL is held.
unsafe fn snapshot(py: Python<'_>, o: *mut ffi::PyObject) -> (u64, Option<Py<PyAny>>) {
    // SAFETY: as the caller promises; an exact dict is laid out as `PyDictObject`.
    unsafe {
        if ffi::PyDict_CheckExact(o) != 0 {
            #[allow(deprecated)] // there in 3.11, the interpreter this runtime embeds
            return ((*o.cast::<ffi::PyDictObject>()).ma_version_tag, None);
        }
        if ffi::PyList_CheckExact(o) != 0 {
            let t = ffi::PyList_AsTuple(o);
            if t.is_null() {
                ffi::PyErr_Clear();
                return (0, None);
            }
            return (0, Some(Bound::from_owned_ptr(py, t).unbind()));
        }
        (0, None)
    }
}

/// Whether the input container `o` is as its link says it was walked: the same dict version, or the same
/// items (the very objects: the link holds them) in the same order.
///
/// # Safety
/// `o` is a live object and the GIL is held.
unsafe fn unchanged(link: &Link, o: *mut ffi::PyObject) -> bool {
    // SAFETY: as the caller promises; the snapshot tuple is held by the link.
    unsafe {
        if ffi::PyDict_CheckExact(o) != 0 {
            #[allow(deprecated)]
            return link.items.is_none() && (*o.cast::<ffi::PyDictObject>()).ma_version_tag == link.print;
        }
        let Some(items) = &link.items else { return false };
        if ffi::PyList_CheckExact(o) == 0 {
            return false;
        }
        let (t, n) = (items.as_ptr(), ffi::PyList_GET_SIZE(o));
        n == ffi::PyTuple_GET_SIZE(t) && (0..n).all(|i| ffi::PyList_GET_ITEM(o, i) == ffi::PyTuple_GET_ITEM(t, i))
    }
}

/// Whether the input object `o` and everything it holds are as [`index_input`] walked them: [`unchanged`]
/// itself (so its items are the walked ones, alive) and each container item clean too. `seen` keeps the
/// answers of one pickling (the state does not change while it is pickled).
///
/// # Safety
/// `o` is a live object, the GIL is held and the table is the locked one.
unsafe fn clean(
    links: &HashMap<usize, Link, BuildHasherDefault<AddrHasher>>,
    o: *mut ffi::PyObject,
    seen: &mut HashMap<usize, bool>,
    depth: usize,
) -> bool {
    // SAFETY: as the caller promises; the items of an unchanged container are the walked ones, live.
    unsafe {
        if let Some(&c) = seen.get(&(o as usize)) {
            return c;
        }
        let ok = match links.get(&(o as usize)) {
            Some(link) if depth < 10_000 && unchanged(link, o) => {
                let mut items = Vec::new();
                if ffi::PyDict_CheckExact(o) != 0 {
                    let (mut pos, mut k, mut v) = (0, ptr::null_mut(), ptr::null_mut());
                    while ffi::PyDict_Next(o, &mut pos, &mut k, &mut v) != 0 {
                        items.push(v);
                    }
                } else {
                    items.extend((0..ffi::PyList_GET_SIZE(o)).map(|i| ffi::PyList_GET_ITEM(o, i)));
                }
                items.into_iter().all(|v| immutable_scalar(v) || clean(links, v, seen, depth + 1))
            }
            _ => false,
        };
        seen.insert(o as usize, ok);
        ok
    }
}

/// Whether `o` is a value JSON decodes that cannot change: a str, int, float, bool or None (exact types).
///
/// # Safety
/// `o` is a live object and the GIL is held.
unsafe fn immutable_scalar(o: *mut ffi::PyObject) -> bool {
    // SAFETY: as the caller promises.
    unsafe {
        o == ffi::Py_None()
            || ffi::PyUnicode_CheckExact(o) != 0
            || ffi::PyLong_CheckExact(o) != 0
            || ffi::PyFloat_CheckExact(o) != 0
            || ffi::PyBool_Check(o) != 0
    }
}

/// One step of a path from `o` (borrowed in, borrowed out; null where the holder no longer holds anything
/// there). No Python code runs: plain keys, and the own dicts of instances.
///
/// # Safety
/// `o` and `key` are live objects and the GIL is held.
unsafe fn step(o: *mut ffi::PyObject, kind: u8, key: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: as the caller promises.
    unsafe {
        let found = match kind {
            KEY if ffi::PyDict_Check(o) != 0 => ffi::PyDict_GetItemWithError(o, key),
            INDEX if ffi::PyList_Check(o) != 0 || ffi::PyTuple_Check(o) != 0 => {
                let i = ffi::PyLong_AsSsize_t(key);
                let list = ffi::PyList_Check(o) != 0;
                let n = if list { ffi::PyList_Size(o) } else { ffi::PyTuple_Size(o) };
                if i < 0 || i >= n {
                    ptr::null_mut()
                } else if list {
                    ffi::PyList_GetItem(o, i)
                } else {
                    ffi::PyTuple_GetItem(o, i)
                }
            }
            ATTR => match instance_dict(o) {
                Some(d) => {
                    let v = ffi::PyDict_GetItemWithError(d, key);
                    ffi::Py_DecRef(d); // the instance holds the dict, the dict holds `v`
                    v
                }
                None => ptr::null_mut(),
            },
            _ => ptr::null_mut(),
        };
        ffi::PyErr_Clear();
        found
    }
}

/// A path's steps from its root: the kind of each and its key (borrowed from the table's links).
type Steps = Vec<(u8, *mut ffi::PyObject)>;

/// Where the table's link for `addr` leads: its root, the steps from it, and the object they reach now, followed
/// again from the root's binding (borrowed; it is the object at `addr` only if the caller finds it so). None where
/// the root was rebound or the path leads nowhere. Only live objects are touched.
///
/// # Safety
/// The GIL is held and `t` is the locked table.
unsafe fn reach(t: &Table, addr: usize) -> Option<(&Root, Steps, *mut ffi::PyObject)> {
    // SAFETY: as the caller promises; the table holds the keys and the roots.
    unsafe {
        let mut link = t.links.get(&addr)?;
        let mut steps: Steps = Vec::new();
        while link.kind != 0 {
            steps.push((link.kind, link.key.as_ref()?.as_ptr()));
            link = t.links.get(&link.parent)?;
            if steps.len() > MAX_LINKS {
                return None;
            }
        }
        let root = t.roots.get(link.parent)?;
        let bound = ffi::PyDict_GetItemWithError(root.namespace.as_ptr(), root.name.as_ptr());
        if bound != root.obj.as_ptr() {
            ffi::PyErr_Clear();
            return None; // the global was rebound: this is the job's object now
        }
        steps.reverse();
        let mut o = bound;
        for &(kind, key) in &steps {
            o = step(o, kind, key);
            if o.is_null() {
                return None;
            }
        }
        Some((root, steps, o))
    }
}

/// The object at `addr` when it is one a static global or the job's input reaches by its path (borrowed), for
/// an int that is its `id()`: the pickler saves it by reference, never into its memo.
///
/// # Safety
/// The GIL is held.
pub(super) unsafe fn static_object(addr: usize) -> Option<*mut ffi::PyObject> {
    // SAFETY: as the caller promises.
    unsafe {
        let t = TABLE.lock().ok()?;
        reach(&t, addr).map(|r| r.2).filter(|&o| o as usize == addr)
    }
}

/// The persistent id of `obj` when a static global reaches it by a path that still leads to it (a new
/// reference), else null with no error set; for the job's input, only when `obj` is [`clean`] (`seen`: the
/// answers of this pickling so far).
///
/// # Safety
/// `obj` is a live object and the GIL is held.
pub(super) unsafe fn static_ref(obj: *mut ffi::PyObject, seen: &mut HashMap<usize, bool>) -> *mut ffi::PyObject {
    // SAFETY: as the caller promises; the table's keys and roots are held by it.
    unsafe {
        let Ok(t) = TABLE.lock() else { return ptr::null_mut() };
        let Some((root, steps, o)) = reach(&t, obj as usize) else { return ptr::null_mut() };
        if o != obj {
            return ptr::null_mut(); // moved, or another object at a dead one's address
        }
        if root.input.is_some() && !clean(&t.links, obj, seen, 0) {
            return ptr::null_mut(); // the job changed it, or something it holds: by value
        }
        let kinds: Vec<u8> = steps.iter().map(|s| s.0).collect();
        let py = Python::assume_attached(); // the GIL is held, as the caller promises
        let keys = pyo3::types::PyTuple::new(py, steps.iter().map(|s| Bound::from_borrowed_ptr(py, s.1)));
        let Ok(keys) = keys else {
            ffi::PyErr_Clear();
            return ptr::null_mut();
        };
        // Copies of the names: the pickler saves a persistent id's items through the same hook.
        let copy = |s: &Py<PyString>| PyString::new(py, &s.bind(py).to_string_lossy());
        let pid = pyo3::types::PyTuple::new(
            py,
            [
                copy(&root.module).into_any(),
                copy(&root.name).into_any(),
                pyo3::types::PyBytes::new(py, &kinds).into_any(),
                keys.into_any(),
            ],
        );
        match pid {
            Ok(p) => p.into_ptr(),
            Err(_) => {
                ffi::PyErr_Clear();
                ptr::null_mut()
            }
        }
    }
}

/// Whether `pid` is one [`static_ref`] writes: `(str, str, bytes, tuple)`.
///
/// # Safety
/// `pid` is a live object and the GIL is held.
pub(super) unsafe fn is_static_pid(pid: *mut ffi::PyObject) -> bool {
    // SAFETY: as the caller promises.
    unsafe {
        ffi::PyTuple_CheckExact(pid) != 0
            && ffi::PyTuple_Size(pid) == 4
            && ffi::PyUnicode_CheckExact(ffi::PyTuple_GetItem(pid, 0)) != 0
            && ffi::PyUnicode_CheckExact(ffi::PyTuple_GetItem(pid, 1)) != 0
            && ffi::PyBytes_CheckExact(ffi::PyTuple_GetItem(pid, 2)) != 0
            && ffi::PyTuple_CheckExact(ffi::PyTuple_GetItem(pid, 3)) != 0
    }
}

/// The restoring process's object at the end of `pid`'s path: the runtime's `_static_path(module, name,
/// kinds, keys)` (a new reference, or null with its error set: a `RestoreError` naming the path).
///
/// # Safety
/// `pid` is a live tuple that [`is_static_pid`] accepted and the GIL is held.
pub(super) unsafe fn static_load(pid: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: as the caller promises.
    unsafe { call_pickler(c"_static_path", pid) }
}
