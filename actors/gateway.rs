//! The placement process's front door: answers `jobs.submit` (validate, record, accept) and `jobs.status`,
//! and feeds the placement actor with new jobs, node loads and job ends.
//!
//! Every request gets an answer: bad input of any kind is an `{"error": {"code", "message"}}` reply naming the
//! problem, never a crash or silence. Each request is handled on its own task, so a slow KV write delays
//! only its own request.
use super::placement::{Enqueue, JobEnded, NodeLoad, PlacementActor, QueuedJob, RadioChanged, Snapshot};
use crate::bus::{Bus, BusErrorKind, Message as NatsMessage};
use crate::config::PlacementConfig;
use crate::wire::{
    code, is_valid_token, now_ms, ErrorBody, EventKind, FunctionRef, JobEvent, JobRecord, JobState, LoadReport,
    StatusReply, StatusRequest, SubmitReply, SubmitRequest,
};
use actix::prelude::*;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// Why a submission was refused (an error reply).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { code, message: message.into() }
}

/// Parse and check a `jobs.submit` body without touching the bus.
pub fn parse_submit(body: &[u8], max_bytes: usize) -> Result<SubmitRequest, Refusal> {
    if body.len() > max_bytes {
        return Err(refuse(
            code::PAYLOAD_TOO_LARGE,
            format!(
                "request is {} bytes, the limit is {max_bytes} (placement.max_submit_bytes); deploy large code with `microlambda deploy` and pass data by reference",
                body.len()
            ),
        ));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| refuse(code::BAD_JSON, format!("request is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(refuse(code::BAD_REQUEST, "request must be a JSON object"));
    }
    let req: SubmitRequest =
        serde_json::from_value(value).map_err(|e| refuse(code::BAD_REQUEST, format!("invalid request: {e}")))?;
    check_function(&req.function)?;
    if let Some(id) = &req.job_id {
        if !is_valid_token(id) {
            return Err(refuse(
                code::BAD_REQUEST,
                format!("job_id {id:?} must be 1..64 characters of A-Z a-z 0-9 _ -"),
            ));
        }
    }
    Ok(req)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_') && chars.all(|c| c.is_alphanumeric() || c == '_')
}

fn check_function(f: &FunctionRef) -> Result<(), Refusal> {
    match (&f.source, &f.name) {
        (Some(_), Some(_)) => Err(refuse(code::BAD_REQUEST, "function: give either \"source\" or \"name\", not both")),
        (None, None) => Err(refuse(
            code::BAD_REQUEST,
            "function: missing \"source\" (Python module text) or \"name\" (a deployed function)",
        )),
        (None, Some(name)) if !is_valid_token(name) => Err(refuse(
            code::BAD_REQUEST,
            format!("function name {name:?} must be 1..64 characters of A-Z a-z 0-9 _ -"),
        )),
        _ => match &f.entry {
            Some(e) if !is_identifier(e) => {
                Err(refuse(code::BAD_REQUEST, format!("function entry {e:?} is not a Python identifier")))
            }
            _ => Ok(()),
        },
    }
}

fn new_job_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    format!("j{:012x}{:08x}", now_ms(), rng.random::<u32>())
}

struct Gateway {
    bus: Bus,
    cfg: PlacementConfig,
    placement: Addr<PlacementActor>,
}

impl Gateway {
    async fn submit(&self, body: &[u8]) -> SubmitReply {
        match self.try_submit(body).await {
            Ok(reply) => reply,
            Err(r) => SubmitReply::error(r.code, r.message),
        }
    }

    async fn try_submit(&self, body: &[u8]) -> Result<SubmitReply, Refusal> {
        let req = parse_submit(body, self.cfg.max_submit_bytes)?;
        let function_revision = match &req.function.name {
            Some(name) => match self.bus.function(name).await {
                Ok(Some((_, rev))) => Some(rev),
                Ok(None) => {
                    return Err(refuse(
                        code::UNKNOWN_FUNCTION,
                        format!("no function named {name:?} is deployed (microlambda deploy FILE.py --name {name})"),
                    ))
                }
                Err(e) => return Err(refuse(code::INTERNAL, format!("function store: {e}"))),
            },
            None => None,
        };
        let job_id = req.job_id.clone().unwrap_or_else(new_job_id);
        let record = JobRecord {
            job_id: job_id.clone(),
            state: JobState::Queued,
            function: req.function,
            input: req.input,
            priority: req.priority,
            r_limit_ms: req.r_limit_ms,
            submitted_ms: now_ms(),
            node: None,
            output: None,
            error: None,
            finished_ms: None,
        };
        let revision = match self.bus.create_record(&record).await {
            Ok(rev) => rev,
            Err(e) if e.kind == BusErrorKind::AlreadyExists => {
                return Ok(SubmitReply::accepted(&job_id, true));
            }
            Err(e) => return Err(refuse(code::INTERNAL, format!("job store: {e}"))),
        };
        let _ = self.bus.publish_event(&JobEvent::new(&job_id, EventKind::Accepted)).await;
        self.placement.do_send(Enqueue(QueuedJob { record, revision, function_revision }));
        Ok(SubmitReply::accepted(&job_id, false))
    }

    async fn status(&self, body: &[u8]) -> StatusReply {
        let err = |code: &str, message: String| StatusReply::Error { error: ErrorBody { code: code.into(), message } };
        let value: serde_json::Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return err(code::BAD_JSON, format!("request is not valid JSON: {e}")),
        };
        let req: StatusRequest = match serde_json::from_value(value) {
            Ok(r) => r,
            Err(e) => return err(code::BAD_REQUEST, format!("invalid request: {e}")),
        };
        if !is_valid_token(&req.job_id) {
            return err(code::BAD_REQUEST, format!("job_id {:?} is not a valid id", req.job_id));
        }
        match self.bus.record(&req.job_id).await {
            Ok(Some((r, _))) => StatusReply::Found(Box::new(r)),
            Ok(None) => err(code::NOT_FOUND, format!("no job {:?}", req.job_id)),
            Err(e) => err(code::INTERNAL, format!("job store: {e}")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("bus: {0}")]
    Bus(#[from] crate::bus::BusError),
}

/// Run placement and its gateway until Ctrl-C / SIGTERM (inside [`crate::runtime::block_on`]).
pub async fn run(cfg: PlacementConfig, nats: &str) -> Result<(), PlacementError> {
    let bus = Bus::connect(nats, "placement", Duration::from_secs(5)).await?;
    let mut submits = bus.serve_submit().await?;
    let mut statuses = bus.serve_status().await?;
    let mut nodes_req = bus.serve_nodes().await?;
    let mut loads = bus.subscribe_loads().await?;
    let mut events = bus.subscribe_all_events().await?;
    let mut radio = bus.subscribe_all_radio().await?;
    let placement = PlacementActor::new(cfg.clone(), bus.clone()).start();
    let gw = Arc::new(Gateway { bus: bus.clone(), cfg, placement: placement.clone() });

    recover(&bus, &placement).await;

    let mut tasks = Vec::new();
    let g = gw.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(m) = submits.next().await {
            let g = g.clone();
            tokio::spawn(async move {
                let reply = g.submit(&m.payload).await;
                if let Err(e) = g.bus.reply(&m, &reply).await {
                    tracing::warn!("cannot answer a submission: {e}");
                }
            });
        }
    }));
    let g = gw.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(m) = statuses.next().await {
            let g = g.clone();
            tokio::spawn(async move {
                let reply = g.status(&m.payload).await;
                let _ = g.bus.reply(&m, &reply).await;
            });
        }
    }));
    let (p, b) = (placement.clone(), bus.clone());
    tasks.push(tokio::spawn(async move {
        while let Some(m) = nodes_req.next().await {
            if let Ok(snap) = p.send(Snapshot).await {
                let _ = b.reply(&m, &snap).await;
            }
        }
    }));
    let p = placement.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(m) = loads.next().await {
            match serde_json::from_slice::<LoadReport>(&m.payload) {
                Ok(r) if r.node == Bus::node_of(&m) => p.do_send(NodeLoad(r)),
                _ => tracing::warn!("ignoring a bad load report on {}", m.subject),
            }
        }
    }));
    let p = placement.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(m) = radio.next().await {
            if let Ok(r) = serde_json::from_slice::<crate::wire::RadioLoad>(&m.payload) {
                if (0.0..=1.0).contains(&r.load) {
                    p.do_send(RadioChanged { node: Bus::node_of(&m).to_string(), load: r.load });
                }
            }
        }
    }));
    let p = placement.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(m) = events.next().await {
            if let Some(job_id) = final_event_job(&m) {
                p.do_send(JobEnded { job_id });
            }
        }
    }));
    crate::runtime::shutdown_signal().await;
    for t in tasks {
        t.abort();
    }
    Ok(())
}

