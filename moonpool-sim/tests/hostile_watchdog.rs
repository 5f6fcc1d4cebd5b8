//! Hostile use of the watchdog after the per-thread reuse of world parts: its per-thread posts
//! after reused and panicked worlds, nested worlds, worlds whose run panicked out, bad
//! `MOONPOOL_WATCHDOG_SECS` values and a zero `watchdog_stall`, each in a child process.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use moonpool_core::{Providers, TaskProvider, TimeProvider};
use moonpool_sim::{IterationControl, SimWorld, SimulationBuilder, WorldConfig};

mod child;
mod hostile_common;

use child::{WATCHDOG_EXIT_CODE, is_child, spin_for};

use hostile_common::*;

// ---------------------------------------------------------------------------------------------
// The watchdog's per-thread posts after reuse, panics and nesting, in child processes: each
// `child_*` case is ignored and a no-op unless `MOONPOOL_WATCHDOG_CHILD=1`; its test re-runs this
// binary on that one case and checks how the child ended.

/// Runs the ignored case `name` in a child (see `child::run_child`): its exit code and stderr.
fn run_child(name: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let child = child::run_child(name, env);
    (child.status.code(), child.stderr)
}

#[test]
#[ignore = "a child of test_watchdog_catches_a_spin_after_panicked_and_reused_worlds"]
fn child_spin_after_panicked_worlds() {
    if !is_child() {
        return;
    }
    // On this thread: a world whose workload panics, one whose task panics in Drop, then a
    // runner on two workers whose 60th seed spins.
    let mut first = SimWorld::with_config(1, config(false)).unwrap();
    first
        .add_workload("boom", "10.0.0.1", |_| async { panic!("workload panics") })
        .unwrap();
    let _ = first.run();
    drop(first);
    let mut second = echo_world(2, false);
    second
        .add_workload("dropper", "10.0.0.3", |providers| async move {
            drop(providers.task().spawn("panics-on-drop", async move {
                let guard = PanicsOnDrop;
                std::future::pending::<()>().await;
                drop(guard);
            }));
        })
        .unwrap();
    let _ = second.run();
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(second)));
    let result = SimulationBuilder::new("hostile-watchdog")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .seeds(1..=60)
        .iterations(IterationControl::FixedCount(60))
        .jobs(2)
        .workload("spinner", 1, |ctx| async move {
            ctx.providers.time().sleep(Duration::from_millis(1)).await;
            if ctx.seed() % 7 == 3 {
                panic!("a seed's workload panics");
            }
            if ctx.seed() == 60 {
                spin_for(Duration::from_secs(3_600));
            }
            Ok(())
        })
        .run();
    panic!(
        "the watchdog should have ended the process: {:?}",
        result.map(|r| r.seeds_run())
    );
}

#[test]
fn test_watchdog_catches_a_spin_after_panicked_and_reused_worlds() {
    let (code, stderr) = run_child(
        "child_spin_after_panicked_worlds",
        &[("MOONPOOL_WATCHDOG_SECS", "1")],
    );
    assert_eq!(code, Some(WATCHDOG_EXIT_CODE), "{stderr}");
    assert!(
        stderr.contains("moonpool watchdog: seed 60: task 'spinner-0/"),
        "{stderr}"
    );
    assert!(stderr.contains("replay: MOONPOOL_SEED=60"), "{stderr}");
}

#[test]
#[ignore = "a child of test_watchdog_catches_the_last_of_many_nested_worlds"]
fn child_many_nested_worlds_then_a_spin() {
    if !is_child() {
        return;
    }
    let mut outer = echo_world(70, false);
    outer
        .add_workload("outer", "10.0.0.9", |providers| async move {
            for seed in 0..100u64 {
                let _ = echo_run(1_000 + seed, seed % 2 == 0);
                providers.time().sleep(Duration::from_millis(1)).await;
            }
            let mut inner = SimWorld::with_config(4_242, WorldConfig::quiet()).unwrap();
            inner
                .add_workload("inner", "10.0.0.2", |providers| async move {
                    providers.time().sleep(Duration::from_millis(5)).await;
                    spin_for(Duration::from_secs(3_600));
                })
                .unwrap();
            let _ = inner.run();
        })
        .unwrap();
    let result = outer.run();
    panic!("the watchdog should have ended the process: {result:?}");
}

#[test]
fn test_watchdog_catches_the_last_of_many_nested_worlds() {
    let (code, stderr) = run_child(
        "child_many_nested_worlds_then_a_spin",
        &[("MOONPOOL_WATCHDOG_SECS", "1")],
    );
    assert_eq!(code, Some(WATCHDOG_EXIT_CODE), "{stderr}");
    assert!(
        stderr.contains("seed 4242: task 'inner/inner'") || stderr.contains("seed 70: task"),
        "{stderr}"
    );
}

#[test]
#[ignore = "a child of test_watchdog_bad_values_are_reported_by_name"]
fn child_short_world() {
    if !is_child() {
        return;
    }
    echo_world(9, true).run().unwrap();
}

