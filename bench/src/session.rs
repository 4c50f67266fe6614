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

/// A session to open: its module's source, its entry, the opening input, and the input of request `i` (from 1)
/// for [`run`] ([`converse`] is given its requests).
pub struct Session {
    pub source: String,
    pub entry: &'static str,
    pub opening: serde_json::Value,
    pub input: fn(usize) -> serde_json::Value,
}

impl Session {
    /// The echo session of [`ECHO`], request `i`'s input being `i`.
    pub fn echo() -> Self {
        Self { source: ECHO.into(), entry: "echo", opening: 0.into(), input: |i| i.into() }
    }

    /// A session of `source` opened on `entry` with `opening`, for [`converse`] (requests given explicitly).
    pub fn of(source: &str, entry: &'static str, opening: serde_json::Value) -> Self {
        Self { source: source.into(), entry, opening, input: |_| serde_json::Value::Null }
    }

    /// One of the paper's workloads (`examples/paper/<file>`, read from `root`), with requests that vary as
    /// the examples' do: camera frames by index and name, rides across the graph, stress windows.
    pub fn paper(root: &std::path::Path, file: &str) -> std::io::Result<Self> {
        let source = std::fs::read_to_string(root.join("examples/paper").join(file))?;
        let (entry, opening, input): (&'static str, serde_json::Value, fn(usize) -> serde_json::Value) = match file {
            "face.py" => ("faces", serde_json::Value::Null, |i| {
                const FRAMES: [&str; 4] = ["0", "2", "\"obama2.jpg\"", "3"];
                serde_json::from_str(FRAMES[i % FRAMES.len()]).expect("json")
            }),
            "ride.py" => (
                "Dispatch",
                serde_json::json!({"taxis": 4, "seed": 5}),
                |i| serde_json::json!({"pickup": (i * 37) % 2000, "dropoff": (i * 91 + 5) % 2000, "t": 30 * i}),
            ),
            _ => (
                "stress",
                serde_json::Value::Null,
                |i| serde_json::json!({"hr": 60 + (i * 7) % 50, "rr": 12 + (i * 3) % 12, "seed": i}),
            ),
        };
        Ok(Self { source, entry, opening, input })
    }
}
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

/// Open a session and send it `requests` requests one at a time; returns (latency ms, node, [`Stages`]) per
/// request. With
/// `steer` (the bus that may publish radio loads: the testbed's ops identity), before each request the node that answered the last one gets a radio load of 0.75 (under the 0.8
/// threshold: nothing is evacuated) and the others 0, so that placement prefers another node: a move between
/// two requests (all back to 0 at the end).
/// `run` sends request `i` the input `session.input(i)`; see [`converse`].
pub async fn run(
    bus: &Bus,
    id: &str,
    session: &Session,
    requests: usize,
    steer: Option<&Bus>,
    pause: Duration,
) -> Result<Vec<(f64, String, Stages)>, ClientError> {
    let inputs: Vec<serde_json::Value> = (1..=requests).map(session.input).collect();
    Ok(converse(bus, id, session, &inputs, steer, pause)
        .await?
        .into_iter()
        .map(|(ms, node, _, st)| (ms, node, st))
        .collect())
}

