//! The session streams of a scenario run, on the testbed's side: which sessions the load generator opened and
//! what the gateway numbered each request it sent (its JSON line), the requests the gateway recorded (read back
//! from the mesh: what the sessions were really given, including a request whose answer the load generator
//! missed), the replies still awaited while the run drains, and each session run again in plain CPython
//! (`local.py` beside the workload's module, given the same opening and requests) for the report to compare.
use crate::bus::Bus;
use crate::report::sessions::SessionObserved;
use crate::scenario::{Scenario, SessionStream};
use crate::wire::{EventKind, JobEvent, SessionInput};
use futures::StreamExt;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// How long one plain-CPython run of a session may take.
const REFERENCE_WITHIN: Duration = Duration::from_secs(600);
/// Plain-CPython runs at once (the mesh has stopped by then: its cores are free).
const REFERENCE_RUNS_AT_ONCE: usize = 2;

/// One session of the run.
pub(super) struct Planned {
    pub observed: SessionObserved,
    stream: usize,
    /// What the load generator sent, in order: when it was due (wall-clock ms), its input, and the number the
    /// gateway answered with (none: refused, or its answer lost).
    sent: Vec<(u64, Value, Option<u64>)>,
    /// What the gateway recorded, requests 1, 2, ... in order (read back from the mesh).
    recorded: Vec<Value>,
}

/// Every session of every stream, from the load generator's line (`session_requests`: per session opened, the
/// number of each request it sent) and the scenario (which made the requests).
pub(super) fn plan(sc: &Scenario, t0_unix_ms: u64, loadgen: Option<&Value>) -> Vec<Planned> {
    let numbers: BTreeMap<String, Vec<Option<u64>>> =
        loadgen.and_then(|v| serde_json::from_value(v["loadgen"]["session_requests"].clone()).ok()).unwrap_or_default();
    let mut out = Vec::new();
    for (si, stream) in sc.sessions.iter().enumerate() {
        for k in 1..=stream.count {
            let session = stream.session_id(&sc.name, t0_unix_ms, k);
            let ns = numbers.get(&session);
            let sent = stream
                .schedule(sc.seed, k, sc.duration())
                .into_iter()
                .zip(ns.into_iter().flatten())
                .map(|((at, input), n)| (t0_unix_ms + at.as_millis() as u64, input, *n))
                .collect::<Vec<_>>();
            let observed = SessionObserved {
                stream: stream.name.clone(),
                workload: stream.workload.name.into(),
                session,
                opened: ns.is_some(),
                sent: sent.len(),
                ..Default::default()
            };
            out.push(Planned { observed, stream: si, sent, recorded: Vec::new() });
        }
    }
    out
}

/// Read the requests the gateway recorded since the last call (`<session>.<n>` for the next numbers).
pub(super) async fn refresh(bus: &Bus, planned: &mut [Planned]) {
    for p in planned.iter_mut().filter(|p| p.observed.opened) {
        // The load generator sends no close: a close recorded (idle too long) ends what the session takes.
        while let Ok(Some(SessionInput::Input(input))) =
            bus.session_request_input(&p.observed.session, p.recorded.len() as u64 + 1).await
        {
            p.recorded.push(input);
        }
    }
}

/// The request numbers a session must answer: its opening's, each the gateway answered the load generator
/// with, and each it recorded.
fn wanted(p: &Planned) -> HashSet<u64> {
    let answered = p.sent.iter().filter_map(|s| s.2);
    std::iter::once(0).chain(answered).chain(1..=p.recorded.len() as u64).collect()
}

/// Replies still awaited, over every session opened, less those in `events`.
pub(super) fn missing_replies(planned: &[Planned], events: &[(u64, JobEvent)]) -> usize {
    let mut want: HashMap<&str, HashSet<u64>> =
        planned.iter().filter(|p| p.observed.opened).map(|p| (p.observed.session.as_str(), wanted(p))).collect();
    for (_, e) in events {
        if let (EventKind::Reply { reply, .. }, Some(w)) = (&e.kind, want.get_mut(e.job_id.as_str())) {
            w.remove(&reply.n);
        }
    }
    want.values().map(HashSet::len).sum()
}

