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
        function: FunctionRef { source: Some("def main(x):\n    return x * 2\n".into()), name: None, entry: None },
        duration: Duration::from_millis(1500),
    };
    let tally = microlambda_loadgen::run(&bus, &plan).await.unwrap();
    assert_eq!((tally.submitted, tally.accepted, tally.refused), (10, 10, 0), "{tally:?}");
    assert_eq!(tally.completed, 10, "{tally:?}");

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
