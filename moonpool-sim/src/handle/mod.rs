//! One world's mutable state behind one lock ([`WorldHandle`]), and the verbs that change it
//! from inside a run ([`WorldControl`]: reboot, partition, clog, stall a disk).
//!
//! Above the kernel and the network and storage models, below the providers (which hold a
//! handle) and the world's run loop. It must not know how a run proceeds.

mod control;
mod network;
mod storage;

use std::sync::Arc;

pub use control::WorldControl;

use crate::kernel::Core;
use crate::kernel::clock::SharedClock;
use crate::kernel::timers::Timers;
use crate::network::NetworkState;
use crate::run_lock::{Guard, RunLock};
use crate::storage::StorageState;

/// The whole mutable state of a world, behind one lock.
pub(crate) struct WorldState {
    pub(crate) core: Core,
    pub(crate) timers: Timers,
    pub(crate) network: NetworkState,
    pub(crate) storage: StorageState,
    /// The chaos state of the run in progress (`None` between runs), for the simulator's own
    /// buggify sites on hot paths (`chaos::buggify_at`).
    pub(crate) chaos: Option<crate::chaos::RunChaos>,
}

/// A shared handle on a world's state; providers hold one.
#[derive(Clone)]
pub(crate) struct WorldHandle(Arc<Shared>);

/// What a handle points at: the state, and the world clock beside it, so that a future holding
/// a handle reads the clock without the state and without a second reference count of its own.
struct Shared {
    /// Unique among the worlds of the process (never reused, unlike an address).
    id: u64,
    clock: SharedClock,
    state: RunLock<WorldState>,
}

thread_local! {
    /// The world running on this thread (set for the length of `SimWorld::run`).
    static CURRENT: std::cell::RefCell<Option<WorldHandle>> = const { std::cell::RefCell::new(None) };
}

/// Restores the previous current world (usually none) when the run ends, on every exit path.
pub(crate) struct CurrentGuard(Option<WorldHandle>);

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        let _ = CURRENT.try_with(|slot| {
            if let Ok(mut slot) = slot.try_borrow_mut() {
                *slot = previous;
            }
        });
    }
}

/// Makes `handle` the world running on this thread until the guard drops.
pub(crate) fn install_current(handle: WorldHandle) -> CurrentGuard {
    CurrentGuard(CURRENT.with(|slot| slot.borrow_mut().replace(handle)))
}

/// Runs `f` with the handle of world `id` when it is the world running on this thread; `None`
/// otherwise (outside its run, on another thread).
#[inline]
pub(crate) fn with_current<R>(id: u64, f: impl FnOnce(&WorldHandle) -> R) -> Option<R> {
    CURRENT
        .try_with(|slot| {
            let slot = slot.try_borrow().ok()?;
            slot.as_ref().filter(|handle| handle.0.id == id).map(f)
        })
        .ok()
        .flatten()
}

impl WorldHandle {
    /// True when nobody holds the state's lock right now (for the explorer's fork gate).
    pub(crate) fn is_free(&self) -> bool {
        self.0.state.is_free()
    }

    /// A handle on a new world's state.
    pub(crate) fn new(state: WorldState) -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self(Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            clock: state.core.shared_clock.clone(),
            state: RunLock::new(state),
        }))
    }

    /// This world's id, unique in the process.
    #[inline]
    pub(crate) fn id(&self) -> u64 {
        self.0.id
    }

    /// True when this is the world running on this thread.
    #[inline]
    pub(crate) fn is_current(&self) -> bool {
        with_current(self.0.id, |_| ()).is_some()
    }

    /// The world clock (the same as the state's `core.shared_clock`), readable without the state.
    #[inline]
    pub(crate) fn clock(&self) -> &SharedClock {
        &self.0.clock
    }

    /// Locks the state. A panic while locked cannot corrupt it beyond what the run reports, so a
    /// poisoned lock is taken over.
    #[inline]
    pub(crate) fn lock(&self) -> Guard<'_, WorldState> {
        self.0.state.lock()
    }

    /// Runs `f` with this world's state leased to the calling thread (see [`RunLock`]): the
    /// run loop holds it for the whole run, so provider calls on the world's thread take no lock.
    pub(crate) fn with_lease<R>(&self, f: impl FnOnce() -> R) -> R {
        self.0.state.with_lease(f)
    }

    /// Runs `f` with the state locked.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut WorldState) -> R) -> R {
        f(&mut self.lock())
    }
}
