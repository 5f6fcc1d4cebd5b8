//! [`SpinLock`]: a mutual-exclusion lock for short critical sections whose release is one plain
//! store.
//!
//! Floor 1 (plumbing). `std::sync::Mutex` releases with an atomic swap (it must learn whether a
//! thread sleeps on the lock), which costs about as much as the acquisition on the development
//! machine; this lock never sleeps, so releasing it is a release store (a plain `mov` on x86)
//! and an uncontended acquire-and-release is one atomic read-modify-write instead of two. A
//! thread that finds it taken spins a little, then yields its time slice between attempts.
//! Only for state whose critical sections are short and never block (no I/O, no waiting, no
//! other lock that may be held long): the transport's registry, its receive queues, a peer's
//! state and a connection's writer (whose sections make at most one non-blocking read or write
//! on the stream). In a simulation there is one thread, so the lock is never contended.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

/// Spins before a waiting thread starts yielding its time slice.
const SPINS_BEFORE_YIELD: u32 = 64;

/// A lock around a `T`, held through a [`SpinGuard`].
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the only access to `value` is through a `SpinGuard`, and at most one guard exists at
// a time: `lock` returns one only after its compare-exchange changed `locked` from false to
// true (Acquire), and `locked` goes back to false only in the guard's drop (Release), after the
// guard's last access. So threads sharing a `&SpinLock<T>` take turns with the `T`, which moves
// between them: `T: Send` is what that needs (as for `std::sync::Mutex`), not `T: Sync`.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, waiting (spinning, then yielding) while another thread holds it. Like
    /// `std::sync::Mutex`, taking it again on the thread that holds it never returns.
    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        if self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        SpinGuard {
            lock: self,
            _value: PhantomData,
        }
    }

    /// The lock if no other guard holds it now, without waiting.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        // The guard is made only once the exchange succeeded: a guard made and discarded on
        // failure would release, in its drop, the lock its holder still has (as
        // `bool::then_some`, which evaluates its argument first, did: found by
        // `test_callers_on_several_threads_share_one_transport` under load).
        if self
            .locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        Some(SpinGuard {
            lock: self,
            _value: PhantomData,
        })
    }

    #[cold]
    fn lock_contended(&self) {
        let mut spins = 0u32;
        loop {
            while self.locked.load(Ordering::Relaxed) {
                if spins < SPINS_BEFORE_YIELD {
                    spins += 1;
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}

impl<T: Default> Default for SpinLock<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

/// Access to a [`SpinLock`]'s value; releases the lock when dropped (also while unwinding, so
/// a panic under the lock leaves the value as the panic left it, as `std::sync::Mutex` with its
/// poison ignored would).
pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
    /// Makes the guard neither `Send` nor `Sync` by itself (the raw pointer), like
    /// `std::sync::MutexGuard`: a future holding it across an `.await` is not `Send`, so a
    /// task cannot hold the lock while it waits (other threads would spin on it meanwhile).
    _value: PhantomData<(&'a mut T, *const ())>,
}

// SAFETY: sharing a `&SpinGuard<T>` between threads shares only `&T` (through `Deref`), which
// is safe exactly when `T: Sync`.
unsafe impl<T: Sync> Sync for SpinGuard<'_, T> {}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one (see `SpinLock`'s `Sync`), and it lives no longer
        // than the lock; the returned borrow lives no longer than the guard.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only borrow through the guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Release: the guard's accesses to the value happen before the next holder's.
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn test_spin_lock_excludes_across_threads() {
        let lock = Arc::new(SpinLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = Arc::clone(&lock);
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        // A read and a separate write: lost updates if two threads overlapped.
                        let mut guard = lock.lock();
                        let seen = *guard;
                        std::hint::black_box(&seen);
                        *guard = seen + 1;
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(*lock.lock(), 80_000);
    }

    #[test]
    fn test_spin_lock_try_lock_fails_while_held_only() {
        let lock = SpinLock::new(1);
        let guard = lock.try_lock().unwrap();
        assert!(lock.try_lock().is_none());
        // A failed attempt leaves the lock with its holder.
        assert!(lock.try_lock().is_none());
        assert!(lock.locked.load(Ordering::Relaxed));
        drop(guard);
        assert_eq!(*lock.try_lock().unwrap(), 1);
    }

    #[test]
    fn test_spin_lock_released_by_a_panic_under_it() {
        let lock = Arc::new(SpinLock::new(vec![1]));
        let panicking = Arc::clone(&lock);
        let result = std::thread::spawn(move || {
            let mut guard = panicking.lock();
            guard.push(2);
            panic!("under the lock");
        })
        .join();
        assert!(result.is_err());
        // Released while unwinding: taking it again returns, with the value the panic left.
        assert_eq!(*lock.lock(), vec![1, 2]);
    }

    #[test]
    fn test_spin_lock_waiter_gets_it_after_a_long_hold() {
        // A holder past the spinning phase: the waiter yields until the release.
        let lock = Arc::new(SpinLock::new(0u32));
        let guard = lock.lock();
        let waiter = {
            let lock = Arc::clone(&lock);
            std::thread::spawn(move || *lock.lock() + 1)
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(guard);
        assert_eq!(waiter.join().unwrap(), 1);
    }
}
