//! The embedded default: a nats-server child with JetStream on a free loopback port and a temporary store,
//! killed (and its store removed) on drop. Used by `microlambda testbed` without `--nats`, and by tests; with a
//! configuration file ([`NatsServer::start_with`]) it requires the users and permissions written there.
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
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// A running nats-server child.
#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    exe: PathBuf,
    port: u16,
    store: PathBuf,
    /// The configuration file (users and permissions: [`crate::auth::AuthDir`]), when the server has one.
    config: Option<PathBuf>,
}

fn spawn(exe: &Path, port: u16, store: &Path, config: Option<&Path>) -> Result<Child, NatsdError> {
    let mut cmd = Command::new(exe);
    if let Some(c) = config {
        // First: the flags after it override the file's listen address, port and store.
        cmd.arg("-c").arg(c);
    }
    cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // The server's own log, for whoever debugs the mesh: MICROLAMBDA_NATSD_LOG=FILE.
    if let Some(log) = std::env::var_os("MICROLAMBDA_NATSD_LOG") {
        cmd.arg("-l").arg(log);
    }
    crate::proc::die_with_parent(&mut cmd);
    // Its own process group: a Ctrl-C in the terminal reaches only its parent, which stops the server after
    // the processes that use it (a server gone first leaves them waiting on their last requests).
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.spawn().map_err(|source| NatsdError::Spawn { exe: exe.display().to_string(), source })
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
        let child = spawn(&exe, port, &store, config)?;
        let mut server = NatsServer { child, exe, port, store, config: config.map(Path::to_path_buf) };
        server.wait_ready(Duration::from_secs(10))?;
        Ok(server)
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
        self.child = spawn(&self.exe, self.port, &self.store, self.config.as_deref())?;
        self.wait_ready(Duration::from_secs(10))
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), NatsdError> {
        let start = Instant::now();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        while start.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(NatsdError::NotReady { port: self.port, waited: start.elapsed() })
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
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.store);
    }
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
