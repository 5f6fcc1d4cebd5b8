//! Exploration mode ([`SimulationBuilder::explore`](super::SimulationBuilder::explore), feature
//! `explorer`): each root seed's run is split at its discoveries into child timelines by
//! `moonpool-explorer`, in child processes.
//!
//! The wiring, seed by seed:
//!
//! 1. `begin_tree` before the root seed's world is built;
//! 2. the world gets a [`SplitHandler`] (`handler`): every assertion evaluation marks a coverage
//!    key (site and outcome) in the explorer's shared set, child timelines add their evaluations
//!    to the shared statistics, and at a discovery (see `chaos::split`) the explorer may fork; in
//!    each child the world's streams are reseeded with the child's seed and the run goes on;
//! 3. `end_timeline` when the run is over: a failure becomes a bug with the timeline's recipe; a
//!    child process exits there, the root goes on;
//! 4. `take_tree` in the report's collector: the children's assertion statistics are merged into
//!    the report (so coverage a child reached counts), and the tree's bugs are listed with a
//!    replay command each.
//!
//! Exploration runs the world on one thread (`fork` keeps only the calling thread), so `run`
//! refuses it with `jobs` above 1 or the determinism check.

use crate::error::SimError;

#[cfg(feature = "explorer")]
pub use moonpool_explorer::ExplorationConfig;

#[cfg(not(feature = "explorer"))]
pub(super) use disabled::Exploration;
#[cfg(feature = "explorer")]
pub(super) use enabled::Exploration;

#[cfg(not(feature = "explorer"))]
mod disabled {
    use std::sync::Arc;

    use super::super::report::{ExplorationSummary, ExploredBug};
    use super::super::spec::Spec;
    use crate::chaos::AssertionTable;
    use crate::error::SimError;
    use crate::world::{RunSummary, SimWorld};

    /// Without the `explorer` feature no run explores: this type has no value.
    pub(in super::super) enum Exploration {}

    impl Exploration {
        pub(in super::super) fn begin_tree(&self, _seed: u64) {
            match *self {}
        }

        pub(in super::super) fn install(&self, _world: &mut SimWorld) {
            match *self {}
        }

        pub(in super::super) fn end_timeline(
            &self,
            _seed: u64,
            _summary: Option<&RunSummary>,
            _error: Option<&SimError>,
        ) {
            match *self {}
        }

        pub(in super::super) fn take_tree(
            &self,
            _spec: &Arc<Spec>,
            _root: &AssertionTable,
        ) -> (AssertionTable, Vec<ExploredBug>) {
            match *self {}
        }

        pub(in super::super) fn summary(&self) -> ExplorationSummary {
            match *self {}
        }

        pub(in super::super) fn stop_reason(&self) -> Option<String> {
            match *self {}
        }
    }
}

/// Refuses an exploration the runner cannot run: more than one worker thread (a fork keeps only
/// the calling thread, so a world of another thread would be cut in half), or the determinism
/// check (which forks its own child per seed).
pub(super) fn check_runnable(
    name: &str,
    jobs: usize,
    check_determinism: bool,
) -> Result<(), SimError> {
    if !cfg!(any(target_os = "linux", target_os = "macos")) {
        return Err(SimError::setup(format!(
            "simulation '{name}': exploration forks child processes and runs on Linux and macOS \
             only; this is {}",
            std::env::consts::OS
        )));
    }
    if jobs > 1 {
        return Err(SimError::setup(format!(
            "simulation '{name}': exploration runs its worlds on one thread (fork keeps only the \
             calling thread) and parallelises with child processes; jobs is {jobs} (from \
             jobs(...) or MOONPOOL_JOBS): set it to 1, and use ExplorationConfig::parallelism \
             for cores"
        )));
    }
    if check_determinism {
        return Err(SimError::setup(format!(
            "simulation '{name}': exploration and the determinism check both fork each seed; run \
             the determinism check without exploration (a recipe's replay is checked by its \
             fingerprint)"
        )));
    }
    Ok(())
}

#[cfg(feature = "explorer")]
mod enabled {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

    use moonpool_core::chaos::{AssertKind, Comparison, Observation};
    use moonpool_explorer::{
        Branch, Coverage, ExplorationConfig, Explorer, Failure, SiteDelta, SiteInfo, SiteStats,
        SplitPoint, TimelineEnd, mix,
    };

