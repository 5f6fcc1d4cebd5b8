//! [`SimulationReport`]: what a run of seeds found, as a table and as JSON.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::chaos::{AssertionRecord, AssertionTable};

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

impl fmt::Display for ShardInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Why [`SimulationReport::merge`] refused its input: merging would count seeds twice, mix
/// simulations, or has nothing to merge. Input reports are numbered from 0 in the order given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// No report was given.
    #[error("no reports to merge")]
    Empty,
    /// Two reports are of different simulations.
    #[error(
        "report #{position} is of simulation '{other}' but report #0 is of '{first}': only the \
         shards of one simulation can be merged"
    )]
    DifferentSimulations {
        /// The first report's simulation.
        first: String,
        /// The other simulation.
        other: String,
        /// The other report's position.
        position: usize,
    },
    /// Some reports say which shard they are and others do not.
    #[error(
        "report #{unsharded} is not a shard (it covers a whole seed sequence) but report \
         #{sharded} is shard {shard}: they cannot be merged"
    )]
    MixedSharding {
        /// A report without shard information.
        unsharded: usize,
        /// A shard's report.
        sharded: usize,
        /// That report's shard.
        shard: ShardInfo,
    },
    /// Two shards split the seed sequence differently.
    #[error(
        "report #{position} is shard {other} but report #{first_position} is shard {first}: the \
         shards of one run all have the same count"
    )]
    DifferentShardCounts {
        /// The first shard seen.
        first: ShardInfo,
        /// Its position.
        first_position: usize,
        /// The shard with another count.
        other: ShardInfo,
        /// Its position.
        position: usize,
    },
    /// The same shard was given twice: its seeds would count twice.
    #[error(
        "shard {shard} is given twice (reports #{first} and #{second}): its seeds and failures \
         would count twice"
    )]
    DuplicateShard {
        /// The shard.
        shard: ShardInfo,
        /// Its first report.
        first: usize,
        /// Its second report.
        second: usize,
    },
    /// Two reports contain the same seed index: it would count twice.
    #[error(
        "seed index {index} (seed {seed}) is in reports #{first} and #{second}: the reports \
         overlap and its outcome would count twice"
    )]
    OverlappingSeeds {
        /// The seed's index in the sequence.
        index: usize,
        /// The seed (as the first report has it).
        seed: u64,
        /// The first report holding it.
        first: usize,
        /// The second one.
        second: usize,
    },
    /// A report is itself a partial merge: the shards it lacks are not recorded as shards, so
    /// merging it again could not tell what is still missing.
    #[error(
        "report #{position} is a partial merge (shards {} missing): merge the shards' own \
         reports instead",
        ShardList(missing)
    )]
    PartialMergeInput {
        /// Its position.
        position: usize,
        /// The shards it lacks.
        missing: Vec<usize>,
    },
}

/// `0, 2, 5`.
struct ShardList<'a>(&'a [usize]);

impl fmt::Display for ShardList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, shard) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{shard}")?;
        }
        Ok(())
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

    /// Merges the reports of shards of one simulation into one report.
    ///
    /// Refused (see [`MergeError`]): no report; reports of different simulations; shards of
    /// different counts; the same shard twice, or any seed index in two reports (it would count
    /// twice); shard reports mixed with reports that are not shards; a partial merge as input.
    /// Reports without shard information (whole runs, complete merges, reports written before
    /// shards were recorded) merge if their seeds do not overlap.
    ///
    /// Missing shards (say 0/4, 1/4 and 3/4 given) are not an error, so that partial results can
    /// still be viewed: the merge lists them in [`missing_shards`](Self::missing_shards), shows
    /// them, and is not a success.
    pub fn merge(reports: &[SimulationReport]) -> Result<SimulationReport, MergeError> {
        let first = reports.first().ok_or(MergeError::Empty)?;
        // Which shards are present, and where.
        let mut shards: BTreeMap<usize, usize> = BTreeMap::new();
        let mut shard_count: Option<(ShardInfo, usize)> = None;
        let mut unsharded = None;
        for (position, report) in reports.iter().enumerate() {
            if report.name != first.name {
                return Err(MergeError::DifferentSimulations {
                    first: first.name.clone(),
                    other: report.name.clone(),
                    position,
                });
            }
            if !report.missing_shards.is_empty() {
                return Err(MergeError::PartialMergeInput {
                    position,
                    missing: report.missing_shards.clone(),
                });
            }
            let Some(shard) = report.shard else {
                unsharded.get_or_insert(position);
                continue;
            };
            match shard_count {
                None => shard_count = Some((shard, position)),
                Some((seen, first_position)) if seen.count != shard.count => {
                    return Err(MergeError::DifferentShardCounts {
                        first: seen,
                        first_position,
                        other: shard,
                        position,
                    });
                }
                Some(_) => {}
            }
            if let Some(earlier) = shards.insert(shard.index, position) {
                return Err(MergeError::DuplicateShard {
                    shard,
                    first: earlier,
                    second: position,
                });
            }
        }
        if let (Some(unsharded), Some((shard, sharded))) = (unsharded, shard_count) {
            return Err(MergeError::MixedSharding {
                unsharded,
                sharded,
                shard,
            });
        }
        let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
        for (position, report) in reports.iter().enumerate() {
            for outcome in &report.seeds {
                if let Some(earlier) = seen.insert(outcome.index, position) {
                    return Err(MergeError::OverlappingSeeds {
                        index: outcome.index,
                        seed: outcome.seed,
                        first: earlier,
                        second: position,
                    });
                }
            }
        }
        let mut merged = SimulationReport::new(&first.name);
        for report in reports {
            merged.seeds.extend(report.seeds.iter().cloned());
            merged.assertions.merge(&report.assertions);
            for (kind, count) in &report.faults {
                *merged.faults.entry(kind.clone()).or_insert(0) += count;
            }
            merged.wall_time = merged.wall_time.max(report.wall_time);
            for expected in &report.never_evaluated {
                if !merged.never_evaluated.contains(expected) {
                    merged.never_evaluated.push(expected.clone());
                }
            }
        }
        merged.seeds.sort_by_key(|s| s.index);
        let total = shard_count.map_or(reports.len(), |(shard, _)| shard.count);
        merged.missing_shards = (0..total)
            .filter(|i| shard_count.is_some() && !shards.contains_key(i))
            .collect();
        merged.stop_reason = if merged.missing_shards.is_empty() {
            format!("merged from {} shards", reports.len())
        } else {
            format!(
                "merged from {} of {total} shards; missing: {}",
                reports.len(),
                ShardList(&merged.missing_shards)
            )
        };
        // An expectation one shard missed but another met is met.
        merged
            .never_evaluated
            .retain(|m| !merged.assertions.records.values().any(|r| &r.message == m));
        Ok(merged)
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

fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 3600.0 {
        format!("{:.1} h", secs / 3600.0)
    } else if secs >= 60.0 {
        format!("{:.1} min", secs / 60.0)
    } else if secs >= 1.0 {
        format!("{secs:.2} s")
    } else {
        format!("{:.1} ms", secs * 1e3)
    }
}

