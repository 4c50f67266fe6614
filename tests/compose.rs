//! `docker-compose.yml`, run as processes. This test needs no Docker engine (`tests/compose_docker.rs` runs the
//! file as containers, behind `make test-compose`): it reads the file, checks that the image's entrypoint and every
//! service's command are ones the binaries take, and runs each service as a local process — its entrypoint,
//! command and environment, in a directory laid out like the image's `/app` (so each component reads the
//! shipped `configs/`) — with the three `nats` services replaced by one nats-server on a free loopback port.
//! The mesh it describes must work: the leader and the standby placement share one lease, every job the loadgen
//! service submits completes, the dashboard shows the three nodes and the nodes serve their metrics. An address a
//! service listens on in its container (`0.0.0.0:PORT`) becomes a free loopback port here. The mesh is secured as
//! compose makes it: the `auth` service writes the identities into a directory standing for the `auth` volume
//! (`/auth` in a path becomes that directory), the server takes their users, `setup` creates the streams as ops,
//! every process connects as the identity its command names, and a stranger cannot connect. The job user exists
//! in the image only: here jobs run as the test's user (running them as another user is tested by
//! `tests/isolation.rs` and, in the containers, by `tests/compose_docker.rs`).
mod common;

use common::Proc;
use microlambda::bus::{Auth, Bus};
use microlambda::natsd::{NatsServer, ServerOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use yaml_rust2::{Yaml, YamlLoader};

/// One service of the compose file, after YAML merge keys (`<<: *mesh`) are applied.
#[derive(Debug)]
struct Service {
    entrypoint: Option<Vec<String>>,
    command: Vec<String>,
    environment: BTreeMap<String, String>,
    volumes: Vec<String>,
    user: Option<String>,
}

fn strings(y: &Yaml) -> Vec<String> {
    match y {
        Yaml::Array(items) => items.iter().map(|i| i.as_str().expect("a string").to_string()).collect(),
        Yaml::String(s) => s.split_whitespace().map(str::to_string).collect(),
        other => panic!("expected a list of strings, found {other:?}"),
    }
}

/// A service's mapping with its merge key applied (its own keys win).
fn merged(y: &Yaml) -> BTreeMap<String, Yaml> {
    let Yaml::Hash(h) = y else { panic!("a service is a mapping: {y:?}") };
    // A merge key's mapping first (itself merged: `<<: *node` brings `<<: *mesh`), then the service's own keys.
    let mut out = match h.get(&Yaml::String("<<".into())) {
        Some(base) => merged(base),
        None => BTreeMap::new(),
    };
    for (k, v) in h {
        let k = k.as_str().expect("a key");
        if k != "<<" {
            out.insert(k.to_string(), v.clone());
        }
    }
    out
}

fn services(file: &str) -> BTreeMap<String, Service> {
    let docs = YamlLoader::load_from_str(file).expect("docker-compose.yml is YAML");
    let Yaml::Hash(services) = &docs[0]["services"] else { panic!("no services") };
    services
        .iter()
        .map(|(name, y)| {
            let m = merged(y);
            let environment = match m.get("environment") {
                Some(Yaml::Hash(env)) => env
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Yaml::String(s) => s.clone(),
                            Yaml::Integer(i) => i.to_string(),
                            other => panic!("environment value {other:?}"),
                        };
                        (k.as_str().unwrap().to_string(), v)
                    })
                    .collect(),
                None => BTreeMap::new(),
                Some(other) => panic!("environment as a mapping, not {other:?}"),
            };
            let s = Service {
                entrypoint: m.get("entrypoint").map(strings),
                command: m.get("command").map(strings).unwrap_or_default(),
                environment,
                volumes: m.get("volumes").map(strings).unwrap_or_default(),
                user: m.get("user").and_then(Yaml::as_str).map(str::to_string),
            };
            (name.as_str().unwrap().to_string(), s)
        })
        .collect()
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The image's entrypoint, from the Dockerfile's `ENTRYPOINT ["..."]`.
fn image_entrypoint() -> Vec<String> {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let line = dockerfile.lines().rev().find(|l| l.starts_with("ENTRYPOINT ")).expect("an ENTRYPOINT");
    serde_json::from_str(line.trim_start_matches("ENTRYPOINT ")).expect("ENTRYPOINT in exec form")
}

/// Where the image has each program: ours beside the test's build of `microlambda`.
fn program(name: &str) -> PathBuf {
    let ours = Path::new(env!("CARGO_BIN_EXE_microlambda"));
    match name {
        "microlambda" => ours.to_path_buf(),
        "microlambda-loadgen" => ours.with_file_name("microlambda-loadgen"),
        other => panic!("the image has no program {other:?}"),
    }
}

