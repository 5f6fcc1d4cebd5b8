#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The engine's single-thread fast path and its slower paths for other threads: while a world
//! runs, its state and its executor's are leased to the running thread (no lock per access);
//! a wake from another thread is queued for the next drain instead of blocking; a provider used
//! from another thread waits for the run to end; handles and wakers outliving their world are
//! harmless.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use moonpool_core::{Providers, TaskProvider, TimeProvider};
use moonpool_sim::{SimError, SimProviders, SimWorld, WorldConfig};

fn world(seed: u64) -> SimWorld {
    SimWorld::with_config(seed, WorldConfig::quiet()).unwrap()
}

/// A future that hands its waker to a new OS thread, which wakes it after `delay` of wall time
/// and then sets `returned`.
fn woken_from_another_thread(
    delay: Duration,
    returned: Arc<AtomicBool>,
) -> impl std::future::Future<Output = ()> + Send {
    let mut started = false;
    let fired = Arc::new(AtomicBool::new(false));
    poll_fn(move |cx| {
        if fired.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        if !started {
            started = true;
            let waker = cx.waker().clone();
            let fired = Arc::clone(&fired);
            let returned = Arc::clone(&returned);
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                fired.store(true, Ordering::SeqCst);
                waker.wake();
                returned.store(true, Ordering::SeqCst);
            });
        }
        Poll::Pending
    })
}

#[test]
fn test_a_wake_from_another_thread_reaches_a_running_world_without_blocking_the_waker() {
    let mut world = world(1);
    let returned = Arc::new(AtomicBool::new(false));
    let seen_during_run = Arc::new(AtomicBool::new(false));
    let (r, seen, flag) = (
        Arc::clone(&returned),
        Arc::clone(&seen_during_run),
        Arc::clone(&returned),
    );
    world
        .add_workload("waiter", "10.0.0.1", move |p: SimProviders| async move {
            // A ticker keeps the world busy in wall time while the other thread sleeps.
            let time = p.time().clone();
            let ticker = p.task().spawn("ticker", async move {
                for _ in 0..2_000 {
                    if r.load(Ordering::SeqCst) {
                        // The waking thread's `wake()` returned while this world still ran; a
                        // few more events let the woken task run before the ticker ends.
                        seen.store(true, Ordering::SeqCst);
                        for _ in 0..3 {
                            time.sleep(Duration::from_millis(1)).await;
                        }
                        return;
                    }
                    time.sleep(Duration::from_millis(1)).await;
                    std::thread::sleep(Duration::from_micros(500));
                }
            });
            woken_from_another_thread(Duration::from_millis(30), flag).await;
            ticker.await.unwrap();
        })
        .unwrap();
    world.run().unwrap();
    assert!(
        seen_during_run.load(Ordering::SeqCst),
        "the other thread's wake() did not return during the run (it blocked on the world)"
    );
}

#[test]
fn test_a_provider_used_from_another_thread_waits_for_the_run_to_end() {
    let mut world = world(2);
    let order = Arc::new(Mutex::new(Vec::new()));
    let thread = Arc::new(Mutex::new(None));
    let (o, t) = (Arc::clone(&order), Arc::clone(&thread));
    world
        .add_workload("user", "10.0.0.1", move |p: SimProviders| async move {
            let time = p.time().clone();
            let from_thread = Arc::clone(&o);
            *t.lock().unwrap() = Some(std::thread::spawn(move || {
                // Blocks until the world's run releases its state: never races the run. (`now()`
                // reads a published clock and never waits; `timer()` needs the world's state.)
                let timer = time.timer();
                from_thread
                    .lock()
                    .unwrap()
                    .push(format!("thread read {timer:?}"));
            }));
            for _ in 0..20 {
                p.time().sleep(Duration::from_millis(1)).await;
                std::thread::sleep(Duration::from_millis(1));
            }
            o.lock().unwrap().push("run ends".to_string());
        })
        .unwrap();
    world.run().unwrap();
    thread.lock().unwrap().take().unwrap().join().unwrap();
    let order = order.lock().unwrap().clone();
    assert_eq!(order.len(), 2, "{order:?}");
    assert_eq!(order[0], "run ends", "{order:?}");
    assert!(order[1].starts_with("thread read"), "{order:?}");
}

#[test]
fn test_handles_and_wakers_outliving_their_world_are_harmless() {
    let kept: Arc<Mutex<Option<(SimProviders, Waker)>>> = Arc::new(Mutex::new(None));
    {
        let mut world = world(3);
        let k = Arc::clone(&kept);
        world
            .add_workload("leaker", "10.0.0.1", move |p: SimProviders| async move {
                let waker = poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
                *k.lock().unwrap() = Some((p.clone(), waker));
                p.time().sleep(Duration::from_millis(5)).await;
            })
            .unwrap();
        world.run().unwrap();
    }
    let (providers, waker) = kept.lock().unwrap().take().unwrap();
    // The world is gone: its clock still reads, a spawn is cancelled, wakes do nothing, on this
    // thread and on another.
    assert_eq!(providers.time().now(), Duration::from_millis(5));
    let handle = providers.task().spawn("late", async {});
    drop(handle);
    waker.wake_by_ref();
    let other = std::thread::spawn(move || {
        waker.wake();
        providers.time().now()
    });
    assert_eq!(other.join().unwrap(), Duration::from_millis(5));
}

#[test]
fn test_a_world_that_ends_with_a_waker_held_elsewhere_is_dropped_safely() {
    let held = Arc::new(Mutex::new(None::<Waker>));
    let h = Arc::clone(&held);
    let mut world = world(4);
    world
        .add_workload("stuck", "10.0.0.1", move |_p: SimProviders| async move {
            poll_fn(|cx| {
                *h.lock().unwrap() = Some(cx.waker().clone());
                Poll::<()>::Pending
            })
            .await;
        })
        .unwrap();
    let error = world.run().unwrap_err();
    assert!(matches!(error, SimError::Deadlock { .. }), "{error}");
    drop(world);
    // The task's world is gone; its waker, woken on another thread, does nothing.
    let waker = held.lock().unwrap().take().unwrap();
    std::thread::spawn(move || waker.wake()).join().unwrap();
}

#[test]
fn test_worlds_on_many_threads_share_nothing() {
    let fingerprints: Vec<u64> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                let mut world = world(9);
                let counter = Arc::new(AtomicU64::new(0));
                let c = Arc::clone(&counter);
                world
                    .add_workload("w", "10.0.0.1", move |p: SimProviders| async move {
                        let mut handles = Vec::new();
                        for i in 0..8u64 {
                            let time = p.time().clone();
                            let c = Arc::clone(&c);
                            handles.push(p.task().spawn("t", async move {
                                for j in 0..50 {
                                    time.sleep(Duration::from_micros(1 + (i * j) % 5)).await;
                                    c.fetch_add(1, Ordering::Relaxed);
                                }
                            }));
                        }
                        for h in handles {
                            h.await.unwrap();
                        }
                    })
                    .unwrap();
                let summary = world.run().unwrap();
                assert_eq!(counter.load(Ordering::Relaxed), 400);
                summary.fingerprint
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(
        fingerprints.windows(2).all(|w| w[0] == w[1]),
        "{fingerprints:?}"
    );
}
