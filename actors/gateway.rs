//! The placement process's front door: answers `jobs.submit` (validate, record, accept) and `jobs.status`,
//! and feeds the placement actor with new jobs, node loads and job ends.
//!
//! Every request gets an answer: bad input of any kind is an `{"error": {"code", "message"}}` reply naming the
//! problem, never a crash or silence. Each request is handled on its own task, so a slow KV write delays
//! only its own request.
//!
//! Size: a little over 700 lines, a third of them the parse's table tests: the leader's term (lease, recovery,
//! rescan) and the requests it answers share the bus, the placement address and the refusal codes.
use super::placement::{
    Enqueue, FoundRunning, JobEnded, Migrated, NodeLoad, PlacementActor, QueuedJob, RadioChanged, Running, Snapshot,
    Stop, Stranded,
};
use super::scheduler::Whereabouts;
use super::session;
use crate::bus::{Bus, BusError, BusErrorKind, Message as NatsMessage};
use crate::config::PlacementConfig;
use crate::metrics::PlacementMetrics;
use crate::wire::{
    code, is_valid_token, now_ms, ErrorBody, EventKind, FunctionRef, JobEvent, JobRecord, JobState, LoadReport,
    Requeue, SessionInput, SessionRequest, SessionRequestReply, SessionState, StatusReply, StatusRequest, SubmitReply,
    SubmitRequest,
};
use actix::prelude::*;
use futures::StreamExt;
use std::collections::HashMap;
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

/// The shortest slice a job may ask for (each slice boundary costs a checkpoint and a restore).
pub const MIN_R_LIMIT_MS: u64 = 50;

/// A request body as `T`: at most `max_bytes`, JSON, an object, no unknown fields.
fn parse_request<T: serde::de::DeserializeOwned>(body: &[u8], max_bytes: usize) -> Result<T, Refusal> {
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
    serde_json::from_value(value).map_err(|e| refuse(code::BAD_REQUEST, format!("invalid request: {e}")))
}

/// Parse and check a `jobs.submit` body without touching the bus.
pub fn parse_submit(body: &[u8], max_bytes: usize) -> Result<SubmitRequest, Refusal> {
    let req: SubmitRequest = parse_request(body, max_bytes)?;
    check_function(&req.function)?;
    if let Some(ms) = req.r_limit_ms {
        if ms < MIN_R_LIMIT_MS {
            return Err(refuse(
                code::BAD_REQUEST,
                format!("r_limit_ms {ms} is too short: a slice must run at least {MIN_R_LIMIT_MS} ms"),
            ));
        }
    }
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
    if f.source_sha256.is_some() {
        return Err(refuse(code::BAD_REQUEST, "function: \"source_sha256\" is the gateway's (send \"source\")"));
    }
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
    /// The inline sources this gateway stored, by digest, and when (seconds since the epoch).
    stored: std::sync::Mutex<HashMap<String, u64>>,
}

/// How many stored sources a gateway remembers (it forgets them all at once beyond: each is stored again once).
const STORED_SOURCES_KEPT: usize = 4096;

/// The tenant a request came from (the last token of its subject, which a secured server lets a client
/// publish under its own tenant only), or the refusal of a malformed one (possible on an open mesh only).
fn tenant_of(msg: &NatsMessage) -> Result<&str, Refusal> {
    let tenant = Bus::tenant_of(msg);
    if is_valid_token(tenant) {
        Ok(tenant)
    } else {
        Err(refuse(code::BAD_REQUEST, format!("tenant {tenant:?} must be 1..64 characters of A-Z a-z 0-9 _ -")))
    }
}

/// A store that did not take a request (JetStream not answering, as while a cluster elects its leaders): the
/// client may send the same request again.
fn unavailable(store: &str, e: &BusError) -> Refusal {
    refuse(
        code::UNAVAILABLE,
        format!("the {store} did not answer ({e}); nothing was recorded: send the same request again"),
    )
}

impl Gateway {
    async fn submit(&self, msg: &NatsMessage) -> SubmitReply {
        match self.try_submit(msg).await {
            Ok(reply) => reply,
            Err(r) => SubmitReply::error(r.code, r.message),
        }
    }

