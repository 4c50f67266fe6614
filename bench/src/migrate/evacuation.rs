//! Parts 1 and 2 of `bench migrate`: how long a hot node takes to be empty, and what each move puts on the
//! wire.
//!
//! A testbed of two nodes (each with a slot per job) gets N small-state jobs running on node-1 (node-2 starts
//! over the threshold, then cools down). Each round publishes the radio load of the node holding the jobs over
//! the threshold and times, on the client's monotonic clock, the moment every job has a `started` event on
//! the other node; then it cools the node down, waits past the cool-down until its warm workers are back,
//! and the next round moves the jobs back. Beside the events the run observes the `node.adopt` requests, the
//! checkpoint stream writes and the record writes (read-only copies through [`Bus::observe_internal`]), so
//! every byte a move sends is attributed to its job. At the end the jobs are told to stop (a file on this
//! machine) and their outputs prove they kept their state through every move.
//!
//! Size: over 700 lines because the part is read as one: the run, the pure analysis of what it saw (tested
//! below), and the three tables that report it.
use super::{num, submit_source, table, verdict, BenchError, Summary};
use futures::{Stream, StreamExt};
use microlambda::bus::{Bus, Observed};
use microlambda::client;
use microlambda::config::Settings;
use microlambda::testbed::Testbed;
use microlambda::wire::{EventKind, JobEvent, JobState, LoadReport};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The evacuated jobs: a small state (a counter, a running sum, the list of worker processes it ran in) in a
/// loop that mostly sleeps, until the stop file exists (or `cap_s` has passed).
pub const WAITER: &str = r#"
import os, time

def main(x):
    deadline = time.time() + x["cap_s"]
    i, acc, pids = 0, 0, [os.getpid()]
    while not os.path.exists(x["stop"]) and time.time() < deadline:
        i += 1
        acc = (acc + i * i) % 1000003
        if os.getpid() != pids[-1]:
            pids.append(os.getpid())
        time.sleep(0.005)
    return {"i": i, "acc": acc, "pids": len(pids)}
"#;

/// Radio loads the benchmark publishes: over any sane threshold, and well under it.
const HOT: f64 = 0.95;
const COOL: f64 = 0.1;
/// How long a round may take before the benchmark gives up.
const ROUND_LIMIT: Duration = Duration::from_secs(60);
/// How long the testbed may take to get its jobs running and its warm workers back.
const SETTLE_LIMIT: Duration = Duration::from_secs(180);

/// The testbed settings of a run with `n` jobs: two nodes with a slot per job, node-2 over the threshold at
/// first, a short cool-down, and no job timeout within the run.
pub fn settings_for(base: &Settings, n: usize) -> Settings {
    let mut s = base.clone();
    s.testbed.nodes = 2;
    s.testbed.placements = 1;
    s.testbed.radio_loads = vec![COOL, HOT];
    s.node.slots = n.max(1);
    s.node.job_timeout_ms = 3_600_000;
    s.placement.cooldown_ms = 300;
    s
}

/// One job's move in one round: client-side times in ms from the radio publish, what the receiving node
/// reported, and what crossed the wire for it between the publish and its `started` on the other node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MoveTrace {
    pub job_id: String,
    /// The `checkpointed` event of the stop-mode checkpoint on the hot node.
    pub stop_ms: Option<f64>,
    /// The `migrated` event.
    pub migrated_at_ms: Option<f64>,
    /// The `started` event on the other node.
    pub started_ms: Option<f64>,
    /// `migrated.ms`: from the checkpoint request on the sender to the job running on the receiver.
    pub migrated_ms: Option<f64>,
    /// `migrated.bytes`: the checkpoint's size.
    pub checkpoint_bytes: Option<u64>,
    /// The stop-mode checkpoint's capture time in the worker (`checkpointed.capture_ms`), its sequence
    /// number, and the checkpoint the job resumed from on the other node.
    pub capture_ms: Option<f64>,
    pub stop_seq: Option<u64>,
    pub resumed_from: Option<u64>,
    /// The `node.adopt` request payload(s).
    pub adopts: usize,
    pub adopt_bytes: Option<usize>,
    /// Checkpoint stream writes (the last one is the stop-mode checkpoint).
    pub persists: usize,
    pub persist_bytes: Option<usize>,
    /// Record writes, and the size of the `moving` record (the one the receiver reads back).
    pub record_writes: usize,
    pub record_bytes: usize,
    pub moving_record_bytes: Option<usize>,
    pub events: usize,
    pub event_bytes: usize,
    pub parked: bool,
}

