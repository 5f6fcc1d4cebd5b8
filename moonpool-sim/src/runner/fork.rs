//! The determinism check's second run, in a forked child process (Unix).
//!
//! A determinism check runs a seed twice and compares the two event traces. Run twice in one
//! process, both runs call the same user closures, and state those closures capture (a counter,
//! a map behind an `Arc`) is shared: the second run starts from what the first left, and the check
//! reports a divergence the simulation does not have. So the second run is made in a child
//! process forked *before* the first run starts: parent and child start from the same memory, the
//! child runs the seed and sends its trace and its verdict back through a pipe, and the parent runs
//! the seed itself meanwhile (the two runs use two cores).
//!
//! A child inherits the parent's hasher keys, so it moves them on before running: a run that
//! depends on `HashMap` iteration order still diverges, as it would in a fresh process.
//!
//! The child only runs the seed, writes to the pipe and leaves with `_exit` (no destructors, no
//! atexit handlers, nothing of the parent's buffered output flushed twice). A panic in the child
//! prints nothing: before the first fork the process's panic hook is wrapped (once; the hook
//! that was there still runs everywhere else) so that in a forked child it returns at once. The
//! standard hook takes a process-wide lock while it prints, and with several workers another
//! thread may hold it at the moment of the fork: the child's panic would wait for it forever
//! (the parent's run prints the same panic anyway). If it cannot be forked,
//! or dies, or does not answer in time (at least [`CHILD_TIMEOUT_MIN`], and
//! [`CHILD_TIMEOUT_FACTOR`] times the parent's run; it can hang on a lock that another thread of
//! the parent held at the moment of the fork), the caller falls back to a second run in the same
//! process.

use std::time::Duration;

use crate::world::TraceEntry;

/// The least time the parent waits for the child's answer after its own run has finished.
pub(super) const CHILD_TIMEOUT_MIN: Duration = Duration::from_secs(10);

/// The parent waits at most this many times its own run's wall time (and at least
/// [`CHILD_TIMEOUT_MIN`]): the child runs the same seed, so it needs about as long.
pub(super) const CHILD_TIMEOUT_FACTOR: u32 = 20;

/// What the child sends back.
pub(super) struct ChildRun {
    /// The child's event trace.
    pub(super) trace: Vec<TraceEntry>,
    /// The child's failure, rendered.
    pub(super) failure: Option<String>,
}

const ENTRY_WORDS: usize = 7;

fn encode(run: &ChildRun) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + run.trace.len() * ENTRY_WORDS * 8);
    let failure = run.failure.as_deref().unwrap_or("");
    out.push(u8::from(run.failure.is_some()));
    out.extend_from_slice(&(failure.len() as u64).to_le_bytes());
    out.extend_from_slice(failure.as_bytes());
    out.extend_from_slice(&(run.trace.len() as u64).to_le_bytes());
    for e in &run.trace {
        for word in [
            e.at_nanos,
            e.kind,
            e.object,
            e.schedule_hash,
            e.sequence,
            u64::from(e.process),
            u64::from(e.peer),
        ] {
            out.extend_from_slice(&word.to_le_bytes());
        }
    }
    out
}

struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.bytes.split_at_checked(n)?;
        self.bytes = rest;
        Some(head)
    }

    fn word(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

fn decode(bytes: &[u8]) -> Option<ChildRun> {
    let mut cursor = Cursor { bytes };
    let has_failure = cursor.take(1)? == [1];
    let len = usize::try_from(cursor.word()?).ok()?;
    let text = cursor.take(len)?;
    let failure = has_failure.then(|| String::from_utf8_lossy(text).into_owned());
    let count = usize::try_from(cursor.word()?).ok()?;
    let mut trace = Vec::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        trace.push(TraceEntry {
            at_nanos: cursor.word()?,
            kind: cursor.word()?,
            object: cursor.word()?,
            schedule_hash: cursor.word()?,
            sequence: cursor.word()?,
            process: u32::try_from(cursor.word()?).ok()?,
            peer: u32::try_from(cursor.word()?).ok()?,
        });
    }
    cursor
        .bytes
        .is_empty()
        .then_some(ChildRun { trace, failure })
}

/// Wraps the panic hook, once per process, so that it does nothing in a forked child (see the
/// module's documentation) and calls the hook it replaced everywhere else.
#[cfg(unix)]
fn silence_panics_in_children() {
    static WRAPPED: std::sync::Once = std::sync::Once::new();
    WRAPPED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !crate::watchdog::is_forked_child() {
                previous(info);
            }
        }));
    });
}

