//! `microlambda-bench checkpoint`: the checkpoint engine measured side by side with its references, in one run.
//!
//! For each benchmark job (small state; ~1 MB of state) it runs the job in a warm worker, takes snapshot-and-
//! continue checkpoints while it runs (time to safe point, capture time from request to sealed bytes, the job's
//! pause, size), then restores the last checkpoint into warm workers (numpy already imported) and times the
//! restore. The same run measures `pickle.dumps` of the job's live variables at the same point (the lower bound)
//! and pyteleport 0.3.4 (where it works) through `python/bench/baselines.py`. With `--libs`, the paper's three
//! workloads on their real libraries (`python/bench/libs/`: ride on osmnx/networkx, stress on NeuroKit2 and
//! scikit-learn, face on face_recognition/PIL) are measured too; a workload whose libraries are not installed is
//! reported as skipped.
use anyhow::Context;
use microlambda::stats::percentile;
use microlambda::table::{self, Align};
use microlambda::worker::protocol::{CheckpointMode, FromWorker, ModuleSpec, ToWorker};
use microlambda::worker::{WorkerOptions, WorkerProcess};
use std::path::Path;
use std::time::Duration;

const SMALL: &str = include_str!("../../python/bench/small.py");
const BIG: &str = include_str!("../../python/bench/big.py");
const BASELINES: &str = include_str!("../../python/bench/baselines.py");
const WAITING: &str = include_str!("../../python/bench/waiting.py");
const WAITING_RECURSIVE: &str = include_str!("../../python/bench/waiting_recursive.py");
const WAITING_GENERATOR: &str = include_str!("../../python/bench/waiting_generator.py");

/// The jobs that spend their time where every request must wait for a call from C: (module, source, input,
/// workload).
const WAITING_JOBS: [(&str, &str, &str, &str); 3] = [
    (
        "waiting",
        WAITING,
        r#"{"n": 200000, "rounds": 12}"#,
        "Python under a C caller (min(key=)), a request always waiting",
    ),
    (
        "waiting_recursive",
        WAITING_RECURSIVE,
        r#"{"n": 450, "rounds": 10}"#,
        "Recursion through C (an lru_cache'd function), a request always waiting",
    ),
    (
        "waiting_generator",
        WAITING_GENERATOR,
        r#"{"n": 20000, "rounds": 10}"#,
        "A generator driven by zip() (C), a request always waiting",
    ),
];
/// The real-library workloads: name, file, source.
const LIBS: [(&str, &str, &str); 3] = [
    ("ride (osmnx, networkx)", "ride.py", include_str!("../../python/bench/libs/ride.py")),
    ("stress (NeuroKit2, scikit-learn)", "stress.py", include_str!("../../python/bench/libs/stress.py")),
    ("face (face_recognition, PIL)", "face.py", include_str!("../../python/bench/libs/face.py")),
];

/// One row of the table.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub workload: String,
    pub method: String,
    pub ttsp_ms: Option<f64>,
    pub ttsp_p99_ms: Option<f64>,
    pub capture_ms: Option<f64>,
    pub pause_ms: Option<f64>,
    pub size: Option<u64>,
    pub restore_ms: Option<f64>,
    pub note: String,
    /// `pickle.dumps` of the live variables at the instants of the checkpoints (ms, median), when the worker
    /// measured it (`ML_BASELINE`).
    pub baseline_ms: Option<f64>,
}

async fn recv_until<F: FnMut(&FromWorker) -> bool>(w: &mut WorkerProcess, mut f: F) -> anyhow::Result<FromWorker> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(30), w.recv())
            .await
            .map_err(|_| anyhow::anyhow!("worker timed out"))?;
        let Some(m) = m else {
            anyhow::bail!("worker exited");
        };
        if let FromWorker::Failed { error, .. } = &m {
            anyhow::bail!("job failed: {}", error.message);
        }
        if f(&m) {
            return Ok(m);
        }
    }
}

