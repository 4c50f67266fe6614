//! The public JSON types of the mesh: what clients send on `jobs.submit` / `jobs.status`, the job events and
//! records they get back, node load reports, and the assignment placement sends a node.
//!
//! These types are the contract with clients in any language (docs/PROTOCOL.md); internal types need not
//! live here.
//!
//! Size: a little over 700 lines of plain types and their docs: the whole public contract in one place, so
//! that docs/PROTOCOL.md has one file to follow.
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Error codes of a `{"error": {...}}` reply.
pub mod code {
    pub const BAD_JSON: &str = "bad_json";
    pub const BAD_REQUEST: &str = "bad_request";
    pub const UNKNOWN_FUNCTION: &str = "unknown_function";
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    pub const NOT_FOUND: &str = "not_found";
    pub const INTERNAL: &str = "internal";
    /// The mesh could not take the request now: its store (JetStream) did not answer, as while a cluster
    /// elects its leaders. Nothing was recorded; the same request again (same `job_id`) is safe.
    pub const UNAVAILABLE: &str = "unavailable";
    /// `sessions.request`: no job of that id, or a job that is not a session.
    pub const UNKNOWN_SESSION: &str = "unknown_session";
    /// `sessions.request`: the session's function has returned or failed; it takes no more requests.
    pub const SESSION_CLOSED: &str = "session_closed";
    /// A `reply` event's error kind: the session's function returned while handling this request.
    pub const SESSION_ENDED: &str = "session_ended";
    /// `jobs.submit`: the `job_id` is another tenant's job (ids are unique across tenants).
    pub const JOB_ID_TAKEN: &str = "job_id_taken";
}

/// The tenant of a connection without a user nkey (an open mesh): every job is this tenant's.
pub const DEFAULT_TENANT: &str = "default";

fn default_tenant() -> String {
    DEFAULT_TENANT.into()
}

/// True for a string usable as one NATS subject token and KV key: 1..64 of `A-Z a-z 0-9 _ -`.
pub fn is_valid_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The function a job runs: inline source, or the name of a deployed function. In a job record an inline
/// source is named by its digest (`source_sha256`) and stored once apart (docs/PROTOCOL.md, "Job records"):
/// the record is rewritten at every change of the job's state and read by every party that handles it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The function to call (default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// In a record: the SHA-256 (hex) of the inline source the gateway stored (never in a submission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_sha256: Option<String>,
}

impl FunctionRef {
    /// Inline `source`, called at its `main`.
    pub fn inline(source: &str) -> Self {
        Self { source: Some(source.into()), ..Self::default() }
    }

    /// The deployed function `name`.
    pub fn deployed(name: &str) -> Self {
        Self { name: Some(name.into()), ..Self::default() }
    }

    /// Whether this runs `source` inline: carried, or named by its digest.
    pub fn runs_source(&self, source: &str) -> bool {
        match (&self.source, &self.source_sha256) {
            (Some(s), _) => s == source,
            (None, Some(d)) => *d == source_sha256(source),
            (None, None) => false,
        }
    }
}

/// The SHA-256 of a job's inline source, in hex: its key in the store of sources.
pub fn source_sha256(source: &str) -> String {
    crate::checkpoint::source_digest(source).iter().map(|b| format!("{b:02x}")).collect()
}

/// `jobs.submit` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    pub function: FunctionRef,
    /// Passed to the entry function as its one argument.
    #[serde(default)]
    pub input: Value,
    /// Client key: the same key submitted twice runs once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Runtime limit of one slice: the job runs in slices shorter than this, checkpointed and placed again
    /// between slices (the MicroLambda model of a node's runtime limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r_limit_ms: Option<u64>,
    /// Higher runs first when jobs wait for a node.
    #[serde(default)]
    pub priority: i32,
    /// Open a stateful session: the function is a generator function or a class with a `handle(request)`
    /// method, `input` its opening argument, and `sessions.request` feeds it requests (docs/PROTOCOL.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub session: bool,
}

/// `sessions.request` request: the next request of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// The session's job id.
    pub session: String,
    #[serde(default)]
    pub input: Value,
    /// Close the session once the requests before this one are answered (then no input).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub close: bool,
    /// The client's id for this request (1..64 of `A-Z a-z 0-9 _ -`): a repeat of a request with the same id
    /// (sent again after `unavailable`) is answered with the number the first got, never recorded twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// What a recorded request of a session asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionInput {
    /// Handle this input.
    Input(Value),
    /// End the session: a generator is closed, a class's `close()` called (by the client, or idle too long).
    Close,
}