/// Open `session` as `id` and send it `requests` one at a time, each after the reply to the one before (with
/// `steer`, as [`run`] says; each after `pause`); returns (latency ms, node, output, [`Stages`]) per request, the opening's not
/// included.
pub async fn converse(
    bus: &Bus,
    id: &str,
    session: &Session,
    requests: &[serde_json::Value],
    steer: Option<&Bus>,
    pause: Duration,
) -> Result<Vec<(f64, String, serde_json::Value, Stages)>, ClientError> {
    let nodes: Vec<String> = match steer {
        Some(_) => bus.nodes::<NodesSnapshot>().await?.nodes.into_iter().map(|n| n.id).collect(),
        None => Vec::new(),
    };
    let (mut events, mut last) = open(bus, id, session).await?;
    let mut out = Vec::with_capacity(requests.len());
    for (i, input) in (1..).zip(requests) {
        tokio::time::sleep(pause).await;
        if let Some(radio) = steer {
            for n in &nodes {
                radio.publish_radio(n, if *n == last { 0.75 } else { 0.0 }).await?;
            }
            radio.flush().await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (ms, node, output, stages) = ask(bus, &mut events, id, input, i).await?;
        last = node.clone();
        out.push((ms, node, output, stages));
    }
    if let Some(radio) = steer {
        for n in &nodes {
            radio.publish_radio(n, 0.0).await?;
        }
        radio.flush().await?;
    }
    Ok(out)
}

/// Open `session` as `id`: its events, and the node that sent the opening's reply.
pub async fn open(
    bus: &Bus,
    id: &str,
    session: &Session,
) -> Result<(microlambda::bus::Subscriber, String), ClientError> {
    let mut events = bus.subscribe_events(id).await?;
    let open = serde_json::json!({"function": {"source": session.source, "entry": session.entry},
        "input": session.opening, "job_id": id, "session": true});
    match bus.submit_raw::<SubmitReply>(serde_json::to_vec(&open).expect("json").into()).await? {
        SubmitReply::Accepted { .. } => {}
        SubmitReply::Error { error } => return Err(ClientError::Refused(error)),
    }
    let (node, _) = reply(&mut events, 0, None).await?;
    Ok((events, node))
}

/// Milliseconds from a request to the client's receipt of each step of its path: the gateway's acceptance,
/// then the events `placed`, `started` (checkpoint fetched and verified, restored), `checkpointed` (the stop
/// where the session waits again, persisted) and `reply` (the record committed idle). NaN: not seen.
pub type Stages = [f64; 5];

/// The names of [`Stages`]' steps.
pub const STAGES: [&str; 5] = ["accepted", "placed", "started", "checkpointed", "reply"];

/// Send request `i` (its input) to the session open as `id` and wait for its reply: milliseconds from request
/// to reply, the node that answered, the reply's output, and when each step of the path reached the client.
pub async fn ask(
    bus: &Bus,
    events: &mut microlambda::bus::Subscriber,
    id: &str,
    input: &serde_json::Value,
    i: u64,
) -> Result<(f64, String, serde_json::Value, Stages), ClientError> {
    let body = serde_json::json!({"session": id, "input": input});
    let t0 = Instant::now();
    match bus.session_request_raw::<SessionRequestReply>(serde_json::to_vec(&body).expect("json").into()).await? {
        SessionRequestReply::Accepted { n, .. } if n == i => {}
        other => return Err(ClientError::Usage(format!("request {i}: {other:?}"))),
    }
    let mut stages = [f64::NAN; 5];
    stages[0] = t0.elapsed().as_secs_f64() * 1000.0;
    let (node, output) = reply(events, i, Some((t0, &mut stages))).await?;
    Ok((stages[4], node, output, stages))
}

/// Wait for the reply to request `n`; returns the node that answered and the reply's output. With `stages`,
/// the milliseconds since its instant at which each event of the path arrived ([`Stages`]).
async fn reply(
    events: &mut microlambda::bus::Subscriber,
    n: u64,
    mut stages: Option<(Instant, &mut Stages)>,
) -> Result<(String, serde_json::Value), ClientError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(REPLY_WITHIN_S);
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, events.next()).await {
        let Ok(ev) = serde_json::from_slice::<JobEvent>(&m.payload) else { continue };
        let step = match &ev.kind {
            EventKind::Placed { .. } => Some(1),
            EventKind::Started { .. } => Some(2),
            EventKind::Checkpointed { .. } => Some(3),
            EventKind::Reply { .. } => Some(4),
            _ => None,
        };
        if let (Some(k), Some((t0, st))) = (step, stages.as_mut()) {
            if st[k].is_nan() {
                st[k] = t0.elapsed().as_secs_f64() * 1000.0;
            }
        }
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
    pause: Duration,
) -> Result<Vec<Row>, microlambda::testbed::TestbedError> {
    let (tb, bus, url) = crate::mesh(&settings, nats).await?;
    println!("bench session: {requests} requests to the session {ECHO:?} on {url}");
    let stamp = microlambda::wire::now_ms();
    // Radio loads are published as the testbed's ops identity (a client may not); on another server, as the
    // connection given.
    let radio = match &tb {
        Some(tb) => tb.connect(&settings.client, "ops", "bench-radio").await?,
        None => bus.clone(),
    };
    let echo = Session::echo();
    run(&bus, &format!("bench-warm-{stamp}"), &echo, 20, None, pause).await?;
    let still = run(&bus, &format!("bench-session-{stamp}"), &echo, requests, None, pause).await?;
    let steered = run(&bus, &format!("bench-moves-{stamp}"), &echo, requests, Some(&radio), pause).await?;
    let mut rows = vec![row("radio steady: every request", &still.iter().map(|(ms, ..)| *ms).collect::<Vec<_>>())];
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
    print!("{}", render_stages("step (radio steady)", &still.iter().map(|(.., st)| *st).collect::<Vec<_>>()));
    drop(tb);
    Ok(rows)
}

