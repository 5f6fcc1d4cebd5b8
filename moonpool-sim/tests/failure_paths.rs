//! The simulator's own failure paths: every run that cannot finish ends by itself, within a
//! bounded wall time, with an error that names the seed, the task and the cause.
//!
//! Each hang test runs under a wall-clock bound (`within`) far above what it needs: a test that
//! reaches the bound has hung, which is the bug these tests exist to catch.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use moonpool_core::{Providers, RandomProvider, TaskProvider, TimeProvider};
use moonpool_sim::executor::UNSCHEDULED_WAIT;
use moonpool_sim::{
    IterationControl, Locality, SimError, SimWorld, SimulationBuilder, WorldConfig,
};

/// Runs `f` on its own thread and fails the test if it takes longer than `bound` of wall time.
fn within<T: Send + 'static>(bound: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(f());
    });
    match receiver.recv_timeout(bound) {
        Ok(value) => value,
        Err(_) => panic!("hung: no verdict within {bound:?} of wall time"),
    }
}

const BOUND: Duration = Duration::from_secs(60);

fn quiet(seed: u64) -> SimWorld {
    SimWorld::with_config(seed, WorldConfig::quiet()).unwrap()
}

#[test]
fn test_zero_sleep_yields_to_other_tasks() {
    let order = within(BOUND, || {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut world = quiet(1);
        let shared = Arc::clone(&log);
        world
            .add_workload("sleeper", "10.0.0.1", move |providers| async move {
                let other = Arc::clone(&shared);
                let _task = providers.task().spawn("other", async move {
                    other.lock().unwrap().push("other");
                });
                // A zero sleep goes through the timer, so the spawned task runs before it ends.
                providers.time().sleep(Duration::ZERO).await;
                shared.lock().unwrap().push("after zero sleep");
            })
            .unwrap();
        let summary = world.run().unwrap();
        assert!(summary.events >= 1, "the zero sleep is a timer event");
        log.lock().unwrap().clone()
    });
    assert_eq!(order, vec!["other", "after zero sleep"]);
}

#[test]
fn test_zero_sleep_rearmed_forever_is_a_busy_loop() {
    let error = within(BOUND, || {
        let mut world = quiet(2);
        world
            .add_workload("rearm", "10.0.0.1", |providers| async move {
                loop {
                    providers.time().sleep(Duration::ZERO).await;
                }
            })
            .unwrap();
        world.run().unwrap_err()
    });
    match &error {
        SimError::BusyLoop { seed, busiest, .. } => {
            assert_eq!(*seed, 2);
            assert!(
                busiest.iter().any(|t| t.contains("rearm/rearm")),
                "{busiest:?}"
            );
        }
        other => panic!("expected a busy loop, got {other}"),
    }
    let text = error.to_string();
    assert!(text.contains("without the clock advancing"), "{text}");
    assert!(text.contains("MOONPOOL_SEED=2"), "{text}");
}

#[test]
fn test_spinning_on_now_inside_one_poll_fails_the_seed_naming_the_task() {
    let error = within(BOUND, || {
        let mut world = quiet(3);
        world
            .add_workload("spinner", "10.0.0.1", |providers| async move {
                providers.time().sleep(Duration::from_millis(5)).await;
                // Waits for a time that cannot come: the clock only moves when tasks await.
                let deadline = providers.time().now() + Duration::from_secs(1);
                while providers.time().now() < deadline {}
            })
            .unwrap();
        world.run().unwrap_err()
    });
    match &error {
        SimError::TaskPanicked {
            seed,
            task,
            message,
            ..
        } => {
            assert_eq!(*seed, 3);
            assert_eq!(task, "spinner/spinner");
            assert!(message.contains("read the simulated clock"), "{message}");
        }
        other => panic!("expected the spinning task named, got {other}"),
    }
    assert!(error.to_string().contains("MOONPOOL_SEED=3"));
}

