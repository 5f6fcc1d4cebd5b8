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
    (1, 0xf512_5a87_62bc_8460),
    (2, 0x9eb3_09ff_b5d7_43e9),
    (3, 0x95cb_e9d1_24f7_fefc),
    (4, 0x5c43_b1a0_f7f4_ad5f),
    (5, 0xdc36_0f80_818e_d9ae),
    (6, 0xef12_6350_ca6c_fc87),
    (7, 0x549a_221e_df9d_11c8),
    (8, 0x7c61_fb18_2378_47e7),
    (9, 0x2cb5_6de5_0339_6706),
    (10, 0xb4ef_eda9_83ca_01e9),
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
