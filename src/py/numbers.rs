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
//!
//! And it keeps what `id()` returned for objects the state saves: `copy.deepcopy`'s memo, a cache keyed by
//! `id(renderer)`, a set of visited ids hold ints that are addresses, and the objects come back at others. An
//! int that looks like an address (8-aligned, within the process's writable memory) is looked up in the pickler's own memo: when
//! an object saved in this pickle lives there, the int is written as a persistent id holding that object, and
//! the load gives back the restored object's `id()`. An object saved only later in the pickle is not in the memo
//! yet: such ints are listed, and [`id_targets`] finds them in the memo once the dump is over, so that the
//! capture pickles the state again knowing them (`python/microlambda_rt/capture.py`). An int equal to the
//! address of a saved object by chance is taken for its id: it would have to be that exact address.
//!
//! The lists, dicts, sets and bytearrays library modules bind go through it too, saved by reference
//! ([`super::libstate`]).
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use std::collections::HashMap;
use std::ffi::CStr;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::raw::c_long;
use std::ptr;
use std::sync::Mutex;

use super::libstate::{is_container_pid, library_container, module_container};
use super::statics::{is_static_pid, static_load, static_object, static_ref};

/// The strings library modules bind, by address: the persistent id each is written as, `(module, name, value)`
/// made of copies (the pickler saves a persistent id's items through the same hook, so the id must not hold the
/// string it stands for, nor another in this table), and the string itself (held, so the address stays its own).
#[allow(clippy::type_complexity)]
static LIB_STRS: Mutex<HashMap<usize, (Py<PyTuple>, Py<PyAny>), BuildHasherDefault<AddrHasher>>> =
    Mutex::new(HashMap::with_hasher(BuildHasherDefault::new()));

/// Addresses hash as themselves (their low bits are alignment).
#[derive(Default)]
pub(super) struct AddrHasher(u64);

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
    /// The pickler this function is the `persistent_id` of (borrowed: it holds the function, which holds this).
    pickler: *mut ffi::PyObject,
    /// Whether the pickler was checked to be laid out as [`PicklerHead`] says: None until an int needs it.
    layout: Option<bool>,
    /// Objects whose ids the state holds, found by an earlier dump of the same state (address -> object, one
    /// reference each).
    known: HashMap<usize, *mut ffi::PyObject>,
    /// Address-like ints that named no object in the memo when they were saved.
    pending: Vec<usize>,
    /// Addresses of `known` objects given as persistent ids before the pickler memoized them: one asked for
    /// again before it is (its reduce's arguments hold its own id: `c = Counter(); c[id(c)] = 1`) is written as
    /// the int, which would otherwise save the object inside itself without end.
    unsaved: std::collections::HashSet<usize>,
    /// Which input objects this dump found as the job's input came (`statics::static_ref`).
    clean: HashMap<usize, bool>,
}

impl Drop for Saved {
    fn drop(&mut self) {
        release(&self.held);
        release(&self.known.values().copied().collect::<Vec<_>>());
    }
}

/// The start of CPython 3.11's `_pickle.PicklerObject` (Modules/_pickle.c), as far as the memo.
#[repr(C)]
#[allow(dead_code)] // laid out to reach `memo` and `pers_func`; the object header is not read here
struct PicklerHead {
    ob_base: ffi::PyObject,
    memo: *mut MemoTable,
    pers_func: *mut ffi::PyObject,
    pers_func_self: *mut ffi::PyObject,
}

/// `PyMemoTable`: open addressing, keyed by object address.
#[repr(C)]
struct MemoTable {
    mask: usize,
    used: usize,
    allocated: usize,
    table: *mut MemoEntry,
}

#[repr(C)]
#[allow(dead_code)] // the memo index is the pickler's business: only the key is read here
struct MemoEntry {
    key: *mut ffi::PyObject,
    value: ffi::Py_ssize_t,
}

/// The pickler's memo table, once its layout is checked: the pickler's `pers_func` is this very function (a C
/// function whose self is `cap`, no bound self beside it) and the table's sizes are consistent. None otherwise
/// (ids are then not kept, as before).
///
/// # Safety
/// The GIL is held, `s` is `cap`'s state and `s.pickler` is the live pickler that holds `cap`'s function.
unsafe fn memo_of(s: &mut Saved, cap: *mut ffi::PyObject) -> Option<&MemoTable> {
    // SAFETY: as the caller promises; every read is of the pickler's head or of a table it points to.
    unsafe {
        if s.pickler.is_null() {
            return None;
        }
        let head = &*s.pickler.cast::<PicklerHead>();
        if s.layout.is_none() {
            let f = head.pers_func;
            s.layout = Some(
                !f.is_null()
                    && ffi::PyCFunction_Check(f) != 0
                    && ffi::PyCFunction_GetSelf(f) == cap
                    && head.pers_func_self.is_null(),
            );
        }
        if s.layout != Some(true) || head.memo.is_null() {
            return None;
        }
        let mt = &*head.memo;
        let size = mt.mask.wrapping_add(1);
        (!mt.table.is_null() && size.is_power_of_two() && mt.allocated == size && mt.used < size).then_some(mt)
    }
}

