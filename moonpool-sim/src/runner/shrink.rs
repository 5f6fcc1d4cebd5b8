//! Shrinking a failed seed: which fault kinds does its failure need?
//!
//! The seed is re-run with fault kinds turned off (its swarm choices stay: a mask only turns
//! kinds off, see [`resolve_config_with`](super::seed::resolve_config_with)). A run "fails the
//! same way" when its failure has the same [`FailureKind`](super::FailureKind) and site
//! ([`classify`]). The steps:
//!
//! 1. The *candidates* are the kinds the seed's world could inject at all (probability above
//!    zero after the swarm's choices, `partitions` and `attrition` when their surface is on for
//!    the seed), within the run's set. Any other kind is off for free: it draws nothing, so
//!    turning it off changes nothing.
//! 2. Run 1: only the candidates that *fired* in the failed run. By fault independence, kinds
//!    that never fired changed nothing before the failure, so this usually fails the same way;
//!    if it does not (a kind acted without firing, for example a `buggify_knob!` value), every
//!    candidate is kept.
//! 3. Then each kept kind in turn, in [`FaultKind::ALL`] order: one run without it; if the seed
//!    still fails the same way, it stays off.
//!
//! The result is the set after step 3: with it the seed fails the same way, and without any one
//! of its kinds (given the others) it does not. At most one run per fault kind plus one, and no
//! run at all when the seed's world could inject nothing. A wall-clock budget bounds the whole
//! run's shrinking; a shrink cut short says so (`complete: false`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::chaos::Chaos;
use super::context::swarm_bit;
use super::report_failure::{FailureInfo, ShrinkOutcome, classify};
use super::seed::{resolve_config_with, run_seed_with_faults};
use super::spec::Spec;
use crate::kernel::fault::{FaultKind, FaultSet};

/// Which failing seeds a run shrinks.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShrinkMode {
    /// None.
    Off,
    /// The first failing seed of the run (in seed order): the default.
    #[default]
    FirstFailure,
    /// Every failing seed, within the budget.
    EveryFailure,
}

/// What a run shrinks and within what budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ShrinkPolicy {
    pub(super) mode: ShrinkMode,
    /// Wall-clock time shrinking may take in the whole run.
    pub(super) budget: Duration,
}

/// The default wall-clock budget of a run's shrinking.
pub(super) const DEFAULT_SHRINK_BUDGET: Duration = Duration::from_secs(60);

impl Default for ShrinkPolicy {
    fn default() -> Self {
        Self {
            mode: ShrinkMode::FirstFailure,
            budget: DEFAULT_SHRINK_BUDGET,
        }
    }
}

/// The replay command of `seed` run with only the kinds in `faults`.
pub(super) fn replay_command(spec: &Spec, seed: u64, faults: FaultSet) -> String {
    fill_replay_template(&spec.replay, seed, faults)
}

/// The replay command of `template` for `seed` under `faults` (see [`replay_command`]).
fn fill_replay_template(template: &str, seed: u64, faults: FaultSet) -> String {
    use std::fmt::Write as _;
    // Built in one allocation (it is made for every seed, for the watchdog): the template with
    // each `{seed}` replaced, as `str::replace` would, after the fault mask if there is one.
    let mut command = String::with_capacity(template.len() + 40);
    if !faults.is_all() {
        let _ = write!(command, "MOONPOOL_FAULTS={faults} ");
    }
    // Each `{` is looked for as a byte (a substring search set itself up anew for every seed,
    // about 600 instructions); the leftmost `{seed}` is always found first, as `str::replace`
    // finds it.
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        let (before, from) = rest.split_at(at);
        command.push_str(before);
        if let Some(after) = from.strip_prefix("{seed}") {
            let _ = write!(command, "{seed}");
            rest = after;
        } else {
            command.push('{');
            rest = from.get(1..).unwrap_or_default();
        }
    }
    command.push_str(rest);
    command
}

/// The kinds `seed`'s world can inject with `faults` allowed: see the module docs, step 1.
pub(super) fn candidates(spec: &Spec, seed: u64, faults: FaultSet) -> FaultSet {
    let mut kinds = resolve_config_with(spec, seed, faults).fault_kinds();
    for surface in spec.chaos.iter().flatten() {
        if !swarm_bit(seed, surface.family()) {
            continue;
        }
        match surface {
            Chaos::Partitions => kinds = kinds.with(FaultKind::Partitions),
            Chaos::Attrition(_) => kinds = kinds.with(FaultKind::Attrition),
            _ => {}
        }
    }
    kinds.intersection(faults)
}

/// Shrinks a seed that failed as `failure` says, within `deadline` (`None`: no deadline).
pub(super) fn shrink_seed(
    spec: &Arc<Spec>,
    seed: u64,
    failure: &FailureInfo,
    deadline: Option<Instant>,
) -> ShrinkOutcome {
    let target = (failure.kind, failure.site.clone());
    let mut runs = 0usize;
    let mut out_of_time = false;
    let mut fails_same = |faults: FaultSet, runs: &mut usize| -> Option<bool> {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            out_of_time = true;
            return None;
        }
        *runs += 1;
        let (_, error) = run_seed_with_faults(spec, seed, faults, false);
        Some(error.is_some_and(|e| classify(&e) == target))
    };
    let all = candidates(spec, seed, spec.faults);
    let mut current = all;
    let fired = failure.fired_kinds().intersection(all);
    if fired != all {
        match fails_same(fired, &mut runs) {
            Some(true) => current = fired,
            Some(false) => {}
            None => return outcome(spec, seed, current, runs, false),
        }
    }
    for kind in current.kinds() {
        match fails_same(current.without(kind), &mut runs) {
            Some(true) => current = current.without(kind),
            Some(false) => {}
            None => break,
        }
    }
    outcome(spec, seed, current, runs, !out_of_time)
}

fn outcome(
    spec: &Spec,
    seed: u64,
    minimal: FaultSet,
    runs: usize,
    complete: bool,
) -> ShrinkOutcome {
    ShrinkOutcome {
        minimal: minimal.kinds().map(|k| k.name().to_string()).collect(),
        replay: replay_command(spec, seed, minimal),
        runs,
        complete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_the_replay_command_is_the_template_with_every_seed_replaced() {
        let some: FaultSet = "partitions,attrition"
            .parse()
            .unwrap_or_else(|_| FaultSet::all());
        for template in [
            "MOONPOOL_SEED={seed} cargo nextest run -E 'test(x)'",
            "{seed}{seed} and {seed}",
            "no seed here",
            "",
            "{seed",
            "{{seed}}",
            "{{{seed}",
            "{s{seed}{se{seed}}{",
            "é{seed}ü{ {seed}",
            "{",
        ] {
            for faults in [FaultSet::all(), some, FaultSet::none()] {
                let plain = template.replace("{seed}", &u64::MAX.to_string());
                let expected = if faults.is_all() {
                    plain
                } else {
                    format!("MOONPOOL_FAULTS={faults} {plain}")
                };
                assert_eq!(fill_replay_template(template, u64::MAX, faults), expected);
            }
        }
    }
}
