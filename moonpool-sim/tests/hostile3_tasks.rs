//! Hostile use of the executor (`executor/`: marks, join cells, task wakers, the drain) and the
//! timers (`kernel/timers.rs`: slots with generations, waiters kept by task slot and id): stale
//! wakers and timers of finished or aborted tasks whose slots new tasks took, aborts of queued
//! tasks and from inside a task's own poll, join handles dropped, moved and aborted around
//! completion, outputs dropped exactly once, spawns from destructors, and timer slots freed and
//! reused by the thousand.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod hostile3_common;

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use hostile3_common::{log, quiet, run_caught, taken};
use moonpool_core::{JoinError, Providers, TaskProvider, TimeProvider};
use moonpool_sim::SimProviders;

/// Runs `body` as the one workload of a quiet world of `seed`; the run's outcome as text.
fn run<F, Fut>(seed: u64, body: F) -> String
where
    F: FnOnce(SimProviders) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut world = quiet(seed);
    world.add_workload("workload", "10.0.0.1", body).unwrap();
    format!("{:?}", run_caught(world))
}

fn ok(outcome: &str) -> bool {
    outcome.starts_with("Ok(Ok(")
}

/// A future pending until `flag` is set, counting its polls and keeping its latest waker.
fn gate(
    flag: Arc<AtomicBool>,
    polls: Arc<AtomicU64>,
    waker: Arc<Mutex<Option<Waker>>>,
) -> impl std::future::Future<Output = ()> + Send {
    poll_fn(move |cx| {
        polls.fetch_add(1, Ordering::SeqCst);
        if flag.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        *waker.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    })
}

#[test]
fn test_a_finished_tasks_waker_never_polls_the_task_that_took_its_slot() {
    for seed in 0..4 {
        let outcome = run(seed, |providers| async move {
            // Many old tasks leave wakers behind, then finish (their slots are freed).
            let mut old = Vec::new();
            for _ in 0..64 {
                let slot = Arc::new(Mutex::new(None::<Waker>));
                let keep = slot.clone();
                let handle = providers.task().spawn("old", async move {
                    poll_fn(|cx| {
                        *keep.lock().unwrap() = Some(cx.waker().clone());
                        Poll::Ready(())
                    })
                    .await;
                });
                handle.await.unwrap();
                old.push(slot.lock().unwrap().take().unwrap());
            }
            // New tasks take those slots and wait behind gates.
            let mut gates = Vec::new();
            for _ in 0..64 {
                let (flag, polls, waker) = (Arc::default(), Arc::default(), Arc::default());
                let handle = providers.task().spawn(
                    "new",
                    gate(Arc::clone(&flag), Arc::clone(&polls), Arc::clone(&waker)),
                );
                gates.push((flag, polls, waker, handle));
            }
            providers.task().yield_now().await;
            providers.time().sleep(Duration::from_millis(1)).await;
            for (_, polls, _, _) in &gates {
                assert_eq!(polls.load(Ordering::SeqCst), 1, "each new task polled once");
            }
            for waker in &old {
                for _ in 0..100 {
                    waker.wake_by_ref();
                }
            }
            providers.time().sleep(Duration::from_millis(1)).await;
            for (_, polls, _, _) in &gates {
                assert_eq!(
                    polls.load(Ordering::SeqCst),
                    1,
                    "a stale waker polled the task that took its slot"
                );
            }
            // The new tasks' own wakes still work.
            for (flag, _, waker, _) in &gates {
                flag.store(true, Ordering::SeqCst);
                waker.lock().unwrap().take().unwrap().wake();
            }
            for (_, polls, _, handle) in gates {
                handle.await.unwrap();
                assert_eq!(polls.load(Ordering::SeqCst), 2);
            }
            drop(old);
        });
        assert!(ok(&outcome), "seed {seed}: {outcome}");
    }
}

/// Counts the drops of whatever holds it.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn test_an_aborted_queued_task_never_runs_and_drops_its_future_once() {
    let outcome = run(1, |providers| async move {
        let ran = Arc::new(AtomicBool::new(false));
        let drops = Arc::new(AtomicUsize::new(0));
        let guard = DropCount(drops.clone());
        let seen = ran.clone();
        let handle = providers.task().spawn("queued", async move {
            let _guard = guard;
            seen.store(true, Ordering::SeqCst);
        });
        handle.abort();
        handle.abort();
        let result = handle.await;
        assert!(
            matches!(&result, Err(JoinError::Cancelled { task }) if task == "queued"),
            "{result:?}"
        );
        assert!(!ran.load(Ordering::SeqCst), "an aborted queued task ran");
        assert_eq!(drops.load(Ordering::SeqCst), 1, "its future dropped once");
    });
    assert!(ok(&outcome), "{outcome}");
}

