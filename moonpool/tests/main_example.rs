#![cfg(feature = "sim")]
//! The README's main example: the replicated register passes without the planted bug, fails with
//! it, and a failing seed replays to the same failure and fingerprint.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/replicated_kv.rs"]
mod replicated_kv;

#[test]
fn test_main_example_passes_without_the_bug() {
    let report = replicated_kv::simulation(false, 40)
        .progress(false)
        .run()
        .unwrap();
    assert_eq!(report.failed(), 0, "{report}");
    assert!(report.faults.values().sum::<u64>() > 0, "chaos fired");
}

#[test]
fn test_main_example_finds_the_planted_bug_and_replays_it() {
    let report = replicated_kv::simulation(true, 40)
        .progress(false)
        .run()
        .unwrap();
    let failed = report
        .failures()
        .next()
        .expect("the planted bug is found in 40 seeds")
        .clone();
    let failure = failed.failure.clone().unwrap();
    assert!(
        failure.contains("\"reads never go back in time\""),
        "{failure}"
    );
    assert!(
        failed
            .replay
            .as_deref()
            .unwrap()
            .starts_with(&format!("MOONPOOL_SEED={} ", failed.seed))
    );
    // What the replay command does: run just that seed.
    let replay = replicated_kv::simulation(true, 1)
        .progress(false)
        .seeds([failed.seed])
        .run()
        .unwrap();
    let replayed = &replay.seeds[0];
    assert_eq!(replayed.failure.as_deref(), Some(failure.as_str()));
    assert_eq!(replayed.fingerprint, failed.fingerprint);
}

#[test]
fn slow_simulation_main_example_full_run() {
    let report = replicated_kv::simulation(false, 300)
        .progress(false)
        .ci_max_seeds(100)
        .run()
        .unwrap();
    assert_eq!(report.failed(), 0, "{report}");
}
