//! Prometheus `/metrics` of real node and placement processes on a real nats-server: the values follow what
//! the mesh does (a job completed, a radio spike's evacuation, checkpoint and move) and say who leads.
mod common;

use common::{final_record, free_port, http_get, job_on_n1, until, Mesh};
use microlambda::wire::{EventKind, JobEvent};
use serde_json::json;
use std::time::{Duration, Instant};

const SLEEPER: &str = "import time\n\ndef main(x):\n    for i in range(x):\n        time.sleep(0.02)\n    return x\n";

/// The value of the sample `name` (with its labels, e.g. `m_total{node="n1"}`) in `addr`'s `/metrics`.
async fn sample(addr: &str, name: &str) -> f64 {
    let (status, text) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("# EOF\n"), "not OpenMetrics text: {text}");
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

/// Wait until the sample is `want` (they follow load reports and events, which take a moment).
async fn sample_becomes(addr: &str, name: &str, want: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = sample(addr, name).await;
        if want(v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{name} is still {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn node_and_placement_metrics_follow_jobs_moves_and_the_lease() {
    let (p, n1, n2) = (free_port(), free_port(), free_port());
    let (p, n1, n2) = (format!("127.0.0.1:{p}"), format!("127.0.0.1:{n1}"), format!("127.0.0.1:{n2}"));
    let mut mesh = Mesh::nats_only();
    for (k, v) in [
        ("PLACEMENT__COOLDOWN_MS", "300"),
        ("NODE__CHECKPOINT_INTERVAL_MS", "300"),
        ("PLACEMENT__METRICS_LISTEN", p.as_str()),
    ] {
        mesh.env.push((format!("MICROLAMBDA_{k}"), v.to_string()));
    }
    mesh.start_placement();
    mesh.start_node("n1", 0.1, &[&format!("--metrics-listen={n1}")]);
    mesh.start_node("n2", 0.9, &[&format!("--metrics-listen={n2}")]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 2).await;

    let done = |node: &str| format!("microlambda_node_jobs_completed_total{{node=\"{node}\"}}");
    sample_becomes(&p, "microlambda_placement_leader", |v| v == 1.0).await;
    sample_becomes(&n2, "microlambda_node_radio_load{node=\"n2\"}", |v| v == 0.9).await;
    assert_eq!(sample(&n1, &done("n1")).await, 0.0);
    assert_eq!(sample(&p, "microlambda_placement_placements_total").await, 0.0);

    // A job completes on n1 (n2 is hot): n1 counts it, placement counts the placement.
    let r =
        common::submit(&bus, &json!({"function": {"source": SLEEPER}, "input": 1, "job_id": "m-1"}).to_string()).await;
    assert_eq!(r["status"], "accepted", "{r}");
    let rec = final_record(&bus, "m-1", Duration::from_secs(20)).await;
    assert_eq!((rec["state"].as_str(), rec["node"].as_str()), (Some("completed"), Some("n1")), "{rec}");
    sample_becomes(&n1, &done("n1"), |v| v == 1.0).await;
    assert_eq!(sample(&p, "microlambda_placement_placements_total").await, 1.0);

    // A job running on n1 is seen there, then a radio spike moves it to n2: placement's evacuation, n1's
    // checkpoint and move out, n2's move in.
    let body = json!({"function": {"source": SLEEPER}, "input": 150, "job_id": "m-2"}).to_string();
    let mut events = job_on_n1(&mesh, &bus, "m-2", &body).await;
    sample_becomes(&n1, "microlambda_node_jobs_running{node=\"n1\"}", |v| v == 1.0).await;
    bus.publish_radio("n1", 0.95).await.unwrap();
    until(&mut events, Duration::from_secs(15), |e| matches!(&e.kind, EventKind::Migrated { .. })).await;
    sample_becomes(&n1, "microlambda_node_radio_load{node=\"n1\"}", |v| v == 0.95).await;
    sample_becomes(&p, "microlambda_placement_evacuations_total", |v| v >= 1.0).await;
    sample_becomes(&n1, "microlambda_node_migrations_out_total{node=\"n1\"}", |v| v == 1.0).await;
    sample_becomes(&n1, "microlambda_node_checkpoints_total{node=\"n1\"}", |v| v >= 1.0).await;
    sample_becomes(&n2, "microlambda_node_migrations_in_total{node=\"n2\"}", |v| v == 1.0).await;
    until(&mut events, Duration::from_secs(20), JobEvent::is_final).await;
    sample_becomes(&n2, &done("n2"), |v| v == 1.0).await;
    sample_becomes(&n2, "microlambda_node_jobs_running{node=\"n2\"}", |v| v == 0.0).await;
    assert_eq!(sample(&n1, "microlambda_node_jobs_failed_total{node=\"n1\"}").await, 0.0);
}
