//! Hostile use of simulated time (second pass): timeouts whose future is ready at the deadline's
//! own instant, many timers at one instant, sleeps at the edge of the time budget and of the
//! clock's range, a timer dropped or a clock read from inside another task's wake, and clock
//! configurations at their extremes. Every run must end in a result or a verdict (never a panic
//! out of `run`), and the same seed must give the same run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::{Future, poll_fn};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use moonpool_core::{Providers, TaskProvider, TimeProvider};
use moonpool_sim::{ClockConfiguration, SimError, SimWorld, SimulationBuilder, WorldConfig};

mod hostile2_common;

use hostile2_common::*;

/// A timeout wrapping a sleep of exactly its own length: both are due at one instant, and the
/// wrapped future is polled first, so it wins on every seed.
#[test]
fn test_a_timeout_whose_future_is_ready_at_the_deadline_instant_returns_the_value() {
    // Under the default clock (buggified sleep delays) either may come later: the outcome is
    // the seed's, the same twice.
    let chaotic = |seed: u64| {
        let mut world = SimWorld::with_config(seed, WorldConfig::default()).unwrap();
        let outcome = Arc::new(Mutex::new(None));
        let out = Arc::clone(&outcome);
        world
            .add_workload("edge", "10.0.0.1", move |p| async move {
                let time = p.time().clone();
                let inner = time.clone();
                let r = time
                    .timeout(Duration::from_millis(10), async move {
                        inner.sleep(Duration::from_millis(10)).await;
                        5u8
                    })
                    .await;
                *out.lock().unwrap() = Some((r, time.now()));
            })
            .unwrap();
        let summary = world.run().unwrap();
        let r = outcome.lock().unwrap().take().expect("the workload ran");
        (r, key(&summary))
    };
    for seed in 0..seeds_or(20) {
        assert_eq!(chaotic(seed), chaotic(seed), "seed {seed} twice");
    }
    for seed in 0..seeds_or(20) {
        let mut world = quiet(seed);
        let outcome = Arc::new(Mutex::new(None));
        let out = Arc::clone(&outcome);
        world
            .add_workload("edge", "10.0.0.1", move |p| async move {
                let time = p.time().clone();
                let inner = time.clone();
                let r = time
                    .timeout(Duration::from_millis(10), async move {
                        inner.sleep(Duration::from_millis(10)).await;
                        5u8
                    })
                    .await;
                *out.lock().unwrap() = Some((r, time.now()));
            })
            .unwrap();
        world.run().unwrap();
        let (r, at) = outcome.lock().unwrap().take().expect("the workload ran");
        assert_eq!(
            r,
            Ok(5),
            "seed {seed}: the future ready at the deadline wins"
        );
        assert_eq!(at, Duration::from_millis(10));
    }
}

/// A timeout whose future is completed by another task at the deadline's instant: either
/// outcome is legal, but a seed always gives the same one, and some seeds give each.
#[test]
fn test_a_timeout_raced_by_another_task_at_the_same_instant_is_decided_by_the_seed() {
    let run = |seed: u64| {
        let mut world = quiet(seed);
        let outcome = Arc::new(Mutex::new(None));
        let out = Arc::clone(&outcome);
        world
            .add_workload("racer", "10.0.0.1", move |p| async move {
                let (sender, receiver) = tokio::sync::oneshot::channel::<u8>();
                let time = p.time().clone();
                let sender_time = time.clone();
                let _sender = p.task().spawn("sender", async move {
                    sender_time.sleep(Duration::from_millis(10)).await;
                    let _ = sender.send(9);
                });
                let r = time.timeout(Duration::from_millis(10), receiver).await;
                *out.lock().unwrap() = Some(r.is_ok());
            })
            .unwrap();
        let summary = world.run().unwrap();
        let won = outcome.lock().unwrap().take().expect("the workload ran");
        (won, summary.fingerprint)
    };
    let mut outcomes = std::collections::BTreeSet::new();
    for seed in 0..seeds_or(64) {
        let first = run(seed);
        assert_eq!(first, run(seed), "seed {seed} twice");
        outcomes.insert(first.0);
    }
    assert_eq!(
        outcomes.len(),
        2,
        "same-instant scheduling explores: both the value and the timeout happen over 64 seeds"
    );
}

