//! Figs. 4/5: checkpoint time and size at random instants of each workload's batch, against `pickle.dumps` of the
//! live variables at the instants of a second run of the same schedule (the lower bound), and pyteleport.
use super::{Sizes, Workload, TELEPORT};
use crate::checkpoint::{running_worker, take_checkpoints, Taken};
use anyhow::Context;
use microlambda::worker::protocol::ModuleSpec;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::time::Duration;

/// What one workload's instants measured (ms and bytes, one entry per checkpoint taken).
#[derive(Debug, Clone)]
pub struct Instants {
    pub workload: &'static str,
    /// Our checkpoints: time to safe point, capture (request to sealed bytes), the job's pause, envelope bytes.
    pub ours: Taken,
    /// `pickle.dumps` of the live variables (ms), from the second run.
    pub pickle_ms: Vec<f64>,
    /// Those pickles' sizes, raw and compressed as an envelope compresses a part.
    pub pickle_raw: Vec<f64>,
    pub pickle_compressed: Vec<f64>,
    pub teleport: Vec<Teleport>,
}

/// One pyteleport snapshot: after request `at`, its dump time, size and restore (a fresh process), or why not.
#[derive(Debug, Clone)]
pub struct Teleport {
    pub at: usize,
    pub outcome: Result<(f64, u64, f64), String>,
}

/// The pauses between checkpoint requests: uniform in 30–300 ms, from `seed` (the same for both runs).
fn schedule(seed: u64) -> impl FnMut(u64) -> Duration {
    let mut rnd = rand::rngs::StdRng::seed_from_u64(seed);
    move |_| Duration::from_millis(rnd.random_range(30..300))
}

/// One run of the batch in a worker, `n` checkpoints on the seeded schedule.
async fn one_run(w: &Workload, root: &Path, n: usize, seed: u64) -> anyhow::Result<Taken> {
    // Requests enough that the batch is still running at the last instant: pauses of up to 300 ms, plus the
    // request's own wait (up to its 2 s deadline inside a call into C), against at least 0.4 s per face or
    // stress request and 20 ms per ride request on a quiet machine.
    let per_instant = match w.name {
        "ride" => 120,
        _ => 6,
    };
    let requests = w.requests(n * per_instant + 10, seed);
    let module = ModuleSpec {
        module_name: format!("paper_{}", w.name),
        filename: root.join("examples/paper").join(w.file).display().to_string(),
        source: w.batch_source(),
    };
    let input = w.batch_input(&requests).to_string();
    let mut worker = running_worker(&module, "main", &input, &[]).await?;
    let taken = take_checkpoints(&mut worker, n, schedule(seed)).await;
    worker.kill().await;
    taken.with_context(|| format!("{}: checkpoints of its batch of {} requests", w.name, requests.len()))
}

/// Figs. 4/5 for one workload.
pub async fn measure(w: &Workload, sizes: &Sizes, seed: u64, root: &Path) -> anyhow::Result<Instants> {
    let ours = one_run(w, root, sizes.instants, seed).await?;
    if ours.last.is_empty() {
        anyhow::bail!("{}: no checkpoint taken: {}", w.name, ours.not_taken.join("; "));
    }
    // The lower bound, in a run of its own (inside our pause its pickling would slow the capture that shares it).
    let dir = crate::tempfile_dir()?;
    std::env::set_var("ML_BASELINE", &dir);
    let lower = one_run(w, root, sizes.instants, seed).await;
    std::env::remove_var("ML_BASELINE");
    let lower = lower?;
    let (mut raw, mut compressed) = (Vec::new(), Vec::new());
    for f in std::fs::read_dir(&dir)? {
        let bytes = std::fs::read(f?.path())?;
        raw.push(bytes.len() as f64);
        compressed.push(microlambda::checkpoint::compress_parts(bytes).1.len() as f64);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let teleport = (0..sizes.teleports).map(|k| teleport(w, root, 1 + k * 2)).collect();
    Ok(Instants {
        workload: w.name,
        ours,
        pickle_ms: lower.baseline_ms,
        pickle_raw: raw,
        pickle_compressed: compressed,
        teleport,
    })
}

/// pyteleport's snapshot of the session after request `at` (python/bench/paper_teleport.py).
fn teleport(w: &Workload, root: &Path, at: usize) -> Teleport {
    let run = || -> anyhow::Result<(f64, u64, f64)> {
        let dir = crate::tempfile_dir()?;
        let script = dir.join("paper_teleport.py");
        std::fs::write(&script, TELEPORT)?;
        let python = microlambda::config::python_executable().unwrap_or_else(|| "python3".into());
        let requests = serde_json::Value::from(w.requests(at + 1, 1)).to_string();
        let out = std::process::Command::new(python)
            .arg(&script)
            .arg(root.join("examples/paper").join(w.file))
            .args([w.entry, &w.opening().to_string(), &requests, &at.to_string()])
            .env("MICROLAMBDA_DATA", root.join("tests/data"))
            .output()?;
        let _ = std::fs::remove_dir_all(&dir);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| anyhow::anyhow!("{e}: {}", String::from_utf8_lossy(&out.stderr)))?;
        match (v["dump_ms"].as_f64(), v["size"].as_u64(), v["restore_ms"].as_f64()) {
            (Some(d), Some(s), Some(r)) => Ok((d, s, r)),
            _ => anyhow::bail!("{}", v["error"].as_str().unwrap_or("no answer")),
        }
    };
    Teleport { at, outcome: run().map_err(|e| format!("{e:#}")) }
}
