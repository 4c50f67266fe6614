//! Part 3 of `bench migrate`: what slicing costs a CPU-bound job.
//!
//! The same deterministic job (pure Python arithmetic) runs whole, with `r_limit_ms` 2000 and with 200, one
//! job at a time on a testbed of two nodes: a sliced job is stopped with a checkpoint a margin before each
//! limit, parked, placed again and restored (on either node). The variants are interleaved (the order rotates
//! each repetition) so that drift on a shared machine spreads over all three; the wall time is from the
//! submit request to the `completed` event, and every output must equal the whole run's.
use super::{num, submit_source, table, verdict, BenchError, Summary};
use futures::StreamExt;
use microlambda::client;
use microlambda::config::Settings;
use microlambda::stats::percentile;
use microlambda::testbed::Testbed;
use microlambda::wire::{EventKind, JobEvent};
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
    /// The repetition it ran in (the variants of one repetition run back to back).
    pub rep: usize,
    pub wall_ms: f64,
    /// Runs started (from the final record), and how many of them started on another node than the run
    /// before (from the `started` events).
    pub slices: u32,
    pub node_changes: u32,
    pub output: Value,
    /// Its runs and slice boundaries, from the job's events.
    pub timeline: Timeline,
}

/// Where one slice boundary's time goes, in ms between the client's receipt of the job's events: the stop
/// checkpoint (persisted), `parked` (record committed), `placed` (placement chose a node and recorded it),
/// `started` (the node restored it in a worker).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Boundary {
    pub capture_ms: f64,
    pub stop_to_parked: f64,
    pub parked_to_placed: f64,
    pub placed_to_started: f64,
}

impl Boundary {
    pub fn total(&self) -> f64 {
        self.stop_to_parked + self.parked_to_placed + self.placed_to_started
    }
}

/// A run of the job as its events show it, in ms on the client's clock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    /// From the submit to the first `started`.
    pub to_first_start_ms: f64,
    /// Each run, from its `started` to its stop checkpoint (or to `completed`, for the last).
    pub runs_ms: Vec<f64>,
    pub boundaries: Vec<Boundary>,
}

/// Read a job's timeline from its events (as received, with their arrival times) after a submit at `t0`.
pub fn timeline(t0: Instant, events: &[(Instant, EventKind)]) -> Timeline {
    let ms = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64() * 1000.0;
    let mut out = Timeline::default();
    let mut run_start: Option<Instant> = None;
    let mut stop: Option<(Instant, f64)> = None;
    let (mut parked, mut placed) = (None, None);
    for (at, kind) in events {
        match kind {
            EventKind::Checkpointed { mode, capture_ms, .. } if mode == "stop" => {
                stop = Some((*at, *capture_ms));
                (parked, placed) = (None, None);
                if let Some(r) = run_start.take() {
                    out.runs_ms.push(ms(r, *at));
                }
            }
            EventKind::Parked { .. } if stop.is_some() => parked = Some(*at),
            EventKind::Placed { .. } if parked.is_some() => placed = Some(*at),
            EventKind::Started { .. } => {
                if run_start.is_none() && out.runs_ms.is_empty() {
                    out.to_first_start_ms = ms(t0, *at);
                }
                if let (Some((s, capture_ms)), Some(pk), Some(pl)) = (stop, parked, placed) {
                    out.boundaries.push(Boundary {
                        capture_ms,
                        stop_to_parked: ms(s, pk),
                        parked_to_placed: ms(pk, pl),
                        placed_to_started: ms(pl, *at),
                    });
                }
                (stop, parked, placed) = (None, None, None);
                run_start = Some(*at);
            }
            EventKind::Completed { .. } | EventKind::Failed { .. } => {
                if let Some(r) = run_start.take() {
                    out.runs_ms.push(ms(r, *at));
                }
            }
            _ => {}
        }
    }
    out
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

/// A job run to its end, as its client saw it.
#[derive(Debug, Clone)]
pub struct Finished {
    /// From the submit request to the `completed` event.
    pub wall_ms: f64,
    /// Runs started (from the final record), and how many started on another node than the run before.
    pub slices: u32,
    pub node_changes: u32,
    pub output: Value,
    pub timeline: Timeline,
}

/// Submit `source`'s `main` on `input` (with `r_limit_ms` when given) as `job_id` and wait, up to `within`, for
/// its `completed` event on `events` (a subscription that sees the job's events).
pub async fn run_to_end(
    bus: &microlambda::bus::Bus,
    events: &mut microlambda::bus::Subscriber,
    job_id: &str,
    (source, input): (&str, Value),
    r_limit_ms: Option<u64>,
    within: Duration,
) -> Result<Finished, BenchError> {
    let t0 = Instant::now();
    submit_source(bus, job_id, source, input, r_limit_ms).await?;
    let deadline = tokio::time::Instant::now() + within;
    let (mut last_node, mut node_changes) = (None::<String>, 0);
    let mut seen = Vec::new();
    let output = loop {
        let m = match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(m)) => m,
            _ => return Err(BenchError::Stalled(format!("{job_id} did not finish within {} s", within.as_secs()))),
        };
        let Ok(ev) = serde_json::from_slice::<JobEvent>(&m.payload) else { continue };
        if ev.job_id != job_id {
            continue;
        }
        seen.push((Instant::now(), ev.kind.clone()));
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
    Ok(Finished { wall_ms, slices: rec.slices, node_changes, output, timeline: timeline(t0, &seen) })
}

