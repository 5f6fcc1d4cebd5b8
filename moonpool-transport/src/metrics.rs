//! Metrics: exact counters and sizes, each size next to its bound.
//!
//! Floor 1: the snapshot types and the transport-wide counters that every floor above counts
//! into (`TransportCounters`); nothing here knows who counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use moonpool_core::NetworkAddress;

/// Transport-wide counters: connections count deliveries, notices and drops here, the dispatch
/// floor counts admissions and local deliveries; [`TransportMetrics`] reads them all.
#[derive(Default)]
pub(crate) struct TransportCounters {
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) local_deliveries: AtomicU64,
    /// Bumped by every connection's reader at every delivery: a slot per reader, no
    /// read-modify-write per packet.
    pub(crate) remote_deliveries: ShardedCounter,
    pub(crate) endpoint_not_found_sent: AtomicU64,
    pub(crate) endpoint_not_found_received: AtomicU64,
    pub(crate) unknown_tokens_dropped: AtomicU64,
    pub(crate) replies_dropped: AtomicU64,
    pub(crate) outbox_overflows: AtomicU64,
}

/// An exact counter with many writers that each count often (a connection's reader each): a
/// writer takes a [`CounterSlot`] of its own, which it bumps with a load and a store (it is the
/// slot's only writer), not an atomic read-modify-write; [`get`](Self::get) sums the live slots
/// and what the slots already dropped counted. Its lock is taken only when a writer comes or goes
/// and when the counter is read.
#[derive(Default)]
pub(crate) struct ShardedCounter {
    shards: Mutex<Shards>,
}

#[derive(Default)]
struct Shards {
    /// The counts of the slots dropped.
    retired: u64,
    live: Vec<Arc<AtomicU64>>,
}

impl ShardedCounter {
    fn shards(&self) -> std::sync::MutexGuard<'_, Shards> {
        self.shards.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for one writer; its count stays in the total after it is dropped.
    pub(crate) fn slot(&self) -> CounterSlot<'_> {
        let slot = Arc::new(AtomicU64::new(0));
        self.shards().live.push(Arc::clone(&slot));
        CounterSlot { owner: self, slot }
    }

    /// The total: every slot's count, live or dropped.
    pub(crate) fn get(&self) -> u64 {
        let shards = self.shards();
        shards.live.iter().fold(shards.retired, |total, slot| {
            total.wrapping_add(slot.load(Ordering::Relaxed))
        })
    }
}

/// One writer's share of a [`ShardedCounter`] (not shared: bumping it takes `&mut self`).
pub(crate) struct CounterSlot<'a> {
    owner: &'a ShardedCounter,
    slot: Arc<AtomicU64>,
}

impl CounterSlot<'_> {
    /// Counts one more.
    pub(crate) fn bump(&mut self) {
        let count = self.slot.load(Ordering::Relaxed);
        self.slot.store(count.wrapping_add(1), Ordering::Relaxed);
    }
}

impl Drop for CounterSlot<'_> {
    fn drop(&mut self) {
        let mut shards = self.owner.shards();
        shards.retired = shards
            .retired
            .wrapping_add(self.slot.load(Ordering::Relaxed));
        shards.live.retain(|live| !Arc::ptr_eq(live, &self.slot));
    }
}

/// A snapshot of one [`Peer`](crate::Peer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerMetrics {
    /// The remote address.
    pub address: NetworkAddress,
    /// A connection is up and its handshake completed.
    pub connected: bool,
    /// Connection attempts started.
    pub connect_attempts: u64,
    /// Connections whose handshake completed.
    pub connections_established: u64,
    /// Failed connection attempts plus failed connections.
    pub connection_failures: u64,
    /// Reliable packets held (queued, or written and not yet released).
    pub reliable_queue_len: usize,
    /// Bound on `reliable_queue_len`.
    pub reliable_queue_max: usize,
    /// Unreliable packets queued.
    pub unreliable_queue_len: usize,
    /// Bound on `unreliable_queue_len`.
    pub unreliable_queue_max: usize,
    /// Bytes held by both queues.
    pub queued_bytes: usize,
    /// Bound on `queued_bytes`.
    pub queued_bytes_max: usize,
    /// Reliable packets written for the first time.
    pub reliable_sent: u64,
    /// Reliable packets written again after a reconnection.
    pub reliable_resent: u64,
    /// Reliable packets released by an acknowledgement.
    pub reliable_acked: u64,
    /// Reliable packets released by their owner.
    pub reliable_cancelled: u64,
    /// Unreliable packets written.
    pub unreliable_sent: u64,
    /// Unreliable packets dropped unwritten because a connection failed.
    pub unreliable_dropped: u64,
    /// Data packets received on this peer's connections.
    pub frames_received: u64,
    /// Bytes of packets handed to connections for writing.
    pub bytes_written: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Connection-monitor pings queued.
    pub pings_sent: u64,
    /// Connection-monitor pongs received.
    pub pongs_received: u64,
    /// Connections closed because nothing arrived within `ping_timeout`.
    pub ping_timeouts: u64,
    /// Connections closed on malformed bytes (checksum mismatch, bad length).
    pub wire_errors: u64,
    /// Connections closed on a protocol violation.
    pub protocol_errors: u64,
}

