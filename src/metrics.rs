//! Prometheus metrics of a node and of placement (`--metrics-listen`, `node.metrics_listen`,
//! `placement.metrics_listen`; off by default), in the OpenMetrics text format at `/metrics` on the shared
//! [`crate::http`] server. The metric names are listed in docs/PROTOCOL.md ("Metrics").
use crate::http::{self, Reply};
use crate::wire::{EventKind, LoadReport};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::borrow::Cow;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A node's metrics, labelled with its id. Clones share the values.
#[derive(Clone, Debug)]
pub struct NodeMetrics {
    registry: Arc<Registry>,
    cpu_headroom: Gauge<f64, AtomicU64>,
    radio_load: Gauge<f64, AtomicU64>,
    jobs_running: Gauge,
    jobs_completed: Counter,
    jobs_failed: Counter,
    checkpoints: Counter,
    migrations_in: Counter,
    migrations_out: Counter,
}

impl NodeMetrics {
    pub fn new(node: &str) -> Self {
        let mut r = Registry::with_prefix_and_labels(
            "microlambda_node",
            [(Cow::Borrowed("node"), Cow::Owned(node.to_string()))].into_iter(),
        );
        let m = NodeMetrics {
            registry: Arc::new(Registry::default()),
            cpu_headroom: Gauge::default(),
            radio_load: Gauge::default(),
            jobs_running: Gauge::default(),
            jobs_completed: Counter::default(),
            jobs_failed: Counter::default(),
            checkpoints: Counter::default(),
            migrations_in: Counter::default(),
            migrations_out: Counter::default(),
        };
        r.register(
            "cpu_headroom",
            "Idle share of the machine's CPU (0..1) at the last load report",
            m.cpu_headroom.clone(),
        );
        r.register("radio_load", "The BBU's radio load (0..1)", m.radio_load.clone());
        r.register("jobs_running", "Jobs the node holds", m.jobs_running.clone());
        r.register("jobs_completed", "Jobs (and sessions) that ended here with an output", m.jobs_completed.clone());
        r.register("jobs_failed", "Jobs that failed here", m.jobs_failed.clone());
        r.register("checkpoints", "Checkpoints committed here (periodic and on leaving)", m.checkpoints.clone());
        r.register("migrations_in", "Jobs adopted from another node and running here", m.migrations_in.clone());
        r.register("migrations_out", "Jobs handed to another node that took them", m.migrations_out.clone());
        NodeMetrics { registry: Arc::new(r), ..m }
    }

    /// The gauges, from the report the node publishes.
    pub fn report(&self, r: &LoadReport) {
        self.cpu_headroom.set(r.cpu_headroom);
        self.radio_load.set(r.radio_load);
        self.jobs_running.set(r.jobs_running as i64);
    }

    /// The counters, from an event the node publishes about one of its jobs.
    pub fn event(&self, e: &EventKind) {
        match e {
            EventKind::Completed { .. } => self.jobs_completed.inc(),
            EventKind::Failed { .. } => self.jobs_failed.inc(),
            EventKind::Checkpointed { .. } => self.checkpoints.inc(),
            EventKind::Migrated { .. } => self.migrations_in.inc(),
            _ => 0,
        };
    }

    /// Another node took a job from this one.
    pub fn moved_out(&self) {
        self.migrations_out.inc();
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }
}

/// Placement's metrics (every placement process; only the leader places and evacuates).
#[derive(Clone, Debug)]
pub struct PlacementMetrics {
    registry: Arc<Registry>,
    placements: Counter,
    evacuations: Counter,
    leader: Gauge,
}

impl PlacementMetrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("microlambda_placement");
        let m = PlacementMetrics {
            registry: Arc::new(Registry::default()),
            placements: Counter::default(),
            evacuations: Counter::default(),
            leader: Gauge::default(),
        };
        r.register("placements", "Jobs (or slices) a node accepted from this placement", m.placements.clone());
        r.register("evacuations", "Jobs this placement asked a hot node to move", m.evacuations.clone());
        r.register("leader", "1 while this process holds the placement lease, else 0", m.leader.clone());
        PlacementMetrics { registry: Arc::new(r), ..m }
    }

    pub fn placed(&self) {
        self.placements.inc();
    }

    pub fn evacuating(&self, jobs: usize) {
        self.evacuations.inc_by(jobs as u64);
    }

    pub fn set_leader(&self, leads: bool) {
        self.leader.set(i64::from(leads));
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }
}

impl Default for PlacementMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The registry in the OpenMetrics text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    encode(&mut out, registry).expect("writing to a String cannot fail");
    out
}

/// Bind `addr` now (a bad or busy address is an error at start-up), then serve `/metrics` on a task.
pub async fn serve(what: &'static str, addr: &str, registry: Arc<Registry>) -> Result<(), http::HttpError> {
    let listener = http::bind(what, addr).await?;
    tracing::info!("metrics at http://{}/metrics", listener.local_addr().map(|a| a.to_string()).unwrap_or_default());
    let routes: http::Routes = Arc::new(move |path: &str| match path {
        "/metrics" => Reply::ok(CONTENT_TYPE, render(&registry)),
        "/" => Reply::ok("text/plain; charset=utf-8", "metrics: /metrics\n"),
        other => Reply::not_found(other),
    });
    tokio::spawn(http::serve(listener, routes));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_metrics_count_the_nodes_events_and_carry_its_id() {
        let m = NodeMetrics::new("n1");
        m.event(&EventKind::Completed { node: "n1".into(), output: serde_json::Value::Null });
        m.event(&EventKind::Migrated { from: "n2".into(), to: "n1".into(), ms: 1.0, bytes: 9 });
        m.event(&EventKind::Accepted);
        m.moved_out();
        let text = render(&m.registry());
        assert!(text.contains("microlambda_node_jobs_completed_total{node=\"n1\"} 1"), "{text}");
        assert!(text.contains("microlambda_node_migrations_in_total{node=\"n1\"} 1"), "{text}");
        assert!(text.contains("microlambda_node_migrations_out_total{node=\"n1\"} 1"), "{text}");
        assert!(text.contains("microlambda_node_jobs_failed_total{node=\"n1\"} 0"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn placement_metrics_say_who_leads() {
        let m = PlacementMetrics::new();
        m.set_leader(true);
        m.evacuating(3);
        let text = render(&m.registry());
        assert!(text.contains("microlambda_placement_leader 1"), "{text}");
        assert!(text.contains("microlambda_placement_evacuations_total 3"), "{text}");
    }
}
