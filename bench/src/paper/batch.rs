//! Figs. 6/7 on a real mesh: a nats-server started with its monitoring port, placement and two nodes. Each
//! workload's batch runs as one job, uninterrupted (the long-running run: no runtime limit and no periodic
//! checkpoint) and with each runtime limit (a stop checkpoint, a park and a restore at every slice end); then its
//! first requests as requests to a session (a checkpoint between any two). The server's own counters (`/varz`) give
//! the bytes it carried during each.
use super::{reference, Options, Workload, WORKLOADS};
use crate::migrate::{run_to_end, Finished};
use crate::session::{ask, open, Session};
use microlambda::natsd::NatsServer;
use serde_json::Value;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// One batch run: the workload, its runtime limit (None: the long-running run), wall time, slices, traffic.
#[derive(Debug, Clone)]
pub struct BatchRun {
    pub workload: &'static str,
    pub requests: usize,
    pub r_limit_s: Option<u64>,
    pub wall_ms: f64,
    pub slices: u32,
    pub node_changes: u32,
    /// Whether its replies equal plain CPython's, every one.
    pub exact: bool,
    pub traffic: Traffic,
}

/// What the server carried during a run: bytes and messages received from clients and sent to them, the run's
/// seconds, and the requests it served.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    pub workload: &'static str,
    pub what: String,
    pub requests: usize,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub seconds: f64,
    /// The mesh's own chatter with no job (load reports, leases), bytes per second in + out, measured before.
    pub idle_bytes_per_s: f64,
}

impl Traffic {
    pub fn per_request(&self) -> f64 {
        (self.in_bytes + self.out_bytes) as f64 / self.requests.max(1) as f64
    }

    /// The part of [`Traffic::per_request`] the idle mesh would have carried over the same time.
    pub fn idle_per_request(&self) -> f64 {
        self.idle_bytes_per_s * self.seconds / self.requests.max(1) as f64
    }
}

/// The server's counters: in_bytes, out_bytes, in_msgs, out_msgs.
fn varz(port: u16) -> anyhow::Result<[u64; 4]> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /varz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    let v: Value = serde_json::from_str(body)?;
    let n = |k: &str| v[k].as_u64().ok_or_else(|| anyhow::anyhow!("/varz has no {k}"));
    Ok([n("in_bytes")?, n("out_bytes")?, n("in_msgs")?, n("out_msgs")?])
}

/// The counters' growth while `f` runs, as [`Traffic`].
async fn counted<T, F: std::future::Future<Output = anyhow::Result<T>>>(
    port: u16,
    f: F,
) -> anyhow::Result<(T, Traffic)> {
    let before = varz(port)?;
    let t0 = Instant::now();
    let out = f.await?;
    let after = varz(port)?;
    let d = |i: usize| after[i] - before[i];
    let traffic = Traffic {
        in_bytes: d(0),
        out_bytes: d(1),
        in_msgs: d(2),
        out_msgs: d(3),
        seconds: t0.elapsed().as_secs_f64(),
        ..Traffic::default()
    };
    Ok((out, traffic))
}

/// A nats-server like the testbed's, with its monitoring endpoint on a free loopback port; returns it and that
/// port.
fn monitored_server(dir: &std::path::Path) -> anyhow::Result<(NatsServer, u16)> {
    let http = microlambda::natsd::free_port()?;
    let conf = dir.join("nats-monitored.conf");
    std::fs::write(&conf, format!("http: \"127.0.0.1:{http}\"\n"))?;
    Ok((NatsServer::start_with(None, None, Some(&conf))?, http))
}

/// The mesh's settings: those of `bench migrate`'s slicing part (two nodes under the radio threshold, two slots
/// each), with no periodic checkpoint (the long-running run takes none; a sliced run only those of its slice
/// ends) and a job timeout beyond any batch.
fn settings_for(base: &microlambda::config::Settings) -> microlambda::config::Settings {
    let mut s = crate::migrate::settings_for(base);
    s.node.job_timeout_ms = 1_200_000;
    s.node.checkpoint_interval_ms = 0;
    s
}