/// A worker running `module`'s `entry` on `input` (started, the job's first instruction run), with `preload`
/// imported first.
pub async fn running_worker(
    module: &ModuleSpec,
    entry: &str,
    input: &str,
    preload: &[&str],
) -> anyhow::Result<WorkerProcess> {
    let mut opts = WorkerOptions::new(b"bench-key".to_vec());
    opts.exe = crate::microlambda_exe();
    opts.preload = preload.iter().map(|m| m.to_string()).collect();
    let mut w = WorkerProcess::spawn(&opts).await?;
    w.send(&ToWorker::Run {
        job_id: "bench".into(),
        module: module.clone(),
        entry: entry.into(),
        input_json: input.into(),
        next_seq: 0,
    })
    .await?;
    recv_until(&mut w, |m| matches!(m, FromWorker::Started { .. })).await?;
    Ok(w)
}

/// What a series of snapshot-and-continue checkpoints of one running job measured, one entry per checkpoint
/// taken (ms, bytes).
#[derive(Debug, Clone, Default)]
pub struct Taken {
    pub ttsp_ms: Vec<f64>,
    pub capture_ms: Vec<f64>,
    pub pause_ms: Vec<f64>,
    pub sizes: Vec<f64>,
    /// `pickle.dumps` of the live variables at the same instant (under `ML_BASELINE`).
    pub baseline_ms: Vec<f64>,
    /// Why requests waited (the reason's first 90 characters) and how often.
    pub waits: std::collections::BTreeMap<String, usize>,
    /// Per checkpoint taken (as `capture_ms`): whether the request was answered at once, with no wait (the job
    /// was in Python code at an instant that can be resumed).
    pub at_once: Vec<bool>,
    /// The requests not answered with a checkpoint, with the reason.
    pub not_taken: Vec<String>,
    /// The last checkpoint's envelope.
    pub last: Vec<u8>,
}

impl Taken {
    /// The capture times (request to sealed bytes) of the requests answered at once: the job was in Python code
    /// at an instant that can be resumed (the case of the paper's checkpoint-time target).
    pub fn captures_at_once(&self) -> Vec<f64> {
        self.capture_ms.iter().zip(&self.at_once).filter(|(_, a)| **a).map(|(c, _)| *c).collect()
    }
}

/// `rounds` continue-mode checkpoints of the job running in `w`, each after the pause `gap(seq)` (from 1).
pub async fn take_checkpoints(
    w: &mut WorkerProcess,
    rounds: usize,
    mut gap: impl FnMut(u64) -> Duration,
) -> anyhow::Result<Taken> {
    let mut t = Taken::default();
    for seq in 1..=rounds as u64 {
        tokio::time::sleep(gap(seq)).await;
        w.send(&ToWorker::Checkpoint { seq, mode: CheckpointMode::Continue, deadline_ms: 2000 }).await?;
        match recv_until(w, |m| matches!(m, FromWorker::Checkpointed { .. } | FromWorker::CheckpointFailed { .. }))
            .await?
        {
            FromWorker::Checkpointed { envelope, stats, .. } => {
                t.ttsp_ms.push(stats.trigger_us as f64 / 1e3);
                if let Some(why) = &stats.waited_reason {
                    *t.waits.entry(why.chars().take(90).collect()).or_default() += 1;
                }
                t.at_once.push(stats.waited_reason.is_none());
                t.capture_ms.push(stats.capture_us as f64 / 1e3);
                t.pause_ms.push(stats.pause_us as f64 / 1e3);
                t.baseline_ms.extend(stats.baseline_us.map(|b| b as f64 / 1e3));
                t.sizes.push(envelope.len() as f64);
                t.last = envelope;
            }
            FromWorker::CheckpointFailed { error, .. } => {
                t.not_taken.push(format!("{:?}: {}", error.kind, error.message.chars().take(120).collect::<String>()))
            }
            _ => unreachable!(),
        }
    }
    Ok(t)
}

