//! The `microlambda-bench` binary: parse arguments, load config, call a benchmark. Nothing else lives here.
use clap::{Args, Parser, Subcommand};
use microlambda::config::{Overrides, Settings};
use microlambda_bench::migrate::{self as bm, Part};
use microlambda_bench::paper;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "microlambda-bench", version, about = "Benchmarks of microlambda (docs/BENCHMARKS.md)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Trivial jobs end to end through NATS: jobs/s and submit-to-result latency.
    Submit(SubmitCli),
    /// Checkpoint engine against pickle.dumps and pyteleport: capture, pause, size, restore.
    Checkpoint(CheckpointCli),
    /// Migration: evacuation latency, bytes per move, slicing overhead, placement decision time.
    Migrate(MigrateCli),
    /// Restore of a scikit-learn job's checkpoint: forked from the base zygote against a set zygote.
    Restore(RestoreCli),
    /// Requests to an idle session end to end: request-to-reply latency, moves between requests apart.
    Session(SessionCli),
    /// Reading the unfinished job records out of a bucket of mostly finished ones (the leader's rescan).
    Records(RecordsCli),
    /// The paper's evaluation (Figs. 4-7) on its three workloads: writes docs/EVALUATION.md and its plots.
    Paper(PaperCli),
}

#[derive(Args)]
struct PaperCli {
    /// A few requests of each figure (a test in `make test`), not the evaluation.
    #[arg(long)]
    quick: bool,
    /// Where EVALUATION.md and the `evaluation/` plots are written.
    #[arg(long, default_value = "docs")]
    out: PathBuf,
    /// The repository's root (the workloads' modules are in examples/paper/, their data in tests/data/).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Seed of the requests and of the checkpoint instants.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// TOML config file (default: configs/testbed.toml when it exists); the benchmark sets what it needs.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Only Figs. 6 and 7 (the batches on a mesh), printed as they run; EVALUATION.md is not written.
    #[arg(long, conflicts_with = "fig4")]
    fig6: bool,
    /// Only Figs. 4 and 5 (checkpoints at random instants, against the lower bound), printed per workload;
    /// EVALUATION.md is not written.
    #[arg(long)]
    fig4: bool,
    /// The workloads to run (default: all three).
    #[arg(long, value_delimiter = ',', default_value = "face,ride,stress")]
    workloads: Vec<String>,
    /// Fig. 6's runtime limits in seconds (default: the run's size: 2,5,10,20, or 2 with --quick).
    #[arg(long, value_delimiter = ',')]
    r_limits: Option<Vec<u64>>,
}

#[derive(Args)]
struct SessionCli {
    /// NATS server URL (default: a local testbed started for the run).
    #[arg(long)]
    nats: Option<String>,
    /// TOML config file (default: configs/testbed.toml when it exists).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Requests to the measured session (with --paper: to each workload's session; default 12 then).
    #[arg(long)]
    requests: Option<usize>,
    /// The paper's three workloads (examples/paper/) as sessions instead of the echo, on a one-node testbed
    /// per setting of node.module_zygotes (--module-zygotes); run from the repository's root.
    #[arg(long)]
    paper: bool,
    /// With --paper: the settings of node.module_zygotes to compare, one testbed each.
    #[arg(long, value_delimiter = ',', default_value = "0,2")]
    module_zygotes: Vec<usize>,
    /// With --paper: the wait after each session's first request, in ms (a module zygote coming up).
    #[arg(long, default_value_t = 20_000)]
    settle_ms: u64,
    /// With --paper: the pause before each later request, in ms.
    #[arg(long, default_value_t = 500)]
    gap_ms: u64,
    /// Without --paper: the pause before each request to the echo, in ms (0: back to back; a pause leaves the
    /// node time to fork and warm the next worker ahead, as between a user's requests).
    #[arg(long, default_value_t = 0)]
    pause_ms: u64,
}

#[derive(Args)]
struct RestoreCli {
    /// Restores through each pool.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
}

#[derive(Args)]
struct RecordsCli {
    /// Finished job records in the bucket.
    #[arg(long, default_value_t = 20_000)]
    finished: usize,
    /// Unfinished ones among them.
    #[arg(long, default_value_t = 100)]
    open: usize,
    /// Reads of each kind, alternating.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PartArg {
    Evacuation,
    Slicing,
    Decisions,
}

#[derive(Args)]
struct MigrateCli {
    /// TOML config file (default: configs/testbed.toml when it exists); the benchmark sets what it needs.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Job counts of the evacuation runs (one testbed each).
    #[arg(long, value_delimiter = ',', default_value = "1,10,50")]
    jobs: Vec<usize>,
    /// Evacuations per job count (the jobs go back and forth between two nodes).
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Runs of each slicing variant, interleaved.
    #[arg(long, default_value_t = 3)]
    slice_reps: usize,
    /// Loop iterations of the CPU-bound slicing job (about 4 s uninterrupted on the development machine).
    #[arg(long, default_value_t = 26_000_000)]
    slice_n: u64,
    /// Simulated nodes of the placement decision benchmark.
    #[arg(long, default_value_t = 1000)]
    decision_nodes: usize,
    /// Load reports fed to placement in the decision benchmark.
    #[arg(long, default_value_t = 20_000)]
    decision_reports: usize,
    /// The parts to run.
    #[arg(long, value_delimiter = ',', value_enum, default_value = "evacuation,slicing,decisions")]
    parts: Vec<PartArg>,
}

#[derive(Args)]
struct CheckpointCli {
    /// Checkpoints (and restores, at most 10) per workload.
    #[arg(long, default_value_t = 30)]
    rounds: usize,
    /// Also the paper's workloads on their real libraries (python/requirements-libs.txt), with the data of
    /// `--data`.
    #[arg(long)]
    libs: bool,
    /// The shared test data (ride graph, stress features, face images).
    #[arg(long, default_value = "tests/data")]
    data: PathBuf,
}

