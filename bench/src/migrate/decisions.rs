//! Part 4 of `bench migrate`: placement's decision time per event with many nodes, on the pure
//! [`Scheduler`] (no NATS, no actor): the time of each call, as the placement actor would make it.
//!
//! A simulated mesh of `nodes` nodes with a few slots each gets `jobs_per_node` jobs per node through the
//! queue, then every node reports once per simulated second (in a shuffled order), each report listing the
//! jobs the simulation holds on that node. Radio loads wander under the threshold, and now and then a node's
//! spikes over it for one to three seconds: half the spikes reach placement as a radio change, half only
//! with the node's next report, so both kinds of event start evacuations. The simulation carries out every
//! decision as the mesh would (assigned jobs run where they were sent, moved jobs run on their target and
//! are confirmed, parked jobs come back through the queue) and ticks every 250 simulated ms.
use super::{num, table, verdict, Summary};
use microlambda::actors::scheduler::{Action, QueuedJob, Rules, Scheduler};
use microlambda::config::PlacementConfig;
use microlambda::wire::{FunctionRef, JobLoad, JobRecord, JobState, LoadReport};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::time::Instant;

#[derive(Debug, Clone, PartialEq)]
pub struct DecisionOptions {
    pub nodes: usize,
    pub jobs_per_node: usize,
    pub slots: usize,
    /// Load reports fed after the set-up.
    pub reports: usize,
    /// Chance per report that a calm node's radio spikes.
    pub spike_chance: f64,
    /// Chance per report that a radio change (under the threshold) reaches placement before it.
    pub radio_chance: f64,
    pub seed: u64,
}

impl Default for DecisionOptions {
    fn default() -> Self {
        Self {
            nodes: 1000,
            jobs_per_node: 2,
            slots: 4,
            reports: 20_000,
            spike_chance: 0.01,
            radio_chance: 0.05,
            seed: 0x6d69_6772_6174_6531,
        }
    }
}

/// The calls timed, by what they were and whether they started an evacuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// `on_load`: a node's report.
    Report,
    /// `on_load` of a node over the threshold that has nothing (left) to move.
    ReportHot,
    /// `on_load` that evacuated the node (its radio load rose and only the report said so).
    ReportEvacuates,
    /// `on_radio`: a radio change under the threshold.
    Radio,
    /// `on_radio` over the threshold, on a node with nothing to move.
    RadioHot,
    /// `on_radio` over the threshold: evacuation.
    RadioEvacuates,
    /// `enqueue` of a parked job (a hot node's job that found no room).
    Requeue,
    /// `confirmed`: a moved job's `migrated` event.
    Migrated,
    /// `tick`: periodic work.
    Tick,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        EventKind::Report,
        EventKind::ReportHot,
        EventKind::ReportEvacuates,
        EventKind::Radio,
        EventKind::RadioHot,
        EventKind::RadioEvacuates,
        EventKind::Requeue,
        EventKind::Migrated,
        EventKind::Tick,
    ];

    pub fn label(self) -> &'static str {
        match self {
            EventKind::Report => "load report",
            EventKind::ReportHot => "load report, node over the threshold, nothing to move",
            EventKind::ReportEvacuates => "load report → evacuation",
            EventKind::Radio => "radio change",
            EventKind::RadioHot => "radio change over the threshold, nothing to move",
            EventKind::RadioEvacuates => "radio change → evacuation",
            EventKind::Requeue => "parked job re-queued",
            EventKind::Migrated => "`migrated` confirmation",
            EventKind::Tick => "tick (every 250 ms)",
        }
    }

    /// The load events the target is about.
    pub fn is_load_event(self) -> bool {
        !matches!(self, EventKind::Requeue | EventKind::Migrated | EventKind::Tick)
    }
}

struct SimNode {
    id: String,
    cpu_headroom: f64,
    radio: f64,
    /// Until when the radio stays over the threshold.
    hot_until_ms: Option<u64>,
    jobs: Vec<String>,
}

/// The simulated mesh around a scheduler.
pub struct Sim {
    pub sched: Scheduler,
    nodes: Vec<SimNode>,
    index: HashMap<String, usize>,
    /// Which node (index) holds each job.
    location: HashMap<String, usize>,
    records: HashMap<String, JobRecord>,
    rng: StdRng,
    opts: DecisionOptions,
    pub now_ms: u64,
    /// Per kind, each call's time in µs.
    pub samples: HashMap<EventKind, Vec<f64>>,
    /// Moves and parks the decisions asked for, and actions of other kinds (checks, fences, take-backs, gone
    /// nodes: a consistent simulation should cause none).
    pub moves: usize,
    pub parks: usize,
    pub other_actions: usize,
}

