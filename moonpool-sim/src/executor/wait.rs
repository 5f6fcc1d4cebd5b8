//! What a pending task waits on, as far as the simulator can tell: recorded for hang reports.
//!
//! Each simulated future (sleep, socket read and write, accept, connect, disk operation, join
//! handle) notes what it waits on just before it returns `Pending`; the executor takes the note
//! after the poll and keeps it with the task. A task that returned `Pending` without a note waits
//! on something the simulator does not schedule: a channel, a lock, a `Notify`, a future of its
//! own. When such a task never wakes, that is the signature of a lost wake-up or a deadlock.

use std::cell::Cell;
use std::fmt;
use std::task::{RawWakerVTable, Waker};
use std::time::Duration;

use super::TaskId;

/// What a pending task waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitReason {
    /// A sleep or timeout until this simulated time, in nanoseconds (kept small: the note travels
    /// with every poll).
    Timer(u64),
    /// Bytes from a simulated connection.
    NetworkRead,
    /// Room in a simulated connection's send buffer.
    NetworkWrite,
    /// An incoming connection on a simulated listener.
    Accept,
    /// A simulated connect.
    Connect,
    /// A simulated disk operation.
    Storage,
    /// The end of another task (its `JoinHandle`).
    Join(TaskId),
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitReason::Timer(at) => {
                write!(f, "a timer at simulated {:?}", Duration::from_nanos(*at))
            }
            WaitReason::NetworkRead => f.write_str("a read on a simulated connection"),
            WaitReason::NetworkWrite => f.write_str("room to write on a simulated connection"),
            WaitReason::Accept => f.write_str("an incoming connection"),
            WaitReason::Connect => f.write_str("a connect"),
            WaitReason::Storage => f.write_str("a disk operation"),
            WaitReason::Join(id) => write!(f, "the end of {id}"),
        }
    }
}

/// How a hang report describes a task that waits on nothing the simulator schedules.
pub const UNSCHEDULED_WAIT: &str = "a wake-up no simulated event will deliver (a channel, lock or Notify: lost wake-up or deadlock?)";

/// Reads of the simulated clock one poll may make before the task is stopped as a spin: a poll
/// that reads the clock this often without awaiting waits for a time that cannot come (the clock
/// only advances when tasks await).
pub const CLOCK_SPIN_READS: u64 = 10_000_000;

/// A task of one executor, named without its waker: what a timer keeps instead of a clone of the
/// waker (a clone and its drop are two atomic reference-count changes per sleep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskRef {
    /// The executor's identity (the address of its shared state, unique among live executors).
    pub(crate) executor: usize,
    pub(crate) slot: u32,
    pub(crate) id: TaskId,
}

/// The task being polled on this thread, and the identity of its own waker (data and vtable
/// pointers, compared exactly as [`Waker::will_wake`] does; never dereferenced).
type Polling = (TaskRef, *const (), *const RawWakerVTable);

thread_local! {
    static POLLING: Cell<Option<Polling>> = const { Cell::new(None) };
    static NOTED: Cell<Option<WaitReason>> = const { Cell::new(None) };
    /// Clock reads in the current poll; `u64::MAX` outside a poll (not counted).
    static CLOCK_READS: Cell<u64> = const { Cell::new(u64::MAX) };
}

/// Starts counting a poll of `task`, woken by `waker`: no wait noted, no clock read yet.
#[inline]
pub(crate) fn begin_poll(task: TaskRef, waker: &Waker) {
    POLLING.with(|polling| polling.set(Some((task, waker.data(), waker.vtable()))));
    NOTED.with(|noted| noted.set(None));
    CLOCK_READS.with(|reads| reads.set(0));
}

/// Ends a poll: returns what it said it waits on and stops counting clock reads.
#[inline]
pub(crate) fn end_poll() -> Option<WaitReason> {
    POLLING.with(|polling| polling.set(None));
    CLOCK_READS.with(|reads| reads.set(u64::MAX));
    NOTED.with(Cell::take)
}

/// The task being polled on this thread, when `waker` is its own waker (not a wrapper such as a
/// `select!` or a join set makes, not another task's): waking that task by its slot is then the
/// same as waking `waker`. `None` outside a poll, or when the executor polling now was nested
/// inside another one's poll (the outer poll's record is gone; callers fall back to the waker).
#[inline]
pub(crate) fn own_task(waker: &Waker) -> Option<TaskRef> {
    POLLING
        .with(Cell::get)
        .filter(|(_, data, vtable)| waker.data() == *data && std::ptr::eq(waker.vtable(), *vtable))
        .map(|(task, _, _)| task)
}

/// Counts a read of the simulated clock by the task being polled; past [`CLOCK_SPIN_READS`] in
/// one poll the task is stopped with a panic that names the cause (the only way out of a poll
/// that never returns), which fails the seed like any task panic.
#[inline]
#[allow(clippy::panic)]
pub(crate) fn note_clock_read() {
    let reads = CLOCK_READS.with(|reads| {
        let n = reads.get();
        if n != u64::MAX {
            reads.set(n + 1);
        }
        n
    });
    if reads != u64::MAX && reads + 1 == CLOCK_SPIN_READS {
        panic!(
            "the task read the simulated clock {CLOCK_SPIN_READS} times in one poll without \
             awaiting: simulated time only advances when tasks await (a spin on time().now()?)"
        );
    }
}

/// Notes what the task being polled waits on (called by simulated futures returning `Pending`).
#[inline]
pub(crate) fn note_wait(reason: WaitReason) {
    NOTED.with(|noted| noted.set(Some(reason)));
}
