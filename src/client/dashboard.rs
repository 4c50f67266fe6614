//! `microlambda dashboard`: the ops view in a browser. The process holds the NATS subscriptions (`node.load.*`,
//! `node.gone.*` through [`NodeFeed`], every tenant's job events) and serves one self-contained page
//! (`dashboard.html`, compiled in: no CDN, no other asset) that it keeps live over Server-Sent Events, so the
//! browser needs no NATS credentials. `/api/state` is the same state as one JSON document.
use super::watch::{LoadTable, NodeFeed, NodeUpdate};
use super::ClientError;
use crate::bus::Bus;
use crate::http::{self, Reply};
use crate::wire::{now_ms, EventKind, JobEvent, LoadReport};
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::broadcast;

const PAGE: &str = include_str!("dashboard.html");
/// The element of [`PAGE`] that [`page`] fills with the state.
const INITIAL: &str = r#"<script id="initial" type="application/json">null</script>"#;
/// How much load history each node keeps (and the page plots).
pub const HISTORY_MS: u64 = 5 * 60 * 1000;
/// At most this many points per node, whatever the report interval.
const HISTORY_POINTS: usize = 1500;
/// The migrations kept, newest first.
const MIGRATIONS: usize = 100;
/// A comment line on the event stream this often keeps proxies and the browser from closing it.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// One point of a node's load over time.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub ts: u64,
    pub cpu_headroom: f64,
    pub radio_load: f64,
}

/// One job's move: handed from node to node (its `migrated` event), or parked on leaving `from` and resumed on
/// `to` (its `parked` event, then `started` there from a checkpoint).
#[derive(Debug, Clone, Serialize)]
pub struct Move {
    pub job_id: String,
    pub from: String,
    pub to: String,
    /// Handed over: from the checkpoint request on `from` to the job running on `to`. Parked: from the
    /// `parked` event to the `started` one (the wait for a node included).
    pub ms: f64,
    /// The checkpoint it carried (0 when its `checkpointed` event was not seen).
    pub bytes: u64,
    pub ts_ms: u64,
    /// It waited parked, on no node, between the two.
    pub parked: bool,
}

/// What the dashboard follows of a job that has not ended, to see a parked job resume elsewhere as a move.
#[derive(Debug, Default)]
struct Track {
    /// The node it last started on.
    on: Option<String>,
    /// Its last checkpoint's size.
    bytes: u64,
    /// Parked on leaving this node, at this time.
    parked: Option<(String, u64)>,
}

/// Jobs followed at most (events of jobs whose end was missed must not add up for ever).
const TRACKED: usize = 100_000;

/// A node as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    pub node: String,
    pub gone: bool,
    /// Its last report (none for a node seen only as gone).
    pub report: Option<LoadReport>,
    pub history: Vec<Point>,
}

/// Everything the page shows (`/api/state`, and the stream's first message).
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub now_ms: u64,
    pub history_ms: u64,
    pub nodes: Vec<NodeView>,
    /// Newest first.
    pub migrations: Vec<Move>,
    pub jobs_completed: u64,
    pub jobs_failed: u64,
}

/// A change, as the stream sends it after the snapshot (`event: <name>`, `data: <json>`).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum Change {
    Load { report: LoadReport },
    Gone { node: String },
    Migrated(Move),
    Ended { job_id: String, node: Option<String>, ok: bool },
}

impl Change {
    fn name(&self) -> &'static str {
        match self {
            Change::Load { .. } => "load",
            Change::Gone { .. } => "gone",
            Change::Migrated(_) => "migrated",
            Change::Ended { .. } => "ended",
        }
    }
}

/// The dashboard's state: the nodes' table (as `watch` keeps it), their history, recent moves, job counts.
#[derive(Debug, Default)]
pub struct State {
    table: LoadTable,
    history: BTreeMap<String, VecDeque<Point>>,
    migrations: VecDeque<Move>,
    completed: u64,
    failed: u64,
    jobs: HashMap<String, Track>,
}

impl State {
    fn node(&mut self, u: NodeUpdate) -> Change {
        let change = match &u {
            NodeUpdate::Load(r) => {
                let h = self.history.entry(r.node.clone()).or_default();
                h.push_back(Point { ts: r.ts, cpu_headroom: r.cpu_headroom, radio_load: r.radio_load });
                while h.len() > HISTORY_POINTS || h.front().is_some_and(|p| p.ts + HISTORY_MS < r.ts) {
                    h.pop_front();
                }
                Change::Load { report: r.clone() }
            }
            NodeUpdate::Gone(node) => Change::Gone { node: node.clone() },
        };
        self.table.apply(u);
        change
    }