#[test]
#[ignore = "a child of the watchdog's limit tests"]
fn child_spins_three_seconds() {
    if !is_child() {
        return;
    }
    let mut world = SimWorld::with_config(9, WorldConfig::quiet()).unwrap();
    world
        .add_workload("spinner", "10.0.0.1", |providers| async move {
            providers.time().sleep(Duration::from_millis(1)).await;
            spin_for(Duration::from_secs(3));
        })
        .unwrap();
    world.run().unwrap();
}

/// A bad `MOONPOOL_WATCHDOG_SECS` is reported, naming the value, and the run goes on.
#[test]
fn test_watchdog_bad_values_are_reported_by_name() {
    for value in [
        "-1", "abc", " 1", "1s", "1e3", ".5", "1.", "nan", "inf", "1_000",
    ] {
        let (code, stderr) = run_child("child_short_world", &[("MOONPOOL_WATCHDOG_SECS", value)]);
        assert_eq!(code, Some(0), "{value:?}: {stderr}");
        assert!(
            stderr.contains(&format!("MOONPOOL_WATCHDOG_SECS='{value}'")),
            "{value:?} not named: {stderr}"
        );
    }
}

/// A limit too small to be one nanosecond is not "off": the documented off value is 0 only.
#[test]
fn test_watchdog_limit_below_a_nanosecond_is_not_silently_off() {
    let (code, stderr) = run_child(
        "child_spins_three_seconds",
        &[("MOONPOOL_WATCHDOG_SECS", "0.0000000001")],
    );
    // Either rejected by name or a (tiny) limit that catches the spin; never silently off.
    assert!(
        code == Some(WATCHDOG_EXIT_CODE)
            || stderr.contains("MOONPOOL_WATCHDOG_SECS='0.0000000001' is below a nanosecond"),
        "{code:?}: {stderr}"
    );
}

/// A limit past what a `Duration` holds is reported, not a panic.
#[test]
fn test_watchdog_limit_past_a_duration_is_reported() {
    let (code, stderr) = run_child(
        "child_short_world",
        &[("MOONPOOL_WATCHDOG_SECS", "99999999999999999999999999")],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("MOONPOOL_WATCHDOG_SECS='9999"), "{stderr}");
}

/// A world that keeps polling for `wall` of wall time, every poll short.
fn busy_but_healthy(seed: u64, wall: Duration) -> SimWorld {
    let mut world = SimWorld::with_config(seed, WorldConfig::quiet()).unwrap();
    world
        .add_workload("healthy", "10.0.0.1", move |providers| async move {
            let started = std::time::Instant::now();
            while started.elapsed() < wall {
                spin_for(Duration::from_millis(2));
                providers.time().sleep(Duration::from_millis(1)).await;
            }
        })
        .unwrap();
    world
}

#[test]
#[ignore = "a child of test_watchdog_forgets_worlds_whose_run_panicked_out"]
fn child_after_panics_out_of_runs() {
    if !is_child() {
        return;
    }
    // A step hook that panics: the panic leaves `run` itself.
    let mut world = echo_world(3, false);
    world.set_step_hook(Box::new(|| panic!("a step hook panics")));
    let escaped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| world.run()));
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(world)));
    // A runner whose invariant panics on some seeds.
    let runner = std::panic::catch_unwind(|| {
        SimulationBuilder::new("hostile-invariant")
            .world_config(WorldConfig::quiet())
            .progress(false)
            .seeds(1..=6)
            .iterations(IterationControl::FixedCount(6))
            .jobs(1)
            .workload("w", 1, |ctx| async move {
                ctx.providers.time().sleep(Duration::from_millis(1)).await;
                Ok(())
            })
            .invariant("panics", |_| panic!("an invariant panics"))
            .run()
            .map(|report| report.failed())
    });
    eprintln!("step hook: {:?}; runner: {runner:?}", escaped.is_err());
    // Then worlds that run longer than the watchdog's limit, each poll short: not stalled.
    busy_but_healthy(5, Duration::from_millis(1_600))
        .run()
        .unwrap();
    eprintln!("healthy world done");
}

#[test]
fn test_watchdog_forgets_worlds_whose_run_panicked_out() {
    let (code, stderr) = run_child(
        "child_after_panics_out_of_runs",
        &[("MOONPOOL_WATCHDOG_SECS", "1")],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("healthy world done"), "{stderr}");
}