/// A snapshot of a whole transport: sizes next to their bounds, counters, and every peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportMetrics {
    /// Registered endpoints (well-known ones excluded).
    pub endpoints: usize,
    /// Bound on `endpoints`.
    pub endpoints_max: usize,
    /// Registered well-known endpoints (the built-in Ping and EndpointNotFound included).
    pub well_known_endpoints: usize,
    /// Replies awaited.
    pub pending_replies: usize,
    /// Bound on `pending_replies`.
    pub pending_replies_max: usize,
    /// Outbound peers.
    pub peers: usize,
    /// Bound on `peers`.
    pub peers_max: usize,
    /// Accepted connections currently open.
    pub incoming_connections: usize,
    /// Bound on `incoming_connections`.
    pub incoming_connections_max: usize,
    /// Endpoints remembered as permanently failed by the failure monitor.
    pub failed_endpoints: usize,
    /// Bound on `failed_endpoints`.
    pub failed_endpoints_max: usize,
    /// Connections accepted since start.
    pub connections_accepted: u64,
    /// Connections refused because `incoming_connections_max` was reached.
    pub connections_refused: u64,
    /// Packets delivered to a local endpoint without the network.
    pub local_deliveries: u64,
    /// Packets delivered to an endpoint from the network.
    pub remote_deliveries: u64,
    /// EndpointNotFound notices sent for unknown tokens.
    pub endpoint_not_found_sent: u64,
    /// EndpointNotFound notices received (or raised locally).
    pub endpoint_not_found_received: u64,
    /// Packets for unknown tokens dropped without a notice (late replies).
    pub unknown_tokens_dropped: u64,
    /// Replies that could not be sent because their connection was gone.
    pub replies_dropped: u64,
    /// Accepted connections closed because their outbox overflowed.
    pub outbox_overflows: u64,
    /// Every outbound peer.
    pub peer_metrics: Vec<PeerMetrics>,
}

impl TransportMetrics {
    /// Checks every size against its bound; the error names the first one exceeded.
    pub fn check_bounds(&self) -> Result<(), String> {
        let pairs = [
            ("endpoints", self.endpoints, self.endpoints_max),
            (
                "pending_replies",
                self.pending_replies,
                self.pending_replies_max,
            ),
            ("peers", self.peers, self.peers_max),
            (
                "incoming_connections",
                self.incoming_connections,
                self.incoming_connections_max,
            ),
            (
                "failed_endpoints",
                self.failed_endpoints,
                self.failed_endpoints_max,
            ),
        ];
        for (name, size, bound) in pairs {
            if size > bound {
                return Err(format!("{name} is {size}, above its bound {bound}"));
            }
        }
        for peer in &self.peer_metrics {
            for (name, size, bound) in [
                (
                    "reliable queue",
                    peer.reliable_queue_len,
                    peer.reliable_queue_max,
                ),
                (
                    "unreliable queue",
                    peer.unreliable_queue_len,
                    peer.unreliable_queue_max,
                ),
                ("queued bytes", peer.queued_bytes, peer.queued_bytes_max),
            ] {
                if size > bound {
                    return Err(format!(
                        "peer {}: {name} is {size}, above its bound {bound}",
                        peer.address
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_sharded_counter_counts_live_slots_and_keeps_dropped_ones() {
        let counter = ShardedCounter::default();
        assert_eq!(counter.get(), 0);
        let mut first = counter.slot();
        let mut second = counter.slot();
        first.bump();
        first.bump();
        second.bump();
        assert_eq!(counter.get(), 3);
        drop(first);
        assert_eq!(counter.get(), 3);
        second.bump();
        drop(second);
        assert_eq!(counter.get(), 4);
        assert!(counter.shards().live.is_empty());
        let mut third = counter.slot();
        third.bump();
        assert_eq!(counter.get(), 5);
    }
}
