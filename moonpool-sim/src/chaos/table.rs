//! The assertion table: what every assertion call site observed, per seed and across seeds.

use std::collections::BTreeMap;
use std::time::Duration;

use moonpool_core::chaos::{AssertKind, Observation, Site};
use serde::{Deserialize, Serialize};

/// The first `always`-type failure of a seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssertionViolation {
    /// The assertion's message.
    pub message: String,
    /// The macro that failed.
    pub kind: AssertKind,
    /// `file:line:column`.
    pub location: String,
    /// `process/task` that evaluated it.
    pub task: String,
    /// Simulated time of the failure.
    pub at: Duration,
    /// The failing values and the formatted detail argument, if any.
    pub detail: String,
}

/// What one assertion call site observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssertionRecord {
    /// The macro.
    pub kind: AssertKind,
    /// The message.
    pub message: String,
    /// `file:line:column`.
    pub location: String,
    /// Evaluations where the property held (for `reachable`: times reached; for `unreachable`:
    /// never counted).
    pub passes: u64,
    /// Evaluations where it did not (for `unreachable`: times reached).
    pub failures: u64,
    /// Numeric assertions: the closest the value came to breaking an `always` comparison, or the
    /// best value a `sometimes` comparison saw.
    pub watermark: Option<f64>,
    /// `sometimes_all`: the most conditions true at once, out of `conditions`.
    pub frontier: u32,
    /// `sometimes_all`: how many conditions there are.
    pub conditions: u32,
    /// `sometimes_each`: hits per bucket (values of the keys, in order).
    pub buckets: BTreeMap<String, u64>,
    /// Seeds in which the site was evaluated at least once.
    pub seeds_evaluated: u64,
}

impl AssertionRecord {
    fn new(site: &Site, kind: AssertKind) -> Self {
        Self {
            kind,
            message: site.message.to_string(),
            location: site.location(),
            passes: 0,
            failures: 0,
            watermark: None,
            frontier: 0,
            conditions: 0,
            buckets: BTreeMap::new(),
            seeds_evaluated: 1,
        }
    }

    /// Times evaluated.
    pub fn evaluations(&self) -> u64 {
        self.passes + self.failures
    }

    /// True when the assertion's contract is broken (an `always`-type failure).
    pub fn violated(&self) -> bool {
        self.kind.is_always() && self.failures > 0
    }

    /// True when a coverage assertion has been satisfied (it held, was reached, or found a bucket).
    pub fn satisfied(&self) -> bool {
        match self.kind {
            AssertKind::SometimesEach => !self.buckets.is_empty(),
            AssertKind::SometimesAll => self.conditions > 0 && self.frontier == self.conditions,
            kind if kind.is_coverage() => self.passes > 0,
            _ => !self.violated(),
        }
    }

    /// Pass, fail or miss, as shown in reports.
    pub fn status(&self) -> &'static str {
        if self.violated() {
            "FAIL"
        } else if self.kind.is_coverage() && !self.satisfied() {
            "MISS"
        } else {
            "PASS"
        }
    }

    fn merge(&mut self, other: &AssertionRecord) {
        self.passes += other.passes;
        self.failures += other.failures;
        self.watermark = match (self.watermark, other.watermark) {
            (Some(a), Some(b)) => Some(if self.prefers_higher() {
                a.max(b)
            } else {
                a.min(b)
            }),
            (a, b) => a.or(b),
        };
        self.frontier = self.frontier.max(other.frontier);
        self.conditions = self.conditions.max(other.conditions);
        for (bucket, hits) in &other.buckets {
            *self.buckets.entry(bucket.clone()).or_insert(0) += hits;
        }
        self.seeds_evaluated += other.seeds_evaluated;
    }

    /// Whether a higher value is the "interesting" watermark: the best value of a `sometimes`
    /// greater-than, the worst (closest to breaking) value of an `always` less-than.
    fn prefers_higher(&self) -> bool {
        match self.kind {
            AssertKind::SometimesCompare(cmp) => cmp.is_greater(),
            AssertKind::AlwaysCompare(cmp) => !cmp.is_greater(),
            _ => true,
        }
    }
}

