//! The mesh's identities on a secured nats-server: one nkey user per role instance (client, each node,
//! placement, each radio-load source, ops), the server configuration that gives each the subjects of its
//! role ([`crate::bus::permissions`]), and the mesh's checkpoint key. Everything lives in one directory that
//! only its owner can read (0700, files 0600); made once, reused by later starts.
//!
//! Authentication and authorization are nats-server's own (server-config users with nkeys: the server keeps
//! only public keys and checks a signature of its nonce); this module only writes its configuration.
use crate::bus::{permissions, Auth, Role};
use crate::natsd::SyncInterval;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The server configuration's file name inside an [`AuthDir`].
pub const SERVER_CONFIG: &str = "nats-server.conf";
/// The mesh's checkpoint key's file name inside an [`AuthDir`].
pub const MESH_KEY: &str = "mesh.key";
/// The mesh's certificate authority (PEM) inside an [`AuthDir`] made with TLS hosts: what clients trust
/// (`--tls-ca`).
pub const TLS_CA: &str = "ca.pem";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: {problem}")]
    Bad { path: String, problem: String },
    #[error("nkey: {0}")]
    Nkey(String),
    #[error("TLS certificate: {0}")]
    Tls(#[from] rcgen::Error),
}

/// How the servers of an [`AuthDir`] run beyond their users: JetStream's fsync policy, and the host names
/// and addresses clients reach them at (none: no TLS; some: the directory holds a CA and a server
/// certificate for them, and the servers require TLS).
#[derive(Debug, Clone, Default)]
pub struct ServerSettings {
    pub sync: SyncInterval,
    pub tls_hosts: Vec<String>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuthError + '_ {
    move |source| AuthError::Io { path: path.display().to_string(), source }
}

/// A directory of identities (`<name>.nk`: a user's nkey seed), the mesh key and the server configuration.
#[derive(Debug, Clone)]
pub struct AuthDir {
    dir: PathBuf,
    users: Vec<(String, Role, String)>,
    /// JetStream's fsync policy and TLS of the server configuration.
    server: ServerSettings,
}

/// Write `text` to a new file only the owner can read and write (an old one is replaced).
fn write_private(path: &Path, text: &str) -> Result<(), AuthError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

impl AuthDir {
    /// Open or make `dir` (0700) with an identity for each `(name, role)`: a name already there keeps its key,
    /// a new one gets a fresh nkey pair. Writes the mesh key when missing and the server configuration for
    /// exactly these users.
    pub fn create(dir: &Path, identities: &[(String, Role)]) -> Result<Self, AuthError> {
        Self::create_with(dir, identities, &ServerSettings::default())
    }

    /// [`AuthDir::create`] whose server configuration also sets JetStream's `sync_interval` and, with TLS
    /// hosts, requires TLS with a certificate of the mesh's own CA (made once, kept; the server certificate is
    /// made again when the hosts change). For servers started with this configuration alone, as compose's are;
    /// the testbed sets the fsync policy on the servers it starts.
    pub fn create_with(dir: &Path, identities: &[(String, Role)], server: &ServerSettings) -> Result<Self, AuthError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
        let mut users = Vec::new();
        for (name, role) in identities {
            if !crate::wire::is_valid_token(name) {
                return Err(AuthError::Bad { path: dir.display().to_string(), problem: format!("bad name {name:?}") });
            }
            let path = dir.join(format!("{name}.nk"));
            let seed = match path.is_file() {
                true => Auth::read_seed(&path)
                    .map_err(|e| AuthError::Bad { path: path.display().to_string(), problem: e.to_string() })?,
                false => {
                    let pair = nkeys::KeyPair::new_user();
                    let seed = pair.seed().map_err(|e| AuthError::Nkey(e.to_string()))?;
                    write_private(&path, &format!("{seed}\n"))?;
                    seed
                }
            };
            let public = nkeys::KeyPair::from_seed(&seed).map_err(|e| AuthError::Nkey(e.to_string()))?.public_key();
            users.push((name.clone(), role.clone(), public));
        }
        let key_path = dir.join(MESH_KEY);
        if !key_path.is_file() {
            write_private(&key_path, &format!("{}\n", random_key()))?;
        }
        if !server.tls_hosts.is_empty() {
            tls_material(dir, &server.tls_hosts)?;
        }
        let d = AuthDir { dir: dir.to_path_buf(), users, server: server.clone() };
        write_private(&d.server_config(), &d.render_server_config())?;
        Ok(d)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server configuration file (`nats-server -c`).
    pub fn server_config(&self) -> PathBuf {
        self.dir.join(SERVER_CONFIG)
    }

    /// The credentials of the identity `name` (trusting the directory's CA when its servers speak TLS).
    pub fn auth(&self, name: &str) -> Auth {
        Auth { nkey: Some(self.nkey_file(name)), tls_ca: self.tls_ca(), ..Default::default() }
    }

