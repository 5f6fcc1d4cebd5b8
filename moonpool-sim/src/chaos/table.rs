//! The assertion table: what every assertion call site observed, per seed and across seeds.

use std::collections::BTreeMap;
use std::time::Duration;

use moonpool_core::chaos::{AssertKind, Comparison, Observation, Site};
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
        prefers_higher(self.kind)
    }
}

/// Whether a higher value is the "interesting" watermark of an assertion of `kind`: the best
/// value of a `sometimes` greater-than, the worst (closest to breaking) value of an `always`
/// less-than.
pub(crate) fn prefers_higher(kind: AssertKind) -> bool {
    match kind {
        AssertKind::SometimesCompare(cmp) => cmp.is_greater(),
        AssertKind::AlwaysCompare(cmp) => !cmp.is_greater(),
        _ => true,
    }
}

/// What one `buggify!` (or `buggify_knob!`) site did, per seed and summed across seeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuggifyRecord {
    /// `file:line:column`.
    pub location: String,
    /// The function the site is in.
    pub function: String,
    /// A `buggify_knob!` (its "fired" counts calls that returned a value other than the default).
    pub knob: bool,
    /// Seeds in which the site was reached.
    pub seeds_reached: u64,
    /// Of those, seeds in which the site was enabled.
    pub seeds_enabled: u64,
    /// Calls.
    pub calls: u64,
    /// Calls that fired (returned true, or a knob's perturbed value).
    pub fired: u64,
}

impl BuggifyRecord {
    fn merge(&mut self, other: &BuggifyRecord) {
        self.seeds_reached += other.seeds_reached;
        self.seeds_enabled += other.seeds_enabled;
        self.calls += other.calls;
        self.fired += other.fired;
    }
}

/// Every assertion site seen, keyed by `file:line:column`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssertionTable {
    /// The records, in location order.
    pub records: BTreeMap<String, AssertionRecord>,
    /// The first `always`-type failure, if any.
    pub violation: Option<AssertionViolation>,
    /// Every buggify site reached, keyed by `file:line:column`.
    #[serde(default)]
    pub buggify: BTreeMap<String, BuggifyRecord>,
}

/// What recording one evaluation found.
pub(crate) struct Recorded {
    /// The failure detail, when an `always`-type assertion failed.
    pub(crate) failure: Option<String>,
    /// The evaluation's outcome as a number: with the site, what coverage keys are made of
    /// (a bool's truth, a numeric bucket, a frontier, a bucket's hash).
    pub(crate) outcome: u64,
    /// The evaluation reached something this run had not: the first success of a `sometimes` or
    /// `reachable`, a better bucket of a numeric `sometimes`, a new frontier of a `sometimes_all`,
    /// a new bucket of a `sometimes_each`. A split point when exploring.
    pub(crate) discovery: bool,
}

/// How far a numeric `sometimes` is from holding, in doubling steps: 0 when it holds, then 1 for a
/// gap under 1, 2 + log2(gap) above (at most 66, also for a gap that is not a number). A new best
/// value counts as a discovery only when it reaches a lower bucket, so a value that creeps up by
/// one a step does not split at every step.
pub(crate) fn numeric_bucket(cmp: Comparison, value: f64, threshold: f64) -> u64 {
    if cmp.holds(value, threshold) {
        return 0;
    }
    let gap = if cmp.is_greater() {
        threshold - value
    } else {
        value - threshold
    };
    if !gap.is_finite() {
        66
    } else if gap < 1.0 {
        1
    } else {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let steps = gap.log2().floor() as u64;
        (2 + steps).min(65)
    }
}

