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
}

impl WakerSlot {
    /// Registers `waker` for the next [`wake`](Self::wake).
    #[inline]
    pub(crate) fn register(&mut self, waker: &Waker) {
        keep_waker(&mut self.waker, waker);
        self.armed = true;
    }

    /// Wakes the registered task, once per registration.
    #[inline]
    pub(crate) fn wake(&mut self) {
        if std::mem::take(&mut self.armed)
            && let Some(waker) = &self.waker
        {
            waker.wake_by_ref();
        }
    }
}

/// Keeps `waker` in `kept`, cloning it only when the kept one would wake another task.
#[inline]
pub(crate) fn keep_waker(kept: &mut Option<Waker>, waker: &Waker) {
    match kept {
        Some(kept) if kept.will_wake(waker) => {}
        _ => *kept = Some(waker.clone()),
    }
}
