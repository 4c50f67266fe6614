//! Settings of every mesh component, one serde struct each, loaded once from a TOML file plus environment
//! overrides and passed explicitly (no globals).
//!
//! A file may hold any of the sections `[node]`, `[placement]`, `[testbed]`, `[client]` and a top-level
//! `nats = "nats://..."`; missing keys take the defaults below. Environment variables override the file:
//! `MICROLAMBDA_NATS=nats://127.0.0.1:4222`, `MICROLAMBDA_NODE__SLOTS=4`,
//! `MICROLAMBDA_PLACEMENT__RADIO_THRESHOLD=0.7` (prefix `MICROLAMBDA_`, sections split by `__`).
//!
//! Size: a little over 700 lines, most of them the documented settings themselves and their checks: one file
//! is the one place a setting's name, default, meaning and validation are read together.
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Default NATS URL when neither flag, file, environment nor a running testbed gives one.
pub const DEFAULT_NATS: &str = "nats://127.0.0.1:4222";

/// Where a running `microlambda testbed` writes its NATS URL (and its pid, on a second line), so that the
/// clients find it without flags: `$XDG_CACHE_HOME/microlambda/nats-url`, else `~/.cache/microlambda/nats-url`.
pub fn testbed_url_file() -> Option<PathBuf> {
    let cache = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(c) => PathBuf::from(c),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".cache"),
    };
    Some(cache.join("microlambda").join("nats-url"))
}

/// The URL a running testbed wrote to [`testbed_url_file`], when its process is still alive.
pub fn running_testbed_url() -> Option<String> {
    let text = std::fs::read_to_string(testbed_url_file()?).ok()?;
    let mut lines = text.lines();
    let url = lines.next()?.trim().to_string();
    let pid: u32 = lines.next()?.trim().parse().ok()?;
    let alive = Path::new(&format!("/proc/{pid}")).exists();
    (alive && !url.is_empty()).then_some(url)
}

/// The identities directory ([`crate::auth::AuthDir`]) of the running testbed whose URL is `url`, which it
/// writes on the third line of [`testbed_url_file`]: clients of that testbed connect as its users without
/// flags.
pub fn running_testbed_auth(url: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(testbed_url_file()?).ok()?;
    let dir = text.lines().nth(2).map(str::trim).filter(|d| !d.is_empty())?;
    (running_testbed_url().as_deref() == Some(url)).then(|| PathBuf::from(dir))
}

/// The checkpoint key that was once the shipped default (public: it signs nothing).
pub const PUBLIC_CHECKPOINT_KEY: &str = "microlambda-dev-key-change-me";

/// A checkpoint key anyone may know: empty, or the old public default.
pub fn is_public_key(key: &str) -> bool {
    key.trim().is_empty() || key == PUBLIC_CHECKPOINT_KEY
}

impl NodeConfig {
    /// Take `checkpoint_key` from `checkpoint_key_file` when only the file is given.
    fn read_key_file(&mut self) -> Result<(), ConfigError> {
        let Some(path) = self.checkpoint_key_file.as_ref().filter(|_| self.checkpoint_key.trim().is_empty()) else {
            return Ok(());
        };
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
            field: "node.checkpoint_key_file",
            problem: format!("{}: {e}", path.display()),
        })?;
        self.checkpoint_key = text.lines().next().unwrap_or_default().trim().to_string();
        Ok(())
    }

    /// The node's checkpoint key, refused when anyone may know it (a forged checkpoint would run as the node).
    pub fn checked_key(&self) -> Result<&str, ConfigError> {
        if is_public_key(&self.checkpoint_key) {
            return Err(ConfigError::Invalid {
                field: "node.checkpoint_key",
                problem:
                    "is unset or the old public default: give the mesh's own key (MICROLAMBDA_NODE__CHECKPOINT_KEY; \
                          `microlambda testbed` makes one, docs/SECURITY.md)"
                        .into(),
            });
        }
        if self.previous_checkpoint_key == PUBLIC_CHECKPOINT_KEY {
            return Err(ConfigError::Invalid {
                field: "node.previous_checkpoint_key",
                problem: "is the old public default: accepting it would accept forged checkpoints".into(),
            });
        }
        Ok(&self.checkpoint_key)
    }
}