/// Twenty thousand tasks each sleep until one instant; all wake there, in a seeded order.
#[test]
fn test_twenty_thousand_timers_at_one_instant_all_fire_there() {
    let run = |seed: u64| {
        let mut world = quiet(seed);
        let woke = Arc::new(AtomicU64::new(0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let (w, o) = (Arc::clone(&woke), Arc::clone(&order));
        world
            .add_workload("many", "10.0.0.1", move |p| async move {
                let mut handles = Vec::new();
                for i in 0..20_000u64 {
                    let time = p.time().clone();
                    let (w, o) = (Arc::clone(&w), Arc::clone(&o));
                    handles.push(p.task().spawn("sleeper", async move {
                        time.sleep(Duration::from_millis(7)).await;
                        assert_eq!(time.now(), Duration::from_millis(7));
                        w.fetch_add(1, Ordering::Relaxed);
                        if i < 16 {
                            o.lock().unwrap().push(i);
                        }
                    }));
                }
                for handle in handles {
                    handle.await.unwrap();
                }
            })
            .unwrap();
        let summary = world.run().unwrap();
        assert_eq!(woke.load(Ordering::Relaxed), 20_000);
        assert_eq!(summary.sim_time, Duration::from_millis(7));
        let order = order.lock().unwrap().clone();
        (key(&summary), order)
    };
    let a = run(3);
    assert_eq!(a, run(3), "the same seed twice");
    let b = run(4);
    assert_ne!(
        a.1, b.1,
        "two seeds wake the same-instant sleepers in different orders"
    );
}

/// One task holds a hundred thousand sleeps due at one instant, polled through one poll_fn.
#[test]
fn test_one_task_with_a_hundred_thousand_sleeps_at_one_instant() {
    let mut world = quiet(8);
    world
        .add_workload("hoarder", "10.0.0.1", |p| async move {
            let time = p.time().clone();
            let mut sleeps: Vec<_> = (0..100_000)
                .map(|_| Some(Box::pin(time.sleep(Duration::from_secs(1)))))
                .collect();
            let mut left = sleeps.len();
            poll_fn(|cx: &mut Context<'_>| {
                for entry in &mut sleeps {
                    if let Some(sleep) = entry
                        && sleep.as_mut().poll(cx).is_ready()
                    {
                        *entry = None;
                        left -= 1;
                    }
                }
                if left == 0 {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
            assert_eq!(time.now(), Duration::from_secs(1));
        })
        .unwrap();
    let summary = world.run().unwrap();
    assert_eq!(summary.sim_time, Duration::from_secs(1));
}

/// A sleep that ends exactly at the time budget runs; one nanosecond later is over budget, and
/// the verdict names the sleeping task.
#[test]
fn test_a_sleep_to_the_exact_budget_runs_and_one_nanosecond_past_is_over_budget() {
    let world_with = |sleep: Duration| {
        let mut config = WorldConfig::quiet();
        config.time_budget = Duration::from_secs(2);
        let mut world = SimWorld::with_config(1, config).unwrap();
        world
            .add_workload("edge", "10.0.0.1", move |p| async move {
                p.time().sleep(sleep).await;
            })
            .unwrap();
        world
    };
    let summary = run_caught(world_with(Duration::from_secs(2)))
        .unwrap()
        .unwrap();
    assert_eq!(summary.sim_time, Duration::from_secs(2));
    let error = run_caught(world_with(Duration::from_secs(2) + Duration::from_nanos(1)))
        .unwrap()
        .unwrap_err();
    match &error {
        SimError::TimeBudgetExceeded { budget, live, .. } => {
            assert_eq!(*budget, Duration::from_secs(2));
            assert!(live.iter().any(|t| t.contains("edge")), "{live:?}");
        }
        other => panic!("expected the budget verdict, got {other}"),
    }
}

/// With no budget to speak of (`Duration::MAX`), a sleep of `Duration::MAX` is "never": the run
/// ends with a verdict naming the sleeper, it does not wrap the clock or panic.
#[test]
fn test_a_never_sleep_under_an_unbounded_budget_is_a_verdict() {
    let mut config = WorldConfig::quiet();
    config.time_budget = Duration::MAX;
    let mut world = SimWorld::with_config(2, config).unwrap();
    world
        .add_workload("forever", "10.0.0.1", |p| async move {
            p.time().sleep(Duration::MAX).await;
        })
        .unwrap();
    let outcome = run_caught(world).expect("no panic out of run");
    match outcome {
        Err(SimError::Deadlock { stuck, .. }) => {
            assert!(stuck.iter().any(|t| t.contains("forever")), "{stuck:?}");
        }
        Err(SimError::TimeBudgetExceeded { live, .. }) => {
            assert!(live.iter().any(|t| t.contains("forever")), "{live:?}");
        }
        Ok(summary) => {
            // Reaching the end of the clock is acceptable only if the clock did not wrap.
            assert!(summary.sim_time >= Duration::from_secs(500 * 365 * 86_400));
        }
        Err(other) => panic!("unexpected verdict {other}"),
    }
}

/// A sleep of almost all of the clock's range made after time has passed saturates; a timer read
/// after it does not overflow; sleeps of 1 ns in a loop at the clock's end are a verdict.
#[test]
fn test_sleeps_at_the_end_of_the_clock_saturate() {
    let mut config = WorldConfig::quiet();
    config.time_budget = Duration::MAX;
    config.clock.drift_max = Duration::from_millis(100);
    let mut world = SimWorld::with_config(3, config).unwrap();
    let reached = Arc::new(Mutex::new(None));
    let r = Arc::clone(&reached);
    world
        .add_workload("edge", "10.0.0.1", move |p| async move {
            let time = p.time().clone();
            time.sleep(Duration::from_secs(1)).await;
            time.sleep(Duration::from_nanos(u64::MAX - 5)).await;
            let now = time.now();
            let timer = time.timer();
            *r.lock().unwrap() = Some((now, timer));
            for _ in 0..10 {
                time.sleep(Duration::from_nanos(1)).await;
            }
        })
        .unwrap();
    let outcome = run_caught(world).expect("no panic out of run");
    let (now, timer) = reached.lock().unwrap().expect("the long sleep ended");
    assert_eq!(
        now,
        Duration::from_nanos(u64::MAX),
        "saturated, not wrapped"
    );
    assert!(timer >= now);
    // Ten more sleeps at the saturated instant: a success at the end of time or a verdict.
    if let Ok(summary) = outcome {
        assert_eq!(summary.sim_time, Duration::from_nanos(u64::MAX));
    }
}

/// A foreign waker whose wake drops another sleep (as an inner executor that drops a task when
/// it is woken after it shut down would). The engine fires timers while it holds the world's
/// state; the dropped sleep must still be released, without a panic out of `run`.
#[test]
fn test_a_sleep_dropped_inside_a_timers_wake_is_harmless() {
    let mut world = quiet(5);
    let victim: Slot<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>> = slot();
    let v = Arc::clone(&victim);
    world
        .add_workload("dropper", "10.0.0.1", move |p| async move {
            let time = p.time().clone();
            let other = time.clone();
            // The victim: a sleep registered with the world by a task of its own.
            let v2 = Arc::clone(&v);
            let holder = p.task().spawn("holder", async move {
                let mut sleep: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> =
                    Box::pin(other.sleep(Duration::from_secs(5)));
                poll_fn(|cx| {
                    let _ = sleep.as_mut().poll(cx);
                    Poll::Ready(())
                })
                .await;
                *v2.lock().unwrap() = Some(sleep);
            });
            holder.await.unwrap();
            let v3 = Arc::clone(&v);
            let drop_victim: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
                drop(v3.lock().unwrap().take());
            });
            let mut mine = Box::pin(time.sleep(Duration::from_millis(3)));
            poll_fn(|cx| {
                let waker = on_wake(cx.waker(), Arc::clone(&drop_victim));
                mine.as_mut().poll(&mut Context::from_waker(&waker))
            })
            .await;
            assert!(v.lock().unwrap().is_none(), "the wake dropped the victim");
        })
        .unwrap();
    let outcome = run_caught(world);
    let summary = outcome
        .expect("no panic out of SimWorld::run")
        .expect("the run ends well");
    assert_eq!(summary.sim_time, Duration::from_millis(3));
}

/// A foreign waker whose wake reads the process's drifting timer (a world access) while the
/// timer that woke it is being fired.
#[test]
fn test_a_drifting_timer_read_inside_a_timers_wake_is_harmless() {
    let mut config = WorldConfig::quiet();
    config.clock.drift_max = Duration::from_millis(50);
    let mut world = SimWorld::with_config(6, config).unwrap();
    world
        .add_workload("reader", "10.0.0.1", |p| async move {
            let time = p.time().clone();
            let reader = time.clone();
            let read: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
                let _ = reader.timer();
            });
            let mut mine = Box::pin(time.sleep(Duration::from_millis(3)));
            poll_fn(|cx| {
                let waker = on_wake(cx.waker(), Arc::clone(&read));
                mine.as_mut().poll(&mut Context::from_waker(&waker))
            })
            .await;
        })
        .unwrap();
    let summary = run_caught(world)
        .expect("no panic out of SimWorld::run")
        .expect("the run ends well");
    assert_eq!(summary.sim_time, Duration::from_millis(3));
}