impl MoveTrace {
    /// The job resumed on the other node from the checkpoint it stopped with.
    pub fn resumed_from_its_stop(&self) -> bool {
        self.stop_seq.is_some() && self.resumed_from == self.stop_seq
    }

    /// Bytes of payload the move sent: adopt, persist, record writes, the record read back, events.
    pub fn total_bytes(&self) -> Option<usize> {
        Some(
            self.adopt_bytes?
                + self.persist_bytes?
                + self.record_bytes
                + self.moving_record_bytes.unwrap_or(0)
                + self.event_bytes,
        )
    }
}

/// One evacuation of every job from `from` to `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    pub from: String,
    pub to: String,
    /// From the radio publish to the last job's `started` on `to`; none when some job never got there.
    pub all_ms: Option<f64>,
    /// The warm workers `to` reported last before the publish.
    pub warm_at_start: Option<usize>,
    /// When placement's evacuate command to `from` was seen, and its payload.
    pub command_ms: Option<f64>,
    pub command_bytes: Option<usize>,
    pub moves: Vec<MoveTrace>,
}

impl Round {
    /// One line per round as it ends.
    pub fn progress_line(&self, number: usize) -> String {
        let warm = self.warm_at_start.map_or("?".into(), |w| w.to_string());
        format!(
            "  round {number}: {} -> {} ({} jobs, {warm} warm workers on {}): stop checkpoints {}–{} ms, all started {} ms",
            self.from,
            self.to,
            self.moves.len(),
            self.to,
            num(self.first(|m| m.stop_ms).unwrap_or(f64::NAN), 1),
            num(self.last(|m| m.stop_ms).unwrap_or(f64::NAN), 1),
            num(self.all_ms.unwrap_or(f64::NAN), 1),
        )
    }

    fn first(&self, f: impl Fn(&MoveTrace) -> Option<f64>) -> Option<f64> {
        self.moves.iter().filter_map(f).min_by(f64::total_cmp)
    }
    fn last(&self, f: impl Fn(&MoveTrace) -> Option<f64>) -> Option<f64> {
        self.moves.iter().filter_map(f).max_by(f64::total_cmp)
    }
}

/// What a run with N jobs measured.
#[derive(Debug, Clone)]
pub struct EvacuationRun {
    pub jobs: usize,
    pub rounds: Vec<Round>,
    /// Jobs whose output and record showed their state kept through every move, and what was wrong with
    /// the others.
    pub state_kept: usize,
    pub problems: Vec<(String, String)>,
    /// Moves and runs the jobs' final records count (rounds × jobs moves when no move fell back to parking).
    pub moves: u32,
    pub runs: u32,
}

/// What the benchmark saw, stamped when it arrived.
#[derive(Debug, Clone)]
pub enum Seen {
    Event { ev: JobEvent, bytes: usize },
    Load(LoadReport),
    Adopt { job_id: String, bytes: usize },
    Command { node: String, bytes: usize },
    CheckpointWrite { job_id: String, bytes: usize },
    RecordWrite { job_id: String, bytes: usize, state: Option<JobState> },
}

#[derive(Debug, Clone)]
pub struct Obs {
    pub at: Instant,
    pub seen: Seen,
}

