//! Every shell command in README.md and docs/*.md runs as written, so the docs cannot drift from the code.
//!
//! The test reads every fenced `sh`/`bash`/`shell` block, joins `\` continuations, drops comments, and runs
//! each command with `sh -c` (a timeout each) in a scratch directory that links the repository's top-level
//! directories (so `ckpts/` and other outputs land there), against a `microlambda testbed` it starts itself:
//! the commands find it without `--nats`, through the URL file the testbed writes (an `XDG_CACHE_HOME` of
//! the test's own). `microlambda`, `target/release/microlambda` and `target/debug/microlambda` all mean the
//! binary under test, likewise for `microlambda-loadgen`; `nats://127.0.0.1:4222` means the testbed's URL
//! and `--nkey client.nk --tls-ca ca.pem` (compose's client seed and CA) its client identity and CA.
//! Commands that cannot run in a test are skipped by [`SKIP`], each with its reason. Besides exiting 0, the
//! commands whose outcome the docs state must show it ([`EXPECT`]): a job's output is plain CPython's, a
//! checkpointing run checkpoints, the loadgen's radio step moves jobs and prints the lines the README shows.
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const TIMEOUT: Duration = Duration::from_secs(120);

/// Commands (by prefix, after the binary paths are normalised) the test does not run, and why.
const SKIP: &[(&str, &str)] = &[
    // make: the test runs under `make test` / cargo already; set-up, builds and the demo are what make is for
    // (the demo itself is `microlambda testbed --demo`, exercised by tests/testbed.rs's mesh).
    ("make ", "a make target (set-up, builds, the demo, the tests themselves)"),
    // The testbed is started by this test, once, before the commands: a second one would only fall back to
    // another port and run until Ctrl-C.
    ("microlambda testbed", "runs until Ctrl-C or for minutes (tests/testbed.rs, tests/scenarios.rs)"),
    // Benchmarks run for minutes and measure the machine: `make bench`.
    ("microlambda-bench", "a benchmark (minutes)"),
    // A 40-second scenario; tests/scenarios.rs plays a scenario end to end.
    ("microlambda-loadgen --scenario", "plays a 40 s scenario (tests/scenarios.rs)"),
    // The nats CLI is not part of set-up; tests/jobs.rs speaks the same JSON from a Python client.
    ("nats ", "the nats CLI is not installed by set-up"),
    // `docker compose` needs a Docker engine and the images: tests/compose_docker.rs (`make test-compose`) runs
    // the mesh as containers; tests/compose.rs runs the same services as processes.
    ("docker", "needs a Docker engine and the images (tests/compose_docker.rs, make test-compose)"),
    // The dashboard serves until Ctrl-C; tests/dashboard.rs runs it on a mesh and reads it, with a browser too.
    ("microlambda dashboard", "serves until Ctrl-C (tests/dashboard.rs)"),
];

