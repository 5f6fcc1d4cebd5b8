//! What the fourth hostile pass's suites (`hostile4_*.rs`) share: quiet worlds with a fixed
//! latency, a run whose panic out of `SimWorld::run` is caught and returned as text, a wrapping
//! waker that runs a closure before waking the task, a shared log.
#![allow(
    unused_imports,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use moonpool_sim::{
    NetworkConfiguration, RunSummary, SimError, SimWorld, WorldConfig, WorldControl,
};

/// A world with no faults and a fixed network latency of 100 us.
pub fn quiet(seed: u64) -> SimWorld {
    let mut config = WorldConfig::quiet();
    config.network = NetworkConfiguration::with_fixed_latency(Duration::from_micros(100));
    SimWorld::with_config(seed, config).unwrap()
}

/// Runs `world`, turning a panic that escapes `run` into `Err(message)`.
pub fn run_caught(world: &mut SimWorld) -> Result<Result<RunSummary, SimError>, String> {
    catch_unwind(AssertUnwindSafe(|| world.run()))
        .map_err(|payload| moonpool_core::task::panic_message(payload.as_ref()))
}

/// A waker that runs `on_wake` and then wakes `inner`.
pub struct OnWake {
    pub inner: Waker,
    pub on_wake: Arc<dyn Fn() + Send + Sync>,
}

impl Wake for OnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        (self.on_wake)();
        self.inner.wake_by_ref();
    }
}

/// A waker wrapping `inner` that runs `on_wake` first.
pub fn on_wake(inner: &Waker, on_wake: Arc<dyn Fn() + Send + Sync>) -> Waker {
    Waker::from(Arc::new(OnWake {
        inner: inner.clone(),
        on_wake,
    }))
}

pub type Log = Arc<Mutex<Vec<String>>>;

pub fn log() -> Log {
    Arc::default()
}

pub fn taken(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// A wake action that reads the world's clock through `control`, counting its calls.
pub fn reads_the_world(
    control: WorldControl,
    calls: Arc<AtomicU64>,
) -> Arc<dyn Fn() + Send + Sync> {
    Arc::new(move || {
        let _ = control.now();
        calls.fetch_add(1, Ordering::SeqCst);
    })
}

/// Polls `future` to completion, always through `on_wake(task waker, action)`.
pub async fn through<F: Future + Unpin>(
    mut future: F,
    action: Arc<dyn Fn() + Send + Sync>,
) -> F::Output {
    poll_fn(|cx| {
        let waker = on_wake(cx.waker(), Arc::clone(&action));
        std::pin::Pin::new(&mut future).poll(&mut Context::from_waker(&waker))
    })
    .await
}
