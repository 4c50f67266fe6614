//! The load generator against a real mesh: its radio loads reach the nodes' reports and its jobs all end.
use futures::StreamExt;
use microlambda::bus::Bus;
use microlambda::natsd::NatsServer;
use microlambda::wire::{FunctionRef, LoadReport};
use microlambda_loadgen::{parse_radio, Plan};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The `microlambda` binary built beside this test (target/<profile>/microlambda).
fn microlambda_exe() -> std::path::PathBuf {
    let me = std::env::current_exe().unwrap();
    me.parent().and_then(|deps| deps.parent()).unwrap().join("microlambda")
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            microlambda::proc::terminate(self.0.id());
            for _ in 0..300 {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn spawn(args: &[String]) -> Proc {
    let mut cmd = Command::new(microlambda_exe());
    cmd.args(args).env("MICROLAMBDA_LOG", "warn").stdin(Stdio::null());
    cmd.env("MICROLAMBDA_NODE__CHECKPOINT_KEY", microlambda::auth::random_key());
    microlambda::proc::die_with_parent(&mut cmd);
    Proc(cmd.spawn().expect("the microlambda binary (cargo build --workspace --bins)"))
}

/// Wait until placement knows `n` nodes: then its gateway answers submissions too (a node's first load report
/// can come before placement is serving, on a busy machine).
async fn ready(bus: &Bus, n: usize) {
    for _ in 0..200 {
        if let Ok(s) = bus.nodes::<microlambda::actors::placement::NodesSnapshot>().await {
            if s.nodes.len() >= n {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("placement did not see {n} nodes");
}

#[tokio::test]
async fn radio_loads_reach_the_nodes_and_every_job_ends() {
    let nats = NatsServer::start(None).expect("nats-server (make setup)");
    let url = nats.url();
    let _placement = spawn(&["placement".into(), format!("--nats={url}"), "--report-interval-ms=200".into()]);
    let _node = spawn(&["node".into(), format!("--nats={url}"), "--id=n1".into(), "--report-interval-ms=200".into()]);
    let bus = Bus::connect(&url, "loadgen-test", Duration::from_secs(5)).await.unwrap();
    let mut loads = bus.subscribe_loads().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), loads.next()).await.expect("node up");
    ready(&bus, 1).await;

    let plan = Plan {
        radio: vec![parse_radio("n1=constant:0.35").unwrap()],
        radio_period: Duration::from_millis(100),
        rate: 20.0,
        jobs: Some(10),
        function: FunctionRef::inline("def main(x):\n    return x * 2\n"),
        input: None,
        duration: Duration::from_millis(1500),
    };
    let tally = microlambda_loadgen::run(&bus, &plan).await.unwrap();
    assert_eq!((tally.submitted, tally.accepted, tally.refused), (10, 10, 0), "{tally:?}");
    assert_eq!(tally.completed, 10, "{tally:?}");
    // One node, a constant load: nothing moves.
    assert_eq!(tally.moved, 0, "{tally:?}");

    let mut seen = None;
    for _ in 0..10 {
        let m = tokio::time::timeout(Duration::from_secs(2), loads.next()).await.unwrap().unwrap();
        let r: LoadReport = serde_json::from_slice(&m.payload).unwrap();
        seen = Some(r.radio_load);
        if r.radio_load == 0.35 {
            break;
        }
    }
    assert_eq!(seen, Some(0.35));
}

/// The loadgen binary built with this test.
fn loadgen_exe() -> std::path::PathBuf {
    env!("CARGO_BIN_EXE_microlambda-loadgen").into()
}

#[tokio::test]
async fn a_scenario_submits_its_stream_and_prints_one_json_line() {
    let nats = NatsServer::start(None).expect("nats-server (make setup)");
    let url = nats.url();
    let _placement = spawn(&["placement".into(), format!("--nats={url}"), "--report-interval-ms=200".into()]);
    let _node =
        spawn(&["node".into(), format!("--nats={url}"), "--id=node-1".into(), "--report-interval-ms=200".into()]);
    let bus = Bus::connect(&url, "loadgen-test", Duration::from_secs(5)).await.unwrap();
    let mut loads = bus.subscribe_loads().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), loads.next()).await.expect("node up");
    ready(&bus, 1).await;
    let mut radio = bus.subscribe_radio("node-1").await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    const DOUBLE: &str = "def main(x):\n    return x * 2\n";
    std::fs::write(dir.path().join("double.py"), DOUBLE).unwrap();
    let counter = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/counter.py");
    let scenario = format!(
        r#"
name = "lgtest"
duration_s = 2.5
seed = 4
[mesh]
nodes = 1
[radio]
period_ms = 50
default = "constant:0.45"
[burn]
node = "node-1"
[stream]
rate = 8
count = 6
[[jobs]]
name = "double"
file = "double.py"
inputs = [1, 2, 3]
[[jobs]]
name = "counter"
file = {counter:?}
inputs = [{{ steps = 50, sleep_every = 10 }}]
r_limit_ms = 2000
priority = 3
"#
    );
    let path = dir.path().join("lgtest.toml");
    std::fs::write(&path, scenario).unwrap();

    let t0 = microlambda::wire::now_ms() + 300;
    let mut cmd = Command::new(loadgen_exe());
    cmd.arg("--scenario").arg(&path).arg(format!("--nats={url}")).arg(format!("--t0-unix-ms={t0}"));
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    let t = &v["loadgen"];
    assert_eq!(
        (&t["submitted"], &t["accepted"], &t["refused"], &t["duplicate"]),
        (&6.into(), &6.into(), &0.into(), &0.into()),
        "{v}"
    );
    let kinds = t["kinds"].as_object().unwrap();
    assert_eq!(kinds.keys().collect::<Vec<_>>(), ["counter", "double"]);
    assert_eq!(kinds.values().map(|n| n.as_u64().unwrap()).sum::<u64>(), 6);

    // The job ids derive from the name and t0; each record holds its kind's entry, input, limit and priority.
    for i in 0..6 {
        let id = format!("lgtest-{t0:x}-{i:05}");
        let (r, _) = bus.record(&id).await.unwrap().unwrap_or_else(|| panic!("no record {id}"));
        // The gateway keeps an inline source apart: the record names it by its digest.
        assert!(r.function.source.is_none() && r.function.source_sha256.is_some(), "{r:?}");
        if r.function.runs_source(DOUBLE) {
            assert!([1, 2, 3].map(serde_json::Value::from).contains(&r.input), "{r:?}");
            assert_eq!((r.r_limit_ms, r.priority), (None, 0));
        } else {
            assert_eq!((r.r_limit_ms, r.priority), (Some(2000), 3), "{r:?}");
        }
        assert_eq!(r.function.entry.as_deref(), Some("main"));
    }
    // The radio pattern reached the bus (the messages wait in the subscription).
    let m = tokio::time::timeout(Duration::from_secs(1), radio.next()).await.unwrap().unwrap();
    let r: microlambda::wire::RadioLoad = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(r.load, 0.45);
}

#[test]
fn a_bad_scenario_exits_non_zero_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "name = \"bad\"\nduration_s = 5\n[stream]\nrate = -1\n").unwrap();
    let out = Command::new(loadgen_exe()).arg("--scenario").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stream.rate"), "{err}");
    assert!(out.stdout.is_empty());
}