    async fn try_submit(&self, msg: &NatsMessage) -> Result<SubmitReply, Refusal> {
        let tenant = tenant_of(msg)?;
        let req = parse_submit(&msg.payload, self.cfg.max_submit_bytes)?;
        let function_revision = match &req.function.name {
            Some(name) => match self.bus.function(tenant, name).await {
                Ok(Some((_, rev))) => Some(rev),
                Ok(None) => {
                    return Err(refuse(
                        code::UNKNOWN_FUNCTION,
                        format!("no function named {name:?} is deployed (microlambda deploy FILE.py --name {name})"),
                    ))
                }
                Err(e) => return Err(unavailable("function store", &e)),
            },
            None => None,
        };
        let job_id = req.job_id.clone().unwrap_or_else(new_job_id);
        let function = self.store_source(req.function).await?;
        let mut record = JobRecord::queued(&job_id, function, req.input, req.priority, req.r_limit_ms);
        record.tenant = tenant.to_string();
        record.function_revision = function_revision;
        record.session = req.session.then(SessionState::default);
        let revision = match self.bus.create_record(&record).await {
            Ok(rev) => rev,
            Err(e) if e.kind == BusErrorKind::AlreadyExists => {
                return match self.bus.record(&job_id).await {
                    Ok(Some((first, _))) if first.tenant != tenant => Err(refuse(
                        code::JOB_ID_TAKEN,
                        format!("job_id {job_id:?} is taken (ids are unique across tenants): pick another"),
                    )),
                    Ok(Some((first, revision))) => {
                        // A retry of a submit whose reply was lost: if the first one's queueing was lost too
                        // (placement changed leader in between), the job is queued now, not at the next rescan.
                        if first.is_waiting() {
                            self.placement.do_send(Stranded(QueuedJob { record: first, revision }));
                        }
                        Ok(SubmitReply::accepted(&job_id, true))
                    }
                    _ => Ok(SubmitReply::accepted(&job_id, true)),
                };
            }
            Err(e) => return Err(unavailable("job store", &e)),
        };
        let _ = self.bus.publish_event(tenant, &JobEvent::new(&job_id, EventKind::Accepted)).await;
        self.placement.do_send(Enqueue(QueuedJob { record, revision }));
        Ok(SubmitReply::accepted(&job_id, false))
    }

    /// An inline source stored once by digest (unless this gateway stored it lately), and the function as its
    /// record names it: by that digest.
    async fn store_source(&self, f: FunctionRef) -> Result<FunctionRef, Refusal> {
        let Some(source) = f.source else { return Ok(f) };
        let sha256 = crate::wire::source_sha256(&source);
        let now_s = now_ms() / 1000;
        let fresh = |at: &u64| now_s.saturating_sub(*at) < crate::bus::SOURCE_TTL.as_secs() / 2;
        let known = self.stored.lock().map(|m| m.get(&sha256).is_some_and(fresh)).unwrap_or(false);
        if !known {
            self.bus.put_source(&sha256, &source).await.map_err(|e| unavailable("source store", &e))?;
            if let Ok(mut m) = self.stored.lock() {
                if m.len() >= STORED_SOURCES_KEPT {
                    m.clear();
                }
                m.insert(sha256.clone(), now_s);
            }
        }
        Ok(FunctionRef { source: None, source_sha256: Some(sha256), ..f })
    }

    async fn session_request(&self, msg: &NatsMessage) -> SessionRequestReply {
        match self.try_session_request(msg).await {
            Ok(reply) => reply,
            Err(r) => SessionRequestReply::Error { error: ErrorBody { code: r.code.into(), message: r.message } },
        }
    }

