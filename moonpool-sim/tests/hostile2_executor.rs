//! Hostile use of the executor (second pass): tasks that wake each other forever at one instant,
//! a waker cloned a million times, wakers woken from destructors (at completion, at abort, at
//! the end of the run), join handles awaited from another world and from another thread, aborts
//! from another thread while the world runs, a task awaiting its own handle, join cycles, and
//! spawn storms at the task limit's edge. Every run ends with a result or a named verdict, and
//! the same seed gives the same run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use moonpool_core::{JoinHandle, Providers, TaskProvider, TimeProvider};
use moonpool_sim::executor::DEFAULT_TASK_LIMIT;
use moonpool_sim::{SimError, SimWorld, WorldConfig};

mod hostile2_common;

use hostile2_common::*;

/// Two tasks that wake each other and return `Pending` forever, never letting the clock move:
/// the per-instant poll bound ends the run naming both.
#[test]
fn test_two_tasks_waking_each_other_forever_are_a_busy_loop_naming_both() {
    let mut config = WorldConfig::quiet();
    config.poll_bound = 20_000;
    let mut world = SimWorld::with_config(4, config).unwrap();
    world
        .add_workload("pair", "10.0.0.1", |p| async move {
            let slots: [Slot<Waker>; 2] = [slot(), slot()];
            let mut handles = Vec::new();
            for me in 0..2 {
                let mine = Arc::clone(&slots[me]);
                let theirs = Arc::clone(&slots[1 - me]);
                handles.push(p.task().spawn(&format!("ponger-{me}"), async move {
                    poll_fn(|cx: &mut Context<'_>| {
                        *mine.lock().unwrap() = Some(cx.waker().clone());
                        if let Some(w) = theirs.lock().unwrap().as_ref() {
                            w.wake_by_ref();
                        } else {
                            cx.waker().wake_by_ref();
                        }
                        Poll::<()>::Pending
                    })
                    .await;
                }));
            }
            for handle in handles {
                let _ = handle.await;
            }
        })
        .unwrap();
    let error = run_caught(world).unwrap().unwrap_err();
    match &error {
        SimError::BusyLoop { busiest, .. } => {
            let text = busiest.join(" ");
            assert!(
                text.contains("ponger-0") && text.contains("ponger-1"),
                "{busiest:?}"
            );
        }
        other => panic!("expected a busy loop, got {other}"),
    }
    assert!(error.to_string().contains("MOONPOOL_SEED=4"));
}

/// A task clones its waker a million times, hands one clone to a sleeper and wakes every clone
/// (a million wakes of one task): it is polled again a bounded number of times and finishes.
#[test]
fn test_a_waker_cloned_a_million_times_and_woken_by_every_clone() {
    let run = |seed: u64| {
        let mut world = quiet(seed);
        let polls = Arc::new(AtomicU64::new(0));
        let p2 = Arc::clone(&polls);
        world
            .add_workload("cloner", "10.0.0.1", move |p| async move {
                let clones: Slot<Vec<Waker>> = slot();
                let c = Arc::clone(&clones);
                let time = p.time().clone();
                let waker_for_sleeper: Slot<Waker> = slot();
                let w = Arc::clone(&waker_for_sleeper);
                let sleeper = p.task().spawn("sleeper", async move {
                    time.sleep(Duration::from_millis(2)).await;
                    let all = c.lock().unwrap().take().unwrap();
                    for waker in &all {
                        waker.wake_by_ref();
                    }
                    // Dropped by value, each clone's drop after its wake.
                    for waker in all {
                        waker.wake();
                    }
                    w.lock().unwrap().take().unwrap().wake();
                });
                let mut first = true;
                poll_fn(|cx: &mut Context<'_>| {
                    p2.fetch_add(1, Ordering::Relaxed);
                    if first {
                        first = false;
                        let many: Vec<Waker> = (0..1_000_000).map(|_| cx.waker().clone()).collect();
                        *clones.lock().unwrap() = Some(many);
                        *waker_for_sleeper.lock().unwrap() = Some(cx.waker().clone());
                        Poll::Pending
                    } else {
                        Poll::Ready(())
                    }
                })
                .await;
                sleeper.await.unwrap();
            })
            .unwrap();
        let summary = world.run().unwrap();
        let polls = polls.load(Ordering::Relaxed);
        assert!(
            polls <= 3,
            "a million wakes of a pending task poll it once more, not {polls} times"
        );
        key(&summary)
    };
    assert_eq!(run(1), run(1));
}

