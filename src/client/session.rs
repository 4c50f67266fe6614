//! `microlambda session open|request|close`: a stateful session from the command line, through the public API
//! only (`jobs.submit` with `"session": true`, `sessions.request`, the session's `reply` events; docs/PROTOCOL.md,
//! "Sessions").
use super::{client_job_id, read, ClientError};
use crate::bus::{Bus, Subscriber};
use crate::config::ClientConfig;
use crate::wire::{
    code, is_valid_token, EventKind, FunctionRef, JobEvent, SessionReply, SessionRequest, SessionRequestReply,
    SubmitReply, SubmitRequest,
};
use futures::StreamExt;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// What opens a session: a file (inline source) or a deployed function, its entry, the opening input.
#[derive(Debug, Clone)]
pub struct OpenArgs {
    pub file: Option<PathBuf>,
    pub name: Option<String>,
    pub entry: Option<String>,
    pub input: Value,
    pub session: Option<String>,
    pub r_limit_ms: Option<u64>,
}

/// Open a session and wait for the answer to its opening (request 0). Returns the session's id and that reply.
pub async fn open(bus: &Bus, cfg: &ClientConfig, a: OpenArgs) -> Result<(String, SessionReply), ClientError> {
    let source = a.file.as_deref().map(read).transpose()?;
    if source.is_none() && a.name.is_none() {
        return Err(ClientError::Usage("give a FILE.py or --name".into()));
    }
    let id = a.session.clone().unwrap_or_else(client_job_id);
    check_id(&id)?;
    let req = SubmitRequest {
        function: FunctionRef {
            source,
            name: if a.file.is_some() { None } else { a.name },
            entry: a.entry,
            source_sha256: None,
        },
        input: a.input,
        job_id: Some(id.clone()),
        r_limit_ms: a.r_limit_ms,
        priority: 0,
        session: true,
    };
    let mut events = bus.subscribe_events(&id).await?;
    let body = serde_json::to_vec(&req).expect("serializable");
    match super::submit_until_taken(bus, cfg, body).await? {
        SubmitReply::Error { error } => return Err(ClientError::Refused(error)),
        SubmitReply::Accepted { duplicate: true, .. } => {
            return Err(ClientError::Usage(format!("{id:?} is taken: a session or job of that id exists")))
        }
        SubmitReply::Accepted { .. } => {}
    }
    let reply = wait_reply(bus, cfg, &mut events, &id, 0).await?;
    Ok((id, reply))
}

/// Send a request (an input, or a close with `None`) to a session and wait for its reply.
pub async fn request(
    bus: &Bus,
    cfg: &ClientConfig,
    session: &str,
    input: Option<Value>,
) -> Result<SessionReply, ClientError> {
    check_id(session)?;
    let close = input.is_none();
    // The request's id makes a repeat safe: the gateway answers it with the first one's number.
    let request_id = Some(client_job_id());
    let req = SessionRequest { session: session.into(), input: input.unwrap_or(Value::Null), close, request_id };
    let mut events = bus.subscribe_events(session).await?;
    let body = serde_json::to_vec(&req).expect("serializable");
    // Sent again while no gateway is up to receive it, or the store failed (`unavailable`).
    let send = || bus.session_request_raw::<SessionRequestReply>(body.clone().into());
    let unavailable =
        |r: &SessionRequestReply| matches!(r, SessionRequestReply::Error { error } if error.code == code::UNAVAILABLE);
    let n = match super::until_answered(bus, cfg, send, unavailable).await? {
        SessionRequestReply::Accepted { n, .. } => n,
        SessionRequestReply::Error { error } => return Err(ClientError::Refused(error)),
    };
    wait_reply(bus, cfg, &mut events, session, n).await
}

fn check_id(id: &str) -> Result<(), ClientError> {
    if is_valid_token(id) {
        Ok(())
    } else {
        Err(ClientError::Usage(format!("session id {id:?} must be 1..64 of A-Z a-z 0-9 _ -")))
    }
}

/// The reply to request `n`: from the session's events, or from its record (`session.last_reply`) when the
/// event came before the subscription or was missed; a session that failed before answering says so.
async fn wait_reply(
    bus: &Bus,
    cfg: &ClientConfig,
    events: &mut Subscriber,
    session: &str,
    n: u64,
) -> Result<SessionReply, ClientError> {
    let waited = Duration::from_millis(cfg.wait_timeout_ms);
    let deadline = tokio::time::Instant::now() + waited;
    loop {
        let rec = super::status(bus, session).await?;
        if let Some(r) = rec.session.as_ref().and_then(|s| s.last_reply.clone()).filter(|r| r.n == n) {
            return Ok(r);
        }
        if rec.state.is_final() && rec.session.as_ref().is_some_and(|s| s.next <= n) {
            // Ended before it reached this request (a close or a return before it): no reply will come.
            let error = rec.error.unwrap_or_else(|| crate::wire::JobFailure {
                kind: crate::wire::code::SESSION_CLOSED.into(),
                message: format!("the session ended before request {n}"),
                traceback: None,
            });
            return Err(ClientError::Failed { job_id: session.into(), error });
        }
        let until = deadline.min(tokio::time::Instant::now() + Duration::from_secs(1));
        while let Ok(Some(m)) = tokio::time::timeout_at(until, events.next()).await {
            if let Ok(JobEvent { kind: EventKind::Reply { reply, .. }, .. }) = serde_json::from_slice(&m.payload) {
                if reply.n == n {
                    return Ok(reply);
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ClientError::Timeout { job_id: session.into(), waited });
        }
    }
}
