//! [`Signal`]: a flag plus one waiter's waker, the cheapest "something changed" notification for
//! a single consumer (a peer's keeper, a connection's writer).
//!
//! The consumer registers its waker *before* testing the flag, so a `notify` between the test and
//! the wait is never lost. No randomness, no queue of waiters: the wake order is the call order.
//!
//! Floor 1: a primitive with no knowledge of the transport.

use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Context;

use futures::task::AtomicWaker;

/// A single-consumer notification.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    set: AtomicBool,
    waker: AtomicWaker,
}

impl Signal {
    /// Sets the flag and wakes the registered waiter, if any.
    pub(crate) fn notify(&self) {
        self.set.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Registers `cx`'s waker for the next [`notify`](Self::notify).
    pub(crate) fn register(&self, cx: &Context<'_>) {
        self.waker.register(cx.waker());
    }

    /// Clears the flag; true if it was set. A load first: the flag is usually clear (the
    /// connection's writer looks at every poll of its task), and a load is no read-modify-write.
    pub(crate) fn take(&self) -> bool {
        self.set.load(Ordering::Acquire) && self.set.swap(false, Ordering::AcqRel)
    }
}
