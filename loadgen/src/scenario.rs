//! Plays a scenario against a mesh: the radio patterns on every node, the CPU burn, the job stream and the
//! session streams ([`crate::sessions`]), for the scenario's load phase, on a clock whose t=0 the caller may give
//! (so the testbed, which performs the faults, shares it). It submits and counts; it does not wait for the jobs
//! to end nor for the sessions' replies (the testbed does).
use crate::sessions::{Sessions, StreamTally};
use bytes::Bytes;
use microlambda::burn::{Burner, LoadCell};
use microlambda::bus::Bus;
use microlambda::scenario::Scenario;
use microlambda::wire::{now_ms, FunctionRef, SubmitReply, SubmitRequest};
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

/// How long a job, or a session's request, is sent again while the request itself fails (NATS down or slow) or
/// the gateway answers `unavailable` (its job store did not answer: a NATS cluster electing the jobs bucket's
/// leader after a server died, a few seconds); any other answer, a refusal included, is final. Retries reuse
/// the job id (a first attempt that did get through shows up as a duplicate) or the request's `request_id`
/// (answered with the number the first one got).
pub const SUBMIT_PATIENCE: Duration = Duration::from_secs(15);
/// Pause between two attempts.
pub const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// After the load phase, how long the sessions may take to finish sending (each request waits for its answer
/// up to the bus's request timeout); then they stop.
pub const SESSIONS_GRACE: Duration = Duration::from_secs(15);

/// How the submissions of a scenario went; printed as `{"loadgen": {...}}`.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct ScenarioTally {
    /// Jobs of the stream submitted during the load phase (`accepted + duplicate + refused`).
    pub submitted: usize,
    /// Accepted as new jobs.
    pub accepted: usize,
    /// Refused by the gateway (an error reply) or never answered after every attempt.
    pub refused: usize,
    /// Accepted as already known (a retry after a lost reply).
    pub duplicate: usize,
    /// Submitted jobs per kind (every kind listed, 0 included).
    pub kinds: BTreeMap<String, usize>,
    /// Per session stream, its sessions and requests (every stream listed; absent without `[[sessions]]`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sessions: BTreeMap<String, StreamTally>,
    /// Per session opened (its job id), the number the gateway gave each request sent to it, in the order sent,
    /// which is the order of its schedule from the first request (`null`: refused or not answered).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub session_requests: BTreeMap<String, Vec<Option<u64>>>,
    /// Stopped early by the stop future (not printed).
    #[serde(skip)]
    pub interrupted: bool,
    /// Radio-load publications that failed (not printed; reported on stderr).
    #[serde(skip)]
    pub radio_errors: usize,
}

pub use microlambda::scenario::job_id;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Outcome {
    Accepted,
    Duplicate,
    Refused,
}

fn count(tally: &mut ScenarioTally, o: Outcome) {
    match o {
        Outcome::Accepted => tally.accepted += 1,
        Outcome::Duplicate => tally.duplicate += 1,
        Outcome::Refused => tally.refused += 1,
    }
}

pub(crate) async fn submit(bus: Bus, body: Bytes) -> Outcome {
    let unavailable = |r: &SubmitReply| match r {
        SubmitReply::Error { error } if error.code == microlambda::wire::code::UNAVAILABLE => {
            Some(format!("{}: {}", error.code, error.message))
        }
        _ => None,
    };
    match patiently(|| bus.submit_raw::<SubmitReply>(body.clone()), unavailable).await {
        Ok(SubmitReply::Accepted { duplicate: false, .. }) => Outcome::Accepted,
        Ok(SubmitReply::Accepted { duplicate: true, .. }) => Outcome::Duplicate,
        Ok(SubmitReply::Error { error }) => {
            eprintln!("loadgen: job refused: {}: {}", error.code, error.message);
            Outcome::Refused
        }
        Err(last) => {
            eprintln!("loadgen: a submission not taken in {SUBMIT_PATIENCE:?}: {last}");
            Outcome::Refused
        }
    }
}

