//! Part 3 of `bench migrate`: what slicing costs a CPU-bound job.
//!
//! The same deterministic job (pure Python arithmetic) runs whole, with `r_limit_ms` 2000 and with 200, one
//! job at a time on a testbed of two nodes: a sliced job is stopped with a checkpoint a margin before each
//! limit, parked, placed again and restored (on either node). The variants are interleaved (the order rotates
//! each repetition) so that drift on a shared machine spreads over all three; the wall time is from the
//! submit request to the `completed` event, and every output must equal the whole run's.
use super::{num, submit_source, table, verdict, BenchError, Summary};
use crate::client;
use crate::config::Settings;
use crate::testbed::Testbed;
use crate::wire::{EventKind, JobEvent};
use futures::StreamExt;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// The CPU-bound job: `n` rounds of integer arithmetic, no I/O, no sleeping.
pub const CRUNCH: &str = r#"
def main(x):
    acc = 0
    for i in range(x["n"]):
        acc = (acc * 31 + i) % 1000000007
    return {"n": x["n"], "acc": acc}
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// No `r_limit_ms`: one slice.
    Whole,
    /// `r_limit_ms` of this many ms.
    Limit(u64),
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::Whole, Variant::Limit(2000), Variant::Limit(200)];

    pub fn r_limit_ms(self) -> Option<u64> {
        match self {
            Variant::Whole => None,
            Variant::Limit(ms) => Some(ms),
        }
    }

    pub fn label(self) -> String {
        match self {
            Variant::Whole => "no `r_limit_ms`".into(),
            Variant::Limit(ms) => format!("`r_limit_ms` {ms}"),
        }
    }

    /// The slowdown allowed against the whole run.
    pub fn target(self) -> Option<f64> {
        match self {
            Variant::Whole => None,
            Variant::Limit(ms) if ms >= 2000 => Some(1.05),
            Variant::Limit(_) => Some(1.25),
        }
    }
}

/// The order of the variants in repetition `rep`: rotated, so no variant always runs first.
pub fn order(rep: usize) -> Vec<Variant> {
    let mut v = Variant::ALL.to_vec();
    let k = rep % v.len();
    v.rotate_left(k);
    v
}

/// One run of the job.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub variant: Variant,
    pub wall_ms: f64,
    /// Runs started (from the final record), and how many of them started on another node than the run
    /// before (from the `started` events).
    pub slices: u32,
    pub node_changes: u32,
    pub output: Value,
}

#[derive(Debug, Clone)]
pub struct SliceRun {
    pub n: u64,
    pub samples: Vec<Sample>,
}

/// The testbed of part 3: two nodes under the threshold, two slots each, a job timeout far beyond the job.
pub fn settings_for(base: &Settings) -> Settings {
    let mut s = base.clone();
    s.testbed.nodes = 2;
    s.testbed.placements = 1;
    s.testbed.radio_loads = vec![0.1, 0.1];
    s.node.slots = 2;
    s.node.job_timeout_ms = 600_000;
    s
}

/// Run the job once; wall time from the submit request to its `completed` event.
async fn once(
    bus: &crate::bus::Bus,
    events: &mut crate::bus::Subscriber,
    job_id: &str,
    n: u64,
    variant: Variant,
) -> Result<Sample, BenchError> {
    let t0 = Instant::now();
    submit_source(bus, job_id, CRUNCH, json!({ "n": n }), variant.r_limit_ms()).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    let (mut last_node, mut node_changes) = (None::<String>, 0);
    let output = loop {
        let m = match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(m)) => m,
            _ => return Err(BenchError::Stalled(format!("{job_id} did not finish within 300 s"))),
        };
        let Ok(ev) = serde_json::from_slice::<JobEvent>(&m.payload) else { continue };
        if ev.job_id != job_id {
            continue;
        }
        match ev.kind {
            EventKind::Completed { output, .. } => break output,
            EventKind::Started { node, .. } => {
                if last_node.as_ref().is_some_and(|n| *n != node) {
                    node_changes += 1;
                }
                last_node = Some(node);
            }
            EventKind::Failed { error, .. } => {
                let problem = format!("failed: {} ({})", error.message, error.kind);
                return Err(BenchError::Job { job_id: job_id.into(), problem });
            }
            _ => {}
        }
    };
    let wall_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let rec = client::status(bus, job_id).await?;
    Ok(Sample { variant, wall_ms, slices: rec.slices, node_changes, output })
}

