//! Replaying a recipe (no explorer needed): a recipe without split points is the plain seed, a
//! recipe with split points reseeds the run where it says and replays the same way every time,
//! and `MOONPOOL_RECIPE`'s value is checked before the first seed.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use moonpool_core::{Providers, RandomProvider, TimeProvider, assert_sometimes};
use moonpool_sim::{
    IterationControl, Recipe, RecipeStep, SimulationBuilder, SimulationReport, WorldConfig,
};

/// Ten coin flips, each an assertion evaluation; the run's fingerprint depends on every flip.
fn coins() -> SimulationBuilder {
    SimulationBuilder::new("coins")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .iterations(IterationControl::FixedCount(1))
        .workload("flipper", 1, |ctx| async move {
            let random = ctx.providers.random().clone();
            for _ in 0..10 {
                let pause = random.random_range(1..100u64);
                ctx.providers
                    .time()
                    .sleep(Duration::from_millis(pause))
                    .await;
                assert_sometimes!(random.random_bool(0.5), "heads");
            }
            Ok(())
        })
}

fn fingerprint(report: &SimulationReport) -> u64 {
    assert_eq!(report.seeds.len(), 1, "{report}");
    report.seeds[0].fingerprint
}

#[test]
fn test_a_recipe_without_split_points_is_the_plain_seed() {
    let plain = coins().seeds([42]).run().unwrap();
    let replayed = coins().replay_recipe("42".parse().unwrap()).run().unwrap();
    assert_eq!(fingerprint(&plain), fingerprint(&replayed));
    assert_eq!(replayed.seeds[0].seed, 42);
}

#[test]
fn test_a_recipe_reseeds_where_it_says_and_replays_identically() {
    let recipe = Recipe {
        seed: 42,
        steps: vec![
            RecipeStep {
                position: 3,
                seed: 0xfeed,
            },
            RecipeStep {
                position: 7,
                seed: 0xbeef,
            },
        ],
    };
    let plain = fingerprint(&coins().seeds([42]).run().unwrap());
    let once = fingerprint(&coins().replay_recipe(recipe.clone()).run().unwrap());
    let twice = fingerprint(&coins().replay_recipe(recipe.clone()).run().unwrap());
    assert_ne!(plain, once, "the reseeds changed the run");
    assert_eq!(once, twice, "a recipe replays the same way every time");
    // Another child seed at the same point is another timeline.
    let mut other = recipe.clone();
    other.steps[1].seed = 0xbeee;
    assert_ne!(
        once,
        fingerprint(&coins().replay_recipe(other).run().unwrap())
    );
    // A split point past the end of the run changes nothing.
    let late = Recipe {
        seed: 42,
        steps: vec![RecipeStep {
            position: 1_000,
            seed: 1,
        }],
    };
    assert_eq!(
        plain,
        fingerprint(&coins().replay_recipe(late).run().unwrap())
    );
}