/// Every assertion site seen, keyed by `file:line:column`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssertionTable {
    /// The records, in location order.
    pub records: BTreeMap<String, AssertionRecord>,
    /// The first `always`-type failure, if any.
    pub violation: Option<AssertionViolation>,
}

impl AssertionTable {
    /// Records one evaluation; returns the failure detail when an `always`-type assertion failed.
    pub(crate) fn record(
        &mut self,
        site: &'static Site,
        observation: &Observation<'_>,
    ) -> Option<String> {
        let kind = site.kind?;
        let record = self
            .records
            .entry(site.location())
            .or_insert_with(|| AssertionRecord::new(site, kind));
        let formatted =
            |detail: Option<&dyn Fn() -> String>| detail.map(|f| f()).unwrap_or_default();
        match observation {
            Observation::Bool { holds, detail } => {
                let failed = match kind {
                    AssertKind::Unreachable => true,
                    _ => !holds,
                };
                if failed {
                    record.failures += 1;
                } else {
                    record.passes += 1;
                }
                (failed && kind.is_always()).then(|| formatted(*detail))
            }
            Observation::Numeric {
                value,
                threshold,
                detail,
            } => {
                let (AssertKind::AlwaysCompare(cmp) | AssertKind::SometimesCompare(cmp)) = kind
                else {
                    return None;
                };
                let holds = cmp.holds(*value, *threshold);
                if holds {
                    record.passes += 1;
                } else {
                    record.failures += 1;
                }
                let higher = record.prefers_higher();
                record.watermark = Some(match record.watermark {
                    Some(w) if higher => w.max(*value),
                    Some(w) => w.min(*value),
                    None => *value,
                });
                (!holds && kind.is_always()).then(|| {
                    let detail = formatted(*detail);
                    let values = format!("{value} {} {threshold} is false", cmp.symbol());
                    if detail.is_empty() {
                        values
                    } else {
                        format!("{values}; {detail}")
                    }
                })
            }
            Observation::All(conditions) => {
                let count = u32::try_from(conditions.iter().filter(|(_, c)| *c).count())
                    .unwrap_or(u32::MAX);
                record.conditions = u32::try_from(conditions.len()).unwrap_or(u32::MAX);
                record.frontier = record.frontier.max(count);
                if count == record.conditions {
                    record.passes += 1;
                } else {
                    record.failures += 1;
                }
                None
            }
            Observation::Each(keys) => {
                let bucket = keys
                    .iter()
                    .map(|(key, value)| format!("{key}={value}"))
                    .collect::<Vec<_>>()
                    .join(",");
                *record.buckets.entry(bucket).or_insert(0) += 1;
                record.passes += 1;
                None
            }
        }
    }

    pub(crate) fn set_violation(
        &mut self,
        site: &'static Site,
        task: String,
        at: Duration,
        detail: String,
    ) {
        if self.violation.is_some() {
            return;
        }
        let Some(kind) = site.kind else { return };
        self.violation = Some(AssertionViolation {
            message: site.message.to_string(),
            kind,
            location: site.location(),
            task,
            at,
            detail,
        });
    }

    /// Adds another seed's (or shard's) table into this one.
    pub fn merge(&mut self, other: &AssertionTable) {
        for (location, record) in &other.records {
            match self.records.get_mut(location) {
                Some(existing) => existing.merge(record),
                None => {
                    self.records.insert(location.clone(), record.clone());
                }
            }
        }
        if self.violation.is_none() {
            self.violation.clone_from(&other.violation);
        }
    }

    /// Coverage assertions evaluated but never satisfied.
    pub fn unsatisfied(&self) -> impl Iterator<Item = &AssertionRecord> {
        self.records
            .values()
            .filter(|r| r.kind.is_coverage() && !r.satisfied())
    }

    /// Number of coverage assertions satisfied so far (the coverage signal).
    pub fn satisfied_count(&self) -> usize {
        self.records
            .values()
            .filter(|r| r.kind.is_coverage() && r.satisfied())
            .count()
    }

    /// Number of coverage assertions seen.
    pub fn coverage_count(&self) -> usize {
        self.records
            .values()
            .filter(|r| r.kind.is_coverage())
            .count()
    }
}
