//! [`SimProviders`]: the provider bundle of one simulated process.

use std::sync::Arc;

use moonpool_core::Providers;
use rand_chacha::ChaCha8Rng;

pub mod network;
pub mod random;
pub mod storage;
pub mod time;

use crate::executor::{ProcessId, SimTaskProvider, Spawner};
use crate::handle::{WorldControl, WorldHandle};
use network::SimNetworkProvider;
use random::SimRandomProvider;
use storage::SimStorageProvider;
use time::SimTimeProvider;

/// Time, tasks, randomness, network and storage of one simulated process.
#[derive(Clone)]
pub struct SimProviders {
    time: SimTimeProvider,
    task: SimTaskProvider,
    random: SimRandomProvider,
    network: SimNetworkProvider,
    storage: SimStorageProvider,
    control: WorldControl,
    process: ProcessId,
}

impl SimProviders {
    pub(crate) fn new(
        world: WorldHandle,
        spawner: Spawner,
        process: ProcessId,
        app_rng: crate::kernel::rng::SharedStream,
    ) -> Self {
        Self {
            time: SimTimeProvider::new(world.clone(), process),
            task: SimTaskProvider::new(spawner, Some(process)),
            random: SimRandomProvider::new(app_rng),
            network: SimNetworkProvider::new(world.clone(), process),
            storage: SimStorageProvider::new(world.clone(), process),
            control: WorldControl::new(world),
            process,
        }
    }

    /// The same providers drawing their randomness from `rng` instead of the application
    /// stream (the runner's injectors, each on its fault kind's stream).
    pub(crate) fn with_random(&self, rng: ChaCha8Rng) -> Self {
        Self {
            random: SimRandomProvider::new(Arc::new(crate::run_lock::RunLock::new(rng))),
            ..self.clone()
        }
    }

    /// The process these providers belong to.
    pub fn process(&self) -> ProcessId {
        self.process
    }

    /// A handle on the world, for fault injection from workloads.
    pub fn control(&self) -> &WorldControl {
        &self.control
    }
}

impl Providers for SimProviders {
    type Time = SimTimeProvider;
    type Task = SimTaskProvider;
    type Random = SimRandomProvider;
    type Network = SimNetworkProvider;
    type Storage = SimStorageProvider;

    fn time(&self) -> &Self::Time {
        &self.time
    }
    fn task(&self) -> &Self::Task {
        &self.task
    }
    fn random(&self) -> &Self::Random {
        &self.random
    }
    fn network(&self) -> &Self::Network {
        &self.network
    }
    fn storage(&self) -> &Self::Storage {
        &self.storage
    }
}