#[test]
fn test_duration_max_sleep_and_timeout_saturate_after_time_passed() {
    let summary = within(BOUND, || {
        let mut world = quiet(4);
        world
            .add_workload("patient", "10.0.0.1", |providers| async move {
                let time = providers.time().clone();
                time.sleep(Duration::from_secs(5)).await;
                // As on Tokio: a timeout of Duration::MAX is "no timeout", not an overflow.
                let value = time
                    .timeout(Duration::MAX, async { 7 })
                    .await
                    .expect("not timed out");
                assert_eq!(value, 7);
                let waiter = time.clone();
                let never = providers.task().spawn("forever", async move {
                    waiter.sleep(Duration::MAX).await;
                });
                time.sleep(Duration::from_secs(1)).await;
                assert!(!never.is_finished());
                never.abort();
            })
            .unwrap();
        world.run().unwrap()
    });
    assert_eq!(summary.sim_time, Duration::from_secs(6));
}

#[test]
fn test_settle_timeout_of_duration_max_passes() {
    let report = within(BOUND, || {
        SimulationBuilder::new("settle-max")
            .world_config(WorldConfig::quiet())
            .progress(false)
            .settle_timeout(Duration::MAX)
            .chaos_duration(Duration::MAX)
            .process("server", 1, |ctx| async move {
                ctx.shutdown.requested().await;
            })
            .workload("client", 1, |ctx| async move {
                ctx.providers.time().sleep(Duration::from_secs(1)).await;
                Ok(())
            })
            .iterations(IterationControl::FixedCount(5))
            .jobs(1)
            .run()
            .unwrap()
    });
    report.assert_success();
}

#[test]
fn test_unbounded_spawning_hits_the_task_limit_naming_the_spawner() {
    let error = within(BOUND, || {
        let config = {
            let mut cfg = WorldConfig::quiet();
            cfg.max_tasks = 1_000;
            cfg
        };
        let mut world = SimWorld::with_config(5, config).unwrap();
        world
            .add_workload("forker", "10.0.0.1", |providers| async move {
                loop {
                    let time = providers.time().clone();
                    drop(providers.task().spawn("leaf", async move {
                        time.sleep(Duration::from_secs(3600)).await;
                    }));
                    providers.time().sleep(Duration::from_millis(1)).await;
                }
            })
            .unwrap();
        world.run().unwrap_err()
    });
    match &error {
        SimError::TaskLimitExceeded {
            seed,
            limit,
            refused,
            spawner,
            most_common,
            ..
        } => {
            assert_eq!(*seed, 5);
            assert_eq!(*limit, 1_000);
            assert_eq!(refused, "leaf");
            assert_eq!(spawner, "forker/forker");
            assert!(most_common[0].starts_with("leaf x"), "{most_common:?}");
        }
        other => panic!("expected the task limit, got {other}"),
    }
    assert!(error.to_string().contains("MOONPOOL_SEED=5"));
}

#[test]
fn test_zero_task_limit_is_refused() {
    let config = {
        let mut cfg = WorldConfig::quiet();
        cfg.max_tasks = 0;
        cfg
    };
    let error = SimWorld::with_config(6, config).err().expect("refused");
    assert!(error.to_string().contains("max_tasks"), "{error}");
}

#[test]
fn test_panic_behind_a_handle_dropped_unawaited_fails_the_seed() {
    let error = within(BOUND, || {
        let mut world = quiet(7);
        world
            .add_workload("holder", "10.0.0.1", |providers| async move {
                let handle = providers.task().spawn("doomed", async {
                    panic!("lost unless someone looks");
                });
                providers.time().sleep(Duration::from_millis(10)).await;
                assert!(handle.is_finished());
                // Nobody will ever read the panic now.
                drop(handle);
                providers.time().sleep(Duration::from_millis(10)).await;
            })
            .unwrap();
        world.run().unwrap_err()
    });
    match &error {
        SimError::TaskPanicked {
            seed,
            task,
            message,
            ..
        } => {
            assert_eq!(*seed, 7);
            assert_eq!(task, "holder/doomed");
            assert!(message.contains("lost unless someone looks"), "{message}");
        }
        other => panic!("expected the unobserved panic, got {other}"),
    }
}

