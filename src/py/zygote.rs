//! The zygote process (`microlambda zygote`): CPython started, the runtime warmed and the node's preloaded
//! modules imported once; then it forks a fresh worker for every job start and restore, so a job pays neither
//! interpreter start-up nor imports, and finds nothing of the job before it.
//!
//! Fork safety: the zygote stays single-threaded (no control or writer thread: those are started in the child
//! after the fork; BLAS pools are kept at one thread by the environment the node gives it), and forks between
//! `PyOS_BeforeFork` and `PyOS_AfterFork_Parent`/`_Child`, as `os.fork` does: the import lock is held across
//! the fork, the child's thread states are reset and the `os.register_at_fork` hooks run (`random` reseeds
//! there). numpy's legacy global RNG is reseeded in the child too, so two jobs do not draw the same numbers.
//!
//! fds: 0 is the node's `SOCK_SEQPACKET` socket (see `worker::zygote`), 1 points at stderr. A child gets the
//! two pipe ends that came with its `Fork`; the socket is closed in it (fd 0 becomes `/dev/null`), so a job
//! cannot ask for forks. The zygote is a child subreaper: a job's process that escaped its group and whose
//! parent ended comes to the zygote, which kills it.
use super::{apply_limits, child_main, interp, Warm};
use crate::worker::fdpass;
use crate::worker::protocol::{ChildConfig, FromZygote, ToZygote};
use pyo3::prelude::*;
use std::collections::HashSet;
use std::io::BufReader;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

const SOCK: i32 = 0;

/// Entry point of `microlambda zygote`. Returns the process exit code.
pub fn zygote_main() -> i32 {
    // SAFETY: fd setup before anything else runs: job output (and ours) goes to stderr.
    unsafe {
        libc::dup2(2, 1);
    }
    let cfg = match fdpass::recv::<ToZygote>(SOCK) {
        Ok(Some((ToZygote::Hello(cfg), _))) => cfg,
        other => {
            eprintln!("microlambda zygote: expected Hello first, got {other:?}");
            return 2;
        }
    };
    // SAFETY: prctl on this process.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
    }
    let interp = match interp::start(cfg.python.as_deref(), &cfg.preload) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("microlambda zygote: {e}");
            return 3;
        }
    };
    // A module zygote runs the job's top level here, once, confined as a worker: anything wrong with what it
    // leaves is reported in `Ready` (the node then kills this zygote and restores the ordinary way).
    let module_error = cfg.module.as_ref().and_then(|m| preload_job_module(&cfg, m).err());
    prepare_for_forks(&cfg.index);
    let threads = thread_count();
    let me = std::process::id();
    if fdpass::send(
        SOCK,
        &FromZygote::Ready {
            pid: me,
            python: interp.version.clone(),
            threads,
            failed: interp.failed_imports.clone(),
            libraries: libraries(),
            module_error,
        },
        &[],
    )
    .is_err()
    {
        return 0;
    }
    // SIGCHLD through a signalfd, so the loop is one poll. The mask is restored in every child.
    // SAFETY: signal mask and signalfd set-up in a single-threaded process.
    let (sfd, old_mask) = unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut mask);
        libc::sigaddset(&mut mask, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &mask, &mut old);
        (libc::signalfd(-1, &mask, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK), old)
    };
    let mut live: HashSet<u32> = HashSet::new();
    // Why this zygote must not fork any more (an import it was taught left a thread, a process or a file): it
    // refuses forks the node asked for before it read the answer saying so.
    let mut unfit: Option<String> = None;
    loop {
        let mut fds = [
            libc::pollfd { fd: SOCK, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: sfd, events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: poll on two valid fds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            continue;
        }
        if fds[1].revents != 0 {
            let mut buf = [0u8; 128 * 8];
            // SAFETY: draining the signalfd into a local buffer.
            while unsafe { libc::read(sfd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) } > 0 {}
            reap(&mut live, me);
        }
        if fds[0].revents == 0 {
            continue;
        }
        match fdpass::recv::<ToZygote>(SOCK) {
            Ok(Some((ToZygote::Fork { token, .. }, _))) if unfit.is_some() => {
                let error = format!("not fit to fork: {}", unfit.as_deref().unwrap_or_default());
                let _ = fdpass::send(SOCK, &FromZygote::ForkFailed { token, error }, &[]);
            }
            Ok(Some((ToZygote::Fork { token, now }, got))) if got.len() == 2 => {
                let mut got = got.into_iter();
                let (cmd, out) = (got.next().expect("two fds"), got.next().expect("two fds"));
                match fork_child(cmd, out, &cfg, &interp, sfd, &old_mask, me, now) {
                    Ok(pid) => {
                        live.insert(pid);
                        let _ = fdpass::send(SOCK, &FromZygote::Forked { token, pid }, &[]);
                    }
                    Err(e) => {
                        let _ = fdpass::send(SOCK, &FromZygote::ForkFailed { token, error: e.to_string() }, &[]);
                    }
                }
            }
            Ok(Some((ToZygote::Fork { token, .. }, _))) => {
                let _ = fdpass::send(SOCK, &FromZygote::ForkFailed { token, error: "expected two fds".into() }, &[]);
            }
            Ok(Some((ToZygote::Import { token, modules }, _))) => {
                let answer = import_more(token, &modules, &cfg);
                if let FromZygote::Imported { unsafe_to_fork: Some(why), .. } = &answer {
                    unfit = Some(why.clone());
                }
                let _ = fdpass::send(SOCK, &answer, &[]);
            }
            Ok(Some((ToZygote::Hello(_), _))) => {}
            Ok(None) | Err(_) => {
                // The node is gone: so are its jobs.
                for pid in &live {
                    fdpass::kill_group(*pid);
                }
                return 0;
            }
        }
    }
}

