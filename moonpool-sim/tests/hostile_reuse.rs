//! Hostile use of the per-thread reuse of world parts (`world/spare/`): worlds dropped before or
//! after their run with tasks, timers, connections and files open, worlds whose tasks panic
//! (also inside a `Drop`), handles of a dropped world used while a new world runs on the same
//! thread, nested worlds, two worlds alive at once, a huge world then a small one, and a runner
//! whose failed seeds are replayed. Every world after the attack is compared, by the whole
//! `Debug` of its run (fingerprint, counts, assertion table, event trace), with the same world
//! run on a fresh thread, whose spare is empty.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{
    OpenOptions, Providers, RandomProvider, StorageProvider, TaskProvider, TimeProvider,
};
use moonpool_sim::{Locality, SimWorld};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod hostile_common;

use hostile_common::*;

#[test]
fn test_a_world_dropped_before_its_run_leaves_nothing() {
    after(
        || {
            let world = echo_world(99, true);
            drop(world);
        },
        true,
    );
}

#[test]
fn test_a_world_dropped_after_its_run_with_everything_open_leaves_nothing() {
    after(
        || {
            let mut world = echo_world(98, true);
            world.run().unwrap();
            // A second world's worth of spawns after the run, never polled.
            drop(world);
        },
        false,
    );
}

#[test]
fn test_a_world_whose_workload_panics_leaves_nothing() {
    after(
        || {
            let mut world = SimWorld::with_config(5, config(false)).unwrap();
            world
                .add_process("server", "10.0.0.1", Locality::default(), |ctx| {
                    server(ctx.providers)
                })
                .unwrap();
            world
                .add_workload("client", "10.0.0.2", |providers| async move {
                    client(providers.clone()).await;
                    providers.time().sleep(Duration::from_millis(3)).await;
                    panic!("the workload itself panics");
                })
                .unwrap();
            let result = world.run();
            assert!(result.is_err(), "{result:?}");
        },
        false,
    );
}

#[test]
fn test_a_task_that_panics_in_drop_at_the_worlds_drop_leaves_nothing() {
    after(
        || {
            let mut world = echo_world(97, false);
            world
                .add_workload("dropper", "10.0.0.3", |providers| async move {
                    drop(providers.task().spawn("panics-on-drop", async move {
                        let guard = PanicsOnDrop;
                        std::future::pending::<()>().await;
                        drop(guard);
                    }));
                })
                .unwrap();
            let _ = world.run();
            // The pending task is dropped by the world's drop: its Drop panics there.
            let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                drop(world);
            }));
            // Whether the panic escapes the world's drop or not, the thread's next worlds
            // must be as on a fresh thread.
            let _ = dropped;
        },
        false,
    );
}

#[test]
fn test_a_task_that_panics_in_drop_when_it_ends_leaves_nothing() {
    after(
        || {
            let mut world = echo_world(96, false);
            world
                .add_workload("dropper", "10.0.0.3", |providers| async move {
                    let time = providers.time().clone();
                    drop(providers.task().spawn("panics-on-drop", async move {
                        let _guard = PanicsOnDrop;
                        time.sleep(Duration::from_millis(1)).await;
                    }));
                    providers.time().sleep(Duration::from_millis(5)).await;
                })
                .unwrap();
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| world.run()));
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(world)));
        },
        false,
    );
}

#[test]
fn test_a_dropped_worlds_waker_and_join_handle_reach_nothing_of_the_next() {
    leaks_used_after_drop(false);
}

#[test]
fn test_a_dropped_worlds_providers_reach_nothing_of_the_next() {
    leaks_used_after_drop(true);
}

/// An outer world whose workload runs an inner echo world inside one of its tasks (`same_thread`)
/// or on another thread (joined from the task), and reports both runs.
fn nested(same_thread: bool) -> (String, String) {
    let inner_out = Arc::new(Mutex::new(String::new()));
    let out = Arc::clone(&inner_out);
    let mut outer = echo_world(31, true);
    outer
        .add_workload("nester", "10.0.0.5", move |providers| async move {
            moonpool_core::assert_sometimes!(true, "outer before the inner world");
            providers.time().sleep(Duration::from_millis(1)).await;
            let inner = if same_thread {
                echo_run(32, true)
            } else {
                fresh(|| echo_run(32, true))
            };
            *out.lock().unwrap() = inner;
            // The outer run's ambient providers, select! offsets and chaos hooks are back.
            let ambient = moonpool_sim::current_providers().expect("the outer task's providers");
            assert_eq!(ambient.time().now(), providers.time().now());
            let mut picks = String::new();
            for _ in 0..16 {
                let pick = moonpool_core::select! {
                    _ = std::future::ready(()) => 'a',
                    _ = std::future::ready(()) => 'b',
                    _ = std::future::ready(()) => 'c',
                };
                picks.push(pick);
            }
            moonpool_core::assert_sometimes!(picks.contains('a'), "outer select picks");
            *out.lock().unwrap() += &picks;
            let value: u32 = providers.random().random_range(0..1000);
            moonpool_core::assert_sometimes!(value < 2000, "outer after the inner world");
            let _ = moonpool_core::buggify!();
            providers.time().sleep(Duration::from_millis(1)).await;
        })
        .unwrap();
    let outer_run = format!("{:?}", outer.run());
    drop(outer);
    let inner = inner_out.lock().unwrap().clone();
    (outer_run, inner)
}

