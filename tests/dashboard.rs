//! `microlambda dashboard` on a secured mesh of real processes (a nats-server, placement, three nodes, CPython
//! workers): its JSON state and its event stream show every node with its load and jobs and a job's migration
//! after a radio spike; and a real browser (Debian's chromium, headless) shows the three nodes, then the
//! migration as it happens in a page opened before the spike (read over the DevTools protocol), and in a page
//! loaded after it (`--dump-dom`).
mod common;

use common::{http_get, job_on_n1, until, Mesh, Proc};
use microlambda::wire::{EventKind, JobEvent};
use serde_json::{json, Value};
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A job that runs ~3 s, mostly sleeping: long enough to be seen on its node and moved.
const SLEEPER: &str = r#"
import time

def main(x):
    acc = 0
    for i in range(x["steps"]):
        acc += i
        time.sleep(0.02)
    return acc
"#;

const FAST: &[(&str, &str)] =
    &[("PLACEMENT__COOLDOWN_MS", "300"), ("PLACEMENT__LEASE_MS", "1000"), ("NODE__CHECKPOINT_INTERVAL_MS", "300")];

/// The dashboard as ops on `mesh`, on a free port; returns the process and its HOST:PORT.
fn start_dashboard(mesh: &Mesh) -> (Proc, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_microlambda"));
    cmd.args(["dashboard", &format!("--nats={}", mesh.url()), "--listen=127.0.0.1:0"])
        .env("MICROLAMBDA_LOG", "warn")
        .env("MICROLAMBDA_NKEY", mesh.auth.as_ref().expect("a secured mesh").nkey_file("ops"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    microlambda::proc::die_with_parent(&mut cmd);
    let mut child = cmd.spawn().expect("spawn microlambda dashboard");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("its first line");
    let url = line.strip_prefix("dashboard: http://").unwrap_or_else(|| panic!("first line: {line:?}"));
    let addr = url.split('/').next().expect("HOST:PORT").to_string();
    (Proc(child), addr)
}

async fn state(addr: &str) -> Value {
    let (status, body) = http_get(addr, "/api/state").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/api/state is not JSON ({e}): {body}"))
}

/// `/api/state` once `ok` holds for it, or panic with the last one after `limit`.
async fn state_until(addr: &str, limit: Duration, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let s = state(addr).await;
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "not within {limit:?}: {s:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn node<'a>(s: &'a Value, id: &str) -> &'a Value {
    s["nodes"].as_array().and_then(|n| n.iter().find(|n| n["node"] == id)).unwrap_or(&Value::Null)
}

fn radio_of(s: &Value, id: &str) -> Option<f64> {
    node(s, id)["report"]["radio_load"].as_f64()
}

/// A mesh of three nodes where a job runs on n1 (n3 hot, n2 cooled to take the job when n1 spikes), and the
/// dashboard watching it.
async fn mesh_with_a_job_on_n1(
    job_id: &str,
) -> (Mesh, microlambda::bus::Bus, microlambda::bus::Subscriber, Proc, String) {
    let mesh = Mesh::start_secure(&[("n1", 0.1), ("n2", 0.9), ("n3", 0.9)], &[], FAST).await;
    let bus = mesh.bus().await;
    let (dash, addr) = start_dashboard(&mesh);
    let body = json!({"function": {"source": SLEEPER}, "input": {"steps": 150}, "job_id": job_id}).to_string();
    let events = job_on_n1(&mesh, &bus, job_id, &body).await;
    (mesh, bus, events, dash, addr)
}

/// Read the stream until `want` is in what was read.
async fn read_until(stream: &mut tokio::net::TcpStream, seen: &mut String, want: &str, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 8192];
    while !seen.contains(want) {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => panic!("{want:?} not on the stream within {limit:?}: {seen}"),
        }
    }
}

fn moved_to_n2(e: &JobEvent) -> bool {
    matches!(&e.kind, EventKind::Started { node, .. } if node == "n2")
}

