//! A bench figure, not a check (ignored by default): the time to start and run a trivial job in a worker forked
//! by the zygote (forked on demand, or forked ahead as the pool does), beside the old warm reuse of one worker
//! process for job after job (`MICROLAMBDA_OLD_BIN`: a `microlambda` binary built before the zygote).
//!
//! `MICROLAMBDA_OLD_BIN=/work/main/target/debug/microlambda cargo nextest run --test zygote_bench \
//!   --run-ignored only --no-capture`
use microlambda::worker::protocol::read_frame;
use microlambda::worker::{FromWorker, ModuleSpec, ToWorker, WorkerOptions, WorkerProcess, Zygote};
use std::io::Write;
use std::time::{Duration, Instant};

const N: usize = 200;
const SOURCE: &str = "def main(x):\n    return x + 1\n";

fn module(i: usize) -> ModuleSpec {
    ModuleSpec { module_name: format!("bench_job_{i}"), filename: "bench.py".into(), source: SOURCE.into() }
}

fn run_msg(i: usize) -> ToWorker {
    ToWorker::Run {
        job_id: format!("b{i}"),
        module: module(i),
        entry: "main".into(),
        input_json: "1".into(),
        next_seq: 0,
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn row(name: &str, v: &mut [f64]) {
    println!("{name:<44} p50 {:>7.3} ms   p90 {:>7.3} ms   n {}", pct(v, 0.5), pct(v, 0.9), v.len());
}

async fn completed(w: &mut WorkerProcess) {
    loop {
        match w.recv().await.expect("worker alive") {
            FromWorker::Completed { .. } => return,
            FromWorker::Failed { error, .. } => panic!("{error:?}"),
            _ => {}
        }
    }
}

fn status_kb(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
        .unwrap_or_default()
}

/// The old protocol: the worker got the key first and stayed up for job after job.
#[derive(serde::Serialize)]
enum OldToWorker {
    Hello { key: Vec<u8> },
    Run { job_id: String, module: ModuleSpec, entry: String, input_json: String, next_seq: u64 },
}

fn old_warm_reuse(bin: &str) -> Vec<f64> {
    let mut child = std::process::Command::new(bin)
        .arg("worker")
        .env("PYTHONHASHSEED", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("old worker");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let send = |w: &mut std::process::ChildStdin, m: &OldToWorker| {
        let body = postcard::to_stdvec(m).unwrap();
        w.write_all(&(body.len() as u32).to_le_bytes()).unwrap();
        w.write_all(&body).unwrap();
        w.flush().unwrap();
    };
    send(&mut stdin, &OldToWorker::Hello { key: b"bench".to_vec() });
    let ready: Option<FromWorker> = read_frame(&mut stdout).unwrap();
    assert!(matches!(ready, Some(FromWorker::Ready { .. })), "{ready:?}");
    let mut out = Vec::new();
    for i in 0..N {
        let t = Instant::now();
        send(
            &mut stdin,
            &OldToWorker::Run {
                job_id: format!("b{i}"),
                module: module(i),
                entry: "main".into(),
                input_json: "1".into(),
                next_seq: 0,
            },
        );
        loop {
            match read_frame::<_, FromWorker>(&mut stdout).unwrap() {
                Some(FromWorker::Completed { .. }) => break,
                Some(FromWorker::Failed { error, .. }) => panic!("{error:?}"),
                Some(_) => {}
                None => panic!("old worker exited"),
            }
        }
        out.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let _ = child.kill();
    let _ = child.wait();
    out
}

#[tokio::test]
#[ignore = "a bench figure: run with --run-ignored only --no-capture"]
async fn zygote_fork_versus_warm_reuse() {
    let mut opts = WorkerOptions::new(b"bench".to_vec());
    opts.exe = env!("CARGO_BIN_EXE_microlambda").into();
    opts.start_timeout = Duration::from_secs(60);
    let t = Instant::now();
    let z = Zygote::start(&opts).await.expect("zygote");
    println!("zygote up in {:.1} ms (pid {}, threads {})", t.elapsed().as_secs_f64() * 1e3, z.pid(), {
        std::fs::read_dir(format!("/proc/{}/task", z.pid())).map(|d| d.count()).unwrap_or(0)
    });
    let (mut fork_only, mut on_demand, mut ahead) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..N {
        let t = Instant::now();
        let mut w = z.fork().await.expect("fork");
        fork_only.push(t.elapsed().as_secs_f64() * 1e3);
        w.send(&run_msg(i)).await.unwrap();
        completed(&mut w).await;
        on_demand.push(t.elapsed().as_secs_f64() * 1e3);
        let _ = w.wait().await;
    }
    for i in 0..N {
        let mut w = z.fork().await.expect("fork");
        if i == 0 {
            println!(
                "a forked worker: VmSize {} kB, VmRSS {} kB (zygote VmRSS {} kB)",
                status_kb(w.pid(), "VmSize:"),
                status_kb(w.pid(), "VmRSS:"),
                status_kb(z.pid(), "VmRSS:")
            );
        }
        let t = Instant::now();
        w.send(&run_msg(i)).await.unwrap();
        completed(&mut w).await;
        ahead.push(t.elapsed().as_secs_f64() * 1e3);
        let _ = w.wait().await;
    }
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", z.pid())).unwrap_or_default();
    println!("zygote: {} mappings, {} kB page tables", maps.lines().count(), status_kb(z.pid(), "VmPTE:"));
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", z.pid())).unwrap_or_default();
    let f: Vec<f64> =
        stat.rsplit(')').next().unwrap_or("").split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // utime, stime, cutime, cstime are fields 14..17 of stat: 11..14 after the name and state.
    let per = |v: f64| v * 10.0 / (2 * N) as f64;
    println!(
        "CPU per worker (ms): zygote user {:.2} sys {:.2}; the worker (reaped) user {:.2} sys {:.2}",
        per(f[11]),
        per(f[12]),
        per(f[13]),
        per(f[14])
    );
    // `node.isolation = "reuse"`: one child of a zygote serves job after job.
    let mut reuse_opts = opts.clone();
    reuse_opts.reuse = true;
    let zr = Zygote::start(&reuse_opts).await.expect("zygote");
    let mut w = zr.fork().await.expect("fork");
    let mut reuse = Vec::new();
    for i in 0..N {
        let t = Instant::now();
        w.send(&run_msg(i)).await.unwrap();
        completed(&mut w).await;
        reuse.push(t.elapsed().as_secs_f64() * 1e3);
    }
    row("fork + worker ready", &mut fork_only);
    row("fork on demand + run a trivial job", &mut on_demand);
    row("forked ahead (the pool): run a trivial job", &mut ahead);
    row("isolation = reuse: run a trivial job", &mut reuse);
    match std::env::var("MICROLAMBDA_OLD_BIN") {
        Ok(bin) if !bin.is_empty() => {
            let mut old = tokio::task::spawn_blocking(move || old_warm_reuse(&bin)).await.unwrap();
            row("old warm reuse: run a trivial job", &mut old);
        }
        _ => println!("(set MICROLAMBDA_OLD_BIN to a pre-zygote binary for the old warm reuse figure)"),
    }
}

const NUMPY_JOB: &str = "import numpy as np\n\ndef main(x):\n    a = np.arange(1000.0)\n    s = 0.0\n    for i in range(x['iters']):\n        s += a[i % 1000]\n    return s\n";

async fn until_restored(w: &mut WorkerProcess) -> f64 {
    loop {
        match w.recv().await.expect("worker alive") {
            FromWorker::Restored { restore_us, .. } => return restore_us as f64 / 1e3,
            FromWorker::Failed { error, .. } => panic!("{error:?}"),
            _ => {}
        }
    }
}

#[tokio::test]
#[ignore = "a bench figure: run with --run-ignored only --no-capture"]
async fn restore_in_a_fork_of_a_zygote_with_numpy_versus_a_fresh_worker() {
    let mut opts = WorkerOptions::new(b"bench".to_vec());
    opts.exe = env!("CARGO_BIN_EXE_microlambda").into();
    opts.start_timeout = Duration::from_secs(60);
    let mut cold = opts.clone();
    cold.preload.clear();
    opts.preload = vec!["numpy".into()];
    let z = Zygote::start(&opts).await.expect("zygote");
    let m =
        ModuleSpec { module_name: "bench_numpy".into(), filename: "bench_numpy.py".into(), source: NUMPY_JOB.into() };
    let mut w = z.fork().await.unwrap();
    w.send(&ToWorker::Run {
        job_id: "np".into(),
        module: m.clone(),
        entry: "main".into(),
        input_json: r#"{"iters": 1000000000}"#.into(),
        next_seq: 0,
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.send(&ToWorker::Checkpoint { seq: 1, mode: microlambda::worker::CheckpointMode::Continue, deadline_ms: 2000 })
        .await
        .unwrap();
    let envelope = loop {
        match w.recv().await.expect("alive") {
            FromWorker::Checkpointed { envelope, .. } => break envelope,
            FromWorker::CheckpointFailed { error, .. } => panic!("{error:?}"),
            _ => {}
        }
    };
    w.kill().await;
    let restore =
        ToWorker::Restore { job_id: "np".into(), module: m, checkpoint: envelope, input_json: Some("1".into()) };
    let (mut fork_total, mut fork_in, mut cold_total, mut cold_in) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..20 {
        let t = Instant::now();
        let mut w = z.fork().await.unwrap();
        w.send(&restore).await.unwrap();
        fork_in.push(until_restored(&mut w).await);
        fork_total.push(t.elapsed().as_secs_f64() * 1e3);
        w.kill().await;
        let t = Instant::now();
        let mut w = WorkerProcess::spawn(&cold).await.unwrap();
        w.send(&restore).await.unwrap();
        cold_in.push(until_restored(&mut w).await);
        cold_total.push(t.elapsed().as_secs_f64() * 1e3);
        w.kill().await;
    }
    row("numpy job, fork of a zygote with numpy: total", &mut fork_total);
    row("  of which the restore in the worker", &mut fork_in);
    row("numpy job, fresh stand-alone worker: total", &mut cold_total);
    row("  of which the restore in the worker", &mut cold_in);
}
