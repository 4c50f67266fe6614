//! Scenario files: one parser, shared by the loadgen (which plays the radio patterns, CPU burn, job stream and
//! session streams) and the testbed (which starts the mesh and performs the faults), so both read a scenario the
//! same way.
//!
//! Pure apart from reading the files a scenario names: the TOML file itself, its job sources and its radio
//! traces. The format is documented in docs/SCENARIOS.md; every table refuses unknown keys, and every value is
//! checked, with a [`ScenarioError`] naming the key (`jobs[1].weight`, `radio.patterns.node-7`).
//!
//! Size: about 750 lines, a third of them the parser's table tests: one validation of every key of the format.
pub mod paper;
mod pattern;
mod sessions;
mod stream;

pub use pattern::{derive_seed, Bursty, Pattern, PatternError, Replay};
pub use sessions::{SessionStream, MAX_SESSIONS};
pub use stream::{Arrival, JobStream};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest scenario name: job ids are `<name>-<t0 in hex>-<index:05>` and must stay within the 64 characters
/// of a token.
pub const MAX_NAME_LEN: usize = 40;

/// Why a scenario was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// Not TOML, or not the schema: a wrong type, a missing key or an unknown key (the message names it and
    /// its line).
    #[error("scenario: {0}")]
    Toml(#[from] toml::de::Error),
    /// A value the schema allows but the scenario cannot use.
    #[error("scenario: {field}: {problem}")]
    Invalid { field: String, problem: String },
    /// A radio pattern that does not parse (or whose trace cannot be read).
    #[error("scenario: {field}: {source}")]
    Pattern { field: String, source: PatternError },
    /// A job kind's source file cannot be read.
    #[error("scenario: {field}: cannot read job file {path}: {source}")]
    JobFile { field: String, path: PathBuf, source: std::io::Error },
}

impl ScenarioError {
    /// The key the error is about (`None` for a file or TOML error).
    pub fn field(&self) -> Option<&str> {
        match self {
            ScenarioError::Invalid { field, .. }
            | ScenarioError::Pattern { field, .. }
            | ScenarioError::JobFile { field, .. } => Some(field),
            ScenarioError::Read { .. } | ScenarioError::Toml(_) => None,
        }
    }
}

/// A validated scenario. Paths are resolved against the scenario file's directory, job sources are read,
/// and every node of the mesh has its radio pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// A token of at most [`MAX_NAME_LEN`] characters.
    pub name: String,
    pub description: Option<String>,
    /// The load phase: radio patterns, CPU burn and job stream.
    pub duration_s: f64,
    /// After the load phase, how long the testbed waits for jobs to end.
    pub drain_s: f64,
    /// Every random choice derives from it (see [`derive_seed`]).
    pub seed: u64,
    pub mesh: Mesh,
    pub radio: Radio,
    pub burn: Option<Burn>,
    /// The job arrivals: present when `jobs` is not empty.
    pub stream: Option<Stream>,
    /// The job mix (at least one kind, or at least one session stream).
    pub jobs: Vec<JobKind>,
    /// Session streams of the paper's workloads ([`SessionStream`]).
    pub sessions: Vec<SessionStream>,
    /// In time order.
    pub faults: Vec<Fault>,
    /// The directory relative paths were resolved against.
    pub base_dir: PathBuf,
}

/// `[mesh]`: the testbed's shape and settings (read by the testbed; the loadgen only uses `nodes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mesh {
    /// Node ids are `node-1` .. `node-<nodes>`.
    pub nodes: usize,
    pub slots: usize,
    pub report_interval_ms: u64,
    /// 0: no periodic checkpoints.
    pub checkpoint_interval_ms: u64,
    pub missed_reports: u32,
    pub radio_threshold: f64,
    /// Placement processes (2: leader and standby).
    pub placements: usize,
    /// `node.module_zygotes` of every node (none: the setting's own, 2 by default).
    pub module_zygotes: Option<usize>,
    /// Embedded nats-servers (`testbed.nats_servers`): 1, or a cluster of 3 or 5 named `nats-1` ..; every stream
    /// and bucket has that many replicas.
    pub nats_servers: usize,
}

