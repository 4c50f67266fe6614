//! The placement actor: knows the nodes from their load reports, keeps the queue of jobs waiting for a node,
//! and sends each job to the node with the most headroom among those whose radio load is under the
//! threshold. The decision itself is the pure function [`choose_node`].
//!
//! Guarantees: a job is never dropped: it waits in the queue (highest priority first, then oldest) until a
//! node can take it; placement never blocks on a job (assignments are requests run beside the actor, their
//! outcome comes back as a message); a node silent for `missed_reports` intervals is gone, and the jobs it
//! was running fail with `node_lost`.
use crate::bus::{Bus, BusErrorKind};
use crate::config::PlacementConfig;
use crate::wire::{now_ms, Assignment, EventKind, JobEvent, JobFailure, JobRecord, JobState, LoadReport, NodeGone};
use actix::prelude::*;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// What placement knows of one node, as the decision sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub id: String,
    pub cpu_headroom: f64,
    pub radio_load: f64,
    pub slots: usize,
    /// Jobs placement sent there that have not ended.
    pub in_flight: usize,
}

impl NodeView {
    /// Share of the node left for jobs: idle CPU scaled by what the radio leaves.
    pub fn headroom(&self) -> f64 {
        self.cpu_headroom.clamp(0.0, 1.0) * (1.0 - self.radio_load.clamp(0.0, 1.0))
    }
    pub fn free_slots(&self) -> usize {
        self.slots.saturating_sub(self.in_flight)
    }
}

/// The node a job goes to: among nodes with a free slot and radio load under `radio_threshold`, the one with
/// the most headroom; ties go to more free slots, then the smaller id. `None` when no node can take it.
pub fn choose_node(nodes: &[NodeView], radio_threshold: f64) -> Option<&NodeView> {
    nodes.iter().filter(|n| n.radio_load < radio_threshold && n.free_slots() > 0).max_by(|a, b| {
        a.headroom()
            .partial_cmp(&b.headroom())
            .unwrap_or(Ordering::Equal)
            .then(a.free_slots().cmp(&b.free_slots()))
            .then(b.id.cmp(&a.id))
    })
}

/// A job waiting for a node.
#[derive(Debug, Clone)]
pub struct QueuedJob {
    pub record: JobRecord,
    pub revision: u64,
    pub function_revision: Option<u64>,
}

struct Waiting {
    job: QueuedJob,
    seq: u64,
}

impl PartialEq for Waiting {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Waiting {
    fn cmp(&self, o: &Self) -> Ordering {
        self.job.record.priority.cmp(&o.job.record.priority).then(o.seq.cmp(&self.seq))
    }
}

struct NodeState {
    view: NodeView,
    last_seen: Instant,
    last_seen_ms: u64,
}

/// A new job from the gateway.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue(pub QueuedJob);

/// A node's load report.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NodeLoad(pub LoadReport);

/// A node's radio load changed (`radio.load.<node>`): placement acts on it before the node's next report.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RadioChanged {
    pub node: String,
    pub load: f64,
}

/// A job ended (its final event was seen).
#[derive(Message)]
#[rtype(result = "()")]
pub struct JobEnded {
    pub job_id: String,
}

/// The outcome of an assignment request.
#[derive(Message)]
#[rtype(result = "()")]
struct Dispatched {
    job: QueuedJob,
    node: String,
    outcome: Result<(), (BusErrorKind, String)>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct CheckNodes;

/// What `placement.nodes` answers: the known nodes and the queue length.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodesSnapshot {
    pub nodes: Vec<NodeView>,
    pub queued: usize,
}

#[derive(Message)]
#[rtype(result = "NodesSnapshot")]
pub struct Snapshot;

pub struct PlacementActor {
    cfg: PlacementConfig,
    bus: Bus,
    nodes: HashMap<String, NodeState>,
    queue: BinaryHeap<Waiting>,
    seq: u64,
    /// Job id -> node, for jobs sent and not ended.
    in_flight: HashMap<String, String>,
}

