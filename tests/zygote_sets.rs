//! Set zygotes, end to end on a real node: a restore of a job whose checkpoint needs a library the base zygote
//! lacks is forked from the base zygote first (and restored correctly), and a later restore of the same module
//! set from a zygote started for that set. Observables: the worker's parent pid (its zygote's), which the job
//! records at every slice, and the node's load report (`set_zygotes`, `set_zygote_restores`).
mod common;

use common::{events_until_final, reference_output, report_where, submit, Mesh};
use microlambda::wire::EventKind;
use microlambda::worker::{WorkerOptions, Zygote};
use serde_json::json;
use std::time::Duration;

/// `idna`: a small pure-Python package of the venv, not stdlib, that neither the runtime nor `node.preload`
/// imports. The job notes its zygote (its parent) each time it finds itself in a new process, i.e. at every
/// slice.
const USES_IDNA: &str = r#"
import os, time
import idna

def main(x):
    total, zygotes, pid = 0, [], None
    for i in range(x["n"]):
        if os.getpid() != pid:
            pid = os.getpid()
            zygotes.append(os.getppid())
        total += i * i % 7
        if i % 50 == 0:
            time.sleep(0.01)
    return {"total": total, "name": idna.encode("bücher.example").decode(), "zygotes": zygotes}
"#;

const FAST: &[(&str, &str)] = &[
    ("PLACEMENT__COOLDOWN_MS", "300"),
    ("PLACEMENT__ORPHAN_GRACE_MS", "1500"),
    ("NODE__CHECKPOINT_INTERVAL_MS", "300"),
    ("NODE__ZYGOTE_SETS", "2"),
    // Set zygotes alone: a module zygote would serve these restores (same module) first (tests/module_zygotes.rs).
    ("NODE__MODULE_ZYGOTES", "0"),
];

