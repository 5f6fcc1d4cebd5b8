//! What the second hostile pass's suites (`hostile2_*.rs`) share: quiet worlds, a run whose
//! panic (out of the engine, not out of a task) is caught and returned as text, the seed count
//! of a `slow_simulation_*` variant, and a wrapping waker that runs a closure when woken.
#![allow(
    unused_imports,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

use moonpool_sim::{RunSummary, SimError, SimWorld, WorldConfig};

/// A world with no faults at all.
pub fn quiet(seed: u64) -> SimWorld {
    SimWorld::with_config(seed, WorldConfig::quiet()).unwrap()
}

/// Runs `world`, turning a panic that escapes `run` (the engine's own, not a task's: those are
/// verdicts) into `Err(message)`.
pub fn run_caught(mut world: SimWorld) -> Result<Result<RunSummary, SimError>, String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| world.run()));
    // The world is dropped here too, outside the catch: a panic in its drop fails the test.
    match outcome {
        Ok(result) => Ok(result),
        Err(payload) => Err(moonpool_core::task::panic_message(payload.as_ref())),
    }
}

/// Like [`run_caught`], for any closure (a builder's run, a world's setup).
pub fn caught<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|payload| moonpool_core::task::panic_message(payload.as_ref()))
}

/// What a run leaves that must be the same for the same seed.
pub fn key(summary: &RunSummary) -> (u64, std::time::Duration, u64, u64) {
    (
        summary.fingerprint,
        summary.sim_time,
        summary.events,
        summary.polls,
    )
}

/// Seeds for a `slow_simulation_*` variant: `HOSTILE2_SEEDS`, else `ci` under `CI=true`, else
/// `full`.
pub fn seed_count(ci: u64, full: u64) -> u64 {
    if let Some(n) = std::env::var("HOSTILE2_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        ci
    } else {
        full
    }
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

/// `Waker::from(OnWake { .. })`.
pub fn on_wake(inner: &Waker, on_wake: Arc<dyn Fn() + Send + Sync>) -> Waker {
    Waker::from(Arc::new(OnWake {
        inner: inner.clone(),
        on_wake,
    }))
}

/// A slot a test can stash anything in, shared with tasks.
pub type Slot<T> = Arc<Mutex<Option<T>>>;

pub fn slot<T>() -> Slot<T> {
    Arc::new(Mutex::new(None))
}

/// A fast test's seed count: `default`, or `HOSTILE2_SEEDS` when that is larger (for the 10x
/// runs).
pub fn seeds_or(default: u64) -> u64 {
    std::env::var("HOSTILE2_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(default, |n: u64| n.max(default))
}