/// Build the trace of one round from what was seen after the publish at `t0`: per job, everything about it
/// up to its `started` on `to`.
pub fn analyse(log: &[Obs], t0: Instant, from: &str, to: &str, jobs: &[String]) -> Round {
    let ms = |at: Instant| at.saturating_duration_since(t0).as_secs_f64() * 1000.0;
    let mut traces: HashMap<&str, MoveTrace> =
        jobs.iter().map(|j| (j.as_str(), MoveTrace { job_id: j.clone(), ..Default::default() })).collect();
    let mut end: HashMap<&str, Instant> = HashMap::new();
    let (mut command_ms, mut command_bytes) = (None, None);
    for o in log.iter().filter(|o| o.at >= t0) {
        if let Seen::Command { node, bytes } = &o.seen {
            if node == from && command_ms.is_none() {
                (command_ms, command_bytes) = (Some(ms(o.at)), Some(*bytes));
            }
        }
        if let Seen::Event { ev, .. } = &o.seen {
            if matches!(&ev.kind, EventKind::Started { node, .. } if node == to) {
                if let Some(j) = jobs.iter().find(|j| **j == ev.job_id) {
                    end.entry(j.as_str()).or_insert(o.at);
                }
            }
        }
    }
    for o in log.iter().filter(|o| o.at >= t0) {
        let job = match &o.seen {
            Seen::Event { ev, .. } => ev.job_id.as_str(),
            Seen::Adopt { job_id, .. } | Seen::CheckpointWrite { job_id, .. } | Seen::RecordWrite { job_id, .. } => {
                job_id.as_str()
            }
            Seen::Load(_) | Seen::Command { .. } => continue,
        };
        let Some(t) = traces.get_mut(job) else { continue };
        if end.get(job).is_some_and(|e| o.at > *e) {
            continue;
        }
        match &o.seen {
            Seen::Event { ev, bytes } => {
                t.events += 1;
                t.event_bytes += bytes;
                match &ev.kind {
                    EventKind::Checkpointed { node, mode, capture_ms, seq, .. } if node == from && mode == "stop" => {
                        t.stop_ms.get_or_insert(ms(o.at));
                        t.capture_ms = Some(*capture_ms);
                        t.stop_seq = Some(*seq);
                    }
                    EventKind::Migrated { to: n, ms: m, bytes, .. } if n == to => {
                        t.migrated_at_ms.get_or_insert(ms(o.at));
                        t.migrated_ms = Some(*m);
                        t.checkpoint_bytes = Some(*bytes);
                    }
                    EventKind::Started { node, resumed_from } if node == to => {
                        t.started_ms = Some(ms(o.at));
                        t.resumed_from = *resumed_from;
                    }
                    EventKind::Parked { .. } => t.parked = true,
                    _ => {}
                }
            }
            Seen::Adopt { bytes, .. } => {
                t.adopts += 1;
                t.adopt_bytes = Some(*bytes);
            }
            Seen::CheckpointWrite { bytes, .. } => {
                t.persists += 1;
                t.persist_bytes = Some(*bytes);
            }
            Seen::RecordWrite { bytes, state, .. } => {
                t.record_writes += 1;
                t.record_bytes += bytes;
                if *state == Some(JobState::Moving) {
                    t.moving_record_bytes = Some(*bytes);
                }
            }
            Seen::Load(_) | Seen::Command { .. } => {}
        }
    }
    let moves: Vec<MoveTrace> = jobs.iter().filter_map(|j| traces.remove(j.as_str())).collect();
    let all_ms = if moves.iter().all(|m| m.started_ms.is_some()) {
        moves.iter().filter_map(|m| m.started_ms).max_by(f64::total_cmp)
    } else {
        None
    };
    Round { from: from.into(), to: to.into(), all_ms, warm_at_start: None, command_ms, command_bytes, moves }
}

/// Check a finished job's output against its record. The running sum must match the counter (the state is
/// whole). The list of worker processes grows by one at every resume, and only on a resume from the state
/// the job had when it stopped: each of the `moves` adds one (a move resumes from its stop checkpoint, and no
/// later resume goes back before a committed checkpoint), and it cannot exceed the `runs` the record counts
/// (a run taken back from a lost node resumes from its last committed checkpoint, so its own progress, and
/// its process, may drop out of the lineage: that is by design, and still exact).
pub fn check_output(output: &Value, moves: u32, runs: u32) -> Result<(), String> {
    let field = |k: &str| output[k].as_u64().ok_or_else(|| format!("output {output} has no integer {k:?}"));
    let (i, acc, pids) = (field("i")?, field("acc")?, field("pids")?);
    let i128 = u128::from(i);
    let want = (i128 * (i128 + 1) * (2 * i128 + 1) / 6 % 1_000_003) as u64;
    if i == 0 {
        return Err("the loop never ran".into());
    }
    if acc != want {
        return Err(format!("running sum {acc} does not match counter {i} (expected {want}): state corrupted"));
    }
    if pids < u64::from(moves) + 1 {
        return Err(format!("its state went through {pids} worker processes but it moved {moves} times: state lost"));
    }
    if pids > u64::from(runs) {
        return Err(format!("its state went through {pids} worker processes but its record counts {runs} runs"));
    }
    Ok(())
}

