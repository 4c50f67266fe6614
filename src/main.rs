//! The `microlambda` binary: parse arguments, load config, call the library. Nothing else lives here.
use anyhow::bail;
use clap::{Args, Parser, Subcommand};
use microlambda::client::{self, SubmitArgs, SubmitOutcome};
use microlambda::config::{Overrides, Settings};
use microlambda::wire::JobState;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "microlambda", version, about = "Run offloaded Python jobs on 5G edge nodes (BBUs) over NATS")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct Common {
    /// NATS server URL (default: env MICROLAMBDA_NATS, config `nats`, then the URL of a running
    /// `microlambda testbed` from ~/.cache/microlambda/nats-url, then nats://127.0.0.1:4222).
    #[arg(long, global = true)]
    nats: Option<String>,
    /// TOML config file (default: configs/<component>.toml when it exists).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    auth: microlambda::auth::AuthArgs,
}

impl Common {
    /// Connect with the credentials of the flags (or their variables); with none of them, a client of a
    /// running testbed (its URL) connects as that testbed's `identity`.
    fn install_auth(&self, nats: &str, identity: &str) {
        self.auth.resolve(nats, identity).install();
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a node (one BBU): report load, run assigned jobs in warm worker processes.
    Node(NodeArgs),
    /// Run placement and the gateway that answers jobs.submit and jobs.status.
    Placement(PlacementArgs),
    /// A stand-alone Python worker process (started by `run`; speaks the pipe protocol on stdin/stdout).
    Worker,
    /// A node's zygote: a warm interpreter that forks a worker per job (started by nodes; fd 0 is its socket).
    Zygote,
    /// Run FILE.py[:FUNC] locally in a worker, checkpointing and restoring it at each preemption.
    Run {
        /// FILE.py or FILE.py:FUNC (default function: main).
        target: String,
        /// The function's one argument, as JSON (or @FILE: the JSON in FILE).
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
    /// Start a local mesh: nats-server (unless --nats), placement and nodes; --demo runs sample jobs and exits.
    Testbed(TestbedArgs),
    /// Submit a Python module (FILE.py) or a deployed function (--name) as a job.
    Submit(SubmitCli),
    /// Store a function module in the mesh under a name.
    Deploy(DeployCli),
    /// Show a job's state and, when done, its output.
    Status(StatusCli),
    /// Show the nodes' load as a live table.
    Watch(WatchCli),
    /// Serve the ops view: a live web page of the nodes' load, their jobs and the migrations (as ops).
    Dashboard(DashboardCli),
    /// A stateful session: open one, send it requests, close it (docs/PROTOCOL.md, "Sessions").
    Session(SessionCli),
    /// The identities of a secured mesh: make them (`init`), print one's seed (`seed`) (docs/SECURITY.md).
    Auth(AuthCli),
    /// Create the mesh's streams and buckets, as ops, before the other processes of a secured mesh start (they
    /// have no JetStream admin rights). Replicas: MICROLAMBDA_NATS_REPLICAS.
    Setup(SetupCli),
}

#[derive(Args)]
struct SessionCli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    cmd: SessionCmd,
}

#[derive(Subcommand)]
enum SessionCmd {
    /// Open a session on a generator function or a class with handle(request); prints its id, then the
    /// opening's reply.
    Open {
        /// Python module with the session's function (omit with --name).
        file: Option<PathBuf>,
        /// A deployed function instead of a file.
        #[arg(long, conflicts_with = "file")]
        name: Option<String>,
        /// The generator function or class (default: main, or the deployed entry).
        #[arg(long)]
        entry: Option<String>,
        /// JSON passed to it when it opens (or @FILE: the JSON in FILE).
        #[arg(long, default_value = "null", allow_hyphen_values = true)]
        input: String,
        /// The session's id (default: a new one).
        #[arg(long)]
        id: Option<String>,
        /// Runtime limit per slice of a request, in milliseconds.
        #[arg(long)]
        r_limit_ms: Option<u64>,
    },
    /// Send a request and print its reply.
    Request {
        id: String,
        /// The request, as JSON (or @FILE: the JSON in FILE).
        #[arg(long, default_value = "null", allow_hyphen_values = true)]
        input: String,
    },
    /// Close the session once the requests before are answered; prints what closing it returned.
    Close { id: String },
}

#[derive(Args)]
struct AuthCli {
    #[command(subcommand)]
    cmd: AuthCmd,
}

#[derive(Subcommand)]
enum AuthCmd {
    /// Make (or keep) the mesh's identities in DIR, owner-only: an nkey per identity (ops, placement, client,
    /// node-<id> and radio-<id> per node), the mesh's checkpoint key (mesh.key) and nats-server's
    /// configuration (nats-server.conf: public keys and permissions). Keys already there are kept.
    Init {
        #[arg(long, env = "MICROLAMBDA_AUTH_DIR", value_name = "DIR")]
        dir: PathBuf,
        /// The node ids (comma-separated).
        #[arg(long, required = true, value_delimiter = ',', value_name = "ID,ID,...")]
        nodes: Vec<String>,
        /// When the servers' JetStream writes to disk (`jetstream.sync_interval` in nats-server.conf):
        /// `default` (the server's, every 2 minutes), `always` (before every acknowledgement: nothing lost on
        /// power failure) or a duration (`500ms`, `10s`, `1m`); docs/PROTOCOL.md, "Durability".
        #[arg(long, env = "MICROLAMBDA_NATS_SYNC_INTERVAL", default_value = "default", value_name = "WHEN")]
        nats_sync_interval: String,
        /// The names and addresses clients reach the servers at (comma-separated): the servers then require
        /// TLS, with a certificate for these from the mesh's own CA (ca.pem, made once; clients give it as
        /// --tls-ca). None: no TLS.
        #[arg(long, value_delimiter = ',', value_name = "HOST,HOST,...")]
        tls_hosts: Vec<String>,
    },
    /// Print the mesh's CA certificate (a client's --tls-ca file), for a DIR made with --tls-hosts.
    Ca {
        #[arg(long, env = "MICROLAMBDA_AUTH_DIR", value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print the nkey seed of one identity of DIR (for a client's `--nkey` file).
    Seed {
        #[arg(long, env = "MICROLAMBDA_AUTH_DIR", value_name = "DIR")]
        dir: PathBuf,
        /// The identity (`client`, `ops`, ...).
        name: String,
    },
}

#[derive(Args)]
struct SetupCli {
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct NodeArgs {
    #[command(flatten)]
    common: Common,
    /// Node id (a subject token).
    #[arg(long)]
    id: Option<String>,
    /// Static radio load 0..1 until radio.load.<id> says otherwise.
    #[arg(long)]
    radio_load: Option<f64>,
    #[arg(long)]
    slots: Option<usize>,
    #[arg(long)]
    report_interval_ms: Option<u64>,
    #[arg(long)]
    job_timeout_ms: Option<u64>,
    /// Serve Prometheus metrics at http://ADDR/metrics (HOST:PORT, e.g. 127.0.0.1:9464; default: off,
    /// or `node.metrics_listen`).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
}

#[derive(Args)]
struct PlacementArgs {
    #[command(flatten)]
    common: Common,
    /// Nodes with radio load at or above this take no jobs.
    #[arg(long)]
    radio_threshold: Option<f64>,
    #[arg(long)]
    report_interval_ms: Option<u64>,
    /// A node missing this many reports is gone.
    #[arg(long)]
    missed_reports: Option<u32>,
    /// Serve Prometheus metrics at http://ADDR/metrics (HOST:PORT, e.g. 127.0.0.1:9465; default: off,
    /// or `placement.metrics_listen`).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
}

#[derive(Args)]
// `--nats` means something else here than for the clients: the server to run on, never one looked up.
#[command(mut_arg("nats", |a| a.help(
    "An external NATS server to run the mesh on (default: start its own nats-server, on [testbed] port 4222 when \
     free, else on a free port, and write its URL to ~/.cache/microlambda/nats-url for the clients; \
     MICROLAMBDA_NATS and that file are not read here)"
)))]
struct TestbedArgs {
    #[command(flatten)]
    common: Common,
    /// Submit a stream of sample jobs, show the load table and results, then exit.
    #[arg(long)]
    demo: bool,
    /// Number of nodes.
    #[arg(long)]
    nodes: Option<usize>,
    /// Run a scenario file (configs/scenarios/*.toml) end to end and write its report.
    #[arg(long, value_name = "FILE", conflicts_with = "demo")]
    scenario: Option<PathBuf>,
    /// Where the scenario report goes (default: target/scenarios/<name>/).
    #[arg(long, value_name = "DIR", requires = "scenario")]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct SubmitCli {
    #[command(flatten)]
    common: Common,
    /// Python module with the entry function (omit with --name).
    file: Option<PathBuf>,
    /// A deployed function instead of a file.
    #[arg(long, conflicts_with = "file")]
    name: Option<String>,
    /// The function to call (default: main, or the deployed entry).
    #[arg(long)]
    entry: Option<String>,
    /// JSON passed as the one argument (or @FILE: the JSON in FILE).
    #[arg(long, default_value = "null")]
    input: String,
    /// Client key: the same id submitted twice runs once.
    #[arg(long)]
    job_id: Option<String>,
    /// Higher runs first when jobs wait for a node.
    #[arg(long, default_value_t = 0)]
    priority: i32,
    /// Runtime limit per slice, in milliseconds (at least 50): the job runs in slices shorter than this,
    /// checkpointed and placed again between slices (docs/PROTOCOL.md).
    #[arg(long)]
    r_limit_ms: Option<u64>,
    /// Wait for the result and print the output.
    #[arg(long)]
    wait: bool,
}

