//! `microlambda-bench restore`: a restore of a library-heavy checkpoint (a job that uses scikit-learn), through a
//! node's worker pool as the job actor asks for one, forked from the base zygote (which lacks the libraries: the
//! child imports them) against forked from a set zygote (which has the checkpoint's library packages imported).
//!
//! Each restore is timed from `WorkerPool::acquire_restore` (the checkpoint opened and verified, a worker taken
//! or forked) to the worker's `Restored` (its state rebuilt); the worker's own `restore_us` is reported beside it.
//! The two pools are the node's: one with `zygote_sets = 0`, one with sets on, whose set zygote is started by a
//! first restore (as on a node) and waited for before the timed rounds; and a third, another node's, whose set
//! zygote was started from what the second pool told (`WorkerPool::prewarm` of its `WarmHint`, as
//! `node.warm.<node>` carries it), before any restore through it. Rounds alternate between the three.
use microlambda::actors::pool::{WorkerPool, Zygotes};
use microlambda::checkpoint::Envelope;
use microlambda::stats::percentile;
use microlambda::table::{self, Align};
use microlambda::worker::protocol::{CheckpointMode, FromWorker, ModuleSpec, ToWorker};
use microlambda::worker::{WorkerOptions, WorkerProcess};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &[u8] = b"bench-key";
/// The job's input (JSON).
const INPUT: &str = r#"{"iters": 1000000}"#;

/// A k-nearest-neighbours classifier (scikit-learn, scipy, numpy) predicting point after point: its checkpoints
/// hold the fitted model and name the libraries.
const KNN: &str = r#"
import time
import numpy as np
from sklearn.neighbors import KNeighborsClassifier

def main(inp):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    model = KNeighborsClassifier(n_neighbors=5).fit(X, y)
    hits = 0
    for i in range(inp["iters"]):
        j = i % 300
        hits += int(model.predict(X[j:j + 1])[0] == y[j])
        time.sleep(0.002)
    return hits
"#;

async fn recv_until<F: FnMut(&FromWorker) -> bool>(w: &mut WorkerProcess, mut f: F) -> anyhow::Result<FromWorker> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(60), w.recv())
            .await
            .map_err(|_| anyhow::anyhow!("worker timed out"))?
            .ok_or_else(|| anyhow::anyhow!("worker exited"))?;
        if let FromWorker::Failed { error, .. } = &m {
            anyhow::bail!("job failed: {}", error.message);
        }
        if f(&m) {
            return Ok(m);
        }
    }
}

fn options() -> WorkerOptions {
    let mut opts = WorkerOptions::new(KEY.to_vec());
    opts.exe = crate::microlambda_exe();
    opts.start_timeout = Duration::from_secs(120);
    opts
}

/// Run the job in a worker of its own and take one checkpoint of it.
async fn checkpoint_of(module: &ModuleSpec) -> anyhow::Result<Vec<u8>> {
    let mut w = WorkerProcess::spawn(&options()).await?;
    let run = ToWorker::Run {
        job_id: "bench".into(),
        module: module.clone(),
        entry: "main".into(),
        input_json: INPUT.into(),
        next_seq: 0,
    };
    w.send(&run).await?;
    recv_until(&mut w, |m| matches!(m, FromWorker::Started { .. })).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for seq in 1..=20 {
        w.send(&ToWorker::Checkpoint { seq, mode: CheckpointMode::Continue, deadline_ms: 2000 }).await?;
        let m =
            recv_until(&mut w, |m| matches!(m, FromWorker::Checkpointed { .. } | FromWorker::CheckpointFailed { .. }))
                .await?;
        if let FromWorker::Checkpointed { envelope, .. } = m {
            w.kill().await;
            return Ok(envelope);
        }
    }
    w.kill().await;
    anyhow::bail!("no checkpoint of the job in 20 requests")
}

/// One restore through `pool`: (ms from asking the pool to `Restored`, the worker's restore_us in ms).
async fn restore_once(pool: &Arc<WorkerPool>, module: &ModuleSpec, ck: &[u8]) -> anyhow::Result<(f64, f64)> {
    let t = Instant::now();
    let (mut lease, opened) = pool.acquire_restore(module, ck.to_vec()).await?;
    lease.worker.restore("bench", module, opened, Some(INPUT)).await?;
    let m = recv_until(&mut lease.worker, |m| matches!(m, FromWorker::Restored { .. })).await;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let out = match &m {
        Ok(FromWorker::Restored { restore_us, imported, indexed, .. }) => {
            // As the job actor does: the pool learns what the restore imported.
            pool.restored(&lease, imported, indexed);
            Ok((ms, *restore_us as f64 / 1e3))
        }
        _ => Err(anyhow::anyhow!("no restore: {m:?}")),
    };
    pool.discard(lease).await;
    out
}

