//! Other threads against a running world (beyond `engine_threads.rs`): one waker woken tens of
//! thousands of times from several threads at once, a finished task's waker hammered from another
//! thread while a new task lives in its slot, a wake from another thread made inside the task's
//! own poll, a provider blocked on a world whose task waits for it, and providers moved out of a
//! dropped world and used from another thread.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use moonpool_core::{
    NetworkProvider, OpenOptions, Providers, StorageProvider, TaskProvider, TimeProvider,
};
use moonpool_sim::{SimError, SimProviders};

mod hostile4_common;

use hostile4_common::*;

/// Polls `future` up to `times` times with a no-op waker: `Some(output)` when it finished.
fn poll_a_few<F: Future>(future: F, times: usize) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..times {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
    }
    None
}

/// Four threads wake one task's waker 5,000 times each, at once, while the world runs. Expected:
/// no wake is lost (the task sees every thread done and finishes: a lost last wake would leave it
/// waiting until the ticker gives up), no panic, no busy-loop verdict, and the task is polled at
/// most once per wake plus its first poll.
#[test]
fn test_one_waker_woken_twenty_thousand_times_from_four_threads_loses_no_wake() {
    const THREADS: u64 = 4;
    const WAKES: u64 = 5_000;
    let polls = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let (n, f) = (Arc::clone(&polls), Arc::clone(&finished));
    let mut world = quiet(1);
    world
        .add_workload("waiter", "10.0.0.1", move |p: SimProviders| async move {
            let time = p.time().clone();
            let fin = Arc::clone(&f);
            // Keeps the world running in wall time while the threads wake the waiter.
            let ticker = p.task().spawn("ticker", async move {
                for _ in 0..20_000 {
                    if fin.load(Ordering::SeqCst) {
                        return true;
                    }
                    time.sleep(Duration::from_millis(1)).await;
                    std::thread::sleep(Duration::from_micros(200));
                }
                false
            });
            let done = Arc::new(AtomicU64::new(0));
            let mut threads = Vec::new();
            poll_fn(|cx| {
                n.fetch_add(1, Ordering::SeqCst);
                if threads.is_empty() {
                    // The first poll starts the threads and waits, however fast they are.
                    for _ in 0..THREADS {
                        let waker = cx.waker().clone();
                        let done = Arc::clone(&done);
                        threads.push(std::thread::spawn(move || {
                            for i in 0..WAKES {
                                if i % 2 == 0 {
                                    waker.wake_by_ref();
                                } else {
                                    // By value: a clone consumed by its wake.
                                    let clone = waker.clone();
                                    clone.wake();
                                }
                            }
                            done.fetch_add(1, Ordering::SeqCst);
                            waker.wake();
                        }));
                    }
                    return Poll::Pending;
                }
                if done.load(Ordering::SeqCst) == THREADS {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
            f.store(true, Ordering::SeqCst);
            for thread in threads {
                thread.join().unwrap();
            }
            assert!(ticker.await.unwrap(), "the ticker gave up: a wake was lost");
        })
        .unwrap();
    let outcome = run_caught(&mut world).expect("no panic out of SimWorld::run");
    assert!(outcome.is_ok(), "{outcome:?}");
    assert!(finished.load(Ordering::SeqCst));
    let polls = polls.load(Ordering::SeqCst);
    assert!(
        (2..=THREADS * (WAKES + 1) + 1).contains(&polls),
        "{polls} polls"
    );
}

/// The world of [`test_a_finished_tasks_waker_hammered_from_a_thread_never_polls_its_slots_next_task`]:
/// task A ends and leaves its waker; with `hammer`, a thread wakes that waker in a loop until B
/// ends; task B (spawned after A ended, so in A's slot) sleeps 200 times. Returns B's polls and
/// how many wakes the thread made while B lived.
fn stale_waker_world(hammer: bool) -> (u64, u64) {
    let out = Arc::new(Mutex::new((0u64, 0u64)));
    let o = Arc::clone(&out);
    let mut world = quiet(2);
    world
        .add_workload("owner", "10.0.0.1", move |p: SimProviders| async move {
            let a_waker = p
                .task()
                .spawn("a", poll_fn(|cx| Poll::Ready(cx.waker().clone())))
                .await
                .unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let during_b = Arc::new(AtomicU64::new(0));
            let b_started = Arc::new(AtomicBool::new(false));
            let hammerer = hammer.then(|| {
                let (stop, during_b, b_started) = (
                    Arc::clone(&stop),
                    Arc::clone(&during_b),
                    Arc::clone(&b_started),
                );
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        a_waker.wake_by_ref();
                        if b_started.load(Ordering::SeqCst) {
                            during_b.fetch_add(1, Ordering::SeqCst);
                        }
                        std::thread::yield_now();
                    }
                })
            });
            let time = p.time().clone();
            let b_polls = Arc::new(AtomicU64::new(0));
            let counted = Arc::clone(&b_polls);
            let started = Arc::clone(&b_started);
            let b = p.task().spawn("b", async move {
                let mut body = Box::pin(async move {
                    for _ in 0..200 {
                        time.sleep(Duration::from_millis(1)).await;
                        std::thread::sleep(Duration::from_micros(50));
                    }
                });
                poll_fn(|cx| {
                    started.store(true, Ordering::SeqCst);
                    counted.fetch_add(1, Ordering::SeqCst);
                    body.as_mut().poll(cx)
                })
                .await;
            });
            b.await.unwrap();
            stop.store(true, Ordering::SeqCst);
            if let Some(thread) = hammerer {
                thread.join().unwrap();
            }
            *o.lock().unwrap() = (
                b_polls.load(Ordering::SeqCst),
                during_b.load(Ordering::SeqCst),
            );
        })
        .unwrap();
    let outcome = run_caught(&mut world).expect("no panic out of SimWorld::run");
    assert!(outcome.is_ok(), "{outcome:?}");
    *out.lock().unwrap()
}