/// Wakes a stored waker when dropped, and counts that.
struct WakeOnDrop {
    target: Slot<Waker>,
    dropped: Arc<AtomicU64>,
}

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
        if let Some(waker) = self.target.lock().unwrap().take() {
            waker.wake();
        }
    }
}

/// Waits until woken once, recording its waker in `slot`.
async fn wait_once(slot: Slot<Waker>) {
    let mut armed = false;
    poll_fn(move |cx: &mut Context<'_>| {
        if armed && slot.lock().unwrap().is_none() {
            return Poll::Ready(());
        }
        armed = true;
        *slot.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    })
    .await;
}

/// Destructors that wake other tasks: at completion, at abort (from a third task), and at the
/// end of the run (a server's task still pending when the workloads end). Each wake reaches its
/// waiter or, at the end of the run, is harmless.
#[test]
fn test_wakers_woken_from_destructors_at_completion_abort_and_run_end() {
    let run = |seed: u64| {
        let mut world = quiet(seed);
        let dropped = Arc::new(AtomicU64::new(0));
        let end_slot: Slot<Waker> = slot();
        let (d, end) = (Arc::clone(&dropped), Arc::clone(&end_slot));
        world
            .add_process(
                "server",
                "10.0.0.9",
                moonpool_sim::Locality::default(),
                move |ctx| {
                    let (d, end) = (Arc::clone(&d), Arc::clone(&end));
                    async move {
                        // Pending until the world drops it; its drop wakes a waker of a task
                        // that is being dropped too.
                        let _guard = WakeOnDrop {
                            target: end,
                            dropped: d,
                        };
                        ctx.shutdown.requested().await;
                        std::future::pending::<()>().await;
                    }
                },
            )
            .unwrap();
        let (d, end) = (Arc::clone(&dropped), Arc::clone(&end_slot));
        world
            .add_workload("driver", "10.0.0.1", move |p| async move {
                let time = p.time().clone();
                // 1. Completion: the task's guard wakes the driver's waiter as it finishes.
                let waiter: Slot<Waker> = slot();
                let guard = WakeOnDrop {
                    target: Arc::clone(&waiter),
                    dropped: Arc::clone(&d),
                };
                let t = time.clone();
                let finisher = p.task().spawn("finisher", async move {
                    let _guard = guard;
                    t.sleep(Duration::from_millis(1)).await;
                });
                wait_once(Arc::clone(&waiter)).await;
                finisher.await.unwrap();
                // 2. Abort from a third task: the victim's guard wakes the driver.
                let waiter: Slot<Waker> = slot();
                let guard = WakeOnDrop {
                    target: Arc::clone(&waiter),
                    dropped: Arc::clone(&d),
                };
                let victim = p.task().spawn("victim", async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                });
                let t = time.clone();
                let aborter = p.task().spawn("aborter", async move {
                    t.sleep(Duration::from_millis(1)).await;
                    victim.abort();
                    victim.await
                });
                wait_once(Arc::clone(&waiter)).await;
                let joined = aborter.await.unwrap();
                assert!(joined.unwrap_err().is_cancelled());
                // 3. Run end: a spawned task of the driver, pending, whose waiter is in the
                // server's guard... and a waiter of its own left in `end`.
                let e = Arc::clone(&end);
                drop(p.task().spawn("left-waiting", async move {
                    wait_once(e).await;
                }));
                time.sleep(Duration::from_millis(1)).await;
            })
            .unwrap();
        let outcome = run_caught(world).expect("no panic out of run");
        let summary = outcome.expect("the run ends well");
        (key(&summary), dropped.load(Ordering::SeqCst))
    };
    let a = run(2);
    assert_eq!(a.1, 3, "every guard was dropped by the end of the run");
    assert_eq!(a, run(2));
}

