//! The `moonpool-report` command: merging shard reports and showing them.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

use moonpool_core::{Providers, RandomProvider, assert_sometimes};
use moonpool_sim::{IterationControl, SimulationBuilder, SimulationReport, WorldConfig};

fn shard(index: usize) -> SimulationReport {
    SimulationBuilder::new("cli")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .jobs(1)
        .iterations(IterationControl::FixedCount(8))
        .shard(index, 2)
        .workload("w", 1, |ctx| async move {
            assert_sometimes!(ctx.providers.random().random_bool(0.5), "heads");
            Ok(())
        })
        .run()
        .unwrap()
}

#[test]
fn test_merge_command_combines_shards() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = (0..2)
        .map(|i| {
            let path = dir.path().join(format!("shard-{i}.json"));
            shard(i).write_json(&path).unwrap();
            path
        })
        .collect();
    let out = dir.path().join("merged.json");
    let status = Command::new(env!("CARGO_BIN_EXE_moonpool-report"))
        .arg("merge")
        .arg(&out)
        .args(&paths)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        stdout.contains("seeds     8 run, 8 passed, 0 failed (merged from 2 shards)"),
        "{stdout}"
    );
    let merged = SimulationReport::from_json(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(merged.seeds_run(), 8);
}

#[test]
fn test_report_command_rejects_bad_input() {
    let output = Command::new(env!("CARGO_BIN_EXE_moonpool-report"))
        .arg("show")
        .arg("/no/such/file.json")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/no/such/file.json"));
    let output = Command::new(env!("CARGO_BIN_EXE_moonpool-report"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}