/// The NATS URL when no flag, config file or `MICROLAMBDA_NATS` gives one: a running testbed's, else
/// [`DEFAULT_NATS`].
pub fn default_nats() -> String {
    running_testbed_url().unwrap_or_else(|| DEFAULT_NATS.to_string())
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {source}")]
    Load { path: String, source: config::ConfigError },
    #[error("config file {0}: no such file")]
    Missing(String),
    #[error("config: {0}")]
    Parse(#[from] config::ConfigError),
    #[error("config: {field} {problem}")]
    Invalid { field: &'static str, problem: String },
}

/// Everything a process may need; each component reads its own section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// URL of the NATS server (`--nats` overrides it).
    pub nats: String,
    pub node: NodeConfig,
    pub placement: PlacementConfig,
    pub testbed: TestbedConfig,
    pub client: ClientConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            nats: default_nats(),
            node: NodeConfig::default(),
            placement: PlacementConfig::default(),
            testbed: TestbedConfig::default(),
            client: ClientConfig::default(),
        }
    }
}

/// One BBU node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Node id (a NATS subject token); `--id` overrides it.
    pub id: String,
    /// Jobs run at once, one fresh worker process each (forked by the node's zygote).
    pub slots: usize,
    /// How often the node publishes `node.load.<id>`.
    pub report_interval_ms: u64,
    /// A job running longer is killed and fails with a timeout error.
    pub job_timeout_ms: u64,
    /// Static radio load (0..1) used until a `radio.load.<id>` message arrives.
    pub radio_load: f64,
    /// Modules the node's zygote imports once: every job's process (a fork of it) has them imported.
    pub preload: Vec<String>,
    /// Serve Prometheus metrics at `http://<this>/metrics` (HOST:PORT; empty: off).
    pub metrics_listen: String,
    /// Zygotes kept besides the base one, each with the library packages of one module set its restores
    /// needed imported (learned from checkpoints, least recently used killed first); 0: restores always fork
    /// from the base zygote. Each costs the memory of its imports (~100-300 MB with scikit-learn).
    pub zygote_sets: usize,
    /// Module zygotes kept: each has also executed one job module (the same source, the same set of
    /// libraries) and keeps one child forked ahead, so a restore of that module (every request of a
    /// session) neither imports its libraries nor runs its top level again (learned from restores, least
    /// recently used killed first); 0: none. Each costs its module's memory besides its libraries'.
    pub module_zygotes: usize,
    /// How long a module zygote may take to come up, its module's top level included (one that takes
    /// longer, a top level that hangs, is killed and its module restored the ordinary way).
    pub module_zygote_start_ms: u64,
    /// A job start whose module's top level took at least this long (ms) starts a zygote of its module and
    /// tells the other nodes, who start one when they have room: the job's first restore (a slice end, an
    /// evacuation) then forks from it, or waits for it while it starts, instead of running the top level again.
    pub module_zygote_min_load_ms: u64,
    /// Key the node signs checkpoints with (shared by the nodes of one mesh; never given to a worker). No
    /// default: a node refuses to start without one, or with the old public default ([`is_public_key`]);
    /// `microlambda testbed` makes one.
    pub checkpoint_key: String,
    /// A file holding the key (its first line; `MICROLAMBDA_NODE__CHECKPOINT_KEY_FILE`), read when the node's
    /// settings load, for a key kept out of the environment and the config file (compose mounts the mesh's
    /// `mesh.key`). Given both, `checkpoint_key` wins.
    pub checkpoint_key_file: Option<PathBuf>,
    /// A key rotation: the key before `checkpoint_key`, still accepted (never used to sign) for restores of
    /// checkpoints sealed with it, for `previous_key_grace_s` after the node starts. Empty: none.
    pub previous_checkpoint_key: String,
    pub previous_key_grace_s: u64,
    /// The `microlambda` binary that runs workers (default: the running executable).
    pub worker_exe: Option<PathBuf>,
    /// Deployed functions kept in memory.
    pub function_cache: usize,
    /// Snapshot-and-continue checkpoint of every running job this often, for crash recovery (0: never).
    pub checkpoint_interval_ms: u64,
    /// The node's runtime limit: no slice runs longer (0: none; a job's own `r_limit_ms` may be shorter).
    pub r_limit_ms: u64,
    /// How long a periodic (snapshot-and-continue) checkpoint waits for a resumable instant before that one
    /// is skipped (the job goes on; the next one is tried `checkpoint_interval_ms` later).
    pub periodic_deadline_ms: u64,
    /// A slice is checkpointed this long before its limit (at most a quarter of the limit).
    pub slice_margin_ms: u64,
    /// How long an evacuation waits for a resumable instant before it falls back to the job's last
    /// committed checkpoint.
    pub evacuate_deadline_ms: u64,
    /// How long a node waits for the receiving node to take a moving job.
    pub adopt_timeout_ms: u64,
    /// How long a node keeps retrying to commit an outcome or a checkpoint while NATS is unreachable.
    pub commit_retry_ms: u64,
    /// While the radio load is at or above this, the node starts no warm workers (the radio needs the CPU);
    /// above 1: never held.
    pub hold_refills_above: f64,
    /// Threads that burn CPU in the node's own process for the share of time its radio load says (10 ms
    /// periods), standing in for baseband processing on a testbed: jobs and CPU headroom then feel the radio as
    /// on a real BBU (0: none, the default; a real BBU's radio burns its own CPU).
    pub burn_threads: usize,
    /// Niceness added to worker processes: the node's control work (checkpoints, moves, reports) and the radio
    /// come before job code (0: none).
    pub worker_nice: i32,
    /// The radio always comes first: when the radio load has been at or above `self_evacuate_above` for
    /// `self_evacuate_after_ms` and jobs are still here (no placement leads, or its command was lost), the
    /// node parks them itself from stop checkpoints; placement places them again when it can (0: never).
    pub self_evacuate_above: f64,
    pub self_evacuate_after_ms: u64,
    /// What one job's process may use (`[node.limits]`).
    pub limits: WorkerLimits,
    /// How job processes are shared: `fork` (a fresh child of the zygote per job start and restore, the default)
    /// or `reuse` (a child of the zygote serves job after job, for throughput of trivial jobs).
    pub isolation: Isolation,
}