fn node_id(i: usize) -> String {
    format!("bbu-{i:04}")
}

impl Sim {
    /// Build the mesh: every node reports, then gets its jobs through the queue (while a node is the newest
    /// it has the most headroom, so its jobs go to it), then every node reports its jobs and radio load once.
    pub fn setup(placement: &PlacementConfig, opts: &DecisionOptions) -> Self {
        let mut s = Sim {
            sched: Scheduler::new(Rules::from_config(placement), 0),
            nodes: Vec::with_capacity(opts.nodes),
            index: HashMap::new(),
            location: HashMap::new(),
            records: HashMap::new(),
            rng: StdRng::seed_from_u64(opts.seed),
            opts: opts.clone(),
            now_ms: 0,
            samples: HashMap::new(),
            moves: 0,
            parks: 0,
            other_actions: 0,
        };
        for i in 0..opts.nodes {
            let id = node_id(i);
            s.index.insert(id.clone(), i);
            let radio = s.rng.random_range(0.05..0.6);
            s.nodes.push(SimNode { id, cpu_headroom: 0.0, radio, hot_until_ms: None, jobs: Vec::new() });
            // Newest node, most headroom so far (its radio load shows from its next report on).
            let report = s.report_with(i, (i + 1) as f64 / (opts.nodes + 1) as f64, 0.0);
            let actions = s.sched.on_load(&report, s.now_ms);
            s.apply(actions);
            for j in 0..opts.jobs_per_node {
                let job_id = format!("job-{i:04}-{j}");
                let mut rec = JobRecord::queued(&job_id, FunctionRef::deployed("f"), serde_json::Value::Null, 0, None);
                rec.submitted_ms = s.now_ms;
                s.records.insert(job_id, rec.clone());
                let actions = s.sched.enqueue(QueuedJob { record: rec, revision: 1 }, s.now_ms);
                s.apply(actions);
            }
        }
        for i in 0..s.nodes.len() {
            s.nodes[i].cpu_headroom = s.rng.random_range(0.2..0.95);
        }
        for i in 0..s.nodes.len() {
            let report = s.report(i);
            let actions = s.sched.on_load(&report, s.now_ms);
            s.apply(actions);
        }
        s
    }

    fn report(&self, i: usize) -> LoadReport {
        self.report_with(i, self.nodes[i].cpu_headroom, self.nodes[i].radio)
    }

    fn report_with(&self, i: usize, cpu_headroom: f64, radio_load: f64) -> LoadReport {
        let n = &self.nodes[i];
        LoadReport {
            node: n.id.clone(),
            ts: self.now_ms,
            cpu_headroom,
            radio_load,
            mem_available_bytes: 16 << 30,
            jobs_running: n.jobs.len(),
            slots: self.opts.slots,
            warm_workers: self.opts.slots - n.jobs.len().min(self.opts.slots),
            set_zygotes: 0,
            set_zygote_restores: 0,
            module_zygotes: 0,
            module_zygote_restores: 0,
            module_zygote_failures: 0,
            restores_forked_ahead: 0,
            modules_taught: 0,
            set_zygotes_from_peers: 0,
            module_zygotes_from_peers: 0,
            jobs: n
                .jobs
                .iter()
                .map(|j| JobLoad {
                    job_id: j.clone(),
                    priority: 0,
                    run_ms: self.now_ms,
                    checkpoint_bytes: 400,
                    leaving: false,
                })
                .collect(),
        }
    }

    /// The jobs each node holds, as the simulation sees them.
    #[cfg(test)]
    pub fn holdings(&self) -> Vec<(String, Vec<String>)> {
        self.nodes.iter().map(|n| (n.id.clone(), n.jobs.clone())).collect()
    }

    /// The job leaves the node that holds it, and runs on `node` if given.
    fn place(&mut self, job_id: &str, node: Option<&str>) {
        if let Some(i) = self.location.remove(job_id) {
            self.nodes[i].jobs.retain(|j| j != job_id);
        }
        if let Some(&i) = node.and_then(|n| self.index.get(n)) {
            self.nodes[i].jobs.push(job_id.to_string());
            self.location.insert(job_id.to_string(), i);
        }
    }

