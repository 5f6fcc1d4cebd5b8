#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The executor's task records: a dense mark per slot beside the slab (what a wake and a pick
//! check), one allocation for a task's waker and its join cell, the future and its waker taken
//! out of the slot together for a poll. Each path those touch: wakes from another thread, wakers
//! and handles outliving their task or their executor, tasks dropped while queued, spawns and
//! cancellations inside a poll, panics, refused spawns, slot reuse at scale, poll counts per
//! instant.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use moonpool_core::{JoinError, JoinHandle, Providers, TaskProvider, TimeProvider};
use moonpool_sim::executor::{Executor, ExecutorError, ProcessId, yield_now};
use moonpool_sim::{SimProviders, SimWorld, WorldConfig};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

fn executor(seed: u64) -> Executor {
    Executor::new(ChaCha8Rng::seed_from_u64(seed))
}

fn try_join<T>(handle: &mut JoinHandle<T>) -> Option<Result<T, JoinError>> {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(handle).poll(&mut cx) {
        Poll::Ready(result) => Some(result),
        Poll::Pending => None,
    }
}

/// Counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A future that leaves a clone of its waker in `slot` and counts its polls; pending until
/// `done` is set, then ready with `output`.
fn parked<T: Send + 'static>(
    slot: Arc<Mutex<Option<Waker>>>,
    polls: Arc<AtomicUsize>,
    done: Arc<AtomicBool>,
    output: T,
) -> impl Future<Output = T> + Send + 'static {
    let mut output = Some(output);
    poll_fn(move |cx| {
        polls.fetch_add(1, Ordering::SeqCst);
        *slot.lock().unwrap() = Some(cx.waker().clone());
        if done.load(Ordering::SeqCst) {
            return Poll::Ready(output.take().unwrap());
        }
        Poll::Pending
    })
}

fn parts() -> (Arc<Mutex<Option<Waker>>>, Arc<AtomicUsize>, Arc<AtomicBool>) {
    (
        Arc::new(Mutex::new(None)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    )
}

#[test]
fn test_wakes_from_other_threads_of_an_idle_executor_queue_a_task_with_a_handle_once() {
    let executor = executor(1);
    let (slot, polls, done) = parts();
    let mut handle = executor.spawn_in(
        None,
        "parked",
        parked(slot.clone(), polls.clone(), done.clone(), 7u32),
    );
    executor.run_until_stalled().unwrap();
    assert_eq!(polls.load(Ordering::SeqCst), 1);
    let waker = slot.lock().unwrap().clone().unwrap();
    // Four threads, each waking by reference and by value: the task is queued once.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let waker = waker.clone();
            scope.spawn(move || {
                waker.wake_by_ref();
                waker.wake();
            });
        }
    });
    assert!(executor.has_ready());
    let stats = executor.run_until_stalled().unwrap();
    assert_eq!(stats.polls, 1, "queued once for eight wakes");
    done.store(true, Ordering::SeqCst);
    std::thread::spawn(move || waker.wake()).join().unwrap();
    executor.run_until_stalled().unwrap();
    assert_eq!(try_join(&mut handle), Some(Ok(7)));
    assert_eq!(executor.task_count(), 0);
}

#[test]
fn test_a_wake_from_another_thread_reaches_a_task_with_a_handle_inside_a_running_world() {
    let mut world = SimWorld::with_config(3, WorldConfig::quiet()).unwrap();
    let finished = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&finished);
    world
        .add_workload("waiter", "10.0.0.1", move |p: SimProviders| async move {
            let fired = Arc::new(AtomicBool::new(false));
            // Set once the other thread's `wake` has returned (the wake is queued by then):
            // `fired` alone is set before the wake, and a world left with nothing to do in
            // between would end in a deadlock verdict before the wake arrives.
            let woken = Arc::new(AtomicBool::new(false));
            let landed = Arc::clone(&woken);
            let mut started = false;
            let child = p.task().spawn(
                "woken-from-afar",
                poll_fn(move |cx| {
                    if fired.load(Ordering::SeqCst) {
                        return Poll::Ready(41u64);
                    }
                    if !started {
                        started = true;
                        let waker = cx.waker().clone();
                        let (fired, woken) = (Arc::clone(&fired), Arc::clone(&woken));
                        std::thread::spawn(move || {
                            std::thread::sleep(std::time::Duration::from_millis(5));
                            fired.store(true, Ordering::SeqCst);
                            waker.wake();
                            woken.store(true, Ordering::SeqCst);
                        });
                    }
                    Poll::Pending
                }),
            );
            // Keep the world busy (simulated time passes, well within the hour of the time
            // budget) until the other thread has fired, however late it gets to run.
            let sleeper = p.task().spawn("sleeper", {
                let p = p.clone();
                async move {
                    while !landed.load(Ordering::SeqCst) {
                        p.time().sleep(std::time::Duration::from_millis(1)).await;
                        std::thread::yield_now();
                    }
                }
            });
            let value = child.await.unwrap();
            sleeper.abort();
            assert_eq!(value, 41);
            seen.store(true, Ordering::SeqCst);
        })
        .unwrap();
    world.run().unwrap();
    assert!(finished.load(Ordering::SeqCst));
}