/// Reply to `sessions.request`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SessionRequestReply {
    /// Recorded as request `n` of the session (1, 2, ...); its reply is the `reply` event with that `n`.
    Accepted {
        session: String,
        n: u64,
    },
    Error {
        error: ErrorBody,
    },
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// Reply to `jobs.submit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SubmitReply {
    Accepted {
        job_id: String,
        /// Always `"accepted"`.
        status: String,
        /// True when this key was submitted before: nothing new was started.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        duplicate: bool,
    },
    Error {
        error: ErrorBody,
    },
}

impl SubmitReply {
    pub fn accepted(job_id: &str, duplicate: bool) -> Self {
        SubmitReply::Accepted { job_id: job_id.into(), status: "accepted".into(), duplicate }
    }
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        SubmitReply::Error { error: ErrorBody { code: code.into(), message: message.into() } }
    }
}

/// `jobs.status` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    pub job_id: String,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted, waiting for a node.
    Queued,
    /// Owned by `node`, which runs it (or is about to).
    Placed,
    /// Checkpointed on `moving_from` and handed to `node`, which has not confirmed it runs it yet.
    Moving,
    /// Checkpointed and stopped, owned by no node, waiting for placement (a slice ended, its node's radio
    /// load rose and no node had room, or its node was lost).
    Parked,
    /// A session between requests: checkpointed at its `yield`, owned by no node, holding no worker; the
    /// next request makes it `parked` (placement then places it like any job).
    Idle,
    Completed,
    Failed,
}

impl JobState {
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Completed | JobState::Failed)
    }
}

/// Why a job failed, as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFailure {
    /// `syntax`, `bad_entry`, `bad_input`, `raised`, `bad_output`, `timeout`, `worker_exited`,
    /// `node_lost`, `runtime`.
    pub kind: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
}

/// A Python traceback without the frames of microlambda's own runtime (`File "<microlambda_rt/...>"`, and a
/// session's driver loop, `in __ml_session__`, with the indented lines under them): what the user sees starts
/// at their own code.
pub fn hide_runtime_frames(traceback: &str) -> String {
    let mut out = String::with_capacity(traceback.len());
    let mut skipping = false;
    for line in traceback.split_inclusive('\n') {
        if line.starts_with("  File ") {
            skipping =
                line.starts_with("  File \"<microlambda_rt/") || line.trim_end().ends_with(", in __ml_session__");
        } else if !line.starts_with("    ") {
            skipping = false;
        }
        if !skipping {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod traceback_tests {
    #[test]
    fn runtime_frames_are_hidden_and_the_jobs_stay() {
        let tb = "Traceback (most recent call last):\n  File \"<microlambda_rt/job.py>\", line 31, in load_module\n    exec(code)\n  File \"<job>.py\", line 1\n    def main(x)\n               ^\nSyntaxError: expected ':'\n";
        assert_eq!(
            super::hide_runtime_frames(tb),
            "Traceback (most recent call last):\n  File \"<job>.py\", line 1\n    def main(x)\n               ^\nSyntaxError: expected ':'\n"
        );
        let tb = "Traceback (most recent call last):\n  File \"<job>.py\", line 30, in __ml_session__\n    reply = s.send(request) if gen else s.handle(request)\n                                        ^^^^^^^^^^^^^^^^^\n  File \"<job>.py\", line 5, in handle\n    raise ValueError(1)\nValueError: 1\n";
        assert_eq!(
            super::hide_runtime_frames(tb),
            "Traceback (most recent call last):\n  File \"<job>.py\", line 5, in handle\n    raise ValueError(1)\nValueError: 1\n"
        );
    }
}

/// Where a persisted checkpoint lives in JetStream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointStore {
    /// A message of the checkpoint stream, by stream sequence number (checkpoints up to the server's
    /// max payload).
    Stream { seq: u64 },
    /// An object of the checkpoint object store (larger checkpoints).
    Object { name: String },
}

/// The last checkpoint of a job that its owner committed to the record: what a restore starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRef {
    /// The job's checkpoint sequence number (1, 2, ... over its whole life).
    pub seq: u64,
    /// Size of the signed envelope.
    pub bytes: u64,
    /// The job's running time up to the checkpoint, over all its slices.
    pub run_ms: u64,
    pub taken_ms: u64,
    /// The node that took it.
    pub node: String,
    pub store: CheckpointStore,
}

/// The job record kept in the `ml_jobs` KV bucket under the job id (`jobs.status` replies with it).
///
/// The record is also the job's ownership: every change of owner, every committed checkpoint and the final
/// outcome is a compare-and-set on the record's revision, so a node that lost the job (after a pause, a
/// partition, a slow move) finds out at its next write and never publishes an output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    /// Whose job it is: the tenant of the subject it was submitted on, which the server's permissions fix
    /// (docs/SECURITY.md, "Tenants"); its events go to `jobs.events.<tenant>.<job_id>`.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    pub state: JobState,
    pub function: FunctionRef,
    pub input: Value,
    #[serde(default)]
    pub priority: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r_limit_ms: Option<u64>,
    pub submitted_ms: u64,
    /// For a deployed function: the revision pinned when the job was accepted (every slice runs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_revision: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobFailure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    /// Ownership generation: bumped whenever the job gets a new owner or is parked.
    #[serde(default)]
    pub epoch: u64,
    /// The last committed checkpoint (none: a restart begins from the input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointRef>,
    /// Running time so far: at the last checkpoint, or the whole run once final.
    #[serde(default)]
    pub run_ms: u64,
    /// Runs started (fresh or from a checkpoint), checkpoints committed, moves between nodes.
    #[serde(default)]
    pub slices: u32,
    #[serde(default)]
    pub checkpoints: u32,
    #[serde(default)]
    pub moves: u32,
    /// For `moving`: the node the job comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moving_from: Option<String>,
    /// For `parked`: why (`slice`, `evacuated`, `node_lost`, `orphaned`, `refused`; `request`: a session woken).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked: Option<String>,
    /// For a session: where it is in its stream of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionState>,
}

