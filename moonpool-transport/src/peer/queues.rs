//! A peer's outbound queues: one FIFO for both kinds of packets (so they are written in the
//! order they were queued), the reliable packets held until released, the unowned ones in flight
//! on the current connection (released by acknowledgements), and the bounds.
//!
//! Plain data under the peer's lock: no locking, no connection, no tasks here. The peer checks
//! its [link](super::link) (closed, epoch) before calling in.

use std::collections::VecDeque;

use moonpool_core::NetworkAddress;

use super::counters::PeerCounters;
use super::packet::{Fate, PacketId};
use crate::config::TransportConfig;
use crate::error::TransportError;
use crate::ordered_map::OrderedMap;
use crate::protocol::ProtocolError;

enum Outgoing {
    Reliable(u64),
    Unreliable { frame: Vec<u8>, fate: Option<Fate> },
}

struct ReliablePacket {
    frame: Vec<u8>,
    owned: bool,
    /// Written at least once (a later write is a resend).
    written: bool,
    /// Its id is in the FIFO (waiting to be written).
    queued: bool,
    fate: Option<Fate>,
}

/// The bounds of a peer's queues.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    pub(super) reliable_max: usize,
    pub(super) unreliable_max: usize,
    pub(super) bytes_max: usize,
}

impl Bounds {
    pub(super) fn new(config: &TransportConfig) -> Self {
        Self {
            reliable_max: config.peer_reliable_queue_max,
            unreliable_max: config.peer_unreliable_queue_max,
            bytes_max: config.peer_queue_bytes_max,
        }
    }
}

/// The packets a peer holds.
#[derive(Default)]
pub(super) struct Queues {
    fifo: VecDeque<Outgoing>,
    /// Cancelled reliable packets whose id is still in the FIFO.
    tombstones: usize,
    reliable: OrderedMap<u64, ReliablePacket>,
    /// Unowned reliable packets written on the current connection: (ordinal, id).
    in_flight: VecDeque<(u64, u64)>,
    unreliable_len: usize,
    queued_bytes: usize,
    /// Data packets written on the current connection.
    frames_written: u64,
}

/// Appends reliable packet `id` to `batch` (none: the sender wrote it itself), recorded as
/// written (or written again) on connection `epoch`. Takes the queues' fields apart, so that the
/// packet may still be in the map or not yet in it.
fn write_reliable(
    packet: &mut ReliablePacket,
    id: u64,
    epoch: u64,
    batch: Option<&mut Vec<u8>>,
    frames_written: &mut u64,
    counters: &mut PeerCounters,
    in_flight: &mut VecDeque<(u64, u64)>,
) {
    if let Some(batch) = batch {
        batch.extend_from_slice(&packet.frame);
    }
    packet.queued = false;
    *frames_written += 1;
    if packet.written {
        counters.reliable_resent += 1;
    } else {
        packet.written = true;
        counters.reliable_sent += 1;
    }
    if let Some(fate) = &packet.fate {
        fate.written(epoch);
    }
    if !packet.owned {
        in_flight.push_back((*frames_written, id));
    }
}

impl Queues {
    /// Room for a packet of `len` bytes of the given kind; the error names the bound reached.
    pub(super) fn check_room(
        &self,
        address: NetworkAddress,
        bounds: &Bounds,
        len: usize,
        reliable: bool,
    ) -> Result<(), TransportError> {
        let full = |queue, bound, unit| {
            Err(TransportError::QueueFull {
                address,
                queue,
                bound,
                unit,
            })
        };
        if reliable && self.reliable.len() >= bounds.reliable_max {
            return full("reliable", bounds.reliable_max, "packets");
        }
        if !reliable && self.unreliable_len >= bounds.unreliable_max {
            return full("unreliable", bounds.unreliable_max, "packets");
        }
        if self.queued_bytes + len > bounds.bytes_max {
            return full("bytes", bounds.bytes_max, "bytes");
        }
        // Buggify: a queue near its bound (three quarters full) is refused as full, as a real
        // system under memory pressure pushes back early; the caller sees `QueueFull`.
        let (count, count_max, kind) = if reliable {
            (self.reliable.len(), bounds.reliable_max, "reliable")
        } else {
            (self.unreliable_len, bounds.unreliable_max, "unreliable")
        };
        let near = count.saturating_mul(4) >= count_max.saturating_mul(3)
            || (self.queued_bytes + len).saturating_mul(4) >= bounds.bytes_max.saturating_mul(3);
        if near && moonpool_core::buggify!() {
            return full(kind, count_max, "packets");
        }
        Ok(())
    }

