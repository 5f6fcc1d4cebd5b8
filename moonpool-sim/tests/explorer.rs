//! Exploration finds what seed sweeping cannot (the two mazes of `examples/support/mazes.rs`),
//! every recipe it prints replays to the same failure and fingerprint, sequential exploration is
//! deterministic, parallel exploration finds the same bugs, and the runner refuses what it
//! cannot explore.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![cfg(all(feature = "explorer", any(target_os = "linux", target_os = "macos")))]

#[path = "../examples/support/mazes.rs"]
#[allow(dead_code)]
mod mazes;

use std::collections::BTreeSet;
use std::time::Duration;

use moonpool_core::{
    Providers, RandomProvider, TimeProvider, assert_always, assert_sometimes_all,
    assert_sometimes_greater_than,
};
use moonpool_sim::{
    ExplorationConfig, IterationControl, SimulationBuilder, SimulationReport, WorldConfig,
};

/// The budget the maze tests state: at most 20,000 children, 200 per discovery (150 before a
/// barren one gives up), batches of 10, one process at a time.
fn budget() -> ExplorationConfig {
    ExplorationConfig::default()
        .with_global_energy(20_000)
        .with_per_split(200)
        .with_min_per_split(150)
        .with_batch(10)
        .sequential()
}

fn first_bug(budget: ExplorationConfig) -> ExplorationConfig {
    let mut cfg = budget;
    cfg.stop_on_first_bug = true;
    cfg
}

/// Replays every bug's recipe in one process and checks the failure and the fingerprint.
fn assert_recipes_replay(report: &SimulationReport, build: impl Fn() -> SimulationBuilder) {
    let bugs = report.explored_bugs();
    assert!(!bugs.is_empty(), "{report}");
    for bug in bugs {
        assert_eq!(bug.kind, "failed", "{report}");
        assert!(
            bug.replay
                .starts_with(&format!("MOONPOOL_RECIPE={} ", bug.recipe)),
            "{}",
            bug.replay
        );
        let replay = build().replay_recipe(bug.recipe.clone()).run().unwrap();
        assert!(replay.exploration.is_none(), "a replay does not explore");
        assert_eq!(replay.seeds.len(), 1);
        let outcome = &replay.seeds[0];
        assert_eq!(outcome.seed, bug.recipe.seed);
        assert_eq!(
            outcome.failure.as_deref(),
            Some(bug.failure.as_str()),
            "{}",
            bug.recipe
        );
        assert_eq!(Some(outcome.fingerprint), bug.fingerprint, "{}", bug.recipe);
    }
}

#[test]
fn test_explorer_opens_three_locks_far_sooner_than_seeds_and_every_recipe_replays() {
    let build = || mazes::lock_maze("locks-3", 3, 50).base_seed(1_000_000);
    let report = build()
        .iterations(IterationControl::FixedCount(100_000))
        .explore(first_bug(budget()))
        .run()
        .unwrap();
    let exploration = report.exploration.as_ref().unwrap();
    // A sweep needs 50^3 = 125,000 seeds on average; the explorer at least 100 times fewer.
    let timelines = exploration.first_bug_timeline.unwrap();
    assert!(timelines < 1_250, "{timelines} timelines\n{report}");
    assert!(exploration.fresh_splits >= 2, "{report}");
    assert!(!report.is_success());
    assert_recipes_replay(&report, build);
    // The children's evaluations are in the report's assertion table.
    let lock_3 = report
        .assertions
        .records
        .values()
        .find(|r| r.message == "lock 3 opens")
        .unwrap();
    assert!(lock_3.passes >= 1, "{report}");
}

#[test]
fn test_explorer_opens_four_locks_and_every_recipe_replays() {
    let build = || mazes::lock_maze("locks-4", 4, 50).base_seed(2_000_000);
    let report = build()
        .iterations(IterationControl::FixedCount(100_000))
        .explore(first_bug(budget()))
        .run()
        .unwrap();
    let exploration = report.exploration.as_ref().unwrap();
    // A sweep needs 50^4 = 6,250,000 seeds on average.
    assert!(exploration.first_bug_timeline.unwrap() < 5_000, "{report}");
    assert!(exploration.max_depth >= 3, "{report}");
    assert!(exploration.overflow.is_empty(), "{report}");
    assert_recipes_replay(&report, build);
}

