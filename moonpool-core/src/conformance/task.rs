//! Contracts of [`TaskProvider`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{ContractResult, Fixture, attempt, ensure};
use crate::{JoinError, Providers, RandomProvider, TaskProvider, TimeProvider};

/// A spawned task's output comes back through its handle.
pub async fn spawn_and_join<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let handle = fx.providers.task().spawn("adder", async { 2 + 3 });
    ensure!(
        handle.name() == "adder",
        "handle name is '{}'",
        handle.name()
    );
    let value = attempt!(handle.await, "joining the adder");
    ensure!(value == 5, "task returned {value}");
    Ok(())
}

/// `abort` cancels a pending task; its handle reports `Cancelled` and `is_finished`.
pub async fn abort_cancels<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let time = fx.providers.time().clone();
    let reached_end = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&reached_end);
    let handle = fx.providers.task().spawn("sleeper", async move {
        time.sleep(Duration::from_secs(3600)).await;
        flag.store(true, Ordering::SeqCst);
    });
    fx.providers.time().sleep(Duration::from_millis(5)).await;
    handle.abort();
    let result = fx
        .providers
        .time()
        .timeout(Duration::from_secs(10), handle)
        .await;
    match result {
        Ok(Err(JoinError::Cancelled { task })) => {
            ensure!(task == "sleeper", "cancelled task named '{task}'");
        }
        other => {
            return Err(super::ContractViolation::new(format!(
                "aborted task's handle resolved to {other:?}"
            )));
        }
    }
    ensure!(
        !reached_end.load(Ordering::SeqCst),
        "aborted task ran to its end"
    );
    Ok(())
}

/// A panicking task fails its own handle only; a sibling still completes.
pub async fn panic_is_isolated<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let time = fx.providers.time().clone();
    let sibling = fx.providers.task().spawn("sibling", async move {
        time.sleep(Duration::from_millis(10)).await;
        "alive"
    });
    // random_bool(1.0) is always true and draws nothing; it only hides the panic from the compiler.
    let explode = fx.providers.random().random_bool(1.0);
    let panicker = fx.providers.task().spawn("panicker", async move {
        if explode {
            panic!("deliberate contract panic");
        }
    });
    match panicker.await {
        Err(JoinError::Panicked { task, message }) => {
            ensure!(task == "panicker", "panicked task named '{task}'");
            ensure!(
                message.contains("deliberate contract panic"),
                "panic message was '{message}'"
            );
        }
        other => {
            return Err(super::ContractViolation::new(format!(
                "panicking task's handle resolved to {other:?}"
            )));
        }
    }
    let value = attempt!(sibling.await, "joining the sibling of a panicked task");
    ensure!(value == "alive", "sibling returned {value}");
    Ok(())
}

/// Dropping a handle detaches the task; it keeps running to completion.
pub async fn dropped_handle_detaches<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let time = fx.providers.time().clone();
    drop(fx.providers.task().spawn("detached", async move {
        time.sleep(Duration::from_millis(5)).await;
        let _ = sender.send(99u32);
    }));
    let value = attempt!(receiver.await, "receiving from the detached task");
    ensure!(value == 99, "detached task sent {value}");
    Ok(())
}

/// `is_finished` is false while a task waits and becomes true once it completes.
pub async fn is_finished_tracks_completion<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
    let handle = fx.providers.task().spawn("waiter", async move {
        let _ = receiver.await;
    });
    fx.providers.time().sleep(Duration::from_millis(2)).await;
    ensure!(!handle.is_finished(), "a waiting task reports is_finished");
    let _ = sender.send(());
    for _ in 0..1_000 {
        if handle.is_finished() {
            break;
        }
        fx.providers.time().sleep(Duration::from_millis(1)).await;
    }
    ensure!(
        handle.is_finished(),
        "a completed task never reported is_finished"
    );
    attempt!(handle.await, "joining the finished task");
    Ok(())
}

/// A task looping on `yield_now` lets another ready task make progress.
pub async fn yield_now_lets_others_run<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let flag = Arc::new(AtomicBool::new(false));
    let setter = Arc::clone(&flag);
    let handle = fx.providers.task().spawn("setter", async move {
        setter.store(true, Ordering::SeqCst);
    });
    let mut yields = 0u32;
    while !flag.load(Ordering::SeqCst) && yields < 100_000 {
        fx.providers.task().yield_now().await;
        yields += 1;
    }
    ensure!(
        flag.load(Ordering::SeqCst),
        "other task never ran after {yields} yields"
    );
    attempt!(handle.await, "joining the setter");
    Ok(())
}