#[test]
fn test_panic_behind_an_awaited_handle_is_the_awaiters_to_handle() {
    let summary = within(BOUND, || {
        let mut world = quiet(8);
        world
            .add_workload("holder", "10.0.0.1", |providers| async move {
                let handle = providers.task().spawn("doomed", async {
                    panic!("seen by the awaiting code");
                });
                assert!(handle.await.is_err());
            })
            .unwrap();
        world.run()
    });
    assert!(summary.is_ok(), "{summary:?}");
}

#[test]
fn test_fingerprints_differ_between_seeds_failing_at_time_zero() {
    let fingerprint = |seed: u64| {
        let mut world = quiet(seed);
        world
            .add_workload("early", "10.0.0.1", |_providers| async move {
                panic!("fails before any event");
            })
            .unwrap();
        assert!(world.run().is_err());
        world.summary().fingerprint
    };
    let (a, b) = (fingerprint(9), fingerprint(10));
    assert_ne!(a, b);
    assert_eq!(a, fingerprint(9), "still deterministic");
}

/// A simulation whose server factory or invariant panics in some seeds.
fn panicky(name: &str, jobs: usize, in_factory: bool) -> moonpool_sim::SimulationReport {
    let builder = SimulationBuilder::new(name)
        .world_config(WorldConfig::quiet())
        .progress(false)
        .replay_command("replay-me {seed}")
        .process("server", 1, move |ctx| {
            if in_factory && ctx.providers.random().random_bool(0.5) {
                panic!("factory cannot start");
            }
            async move {
                ctx.shutdown.requested().await;
            }
        })
        .workload("client", 1, |ctx| async move {
            // Odd seeds mark the state; the invariant's own bug shows on them only.
            ctx.state.publish("odd", ctx.seed() % 2 == 1);
            ctx.providers.time().sleep(Duration::from_millis(10)).await;
            Ok(())
        });
    let builder = if in_factory {
        builder
    } else {
        builder.invariant("panics on odd seeds", |state| {
            if state.get::<bool>("odd") == Some(true) {
                panic!("invariant code is buggy");
            }
            Ok(())
        })
    };
    within(BOUND, move || {
        builder
            .iterations(IterationControl::FixedCount(20))
            .jobs(jobs)
            .run()
            .unwrap()
    })
}

fn check_panicky(report: &moonpool_sim::SimulationReport, what: &str) {
    assert_eq!(report.seeds_run(), 20, "every seed ran");
    assert!(report.failed() > 0 && report.passed() > 0, "{report}");
    for failure in report.failures() {
        let text = failure.failure.as_deref().unwrap();
        assert!(text.contains(what), "{text}");
        assert!(text.contains(&format!("seed {}", failure.seed)), "{text}");
        assert_eq!(
            failure.replay.as_deref(),
            Some(format!("replay-me {}", failure.seed).as_str())
        );
    }
}

#[test]
fn test_factory_panic_fails_its_seed_with_one_job() {
    check_panicky(
        &panicky("factory-1", 1, true),
        "the factory of process 'server-0'",
    );
}

#[test]
fn test_factory_panic_fails_its_seed_with_two_jobs() {
    check_panicky(&panicky("factory-2", 2, true), "factory cannot start");
}

#[test]
fn test_invariant_panic_fails_its_seed_with_one_job() {
    check_panicky(&panicky("invariant-1", 1, false), "the invariant panicked");
}

#[test]
fn test_invariant_panic_fails_its_seed_with_two_jobs() {
    check_panicky(&panicky("invariant-2", 2, false), "invariant code is buggy");
}