/// Measure our engine on one job: `rounds` continue-mode checkpoints, then `rounds` restores.
/// `restores`: also time restores of the last checkpoint (cold for library workloads: seconds each).
async fn measure_ours(
    name: &str,
    module: &ModuleSpec,
    rounds: usize,
    gap: Duration,
    restores: bool,
) -> anyhow::Result<Row> {
    const INPUT: &str = r#"{"iters": 1000000000}"#;
    let mut w = running_worker(module, "main", INPUT, &["numpy"]).await?;
    // The first request after a pause of its own: the job is under way.
    let first = Duration::from_millis(200);
    let taken = take_checkpoints(&mut w, rounds, |seq| if seq == 1 { first } else { gap }).await?;
    w.kill().await;
    let Taken {
        ttsp_ms: ttsp,
        capture_ms: cap,
        pause_ms: pause,
        sizes,
        baseline_ms: baseline,
        waits,
        not_taken,
        last,
        ..
    } = taken;
    if last.is_empty() {
        anyhow::bail!("{name}: no checkpoint taken in {rounds} requests: {}", not_taken.join("; "));
    }
    let mut opts = WorkerOptions::new(b"bench-key".to_vec());
    opts.exe = crate::microlambda_exe();
    opts.preload = vec!["numpy".into()];
    let mut restore_ms = Vec::new();
    for _ in 0..if restores { rounds.min(10) } else { 0 } {
        let mut r = WorkerProcess::spawn(&opts).await?;
        let checkpoint = last.clone();
        let input_json = Some(INPUT.into());
        r.send(&ToWorker::Restore { job_id: "bench".into(), module: module.clone(), checkpoint, input_json }).await?;
        if let FromWorker::Restored { restore_us, .. } =
            recv_until(&mut r, |m| matches!(m, FromWorker::Restored { .. })).await?
        {
            restore_ms.push(restore_us as f64 / 1e3);
        }
        r.kill().await;
    }
    let cap90 = percentile(&cap, 0.9);
    let mut most_waited =
        waits.iter().max_by_key(|(_, n)| **n).map(|(why, n)| format!("; waited {n}x: {why}")).unwrap_or_default();
    if let Some(last) = not_taken.last() {
        most_waited += &format!("; {} of {rounds} not taken (last: {last})", not_taken.len());
    }
    Ok(Row {
        workload: name.into(),
        method: "microlambda".into(),
        ttsp_ms: percentile(&ttsp, 0.5),
        ttsp_p99_ms: percentile(&ttsp, 0.99),
        capture_ms: percentile(&cap, 0.5),
        pause_ms: percentile(&pause, 0.5),
        size: percentile(&sizes, 0.5).map(|s| s as u64),
        restore_ms: percentile(&restore_ms, 0.5),
        note: format!("p90 capture {:.3} ms; restore into a warm worker{}", cap90.unwrap_or(0.0), most_waited),
        baseline_ms: percentile(&baseline, 0.5),
    })
}

/// The row of `pickle.dumps` of the live variables, from `measured` (a run of the same schedule under
/// `ML_BASELINE`), beside `ours`.
fn same_schedule_baseline(ours: &Row, measured: &Row) -> Option<Row> {
    let b = measured.baseline_ms?;
    let pause = ours.pause_ms?;
    Some(Row {
        workload: String::new(),
        method: "pickle.dumps (lower bound)".into(),
        capture_ms: Some(b),
        pause_ms: Some(b),
        note: format!(
            "the live variables (plain pickle, or cloudpickle where it cannot) at the instants of a run of the \
             same schedule; our pause p50 is {:.2}x it",
            pause / b
        ),
        ..Row::default()
    })
}

/// One run of the waiting job: its run time, and with `pending` a checkpoint request outstanding all along (a new
/// one as soon as the last is answered): (run ms, time to safe point and pause of each checkpoint taken).
async fn run_waiting(module: &ModuleSpec, input: &str, mut pending: bool) -> anyhow::Result<(f64, Vec<(f64, f64)>)> {
    let mut opts = WorkerOptions::new(b"bench-key".to_vec());
    opts.exe = crate::microlambda_exe();
    let mut w = WorkerProcess::spawn(&opts).await?;
    let run = ToWorker::Run {
        job_id: "bench".into(),
        module: module.clone(),
        entry: "main".into(),
        input_json: input.into(),
        next_seq: 0,
    };
    w.send(&run).await?;
    recv_until(&mut w, |m| matches!(m, FromWorker::Started { .. })).await?;
    let mut taken = Vec::new();
    let mut seq = 0;
    let run_us = loop {
        if pending {
            seq += 1;
            // A worker that has just answered and ended cannot take the request; its answer is still to be read.
            let request = ToWorker::Checkpoint { seq, mode: CheckpointMode::Continue, deadline_ms: 60_000 };
            if w.send(&request).await.is_err() {
                pending = false;
            }
        }
        let done = |m: &FromWorker| {
            matches!(m, FromWorker::Completed { .. } | FromWorker::Failed { .. })
                || (pending && matches!(m, FromWorker::Checkpointed { .. } | FromWorker::CheckpointFailed { .. }))
        };
        match recv_until(&mut w, done).await? {
            FromWorker::Completed { run_us, .. } => break run_us,
            FromWorker::Failed { error, .. } => anyhow::bail!("the waiting job failed: {}", error.message),
            FromWorker::Checkpointed { stats, .. } => {
                taken.push((stats.trigger_us as f64 / 1e3, stats.pause_us as f64 / 1e3))
            }
            _ => {}
        }
    };
    w.kill().await;
    Ok((run_us as f64 / 1e3, taken))
}

