//! The event queue: events ordered by (time, sequence number).
//!
//! The sequence number is a counter assigned at scheduling, so two events due at the same instant
//! are applied in the order they were scheduled, on every run.
//!
//! Most events are scheduled in time order: a fixed latency puts every delivery after the
//! previous one, a loop of equal sleeps puts every deadline after the last. Such an event goes
//! into a *lane*, a FIFO whose times never decrease (its sequence numbers always increase), where
//! pushing and popping are O(1); only an event earlier than the tail of every lane goes into the
//! binary heap. The earliest event is the smallest of the lanes' heads and the heap's top, so the
//! order is exactly the heap's order on (time, sequence): which structure holds an event changes
//! nothing a run does.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use super::event::Event;

/// FIFO lanes beside the heap. A few lanes catch interleaved in-order streams (several sleep
/// lengths, latencies of a few links); more would make every pop compare more heads.
const LANES: usize = 4;

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

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    // Reversed: `BinaryHeap` is a max-heap and we want the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.key().cmp(&self.key())
    }
}

/// Where the earliest event is.
#[derive(Clone, Copy)]
enum Head {
    Lane(usize),
    Heap,
}

/// Pending events of one world.
#[derive(Default)]
pub(crate) struct EventQueue {
    heap: BinaryHeap<Scheduled>,
    /// Each lane's times never decrease from front to back.
    lanes: [VecDeque<Scheduled>; LANES],
    /// Where the earliest event is and its key, kept up to date by every push and pop (the run
    /// loop asks for the next time after every event).
    head: Option<(Head, (u64, u64))>,
    next_sequence: u64,
}

impl EventQueue {
    /// Schedules `event` at absolute time `at`; returns its sequence number.
    pub(crate) fn push(&mut self, at: Duration, event: Event) -> u64 {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        // Past u64::MAX nanoseconds (about 584 years) is "never": saturate instead of wrapping.
        let at = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX);
        let scheduled = Scheduled {
            at,
            sequence,
            event,
        };
        let key = scheduled.key();
        let went = match self.lane_for(at) {
            Some(index) => {
                if let Some(lane) = self.lanes.get_mut(index) {
                    lane.push_back(scheduled);
                }
                Head::Lane(index)
            }
            None => {
                self.heap.push(scheduled);
                Head::Heap
            }
        };
        // A later event can only become the head where it went: at the front of an empty lane,
        // or at the top of the heap.
        if self.head.is_none_or(|(_, head)| key < head) {
            self.head = Some((went, key));
        }
        sequence
    }

    /// The lane an event at `at` can join (its tail is not after `at`), if any: the one whose
    /// tail is the latest that fits (it keeps the most room for later pushes), else an empty one.
    #[inline]
    fn lane_for(&self, at: u64) -> Option<usize> {
        let mut best: Option<(usize, u64)> = None;
        let mut empty = None;
        for (index, lane) in self.lanes.iter().enumerate() {
            match lane.back() {
                Some(tail) if tail.at <= at && best.is_none_or(|(_, t)| tail.at > t) => {
                    best = Some((index, tail.at));
                }
                Some(_) => {}
                None if empty.is_none() => empty = Some(index),
                None => {}
            }
        }
        best.map(|(index, _)| index).or(empty)
    }

    /// Finds where the earliest event is (after a pop).
    fn find_head(&self) -> Option<(Head, (u64, u64))> {
        let mut head = self.heap.peek().map(|s| (Head::Heap, s.key()));
        for (index, lane) in self.lanes.iter().enumerate() {
            if let Some(front) = lane.front()
                && head.is_none_or(|(_, key)| front.key() < key)
            {
                head = Some((Head::Lane(index), front.key()));
            }
        }
        head
    }

    /// Removes and returns the earliest event.
    pub(crate) fn pop(&mut self) -> Option<(Duration, u64, Event)> {
        let scheduled = match self.head?.0 {
            Head::Heap => self.heap.pop(),
            Head::Lane(index) => self.lanes.get_mut(index).and_then(VecDeque::pop_front),
        }?;
        self.head = self.find_head();
        Some((
            Duration::from_nanos(scheduled.at),
            scheduled.sequence,
            scheduled.event,
        ))
    }

    /// When the earliest event is due, without removing it.
    pub(crate) fn next_at(&self) -> Option<Duration> {
        self.next_at_nanos().map(Duration::from_nanos)
    }

    /// When the earliest pending event is due, in nanoseconds since the start of the run.
    #[inline]
    pub(crate) fn next_at_nanos(&self) -> Option<u64> {
        self.head.map(|(_, (at, _))| at)
    }

    /// Drops every pending event.
    pub(crate) fn clear(&mut self) {
        self.heap.clear();
        for lane in &mut self.lanes {
            lane.clear();
        }
        self.head = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::event::StorageEvent;

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