/// Run part 3: a warm-up, then `reps` rounds of the three variants.
pub async fn run(base: &Settings, exe: &Path, n: u64, reps: usize) -> Result<SliceRun, BenchError> {
    let s = settings_for(base);
    let tb = Testbed::start(&s, None, exe)?;
    let bus = client::connect(&tb.url, &s.client, "bench-migrate").await?;
    tb.wait_ready(&bus, Duration::from_secs(60)).await?;
    let mut events = bus.subscribe_all_events().await?;
    // Warm-up: the first placement, assignment and restore of the testbed's life are not measured.
    once(&bus, &mut events, "slice-warm-whole", n / 100, Variant::Whole).await?;
    once(&bus, &mut events, "slice-warm-cut", n / 20, Variant::Limit(50)).await?;
    let mut samples = Vec::new();
    for rep in 0..reps {
        for v in order(rep) {
            let job_id = format!("slice-{rep}-{}", v.r_limit_ms().unwrap_or(0));
            let sample = once(&bus, &mut events, &job_id, n, v).await?;
            println!(
                "slicing: {} run {}: {:.0} ms, {} slices ({} on another node than the one before)",
                v.label(),
                rep + 1,
                sample.wall_ms,
                sample.slices,
                sample.node_changes
            );
            samples.push(sample);
        }
    }
    drop(tb);
    Ok(SliceRun { n, samples })
}

impl SliceRun {
    fn of(&self, v: Variant) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(move |s| s.variant == v)
    }

    pub fn median_ms(&self, v: Variant) -> f64 {
        Summary::of(&self.of(v).map(|s| s.wall_ms).collect::<Vec<_>>()).p50
    }

    /// Whether every output equals the first whole run's.
    pub fn outputs_identical(&self) -> bool {
        let first = self.of(Variant::Whole).next().or(self.samples.first()).map(|s| &s.output);
        self.samples.iter().all(|s| Some(&s.output) == first)
    }

    pub fn table(&self) -> String {
        let whole = self.median_ms(Variant::Whole);
        let identical = self.outputs_identical();
        let rows: Vec<Vec<String>> = Variant::ALL
            .iter()
            .map(|&v| {
                let walls: Vec<f64> = self.of(v).map(|s| s.wall_ms / 1000.0).collect();
                let w = Summary::of(&walls);
                let min = walls.iter().copied().min_by(f64::total_cmp).unwrap_or(f64::NAN);
                let slices = Summary::of(&self.of(v).map(|s| f64::from(s.slices)).collect::<Vec<_>>()).p50;
                let changes = Summary::of(&self.of(v).map(|s| f64::from(s.node_changes)).collect::<Vec<_>>()).p50;
                let ratio = self.median_ms(v) / whole;
                let target = match v.target() {
                    Some(t) => format!("≤ {t:.2}x: {}", verdict(ratio <= t)),
                    None => "—".into(),
                };
                vec![
                    v.label(),
                    walls.len().to_string(),
                    num(w.p50, 3),
                    format!("{}–{}", num(min, 3), num(w.max, 3)),
                    format!("{}x", num(ratio, 3)),
                    num(slices, 0),
                    num(changes, 0),
                    if identical { "yes".into() } else { "**no**".into() },
                    target,
                ]
            })
            .collect();
        let head = [
            "variant",
            "runs",
            "median s",
            "min–max s",
            "ratio",
            "slices",
            "node changes",
            "output identical",
            "target",
        ];
        format!("CPU-bound job, n = {}:\n\n{}", self.n, table(&head, &rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(variant: Variant, wall_ms: f64, acc: u64) -> Sample {
        Sample { variant, wall_ms, slices: 1, node_changes: 0, output: json!({"acc": acc}) }
    }

    #[test]
    fn the_variants_rotate_and_carry_their_targets() {
        assert_eq!(order(0), Variant::ALL.to_vec());
        assert_eq!(order(1), vec![Variant::Limit(2000), Variant::Limit(200), Variant::Whole]);
        assert_eq!(order(3), order(0));
        assert_eq!(Variant::Limit(2000).target(), Some(1.05));
        assert_eq!(Variant::Limit(200).target(), Some(1.25));
        assert_eq!(Variant::Whole.r_limit_ms(), None);
    }

    #[test]
    fn ratios_are_of_medians_and_outputs_must_agree() {
        let mut r = SliceRun {
            n: 5,
            samples: vec![
                sample(Variant::Whole, 4000.0, 1),
                sample(Variant::Whole, 4100.0, 1),
                sample(Variant::Whole, 3900.0, 1),
                sample(Variant::Limit(2000), 4150.0, 1),
                sample(Variant::Limit(200), 5500.0, 1),
            ],
        };
        assert_eq!(r.median_ms(Variant::Whole), 4000.0);
        assert!(r.outputs_identical());
        let t = r.table();
        assert!(t.contains("| `r_limit_ms` 2000 | 1 | 4.150 | 4.150–4.150 | 1.038x |"), "{t}");
        assert!(t.contains("≤ 1.05x: met"), "{t}");
        assert!(t.contains("1.375x") && t.contains("≤ 1.25x: **missed**"), "{t}");
        r.samples.push(sample(Variant::Limit(200), 5000.0, 2));
        assert!(!r.outputs_identical());
        assert!(r.table().contains("**no**"));
    }
}