/// The object at `addr` when the memo holds one there: `_PyMemoTable_Lookup`'s probe (hash = address >> 3,
/// then `i = 5i + perturb + 1` with perturb shifted right by 5 each step), bounded; a miss is never wrong, only
/// found later by [`id_targets`]' scan.
///
/// # Safety
/// `mt` is a live memo table checked by [`memo_of`] and the GIL is held.
unsafe fn memo_lookup(mt: &MemoTable, addr: usize) -> Option<*mut ffi::PyObject> {
    let mut i = (addr >> 3) & mt.mask;
    let mut perturb = addr >> 3;
    for _ in 0..=mt.mask.min(4096) {
        // SAFETY: the index is masked to the table's size.
        let key = unsafe { (*mt.table.add(i & mt.mask)).key };
        if key.is_null() {
            return None;
        }
        if key as usize == addr {
            return Some(key);
        }
        i = (i << 2).wrapping_add(i).wrapping_add(perturb).wrapping_add(1);
        perturb >>= 5;
    }
    None
}

/// An int's `ob_size` in CPython 3.11: its number of 30-bit digits, negative for a negative int (pyo3's
/// `Py_SIZE` refuses ints, whose layout 3.12 changed; this runtime is 3.11's).
///
/// # Safety
/// `obj` is a live int and the GIL is held.
unsafe fn long_digits(obj: *mut ffi::PyObject) -> ffi::Py_ssize_t {
    // SAFETY: as the caller promises; a 3.11 int starts with a PyVarObject header.
    unsafe { (*obj.cast::<ffi::PyVarObject>()).ob_size }
}

/// The value of an int that may be an object's `id()`: two 30-bit digits in CPython 3.11's ints, within the
/// process's writable memory ([`writable_span`]) and 8-aligned.
///
/// # Safety
/// `obj` is a live exact int and the GIL is held.
unsafe fn address_like(obj: *mut ffi::PyObject) -> Option<usize> {
    // SAFETY: as the caller promises.
    unsafe {
        if long_digits(obj) != 2 {
            return None;
        }
        // Its two digits, read in place (3.11: 30-bit digits in u32s after the PyVarObject header).
        let digits = obj.cast::<u8>().add(std::mem::size_of::<ffi::PyVarObject>()).cast::<u32>();
        let v = u64::from(*digits) | (u64::from(*digits.add(1)) << 30);
        let (low, high) = *WRITABLE_SPAN.get_or_init(writable_span);
        ((low..high).contains(&v) && v & 7 == 0).then_some(v as usize)
    }
}

/// Where this process's writable memory lies, lowest start to highest end of its writable mappings
/// (`/proc/self/maps`), as u64: every object's address is in it (heap, arenas, the data of the executable and of
/// libpython). Ints outside it, like OSM node ids or millisecond timestamps, are not looked up. Read once per
/// process, in a zygote before it forks ([`read_writable_span`]: a child has its parent's mappings, and reading
/// the maps of a process with the paper's libraries costs ~1-1.4 ms, which a ride session's every stop checkpoint
/// paid); without /proc: 2^32 to 2^48.
static WRITABLE_SPAN: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();

/// Read [`WRITABLE_SPAN`] now (a zygote, before its forks), not at a child's first capture.
pub(crate) fn read_writable_span() {
    WRITABLE_SPAN.get_or_init(writable_span);
}

fn writable_span() -> (u64, u64) {
    let fallback = (1u64 << 32, 1u64 << 48);
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return fallback };
    let spans = maps.lines().filter_map(|line| {
        let mut fields = line.split_whitespace();
        let (range, perms) = (fields.next()?, fields.next()?);
        let (a, b) = range.split_once('-')?;
        perms.as_bytes().get(1).is_some_and(|&w| w == b'w').then_some(())?;
        Some((u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(b, 16).ok()?))
    });
    let (low, high) = spans.fold((u64::MAX, 0), |(lo, hi), (a, b)| (lo.min(a), hi.max(b)));
    if low >= high {
        return fallback;
    }
    // Room above for mappings made later (arenas, the heap growing): up to the 47-bit user space's end.
    (low.max(1 << 32), high.clamp(1 << 47, 1 << 48))
}

