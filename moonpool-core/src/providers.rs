//! The [`Providers`] bundle.

use crate::{NetworkProvider, RandomProvider, StorageProvider, TaskProvider, TimeProvider};

/// Everything a piece of application code needs from its environment, in one type parameter.
///
/// Write services as `struct Server<P: Providers>` and construct them with `TokioProviders` in
/// production or the simulator's providers in tests.
pub trait Providers: Clone + Send + Sync + 'static {
    /// Clock, sleeps and timeouts.
    type Time: TimeProvider;
    /// Task spawning.
    type Task: TaskProvider;
    /// Randomness.
    type Random: RandomProvider;
    /// TCP networking.
    type Network: NetworkProvider;
    /// Files.
    type Storage: StorageProvider;

    /// The time provider.
    fn time(&self) -> &Self::Time;
    /// The task provider.
    fn task(&self) -> &Self::Task;
    /// The random provider.
    fn random(&self) -> &Self::Random;
    /// The network provider.
    fn network(&self) -> &Self::Network;
    /// The storage provider.
    fn storage(&self) -> &Self::Storage;
}
