//! Timer slots: one per pending sleep, holding what to wake when it fires.

use std::task::Waker;

use crate::executor::{TaskRef, own_task};

/// Identifies a timer slot; the generation makes a stale event harmless after slot reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerKey {
    index: u32,
    generation: u32,
}

impl TimerKey {
    pub(crate) fn fingerprint(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }
}

/// Whom a fired timer wakes.
pub(crate) enum Waiter {
    /// A task of the world's executor, registered with its own waker: kept by slot and id, so a
    /// sleep costs no reference-count change on the waker (waking it is the same as waking that
    /// waker).
    Task(TaskRef),
    /// Any other waker (a wrapper, another executor's task, a poll outside any task).
    Waker(Waker),
}

struct Slot {
    generation: u32,
    waiter: Option<Waiter>,
    live: bool,
}

/// All timer slots of a world.
#[derive(Default)]
pub(crate) struct Timers {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// The identity of the world's executor (0 before it is known: every waiter is then kept as
    /// a waker).
    executor: usize,
}

impl Timers {
    /// Timers whose waiters of executor `executor` are kept by slot and id.
    pub(crate) fn for_executor(executor: usize) -> Self {
        Self {
            executor,
            ..Self::default()
        }
    }

    /// What to keep for `waker`.
    #[inline]
    fn waiter(&self, waker: &Waker) -> Waiter {
        match own_task(waker) {
            Some(task) if self.executor != 0 && task.executor == self.executor => {
                Waiter::Task(task)
            }
            _ => Waiter::Waker(waker.clone()),
        }
    }

    /// Takes a slot for a new sleep.
    #[inline]
    pub(crate) fn insert(&mut self, waker: &Waker) -> TimerKey {
        let waiter = Some(self.waiter(waker));
        if let Some(index) = self.free.pop()
            && let Some(slot) = self.slots.get_mut(index as usize)
        {
            slot.generation = slot.generation.wrapping_add(1);
            slot.waiter = waiter;
            slot.live = true;
            return TimerKey {
                index,
                generation: slot.generation,
            };
        }
        let index = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.slots.push(Slot {
            generation: 0,
            waiter,
            live: true,
        });
        TimerKey {
            index,
            generation: 0,
        }
    }

    fn slot_mut(&mut self, key: TimerKey) -> Option<&mut Slot> {
        self.slots
            .get_mut(key.index as usize)
            .filter(|slot| slot.live && slot.generation == key.generation)
    }

    /// Replaces the waker of a pending sleep.
    pub(crate) fn update(&mut self, key: TimerKey, waker: &Waker) {
        let unchanged = self.slot_mut(key).is_none_or(|slot| match &slot.waiter {
            Some(Waiter::Waker(existing)) => existing.will_wake(waker),
            Some(Waiter::Task(task)) => own_task(waker) == Some(*task),
            None => false,
        });
        if !unchanged {
            let waiter = self.waiter(waker);
            if let Some(slot) = self.slot_mut(key) {
                slot.waiter = Some(waiter);
            }
        }
    }

    /// Fires a timer: frees its slot and returns whom to wake. The sleep notices by reading the
    /// clock, so completing it needs no lock.
    pub(crate) fn fire(&mut self, key: TimerKey) -> Option<Waiter> {
        let slot = self.slot_mut(key)?;
        let waiter = slot.waiter.take();
        slot.live = false;
        self.free.push(key.index);
        waiter
    }

    /// Frees a slot.
    pub(crate) fn remove(&mut self, key: TimerKey) {
        if let Some(slot) = self.slot_mut(key) {
            slot.live = false;
            slot.waiter = None;
            self.free.push(key.index);
        }
    }
}
