use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::TimeProvider;

/// The monotonic wall clock.
///
/// [`now`](TimeProvider::now) is the time elapsed since this provider (or the one it was cloned
/// from) was created: a stopwatch, not a calendar. `timer()` equals `now()`.
#[derive(Debug, Clone)]
pub struct TokioTimeProvider {
    epoch: Arc<Instant>,
}

impl TokioTimeProvider {
    /// A clock starting at zero now.
    pub fn new() -> Self {
        Self {
            epoch: Arc::new(Instant::now()),
        }
    }
}

impl Default for TokioTimeProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl TimeProvider for TokioTimeProvider {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn timer(&self) -> Duration {
        self.now()
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        tokio::time::sleep(duration)
    }
}
