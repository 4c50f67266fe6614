//! A secured mesh (docs/SECURITY.md) on a real nats-server with real node and placement processes: every
//! identity connects as its own nkey user with its role's permissions, and the mesh still runs and moves
//! jobs; each forgery of issue 13 is refused by the server (a permissions violation) and never reaches the
//! subject it aimed at; a node cannot use another node's subjects.
mod common;

use common::{final_record, reference_output, submit, until, Mesh};
use futures::StreamExt;
use microlambda::bus::{Bus, Subscriber};
use microlambda::wire::{DeployedFunction, EventKind, FunctionRef, JobEvent, JobRecord, LoadReport, NodeCommand};

fn source(s: &str) -> FunctionRef {
    FunctionRef::inline(s)
}
use serde_json::json;
use std::time::Duration;

const FAST: &[(&str, &str)] =
    &[("PLACEMENT__COOLDOWN_MS", "300"), ("PLACEMENT__LEASE_MS", "1000"), ("NODE__CHECKPOINT_INTERVAL_MS", "300")];

const COUNTER: &str = r#"
import time
def main(x):
    total = 0
    for i in range(x["steps"]):
        total += i * i % 97
        if i % 50 == 0:
            time.sleep(0.02)
    return {"total": total}
"#;

#[tokio::test]
async fn a_secured_mesh_runs_and_moves_jobs_with_each_process_as_its_own_user() {
    let mesh = Mesh::start_secure(&[("n1", 0.1), ("n2", 0.9)], &[], FAST).await;
    let client = mesh.bus_as("client").await;
    let radio = mesh.bus_as("radio-n1").await;
    let input = json!({"steps": 4000});
    let want = reference_output(COUNTER, &input);
    let body = json!({"function": {"source": COUNTER}, "input": input, "job_id": "sec-1"}).to_string();
    // The client sees its job's events and submits while n2 is hot; n2's radio source cools it, n1's heats
    // n1 up; the job moves to n2 (checkpoint to JetStream, adopt between nodes, record writes: each process
    // under its own permissions).
    mesh.ready(&client, 2).await;
    let mut events = client.subscribe_events("sec-1").await.unwrap();
    assert_eq!(submit(&client, &body).await["status"], "accepted");
    until(&mut events, Duration::from_secs(15), |e| matches!(&e.kind, EventKind::Started { node, .. } if node == "n1"))
        .await;
    let radio2 = mesh.bus_as("radio-n2").await;
    radio2.publish_radio("n2", 0.1).await.unwrap();
    radio2.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    radio.publish_radio("n1", 0.95).await.unwrap();
    until(&mut events, Duration::from_secs(15), |e| matches!(&e.kind, EventKind::Started { node, .. } if node == "n2"))
        .await;
    let rec = final_record(&client, "sec-1", Duration::from_secs(30)).await;
    assert_eq!(rec["state"], "completed", "{rec}");
    assert_eq!(rec["output"], want);
    // A client that may deploy does.
    let f = DeployedFunction {
        name: "sq".into(),
        source: "def main(x):\n    return x * x\n".into(),
        entry: "main".into(),
        deployed_ms: 1,
    };
    client.deploy(&f).await.expect("the client identity may deploy");
    for b in [&client, &radio] {
        assert!(b.refusals().is_empty(), "{:?}", b.refusals());
    }
}

const TALLY: &str = r#"
def tally(start):
    total = start
    while True:
        x = yield total
        total += x
"#;

