//! The `MOONPOOL_*` environment variables: parsed strictly, and the outputs they name checked
//! before the first seed.
//!
//! Environment variables are process-global and `cargo test` runs the tests of one binary on
//! parallel threads: every test here holds `ENV` while it sets variables and runs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use moonpool_core::{Providers, TimeProvider};
use moonpool_sim::{IterationControl, SimError, SimulationBuilder, SimulationReport, WorldConfig};

static ENV: Mutex<()> = Mutex::new(());

const VARIABLES: [&str; 8] = [
    "MOONPOOL_SEED",
    "MOONPOOL_SHARD",
    "MOONPOOL_JOBS",
    "MOONPOOL_MAX_SEEDS",
    "MOONPOOL_CHECK_DETERMINISM",
    "MOONPOOL_REPORT",
    "MOONPOOL_TRACE_DIR",
    "CI",
];

/// Holds the environment lock with exactly `vars` set among the variables the runner reads; they
/// are cleared again on drop.
struct Env {
    _guard: MutexGuard<'static, ()>,
}

impl Env {
    fn set(vars: &[(&str, &str)]) -> Self {
        let guard = ENV.lock().unwrap_or_else(PoisonError::into_inner);
        clear();
        for (name, value) in vars {
            // SAFETY: every test of this binary that touches the environment or runs a
            // simulation holds `ENV`, so no other thread reads or writes it meanwhile.
            unsafe { std::env::set_var(name, value) };
        }
        Self { _guard: guard }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        clear();
    }
}

fn clear() {
    for name in VARIABLES {
        // SAFETY: called with `ENV` held (see `Env::set`).
        unsafe { std::env::remove_var(name) };
    }
}

/// A simulation of `seeds` seeds whose workload counts its runs in `runs`.
fn sim(name: &str, seeds: usize, runs: &Arc<AtomicUsize>) -> SimulationBuilder {
    let runs = Arc::clone(runs);
    SimulationBuilder::new(name)
        .world_config(WorldConfig::quiet())
        .progress(false)
        .iterations(IterationControl::FixedCount(seeds))
        .workload("w", 1, move |ctx| {
            let runs = Arc::clone(&runs);
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                ctx.providers.time().sleep(Duration::from_millis(5)).await;
                Ok(())
            }
        })
}

/// Runs `sim` under `vars`; returns the result and how many workload runs happened.
fn run_with(
    vars: &[(&str, &str)],
    build: impl FnOnce(&Arc<AtomicUsize>) -> SimulationBuilder,
) -> (Result<SimulationReport, SimError>, usize) {
    let _env = Env::set(vars);
    let runs = Arc::new(AtomicUsize::new(0));
    let result = build(&runs).jobs(1).run();
    (result, runs.load(Ordering::SeqCst))
}

fn setup_error(result: Result<SimulationReport, SimError>) -> String {
    match result {
        Err(error @ SimError::InvalidSetup { .. }) => error.to_string(),
        Err(other) => panic!("not a setup error: {other}"),
        Ok(report) => panic!("accepted; the report:\n{report}"),
    }
}

/// Runs a one-seed simulation under `MOONPOOL_CHECK_DETERMINISM=value`; returns how many times
/// its workload ran. The runs are counted in a file: the determinism check makes its second run
/// in a forked child process, whose memory the parent does not see.
fn determinism_runs(value: &str) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs");
    let log_in = log.clone();
    let (result, _) = run_with(&[("MOONPOOL_CHECK_DETERMINISM", value)], |_| {
        SimulationBuilder::new("determinism-env")
            .world_config(WorldConfig::quiet())
            .progress(false)
            .iterations(IterationControl::FixedCount(1))
            .workload("w", 1, move |ctx| {
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log_in)
                    .unwrap();
                std::io::Write::write_all(&mut file, b"x").unwrap();
                async move {
                    ctx.providers.time().sleep(Duration::from_millis(5)).await;
                    Ok(())
                }
            })
    });
    result.unwrap().assert_success();
    std::fs::read(&log).map_or(0, |bytes| bytes.len())
}

#[test]
fn test_check_determinism_off_runs_each_seed_once() {
    for off in ["off", "0", "false", "no", "OFF"] {
        assert_eq!(determinism_runs(off), 1, "MOONPOOL_CHECK_DETERMINISM={off}");
    }
}