/// A join handle of world A awaited by a task of world B (on another thread, while A is still
/// being run on its own): it must not panic or deliver A's value into B's run; B ends with a
/// verdict or a result, and A is unchanged.
#[test]
fn test_a_join_handle_awaited_from_another_worlds_task() {
    let handoff: Slot<JoinHandle<u32>> = slot();
    let h = Arc::clone(&handoff);
    let mut a = quiet(1);
    a.add_workload("a", "10.0.0.1", move |p| async move {
        let time = p.time().clone();
        let handle = p.task().spawn("answer", async move {
            time.sleep(Duration::from_millis(5)).await;
            42u32
        });
        *h.lock().unwrap() = Some(handle);
        p.time().sleep(Duration::from_millis(10)).await;
    })
    .unwrap();
    let first_a = run_caught(a).unwrap().unwrap();
    let handle = handoff
        .lock()
        .unwrap()
        .take()
        .expect("A handed its handle over");
    let result = std::thread::spawn(move || {
        let mut b = quiet(9);
        let seen: Slot<String> = slot();
        let s = Arc::clone(&seen);
        let handle = Mutex::new(Some(handle));
        b.add_workload("b", "10.0.0.1", move |_p| {
            let handle = handle.lock().unwrap().take();
            let s = Arc::clone(&s);
            async move {
                if let Some(handle) = handle {
                    let r = handle.await;
                    *s.lock().unwrap() = Some(format!("{r:?}"));
                }
            }
        })
        .unwrap();
        let outcome = run_caught(b);
        (
            outcome.map(|r| r.map(|s| s.sim_time).map_err(|e| e.to_string())),
            seen.lock().unwrap().clone(),
        )
    })
    .join()
    .expect("world B's thread did not panic");
    let (outcome, seen) = result;
    let outcome = outcome.expect("no panic out of world B's run");
    // A's task ended with its run (its output was never taken): the handle says so or stays
    // pending (then B reports a deadlock naming its waiting task).
    match (&outcome, &seen) {
        // It finished in A's run (its output kept for the handle) or was cancelled with A.
        (Ok(_), Some(text)) => assert!(text == "Ok(42)" || text.contains("cancelled"), "{text}"),
        (Err(error), None) => assert!(error.contains("deadlock"), "{error}"),
        other => panic!("unexpected outcome {other:?}"),
    }
    // A again on a fresh world: the same run as before the hand-off.
    let h = slot::<JoinHandle<u32>>();
    let mut again = quiet(1);
    let h2 = Arc::clone(&h);
    again
        .add_workload("a", "10.0.0.1", move |p| async move {
            let time = p.time().clone();
            let handle = p.task().spawn("answer", async move {
                time.sleep(Duration::from_millis(5)).await;
                42u32
            });
            *h2.lock().unwrap() = Some(handle);
            p.time().sleep(Duration::from_millis(10)).await;
        })
        .unwrap();
    assert_eq!(key(&first_a), key(&run_caught(again).unwrap().unwrap()));
}

/// A join handle polled and aborted from a plain thread while its world runs on another (an
/// abort from another thread waits for the run's lease, as every provider use from another
/// thread does): the poll says pending or cancelled (never a panic), the handle ends cancelled,
/// and the world's run ends well.
#[test]
fn test_a_join_handle_aborted_and_polled_from_another_thread_mid_run() {
    let (send, receive) = std::sync::mpsc::channel::<JoinHandle<()>>();
    let poller = std::thread::spawn(move || {
        let mut handle = receive.recv().unwrap();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let first = Pin::new(&mut handle).poll(&mut cx).is_pending();
        handle.abort();
        // Poll until it says cancelled (it does at the latest when the run ends).
        let mut outcome = None;
        for _ in 0..100_000_000u64 {
            if let Poll::Ready(r) = Pin::new(&mut handle).poll(&mut cx) {
                outcome = Some(r);
                break;
            }
            std::thread::yield_now();
        }
        (first, outcome)
    });
    let mut world = quiet(3);
    world
        .add_workload("runner", "10.0.0.1", move |p| async move {
            let time = p.time().clone();
            let t = time.clone();
            let victim = p.task().spawn("victim", async move {
                loop {
                    t.sleep(Duration::from_millis(1)).await;
                }
            });
            send.send(victim).unwrap();
            for _ in 0..2_000 {
                time.sleep(Duration::from_micros(100)).await;
            }
        })
        .unwrap();
    let outcome = run_caught(world).expect("no panic out of run");
    let (first_pending, joined) = poller.join().expect("the polling thread did not panic");
    outcome.expect("the run ends well");
    let joined = joined.expect("the aborted task's handle became ready");
    assert!(joined.unwrap_err().is_cancelled());
    let _ = first_pending;
}

/// A task that awaits its own join handle: a deadlock naming it, not a hang or a panic.
#[test]
fn test_a_task_awaiting_its_own_handle_is_a_deadlock_naming_it() {
    let mut world = quiet(5);
    world
        .add_workload("selfish", "10.0.0.1", |p| async move {
            let own: Slot<JoinHandle<()>> = slot();
            let o = Arc::clone(&own);
            let handle = p.task().spawn("ouroboros", async move {
                // Yield until the handle is in the slot, then await it.
                let handle = loop {
                    if let Some(h) = o.lock().unwrap().take() {
                        break h;
                    }
                    moonpool_sim::executor::yield_now().await;
                };
                let _ = handle.await;
            });
            *own.lock().unwrap() = Some(handle);
            std::future::pending::<()>().await;
        })
        .unwrap();
    let error = run_caught(world).unwrap().unwrap_err();
    match &error {
        SimError::Deadlock { stuck, .. } => {
            assert!(stuck.iter().any(|t| t.contains("ouroboros")), "{stuck:?}");
        }
        other => panic!("expected a deadlock, got {other}"),
    }
}