    /// Queues a reliable packet (room already checked). `owned` packets stay until cancelled.
    pub(super) fn push_reliable(
        &mut self,
        id: PacketId,
        frame: Vec<u8>,
        owned: bool,
        fate: Option<Fate>,
    ) {
        self.queued_bytes += frame.len();
        self.reliable.insert(
            id.0,
            ReliablePacket {
                frame,
                owned,
                written: false,
                queued: true,
                fate,
            },
        );
        self.fifo.push_back(Outgoing::Reliable(id.0));
    }

    /// Records reliable packet `id` as written on connection `epoch` (by its sender, straight
    /// to the stream) without going through the FIFO (room already checked, nothing queued).
    pub(super) fn push_written(
        &mut self,
        epoch: u64,
        id: PacketId,
        frame: Vec<u8>,
        owned: bool,
        fate: Option<Fate>,
        counters: &mut PeerCounters,
    ) {
        self.queued_bytes += frame.len();
        counters.bytes_written += frame.len() as u64;
        let mut packet = ReliablePacket {
            frame,
            owned,
            written: false,
            queued: false,
            fate,
        };
        write_reliable(
            &mut packet,
            id.0,
            epoch,
            None,
            &mut self.frames_written,
            counters,
            &mut self.in_flight,
        );
        self.reliable.insert(id.0, packet);
    }

    /// Queues an unreliable packet (room already checked).
    pub(super) fn push_unreliable(&mut self, frame: Vec<u8>, fate: Option<Fate>) {
        self.queued_bytes += frame.len();
        self.unreliable_len += 1;
        self.fifo.push_back(Outgoing::Unreliable { frame, fate });
    }

    /// Releases an owned reliable packet (its reply arrived, or nobody waits any more); gives
    /// back its frame's buffer.
    pub(super) fn cancel(&mut self, id: PacketId, counters: &mut PeerCounters) -> Option<Vec<u8>> {
        let packet = self.reliable.remove(&id.0)?;
        self.queued_bytes -= packet.frame.len();
        counters.reliable_cancelled += 1;
        if packet.queued {
            // Its id is still in the FIFO; the writer skips it. Compact when tombstones dominate.
            self.tombstones += 1;
            if self.tombstones > 64 && self.tombstones * 2 > self.fifo.len() {
                let Self { fifo, reliable, .. } = self;
                fifo.retain(|entry| match entry {
                    Outgoing::Reliable(id) => reliable.contains_key(id),
                    Outgoing::Unreliable { .. } => true,
                });
                self.tombstones = 0;
            }
        }
        Some(packet.frame)
    }

    /// True when something waits to be written.
    pub(super) fn has_work(&self) -> bool {
        self.fifo.len() > self.tombstones
    }

    /// A new connection: nothing written on it yet.
    pub(super) fn connection_opened(&mut self) {
        self.frames_written = 0;
        self.in_flight.clear();
    }

    /// Moves up to `max_bytes` of queued frames into `batch`, marking them written on `epoch`.
    /// Returns the number of frames taken.
    pub(super) fn take_batch(
        &mut self,
        epoch: u64,
        batch: &mut Vec<u8>,
        max_bytes: usize,
        counters: &mut PeerCounters,
    ) -> usize {
        let mut taken = 0;
        let start = batch.len();
        while batch.len() < max_bytes {
            let Some(entry) = self.fifo.pop_front() else {
                break;
            };
            match entry {
                Outgoing::Reliable(id) => {
                    let Some(packet) = self.reliable.get_mut(&id) else {
                        // Cancelled while queued.
                        self.tombstones -= 1;
                        continue;
                    };
                    write_reliable(
                        packet,
                        id,
                        epoch,
                        Some(&mut *batch),
                        &mut self.frames_written,
                        counters,
                        &mut self.in_flight,
                    );
                }
                Outgoing::Unreliable { frame, fate } => {
                    batch.extend_from_slice(&frame);
                    self.frames_written += 1;
                    self.unreliable_len -= 1;
                    self.queued_bytes -= frame.len();
                    counters.unreliable_sent += 1;
                    if let Some(fate) = fate {
                        fate.written(epoch);
                    }
                }
            }
            taken += 1;
        }
        counters.bytes_written += (batch.len() - start) as u64;
        taken
    }

