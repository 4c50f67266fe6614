//! The embedded default: a nats-server child with JetStream on a free loopback port and a temporary store,
//! killed (and its store removed) on drop. Used by `microlambda testbed` without `--nats`, and by tests; with a
//! configuration file ([`NatsServer::start_with`]) it requires the users and permissions written there.
//! [`ServerOptions`] add JetStream's fsync policy ([`SyncInterval`]), the monitoring endpoint and membership of
//! a cluster: [`start_cluster`] starts servers routed to each other on loopback ports, each with its own store.
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum NatsdError {
    #[error("no nats-server binary found (looked at {0}); run `make setup`, or set MICROLAMBDA_NATS_SERVER")]
    NotFound(String),
    #[error("cannot start {exe}: {source}")]
    Spawn { exe: String, source: std::io::Error },
    #[error("nats-server on port {port} did not accept connections within {waited:?}")]
    NotReady { port: u16, waited: Duration },
    #[error("nats-server on port {port}: JetStream not healthy within {waited:?} (last answer: {last})")]
    NotHealthy { port: u16, waited: Duration, last: String },
    #[error("{0}: `default`, `always`, or a duration such as `500ms`, `10s`, `2m`")]
    BadSyncInterval(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// When JetStream flushes (fsyncs) its store files to disk: nats-server's `jetstream.sync_interval`.
/// `Default` is the server's own policy (every 2 minutes): an acknowledged write survives the server process
/// dying but can be lost when the machine loses power before the next flush. `Always` flushes before every
/// acknowledgement: no acknowledged write is lost on power failure, at a throughput cost (docs/PROTOCOL.md,
/// "Durability").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncInterval {
    #[default]
    Default,
    Always,
    Every(Duration),
}

impl SyncInterval {
    /// `default`, `always`, or a duration: `<n>ms`, `<n>s` or `<n>m` (at least 1 ms).
    pub fn parse(text: &str) -> Result<Self, NatsdError> {
        let t = text.trim();
        let bad = || NatsdError::BadSyncInterval(format!("{text:?}"));
        match t {
            "" | "default" => return Ok(Self::Default),
            "always" => return Ok(Self::Always),
            _ => {}
        }
        let (num, unit_ms) = if let Some(n) = t.strip_suffix("ms") {
            (n, 1)
        } else if let Some(n) = t.strip_suffix('s') {
            (n, 1000)
        } else if let Some(n) = t.strip_suffix('m') {
            (n, 60_000)
        } else {
            return Err(bad());
        };
        match num.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Self::Every(Duration::from_millis(n.saturating_mul(unit_ms)))),
            _ => Err(bad()),
        }
    }

    /// The value in nats-server's configuration syntax; none for the server's default.
    pub fn config_value(&self) -> Option<String> {
        match self {
            Self::Default => None,
            Self::Always => Some("always".into()),
            Self::Every(d) => Some(format!("\"{}ms\"", d.as_millis())),
        }
    }
}

/// How to start one server beyond its port: the caller's configuration file (users, TLS), JetStream's fsync
/// policy, the monitoring endpoint, and a cluster to join.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// A configuration file the server reads (`-c`): a secured server's users and permissions, TLS.
    pub config: Option<PathBuf>,
    pub sync: SyncInterval,
    /// Open the monitoring endpoint (`/varz`, `/healthz`, `/jsz`) on a free loopback port.
    pub monitor: bool,
}

/// A server's membership of a cluster: its name, its route port and every member's route port.
#[derive(Debug, Clone)]
struct ClusterMember {
    server_name: String,
    cluster_name: String,
    route_port: u16,
    routes: Vec<u16>,
}

/// A running nats-server child.
#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    exe: PathBuf,
    port: u16,
    store: PathBuf,
    /// The configuration file it runs with: the caller's ([`crate::auth::AuthDir`]), or one written here (in
    /// `store`) that holds the caller's and [`ServerOptions`]'s settings.
    config: Option<PathBuf>,
    monitor_port: Option<u16>,
    cluster: Option<ClusterMember>,
    /// The name it runs under (`-n`; a cluster member's is its member name): unique to this server, so that
    /// [`NatsServer::wait_ready`] knows the listener on its port is this process and not another server that
    /// took the port first.
    server_name: String,
}