/// Where a session's requests spent their time: per step of the path, p50 and p90 of its arrival at the
/// client (ms from the request) and of its own share (from the step before); `title` heads the first column.
pub fn render_stages(title: &str, stages: &[Stages]) -> String {
    use microlambda::table::{markdown, Align::*};
    let head = [
        (title, Left),
        ("at p50 ms", Right),
        ("at p90 ms", Right),
        ("since the step before p50 ms", Right),
        ("p90 ms", Right),
    ];
    let pct = |v: Vec<f64>, p: f64| Sorted::new(&v).percentile(p).unwrap_or(f64::NAN);
    let body: Vec<Vec<String>> = (0..STAGES.len())
        .map(|k| {
            let at: Vec<f64> = stages.iter().map(|s| s[k]).filter(|v| !v.is_nan()).collect();
            let step: Vec<f64> =
                stages.iter().map(|s| if k == 0 { s[0] } else { s[k] - s[k - 1] }).filter(|v| !v.is_nan()).collect();
            vec![STAGES[k].to_string()]
                .into_iter()
                .chain(
                    [pct(at.clone(), 0.5), pct(at, 0.9), pct(step.clone(), 0.5), pct(step, 0.9)]
                        .map(|v| format!("{v:.2}")),
                )
                .collect()
        })
        .collect();
    markdown(&head, &body)
}

/// One row of `microlambda-bench session --paper`.
#[derive(Debug, Clone)]
pub struct PaperRow {
    pub workload: &'static str,
    /// The same requests' own compute: plain CPython's p50 (`examples/paper/local.py`).
    pub cpython_p50_ms: f64,
    pub module_zygotes: usize,
    pub first_ms: f64,
    pub rest: Row,
    /// Of requests 2.., how many the node restored from a module zygote (its load report's count).
    pub from_module_zygote: u64,
}

pub fn render_paper(rows: &[PaperRow]) -> String {
    use microlambda::table::{markdown, Align::*};
    let head = [
        ("workload", Left),
        ("plain CPython p50 ms", Right),
        ("node.module_zygotes", Right),
        ("request 1 ms", Right),
        ("requests", Right),
        ("from a module zygote", Right),
        ("p50 ms", Right),
        ("p90 ms", Right),
        ("p99 ms", Right),
        ("max ms", Right),
    ];
    let ms = |v: f64| format!("{v:.1}");
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let q = &r.rest;
            vec![
                r.workload.to_string(),
                ms(r.cpython_p50_ms),
                r.module_zygotes.to_string(),
                ms(r.first_ms),
                q.requests.to_string(),
                r.from_module_zygote.to_string(),
            ]
            .into_iter()
            .chain([q.p50_ms, q.p90_ms, q.p99_ms, q.max_ms].map(ms))
            .collect()
        })
        .collect();
    markdown(&head, &body)
}