/// A module zygote: set the worker's limits, user and niceness (job code runs here from now on; the children
/// inherit them), execute the job's module, and check it left no thread, open file or process behind (a
/// thread would make forks unsafe; a file or socket would be shared by every child, its offset included).
fn preload_job_module(cfg: &ChildConfig, m: &crate::worker::protocol::ModuleSpec) -> Result<(), String> {
    let fds_before = open_fds();
    // Every limit but CPU time, which counts over a process's life (its imports, every fork it will make):
    // each child sets its own, and the top level here is bounded by the node's start timeout instead.
    let limits = crate::config::WorkerLimits { cpu_seconds: 0, ..cfg.limits.clone() };
    apply_limits(&limits).map_err(|e| format!("cannot set its limits: {e}"))?;
    if cfg.nice != 0 {
        // SAFETY: nice(2) on this (the only) thread; the children inherit it and do not add it again.
        unsafe { libc::nice(cfg.nice) };
    }
    Python::attach(|py| {
        py.import("microlambda_rt")
            .and_then(|rt| rt.getattr("preload_module")?.call1((&m.module_name, &m.filename, &m.source)).map(|_| ()))
            .map_err(|e| {
                format!(
                    "its top level raised {}: {}",
                    e.get_type(py).name().map(|n| n.to_string()).unwrap_or_default(),
                    e.value(py)
                )
            })
    })?;
    left_behind(&fds_before, &[]).map_err(|e| format!("its top level left {e}"))
}

/// What would make forks unsafe or share something between children, left since `fds_before` and
/// `kids_before` were taken: a thread, a process, a file open.
fn left_behind(fds_before: &[i32], kids_before: &[u32]) -> Result<(), String> {
    if thread_count() != 1 {
        return Err(format!("{} threads", thread_count() - 1));
    }
    let kids: Vec<u32> =
        crate::proc::children_of(std::process::id()).into_iter().filter(|p| !kids_before.contains(p)).collect();
    if !kids.is_empty() {
        return Err(format!("{} processes", kids.len()));
    }
    let left: Vec<i32> = open_fds().into_iter().filter(|fd| !fds_before.contains(fd)).collect();
    if !left.is_empty() {
        return Err(format!("{} files open (fds {left:?})", left.len()));
    }
    Ok(())
}

