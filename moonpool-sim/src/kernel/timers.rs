//! Timer slots: one per pending sleep, holding its waker.

use std::task::Waker;

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

struct Slot {
    generation: u32,
    waker: Option<Waker>,
    live: bool,
}

/// All timer slots of a world.
#[derive(Default)]
pub(crate) struct Timers {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

impl Timers {
    /// Takes a slot for a new sleep.
    pub(crate) fn insert(&mut self, waker: Waker) -> TimerKey {
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.generation = slot.generation.wrapping_add(1);
            slot.waker = Some(waker);
            slot.live = true;
            return TimerKey {
                index,
                generation: slot.generation,
            };
        }
        let index = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.slots.push(Slot {
            generation: 0,
            waker: Some(waker),
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
        if let Some(slot) = self.slot_mut(key) {
            match &slot.waker {
                Some(existing) if existing.will_wake(waker) => {}
                _ => slot.waker = Some(waker.clone()),
            }
        }
    }

    /// Fires a timer: frees its slot and returns its waker. The sleep notices by reading the
    /// clock, so completing it needs no lock.
    pub(crate) fn fire(&mut self, key: TimerKey) -> Option<Waker> {
        let slot = self.slot_mut(key)?;
        let waker = slot.waker.take();
        slot.live = false;
        self.free.push(key.index);
        waker
    }

    /// Frees a slot.
    pub(crate) fn remove(&mut self, key: TimerKey) {
        if let Some(slot) = self.slot_mut(key) {
            slot.live = false;
            slot.waker = None;
            self.free.push(key.index);
        }
    }
}
