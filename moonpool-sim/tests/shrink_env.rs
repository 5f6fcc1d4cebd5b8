//! `MOONPOOL_FAULTS` and `MOONPOOL_SHRINK`: the replay of a reduced run, and shrinking on
//! demand. One test only, so no other test of this binary reads the environment meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use moonpool_core::{Providers, TimeProvider, assert_always};
use moonpool_sim::{ClockConfiguration, FaultKind, IterationControl, SimulationBuilder};

fn lease() -> SimulationBuilder {
    SimulationBuilder::new("drifting-lease-env")
        .progress(false)
        .jobs(1)
        .clock(ClockConfiguration::default())
        .chaos_duration(Duration::from_secs(2))
        .iterations(IterationControl::FixedCount(4))
        .workload("lease", 1, |ctx| async move {
            let time = ctx.providers.time().clone();
            let lease = Duration::from_millis(300);
            let mut expiry = time.now() + lease;
            let mut granted_at = time.timer();
            while ctx.chaos_active() {
                time.sleep(Duration::from_millis(7)).await;
                if time.timer() >= granted_at + lease {
                    assert_always!(time.now() >= expiry, "a new lease never overlaps the old");
                    expiry = time.now() + lease;
                    granted_at = time.timer();
                }
            }
            Ok(())
        })
}

fn set(name: &str, value: &str) {
    // SAFETY: the only test of this binary; nothing else reads the environment meanwhile.
    unsafe { std::env::set_var(name, value) };
}

fn unset(name: &str) {
    // SAFETY: as in `set`.
    unsafe { std::env::remove_var(name) };
}

#[test]
fn test_fault_and_shrink_variables_are_honoured_and_checked() {
    for name in ["MOONPOOL_SEED", "MOONPOOL_FAULTS", "MOONPOOL_SHRINK"] {
        unset(name);
    }
    // A full run: the first failure is shrunk by default, to clock drift.
    let report = lease().run().unwrap();
    let failed = report.failures().next().expect("a seed fails").clone();
    let shrunk = failed.failure_info.unwrap().shrunk.unwrap();
    assert_eq!(shrunk.minimal, ["clock.drift"]);

    // The reduced replay's variables: the seed fails the same way with only clock drift, and
    // the report's own replay line carries the mask.
    set("MOONPOOL_SEED", &failed.seed.to_string());
    set("MOONPOOL_FAULTS", "clock.drift");
    set("MOONPOOL_SHRINK", "off");
    let replay = lease().run().unwrap();
    assert_eq!(replay.seeds_run(), 1);
    let info = replay.seeds[0].failure_info.clone().unwrap();
    assert_eq!(
        info.faults_fired.keys().collect::<Vec<_>>(),
        ["clock.drift"]
    );
    assert!(info.shrunk.is_none());
    assert!(
        replay.seeds[0]
            .replay
            .as_deref()
            .unwrap()
            .starts_with("MOONPOOL_FAULTS=clock.drift MOONPOOL_SEED="),
        "{replay}"
    );

    // Every kind but drift: the same seed passes.
    set("MOONPOOL_FAULTS", "-clock.drift");
    let without = lease().run().unwrap();
    assert_eq!(without.failed(), 0, "{without}");

    // Shrinking on demand for the replayed seed.
    set("MOONPOOL_FAULTS", "all");
    set("MOONPOOL_SHRINK", "first");
    let on_demand = lease().run().unwrap();
    let shrunk = on_demand.seeds[0]
        .failure_info
        .clone()
        .unwrap()
        .shrunk
        .unwrap();
    assert_eq!(shrunk.minimal, [FaultKind::ClockDrift.name()]);

    // Bad values are typed setup errors naming the value.
    set("MOONPOOL_FAULTS", "clock.drfit");
    let error = lease().run().unwrap_err().to_string();
    assert!(
        error.contains("MOONPOOL_FAULTS") && error.contains("clock.drfit"),
        "{error}"
    );
    set("MOONPOOL_FAULTS", "all");
    set("MOONPOOL_SHRINK", "sometimes");
    let error = lease().run().unwrap_err().to_string();
    assert!(error.contains("MOONPOOL_SHRINK='sometimes'"), "{error}");
    for name in ["MOONPOOL_SEED", "MOONPOOL_FAULTS", "MOONPOOL_SHRINK"] {
        unset(name);
    }
}
