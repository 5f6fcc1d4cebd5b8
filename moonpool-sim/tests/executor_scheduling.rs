#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Tests of the simulator's deterministic executor, driven by hand: busy loops, determinism,
//! wakers, introspection and the provider (spawning, aborts, panics and shutdown are in
//! `executor.rs`).

use std::collections::BTreeSet;
use std::future::{pending, poll_fn};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use moonpool_core::{JoinHandle, TaskProvider};
use moonpool_sim::executor::{
    Executor, ExecutorError, ProcessId, SimTaskProvider, Spawner, TaskId, TaskInfo, yield_now,
};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

mod executor_common;
use executor_common::*;

// ---------------------------------------------------------------------------------------------
// Busy loops

#[test]
fn test_poll_bound_names_busy_task() {
    let executor = executor(22);
    assert_eq!(
        executor.poll_bound(),
        moonpool_sim::executor::DEFAULT_POLL_BOUND
    );
    executor.set_poll_bound(1_000);
    let provider = executor.task_provider(Some(ProcessId(9)));
    let yielder = provider.clone();
    let spinner = provider.spawn("spinner", async move {
        loop {
            yielder.yield_now().await;
        }
    });
    let mut quiet = executor.spawn_in(None, "quiet", async { 1 });
    match executor.run_until_stalled() {
        Err(error @ ExecutorError::PollBoundExceeded { .. }) => {
            let text = error.to_string();
            assert!(text.contains("spinner"), "{text}");
            let ExecutorError::PollBoundExceeded { polls, busiest } = error else {
                unreachable!()
            };
            assert_eq!(polls, 1_000);
            assert_eq!(busiest[0].0.name, "spinner");
            assert!(busiest[0].1 >= 998, "{busiest:?}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(try_join(&mut quiet), Some(Ok(1)));
    // The executor stays usable: cancel the spinner and drain again.
    spinner.abort();
    let stats = drain(&executor);
    assert_eq!(stats.cancelled, 1);
    assert_eq!(executor.task_count(), 0);
}

// ---------------------------------------------------------------------------------------------
// Determinism

/// Ten tasks woken together for twenty rounds; returns who ran in which order.
fn interleaving(seed: u64) -> Vec<usize> {
    let executor = executor(seed);
    let event = Event::default();
    let log = Arc::new(Mutex::new(Vec::new()));
    for index in 0..10 {
        let event = event.clone();
        let log = Arc::clone(&log);
        executor.spawn_in(None, &format!("worker-{index}"), async move {
            for _ in 0..20 {
                event.wait().await;
                log.lock().unwrap().push(index);
            }
        });
    }
    drain(&executor);
    for _ in 0..20 {
        event.fire();
        drain(&executor);
    }
    assert_eq!(executor.task_count(), 0);
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 200);
    log
}

#[test]
fn test_same_seed_same_order() {
    for seed in [0, 1, 42, 0xdead_beef] {
        assert_eq!(interleaving(seed), interleaving(seed), "seed {seed}");
    }
}

#[test]
fn test_different_seeds_explore_different_orders() {
    assert_ne!(interleaving(1), interleaving(2));
    let orders: BTreeSet<Vec<usize>> = (0..20).map(interleaving).collect();
    assert!(orders.len() > 1, "20 seeds gave a single order");
    // Within one run the first round is not always 0..10 in order either.
    let first_rounds: BTreeSet<Vec<usize>> = (0..20)
        .map(|seed| interleaving(seed)[..10].to_vec())
        .collect();
    assert!(first_rounds.len() > 1);
}

#[test]
fn test_no_rng_draw_with_single_ready_task() {
    let seed = 23;
    let executor = executor(seed);
    executor.spawn_in(None, "alone", async {
        for _ in 0..100 {
            yield_now().await;
        }
    });
    let stats = drain(&executor);
    assert_eq!(stats.polls, 101);
    assert_eq!(stats.random_draws, 0);
    assert_eq!(executor.random_draws(), 0);
    assert!(executor.rng_snapshot() == ChaCha8Rng::seed_from_u64(seed));

    // Two ready tasks: every pick draws.
    for name in ["a", "b"] {
        executor.spawn_in(None, name, async {});
    }
    let stats = drain(&executor);
    assert_eq!(stats.polls, 2);
    assert_eq!(
        stats.random_draws, 1,
        "one draw for two, none for the last one"
    );
    assert!(executor.rng_snapshot() != ChaCha8Rng::seed_from_u64(seed));
}

#[test]
fn test_pick_is_roughly_uniform() {
    // With three tasks ready, each should be picked first about a third of the time.
    let mut firsts = [0u32; 3];
    for seed in 0..600 {
        let executor = executor(seed);
        let log = Arc::new(Mutex::new(Vec::new()));
        for index in 0..3 {
            let log = Arc::clone(&log);
            executor.spawn_in(None, "t", async move { log.lock().unwrap().push(index) });
        }
        drain(&executor);
        firsts[log.lock().unwrap()[0]] += 1;
    }
    for count in firsts {
        assert!((140..=260).contains(&count), "{firsts:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Wakers

#[test]
fn test_stale_waker_after_slot_reuse_is_harmless() {
    let executor = executor(24);
    let stored: Arc<Mutex<Option<Waker>>> = Arc::default();
    let store = Arc::clone(&stored);
    let mut first = executor.spawn_in(None, "first", async move {
        let mut done = false;
        poll_fn(|cx| {
            if done {
                return Poll::Ready(());
            }
            done = true;
            *store.lock().unwrap() = Some(cx.waker().clone());
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await;
    });
    drain(&executor);
    assert_eq!(try_join(&mut first), Some(Ok(())));

    // The second task reuses the freed slot and never wakes itself.
    let polls = counter();
    let seen = Arc::clone(&polls);
    let _second = executor.spawn_in(
        None,
        "second",
        poll_fn(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
            Poll::<()>::Pending
        }),
    );
    drain(&executor);
    assert_eq!(polls.load(Ordering::SeqCst), 1);

    let stale = stored.lock().unwrap().take().unwrap();
    stale.wake_by_ref();
    stale.wake();
    assert!(!executor.has_ready());
    let stats = drain(&executor);
    assert_eq!(stats.polls, 0);
    assert_eq!(polls.load(Ordering::SeqCst), 1);
    assert_eq!(
        executor.live_tasks(),
        vec![TaskInfo {
            id: TaskId(1),
            name: "second".to_string(),
            owner: None,
        }]
    );
}

#[test]
fn test_repeated_wakes_poll_once() {
    let executor = executor(25);
    let stored: Arc<Mutex<Option<Waker>>> = Arc::default();
    let store = Arc::clone(&stored);
    let polls = counter();
    let seen = Arc::clone(&polls);
    let _task = executor.spawn_in(
        None,
        "woken-often",
        poll_fn(move |cx| {
            seen.fetch_add(1, Ordering::SeqCst);
            *store.lock().unwrap() = Some(cx.waker().clone());
            Poll::<()>::Pending
        }),
    );
    drain(&executor);
    let waker = stored.lock().unwrap().clone().unwrap();
    for _ in 0..100 {
        waker.wake_by_ref();
    }
    let stats = drain(&executor);
    assert_eq!(stats.polls, 1);
    assert_eq!(polls.load(Ordering::SeqCst), 2);
}

#[test]
fn test_yield_now_lets_another_task_run() {
    let executor = executor(26);
    let provider = executor.task_provider(None);
    let flag = Arc::new(AtomicBool::new(false));
    let setter_flag = Arc::clone(&flag);
    let yields = counter();
    let yield_count = Arc::clone(&yields);
    let yielder = provider.clone();
    let mut waiter = provider.spawn("waiter", async move {
        while !flag.load(Ordering::SeqCst) {
            yield_count.fetch_add(1, Ordering::SeqCst);
            assert!(yield_count.load(Ordering::SeqCst) < 10_000);
            yielder.yield_now().await;
        }
    });
    // Spawned once the waiter is already spinning.
    drain_one_step_then_spawn(&executor, &provider, setter_flag);
    assert_eq!(try_join(&mut waiter), Some(Ok(())));
    assert!(yields.load(Ordering::SeqCst) >= 1);
}

fn drain_one_step_then_spawn(
    executor: &Executor,
    provider: &SimTaskProvider,
    flag: Arc<AtomicBool>,
) {
    executor.set_poll_bound(1);
    assert!(matches!(
        executor.run_until_stalled(),
        Err(ExecutorError::PollBoundExceeded { .. })
    ));
    executor.set_poll_bound(10_000);
    drop(provider.spawn("setter", async move {
        flag.store(true, Ordering::SeqCst);
    }));
    drain(executor);
}

// ---------------------------------------------------------------------------------------------
// Introspection and the provider

#[test]
fn test_current_task_inside_poll() {
    let executor = executor(27);
    assert_eq!(executor.current_task(), None);
    let spawner = executor.spawner();
    let seen = Arc::new(Mutex::new(Vec::new()));
    for owner in [None, Some(ProcessId(5))] {
        let spawner = spawner.clone();
        let seen = Arc::clone(&seen);
        executor.spawn_in(owner, &format!("task-{owner:?}"), async move {
            let info = spawner.current_task().unwrap();
            seen.lock().unwrap().push(info);
        });
    }
    drain(&executor);
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by_key(|info| info.id);
    assert_eq!(
        seen,
        vec![
            TaskInfo {
                id: TaskId(0),
                name: "task-None".to_string(),
                owner: None,
            },
            TaskInfo {
                id: TaskId(1),
                name: "task-Some(ProcessId(5))".to_string(),
                owner: Some(ProcessId(5)),
            },
        ]
    );
    assert_eq!(executor.current_task(), None);
}

#[test]
fn test_live_tasks_sorted_by_id() {
    let executor = executor(28);
    for index in 0..6 {
        executor.spawn_in(
            Some(ProcessId(index % 2)),
            &format!("t{index}"),
            async move {
                if index % 3 == 0 {
                    return;
                }
                pending::<()>().await;
            },
        );
    }
    drain(&executor);
    // Slots of t0 and t3 are free; new tasks reuse them but get new ids.
    executor.spawn_in(None, "t6", pending::<()>());
    executor.spawn_in(None, "t7", pending::<()>());
    let tasks = executor.live_tasks();
    let ids: Vec<u64> = tasks.iter().map(|task| task.id.0).collect();
    assert_eq!(ids, [1, 2, 4, 5, 6, 7]);
    assert_eq!(tasks[0].name, "t1");
    assert_eq!(tasks[0].owner, Some(ProcessId(1)));
    assert_eq!(executor.task_count(), 6);
}

#[test]
fn test_nested_drain_is_refused() {
    let executor = Arc::new(executor(29));
    let slot: Arc<Mutex<Option<Arc<Executor>>>> = Arc::new(Mutex::new(Some(Arc::clone(&executor))));
    let inside = Arc::clone(&slot);
    let mut handle = executor.spawn_in(None, "nested", async move {
        let executor = inside.lock().unwrap().take().unwrap();
        executor.run_until_stalled()
    });
    drain(&executor);
    assert_eq!(
        try_join(&mut handle),
        Some(Ok(Err(ExecutorError::AlreadyDraining)))
    );
}

fn assert_task_provider<P: TaskProvider>() {}

fn assert_send_sync<T: Send + Sync + Clone>() {}

#[test]
fn test_sim_task_provider_implements_task_provider() {
    assert_task_provider::<SimTaskProvider>();
    assert_send_sync::<Spawner>();
    assert_send_sync::<SimTaskProvider>();

    /// Generic code written against the trait runs on the simulator.
    fn spawn_generic<P: TaskProvider>(provider: &P) -> JoinHandle<&'static str> {
        let yielder = provider.clone();
        provider.spawn("generic", async move {
            yielder.yield_now().await;
            "generic ok"
        })
    }

    let executor = executor(30);
    let provider = executor.task_provider(Some(ProcessId(11)));
    assert_eq!(provider.owner(), Some(ProcessId(11)));
    let mut handle = spawn_generic(&provider);
    assert_eq!(executor.live_tasks()[0].owner, Some(ProcessId(11)));
    drain(&executor);
    assert_eq!(try_join(&mut handle), Some(Ok("generic ok")));
}

// ---------------------------------------------------------------------------------------------
// Speed (run with `cargo test --release -p moonpool-sim --test executor_scheduling -- --ignored --nocapture`)

#[test]
#[ignore = "timing measurement, run by hand in release"]
fn test_poll_speed() {
    for tasks in [1usize, 10, 1_000] {
        let executor = executor(31);
        let total_polls = 2_000_000u64;
        let per_task = total_polls / tasks as u64;
        executor.set_poll_bound(u64::MAX);
        for _ in 0..tasks {
            executor.spawn_in(None, "spinner", async move {
                for _ in 0..per_task {
                    yield_now().await;
                }
            });
        }
        let start = std::time::Instant::now();
        let stats = drain(&executor);
        let elapsed = start.elapsed();
        println!(
            "{tasks} tasks: {} polls in {elapsed:?} = {:.1} ns/poll",
            stats.polls,
            elapsed.as_nanos() as f64 / stats.polls as f64
        );
    }
}

/// Kills another owner's tasks from its `Drop`: a cancellation inside a cancellation.
struct KillOnDrop {
    spawner: Spawner,
    victim: Option<ProcessId>,
    killed: Arc<AtomicUsize>,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let killed = self.spawner.kill_owner(self.victim);
        self.killed.fetch_add(killed, Ordering::SeqCst);
    }
}

#[test]
fn test_a_cancellation_from_a_drop_inside_a_cancellation_removes_every_task_each_time() {
    let executor = executor(19);
    let (killer, victim) = (Some(ProcessId(5)), Some(ProcessId(6)));
    // Several rounds on one executor: the lists a cancellation reuses are left empty each time.
    for round in 0..4 {
        let killed = counter();
        let drops = counter();
        let mut victims: Vec<_> = (0..3 + round)
            .map(|index| {
                let guard = DropCounter(Arc::clone(&drops));
                executor.spawn_in(victim, &format!("victim-{index}"), async move {
                    let _guard = guard;
                    pending::<()>().await;
                })
            })
            .collect();
        let on_drop = KillOnDrop {
            spawner: executor.spawner(),
            victim,
            killed: Arc::clone(&killed),
        };
        let mut handle = executor.spawn_in(killer, "killer", async move {
            let _on_drop = on_drop;
            pending::<()>().await;
        });
        drain(&executor);
        assert_eq!(executor.kill_owner(killer), 1, "round {round}");
        assert_eq!(killed.load(Ordering::SeqCst), 3 + round, "round {round}");
        assert_eq!(drops.load(Ordering::SeqCst), 3 + round, "round {round}");
        assert_cancelled(&mut handle, "killer");
        for (index, victim) in victims.iter_mut().enumerate() {
            assert_cancelled(victim, &format!("victim-{index}"));
        }
        assert_eq!(executor.task_count(), 0, "round {round}");
    }
    // The same through `shutdown`, whose own cancellation then runs the nested one.
    let killed = counter();
    let on_drop = KillOnDrop {
        spawner: executor.spawner(),
        victim,
        killed: Arc::clone(&killed),
    };
    executor.spawn_in(killer, "killer", async move {
        let _on_drop = on_drop;
        pending::<()>().await;
    });
    let mut last = executor.spawn_in(victim, "victim", pending::<()>());
    drain(&executor);
    assert_eq!(executor.shutdown(), 2);
    assert_cancelled(&mut last, "victim");
    assert_eq!(executor.task_count(), 0);
}

#[test]
fn test_task_names_stay_right_past_the_executors_cache_of_recent_names() {
    let executor = executor(20);
    // More distinct names than the executor keeps, each spawned twice, and a name repeated
    // throughout.
    let mut expected = Vec::new();
    for index in 0..40 {
        for name in [format!("conn-{index}"), "repeated".to_string()] {
            executor.spawn_in(None, &name, pending::<()>());
            executor.spawn_in(None, &name, pending::<()>());
            expected.push(name.clone());
            expected.push(name);
        }
    }
    drain(&executor);
    let names: Vec<String> = executor
        .live_tasks()
        .into_iter()
        .map(|task| task.name)
        .collect();
    assert_eq!(names, expected);
    assert_eq!(executor.shutdown(), 160);
}