    /// Carry out decisions as the mesh would.
    fn apply(&mut self, actions: Vec<Action>) {
        let mut confirm = Vec::new();
        let mut parked = Vec::new();
        for a in actions {
            match a {
                Action::Assign { job, node } => self.place(&job.record.job_id, Some(&node)),
                Action::Evacuate { moves, .. } => {
                    for m in moves {
                        self.place(&m.job_id, m.to.as_deref());
                        match m.to {
                            Some(to) => {
                                self.moves += 1;
                                confirm.push((m.job_id, to));
                            }
                            None => {
                                self.parks += 1;
                                parked.push(m.job_id);
                            }
                        }
                    }
                }
                _ => self.other_actions += 1,
            }
        }
        let now = self.now_ms;
        for (job_id, to) in confirm {
            let ((), us) = timed(|| self.sched.confirmed(&job_id, &to, now));
            self.sample(EventKind::Migrated, us);
        }
        for job_id in parked {
            let Some(mut rec) = self.records.get(&job_id).cloned() else { continue };
            rec.state = JobState::Parked;
            let (actions, us) = timed(|| self.sched.enqueue(QueuedJob { record: rec, revision: 2 }, now));
            self.sample(EventKind::Requeue, us);
            self.apply(actions);
        }
    }

    fn sample(&mut self, kind: EventKind, us: f64) {
        self.samples.entry(kind).or_default().push(us);
    }

    /// A radio change reaches placement.
    fn radio(&mut self, i: usize, load: f64) {
        self.nodes[i].radio = load;
        let id = self.nodes[i].id.clone();
        let now = self.now_ms;
        let (actions, us) = timed(|| self.sched.on_radio(&id, load, now));
        let kind = match (evacuates(&actions), load >= self.sched.rules().radio_threshold) {
            (true, _) => EventKind::RadioEvacuates,
            (false, true) => EventKind::RadioHot,
            (false, false) => EventKind::Radio,
        };
        self.sample(kind, us);
        self.apply(actions);
    }

    /// A node's report reaches placement.
    fn load_report(&mut self, i: usize) {
        let report = self.report(i);
        let now = self.now_ms;
        let (actions, us) = timed(|| self.sched.on_load(&report, now));
        let kind = match (evacuates(&actions), report.radio_load >= self.sched.rules().radio_threshold) {
            (true, _) => EventKind::ReportEvacuates,
            (false, true) => EventKind::ReportHot,
            (false, false) => EventKind::Report,
        };
        self.sample(kind, us);
        self.apply(actions);
    }

    fn tick(&mut self) {
        let now = self.now_ms;
        let (actions, us) = timed(|| self.sched.tick(now, true));
        self.sample(EventKind::Tick, us);
        self.apply(actions);
    }

    /// The node's radio before its report: a spike begins or ends, or the load wanders (and placement may
    /// hear of it before the report).
    fn radio_step(&mut self, i: usize) {
        let thr = self.sched.rules().radio_threshold;
        let announce = self.rng.random_bool(0.5);
        let set = |s: &mut Self, load: f64, announce: bool| {
            if announce {
                s.radio(i, load)
            } else {
                s.nodes[i].radio = load
            }
        };
        match self.nodes[i].hot_until_ms {
            Some(until) if self.now_ms >= until => {
                self.nodes[i].hot_until_ms = None;
                let load = self.rng.random_range(0.05..0.6);
                set(self, load, announce);
            }
            Some(_) => {}
            None if self.rng.random_bool(self.opts.spike_chance) => {
                let load = if thr < 1.0 { self.rng.random_range(thr..=1.0) } else { 1.0 };
                self.nodes[i].hot_until_ms = Some(self.now_ms + self.rng.random_range(1000..3000));
                set(self, load, announce);
            }
            None if self.rng.random_bool(self.opts.radio_chance) => {
                let load = self.rng.random_range(0.05..0.6);
                self.radio(i, load);
            }
            None => {}
        }
    }