/// A foreign waker whose wake spawns a task (an inner executor scheduling work on the outer
/// one) and another that wakes its task a second time: both are fine.
#[test]
fn test_a_spawn_inside_a_timers_wake_runs() {
    let ran = Arc::new(AtomicU64::new(0));
    let r = Arc::clone(&ran);
    let mut world = quiet(7);
    world
        .add_workload("spawner", "10.0.0.1", move |p| async move {
            let time = p.time().clone();
            let tasks = p.task().clone();
            let r2 = Arc::clone(&r);
            let spawn: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
                let r3 = Arc::clone(&r2);
                drop(tasks.spawn("from-wake", async move {
                    r3.fetch_add(1, Ordering::SeqCst);
                }));
            });
            let mut mine = Box::pin(time.sleep(Duration::from_millis(3)));
            poll_fn(|cx| {
                let waker = on_wake(cx.waker(), Arc::clone(&spawn));
                mine.as_mut().poll(&mut Context::from_waker(&waker))
            })
            .await;
            time.sleep(Duration::from_millis(1)).await;
        })
        .unwrap();
    let summary = run_caught(world)
        .expect("no panic out of SimWorld::run")
        .expect("the run ends well");
    assert_eq!(summary.sim_time, Duration::from_millis(4));
    assert!(ran.load(Ordering::SeqCst) >= 1);
}

