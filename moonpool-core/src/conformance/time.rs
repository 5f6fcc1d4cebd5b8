//! Contracts of [`TimeProvider`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{ContractResult, Fixture, attempt, ensure};
use crate::{Elapsed, Providers, TaskProvider, TimeProvider};

/// `sleep(d)` lets at least `d` pass on `now()`.
pub async fn sleep_advances_now<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let time = fx.providers.time();
    let before = time.now();
    time.sleep(Duration::from_millis(20)).await;
    let elapsed = time.now().saturating_sub(before);
    ensure!(
        elapsed >= Duration::from_millis(20),
        "slept 20ms but now() advanced only {elapsed:?}"
    );
    time.sleep(Duration::ZERO).await;
    Ok(())
}

/// `timer()` is never behind `now()`.
pub async fn timer_never_behind_now<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let time = fx.providers.time();
    for _ in 0..20 {
        let now = time.now();
        let timer = time.timer();
        ensure!(timer >= now, "timer() {timer:?} is behind now() {now:?}");
        time.sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// A timeout around a future that never completes elapses, and no earlier than its duration.
pub async fn timeout_elapses<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let time = fx.providers.time();
    let before = time.now();
    let duration = Duration::from_millis(15);
    let result = time.timeout(duration, std::future::pending::<()>()).await;
    ensure!(
        result == Err(Elapsed { duration }),
        "timeout around a pending future returned {result:?}"
    );
    let elapsed = time.now().saturating_sub(before);
    ensure!(elapsed >= duration, "timeout fired after only {elapsed:?}");
    Ok(())
}

/// A timeout around a future that completes in time returns its output.
pub async fn timeout_returns_ready_value<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let time = fx.providers.time();
    let result = time.timeout(Duration::from_secs(5), async { 42 }).await;
    ensure!(
        result == Ok(42),
        "timeout around a ready future returned {result:?}"
    );
    let sleeper = time.clone();
    let result = time
        .timeout(Duration::from_secs(5), async move {
            sleeper.sleep(Duration::from_millis(5)).await;
            7
        })
        .await;
    ensure!(
        result == Ok(7),
        "timeout around a short sleep returned {result:?}"
    );
    Ok(())
}

/// Sleepers wake in the order of their deadlines, not of their creation.
pub async fn sleeps_wake_in_deadline_order<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for millis in [60u64, 20, 40] {
        let time = fx.providers.time().clone();
        let order = Arc::clone(&order);
        handles.push(fx.providers.task().spawn("sleeper", async move {
            time.sleep(Duration::from_millis(millis)).await;
            if let Ok(mut order) = order.lock() {
                order.push(millis);
            }
        }));
    }
    for handle in handles {
        attempt!(handle.await, "joining a sleeper");
    }
    let order = order.lock().map(|o| o.clone()).unwrap_or_default();
    ensure!(
        order == vec![20, 40, 60],
        "sleepers woke in order {order:?}"
    );
    Ok(())
}
