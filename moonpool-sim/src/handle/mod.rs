//! One world's mutable state behind one lock ([`WorldHandle`]), and the verbs that change it
//! from inside a run ([`WorldControl`]: reboot, partition, clog, stall a disk).
//!
//! Above the kernel and the network and storage models, below the providers (which hold a
//! handle) and the world's run loop. It must not know how a run proceeds.

mod control;
mod network;
mod storage;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use control::WorldControl;

use crate::kernel::Core;
use crate::kernel::timers::Timers;
use crate::network::NetworkState;
use crate::storage::StorageState;

/// The whole mutable state of a world, behind one lock.
pub(crate) struct WorldState {
    pub(crate) core: Core,
    pub(crate) timers: Timers,
    pub(crate) network: NetworkState,
    pub(crate) storage: StorageState,
}

/// A shared handle on a world's state; providers hold one.
#[derive(Clone)]
pub(crate) struct WorldHandle(pub(crate) Arc<Mutex<WorldState>>);

impl WorldHandle {
    /// Locks the state. A panic while locked cannot corrupt it beyond what the run reports, so a
    /// poisoned lock is taken over.
    pub(crate) fn lock(&self) -> MutexGuard<'_, WorldState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` with the state locked.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut WorldState) -> R) -> R {
        f(&mut self.lock())
    }
}
