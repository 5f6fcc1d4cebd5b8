//! The link-time site catalog against runs: two tests of one binary, each blamed only for its
//! own sites; unreached sites by `file:line`; explicit scopes; the adaptive iteration controls
//! waiting for registered sites; buggify sites listed with how often they fired.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use moonpool_core::chaos::AssertKind;
use moonpool_core::{
    Providers, RandomProvider, TimeProvider, assert_always, assert_reachable, assert_sometimes,
    buggify,
};
use moonpool_sim::{IterationControl, SimulationBuilder, SimulationReport};

const FILE: &str = "moonpool-sim/tests/coverage_scopes.rs";

/// The first test's code: a reachable site every seed reaches, and a `sometimes` on a path no
/// seed takes.
mod alpha {
    use super::*;

    pub const RARE_LINE: u32 = line!() + 10;

    pub fn builder(name: &str) -> SimulationBuilder {
        SimulationBuilder::new(name)
            .workload("alpha", 1, |ctx| async move {
                assert_reachable!("alpha ran");
                ctx.providers.time().sleep(Duration::from_millis(5)).await;
                // Probability 0: the branch never runs, in any seed.
                if ctx.providers.random().random_bool(0.0) {
                    rare_path();
                    assert_sometimes!(true, "alpha rare path");
                }
                Ok(())
            })
            .progress(false)
            .jobs(1)
    }

    /// Never called: only an explicit scope sees this site.
    pub fn rare_path() {
        assert_reachable!("alpha recovery");
    }
}

/// The second test's code: every site it has is reached.
mod beta {
    use super::*;

    pub fn builder(name: &str) -> SimulationBuilder {
        SimulationBuilder::new(name)
            .workload("beta", 1, |ctx| async move {
                let coin = ctx.providers.random().random_bool(0.5);
                assert_sometimes!(coin, "beta heads");
                assert_sometimes!(!coin, "beta tails");
                ctx.providers.time().sleep(Duration::from_millis(5)).await;
                Ok(())
            })
            .progress(false)
            .jobs(1)
    }
}

/// An `assert_always!` that must be reached, on a path never taken.
mod gamma {
    use super::*;

    pub fn builder(name: &str) -> SimulationBuilder {
        SimulationBuilder::new(name)
            .workload("gamma", 1, |ctx| async move {
                assert_reachable!("gamma ran");
                if ctx.providers.random().random_bool(0.0) {
                    assert_always!(true, "gamma must be reached");
                }
                Ok(())
            })
            .progress(false)
            .jobs(1)
    }
}

/// Buggify sites: one called 10 times per seed, one never called.
mod delta {
    use super::*;

    pub fn builder(name: &str) -> SimulationBuilder {
        SimulationBuilder::new(name)
            .workload("delta", 1, |ctx| async move {
                for _ in 0..10 {
                    if buggify!() {
                        ctx.providers.time().sleep(Duration::from_millis(1)).await;
                    }
                }
                Ok(())
            })
            .progress(false)
            .jobs(1)
    }

    #[allow(dead_code)]
    pub fn never_called() -> bool {
        buggify!()
    }
}

fn unreached_messages(report: &SimulationReport) -> Vec<&str> {
    report
        .unreached_sites()
        .iter()
        .map(|s| s.message.as_str())
        .collect()
}

#[test]
fn test_a_sometimes_that_never_runs_fails_its_own_test_by_file_and_line() {
    let report = alpha::builder("coverage-alpha")
        .iterations(IterationControl::FixedCount(5))
        .run()
        .unwrap();
    assert_eq!(report.passed(), 5, "every seed passes: {report}");
    assert!(!report.is_success(), "an unreached site fails the run");
    assert_eq!(unreached_messages(&report), vec!["alpha rare path"]);
    let site = &report.unreached_sites()[0];
    assert_eq!(site.kind, AssertKind::Sometimes);
    assert_eq!(site.file_line, format!("{FILE}:{}", alpha::RARE_LINE));
    assert_eq!(site.function, "coverage_scopes::alpha::builder");
    let text = report.to_string();
    assert!(
        text.contains(&format!(
            "\"alpha rare path\" at {FILE}:{}",
            alpha::RARE_LINE
        )),
        "{text}"
    );
    let panic = std::panic::catch_unwind(|| report.assert_success()).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("sites never reached (1 of"), "{message}");
    // The JSON carries it too.
    let back = SimulationReport::from_json(&report.to_json().unwrap()).unwrap();
    assert_eq!(back.unreached_sites(), report.unreached_sites());
}