/// Expected: the finished task's waker, woken thousands of times from another thread while task B
/// lives in its slot, never polls B: B is polled exactly as often as without the thread.
#[test]
fn test_a_finished_tasks_waker_hammered_from_a_thread_never_polls_its_slots_next_task() {
    let (alone, _) = stale_waker_world(false);
    let (hammered, wakes) = stale_waker_world(true);
    assert!(
        wakes > 100,
        "the thread woke only {wakes} times while B lived"
    );
    assert_eq!(hammered, alone, "B was polled by a stale remote wake");
    assert_eq!(alone, 201);
}

/// A task's poll hands its waker to a thread, which wakes it and is joined before the poll
/// returns `Pending`: the wake came from another thread while the world held its state, so it is
/// queued remotely. Expected: the task is polled again at once and finishes (no deadlock
/// verdict: nothing else would ever wake it), in exactly two polls.
#[test]
fn test_a_remote_wake_made_inside_the_tasks_own_poll_is_not_lost() {
    let polls = Arc::new(AtomicU64::new(0));
    let n = Arc::clone(&polls);
    let mut world = quiet(3);
    world
        .add_workload(
            "self-waker",
            "10.0.0.1",
            move |_p: SimProviders| async move {
                let mut woken = false;
                poll_fn(|cx| {
                    n.fetch_add(1, Ordering::SeqCst);
                    if woken {
                        return Poll::Ready(());
                    }
                    woken = true;
                    let waker = cx.waker().clone();
                    std::thread::spawn(move || waker.wake()).join().unwrap();
                    Poll::Pending
                })
                .await;
            },
        )
        .unwrap();
    let outcome = run_caught(&mut world).expect("no panic out of SimWorld::run");
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(polls.load(Ordering::SeqCst), 2);
}