/// A session's progress, in its record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    /// The request the session handles next (0: the opening; then 1, 2, ...); the ones before are answered.
    pub next: u64,
    /// The checkpoint taken where the session last waited for a request (its state before request `next`):
    /// a request that raises is answered with the error and the session goes back to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_checkpoint: Option<CheckpointRef>,
    /// Running time at that checkpoint (the job timeout applies to each request).
    #[serde(default)]
    pub idle_run_ms: u64,
    /// The last reply: the request's `n` and its `output` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reply: Option<SessionReply>,
    /// When it last went idle (ms since the epoch): an idle session is closed `placement.session_idle_ms`
    /// after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_since_ms: Option<u64>,
}

/// The answer to one request of a session (its `reply` event, and `session.last_reply` in the record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionReply {
    pub n: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobFailure>,
}

impl JobRecord {
    /// A new record of an accepted job, queued.
    pub fn queued(job_id: &str, function: FunctionRef, input: Value, priority: i32, r_limit_ms: Option<u64>) -> Self {
        Self {
            job_id: job_id.into(),
            tenant: default_tenant(),
            state: JobState::Queued,
            function,
            input,
            priority,
            r_limit_ms,
            submitted_ms: now_ms(),
            function_revision: None,
            node: None,
            output: None,
            error: None,
            finished_ms: None,
            epoch: 0,
            checkpoint: None,
            run_ms: 0,
            slices: 0,
            checkpoints: 0,
            moves: 0,
            moving_from: None,
            parked: None,
            session: None,
        }
    }

    /// Owned by no node and waiting for one (queued, or parked after a checkpoint).
    pub fn is_waiting(&self) -> bool {
        matches!(self.state, JobState::Queued | JobState::Parked)
    }
}

/// Reply to `jobs.status`: the record, or an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatusReply {
    Found(Box<JobRecord>),
    Error { error: ErrorBody },
}

/// What happened to a job, on `jobs.events.<job_id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    Accepted,
    Placed {
        node: String,
    },
    /// The job runs on `node`: from its start, or from checkpoint `resumed_from`.
    Started {
        node: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resumed_from: Option<u64>,
    },
    /// A checkpoint was committed: `mode` is `continue` (the job kept running) or `stop` (it left the node).
    /// `ttsp_ms`: from the request to the instant the job was stopped (time to safe point); `waited`: why it
    /// took that long, when it had to wait (a frame called from C, a long call into C...).
    Checkpointed {
        node: String,
        seq: u64,
        bytes: u64,
        capture_ms: f64,
        mode: String,
        #[serde(default)]
        ttsp_ms: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        waited: Option<String>,
    },
    /// The job moved: `ms` from the checkpoint request on `from` to the job running on `to` (wall clocks of
    /// two nodes), `bytes` the checkpoint carried.
    Migrated {
        from: String,
        to: String,
        ms: f64,
        bytes: u64,
    },
    /// The job was checkpointed and stopped, and waits for a node (`reason`: `slice`, `evacuated`,
    /// `node_lost`, `orphaned`, `refused`); `seq` is the checkpoint it resumes from.
    Parked {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    },
    /// A session answered request `n` (0: its opening) with `output` or `error`: published once the record
    /// holds the answer and the session's state after it.
    Reply {
        node: String,
        #[serde(flatten)]
        reply: SessionReply,
    },
    Completed {
        node: String,
        output: Value,
    },
    Failed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
        error: JobFailure,
    },
}

