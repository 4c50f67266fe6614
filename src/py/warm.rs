//! A fresh child's warm-up, run before it says it is ready, so that the copy-on-write faults of the path its job
//! takes are paid while it waits forked ahead (docs/BENCHMARKS.md, "Workers"): a child of the base zygote runs a
//! trivial job of the runtime's own; a child of a set or module zygote, which serves restores, also takes a
//! checkpoint of that job and restores it.
use super::{minor_faults, restore_job, run_job, trigger, Caps, Outgoing};
use crate::worker::ModuleSpec;
use pyo3::prelude::*;
use std::sync::mpsc;
use std::time::Instant;

/// The warm-up job's module: a name no job takes (a node names job modules `mlfn_<digest>`), dropped once it ran.
const WARM_MODULE: &str = "__microlambda_warm__";

/// What a fresh child runs before it says it is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Warm {
    /// Nothing (`ML_WARMUP=0` in the node's environment: to measure what the warm-up saves).
    Off,
    /// The trivial job (a child of the base zygote: it serves job starts and restores).
    Job,
    /// The trivial job, a checkpoint of it taken halfway and restored (a child of a set or module zygote: it
    /// serves restores only).
    Restore,
}

/// Run a trivial job of the runtime's own as [`run_job`] runs every job, before the child says it is ready, then
/// forget its module (`microlambda_rt.forget_module`: nothing of it is left for the job; it draws no random number;
/// its messages go nowhere). The first run of the job path in a child of the zygote writes to ~300 of the pages it
/// shares with the zygote (reference counts, the type cache, the allocator's pools), each a copy-on-write fault:
/// ~1 ms. Paid here, while the child waits forked ahead, they are off the job's path (which then takes ~10), for
/// about the same CPU: the job would have written those pages anyway (docs/BENCHMARKS.md, "Workers").
///
/// With [`Warm::Restore`] the job asks for a snapshot of itself (`_mlrs.warm_checkpoint`; the trigger reports to
/// this function, not the host, meanwhile) and the snapshot is restored and run to its end: a restore's first run
/// in a child wrote ~475 shared pages (~2.4 ms of a session request's 3 ms restore). In a child of a module
/// zygote the job's preloaded module is set aside for the warm-up and put back after it (`lift_preload`).
pub(super) fn warm_child(caps: Caps, warm: Warm) {
    if warm == Warm::Off {
        return;
    }
    let module = ModuleSpec {
        module_name: WARM_MODULE.into(),
        filename: "<microlambda warm-up>".into(),
        source: "def main(n):\n    __import__('_mlrs').warm_checkpoint()\n    s = 0\n    for i in range(n):\n        s += i\n    return s\n".into(),
    };
    let (nowhere, _dropped) = mpsc::channel();
    let t = Instant::now();
    let faults = minor_faults();
    let (tx, taken) = mpsc::channel();
    if warm == Warm::Restore {
        trigger::divert(Some(tx));
    }
    let restored = Python::attach(|py| {
        let rt = py.import("microlambda_rt")?;
        let preload = rt.getattr("lift_preload")?.call0()?;
        let _ = run_job(py, &nowhere, "", &module, "main", "2000", caps);
        let mut restored = false;
        if warm == Warm::Restore {
            trigger::divert(None);
            let snapshot = taken.try_iter().find_map(|m| match m {
                Outgoing::Checkpoint { seq, state, .. } => Some((seq, state)),
                _ => None,
            });
            if let Some((seq, state)) = snapshot {
                let parts = (seq, &state.state[..], &state.buffers[..], Some("2000"));
                let _ = restore_job(py, &nowhere, "", &module, parts, caps);
                restored = true;
            }
        }
        rt.getattr("forget_module")?.call1((&module.module_name, &module.filename))?;
        rt.getattr("put_preload")?.call1((preload,))?;
        PyResult::Ok(restored)
    });
    trigger::divert(None);
    if let Err(e) = &restored {
        eprintln!("microlambda worker: the warm-up did not end cleanly: {e}");
    }
    if std::env::var_os("ML_DEBUG").is_some() {
        let restored = matches!(restored, Ok(true));
        eprintln!("worker: warm-up {:?} (restored: {restored}), {} page faults", t.elapsed(), minor_faults() - faults);
    }
}
