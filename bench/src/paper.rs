//! `microlambda-bench paper`: the MicroLambda paper's evaluation (Figs. 4–7) reproduced on its three workloads
//! (examples/paper/: face, ride, stress, with their real libraries), side by side in one run, written to
//! docs/EVALUATION.md with SVG plots.
//!
//! - Figs. 4/5 ([`instants`]): each workload runs as a batch of requests in a worker; checkpoints are taken at
//!   random instants (a seeded schedule), and a second run of the same schedule times `pickle.dumps` of the live
//!   variables at each instant and keeps those pickles (`ML_BASELINE` naming a directory), compressed as an
//!   envelope compresses its parts: the lower bound. pyteleport 0.3.4 snapshots the same session between requests.
//! - Figs. 6/7 ([`batch`]): the batch as one job on a real mesh (a nats-server with its monitoring port, placement,
//!   two nodes), uninterrupted and with each runtime limit; every output must equal plain CPython's; the bytes the
//!   server carried per request from its own counters (`/varz`), with and without checkpoints, and as session
//!   requests (a checkpoint between any two).
mod batch;
mod instants;
mod report;
mod svg;

pub use batch::{BatchRun, Traffic};
pub use instants::{Instants, Teleport};

use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The driver appended to a workload's module: `main` runs a whole batch of requests in one call.
const DRIVER: &str = include_str!("../../python/bench/paper_batch.py");
const TELEPORT: &str = include_str!("../../python/bench/paper_teleport.py");

/// One of the paper's workloads.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub name: &'static str,
    /// Its module, `examples/paper/<file>`.
    pub file: &'static str,
    pub source: &'static str,
    pub entry: &'static str,
    /// The paper's published size for its prototype on this workload (bytes, an upper bound).
    pub paper_size: u64,
}

pub const WORKLOADS: [Workload; 3] = [
    Workload {
        name: "face",
        file: "face.py",
        source: include_str!("../../examples/paper/face.py"),
        entry: "faces",
        paper_size: 128 * 1024,
    },
    Workload {
        name: "ride",
        file: "ride.py",
        source: include_str!("../../examples/paper/ride.py"),
        entry: "Dispatch",
        paper_size: 281 * 1024,
    },
    Workload {
        name: "stress",
        file: "stress.py",
        source: include_str!("../../examples/paper/stress.py"),
        entry: "stress",
        paper_size: 128 * 1024,
    },
];

/// The paper's published checkpoint time for its prototype (an upper bound, ms), and CRIU's lower bounds.
pub const PAPER_MS: f64 = 10.0;
pub const CRIU_MS: f64 = 150.0;
pub const CRIU_BYTES: (u64, u64) = (1_800_000, 22_000_000);

impl Workload {
    /// The same workload as the mesh's clients drive it (its opening and requests are made there only).
    fn driven(&self) -> &'static microlambda::scenario::paper::Workload {
        microlambda::scenario::paper::Workload::named(self.name).expect("one of the paper's workloads")
    }

    /// The session's opening input.
    pub fn opening(&self) -> Value {
        self.driven().opening()
    }

    /// `n` requests, from a generator seeded with `seed` ([`microlambda::scenario::paper::Workload::requests`]).
    pub fn requests(&self, n: usize, seed: u64) -> Vec<Value> {
        self.driven().requests(n, seed)
    }

    /// The module a batch runs: the workload's with [`DRIVER`] appended.
    pub fn batch_source(&self) -> String {
        format!("{}\n{DRIVER}", self.source)
    }

    /// The batch job's input.
    pub fn batch_input(&self, requests: &[Value]) -> Value {
        json!({"entry": self.entry, "opening": self.opening(), "requests": requests})
    }
}

/// How much of each figure a run measures.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Checkpoint instants per workload (Figs. 4/5).
    pub instants: usize,
    /// pyteleport snapshots per workload (0: not tried).
    pub teleports: usize,
    /// Requests in a batch (Fig. 6), per workload in [`WORKLOADS`]' order.
    pub batch: [usize; 3],
    /// The runtime limits of Fig. 6, in seconds.
    pub r_limits_s: Vec<u64>,
    /// Session requests per workload in Fig. 7.
    pub session_requests: usize,
}

impl Sizes {
    /// The full run: about 15 s of compute per batch on a quiet machine, four runtime limits (a batch may end
    /// before r_limit 20 s: 1 slice).
    pub fn full() -> Self {
        Sizes { instants: 50, teleports: 2, batch: [22, 500, 28], r_limits_s: vec![2, 5, 10, 20], session_requests: 10 }
    }