#[test]
fn test_check_determinism_on_runs_each_seed_twice() {
    for on in ["on", "1", "true", "yes", "Yes"] {
        assert_eq!(determinism_runs(on), 2, "MOONPOOL_CHECK_DETERMINISM={on}");
    }
}

#[test]
fn test_check_determinism_unknown_value_refused() {
    let (result, runs) = run_with(&[("MOONPOOL_CHECK_DETERMINISM", "enabled")], |r| {
        sim("determinism-bad", 1, r)
    });
    let message = setup_error(result);
    assert!(
        message.contains("MOONPOOL_CHECK_DETERMINISM='enabled'"),
        "{message}"
    );
    assert_eq!(runs, 0);
}

#[test]
fn test_jobs_100000_refused() {
    let (result, runs) = run_with(&[("MOONPOOL_JOBS", "100000")], |r| {
        // The builder's own `jobs` would win over MOONPOOL_JOBS: leave it unset here.
        let runs = Arc::clone(r);
        SimulationBuilder::new("jobs-absurd")
            .progress(false)
            .workload("w", 1, move |_ctx| {
                runs.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            })
    });
    let message = setup_error(result);
    assert!(message.contains("MOONPOOL_JOBS='100000'"), "{message}");
    assert!(message.contains("256"), "{message}");
    assert_eq!(runs, 0);
}

#[test]
fn test_jobs_zero_refused() {
    let (result, runs) = run_with(&[("MOONPOOL_JOBS", "0")], |r| sim("jobs-zero", 1, r));
    let message = setup_error(result);
    assert!(message.contains("MOONPOOL_JOBS='0'"), "{message}");
    assert_eq!(runs, 0);
}

#[test]
fn test_max_seeds_zero_refused() {
    let (result, runs) = run_with(&[("MOONPOOL_MAX_SEEDS", "0")], |r| sim("max-zero", 3, r));
    let message = setup_error(result);
    assert!(message.contains("MOONPOOL_MAX_SEEDS='0'"), "{message}");
    assert_eq!(runs, 0);
}

#[test]
fn test_seed_and_shard_parsed_strictly() {
    for (name, value) in [
        ("MOONPOOL_SEED", "+7"),
        ("MOONPOOL_SEED", "7 "),
        ("MOONPOOL_SHARD", "1 /2"),
        ("MOONPOOL_SHARD", "2/2"),
    ] {
        let (result, runs) = run_with(&[(name, value)], |r| sim("strict", 2, r));
        let message = setup_error(result);
        assert!(message.contains(&format!("{name}='{value}'")), "{message}");
        assert_eq!(runs, 0);
    }
}

#[test]
fn test_shard_recorded_in_the_report() {
    let (result, runs) = run_with(&[("MOONPOOL_SHARD", "1/3")], |r| sim("shard-env", 6, r));
    let report = result.unwrap();
    assert_eq!(runs, 2);
    let shard = report.shard.unwrap();
    assert_eq!((shard.index, shard.count), (1, 3));
    assert!(report.to_string().contains("shard     1/3"), "{report}");
}

/// A path whose parent is a regular file: nothing can ever be created there.
fn under_a_file(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    file.join("sub")
}

