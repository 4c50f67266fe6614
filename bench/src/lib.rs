//! microlambda's benchmarks, kept out of the product: each measures the product through its public library
//! API (workers, the testbed, the JSON client API, the bus's read-only observer, the pure scheduler), never
//! through taps or private items.
//!
//! - [`checkpoint`]: the checkpoint engine against `pickle.dumps` and pyteleport (capture, pause, size, restore);
//! - [`submit`]: trivial jobs end to end through NATS (jobs/s, submit-to-result latency);
//! - [`migrate`]: evacuation latency, bytes per move, slicing overhead and the scheduler's decision time;
//! - [`session`]: requests to an idle session end to end (request to reply, moves between requests);
//! - [`paper`]: the MicroLambda paper's evaluation (Figs. 4–7) on its three workloads, written to docs/EVALUATION.md;
//! - [`restore`]: a restore of a library-heavy checkpoint forked from the base zygote against a set zygote.
pub mod checkpoint;
pub mod migrate;
pub mod paper;
pub mod records;
pub mod restore;
pub mod session;
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

/// The mesh a benchmark runs on: the one at `nats` if given, else a local testbed started for the run (kept
/// running while the returned handle lives), ready; with a client connection and its URL.
pub async fn mesh(
    settings: &microlambda::config::Settings,
    nats: Option<String>,
) -> Result<(Option<microlambda::testbed::Testbed>, microlambda::bus::Bus, String), microlambda::testbed::TestbedError>
{
    let exe = microlambda_exe();
    let tb = match &nats {
        Some(_) => None,
        None => Some(microlambda::testbed::Testbed::start(settings, None, &exe)?),
    };
    let url = nats.or_else(|| tb.as_ref().map(|t| t.url.clone())).unwrap_or_default();
    // As the testbed's client identity when it is secured (what a user's submissions go through).
    let bus = match &tb {
        Some(tb) => tb.connect(&settings.client, "client", "bench").await?,
        None => microlambda::client::connect(&url, &settings.client, "bench").await?,
    };
    if let Some(tb) = &tb {
        tb.wait_ready(&bus, std::time::Duration::from_secs(30)).await?;
    }
    Ok((tb, bus, url))
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
