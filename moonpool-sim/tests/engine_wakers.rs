#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The paths of a timer's waiter: a sleep polled by a task with its own waker is kept by the
//! task's slot (no waker clone); a sleep polled through a wrapping waker, or moved to another
//! task between polls, keeps and wakes the waker it was last polled with.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use moonpool_core::{Providers, TaskProvider, TimeProvider};
use moonpool_sim::{SimProviders, SimWorld, WorldConfig};

fn world(seed: u64) -> SimWorld {
    SimWorld::with_config(seed, WorldConfig::quiet()).unwrap()
}

/// Wakes `inner` and counts the wakes.
struct Counting {
    inner: Waker,
    wakes: Arc<AtomicU64>,
}

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.inner.wake_by_ref();
    }
}

#[test]
fn test_a_sleep_polled_through_a_wrapping_waker_is_woken_through_the_wrapper() {
    let mut world = world(1);
    let wakes = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&wakes);
    let finished_at = Arc::new(Mutex::new(None));
    let at = Arc::clone(&finished_at);
    world
        .add_workload("wrapped", "10.0.0.1", move |p: SimProviders| async move {
            let time = p.time().clone();
            let mut sleep = Box::pin(time.sleep(Duration::from_millis(5)));
            poll_fn(|cx: &mut Context<'_>| {
                let wrapper = Waker::from(Arc::new(Counting {
                    inner: cx.waker().clone(),
                    wakes: Arc::clone(&seen),
                }));
                sleep.as_mut().poll(&mut Context::from_waker(&wrapper))
            })
            .await;
            *at.lock().unwrap() = Some(time.now());
        })
        .unwrap();
    world.run().unwrap();
    assert_eq!(*finished_at.lock().unwrap(), Some(Duration::from_millis(5)));
    assert!(
        wakes.load(Ordering::SeqCst) >= 1,
        "the timer woke the wrapper, not the task's own waker behind it"
    );
}

#[test]
fn test_a_sleep_moved_to_another_task_wakes_the_task_that_polled_it_last() {
    type Parked = Arc<Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>>;
    let mut world = world(2);
    let finished_at = Arc::new(Mutex::new(None));
    let at = Arc::clone(&finished_at);
    world
        .add_workload("mover", "10.0.0.1", move |p: SimProviders| async move {
            let time = p.time().clone();
            let parked: Parked = Arc::new(Mutex::new(None));
            // Task A polls the sleep once (registering its own waker), then hands it over.
            let first = Arc::clone(&parked);
            let sleeper = time.clone();
            let a = p.task().spawn("a", async move {
                let mut sleep: Pin<Box<dyn Future<Output = ()> + Send>> =
                    Box::pin(sleeper.sleep(Duration::from_millis(3)));
                let mut polled = false;
                poll_fn(|cx| {
                    if !polled {
                        polled = true;
                        assert!(sleep.as_mut().poll(cx).is_pending());
                    }
                    Poll::Ready(())
                })
                .await;
                *first.lock().unwrap() = Some(sleep);
            });
            a.await.unwrap();
            // Task B, polled after A is gone, awaits it: the timer must wake B.
            let second = Arc::clone(&parked);
            let clock = time.clone();
            let b = p.task().spawn("b", async move {
                let sleep = second.lock().unwrap().take().unwrap();
                sleep.await;
                clock.now()
            });
            *at.lock().unwrap() = Some(b.await.unwrap());
        })
        .unwrap();
    world.run().unwrap();
    assert_eq!(*finished_at.lock().unwrap(), Some(Duration::from_millis(3)));
}

#[test]
fn test_many_tasks_sleeping_in_a_loop_finish_in_time_order_on_every_seed() {
    for seed in 1..=20 {
        let mut world = world(seed);
        let order = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&order);
        world
            .add_workload("sleepers", "10.0.0.1", move |p: SimProviders| async move {
                let mut handles = Vec::new();
                for t in 0..20u64 {
                    let time = p.time().clone();
                    let seen = Arc::clone(&seen);
                    handles.push(p.task().spawn("sleeper", async move {
                        for i in 0..10u64 {
                            time.sleep(Duration::from_micros(1 + (t + i) % 7)).await;
                        }
                        seen.lock().unwrap().push((time.now(), t));
                    }));
                }
                for handle in handles {
                    handle.await.unwrap();
                }
            })
            .unwrap();
        world.run().unwrap();
        let order = order.lock().unwrap();
        assert_eq!(order.len(), 20);
        // Each task's end is the sum of its sleeps: every task ends exactly then.
        for &(at, t) in order.iter() {
            let total: u64 = (0..10u64).map(|i| 1 + (t + i) % 7).sum();
            assert_eq!(at, Duration::from_micros(total), "seed {seed}, task {t}");
        }
    }
}