#[derive(Args)]
struct DeployCli {
    #[command(flatten)]
    common: Common,
    file: PathBuf,
    #[arg(long)]
    name: String,
    #[arg(long, default_value = "main")]
    entry: String,
}

#[derive(Args)]
struct StatusCli {
    #[command(flatten)]
    common: Common,
    job_id: String,
}

#[derive(Args)]
struct WatchCli {
    #[command(flatten)]
    common: Common,
    /// Refresh period in milliseconds.
    #[arg(long, default_value_t = 1000)]
    every_ms: u64,
    /// Print the table once and exit.
    #[arg(long)]
    once: bool,
}

#[derive(Args)]
struct DashboardCli {
    #[command(flatten)]
    common: Common,
    /// Where the page is served (HOST:PORT; 0.0.0.0:PORT to reach it from other machines).
    #[arg(long, default_value = "127.0.0.1:8090", value_name = "ADDR")]
    listen: String,
}

/// The component's settings: its file, the environment, then the flags (`--nats` among them) over both.
fn load(common: &Common, component: &str, flags: Overrides) -> anyhow::Result<(Settings, String)> {
    let s = Settings::load_with(common.config.as_deref(), component, flags.flag("nats", common.nats.clone()))?;
    let nats = s.nats.clone();
    Ok((s, nats))
}

