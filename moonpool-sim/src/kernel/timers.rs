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
    /// What [`to_bits`](Self::to_bits) gives no key: index `u32::MAX` is never a slot's, and
    /// the only key with that index that [`Timers::insert`] hands out has generation 0.
    pub(crate) const NONE_BITS: u64 = u64::MAX;

    pub(crate) fn fingerprint(self) -> u64 {
        self.to_bits()
    }

    /// The key as one word (generation above index, as in the fingerprint); never
    /// [`NONE_BITS`](Self::NONE_BITS).
    #[inline]
    pub(crate) fn to_bits(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    /// The key whose [`to_bits`](Self::to_bits) is `bits`; `None` for
    /// [`NONE_BITS`](Self::NONE_BITS).
    #[inline]
    pub(crate) fn from_bits(bits: u64) -> Option<Self> {
        #[allow(clippy::cast_possible_truncation)]
        (bits != Self::NONE_BITS).then_some(Self {
            index: bits as u32,
            generation: (bits >> 32) as u32,
        })
    }
}

/// Whom a fired timer (or a completed disk operation) wakes.
#[derive(Debug)]
pub(crate) enum Waiter {
    /// A task of the world's executor, registered with its own waker: kept by slot and id, so a
    /// sleep costs no reference-count change on the waker (waking it is the same as waking that
    /// waker).
    Task(TaskRef),
    /// Any other waker (a wrapper, another executor's task, a poll outside any task).
    Waker(Waker),
}

impl Waiter {
    /// What to keep for `waker`, registered by a poll on this thread; `executor` is the
    /// identity of the world's executor (0: none).
    #[inline]
    pub(crate) fn of(waker: &Waker, executor: usize) -> Self {
        match own_task(waker) {
            Some(task) if executor != 0 && task.executor == executor => Waiter::Task(task),
            _ => Waiter::Waker(waker.clone()),
        }
    }

    /// Whether this waiter already wakes what `waker` wakes (a new registration can keep it).
    #[inline]
    pub(crate) fn wakes_as(&self, waker: &Waker) -> bool {
        match self {
            Waiter::Waker(existing) => existing.will_wake(waker),
            Waiter::Task(task) => own_task(waker) == Some(*task),
        }
    }
}

/// A slot is live (its sleep pending) exactly while it holds a waiter.
struct Slot {
    generation: u32,
    waiter: Option<Waiter>,
}

/// At most this many slots: indices stay below `u32::MAX`, which [`TimerKey::NONE_BITS`] and
/// the overflow key use.
const MAX_SLOTS: usize = u32::MAX as usize;

/// The key handed out when every slot is taken (about 2^32 pending sleeps, some 170 GB of
/// slots): it names no slot, so its event wakes nobody and its sleep stays pending, and the run
/// ends with a deadlock that names the task, rather than a panic or a slot shared by two sleeps.
const OVERFLOW: TimerKey = TimerKey {
    index: u32::MAX,
    generation: 0,
};

