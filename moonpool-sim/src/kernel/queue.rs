//! The event queue: events ordered by (time, sequence number).
//!
//! The sequence number is a counter assigned at scheduling, so two events due at the same instant
//! are applied in the order they were scheduled, on every run.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

use super::event::Event;

struct Scheduled {
    /// Nanoseconds since the start of the run (8 bytes instead of a 16-byte `Duration`: the heap
    /// moves these around on every push and pop).
    at: u64,
    sequence: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.sequence == other.sequence
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
        other
            .at
            .cmp(&self.at)
            .then_with(|| other.sequence.cmp(&self.sequence))
    }
}

/// Pending events of one world.
#[derive(Default)]
pub(crate) struct EventQueue {
    heap: BinaryHeap<Scheduled>,
    next_sequence: u64,
}

impl EventQueue {
    /// Schedules `event` at absolute time `at`; returns its sequence number.
    pub(crate) fn push(&mut self, at: Duration, event: Event) -> u64 {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        // Past u64::MAX nanoseconds (about 584 years) is "never": saturate instead of wrapping.
        let at = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX);
        self.heap.push(Scheduled {
            at,
            sequence,
            event,
        });
        sequence
    }

    /// Removes and returns the earliest event.
    pub(crate) fn pop(&mut self) -> Option<(Duration, u64, Event)> {
        self.heap
            .pop()
            .map(|s| (Duration::from_nanos(s.at), s.sequence, s.event))
    }

    /// When the earliest event is due, without removing it.
    pub(crate) fn next_at(&self) -> Option<Duration> {
        self.heap.peek().map(|s| Duration::from_nanos(s.at))
    }

    /// When the earliest pending event is due, in nanoseconds since the start of the run.
    #[inline]
    pub(crate) fn next_at_nanos(&self) -> Option<u64> {
        self.heap.peek().map(|s| s.at)
    }

    /// Drops every pending event.
    pub(crate) fn clear(&mut self) {
        self.heap.clear();
    }
}
