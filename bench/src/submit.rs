//! `microlambda-bench submit`: trivial jobs end to end through NATS (submit, place, run in a warm worker,
//! result event), as jobs/s and submit-to-result latency percentiles.
use futures::StreamExt;
use microlambda::bus::Bus;
use microlambda::client::{client_job_id, ClientError};
use microlambda::stats::Sorted;
use microlambda::wire::{FunctionRef, JobEvent, SubmitReply, SubmitRequest};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// The trivial job.
pub const TRIVIAL: &str = "def main(x):\n    return x\n";

#[derive(Debug, Clone)]
pub struct BenchResult {
    pub concurrency: usize,
    pub jobs: usize,
    pub failed: usize,
    pub secs: f64,
    /// Submit to the `accepted` reply (the job is recorded), median.
    pub accept_p50_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl BenchResult {
    pub fn jobs_per_sec(&self) -> f64 {
        self.jobs as f64 / self.secs
    }
}

pub fn render(rows: &[BenchResult]) -> String {
    let mut s = format!(
        "{:>11} {:>6} {:>6} {:>8} {:>10} {:>8} {:>8} {:>8} {:>8}\n",
        "concurrency", "jobs", "failed", "jobs/s", "accept p50", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for r in rows {
        s.push_str(&format!(
            "{:>11} {:>6} {:>6} {:>8.0} {:>10.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}\n",
            r.concurrency,
            r.jobs,
            r.failed,
            r.jobs_per_sec(),
            r.accept_p50_ms,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.max_ms
        ));
    }
    s
}

type Waiters = Arc<Mutex<HashMap<String, tokio::sync::oneshot::Sender<bool>>>>;

/// Run `jobs` trivial jobs with at most `concurrency` in flight; latency is submit sent to final event seen.
pub async fn run(bus: &Bus, jobs: usize, concurrency: usize) -> Result<BenchResult, ClientError> {
    let waiters: Waiters = Arc::default();
    let mut events = bus.subscribe_all_events().await?;
    let w = waiters.clone();
    let listener = tokio::spawn(async move {
        while let Some(m) = events.next().await {
            let p = &m.payload;
            let fin = |n: &[u8]| p.windows(n.len()).any(|x| x == n);
            if !(fin(b"\"completed\"") || fin(b"\"failed\"")) {
                continue;
            }
            if let Ok(ev) = serde_json::from_slice::<JobEvent>(p) {
                if let Some(tx) = w.lock().ok().and_then(|mut m| m.remove(&ev.job_id)) {
                    let ok = matches!(ev.kind, microlambda::wire::EventKind::Completed { .. });
                    let _ = tx.send(ok);
                }
            }
        }
    });
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let lat = Arc::new(Mutex::new(Vec::with_capacity(jobs)));
    let acc = Arc::new(Mutex::new(Vec::with_capacity(jobs)));
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut handles = Vec::with_capacity(jobs);
    for i in 0..jobs {
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let (bus, waiters, lat, failed) = (bus.clone(), waiters.clone(), lat.clone(), failed.clone());
        let acc = acc.clone();
        handles.push(tokio::spawn(async move {
            let _permit = permit;
            let job_id = client_job_id();
            let req = SubmitRequest {
                function: FunctionRef::inline(TRIVIAL),
                input: i.into(),
                job_id: Some(job_id.clone()),
                r_limit_ms: None,
                priority: 0,
                session: false,
            };
            let (tx, rx) = tokio::sync::oneshot::channel();
            if let Ok(mut m) = waiters.lock() {
                m.insert(job_id.clone(), tx);
            }
            let t0 = Instant::now();
            let body = serde_json::to_vec(&req).expect("json");
            let ok = match bus.submit_raw::<SubmitReply>(body.into()).await {
                Ok(SubmitReply::Accepted { .. }) => {
                    if let Ok(mut a) = acc.lock() {
                        a.push(t0.elapsed().as_secs_f64() * 1000.0);
                    }
                    matches!(tokio::time::timeout(Duration::from_secs(30), rx).await, Ok(Ok(true)))
                }
                Ok(SubmitReply::Error { error }) => {
                    tracing::warn!("refused: {} {}", error.code, error.message);
                    false
                }
                Err(e) => {
                    tracing::warn!("submit: {e}");
                    false
                }
            };
            if ok {
                if let Ok(mut l) = lat.lock() {
                    l.push(t0.elapsed().as_secs_f64() * 1000.0);
                }
            } else {
                failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Ok(mut m) = waiters.lock() {
                    m.remove(&job_id);
                }
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
    let secs = start.elapsed().as_secs_f64();
    listener.abort();
    let a = Sorted::new(&acc.lock().map(|a| a.clone()).unwrap_or_default());
    let l = Sorted::new(&lat.lock().map(|l| l.clone()).unwrap_or_default());
    let pct = |s: &Sorted, p: f64| s.percentile(p).unwrap_or(f64::NAN);
    Ok(BenchResult {
        concurrency,
        jobs,
        failed: failed.load(std::sync::atomic::Ordering::Relaxed),
        secs,
        accept_p50_ms: pct(&a, 0.5),
        p50_ms: pct(&l, 0.5),
        p90_ms: pct(&l, 0.9),
        p99_ms: pct(&l, 0.99),
        max_ms: l.max().unwrap_or(f64::NAN),
    })
}

/// `microlambda-bench submit`: on `nats` if given, else on a local testbed started for the run; warm up,
/// then a latency run (one job at a time) and a throughput run (`concurrency` in flight). Prints the table.
pub async fn main(
    settings: microlambda::config::Settings,
    nats: Option<String>,
    jobs: usize,
    concurrency: usize,
) -> Result<Vec<BenchResult>, microlambda::testbed::TestbedError> {
    let (tb, bus, url) = crate::mesh(&settings, nats).await?;
    let secured = if tb.as_ref().is_some_and(|t| t.auth_dir().is_some()) { " (secured: nkey users)" } else { "" };
    println!("bench submit: trivial job {TRIVIAL:?} on {url}{secured}");
    let warm = run(&bus, 200.min(jobs), 8).await?;
    if warm.failed > 0 {
        println!("warm-up: {} of {} jobs failed", warm.failed, warm.jobs);
    }
    let rows = vec![run(&bus, jobs.min(1000), 1).await?, run(&bus, jobs, concurrency).await?];
    print!("{}", render(&rows));
    drop(tb);
    Ok(rows)
}

/// How the testbed's server is secured in [`compare_security`]'s runs.
const SECURITY_MODES: [(&str, bool, bool); 3] =
    [("open", false, false), ("nkey users", true, false), ("nkey users + TLS", true, true)];

/// `microlambda-bench submit --compare-security`: the same runs on a testbed started open, with nkey users, and
/// with nkey users and TLS (the default), one after the other, `rounds` times (alternating, so the machine's
/// drift falls on all three), then a table of each mode's jobs/s and latency against the open server's
/// (issue 13's target: authorization adds at most 5%).
pub async fn compare_security(
    settings: microlambda::config::Settings,
    jobs: usize,
    concurrency: usize,
    rounds: usize,
) -> Result<String, microlambda::testbed::TestbedError> {
    use microlambda::table::{markdown, Align};
    // (mode, concurrency) -> the rounds' results.
    let mut got: Vec<Vec<BenchResult>> = vec![Vec::new(); SECURITY_MODES.len() * 2];
    for round in 0..rounds.max(1) {
        for (m, (name, secure, tls)) in SECURITY_MODES.iter().enumerate() {
            let mut s = settings.clone();
            s.testbed.secure = *secure;
            s.testbed.tls = *tls;
            let (tb, bus, _) = crate::mesh(&s, None).await?;
            run(&bus, 200.min(jobs), 8).await?;
            let one = run(&bus, jobs.min(1000), 1).await?;
            let many = run(&bus, jobs, concurrency).await?;
            println!(
                "round {}: {name}: {:.0} jobs/s at 1, {:.0} at {concurrency}; {} failed",
                round + 1,
                one.jobs_per_sec(),
                many.jobs_per_sec(),
                one.failed + many.failed
            );
            got[m * 2].push(one);
            got[m * 2 + 1].push(many);
            drop(bus);
            drop(tb);
        }
    }
    let median = |v: Vec<f64>| Sorted::new(&v).percentile(0.5).unwrap_or(f64::NAN);
    let rate = |rs: &[BenchResult]| median(rs.iter().map(BenchResult::jobs_per_sec).collect());
    let p50 = |rs: &[BenchResult]| median(rs.iter().map(|r| r.p50_ms).collect());
    let mut rows = Vec::new();
    for (m, (name, _, _)) in SECURITY_MODES.iter().enumerate() {
        for k in 0..2 {
            let (rs, open) = (&got[m * 2 + k], &got[k]);
            let each: Vec<String> = rs.iter().map(|r| format!("{:.0}", r.jobs_per_sec())).collect();
            rows.push(vec![
                name.to_string(),
                rs.first().map_or(0, |r| r.concurrency).to_string(),
                each.join(", "),
                format!("{:.0}", rate(rs)),
                format!("{:.3}", rate(rs) / rate(open)),
                format!("{:.2}", p50(rs)),
                format!("{:.3}", p50(rs) / p50(open)),
            ]);
        }
    }
    let head = [
        ("server", Align::Left),
        ("concurrency", Align::Right),
        ("jobs/s, each round", Align::Left),
        ("median jobs/s", Align::Right),
        ("to open", Align::Right),
        ("p50 ms (median)", Align::Right),
        ("to open", Align::Right),
    ];
    Ok(markdown(&head, &rows))
}