/// The Dockerfile copies `configs/` into the working directory `/app`.
fn app_dir() -> tempfile::TempDir {
    let app = tempfile::tempdir().unwrap();
    let configs = root().join("configs");
    for entry in walk(&configs) {
        let dest = app.path().join("configs").join(entry.strip_prefix(&configs).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &dest).unwrap();
    }
    app
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A path of the `auth` volume (`/auth/...`) in the directory `auth` that stands for it here.
fn in_volume(v: &str, auth: &Path) -> String {
    match v.strip_prefix(AUTH) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{}{rest}", auth.display()),
        _ => v.to_string(),
    }
}

/// Where the compose file mounts the `auth` volume.
const AUTH: &str = "/auth";

/// The service's command as the container would run it, with NATS at `url` instead of the `nats` services and
/// the `auth` volume at `auth`.
fn command(s: &Service, entrypoint: &[String], url: &str, app: &Path, auth: &Path, stdout: Stdio) -> Command {
    let argv: Vec<String> = s
        .entrypoint
        .clone()
        .unwrap_or_else(|| entrypoint.to_vec())
        .into_iter()
        .chain(s.command.clone())
        .map(|a| in_volume(&a, auth))
        .collect();
    let mut cmd = Command::new(program(&argv[0]));
    cmd.args(&argv[1..]).current_dir(app).stdin(Stdio::null()).stdout(stdout).env("MICROLAMBDA_LOG", "warn");
    for (k, v) in &s.environment {
        let v = match k.as_str() {
            "MICROLAMBDA_NATS" => url,
            // One server here: its streams and buckets have one replica (the cluster's three in compose).
            "MICROLAMBDA_NATS_REPLICAS" => "1",
            // The image's job user (uid 10002) is not a user here, nor is the process limit of that user
            // (counted per user: here it would count the test's user's processes).
            "MICROLAMBDA_NODE__LIMITS__RUN_AS_UID"
            | "MICROLAMBDA_NODE__LIMITS__RUN_AS_GID"
            | "MICROLAMBDA_NODE__LIMITS__PROCESSES" => continue,
            // `${VAR:-default}`, as compose fills it with VAR unset.
            _ => v
                .strip_prefix("${")
                .and_then(|r| r.strip_suffix('}'))
                .and_then(|r| r.split_once(":-"))
                .map_or(v.as_str(), |(_, d)| d),
        };
        cmd.env(k, in_volume(v, auth));
    }
    microlambda::proc::die_with_parent(&mut cmd);
    cmd
}

/// [`command`], started.
fn launch(s: &Service, entrypoint: &[String], url: &str, app: &Path, auth: &Path, stdout: Stdio) -> Proc {
    let mut cmd = command(s, entrypoint, url, app, auth, stdout);
    Proc(cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}")))
}

