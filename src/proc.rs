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

/// Send SIGTERM to a process (a polite stop; the caller kills after a grace period).
pub fn terminate(pid: u32) {
    // SAFETY: kill(2) with a pid we spawned.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}
