//! The static analysis of one code object (`analysis.CodeInfo` in the runtime): instruction boundaries, and the
//! stack depth and the slots holding a saved `lasti` before every instruction, found by a walk of the control
//! flow from the first instruction and from every exception handler.
//!
//! The runtime analyses each code object a capture or a restore meets once per process; a fresh child of a
//! zygote meets most of a library job's frames for the first time, and in Python the analysis cost 0.1-0.6 ms per
//! code (a stress checkpoint's chain: up to 5 ms of its pause, `ML_DEBUG`'s `capture: plans analysed` line).
//! [`code_flow`] is the same walk over the same inputs, in the same order (a work stack, the first visit of an
//! instruction decides), so it gives exactly the Python walk's answer; the Python one remains the fallback
//! (and what the runtime's unit tests run without a worker). `tests/engine.rs`
//! `the_native_code_analysis_equals_the_python_one` compares the two on every code of the standard library.
use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyFrozenSet, PyList, PyTuple};

const EXTENDED_ARG: u8 = 144;
const HAVE_ARGUMENT: u8 = 90;
const RETURN_GENERATOR: u8 = 75;
const PRECALL: u8 = 166;
const CALL: u8 = 171;
const COPY: u8 = 120;
const SWAP: u8 = 99;

/// One instruction: its first unit (an `EXTENDED_ARG` prefix, if any), its opcode's unit, opcode, argument and
/// the unit after its inline caches.
struct Instr {
    start: usize,
    opu: usize,
    op: u8,
    arg: u32,
    end: usize,
}

/// An exception table entry, in units: covered range, handler, depth, whether it pushes `lasti`.
type Entry = (usize, usize, usize, i64, bool);

/// What the walk needs of the opcodes, 256 bytes each: inline cache units (`ops.py`'s `_CACHES`), and flags
/// (0 or 1) for `_JREL`, `_BACKWARD`, `_NO_FALLTHROUGH`.
struct OpSets<'a> {
    caches: &'a [u8],
    jrel: &'a [u8],
    backward: &'a [u8],
    no_fallthrough: &'a [u8],
}

fn decode(raw: &[u8], caches: &[u8]) -> PyResult<(Vec<usize>, Vec<Instr>)> {
    let n = raw.len() / 2;
    let mut owner = vec![0usize; n];
    let mut ops = Vec::with_capacity(n / 2);
    let mut i = 0;
    let bad = || PyValueError::new_err("a code object ends inside an instruction");
    while i < n {
        let start = i;
        let (mut op, mut arg) = (raw[2 * i], u32::from(raw[2 * i + 1]));
        while op == EXTENDED_ARG {
            i += 1;
            if i >= n {
                return Err(bad());
            }
            op = raw[2 * i];
            arg = (arg << 8) | u32::from(raw[2 * i + 1]);
        }
        let end = i + 1 + usize::from(*caches.get(usize::from(op)).ok_or_else(bad)?);
        let k = ops.len();
        for o in &mut owner[start..end.min(n)] {
            *o = k;
        }
        ops.push(Instr { start, opu: i, op, arg, end });
        i = end;
    }
    Ok((owner, ops))
}

fn stack_effect(op: u8, arg: u32, jump: bool) -> PyResult<i64> {
    let oparg = if op >= HAVE_ARGUMENT { arg as i32 } else { 0 };
    // SAFETY: a pure function of its integer arguments.
    let e = unsafe { ffi::PyCompile_OpcodeStackEffectWithJump(i32::from(op), oparg, i32::from(jump)) };
    if e == i32::MAX {
        return Err(PyValueError::new_err("invalid opcode or oparg"));
    }
    Ok(i64::from(e))
}