/// How a node's job processes are shared between jobs (`node.isolation`). In both modes every job process is a
/// child of the node's zygote: the key never enters it, its environment is cleared and `node.limits` apply;
/// what `reuse` gives up is only "nothing of a job reaches the next" (modules, globals, patches).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// One job (or one slice, or one restore) per process, then the process ends.
    #[default]
    Fork,
    /// A process serves job after job while each ends cleanly (the processes a job forked are killed at its end).
    Reuse,
}

/// Limits on one job's process (a child of the node's zygote), set with `setrlimit` in the child before any
/// job code runs, and the caps the worker and the host put on what a job sends back. 0: no limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerLimits {
    /// Address space (`RLIMIT_AS`), MiB. A job over it gets `MemoryError` and fails with kind `out_of_memory`.
    pub memory_mb: u64,
    /// CPU time (`RLIMIT_CPU`), seconds per process (one slice: a restored job starts a new count).
    pub cpu_seconds: u64,
    /// Processes of the job's user (`RLIMIT_NPROC`): counted per uid, so only meaningful when jobs run as a
    /// user of their own; set after the worker's own threads start. 0: not set.
    pub processes: u64,
    /// Largest file a job may write (`RLIMIT_FSIZE`), MiB; a write past it fails with `OSError` (EFBIG).
    pub file_size_mb: u64,
    /// Open file descriptors (`RLIMIT_NOFILE`).
    pub open_files: u64,
    /// Largest JSON output; over it the job fails with kind `output_too_large`.
    pub output_bytes: u64,
    /// Tracebacks and error messages are cut to this many bytes (the end, where the exception is, is kept).
    pub traceback_bytes: u64,
    /// Largest checkpoint (pickled state plus buffers, before compression); over it the checkpoint fails with
    /// kind `TooLarge` and the job goes on.
    pub checkpoint_bytes: u64,
    /// Run job processes as this user and group (set in the child after the fork; the node must be able to,
    /// e.g. run as root in its container). Then a job cannot read the node's `/proc/<pid>/environ` or memory,
    /// nor files only the node's user may read (its config, with the key). 0: the node's own.
    pub run_as_uid: u32,
    pub run_as_gid: u32,
    /// Whether jobs may use the network. `false`: each job process (and module zygote) runs in a network
    /// namespace of its own, with no interface up, so a job reaches no address, not even the node's own ports on
    /// 127.0.0.1; the node must be able to make one (root, or `CAP_SYS_ADMIN` in a container) and refuses to
    /// start otherwise.
    pub network: bool,
}

