//! Time: the process clock, sleeps and timeouts.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

/// A deadline passed before the wrapped future completed.
///
/// Returned by [`TimeProvider::timeout`]; it names the duration that elapsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline of {duration:?} elapsed")]
pub struct Elapsed {
    /// The timeout that elapsed.
    pub duration: Duration,
}

/// Access to time.
///
/// In production ([`crate::TokioTimeProvider`]) this is the monotonic wall clock. In simulation it
/// is the world's logical clock: idle time is skipped, so an hour of `sleep` takes microseconds.
///
/// Both clocks are expressed as a [`Duration`] since an arbitrary epoch (the provider's creation in
/// production, the start of the world in simulation): Moonpool never exposes calendar time to code
/// under test.
pub trait TimeProvider: Clone + Send + Sync + 'static {
    /// The exact current time of this clock.
    fn now(&self) -> Duration;

    /// The time as this process's local timer reads it.
    ///
    /// Never behind [`now`](Self::now). In simulation it may run ahead of `now()` by up to the
    /// world's configured clock-drift bound, as a real machine's clock does; in production it equals
    /// `now()`. Use it wherever real code would read the local clock to make a decision (lease
    /// expiry, timeouts computed by hand) so that drift bugs can surface.
    fn timer(&self) -> Duration;

    /// Completes after `duration` has passed on this clock.
    ///
    /// The returned future owns everything it needs (`'static`), so it can be stored or moved into
    /// a spawned task.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static;

    /// Runs `future` with a deadline: its output, or [`Elapsed`] if `duration` passes first.
    ///
    /// When both are ready in the same poll the future's output wins, so a result that arrived just
    /// in time is never thrown away.
    fn timeout<F>(
        &self,
        duration: Duration,
        future: F,
    ) -> impl Future<Output = Result<F::Output, Elapsed>> + Send
    where
        F: Future + Send,
    {
        let sleep = self.sleep(duration);
        async move {
            let mut future = pin!(future);
            let mut sleep = pin!(sleep);
            poll_fn(|cx| {
                if let Poll::Ready(output) = future.as_mut().poll(cx) {
                    return Poll::Ready(Ok(output));
                }
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(Elapsed { duration })),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await
        }
    }
}