#[test]
fn test_explorer_finds_the_dungeon_bug_and_every_recipe_replays() {
    // Split points here are new buckets of an `assert_sometimes_each!` in a server process,
    // reached over the simulated network.
    let build = || mazes::dungeon("dungeon-3", 3, 50).base_seed(3_000_000);
    let report = build()
        .iterations(IterationControl::FixedCount(100_000))
        .explore(first_bug(budget()))
        .run()
        .unwrap();
    let exploration = report.exploration.as_ref().unwrap();
    assert!(exploration.first_bug_timeline.unwrap() < 1_250, "{report}");
    let signature = &report.explored_bugs()[0].signature;
    assert!(
        signature.contains("the keeper's map matches the hero's"),
        "{signature}"
    );
    // The failure's structure crossed the fork like its text: an explored bug has a kind and a
    // site like a failed seed, and the report prints them.
    let info = report.explored_bugs()[0].failure_info.as_ref().unwrap();
    assert_eq!(info.kind, moonpool_sim::FailureKind::Assertion, "{report}");
    assert!(
        info.site.contains("the keeper's map matches the hero's"),
        "{}",
        info.site
    );
    assert!(
        report.to_string().contains("    kind:   assertion at "),
        "{report}"
    );
    let floors = report
        .assertions
        .records
        .values()
        .find(|r| r.message == "floor reached")
        .unwrap();
    assert!(floors.buckets.len() >= 3, "{report}");
    assert_recipes_replay(&report, build);
}

/// What must be the same in two sequential explorations: every bug, with its recipe, failure,
/// fingerprint and the timeline that found it.
fn bug_list(report: &SimulationReport) -> Vec<(String, String, Option<u64>, u64)> {
    report
        .explored_bugs()
        .iter()
        .map(|b| {
            (
                b.recipe.to_string(),
                b.failure.clone(),
                b.fingerprint,
                b.timeline,
            )
        })
        .collect()
}

fn bounded(parallelism: usize) -> ExplorationConfig {
    let mut cfg = budget();
    cfg.global_energy = 3_000;
    cfg.parallelism = parallelism;
    cfg
}

#[test]
fn test_sequential_exploration_finds_the_same_recipes_twice() {
    let run = || {
        mazes::lock_maze("locks-3-twice", 3, 50)
            .base_seed(4_000_000)
            .iterations(IterationControl::FixedCount(2_000))
            .explore(bounded(1))
            .run()
            .unwrap()
    };
    let (first, second) = (run(), run());
    assert!(!first.explored_bugs().is_empty(), "{first}");
    assert_eq!(bug_list(&first), bug_list(&second));
    let (a, b) = (
        first.exploration.clone().unwrap(),
        second.exploration.clone().unwrap(),
    );
    assert_eq!(
        (
            a.timelines,
            a.split_points,
            a.energy_used,
            a.energy_returned,
            a.coverage_bits
        ),
        (
            b.timelines,
            b.split_points,
            b.energy_used,
            b.energy_returned,
            b.coverage_bits
        )
    );
    assert_eq!(first.without_timings(), second.without_timings());
}

#[test]
fn test_parallel_exploration_finds_the_same_bugs() {
    let run = |parallelism| {
        mazes::lock_maze("locks-3-parallel", 3, 50)
            .base_seed(4_000_000)
            .iterations(IterationControl::FixedCount(2_000))
            .explore(bounded(parallelism))
            .run()
            .unwrap()
    };
    let (sequential, parallel) = (run(1), run(2));
    let signatures = |r: &SimulationReport| -> BTreeSet<String> {
        r.explored_bugs()
            .iter()
            .map(|b| b.signature.clone())
            .collect()
    };
    assert!(!signatures(&sequential).is_empty(), "{sequential}");
    assert_eq!(signatures(&sequential), signatures(&parallel), "{parallel}");
    let exploration = parallel.exploration.as_ref().unwrap();
    assert_eq!(exploration.parallelism, 2);
    assert!(exploration.peak_children >= 2, "{parallel}");
    assert_recipes_replay(&parallel, || {
        mazes::lock_maze("locks-3-parallel", 3, 50).base_seed(4_000_000)
    });
}

/// A climb: a numeric `sometimes` that improves by doubling steps, and a `sometimes_all`
/// frontier, guard a planted failure.
fn climb() -> SimulationBuilder {
    SimulationBuilder::new("climb")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .base_seed(5_000_000)
        .workload("climber", 1, |ctx| async move {
            let random = ctx.providers.random().clone();
            let mut height = 0u64;
            let mut ropes = [false; 3];
            for step in 0..6usize {
                ctx.providers.time().sleep(Duration::from_millis(5)).await;
                if random.random_range(0..20u64) == 0 {
                    height = height * 2 + 1;
                }
                assert_sometimes_greater_than!(height, 6, "climbed above 6");
                ropes[step % 3] |= random.random_range(0..4u64) == 0;
                assert_sometimes_all!(
                    "every rope tied",
                    [("a", ropes[0]), ("b", ropes[1]), ("c", ropes[2])]
                );
            }
            assert_always!(height < 7, "the summit is out of reach");
            Ok(())
        })
}