impl Default for WorkerLimits {
    fn default() -> Self {
        Self {
            memory_mb: 4096,
            cpu_seconds: 3600,
            processes: 0,
            file_size_mb: 256,
            open_files: 1024,
            output_bytes: 512 * 1024,
            traceback_bytes: 16 * 1024,
            checkpoint_bytes: 512 << 20,
            run_as_uid: 0,
            run_as_gid: 0,
            network: true,
        }
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            id: "node-1".into(),
            slots: 2,
            report_interval_ms: 1000,
            job_timeout_ms: 30_000,
            radio_load: 0.0,
            preload: Vec::new(),
            metrics_listen: String::new(),
            zygote_sets: 2,
            module_zygotes: 2,
            module_zygote_start_ms: 30_000,
            module_zygote_min_load_ms: 100,
            checkpoint_key: String::new(),
            checkpoint_key_file: None,
            previous_checkpoint_key: String::new(),
            previous_key_grace_s: 3600,
            worker_exe: None,
            function_cache: 256,
            checkpoint_interval_ms: 1000,
            r_limit_ms: 0,
            periodic_deadline_ms: 200,
            slice_margin_ms: 20,
            evacuate_deadline_ms: 500,
            adopt_timeout_ms: 1000,
            commit_retry_ms: 120_000,
            hold_refills_above: 0.8,
            burn_threads: 0,
            worker_nice: 5,
            self_evacuate_above: 0.8,
            self_evacuate_after_ms: 1000,
            limits: WorkerLimits::default(),
            isolation: Isolation::Fork,
        }
    }
}

/// The placement service (also the gateway that answers `jobs.submit` and `jobs.status`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlacementConfig {
    /// Nodes whose radio load is at or above this take no new jobs.
    pub radio_threshold: f64,
    /// The interval nodes report at; a node is gone after `missed_reports` intervals without a report.
    pub report_interval_ms: u64,
    pub missed_reports: u32,
    /// Largest `jobs.submit` request accepted.
    pub max_submit_bytes: usize,
    /// How long placement waits for a node to take a job.
    pub dispatch_timeout_ms: u64,
    /// A node that went over the threshold takes jobs again only below `radio_threshold - hysteresis`...
    pub hysteresis: f64,
    /// ...and after this long below it.
    pub cooldown_ms: u64,
    /// The leader's lease: a standby takes over at most this long (plus one poll) after the leader stops.
    pub lease_ms: u64,
    /// A job placement sent to a node that the node's reports have not shown for this long is taken back
    /// and placed again from its last checkpoint.
    pub orphan_grace_ms: u64,
    /// A session idle (between requests) this long is closed, as a client's close does (0: never). The
    /// leader looks every quarter of it (at least every second, at most every `rescan_ms`).
    pub session_idle_ms: u64,
    /// The leader reads every unfinished job record this often: it queues the waiting jobs placement does not
    /// know of (a submit whose queueing was lost, a job parked while no message reached placement) and wakes
    /// sessions whose wake failed (and closes idle ones, looking more often when `session_idle_ms` asks).
    pub rescan_ms: u64,
    /// Serve Prometheus metrics at `http://<this>/metrics` (HOST:PORT; empty: off).
    pub metrics_listen: String,
    /// A job with a checkpoint goes back to the node that took it (where its module and libraries are warm,
    /// in a zygote) when that node can take it and its headroom is within this much (0..1) of the best
    /// node's; 0: always the best node. The node's report still counts the slice that just left it.
    pub affinity_margin: f64,
}

