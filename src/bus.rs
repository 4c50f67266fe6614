//! The mesh's one door to NATS: the only module that knows subject and bucket names.
//!
//! [`Bus`] is a cheap clonable handle (the async-nats client is itself a handle in front of one connection
//! task). Callers publish and request typed values; requests have timeouts and tell "no responders" (nobody
//! listens: a node is gone) from "timed out" (somebody listens but is slow).
//!
//! Size: over 700 lines on purpose: every subject, bucket and NATS call of the mesh is here, so that no other
//! module needs to know one.
use crate::wire::{
    Adopt, AssignReply, Assignment, CheckpointStore, CommandReply, DeployedFunction, JobEvent, JobRecord, JobState,
    LoadReport, NodeCommand, NodeGone, RadioLoad, Requeue, SessionInput, WarmHint,
};
use async_nats::jetstream::{self, kv, object_store, stream};
use bytes::Bytes;
use futures::future::ready;
use futures::stream::{BoxStream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Subject names. Private: everything else goes through [`Bus`] methods.
///
/// The public subjects carry the tenant (see [`Bus::tenant`]) as a token: `jobs.submit.<tenant>`,
/// `jobs.status.<tenant>`, `sessions.request.<tenant>`, `jobs.events.<tenant>.<job_id>`, so that a client's
/// permissions can name its own tenant's subjects only.
mod subject {
    pub fn submit(tenant: &str) -> String {
        format!("jobs.submit.{tenant}")
    }
    pub fn status(tenant: &str) -> String {
        format!("jobs.status.{tenant}")
    }
    pub fn session_request(tenant: &str) -> String {
        format!("sessions.request.{tenant}")
    }
    pub const ALL_SUBMITS: &str = "jobs.submit.*";
    pub const ALL_STATUS: &str = "jobs.status.*";
    pub const ALL_SESSION_REQUESTS: &str = "sessions.request.*";
    pub const NODES: &str = "placement.nodes";
    /// Every tenant's job events.
    pub const ALL_EVENTS: &str = "jobs.events.*.*";
    /// One tenant's job events.
    pub fn tenant_events(tenant: &str) -> String {
        format!("jobs.events.{tenant}.*")
    }
    pub const ALL_LOADS: &str = "node.load.*";
    pub const ALL_GONE: &str = "node.gone.*";
    pub const ALL_RADIO: &str = "radio.load.*";
    /// Queue group of the gateway, so that several placements could share the work.
    pub const GATEWAY_GROUP: &str = "microlambda-gateway";
    pub fn events(tenant: &str, job_id: &str) -> String {
        format!("jobs.events.{tenant}.{job_id}")
    }
    pub fn load(node: &str) -> String {
        format!("node.load.{node}")
    }
    pub fn radio(node: &str) -> String {
        format!("radio.load.{node}")
    }
    pub fn run(node: &str) -> String {
        format!("node.run.{node}")
    }
    pub fn gone(node: &str) -> String {
        format!("node.gone.{node}")
    }
    pub fn ctl(node: &str) -> String {
        format!("node.ctl.{node}")
    }
    pub fn adopt(node: &str) -> String {
        format!("node.adopt.{node}")
    }
    pub const REQUEUE: &str = "placement.requeue";
    /// A node tells the others a module set to keep a zygote for ([`crate::wire::WarmHint`]).
    pub fn warm(node: &str) -> String {
        format!("node.warm.{node}")
    }
    pub const ALL_WARM: &str = "node.warm.*";
    /// Checkpoints of one job during one ownership epoch (the checkpoint stream keeps the last two each).
    pub fn checkpoint(job_id: &str, epoch: u64) -> String {
        format!("ml.ckpt.{job_id}.{epoch}")
    }
    pub fn checkpoints_of(job_id: &str) -> String {
        format!("ml.ckpt.{job_id}.>")
    }
    pub const ALL_CHECKPOINTS: &str = "ml.ckpt.>";
    pub const ALL_ADOPTS: &str = "node.adopt.*";
    pub const ALL_COMMANDS: &str = "node.ctl.*";
    /// Every write to the job records bucket (a KV put is a publish on `$KV.<bucket>.<key>`).
    pub fn all_record_writes() -> String {
        format!("$KV.{}.>", super::JOBS_BUCKET)
    }
    /// The job an observed subject is about: `jobs.events.<tenant>.<job>`, `ml.ckpt.<job>.<epoch>`, `$KV.ml_jobs.<job>`.
    pub fn job_of(s: &str) -> Option<&str> {
        if let Some(rest) = s.strip_prefix("ml.ckpt.") {
            return rest.split('.').next();
        }
        let kv = format!("$KV.{}.", super::JOBS_BUCKET);
        s.strip_prefix(&kv).or_else(|| s.strip_prefix("jobs.events.")).map(|_| last_token(s))
    }
    /// The last token of a subject (`node.load.n1` -> `n1`).
    pub fn last_token(s: &str) -> &str {
        s.rsplit('.').next().unwrap_or(s)
    }
}

/// How a process proves who it is to the NATS server and checks the server's certificate: the one place
/// that turns credentials into connect options. Every field is optional; none given connects as before
/// (a server without authentication).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Auth {
    /// A `.creds` file (decentralised JWT accounts: the user's JWT and nkey seed).
    pub creds: Option<PathBuf>,
    /// A file holding a user's nkey seed (`SU...`; server-config users with nkeys).
    pub nkey: Option<PathBuf>,
    /// CA certificate(s) (PEM) that the server's certificate must chain to; given, the connection requires TLS.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key (PEM) for servers that verify clients (mutual TLS).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

static PROCESS_AUTH: OnceLock<Auth> = OnceLock::new();

pub use crate::wire::DEFAULT_TENANT;

impl Auth {
    /// From `MICROLAMBDA_CREDS`, `MICROLAMBDA_NKEY`, `MICROLAMBDA_TLS_CA`, `MICROLAMBDA_TLS_CERT` and
    /// `MICROLAMBDA_TLS_KEY` (empty counts as unset).
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        Self {
            creds: var("MICROLAMBDA_CREDS"),
            nkey: var("MICROLAMBDA_NKEY"),
            tls_ca: var("MICROLAMBDA_TLS_CA"),
            tls_cert: var("MICROLAMBDA_TLS_CERT"),
            tls_key: var("MICROLAMBDA_TLS_KEY"),
        }
    }

    /// Make `self` what [`Bus::connect`] uses in this process (the binaries do this once from their flags,
    /// which default to the environment). Later calls change nothing.
    pub fn install(self) {
        let _ = PROCESS_AUTH.set(self);
    }

    /// The installed credentials, else those of the environment.
    pub fn process() -> Self {
        PROCESS_AUTH.get().cloned().unwrap_or_else(Self::from_env)
    }

    /// The nkey seed of [`Auth::nkey`]: the first line of the file that looks like a user seed.
    pub fn read_seed(path: &Path) -> Result<String, BusError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BusError::new(BusErrorKind::Connect, format!("nkey file {}: {e}", path.display())))?;
        text.lines().map(str::trim).find(|l| l.starts_with("SU")).map(str::to_string).ok_or_else(|| {
            BusError::new(BusErrorKind::Connect, format!("nkey file {}: no user seed (SU...) in it", path.display()))
        })
    }

    /// The tenant of this identity: the public key of its user nkey (from `--nkey`, or the seed in a `--creds`
    /// file), which the server's permissions bind to the tenant's subjects; [`DEFAULT_TENANT`] with neither
    /// (a server without users, where nothing is enforced).
    pub fn tenant(&self) -> Result<String, BusError> {
        let Some(path) = self.nkey.as_ref().or(self.creds.as_ref()) else {
            return Ok(DEFAULT_TENANT.to_string());
        };
        let seed = Self::read_seed(path)?;
        nkeys::KeyPair::from_seed(&seed)
            .map(|k| k.public_key())
            .map_err(|e| BusError::new(BusErrorKind::Connect, format!("nkey in {}: {e}", path.display())))
    }

    async fn options(&self) -> Result<async_nats::ConnectOptions, BusError> {
        let mut o = async_nats::ConnectOptions::new();
        if let Some(path) = &self.creds {
            o = o.credentials_file(path).await.map_err(|e| {
                // async-nats names the file when it cannot read it ("loading creds file '...': ..."): once.
                let e = e.to_string();
                let e =
                    e.rsplit_once("': ").filter(|(head, _)| head.contains("creds file")).map_or(e.as_str(), |t| t.1);
                BusError::new(BusErrorKind::Connect, format!("credentials file {}: {e}", path.display()))
            })?;
        }
        if let Some(path) = &self.nkey {
            let seed = Self::read_seed(path)?;
            let public = nkeys::KeyPair::from_seed(&seed)
                .map_err(|e| BusError::new(BusErrorKind::Connect, format!("nkey file {}: {e}", path.display())))?
                .public_key();
            // Replies come to an inbox only this user may subscribe to (see [`permissions`]).
            o = o.nkey(seed).custom_inbox_prefix(inbox_prefix(&public));
        }
        if let Some(ca) = &self.tls_ca {
            o = o.add_root_certificates(ca.clone()).require_tls(true);
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => o = o.add_client_certificate(c.clone(), k.clone()).require_tls(true),
            (None, None) => {}
            _ => return Err(BusError::new(BusErrorKind::Connect, "--tls-cert and --tls-key go together")),
        }
        Ok(o)
    }
}

