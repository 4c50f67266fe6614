//! Isolation of jobs, end to end on real nodes: every job runs in a fresh child of the node's zygote, sees
//! nothing of the job before it, cannot read the mesh's key, leaves no process behind, and a job over a limit
//! fails with a named kind while the node goes on.
mod common;

use common::{events_until_final, submit, Mesh};
use microlambda::wire::{EventKind, JobEvent};
use serde_json::{json, Value};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);
const KEY: &str = "isolation-test-key-5f1e2d";

async fn run_job(bus: &microlambda::bus::Bus, job_id: &str, src: &str, input: Value) -> Vec<JobEvent> {
    let mut events = bus.subscribe_events(job_id).await.unwrap();
    let body = json!({"job_id": job_id, "function": {"source": src}, "input": input});
    let reply = submit(bus, &body.to_string()).await;
    assert_eq!(reply["status"], "accepted", "{reply}");
    events_until_final(&mut events, LIMIT).await
}

fn output(evs: &[JobEvent]) -> Value {
    match &evs.last().expect("some events").kind {
        EventKind::Completed { output, .. } => output.clone(),
        other => panic!("expected completed, got {other:?} in {evs:?}"),
    }
}

fn failure(evs: &[JobEvent]) -> (String, String) {
    match &evs.last().expect("some events").kind {
        EventKind::Failed { error, .. } => (error.kind.clone(), error.message.clone()),
        other => panic!("expected failed, got {other:?} in {evs:?}"),
    }
}

/// One slot: both jobs run on the same node, one after the other.
fn one_slot_node(env: &[(&str, &str)]) -> Mesh {
    Mesh::start_env(&[("n1", 0.1)], &["--slots=1"], env)
}