/// Run the benchmark: `rounds` restores through each pool; returns the Markdown table.
pub async fn restore(rounds: usize) -> anyhow::Result<String> {
    let dir = crate::tempfile_dir()?;
    let file = dir.join("knn.py");
    std::fs::write(&file, KNN)?;
    let module = ModuleSpec { module_name: "knn".into(), filename: file.display().to_string(), source: KNN.into() };
    let ck = checkpoint_of(&module).await?;
    let imports = Envelope::new(KEY).open(&ck)?.imports;
    eprintln!("checkpoint of {} bytes; its libraries: {imports:?}", ck.len());
    let base = WorkerPool::new(options(), 1, Zygotes { sets: 0, ..Zygotes::default() });
    let sets = WorkerPool::new(options(), 1, Zygotes { sets: 2, ..Zygotes::default() });
    let peer = WorkerPool::new(options(), 1, Zygotes { sets: 2, ..Zygotes::default() });
    let (tx, mut told) = tokio::sync::mpsc::unbounded_channel();
    sets.tell_learned(tx);
    base.warm_up().await?;
    sets.warm_up().await?;
    peer.warm_up().await?;
    // The first restore through the pool with sets forks from its base zygote and starts the set's zygote.
    restore_once(&sets, &module, &ck).await?;
    let t = Instant::now();
    while sets.set_zygotes() == 0 {
        anyhow::ensure!(t.elapsed() < Duration::from_secs(120), "the set zygote did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("set zygote up {:.0} ms after the first restore asked for it", t.elapsed().as_secs_f64() * 1e3);
    // What that pool told the other nodes: the third pool starts a zygote from it alone.
    let hint = told.try_recv().map_err(|_| anyhow::anyhow!("the pool told no set"))?;
    anyhow::ensure!(peer.prewarm(&hint), "the other pool started no zygote for {:?}", hint.set);
    let t = Instant::now();
    while peer.set_zygotes() == 0 {
        anyhow::ensure!(t.elapsed() < Duration::from_secs(120), "the other pool's set zygote did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = restore_once(&peer, &module, &ck).await?;
    let (mut cold, mut warm, mut told) = (Vec::new(), Vec::new(), vec![first]);
    for _ in 0..rounds {
        // Let the base pool's refill (a worker forked ahead) finish, as on an idle node.
        base.warm_up().await?;
        cold.push(restore_once(&base, &module, &ck).await?);
        warm.push(restore_once(&sets, &module, &ck).await?);
        told.push(restore_once(&peer, &module, &ck).await?);
    }
    anyhow::ensure!(sets.set_zygote_restores() >= rounds as u64, "restores did not fork from the set zygote");
    anyhow::ensure!(
        peer.set_zygote_restores() > rounds as u64,
        "the other pool's restores did not fork from its set zygote"
    );
    for p in [&base, &sets, &peer] {
        p.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let row = |name: &str, v: &[(f64, f64)]| {
        let total: Vec<f64> = v.iter().map(|x| x.0).collect();
        let inner: Vec<f64> = v.iter().map(|x| x.1).collect();
        vec![
            name.to_string(),
            crate::num(percentile(&total, 0.5).unwrap_or(f64::NAN), 1),
            crate::num(percentile(&total, 0.9).unwrap_or(f64::NAN), 1),
            crate::num(percentile(&inner, 0.5).unwrap_or(f64::NAN), 1),
            v.len().to_string(),
        ]
    };
    let head = [
        ("restore of the scikit-learn job", Align::Left),
        ("p50 ms", Align::Right),
        ("p90 ms", Align::Right),
        ("in the worker p50 ms", Align::Right),
        ("restores", Align::Right),
    ];
    let rows = vec![
        row("forked from the base zygote (imports its libraries)", &cold),
        row("forked from a set zygote (libraries imported)", &warm),
        row("another node's first restore, from the zygote it started when told the set", &told[..1]),
        row("another node's restores, from that zygote (first included)", &told),
    ];
    Ok(table::markdown(&head, &rows))
}