#[test]
fn test_a_world_nested_in_a_task_of_another_changes_neither() {
    let expected = fresh(|| nested(false));
    let got = fresh(|| {
        let (outer, inner) = nested(true);
        // And a world after both on the same thread.
        let after = echo_run(11, true);
        (outer, inner, after)
    });
    assert_eq!(expected.1, got.1, "the inner world differs");
    assert_eq!(expected.0, got.0, "the outer world differs");
    assert_eq!(
        got.2,
        fresh_echo(&[11], true)[0],
        "a world after both differs"
    );
    assert!(
        expected.0.contains("outer after the inner world"),
        "{}",
        expected.0
    );
}

fn two_alive(drop_first_first: bool) {
    after(
        move || {
            let mut first = echo_world(41, true);
            let mut second = echo_world(42, true);
            let a = format!("{:?}", first.run());
            let b = format!("{:?}", second.run());
            if drop_first_first {
                drop(first);
                drop(second);
            } else {
                drop(second);
                drop(first);
            }
            // Each of the two is itself what it is on a fresh thread.
            assert_eq!(a, fresh(|| echo_run(41, true)));
            assert_eq!(b, fresh(|| echo_run(42, true)));
        },
        true,
    );
}

#[test]
fn test_two_worlds_alive_at_once_dropped_first_to_last() {
    two_alive(true);
}

#[test]
fn test_two_worlds_alive_at_once_dropped_last_to_first() {
    two_alive(false);
}

#[test]
fn test_two_worlds_run_interleaved_inside_each_others_build() {
    // The second world is built (taking the spare) while the first is alive but not run.
    after(
        || {
            let first = echo_world(51, false);
            let mut second = echo_world(52, false);
            drop(first);
            let mut third = echo_world(53, false);
            let _ = second.run();
            let _ = third.run();
            drop(third);
            drop(second);
        },
        false,
    );
}

#[test]
fn test_a_huge_world_then_a_small_one() {
    after(
        || {
            let mut huge = SimWorld::with_config(3, config(false)).unwrap();
            huge.add_workload("many", "10.0.0.1", |providers| async move {
                let time = providers.time().clone();
                let mut handles = Vec::new();
                for index in 0..10_000u64 {
                    let time = time.clone();
                    handles.push(providers.task().spawn("t", async move {
                        time.sleep(Duration::from_micros(index % 97)).await;
                    }));
                }
                // Half awaited, half left pending past the end.
                for handle in handles.into_iter().step_by(2) {
                    let _ = handle.await;
                }
                for _ in 0..3 {
                    let time = time.clone();
                    drop(providers.task().spawn("forever", async move {
                        time.sleep(Duration::from_secs(1_000_000)).await;
                    }));
                }
            })
            .unwrap();
            huge.run().unwrap();
        },
        false,
    );
}

/// A world of 5,000 processes (past the kept process list's bound), then small ones.
#[test]
fn test_a_world_of_many_processes_then_a_small_one() {
    after(
        || {
            let mut world = SimWorld::with_config(8, config(false)).unwrap();
            for index in 0..5_000u32 {
                let ip = format!(
                    "10.{}.{}.{}",
                    index / 62_500,
                    (index / 250) % 250,
                    index % 250 + 1
                );
                world
                    .add_workload_process(&format!("p-{index}"), &ip)
                    .unwrap();
            }
            world.add_workload("w", "10.9.9.9", |_| async {}).unwrap();
            world.run().unwrap();
        },
        false,
    );
}

/// A chaotic world whose buggify sites fired and whose assertions failed, then quiet ones: no
/// site, record or violation carries over.
#[test]
fn test_a_violated_chaotic_world_then_quiet_ones() {
    after(
        || {
            let mut world = echo_world(13, true);
            world
                .add_workload("asserts", "10.0.0.7", |providers| async move {
                    for round in 0..50u32 {
                        let _ = moonpool_core::buggify!();
                        moonpool_core::assert_sometimes!(round > 10, "hostile sometimes");
                        moonpool_core::assert_always!(round < 40, "hostile always");
                        providers.time().sleep(Duration::from_micros(100)).await;
                    }
                })
                .unwrap();
            let result = format!("{:?}", world.run());
            assert!(result.contains("hostile always"), "{result}");
        },
        false,
    );
}

