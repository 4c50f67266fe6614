//! Host side of a node's zygote: a `microlambda zygote` process that has started CPython, warmed the runtime
//! and imported the node's preloaded modules once, and forks a fresh worker for every job start and restore.
//!
//! The node talks to it over a `SOCK_SEQPACKET` socket (its fd 0): `Fork` carries the child's two pipe ends
//! (`SCM_RIGHTS`); the zygote answers `Forked { pid }` and, once it has reaped the child, `Exited { status }`.
//! The child runs in its own process group (pgid = pid), so the node kills it with everything it forked. A
//! thread of the node reads the socket (answers and exit reports) and hands them to the waiting tasks.
use super::fdpass;
use super::host::{child_env, End, WorkerError, WorkerOptions, WorkerProcess};
use super::protocol::{FromZygote, ToZygote};
use crate::checkpoint::Envelope;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

type ForkReply = Result<(u32, oneshot::Receiver<i32>), String>;

/// A zygote's answer to [`Zygote::import`].
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// Modules it imported (the others it had already).
    pub imported: u32,
    /// Modules that did not import in it.
    pub failed: Vec<String>,
    /// Why it must not fork any more: an import left a thread, a process or an open file behind (it is
    /// retired: no more forks).
    pub unsafe_to_fork: Option<String>,
}

/// What a zygote says once it is up: its pid, `sys.version`, thread count, the modules that did not import,
/// the library packages it has, and (a module zygote) why its job module could not be kept.
type Ready = (u32, String, u32, Vec<String>, Vec<String>, Option<String>);

#[derive(Default)]
struct Shared {
    next_token: u64,
    pending: HashMap<u64, oneshot::Sender<ForkReply>>,
    imports: HashMap<u64, oneshot::Sender<Imported>>,
    exits: HashMap<u32, oneshot::Sender<i32>>,
    ready: Option<oneshot::Sender<Ready>>,
    alive: bool,
}

/// A running zygote.
pub struct Zygote {
    sock: Arc<OwnedFd>,
    process: Mutex<std::process::Child>,
    shared: Arc<Mutex<Shared>>,
    envelope: Arc<Envelope>,
    opts: WorkerOptions,
    pid: u32,
    python: String,
    threads: u32,
    failed_imports: Vec<String>,
    libraries: Vec<String>,
}

impl std::fmt::Debug for Zygote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zygote").field("pid", &self.pid).field("alive", &self.is_alive()).finish()
    }
}

impl Zygote {
    /// Start a zygote and wait until its interpreter is up and its modules imported. Call it from a runtime
    /// thread (not a blocking one): the zygote dies with the thread that spawned it.
    pub async fn start(opts: &WorkerOptions) -> Result<Arc<Self>, WorkerError> {
        use std::os::unix::process::CommandExt;
        let (ours, theirs) = fdpass::seqpacket_pair()?;
        let mut cmd = std::process::Command::new(&opts.exe);
        cmd.arg("zygote").stdin(Stdio::from(theirs)).stdout(Stdio::null()).stderr(Stdio::inherit());
        cmd.env_clear().envs(child_env(true));
        cmd.process_group(0);
        crate::proc::die_with_parent(&mut cmd);
        // Not reniced: its children renice themselves (`ChildConfig::nice`), the fork server keeps up.
        let process =
            cmd.spawn().map_err(|source| WorkerError::Spawn { exe: opts.exe.display().to_string(), source })?;
        let pid = process.id();
        let sock = Arc::new(ours);
        let (ready_tx, ready_rx) = oneshot::channel();
        let shared = Arc::new(Mutex::new(Shared { ready: Some(ready_tx), alive: true, ..Default::default() }));
        fdpass::send(sock.as_raw_fd(), &ToZygote::Hello(Box::new(opts.child_config())), &[])?;
        {
            let (sock, shared) = (sock.clone(), shared.clone());
            std::thread::Builder::new().name("ml-zygote".into()).spawn(move || read_loop(sock, shared, pid))?;
        }
        let mut z = Self {
            sock,
            process: Mutex::new(process),
            shared,
            envelope: Arc::new(opts.envelope()),
            opts: opts.clone(),
            pid,
            python: String::new(),
            threads: 0,
            failed_imports: Vec::new(),
            libraries: Vec::new(),
        };
        let (_, python, threads, failed, libraries, module_error) =
            match tokio::time::timeout(opts.start_timeout, ready_rx).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => {
                    let status = z.process.lock().ok().and_then(|mut p| p.wait().ok());
                    return Err(WorkerError::NotReady(format!("zygote exited during start-up ({status:?})")));
                }
                Err(_) => return Err(WorkerError::NotReady("zygote start-up timed out".into())),
            };
        if let Some(e) = module_error {
            // Dropping `z` kills it.
            return Err(WorkerError::NotReady(format!("the job's module cannot be kept in a zygote: {e}")));
        }
        if threads != 1 {
            tracing::warn!(pid, threads, "the zygote is not single-threaded after its imports: forks may deadlock");
        }
        if !failed.is_empty() {
            tracing::warn!(pid, ?failed, "the zygote is up without modules that did not import");
        }
        z.python = python;
        z.threads = threads;
        z.failed_imports = failed;
        z.libraries = libraries;
        Ok(Arc::new(z))
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `sys.version` of the zygote's interpreter.
    pub fn python_version(&self) -> &str {
        &self.python
    }

