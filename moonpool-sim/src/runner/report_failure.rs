//! Structured failures: what kind of failure a seed had, where, which fault kinds fired in it,
//! and what shrinking found ([`FailureInfo`], [`ShrinkOutcome`]). Every failed seed of a report
//! carries one ([`SeedOutcome::failure_info`](super::SeedOutcome::failure_info)), next to the
//! failure's text, which is kept as it was.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::kernel::fault::{FaultKind, FaultSet};

/// What kind of failure a seed had.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// An `assert_always!`-type assertion failed.
    Assertion,
    /// An invariant checked after every event was violated.
    Invariant,
    /// A task, or a callback the runner calls (invariant, factory, setup), panicked.
    Panic,
    /// Nothing could run and nothing was scheduled, with workloads unfinished.
    Deadlock,
    /// Tasks were polled past the poll bound without the clock advancing.
    BusyLoop,
    /// A budget ran out: simulated time, or the live-task limit.
    Budget,
    /// Workloads did not finish within the settle timeout.
    SettleTimeout,
    /// A workload's `run` or `check` returned an error.
    Workload,
    /// The determinism check saw two runs of the seed diverge.
    Nondeterminism,
    /// The seed's world could not be set up.
    Setup,
}

impl FailureKind {
    /// The kind's name, as in the JSON report (`busy_loop`).
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Assertion => "assertion",
            FailureKind::Invariant => "invariant",
            FailureKind::Panic => "panic",
            FailureKind::Deadlock => "deadlock",
            FailureKind::BusyLoop => "busy_loop",
            FailureKind::Budget => "budget",
            FailureKind::SettleTimeout => "settle_timeout",
            FailureKind::Workload => "workload",
            FailureKind::Nondeterminism => "nondeterminism",
            FailureKind::Setup => "setup",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The structure of one seed's failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureInfo {
    /// What kind of failure.
    pub kind: FailureKind,
    /// Where, without times or values: the assertion's macro, message and `file:line:column`;
    /// the invariant's name; the panicking task or callback; the workload and phase; empty for
    /// kinds without a site (deadlock, busy loop, budgets, settle timeout).
    pub site: String,
    /// The fault kinds that fired in the seed's run, by [`FaultKind::name`], with how often.
    #[serde(default)]
    pub faults_fired: BTreeMap<String, u64>,
    /// What shrinking found, when the seed was shrunk.
    #[serde(default)]
    pub shrunk: Option<ShrinkOutcome>,
}

/// What shrinking a failed seed found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShrinkOutcome {
    /// The fault kinds the failure needs: with only these, the seed fails the same way (same
    /// kind, same site), and without any one of them it does not. Empty: it fails without any
    /// fault.
    pub minimal: Vec<String>,
    /// The command that replays the reduced run (`MOONPOOL_FAULTS=... MOONPOOL_SEED=...`).
    pub replay: String,
    /// Runs of the seed shrinking made (at most the number of fault kinds plus one).
    pub runs: usize,
    /// False when the budget ran out first: `minimal` then still fails the same way but may
    /// hold kinds it does not need.
    pub complete: bool,
}

impl FailureInfo {
    /// The structure of `error`, with the fault kinds `fired` in its run.
    pub(crate) fn new(error: &SimError, fired: &BTreeMap<FaultKind, u64>) -> Self {
        let (kind, site) = classify(error);
        Self {
            kind,
            site,
            faults_fired: fired
                .iter()
                .map(|(k, n)| (k.name().to_string(), *n))
                .collect(),
            shrunk: None,
        }
    }

    /// The fault kinds that fired, as a set.
    pub fn fired_kinds(&self) -> FaultSet {
        FaultSet::only(
            self.faults_fired
                .keys()
                .filter_map(|name| FaultKind::from_name(name)),
        )
    }
}

/// A failure's kind and site: two failures with the same are "the same failure" to shrinking.
pub(crate) fn classify(error: &SimError) -> (FailureKind, String) {
    match error {
        SimError::AssertionFailed { violation, .. } => (
            FailureKind::Assertion,
            format!(
                "{} \"{}\" at {}",
                violation.kind.macro_name(),
                violation.message,
                violation.location
            ),
        ),
        SimError::InvariantViolated { name, .. } => {
            (FailureKind::Invariant, format!("invariant '{name}'"))
        }
        SimError::TaskPanicked { task, .. } => (FailureKind::Panic, format!("task '{task}'")),
        SimError::CallbackPanicked { callback, .. } => (FailureKind::Panic, callback.clone()),
        SimError::Deadlock { .. } => (FailureKind::Deadlock, String::new()),
        SimError::BusyLoop { .. } => (FailureKind::BusyLoop, String::new()),
        SimError::TimeBudgetExceeded { .. } => {
            (FailureKind::Budget, "simulated-time budget".to_string())
        }
        SimError::TaskLimitExceeded { .. } => (FailureKind::Budget, "task limit".to_string()),
        SimError::SettleTimeout { .. } => (FailureKind::SettleTimeout, String::new()),
        SimError::WorkloadFailed {
            workload,
            phase,
            message,
            ..
        } => match panicked_task(message) {
            // A `run` or `check` that panicked: the runner reports the join error's text.
            Some(task) => (FailureKind::Panic, format!("task '{task}'")),
            None => (
                FailureKind::Workload,
                format!("workload '{workload}' {phase}"),
            ),
        },
        SimError::Nondeterministic { .. } => (FailureKind::Nondeterminism, String::new()),
        SimError::InvalidSetup { .. } => (FailureKind::Setup, String::new()),
    }
}