/// A line on stdout; a reader that went away (`microlambda run ... | head`) is no error: the line had nowhere
/// to go (println! panicked on the broken pipe).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("microlambda: {}", microlambda::runtime::error_text(&e));
        std::process::exit(1);
    }
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The worker speaks the pipe protocol: nothing of the host's set-up runs before it.
    if let Cmd::Worker = cli.cmd {
        std::process::exit(microlambda::py::worker_main());
    }
    if let Cmd::Zygote = cli.cmd {
        std::process::exit(microlambda::py::zygote_main());
    }
    if let Cmd::Run { .. } | Cmd::Resume { .. } = cli.cmd {
        microlambda::runtime::init_tracing_at("warn");
    } else {
        microlambda::runtime::init_tracing();
    }
    match cli.cmd {
        Cmd::Worker | Cmd::Zygote => unreachable!("handled above"),
        Cmd::Run { target, input, preempt_every, preempt_at, checkpoint_dir, stats, deadline, keep_running } => {
            // Bad input is a command-line error, said before any worker starts (not the job's JSONDecodeError).
            let input = client::input_text(&input)?;
            client::parse_json(&input)?;
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
            std::process::exit(local(&args, None))
        }
        Cmd::Resume { checkpoint, source, preempt_every, stats, deadline } => {
            let args = microlambda::run::RunArgs {
                preempt_every_ms: preempt_every,
                stats,
                deadline_ms: deadline,
                key: microlambda::run::local_key(),
                ..Default::default()
            };
            std::process::exit(local(&args, Some((checkpoint, source))))
        }
        Cmd::Node(a) => {
            let flags = Overrides::default()
                .flag("node.id", a.id)
                .flag("node.radio_load", a.radio_load)
                .flag("node.slots", a.slots.map(|n| n as u64))
                .flag("node.report_interval_ms", a.report_interval_ms)
                .flag("node.job_timeout_ms", a.job_timeout_ms)
                .flag("node.metrics_listen", a.metrics_listen);
            let (s, nats) = load(&a.common, "node", flags)?;
            a.common.install_auth(&nats, &microlambda::auth::node_identity(&s.node.id));
            microlambda::runtime::block_on(microlambda::actors::node::run(s.node, &nats))?;
            Ok(())
        }
        Cmd::Placement(a) => {
            let flags = Overrides::default()
                .flag("placement.radio_threshold", a.radio_threshold)
                .flag("placement.report_interval_ms", a.report_interval_ms)
                .flag("placement.missed_reports", a.missed_reports.map(u64::from))
                .flag("placement.metrics_listen", a.metrics_listen);
            let (s, nats) = load(&a.common, "placement", flags)?;
            a.common.install_auth(&nats, "placement");
            microlambda::runtime::block_on(microlambda::actors::gateway::run(s.placement, &nats))?;
            Ok(())
        }
        Cmd::Testbed(a) if a.scenario.is_some() => {
            // The scenario shapes the mesh; other settings are the defaults (not the demo's configs/testbed.toml)
            // unless --config names a file.
            let s = Settings::load(a.common.config.as_deref(), "scenario")?;
            a.common.install_auth(a.common.nats.as_deref().unwrap_or_default(), "ops");
            let args = microlambda::testbed::ScenarioArgs {
                file: a.scenario.clone().unwrap_or_default(),
                out: a.out.clone(),
                nats: a.common.nats.clone(),
            };
            let o = microlambda::runtime::block_on(microlambda::testbed::run_scenario(s, args))?;
            print!("{}", microlambda::report::render_summary(&o.report));
            out!("report: {}/report.md, report.json, timeline.svg", o.dir.display());
            if !o.report.ok() {
                bail!(
                    "scenario {}: jobs or session requests lost, duplicated or wrong (or session replies not checked)",
                    o.report.scenario
                );
            }
            Ok(())
        }
        Cmd::Testbed(a) => {
            // `--nats` is not a setting here: without it the testbed starts its own nats-server.
            let flags = Overrides::default().flag("testbed.nodes", a.nodes.map(|n| n as u64));
            let s = Settings::load_with(a.common.config.as_deref(), "testbed", flags)?;
            a.common.install_auth(a.common.nats.as_deref().unwrap_or_default(), "ops");
            microlambda::runtime::block_on(microlambda::testbed::run(s, a.common.nats, a.demo))?;
            Ok(())
        }
        Cmd::Submit(a) => {
            let (s, nats) = load(&a.common, "client", Overrides::default())?;
            a.common.install_auth(&nats, "client");
            let input = client::parse_input(&a.input)?;
            // Bad input is said before any connection is tried.
            if let Some(f) = &a.file {
                client::read(f)?;
            }
            let args = SubmitArgs {
                file: a.file,
                name: a.name,
                entry: a.entry,
                input,
                job_id: a.job_id,
                priority: a.priority,
                r_limit_ms: a.r_limit_ms,
                wait: a.wait,
            };
            microlambda::runtime::block_on(async move {
                let bus = client::connect(&nats, &s.client, "submit").await?;
                match client::submit(&bus, &s.client, args).await? {
                    SubmitOutcome::Accepted { job_id, duplicate } => {
                        out!("{job_id}{}", if duplicate { " (duplicate: not run again)" } else { "" });
                        Ok(())
                    }
                    SubmitOutcome::Done(rec) => match rec.state {
                        JobState::Completed => {
                            out!("{}", rec.output.unwrap_or_default());
                            Ok(())
                        }
                        _ => {
                            let e = rec.error.unwrap_or_else(|| microlambda::wire::JobFailure {
                                kind: "unknown".into(),
                                message: "failed".into(),
                                traceback: None,
                            });
                            if let Some(tb) = &e.traceback {
                                eprintln!("{tb}");
                            }
                            bail!("job {} failed ({}): {}", rec.job_id, e.kind, e.message)
                        }
                    },
                }
            })
        }
        Cmd::Deploy(a) => {
            let (s, nats) = load(&a.common, "client", Overrides::default())?;
            a.common.install_auth(&nats, "client");
            microlambda::runtime::block_on(async move {
                let bus = client::connect(&nats, &s.client, "deploy").await?;
                let rev = client::deploy(&bus, &a.file, &a.name, &a.entry).await?;
                out!("deployed {} (revision {rev})", a.name);
                Ok(())
            })
        }
        Cmd::Auth(AuthCli { cmd: AuthCmd::Init { dir, nodes, nats_sync_interval, tls_hosts } }) => {
            let ids = microlambda::auth::mesh_identities(&nodes);
            let sync = microlambda::natsd::SyncInterval::parse(&nats_sync_interval)?;
            let server = microlambda::auth::ServerSettings { sync, tls_hosts };
            let d = microlambda::auth::AuthDir::create_with(&dir, &ids, &server)?;
            if let Some(ca) = d.tls_ca() {
                out!("auth: TLS required, with the certificate authority {}", ca.display());
            }
            out!(
                "auth: {} identities, the mesh key and {} in {}",
                ids.len(),
                microlambda::auth::SERVER_CONFIG,
                d.dir().display()
            );
            Ok(())
        }
        Cmd::Auth(AuthCli { cmd: AuthCmd::Ca { dir } }) => {
            let path = dir.join(microlambda::auth::TLS_CA);
            let pem = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("{}: {e} (made by `auth init --tls-hosts ...`)", path.display()))?;
            out!("{}", pem.trim_end());
            Ok(())
        }
        Cmd::Auth(AuthCli { cmd: AuthCmd::Seed { dir, name } }) => {
            out!("{}", microlambda::auth::AuthDir::seed(&dir, &name)?);
            Ok(())
        }
        Cmd::Setup(a) => {
            let (s, nats) = load(&a.common, "placement", Overrides::default())?;
            a.common.install_auth(&nats, "ops");
            microlambda::runtime::block_on(async move {
                let lease = Duration::from_millis(s.placement.lease_ms);
                microlambda::bus::Bus::setup(&nats, &microlambda::bus::Auth::process(), lease).await?;
                out!("setup: the mesh's streams and buckets are on {nats}");
                Ok(())
            })
        }
        Cmd::Status(a) => {
            let (s, nats) = load(&a.common, "client", Overrides::default())?;
            a.common.install_auth(&nats, "client");
            microlambda::runtime::block_on(async move {
                let bus = client::connect(&nats, &s.client, "status").await?;
                let rec = client::status(&bus, &a.job_id).await?;
                out!("{}", serde_json::to_string_pretty(&rec)?);
                Ok(())
            })
        }
        Cmd::Session(a) => {
            let (s, nats) = load(&a.common, "client", Overrides::default())?;
            a.common.install_auth(&nats, "client");
            // Bad input is said before any connection is tried.
            let (open, input) = match a.cmd {
                SessionCmd::Open { file, name, entry, input, id, r_limit_ms } => {
                    if let Some(f) = &file {
                        client::read(f)?;
                    }
                    let input = client::parse_input(&input)?;
                    (Some(client::session::OpenArgs { file, name, entry, input, session: id, r_limit_ms }), None)
                }
                SessionCmd::Request { id, input } => (None, Some((id, Some(client::parse_input(&input)?)))),
                SessionCmd::Close { id } => (None, Some((id, None))),
            };
            microlambda::runtime::block_on(async move {
                let bus = client::connect(&nats, &s.client, "session").await?;
                let reply = match (open, input) {
                    (Some(o), _) => {
                        let (id, reply) = client::session::open(&bus, &s.client, o).await?;
                        out!("{id}");
                        reply
                    }
                    (None, Some((id, input))) => client::session::request(&bus, &s.client, &id, input).await?,
                    (None, None) => unreachable!("one of the three"),
                };
                print_reply(reply)
            })
        }
        Cmd::Watch(a) => {
            let (s, nats) = load(&a.common, "client", Overrides::default())?;
            // The nodes' load is for operators (docs/SECURITY.md).
            a.common.install_auth(&nats, "ops");
            microlambda::runtime::block_on(async move {
                let bus = client::connect(&nats, &s.client, "watch").await?;
                client::watch::watch(&bus, Duration::from_millis(a.every_ms), a.once).await?;
                Ok(())
            })
        }
        Cmd::Dashboard(a) => {
            let (s, nats) = load(&a.common, "client", Overrides::default())?;
            // The nodes' load and every tenant's events are for operators (docs/SECURITY.md).
            a.common.install_auth(&nats, "ops");
            microlambda::runtime::block_on(async move {
                // A bad or busy address is said before any connection is tried.
                let listener = microlambda::http::bind("--listen", &a.listen).await?;
                let bus = client::connect(&nats, &s.client, "dashboard").await?;
                out!("dashboard: http://{}/ (Ctrl-C to stop)", listener.local_addr()?);
                client::dashboard::run(&bus, listener).await?;
                Ok(())
            })
        }
    }
}

/// A session's reply: its output on stdout; an error (not the end of the session) on stderr, as a failure.
fn print_reply(reply: microlambda::wire::SessionReply) -> anyhow::Result<()> {
    let ended = reply.error.as_ref().filter(|e| e.kind == microlambda::wire::code::SESSION_ENDED);
    match (&reply.error, ended) {
        (Some(e), None) => {
            if let Some(tb) = &e.traceback {
                eprintln!("{tb}");
            }
            bail!("request {} failed ({}): {}", reply.n, e.kind, e.message)
        }
        _ => {
            out!("{}", reply.output.unwrap_or_default());
            if let Some(e) = ended {
                eprintln!("{}", e.message);
            }
            Ok(())
        }
    }
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
            } else {
                for f in &o.failed_checkpoints {
                    eprintln!("microlambda: not taken: {f}");
                }
            }
            out!("{}", o.output_json);
            0
        }
        Err(e) => {
            eprintln!("microlambda: {e}");
            1
        }
    }
}
