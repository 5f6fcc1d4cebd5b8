//! Coverage against the link-time catalog of sites (`moonpool_core::chaos::catalog`): which
//! sites a test owns (its *scope*), which of them no seed reached, and every buggify site with
//! how often it was enabled and fired.
//!
//! # Scope
//! A site counts against a test when it is in the test's scope:
//!
//! - **by default**, the sites of every function in which some seed of the run evaluated an
//!   assertion. A function the test entered is code the test exercises, so a `sometimes` in it
//!   that never ran is a hole in this test's coverage; a function no seed entered belongs to
//!   another test of the same binary (or to none) and does not count. The default needs no
//!   setup and never blames one test for another's sites; it cannot see a site in a function
//!   the test never entered at all (say a recovery handler never called): name that code with
//!   a scope.
//! - **with [`coverage_scope`](SimulationBuilder::coverage_scope)**, exactly the sites whose
//!   module path or function path starts with one of the given prefixes (the default is then
//!   off).
//! - **[`coverage_exclude`](SimulationBuilder::coverage_exclude)** takes sites out of either.
//!
//! In scope, an `assert_sometimes!`-type or `assert_reachable!` site that no seed evaluated is
//! *unreached*, and so is an `assert_always!` (which must be reached) whose message no seed
//! evaluated at any of its sites (one property checked at several places, say in each error
//! branch, is reached when it is checked at one; use `assert_always_or_unreachable!` for a
//! check that may never run): the report lists each with its `file:line`, and the run is not a
//! success. The adaptive iteration controls wait for these
//! sites too (see [`IterationControl`](super::IterationControl)).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use moonpool_core::chaos::catalog::{self, SiteScope};
use moonpool_core::chaos::{AssertKind, Site};
use serde::{Deserialize, Serialize};

use super::builder::SimulationBuilder;
use super::report::SimulationReport;
use crate::chaos::{AssertionTable, BuggifyRecord};
use crate::error::SimError;

/// A site in the test's scope that no seed reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreachedSite {
    /// The macro.
    pub kind: AssertKind,
    /// The message.
    pub message: String,
    /// `file:line:column` (the key of assertion records).
    pub location: String,
    /// `file:line`.
    pub file_line: String,
    /// The function the site is in.
    pub function: String,
}

/// A registered buggify site that no seed reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdleBuggifySite {
    /// `file:line:column`.
    pub location: String,
    /// The function the site is in.
    pub function: String,
}

/// What the catalog says about a run (the report's `coverage`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CoverageReport {
    /// The scope, as words.
    pub scope: String,
    /// Sites registered in the binary (assertions and buggify).
    pub registered: usize,
    /// Coverage sites (`sometimes`-type, `reachable`, `always`) in scope.
    pub in_scope: usize,
    /// Sites in scope that no seed reached, by location. A run with any is not a success.
    pub unreached: Vec<UnreachedSite>,
    /// Registered buggify sites that no seed reached (not a failure: listed so that a fault
    /// point the test never passes through is visible).
    pub buggify_idle: Vec<IdleBuggifySite>,
}

impl CoverageReport {
    /// The coverage of a merge: a site is unreached when some shard lists it and no merged seed
    /// evaluated it; an idle buggify site, when every shard lists it as idle and none reached it.
    pub(super) fn merge(reports: &[SimulationReport], merged: &AssertionTable) -> Self {
        let mut coverage = CoverageReport::default();
        let mut unreached = BTreeMap::new();
        let mut idle: Option<BTreeMap<String, IdleBuggifySite>> = None;
        for report in reports {
            let c = &report.coverage;
            if coverage.scope.is_empty() {
                coverage.scope.clone_from(&c.scope);
            }
            coverage.registered = coverage.registered.max(c.registered);
            coverage.in_scope = coverage.in_scope.max(c.in_scope);
            for site in &c.unreached {
                unreached.insert(site.location.clone(), site.clone());
            }
            let mine: BTreeMap<String, IdleBuggifySite> = c
                .buggify_idle
                .iter()
                .map(|s| (s.location.clone(), s.clone()))
                .collect();
            idle = Some(match idle {
                None => mine,
                Some(previous) => previous
                    .into_iter()
                    .filter(|(location, _)| mine.contains_key(location))
                    .collect(),
            });
        }
        coverage.unreached = unreached
            .into_values()
            .filter(|s| {
                if s.kind == AssertKind::Always {
                    !merged
                        .records
                        .values()
                        .any(|r| r.kind == AssertKind::Always && r.message == s.message)
                } else {
                    !merged.records.contains_key(&s.location)
                }
            })
            .collect();
        coverage.buggify_idle = idle
            .unwrap_or_default()
            .into_values()
            .filter(|s| !merged.buggify.contains_key(&s.location))
            .collect();
        coverage
    }
}

