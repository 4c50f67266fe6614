//! The scenario report's session streams: per stream, the requests the load generator sent and the gateway
//! recorded, the replies seen (each request must get exactly one: none is lost, none duplicated), each reply
//! compared with the same session run in plain CPython, and how often the sessions moved between nodes
//! (between two requests, or in the middle of one). Pure, like the rest of the report.
use crate::stats::percentile;
use crate::table::{
    self,
    Align::{Left, Right},
};
use crate::wire::{EventKind, JobEvent};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// One session of a stream, as the testbed knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionObserved {
    pub stream: String,
    pub workload: String,
    /// Its job id.
    pub session: String,
    /// Its opening was accepted.
    pub opened: bool,
    /// Requests the load generator sent it.
    pub sent: usize,
    /// The requests the gateway recorded, in order of their number: (n, when it was due, wall-clock ms).
    pub requests: Vec<(u64, u64)>,
    /// The replies of the same session in plain CPython: the opening's, then one per recorded request in
    /// order; or why there are none.
    pub expected: Result<Vec<Value>, String>,
}

impl Default for SessionObserved {
    fn default() -> Self {
        Self {
            stream: String::new(),
            workload: String::new(),
            session: String::new(),
            opened: false,
            sent: 0,
            requests: Vec::new(),
            expected: Err("not run in plain CPython".into()),
        }
    }
}

/// How many replies to list when they differ from plain CPython's.
const SHOW_DIFFERENT: usize = 5;

/// One stream's row of the report.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StreamRow {
    pub stream: String,
    pub workload: String,
    pub sessions: usize,
    pub opened: usize,
    /// Requests sent (openings not included).
    pub sent: usize,
    /// Of those, recorded by the gateway.
    pub recorded: usize,
    /// Recorded requests answered by a reply.
    pub replied: usize,
    /// Recorded requests and openings without a reply.
    pub lost: usize,
    /// Requests (or openings) with more than one reply.
    pub duplicated: usize,
    /// Replies with an error.
    pub errors: usize,
    /// Replies (openings included) compared with plain CPython's, and of those the ones that differ.
    pub checked: usize,
    pub wrong: usize,
    /// Replies that could not be compared, and why (the first reason).
    pub unchecked: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unchecked_why: Option<String>,
    /// The first replies that differ: `session n: mesh ... != CPython ...`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub different: Vec<String>,
    /// A request run on another node than the request before it (the session moved while idle).
    pub moved_between: usize,
    /// A request that went on on another node than it started on (evacuated or recovered mid-request).
    pub moved_during: usize,
    /// Reply time minus the time the request was due, over the stream's replies.
    pub reply_ms_p50: Option<f64>,
    pub reply_ms_max: Option<f64>,
}

impl StreamRow {
    pub fn ok(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.wrong == 0 && self.unchecked == 0
    }
}

/// Equal JSON, numbers within a few units in the last place: a float the mesh replies crosses more than one
/// JSON parser (the worker's, the node's, the reader's), and serde_json's parser may round its last bit
/// differently from CPython's.
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-12 * x.abs().max(1.0),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// One reply as seen: when, and its output (null when absent: a class's opening) or its error.
struct Seen<'a> {
    at: u64,
    output: Option<&'a Value>,
    error: Option<String>,
}

