//! Exploration of the main example with its planted bug (`moonpool/examples/replicated_kv.rs`,
//! included unchanged; this test crate stands in for the `moonpool` facade it imports): the
//! explorer finds the stale read and its recipe replays to the same failure and fingerprint.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]
#![cfg(all(feature = "explorer", any(target_os = "linux", target_os = "macos")))]

extern crate self as moonpool;
pub use moonpool_core::*;
pub mod sim {
    pub use moonpool_sim::*;
}

#[allow(dead_code)]
#[path = "../../moonpool/examples/replicated_kv.rs"]
mod replicated_kv;

use moonpool_sim::{ExplorationConfig, IterationControl};

#[test]
fn slow_simulation_explorer_finds_the_main_example_stale_read_and_replays_it() {
    let report = replicated_kv::simulation(true, 50)
        .progress(false)
        .base_seed(10_000)
        .iterations(IterationControl::FixedCount(50))
        .explore(
            ExplorationConfig::default()
                .with_global_energy(500)
                .with_stop_on_first_bug(true)
                .sequential(),
        )
        .run()
        .unwrap();
    let bug = report
        .explored_bugs()
        .first()
        .unwrap_or_else(|| panic!("{report}"))
        .clone();
    assert!(
        bug.signature.contains("reads never go back in time"),
        "{}",
        bug.signature
    );
    let replay = replicated_kv::simulation(true, 1)
        .progress(false)
        .replay_recipe(bug.recipe.clone())
        .run()
        .unwrap();
    let outcome = &replay.seeds[0];
    assert_eq!(outcome.failure.as_deref(), Some(bug.failure.as_str()));
    assert_eq!(Some(outcome.fingerprint), bug.fingerprint);
}
