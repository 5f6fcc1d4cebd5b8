//! [`SimulationReport::merge`]: the reports of a simulation's shards merged into one, refused
//! (with a [`MergeError`]) when seeds would count twice or simulations would mix.

use std::collections::BTreeMap;
use std::fmt;

use super::report::{ShardInfo, SimulationReport};

/// Why [`SimulationReport::merge`] refused its input: merging would count seeds twice, mix
/// simulations, or has nothing to merge. Input reports are numbered from 0 in the order given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
pub(super) struct ShardList<'a>(pub(super) &'a [usize]);

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

impl SimulationReport {
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
        let shards = shards_present(reports, first)?;
        check_no_overlap(reports)?;
        Ok(combine(&first.name, reports, &shards))
    }
}

/// The shards given: which shard is at which position, and the first shard seen with its
/// position (`None` when no report is a shard).
struct Shards {
    positions: BTreeMap<usize, usize>,
    first: Option<(ShardInfo, usize)>,
}

/// Checks that the reports are of one simulation, none is a partial merge, and they are either
/// all distinct shards of one count or all unsharded.
fn shards_present(
    reports: &[SimulationReport],
    first: &SimulationReport,
) -> Result<Shards, MergeError> {
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
    Ok(Shards {
        positions: shards,
        first: shard_count,
    })
}

/// Checks that no seed index is in two reports.
fn check_no_overlap(reports: &[SimulationReport]) -> Result<(), MergeError> {
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
    Ok(())
}

/// The merged report: seeds in index order, assertions and faults summed, the missing shards
/// named.
fn combine(name: &str, reports: &[SimulationReport], shards: &Shards) -> SimulationReport {
    let mut merged = SimulationReport::new(name);
    for report in reports {
        merged.seeds.extend(report.seeds.iter().cloned());
        merged.assertions.merge(&report.assertions);
        for (kind, count) in &report.faults {
            *merged.faults.entry(kind.clone()).or_insert(0) += count;
        }
        merged.wall_time = merged.wall_time.max(report.wall_time);
        if let Some(exploration) = &report.exploration {
            merged
                .exploration
                .get_or_insert_with(Default::default)
                .merge(exploration);
        }
        for expected in &report.never_evaluated {
            if !merged.never_evaluated.contains(expected) {
                merged.never_evaluated.push(expected.clone());
            }
        }
    }
    merged.seeds.sort_by_key(|s| s.index);
    let shard_count = shards.first;
    let total = shard_count.map_or(reports.len(), |(shard, _)| shard.count);
    merged.missing_shards = (0..total)
        .filter(|i| shard_count.is_some() && !shards.positions.contains_key(i))
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
    merged.coverage = super::report_coverage::CoverageReport::merge(reports, &merged.assertions);
    // An expectation one shard missed but another met is met.
    merged
        .never_evaluated
        .retain(|m| !merged.assertions.records.values().any(|r| &r.message == m));
    merged
}
