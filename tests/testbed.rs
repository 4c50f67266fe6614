//! `microlambda testbed` starts its own nats-server, placement and three nodes, and stops all of them on
//! SIGTERM and on Ctrl-C (SIGINT to its process group).
use microlambda::proc::children_of;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn alive(pid: u32) -> bool {
    // A zombie has been stopped; it only waits to be reaped.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
        .unwrap_or(false)
}

/// A testbed whose URL file goes to `cache` (not the user's cache, where a running testbed may have its own) and
/// whose stderr goes to `log`, in a process group of its own as a shell's foreground job when `own_group`; it
/// and its NATS URL once placement and the three nodes are up.
fn start(cache: &Path, log: &Path, own_group: bool) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_microlambda"));
    cmd.args(["testbed", "--config", "configs/testbed.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("MICROLAMBDA_LOG", "warn")
        .env("XDG_CACHE_HOME", cache)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap());
    if own_group {
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    }
    microlambda::proc::die_with_parent(&mut cmd);
    let mut tb = cmd.spawn().unwrap();
    let mut lines = BufReader::new(tb.stdout.take().unwrap()).lines();
    let mut url = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(u) = line.strip_prefix("testbed: NATS at ") {
            url = u.split_whitespace().next().unwrap().to_string();
        }
        if line.contains("placement and 3 nodes up") {
            break;
        }
        assert!(Instant::now() < deadline, "testbed not up");
    }
    let said = || std::fs::read_to_string(log).unwrap_or_default();
    assert!(url.starts_with("nats://127.0.0.1:"), "no URL ({url:?}); the testbed said:\n{}", said());
    // Keep reading its output: a closed pipe would fail its next line.
    std::thread::spawn(move || lines.for_each(drop));
    (tb, url)
}

/// Those of `kids` still running 3 s after the testbed ended.
fn left_running(kids: Vec<u32>) -> Vec<u32> {
    let t = Instant::now();
    while kids.iter().any(|&k| alive(k)) && t.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    kids.into_iter().filter(|&k| alive(k)).collect()
}

#[test]
fn testbed_runs_its_own_mesh_and_stops_every_child_on_sigterm() {
    let cache = tempfile::tempdir().unwrap();
    let url_file = cache.path().join("microlambda/nats-url");
    let (mut tb, url) = start(cache.path(), &cache.path().join("testbed.log"), false);
    // The clients find it there while it runs.
    let written = std::fs::read_to_string(&url_file).unwrap();
    assert_eq!(written.lines().next(), Some(url.as_str()), "{written}");
    // Its server speaks TLS only, with the testbed's own CA, which a client on this machine trusts without flags.
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let mut info = String::new();
    BufReader::new(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap()).read_line(&mut info).unwrap();
    assert!(info.contains("\"tls_required\":true"), "{info}");
    assert!(cache.path().join("microlambda/testbed-auth/ca.pem").is_file());
    let watch = Command::new(env!("CARGO_BIN_EXE_microlambda"))
        .args(["watch", "--once"])
        .env("XDG_CACHE_HOME", cache.path())
        .output()
        .unwrap();
    assert!(watch.status.success(), "watch: {}", String::from_utf8_lossy(&watch.stderr));
    let kids = children_of(tb.id());
    // nats-server, placement, three nodes (the nodes' workers are their own children).
    assert_eq!(kids.len(), 5, "{kids:?}");
    // The nodes' warm workers, once they are up.
    std::thread::sleep(Duration::from_millis(500));
    let workers: Vec<u32> = kids.iter().flat_map(|&k| children_of(k)).collect();
    let kids: Vec<u32> = kids.into_iter().chain(workers).collect();
    microlambda::proc::terminate(tb.id());
    let status = tb.wait().unwrap();
    assert!(status.success(), "{status}");
    let left = left_running(kids);
    assert!(!url_file.exists(), "the URL file outlives the testbed");
    assert!(left.is_empty(), "still running: {left:?}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "nats-server still listening");
}

/// Ctrl-C in a terminal sends SIGINT to the whole foreground process group, not to the testbed alone. The testbed
/// must stop within a second or two, placement and nodes before NATS (so placement releases its lease instead of
/// waiting on a server that is gone, then being killed after 3 s), and leave nothing running.
#[test]
fn ctrl_c_to_the_terminals_process_group_stops_the_testbed_promptly() {
    for attempt in 0..3 {
        let cache = tempfile::tempdir().unwrap();
        let log = cache.path().join("testbed.log");
        let (mut tb, _) = start(cache.path(), &log, true);
        let kids = children_of(tb.id());
        assert_eq!(kids.len(), 5, "{kids:?}");
        // A moment of running, as a user would have: jobs' workers warm, placement leading.
        std::thread::sleep(Duration::from_millis(1500));
        let t = Instant::now();
        // SAFETY: kill(2) with a negative pid signals the process group the test made for the testbed.
        let rc = unsafe { libc::kill(-(tb.id() as i32), libc::SIGINT) };
        assert_eq!(rc, 0);
        let status = tb.wait().unwrap();
        let took = t.elapsed();
        let stderr = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(status.success(), "attempt {attempt}: {status}\n{stderr}");
        assert!(took < Duration::from_millis(2500), "attempt {attempt}: Ctrl-C took {took:?}\n{stderr}");
        assert!(!stderr.contains("did not stop"), "attempt {attempt}: {stderr}");
        let left = left_running(kids);
        assert!(left.is_empty(), "attempt {attempt}: still running: {left:?}");
        eprintln!("attempt {attempt}: stopped {took:?} after Ctrl-C");
    }
}
