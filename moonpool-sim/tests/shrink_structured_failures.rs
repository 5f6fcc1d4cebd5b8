//! Structured failures: every failed seed in the report and its JSON has a kind, a site, the
//! fault kinds that fired (with counts) and, when shrunk, the minimal set; the text the tests of
//! other files grep is unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use moonpool_core::{Providers, TaskProvider, TimeProvider, assert_always};
use moonpool_sim::{
    FailureKind, IterationControl, SimulationBuilder, SimulationReport, WorldConfig,
};

fn quiet(name: &str) -> SimulationBuilder {
    SimulationBuilder::new(name)
        .world_config(WorldConfig::quiet())
        .progress(false)
        .jobs(1)
        .iterations(IterationControl::FixedCount(1))
}

fn only_failure(report: &SimulationReport) -> (FailureKind, String, String) {
    let seed = &report.seeds[0];
    let info = seed.failure_info.as_ref().expect("the seed failed");
    // In a world without faults: nothing fired, and shrinking needs no run.
    assert!(info.faults_fired.is_empty(), "{info:?}");
    let shrunk = info.shrunk.as_ref().expect("the first failure is shrunk");
    assert_eq!((shrunk.minimal.len(), shrunk.runs), (0, 0));
    let json = report.to_json().unwrap();
    assert!(
        json.contains(&format!("\"kind\": \"{}\"", info.kind.name())),
        "{json}"
    );
    (info.kind, info.site.clone(), seed.failure.clone().unwrap())
}

#[test]
fn test_every_failure_kind_is_reported_with_its_structure() {
    let assertion = quiet("assertion")
        .workload("w", 1, |_ctx| async move {
            assert_always!(1 + 1 == 3, "arithmetic holds");
            Ok(())
        })
        .run()
        .unwrap();
    let (kind, site, text) = only_failure(&assertion);
    assert_eq!(kind, FailureKind::Assertion);
    assert!(
        site.starts_with("assert_always \"arithmetic holds\" at "),
        "{site}"
    );
    assert!(site.contains("shrink_structured_failures.rs:"), "{site}");
    assert!(
        text.contains("assert_always \"arithmetic holds\" failed at"),
        "{text}"
    );

    let invariant = quiet("invariant")
        .invariant("never", |_state| Err("broken".to_string()))
        .workload("w", 1, |ctx| async move {
            ctx.providers.time().sleep(Duration::from_millis(1)).await;
            Ok(())
        })
        .run()
        .unwrap();
    let (kind, site, _) = only_failure(&invariant);
    assert_eq!(
        (kind, site.as_str()),
        (FailureKind::Invariant, "invariant 'never'")
    );

    let panic = quiet("panic")
        .workload("w", 1, |_ctx| async move {
            if std::hint::black_box(true) {
                panic!("boom");
            }
            Ok(())
        })
        .run()
        .unwrap();
    let (kind, site, _) = only_failure(&panic);
    assert_eq!(kind, FailureKind::Panic);
    assert!(site.contains("w-0"), "{site}");

    // A deadlock (nothing scheduled at all) cannot happen under the runner, whose phases keep
    // a timer; `SimWorld` reports it, and `report_failure`'s unit tests classify it.

    let busy = quiet("busy")
        .world_config({
            let mut cfg = WorldConfig::quiet();
            cfg.poll_bound = 1000;
            cfg
        })
        .workload("w", 1, |ctx| async move {
            loop {
                ctx.providers.task().yield_now().await;
            }
        })
        .run()
        .unwrap();
    assert_eq!(only_failure(&busy).0, FailureKind::BusyLoop);

    let budget = quiet("budget")
        .time_budget(Duration::from_secs(1))
        .chaos_duration(Duration::MAX)
        .workload("w", 1, |ctx| async move {
            ctx.providers.time().sleep(Duration::from_secs(10)).await;
            Ok(())
        })
        .run()
        .unwrap();
    let (kind, site, _) = only_failure(&budget);
    assert_eq!(
        (kind, site.as_str()),
        (FailureKind::Budget, "simulated-time budget")
    );

    let settle = quiet("settle")
        .chaos_duration(Duration::from_secs(1))
        .settle_timeout(Duration::from_secs(1))
        .workload("w", 1, |ctx| async move {
            ctx.providers.time().sleep(Duration::from_secs(100)).await;
            Ok(())
        })
        .run()
        .unwrap();
    assert_eq!(only_failure(&settle).0, FailureKind::SettleTimeout);

    let workload = quiet("workload")
        .workload("w", 1, |_ctx| async move { Err("lost a write".into()) })
        .run()
        .unwrap();
    let (kind, site, text) = only_failure(&workload);
    assert_eq!(
        (kind, site.as_str()),
        (FailureKind::Workload, "workload 'w-0' run")
    );
    assert!(text.contains("workload 'w-0' failed in its run phase: lost a write"));

    // The table keeps its lines and adds the structure under each failed seed.
    let table = workload.to_string();
    assert!(table.contains("    replay: MOONPOOL_SEED="), "{table}");
    assert!(
        table.contains("    kind:   workload at workload 'w-0' run; faults fired: none"),
        "{table}"
    );
    // Reports written before the structure existed still parse.
    let mut json: serde_json::Value = serde_json::from_str(&workload.to_json().unwrap()).unwrap();
    json["seeds"][0]
        .as_object_mut()
        .unwrap()
        .remove("failure_info");
    let old = SimulationReport::from_json(&json.to_string()).unwrap();
    assert!(old.seeds[0].failure_info.is_none());
}