impl PlacementActor {
    pub fn new(cfg: PlacementConfig, bus: Bus) -> Self {
        Self { cfg, bus, nodes: HashMap::new(), queue: BinaryHeap::new(), seq: 0, in_flight: HashMap::new() }
    }

    fn push(&mut self, job: QueuedJob) {
        self.seq += 1;
        self.queue.push(Waiting { job, seq: self.seq });
    }

    fn views(&self) -> Vec<NodeView> {
        self.nodes.values().map(|n| n.view.clone()).collect()
    }

    /// Send waiting jobs to nodes while some node can take one.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        while !self.queue.is_empty() {
            let views = self.views();
            let Some(node) = choose_node(&views, self.cfg.radio_threshold).map(|n| n.id.clone()) else {
                break;
            };
            let Some(Waiting { job, .. }) = self.queue.pop() else {
                break;
            };
            if let Some(n) = self.nodes.get_mut(&node) {
                n.view.in_flight += 1;
            }
            self.in_flight.insert(job.record.job_id.clone(), node.clone());
            let bus = self.bus.clone();
            let timeout = Duration::from_millis(self.cfg.dispatch_timeout_ms);
            let me = ctx.address();
            tokio::spawn(async move {
                let mut record = job.record.clone();
                record.state = JobState::Placed;
                record.node = Some(node.clone());
                let placed = JobEvent::new(&record.job_id, EventKind::Placed { node: node.clone() });
                let _ = bus.publish_event(&placed).await;
                let a = Assignment { record: record.clone(), function_revision: job.function_revision };
                let outcome = match bus.assign(&node, &a, timeout).await {
                    Ok(r) if r.accepted => {
                        // Best effort: a node that already finished the job wrote a newer revision.
                        let _ = bus.update_record(&record, job.revision).await;
                        Ok(())
                    }
                    Ok(r) => Err((BusErrorKind::Request, r.reason.unwrap_or_else(|| "refused".into()))),
                    Err(e) => Err((e.kind, e.message)),
                };
                me.do_send(Dispatched { job, node, outcome });
            });
        }
    }

    fn end_job(&mut self, job_id: &str) -> bool {
        match self.in_flight.remove(job_id) {
            Some(node) => {
                if let Some(n) = self.nodes.get_mut(&node) {
                    n.view.in_flight = n.view.in_flight.saturating_sub(1);
                }
                true
            }
            None => false,
        }
    }

    fn fail_job(&self, record: JobRecord, node: Option<String>, error: JobFailure) {
        let bus = self.bus.clone();
        tokio::spawn(async move {
            let mut rec = record;
            rec.state = JobState::Failed;
            rec.node = node.clone();
            rec.error = Some(error.clone());
            rec.finished_ms = Some(now_ms());
            let _ = bus.put_record(&rec).await;
            let _ = bus.publish_event(&JobEvent::new(&rec.job_id, EventKind::Failed { node, error })).await;
        });
    }
}

impl Actor for PlacementActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let every = Duration::from_millis(self.cfg.report_interval_ms);
        ctx.run_interval(every, |_, ctx| ctx.notify(CheckNodes));
        tracing::info!(threshold = self.cfg.radio_threshold, "placement up");
    }
}

impl Handler<Enqueue> for PlacementActor {
    type Result = ();
    fn handle(&mut self, m: Enqueue, ctx: &mut Context<Self>) {
        self.push(m.0);
        self.dispatch(ctx);
    }
}

impl Handler<NodeLoad> for PlacementActor {
    type Result = ();
    fn handle(&mut self, NodeLoad(r): NodeLoad, ctx: &mut Context<Self>) {
        let in_flight = self.nodes.get(&r.node).map_or(0, |n| n.view.in_flight);
        if !self.nodes.contains_key(&r.node) {
            tracing::info!(node = %r.node, "node joined");
        }
        self.nodes.insert(
            r.node.clone(),
            NodeState {
                view: NodeView {
                    id: r.node.clone(),
                    cpu_headroom: r.cpu_headroom,
                    radio_load: r.radio_load,
                    slots: r.slots,
                    in_flight,
                },
                last_seen: Instant::now(),
                last_seen_ms: r.ts,
            },
        );
        self.dispatch(ctx);
    }
}

