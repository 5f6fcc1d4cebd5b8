//! A thread's spare world parts: what a dropped world leaves for the next world built on the
//! same thread, so that the runner's workers, which build a world per seed, stop allocating and
//! growing the same lists every seed.
//!
//! A world dropped on a thread keeps, in that thread's spare: its executor's state (task slab,
//! free list, ready queue, slot names), its event queue's heap and lanes, its process table's
//! list and strings, its factories' and pending workloads' lists, its two shared random streams,
//! its workload counter and its run's chaos state and violation flag. The next world built on the thread takes them instead of making new ones.
//! (So a thread holds the memory of its last world's lists until its next world or its end; an
//! executor of more than 4,096 task slots or a process list of more than 4,096 is not kept.)
//!
//! Nothing of one seed reaches the next through them:
//!
//! - every part is renewed by the constructor that makes a fresh one: the executor's state by
//!   `Shared::new`'s own constructor, the queue by `EventQueue::default`, a stream by
//!   `rng::stream`, the lists emptied; only the memory of the lists (their capacity) stays;
//! - a part shared by reference count is reused only when the spare holds the last reference
//!   (`Arc::get_mut`): then no spawner, waker, join handle, provider or watchdog probe of the old
//!   world is left anywhere that could reach the new one; otherwise it is dropped and a new one
//!   is made, exactly as before;
//! - the lists of the world's state are taken only when the dropped world's state has no other
//!   holder (no `WorldControl` or provider outlives it), so nothing can see them emptied.
//!
//! `tests` runs seeds on reused parts and on fresh ones and compares everything they report.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use rand_chacha::ChaCha8Rng;

use std::collections::BTreeMap;

use super::{PendingWorkload, ProcessFactory};
use crate::executor::ProcessId;
use crate::executor::{Executor, KeptExecutor};
use crate::kernel::process::ProcessState;
use crate::kernel::queue::EventQueue;
use crate::kernel::rng::{self, SharedStream};

/// Most processes a dropped world's process list may have room for to be kept.
pub(super) const MAX_KEPT_PROCESSES: usize = 4_096;

/// What a dropped world leaves for the next one.
#[derive(Default)]
pub(super) struct Spare {
    executor: Option<KeptExecutor>,
    /// The process table's list, empty.
    pub(super) processes: Option<Vec<ProcessState>>,
    /// The event queue, recycled (no event, sequence numbers from 0).
    pub(super) queue: Option<EventQueue>,
    /// The factories' list, empty.
    pub(super) factories: Vec<Option<ProcessFactory>>,
    /// The pending workloads' list, empty.
    pub(super) pending: Vec<PendingWorkload>,
    /// The process table's strings, in the order the next world's registrations take them
    /// (see [`pool_names`]).
    pub(super) names: Vec<String>,
    /// The last run's chaos state and violation flag (renewed by `SimChaos::new`).
    pub(super) chaos: Option<crate::chaos::KeptChaos>,
    select_rng: Option<SharedStream>,
    app_rng: Option<SharedStream>,
    workloads_left: Option<Arc<AtomicUsize>>,
}

thread_local! {
    static SPARE: RefCell<Option<Spare>> = const { RefCell::new(None) };
    /// False: worlds on this thread neither keep nor take spare parts (for tests comparing
    /// reused parts with fresh ones).
    static REUSE: Cell<bool> = const { Cell::new(true) };
    /// Executors renewed from a spare on this thread (for tests: that reuse happened).
    static RENEWED: Cell<u64> = const { Cell::new(0) };
}