/// The task named by a join error's text for a panic (`task 'name' panicked: ...`).
fn panicked_task(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("task '")?;
    let (task, _) = rest.split_once("' panicked: ")?;
    Some(task)
}

/// The lines a report prints under a failed seed's text: its kind and site, the fault kinds
/// that fired, and what shrinking found.
pub(super) fn write_details(info: &FailureInfo, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let site = if info.site.is_empty() {
        String::new()
    } else {
        format!(" at {}", info.site)
    };
    let fired = if info.faults_fired.is_empty() {
        "none".to_string()
    } else {
        info.faults_fired
            .iter()
            .map(|(k, n)| format!("{k} x{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    writeln!(f, "    kind:   {}{site}; faults fired: {fired}", info.kind)?;
    if let Some(shrunk) = &info.shrunk {
        let needs = if shrunk.minimal.is_empty() {
            "no fault kind: it fails with every fault kind off".to_string()
        } else {
            shrunk.minimal.join(", ")
        };
        let incomplete = if shrunk.complete {
            ""
        } else {
            ", budget ran out: may hold kinds it does not need"
        };
        let runs = if shrunk.runs == 1 { "run" } else { "runs" };
        writeln!(
            f,
            "    needs:  {needs} (shrunk in {} {runs}{incomplete})",
            shrunk.runs
        )?;
        writeln!(f, "    replay reduced: {}", shrunk.replay)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn test_every_error_has_a_kind_and_a_site_without_values() {
        let seed = 1;
        let now = Duration::from_secs(1);
        let cases = [
            (
                SimError::Deadlock {
                    seed,
                    now,
                    stuck: vec!["a/b".into()],
                },
                FailureKind::Deadlock,
                "",
            ),
            (
                SimError::BusyLoop {
                    seed,
                    now,
                    polls: 9,
                    busiest: vec![],
                },
                FailureKind::BusyLoop,
                "",
            ),
            (
                SimError::TaskPanicked {
                    seed,
                    now,
                    task: "p/t".into(),
                    message: "x = 3".into(),
                },
                FailureKind::Panic,
                "task 'p/t'",
            ),
            (
                SimError::WorkloadFailed {
                    seed,
                    workload: "w-0".into(),
                    phase: "check".into(),
                    message: "task 'w-0::check' panicked: at 3".into(),
                },
                FailureKind::Panic,
                "task 'w-0::check'",
            ),
            (
                SimError::WorkloadFailed {
                    seed,
                    workload: "w-0".into(),
                    phase: "run".into(),
                    message: "lost 3 writes".into(),
                },
                FailureKind::Workload,
                "workload 'w-0' run",
            ),
            (
                SimError::InvariantViolated {
                    seed,
                    name: "sum".into(),
                    message: "7 != 8".into(),
                    now,
                    event: 4,
                },
                FailureKind::Invariant,
                "invariant 'sum'",
            ),
            (
                SimError::TimeBudgetExceeded {
                    seed,
                    budget: now,
                    live: vec![],
                },
                FailureKind::Budget,
                "simulated-time budget",
            ),
            (
                SimError::TaskLimitExceeded {
                    seed,
                    now,
                    limit: 3,
                    refused: "t".into(),
                    spawner: "p/s".into(),
                    most_common: vec![],
                },
                FailureKind::Budget,
                "task limit",
            ),
            (
                SimError::SettleTimeout {
                    seed,
                    timeout: now,
                    running: vec![],
                },
                FailureKind::SettleTimeout,
                "",
            ),
            (
                SimError::Nondeterministic {
                    seed,
                    index: 3,
                    first: String::new(),
                    second: String::new(),
                },
                FailureKind::Nondeterminism,
                "",
            ),
            (
                SimError::CallbackPanicked {
                    seed,
                    callback: "invariant 'sum'".into(),
                    now,
                    message: "boom".into(),
                },
                FailureKind::Panic,
                "invariant 'sum'",
            ),
            (SimError::setup("bad"), FailureKind::Setup, ""),
        ];
        for (error, kind, site) in cases {
            assert_eq!(classify(&error), (kind, site.to_string()), "{error}");
        }
        let fired = BTreeMap::from([(FaultKind::NetworkBitFlip, 2), (FaultKind::Attrition, 1)]);
        let info = FailureInfo::new(&SimError::setup("bad"), &fired);
        assert_eq!(info.faults_fired["network.bit_flip"], 2);
        assert_eq!(
            info.fired_kinds(),
            FaultSet::only([FaultKind::NetworkBitFlip, FaultKind::Attrition])
        );
        assert_eq!(
            serde_json::to_string(&FailureKind::BusyLoop).unwrap(),
            "\"busy_loop\""
        );
    }
}
