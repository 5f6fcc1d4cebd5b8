//! The event queue: events ordered by (time, sequence number).
//!
//! The sequence number is a counter assigned at scheduling, so two events due at the same instant
//! are applied in the order they were scheduled, on every run.
//!
//! Most events are scheduled in time order: a fixed latency puts every delivery after the
//! previous one, a loop of equal sleeps puts every deadline after the last. Such an event goes
//! into a *lane*, a FIFO whose times never decrease (its sequence numbers always increase), where
//! pushing and popping are O(1); only an event earlier than the tail of every lane goes into the
//! heap. The earliest event is the smallest of the lanes' heads and the heap's top, so the
//! order is exactly the heap's order on (time, sequence): which structure holds an event changes
//! nothing a run does.
//!
//! Each lane's front key and the heap's top key are kept side by side, as one number each
//! (time above sequence), so finding the earliest event after a pop reads one small array; an
//! empty lane's tail reads 0, so choosing a lane for a push reads another.
//!
//! The heap is a 4-ary min-heap of its own ([`QuadHeap`]) rather than `std`'s `BinaryHeap`: half
//! as deep, and small enough to inline into the run loop. Called out of line, `BinaryHeap::pop`
//! returned the event through memory, written field by field and read back by the run loop as
//! wider loads: a store-forwarding stall on every event (a sixth of the run loop's samples in the
//! `timers` benchmark).

use std::time::Duration;

use super::event::Event;

/// FIFO lanes beside the heap. A few lanes catch interleaved in-order streams (several sleep
/// lengths, latencies of a few links); more would make every pop compare more heads.
const LANES: usize = 3;

#[derive(Clone, Copy)]
struct Scheduled {
    /// Nanoseconds since the start of the run (8 bytes instead of a 16-byte `Duration`: the heap
    /// moves these around on every push and pop).
    at: u64,
    sequence: u64,
    event: Event,
}

impl Scheduled {
    /// The order key: time, then sequence.
    #[inline]
    fn key(&self) -> (u64, u64) {
        (self.at, self.sequence)
    }
}

/// A 4-ary min-heap on (time, sequence). Keys are unique (sequence numbers are), so the order
/// of its pops is fully determined by the keys, as with any correct heap.
#[derive(Default)]
struct QuadHeap {
    items: Vec<Scheduled>,
}

impl QuadHeap {
    #[inline]
    fn peek_key(&self) -> Option<(u64, u64)> {
        self.items.first().map(Scheduled::key)
    }

    #[inline]
    fn push(&mut self, item: Scheduled) {
        let key = item.key();
        let mut hole = self.items.len();
        self.items.push(item);
        // Sift up: parents later than the new item move down into the hole.
        while hole > 0 {
            let parent = (hole - 1) / 4;
            let Some(&above) = self.items.get(parent) else {
                break;
            };
            if above.key() < key {
                break;
            }
            if let Some(slot) = self.items.get_mut(hole) {
                *slot = above;
            }
            hole = parent;
        }
        if let Some(slot) = self.items.get_mut(hole) {
            *slot = item;
        }
    }

    #[inline]
    fn pop(&mut self) -> Option<Scheduled> {
        let last = self.items.pop()?;
        let Some(&top) = self.items.first() else {
            return Some(last);
        };
        // Sift `last` down from the root: the earliest child moves up into the hole while it is
        // earlier than `last`.
        let key = last.key();
        let len = self.items.len();
        let mut hole = 0;
        loop {
            let first = hole * 4 + 1;
            if first >= len {
                break;
            }
            let mut best = first;
            let mut best_key = self
                .items
                .get(first)
                .map_or((u64::MAX, u64::MAX), Scheduled::key);
            for child in first + 1..(first + 4).min(len) {
                if let Some(candidate) = self.items.get(child)
                    && candidate.key() < best_key
                {
                    best = child;
                    best_key = candidate.key();
                }
            }
            if best_key > key {
                break;
            }
            let Some(&moved) = self.items.get(best) else {
                break;
            };
            if let Some(slot) = self.items.get_mut(hole) {
                *slot = moved;
            }
            hole = best;
        }
        if let Some(slot) = self.items.get_mut(hole) {
            *slot = last;
        }
        Some(top)
    }