#[test]
fn test_numeric_bests_and_frontiers_are_split_points() {
    let report = climb()
        .iterations(IterationControl::FixedCount(300))
        .explore(first_bug(budget()))
        .run()
        .unwrap();
    let exploration = report.exploration.as_ref().unwrap();
    assert!(exploration.split_points >= 3, "{report}");
    assert!(
        report.explored_bugs()[0]
            .signature
            .contains("the summit is out of reach"),
        "{report}"
    );
    assert_recipes_replay(&report, climb);
}

#[test]
fn test_exploration_is_refused_with_more_than_one_job_or_the_determinism_check() {
    let error = mazes::lock_maze("refused", 2, 50)
        .jobs(2)
        .explore(ExplorationConfig::default())
        .run()
        .unwrap_err()
        .to_string();
    assert!(error.contains("jobs is 2"), "{error}");
    assert!(error.contains("one thread"), "{error}");
    let error = mazes::lock_maze("refused", 2, 50)
        .check_determinism(true)
        .explore(ExplorationConfig::default())
        .run()
        .unwrap_err()
        .to_string();
    assert!(error.contains("determinism check"), "{error}");
    let error = mazes::lock_maze("refused", 2, 50)
        .explore(ExplorationConfig::default().with_batch(0))
        .run()
        .unwrap_err()
        .to_string();
    assert!(error.contains("batch is 0"), "{error}");
}

#[test]
fn test_exploration_report_round_trips_and_prints_recipes() {
    let report = mazes::lock_maze("locks-2-json", 2, 50)
        .base_seed(6_000_000)
        .iterations(IterationControl::FixedCount(200))
        .explore(first_bug(budget()))
        .run()
        .unwrap();
    let json = report.to_json().unwrap();
    let back = SimulationReport::from_json(&json).unwrap();
    assert_eq!(back, report);
    let text = report.to_string();
    assert!(text.contains("explore "), "{text}");
    assert!(text.contains("recipe: "), "{text}");
    assert!(text.contains("replay: MOONPOOL_RECIPE="), "{text}");
    // A report written before exploration existed still parses.
    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value.as_object_mut().unwrap().remove("exploration");
    let old = SimulationReport::from_json(&value.to_string()).unwrap();
    assert!(old.exploration.is_none());
    // Merging explored shards sums their figures.
    let merged = SimulationReport::merge(std::slice::from_ref(&report)).unwrap();
    assert_eq!(
        merged.exploration.as_ref().unwrap().timelines,
        report.exploration.as_ref().unwrap().timelines
    );
}

/// Root seeds of the slow maze test: five, two in CI.
fn slow_root_bases() -> Vec<u64> {
    let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    let count = if in_ci { 2 } else { 5 };
    (1..=count).map(|r| 1_000_000 * r).collect()
}

#[test]
fn slow_simulation_explorer_solves_both_mazes_at_k4_from_every_root_seed() {
    for base in slow_root_bases() {
        for (name, build) in [
            (
                "locks",
                Box::new(move || mazes::lock_maze("locks-4", 4, 50).base_seed(base))
                    as Box<dyn Fn() -> SimulationBuilder>,
            ),
            (
                "dungeon",
                Box::new(move || mazes::dungeon("dungeon-4", 4, 50).base_seed(base)),
            ),
        ] {
            let report = build()
                .iterations(IterationControl::FixedCount(100_000))
                .explore(first_bug(budget()))
                .run()
                .unwrap();
            let exploration = report.exploration.as_ref().unwrap();
            // 50^4 = 6.25 million seeds on average for a sweep.
            let timelines = exploration.first_bug_timeline;
            assert!(
                timelines.is_some_and(|t| t < 10_000),
                "{name} from {base}: {timelines:?}\n{report}"
            );
            assert_recipes_replay(&report, &build);
        }
    }
}

#[test]
fn test_root_timelines_are_the_plain_seeds() {
    // Splitting never changes the parent's timeline: each root seed of an exploration runs
    // exactly as the plain seed does, to the same fingerprint.
    let explored = mazes::dungeon("dungeon-roots", 3, 4)
        .base_seed(8_000_000)
        .iterations(IterationControl::FixedCount(30))
        .explore(bounded(1))
        .run()
        .unwrap();
    assert!(explored.exploration.as_ref().unwrap().children > 0);
    let plain = mazes::dungeon("dungeon-roots", 3, 4)
        .base_seed(8_000_000)
        .iterations(IterationControl::FixedCount(30))
        .jobs(1)
        .run()
        .unwrap();
    let prints = |r: &SimulationReport| -> Vec<(u64, u64, Option<String>)> {
        r.seeds
            .iter()
            .map(|s| (s.seed, s.fingerprint, s.failure.clone()))
            .collect()
    };
    // The exploration stops when its energy is spent: compare the roots it ran.
    let roots = prints(&explored);
    assert!(roots.len() >= 2, "{explored}");
    assert_eq!(roots, prints(&plain)[..roots.len()]);
}
