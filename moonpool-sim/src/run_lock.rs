//! A lock that costs nothing on the thread running the world.
//!
//! A world is single-threaded: while it runs, every access to its state comes from the thread
//! that drives it. A `std::sync::Mutex` taken on every provider call, every wake and every event
//! is therefore pure overhead (two atomic read-modify-writes each; half of a simulated round
//! trip before this module existed). Yet the user contract needs `Send + 'static` futures, and
//! handles may be dropped or woken on other threads, so the state must still be shareable.
//!
//! [`RunLock`] keeps both: a mutex (the *gate*) that every access takes, except on the thread
//! that holds the *lease*. [`RunLock::with_lease`] takes the gate once and keeps it for the whole
//! of a run; inside it, [`RunLock::lock`] on that thread compares a thread token (a plain load,
//! no atomic read-modify-write) and hands out the value directly. Any other thread takes the
//! gate and so waits until the lease ends, or uses [`RunLock::try_lock`] to learn that it would
//! have to wait (a wake from another thread uses that to defer itself instead of blocking).
//!
//! Why this is sound:
//! - The value is reached only through a [`Guard`]. A `Locked` guard holds the gate. A `Leased`
//!   guard is created only by the thread whose token is in `owner`, and `owner` holds a token
//!   only while that thread is inside `with_lease`, which holds the gate. So at any moment either
//!   no lease exists and every guard holds the gate (one at a time), or a lease exists, no other
//!   thread can hold the gate, and only the lease holder creates guards.
//! - The lease holder could still create two guards at once (a re-entrant access). The
//!   `borrowed` flag, touched only by the lease holder, refuses the second one; with a plain mutex
//!   that access would have deadlocked.
//! - Tokens are the addresses of a thread-local, unique among live threads. A thread can only
//!   find its own token in `owner` if it wrote it itself: `with_lease` writes it after taking the
//!   gate and clears it before releasing the gate, on the same thread, also when unwinding.
//! - A guard is `!Send`, so a `Leased` guard cannot leave its thread.

use std::cell::{Cell, UnsafeCell};
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

thread_local! {
    /// Its address identifies the current thread among live threads.
    static TOKEN: u8 = const { 0 };
}

/// A token for the calling thread: never 0, unique among live threads.
#[inline]
fn thread_token() -> usize {
    TOKEN.with(|token| std::ptr::from_ref(token) as usize)
}

/// A value shared across threads, free to reach on the thread that holds its lease.
pub(crate) struct RunLock<T> {
    value: UnsafeCell<T>,
    /// Taken by every access except the lease holder's, and held for the whole lease.
    gate: Mutex<()>,
    /// The token of the thread holding the lease; 0 when there is none.
    owner: AtomicUsize,
    /// Whether the lease holder has a guard out. Only the lease holder reads or writes it.
    borrowed: Cell<bool>,
}

// SAFETY: the value is reached only under the rules in the module docs (the gate, or the lease
// on its single thread), so `RunLock<T>` hands a `&mut T` to one thread at a time, which is what
// `Mutex<T>: Sync` needs `T: Send` for. `borrowed` is touched only by the lease holder, and a new
// lease holder is ordered after the previous one by the gate (its unlock, then the next lock).
unsafe impl<T: Send> Sync for RunLock<T> {}
// SAFETY: moving the lock moves the value; nothing in it is tied to a thread while it is not
// borrowed (a lease borrows the lock, so the lock cannot move during one).
unsafe impl<T: Send> Send for RunLock<T> {}