impl Handler<RadioChanged> for PlacementActor {
    type Result = ();
    fn handle(&mut self, m: RadioChanged, ctx: &mut Context<Self>) {
        if let Some(n) = self.nodes.get_mut(&m.node) {
            n.view.radio_load = m.load;
            self.dispatch(ctx);
        }
    }
}

impl Handler<JobEnded> for PlacementActor {
    type Result = ();
    fn handle(&mut self, m: JobEnded, ctx: &mut Context<Self>) {
        if self.end_job(&m.job_id) {
            self.dispatch(ctx);
        }
    }
}

impl Handler<Dispatched> for PlacementActor {
    type Result = ();
    fn handle(&mut self, m: Dispatched, ctx: &mut Context<Self>) {
        let Err((kind, message)) = m.outcome else {
            return;
        };
        // The job did not start there (the node refused or is gone): it waits again.
        if !self.end_job(&m.job.record.job_id) {
            return;
        }
        match kind {
            BusErrorKind::NoResponders => {
                tracing::warn!(node = %m.node, "node does not answer assignments: gone");
                self.nodes.remove(&m.node);
                self.push(m.job);
            }
            BusErrorKind::TimedOut => {
                // The node may have started it: re-placing could run it twice. Fail it, naming why.
                tracing::warn!(node = %m.node, job = %m.job.record.job_id, "assignment timed out");
                self.fail_job(
                    m.job.record,
                    Some(m.node.clone()),
                    JobFailure {
                        kind: "node_lost".into(),
                        message: format!("node {} did not confirm the job in time", m.node),
                        traceback: None,
                    },
                );
            }
            _ => {
                tracing::info!(node = %m.node, "assignment refused: {message}");
                if let Some(n) = self.nodes.get_mut(&m.node) {
                    // Treat the node as full until its next report.
                    n.view.in_flight = n.view.slots;
                }
                self.push(m.job);
            }
        }
        self.dispatch(ctx);
    }
}

impl Handler<CheckNodes> for PlacementActor {
    type Result = ();
    fn handle(&mut self, _: CheckNodes, ctx: &mut Context<Self>) {
        let limit = Duration::from_millis(self.cfg.report_interval_ms * self.cfg.missed_reports as u64);
        let gone: Vec<String> =
            self.nodes.iter().filter(|(_, n)| n.last_seen.elapsed() > limit).map(|(id, _)| id.clone()).collect();
        for id in gone {
            let Some(n) = self.nodes.remove(&id) else {
                continue;
            };
            let lost: Vec<String> =
                self.in_flight.iter().filter(|(_, node)| **node == id).map(|(j, _)| j.clone()).collect();
            tracing::warn!(node = %id, lost = lost.len(), "node gone");
            for j in &lost {
                self.in_flight.remove(j);
                let bus = self.bus.clone();
                let job_id = j.clone();
                let node = id.clone();
                tokio::spawn(async move {
                    if let Ok(Some((rec, _))) = bus.record(&job_id).await {
                        if rec.state.is_final() {
                            return;
                        }
                        let error = JobFailure {
                            kind: "node_lost".into(),
                            message: format!("node {node} stopped reporting while running the job"),
                            traceback: None,
                        };
                        let mut rec = rec;
                        rec.state = JobState::Failed;
                        rec.error = Some(error.clone());
                        rec.finished_ms = Some(now_ms());
                        let _ = bus.put_record(&rec).await;
                        let _ = bus
                            .publish_event(&JobEvent::new(&job_id, EventKind::Failed { node: Some(node), error }))
                            .await;
                    }
                });
            }
            let g = NodeGone { node: id, last_seen_ms: n.last_seen_ms, lost_jobs: lost };
            let bus = self.bus.clone();
            tokio::spawn(async move {
                let _ = bus.publish_gone(&g).await;
            });
        }
        self.dispatch(ctx);
    }
}

