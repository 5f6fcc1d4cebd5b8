//! Wakers found under the world's state that are not known to be a task's own: during a run they
//! are woken after the state is let go, by the run loop; outside a run, at once.
//!
//! A task's own waker only queues the task in the executor, which is safe anywhere. Any other
//! waker (a combinator's, another executor's, a test's) runs code nobody here wrote: its `wake`
//! may read the world (re-entering the state it was found under) or panic. So the network and the
//! process model hand such a waker to [`wake_foreign`], which, while a run on this thread has
//! [`defer`] in force, keeps it; the run loop takes the kept ones ([`take_kept`]) after each
//! event and each drain, and wakes them with nothing held, a panic failing the seed. Deliveries
//! and timers return their foreign wakers to the run loop directly, to the same effect.

use std::cell::{Cell, RefCell};
use std::task::Waker;
use std::thread::LocalKey;

thread_local! {
    /// Runs on this thread that defer foreign wakes (more than one only for a world run from
    /// inside another world's task).
    static DEFERRING: Cell<u32> = const { Cell::new(0) };
    /// The foreign wakers kept for the run loop, oldest first.
    static DEFERRED: RefCell<Vec<Waker>> = const { RefCell::new(Vec::new()) };
    /// Wakers let go of under the world's state (replaced by a new registration, or their
    /// connection closed), kept for the run loop to drop: what they hold (a sleep, a stream)
    /// may reach the world when dropped.
    static DROPS: RefCell<Vec<Waker>> = const { RefCell::new(Vec::new()) };
    /// Something was kept since the run loop last looked (one load for it to check, after
    /// every event and drain).
    static KEPT: Cell<bool> = const { Cell::new(false) };
}

/// Whether a wake or a drop was kept since the last [`take_kept`].
#[inline]
pub(crate) fn any_kept() -> bool {
    KEPT.with(Cell::get)
}

/// The kept wakers to wake and to drop, oldest first, and clears [`any_kept`].
pub(crate) fn take_kept() -> (Vec<Waker>, Vec<Waker>) {
    KEPT.with(|kept| kept.set(false));
    (take(&DEFERRED), take(&DROPS))
}

/// Keeps foreign wakes for the run loop until dropped.
pub(crate) struct DeferGuard(());

impl Drop for DeferGuard {
    fn drop(&mut self) {
        let depth = DEFERRING.with(|d| {
            let depth = d.get().saturating_sub(1);
            d.set(depth);
            depth
        });
        if depth == 0 {
            // Wakes the run did not get to (it ended first) are dropped, with nothing borrowed:
            // the drop of what a waker holds may run code too.
            drop(take_kept());
        }
    }
}

/// Defers the foreign wakes made on this thread (see the module's documentation) until the
/// guard drops.
pub(crate) fn defer() -> DeferGuard {
    DEFERRING.with(|d| d.set(d.get().saturating_add(1)));
    DeferGuard(())
}

/// Keeps `waker` in `list` for the run loop when a run on this thread defers; gives it back
/// otherwise.
fn keep(list: &'static LocalKey<RefCell<Vec<Waker>>>, waker: Waker) -> Option<Waker> {
    if DEFERRING.with(Cell::get) == 0 {
        return Some(waker);
    }
    list.with(|kept| kept.borrow_mut().push(waker));
    KEPT.with(|kept| kept.set(true));
    None
}

/// Wakes `waker`, found under the world's state and not known to be a task's own: kept for the
/// run loop during a run on this thread, woken now otherwise.
pub(crate) fn wake_foreign(waker: &Waker) {
    wake_foreign_owned(waker.clone());
}

/// [`wake_foreign`] for a waker that is not needed afterwards.
pub(crate) fn wake_foreign_owned(waker: Waker) {
    if let Some(waker) = keep(&DEFERRED, waker) {
        waker.wake();
    }
}

/// Lets go of `waker`, found under the world's state: during a run on this thread the run loop
/// drops it, with nothing held; otherwise now.
pub(crate) fn drop_later(waker: Option<Waker>) {
    if let Some(waker) = waker {
        drop(keep(&DROPS, waker));
    }
}

/// The wakers kept in `list` since the last call, oldest first.
fn take(list: &'static LocalKey<RefCell<Vec<Waker>>>) -> Vec<Waker> {
    list.with(|kept| std::mem::take(&mut *kept.borrow_mut()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Count(AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn test_foreign_wakes_are_kept_while_deferred_and_immediate_otherwise() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        wake_foreign(&waker);
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "no run: woken at once");
        {
            let _outer = defer();
            wake_foreign(&waker);
            {
                let _inner = defer();
                wake_foreign_owned(waker.clone());
            }
            // The inner guard's end is not the run's: the kept wakes stay.
            assert_eq!(count.0.load(Ordering::SeqCst), 1);
            assert!(any_kept());
            let (kept, drops) = take_kept();
            assert!(!any_kept() && drops.is_empty());
            assert_eq!(kept.len(), 2);
            kept.into_iter().for_each(Waker::wake);
            assert_eq!(count.0.load(Ordering::SeqCst), 3);
            assert!(take(&DEFERRED).is_empty());
            wake_foreign(&waker);
        }
        // The run ended before its last kept wake: dropped, not woken.
        assert_eq!(count.0.load(Ordering::SeqCst), 3);
        assert!(take(&DEFERRED).is_empty());
        assert_eq!(Arc::strong_count(&count), 2, "the kept clone was dropped");
    }

    #[test]
    fn test_wakers_let_go_of_during_a_run_are_dropped_by_the_run_loop_or_at_its_end() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = || Some(Waker::from(Arc::clone(&count)));
        drop_later(waker());
        drop_later(None);
        assert_eq!(Arc::strong_count(&count), 1, "no run: dropped at once");
        {
            let _run = defer();
            drop_later(waker());
            drop_later(waker());
            assert_eq!(Arc::strong_count(&count), 3, "kept for the run loop");
            assert_eq!(take(&DROPS).len(), 2);
            assert_eq!(Arc::strong_count(&count), 1);
            drop_later(waker());
        }
        assert_eq!(Arc::strong_count(&count), 1, "dropped at the run's end");
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "never woken");
    }
}