/// `drift_max` of `Duration::MAX`: refused up front, or a timer that saturates; never a panic
/// inside the provider (`now + drift_max` overflows).
#[test]
fn test_a_drift_max_of_duration_max_is_refused_or_saturates() {
    let mut config = WorldConfig::quiet();
    config.clock.drift_max = Duration::MAX;
    let Ok(mut world) = SimWorld::with_config(1, config) else {
        return; // refused up front: fine
    };
    world
        .add_workload("drifter", "10.0.0.1", |p| async move {
            let time = p.time().clone();
            time.sleep(Duration::from_millis(1)).await;
            let timer = time.timer();
            assert!(timer >= time.now());
        })
        .unwrap();
    let outcome = run_caught(world).expect("no panic out of run");
    outcome.expect("a timer read with a huge drift bound saturates");
}

/// The same through the runner: the setup check names `drift_max`, or every seed passes.
#[test]
fn test_the_runner_refuses_a_drift_max_of_duration_max_or_runs_it() {
    let mut clock = ClockConfiguration::disabled();
    clock.drift_max = Duration::MAX;
    let result = SimulationBuilder::new("drift-max")
        .world_config(WorldConfig::quiet())
        .clock(clock)
        .progress(false)
        .seeds([1, 2, 3])
        .workload("drifter", 1, |ctx| async move {
            let time = ctx.providers.time().clone();
            time.sleep(Duration::from_millis(1)).await;
            let _ = time.timer();
            Ok(())
        })
        .run();
    match result {
        Err(error) => assert!(error.to_string().contains("drift_max"), "{error}"),
        Ok(report) => assert_eq!(report.failed(), 0, "{report}"),
    }
}