/// The benchmark's view of the mesh: events, load reports and the bus's internal observer feed one channel,
/// stamped on arrival.
struct Watch {
    rx: mpsc::UnboundedReceiver<Obs>,
    log: Vec<Obs>,
    feeds: Vec<tokio::task::JoinHandle<()>>,
}

fn feed<T>(
    mut items: impl Stream<Item = T> + Unpin + Send + 'static,
    tx: mpsc::UnboundedSender<Obs>,
    decode: impl Fn(T) -> Option<Seen> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(m) = items.next().await {
            let at = Instant::now();
            if let Some(seen) = decode(m) {
                if tx.send(Obs { at, seen }).is_err() {
                    break;
                }
            }
        }
    })
}

impl Seen {
    /// An internal message the bus's observer decoded.
    fn internal(o: Observed) -> Self {
        match o {
            Observed::Adopt { job_id, bytes } => Seen::Adopt { job_id, bytes },
            Observed::Command { node, bytes } => Seen::Command { node, bytes },
            Observed::CheckpointWrite { job_id, bytes } => Seen::CheckpointWrite { job_id, bytes },
            Observed::RecordWrite { job_id, bytes, state } => Seen::RecordWrite { job_id, bytes, state },
        }
    }
}

impl Watch {
    async fn start(bus: &Bus) -> Result<Self, BenchError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let feeds = vec![
            feed(bus.subscribe_all_events().await?, tx.clone(), |m| {
                let ev = serde_json::from_slice(&m.payload).ok()?;
                Some(Seen::Event { ev, bytes: m.payload.len() })
            }),
            feed(bus.subscribe_loads().await?, tx.clone(), |m| serde_json::from_slice(&m.payload).ok().map(Seen::Load)),
            feed(bus.observe_internal().await?, tx, |o| Some(Seen::internal(o))),
        ];
        Ok(Watch { rx, log: Vec::new(), feeds })
    }

    /// Take what arrives until `done` says so (true) or `limit` passes (false); everything is logged.
    async fn until(&mut self, limit: Duration, mut done: impl FnMut(&Obs) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while let Ok(Some(o)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            let d = done(&o);
            self.log.push(o);
            if d {
                return true;
            }
        }
        false
    }

    /// Wait until every job has a `started` event on `node` seen after `since`.
    async fn all_started(&mut self, jobs: &[String], node: &str, since: Instant, limit: Duration) -> usize {
        let mut started = HashSet::new();
        self.until(limit, |o| {
            if let Seen::Event { ev, .. } = &o.seen {
                if o.at >= since
                    && matches!(&ev.kind, EventKind::Started { node: n, .. } if n == node)
                    && jobs.contains(&ev.job_id)
                {
                    started.insert(ev.job_id.clone());
                }
            }
            started.len() == jobs.len()
        })
        .await;
        started.len()
    }

    /// Wait until `target` reports, after `after`, no jobs and its warm workers back, while `source` reports
    /// all `n` jobs: the mesh is ready for the next round. Warm workers count as back when two reports in a
    /// row show the same number (the pool stopped refilling, whether or not every slot has one: the round
    /// then runs with what there is, and [`Round::warm_at_start`] says so).
    async fn ready(&mut self, target: &str, source: &str, n: usize, after: Instant) -> Result<(), BenchError> {
        let (mut target_ok, mut source_ok) = (false, false);
        let mut last: Option<(usize, usize, usize)> = None;
        let ok = self
            .until(SETTLE_LIMIT, |o| {
                if let Seen::Load(r) = &o.seen {
                    if r.node == target && o.at >= after {
                        let now = (r.jobs_running, r.warm_workers, r.slots);
                        target_ok = r.jobs_running == 0 && last == Some(now);
                        last = Some(now);
                    } else if r.node == source {
                        source_ok = r.jobs_running == n;
                    }
                }
                target_ok && source_ok
            })
            .await;
        if ok {
            return Ok(());
        }
        Err(BenchError::Stalled(format!(
            "{target} not ready within {SETTLE_LIMIT:?} (jobs, warm workers, slots: {last:?}); {source} holds all {n} jobs: {source_ok}"
        )))
    }

    /// The warm workers `node` last reported.
    fn warm_workers(&self, node: &str) -> Option<usize> {
        self.log.iter().rev().find_map(|o| match &o.seen {
            Seen::Load(r) if r.node == node => Some(r.warm_workers),
            _ => None,
        })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        for f in &self.feeds {
            f.abort();
        }
    }
}

