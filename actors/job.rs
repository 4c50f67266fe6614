//! One job on one node: resolve its code, run it in a warm worker, enforce the timeout, publish its events
//! and write its final record. The actor is the job's home on the node (later issues send it checkpoint
//! and migrate messages).
//!
//! Guarantees: events of a job are published in order (started, then exactly one of completed / failed);
//! the final record is written to the KV bucket before the final event, so whoever sees the event can read
//! the record; a job that raises, hangs or kills its worker fails alone, the node goes on.
use super::pool::WorkerPool;
use crate::bus::Bus;
use crate::wire::{now_ms, Assignment, EventKind, JobEvent, JobFailure, JobState};
use crate::worker::{FromWorker, JobErrorKind, ModuleSpec, ToWorker};
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Sent to the node when the job actor is done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct JobDone {
    pub job_id: String,
}

/// Deployed function modules by (name, revision), shared by a node's jobs.
#[derive(Debug, Default)]
pub struct FunctionCache {
    map: Mutex<HashMap<(String, u64), (ModuleSpec, String)>>,
    capacity: usize,
}

impl FunctionCache {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self { map: Mutex::new(HashMap::new()), capacity: capacity.max(1) })
    }
    fn get(&self, name: &str, rev: u64) -> Option<(ModuleSpec, String)> {
        self.map.lock().ok()?.get(&(name.to_string(), rev)).cloned()
    }
    fn put(&self, name: &str, rev: u64, v: (ModuleSpec, String)) {
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= self.capacity {
                m.clear();
            }
            m.insert((name.to_string(), rev), v);
        }
    }
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Everything a job actor needs from its node.
#[derive(Clone)]
pub struct JobContext {
    pub node_id: String,
    pub bus: Bus,
    pub pool: Arc<WorkerPool>,
    pub functions: Arc<FunctionCache>,
    pub timeout: Duration,
}

pub struct JobActor {
    assignment: Option<Assignment>,
    ctx: JobContext,
    node: Recipient<JobDone>,
}

impl JobActor {
    pub fn new(assignment: Assignment, ctx: JobContext, node: Recipient<JobDone>) -> Self {
        Self { assignment: Some(assignment), ctx, node }
    }
}

impl Actor for JobActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(a) = self.assignment.take() else {
            ctx.stop();
            return;
        };
        let jc = self.ctx.clone();
        let fut = async move { run(a, jc).await };
        ctx.spawn(actix::fut::wrap_future::<_, Self>(fut).map(|job_id, act, ctx| {
            act.node.do_send(JobDone { job_id });
            ctx.stop();
        }));
    }
}

fn failure(kind: &str, message: impl Into<String>, traceback: Option<String>) -> JobFailure {
    JobFailure { kind: kind.into(), message: message.into(), traceback }
}

fn kind_name(k: JobErrorKind) -> &'static str {
    match k {
        JobErrorKind::Syntax => "syntax",
        JobErrorKind::BadEntry => "bad_entry",
        JobErrorKind::BadInput => "bad_input",
        JobErrorKind::Raised => "raised",
        JobErrorKind::BadOutput => "bad_output",
        JobErrorKind::Restore => "restore",
        JobErrorKind::Runtime => "runtime",
    }
}

/// Module name of a source: stable per source text, so a warm worker can keep it.
fn module_for(source: &str, filename: &str) -> ModuleSpec {
    let digest = ring::digest::digest(&ring::digest::SHA256, source.as_bytes());
    let hex: String = digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    ModuleSpec { module_name: format!("mlfn_{hex}"), filename: filename.into(), source: source.into() }
}

async fn resolve(a: &Assignment, jc: &JobContext) -> Result<(ModuleSpec, String), JobFailure> {
    let f = &a.record.function;
    if let Some(src) = &f.source {
        let entry = f.entry.clone().unwrap_or_else(|| "main".into());
        return Ok((module_for(src, "<job>.py"), entry));
    }
    let name = f.name.clone().unwrap_or_default();
    let rev = a.function_revision.unwrap_or(0);
    if let Some(hit) = jc.functions.get(&name, rev) {
        let entry = f.entry.clone().unwrap_or(hit.1.clone());
        return Ok((hit.0, entry));
    }
    match jc.bus.function_at(&name, rev).await {
        Ok(Some(d)) => {
            let spec = module_for(&d.source, &format!("{name}.py"));
            jc.functions.put(&name, rev, (spec.clone(), d.entry.clone()));
            Ok((spec, f.entry.clone().unwrap_or(d.entry)))
        }
        Ok(None) => Err(failure("unknown_function", format!("function {name:?} revision {rev} is not deployed"), None)),
        Err(e) => Err(failure("runtime", format!("cannot fetch function {name:?}: {e}"), None)),
    }
}

