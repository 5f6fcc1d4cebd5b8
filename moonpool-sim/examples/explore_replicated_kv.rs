//! The main example's planted stale read, found by exploration and by plain seeds.
//!
//! `moonpool/examples/replicated_kv.rs` is included unchanged (this crate stands in for the
//! `moonpool` facade it imports), built with `--bug`, and run twice from the same first seed:
//! plain seeds until one fails, and exploration (sequential, stopping at its first bug). Both
//! report timelines and wall time to the first failure; the explorer's first recipe is replayed
//! in one process to the same failure and fingerprint.
//!
//! ```sh
//! cargo run --release -p moonpool-sim --features explorer --example explore_replicated_kv
//! cargo run --release -p moonpool-sim --features explorer --example explore_replicated_kv -- --bases 5
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

// `replicated_kv.rs` imports `moonpool::sim::...` and `moonpool::...`: this crate answers to
// that name with the same items.
extern crate self as moonpool;
pub use moonpool_core::*;
pub mod sim {
    pub use moonpool_sim::*;
}

#[allow(dead_code, unreachable_pub)]
#[path = "../../moonpool/examples/replicated_kv.rs"]
mod replicated_kv;

use std::time::{Duration, Instant};

use moonpool_sim::{ExplorationConfig, IterationControl};

/// The budget: at most 2,000 child timelines, one process at a time.
fn budget() -> ExplorationConfig {
    ExplorationConfig::default()
        .with_global_energy(2_000)
        .with_stop_on_first_bug(true)
        .sequential()
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let bases = arg("--bases", 3);
    let config = budget();
    println!(
        "replicated_kv --bug; explorer budget: global_energy {}, per_split {}, min_per_split {}, batch {}, parallelism 1",
        config.global_energy, config.per_split, config.min_per_split, config.batch
    );
    println!(
        "{:>12} | {:>14} {:>10} | {:>18} {:>10} {:>10}",
        "first seed", "plain: seeds", "wall", "explore: timelines", "roots", "wall"
    );
    for b in 0..bases {
        let base = 10_000 * (b + 1);
        let started = Instant::now();
        let plain = replicated_kv::simulation(true, 300)
            .progress(false)
            .jobs(1)
            .base_seed(base)
            .run()
            .unwrap();
        let plain_wall = started.elapsed();
        let first = plain.seeds.iter().position(|s| s.failure.is_some());
        let plain_to_first = first.map(|i| i + 1);
        #[allow(clippy::cast_precision_loss)]
        let plain_wall_to_first = first.map(|i| {
            let spent: Duration = plain.seeds[..=i].iter().map(|s| s.wall_time).sum();
            spent
        });

        let started = Instant::now();
        let explored = replicated_kv::simulation(true, 300)
            .progress(false)
            .base_seed(base)
            .iterations(IterationControl::FixedCount(300))
            .explore(budget())
            .run()
            .unwrap();
        let explore_wall = started.elapsed();
        let e = explored.exploration.as_ref().unwrap();
        println!(
            "{base:>12} | {:>14} {:>10} | {:>18} {:>10} {:>10}",
            plain_to_first.map_or("none in 300".to_string(), |n| n.to_string()),
            plain_wall_to_first.map_or(format!("{plain_wall:.2?}"), |w| format!("{w:.2?}")),
            e.first_bug_timeline
                .map_or("none".to_string(), |t| t.to_string()),
            e.roots,
            e.first_bug_wall
                .map_or(format!("{explore_wall:.2?}"), |w| format!("{w:.2?}")),
        );
        if let Some(bug) = explored.explored_bugs().first() {
            println!("{:>12}   {}", "", bug.failure);
            println!("{:>12}   recipe {}", "", bug.recipe);
            let replay = replicated_kv::simulation(true, 1)
                .progress(false)
                .replay_recipe(bug.recipe.clone())
                .run()
                .unwrap();
            let outcome = &replay.seeds[0];
            let same = outcome.failure.as_deref() == Some(bug.failure.as_str())
                && Some(outcome.fingerprint) == bug.fingerprint;
            println!(
                "{:>12}   replayed in one process: {}",
                "",
                if same {
                    "same failure and fingerprint"
                } else {
                    "DIFFERENT"
                }
            );
            assert!(same, "{replay}");
        }
    }
}
