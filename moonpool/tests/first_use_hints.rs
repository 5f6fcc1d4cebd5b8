#![cfg(all(feature = "sim", feature = "tokio"))]
//! A task that calls a Tokio runtime API inside the simulator fails with a hint naming the
//! provider to use, not only with Tokio's "no reactor running".
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use moonpool::prelude::*;

const HINT: &str = "hint: this task called a Tokio runtime API";

#[test]
fn test_tokio_sleep_in_a_workload_names_the_time_provider() {
    let report = SimulationBuilder::new("tokio-in-sim")
        .workload("w", 1, |_ctx| async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok(())
        })
        .iterations(IterationControl::FixedCount(1))
        .progress(false)
        .run()
        .unwrap();
    let failure = report.seeds[0].failure.clone().expect("the seed fails");
    assert!(failure.contains(HINT), "{failure}");
    assert!(failure.contains("providers.time().sleep"), "{failure}");
}

#[test]
fn test_tokio_spawn_in_a_detached_task_names_the_task_provider() {
    let mut world = SimWorld::with_config(1, WorldConfig::quiet()).unwrap();
    world
        .add_workload("w", "10.0.0.1", |providers| async move {
            drop(providers.task().spawn("detached", async {
                drop(tokio::spawn(async {}));
            }));
            providers.time().sleep(Duration::from_secs(1)).await;
        })
        .unwrap();
    let error = world.run().unwrap_err().to_string();
    assert!(error.contains(HINT), "{error}");
    assert!(error.contains("providers.task().spawn"), "{error}");
}

#[test]
fn test_other_panics_get_no_hint() {
    let report = SimulationBuilder::new("plain-panic")
        .workload("w", 1, |_ctx| async {
            panic!("my own bug");
        })
        .iterations(IterationControl::FixedCount(1))
        .progress(false)
        .run()
        .unwrap();
    let failure = report.seeds[0].failure.clone().expect("the seed fails");
    assert!(
        failure.contains("my own bug") && !failure.contains(HINT),
        "{failure}"
    );
}