#[tokio::test]
async fn the_state_and_the_stream_show_every_node_its_load_and_jobs_and_a_migration() {
    let (_mesh, bus, mut events, _dash, addr) = mesh_with_a_job_on_n1("dash-1").await;
    // Every node with its radio load (n2 cooled by now), a history to plot, and the job on n1.
    let s = state_until(&addr, Duration::from_secs(10), |s| {
        radio_of(s, "n1") == Some(0.1)
            && radio_of(s, "n2") == Some(0.1)
            && radio_of(s, "n3") == Some(0.9)
            && node(s, "n1")["report"]["jobs"].as_array().is_some_and(|j| j.iter().any(|j| j["job_id"] == "dash-1"))
    })
    .await;
    for id in ["n1", "n2", "n3"] {
        let n = node(&s, id);
        assert_eq!(n["gone"], false, "{s:#}");
        assert!(n["history"].as_array().is_some_and(|h| h.len() >= 2), "{id}: {s:#}");
        let cpu = n["report"]["cpu_headroom"].as_f64().expect("cpu headroom");
        assert!((0.0..=1.0).contains(&cpu), "{cpu}");
    }
    assert_eq!(s["migrations"], json!([]), "{s:#}");

    // The stream: the whole state first, then the changes; the spike's move shows as it happens.
    let mut stream = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    stream.write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n").await.unwrap();
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "event: state\n", Duration::from_secs(5)).await;
    assert!(seen.contains("content-type: text/event-stream"), "{seen}");
    read_until(&mut stream, &mut seen, "event: load\n", Duration::from_secs(5)).await;

    bus.publish_radio("n1", 0.95).await.unwrap();
    until(&mut events, Duration::from_secs(15), moved_to_n2).await;
    read_until(&mut stream, &mut seen, "event: migrated\n", Duration::from_secs(5)).await;
    let frame = seen.split("event: migrated\n").nth(1).and_then(|f| f.split("\n\n").next()).expect("a frame");
    let data: Value = serde_json::from_str(frame.strip_prefix("data: ").expect("data")).expect("JSON");
    assert_eq!((&data["job_id"], &data["from"], &data["to"]), (&json!("dash-1"), &json!("n1"), &json!("n2")), "{data}");
    assert!(data["bytes"].as_u64().is_some_and(|b| b > 0), "{data}");

    let s = state_until(&addr, Duration::from_secs(5), |s| radio_of(s, "n1") == Some(0.95)).await;
    let m = &s["migrations"][0];
    assert_eq!((&m["job_id"], &m["from"], &m["to"]), (&json!("dash-1"), &json!("n1"), &json!("n2")), "{s:#}");
    // The job finishes on n2, and the count of completed jobs says so.
    until(&mut events, Duration::from_secs(20), JobEvent::is_final).await;
    state_until(&addr, Duration::from_secs(5), |s| s["jobs_completed"] == 1).await;

    // Anything else is a clear 404; the page itself is one self-contained document.
    let (status, body) = http_get(&addr, "/nope").await;
    assert_eq!((status, body.trim()), (404, "no page at /nope"));
    let (status, page) = http_get(&addr, "/").await;
    assert_eq!(status, 200);
    for outside in ["src=\"http", "href=\"http", "<link", "@import", "cdn"] {
        assert!(!page.contains(outside), "the page loads something from elsewhere ({outside})");
    }
}

/// Debian's chromium, or a failure that says how to get it.
fn chromium() -> String {
    for name in ["chromium", "chromium-browser"] {
        if Command::new(name).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok() {
            return name.to_string();
        }
    }
    panic!("chromium is not installed: run `make setup-browser` (apt-get install chromium) for the browser test");
}

/// The DOM a headless chromium renders from `url` once it has loaded (at most `limit_ms`), and a screenshot.
/// (`--virtual-time-budget` never ends on this page: its event stream stays open, so the network is never idle.)
fn render(browser: &str, url: &str, limit_ms: u64, screenshot: &std::path::Path) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let common = [
        "--headless".to_string(),
        "--disable-gpu".into(),
        "--no-sandbox".into(),
        "--hide-scrollbars".into(),
        "--window-size=1400,900".into(),
        format!("--user-data-dir={}", profile.path().display()),
        format!("--timeout={limit_ms}"),
    ];
    let run = |extra: &str| {
        let mut cmd = Command::new(browser);
        cmd.args(&common).arg(extra).arg(url).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
        microlambda::proc::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("run chromium");
        let mut stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut stdout, &mut s).map(|_| s)
        });
        let deadline = Instant::now() + Duration::from_millis(limit_ms) + Duration::from_secs(30);
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait for chromium") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium {extra} did not finish within {limit_ms} ms and 30 s more");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "chromium {extra} failed: {status}");
        reader.join().expect("reader").expect("chromium's output")
    };
    run(&format!("--screenshot={}", screenshot.display()));
    run("--dump-dom")
}

/// A headless chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: commands on its
/// fd 3, answers on its fd 4, each a JSON text ended by a NUL), with one page open: enough to read the live DOM
/// as the page updates itself, and to take a screenshot.
struct Browser {
    _proc: Proc,
    _profile: tempfile::TempDir,
    to: std::fs::File,
    from: std::fs::File,
    pending: Vec<u8>,
    next_id: u64,
    session: String,
}