fn spawn(
    exe: &Path,
    port: u16,
    store: &Path,
    config: Option<&Path>,
    name: &str,
    member: bool,
) -> Result<Child, NatsdError> {
    let mut cmd = Command::new(exe);
    if let Some(c) = config {
        // First: the flags after it override the file's listen address, port and store.
        cmd.arg("-c").arg(c);
    }
    cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-n", name, "-sd"])
        .arg(store)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // The server's own log, for whoever debugs the mesh: MICROLAMBDA_NATSD_LOG=FILE (a cluster's servers add
    // their name: FILE.nats-2).
    if let Some(log) = std::env::var_os("MICROLAMBDA_NATSD_LOG") {
        let mut log = PathBuf::from(log);
        if member {
            log.as_mut_os_string().push(format!(".{name}"));
        }
        cmd.arg("-l").arg(log);
    }
    crate::proc::die_with_parent(&mut cmd);
    // Its own process group: a Ctrl-C in the terminal reaches only its parent, which stops the server after
    // the processes that use it (a server gone first leaves them waiting on their last requests).
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.spawn().map_err(|source| NatsdError::Spawn { exe: exe.display().to_string(), source })
}

/// The configuration file of a server with `opts` (and `cluster`), written in its store (0600; the caller's file,
/// which holds public keys and file names only, is copied in); none when the caller's own file is all it needs.
fn write_config(
    store: &Path,
    opts: &ServerOptions,
    monitor_port: Option<u16>,
    cluster: Option<&ClusterMember>,
) -> Result<Option<PathBuf>, NatsdError> {
    let sync = opts.sync.config_value();
    if sync.is_none() && monitor_port.is_none() && cluster.is_none() {
        return Ok(opts.config.clone());
    }
    let mut text = String::from("# Written by microlambda (src/natsd.rs).\n");
    if let Some(c) = &opts.config {
        text.push_str(&std::fs::read_to_string(c)?);
        text.push('\n');
    }
    if let Some(p) = monitor_port {
        text.push_str(&format!("http: \"127.0.0.1:{p}\"\n"));
    }
    if let Some(v) = sync {
        text.push_str(&format!("jetstream {{\n  sync_interval: {v}\n}}\n"));
    }
    if let Some(m) = cluster {
        let routes: Vec<String> = m.routes.iter().map(|p| format!("\"nats-route://127.0.0.1:{p}\"")).collect();
        text.push_str(&format!(
            "server_name: \"{}\"\ncluster {{\n  name: \"{}\"\n  listen: \"127.0.0.1:{}\"\n  routes: [{}]\n}}\n",
            m.server_name,
            m.cluster_name,
            m.route_port,
            routes.join(", ")
        ));
    }
    let path = store.join("server.conf");
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)?;
    f.write_all(text.as_bytes())?;
    Ok(Some(path))
}

/// The JSON of an `INFO` line, the first line a NATS server sends on a new connection (before any TLS).
pub fn parse_info(line: &str) -> Option<serde_json::Value> {
    serde_json::from_str(line.strip_prefix("INFO ")?.trim_end()).ok()
}

/// The `server_name` of the INFO line the server at the other end of `stream` sends first.
fn info_server_name(stream: TcpStream) -> Option<String> {
    use std::io::BufRead;
    stream.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(stream).read_line(&mut line).ok()?;
    parse_info(&line)?["server_name"].as_str().map(str::to_string)
}

impl NatsServer {
    /// Start a server; `exe` overrides the binary search (see [`find_server`]).
    pub fn start(exe: Option<&Path>) -> Result<Self, NatsdError> {
        Self::start_on(exe, None)
    }

    /// [`NatsServer::start`] on `port` when given and free, else on a free port ([`NatsServer::port`] says
    /// which).
    pub fn start_on(exe: Option<&Path>, port: Option<u16>) -> Result<Self, NatsdError> {
        Self::start_with(exe, port, None)
    }

    /// [`NatsServer::start_on`] with a configuration file (`-c`): a secured server's users and permissions.
    pub fn start_with(exe: Option<&Path>, port: Option<u16>, config: Option<&Path>) -> Result<Self, NatsdError> {
        let opts = ServerOptions { config: config.map(Path::to_path_buf), ..Default::default() };
        Self::start_opts(exe, port, &opts)
    }

    /// [`NatsServer::start_on`] with [`ServerOptions`].
    pub fn start_opts(exe: Option<&Path>, port: Option<u16>, opts: &ServerOptions) -> Result<Self, NatsdError> {
        let mut s = Self::spawn_member(exe, port, opts, None)?;
        if let Err(e) = s.wait_ready(Duration::from_secs(10)) {
            // The port asked for was free when looked at and taken before this server bound it (another
            // testbed starting at the same instant): a free port instead.
            if port.is_none() || s.is_running() {
                return Err(e);
            }
            s = Self::spawn_member(exe, None, opts, None)?;
            s.wait_ready(Duration::from_secs(10))?;
        }
        if opts.monitor {
            s.wait_healthy(Duration::from_secs(10))?;
        }
        Ok(s)
    }