    /// Record the request under the session's next free number, then wake the session if it is idle.
    async fn try_session_request(&self, msg: &NatsMessage) -> Result<SessionRequestReply, Refusal> {
        let tenant = tenant_of(msg)?;
        let req = parse_session_request(&msg.payload, self.cfg.max_submit_bytes)?;
        let id = &req.session;
        let (rec, rev) = match self.bus.record(id).await {
            // Another tenant's session is answered as no session at all.
            Ok(Some(r)) if r.0.tenant == tenant => r,
            Ok(_) => return Err(refuse(code::UNKNOWN_SESSION, format!("no session {id:?}"))),
            Err(e) => return Err(unavailable("job store", &e)),
        };
        let Some(state) = &rec.session else {
            return Err(refuse(
                code::UNKNOWN_SESSION,
                format!("job {id:?} is not a session (open one with \"session\": true on jobs.submit)"),
            ));
        };
        if rec.state.is_final() {
            let how = if rec.state == JobState::Completed { "it returned or was closed" } else { "it failed" };
            return Err(refuse(
                code::SESSION_CLOSED,
                format!("session {id:?} takes no more requests: {how} at request {}", state.next),
            ));
        }
        let rid = req.request_id.as_deref();
        if let Some(rid) = rid {
            // A repeat of a request the store may have recorded before it failed to say so.
            let next = state.next;
            if let Some(n) =
                find_request(&self.bus, id, rid, next).await.map_err(|e| unavailable("session store", &e))?
            {
                return Ok(SessionRequestReply::Accepted { session: id.clone(), n });
            }
        }
        let input = if req.close { SessionInput::Close } else { SessionInput::Input(req.input) };
        let n = record_request(&self.bus, &self.placement, rec, rev, &input, rid)
            .await
            .map_err(|e| unavailable("session store", &e))?;
        Ok(SessionRequestReply::Accepted { session: id.clone(), n })
    }
}

/// Record a request (or a close) under the session's next free number, then wake the session if it is idle and
/// offer it to placement. `rec` and `rev`: the session's record as read before. Returns the request's number.
async fn record_request(
    bus: &Bus,
    placement: &Addr<PlacementActor>,
    rec: JobRecord,
    rev: u64,
    input: &SessionInput,
    request_id: Option<&str>,
) -> Result<u64, crate::bus::BusError> {
    let id = rec.job_id.clone();
    let mut n = rec.session.as_ref().map_or(1, |s| s.next.max(1));
    loop {
        match bus.create_session_request(&id, n, input, request_id).await {
            Ok(()) => break,
            Err(e) if e.kind == BusErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(e),
        }
    }
    if let Some(rid) = request_id {
        // Best effort: without the mark a repeat still finds the request while it is unanswered.
        if let Err(e) = bus.mark_session_request(&id, rid, n).await {
            tracing::warn!(session = %id, n, "cannot note the request's id: {e}");
        }
    }
    match session::wake_from(bus, &id, Some((rec, rev, n))).await {
        Ok(Some((record, revision))) => placement.do_send(Enqueue(QueuedJob { record, revision })),
        Ok(None) => {}
        // The request is recorded: the session takes it when it next goes idle, or at a takeover.
        Err(e) => tracing::warn!(session = %id, "cannot wake the session: {e}"),
    }
    Ok(n)
}

/// The number of the session's request its client calls `rid`, if the store has it: by the mark noted when it
/// was recorded, else among the requests from `next` on (recorded, not answered yet, the mark not written).
async fn find_request(bus: &Bus, session: &str, rid: &str, next: u64) -> Result<Option<u64>, crate::bus::BusError> {
    if let Some(n) = bus.marked_session_request(session, rid).await? {
        if bus.session_request_id(session, n).await?.flatten().as_deref() == Some(rid) {
            return Ok(Some(n));
        }
    }
    let mut n = next.max(1);
    while let Some(id) = bus.session_request_id(session, n).await? {
        if id.as_deref() == Some(rid) {
            return Ok(Some(n));
        }
        n += 1;
    }
    Ok(None)
}

/// Parse and check a `sessions.request` body without touching the bus.
pub fn parse_session_request(body: &[u8], max_bytes: usize) -> Result<SessionRequest, Refusal> {
    let req: SessionRequest = parse_request(body, max_bytes)?;
    if req.close && !req.input.is_null() {
        return Err(refuse(code::BAD_REQUEST, "a close carries no input: send the input as a request of its own"));
    }
    if !is_valid_token(&req.session) {
        return Err(refuse(
            code::BAD_REQUEST,
            format!("session {:?} must be 1..64 characters of A-Z a-z 0-9 _ -", req.session),
        ));
    }
    if let Some(id) = req.request_id.as_deref().filter(|id| !is_valid_token(id)) {
        return Err(refuse(
            code::BAD_REQUEST,
            format!("request_id {id:?} must be 1..64 characters of A-Z a-z 0-9 _ -"),
        ));
    }
    Ok(req)
}