/// One registered site with what the scope needs to know about it.
struct Entry {
    site: &'static Site,
    location: String,
    function: String,
}

/// The catalog of the binary, read once per run, and the run's scope.
pub(crate) struct CoverageCheck {
    entries: Vec<Entry>,
    scope: SiteScope,
}

impl CoverageCheck {
    /// Reads the catalog for a run with `scope`.
    pub(crate) fn new(scope: SiteScope) -> Self {
        let mut entries: Vec<Entry> = catalog::sites()
            .into_iter()
            .map(|site| Entry {
                site,
                location: site.location(),
                function: site.function_path(),
            })
            .collect();
        // A macro called from another macro's expansion gives several statics one location:
        // they are one site (one record) to the table, and here.
        entries.dedup_by(|a, b| a.location == b.location);
        Self { entries, scope }
    }

    /// True for the kinds a scope makes a test reach: coverage kinds and `assert_always!`.
    fn must_be_reached(site: &Site) -> bool {
        site.kind
            .is_some_and(|k| k.is_coverage() || k == AssertKind::Always)
    }

    /// The catalog's coverage sites in scope, given what `table` reached.
    fn in_scope(&self, table: &AssertionTable) -> Vec<&Entry> {
        let entered: BTreeSet<&str> = if self.scope.include.is_empty() {
            self.entries
                .iter()
                .filter(|e| !e.site.is_buggify() && table.records.contains_key(&e.location))
                .map(|e| e.function.as_str())
                .collect()
        } else {
            BTreeSet::new()
        };
        let explicit = !self.scope.include.is_empty();
        self.entries
            .iter()
            .filter(|e| Self::must_be_reached(e.site))
            .filter(|e| !self.scope.excludes(e.site, &e.function))
            .filter(|e| {
                if explicit {
                    self.scope.includes(e.site, &e.function)
                } else {
                    entered.contains(e.function.as_str())
                }
            })
            .collect()
    }

    /// The sites in scope that no seed of `table` reached. A sometimes-type or reachable site
    /// is reached when it was evaluated; an `assert_always!`, when any `assert_always!` with its
    /// message was (one property checked at several places is checked).
    fn unreached<'a>(&'a self, table: &AssertionTable) -> Vec<&'a Entry> {
        let always_checked: BTreeSet<&str> = table
            .records
            .values()
            .filter(|r| r.kind == AssertKind::Always)
            .map(|r| r.message.as_str())
            .collect();
        self.in_scope(table)
            .into_iter()
            .filter(|e| {
                if e.site.kind == Some(AssertKind::Always) {
                    !always_checked.contains(e.site.message)
                } else {
                    !table.records.contains_key(&e.location)
                }
            })
            .collect()
    }

    /// How many sites in scope no seed of `table` reached (the iteration controls wait for them).
    pub(crate) fn unreached_count(&self, table: &AssertionTable) -> usize {
        self.unreached(table).len()
    }

    /// The first few unreached sites, as `"message" at file:line`, for a stop verdict.
    pub(crate) fn unreached_names(&self, table: &AssertionTable, at_most: usize) -> Vec<String> {
        self.unreached(table)
            .into_iter()
            .take(at_most)
            .map(|e| format!("\"{}\" at {}", e.site.message, e.site.file_line()))
            .collect()
    }

    /// The report's coverage for a run whose merged table is `table`.
    pub(crate) fn report(&self, table: &AssertionTable) -> CoverageReport {
        let in_scope = self.in_scope(table).len();
        let mut unreached = Vec::new();
        for entry in self.unreached(table) {
            if let Some(kind) = entry.site.kind {
                unreached.push(UnreachedSite {
                    kind,
                    message: entry.site.message.to_string(),
                    location: entry.location.clone(),
                    file_line: entry.site.file_line(),
                    function: entry.function.clone(),
                });
            }
        }
        let buggify_idle = self
            .entries
            .iter()
            .filter(|e| e.site.is_buggify() && !table.buggify.contains_key(&e.location))
            .map(|e| IdleBuggifySite {
                location: e.location.clone(),
                function: e.function.clone(),
            })
            .collect();
        CoverageReport {
            scope: describe(&self.scope),
            registered: self.entries.len(),
            in_scope,
            unreached,
            buggify_idle,
        }
    }
}