/// A task starts a thread that binds through the task's network provider (which waits for the
/// world's state, held by the run) and then wakes the task; the task waits for it. Nothing in the
/// world can progress: expected a deadlock verdict (the run never hangs), after which the thread
/// gets the state, finishes its bind and its wake of the dead task harmlessly.
#[test]
fn test_a_task_waiting_on_a_thread_blocked_on_its_world_is_a_deadlock_not_a_hang() {
    let thread = Arc::new(Mutex::new(None));
    let t = Arc::clone(&thread);
    let mut world = quiet(4);
    world
        .add_workload("waiter", "10.0.0.1", move |p: SimProviders| async move {
            let net = p.network().clone();
            let done = Arc::new(AtomicBool::new(false));
            let mut started = false;
            poll_fn(|cx| {
                if done.load(Ordering::SeqCst) {
                    return Poll::Ready(());
                }
                if !started {
                    started = true;
                    let (waker, net, done) = (cx.waker().clone(), net.clone(), Arc::clone(&done));
                    *t.lock().unwrap() = Some(std::thread::spawn(move || {
                        let bound = poll_a_few(net.bind("10.0.0.1:7200"), 10);
                        done.store(true, Ordering::SeqCst);
                        waker.wake();
                        bound.map(|bound| bound.is_ok())
                    }));
                }
                Poll::Pending
            })
            .await;
        })
        .unwrap();
    let outcome = run_caught(&mut world).expect("no panic out of SimWorld::run");
    assert!(
        matches!(outcome, Err(SimError::Deadlock { .. })),
        "{outcome:?}"
    );
    let handle = thread.lock().unwrap().take().unwrap();
    // The thread ends once the run released the state (well within a few seconds).
    let start = std::time::Instant::now();
    while !handle.is_finished() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(handle.is_finished(), "the thread still waits for the world");
    handle.join().expect("the thread did not panic");
    drop(world);
}

/// Providers (time, network, storage, tasks) moved out of a world through a channel, used on
/// another thread after the world was dropped. Expected: no panic and no hang; a connect, a sleep
/// and a file open (which need a run to progress) stay pending or fail with a typed error; a
/// spawn is cancelled; the clock reads the run's last time.
#[test]
fn test_providers_of_a_dropped_world_used_from_another_thread_pend_or_fail() {
    let (send, receive) = std::sync::mpsc::channel::<SimProviders>();
    {
        let mut world = quiet(5);
        world
            .add_workload("leaker", "10.0.0.1", move |p: SimProviders| async move {
                p.time().sleep(Duration::from_millis(7)).await;
                send.send(p.clone()).unwrap();
            })
            .unwrap();
        let outcome = run_caught(&mut world).expect("no panic out of SimWorld::run");
        assert!(outcome.is_ok(), "{outcome:?}");
    }
    let providers = receive.recv().unwrap();
    let report = std::thread::spawn(move || {
        let mut seen = Vec::new();
        seen.push(format!("now {:?}", providers.time().now()));
        let connect = poll_a_few(providers.network().connect("10.0.0.1:9"), 50);
        seen.push(match connect {
            None => "connect pending".to_string(),
            Some(Ok(_)) => "connect connected".to_string(),
            Some(Err(error)) => format!("connect {:?}", error.kind()),
        });
        let sleep = poll_a_few(providers.time().sleep(Duration::from_millis(1)), 50);
        seen.push(format!("sleep done {}", sleep.is_some()));
        let open = poll_a_few(
            providers
                .storage()
                .open("f", OpenOptions::read_write_create()),
            50,
        );
        seen.push(match open {
            None => "open pending".to_string(),
            Some(Ok(_)) => "open opened".to_string(),
            Some(Err(error)) => format!("open {:?}", error.kind()),
        });
        let spawned = providers.task().spawn("late", async { 5 });
        seen.push(format!(
            "spawn {:?}",
            poll_a_few(spawned, 50).map(|r| r.is_ok())
        ));
        seen
    });
    let seen = report.join().expect("no panic on the other thread");
    assert_eq!(seen[0], "now 7ms");
    assert!(
        seen[1] == "connect pending"
            || seen[1].starts_with("connect ") && seen[1] != "connect connected",
        "{seen:?}"
    );
    assert_eq!(seen[2], "sleep done false", "{seen:?}");
    assert!(seen[3] != "open opened", "{seen:?}");
    assert_eq!(seen[4], "spawn Some(false)", "{seen:?}");
}

