//! Semantics of the fifteen assertion macros and of buggify, recorded per seed by the simulator.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default,
    clippy::let_and_return,
    missing_docs
)]

use std::time::Duration;

use moonpool_core::chaos::{AssertKind, Comparison};
use moonpool_core::{
    Providers, TimeProvider, assert_always, assert_always_greater_than,
    assert_always_greater_than_or_equal_to, assert_always_less_than,
    assert_always_less_than_or_equal_to, assert_always_or_unreachable, assert_reachable,
    assert_sometimes, assert_sometimes_all, assert_sometimes_each, assert_sometimes_greater_than,
    assert_sometimes_greater_than_or_equal_to, assert_sometimes_less_than,
    assert_sometimes_less_than_or_equal_to, assert_unreachable, buggify, buggify_knob,
    buggify_with_prob,
};
use moonpool_sim::{
    AssertionRecord, AssertionTable, BuggifyConfig, SimError, SimProviders, SimWorld, WorldConfig,
};

fn run<F, Fut>(seed: u64, config: WorldConfig, body: F) -> Result<AssertionTable, SimError>
where
    F: FnOnce(SimProviders) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut world = SimWorld::with_config(seed, config).unwrap();
    world.add_workload("checker", "10.0.0.1", body).unwrap();
    world.run().map(|summary| summary.assertions)
}

fn find<'a>(table: &'a AssertionTable, message: &str) -> &'a AssertionRecord {
    table
        .records
        .values()
        .find(|r| r.message == message)
        .unwrap_or_else(|| panic!("no record for {message}: {table:#?}"))
}

#[test]
fn test_always_failure_fails_the_seed_naming_message_location_process_and_time() {
    let error = run(21, WorldConfig::quiet(), |p| async move {
        for balance in [10i64, 5, 0, -3] {
            p.time().sleep(Duration::from_millis(10)).await;
            assert_always!(balance >= 0, "balance never negative", balance);
        }
    })
    .unwrap_err();
    let SimError::AssertionFailed { seed, violation } = &error else {
        panic!("expected an assertion failure, got {error:?}");
    };
    assert_eq!(*seed, 21);
    assert_eq!(violation.message, "balance never negative");
    assert_eq!(violation.kind, AssertKind::Always);
    assert!(
        violation
            .location
            .starts_with("moonpool-sim/tests/assertions.rs:"),
        "{}",
        violation.location
    );
    assert_eq!(violation.task, "checker/checker");
    assert_eq!(violation.at, Duration::from_millis(40));
    assert_eq!(violation.detail, "-3");
    let text = error.to_string();
    assert!(
        text.contains("assert_always \"balance never negative\""),
        "{text}"
    );
    assert!(text.contains("MOONPOOL_SEED=21"), "{text}");
}

#[test]
fn test_boolean_kinds_count_passes_and_failures() {
    let table = run(1, WorldConfig::quiet(), |_p| async move {
        for i in 0..10 {
            assert_always!(i < 100, "small");
            assert_always_or_unreachable!(i >= 0, "non-negative");
            assert_sometimes!(i == 7, "seven seen");
            assert_sometimes!(i == 70, "seventy seen");
            if i == 3 {
                assert_reachable!("three reached");
            }
            if i == 1000 {
                assert_unreachable!("impossible");
            }
        }
    })
    .unwrap();
    let small = find(&table, "small");
    assert_eq!(
        (small.passes, small.failures, small.status()),
        (10, 0, "PASS")
    );
    assert_eq!(find(&table, "non-negative").passes, 10);
    let seven = find(&table, "seven seen");
    assert_eq!(
        (seven.passes, seven.failures, seven.status()),
        (1, 9, "PASS")
    );
    let seventy = find(&table, "seventy seen");
    assert_eq!((seventy.passes, seventy.status()), (0, "MISS"));
    assert_eq!(find(&table, "three reached").passes, 1);
    assert!(
        table.records.values().all(|r| r.message != "impossible"),
        "never evaluated, never recorded"
    );
    assert_eq!(table.unsatisfied().count(), 1);
}