/// The recorded requests with when each was due (the load generator's send they are, in order), for the
/// report; or why the record does not match what was sent.
fn match_sent(p: &Planned) -> Result<Vec<(u64, u64)>, String> {
    let mut out = Vec::with_capacity(p.recorded.len());
    let mut next = 0; // the first send not matched yet
    for (i, input) in p.recorded.iter().enumerate() {
        let n = i as u64 + 1;
        // The send numbered n, else the next send with this input that got no number (its answer was lost).
        let at = p.sent[next..].iter().position(|s| s.2 == Some(n) || (s.2.is_none() && &s.1 == input));
        let Some(j) = at.map(|j| next + j) else {
            return Err(format!("request {n} was recorded but the load generator did not send it ({input})"));
        };
        if &p.sent[j].1 != input {
            return Err(format!("request {n}: the gateway recorded {input}, the load generator sent {}", p.sent[j].1));
        }
        out.push((n, p.sent[j].0));
        next = j + 1;
    }
    match p.sent.iter().filter_map(|s| s.2).find(|&n| n as usize > p.recorded.len()) {
        Some(n) => Err(format!("request {n} was answered to the load generator but is not recorded")),
        None => Ok(out),
    }
}

/// Run each session in plain CPython and fill in its expected replies. A session whose requests are a prefix
/// of another's (same module and opening) takes that run's first replies: the runs are deterministic.
/// The recorded requests are checked against what was sent first: a session whose record does not match is
/// not run ([`SessionObserved::expected`] says why).
pub(super) async fn check_in_cpython(sc: &Scenario, planned: &mut [Planned]) -> Vec<SessionObserved> {
    let mut order: Vec<usize> = Vec::new();
    for (i, p) in planned.iter_mut().enumerate().filter(|(_, p)| p.observed.opened) {
        match match_sent(p) {
            Ok(requests) => {
                p.observed.requests = requests;
                order.push(i);
            }
            Err(why) => {
                p.observed.requests = (1..=p.recorded.len() as u64).map(|n| (n, 0)).collect();
                p.observed.expected = Err(why);
            }
        }
    }
    // The longest first, so that the shorter ones find a run they are a prefix of.
    order.sort_by_key(|&i| std::cmp::Reverse(planned[i].recorded.len()));
    let mut runs: Vec<usize> = Vec::new();
    let mut taken_from: HashMap<usize, usize> = HashMap::new();
    for &i in &order {
        let p = &planned[i];
        let same = runs.iter().copied().find(|&r| {
            let q = &planned[r];
            let (a, b) = (&sc.sessions[q.stream], &sc.sessions[p.stream]);
            a.file == b.file && a.opening == b.opening && q.recorded.starts_with(&p.recorded)
        });
        match same {
            Some(r) => {
                taken_from.insert(i, r);
            }
            None => runs.push(i),
        }
    }
    println!(
        "scenario: {} sessions' replies checked against plain CPython ({} runs, {REFERENCE_RUNS_AT_ONCE} at once)",
        taken_from.len() + runs.len(),
        runs.len()
    );
    let results: Vec<(usize, Result<Vec<Value>, String>)> = futures::stream::iter(runs.iter().map(|&i| {
        let (stream, inputs) = (&sc.sessions[planned[i].stream], planned[i].recorded.clone());
        async move { (i, reference(stream, &inputs).await) }
    }))
    .buffer_unordered(REFERENCE_RUNS_AT_ONCE)
    .collect()
    .await;
    let results: HashMap<usize, Result<Vec<Value>, String>> = results.into_iter().collect();
    for (i, p) in planned.iter_mut().enumerate() {
        let Some(r) = results.get(taken_from.get(&i).unwrap_or(&i)) else { continue };
        // The opening's reply and one per request of this session.
        p.observed.expected = r.clone().map(|mut v| {
            v.truncate(p.recorded.len() + 1);
            v
        });
    }
    planned.iter().map(|p| p.observed.clone()).collect()
}

