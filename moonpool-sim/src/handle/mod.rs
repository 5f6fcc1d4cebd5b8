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

/// World ids a thread takes from the process's counter at once: the runner's workers each make
/// thousands of worlds a second, and one read-modify-write of a counter both workers write, per
/// world, moved its cache line between their cores every seed.
const WORLD_IDS_PER_BLOCK: u64 = 1 << 16;

/// A world id unique in the process (never 0): the next of the calling thread's block of ids,
/// taking a new block from the process's counter when the block is used up.
fn next_world_id() -> u64 {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering};
    /// The next block's first id (blocks start at 1: 0 is never an id).
    static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        /// The next id of this thread's block and the end of the block (0, 0: no block yet).
        static BLOCK: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }
    let take_block = || {
        let start = NEXT_BLOCK.fetch_add(WORLD_IDS_PER_BLOCK, Ordering::Relaxed);
        (start, start.saturating_add(WORLD_IDS_PER_BLOCK))
    };
    BLOCK
        .try_with(|block| {
            let (mut next, mut end) = block.get();
            if next >= end {
                (next, end) = take_block();
            }
            block.set((next + 1, end));
            next
        })
        // A world made while this thread's locals are being destroyed: a block of its own.
        .unwrap_or_else(|_| take_block().0)
}

impl WorldHandle {
    /// True when nobody holds the state's lock right now (for the explorer's fork gate).
    pub(crate) fn is_free(&self) -> bool {
        self.0.state.is_free()
    }

    /// A handle on a new world's state.
    pub(crate) fn new(state: WorldState) -> Self {
        Self(Arc::new(Shared {
            id: next_world_id(),
            clock: state.core.shared_clock.clone(),
            state: RunLock::new(state),
        }))
    }

    /// This world's id, unique in the process.
    #[inline]
    pub(crate) fn id(&self) -> u64 {
        self.0.id
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

    /// The state, when this handle is its only holder (no other handle, provider or
    /// `WorldControl` of the world is left).
    pub(crate) fn get_mut(&mut self) -> Option<&mut WorldState> {
        Arc::get_mut(&mut self.0).map(|shared| shared.state.get_mut())
    }

    /// Runs `f` with the state locked.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut WorldState) -> R) -> R {
        f(&mut self.lock())
    }
}

#[cfg(test)]
mod id_tests {
    use super::*;

    #[test]
    fn test_world_ids_are_unique_across_threads_and_blocks() {
        let mut ids: Vec<u64> = (0..3)
            .map(|_| {
                std::thread::spawn(|| {
                    (0..WORLD_IDS_PER_BLOCK + 10)
                        .map(|_| next_world_id())
                        .collect::<Vec<_>>()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .flat_map(|thread| thread.join().expect("the thread ran"))
            .collect();
        ids.extend((0..5).map(|_| next_world_id()));
        assert!(!ids.contains(&0));
        let count = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), count, "every world id is unique");
    }
}
