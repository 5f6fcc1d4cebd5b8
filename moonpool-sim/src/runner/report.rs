//! [`SimulationReport`]: what a run of seeds found, as a table and as JSON.
//!
//! Merging shards' reports is in [`report_merge`](super::report_merge), the table in
//! [`report_display`](super::report_display).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::recipe::Recipe;
use crate::chaos::{AssertionRecord, AssertionTable};
use crate::error::SimError;

/// The outcome of one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedOutcome {
    /// Position of the seed in the run's seed sequence (shards keep the global index).
    pub index: usize,
    /// The seed.
    pub seed: u64,
    /// The run's fingerprint (for a seed that failed before its world was built, a print of the
    /// seed alone).
    pub fingerprint: u64,
    /// Simulated time.
    pub sim_time: Duration,
    /// Events processed.
    pub events: u64,
    /// Wall-clock time of the seed.
    pub wall_time: Duration,
    /// Why it failed, if it did.
    pub failure: Option<String>,
    /// The command that replays it, when it failed.
    pub replay: Option<String>,
    /// The Chrome trace written for it, when it failed and traces were asked for.
    #[serde(default)]
    pub trace_file: Option<String>,
    /// The failure's structure (kind, site, fault kinds fired, shrink result), when it failed.
    #[serde(default)]
    pub failure_info: Option<super::report_failure::FailureInfo>,
}

/// Which shard of a simulation's seed sequence a report covers: the seeds whose index `i` has
/// `i % count == index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// The shard, `0..count`.
    pub index: usize,
    /// How many shards the sequence was split into.
    pub count: usize,
}

/// A timeline of an exploration that found a bug, and the way back to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExploredBug {
    /// How the timeline ended: `failed` (its verdict), `hung` (killed past its wall-clock
    /// budget) or `died` (its process ended abnormally).
    pub kind: String,
    /// The root seed and the split points leading to the timeline.
    pub recipe: Recipe,
    /// The one-line command that replays it in one process, without forking.
    pub replay: String,
    /// What went wrong.
    pub failure: String,
    /// Its kind, site and the fault kinds that fired in its timeline (none for a timeline that
    /// hung or died, or when the structured form did not fit in shared memory).
    pub failure_info: Option<super::report_failure::FailureInfo>,
    /// The failure without times or seeds: the same for every timeline with the same bug.
    pub signature: String,
    /// The timeline's fingerprint (none when its process died before the end).
    pub fingerprint: Option<u64>,
    /// Timelines started in the whole exploration when it was found.
    pub timeline: u64,
    /// Wall-clock time from the start of the exploration to it.
    pub wall_time: Duration,
}

/// What an exploration did (the report of a run made with `SimulationBuilder::explore`).
///
/// Every field defaults, so reports written before a field existed still parse.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExplorationSummary {
    /// Timelines run: root seeds plus child timelines.
    pub timelines: u64,
    /// Root timelines (one per seed).
    pub roots: u64,
    /// Child timelines (forked).
    pub children: u64,
    /// Split points that forked.
    pub split_points: u64,
    /// Of those, split points whose discovery was new to every timeline.
    pub fresh_splits: u64,
    /// Of those, split points whose discovery was new only to their own timeline's lineage.
    pub repeat_splits: u64,
    /// Split points not taken: at the depth bound.
    pub skipped_depth: u64,
    /// Split points not taken: no energy left.
    pub skipped_energy: u64,
    /// Split points not taken: the exploration was stopping.
    pub skipped_stopped: u64,
    /// The global energy budget (child timelines).
    pub energy_budget: u64,
    /// Energy used (child timelines forked).
    pub energy_used: u64,
    /// Allowance split points gave back to the shared pool (their children found nothing new).
    pub energy_returned: u64,
    /// Energy productive split points drew from the pool.
    pub energy_drawn: u64,
    /// Energy left.
    pub energy_left: u64,
    /// Coverage keys (assertion site and outcome) some timeline reached.
    pub coverage_bits: u64,
    /// Coverage keys the shared set can hold.
    pub coverage_capacity: u64,
    /// What did not fit in a fixed-size table, by table (zero counts left out).
    pub overflow: BTreeMap<String, u64>,
    /// Child timelines killed past their wall-clock budget.
    pub hangs: u64,
    /// Child timelines whose process ended abnormally otherwise.
    pub died: u64,
    /// Forks the system refused.
    pub fork_failures: u64,
    /// Bugs found (timelines that failed, hung or died), listed or not.
    pub bugs_found: u64,
    /// Timelines started when the first bug was found.
    pub first_bug_timeline: Option<u64>,
    /// Wall-clock time to the first bug.
    pub first_bug_wall: Option<Duration>,
    /// The deepest split reached.
    pub max_depth: u32,
    /// Children allowed to run at once.
    pub parallelism: u64,
    /// Most child processes alive at once.
    pub peak_children: u64,
    /// The bugs, in the order found (at most [`EXPLORED_BUGS_LISTED`]; the rest are counted in
    /// `overflow["bugs_not_listed"]`).
    pub bugs: Vec<ExploredBug>,
}