impl Default for Mesh {
    fn default() -> Self {
        Self {
            nodes: 3,
            slots: 2,
            report_interval_ms: 200,
            checkpoint_interval_ms: 1000,
            missed_reports: 5,
            radio_threshold: 0.8,
            placements: 1,
            module_zygotes: None,
            nats_servers: 1,
        }
    }
}

/// `[radio]`, resolved: one pattern per node of the mesh.
#[derive(Debug, Clone, PartialEq)]
pub struct Radio {
    /// How often the loadgen publishes each node's radio load.
    pub period_ms: u64,
    /// `(node id, pattern)` for node-1 .. node-N in order; nodes not listed in `[radio.patterns]` have the
    /// default pattern (a `bursty` default gets its own seed per node).
    pub patterns: Vec<(String, Pattern)>,
}

/// `[burn]`: real CPU burnt to emulate baseband processing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burn {
    /// The node whose radio load the burn follows.
    pub node: String,
    /// Busy threads, each with a duty cycle equal to that load.
    #[serde(default = "one_usize")]
    pub threads: usize,
}

/// `[stream]`: the job arrivals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stream {
    /// Poisson arrivals per second.
    pub rate: f64,
    /// Stop after this many jobs (default: until the end of the load phase).
    #[serde(default)]
    pub count: Option<usize>,
}

/// `[[jobs]]`: one kind of job in the mix.
#[derive(Debug, Clone, PartialEq)]
pub struct JobKind {
    pub name: String,
    /// Resolved path of the source file.
    pub file: PathBuf,
    /// The file's content, as submitted.
    pub source: String,
    pub entry: String,
    /// Relative weight in the mix (> 0).
    pub weight: f64,
    /// One is picked uniformly per job.
    pub inputs: Vec<Value>,
    pub r_limit_ms: Option<u64>,
    pub priority: i32,
}

/// `[[faults]]`: something the testbed does to the mesh at a given time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Seconds after t=0 (within the load phase and the drain).
    pub at_s: f64,
    pub action: FaultAction,
    /// The node for `kill`, `pause` and `resume`; absent otherwise.
    #[serde(default)]
    pub target: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// SIGKILL a node process.
    Kill,
    /// SIGSTOP a node process.
    Pause,
    /// SIGCONT a paused node process.
    Resume,
    /// Stop and start the nats-server.
    RestartNats,
    /// SIGKILL the (leading) placement process.
    KillPlacement,
    /// SIGKILL one nats-server of the cluster (`target = "nats-2"`; `mesh.nats_servers` of 3 or 5), or the one
    /// leading the jobs bucket's stream at that instant (`target = "jobs-leader"`, [`JOBS_LEADER`]).
    KillNats,
    /// Start a killed nats-server of the cluster again, on its port and store (`target = "nats-2"`, or
    /// `"jobs-leader"`: the one a `kill_nats` of that target killed).
    StartNats,
}

/// The target of a `kill_nats` / `start_nats` fault that names no server but the one leading the jobs bucket's
/// stream when the fault comes (the hardest server to lose: the gateway answers `unavailable` until the cluster
/// elects another leader).
pub const JOBS_LEADER: &str = "jobs-leader";

impl FaultAction {
    /// Whether the action is aimed at one node.
    pub fn needs_target(self) -> bool {
        matches!(self, FaultAction::Kill | FaultAction::Pause | FaultAction::Resume)
    }

    /// Whether the action is aimed at one nats-server of the cluster.
    pub fn needs_server(self) -> bool {
        matches!(self, FaultAction::KillNats | FaultAction::StartNats)
    }
}

fn one_usize() -> usize {
    1
}

