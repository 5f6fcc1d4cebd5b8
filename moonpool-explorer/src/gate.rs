//! The fork gate: keeps other threads of the root process out of state a fork copies.
//!
//! `fork()` copies the whole memory but only the calling thread. A lock that another thread holds
//! at that instant stays locked forever in the child. Exploration runs its worlds on one thread,
//! but a process may have helper threads that read a world now and then (Moonpool's watchdog reads
//! each world's progress through the executor's lock). Such a reader wraps its read in
//! [`ForkGate::enter`]; a split closes the gate, waits until no reader is inside, forks, and opens
//! it again. The child starts with the gate open and no reader inside (the readers' threads do not
//! exist there).
//!
//! [`progress_hint`] lets such a watchdog tell a world that waits for its child timelines (its own
//! poll count stands still meanwhile) from a world that is stuck.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Set while a fork is being made; low bits: readers inside.
const CLOSED: u64 = 1 << 63;

static GATE: AtomicU64 = AtomicU64::new(0);
static WAITING: AtomicBool = AtomicBool::new(false);
static HINT: AtomicU64 = AtomicU64::new(0);

/// A reader inside the gate: no fork happens until it is dropped.
#[must_use = "the gate is left when the guard is dropped"]
pub struct ForkGate {
    _private: (),
}

impl ForkGate {
    /// Enters the gate, waiting while a fork is being made (a fork takes well under a
    /// millisecond).
    pub fn enter() -> Self {
        loop {
            let current = GATE.load(Ordering::Acquire);
            if current & CLOSED != 0 {
                std::thread::yield_now();
                continue;
            }
            if GATE
                .compare_exchange_weak(current, current + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Self { _private: () };
            }
        }
    }
}

impl Drop for ForkGate {
    fn drop(&mut self) {
        GATE.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Closes the gate and waits for the readers inside to leave.
pub(crate) fn close() {
    GATE.fetch_or(CLOSED, Ordering::AcqRel);
    while GATE.load(Ordering::Acquire) & !CLOSED != 0 {
        std::thread::yield_now();
    }
}

/// Opens the gate again (in the parent after a fork).
pub(crate) fn open() {
    GATE.fetch_and(!CLOSED, Ordering::AcqRel);
}

/// In a fresh child: open, nobody inside, not waiting.
pub(crate) fn reset_in_child() {
    GATE.store(0, Ordering::Release);
    WAITING.store(false, Ordering::Release);
}

/// Marks this process as waiting for its child timelines (or not).
pub(crate) fn set_waiting(waiting: bool) {
    WAITING.store(waiting, Ordering::Release);
}

/// A number that keeps growing, call after call, while this process waits for its child
/// timelines, and stands still otherwise: add it to a progress count that a watchdog compares
/// between two looks, so that a parent blocked on its children does not look stuck.
pub fn progress_hint() -> u64 {
    if WAITING.load(Ordering::Acquire) {
        HINT.fetch_add(1, Ordering::AcqRel) + 1
    } else {
        HINT.load(Ordering::Acquire)
    }
}
