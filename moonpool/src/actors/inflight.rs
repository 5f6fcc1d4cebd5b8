//! Floor 4, beside `host`: the deliveries a node's host is answering. A drained activation has
//! answered its last message when it ends, but the request handler that carries that answer back
//! over the transport may not have run yet; a shutdown waits for these handlers before it stops
//! serving, so no answered call is reported to its caller as dropped.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// A count of handlers in flight, with a wake-up when it falls to zero.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    /// Counts one handler until the guard is dropped.
    pub(crate) fn enter(&self) -> Guard<'_> {
        self.count.fetch_add(1, Ordering::AcqRel);
        Guard(self)
    }

    /// Returns once no handler is in flight.
    pub(crate) async fn settled(&self) {
        loop {
            // Created before the check, so a release between the two still wakes it.
            let idle = self.idle.notified();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// One handler in flight.
pub(crate) struct Guard<'a>(&'a InFlight);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
