//! The command-line clients of the public API: `submit`, `deploy`, `status`, `session`, `watch` and `dashboard`.
//! They speak only the documented JSON on NATS (docs/PROTOCOL.md), as a client in any language would.
pub mod dashboard;
pub mod session;
pub mod watch;

use crate::bus::{is_permission_refusal, Bus, BusError, BusErrorKind};
use crate::config::ClientConfig;
use crate::wire::{
    code, is_valid_token, now_ms, DeployedFunction, ErrorBody, EventKind, FunctionRef, JobEvent, JobFailure, JobRecord,
    StatusReply, SubmitReply, SubmitRequest,
};
use futures::StreamExt;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Bus(#[from] BusError),
    #[error("the server refused this identity: {0} (who may do what: docs/SECURITY.md)")]
    Denied(String),
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("bad argument: {0}")]
    Usage(String),
    #[error("--input is not valid JSON: {text}: {source}")]
    Input { text: String, source: serde_json::Error },
    #[error("refused: {} ({})", .0.message, .0.code)]
    Refused(ErrorBody),
    #[error("job {job_id} failed: {} ({})", .error.message, .error.kind)]
    Failed { job_id: String, error: JobFailure },
    #[error("no result for job {job_id} within {waited:?} (it may still finish: microlambda status {job_id})")]
    Timeout { job_id: String, waited: Duration },
}

pub async fn connect(nats: &str, cfg: &ClientConfig, name: &str) -> Result<Bus, ClientError> {
    Ok(Bus::connect_running(nats, name, Duration::from_millis(cfg.request_timeout_ms)).await?)
}

/// A request the server dropped for want of a permission is never answered: say so rather than "no answer".
fn denied_or(bus: &Bus, e: BusError) -> ClientError {
    match bus.refusals().into_iter().rfind(|r| is_permission_refusal(r)) {
        Some(r) => ClientError::Denied(r),
        None => ClientError::Bus(e),
    }
}

/// Whether the server has refused this identity something (a request it dropped is never answered).
fn is_denied(bus: &Bus) -> bool {
    bus.refusals().iter().any(|r| is_permission_refusal(r))
}

/// Send a submission, and again while the mesh cannot take it yet: nobody answers `jobs.submit` (no gateway
/// up yet) or the gateway's store did not (`unavailable`, as while a NATS cluster elects its leaders), for up to
/// `cfg.retry_ms`. The body names its job id, so a repeat is never a second job.
pub(crate) async fn submit_until_taken(
    bus: &Bus,
    cfg: &ClientConfig,
    body: Vec<u8>,
) -> Result<SubmitReply, ClientError> {
    let unavailable = |r: &SubmitReply| matches!(r, SubmitReply::Error { error } if error.code == code::UNAVAILABLE);
    until_answered(bus, cfg, || bus.submit_raw::<SubmitReply>(body.clone().into()), unavailable).await
}