/// The calling thread's spare, if any (and if reuse is on).
pub(super) fn take() -> Spare {
    if !REUSE.with(Cell::get) {
        return Spare::default();
    }
    SPARE
        .try_with(|spare| spare.try_borrow_mut().ok().and_then(|mut s| s.take()))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Keeps `spare` for the next world of the calling thread (dropped if reuse is off, or while
/// the thread ends).
pub(super) fn keep(spare: Spare) {
    if !REUSE.with(Cell::get) {
        return;
    }
    let spare = SPARE.try_with(|slot| match slot.try_borrow_mut() {
        Ok(mut slot) => slot.replace(spare),
        Err(_) => Some(spare),
    });
    // A spare replaced (or refused) is dropped here, outside the thread's slot.
    drop(spare);
}

/// Turns reuse on or off for worlds built and dropped on the calling thread afterwards; off also
/// drops the thread's spare. Returns the previous setting.
#[cfg(test)]
pub(crate) fn set_reuse(on: bool) -> bool {
    if !on {
        let spare = SPARE.with(|slot| slot.borrow_mut().take());
        drop(spare);
    }
    REUSE.with(|reuse| reuse.replace(on))
}

/// Executors renewed from a spare on the calling thread so far.
#[cfg(test)]
pub(crate) fn renewed() -> u64 {
    RENEWED.with(Cell::get)
}

/// Empties a dropped world's process table and its index by name, and returns their strings as
/// a pool: a registration takes (with [`pooled`]) its process's name, the index's key and the
/// locality's three names (those not empty), in that order; the pool is built so that the next
/// world's registrations, made in the same order, take back the strings of the same lengths (no
/// string is then allocated or grown). Only the strings' memory is reused: each is cleared and
/// written anew.
///
/// The pool is built in `pool`'s memory (this world's own pool, used up by its registrations):
/// whatever it still holds is dropped first.
pub(super) fn pool_names(
    processes: &mut Vec<ProcessState>,
    keys: &mut BTreeMap<String, ProcessId>,
    mut pool: Vec<String>,
) -> Vec<String> {
    pool.clear();
    pool.reserve(processes.len() * 5);
    for process in processes.drain(..).rev() {
        let ProcessState { name, locality, .. } = process;
        for text in [locality.machine, locality.zone, locality.datacenter] {
            if !text.is_empty() {
                pool.push(text);
            }
        }
        if let Some((key, _)) = keys.remove_entry(&name) {
            pool.push(key);
        }
        pool.push(name);
    }
    pool
}

/// `text` in a string of the pool (cleared and written: none of its old contents stay), or a new
/// string when the pool is empty; an empty string for an empty `text` (which allocates nothing).
pub(super) fn pooled(pool: &mut Vec<String>, text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    match pool.pop() {
        Some(mut string) => {
            string.clear();
            string.push_str(text);
            string
        }
        None => text.to_string(),
    }
}

impl Spare {
    /// What a world leaves: its executor (kept by reference: reused only if that reference is
    /// the last one when the next world is built) and its streams and counter (the same).
    pub(super) fn keep_shared(
        &mut self,
        executor: &Executor,
        select_rng: &SharedStream,
        app_rng: &SharedStream,
        workloads_left: &Arc<AtomicUsize>,
    ) {
        self.executor = Some(executor.keep_for_reuse());
        self.select_rng = Some(Arc::clone(select_rng));
        self.app_rng = Some(Arc::clone(app_rng));
        self.workloads_left = Some(Arc::clone(workloads_left));
    }

    /// An executor whose picks draw from `rng`: the kept one renewed, or a new one.
    pub(super) fn executor(&mut self, rng: ChaCha8Rng) -> Executor {
        let Some(kept) = self.executor.take() else {
            return Executor::new(rng);
        };
        let (executor, renewed) = Executor::renewed(kept, rng);
        if renewed {
            RENEWED.with(|count| count.set(count.get() + 1));
        }
        executor
    }

    /// The stream `stream_id` of `seed`, in the kept select stream's memory if it is free.
    pub(super) fn select_rng(&mut self, seed: u64, stream_id: u64) -> SharedStream {
        renew_stream(self.select_rng.take(), seed, stream_id)
    }

    /// The stream `stream_id` of `seed`, in the kept application stream's memory if it is free.
    pub(super) fn app_rng(&mut self, seed: u64, stream_id: u64) -> SharedStream {
        renew_stream(self.app_rng.take(), seed, stream_id)
    }

    /// A workload counter at 0: the kept one if it is free.
    pub(super) fn workloads_left(&mut self) -> Arc<AtomicUsize> {
        match self.workloads_left.take() {
            Some(mut counter) => match Arc::get_mut(&mut counter) {
                Some(count) => {
                    *count.get_mut() = 0;
                    counter
                }
                None => Arc::new(AtomicUsize::new(0)),
            },
            None => Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// A fresh stream, in `kept`'s memory when nothing else refers to it.
fn renew_stream(kept: Option<SharedStream>, seed: u64, stream_id: u64) -> SharedStream {
    if let Some(mut stream) = kept
        && let Some(lock) = Arc::get_mut(&mut stream)
    {
        *lock.get_mut() = rng::stream(seed, stream_id);
        return stream;
    }
    rng::shared_stream(seed, stream_id)
}

#[cfg(test)]
mod tests;
