//! Where a stream or listener keeps the waker of the task waiting on it.

use std::task::Waker;

/// The waker of the task waiting on one side of a stream (or on a listener), kept between waits.
///
/// A waiting task registers its waker on every `Pending`; a plain `Option<Waker>` taken at each
/// wake would clone (one atomic increment) and drop (one atomic decrement) a waker per wait,
/// which on a ping-pong is a visible share of the round trip. Here the waker stays stored, a
/// registration clones only when the task changed ([`Waker::will_wake`]), and `armed` makes a
/// wake fire only for a registration not yet woken, so a kept waker never wakes a task that is
/// no longer waiting (no spurious polls: the schedule is the same as with a taken waker).
#[derive(Default)]
pub(crate) struct WakerSlot {
    waker: Option<Waker>,
    armed: bool,
    /// `waker` is the waker of the task that registered it: waking it runs no foreign code.
    own: bool,
}

impl WakerSlot {
    /// Registers `waker` for the next [`wake`](Self::wake).
    #[inline]
    pub(crate) fn register(&mut self, waker: &Waker) {
        keep_waker(&mut self.waker, waker);
        self.own = crate::executor::own_task(waker).is_some();
        self.armed = true;
    }

    /// Wakes the registered task, once per registration; a waker not known to be a task's own
    /// is woken once the world's state is let go (see `kernel::wakes`).
    #[inline]
    pub(crate) fn wake(&mut self) {
        if std::mem::take(&mut self.armed)
            && let Some(waker) = &self.waker
        {
            if self.own {
                waker.wake_by_ref();
            } else {
                crate::kernel::wakes::wake_foreign(waker);
            }
        }
    }
}

/// Keeps `waker` in `kept`, cloning it only when the kept one would wake another task.
#[inline]
pub(crate) fn keep_waker(kept: &mut Option<Waker>, waker: &Waker) {
    match kept {
        Some(kept) if kept.will_wake(waker) => {}
        // The old waker is let go of under the world's state: what it holds may reach the world
        // when dropped (see `kernel::wakes`).
        _ => crate::kernel::wakes::drop_later(kept.replace(waker.clone())),
    }
}