/// The inbox prefix of the user with this public nkey: its request replies arrive under it, and only it may
/// subscribe there.
pub fn inbox_prefix(public_key: &str) -> String {
    format!("_INBOX_{public_key}")
}

/// What one identity of the mesh does, which decides what it may publish and subscribe to ([`permissions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Submits jobs, asks their status, sees job events; deploys functions only when `deploy`.
    Client { deploy: bool },
    /// One node: its own `node.*.<id>` subjects, job records, checkpoints.
    Node(String),
    /// Placement and the gateway (every placement process, leader and standbys).
    Placement,
    /// A radio-load source for one node: publishes `radio.load.<id>` only.
    Radio(String),
    /// Operators: everything (reads `node.load.>`, sets the mesh up, administers JetStream).
    Ops,
}

/// What a user may publish and subscribe to, in nats-server's terms (anything else is refused);
/// `allow_responses` lets a user answer the requests it received, whatever their reply subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
    pub allow_responses: bool,
}

/// The subjects a role may use, derived from the same names as every call of [`Bus`] so that they cannot
/// drift apart; `public_key` is the user's (its inbox). `None`: no limit (ops).
pub fn permissions(role: &Role, public_key: &str) -> Option<Permissions> {
    let s = |v: &str| v.to_string();
    let inbox = format!("{}.>", inbox_prefix(public_key));
    // Every role opens the buckets when it connects (stream info: names and sizes, not contents).
    let mut p = Permissions {
        publish: vec![s("$JS.API.INFO"), s("$JS.API.STREAM.INFO.*")],
        subscribe: vec![inbox],
        ..Default::default()
    };
    let kv = |bucket: &str| format!("$KV.{bucket}.>");
    // Reading and writing records and checkpoints: direct and stream reads, the ordered consumers that list
    // keys and read objects (and their flow control), purges of checkpoints only. No stream may be created,
    // changed or deleted.
    let jetstream_worker = |p: &mut Permissions| {
        p.publish.extend([
            s("$JS.API.DIRECT.GET.>"),
            s("$JS.API.STREAM.MSG.GET.*"),
            s("$JS.API.CONSUMER.CREATE.>"),
            s("$JS.API.CONSUMER.DELETE.>"),
            s("$JS.API.CONSUMER.INFO.>"),
            s("$JS.FC.>"),
            format!("$JS.API.STREAM.PURGE.{CHECKPOINT_STREAM}"),
            format!("$JS.API.STREAM.PURGE.OBJ_{CHECKPOINT_OBJECTS}"),
            kv(JOBS_BUCKET),
            kv(SOURCES_BUCKET),
            format!("$O.{CHECKPOINT_OBJECTS}.>"),
            s(subject::ALL_CHECKPOINTS),
            s(subject::ALL_EVENTS),
        ]);
        p.allow_responses = true;
    };
    match role {
        Role::Ops => return None,
        // A client's tenant is its public key: the server lets it use its own tenant's subjects and function
        // keys only, so a tenant cannot be claimed (see [`Bus::tenant`]).
        Role::Client { deploy } => {
            let tenant = public_key;
            p.publish.extend([
                subject::submit(tenant),
                subject::status(tenant),
                subject::session_request(tenant),
                s(subject::NODES),
            ]);
            if *deploy {
                p.publish.push(format!("$KV.{FUNCTIONS_BUCKET}.{tenant}.>"));
            }
            p.subscribe.push(subject::tenant_events(tenant));
        }
        Role::Radio(node) => p.publish.push(subject::radio(node)),
        Role::Node(node) => {
            jetstream_worker(&mut p);
            p.publish.extend([subject::load(node), subject::warm(node), s(subject::ALL_ADOPTS), s(subject::REQUEUE)]);
            p.subscribe.extend([
                subject::run(node),
                subject::ctl(node),
                subject::adopt(node),
                subject::radio(node),
                s(subject::ALL_WARM),
            ]);
        }
        Role::Placement => {
            jetstream_worker(&mut p);
            // The gateway numbers a session's requests by creating their keys.
            p.publish.extend([
                kv(LEASE_BUCKET),
                kv(SESSIONS_BUCKET),
                subject::run("*"),
                s(subject::ALL_COMMANDS),
                s(subject::ALL_GONE),
            ]);
            p.subscribe.extend([
                s(subject::ALL_SUBMITS),
                s(subject::ALL_SESSION_REQUESTS),
                s(subject::ALL_STATUS),
                s(subject::NODES),
                s(subject::REQUEUE),
                s(subject::ALL_LOADS),
                s(subject::ALL_GONE),
                s(subject::ALL_RADIO),
                s(subject::ALL_EVENTS),
            ]);
        }
    }
    Some(p)
}

/// KV bucket of job records (key: job id).
pub const JOBS_BUCKET: &str = "ml_jobs";
/// KV bucket of deployed functions (key: `<tenant>.<function name>`).
const FUNCTIONS_BUCKET: &str = "ml_functions";
/// Stream of checkpoints that fit in one message.
const CHECKPOINT_STREAM: &str = "ML_CKPT";
/// Object store of larger checkpoints.
const CHECKPOINT_OBJECTS: &str = "ml_ckpt";
/// KV bucket of the placement leader's lease (one key; entries expire after the lease time).
const LEASE_BUCKET: &str = "ml_lease";
/// The requests of sessions, one key per request: `<session>.<n>` holds its input (JSON).
const SESSIONS_BUCKET: &str = "ml_sessions";
/// Inline sources of jobs and sessions, stored once by content (key: the source's SHA-256 in hex); a job
/// record names its source by that digest ([`crate::wire::FunctionRef::source_sha256`]).
const SOURCES_BUCKET: &str = "ml_sources";
/// How long a stored source is kept after its last write. The gateway writes it again when it takes a job
/// of that source and has not written it for half this time; a node does so when it starts a slice of one.
pub const SOURCE_TTL: Duration = Duration::from_secs(24 * 3600);
const LEASE_KEY: &str = "placement";
/// A deployed function's key: its tenant's name for it, so each tenant's deploy right covers its own only.
fn function_key(tenant: &str, name: &str) -> String {
    format!("{tenant}.{name}")
}
/// How many servers keep each stream and bucket the mesh creates (JetStream replicas): 1 on a single server
/// (the default), 3 on a three-server cluster (docker-compose.yml), from `MICROLAMBDA_NATS_REPLICAS`. Only
/// creation uses it: a stream or bucket that exists keeps its replicas, whoever connects.
pub fn replicas() -> Result<usize, BusError> {
    let Some(v) = std::env::var("MICROLAMBDA_NATS_REPLICAS").ok().filter(|v| !v.is_empty()) else { return Ok(1) };
    match v.parse::<usize>() {
        Ok(n @ 1..=5) => Ok(n),
        _ => Err(BusError::new(BusErrorKind::Connect, format!("MICROLAMBDA_NATS_REPLICAS={v}: 1 to 5 (JetStream)"))),
    }
}

fn jobs_bucket(replicas: usize) -> kv::Config {
    kv::Config {
        bucket: JOBS_BUCKET.into(),
        num_replicas: replicas,
        description: "microlambda job records".into(),
        history: 1,
        max_age: Duration::from_secs(24 * 3600),
        ..Default::default()
    }
}

fn functions_bucket(replicas: usize) -> kv::Config {
    kv::Config {
        bucket: FUNCTIONS_BUCKET.into(),
        num_replicas: replicas,
        description: "microlambda deployed functions".into(),
        history: 5,
        ..Default::default()
    }
}

fn checkpoint_stream(replicas: usize) -> stream::Config {
    stream::Config {
        name: CHECKPOINT_STREAM.into(),
        num_replicas: replicas,
        description: Some("microlambda checkpoints (latest two per job and ownership epoch)".into()),
        subjects: vec![subject::ALL_CHECKPOINTS.into()],
        max_messages_per_subject: 2,
        max_age: Duration::from_secs(24 * 3600),
        storage: stream::StorageType::File,
        allow_direct: true,
        ..Default::default()
    }
}

