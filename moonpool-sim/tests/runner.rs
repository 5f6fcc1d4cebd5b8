//! The runner: iteration control, shards, parallelism, determinism checks, phases, invariants,
//! swarm chaos and attrition, reports.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use moonpool_core::{
    Providers, RandomProvider, TimeProvider, assert_always, assert_reachable, assert_sometimes,
    assert_sometimes_each,
};
use moonpool_sim::{
    Attrition, Chaos, IterationControl, RebootKind, SimError, SimulationBuilder, SimulationReport,
    WorldConfig,
};

/// A workload with three `sometimes` assertions of decreasing likelihood.
fn coin_sim(name: &str) -> SimulationBuilder {
    SimulationBuilder::new(name)
        .world_config(WorldConfig::quiet())
        .progress(false)
        .workload("flipper", 1, |ctx| async move {
            let random = ctx.providers.random().clone();
            let value: u32 = random.random_range(0..16);
            assert_sometimes!(value < 8, "lower half");
            assert_sometimes!(value == 3, "exactly three");
            assert_sometimes_each!("value buckets", [("quarter", value / 4)]);
            ctx.providers
                .time()
                .sleep(Duration::from_millis(u64::from(value)))
                .await;
            Ok(())
        })
}

#[test]
fn test_until_all_sometimes_reached_stops_once_all_fired() {
    let report = coin_sim("until-all")
        .iterations(IterationControl::UntilAllSometimesReached(500))
        .jobs(1)
        .run()
        .unwrap();
    report.assert_success();
    assert!(
        report
            .stop_reason
            .contains("all 3 coverage assertions reached"),
        "{}",
        report.stop_reason
    );
    // It stopped at the first seed where everything had fired: one seed earlier it had not.
    let n = report.seeds_run();
    assert!(n > 1 && n < 500, "ran {n} seeds");
    let earlier = coin_sim("until-all")
        .iterations(IterationControl::FixedCount(n - 1))
        .jobs(1)
        .run()
        .unwrap();
    assert!(
        !earlier.sometimes_never_reached().is_empty()
            || earlier.assertions.records.values().any(|r| !r.satisfied())
    );
}

#[test]
fn test_until_all_sometimes_reached_reports_what_was_never_reached() {
    let report = SimulationBuilder::new("never")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .workload("w", 1, |_ctx| async move {
            assert_sometimes!(false, "cannot happen");
            Ok(())
        })
        .iterations(IterationControl::UntilAllSometimesReached(7))
        .jobs(1)
        .run()
        .unwrap();
    assert_eq!(report.seeds_run(), 7);
    assert!(!report.is_success());
    assert_eq!(report.sometimes_never_reached()[0].message, "cannot happen");
    assert!(report.to_string().contains("sometimes never reached (1)"));
}

#[test]
fn test_until_coverage_stable_stops_after_its_plateau() {
    let report = coin_sim("stable")
        .iterations(IterationControl::UntilCoverageStable {
            plateau_seeds: 10,
            max_seeds: 1000,
        })
        .jobs(1)
        .run()
        .unwrap();
    report.assert_success();
    assert!(
        report.stop_reason.starts_with("coverage stable"),
        "{}",
        report.stop_reason
    );
    let buckets = report
        .assertions
        .records
        .values()
        .find(|r| r.message == "value buckets")
        .unwrap();
    assert_eq!(
        buckets.buckets.len(),
        4,
        "all four quarters found before the plateau"
    );
    assert!(report.seeds_run() >= 11 && report.seeds_run() < 1000);
}

#[test]
fn test_until_coverage_stable_stops_at_once_without_sometimes() {
    let report = SimulationBuilder::new("no-sometimes")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .workload("w", 1, |_ctx| async move {
            assert_always!(true, "trivially true");
            Ok(())
        })
        .run()
        .unwrap();
    assert_eq!(report.seeds_run(), 1);
    assert!(
        report.stop_reason.contains("no coverage assertions"),
        "{}",
        report.stop_reason
    );
}