/// Run the job to its end; returns the job id.
async fn run(a: Assignment, jc: JobContext) -> String {
    let job_id = a.record.job_id.clone();
    let outcome = execute(&a, &jc).await;
    let mut rec = a.record.clone();
    rec.node = Some(jc.node_id.clone());
    rec.finished_ms = Some(now_ms());
    let kind = match outcome {
        Ok(output) => {
            rec.state = JobState::Completed;
            rec.output = Some(output.clone());
            EventKind::Completed { node: jc.node_id.clone(), output }
        }
        Err(error) => {
            rec.state = JobState::Failed;
            rec.error = Some(error.clone());
            EventKind::Failed { node: Some(jc.node_id.clone()), error }
        }
    };
    if let Err(e) = jc.bus.put_record(&rec).await {
        tracing::warn!(job_id, "cannot write the final record: {e}");
    }
    if let Err(e) = jc.bus.publish_event(&JobEvent::new(&job_id, kind)).await {
        tracing::warn!(job_id, "cannot publish the final event: {e}");
    }
    job_id
}

async fn execute(a: &Assignment, jc: &JobContext) -> Result<serde_json::Value, JobFailure> {
    let job_id = &a.record.job_id;
    let (module, entry) = resolve(a, jc).await?;
    let mut lease =
        jc.pool.acquire().await.map_err(|e| failure("runtime", format!("worker could not start: {e}"), None))?;
    let input_json = serde_json::to_string(&a.record.input).unwrap_or_else(|_| "null".into());
    let run = ToWorker::Run { job_id: job_id.clone(), module, entry, input_json, next_seq: 0 };
    if let Err(e) = lease.worker.send(&run).await {
        let status = lease.worker.wait().await;
        jc.pool.spawn_refill();
        return Err(failure("worker_exited", format!("worker exited before the job started: {e} ({status})"), None));
    }
    let deadline = tokio::time::Instant::now() + jc.timeout;
    loop {
        let msg = match tokio::time::timeout_at(deadline, lease.worker.recv()).await {
            Ok(m) => m,
            Err(_) => {
                lease.worker.kill().await;
                jc.pool.spawn_refill();
                return Err(failure(
                    "timeout",
                    format!(
                        "job timeout: still running after {} ms (node.job_timeout_ms); worker killed",
                        jc.timeout.as_millis()
                    ),
                    None,
                ));
            }
        };
        match msg {
            Some(FromWorker::Started { .. }) => {
                let ev = JobEvent::new(job_id, EventKind::Started { node: jc.node_id.clone() });
                if let Err(e) = jc.bus.publish_event(&ev).await {
                    tracing::warn!(job_id, "cannot publish started: {e}");
                }
            }
            Some(FromWorker::Completed { output_json, .. }) => {
                jc.pool.release(lease);
                return serde_json::from_str(&output_json)
                    .map_err(|e| failure("bad_output", format!("output is not JSON: {e}"), None));
            }
            Some(FromWorker::Failed { error, .. }) => {
                jc.pool.release(lease);
                return Err(failure(kind_name(error.kind), error.message, error.traceback));
            }
            Some(other) => {
                tracing::debug!(job_id, "ignoring worker message {other:?}");
            }
            None => {
                let status = lease.worker.wait().await;
                jc.pool.spawn_refill();
                return Err(failure("worker_exited", format!("worker exited: {status}"), None));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_are_stable_per_source() {
        let a = module_for("def main(x): return x", "f.py");
        let b = module_for("def main(x): return x", "g.py");
        let c = module_for("def main(x): return 1", "f.py");
        assert_eq!(a.module_name, b.module_name);
        assert_ne!(a.module_name, c.module_name);
        assert!(a.module_name.starts_with("mlfn_"));
    }
}
