//! Placement's decisions as a pure state machine: what it knows of nodes and jobs, and what to do when a load
//! report, a radio change, a new job, a job's end or a tick arrives. No I/O and no clock: every input carries
//! `now_ms`, every output is an [`Action`] the placement actor carries out, so the rules are table-tested and
//! benchmarked without NATS.
//!
//! The rules:
//! - A node is *hot* from the moment its radio load reaches the threshold until it falls below
//!   `threshold - hysteresis`; then it *cools down* for `cooldown_ms`. Hot and cooling nodes get no jobs.
//! - When a node turns hot, every job on it leaves: in order of priority, then progress (more run time first),
//!   then checkpoint size (smaller first), each to the node with the most headroom among those that are
//!   neither hot nor cooling and whose radio load is under `threshold - hysteresis`, or parked when none has a
//!   free slot. Parked jobs wait in the same queue as new ones (priority, then age) and resume from their
//!   checkpoints when a node has room.
//! - Placement counts a node's jobs itself (a job counts against its target from the moment placement sends
//!   it), so two decisions inside one report interval do not overfill a node. A job is either waiting or
//!   counted on a node, never both (the latest of the two placement learns wins; a record read older than the
//!   waiting job's is ignored). A node whose assignment failed takes no job until its next report.
//! - What a node's reports show is reconciled with what placement believes: a job placement sent somewhere
//!   that its owner has not reported for `orphan_grace_ms` is checked against its record and taken back; a job
//!   a node reports that placement believes is elsewhere is fenced on that node.
//! - A node silent for `gone_after_ms` is gone: its jobs are taken back and resume elsewhere from their last
//!   checkpoints. While placement itself is cut off from NATS nobody is declared gone.
//!
//! Size: about 690 lines of rules and 330 of table tests, kept in one file so that a rule and the rows that
//! pin it down are read (and changed) together.
use crate::wire::{JobLoad, JobRecord, JobState, LoadReport, Move};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};

/// What the decisions depend on (from [`crate::config::PlacementConfig`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub radio_threshold: f64,
    pub hysteresis: f64,
    pub cooldown_ms: u64,
    pub gone_after_ms: u64,
    pub orphan_grace_ms: u64,
    pub affinity_margin: f64,
}

impl Rules {
    pub fn from_config(c: &crate::config::PlacementConfig) -> Self {
        Self {
            radio_threshold: c.radio_threshold,
            hysteresis: c.hysteresis,
            cooldown_ms: c.cooldown_ms,
            gone_after_ms: c.report_interval_ms * c.missed_reports as u64,
            orphan_grace_ms: c.orphan_grace_ms,
            affinity_margin: c.affinity_margin,
        }
    }
}

/// What placement knows of one node, as the decision sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub id: String,
    pub cpu_headroom: f64,
    pub radio_load: f64,
    pub slots: usize,
    /// Jobs placement counts on the node (running, or sent there and not ended).
    pub in_flight: usize,
    /// Over the threshold, or not yet back under it by the hysteresis.
    #[serde(default)]
    pub hot: bool,
    /// Back under the threshold but still cooling down.
    #[serde(default)]
    pub cooling: bool,
    /// An assignment to the node failed (refused, timed out, not recorded) since its last report: it takes no
    /// job until it reports again.
    #[serde(default)]
    pub held: bool,
}

impl NodeView {
    /// Share of the node left for jobs: idle CPU scaled by what the radio leaves.
    pub fn headroom(&self) -> f64 {
        self.cpu_headroom.clamp(0.0, 1.0) * (1.0 - self.radio_load.clamp(0.0, 1.0))
    }
    pub fn free_slots(&self) -> usize {
        if self.held {
            0
        } else {
            self.slots.saturating_sub(self.in_flight)
        }
    }
}

/// The node a job goes to: among nodes with a free slot, neither hot nor cooling, and radio load under
/// `radio_limit`, the one with the most headroom; ties go to more free slots, then the smaller id. `None` when
/// no node can take it.
pub fn choose_node<'a, I>(nodes: I, radio_limit: f64) -> Option<&'a NodeView>
where
    I: IntoIterator<Item = &'a NodeView>,
{
    nodes.into_iter().filter(|n| !n.hot && !n.cooling && n.radio_load < radio_limit && n.free_slots() > 0).max_by(
        |a, b| {
            a.headroom()
                .partial_cmp(&b.headroom())
                .unwrap_or(Ordering::Equal)
                .then(a.free_slots().cmp(&b.free_slots()))
                .then(b.id.cmp(&a.id))
        },
    )
}

/// [`choose_node`], but `prefer` (the node that took the job's checkpoint) when it can take the job too and
/// its headroom is within `margin` of the chosen node's: its zygotes have the job's module and libraries
/// imported, and its report may still count the slice that just left it.
pub fn choose_node_near<'a, I>(nodes: I, radio_limit: f64, prefer: Option<&str>, margin: f64) -> Option<&'a NodeView>
where
    I: IntoIterator<Item = &'a NodeView> + Clone,
{
    let best = choose_node(nodes.clone(), radio_limit)?;
    let near = prefer.and_then(|p| choose_node(nodes.into_iter().filter(|n| n.id == p), radio_limit));
    Some(near.filter(|n| n.headroom() + margin >= best.headroom()).unwrap_or(best))
}

/// The order jobs leave a hot node: priority (higher first), then progress (more run time first), then
/// checkpoint size (smaller first), then id.
pub fn evacuation_order(a: &JobLoad, b: &JobLoad) -> Ordering {
    b.priority
        .cmp(&a.priority)
        .then(b.run_ms.cmp(&a.run_ms))
        .then(a.checkpoint_bytes.cmp(&b.checkpoint_bytes))
        .then(a.job_id.cmp(&b.job_id))
}

/// A job waiting for a node: queued, or parked with a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedJob {
    pub record: JobRecord,
    pub revision: u64,
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
    /// Max-heap order: higher priority, then older submission, then earlier arrival.
    fn cmp(&self, o: &Self) -> Ordering {
        let (a, b) = (&self.job.record, &o.job.record);
        a.priority.cmp(&b.priority).then(b.submitted_ms.cmp(&a.submitted_ms)).then(o.seq.cmp(&self.seq))
    }
}

/// A waiting job's entry in the queue, and the revision of its record then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Queued {
    seq: u64,
    revision: u64,
}