#[test]
fn test_shards_run_disjoint_seeds_and_merge_into_the_unsharded_report() {
    let whole = coin_sim("sharded")
        .iterations(IterationControl::FixedCount(20))
        .jobs(1)
        .run()
        .unwrap();
    let shard0 = coin_sim("sharded")
        .iterations(IterationControl::FixedCount(20))
        .shard(0, 2)
        .jobs(1)
        .run()
        .unwrap();
    let shard1 = coin_sim("sharded")
        .iterations(IterationControl::FixedCount(20))
        .shard(1, 2)
        .jobs(1)
        .run()
        .unwrap();
    let seeds0: Vec<u64> = shard0.seeds.iter().map(|s| s.seed).collect();
    let seeds1: Vec<u64> = shard1.seeds.iter().map(|s| s.seed).collect();
    assert_eq!(seeds0.len(), 10);
    assert_eq!(seeds1.len(), 10);
    assert!(seeds0.iter().all(|s| !seeds1.contains(s)), "disjoint");
    // Through JSON, as shards on different machines would exchange them.
    let from_json =
        |r: &SimulationReport| SimulationReport::from_json(&r.to_json().unwrap()).unwrap();
    let merged = SimulationReport::merge(&[from_json(&shard1), from_json(&shard0)]).unwrap();
    assert_eq!(merged.without_timings(), whole.without_timings());
}

#[test]
fn test_parallel_and_serial_runs_give_the_same_report() {
    let serial = coin_sim("parallel")
        .iterations(IterationControl::UntilCoverageStable {
            plateau_seeds: 8,
            max_seeds: 200,
        })
        .jobs(1)
        .run()
        .unwrap();
    let parallel = coin_sim("parallel")
        .iterations(IterationControl::UntilCoverageStable {
            plateau_seeds: 8,
            max_seeds: 200,
        })
        .jobs(2)
        .run()
        .unwrap();
    assert_eq!(serial.without_timings(), parallel.without_timings());
    assert_eq!(serial.seeds_run(), parallel.seeds_run());
}

#[test]
fn test_parallel_runs_past_the_window_send_every_result_in_order() {
    // 400 seeds on 3 workers: more than the window of seeds a worker may run ahead (workers send
    // their results in batches, and must send them before waiting for the window to move).
    let run = |jobs| {
        coin_sim("batches")
            .iterations(IterationControl::FixedCount(400))
            .jobs(jobs)
            .run()
            .unwrap()
    };
    let (serial, parallel) = (run(1), run(3));
    assert_eq!(parallel.seeds_run(), 400);
    assert_eq!(serial.without_timings(), parallel.without_timings());
    let indices: Vec<usize> = parallel.seeds.iter().map(|s| s.index).collect();
    assert_eq!(
        indices,
        (0..400).collect::<Vec<_>>(),
        "results in seed order"
    );
}

#[test]
fn test_determinism_check_catches_hashmap_iteration_order() {
    let report = SimulationBuilder::new("hashmap")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .check_determinism(true)
        .iterations(IterationControl::FixedCount(3))
        .jobs(1)
        .workload("w", 1, |ctx| async move {
            // RandomState: a different iteration order in every run of the same seed.
            let map: HashMap<u64, u64> = (1..=16).map(|k| (k, k)).collect();
            for (key, _) in map.iter() {
                ctx.providers
                    .time()
                    .sleep(Duration::from_micros(*key))
                    .await;
            }
            Ok(())
        })
        .run()
        .unwrap();
    assert_eq!(report.failed(), 3, "{report}");
    let failure = report.seeds[0].failure.as_deref().unwrap();
    assert!(
        failure.contains("nondeterminism: the two runs diverge at event"),
        "{failure}"
    );
    assert!(
        failure.contains("timer"),
        "names the diverging event: {failure}"
    );
}

#[test]
fn test_determinism_check_passes_a_deterministic_workload() {
    let report = coin_sim("deterministic")
        .check_determinism(true)
        .iterations(IterationControl::FixedCount(10))
        .jobs(2)
        .run()
        .unwrap();
    assert_eq!(report.failed(), 0, "{report}");
}