    /// The remote acknowledged `count` packets of the current connection: releases the unowned
    /// reliable packets among them.
    pub(super) fn acknowledge(
        &mut self,
        count: u64,
        counters: &mut PeerCounters,
    ) -> Result<(), ProtocolError> {
        if count > self.frames_written {
            return Err(ProtocolError::AckBeyondSent {
                acked: count,
                sent: self.frames_written,
            });
        }
        while let Some(&(ordinal, id)) = self.in_flight.front() {
            if ordinal > count {
                break;
            }
            self.in_flight.pop_front();
            if let Some(packet) = self.reliable.remove(&id) {
                self.queued_bytes -= packet.frame.len();
                counters.reliable_acked += 1;
            }
        }
        Ok(())
    }

    /// A connection attempt or a connection failed: drops unreliable packets (their fates become
    /// dropped) and requeues every reliable packet still held, in order.
    pub(super) fn connection_failed(&mut self, counters: &mut PeerCounters) {
        for entry in self.fifo.drain(..) {
            if let Outgoing::Unreliable { frame, fate } = entry {
                self.queued_bytes -= frame.len();
                counters.unreliable_dropped += 1;
                if let Some(fate) = fate {
                    fate.set(Fate::DROPPED);
                }
            }
        }
        self.unreliable_len = 0;
        self.tombstones = 0;
        self.in_flight.clear();
        for (id, packet) in self.reliable.iter_mut() {
            packet.queued = true;
            self.fifo.push_back(Outgoing::Reliable(*id));
        }
    }

    /// The peer is closed: every packet is dropped (the fates of unreliable ones say so).
    pub(super) fn clear(&mut self) {
        for entry in self.fifo.drain(..) {
            if let Outgoing::Unreliable {
                fate: Some(fate), ..
            } = entry
            {
                fate.set(Fate::DROPPED);
            }
        }
        self.reliable.clear();
        self.in_flight.clear();
        self.unreliable_len = 0;
        self.queued_bytes = 0;
        self.tombstones = 0;
    }

    /// Reliable packets held.
    pub(super) fn reliable_len(&self) -> usize {
        self.reliable.len()
    }

    /// Unreliable packets queued.
    pub(super) fn unreliable_len(&self) -> usize {
        self.unreliable_len
    }

    /// Bytes held by both queues.
    pub(super) fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Recomputes the counters from the queues themselves; an error names the first one that
    /// drifted.
    pub(super) fn check_invariants(
        &self,
        address: NetworkAddress,
        bounds: &Bounds,
    ) -> Result<(), String> {
        let unreliable = self
            .fifo
            .iter()
            .filter(|e| matches!(e, Outgoing::Unreliable { .. }))
            .count();
        if unreliable != self.unreliable_len {
            return Err(format!(
                "peer {}: unreliable_len {} but {unreliable} unreliable packets queued",
                address, self.unreliable_len
            ));
        }
        let bytes: usize = self.reliable.values().map(|p| p.frame.len()).sum::<usize>()
            + self
                .fifo
                .iter()
                .map(|e| match e {
                    Outgoing::Unreliable { frame, .. } => frame.len(),
                    Outgoing::Reliable(_) => 0,
                })
                .sum::<usize>();
        if bytes != self.queued_bytes {
            return Err(format!(
                "peer {}: queued_bytes {} but the queues hold {bytes}",
                address, self.queued_bytes
            ));
        }
        let stale = self
            .fifo
            .iter()
            .filter(|e| matches!(e, Outgoing::Reliable(id) if !self.reliable.contains_key(id)))
            .count();
        if stale != self.tombstones {
            return Err(format!(
                "peer {}: {} tombstones recorded but {stale} stale ids in the FIFO",
                address, self.tombstones
            ));
        }
        if self.reliable.len() > bounds.reliable_max
            || self.unreliable_len > bounds.unreliable_max
            || self.queued_bytes > bounds.bytes_max
        {
            return Err(format!("peer {}: a queue exceeds its bound", address));
        }
        Ok(())
    }
}
