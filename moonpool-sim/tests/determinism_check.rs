//! The determinism check (`check_determinism`, `MOONPOOL_CHECK_DETERMINISM`): immune to state the
//! simulation's closures capture, and still catches real nondeterminism, keeping both runs'
//! verdicts.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moonpool_core::{Providers, TimeProvider};
use moonpool_sim::{IterationControl, SimulationBuilder, WorldConfig};

fn builder(name: &str) -> SimulationBuilder {
    SimulationBuilder::new(name)
        .world_config(WorldConfig::quiet())
        .progress(false)
        .check_determinism(true)
        .iterations(IterationControl::FixedCount(20))
}

#[test]
fn test_state_captured_by_closures_is_not_reported_as_nondeterminism() {
    // The workload's closure keeps a counter across runs: a second run in the same process would
    // start where the first left and sleep for a different time.
    let runs = Arc::new(AtomicU64::new(0));
    let captured = Arc::clone(&runs);
    let report = builder("captured-state")
        .workload("counter", 1, move |ctx| {
            let n = captured.fetch_add(1, Ordering::SeqCst);
            async move {
                ctx.providers
                    .time()
                    .sleep(Duration::from_millis(1 + n % 17))
                    .await;
                Ok(())
            }
        })
        .jobs(1)
        .run()
        .unwrap();
    report.assert_success();
    assert_eq!(report.seeds_run(), 20);
}

#[test]
fn test_hash_order_dependence_is_caught_and_both_verdicts_are_kept() {
    let report = builder("hash-order")
        .workload("hasher", 1, |ctx| async move {
            // Two runs of one seed build two maps with different random hash keys. The sleep
            // follows the first eight keys of the iteration order, so the two runs' traces differ
            // even when their first keys happen to agree (which alone would make both runs fail
            // identically, a seed the check rightly calls deterministic).
            let map: HashMap<u32, u32> = (0..64).map(|i| (i, i)).collect();
            let order: Vec<u32> = map.keys().copied().take(8).collect();
            let first = order[0];
            let wait = order.iter().fold(0u64, |acc, k| acc * 7 + u64::from(*k)) % 100_000;
            ctx.providers
                .time()
                .sleep(Duration::from_micros(wait))
                .await;
            if first.is_multiple_of(2) {
                return Err(format!("first key {first} is even").into());
            }
            Ok(())
        })
        .jobs(1)
        .run()
        .unwrap();
    assert!(report.failed() > 0, "{report}");
    let mut both_verdicts = false;
    for failure in report.failures() {
        let text = failure.failure.as_deref().unwrap();
        assert!(text.contains("nondeterminism"), "{text}");
        both_verdicts |= text.contains("that run failed") && text.contains("that run passed");
    }
    assert!(both_verdicts, "some seed failed in one run only: {report}");
}

#[test]
fn test_wall_clock_dependence_is_caught() {
    let report = builder("wall-clock")
        .workload("clock-reader", 1, |ctx| async move {
            #[allow(clippy::disallowed_methods)]
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            ctx.providers
                .time()
                .sleep(Duration::from_nanos(u64::from(nanos % 1_000_000)))
                .await;
            Ok(())
        })
        .jobs(1)
        .run()
        .unwrap();
    assert_eq!(report.failed(), 20, "{report}");
}