    /// `--quick`: every figure, a few requests each (a test in `make test`).
    pub fn quick() -> Self {
        Sizes { instants: 4, teleports: 0, batch: [3, 40, 3], r_limits_s: vec![2], session_requests: 1 }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub sizes: Sizes,
    pub quick: bool,
    /// Where EVALUATION.md and the `evaluation/` plots go.
    pub out: PathBuf,
    /// The repository's root: the workloads' data is `tests/data` under it (nodes' workers look there).
    pub root: PathBuf,
    pub seed: u64,
    pub settings: microlambda::config::Settings,
    /// The command line, for the report.
    pub command: String,
    /// The workloads measured, by name (all three for the report).
    pub workloads: Vec<String>,
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub instants: Vec<Instants>,
    pub batches: Vec<BatchRun>,
    pub traffic: Vec<Traffic>,
    /// The load average when the run started and when it ended.
    pub load: (String, String),
    pub wall_s: f64,
}

/// The load average as /proc/loadavg gives it (the first three fields).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The replies of `requests` to workload `w` in plain CPython (examples/paper/local.py), the reference.
pub fn reference(root: &Path, w: &Workload, requests: &[Value]) -> anyhow::Result<Vec<Value>> {
    let python = microlambda::config::python_executable().unwrap_or_else(|| PathBuf::from("python3"));
    let out = microlambda::worker::host::reference_command(python)
        .current_dir(root)
        .arg("examples/paper/local.py")
        .arg(format!("examples/paper/{}", w.file))
        .arg(w.entry)
        .arg(w.opening().to_string())
        .arg(Value::from(requests.to_vec()).to_string())
        .output()?;
    if !out.status.success() {
        anyhow::bail!("{}: plain CPython failed: {}", w.name, String::from_utf8_lossy(&out.stderr));
    }
    let replies = String::from_utf8_lossy(&out.stdout).lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    Ok(replies)
}

/// Figs. 6 and 7 only (`--fig6`): the batches of the chosen workloads on a mesh, printed as they end.
pub async fn run_batches(opts: &Options) -> anyhow::Result<()> {
    std::env::set_current_dir(&opts.root)?;
    let load_before = loadavg();
    let (batches, sessions) = batch::run(opts).await?;
    println!("paper: load average {load_before} -> {}", loadavg());
    for t in batches.iter().map(|b| &b.traffic).chain(&sessions) {
        println!(
            "paper: fig. 7: {} {}: {:.1} KB per request ({} requests; in {:.1} KB, out {:.1} KB; idle chatter {:.1} KB)",
            t.workload,
            t.what,
            t.per_request() / 1024.0,
            t.requests,
            t.in_bytes as f64 / 1024.0,
            t.out_bytes as f64 / 1024.0,
            t.idle_per_request() / 1024.0
        );
    }
    let long: Vec<&batch::BatchRun> = batches.iter().filter(|b| b.r_limit_s.is_none()).collect();
    for b in batches.iter().filter(|b| b.r_limit_s.is_some()) {
        let base: Vec<f64> = long.iter().filter(|l| l.workload == b.workload).map(|l| l.wall_ms).collect();
        let mean = base.iter().sum::<f64>() / base.len().max(1) as f64;
        println!(
            "paper: fig. 6: {} r_limit {} s: {:.3}x the long-running mean ({:.2} s), {} slices, {} moves",
            b.workload,
            b.r_limit_s.unwrap_or(0),
            b.wall_ms / mean,
            mean / 1e3,
            b.slices,
            b.node_changes
        );
    }
    Ok(())
}

/// Figs. 4 and 5 only (`--fig4`): the chosen workloads' checkpoints at random instants, printed as each ends.
pub async fn run_instants(opts: &Options) -> anyhow::Result<()> {
    std::env::set_current_dir(&opts.root)?;
    let load_before = loadavg();
    for (i, w) in WORKLOADS.iter().enumerate().filter(|(_, w)| opts.workloads.iter().any(|n| n == w.name)) {
        let m = instants::measure(w, &opts.sizes, opts.seed + i as u64, &opts.root).await?;
        let p = |v: &[f64], q: f64| microlambda::stats::percentile(v, q).unwrap_or(f64::NAN);
        let at_once = m.ours.captures_at_once();
        println!(
            "paper: fig. 4: {}: {} taken; pause ms p50 {:.2} p99 {:.2}; pickle.dumps ms p50 {:.2} p99 {:.2}; \
             capture ms p50 {:.2} p99 {:.2}, where in Python ({} answered at once) p99 {:.2}; size KB p50 {:.1} \
             p99 {:.1}",
            w.name,
            m.ours.pause_ms.len(),
            p(&m.ours.pause_ms, 0.5),
            p(&m.ours.pause_ms, 0.99),
            p(&m.pickle_ms, 0.5),
            p(&m.pickle_ms, 0.99),
            p(&m.ours.capture_ms, 0.5),
            p(&m.ours.capture_ms, 0.99),
            at_once.len(),
            p(&at_once, 0.99),
            p(&m.ours.sizes, 0.5) / 1024.0,
            p(&m.ours.sizes, 0.99) / 1024.0,
        );
    }
    println!("paper: load average {load_before} -> {}", loadavg());
    Ok(())
}

/// Run the whole evaluation and write the report; returns what was measured.
pub async fn run(opts: &Options) -> anyhow::Result<Evaluation> {
    let data = opts.root.join("tests/data");
    for w in WORKLOADS {
        if !data.join(w.name).is_dir() {
            anyhow::bail!(
                "{} has no {} data: run from the repository's root or give --root (nodes' workers find the \
                 workloads' data in tests/data under their working directory)",
                opts.root.display(),
                w.name
            );
        }
    }
    std::env::set_current_dir(&opts.root)?;
    let started = std::time::Instant::now();
    let load_before = loadavg();
    let mut ins = Vec::new();
    for (i, w) in WORKLOADS.iter().enumerate() {
        println!("paper: figs. 4/5: {} at {} instants", w.name, opts.sizes.instants);
        ins.push(instants::measure(w, &opts.sizes, opts.seed + i as u64, &opts.root).await?);
    }
    println!("paper: figs. 6/7 on a mesh");
    let (batches, traffic) = batch::run(opts).await?;
    let eval = Evaluation {
        instants: ins,
        batches,
        traffic,
        load: (load_before, loadavg()),
        wall_s: started.elapsed().as_secs_f64(),
    };
    report::write(opts, &eval)?;
    Ok(eval)
}