    /// Feed `reports` load reports: every node once per simulated second in a shuffled order, radio
    /// changes before them, a tick every 250 ms.
    pub fn feed(&mut self, reports: usize) {
        let n = self.nodes.len().max(1);
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        let mut next_tick = self.now_ms + 250;
        let mut sent = 0;
        while sent < reports && !order.is_empty() {
            order.shuffle(&mut self.rng);
            let second = self.now_ms;
            for (k, &i) in order.iter().enumerate() {
                if sent == reports {
                    break;
                }
                self.now_ms = second + (k as u64 * 1000) / n as u64;
                while self.now_ms >= next_tick {
                    self.tick();
                    next_tick += 250;
                }
                self.radio_step(i);
                self.load_report(i);
                sent += 1;
            }
            self.now_ms = second + 1000;
        }
    }

    pub fn result(&self) -> DecisionRun {
        let summaries =
            EventKind::ALL.iter().filter_map(|k| self.samples.get(k).map(|v| (*k, Summary::of(v)))).collect();
        DecisionRun {
            opts: self.opts.clone(),
            summaries,
            moves: self.moves,
            parks: self.parks,
            other_actions: self.other_actions,
        }
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed().as_secs_f64() * 1e6)
}

fn evacuates(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Evacuate { .. }))
}

/// Run part 4.
pub fn run(placement: &PlacementConfig, opts: &DecisionOptions) -> DecisionRun {
    let mut sim = Sim::setup(placement, opts);
    sim.feed(opts.reports);
    sim.result()
}

/// What part 4 measured.
#[derive(Debug, Clone)]
pub struct DecisionRun {
    pub opts: DecisionOptions,
    pub summaries: Vec<(EventKind, Summary)>,
    pub moves: usize,
    pub parks: usize,
    pub other_actions: usize,
}

impl DecisionRun {
    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .summaries
            .iter()
            .map(|(k, s)| {
                let target = if k.is_load_event() {
                    format!("p99 {}, max {}", verdict(s.p99 < 1000.0), verdict(s.max < 1000.0))
                } else {
                    "—".into()
                };
                vec![k.label().into(), s.n.to_string(), num(s.p50, 1), num(s.p99, 1), num(s.max, 1), target]
            })
            .collect();
        let o = &self.opts;
        format!(
            "{} nodes × {} jobs ({} slots each), {} load reports; the decisions moved {} jobs and parked {} \
             ({} other actions):\n\n{}",
            o.nodes,
            o.jobs_per_node,
            o.slots,
            o.reports,
            self.moves,
            self.parks,
            self.other_actions,
            table(&["event", "calls", "p50 µs", "p99 µs", "max µs", "target < 1 ms"], &rows)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> DecisionOptions {
        DecisionOptions { nodes: 10, jobs_per_node: 2, slots: 4, reports: 400, spike_chance: 0.2, ..Default::default() }
    }

    #[test]
    fn the_set_up_places_the_jobs_evenly_and_placement_agrees() {
        let sim = Sim::setup(&PlacementConfig::default(), &small());
        let held = sim.holdings();
        assert_eq!(held.len(), 10);
        for (node, jobs) in &held {
            assert_eq!(jobs.len(), 2, "{node}: {jobs:?}");
            for j in jobs {
                let at = sim.sched.whereabouts(j);
                assert_eq!(at, Some(&microlambda::actors::scheduler::Whereabouts::On(node.clone())), "{j}");
            }
        }
        assert_eq!(sim.sched.queued(), 0);
        assert!(sim.sched.views().iter().all(|v| v.in_flight == 2 && !v.hot));
        assert_eq!(sim.other_actions, 0);
    }

    #[test]
    fn a_run_times_every_kind_of_event_and_keeps_the_simulation_consistent() {
        let mut sim = Sim::setup(&PlacementConfig::default(), &small());
        sim.feed(400);
        let r = sim.result();
        let count = |k| r.summaries.iter().find(|(x, _)| *x == k).map_or(0, |(_, s)| s.n);
        let reports = count(EventKind::Report) + count(EventKind::ReportHot) + count(EventKind::ReportEvacuates);
        assert_eq!(reports, 400);
        for k in [
            EventKind::ReportHot,
            EventKind::ReportEvacuates,
            EventKind::RadioEvacuates,
            EventKind::Radio,
            EventKind::Tick,
        ] {
            assert!(count(k) > 0, "no {k:?}: {r:?}");
        }
        assert!(r.moves > 0);
        // Every job is still somewhere, once, and placement believes the same.
        let mut all: Vec<String> = sim.holdings().into_iter().flat_map(|(_, j)| j).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 20);
        assert_eq!(r.other_actions, 0, "{r:?}");
        assert!(r.table().contains("| load report → evacuation |"));
    }
}