/// `ToZygote::Import`: import what this zygote's children imported again each, then warm and freeze again as
/// before the first fork (the new modules indexed, `WARM_MODULES` updated, their objects frozen). Confined as
/// the zygote is (a module zygote's limits; job code has run here already); a set zygote imports only modules
/// of the standard library and of the packages it has (`import_for_forks`' `known_only`). An import that
/// leaves a thread, a process or a file open makes the zygote unfit to fork: it says so and the node retires it.
fn import_more(token: u64, modules: &[String], cfg: &ChildConfig) -> FromZygote {
    // A set zygote serves every job whose checkpoints name its set: only the standard library and its packages.
    let known_only = cfg.module.is_none();
    let t0 = std::time::Instant::now();
    // Its workers, and a job's escaped process it adopted and has not killed yet, are not the import's.
    let (fds_before, kids_before) = (open_fds(), crate::proc::children_of(std::process::id()));
    let (imported, failed) = Python::attach(|py| {
        py.import("microlambda_rt")
            .and_then(|rt| {
                rt.getattr("import_for_forks")?.call1((modules.to_vec(), known_only))?.extract::<(u32, Vec<String>)>()
            })
            .unwrap_or_else(|e| {
                eprintln!("microlambda zygote: importing for forks failed: {e}");
                (0, modules.to_vec())
            })
    });
    let unsafe_to_fork = left_behind(&fds_before, &kids_before).err().map(|e| format!("an import left {e}"));
    if imported > 0 && unsafe_to_fork.is_none() {
        prepare_for_forks(&cfg.index);
        // The library packages, as a capture names them, brought up to date here once (not in every child).
        libraries();
    }
    if std::env::var_os("ML_DEBUG").is_some() {
        eprintln!("zygote: imported {imported} of {} modules in {:?}, failed {failed:?}", modules.len(), t0.elapsed());
    }
    FromZygote::Imported { token, imported, failed, unsafe_to_fork }
}

/// The process's open file descriptors.
fn open_fds() -> Vec<i32> {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// Pay once, here, what every child would pay again on its first job, and keep the children's pages shared:
/// first uses of the compiler and of json, the runtime's index of library modules brought up to date (else
/// every child would walk, and so copy, all of `sys.modules` at its first job), then `gc.freeze()` (the zygote's objects move to a generation the
/// collector never scans, so a child's collections do not write to, hence copy, every shared page).
fn prepare_for_forks(index: &[String]) {
    Python::attach(|py| {
        let warm = cr#"
import json, microlambda_rt
compile('def main(x):\n    return x + 1\n', '<warm>', 'exec')
json.dumps(json.loads('[1, {"a": 2.5}]'))
microlambda_rt.warm()
"#;
        if let Err(e) = py.run(warm, None, None) {
            eprintln!("microlambda zygote: warming for forks failed: {e}");
        }
        // A set or module zygote: the code index of the modules a restore of its set looked code up in.
        if !index.is_empty() {
            let built =
                py.import("microlambda_rt").and_then(|rt| rt.getattr("index_modules")?.call1((index.to_vec(),)));
            if let Err(e) = built {
                eprintln!("microlambda zygote: indexing the restores' modules failed: {e}");
            }
        }
        super::numbers::read_writable_span();
        if let Err(e) = py.run(c"import gc\ngc.collect()\ngc.freeze()\n", None, None) {
            eprintln!("microlambda zygote: freezing for forks failed: {e}");
        }
    });
}

/// The library packages imported here, named as a checkpoint's `imports` are (`capture.library_imports`).
fn libraries() -> Vec<String> {
    Python::attach(|py| {
        py.import("microlambda_rt.capture")
            .and_then(|m| m.getattr("library_imports")?.call0()?.extract::<Vec<String>>())
            .unwrap_or_else(|e| {
                eprintln!("microlambda zygote: cannot list its libraries: {e}");
                Vec::new()
            })
    })
}

/// Reap ended children and report those the node forked; kill adopted orphans (job processes that left their
/// group, whose parent ended).
fn reap(live: &mut HashSet<u32>, me: u32) {
    loop {
        let mut status = 0;
        // SAFETY: wait4 on our own children, into a local rusage.
        let (pid, ru) = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            (libc::wait4(-1, &mut status, libc::WNOHANG, &mut ru), ru)
        };
        if pid <= 0 {
            break;
        }
        if std::env::var_os("ML_DEBUG").is_some() {
            // What a worker cost in all: its page faults (copy on write, mostly) are most of it.
            let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
            eprintln!(
                "zygote: reaped {pid}: {} minor page faults, user {:.2} ms, system {:.2} ms",
                ru.ru_minflt,
                ms(ru.ru_utime),
                ms(ru.ru_stime)
            );
        }
        if live.remove(&(pid as u32)) {
            let _ = fdpass::send(SOCK, &FromZygote::Exited { pid: pid as u32, status }, &[]);
        }
    }
    for c in crate::proc::children_of(me) {
        if !live.contains(&c) {
            crate::proc::signal_tree(c, libc::SIGKILL);
        }
    }
}