impl<T> RunLock<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            value: UnsafeCell::new(value),
            gate: Mutex::new(()),
            owner: AtomicUsize::new(0),
            borrowed: Cell::new(false),
        }
    }

    /// The value, for the lock's only holder: `&mut self` proves that no guard and no lease
    /// is out (both borrow the lock), so no other access can exist while it lives.
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// True when the calling thread holds the lease.
    #[inline]
    fn leased_here(&self) -> bool {
        self.owner.load(Ordering::Relaxed) == thread_token()
    }

    /// The value, for the lease holder (without touching the gate) or for anyone else (after
    /// waiting for the gate: for the end of a lease held by another thread).
    ///
    /// A second guard on the lease holder's thread while the first is alive is an internal error
    /// of the simulator (with a plain mutex it would deadlock); it panics with a message saying
    /// so, which the executor reports like any other panic.
    #[inline]
    pub(crate) fn lock(&self) -> Guard<'_, T> {
        if self.leased_here() {
            return self.leased_guard();
        }
        let gate = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        self.locked_guard(gate)
    }

    /// Like [`lock`](Self::lock), but `None` instead of waiting when another thread holds the
    /// gate (a lease, or a moment's access).
    pub(crate) fn try_lock(&self) -> Option<Guard<'_, T>> {
        if self.leased_here() {
            return Some(self.leased_guard());
        }
        match self.gate.try_lock() {
            Ok(gate) => Some(self.locked_guard(gate)),
            Err(TryLockError::Poisoned(poisoned)) => Some(self.locked_guard(poisoned.into_inner())),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// True when no guard is out: no lease holder's guard, and the gate is free or leased to the
    /// calling thread.
    pub(crate) fn is_free(&self) -> bool {
        if self.leased_here() {
            return !self.borrowed.get();
        }
        self.gate.try_lock().is_ok()
    }

    /// Runs `f` with the lease held by the calling thread: every [`lock`](Self::lock) on this
    /// thread meanwhile is a plain read of a thread token. Re-entrant: inside a lease of this
    /// thread, `f` simply runs. The lease ends when `f` returns or unwinds.
    pub(crate) fn with_lease<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.leased_here() {
            return f();
        }
        let gate = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        self.borrowed.set(false);
        self.owner.store(thread_token(), Ordering::Relaxed);
        let _lease = Lease {
            lock: self,
            _gate: gate,
        };
        f()
    }

    fn leased_guard(&self) -> Guard<'_, T> {
        assert!(
            !self.borrowed.replace(true),
            "internal error in moonpool-sim: re-entrant access to a world's state (a guard is already out on this thread)"
        );
        Guard {
            lock: self,
            kind: GuardKind::Leased,
            _not_send: PhantomData,
        }
    }

    fn locked_guard<'a>(&'a self, gate: MutexGuard<'a, ()>) -> Guard<'a, T> {
        Guard {
            lock: self,
            kind: GuardKind::Locked(gate),
            _not_send: PhantomData,
        }
    }
}

/// Ends a lease: clears the owner before the gate is released (also when unwinding).
struct Lease<'a, T> {
    lock: &'a RunLock<T>,
    _gate: MutexGuard<'a, ()>,
}

impl<T> Drop for Lease<'_, T> {
    fn drop(&mut self) {
        self.lock.owner.store(0, Ordering::Relaxed);
        // `_gate` is dropped after this body: the next holder sees the owner cleared.
    }
}

enum GuardKind<'a> {
    Leased,
    Locked(#[allow(dead_code)] MutexGuard<'a, ()>),
}

/// Access to a [`RunLock`]'s value; see the module docs for why it is exclusive.
pub(crate) struct Guard<'a, T> {
    lock: &'a RunLock<T>,
    kind: GuardKind<'a>,
    /// A leased guard must stay on the lease holder's thread.
    _not_send: PhantomData<*const ()>,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one out (module docs), so no `&mut T` aliases this.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard is the only one out (module docs), and `&mut self` makes this the
        // only borrow through it.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if matches!(self.kind, GuardKind::Leased) {
            self.lock.borrowed.set(false);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn test_lock_without_a_lease_is_a_mutex() {
        let lock = Arc::new(RunLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = Arc::clone(&lock);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        *lock.lock() += 1;
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(*lock.lock(), 40_000);
    }

    #[test]
    fn test_other_threads_wait_for_the_lease_and_try_lock_says_so() {
        let lock = Arc::new(RunLock::new(Vec::new()));
        let other = Arc::clone(&lock);
        lock.with_lease(|| {
            lock.lock().push("lease");
            assert!(lock.is_free());
            let guard = lock.lock();
            assert!(!lock.is_free());
            drop(guard);
            let other = Arc::clone(&other);
            let tried = std::thread::spawn(move || other.try_lock().is_none())
                .join()
                .unwrap();
            assert!(
                tried,
                "try_lock from another thread must fail during a lease"
            );
            // A blocking lock from another thread waits for the lease to end.
            let waiter = {
                let other = Arc::clone(&lock);
                std::thread::spawn(move || other.lock().push("after"))
            };
            std::thread::sleep(Duration::from_millis(20));
            lock.lock().push("still leased");
            waiter
        })
        .join()
        .unwrap();
        assert_eq!(*lock.lock(), vec!["lease", "still leased", "after"]);
    }

    #[test]
    fn test_leases_nest_and_end_on_unwind() {
        let lock = RunLock::new(1u32);
        lock.with_lease(|| lock.with_lease(|| *lock.lock() += 1));
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lock.with_lease(|| -> () { panic!("inside a lease") })
        }));
        assert!(unwound.is_err());
        // The lease ended: another thread gets the gate.
        std::thread::scope(|scope| {
            scope.spawn(|| *lock.lock() += 1).join().unwrap();
        });
        assert_eq!(*lock.lock(), 3);
    }

    #[test]
    fn test_a_second_guard_on_the_lease_thread_panics_instead_of_deadlocking() {
        let lock = RunLock::new(0u8);
        lock.with_lease(|| {
            let first = lock.lock();
            let second =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(lock.lock())));
            assert!(second.is_err());
            drop(first);
            // The flag is back: the next guard is fine.
            *lock.lock() = 7;
        });
        assert_eq!(*lock.lock(), 7);
    }
}
