//! Every shell command in README.md and docs/*.md runs as written, so the docs cannot drift from the code.
//!
//! The test reads every fenced `sh`/`bash`/`shell` block, joins `\` continuations, drops comments, and runs
//! each command with `sh -c` (a timeout each) in a scratch directory that links the repository's top-level
//! directories (so `ckpts/` and other outputs land there), against a `microlambda testbed` it starts itself:
//! the commands find it without `--nats`, through the URL file the testbed writes (an `XDG_CACHE_HOME` of
//! the test's own). `microlambda`, `target/release/microlambda` and `target/debug/microlambda` all mean the
//! binary under test, likewise for `microlambda-loadgen`; `nats://127.0.0.1:4222` means the testbed's URL.
//! Commands that cannot run in a test are skipped by [`SKIP`], each with its reason.
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
    c.replace("nats://127.0.0.1:4222", url)
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

/// Run `cmd` with `sh -c`; its exit status and output, or a timeout.
fn run(cmd: &str, cwd: &Path, env: &[(&str, &str)]) -> Result<String, String> {
    let out_path = cwd.join(".docs-test-output");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd).current_dir(cwd).stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out);
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
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(output),
        Some(s) => Err(format!("{s}\n{output}")),
        None => Err(format!("no end within {TIMEOUT:?}\n{output}")),
    }
}

#[test]
fn the_shell_blocks_are_parsed_as_a_reader_would() {
    let md = "x\n```sh\nmake demo   # a demo\n            # more comment\nnats sub 'a#b' \\\n  x # c\n\n```\n```json\n{}\n```\n";
    assert_eq!(shell_commands(md), vec![(3, "make demo".to_string()), (5, "nats sub 'a#b'    x".to_string())]);
    assert_eq!(normalise("target/release/microlambda-bench x", "u"), "microlambda-bench x");
    assert_eq!(skip_reason("microlambda-bench x"), Some("a benchmark (minutes)"));
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

    let mut ran = 0;
    let mut failures = Vec::new();
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
                Ok(_) => eprintln!("{name}:{line}: ok in {:.1}s: {cmd}", t.elapsed().as_secs_f64()),
                Err(e) => failures.push(format!("{name}:{line}: {cmd}\n{e}")),
            }
            ran += 1;
        }
    }
    assert!(failures.is_empty(), "{} of {ran} commands failed:\n{}", failures.len(), failures.join("\n\n"));
    assert!(ran >= 8, "only {ran} commands ran: is the parser still finding the blocks?");
}