impl EventKind {
    /// The `event` tag as it appears in the JSON.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Accepted => "accepted",
            EventKind::Placed { .. } => "placed",
            EventKind::Started { .. } => "started",
            EventKind::Checkpointed { .. } => "checkpointed",
            EventKind::Migrated { .. } => "migrated",
            EventKind::Parked { .. } => "parked",
            EventKind::Reply { .. } => "reply",
            EventKind::Completed { .. } => "completed",
            EventKind::Failed { .. } => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub job_id: String,
    pub ts_ms: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl JobEvent {
    pub fn new(job_id: &str, kind: EventKind) -> Self {
        Self { job_id: job_id.into(), ts_ms: now_ms(), kind }
    }
    pub fn is_final(&self) -> bool {
        matches!(self.kind, EventKind::Completed { .. } | EventKind::Failed { .. })
    }
}

/// `node.load.<node_id>`: a node's load, published every report interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    pub node: String,
    pub ts: u64,
    /// Idle share of the whole machine's CPU (0..1).
    pub cpu_headroom: f64,
    /// The BBU's radio load (0..1).
    pub radio_load: f64,
    pub mem_available_bytes: u64,
    pub jobs_running: usize,
    pub slots: usize,
    /// Workers forked ahead, waiting for a job.
    #[serde(default)]
    pub warm_workers: usize,
    /// Zygotes kept for the module sets of the restores seen (`node.zygote_sets`), besides the base one.
    #[serde(default)]
    pub set_zygotes: usize,
    /// Restores forked from one of them (warm with the checkpoint's libraries) since the node started.
    #[serde(default)]
    pub set_zygote_restores: u64,
    /// Module zygotes (`node.module_zygotes`): zygotes that have also executed one job module.
    #[serde(default)]
    pub module_zygotes: usize,
    /// Restores forked from one of them (neither imports nor the module's top level run again).
    #[serde(default)]
    pub module_zygote_restores: u64,
    /// Module zygotes that did not come up or whose module could not be kept (their restores go on the
    /// ordinary way).
    #[serde(default)]
    pub module_zygote_failures: u64,
    /// Restores from a set or module zygote that found the child it keeps forked ahead ready (the others forked
    /// one on demand).
    #[serde(default)]
    pub restores_forked_ahead: u64,
    /// Modules set and module zygotes imported since the node started because their children imported them
    /// again each (a restore's, a request's lazy imports): their next children have them.
    #[serde(default)]
    pub modules_taught: u64,
    /// Set zygotes started for a module set another node learned (`node.warm.<node>`), since the node started.
    #[serde(default)]
    pub set_zygotes_from_peers: u64,
    /// Module zygotes started for a module another node told (its job's top level was slow there).
    #[serde(default)]
    pub module_zygotes_from_peers: u64,
    /// The jobs the node holds.
    #[serde(default)]
    pub jobs: Vec<JobLoad>,
}

/// A module set a node learned from a restore that no zygote of its own served, or a job module whose top level
/// was slow at a job's start (`node.warm.<node>`): the other nodes start a zygote for it, so that a job
/// evacuated to them later restores with its libraries imported (and its module's top level run).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmHint {
    /// The library packages the checkpoint needed that the node's base zygote lacks (sorted).
    pub set: Vec<String>,
    /// The modules the restore (or the module's top level) imported, in order (a package's import does not
    /// bring in the submodules a job used).
    #[serde(default)]
    pub modules: Vec<String>,
    /// The library modules the restore looked code up in (their code index is built before forking).
    #[serde(default)]
    pub index: Vec<String>,
    /// A job module started on the node whose top level took `load_ms`: the others start a zygote that has
    /// executed it (`node.module_zygotes`), when they have room for one (the set fields are then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<crate::worker::ModuleSpec>,
    #[serde(default)]
    pub load_ms: u64,
}

