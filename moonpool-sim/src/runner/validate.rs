//! Checks of a simulation's declaration, run by `SimulationBuilder::run` before the first seed:
//! every bad value is refused with an error that names the field and the value.
//!
//! What is refused (all problems are listed in one error, not only the first):
//!
//! - **groups**: no workload at all (nothing would drive the simulation, which would "pass"
//!   every seed without testing anything); a process or workload group with a count of 0; two
//!   groups with one name (two process groups, two workload groups, or one of each: their
//!   members would have the same names and every seed would fail). A simulation with workloads
//!   and no server processes is legitimate (a workload may test a library on its own);
//! - **world configuration**: the network and storage configurations' own checks; a clock
//!   `sleep_delay_probability` or a buggify `site_activation_probability` outside `[0, 1]`
//!   (NaN and infinities included); a `time_budget` of zero (every seed would exceed it); a
//!   `poll_bound` of zero (no task could ever run);
//! - **phases**: a `settle_timeout` of zero (no workload could finish: every seed would fail).
//!   A `chaos_duration` of zero is accepted (no chaos phase: workloads run straight into the
//!   settle phase), and so is `Duration::MAX` for either (the chaos phase then ends when every
//!   workload's `run` returns);
//! - **chaos**: an [`Attrition`](super::Attrition) refused by its own
//!   [`validate`](super::Attrition::validate) (`max_dead` 0, a zero or inverted `interval`, an
//!   inverted `recovery_delay`, no `kinds`), or listed in a simulation without server processes
//!   (there would be nothing to reboot); `Chaos::Network`, `Chaos::Storage`, `Chaos::Clock` or
//!   `Chaos::Buggify` listed while the configuration has every fault of that family off: swarm
//!   perturbs the user's configuration and never replaces it, so the family would inject
//!   nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use super::chaos::Chaos;
use crate::error::SimError;
use crate::kernel::fault::{FaultKind, FaultSet};
use crate::world::WorldConfig;

/// The parts of a `SimulationBuilder` that can be wrong.
pub(super) struct Setup<'a> {
    /// The simulation's name.
    pub(super) name: &'a str,
    /// Process groups: name and count.
    pub(super) processes: Vec<(&'a str, usize)>,
    /// Workload groups: name and count.
    pub(super) workloads: Vec<(&'a str, usize)>,
    /// The world configuration.
    pub(super) config: &'a WorldConfig,
    /// The swarm surfaces, if `enable_chaos` was called.
    pub(super) chaos: Option<&'a [Chaos]>,
    /// Settle timeout.
    pub(super) settle_timeout: Duration,
}

/// Refuses a setup that cannot run as declared, listing every problem found.
pub(super) fn simulation(setup: &Setup<'_>) -> Result<(), SimError> {
    let mut problems = Vec::new();
    groups(setup, &mut problems);
    world(setup.config, &mut problems);
    phases(setup, &mut problems);
    chaos(setup, &mut problems);
    match problems.len() {
        0 => Ok(()),
        1 => Err(SimError::setup(format!(
            "simulation '{}': {}",
            setup.name, problems[0]
        ))),
        n => Err(SimError::setup(format!(
            "simulation '{}': {n} problems: {}",
            setup.name,
            problems.join("; ")
        ))),
    }
}

fn groups(setup: &Setup<'_>, problems: &mut Vec<String>) {
    if setup.workloads.is_empty() {
        problems.push(
            "no workloads: nothing would drive the simulation and every seed would pass without \
             testing anything (add one with .workload(...))"
                .to_string(),
        );
    }
    // Name -> the kinds of group that use it ("process", "workload"), in declaration order.
    let mut seen: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let all = setup
        .processes
        .iter()
        .map(|g| ("process", g))
        .chain(setup.workloads.iter().map(|g| ("workload", g)));
    for (kind, (name, count)) in all {
        if *count == 0 {
            problems.push(format!(
                "{kind} group '{name}' has a count of 0 (remove the group or give it at least one \
                 instance)"
            ));
        }
        seen.entry(name).or_default().push(kind);
    }
    for (name, kinds) in seen {
        if kinds.len() > 1 {
            problems.push(format!(
                "the group name '{name}' is used {} times ({}): every group needs its own name, \
                 or its members' names collide",
                kinds.len(),
                kinds.join(", ")
            ));
        }
    }
}

fn world(config: &WorldConfig, problems: &mut Vec<String>) {
    if let Err(e) = config.network.validate() {
        problems.push(format!("network configuration: {e}"));
    }
    if let Err(e) = config.storage.validate() {
        problems.push(format!("storage configuration: {e}"));
    }
    if let Err(e) = config.clock.validate() {
        problems.push(format!("clock configuration: {e}"));
    }
    if let Err(e) = config.buggify.validate() {
        problems.push(format!("buggify configuration: {e}"));
    }
    if config.time_budget.is_zero() {
        problems.push(
            "time_budget is 0s: every seed would exceed its simulated-time budget at once"
                .to_string(),
        );
    }
    if config.poll_bound == 0 {
        problems.push("poll_bound is 0: no task could ever run".to_string());
    }
    if config.watchdog_stall == Some(Duration::ZERO) {
        problems.push(crate::world::ZERO_STALL.to_string());
    }
}

fn phases(setup: &Setup<'_>, problems: &mut Vec<String>) {
    if setup.settle_timeout.is_zero() {
        problems.push(
            "settle_timeout is 0s: no workload could finish after the chaos phase and every seed \
             would fail"
                .to_string(),
        );
    }
}

fn chaos(setup: &Setup<'_>, problems: &mut Vec<String>) {
    let Some(surfaces) = setup.chaos else { return };
    let has_processes = setup.processes.iter().any(|(_, count)| *count > 0);
    let kinds = setup.config.fault_kinds();
    for surface in surfaces {
        let family = match surface {
            Chaos::Network => Some("network"),
            Chaos::Storage => Some("storage"),
            Chaos::Clock => Some("clock"),
            _ => None,
        };
        if let Some(what) = family
            && kinds.intersection(FaultSet::group(what)).is_empty()
        {
            problems.push(format!(
                "Chaos::{surface:?} is enabled but every {what} fault of the configuration \
                 is off: swarm perturbs the faults your configuration has on and never \
                 replaces it, so it would inject nothing (turn some {what} faults on, for \
                 example from the default configuration, or leave Chaos::{surface:?} out)"
            ));
        }
        if *surface == Chaos::Buggify && !kinds.contains(FaultKind::Buggify) {
            problems.push(
                "Chaos::Buggify is enabled but the buggify configuration is disabled: it would \
                 fire nothing (enable it, or leave Chaos::Buggify out)"
                    .to_string(),
            );
        }
        if let Chaos::Attrition(attrition) = surface {
            if let Err(e) = attrition.validate() {
                problems.push(format!("Chaos::Attrition: {e}"));
            }
            if !has_processes {
                problems.push(
                    "Chaos::Attrition is enabled but the simulation has no server processes: it \
                     would never reboot anything"
                        .to_string(),
                );
            }
        }
    }
}
