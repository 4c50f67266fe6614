//! Load for the testbed: radio load a BBU would report (`radio.load.<node>`, constant or a step) and a
//! stream of jobs at a fixed rate through the public `jobs.submit` API, with a count of how they ended.
use futures::StreamExt;
use microlambda::bus::Bus;
use microlambda::wire::{EventKind, FunctionRef, JobEvent, SubmitReply, SubmitRequest};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PatternError {
    #[error("radio pattern {0:?}: expected NODE=constant:LOAD or NODE=step:FROM:TO:AFTER_S")]
    Syntax(String),
    #[error("radio load {0} is outside 0..1")]
    Range(f64),
}

/// A radio load over time.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    Constant(f64),
    /// `from` until `after`, then `to`.
    Step {
        from: f64,
        to: f64,
        after: Duration,
    },
}

impl Pattern {
    pub fn at(&self, t: Duration) -> f64 {
        match *self {
            Pattern::Constant(v) => v,
            Pattern::Step { from, to, after } => {
                if t < after {
                    from
                } else {
                    to
                }
            }
        }
    }
}

/// Parse `NODE=constant:0.3` or `NODE=step:0.2:0.9:10`.
pub fn parse_radio(s: &str) -> Result<(String, Pattern), PatternError> {
    let bad = || PatternError::Syntax(s.to_string());
    let (node, pat) = s.split_once('=').ok_or_else(bad)?;
    let parts: Vec<&str> = pat.split(':').collect();
    let num = |p: &str| p.parse::<f64>().map_err(|_| bad());
    let unit = |v: f64| {
        if (0.0..=1.0).contains(&v) {
            Ok(v)
        } else {
            Err(PatternError::Range(v))
        }
    };
    let pattern = match parts.as_slice() {
        ["constant", v] => Pattern::Constant(unit(num(v)?)?),
        ["step", a, b, t] => {
            Pattern::Step { from: unit(num(a)?)?, to: unit(num(b)?)?, after: Duration::from_secs_f64(num(t)?.max(0.0)) }
        }
        _ => return Err(bad()),
    };
    if !microlambda::wire::is_valid_token(node) {
        return Err(bad());
    }
    Ok((node.to_string(), pattern))
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
}

/// Run the plan until its duration ends (then wait up to 10 s for the jobs in flight).
pub async fn run(bus: &Bus, plan: &Plan) -> Result<Tally, microlambda::bus::BusError> {
    let start = Instant::now();
    let mine: Arc<Mutex<HashSet<String>>> = Arc::default();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut events = bus.subscribe_all_events().await?;
    let (m2, t2) = (mine.clone(), tally.clone());
    let listener = tokio::spawn(async move {
        while let Some(m) = events.next().await {
            let Ok(ev) = serde_json::from_slice::<JobEvent>(&m.payload) else {
                continue;
            };
            if !ev.is_final() || !m2.lock().is_ok_and(|mut s| s.remove(&ev.job_id)) {
                continue;
            }
            if let Ok(mut t) = t2.lock() {
                match ev.kind {
                    EventKind::Completed { .. } => t.completed += 1,
                    _ => t.failed += 1,
                }
            }
        }
    });
    let mut radio_tick = tokio::time::interval(plan.radio_period);
    let job_every = if plan.rate > 0.0 { Duration::from_secs_f64(1.0 / plan.rate) } else { Duration::from_secs(3600) };
    let mut job_tick = tokio::time::interval(job_every);
    job_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0usize;
    while start.elapsed() < plan.duration {
        tokio::select! {
            _ = radio_tick.tick() => {
                for (node, p) in &plan.radio {
                    bus.publish_radio(node, p.at(start.elapsed())).await?;
                }
            }
            _ = job_tick.tick(), if plan.rate > 0.0 && plan.jobs.is_none_or(|j| n < j) => {
                n += 1;
                let job_id = microlambda::client::client_job_id();
                let req = SubmitRequest {
                    function: plan.function.clone(),
                    input: n.into(),
                    job_id: Some(job_id.clone()),
                    r_limit_ms: None,
                    priority: 0,
                };
                if let Ok(mut s) = mine.lock() {
                    s.insert(job_id.clone());
                }
                let (bus, tally, mine) = (bus.clone(), tally.clone(), mine.clone());
                tokio::spawn(async move {
                    let body = serde_json::to_vec(&req).unwrap_or_default();
                    let r = bus.submit_raw::<SubmitReply>(body.into()).await;
                    if let Ok(mut t) = tally.lock() {
                        t.submitted += 1;
                        match r {
                            Ok(SubmitReply::Accepted { .. }) => t.accepted += 1,
                            _ => {
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
    while drain.elapsed() < Duration::from_secs(10) && !mine.lock().map(|s| s.is_empty()).unwrap_or(true) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    listener.abort();
    let t = tally.lock().map(|t| t.clone()).unwrap_or_default();
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radio_patterns() {
        assert_eq!(parse_radio("node-1=constant:0.3"), Ok(("node-1".into(), Pattern::Constant(0.3))));
        let (_, p) = parse_radio("n2=step:0.2:0.9:10").unwrap();
        assert_eq!(p.at(Duration::from_secs(9)), 0.2);
        assert_eq!(p.at(Duration::from_secs(10)), 0.9);
        assert_eq!(parse_radio("n=constant:1.5"), Err(PatternError::Range(1.5)));
        assert!(matches!(parse_radio("n=ramp:0:1"), Err(PatternError::Syntax(_))));
        assert!(matches!(parse_radio("constant:0.3"), Err(PatternError::Syntax(_))));
        assert!(matches!(parse_radio("a.b=constant:0.3"), Err(PatternError::Syntax(_))));
    }
}