#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("bus: {0}")]
    Bus(#[from] crate::bus::BusError),
    #[error("{0}")]
    Metrics(#[from] crate::http::HttpError),
}

/// How a term as leader ended.
enum Term {
    Shutdown,
    Lost,
}

/// Run a placement process until Ctrl-C / SIGTERM (inside [`crate::runtime::block_on`]). Several may run:
/// each answers `jobs.status`; the one holding the lease (a KV key that expires `lease_ms` after its last
/// renewal) places jobs and answers `jobs.submit`, and a standby takes over when the leader stops renewing.
pub async fn run(cfg: PlacementConfig, nats: &str) -> Result<(), PlacementError> {
    let metrics = PlacementMetrics::new();
    if !cfg.metrics_listen.is_empty() {
        crate::metrics::serve("placement.metrics_listen", &cfg.metrics_listen, metrics.registry()).await?;
    }
    let bus = Bus::connect(nats, "placement", Duration::from_secs(5)).await?;
    let lease = bus.lease(Duration::from_millis(cfg.lease_ms)).await?;
    let holder = format!("placement-{}-{}", std::process::id(), now_ms());
    let mut statuses = bus.serve_status().await?;
    let b = bus.clone();
    let status_task = tokio::spawn(async move {
        while let Some(m) = statuses.next().await {
            let b = b.clone();
            tokio::spawn(async move {
                let reply = status(&b, &m).await;
                let _ = b.reply(&m, &reply).await;
            });
        }
    });
    let shutdown = crate::runtime::shutdown_signal();
    tokio::pin!(shutdown);
    let poll = Duration::from_millis((cfg.lease_ms / 6).clamp(50, 500));
    let result = loop {
        let revision = tokio::select! {
            _ = &mut shutdown => break Ok(()),
            r = lease.acquire(&holder) => match r {
                Ok(rev) => rev,
                Err(e) => {
                    if e.kind != BusErrorKind::AlreadyExists {
                        tracing::warn!("cannot reach the lease: {e}");
                    }
                    tokio::select! {
                        _ = &mut shutdown => break Ok(()),
                        _ = tokio::time::sleep(poll) => continue,
                    }
                }
            },
        };
        tracing::info!(holder, "took the placement lease");
        metrics.set_leader(true);
        let term = lead(&bus, &cfg, &metrics, &lease, &holder, revision, &mut shutdown).await;
        metrics.set_leader(false);
        match term {
            Ok((Term::Shutdown, rev)) => {
                // Bounded: a NATS that is already gone must not hold up the stop (the lease then expires by
                // itself, and a standby takes over after `lease_ms`).
                let _ = tokio::time::timeout(Duration::from_millis(500), lease.release(rev)).await;
                break Ok(());
            }
            Ok((Term::Lost, _)) => tracing::warn!(holder, "lost the placement lease: standing by"),
            Err(e) => {
                tracing::warn!("leading failed: {e}");
                tokio::time::sleep(poll).await;
            }
        }
    };
    status_task.abort();
    result
}

/// One term as leader: serve submissions, run the placement actor, renew the lease; return when the lease
/// is lost (or cannot be renewed in time) or on shutdown, with the last lease revision.
async fn lead(
    bus: &Bus,
    cfg: &PlacementConfig,
    metrics: &PlacementMetrics,
    lease: &crate::bus::Lease,
    holder: &str,
    mut revision: u64,
    shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Result<(Term, u64), PlacementError> {
    let mut submits = bus.serve_submit().await?;
    let mut session_requests = bus.serve_session_requests().await?;
    let mut nodes_req = bus.serve_nodes().await?;
    let mut requeues = bus.serve_requeue().await?;
    let mut loads = bus.subscribe_loads().await?;
    let mut events = bus.subscribe_every_tenants_events().await?;
    let mut radio = bus.subscribe_all_radio().await?;
    let placement = PlacementActor::new(cfg.clone(), bus.clone(), metrics.clone()).start();
    let gw = Arc::new(Gateway {
        bus: bus.clone(),
        cfg: cfg.clone(),
        placement: placement.clone(),
        stored: Default::default(),
    });

    let mut tasks = Vec::new();
    let g = gw.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(m) = submits.next().await {
            let g = g.clone();
            tokio::spawn(async move {
                let reply = g.submit(&m).await;
                if let Err(e) = g.bus.reply(&m, &reply).await {
                    tracing::warn!("cannot answer a submission: {e}");
                }
            });
        }
    }));
    let g = gw.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(m) = session_requests.next().await {
            let g = g.clone();
            tokio::spawn(async move {
                let reply = g.session_request(&m).await;
                if let Err(e) = g.bus.reply(&m, &reply).await {
                    tracing::warn!("cannot answer a session request: {e}");
                }
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
    let (p, b) = (placement.clone(), bus.clone());
    tasks.push(tokio::spawn(async move {
        while let Some(m) = requeues.next().await {
            let (p, b) = (p.clone(), b.clone());
            tokio::spawn(async move {
                let reply = requeue(&b, &p, &m.payload).await;
                let _ = b.reply(&m, &reply).await;
            });
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
            match placement_event(&m) {
                Some(PlacementEvent::Ended(job_id)) => p.do_send(JobEnded { job_id }),
                Some(PlacementEvent::Migrated { job_id, to }) => p.do_send(Migrated { job_id, to }),
                None => {}
            }
        }
    }));
    let (p, b) = (placement.clone(), bus.clone());
    tasks.push(tokio::spawn(async move { recover(&b, &p).await }));
    let (p, b, idle_ms) = (placement.clone(), bus.clone(), cfg.session_idle_ms);
    let every = rescan_every(idle_ms, cfg.rescan_ms);
    tasks.push(tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            rescan(&b, &p, idle_ms, now_ms()).await;
        }
    }));

    let every = Duration::from_millis((cfg.lease_ms / 3).max(20));
    let mut renewed = tokio::time::Instant::now();
    let end = loop {
        tokio::select! {
            _ = &mut *shutdown => break Term::Shutdown,
            _ = tokio::time::sleep(every) => {
                match lease.renew(holder, revision).await {
                    Ok(r) => {
                        revision = r;
                        renewed = tokio::time::Instant::now();
                    }
                    Err(e) if e.kind == BusErrorKind::WrongRevision => break Term::Lost,
                    Err(e) => {
                        // Unsure whether we still hold it: step down before it can have expired.
                        if renewed.elapsed() > Duration::from_millis(cfg.lease_ms * 2 / 3) {
                            tracing::warn!("cannot renew the lease: {e}");
                            break Term::Lost;
                        }
                    }
                }
            }
        }
    };
    for t in tasks {
        t.abort();
    }
    let _ = placement.send(Stop).await;
    Ok((end, revision))
}

