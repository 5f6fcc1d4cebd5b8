//! Foreign wakers that run user code when the engine wakes them (second hostile pass): the
//! engine wakes a timer's, a delivery's and a disk operation's waiter while it holds the world's
//! state, outside any task's poll. User code in such a wake (an inner executor's scheduling, a
//! destructor, a panic) must neither re-enter that state nor escape `SimWorld::run` as a panic.
//! The timer and network paths of the re-entrance are in `hostile2_time.rs` and
//! `hostile2_config.rs`; here the disk's path, panicking wakers, and zero timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::{Future, pending, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use moonpool_core::{OpenOptions, Providers, StorageFile, StorageProvider, TimeProvider};
use moonpool_sim::{SimError, SimWorld, WorldConfig};

mod hostile2_common;

use hostile2_common::*;

type BoxedSleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A sleep registered with the world by the calling task and returned pending.
async fn registered_sleep(time: &moonpool_sim::SimTimeProvider) -> BoxedSleep {
    let mut sleep: BoxedSleep = Box::pin(time.sleep(Duration::from_secs(5)));
    poll_fn(|cx| {
        let _ = sleep.as_mut().poll(cx);
        Poll::Ready(())
    })
    .await;
    sleep
}

/// A disk operation (a sync) polled through a foreign waker whose wake drops a sleep: the
/// operation's completion is applied while the engine holds the world's state.
#[test]
fn test_a_sleep_dropped_inside_a_disk_completions_wake_is_harmless() {
    let mut world = quiet(1);
    world
        .add_workload("syncer", "10.0.0.1", |p| async move {
            let time = p.time().clone();
            let mut file = p
                .storage()
                .open("f", OpenOptions::read_write_create())
                .await
                .unwrap();
            let victim: Slot<BoxedSleep> = slot();
            *victim.lock().unwrap() = Some(registered_sleep(&time).await);
            let v = Arc::clone(&victim);
            let drop_victim: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
                drop(v.lock().unwrap().take());
            });
            let mut sync = Box::pin(file.sync_all());
            poll_fn(|cx| {
                let waker = on_wake(cx.waker(), Arc::clone(&drop_victim));
                sync.as_mut().poll(&mut Context::from_waker(&waker))
            })
            .await
            .unwrap();
        })
        .unwrap();
    run_caught(world)
        .expect("no panic out of SimWorld::run")
        .expect("the run ends well");
}

/// A foreign waker that panics when a timer wakes it: the panic is the seed's failure (a
/// verdict naming the task whose waker it was, or a task panic), not a panic out of `run`.
#[test]
fn test_a_waker_that_panics_when_a_timer_fires_is_a_verdict() {
    let mut world = quiet(2);
    world
        .add_workload("fragile", "10.0.0.1", |p| async move {
            let time = p.time().clone();
            let boom: Arc<dyn Fn() + Send + Sync> = Arc::new(|| panic!("waker panicked on wake"));
            let mut sleep = Box::pin(time.sleep(Duration::from_millis(2)));
            poll_fn(|cx| {
                let waker = on_wake(cx.waker(), Arc::clone(&boom));
                sleep.as_mut().poll(&mut Context::from_waker(&waker))
            })
            .await;
        })
        .unwrap();
    let outcome = run_caught(world).expect("no panic out of SimWorld::run");
    match outcome {
        Err(error) => assert!(error.to_string().contains("waker panicked"), "{error}"),
        Ok(summary) => panic!("a panicking waker passed: {summary:?}"),
    }
}

/// The same panicking waker woken by another task (inside that task's poll): the executor's
/// isolation catches it and the seed fails naming the waking task.
#[test]
fn test_a_waker_that_panics_when_another_task_wakes_it_fails_the_seed() {
    let mut world = quiet(3);
    world
        .add_workload("fragile", "10.0.0.1", |p| async move {
            let time = p.time().clone();
            let (send, receive) = tokio::sync::oneshot::channel::<()>();
            let t = time.clone();
            // Detached: its panic is nobody's to handle, so it fails the seed.
            drop(moonpool_core::TaskProvider::spawn(
                p.task(),
                "sender",
                async move {
                    t.sleep(Duration::from_millis(1)).await;
                    let _ = send.send(());
                },
            ));
            let boom: Arc<dyn Fn() + Send + Sync> = Arc::new(|| panic!("waker panicked on wake"));
            let mut receive = Box::pin(receive);
            let _ = poll_fn(|cx| {
                let waker = on_wake(cx.waker(), Arc::clone(&boom));
                receive.as_mut().poll(&mut Context::from_waker(&waker))
            })
            .await;
            pending::<()>().await;
        })
        .unwrap();
    let error = run_caught(world)
        .expect("no panic out of SimWorld::run")
        .unwrap_err();
    match &error {
        SimError::TaskPanicked { task, message, .. } => {
            assert!(task.contains("sender"), "{task}");
            assert!(message.contains("waker panicked"), "{message}");
        }
        other => panic!("expected the waking task's panic, got {other}"),
    }
}