/// How fast a job runs while a checkpoint request waits for it: each job of [`WAITING_JOBS`] spends its time in
/// Python called from C that cannot be resumed (`min(key=)`'s callback; recursion through `lru_cache`'s wrapper;
/// a generator `zip` drives), so every request waits for a call to return. Runs without requests and runs with one always outstanding
/// alternate; the ratio of their medians is the job's speed while waited for.
async fn measure_waiting(reps: usize, dir: &Path) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (name, source, input, workload) in WAITING_JOBS {
        let file = dir.join(format!("{name}.py"));
        std::fs::write(&file, source)?;
        let module =
            ModuleSpec { module_name: name.into(), filename: file.display().to_string(), source: source.into() };
        let (mut plain, mut waited, mut ttsp, mut pause) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..reps {
            plain.push(run_waiting(&module, input, false).await.with_context(|| format!("{name}, no request"))?.0);
            let (ms, taken) = run_waiting(&module, input, true).await.with_context(|| format!("{name}, waited for"))?;
            waited.push(ms);
            ttsp.extend(taken.iter().map(|t| t.0));
            pause.extend(taken.iter().map(|t| t.1));
        }
        let (p, w) = (percentile(&plain, 0.5).unwrap_or(0.0), percentile(&waited, 0.5).unwrap_or(f64::INFINITY));
        rows.push(Row {
            workload: workload.into(),
            method: "microlambda".into(),
            ttsp_ms: percentile(&ttsp, 0.5),
            ttsp_p99_ms: percentile(&ttsp, 0.99),
            pause_ms: percentile(&pause, 0.5),
            note: format!(
                "runs at {:.2}x its own speed while waited for (median {w:.0} ms against {p:.0} ms with no \
                 request, {reps} runs each, {} checkpoints taken, each as a call returned)",
                p / w,
                ttsp.len()
            ),
            ..Row::default()
        });
    }
    Ok(rows)
}

/// The real-library workloads: each measured as above (restores import its libraries: cold), or skipped with the
/// reason when its libraries or data are not here.
async fn measure_libs(rounds: usize, python: &Path, dir: &Path, data: &Path) -> anyhow::Result<Vec<Row>> {
    // The workloads read `data/` beside their file (workers get a cleared environment, so not a variable).
    let link = dir.join("data");
    if !link.exists() {
        std::os::unix::fs::symlink(data, &link)?;
    }
    let mut rows = Vec::new();
    for (name, file, src) in LIBS {
        let path = dir.join(file);
        std::fs::write(&path, src)?;
        let probe = std::process::Command::new(python)
            .args(["-c", &format!("import runpy; runpy.run_path({:?})", path.display().to_string())])
            .output()?;
        if !probe.status.success() {
            let why = String::from_utf8_lossy(&probe.stderr).lines().last().unwrap_or_default().to_string();
            rows.push(Row { workload: name.into(), method: "skipped".into(), note: why, ..Row::default() });
            continue;
        }
        let module = ModuleSpec {
            module_name: format!("bench_{}", file.trim_end_matches(".py")),
            filename: path.display().to_string(),
            source: src.to_string(),
        };
        let mut row = measure_ours(name, &module, rounds, Duration::from_millis(150), true).await.context(name)?;
        row.note = row.note.replace("restore into a warm worker", "restore cold (imports the libraries)");
        // The lower bound: a second run of the same schedule whose captures also time pickle.dumps of the same
        // live variables (ML_BASELINE; the workers' environment keeps the runtime's diagnostics). Not in the
        // first run: the baseline's own pickling, inside the pause, leaves the allocator and caches colder and
        // slowed the capture that shares the pause by up to 2x.
        std::env::set_var("ML_BASELINE", "1");
        let with_baseline =
            measure_ours(name, &module, rounds, Duration::from_millis(150), false).await.context("ML_BASELINE");
        std::env::remove_var("ML_BASELINE");
        let lower = same_schedule_baseline(&row, &with_baseline?);
        rows.push(row);
        rows.extend(lower);
    }
    Ok(rows)
}