/// Run part 1 and 2 with `n` jobs and `rounds` evacuations on a fresh testbed.
pub async fn run(base: &Settings, exe: &Path, n: usize, rounds: usize) -> Result<EvacuationRun, BenchError> {
    let s = settings_for(base, n);
    let tb = Testbed::start(&s, None, exe)?;
    let bus = tb.connect(&s.client, "ops", "bench-migrate").await?;
    tb.wait_ready(&bus, Duration::from_secs(60)).await?;
    let (a, b) = (tb.node_ids[0].clone(), tb.node_ids[1].clone());
    let mut w = Watch::start(&bus).await?;
    let dir = super::ScratchDir::new()?;
    let stop = dir.join(&format!("stop-{n}"));
    let cooldown = Duration::from_millis(s.placement.cooldown_ms);
    // Past the cool-down and placement's next tick.
    let settle = cooldown + Duration::from_millis(300);
    let ids: Vec<String> = (0..n).map(|i| format!("evac{n}-{i:03}")).collect();
    let input = json!({"stop": stop.display().to_string(), "cap_s": 3600});

    let since = Instant::now();
    for id in &ids {
        submit_source(&bus, id, WAITER, input.clone(), None).await?;
    }
    let got = w.all_started(&ids, &a, since, SETTLE_LIMIT).await;
    if got < n {
        return Err(BenchError::Stalled(format!("only {got} of {n} jobs started on {a}")));
    }
    bus.publish_radio(&b, COOL).await?;
    w.ready(&b, &a, n, Instant::now() + settle).await?;

    let mut out = Vec::with_capacity(rounds);
    let (mut from, mut to) = (a, b);
    for r in 0..rounds {
        let first = w.log.len();
        let warm = w.warm_workers(&to);
        let t0 = Instant::now();
        bus.publish_radio(&from, HOT).await?;
        let got = w.all_started(&ids, &to, t0, ROUND_LIMIT).await;
        let round = Round { warm_at_start: warm, ..analyse(&w.log[first..], t0, &from, &to, &ids) };
        if got < n {
            return Err(BenchError::Stalled(format!(
                "round {}: {got} of {n} jobs running on {to} {ROUND_LIMIT:?} after {from}'s radio load rose",
                r + 1
            )));
        }
        println!("{}", round.progress_line(r + 1));
        out.push(round);
        bus.publish_radio(&from, COOL).await?;
        w.ready(&from, &to, n, Instant::now() + settle).await?;
        std::mem::swap(&mut from, &mut to);
    }

    // Let the jobs finish and check what they carried through the moves.
    std::fs::write(&stop, b"").map_err(|source| BenchError::Io { what: "cannot write", path: stop.clone(), source })?;
    let mut done: HashMap<String, Value> = HashMap::new();
    let mut failed: Option<(String, String)> = None;
    w.until(Duration::from_secs(60), |o| {
        if let Seen::Event { ev, .. } = &o.seen {
            match &ev.kind {
                EventKind::Completed { output, .. } if ids.contains(&ev.job_id) => {
                    done.insert(ev.job_id.clone(), output.clone());
                }
                EventKind::Failed { error, .. } if ids.contains(&ev.job_id) => {
                    failed.get_or_insert((ev.job_id.clone(), format!("failed: {} ({})", error.message, error.kind)));
                }
                _ => {}
            }
        }
        failed.is_some() || done.len() == n
    })
    .await;
    if let Some((job_id, problem)) = failed {
        return Err(BenchError::Job { job_id, problem });
    }
    let (mut state_kept, mut problems, mut moves, mut runs) = (0, Vec::new(), 0, 0);
    for id in &ids {
        let Some(output) = done.get(id) else {
            problems.push((id.clone(), "did not complete after the stop file".into()));
            continue;
        };
        let rec = client::status(&bus, id).await?;
        (moves, runs) = (moves + rec.moves, runs + rec.slices);
        match check_output(output, rec.moves, rec.slices) {
            Ok(()) => state_kept += 1,
            Err(p) => problems.push((id.clone(), p)),
        }
    }
    drop(w);
    drop(tb);
    Ok(EvacuationRun { jobs: n, rounds: out, state_kept, problems, moves, runs })
}

