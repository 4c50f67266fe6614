//! microlambda's benchmarks, kept out of the product: each measures the product through its public library
//! API (workers, the testbed, the JSON client API, the bus's read-only observer, the pure scheduler), never
//! through taps or private items.
//!
//! - [`checkpoint`]: the checkpoint engine against `pickle.dumps` and pyteleport (capture, pause, size, restore);
//! - [`submit`]: trivial jobs end to end through NATS (jobs/s, submit-to-result latency);
//! - [`migrate`]: evacuation latency, bytes per move, slicing overhead and the scheduler's decision time;
//! - [`restore`]: a restore of a library-heavy checkpoint forked from the base zygote against a set zygote.
pub mod checkpoint;
pub mod migrate;
pub mod restore;
pub mod submit;

use std::path::PathBuf;

/// The `microlambda` binary the benchmarks start nodes and workers from: `MICROLAMBDA_BIN` when set, else the
/// one built beside this binary (`target/<profile>/microlambda`).
pub fn microlambda_exe() -> PathBuf {
    if let Some(p) = std::env::var_os("MICROLAMBDA_BIN") {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|me| me.parent().map(|dir| dir.join("microlambda")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("microlambda"))
}

/// A fresh directory under the system's temporary directory.
pub fn tempfile_dir() -> std::io::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("microlambda-bench-{}-{:x}", std::process::id(), rand::random::<u64>()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// A number with `decimals` places, or `—` when there is none.
pub fn num(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "—".into()
    }
}