impl Default for PlacementConfig {
    fn default() -> Self {
        Self {
            radio_threshold: 0.8,
            report_interval_ms: 1000,
            missed_reports: 3,
            max_submit_bytes: 256 * 1024,
            dispatch_timeout_ms: 2000,
            hysteresis: 0.1,
            cooldown_ms: 3000,
            lease_ms: 1500,
            orphan_grace_ms: 3000,
            session_idle_ms: 3_600_000,
            rescan_ms: 60_000,
            metrics_listen: String::new(),
            affinity_margin: 0.25,
        }
    }
}

/// The local testbed (`microlambda testbed`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TestbedConfig {
    /// Number of nodes started.
    pub nodes: usize,
    /// Radio load given to node i (cycled when shorter than `nodes`).
    pub radio_loads: Vec<f64>,
    /// Jobs submitted by `--demo`.
    pub demo_jobs: usize,
    /// `node.job_timeout_ms` of the nodes under `--demo` only (short, so its hanging job times out quickly);
    /// a plain testbed keeps `[node] job_timeout_ms` (default 30 s).
    pub demo_job_timeout_ms: u64,
    /// Port of the embedded nats-server: this one when it is free, else a free one (0: always a free one).
    pub port: u16,
    /// The nats-server binary for the embedded server (default: `.venv/bin/nats-server`, then `$PATH`).
    pub nats_server: Option<PathBuf>,
    /// Placement processes: the first to take the lease leads, the others stand by.
    pub placements: usize,
    /// The embedded server requires a user per identity (made on first start, docs/SECURITY.md); false:
    /// anyone who reaches the port may do anything (only for comparisons such as `bench submit`).
    pub secure: bool,
    /// With `secure`, the embedded server speaks TLS only, with a certificate for 127.0.0.1 and localhost from
    /// the testbed's own CA (`ca.pem` beside the identities, made once; its clients trust it without flags);
    /// false: plain TCP on loopback (`MICROLAMBDA_TESTBED__TLS=false`, e.g. to measure what TLS costs).
    pub tls: bool,
    /// When the embedded server's JetStream flushes its files to disk (`jetstream.sync_interval`;
    /// `MICROLAMBDA_TESTBED__NATS_SYNC_INTERVAL`): `default` (the server's, every 2 minutes: an acknowledged
    /// write can be lost on power failure), `always` (flushed before each acknowledgement: none lost, slower
    /// writes), or a duration (`500ms`, `10s`, `1m`). docs/PROTOCOL.md, "Durability".
    pub nats_sync_interval: String,
    /// Embedded nats-servers: 1, or a cluster of 3 or 5 routed on loopback ports (every stream and bucket then
    /// has that many replicas; a scenario's `kill_nats` fault kills one).
    pub nats_servers: usize,
}

impl Default for TestbedConfig {
    fn default() -> Self {
        Self {
            nodes: 3,
            radio_loads: vec![0.2, 0.5, 0.9],
            demo_jobs: 40,
            demo_job_timeout_ms: 3000,
            port: 4222,
            nats_server: None,
            placements: 1,
            secure: true,
            tls: true,
            nats_sync_interval: "default".into(),
            nats_servers: 1,
        }
    }
}

/// Command-line clients (`submit`, `status`, `watch`, and the benchmarks of `microlambda-bench`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// Request timeout.
    pub request_timeout_ms: u64,
    /// How long `submit --wait` waits for the result.
    pub wait_timeout_ms: u64,
    /// How long `submit` keeps sending a job the mesh cannot take yet (no gateway answers, or its store did
    /// not: a mesh starting up) before it gives up with the last refusal.
    pub retry_ms: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self { request_timeout_ms: 5000, wait_timeout_ms: 120_000, retry_ms: 15_000 }
    }
}

