//! Bad input to the command-line tools: one line on stderr, `<tool>: <what>: <why>`, each cause said once,
//! exit status 1, no Rust backtrace (even with `RUST_BACKTRACE=1`, which a developer's shell may have).
use std::path::PathBuf;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn loadgen() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_microlambda")).with_file_name("microlambda-loadgen")
}

/// Run `exe args` in the repository with no testbed to find; its stderr, after checking it is one line that
/// starts with `prefix` and exits 1.
fn fails(exe: &PathBuf, args: &[&str], prefix: &str) -> String {
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(exe)
        .args(args)
        .current_dir(ROOT)
        .env("RUST_BACKTRACE", "1")
        .env("XDG_CACHE_HOME", cache.path())
        .env("MICROLAMBDA_LOG", "off")
        .env_remove("MICROLAMBDA_NATS")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: not one line:\n{err}");
    assert!(err.starts_with(prefix), "{args:?}: {err}");
    err
}

fn once(text: &str, part: &str) {
    assert_eq!(text.matches(part).count(), 1, "{part:?} not said exactly once in: {text}");
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_missing_file_is_named_once_with_its_reason() {
    let ml = PathBuf::from(env!("CARGO_BIN_EXE_microlambda"));
    let err = fails(&ml, &["submit", "no/such/job.py", "--wait"], "microlambda: cannot read no/such/job.py: ");
    once(&err, "No such file or directory");
    let err = fails(&ml, &["testbed", "--config", "no/such.toml"], "microlambda: config file no/such.toml: ");
    once(&err, "no/such.toml");
    let err = fails(&ml, &["testbed", "--scenario", "no/such.toml"], "microlambda: cannot read scenario no/such.toml");
    once(&err, "no/such.toml");
    once(&err, "No such file or directory");

    let err = fails(&loadgen(), &["--source", "no/such.py"], "microlambda-loadgen: cannot read no/such.py: ");
    once(&err, "No such file or directory");
    let err =
        fails(&loadgen(), &["--scenario", "no/such.toml"], "microlambda-loadgen: cannot read scenario no/such.toml");
    once(&err, "no/such.toml");
    once(&err, "No such file or directory");
}

#[test]
fn no_server_at_the_url_says_so_once() {
    let url = format!("nats://127.0.0.1:{}", closed_port());
    let ml = PathBuf::from(env!("CARGO_BIN_EXE_microlambda"));
    for (exe, args, tool) in [
        (&ml, vec!["submit", "examples/job.py", "--nats", &url], "microlambda"),
        (&loadgen(), vec!["--nats", &url, "--duration-s", "1"], "microlambda-loadgen"),
    ] {
        // A refused TCP connection is not retried: the error comes at once (it took 10 s of retries).
        let t = std::time::Instant::now();
        let err = fails(exe, &args, &format!("{tool}: cannot connect to NATS: {url}: no NATS server answers there"));
        assert!(t.elapsed() < std::time::Duration::from_secs(3), "{tool}: {:?} to refuse", t.elapsed());
        once(&err, "cannot connect");
        once(&err, &url);
        once(&err, "connection refused");
    }
}

#[test]
fn bad_json_input_is_refused_before_anything_runs() {
    let ml = PathBuf::from(env!("CARGO_BIN_EXE_microlambda"));
    let err = fails(
        &ml,
        &["submit", "examples/job.py", "--input", "{n: 1}"],
        "microlambda: --input is not valid JSON: {n: 1}",
    );
    once(&err, "{n: 1}");
    // `run` says so too, before any worker starts (it reported the job's JSONDecodeError), and so does the
    // loadgen, before it connects.
    let err = fails(&ml, &["run", "examples/job.py", "--input", "{x"], "microlambda: --input is not valid JSON: {x: ");
    once(&err, "{x");
    let err = fails(&loadgen(), &["--input", "{x"], "microlambda-loadgen: --input is not valid JSON: {x: ");
    once(&err, "{x");
    // `@FILE` reads the JSON from FILE: a missing file is named, a bad one shown by its start only.
    let err =
        fails(&ml, &["run", "examples/job.py", "--input", "@no/such.json"], "microlambda: cannot read no/such.json");
    once(&err, "No such file or directory");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, format!("[{}", "1, ".repeat(1000))).unwrap();
    let arg = format!("@{}", bad.display());
    let err = fails(&ml, &["run", "examples/job.py", "--input", &arg], "microlambda: --input is not valid JSON: [1, ");
    assert!(err.len() < 400, "the whole input repeated: {err}");
}

#[test]
fn an_input_read_from_a_file_runs_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("input.json");
    std::fs::write(&f, r#"{"n": 300}"#).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_microlambda"))
        .args(["run", "examples/job.py", "--input", &format!("@{}", f.display())])
        .current_dir(ROOT)
        .env("MICROLAMBDA_KEY", "cli-test")
        .output()
        .unwrap();
    let want = Command::new(env!("CARGO_BIN_EXE_microlambda"))
        .args(["run", "examples/job.py", "--input", r#"{"n": 300}"#])
        .current_dir(ROOT)
        .env("MICROLAMBDA_KEY", "cli-test")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&want.stdout));
    assert!(!out.stdout.is_empty());
}

#[test]
fn the_testbeds_nats_flag_is_the_server_it_runs_on_not_a_lookup() {
    let out = Command::new(env!("CARGO_BIN_EXE_microlambda")).args(["testbed", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let nats = help.lines().find(|l| l.trim_start().starts_with("--nats")).unwrap_or_else(|| panic!("{help}"));
    assert!(nats.contains("external NATS server to run the mesh on"), "{nats}");
    assert!(nats.contains("not read here"), "{nats}");
    // The clients keep their lookup order.
    let out = Command::new(env!("CARGO_BIN_EXE_microlambda")).args(["submit", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("default: env MICROLAMBDA_NATS, config `nats`"));
}

#[test]
fn output_to_a_reader_that_went_away_is_no_panic() {
    // `microlambda run job.py | head -c 1`: the pipe is closed before the output is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_microlambda"))
        .args(["run", "examples/job.py", "--input", r#"{"n": 3000}"#])
        .current_dir(ROOT)
        .env("RUST_BACKTRACE", "1")
        .env("MICROLAMBDA_PYTHON", format!("{ROOT}/.venv/bin/python"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

#[test]
fn a_bad_or_busy_listen_address_is_said_before_any_connection_is_tried() {
    let ml = PathBuf::from(env!("CARGO_BIN_EXE_microlambda"));
    // No server at the URL: the address is refused first, whatever the connection would have said.
    let nats = format!("--nats=nats://127.0.0.1:{}", closed_port());
    let err = fails(&ml, &["dashboard", &nats, "--listen", "localhost:x"], "microlambda: --listen \"localhost:x\"");
    once(&err, "is not HOST:PORT");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let err = fails(&ml, &["dashboard", &nats, "--listen", &addr], &format!("microlambda: cannot listen on {addr}"));
    once(&err, "Address already in use");
    let err =
        fails(&ml, &["node", &nats, "--metrics-listen", "9464"], "microlambda: config: node.metrics_listen \"9464\"");
    once(&err, "is not HOST:PORT");
    let err =
        fails(&ml, &["placement", &nats, "--metrics-listen", &addr], &format!("microlambda: cannot listen on {addr}"));
    once(&err, "placement.metrics_listen");
    once(&err, "Address already in use");
}