#[test]
fn test_unwritable_report_refused_before_the_first_seed() {
    let dir = tempfile::tempdir().unwrap();
    let path = under_a_file(dir.path()).join("report.json");
    let (result, runs) = run_with(&[("MOONPOOL_REPORT", path.to_str().unwrap())], |r| {
        sim("report-unwritable", 3, r)
    });
    let message = setup_error(result);
    assert!(message.contains("MOONPOOL_REPORT"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert_eq!(runs, 0, "seeds ran before the report path was refused");
}

#[test]
fn test_report_in_proc_refused_before_the_first_seed() {
    let (result, runs) = run_with(
        &[("MOONPOOL_REPORT", "/proc/nonexistent/report.json")],
        |r| sim("report-proc", 3, r),
    );
    let message = setup_error(result);
    assert!(
        message.contains("MOONPOOL_REPORT=/proc/nonexistent/report.json"),
        "{message}"
    );
    assert_eq!(runs, 0);
}

#[test]
fn test_unwritable_trace_dir_refused_before_the_first_seed() {
    let dir = tempfile::tempdir().unwrap();
    let traces = under_a_file(dir.path());
    let (result, runs) = run_with(&[("MOONPOOL_TRACE_DIR", traces.to_str().unwrap())], |r| {
        sim("trace-unwritable", 3, r)
    });
    let message = setup_error(result);
    assert!(message.contains("MOONPOOL_TRACE_DIR"), "{message}");
    assert!(message.contains(&traces.display().to_string()), "{message}");
    assert_eq!(runs, 0);
}

#[test]
fn test_unwritable_chrome_trace_dir_refused_before_the_first_seed() {
    let dir = tempfile::tempdir().unwrap();
    let traces = under_a_file(dir.path());
    let (result, runs) = run_with(&[], |r| {
        sim("builder-trace-unwritable", 3, r).chrome_trace_dir(&traces)
    });
    let message = setup_error(result);
    assert!(message.contains("chrome_trace_dir"), "{message}");
    assert_eq!(runs, 0);
}

#[test]
fn test_outputs_checked_without_side_effects() {
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("reports/new/report.json");
    let traces = dir.path().join("traces");
    let (result, runs) = run_with(
        &[
            ("MOONPOOL_REPORT", report_path.to_str().unwrap()),
            ("MOONPOOL_TRACE_DIR", traces.to_str().unwrap()),
        ],
        |r| sim("outputs-ok", 2, r),
    );
    let report = result.unwrap();
    assert_eq!(runs, 2);
    // The report is written at the end; no probe file is left in either place.
    let written = SimulationReport::from_json(&std::fs::read_to_string(&report_path).unwrap());
    assert_eq!(written.unwrap(), report);
    assert_eq!(
        std::fs::read_dir(report_path.parent().unwrap())
            .unwrap()
            .count(),
        1
    );
    assert_eq!(std::fs::read_dir(&traces).unwrap().count(), 0);
}

#[test]
fn test_existing_report_not_truncated_before_the_run_ends() {
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    std::fs::write(&report_path, "previous report").unwrap();
    let seen = Arc::new(Mutex::new(None));
    let (seen_in, path_in) = (Arc::clone(&seen), report_path.clone());
    let (result, _) = run_with(
        &[("MOONPOOL_REPORT", report_path.to_str().unwrap())],
        |_| {
            SimulationBuilder::new("not-truncated")
                .world_config(WorldConfig::quiet())
                .progress(false)
                .iterations(IterationControl::FixedCount(1))
                .workload("w", 1, move |_ctx| {
                    *seen_in.lock().unwrap() = Some(std::fs::read_to_string(&path_in).unwrap());
                    async { Ok(()) }
                })
        },
    );
    result.unwrap();
    assert_eq!(seen.lock().unwrap().as_deref(), Some("previous report"));
    assert!(
        std::fs::read_to_string(&report_path)
            .unwrap()
            .contains("not-truncated")
    );
}

#[test]
fn test_report_not_lost_when_the_final_write_fails() {
    let dir = tempfile::tempdir().unwrap();
    let report_dir = dir.path().join("reports");
    let report_path = report_dir.join("report.json");
    let name = "report-fallback";
    let fallback = std::env::temp_dir().join(format!(
        "moonpool-report-{name}-{}.json",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&fallback);
    let dir_in = report_dir.clone();
    let (result, runs) = run_with(&[("MOONPOOL_REPORT", report_path.to_str().unwrap())], |r| {
        let runs = Arc::clone(r);
        SimulationBuilder::new(name)
            .world_config(WorldConfig::quiet())
            .progress(false)
            .iterations(IterationControl::FixedCount(1))
            .workload("w", 1, move |_ctx| {
                runs.fetch_add(1, Ordering::SeqCst);
                // The report's directory turns into a file during the run: the final write
                // fails.
                std::fs::remove_dir_all(&dir_in).unwrap();
                std::fs::write(&dir_in, "in the way").unwrap();
                async { Ok(()) }
            })
    });
    assert_eq!(runs, 1, "the output check happened before the run");
    // The run still hands the report over, and it was written to the fallback file.
    let report = result.unwrap();
    report.assert_success();
    let saved = SimulationReport::from_json(&std::fs::read_to_string(&fallback).unwrap()).unwrap();
    assert_eq!(saved, report);
    std::fs::remove_file(&fallback).unwrap();
}
