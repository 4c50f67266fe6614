//! A fresh child's warm-up: a trivial job of the runtime's own, run before the child says it is ready, so that the
//! job path's copy-on-write faults are paid while the child waits forked ahead (docs/BENCHMARKS.md, "Workers").
use super::{minor_faults, run_job, Caps};
use crate::worker::ModuleSpec;
use pyo3::prelude::*;
use std::sync::mpsc;
use std::time::Instant;

/// The warm-up job's module: a name no job takes (a node names job modules `mlfn_<digest>`), dropped once it ran.
const WARM_MODULE: &str = "__microlambda_warm__";

/// Run a trivial job of the runtime's own as [`run_job`] runs every job, before the child says it is ready, then
/// forget its module (`microlambda_rt.forget_module`: nothing of it is left for the job; it draws no random number;
/// its messages go nowhere). The first run of the job path in a child of the zygote writes to ~300 of the pages it
/// shares with the zygote (reference counts, the type cache, the allocator's pools), each a copy-on-write fault:
/// ~1 ms. Paid here, while the child waits forked ahead, they are off the job's path (which then takes ~10), for
/// about the same CPU: the job would have written those pages anyway (docs/BENCHMARKS.md, "Workers").
pub(super) fn warm_child(caps: Caps) {
    let module = ModuleSpec {
        module_name: WARM_MODULE.into(),
        filename: "<microlambda warm-up>".into(),
        source: "def main(x):\n    return x\n".into(),
    };
    let (nowhere, _dropped) = mpsc::channel();
    let t = Instant::now();
    let faults = minor_faults();
    Python::attach(|py| {
        let _ = run_job(py, &nowhere, "", &module, "main", "1", caps);
        let forgot = py
            .import("microlambda_rt")
            .and_then(|rt| rt.getattr("forget_module")?.call1((&module.module_name, &module.filename)).map(|_| ()));
        if let Err(e) = forgot {
            eprintln!("microlambda worker: the warm-up's module stays: {e}");
        }
    });
    if std::env::var_os("ML_DEBUG").is_some() {
        eprintln!("worker: warm-up {:?}, {} page faults", t.elapsed(), minor_faults() - faults);
    }
}
