//! When a run of seeds stops.

use std::sync::Arc;
use std::time::Duration;

use super::report_coverage::CoverageCheck;
use crate::chaos::AssertionTable;

/// How many seeds a simulation runs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum IterationControl {
    /// Exactly this many seeds.
    FixedCount(usize),
    /// Seeds until this much wall-clock time has passed (at least one).
    TimeLimit(Duration),
    /// Seeds until every coverage assertion (`sometimes`, `reachable`, ...) seen so far, and every
    /// site of the test's coverage scope in the link-time catalog (`always` included), has been
    /// satisfied, or `max_seeds`; stopped by the budget first, the stop reason says so and names
    /// the sites still missing. With no coverage assertions it stops after the first seed.
    UntilAllSometimesReached(usize),
    /// The default: seeds until every coverage assertion seen and every site of the test's
    /// coverage scope has been satisfied **and** coverage (assertion sites seen, satisfied,
    /// buckets, frontiers) has not grown for `plateau_seeds` seeds, or `max_seeds` (the stop
    /// reason then names the sites still missing). With no coverage assertions it stops after
    /// the first seed.
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
    /// The catalog and the test's scope: registered sites not yet reached count as unsatisfied.
    coverage: Option<Arc<CoverageCheck>>,
}

impl Stopper {
    pub(crate) fn new(control: IterationControl, min_seeds: usize) -> Self {
        Self {
            control,
            min_seeds,
            seeds: 0,
            last_signature: CoverageSignature::default(),
            unchanged_for: 0,
            coverage: None,
        }
    }

    /// Waits for the registered sites of `coverage`'s scope too (adaptive controls).
    pub(crate) fn with_coverage(mut self, coverage: Arc<CoverageCheck>) -> Self {
        self.coverage = Some(coverage);
        self
    }

    /// The budget ran out: why, and what coverage was still missing.
    fn budget_verdict(
        &self,
        max: usize,
        merged: &AssertionTable,
        signature: CoverageSignature,
    ) -> String {
        let missing = signature.sites - signature.satisfied;
        if missing == 0 {
            return format!("maximum of {max} seeds");
        }
        let names = self
            .coverage
            .as_ref()
            .map(|c| c.unreached_names(merged, 3))
            .unwrap_or_default();
        let unsatisfied = merged
            .unsatisfied()
            .take(3)
            .map(|r| format!("\"{}\" at {}", r.message, r.location));
        let shown: Vec<String> = unsatisfied.chain(names).take(3).collect();
        format!(
            "maximum of {max} seeds reached before coverage was complete: {missing} of {} coverage \
             sites not satisfied ({}{})",
            signature.sites,
            shown.join(", "),
            if missing > shown.len() { ", ..." } else { "" }
        )
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
        let mut signature = CoverageSignature::of(merged);
        let adaptive = matches!(
            self.control,
            IterationControl::UntilAllSometimesReached(_)
                | IterationControl::UntilCoverageStable { .. }
        );
        if adaptive && let Some(coverage) = &self.coverage {
            signature.sites += coverage.unreached_count(merged);
        }
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
                    Some(self.budget_verdict(*max, merged, signature))
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
                    Some(self.budget_verdict(*max_seeds, merged, signature))
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
