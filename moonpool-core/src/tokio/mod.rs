//! Production providers on Tokio: the real clock, real TCP, real files, an OS-seeded generator.

mod network;
mod random;
mod storage;
mod task;
mod time;

pub use network::{TokioNetworkProvider, TokioTcpListener};
pub use random::TokioRandomProvider;
pub use storage::{TokioFile, TokioStorageProvider};
pub use task::TokioTaskProvider;
pub use time::TokioTimeProvider;

use crate::Providers;

/// The production [`Providers`] bundle.
///
/// Use inside a Tokio runtime (multi-threaded or current-thread); spawned tasks go to the runtime
/// that is current when [`TaskProvider::spawn`](crate::TaskProvider::spawn) is called.
#[derive(Debug, Clone, Default)]
pub struct TokioProviders {
    time: TokioTimeProvider,
    task: TokioTaskProvider,
    random: TokioRandomProvider,
    network: TokioNetworkProvider,
    storage: TokioStorageProvider,
}

impl TokioProviders {
    /// Providers with an OS-seeded generator and file paths used as given.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the storage provider (for example one rooted in a data directory).
    pub fn with_storage(mut self, storage: TokioStorageProvider) -> Self {
        self.storage = storage;
        self
    }

    /// Replaces the random provider (for example a seeded one, for reproducible tests).
    pub fn with_random(mut self, random: TokioRandomProvider) -> Self {
        self.random = random;
        self
    }
}

impl Providers for TokioProviders {
    type Time = TokioTimeProvider;
    type Task = TokioTaskProvider;
    type Random = TokioRandomProvider;
    type Network = TokioNetworkProvider;
    type Storage = TokioStorageProvider;

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