    /// Spawn without waiting for it to be ready.
    fn spawn_member(
        exe: Option<&Path>,
        port: Option<u16>,
        opts: &ServerOptions,
        cluster: Option<ClusterMember>,
    ) -> Result<Self, NatsdError> {
        let exe = match exe {
            Some(e) => e.to_path_buf(),
            None => find_server()?,
        };
        let port = match port.filter(|&p| p != 0 && port_is_free(p)) {
            Some(p) => p,
            None => free_port()?,
        };
        let store = std::env::temp_dir().join(format!("microlambda-nats-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&store)?;
        let monitor_port = if opts.monitor { Some(free_port()?) } else { None };
        let config = write_config(&store, opts, monitor_port, cluster.as_ref())?;
        let server_name = match &cluster {
            Some(c) => c.server_name.clone(),
            None => format!("microlambda-{}-{port}-{:08x}", std::process::id(), rand::random::<u32>()),
        };
        let child = spawn(&exe, port, &store, config.as_deref(), &server_name, cluster.is_some())?;
        Ok(NatsServer { child, exe, port, store, config, monitor_port, cluster, server_name })
    }

    /// Stop the server (SIGTERM: JetStream flushes its store) and start it again on the same port with the
    /// same store, as an operator restarting it would. Clients reconnect by themselves. The new process dies
    /// with the calling thread (PR_SET_PDEATHSIG): call from a thread that outlives the server.
    pub fn restart(&mut self, down_for: Duration) -> Result<(), NatsdError> {
        crate::proc::terminate(self.child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !matches!(self.child.try_wait(), Ok(Some(_))) {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(down_for);
        self.start_again()
    }

    /// SIGKILL the server (a crash: nothing flushed) and reap it; [`NatsServer::start_again`] brings it back.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start a stopped or killed server again on the same port, store and configuration, and wait until it
    /// accepts connections (a cluster member: until its JetStream is healthy). The same thread rule as
    /// [`NatsServer::restart`].
    pub fn start_again(&mut self) -> Result<(), NatsdError> {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
        let member = self.cluster.is_some();
        self.child = spawn(&self.exe, self.port, &self.store, self.config.as_deref(), &self.server_name, member)?;
        self.wait_ready(Duration::from_secs(10))?;
        if self.cluster.is_some() {
            self.wait_healthy(Duration::from_secs(30))?;
        }
        Ok(())
    }

    /// SIGSTOP (`pause: true`) or SIGCONT the server: a frozen server keeps its connections open and answers
    /// nothing.
    pub fn pause(&self, pause: bool) {
        let sig = if pause { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: kill(2) on our own child, not yet reaped (the Child is held).
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    /// Whether the process is still there (not exited nor killed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), NatsdError> {
        let start = Instant::now();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        while start.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            // Ready when the server answering on the port is this one (its INFO names it): another server that
            // took the port first is not (this one then exits, unable to bind).
            if let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
                if info_server_name(stream).as_deref() == Some(self.server_name.as_str()) {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(NatsdError::NotReady { port: self.port, waited: start.elapsed() })
    }

    /// Wait until `/healthz` says JetStream is current (in a cluster: a meta leader elected, this server
    /// caught up). Needs the monitoring endpoint.
    pub fn wait_healthy(&mut self, limit: Duration) -> Result<(), NatsdError> {
        let start = Instant::now();
        let mut last = String::from("none");
        while start.elapsed() < limit {
            match self.monitor("/healthz") {
                Some((200, _)) => return Ok(()),
                Some((code, body)) => last = format!("{code} {}", body.trim()),
                None => {}
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(NatsdError::NotHealthy { port: self.port, waited: start.elapsed(), last })
    }

    /// `GET path` on the monitoring endpoint: the status code and the body; none without the endpoint or an
    /// answer within 2 s.
    pub fn monitor(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let port = self.monitor_port?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        // HTTP/1.0: the answer is the body as it is (never chunked), and the server closes the connection.
        let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        s.write_all(req.as_bytes()).ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).ok()?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n")?;
        let code = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, body.to_string()))
    }

    /// `/varz` as JSON (the server's settings and counters; `jetstream.config.sync_interval`,
    /// `jetstream.config.sync_always`), when the monitoring endpoint is open.
    pub fn varz(&self) -> Option<serde_json::Value> {
        let (code, body) = self.monitor("/varz")?;
        (code == 200).then(|| serde_json::from_str(&body).ok()).flatten()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The monitoring endpoint's port, when open ([`ServerOptions::monitor`]).
    pub fn monitor_port(&self) -> Option<u16> {
        self.monitor_port
    }

    /// Its `server_name` in a cluster (what JetStream names a stream's leader by).
    pub fn name(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| c.server_name.as_str())
    }

    /// The configuration file it runs with, if any.
    pub fn config_file(&self) -> Option<&Path> {
        self.config.as_deref()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        // A paused server is killed too (SIGKILL needs no SIGCONT).
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// `n` servers of one cluster (`microlambda`), routed to each other on free loopback ports, each with JetStream,
/// its own store and the monitoring endpoint, named `nats-1` .. `nats-<n>`; returned once every one says its
/// JetStream is healthy (a meta leader elected). Streams made on it should have `n` replicas (at most 5:
/// `MICROLAMBDA_NATS_REPLICAS`). The processes die with the calling thread.
pub fn start_cluster(exe: Option<&Path>, n: usize, opts: &ServerOptions) -> Result<Vec<NatsServer>, NatsdError> {
    let routes: Vec<u16> = (0..n).map(|_| free_port()).collect::<Result<_, _>>()?;
    let opts = ServerOptions { monitor: true, ..opts.clone() };
    let mut servers = Vec::with_capacity(n);
    for (i, route_port) in routes.iter().enumerate() {
        let member = ClusterMember {
            server_name: format!("nats-{}", i + 1),
            cluster_name: "microlambda".into(),
            route_port: *route_port,
            routes: routes.clone(),
        };
        servers.push(NatsServer::spawn_member(exe, None, &opts, Some(member))?);
    }
    for s in &mut servers {
        s.wait_ready(Duration::from_secs(10))?;
    }
    for s in &mut servers {
        s.wait_healthy(Duration::from_secs(30))?;
    }
    Ok(servers)
}

/// The URL a client of these servers connects with: theirs, comma-separated (it picks one and fails over).
pub fn cluster_url(servers: &[NatsServer]) -> String {
    servers.iter().map(NatsServer::url).collect::<Vec<_>>().join(",")
}

/// Nobody listens on this loopback port right now.
pub fn port_is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
        && TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Duration::from_millis(100))
            .is_err()
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

/// `$MICROLAMBDA_NATS_SERVER`, else `.venv/bin/nats-server` in the current directory or next to the
/// project the running binary was built in, else `nats-server` on `$PATH`.
pub fn find_server() -> Result<PathBuf, NatsdError> {
    let mut tried = Vec::new();
    let mut candidates = Vec::new();
    if let Ok(p) = std::env::var("MICROLAMBDA_NATS_SERVER") {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(PathBuf::from(".venv/bin/nats-server"));
    candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/nats-server"));
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            candidates.push(dir.join("nats-server"));
        }
    }
    for c in candidates {
        if c.is_file() {
            return Ok(c);
        }
        tried.push(c.display().to_string());
    }
    Err(NatsdError::NotFound(tried.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::{parse_info, SyncInterval};
    use std::time::Duration;

    #[test]
    fn an_info_line_is_read_and_anything_else_is_not() {
        let info = parse_info("INFO {\"server_name\":\"a\",\"tls_required\":true}\r\n").unwrap();
        assert_eq!((info["server_name"].as_str(), info["tls_required"].as_bool()), (Some("a"), Some(true)));
        assert!(parse_info("-ERR 'x'\r\n").is_none());
        assert!(parse_info("INFO {not json").is_none());
    }

    #[test]
    fn a_sync_interval_is_default_always_or_a_duration() {
        assert_eq!(SyncInterval::parse("default").unwrap(), SyncInterval::Default);
        assert_eq!(SyncInterval::parse("always").unwrap().config_value().as_deref(), Some("always"));
        let every = SyncInterval::parse("2s").unwrap();
        assert_eq!(every, SyncInterval::Every(Duration::from_secs(2)));
        assert_eq!(every.config_value().as_deref(), Some("\"2000ms\""));
        assert_eq!(SyncInterval::parse("250ms").unwrap(), SyncInterval::Every(Duration::from_millis(250)));
        assert_eq!(SyncInterval::parse("1m").unwrap(), SyncInterval::Every(Duration::from_secs(60)));
        assert_eq!(SyncInterval::Default.config_value(), None);
        for bad in ["sometimes", "0s", "10", "-1s", "1h"] {
            assert!(SyncInterval::parse(bad).is_err(), "{bad}");
        }
    }
}