// ---- the file as written --------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileScenario {
    name: String,
    #[serde(default)]
    description: Option<String>,
    duration_s: f64,
    #[serde(default = "default_drain_s")]
    drain_s: f64,
    #[serde(default = "default_seed")]
    seed: u64,
    #[serde(default)]
    mesh: Mesh,
    #[serde(default)]
    radio: FileRadio,
    #[serde(default)]
    burn: Option<Burn>,
    #[serde(default)]
    stream: Option<Stream>,
    #[serde(default)]
    jobs: Vec<FileJob>,
    #[serde(default)]
    sessions: Vec<sessions::FileSessions>,
    #[serde(default)]
    faults: Vec<Fault>,
}

fn default_drain_s() -> f64 {
    60.0
}
fn default_seed() -> u64 {
    1
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileRadio {
    period_ms: u64,
    default: String,
    patterns: BTreeMap<String, String>,
}

impl Default for FileRadio {
    fn default() -> Self {
        Self { period_ms: 100, default: "constant:0".into(), patterns: BTreeMap::new() }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJob {
    name: String,
    file: PathBuf,
    #[serde(default = "default_entry")]
    entry: String,
    #[serde(default = "default_weight")]
    weight: f64,
    #[serde(default = "default_inputs")]
    inputs: Vec<Value>,
    #[serde(default)]
    r_limit_ms: Option<u64>,
    #[serde(default)]
    priority: i32,
}

fn default_entry() -> String {
    "main".into()
}
fn default_weight() -> f64 {
    1.0
}
fn default_inputs() -> Vec<Value> {
    vec![Value::Null]
}

// ---- loading and validation -----------------------------------------------------------------------------

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid { field: field.into(), problem: problem.into() }
}

fn check(ok: bool, field: &str, problem: impl FnOnce() -> String) -> Result<(), ScenarioError> {
    if ok {
        Ok(())
    } else {
        Err(invalid(field, problem()))
    }
}

/// A Python module a scenario names (`field`), relative to `base_dir`: its resolved path and its content.
fn read_module(base_dir: &Path, file: &Path, field: String) -> Result<(PathBuf, String), ScenarioError> {
    let path = base_dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(source) => Ok((path, source)),
        Err(source) => Err(ScenarioError::JobFile { field, path, source }),
    }
}

fn is_identifier(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_') && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// The job id of a scenario stream's `index`-th job in a run that started at `t0_unix_ms`: unique across runs,
/// and derivable by whoever knows the run's t=0 (the testbed checks every one of them).
pub fn job_id(scenario: &str, t0_unix_ms: u64, index: usize) -> String {
    format!("{scenario}-{t0_unix_ms:x}-{index:05}")
}

impl Scenario {
    /// Read and validate a scenario file; relative paths in it are relative to its directory.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: path.to_path_buf(), source })?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Self::from_str(&text, base)
    }

    /// Parse and validate a scenario given as text; relative paths in it are relative to `base_dir`.
    pub fn from_str(text: &str, base_dir: &Path) -> Result<Scenario, ScenarioError> {
        let f: FileScenario = toml::from_str(text)?;

        check(crate::wire::is_valid_token(&f.name) && f.name.len() <= MAX_NAME_LEN, "name", || {
            format!("{:?} must be 1..{MAX_NAME_LEN} characters of A-Z a-z 0-9 _ - (it starts job ids)", f.name)
        })?;
        check(f.duration_s.is_finite() && f.duration_s > 0.0 && f.duration_s <= 86_400.0, "duration_s", || {
            format!("{} must be above 0 and at most 86400 seconds", f.duration_s)
        })?;
        check(f.drain_s.is_finite() && (0.0..=86_400.0).contains(&f.drain_s), "drain_s", || {
            format!("{} must be 0..86400 seconds", f.drain_s)
        })?;

        let m = &f.mesh;
        check((1..=64).contains(&m.nodes), "mesh.nodes", || format!("{} must be 1..64", m.nodes))?;
        check((1..=64).contains(&m.slots), "mesh.slots", || format!("{} must be 1..64", m.slots))?;
        check(m.report_interval_ms >= 10, "mesh.report_interval_ms", || {
            format!("{} must be at least 10", m.report_interval_ms)
        })?;
        check(m.checkpoint_interval_ms == 0 || m.checkpoint_interval_ms >= 10, "mesh.checkpoint_interval_ms", || {
            format!("{} must be 0 (none) or at least 10", m.checkpoint_interval_ms)
        })?;
        check(m.missed_reports >= 1, "mesh.missed_reports", || "must be at least 1".into())?;
        check(m.radio_threshold > 0.0 && m.radio_threshold <= 1.0, "mesh.radio_threshold", || {
            format!("{} must be in (0, 1]", m.radio_threshold)
        })?;
        check((1..=8).contains(&m.placements), "mesh.placements", || format!("{} must be 1..8", m.placements))?;
        check(m.module_zygotes.is_none_or(|z| z <= 16), "mesh.module_zygotes", || "must be 0..16".into())?;
        check([1, 3, 5].contains(&m.nats_servers), "mesh.nats_servers", || "1, or a cluster of 3 or 5".into())?;
        let nodes: Vec<String> = (1..=m.nodes).map(|i| format!("node-{i}")).collect();
        let is_node = |s: &str| nodes.iter().any(|n| n == s);
        let node_list = || format!("the mesh has {} (mesh.nodes = {})", nodes.join(", "), nodes.len());

        let r = &f.radio;
        check((10..=60_000).contains(&r.period_ms), "radio.period_ms", || {
            format!("{} must be 10..60000", r.period_ms)
        })?;
        for node in r.patterns.keys() {
            check(is_node(node), &format!("radio.patterns.{node}"), || format!("no such node: {}", node_list()))?;
        }
        let mut patterns = Vec::with_capacity(nodes.len());
        for node in &nodes {
            let (field, text) = match r.patterns.get(node) {
                Some(p) => (format!("radio.patterns.{node}"), p),
                None => ("radio.default".to_string(), &r.default),
            };
            let p = Pattern::parse(text, base_dir, derive_seed(f.seed, node))
                .map_err(|source| ScenarioError::Pattern { field, source })?;
            patterns.push((node.clone(), p));
        }

        if let Some(b) = &f.burn {
            check(is_node(&b.node), "burn.node", || format!("no such node {:?}: {}", b.node, node_list()))?;
            check((1..=64).contains(&b.threads), "burn.threads", || format!("{} must be 1..64", b.threads))?;
        }

        if let Some(s) = &f.stream {
            check(s.rate.is_finite() && s.rate > 0.0 && s.rate <= 1000.0, "stream.rate", || {
                format!("{} must be above 0 and at most 1000 jobs per second", s.rate)
            })?;
            check(s.count != Some(0), "stream.count", || "must be at least 1 (or absent: no limit)".into())?;
        }
        check(!f.jobs.is_empty() || !f.sessions.is_empty(), "jobs", || {
            "a scenario needs at least one [[jobs]] kind or [[sessions]] stream".into()
        })?;
        check(f.stream.is_some() != f.jobs.is_empty(), "stream", || {
            let why = if f.jobs.is_empty() {
                "a [stream] needs [[jobs]] (the kinds it submits)"
            } else {
                "[[jobs]] need a [stream] (their arrival rate)"
            };
            why.into()
        })?;
        let mut names = HashSet::new();
        let mut jobs = Vec::with_capacity(f.jobs.len());
        for (i, j) in f.jobs.into_iter().enumerate() {
            let at = |k: &str| format!("jobs[{i}].{k}");
            check(crate::wire::is_valid_token(&j.name), &at("name"), || {
                format!("{:?} must be 1..64 characters of A-Z a-z 0-9 _ -", j.name)
            })?;
            check(names.insert(j.name.clone()), &at("name"), || format!("{:?} is used by another kind", j.name))?;
            check(is_identifier(&j.entry), &at("entry"), || format!("{:?} is not a Python function name", j.entry))?;
            check(j.weight.is_finite() && j.weight > 0.0, &at("weight"), || format!("{} must be above 0", j.weight))?;
            check(!j.inputs.is_empty(), &at("inputs"), || "must hold at least one input (default: [null])".into())?;
            check(j.r_limit_ms != Some(0), &at("r_limit_ms"), || "must be above 0 (or absent)".into())?;
            let (file, source) = read_module(base_dir, &j.file, at("file"))?;
            jobs.push(JobKind {
                name: j.name,
                file,
                source,
                entry: j.entry,
                weight: j.weight,
                inputs: j.inputs,
                r_limit_ms: j.r_limit_ms,
                priority: j.priority,
            });
        }

        let sessions = sessions::validate(&f.name, f.sessions, base_dir)?;

        let end = f.duration_s + f.drain_s;
        for (i, fault) in f.faults.iter().enumerate() {
            let at = |k: &str| format!("faults[{i}].{k}");
            check(fault.at_s.is_finite() && (0.0..=end).contains(&fault.at_s), &at("at_s"), || {
                format!("{} must be within the run, 0..{end} (duration_s + drain_s)", fault.at_s)
            })?;
            if fault.action.needs_server() {
                let servers = f.mesh.nats_servers;
                let ok = |t: &str| {
                    t.strip_prefix("nats-")
                        .and_then(|i| i.parse::<usize>().ok())
                        .is_some_and(|i| (1..=servers).contains(&i))
                };
                match &fault.target {
                    Some(t) => check(servers > 1 && (ok(t) || t == JOBS_LEADER), &at("target"), || {
                        format!(
                            "no such server {t:?}: the cluster (mesh.nats_servers = 3 or 5) has nats-1 .. \
                             nats-{servers} (or {JOBS_LEADER:?}: the one leading the jobs bucket)"
                        )
                    })?,
                    None => {
                        return Err(invalid(at("target"), format!("{:?} needs a target server (nats-2)", fault.action)))
                    }
                }
                continue;
            }
            match (&fault.target, fault.action.needs_target()) {
                (Some(t), true) => check(is_node(t), &at("target"), || format!("no such node {t:?}: {}", node_list()))?,
                (None, true) => return Err(invalid(at("target"), format!("{:?} needs a target node", fault.action))),
                (Some(_), false) => {
                    return Err(invalid(at("target"), format!("{:?} takes no target", fault.action)));
                }
                (None, false) => {}
            }
        }
        let mut faults = f.faults;
        faults.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));

        Ok(Scenario {
            name: f.name,
            description: f.description,
            duration_s: f.duration_s,
            drain_s: f.drain_s,
            seed: f.seed,
            mesh: f.mesh,
            radio: Radio { period_ms: r.period_ms, patterns },
            burn: f.burn,
            stream: f.stream,
            jobs,
            sessions,
            faults,
            base_dir: base_dir.to_path_buf(),
        })
    }

    /// `node-1` .. `node-<mesh.nodes>`.
    pub fn node_ids(&self) -> Vec<String> {
        (1..=self.mesh.nodes).map(|i| format!("node-{i}")).collect()
    }

    /// The load phase.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BASE: &str = r#"
