//! `microlambda-bench session`: requests to an idle session end to end through NATS (recorded by the gateway,
//! the session woken and placed, restored from the checkpoint where it waited, answered, checkpointed to wait
//! again), as request-to-reply latency percentiles; requests that ran on another node than the one before are
//! a session's move between two requests, counted apart.
use futures::StreamExt;
use microlambda::actors::placement::NodesSnapshot;
use microlambda::bus::Bus;
use microlambda::client::ClientError;
use microlambda::stats::Sorted;
use microlambda::wire::{EventKind, JobEvent, SessionRequestReply, SubmitReply};
use std::time::{Duration, Instant};

/// The session: an echo (no compute of its own), holding a little state.
pub const ECHO: &str =
    "def echo(x):\n    seen = []\n    while True:\n        seen.append(x)\n        x = yield len(seen)\n";

/// How long a reply may take: a request to a library workload imports the libraries and restores first.
const REPLY_WITHIN_S: u64 = 120;

#[derive(Debug, Clone)]
pub struct Row {
    pub what: &'static str,
    pub requests: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub fn render(rows: &[Row]) -> String {
    let mut s = format!(
        "| {:<34} | {:>8} | {:>7} | {:>7} | {:>7} | {:>7} |\n|---|---:|---:|---:|---:|---:|\n",
        "request to reply", "requests", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for r in rows {
        s.push_str(&format!(
            "| {:<34} | {:>8} | {:>7.2} | {:>7.2} | {:>7.2} | {:>7.2} |\n",
            r.what, r.requests, r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms
        ));
    }
    s
}

fn row(what: &'static str, ms: &[f64]) -> Row {
    let s = Sorted::new(ms);
    let pct = |p: f64| s.percentile(p).unwrap_or(f64::NAN);
    Row {
        what,
        requests: ms.len(),
        p50_ms: pct(0.5),
        p90_ms: pct(0.9),
        p99_ms: pct(0.99),
        max_ms: s.max().unwrap_or(f64::NAN),
    }
}

/// Open a session and send it `requests` requests one at a time; returns (latency ms, node) per request. With
/// `steer`, before each request the node that answered the last one gets a radio load of 0.75 (under the 0.8
/// threshold: nothing is evacuated) and the others 0, so that placement prefers another node: a move between
/// two requests (all back to 0 at the end).
pub async fn run(bus: &Bus, id: &str, requests: usize, steer: bool) -> Result<Vec<(f64, String)>, ClientError> {
    let echo = Session { source: ECHO, entry: "echo", opening: 0.into() };
    let requests: Vec<serde_json::Value> = (1..=requests).map(serde_json::Value::from).collect();
    Ok(converse(bus, id, &echo, &requests, steer).await?.into_iter().map(|(ms, node, _)| (ms, node)).collect())
}

/// A session to open: its module's source, the function and the opening input.
#[derive(Debug, Clone)]
pub struct Session<'a> {
    pub source: &'a str,
    pub entry: &'a str,
    pub opening: serde_json::Value,
}

/// Open `session` as `id` and send it `requests` one at a time, each after the reply to the one before (with
/// `steer`, as [`run`] says); returns (latency ms, node, output) per request, the opening's not included.
pub async fn converse(
    bus: &Bus,
    id: &str,
    session: &Session<'_>,
    requests: &[serde_json::Value],
    steer: bool,
) -> Result<Vec<(f64, String, serde_json::Value)>, ClientError> {
    let nodes: Vec<String> = match steer {
        true => bus.nodes::<NodesSnapshot>().await?.nodes.into_iter().map(|n| n.id).collect(),
        false => Vec::new(),
    };
    let mut events = bus.subscribe_events(id).await?;
    let open = serde_json::json!({"function": {"source": session.source, "entry": session.entry},
        "input": session.opening, "job_id": id, "session": true});
    match bus.submit_raw::<SubmitReply>(serde_json::to_vec(&open).expect("json").into()).await? {
        SubmitReply::Accepted { .. } => {}
        SubmitReply::Error { error } => return Err(ClientError::Refused(error)),
    }
    let (mut last, _) = reply(&mut events, 0).await?;
    let mut out = Vec::with_capacity(requests.len());
    for (i, input) in (1..).zip(requests) {
        if steer {
            for n in &nodes {
                bus.publish_radio(n, if *n == last { 0.75 } else { 0.0 }).await?;
            }
            bus.flush().await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let body = serde_json::json!({"session": id, "input": input});
        let t0 = Instant::now();
        match bus.session_request_raw::<SessionRequestReply>(serde_json::to_vec(&body).expect("json").into()).await? {
            SessionRequestReply::Accepted { n, .. } if n == i => {}
            other => return Err(ClientError::Usage(format!("request {i}: {other:?}"))),
        }
        let (node, output) = reply(&mut events, i).await?;
        last = node.clone();
        out.push((t0.elapsed().as_secs_f64() * 1000.0, node, output));
    }
    for n in &nodes {
        bus.publish_radio(n, 0.0).await?;
    }
    Ok(out)
}

/// Wait for the reply to request `n`; returns the node that answered and the reply's output.
async fn reply(events: &mut microlambda::bus::Subscriber, n: u64) -> Result<(String, serde_json::Value), ClientError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(REPLY_WITHIN_S);
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, events.next()).await {
        let Ok(ev) = serde_json::from_slice::<JobEvent>(&m.payload) else { continue };
        match ev.kind {
            EventKind::Reply { node, reply } if reply.n == n && reply.error.is_none() => {
                return Ok((node, reply.output.unwrap_or_default()))
            }
            EventKind::Reply { reply, .. } => return Err(ClientError::Usage(format!("unexpected reply {reply:?}"))),
            _ => {}
        }
    }
    Err(ClientError::Usage(format!("no reply to request {n} within {REPLY_WITHIN_S} s")))
}

/// `microlambda-bench session`: on `nats` if given, else on a local testbed started for the run; a warm-up
/// session, then `requests` requests to a fresh one. Prints the table.
pub async fn main(
    settings: microlambda::config::Settings,
    nats: Option<String>,
    requests: usize,
) -> Result<Vec<Row>, microlambda::testbed::TestbedError> {
    let (tb, bus, url) = crate::mesh(&settings, nats).await?;
    println!("bench session: {requests} requests to the session {ECHO:?} on {url}");
    let stamp = microlambda::wire::now_ms();
    run(&bus, &format!("bench-warm-{stamp}"), 20, false).await?;
    let still = run(&bus, &format!("bench-session-{stamp}"), requests, false).await?;
    let steered = run(&bus, &format!("bench-moves-{stamp}"), requests, true).await?;
    let mut rows = vec![row("radio steady: every request", &still.iter().map(|(ms, _)| *ms).collect::<Vec<_>>())];
    let (mut same, mut moved) = (Vec::new(), Vec::new());
    for run in [&still, &steered] {
        for w in run.windows(2) {
            if w[1].1 == w[0].1 {
                same.push(w[1].0)
            } else {
                moved.push(w[1].0)
            }
        }
    }
    rows.push(row("on the node of the request before", &same));
    rows.push(row("moved to another node", &moved));
    print!("{}", render(&rows));
    drop(tb);
    Ok(rows)
}
