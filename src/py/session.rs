//! A session's two calls into the worker (`_mlrs.session_reply`, `_mlrs.session_request`), made by the driver
//! loop the node appends to a session's module (`actors/session.rs`): a reply goes to the host, which then
//! checkpoints the session to stop; a request the host sent waits here until the session asks for it by number (or a lower one).
use super::trigger;
use super::Outgoing;
use crate::worker::protocol::FromWorker;
use pyo3::prelude::*;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// The request the host sent: its number and input (JSON).
static REQUEST: Mutex<Option<(u64, String)>> = Mutex::new(None);
static ARRIVED: Condvar = Condvar::new();
/// How long one `session_request` call waits when nothing wakes it (a request, or a checkpoint asked for:
/// [`nudge`]).
const WAIT: Duration = Duration::from_millis(1);

/// Called by the control thread.
pub(super) fn deliver(n: u64, input_json: String) {
    if let Ok(mut r) = REQUEST.lock() {
        *r = Some((n, input_json));
        ARRIVED.notify_all();
    }
}

/// Called by the control thread when a checkpoint is asked for: a session waiting for its request returns to
/// its loop in Python at once, where the checkpoint is taken (instead of at the end of its wait).
pub(super) fn nudge() {
    ARRIVED.notify_all();
}

/// Forget a request no session took (a worker that serves job after job starts the next one clean).
pub(super) fn clear() {
    if let Ok(mut r) = REQUEST.lock() {
        *r = None;
    }
}

/// The request the host sent when it is request `n` or a later one (requests that failed were answered
/// without the session: it goes back to a checkpoint taken while it waited for an earlier number), as its
/// number and input (JSON); else None after a short wait (the caller loops).
#[pyfunction]
pub fn session_request(py: Python<'_>, n: u64) -> Option<(u64, String)> {
    py.detach(|| {
        let Ok(mut r) = REQUEST.lock() else { return None };
        if !matches!(&*r, Some((m, _)) if *m >= n) {
            r = ARRIVED.wait_timeout(r, WAIT).ok()?.0;
        }
        match &*r {
            Some((m, _)) if *m >= n => r.take(),
            _ => None,
        }
    })
}

/// The session answered request `n` (its output as JSON).
#[pyfunction]
pub fn session_reply(n: u64, output_json: String) {
    trigger::send(Outgoing::Msg(FromWorker::SessionReply { n, output_json }));
}
