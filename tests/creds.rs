//! `--creds` (a decentralised-JWT `.creds` file: the user's JWT and nkey seed). A missing or broken file is one
//! clear line naming it; and on a real nats-server in operator mode (an operator, an account with JetStream and
//! a user, each JWT signed here with the `nkeys` crate, no `nsc`), placement, a node and `microlambda submit`
//! connect with their `.creds` files and run a job to its exact output, while no credentials or another
//! operator's user are refused.
mod common;

use common::{reference_output, spawn_env, Proc, WALKER};
use microlambda::natsd::NatsServer;
use nkeys::KeyPair;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Unpadded base64url, as JWTs are written.
fn b64url(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A NATS JWT about `subject`, signed by `issuer` (nats-server checks the Ed25519 signature against the
/// issuer's public key, and the issuer against the trust chain: operator, account, user).
fn jwt(issuer: &KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    let header = b64url(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let iat = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({"jti": format!("{name}{iat}"), "iat": iat, "iss": issuer.public_key(), "name": name,
        "sub": subject, "nats": nats});
    let body = format!("{header}.{}", b64url(claims.to_string().as_bytes()));
    let sig = issuer.sign(body.as_bytes()).unwrap();
    format!("{body}.{}", b64url(&sig))
}

/// An operator-mode server configuration trusting a new operator, with one account (JetStream enabled) preloaded;
/// and a `.creds` file for a user of that account.
struct Operator {
    conf: PathBuf,
    creds: PathBuf,
}

fn operator_mode(dir: &Path) -> Operator {
    let operator = KeyPair::new_operator();
    let account = KeyPair::new_account();
    let user = KeyPair::new_user();
    let op_jwt = jwt(&operator, &operator.public_key(), "op", json!({"type": "operator", "version": 2}));
    let unlimited = json!({"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": true,
        "conn": -1, "leaf": -1, "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1});
    let acc_jwt =
        jwt(&operator, &account.public_key(), "mesh", json!({"limits": unlimited, "type": "account", "version": 2}));
    // The server's own account (JetStream needs one): no JetStream, no users here.
    let system = KeyPair::new_account();
    let sys_jwt = jwt(&operator, &system.public_key(), "SYS", json!({"type": "account", "version": 2}));
    let user_jwt = jwt(
        &account,
        &user.public_key(),
        "mesh-user",
        json!({"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2}),
    );
    let conf = dir.join("operator.conf");
    std::fs::write(
        &conf,
        format!(
            "operator: {op_jwt}\nsystem_account: {sys}\nresolver: MEMORY\n\
             resolver_preload: {{\n  {acc}: {acc_jwt}\n  {sys}: {sys_jwt}\n}}\n",
            acc = account.public_key(),
            sys = system.public_key()
        ),
    )
    .unwrap();
    let creds = dir.join("user.creds");
    std::fs::write(
        &creds,
        format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            user.seed().unwrap()
        ),
    )
    .unwrap();
    Operator { conf, creds }
}

/// `microlambda ARGS` with the environment given: exit status, stdout, stderr.
fn microlambda(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let cache = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_microlambda"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("MICROLAMBDA_LOG", "off")
        .env("XDG_CACHE_HOME", cache.path())
        .env_remove("MICROLAMBDA_NATS")
        .env_remove("MICROLAMBDA_CREDS")
        .env_remove("MICROLAMBDA_NKEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), s(&out.stdout), s(&out.stderr))
}

#[test]
fn a_missing_or_broken_creds_file_is_one_line_naming_it() {
    let nats = NatsServer::start(None).expect("nats-server");
    let tmp = tempfile::tempdir().unwrap();
    let broken = tmp.path().join("broken.creds");
    std::fs::write(&broken, "not a creds file\n").unwrap();
    let missing = tmp.path().join("missing.creds");
    for file in [&missing, &broken] {
        let f = file.display().to_string();
        let (code, _, err) =
            microlambda(&["status", "some-job", "--nats", &nats.url(), "--creds", &f], &[("RUST_BACKTRACE", "1")]);
        assert_eq!(code, Some(1), "{err}");
        assert_eq!(err.lines().count(), 1, "not one line: {err}");
        assert!(err.starts_with("microlambda: cannot connect to NATS: credentials file"), "{err}");
        assert_eq!(err.matches(&f).count(), 1, "{f} not named once: {err}");
    }
    // The variable says the same.
    let f = missing.display().to_string();
    let (code, _, err) = microlambda(&["status", "some-job", "--nats", &nats.url()], &[("MICROLAMBDA_CREDS", &f)]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("credentials file") && err.contains(&f), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mesh_on_an_operator_mode_server_runs_a_job_with_creds_files() {
    let tmp = tempfile::tempdir().unwrap();
    let op = operator_mode(tmp.path());
    let nats = NatsServer::start_with(None, None, Some(&op.conf)).expect("nats-server in operator mode");
    let url = nats.url();
    let creds = op.creds.display().to_string();

    // No credentials, or a user another operator signed: refused.
    let stranger = operator_mode(&tmp.path().join("other").tap_mkdir());
    for env in [vec![], vec![("MICROLAMBDA_CREDS", stranger.creds.display().to_string())]] {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, _, err) = microlambda(&["status", "some-job", "--nats", &url], &env);
        assert_eq!(code, Some(1), "{env:?}: {err}");
        assert!(err.contains("authorization violation") || err.contains("refused"), "{env:?}: {err}");
    }

    // Placement and a node, each with the user's .creds (MICROLAMBDA_CREDS); they make the buckets.
    let key = microlambda::auth::random_key();
    let env = |_: ()| {
        vec![
            ("MICROLAMBDA_CREDS".to_string(), creds.clone()),
            ("MICROLAMBDA_NODE__CHECKPOINT_KEY".to_string(), key.clone()),
        ]
    };
    let _placement: Proc = spawn_env(&["placement".into(), format!("--nats={url}")], &env(()));
    let _node: Proc =
        spawn_env(&["node".into(), format!("--nats={url}"), "--id=n1".into(), "--radio-load=0.1".into()], &env(()));

    // The client: `--creds` on the command line.
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("walker.py");
    std::fs::write(&job, WALKER).unwrap();
    let input = common::walker_input(3, 4, 0.01);
    let args = ["submit", job.to_str().unwrap(), "--input", &input.to_string(), "--wait", "--nats", &url, "--creds"];
    let mut args: Vec<&str> = args.to_vec();
    args.push(&creds);
    // Placement may not have made the buckets or seen the node yet: a refusal then is retried.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let out = loop {
        let (code, out, err) = microlambda(&args, &[]);
        if code == Some(0) {
            break out;
        }
        assert!(std::time::Instant::now() < deadline, "submit --creds failed: {err}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let got: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(got, reference_output(WALKER, &input));
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}
