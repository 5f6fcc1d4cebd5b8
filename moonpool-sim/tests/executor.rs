#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Tests of the simulator's deterministic executor, driven by hand: spawning and joining,
//! aborts, panics, kills and shutdown (scheduling, wakers and introspection are in
//! `executor_scheduling.rs`).

use std::future::pending;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use moonpool_core::{JoinError, JoinHandle, TaskProvider};
use moonpool_sim::executor::{DrainStats, ProcessId, SimTaskProvider, yield_now};

mod executor_common;
use executor_common::*;

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