/// `microlambda-bench session --paper`: the paper's three workloads as sessions, `requests` requests each, on a
/// one-node testbed started for each setting of `node.module_zygotes` in `modes` (run from the repository's
/// root: the workloads' data is `tests/data/`, the modules `examples/paper/`). Request 1 is apart: it is where
/// the node first restores the module (and learns it); then the run waits `settle` (time for a zygote to come
/// up: imports, the module's top level), the same in every mode; requests 2.. are the rows, each after a pause
/// of `gap` (time for the next child to be forked ahead, as between a user's requests).
pub async fn paper(
    settings: &microlambda::config::Settings,
    root: &std::path::Path,
    requests: usize,
    modes: &[usize],
    (settle, gap): (Duration, Duration),
) -> Result<Vec<PaperRow>, microlambda::testbed::TestbedError> {
    const WORKLOADS: [(&str, &str); 3] = [("face", "face.py"), ("ride", "ride.py"), ("stress", "stress.py")];
    let mut sessions = Vec::new();
    for (workload, file) in WORKLOADS {
        let session =
            Session::paper(root, file).map_err(|e| ClientError::Usage(format!("examples/paper/{file}: {e}")))?;
        let (root, file_, entry, opening) = (root.to_path_buf(), file, session.entry, session.opening.clone());
        let inputs: Vec<serde_json::Value> = (1..=requests).map(session.input).collect();
        let local = tokio::task::spawn_blocking(move || cpython_times(&root, file_, entry, &opening, &inputs))
            .await
            .map_err(|e| ClientError::Usage(e.to_string()))?
            .map_err(|e| ClientError::Usage(format!("plain CPython on examples/paper/{file}: {e}")))?;
        let p50 = Sorted::new(&local).percentile(0.5).unwrap_or(f64::NAN);
        println!("{workload}: plain CPython p50 {p50:.1} ms per request (requests 2..)");
        sessions.push((workload, session, p50));
    }
    let mut rows = Vec::new();
    for &modules in modes {
        let mut s = settings.clone();
        s.testbed.nodes = 1;
        s.node.module_zygotes = modules;
        let (tb, bus, url) = crate::mesh(&s, None).await?;
        // The node's load reports (a client may not read them): its count of restores from module zygotes.
        let ops = match &tb {
            Some(tb) => tb.connect(&s.client, "ops", "bench-loads").await?,
            None => bus.clone(),
        };
        let mut loads = ops.subscribe_loads().await?;
        println!("bench session --paper: node.module_zygotes = {modules}, {requests} requests each, on {url}");
        for (workload, session, cpython_p50_ms) in &sessions {
            let (workload, session, cpython_p50_ms) = (*workload, session, *cpython_p50_ms);
            let id = format!("bench-paper-{workload}-{modules}-{}", microlambda::wire::now_ms());
            let (mut events, _) = open(&bus, &id, session).await?;
            let (first, ..) = ask(&bus, &mut events, &id, &(session.input)(1), 1).await?;
            tokio::time::sleep(settle).await;
            let before = module_zygote_restores(&mut loads).await?;
            let (mut ms, mut stages) = (Vec::with_capacity(requests), Vec::with_capacity(requests));
            for i in 2..=requests {
                tokio::time::sleep(gap).await;
                let (took, _, _, st) = ask(&bus, &mut events, &id, &(session.input)(i), i as u64).await?;
                ms.push(took);
                stages.push(st);
            }
            let from_module_zygote = module_zygote_restores(&mut loads).await?.saturating_sub(before);
            let row = PaperRow {
                workload,
                cpython_p50_ms,
                module_zygotes: modules,
                first_ms: first,
                rest: row("requests 2..", &ms),
                from_module_zygote,
            };
            println!("{}: request 1 {:.1} ms, then p50 {:.1} ms", workload, row.first_ms, row.rest.p50_ms);
            print!("{}", render_stages(&format!("{workload}: step (requests 2..)"), &stages));
            rows.push(row);
        }
        drop(tb);
    }
    print!("{}", render_paper(&rows));
    Ok(rows)
}

/// Plain CPython's time for each of requests 2.. (ms): `examples/paper/local.py` runs the session with no mesh
/// and prints each reply as it is made (the opening's first), so the time between two lines is one request's
/// own compute.
fn cpython_times(
    root: &std::path::Path,
    file: &str,
    entry: &str,
    opening: &serde_json::Value,
    inputs: &[serde_json::Value],
) -> std::io::Result<Vec<f64>> {
    use std::io::BufRead;
    let python = microlambda::config::python_executable().unwrap_or_else(|| "python3".into());
    let mut child = microlambda::worker::host::reference_command(python)
        .current_dir(root)
        .arg("examples/paper/local.py")
        .arg(format!("examples/paper/{file}"))
        .args([entry.to_string(), opening.to_string(), serde_json::Value::from(inputs.to_vec()).to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let out = child.stdout.take().expect("piped");
    let mut times = Vec::new();
    let mut last = None;
    for (i, line) in std::io::BufReader::new(out).lines().enumerate() {
        line?;
        let now = Instant::now();
        if let (Some(t), true) = (last, i >= 2) {
            times.push(now.duration_since(t).as_secs_f64() * 1000.0);
        }
        last = Some(now);
    }
    let status = child.wait()?;
    if !status.success() || times.len() + 1 != inputs.len() {
        return Err(std::io::Error::other(format!("{status}, {} of {} replies", times.len() + 2, inputs.len() + 1)));
    }
    Ok(times)
}

/// The restores from module zygotes the node has counted, from its first load report made after this call (one
/// node; reports queued before are stale).
async fn module_zygote_restores(loads: &mut microlambda::bus::Subscriber) -> Result<u64, ClientError> {
    let since = microlambda::wire::now_ms();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, loads.next()).await {
        match serde_json::from_slice::<microlambda::wire::LoadReport>(&m.payload) {
            Ok(r) if r.ts >= since => return Ok(r.module_zygote_restores),
            _ => {}
        }
    }
    Err(ClientError::Usage("no load report within 10 s".into()))
}
