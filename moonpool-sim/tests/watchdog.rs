//! The wall-clock watchdog, in real processes: each test re-runs this test binary as a child
//! that runs one `child_*` case (ignored, and a no-op unless `MOONPOOL_WATCHDOG_CHILD=1`), then
//! checks how the child ended and what it wrote to stderr.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use moonpool_core::{Providers, TimeProvider};
use moonpool_sim::{IterationControl, SimWorld, SimulationBuilder, WorldConfig};

mod child;

use child::{assert_contains, assert_watchdog_exit, is_child, run_child, spin_for};

/// The replay command given to the runner in `child_runner_spin`.
const RUNNER_REPLAY: &str = "MOONPOOL_SEED={seed} replay-the-watchdog-runner-test";

fn quiet_world(seed: u64) -> SimWorld {
    SimWorld::with_config(seed, WorldConfig::quiet()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// A task spinning inside one poll

#[test]
#[ignore = "a child of test_watchdog_ends_a_task_spinning_inside_one_poll"]
fn child_spinning_poll() {
    if !is_child() {
        return;
    }
    let mut world = quiet_world(42);
    world
        .add_workload("client", "10.0.0.1", |providers| async move {
            providers.time().sleep(Duration::from_millis(5)).await;
            #[allow(clippy::empty_loop)]
            loop {
                std::hint::spin_loop();
            }
        })
        .unwrap();
    let result = world.run();
    panic!("the watchdog should have ended the process; the run returned {result:?}");
}

#[test]
fn test_watchdog_ends_a_task_spinning_inside_one_poll() {
    let child = run_child("child_spinning_poll", &[("MOONPOOL_WATCHDOG_SECS", "1")]);
    assert_watchdog_exit(&child);
    assert_contains(
        &child,
        &[
            "moonpool watchdog: seed 42: task 'client/client' has run inside one poll for at least",
            "without returning to the executor",
            "replay: MOONPOOL_SEED=42",
        ],
    );
    // Noticed within a tick or two of the limit (plus the child's start-up).
    assert!(child.wall < Duration::from_secs(20), "{:?}", child.wall);
}

// ---------------------------------------------------------------------------------------------
// Through the runner, with parallel seeds

#[test]
#[ignore = "a child of test_watchdog_names_a_seed_of_the_runner"]
fn child_runner_spin() {
    if !is_child() {
        return;
    }
    let result = SimulationBuilder::new("watchdog-runner")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .seeds([7, 8])
        .iterations(IterationControl::FixedCount(2))
        .jobs(2)
        .replay_command(RUNNER_REPLAY)
        .workload("spinner", 1, |ctx| async move {
            for _ in 0..3 {
                ctx.providers.time().sleep(Duration::from_millis(1)).await;
            }
            if ctx.seed() == 8 {
                spin_for(Duration::from_secs(3600));
            }
            Ok(())
        })
        .run();
    panic!(
        "the watchdog should have ended the process; the runner returned {:?}",
        result.map(|report| report.seeds_run())
    );
}

#[test]
fn test_watchdog_names_a_seed_of_the_runner() {
    let child = run_child("child_runner_spin", &[("MOONPOOL_WATCHDOG_SECS", "1")]);
    assert_watchdog_exit(&child);
    assert_contains(
        &child,
        &[
            "moonpool watchdog: seed 8: task 'spinner-0/",
            "has run inside one poll",
            "replay: MOONPOOL_SEED=8",
        ],
    );
    assert!(!child.stderr.contains("seed 7:"), "{}", child.stderr);
    // The runner's own replay command, not a bare seed.
    assert_contains(
        &child,
        &["replay: MOONPOOL_SEED=8 replay-the-watchdog-runner-test"],
    );
}

// ---------------------------------------------------------------------------------------------
// A world thread stuck outside every poll

#[test]
#[ignore = "a child of test_watchdog_names_a_world_stuck_outside_any_poll"]
fn child_slow_invariant() {
    if !is_child() {
        return;
    }
    let once = Arc::new(AtomicBool::new(false));
    let result = SimulationBuilder::new("watchdog-invariant")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .seeds([5])
        .iterations(IterationControl::FixedCount(1))
        .jobs(1)
        .invariant("slow", move |_state| {
            if !once.swap(true, Ordering::SeqCst) {
                std::thread::sleep(Duration::from_secs(30));
            }
            Ok(())
        })
        .workload("sleeper", 1, |ctx| async move {
            ctx.providers.time().sleep(Duration::from_millis(10)).await;
            Ok(())
        })
        .run();
    panic!(
        "the watchdog should have ended the process; the runner returned {:?}",
        result.map(|report| report.seeds_run())
    );
}

#[test]
fn test_watchdog_names_a_world_stuck_outside_any_poll() {
    let child = run_child("child_slow_invariant", &[("MOONPOOL_WATCHDOG_SECS", "1")]);
    assert_watchdog_exit(&child);
    assert_contains(
        &child,
        &[
            "moonpool watchdog: seed 5: the world's thread has made no progress",
            "no task is being polled",
            "replay: MOONPOOL_SEED=5",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// A healthy run, the override, a bad value

#[test]
#[ignore = "a child of test_watchdog_quiet_for_a_healthy_run"]
fn child_healthy() {
    if !is_child() {
        return;
    }
    let mut world = quiet_world(3);
    world
        .add_workload("worker", "10.0.0.1", |providers| async move {
            for i in 0..500u32 {
                providers.time().sleep(Duration::from_millis(1)).await;
                // Real work in every poll, and now and then a long poll, still under the limit.
                std::thread::sleep(Duration::from_millis(2));
                if i % 200 == 100 {
                    std::thread::sleep(Duration::from_millis(400));
                }
            }
        })
        .unwrap();
    world.run().unwrap();
}

#[test]
fn test_watchdog_quiet_for_a_healthy_run() {
    let child = run_child("child_healthy", &[("MOONPOOL_WATCHDOG_SECS", "1")]);
    assert!(
        child.status.success(),
        "{}:\n{}",
        child.status,
        child.stderr
    );
    assert!(
        !child.stderr.contains("moonpool watchdog"),
        "{}",
        child.stderr
    );
    // Long enough that a watchdog firing on progress would have fired.
    assert!(child.wall > Duration::from_secs(1), "{:?}", child.wall);
}

/// A poll of 1.5 s under a configured stall limit of 0.3 s.
#[test]
#[ignore = "a child of the tests of the override"]
fn child_long_poll_under_config_limit() {
    if !is_child() {
        return;
    }
    let config = {
        let mut cfg = WorldConfig::quiet();
        cfg.watchdog_stall = Some(Duration::from_millis(300));
        cfg
    };
    let mut world = SimWorld::with_config(9, config).unwrap();
    world
        .add_workload("slow", "10.0.0.1", |providers| async move {
            providers.time().sleep(Duration::from_millis(1)).await;
            spin_for(Duration::from_millis(1500));
        })
        .unwrap();
    world.run().unwrap();
}

#[test]
fn test_watchdog_disabled_with_zero() {
    let child = run_child(
        "child_long_poll_under_config_limit",
        &[("MOONPOOL_WATCHDOG_SECS", "0")],
    );
    assert!(
        child.status.success(),
        "{}:\n{}",
        child.status,
        child.stderr
    );
    assert!(
        !child.stderr.contains("moonpool watchdog"),
        "{}",
        child.stderr
    );
}

#[test]
fn test_watchdog_bad_value_is_reported_and_the_config_limit_applies() {
    let child = run_child(
        "child_long_poll_under_config_limit",
        &[("MOONPOOL_WATCHDOG_SECS", "1e3")],
    );
    assert_watchdog_exit(&child);
    assert_contains(
        &child,
        &[
            "MOONPOOL_WATCHDOG_SECS='1e3' is not a non-negative number of seconds",
            "seed 9: task 'slow/slow' has run inside one poll",
            "limit: 0.3 s",
            "replay: MOONPOOL_SEED=9",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Memory

#[cfg(target_os = "linux")]
#[test]
#[ignore = "a child of test_memory_limit_names_the_seed"]
fn child_memory_hog() {
    if !is_child() {
        return;
    }
    let mut world = quiet_world(42);
    world
        .add_workload("hog", "10.0.0.1", |providers| async move {
            let mut kept: Vec<Vec<u8>> = Vec::new();
            // At most 2 GiB, paced so the watchdog (a look every 200 ms) sees the limit pass.
            for _ in 0..200 {
                kept.push(std::hint::black_box(vec![1u8; 10 << 20]));
                std::thread::sleep(Duration::from_millis(20));
                providers.time().sleep(Duration::from_millis(1)).await;
            }
            std::thread::sleep(Duration::from_secs(5));
            drop(kept);
        })
        .unwrap();
    let result = world.run();
    panic!("the watchdog should have ended the process; the run returned {result:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn test_memory_limit_names_the_seed() {
    let child = run_child("child_memory_hog", &[("MOONPOOL_MEMORY_LIMIT_MB", "300")]);
    assert_watchdog_exit(&child);
    assert_contains(
        &child,
        &[
            "above the limit of 300 MiB",
            "allocates without bound",
            "seed 42: replay: MOONPOOL_SEED=42",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Aborts

#[cfg(unix)]
#[test]
#[ignore = "a child of test_abort_names_the_seed"]
fn child_abort() {
    if !is_child() {
        return;
    }
    let mut world = quiet_world(42);
    world
        .add_workload("aborter", "10.0.0.1", |providers| async move {
            providers.time().sleep(Duration::from_millis(5)).await;
            std::process::abort();
        })
        .unwrap();
    let result = world.run();
    panic!("the process should have aborted; the run returned {result:?}");
}

#[cfg(unix)]
#[test]
fn test_abort_names_the_seed() {
    use std::os::unix::process::ExitStatusExt;
    let child = run_child("child_abort", &[]);
    assert_eq!(
        child.status.signal(),
        Some(libc::SIGABRT),
        "{}:\n{}",
        child.status,
        child.stderr
    );
    assert_contains(
        &child,
        &[
            "moonpool: the process aborted while running seed(s) 42",
            "seed 42: replay: MOONPOOL_SEED=42",
        ],
    );
}

#[cfg(all(unix, target_pointer_width = "64"))]
#[test]
#[ignore = "a child of test_failed_huge_allocation_names_the_seed"]
fn child_huge_allocation() {
    if !is_child() {
        return;
    }
    let mut world = quiet_world(43);
    world
        .add_workload("greedy", "10.0.0.1", |providers| async move {
            providers.time().sleep(Duration::from_millis(5)).await;
            // 4 EiB: under isize::MAX (so no capacity overflow panic) but more than any address
            // space, so the allocation fails and Rust aborts.
            let block: Vec<u8> = Vec::with_capacity(1 << 62);
            std::hint::black_box(&block);
        })
        .unwrap();
    let result = world.run();
    panic!("the allocation should have aborted the process; the run returned {result:?}");
}

#[cfg(all(unix, target_pointer_width = "64"))]
#[test]
fn test_failed_huge_allocation_names_the_seed() {
    use std::os::unix::process::ExitStatusExt;
    let child = run_child("child_huge_allocation", &[]);
    assert_eq!(
        child.status.signal(),
        Some(libc::SIGABRT),
        "{}:\n{}",
        child.status,
        child.stderr
    );
    assert_contains(
        &child,
        &[
            "memory allocation of 4611686018427387904 bytes failed",
            "moonpool: the process aborted while running seed(s) 43",
            "seed 43: replay: MOONPOOL_SEED=43",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// A world registered after the watchdog went idle (it is woken only then)

#[test]
#[ignore = "a child of test_watchdog_wakes_from_idle_for_a_later_world"]
fn child_spin_after_idle() {
    if !is_child() {
        return;
    }
    // A first, healthy run starts the watchdog thread; then no world is registered for several
    // ticks, so the thread sleeps without a timeout until the next registration wakes it.
    let mut first = quiet_world(1);
    first
        .add_workload("client", "10.0.0.1", |providers| async move {
            providers.time().sleep(Duration::from_millis(5)).await;
        })
        .unwrap();
    first.run().unwrap();
    std::thread::sleep(Duration::from_millis(1_000));
    let mut world = quiet_world(43);
    world
        .add_workload("client", "10.0.0.1", |providers| async move {
            providers.time().sleep(Duration::from_millis(5)).await;
            #[allow(clippy::empty_loop)]
            loop {
                std::hint::spin_loop();
            }
        })
        .unwrap();
    let result = world.run();
    panic!("the watchdog should have ended the process; the run returned {result:?}");
}

#[test]
fn test_watchdog_wakes_from_idle_for_a_later_world() {
    let child = run_child("child_spin_after_idle", &[("MOONPOOL_WATCHDOG_SECS", "1")]);
    assert_watchdog_exit(&child);
    assert_contains(
        &child,
        &["moonpool watchdog: seed 43: task 'client/client' has run inside one poll"],
    );
    assert!(child.wall < Duration::from_secs(20), "{:?}", child.wall);
}

// ---------------------------------------------------------------------------------------------
// Each worker thread lists its runs in its own post: a late seed, after many on the same
// threads, and a world run inside another world's task (listed apart) are still watched.

#[test]
#[ignore = "a child of test_watchdog_names_a_late_seed_on_reused_worker_threads"]
fn child_runner_spin_late() {
    if !is_child() {
        return;
    }
    let result = SimulationBuilder::new("watchdog-late")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .seeds(1..=400)
        .iterations(IterationControl::FixedCount(400))
        .jobs(2)
        .workload("spinner", 1, |ctx| async move {
            ctx.providers.time().sleep(Duration::from_millis(1)).await;
            if ctx.seed() == 400 {
                spin_for(Duration::from_secs(3600));
            }
            Ok(())
        })
        .run();
    panic!(
        "the watchdog should have ended the process; the runner returned {:?}",
        result.map(|report| report.seeds_run())
    );
}

#[test]
fn test_watchdog_names_a_late_seed_on_reused_worker_threads() {
    let child = run_child("child_runner_spin_late", &[("MOONPOOL_WATCHDOG_SECS", "1")]);
    assert_watchdog_exit(&child);
    assert_contains(
        &child,
        &[
            "moonpool watchdog: seed 400: task 'spinner-0/",
            "has run inside one poll",
            "replay: MOONPOOL_SEED=400",
        ],
    );
    assert!(child.wall < Duration::from_secs(30), "{:?}", child.wall);
}

#[test]
#[ignore = "a child of test_watchdog_names_a_world_run_inside_another_worlds_task"]
fn child_nested_world_spin() {
    if !is_child() {
        return;
    }
    let mut outer = quiet_world(50);
    outer
        .add_workload("outer", "10.0.0.1", |_providers| async move {
            let mut inner = quiet_world(51);
            inner
                .add_workload("inner", "10.0.0.2", |providers| async move {
                    providers.time().sleep(Duration::from_millis(5)).await;
                    spin_for(Duration::from_secs(3600));
                })
                .unwrap();
            let _ = inner.run();
        })
        .unwrap();
    let result = outer.run();
    panic!("the watchdog should have ended the process; the run returned {result:?}");
}

#[test]
fn test_watchdog_names_a_world_run_inside_another_worlds_task() {
    let child = run_child(
        "child_nested_world_spin",
        &[("MOONPOOL_WATCHDOG_SECS", "1")],
    );
    assert_watchdog_exit(&child);
    // Both worlds stand still; the report names the stuck seed, and the other one running.
    assert!(
        child
            .stderr
            .contains("moonpool watchdog: seed 51: task 'inner/inner'")
            || child
                .stderr
                .contains("moonpool watchdog: seed 50: task 'outer/outer'"),
        "{}",
        child.stderr
    );
    assert_contains(
        &child,
        &["also running in this process, unfinished: seed(s) 5"],
    );
    assert!(child.wall < Duration::from_secs(30), "{:?}", child.wall);
}
