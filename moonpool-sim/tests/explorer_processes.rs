//! The explorer's process tree: a child timeline that panics, aborts, hangs past its budget or is
//! killed is reported with its recipe, and no process of the tree outlives the exploration, even
//! when the root itself is killed; the shared memory is released.
//!
//! Each test runs the exploration in a fresh process of its own (this test binary again, in a
//! new process group, with `SCENARIO` set), and this process is made a child subreaper: a process
//! of the tree that lost its parent would be re-parented here, so it cannot slip away unseen.
//! After the exploration's root has ended, no process of its group may be alive.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![cfg(all(feature = "explorer", target_os = "linux"))]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use moonpool_core::{Providers, RandomProvider, TimeProvider, assert_sometimes};
use moonpool_sim::{
    ExplorationConfig, IterationControl, SimulationBuilder, SimulationReport, WorldConfig,
};

const SCENARIO: &str = "MOONPOOL_EXPLORER_SCENARIO";

/// Two doors (probability 1/2 each); a child timeline that got through both misbehaves.
fn misbehaving(scenario: &'static str) -> SimulationBuilder {
    SimulationBuilder::new("misbehaving")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .base_seed(7)
        .iterations(IterationControl::FixedCount(20))
        .workload("walker", 1, move |ctx| async move {
            let random = ctx.providers.random().clone();
            let mut through = true;
            for door in 0..2 {
                ctx.providers.time().sleep(Duration::from_millis(3)).await;
                let open = random.random_bool(0.5);
                if door == 0 {
                    assert_sometimes!(open, "door 1 opens");
                } else {
                    assert_sometimes!(open, "door 2 opens");
                }
                through &= open;
                if !through {
                    return Ok(());
                }
            }
            if moonpool_explorer::in_child_timeline() {
                misbehave(scenario);
            }
            Ok(())
        })
        .explore({
            let mut cfg = ExplorationConfig::default();
            cfg.global_energy = 6;
            cfg.per_split = 3;
            cfg.min_per_split = 3;
            cfg.batch = 3;
            cfg.parallelism = 2;
            // Long enough for the root to be killed while its grandchildren sleep.
            cfg.timeline_budget = Duration::from_secs(if scenario == "sleep" { 30 } else { 1 });
            cfg
        })
}

#[allow(clippy::panic)]
fn misbehave(scenario: &str) {
    match scenario {
        "panic" => panic!("boom in a child timeline"),
        "abort" => std::process::abort(),
        "hang" => loop {
            std::hint::spin_loop();
        },
        // SAFETY: signalling this very process.
        "kill" => unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        },
        "sleep" => std::thread::sleep(Duration::from_secs(120)),
        _ => {}
    }
}

/// Anonymous shared mappings of this process (how `MAP_SHARED | MAP_ANONYMOUS` shows in maps).
fn shared_anonymous_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains("/dev/zero (deleted)"))
        .count()
}

/// The exploration's root, when this binary runs as one: prints the report and the mappings
/// left, then exits.
#[test]
fn test_scenario_entry_point() {
    let Ok(scenario) = std::env::var(SCENARIO) else {
        return;
    };
    let scenario: &'static str = Box::leak(scenario.into_boxed_str());
    let report = misbehaving(scenario).run().unwrap();
    println!("REPORT {}", serde_json::to_string(&report).unwrap());
    println!("SHARED_MAPPINGS {}", shared_anonymous_mappings());
}

/// Live (not zombie) processes of process group `group`.
fn live_in_group(group: i32) -> Vec<i32> {
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2].parse::<i32>() == Ok(group) && fields[0] != "Z" {
            live.push(pid);
        }
    }
    live
}

/// Reaps whatever was re-parented to this process and has ended.
fn reap_adopted() {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid int; WNOHANG never blocks.
        if unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } <= 0 {
            return;
        }
    }
}

struct Outcome {
    /// What the root printed.
    stdout: String,
    report: Option<SimulationReport>,
    shared_mappings: Option<usize>,
    /// Processes of the tree alive after the root ended and a grace period.
    survivors: Vec<i32>,
    /// The most processes of the tree seen alive at once.
    peak: usize,
}

