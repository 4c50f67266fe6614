//! `microlambda-loadgen`: publish radio loads and submit a job stream to a mesh, then print how the jobs
//! ended.
use anyhow::Context as _;
use clap::Parser;
use microlambda::wire::FunctionRef;
use microlambda_loadgen::{parse_radio, Plan};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "microlambda-loadgen", version, about = "Radio load and job streams for a microlambda mesh")]
struct Cli {
    /// NATS server URL.
    #[arg(long, env = "MICROLAMBDA_NATS", default_value = microlambda::config::DEFAULT_NATS)]
    nats: String,
    /// Radio load of a node, NODE=PATTERN (repeatable). PATTERN: constant:L | step:FROM:TO:AFTER_S |
    /// ramp:FROM:TO:START_S:DURATION_S | sine:MEAN:AMPLITUDE:PERIOD_S[:PHASE_S] |
    /// bursty:LOW:HIGH:MEAN_LOW_S:MEAN_HIGH_S[:SEED] | replay:FILE.csv[:loop] (relative to the current directory).
    #[arg(long)]
    radio: Vec<String>,
    /// How often radio loads are published, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    radio_period_ms: u64,
    /// Jobs submitted per second (0: radio load only).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Stop submitting after this many jobs.
    #[arg(long)]
    jobs: Option<usize>,
    /// Python module submitted as each job's source...
    #[arg(long, conflicts_with = "function")]
    source: Option<PathBuf>,
    /// ...or the name of a deployed function (default: an inline identity function).
    #[arg(long)]
    function: Option<String>,
    /// Run this long, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let radio = cli.radio.iter().map(|r| parse_radio(r)).collect::<Result<Vec<_>, _>>()?;
    let function = match (&cli.source, &cli.function) {
        (Some(p), _) => FunctionRef {
            source: Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?),
            name: None,
            entry: None,
        },
        (None, Some(n)) => FunctionRef { source: None, name: Some(n.clone()), entry: None },
        (None, None) => FunctionRef { source: Some("def main(x):\n    return x\n".into()), name: None, entry: None },
    };
    let plan = Plan {
        radio,
        radio_period: Duration::from_millis(cli.radio_period_ms.max(10)),
        rate: cli.rate,
        jobs: cli.jobs,
        function,
        duration: Duration::from_secs_f64(cli.duration_s.max(0.0)),
    };
    let bus = microlambda::bus::Bus::connect(&cli.nats, "loadgen", Duration::from_secs(5)).await?;
    let stop = microlambda::runtime::shutdown_signal();
    let t = tokio::select! {
        t = microlambda_loadgen::run(&bus, &plan) => t?,
        _ = stop => { println!("loadgen: interrupted"); return Ok(()); }
    };
    println!(
        "loadgen: submitted {} accepted {} refused {} completed {} failed {}",
        t.submitted, t.accepted, t.refused, t.completed, t.failed
    );
    Ok(())
}
