//! The providers a transport needs, behind one object-safe trait, so that user-facing types
//! (`NetTransport`, `RequestStream`, `ReplyFuture`...) do not carry a `Providers` type parameter.
//!
//! Floor 1 (with the wire, the protocol, the configuration, errors and metrics): time, randomness
//! and tasks only. It knows nothing of peers, connections, endpoints or RPC; the network provider
//! is reached through the connection floor's `Connector`, implemented for the same
//! [`ProvidersEnv`].

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use moonpool_core::{JoinHandle, Providers, RandomProvider, TaskProvider, TimeProvider, UID};

/// A boxed, sendable future.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Time, randomness and tasks of the process running the transport.
pub(crate) trait Env: Send + Sync + 'static {
    /// The process clock.
    fn now(&self) -> Duration;
    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<()>;
    /// A float in `[0, 1)`.
    fn random_ratio(&self) -> f64;
    /// A fresh random token (never zero, never well-known).
    fn random_uid(&self) -> UID;
    /// Spawns a named task.
    fn spawn(&self, name: &str, future: BoxFuture<()>) -> JoinHandle<()>;
}

/// [`Env`] over a [`Providers`] bundle.
pub(crate) struct ProvidersEnv<P: Providers> {
    pub(crate) providers: P,
}

impl<P: Providers> Env for ProvidersEnv<P> {
    fn now(&self) -> Duration {
        self.providers.time().now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<()> {
        Box::pin(self.providers.time().sleep(duration))
    }

    fn random_ratio(&self) -> f64 {
        self.providers.random().random_ratio()
    }

    fn random_uid(&self) -> UID {
        UID::random(self.providers.random())
    }

    fn spawn(&self, name: &str, future: BoxFuture<()>) -> JoinHandle<()> {
        self.providers.task().spawn(name, future)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    /// A clock moved by hand; sleeps never complete; tasks are never run.
    pub(crate) struct ManualEnv {
        now: Mutex<Duration>,
        counter: AtomicU64,
    }

    impl ManualEnv {
        pub(crate) fn new() -> Arc<Self> {
            Arc::new(Self {
                now: Mutex::new(Duration::ZERO),
                counter: AtomicU64::new(1),
            })
        }

        pub(crate) fn advance(&self, by: Duration) {
            if let Ok(mut now) = self.now.lock() {
                *now += by;
            }
        }
    }

    impl Env for ManualEnv {
        fn now(&self) -> Duration {
            self.now.lock().map(|now| *now).unwrap_or_default()
        }
        fn sleep(&self, _duration: Duration) -> BoxFuture<()> {
            Box::pin(std::future::pending())
        }
        fn random_ratio(&self) -> f64 {
            0.5
        }
        fn random_uid(&self) -> UID {
            UID::new(7, self.counter.fetch_add(1, Ordering::Relaxed))
        }
        fn spawn(&self, name: &str, _future: BoxFuture<()>) -> JoinHandle<()> {
            JoinHandle::from_raw(name, Box::new(NeverRuns))
        }
    }

    /// A task that never runs (nor finishes).
    pub(crate) struct NeverRuns;

    impl moonpool_core::RawJoinHandle<()> for NeverRuns {
        fn poll_join(
            &mut self,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), moonpool_core::JoinError>> {
            std::task::Poll::Pending
        }
        fn abort(&self) {}
        fn is_finished(&self) -> bool {
            false
        }
    }
}