#[tokio::test]
async fn a_restore_needing_a_library_forks_from_a_zygote_of_its_set_once_there_is_one() {
    let mesh = Mesh::start_env(&[("n1", 0.1)], &["--slots=1"], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let input = json!({"n": 12000});
    let mut want = reference_output(USES_IDNA, &input);
    // ~2.4 s of work in slices of at most 250 ms: every slice after the first is a restore on n1.
    let body = json!({"job_id": "sets-1", "function": {"source": USES_IDNA}, "input": input, "r_limit_ms": 250});
    let mut events = bus.subscribe_events("sets-1").await.unwrap();
    let r = submit(&bus, &body.to_string()).await;
    assert_eq!(r["status"], "accepted", "{r}");
    let evs = events_until_final(&mut events, Duration::from_secs(60)).await;
    let EventKind::Completed { output, .. } = &evs.last().unwrap().kind else { panic!("{evs:#?}") };
    let zygotes: Vec<u64> = output["zygotes"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    want["zygotes"] = output["zygotes"].clone();
    assert_eq!(output, &want, "every slice resumed exactly");
    assert!(zygotes.len() >= 4, "{zygotes:?}: too few slices to see a set zygote come");
    // The job started from the base zygote, and its first restore (no zygote has idna yet) forked there too.
    assert_eq!(zygotes[1], zygotes[0], "the first restore forks from the base zygote: {zygotes:?}");
    // Meanwhile a zygote with idna came up: a later restore forked from it.
    let base = zygotes[0];
    assert!(zygotes[2..].iter().any(|&z| z != base), "no restore forked from a set zygote: {zygotes:?}");
    // The node says so too.
    let report =
        report_where(&bus, Duration::from_secs(10), |r| r["set_zygote_restores"].as_u64().unwrap_or(0) > 0).await;
    println!("zygote of each slice: {zygotes:?}; load report: {report}");
    assert_eq!(report["set_zygotes"], 1, "{report}");
    let from_set = zygotes[2..].iter().filter(|&&z| z != base).count() as u64;
    assert_eq!(report["set_zygote_restores"].as_u64().unwrap(), from_set, "{report}");
    // The set zygote keeps a child forked ahead, refilled at each restore; the slices are 250 ms apart, so all
    // but a restore whose refill was slower than a slice find it ready.
    if from_set >= 2 {
        assert!(
            report["restores_forked_ahead"].as_u64().unwrap() >= 1,
            "no restore took a child forked ahead: {report}"
        );
    }
}

#[tokio::test]
async fn a_zygote_comes_up_without_a_module_that_does_not_import_and_names_it() {
    let mut opts = WorkerOptions::new(b"k".to_vec());
    opts.exe = env!("CARGO_BIN_EXE_microlambda").into();
    opts.preload = vec!["no_such_module_zz".into(), "idna".into()];
    let z = Zygote::start(&opts).await.expect("the zygote comes up all the same");
    assert_eq!(z.failed_imports(), ["no_such_module_zz".to_string()]);
    assert!(z.libraries().contains(&"idna".to_string()), "{:?}", z.libraries());
    assert!(!z.libraries().contains(&"no_such_module_zz".to_string()));
    // It forks workers as any zygote does.
    let w = z.fork().await.expect("a worker");
    w.kill().await;
}

#[tokio::test]
async fn a_set_one_node_learned_is_warm_on_another_before_a_job_is_evacuated_there() {
    // n2 hot (no jobs placed there) but under the level where a node holds its forks, so it can warm a zygote.
    let env: Vec<(&str, &str)> = FAST.iter().copied().chain([("NODE__HOLD_REFILLS_ABOVE", "0.9")]).collect();
    let mesh = Mesh::start_env(&[("n1", 0.1), ("n2", 0.85)], &["--slots=1"], &env);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 2).await;
    // The job imports colorsys lazily, a few slices after n1's set zygote is up (which is then taught it).
    let input = json!({"n": 60000, "import_at": 20000});
    let reference = reference_output(LAZY_IMPORT, &input);
    // Slices of 250 ms on n1: its first restore there needs idna, which no zygote has; n1 tells n2 the set.
    let body = json!({"job_id": "warm-1", "function": {"source": LAZY_IMPORT}, "input": input, "r_limit_ms": 250});
    let mut events = bus.subscribe_events("warm-1").await.unwrap();
    let r = submit(&bus, &body.to_string()).await;
    assert_eq!(r["status"], "accepted", "{r}");
    // n2 starts a zygote for the set without having restored anything.
    let warm = report_where(&bus, Duration::from_secs(30), |r| r["node"] == "n2" && r["set_zygotes"] == 1).await;
    assert_eq!(warm["set_zygotes_from_peers"], 1, "{warm}");
    assert_eq!(warm["set_zygote_restores"], 0, "{warm}");
    // n1's set zygote was taught colorsys: the checkpoints its children take name it all the same (n2's zygote
    // was started without it), so the restores on n2 import it as the job had.
    report_where(&bus, Duration::from_secs(30), |r| r["node"] == "n1" && r["modules_taught"].as_u64() > Some(0)).await;
    // Now n2 cools and n1 gets hot: the job goes to n2 and restores there from that zygote.
    bus.publish_radio("n2", 0.1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    bus.publish_radio("n1", 0.95).await.unwrap();
    let evs = events_until_final(&mut events, Duration::from_secs(90)).await;
    let EventKind::Completed { output, node } = &evs.last().unwrap().kind else { panic!("{evs:#?}") };
    assert_eq!(node, "n2", "{evs:#?}");
    let mut want = reference;
    want["zygotes"] = output["zygotes"].clone();
    want["came_with_fork"] = output["came_with_fork"].clone();
    assert_eq!(output, &want, "every slice resumed exactly");
    let served = report_where(&bus, Duration::from_secs(10), |r| r["node"] == "n2").await;
    assert!(served["set_zygote_restores"].as_u64().unwrap() >= 1, "n2 restored cold: {served}");
    println!("n2 warmed by n1: {warm}; after: {served}; output {output}");
}

/// A module zygote whose job module installs an import hook: `zz_quiet` imports cleanly, `zz_threaded` starts a
/// thread as it is imported (what a library doing so at import would do to a zygote).
const HOOKS: &str = r#"
import importlib.abc, importlib.util, sys, threading

class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name in ("zz_quiet", "zz_threaded"):
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.answer = 42
        if module.__name__ == "zz_threaded":
            module.stop = threading.Event()
            threading.Thread(target=module.stop.wait, daemon=True).start()

sys.meta_path.insert(0, _Finder())

def main(x):
    return x
"#;

/// What a zygote is taught (`ToZygote::Import`): modules it lacks are imported and their children have them,
/// one that does not import is named, and an import that leaves a thread behind retires the zygote (no more
/// forks, those asked for meanwhile too), where forking would not be safe.
#[tokio::test]
async fn a_zygote_imports_what_it_is_taught_and_retires_when_an_import_leaves_a_thread() {
    let mut opts = WorkerOptions::new(b"k".to_vec());
    opts.exe = env!("CARGO_BIN_EXE_microlambda").into();
    opts.restores = true;
    opts.module = Some(microlambda::worker::ModuleSpec {
        module_name: "hooks_job".into(),
        filename: "hooks_job.py".into(),
        source: HOOKS.into(),
    });
    let z = Zygote::start(&opts).await.expect("a module zygote");
    let done = z.import(vec!["zz_quiet".into(), "idna".into(), "no_such_module_zz".into()]).await.unwrap();
    assert_eq!(done.imported, 2, "{done:?}");
    assert_eq!(done.failed, ["no_such_module_zz".to_string()], "{done:?}");
    assert_eq!(done.unsafe_to_fork, None);
    // Taught again: nothing new.
    assert_eq!(z.import(vec!["zz_quiet".into()]).await.unwrap().imported, 0);
    assert!(z.is_alive());
    let w = z.fork().await.expect("a worker after the import");
    w.kill().await;
    // A fork asked for while the import runs (sent after it) is refused by the zygote itself, or by the node
    // once it has read the answer: no child is forked beside the thread.
    let (done, forked) = tokio::join!(z.import(vec!["zz_threaded".into()]), z.fork());
    let why = done.unwrap().unsafe_to_fork.expect("a thread left by an import makes the zygote unfit to fork");
    assert!(why.contains("1 threads"), "{why}");
    assert!(forked.is_err(), "a child was forked after an import left a thread");
    assert!(!z.is_alive(), "a retired zygote counts as gone");
    assert!(z.fork().await.is_err(), "a retired zygote forks no more");
}

/// A set zygote serves the jobs of every client whose checkpoints name its set: it is taught only modules of the
/// standard library and of the packages it has imported (the names come from a job's worker).
#[tokio::test]
async fn a_set_zygote_is_taught_only_the_standard_library_and_its_own_packages() {
    let mut opts = WorkerOptions::new(b"k".to_vec());
    opts.exe = env!("CARGO_BIN_EXE_microlambda").into();
    opts.restores = true;
    opts.preload = vec!["idna".into()];
    let z = Zygote::start(&opts).await.expect("a set zygote");
    // `nacl` (PyNaCl, installed in the venv) is neither: refused, as if it did not import.
    let done = z.import(vec!["idna.codec".into(), "colorsys".into(), "nacl".into()]).await.unwrap();
    assert_eq!((done.imported, done.failed), (2, vec!["nacl".to_string()]));
    assert_eq!(done.unsafe_to_fork, None);
    let w = z.fork().await.expect("a worker after the import");
    w.kill().await;
}

/// The job imports `colorsys` at iteration `import_at` (a lazy import, long after the set zygote for `idna`
/// was started by its first restore) and keeps no reference to it (only `sys.modules` has it), and notes: at
/// each slice, whether `colorsys` came with the fork (its objects are then frozen in the zygote, by
/// `gc.freeze`, out of the generations `gc.get_objects` lists); every 1,000 iterations, whether it is imported
/// (as in an uninterrupted run: a restore must import what the job imported, wherever it restores).
const LAZY_IMPORT: &str = r#"
import gc, os, sys, time
import idna

def came_with_fork():
    c = sys.modules.get("colorsys")
    return None if c is None else not any(o is c.rgb_to_hsv for o in gc.get_objects())

def main(x):
    total, zygotes, came, imported, pid = 0, [], [], [], None
    for i in range(x["n"]):
        if os.getpid() != pid:
            pid = os.getpid()
            zygotes.append(os.getppid())
            came.append(came_with_fork())
        if i == x["import_at"]:
            __import__("colorsys")
            total += int(sys.modules["colorsys"].rgb_to_hsv(0.2, 0.4, 0.4)[0] * 1000)
        if i % 1000 == 0:
            imported.append("colorsys" in sys.modules)
        total += i * i % 7
        if i % 50 == 0:
            time.sleep(0.01)
    return {"total": total, "name": idna.encode("bücher.example").decode(), "zygotes": zygotes,
            "came_with_fork": came, "imported": imported}
"#;

#[tokio::test]
async fn a_module_a_restore_imports_again_is_taught_to_its_set_zygote_and_later_children_have_it() {
    let mesh = Mesh::start_env(&[("n1", 0.1)], &["--slots=1"], FAST);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let input = json!({"n": 24000, "import_at": 14000});
    let mut want = reference_output(LAZY_IMPORT, &input);
    let body = json!({"job_id": "teach-1", "function": {"source": LAZY_IMPORT}, "input": input, "r_limit_ms": 250});
    let mut events = bus.subscribe_events("teach-1").await.unwrap();
    let r = submit(&bus, &body.to_string()).await;
    assert_eq!(r["status"], "accepted", "{r}");
    let evs = events_until_final(&mut events, Duration::from_secs(60)).await;
    let EventKind::Completed { output, .. } = &evs.last().unwrap().kind else { panic!("{evs:#?}") };
    // The reference ran in one process; which process each slice ran in is the mesh's doing.
    want["zygotes"] = output["zygotes"].clone();
    want["came_with_fork"] = output["came_with_fork"].clone();
    assert_eq!(output, &want, "every slice resumed exactly");
    let came: Vec<Option<bool>> = output["came_with_fork"].as_array().unwrap().iter().map(|v| v.as_bool()).collect();
    println!("colorsys came with the fork, by slice: {came:?}; zygotes {}", output["zygotes"]);
    // Imported in a child of the set zygote, then again by the next restore (the checkpoint names it), which
    // teaches it to the zygote: a later slice's child has it from the fork.
    let first = came.iter().position(|c| *c == Some(false)).expect("colorsys imported again by a restore");
    assert!(came.len() >= first + 3, "{came:?}: too few slices after the import to see it taught");
    assert_eq!(
        came.last(),
        Some(&Some(true)),
        "the last slices' children did not get colorsys from the fork: {came:?}"
    );
    let report = report_where(&bus, Duration::from_secs(10), |r| r["modules_taught"].as_u64().unwrap_or(0) > 0).await;
    assert!(report["set_zygote_restores"].as_u64().unwrap() >= 2, "{report}");
}
