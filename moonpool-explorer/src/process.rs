//! The process plumbing of a split (Unix): fork, a child's setup, its wall-clock budget, waiting
//! for children, killing them.
//!
//! **No orphans.** On Linux a child asks the kernel to kill it when its parent dies
//! (`prctl(PR_SET_PDEATHSIG, SIGKILL)`), and leaves at once if its parent died before it could
//! ask; so killing any process of the tree (the root included) takes its whole subtree down, level
//! by level. On macOS, which has no such call, a child checks its parent at every split and every
//! wait and leaves when it is gone; a child that is simulating meanwhile ends within its
//! wall-clock budget (below) at the latest.
//!
//! **Hangs.** A child arms `ITIMER_REAL` with its timeline's wall-clock budget and restores the
//! default action of `SIGALRM` (terminate), so a timeline that spins or blocks past its budget is
//! ended by the kernel without any help from its own (stuck) thread; its parent reports it as a
//! hang. The timer is paused while the child waits for its own children, so the budget counts the
//! child's own work only.

#![cfg(unix)]

use std::io::Write;
use std::time::Duration;

/// Exit code of a child whose timeline ran to its end and found nothing new.
pub(crate) const EXIT_PLAIN: i32 = 77;
/// Exit code of a child whose timeline (or a descendant) found something new or a bug.
pub(crate) const EXIT_NOVEL: i32 = 78;
/// Exit code of a child that found its parent gone.
pub(crate) const EXIT_ORPHANED: i32 = 79;
/// Exit code of a child that left its timeline's code path without ending it (a wiring bug).
pub(crate) const EXIT_ESCAPED: i32 = 80;

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// It exited with this code.
    Exited(i32),
    /// A signal ended it.
    Signaled(i32),
    /// It cannot be waited for any more (something else reaped it, e.g. `SIGCHLD` ignored).
    Lost,
}

/// This process's id.
pub(crate) fn pid() -> i32 {
    // SAFETY: getpid has no preconditions and cannot fail.
    unsafe { libc::getpid() }
}

/// This process's parent's id.
pub(crate) fn parent_pid() -> i32 {
    // SAFETY: getppid has no preconditions and cannot fail.
    unsafe { libc::getppid() }
}

/// Flushes the standard streams, so that a child does not write the parent's buffered output a
/// second time.
pub(crate) fn flush_std() {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}

/// What `fork` gave.
pub(crate) enum Forked {
    /// In the parent: the child's id.
    Parent(i32),
    /// In the child.
    Child,
    /// No child (the system refused).
    Failed,
}

/// Forks. The caller must only continue on this thread in the child.
pub(crate) fn fork() -> Forked {
    // SAFETY: fork has no memory-safety preconditions. The child keeps only this thread; the
    // caller makes sure no lock another thread may hold is needed in the child (see the crate
    // docs: the fork gate, the watchdog).
    match unsafe { libc::fork() } {
        0 => Forked::Child,
        pid if pid > 0 => Forked::Parent(pid),
        _ => Forked::Failed,
    }
}

/// Ends this process at once: no destructors, no atexit handlers, no buffered output flushed.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it does not return.
    unsafe { libc::_exit(code) }
}

/// The first things a child does: die with its parent, restore `SIGALRM`, arm its budget.
pub(crate) fn setup_child(parent: i32, budget: Duration) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and has no memory effects.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
    }
    // The parent may have died before the request above: then the kernel will never send it.
    if parent_pid() != parent {
        exit_now(EXIT_ORPHANED);
    }
    // SAFETY: restoring the default action of SIGALRM and unblocking it touch only this process's
    // signal state; `set` is a valid, initialised sigset_t.
    unsafe {
        libc::signal(libc::SIGALRM, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGALRM);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    arm_timer(budget);
}

/// True when this process's parent is no longer `parent` (it died; the process was re-parented).
pub(crate) fn orphaned(parent: i32) -> bool {
    parent_pid() != parent
}

fn timeval(d: Duration) -> libc::timeval {
    libc::timeval {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: libc::suseconds_t::from(d.subsec_micros() as i32),
    }
}

/// Arms the one-shot wall-clock timer (a zero duration disarms it).
pub(crate) fn arm_timer(d: Duration) {
    let value = libc::itimerval {
        it_interval: timeval(Duration::ZERO),
        it_value: timeval(d),
    };
    // SAFETY: `value` is a valid itimerval; the old value is not asked for.
    unsafe {
        libc::setitimer(libc::ITIMER_REAL, &value, std::ptr::null_mut());
    }
}

/// Disarms the timer and returns what was left of it (`None` if it was not armed).
pub(crate) fn pause_timer() -> Option<Duration> {
    let zero = libc::itimerval {
        it_interval: timeval(Duration::ZERO),
        it_value: timeval(Duration::ZERO),
    };
    let mut old = zero;
    // SAFETY: both pointers are valid itimervals.
    unsafe {
        libc::setitimer(libc::ITIMER_REAL, &zero, &mut old);
    }
    let secs = u64::try_from(old.it_value.tv_sec).unwrap_or(0);
    let micros = u32::try_from(old.it_value.tv_usec).unwrap_or(0);
    let left = Duration::from_secs(secs) + Duration::from_micros(u64::from(micros));
    (!left.is_zero()).then_some(left)
}

fn decode(status: libc::c_int) -> Ended {
    if libc::WIFSIGNALED(status) {
        Ended::Signaled(libc::WTERMSIG(status))
    } else {
        Ended::Exited(libc::WEXITSTATUS(status))
    }
}

/// Waits for `pid` to end (blocking) and reaps it.
pub(crate) fn wait(pid: i32) -> Ended {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid int for waitpid to fill.
        let got = unsafe { libc::waitpid(pid, &mut status, 0) };
        if got == pid {
            return decode(status);
        }
        if got < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return Ended::Lost;
    }
}

/// Reaps `pid` if it has ended, without blocking.
pub(crate) fn try_wait(pid: i32) -> Option<Ended> {
    let mut status = 0;
    // SAFETY: `status` is a valid int for waitpid to fill.
    let got = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if got == pid {
        Some(decode(status))
    } else if got < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
        Some(Ended::Lost)
    } else {
        None
    }
}

/// Blocks until some child of this process has ended, without reaping it; returns its id.
pub(crate) fn peek_any() -> Option<i32> {
    loop {
        // SAFETY: a zeroed siginfo_t is a valid buffer for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid siginfo_t; WNOWAIT leaves the child waitable.
        let got = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if got == 0 {
            // SAFETY: after a successful waitid for WEXITED the pid field is set.
            let pid = unsafe { info.si_pid() };
            return (pid > 0).then_some(pid);
        }
        if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return None;
    }
}

/// A signal's usual name.
pub(crate) fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGKILL => "SIGKILL",
        libc::SIGALRM => "SIGALRM",
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGPIPE => "SIGPIPE",
        _ => return format!("signal {signal}"),
    };
    format!("{name} ({signal})")
}