/// Run the job once; wall time from the submit request to its `completed` event.
async fn once(
    bus: &microlambda::bus::Bus,
    events: &mut microlambda::bus::Subscriber,
    job_id: &str,
    n: u64,
    variant: Variant,
    rep: usize,
) -> Result<Sample, BenchError> {
    let job = (CRUNCH, json!({ "n": n }));
    let f = run_to_end(bus, events, job_id, job, variant.r_limit_ms(), Duration::from_secs(300)).await?;
    let Finished { wall_ms, slices, node_changes, output, timeline } = f;
    Ok(Sample { variant, rep, wall_ms, slices, node_changes, output, timeline })
}

/// Run part 3: a warm-up, then `reps` rounds of the three variants.
pub async fn run(base: &Settings, exe: &Path, n: u64, reps: usize) -> Result<SliceRun, BenchError> {
    let s = settings_for(base);
    let tb = Testbed::start(&s, None, exe)?;
    let bus = tb.connect(&s.client, "ops", "bench-migrate").await?;
    tb.wait_ready(&bus, Duration::from_secs(60)).await?;
    let mut events = bus.subscribe_all_events().await?;
    // Warm-up: the first placement, assignment and restore of the testbed's life are not measured.
    once(&bus, &mut events, "slice-warm-whole", n / 100, Variant::Whole, 0).await?;
    once(&bus, &mut events, "slice-warm-cut", n / 20, Variant::Limit(50), 0).await?;
    let mut samples = Vec::new();
    for rep in 0..reps {
        for v in order(rep) {
            let job_id = format!("slice-{rep}-{}", v.r_limit_ms().unwrap_or(0));
            let sample = once(&bus, &mut events, &job_id, n, v, rep).await?;
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

    /// Each repetition's wall time of `v` over the whole run's of the same repetition: neighbours in time see
    /// the same machine, so these ratios drift less than the medians do on a shared machine.
    pub fn paired_ratios(&self, v: Variant) -> Vec<f64> {
        self.of(v)
            .filter_map(|s| {
                let whole = self.of(Variant::Whole).find(|w| w.rep == s.rep)?;
                Some(s.wall_ms / whole.wall_ms)
            })
            .collect()
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
                let paired = Summary::of(&self.paired_ratios(v));
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
                    format!("{}x / {}x", num(paired.p50, 3), num(paired.max, 3)),
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
            "paired ratio p50 / max",
            "slices",
            "node changes",
            "output identical",
            "target",
        ];
        format!("CPU-bound job, n = {}:\n\n{}\n{}", self.n, table(&head, &rows), self.boundary_table())
    }

    /// Where a slice boundary's time goes (medians over the boundaries of every run of a variant); the whole
    /// cost per boundary (the median wall time over the whole run's, per boundary); and how a run's wall time
    /// splits into the wait for its first start, its runs in workers and its boundaries (medians per job).
    pub fn boundary_table(&self) -> String {
        let whole = self.median_ms(Variant::Whole);
        let rows: Vec<Vec<String>> = Variant::ALL[1..]
            .iter()
            .map(|&v| {
                let b: Vec<Boundary> = self.of(v).flat_map(|s| s.timeline.boundaries.iter().copied()).collect();
                let of_runs = |f: fn(&Timeline) -> f64| {
                    num(Summary::of(&self.of(v).map(|s| f(&s.timeline)).collect::<Vec<_>>()).p50, 0)
                };
                let med = |f: fn(&Boundary) -> f64| num(Summary::of(&b.iter().map(f).collect::<Vec<_>>()).p50, 1);
                let per_run = Summary::of(&self.of(v).map(|s| f64::from(s.slices)).collect::<Vec<_>>()).p50;
                let cost = (self.median_ms(v) - whole) / (per_run - 1.0);
                vec![
                    v.label(),
                    b.len().to_string(),
                    med(|x| x.capture_ms),
                    med(|x| x.stop_to_parked),
                    med(|x| x.parked_to_placed),
                    med(|x| x.placed_to_started),
                    {
                        let t: Vec<f64> = b.iter().map(Boundary::total).collect();
                        let s = Summary::of(&t);
                        let p90 = percentile(&t, 0.9).unwrap_or(f64::NAN);
                        format!("{} / {} / {}", num(s.p50, 1), num(p90, 1), num(s.max, 1))
                    },
                    num(cost, 1),
                    of_runs(|t| t.to_first_start_ms),
                    of_runs(|t| Summary::of(&t.runs_ms).p50),
                    of_runs(|t| t.runs_ms.iter().sum()),
                    of_runs(|t| t.boundaries.iter().map(Boundary::total).sum()),
                ]
            })
            .collect();
        let head = [
            "variant",
            "boundaries",
            "stop capture",
            "stop checkpoint → `parked`",
            "`parked` → `placed`",
            "`placed` → `started`",
            "stop checkpoint → `started` p50 / p90 / max",
            "wall time over the whole run, per boundary",
            "submit → first `started`",
            "a run: `started` → stop checkpoint",
            "all runs",
            "all boundaries",
        ];
        format!("Where a slice boundary's time goes (ms, medians):\n\n{}", table(&head, &rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(variant: Variant, wall_ms: f64, acc: u64) -> Sample {
        Sample {
            variant,
            rep: 0,
            wall_ms,
            slices: 1,
            node_changes: 0,
            output: json!({"acc": acc}),
            timeline: Timeline::default(),
        }
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
    fn slice_boundaries_are_read_from_the_events() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let stop = EventKind::Checkpointed {
            node: "a".into(),
            seq: 2,
            bytes: 300,
            capture_ms: 0.7,
            mode: "stop".into(),
            ttsp_ms: 0.1,
            waited: None,
        };
        let periodic = EventKind::Checkpointed {
            node: "a".into(),
            seq: 1,
            bytes: 300,
            capture_ms: 0.5,
            mode: "continue".into(),
            ttsp_ms: 0.1,
            waited: None,
        };
        let parked = EventKind::Parked { node: Some("a".into()), reason: "slice".into(), seq: Some(2) };
        let placed = EventKind::Placed { node: "b".into() };
        let started = EventKind::Started { node: "b".into(), resumed_from: Some(2) };
        let events = vec![
            (at(0), placed.clone()),
            (at(1), started.clone()),
            (at(100), periodic),
            (at(180), stop),
            (at(183), parked),
            (at(190), placed),
            (at(200), started),
        ];
        let t = timeline(t0, &events);
        assert_eq!((t.to_first_start_ms, t.runs_ms.clone()), (1.0, vec![179.0]));
        let b = t.boundaries;
        assert_eq!(b.len(), 1, "{b:?}");
        assert_eq!((b[0].capture_ms, b[0].stop_to_parked, b[0].parked_to_placed), (0.7, 3.0, 7.0));
        assert_eq!((b[0].placed_to_started, b[0].total()), (10.0, 20.0));
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
        // Paired with the whole run of its own repetition (rep 0: 4000 ms), not with the median.
        assert!(t.contains("| `r_limit_ms` 2000 | 1 | 4.150 | 4.150–4.150 | 1.038x | 1.038x / 1.038x |"), "{t}");
        assert!(t.contains("≤ 1.05x: met"), "{t}");
        assert!(t.contains("1.375x") && t.contains("≤ 1.25x: **missed**"), "{t}");
        r.samples[0].wall_ms = 3000.0;
        r.samples[0].rep = 1;
        r.samples[1].rep = 0;
        assert_eq!(r.paired_ratios(Variant::Limit(2000)), vec![4150.0 / 4100.0]);
        r.samples.push(sample(Variant::Limit(200), 5000.0, 2));
        assert!(!r.outputs_identical());
        assert!(r.table().contains("**no**"));
    }
}