/// Refuses a scope prefix that names no registered site: a typo would otherwise scope the test to
/// nothing and let every unreached site pass unseen.
pub(crate) fn check_scope(name: &str, scope: &SiteScope) -> Result<(), SimError> {
    let sites = catalog::sites();
    let paths: Vec<(&str, String)> = sites
        .iter()
        .map(|s| (s.module, s.function_path()))
        .collect();
    for (what, prefix) in scope
        .include
        .iter()
        .map(|p| ("coverage_scope", p))
        .chain(scope.exclude.iter().map(|p| ("coverage_exclude", p)))
    {
        if prefix.is_empty() {
            continue;
        }
        let names_a_site = paths.iter().any(|(module, function)| {
            module.starts_with(prefix.as_str()) || function.starts_with(prefix.as_str())
        });
        if !names_a_site {
            return Err(SimError::setup(format!(
                "simulation '{name}': {what}(\"{prefix}\") names no assertion or buggify site of \
                 this binary (a prefix of a module path or function path, such as \
                 \"my_tests::alpha\" for the sites of mod alpha in tests/my_tests.rs)"
            )));
        }
    }
    Ok(())
}

/// The scope as words.
fn describe(scope: &SiteScope) -> String {
    let mut text = if scope.include.is_empty() {
        "functions in which a seed evaluated an assertion".to_string()
    } else {
        format!("paths starting with {}", scope.include.join(", "))
    };
    if !scope.exclude.is_empty() {
        text.push_str(&format!("; excluding {}", scope.exclude.join(", ")));
    }
    text
}

impl SimulationBuilder {
    /// The sites this test owns: those whose module path or function path starts with
    /// `prefix` (`"my_tests::alpha"`, `"my_tests::alpha::test_reads"`; repeat for more). A
    /// `sometimes`-type, `reachable` or `always` site among them that no seed reached fails the
    /// run. Replaces the default scope (the functions in which a seed evaluated an assertion).
    pub fn coverage_scope(mut self, prefix: &str) -> Self {
        self.coverage.include.push(prefix.to_string());
        self
    }

    /// Takes the sites whose module path or function path starts with `prefix` out of this
    /// test's scope (default or explicit): they are neither waited for nor reported unreached.
    /// `""` takes every site out.
    pub fn coverage_exclude(mut self, prefix: &str) -> Self {
        self.coverage.exclude.push(prefix.to_string());
        self
    }
}

impl SimulationReport {
    /// Sites in the test's scope that no seed reached (see [`coverage`](Self::coverage)).
    pub fn unreached_sites(&self) -> &[UnreachedSite] {
        &self.coverage.unreached
    }

    /// Every buggify site some seed reached, with how often it was enabled and fired.
    pub fn buggify_sites(&self) -> impl Iterator<Item = &BuggifyRecord> {
        self.assertions.buggify.values()
    }

    /// The coverage sections of the report's table.
    pub(super) fn write_coverage(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.coverage;
        if !c.unreached.is_empty() {
            writeln!(
                f,
                "\nsites never reached ({} of {} in scope: {})",
                c.unreached.len(),
                c.in_scope,
                c.scope
            )?;
            for site in &c.unreached {
                writeln!(
                    f,
                    "  {:<28} \"{}\" at {} (in {})",
                    site.kind.macro_name(),
                    site.message,
                    site.file_line,
                    site.function
                )?;
            }
        }
        if self.assertions.buggify.is_empty() && c.buggify_idle.is_empty() {
            return Ok(());
        }
        writeln!(
            f,
            "\nbuggify sites ({} reached, {} never reached)",
            self.assertions.buggify.len(),
            c.buggify_idle.len()
        )?;
        for record in self.assertions.buggify.values() {
            writeln!(
                f,
                "  {:<48} reached in {} seeds, enabled in {}, fired {} of {} calls{} ({})",
                record.location,
                record.seeds_reached,
                record.seeds_enabled,
                record.fired,
                record.calls,
                if record.knob { ", a knob" } else { "" },
                record.function
            )?;
        }
        // A crate none of whose buggify sites any seed reached is code this test never ran (a
        // library linked into the binary, say the transport under a test of the simulator
        // alone): one line for it instead of a list of its sites.
        let entered: BTreeSet<&str> = self
            .assertions
            .buggify
            .values()
            .map(|r| crate_of(&r.function))
            .collect();
        let mut untouched: BTreeMap<&str, usize> = BTreeMap::new();
        for site in &c.buggify_idle {
            let krate = crate_of(&site.function);
            if entered.contains(krate) {
                writeln!(
                    f,
                    "  {:<48} never reached ({})",
                    site.location, site.function
                )?;
            } else {
                *untouched.entry(krate).or_insert(0) += 1;
            }
        }
        for (krate, sites) in untouched {
            writeln!(
                f,
                "  {krate}: {sites} site(s) never reached; no seed reached any buggify site of this \
                 crate (its code did not run in this test)"
            )?;
        }
        Ok(())
    }
}

/// The crate of a function path (`moonpool_transport::peer::run` -> `moonpool_transport`).
pub(crate) fn crate_of(function: &str) -> &str {
    function.split("::").next().unwrap_or(function)
}

impl fmt::Display for UnreachedSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} \"{}\" at {}",
            self.kind.macro_name(),
            self.message,
            self.file_line
        )
    }
}
