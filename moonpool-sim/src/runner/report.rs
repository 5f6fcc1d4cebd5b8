//! [`SimulationReport`]: what a run of seeds found, as a table and as JSON.
//!
//! Merging shards' reports is in [`report_merge`](super::report_merge), the table in
//! [`report_display`](super::report_display).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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

    /// True when every seed passed, every coverage assertion was satisfied, every expected
    /// assertion was evaluated and (for a merge) no shard was missing.
    pub fn is_success(&self) -> bool {
        self.failed() == 0
            && self.missing_shards.is_empty()
            && self.sometimes_never_reached().is_empty()
            && self.never_evaluated.is_empty()
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
