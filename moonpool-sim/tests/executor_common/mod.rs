//! What the executor suites (`executor`, `executor_scheduling`) share: a seeded executor, a
//! drain, a poll of a join handle from outside, a manual event, a drop counter. Each file takes
//! it with `mod executor_common;`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use moonpool_core::{JoinError, JoinHandle};
use moonpool_sim::executor::{DrainStats, Executor};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

// ---------------------------------------------------------------------------------------------
// Helpers

pub fn executor(seed: u64) -> Executor {
    Executor::new(ChaCha8Rng::seed_from_u64(seed))
}

pub fn drain(executor: &Executor) -> DrainStats {
    executor.run_until_stalled().unwrap()
}

/// Polls a handle once from outside the executor.
pub fn try_join<T>(handle: &mut JoinHandle<T>) -> Option<Result<T, JoinError>> {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(handle).poll(&mut cx) {
        Poll::Ready(result) => Some(result),
        Poll::Pending => None,
    }
}

/// A manual event: tasks wait for the next `fire`, which wakes them in the order they waited.
#[derive(Clone, Default)]
pub struct Event {
    pub inner: Arc<Mutex<EventState>>,
}

#[derive(Default)]
pub struct EventState {
    pub fired: u64,
    pub waiters: Vec<Waker>,
}

impl Event {
    pub fn fire(&self) {
        let waiters = {
            let mut state = self.inner.lock().unwrap();
            state.fired += 1;
            std::mem::take(&mut state.waiters)
        };
        for waker in waiters {
            waker.wake();
        }
    }

    /// Resolves at the first `fire` after the first poll.
    pub async fn wait(&self) {
        let mut seen = None;
        poll_fn(|cx| {
            let mut state = self.inner.lock().unwrap();
            match seen {
                Some(fired) if state.fired > fired => Poll::Ready(()),
                _ => {
                    seen.get_or_insert(state.fired);
                    state.waiters.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
    }
}

/// Counts its drops.
pub struct DropCounter(pub Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

pub fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

pub fn assert_cancelled<T: std::fmt::Debug>(handle: &mut JoinHandle<T>, name: &str) {
    match try_join(handle) {
        Some(Err(JoinError::Cancelled { task })) => assert_eq!(task, name),
        other => panic!("expected '{name}' cancelled, got {other:?}"),
    }
}
