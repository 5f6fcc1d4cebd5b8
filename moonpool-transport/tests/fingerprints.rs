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
    (1, 0xabea_f797_e94e_8e07),
    (2, 0x9558_c559_2ef9_3c21),
    (3, 0x266e_2bb4_111c_7827),
    (4, 0xaecb_1819_0d1d_db68),
    (5, 0xd790_aca1_721d_8629),
    (6, 0x3d3f_05a8_840d_ed9d),
    (7, 0xfa4f_f797_e3cd_8c3b),
    (8, 0x190c_79a5_1574_2cf6),
    (9, 0x2cb5_6de5_0339_6706),
    (10, 0xb1be_b1b2_c360_8973),
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