#[test]
fn test_builder_deadlock_names_every_stuck_task_and_what_it_waits_on() {
    let report = within(BOUND, || {
        SimulationBuilder::new("two-mutex-deadlock")
            .world_config(WorldConfig::quiet())
            .progress(false)
            .settle_timeout(Duration::from_secs(5))
            .workload("locker", 1, |ctx| async move {
                let a = Arc::new(tokio::sync::Mutex::new(()));
                let b = Arc::new(tokio::sync::Mutex::new(()));
                let time = ctx.providers.time().clone();
                let (a2, b2, time2) = (Arc::clone(&a), Arc::clone(&b), time.clone());
                let other = ctx.providers.task().spawn("b-then-a", async move {
                    let _b = b2.lock().await;
                    time2.sleep(Duration::from_millis(10)).await;
                    let _a = a2.lock().await;
                });
                let _a = a.lock().await;
                time.sleep(Duration::from_millis(10)).await;
                let _b = b.lock().await;
                other.await.map_err(|e| e.to_string())?;
                Ok(())
            })
            .iterations(IterationControl::FixedCount(1))
            .jobs(1)
            .run()
            .unwrap()
    });
    assert_eq!(report.failed(), 1);
    let text = report.failures().next().unwrap().failure.clone().unwrap();
    assert!(
        text.contains(&format!(
            "locker-0/locker-0::run (waits on {UNSCHEDULED_WAIT})"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("locker-0/b-then-a (waits on {UNSCHEDULED_WAIT})")),
        "{text}"
    );
}

#[test]
fn test_builder_lost_wakeup_names_the_waiter() {
    let report = within(BOUND, || {
        SimulationBuilder::new("lost-wakeup")
            .world_config(WorldConfig::quiet())
            .progress(false)
            .settle_timeout(Duration::from_secs(5))
            .process("server", 1, |ctx| async move {
                let _ = ctx.providers.time().sleep(Duration::from_secs(3600)).await;
            })
            .workload("waiter", 1, |ctx| async move {
                let notify = Arc::new(tokio::sync::Notify::new());
                let signal = Arc::clone(&notify);
                // The wake-up is sent before anyone waits, with notify_waiters: it is lost.
                signal.notify_waiters();
                let waiter = ctx.providers.task().spawn("wait-for-signal", async move {
                    notify.notified().await;
                });
                waiter.await.map_err(|e| e.to_string())?;
                Ok(())
            })
            .iterations(IterationControl::FixedCount(1))
            .jobs(1)
            .run()
            .unwrap()
    });
    let text = report.failures().next().unwrap().failure.clone().unwrap();
    assert!(text.contains("settle timeout"), "{text}");
    assert!(
        text.contains(&format!(
            "waiter-0/wait-for-signal (waits on {UNSCHEDULED_WAIT})"
        )),
        "{text}"
    );
    assert!(
        text.contains("waiter-0/waiter-0::run (waits on the end of task#"),
        "{text}"
    );
    assert!(
        text.contains("server-0/server-0#main (waits on a timer at simulated"),
        "{text}"
    );
}

#[test]
fn test_process_factory_panic_in_a_bare_world_is_named() {
    let error = within(BOUND, || {
        let mut world = quiet(11);
        world
            .add_process("server", "10.0.0.2", Locality::default(), |_ctx| {
                panic!("no body today");
                #[allow(unreachable_code)]
                async {}
            })
            .unwrap();
        world
            .add_workload("client", "10.0.0.1", |_p| async move {})
            .unwrap();
        world.run().unwrap_err()
    });
    match &error {
        SimError::CallbackPanicked {
            seed,
            callback,
            message,
            ..
        } => {
            assert_eq!(*seed, 11);
            assert_eq!(callback, "the factory of process 'server' (boot 1)");
            assert_eq!(message, "no body today");
        }
        other => panic!("expected the factory named, got {other}"),
    }
}