/// The environment variables that are settings: `MICROLAMBDA_NATS` and `MICROLAMBDA_<SECTION>__<KEY>`.
/// Others with the same prefix (`MICROLAMBDA_PYTHON`, `MICROLAMBDA_LOG`, ...) belong to other parts.
fn settings_env() -> config::Map<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.strip_prefix("MICROLAMBDA_").is_some_and(|rest| rest == "NATS" || rest.contains("__")))
        .collect()
}

/// Settings given as command-line flags (`section.key` and a value): the last and strongest source, over the
/// file and the environment. A flag not given sets nothing.
#[derive(Debug, Default, Clone)]
pub struct Overrides(Vec<(&'static str, config::Value)>);

impl Overrides {
    /// Set `key` (e.g. `node.slots`) when the flag was given.
    pub fn flag<V: Into<config::Value>>(mut self, key: &'static str, value: Option<V>) -> Self {
        if let Some(v) = value {
            self.0.push((key, v.into()));
        }
        self
    }
}

/// The venv's Python interpreter: `MICROLAMBDA_PYTHON` when set and not empty, else the workspace's
/// `.venv/bin/python` when it exists. One lookup for every part that runs Python beside the engine.
pub fn python_executable() -> Option<PathBuf> {
    python_executable_given(std::env::var("MICROLAMBDA_PYTHON").ok().as_deref())
}

/// [`python_executable`] with the host's choice passed in (a worker's environment is cleared: the host names
/// the interpreter in the worker's `Hello` instead).
pub fn python_executable_given(given: Option<&str>) -> Option<PathBuf> {
    if let Some(p) = given.filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let built = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python"));
    built.exists().then(|| built.to_path_buf())
}

impl Settings {
    /// Load from `file` (or `configs/<component>.toml` when that exists and no file is given), then the
    /// environment, then validate.
    pub fn load(file: Option<&Path>, component: &str) -> Result<Self, ConfigError> {
        Self::load_with(file, component, Overrides::default())
    }

    /// [`Settings::load`] with command-line flags applied over the file and the environment, then validate.
    pub fn load_with(file: Option<&Path>, component: &str, flags: Overrides) -> Result<Self, ConfigError> {
        let default_file = PathBuf::from(format!("configs/{component}.toml"));
        let file = match file {
            Some(f) => Some(f.to_path_buf()),
            None if default_file.is_file() => Some(default_file),
            None => None,
        };
        if let Some(path) = file.as_ref().filter(|p| !p.is_file()) {
            return Err(ConfigError::Missing(path.display().to_string()));
        }
        let mut b = config::Config::builder();
        if let Some(path) = &file {
            b = b.add_source(config::File::from(path.as_path()).format(config::FileFormat::Toml));
        }
        b = b.add_source(
            config::Environment::with_prefix("MICROLAMBDA")
                .prefix_separator("_")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("node.preload")
                .with_list_parse_key("testbed.radio_loads")
                .try_parsing(true)
                .source(Some(settings_env())),
        );
        for (key, value) in flags.0 {
            b = b.set_override(key, value)?;
        }
        let built = b.build().map_err(|source| match &file {
            Some(p) => ConfigError::Load { path: p.display().to_string(), source },
            None => ConfigError::Parse(source),
        })?;
        let mut s: Settings = built.try_deserialize().map_err(|source| match &file {
            Some(p) => ConfigError::Load { path: p.display().to_string(), source },
            None => ConfigError::Parse(source),
        })?;
        s.node.read_key_file()?;
        s.validate()?;
        Ok(s)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let unit = |field, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(ConfigError::Invalid { field, problem: format!("must be within 0..1, is {v}") })
            }
        };
        unit("node.radio_load", self.node.radio_load)?;
        unit("placement.radio_threshold", self.placement.radio_threshold)?;
        for &v in &self.testbed.radio_loads {
            unit("testbed.radio_loads", v)?;
        }
        let positive = |field, v: u64| {
            if v > 0 {
                Ok(())
            } else {
                Err(ConfigError::Invalid { field, problem: "must be positive".into() })
            }
        };
        positive("node.slots", self.node.slots as u64)?;
        if self.node.burn_threads > 64 {
            return Err(ConfigError::Invalid { field: "node.burn_threads", problem: "0..64".into() });
        }
        positive("node.report_interval_ms", self.node.report_interval_ms)?;
        positive("node.job_timeout_ms", self.node.job_timeout_ms)?;
        positive("placement.report_interval_ms", self.placement.report_interval_ms)?;
        positive("placement.missed_reports", self.placement.missed_reports as u64)?;
        positive("placement.lease_ms", self.placement.lease_ms)?;
        positive("node.evacuate_deadline_ms", self.node.evacuate_deadline_ms)?;
        positive("node.periodic_deadline_ms", self.node.periodic_deadline_ms)?;
        positive("node.adopt_timeout_ms", self.node.adopt_timeout_ms)?;
        unit("placement.hysteresis", self.placement.hysteresis)?;
        unit("placement.affinity_margin", self.placement.affinity_margin)?;
        if self.placement.hysteresis > self.placement.radio_threshold {
            return Err(ConfigError::Invalid {
                field: "placement.hysteresis",
                problem: format!("must not exceed radio_threshold ({})", self.placement.radio_threshold),
            });
        }
        positive("testbed.nodes", self.testbed.nodes as u64)?;
        if ![1, 3, 5].contains(&self.testbed.nats_servers) {
            return Err(ConfigError::Invalid {
                field: "testbed.nats_servers",
                problem: format!("1, or a cluster of 3 or 5, not {}", self.testbed.nats_servers),
            });
        }
        crate::natsd::SyncInterval::parse(&self.testbed.nats_sync_interval)
            .map_err(|e| ConfigError::Invalid { field: "testbed.nats_sync_interval", problem: e.to_string() })?;
        if self.node.self_evacuate_above <= 0.0 || self.node.self_evacuate_above.is_nan() {
            return Err(ConfigError::Invalid {
                field: "node.self_evacuate_above",
                problem: format!("must be above 0 (above 1: never), is {}", self.node.self_evacuate_above),
            });
        }
        for (field, addr) in [
            ("node.metrics_listen", &self.node.metrics_listen),
            ("placement.metrics_listen", &self.placement.metrics_listen),
        ] {
            if !addr.is_empty() && addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(ConfigError::Invalid {
                    field,
                    problem: format!("{addr:?} is not HOST:PORT with a numeric host (e.g. 127.0.0.1:9464); empty: off"),
                });
            }
        }
        if !crate::wire::is_valid_token(&self.node.id) {
            return Err(ConfigError::Invalid {
                field: "node.id",
                problem: format!("{:?} must be 1..64 characters of A-Z a-z 0-9 _ -", self.node.id),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn file_values_override_defaults_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.toml");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(b"nats = \"nats://127.0.0.1:1\"\n[node]\nslots = 5\njob_timeout_ms = 7\n")
            .unwrap();
        let s = Settings::load(Some(&path), "node").unwrap();
        assert_eq!(s.nats, "nats://127.0.0.1:1");
        assert_eq!(s.node.slots, 5);
        assert_eq!(s.node.job_timeout_ms, 7);
        assert_eq!(s.placement.radio_threshold, 0.8);

        std::fs::write(&path, "[node]\nslotz = 5\n").unwrap();
        let err = Settings::load(Some(&path), "node").unwrap_err();
        assert!(err.to_string().contains("slotz"), "{err}");
    }

    #[test]
    fn environment_overrides_and_foreign_variables_are_left_alone() {
        std::env::set_var("MICROLAMBDA_PLACEMENT__MISSED_REPORTS", "7");
        std::env::set_var("MICROLAMBDA_TESTBED__NATS_SERVER", "/opt/nats-server");
        std::env::set_var("MICROLAMBDA_TESTBED__NATS_SYNC_INTERVAL", "always");
        std::env::set_var("MICROLAMBDA_PYTHON", "/usr/bin/python3");
        let s = Settings::load(None, "no-such-component").unwrap();
        assert_eq!(s.placement.missed_reports, 7);
        assert_eq!(s.testbed.nats_server.as_deref(), Some(Path::new("/opt/nats-server")));
        assert_eq!(s.testbed.nats_sync_interval, "always");
    }

    #[test]
    fn flags_override_the_file_and_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.toml");
        std::fs::write(&path, "[node]\nslots = 5\nid = \"from-file\"\n").unwrap();
        let flags = Overrides::default()
            .flag("node.id", Some("from-flag"))
            .flag("node.radio_load", Some(0.25))
            .flag("node.job_timeout_ms", None::<u64>);
        let s = Settings::load_with(Some(&path), "node", flags).unwrap();
        assert_eq!((s.node.id.as_str(), s.node.slots, s.node.radio_load), ("from-flag", 5, 0.25));
        assert_eq!(s.node.job_timeout_ms, NodeConfig::default().job_timeout_ms);
        // Integers reach usize and u32 fields as the config crate's u64.
        let ints = Overrides::default()
            .flag("node.slots", Some(9u64))
            .flag("placement.missed_reports", Some(4u64))
            .flag("testbed.nodes", Some(6u64))
            .flag("nats", Some("nats://127.0.0.1:2"));
        let s = Settings::load_with(Some(&path), "node", ints).unwrap();
        assert_eq!((s.node.slots, s.placement.missed_reports, s.testbed.nodes), (9, 4, 6));
        assert_eq!(s.nats, "nats://127.0.0.1:2");
        let bad = Overrides::default().flag("placement.radio_threshold", Some(1.5));
        let err = Settings::load_with(Some(&path), "node", bad).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { field: "placement.radio_threshold", .. }), "{err}");
    }

    #[test]
    fn the_shipped_config_files_load() {
        for name in ["node", "placement", "testbed"] {
            let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/configs")).join(format!("{name}.toml"));
            let s = Settings::load(Some(&path), name).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(s.placement.hysteresis, 0.1, "{name}");
        }
    }

    #[test]
    fn a_node_refuses_no_key_and_the_old_public_one() {
        let mut n = NodeConfig::default();
        assert!(n.checked_key().is_err());
        n.checkpoint_key = PUBLIC_CHECKPOINT_KEY.into();
        let err = n.checked_key().unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { field: "node.checkpoint_key", .. }), "{err}");
        n.checkpoint_key = "a-key-of-this-mesh".into();
        assert_eq!(n.checked_key().unwrap(), "a-key-of-this-mesh");
        n.previous_checkpoint_key = PUBLIC_CHECKPOINT_KEY.into();
        assert!(matches!(n.checked_key(), Err(ConfigError::Invalid { field: "node.previous_checkpoint_key", .. })));
    }

    #[test]
    fn a_key_file_gives_the_key_unless_the_key_itself_is_given_and_a_missing_one_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("mesh.key");
        std::fs::write(&file, "key-from-the-file\n").unwrap();
        let mut n = NodeConfig { checkpoint_key_file: Some(file.clone()), ..Default::default() };
        n.read_key_file().unwrap();
        assert_eq!(n.checked_key().unwrap(), "key-from-the-file");
        let mut n =
            NodeConfig { checkpoint_key_file: Some(file), checkpoint_key: "given".into(), ..Default::default() };
        n.read_key_file().unwrap();
        assert_eq!(n.checkpoint_key, "given");
        let mut n = NodeConfig { checkpoint_key_file: Some(tmp.path().join("none")), ..Default::default() };
        let err = n.read_key_file().unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { field: "node.checkpoint_key_file", .. }), "{err}");
        assert!(err.to_string().contains("none"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_named() {
        let mut s = Settings::default();
        s.placement.radio_threshold = 1.5;
        let err = s.validate().unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { field: "placement.radio_threshold", .. }), "{err}");
        let mut s = Settings::default();
        s.node.self_evacuate_above = 0.0;
        let err = s.validate().unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { field: "node.self_evacuate_above", .. }), "{err}");
    }
}
