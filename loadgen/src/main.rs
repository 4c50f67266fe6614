//! `microlambda-loadgen`: publish radio loads and submit a job stream to a mesh, either from flags (then print
//! how the jobs ended) or from a scenario file (then print one JSON line counting the submissions).
use anyhow::Context as _;
use clap::Parser;
use microlambda::scenario::Scenario;
use microlambda::wire::FunctionRef;
use microlambda_loadgen::{parse_radio, Plan};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "microlambda-loadgen", version, about = "Radio load and job streams for a microlambda mesh")]
struct Cli {
    /// NATS server URL (default: env MICROLAMBDA_NATS, then a running `microlambda testbed`'s, then
    /// nats://127.0.0.1:4222).
    #[arg(long, env = "MICROLAMBDA_NATS", default_value_t = microlambda::config::default_nats())]
    nats: String,
    /// Play a scenario file (docs/SCENARIOS.md): its radio patterns, CPU burn and job stream for its
    /// duration_s, then print {"loadgen": {...}} and exit without waiting for the jobs.
    #[arg(long, conflicts_with_all = ["radio", "radio_period_ms", "rate", "jobs", "source", "function", "input", "duration_s"])]
    scenario: Option<PathBuf>,
    /// With --scenario: t=0 as a wall-clock instant in Unix milliseconds (default: now), so that the
    /// testbed and the loadgen share one clock.
    #[arg(long, requires = "scenario")]
    t0_unix_ms: Option<u64>,
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
    /// Every job's input, as JSON (default: the job's number, 1, 2, ...).
    #[arg(long)]
    input: Option<String>,
    /// Run this long, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    #[command(flatten)]
    auth: microlambda::auth::AuthArgs,
}

#[tokio::main]
async fn main() {
    // Errors as every microlambda command prints them: one line, each cause once, exit status 1.
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("microlambda-loadgen: {}", microlambda::runtime::error_text(&e));
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // It drives every node's radio load: a running testbed's ops identity unless credentials are given.
    cli.auth.resolve(&cli.nats, "ops").install();
    match &cli.scenario {
        Some(path) => scenario(&cli, path).await,
        None => flags(&cli).await,
    }
}

/// `--scenario FILE`.
async fn scenario(cli: &Cli, path: &std::path::Path) -> anyhow::Result<()> {
    // The error's message names the file and holds its causes.
    let sc = Scenario::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let bus = microlambda::bus::Bus::connect_running(&cli.nats, "loadgen", Duration::from_secs(5)).await?;
    let t0 = cli.t0_unix_ms.unwrap_or_else(microlambda::wire::now_ms);
    let tally = microlambda_loadgen::scenario::run(&bus, &sc, t0, microlambda::runtime::shutdown_signal()).await;
    let _ = bus.flush().await;
    if tally.radio_errors > 0 {
        eprintln!("loadgen: {} radio-load publications failed", tally.radio_errors);
    }
    // A struct, not json!(): the keys print in the documented order.
    #[derive(serde::Serialize)]
    struct Line<'a> {
        loadgen: &'a microlambda_loadgen::scenario::ScenarioTally,
    }
    println!("{}", serde_json::to_string(&Line { loadgen: &tally })?);
    if tally.interrupted {
        eprintln!("loadgen: interrupted before the end of the load phase");
        std::process::exit(130);
    }
    Ok(())
}

/// The plain command line: one function at a fixed rate; then how the jobs ended and how many ran on more than
/// one node (the jobs still running [`microlambda_loadgen::DRAIN`] after the end count as neither).
async fn flags(cli: &Cli) -> anyhow::Result<()> {
    let radio = cli.radio.iter().map(|r| parse_radio(r)).collect::<Result<Vec<_>, _>>()?;
    let function = match (&cli.source, &cli.function) {
        (Some(p), _) => {
            FunctionRef::inline(&std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?)
        }
        (None, Some(n)) => FunctionRef::deployed(n),
        (None, None) => FunctionRef::inline("def main(x):\n    return x\n"),
    };
    let input = match &cli.input {
        Some(s) => Some(microlambda::client::parse_input(s)?),
        None => None,
    };
    let plan = Plan {
        input,
        radio,
        radio_period: Duration::from_millis(cli.radio_period_ms.max(10)),
        rate: cli.rate,
        jobs: cli.jobs,
        function,
        duration: Duration::from_secs_f64(cli.duration_s.max(0.0)),
    };
    let bus = microlambda::bus::Bus::connect_running(&cli.nats, "loadgen", Duration::from_secs(5)).await?;
    let stop = microlambda::runtime::shutdown_signal();
    let t = tokio::select! {
        t = microlambda_loadgen::run(&bus, &plan) => t?,
        _ = stop => { println!("loadgen: interrupted"); return Ok(()); }
    };
    println!(
        "loadgen: submitted {} accepted {} refused {} completed {} failed {} moved {}",
        t.submitted, t.accepted, t.refused, t.completed, t.failed, t.moved
    );
    if plan.input.is_some() && t.completed > 0 {
        // One input for every job: a moved job that ended exactly as the others adds no output.
        println!("loadgen: one input, {} distinct output(s) of the {} completed jobs", t.distinct_outputs, t.completed);
    }
    Ok(())
}