/// Three tasks each awaiting the next one's handle (a join cycle): a deadlock naming all three.
#[test]
fn test_a_join_cycle_of_three_is_a_deadlock_naming_each() {
    let mut world = quiet(6);
    world
        .add_workload("cycle", "10.0.0.1", |p| async move {
            let slots: Vec<Slot<JoinHandle<()>>> = (0..3).map(|_| slot()).collect();
            let mut handles = Vec::new();
            for i in 0..3 {
                let next = Arc::clone(&slots[(i + 1) % 3]);
                handles.push(p.task().spawn(&format!("link-{i}"), async move {
                    let handle = loop {
                        if let Some(h) = next.lock().unwrap().take() {
                            break h;
                        }
                        moonpool_sim::executor::yield_now().await;
                    };
                    let _ = handle.await;
                }));
            }
            for (i, handle) in handles.into_iter().enumerate() {
                *slots[i].lock().unwrap() = Some(handle);
            }
            // The workload stays in the run (a finished workload ends it).
            std::future::pending::<()>().await;
        })
        .unwrap();
    let error = run_caught(world).unwrap().unwrap_err();
    match &error {
        SimError::Deadlock { stuck, .. } => {
            for i in 0..3 {
                assert!(
                    stuck.iter().any(|t| t.contains(&format!("link-{i}"))),
                    "{stuck:?}"
                );
            }
        }
        other => panic!("expected a deadlock, got {other}"),
    }
}

/// Spawns `count` tasks in one poll, all alive at once (each sleeps), then awaits them.
fn storm(
    seed: u64,
    limit: usize,
    count: usize,
) -> Result<Result<moonpool_sim::RunSummary, SimError>, String> {
    let mut config = WorldConfig::quiet();
    config.max_tasks = limit;
    // The watchdog bounds a hang of the engine (it ends the process, naming the seed).
    config.watchdog_stall = Some(Duration::from_secs(20));
    let mut world = SimWorld::with_config(seed, config).unwrap();
    world
        .add_workload("stormer", "10.0.0.1", move |p| async move {
            let mut handles = Vec::with_capacity(count);
            for _ in 0..count {
                let time = p.time().clone();
                handles.push(p.task().spawn("drop", async move {
                    time.sleep(Duration::from_millis(1)).await;
                }));
            }
            for handle in handles {
                let _ = handle.await;
            }
        })
        .unwrap();
    run_caught(world)
}

/// The task limit's edge: the workload plus `DEFAULT_TASK_LIMIT - 1` live tasks run.
#[test]
fn test_a_spawn_storm_one_below_the_default_task_limit_runs() {
    let summary = storm(1, DEFAULT_TASK_LIMIT, DEFAULT_TASK_LIMIT - 1)
        .expect("no panic out of run")
        .expect("the limit counts live tasks, the workload included");
    assert_eq!(summary.sim_time, Duration::from_millis(1));
}

/// One spawn over a small limit, all in one poll: a verdict naming the spawner and the limit.
#[test]
fn test_a_spawn_storm_one_over_a_small_task_limit_is_a_verdict() {
    let error = storm(1, 1_000, 1_000)
        .expect("no panic out of run")
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("stormer"), "{text}");
    assert!(text.contains("1000"), "{text}");
}

/// The same at the default limit: 100,000 tasks spawned in one poll, the last one refused. The
/// verdict is found at once, but ending the run removes each still-queued (never polled) task
/// with a scan of the whole ready queue (`executor::state::State::remove`: `ready.retain`), so
/// the teardown is quadratic: about 6 s for 20,000 tasks in a debug build, minutes for 100,000,
/// and the watchdog ends the process.
#[test]
fn test_a_spawn_storm_one_over_the_default_task_limit_is_a_prompt_verdict() {
    let error = storm(1, DEFAULT_TASK_LIMIT, DEFAULT_TASK_LIMIT)
        .expect("no panic out of run")
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("stormer"), "{text}");
    assert!(text.contains(&DEFAULT_TASK_LIMIT.to_string()), "{text}");
}