    fn clear(&mut self) {
        self.items.clear();
    }
}

/// A FIFO of events in a ring: a `Vec` whose length is 0 or a power of two, the index of the
/// front and the count of events. Pushing writes behind the last event and popping moves the
/// front, so no event is moved after it is pushed, except when the ring is full and doubles
/// (amortised O(1)). A lane of a same-latency run holds every event of it in flight (one per
/// connection at 1,000 clients); the earlier lane, a `Vec` compacted when its popped part
/// outgrew the rest, moved about one event per pop (68 instructions a round trip under
/// callgrind). Its own (rather than `VecDeque`) so that push and pop are small enough to
/// inline: `VecDeque`'s `push_back` stayed out of line, and read the event it was passed back
/// as wider loads. Every slot holds an event (those outside the live part are stale copies,
/// never read), so there is no uninitialised memory and no `unsafe`.
#[derive(Default)]
struct Lane {
    ring: Vec<Scheduled>,
    /// The index of the front event in `ring` (0 when the lane has no storage).
    front: usize,
    /// Events in the lane: those at `front`, `front + 1`, ... (wrapping).
    len: usize,
}

/// The storage of a lane's first growth, in events.
const LANE_FIRST_CAPACITY: usize = 16;

impl Lane {
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ring index `k` places behind the front (the ring is not empty: its length is a
    /// power of two, so the mask keeps the index in it).
    #[inline(always)]
    fn index(&self, k: usize) -> usize {
        self.front.wrapping_add(k) & self.ring.len().wrapping_sub(1)
    }

    #[inline]
    fn front(&self) -> Option<&Scheduled> {
        if self.len == 0 {
            return None;
        }
        self.ring.get(self.front)
    }

    /// The event `k` places behind the front, if the lane holds that many.
    #[inline]
    fn behind_front(&self, k: usize) -> Option<&Scheduled> {
        if k >= self.len {
            return None;
        }
        self.ring.get(self.index(k))
    }

    #[inline]
    fn push_back(&mut self, item: Scheduled) {
        if self.len == self.ring.len() {
            self.grow(item);
        }
        let at = self.index(self.len);
        if let Some(slot) = self.ring.get_mut(at) {
            *slot = item;
            self.len += 1;
        }
    }

    #[inline]
    fn pop_front(&mut self) -> Option<Scheduled> {
        if self.len == 0 {
            return None;
        }
        let item = *self.ring.get(self.front)?;
        self.front = self.index(1);
        self.len -= 1;
        Some(item)
    }

    /// Doubles the ring (to [`LANE_FIRST_CAPACITY`] at first), its events moved to the front of
    /// the new one in order; `filler` fills the slots past them.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, filler: Scheduled) {
        let capacity = self.ring.len().saturating_mul(2).max(LANE_FIRST_CAPACITY);
        let mut ring = Vec::with_capacity(capacity);
        ring.extend((0..self.len).filter_map(|k| self.ring.get(self.index(k)).copied()));
        ring.resize(capacity, filler);
        self.ring = ring;
        self.front = 0;
    }

    /// Drops every event, keeping the storage.
    fn clear(&mut self) {
        self.front = 0;
        self.len = 0;
    }
}

/// The order key of an event as one number: time above sequence. Comparing two is one wide
/// comparison instead of two dependent ones.
#[inline]
fn wide_key(at: u64, sequence: u64) -> u128 {
    (u128::from(at) << 64) | u128::from(sequence)
}

/// The key of "no event" (an empty lane, an empty heap): above every event's key, as sequence
/// numbers stay below `u64::MAX` (one is taken per event).
const NO_KEY: u128 = u128::MAX;

/// Where [`EventQueue::keys`] keeps the heap's top.
const HEAP: usize = LANES;