    use super::super::recipe::{Recipe, RecipeStep, recipe_command};
    use super::super::report::failure_text;
    use super::super::report::{EXPLORED_BUGS_LISTED, ExplorationSummary, ExploredBug};
    use super::super::spec::Spec;
    use crate::chaos::{AssertionRecord, AssertionTable, Evaluation, SplitHandler};
    use crate::error::SimError;
    use crate::world::{RunSummary, SimWorld};

    /// The explorer of one run of the builder, shared by its seeds and their worlds' handlers.
    pub(in super::super) struct Exploration {
        explorer: Arc<Mutex<Explorer>>,
        /// Bugs listed so far (the report lists at most [`EXPLORED_BUGS_LISTED`]).
        listed: Mutex<usize>,
    }

    fn lock(explorer: &Mutex<Explorer>) -> MutexGuard<'_, Explorer> {
        explorer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    impl Exploration {
        /// Maps the explorer's shared memory; a bad configuration is a setup error.
        pub(in super::super) fn new(
            name: &str,
            config: ExplorationConfig,
        ) -> Result<Self, SimError> {
            let explorer = Explorer::new(config)
                .map_err(|e| SimError::setup(format!("simulation '{name}': {e}")))?;
            Ok(Self {
                explorer: Arc::new(Mutex::new(explorer)),
                listed: Mutex::new(0),
            })
        }

        pub(in super::super) fn begin_tree(&self, seed: u64) {
            lock(&self.explorer).begin_tree(seed);
        }

        /// Makes `world`'s run an exploring one.
        pub(in super::super) fn install(&self, world: &mut SimWorld) {
            world.set_split_handler(Box::new(Hooks {
                explorer: Arc::clone(&self.explorer),
                locations: BTreeMap::new(),
            }));
        }

        /// The timeline's end: records its failure as a bug; in a child process, exits.
        pub(in super::super) fn end_timeline(
            &self,
            seed: u64,
            summary: Option<&RunSummary>,
            error: Option<&SimError>,
        ) {
            let end = TimelineEnd {
                failure: error.map(|e| Failure {
                    text: failure_text(e),
                    signature: signature(e),
                    // The structured failure travels to the parent as JSON (the explorer carries
                    // it without knowing it), so an explored bug has a kind like a seed's.
                    structured: serde_json::to_string(
                        &crate::runner::report_failure::FailureInfo::new(
                            e,
                            &summary.map(|s| s.fault_kinds.clone()).unwrap_or_default(),
                        ),
                    )
                    .unwrap_or_default(),
                }),
                fingerprint: summary.map_or_else(
                    || crate::world::trace::TraceHash::for_seed(seed).value(),
                    |s| s.fingerprint,
                ),
            };
            lock(&self.explorer).end_timeline(&end);
        }

        /// What the child timelines of the seed just run reported: their assertion statistics
        /// (as a table to merge after the root's own, `root`) and the tree's bugs.
        pub(in super::super) fn take_tree(
            &self,
            spec: &Arc<Spec>,
            root: &AssertionTable,
        ) -> (AssertionTable, Vec<ExploredBug>) {
            let tree = lock(&self.explorer).take_tree();
            let mut table = AssertionTable::default();
            for site in &tree.sites {
                let Some(mut record) = record_of(site) else {
                    continue;
                };
                for bucket in tree.buckets.iter().filter(|b| b.site == site.key) {
                    record.buckets.insert(bucket.label.clone(), bucket.hits);
                }
                // The root seed counts once, in the root's own table if it evaluated the site.
                record.seeds_evaluated = u64::from(!root.records.contains_key(&record.location));
                table.records.insert(record.location.clone(), record);
            }
            let mut listed = self.listed.lock().unwrap_or_else(PoisonError::into_inner);
            let mut bugs = Vec::new();
            for bug in tree.bugs {
                if *listed >= EXPLORED_BUGS_LISTED {
                    break;
                }
                *listed += 1;
                let recipe = Recipe {
                    seed: bug.root_seed,
                    steps: bug
                        .steps
                        .iter()
                        .map(|s| RecipeStep {
                            position: s.position,
                            seed: s.seed,
                        })
                        .collect(),
                };
                bugs.push(ExploredBug {
                    kind: bug.kind.name().to_string(),
                    replay: recipe_command(&spec.replay, &recipe),
                    recipe,
                    failure: bug.failure,
                    failure_info: serde_json::from_str(&bug.structured).ok(),
                    signature: bug.signature,
                    fingerprint: bug.fingerprint,
                    timeline: bug.timeline,
                    wall_time: bug.wall_time,
                });
            }
            (table, bugs)
        }

        /// The exploration's figures so far (without the bug list, which the collector keeps).
        pub(in super::super) fn summary(&self) -> ExplorationSummary {
            let f = lock(&self.explorer).figures();
            let listed = *self.listed.lock().unwrap_or_else(PoisonError::into_inner);
            let mut overflow = BTreeMap::new();
            for (table, count) in [
                ("coverage", f.overflow.coverage),
                ("sites", f.overflow.sites),
                ("buckets", f.overflow.buckets),
                ("bugs", f.overflow.bugs),
                ("texts_cut", f.overflow.texts_cut),
                (
                    "bugs_not_listed",
                    f.bugs_found
                        .saturating_sub(f.overflow.bugs)
                        .saturating_sub(listed as u64),
                ),
            ] {
                if count > 0 {
                    overflow.insert(table.to_string(), count);
                }
            }
            ExplorationSummary {
                timelines: f.timelines,
                roots: f.roots,
                children: f.children,
                split_points: f.split_points,
                fresh_splits: f.fresh_splits,
                repeat_splits: f.repeat_splits,
                skipped_depth: f.skipped_depth,
                skipped_energy: f.skipped_energy,
                skipped_stopped: f.skipped_stopped,
                energy_budget: f.energy_budget,
                energy_used: f.children,
                energy_returned: f.energy_returned,
                energy_drawn: f.energy_drawn,
                energy_left: f.energy_left,
                coverage_bits: f.coverage_keys,
                coverage_capacity: f.coverage_capacity,
                overflow,
                hangs: f.hangs,
                died: f.died,
                fork_failures: f.fork_failures,
                bugs_found: f.bugs_found,
                first_bug_timeline: f.first_bug_timeline,
                first_bug_wall: f.first_bug_wall,
                max_depth: f.max_depth_reached,
                parallelism: f.parallelism,
                peak_children: f.peak_running,
                bugs: Vec::new(),
            }
        }

        /// Why the run of root seeds should stop now, if it should.
        pub(in super::super) fn stop_reason(&self) -> Option<String> {
            let explorer = lock(&self.explorer);
            if explorer.stopping() {
                return Some("exploration found a bug (stop_on_first_bug)".to_string());
            }
            let budget = explorer.config().global_energy;
            (budget > 0 && explorer.energy_left() == 0)
                .then(|| format!("exploration energy of {budget} timelines spent"))
        }
    }

