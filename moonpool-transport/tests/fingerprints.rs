//! Behaviour per seed, pinned: a few fixed seeds of the operation-alphabet workload under chaos
//! (requests and replies in every delivery mode, reconnections, crashes) must keep their
//! fingerprints. A change of the transport that is meant to change nothing observable (a
//! restructure, a refactor) must leave these values as they are; a change of the simulator may
//! move them (check against the simulator before re-pinning).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use moonpool_sim::IterationControl;

/// (seed, fingerprint) of each pinned seed, re-recorded when the simulator gave every fault kind
/// its own random stream (moonpool-sim, independent fault streams); the transport is unchanged.
const PINNED: [(u64, u64); 10] = [
    (1, 0x1950_5711_76ce_b3d9),
    (2, 0xdc73_368f_892d_2f5f),
    (3, 0x5420_c13f_332d_7fd6),
    (4, 0xd684_1198_7fe0_824c),
    (5, 0xc144_3f68_73d9_35c7),
    (6, 0x66b4_ab59_c336_6a9f),
    (7, 0x72c1_ffe7_7494_bd1c),
    (8, 0x780f_9b4d_4b90_2e1e),
    (9, 0x155f_877f_915a_6bcd),
    (10, 0x7daf_3a35_b3c7_6f95),
];

#[test]
fn test_sim_alphabet_fingerprints_are_pinned() {
    let seeds: Vec<u64> = PINNED.iter().map(|(seed, _)| *seed).collect();
    let report = common::alphabet::simulation("transport-alphabet")
        .seeds(seeds.clone())
        .iterations(IterationControl::FixedCount(seeds.len()))
        .run()
        .unwrap();
    let found: Vec<(u64, u64)> = report
        .seeds
        .iter()
        .map(|outcome| (outcome.seed, outcome.fingerprint))
        .collect();
    for outcome in &report.seeds {
        println!(
            "seed {} fingerprint {:#018x} events {} sim_time {:?} failure {:?}",
            outcome.seed, outcome.fingerprint, outcome.events, outcome.sim_time, outcome.failure
        );
    }
    assert_eq!(report.failed(), 0, "every pinned seed passes:\n{report}");
    assert_eq!(found, PINNED, "fingerprints moved:\n{report}");
}