/// Bugs a report lists; more are counted.
pub const EXPLORED_BUGS_LISTED: usize = 1000;

impl ExplorationSummary {
    /// Each distinct bug (by signature) with how many timelines found it.
    pub fn distinct_bugs(&self) -> BTreeMap<&str, usize> {
        let mut distinct = BTreeMap::new();
        for bug in &self.bugs {
            *distinct.entry(bug.signature.as_str()).or_insert(0) += 1;
        }
        distinct
    }

    /// Adds another shard's exploration into this one.
    pub(crate) fn merge(&mut self, other: &ExplorationSummary) {
        self.timelines += other.timelines;
        self.roots += other.roots;
        self.children += other.children;
        self.split_points += other.split_points;
        self.fresh_splits += other.fresh_splits;
        self.repeat_splits += other.repeat_splits;
        self.skipped_depth += other.skipped_depth;
        self.skipped_energy += other.skipped_energy;
        self.skipped_stopped += other.skipped_stopped;
        self.energy_budget += other.energy_budget;
        self.energy_used += other.energy_used;
        self.energy_returned += other.energy_returned;
        self.energy_drawn += other.energy_drawn;
        self.energy_left += other.energy_left;
        self.coverage_bits = self.coverage_bits.max(other.coverage_bits);
        self.coverage_capacity = self.coverage_capacity.max(other.coverage_capacity);
        for (table, count) in &other.overflow {
            *self.overflow.entry(table.clone()).or_insert(0) += count;
        }
        self.hangs += other.hangs;
        self.died += other.died;
        self.fork_failures += other.fork_failures;
        self.bugs_found += other.bugs_found;
        self.max_depth = self.max_depth.max(other.max_depth);
        self.parallelism = self.parallelism.max(other.parallelism);
        self.peak_children = self.peak_children.max(other.peak_children);
        for bug in &other.bugs {
            if self.bugs.len() < EXPLORED_BUGS_LISTED {
                self.bugs.push(bug.clone());
            } else {
                *self
                    .overflow
                    .entry("bugs_not_listed".to_string())
                    .or_insert(0) += 1;
            }
        }
        // Per shard, "first" is relative to that shard's own start: keep the earliest.
        self.first_bug_timeline = match (self.first_bug_timeline, other.first_bug_timeline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.first_bug_wall = match (self.first_bug_wall, other.first_bug_wall) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// What a run of seeds found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimulationReport {
    /// The simulation's name.
    pub name: String,
    /// Every seed run, in seed order.
    pub seeds: Vec<SeedOutcome>,
    /// Assertions, merged over the seeds.
    pub assertions: AssertionTable,
    /// Faults that fired, by kind, summed over the seeds.
    pub faults: BTreeMap<String, u64>,
    /// Why the run stopped.
    pub stop_reason: String,
    /// Wall-clock time of the whole run.
    pub wall_time: Duration,
    /// Assertion messages the builder was told to expect that no seed evaluated.
    pub never_evaluated: Vec<String>,
    /// The shard this report covers, when the run was sharded (`None` for a whole run and for
    /// a merge of shards).
    #[serde(default)]
    pub shard: Option<ShardInfo>,
    /// Shards a [merge](Self::merge) lacked: their seeds were not run, so the report is not a
    /// success (`is_success` is false) even if every merged seed passed.
    #[serde(default)]
    pub missing_shards: Vec<usize>,
    /// What the exploration did, when the run explored.
    #[serde(default)]
    pub exploration: Option<ExplorationSummary>,
    /// The catalog's view: sites in scope no seed reached, idle buggify sites.
    #[serde(default)]
    pub coverage: super::report_coverage::CoverageReport,
}

impl SimulationReport {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            seeds: Vec::new(),
            assertions: AssertionTable::default(),
            faults: BTreeMap::new(),
            stop_reason: String::new(),
            wall_time: Duration::ZERO,
            never_evaluated: Vec::new(),
            shard: None,
            missing_shards: Vec::new(),
            exploration: None,
            coverage: Default::default(),
        }
    }