/// Pending events of one world.
pub(crate) struct EventQueue {
    heap: QuadHeap,
    /// Each lane's times never decrease from front to back.
    lanes: [Lane; LANES],
    /// The time of each lane's last event, and 0 for an empty lane (which takes any event): an
    /// event fits a lane whose tail is not after it.
    tails: [u64; LANES],
    /// The key of each lane's front event, then of the heap's top ([`NO_KEY`] when empty): the
    /// earliest event is the smallest of these, found without touching the lanes themselves.
    keys: [u128; LANES + 1],
    /// Where the earliest event is (an index into `keys`) and its key, kept up to date by every
    /// push and pop (the run loop asks for the next time after every event).
    head: (usize, u128),
    next_sequence: u64,
}

impl Default for EventQueue {
    fn default() -> Self {
        Self {
            heap: QuadHeap::default(),
            lanes: Default::default(),
            tails: [0; LANES],
            keys: [NO_KEY; LANES + 1],
            head: (HEAP, NO_KEY),
            next_sequence: 0,
        }
    }
}

impl EventQueue {
    /// Schedules `event` at absolute time `at`; returns its sequence number.
    ///
    /// Inlined: an event passed by pointer (written field by field) is read back as wider loads,
    /// a store-forwarding stall.
    #[inline(always)]
    pub(crate) fn push(&mut self, at: Duration, event: Event) -> u64 {
        // Past u64::MAX nanoseconds (about 584 years) is "never": saturate instead of wrapping.
        self.push_nanos(u64::try_from(at.as_nanos()).unwrap_or(u64::MAX), event)
    }

    /// Schedules `event` at `at` nanoseconds since the start of the run; returns its sequence
    /// number.
    #[inline(always)]
    pub(crate) fn push_nanos(&mut self, at: u64, event: Event) -> u64 {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let scheduled = Scheduled {
            at,
            sequence,
            event,
        };
        let key = wide_key(at, sequence);
        let went = match self.lane_for(at) {
            Some(index) => {
                if let Some(lane) = self.lanes.get_mut(index) {
                    lane.push_back(scheduled);
                }
                if let Some(tail) = self.tails.get_mut(index) {
                    *tail = at;
                }
                index
            }
            None => {
                self.heap.push(scheduled);
                HEAP
            }
        };
        // The new event is the front of its lane when the lane was empty, and the heap's top
        // when it is earlier than the top (keys only grow along a lane: a later push to a
        // non-empty lane never changes its front).
        if let Some(front) = self.keys.get_mut(went)
            && key < *front
        {
            *front = key;
        }
        // A later event can only become the head where it went.
        if key < self.head.1 {
            self.head = (went, key);
        }
        sequence
    }

    /// The lane an event at `at` can join (its tail is not after `at`), if any: the one whose
    /// tail is the latest that fits (it keeps the most room for later pushes); an empty lane
    /// (tail 0) only when no other fits. Which lane an event joins changes nothing a run does.
    #[inline(always)]
    fn lane_for(&self, at: u64) -> Option<usize> {
        // A fitting lane scores its tail plus one, one that does not fit 0 (as does a tail of
        // `u64::MAX`, which then goes to the heap: still in order).
        let mut best = 0;
        let mut best_score = 0u64;
        for (index, &tail) in self.tails.iter().enumerate() {
            let score = if tail <= at { tail.wrapping_add(1) } else { 0 };
            if score > best_score {
                best = index;
                best_score = score;
            }
        }
        (best_score > 0).then_some(best)
    }

    /// Finds where the earliest event is (after a pop): the smallest key.
    #[inline(always)]
    fn find_head(&self) -> (usize, u128) {
        // `HEAP` is the last index of `keys` (an index the compiler checks).
        let mut head = (HEAP, self.keys[HEAP]);
        for (index, &key) in self.keys.iter().take(LANES).enumerate() {
            if key < head.1 {
                head = (index, key);
            }
        }
        head
    }

    /// Removes and returns the earliest event (the tests' view of [`pop_nanos`](Self::pop_nanos)).
    #[cfg(test)]
    pub(crate) fn pop(&mut self) -> Option<(Duration, u64, Event)> {
        self.pop_nanos()
            .map(|(at, sequence, event)| (Duration::from_nanos(at), sequence, event))
    }

