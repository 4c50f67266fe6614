//! Module zygotes, end to end on a real node (`node.module_zygotes`, actors/pool.rs): a session's requests,
//! once the node has seen a restore of its module, are restored in children of a zygote that has executed the
//! module, forked ahead of the request, and answer exactly as an uninterrupted run (globals the job changed, a
//! top level's random token, an RNG the top level seeded: from the checkpoint, never from the zygote's run); a
//! module whose top level raises, hangs, exits or leaves a thread or an open file there gets no zygote and is
//! restored the ordinary way; two modules never share one, and a job sees no other job's module.
//!
//! Observables: `LOADED_IN`, a static name (rebuilt by the module's top level, not saved), is the pid of the
//! process the top level ran in: the worker's own on the ordinary path, its parent (the module zygote) here;
//! the node's load report counts module zygotes, their restores and their failures.
mod common;

use common::{events_until_final, next_reply, open, report_where, request, submit, Mesh};
use microlambda::bus::Bus;
use microlambda::wire::EventKind;
use serde_json::{json, Value};
use std::time::Duration;

const FAST: &[(&str, &str)] = &[
    ("PLACEMENT__COOLDOWN_MS", "300"),
    ("PLACEMENT__ORPHAN_GRACE_MS", "1500"),
    ("NODE__MODULE_ZYGOTES", "2"),
    ("NODE__MODULE_ZYGOTE_START_MS", "4000"),
    // These tests learn a module from its first restore: a start does not start its zygote (see
    // `a_slow_top_level_warms_its_module_on_every_node_before_the_jobs_first_restore`).
    ("NODE__MODULE_ZYGOTE_MIN_LOAD_MS", "600000"),
];

/// A session whose top level is slow, draws a random token, seeds the RNG and marks the process it ran in.
/// `TOPLEVEL_EXTRA` is replaced per test (a top level that cannot stay in a zygote, or a second module).
const SESSION: &str = r#"
import linecache, os, random, sys, time, uuid

TOKEN = uuid.uuid4().hex
random.seed(7)
LOADED_IN = os.getpid()
__microlambda_static__ = ("LOADED_IN",)
COUNT = 0
time.sleep(0.3)


def in_zygote():
    # A module zygote's parent is the node; a worker's is a zygote.
    with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
        return f.read().split(b"\0")[1:2] == [b"node"]


TOPLEVEL_EXTRA


def age_ms():
    with open("/proc/self/stat") as f:
        start = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        up = float(f.read().split()[0])
    return (up - start / os.sysconf("SC_CLK_TCK")) * 1000


def sess(x):
    global COUNT
    x = yield {"token": TOKEN}
    while True:
        COUNT += 1
        here = LOADED_IN == os.getpid()
        x = yield {"token": TOKEN, "count": COUNT, "draw": random.random(), "x": x, "here": here,
                   "zygote": None if here else LOADED_IN, "parent": os.getppid(), "age_ms": age_ms(),
                   "modules": sorted(m for m in sys.modules if m.startswith("mlfn_")),
                   "warm_trace": "__microlambda_warm__" in sys.modules or "<microlambda warm-up>" in linecache.cache}
"#;

fn source(extra: &str) -> String {
    SESSION.replace("TOPLEVEL_EXTRA", extra)
}

/// What `random.random()` gives after `random.seed(7)`, in plain CPython.
fn seeded_draws(n: usize) -> Vec<f64> {
    let out = std::process::Command::new(common::python())
        .args([
            "-c",
            &format!("import random, json; random.seed(7); print(json.dumps([random.random() for _ in range({n})]))"),
        ])
        .output()
        .expect("python");
    serde_json::from_slice(&out.stdout).expect("draws")
}

async fn ask(bus: &Bus, events: &mut microlambda::bus::Subscriber, id: &str, n: u64) -> Value {
    let r = request(bus, id, json!(n)).await;
    assert_eq!(r["n"], n, "{r}");
    let reply = next_reply(events, n).await;
    assert!(reply.error.is_none(), "{reply:?}");
    reply.output.expect("an output")
}