/// `jobs.status`: read the record (any placement process answers); another tenant's job is `not_found`.
async fn status(bus: &Bus, msg: &NatsMessage) -> StatusReply {
    let err = |code: &str, message: String| StatusReply::Error { error: ErrorBody { code: code.into(), message } };
    let tenant = match tenant_of(msg) {
        Ok(t) => t,
        Err(r) => return err(r.code, r.message),
    };
    let value: serde_json::Value = match serde_json::from_slice(&msg.payload) {
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
    match bus.record(&req.job_id).await {
        Ok(Some((r, _))) if r.tenant == tenant => StatusReply::Found(Box::new(r)),
        Ok(_) => err(code::NOT_FOUND, format!("no job {:?}", req.job_id)),
        Err(e) => {
            let r = unavailable("job store", &e);
            err(r.code, r.message)
        }
    }
}

/// A node parked a job: read its record and queue it.
async fn requeue(bus: &Bus, placement: &Addr<PlacementActor>, body: &[u8]) -> serde_json::Value {
    let r: Requeue = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return serde_json::json!({"error": {"code": code::BAD_REQUEST, "message": e.to_string()}}),
    };
    match bus.record(&r.job_id).await {
        Ok(Some((record, revision))) if record.is_waiting() => {
            placement.do_send(Enqueue(QueuedJob { record, revision }));
            serde_json::json!({"ok": true})
        }
        Ok(Some(_)) | Ok(None) => serde_json::json!({"ok": true, "note": "not waiting"}),
        Err(e) => serde_json::json!({"error": {"code": code::INTERNAL, "message": e.to_string()}}),
    }
}