/// Count every stream, in the order its sessions come in `sessions`.
pub fn analyze(sessions: &[SessionObserved], events: &[(u64, JobEvent)]) -> Vec<StreamRow> {
    let mut by_session: HashMap<&str, Vec<&(u64, JobEvent)>> = HashMap::new();
    for e in events {
        by_session.entry(e.1.job_id.as_str()).or_default().push(e);
    }
    let mut rows: Vec<StreamRow> = Vec::new();
    let mut reply_ms: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for s in sessions {
        let i = match rows.iter().position(|r| r.stream == s.stream) {
            Some(i) => i,
            None => {
                rows.push(StreamRow { stream: s.stream.clone(), workload: s.workload.clone(), ..Default::default() });
                rows.len() - 1
            }
        };
        let row = &mut rows[i];
        row.sessions += 1;
        row.opened += usize::from(s.opened);
        row.sent += s.sent;
        row.recorded += s.requests.len();
        let evs = by_session.get(s.session.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        // Replies by request number; moves from the nodes the session started on.
        let mut replies: BTreeMap<u64, Vec<Seen>> = BTreeMap::new();
        let (mut last_node, mut replied_since): (Option<&str>, bool) = (None, false);
        for (at, e) in evs {
            match &e.kind {
                EventKind::Reply { reply, .. } => {
                    replies.entry(reply.n).or_default().push(Seen {
                        at: *at,
                        output: reply.output.as_ref(),
                        error: reply.error.as_ref().map(|f| format!("{}: {}", f.kind, f.message)),
                    });
                    replied_since = true;
                }
                EventKind::Started { node, .. } => {
                    if last_node.is_some_and(|l| l != node) {
                        if replied_since {
                            row.moved_between += 1;
                        } else {
                            row.moved_during += 1;
                        }
                    }
                    (last_node, replied_since) = (Some(node.as_str()), false);
                }
                _ => {}
            }
        }
        row.duplicated += replies.values().filter(|v| v.len() > 1).count();
        // The opening (request 0) and the recorded requests.
        let wanted = s.opened.then_some((0, 0)).into_iter().chain(s.requests.iter().copied());
        for (k, (n, due)) in wanted.enumerate() {
            let Some(seen) = replies.get(&n).and_then(|v| v.first()) else {
                row.lost += 1;
                continue;
            };
            if n > 0 {
                row.replied += 1;
                reply_ms.entry(s.stream.clone()).or_default().push(seen.at.saturating_sub(due) as f64);
            }
            row.errors += usize::from(seen.error.is_some());
            let want = match &s.expected {
                Ok(v) => v.get(k),
                Err(why) => {
                    row.unchecked += 1;
                    row.unchecked_why.get_or_insert_with(|| format!("{}: {why}", s.session));
                    continue;
                }
            };
            let Some(want) = want else {
                row.unchecked += 1;
                row.unchecked_why.get_or_insert_with(|| format!("{}: no plain-CPython reply for {n}", s.session));
                continue;
            };
            row.checked += 1;
            let got = seen.output.unwrap_or(&Value::Null);
            if seen.error.is_some() || !same_json(got, want) {
                row.wrong += 1;
                if row.different.len() < SHOW_DIFFERENT {
                    let mesh = match &seen.error {
                        Some(e) => format!("error {e}"),
                        None => got.to_string(),
                    };
                    row.different.push(format!("{} {n}: mesh {mesh} != CPython {want}", s.session));
                }
            }
        }
    }
    for row in &mut rows {
        let ms = reply_ms.get(&row.stream).map(Vec::as_slice).unwrap_or(&[]);
        row.reply_ms_p50 = percentile(ms, 0.5);
        row.reply_ms_max = percentile(ms, 1.0);
    }
    rows
}

/// The session streams' sentence for the summary's first paragraph.
pub fn sentence(rows: &[StreamRow]) -> String {
    let sum = |f: fn(&StreamRow) -> usize| rows.iter().map(f).sum::<usize>();
    format!(
        "Sessions: {} of {} opened, {} requests sent, {} recorded, {} replied, **{} lost**, **{} duplicated**; {} \
         of {} replies checked against plain CPython differ{}.\n\n",
        sum(|r| r.opened),
        sum(|r| r.sessions),
        sum(|r| r.sent),
        sum(|r| r.recorded),
        sum(|r| r.replied),
        sum(|r| r.lost),
        sum(|r| r.duplicated),
        sum(|r| r.wrong),
        sum(|r| r.checked),
        match sum(|r| r.unchecked) {
            0 => String::new(),
            n => format!(", **{n} not checked**"),
        }
    )
}

fn ms(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.0}")).unwrap_or_else(|| "—".into())
}

