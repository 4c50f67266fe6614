//! The public JSON types of the mesh: what clients send on `jobs.submit` / `jobs.status`, the job events and
//! records they get back, node load reports, and the assignment placement sends a node.
//!
//! These types are the contract with clients in any language (docs/PROTOCOL.md); internal types need not
//! live here.
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
}

/// True for a string usable as one NATS subject token and KV key: 1..64 of `A-Z a-z 0-9 _ -`.
pub fn is_valid_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The function a job runs: inline source, or the name of a deployed function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The function to call (default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
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
    /// Response-time limit the client asks for (recorded; later issues act on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r_limit_ms: Option<u64>,
    /// Higher runs first when jobs wait for a node.
    #[serde(default)]
    pub priority: i32,
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
    /// Sent to a node.
    Placed,
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

/// The job record kept in the `ml_jobs` KV bucket under the job id (`jobs.status` replies with it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    pub state: JobState,
    pub function: FunctionRef,
    pub input: Value,
    #[serde(default)]
    pub priority: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r_limit_ms: Option<u64>,
    pub submitted_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobFailure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
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
    Started {
        node: String,
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
    /// Warm workers waiting for a job.
    #[serde(default)]
    pub warm_workers: usize,
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
    /// The job record as placed; the node completes it and writes it back.
    pub record: JobRecord,
    /// For a deployed function: the revision to run (nodes fetch it once and cache it by revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_revision: Option<u64>,
}

/// A node's answer to an assignment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignReply {
    pub accepted: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `node.gone.<node_id>`: placement stopped hearing from a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeGone {
    pub node: String,
    pub last_seen_ms: u64,
    /// Jobs that were running there and are failed.
    pub lost_jobs: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