#[test]
fn test_always_violation_fails_its_seed_with_a_replay_command() {
    let report = SimulationBuilder::new("violation")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .iterations(IterationControl::FixedCount(20))
        .jobs(1)
        .workload("w", 1, |ctx| async move {
            let roll: u32 = ctx.providers.random().random_range(0..10);
            assert_always!(roll != 7, "never rolls seven", roll);
            Ok(())
        })
        .run()
        .unwrap();
    assert!(report.failed() > 0 && report.passed() > 0, "{report}");
    let failed = report.failures().next().unwrap();
    let replay = failed.replay.as_deref().unwrap();
    // The command of the harness running this test: nextest's, or cargo test's.
    let name = "test_always_violation_fails_its_seed_with_a_replay_command";
    let expected = if std::env::var_os("NEXTEST").is_some() {
        format!(
            "MOONPOOL_SEED={} cargo nextest run -p moonpool-sim --test runner -E 'test(={name})'",
            failed.seed
        )
    } else {
        format!(
            "MOONPOOL_SEED={} cargo test -p moonpool-sim --test runner -- --exact {name}",
            failed.seed
        )
    };
    assert_eq!(replay, expected);
    assert!(
        failed
            .failure
            .as_deref()
            .unwrap()
            .contains("\"never rolls seven\"")
    );
    let text = report.to_string();
    assert!(text.contains("replay: MOONPOOL_SEED="), "{text}");
    assert!(text.contains("FAIL assert_always"), "{text}");
}

#[test]
fn test_replaying_one_seed_reproduces_the_failure() {
    let sim = || {
        SimulationBuilder::new("replay")
            .world_config(WorldConfig::quiet())
            .progress(false)
            .jobs(1)
            .workload("w", 1, |ctx| async move {
                let roll: u32 = ctx.providers.random().random_range(0..10);
                ctx.providers
                    .time()
                    .sleep(Duration::from_millis(u64::from(roll)))
                    .await;
                assert_always!(roll != 7, "never rolls seven");
                Ok(())
            })
    };
    let report = sim()
        .iterations(IterationControl::FixedCount(30))
        .run()
        .unwrap();
    let failed = report.failures().next().unwrap().clone();
    let replayed = sim()
        .seeds([failed.seed])
        .iterations(IterationControl::FixedCount(1))
        .run()
        .unwrap();
    assert_eq!(replayed.seeds[0].failure, failed.failure);
}

#[test]
fn test_invariant_violation_fails_at_the_event() {
    let report = SimulationBuilder::new("invariant")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .iterations(IterationControl::FixedCount(1))
        .invariant("counter below three", |state| {
            match state.get::<u32>("counter") {
                Some(n) if n >= 3 => Err(format!("counter reached {n}")),
                _ => Ok(()),
            }
        })
        .workload("w", 1, |ctx| async move {
            for _ in 0..5 {
                ctx.providers.time().sleep(Duration::from_secs(1)).await;
                ctx.state.update("counter", |n: &mut u32| *n += 1);
            }
            Ok(())
        })
        .run()
        .unwrap();
    let failure = report.seeds[0].failure.as_deref().unwrap();
    assert!(
        failure.contains("invariant 'counter below three' violated at simulated 4s"),
        "{failure}"
    );
    assert!(failure.contains("counter reached 3"), "{failure}");
}

#[test]
fn test_settle_timeout_names_the_stuck_workload() {
    let report = SimulationBuilder::new("stuck")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .iterations(IterationControl::FixedCount(1))
        .chaos_duration(Duration::from_secs(5))
        .settle_timeout(Duration::from_secs(10))
        .workload("ok", 1, |_ctx| async move { Ok(()) })
        .workload("forever", 1, |ctx| async move {
            ctx.providers.time().sleep(Duration::from_secs(1_000)).await;
            Ok(())
        })
        .run()
        .unwrap();
    let failure = report.seeds[0].failure.as_deref().unwrap();
    assert!(
        failure.contains("did not finish within the settle timeout of 10s"),
        "{failure}"
    );
    assert!(failure.contains("forever-0/forever-0::run"), "{failure}");
}

