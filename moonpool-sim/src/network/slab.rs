//! The slab of a world's halves: slots by index (a [`HalfId`] is an index and the generation of
//! the half there), lookups of one half or of a half and its peer, appends between them, and
//! inserting and removing halves with reused slots.

use super::half::{Half, HalfCell, HalfSpec};
use crate::kernel::event::HalfId;

/// One slab slot, aligned so that a half's first line is a cache line.
#[repr(C, align(64))]
pub(crate) struct Slot {
    pub(crate) half: HalfCell,
}

/// The slots of a world's halves, by index.
///
/// A world's first connection reserves room for two halves per process registered by then
/// ([`Slots::reserve_for`]): growing one by one would copy every half at each doubling (a world
/// of 1,000 connections copied about 1.3 MB of halves during its first round trips).
#[derive(Default)]
pub(crate) struct Slots(Vec<Slot>);

/// The most halves [`Slots::reserve_for`] reserves room for at once (about 2.6 MB).
const MAX_RESERVED_HALVES: usize = 8192;

impl Slots {
    /// The slot at `index`, if it was ever made.
    #[inline]
    pub(crate) fn get(&self, index: usize) -> Option<&Slot> {
        self.0.get(index)
    }

    /// The slot at `index`, mutably, if it was ever made.
    #[inline]
    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut Slot> {
        self.0.get_mut(index)
    }

    /// The two different slots `a` and `b`, mutably; `None` when they are the same or either
    /// was never made.
    #[inline]
    fn get_pair_mut(&mut self, a: usize, b: usize) -> Option<(&mut Slot, &mut Slot)> {
        let [x, y] = self.0.get_disjoint_mut([a, b]).ok()?;
        Some((x, y))
    }

    /// The address of the first slot, as a number (for prefetch hints).
    #[inline]
    pub(crate) fn base_address(&self) -> usize {
        self.0.as_ptr() as usize
    }

    /// Slots ever made (live or vacant).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Before the first half: room for `halves` of them (at most [`MAX_RESERVED_HALVES`]), in
    /// one allocation. Does nothing once any room exists.
    pub(crate) fn reserve_for(&mut self, halves: usize) {
        if self.0.capacity() == 0 {
            self.0.reserve_exact(halves.min(MAX_RESERVED_HALVES));
        }
    }

    /// The room for slots, made or not.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.0.capacity()
    }

    fn push(&mut self, slot: Slot) {
        self.0.push(slot);
    }

    /// Every slot, in index order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.0.iter()
    }
}

/// The slab of halves, as `NetworkState` keeps it: a `HalfId` is an index into `slots` and the
/// generation of the half there; `free` lists vacant slots, last freed first.
pub(crate) struct Slab<'a> {
    pub(crate) slots: &'a mut Slots,
    pub(crate) free: &'a mut Vec<u32>,
}

/// The live half `id` names in `slots`.
#[inline]
pub(crate) fn get(slots: &Slots, id: HalfId) -> Option<&Half> {
    slots
        .get(id.index as usize)
        .and_then(|slot| slot.half.as_ref())
        .filter(|half| half.generation == id.generation)
}

/// The live half `id` names in `slots`, mutably.
#[inline]
pub(crate) fn get_mut(slots: &mut Slots, id: HalfId) -> Option<&mut Half> {
    slots
        .get_mut(id.index as usize)
        .and_then(|slot| slot.half.as_mut())
        .filter(|half| half.generation == id.generation)
}

/// The live half `a` and, when it is live too (and another slot), the live half `b`, both
/// mutably: a write's own half and its peer's in one lookup.
#[inline]
pub(crate) fn pair_mut(
    slots: &mut Slots,
    a: HalfId,
    b: HalfId,
) -> Option<(&mut Half, Option<&mut Half>)> {
    let (ai, bi) = (a.index as usize, b.index as usize);
    if ai != bi && ai < slots.len() && bi < slots.len() {
        let (x, y) = slots.get_pair_mut(ai, bi)?;
        let x = x.half.as_mut().filter(|h| h.generation == a.generation)?;
        let y = y.half.as_mut().filter(|h| h.generation == b.generation);
        return Some((x, y));
    }
    get_mut(slots, a).map(|h| (h, None))
}