    /// The seed file of the identity `name` (`--nkey`).
    pub fn nkey_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.nk"))
    }

    /// The public key of the identity `name`, if it is one of this directory's.
    pub fn public_key(&self, name: &str) -> Option<&str> {
        self.users.iter().find(|(n, _, _)| n == name).map(|(_, _, k)| k.as_str())
    }

    /// The nkey seed of the identity `name` in the directory `dir` (made by [`AuthDir::create`]).
    pub fn seed(dir: &Path, name: &str) -> Result<String, AuthError> {
        if !crate::wire::is_valid_token(name) {
            return Err(AuthError::Bad { path: dir.display().to_string(), problem: format!("bad name {name:?}") });
        }
        let path = dir.join(format!("{name}.nk"));
        if !path.is_file() {
            return Err(AuthError::Bad { path: path.display().to_string(), problem: format!("no identity {name:?}") });
        }
        Auth::read_seed(&path).map_err(|e| AuthError::Bad { path: path.display().to_string(), problem: e.to_string() })
    }

    /// The mesh's checkpoint key (the nodes sign and check checkpoints with it).
    pub fn mesh_key(&self) -> Result<String, AuthError> {
        let path = self.dir.join(MESH_KEY);
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        Ok(text.trim().to_string())
    }

    /// nats-server's `authorization` block: one user per identity, by public nkey, with its role's permissions.
    pub fn render_server_config(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let list = |v: &[String]| v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ");
        let mut out = String::from("# Written by microlambda (src/auth.rs): one nkey user per mesh identity.\n");
        out.push_str("authorization {\n  users = [\n");
        for (name, role, public) in &self.users {
            out.push_str(&format!("    # {name}: {role:?}\n    {{ nkey: {}", q(public)));
            if let Some(p) = permissions(role, public) {
                out.push_str(&format!(
                    ", permissions: {{ publish: {{ allow: [{}] }}, subscribe: {{ allow: [{}] }}, allow_responses: {} }}",
                    list(&p.publish),
                    list(&p.subscribe),
                    p.allow_responses
                ));
            }
            out.push_str(" }\n");
        }
        out.push_str("  ]\n}\n");
        if let Some(v) = self.server.sync.config_value() {
            out.push_str(&format!("jetstream {{ sync_interval: {v} }}\n"));
        }
        if !self.server.tls_hosts.is_empty() {
            let file = |f: &str| q(&self.dir.join(f).display().to_string());
            out.push_str(&format!(
                "# Clients must speak TLS and trust {TLS_CA} (the mesh's own CA).\ntls {{ cert_file: {}, key_file: {}, \
                 timeout: 2 }}\n",
                file(SERVER_CERT),
                file(SERVER_KEY)
            ));
        }
        out
    }

    /// The mesh's CA certificate, when the directory was made with TLS hosts.
    pub fn tls_ca(&self) -> Option<PathBuf> {
        (!self.server.tls_hosts.is_empty()).then(|| self.dir.join(TLS_CA))
    }
}

const CA_KEY: &str = "ca.key";
const SERVER_CERT: &str = "server.pem";
const SERVER_KEY: &str = "server.key";
const SERVER_HOSTS: &str = "server.hosts";

/// The CA's parameters: the same every time, so a CA made again from its kept key signs certificates that
/// chain to the CA certificate clients already trust (same name, same key).
fn ca_params() -> Result<rcgen::CertificateParams, AuthError> {
    use rcgen::{BasicConstraints, DnType, IsCa, KeyUsagePurpose};
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.distinguished_name.push(DnType::CommonName, "microlambda mesh CA");
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2124, 1, 1);
    Ok(p)
}

/// The CA (`ca.pem`, `ca.key`: made once) and the servers' certificate for `hosts` (`server.pem`,
/// `server.key`: made again when the hosts differ from those it was made for). A host that parses as an IP
/// address is an IP subject name, any other a DNS name.
fn tls_material(dir: &Path, hosts: &[String]) -> Result<(), AuthError> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
    let (ca_key, fresh_ca) = match read(CA_KEY).zip(read(TLS_CA)) {
        Some((key, _)) => (rcgen::KeyPair::from_pem(&key)?, false),
        None => {
            let key = rcgen::KeyPair::generate()?;
            write_private(&dir.join(TLS_CA), &ca_params()?.self_signed(&key)?.pem())?;
            write_private(&dir.join(CA_KEY), &key.serialize_pem())?;
            (key, true)
        }
    };
    let wanted = hosts.join("\n");
    if !fresh_ca && read(SERVER_HOSTS).as_deref() == Some(wanted.as_str()) && read(SERVER_CERT).is_some() {
        return Ok(());
    }
    let issuer = rcgen::Issuer::new(ca_params()?, ca_key);
    let mut params = rcgen::CertificateParams::new(hosts.to_vec())?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "microlambda NATS server");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    let key = rcgen::KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    write_private(&dir.join(SERVER_KEY), &key.serialize_pem())?;
    write_private(&dir.join(SERVER_CERT), &cert.pem())?;
    write_private(&dir.join(SERVER_HOSTS), &wanted)
}