#[derive(Args)]
struct SubmitCli {
    /// NATS server URL (default: a local testbed started for the run).
    #[arg(long)]
    nats: Option<String>,
    /// TOML config file (default: configs/testbed.toml when it exists).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Jobs per run.
    #[arg(long, default_value_t = 2000)]
    jobs: usize,
    /// In-flight jobs of the throughput run (a latency run with 1 comes first).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Nodes of the local testbed (ignored with --nats).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Credentials for --nats (the local testbed's are its own).
    #[command(flatten)]
    auth: microlambda::auth::AuthArgs,
    /// Run on local testbeds open, with nkey users, and with nkey users and TLS, ROUNDS times each in turn, and
    /// print each mode against the open server (what authorization and TLS cost).
    #[arg(long, value_name = "ROUNDS", conflicts_with = "nats")]
    compare_security: Option<usize>,
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("microlambda-bench: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    microlambda::runtime::init_tracing();
    match cli.cmd {
        Cmd::Checkpoint(a) => {
            let python = microlambda::config::python_executable().unwrap_or_else(|| PathBuf::from("python3"));
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let data = std::fs::canonicalize(&a.data).unwrap_or(a.data.clone());
            let libs = a.libs.then_some(data.as_path());
            let rows = rt.block_on(microlambda_bench::checkpoint::checkpoint(a.rounds, &python, libs))?;
            print!("{}", microlambda_bench::checkpoint::markdown(&rows));
        }
        Cmd::Records(a) => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            print!("{}", rt.block_on(microlambda_bench::records::records(a.finished, a.open, a.rounds))?);
        }
        Cmd::Restore(a) => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            print!("{}", rt.block_on(microlambda_bench::restore::restore(a.rounds))?);
        }
        Cmd::Submit(a) => {
            let flags = Overrides::default().flag("testbed.nodes", Some(a.nodes as u64));
            let s = Settings::load_with(a.config.as_deref(), "testbed", flags)?;
            a.auth.resolve(a.nats.as_deref().unwrap_or_default(), "client").install();
            match a.compare_security {
                Some(rounds) => {
                    let table = microlambda::runtime::block_on(microlambda_bench::submit::compare_security(
                        s,
                        a.jobs,
                        a.concurrency,
                        rounds,
                    ))?;
                    print!("{table}");
                }
                None => {
                    microlambda::runtime::block_on(microlambda_bench::submit::main(s, a.nats, a.jobs, a.concurrency))?;
                }
            }
        }
        Cmd::Session(a) => {
            let s = Settings::load(a.config.as_deref(), "testbed")?;
            if a.paper {
                let root = std::env::current_dir()?;
                let gap = (std::time::Duration::from_millis(a.settle_ms), std::time::Duration::from_millis(a.gap_ms));
                let requests = a.requests.unwrap_or(12);
                let bench = microlambda_bench::session::paper(&s, &root, requests, &a.module_zygotes, gap);
                microlambda::runtime::block_on(bench)?;
            } else {
                let requests = a.requests.unwrap_or(200);
                let pause = std::time::Duration::from_millis(a.pause_ms);
                microlambda::runtime::block_on(microlambda_bench::session::main(s, a.nats, requests, pause))?;
            }
        }
        Cmd::Paper(a) => {
            let settings = Settings::load(a.config.as_deref(), "testbed")?;
            let mut sizes = if a.quick { paper::Sizes::quick() } else { paper::Sizes::full() };
            if let Some(r) = a.r_limits {
                sizes.r_limits_s = r;
            }
            if let Some(w) = a.workloads.iter().find(|w| !paper::WORKLOADS.iter().any(|k| k.name == w.as_str())) {
                anyhow::bail!("no workload {w:?} (face, ride, stress)");
            }
            if !a.fig6 && !a.fig4 && a.workloads.len() < paper::WORKLOADS.len() {
                anyhow::bail!("--workloads chooses among the workloads of --fig4 or --fig6 (the report has all three)");
            }
            let root = std::fs::canonicalize(&a.root)?;
            std::fs::create_dir_all(&a.out)?;
            let out = std::fs::canonicalize(&a.out)?;
            let command = format!("microlambda-bench paper{}", if a.quick { " --quick" } else { "" });
            let workloads = a.workloads.clone();
            let opts = paper::Options { sizes, quick: a.quick, out, root, seed: a.seed, settings, command, workloads };
            if a.fig6 {
                microlambda::runtime::block_on(paper::run_batches(&opts))?;
            } else if a.fig4 {
                microlambda::runtime::block_on(paper::run_instants(&opts))?;
            } else {
                microlambda::runtime::block_on(paper::run(&opts))?;
                println!("paper: wrote {}", opts.out.join("EVALUATION.md").display());
            }
        }
        Cmd::Migrate(a) => {
            let s = Settings::load(a.config.as_deref(), "testbed")?;
            let opts = bm::Options {
                jobs: a.jobs,
                rounds: a.rounds,
                slice_reps: a.slice_reps,
                slice_n: a.slice_n,
                decisions: bm::DecisionOptions {
                    nodes: a.decision_nodes,
                    reports: a.decision_reports,
                    ..Default::default()
                },
                parts: a
                    .parts
                    .iter()
                    .map(|p| match p {
                        PartArg::Evacuation => Part::Evacuation,
                        PartArg::Slicing => Part::Slicing,
                        PartArg::Decisions => Part::Decisions,
                    })
                    .collect(),
            };
            microlambda::runtime::block_on(bm::main(s, opts))?;
        }
    }
    Ok(())
}
