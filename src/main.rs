//! The `microlambda` binary: parses arguments and calls the library.
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "microlambda", version, about = "Checkpoint, shed and migrate offloaded Python jobs on edge nodes")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// A Python worker process (started by nodes and by `run`; speaks the pipe protocol on stdin/stdout).
    Worker,
    /// Run FILE.py[:FUNC] locally in a worker, checkpointing and restoring it at each preemption.
    Run {
        /// FILE.py or FILE.py:FUNC (default function: main).
        target: String,
        /// The function's one argument, as JSON.
        #[arg(long, default_value = "null")]
        input: String,
        /// Preempt every MS milliseconds of running.
        #[arg(long, value_name = "MS")]
        preempt_every: Option<u64>,
        /// Preempt at these instants (ms since the job started running).
        #[arg(long, value_name = "MS,MS,...", value_delimiter = ',')]
        preempt_at: Vec<u64>,
        /// Keep every checkpoint as a file here.
        #[arg(long, value_name = "DIR")]
        checkpoint_dir: Option<PathBuf>,
        /// Print checkpoint statistics on stderr.
        #[arg(long)]
        stats: bool,
        /// How long a checkpoint may wait for a resumable instant.
        #[arg(long, default_value_t = 2000, value_name = "MS")]
        deadline: u64,
        /// Snapshot and continue instead of moving the job to a new worker at each preemption.
        #[arg(long)]
        keep_running: bool,
    },
    /// Continue a saved checkpoint to the end.
    Resume {
        checkpoint: PathBuf,
        /// The job's source (default: the file recorded next to the checkpoint).
        #[arg(long)]
        source: Option<PathBuf>,
        #[arg(long, value_name = "MS")]
        preempt_every: Option<u64>,
        #[arg(long)]
        stats: bool,
        #[arg(long, default_value_t = 2000, value_name = "MS")]
        deadline: u64,
    },
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Worker => microlambda::py::worker_main(),
        Cmd::Run { target, input, preempt_every, preempt_at, checkpoint_dir, stats, deadline, keep_running } => {
            let args = microlambda::run::RunArgs {
                target,
                input,
                preempt_every_ms: preempt_every,
                preempt_at_ms: preempt_at,
                checkpoint_dir,
                stats,
                deadline_ms: deadline,
                continue_mode: keep_running,
                key: microlambda::run::local_key(),
            };
            local(&args, None)
        }
        Cmd::Resume { checkpoint, source, preempt_every, stats, deadline } => {
            let args = microlambda::run::RunArgs {
                preempt_every_ms: preempt_every,
                stats,
                deadline_ms: deadline,
                key: microlambda::run::local_key(),
                ..Default::default()
            };
            local(&args, Some((checkpoint, source)))
        }
    };
    std::process::exit(code);
}

fn local(args: &microlambda::run::RunArgs, resume: Option<(PathBuf, Option<PathBuf>)>) -> i32 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let r = rt.block_on(async {
        match &resume {
            None => microlambda::run::run(args).await,
            Some((ck, src)) => microlambda::run::resume(args, ck, src.as_deref()).await,
        }
    });
    match r {
        Ok(o) => {
            if args.stats {
                eprint!("{}", microlambda::run::format_stats(&o));
            }
            println!("{}", o.output_json);
            0
        }
        Err(e) => {
            eprintln!("microlambda: {e}");
            1
        }
    }
}