/// A world's task limit reached, then a small world.
#[test]
fn test_a_world_over_its_task_limit_then_a_small_one() {
    after(
        || {
            let mut config = config(false);
            config.max_tasks = 50;
            let mut world = SimWorld::with_config(4, config).unwrap();
            world
                .add_workload("many", "10.0.0.1", |providers| async move {
                    for _ in 0..200 {
                        drop(providers.task().spawn("p", std::future::pending::<()>()));
                    }
                })
                .unwrap();
            let _ = world.run();
        },
        false,
    );
}

#[test]
fn test_failed_seeds_replay_to_their_fingerprints_on_fresh_threads() {
    let seeds: Vec<u64> = (1_000..1_060).collect();
    let report = fresh(move || flaky_report(seeds, 2));
    let failed: Vec<(u64, u64)> = report
        .failures()
        .map(|outcome| (outcome.seed, outcome.fingerprint))
        .collect();
    assert!(
        failed.len() >= 5 && failed.len() < 55,
        "{} failed",
        failed.len()
    );
    for outcome in report.failures() {
        assert!(
            outcome.replay.is_some(),
            "seed {} has no replay",
            outcome.seed
        );
    }
    let all: Vec<(u64, u64)> = report
        .seeds
        .iter()
        .map(|outcome| (outcome.seed, outcome.fingerprint))
        .collect();
    for (seed, fingerprint) in failed {
        let replay = fresh(move || flaky_report(vec![seed], 1));
        assert_eq!(replay.seeds.len(), 1);
        assert_eq!(
            replay.seeds[0].fingerprint, fingerprint,
            "seed {seed}: replay's fingerprint differs"
        );
        assert_eq!(replay.failed(), 1, "seed {seed} passes when replayed");
    }
    // The same seeds on one job: the same fingerprints.
    let seeds: Vec<u64> = (1_000..1_060).collect();
    let one = fresh(move || flaky_report(seeds, 1));
    let one: Vec<(u64, u64)> = one
        .seeds
        .iter()
        .map(|outcome| (outcome.seed, outcome.fingerprint))
        .collect();
    assert_eq!(all, one);
}

#[test]
fn test_a_world_is_dropped_on_another_thread_than_its_build() {
    fn is_send<T: Send>(_: &T) {}
    let world = echo_world(61, false);
    is_send(&world);
    after(
        move || {
            // Built on the test's thread, run and dropped on the attack's thread.
            let mut world = world;
            let _ = world.run();
            let moved = fresh(move || {
                drop(world);
                echo_run(11, false)
            });
            assert_eq!(moved, fresh_echo(&[11], false)[0]);
        },
        false,
    );
}

#[test]
fn test_the_echo_world_does_round_trips() {
    let run = echo_run(11, false);
    assert!(run.contains("Ok(RunSummary"), "{run}");
    let polls = run.len();
    assert!(polls > 2_000, "a short trace: {run}");
}

/// A file written (and synced) by a world is not there for the next world of the thread, on
/// the same process name, address and seed.
#[test]
fn test_a_dropped_worlds_files_are_not_in_the_next() {
    fn write_then_look(seed: u64, write: bool) -> Option<usize> {
        let seen = Arc::new(Mutex::new(None));
        let out = Arc::clone(&seen);
        let mut world = SimWorld::with_config(seed, config(false)).unwrap();
        world
            .add_workload("writer", "10.0.0.1", move |providers| async move {
                let storage = providers.storage();
                if write {
                    let mut file = storage
                        .open("secret.dat", OpenOptions::read_write_create())
                        .await
                        .unwrap();
                    file.write_all(b"the old world's secret").await.unwrap();
                    moonpool_core::StorageFile::sync_all(&mut file)
                        .await
                        .unwrap();
                }
                if let Ok(mut file) = storage.open("secret.dat", OpenOptions::read_only()).await {
                    let mut text = Vec::new();
                    let _ = file.read_to_end(&mut text).await;
                    *out.lock().unwrap() = Some(text.len());
                }
            })
            .unwrap();
        world.run().unwrap();
        *seen.lock().unwrap()
    }
    let seen = fresh(|| {
        let own = write_then_look(17, true);
        assert_eq!(own, Some(22), "a world reads its own file");
        write_then_look(17, false)
    });
    assert_eq!(seen, None, "the old world's file is readable in the next");
}