/// [`command`] run to its end, which must be a success: its stdout.
fn run_once(s: &Service, entrypoint: &[String], url: &str, app: &Path, auth: &Path) -> String {
    let out = command(s, entrypoint, url, app, auth, Stdio::piped()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{:?}: {}\n{stdout}\n{}",
        s.command,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn the_compose_mesh_runs_as_processes() {
    let file = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let mut services = services(&file);
    let entrypoint = image_entrypoint();
    assert_eq!(entrypoint, ["microlambda"]);

    // The nats services are a cluster of the image's nats-server with JetStream, routed to each other; here one
    // server of the tests' own stands for them.
    let cluster: Vec<String> = services.keys().filter(|n| n.starts_with("nats")).cloned().collect();
    assert_eq!(cluster, ["nats", "nats-2", "nats-3"]);
    let routes = "nats://nats:6222,nats://nats-2:6222,nats://nats-3:6222";
    for name in &cluster {
        let server = services.remove(name).unwrap();
        assert!(server.volumes.contains(&format!("auth:{AUTH}:ro")), "{name} reads the users: {:?}", server.volumes);
        let argv = server.entrypoint.expect("nats runs nats-server");
        assert_eq!(argv[0], "nats-server");
        let conf = format!("{AUTH}/{}", microlambda::auth::SERVER_CONFIG);
        assert!(argv.windows(2).any(|w| w == ["-c", conf.as_str()]), "the mesh's users: {argv:?}");
        assert!(argv.iter().any(|a| a == "-js"), "JetStream must be on: {argv:?}");
        assert!(argv.windows(2).any(|w| w == ["-n", name.as_str()]), "the server is named as its service: {argv:?}");
        assert!(argv.windows(2).any(|w| w == ["--routes", routes]), "routes to the three servers: {argv:?}");
    }
    // Prometheus (Debian's, not ours) scrapes every service that serves /metrics, and only those.
    services.remove("prometheus").expect("a prometheus service");
    // It only says how a client on the host connects (the port it names is the nats service's).
    let connect = services.remove("connect").expect("a connect service");
    assert!(
        connect.command.concat().contains("nats://127.0.0.1:${MICROLAMBDA_NATS_PORT:-4222}"),
        "{:?}",
        connect.command
    );
    let scrape = std::fs::read_to_string(root().join("configs/prometheus.yml")).unwrap();
    let mut targets: Vec<String> = scrape
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- targets: [").and_then(|t| t.strip_suffix(']')))
        .flat_map(|t| t.split(',').map(|x| x.trim().trim_matches('"').to_string()))
        .collect();
    targets.sort();
    let mut metrics: Vec<String> = services
        .iter()
        .filter(|(_, s)| s.command.windows(2).any(|w| w == ["--metrics-listen", "0.0.0.0:9464"]))
        .map(|(name, _)| format!("{name}:9464"))
        .collect();
    metrics.sort();
    assert_eq!(targets, metrics, "configs/prometheus.yml scrapes every /metrics of the compose mesh");
    // The identities, as the `auth` service makes them into its volume (owner-only) on first start.
    let app = app_dir();
    let volume = tempfile::tempdir().unwrap();
    let auth_dir = volume.path().join("auth");
    let mut auth = services.remove("auth").expect("an auth service");
    assert!(auth.volumes.contains(&format!("auth:{AUTH}")), "{:?}", auth.volumes);
    // JetStream's fsync policy is the user's to give (the server's default unless told), here as
    // `MICROLAMBDA_NATS_SYNC_INTERVAL=always docker compose up` gives it.
    let sync = auth.environment.insert("MICROLAMBDA_NATS_SYNC_INTERVAL".into(), "always".into());
    assert_eq!(sync.as_deref(), Some("${MICROLAMBDA_NATS_SYNC_INTERVAL:-default}"));
    run_once(&auth, &entrypoint, "", app.path(), &auth_dir);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&auth_dir).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700);
    let conf = auth_dir.join(microlambda::auth::SERVER_CONFIG);
    let opts = ServerOptions { config: Some(conf), monitor: true, ..Default::default() };
    let server = NatsServer::start_opts(None, None, &opts).expect("nats-server (run `make setup`)");
    let url = server.url();
    let js = &server.varz().expect("/varz")["jetstream"]["config"];
    assert_eq!(js["sync_always"], serde_json::json!(true), "{js}");
    let ops = Auth {
        nkey: Some(auth_dir.join("ops.nk")),
        tls_ca: Some(auth_dir.join(microlambda::auth::TLS_CA)),
        ..Default::default()
    };
    // No one gets in without an identity of the mesh, nor without trusting its CA (TLS only).
    let no_ca = Auth { tls_ca: None, ..ops.clone() };
    for (who, auth) in [("no identity", Auth { nkey: None, ..ops.clone() }), ("not trusting the CA", no_ca)] {
        let stranger = Bus::connect_as(&url, "stranger", Duration::from_secs(2), &auth).await;
        assert!(stranger.is_err(), "{who} connected");
    }

    // Every other service connects to the three servers and creates R3 streams and buckets.
    let urls = "nats://nats:4222,nats://nats-2:4222,nats://nats-3:4222";
    for (name, s) in &services {
        assert_eq!(s.environment.get("MICROLAMBDA_NATS").map(String::as_str), Some(urls), "{name}");
        assert_eq!(s.environment.get("MICROLAMBDA_NATS_REPLICAS").map(String::as_str), Some("3"), "{name}");
    }
    let loadgen = services.remove("loadgen").expect("a loadgen service");
    // Every process of the mesh reads its identity from the volume, and the nodes run jobs as the job user.
    for (name, s) in &services {
        assert!(s.volumes.contains(&format!("auth:{AUTH}:ro")), "{name}: {:?}", s.volumes);
        let nkey = s.command.windows(2).find(|w| w[0] == "--nkey").map(|w| w[1].clone());
        assert!(nkey.is_some_and(|k| k.starts_with(AUTH)), "{name} connects as one of the mesh's identities");
        let ca = s.environment.get("MICROLAMBDA_TLS_CA").map(String::as_str);
        assert_eq!(ca, Some("/auth/ca.pem"), "{name} trusts the mesh's CA");
        if name.starts_with("node-") {
            assert_eq!(s.user.as_deref(), Some("root"), "{name} starts its jobs as the job user");
            assert_eq!(s.environment.get("MICROLAMBDA_NODE__LIMITS__RUN_AS_UID").map(String::as_str), Some("10002"));
            let key = s.environment.get("MICROLAMBDA_NODE__CHECKPOINT_KEY_FILE").map(String::as_str);
            assert_eq!(key, Some("/auth/mesh.key"), "{name}: the key is a file of the volume, not in the environment");
        }
    }
    // The streams and buckets, made as ops before the other processes start (they may not make them).
    let setup = services.remove("setup").expect("a setup service");
    let said = run_once(&setup, &entrypoint, &url, app.path(), &auth_dir);
    assert!(said.contains("setup:"), "{said}");
    // Where each service listens here, by the port it listens on in its container.
    let mut listens: BTreeMap<(String, String), String> = BTreeMap::new();
    for (name, s) in services.iter_mut() {
        for a in s.command.iter_mut() {
            if let Some(port) = a.strip_prefix("0.0.0.0:") {
                let here = format!("127.0.0.1:{}", common::free_port());
                listens.insert((name.clone(), port.to_string()), here.clone());
                *a = here;
            }
        }
    }
    let mut procs = Vec::new();
    let mut placements = Vec::new();
    for (name, s) in &services {
        let p = launch(s, &entrypoint, &url, app.path(), &auth_dir, Stdio::null());
        if name.starts_with("placement") {
            placements.push(p.pid());
        }
        procs.push(p);
    }
    assert_eq!(placements.len(), 2, "a leader and a standby");
    let nodes = services.keys().filter(|n| n.starts_with("node-")).count();
    assert_eq!(nodes, 3);

    let bus = Bus::connect_as(&url, "compose-test", Duration::from_secs(5), &ops).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(s) = bus.nodes::<microlambda::actors::placement::NodesSnapshot>().await {
            if s.nodes.len() == nodes {
                break;
            }
        }
        assert!(Instant::now() < deadline, "placement did not see the {nodes} nodes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The dashboard shows the nodes; a node serves its metrics.
    let dashboard = listens.get(&("dashboard".into(), "8090".into())).expect("a dashboard service on 8090");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = common::http_get(dashboard, "/api/state").await;
        let state: serde_json::Value = serde_json::from_str(&body).expect("the dashboard's state is JSON");
        if state["nodes"].as_array().is_some_and(|n| n.len() == nodes) {
            break;
        }
        assert!(Instant::now() < deadline, "the dashboard does not show the {nodes} nodes: {state}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = listens.get(&("node-1".into(), "9464".into())).expect("node-1 serves metrics on 9464");
    let (status, text) = common::http_get(metrics, "/metrics").await;
    assert_eq!(status, 200);
    assert!(text.contains("microlambda_node_radio_load{node=\"node-1\"}"), "{text}");

    // One of the two placements leads; the other stands by.
    let holder = bus.lease(Duration::from_millis(1500)).await.unwrap().holder().await.unwrap().expect("a leader");
    let leader: u32 = holder.split('-').nth(1).unwrap().parse().unwrap();
    assert!(placements.contains(&leader), "lease held by {holder}, placements {placements:?}");

    // The loadgen service as the compose file gives it, with its run shortened to a few seconds.
    let mut lg = loadgen;
    let at = lg.command.iter().position(|a| a == "--duration-s").expect("loadgen runs for --duration-s");
    lg.command[at + 1] = "4".into();
    let mut p = launch(&lg, &entrypoint, &url, app.path(), &auth_dir, Stdio::piped());
    let stdout = p.0.stdout.take().unwrap();
    let out = tokio::task::spawn_blocking(move || std::io::read_to_string(stdout).unwrap());
    let out = tokio::time::timeout(Duration::from_secs(60), out).await.expect("loadgen ends").unwrap();
    let status = p.0.wait().unwrap();
    assert!(status.success(), "loadgen: {status}\n{out}");
    let line = out.lines().find(|l| l.starts_with("loadgen: submitted")).unwrap_or_else(|| panic!("{out}"));
    let n: Vec<usize> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let [submitted, accepted, refused, completed, failed, _moved] = n[..] else { panic!("{line}") };
    assert!(submitted >= 40, "{line}");
    assert_eq!((accepted, refused, completed, failed), (submitted, 0, submitted, 0), "{line}");
    drop(procs);
}