#[tokio::test]
async fn a_job_sees_nothing_of_the_job_before_it() {
    let mesh = one_slot_node(&[]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let dirty = r#"
import sys, math, builtins, threading, time, random, types
LEFT = "a global of the first job"
def main(x):
    sys.modules["left_behind"] = types.ModuleType("left_behind")
    builtins.left_behind = 1
    math.sqrt = lambda v: "patched"
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    import os
    return {"pid": os.getpid(), "module": __name__, "random": random.random()}
"#;
    let first = output(&run_job(&bus, "dirty", dirty, json!(null)).await);
    let probe = r#"
import sys, math, builtins, threading, os, random
def main(x):
    return {
        "pid": os.getpid(),
        "modules": [m for m in (x["module"], "left_behind", "__microlambda_warm__") if m in sys.modules],
        "builtin": hasattr(builtins, "left_behind"),
        "sqrt": math.sqrt(4),
        "threads": threading.active_count(),
        "random": random.random(),
    }
"#;
    let second = output(&run_job(&bus, "probe", probe, json!({"module": first["module"]})).await);
    assert_ne!(second["pid"], first["pid"], "a fresh process per job");
    assert_eq!(second["modules"], json!([]), "the first job's modules (and the child's warm-up) are gone: {second}");
    assert_eq!(second["builtin"], json!(false));
    assert_eq!(second["sqrt"], json!(2.0), "math.sqrt is not the first job's patch");
    assert_eq!(second["threads"], json!(1), "no thread of the first job");
    assert_ne!(second["random"], first["random"], "random is reseeded in every child");
}

#[tokio::test]
async fn a_job_cannot_read_the_key() {
    let mesh = one_slot_node(&[("NODE__CHECKPOINT_KEY", KEY)]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    // The key is given to the job as its input, reversed, so that its source holds no copy of it.
    assert_the_key_is_out_of_reach(&bus).await;
}

const READ_THE_KEY: &str = r#"
import os, sys
def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""
def main(x):
    key = x["yek"][::-1].encode()
    places = {
        "environ": "\0".join(f"{k}={v}" for k, v in os.environ.items()).encode(),
        "argv": "\0".join(sys.argv + sys.orig_argv).encode(),
        "/proc/self/environ": read("/proc/self/environ"),
        "/proc/self/cmdline": read("/proc/self/cmdline"),
        "/proc/ppid/environ": read(f"/proc/{os.getppid()}/environ"),
        "/proc/ppid/cmdline": read(f"/proc/{os.getppid()}/cmdline"),
    }
    return {
        "found": [k for k, v in places.items() if key in v],
        "env": sorted(os.environ),
        "read_parent": len(places["/proc/ppid/environ"]) > 0,
    }
"#;

async fn assert_the_key_is_out_of_reach(bus: &microlambda::bus::Bus) {
    let reversed: String = KEY.chars().rev().collect();
    let out = output(&run_job(bus, "key", READ_THE_KEY, json!({"yek": reversed})).await);
    assert_eq!(out["found"], json!([]), "{out}");
    let env: Vec<String> = serde_json::from_value(out["env"].clone()).unwrap();
    assert!(env.iter().all(|k| !k.starts_with("MICROLAMBDA")), "a cleared environment: {env:?}");
    assert!(env.contains(&"PYTHONHASHSEED".to_string()), "{env:?}");
    // The test reads the parent's environment, so it did look (the parent is the zygote, not the node).
    assert_eq!(out["read_parent"], json!(true), "{out}");
}

fn alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// A plain child in the job's process group, and one that leaves the group (setsid) and whose parent ends at
/// once (a daemon's double fork).
const FORKS: &str = r#"
import os, time
def main(x):
    r, w = os.pipe()
    a = os.fork()
    if a == 0:
        time.sleep(120)
        os._exit(0)
    b = os.fork()
    if b == 0:
        os.setsid()
        c = os.fork()
        if c == 0:
            time.sleep(120)
            os._exit(0)
        os.write(w, str(c).encode())
        os._exit(0)
    os.waitpid(b, 0)
    c = int(os.read(r, 32))
    return {"pids": [a, c]}
"#;

/// Every one of `pids` ends within 2 s.
async fn assert_gone(pids: &[i64]) {
    let mut left = pids.to_vec();
    for _ in 0..40 {
        left.retain(|p| alive(*p));
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(left.is_empty(), "processes of the job still alive after it ended: {left:?} (of {pids:?})");
}

#[tokio::test]
async fn a_job_cannot_outlive_its_slot_with_a_forked_process() {
    let mesh = one_slot_node(&[]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let out = output(&run_job(&bus, "forks", FORKS, json!(null)).await);
    let pids: Vec<i64> = serde_json::from_value(out["pids"].clone()).unwrap();
    assert_eq!(pids.len(), 2);
    assert_gone(&pids).await;
    // The node goes on.
    let ok = run_job(&bus, "after-forks", "def main(x):\n    return x + 1\n", json!(1)).await;
    assert_eq!(output(&ok), json!(2));
}

#[tokio::test]
async fn over_memory_and_over_output_jobs_fail_with_a_named_kind_and_the_node_goes_on() {
    let mesh = one_slot_node(&[("NODE__LIMITS__MEMORY_MB", "1024"), ("NODE__LIMITS__OUTPUT_BYTES", "100000")]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let hog = "def main(x):\n    b = bytearray(2 * 1024 ** 3)\n    return len(b)\n";
    let (kind, msg) = failure(&run_job(&bus, "hog", hog, json!(null)).await);
    assert_eq!(kind, "out_of_memory", "{msg}");
    assert!(msg.contains("memory"), "{msg}");
    let big = "def main(x):\n    return 'x' * 1_000_000\n";
    let (kind, msg) = failure(&run_job(&bus, "big", big, json!(null)).await);
    assert_eq!(kind, "output_too_large", "{msg}");
    assert!(msg.contains("100000"), "{msg}");
    let loud = "def main(x):\n    raise ValueError('y' * 100_000)\n";
    let evs = run_job(&bus, "loud", loud, json!(null)).await;
    let (kind, msg) = failure(&evs);
    assert_eq!(kind, "raised");
    assert!(msg.len() < 16_500 && msg.ends_with("yyyy") && msg.contains("bytes cut"), "{}", msg.len());
    if let EventKind::Failed { error, .. } = &evs.last().unwrap().kind {
        assert!(error.traceback.as_ref().is_some_and(|t| t.len() < 16_500), "the traceback is cut too");
    }
    let just = "def main(x):\n    return 'x' * 90_000\n";
    assert_eq!(output(&run_job(&bus, "just", just, json!(null)).await).as_str().map(str::len), Some(90_000));
    let ok = run_job(&bus, "after-limits", "def main(x):\n    return x * 2\n", json!(21)).await;
    assert_eq!(output(&ok), json!(42));
}

#[tokio::test]
async fn a_node_whose_zygote_died_starts_another_and_runs_the_next_job() {
    let mut mesh = one_slot_node(&[]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    assert_eq!(output(&run_job(&bus, "before", "def main(x):\n    return x\n", json!(1)).await), json!(1));
    let node = mesh.node("n1").pid();
    let zygote = microlambda::proc::children_of(node)
        .into_iter()
        .find(|c| std::fs::read(format!("/proc/{c}/cmdline")).unwrap_or_default().ends_with(b"zygote\0"))
        .expect("the node has a zygote");
    // SAFETY: kill(2) on the zygote this test's node started (its children die with it).
    unsafe { libc::kill(zygote as libc::pid_t, libc::SIGKILL) };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(output(&run_job(&bus, "after", "def main(x):\n    return x\n", json!(2)).await), json!(2));
}

#[tokio::test]
async fn a_disk_filling_job_fails_and_an_over_large_state_is_not_checkpointed_while_the_job_goes_on() {
    let mesh = one_slot_node(&[
        ("NODE__LIMITS__FILE_SIZE_MB", "1"),
        ("NODE__LIMITS__CHECKPOINT_BYTES", "100000"),
        ("NODE__CHECKPOINT_INTERVAL_MS", "100"),
    ]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let fill = "def main(x):\n    with open(x['path'], 'wb') as f:\n        for _ in range(64):\n            f.write(b'x' * (1 << 20))\n";
    let path = dir.path().join("fill.bin");
    let (kind, msg) = failure(&run_job(&bus, "fill", fill, json!({"path": path})).await);
    assert_eq!(kind, "raised", "{msg}");
    assert!(msg.contains("File too large"), "{msg}");
    assert!(std::fs::metadata(&path).unwrap().len() <= 1 << 20);
    // 400 kB of state, a periodic checkpoint every 100 ms: each is refused as too large, the job completes.
    let big = "import os, time\ndef main(x):\n    blob = os.urandom(400_000)\n    t = time.time()\n    while time.time() - t < 0.6:\n        time.sleep(0.01)\n    return len(blob)\n";
    let evs = run_job(&bus, "big-state", big, json!(null)).await;
    assert_eq!(output(&evs), json!(400_000));
    assert!(!evs.iter().any(|e| e.kind.name() == "checkpointed"), "{evs:?}");
}

#[tokio::test]
async fn a_job_run_as_another_user_cannot_read_the_node() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: switching jobs to another user needs a node running as root");
        return;
    }
    let mesh = one_slot_node(&[
        ("NODE__CHECKPOINT_KEY", KEY),
        ("NODE__LIMITS__RUN_AS_UID", "65534"),
        ("NODE__LIMITS__RUN_AS_GID", "65534"),
    ]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let src = r#"
import os
def main(x):
    zygote = os.getppid()
    with open(f"/proc/{zygote}/stat") as f:
        node = int(f.read().rsplit(")", 1)[1].split()[1])
    seen = {}
    for what in ("environ", "mem", "cmdline"):
        try:
            with open(f"/proc/{node}/{what}", "rb") as f:
                seen[what] = len(f.read(1 << 16)) > 0
        except OSError as e:
            seen[what] = type(e).__name__
    return {"uid": os.getuid(), "gid": os.getgid(), "node": node, "seen": seen}
"#;
    let out = output(&run_job(&bus, "as-nobody", src, json!(null)).await);
    assert_eq!(out["uid"], json!(65534), "{out}");
    assert_eq!(out["gid"], json!(65534), "{out}");
    assert_eq!(out["node"], json!(mesh.nodes[0].1.pid()), "{out}");
    assert_eq!(out["seen"]["environ"], json!("PermissionError"), "{out}");
    assert_eq!(out["seen"]["mem"], json!("PermissionError"), "{out}");
}

/// `node.limits.network = false`: a job reaches no address, not even the mesh's nats-server on 127.0.0.1,
/// while the same job on a node with the default reaches it; the job still runs to its output (the worker's
/// own channels to the node are not network). A job run in slices connects in its last slice, restored in a
/// fresh child (of a zygote that may keep its module: children inherit its namespace).
#[tokio::test]
async fn a_job_on_a_node_without_network_reaches_no_address() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: a network namespace per job needs a node running as root");
        return;
    }
    let src = r#"
import socket, time
def main(x):
    end = time.monotonic() + x["spin_s"]
    n = 0
    while time.monotonic() < end:
        n += 1
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", x["port"]))
        return "connected"
    except OSError as e:
        return f"{type(e).__name__} {e.errno}"
    finally:
        s.close()
"#;
    for (settings, expect) in [
        (vec![], "connected".to_string()),
        (vec![("NODE__LIMITS__NETWORK", "false")], format!("OSError {}", libc::ENETUNREACH)),
    ] {
        let mesh = one_slot_node(&settings);
        let bus = mesh.bus().await;
        mesh.ready(&bus, 1).await;
        let port = mesh.nats.port();
        for (i, (spin_s, r_limit_ms)) in [(0.0, None), (0.6, Some(150))].into_iter().enumerate() {
            let job_id = format!("net-{}-{i}", settings.len());
            let mut events = bus.subscribe_events(&job_id).await.unwrap();
            let mut body = json!({"job_id": job_id, "function": {"source": src},
                "input": {"port": port, "spin_s": spin_s}});
            if let Some(ms) = r_limit_ms {
                body["r_limit_ms"] = json!(ms);
            }
            let reply = submit(&bus, &body.to_string()).await;
            assert_eq!(reply["status"], "accepted", "{reply}");
            let evs = events_until_final(&mut events, LIMIT).await;
            assert_eq!(output(&evs), json!(expect), "{settings:?} {body}");
            if r_limit_ms.is_some() {
                let restored =
                    evs.iter().filter(|e| matches!(&e.kind, EventKind::Started { resumed_from: Some(_), .. })).count();
                assert!(restored >= 1, "the sliced job was never restored: {evs:?}");
            }
        }
    }
}

/// `node.isolation = "reuse"` gives up a fresh process per job, and only that: the key stays out of the job's
/// process, its environment is cleared, the limits hold and the processes a job forked end with it.
#[tokio::test]
async fn with_isolation_reuse_jobs_share_a_process_but_not_the_key_limits_or_processes() {
    let mesh = one_slot_node(&[
        ("NODE__ISOLATION", "reuse"),
        ("NODE__CHECKPOINT_KEY", KEY),
        ("NODE__LIMITS__OUTPUT_BYTES", "100000"),
    ]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let pid = "import os\ndef main(x):\n    return os.getpid()\n";
    let first = output(&run_job(&bus, "pid-1", pid, json!(null)).await);
    assert_the_key_is_out_of_reach(&bus).await;
    let out = output(&run_job(&bus, "forks", FORKS, json!(null)).await);
    let pids: Vec<i64> = serde_json::from_value(out["pids"].clone()).unwrap();
    assert_gone(&pids).await;
    let big = "def main(x):\n    return 'x' * 1_000_000\n";
    let (kind, msg) = failure(&run_job(&bus, "big", big, json!(null)).await);
    assert_eq!(kind, "output_too_large", "{msg}");
    let second = output(&run_job(&bus, "pid-2", pid, json!(null)).await);
    assert_eq!(first, second, "the jobs shared one worker process");
}