#[test]
fn test_phases_chaos_then_settle_then_check() {
    let report = SimulationBuilder::new("phases")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .iterations(IterationControl::FixedCount(2))
        .chaos_duration(Duration::from_secs(3))
        .workload_with_check(
            "looper",
            2,
            |ctx| async move {
                let mut rounds = 0u32;
                while ctx.chaos_active() {
                    ctx.providers.time().sleep(Duration::from_millis(500)).await;
                    rounds += 1;
                }
                ctx.state
                    .update("rounds", |total: &mut u32| *total += rounds);
                assert_reachable!("loop ended by the chaos phase");
                Ok(())
            },
            |ctx| async move {
                let rounds = ctx.state.get::<u32>("rounds").unwrap_or(0);
                if ctx.providers.time().now() < Duration::from_secs(3) {
                    return Err("check ran before the chaos phase ended".into());
                }
                // Each looper sleeps 500 ms while the 3 s chaos phase lasts: 6 rounds, or 7 when
                // its wake-up at exactly 3 s runs before the phase's end does (both orders of one
                // instant are explored).
                if !(12..=14).contains(&rounds) {
                    return Err(
                        format!("expected 12 to 14 rounds from two loopers, saw {rounds}").into(),
                    );
                }
                Ok(())
            },
        )
        .run()
        .unwrap();
    report.assert_success();
}

#[test]
fn test_check_failure_is_reported() {
    let report = SimulationBuilder::new("check-fails")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .iterations(IterationControl::FixedCount(1))
        .workload_with_check(
            "w",
            1,
            |_ctx| async move { Ok(()) },
            |_ctx| async move { Err("lost 2 acknowledged writes".into()) },
        )
        .run()
        .unwrap();
    let failure = report.seeds[0].failure.as_deref().unwrap();
    assert!(
        failure.contains("workload 'w-0' failed in its check phase: lost 2 acknowledged writes"),
        "{failure}"
    );
}

#[test]
fn test_swarm_turns_families_on_and_off_per_seed() {
    let report = SimulationBuilder::new("swarm")
        .progress(false)
        .iterations(IterationControl::FixedCount(24))
        .jobs(1)
        .enable_chaos([
            Chaos::Network,
            Chaos::Storage,
            Chaos::Clock,
            Chaos::Partitions,
        ])
        .process("server", 2, |ctx| async move {
            ctx.providers.time().sleep(Duration::from_secs(3600)).await;
        })
        .workload("w", 1, |ctx| async move {
            for _ in 0..50 {
                ctx.providers.time().sleep(Duration::from_millis(100)).await;
                let _ = ctx.providers.time().timer();
            }
            Ok(())
        })
        .run()
        .unwrap();
    report.assert_success();
    // Some seeds drift the clock and some do not.
    let drift_seeds = report.seeds.iter().filter(|s| s.events > 0).count();
    assert_eq!(drift_seeds, 24);
    assert!(
        report.faults.get("clock.drift").copied().unwrap_or(0) > 0,
        "{report}"
    );
}