/// Where placement believes a job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whereabouts {
    /// On a node (running, or sent there).
    On(String),
    /// Told to leave `from` for `to` (counts against `to`).
    Moving { from: String, to: String },
    /// Told to park on `from`; placement waits for the node to say it did.
    Parking { from: String },
}

impl Whereabouts {
    /// The node whose slot the job takes.
    fn slot_node(&self) -> Option<&str> {
        match self {
            Whereabouts::On(n) | Whereabouts::Moving { to: n, .. } => Some(n),
            Whereabouts::Parking { .. } => None,
        }
    }
    fn involves(&self, node: &str) -> bool {
        match self {
            Whereabouts::On(n) => n == node,
            Whereabouts::Moving { from, to } => from == node || to == node,
            Whereabouts::Parking { from } => from == node,
        }
    }
}

#[derive(Debug, Clone)]
struct Tracked {
    at: Whereabouts,
    /// When placement last changed its mind about the job, or last saw it reported where it believes.
    since_ms: u64,
    /// A record check is in flight (do not ask again).
    checking: bool,
}

struct NodeEntry {
    view: NodeView,
    last_seen_ms: u64,
    cool_until_ms: u64,
    /// The jobs of the node's latest report.
    reported: HashMap<String, JobLoad>,
}

/// What the placement actor should do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Mark the job placed on `node` (compare-and-set on its record) and send it there.
    Assign { job: QueuedJob, node: String },
    /// Tell `node` to move these jobs away (or park them).
    Evacuate { node: String, moves: Vec<Move> },
    /// Stop these jobs on `node`: it reports them but no longer owns them.
    Fence { node: String, jobs: Vec<String> },
    /// Read the job's record and report it back with [`Scheduler::observed`].
    Check { job_id: String },
    /// Take the job from its stale owner: compare-and-set its record (at `revision`) to parked, then queue it.
    TakeBack { record: JobRecord, revision: u64, reason: String },
    /// Announce a gone node (`node.gone.<id>`).
    Gone { node: String, last_seen_ms: u64, jobs: Vec<String> },
}

/// Placement's state and rules.
pub struct Scheduler {
    rules: Rules,
    nodes: HashMap<String, NodeEntry>,
    queue: BinaryHeap<Waiting>,
    /// The jobs waiting, each with the `seq` of its entry in `queue` and its record's revision (entries of jobs
    /// no longer waiting, or queued again since, are skipped when they come up). A job is waiting or tracked,
    /// never both: a job counted on a node while it also waited would hold a slot it is waiting for.
    queued: HashMap<String, Queued>,
    seq: u64,
    jobs: HashMap<String, Tracked>,
    /// The jobs tracked `On` each node (an index of `jobs`, so a hot node's evacuation looks at its own jobs only).
    on_node: HashMap<String, HashSet<String>>,
    /// When this scheduler started: until `gone_after_ms` later, an unheard node may still report.
    started_ms: u64,
}