#[test]
fn test_unreachable_reached_fails_the_seed() {
    let error = run(2, WorldConfig::quiet(), |_p| async move {
        assert_unreachable!("the impossible branch");
    })
    .unwrap_err();
    assert!(
        matches!(&error, SimError::AssertionFailed { violation, .. } if violation.kind == AssertKind::Unreachable)
    );
}

#[test]
fn test_numeric_always_watermarks_track_the_closest_approach() {
    let table = run(3, WorldConfig::quiet(), |_p| async move {
        for v in [50, 20, 35, 11] {
            assert_always_greater_than!(v, 10, "above ten");
            assert_always_greater_than_or_equal_to!(v, 11, "at least eleven");
            assert_always_less_than!(v, 60, "below sixty");
            assert_always_less_than_or_equal_to!(v, 50, "at most fifty");
        }
    })
    .unwrap();
    assert_eq!(
        find(&table, "above ten").watermark,
        Some(11.0),
        "the minimum seen"
    );
    assert_eq!(find(&table, "at least eleven").watermark, Some(11.0));
    assert_eq!(
        find(&table, "below sixty").watermark,
        Some(50.0),
        "the maximum seen"
    );
    assert_eq!(find(&table, "at most fifty").watermark, Some(50.0));
    assert!(table.records.values().all(|r| r.failures == 0));
    let kind = find(&table, "below sixty").kind;
    assert_eq!(kind, AssertKind::AlwaysCompare(Comparison::LessThan));
}

#[test]
fn test_numeric_always_failure_reports_the_values() {
    let error = run(4, WorldConfig::quiet(), |_p| async move {
        let latency_ms = 250u64;
        assert_always_less_than!(latency_ms, 100, "latency under budget", "slow path");
    })
    .unwrap_err();
    let SimError::AssertionFailed { violation, .. } = error else {
        panic!()
    };
    assert_eq!(violation.detail, "250 < 100 is false; \"slow path\"");
}

#[test]
fn test_numeric_sometimes_watermarks_track_the_best_value() {
    let table = run(5, WorldConfig::quiet(), |_p| async move {
        for v in [3, 9, 4] {
            assert_sometimes_greater_than!(v, 5, "queue got long");
            assert_sometimes_greater_than_or_equal_to!(v, 100, "queue got huge");
            assert_sometimes_less_than!(v, 4, "queue got short");
            assert_sometimes_less_than_or_equal_to!(v, 0, "queue emptied");
        }
    })
    .unwrap();
    let long = find(&table, "queue got long");
    assert_eq!(
        (long.passes, long.watermark, long.status()),
        (1, Some(9.0), "PASS")
    );
    let huge = find(&table, "queue got huge");
    assert_eq!(
        (huge.passes, huge.watermark, huge.status()),
        (0, Some(9.0), "MISS")
    );
    assert_eq!(find(&table, "queue got short").watermark, Some(3.0));
    let emptied = find(&table, "queue emptied");
    assert_eq!((emptied.watermark, emptied.status()), (Some(3.0), "MISS"));
}

#[test]
fn test_sometimes_all_tracks_the_frontier() {
    let table = run(6, WorldConfig::quiet(), |_p| async move {
        for (a, b, c) in [
            (true, false, false),
            (true, true, false),
            (false, true, true),
        ] {
            assert_sometimes_all!("all three at once", [("a", a), ("b", b), ("c", c)]);
        }
    })
    .unwrap();
    let record = find(&table, "all three at once");
    assert_eq!(
        (record.frontier, record.conditions, record.status()),
        (2, 3, "MISS")
    );
    let table = run(6, WorldConfig::quiet(), |_p| async move {
        assert_sometimes_all!("all three at once", [("a", true), ("b", true), ("c", true)]);
    })
    .unwrap();
    assert_eq!(find(&table, "all three at once").status(), "PASS");
}

