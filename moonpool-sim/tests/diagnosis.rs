//! A run never hangs: busy loops, futures nobody wakes and timers that re-arm forever each end in
//! a clear failure naming the seed and the task.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use moonpool_core::{Providers, TaskProvider, TimeProvider};
use moonpool_sim::{Locality, SimError, SimWorld, WorldConfig};

fn world(seed: u64) -> SimWorld {
    SimWorld::with_config(seed, WorldConfig::quiet()).unwrap()
}

#[test]
fn test_busy_loop_is_reported_with_seed_and_task() {
    let mut world = world(11);
    world
        .add_workload("spinner", "10.0.0.1", |providers| async move {
            let task = providers.task().clone();
            let _spin = providers.task().spawn("busy-yield", async move {
                loop {
                    task.yield_now().await;
                }
            });
            providers.time().sleep(Duration::from_secs(1)).await;
        })
        .unwrap();
    let error = world.run().unwrap_err();
    match &error {
        SimError::BusyLoop { seed, busiest, .. } => {
            assert_eq!(*seed, 11);
            assert!(
                busiest.iter().any(|t| t.contains("spinner/busy-yield")),
                "{busiest:?}"
            );
        }
        other => panic!("expected a busy loop, got {other:?}"),
    }
    let text = error.to_string();
    assert!(
        text.contains("seed 11") && text.contains("MOONPOOL_SEED=11"),
        "{text}"
    );
}

#[test]
fn test_never_woken_future_is_a_deadlock_naming_the_task() {
    let mut world = world(12);
    world
        .add_workload("waiter", "10.0.0.1", |_providers| async move {
            // A channel whose sender is kept alive but never used: nothing will ever wake us.
            let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
            let _ = rx.await;
        })
        .unwrap();
    let error = world.run().unwrap_err();
    match &error {
        SimError::Deadlock { seed, stuck, .. } => {
            assert_eq!(*seed, 12);
            assert_eq!(
                stuck,
                &vec![format!(
                    "waiter/waiter (waits on {})",
                    moonpool_sim::executor::UNSCHEDULED_WAIT
                )]
            );
        }
        other => panic!("expected a deadlock, got {other:?}"),
    }
    assert!(error.to_string().contains("MOONPOOL_SEED=12"));
}

#[test]
fn test_self_rearming_timer_exhausts_the_time_budget() {
    let config = {
        let mut cfg = WorldConfig::quiet();
        cfg.time_budget = Duration::from_secs(60);
        cfg
    };
    let mut world = SimWorld::with_config(13, config).unwrap();
    world
        .add_process(
            "ticker",
            "10.0.0.2",
            Locality::default(),
            |ctx| async move {
                loop {
                    ctx.providers.time().sleep(Duration::from_millis(100)).await;
                }
            },
        )
        .unwrap();
    world
        .add_workload("waiter", "10.0.0.1", |_providers| async move {
            std::future::pending::<()>().await;
        })
        .unwrap();
    let error = world.run().unwrap_err();
    match &error {
        SimError::TimeBudgetExceeded { seed, budget, live } => {
            assert_eq!(*seed, 13);
            assert_eq!(*budget, Duration::from_secs(60));
            assert!(
                live.iter()
                    .any(|t| t.starts_with("ticker/ticker#main (waits on a timer at simulated")),
                "{live:?}"
            );
            assert!(
                live.iter()
                    .any(|t| t.starts_with("waiter/waiter (waits on a wake-up no simulated event")),
                "{live:?}"
            );
        }
        other => panic!("expected an exhausted budget, got {other:?}"),
    }
}

#[test]
fn test_workload_panic_fails_the_seed_with_replay() {
    let mut world = world(14);
    world
        .add_workload("checker", "10.0.0.1", |providers| async move {
            providers.time().sleep(Duration::from_millis(5)).await;
            panic!("invariant broken: balance went negative");
        })
        .unwrap();
    let error = world.run().unwrap_err();
    match &error {
        SimError::TaskPanicked {
            seed,
            task,
            message,
            now,
        } => {
            assert_eq!(*seed, 14);
            assert_eq!(task, "checker/checker");
            assert!(message.contains("balance went negative"));
            assert_eq!(*now, Duration::from_millis(5));
        }
        other => panic!("expected a panic failure, got {other:?}"),
    }
}

#[test]
fn test_invalid_setup_is_a_typed_error_naming_the_value() {
    let mut world = world(1);
    let error = world
        .add_workload("a", "not-an-ip", |_p| async {})
        .unwrap_err();
    assert!(error.to_string().contains("not-an-ip"), "{error}");
    world.add_workload("a", "10.0.0.1", |_p| async {}).unwrap();
    let error = world
        .add_workload("b", "10.0.0.1", |_p| async {})
        .unwrap_err();
    assert!(
        error.to_string().contains("10.0.0.1") && error.to_string().contains("'a'"),
        "{error}"
    );
    let mut config = WorldConfig::quiet();
    config.network.bit_flip_probability = 1.5;
    let error = SimWorld::with_config(1, config).err().unwrap();
    assert!(
        error.to_string().contains("bit_flip_probability is 1.5"),
        "{error}"
    );
}

#[test]
fn test_idle_time_is_skipped() {
    let config = {
        let mut cfg = WorldConfig::quiet();
        cfg.time_budget = Duration::from_secs(48 * 3600);
        cfg
    };
    let mut world = SimWorld::with_config(2, config).unwrap();
    world
        .add_workload("sleeper", "10.0.0.1", |providers| async move {
            for _ in 0..24 {
                providers.time().sleep(Duration::from_secs(3600)).await;
            }
        })
        .unwrap();
    let summary = world.run().unwrap();
    assert_eq!(summary.sim_time, Duration::from_secs(24 * 3600));
    assert_eq!(summary.events, 24);
}

#[test]
fn test_tasks_do_not_outlive_their_run() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Guard(Arc<AtomicUsize>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&dropped);
    let mut world = world(3);
    world
        .add_workload("main", "10.0.0.1", move |providers| async move {
            let guard = Guard(counter);
            let time = providers.time().clone();
            drop(providers.task().spawn("orphan", async move {
                let _guard = guard;
                time.sleep(Duration::from_secs(10_000)).await;
            }));
        })
        .unwrap();
    world.run().unwrap();
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the orphan task leaked past the run"
    );
}
