//! The checkpoint engine's contract, through `microlambda run` / `resume` with real worker processes: the
//! error cases of the checkpoint issue (unpicklable state named, C calls waited out, deadlines reported,
//! forged or stale checkpoints refused) and both checkpoint modes.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const KEY: &str = "engine-tests-key";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_microlambda")
}

fn job(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/engine").join(name)
}

fn microlambda(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("MICROLAMBDA_KEY", KEY)
        .env("MICROLAMBDA_PYTHON", Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"))
        .output()
        .expect("run microlambda")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn checkpoints_taken(err: &str) -> usize {
    err.lines()
        .find_map(|l| l.strip_prefix("checkpoints: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("--stats prints a checkpoints line")
}

#[test]
fn preempted_run_gives_the_uninterrupted_result() {
    let f = job("counter.py");
    let f = f.to_str().unwrap();
    let plain = microlambda(&["run", f, "--input", r#"{"n": 20000}"#]);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let pre = microlambda(&["run", f, "--input", r#"{"n": 20000}"#, "--preempt-every", "15", "--stats"]);
    assert!(pre.status.success(), "{}", stderr(&pre));
    assert_eq!(stdout(&pre), stdout(&plain));
    assert_eq!(stdout(&plain), r#"{"total": 6400000}"#);
    assert!(checkpoints_taken(&stderr(&pre)) >= 2, "{}", stderr(&pre));
}

#[test]
fn snapshot_and_continue_keeps_the_job_running() {
    let f = job("counter.py");
    let o = microlambda(&[
        "run",
        f.to_str().unwrap(),
        "--input",
        r#"{"n": 20000}"#,
        "--preempt-every",
        "20",
        "--keep-running",
        "--stats",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), r#"{"total": 6400000}"#);
    let err = stderr(&o);
    assert!(checkpoints_taken(&err) >= 2, "{err}");
    // In continue mode no restore happens: the restore column stays empty.
    assert!(!err.lines().skip(2).any(|l| l.starts_with(|c: char| c.is_ascii_digit()) && !l.ends_with('-')), "{err}");
}

#[test]
fn unsaveable_state_held_by_an_inner_frame_is_waited_out_until_that_frame_returns() {
    // The request lands inside `hold`, whose local socket cannot be saved: it waits, untraced and without
    // pickling the state again, for `hold` to return, and is taken right after (before: a full pickle every
    // 1-16 ms until then, which slowed a matplotlib job 25-fold).
    let f = job("held_briefly.py");
    let input = r#"{"n": 3000000, "rounds": 2}"#;
    let o = Command::new(bin())
        .args(["run", f.to_str().unwrap(), "--input", input, "--preempt-at", "40", "--keep-running", "--stats"])
        .args(["--deadline", "10000"])
        .env("MICROLAMBDA_KEY", KEY)
        .env("MICROLAMBDA_PYTHON", Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"))
        .env("ML_DEBUG", "1")
        .output()
        .expect("run microlambda");
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let n = 3_000_000u64;
    let want = 2 * ((0..n).map(|i| i % 7).sum::<u64>() + (0..n / 4).map(|i| i % 3).sum::<u64>());
    assert_eq!(stdout(&o), want.to_string());
    assert_eq!(checkpoints_taken(&err), 1, "{err}");
    let tries = err.lines().filter(|l| l.starts_with("capture: cannot save: local variable 'sock'")).count();
    assert!((1..=2).contains(&tries), "{tries} captures pickled the state again to find the same socket: {err}");
    assert!(err.contains("waited at 1: local variable 'sock' in frame hold"), "{err}");
}

#[test]
fn unpicklable_state_is_named_with_its_frame_and_type() {
    let f = job("unpicklable.py");
    let o = microlambda(&[
        "run",
        f.to_str().unwrap(),
        "--input",
        r#"{"n": 20000000}"#,
        "--preempt-at",
        "100",
        "--deadline",
        "200",
    ]);
    // The request ends unanswered, naming what cannot be saved; the job runs on to its own result (as on a
    // node: a checkpoint that cannot be taken loses nothing). The job runs for seconds, well past the request.
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("not taken") && err.contains("Unpicklable"), "{err}");
    assert_eq!(stdout(&o), (0..20_000_000u64).map(|i| i % 7).sum::<u64>().to_string());
    assert!(err.contains("'guard'"), "variable not named: {err}");
    assert!(err.contains("frame main"), "frame not named: {err}");
    assert!(err.contains("socket"), "type not named: {err}");
}

#[test]
fn a_python_callback_from_c_is_waited_out_never_resumed() {
    let f = job("c_callback.py");
    let f = f.to_str().unwrap();
    let input = r#"{"n": 300000}"#;
    let plain = microlambda(&["run", f, "--input", input]);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let pre = microlambda(&["run", f, "--input", input, "--preempt-every", "40", "--stats", "--deadline", "5000"]);
    assert!(pre.status.success(), "{}", stderr(&pre));
    assert_eq!(stdout(&pre), stdout(&plain));
    let err = stderr(&pre);
    assert!(checkpoints_taken(&err) >= 1, "{err}");
    // Requests that land inside sorted() wait for it to return: some checkpoint reports why it waited (instants
    // it waited past inside the key function, or the call into C it was inside), naming the sorted() line.
    let waited_through_sorted = err.lines().any(|l| {
        l.starts_with("waited at ")
            && (l.contains("call from C") || l.contains("inside a call into C that returned to main"))
    });
    assert!(waited_through_sorted, "no checkpoint waited through the C callback: {err}");
}

/// Runs job `file` plain, then with each set of `modes` flags (and `--stats`): every run succeeds with the plain
/// output. Returns the plain output and each preempted run's stats.
fn preempted_as_plain(file: &str, input: &str, modes: &[&[&str]]) -> (String, Vec<String>) {
    let f = job(file);
    let f = f.to_str().unwrap();
    let plain = microlambda(&["run", f, "--input", input]);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let runs = modes
        .iter()
        .map(|mode| {
            let pre = microlambda(&[&["run", f, "--input", input, "--stats"][..], mode].concat());
            let err = stderr(&pre);
            assert!(pre.status.success(), "{mode:?}: {err}");
            assert_eq!(stdout(&pre), stdout(&plain), "{mode:?}: {err}");
            err
        })
        .collect();
    (stdout(&plain), runs)
}

/// Runs `file` plain and preempted every 20 ms (each checkpoint restored): the same output, at least 3
/// checkpoints, none of them waiting on a generator driven by C. Returns the run's stats.
fn generators_run_by_c_are_resumed(file: &str, input: &str) -> String {
    resumed_not_waiting(file, input, "runs a generator through a call from C")
}

/// Runs `file` plain and preempted every 20 ms (each checkpoint restored): the same output, at least 3
/// checkpoints, and (almost) no wait reported with `wait` in its reason: at most one in ten checkpoints, at
/// least one. An instant the capture cannot prove resumable still waits, as it should: the C stack may hold a
/// stale pointer that makes a container's search ambiguous (`held_by_c` then finds two candidates). CI's load
/// made that happen once in a run of `gen_fillers.py`; the binaries before each feature waited at nearly every
/// checkpoint.
fn resumed_not_waiting(file: &str, input: &str, wait: &str) -> String {
    let (_, runs) = preempted_as_plain(file, input, &[&["--preempt-every", "20"]]);
    let err = runs.into_iter().next().unwrap();
    let taken = checkpoints_taken(&err);
    assert!(taken >= 3, "{err}");
    let waited = err.lines().filter(|l| l.starts_with("waited at") && l.contains(wait)).count();
    assert!(waited <= (taken / 10).max(1), "{waited} of {taken} checkpoints waited ({wait}): {err}");
    err
}

#[test]
fn a_generator_consumed_by_c_that_keeps_no_state_is_resumed_not_waited_out() {
    // The job spends its time in generators run by any() and list.extend(), which keep nothing of their own
    // between items: instants inside them are taken and resumed, none waited out.
    // n: about 0.7 s on a quiet machine (0.17 s took only 2 checkpoints).
    let _ = generators_run_by_c_are_resumed("gen_consumers.py", r#"{"n": 12000}"#);
}

#[test]
fn a_generator_whose_items_c_gathers_into_a_new_container_is_resumed_not_waited_out() {
    // list(g), sorted(g), str.join(g), set(g), tuple(g), a generator partly consumed before list(g), and a list(g) whose
    // generator runs another list(g): C keeps the container it fills in a local, which the capture finds
    // (held by no object, in that call's C frames) and resumes as "that container, extended by the rest".
    // About 0.6 s on a quiet machine. Resumed, the call is the runtime's `_Resume` object's, which a later
    // checkpoint in it resumes again (a `functools.partial` there was not provable: every other checkpoint waited
    // for the whole call).
    let err = generators_run_by_c_are_resumed("gen_fillers.py", r#"{"n": 15000}"#);
    assert!(!err.contains("is in a call from C (CALL) that cannot be resumed"), "{err}");
}

#[test]
fn a_generator_behind_map_filter_or_enumerate_consumed_by_c_is_resumed_not_waited_out() {
    // list(map(f, g)), ",".join(map(str, g)), sorted(filter(p, g)), list.extend(map(f, enumerate(g))),
    // any(map(p, g)): the C iterators between the consumer and the generator keep nothing of their own between
    // items, so the consumer (or filler) is resumed on the same iterator, as for the generator itself.
    let _ = generators_run_by_c_are_resumed("gen_wrapped.py", r#"{"n": 12000}"#);
}

#[test]
fn a_function_called_by_map_for_a_c_consumer_or_filler_is_resumed_not_waited_out() {
    // list(map(f, xs)), sorted, set, frozenset, tuple, str.join, any, all, lst.extend, set.update, deque.extend,
    // starmap, a bound method: C takes f's result as the consumer's next item and keeps nothing else, so an
    // instant inside f is resumed as that call given f's result; a later one inside the resumed call in turn.
    let _ = resumed_not_waiting("../corpus/72_map_consumers.py", r#"{"n": 3000}"#, "main is in a call from C");
}

#[test]
fn a_function_called_by_map_in_a_for_loop_is_resumed_not_waited_out() {
    // `for v in map(f, xs)`, two iterators, a bound method, itertools.starmap, and f raising StopIteration (which
    // ends the loop): map_next keeps nothing once f returns, so an instant inside f is resumed with f's result
    // entering the loop, as a Python __next__'s does. About 0.4 s on a quiet machine.
    let _ = resumed_not_waiting("map_callbacks.py", r#"{"n": 6000}"#, "(FOR_ITER)");
}

#[test]
fn a_class_call_stopped_in_its_python_new_is_resumed_not_waited_out() {
    // `Cls(...)` whose Python `__new__` is running: type_call keeps nothing but the arguments, still on the
    // caller's stack, so the call is resumed as `__new__`'s result handed to an object that does what type_call
    // does next (the result's `__init__` with the same arguments and keywords when it is an instance, its
    // `TypeError` when that returns a value). Cached instances initialised again, an inherited `__new__`, one
    // returning a list, object's `__init__`, calls with `*args, **kw` (CALL_FUNCTION_EX), a metaclass `__call__`
    // going on with `super().__call__`, an ABC's class and `fractions.Fraction`, and `Slow`, long in both, where a
    // later request lands in the `__init__` the resumed call runs. About 0.6 s on a quiet machine; the binary
    // before it waited at nearly every checkpoint ("main is in a call from C (CALL) that cannot be resumed"), the
    // one before the star calls at 2 to 4 of 16-24 (CALL_FUNCTION_EX), the one before the metaclass's at 4 to 10
    // of 31-35 ("Registry.__call__ is in a call from C (CALL_FUNCTION_EX)").
    let _ = resumed_not_waiting("new_calls.py", r#"{"n": 3000, "slow": 300}"#, "is in a call from C");
}

#[test]
fn a_finalizer_returning_into_a_superinstruction_is_waited_for_until_the_next_instruction_only() {
    // `batch = None` then `out.append(...)`: the store and the next line's first load are one superinstruction,
    // into whose load the finalizer the store runs returns. The wait ends at the instruction after that load (a
    // breakpoint there), not by the luck of a poll between two finalizers: before, 1 to 3 checkpoints were taken
    // in 2 s of a job that main's loop leaves every 0.7 ms. The tries that waited inside the finalizer let go of
    // what they read: the weak reference to what the finished generator held dies, as in plain CPython (before,
    // about one per checkpoint stayed alive). About 0.7 s on a quiet machine.
    let modes: &[&[&str]] = &[&["--preempt-every", "20"], &["--keep-running", "--preempt-every", "5"]];
    let (plain, runs) = preempted_as_plain("finalizer_store.py", r#"{"rounds": 1000}"#, modes);
    assert!(plain.ends_with(", 0]"), "{plain}");
    for (mode, err) in modes.iter().zip(runs) {
        assert!(checkpoints_taken(&err) >= 10, "{mode:?}: {err}");
        assert!(!err.contains("not taken"), "{mode:?}: {err}");
    }
}

#[test]
fn a_predicate_called_by_filter_in_a_for_loop_is_resumed_not_waited_out() {
    // `for v in filter(p, xs)`, itertools.filterfalse in a comprehension, a bound method, and a filter whose last
    // item alone passes: filter_next keeps only the item it passed to p, which p still holds, so an instant inside
    // p is resumed as p's call followed by what filter_next does with its result (the item, or the next one).
    // The binary before waited every time. About 0.4 s on a quiet machine.
    let _ = resumed_not_waiting("filter_callbacks.py", r#"{"n": 6000}"#, "(FOR_ITER)");
}

#[test]
fn a_function_called_by_the_source_of_a_map_or_filter_is_waited_out_not_taken_for_theirs() {
    // `map(f, map(f, xs))`, `filter(p, map(f, filter(p, xs)))`: the function the loop's map or filter calls is
    // also called by the iterator it pulls from, so an instant inside it may be the inner call; resumed as the
    // outer one it gave the loop the inner result (the output differed). The sources must call no Python code
    // from C; these wait, and their checkpoints are taken once the call returns.
    let (_, runs) = preempted_as_plain("nested_sources.py", r#"{"n": 3000}"#, &[&["--preempt-every", "20"]]);
    let err = &runs[0];
    assert!(checkpoints_taken(err) >= 3, "{err}");
    assert!(err.contains("(FOR_ITER)"), "no checkpoint waited for the inner call: {err}");
}

#[test]
fn a_long_c_call_past_the_deadline_is_reported_and_the_job_goes_on() {
    let f = job("sleeper.py");
    let o = microlambda(&[
        "run",
        f.to_str().unwrap(),
        "--input",
        r#"{"sleep": 0.4}"#,
        "--preempt-at",
        "250",
        "--deadline",
        "50",
        "--stats",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "3");
    let err = stderr(&o);
    assert!(err.contains("not taken") && err.contains("Deadline"), "{err}");
}

#[test]
fn an_exception_after_restore_reports_the_original_line() {
    let f = job("raises_late.py");
    let o = microlambda(&["run", f.to_str().unwrap(), "--preempt-every", "30"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("ValueError: item 900 is bad"), "{err}");
    assert!(err.contains("raises_late.py\", line 3, in check"), "{err}");
    assert!(err.contains("raises_late.py\", line 12, in main"), "{err}");
}

fn saved_checkpoint(dir: &Path) -> PathBuf {
    let f = job("counter.py");
    let o = microlambda(&[
        "run",
        f.to_str().unwrap(),
        "--input",
        r#"{"n": 20000}"#,
        // Early in the run: on a quiet machine the whole job takes about 100 ms (a request after its end finds
        // no job, and no checkpoint is written).
        "--preempt-at",
        "30",
        "--checkpoint-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mlck"))
        .collect();
    files.sort();
    files.into_iter().next().expect("a checkpoint file was written")
}

#[test]
fn a_saved_checkpoint_resumes_to_the_same_result_from_another_directory() {
    let dir = tempfile::tempdir().unwrap();
    let ck = saved_checkpoint(dir.path());
    let elsewhere = tempfile::tempdir().unwrap();
    let o = Command::new(bin())
        .args(["resume", ck.to_str().unwrap()])
        .current_dir(elsewhere.path())
        .env("MICROLAMBDA_KEY", KEY)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), r#"{"total": 6400000}"#);
}

#[test]
fn a_forged_checkpoint_is_refused_before_anything_is_unpickled() {
    let dir = tempfile::tempdir().unwrap();
    let ck = saved_checkpoint(dir.path());
    let mut bytes = std::fs::read(&ck).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&ck, &bytes).unwrap();
    let o = microlambda(&["resume", ck.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("signature does not verify"), "{}", stderr(&o));
    // Truncated.
    std::fs::write(&ck, &bytes[..bytes.len() - 10]).unwrap();
    let o = microlambda(&["resume", ck.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));
    // Signed with another key.
    let dir2 = tempfile::tempdir().unwrap();
    let ck2 = saved_checkpoint(dir2.path());
    let o = Command::new(bin())
        .args(["resume", ck2.to_str().unwrap()])
        .env("MICROLAMBDA_KEY", "another key")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let held = microlambda::checkpoint::key_id(b"another key");
    assert!(stderr(&o).contains(&format!("which this node does not hold (it holds {held})")), "{}", stderr(&o));
}

#[test]
fn a_checkpoint_of_changed_code_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ck = saved_checkpoint(dir.path());
    let changed = dir.path().join("counter.py");
    let src = std::fs::read_to_string(job("counter.py")).unwrap().replace("(i * j) % k", "(i * j + 1) % k");
    std::fs::write(&changed, src).unwrap();
    let o = microlambda(&["resume", ck.to_str().unwrap(), "--source", changed.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("code changed"), "{}", stderr(&o));
}

#[test]
fn a_job_with_other_python_threads_is_refused_clearly() {
    let f = job("threads.py");
    let o = microlambda(&["run", f.to_str().unwrap(), "--preempt-at", "50", "--deadline", "100"]);
    // The request is refused, naming the thread; the job itself runs on to its result.
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("not taken") && stderr(&o).contains("other Python threads (helper)"), "{}", stderr(&o));
}

#[test]
fn a_job_calling_the_warm_up_hook_takes_no_checkpoint_and_runs_to_its_result() {
    // `_mlrs.warm_checkpoint` asks for a snapshot of the running job only while a fresh child's warm-up diverts
    // the trigger's reports (src/py/warm.rs); called by job code it must do nothing, else a job could send the
    // host checkpoints nobody asked for.
    let f = job("asks_warm_checkpoint.py");
    let o = microlambda(&["run", f.to_str().unwrap(), "--input", "200000", "--stats"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "19999900000");
    assert_eq!(checkpoints_taken(&stderr(&o)), 0, "{}", stderr(&o));
}

#[test]
fn a_checkpoint_from_another_cpython_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let ck = saved_checkpoint(dir.path());
    let env = microlambda::checkpoint::Envelope::new(KEY.as_bytes());
    let mut body = env.open(&std::fs::read(&ck).unwrap()).unwrap();
    assert_eq!(body.python, "3.11");
    body.python = "3.12".into();
    std::fs::write(&ck, env.seal(&body)).unwrap();
    let o = microlambda(&["resume", ck.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("taken on CPython 3.12, this worker runs 3.11"), "{}", stderr(&o));
}

#[test]
fn exceptions_held_across_a_checkpoint_keep_their_fields() {
    let f = job("exception_fields.py");
    let o = microlambda(&["run", f.to_str().unwrap(), "--input", r#"{"n": 300}"#, "--preempt-every", "10", "--stats"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), r#"[44850, 300, [299, 2, "/nonexistent/microlambda"]]"#);
    assert!(checkpoints_taken(&stderr(&o)) >= 3, "{}", stderr(&o));
}

#[test]
fn exception_fields_outside_args_survive_a_checkpoint() {
    // OSError.filename, ImportError.name/path and a subclass's own attributes live outside `args`: each must
    // come back as plain CPython has it. The exceptions exist from the start, so every checkpoint holds them.
    let f = job("held_exceptions.py");
    let f = f.to_str().unwrap();
    let plain = microlambda(&["run", f, "--input", r#"{"n": 300}"#]);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let pre = microlambda(&["run", f, "--input", r#"{"n": 300}"#, "--preempt-at", "40,120", "--stats"]);
    assert!(pre.status.success(), "{}", stderr(&pre));
    assert_eq!(checkpoints_taken(&stderr(&pre)), 2, "{}", stderr(&pre));
    assert_eq!(stdout(&pre), stdout(&plain));
    assert!(stdout(&plain).contains(r#""/nonexistent/microlambda""#) && stdout(&plain).contains(r#""mod_x""#));
}

#[test]
fn an_iterator_whose_kind_cannot_be_told_is_refused_not_guessed() {
    let f = job("odict_ambiguous.py");
    let args =
        ["run", f.to_str().unwrap(), "--input", r#"{"n": 20000000}"#, "--preempt-at", "300", "--deadline", "200"];
    let o = microlambda(&args);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    // The request is refused, naming the iterator; no checkpoint was taken (none could have been honest), and
    // the job ran on to its own result.
    assert!(err.contains("not taken") && err.contains("'it'") && err.contains("OrderedDict iterator"), "{err}");
    let total: u64 = (0..20_000_000u64).map(|i| i % 7).sum();
    assert_eq!(stdout(&o), format!("[{total}, 0]"));
}

#[test]
fn the_native_code_analysis_equals_the_python_one() {
    // src/py/codeflow.rs walks a code object's control flow as analysis.CodeInfo's Python walk does; compared on
    // every code of ~30 standard library modules (instruction boundaries, depths, lasti marks, refusals).
    let o = microlambda(&["run", job("analysis_native.py").to_str().unwrap(), "--input", "{}"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("the job's JSON result");
    assert_eq!(v["n_differ"], 0, "{v}");
    assert!(v["codes"].as_u64().unwrap_or(0) > 2000 && v["marked"].as_u64().unwrap_or(0) > 1000, "{v}");
    eprintln!("analysis of {} codes: native {} ms, Python {} ms", v["codes"], v["native_ms"], v["python_ms"]);
}