/// A fresh checkpoint key: 32 random bytes as hex.
pub fn random_key() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The connection flags of every command that connects (`--creds`, `--nkey`, `--tls-ca`, `--tls-cert`,
/// `--tls-key`), each with its `MICROLAMBDA_*` variable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuthArgs {
    /// NATS user credentials file (.creds: JWT and nkey seed).
    #[arg(long, global = true, env = "MICROLAMBDA_CREDS", value_name = "FILE")]
    pub creds: Option<PathBuf>,
    /// File with the NATS user's nkey seed (default for the clients of a running `microlambda testbed`: its
    /// client user; for `watch`: its ops user).
    #[arg(long, global = true, env = "MICROLAMBDA_NKEY", value_name = "FILE")]
    pub nkey: Option<PathBuf>,
    /// CA certificate(s) the server's TLS certificate must chain to (PEM); given, TLS is required.
    #[arg(long, global = true, env = "MICROLAMBDA_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate for servers that verify clients (mutual TLS, PEM; with --tls-key).
    #[arg(long, global = true, env = "MICROLAMBDA_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, env = "MICROLAMBDA_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

impl AuthArgs {
    /// The credentials given; with none, those of the running testbed at `nats` for its `identity`
    /// (`client`, `ops`, ...) when there is one.
    pub fn resolve(&self, nats: &str, identity: &str) -> Auth {
        let auth = Auth {
            creds: self.creds.clone(),
            nkey: self.nkey.clone(),
            tls_ca: self.tls_ca.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
        };
        match crate::config::running_testbed_auth(nats) {
            Some(dir) if auth == Auth::default() => {
                let ca = dir.join(TLS_CA);
                Auth { nkey: Some(dir.join(format!("{identity}.nk"))), tls_ca: ca.is_file().then_some(ca), ..auth }
            }
            _ => auth,
        }
    }
}

/// The identities of a mesh of `nodes`: `ops`, `placement`, `client` (may deploy), and `node-<id>` and
/// `radio-<id>` for each node.
pub fn mesh_identities(nodes: &[String]) -> Vec<(String, Role)> {
    let mut out = vec![
        ("ops".to_string(), Role::Ops),
        ("placement".to_string(), Role::Placement),
        ("client".to_string(), Role::Client { deploy: true }),
    ];
    for n in nodes {
        out.push((node_identity(n), Role::Node(n.clone())));
        out.push((format!("radio-{n}"), Role::Radio(n.clone())));
    }
    out
}

/// The identity name of node `id` in [`mesh_identities`].
pub fn node_identity(id: &str) -> String {
    format!("node-{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_and_its_files_are_private_and_keys_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("auth");
        let ids = mesh_identities(&["n1".into()]);
        let a = AuthDir::create(&dir, &ids).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        for f in ["ops.nk", "node-n1.nk", MESH_KEY, SERVER_CONFIG] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
        let conf = std::fs::read_to_string(a.server_config()).unwrap();
        assert!(conf.contains(a.public_key("node-n1").unwrap()));
        let node = permissions(&Role::Node("n1".into()), a.public_key("node-n1").unwrap()).unwrap();
        for subject in node.publish.iter().chain(&node.subscribe) {
            assert!(conf.contains(&format!("{subject:?}")), "{subject} not in {conf}");
        }
        // Seeds never reach the server's configuration.
        let seed = std::fs::read_to_string(a.nkey_file("node-n1")).unwrap();
        assert!(!conf.contains(seed.trim()));
        // A second start keeps the keys.
        let b = AuthDir::create(&dir, &ids).unwrap();
        assert_eq!(a.public_key("ops"), b.public_key("ops"));
        assert_eq!(a.mesh_key().unwrap(), b.mesh_key().unwrap());
        assert_eq!(a.mesh_key().unwrap().len(), 64);
        // `auth seed` prints an identity's seed; a name not there, or not a name, is refused.
        assert_eq!(AuthDir::seed(&dir, "node-n1").unwrap(), seed.trim());
        assert!(AuthDir::seed(&dir, "nobody").unwrap_err().to_string().contains("no identity"));
        assert!(AuthDir::seed(&dir, "../mesh").is_err());
        // JetStream's fsync policy only when asked (the server's default otherwise).
        assert!(!conf.contains("sync_interval"), "{conf}");
        let always = ServerSettings { sync: SyncInterval::Always, ..Default::default() };
        let c = AuthDir::create_with(&dir, &ids, &always).unwrap().render_server_config();
        assert!(c.ends_with("jetstream { sync_interval: always }\n"), "{c}");
    }
}