#[test]
fn test_a_task_aborting_itself_mid_poll_stops_at_its_next_await() {
    let outcome = run(2, |providers| async move {
        let own: Arc<Mutex<Option<moonpool_core::JoinHandle<u32>>>> = Arc::default();
        let after = Arc::new(AtomicBool::new(false));
        let drops = Arc::new(AtomicUsize::new(0));
        let (slot, seen, guard) = (own.clone(), after.clone(), DropCount(drops.clone()));
        let p = providers.clone();
        let handle = providers.task().spawn("suicide", async move {
            let _guard = guard;
            // Wait until the handle is in reach.
            while slot.lock().unwrap().is_none() {
                p.task().yield_now().await;
            }
            if let Some(handle) = slot.lock().unwrap().as_ref() {
                handle.abort();
            }
            p.time().sleep(Duration::from_millis(1)).await;
            seen.store(true, Ordering::SeqCst);
            7
        });
        *own.lock().unwrap() = Some(handle);
        providers.time().sleep(Duration::from_millis(10)).await;
        let handle = own.lock().unwrap().take().unwrap();
        assert!(handle.is_finished());
        let result = handle.await;
        assert!(
            matches!(result, Err(JoinError::Cancelled { .. })),
            "{result:?}"
        );
        assert!(!after.load(Ordering::SeqCst), "it ran past its own abort");
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
    assert!(ok(&outcome), "{outcome}");
}

#[test]
fn test_join_handles_dropped_before_and_after_completion_drop_each_output_once() {
    let outcome = run(3, |providers| async move {
        let drops = Arc::new(AtomicUsize::new(0));
        let ran = Arc::new(AtomicUsize::new(0));
        // Dropped before completion: the task still runs; its output is dropped when it ends.
        for _ in 0..10 {
            let (d, r, p) = (drops.clone(), ran.clone(), providers.clone());
            drop(providers.task().spawn("early", async move {
                p.time().sleep(Duration::from_millis(1)).await;
                r.fetch_add(1, Ordering::SeqCst);
                DropCount(d)
            }));
        }
        // Dropped after completion, unread.
        for _ in 0..10 {
            let (d, r) = (drops.clone(), ran.clone());
            let handle = providers.task().spawn("late", async move {
                r.fetch_add(1, Ordering::SeqCst);
                DropCount(d)
            });
            providers.time().sleep(Duration::from_micros(10)).await;
            assert!(handle.is_finished());
            drop(handle);
        }
        // Aborted after completion: the output is still there.
        let d = drops.clone();
        let handle = providers.task().spawn("done", async move { DropCount(d) });
        providers.task().yield_now().await;
        providers.time().sleep(Duration::from_micros(10)).await;
        handle.abort();
        let output = handle
            .await
            .expect("a finished task's abort keeps its output");
        drop(output);
        providers.time().sleep(Duration::from_millis(5)).await;
        assert_eq!(ran.load(Ordering::SeqCst), 20);
        assert_eq!(drops.load(Ordering::SeqCst), 21, "each output dropped once");
    });
    assert!(ok(&outcome), "{outcome}");
}

#[test]
fn test_a_join_handle_moved_to_another_task_wakes_its_last_poller() {
    for seed in 0..4 {
        let outcome = run(seed, |providers| async move {
            let p = providers.clone();
            let target = providers.task().spawn("target", async move {
                p.time().sleep(Duration::from_millis(5)).await;
                42u32
            });
            let p = providers.clone();
            // The first awaiter polls it once (through a timeout) and hands it on.
            let first = providers.task().spawn("first", async move {
                let mut target = target;
                let early = p
                    .time()
                    .timeout(Duration::from_millis(1), &mut target)
                    .await;
                assert!(early.is_err(), "finished too early");
                (target,)
            });
            let (target,) = first.await.unwrap();
            // The handle itself is the second task's future.
            let second = providers.task().spawn("second", target);
            assert_eq!(second.await.unwrap().unwrap(), 42);
        });
        assert!(ok(&outcome), "seed {seed}: {outcome}");
    }
}

/// A future whose drop spawns a task (through the providers it holds).
struct SpawnOnDrop {
    providers: SimProviders,
    flag: Arc<AtomicBool>,
}

impl Drop for SpawnOnDrop {
    fn drop(&mut self) {
        let flag = self.flag.clone();
        let p = self.providers.clone();
        drop(self.providers.task().spawn("from-drop", async move {
            p.time().sleep(Duration::from_micros(5)).await;
            flag.store(true, Ordering::SeqCst);
        }));
    }
}

#[test]
fn test_a_task_spawned_from_an_aborted_tasks_destructor_runs() {
    let outcome = run(4, |providers| async move {
        let flag = Arc::new(AtomicBool::new(false));
        let spawner = SpawnOnDrop {
            providers: providers.clone(),
            flag: flag.clone(),
        };
        let p = providers.clone();
        let victim = providers.task().spawn("victim", async move {
            let _spawner = spawner;
            p.time().sleep(Duration::from_secs(100)).await;
        });
        providers.time().sleep(Duration::from_millis(1)).await;
        victim.abort();
        assert!(matches!(victim.await, Err(JoinError::Cancelled { .. })));
        providers.time().sleep(Duration::from_millis(1)).await;
        assert!(
            flag.load(Ordering::SeqCst),
            "the task spawned by the drop ran"
        );
    });
    assert!(ok(&outcome), "{outcome}");
}

#[test]
fn test_an_aborted_sleepers_timer_never_wakes_the_task_that_took_its_slot() {
    for seed in 0..6 {
        let outcome = run(seed, |providers| async move {
            let deadline = Duration::from_millis(10);
            // Sleepers aborted before their deadline; their timers' slots and task slots free.
            let mut sleepers = Vec::new();
            for _ in 0..50 {
                let p = providers.clone();
                sleepers.push(providers.task().spawn("sleeper", async move {
                    p.time().sleep(deadline).await;
                }));
            }
            providers.time().sleep(Duration::from_millis(1)).await;
            for sleeper in sleepers {
                sleeper.abort();
                assert!(sleeper.await.is_err());
            }
            // New tasks in those slots wait behind gates past the old deadline.
            let mut gates = Vec::new();
            for _ in 0..50 {
                let (flag, polls, waker) = (Arc::default(), Arc::default(), Arc::default());
                let handle = providers.task().spawn(
                    "gated",
                    gate(Arc::clone(&flag), Arc::clone(&polls), Arc::clone(&waker)),
                );
                gates.push((flag, polls, waker, handle));
            }
            providers.time().sleep(Duration::from_millis(20)).await;
            for (_, polls, _, _) in &gates {
                assert_eq!(polls.load(Ordering::SeqCst), 1, "an old timer polled it");
            }
            // And new sleepers to the old deadline's instant (now past) and later all fire.
            let start = providers.time().now();
            let mut fresh = Vec::new();
            for i in 0..50u64 {
                let p = providers.clone();
                fresh.push(providers.task().spawn("fresh", async move {
                    p.time().sleep(Duration::from_micros(i * 7)).await;
                    p.time().now()
                }));
            }
            for (i, handle) in fresh.into_iter().enumerate() {
                let woke = handle.await.unwrap();
                assert_eq!(woke - start, Duration::from_micros(i as u64 * 7));
            }
            for (flag, _, waker, handle) in gates {
                flag.store(true, Ordering::SeqCst);
                waker.lock().unwrap().take().unwrap().wake();
                handle.await.unwrap();
            }
        });
        assert!(ok(&outcome), "seed {seed}: {outcome}");
    }
}

#[test]
fn test_thousands_of_dropped_sleeps_then_thousands_more_fire_on_time() {
    let outcome = run(5, |providers| async move {
        // Sleeps polled once (so each holds a timer slot) and then dropped.
        for round in 0..3u64 {
            let mut sleeps: Vec<_> = (0..5_000u64)
                .map(|i| Box::pin(providers.time().sleep(Duration::from_micros(i + round))))
                .collect();
            poll_fn(|cx| {
                for sleep in &mut sleeps {
                    let _ = sleep.as_mut().poll(cx);
                }
                Poll::Ready(())
            })
            .await;
            drop(sleeps);
        }
        // Then new ones, interleaved deadlines, in several tasks: each wakes at its own time.
        let start = providers.time().now();
        let times = log::<(u64, Duration)>();
        let mut joins = Vec::new();
        for task in 0..20u64 {
            let (p, times) = (providers.clone(), times.clone());
            joins.push(providers.task().spawn("timed", async move {
                for step in 0..100u64 {
                    let due = Duration::from_micros((step * 20 + task) * 3);
                    let now = p.time().now() - start;
                    p.time().sleep(due.saturating_sub(now)).await;
                    times
                        .lock()
                        .unwrap()
                        .push((step * 20 + task, p.time().now() - start));
                }
            }));
        }
        for join in joins {
            join.await.unwrap();
        }
        let seen = taken(&times);
        assert_eq!(seen.len(), 2_000);
        for (n, at) in seen {
            assert_eq!(at, Duration::from_micros(n * 3), "sleep {n}");
        }
    });
    assert!(ok(&outcome), "{outcome}");
}

#[test]
fn test_a_sleep_polled_by_a_wrapping_waker_then_its_own_task_wakes_the_task() {
    let outcome = run(6, |providers| async move {
        let mut sleep = Box::pin(providers.time().sleep(Duration::from_millis(2)));
        let wrapped = Arc::new(AtomicUsize::new(0));
        // First poll through a foreign waker that counts its wakes.
        struct Counting(Arc<AtomicUsize>);
        impl std::task::Wake for Counting {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        {
            let foreign = Waker::from(Arc::new(Counting(wrapped.clone())));
            let mut cx = std::task::Context::from_waker(&foreign);
            assert!(sleep.as_mut().poll(&mut cx).is_pending());
        }
        // Then by the task itself: the task, not the foreign waker, is woken at the deadline.
        sleep.await;
        assert_eq!(providers.time().now(), Duration::from_millis(2));
        assert_eq!(wrapped.load(Ordering::SeqCst), 0, "the old waker was woken");
    });
    assert!(ok(&outcome), "{outcome}");
}

#[test]
fn test_a_task_woken_from_its_own_drop_and_from_a_finished_sibling_is_harmless() {
    let outcome = run(7, |providers| async move {
        let count = Arc::new(AtomicUsize::new(0));
        // Each task leaves its waker to the next, which wakes it after the first has ended.
        let previous: Arc<Mutex<Option<Waker>>> = Arc::default();
        let mut handles = Vec::new();
        for _ in 0..1_000 {
            let (prev, count) = (previous.clone(), count.clone());
            handles.push(providers.task().spawn("chain", async move {
                poll_fn(|cx| {
                    if let Some(w) = prev.lock().unwrap().replace(cx.waker().clone()) {
                        w.wake();
                    }
                    Poll::Ready(())
                })
                .await;
                count.fetch_add(1, Ordering::SeqCst);
            }));
        }
        for handle in handles {
            handle.await.unwrap();
        }
        assert_eq!(count.load(Ordering::SeqCst), 1_000);
    });
    assert!(ok(&outcome), "{outcome}");
}

#[test]
fn test_aborts_racing_completions_at_one_instant_are_cancelled_or_complete_never_both() {
    for seed in 0..10 {
        let outcome = run(seed, |providers| async move {
            let finished = Arc::new(AtomicUsize::new(0));
            let mut handles = Vec::new();
            for _ in 0..200 {
                let (p, f) = (providers.clone(), finished.clone());
                handles.push(providers.task().spawn("racer", async move {
                    p.time().sleep(Duration::from_millis(1)).await;
                    f.fetch_add(1, Ordering::SeqCst);
                    1u32
                }));
            }
            let handles = Arc::new(Mutex::new(handles));
            let (p, h) = (providers.clone(), handles.clone());
            // Another task aborts every racer at the instant their sleeps end.
            let aborter = providers.task().spawn("aborter", async move {
                p.time().sleep(Duration::from_millis(1)).await;
                for handle in h.lock().unwrap().iter() {
                    handle.abort();
                }
            });
            aborter.await.unwrap();
            let handles = std::mem::take(&mut *handles.lock().unwrap());
            let mut completed = 0;
            for handle in handles {
                match handle.await {
                    Ok(1) => completed += 1,
                    Err(JoinError::Cancelled { .. }) => {}
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(
                completed,
                finished.load(Ordering::SeqCst),
                "an output lost or a cancelled task that ran to its end"
            );
        });
        assert!(ok(&outcome), "seed {seed}: {outcome}");
    }
}