/// The live half `a` and its live peer, both mutably, in one lookup of each; `None` when
/// either is gone (or the half is its own peer).
#[inline]
pub(crate) fn live_pair_mut(slots: &mut Slots, a: HalfId) -> Option<(&mut Half, &mut Half)> {
    let peer = get(slots, a)?.peer;
    let (x, y) = slots.get_pair_mut(a.index as usize, peer.index as usize)?;
    // `x` is the half `get` found live with `a`'s generation just above.
    let x = x.half.any_mut();
    let y = y
        .half
        .as_mut()
        .filter(|h| h.generation == peer.generation)?;
    Some((x, y))
}

/// Appends `bytes` sent by `source` to the queue of its peer `target`.
///
/// When both halves' queues are empty, their buffers are swapped first. A half that writes has
/// most often just read its own queue to the end (a request read, then its reply written), so
/// that buffer is in the cache, while the peer's was last touched a round trip ago; among
/// 1,000 connections it is a cache miss per line written. Which buffer holds a queue's bytes is
/// not observable: the bytes, their order and every count are the same.
#[inline]
pub(crate) fn append_to(source: &mut Half, target: &mut Half, bytes: &[u8]) {
    if target.bytes.is_empty() && source.bytes.is_empty() && source.bytes.capacity() >= bytes.len()
    {
        std::mem::swap(&mut source.bytes, &mut target.bytes);
    }
    target.bytes.extend_from_slice(bytes);
}

/// Appends `bytes` sent by `from` to the queue of its peer `to` (see [`append_to`]; without
/// `from`, no swap); false when `to` is gone (nothing is appended). The write path does the
/// same with the two halves it already holds.
#[cfg(test)]
pub(crate) fn append(slots: &mut Slots, from: HalfId, to: HalfId, bytes: &[u8]) -> bool {
    match pair_mut(slots, from, to) {
        Some((source, Some(target))) => {
            append_to(source, target, bytes);
            return true;
        }
        Some((_, None)) => return false,
        None => {}
    }
    match get_mut(slots, to) {
        Some(target) => {
            target.bytes.extend_from_slice(bytes);
            true
        }
        None => false,
    }
}

/// Every live half in `slots` with its id, in slot order.
pub(crate) fn iter(slots: &Slots) -> impl Iterator<Item = (HalfId, &Half)> {
    slots.iter().enumerate().filter_map(|(index, slot)| {
        let half = slot.half.as_ref()?;
        Some((
            HalfId {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                generation: half.generation,
            },
            half,
        ))
    })
}

