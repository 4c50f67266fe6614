//! `microlambda watch`: the nodes' load as a live table, from `node.load.*` (and `node.gone.*`). Its feed
//! ([`NodeFeed`]) and table ([`LoadTable`]) are also what `microlambda dashboard` shows.
use super::ClientError;
use crate::bus::{Bus, Subscriber};
use crate::wire::{now_ms, LoadReport};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// The latest report of every node seen, by node id.
#[derive(Debug, Default, Clone)]
pub struct LoadTable {
    pub nodes: BTreeMap<String, LoadReport>,
    pub gone: BTreeMap<String, u64>,
}

/// One thing the nodes' subjects said, parsed.
#[derive(Debug, Clone)]
pub enum NodeUpdate {
    /// A node's load report (`node.load.<id>`).
    Load(LoadReport),
    /// Placement declared the node gone (`node.gone.<id>`).
    Gone(String),
}

/// The subscriptions to `node.load.*` and `node.gone.*` (ops only on a secured mesh), as parsed updates.
pub struct NodeFeed {
    loads: Subscriber,
    gone: Subscriber,
}

impl NodeFeed {
    pub async fn subscribe(bus: &Bus) -> Result<Self, ClientError> {
        Ok(NodeFeed { loads: bus.subscribe_loads().await?, gone: bus.subscribe_gone().await? })
    }

    /// The next update (a report that does not parse, or that names another node than its subject, is
    /// skipped); None once the connection is closed for good. Cancel-safe: nothing is lost when dropped.
    pub async fn next(&mut self) -> Option<NodeUpdate> {
        loop {
            tokio::select! {
                Some(m) = self.loads.next() => {
                    match serde_json::from_slice::<LoadReport>(&m.payload) {
                        Ok(r) if r.node == Bus::node_of(&m) => return Some(NodeUpdate::Load(r)),
                        _ => tracing::debug!("ignoring a bad load report on {}", m.subject),
                    }
                }
                Some(m) = self.gone.next() => return Some(NodeUpdate::Gone(Bus::node_of(&m).to_string())),
                else => return None,
            }
        }
    }
}

impl LoadTable {
    pub fn apply(&mut self, u: NodeUpdate) {
        match u {
            NodeUpdate::Load(r) => self.update(r),
            NodeUpdate::Gone(node) => self.mark_gone(&node),
        }
    }

    pub fn update(&mut self, r: LoadReport) {
        self.gone.remove(&r.node);
        self.nodes.insert(r.node.clone(), r);
    }
    pub fn mark_gone(&mut self, node: &str) {
        self.nodes.remove(node);
        self.gone.insert(node.to_string(), now_ms());
    }

    /// A fixed-width table; `now_ms` dates the AGE column.
    pub fn render(&self, now_ms: u64) -> String {
        let mut s = format!(
            "{:<12} {:>8} {:>7} {:>10} {:>9} {:>5} {:>7}\n",
            "NODE", "CPU_FREE", "RADIO", "MEM_FREE", "JOBS", "WARM", "AGE"
        );
        for r in self.nodes.values() {
            s.push_str(&format!(
                "{:<12} {:>7.0}% {:>6.0}% {:>8}Mi {:>4}/{:<4} {:>5} {:>6.1}s\n",
                r.node,
                r.cpu_headroom * 100.0,
                r.radio_load * 100.0,
                r.mem_available_bytes / (1024 * 1024),
                r.jobs_running,
                r.slots,
                r.warm_workers,
                now_ms.saturating_sub(r.ts) as f64 / 1000.0
            ));
        }
        for node in self.gone.keys() {
            s.push_str(&format!("{node:<12} gone\n"));
        }
        s
    }
}

/// Print the table every `every` until Ctrl-C (or once, after one interval, with `once`).
pub async fn watch(bus: &Bus, every: Duration, once: bool) -> Result<(), ClientError> {
    let mut feed = NodeFeed::subscribe(bus).await?;
    let mut table = LoadTable::default();
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    let tty = std::io::stdout().is_terminal();
    let stop = crate::runtime::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            Some(u) = feed.next() => table.apply(u),
            _ = tick.tick() => {
                let mut out = std::io::stdout().lock();
                if tty && !once {
                    let _ = write!(out, "\x1b[2J\x1b[H");
                }
                let _ = write!(out, "{}", table.render(now_ms()));
                let _ = out.flush();
                if once {
                    return Ok(());
                }
            }
            _ = &mut stop => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_every_node_and_the_gone_ones() {
        let mut t = LoadTable::default();
        for (node, radio) in [("n2", 0.5), ("n1", 0.25)] {
            t.update(LoadReport {
                node: node.into(),
                ts: 1000,
                cpu_headroom: 0.75,
                radio_load: radio,
                mem_available_bytes: 2 << 30,
                jobs_running: 1,
                slots: 2,
                warm_workers: 1,
                set_zygotes: 0,
                set_zygote_restores: 0,
                module_zygotes: 0,
                module_zygote_restores: 0,
                module_zygote_failures: 0,
                restores_forked_ahead: 0,
                modules_taught: 0,
                set_zygotes_from_peers: 0,
                module_zygotes_from_peers: 0,
                jobs: Vec::new(),
            });
        }
        t.mark_gone("n2");
        let s = t.render(1500);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 3, "{s}");
        assert!(lines[1].starts_with("n1") && lines[1].contains("25%") && lines[1].contains("0.5s"), "{s}");
        assert!(lines[2].starts_with("n2") && lines[2].contains("gone"), "{s}");
    }
}