/// The replies of `stream`'s session opened with its opening and sent `inputs`, in plain CPython: `local.py`
/// beside the workload's module (examples/paper/local.py), one JSON line per reply.
async fn reference(stream: &SessionStream, inputs: &[Value]) -> Result<Vec<Value>, String> {
    let local = stream.file.with_file_name("local.py");
    if !local.is_file() {
        return Err(format!("no {} to run it in plain CPython", local.display()));
    }
    let python = crate::config::python_executable().unwrap_or_else(|| "python3".into());
    let mut cmd = tokio::process::Command::from(crate::worker::host::reference_command(&python));
    cmd.arg(&local)
        .arg(&stream.file)
        .arg(stream.entry())
        .arg(stream.opening.to_string())
        .arg(Value::from(inputs.to_vec()).to_string())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(REFERENCE_WITHIN, cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(format!("cannot start {}: {e}", python.display())),
        Err(_) => return Err(format!("plain CPython took over {REFERENCE_WITHIN:?}")),
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("plain CPython failed ({}): {}", out.status, err.lines().last().unwrap_or_default()));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("plain CPython printed {l:?}: {e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::SessionReply;
    use serde_json::json;

    fn planned(sent: &[(u64, Value, Option<u64>)], recorded: &[Value]) -> Planned {
        let observed = SessionObserved { session: "s".into(), opened: true, ..Default::default() };
        Planned { observed, stream: 0, sent: sent.to_vec(), recorded: recorded.to_vec() }
    }

    #[test]
    fn recorded_requests_are_matched_with_what_was_sent() {
        let (a, b, c) = (json!("a"), json!("b"), json!("c"));
        // Every answer heard: each recorded request is the send numbered so.
        let p = planned(&[(10, a.clone(), Some(1)), (20, b.clone(), Some(2))], &[a.clone(), b.clone()]);
        assert_eq!(match_sent(&p), Ok(vec![(1, 10), (2, 20)]));
        // The answer to the second was lost, the third refused: the second is recorded all the same.
        let p =
            planned(&[(10, a.clone(), Some(1)), (20, b.clone(), None), (30, c.clone(), None)], &[a.clone(), b.clone()]);
        assert_eq!(match_sent(&p), Ok(vec![(1, 10), (2, 20)]));
        // A recorded input that is not what was sent under its number; one nobody sent; one answered but missing.
        let p = planned(&[(10, a.clone(), Some(1))], std::slice::from_ref(&b));
        assert!(match_sent(&p).unwrap_err().contains("the gateway recorded \"b\""));
        let p = planned(&[(10, a.clone(), Some(1))], &[a.clone(), c.clone()]);
        assert!(match_sent(&p).unwrap_err().contains("did not send it"));
        let p = planned(&[(10, a.clone(), Some(1)), (20, b.clone(), Some(2))], std::slice::from_ref(&a));
        assert!(match_sent(&p).unwrap_err().contains("request 2 was answered"));
    }

    #[test]
    fn replies_are_awaited_for_the_opening_and_every_request_answered_or_recorded() {
        let p = planned(&[(10, json!(1), Some(1)), (20, json!(2), None)], &[json!(1), json!(2), json!(3)]);
        let reply = |n| JobEvent {
            job_id: "s".into(),
            ts_ms: 0,
            kind: EventKind::Reply { node: "n1".into(), reply: SessionReply { n, output: None, error: None } },
        };
        assert_eq!(missing_replies(std::slice::from_ref(&p), &[]), 4);
        assert_eq!(missing_replies(std::slice::from_ref(&p), &[(1, reply(0)), (2, reply(2)), (3, reply(2))]), 2);
        let unopened = Planned { observed: SessionObserved::default(), ..planned(&[], &[]) };
        assert_eq!(missing_replies(&[unopened], &[]), 0);
    }
}