impl Slab<'_> {
    /// Stores a new half of `spec` in a free slot (a reused one gets the next generation).
    pub(crate) fn insert(self, spec: &HalfSpec) -> HalfId {
        if let Some(index) = self.free.pop()
            && let Some(slot) = self.slots.get_mut(index as usize)
        {
            let generation = slot.half.renew(spec);
            return HalfId { index, generation };
        }
        let index = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.slots.push(Slot {
            half: HalfCell::new(spec),
        });
        HalfId {
            index,
            generation: 0,
        }
    }

    /// Frees `id`'s slot (its bytes and wakers are dropped); false when it was not live.
    pub(crate) fn remove(self, id: HalfId) -> bool {
        let Some(slot) = self.slots.get_mut(id.index as usize) else {
            return false;
        };
        if slot
            .half
            .as_ref()
            .is_none_or(|h| h.generation != id.generation)
        {
            return false;
        }
        slot.half.vacate();
        self.free.push(id.index);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::bytes::ByteQueue;
    use super::super::connection::{ConnectionEnd, ConnectionId};
    use super::*;
    use crate::executor::ProcessId;
    use std::io;
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    fn addr(last: u8) -> std::net::SocketAddr {
        std::net::SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), 4500)
    }

    fn spec(connection: u64) -> HalfSpec {
        HalfSpec {
            connection: ConnectionId(connection),
            end: ConnectionEnd::Client,
            owner: ProcessId(1),
            local: addr(1),
            remote: addr(2),
            send_capacity: 64,
            extra_latency: Duration::from_nanos(5),
            black_hole: false,
        }
    }

    /// Room reserved before the first half holds that many without moving any; once room
    /// exists nothing more is reserved; the reservation is bounded; every index finds the slot
    /// made for it, and pairs of different slots are found.
    #[test]
    fn test_slots_reserved_up_front_never_move() {
        let (mut slots, mut free) = (Slots::default(), Vec::new());
        slots.reserve_for(300);
        assert_eq!(slots.capacity(), 300);
        slots.reserve_for(10_000);
        assert_eq!(slots.capacity(), 300, "reserved once");
        let mut ids = Vec::new();
        let mut first_address = None;
        for connection in 0..300 {
            let id = Slab {
                slots: &mut slots,
                free: &mut free,
            }
            .insert(&spec(connection));
            assert_eq!(id.index as usize, ids.len());
            ids.push(id);
            let address = slots.get(0).map(|slot| slot as *const Slot);
            assert!(first_address.is_none() || first_address == address);
            first_address = address;
        }
        assert_eq!((slots.len(), slots.capacity()), (300, 300));
        assert!(slots.get(300).is_none());
        for (connection, id) in ids.iter().enumerate() {
            assert_eq!(
                get(&slots, *id).map(|h| h.connection),
                Some(ConnectionId(connection as u64))
            );
        }
        assert_eq!(iter(&slots).count(), 300);
        for (a, b) in [(0, 1), (1, 0), (3, 250), (299, 298)] {
            let (x, y) = slots.get_pair_mut(a, b).expect("two slots");
            assert_eq!(
                x.half
                    .as_ref()
                    .map(|h| h.connection)
                    .unwrap_or(ConnectionId(0)),
                ConnectionId(a as u64)
            );
            assert_eq!(
                y.half
                    .as_ref()
                    .map(|h| h.connection)
                    .unwrap_or(ConnectionId(0)),
                ConnectionId(b as u64)
            );
        }
        assert!(slots.get_pair_mut(5, 5).is_none(), "the same slot twice");
        assert!(slots.get_pair_mut(5, 300).is_none(), "past the end");
        let mut huge = Slots::default();
        huge.reserve_for(usize::MAX);
        assert_eq!(huge.capacity(), MAX_RESERVED_HALVES);
    }

    /// A write into an empty queue from a half whose own queue is empty takes the writer's
    /// buffer; otherwise the bytes are appended in place. Either way the peer reads the same
    /// bytes in the same order.
    #[test]
    fn test_an_append_swaps_buffers_only_between_two_empty_queues() {
        let (mut slots, mut free) = (Slots::default(), Vec::new());
        macro_rules! slab {
            () => {
                Slab {
                    slots: &mut slots,
                    free: &mut free,
                }
            };
        }
        let a = slab!().insert(&spec(1));
        let b = slab!().insert(&spec(1));
        let buffer = |slots: &Slots, id| get(slots, id).map(|h| h.bytes.buffer_ptr());
        // `a` read a request to the end: its buffer is empty, with room.
        if let Some(h) = get_mut(&mut slots, a) {
            h.bytes.extend([9u8; 100]);
            h.bytes.clear();
        }
        let a_buffer = buffer(&slots, a);
        assert!(append(&mut slots, a, b, b"reply"));
        assert_eq!(buffer(&slots, b), a_buffer, "b now holds a's buffer");
        assert_eq!(
            get(&slots, b).map(|h| h.bytes.iter().copied().collect::<Vec<_>>()),
            Some(b"reply".to_vec())
        );
        assert!(get(&slots, a).is_some_and(|h| h.bytes.is_empty()));
        // Bytes already queued at `b`: appended after them, no swap.
        assert!(append(&mut slots, a, b, b" more"));
        assert_eq!(buffer(&slots, b), a_buffer);
        assert_eq!(
            get(&slots, b).map(|h| h.bytes.iter().copied().collect::<Vec<_>>()),
            Some(b"reply more".to_vec())
        );
        // Bytes queued at the writer: its buffer is in use, no swap.
        if let Some(h) = get_mut(&mut slots, b) {
            h.bytes.clear();
        }
        if let Some(h) = get_mut(&mut slots, a) {
            h.bytes.extend([1u8]);
        }
        let b_buffer = buffer(&slots, b);
        assert!(append(&mut slots, a, b, b"x"));
        assert_eq!(buffer(&slots, b), b_buffer);
        assert_eq!(get(&slots, a).map(|h| h.bytes.len()), Some(1));
        // A writer's buffer too small for the bytes: no swap.
        if let Some(h) = get_mut(&mut slots, b) {
            h.bytes.clear();
        }
        if let Some(h) = get_mut(&mut slots, a) {
            h.bytes = ByteQueue::new();
        }
        assert!(append(&mut slots, a, b, b"y"));
        assert_eq!(
            get(&slots, b).map(|h| h.bytes.iter().copied().collect::<Vec<_>>()),
            Some(b"y".to_vec())
        );
        // The writer gone: appended without a swap; the peer gone: nothing appended.
        assert!(slab!().remove(a));
        assert!(append(&mut slots, a, b, b"z"));
        assert_eq!(get(&slots, b).map(|h| h.bytes.len()), Some(2));
        assert!(slab!().remove(b));
        assert!(!append(&mut slots, a, b, b"lost"));
        let c = slab!().insert(&spec(2));
        assert!(
            !append(&mut slots, c, b, b"stale"),
            "a stale id finds nothing"
        );
    }

    #[test]
    fn test_the_slab_reuses_slots_with_a_new_generation_and_forgets_stale_ids() {
        let (mut slots, mut free) = (Slots::default(), Vec::new());
        macro_rules! slab {
            () => {
                Slab {
                    slots: &mut slots,
                    free: &mut free,
                }
            };
        }
        let first = slab!().insert(&spec(1));
        let second = slab!().insert(&spec(2));
        if let Some(h) = get_mut(&mut slots, first) {
            h.bytes.extend([1u8, 2, 3]);
            h.error = Some(io::ErrorKind::ConnectionReset);
            h.register_reader(std::task::Waker::noop(), 0);
        }
        assert!(slab!().remove(first));
        assert!(!slab!().remove(first), "a second removal finds nothing");
        let third = slab!().insert(&spec(3));
        let reused = get(&slots, third).expect("the new half");
        assert!(reused.bytes.is_empty() && reused.error.is_none() && !reused.read_armed);
        assert_eq!(reused.extra_latency, 5);
        let out_of_range = HalfId {
            index: 99,
            generation: 0,
        };
        assert!(!slab!().remove(out_of_range));
        assert!(
            get(&slots, first).is_none(),
            "a stale id misses the reused slot"
        );
        assert!(get_mut(&mut slots, first).is_none());
        assert!(get(&slots, out_of_range).is_none());
        assert_eq!(third.index, first.index);
        assert_ne!(third.generation, first.generation);
        assert_eq!(get(&slots, second).map(|h| h.extra_latency), Some(5));
        assert_eq!(
            get(&slots, third).map(|h| h.connection),
            Some(ConnectionId(3))
        );
        let live: Vec<_> = iter(&slots).map(|(id, h)| (id, h.connection)).collect();
        assert_eq!(
            live,
            vec![(third, ConnectionId(3)), (second, ConnectionId(2))]
        );
    }
}