impl Browser {
    fn open(browser: &str, url: &str) -> Browser {
        use std::os::fd::FromRawFd;
        use std::os::unix::process::CommandExt;
        let profile = tempfile::tempdir().expect("profile dir");
        let (mut to_child, mut from_child) = ([0; 2], [0; 2]);
        // SAFETY: pipe2 writes two fds into each array; they are owned below.
        assert_eq!(unsafe { libc::pipe2(to_child.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        assert_eq!(unsafe { libc::pipe2(from_child.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let (child_in, child_out) = (to_child[0], from_child[1]);
        let mut cmd = Command::new(browser);
        cmd.args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            "--window-size=1400,900",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls between fork and exec: the pipe ends become fds 3 and 4 (moved
        // above 10 first, so that neither dup2 overwrites the other), without close-on-exec.
        unsafe {
            cmd.pre_exec(move || {
                let a = libc::fcntl(child_in, libc::F_DUPFD, 10);
                let b = libc::fcntl(child_out, libc::F_DUPFD, 10);
                if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        microlambda::proc::die_with_parent(&mut cmd);
        let child = cmd.spawn().expect("run chromium");
        // SAFETY: each fd is open and owned by exactly one File from here on.
        let (to, from) = unsafe {
            libc::close(child_in);
            libc::close(child_out);
            (std::fs::File::from_raw_fd(to_child[1]), std::fs::File::from_raw_fd(from_child[0]))
        };
        let mut b = Browser {
            _proc: Proc(child),
            _profile: profile,
            to,
            from,
            pending: Vec::new(),
            next_id: 0,
            session: String::new(),
        };
        let target = b.call("Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"].as_str().expect("a target").to_string();
        let attached = b.call("Target.attachToTarget", json!({"targetId": target, "flatten": true}));
        b.session = attached["sessionId"].as_str().expect("a session").to_string();
        b.call("Page.navigate", json!({"url": url}));
        b
    }

    /// Send a command (to the page once attached) and return its result, skipping events.
    fn call(&mut self, method: &str, params: Value) -> Value {
        use std::io::{Read, Write};
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to chromium");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            while let Some(end) = self.pending.iter().position(|&b| b == 0) {
                let one: Vec<u8> = self.pending.drain(..=end).collect();
                let v: Value = serde_json::from_slice(&one[..end]).expect("DevTools JSON");
                if v["id"] == id {
                    assert!(v.get("error").is_none(), "{method}: {v}");
                    return v["result"].clone();
                }
            }
            let left = deadline.saturating_duration_since(Instant::now()).as_millis() as i32;
            assert!(left > 0, "chromium did not answer {method} within 30 s");
            let mut fd =
                libc::pollfd { fd: std::os::fd::AsRawFd::as_raw_fd(&self.from), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut fd, 1, left) };
            let mut buf = [0u8; 65536];
            match self.from.read(&mut buf) {
                Ok(0) => panic!("chromium closed its DevTools pipe"),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("reading chromium: {e}"),
            }
        }
    }

    fn dom(&mut self) -> String {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": "document.documentElement.outerHTML", "returnByValue": true}),
        );
        r["result"]["value"].as_str().unwrap_or_default().to_string()
    }

    /// The live DOM once `ok` holds for it, or panic with the last one after `limit`.
    fn dom_until(&mut self, limit: Duration, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let dom = self.dom();
            if ok(&dom) {
                return dom;
            }
            assert!(Instant::now() < deadline, "the page does not show {what} within {limit:?}: {dom}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// How the page shows a node's card.
fn card(id: &str) -> String {
    format!("<article class=\"node\" data-node=\"{id}\">")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_shows_the_three_nodes_and_a_migration_after_a_radio_spike() {
    let browser = chromium();
    let (_mesh, bus, mut events, _dash, addr) = mesh_with_a_job_on_n1("dash-b").await;
    state_until(&addr, Duration::from_secs(10), |s| s["nodes"].as_array().is_some_and(|n| n.len() == 3)).await;
    let url = format!("http://{addr}/");

    // A page opened before the spike shows the three nodes, its stream open, and then the move as it happens.
    let mut page = tokio::task::block_in_place(|| {
        let mut page = Browser::open(&browser, &url);
        page.dom_until(Duration::from_secs(15), "the three nodes, live", |d| {
            ["n1", "n2", "n3"].iter().all(|id| d.contains(&card(id)))
                && d.contains(">live<")
                && d.contains("data-job=\"dash-b\"")
                && !d.contains("class=\"migration")
        });
        page
    });
    bus.publish_radio("n1", 0.95).await.unwrap();
    until(&mut events, Duration::from_secs(15), moved_to_n2).await;
    tokio::task::block_in_place(|| {
        page.dom_until(Duration::from_secs(10), "the migration", |d| {
            d.contains("data-job=\"dash-b\" data-from=\"n1\" data-to=\"n2\"") && d.contains("n1 → n2")
        })
    });
    drop(page);

    // A page loaded afterwards (`--dump-dom`) shows it too; and a screenshot to look at.
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let show = shot.clone();
    let dom = tokio::task::spawn_blocking(move || {
        // The page opens its event stream as it loads: a dump may come just before the stream says it is open.
        let mut dom = String::new();
        for _ in 0..3 {
            dom = render(&browser, &url, 10_000, &shot);
            if dom.contains(">live<") {
                break;
            }
        }
        dom
    })
    .await
    .expect("chromium ran");
    eprintln!("screenshot: {}", show.display());
    for id in ["n1", "n2", "n3"] {
        assert!(dom.contains(&card(id)), "node {id} not shown: {dom}");
    }
    assert!(dom.contains("data-job=\"dash-b\" data-from=\"n1\" data-to=\"n2\""), "no migration entry: {dom}");
    assert!(dom.contains("n1 → n2"), "{dom}");
    assert!(dom.contains(">live<"), "the stream did not open: {dom}");
}
