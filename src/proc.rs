//! Child processes of the mesh (nats-server, testbed nodes) die with their parent, even on SIGKILL, so a
//! crashed testbed or test never leaks processes.

/// Ask the kernel to SIGKILL the child when the spawning thread's process dies (Linux `PR_SET_PDEATHSIG`).
pub fn die_with_parent(cmd: &mut std::process::Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure only calls prctl, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// Start the child with its niceness raised by `inc` (lower CPU priority).
pub fn renice(cmd: &mut std::process::Command, inc: i32) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure only calls nice(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            // nice() returns the new value, which may legitimately be -1: errors are ignored (the worker still runs).
            libc::nice(inc);
            Ok(())
        });
    }
}

/// Send SIGTERM to a process (a polite stop; the caller kills after a grace period).
pub fn terminate(pid: u32) {
    // SAFETY: kill(2) with a pid we spawned.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

/// The pids of a process's children.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// Send a signal to a process and all its descendants (a whole BBU paused with SIGSTOP, resumed with SIGCONT).
pub fn signal_tree(pid: u32, sig: i32) {
    for c in children_of(pid) {
        signal_tree(c, sig);
    }
    // SAFETY: kill(2) on a pid we spawned or one of its children.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Whether a process of this node may make a network namespace of its own (`node.limits.network = false`):
/// tried in a forked child, which does nothing else, so this process's namespace is untouched.
pub fn can_make_a_network_namespace() -> Result<(), String> {
    // SAFETY: the child only calls unshare(2) and _exit(2) (async-signal-safe) before it ends.
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            return Err(format!("fork: {}", std::io::Error::last_os_error()));
        }
        if pid == 0 {
            let ok = libc::unshare(libc::CLONE_NEWNET) == 0;
            let errno = if ok { 0 } else { *libc::__errno_location() };
            libc::_exit(errno.clamp(0, 255));
        }
        let mut status = 0;
        if libc::waitpid(pid, &mut status, 0) != pid {
            return Err(format!("waitpid: {}", std::io::Error::last_os_error()));
        }
        match libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)) {
            Some(0) => Ok(()),
            Some(errno) => Err(format!("unshare(CLONE_NEWNET): {}", std::io::Error::from_raw_os_error(errno))),
            None => Err(format!("the probe ended with status {status}")),
        }
    }
}