#[test]
fn test_sometimes_each_records_one_bucket_per_combination() {
    let table = run(7, WorldConfig::quiet(), |_p| async move {
        for (phase, role) in [(0, 1), (1, 1), (0, 1), (2, 0)] {
            assert_sometimes_each!("phase by role", [("phase", phase), ("role", role)]);
        }
    })
    .unwrap();
    let record = find(&table, "phase by role");
    assert_eq!(record.buckets.len(), 3);
    assert_eq!(record.buckets.get("phase=0,role=1"), Some(&2));
    assert_eq!(record.buckets.get("phase=2,role=0"), Some(&1));
}

#[test]
fn test_tables_merge_across_seeds() {
    let mut total = AssertionTable::default();
    for seed in 0..4u64 {
        let table = run(seed, WorldConfig::quiet(), move |_p| async move {
            assert_sometimes!(seed == 2, "seed two");
            assert_sometimes_greater_than!(seed, 1, "big seed");
        })
        .unwrap();
        total.merge(&table);
    }
    let two = find(&total, "seed two");
    assert_eq!((two.passes, two.failures, two.seeds_evaluated), (1, 3, 4));
    assert_eq!(find(&total, "big seed").watermark, Some(3.0));
}

#[test]
fn test_macros_are_no_ops_outside_a_simulation() {
    assert_always!(false, "would fail");
    assert_unreachable!("would fail too");
    assert!(!buggify!());
    assert!(!buggify_with_prob!(1.0));
    let knob: u32 = buggify_knob!(64u32, 1..1000);
    assert_eq!(knob, 64);
}

fn buggify_run(seed: u64) -> (Vec<bool>, u32) {
    let config = {
        let mut cfg = WorldConfig::quiet();
        cfg.buggify = BuggifyConfig::default();
        cfg
    };
    let mut world = SimWorld::with_config(seed, config).unwrap();
    let out = std::sync::Arc::new(std::sync::Mutex::new((Vec::new(), 0)));
    let slot = std::sync::Arc::clone(&out);
    world
        .add_workload("w", "10.0.0.1", move |_p| async move {
            let mut fired = Vec::new();
            for _ in 0..40 {
                fired.push(buggify_with_prob!(0.5));
            }
            let knob: u32 = buggify_knob!(64u32, 1..1000);
            *slot.lock().unwrap() = (fired, knob);
        })
        .unwrap();
    let summary = world.run().unwrap();
    let out = out.lock().unwrap().clone();
    // Every firing is counted as positive evidence in the run's faults.
    let fired = out.0.iter().filter(|f| **f).count() as u64;
    assert_eq!(
        summary.faults.get("buggify.fired").copied().unwrap_or(0),
        fired
    );
    out
}

#[test]
fn test_buggify_sites_are_enabled_per_seed_and_deterministic() {
    let runs: Vec<_> = (0..20).map(buggify_run).collect();
    for (seed, run) in runs.iter().enumerate() {
        assert_eq!(
            run,
            &buggify_run(seed as u64),
            "seed {seed} not reproducible"
        );
    }
    // A disabled site never fires in its seed; an enabled one fires about half the time.
    let disabled = runs
        .iter()
        .filter(|(fired, _)| fired.iter().all(|f| !f))
        .count();
    let enabled = runs
        .iter()
        .filter(|(fired, _)| fired.iter().any(|f| *f))
        .count();
    assert!(
        disabled > 0 && enabled > 0,
        "disabled {disabled}, enabled {enabled}"
    );
    for (fired, _) in runs.iter().filter(|(fired, _)| fired.iter().any(|f| *f)) {
        let count = fired.iter().filter(|f| **f).count();
        assert!((8..=32).contains(&count), "fired {count} of 40 at p=0.5");
    }
    let knobs: Vec<u32> = runs.iter().map(|(_, knob)| *knob).collect();
    assert!(knobs.contains(&64), "some seeds keep the default");
    assert!(
        knobs.iter().any(|k| *k != 64 && (1..1000).contains(k)),
        "some seeds perturb it: {knobs:?}"
    );
}
