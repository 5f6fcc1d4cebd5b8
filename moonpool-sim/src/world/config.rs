//! [`WorldConfig`]: everything that configures one world.

use std::time::Duration;

use crate::chaos::BuggifyConfig;
use crate::kernel::clock::ClockConfiguration;
use crate::kernel::fault::{FaultKind, FaultSet};
use crate::network::NetworkConfiguration;
use crate::storage::StorageConfiguration;

/// Everything that configures one world.
///
/// Like every configuration struct of Moonpool (`NetworkConfiguration`, `StorageConfiguration`,
/// `ClockConfiguration`, `BuggifyConfig`, `Attrition`, `ExplorationConfig`, the transport's
/// `TransportConfig`), it is `#[non_exhaustive]`: a new field is not a breaking change. Start from
/// [`default`](Self::default) or a preset and set the fields you need:
///
/// ```
/// use std::time::Duration;
/// use moonpool_sim::WorldConfig;
///
/// let mut config = WorldConfig::quiet();
/// config.poll_bound = 10_000;
/// config.network.connect_timeout = Duration::from_secs(2);
/// assert_eq!(config.poll_bound, 10_000);
/// ```
///
/// A struct literal does not compile outside this crate, even with `..Default::default()`:
///
/// ```compile_fail,E0639
/// let config = moonpool_sim::WorldConfig { poll_bound: 10_000, ..Default::default() };
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorldConfig {
    /// Network latencies and faults.
    pub network: NetworkConfiguration,
    /// Disk latencies and faults.
    pub storage: StorageConfiguration,
    /// Clock drift and buggified sleep delays.
    pub clock: ClockConfiguration,
    /// The run fails if simulated time passes this while workloads are unfinished.
    pub time_budget: Duration,
    /// The run fails with [`SimError::BusyLoop`](crate::SimError::BusyLoop) if tasks are polled more than this many times
    /// without the simulated clock advancing.
    pub poll_bound: u64,
    /// Grace period between a graceful shutdown signal and the stop.
    pub graceful_shutdown_grace: Duration,
    /// How `buggify!` behaves.
    pub buggify: BuggifyConfig,
    /// Keep a per-event trace in the run summary (for determinism checks and Chrome traces).
    pub record_trace: bool,
    /// Record the story of the run (every poll, message, fault, boot and stop) for a Chrome
    /// trace; see `runner::trace`. Costs nothing when off.
    pub record_story: bool,
    /// Most tasks alive at once; a spawn past it fails the run with
    /// [`SimError::TaskLimitExceeded`](crate::SimError::TaskLimitExceeded).
    pub max_tasks: usize,
    /// Wall-clock time a single poll may run before the watchdog ends the process, reporting the
    /// seed and the task (`None`: not watched; `Some` of zero is refused as a setup error).
    /// `MOONPOOL_WATCHDOG_SECS` overrides it.
    pub watchdog_stall: Option<Duration>,
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            network: NetworkConfiguration::default(),
            storage: StorageConfiguration::default(),
            clock: ClockConfiguration::default(),
            time_budget: Duration::from_secs(3600),
            poll_bound: 1_000_000,
            graceful_shutdown_grace: Duration::from_secs(2),
            buggify: BuggifyConfig::default(),
            record_trace: false,
            record_story: false,
            max_tasks: crate::executor::DEFAULT_TASK_LIMIT,
            watchdog_stall: Some(Duration::from_secs(60)),
        }
    }
}

impl WorldConfig {
    /// No faults anywhere: fixed small latencies, no drift, no buggify. For conformance and
    /// benchmarks.
    pub fn quiet() -> Self {
        Self {
            network: NetworkConfiguration::fast_local(),
            storage: StorageConfiguration::fast_local(),
            clock: ClockConfiguration::disabled(),
            buggify: BuggifyConfig::disabled(),
            ..Self::default()
        }
    }
}

impl WorldConfig {
    /// This configuration with every fault kind outside `kinds` off: its network and storage
    /// probabilities at zero, no clock drift (`clock.drift`), no sleep delays
    /// (`clock.sleep_delay`), buggify disabled (`buggify`). `partitions` and `attrition` are the
    /// runner's (see `SimulationBuilder::faults`). Latencies are untouched.
    #[must_use]
    pub fn with_fault_kinds(mut self, kinds: FaultSet) -> Self {
        self.network = self.network.with_fault_kinds(kinds);
        self.storage = self.storage.with_fault_kinds(kinds);
        if !kinds.contains(FaultKind::ClockDrift) {
            self.clock.drift_max = Duration::ZERO;
        }
        if !kinds.contains(FaultKind::ClockSleepDelay) {
            self.clock.sleep_delay_probability = 0.0;
        }
        if !kinds.contains(FaultKind::Buggify) {
            self.buggify = BuggifyConfig::disabled();
        }
        self
    }

    /// The fault kinds of the world this configuration can inject (the runner's `partitions`
    /// and `attrition` are not the world's).
    pub fn fault_kinds(&self) -> FaultSet {
        let mut kinds = FaultSet::none();
        for kind in self.network.fault_kinds().kinds() {
            kinds = kinds.with(kind);
        }
        for kind in self.storage.fault_kinds().kinds() {
            kinds = kinds.with(kind);
        }
        if !self.clock.drift_max.is_zero() {
            kinds = kinds.with(FaultKind::ClockDrift);
        }
        if self.clock.sleep_delay_probability > 0.0 && !self.clock.sleep_delay_max.is_zero() {
            kinds = kinds.with(FaultKind::ClockSleepDelay);
        }
        if self.buggify.enabled && self.buggify.site_activation_probability > 0.0 {
            kinds = kinds.with(FaultKind::Buggify);
        }
        kinds
    }
}

/// Why `watchdog_stall: Some(0 s)` is refused (by `SimWorld::with_config` and by the runner's
/// setup check).
pub(crate) const ZERO_STALL: &str = "watchdog_stall is Some(0s): the watchdog would end every run \
     at its first look; None turns it off";