    /// The handler installed in each world of an exploring run.
    struct Hooks {
        explorer: Arc<Mutex<Explorer>>,
        /// `file:line:column` per site key, made once per site.
        locations: BTreeMap<u64, String>,
    }

    impl SplitHandler for Hooks {
        fn evaluated(&mut self, evaluation: &Evaluation<'_>) -> Option<u64> {
            let mut explorer = lock(&self.explorer);
            let coverage = explorer.cover(mix(evaluation.site_key, evaluation.outcome));
            if explorer.is_child() {
                let location = self
                    .locations
                    .entry(evaluation.site_key)
                    .or_insert_with(|| evaluation.site.location());
                record_stats(&explorer, evaluation, location);
            }
            if !evaluation.discovery {
                return None;
            }
            let point = SplitPoint {
                position: evaluation.position,
                fresh: coverage == Coverage::New,
            };
            match explorer.split(point) {
                Branch::Parent => None,
                Branch::Child { seed } => {
                    // This process is a new child timeline: the watchdog's thread is not here.
                    crate::watchdog::in_forked_child();
                    Some(seed)
                }
            }
        }
    }

    fn comparison_code(cmp: Comparison) -> u32 {
        match cmp {
            Comparison::GreaterThan => 0,
            Comparison::GreaterThanOrEqualTo => 1,
            Comparison::LessThan => 2,
            Comparison::LessThanOrEqualTo => 3,
        }
    }

    fn comparison_of(code: u32) -> Option<Comparison> {
        Some(match code {
            0 => Comparison::GreaterThan,
            1 => Comparison::GreaterThanOrEqualTo,
            2 => Comparison::LessThan,
            3 => Comparison::LessThanOrEqualTo,
            _ => return None,
        })
    }

    /// An assertion kind as the explorer's opaque code.
    fn kind_code(kind: AssertKind) -> u32 {
        match kind {
            AssertKind::Always => 1,
            AssertKind::AlwaysOrUnreachable => 2,
            AssertKind::Sometimes => 3,
            AssertKind::Reachable => 4,
            AssertKind::Unreachable => 5,
            AssertKind::AlwaysCompare(cmp) => 10 + comparison_code(cmp),
            AssertKind::SometimesCompare(cmp) => 20 + comparison_code(cmp),
            AssertKind::SometimesAll => 30,
            AssertKind::SometimesEach => 31,
        }
    }