/// After a restart: jobs accepted but never placed wait in the queue again. (Jobs already placed are left to
/// their node, which writes their final record.)
async fn recover(bus: &Bus, placement: &Addr<PlacementActor>) {
    let records = match bus.unfinished_records().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("cannot read the job records to recover queued jobs: {e}");
            return;
        }
    };
    let mut n = 0;
    for (record, revision) in records {
        if record.state != JobState::Queued {
            continue;
        }
        let function_revision = match &record.function.name {
            Some(name) => match bus.function(name).await {
                Ok(Some((_, rev))) => Some(rev),
                _ => None,
            },
            None => None,
        };
        placement.do_send(Enqueue(QueuedJob { record, revision, function_revision }));
        n += 1;
    }
    if n > 0 {
        tracing::info!(jobs = n, "re-queued jobs accepted before a restart");
    }
}

/// The job id of a completed / failed event (cheap check before a full parse).
fn final_event_job(m: &NatsMessage) -> Option<String> {
    let p = &m.payload;
    let has = |needle: &[u8]| p.windows(needle.len()).any(|w| w == needle);
    if !(has(b"\"completed\"") || has(b"\"failed\"")) {
        return None;
    }
    let ev: JobEvent = serde_json::from_slice(p).ok()?;
    ev.is_final().then_some(ev.job_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(body: &str) -> &'static str {
        match parse_submit(body.as_bytes(), 1000) {
            Ok(_) => "ok",
            Err(r) => r.code,
        }
    }

    #[test]
    fn submissions_are_checked_before_anything_runs() {
        let cases = [
            (r#"{"function": {"source": "def main(x): return x"}, "input": 1}"#, "ok"),
            (r#"{"function": {"name": "f"}, "input": {"a": [1]}}"#, "ok"),
            (r#"{"function": {"name": "f"}}"#, "ok"),
            (r#"{"function": {"source": "x"#, "bad_json"),
            (r#"not json"#, "bad_json"),
            (r#"[1, 2]"#, "bad_request"),
            (r#"{"input": 1}"#, "bad_request"),
            (r#"{"function": {"name": "f"}, "inputs": 1}"#, "bad_request"),
            (r#"{"function": {"name": "f", "code": "x"}}"#, "bad_request"),
            (r#"{"function": {"name": 5}}"#, "bad_request"),
            (r#"{"function": "f"}"#, "bad_request"),
            (r#"{"function": {"name": "f"}, "priority": "high"}"#, "bad_request"),
            (r#"{"function": {"name": "f"}, "r_limit_ms": -1}"#, "bad_request"),
            (r#"{"function": {}}"#, "bad_request"),
            (r#"{"function": {"name": "f", "source": "y"}}"#, "bad_request"),
            (r#"{"function": {"name": "a.b"}}"#, "bad_request"),
            (r#"{"function": {"name": "f", "entry": "1x"}}"#, "bad_request"),
            (r#"{"function": {"name": "f"}, "job_id": "has space"}"#, "bad_request"),
        ];
        for (body, want) in cases {
            assert_eq!(code_of(body), want, "{body}");
        }
        let big = format!(r#"{{"function": {{"name": "f"}}, "input": "{}"}}"#, "x".repeat(2000));
        assert_eq!(code_of(&big), "payload_too_large");
    }

    #[test]
    fn refusals_name_the_problem() {
        let r = parse_submit(br#"{"function": {"name": "f"}, "inputs": 1}"#, 1000).unwrap_err();
        assert!(r.message.contains("inputs"), "{}", r.message);
        let r = parse_submit(br#"{"input": 1}"#, 1000).unwrap_err();
        assert!(r.message.contains("function"), "{}", r.message);
        let r = parse_submit(br#"{"function": {"name": 5}}"#, 1000).unwrap_err();
        assert!(r.message.contains("invalid type"), "{}", r.message);
    }
}