    /// What a job event changes on the page (most change nothing: the load reports list the jobs).
    fn event(&mut self, e: JobEvent) -> Option<Change> {
        if self.jobs.len() >= TRACKED && !self.jobs.contains_key(&e.job_id) {
            self.jobs.clear();
        }
        match e.kind {
            EventKind::Migrated { from, to, ms, bytes } => {
                let t = self.jobs.entry(e.job_id.clone()).or_default();
                t.on = Some(to.clone());
                t.parked = None;
                Some(self.moved(Move { job_id: e.job_id, from, to, ms, bytes, ts_ms: e.ts_ms, parked: false }))
            }
            EventKind::Checkpointed { bytes, .. } => {
                self.jobs.entry(e.job_id).or_default().bytes = bytes;
                None
            }
            EventKind::Parked { node, .. } => {
                let t = self.jobs.entry(e.job_id).or_default();
                if let Some(from) = node.or_else(|| t.on.clone()) {
                    t.parked = Some((from, e.ts_ms));
                }
                None
            }
            EventKind::Started { node, resumed_from } => {
                let t = self.jobs.entry(e.job_id.clone()).or_default();
                let parked = t.parked.take().filter(|(from, _)| resumed_from.is_some() && *from != node);
                let bytes = t.bytes;
                t.on = Some(node.clone());
                let (from, since) = parked?;
                let ms = e.ts_ms.saturating_sub(since) as f64;
                Some(self.moved(Move { job_id: e.job_id, from, to: node, ms, bytes, ts_ms: e.ts_ms, parked: true }))
            }
            EventKind::Completed { node, .. } => {
                self.completed += 1;
                self.jobs.remove(&e.job_id);
                Some(Change::Ended { job_id: e.job_id, node: Some(node), ok: true })
            }
            EventKind::Failed { node, .. } => {
                self.failed += 1;
                self.jobs.remove(&e.job_id);
                Some(Change::Ended { job_id: e.job_id, node, ok: false })
            }
            _ => None,
        }
    }

    fn moved(&mut self, m: Move) -> Change {
        self.migrations.push_front(m.clone());
        self.migrations.truncate(MIGRATIONS);
        Change::Migrated(m)
    }

    pub fn snapshot(&self, now_ms: u64) -> Snapshot {
        let history = |n: &str| self.history.get(n).map(|h| h.iter().cloned().collect()).unwrap_or_default();
        let mut nodes: Vec<NodeView> = self
            .table
            .nodes
            .values()
            .map(|r| NodeView { node: r.node.clone(), gone: false, report: Some(r.clone()), history: history(&r.node) })
            .collect();
        nodes.extend(self.table.gone.keys().map(|n| NodeView {
            node: n.clone(),
            gone: true,
            report: None,
            history: history(n),
        }));
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        Snapshot {
            now_ms,
            history_ms: HISTORY_MS,
            nodes,
            migrations: self.migrations.iter().cloned().collect(),
            jobs_completed: self.completed,
            jobs_failed: self.failed,
        }
    }
}

/// The page with `snapshot` in it, so that it shows the mesh before its stream opens.
fn page(snapshot: &Snapshot) -> String {
    // In a <script> element only `</script` could end it: JSON never needs a raw `<`.
    let json = serde_json::to_string(snapshot).expect("serializable").replace('<', "\\u003c");
    PAGE.replacen(INITIAL, &format!("<script id=\"initial\" type=\"application/json\">{json}</script>"), 1)
}

fn frame(event: &str, data: &impl Serialize) -> Bytes {
    let json = serde_json::to_string(data).expect("serializable");
    Bytes::from(format!("event: {event}\ndata: {json}\n\n"))
}

/// The state and the stream of its changes, shared by the NATS task and the HTTP routes.
#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<State>>,
    changes: broadcast::Sender<Bytes>,
}

impl Shared {
    fn apply(&self, f: impl FnOnce(&mut State) -> Option<Change>) {
        // Under the lock: a stream that takes its snapshot sees every change after it, none twice.
        let mut s = self.state.lock().expect("dashboard state");
        if let Some(c) = f(&mut s) {
            let _ = self.changes.send(frame(c.name(), &c));
        }
    }

    fn snapshot(&self) -> Snapshot {
        self.state.lock().expect("dashboard state").snapshot(now_ms())
    }

    /// The event stream: the snapshot, then every change; a reader that falls behind gets a new snapshot.
    fn stream(&self) -> futures::stream::BoxStream<'static, Bytes> {
        let (first, rx) = {
            let s = self.state.lock().expect("dashboard state");
            (frame("state", &s.snapshot(now_ms())), self.changes.subscribe())
        };
        let me = self.clone();
        let rest = futures::stream::unfold((me, rx), |(me, mut rx)| async move {
            let chunk = match tokio::time::timeout(KEEPALIVE, rx.recv()).await {
                Ok(Ok(b)) => b,
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => frame("state", &me.snapshot()),
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                Err(_) => Bytes::from_static(b": keepalive\n\n"),
            };
            Some((chunk, (me, rx)))
        });
        futures::stream::once(async move { first }).chain(rest).boxed()
    }
}