/// FNV-1a over a `sometimes_each` bucket's keys and values (no allocation).
fn bucket_hash(keys: &[(&str, i64)]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |bytes: &[u8]| {
        for byte in bytes {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (key, value) in keys {
        eat(key.as_bytes());
        eat(b"=");
        eat(&value.to_le_bytes());
    }
    hash
}

impl AssertionTable {
    /// Records one evaluation: whether an `always`-type assertion failed (and how), and, when
    /// `splitting` (exploring or replaying a recipe), its outcome and whether it was a discovery
    /// (otherwise both are left at zero and false, at no cost).
    #[inline(always)]
    pub(crate) fn record(
        &mut self,
        site: &'static Site,
        observation: &Observation<'_>,
        splitting: bool,
    ) -> Recorded {
        let nothing = Recorded {
            failure: None,
            outcome: 0,
            discovery: false,
        };
        let Some(kind) = site.kind else {
            return nothing;
        };
        // Found by the site's location literal: a copy of it is made only for a new record.
        let location = site.location_str();
        if !self.records.contains_key(location) {
            self.records
                .insert(site.location(), AssertionRecord::new(site, kind));
        }
        let Some(record) = self.records.get_mut(location) else {
            return nothing;
        };
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
                Recorded {
                    failure: (failed && kind.is_always()).then(|| formatted(*detail)),
                    outcome: u64::from(!failed),
                    discovery: !failed
                        && record.passes == 1
                        && matches!(kind, AssertKind::Sometimes | AssertKind::Reachable),
                }
            }
            Observation::Numeric {
                value,
                threshold,
                detail,
            } => {
                let (AssertKind::AlwaysCompare(cmp) | AssertKind::SometimesCompare(cmp)) = kind
                else {
                    return nothing;
                };
                let holds = cmp.holds(*value, *threshold);
                if holds {
                    record.passes += 1;
                } else {
                    record.failures += 1;
                }
                let higher = record.prefers_higher();
                let previous = record.watermark;
                record.watermark = Some(match previous {
                    Some(w) if higher => w.max(*value),
                    Some(w) => w.min(*value),
                    None => *value,
                });
                let (bucket, discovery) = if splitting {
                    let bucket = numeric_bucket(cmp, *value, *threshold);
                    let discovery = matches!(kind, AssertKind::SometimesCompare(_))
                        && match previous {
                            None => holds,
                            Some(best) => bucket < numeric_bucket(cmp, best, *threshold),
                        };
                    (bucket, discovery)
                } else {
                    (0, false)
                };
                Recorded {
                    failure: (!holds && kind.is_always()).then(|| {
                        let detail = formatted(*detail);
                        let values = format!("{value} {} {threshold} is false", cmp.symbol());
                        if detail.is_empty() {
                            values
                        } else {
                            format!("{values}; {detail}")
                        }
                    }),
                    outcome: bucket,
                    discovery,
                }
            }
            Observation::All(conditions) => {
                let count = u32::try_from(conditions.iter().filter(|(_, c)| *c).count())
                    .unwrap_or(u32::MAX);
                let previous = record.frontier;
                record.conditions = u32::try_from(conditions.len()).unwrap_or(u32::MAX);
                record.frontier = record.frontier.max(count);
                if count == record.conditions {
                    record.passes += 1;
                } else {
                    record.failures += 1;
                }
                Recorded {
                    failure: None,
                    outcome: u64::from(count),
                    discovery: count > previous,
                }
            }
            Observation::Each(keys) => {
                let bucket = keys
                    .iter()
                    .map(|(key, value)| format!("{key}={value}"))
                    .collect::<Vec<_>>()
                    .join(",");
                let hits = record.buckets.entry(bucket).or_insert(0);
                *hits += 1;
                let discovery = *hits == 1;
                record.passes += 1;
                Recorded {
                    failure: None,
                    outcome: if splitting { bucket_hash(keys) } else { 0 },
                    discovery,
                }
            }
        }
    }

    /// A buggify site reached for the first time in this seed, enabled or not.
    pub(crate) fn buggify_reached(&mut self, site: &'static Site, enabled: bool) {
        let location = site.location();
        self.buggify.insert(
            location.clone(),
            BuggifyRecord {
                location,
                function: site.function_path(),
                knob: site.message == "buggify_knob",
                seeds_reached: 1,
                seeds_enabled: u64::from(enabled),
                calls: 0,
                fired: 0,
            },
        );
    }

    /// One call of the buggify site at `location` (already reached).
    pub(crate) fn buggify_called(&mut self, location: &str, calls: u64, fired: u64) {
        if let Some(record) = self.buggify.get_mut(location) {
            record.calls += calls;
            record.fired += fired;
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
        for (location, record) in &other.buggify {
            match self.buggify.get_mut(location) {
                Some(existing) => existing.merge(record),
                None => {
                    self.buggify.insert(location.clone(), record.clone());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn site(kind: AssertKind, line: u32) -> &'static Site {
        Box::leak(Box::new(Site {
            message: "m",
            kind: Some(kind),
            file: "f.rs",
            line,
            column: 1,
            module: "m",
            function: || "m::f",
            location_literal: Box::leak(format!("f.rs:{line}:1").into_boxed_str()),
        }))
    }

    fn bool_of(holds: bool) -> Observation<'static> {
        Observation::Bool {
            holds,
            detail: None,
        }
    }

    #[test]
    fn test_discoveries_are_first_successes_new_buckets_and_frontiers() {
        let mut table = AssertionTable::default();
        let sometimes = site(AssertKind::Sometimes, 1);
        assert!(!table.record(sometimes, &bool_of(false), true).discovery);
        assert!(table.record(sometimes, &bool_of(true), true).discovery);
        assert!(!table.record(sometimes, &bool_of(true), true).discovery);
        let always = site(AssertKind::Always, 2);
        assert!(!table.record(always, &bool_of(true), true).discovery);

        let each = site(AssertKind::SometimesEach, 3);
        let a = [("floor", 1i64)];
        let b = [("floor", 2i64)];
        let first = table.record(each, &Observation::Each(&a), true);
        assert!(first.discovery);
        assert!(!table.record(each, &Observation::Each(&a), true).discovery);
        let second = table.record(each, &Observation::Each(&b), true);
        assert!(second.discovery);
        assert_ne!(first.outcome, second.outcome);

        let all = site(AssertKind::SometimesAll, 4);
        let one = [("x", true), ("y", false)];
        let both = [("x", true), ("y", true)];
        assert!(table.record(all, &Observation::All(&one), true).discovery);
        assert!(!table.record(all, &Observation::All(&one), true).discovery);
        assert!(table.record(all, &Observation::All(&both), true).discovery);
    }

    #[test]
    fn test_a_numeric_best_is_a_discovery_only_in_a_better_bucket() {
        let mut table = AssertionTable::default();
        let climb = site(AssertKind::SometimesCompare(Comparison::GreaterThan), 5);
        let numeric = |value: f64| Observation::Numeric {
            value,
            threshold: 100.0,
            detail: None,
        };
        // The first value only sets the watermark; a better bucket (gap halved) is a discovery,
        // a better value in the same bucket is not.
        assert!(!table.record(climb, &numeric(0.0), true).discovery);
        assert!(!table.record(climb, &numeric(10.0), true).discovery);
        assert!(table.record(climb, &numeric(60.0), true).discovery);
        assert!(!table.record(climb, &numeric(61.0), true).discovery);
        assert!(table.record(climb, &numeric(101.0), true).discovery);
        assert_eq!(numeric_bucket(Comparison::GreaterThan, 101.0, 100.0), 0);
        assert_eq!(numeric_bucket(Comparison::LessThan, 100.5, 100.0), 1);
        assert_eq!(numeric_bucket(Comparison::LessThan, f64::NAN, 100.0), 66);
    }
}
