//! Stateful sessions on the job machinery: a session is a job whose module gets a small driver loop appended
//! ([`wrap`]); the loop calls the user's function once with the opening input (a generator function, or a
//! class with a `handle(request)` method), then answers requests one at a time. After each answer the node
//! checkpoints the job where it waits for the next request and its record becomes `idle`: it holds no worker.
//! A request recorded by the gateway wakes it ([`wake`]: `idle` to `parked`), and placement places it like any
//! parked job, so slicing, evacuation and recovery after a crash are the jobs' own.
//!
//! Guarantees: requests are numbered by the gateway (a KV create per number, so two gateways cannot give one
//! number twice) and handled in that order, each once: the record's `session.next` names the request the
//! session takes next and moves on only with the checkpoint taken after its answer, in one compare-and-set,
//! before the `reply` event is published.
use crate::bus::{Bus, BusError, BusErrorKind};
use crate::wire::{JobRecord, JobState};

/// The entry the node calls in a session's module.
pub const ENTRY: &str = "__ml_session__";

/// The `parked` reason of a session woken by a request.
pub const WOKEN: &str = "request";

/// The driver loop appended to a session's module; `{entry}` is the user's function. It runs in the job's own
/// module (its frames are checkpointed like the user's), and waits for a request in a loop of short calls
/// into the worker, so that a checkpoint finds it at a line of Python within a millisecond.
const DRIVER: &str = r#"

# --- appended by microlambda: the session's driver loop (docs/PROTOCOL.md, "Sessions") ---
import _mlrs as __ml_rs
import json as __ml_json
import types as __ml_types


def __ml_session__(opening):
    s = {entry}(opening)
    if isinstance(s, __ml_types.GeneratorType):
        gen = True
    elif callable(getattr(s, "handle", None)):
        gen = False
    else:
        raise TypeError(
            "a session's function must be a generator function or a class with a handle(request) method; "
            f"{entry}() returned {type(s).__name__}"
        )
    n = 0
    try:
        reply = s.send(None) if gen else None
        while True:
            __ml_rs.session_reply(n, __ml_json.dumps(reply, allow_nan=False))
            n += 1
            got = __ml_rs.session_request(n)
            while got is None:
                got = __ml_rs.session_request(n)
            n, request = got
            if not request:  # a close (by the client, or idle too long): a class's close() says what it returns
                if gen:
                    s.close()
                    return None
                close = getattr(s, "close", None)
                return close() if callable(close) else None
            request = __ml_json.loads(request)
            reply = s.send(request) if gen else s.handle(request)
    except StopIteration as e:
        return e.value
"#;

/// A session's module source: the job's source with the driver loop calling `entry` (the user's lines keep
/// their numbers).
pub fn driver_source(source: &str, entry: &str) -> String {
    format!("{source}{}", DRIVER.replace("{entry}", entry))
}

/// Wake an idle session whose next request is recorded: its record goes from `idle` to `parked` (reason
/// `request`). Returns the record and revision to queue, or None when there is nothing to do (not idle, or no
/// request waiting). Whoever records a request or makes a session idle calls this afterwards, so a request
/// recorded while its session was going idle is never left waiting: one of the two sees the other.
pub async fn wake(bus: &Bus, session: &str) -> Result<Option<(JobRecord, u64)>, BusError> {
    wake_from(bus, session, None).await
}

/// [`wake`], first from a record the caller read (with its revision) before it recorded request `n` (so the
/// requests up to `n` are there).
pub async fn wake_from(
    bus: &Bus,
    session: &str,
    mut read: Option<(JobRecord, u64, u64)>,
) -> Result<Option<(JobRecord, u64)>, BusError> {
    loop {
        // A record read before the request was recorded is used only when it says idle: the write then
        // checks that it still does; any other state is read again (the session may have gone idle since).
        let (mut rec, rev, recorded) = match read.take().filter(|(r, ..)| r.state == JobState::Idle) {
            Some(r) => r,
            None => match bus.record(session).await? {
                Some((rec, rev)) => (rec, rev, 0),
                None => return Ok(None),
            },
        };
        let Some(next) = rec.session.as_ref().map(|s| s.next) else { return Ok(None) };
        if rec.state != JobState::Idle {
            return Ok(None);
        }
        if next > recorded && bus.session_request_input(session, next).await?.is_none() {
            return Ok(None);
        }
        rec.state = JobState::Parked;
        rec.parked = Some(WOKEN.into());
        rec.epoch += 1;
        match bus.update_record(&rec, rev).await {
            Ok(rev) => return Ok(Some((rec, rev))),
            // Someone else changed it (the other side woke it): look again.
            Err(e) if e.kind == BusErrorKind::WrongRevision => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_driver_calls_the_entry_and_keeps_the_users_lines() {
        let source = "def f(x):\n    yield x\n";
        let w = driver_source(source, "f");
        assert!(w.starts_with(source));
        assert!(w.contains("s = f(opening)"));
        assert!(w.contains(&format!("def {ENTRY}(opening)")));
    }
}