#[test]
fn test_a_waker_outliving_its_task_and_its_executor_is_harmless_and_keeps_no_output() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let (slot, polls, done) = parts();
    let waker = {
        let executor = executor(2);
        done.store(true, Ordering::SeqCst);
        let handle = executor.spawn_in(
            Some(ProcessId(4)),
            "ends",
            parked(
                slot.clone(),
                polls.clone(),
                done.clone(),
                Counted(dropped.clone()),
            ),
        );
        executor.run_until_stalled().unwrap();
        assert_eq!(executor.task_count(), 0);
        // The output waits in the cell for the handle; the waker shares that cell, but dropping
        // the handle unread drops the output now.
        assert_eq!(dropped.load(Ordering::SeqCst), 0);
        drop(handle);
        assert_eq!(dropped.load(Ordering::SeqCst), 1, "dropped with the handle");
        slot.lock().unwrap().take().unwrap()
        // The executor is dropped here, with the waker still held.
    };
    waker.wake_by_ref();
    let other = waker.clone();
    std::thread::spawn(move || {
        other.wake_by_ref();
        other.wake();
    })
    .join()
    .unwrap();
    waker.wake();
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "nothing else was dropped"
    );
    assert_eq!(polls.load(Ordering::SeqCst), 1);
}

#[test]
fn test_a_handle_outliving_its_executor_still_gives_the_output_or_cancelled() {
    let (slot, polls, done) = parts();
    let (mut finished, mut pending) = {
        let executor = executor(5);
        let finished = executor.spawn_in(None, "finished", async { String::from("kept") });
        let pending = executor.spawn_in(None, "pending", parked(slot, polls, done, 0u8));
        executor.run_until_stalled().unwrap();
        (finished, pending)
    };
    assert_eq!(try_join(&mut finished), Some(Ok(String::from("kept"))));
    assert!(matches!(
        try_join(&mut pending),
        Some(Err(JoinError::Cancelled { .. }))
    ));
    // Aborting after the executor ended is harmless.
    pending.abort();
    finished.abort();
}

#[test]
fn test_a_task_dropped_while_queued_is_never_polled_and_its_old_waker_spares_the_slots_next_task() {
    let executor = executor(6);
    let dropped = Arc::new(AtomicUsize::new(0));
    let (slot, polls, done) = parts();
    let guard = Counted(dropped.clone());
    let future = parked(slot.clone(), polls.clone(), done.clone(), ());
    let mut doomed = executor.spawn_in(Some(ProcessId(1)), "doomed", async move {
        let _guard = guard;
        future.await;
    });
    executor.run_until_stalled().unwrap();
    let old_waker = slot.lock().unwrap().take().unwrap();
    old_waker.wake_by_ref();
    assert!(executor.has_ready(), "queued");
    // Killed while queued: dropped at once, never polled again.
    assert_eq!(executor.kill_owner(Some(ProcessId(1))), 1);
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    assert!(!executor.has_ready(), "unqueued");
    let stats = executor.run_until_stalled().unwrap();
    assert_eq!(stats.polls, 0);
    assert_eq!(polls.load(Ordering::SeqCst), 1);
    assert!(matches!(
        try_join(&mut doomed),
        Some(Err(JoinError::Cancelled { .. }))
    ));
    // The next task takes the freed slot; the old waker does not wake it.
    let (slot2, polls2, done2) = parts();
    let mut next = executor.spawn_in(
        None,
        "next",
        parked(slot2.clone(), polls2.clone(), done2.clone(), 9u8),
    );
    executor.run_until_stalled().unwrap();
    assert_eq!(polls2.load(Ordering::SeqCst), 1);
    old_waker.wake_by_ref();
    std::thread::spawn(move || old_waker.wake()).join().unwrap();
    assert!(!executor.has_ready(), "a stale waker queues nothing");
    // Aborted while queued, through its handle: dropped by the next drain, not polled.
    slot2.lock().unwrap().take().unwrap().wake();
    next.abort();
    let stats = executor.run_until_stalled().unwrap();
    assert_eq!((stats.polls, stats.cancelled), (0, 1));
    assert_eq!(polls2.load(Ordering::SeqCst), 1);
    assert!(matches!(
        try_join(&mut next),
        Some(Err(JoinError::Cancelled { .. }))
    ));
    assert_eq!(executor.task_count(), 0);
}