#[tokio::test]
async fn a_sessions_requests_restore_from_a_zygote_that_ran_its_module_and_answer_exactly() {
    let mesh = Mesh::start_env(&[("n1", 0.1)], &["--slots=2"], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let src = source("");
    let draws = seeded_draws(8);
    let (mut events, opening) = open(&bus, "mz-1", &src, "sess", Value::Null).await;
    let token = opening["token"].as_str().expect("a token").to_string();
    // The first request restores the ordinary way (its top level runs in the worker), and teaches the node
    // the module.
    let first = ask(&bus, &mut events, "mz-1", 1).await;
    assert_eq!(first["here"], true, "{first}");
    report_where(&bus, Duration::from_secs(30), |r| r["module_zygotes"] == 1).await;
    let mut zygote = None;
    for k in 2..=6u64 {
        // Time for the child forked ahead after the last request to be there, as between real requests.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let r = ask(&bus, &mut events, "mz-1", k).await;
        assert_eq!(r["here"], false, "request {k} ran the module's top level again: {r}");
        assert_eq!(r["zygote"], r["parent"], "the top level ran in the worker's parent: {r}");
        zygote.get_or_insert(r["zygote"].clone());
        assert_eq!(Some(&r["zygote"]), zygote.as_ref(), "one module zygote: {r}");
        assert!(r["age_ms"].as_f64().unwrap() > 150.0, "request {k}'s worker was not forked ahead: {r}");
        assert_eq!(r["count"], k, "{r}");
        assert_eq!(r["draw"].as_f64().unwrap(), draws[k as usize - 1], "{r}");
        // The child restored a checkpoint of a trivial run of its own before it was ready (its warm-up): none of
        // it is left, and the module it serves is still the one preloaded (its RNG as its top level left it).
        assert_eq!(r["warm_trace"], false, "{r}");
    }
    let report = report_where(&bus, Duration::from_secs(5), |r| r["module_zygote_restores"].as_u64() >= Some(5)).await;
    assert_eq!(report["module_zygotes"], 1, "{report}");
    assert_eq!(report["module_zygote_failures"], 0, "{report}");
    // Exactly an uninterrupted run: the token of the opening (the zygote drew its own), the count the job
    // kept, the numbers of the RNG its top level seeded.
    let all = ask(&bus, &mut events, "mz-1", 7).await;
    assert_eq!(all["token"], token.as_str(), "{all}");
    assert_eq!(all["count"], 7, "{all}");
    assert_eq!(all["draw"].as_f64().unwrap(), draws[6], "{all}");
    assert_eq!(first["token"], token.as_str());
    assert_eq!(first["draw"].as_f64().unwrap(), draws[0]);

    // A second session of the same module: its opening is a start, which runs the top level afresh (its own
    // token); its first request restores from the zygote, yet with its own token and the RNG as its top level
    // left it (saved in its checkpoint: the zygote's child was reseeded at the fork).
    let (mut events2, opening2) = open(&bus, "mz-2", &src, "sess", Value::Null).await;
    let token2 = opening2["token"].as_str().unwrap().to_string();
    assert_ne!(token2, token, "a start does not fork from the module zygote");
    let r = ask(&bus, &mut events2, "mz-2", 1).await;
    assert_eq!(r["here"], false, "{r}");
    assert_eq!(r["token"], token2.as_str(), "{r}");
    assert_eq!(r["count"], 1, "{r}");
    assert_eq!(r["draw"].as_f64().unwrap(), draws[0], "{r}");
}

#[tokio::test]
async fn a_module_whose_top_level_cannot_stay_in_a_zygote_is_restored_the_ordinary_way() {
    let mesh = Mesh::start_env(&[("n1", 0.1)], &["--slots=2"], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let draws = seeded_draws(3);
    // Each misbehaves only in a zygote, so that the ordinary path works (and is checked exact).
    let cases = [
        ("raises", "if in_zygote():\n    raise RuntimeError('not here')"),
        ("thread", "import threading\nif in_zygote():\n    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()"),
        ("file", "if in_zygote():\n    KEPT = open('/dev/null')\n    __microlambda_static__ = ('LOADED_IN', 'KEPT')"),
        ("exits", "if in_zygote():\n    os._exit(3)"),
        ("hangs", "if in_zygote():\n    time.sleep(3600)"),
    ];
    for (i, (what, extra)) in cases.iter().enumerate() {
        let id = format!("bad-{what}");
        let (mut events, opening) = open(&bus, &id, &source(extra), "sess", Value::Null).await;
        let first = ask(&bus, &mut events, &id, 1).await;
        // The zygote for this module was tried and refused.
        let failures = i as u64 + 1;
        let report =
            report_where(&bus, Duration::from_secs(30), |r| r["module_zygote_failures"].as_u64() == Some(failures))
                .await;
        assert_eq!(report["module_zygotes"], 0, "{what}: {report}");
        let rest = [ask(&bus, &mut events, &id, 2).await, ask(&bus, &mut events, &id, 3).await];
        for (k, r) in std::iter::once(&first).chain(&rest).enumerate() {
            assert_eq!(r["here"], true, "{what}: request {} did not run its own top level: {r}", k + 1);
            assert_eq!(r["token"], opening["token"], "{what}: {r}");
            assert_eq!(r["count"], k + 1, "{what}: {r}");
            assert_eq!(r["draw"].as_f64().unwrap(), draws[k], "{what}: {r}");
        }
    }
}

#[tokio::test]
async fn two_modules_never_share_a_zygote_and_a_job_sees_no_other_jobs_module() {
    let mesh = Mesh::start_env(&[("n1", 0.1)], &["--slots=2"], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let (a, b) = (source("WHICH = 'a'"), source("WHICH = 'b'"));
    let (mut ea, _) = open(&bus, "iso-a", &a, "sess", Value::Null).await;
    let (mut eb, _) = open(&bus, "iso-b", &b, "sess", Value::Null).await;
    ask(&bus, &mut ea, "iso-a", 1).await;
    report_where(&bus, Duration::from_secs(30), |r| r["module_zygotes"] == 1).await;
    ask(&bus, &mut eb, "iso-b", 1).await;
    report_where(&bus, Duration::from_secs(30), |r| r["module_zygotes"] == 2).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let ra = ask(&bus, &mut ea, "iso-a", 2).await;
    let rb = ask(&bus, &mut eb, "iso-b", 2).await;
    for r in [&ra, &rb] {
        assert_eq!(r["here"], false, "{r}");
        assert_eq!(r["modules"].as_array().map(Vec::len), Some(1), "a job sees another job's module: {r}");
    }
    assert_ne!(ra["zygote"], rb["zygote"], "two modules, one zygote: {ra} {rb}");
    assert_ne!(ra["modules"], rb["modules"], "{ra} {rb}");
}

/// A job (not a session) whose top level takes 0.5 s, sliced at 1.5 s: each time it finds itself in a new
/// process it notes whether its top level ran there (`LOADED_IN`, static: rebuilt by the top level, not saved).
const SLOW_TOP: &str = r#"
import os, time
LOADED_IN = os.getpid()
__microlambda_static__ = ("LOADED_IN",)
time.sleep(0.5)

def main(x):
    total, seen, pid = 0, [], None
    for i in range(x["n"]):
        if os.getpid() != pid:
            pid = os.getpid()
            seen.append(LOADED_IN == pid)
        total += i * i % 7
        time.sleep(0.01)
    return {"total": total, "slices": len(seen), "top_level_here": seen}
"#;

#[tokio::test]
async fn a_slow_top_level_warms_its_module_on_every_node_before_the_jobs_first_restore() {
    // The default node.module_zygote_min_load_ms (100): the start's 0.5 s top level is worth a zygote.
    let env = [("PLACEMENT__COOLDOWN_MS", "300"), ("NODE__MODULE_ZYGOTES", "2")];
    let mesh = Mesh::start_env(&[("n1", 0.1), ("n2", 0.1)], &["--slots=1"], &env);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 2).await;
    let input = serde_json::json!({"n": 400});
    let body =
        serde_json::json!({"job_id": "slow-top", "function": {"source": SLOW_TOP}, "input": input, "r_limit_ms": 1500});
    let mut events = bus.subscribe_events("slow-top").await.unwrap();
    let r = submit(&bus, &body.to_string()).await;
    assert_eq!(r["status"], "accepted", "{r}");
    let evs = events_until_final(&mut events, Duration::from_secs(120)).await;
    let EventKind::Completed { output, .. } = &evs.last().unwrap().kind else { panic!("{evs:#?}") };
    let total: u64 = (0..400u64).map(|i| i * i % 7).sum();
    assert_eq!(output["total"], total, "{output}");
    let here = output["top_level_here"].as_array().expect("a list");
    assert!(here.len() >= 3, "at least two restores in 4 s of 1.5 s slices: {output}");
    assert_eq!(here[0], true, "the start runs its own top level: {output}");
    assert!(
        here[1..].iter().all(|h| h == false),
        "every restore, the first too, forked from a zygote that ran the module: {output}"
    );
    // The node that started it told the other, which started one too without restoring anything first.
    let told = report_where(&bus, Duration::from_secs(10), |r| r["module_zygotes_from_peers"] == 1).await;
    assert_eq!(told["module_zygote_failures"], 0, "{told}");
    let both = [
        report_where(&bus, Duration::from_secs(10), |r| r["node"] == "n1").await,
        report_where(&bus, Duration::from_secs(10), |r| r["node"] == "n2").await,
    ];
    let restores: u64 = both.iter().map(|r| r["module_zygote_restores"].as_u64().unwrap()).sum();
    assert_eq!(restores as usize, here.len() - 1, "{both:?}");
    assert!(both.iter().all(|r| r["module_zygotes"] == 1), "{both:?}");
}