    /// Removes and returns the earliest event: (time in nanoseconds since the start of the run,
    /// sequence number, event).
    ///
    /// Inlined: returned through memory from a call, the event (written field by field) is read
    /// back as wider loads by the run loop, a store-forwarding stall on every event.
    #[inline]
    pub(crate) fn pop_nanos(&mut self) -> Option<(u64, u64, Event)> {
        let (source, key) = self.head;
        if key == NO_KEY {
            return None;
        }
        let (scheduled, next) = if source == HEAP {
            let top = self.heap.pop()?;
            (top, self.heap.peek_key())
        } else {
            let lane = self.lanes.get_mut(source)?;
            let front = lane.pop_front()?;
            let next = lane.front().map(Scheduled::key);
            if next.is_none()
                && let Some(tail) = self.tails.get_mut(source)
            {
                *tail = 0;
            }
            (front, next)
        };
        if let Some(slot) = self.keys.get_mut(source) {
            *slot = next.map_or(NO_KEY, |(at, sequence)| wide_key(at, sequence));
        }
        self.head = self.find_head();
        Some((scheduled.at, scheduled.sequence, scheduled.event))
    }

    /// A guess at the event that comes `k` pops after the next one: the event `k` places
    /// behind the earliest in the lane that holds it (`None` when the earliest is in the heap,
    /// or its lane is shorter). Right while no other lane or the heap interleaves, which is
    /// the case of a run of same-latency deliveries; meant only for prefetching.
    #[inline]
    pub(crate) fn upcoming(&self, k: usize) -> Option<&Event> {
        let (source, _) = self.head;
        self.lanes
            .get(source)?
            .behind_front(k)
            .map(|scheduled| &scheduled.event)
    }

    /// When the earliest event is due, without removing it.
    pub(crate) fn next_at(&self) -> Option<Duration> {
        self.next_at_nanos().map(Duration::from_nanos)
    }

    /// When the earliest pending event is due, in nanoseconds since the start of the run.
    #[inline]
    pub(crate) fn next_at_nanos(&self) -> Option<u64> {
        #[allow(clippy::cast_possible_truncation)]
        (self.head.1 != NO_KEY).then_some((self.head.1 >> 64) as u64)
    }

    /// Makes this queue what `EventQueue::default()` makes (no event, sequence numbers from 0),
    /// keeping only the memory of its heap and lanes (a world reused for the next seed).
    pub(crate) fn recycle(&mut self) {
        self.clear();
        let heap = std::mem::take(&mut self.heap);
        let lanes = std::mem::take(&mut self.lanes);
        *self = Self {
            heap,
            lanes,
            ..Self::default()
        };
    }