#[test]
fn test_a_task_that_spawns_and_cancels_in_its_own_poll() {
    let executor = executor(7);
    let spawner = executor.spawner();
    let child_polls = Arc::new(AtomicUsize::new(0));
    let child_drops = Arc::new(AtomicUsize::new(0));
    let (polls, drops) = (child_polls.clone(), child_drops.clone());
    let mut parent = executor.spawn_in(None, "parent", async move {
        let mut results = Vec::new();
        for round in 0..3u32 {
            let polls = polls.clone();
            let guard = Counted(drops.clone());
            let mut child = spawner.spawn_in(None, "child", async move {
                let _guard = guard;
                polls.fetch_add(1, Ordering::SeqCst);
                round
            });
            // Cancelled in the same poll that spawned it: it never runs.
            child.abort();
            results.push(poll_fn(|cx| Pin::new(&mut child).poll(cx)).await);
            // A sibling that runs, spawned and joined in the same task.
            let kept = spawner.spawn_in(None, "kept", async move { round * 10 });
            results.push(kept.await);
            yield_now().await;
        }
        results
    });
    let stats = executor.run_until_stalled().unwrap();
    let results = try_join(&mut parent).unwrap().unwrap();
    assert_eq!(
        child_polls.load(Ordering::SeqCst),
        0,
        "no aborted child ran"
    );
    assert_eq!(child_drops.load(Ordering::SeqCst), 3, "each was dropped");
    assert_eq!(stats.cancelled, 3);
    for (round, pair) in results.chunks(2).enumerate() {
        assert!(
            matches!(pair[0], Err(JoinError::Cancelled { .. })),
            "{pair:?}"
        );
        assert_eq!(pair[1], Ok(round as u32 * 10));
    }
    assert_eq!(executor.task_count(), 0);
}