/// Run Figs. 6 and 7: every workload's batch uninterrupted and at every runtime limit, then as session requests.
pub async fn run(opts: &Options) -> anyhow::Result<(Vec<BatchRun>, Vec<Traffic>)> {
    let dir = crate::tempfile_dir()?;
    let (server, http) = monitored_server(&dir)?;
    let s = settings_for(&opts.settings);
    let tb = microlambda::testbed::Testbed::start(&s, Some(&server.url()), &crate::microlambda_exe())?;
    let bus = tb.connect(&s.client, "ops", "bench-paper").await?;
    tb.wait_ready(&bus, Duration::from_secs(60)).await?;
    let mut events = bus.subscribe_all_events().await?;
    // The idle mesh's chatter, bytes per second.
    let ((), idle) = counted(http, async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        Ok(())
    })
    .await?;
    let idle_rate = (idle.in_bytes + idle.out_bytes) as f64 / idle.seconds;
    let (mut runs, mut sessions) = (Vec::new(), Vec::new());
    let stamp = microlambda::wire::now_ms();
    for (i, w) in WORKLOADS.iter().enumerate() {
        if !opts.workloads.iter().any(|n| n == w.name) {
            continue;
        }
        let requests = w.requests(opts.sizes.batch[i], opts.seed);
        let want = reference(&opts.root, w, &requests)?;
        let job = (w.batch_source(), w.batch_input(&requests));
        // Warm-up (not in --quick): the first run of a module on the mesh is not measured.
        if !opts.quick {
            let warm = (job.0.as_str(), w.batch_input(&requests[..1]));
            run_to_end(&bus, &mut events, &format!("paper-warm-{}-{stamp}", w.name), warm, None, within(120)).await?;
        }
        // The long-running run first and (not in --quick) again last: on a shared machine the load drifts, and the
        // sliced runs are compared with both.
        let again = (!opts.quick).then_some(None);
        let limits = std::iter::once(None).chain(opts.sizes.r_limits_s.iter().map(|&s| Some(s))).chain(again);
        for (k, r_limit_s) in limits.enumerate() {
            let id = format!("paper-{}-{k}-{stamp}", w.name);
            let r_limit_ms = r_limit_s.map(|s| s * 1000);
            let one = run_to_end(&bus, &mut events, &id, (job.0.as_str(), job.1.clone()), r_limit_ms, within(900));
            let (f, mut traffic): (Finished, Traffic) = counted(http, async { Ok(one.await?) }).await?;
            let exact = f.output.as_array().is_some_and(|got| *got == want);
            let what = match r_limit_s {
                None if k > 0 => "long-running again (no checkpoint)".to_string(),
                None => "long-running (no checkpoint)".to_string(),
                Some(s) => format!("r_limit {s} s"),
            };
            println!(
                "paper: fig. 6: {} {what}: {:.1} s, {} slices, replies {}",
                w.name,
                f.wall_ms / 1e3,
                f.slices,
                if exact { "exact" } else { "DIFFER" }
            );
            traffic =
                Traffic { workload: w.name, what, requests: requests.len(), idle_bytes_per_s: idle_rate, ..traffic };
            runs.push(BatchRun {
                workload: w.name,
                requests: requests.len(),
                r_limit_s,
                wall_ms: f.wall_ms,
                slices: f.slices,
                node_changes: f.node_changes,
                exact,
                traffic,
            });
        }
        sessions.extend(session_traffic(opts, &bus, http, w, &requests, &want, idle_rate).await?);
    }
    drop(tb);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok((runs, sessions))
}

fn within(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Fig. 7's session rows: a session of the workload opened (its first checkpoint, and the announcement of its
/// module to every node when the module's top level is slow enough to warrant a zygote), then the batch's first
/// requests sent to it one at a time, each counted apart.
async fn session_traffic(
    opts: &Options,
    bus: &microlambda::bus::Bus,
    http: u16,
    w: &Workload,
    requests: &[Value],
    want: &[Value],
    idle_rate: f64,
) -> anyhow::Result<[Traffic; 2]> {
    let n = opts.sizes.session_requests.min(requests.len());
    let id = format!("paper-session-{}-{}", w.name, microlambda::wire::now_ms());
    let session = Session::of(w.source, w.entry, w.opening());
    let ((mut events, _), opening) = counted(http, async { Ok(open(bus, &id, &session).await?) }).await?;
    let (replies, traffic) = counted(http, async {
        let mut out = Vec::with_capacity(n);
        for (i, input) in (1..).zip(&requests[..n]) {
            out.push(ask(bus, &mut events, &id, input, i).await?.2);
        }
        Ok(out)
    })
    .await?;
    if replies.iter().zip(&want[1..]).any(|(g, w)| g != w) {
        anyhow::bail!("{}: a session reply differs from plain CPython's: {replies:?}", w.name);
    }
    println!(
        "paper: fig. 7: {} opened in {:.1} s, then {n} session requests: {:.1} s",
        w.name, opening.seconds, traffic.seconds
    );
    let opening = Traffic {
        workload: w.name,
        what: "session opening (its module announced to the nodes, its first checkpoint)".into(),
        requests: 1,
        idle_bytes_per_s: idle_rate,
        ..opening
    };
    let requests = Traffic {
        workload: w.name,
        what: "session requests (a checkpoint between any two)".into(),
        requests: n,
        idle_bytes_per_s: idle_rate,
        ..traffic
    };
    Ok([opening, requests])
}