impl Scheduler {
    pub fn new(rules: Rules, now_ms: u64) -> Self {
        Self {
            rules,
            nodes: HashMap::new(),
            queue: BinaryHeap::new(),
            queued: HashMap::new(),
            seq: 0,
            jobs: HashMap::new(),
            on_node: HashMap::new(),
            started_ms: now_ms,
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Nodes as the decisions see them, sorted by id.
    pub fn views(&self) -> Vec<NodeView> {
        let mut v: Vec<NodeView> = self.nodes.values().map(|n| n.view.clone()).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    /// Where placement believes a job is.
    pub fn whereabouts(&self, job_id: &str) -> Option<&Whereabouts> {
        self.jobs.get(job_id).map(|t| &t.at)
    }

    fn move_limit(&self) -> f64 {
        self.rules.radio_threshold - self.rules.hysteresis
    }

    fn count(&mut self, at: &Whereabouts, delta: isize) {
        if let Some(n) = at.slot_node().and_then(|n| self.nodes.get_mut(n)) {
            n.view.in_flight = n.view.in_flight.saturating_add_signed(delta);
        }
    }

    fn track(&mut self, job_id: &str, at: Whereabouts, now_ms: u64) {
        self.untrack(job_id);
        // Placement now believes it is on a node: it no longer waits (its queue entry is skipped).
        self.queued.remove(job_id);
        self.count(&at, 1);
        if let Whereabouts::On(n) = &at {
            self.on_node.entry(n.clone()).or_default().insert(job_id.to_string());
        }
        self.jobs.insert(job_id.to_string(), Tracked { at, since_ms: now_ms, checking: false });
    }

    fn untrack(&mut self, job_id: &str) -> Option<Whereabouts> {
        let t = self.jobs.remove(job_id)?;
        self.count(&t.at, -1);
        if let Whereabouts::On(n) = &t.at {
            if let Some(set) = self.on_node.get_mut(n) {
                set.remove(job_id);
                if set.is_empty() {
                    self.on_node.remove(n);
                }
            }
        }
        Some(t.at)
    }

    /// A node placement has not heard yet but must watch (a record names it as owner).
    fn expect_node(&mut self, node: &str, now_ms: u64) {
        self.nodes.entry(node.to_string()).or_insert_with(|| NodeEntry {
            view: NodeView {
                id: node.to_string(),
                cpu_headroom: 0.0,
                radio_load: 1.0,
                slots: 0,
                in_flight: 0,
                hot: false,
                cooling: false,
                held: false,
            },
            // Silent from now on counts; a node that never reports is gone after the usual time.
            last_seen_ms: now_ms,
            cool_until_ms: 0,
            reported: HashMap::new(),
        });
    }

    /// A job waits for a node (new, parked, or taken back). Duplicates are ignored.
    pub fn enqueue(&mut self, job: QueuedJob, now_ms: u64) -> Vec<Action> {
        let id = job.record.job_id.clone();
        if self.queued.contains_key(&id) {
            return Vec::new();
        }
        self.untrack(&id);
        self.seq += 1;
        self.queued.insert(id, Queued { seq: self.seq, revision: job.revision });
        self.queue.push(Waiting { job, seq: self.seq });
        self.dispatch(now_ms)
    }

    /// A waiting job found in the records by the leader's rescan: queued unless placement knows it already
    /// (waiting, or tracked on a node: a placement in flight has not written its record yet). It catches a
    /// submit whose queueing was lost and a job parked or taken back while no message reached placement.
    pub fn enqueue_unknown(&mut self, job: QueuedJob, now_ms: u64) -> Vec<Action> {
        let id = &job.record.job_id;
        if self.queued.contains_key(id) || self.jobs.contains_key(id) {
            return Vec::new();
        }
        self.enqueue(job, now_ms)
    }

    /// A job placement finds running somewhere (its record, at start-up or after a check).
    pub fn adopt_running(&mut self, job_id: &str, at: Whereabouts, now_ms: u64) {
        for n in [at.slot_node().map(str::to_string), Some(from_of(&at))].into_iter().flatten() {
            self.expect_node(&n, now_ms);
        }
        self.track(job_id, at, now_ms);
    }

    /// A job the leader's rescan found placed or moving in the records that placement knows neither as waiting
    /// nor on a node: tracked from now as at a takeover, so that its node, if gone or not reporting it, gets it
    /// checked and taken back. It catches a running job whose tracking was lost while its node died.
    pub fn adopt_unknown(&mut self, job_id: &str, at: Whereabouts, now_ms: u64) {
        if !self.queued.contains_key(job_id) && !self.jobs.contains_key(job_id) {
            self.adopt_running(job_id, at, now_ms);
        }
    }

    /// A job ended (its final event or record was seen).
    pub fn job_ended(&mut self, job_id: &str, now_ms: u64) -> Vec<Action> {
        if self.untrack(job_id).is_some() {
            self.dispatch(now_ms)
        } else {
            Vec::new()
        }
    }

    /// A job was seen running on `node` after a move (its `migrated` event).
    pub fn confirmed(&mut self, job_id: &str, node: &str, now_ms: u64) {
        if let Some(t) = self.jobs.get(job_id) {
            if t.at.slot_node() == Some(node) {
                let at = Whereabouts::On(node.to_string());
                self.track(job_id, at, now_ms);
            }
        }
    }

    /// Sending a job to `node` failed before it started there (refused, or no such node): the actor has put
    /// its record back to waiting; it is queued again by [`Scheduler::enqueue`].
    pub fn assign_failed(&mut self, job_id: &str, node: &str, gone: bool) {
        if self.jobs.get(job_id).is_some_and(|t| t.at == Whereabouts::On(node.to_string())) {
            self.untrack(job_id);
        }
        if gone {
            // Nobody listens on its subject: it will not report again.
            self.nodes.remove(node);
        } else if let Some(n) = self.nodes.get_mut(node) {
            // Treat it as full until its next report. Not by raising `in_flight`: that count is placement's own
            // tally of the jobs it tracks there, which no report resets, so a raised count kept the node full
            // for good (one failed assignment, e.g. not recorded while NATS restarts, and the node took nothing).
            n.view.held = true;
        }
    }

    /// A node's radio load changed (`radio.load.<node>`): act before its next report.
    pub fn on_radio(&mut self, node: &str, load: f64, now_ms: u64) -> Vec<Action> {
        let Some(n) = self.nodes.get_mut(node) else {
            return Vec::new();
        };
        n.view.radio_load = load;
        let mut out = self.update_heat(node, now_ms);
        out.extend(self.dispatch(now_ms));
        out
    }

    /// A node's load report.
    pub fn on_load(&mut self, r: &LoadReport, now_ms: u64) -> Vec<Action> {
        let mut out = Vec::new();
        let entry = self.nodes.entry(r.node.clone()).or_insert_with(|| NodeEntry {
            view: NodeView {
                id: r.node.clone(),
                cpu_headroom: r.cpu_headroom,
                radio_load: r.radio_load,
                slots: r.slots,
                in_flight: 0,
                hot: false,
                cooling: false,
                held: false,
            },
            last_seen_ms: now_ms,
            cool_until_ms: 0,
            reported: HashMap::new(),
        });
        entry.view.cpu_headroom = r.cpu_headroom;
        entry.view.radio_load = r.radio_load;
        entry.view.slots = r.slots;
        entry.view.held = false;
        entry.last_seen_ms = now_ms;
        entry.reported = r.jobs.iter().map(|j| (j.job_id.clone(), j.clone())).collect();
        out.extend(self.update_heat(&r.node, now_ms));
        out.extend(self.reconcile(&r.node, now_ms));
        out.extend(self.dispatch(now_ms));
        out
    }

    /// Hot/cooling transitions of one node; evacuates it when it is hot and still holds jobs.
    fn update_heat(&mut self, node: &str, now_ms: u64) -> Vec<Action> {
        let (thr, low) = (self.rules.radio_threshold, self.move_limit());
        let cooldown = self.rules.cooldown_ms;
        let Some(n) = self.nodes.get_mut(node) else {
            return Vec::new();
        };
        let load = n.view.radio_load;
        if load >= thr {
            n.view.hot = true;
            n.view.cooling = false;
        } else if n.view.hot && load < low {
            n.view.hot = false;
            n.cool_until_ms = now_ms + cooldown;
        }
        n.view.cooling = !n.view.hot && now_ms < n.cool_until_ms;
        if n.view.hot {
            self.evacuate(node, now_ms)
        } else {
            Vec::new()
        }
    }

    /// Send every job on a hot node away (those not already leaving).
    fn evacuate(&mut self, node: &str, now_ms: u64) -> Vec<Action> {
        let Some(entry) = self.nodes.get(node) else {
            return Vec::new();
        };
        let mut leaving: Vec<JobLoad> = Vec::new();
        let mut seen = HashSet::new();
        for id in self.on_node.get(node).into_iter().flatten() {
            let jl = entry.reported.get(id).cloned().unwrap_or(JobLoad {
                job_id: id.clone(),
                priority: 0,
                run_ms: 0,
                checkpoint_bytes: 0,
                leaving: false,
            });
            if !jl.leaving {
                seen.insert(id.clone());
                leaving.push(jl);
            }
        }
        for (id, jl) in &entry.reported {
            // Reported but not tracked (just adopted, or placement restarted): it leaves too.
            if !jl.leaving && !seen.contains(id) && !self.jobs.contains_key(id) {
                leaving.push(jl.clone());
            }
        }
        if leaving.is_empty() {
            return Vec::new();
        }
        leaving.sort_by(evacuation_order);
        let limit = self.move_limit();
        let mut moves = Vec::with_capacity(leaving.len());
        for jl in leaving {
            let to =
                choose_node(self.nodes.values().map(|n| &n.view).filter(|v| v.id != node), limit).map(|v| v.id.clone());
            let at = match &to {
                Some(to) => Whereabouts::Moving { from: node.to_string(), to: to.clone() },
                None => Whereabouts::Parking { from: node.to_string() },
            };
            self.track(&jl.job_id, at, now_ms);
            moves.push(Move { job_id: jl.job_id, to });
        }
        vec![Action::Evacuate { node: node.to_string(), moves }]
    }

    /// Compare a node's report with what placement believes.
    fn reconcile(&mut self, node: &str, now_ms: u64) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(entry) = self.nodes.get(node) else {
            return out;
        };
        let mut fence = Vec::new();
        let mut confirm = Vec::new();
        let mut check = Vec::new();
        for id in entry.reported.keys() {
            match self.jobs.get(id).map(|t| &t.at) {
                Some(Whereabouts::On(n)) if n == node => confirm.push(id.clone()),
                Some(Whereabouts::Moving { to, .. }) if to == node => confirm.push(id.clone()),
                // Still on its way out.
                Some(Whereabouts::Moving { from, .. }) | Some(Whereabouts::Parking { from }) if from == node => {}
                Some(_) => fence.push(id.clone()),
                None if self.queued.contains_key(id) => fence.push(id.clone()),
                None => check.push(id.clone()),
            }
        }
        for id in confirm {
            self.track(&id, Whereabouts::On(node.to_string()), now_ms);
        }
        for id in check {
            // Running somewhere placement did not know of (a restart): believe the node until the record
            // says otherwise.
            self.track(&id, Whereabouts::On(node.to_string()), now_ms);
            if let Some(t) = self.jobs.get_mut(&id) {
                t.checking = true;
            }
            out.push(Action::Check { job_id: id });
        }
        if !fence.is_empty() {
            fence.sort();
            out.push(Action::Fence { node: node.to_string(), jobs: fence });
        }
        out
    }

    /// A [`Action::Check`] could not read the record, or a take-back could not write it (NATS trouble): ask
    /// again later. A tracked job is checked again by [`Scheduler::tick`]; returns false for one that is not
    /// tracked (taken back from a lost node, or known only through this check), which nothing else would look at
    /// again: the caller must ask again itself.
    pub fn check_failed(&mut self, job_id: &str) -> bool {
        match self.jobs.get_mut(job_id) {
            Some(t) => {
                t.checking = false;
                true
            }
            None => self.queued.contains_key(job_id),
        }
    }

    /// A record read for a [`Action::Check`]: decide from what it says.
    pub fn observed(&mut self, record: JobRecord, revision: u64, now_ms: u64) -> Vec<Action> {
        let id = record.job_id.clone();
        if let Some(t) = self.jobs.get_mut(&id) {
            t.checking = false;
        }
        // Nodes still reporting the job that the record does not name as its owner hold stale copies.
        let owner = if record.state.is_final() || record.is_waiting() || record.state == JobState::Idle {
            None
        } else {
            record.node.clone()
        };
        let mut out: Vec<Action> = self.stale_holders(&id, owner.as_deref());
        out.extend(self.decide(record, revision, now_ms));
        out
    }

    fn stale_holders(&self, job_id: &str, owner: Option<&str>) -> Vec<Action> {
        let mut holders: Vec<&String> = self
            .nodes
            .iter()
            .filter(|(n, e)| Some(n.as_str()) != owner && e.reported.contains_key(job_id))
            .map(|(n, _)| n)
            .collect();
        holders.sort();
        holders.into_iter().map(|n| Action::Fence { node: n.clone(), jobs: vec![job_id.to_string()] }).collect()
    }

    fn decide(&mut self, record: JobRecord, revision: u64, now_ms: u64) -> Vec<Action> {
        let id = record.job_id.clone();
        if self.queued.get(&id).is_some_and(|q| q.revision >= revision) {
            // Read before the job was put back to waiting (a check that crossed a take-back or a park): the
            // queue knows better.
            return Vec::new();
        }
        // A session between requests is on no node: nothing to track until a request wakes it.
        if record.state.is_final() || record.state == JobState::Idle {
            return self.job_ended(&id, now_ms);
        }
        if record.is_waiting() {
            return self.enqueue(QueuedJob { record, revision }, now_ms);
        }
        let owner = record.node.clone().unwrap_or_default();
        let live = self
            .nodes
            .get(&owner)
            .is_some_and(|n| n.view.slots > 0 && now_ms.saturating_sub(n.last_seen_ms) <= self.rules.gone_after_ms);
        let reported = self.nodes.get(&owner).is_some_and(|n| n.reported.contains_key(&id));
        if live && reported {
            self.track(&id, Whereabouts::On(owner), now_ms);
            return Vec::new();
        }
        let patient = now_ms.saturating_sub(self.started_ms) < self.rules.gone_after_ms;
        let fresh = self.jobs.get(&id).is_some_and(|t| now_ms.saturating_sub(t.since_ms) < self.rules.orphan_grace_ms);
        if (live || patient) && fresh {
            // Give it time to show up in a report.
            if record.state == JobState::Moving {
                let from = record.moving_from.clone().unwrap_or_default();
                self.track(&id, Whereabouts::Moving { from, to: owner }, now_ms);
            } else if !self.jobs.contains_key(&id) {
                self.expect_node(&owner, now_ms);
                self.track(&id, Whereabouts::On(owner), now_ms);
            }
            return Vec::new();
        }
        let reason = if live { "orphaned" } else { "node_lost" };
        self.untrack(&id);
        vec![Action::TakeBack { record, revision, reason: reason.into() }]
    }

    /// Periodic work: gone nodes, cool-downs ending, orphans, dispatch. `connected` is false while placement
    /// itself cannot reach NATS: then silence proves nothing and every node's clock is reset.
    pub fn tick(&mut self, now_ms: u64, connected: bool) -> Vec<Action> {
        let mut out = Vec::new();
        if !connected {
            for n in self.nodes.values_mut() {
                n.last_seen_ms = now_ms;
            }
            for t in self.jobs.values_mut() {
                t.since_ms = now_ms;
            }
            return out;
        }
        let gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| now_ms.saturating_sub(n.last_seen_ms) > self.rules.gone_after_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            let Some(n) = self.nodes.remove(&id) else {
                continue;
            };
            let mut lost: Vec<String> =
                self.jobs.iter().filter(|(_, t)| t.at.involves(&id)).map(|(j, _)| j.clone()).collect();
            lost.sort();
            for j in &lost {
                if let Some(t) = self.jobs.get_mut(j) {
                    // Its owner is gone: no grace.
                    t.since_ms = 0;
                    t.checking = true;
                }
                out.push(Action::Check { job_id: j.clone() });
            }
            out.push(Action::Gone { node: id, last_seen_ms: n.last_seen_ms, jobs: lost });
        }
        for n in self.nodes.values_mut() {
            n.view.cooling = !n.view.hot && now_ms < n.cool_until_ms;
        }
        let grace = self.rules.orphan_grace_ms;
        let mut stale: Vec<String> = self
            .jobs
            .iter_mut()
            .filter(|(_, t)| !t.checking && now_ms.saturating_sub(t.since_ms) > grace)
            .map(|(j, t)| {
                t.checking = true;
                j.clone()
            })
            .collect();
        stale.sort();
        out.extend(stale.into_iter().map(|job_id| Action::Check { job_id }));
        out.extend(self.dispatch(now_ms));
        out
    }

    /// Send waiting jobs to nodes while some node can take one.
    fn dispatch(&mut self, now_ms: u64) -> Vec<Action> {
        let mut out = Vec::new();
        while !self.queued.is_empty() {
            let Some(next) = self.queue.peek() else {
                break;
            };
            let prefer = next.job.record.checkpoint.as_ref().map(|c| c.node.as_str());
            let views = self.nodes.values().map(|n| &n.view);
            let Some(node) = choose_node_near(views, self.rules.radio_threshold, prefer, self.rules.affinity_margin)
                .map(|n| n.id.clone())
            else {
                break;
            };
            let Some(Waiting { job, seq }) = self.queue.pop() else {
                break;
            };
            let id = &job.record.job_id;
            if self.queued.get(id).is_none_or(|q| q.seq != seq) {
                // Tracked since, or queued again with a newer entry.
                continue;
            }
            self.queued.remove(id);
            self.track(id, Whereabouts::On(node.clone()), now_ms);
            out.push(Action::Assign { job, node });
        }
        if self.queued.is_empty() {
            self.queue.clear();
        }
        out
    }
}

fn from_of(at: &Whereabouts) -> String {
    match at {
        Whereabouts::On(n) => n.clone(),
        Whereabouts::Moving { from, .. } | Whereabouts::Parking { from } => from.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{CheckpointRef, CheckpointStore, FunctionRef};

    fn rules() -> Rules {
        Rules {
            radio_threshold: 0.8,
            hysteresis: 0.1,
            cooldown_ms: 1000,
            gone_after_ms: 600,
            orphan_grace_ms: 1000,
            affinity_margin: 0.25,
        }
    }

    fn v(id: &str, cpu: f64, radio: f64, slots: usize, in_flight: usize) -> NodeView {
        NodeView {
            id: id.into(),
            cpu_headroom: cpu,
            radio_load: radio,
            slots,
            in_flight,
            hot: false,
            cooling: false,
            held: false,
        }
    }

    fn report(node: &str, radio: f64, slots: usize, jobs: &[(&str, i32, u64, u64)]) -> LoadReport {
        LoadReport {
            node: node.into(),
            ts: 0,
            cpu_headroom: 0.9,
            radio_load: radio,
            mem_available_bytes: 0,
            jobs_running: jobs.len(),
            slots,
            warm_workers: 0,
            set_zygotes: 0,
            set_zygote_restores: 0,
            module_zygotes: 0,
            module_zygote_restores: 0,
            module_zygote_failures: 0,
            restores_forked_ahead: 0,
            modules_taught: 0,
            set_zygotes_from_peers: 0,
            module_zygotes_from_peers: 0,
            jobs: jobs
                .iter()
                .map(|(id, p, run, ck)| JobLoad {
                    job_id: id.to_string(),
                    priority: *p,
                    run_ms: *run,
                    checkpoint_bytes: *ck,
                    leaving: false,
                })
                .collect(),
        }
    }

    fn job(id: &str, prio: i32, submitted: u64) -> QueuedJob {
        let mut r = JobRecord::queued(id, FunctionRef::deployed("f"), 0.into(), prio, None);
        r.submitted_ms = submitted;
        QueuedJob { record: r, revision: 1 }
    }

    fn assigns(a: &[Action]) -> Vec<(String, String)> {
        a.iter()
            .filter_map(|x| match x {
                Action::Assign { job, node } => Some((job.record.job_id.clone(), node.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn choose_node_table() {
        let mut hot = v("h", 0.99, 0.1, 9, 0);
        hot.hot = true;
        let mut cool = v("c", 0.99, 0.1, 9, 0);
        cool.cooling = true;
        let mut held = v("f", 0.99, 0.1, 9, 0);
        held.held = true;
        // (case, nodes, radio limit, expected)
        let cases: Vec<(&str, Vec<NodeView>, f64, Option<&str>)> = vec![
            ("no nodes", vec![], 0.8, None),
            ("one free node", vec![v("a", 0.5, 0.1, 2, 0)], 0.8, Some("a")),
            (
                "lower radio load wins on the same machine",
                vec![v("a", 0.9, 0.5, 2, 0), v("b", 0.9, 0.2, 2, 0)],
                0.8,
                Some("b"),
            ),
            (
                "radio load at the limit excludes the node",
                vec![v("a", 0.9, 0.8, 2, 0), v("b", 0.1, 0.7, 2, 0)],
                0.8,
                Some("b"),
            ),
            (
                "every node over the limit: the job waits",
                vec![v("a", 0.9, 0.85, 2, 0), v("b", 0.9, 0.95, 2, 0)],
                0.8,
                None,
            ),
            ("full nodes take nothing", vec![v("a", 0.9, 0.1, 2, 2), v("b", 0.2, 0.3, 1, 0)], 0.8, Some("b")),
            ("all full: the job waits", vec![v("a", 0.9, 0.1, 2, 2), v("b", 0.2, 0.3, 1, 1)], 0.8, None),
            ("more cpu headroom wins", vec![v("a", 0.3, 0.1, 2, 0), v("b", 0.6, 0.1, 2, 0)], 0.8, Some("b")),
            (
                "ties: more free slots, then the smaller id",
                vec![v("b", 0.5, 0.1, 2, 0), v("a", 0.5, 0.1, 2, 0), v("c", 0.5, 0.1, 2, 1)],
                0.8,
                Some("a"),
            ),
            ("a hot node takes nothing even with room", vec![hot.clone(), v("b", 0.1, 0.5, 1, 0)], 0.8, Some("b")),
            ("a cooling node takes nothing", vec![cool.clone()], 0.8, None),
            ("a held node takes nothing", vec![held.clone(), v("b", 0.1, 0.5, 1, 0)], 0.8, Some("b")),
            ("move targets use the lower limit", vec![v("a", 0.9, 0.75, 2, 0), v("b", 0.2, 0.6, 2, 0)], 0.7, Some("b")),
        ];
        for (case, nodes, limit, want) in cases {
            let got = choose_node(&nodes, limit).map(|n| n.id.as_str());
            assert_eq!(got, want, "{case}");
        }
    }

    #[test]
    fn choose_node_near_table() {
        let nodes =
            [v("a", 0.6, 0.0, 2, 0), v("b", 0.8, 0.0, 2, 0), v("full", 0.9, 0.0, 1, 1), v("loud", 0.9, 0.85, 2, 0)];
        // (case, preferred node, margin, expected)
        let cases: Vec<(&str, Option<&str>, f64, &str)> = vec![
            ("no checkpoint: the best node", None, 0.25, "b"),
            ("its node within the margin", Some("a"), 0.25, "a"),
            ("its node beyond the margin", Some("a"), 0.1, "b"),
            ("margin 0: the best node", Some("a"), 0.0, "b"),
            ("its node is the best", Some("b"), 0.25, "b"),
            ("its node is full", Some("full"), 0.5, "b"),
            ("its node is over the radio limit", Some("loud"), 0.5, "b"),
            ("its node is gone", Some("gone"), 0.5, "b"),
        ];
        for (case, prefer, margin, want) in cases {
            let got = choose_node_near(&nodes, 0.8, prefer, margin).map(|n| n.id.as_str());
            assert_eq!(got, Some(want), "{case}");
        }
        assert_eq!(choose_node_near(&nodes[2..3], 0.8, Some("full"), 0.5), None, "no node can take it");
    }

    #[test]
    fn a_parked_job_goes_back_to_its_checkpoints_node_unless_another_has_clearly_more_headroom() {
        let mut s = Scheduler::new(rules(), 0);
        s.on_load(&report("a", 0.3, 2, &[]), 0); // headroom 0.63
        s.on_load(&report("b", 0.1, 2, &[]), 0); // headroom 0.81
        let parked = |id: &str| {
            let mut q = job(id, 0, 1);
            q.record.checkpoint = Some(CheckpointRef {
                seq: 1,
                bytes: 100,
                run_ms: 10,
                taken_ms: 1,
                node: "a".into(),
                store: CheckpointStore::Stream { seq: 1 },
            });
            q
        };
        s.enqueue(parked("near"), 1);
        assert_eq!(s.whereabouts("near"), Some(&Whereabouts::On("a".into())));
        s.enqueue(job("fresh", 0, 2), 2);
        assert_eq!(s.whereabouts("fresh"), Some(&Whereabouts::On("b".into())), "no checkpoint: the best node");
        s.on_load(&report("a", 0.6, 2, &[("near", 0, 10, 100)]), 3); // headroom 0.36: beyond the margin
        s.enqueue(parked("far"), 4);
        assert_eq!(s.whereabouts("far"), Some(&Whereabouts::On("b".into())));
    }

    #[test]
    fn a_rescan_queues_only_the_waiting_jobs_placement_does_not_know() {
        let mut s = Scheduler::new(rules(), 0);
        s.on_load(&report("n", 0.1, 1, &[]), 0);
        s.enqueue(job("placed", 0, 1), 0); // sent to n: tracked, its record still says queued
        s.enqueue(job("waiting", 0, 2), 0); // no slot left: waits
        assert_eq!(s.whereabouts("placed"), Some(&Whereabouts::On("n".into())));
        assert!(s.enqueue_unknown(job("placed", 0, 1), 5).is_empty());
        assert_eq!(s.whereabouts("placed"), Some(&Whereabouts::On("n".into())));
        assert!(s.enqueue_unknown(job("waiting", 0, 2), 5).is_empty());
        // A stranded one is queued, and placed once a slot frees.
        assert!(s.enqueue_unknown(job("stranded", 0, 3), 5).is_empty());
        let mut got: Vec<String> = assigns(&s.job_ended("placed", 10)).into_iter().map(|x| x.0).collect();
        got.extend(assigns(&s.on_load(&report("n", 0.1, 2, &[]), 20)).into_iter().map(|x| x.0));
        got.sort();
        assert_eq!(got, ["stranded", "waiting"]);
    }

    /// A job running on a node that died while placement had lost track of it: the rescan finds its record
    /// placed there, and it is taken back once the node is gone; a job placement knows is left as it is.
    #[test]
    fn a_rescan_adopts_a_running_job_placement_lost_and_takes_it_back_from_a_gone_node() {
        let mut s = Scheduler::new(rules(), 0);
        s.on_load(&report("n", 0.1, 2, &[]), 0);
        s.enqueue(job("known", 0, 1), 0);
        s.adopt_unknown("known", Whereabouts::On("elsewhere".into()), 5);
        assert_eq!(s.whereabouts("known"), Some(&Whereabouts::On("n".into())), "tracked already: unchanged");
        s.adopt_unknown("lost", Whereabouts::On("dead".into()), 10);
        assert_eq!(s.whereabouts("lost"), Some(&Whereabouts::On("dead".into())));
        // "dead" never reports; "n" does. Once "dead" is silent for longer than gone_after_ms, "lost" is checked.
        s.on_load(&report("n", 0.1, 2, &[("known", 0, 5, 0)]), 700);
        let out = s.tick(700, true);
        assert!(out.contains(&Action::Check { job_id: "lost".into() }), "{out:?}");
        let mut rec = job("lost", 0, 1).record;
        rec.state = JobState::Placed;
        rec.node = Some("dead".into());
        let out = s.observed(rec, 4, 710);
        assert!(matches!(&out[..], [Action::TakeBack { revision: 4, reason, .. }] if reason == "node_lost"), "{out:?}");
    }

    #[test]
    fn queue_serves_priority_then_age() {
        let mut s = Scheduler::new(rules(), 0);
        for (id, p, t) in [("a", 0, 10), ("b", 5, 20), ("c", 0, 5), ("d", 5, 30)] {
            s.enqueue(job(id, p, t), 0);
        }
        let a = s.on_load(&report("n", 0.1, 4, &[]), 0);
        assert_eq!(assigns(&a).into_iter().map(|x| x.0).collect::<Vec<_>>(), ["b", "d", "c", "a"]);
    }

    #[test]
    fn a_node_over_the_threshold_is_evacuated_in_order_and_the_rest_parks() {
        let mut s = Scheduler::new(rules(), 0);
        s.on_load(&report("a", 0.1, 4, &[]), 0);
        s.on_load(&report("b", 0.2, 2, &[]), 0);
        s.on_load(&report("c", 0.75, 4, &[]), 0); // under the threshold but inside the hysteresis band
        for (id, p) in [("low", 0), ("high", 9), ("mid1", 5), ("mid2", 5)] {
            s.enqueue(job(id, p, 1), 0);
        }
        // Everything fits on a (most headroom), then b.
        let jobs = [("low", 0, 100, 10), ("high", 9, 100, 10), ("mid1", 5, 50, 10), ("mid2", 5, 900, 10)];
        s.on_load(&report("a", 0.1, 4, &jobs), 10);
        // b has one job of its own: one free slot.
        s.enqueue(job("other", 0, 2), 10);
        assert_eq!(s.whereabouts("other"), Some(&Whereabouts::On("b".into())));
        let out = s.on_radio("a", 0.9, 20);
        let Action::Evacuate { node, moves } = &out[0] else { panic!("{out:?}") };
        assert_eq!(node, "a");
        // Priority first, then more progress; only b has room (c is in the hysteresis band), one slot.
        let got: Vec<(&str, Option<&str>)> = moves.iter().map(|m| (m.job_id.as_str(), m.to.as_deref())).collect();
        assert_eq!(got, [("high", Some("b")), ("mid2", None), ("mid1", None), ("low", None)]);
        assert_eq!(s.whereabouts("mid2"), Some(&Whereabouts::Parking { from: "a".into() }));
        // The next report of the hot node does not send the same jobs away twice.
        let again = s.on_load(&report("a", 0.9, 4, &jobs), 30);
        assert!(!again.iter().any(|a| matches!(a, Action::Evacuate { .. })), "{again:?}");
    }

    #[test]
    fn hysteresis_and_cooldown_keep_jobs_off_a_node_that_just_cooled() {
        let mut s = Scheduler::new(rules(), 0);
        s.on_load(&report("a", 0.1, 2, &[]), 0);
        s.on_radio("a", 0.85, 100);
        assert!(s.views()[0].hot);
        // Under the threshold but not by the hysteresis: still hot, a new job waits.
        s.on_radio("a", 0.75, 200);
        assert!(s.views()[0].hot);
        assert!(assigns(&s.enqueue(job("j", 0, 1), 200)).is_empty());
        // Below threshold - hysteresis: cooling for cooldown_ms, still nothing.
        s.on_radio("a", 0.5, 300);
        assert!(!s.views()[0].hot && s.views()[0].cooling);
        assert!(assigns(&s.on_load(&report("a", 0.5, 2, &[]), 800)).is_empty());
        assert!(assigns(&s.tick(1200, true)).is_empty());
        assert!(assigns(&s.on_load(&report("a", 0.5, 2, &[]), 1250)).is_empty());
        // After the cool-down it takes the job.
        assert_eq!(assigns(&s.tick(1301, true)), [("j".to_string(), "a".to_string())]);
    }

    #[test]
    fn a_node_whose_assignment_failed_takes_jobs_again_after_its_next_report() {
        // What the placement actor does when an assignment fails (refused, timed out, or not recorded while
        // NATS restarts): the scheduler hears of it, then the job is queued again.
        let mut s = Scheduler::new(rules(), 0);
        s.on_load(&report("a", 0.1, 3, &[]), 0);
        assert_eq!(assigns(&s.enqueue(job("j", 0, 1), 0)), [("j".to_string(), "a".to_string())]);
        s.assign_failed("j", "a", false);
        // Held until it reports: the job waits.
        assert!(assigns(&s.enqueue(job("j", 0, 1), 10)).is_empty());
        assert!(assigns(&s.tick(20, true)).is_empty());
        assert_eq!(s.views()[0].free_slots(), 0);
        // Its next report frees all its slots again: nothing runs there.
        let out = s.on_load(&report("a", 0.1, 3, &[]), 200);
        assert_eq!(assigns(&out), [("j".to_string(), "a".to_string())]);
        assert_eq!((s.views()[0].in_flight, s.views()[0].free_slots()), (1, 2));
        // A second failure while it runs a job: held again, and after the next report the count is that job.
        s.enqueue(job("k", 0, 2), 210);
        s.assign_failed("k", "a", false);
        s.enqueue(job("k", 0, 2), 220);
        s.on_load(&report("a", 0.1, 3, &[("j", 0, 10, 0)]), 400);
        assert_eq!(s.whereabouts("k"), Some(&Whereabouts::On("a".into())));
        s.job_ended("j", 500);
        s.job_ended("k", 500);
        assert_eq!((s.views()[0].in_flight, s.views()[0].free_slots()), (0, 3));
    }

    #[test]
    fn a_job_waits_or_is_counted_on_a_node_never_both() {
        // After a NATS restart the new term's recovery, the nodes' reports and the record checks arrive in any
        // order: a waiting job could also be counted on a node, holding the slot it waits for.
        let mut s = Scheduler::new(rules(), 0);
        s.on_load(&report("a", 0.1, 1, &[]), 0);
        s.on_radio("a", 0.9, 10);
        assert!(assigns(&s.enqueue(job("j", 0, 1), 20)).is_empty());
        // Recovery read j's record while it was still placed on a.
        s.adopt_running("j", Whereabouts::On("a".into()), 30);
        assert_eq!((s.queued(), s.views()[0].in_flight), (0, 1));
        // a cools down; it does not report j, whose record says parked when checked.
        s.on_radio("a", 0.5, 40);
        assert!(assigns(&s.on_load(&report("a", 0.5, 1, &[]), 1100)).is_empty());
        let out = s.tick(1100, true);
        assert!(out.contains(&Action::Check { job_id: "j".into() }), "{out:?}");
        let mut rec = job("j", 0, 1).record;
        rec.state = JobState::Parked;
        let out = s.observed(rec, 6, 1110);
        assert_eq!(assigns(&out), [("j".to_string(), "a".to_string())]);
        assert_eq!((s.queued(), s.views()[0].in_flight), (0, 1));
    }

    #[test]
    fn a_record_read_before_the_job_was_queued_again_is_ignored() {
        let mut s = Scheduler::new(rules(), 0);
        s.on_load(&report("a", 0.9, 2, &[("j", 0, 1, 0)]), 0);
        let mut q = job("j", 0, 1);
        q.revision = 4;
        s.enqueue(q, 10);
        // A check read revision 3 (placed on a) before the take-back wrote 4.
        let mut rec = job("j", 0, 1).record;
        rec.state = JobState::Placed;
        rec.node = Some("a".into());
        s.observed(rec.clone(), 3, 20);
        assert_eq!((s.queued(), s.whereabouts("j")), (1, None));
        // A newer record wins: someone placed it.
        s.observed(rec, 5, 30);
        assert_eq!((s.queued(), s.whereabouts("j")), (0, Some(&Whereabouts::On("a".into()))));
    }

    #[test]
    fn a_silent_node_is_gone_and_its_jobs_are_checked_then_taken_back() {
        let mut s = Scheduler::new(rules(), 0);
        s.on_load(&report("a", 0.1, 2, &[]), 0);
        s.on_load(&report("b", 0.1, 2, &[]), 0);
        s.enqueue(job("j", 0, 1), 0);
        let on = s.whereabouts("j").cloned().unwrap();
        let Whereabouts::On(owner) = on else { panic!() };
        let other = if owner == "a" { "b" } else { "a" };
        s.on_load(&report(&owner, 0.1, 2, &[("j", 0, 5, 0)]), 100);
        s.on_load(&report(other, 0.1, 2, &[]), 650);
        // `owner` silent for > 600 ms.
        let out = s.tick(750, true);
        assert!(out.contains(&Action::Check { job_id: "j".into() }), "{out:?}");
        assert!(out
            .iter()
            .any(|a| matches!(a, Action::Gone { node, jobs, .. } if *node == owner && jobs == &["j".to_string()])));
        let mut rec = job("j", 0, 1).record;
        rec.state = JobState::Placed;
        rec.node = Some(owner.clone());
        let out = s.observed(rec, 7, 760);
        assert!(matches!(&out[..], [Action::TakeBack { revision: 7, reason, .. }] if reason == "node_lost"), "{out:?}");
        // The take-back's write fails (NATS trouble): the job is no longer tracked, so no tick will check it
        // again and the caller must (else the job waits for the next leader).
        assert!(!s.check_failed("j"));
        assert!(s.tick(5_000, true).iter().all(|a| !matches!(a, Action::Check { job_id } if job_id == "j")));
    }

    #[test]
    fn nobody_is_gone_while_placement_itself_is_cut_off() {
        let mut s = Scheduler::new(rules(), 0);
        s.on_load(&report("a", 0.1, 2, &[]), 0);
        assert!(s.tick(5000, false).is_empty());
        assert!(s.tick(5100, true).is_empty());
        assert_eq!(s.views().len(), 1);
    }

    #[test]
    fn reports_are_reconciled_with_what_placement_believes() {
        let mut s = Scheduler::new(rules(), 0);
        s.on_load(&report("a", 0.1, 2, &[]), 0);
        s.on_load(&report("b", 0.1, 2, &[]), 0);
        s.enqueue(job("j", 0, 1), 0);
        let Some(Whereabouts::On(owner)) = s.whereabouts("j").cloned() else { panic!() };
        let other = if owner == "a" { "b" } else { "a" };
        // Another node reports j (a paused node that woke up): fenced there.
        let out = s.on_load(&report(other, 0.1, 2, &[("j", 0, 1, 0)]), 10);
        assert!(out.contains(&Action::Fence { node: other.into(), jobs: vec!["j".into()] }), "{out:?}");
        // A job nobody placed shows up in a report: placement checks its record.
        let out = s.on_load(&report(other, 0.1, 2, &[("k", 0, 1, 0)]), 20);
        assert!(out.contains(&Action::Check { job_id: "k".into() }), "{out:?}");
        // A placed job its node never reports is checked after the grace.
        let out = s.tick(1500, true);
        assert!(out.contains(&Action::Check { job_id: "j".into() }), "{out:?}");
    }

    #[test]
    fn observed_records_decide() {
        let mut s = Scheduler::new(rules(), 0);
        s.on_load(&report("a", 0.1, 2, &[("r", 0, 1, 0)]), 0);
        let mut rec = job("r", 0, 1).record;
        rec.state = JobState::Placed;
        rec.node = Some("a".into());
        // Its owner reports it: nothing to do.
        assert!(s.observed(rec.clone(), 3, 10).is_empty());
        assert_eq!(s.whereabouts("r"), Some(&Whereabouts::On("a".into())));
        // Final: untracked.
        rec.state = JobState::Completed;
        s.observed(rec.clone(), 4, 20);
        assert_eq!(s.whereabouts("r"), None);
        // Parked: queued and placed.
        rec.state = JobState::Parked;
        let out = s.observed(rec, 5, 30);
        assert_eq!(assigns(&out), [("r".to_string(), "a".to_string())]);
    }

    #[test]
    fn evacuation_order_table() {
        let j = |id: &str, p, run, ck| JobLoad {
            job_id: id.into(),
            priority: p,
            run_ms: run,
            checkpoint_bytes: ck,
            leaving: false,
        };
        let mut v = [j("a", 0, 10, 5), j("b", 1, 0, 5), j("c", 0, 10, 1), j("d", 0, 20, 100)];
        v.sort_by(evacuation_order);
        let ids: Vec<&str> = v.iter().map(|x| x.job_id.as_str()).collect();
        assert_eq!(ids, ["b", "d", "c", "a"]);
    }
}
