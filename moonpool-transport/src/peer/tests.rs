//! The peer's queues and state machine, driven by hand (no connection, no tasks).
#![allow(clippy::unwrap_used)]

use super::*;
use crate::wire::encode_frame;

fn peer_with(reliable_max: usize, unreliable_max: usize) -> Peer {
    let config = TransportConfig {
        peer_reliable_queue_max: reliable_max,
        peer_unreliable_queue_max: unreliable_max,
        ..TransportConfig::default()
    };
    Peer::new("10.0.0.9:1".parse().unwrap(), &config)
}

fn frame(n: u8) -> Vec<u8> {
    encode_frame(UID::new(1, u64::from(n)), &[n; 10], 1 << 20).unwrap()
}

#[test]
fn test_bounds_are_typed_errors() {
    let peer = peer_with(2, 1);
    peer.enqueue_reliable(frame(1), false, None, Flush::Batched)
        .unwrap();
    peer.enqueue_reliable(frame(2), true, None, Flush::Batched)
        .unwrap();
    let error = peer
        .enqueue_reliable(frame(3), false, None, Flush::Batched)
        .unwrap_err();
    assert!(matches!(
        error,
        TransportError::QueueFull {
            queue: "reliable",
            bound: 2,
            ..
        }
    ));
    peer.enqueue_unreliable(frame(4), None, Flush::Batched)
        .unwrap();
    assert!(matches!(
        peer.enqueue_unreliable(frame(5), None, Flush::Batched),
        Err(TransportError::QueueFull {
            queue: "unreliable",
            ..
        })
    ));
    let metrics = peer.metrics();
    assert_eq!(metrics.reliable_queue_len, 2);
    assert_eq!(metrics.unreliable_queue_len, 1);
    assert_eq!(metrics.queued_bytes, 3 * frame(0).len());
    peer.check_invariants().unwrap();
}

#[test]
fn test_reliable_resent_unreliable_dropped_acks_release() {
    let peer = peer_with(100, 100);
    let unowned = peer
        .enqueue_reliable(frame(1), false, None, Flush::Batched)
        .unwrap();
    let fate = Fate::default();
    let owned = peer
        .enqueue_reliable(frame(2), true, Some(fate.clone()), Flush::Batched)
        .unwrap();
    let dropped_fate = Fate::default();
    peer.enqueue_unreliable(frame(3), Some(dropped_fate.clone()), Flush::Batched)
        .unwrap();
    let _ = unowned;
    // First connection: write everything, then fail before any ack.
    let epoch = peer.connection_opened();
    let mut batch = Vec::new();
    assert_eq!(peer.take_batch(epoch, &mut batch, 1 << 20), 3);
    assert_eq!(batch.len(), 3 * frame(0).len());
    assert_eq!(fate.get(), epoch);
    assert!(dropped_fate.was_written());
    peer.connection_failed();
    // Unreliable packets queued while disconnected are dropped at the next failure.
    let late_fate = Fate::default();
    peer.enqueue_unreliable(frame(4), Some(late_fate.clone()), Flush::Batched)
        .unwrap();
    peer.connection_failed();
    assert_eq!(late_fate.get(), Fate::DROPPED);
    // Second connection: both reliable packets are written again, in order.
    let epoch = peer.connection_opened();
    let mut batch = Vec::new();
    assert_eq!(peer.take_batch(epoch, &mut batch, 1 << 20), 2);
    assert_eq!(&batch[..frame(1).len()], frame(1).as_slice());
    let metrics = peer.metrics();
    assert_eq!(metrics.reliable_resent, 2);
    assert_eq!(metrics.unreliable_dropped, 1);
    assert_eq!(fate.get(), 1, "a resend keeps the first write's epoch");
    // The ack releases the unowned packet only; cancelling releases the owned one.
    peer.acknowledge(epoch, 2).unwrap();
    assert_eq!(peer.metrics().reliable_queue_len, 1);
    assert!(matches!(
        peer.acknowledge(epoch, 3),
        Err(ProtocolError::AckBeyondSent { acked: 3, sent: 2 })
    ));
    peer.cancel(owned);
    let metrics = peer.metrics();
    assert_eq!(metrics.reliable_queue_len, 0);
    assert_eq!(metrics.queued_bytes, 0);
    assert_eq!(metrics.reliable_acked, 1);
    assert_eq!(metrics.reliable_cancelled, 1);
    peer.check_invariants().unwrap();
}

#[test]
fn test_cancel_after_requeue_leaves_a_tombstone() {
    // Found by simulation (seed 8): a packet written, requeued by a failure, then cancelled
    // is in the FIFO again, so its cancellation must leave a tombstone.
    let peer = peer_with(10, 10);
    let id = peer
        .enqueue_reliable(frame(1), true, None, Flush::Batched)
        .unwrap();
    let epoch = peer.connection_opened();
    let mut batch = Vec::new();
    assert_eq!(peer.take_batch(epoch, &mut batch, 1 << 20), 1);
    peer.connection_failed();
    peer.cancel(id);
    peer.check_invariants().unwrap();
    let epoch = peer.connection_opened();
    let mut batch = Vec::new();
    assert_eq!(peer.take_batch(epoch, &mut batch, 1 << 20), 0);
    assert!(batch.is_empty());
    peer.check_invariants().unwrap();
}

#[test]
fn test_cancel_unwritten_leaves_tombstones_that_are_skipped_and_compacted() {
    let peer = peer_with(1000, 1000);
    let ids: Vec<PacketId> = (0..200)
        .map(|i| {
            peer.enqueue_reliable(frame(i as u8), true, None, Flush::Batched)
                .unwrap()
        })
        .collect();
    for id in &ids[..150] {
        peer.cancel(*id);
    }
    peer.check_invariants().unwrap();
    let epoch = peer.connection_opened();
    let mut batch = Vec::new();
    assert_eq!(peer.take_batch(epoch, &mut batch, 1 << 20), 50);
    peer.check_invariants().unwrap();
    assert!(!peer.lock().queues.has_work());
}

#[test]
fn test_reconnect_delay_grows_and_is_capped() {
    let config = TransportConfig::default();
    let peer = peer_with(1, 1);
    peer.connection_failed();
    let first = peer.reconnect_delay(&config, 0.5);
    assert_eq!(first, config.reconnect_delay_initial);
    for _ in 0..50 {
        peer.connection_failed();
    }
    let capped = peer.reconnect_delay(&config, 0.999_999);
    assert!(
        capped
            <= config
                .reconnect_delay_max
                .mul_f64(1.0 + config.reconnect_jitter)
    );
    assert!(capped >= config.reconnect_delay_max);
    peer.handshake_done(UID::new(1, 1));
    assert_eq!(
        peer.reconnect_delay(&config, 0.5),
        config.reconnect_delay_initial
    );
}
