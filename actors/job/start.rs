//! How a job comes to run here: take ownership as handed over (an assignment, or an adopt request answered once
//! the checkpoint verifies), fetch and verify the checkpoint to resume from, and resolve the function's code.
use super::phase::{failure, FailureKind};
use super::{CachedFunction, JobContext, JobEnd, JobStart};
use crate::wire::{AssignReply, CheckpointRef, JobFailure, JobRecord, JobState};
use crate::worker::ModuleSpec;
use std::time::Duration;
use tokio::time::Instant;

/// How often a checkpoint is fetched before the job gives up on it, and the first pause between fetches (it
/// doubles: 100 ms to 1.6 s, about 3 s in all, long enough for a JetStream leader change).
const FETCH_TRIES: u32 = 5;
const FETCH_FIRST_PAUSE_MS: u64 = 100;

/// Module name of a source: stable per source text, so a warm worker can keep it and a checkpoint taken on
/// one node restores on another.
pub(super) fn module_for(source: &str, filename: &str) -> ModuleSpec {
    let hex = crate::wire::source_sha256(source);
    ModuleSpec { module_name: format!("mlfn_{}", &hex[..16]), filename: filename.into(), source: source.into() }
}

/// The module and entry to run: the function's, or for a session its module with the driver loop appended
/// ([`crate::actors::session`]).
pub(super) async fn resolve(rec: &JobRecord, jc: &JobContext) -> Result<(ModuleSpec, String), JobFailure> {
    let (spec, entry) = resolve_function(rec, jc).await?;
    if rec.session.is_none() {
        return Ok((spec, entry));
    }
    let source = crate::actors::session::driver_source(&spec.source, &entry);
    Ok((module_for(&source, &spec.filename), crate::actors::session::ENTRY.into()))
}

async fn resolve_function(rec: &JobRecord, jc: &JobContext) -> Result<(ModuleSpec, String), JobFailure> {
    let f = &rec.function;
    let entry = || f.entry.clone().unwrap_or_else(|| "main".into());
    if let Some(src) = &f.source {
        return Ok((module_for(src, "<job>.py"), entry()));
    }
    if let Some(sha256) = &f.source_sha256 {
        return Ok((stored_source(sha256, jc).await?, entry()));
    }
    let name = f.name.clone().unwrap_or_default();
    let rev = rec.function_revision.unwrap_or(0);
    // Cached per tenant and name: two tenants' functions of one name are two functions.
    let cache_key = format!("{}/{name}", rec.tenant);
    if let Some(hit) = jc.functions.get(&cache_key, rev) {
        return Ok((hit.spec, f.entry.clone().unwrap_or(hit.entry)));
    }
    match jc.bus.function_at(&rec.tenant, &name, rev).await {
        Ok(Some(d)) => {
            let spec = module_for(&d.source, &format!("{name}.py"));
            jc.functions.put(
                &cache_key,
                rev,
                CachedFunction { spec: spec.clone(), entry: d.entry.clone(), written_s: 0 },
            );
            Ok((spec, f.entry.clone().unwrap_or(d.entry)))
        }
        Ok(None) => Err(failure(
            FailureKind::UnknownFunction,
            format!("function {name:?} revision {rev} is not deployed"),
            None,
        )),
        Err(e) => Err(failure(FailureKind::Runtime, format!("cannot fetch function {name:?}: {e}"), None)),
    }
}

/// The module of an inline source the record names by its digest: from the node's cache, else from the store
/// of sources. A source last written half its time to live ago is written again, so that a job still running
/// keeps its source stored.
async fn stored_source(sha256: &str, jc: &JobContext) -> Result<ModuleSpec, JobFailure> {
    let key = format!("sha256/{sha256}");
    let mut got = match jc.functions.get(&key, 0) {
        Some(hit) => hit,
        None => match jc.bus.source(sha256).await {
            Ok(Some((text, written_s))) => {
                CachedFunction { spec: module_for(&text, "<job>.py"), entry: String::new(), written_s }
            }
            Ok(None) => {
                return Err(failure(
                    FailureKind::UnknownFunction,
                    format!(
                        "the job's source (sha256 {sha256}) is no longer stored: a source is kept {} h after its \
                         last use",
                        crate::bus::SOURCE_TTL.as_secs() / 3600
                    ),
                    None,
                ))
            }
            Err(e) => return Err(failure(FailureKind::Runtime, format!("cannot fetch the job's source: {e}"), None)),
        },
    };
    let now_s = crate::wire::now_ms() / 1000;
    if now_s.saturating_sub(got.written_s) >= crate::bus::SOURCE_TTL.as_secs() / 2 {
        match jc.bus.put_source(sha256, &got.spec.source).await {
            Ok(()) => got.written_s = now_s,
            Err(e) => tracing::warn!("cannot renew the stored source {sha256}: {e}"),
        }
    }
    let spec = got.spec.clone();
    jc.functions.put(&key, 0, got);
    Ok(spec)
}