impl EvacuationRun {
    pub fn all_ms(&self) -> Summary {
        self.per_round(|r| r.all_ms)
    }

    /// Rounds whose receiver had a warm worker for every job (`warm`), or not.
    fn all_ms_when(&self, warm: bool) -> Summary {
        self.per_round(|r| r.all_ms.filter(|_| r.warm_at_start.is_some_and(|w| w >= self.jobs) == warm))
    }

    fn per_move(&self, f: impl Fn(&MoveTrace) -> Option<f64>) -> Summary {
        Summary::of(&self.rounds.iter().flat_map(|r| r.moves.iter().filter_map(&f)).collect::<Vec<_>>())
    }

    fn per_round(&self, f: impl Fn(&Round) -> Option<f64>) -> Summary {
        Summary::of(&self.rounds.iter().filter_map(f).collect::<Vec<_>>())
    }

    fn parked(&self) -> usize {
        self.rounds.iter().flat_map(|r| &r.moves).filter(|m| m.parked).count()
    }

    fn resumed_from_stop(&self) -> usize {
        self.rounds.iter().flat_map(|r| &r.moves).filter(|m| m.resumed_from_its_stop()).count()
    }

    /// One line as the run ends (the tables come when every job count is done).
    pub fn progress_line(&self) -> String {
        let s = self.all_ms();
        format!(
            "evacuation, {} jobs: {} rounds, all running elsewhere p50 {} ms, max {} ms; state kept by {} of {} jobs",
            self.jobs,
            self.rounds.len(),
            num(s.p50, 1),
            num(s.max, 1),
            self.state_kept,
            self.jobs
        )
    }
}

/// Part 1's table: one row per job count.
pub fn latency_table(runs: &[EvacuationRun]) -> String {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let all = r.all_ms();
            let mig = r.per_move(|m| m.migrated_ms);
            let target =
                if r.jobs == 10 { format!("p99 < 100 ms: {}", verdict(all.p99 < 100.0)) } else { "—".into() };
            let (warm, cold) = (r.all_ms_when(true), r.all_ms_when(false));
            vec![
                r.jobs.to_string(),
                r.rounds.len().to_string(),
                num(all.p50, 1),
                num(all.p99, 1),
                num(all.max, 1),
                format!("{}: {}", warm.n, num(warm.p50, 1)),
                format!("{}: {}", cold.n, num(cold.p50, 1)),
                num(mig.p50, 1),
                num(mig.p99, 1),
                format!("{}/{}", r.resumed_from_stop(), r.rounds.len() * r.jobs),
                r.parked().to_string(),
                format!("{}/{}", r.state_kept, r.jobs),
                target,
            ]
        })
        .collect();
    table(
        &[
            "jobs",
            "rounds",
            "all running elsewhere p50 ms",
            "p99 ms",
            "max ms",
            "warm receiver: rounds: p50 ms",
            "cold receiver: rounds: p50 ms",
            "`migrated.ms` p50",
            "`migrated.ms` p99",
            "resumed from its stop checkpoint",
            "parked",
            "state kept",
            "target",
        ],
        &rows,
    )
}