#[tokio::test]
async fn a_session_runs_on_a_secured_mesh_as_the_client_identity() {
    let mesh = Mesh::start_secure(&[("n1", 0.1), ("n2", 0.1)], &[], FAST).await;
    let client = mesh.bus_as("client").await;
    mesh.ready(&client, 2).await;
    let mut events = client.subscribe_events("sec-session").await.unwrap();
    let body = json!({"function": {"source": TALLY, "entry": "tally"}, "input": 5, "job_id": "sec-session",
                      "session": true});
    assert_eq!(submit(&client, &body.to_string()).await["status"], "accepted");
    let mut want = 5;
    for (n, x) in [(0u64, 0), (1, 3), (2, 4)] {
        if n > 0 {
            let req = json!({"session": "sec-session", "input": x}).to_string();
            let r: serde_json::Value = client.session_request_raw(req.into_bytes().into()).await.unwrap();
            assert_eq!(r["n"], n, "{r}");
            want += x;
        }
        let evs = until(&mut events, Duration::from_secs(30), |e| matches!(e.kind, EventKind::Reply { .. })).await;
        let Some(JobEvent { kind: EventKind::Reply { reply, .. }, .. }) = evs.last() else { unreachable!() };
        assert_eq!((reply.n, reply.output.clone()), (n, Some(json!(want))), "{evs:#?}");
    }
    assert!(client.refusals().is_empty(), "{:?}", client.refusals());
}

/// A request the server drops (a refused publish is never answered): give up soon, the refusal is what counts.
async fn dropped<T>(request: impl std::future::Future<Output = Result<T, microlambda::bus::BusError>>) {
    let r = tokio::time::timeout(Duration::from_millis(500), request).await;
    assert!(!matches!(r, Ok(Ok(_))), "a refused request was answered");
}

/// The `job_id` of every event received on `sub` within `limit`.
async fn job_ids_seen(sub: &mut Subscriber, limit: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, sub.next()).await {
        out.push(serde_json::from_slice::<JobEvent>(&m.payload).expect("event JSON").job_id);
    }
    out
}

