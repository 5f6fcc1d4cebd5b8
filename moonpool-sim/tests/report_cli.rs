//! The `moonpool-report` command: merging shard reports and showing them.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use moonpool_core::{Providers, RandomProvider, assert_sometimes};
use moonpool_sim::{IterationControl, SimulationBuilder, SimulationReport, WorldConfig};

fn sim(name: &str) -> SimulationBuilder {
    SimulationBuilder::new(name)
        .world_config(WorldConfig::quiet())
        .progress(false)
        .jobs(1)
        .iterations(IterationControl::FixedCount(8))
        .workload("w", 1, |ctx| async move {
            assert_sometimes!(ctx.providers.random().random_bool(0.5), "heads");
            Ok(())
        })
}

fn shard_of(index: usize, count: usize) -> SimulationReport {
    sim("cli").shard(index, count).run().unwrap()
}

fn shard(index: usize) -> SimulationReport {
    shard_of(index, 2)
}

/// Writes `reports` as JSON files in `dir`; returns their paths.
fn write_all(dir: &Path, reports: &[SimulationReport]) -> Vec<PathBuf> {
    reports
        .iter()
        .enumerate()
        .map(|(i, report)| {
            let path = dir.join(format!("in-{i}.json"));
            report.write_json(&path).unwrap();
            path
        })
        .collect()
}

fn merge_command(out: &Path, inputs: &[PathBuf]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moonpool-report"))
        .arg("merge")
        .arg(out)
        .args(inputs)
        .output()
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

#[test]
fn test_shard_report_records_its_shard() {
    let report = shard_of(2, 4);
    let shard = report.shard.unwrap();
    assert_eq!((shard.index, shard.count), (2, 4));
    assert!(report.seeds.iter().all(|s| s.index % 4 == 2));
    let unsharded = sim("cli").run().unwrap();
    assert_eq!(unsharded.shard, None);
}

#[test]
fn test_merge_refuses_the_same_shard_twice() {
    let error = SimulationReport::merge(&[shard(0), shard(1), shard(0)]).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("shard 0/2 is given twice"), "{message}");
    assert!(
        message.contains("#0") && message.contains("#2"),
        "{message}"
    );
}

#[test]
fn test_merge_refuses_overlapping_seeds() {
    // Two whole runs carry no shard information; their seeds overlap.
    let whole = sim("cli").run().unwrap();
    let message = SimulationReport::merge(&[whole.clone(), whole])
        .unwrap_err()
        .to_string();
    assert!(message.contains("seed index 0"), "{message}");
    assert!(message.contains("count twice"), "{message}");
}

#[test]
fn test_merge_refuses_different_simulations() {
    let other = sim("other").shard(1, 2).run().unwrap();
    let message = SimulationReport::merge(&[shard(0), other])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("'other'") && message.contains("'cli'"),
        "{message}"
    );
}

#[test]
fn test_merge_refuses_different_shard_counts() {
    let message = SimulationReport::merge(&[shard_of(0, 2), shard_of(1, 3)])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("1/3") && message.contains("0/2"),
        "{message}"
    );
}

#[test]
fn test_merge_refuses_shards_mixed_with_whole_runs() {
    let whole = sim("cli").seeds([1000, 1001]).run().unwrap();
    let mut moved = whole.clone();
    for seed in &mut moved.seeds {
        seed.index += 100;
    }
    let message = SimulationReport::merge(&[shard(0), moved])
        .unwrap_err()
        .to_string();
    assert!(message.contains("not a shard"), "{message}");
}

#[test]
fn test_merge_refuses_empty_input() {
    let message = SimulationReport::merge(&[]).unwrap_err().to_string();
    assert!(message.contains("no reports"), "{message}");
}

#[test]
fn test_merge_reports_missing_shards() {
    let merged =
        SimulationReport::merge(&[shard_of(0, 4), shard_of(1, 4), shard_of(3, 4)]).unwrap();
    assert_eq!(merged.missing_shards, vec![2]);
    assert_eq!(merged.seeds_run(), 6);
    assert_eq!(merged.failed(), 0);
    assert!(!merged.is_success(), "a partial merge is not a success");
    let text = merged.to_string();
    assert!(text.contains("missing shards (1): 2"), "{text}");
    assert!(text.contains("merged from 3 of 4 shards"), "{text}");
    // A partial merge cannot be merged again: it does not say which shards it holds.
    let message = SimulationReport::merge(&[merged, shard_of(2, 4)])
        .unwrap_err()
        .to_string();
    assert!(message.contains("partial merge"), "{message}");
}

#[test]
fn test_complete_merge_is_a_whole_run() {
    let merged = SimulationReport::merge(&[
        shard_of(3, 4),
        shard_of(1, 4),
        shard_of(0, 4),
        shard_of(2, 4),
    ])
    .unwrap();
    assert!(merged.missing_shards.is_empty());
    assert_eq!(merged.shard, None);
    merged.assert_success();
    let whole = sim("cli").run().unwrap();
    assert_eq!(merged.without_timings(), whole.without_timings());
}

#[test]
fn test_report_json_without_shard_fields_still_parses() {
    let report = shard(0);
    let mut json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    let object = json.as_object_mut().unwrap();
    assert!(object.remove("shard").is_some());
    assert!(object.remove("missing_shards").is_some());
    let old = SimulationReport::from_json(&json.to_string()).unwrap();
    assert_eq!(old.shard, None);
    assert!(old.missing_shards.is_empty());
    assert_eq!(old.seeds, report.seeds);
}

#[test]
fn test_merge_command_refuses_the_same_shard_twice() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = write_all(dir.path(), &[shard(0), shard(1), shard(1)]);
    let out = dir.path().join("merged.json");
    let output = merge_command(&out, &inputs);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("shard 1/2 is given twice"), "{stderr}");
    assert!(stderr.contains("in-2.json (shard 1/2)"), "{stderr}");
    assert!(!out.exists(), "nothing is written for a refused merge");
}

#[test]
fn test_merge_command_flags_missing_shards() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = write_all(
        dir.path(),
        &[shard_of(0, 4), shard_of(1, 4), shard_of(3, 4)],
    );
    let out = dir.path().join("merged.json");
    let output = merge_command(&out, &inputs);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("missing shards: 2"), "{stderr}");
    assert!(stdout.contains("missing shards (1): 2"), "{stdout}");
    // The partial merge is still written, and says what it lacks.
    let merged = SimulationReport::from_json(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(merged.missing_shards, vec![2]);
    assert_eq!(merged.seeds_run(), 6);
}

#[test]
fn test_merge_command_refuses_different_simulations() {
    let dir = tempfile::tempdir().unwrap();
    let other = sim("other").shard(1, 2).run().unwrap();
    let inputs = write_all(dir.path(), &[shard(0), other]);
    let output = merge_command(&dir.path().join("merged.json"), &inputs);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("different") || stderr.contains("'other'"),
        "{stderr}"
    );
}
