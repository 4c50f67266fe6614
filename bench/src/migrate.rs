//! `microlambda-bench migrate`: the migration feature measured against its targets in one run — how fast a
//! hot node is emptied (1, 10, 50 jobs), what a move puts on the wire, what slicing a CPU-bound job costs,
//! and how long placement takes to decide with 1,000 nodes. Each part prints a Markdown table with its
//! target and whether it was met (docs/BENCHMARKS.md, "Migration").
//!
//! The first three parts start their own local testbeds (the settings they need are part of the
//! measurement, so `--nats` is not offered); the last is pure (no NATS, no processes).
mod decisions;
mod evacuation;
mod slicing;

pub use decisions::{DecisionOptions, DecisionRun, EventKind as DecisionEvent};
pub use evacuation::{EvacuationRun, MoveTrace, Round};
pub use slicing::{run_to_end, settings_for, Finished, SliceRun, Variant};

pub use crate::num;
use microlambda::bus::{Bus, BusError};
use microlambda::client::ClientError;
use microlambda::config::Settings;
pub use microlambda::stats::Summary;
use microlambda::table::Align;
use microlambda::testbed::TestbedError;
use microlambda::wire::{FunctionRef, SubmitReply, SubmitRequest};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("testbed: {0}")]
    Testbed(#[from] TestbedError),
    #[error("client: {0}")]
    Client(#[from] ClientError),
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    /// Something the benchmark waits for did not happen in time.
    #[error("stalled: {0}")]
    Stalled(String),
    /// A job failed, or its output shows it did not keep its state.
    #[error("job {job_id}: {problem}")]
    Job { job_id: String, problem: String },
}

/// The parts of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Evacuation latency and the bytes each move puts on the wire.
    Evacuation,
    /// Slicing overhead of a CPU-bound job.
    Slicing,
    /// Placement decision time with many simulated nodes.
    Decisions,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Jobs on the evacuated node, one testbed each.
    pub jobs: Vec<usize>,
    /// Evacuations per job count (the jobs go back and forth between the two nodes).
    pub rounds: usize,
    /// Repetitions of each slicing variant (interleaved).
    pub slice_reps: usize,
    /// Loop iterations of the CPU-bound job.
    pub slice_n: u64,
    pub decisions: DecisionOptions,
    pub parts: Vec<Part>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            jobs: vec![1, 10, 50],
            rounds: 10,
            slice_reps: 3,
            slice_n: 26_000_000,
            decisions: DecisionOptions::default(),
            parts: vec![Part::Evacuation, Part::Slicing, Part::Decisions],
        }
    }
}

/// A Markdown table: the first column left-aligned, the others right-aligned.
pub fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let head: Vec<(&str, Align)> =
        head.iter().enumerate().map(|(i, h)| (*h, if i == 0 { Align::Left } else { Align::Right })).collect();
    microlambda::table::markdown(&head, rows)
}

/// How a target came out.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**missed**"
    }
}

/// Submit a job with inline source under a chosen id (so its events can be followed from the start).
async fn submit_source(
    bus: &Bus,
    job_id: &str,
    source: &str,
    input: serde_json::Value,
    r_limit_ms: Option<u64>,
) -> Result<(), BenchError> {
    let req = SubmitRequest {
        function: FunctionRef::inline(source),
        input,
        job_id: Some(job_id.into()),
        r_limit_ms,
        priority: 0,
        session: false,
    };
    let body = serde_json::to_vec(&req).expect("a submit request is JSON");
    match bus.submit_raw::<SubmitReply>(body.into()).await? {
        SubmitReply::Accepted { .. } => Ok(()),
        SubmitReply::Error { error } => Err(ClientError::Refused(error).into()),
    }
}

/// A fresh directory for the run's files, removed when dropped (whether the run ends or fails).
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Result<Self, BenchError> {
        crate::tempfile_dir().map(ScratchDir).map_err(|source| BenchError::Io {
            what: "cannot create a directory in",
            path: std::env::temp_dir(),
            source,
        })
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Everything one run measured (the parts not run are empty).
#[derive(Debug, Default)]
pub struct Report {
    pub evacuation: Vec<EvacuationRun>,
    pub slicing: Option<SliceRun>,
    pub decisions: Option<DecisionRun>,
}

/// Run the parts in order, printing each part's tables as soon as it is done. A part that fails is reported
/// and the next one runs; the first failure is returned at the end.
pub async fn main(settings: Settings, opts: Options) -> Result<Report, BenchError> {
    let exe = crate::microlambda_exe();
    let mut report = Report::default();
    let mut first_error = None;
    let mut fail = |part: &str, e: BenchError| {
        println!("\n{part}: FAILED: {e}\n");
        first_error.get_or_insert(e);
    };
    if opts.parts.contains(&Part::Evacuation) {
        for &n in &opts.jobs {
            match evacuation::run(&settings, &exe, n, opts.rounds).await {
                Ok(r) => {
                    println!("{}", r.progress_line());
                    report.evacuation.push(r);
                }
                Err(e) => fail(&format!("evacuation with {n} jobs"), e),
            }
        }
        if !report.evacuation.is_empty() {
            println!("\n### Evacuation latency\n\n{}", evacuation::latency_table(&report.evacuation));
            println!("Where the time goes (ms from the radio publish, medians):\n");
            println!("{}", evacuation::breakdown_table(&report.evacuation));
            println!("### Bytes on the wire per move\n\n{}", evacuation::bytes_table(&report.evacuation));
        }
        let problems: Vec<(String, String)> = report.evacuation.iter().flat_map(|r| r.problems.clone()).collect();
        for (job_id, problem) in &problems {
            println!("state check: {job_id}: {problem}");
        }
        if let Some((job_id, problem)) = problems.into_iter().next() {
            fail("evacuation state check", BenchError::Job { job_id, problem });
        }
    }
    if opts.parts.contains(&Part::Slicing) {
        match slicing::run(&settings, &exe, opts.slice_n, opts.slice_reps).await {
            Ok(r) => {
                println!("\n### Slicing overhead\n\n{}", r.table());
                report.slicing = Some(r);
            }
            Err(e) => fail("slicing", e),
        }
    }
    if opts.parts.contains(&Part::Decisions) {
        let r = decisions::run(&settings.placement, &opts.decisions);
        println!("\n### Placement decision time\n\n{}", r.table());
        report.decisions = Some(r);
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_markdown_with_numbers_right_aligned() {
        let t = table(&["jobs", "p50 ms"], &[vec!["1".into(), num(12.345, 1)], vec!["10".into(), num(f64::NAN, 1)]]);
        assert_eq!(t, "| jobs | p50 ms |\n|---|---:|\n| 1 | 12.3 |\n| 10 | — |\n");
        assert_eq!(verdict(true), "met");
        assert_eq!(verdict(false), "**missed**");
    }
}