fn assertion_figures(record: &AssertionRecord) -> String {
    use moonpool_core::chaos::AssertKind;
    let mut text = format!("{} pass / {} fail", record.passes, record.failures);
    match record.kind {
        AssertKind::AlwaysCompare(_) | AssertKind::SometimesCompare(_) => {
            if let Some(w) = record.watermark {
                text.push_str(&format!(", watermark {w}"));
            }
        }
        AssertKind::SometimesAll => {
            text = format!(
                "{} calls, frontier {}/{}",
                record.evaluations(),
                record.frontier,
                record.conditions
            );
        }
        AssertKind::SometimesEach => {
            text = format!("{} hits, {} buckets", record.passes, record.buckets.len());
        }
        _ => {}
    }
    text
}

impl fmt::Display for SimulationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "=== simulation '{}' ===", self.name)?;
        writeln!(
            f,
            "seeds     {} run, {} passed, {} failed ({})",
            self.seeds_run(),
            self.passed(),
            self.failed(),
            self.stop_reason
        )?;
        writeln!(
            f,
            "time      {} wall, {} simulated, {}x compression",
            format_duration(self.wall_time),
            format_duration(self.sim_time()),
            self.time_compression().round()
        )?;
        writeln!(f, "events    {}", self.events())?;
        if let Some(shard) = &self.shard {
            writeln!(f, "shard     {shard}")?;
        }
        if !self.missing_shards.is_empty() {
            writeln!(
                f,
                "\nmissing shards ({}): {} (their seeds were not run; this merge is partial)",
                self.missing_shards.len(),
                ShardList(&self.missing_shards)
            )?;
        }
        if !self.assertions.records.is_empty() {
            writeln!(f, "\nassertions ({})", self.assertions.records.len())?;
            let mut records: Vec<&AssertionRecord> = self.assertions.records.values().collect();
            records.sort_by(|a, b| {
                (a.status() != "FAIL", a.status() != "MISS", &a.message).cmp(&(
                    b.status() != "FAIL",
                    b.status() != "MISS",
                    &b.message,
                ))
            });
            for record in records {
                writeln!(
                    f,
                    "  {} {:<40} {:<44} {} (in {} of {} seeds)",
                    record.status(),
                    record.kind.macro_name(),
                    format!("\"{}\"", record.message),
                    assertion_figures(record),
                    record.seeds_evaluated,
                    self.seeds_run()
                )?;
            }
        }
        let missing = self.sometimes_never_reached();
        if !missing.is_empty() {
            writeln!(f, "\nsometimes never reached ({})", missing.len())?;
            for record in missing {
                writeln!(f, "  \"{}\" at {}", record.message, record.location)?;
            }
        }
        if !self.never_evaluated.is_empty() {
            writeln!(
                f,
                "\nexpected assertions never evaluated ({})",
                self.never_evaluated.len()
            )?;
            for message in &self.never_evaluated {
                writeln!(f, "  \"{message}\"")?;
            }
        }
        if !self.faults.is_empty() {
            writeln!(f, "\nfaults fired")?;
            for (kind, count) in &self.faults {
                writeln!(f, "  {kind:<36} {count}")?;
            }
        }
        if self.failed() > 0 {
            writeln!(f, "\nfailed seeds ({})", self.failed())?;
            for outcome in self.failures() {
                writeln!(f, "  {}", outcome.failure.as_deref().unwrap_or(""))?;
                if let Some(replay) = &outcome.replay {
                    writeln!(f, "    replay: {replay}")?;
                }
                if let Some(trace) = &outcome.trace_file {
                    writeln!(f, "    trace:  {trace} (open in ui.perfetto.dev)")?;
                }
            }
        }
        Ok(())
    }
}
