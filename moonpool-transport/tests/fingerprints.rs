//! Behaviour per seed, pinned: a few fixed seeds of the operation-alphabet workload under chaos
//! (requests and replies in every delivery mode, reconnections, crashes) must keep their
//! fingerprints. A change of the transport that is meant to change nothing observable (a
//! restructure, a refactor) must leave these values as they are; a change of the simulator may
//! move them (check against the simulator before re-pinning).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use moonpool_sim::IterationControl;

/// (seed, fingerprint) of each pinned seed, recorded on the transport before its restructure into
/// floors (wire, peer and connection, dispatch, RPC).
const PINNED: [(u64, u64); 10] = [
    (1, 0xfea9_8b62_23f2_e76f),
    (2, 0xf6b5_c6da_ebd2_accd),
    (3, 0xdf8d_515f_261b_e12d),
    (4, 0x38cd_cb0d_8e91_ea09),
    (5, 0x775c_3956_8d02_4f0e),
    (6, 0x62ef_35ec_11c4_9635),
    (7, 0xd8e7_2e26_0085_bf10),
    (8, 0x7ceb_f42a_48b3_f39d),
    (9, 0x56ea_285f_5d52_6b08),
    (10, 0xf521_2377_065f_b02f),
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