fn thread_count() -> u32 {
    std::fs::read_dir("/proc/self/task").map(|d| d.count() as u32).unwrap_or(0)
}

/// Fork one worker (`now`: for a job that waits for it). In the parent: its pid. The child never returns from here.
#[allow(clippy::too_many_arguments)]
fn fork_child(
    cmd: OwnedFd,
    out: OwnedFd,
    cfg: &ChildConfig,
    interp: &interp::Interp,
    sfd: i32,
    old_mask: &libc::sigset_t,
    zygote: u32,
    now: bool,
) -> std::io::Result<u32> {
    // SAFETY: the zygote is single-threaded here; the GIL is held across the fork as os.fork holds it, and the
    // Before/AfterFork calls are CPython's own fork protocol.
    let t_fork = std::time::Instant::now();
    let pid = Python::attach(|_py| unsafe {
        pyo3::ffi::PyOS_BeforeFork();
        let pid = libc::fork();
        if pid == 0 {
            pyo3::ffi::PyOS_AfterFork_Child();
            if std::env::var_os("ML_DEBUG").is_some() {
                eprintln!("child: after-fork hooks {:?}, {} page faults", t_fork.elapsed(), super::minor_faults());
            }
        } else {
            pyo3::ffi::PyOS_AfterFork_Parent();
        }
        pid
    });
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid > 0 {
        if std::env::var_os("ML_DEBUG").is_some() {
            eprintln!("zygote: fork {:?}", t_fork.elapsed());
        }
        // `cmd` and `out` close here: only the child holds them now.
        return Ok(pid as u32);
    }
    // The child.
    // SAFETY: process set-up in the fresh child, before it starts any thread.
    unsafe {
        libc::sigprocmask(libc::SIG_SETMASK, old_mask, std::ptr::null_mut());
        libc::close(sfd);
        // Its own process group (the node kills the job with everything it forks) and session.
        libc::setsid();
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() as u32 != zygote {
            libc::_exit(1);
        }
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        // The socket to the zygote is fd 0: replace it with /dev/null, so the job cannot ask for forks.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        if null < 0 || libc::dup2(null, SOCK) < 0 {
            libc::_exit(1);
        }
        libc::close(null);
    }
    if let Err(e) = apply_limits(&cfg.limits) {
        eprintln!("microlambda worker: cannot set its limits: {e}");
        // SAFETY: ending the child before it ran anything.
        unsafe { libc::_exit(3) };
    }
    // SAFETY: a change of user clears the parent-death signal: set it again, and check the zygote is still there.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() as u32 != zygote {
            libc::_exit(1);
        }
    }
    Python::attach(|py| {
        // numpy's legacy global RNG is not reseeded by os.fork's hooks; a job's own process would have its own.
        if let Ok(Some(npr)) = py.import("sys").and_then(|s| {
            s.getattr("modules")?.call_method1("get", ("numpy.random",)).map(|m| (!m.is_none()).then_some(m))
        }) {
            let _ = npr.call_method0("seed");
        }
    });
    debug_assert!(cmd.as_raw_fd() != SOCK);
    if std::env::var_os("ML_DEBUG").is_some() {
        eprintln!("child: set up {:?} after the fork began, {} page faults", t_fork.elapsed(), super::minor_faults());
    }
    // SAFETY: `cmd` is the command pipe's read end, owned from here on by the reader.
    let input = BufReader::new(unsafe { std::fs::File::from_raw_fd(cmd.into_raw_fd()) });
    // A module zygote runs at the job's niceness already (nice(2) adds up).
    let nice = if cfg.module.is_some() { 0 } else { cfg.nice };
    // A child of a set or module zygote serves restores only: its warm-up restores too.
    // `ML_WARMUP=0` in the node's environment leaves the warm-up out, `=job` the restore in it (to measure
    // what they save).
    let setting = std::env::var("ML_WARMUP").unwrap_or_default();
    let warm = if setting == "0" {
        Warm::Off
    } else if cfg.restores {
        // Forked on demand, the job's own restore pays its first writes once (a warm-up would add to them).
        if now {
            Warm::Off
        } else if setting == "job" {
            Warm::Job
        } else {
            Warm::Restore
        }
    } else {
        Warm::Job
    };
    let code =
        child_main(input, std::fs::File::from(out), interp.interp, &interp.version, &cfg.limits, nice, cfg.reuse, warm);
    // SAFETY: the child never returns into the zygote's loop.
    unsafe { libc::_exit(code) }
}