pub(super) struct Established {
    pub rec: JobRecord,
    pub rev: u64,
    /// The checkpoint to restore and its bytes (verified); none: a fresh start.
    pub resume: Option<(CheckpointRef, Vec<u8>)>,
}

/// Take ownership as handed over, and get the checkpoint to resume from.
pub(super) async fn establish(start: JobStart, jc: &JobContext) -> Result<Established, JobEnd> {
    match start {
        JobStart::Assigned(a) => {
            let a = *a;
            let rec = a.record;
            let resume = match rec.checkpoint.clone() {
                None => None,
                Some(c) => match fetch_verified(jc, &rec.job_id, &c).await {
                    Ok(bytes) => Some((c, bytes)),
                    Err(e) => {
                        // Without its checkpoint the job can only start over, which is still exact.
                        tracing::error!(job_id = %rec.job_id, "checkpoint {} unusable ({e}): starting over", c.seq);
                        None
                    }
                },
            };
            Ok(Established { rec, rev: a.revision, resume })
        }
        JobStart::Adopted { adopt, request } => {
            let bus = &jc.bus;
            let t0 = Instant::now();
            let refuse = |why: String| {
                let (bus, request) = (bus.clone(), request.clone());
                async move {
                    let _ = bus.reply(&request, &AssignReply { accepted: false, reason: Some(why) }).await;
                }
            };
            // The checkpoint must verify (signature, job, sequence) before anything else happens.
            let resume = match &adopt.checkpoint {
                None => None,
                Some(c) if adopt.inline.is_empty() => match fetch_verified(jc, &adopt.job_id, c).await {
                    Ok(b) => Some((c.clone(), b)),
                    Err(e) => {
                        refuse(format!("checkpoint not available: {e}")).await;
                        return Err(JobEnd::NotTaken);
                    }
                },
                Some(c) => match verify(jc, &adopt.job_id, c, &adopt.inline) {
                    Ok(()) => Some((c.clone(), adopt.inline.clone())),
                    Err(e) => {
                        refuse(e).await;
                        return Err(JobEnd::NotTaken);
                    }
                },
            };
            let _ = bus.reply(&request, &AssignReply { accepted: true, reason: None }).await;
            tracing::debug!(job_id = %adopt.job_id, replied_us = t0.elapsed().as_micros() as u64, "adopt: verified");
            // The record says whether the job really is ours now.
            match bus.record(&adopt.job_id).await {
                Ok(Some((rec, rev)))
                    if rev == adopt.revision
                        && rec.state == JobState::Moving
                        && rec.node.as_deref() == Some(jc.node_id.as_str()) =>
                {
                    tracing::debug!(job_id = %adopt.job_id, read_us = t0.elapsed().as_micros() as u64, "adopt: record read");
                    Ok(Established { rec, rev, resume })
                }
                Ok(other) => {
                    tracing::warn!(job_id = %adopt.job_id, "adopted job is not ours per its record ({:?})",
                        other.map(|(r, rev)| (r.state, r.node, rev)));
                    Err(JobEnd::NotTaken)
                }
                Err(e) => {
                    tracing::warn!(job_id = %adopt.job_id, "cannot read the adopted job's record: {e}");
                    Err(JobEnd::NotTaken)
                }
            }
        }
    }
}

fn verify(jc: &JobContext, job_id: &str, c: &CheckpointRef, bytes: &[u8]) -> Result<(), String> {
    let body = jc.envelope.open(bytes).map_err(|e| format!("checkpoint refused: {e}"))?;
    if body.job_id != job_id || body.seq != c.seq {
        return Err(format!("checkpoint refused: it is {} #{}, expected {job_id} #{}", body.job_id, body.seq, c.seq));
    }
    Ok(())
}

async fn fetch_verified(jc: &JobContext, job_id: &str, c: &CheckpointRef) -> Result<Vec<u8>, String> {
    let mut last = String::new();
    for attempt in 0..FETCH_TRIES {
        match jc.bus.fetch_checkpoint(&c.store).await {
            Ok(bytes) => {
                verify(jc, job_id, c, &bytes)?;
                return Ok(bytes);
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(FETCH_FIRST_PAUSE_MS << attempt)).await;
    }
    Err(last)
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