#[test]
fn test_attrition_never_exceeds_max_dead() {
    let max_concurrent_dead = Arc::new(AtomicUsize::new(0));
    let observed = Arc::clone(&max_concurrent_dead);
    let report = SimulationBuilder::new("attrition")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .iterations(IterationControl::FixedCount(6))
        .jobs(1)
        .chaos_duration(Duration::from_secs(60))
        .enable_chaos([Chaos::Attrition(
            Attrition::default()
                .with_max_dead(2)
                .with_interval((Duration::from_millis(100), Duration::from_millis(400)))
                .with_recovery_delay((Duration::from_secs(1), Duration::from_secs(2)))
                .with_kinds(vec![RebootKind::Crash, RebootKind::Graceful]),
        )])
        .process("server", 5, |ctx| async move {
            ctx.providers.time().sleep(Duration::from_secs(3600)).await;
        })
        .workload("watcher", 1, move |ctx| {
            let observed = Arc::clone(&observed);
            async move {
                // Processes boot at time zero, just after this workload starts.
                ctx.providers.time().sleep(Duration::from_millis(1)).await;
                while ctx.chaos_active() {
                    let control = ctx.control();
                    let dead = (0..5)
                        .filter(|i| {
                            !control.is_alive(control.process(&format!("server-{i}")).unwrap())
                        })
                        .count();
                    observed.fetch_max(dead, Ordering::SeqCst);
                    ctx.providers.time().sleep(Duration::from_millis(50)).await;
                }
                Ok(())
            }
        })
        .run()
        .unwrap();
    report.assert_success();
    let crashes = report.faults.get("process.crash").copied().unwrap_or(0)
        + report
            .faults
            .get("process.graceful_reboot")
            .copied()
            .unwrap_or(0);
    assert!(crashes > 10, "attrition rebooted processes: {report}");
    let max = max_concurrent_dead.load(Ordering::SeqCst);
    assert!((1..=2).contains(&max), "max dead observed {max}");
}

#[test]
fn test_expected_assertions_never_evaluated_are_reported() {
    let report = coin_sim("expected")
        .iterations(IterationControl::FixedCount(3))
        .jobs(1)
        .expect_assertions(["lower half", "recovery completed"])
        .run()
        .unwrap();
    assert_eq!(
        report.never_evaluated,
        vec!["recovery completed".to_string()]
    );
    assert!(!report.is_success());
    assert!(
        report
            .to_string()
            .contains("expected assertions never evaluated (1)")
    );
}

#[test]
fn test_bad_shard_is_a_typed_setup_error() {
    let error = coin_sim("bad-shard").shard(2, 2).run().unwrap_err();
    assert!(matches!(error, SimError::InvalidSetup { .. }));
    assert!(error.to_string().contains("2/2"), "{error}");
}

#[test]
fn test_report_renders_a_table_and_round_trips_json() {
    let report = coin_sim("render")
        .iterations(IterationControl::FixedCount(5))
        .jobs(1)
        .run()
        .unwrap();
    let text = report.to_string();
    assert!(text.contains("=== simulation 'render' ==="), "{text}");
    assert!(
        text.contains("seeds     5 run, 5 passed, 0 failed"),
        "{text}"
    );
    assert!(text.contains("assert_sometimes_each"), "{text}");
    let back = SimulationReport::from_json(&report.to_json().unwrap()).unwrap();
    assert_eq!(back, report);
}

#[test]
fn test_time_limit_runs_at_least_one_seed() {
    let report = coin_sim("time-limit")
        .iterations(IterationControl::TimeLimit(Duration::from_millis(200)))
        .jobs(1)
        .run()
        .unwrap();
    assert!(report.seeds_run() >= 1);
    assert!(
        report.stop_reason.contains("time limit"),
        "{}",
        report.stop_reason
    );
}

#[test]
fn test_swarm_operation_subsets_vary_per_seed() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    SimulationBuilder::new("ops")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .jobs(1)
        .iterations(IterationControl::FixedCount(32))
        .workload("w", 1, move |ctx| {
            let log = Arc::clone(&log);
            async move {
                let ops: Vec<bool> = ["read", "write", "delete", "scan"]
                    .iter()
                    .map(|op| ctx.swarm_op_enabled(op))
                    .collect();
                // Pure function of seed and name.
                assert_eq!(ops[0], ctx.swarm_op_enabled("read"));
                log.lock().unwrap().push(ops);
                Ok(())
            }
        })
        .run()
        .unwrap();
    let seen = seen.lock().unwrap();
    let distinct: std::collections::BTreeSet<_> = seen.iter().cloned().collect();
    assert!(
        distinct.len() >= 8,
        "seeds explore different operation mixes: {}",
        distinct.len()
    );
    for op in 0..4 {
        let on = seen.iter().filter(|ops| ops[op]).count();
        assert!(
            (6..=26).contains(&on),
            "operation {op} on in {on} of 32 seeds"
        );
    }
}

