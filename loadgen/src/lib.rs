//! Load for the testbed: the radio load a BBU would report (`radio.load.<node>`, any pattern of
//! [`microlambda::scenario::Pattern`]) and job streams through the public `jobs.submit` API.
//!
//! Two drivers: [`run`], the plain command line (one function at a fixed rate, then a count of how the jobs
//! ended), and [`scenario::run`], which plays a scenario file (radio patterns, CPU [`burn`], a Poisson stream of
//! mixed job kinds, session streams of the paper's workloads: [`sessions`]) and only counts what it sent.
pub use microlambda::burn;
pub mod scenario;
pub mod sessions;

use futures::StreamExt;
use microlambda::bus::Bus;
use microlambda::scenario::{derive_seed, Pattern, PatternError};
use microlambda::wire::{EventKind, FunctionRef, JobEvent, SubmitRequest};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Seed of command-line `bursty` patterns without one (a scenario's default seed), mixed with the node id.
pub const CLI_SEED: u64 = 1;

/// Why a `--radio NODE=PATTERN` flag was refused.
#[derive(Debug, thiserror::Error)]
pub enum RadioArgError {
    #[error("radio flag {0:?}: expected NODE=PATTERN, NODE a token (A-Z a-z 0-9 _ -)")]
    Syntax(String),
    #[error(transparent)]
    Pattern(#[from] PatternError),
}

/// Parse `NODE=PATTERN` (`node-1=constant:0.3`, `n2=step:0.2:0.9:10`, any kind of
/// [`Pattern::parse`]); a `replay` file is relative to `base_dir`, a `bursty` pattern without a seed takes
/// one from [`CLI_SEED`] and the node id.
pub fn parse_radio_in(s: &str, base_dir: &Path) -> Result<(String, Pattern), RadioArgError> {
    let (node, pat) = s.split_once('=').ok_or_else(|| RadioArgError::Syntax(s.to_string()))?;
    if !microlambda::wire::is_valid_token(node) {
        return Err(RadioArgError::Syntax(s.to_string()));
    }
    let pattern = Pattern::parse(pat, base_dir, derive_seed(CLI_SEED, node))?;
    Ok((node.to_string(), pattern))
}

/// [`parse_radio_in`] relative to the current directory.
pub fn parse_radio(s: &str) -> Result<(String, Pattern), RadioArgError> {
    parse_radio_in(s, Path::new("."))
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub radio: Vec<(String, Pattern)>,
    pub radio_period: Duration,
    /// Jobs per second (0: none).
    pub rate: f64,
    /// Stop submitting after this many (None: until `duration`).
    pub jobs: Option<usize>,
    pub function: FunctionRef,
    /// Each job's input (None: the job's number, 1, 2, ...).
    pub input: Option<serde_json::Value>,
    pub duration: Duration,
}

/// How the submitted jobs ended.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tally {
    pub submitted: usize,
    pub accepted: usize,
    pub refused: usize,
    pub completed: usize,
    pub failed: usize,
    /// Jobs that ran on more than one node before they ended: migrated straight to another node, or parked
    /// (evacuated while no node had room, or lost with their node) and resumed on another one.
    pub moved: usize,
    /// How many different outputs the completed jobs gave (with one input for every job, 1 when every job,
    /// moved or not, ended exactly as the others).
    pub distinct_outputs: usize,
}

/// How long [`run`] waits, after the plan's duration, for the jobs still running to end.
pub const DRAIN: Duration = Duration::from_secs(30);

/// Run the plan until its duration ends (then wait up to [`DRAIN`] for the jobs in flight).
pub async fn run(bus: &Bus, plan: &Plan) -> Result<Tally, microlambda::bus::BusError> {
    let start = Instant::now();
    let mine: Arc<Mutex<HashSet<String>>> = Arc::default();
    // Per job of ours, the nodes it ran on; the outputs of the completed ones.
    let nodes: Arc<Mutex<HashMap<String, HashSet<String>>>> = Arc::default();
    let outputs: Arc<Mutex<HashSet<String>>> = Arc::default();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut events = bus.subscribe_all_events().await?;
    let (m2, t2, n2, o2) = (mine.clone(), tally.clone(), nodes.clone(), outputs.clone());
    let listener = tokio::spawn(async move {
        while let Some(m) = events.next().await {
            let Ok(ev) = serde_json::from_slice::<JobEvent>(&m.payload) else {
                continue;
            };
            if !m2.lock().is_ok_and(|s| s.contains(&ev.job_id)) {
                continue;
            }
            let ran_on: &[&String] = match &ev.kind {
                EventKind::Started { node, .. } => &[node],
                EventKind::Migrated { from, to, .. } => &[from, to],
                _ => &[],
            };
            if let Ok(mut n) = n2.lock() {
                n.entry(ev.job_id.clone()).or_default().extend(ran_on.iter().map(|s| s.to_string()));
            }
            if !ev.is_final() || !m2.lock().is_ok_and(|mut s| s.remove(&ev.job_id)) {
                continue;
            }
            if let Ok(mut t) = t2.lock() {
                match &ev.kind {
                    EventKind::Completed { output, .. } => {
                        t.completed += 1;
                        if let Ok(mut o) = o2.lock() {
                            o.insert(output.to_string());
                        }
                    }
                    _ => t.failed += 1,
                }
                if n2.lock().is_ok_and(|n| n.get(&ev.job_id).is_some_and(|s| s.len() > 1)) {
                    t.moved += 1;
                }
            }
        }
    });
    let mut radio = plan.radio.clone();
    let mut radio_tick = tokio::time::interval(plan.radio_period);
    let job_every = if plan.rate > 0.0 { Duration::from_secs_f64(1.0 / plan.rate) } else { Duration::from_secs(3600) };
    let mut job_tick = tokio::time::interval(job_every);
    job_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0usize;
    while start.elapsed() < plan.duration {
        tokio::select! {
            _ = radio_tick.tick() => {
                for (node, p) in radio.iter_mut() {
                    bus.publish_radio(node, p.at(start.elapsed())).await?;
                }
            }
            _ = job_tick.tick(), if plan.rate > 0.0 && plan.jobs.is_none_or(|j| n < j) => {
                n += 1;
                let job_id = microlambda::client::client_job_id();
                let req = SubmitRequest {
                    function: plan.function.clone(),
                    input: plan.input.clone().unwrap_or_else(|| n.into()),
                    job_id: Some(job_id.clone()),
                    r_limit_ms: None,
                    priority: 0,
                    session: false,
                };
                if let Ok(mut s) = mine.lock() {
                    s.insert(job_id.clone());
                }
                let (bus, tally, mine) = (bus.clone(), tally.clone(), mine.clone());
                tokio::spawn(async move {
                    let body = serde_json::to_vec(&req).unwrap_or_default();
                    // Sent again while unanswered or `unavailable` (its job id makes a repeat one job).
                    let r = scenario::submit(bus, body.into()).await;
                    if let Ok(mut t) = tally.lock() {
                        t.submitted += 1;
                        match r {
                            scenario::Outcome::Accepted | scenario::Outcome::Duplicate => t.accepted += 1,
                            scenario::Outcome::Refused => {
                                t.refused += 1;
                                if let Ok(mut s) = mine.lock() { s.remove(&job_id); }
                            }
                        }
                    }
                });
            }
        }
    }
    let drain = Instant::now();
    while drain.elapsed() < DRAIN && !mine.lock().map(|s| s.is_empty()).unwrap_or(true) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    listener.abort();
    let mut t = tally.lock().map(|t| t.clone()).unwrap_or_default();
    t.distinct_outputs = outputs.lock().map(|o| o.len()).unwrap_or_default();
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radio_flags() {
        // (flag, node, load at 5 s and at 15 s)
        let ok: Vec<(&str, &str, f64, f64)> = vec![
            ("node-1=constant:0.3", "node-1", 0.3, 0.3),
            ("n2=step:0.2:0.9:10", "n2", 0.2, 0.9),
            ("n=ramp:0:1:0:10", "n", 0.5, 1.0),
            ("n=sine:0.5:0.25:20", "n", 0.75, 0.25),
        ];
        for (flag, node, at5, at15) in ok {
            let (n, mut p) = parse_radio(flag).unwrap_or_else(|e| panic!("{flag}: {e}"));
            assert_eq!(n, node);
            assert!((p.at(Duration::from_secs(5)) - at5).abs() < 1e-9, "{flag} at 5 s");
            assert!((p.at(Duration::from_secs(15)) - at15).abs() < 1e-9, "{flag} at 15 s");
        }
        // A bursty flag without a seed: the same chain for the same node, another for another node.
        let (_, a) = parse_radio("n1=bursty:0.1:0.9:1:1").unwrap();
        let (_, b) = parse_radio("n1=bursty:0.1:0.9:1:1").unwrap();
        let (_, c) = parse_radio("n2=bursty:0.1:0.9:1:1").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);

        assert!(matches!(parse_radio("n=constant:1.5"), Err(RadioArgError::Pattern(PatternError::Range { .. }))));
        assert!(matches!(parse_radio("n=ramp:0:1"), Err(RadioArgError::Pattern(PatternError::Syntax { .. }))));
        assert!(matches!(parse_radio("n=replay:none.csv"), Err(RadioArgError::Pattern(PatternError::Read { .. }))));
        assert!(matches!(parse_radio("constant:0.3"), Err(RadioArgError::Syntax(_))));
        assert!(matches!(parse_radio("a.b=constant:0.3"), Err(RadioArgError::Syntax(_))));
    }
}