fn checkpoint_objects(replicas: usize) -> object_store::Config {
    object_store::Config {
        bucket: CHECKPOINT_OBJECTS.into(),
        num_replicas: replicas,
        description: Some("microlambda checkpoints larger than one message".into()),
        max_age: Duration::from_secs(24 * 3600),
        ..Default::default()
    }
}

/// How often a connection pings its server when it hears nothing else from it. With three pings unanswered
/// the client drops the connection and connects to another server of the URL list: a frozen server (SIGSTOP,
/// a stalled host), whose TCP connections stay open, is left within about 3 s instead of async-nats's default
/// 3 minutes (tested: `tests/durability.rs`, a server frozen mid-run).
const PING_INTERVAL: Duration = Duration::from_secs(1);

/// Room kept for headers and the adopt envelope when deciding whether a checkpoint fits in one message.
const MESSAGE_OVERHEAD: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusErrorKind {
    Connect,
    /// Nobody listens on the subject.
    NoResponders,
    /// Somebody listens but did not answer in time.
    TimedOut,
    /// The message is larger than the server accepts.
    TooLarge,
    Request,
    Publish,
    Subscribe,
    /// A KV create found the key already there.
    AlreadyExists,
    /// A KV compare-and-set found a newer revision.
    WrongRevision,
    Kv,
    /// A value could not be serialized for sending (a bug on this side, not the peer's).
    Encode,
    /// The peer sent something that is not the expected JSON.
    Decode,
}

impl std::fmt::Display for BusErrorKind {
    /// What a user reads before the message (`microlambda: cannot connect to NATS: nats://...: ...`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Connect => "cannot connect to NATS",
            Self::NoResponders => "nobody answers",
            Self::TimedOut => "no answer in time",
            Self::TooLarge => "message too large",
            Self::Request => "request failed",
            Self::Publish => "publish failed",
            Self::Subscribe => "subscribe failed",
            Self::AlreadyExists => "already exists",
            Self::WrongRevision => "changed meanwhile",
            Self::Kv => "JetStream",
            Self::Encode => "cannot encode",
            Self::Decode => "unexpected answer",
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct BusError {
    pub kind: BusErrorKind,
    pub message: String,
}

impl BusError {
    fn new(kind: BusErrorKind, e: impl std::fmt::Display) -> Self {
        Self { kind, message: e.to_string() }
    }
}

/// A value as the JSON body of a message; a failure is ours ([`BusErrorKind::Encode`]).
fn encode_json<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, BusError> {
    serde_json::to_vec(v).map_err(|e| BusError::new(BusErrorKind::Encode, e))
}

fn request_error(e: async_nats::RequestError) -> BusError {
    use async_nats::RequestErrorKind as K;
    let kind = match e.kind() {
        K::NoResponders => BusErrorKind::NoResponders,
        K::TimedOut => BusErrorKind::TimedOut,
        K::MaxPayloadExceeded => BusErrorKind::TooLarge,
        _ => BusErrorKind::Request,
    };
    BusError::new(kind, e)
}

/// An incoming message a handler answers.
pub use async_nats::Message;
pub use async_nats::Subscriber;

/// Handle to the mesh's NATS connection and buckets.
#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    jobs: kv::Store,
    functions: kv::Store,
    checkpoints: stream::Stream,
    objects: object_store::ObjectStore,
    /// The sessions' requests, opened on first use.
    sessions: std::sync::Arc<tokio::sync::OnceCell<kv::Store>>,
    /// The jobs' inline sources by digest, opened on first use.
    sources: std::sync::Arc<tokio::sync::OnceCell<kv::Store>>,
    /// The tenant this connection submits, deploys and follows events as ([`Bus::tenant`]).
    tenant: String,
    /// What the server refused (see [`Bus::refusals`]).
    denied: Arc<Mutex<Vec<String>>>,
    /// The JetStream replicas of the streams and buckets this connection creates ([`replicas`]).
    replicas: usize,
}

/// Whether every address `url` resolves to refuses a TCP connection (within 1 s each). False when the URL
/// does not parse or resolve, or an address answers or times out: the NATS connect then says why.
async fn refused(url: &str) -> bool {
    let Ok(server) = url.parse::<async_nats::ServerAddr>() else { return false };
    let Ok(addrs) = server.socket_addrs().await else { return false };
    let addrs: Vec<_> = addrs.collect();
    let mut refusals = 0;
    for a in &addrs {
        match tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(a)).await {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => refusals += 1,
            _ => return false,
        }
    }
    !addrs.is_empty() && refusals == addrs.len()
}

/// Whether the first server of `url` that answers says, in its `INFO` line, that it requires TLS. For an error
/// that says why a connection failed: async-nats reports a TLS handshake the client refused (an untrusted or
/// wrongly named certificate, no `--tls-ca`) as a bare I/O error, and retries it forever.
async fn requires_tls(url: &str) -> bool {
    use tokio::io::AsyncBufReadExt;
    for server in url.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let Ok(addr) = server.parse::<async_nats::ServerAddr>() else { continue };
        let Ok(addrs) = addr.socket_addrs().await else { continue };
        for a in addrs {
            let line = tokio::time::timeout(Duration::from_secs(1), async {
                let stream = tokio::net::TcpStream::connect(a).await.ok()?;
                let mut line = String::new();
                tokio::io::BufReader::new(stream).read_line(&mut line).await.ok()?;
                Some(line)
            })
            .await;
            if let Ok(Some(line)) = line {
                let info = crate::natsd::parse_info(&line);
                return info.is_some_and(|i| i["tls_required"] == serde_json::Value::Bool(true));
            }
        }
    }
    false
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").finish_non_exhaustive()
    }
}

impl Bus {
    /// Connect with this process's credentials ([`Auth::process`]) and open the buckets, creating those that
    /// are missing (which only an identity with JetStream admin rights may do: see [`Bus::setup`]). `name`
    /// shows in the server's connection list.
    pub async fn connect(url: &str, name: &str, request_timeout: Duration) -> Result<Self, BusError> {
        Self::connect_as(url, name, request_timeout, &Auth::process()).await
    }

    /// [`Bus::connect`] to a server that should be running already (the client commands, the loadgen): when
    /// every address of the URL refuses the TCP connection, nothing listens there and the error comes at
    /// once. [`Bus::connect`] (the node, placement) keeps trying for up to 10 s, for a server still starting.
    /// JetStream that cannot serve the mesh's streams yet is waited for 10 s here, a minute there.
    pub async fn connect_running(url: &str, name: &str, request_timeout: Duration) -> Result<Self, BusError> {
        if refused(url).await {
            let why = "no NATS server answers there (connection refused)";
            return Err(BusError::new(BusErrorKind::Connect, format!("{url}: {why}")));
        }
        // A user waits less for a server that has no JetStream (or a cluster still electing) than a node does.
        Self::open(url, name, request_timeout, &Auth::process(), replicas()?, CLIENT_JETSTREAM_WAIT).await
    }

    /// [`Bus::connect`] as the identity `auth` names. `url` may list several servers of one cluster,
    /// comma-separated.
    pub async fn connect_as(url: &str, name: &str, request_timeout: Duration, auth: &Auth) -> Result<Self, BusError> {
        Self::connect_replicas(url, name, request_timeout, auth, replicas()?).await
    }

    /// [`Bus::connect_as`] creating missing streams and buckets with `replicas` replicas (not [`replicas`]).
    pub async fn connect_replicas(
        url: &str,
        name: &str,
        request_timeout: Duration,
        auth: &Auth,
        replicas: usize,
    ) -> Result<Self, BusError> {
        Self::open(url, name, request_timeout, auth, replicas, JETSTREAM_READY).await
    }