    fn kind_of(code: u32) -> Option<AssertKind> {
        Some(match code {
            1 => AssertKind::Always,
            2 => AssertKind::AlwaysOrUnreachable,
            3 => AssertKind::Sometimes,
            4 => AssertKind::Reachable,
            5 => AssertKind::Unreachable,
            10..=13 => AssertKind::AlwaysCompare(comparison_of(code - 10)?),
            20..=23 => AssertKind::SometimesCompare(comparison_of(code - 20)?),
            30 => AssertKind::SometimesAll,
            31 => AssertKind::SometimesEach,
            _ => return None,
        })
    }

    /// A child's evaluation, added to the shared statistics the root merges into the report.
    fn record_stats(explorer: &Explorer, evaluation: &Evaluation<'_>, location: &str) {
        let Some(kind) = evaluation.site.kind else {
            return;
        };
        let info = SiteInfo {
            kind: kind_code(kind),
            higher_is_better: crate::chaos::prefers_higher(kind),
            message: evaluation.site.message,
            location,
        };
        let delta = match evaluation.observation {
            Observation::Bool { holds, .. } => SiteDelta {
                holds: Some(*holds && kind != AssertKind::Unreachable),
                ..SiteDelta::default()
            },
            Observation::Numeric {
                value, threshold, ..
            } => SiteDelta {
                holds: match kind {
                    AssertKind::AlwaysCompare(cmp) | AssertKind::SometimesCompare(cmp) => {
                        Some(cmp.holds(*value, *threshold))
                    }
                    _ => None,
                },
                value: Some(*value),
                frontier: None,
            },
            Observation::All(conditions) => {
                let count = conditions.iter().filter(|(_, c)| *c).count();
                let total = u32::try_from(conditions.len()).unwrap_or(u32::MAX);
                let count = u32::try_from(count).unwrap_or(u32::MAX);
                SiteDelta {
                    holds: Some(count == total),
                    value: None,
                    frontier: Some((count, total)),
                }
            }
            Observation::Each(keys) => {
                let label = || {
                    keys.iter()
                        .map(|(key, value)| format!("{key}={value}"))
                        .collect::<Vec<_>>()
                        .join(",")
                };
                explorer.record_bucket(evaluation.site_key, evaluation.outcome, &label);
                SiteDelta {
                    holds: Some(true),
                    ..SiteDelta::default()
                }
            }
        };
        explorer.record_site(evaluation.site_key, &info, &delta);
    }

    /// A site's statistics from the children as a record of the report's table.
    fn record_of(site: &SiteStats) -> Option<AssertionRecord> {
        Some(AssertionRecord {
            kind: kind_of(site.kind)?,
            message: site.message.clone(),
            location: site.location.clone(),
            passes: site.passes,
            failures: site.failures,
            watermark: site.watermark,
            frontier: site.frontier,
            conditions: site.conditions,
            buckets: BTreeMap::new(),
            seeds_evaluated: 0,
        })
    }

    /// A failure's signature: the failure without its seed, times or counts, so that every timeline
    /// that hits the same bug has the same one.
    fn signature(error: &SimError) -> String {
        match error {
            SimError::AssertionFailed { violation, .. } => format!(
                "{} \"{}\" at {}",
                violation.kind.macro_name(),
                violation.message,
                violation.location
            ),
            SimError::TaskPanicked { task, message, .. } => {
                format!("task '{task}' panicked: {message}")
            }
            SimError::InvariantViolated { name, .. } => format!("invariant '{name}' violated"),
            SimError::WorkloadFailed {
                workload,
                phase,
                message,
                ..
            } => format!("workload '{workload}' failed in its {phase} phase: {message}"),
            SimError::Deadlock { .. } => "deadlock".to_string(),
            SimError::BusyLoop { .. } => "busy loop".to_string(),
            SimError::TimeBudgetExceeded { .. } => "simulated-time budget exceeded".to_string(),
            SimError::SettleTimeout { .. } => "settle timeout".to_string(),
            SimError::Nondeterministic { .. } => "nondeterminism".to_string(),
            SimError::TaskLimitExceeded { .. } => "task limit exceeded".to_string(),
            SimError::CallbackPanicked {
                callback, message, ..
            } => format!("{callback} panicked: {message}"),
            SimError::InvalidSetup { message } => format!("invalid setup: {message}"),
        }
    }
}