    /// Threads the zygote had once its modules were imported (1: forks are safe).
    pub fn threads(&self) -> u32 {
        self.threads
    }

    /// The library packages it has imported (sorted, named as a checkpoint's `imports` are): a restore that
    /// needs no others pays no import in its children.
    pub fn libraries(&self) -> &[String] {
        &self.libraries
    }

    /// Preloaded modules that did not import in it.
    pub fn failed_imports(&self) -> &[String] {
        &self.failed_imports
    }

    pub fn is_alive(&self) -> bool {
        self.shared.lock().map(|s| s.alive).unwrap_or(false)
    }

    /// Fork a fresh worker ahead of its job and wait for its `Ready` (after its warm-up).
    pub async fn fork(&self) -> Result<WorkerProcess, WorkerError> {
        self.fork_child(false).await
    }

    /// Fork a fresh worker for a job that waits for it, and wait for its `Ready` (a set or module zygote's child
    /// then skips the warm-up of its restore path: the job's own restore pays those page faults once).
    pub async fn fork_now(&self) -> Result<WorkerProcess, WorkerError> {
        self.fork_child(true).await
    }

    async fn fork_child(&self, now: bool) -> Result<WorkerProcess, WorkerError> {
        let (cmd_r, cmd_w) = fdpass::pipe()?;
        let (out_r, out_w) = fdpass::pipe()?;
        let rx = self.ask(
            |s| &mut s.pending,
            |token| ToZygote::Fork { token, now },
            &[cmd_r.as_raw_fd(), out_w.as_raw_fd()],
        )?;
        // The child has its copies now; ours would keep the pipes open after it exits.
        drop(cmd_r);
        drop(out_w);
        let (pid, exit) = match tokio::time::timeout(self.opts.start_timeout, rx).await {
            Ok(Ok(Ok(r))) => r,
            Ok(Ok(Err(e))) => return Err(WorkerError::Zygote(format!("fork failed: {e}"))),
            Ok(Err(_)) => return Err(WorkerError::Zygote("the zygote is gone".into())),
            Err(_) => return Err(WorkerError::Zygote("no answer to a fork".into())),
        };
        let writer = tokio::net::unix::pipe::Sender::from_owned_fd(cmd_w)?;
        let reader = tokio::net::unix::pipe::Receiver::from_owned_fd(out_r)?;
        WorkerProcess::start(Box::new(writer), reader, pid, End::Forked(Some(exit)), self.envelope.clone(), &self.opts)
            .await
    }

    /// Have the zygote import `modules` (plain dotted names) before its next fork, and wait for its answer up
    /// to the start timeout (a hung import: the zygote is killed). One that says it is no longer fit to fork is
    /// retired: no more forks; it lives while its children do.
    pub async fn import(&self, modules: Vec<String>) -> Result<Imported, WorkerError> {
        let rx = self.ask(|s| &mut s.imports, |token| ToZygote::Import { token, modules }, &[])?;
        let reply = match tokio::time::timeout(self.opts.start_timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => return Err(WorkerError::Zygote("the zygote is gone".into())),
            Err(_) => {
                self.kill();
                return Err(WorkerError::Zygote("an import did not end in time: the zygote is killed".into()));
            }
        };
        if reply.unsafe_to_fork.is_some() {
            self.retire();
        }
        Ok(reply)
    }

    /// Send the request `msg` makes of a fresh token (with `fds`), its answer awaited in `answers`: the
    /// receiver of its answer. A request that cannot be sent is forgotten.
    fn ask<T>(
        &self,
        answers: fn(&mut Shared) -> &mut HashMap<u64, oneshot::Sender<T>>,
        msg: impl FnOnce(u64) -> ToZygote,
        fds: &[i32],
    ) -> Result<oneshot::Receiver<T>, WorkerError> {
        let (tx, rx) = oneshot::channel();
        let token = {
            let mut s = self.shared.lock().map_err(|_| WorkerError::Zygote("state poisoned".into()))?;
            if !s.alive {
                return Err(WorkerError::Zygote("the zygote is gone".into()));
            }
            s.next_token += 1;
            let token = s.next_token;
            answers(&mut s).insert(token, tx);
            token
        };
        if let Err(e) = fdpass::send(self.sock.as_raw_fd(), &msg(token), fds) {
            if let Ok(mut s) = self.shared.lock() {
                answers(&mut s).remove(&token);
            }
            return Err(WorkerError::Zygote(format!("cannot reach the zygote: {e}")));
        }
        Ok(rx)
    }