/// All timer slots of a world.
pub(crate) struct Timers {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// The identity of the world's executor (0 before it is known: every waiter is then kept as
    /// a waker).
    executor: usize,
    /// The most slots there may be ([`MAX_SLOTS`]; less in tests of the overflow).
    limit: usize,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            executor: 0,
            limit: MAX_SLOTS,
        }
    }
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
        Waiter::of(waker, self.executor)
    }

    /// The identity of the executor whose tasks are kept by slot and id (0: none).
    pub(crate) fn executor(&self) -> usize {
        self.executor
    }

    /// Takes a slot for a new sleep ([`OVERFLOW`] when every slot is taken).
    ///
    /// Inlined into the sleep's poll, its one caller: as a call it cost a fifth of the poll.
    #[inline(always)]
    pub(crate) fn insert(&mut self, waker: &Waker) -> TimerKey {
        let waiter = Some(self.waiter(waker));
        if let Some(index) = self.free.pop()
            && let Some(slot) = self.slots.get_mut(index as usize)
        {
            slot.generation = slot.generation.wrapping_add(1);
            slot.waiter = waiter;
            return TimerKey {
                index,
                generation: slot.generation,
            };
        }
        let index = match u32::try_from(self.slots.len()) {
            Ok(index) if self.slots.len() < self.limit => index,
            _ => return OVERFLOW,
        };
        self.slots.push(Slot {
            generation: 0,
            waiter,
        });
        TimerKey {
            index,
            generation: 0,
        }
    }

    fn slot_mut(&mut self, key: TimerKey) -> Option<&mut Slot> {
        self.slots
            .get_mut(key.index as usize)
            .filter(|slot| slot.waiter.is_some() && slot.generation == key.generation)
    }

    /// Replaces the waker of a pending sleep.
    pub(crate) fn update(&mut self, key: TimerKey, waker: &Waker) {
        let unchanged = self
            .slot_mut(key)
            .is_none_or(|slot| slot.waiter.as_ref().is_some_and(|w| w.wakes_as(waker)));
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
        self.free.push(key.index);
        waiter
    }

    /// Frees a slot.
    pub(crate) fn remove(&mut self, key: TimerKey) {
        if let Some(slot) = self.slot_mut(key) {
            slot.waiter = None;
            self.free.push(key.index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waker() -> Waker {
        Waker::noop().clone()
    }

    #[test]
    fn test_a_key_round_trips_through_its_bits_and_none_is_no_key() {
        for (index, generation) in [
            (0, 0),
            (1, 0),
            (7, 3),
            (u32::MAX - 1, u32::MAX),
            (u32::MAX, 0),
        ] {
            let key = TimerKey { index, generation };
            assert_ne!(key.to_bits(), TimerKey::NONE_BITS);
            assert_eq!(TimerKey::from_bits(key.to_bits()), Some(key));
            assert_eq!(key.fingerprint(), key.to_bits());
        }
        assert_eq!(TimerKey::from_bits(TimerKey::NONE_BITS), None);
    }

    #[test]
    fn test_a_cancelled_timer_frees_its_slot_and_its_stale_key_does_nothing() {
        let mut timers = Timers::default();
        let first = timers.insert(&waker());
        let second = timers.insert(&waker());
        assert_eq!((first.index, second.index), (0, 1));
        timers.remove(first);
        // The freed slot is taken again, one generation on; the old key no longer reaches it.
        let reused = timers.insert(&waker());
        assert_eq!((reused.index, reused.generation), (0, 1));
        assert!(timers.fire(first).is_none(), "a stale key fires nothing");
        timers.remove(first);
        timers.update(first, &waker());
        assert!(timers.fire(reused).is_some());
        assert!(timers.fire(reused).is_none(), "a timer fires once");
        assert!(timers.fire(second).is_some());
        assert_eq!(timers.free.len(), 2);
    }

    #[test]
    fn test_a_full_table_hands_out_the_overflow_key_which_names_no_slot() {
        let mut timers = Timers {
            limit: 2,
            ..Timers::default()
        };
        let a = timers.insert(&waker());
        let b = timers.insert(&waker());
        let over = timers.insert(&waker());
        assert_eq!(over, OVERFLOW);
        assert_ne!(over.to_bits(), TimerKey::NONE_BITS);
        assert!(timers.fire(over).is_none());
        timers.remove(over);
        timers.update(over, &waker());
        assert_eq!(timers.slots.len(), 2, "the overflow took no slot");
        assert!(timers.free.is_empty(), "nor freed one");
        // A freed slot makes room again.
        assert!(timers.fire(a).is_some());
        let again = timers.insert(&waker());
        assert_eq!((again.index, again.generation), (0, 1));
        assert!(timers.fire(b).is_some() && timers.fire(again).is_some());
    }
}