/// A thread keeps waking a live task's waker while the run ends (its executor drops the task),
/// while the world is dropped and after. Expected: the run ends well, the task was polled again by
/// the remote wakes (at least twice), nothing panics on either thread, and the next world on the
/// main thread gives its fresh-thread fingerprint.
#[test]
fn test_a_waker_hammered_while_its_world_ends_and_is_dropped_is_harmless() {
    fn plain(seed: u64) -> u64 {
        let mut world = quiet(seed);
        world
            .add_workload("w", "10.0.0.1", |p: SimProviders| async move {
                for i in 0..20u64 {
                    p.time().sleep(Duration::from_micros(1 + i % 3)).await;
                }
            })
            .unwrap();
        world.run().unwrap().fingerprint
    }
    let fresh = std::thread::spawn(|| plain(61)).join().unwrap();
    let got = std::thread::spawn(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let polls = Arc::new(AtomicU64::new(0));
        let hammerer = Arc::new(Mutex::new(None));
        let (s, n, h) = (Arc::clone(&stop), Arc::clone(&polls), Arc::clone(&hammerer));
        let mut world = quiet(60);
        world
            .add_workload("w", "10.0.0.1", move |p: SimProviders| async move {
                drop(p.task().spawn(
                    "spinner",
                    poll_fn(move |cx| {
                        if n.fetch_add(1, Ordering::SeqCst) == 0 {
                            let (waker, stop) = (cx.waker().clone(), Arc::clone(&s));
                            *h.lock().unwrap() = Some(std::thread::spawn(move || {
                                while !stop.load(Ordering::SeqCst) {
                                    waker.wake_by_ref();
                                    std::thread::sleep(Duration::from_micros(20));
                                }
                                waker
                            }));
                        }
                        Poll::<()>::Pending
                    }),
                ));
                for _ in 0..100 {
                    p.time().sleep(Duration::from_millis(1)).await;
                    std::thread::sleep(Duration::from_micros(300));
                }
            })
            .unwrap();
        let outcome = run_caught(&mut world).expect("no panic out of SimWorld::run");
        assert!(outcome.is_ok(), "{outcome:?}");
        drop(world);
        std::thread::sleep(Duration::from_millis(5));
        stop.store(true, Ordering::SeqCst);
        let waker = hammerer
            .lock()
            .unwrap()
            .take()
            .unwrap()
            .join()
            .expect("the waking thread did not panic");
        // The last clone, dropped after its world: harmless.
        waker.wake();
        (polls.load(Ordering::SeqCst), plain(61))
    })
    .join()
    .unwrap();
    assert!(
        got.0 >= 2,
        "the remote wakes never polled the task ({} polls)",
        got.0
    );
    assert_eq!(got.1, fresh);
}