/// Serve the dashboard on `listener` with what `bus` (an ops connection) sees, until Ctrl-C / SIGTERM.
pub async fn run(bus: &Bus, listener: TcpListener) -> Result<(), ClientError> {
    let mut nodes = NodeFeed::subscribe(bus).await?;
    let mut events = bus.subscribe_every_tenants_events().await?;
    let shared = Shared { state: Arc::new(Mutex::new(State::default())), changes: broadcast::channel(1024).0 };
    let s = shared.clone();
    let routes: http::Routes = Arc::new(move |path: &str| match path {
        "/" | "/index.html" => Reply::ok("text/html; charset=utf-8", page(&s.snapshot())),
        "/api/state" => Reply::ok("application/json", serde_json::to_vec(&s.snapshot()).expect("serializable")),
        "/api/events" => Reply::Stream { content_type: "text/event-stream", chunks: s.stream() },
        other => Reply::not_found(other),
    });
    let server = tokio::spawn(http::serve(listener, routes));
    let stop = crate::runtime::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            Some(u) = nodes.next() => shared.apply(|s| Some(s.node(u))),
            Some(m) = events.next() => {
                if let Ok(e) = serde_json::from_slice::<JobEvent>(&m.payload) {
                    shared.apply(|s| s.event(e));
                }
            }
            _ = &mut stop => break,
            else => break,
        }
    }
    server.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: &str, ts: u64, radio: f64) -> LoadReport {
        serde_json::from_value(serde_json::json!({
            "node": node, "ts": ts, "cpu_headroom": 0.5, "radio_load": radio, "mem_available_bytes": 1,
            "jobs_running": 0, "slots": 2
        }))
        .unwrap()
    }

    #[test]
    fn the_page_carries_the_state_and_nothing_can_close_its_script_element() {
        assert_eq!(PAGE.matches(INITIAL).count(), 1);
        let mut s = State::default();
        let kind = EventKind::Migrated { from: "</script>".into(), to: "n2".into(), ms: 5.0, bytes: 10 };
        s.event(JobEvent { job_id: "j".into(), ts_ms: 1, kind });
        let html = page(&s.snapshot(7));
        let json = html.split(r#"<script id="initial" type="application/json">"#).nth(1).unwrap();
        let json = json.split("</script>").next().unwrap();
        let back: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!((back["now_ms"].as_u64(), back["migrations"][0]["from"].as_str()), (Some(7), Some("</script>")));
    }

    #[test]
    fn history_keeps_the_last_minutes_and_moves_come_newest_first() {
        let mut s = State::default();
        s.node(NodeUpdate::Load(report("n1", 1_000, 0.1)));
        s.node(NodeUpdate::Load(report("n1", 1_000 + HISTORY_MS, 0.2)));
        s.node(NodeUpdate::Load(report("n1", 2_000 + HISTORY_MS, 0.3)));
        s.node(NodeUpdate::Gone("n2".into()));
        for (i, to) in ["n2", "n3"].iter().enumerate() {
            let kind = EventKind::Migrated { from: "n1".into(), to: to.to_string(), ms: 5.0, bytes: 10 };
            assert!(s.event(JobEvent { job_id: format!("j{i}"), ts_ms: i as u64, kind }).is_some());
        }
        assert!(s.event(JobEvent::new("j0", EventKind::Accepted)).is_none());
        // Parked on n2 and resumed on n3 is a move; a slice resumed where it was parked is not.
        let ev = |job: &str, ts_ms, kind| JobEvent { job_id: job.into(), ts_ms, kind };
        let parked =
            |node: &str| EventKind::Parked { node: Some(node.into()), reason: "evacuated".into(), seq: Some(1) };
        let started = |node: &str| EventKind::Started { node: node.into(), resumed_from: Some(1) };
        assert!(s.event(ev("p", 10, EventKind::Started { node: "n2".into(), resumed_from: None })).is_none());
        assert!(s.event(ev("p", 20, parked("n2"))).is_none());
        assert!(s.event(ev("p", 70, started("n3"))).is_some());
        assert!(s.event(ev("p", 80, parked("n3"))).is_none());
        assert!(s.event(ev("p", 90, started("n3"))).is_none());
        let snap = s.snapshot(0);
        let radio: Vec<f64> = snap.nodes[0].history.iter().map(|p| p.radio_load).collect();
        assert_eq!(radio, [0.2, 0.3]);
        assert_eq!((snap.nodes[1].node.as_str(), snap.nodes[1].gone), ("n2", true));
        let moves: Vec<_> =
            snap.migrations.iter().map(|m| (m.job_id.as_str(), m.to.as_str(), m.parked, m.ms)).collect();
        assert_eq!(moves, [("p", "n3", true, 50.0), ("j1", "n3", false, 5.0), ("j0", "n2", false, 5.0)]);
    }
}