/// Send a request again while nobody answers its subject (no gateway up yet: a request nobody received) or
/// its answer says `again`, every 250 ms for up to `cfg.retry_ms`; a refusal of this identity by the server is
/// said as such, never retried.
pub(crate) async fn until_answered<R, F, Fut>(
    bus: &Bus,
    cfg: &ClientConfig,
    send: F,
    again: impl Fn(&R) -> bool,
) -> Result<R, ClientError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<R, crate::bus::BusError>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_millis(cfg.retry_ms);
    loop {
        let r = send().await;
        let retry = match &r {
            Err(e) => e.kind == BusErrorKind::NoResponders && !is_denied(bus),
            Ok(reply) => again(reply),
        };
        if !retry || tokio::time::Instant::now() >= deadline {
            return r.map_err(|e| denied_or(bus, e));
        }
        tracing::debug!("the mesh cannot take the request yet; sending it again");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The text of a job's module, or why it cannot be read.
pub fn read(path: &Path) -> Result<String, ClientError> {
    std::fs::read_to_string(path).map_err(|source| ClientError::Read { path: path.display().to_string(), source })
}

/// The text of an `--input` argument: JSON, or `@FILE` for the JSON in FILE (one command-line argument holds
/// at most 128 KiB on Linux).
pub fn input_text(arg: &str) -> Result<String, ClientError> {
    match arg.strip_prefix('@') {
        Some(path) => read(Path::new(path)),
        None => Ok(arg.to_string()),
    }
}

/// A job's input as given on a command line (`submit`, `run`, the loadgen's `--input`): JSON or `@FILE`
/// ([`input_text`]), or a [`ClientError::Input`] that names the text (its first 200 characters), said before
/// any worker starts or any connection is tried.
pub fn parse_input(arg: &str) -> Result<serde_json::Value, ClientError> {
    parse_json(&input_text(arg)?)
}

/// An input's text ([`input_text`]) as JSON, or a [`ClientError::Input`] that shows its start.
pub fn parse_json(text: &str) -> Result<serde_json::Value, ClientError> {
    serde_json::from_str(text).map_err(|source| {
        let shown = match text.char_indices().nth(200) {
            Some((i, _)) => format!("{}...", &text[..i]),
            None => text.to_string(),
        };
        ClientError::Input { text: shown, source }
    })
}

/// A fresh client-side job id (lets the client subscribe to the job's events before submitting).
pub fn client_job_id() -> String {
    use rand::Rng;
    format!("c{:012x}{:08x}", now_ms(), rand::rng().random::<u32>())
}

/// What to submit.
#[derive(Debug, Clone)]
pub struct SubmitArgs {
    /// A Python file (inline source), or None with `name`.
    pub file: Option<std::path::PathBuf>,
    pub name: Option<String>,
    pub entry: Option<String>,
    pub input: serde_json::Value,
    pub job_id: Option<String>,
    pub priority: i32,
    pub r_limit_ms: Option<u64>,
    pub wait: bool,
}

/// The end of a submission: accepted only, or the finished record.
#[derive(Debug)]
pub enum SubmitOutcome {
    Accepted { job_id: String, duplicate: bool },
    Done(Box<JobRecord>),
}

pub async fn submit(bus: &Bus, cfg: &ClientConfig, a: SubmitArgs) -> Result<SubmitOutcome, ClientError> {
    let source = match &a.file {
        Some(p) => Some(read(p)?),
        None => None,
    };
    if source.is_none() && a.name.is_none() {
        return Err(ClientError::Usage("give a FILE.py or --name".into()));
    }
    let job_id = a.job_id.clone().unwrap_or_else(client_job_id);
    if !is_valid_token(&job_id) {
        return Err(ClientError::Usage(format!("job id {job_id:?} must be 1..64 of A-Z a-z 0-9 _ -")));
    }
    let req = SubmitRequest {
        function: FunctionRef {
            source,
            name: if a.file.is_some() { None } else { a.name.clone() },
            entry: a.entry.clone(),
            source_sha256: None,
        },
        input: a.input.clone(),
        job_id: Some(job_id.clone()),
        r_limit_ms: a.r_limit_ms,
        priority: a.priority,
        session: false,
    };
    let mut events = if a.wait { Some(bus.subscribe_events(&job_id).await?) } else { None };
    let body = serde_json::to_vec(&req).expect("serializable");
    let reply = submit_until_taken(bus, cfg, body).await?;
    let duplicate = match reply {
        SubmitReply::Error { error } => return Err(ClientError::Refused(error)),
        SubmitReply::Accepted { duplicate, .. } => duplicate,
    };
    let Some(events) = events.as_mut() else {
        return Ok(SubmitOutcome::Accepted { job_id, duplicate });
    };
    let waited = Duration::from_millis(cfg.wait_timeout_ms);
    let deadline = tokio::time::Instant::now() + waited;
    loop {
        // Events are the fast path; the record is the truth (a duplicate may have finished long ago).
        if let Some(rec) = final_record(bus, &job_id).await? {
            return Ok(SubmitOutcome::Done(Box::new(rec)));
        }
        let tick = tokio::time::Instant::now() + Duration::from_secs(1);
        let until = tick.min(deadline);
        loop {
            match tokio::time::timeout_at(until, events.next()).await {
                Ok(Some(m)) => {
                    if let Ok(ev) = serde_json::from_slice::<JobEvent>(&m.payload) {
                        if ev.is_final() {
                            if let Some(rec) = final_record(bus, &job_id).await? {
                                return Ok(SubmitOutcome::Done(Box::new(rec)));
                            }
                            return Ok(SubmitOutcome::Done(Box::new(record_from_event(&ev))));
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => break,
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ClientError::Timeout { job_id, waited });
        }
    }
}

fn record_from_event(ev: &JobEvent) -> JobRecord {
    let mut rec = JobRecord::queued(&ev.job_id, FunctionRef::default(), Value::Null, 0, None);
    rec.state = crate::wire::JobState::Completed;
    rec.submitted_ms = 0;
    rec.finished_ms = Some(ev.ts_ms);
    match &ev.kind {
        EventKind::Completed { node, output } => {
            rec.node = Some(node.clone());
            rec.output = Some(output.clone());
        }
        EventKind::Failed { node, error } => {
            rec.state = crate::wire::JobState::Failed;
            rec.node = node.clone();
            rec.error = Some(error.clone());
        }
        _ => {}
    }
    rec
}

async fn final_record(bus: &Bus, job_id: &str) -> Result<Option<JobRecord>, ClientError> {
    match status(bus, job_id).await {
        Ok(r) if r.state.is_final() => Ok(Some(r)),
        Ok(_) => Ok(None),
        Err(ClientError::Refused(e)) if e.code == crate::wire::code::NOT_FOUND => Ok(None),
        Err(e) => Err(e),
    }
}

/// `jobs.status` for one job.
pub async fn status(bus: &Bus, job_id: &str) -> Result<JobRecord, ClientError> {
    let body = serde_json::to_vec(&serde_json::json!({ "job_id": job_id })).expect("json");
    match bus.status::<StatusReply>(body.into()).await? {
        StatusReply::Found(r) => Ok(*r),
        StatusReply::Error { error } => Err(ClientError::Refused(error)),
    }
}

/// Store a function module under `name`; returns the revision.
pub async fn deploy(bus: &Bus, file: &Path, name: &str, entry: &str) -> Result<u64, ClientError> {
    if !is_valid_token(name) {
        return Err(ClientError::Usage(format!("function name {name:?} must be 1..64 of A-Z a-z 0-9 _ -")));
    }
    let source = read(file)?;
    let f = DeployedFunction { name: name.into(), source, entry: entry.into(), deployed_ms: now_ms() };
    Ok(bus.deploy(&f).await?)
}
