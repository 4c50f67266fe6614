//! `microlambda-bench records`: how long the placement leader takes to find the unfinished job records in a
//! bucket that mostly holds finished ones (records are kept 24 h), as its rescan and its recovery after a
//! take-over do. Two ways side by side, alternating, on one embedded nats-server: a read per key (list the
//! keys, then get each record: what `Bus::unfinished_records` did before) against one ordered consumer that
//! delivers the latest entry of every key (what it does now).
use microlambda::bus::Bus;
use microlambda::natsd::NatsServer;
use microlambda::stats::percentile;
use microlambda::table::{self, Align};
use microlambda::wire::{FunctionRef, JobRecord, JobState};
use std::time::{Duration, Instant};

/// Write `finished` completed records and `open` queued ones, then time both reads `rounds` times each.
pub async fn records(finished: usize, open: usize, rounds: usize) -> anyhow::Result<String> {
    let server = NatsServer::start(None)?;
    let bus = Bus::connect(&server.url(), "bench-records", Duration::from_secs(10)).await?;
    let f = FunctionRef::inline("def main(x):\n    return x\n");
    let t = Instant::now();
    for i in 0..finished + open {
        let id = format!("bench-{i:06}");
        let mut r = JobRecord::queued(&id, f.clone(), serde_json::json!({"i": i}), 0, None);
        if i % (finished + open).div_ceil(open.max(1)) != 0 || open == 0 {
            r.state = JobState::Completed;
            r.output = Some(serde_json::json!(i));
        }
        bus.create_record(&r).await?;
    }
    let stored = bus.record_ids().await?.len();
    eprintln!("{stored} records written in {:.1} s", t.elapsed().as_secs_f64());
    let (mut per_key, mut one_pass) = (Vec::new(), Vec::new());
    let mut found = (0, 0);
    for _ in 0..rounds {
        let t = Instant::now();
        let mut n = 0;
        for id in bus.record_ids().await? {
            if bus.record(&id).await?.is_some_and(|(r, _)| !r.state.is_final()) {
                n += 1;
            }
        }
        per_key.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let m = bus.unfinished_records().await?.len();
        one_pass.push(t.elapsed().as_secs_f64() * 1e3);
        found = (n, m);
    }
    anyhow::ensure!(found.0 == found.1, "the two reads disagree: {} against {} unfinished", found.0, found.1);
    let p50 = |v: &[f64]| crate::num(percentile(v, 0.5).unwrap_or(f64::NAN), 1);
    let head = [
        ("read of the unfinished records", Align::Left),
        ("records", Align::Right),
        ("unfinished", Align::Right),
        ("p50 ms", Align::Right),
        ("rounds", Align::Right),
    ];
    let row = |name: &str, v: &[f64]| {
        vec![name.to_string(), stored.to_string(), found.1.to_string(), p50(v), v.len().to_string()]
    };
    let rows = vec![
        row("a read per key (keys, then get each)", &per_key),
        row("one ordered consumer, last entry per key", &one_pass),
    ];
    Ok(table::markdown(&head, &rows))
}