/// A spawn made from another thread while the world runs waits for the run to release the
/// executor (it never races the run) and is then refused, since the run's end shut the executor
/// down: expected its handle to resolve to an error (cancelled), no panic, and the world's own
/// tasks unaffected.
#[test]
fn test_a_spawn_from_another_thread_during_the_run_is_cancelled_after_it() {
    let thread = Arc::new(Mutex::new(None));
    let ran = Arc::new(AtomicBool::new(false));
    let (t, r) = (Arc::clone(&thread), Arc::clone(&ran));
    let mut world = quiet(70);
    world
        .add_workload("w", "10.0.0.1", move |p: SimProviders| async move {
            let tasks = p.task().clone();
            let r2 = Arc::clone(&r);
            *t.lock().unwrap() = Some(std::thread::spawn(move || {
                let handle = tasks.spawn("from-thread", async move {
                    r2.store(true, Ordering::SeqCst);
                    1u8
                });
                poll_a_few(handle, 10)
            }));
            for _ in 0..20 {
                p.time().sleep(Duration::from_millis(1)).await;
                std::thread::sleep(Duration::from_micros(500));
            }
        })
        .unwrap();
    let outcome = run_caught(&mut world).expect("no panic out of SimWorld::run");
    assert!(outcome.is_ok(), "{outcome:?}");
    let joined = thread.lock().unwrap().take().unwrap().join();
    let resolved = joined.expect("no panic on the spawning thread");
    assert!(
        matches!(resolved, Some(Err(_))),
        "the late spawn resolved to {resolved:?}"
    );
    assert!(!ran.load(Ordering::SeqCst), "the late task ran");
}

/// A task's future that aborts its own task at its first poll (through its handle, left in
/// `handle`) and returns `Pending`: the executor drops it as its poll returns, when it retires
/// the task after the drain's next pick, outside the poll. Its `Drop` sets `flag` and wakes
/// `waker`: from a new thread (joined inside the `Drop`) with `remote`, else on the calling
/// thread.
struct WakeOnDrop {
    flag: Arc<AtomicBool>,
    waker: Arc<Mutex<Option<Waker>>>,
    handle: Arc<Mutex<Option<moonpool_core::JoinHandle<()>>>>,
    remote: bool,
}

impl Future for WakeOnDrop {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if let Some(handle) = self.handle.lock().unwrap().take() {
            handle.abort();
        }
        Poll::Pending
    }
}

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        self.flag.store(true, Ordering::SeqCst);
        let Some(waker) = self.waker.lock().unwrap().take() else {
            return;
        };
        if self.remote {
            std::thread::spawn(move || waker.wake()).join().unwrap();
        } else {
            waker.wake();
        }
    }
}

/// The workload waits for a flag; a task it spawns aborts itself at its first poll, and its
/// future's `Drop` (run by the executor when it retires the task, the last thing of the drain)
/// sets the flag and wakes the workload. Returns the run's outcome.
fn woken_by_a_retiring_task(remote: bool) -> Result<(), SimError> {
    let mut world = quiet(80);
    world
        .add_workload("waiter", "10.0.0.1", move |p: SimProviders| async move {
            let flag = Arc::new(AtomicBool::new(false));
            let waker = Arc::new(Mutex::new(None));
            let slot = Arc::new(Mutex::new(None));
            let handle = p.task().spawn(
                "retiring",
                WakeOnDrop {
                    flag: Arc::clone(&flag),
                    waker: Arc::clone(&waker),
                    handle: Arc::clone(&slot),
                    remote,
                },
            );
            *slot.lock().unwrap() = Some(handle);
            poll_fn(|cx| {
                if flag.load(Ordering::SeqCst) {
                    return Poll::Ready(());
                }
                *waker.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            })
            .await;
        })
        .unwrap();
    run_caught(&mut world)
        .expect("no panic out of SimWorld::run")
        .map(drop)
}

/// The control case: the retiring task's `Drop` wakes the workload on the world's thread; the
/// drain runs the workload and the run ends well.
#[test]
fn test_a_wake_from_a_retiring_tasks_drop_on_the_worlds_thread_is_run() {
    let outcome = woken_by_a_retiring_task(false);
    assert!(outcome.is_ok(), "{outcome:?}");
}

/// The same wake made from another thread (inside the `Drop`, joined before it returns): it is
/// queued remotely before the drain ends. Expected: the drain (or the next) runs the workload and
/// the run ends well, as with the local wake; a deadlock verdict means the wake was lost.
#[test]
fn test_a_wake_from_another_thread_during_the_last_retirement_of_a_drain_is_not_lost() {
    let outcome = woken_by_a_retiring_task(true);
    assert!(outcome.is_ok(), "{outcome:?}");
}