    /// Records that this report covers shard `index` of `count`.
    pub(crate) fn set_shard(&mut self, index: usize, count: usize) {
        self.shard = Some(ShardInfo { index, count });
    }

    /// Seeds run.
    pub fn seeds_run(&self) -> usize {
        self.seeds.len()
    }

    /// Seeds that passed.
    pub fn passed(&self) -> usize {
        self.seeds.iter().filter(|s| s.failure.is_none()).count()
    }

    /// The seeds that failed.
    pub fn failures(&self) -> impl Iterator<Item = &SeedOutcome> {
        self.seeds.iter().filter(|s| s.failure.is_some())
    }

    /// Seeds that failed.
    pub fn failed(&self) -> usize {
        self.failures().count()
    }

    /// Total simulated time.
    pub fn sim_time(&self) -> Duration {
        self.seeds.iter().map(|s| s.sim_time).sum()
    }

    /// Total events.
    pub fn events(&self) -> u64 {
        self.seeds.iter().map(|s| s.events).sum()
    }

    /// Simulated time divided by wall time.
    pub fn time_compression(&self) -> f64 {
        let wall = self.wall_time.as_secs_f64();
        if wall > 0.0 {
            self.sim_time().as_secs_f64() / wall
        } else {
            0.0
        }
    }

    /// Coverage assertions evaluated but never satisfied.
    pub fn sometimes_never_reached(&self) -> Vec<&AssertionRecord> {
        self.assertions.unsatisfied().collect()
    }

    /// The bugs an exploration found (none without exploration).
    pub fn explored_bugs(&self) -> &[ExploredBug] {
        self.exploration.as_ref().map_or(&[], |e| e.bugs.as_slice())
    }

    /// True when every seed passed, no explored timeline found a bug, every coverage assertion
    /// was satisfied, every site in the test's coverage scope was reached, every expected
    /// assertion was evaluated and (for a merge) no shard was missing.
    pub fn is_success(&self) -> bool {
        self.failed() == 0
            && self.exploration.as_ref().is_none_or(|e| e.bugs_found == 0)
            && self.missing_shards.is_empty()
            && self.sometimes_never_reached().is_empty()
            && self.never_evaluated.is_empty()
            && self.coverage.unreached.is_empty()
            && !self.seeds.is_empty()
    }

    /// Panics with the whole report unless [`is_success`](Self::is_success). For tests.
    #[track_caller]
    #[allow(clippy::panic)]
    pub fn assert_success(&self) {
        if !self.is_success() {
            panic!("simulation '{}' did not succeed:\n{self}", self.name);
        }
    }

    /// The report without wall-clock figures, for comparing runs (serial versus parallel,
    /// sharded versus not).
    pub fn without_timings(&self) -> Self {
        let mut copy = self.clone();
        copy.wall_time = Duration::ZERO;
        for seed in &mut copy.seeds {
            seed.wall_time = Duration::ZERO;
        }
        if let Some(exploration) = &mut copy.exploration {
            exploration.first_bug_wall = None;
            for bug in &mut exploration.bugs {
                bug.wall_time = Duration::ZERO;
            }
        }
        copy.stop_reason.clear();
        copy
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// A report read back from JSON.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Writes the JSON report to `path`.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let json = self.to_json().map_err(std::io::Error::other)?;
        std::fs::write(path, json)
    }
}

/// The error without its trailing replay hint (the report prints its own replay command).
pub(super) fn failure_text(error: &SimError) -> String {
    let text = error.to_string();
    match text.split_once("\n  replay:") {
        Some((head, _)) => head.to_string(),
        None => text,
    }
}
