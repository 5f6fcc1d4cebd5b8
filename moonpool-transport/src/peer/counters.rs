//! A peer's exact counters: those kept under the peer's lock ([`PeerCounters`]), and the two the
//! reader of its connection bumps at every read ([`ReadCounters`], atomics).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters kept under the peer's lock.
#[derive(Debug, Default, Clone)]
pub(super) struct PeerCounters {
    pub(super) connect_attempts: u64,
    pub(super) connections_established: u64,
    pub(super) connection_failures: u64,
    pub(super) reliable_sent: u64,
    pub(super) reliable_resent: u64,
    pub(super) reliable_acked: u64,
    pub(super) reliable_cancelled: u64,
    pub(super) unreliable_sent: u64,
    pub(super) unreliable_dropped: u64,
    pub(super) bytes_written: u64,
    pub(super) pings_sent: u64,
    pub(super) pongs_received: u64,
    pub(super) ping_timeouts: u64,
    pub(super) wire_errors: u64,
    pub(super) protocol_errors: u64,
}

/// Bytes and packets read on the peer's connections.
#[derive(Debug, Default)]
pub(super) struct ReadCounters {
    bytes_read: AtomicU64,
    frames_received: AtomicU64,
}

impl ReadCounters {
    /// Counts one read. Only the reader of the peer's current connection writes these
    /// (connections run one at a time, in the keeper's task), so plain stores suffice.
    pub(super) fn record(&self, bytes_read: u64, frames: u64) {
        let bytes = self.bytes_read.load(Ordering::Relaxed);
        self.bytes_read.store(bytes + bytes_read, Ordering::Relaxed);
        let count = self.frames_received.load(Ordering::Relaxed);
        self.frames_received
            .store(count + frames, Ordering::Relaxed);
    }

    pub(super) fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    pub(super) fn frames_received(&self) -> u64 {
        self.frames_received.load(Ordering::Relaxed)
    }
}