    /// No more forks from this zygote (it counts as gone); the children it forked live on, and it with them.
    pub fn retire(&self) {
        if let Ok(mut s) = self.shared.lock() {
            s.alive = false;
            s.pending.clear();
        }
    }

    /// Kill the zygote (its children die with it: they have it as their parent-death signal's parent).
    pub fn kill(&self) {
        if let Ok(mut p) = self.process.lock() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The parent of a process (from `/proc/<pid>/stat`), if it exists.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: the fields after its last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `zygote`: the zygote's pid. A module zygote has run job code, which could write on its socket: a `Forked`
/// naming a process that is not the zygote's child is refused as a failed fork, so the node never takes (and
/// later kills the group of) a process it was not given.
fn read_loop(sock: Arc<OwnedFd>, shared: Arc<Mutex<Shared>>, zygote: u32) {
    loop {
        let msg = match fdpass::recv::<FromZygote>(sock.as_raw_fd()) {
            Ok(Some((m, _))) => m,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("zygote socket: {e}");
                break;
            }
        };
        let Ok(mut s) = shared.lock() else { break };
        match msg {
            FromZygote::Ready { pid, python, threads, failed, libraries, module_error } => {
                if let Some(r) = s.ready.take() {
                    let _ = r.send((pid, python, threads, failed, libraries, module_error));
                }
            }
            FromZygote::Forked { token, pid } if parent_of(pid) != Some(zygote) => {
                tracing::warn!(zygote, pid, "the zygote named a process that is not its child: refused");
                if let Some(p) = s.pending.remove(&token) {
                    let _ = p.send(Err(format!("pid {pid} is not a child of the zygote")));
                }
            }
            FromZygote::Forked { token, pid } => {
                let (etx, erx) = oneshot::channel();
                s.exits.insert(pid, etx);
                if let Some(p) = s.pending.remove(&token) {
                    if p.send(Ok((pid, erx))).is_err() {
                        // Nobody waits for this child any more (a timed-out fork): end it.
                        fdpass::kill_group(pid);
                    }
                }
            }
            FromZygote::ForkFailed { token, error } => {
                if let Some(p) = s.pending.remove(&token) {
                    let _ = p.send(Err(error));
                }
            }
            FromZygote::Imported { token, imported, failed, unsafe_to_fork } => {
                if let Some(i) = s.imports.remove(&token) {
                    let _ = i.send(Imported { imported, failed, unsafe_to_fork });
                }
            }
            FromZygote::Exited { pid, status } => {
                if let Some(e) = s.exits.remove(&pid) {
                    let _ = e.send(status);
                }
            }
        }
    }
    if let Ok(mut s) = shared.lock() {
        s.alive = false;
        s.pending.clear();
        s.imports.clear();
        for (pid, _) in s.exits.drain() {
            fdpass::kill_group(pid);
        }
        s.ready = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_of_reads_the_parent_and_none_for_no_process() {
        // SAFETY: getppid has no preconditions.
        assert_eq!(parent_of(std::process::id()), Some(unsafe { libc::getppid() } as u32));
        assert_eq!(parent_of(u32::MAX), None);
    }

    /// What a module zygote's job code could write on the socket: a `Forked` naming a process that is not the
    /// zygote's child (here, the test process itself) is answered as a failed fork, and never registered.
    #[test]
    fn a_forked_that_names_no_child_of_the_zygote_is_refused() {
        let (ours, theirs) = fdpass::seqpacket_pair().unwrap();
        let (sock, shared) = (Arc::new(ours), Arc::new(Mutex::new(Shared { alive: true, ..Default::default() })));
        let (tx, rx) = oneshot::channel();
        shared.lock().unwrap().pending.insert(1, tx);
        // The "zygote" is this process, and the pid it names is this process too: no process is its own child.
        let (me, zygote) = (std::process::id(), std::process::id());
        let reader = {
            let (sock, shared) = (sock.clone(), shared.clone());
            std::thread::spawn(move || read_loop(sock, shared, zygote))
        };
        fdpass::send(theirs.as_raw_fd(), &FromZygote::Forked { token: 1, pid: me }, &[]).unwrap();
        drop(theirs);
        reader.join().unwrap();
        match rx.blocking_recv() {
            Ok(Err(e)) => assert!(e.contains("not a child of the zygote"), "{e}"),
            other => panic!("the fork was not refused: {other:?}"),
        }
        assert!(shared.lock().unwrap().exits.is_empty(), "the process was registered as a worker");
    }
}