name = "t"
duration_s = 30
seed = 5

[mesh]
nodes = 3

[radio]
period_ms = 100
default = "constant:0.2"
[radio.patterns]
node-1 = "step:0.2:0.95:10"

[burn]
node = "node-1"

[stream]
rate = 2.0
count = 10

[[jobs]]
name = "a"
file = "a.py"
inputs = [{ n = 1 }, { n = 2 }]

[[jobs]]
name = "b"
file = "a.py"
entry = "other"
weight = 3
r_limit_ms = 500
priority = 2

[[faults]]
at_s = 20
action = "kill"
target = "node-2"

[[faults]]
at_s = 10
action = "restart_nats"
"#;

    fn dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.py"), "def main(x):\n    return x\n").unwrap();
        std::fs::write(d.path().join("t.csv"), "t_s,load\n0,0.1\n10,0.5\n").unwrap();
        d
    }

    #[test]
    fn a_full_scenario_parses_with_its_defaults() {
        let d = dir();
        let s = Scenario::from_str(BASE, d.path()).unwrap();
        assert_eq!((s.name.as_str(), s.duration_s, s.drain_s, s.seed), ("t", 30.0, 60.0, 5));
        assert_eq!(s.mesh, Mesh::default());
        assert_eq!(s.node_ids(), ["node-1", "node-2", "node-3"]);
        let nodes: Vec<&str> = s.radio.patterns.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(nodes, ["node-1", "node-2", "node-3"]);
        assert_eq!(s.radio.patterns[0].1, Pattern::parse("step:0.2:0.95:10", d.path(), 0).unwrap());
        assert_eq!(s.radio.patterns[2].1, Pattern::Constant(0.2));
        assert_eq!(s.burn, Some(Burn { node: "node-1".into(), threads: 1 }));
        assert_eq!(s.stream, Some(Stream { rate: 2.0, count: Some(10) }));
        assert!(s.sessions.is_empty());
        let a = &s.jobs[0];
        assert_eq!((a.entry.as_str(), a.weight, a.r_limit_ms, a.priority), ("main", 1.0, None, 0));
        assert_eq!(a.inputs, [json!({"n": 1}), json!({"n": 2})]);
        assert_eq!(a.source, "def main(x):\n    return x\n");
        assert_eq!(a.file, d.path().join("a.py"));
        let b = &s.jobs[1];
        assert_eq!((b.entry.as_str(), b.weight, b.r_limit_ms, b.priority), ("other", 3.0, Some(500), 2));
        assert_eq!(b.inputs, [Value::Null]);
        // Faults in time order.
        assert_eq!(s.faults[0], Fault { at_s: 10.0, action: FaultAction::RestartNats, target: None });
        assert_eq!(s.faults[1], Fault { at_s: 20.0, action: FaultAction::Kill, target: Some("node-2".into()) });
        assert_eq!(s.job_stream().count(), 10);
    }

    #[test]
    fn a_minimal_scenario_takes_every_default() {
        let d = dir();
        let text = "name = \"m\"\nduration_s = 5\n[stream]\nrate = 1\n[[jobs]]\nname = \"a\"\nfile = \"a.py\"\n";
        let s = Scenario::from_str(text, d.path()).unwrap();
        assert_eq!(
            (s.seed, s.drain_s, s.radio.period_ms, s.burn.is_none(), s.faults.is_empty()),
            (1, 60.0, 100, true, true)
        );
        assert!(s.radio.patterns.iter().all(|(_, p)| *p == Pattern::Constant(0.0)));
    }

    #[test]
    fn a_bursty_default_gets_a_seed_per_node_from_the_scenario_seed() {
        let d = dir();
        let text = BASE.replace("default = \"constant:0.2\"", "default = \"bursty:0.1:0.9:1:1\"");
        let s = Scenario::from_str(&text, d.path()).unwrap();
        let seed = |i: usize| match &s.radio.patterns[i].1 {
            Pattern::Bursty(b) => b.seed,
            p => panic!("{p:?}"),
        };
        assert_eq!(seed(1), derive_seed(5, "node-2"));
        assert_eq!(seed(2), derive_seed(5, "node-3"));
    }

    #[test]
    fn invalid_values_name_their_key() {
        let d = dir();
        // (what to replace in BASE, by what, the key the error names)
        let cases: Vec<(&str, &str, &str)> = vec![
            ("name = \"t\"", "name = \"a.b\"", "name"),
            ("name = \"t\"", "name = \"\"", "name"),
            ("name = \"t\"", "name = \"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn\"", "name"),
            ("duration_s = 30", "duration_s = 0", "duration_s"),
            ("duration_s = 30", "duration_s = -3", "duration_s"),
            ("duration_s = 30", "duration_s = nan", "duration_s"),
            ("duration_s = 30", "duration_s = 30\ndrain_s = -1", "drain_s"),
            ("nodes = 3", "nodes = 0", "mesh.nodes"),
            ("nodes = 3", "nodes = 3\nslots = 0", "mesh.slots"),
            ("nodes = 3", "nodes = 3\nreport_interval_ms = 5", "mesh.report_interval_ms"),
            ("nodes = 3", "nodes = 3\ncheckpoint_interval_ms = 3", "mesh.checkpoint_interval_ms"),
            ("nodes = 3", "nodes = 3\nmissed_reports = 0", "mesh.missed_reports"),
            ("nodes = 3", "nodes = 3\nradio_threshold = 1.5", "mesh.radio_threshold"),
            ("nodes = 3", "nodes = 3\nplacements = 0", "mesh.placements"),
            ("nodes = 3", "nodes = 3\nmodule_zygotes = 17", "mesh.module_zygotes"),
            ("period_ms = 100", "period_ms = 1", "radio.period_ms"),
            ("default = \"constant:0.2\"", "default = \"constant:2\"", "radio.default"),
            ("node-1 = \"step:0.2:0.95:10\"", "node-1 = \"step:0.2\"", "radio.patterns.node-1"),
            ("node-1 = \"step:0.2:0.95:10\"", "node-1 = \"replay:missing.csv\"", "radio.patterns.node-1"),
            ("node-1 = \"step:0.2:0.95:10\"", "node-7 = \"constant:0.1\"", "radio.patterns.node-7"),
            ("node = \"node-1\"", "node = \"node-9\"", "burn.node"),
            ("node = \"node-1\"", "node = \"node-1\"\nthreads = 0", "burn.threads"),
            ("rate = 2.0", "rate = 0", "stream.rate"),
            ("rate = 2.0", "rate = inf", "stream.rate"),
            ("count = 10", "count = 0", "stream.count"),
            ("[stream]\nrate = 2.0\ncount = 10\n", "", "stream"),
            ("name = \"a\"", "name = \"a b\"", "jobs[0].name"),
            ("name = \"a\"", "name = \"b\"", "jobs[1].name"),
            ("file = \"a.py\"\ninputs", "file = \"nope.py\"\ninputs", "jobs[0].file"),
            ("entry = \"other\"", "entry = \"1x\"", "jobs[1].entry"),
            ("weight = 3", "weight = 0", "jobs[1].weight"),
            ("weight = 3", "weight = -1", "jobs[1].weight"),
            ("inputs = [{ n = 1 }, { n = 2 }]", "inputs = []", "jobs[0].inputs"),
            ("r_limit_ms = 500", "r_limit_ms = 0", "jobs[1].r_limit_ms"),
            ("at_s = 20", "at_s = 91", "faults[0].at_s"),
            ("at_s = 20", "at_s = -1", "faults[0].at_s"),
            ("target = \"node-2\"", "target = \"node-4\"", "faults[0].target"),
            ("target = \"node-2\"", "", "faults[0].target"),
            ("action = \"restart_nats\"", "action = \"restart_nats\"\ntarget = \"node-1\"", "faults[1].target"),
            ("nodes = 3", "nodes = 3\nnats_servers = 2", "mesh.nats_servers"),
            // A server fault on one server, on a server the cluster lacks, or without its server.
            ("action = \"restart_nats\"", "action = \"kill_nats\"\ntarget = \"nats-2\"", "faults[1].target"),
        ];
        // The last two on a cluster: nats-4 is not one of its servers, and start_nats needs a server.
        for (fault, field) in [
            ("action = \"kill_nats\"\ntarget = \"nats-4\"", "faults[1].target"),
            ("action = \"start_nats\"", "faults[1].target"),
        ] {
            let text = BASE.replacen("nodes = 3", "nodes = 3\nnats_servers = 3", 1).replacen(
                "action = \"restart_nats\"",
                fault,
                1,
            );
            assert_eq!(Scenario::from_str(&text, d.path()).unwrap_err().field(), Some(field), "{fault}");
        }
        let ok = BASE.replacen("nodes = 3", "nodes = 3\nnats_servers = 3", 1).replacen(
            "action = \"restart_nats\"",
            "action = \"kill_nats\"\ntarget = \"nats-3\"",
            1,
        );
        assert_eq!(Scenario::from_str(&ok, d.path()).unwrap().mesh.nats_servers, 3);
        let leader = ok.replacen("target = \"nats-3\"", "target = \"jobs-leader\"", 1);
        let parsed = Scenario::from_str(&leader, d.path()).unwrap();
        assert!(parsed.faults.iter().any(|f| f.target.as_deref() == Some(JOBS_LEADER)), "{:?}", parsed.faults);
        for (old, new, field) in cases {
            assert!(BASE.contains(old), "{old:?} not in the base scenario");
            let text = BASE.replacen(old, new, 1);
            match Scenario::from_str(&text, d.path()) {
                Err(e) => assert_eq!(e.field(), Some(field), "{old:?} -> {new:?}: {e}"),
                Ok(_) => panic!("{old:?} -> {new:?}: accepted"),
            }
        }
        // No job kind at all.
        let text = "name = \"m\"\nduration_s = 5\n";
        assert_eq!(Scenario::from_str(text, d.path()).unwrap_err().field(), Some("jobs"));
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused_by_name() {
        let d = dir();
        // (what to replace in BASE, by what, a word the message must hold)
        let cases: Vec<(&str, &str, &str)> = vec![
            ("seed = 5", "seed = 5\nsead = 6", "sead"),
            ("nodes = 3", "nodes = 3\nnode = 4", "node"),
            ("period_ms = 100", "period_ms = 100\nperiod = 3", "period"),
            ("node = \"node-1\"", "node = \"node-1\"\nload = 1", "load"),
            ("count = 10", "count = 10\nburst = 1", "burst"),
            ("priority = 2", "priority = 2\nprio = 1", "prio"),
            ("action = \"kill\"", "action = \"kill\"\nsignal = 9", "signal"),
            ("action = \"kill\"", "action = \"explode\"", "explode"),
            ("seed = 5", "seed = -5", "seed"),
            ("duration_s = 30", "duration_s = \"30\"", "duration_s"),
            ("rate = 2.0", "", "rate"),
            ("nodes = 3", "nodes = 3\n[extra]\nx = 1", "extra"),
        ];
        for (old, new, word) in cases {
            assert!(BASE.contains(old), "{old:?} not in the base scenario");
            let text = BASE.replacen(old, new, 1);
            match Scenario::from_str(&text, d.path()) {
                Err(ScenarioError::Toml(e)) => assert!(e.to_string().contains(word), "{old:?} -> {new:?}: {e}"),
                other => panic!("{old:?} -> {new:?}: want a TOML error, got {other:?}"),
            }
        }
        assert!(matches!(Scenario::from_str("name = ", d.path()), Err(ScenarioError::Toml(_))));
    }

    #[test]
    fn load_resolves_paths_against_the_scenario_directory() {
        let d = dir();
        let text = BASE.replace("node-1 = \"step:0.2:0.95:10\"", "node-1 = \"replay:t.csv\"");
        let path = d.path().join("s.toml");
        std::fs::write(&path, text).unwrap();
        let mut s = Scenario::load(&path).unwrap();
        assert_eq!(s.base_dir, d.path());
        assert!((s.radio.patterns[0].1.at(Duration::from_secs(5)) - 0.3).abs() < 1e-9);
        assert!(matches!(Scenario::load(&d.path().join("none.toml")), Err(ScenarioError::Read { .. })));
    }

    #[test]
    fn every_shipped_scenario_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/scenarios");
        let mut seen = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                let s = Scenario::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                assert!((30.0..=60.0).contains(&s.duration_s), "{}: 30..60 s", p.display());
                assert_eq!(p.file_stem().and_then(|x| x.to_str()), Some(s.name.as_str()), "{}", p.display());
                seen += 1;
            }
        }
        assert!(seen >= 4, "{seen} scenarios in {}", dir.display());
    }
}