/// Depth and marks (sorted slots) before every instruction; None where no path reaches it.
#[allow(clippy::type_complexity)]
fn flow(
    owner: &[usize],
    ops: &[Instr],
    table: &[Entry],
    sets: &OpSets<'_>,
) -> PyResult<(Vec<Option<i64>>, Vec<Option<Vec<i64>>>)> {
    let n_units = owner.len();
    let mut handler: Vec<Option<usize>> = vec![None; ops.len()];
    for (k, &(start, end, ..)) in table.iter().enumerate() {
        if end > start {
            if start >= n_units {
                return Err(PyValueError::new_err("an exception table entry outside the code"));
            }
            for idx in owner[start]..=owner[end.min(n_units) - 1] {
                if handler[idx].is_none() && start <= ops[idx].opu && ops[idx].opu < end {
                    handler[idx] = Some(k);
                }
            }
        }
    }
    let mut depth: Vec<Option<i64>> = vec![None; ops.len()];
    let mut marks: Vec<Option<Vec<i64>>> = vec![None; ops.len()];
    let mut work: Vec<(usize, i64, Vec<i64>)> = vec![(0, 0, Vec::new())];
    let flag = |v: &[u8], op: u8| v.get(usize::from(op)).is_some_and(|&f| f != 0);
    let unit_owner = |u: usize| owner.get(u).copied().ok_or_else(|| PyValueError::new_err("a jump leaves the code"));
    while let Some((idx, d, mk)) = work.pop() {
        if idx >= ops.len() || depth[idx].is_some() {
            continue;
        }
        depth[idx] = Some(d);
        let ins = &ops[idx];
        let (op, arg) = (ins.op, ins.arg);
        if let Some(k) = handler[idx] {
            let (_, _, target, edepth, lasti) = table[k];
            let mut hm: Vec<i64> = mk.iter().copied().filter(|&s| s < edepth).collect();
            if lasti && !hm.contains(&edepth) {
                hm.push(edepth);
                hm.sort_unstable();
            }
            work.push((unit_owner(target)?, edepth + 1 + i64::from(lasti), hm));
        }
        let mut succ: Vec<(usize, i64)> = Vec::with_capacity(2);
        if op == RETURN_GENERATOR {
            succ.push((unit_owner(ins.end)?, d + 1));
        } else if op == PRECALL {
            succ.push((unit_owner(ins.end)?, d));
        } else if op == CALL {
            succ.push((unit_owner(ins.end)?, d - i64::from(arg) - 1));
        } else if !flag(sets.no_fallthrough, op) && ins.end < n_units {
            succ.push((owner[ins.end], d + stack_effect(op, arg, false)?));
        }
        if flag(sets.jrel, op) {
            let t = if flag(sets.backward, op) {
                ins.end.checked_sub(arg as usize).ok_or_else(|| PyValueError::new_err("a jump leaves the code"))?
            } else {
                ins.end + arg as usize
            };
            succ.push((unit_owner(t)?, d + stack_effect(op, arg, true)?));
        }
        for (nidx, nd) in succ {
            if depth.get(nidx).is_some_and(|x| x.is_some()) {
                continue;
            }
            let nm: Vec<i64> = if mk.is_empty() {
                Vec::new()
            } else if op == COPY {
                let mut m = mk.clone();
                if mk.contains(&(d - i64::from(arg))) && !m.contains(&d) {
                    m.push(d);
                    m.sort_unstable();
                }
                m
            } else if op == SWAP {
                let (top, other) = (d - 1, d - i64::from(arg));
                let (a, b) = (mk.contains(&top), mk.contains(&other));
                let mut m: Vec<i64> = mk.iter().copied().filter(|&s| s != top && s != other).collect();
                if a {
                    m.push(other);
                }
                if b {
                    m.push(top);
                }
                m.sort_unstable();
                m.dedup();
                m
            } else {
                mk.iter().copied().filter(|&s| s < nd).collect()
            };
            work.push((nidx, nd, nm));
        }
        marks[idx] = Some(mk);
    }
    Ok((depth, marks))
}

/// `(owner, starts, opus, ops, args, ends, flow)` of a code object's `co_code` (deoptimised) with its exception
/// table (units): `owner[u]` is the index of the instruction unit `u` belongs to; `flow` is `(depths, marks)`,
/// a depth (or None: unreached) and a frozenset of slots (or None) per instruction, or None when the walk
/// cannot be made here (the Python walk then runs, and raises what it raises).
#[pyfunction]
pub fn code_flow<'py>(
    py: Python<'py>,
    raw: &[u8],
    table: Vec<Entry>,
    caches: &[u8],
    jrel: &[u8],
    backward: &[u8],
    no_fallthrough: &[u8],
) -> PyResult<Bound<'py, PyTuple>> {
    let sets = OpSets { caches, jrel, backward, no_fallthrough };
    let (owner, ops) = decode(raw, sets.caches)?;
    let flowed = match flow(&owner, &ops, &table, &sets) {
        Ok((depth, marks)) => {
            let empty = PyFrozenSet::empty(py)?;
            let marks = marks
                .into_iter()
                .map(|m| match m {
                    None => Ok(py.None().into_bound(py)),
                    Some(m) if m.is_empty() => Ok(empty.clone().into_any()),
                    Some(m) => Ok(PyFrozenSet::new(py, m)?.into_any()),
                })
                .collect::<PyResult<Vec<_>>>()?;
            (PyList::new(py, depth)?, PyList::new(py, marks)?).into_pyobject(py)?.into_any()
        }
        Err(_) => py.None().into_bound(py),
    };
    (
        PyList::new(py, owner)?,
        PyList::new(py, ops.iter().map(|i| i.start))?,
        PyList::new(py, ops.iter().map(|i| i.opu))?,
        PyList::new(py, ops.iter().map(|i| i.op))?,
        PyList::new(py, ops.iter().map(|i| i.arg))?,
        PyList::new(py, ops.iter().map(|i| i.end))?,
        flowed,
    )
        .into_pyobject(py)
}