#[test]
fn test_topology_spreads_processes_over_failure_domains() {
    let report = SimulationBuilder::new("topology")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .jobs(1)
        .iterations(IterationControl::FixedCount(1))
        .topology(2, 2, 1)
        .process("db", 8, |ctx| async move {
            ctx.providers.time().sleep(Duration::from_secs(3600)).await;
        })
        .workload("inspector", 1, |ctx| async move {
            let machines: std::collections::BTreeSet<_> = ctx
                .topology
                .processes
                .iter()
                .map(|m| m.locality.machine.clone())
                .collect();
            let zones: std::collections::BTreeSet<_> = ctx
                .topology
                .processes
                .iter()
                .map(|m| m.locality.zone.clone())
                .collect();
            let dcs: std::collections::BTreeSet<_> = ctx
                .topology
                .processes
                .iter()
                .map(|m| m.locality.datacenter.clone())
                .collect();
            if (machines.len(), zones.len(), dcs.len()) != (4, 4, 2) {
                return Err(format!("{machines:?} {zones:?} {dcs:?}").into());
            }
            // A correlated failure takes down the two processes of one machine.
            let machine = ctx.topology.processes[0].locality.machine.clone();
            ctx.control()
                .reboot_machine(&machine, RebootKind::Crash, None);
            ctx.providers.time().sleep(Duration::from_millis(1)).await;
            let down = (0..8)
                .filter(|i| {
                    !ctx.control()
                        .is_alive(ctx.control().process(&format!("db-{i}")).unwrap())
                })
                .count();
            if down != 2 {
                return Err(format!("{down} processes down, expected the machine's 2").into());
            }
            Ok(())
        })
        .run()
        .unwrap();
    report.assert_success();
}

#[test]
fn test_scripted_faults_apply_at_their_times() {
    use moonpool_sim::{FaultAction, ScriptedFaults};
    let report = SimulationBuilder::new("scripted")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .jobs(1)
        .iterations(IterationControl::FixedCount(1))
        .chaos_duration(Duration::from_secs(10))
        .fault(ScriptedFaults {
            steps: vec![
                (
                    Duration::from_secs(2),
                    FaultAction::Reboot {
                        process: "server-0".into(),
                        kind: RebootKind::CrashAndWipe,
                        restart_after: Some(Duration::from_secs(1)),
                    },
                ),
                (
                    Duration::from_secs(4),
                    FaultAction::Partition {
                        a: "10.0.0.1".parse().unwrap(),
                        b: "10.1.0.1".parse().unwrap(),
                        duration: Duration::from_secs(1),
                    },
                ),
            ],
        })
        .process("server", 1, |ctx| async move {
            ctx.providers.time().sleep(Duration::from_secs(3600)).await;
        })
        .workload("observer", 1, |ctx| async move {
            let server = ctx.control().process("server-0").unwrap();
            ctx.providers
                .time()
                .sleep(Duration::from_millis(2_500))
                .await;
            if ctx.control().is_alive(server) {
                return Err("server should be down between 2 s and 3 s".into());
            }
            ctx.providers.time().sleep(Duration::from_secs(1)).await;
            if !ctx.control().is_alive(server) {
                return Err("server should be back after 3 s".into());
            }
            // Stay until the scripted partition at 4 s has happened.
            ctx.providers.time().sleep(Duration::from_secs(2)).await;
            Ok(())
        })
        .run()
        .unwrap();
    report.assert_success();
    assert_eq!(report.faults.get("process.crash_and_wipe"), Some(&1));
    assert_eq!(report.faults.get("network.partition"), Some(&1));
}

#[test]
fn test_min_seeds_keeps_adaptive_controls_running() {
    let report = SimulationBuilder::new("min-seeds")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .jobs(1)
        .iterations(IterationControl::UntilAllSometimesReached(100))
        .min_seeds(12)
        .workload("w", 1, |_ctx| async move {
            assert_sometimes!(true, "always fires");
            Ok(())
        })
        .run()
        .unwrap();
    assert_eq!(report.seeds_run(), 12, "{}", report.stop_reason);
}