#[test]
fn test_the_other_test_of_the_binary_is_not_blamed_for_it() {
    let report = beta::builder("coverage-beta")
        .iterations(IterationControl::FixedCount(20))
        .run()
        .unwrap();
    report.assert_success();
    assert!(report.unreached_sites().is_empty());
    // Beta's scope is its own function: alpha's sites are registered in this binary but are
    // not in it.
    assert_eq!(report.coverage.in_scope, 2, "{:?}", report.coverage);
    assert!(report.coverage.registered >= 8, "{:?}", report.coverage);
}

#[test]
fn test_an_explicit_scope_sees_functions_no_seed_entered_and_exclude_takes_sites_out() {
    let report = alpha::builder("coverage-alpha-scoped")
        .coverage_scope("coverage_scopes::alpha")
        .iterations(IterationControl::FixedCount(3))
        .run()
        .unwrap();
    let mut messages = unreached_messages(&report);
    messages.sort_unstable();
    assert_eq!(messages, vec!["alpha rare path", "alpha recovery"]);
    assert!(report.coverage.scope.contains("coverage_scopes::alpha"));

    let report = alpha::builder("coverage-alpha-excluded")
        .coverage_scope("coverage_scopes::alpha")
        .coverage_exclude("coverage_scopes::alpha::rare_path")
        .coverage_exclude("coverage_scopes::alpha::builder")
        .iterations(IterationControl::FixedCount(3))
        .run()
        .unwrap();
    report.assert_success();

    // Beta scoped to itself passes; scoped to the whole binary it is blamed for alpha's sites.
    beta::builder("coverage-beta-scoped")
        .coverage_scope("coverage_scopes::beta")
        .iterations(IterationControl::FixedCount(20))
        .run()
        .unwrap()
        .assert_success();
    let everything = beta::builder("coverage-beta-everything")
        .coverage_scope("coverage_scopes")
        .iterations(IterationControl::FixedCount(20))
        .run()
        .unwrap();
    assert!(unreached_messages(&everything).contains(&"alpha rare path"));
    assert!(!everything.is_success());
}

#[test]
fn test_an_always_that_is_never_reached_is_reported() {
    let report = gamma::builder("coverage-gamma")
        .iterations(IterationControl::FixedCount(3))
        .run()
        .unwrap();
    assert_eq!(unreached_messages(&report), vec!["gamma must be reached"]);
    assert_eq!(report.unreached_sites()[0].kind, AssertKind::Always);
    assert!(!report.is_success());
}

#[test]
fn test_adaptive_controls_wait_for_registered_sites_and_say_when_the_budget_ends() {
    // Without the catalog every site seen is satisfied after one seed; with it the run waits
    // for "alpha rare path" until the budget ends, and says so.
    let report = alpha::builder("coverage-alpha-until")
        .iterations(IterationControl::UntilAllSometimesReached(12))
        .run()
        .unwrap();
    assert_eq!(report.seeds_run(), 12);
    assert!(
        report
            .stop_reason
            .contains("maximum of 12 seeds reached before coverage was complete"),
        "{}",
        report.stop_reason
    );
    assert!(
        report.stop_reason.contains("\"alpha rare path\" at"),
        "{}",
        report.stop_reason
    );
    let report = alpha::builder("coverage-alpha-stable")
        .iterations(IterationControl::UntilCoverageStable {
            plateau_seeds: 2,
            max_seeds: 9,
        })
        .run()
        .unwrap();
    assert_eq!(report.seeds_run(), 9);
    assert!(
        report.stop_reason.contains("1 of 2 coverage sites"),
        "{}",
        report.stop_reason
    );

    // A test whose sites are all reached still stops early.
    let report = beta::builder("coverage-beta-until")
        .iterations(IterationControl::UntilAllSometimesReached(200))
        .run()
        .unwrap();
    assert!(report.seeds_run() < 200, "{}", report.stop_reason);
    report.assert_success();
}