    /// Connect, then open the streams and buckets, trying again for up to `jetstream_wait` while JetStream
    /// cannot serve them yet.
    async fn open(
        url: &str,
        name: &str,
        request_timeout: Duration,
        auth: &Auth,
        replicas: usize,
        jetstream_wait: Duration,
    ) -> Result<Self, BusError> {
        let denied: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = denied.clone();
        let opts = auth
            .options()
            .await?
            .name(name)
            .request_timeout(Some(request_timeout))
            .connection_timeout(Duration::from_secs(5))
            .ping_interval(PING_INTERVAL)
            .retry_on_initial_connect()
            .event_callback(move |event| {
                // Permission violations and refused credentials: logged, and kept for [`Bus::refusals`]
                // (the server does not answer a refused publish otherwise).
                let refusal = match &event {
                    async_nats::Event::ServerError(e) => {
                        tracing::warn!("NATS server: {e}");
                        Some(e.to_string())
                    }
                    // Refused credentials show here while connecting (and a lost connection, already logged).
                    async_nats::Event::ClientError(e) => Some(e.to_string()),
                    _ => None,
                };
                if let Some(e) = refusal {
                    let mut d = seen.lock().unwrap_or_else(|p| p.into_inner());
                    if d.len() < 64 {
                        d.push(e);
                    }
                }
                ready(())
            });
        // Several servers of one cluster, comma-separated: the client picks one and fails over to the others.
        let servers: Vec<&str> = url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
        let client = opts
            .connect(servers.as_slice())
            .await
            .map_err(|e| BusError::new(BusErrorKind::Connect, format!("{url}: {e}")))?;
        // retry_on_initial_connect returns at once: wait until really connected, bounded; refused credentials
        // end the wait at once (trying them again cannot help).
        let started = tokio::time::Instant::now();
        let deadline = started + Duration::from_secs(10);
        let mut tls_checked = false;
        while client.connection_state() != async_nats::connection::State::Connected {
            let last = denied.lock().unwrap_or_else(|p| p.into_inner()).last().cloned();
            let refused = last.as_deref().is_some_and(|w| w.contains("authorization violation"));
            // A server that answers and requires TLS, while the handshake keeps failing for a second: the
            // client does not trust its certificate (trying again cannot help).
            let mut tls_refused = false;
            if !tls_checked && last.is_some() && started.elapsed() > Duration::from_secs(1) {
                tls_checked = true;
                tls_refused = requires_tls(url).await;
            }
            if refused || tls_refused || tokio::time::Instant::now() > deadline {
                let why = match last {
                    Some(_) if tls_refused && auth.tls_ca.is_none() => {
                        "the server requires TLS: give --tls-ca, the CA certificate its certificate chains to \
                         (docs/SECURITY.md)"
                            .to_string()
                    }
                    Some(w) if tls_refused => format!(
                        "the server's TLS certificate was not accepted ({w}): it must chain to --tls-ca {} and name \
                         the host of the URL",
                        auth.tls_ca.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
                    ),
                    Some(w) if refused => format!(
                        "the server refused this identity ({w}): give its --nkey or --creds (a testbed's are in \
                         the directory it names, docs/SECURITY.md)"
                    ),
                    Some(w) => format!("no NATS server answers there ({w})"),
                    None => "no NATS server answers there".to_string(),
                };
                return Err(BusError::new(BusErrorKind::Connect, format!("{url}: {why}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let js = jetstream::new(client.clone());
        // A cluster just up (or busy) may time out or have no stream leader yet: try again for a while, but not
        // after the server refused this identity something (trying again cannot help).
        let deadline = tokio::time::Instant::now() + jetstream_wait;
        let (jobs, functions, checkpoints, objects) = loop {
            match open_stores(&js, replicas).await {
                Ok(stores) => break stores,
                Err(e) => {
                    let refused =
                        denied.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|r| is_permission_refusal(r));
                    if refused || tokio::time::Instant::now() >= deadline {
                        return Err(e);
                    }
                    tracing::warn!("JetStream not ready yet ({e}): trying again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        let tenant = auth.tenant()?;
        Ok(Self {
            client,
            js,
            jobs,
            functions,
            checkpoints,
            objects,
            sessions: Default::default(),
            sources: Default::default(),
            denied,
            tenant,
            replicas,
        })
    }

    /// The set-up step of a secured mesh, done once with the ops identity before the other processes start:
    /// every stream and bucket, the leader's lease bucket (entries expire `lease_ttl` after their last write)
    /// included, so that no other identity needs JetStream admin rights.
    pub async fn setup(url: &str, auth: &Auth, lease_ttl: Duration) -> Result<(), BusError> {
        Self::setup_replicas(url, auth, lease_ttl, replicas()?).await
    }

    /// [`Bus::setup`] with `replicas` replicas for every stream and bucket (3 on a three-server cluster), whatever
    /// `MICROLAMBDA_NATS_REPLICAS` says in this process.
    pub async fn setup_replicas(url: &str, auth: &Auth, lease_ttl: Duration, replicas: usize) -> Result<(), BusError> {
        let bus = Self::connect_replicas(url, "setup", Duration::from_secs(5), auth, replicas).await?;
        bus.lease(lease_ttl).await?;
        bus.sessions().await?;
        bus.sources().await?;
        bus.flush().await
    }

    /// What the server refused this connection lately (permission violations, refused credentials), oldest
    /// first, at most 64.
    pub fn refusals(&self) -> Vec<String> {
        self.denied.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// True while the connection to the server is up.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Largest message the server accepts.
    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }

    async fn publish_json<T: Serialize>(&self, subject: String, v: &T) -> Result<(), BusError> {
        let body = encode_json(v)?;
        self.client.publish(subject, body.into()).await.map_err(|e| BusError::new(BusErrorKind::Publish, e))
    }

    async fn request_json<T: DeserializeOwned>(
        &self,
        subject: String,
        body: Bytes,
        timeout: Option<Duration>,
    ) -> Result<T, BusError> {
        let mut req = async_nats::Request::new().payload(body);
        if let Some(t) = timeout {
            req = req.timeout(Some(t));
        }
        let msg = self.client.send_request(subject, req).await.map_err(request_error)?;
        serde_json::from_slice(&msg.payload).map_err(|e| BusError::new(BusErrorKind::Decode, e))
    }

    async fn sub(&self, subject: String) -> Result<Subscriber, BusError> {
        let s = self.client.subscribe(subject).await.map_err(|e| BusError::new(BusErrorKind::Subscribe, e))?;
        // Make sure the server has the interest before anyone publishes.
        self.flush().await?;
        Ok(s)
    }

    pub async fn flush(&self) -> Result<(), BusError> {
        self.client.flush().await.map_err(|e| BusError::new(BusErrorKind::Publish, e))
    }

    /// Answer a request with a JSON value (requests without a reply subject are ignored).
    pub async fn reply<T: Serialize>(&self, msg: &Message, v: &T) -> Result<(), BusError> {
        match &msg.reply {
            Some(r) => self.publish_json(r.to_string(), v).await,
            None => Ok(()),
        }
    }

    // ---- clients -------------------------------------------------------------------------------------

    /// Send a raw `jobs.submit` request (raw so tools can send any bytes) and decode the reply.
    pub async fn submit_raw<T: DeserializeOwned>(&self, body: Bytes) -> Result<T, BusError> {
        self.request_json(subject::submit(&self.tenant), body, None).await
    }

    /// `jobs.status` of this connection's tenant (other tenants' jobs are `not_found`).
    pub async fn status<T: DeserializeOwned>(&self, body: Bytes) -> Result<T, BusError> {
        self.request_json(subject::status(&self.tenant), body, None).await
    }

    /// The tenant this connection's jobs, sessions, events and deployed functions belong to: its user's public
    /// nkey, else [`DEFAULT_TENANT`] ([`Auth::tenant`]).
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The same connection submitting, asking, deploying and following events as `tenant`: a secured server
    /// refuses it unless this identity may use that tenant's subjects (an operator may; a client may not).
    pub fn claiming(&self, tenant: &str) -> Bus {
        Bus { tenant: tenant.to_string(), ..self.clone() }
    }

    /// Send a raw `sessions.request` and decode the reply.
    pub async fn session_request_raw<T: DeserializeOwned>(&self, body: Bytes) -> Result<T, BusError> {
        self.request_json(subject::session_request(&self.tenant), body, None).await
    }

    /// The nodes placement knows, as JSON.
    pub async fn nodes<T: DeserializeOwned>(&self) -> Result<T, BusError> {
        self.request_json(subject::NODES.into(), Bytes::new(), None).await
    }

    /// Events of one of this tenant's jobs.
    pub async fn subscribe_events(&self, job_id: &str) -> Result<Subscriber, BusError> {
        self.sub(subject::events(&self.tenant, job_id)).await
    }

    /// Events of all this tenant's jobs.
    pub async fn subscribe_all_events(&self) -> Result<Subscriber, BusError> {
        self.sub(subject::tenant_events(&self.tenant)).await
    }

    /// Events of every tenant's jobs (placement, operators).
    pub async fn subscribe_every_tenants_events(&self) -> Result<Subscriber, BusError> {
        self.sub(subject::ALL_EVENTS.into()).await
    }

    /// The tenant a `jobs.submit.*`, `jobs.status.*` or `sessions.request.*` request came from.
    pub fn tenant_of(msg: &Message) -> &str {
        subject::last_token(msg.subject.as_str())
    }

    pub async fn subscribe_loads(&self) -> Result<Subscriber, BusError> {
        self.sub(subject::ALL_LOADS.into()).await
    }

    pub async fn subscribe_gone(&self) -> Result<Subscriber, BusError> {
        self.sub(subject::ALL_GONE.into()).await
    }

    /// Subscribe to every node's radio load.
    pub async fn subscribe_all_radio(&self) -> Result<Subscriber, BusError> {
        self.sub(subject::ALL_RADIO.into()).await
    }

    /// The node id a `node.load.*`, `radio.load.*`, `node.gone.*`, `node.ctl.*` or `node.warm.*` message is about.
    pub fn node_of(msg: &Message) -> &str {
        subject::last_token(msg.subject.as_str())
    }

    pub async fn publish_radio(&self, node: &str, load: f64) -> Result<(), BusError> {
        self.publish_json(subject::radio(node), &RadioLoad { load }).await
    }

    /// Store a function module as this tenant's; nodes fetch it on first use. Returns the revision.
    pub async fn deploy(&self, f: &DeployedFunction) -> Result<u64, BusError> {
        let body = encode_json(f)?;
        self.functions
            .put(function_key(&self.tenant, &f.name), body.into())
            .await
            .map_err(|e| BusError::new(BusErrorKind::Kv, e))
    }

    /// The current version of a tenant's deployed function and its revision.
    pub async fn function(&self, tenant: &str, name: &str) -> Result<Option<(DeployedFunction, u64)>, BusError> {
        let entry =
            self.functions.entry(function_key(tenant, name)).await.map_err(|e| BusError::new(BusErrorKind::Kv, e))?;
        match entry {
            Some(e) if e.operation == kv::Operation::Put => {
                let f = serde_json::from_slice(&e.value).map_err(|e| BusError::new(BusErrorKind::Decode, e))?;
                Ok(Some((f, e.revision)))
            }
            _ => Ok(None),
        }
    }

    /// A tenant's deployed function at a given revision (what a node runs for an assignment).
    pub async fn function_at(
        &self,
        tenant: &str,
        name: &str,
        revision: u64,
    ) -> Result<Option<DeployedFunction>, BusError> {
        let entry = self
            .functions
            .entry_for_revision(function_key(tenant, name), revision)
            .await
            .map_err(|e| BusError::new(BusErrorKind::Kv, e))?;
        match entry {
            Some(e) if e.operation == kv::Operation::Put => {
                serde_json::from_slice(&e.value).map(Some).map_err(|e| BusError::new(BusErrorKind::Decode, e))
            }
            _ => Ok(None),
        }
    }

    // ---- gateway (placement side) ---------------------------------------------------------------------

    pub async fn serve_submit(&self) -> Result<Subscriber, BusError> {
        let s = self
            .client
            .queue_subscribe(subject::ALL_SUBMITS, subject::GATEWAY_GROUP.into())
            .await
            .map_err(|e| BusError::new(BusErrorKind::Subscribe, e))?;
        self.flush().await?;
        Ok(s)
    }

    pub async fn serve_status(&self) -> Result<Subscriber, BusError> {
        let s = self
            .client
            .queue_subscribe(subject::ALL_STATUS, subject::GATEWAY_GROUP.into())
            .await
            .map_err(|e| BusError::new(BusErrorKind::Subscribe, e))?;
        self.flush().await?;
        Ok(s)
    }

    pub async fn serve_session_requests(&self) -> Result<Subscriber, BusError> {
        let s = self
            .client
            .queue_subscribe(subject::ALL_SESSION_REQUESTS, subject::GATEWAY_GROUP.into())
            .await
            .map_err(|e| BusError::new(BusErrorKind::Subscribe, e))?;
        self.flush().await?;
        Ok(s)
    }

    async fn sessions(&self) -> Result<&kv::Store, BusError> {
        self.sessions
            .get_or_try_init(|| {
                ensure_bucket(
                    &self.js,
                    kv::Config {
                        bucket: SESSIONS_BUCKET.into(),
                        num_replicas: self.replicas,
                        description: "microlambda session requests".into(),
                        history: 1,
                        max_age: Duration::from_secs(24 * 3600),
                        storage: jetstream::stream::StorageType::File,
                        ..Default::default()
                    },
                )
            })
            .await
    }

    async fn sources(&self) -> Result<&kv::Store, BusError> {
        self.sources
            .get_or_try_init(|| {
                ensure_bucket(
                    &self.js,
                    kv::Config {
                        bucket: SOURCES_BUCKET.into(),
                        num_replicas: self.replicas,
                        description: "microlambda inline job sources by SHA-256".into(),
                        history: 1,
                        max_age: SOURCE_TTL,
                        storage: jetstream::stream::StorageType::File,
                        ..Default::default()
                    },
                )
            })
            .await
    }

    /// Store a job's inline source under its digest ([`crate::wire::source_sha256`]); writing it again renews
    /// its age.
    pub async fn put_source(&self, sha256: &str, source: &str) -> Result<(), BusError> {
        let body = bytes::Bytes::copy_from_slice(source.as_bytes());
        self.sources().await?.put(sha256, body).await.map(|_| ()).map_err(|e| BusError::new(BusErrorKind::Kv, e))
    }

    /// A stored source and when it was last written (seconds since the epoch); `None` when the store does not
    /// hold it (never stored, or expired). The text is checked against its digest.
    pub async fn source(&self, sha256: &str) -> Result<Option<(String, u64)>, BusError> {
        let entry = self.sources().await?.entry(sha256).await.map_err(|e| BusError::new(BusErrorKind::Kv, e))?;
        let Some(e) = entry.filter(|e| e.operation == kv::Operation::Put) else { return Ok(None) };
        let text = String::from_utf8(e.value.to_vec()).map_err(|e| BusError::new(BusErrorKind::Decode, e))?;
        if crate::wire::source_sha256(&text) != sha256 {
            return Err(BusError::new(
                BusErrorKind::Decode,
                format!("the source stored under {sha256} has another digest"),
            ));
        }
        Ok(Some((text, e.created.unix_timestamp().max(0) as u64)))
    }

    /// Record request `n` of a session (with the id its client gave it, if any); `AlreadyExists` when that number
    /// is taken.
    pub async fn create_session_request(
        &self,
        session: &str,
        n: u64,
        input: &SessionInput,
        request_id: Option<&str>,
    ) -> Result<(), BusError> {
        let body = session_request_body(input, request_id)?;
        self.sessions().await?.create(format!("{session}.{n}"), body.into()).await.map(|_| ()).map_err(|e| {
            match e.kind() {
                kv::CreateErrorKind::AlreadyExists => BusError::new(BusErrorKind::AlreadyExists, e),
                _ => BusError::new(BusErrorKind::Kv, e),
            }
        })
    }

    /// Request `n` of a session as recorded: the id its client gave it, and its input (or a close). None when
    /// there is no such request.
    async fn session_request(&self, session: &str, n: u64) -> Result<Option<(Option<String>, SessionInput)>, BusError> {
        let entry = self
            .sessions()
            .await?
            .entry(format!("{session}.{n}"))
            .await
            .map_err(|e| BusError::new(BusErrorKind::Kv, e))?;
        match entry {
            Some(e) if e.operation == kv::Operation::Put => parse_session_request_body(&e.value).map(Some),
            _ => Ok(None),
        }
    }

    /// Request `n` of a session (its input, or a close), when it was made.
    pub async fn session_request_input(&self, session: &str, n: u64) -> Result<Option<SessionInput>, BusError> {
        Ok(self.session_request(session, n).await?.map(|(_, input)| input))
    }

    /// The id the client gave request `n` of a session: `None` when there is no such request, `Some(None)` when
    /// it came without one.
    pub async fn session_request_id(&self, session: &str, n: u64) -> Result<Option<Option<String>>, BusError> {
        Ok(self.session_request(session, n).await?.map(|(id, _)| id))
    }

    /// Note that the request its client calls `request_id` is request `n` of the session (so that a repeat of it
    /// is found after the session has answered it).
    pub async fn mark_session_request(&self, session: &str, request_id: &str, n: u64) -> Result<(), BusError> {
        let key = format!("{session}.id.{request_id}");
        self.sessions()
            .await?
            .put(key, n.to_string().into())
            .await
            .map(|_| ())
            .map_err(|e| BusError::new(BusErrorKind::Kv, e))
    }

    /// The number [`Bus::mark_session_request`] noted for that request id, if any.
    pub async fn marked_session_request(&self, session: &str, request_id: &str) -> Result<Option<u64>, BusError> {
        let key = format!("{session}.id.{request_id}");
        let entry = self.sessions().await?.entry(key).await.map_err(|e| BusError::new(BusErrorKind::Kv, e))?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .and_then(|e| std::str::from_utf8(&e.value).ok().and_then(|v| v.parse().ok())))
    }

    pub async fn serve_nodes(&self) -> Result<Subscriber, BusError> {
        self.sub(subject::NODES.into()).await
    }

    /// Offer a job to a node. `NoResponders` means the node is gone; `TimedOut` that it is slow.
    pub async fn assign(&self, node: &str, a: &Assignment, timeout: Duration) -> Result<AssignReply, BusError> {
        let body = encode_json(a)?;
        self.request_json(subject::run(node), body.into(), Some(timeout)).await
    }

    pub async fn publish_gone(&self, g: &NodeGone) -> Result<(), BusError> {
        self.publish_json(subject::gone(&g.node), g).await
    }

    /// Ask a node to evacuate or fence jobs.
    pub async fn command(&self, node: &str, c: &NodeCommand, timeout: Duration) -> Result<CommandReply, BusError> {
        let body = encode_json(c)?;
        self.request_json(subject::ctl(node), body.into(), Some(timeout)).await
    }

    /// Nodes tell placement about a job they parked.
    pub async fn serve_requeue(&self) -> Result<Subscriber, BusError> {
        self.sub(subject::REQUEUE.into()).await
    }

    /// The placement leader's lease bucket; entries expire `ttl` after their last write.
    pub async fn lease(&self, ttl: Duration) -> Result<Lease, BusError> {
        let store = ensure_bucket(
            &self.js,
            kv::Config {
                bucket: LEASE_BUCKET.into(),
                num_replicas: self.replicas,
                description: "microlambda placement leader lease".into(),
                history: 1,
                max_age: ttl,
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            },
        )
        .await?;
        Ok(Lease { store })
    }

    /// Create a job record; `AlreadyExists` when the job id is taken. Returns the revision.
    pub async fn create_record(&self, r: &JobRecord) -> Result<u64, BusError> {
        let body = encode_json(r)?;
        self.jobs.create(&r.job_id, body.into()).await.map_err(|e| match e.kind() {
            kv::CreateErrorKind::AlreadyExists => BusError::new(BusErrorKind::AlreadyExists, e),
            _ => BusError::new(BusErrorKind::Kv, e),
        })
    }

    /// Update a job record if it is still at `revision`; `WrongRevision` otherwise.
    pub async fn update_record(&self, r: &JobRecord, revision: u64) -> Result<u64, BusError> {
        let body = encode_json(r)?;
        self.jobs.update(&r.job_id, body.into(), revision).await.map_err(|e| match e.kind() {
            kv::UpdateErrorKind::WrongLastRevision => BusError::new(BusErrorKind::WrongRevision, e),
            _ => BusError::new(BusErrorKind::Kv, e),
        })
    }

    /// Write a job record unconditionally (final states).
    pub async fn put_record(&self, r: &JobRecord) -> Result<u64, BusError> {
        let body = encode_json(r)?;
        self.jobs.put(&r.job_id, body.into()).await.map_err(|e| BusError::new(BusErrorKind::Kv, e))
    }

    /// A job record and its revision.
    pub async fn record(&self, job_id: &str) -> Result<Option<(JobRecord, u64)>, BusError> {
        let entry = self.jobs.entry(job_id).await.map_err(|e| BusError::new(BusErrorKind::Kv, e))?;
        match entry {
            Some(e) if e.operation == kv::Operation::Put => {
                let r = serde_json::from_slice(&e.value).map_err(|e| BusError::new(BusErrorKind::Decode, e))?;
                Ok(Some((r, e.revision)))
            }
            _ => Ok(None),
        }
    }

    /// The ids of every job record in the bucket (finished ones included: the last 24 h).
    pub async fn record_ids(&self) -> Result<Vec<String>, BusError> {
        use futures::TryStreamExt;
        let keys = self.jobs.keys().await.map_err(|e| BusError::new(BusErrorKind::Kv, e))?;
        keys.try_collect().await.map_err(|e| BusError::new(BusErrorKind::Kv, e))
    }

    /// Every job record not in a final state, with its revision (placement's recovery after a restart, and
    /// the leader's rescan). One ordered consumer delivers the latest entry of every key in one pass (no request
    /// per key: a bucket holding the last 24 h of finished jobs is read at stream speed).
    pub async fn unfinished_records(&self) -> Result<Vec<(JobRecord, u64)>, BusError> {
        let kv_err = |e: &dyn std::fmt::Display| BusError::new(BusErrorKind::Kv, e.to_string());
        let consumer = self
            .jobs
            .stream
            .create_consumer(jetstream::consumer::push::OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                description: Some("microlambda unfinished records".into()),
                filter_subject: format!("{}>", self.jobs.prefix),
                replay_policy: jetstream::consumer::ReplayPolicy::Instant,
                deliver_policy: jetstream::consumer::DeliverPolicy::LastPerSubject,
                ..Default::default()
            })
            .await
            .map_err(|e| kv_err(&e))?;
        let mut out = Vec::new();
        if consumer.cached_info().num_pending == 0 {
            return Ok(out);
        }
        let mut messages = consumer.messages().await.map_err(|e| kv_err(&e))?;
        loop {
            let next = tokio::time::timeout(Duration::from_secs(30), messages.next())
                .await
                .map_err(|_| kv_err(&"the job records stopped coming (30 s)"))?;
            let Some(m) = next else { return Err(kv_err(&"the job records' consumer ended early")) };
            let m = m.map_err(|e| kv_err(&e))?;
            let info = m.info().map_err(|e| kv_err(&e))?;
            let (revision, pending) = (info.stream_sequence, info.pending);
            // A deleted or purged key's last entry is its marker (an `KV-Operation` header), with no record.
            let marker = m.headers.as_ref().is_some_and(|h| h.get("KV-Operation").is_some());
            if !marker {
                match serde_json::from_slice::<JobRecord>(&m.payload) {
                    Ok(r) if !r.state.is_final() => out.push((r, revision)),
                    Ok(_) => {}
                    // One unreadable record does not keep the others from being recovered.
                    Err(e) => tracing::warn!(subject = %m.subject, "skipping an unreadable job record: {e}"),
                }
            }
            if pending == 0 {
                return Ok(out);
            }
        }
    }

    // ---- both ----------------------------------------------------------------------------------------

    /// Publish an event of one of `tenant`'s jobs (the tenant in its record).
    pub async fn publish_event(&self, tenant: &str, e: &JobEvent) -> Result<(), BusError> {
        self.publish_json(subject::events(tenant, &e.job_id), e).await
    }

    // ---- node side -----------------------------------------------------------------------------------

    pub async fn publish_load(&self, r: &LoadReport) -> Result<(), BusError> {
        self.publish_json(subject::load(&r.node), r).await
    }

    pub async fn serve_assignments(&self, node: &str) -> Result<Subscriber, BusError> {
        self.sub(subject::run(node)).await
    }

    /// Tell the other nodes a module set to keep a zygote for.
    pub async fn publish_warm(&self, node: &str, hint: &WarmHint) -> Result<(), BusError> {
        self.publish_json(subject::warm(node), hint).await
    }

    /// The module sets nodes learned (each message's subject names its node).
    pub async fn subscribe_warm(&self) -> Result<Subscriber, BusError> {
        self.sub(subject::ALL_WARM.into()).await
    }

    pub async fn subscribe_radio(&self, node: &str) -> Result<Subscriber, BusError> {
        self.sub(subject::radio(node)).await
    }

    pub async fn serve_commands(&self, node: &str) -> Result<Subscriber, BusError> {
        self.sub(subject::ctl(node)).await
    }

    pub async fn serve_adopt(&self, node: &str) -> Result<Subscriber, BusError> {
        self.sub(subject::adopt(node)).await
    }

    /// Hand a job to another node (postcard). `NoResponders`: the node is gone.
    pub async fn adopt(&self, node: &str, a: &Adopt, timeout: Duration) -> Result<AssignReply, BusError> {
        let body = postcard::to_stdvec(a).map_err(|e| BusError::new(BusErrorKind::Encode, e))?;
        let req = async_nats::Request::new().payload(body.into()).timeout(Some(timeout));
        let msg = self.client.send_request(subject::adopt(node), req).await.map_err(request_error)?;
        serde_json::from_slice(&msg.payload).map_err(|e| BusError::new(BusErrorKind::Decode, e))
    }

    /// Decode an adopt request.
    pub fn decode_adopt(msg: &Message) -> Result<Adopt, BusError> {
        postcard::from_bytes(&msg.payload).map_err(|e| BusError::new(BusErrorKind::Decode, e))
    }

    /// Tell placement that a job was parked and needs a node.
    pub async fn requeue(&self, r: &Requeue, timeout: Duration) -> Result<(), BusError> {
        let body = encode_json(r)?;
        let _: serde_json::Value = self.request_json(subject::REQUEUE.into(), body.into(), Some(timeout)).await?;
        Ok(())
    }

    /// Whether a checkpoint of `len` bytes travels inline (in one message) rather than through the object store.
    pub fn fits_inline(&self, len: usize) -> bool {
        len + MESSAGE_OVERHEAD <= self.max_payload()
    }

    /// Persist a checkpoint in JetStream, returning where it is once the server has acknowledged it: in the
    /// checkpoint stream when it fits in one message, else in the object store.
    pub async fn persist_checkpoint(
        &self,
        job_id: &str,
        epoch: u64,
        seq: u64,
        envelope: &[u8],
    ) -> Result<CheckpointStore, BusError> {
        if self.fits_inline(envelope.len()) {
            let ack = self
                .js
                .publish(subject::checkpoint(job_id, epoch), Bytes::copy_from_slice(envelope))
                .await
                .map_err(|e| BusError::new(BusErrorKind::Publish, e))?
                .await
                .map_err(|e| BusError::new(BusErrorKind::Publish, e))?;
            Ok(CheckpointStore::Stream { seq: ack.sequence })
        } else {
            let name = format!("{job_id}.{epoch}.{seq}");
            let mut reader = envelope;
            self.objects.put(name.as_str(), &mut reader).await.map_err(|e| BusError::new(BusErrorKind::Kv, e))?;
            Ok(CheckpointStore::Object { name })
        }
    }

    /// The bytes of a persisted checkpoint.
    pub async fn fetch_checkpoint(&self, at: &CheckpointStore) -> Result<Vec<u8>, BusError> {
        match at {
            CheckpointStore::Stream { seq } => {
                let m = self.checkpoints.direct_get(*seq).await.map_err(|e| BusError::new(BusErrorKind::Kv, e))?;
                Ok(m.payload.to_vec())
            }
            CheckpointStore::Object { name } => {
                use tokio::io::AsyncReadExt;
                let mut obj = self.objects.get(name).await.map_err(|e| BusError::new(BusErrorKind::Kv, e))?;
                let mut out = Vec::with_capacity(obj.info().size);
                obj.read_to_end(&mut out).await.map_err(|e| BusError::new(BusErrorKind::Kv, e))?;
                Ok(out)
            }
        }
    }

    /// Remove a superseded checkpoint from the object store (stream entries age out by themselves: the
    /// stream keeps two per job and epoch).
    pub async fn drop_checkpoint(&self, at: &CheckpointStore) -> Result<(), BusError> {
        match at {
            CheckpointStore::Stream { .. } => Ok(()),
            CheckpointStore::Object { name } => {
                self.objects.delete(name).await.map_err(|e| BusError::new(BusErrorKind::Kv, e))
            }
        }
    }

    /// Remove every stream checkpoint of a finished job.
    pub async fn purge_checkpoints(&self, job_id: &str) -> Result<(), BusError> {
        self.checkpoints
            .purge()
            .filter(subject::checkpoints_of(job_id))
            .await
            .map(|_| ())
            .map_err(|e| BusError::new(BusErrorKind::Kv, e))
    }

    // ---- observers: read-only copies of internal traffic, for tools ----------------------------------

    /// What the mesh's internal subjects carry (adopt requests, node commands, checkpoint writes, job record
    /// writes), decoded here, for tools that measure the mesh (the `microlambda-bench` crate). The stream holds
    /// plain subscriptions: each gets a copy of a message beside its real receiver and never answers, so an
    /// observer changes nothing. Tools see typed [`Observed`] values, never subjects or postcard; product code
    /// does not use this.
    pub async fn observe_internal(&self) -> Result<BoxStream<'static, Observed>, BusError> {
        let adopts = self.sub(subject::ALL_ADOPTS.into()).await?.filter_map(|m| {
            let job_id = Bus::decode_adopt(&m).ok().map(|a| a.job_id);
            ready(job_id.map(|job_id| Observed::Adopt { job_id, bytes: m.payload.len() }))
        });
        let commands = self
            .sub(subject::ALL_COMMANDS.into())
            .await?
            .map(|m| Observed::Command { node: Bus::node_of(&m).to_string(), bytes: m.payload.len() });
        let checkpoints = self.sub(subject::ALL_CHECKPOINTS.into()).await?.filter_map(|m| {
            let job_id = subject::job_of(m.subject.as_str()).map(str::to_string);
            ready(job_id.map(|job_id| Observed::CheckpointWrite { job_id, bytes: m.payload.len() }))
        });
        let records = self.sub(subject::all_record_writes()).await?.filter_map(|m| {
            let job_id = subject::job_of(m.subject.as_str()).map(str::to_string);
            let state = serde_json::from_slice::<JobRecord>(&m.payload).ok().map(|r| r.state);
            ready(job_id.map(|job_id| Observed::RecordWrite { job_id, bytes: m.payload.len(), state }))
        });
        Ok(futures::stream::select_all([adopts.boxed(), commands.boxed(), checkpoints.boxed(), records.boxed()])
            .boxed())
    }
}

/// One internal message as an observer sees it ([`Bus::observe_internal`]); `bytes` is its payload's size on
/// the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// A `node.adopt` request: a job moving to a node with its checkpoint inline.
    Adopt { job_id: String, bytes: usize },
    /// A command placement sent a node (evacuate, fence).
    Command { node: String, bytes: usize },
    /// A checkpoint written to the checkpoint stream (checkpoints in the object store are not seen).
    CheckpointWrite { job_id: String, bytes: usize },
    /// A job record written (create, compare-and-set, put); `state` when the record decodes.
    RecordWrite { job_id: String, bytes: usize, state: Option<JobState> },
}

/// The placement leader's lease: one KV key whose entries expire after the lease time, taken with `create`
/// (only when nobody holds it) and renewed with compare-and-set.
#[derive(Clone)]
pub struct Lease {
    store: kv::Store,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").finish_non_exhaustive()
    }
}

impl Lease {
    /// Take the lease if nobody holds it. Returns the revision; `AlreadyExists` when someone does.
    pub async fn acquire(&self, holder: &str) -> Result<u64, BusError> {
        self.store.create(LEASE_KEY, holder.to_string().into_bytes().into()).await.map_err(|e| match e.kind() {
            kv::CreateErrorKind::AlreadyExists => BusError::new(BusErrorKind::AlreadyExists, e),
            _ => BusError::new(BusErrorKind::Kv, e),
        })
    }

    /// Renew a held lease; `WrongRevision` when it was lost.
    pub async fn renew(&self, holder: &str, revision: u64) -> Result<u64, BusError> {
        self.store.update(LEASE_KEY, holder.to_string().into_bytes().into(), revision).await.map_err(|e| {
            match e.kind() {
                kv::UpdateErrorKind::WrongLastRevision => BusError::new(BusErrorKind::WrongRevision, e),
                _ => BusError::new(BusErrorKind::Kv, e),
            }
        })
    }

    /// Give the lease up (a clean shutdown), so a standby takes over at once.
    pub async fn release(&self, revision: u64) -> Result<(), BusError> {
        self.store
            .delete_expect_revision(LEASE_KEY, Some(revision))
            .await
            .map_err(|e| BusError::new(BusErrorKind::Kv, e))
    }

    /// Who holds the lease now, if anyone.
    pub async fn holder(&self) -> Result<Option<String>, BusError> {
        let e = self.store.entry(LEASE_KEY).await.map_err(|e| BusError::new(BusErrorKind::Kv, e))?;
        Ok(e.filter(|e| e.operation == kv::Operation::Put).map(|e| String::from_utf8_lossy(&e.value).into_owned()))
    }
}

/// A session request's value: its input as JSON, nothing for a close (no JSON text is empty), after
/// `\x01<request id>\n` when its client gave it an id (no JSON text starts with that byte).
fn session_request_body(input: &SessionInput, request_id: Option<&str>) -> Result<Vec<u8>, BusError> {
    let mut body = match request_id {
        Some(id) => [&[1u8][..], id.as_bytes(), b"\n"].concat(),
        None => Vec::new(),
    };
    if let SessionInput::Input(v) = input {
        body.extend(encode_json(v)?);
    }
    Ok(body)
}

/// The request id and the input of a value [`session_request_body`] made.
fn parse_session_request_body(value: &[u8]) -> Result<(Option<String>, SessionInput), BusError> {
    let (id, rest) = match value.strip_prefix(&[1u8]) {
        Some(tagged) => {
            let end = tagged.iter().position(|&b| b == b'\n').unwrap_or(tagged.len());
            (Some(String::from_utf8_lossy(&tagged[..end]).into_owned()), tagged.get(end + 1..).unwrap_or_default())
        }
        None => (None, value),
    };
    if rest.is_empty() {
        return Ok((id, SessionInput::Close));
    }
    let v = serde_json::from_slice(rest).map_err(|e| BusError::new(BusErrorKind::Decode, e))?;
    Ok((id, SessionInput::Input(v)))
}

/// How long [`Bus::connect`] waits for JetStream to serve the mesh's streams and buckets.
const JETSTREAM_READY: Duration = Duration::from_secs(60);
/// How long [`Bus::connect_running`] (the client commands) waits for it.
const CLIENT_JETSTREAM_WAIT: Duration = Duration::from_secs(10);

/// Whether a refusal the server sent ([`Bus::refusals`]) is a permission violation.
pub fn is_permission_refusal(r: &str) -> bool {
    r.contains("Permissions Violation")
}

/// The jobs and functions buckets, the checkpoint stream and object store, each created with `replicas` when
/// missing.
async fn open_stores(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<(kv::Store, kv::Store, stream::Stream, object_store::ObjectStore), BusError> {
    let jobs = ensure_bucket(js, jobs_bucket(replicas)).await?;
    let functions = ensure_bucket(js, functions_bucket(replicas)).await?;
    let checkpoints = match js.get_stream(CHECKPOINT_STREAM).await {
        Ok(s) => s,
        Err(_) => js
            .get_or_create_stream(checkpoint_stream(replicas))
            .await
            .map_err(|e| BusError::new(BusErrorKind::Kv, format!("stream {CHECKPOINT_STREAM}: {e}")))?,
    };
    let objects = match js.get_object_store(CHECKPOINT_OBJECTS).await {
        Ok(o) => o,
        Err(_) => match js.create_object_store(checkpoint_objects(replicas)).await {
            Ok(o) => o,
            Err(_) => js
                .get_object_store(CHECKPOINT_OBJECTS)
                .await
                .map_err(|e| BusError::new(BusErrorKind::Kv, format!("object store {CHECKPOINT_OBJECTS}: {e}")))?,
        },
    };
    Ok((jobs, functions, checkpoints, objects))
}

async fn ensure_bucket(js: &jetstream::Context, cfg: kv::Config) -> Result<kv::Store, BusError> {
    match js.get_key_value(cfg.bucket.clone()).await {
        Ok(s) => Ok(s),
        Err(_) => match js.create_key_value(cfg.clone()).await {
            Ok(s) => Ok(s),
            // Another process created it in between.
            Err(_) => js
                .get_key_value(cfg.bucket.clone())
                .await
                .map_err(|e| BusError::new(BusErrorKind::Kv, format!("bucket {}: {e}", cfg.bucket))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::{checkpoint_stream, encode_json, jobs_bucket, replicas, subject, BusErrorKind};

    #[test]
    fn a_value_json_cannot_hold_is_an_encode_error() {
        // JSON object keys are strings: a map keyed by pairs does not serialize.
        let m = std::collections::BTreeMap::from([((1u8, 2u8), 3u8)]);
        assert_eq!(encode_json(&m).unwrap_err().kind, BusErrorKind::Encode);
    }

    #[test]
    fn a_node_may_use_its_own_subjects_only_and_a_client_no_internal_one() {
        use super::{permissions, Role};
        let n1 = permissions(&Role::Node("n1".into()), "UKEY").unwrap();
        for own in [subject::run("n1"), subject::ctl("n1"), subject::adopt("n1"), subject::radio("n1")] {
            assert!(n1.subscribe.contains(&own), "{own}");
        }
        assert!(n1.publish.contains(&subject::load("n1")));
        let all: Vec<&String> = n1.publish.iter().chain(&n1.subscribe).collect();
        assert!(!all.iter().any(|s| s.ends_with(".n2") || s.starts_with("$KV.ml_lease") || s.contains("CREATE.KV")));
        let client = permissions(&Role::Client { deploy: false }, "UKEY").unwrap();
        assert!(!client
            .publish
            .iter()
            .any(|s| s.starts_with("node.") || s.starts_with("radio.") || s.starts_with("$KV")));
        assert!(client.subscribe.contains(&"_INBOX_UKEY.>".to_string()));
        assert!(permissions(&Role::Ops, "UKEY").is_none());
    }

    #[test]
    fn a_client_may_use_its_own_tenants_subjects_and_function_keys_only() {
        use super::{permissions, Role};
        let c = permissions(&Role::Client { deploy: true }, "UKEY").unwrap();
        for own in [subject::submit("UKEY"), subject::status("UKEY"), subject::session_request("UKEY")] {
            assert!(c.publish.contains(&own), "{own}");
        }
        assert!(c.publish.contains(&format!("$KV.{}.UKEY.>", super::FUNCTIONS_BUCKET)));
        assert_eq!(c.subscribe, vec!["_INBOX_UKEY.>".to_string(), subject::tenant_events("UKEY")]);
        // No wildcard reaches another tenant: every tenant-carrying permission names this one.
        for p in c.publish.iter().chain(&c.subscribe) {
            let tenanted = p.starts_with("jobs.") || p.starts_with("sessions.") || p.starts_with("$KV.");
            assert!(!tenanted || p.contains(".UKEY"), "{p}");
        }
        // Placement serves every tenant and follows every tenant's events.
        let p = permissions(&Role::Placement, "PKEY").unwrap();
        assert!(p.subscribe.contains(&subject::ALL_SUBMITS.to_string()));
        assert!(p.subscribe.contains(&subject::ALL_EVENTS.to_string()));
        assert!(p.publish.contains(&subject::ALL_EVENTS.to_string()));
    }

    #[test]
    fn a_session_requests_value_keeps_its_id_and_input_apart() {
        use super::{parse_session_request_body, session_request_body, SessionInput};
        let input = SessionInput::Input(serde_json::json!({"a": [1, "x\ny"]}));
        for (inp, id) in
            [(&input, Some("r-1")), (&input, None), (&SessionInput::Close, Some("r-2")), (&SessionInput::Close, None)]
        {
            let body = session_request_body(inp, id).unwrap();
            let (got_id, got) = parse_session_request_body(&body).unwrap();
            assert_eq!((got_id.as_deref(), &got), (id, inp));
        }
        // What was recorded before request ids: the JSON alone, or nothing for a close.
        assert_eq!(parse_session_request_body(b"[1]").unwrap(), (None, SessionInput::Input(serde_json::json!([1]))));
        assert_eq!(parse_session_request_body(b"").unwrap(), (None, SessionInput::Close));
    }

    #[test]
    fn replicas_default_to_one_and_take_one_to_five() {
        // (nextest runs each test in a process of its own: the variable is this test's.)
        std::env::remove_var("MICROLAMBDA_NATS_REPLICAS");
        assert_eq!(replicas().unwrap(), 1);
        std::env::set_var("MICROLAMBDA_NATS_REPLICAS", "3");
        assert_eq!(replicas().unwrap(), 3);
        assert_eq!((jobs_bucket(3).num_replicas, checkpoint_stream(3).num_replicas), (3, 3));
        for bad in ["0", "6", "three"] {
            std::env::set_var("MICROLAMBDA_NATS_REPLICAS", bad);
            assert_eq!(replicas().unwrap_err().kind, BusErrorKind::Connect, "{bad}");
        }
    }

    #[test]
    fn node_ids_come_from_the_last_token() {
        assert_eq!(subject::last_token(&subject::load("bbu-7")), "bbu-7");
        assert_eq!(subject::last_token(&subject::radio("n")), "n");
    }

    #[test]
    fn observed_subjects_name_their_job() {
        assert_eq!(subject::job_of(&subject::checkpoint("j-1", 3)), Some("j-1"));
        assert_eq!(subject::job_of(&subject::events("t", "j_2")), Some("j_2"));
        assert_eq!(subject::job_of(&format!("$KV.{}.j3", super::JOBS_BUCKET)), Some("j3"));
        assert_eq!(subject::job_of(&subject::load("n1")), None);
        assert_eq!(subject::job_of(&subject::adopt("n1")), None);
    }
}
