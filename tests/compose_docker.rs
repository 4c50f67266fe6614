//! `docker-compose.yml` as real containers: the image `make images` builds, the mesh up under a compose
//! project of its own (a unique name, NATS published on a free loopback port of the host), a job submitted
//! from the host with the `microlambda` client, its exact output, and the project taken down with its volumes
//! whatever happens. Needs a Docker engine, Compose (`docker compose` or `docker-compose`) and the images:
//! ignored by `make test`, run by `make test-compose` (which builds the images first).
mod common;

use microlambda::bus::Bus;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const IMAGE: &str = "microlambda:dev";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `docker compose` when the plugin is there, else the standalone `docker-compose`.
fn compose_program() -> Vec<String> {
    let plugin = Command::new("docker").args(["compose", "version"]).output();
    if plugin.is_ok_and(|o| o.status.success()) {
        vec!["docker".into(), "compose".into()]
    } else {
        vec!["docker-compose".into()]
    }
}

/// A compose project that is taken down (`down -v`: containers, network, named volumes) when dropped, so a
/// failing assertion or a panic leaves nothing behind.
struct Project {
    program: Vec<String>,
    name: String,
    port: u16,
    /// The mesh's checkpoint key (compose refuses to start the nodes without one).
    key: String,
}

impl Project {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("mlsmoke{}x{nanos}", std::process::id());
        // A free loopback port for the nats service (the host's 4222 may be a testbed's).
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Project { program: compose_program(), name, port, key: microlambda::auth::random_key() }
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new(&self.program[0])
            .args(&self.program[1..])
            .args(["-p", &self.name, "-f"])
            .arg(root().join("docker-compose.yml"))
            .args(args)
            .current_dir(root())
            .env("MICROLAMBDA_NATS_PORT", self.port.to_string())
            .env("MICROLAMBDA_CHECKPOINT_KEY", &self.key)
            .output()
            .unwrap_or_else(|e| panic!("{:?}: {e}", self.program));
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "compose {args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What the containers said, for the failure's report.
            let logs = self.run(&["logs", "--no-color", "--tail", "40"]);
            eprintln!("{}", String::from_utf8_lossy(&logs.stdout));
        }
        let down = self.run(&["down", "-v", "--remove-orphans", "-t", "3"]);
        if !down.status.success() {
            eprintln!("compose down -v failed: {}", String::from_utf8_lossy(&down.stderr));
        }
    }
}

#[tokio::test]
#[ignore = "needs Docker, Compose and the images: make test-compose"]
async fn a_job_submitted_from_the_host_runs_in_the_compose_mesh() {
    let image = Command::new("docker").args(["image", "inspect", IMAGE]).output().expect("docker");
    assert!(image.status.success(), "no image {IMAGE}: run `make images` (or `make test-compose`)");

    let project = Project::new();
    // The mesh without the loadgen service (its scenario runs a minute); --no-build: the image is given.
    project.ok(&["up", "-d", "--no-build", "nats", "placement", "placement-2", "node-1", "node-2", "node-3"]);

    let bus = Bus::connect(&project.url(), "compose-docker-test", Duration::from_secs(5)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(s) = bus.nodes::<microlambda::actors::placement::NodesSnapshot>().await {
            if s.nodes.len() == 3 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "placement did not see the 3 nodes within 90 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The README's command, against the published port, from the host.
    let source = std::fs::read_to_string(root().join("examples/job.py")).unwrap();
    let input = serde_json::json!({"n": 1000});
    let out = Command::new(env!("CARGO_BIN_EXE_microlambda"))
        .current_dir(root())
        .args(["submit", "examples/job.py", "--input", &input.to_string(), "--wait", "--nats", &project.url()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "submit: {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(got, common::reference_output(&source, &input));

    // Jobs run as the image's unprivileged user.
    let uid = project.ok(&["exec", "-T", "node-1", "id", "-u"]);
    assert_eq!(uid.trim(), "10001");
}