#[tokio::test]
async fn two_tenants_see_and_touch_only_their_own_jobs_sessions_and_functions() {
    let mesh = Mesh::start_secure(&[("n1", 0.1), ("n2", 0.1)], &[], FAST).await;
    let a = mesh.bus_as("client").await;
    let b = mesh.bus_as("tenant-b").await;
    // The tenant is the user's public key, which the server's permissions are written for.
    assert_eq!(Some(a.tenant()), mesh.auth.as_ref().unwrap().public_key("client"));
    assert_ne!(a.tenant(), b.tenant());
    mesh.ready(&a, 2).await;
    let (ta, tb) = (a.tenant().to_string(), b.tenant().to_string());

    // Both deploy a function of one name; neither may overwrite the other's.
    let f = |source: &str| DeployedFunction {
        name: "f".into(),
        source: source.into(),
        entry: "main".into(),
        deployed_ms: 1,
    };
    a.deploy(&f("def main(x):\n    return x * x\n")).await.expect("a deploys its f");
    b.deploy(&f("def main(x):\n    return x + 1000\n")).await.expect("b deploys its f");
    assert!(a.claiming(&tb).deploy(&f("def main(x):\n    return 'pwned'\n")).await.is_err());
    wait_refused(&a, &format!("$KV.ml_functions.{tb}.f")).await;

    // Each follows its own events; every other tenant's are refused by the server.
    let mut a_events = a.subscribe_all_events().await.unwrap();
    let mut b_events = b.subscribe_all_events().await.unwrap();
    let _spy = a.claiming(&tb).subscribe_events("job-b").await;
    wait_refused(&a, &format!("jobs.events.{tb}.job-b")).await;
    let _spy_all = a.subscribe_every_tenants_events().await;
    wait_refused(&a, "jobs.events.*.*").await;
    // Records: no read of the bucket, no watch of its writes, no status through the other's subject.
    dropped(a.record("job-b")).await;
    wait_refused(&a, "$JS.API.DIRECT.GET.KV_ml_jobs").await;
    let _watch = a.observe_internal().await;
    wait_refused(&a, "$KV.ml_jobs.>").await;

    // a's job and session, b's job: the same function name runs each tenant's own function.
    let tally = json!({"function": {"source": TALLY, "entry": "tally"}, "input": 5, "job_id": "sess-a",
                       "session": true});
    assert_eq!(submit(&a, &tally.to_string()).await["status"], "accepted");
    let job = |id: &str| json!({"function": {"name": "f"}, "input": 7, "job_id": id}).to_string();
    assert_eq!(submit(&a, &job("job-a")).await["status"], "accepted");
    assert_eq!(submit(&b, &job("job-b")).await["status"], "accepted");
    // An id another tenant holds is refused, not answered as that job's duplicate.
    let taken = submit(&b, &job("job-a")).await;
    assert_eq!(taken["error"]["code"], "job_id_taken", "{taken}");
    assert_eq!(submit(&a, &job("job-a")).await["duplicate"], true);

    // b cannot request into a's session: not through a's subject (refused), not through its own (unknown).
    let into_a = json!({"session": "sess-a", "input": 1000}).to_string();
    dropped(b.claiming(&ta).session_request_raw::<serde_json::Value>(into_a.clone().into_bytes().into())).await;
    wait_refused(&b, &format!("sessions.request.{ta}")).await;
    let r: serde_json::Value = b.session_request_raw(into_a.into_bytes().into()).await.unwrap();
    assert_eq!(r["error"]["code"], "unknown_session", "{r}");
    // Nor ask a's job's status.
    dropped(b.claiming(&ta).status::<serde_json::Value>(br#"{"job_id": "job-a"}"#.to_vec().into())).await;
    wait_refused(&b, &format!("jobs.status.{ta}")).await;
    let st: serde_json::Value = b.status(br#"{"job_id": "job-a"}"#.to_vec().into()).await.unwrap();
    assert_eq!(st["error"]["code"], "not_found", "{st}");

    // a's session takes a's requests only: its first request is number 1, and the tally has no 1000 in it.
    let req = json!({"session": "sess-a", "input": 3}).to_string();
    let r: serde_json::Value = a.session_request_raw(req.into_bytes().into()).await.unwrap();
    assert_eq!(r["n"], 1, "{r}");

    // Both jobs complete exactly, each with its tenant's function; each record names its tenant.
    let rec_a = final_record(&a, "job-a", Duration::from_secs(30)).await;
    let rec_b = final_record(&b, "job-b", Duration::from_secs(30)).await;
    assert_eq!((&rec_a["state"], &rec_a["output"], &rec_a["tenant"]), (&json!("completed"), &json!(49), &json!(ta)));
    assert_eq!((&rec_b["state"], &rec_b["output"], &rec_b["tenant"]), (&json!("completed"), &json!(1007), &json!(tb)));
    let replies = until(
        &mut a_events,
        Duration::from_secs(30),
        |e| matches!(&e.kind, EventKind::Reply { reply, .. } if reply.n == 1),
    )
    .await;
    let outputs: Vec<_> = replies
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Reply { reply, .. } if e.job_id == "sess-a" => Some((reply.n, reply.output.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(outputs, vec![(0, Some(json!(5))), (1, Some(json!(8)))]);
    // Each saw events of its own jobs only.
    let mut a_ids: Vec<String> = replies.iter().map(|e| e.job_id.clone()).collect();
    a_ids.extend(job_ids_seen(&mut a_events, Duration::from_millis(300)).await);
    assert!(a_ids.iter().all(|id| id == "job-a" || id == "sess-a"), "{a_ids:?}");
    let b_ids = job_ids_seen(&mut b_events, Duration::from_millis(300)).await;
    assert!(!b_ids.is_empty() && b_ids.iter().all(|id| id == "job-b"), "{b_ids:?}");
    // b's function is still b's.
    let ops = mesh.bus_as("ops").await;
    let (fb, _) = ops.function(&tb, "f").await.unwrap().expect("b's f");
    assert!(fb.source.contains("1000"), "{}", fb.source);
    assert!(b.refusals().iter().all(|r| r.contains(&ta)), "{:?}", b.refusals());
}

/// Everything published on the subjects a forgery aims at, seen by a plain connection as the ops user.
async fn observer(mesh: &Mesh) -> (async_nats::Client, Vec<Subscriber>) {
    let seed = microlambda::bus::Auth::read_seed(&mesh.auth.as_ref().unwrap().nkey_file("ops")).unwrap();
    let ops = async_nats::ConnectOptions::with_nkey(seed).connect(mesh.url()).await.unwrap();
    let mut subs = Vec::new();
    for s in ["node.>", "radio.>", "placement.>", "$KV.>", "ml.>", "$O.>"] {
        subs.push(ops.subscribe(s).await.unwrap());
    }
    ops.flush().await.unwrap();
    (ops, subs)
}

/// The subjects the observer saw within `limit`.
async fn seen(subs: &mut [Subscriber], limit: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let mut all = futures::stream::select_all(subs.iter_mut());
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, all.next()).await {
        out.push(m.subject.to_string());
    }
    out
}

fn load_report(node: &str) -> LoadReport {
    serde_json::from_value(json!({"node": node, "ts": 1, "cpu_headroom": 1.0, "radio_load": 0.0,
        "mem_available_bytes": 1u64 << 34, "jobs_running": 0, "slots": 64}))
    .unwrap()
}

fn refused(bus: &Bus, subject: &str) -> bool {
    bus.refusals().iter().any(|r| r.contains("Permissions Violation") && r.contains(subject))
}

/// Wait up to 2 s for the server to tell `bus` that `subject` was refused.
async fn wait_refused(bus: &Bus, subject: &str) {
    for _ in 0..100 {
        if refused(bus, subject) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no permissions violation for {subject}: {:?}", bus.refusals());
}

#[tokio::test]
async fn a_clients_forgeries_are_refused_by_the_server() {
    let mesh = Mesh::nats_secure(&["n1", "n2"]).await;
    let (_ops, mut subs) = observer(&mesh).await;
    let client = mesh.bus_as("client").await;
    let short = Duration::from_millis(300);

    // A forged evacuate of n1's jobs (their checkpoints would go to the forger's node).
    let evacuate = NodeCommand::Evacuate { moves: Vec::new() };
    assert!(client.command("n1", &evacuate, short).await.is_err());
    wait_refused(&client, "node.ctl.n1").await;
    // A fake node advertising itself to get other clients' jobs.
    let _ = client.publish_load(&load_report("evil")).await;
    wait_refused(&client, "node.load.evil").await;
    // Driving evacuations with radio load.
    let _ = client.publish_radio("n1", 0.99).await;
    wait_refused(&client, "radio.load.n1").await;
    // Forged job records and a blocked leader lease.
    let rec = JobRecord::queued("forged", source("x"), json!(null), 0, None);
    assert!(client.put_record(&rec).await.is_err());
    wait_refused(&client, "$KV.ml_jobs.forged").await;
    // A source stored under another source's digest (a node also checks what it fetches against the digest).
    let sha256 = microlambda::wire::source_sha256("def main(x):\n    return x\n");
    assert!(client.put_source(&sha256, "def main(x):\n    return 'forged'\n").await.is_err());
    wait_refused(&client, &format!("$KV.ml_sources.{sha256}")).await;
    let lease = client.lease(Duration::from_millis(1500)).await.unwrap();
    assert!(lease.acquire("evil").await.is_err());
    wait_refused(&client, "$KV.ml_lease.placement").await;
    // Stealing checkpoints in flight.
    let _ = client.serve_adopt("n2").await;
    wait_refused(&client, "node.adopt.n2").await;
    // None of it reached its subject.
    let got = seen(&mut subs, Duration::from_millis(300)).await;
    assert!(got.is_empty(), "{got:?}");
    // The same command from placement does reach n1: the observer would have seen a forgery that got through.
    let placement = mesh.bus_as("placement").await;
    let _ = placement.command("n1", &evacuate, short).await;
    let got = seen(&mut subs, Duration::from_millis(300)).await;
    assert_eq!(got, vec!["node.ctl.n1".to_string()]);
}

#[tokio::test]
async fn a_client_without_the_deploy_right_cannot_deploy() {
    let mesh = Mesh::nats_secure(&["n1"]).await;
    let viewer = mesh.bus_as("viewer").await;
    let f = DeployedFunction {
        name: "evil".into(),
        source: "def main(x):\n    return 1\n".into(),
        entry: "main".into(),
        deployed_ms: 1,
    };
    assert!(viewer.deploy(&f).await.is_err());
    wait_refused(&viewer, &format!("$KV.ml_functions.{}.evil", viewer.tenant())).await;
    let ops = mesh.bus_as("ops").await;
    assert!(ops.function(viewer.tenant(), "evil").await.unwrap().is_none());
}

#[tokio::test]
async fn a_node_and_a_radio_source_cannot_use_another_nodes_subjects() {
    let mesh = Mesh::nats_secure(&["n1", "n2"]).await;
    let (_ops, mut subs) = observer(&mesh).await;
    let n1 = mesh.bus_as("node-n1").await;
    n1.publish_load(&load_report("n2")).await.unwrap();
    wait_refused(&n1, "node.load.n2").await;
    let _ = n1.serve_assignments("n2").await;
    wait_refused(&n1, "node.run.n2").await;
    let _ = n1.serve_commands("n2").await;
    wait_refused(&n1, "node.ctl.n2").await;
    let radio = mesh.bus_as("radio-n1").await;
    radio.publish_radio("n2", 0.99).await.unwrap();
    wait_refused(&radio, "radio.load.n2").await;
    assert!(seen(&mut subs, Duration::from_millis(300)).await.is_empty());
    // Their own subjects are theirs.
    n1.publish_load(&load_report("n1")).await.unwrap();
    radio.publish_radio("n1", 0.5).await.unwrap();
    let mut got = seen(&mut subs, Duration::from_millis(300)).await;
    got.sort();
    assert_eq!(got, vec!["node.load.n1".to_string(), "radio.load.n1".to_string()]);
}

#[tokio::test]
async fn wrong_or_missing_credentials_cannot_connect() {
    let mesh = Mesh::nats_secure(&["n1"]).await;
    // Refused credentials end the connection attempt at once, saying so (not after the 10 s a server that is not
    // there yet gets).
    let t = std::time::Instant::now();
    let none = Bus::connect_as(&mesh.url(), "anon", Duration::from_secs(1), &Default::default()).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(none.to_string().contains("the server refused this identity"), "{none}");
    // A key the server does not know.
    let dir = tempfile::tempdir().unwrap();
    let stranger =
        microlambda::auth::AuthDir::create(dir.path(), &[("x".into(), microlambda::bus::Role::Ops)]).unwrap();
    let err = Bus::connect_as(&mesh.url(), "x", Duration::from_secs(1), &stranger.auth("x")).await.unwrap_err();
    assert!(err.message.contains("refused"), "{err}");
}

/// A node process given no key, or the old public default, refuses to start (its exit code and message).
#[test]
fn a_node_refuses_to_start_with_no_key_or_the_public_default() {
    for key in ["", microlambda::config::PUBLIC_CHECKPOINT_KEY] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_microlambda"));
        // No server needed: the key is checked before connecting (a node that did not would wait here).
        cmd.args(["node", "--nats=nats://127.0.0.1:1", "--id=n1"])
            .env("MICROLAMBDA_NODE__CHECKPOINT_KEY", key)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        microlambda::proc::die_with_parent(&mut cmd);
        let mut child = common::Proc(cmd.spawn().unwrap());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = child.0.try_wait().unwrap() {
                break s;
            }
            assert!(std::time::Instant::now() < deadline, "a node with key {key:?} started");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(!status.success());
        assert!(err.contains("node.checkpoint_key"), "{err}");
    }
}

/// `openssl` with `args` in `dir`, which must succeed.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA, and a server and a client certificate it signed (the server's for 127.0.0.1), in `dir`.
fn certificates(dir: &std::path::Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=ml-test-ca", "-days", "2"],
        ]
        .concat(),
    );
    for (name, ext) in [("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")] {
        let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
        openssl(dir, &[&["req"][..], &ec, &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={name}")]].concat());
        std::fs::write(dir.join(format!("{name}.ext")), format!("{ext}\n")).unwrap();
        let extfile = format!("{name}.ext");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &extfile,
            ],
        );
    }
}

#[tokio::test]
async fn tls_the_server_is_verified_and_a_client_certificate_is_required_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    certificates(d);
    let conf = d.join("tls.conf");
    let p = |f: &str| d.join(f).display().to_string();
    std::fs::write(
        &conf,
        format!(
            "tls {{ cert_file: {:?}, key_file: {:?}, ca_file: {:?}, verify: true }}\n",
            p("server.pem"),
            p("server.key"),
            p("ca.pem")
        ),
    )
    .unwrap();
    let nats = microlambda::natsd::NatsServer::start_with(None, None, Some(&conf)).expect("nats-server with TLS");
    let t = Duration::from_secs(2);
    let ca = microlambda::bus::Auth { tls_ca: Some(d.join("ca.pem")), ..Default::default() };
    let mutual = microlambda::bus::Auth {
        tls_cert: Some(d.join("client.pem")),
        tls_key: Some(d.join("client.key")),
        ..ca.clone()
    };
    // The server's certificate checks against the CA, and the server accepts the client's certificate.
    let bus = Bus::connect_as(&nats.url(), "tls", t, &mutual).await.expect("mutual TLS");
    assert!(bus.is_connected());
    // Without a client certificate the server (verify: true) refuses.
    // (Each refused connection differs from the accepted one above in that one file only.)
    assert!(Bus::connect_as(&nats.url(), "no-cert", t, &ca).await.is_err(), "connected without a client certificate");
    // A server whose certificate does not chain to the CA given is refused by the client: here the CA is the
    // client's own certificate, which signed nothing.
    let wrong = microlambda::bus::Auth { tls_ca: Some(d.join("client.pem")), ..mutual.clone() };
    assert!(Bus::connect_as(&nats.url(), "wrong-ca", t, &wrong).await.is_err(), "connected to an unverified server");
}

/// The mesh's own TLS material (`auth init --tls-hosts`, as compose makes it): the server requires TLS with a
/// certificate from the mesh's CA, made for the hosts given; a client that trusts that CA connects, one that
/// does not (no CA given, or another mesh's) is refused; made again with the same hosts nothing changes, with
/// new hosts the server's certificate is made again by the same CA, which clients keep trusting.
#[tokio::test]
async fn the_mesh_makes_its_own_tls_material_and_clients_must_trust_its_ca() {
    use microlambda::auth::{mesh_identities, AuthDir, ServerSettings};
    let tmp = tempfile::tempdir().unwrap();
    let ids = mesh_identities(&["n1".into()]);
    let hosts =
        |h: &[&str]| ServerSettings { tls_hosts: h.iter().map(|s| s.to_string()).collect(), ..Default::default() };
    let dir = tmp.path().join("auth");
    let d = AuthDir::create_with(&dir, &ids, &hosts(&["nats", "127.0.0.1"])).unwrap();
    let ca = d.tls_ca().expect("a CA");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let (ca_pem, server_pem) = (read("ca.pem"), read("server.pem"));
    let nats = microlambda::natsd::NatsServer::start_with(None, None, Some(&d.server_config())).expect("nats-server");
    let t = Duration::from_secs(2);
    let ops = d.auth("ops");
    assert_eq!(ops.tls_ca.as_ref(), Some(&ca), "an identity of the directory trusts its CA");
    assert!(Bus::connect_as(&nats.url(), "tls", t, &ops).await.expect("TLS with the mesh's CA").is_connected());
    // The right user, without the mesh's CA: the server's certificate is not trusted, and the error says so
    // at once (async-nats alone says "IO error" and tries again forever).
    let t0 = std::time::Instant::now();
    let no_ca = microlambda::bus::Auth { tls_ca: None, ..d.auth("ops") };
    let e = Bus::connect_as(&nats.url(), "no-ca", t, &no_ca).await.expect_err("connected without the CA");
    assert!(e.to_string().contains("the server requires TLS: give --tls-ca"), "{e}");
    let other = AuthDir::create_with(&tmp.path().join("other"), &ids, &hosts(&["nats", "127.0.0.1"])).unwrap();
    let wrong = microlambda::bus::Auth { tls_ca: other.tls_ca(), ..d.auth("ops") };
    let e = Bus::connect_as(&nats.url(), "other-ca", t, &wrong).await.expect_err("connected trusting another CA");
    assert!(e.to_string().contains("TLS certificate was not accepted"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(8), "two refusals took {:?}", t0.elapsed());
    drop(nats);
    // Made again: the same hosts keep everything; new hosts, a new server certificate from the same CA.
    AuthDir::create_with(&dir, &ids, &hosts(&["nats", "127.0.0.1"])).unwrap();
    assert_eq!((read("ca.pem"), read("server.pem")), (ca_pem.clone(), server_pem.clone()));
    let d = AuthDir::create_with(&dir, &ids, &hosts(&["nats", "nats-2", "127.0.0.1"])).unwrap();
    assert_eq!(read("ca.pem"), ca_pem);
    assert_ne!(read("server.pem"), server_pem);
    let nats = microlambda::natsd::NatsServer::start_with(None, None, Some(&d.server_config())).expect("nats-server");
    assert!(Bus::connect_as(&nats.url(), "tls-again", t, &ops).await.expect("the same CA").is_connected());
    // A server certificate for other hosts only is refused by the client (its name is checked).
    let d = AuthDir::create_with(&dir, &ids, &hosts(&["nats"])).unwrap();
    drop(nats);
    let nats = microlambda::natsd::NatsServer::start_with(None, None, Some(&d.server_config())).expect("nats-server");
    assert!(Bus::connect_as(&nats.url(), "wrong-host", t, &ops).await.is_err(), "127.0.0.1 is not a host it names");
}

/// A key rotation on a running mesh: a node started with a new key and the old one as its previous key
/// restores a checkpoint the old key signed, and the job ends exactly.
#[tokio::test]
async fn a_rotated_node_restores_checkpoints_signed_with_the_previous_key() {
    let mut mesh = Mesh::nats_secure(&["n1", "n2"]).await;
    mesh.env.extend(FAST.iter().map(|(k, v)| (format!("MICROLAMBDA_{k}"), v.to_string())));
    let old = mesh.auth.as_ref().unwrap().mesh_key().unwrap();
    mesh.start_placement();
    mesh.start_node("n1", 0.1, &[]);
    let client = mesh.bus_as("client").await;
    mesh.ready(&client, 1).await;
    let input = json!({"steps": 8000});
    let want = reference_output(COUNTER, &input);
    let body = json!({"function": {"source": COUNTER}, "input": input, "job_id": "rot-1"}).to_string();
    let mut events = client.subscribe_events("rot-1").await.unwrap();
    assert_eq!(submit(&client, &body).await["status"], "accepted");
    let ck = until(
        &mut events,
        Duration::from_secs(15),
        |e| matches!(&e.kind, EventKind::Checkpointed { node, mode, .. } if node == "n1" && mode == "continue"),
    )
    .await;
    let EventKind::Checkpointed { seq, .. } = ck.last().unwrap().kind.clone() else { unreachable!() };
    // n2 signs with a new key and still accepts the old one; n1, the only node on the old key, dies.
    let new = microlambda::auth::random_key();
    mesh.env.push(("MICROLAMBDA_NODE__CHECKPOINT_KEY".into(), new));
    mesh.env.push(("MICROLAMBDA_NODE__PREVIOUS_CHECKPOINT_KEY".into(), old));
    mesh.start_node("n2", 0.1, &[]);
    mesh.ready(&client, 2).await;
    mesh.node("n1").kill();
    let evs = until(&mut events, Duration::from_secs(30), JobEvent::is_final).await;
    assert_eq!(evs.last().unwrap().kind, EventKind::Completed { node: "n2".into(), output: want });
    let resumed = evs.iter().find_map(|e| match &e.kind {
        EventKind::Started { node, resumed_from } if node == "n2" => Some(*resumed_from),
        _ => None,
    });
    let from = resumed.flatten().unwrap_or_else(|| panic!("not resumed from a checkpoint: {evs:#?}"));
    assert!(from >= seq, "resumed from {from}, {seq} was committed under the old key");
}