/// At the start of a term: every unfinished job is queued again (waiting) or counted on its node (placed,
/// moving); the scheduler's checks sort out what the records no longer match.
async fn recover(bus: &Bus, placement: &Addr<PlacementActor>) {
    let records = match bus.unfinished_records().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("cannot read the job records to recover: {e}");
            return;
        }
    };
    let (mut waiting, mut running) = (0, 0);
    for (record, revision) in records {
        match record.state {
            JobState::Queued | JobState::Parked => {
                waiting += 1;
                placement.do_send(Enqueue(QueuedJob { record, revision }));
            }
            JobState::Placed | JobState::Moving => {
                running += 1;
                let at = whereabouts_of(&record).expect("placed or moving");
                placement.do_send(Running { job_id: record.job_id, at });
            }
            // A session between requests: woken when a request came while no placement led.
            JobState::Idle => {
                if let Ok(Some((record, revision))) = session::wake(bus, &record.job_id).await {
                    waiting += 1;
                    placement.do_send(Enqueue(QueuedJob { record, revision }));
                }
            }
            JobState::Completed | JobState::Failed => {}
        }
    }
    if waiting + running > 0 {
        tracing::info!(waiting, running, "recovered unfinished jobs");
    }
}

/// How often the leader rescans the records: every `rescan_ms` (at least every 100 ms), or a quarter of
/// `session_idle_ms` when that is sooner (at least every second).
fn rescan_every(idle_ms: u64, rescan_ms: u64) -> Duration {
    let rescan = rescan_ms.max(100);
    Duration::from_millis(if idle_ms == 0 { rescan } else { (idle_ms / 4).max(1000).min(rescan) })
}

/// The leader's look at the unfinished records, every so often: a waiting job placement does not know of is
/// queued (`Stranded`: a submit whose queueing was lost, a job parked or taken back while no message reached
/// placement); a session idle for `idle_ms` or more (not 0) gets a close recorded as its next request, as a
/// client's close; one whose next request is already recorded (its wake failed when the request came) is woken.
async fn rescan(bus: &Bus, placement: &Addr<PlacementActor>, idle_ms: u64, now: u64) {
    let records = match bus.unfinished_records().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("cannot read the job records to rescan them: {e}");
            return;
        }
    };
    for (rec, rev) in records {
        if rec.is_waiting() {
            placement.do_send(Stranded(QueuedJob { record: rec, revision: rev }));
            continue;
        }
        // A job on a node placement has lost track of (its node may be gone): tracked again, checked as any.
        if let Some(at) = whereabouts_of(&rec) {
            placement.do_send(FoundRunning { job_id: rec.job_id, at });
            continue;
        }
        if rec.state != JobState::Idle {
            continue;
        }
        let id = rec.job_id.clone();
        if idle_too_long(&rec, idle_ms, now) {
            match record_request(bus, placement, rec, rev, &SessionInput::Close, None).await {
                Ok(n) => tracing::info!(session = %id, n, "closing a session idle for {idle_ms} ms or more"),
                Err(e) => tracing::warn!(session = %id, "cannot close an idle session: {e}"),
            }
        } else if let Ok(Some((record, revision))) = session::wake(bus, &id).await {
            placement.do_send(Enqueue(QueuedJob { record, revision }));
        }
    }
}

/// Where a placed or moving job's record says it is (None in any other state).
fn whereabouts_of(rec: &JobRecord) -> Option<Whereabouts> {
    let node = rec.node.clone().unwrap_or_default();
    match rec.state {
        JobState::Placed => Some(Whereabouts::On(node)),
        JobState::Moving => Some(Whereabouts::Moving { from: rec.moving_from.clone().unwrap_or_default(), to: node }),
        _ => None,
    }
}