#[test]
fn test_panicking_tasks_with_and_without_a_handle() {
    let executor = executor(8);
    let mut watched = executor.spawn_in(Some(ProcessId(2)), "watched", async {
        yield_now().await;
        #[allow(clippy::panic)]
        if true {
            panic!("watched went wrong");
        }
        5u8
    });
    drop(executor.spawn_in(None, "unwatched", async {
        #[allow(clippy::panic)]
        if true {
            panic!("unwatched went wrong");
        }
    }));
    let sibling = Arc::new(AtomicBool::new(false));
    let flag = sibling.clone();
    let mut survivor = executor.spawn_in(None, "survivor", async move {
        yield_now().await;
        yield_now().await;
        flag.store(true, Ordering::SeqCst);
        1u8
    });
    let stats = executor.run_until_stalled().unwrap();
    assert_eq!(stats.panicked, 2);
    assert!(stats.panics_pending);
    match try_join(&mut watched) {
        Some(Err(JoinError::Panicked { task, message })) => {
            assert_eq!(task, "watched");
            assert!(message.contains("watched went wrong"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(try_join(&mut survivor), Some(Ok(1)));
    assert!(sibling.load(Ordering::SeqCst));
    let panics = executor.take_panics();
    let detached: Vec<(&str, bool)> = panics
        .iter()
        .map(|p| (p.task.as_str(), p.detached))
        .collect();
    assert!(detached.contains(&("unwatched", true)), "{detached:?}");
    assert!(detached.contains(&("watched", false)), "{detached:?}");
    assert_eq!(executor.task_count(), 0);
}

#[test]
fn test_refused_spawns_drop_the_future_once_and_give_a_cancelled_inert_handle() {
    let executor = executor(9);
    executor.set_task_limit(1);
    let (slot, polls, done) = parts();
    let _first = executor.spawn_in(None, "first", parked(slot, polls, done, ()));
    let dropped = Arc::new(AtomicUsize::new(0));
    let guard = Counted(dropped.clone());
    let mut refused = executor.spawn_in(None, "refused", async move {
        let _guard = guard;
        3u8
    });
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "dropped at the refusal");
    assert!(refused.is_finished());
    refused.abort();
    assert!(matches!(
        try_join(&mut refused),
        Some(Err(JoinError::Cancelled { .. }))
    ));
    match executor.run_until_stalled() {
        Err(ExecutorError::TaskLimitExceeded(details)) => assert_eq!(details.refused, "refused"),
        other => panic!("{other:?}"),
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    // After shutdown every spawn is refused the same way.
    executor.shutdown();
    let guard = Counted(dropped.clone());
    let mut late = executor.spawn_in(None, "late", async move {
        let _guard = guard;
    });
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
    assert!(matches!(
        try_join(&mut late),
        Some(Err(JoinError::Cancelled { .. }))
    ));
    assert_eq!(executor.task_count(), 0);
}

#[test]
fn test_ten_thousand_tasks_wake_finish_and_reuse_their_slots() {
    const TASKS: usize = 10_000;
    let executor = executor(10);
    for round in 0..2u64 {
        let gate = Arc::new(AtomicBool::new(false));
        let wakers: Arc<Mutex<Vec<Waker>>> = Arc::new(Mutex::new(Vec::new()));
        let mut handles: Vec<JoinHandle<u64>> = (0..TASKS as u64)
            .map(|n| {
                let (gate, wakers) = (gate.clone(), wakers.clone());
                executor.spawn_in(
                    Some(ProcessId((n % 7) as u32)),
                    "many",
                    poll_fn(move |cx| {
                        if gate.load(Ordering::SeqCst) {
                            return Poll::Ready(n + round);
                        }
                        wakers.lock().unwrap().push(cx.waker().clone());
                        Poll::Pending
                    }),
                )
            })
            .collect();
        let first = executor.run_until_stalled().unwrap();
        assert_eq!(first.polls, TASKS as u64);
        assert_eq!(executor.task_count(), TASKS);
        gate.store(true, Ordering::SeqCst);
        let woken = std::mem::take(&mut *wakers.lock().unwrap());
        // Woken twice each, half from another thread: each is polled once more.
        let (here, there) = woken.split_at(TASKS / 2);
        let there = there.to_vec();
        let remote = std::thread::spawn(move || {
            for waker in &there {
                waker.wake_by_ref();
                waker.wake_by_ref();
            }
        });
        for waker in here {
            waker.wake_by_ref();
            waker.wake_by_ref();
        }
        remote.join().unwrap();
        let second = executor.run_until_stalled().unwrap();
        assert_eq!(second.polls, TASKS as u64);
        assert_eq!(second.completed, TASKS as u64);
        for (n, handle) in handles.iter_mut().enumerate() {
            assert_eq!(try_join(handle), Some(Ok(n as u64 + round)));
        }
        assert_eq!(executor.task_count(), 0);
        // The old wakers (after their tasks ended) are inert.
        for waker in woken {
            waker.wake();
        }
        assert!(!executor.has_ready());
    }
}

#[test]
fn test_the_busiest_tasks_count_the_polls_of_their_own_drain_only() {
    let executor = executor(11);
    // A task that yields 30 times, then waits; woken, it spins forever.
    let (slot, _, _) = parts();
    let spin = Arc::new(AtomicBool::new(false));
    let (park, spinning) = (slot.clone(), spin.clone());
    let _busy = executor.spawn_in(None, "busy", async move {
        for _ in 0..30 {
            yield_now().await;
        }
        poll_fn(|cx| {
            if spinning.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *park.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        loop {
            yield_now().await;
        }
    });
    let first = executor.run_until_stalled().unwrap();
    assert_eq!(first.polls, 31);
    executor.set_poll_bound(50);
    spin.store(true, Ordering::SeqCst);
    slot.lock().unwrap().take().unwrap().wake();
    match executor.run_until_stalled() {
        Err(ExecutorError::PollBoundExceeded { polls, busiest }) => {
            assert_eq!(polls, 50);
            assert_eq!(busiest.len(), 1);
            assert_eq!(busiest[0].0.name, "busy");
            assert_eq!(
                busiest[0].1, 50,
                "the 31 polls of the first drain are not counted"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// A `!Unpin` future that notes its own address at its first poll and checks it at every later
/// one (a self-referential future would break if it moved), ready at its fourth poll: the
/// executor moves the boxed future out of its slot and back for every poll, never the future.
struct AddressChecked {
    first: Option<usize>,
    polls: u32,
    moved: Arc<AtomicBool>,
    _pinned: std::marker::PhantomPinned,
}

impl Future for AddressChecked {
    type Output = u32;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        let address = std::ptr::from_ref::<Self>(&self) as usize;
        // SAFETY: only plain fields are written; nothing is moved out of the pinned value.
        let this = unsafe { self.get_unchecked_mut() };
        match this.first {
            None => this.first = Some(address),
            Some(first) if first != address => this.moved.store(true, Ordering::SeqCst),
            Some(_) => {}
        }
        this.polls += 1;
        if this.polls == 4 {
            return Poll::Ready(this.polls);
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[test]
fn test_a_spawned_future_that_must_not_move_stays_in_place_across_polls() {
    let executor = executor(12);
    let moved = Arc::new(AtomicBool::new(false));
    let mut handles: Vec<JoinHandle<u32>> = (0..50)
        .map(|_| {
            executor.spawn_in(
                None,
                "pinned",
                AddressChecked {
                    first: None,
                    polls: 0,
                    moved: moved.clone(),
                    _pinned: std::marker::PhantomPinned,
                },
            )
        })
        .collect();
    // Spawning more tasks meanwhile grows the slab (its slots move; the futures must not).
    let spawner = executor.spawner();
    let _grow = executor.spawn_in(None, "grow", async move {
        for _ in 0..200 {
            drop(spawner.spawn_in(None, "filler", async { yield_now().await }));
            yield_now().await;
        }
    });
    executor.run_until_stalled().unwrap();
    assert!(!moved.load(Ordering::SeqCst), "a pinned future moved");
    for handle in &mut handles {
        assert_eq!(try_join(handle), Some(Ok(4)));
    }
}

type SharedHandle = Arc<Mutex<Option<JoinHandle<u8>>>>;

/// Records, when dropped, whether the handle of its task already said finished.
struct DropProbe {
    handle: SharedHandle,
    finished_at_drop: Arc<Mutex<Option<bool>>>,
    drops: Arc<AtomicUsize>,
    panic: bool,
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        let finished = self
            .handle
            .lock()
            .unwrap()
            .as_ref()
            .map(JoinHandle::is_finished);
        *self.finished_at_drop.lock().unwrap() = finished;
        self.drops.fetch_add(1, Ordering::SeqCst);
        #[allow(clippy::panic)]
        if self.panic {
            panic!("the probe panics in its drop");
        }
    }
}

fn probed(
    executor: &Executor,
    panic: bool,
    drops: &Arc<AtomicUsize>,
) -> (SharedHandle, Arc<Mutex<Option<bool>>>) {
    let handle = Arc::new(Mutex::new(None));
    let finished_at_drop = Arc::new(Mutex::new(None));
    let probe = DropProbe {
        handle: handle.clone(),
        finished_at_drop: finished_at_drop.clone(),
        drops: drops.clone(),
        panic,
    };
    let spawned = executor.spawn_in(None, "probed", async move {
        let _probe = probe;
        yield_now().await;
        8u8
    });
    *handle.lock().unwrap() = Some(spawned);
    (handle, finished_at_drop)
}

#[test]
fn test_a_completed_future_is_dropped_before_its_output_reaches_the_handle() {
    let executor = executor(13);
    let drops = Arc::new(AtomicUsize::new(0));
    let (handle, finished_at_drop) = probed(&executor, false, &drops);
    executor.run_until_stalled().unwrap();
    assert_eq!(
        *finished_at_drop.lock().unwrap(),
        Some(false),
        "dropped inside the poll, before the output was stored"
    );
    let mut handle = handle.lock().unwrap().take().unwrap();
    assert_eq!(try_join(&mut handle), Some(Ok(8)));
    assert!(executor.take_panics().is_empty());
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn test_a_future_whose_drop_panics_at_completion_fails_its_handle() {
    let executor = executor(14);
    let drops = Arc::new(AtomicUsize::new(0));
    let (handle, finished_at_drop) = probed(&executor, true, &drops);
    let stats = executor.run_until_stalled().unwrap();
    assert_eq!(stats.panicked, 1);
    assert_eq!(*finished_at_drop.lock().unwrap(), Some(false));
    let mut handle = handle.lock().unwrap().take().unwrap();
    match try_join(&mut handle) {
        Some(Err(JoinError::Panicked { message, .. })) => {
            assert!(
                message.contains("the probe panics in its drop"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(executor.task_count(), 0);
    // Dropped once: the panicking drop left nothing to drop again when the task retired.
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(executor.take_panics().len(), 1);
}
