//! When a run of seeds stops.

use std::time::Duration;

use crate::chaos::AssertionTable;

/// How many seeds a simulation runs.
#[derive(Debug, Clone, PartialEq)]
pub enum IterationControl {
    /// Exactly this many seeds.
    FixedCount(usize),
    /// Seeds until this much wall-clock time has passed (at least one).
    TimeLimit(Duration),
    /// Seeds until every coverage assertion seen so far (`sometimes`, `reachable`, ...) has been
    /// satisfied, or `max_seeds`. With no coverage assertions it stops after the first seed.
    UntilAllSometimesReached(usize),
    /// The default: seeds until every coverage assertion seen has been satisfied **and** coverage
    /// (assertion sites seen, satisfied, buckets, frontiers) has not grown for `plateau_seeds`
    /// seeds, or `max_seeds`. With no coverage assertions it stops after the first seed.
    UntilCoverageStable {
        /// Seeds without new coverage before stopping.
        plateau_seeds: usize,
        /// Upper bound.
        max_seeds: usize,
    },
}

impl Default for IterationControl {
    fn default() -> Self {
        IterationControl::UntilCoverageStable {
            plateau_seeds: 20,
            max_seeds: 1_000,
        }
    }
}

/// A summary of coverage that only grows; when it stops changing, coverage has plateaued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CoverageSignature {
    sites: usize,
    satisfied: usize,
    buckets: usize,
    frontier: u64,
}

impl CoverageSignature {
    pub(crate) fn of(table: &AssertionTable) -> Self {
        let mut signature = Self::default();
        for record in table.records.values().filter(|r| r.kind.is_coverage()) {
            signature.sites += 1;
            signature.satisfied += usize::from(record.satisfied());
            signature.buckets += record.buckets.len();
            signature.frontier += u64::from(record.frontier);
        }
        signature
    }
}

/// Tracks the stop decision seed by seed, in seed order.
pub(crate) struct Stopper {
    control: IterationControl,
    min_seeds: usize,
    seeds: usize,
    last_signature: CoverageSignature,
    unchanged_for: usize,
}

impl Stopper {
    pub(crate) fn new(control: IterationControl, min_seeds: usize) -> Self {
        Self {
            control,
            min_seeds,
            seeds: 0,
            last_signature: CoverageSignature::default(),
            unchanged_for: 0,
        }
    }

    /// Upper bound on the number of seeds, if any.
    pub(crate) fn max_seeds(&self) -> Option<usize> {
        match self.control {
            IterationControl::FixedCount(n) => Some(n),
            IterationControl::TimeLimit(_) => None,
            IterationControl::UntilAllSometimesReached(max) => Some(max),
            IterationControl::UntilCoverageStable { max_seeds, .. } => Some(max_seeds),
        }
    }

    /// Records one more finished seed; returns why to stop, if it is time.
    pub(crate) fn after_seed(&mut self, merged: &AssertionTable, wall: Duration) -> Option<String> {
        self.seeds += 1;
        let signature = CoverageSignature::of(merged);
        if signature == self.last_signature {
            self.unchanged_for += 1;
        } else {
            self.unchanged_for = 0;
            self.last_signature = signature;
        }
        let all_satisfied = signature.satisfied == signature.sites;
        let adaptive_may_stop = self.seeds >= self.min_seeds;
        match &self.control {
            IterationControl::FixedCount(n) => {
                (self.seeds >= *n).then(|| format!("fixed count of {n} seeds"))
            }
            IterationControl::TimeLimit(limit) => {
                (wall >= *limit).then(|| format!("time limit of {limit:?} reached"))
            }
            IterationControl::UntilAllSometimesReached(max) => {
                if self.seeds >= *max {
                    Some(format!("maximum of {max} seeds"))
                } else if !adaptive_may_stop {
                    None
                } else if signature.sites == 0 {
                    Some("no coverage assertions to reach".to_string())
                } else if all_satisfied {
                    Some(format!(
                        "all {} coverage assertions reached",
                        signature.sites
                    ))
                } else {
                    (self.seeds >= *max).then(|| format!("maximum of {max} seeds"))
                }
            }
            IterationControl::UntilCoverageStable {
                plateau_seeds,
                max_seeds,
            } => {
                if self.seeds >= *max_seeds {
                    Some(format!("maximum of {max_seeds} seeds"))
                } else if !adaptive_may_stop {
                    None
                } else if signature.sites == 0 {
                    Some("no coverage assertions: nothing to stabilise".to_string())
                } else if all_satisfied && self.unchanged_for >= *plateau_seeds {
                    Some(format!(
                        "coverage stable: all {} coverage assertions reached, nothing new for {plateau_seeds} seeds",
                        signature.sites
                    ))
                } else {
                    None
                }
            }
        }
    }
}