/// The streams' table, and the replies that differ or were not checked.
pub fn render(rows: &[StreamRow]) -> String {
    let mut s = "## Session streams\n\nRequests are the ones sent after each opening; lost and duplicated count \
                 the openings too. Moved: a request run on another node than the one before it (between), or \
                 one that went on on another node than it started on (during). Reply ms: from the time the \
                 request was due to its reply.\n\n"
        .to_string();
    let head = [
        ("stream", Left),
        ("workload", Left),
        ("sessions", Right),
        ("sent", Right),
        ("recorded", Right),
        ("replied", Right),
        ("lost", Right),
        ("duplicated", Right),
        ("errors", Right),
        ("checked", Right),
        ("differ", Right),
        ("moved between", Right),
        ("moved during", Right),
        ("reply ms p50", Right),
        ("reply ms max", Right),
    ];
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.stream.clone(),
                r.workload.clone(),
                format!("{}/{}", r.opened, r.sessions),
                r.sent.to_string(),
                r.recorded.to_string(),
                r.replied.to_string(),
                r.lost.to_string(),
                r.duplicated.to_string(),
                r.errors.to_string(),
                r.checked.to_string(),
                if r.wrong == 0 { "0".into() } else { format!("**{}**", r.wrong) },
                r.moved_between.to_string(),
                r.moved_during.to_string(),
                ms(r.reply_ms_p50),
                ms(r.reply_ms_max),
            ]
        })
        .collect();
    s.push_str(&table::markdown(&head, &body));
    for r in rows {
        for d in &r.different {
            s.push_str(&format!("\n- differs: {d}"));
        }
        if let Some(why) = &r.unchecked_why {
            s.push_str(&format!("\n- {} replies of {} not checked: {why}", r.unchecked, r.stream));
        }
    }
    if rows.iter().any(|r| !r.different.is_empty() || r.unchecked_why.is_some()) {
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{JobFailure, SessionReply};
    use serde_json::json;

    fn ev(job: &str, kind: EventKind) -> JobEvent {
        JobEvent { job_id: job.into(), ts_ms: 0, kind }
    }
    fn started(node: &str) -> EventKind {
        EventKind::Started { node: node.into(), resumed_from: None }
    }
    fn reply(n: u64, output: Value) -> EventKind {
        // A null output is absent from the event, as a class's opening reply is.
        let output = Some(output).filter(|o| !o.is_null());
        EventKind::Reply { node: "x".into(), reply: SessionReply { n, output, error: None } }
    }

    #[test]
    fn replies_are_counted_per_request_and_compared_with_plain_cpython() {
        // Session a: opening and requests 1, 2 answered, on n1, then n2 (between), 2 moved mid-request (during).
        // Session b: request 1 answered twice and wrong, request 2 never answered, request 3 an error.
        let events = vec![
            (100, ev("a", started("n1"))),
            (110, ev("a", reply(0, json!(null)))),
            (1000, ev("a", started("n2"))),
            (1050, ev("a", reply(1, json!({"x": 0.1 + 0.2})))),
            (2000, ev("a", started("n2"))),
            (2010, ev("a", started("n3"))),
            (2100, ev("a", reply(2, json!(2)))),
            (100, ev("b", started("n1"))),
            (120, ev("b", reply(0, json!(null)))),
            (1500, ev("b", started("n1"))),
            (1600, ev("b", reply(1, json!(9)))),
            (1601, ev("b", reply(1, json!(9)))),
            (
                3000,
                ev(
                    "b",
                    EventKind::Reply {
                        node: "n1".into(),
                        reply: SessionReply {
                            n: 3,
                            output: None,
                            error: Some(JobFailure { kind: "raised".into(), message: "boom".into(), traceback: None }),
                        },
                    },
                ),
            ),
        ];
        let a = SessionObserved {
            stream: "cam".into(),
            workload: "face".into(),
            session: "a".into(),
            opened: true,
            sent: 3,
            requests: vec![(1, 950), (2, 1950)],
            expected: Ok(vec![json!(null), json!({"x": 0.3}), json!(2)]),
        };
        let b = SessionObserved {
            session: "b".into(),
            requests: vec![(1, 1500), (2, 2500), (3, 2900)],
            expected: Ok(vec![json!(null), json!(1), json!(2), json!(3)]),
            ..a.clone()
        };
        let c = SessionObserved {
            stream: "taxi".into(),
            workload: "ride".into(),
            session: "c".into(),
            expected: Err("plain CPython failed".into()),
            requests: vec![],
            opened: false,
            sent: 0,
        };
        let rows = analyze(&[a, b, c], &events);
        assert_eq!(rows.len(), 2);
        let r = &rows[0];
        assert_eq!((r.sessions, r.opened, r.sent, r.recorded, r.replied), (2, 2, 6, 5, 4));
        assert_eq!((r.lost, r.duplicated, r.errors, r.checked, r.wrong, r.unchecked), (1, 1, 1, 6, 2, 0));
        assert_eq!((r.moved_between, r.moved_during), (1, 1));
        assert_eq!((r.reply_ms_p50, r.reply_ms_max), (Some(100.0), Some(150.0)));
        assert_eq!(r.different, ["b 1: mesh 9 != CPython 1", "b 3: mesh error raised: boom != CPython 3"]);
        assert!(!r.ok());
        // A stream whose session was never opened: nothing to lose; nothing compared either.
        let t = &rows[1];
        assert_eq!((t.sessions, t.opened, t.lost, t.checked, t.unchecked), (1, 0, 0, 0, 0));
        let md = render(&rows);
        assert!(md.contains("| cam ") && md.contains("**2**") && md.contains("differs: b 1: mesh 9"), "{md}");
        let line = sentence(&rows);
        assert!(line.contains("**1 lost**") && line.contains("**1 duplicated**"), "{line}");
    }

    #[test]
    fn a_reference_that_failed_leaves_the_replies_unchecked() {
        let events = vec![(1, ev("s", started("n1"))), (2, ev("s", reply(0, json!(1))))];
        let s = SessionObserved {
            stream: "st".into(),
            session: "s".into(),
            opened: true,
            expected: Err("no local.py".into()),
            ..Default::default()
        };
        let rows = analyze(&[s], &events);
        assert_eq!((rows[0].checked, rows[0].unchecked, rows[0].lost), (0, 1, 0));
        assert_eq!(rows[0].unchecked_why.as_deref(), Some("s: no local.py"));
        assert!(!rows[0].ok());
        assert!(sentence(&rows).contains("**1 not checked**"));
    }

    #[test]
    fn json_is_the_same_to_the_last_bits_of_a_float() {
        assert!(same_json(&json!({"a": [0.30000000000000004, "x"]}), &json!({"a": [0.3, "x"]})));
        assert!(!same_json(&json!({"a": [0.3001, "x"]}), &json!({"a": [0.3, "x"]})));
        assert!(!same_json(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!same_json(&json!([1, 2]), &json!([1])));
        assert!(same_json(&json!(u64::MAX), &json!(u64::MAX)));
    }
}