    /// Drops every pending event.
    pub(crate) fn clear(&mut self) {
        self.heap.clear();
        for lane in &mut self.lanes {
            lane.clear();
        }
        self.tails = [0; LANES];
        self.keys = [NO_KEY; LANES + 1];
        self.head = (HEAP, NO_KEY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::event::StorageEvent;
    use std::collections::BinaryHeap;

    #[test]
    fn test_quad_heap_pops_in_key_order() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut heap = QuadHeap::default();
        let mut reference = BinaryHeap::new();
        assert!(heap.pop().is_none());
        for sequence in 0..20_000u64 {
            let at = next() % 500;
            heap.push(Scheduled {
                at,
                sequence,
                event: Event::Storage(StorageEvent::Complete { op: sequence }),
            });
            reference.push(std::cmp::Reverse((at, sequence)));
            // Pop now and then, so the heap's size goes up and down (every sift depth).
            if next() % 4 == 0 {
                let popped = heap.pop().map(|s| s.key());
                assert_eq!(popped, reference.pop().map(|r| r.0));
            }
        }
        while let Some(std::cmp::Reverse(expected)) = reference.pop() {
            let popped = heap.pop().unwrap();
            assert_eq!(popped.key(), expected);
            let Event::Storage(StorageEvent::Complete { op }) = popped.event else {
                panic!("an event came out with another's key");
            };
            assert_eq!(op, expected.1, "the event travels with its key");
        }
        assert!(heap.pop().is_none());
    }

    /// The order a plain heap on (time, sequence) gives, which the queue must reproduce.
    fn check_against_heap(pushes: &[(u64, bool)]) -> Vec<u64> {
        let mut queue = EventQueue::default();
        let mut heap = BinaryHeap::new();
        let mut popped = Vec::new();
        let mut now = 0u64;
        for (i, &(delay, pop_after)) in pushes.iter().enumerate() {
            let at = now + delay;
            let sequence = queue.push(
                Duration::from_nanos(at),
                Event::Storage(StorageEvent::Complete { op: i as u64 }),
            );
            heap.push(std::cmp::Reverse((at, sequence)));
            if pop_after {
                let (at, sequence, _) = queue.pop().unwrap();
                let std::cmp::Reverse(expected) = heap.pop().unwrap();
                assert_eq!((at.as_nanos() as u64, sequence), expected);
                assert!(at.as_nanos() as u64 >= now, "time never goes back");
                now = at.as_nanos() as u64;
                popped.push(sequence);
            }
        }
        while let Some((at, sequence, _)) = queue.pop() {
            let std::cmp::Reverse(expected) = heap.pop().unwrap();
            assert_eq!((at.as_nanos() as u64, sequence), expected);
            popped.push(sequence);
        }
        assert!(heap.is_empty());
        popped
    }

    #[test]
    fn test_queue_order_equals_a_heap_on_time_and_sequence() {
        // A small xorshift keeps the test free of extra dependencies; many shapes of delays:
        // fixed (all in lanes), few values (several lanes), wide random (mostly the heap).
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for shape in 0..6u64 {
            let pushes: Vec<(u64, bool)> = (0..5_000)
                .map(|_| {
                    let r = next();
                    let delay = match shape {
                        0 => 1_000,
                        1 => 1 + r % 7,
                        2 => r % 3,
                        3 => r % 1_000_000,
                        4 => [0, 5, 5, 10, 1_000][(r % 5) as usize],
                        _ => (r % 2) * (r >> 40),
                    };
                    (delay, next() % 3 != 0)
                })
                .collect();
            let popped = check_against_heap(&pushes);
            assert_eq!(popped.len(), pushes.len());
        }
    }

    #[test]
    fn test_upcoming_names_the_events_behind_the_earliest_in_its_lane() {
        let op = |event: Option<&Event>| match event {
            Some(Event::Storage(StorageEvent::Complete { op })) => Some(*op),
            _ => None,
        };
        let mut queue = EventQueue::default();
        assert_eq!(op(queue.upcoming(0)), None);
        for i in 0..4u64 {
            queue.push_nanos(10 + i, Event::Storage(StorageEvent::Complete { op: i }));
        }
        assert_eq!(op(queue.upcoming(0)), Some(0));
        assert_eq!(op(queue.upcoming(2)), Some(2));
        assert_eq!(op(queue.upcoming(4)), None, "past the lane's end");
        let _ = queue.pop_nanos();
        assert_eq!(op(queue.upcoming(1)), Some(2));
        // An earlier event starts another lane and becomes the earliest: the guess follows it.
        queue.push_nanos(1, Event::Storage(StorageEvent::Complete { op: 9 }));
        assert_eq!(op(queue.upcoming(0)), Some(9));
        assert_eq!(op(queue.upcoming(1)), None);
        assert_eq!(queue.pop_nanos().map(|(at, _, _)| at), Some(1));
        assert_eq!(op(queue.upcoming(0)), Some(1));
    }

    #[test]
    fn test_a_lane_is_a_fifo_that_wraps_grows_and_empties() {
        let mut lane = Lane::default();
        let item = |sequence| Scheduled {
            at: sequence,
            sequence,
            event: Event::Storage(StorageEvent::Complete { op: sequence }),
        };
        assert!(lane.is_empty() && lane.pop_front().is_none() && lane.front().is_none());
        // Two pushes per pop: the lane never empties, grows through every power of two from 16
        // to 8,192, and its back wraps round to the start of the ring before each growth.
        let (mut pushed, mut popped) = (0u64, 0u64);
        for _ in 0..5_000 {
            lane.push_back(item(pushed));
            lane.push_back(item(pushed + 1));
            pushed += 2;
            assert_eq!(lane.front().map(|s| s.sequence), Some(popped));
            let behind = (pushed - popped - 1) as usize;
            assert_eq!(
                lane.behind_front(behind).map(|s| s.sequence),
                Some(pushed - 1)
            );
            assert!(lane.behind_front(behind + 1).is_none());
            assert_eq!(lane.pop_front().map(|s| s.sequence), Some(popped));
            popped += 1;
            assert!(lane.ring.len() <= 2 * (pushed - popped) as usize + LANE_FIRST_CAPACITY);
        }
        // A lane of steady length (5,000 events) wraps without growing: one in, one out, three
        // times round the ring.
        let capacity = lane.ring.len();
        for _ in 0..3 * capacity {
            lane.push_back(item(pushed));
            pushed += 1;
            assert_eq!(lane.pop_front().map(|s| s.sequence), Some(popped));
            popped += 1;
        }
        assert_eq!(lane.ring.len(), capacity);
        while let Some(next) = lane.pop_front() {
            assert_eq!(next.sequence, popped);
            popped += 1;
        }
        assert_eq!(popped, pushed);
        assert!(lane.is_empty() && lane.front().is_none() && lane.behind_front(0).is_none());
        lane.push_back(item(7));
        lane.push_back(item(8));
        lane.clear();
        assert!(lane.pop_front().is_none() && lane.behind_front(0).is_none());
        // After a clear the lane starts again at its front, with its storage kept.
        lane.push_back(item(9));
        assert_eq!(lane.pop_front().map(|s| s.sequence), Some(9));
        assert_eq!(lane.ring.len(), capacity);
    }

    #[test]
    fn test_times_zero_and_never_keep_the_heap_order() {
        // Time 0 (an empty lane's tail reads 0 too) and `u64::MAX` ("never", which no lane's
        // score can express): mixed with ordinary times, pops interleaved with pushes.
        let mut queue = EventQueue::default();
        let mut reference = BinaryHeap::new();
        let times = [
            0u64,
            u64::MAX,
            5,
            0,
            u64::MAX,
            5,
            3,
            u64::MAX - 1,
            0,
            7,
            u64::MAX,
        ];
        for round in 0..50u64 {
            for (i, &at) in times.iter().enumerate() {
                let at = if at < 100 { at + round } else { at };
                let sequence =
                    queue.push_nanos(at, Event::Storage(StorageEvent::Complete { op: i as u64 }));
                reference.push(std::cmp::Reverse((at, sequence)));
                if i % 3 == 0 {
                    let (at, sequence, _) = queue.pop_nanos().unwrap();
                    assert_eq!(Some((at, sequence)), reference.pop().map(|r| r.0));
                }
            }
        }
        while let Some(std::cmp::Reverse(expected)) = reference.pop() {
            assert_eq!(queue.next_at_nanos(), Some(expected.0));
            let (at, sequence, _) = queue.pop_nanos().unwrap();
            assert_eq!((at, sequence), expected);
        }
        assert_eq!(queue.next_at_nanos(), None);
        assert!(queue.pop_nanos().is_none());
        // Emptied, recycled and cleared queues start again from nothing.
        queue.push_nanos(9, Event::Storage(StorageEvent::Complete { op: 0 }));
        queue.recycle();
        assert!(queue.pop_nanos().is_none());
        assert_eq!(
            queue.push_nanos(4, Event::Storage(StorageEvent::Complete { op: 0 })),
            0
        );
        assert_eq!(queue.next_at_nanos(), Some(4));
    }

    #[test]
    fn test_next_at_sees_the_earliest_of_lanes_and_heap() {
        let mut queue = EventQueue::default();
        let event = |op| Event::Storage(StorageEvent::Complete { op });
        assert_eq!(queue.next_at(), None);
        for at in [50u64, 40, 30, 20, 10, 5] {
            queue.push(Duration::from_nanos(at), event(at));
        }
        assert_eq!(queue.next_at_nanos(), Some(5));
        let order: Vec<u64> = std::iter::from_fn(|| queue.pop())
            .map(|(at, _, _)| at.as_nanos() as u64)
            .collect();
        assert_eq!(order, vec![5, 10, 20, 30, 40, 50]);
        queue.push(Duration::from_nanos(7), event(0));
        queue.clear();
        assert!(queue.pop().is_none());
    }
}