fn baselines(python: &Path, dir: &Path, job: &Path, reps: usize) -> anyhow::Result<(Row, Row)> {
    let script = dir.join("baselines.py");
    std::fs::write(&script, BASELINES)?;
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(job)
        .arg("1000")
        .arg(reps.to_string())
        .env("PYTHONHASHSEED", "0")
        .output()?;
    if !out.status.success() {
        anyhow::bail!("baselines failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let row = |method: &str, o: &serde_json::Value, note: &str| Row {
        workload: String::new(),
        method: method.into(),
        capture_ms: o["capture_ms"].as_f64(),
        pause_ms: o["capture_ms"].as_f64(),
        size: o["size"].as_u64(),
        restore_ms: o["restore_ms"].as_f64(),
        note: o["error"].as_str().map(|e| format!("fails: {e}")).unwrap_or_else(|| note.into()),
        ..Row::default()
    };
    Ok((
        row("pickle.dumps (lower bound)", &v["pickle"], "live variables at the same point; no restore"),
        row("pyteleport 0.3.4", &v["pyteleport"], "restore = `python snap.pyc`, a fresh process"),
    ))
}

/// Run the whole benchmark and return the table rows; `libs`: also the real-library workloads, with the data
/// from `data` (`../shared/data` beside the checkout).
pub async fn checkpoint(rounds: usize, python: &Path, libs: Option<&Path>) -> anyhow::Result<Vec<Row>> {
    let dir = crate::tempfile_dir()?;
    let mut rows = Vec::new();
    for (name, src) in [("small state", SMALL), ("1 MiB array + 1000-entry dict", BIG)] {
        let file = dir.join(if src == SMALL { "small.py" } else { "big.py" });
        std::fs::write(&file, src)?;
        let module = ModuleSpec {
            module_name: file.file_stem().unwrap().to_string_lossy().into_owned(),
            filename: file.display().to_string(),
            source: src.to_string(),
        };
        let mut ours = measure_ours(name, &module, rounds, Duration::from_millis(15), true).await.context(name)?;
        let (mut p, mut t) = baselines(python, &dir, &file, 5)?;
        p.workload = name.into();
        t.workload = name.into();
        if let (Some(c), Some(pc)) = (ours.capture_ms, p.capture_ms) {
            ours.note = format!("{}; capture = {:.2}x pickle + {:.3} ms", ours.note, c / pc.max(1e-9), c - pc);
        }
        rows.extend([ours, p, t]);
    }
    rows.extend(measure_waiting(rounds.clamp(3, 7), &dir).await?);
    if let Some(data) = libs {
        rows.extend(measure_libs(rounds, python, &dir, data).await?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rows)
}

/// The table as Markdown.
pub fn markdown(rows: &[Row]) -> String {
    let f = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "—".into());
    let head = [
        "workload",
        "method",
        "TTSP ms (p50)",
        "TTSP ms (p99)",
        "capture ms (p50)",
        "pause ms (p50)",
        "size bytes",
        "restore ms (p50)",
        "note",
    ]
    .map(|h| (h, Align::Left));
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.workload.clone(),
                r.method.clone(),
                f(r.ttsp_ms),
                f(r.ttsp_p99_ms),
                f(r.capture_ms),
                f(r.pause_ms),
                r.size.map(|x| x.to_string()).unwrap_or_else(|| "—".into()),
                f(r.restore_ms),
                r.note.clone(),
            ]
        })
        .collect();
    table::markdown(&head, &rows)
}