/// One job on a node, as its load report shows it (placement chooses what to evacuate from these).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobLoad {
    pub job_id: String,
    pub priority: i32,
    /// Running time so far, over all slices.
    pub run_ms: u64,
    /// Size of its last checkpoint (0: none yet).
    pub checkpoint_bytes: u64,
    /// Being checkpointed away from the node.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub leaving: bool,
}

/// `radio.load.<node_id>`: the radio load a BBU reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadioLoad {
    pub load: f64,
}

/// A deployed function as stored in the `ml_functions` bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployedFunction {
    pub name: String,
    pub source: String,
    pub entry: String,
    pub deployed_ms: u64,
}

/// What placement sends a node to run (`node.run.<node_id>`, internal to the mesh).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The job record as placed (state `placed`, this node, a new epoch); a `checkpoint` in it is where the
    /// job resumes.
    pub record: JobRecord,
    /// The record's revision after placement's compare-and-set: the node's first write is against it.
    pub revision: u64,
}

/// A node's answer to an assignment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignReply {
    pub accepted: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

/// What placement asks of a node on `node.ctl.<node_id>` (internal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum NodeCommand {
    /// Checkpoint these jobs and move each to `to`, or park it when `to` is none.
    Evacuate { moves: Vec<Move> },
    /// Check these jobs' ownership now and stop those the node no longer owns.
    Fence { jobs: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Move {
    pub job_id: String,
    #[serde(default)]
    pub to: Option<String>,
}

/// A node's answer to a [`NodeCommand`]: which of the named jobs it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandReply {
    pub known: Vec<String>,
    pub unknown: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A job handed from one node to another on `node.adopt.<node_id>` (internal; postcard, not JSON): the
/// record is already `moving` to the receiver at `revision`, and the checkpoint travels inline when it fits
/// in one message, else through the object store (`checkpoint.store`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adopt {
    pub job_id: String,
    pub revision: u64,
    pub epoch: u64,
    pub from: String,
    /// Wall-clock ms at which the move began on the sender (the checkpoint request).
    pub began_ms: u64,
    /// What the job resumes from (none: the sender had no checkpoint to give, the job starts over).
    pub checkpoint: Option<CheckpointRef>,
    /// The signed checkpoint envelope, or empty when it is in the object store.
    #[serde(with = "serde_bytes")]
    pub inline: Vec<u8>,
}

/// A node parked a job (`placement.requeue`, internal): placement should find it a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requeue {
    pub job_id: String,
    pub revision: u64,
}

/// `node.gone.<node_id>`: placement stopped hearing from a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeGone {
    pub node: String,
    pub last_seen_ms: u64,
    /// Jobs that were running there: they resume elsewhere from their last checkpoints.
    pub lost_jobs: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_job_input_reads_back_as_the_same_text() {
        // A record is written and read again at every state change, and a restore is given its input's text,
        // which must be the text the job started with (a checkpoint names its input by digest): floats must
        // parse back to the very value written (serde_json's float_roundtrip).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if !f.is_finite() {
                continue;
            }
            let first = serde_json::to_string(&json!([f, f / 3.0, f * 1e-300])).unwrap();
            let again: serde_json::Value = serde_json::from_str(&first).unwrap();
            assert_eq!(serde_json::to_string(&again).unwrap(), first);
        }
    }

    #[test]
    fn events_have_a_flat_shape() {
        let e = JobEvent {
            job_id: "j1".into(),
            ts_ms: 5,
            kind: EventKind::Completed { node: "n1".into(), output: json!(42) },
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"job_id": "j1", "ts_ms": 5, "event": "completed", "node": "n1", "output": 42})
        );
        let back: JobEvent = serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn replies_have_the_documented_shape() {
        assert_eq!(
            serde_json::to_value(SubmitReply::accepted("a", false)).unwrap(),
            json!({"job_id": "a", "status": "accepted"})
        );
        assert_eq!(
            serde_json::to_value(SubmitReply::error(code::BAD_JSON, "x")).unwrap(),
            json!({"error": {"code": "bad_json", "message": "x"}})
        );
    }

    #[test]
    fn tokens() {
        assert!(is_valid_token("job-1_A"));
        assert!(!is_valid_token(""));
        assert!(!is_valid_token("a.b"));
        assert!(!is_valid_token("a b"));
        assert!(!is_valid_token(&"x".repeat(65)));
    }
}