/// Send a request again, every [`RETRY_PAUSE`] for up to [`SUBMIT_PATIENCE`], while the request fails (NATS down
/// or slow) or `again` finds in its answer a reason to (`unavailable`); the request must be safe to repeat (a
/// job id, a session request's `request_id`). The answer, or the last failure after the patience.
pub(crate) async fn patiently<R, F, Fut>(send: F, again: impl Fn(&R) -> Option<String>) -> Result<R, String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<R, microlambda::bus::BusError>>,
{
    let deadline = Instant::now() + SUBMIT_PATIENCE;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let last = match send().await {
            Ok(r) => match again(&r) {
                None => return Ok(r),
                Some(why) => why,
            },
            Err(e) => e.to_string(),
        };
        if Instant::now() + RETRY_PAUSE >= deadline {
            return Err(format!("{last} (after {attempts} attempts)"));
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Run the scenario's load phase. t=0 is `t0_unix_ms` (wall clock; a past instant skips what is already
/// over, a future one waits for it). `stop` ends the load phase early. Failed radio publications and
/// submissions are counted, never fatal: the mesh may lose NATS on purpose (a `restart_nats` fault).
pub async fn run(bus: &Bus, sc: &Scenario, t0_unix_ms: u64, stop: impl Future<Output = ()>) -> ScenarioTally {
    let mut tally =
        ScenarioTally { kinds: sc.jobs.iter().map(|j| (j.name.clone(), 0)).collect(), ..ScenarioTally::default() };
    // The wall-clock t0 as an Instant of this process.
    let (now, wall) = (Instant::now(), now_ms());
    let start = if t0_unix_ms >= wall {
        now + Duration::from_millis(t0_unix_ms - wall)
    } else {
        now.checked_sub(Duration::from_millis(wall - t0_unix_ms)).unwrap_or(now)
    };
    let end = start + sc.duration();
    tokio::pin!(stop);

    tokio::select! {
        _ = tokio::time::sleep_until(start) => {}
        _ = &mut stop => { tally.interrupted = true; return tally; }
    }

    let mut radio = sc.radio.patterns.clone();
    let burn_load = Arc::new(LoadCell::new(0.0));
    let burn_node = sc.burn.as_ref().map(|b| b.node.clone());
    let burner = match &sc.burn {
        Some(b) => match Burner::start(b.threads, burn_load.clone()) {
            Ok(burner) => Some(burner),
            Err(e) => {
                eprintln!("loadgen: cannot start the CPU burner: {e}");
                None
            }
        },
        None => None,
    };

    let sessions = Sessions::start(bus, sc, t0_unix_ms, start, end);
    let mut radio_tick = tokio::time::interval_at(start, Duration::from_millis(sc.radio.period_ms));
    radio_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut stream = sc.job_stream();
    let mut next = stream.next();
    let mut inflight: JoinSet<Outcome> = JoinSet::new();

    loop {
        let job_at = next.filter(|a| a.at < sc.duration()).map(|a| start + a.at);
        tokio::select! {
            biased;
            _ = &mut stop => { tally.interrupted = true; sessions.stop(); break; }
            _ = tokio::time::sleep_until(end) => break,
            _ = radio_tick.tick() => {
                let t = Instant::now().saturating_duration_since(start);
                for (node, p) in radio.iter_mut() {
                    let load = p.at(t);
                    if burn_node.as_deref() == Some(node.as_str()) {
                        burn_load.set(load);
                    }
                    if let Err(e) = bus.publish_radio(node, load).await {
                        if tally.radio_errors == 0 {
                            eprintln!("loadgen: cannot publish the radio load of {node}: {e}");
                        }
                        tally.radio_errors += 1;
                    }
                }
            }
            _ = tokio::time::sleep_until(job_at.unwrap_or(end)), if job_at.is_some() => {
                let Some(a) = next else { continue };
                let kind = &sc.jobs[a.kind];
                let req = SubmitRequest {
                    function: FunctionRef { entry: Some(kind.entry.clone()), ..FunctionRef::inline(&kind.source) },
                    input: kind.inputs[a.input].clone(),
                    job_id: Some(job_id(&sc.name, t0_unix_ms, a.index)),
                    r_limit_ms: kind.r_limit_ms,
                    priority: kind.priority,
                    session: false,
                };
                let body = Bytes::from(serde_json::to_vec(&req).unwrap_or_default());
                tally.submitted += 1;
                *tally.kinds.entry(kind.name.clone()).or_default() += 1;
                inflight.spawn(submit(bus.clone(), body));
                next = stream.next();
            }
        }
        while let Some(r) = inflight.try_join_next() {
            count(&mut tally, r.unwrap_or(Outcome::Refused));
        }
    }
    if let Some(b) = burner {
        b.stop();
    }
    // Answers to the last submissions (each bounded by its attempts and the request timeout).
    while let Some(r) = inflight.join_next().await {
        count(&mut tally, r.unwrap_or(Outcome::Refused));
    }
    (tally.sessions, tally.session_requests) = sessions.finish(sc, SESSIONS_GRACE).await;
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_tokens_unique_per_run() {
        let a = job_id("spike", 0x18f_0000_0000, 7);
        assert_eq!(a, "spike-18f00000000-00007");
        assert!(microlambda::wire::is_valid_token(&a));
        assert_ne!(a, job_id("spike", 0x18f_0000_0001, 7));
        let longest = job_id(&"n".repeat(microlambda::scenario::MAX_NAME_LEN), (1 << 48) - 1, 9_999_999);
        assert!(microlambda::wire::is_valid_token(&longest), "{longest}");
    }

    #[test]
    fn the_tally_prints_as_documented() {
        let t = ScenarioTally {
            submitted: 3,
            accepted: 1,
            refused: 1,
            duplicate: 1,
            kinds: [("ride".to_string(), 3)].into_iter().collect(),
            interrupted: true,
            radio_errors: 2,
            ..ScenarioTally::default()
        };
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            serde_json::json!({"submitted": 3, "accepted": 1, "refused": 1, "duplicate": 1, "kinds": {"ride": 3}})
        );
        // With session streams: each stream's counts, and what each request of each session was numbered.
        let t = ScenarioTally {
            sessions: [("cam".to_string(), StreamTally { opened: 1, refused: 0, sent: 3, recorded: 2 })].into(),
            session_requests: [("p-1-cam-1".to_string(), vec![Some(1), None, Some(2)])].into(),
            ..ScenarioTally::default()
        };
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            serde_json::json!({"submitted": 0, "accepted": 0, "refused": 0, "duplicate": 0, "kinds": {},
                "sessions": {"cam": {"opened": 1, "refused": 0, "sent": 3, "recorded": 2}},
                "session_requests": {"p-1-cam-1": [1, null, 2]}})
        );
    }

    #[tokio::test]
    async fn a_request_is_sent_again_while_unavailable_and_its_answer_kept() {
        let sent = std::sync::atomic::AtomicUsize::new(0);
        let send = || {
            let k = sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { Ok::<_, microlambda::bus::BusError>(k) }
        };
        // Answers 0 and 1 say "again" (unavailable); 2 is kept.
        let r = patiently(send, |k: &usize| (*k < 2).then(|| "unavailable".to_string())).await;
        assert_eq!(r, Ok(2));
        assert_eq!(sent.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