/// Runs `scenario` as a fresh root process; with `kill_root`, kills that root once it has at
/// least three processes in its tree (grandchildren exist).
fn run_scenario(scenario: &str, kill_root: bool) -> Outcome {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only changes how this process adopts orphans.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "test_scenario_entry_point",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SCENARIO, scenario)
        .env("MOONPOOL_WATCHDOG_SECS", "0")
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let group = i32::try_from(child.id()).unwrap();
    let mut peak = 0;
    let started = Instant::now();
    if kill_root {
        while started.elapsed() < Duration::from_secs(60) {
            let live = live_in_group(group).len();
            peak = peak.max(live);
            if live >= 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: killing the root we spawned.
        unsafe {
            libc::kill(group, libc::SIGKILL);
        }
    }
    let mut stdout = String::new();
    let mut pipe = child.stdout.take().unwrap();
    // Reading to the end would wait for the grandchildren too (they inherit the pipe): a
    // killed root's tree holds it open until it dies, which is what is checked below.
    let reader = std::thread::spawn(move || {
        let _ = pipe.read_to_string(&mut stdout);
        stdout
    });
    let _ = child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut survivors = live_in_group(group);
    while !survivors.is_empty() && Instant::now() < deadline {
        peak = peak.max(survivors.len());
        reap_adopted();
        std::thread::sleep(Duration::from_millis(20));
        survivors = live_in_group(group);
    }
    reap_adopted();
    let stdout = if survivors.is_empty() {
        reader.join().unwrap()
    } else {
        String::new()
    };
    let report = stdout
        .lines()
        .find_map(|l| l.split_once("REPORT ").map(|(_, json)| json))
        .map(|json| serde_json::from_str(json).unwrap());
    let shared_mappings = stdout
        .lines()
        .find_map(|l| l.split_once("SHARED_MAPPINGS ").map(|(_, n)| n))
        .map(|n| n.trim().parse().unwrap());
    Outcome {
        stdout,
        report,
        shared_mappings,
        survivors,
        peak,
    }
}

fn assert_clean(outcome: &Outcome) -> &SimulationReport {
    assert!(
        outcome.survivors.is_empty(),
        "processes of the tree outlived it: {:?}",
        outcome.survivors
    );
    assert_eq!(
        outcome.shared_mappings,
        Some(0),
        "shared memory released; the root printed:\n{}",
        outcome.stdout
    );
    outcome
        .report
        .as_ref()
        .unwrap_or_else(|| panic!("no report; the root printed:\n{}", outcome.stdout))
}

#[test]
fn test_a_panicking_child_is_reported_and_leaves_no_process_behind() {
    let outcome = run_scenario("panic", false);
    let report = assert_clean(&outcome);
    let bug = report
        .explored_bugs()
        .iter()
        .find(|b| b.signature.contains("boom in a child timeline"))
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(bug.kind, "failed");
    assert!(!bug.recipe.steps.is_empty(), "{}", bug.recipe);
}

#[test]
fn test_an_aborting_child_is_reported_with_its_signal_and_recipe() {
    let outcome = run_scenario("abort", false);
    let report = assert_clean(&outcome);
    let bug = report
        .explored_bugs()
        .iter()
        .find(|b| b.kind == "died")
        .unwrap_or_else(|| panic!("{report}"));
    assert!(bug.failure.contains("SIGABRT"), "{}", bug.failure);
    assert!(!bug.recipe.steps.is_empty(), "{}", bug.recipe);
    assert!(report.exploration.as_ref().unwrap().died >= 1);
}

#[test]
fn test_a_child_that_hangs_past_its_budget_is_killed_and_reported() {
    let outcome = run_scenario("hang", false);
    let report = assert_clean(&outcome);
    let exploration = report.exploration.as_ref().unwrap();
    assert!(exploration.hangs >= 1, "{report}");
    let bug = report
        .explored_bugs()
        .iter()
        .find(|b| b.kind == "hung")
        .unwrap_or_else(|| panic!("{report}"));
    assert!(bug.failure.contains("wall-clock budget"), "{}", bug.failure);
}

#[test]
fn test_a_killed_child_is_reported_and_its_subtree_does_not_survive() {
    let outcome = run_scenario("kill", false);
    let report = assert_clean(&outcome);
    let bug = report
        .explored_bugs()
        .iter()
        .find(|b| b.kind == "died")
        .unwrap_or_else(|| panic!("{report}"));
    assert!(bug.failure.contains("SIGKILL"), "{}", bug.failure);
}

#[test]
fn test_killing_the_root_takes_the_whole_tree_down() {
    let outcome = run_scenario("sleep", true);
    assert!(
        outcome.peak >= 3,
        "grandchildren were running: {}",
        outcome.peak
    );
    assert!(
        outcome.survivors.is_empty(),
        "processes of the tree outlived its root: {:?}",
        outcome.survivors
    );
    assert!(
        outcome.report.is_none(),
        "the root was killed before its report"
    );
}
