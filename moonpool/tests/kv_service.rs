#![cfg(all(feature = "sim", feature = "transport", feature = "tokio"))]
//! The end-to-end example (`examples/kv_service.rs`, guide `docs/guides/end-to-end-service.md`):
//! the durable key-value service passes under chaos, its planted bug (acknowledging before the
//! sync) is found and replays, it is deterministic, and the same code runs on Tokio.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/kv_service.rs"]
mod kv_service;

#[test]
fn test_kv_service_passes_under_chaos() {
    let report = kv_service::simulation(false, 16)
        .progress(false)
        .run()
        .unwrap();
    assert_eq!(report.failed(), 0, "{report}");
    assert!(
        report.faults.get("process.crash").copied().unwrap_or(0) > 0,
        "{report}"
    );
    assert!(
        report.faults.keys().any(|k| k.starts_with("network.")),
        "{report}"
    );
    report.assert_success();
}

#[test]
fn test_kv_service_finds_acks_before_sync_and_replays_them() {
    let report = kv_service::simulation(true, 20)
        .progress(false)
        .run()
        .unwrap();
    let failed = report
        .failures()
        .next()
        .expect("acknowledging before the sync loses a write in 20 seeds")
        .clone();
    let failure = failed.failure.clone().unwrap();
    assert!(
        failure.contains("no acknowledged write is lost"),
        "{failure}"
    );
    let replay = failed.replay.clone().unwrap();
    assert!(
        replay.starts_with(&format!("MOONPOOL_SEED={} cargo run", failed.seed))
            && replay.ends_with("--example kv_service -- --sim --bug"),
        "{replay}"
    );
    // What the printed command does: that seed alone, to the same failure and fingerprint.
    let again = kv_service::simulation(true, 1)
        .progress(false)
        .seeds([failed.seed])
        .run()
        .unwrap();
    assert_eq!(again.seeds[0].failure.as_deref(), Some(failure.as_str()));
    assert_eq!(again.seeds[0].fingerprint, failed.fingerprint);
}

#[test]
fn test_kv_service_is_deterministic() {
    let report = kv_service::simulation(false, 3)
        .progress(false)
        .check_determinism(true)
        .run()
        .unwrap();
    assert_eq!(report.failed(), 0, "{report}");
}

#[test]
fn test_kv_service_runs_on_tokio_over_loopback_with_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let lines = runtime.block_on(kv_service::on_tokio(dir.path())).unwrap();
    assert!(lines[0].starts_with("serving on 127.0.0.1:"), "{lines:?}");
    assert!(
        lines.contains(&"put apple = 1: stored 2".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"after restart, get apple: Some(2)".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"after restart, get pear: Some(5)".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"after restart, get plum: None".to_string()),
        "{lines:?}"
    );
    // The log is a real file in the directory.
    assert!(std::fs::metadata(dir.path().join("kv.log")).unwrap().len() > 0);
}

#[test]
fn slow_simulation_kv_service() {
    let report = kv_service::simulation(false, 1_000)
        .progress(false)
        .ci_max_seeds(100)
        .run()
        .unwrap();
    assert_eq!(report.failed(), 0, "{report}");
    report.assert_success();
}
