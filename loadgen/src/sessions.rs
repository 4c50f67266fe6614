//! A scenario's session streams played against a mesh: each session of each `[[sessions]]` stream is opened at
//! t=0 (`jobs.submit` with `"session": true`) and sent its requests (`sessions.request`) one after the other, in
//! order, each at its time, without waiting for replies (they queue in the session). What the gateway numbered
//! each request is recorded, so that whoever checks the replies (the testbed) knows which reply answers what.
use crate::scenario::{patiently, submit, Outcome};
use bytes::Bytes;
use microlambda::bus::Bus;
use microlambda::scenario::{Scenario, SessionStream};
use microlambda::wire::{FunctionRef, SessionRequest, SessionRequestReply, SubmitRequest};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How one stream's sessions went; printed under `"sessions"` in the loadgen's line.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct StreamTally {
    /// Sessions accepted (a retried opening the gateway already knew counts too).
    pub opened: usize,
    /// Openings refused, or never answered.
    pub refused: usize,
    /// Requests sent.
    pub sent: usize,
    /// Of those, recorded by the gateway (it answered with the request's number).
    pub recorded: usize,
}

/// One session, played.
#[derive(Debug, Clone, PartialEq)]
pub struct Played {
    pub stream: String,
    pub session: String,
    pub opened: bool,
    /// Per request sent, in order (the session's schedule from its first request), the number the gateway gave
    /// it: `None` when it refused the request or did not answer.
    pub numbers: Vec<Option<u64>>,
}

/// Play session `k` of `stream`: open it at `start`, then send each scheduled request at its time, in order,
/// until its schedule ends, `end` passes or `stop` turns true. A request not answered, or answered
/// `unavailable`, is sent again for up to [`crate::scenario::SUBMIT_PATIENCE`] with the same `request_id`, which
/// the gateway records once; one still unanswered then is recorded as such (`None`).
#[allow(clippy::too_many_arguments)]
async fn play(
    bus: Bus,
    sc: &Scenario,
    stream: &SessionStream,
    k: usize,
    t0_unix_ms: u64,
    start: Instant,
    end: Instant,
    mut stop: watch::Receiver<bool>,
) -> Played {
    let session = stream.session_id(&sc.name, t0_unix_ms, k);
    let schedule = stream.schedule(sc.seed, k, sc.duration());
    let mut played = Played { stream: stream.name.clone(), session: session.clone(), opened: false, numbers: vec![] };
    let open = SubmitRequest {
        function: FunctionRef { entry: Some(stream.entry().into()), ..FunctionRef::inline(&stream.source) },
        input: stream.opening.clone(),
        job_id: Some(session.clone()),
        r_limit_ms: stream.r_limit_ms,
        priority: 0,
        session: true,
    };
    let body = Bytes::from(serde_json::to_vec(&open).unwrap_or_default());
    played.opened = matches!(submit(bus.clone(), body).await, Outcome::Accepted | Outcome::Duplicate);
    if !played.opened {
        return played;
    }
    for (at, input) in schedule {
        tokio::select! {
            _ = tokio::time::sleep_until(start + at) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        if *stop.borrow() || Instant::now() >= end {
            break;
        }
        // Its own request_id: a repeat (no answer, or `unavailable`) is recorded once.
        let request_id = Some(format!("r{}", played.numbers.len() + 1));
        let req = SessionRequest { session: session.clone(), input, close: false, request_id };
        let body = Bytes::from(serde_json::to_vec(&req).unwrap_or_default());
        let unavailable = |r: &SessionRequestReply| match r {
            SessionRequestReply::Error { error } if error.code == microlambda::wire::code::UNAVAILABLE => {
                Some(format!("{}: {}", error.code, error.message))
            }
            _ => None,
        };
        let send = || bus.session_request_raw::<SessionRequestReply>(body.clone());
        let n = match patiently(send, unavailable).await {
            Ok(SessionRequestReply::Accepted { n, .. }) => Some(n),
            Ok(SessionRequestReply::Error { error }) => {
                eprintln!(
                    "loadgen: request {} to session {session} refused: {}: {}",
                    played.numbers.len() + 1,
                    error.code,
                    error.message
                );
                None
            }
            Err(e) => {
                eprintln!("loadgen: no answer to request {} to session {session}: {e}", played.numbers.len() + 1);
                None
            }
        };
        played.numbers.push(n);
    }
    played
}

/// The scenario's sessions being played; [`Sessions::finish`] waits for them.
pub struct Sessions {
    tasks: JoinSet<Played>,
    stop: watch::Sender<bool>,
}

impl Sessions {
    /// Start playing every session of every stream of `sc` (none without `[[sessions]]`), on the clock whose t=0
    /// is `start` (the wall-clock `t0_unix_ms`, which names the sessions), the load phase ending at `end`.
    pub fn start(bus: &Bus, sc: &Scenario, t0_unix_ms: u64, start: Instant, end: Instant) -> Self {
        let (stop, rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for stream in &sc.sessions {
            for k in 1..=stream.count {
                let (bus, sc, stream, rx) = (bus.clone(), sc.clone(), stream.clone(), rx.clone());
                tasks.spawn(async move { play(bus, &sc, &stream, k, t0_unix_ms, start, end, rx).await });
            }
        }
        Self { tasks, stop }
    }

    /// Stop sending (interrupted): each session ends after the request it is sending, if any.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Wait for every session to end its schedule (or to stop); each stream's tally (every stream listed), and
    /// per session opened the numbers of its requests ([`Played::numbers`]).
    pub async fn finish(
        mut self,
        sc: &Scenario,
        grace: Duration,
    ) -> (BTreeMap<String, StreamTally>, BTreeMap<String, Vec<Option<u64>>>) {
        let mut streams: BTreeMap<String, StreamTally> =
            sc.sessions.iter().map(|s| (s.name.clone(), StreamTally::default())).collect();
        let mut numbers = BTreeMap::new();
        // Sending ends with the load phase; a request already sent waits at most for its answer's timeout.
        let deadline = Instant::now() + grace;
        loop {
            let next = tokio::select! {
                r = self.tasks.join_next() => r,
                _ = tokio::time::sleep_until(deadline) => {
                    self.stop();
                    self.tasks.join_next().await
                }
            };
            let Some(r) = next else { break };
            let Ok(p) = r else { continue };
            let t = streams.entry(p.stream.clone()).or_default();
            if p.opened {
                t.opened += 1;
            } else {
                t.refused += 1;
            }
            t.sent += p.numbers.len();
            t.recorded += p.numbers.iter().flatten().count();
            if p.opened {
                numbers.insert(p.session, p.numbers);
            }
        }
        (streams, numbers)
    }
}
