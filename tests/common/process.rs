//! Child processes of the benches: SIGKILLed and reaped on drop (panics included), and killed by
//! the kernel if the bench itself dies without running destructors (PR_SET_PDEATHSIG).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};

pub struct Proc {
    child: Option<Child>,
}

impl Proc {
    /// Spawns `cmd`; `what` names it if spawning fails.
    pub fn spawn(what: &str, cmd: &mut Command) -> Proc {
        // SAFETY: prctl is async-signal-safe and touches nothing of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        Proc { child: Some(child) }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGKILL without reaping, so two kills go out back to back.
    pub fn sigkill(&self) {
        if let Some(pid) = self.pid().and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: signals our own child, which is not reaped yet (its pid is still ours).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }

    /// The exit status once it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn running(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none()
    }

    pub fn reap(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.reap();
    }
}