/// The same quadratic teardown behind a busy-loop verdict: 30,000 tasks that each yield forever.
#[test]
fn test_a_busy_loop_of_many_yielding_tasks_is_a_prompt_verdict() {
    let mut config = WorldConfig::quiet();
    config.poll_bound = 100_000;
    config.watchdog_stall = Some(Duration::from_secs(20));
    let mut world = SimWorld::with_config(2, config).unwrap();
    world
        .add_workload("yielders", "10.0.0.1", |p| async move {
            let handles: Vec<_> = (0..30_000)
                .map(|_| {
                    p.task().spawn("yielder", async move {
                        loop {
                            moonpool_sim::executor::yield_now().await;
                        }
                    })
                })
                .collect();
            for handle in handles {
                let _ = handle.await;
            }
        })
        .unwrap();
    let error = run_caught(world).unwrap().unwrap_err();
    assert!(matches!(error, SimError::BusyLoop { .. }), "{error}");
}

/// A storm of 200,000 short tasks spawned in waves (never more than 1,000 alive) is no verdict:
/// the limit is on live tasks, and finished tasks give their slots back.
#[test]
fn test_two_hundred_thousand_short_tasks_in_waves() {
    let run = |seed: u64| {
        let mut world = quiet(seed);
        let done = Arc::new(AtomicU64::new(0));
        let d = Arc::clone(&done);
        world
            .add_workload("waves", "10.0.0.1", move |p| async move {
                for _ in 0..200 {
                    let mut handles = Vec::with_capacity(1_000);
                    for _ in 0..1_000 {
                        let d = Arc::clone(&d);
                        handles.push(p.task().spawn("short", async move {
                            d.fetch_add(1, Ordering::Relaxed);
                        }));
                    }
                    for handle in handles {
                        handle.await.unwrap();
                    }
                    p.time().sleep(Duration::from_micros(1)).await;
                }
            })
            .unwrap();
        let summary = world.run().unwrap();
        assert_eq!(done.load(Ordering::Relaxed), 200_000);
        key(&summary)
    };
    assert_eq!(run(7), run(7));
}

/// A task whose future panics in its `Drop` while another task aborts it: the aborter goes on,
/// and the panic is a verdict naming the aborted task (or is recorded), not a panic out of run.
#[test]
fn test_a_panic_in_drop_during_an_abort_from_another_task() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("boom in drop");
        }
    }
    let mut world = quiet(8);
    world
        .add_workload("aborter", "10.0.0.1", |p| async move {
            let victim = p.task().spawn("bomb", async move {
                let _bomb = PanicOnDrop;
                std::future::pending::<()>().await;
            });
            p.time().sleep(Duration::from_millis(1)).await;
            victim.abort();
            let joined = victim.await;
            assert!(joined.is_err());
            p.time().sleep(Duration::from_millis(1)).await;
        })
        .unwrap();
    let outcome = run_caught(world).expect("no panic out of run");
    match outcome {
        Ok(_) => {}
        Err(SimError::TaskPanicked { task, message, .. }) => {
            assert!(task.contains("bomb"), "{task}");
            assert!(message.contains("boom in drop"), "{message}");
        }
        Err(other) => panic!("unexpected verdict {other}"),
    }
}

/// A waker woken from a destructor that runs on another thread after the world ended (a value
/// moved out of the run and dropped there): harmless.
#[test]
fn test_a_waker_woken_by_a_destructor_on_another_thread_after_the_run() {
    let escaped: Slot<WakeOnDrop> = slot();
    let e = Arc::clone(&escaped);
    let mut world = quiet(10);
    world
        .add_workload("leaker", "10.0.0.1", move |p| async move {
            let target: Slot<Waker> = slot();
            let t = Arc::clone(&target);
            drop(p.task().spawn("waiting", async move {
                wait_once(t).await;
            }));
            p.time().sleep(Duration::from_millis(1)).await;
            *e.lock().unwrap() = Some(WakeOnDrop {
                target,
                dropped: Arc::new(AtomicU64::new(0)),
            });
        })
        .unwrap();
    run_caught(world).unwrap().unwrap();
    let guard = escaped.lock().unwrap().take().unwrap();
    std::thread::spawn(move || drop(guard))
        .join()
        .expect("the wake on another thread did not panic");
    // And a world run afterwards on this thread is unaffected.
    let mut next = quiet(10);
    next.add_workload("plain", "10.0.0.1", |p| async move {
        p.time().sleep(Duration::from_millis(1)).await;
    })
    .unwrap();
    run_caught(next).unwrap().unwrap();
}
