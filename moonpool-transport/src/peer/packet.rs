//! The vocabulary of a queued packet, shared by the peer's queues, the connection that writes
//! them and the requests that wait on them: its [`Fate`], its [`PacketId`], and how it is
//! flushed ([`Flush`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What became of a packet, shared between the queue and whoever waits on the packet's outcome.
///
/// `0` while queued, the connection epoch once written, [`Fate::DROPPED`] if dropped unwritten.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fate(Arc<AtomicU64>);

impl Fate {
    pub(crate) const QUEUED: u64 = 0;
    pub(crate) const DROPPED: u64 = u64::MAX;

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    pub(super) fn set(&self, value: u64) {
        self.0.store(value, Ordering::Release);
    }

    /// Marks a write on `epoch` unless the packet was already written (a resend keeps its first
    /// epoch: it was already possibly delivered).
    pub(super) fn written(&self, epoch: u64) {
        let _ = self
            .0
            .compare_exchange(Self::QUEUED, epoch, Ordering::AcqRel, Ordering::Acquire);
    }

    /// True once the packet has been written to some connection.
    pub(crate) fn was_written(&self) -> bool {
        let value = self.get();
        value != Self::QUEUED && value != Self::DROPPED
    }
}

/// How a queued packet gets written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flush {
    /// From the sender's task, at once: lowest latency, one write per packet (used when the
    /// sender has nothing else in flight, as a caller making one request at a time).
    Now,
    /// By the connection's task, batched with whatever else is queued by then (bursts).
    Batched,
}

/// Identifies a reliable packet inside its peer, for cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct PacketId(pub(super) u64);