/// Forks a child that runs `child` and sends back what it returns; then runs `parent` here, and
/// returns both results. The child's is `Err` (with why) when it could not be had.
#[cfg(unix)]
pub(super) fn run_both<P>(
    child: impl FnOnce() -> ChildRun,
    parent: impl FnOnce() -> P,
) -> (P, Result<ChildRun, String>) {
    silence_panics_in_children();
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe(2) to fill.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return (parent(), Err("pipe(2) failed".to_string()));
    }
    let (read_fd, write_fd) = (fds[0], fds[1]);
    // SAFETY: fork(2) has no memory-safety preconditions; the child below only runs the seed,
    // writes to the pipe and calls _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        // SAFETY: closing the two descriptors pipe(2) just returned.
        unsafe {
            libc::close(read_fd);
            libc::close(write_fd);
        }
        return (parent(), Err("fork(2) failed".to_string()));
    }
    if pid == 0 {
        // SAFETY: the child closes its copy of the read end.
        unsafe { libc::close(read_fd) };
        crate::watchdog::in_forked_child();
        // A forked child inherits the per-thread keys from which std derives every
        // `RandomState` (each new one increments them), so hash-ordered collections would
        // iterate exactly as in the parent and a run that depends on that order would look
        // deterministic. Moving the keys on gives the child other hashers, as a fresh process
        // would have.
        for _ in 0..7 {
            drop(std::collections::hash_map::RandomState::new());
        }
        let bytes = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| encode(&child())))
            .unwrap_or_default();
        write_all(write_fd, &bytes);
        // SAFETY: _exit ends the child at once, running no destructor or atexit handler.
        unsafe { libc::_exit(0) };
    }
    // SAFETY: the parent closes its copy of the write end, so EOF comes when the child is done.
    unsafe { libc::close(write_fd) };
    let started = std::time::Instant::now();
    let own = parent();
    let timeout = started
        .elapsed()
        .saturating_mul(CHILD_TIMEOUT_FACTOR)
        .max(CHILD_TIMEOUT_MIN);
    let answer = read_answer(read_fd, pid, timeout);
    (own, answer)
}

#[cfg(unix)]
fn write_all(fd: libc::c_int, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid, initialised buffer of `bytes.len()` bytes.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        bytes = bytes.get(n.unsigned_abs()..).unwrap_or_default();
    }
}

/// Reads the child's whole answer (bounded by `timeout`), then reaps it.
#[cfg(unix)]
fn read_answer(fd: libc::c_int, pid: libc::pid_t, timeout: Duration) -> Result<ChildRun, String> {
    let started = std::time::Instant::now();
    let mut bytes = Vec::new();
    let mut buffer = vec![0u8; 1 << 16];
    let outcome = loop {
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            break Err(format!("no answer within {timeout:?}"));
        }
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let wait_ms = libc::c_int::try_from(left.as_millis().min(1_000)).unwrap_or(1_000);
        // SAFETY: `poll` is one valid pollfd.
        let ready = unsafe { libc::poll(&mut poll, 1, wait_ms) };
        if ready < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break Err("poll(2) failed".to_string());
        }
        if ready == 0 {
            continue;
        }
        // SAFETY: `buffer` is a valid writable buffer of its length.
        let n = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break Err("read(2) failed".to_string());
        }
        if n == 0 {
            break Ok(());
        }
        bytes.extend_from_slice(buffer.get(..n.unsigned_abs()).unwrap_or_default());
    };
    // SAFETY: closing our read end; killing and reaping our own child.
    unsafe {
        libc::close(fd);
        if outcome.is_err() {
            libc::kill(pid, libc::SIGKILL);
        }
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) < 0
            && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
        {}
    }
    outcome?;
    decode(&bytes).ok_or_else(|| "the child died before answering".to_string())
}

/// Without `fork`, the child's run cannot be had; the caller runs the seed again in-process.
#[cfg(not(unix))]
pub(super) fn run_both<P>(
    _child: impl FnOnce() -> ChildRun,
    parent: impl FnOnce() -> P,
) -> (P, Result<ChildRun, String>) {
    (
        parent(),
        Err("fork is not available on this platform".to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_child_answer_round_trips() {
        let run = ChildRun {
            trace: vec![TraceEntry {
                at_nanos: 1,
                kind: 2,
                object: 3,
                schedule_hash: 4,
                sequence: 5,
                process: 6,
                peer: u32::MAX,
            }],
            failure: Some("boom".to_string()),
        };
        let back = decode(&encode(&run)).unwrap();
        assert_eq!(back.trace, run.trace);
        assert_eq!(back.failure, run.failure);
        assert!(decode(&encode(&run)[..10]).is_none());
    }
}
