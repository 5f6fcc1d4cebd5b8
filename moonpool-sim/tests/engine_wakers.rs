#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The paths of a timer's waiter: a sleep polled by a task with its own waker is kept by the
//! task's slot (no waker clone); a sleep polled through a wrapping waker, or moved to another
//! task between polls, keeps and wakes the waker it was last polled with. And the simulator's
//! own socket buggify sites, counted beside the world's state while disabled, count every call.
//! And how a sleep reaches its world: made during the run, through the thread's current world;
//! made before it, through a handle; polled outside its run, it stays pending.

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

/// The simulator's own socket sites count every call in the assertion table, also when they are
/// disabled (their calls are counted beside the world's state during the run).
#[test]
fn test_disabled_socket_sites_count_every_call() {
    use moonpool_core::{NetworkProvider, TcpListener};
    use moonpool_sim::{Locality, NetworkConfiguration};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const WRITES: u64 = 250;
    let mut config = WorldConfig::quiet();
    config.network = NetworkConfiguration::with_fixed_latency(Duration::from_millis(1));
    let mut world = SimWorld::with_config(3, config).unwrap();
    world
        .add_process(
            "server",
            "10.0.0.1",
            Locality::default(),
            |ctx| async move {
                let p = ctx.providers;
                let listener = p.network().bind("10.0.0.1:4500").await.unwrap();
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut frame = [0u8; 16];
                while stream.read_exact(&mut frame).await.is_ok() {
                    if stream.write_all(&frame).await.is_err() {
                        return;
                    }
                }
            },
        )
        .unwrap();
    world
        .add_workload("client", "10.0.0.2", |p: SimProviders| async move {
            let mut stream = p.network().connect("10.0.0.1:4500").await.unwrap();
            let mut reply = [0u8; 16];
            for _ in 0..WRITES {
                stream.write_all(&[7u8; 16]).await.unwrap();
                stream.read_exact(&mut reply).await.unwrap();
            }
        })
        .unwrap();
    world.run().unwrap();
    let table = world.assertions();
    let writes: Vec<_> = table
        .buggify
        .values()
        .filter(|r| r.function.contains("poll_write_locked"))
        .collect();
    assert_eq!(writes.len(), 1, "{:?}", table.buggify.keys());
    // One write per frame each way, each asking the short-write site once; none fires.
    assert_eq!(writes[0].calls, 2 * WRITES);
    assert_eq!(writes[0].fired, 0);
    let reads: Vec<_> = table
        .buggify
        .values()
        .filter(|r| r.function.contains("poll_read") && r.location.contains("providers/network/"))
        .collect();
    assert_eq!(reads.len(), 1, "{:?}", table.buggify.keys());
    // Each frame is read whole, once it is there, asking the would-block site once per frame.
    assert_eq!(reads[0].calls, 2 * WRITES);
}

/// A sleep made before the run (holding a handle on its world) completes in the run like any
/// other.
#[test]
fn test_a_sleep_made_before_the_run_completes_in_it() {
    let mut world = world(4);
    let finished_at = Arc::new(Mutex::new(None));
    let at = Arc::clone(&finished_at);
    world
        .add_workload("early", "10.0.0.1", move |p: SimProviders| {
            // Made now, outside the run.
            let sleep: Pin<Box<dyn Future<Output = ()> + Send>> =
                Box::pin(p.time().sleep(Duration::from_millis(7)));
            async move {
                sleep.await;
                *at.lock().unwrap() = Some(p.time().now());
            }
        })
        .unwrap();
    world.run().unwrap();
    assert_eq!(*finished_at.lock().unwrap(), Some(Duration::from_millis(7)));
}

/// A sleep made during a run and polled outside it (after the run, or on another thread during
/// it) stays pending without blocking the polling thread, and dropping it there is harmless.
#[test]
fn test_a_sleep_polled_outside_its_run_stays_pending() {
    type Parked = Arc<Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>>;
    let parked: Parked = Arc::new(Mutex::new(None));
    let other_thread = Arc::new(Mutex::new(None));
    let mut world = world(5);
    let (slot, seen) = (Arc::clone(&parked), Arc::clone(&other_thread));
    world
        .add_workload("maker", "10.0.0.1", move |p: SimProviders| async move {
            let time = p.time().clone();
            // Polled on another thread while this world runs: pending, and that thread returns.
            let mut during: Pin<Box<dyn Future<Output = ()> + Send>> =
                Box::pin(time.sleep(Duration::from_millis(1)));
            let polled = std::thread::spawn(move || {
                let mut cx = Context::from_waker(Waker::noop());
                let pending = during.as_mut().poll(&mut cx).is_pending();
                drop(during);
                pending
            })
            .join()
            .unwrap();
            *seen.lock().unwrap() = Some(polled);
            // Kept for after the run.
            *slot.lock().unwrap() = Some(Box::pin(time.sleep(Duration::from_millis(2))));
            time.sleep(Duration::from_millis(10)).await;
        })
        .unwrap();
    world.run().unwrap();
    assert_eq!(*other_thread.lock().unwrap(), Some(true));
    let mut after = parked.lock().unwrap().take().unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    assert!(after.as_mut().poll(&mut cx).is_pending());
    assert!(after.as_mut().poll(&mut cx).is_pending());
    drop(after);
    drop(world);
}

/// Two worlds run one after the other on one thread: each sleep reaches its own world only.
#[test]
fn test_sleeps_of_two_worlds_on_one_thread_reach_their_own_world() {
    for seed in 1..=3 {
        let mut first = world(seed);
        let mut second = world(seed + 100);
        let ends = Arc::new(Mutex::new(Vec::new()));
        for (world, name, millis) in [(&mut first, "a", 3u64), (&mut second, "b", 5)] {
            let ends = Arc::clone(&ends);
            world
                .add_workload(name, "10.0.0.1", move |p: SimProviders| async move {
                    for _ in 0..4 {
                        p.time().sleep(Duration::from_millis(millis)).await;
                    }
                    ends.lock().unwrap().push((name, p.time().now()));
                })
                .unwrap();
        }
        first.run().unwrap();
        second.run().unwrap();
        assert_eq!(
            *ends.lock().unwrap(),
            vec![
                ("a", Duration::from_millis(12)),
                ("b", Duration::from_millis(20))
            ]
        );
    }
}

/// A sleep's deadline keeps every nanosecond of its duration, and a sleep too long for the clock
/// (past `u64::MAX` nanoseconds, "never") stays pending without disturbing the run: the world
/// ends with its workload, and the task sleeping forever is dropped with it.
#[test]
fn test_sleep_deadlines_keep_nanoseconds_and_a_never_sleep_stays_pending() {
    let mut world = world(5);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    world
        .add_workload("sleeper", "10.0.0.1", move |p: SimProviders| async move {
            let time = p.time().clone();
            for never in [Duration::MAX, Duration::from_nanos(u64::MAX)] {
                let time = time.clone();
                drop(p.task().spawn("forever", async move {
                    time.sleep(never).await;
                    panic!("a sleep of {never:?} completed");
                }));
            }
            for step in [1, 999_999_999, 3_000_000_007] {
                time.sleep(Duration::from_nanos(step)).await;
                log.lock().unwrap().push(time.now());
            }
        })
        .unwrap();
    let summary = world.run().unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            Duration::from_nanos(1),
            Duration::from_secs(1),
            Duration::from_nanos(4_000_000_007),
        ]
    );
    assert_eq!(summary.sim_time, Duration::from_nanos(4_000_000_007));
}