#[test]
fn test_buggify_sites_are_listed_with_how_often_they_were_enabled_and_fired() {
    let report = delta::builder("coverage-delta")
        .iterations(IterationControl::FixedCount(16))
        .run()
        .unwrap();
    report.assert_success();
    let sites: Vec<_> = report
        .buggify_sites()
        .filter(|r| r.location.starts_with(FILE))
        .collect();
    assert_eq!(sites.len(), 1, "{sites:?}");
    let site = sites[0];
    assert_eq!(site.seeds_reached, 16);
    assert_eq!(site.calls, 160);
    assert!(
        site.seeds_enabled > 0 && site.seeds_enabled < 16,
        "{site:?}"
    );
    // An enabled site fires with probability 1/4 per call; a disabled one never does.
    assert!(
        site.fired > 0 && site.fired <= site.seeds_enabled * 10,
        "{site:?}"
    );
    assert_eq!(site.function, "coverage_scopes::delta::builder");
    assert_eq!(
        report.faults.get("buggify.fired").copied().unwrap_or(0),
        report.buggify_sites().map(|r| r.fired).sum::<u64>()
    );
    let idle: Vec<&str> = report
        .coverage
        .buggify_idle
        .iter()
        .filter(|s| s.location.starts_with(FILE))
        .map(|s| s.function.as_str())
        .collect();
    assert_eq!(idle, vec!["coverage_scopes::delta::never_called"]);
    let text = report.to_string();
    assert!(text.contains("buggify sites ("), "{text}");
    assert!(text.contains("enabled in"), "{text}");
    // An idle site of a crate the test entered is listed by location; the idle sites of a crate
    // none of whose sites was reached are one line for the crate.
    assert!(
        text.contains("never reached (coverage_scopes::delta::never_called)"),
        "{text}"
    );
    let reached_crates: std::collections::BTreeSet<&str> = report
        .buggify_sites()
        .map(|r| r.function.split("::").next().unwrap())
        .collect();
    let mut collapsed = 0;
    for site in &report.coverage.buggify_idle {
        let krate = site.function.split("::").next().unwrap();
        if !reached_crates.contains(krate) {
            collapsed += 1;
            assert!(
                !text.contains(&format!("never reached ({})", site.function)),
                "{text}"
            );
            assert!(
                text.contains(&format!("  {krate}: ")) && text.contains("its code did not run"),
                "{text}"
            );
        }
    }
    // Some crate linked into this binary has buggify sites this workload never runs.
    assert!(collapsed > 0, "{text}");

    // Buggify off: reached, never enabled, never fired.
    let report = delta::builder("coverage-delta-off")
        .buggify(moonpool_sim::BuggifyConfig::disabled())
        .iterations(IterationControl::FixedCount(4))
        .run()
        .unwrap();
    let site = report
        .buggify_sites()
        .find(|r| r.location.starts_with(FILE))
        .unwrap();
    assert_eq!(
        (site.seeds_reached, site.seeds_enabled, site.fired),
        (4, 0, 0)
    );
}

#[test]
fn test_shards_merge_into_the_unsharded_coverage() {
    let whole = alpha::builder("coverage-alpha-shards")
        .iterations(IterationControl::FixedCount(6))
        .run()
        .unwrap();
    let shards: Vec<SimulationReport> = (0..3)
        .map(|i| {
            alpha::builder("coverage-alpha-shards")
                .iterations(IterationControl::FixedCount(6))
                .shard(i, 3)
                .run()
                .unwrap()
        })
        .collect();
    let merged = SimulationReport::merge(&shards).unwrap();
    assert_eq!(merged.coverage.unreached, whole.coverage.unreached);
    assert_eq!(merged.assertions.buggify, whole.assertions.buggify);
    assert!(!merged.is_success());
}

/// One property checked in two branches: reached when either is.
mod epsilon {
    use super::*;

    pub fn builder(name: &str) -> SimulationBuilder {
        SimulationBuilder::new(name)
            .workload("epsilon", 1, |ctx| async move {
                if ctx.providers.random().random_bool(0.0) {
                    assert_always!(true, "epsilon property");
                } else {
                    assert_always!(true, "epsilon property");
                }
                Ok(())
            })
            .progress(false)
            .jobs(1)
    }
}

#[test]
fn test_an_always_checked_at_one_of_its_sites_is_reached() {
    epsilon::builder("coverage-epsilon")
        .iterations(IterationControl::FixedCount(3))
        .run()
        .unwrap()
        .assert_success();
}

#[test]
fn test_a_scope_that_names_no_site_is_a_setup_error() {
    let error = beta::builder("coverage-typo")
        .coverage_scope("coverage_scopes::betta")
        .run()
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("coverage_scope(\"coverage_scopes::betta\")"),
        "{text}"
    );
    assert!(
        text.contains("names no assertion or buggify site"),
        "{text}"
    );
    let error = beta::builder("coverage-typo-exclude")
        .coverage_exclude("nowhere::at_all")
        .run()
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("coverage_exclude(\"nowhere::at_all\")")
    );
    // "" is every site: allowed.
    beta::builder("coverage-exclude-all")
        .coverage_exclude("")
        .iterations(IterationControl::FixedCount(20))
        .run()
        .unwrap()
        .assert_success();
}
