#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! A `MOONPOOL_SEED` left set turns a sweep into one seed: the report header says so. Alone in
//! its own test binary, because it sets the process's environment.

#[test]
fn test_a_stray_moonpool_seed_is_named_in_the_report_header() {
    use moonpool_sim::{IterationControl, SimulationBuilder};
    // SAFETY: the only test of this binary, so no other thread reads the environment meanwhile.
    unsafe { std::env::set_var("MOONPOOL_SEED", "42") };
    let report = SimulationBuilder::new("first-use-stray-seed")
        .workload("w", 1, |_ctx| async { Ok(()) })
        .iterations(IterationControl::FixedCount(50))
        .progress(false)
        .run();
    unsafe { std::env::remove_var("MOONPOOL_SEED") };
    let report = report.unwrap();
    assert_eq!(report.seeds_run(), 1);
    let text = report.to_string();
    let header = text.lines().nth(1).unwrap();
    assert!(
        header.contains("MOONPOOL_SEED=42 is set: only that seed ran"),
        "{header}"
    );
}