/// `SimWorld::with_config` "fails naming the first invalid setting", as the runner does: a clock
/// probability out of [0, 1] (NaN included) and a buggify probability out of [0, 1].
#[test]
fn test_a_bare_world_refuses_bad_clock_and_buggify_probabilities() {
    for p in [f64::NAN, 2.0, -0.5, f64::INFINITY] {
        let mut config = WorldConfig::quiet();
        config.clock.sleep_delay_probability = p;
        config.clock.sleep_delay_max = Duration::from_millis(1);
        let error = SimWorld::with_config(1, config)
            .err()
            .unwrap_or_else(|| panic!("sleep_delay_probability {p} accepted"));
        assert!(
            error.to_string().contains("sleep_delay_probability"),
            "{error}"
        );
        let mut config = WorldConfig::quiet();
        config.buggify.enabled = true;
        config.buggify.site_activation_probability = p;
        let error = SimWorld::with_config(1, config)
            .err()
            .unwrap_or_else(|| panic!("site_activation_probability {p} accepted"));
        assert!(
            error.to_string().contains("site_activation_probability"),
            "{error}"
        );
    }
}

/// Buggified sleep delays at their extremes: probability 1 and a maximum of `Duration::MAX`
/// saturate instead of overflowing, and stay deterministic.
#[test]
fn test_sleep_delays_of_duration_max_at_probability_one_saturate() {
    let run = |seed: u64| {
        let mut config = WorldConfig::quiet();
        config.clock.sleep_delay_probability = 1.0;
        config.clock.sleep_delay_max = Duration::MAX;
        config.time_budget = Duration::MAX;
        let mut world = SimWorld::with_config(seed, config).unwrap();
        let done = Arc::new(AtomicU64::new(0));
        let d = Arc::clone(&done);
        world
            .add_workload("delayed", "10.0.0.1", move |p| async move {
                let time = p.time().clone();
                for _ in 0..3 {
                    let before = time.now();
                    time.sleep(Duration::from_millis(1)).await;
                    assert!(time.now() >= before);
                    d.fetch_add(1, Ordering::SeqCst);
                }
            })
            .unwrap();
        let outcome = run_caught(world).expect("no panic out of run");
        (
            outcome.map(|s| key(&s)).map_err(|e| e.to_string()),
            done.load(Ordering::SeqCst),
        )
    };
    for seed in 0..seeds_or(8) {
        assert_eq!(run(seed), run(seed), "seed {seed} twice");
    }
}

/// Drift at a large but representable bound (a day) stays within it and never goes back.
#[test]
fn test_a_day_of_drift_stays_within_its_bound_and_is_deterministic() {
    let run = |seed: u64| {
        let mut config = WorldConfig::quiet();
        config.clock.drift_max = Duration::from_secs(86_400);
        let mut world = SimWorld::with_config(seed, config).unwrap();
        let reads = Arc::new(Mutex::new(Vec::new()));
        let r = Arc::clone(&reads);
        world
            .add_workload("drifter", "10.0.0.1", move |p| async move {
                let time = p.time().clone();
                let mut last = Duration::ZERO;
                for _ in 0..200 {
                    let timer = time.timer();
                    assert!(timer >= last, "the timer never goes back");
                    assert!(timer >= time.now());
                    assert!(timer <= time.now() + Duration::from_secs(86_400));
                    last = timer;
                    r.lock().unwrap().push(timer);
                    time.sleep(Duration::from_millis(3)).await;
                }
            })
            .unwrap();
        let summary = world.run().unwrap();
        let reads = reads.lock().unwrap().clone();
        (key(&summary), reads)
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11).1, run(12).1);
}