/// Zero timeouts: a ready future wins (it is polled first), a pending one times out at the
/// same instant, and neither moves the clock.
#[test]
fn test_zero_timeouts_decide_at_the_same_instant() {
    let mut world = quiet(4);
    world
        .add_workload("zero", "10.0.0.1", |p| async move {
            let time = p.time().clone();
            assert_eq!(time.timeout(Duration::ZERO, async { 1 }).await, Ok(1));
            let never = time.timeout(Duration::ZERO, pending::<()>()).await;
            assert!(never.is_err());
            let inner = time.clone();
            let zero_in_zero = time
                .timeout(
                    Duration::ZERO,
                    async move { inner.sleep(Duration::ZERO).await },
                )
                .await;
            assert!(
                zero_in_zero.is_ok(),
                "both due at once: the future is polled first"
            );
            assert_eq!(time.now(), Duration::ZERO);
        })
        .unwrap();
    let summary = run_caught(world).unwrap().unwrap();
    assert_eq!(summary.sim_time, Duration::ZERO);
}

/// A file opened, written and synced inside a timeout that fires at the same instant as the
/// sync completes (the latency is the timeout): one of the two wins by the seed, the same twice,
/// and a cancelled sync leaves the file usable.
#[test]
fn test_a_sync_raced_by_its_timeout_at_the_same_instant_is_decided_by_the_seed() {
    let run = |seed: u64| {
        let mut config = WorldConfig::quiet();
        config.storage =
            moonpool_sim::StorageConfiguration::with_fixed_latency(Duration::from_millis(1));
        let mut world = SimWorld::with_config(seed, config).unwrap();
        let out: Slot<(bool, u64)> = slot();
        let o = Arc::clone(&out);
        world
            .add_workload("racer", "10.0.0.1", move |p| async move {
                let time = p.time().clone();
                let mut file = p
                    .storage()
                    .open("f", OpenOptions::read_write_create())
                    .await
                    .unwrap();
                let synced = time
                    .timeout(Duration::from_millis(1), file.sync_all())
                    .await
                    .is_ok();
                file.sync_all().await.unwrap();
                let size = file.size().await.unwrap();
                *o.lock().unwrap() = Some((synced, size));
            })
            .unwrap();
        let summary = world.run().unwrap();
        let value = out.lock().unwrap().take().unwrap();
        (value, key(&summary))
    };
    for seed in 0..seeds_or(16) {
        assert_eq!(run(seed), run(seed), "seed {seed} twice");
    }
}

/// A plain world with a few tasks, timers, a connection and a file: its whole run as text.
fn plain_world_run(seed: u64) -> String {
    let mut config = WorldConfig::default();
    config.record_trace = true;
    let mut world = SimWorld::with_config(seed, config).unwrap();
    world
        .add_workload("plain", "10.0.0.1", |p| async move {
            let time = p.time().clone();
            let mut file = p
                .storage()
                .open("f", OpenOptions::read_write_create())
                .await
                .ok();
            for i in 0..20u64 {
                let t = time.clone();
                drop(moonpool_core::TaskProvider::spawn(
                    p.task(),
                    "t",
                    async move {
                        t.sleep(Duration::from_millis(i % 5)).await;
                    },
                ));
                if let Some(f) = file.as_mut() {
                    let _ = tokio::io::AsyncWriteExt::write_all(f, b"abc").await;
                    let _ = f.sync_all().await;
                }
                time.sleep(Duration::from_millis(1)).await;
            }
        })
        .unwrap();
    format!("{:?}", world.run())
}

/// Whatever a world whose waker panics in the engine's hands does (today the panic escapes
/// `run`, unwinding out of the middle of a run), the next world on the same thread runs exactly
/// as it does on a fresh thread: the unwinding left no per-thread state behind.
#[test]
fn test_the_next_world_after_a_panic_out_of_run_is_unaffected() {
    let fresh = std::thread::spawn(|| plain_world_run(77)).join().unwrap();
    let after = std::thread::spawn(|| {
        for seed in 0..3 {
            let mut world = quiet(seed);
            world
                .add_workload("fragile", "10.0.0.1", |p| async move {
                    let time = p.time().clone();
                    let boom: Arc<dyn Fn() + Send + Sync> =
                        Arc::new(|| panic!("waker panicked on wake"));
                    let mut sleep = Box::pin(time.sleep(Duration::from_millis(2)));
                    poll_fn(|cx| {
                        let waker = on_wake(cx.waker(), Arc::clone(&boom));
                        sleep.as_mut().poll(&mut Context::from_waker(&waker))
                    })
                    .await;
                })
                .unwrap();
            let _ = run_caught(world);
            // And the re-entrant kind: a wake that drops a registered sleep.
            let mut world = quiet(seed);
            world
                .add_workload("reentrant", "10.0.0.1", |p| async move {
                    let time = p.time().clone();
                    let victim: Slot<BoxedSleep> = slot();
                    *victim.lock().unwrap() = Some(registered_sleep(&time).await);
                    let drop_victim: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
                        drop(victim.lock().unwrap().take());
                    });
                    let mut sleep = Box::pin(time.sleep(Duration::from_millis(2)));
                    poll_fn(|cx| {
                        let waker = on_wake(cx.waker(), Arc::clone(&drop_victim));
                        sleep.as_mut().poll(&mut Context::from_waker(&waker))
                    })
                    .await;
                })
                .unwrap();
            let _ = run_caught(world);
        }
        plain_world_run(77)
    })
    .join()
    .unwrap();
    assert_eq!(after, fresh);
}