/// What a command must show besides exiting 0, as the docs say it.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Its stdout's JSON is what plain CPython's `FILE:FUNC(INPUT)` returns.
    Output { file: &'static str, func: &'static str, input: &'static str },
    /// The same, and `--stats` counts at least `at_least` checkpoints.
    Checkpointed { file: &'static str, func: &'static str, input: &'static str, at_least: usize },
    /// The same, and the checkpoint file exists afterwards.
    Wrote { file: &'static str, func: &'static str, input: &'static str, path: &'static str },
    /// One row per node of the testbed.
    NodesListed,
    /// The README's radio step: every job completed, some moved, one output; the lines are those the README
    /// shows (the number moved may be lower on a machine fast enough to end a job before the step).
    JobsMove,
    /// Its stdout is, line by line as JSON, the stdout of this other command (both must run).
    SameAs(&'static str),
}

/// The commands (exact after [`normalise`], runs of blanks as one) whose documented outcome is checked. Each must be found in the
/// docs: a command edited in the docs must be edited here too.
const EXPECT: &[(&str, Expect)] = &[
    (
        r#"microlambda submit examples/job.py --input '{"n": 1000}' --wait"#,
        Expect::Output { file: "examples/job.py", func: "main", input: r#"{"n": 1000}"# },
    ),
    (
        r#"microlambda submit --name collatz --input '{"n": 200}' --wait"#,
        Expect::Output { file: "examples/job.py", func: "main", input: r#"{"n": 200}"# },
    ),
    ("microlambda watch --once", Expect::NodesListed),
    (
        r#"microlambda-loadgen --radio node-1=step:0.2:0.95:1 --source examples/job.py --input '{"n": 20000}' --rate 8 --jobs 4 --duration-s 2"#,
        Expect::JobsMove,
    ),
    (
        r#"microlambda run examples/job.py:main --input '{"n": 10000}' --preempt-every 20 --stats"#,
        // "checkpointed several times" (docs/CHECKPOINTS.md): half a second at n = 10000 (n = 1000 ran 0.08 s on
        // a quiet machine and took one).
        Expect::Checkpointed { file: "examples/job.py", func: "main", input: r#"{"n": 10000}"#, at_least: 2 },
    ),
    (
        r#"microlambda run examples/job.py --input '{"n": 10000}' --preempt-at 50,120 --checkpoint-dir ckpts/"#,
        Expect::Wrote { file: "examples/job.py", func: "main", input: r#"{"n": 10000}"#, path: "ckpts/job-0001.mlck" },
    ),
    (
        "microlambda resume ckpts/job-0001.mlck",
        Expect::Output { file: "examples/job.py", func: "main", input: r#"{"n": 10000}"# },
    ),
    (
        r#"microlambda run loadgen/jobs/ride.py --input '{"requests": 300}'"#,
        Expect::Output { file: "loadgen/jobs/ride.py", func: "main", input: r#"{"requests": 300}"# },
    ),
    (
        r#"microlambda run loadgen/jobs/ride.py --input '{"requests": 300}' --preempt-every 13 --stats"#,
        Expect::Checkpointed { file: "loadgen/jobs/ride.py", func: "main", input: r#"{"requests": 300}"#, at_least: 1 },
    ),
    // The face session's replies on the mesh are plain CPython's (README, "The paper's workloads").
    (
        r#".venv/bin/python examples/paper/client.py examples/paper/face.py faces null 0 2 '"obama2.jpg"' 3"#,
        Expect::SameAs(
            r#".venv/bin/python examples/paper/local.py examples/paper/face.py faces null '[0, 2, "obama2.jpg", 3]'"#,
        ),
    ),
];

/// The shell commands of a markdown file: (line, command).
fn shell_commands(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_shell = false;
    let mut in_other = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if let Some(info) = line.strip_prefix("```") {
            if in_shell || in_other {
                in_shell = false;
                in_other = false;
            } else if matches!(info.trim(), "sh" | "bash" | "shell") {
                in_shell = true;
            } else {
                in_other = true;
            }
            continue;
        }
        if !in_shell {
            continue;
        }
        let code = strip_comment(raw).trim_end().to_string();
        let (start, mut acc) = pending.take().unwrap_or((i + 1, String::new()));
        if code.trim().is_empty() {
            if !acc.trim().is_empty() {
                out.push((start, acc.trim().to_string()));
            }
            continue;
        }
        match code.strip_suffix('\\') {
            Some(head) => {
                acc.push_str(head);
                acc.push(' ');
                pending = Some((start, acc));
            }
            None => {
                acc.push_str(&code);
                out.push((start, acc.trim().to_string()));
            }
        }
    }
    out
}

/// The line without a shell comment (` #` or a leading `#` outside quotes).
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

/// The command as the test runs it: every spelling of the binaries under test is the name on the test's PATH.
fn normalise(cmd: &str, url: &str) -> String {
    let mut c = cmd.to_string();
    for dir in ["target/release/", "target/debug/", "./target/release/", "./target/debug/"] {
        c = c.replace(&format!("{dir}microlambda"), "microlambda");
    }
    // Compose's client seed and CA (`auth seed client > client.nk`, `auth ca > ca.pem`, docker lines) are, against
    // the testbed, the testbed's client identity and CA, which a client finds without the flags.
    c.replace("nats://127.0.0.1:4222", url).replace(" --nkey client.nk", "").replace(" --tls-ca ca.pem", "")
}

/// A command with every run of blanks as one space, to look it up in [`EXPECT`].
fn squash(cmd: &str) -> String {
    cmd.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn expectation(cmd: &str) -> Option<Expect> {
    EXPECT.iter().find(|(c, _)| squash(c) == squash(cmd)).map(|(_, e)| *e)
}

fn skip_reason(cmd: &str) -> Option<&'static str> {
    SKIP.iter().find(|(prefix, _)| cmd.starts_with(prefix)).map(|(_, why)| *why)
}

/// A scratch directory whose top-level entries link to the repository's.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(ROOT).unwrap().flatten() {
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        std::os::unix::fs::symlink(entry.path(), dir.path().join(&name)).unwrap();
    }
    dir
}

/// The test's PATH: the binaries under test first, then the venv (nats-server, python), then the caller's.
fn bin_dir() -> (tempfile::TempDir, String) {
    let bins = tempfile::tempdir().unwrap();
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_microlambda"));
    std::os::unix::fs::symlink(&exe, bins.path().join("microlambda")).unwrap();
    let loadgen = exe.with_file_name("microlambda-loadgen");
    std::os::unix::fs::symlink(&loadgen, bins.path().join("microlambda-loadgen")).unwrap();
    let path = format!("{}:{ROOT}/.venv/bin:{}", bins.path().display(), std::env::var("PATH").unwrap_or_default());
    (bins, path)
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        microlambda::proc::terminate(self.0.id());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a command printed.
struct Printed {
    stdout: String,
    stderr: String,
}

/// Run `cmd` with `sh -c`; its output when it exits 0, else its exit status and output, or a timeout.
fn run(cmd: &str, cwd: &Path, env: &[(&str, &str)]) -> Result<Printed, String> {
    let (out_path, err_path) = (cwd.join(".docs-test-stdout"), cwd.join(".docs-test-stderr"));
    let (out, err) = (std::fs::File::create(&out_path).unwrap(), std::fs::File::create(&err_path).unwrap());
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd).current_dir(cwd).stdin(Stdio::null()).stdout(out).stderr(err);
    for (k, v) in env {
        c.env(k, v);
    }
    microlambda::proc::die_with_parent(&mut c);
    let mut child = Child(c.spawn().unwrap());
    let start = Instant::now();
    let status = loop {
        if let Ok(Some(s)) = child.0.try_wait() {
            break Some(s);
        }
        if start.elapsed() > TIMEOUT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let printed = Printed {
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    };
    match status {
        Some(s) if s.success() => Ok(printed),
        Some(s) => Err(format!("{s}\n{}{}", printed.stdout, printed.stderr)),
        None => Err(format!("no end within {TIMEOUT:?}\n{}{}", printed.stdout, printed.stderr)),
    }
}

/// What plain CPython returns for `file:func(input)`, as JSON.
fn plain_python(file: &str, func: &str, input: &str) -> Value {
    let script = "import importlib.util, json, sys\n\
                  spec = importlib.util.spec_from_file_location('job', sys.argv[1])\n\
                  m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n\
                  print(json.dumps(getattr(m, sys.argv[2])(json.loads(sys.argv[3]))))";
    let out = microlambda::worker::host::reference_command(format!("{ROOT}/.venv/bin/python"))
        .args(["-c", script, file, func, input])
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(out.status.success(), "plain CPython {file}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The job output a command printed: its stdout's last line that is JSON.
fn printed_output(stdout: &str) -> Option<Value> {
    stdout.lines().rev().find_map(|l| serde_json::from_str(l.trim()).ok())
}

/// `checkpoints: N` of `--stats`.
fn checkpoints(stderr: &str) -> Option<usize> {
    stderr.lines().find_map(|l| l.strip_prefix("checkpoints: ")).and_then(|l| l.split_whitespace().next()?.parse().ok())
}

/// The lines of `text` outside shell blocks that start with `prefix`: output the docs show.
fn documented_lines(text: &str, prefix: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| l.starts_with(prefix)).map(str::to_string).collect()
}

/// `moved N` with N > 0 as `moved >0`: how many were caught by the step depends on the machine's speed.
fn any_moved(line: &str) -> String {
    match line.split_once(" moved ") {
        Some((head, n)) if n.parse::<usize>().is_ok_and(|n| n > 0) => format!("{head} moved >0"),
        _ => line.to_string(),
    }
}

/// Whether `printed` shows what `expect` says; `readme` holds the output the README shows.
fn check(expect: Expect, printed: &Printed, cwd: &Path, readme: &str) -> Result<(), String> {
    let output = |file, func, input| {
        let want = plain_python(file, func, input);
        match printed_output(&printed.stdout) {
            Some(got) if got == want => Ok(()),
            got => Err(format!("printed {got:?}, plain CPython gives {want}")),
        }
    };
    match expect {
        Expect::Output { file, func, input } => output(file, func, input),
        Expect::Checkpointed { file, func, input, at_least } => {
            output(file, func, input)?;
            match checkpoints(&printed.stderr) {
                Some(n) if n >= at_least => Ok(()),
                n => Err(format!("{n:?} checkpoints, at least {at_least} expected:\n{}", printed.stderr)),
            }
        }
        Expect::Wrote { file, func, input, path } => {
            output(file, func, input)?;
            cwd.join(path).is_file().then_some(()).ok_or_else(|| format!("{path} was not written"))
        }
        Expect::NodesListed => {
            let rows = |id: &str| printed.stdout.lines().filter(|l| l.split_whitespace().next() == Some(id)).count();
            match ["node-1", "node-2", "node-3"].iter().all(|id| rows(id) == 1) {
                true => Ok(()),
                false => Err(format!("not one row per node:\n{}", printed.stdout)),
            }
        }
        Expect::JobsMove => {
            let got: Vec<String> =
                documented_lines(&printed.stdout, "loadgen: ").iter().map(|l| any_moved(l)).collect();
            let shown: Vec<String> = documented_lines(readme, "loadgen: ").iter().map(|l| any_moved(l)).collect();
            match !shown.is_empty() && got == shown && shown[0].ends_with("moved >0") {
                true => Ok(()),
                false => Err(format!("printed {got:?}, the README shows {shown:?}")),
            }
        }
        Expect::SameAs(_) => Ok(()),
    }
}

#[test]
fn the_shell_blocks_are_parsed_as_a_reader_would() {
    let md = "x\n```sh\nmake demo   # a demo\n            # more comment\nnats sub 'a#b' \\\n  x # c\n\n```\n```json\n{}\n```\n";
    assert_eq!(shell_commands(md), vec![(3, "make demo".to_string()), (5, "nats sub 'a#b'    x".to_string())]);
    assert_eq!(normalise("target/release/microlambda-bench x", "u"), "microlambda-bench x");
    assert_eq!(skip_reason("microlambda-bench x"), Some("a benchmark (minutes)"));
    assert!(matches!(expectation("microlambda  watch --once"), Some(Expect::NodesListed)));
    assert_eq!(any_moved("loadgen: submitted 4 completed 4 moved 2"), "loadgen: submitted 4 completed 4 moved >0");
    assert_eq!(any_moved("loadgen: submitted 4 completed 4 moved 0"), "loadgen: submitted 4 completed 4 moved 0");
    assert_eq!(checkpoints("x\ncheckpoints: 6  wall: 9 ms\n"), Some(6));
    assert_eq!(printed_output("{\"a\": 1}\nnot json\n"), Some(serde_json::json!({"a": 1})));
}

#[test]
fn every_shell_command_in_the_docs_runs() {
    let mut files = vec![PathBuf::from(ROOT).join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(PathBuf::from(ROOT).join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);

    let dir = scratch();
    let cache = tempfile::tempdir().unwrap();
    let (_bins, path) = bin_dir();
    let cache_s = cache.path().display().to_string();
    let python = format!("{ROOT}/.venv/bin/python");
    let env = [
        ("PATH", path.as_str()),
        ("XDG_CACHE_HOME", cache_s.as_str()),
        ("MICROLAMBDA_PYTHON", python.as_str()),
        ("MICROLAMBDA_LOG", "warn"),
    ];

    // The testbed, as a reader would start it in another terminal.
    let mut tb = Command::new(env!("CARGO_BIN_EXE_microlambda"));
    tb.arg("testbed").current_dir(dir.path()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    for (k, v) in env {
        tb.env(k, v);
    }
    microlambda::proc::die_with_parent(&mut tb);
    let mut tb = Child(tb.spawn().unwrap());
    let mut lines = BufReader::new(tb.0.stdout.take().unwrap()).lines();
    let mut url = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(u) = line.strip_prefix("testbed: NATS at ") {
            url = u.split_whitespace().next().unwrap().to_string();
        }
        if line.contains("nodes up") {
            break;
        }
    }
    assert!(url.starts_with("nats://"), "the testbed did not come up");
    // Keep reading its output, so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));

    let readme = std::fs::read_to_string(&files[0]).unwrap();
    let mut ran = 0;
    let mut failures = Vec::new();
    // The stdout of every command run, by its squashed text (for [`Expect::SameAs`]).
    let mut stdouts = std::collections::HashMap::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let name = file.strip_prefix(ROOT).unwrap_or(file).display().to_string();
        for (line, cmd) in shell_commands(&text) {
            let cmd = normalise(&cmd, &url);
            if let Some(why) = skip_reason(&cmd) {
                eprintln!("{name}:{line}: skipped ({why}): {cmd}");
                continue;
            }
            if cmd.starts_with("export ") {
                // Set-up the reader's shell would keep: the test's environment already holds it.
                eprintln!("{name}:{line}: environment (given to every command): {cmd}");
                continue;
            }
            let t = Instant::now();
            match run(&cmd, dir.path(), &env) {
                Ok(printed) => {
                    let checked = expectation(&cmd).map(|e| check(e, &printed, dir.path(), &readme));
                    match checked {
                        Some(Err(e)) => failures.push(format!("{name}:{line}: {cmd}\nnot as documented: {e}")),
                        _ => eprintln!(
                            "{name}:{line}: ok{} in {:.1}s: {cmd}",
                            if checked.is_some() && !matches!(expectation(&cmd), Some(Expect::SameAs(_))) {
                                ", as documented,"
                            } else {
                                ""
                            },
                            t.elapsed().as_secs_f64()
                        ),
                    }
                    stdouts.insert(squash(&cmd), printed.stdout);
                }
                Err(e) => failures.push(format!("{name}:{line}: {cmd}\n{e}")),
            }
            ran += 1;
        }
    }
    for (cmd, e) in EXPECT {
        let Some(got) = stdouts.get(&squash(cmd)) else {
            failures.push(format!("not in the docs any more (edit EXPECT with the docs): {cmd}"));
            continue;
        };
        if let Expect::SameAs(other) = e {
            // Line by line as JSON: the mesh's replies come through serde (keys sorted), plain CPython's not.
            let json = |out: &str| out.lines().map(|l| serde_json::from_str(l).ok()).collect::<Vec<Option<Value>>>();
            match stdouts.get(&squash(other)) {
                Some(want) if json(want) == json(got) && !got.trim().is_empty() => {}
                want => failures.push(format!("{cmd}\nprinted\n{got}\nwhere {other} printed\n{want:?}")),
            }
        }
    }
    assert!(failures.is_empty(), "{} of {ran} commands failed:\n{}", failures.len(), failures.join("\n\n"));
    assert!(ran >= 8, "only {ran} commands ran: is the parser still finding the blocks?");
}
