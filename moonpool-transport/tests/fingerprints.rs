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
    (1, 0xa374_52b1_db3b_21e0),
    (2, 0xc487_3867_05af_482b),
    (3, 0x3ed5_4092_b5cc_a174),
    (4, 0xfcd7_604b_26be_2c29),
    (5, 0x9cfb_cdda_055b_bcfd),
    (6, 0xed7e_a81c_48d7_a085),
    (7, 0x1cf9_87ea_d10f_edac),
    (8, 0x245f_f32f_7af6_c66c),
    (9, 0x22fe_9a02_8097_9d12),
    (10, 0x2906_37c2_5cb9_b26a),
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
