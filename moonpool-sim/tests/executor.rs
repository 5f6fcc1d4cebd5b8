#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Tests of the simulator's deterministic executor, driven by hand.

use std::collections::BTreeSet;
use std::future::{Future, pending, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use moonpool_core::{JoinError, JoinHandle, TaskProvider};
use moonpool_sim::executor::{
    DrainStats, Executor, ExecutorError, ProcessId, SimTaskProvider, Spawner, TaskId, TaskInfo,
    yield_now,
};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

// ---------------------------------------------------------------------------------------------
// Helpers

fn executor(seed: u64) -> Executor {
    Executor::new(ChaCha8Rng::seed_from_u64(seed))
}

fn drain(executor: &Executor) -> DrainStats {
    executor.run_until_stalled().unwrap()
}

/// Polls a handle once from outside the executor.
fn try_join<T>(handle: &mut JoinHandle<T>) -> Option<Result<T, JoinError>> {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(handle).poll(&mut cx) {
        Poll::Ready(result) => Some(result),
        Poll::Pending => None,
    }
}

/// A manual event: tasks wait for the next `fire`, which wakes them in the order they waited.
#[derive(Clone, Default)]
struct Event {
    inner: Arc<Mutex<EventState>>,
}

#[derive(Default)]
struct EventState {
    fired: u64,
    waiters: Vec<Waker>,
}

impl Event {
    fn fire(&self) {
        let waiters = {
            let mut state = self.inner.lock().unwrap();
            state.fired += 1;
            std::mem::take(&mut state.waiters)
        };
        for waker in waiters {
            waker.wake();
        }
    }

    /// Resolves at the first `fire` after the first poll.
    async fn wait(&self) {
        let mut seen = None;
        poll_fn(|cx| {
            let mut state = self.inner.lock().unwrap();
            match seen {
                Some(fired) if state.fired > fired => Poll::Ready(()),
                _ => {
                    seen.get_or_insert(state.fired);
                    state.waiters.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
    }
}

/// Counts its drops.
struct DropCounter(Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn assert_cancelled<T: std::fmt::Debug>(handle: &mut JoinHandle<T>, name: &str) {
    match try_join(handle) {
        Some(Err(JoinError::Cancelled { task })) => assert_eq!(task, name),
        other => panic!("expected '{name}' cancelled, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Spawning and joining

#[test]
fn test_spawn_and_join() {
    let executor = executor(1);
    let spawner = executor.spawner();
    let result = Arc::new(Mutex::new(None));
    let sink = Arc::clone(&result);
    let mut outer = executor.spawn_in(None, "outer", async move {
        let inner = spawner.spawn_in(None, "adder", async { 2 + 3 });
        assert_eq!(inner.name(), "adder");
        *sink.lock().unwrap() = Some(inner.await.unwrap());
        "done"
    });
    let stats = drain(&executor);
    assert_eq!(*result.lock().unwrap(), Some(5));
    assert_eq!(try_join(&mut outer), Some(Ok("done")));
    assert_eq!(stats.completed, 2);
    assert_eq!(executor.task_count(), 0);
    assert!(!executor.has_ready());
}

#[test]
fn test_output_via_handle() {
    let executor = executor(2);
    let mut handle = executor.spawn_in(None, "seven", async { 7u64 });
    assert_eq!(handle.name(), "seven");
    assert!(!handle.is_finished());
    assert!(executor.has_ready());
    assert_eq!(executor.task_count(), 1);
    assert!(try_join(&mut handle).is_none());
    drain(&executor);
    assert!(handle.is_finished());
    assert_eq!(try_join(&mut handle), Some(Ok(7)));
    // Polled again after completion: documented to report Cancelled rather than panic.
    assert!(matches!(
        try_join(&mut handle),
        Some(Err(JoinError::Cancelled { .. }))
    ));
}

#[test]
fn test_is_finished_tracks_completion() {
    let executor = executor(3);
    let event = Event::default();
    let waiter = event.clone();
    let mut handle = executor.spawn_in(None, "waiter", async move { waiter.wait().await });
    drain(&executor);
    assert!(!handle.is_finished());
    assert!(!executor.has_ready());
    event.fire();
    assert!(executor.has_ready());
    drain(&executor);
    assert!(handle.is_finished());
    assert_eq!(try_join(&mut handle), Some(Ok(())));
}

#[test]
fn test_spawn_from_inside_task() {
    let executor = executor(4);
    let spawner = executor.spawner();
    let ran = counter();
    let seen = Arc::clone(&ran);
    executor.spawn_in(None, "parent", async move {
        let mut children = Vec::new();
        for index in 0..5 {
            let spawner_inner = spawner.clone();
            let seen = Arc::clone(&seen);
            children.push(
                spawner.spawn_in(None, &format!("child-{index}"), async move {
                    let grandchild = spawner_inner.spawn_in(None, "grandchild", async { 1 });
                    seen.fetch_add(grandchild.await.unwrap(), Ordering::SeqCst);
                    index
                }),
            );
        }
        let mut sum = 0;
        for child in children {
            sum += child.await.unwrap();
        }
        assert_eq!(sum, 10);
    });
    let stats = drain(&executor);
    assert_eq!(ran.load(Ordering::SeqCst), 5);
    assert_eq!(stats.completed, 11);
    assert_eq!(executor.task_count(), 0);
    assert!(executor.take_panics().is_empty());
}

#[test]
fn test_dropping_handle_detaches() {
    let executor = executor(5);
    let event = Event::default();
    let waiter = event.clone();
    let reached = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&reached);
    drop(executor.spawn_in(None, "detached", async move {
        waiter.wait().await;
        flag.store(true, Ordering::SeqCst);
    }));
    drain(&executor);
    assert_eq!(executor.task_count(), 1);
    event.fire();
    drain(&executor);
    assert!(reached.load(Ordering::SeqCst));
    assert_eq!(executor.task_count(), 0);
}

#[test]
fn test_detached_output_is_dropped() {
    let executor = executor(6);
    let drops = counter();
    let guard = DropCounter(Arc::clone(&drops));
    drop(executor.spawn_in(None, "producer", async move { guard }));
    drain(&executor);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------------
// Abort

#[test]
fn test_abort_pending_task_cancels_and_drops_future() {
    let executor = executor(7);
    let drops = counter();
    let guard = DropCounter(Arc::clone(&drops));
    let reached = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&reached);
    let mut handle = executor.spawn_in(None, "sleeper", async move {
        let _guard = guard;
        pending::<()>().await;
        flag.store(true, Ordering::SeqCst);
    });
    drain(&executor);
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    handle.abort();
    assert!(
        executor.has_ready(),
        "abort queues the task for cancellation"
    );
    let stats = drain(&executor);
    assert_eq!(stats.cancelled, 1);
    assert_eq!(stats.polls, 0);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(handle.is_finished());
    assert_cancelled(&mut handle, "sleeper");
    assert!(!reached.load(Ordering::SeqCst));
    assert_eq!(executor.task_count(), 0);
    // Aborting again is harmless.
    handle.abort();
    assert!(!executor.has_ready());
}

#[test]
fn test_abort_before_first_poll() {
    let executor = executor(8);
    let polled = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&polled);
    let mut handle = executor.spawn_in(None, "never", async move {
        flag.store(true, Ordering::SeqCst);
    });
    handle.abort();
    let stats = drain(&executor);
    assert_eq!(stats.polls, 0);
    assert!(!polled.load(Ordering::SeqCst));
    assert_cancelled(&mut handle, "never");
}

#[test]
fn test_abort_after_completion_keeps_output() {
    let executor = executor(9);
    let mut handle = executor.spawn_in(None, "quick", async { 42 });
    drain(&executor);
    handle.abort();
    assert!(!executor.has_ready());
    drain(&executor);
    assert_eq!(try_join(&mut handle), Some(Ok(42)));
}

#[test]
fn test_abort_self_from_inside() {
    let executor = executor(10);
    let own: Arc<Mutex<Option<JoinHandle<()>>>> = Arc::default();
    let inside = Arc::clone(&own);
    let reached = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&reached);
    let handle = executor.spawn_in(None, "suicidal", async move {
        yield_now().await;
        inside.lock().unwrap().as_ref().unwrap().abort();
        yield_now().await;
        flag.store(true, Ordering::SeqCst);
    });
    *own.lock().unwrap() = Some(handle);
    let stats = drain(&executor);
    assert!(!reached.load(Ordering::SeqCst));
    assert_eq!(stats.polls, 2);
    assert_eq!(executor.task_count(), 0);
    let mut handle = own.lock().unwrap().take().unwrap();
    assert_cancelled(&mut handle, "suicidal");
}

#[test]
fn test_abort_self_then_complete_keeps_output() {
    let executor = executor(11);
    let own: Arc<Mutex<Option<JoinHandle<u8>>>> = Arc::default();
    let inside = Arc::clone(&own);
    let handle = executor.spawn_in(None, "finisher", async move {
        yield_now().await;
        inside.lock().unwrap().as_ref().unwrap().abort();
        9
    });
    *own.lock().unwrap() = Some(handle);
    drain(&executor);
    let mut handle = own.lock().unwrap().take().unwrap();
    assert_eq!(try_join(&mut handle), Some(Ok(9)));
}

#[test]
fn test_abort_from_sibling() {
    let executor = executor(12);
    let victim = executor.spawn_in(None, "victim", pending::<()>());
    drain(&executor);
    let mut killer = executor.spawn_in(None, "killer", async move {
        victim.abort();
        victim.await
    });
    drain(&executor);
    match try_join(&mut killer) {
        Some(Ok(Err(JoinError::Cancelled { task }))) => assert_eq!(task, "victim"),
        other => panic!("unexpected {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Panics

#[test]
fn test_panic_is_isolated() {
    let executor = executor(13);
    let event = Event::default();
    let waiter = event.clone();
    let mut sibling = executor.spawn_in(Some(ProcessId(1)), "sibling", async move {
        waiter.wait().await;
        "alive"
    });
    let explode = std::hint::black_box(true);
    let mut panicker = executor.spawn_in(Some(ProcessId(2)), "panicker", async move {
        if explode {
            panic!("deliberate panic {}", 42);
        }
    });
    let stats = drain(&executor);
    assert_eq!(stats.panicked, 1);
    match try_join(&mut panicker) {
        Some(Err(JoinError::Panicked { task, message })) => {
            assert_eq!(task, "panicker");
            assert!(message.contains("deliberate panic 42"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    event.fire();
    drain(&executor);
    assert_eq!(try_join(&mut sibling), Some(Ok("alive")));

    let panics = executor.take_panics();
    assert_eq!(panics.len(), 1);
    assert_eq!(panics[0].task, "panicker");
    assert_eq!(panics[0].owner, Some(ProcessId(2)));
    assert!(panics[0].message.contains("deliberate panic 42"));
    assert!(!panics[0].detached);
    assert!(!panics[0].during_drop);
    assert!(executor.take_panics().is_empty());
}

#[test]
fn test_detached_panic_is_reported() {
    let executor = executor(14);
    let explode = std::hint::black_box(true);
    drop(executor.spawn_in(None, "lonely", async move {
        yield_now().await;
        if explode {
            panic!("nobody is watching");
        }
    }));
    drain(&executor);
    let panics = executor.take_panics();
    assert_eq!(panics.len(), 1);
    assert_eq!(panics[0].task, "lonely");
    assert!(panics[0].detached);
    assert_eq!(panics[0].message, "nobody is watching");
}

struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("panic in drop");
        }
    }
}

#[test]
fn test_panic_in_drop_is_recorded() {
    let executor = executor(15);
    let mut handle = executor.spawn_in(None, "bomb", async move {
        let _bomb = PanicOnDrop;
        pending::<()>().await;
    });
    drain(&executor);
    handle.abort();
    drain(&executor);
    assert_cancelled(&mut handle, "bomb");
    let panics = executor.take_panics();
    assert_eq!(panics.len(), 1);
    assert!(panics[0].during_drop);
    assert_eq!(panics[0].message, "panic in drop");
}

// ---------------------------------------------------------------------------------------------
// Kill, shutdown, drop

#[test]
fn test_kill_owner_drops_only_that_owner() {
    let executor = executor(16);
    let victim = ProcessId(1);
    let drops_victim = counter();
    let drops_other = counter();
    let mut victims: Vec<_> = (0..3)
        .map(|index| {
            let guard = DropCounter(Arc::clone(&drops_victim));
            executor.spawn_in(Some(victim), &format!("victim-{index}"), async move {
                let _guard = guard;
                pending::<()>().await;
            })
        })
        .collect();
    let guard = DropCounter(Arc::clone(&drops_other));
    let mut survivor = executor.spawn_in(Some(ProcessId(2)), "survivor", async move {
        let _guard = guard;
        pending::<()>().await;
    });
    let guard = DropCounter(Arc::clone(&drops_other));
    let mut workload = executor.spawn_in(None, "workload", async move {
        let _guard = guard;
        pending::<()>().await;
    });
    // One of the victims has never been polled yet.
    drain(&executor);
    let late = DropCounter(Arc::clone(&drops_victim));
    victims.push(executor.spawn_in(Some(victim), "victim-late", async move {
        let _guard = late;
    }));

    assert_eq!(executor.kill_owner(Some(victim)), 4);
    assert_eq!(drops_victim.load(Ordering::SeqCst), 4);
    assert_eq!(drops_other.load(Ordering::SeqCst), 0);
    for (index, handle) in victims.iter_mut().enumerate() {
        let name = if index == 3 {
            "victim-late".to_string()
        } else {
            format!("victim-{index}")
        };
        assert_cancelled(handle, &name);
    }
    assert!(!executor.has_ready());
    let names: Vec<String> = executor
        .live_tasks()
        .into_iter()
        .map(|task| task.name)
        .collect();
    assert_eq!(names, ["survivor", "workload"]);
    assert!(try_join(&mut survivor).is_none());
    assert!(try_join(&mut workload).is_none());
    assert_eq!(executor.kill_owner(Some(victim)), 0);
}

/// Spawns tasks from its `Drop`, through the providers it holds.
struct SpawnOnDrop {
    same_owner: SimTaskProvider,
    system: SimTaskProvider,
    handles: Arc<Mutex<Vec<JoinHandle<()>>>>,
    ran: Arc<AtomicUsize>,
}

impl Drop for SpawnOnDrop {
    fn drop(&mut self) {
        let ran = Arc::clone(&self.ran);
        let zombie = self.same_owner.spawn("zombie", async move {
            ran.fetch_add(100, Ordering::SeqCst);
        });
        let ran = Arc::clone(&self.ran);
        let cleanup = self.system.spawn("cleanup", async move {
            ran.fetch_add(1, Ordering::SeqCst);
        });
        let mut handles = self.handles.lock().unwrap();
        handles.push(zombie);
        handles.push(cleanup);
    }
}

#[test]
fn test_kill_owner_cancels_tasks_spawned_by_drops() {
    let executor = executor(17);
    let owner = Some(ProcessId(3));
    let handles = Arc::default();
    let ran = counter();
    let spawner = SpawnOnDrop {
        same_owner: executor.task_provider(owner),
        system: executor.task_provider(None),
        handles: Arc::clone(&handles),
        ran: Arc::clone(&ran),
    };
    executor.spawn_in(owner, "server", async move {
        let _spawner = spawner;
        pending::<()>().await;
    });
    drain(&executor);
    assert_eq!(executor.kill_owner(owner), 2, "the server and its zombie");
    drain(&executor);
    assert_eq!(ran.load(Ordering::SeqCst), 1, "only the system cleanup ran");
    let mut handles = std::mem::take(&mut *handles.lock().unwrap());
    assert_cancelled(&mut handles[0], "zombie");
    assert_eq!(try_join(&mut handles[1]), Some(Ok(())));
}

#[test]
fn test_kill_owner_from_inside_own_task() {
    let executor = executor(18);
    let owner = Some(ProcessId(4));
    let spawner = executor.spawner();
    let reached = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&reached);
    let sibling = executor.spawn_in(owner, "sibling", pending::<()>());
    let mut handle = executor.spawn_in(owner, "self-killer", async move {
        let killed = spawner.kill_owner(owner);
        assert_eq!(killed, 2);
        yield_now().await;
        flag.store(true, Ordering::SeqCst);
    });
    drain(&executor);
    assert!(!reached.load(Ordering::SeqCst));
    assert!(sibling.is_finished());
    assert_cancelled(&mut handle, "self-killer");
    assert_eq!(executor.task_count(), 0);
}

#[test]
fn test_dropping_executor_drops_pending_futures() {
    let drops = counter();
    let mut handles = Vec::new();
    {
        let executor = executor(19);
        for index in 0..5 {
            let guard = DropCounter(Arc::clone(&drops));
            handles.push(executor.spawn_in(
                Some(ProcessId(index)),
                &format!("pending-{index}"),
                async move {
                    let _guard = guard;
                    pending::<()>().await;
                },
            ));
        }
        drain(&executor);
        // Two more that were never polled.
        for index in 5..7 {
            let guard = DropCounter(Arc::clone(&drops));
            handles.push(
                executor.spawn_in(None, &format!("pending-{index}"), async move {
                    let _guard = guard;
                }),
            );
        }
        assert_eq!(drops.load(Ordering::SeqCst), 0);
    }
    assert_eq!(drops.load(Ordering::SeqCst), 7);
    for (index, handle) in handles.iter_mut().enumerate() {
        assert_cancelled(handle, &format!("pending-{index}"));
    }
}

#[test]
fn test_shutdown_then_spawn_is_cancelled() {
    let executor = executor(20);
    executor.spawn_in(None, "old", pending::<()>());
    assert_eq!(executor.shutdown(), 1);
    assert!(executor.is_shut_down());
    let drops = counter();
    let guard = DropCounter(Arc::clone(&drops));
    let mut late = executor.spawn_in(None, "late", async move {
        let _guard = guard;
    });
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_cancelled(&mut late, "late");
    assert_eq!(executor.task_count(), 0);
    assert_eq!(drain(&executor), DrainStats::default());
    assert_eq!(executor.shutdown(), 0);
}

#[test]
fn test_spawn_during_drop_at_shutdown_does_not_panic() {
    let handles = Arc::default();
    let ran = counter();
    {
        let executor = executor(21);
        let spawner = SpawnOnDrop {
            same_owner: executor.task_provider(Some(ProcessId(1))),
            system: executor.task_provider(None),
            handles: Arc::clone(&handles),
            ran: Arc::clone(&ran),
        };
        executor.spawn_in(Some(ProcessId(1)), "spawns-on-drop", async move {
            let _spawner = spawner;
            pending::<()>().await;
        });
        drain(&executor);
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    let mut handles = std::mem::take(&mut *handles.lock().unwrap());
    assert_eq!(handles.len(), 2);
    assert_cancelled(&mut handles[0], "zombie");
    assert_cancelled(&mut handles[1], "cleanup");
}

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
// Speed (run with `cargo test --release -p moonpool-sim --test executor -- --ignored --nocapture`)

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