/// The persistent id of an int that is the `id()` of an object this pickle saves, or null: the object itself,
/// or `(object,)` where it is an instance (or a subclass's) of a type a persistent id of another kind has (a
/// number, bytes, a tuple, a str). The bare object costs the pickler a memo reference and one opcode; a tuple
/// would be memoized besides.
///
/// # Safety
/// As [`memo_of`]; `addr` is what [`address_like`] made of the int being saved.
unsafe fn id_of_saved(s: &mut Saved, cap: *mut ffi::PyObject, addr: usize) -> *mut ffi::PyObject {
    // SAFETY: as the caller promises; the tuple gets a new reference to the object it holds.
    unsafe {
        if s.pickler.is_null() {
            return ptr::null_mut();
        }
        let mut target = memo_of(s, cap).and_then(|mt| memo_lookup(mt, addr));
        if target.is_none() {
            if let Some(&o) = s.known.get(&addr) {
                if !s.unsaved.insert(addr) {
                    return ptr::null_mut(); // asked for again while the pickler is still saving it
                }
                target = Some(o);
            }
        }
        match target {
            Some(o) => {
                let ambiguous = ffi::PyLong_Check(o) != 0
                    || ffi::PyFloat_Check(o) != 0
                    || ffi::PyBytes_Check(o) != 0
                    || ffi::PyTuple_Check(o) != 0
                    || ffi::PyUnicode_Check(o) != 0;
                if ambiguous {
                    ffi::PyTuple_Pack(1, o)
                } else {
                    ffi::Py_INCREF(o);
                    o
                }
            }
            None if !s.known.contains_key(&addr) => {
                // An object saved by its path from a static global or the input is in no memo: the int becomes
                // the restored object's id through a 1-tuple whose item the pickler saves by reference.
                if let Some(o) = static_object(addr) {
                    let pid = static_ref(o, &mut s.clean);
                    if !pid.is_null() {
                        ffi::Py_DecRef(pid);
                        return ffi::PyTuple_Pack(1, o);
                    }
                }
                s.pending.push(addr);
                ptr::null_mut()
            }
            None => ptr::null_mut(),
        }
    }
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
    drop(unsafe { Box::from_raw(ffi::PyCapsule_GetPointer(cap, SAVED.as_ptr()).cast::<Saved>()) });
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
        if t != ptr::addr_of_mut!(ffi::PyFloat_Type) && t != ptr::addr_of_mut!(ffi::PyLong_Type) {
            // A list, dict, set or bytearray a library module binds: by reference (`libstate.rs`); what a job's
            // static global reaches: by its path from it (`statics.rs`).
            let mut pid = library_container(obj);
            if pid.is_null() {
                let s = &mut *ffi::PyCapsule_GetPointer(cap, SAVED.as_ptr()).cast::<Saved>();
                pid = static_ref(obj, &mut s.clean);
            }
            return if pid.is_null() { none() } else { pid };
        }
        if t == ptr::addr_of_mut!(ffi::PyLong_Type) {
            if let Some(addr) = address_like(obj) {
                let s = &mut *ffi::PyCapsule_GetPointer(cap, SAVED.as_ptr()).cast::<Saved>();
                let pid = id_of_saved(s, cap, addr);
                if !pid.is_null() || !ffi::PyErr_Occurred().is_null() {
                    return pid;
                }
            }
        }
        if ffi::Py_REFCNT(obj) < SHARED_REFS || !keeps_no_identity(obj) {
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
        if is_container_pid(pid) {
            return module_container(pid);
        }
        if is_static_pid(pid) {
            return static_load(pid);
        }
        if ffi::PyTuple_CheckExact(pid) != 0 && ffi::PyTuple_Size(pid) == 1 {
            return ffi::PyLong_FromVoidPtr(ffi::PyTuple_GetItem(pid, 0).cast());
        }
        let t = ffi::Py_TYPE(pid);
        if t != ptr::addr_of_mut!(ffi::PyFloat_Type) && t != ptr::addr_of_mut!(ffi::PyLong_Type) {
            if ffi::PyTuple_Check(pid) != 0
                || ffi::PyBytes_Check(pid) != 0
                || ffi::PyUnicode_Check(pid) != 0
                || ffi::PyLong_Check(pid) != 0
                || ffi::PyFloat_Check(pid) != 0
            {
                ffi::PyErr_SetString(ffi::PyExc_ValueError, c"a persistent id of no kind this pickler writes".as_ptr());
                return ptr::null_mut();
            }
            // The id of a saved object: the restored object's.
            return ffi::PyLong_FromVoidPtr(pid.cast());
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
/// least [`SHARED_REFS`] references, and the `id()`s of saved objects the state holds as ints. `pickler` is the
/// `_pickle.Pickler` the function is set on (checked when first needed; None or another object: ids are not
/// kept); `known`, the objects an earlier dump of the same state found by [`id_targets`].
#[pyfunction]
#[pyo3(signature = (pickler=None, known=None))]
pub fn number_ids(
    py: Python<'_>,
    pickler: Option<&Bound<'_, PyAny>>,
    known: Option<HashMap<usize, Bound<'_, PyAny>>>,
) -> PyResult<Py<PyAny>> {
    let pickle_type = py.import("_pickle")?.getattr("Pickler")?;
    let pickler = match pickler {
        Some(p) if p.is_instance(&pickle_type)? => p.as_ptr(),
        _ => ptr::null_mut(),
    };
    let s = Saved {
        index: HashMap::new(),
        held: Vec::new(),
        pickler,
        layout: None,
        known: known.unwrap_or_default().into_iter().map(|(a, o)| (a, o.into_ptr())).collect(),
        pending: Vec::new(),
        unsaved: std::collections::HashSet::new(),
        clean: HashMap::new(),
    };
    bound(py, s, SAVED, drop_saved, &DEFS.0)
}

/// After a dump: the ints that looked like addresses and named no saved object when they were written, which
/// the memo now holds an object at (address -> object). Empty when the dump kept every id it met. A scan of the
/// whole table, once, only when such ints were met. `pickler` is the live pickler whose `persistent_id` was
/// made for it by [`number_ids`] (anything else: nothing found).
#[pyfunction]
pub fn id_targets<'py>(py: Python<'py>, pickler: &Bound<'py, PyAny>) -> PyResult<HashMap<usize, Bound<'py, PyAny>>> {
    let mut out = HashMap::new();
    let Ok(f) = pickler.getattr("persistent_id") else { return Ok(out) };
    let f = f.as_ptr();
    // SAFETY: the GIL is held; the capsule is checked by name before its state is read, and its pickler to be
    // the live one given here (borrowed for the call); the table is read within its size.
    unsafe {
        if ffi::PyCFunction_Check(f) == 0 {
            return Ok(out);
        }
        let cap = ffi::PyCFunction_GetSelf(f);
        if cap.is_null() || ffi::PyCapsule_IsValid(cap, SAVED.as_ptr()) == 0 {
            return Ok(out);
        }
        let s = &mut *ffi::PyCapsule_GetPointer(cap, SAVED.as_ptr()).cast::<Saved>();
        if s.pickler != pickler.as_ptr() || s.pending.is_empty() {
            return Ok(out);
        }
        let pending = std::mem::take(&mut s.pending);
        let Some(mt) = memo_of(s, cap) else { return Ok(out) };
        let keys = (0..=mt.mask).map(|i| (*mt.table.add(i)).key).filter(|k| !k.is_null());
        // The smaller side in a set: a few ints against a large memo, or many ints against a small one.
        if pending.len() <= mt.used {
            let pending: std::collections::HashSet<usize> = pending.into_iter().collect();
            for key in keys.filter(|&k| pending.contains(&(k as usize))) {
                out.insert(key as usize, Bound::from_borrowed_ptr(py, key));
            }
        } else {
            let saved: std::collections::HashSet<usize> = keys.map(|k| k as usize).collect();
            for addr in pending.into_iter().filter(|a| saved.contains(a)) {
                out.insert(addr, Bound::from_borrowed_ptr(py, addr as *mut ffi::PyObject));
            }
        }
    }
    Ok(out)
}

/// The `persistent_load` for one load of a pickle written with [`number_ids`].
#[pyfunction]
pub fn number_loads(py: Python<'_>) -> PyResult<Py<PyAny>> {
    bound(py, Loaded { held: Vec::new() }, LOADED, drop_loaded, &DEFS.1)
}

#[cfg(test)]
mod tests {
    use super::writable_span;

    #[test]
    fn the_writable_span_holds_heap_static_and_mapped_memory_and_not_small_ids() {
        static DATA: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(7);
        let (low, high) = writable_span();
        let heap = Box::new(0u64);
        let mapped = vec![0u8; 64 << 20]; // large enough for its own mapping
        for addr in [&*heap as *const u64 as u64, &DATA as *const _ as u64, mapped.as_ptr() as u64] {
            assert!((low..high).contains(&addr), "{addr:#x} outside {low:#x}..{high:#x}");
        }
        // An OpenStreetMap node id or a millisecond timestamp is not taken for an address.
        assert!(low > 1_800_000_000_000, "{low:#x}");
    }
}