impl Handler<Snapshot> for PlacementActor {
    type Result = MessageResult<Snapshot>;
    fn handle(&mut self, _: Snapshot, _: &mut Context<Self>) -> Self::Result {
        let mut nodes = self.views();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        MessageResult(NodesSnapshot { nodes, queued: self.queue.len() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(id: &str, cpu: f64, radio: f64, slots: usize, in_flight: usize) -> NodeView {
        NodeView { id: id.into(), cpu_headroom: cpu, radio_load: radio, slots, in_flight }
    }

    #[test]
    fn choose_node_table() {
        // (case, nodes, threshold, expected)
        let cases: Vec<(&str, Vec<NodeView>, f64, Option<&str>)> = vec![
            ("no nodes", vec![], 0.8, None),
            ("one free node", vec![n("a", 0.5, 0.1, 2, 0)], 0.8, Some("a")),
            (
                "lower radio load wins on the same machine",
                vec![n("a", 0.9, 0.5, 2, 0), n("b", 0.9, 0.2, 2, 0)],
                0.8,
                Some("b"),
            ),
            (
                "radio load at the threshold excludes the node",
                vec![n("a", 0.9, 0.8, 2, 0), n("b", 0.1, 0.7, 2, 0)],
                0.8,
                Some("b"),
            ),
            (
                "every node over the threshold: the job waits",
                vec![n("a", 0.9, 0.85, 2, 0), n("b", 0.9, 0.95, 2, 0)],
                0.8,
                None,
            ),
            ("full nodes take nothing", vec![n("a", 0.9, 0.1, 2, 2), n("b", 0.2, 0.3, 1, 0)], 0.8, Some("b")),
            ("all full: the job waits", vec![n("a", 0.9, 0.1, 2, 2), n("b", 0.2, 0.3, 1, 1)], 0.8, None),
            ("more cpu headroom wins", vec![n("a", 0.3, 0.1, 2, 0), n("b", 0.6, 0.1, 2, 0)], 0.8, Some("b")),
            ("equal headroom: more free slots", vec![n("a", 0.5, 0.1, 2, 1), n("b", 0.5, 0.1, 2, 0)], 0.8, Some("b")),
            ("all equal: smaller id", vec![n("b", 0.5, 0.1, 2, 0), n("a", 0.5, 0.1, 2, 0)], 0.8, Some("a")),
            ("a lower threshold excludes more", vec![n("a", 0.9, 0.4, 2, 0), n("b", 0.1, 0.2, 2, 0)], 0.3, Some("b")),
        ];
        for (case, nodes, threshold, want) in cases {
            let got = choose_node(&nodes, threshold).map(|n| n.id.as_str());
            assert_eq!(got, want, "{case}");
        }
    }

    #[test]
    fn queue_serves_priority_then_age() {
        let job = |id: &str, prio: i32| QueuedJob {
            record: JobRecord {
                job_id: id.into(),
                state: JobState::Queued,
                function: crate::wire::FunctionRef { source: None, name: Some("f".into()), entry: None },
                input: serde_json::Value::Null,
                priority: prio,
                r_limit_ms: None,
                submitted_ms: 0,
                node: None,
                output: None,
                error: None,
                finished_ms: None,
            },
            revision: 1,
            function_revision: None,
        };
        let mut q = BinaryHeap::new();
        for (seq, (id, p)) in [("a", 0), ("b", 5), ("c", 0), ("d", 5)].iter().enumerate() {
            q.push(Waiting { job: job(id, *p), seq: seq as u64 });
        }
        let order: Vec<String> = std::iter::from_fn(|| q.pop().map(|w| w.job.record.job_id)).collect();
        assert_eq!(order, ["b", "d", "a", "c"]);
    }
}