/// Whether an idle session has waited for its next request `idle_ms` or more by `now` (never when `idle_ms` is
/// 0, nor for a record written before `idle_since_ms` was).
fn idle_too_long(rec: &JobRecord, idle_ms: u64, now: u64) -> bool {
    let since = rec.session.as_ref().and_then(|s| s.idle_since_ms);
    idle_ms > 0 && rec.state == JobState::Idle && since.is_some_and(|t| now.saturating_sub(t) >= idle_ms)
}

enum PlacementEvent {
    Ended(String),
    Migrated { job_id: String, to: String },
}

/// The events placement follows: a job's end, a session's answer (it then waits on no node: a late one, after
/// the session was woken and placed again, only makes placement check the record at the next load report)
/// and a move's arrival (cheap check before a full parse).
fn placement_event(m: &NatsMessage) -> Option<PlacementEvent> {
    let p = &m.payload;
    let has = |needle: &[u8]| p.windows(needle.len()).any(|w| w == needle);
    if !(has(b"\"completed\"") || has(b"\"failed\"") || has(b"\"migrated\"") || has(b"\"reply\"")) {
        return None;
    }
    let ev: JobEvent = serde_json::from_slice(p).ok()?;
    match ev.kind {
        EventKind::Completed { .. } | EventKind::Failed { .. } | EventKind::Reply { .. } => {
            Some(PlacementEvent::Ended(ev.job_id))
        }
        EventKind::Migrated { to, .. } => Some(PlacementEvent::Migrated { job_id: ev.job_id, to }),
        _ => None,
    }
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
            (r#"{"function": {"name": "f"}, "r_limit_ms": 10}"#, "bad_request"),
            (r#"{"function": {"name": "f"}, "r_limit_ms": 200}"#, "ok"),
            (r#"{"function": {}}"#, "bad_request"),
            (r#"{"function": {"name": "f", "source": "y"}}"#, "bad_request"),
            (r#"{"function": {"name": "a.b"}}"#, "bad_request"),
            (r#"{"function": {"name": "f", "entry": "1x"}}"#, "bad_request"),
            (r#"{"function": {"name": "f"}, "job_id": "has space"}"#, "bad_request"),
            (r#"{"function": {"source": "x", "source_sha256": "ab"}}"#, "bad_request"),
            (r#"{"function": {"source_sha256": "ab"}}"#, "bad_request"),
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
        let r = parse_submit(br#"{"function": {"source_sha256": "ab"}}"#, 1000).unwrap_err();
        assert!(r.message.contains("source_sha256"), "{}", r.message);
    }

    #[test]
    fn a_close_is_a_request_with_no_input() {
        let r = parse_session_request(br#"{"session": "s-1", "close": true}"#, 1000).unwrap();
        assert!(r.close && r.input.is_null());
        let r = parse_session_request(br#"{"session": "s-1", "close": true, "input": 1}"#, 1000).unwrap_err();
        assert_eq!(r.code, code::BAD_REQUEST);
        assert!(r.message.contains("no input"), "{}", r.message);
        assert_eq!(parse_session_request(br#"{"session": "s-1", "close": 1}"#, 1000).unwrap_err().code, "bad_request");
        assert!(!parse_session_request(br#"{"session": "s-1", "input": 2}"#, 1000).unwrap().close);
    }

    #[test]
    fn a_session_is_idle_too_long_only_when_idle_since_long_enough_and_expiry_is_on() {
        let f = FunctionRef::deployed("f");
        let mut rec = JobRecord::queued("s-1", f, serde_json::Value::Null, 0, None);
        rec.session = Some(SessionState { idle_since_ms: Some(1_000), ..Default::default() });
        rec.state = JobState::Idle;
        assert!(idle_too_long(&rec, 500, 1_500));
        assert!(!idle_too_long(&rec, 500, 1_499));
        assert!(!idle_too_long(&rec, 0, 1_000_000), "0: never");
        rec.state = JobState::Parked;
        assert!(!idle_too_long(&rec, 500, 1_500), "woken: not idle");
        rec.state = JobState::Idle;
        rec.session.as_mut().unwrap().idle_since_ms = None;
        assert!(!idle_too_long(&rec, 500, 1_000_000), "a record from before idle_since_ms");
    }
}