/// Where a round's time goes: per round, the first and last stop-mode checkpoint, the last `migrated` and
/// the last `started`; per job, publish to its stop checkpoint and from there to its start elsewhere.
pub fn breakdown_table(runs: &[EvacuationRun]) -> String {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.jobs.to_string(),
                num(r.per_round(|x| x.warm_at_start.map(|w| w as f64)).p50, 0),
                num(r.per_round(|x| x.command_ms).p50, 1),
                num(r.per_round(|x| x.first(|m| m.stop_ms)).p50, 1),
                num(r.per_round(|x| x.last(|m| m.stop_ms)).p50, 1),
                num(r.per_round(|x| x.last(|m| m.migrated_at_ms)).p50, 1),
                num(r.per_round(|x| x.all_ms).p50, 1),
                num(r.per_move(|m| m.stop_ms).p50, 1),
                num(r.per_move(|m| m.capture_ms).p50, 2),
                num(r.per_move(|m| Some(m.started_ms? - m.stop_ms?)).p50, 1),
            ]
        })
        .collect();
    table(
        &[
            "jobs",
            "receiver's warm workers",
            "evacuate command",
            "first stop checkpoint",
            "last stop checkpoint",
            "last `migrated`",
            "last `started`",
            "per job: to its stop checkpoint",
            "per job: capture in the worker",
            "per job: stop checkpoint to `started`",
        ],
        &rows,
    )
}