/// The determinism check (every seed run twice) with swarm chaos, on two workers whose worlds
/// reuse each other's parts: no seed differs from its own second run, and the fingerprints are
/// those of one job.
#[test]
fn test_the_determinism_check_passes_on_reused_workers_under_chaos() {
    fn report(jobs: usize) -> Vec<(u64, u64, bool)> {
        let report = SimulationBuilder::new("hostile-determinism")
            .world_config(config(true))
            .progress(false)
            .seeds(500..520)
            .iterations(IterationControl::FixedCount(20))
            .jobs(jobs)
            .check_determinism(true)
            .enable_chaos([moonpool_sim::Chaos::Network, moonpool_sim::Chaos::Buggify])
            .process("server", 1, |ctx| server(ctx.providers))
            .workload("client", 1, |ctx| async move {
                client(ctx.providers.clone()).await;
                Ok(())
            })
            .run()
            .unwrap();
        for outcome in report.failures() {
            assert!(
                !outcome
                    .failure
                    .as_deref()
                    .unwrap_or("")
                    .to_lowercase()
                    .contains("determinis"),
                "seed {}: {:?}",
                outcome.seed,
                outcome.failure
            );
        }
        report
            .seeds
            .iter()
            .map(|o| (o.seed, o.fingerprint, o.failure.is_some()))
            .collect()
    }
    let two = fresh(|| report(2));
    let one = fresh(|| report(1));
    assert_eq!(two, one);
}

#[test]
#[ignore = "a child of test_failed_seeds_replay_with_moonpool_seed_to_their_fingerprints"]
fn child_flaky_runner() {
    if !is_child() {
        return;
    }
    let report = flaky_report((1_000..1_060).collect(), 2);
    for outcome in &report.seeds {
        eprintln!(
            "OUTCOME {} {} {}",
            outcome.seed,
            outcome.fingerprint,
            outcome.failure.is_some()
        );
    }
}

/// The replay command's way: `MOONPOOL_SEED=<seed>` on the same runner (in a child process)
/// runs that one seed, to the fingerprint and verdict it had among the others on two reused
/// workers.
#[test]
fn test_failed_seeds_replay_with_moonpool_seed_to_their_fingerprints() {
    let report = fresh(|| flaky_report((1_000..1_060).collect(), 2));
    let failed: Vec<_> = report.failures().take(3).collect();
    assert!(!failed.is_empty());
    for outcome in failed {
        let seed = outcome.seed.to_string();
        let (code, stderr) = run_child("child_flaky_runner", &[("MOONPOOL_SEED", &seed)]);
        assert_eq!(code, Some(0), "{stderr}");
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("OUTCOME "))
            .collect();
        assert_eq!(
            lines,
            vec![format!(
                "OUTCOME {} {} true",
                outcome.seed, outcome.fingerprint
            )],
            "{stderr}"
        );
        assert!(
            outcome
                .replay
                .as_deref()
                .unwrap_or("")
                .contains(&format!("MOONPOOL_SEED={seed}")),
            "{:?}",
            outcome.replay
        );
    }
}

/// A dropped world's waker woken over and over from another thread while the next world runs on
/// the dropped world's thread: the next world is what it is on a fresh thread.
#[test]
fn test_a_dropped_worlds_waker_hammered_from_another_thread() {
    let expected = fresh_echo(&SEEDS, true);
    let got = fresh(|| {
        let leaks = leaky_world(false);
        let waker = leaks.waker.expect("the leaked waker");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hammer = {
            let stop = Arc::clone(&stop);
            let started = Arc::clone(&started);
            std::thread::spawn(move || {
                let mut wakes = 0u64;
                loop {
                    waker.wake_by_ref();
                    wakes += 1;
                    started.store(true, std::sync::atomic::Ordering::Release);
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                }
                drop(waker);
                wakes
            })
        };
        // The runs start once the hammer does (on a loaded machine its thread may start late).
        while !started.load(std::sync::atomic::Ordering::Acquire) {
            std::thread::yield_now();
        }
        drop(leaks.join);
        let runs: Vec<String> = SEEDS.iter().map(|&s| echo_run(s, true)).collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let wakes = hammer.join().unwrap();
        assert!(wakes > 0);
        runs
    });
    assert_eq!(expected, got);
}

#[test]
#[ignore = "a child of test_a_zero_watchdog_stall_in_the_config_is_an_error_or_off"]
fn child_zero_config_stall() {
    if !is_child() {
        return;
    }
    let mut config = WorldConfig::quiet();
    config.watchdog_stall = Some(Duration::ZERO);
    match SimWorld::with_config(3, config) {
        Err(error) => eprintln!("REJECTED {error}"),
        Ok(mut world) => {
            world
                .add_workload("healthy", "10.0.0.1", |providers| async move {
                    for _ in 0..200 {
                        spin_for(Duration::from_millis(2));
                        providers.time().sleep(Duration::from_millis(1)).await;
                    }
                })
                .unwrap();
            world.run().unwrap();
            eprintln!("RAN");
        }
    }
}

/// `watchdog_stall: Some(0)` is a configuration mistake: rejected by name, or taken as off like
/// `MOONPOOL_WATCHDOG_SECS=0`; it must not end a healthy run.
#[test]
fn test_a_zero_watchdog_stall_in_the_config_is_an_error_or_off() {
    let (code, stderr) = run_child("child_zero_config_stall", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("REJECTED") && stderr.contains("watchdog_stall is Some(0s)"),
        "{stderr}"
    );
}