/// Part 2's table: payload bytes per move (medians over every move of every round).
pub fn bytes_table(runs: &[EvacuationRun]) -> String {
    let f = |x: usize| Some(x as f64);
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let over = r.per_move(|m| Some(m.adopt_bytes? as f64 - m.checkpoint_bytes? as f64));
            vec![
                r.jobs.to_string(),
                r.per_move(|m| m.started_ms).n.to_string(),
                num(r.per_move(|m| m.checkpoint_bytes.map(|b| b as f64)).p50, 0),
                num(r.per_move(|m| m.adopt_bytes.and_then(f)).p50, 0),
                format!("{} / {}", num(over.p50, 0), num(over.max, 0)),
                format!(
                    "{} ({})",
                    num(r.per_move(|m| m.persist_bytes.and_then(f)).p50, 0),
                    num(r.per_move(|m| f(m.persists)).p50, 0)
                ),
                format!(
                    "{} ({} B)",
                    num(r.per_move(|m| f(m.record_writes)).p50, 0),
                    num(r.per_move(|m| f(m.record_bytes)).p50, 0)
                ),
                num(r.per_move(|m| m.moving_record_bytes.and_then(f)).p50, 0),
                format!(
                    "{} ({} B)",
                    num(r.per_move(|m| f(m.events)).p50, 0),
                    num(r.per_move(|m| f(m.event_bytes)).p50, 0)
                ),
                num(r.per_move(|m| m.total_bytes().and_then(f)).p50, 0),
                num(r.per_round(|x| x.command_bytes.and_then(f)).p50, 0),
                format!("{} / {}", verdict(over.p50 <= 1024.0), verdict(over.max <= 1024.0)),
            ]
        })
        .collect();
    table(
        &[
            "jobs",
            "moves",
            "checkpoint B",
            "`node.adopt` payload B",
            "overhead B p50 / max",
            "JetStream persist B (writes)",
            "record writes (B)",
            "record read back B",
            "events (B)",
            "total B",
            "evacuate command B (per round)",
            "target ≤ 1 KB p50 / max",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn ev(job: &str, kind: EventKind) -> Seen {
        Seen::Event { ev: JobEvent { job_id: job.into(), ts_ms: 0, kind }, bytes: 100 }
    }

    #[test]
    fn a_round_is_traced_per_job_up_to_its_start_elsewhere() {
        let t0 = Instant::now();
        let jobs = vec!["j1".to_string(), "j2".to_string()];
        let stop = |j: &str| {
            ev(
                j,
                EventKind::Checkpointed {
                    node: "a".into(),
                    seq: 3,
                    bytes: 400,
                    capture_ms: 0.5,
                    mode: "stop".into(),
                    ttsp_ms: 0.1,
                    waited: None,
                },
            )
        };
        let migrated = |j: &str| ev(j, EventKind::Migrated { from: "a".into(), to: "b".into(), ms: 9.5, bytes: 400 });
        let started = |j: &str| ev(j, EventKind::Started { node: "b".into(), resumed_from: Some(3) });
        let log = vec![
            // Before the publish: ignored.
            Obs { at: t0 - Duration::from_millis(5), seen: Seen::CheckpointWrite { job_id: "j1".into(), bytes: 1 } },
            Obs { at: at(t0, 1), seen: Seen::Command { node: "a".into(), bytes: 120 } },
            Obs { at: at(t0, 2), seen: Seen::CheckpointWrite { job_id: "j1".into(), bytes: 420 } },
            Obs { at: at(t0, 3), seen: stop("j1") },
            Obs {
                at: at(t0, 3),
                seen: Seen::RecordWrite { job_id: "j1".into(), bytes: 600, state: Some(JobState::Moving) },
            },
            Obs { at: at(t0, 4), seen: Seen::Adopt { job_id: "j1".into(), bytes: 500 } },
            Obs {
                at: at(t0, 6),
                seen: Seen::RecordWrite { job_id: "j1".into(), bytes: 580, state: Some(JobState::Placed) },
            },
            Obs { at: at(t0, 7), seen: migrated("j1") },
            Obs { at: at(t0, 8), seen: started("j1") },
            // After its start: not part of the move.
            Obs { at: at(t0, 9), seen: Seen::CheckpointWrite { job_id: "j1".into(), bytes: 999 } },
            Obs { at: at(t0, 12), seen: stop("j2") },
            Obs { at: at(t0, 20), seen: started("j2") },
        ];
        let r = analyse(&log, t0, "a", "b", &jobs);
        assert_eq!(r.all_ms, Some(20.0));
        assert_eq!((r.command_ms, r.command_bytes), (Some(1.0), Some(120)));
        let j1 = &r.moves[0];
        assert_eq!(j1.capture_ms, Some(0.5));
        assert!(j1.resumed_from_its_stop());
        assert!(r.moves[1].resumed_from_its_stop());
        assert_eq!((j1.stop_ms, j1.migrated_at_ms, j1.started_ms), (Some(3.0), Some(7.0), Some(8.0)));
        assert_eq!((j1.migrated_ms, j1.checkpoint_bytes), (Some(9.5), Some(400)));
        assert_eq!((j1.adopts, j1.adopt_bytes, j1.persists, j1.persist_bytes), (1, Some(500), 1, Some(420)));
        assert_eq!((j1.record_writes, j1.record_bytes, j1.moving_record_bytes), (2, 1180, Some(600)));
        assert_eq!((j1.events, j1.event_bytes), (3, 300));
        assert_eq!(j1.total_bytes(), Some(500 + 420 + 1180 + 600 + 300));
        assert_eq!(r.moves[1].adopt_bytes, None);
        assert_eq!(r.moves[1].total_bytes(), None);
        assert_eq!(r.first(|m| m.stop_ms), Some(3.0));
        assert_eq!(r.last(|m| m.stop_ms), Some(12.0));
        // A job that never started elsewhere leaves the round incomplete.
        let r = analyse(&log[..9], t0, "a", "b", &jobs);
        assert_eq!(r.all_ms, None);
    }

    #[test]
    fn outputs_show_whether_the_state_survived() {
        // 1² + 2² + 3² = 14.
        assert_eq!(check_output(&json!({"i": 3, "acc": 14, "pids": 4}), 3, 4), Ok(()));
        // A run taken back from a lost node may drop out of the lineage.
        assert_eq!(check_output(&json!({"i": 3, "acc": 14, "pids": 4}), 3, 5), Ok(()));
        let big = 1_000_000u64;
        let acc = (0..=big).map(|k| k * k % 1_000_003).sum::<u64>() % 1_000_003;
        assert_eq!(check_output(&json!({"i": big, "acc": acc, "pids": 1}), 0, 1), Ok(()));
        assert!(check_output(&json!({"i": 3, "acc": 13, "pids": 4}), 3, 4).unwrap_err().contains("corrupted"));
        assert!(check_output(&json!({"i": 3, "acc": 14, "pids": 1}), 3, 4).unwrap_err().contains("lost"));
        assert!(check_output(&json!({"i": 3, "acc": 14, "pids": 5}), 3, 4).unwrap_err().contains("counts 4 runs"));
        assert!(check_output(&json!({"i": 0, "acc": 0, "pids": 1}), 0, 1).is_err());
        assert!(check_output(&json!({"oops": 1}), 0, 1).is_err());
    }
}
