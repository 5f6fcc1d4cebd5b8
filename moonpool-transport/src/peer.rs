//! [`Peer`]: the queues and the connection keeper for one remote address.
//!
//! A peer owns one outbound connection at a time and two kinds of queued packets:
//!
//! - **Reliable** packets stay in the peer until they are *released*: a packet without an owner
//!   (a [`send_reliable`](crate::NetTransport::send_reliable)) is released when the receiving
//!   transport acknowledges it; a packet with an owner (a
//!   [`get_reply`](crate::RequestClient::get_reply) request) is released when its owner cancels it
//!   (reply received, or future dropped). After a reconnection every reliable packet still held is
//!   written again, in the order it was first queued, so reliable delivery is at least once.
//! - **Unreliable** packets are written at most once; when a connection attempt or a connection
//!   fails, the ones still queued are dropped.
//!
//! Packets are written in the order they were queued (one FIFO for both kinds). A keeper task per
//! peer connects when there is something to send, runs the connection, and after a failure waits
//! an exponentially growing, jittered delay before the next attempt. Nothing has to be driven by
//! hand.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use moonpool_core::{NetworkAddress, UID};

use crate::config::TransportConfig;
use crate::connection::ConnectionShared;
use crate::error::TransportError;
use crate::metrics::PeerMetrics;
use crate::protocol::ProtocolError;
use crate::signal::Signal;

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

    fn set(&self, value: u64) {
        self.0.store(value, Ordering::Release);
    }

    /// Marks a write on `epoch` unless the packet was already written (a resend keeps its first
    /// epoch: it was already possibly delivered).
    fn written(&self, epoch: u64) {
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

/// A reliable packet's frame and fate, given back when it could not be written at once.
pub(crate) type Unwritten = (Vec<u8>, Option<Fate>);

/// Identifies a reliable packet inside its peer, for cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct PacketId(u64);

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

#[derive(Debug, Default, Clone)]
struct Counters {
    connect_attempts: u64,
    connections_established: u64,
    connection_failures: u64,
    reliable_sent: u64,
    reliable_resent: u64,
    reliable_acked: u64,
    reliable_cancelled: u64,
    unreliable_sent: u64,
    unreliable_dropped: u64,
    bytes_written: u64,
    pings_sent: u64,
    pongs_received: u64,
    ping_timeouts: u64,
    wire_errors: u64,
    protocol_errors: u64,
}

struct PeerState {
    fifo: VecDeque<Outgoing>,
    /// Cancelled reliable packets whose id is still in the FIFO.
    tombstones: usize,
    reliable: BTreeMap<u64, ReliablePacket>,
    /// Unowned reliable packets written on the current connection: (ordinal, id).
    in_flight: VecDeque<(u64, u64)>,
    unreliable_len: usize,
    queued_bytes: usize,
    /// Incremented when a connection is established; fates record it.
    epoch: u64,
    /// A connection task is running.
    connection_open: bool,
    /// The current connection completed its handshake.
    connected: bool,
    /// Data packets written on the current connection.
    frames_written: u64,
    remote_instance: Option<UID>,
    closed: bool,
    consecutive_failures: u32,
    counters: Counters,
}

/// Appends reliable packet `id` to `batch`, recorded as written (or written again) on
/// connection `epoch`. Takes the peer state's fields apart, so that the packet may still be in
/// the map or not yet in it.
fn write_reliable(
    packet: &mut ReliablePacket,
    id: u64,
    epoch: u64,
    batch: &mut Vec<u8>,
    frames_written: &mut u64,
    counters: &mut Counters,
    in_flight: &mut VecDeque<(u64, u64)>,
) {
    batch.extend_from_slice(&packet.frame);
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

/// One remote address: bounded queues of outgoing packets and the connection that drains them.
///
/// Obtained from [`NetTransport::peer`](crate::NetTransport::peer); its keeper task is spawned by
/// the transport. Sending through a `Peer` takes a destination token and raw bytes; typed sends
/// go through the [`NetTransport`](crate::NetTransport).
pub struct Peer {
    address: NetworkAddress,
    state: Mutex<PeerState>,
    /// Wakes the keeper (no connection) or the connection's writer (connected).
    signal: Arc<Signal>,
    /// The running connection, for writing directly from the sender's task.
    current: Mutex<Option<Arc<ConnectionShared>>>,
    reliable_max: usize,
    unreliable_max: usize,
    bytes_max: usize,
    max_packet_size: usize,
    bytes_read: AtomicU64,
    frames_received: AtomicU64,
    /// Ids of reliable packets (reserved before queueing, so the owner can record it first).
    next_id: AtomicU64,
}

/// What a failed connection left behind, for the transport to resolve waiters.
pub(crate) struct FailureReport {
    /// The epoch of the connection that failed (0 if none was established).
    pub(crate) epoch: u64,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("address", &self.address)
            .field("metrics", &self.metrics())
            .finish()
    }
}

impl Peer {
    pub(crate) fn new(address: NetworkAddress, config: &TransportConfig) -> Self {
        Self {
            address,
            state: Mutex::new(PeerState {
                fifo: VecDeque::new(),
                tombstones: 0,
                reliable: BTreeMap::new(),
                in_flight: VecDeque::new(),
                unreliable_len: 0,
                queued_bytes: 0,
                epoch: 0,
                connection_open: false,
                connected: false,
                frames_written: 0,
                remote_instance: None,
                closed: false,
                consecutive_failures: 0,
                counters: Counters::default(),
            }),
            signal: Arc::new(Signal::default()),
            current: Mutex::new(None),
            reliable_max: config.peer_reliable_queue_max,
            unreliable_max: config.peer_unreliable_queue_max,
            bytes_max: config.peer_queue_bytes_max,
            max_packet_size: config.max_packet_size,
            bytes_read: AtomicU64::new(0),
            frames_received: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PeerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The remote address.
    pub fn address(&self) -> NetworkAddress {
        self.address
    }

    pub(crate) fn signal(&self) -> Arc<Signal> {
        Arc::clone(&self.signal)
    }

    /// Something was queued: with [`Flush::Now`] and a connection up, write it from the caller's
    /// task (the connection's task takes over if the stream cannot take it all); otherwise wake
    /// the connection's writer (or the keeper), which writes everything queued in one batch.
    fn kick(&self, flush: Flush) {
        if flush == Flush::Now {
            // Flushed under the lock (no reference count traffic): the connection's writer
            // never takes this lock, and `attach` / `connection_failed` only wait for it.
            let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(conn) = current.as_ref() {
                conn.flush_direct(Some(self));
                return;
            }
        }
        self.signal.notify();
    }

    /// Installs the connection that now drains this peer.
    pub(crate) fn attach(&self, conn: Arc<ConnectionShared>) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(conn);
    }

    /// Queues `payload` for `token`, reliably: it is written again after every reconnection until
    /// the remote transport acknowledges it.
    pub fn send_reliable(&self, token: UID, payload: &[u8]) -> Result<(), TransportError> {
        let frame = crate::wire::encode_frame(token, payload, self.max_packet_size)?;
        self.enqueue_reliable(frame, false, None, Flush::Batched)
            .map(|_| ())
    }

    /// Queues `payload` for `token`, unreliably: written at most once, dropped if the connection
    /// fails first.
    pub fn send_unreliable(&self, token: UID, payload: &[u8]) -> Result<(), TransportError> {
        let frame = crate::wire::encode_frame(token, payload, self.max_packet_size)?;
        self.enqueue_unreliable(frame, None, Flush::Batched)
    }

    fn check_room(
        &self,
        state: &PeerState,
        len: usize,
        reliable: bool,
    ) -> Result<(), TransportError> {
        let full = |queue, bound, unit| {
            Err(TransportError::QueueFull {
                address: self.address,
                queue,
                bound,
                unit,
            })
        };
        if state.closed {
            return Err(TransportError::Shutdown);
        }
        if reliable && state.reliable.len() >= self.reliable_max {
            return full("reliable", self.reliable_max, "packets");
        }
        if !reliable && state.unreliable_len >= self.unreliable_max {
            return full("unreliable", self.unreliable_max, "packets");
        }
        if state.queued_bytes + len > self.bytes_max {
            return full("bytes", self.bytes_max, "bytes");
        }
        Ok(())
    }

    /// Reserves the id of a reliable packet queued later with
    /// [`enqueue_reliable_as`](Self::enqueue_reliable_as).
    pub(crate) fn reserve_id(&self) -> PacketId {
        PacketId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Queues an encoded frame reliably. `owned` packets stay until [`cancel`](Self::cancel).
    pub(crate) fn enqueue_reliable(
        &self,
        frame: Vec<u8>,
        owned: bool,
        fate: Option<Fate>,
        flush: Flush,
    ) -> Result<PacketId, TransportError> {
        let id = self.reserve_id();
        self.enqueue_reliable_as(id, frame, owned, fate, flush)?;
        Ok(id)
    }

    /// Queues an encoded frame reliably under a reserved id.
    pub(crate) fn enqueue_reliable_as(
        &self,
        id: PacketId,
        frame: Vec<u8>,
        owned: bool,
        fate: Option<Fate>,
        flush: Flush,
    ) -> Result<(), TransportError> {
        let (frame, fate) = match flush {
            Flush::Now => match self.write_reliable_now(id, frame, owned, fate)? {
                None => return Ok(()),
                Some(unwritten) => unwritten,
            },
            Flush::Batched => (frame, fate),
        };
        {
            let mut state = self.lock();
            self.check_room(&state, frame.len(), true)?;
            state.queued_bytes += frame.len();
            state.reliable.insert(
                id.0,
                ReliablePacket {
                    frame,
                    owned,
                    written: false,
                    queued: true,
                    fate,
                },
            );
            state.fifo.push_back(Outgoing::Reliable(id.0));
        }
        self.kick(flush);
        Ok(())
    }

    /// A reliable packet written at once by the sender's task, without going through the FIFO:
    /// possible when nothing else waits to be written and the connection's writer is idle.
    /// `Ok(None)` once written (or handed to the connection's task to finish writing); the
    /// frame and fate back when that is not possible now (the caller queues them instead).
    fn write_reliable_now(
        &self,
        id: PacketId,
        frame: Vec<u8>,
        owned: bool,
        fate: Option<Fate>,
    ) -> Result<Option<Unwritten>, TransportError> {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        match current.as_ref() {
            Some(conn) => conn.write_reliable_now(self, id, frame, owned, fate),
            None => Ok(Some((frame, fate))),
        }
    }

    /// Under the connection's writer lock (`batch` is its empty write buffer): records the
    /// reliable packet `id` as written on connection `epoch` and appends its frame to `batch`,
    /// if the peer is open, on that connection, and has nothing queued (which would have to go
    /// first). Otherwise gives the frame and fate back.
    pub(crate) fn admit_written(
        &self,
        epoch: u64,
        id: PacketId,
        frame: Vec<u8>,
        owned: bool,
        fate: Option<Fate>,
        batch: &mut Vec<u8>,
    ) -> Result<Option<Unwritten>, TransportError> {
        let mut state = self.lock();
        if state.closed || state.epoch != epoch || Self::has_work(&state) {
            return Ok(Some((frame, fate)));
        }
        self.check_room(&state, frame.len(), true)?;
        state.queued_bytes += frame.len();
        state.counters.bytes_written += frame.len() as u64;
        let mut packet = ReliablePacket {
            frame,
            owned,
            written: false,
            queued: false,
            fate,
        };
        let state = &mut *state;
        write_reliable(
            &mut packet,
            id.0,
            epoch,
            batch,
            &mut state.frames_written,
            &mut state.counters,
            &mut state.in_flight,
        );
        state.reliable.insert(id.0, packet);
        Ok(None)
    }

    /// Queues an encoded frame unreliably.
    pub(crate) fn enqueue_unreliable(
        &self,
        frame: Vec<u8>,
        fate: Option<Fate>,
        flush: Flush,
    ) -> Result<(), TransportError> {
        {
            let mut state = self.lock();
            self.check_room(&state, frame.len(), false)?;
            state.queued_bytes += frame.len();
            state.unreliable_len += 1;
            state.fifo.push_back(Outgoing::Unreliable { frame, fate });
        }
        self.kick(flush);
        Ok(())
    }

    /// Releases an owned reliable packet (its reply arrived, or nobody waits any more).
    pub(crate) fn cancel(&self, id: PacketId) {
        let mut state = self.lock();
        let Some(packet) = state.reliable.remove(&id.0) else {
            return;
        };
        state.queued_bytes -= packet.frame.len();
        state.counters.reliable_cancelled += 1;
        if packet.queued {
            // Its id is still in the FIFO; the writer skips it. Compact when tombstones dominate.
            state.tombstones += 1;
            if state.tombstones > 64 && state.tombstones * 2 > state.fifo.len() {
                let PeerState { fifo, reliable, .. } = &mut *state;
                fifo.retain(|entry| match entry {
                    Outgoing::Reliable(id) => reliable.contains_key(id),
                    Outgoing::Unreliable { .. } => true,
                });
                state.tombstones = 0;
            }
        }
    }

    /// True when something waits to be written.
    fn has_work(state: &PeerState) -> bool {
        state.fifo.len() > state.tombstones
    }

    /// Waits until there is something to send (or the peer is closed: returns false).
    pub(crate) async fn wait_for_work(&self) -> bool {
        std::future::poll_fn(|cx| {
            self.signal.register(cx);
            self.signal.take();
            let state = self.lock();
            if state.closed {
                std::task::Poll::Ready(false)
            } else if Self::has_work(&state) {
                std::task::Poll::Ready(true)
            } else {
                std::task::Poll::Pending
            }
        })
        .await
    }

    /// A connection was established at the TCP level: starts a new epoch.
    pub(crate) fn connection_opened(&self) -> u64 {
        let mut state = self.lock();
        state.epoch += 1;
        state.connection_open = true;
        state.connected = false;
        state.frames_written = 0;
        state.in_flight.clear();
        state.epoch
    }

    /// The remote's Hello arrived. Returns the previous instance if it changed.
    pub(crate) fn handshake_done(&self, instance: UID) -> Option<UID> {
        let mut state = self.lock();
        state.connected = true;
        state.consecutive_failures = 0;
        state.counters.connections_established += 1;
        let previous = state.remote_instance.replace(instance);
        previous.filter(|p| *p != instance)
    }

    pub(crate) fn note_connect_attempt(&self) {
        self.lock().counters.connect_attempts += 1;
    }

    /// Moves up to `max_bytes` of queued frames into `batch`, marking them written on `epoch`.
    /// Returns the number of frames taken.
    #[cfg(test)]
    pub(crate) fn take_batch(&self, epoch: u64, batch: &mut Vec<u8>, max_bytes: usize) -> usize {
        self.take_batch_open(epoch, batch, max_bytes).unwrap_or(0)
    }

    /// Moves up to `max_bytes` of queued frames into `batch`, marking them written on `epoch`.
    /// Returns the number of frames taken, or `None` when the peer is closed (one lock for
    /// both).
    pub(crate) fn take_batch_open(
        &self,
        epoch: u64,
        batch: &mut Vec<u8>,
        max_bytes: usize,
    ) -> Option<usize> {
        let mut state = self.lock();
        let state = &mut *state;
        if state.closed {
            return None;
        }
        if state.epoch != epoch {
            return Some(0);
        }
        let mut taken = 0;
        let start = batch.len();
        while batch.len() < max_bytes {
            let Some(entry) = state.fifo.pop_front() else {
                break;
            };
            match entry {
                Outgoing::Reliable(id) => {
                    let Some(packet) = state.reliable.get_mut(&id) else {
                        // Cancelled while queued.
                        state.tombstones -= 1;
                        continue;
                    };
                    write_reliable(
                        packet,
                        id,
                        epoch,
                        batch,
                        &mut state.frames_written,
                        &mut state.counters,
                        &mut state.in_flight,
                    );
                }
                Outgoing::Unreliable { frame, fate } => {
                    batch.extend_from_slice(&frame);
                    state.frames_written += 1;
                    state.unreliable_len -= 1;
                    state.queued_bytes -= frame.len();
                    state.counters.unreliable_sent += 1;
                    if let Some(fate) = fate {
                        fate.written(epoch);
                    }
                }
            }
            taken += 1;
        }
        state.counters.bytes_written += (batch.len() - start) as u64;
        Some(taken)
    }

    /// The remote acknowledged `count` packets of connection `epoch`: releases the unowned
    /// reliable packets among them.
    pub(crate) fn acknowledge(&self, epoch: u64, count: u64) -> Result<(), ProtocolError> {
        let mut state = self.lock();
        if state.epoch != epoch {
            return Ok(());
        }
        if count > state.frames_written {
            return Err(ProtocolError::AckBeyondSent {
                acked: count,
                sent: state.frames_written,
            });
        }
        while let Some(&(ordinal, id)) = state.in_flight.front() {
            if ordinal > count {
                break;
            }
            state.in_flight.pop_front();
            if let Some(packet) = state.reliable.remove(&id) {
                state.queued_bytes -= packet.frame.len();
                state.counters.reliable_acked += 1;
            }
        }
        Ok(())
    }

    /// A connection attempt or a connection failed: drops unreliable packets (their fates become
    /// dropped) and requeues every reliable packet still held, in order.
    pub(crate) fn connection_failed(&self) -> FailureReport {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut state = self.lock();
        let state = &mut *state;
        let epoch = if state.connection_open {
            state.epoch
        } else {
            0
        };
        state.connection_open = false;
        state.connected = false;
        state.counters.connection_failures += 1;
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        for entry in state.fifo.drain(..) {
            if let Outgoing::Unreliable { frame, fate } = entry {
                state.queued_bytes -= frame.len();
                state.counters.unreliable_dropped += 1;
                if let Some(fate) = fate {
                    fate.set(Fate::DROPPED);
                }
            }
        }
        state.unreliable_len = 0;
        state.tombstones = 0;
        state.in_flight.clear();
        for (id, packet) in &mut state.reliable {
            packet.queued = true;
            state.fifo.push_back(Outgoing::Reliable(*id));
        }
        FailureReport { epoch }
    }

    /// The delay before the next connection attempt: exponential in the number of consecutive
    /// failures, capped, times a jitter factor drawn from `random_ratio` (in `[0, 1)`).
    pub(crate) fn reconnect_delay(&self, config: &TransportConfig, random_ratio: f64) -> Duration {
        let failures = self.lock().consecutive_failures.saturating_sub(1);
        let growth = config
            .reconnect_delay_growth
            .powi(i32::try_from(failures.min(64)).unwrap_or(64));
        let base = config
            .reconnect_delay_initial
            .mul_f64(growth.min(1e6))
            .min(config.reconnect_delay_max);
        let factor = 1.0 - config.reconnect_jitter + 2.0 * config.reconnect_jitter * random_ratio;
        base.mul_f64(factor)
    }

    /// Stops the peer: the keeper exits, queued packets are dropped.
    pub(crate) fn close(&self) {
        {
            let mut state = self.lock();
            state.closed = true;
            for entry in state.fifo.drain(..) {
                if let Outgoing::Unreliable {
                    fate: Some(fate), ..
                } = entry
                {
                    fate.set(Fate::DROPPED);
                }
            }
            state.reliable.clear();
            state.in_flight.clear();
            state.unreliable_len = 0;
            state.queued_bytes = 0;
            state.tombstones = 0;
        }
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.signal.notify();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// True while a connection is established and its handshake completed.
    pub fn is_connected(&self) -> bool {
        self.lock().connected
    }

    /// The instance id the remote announced in its last Hello.
    pub fn remote_instance(&self) -> Option<UID> {
        self.lock().remote_instance
    }

    /// Counts bytes and packets read (atomics: the reader does this at every read).
    ///
    /// Only the reader of the peer's current connection writes these (connections run one at a
    /// time, in the keeper's task), so plain stores suffice.
    pub(crate) fn record_read(&self, bytes_read: u64, frames: u64) {
        let bytes = self.bytes_read.load(Ordering::Relaxed);
        self.bytes_read.store(bytes + bytes_read, Ordering::Relaxed);
        let count = self.frames_received.load(Ordering::Relaxed);
        self.frames_received
            .store(count + frames, Ordering::Relaxed);
    }

    pub(crate) fn record_ping(&self) {
        self.lock().counters.pings_sent += 1;
    }

    pub(crate) fn record_pong(&self) {
        self.lock().counters.pongs_received += 1;
    }

    pub(crate) fn record_ping_timeout(&self) {
        self.lock().counters.ping_timeouts += 1;
    }

    pub(crate) fn record_wire_error(&self) {
        self.lock().counters.wire_errors += 1;
    }

    pub(crate) fn record_protocol_error(&self) {
        self.lock().counters.protocol_errors += 1;
    }

    /// A snapshot of the peer's counters and queue sizes.
    pub fn metrics(&self) -> PeerMetrics {
        let state = self.lock();
        let c = &state.counters;
        PeerMetrics {
            address: self.address,
            connected: state.connected,
            connect_attempts: c.connect_attempts,
            connections_established: c.connections_established,
            connection_failures: c.connection_failures,
            reliable_queue_len: state.reliable.len(),
            reliable_queue_max: self.reliable_max,
            unreliable_queue_len: state.unreliable_len,
            unreliable_queue_max: self.unreliable_max,
            queued_bytes: state.queued_bytes,
            queued_bytes_max: self.bytes_max,
            reliable_sent: c.reliable_sent,
            reliable_resent: c.reliable_resent,
            reliable_acked: c.reliable_acked,
            reliable_cancelled: c.reliable_cancelled,
            unreliable_sent: c.unreliable_sent,
            unreliable_dropped: c.unreliable_dropped,
            frames_received: self.frames_received.load(Ordering::Relaxed),
            bytes_written: c.bytes_written,
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            pings_sent: c.pings_sent,
            pongs_received: c.pongs_received,
            ping_timeouts: c.ping_timeouts,
            wire_errors: c.wire_errors,
            protocol_errors: c.protocol_errors,
        }
    }

    /// Recomputes the queue counters from the queues themselves; an error names the first one that
    /// drifted. The transport's tests call this after every run.
    pub fn check_invariants(&self) -> Result<(), String> {
        let state = self.lock();
        let unreliable = state
            .fifo
            .iter()
            .filter(|e| matches!(e, Outgoing::Unreliable { .. }))
            .count();
        if unreliable != state.unreliable_len {
            return Err(format!(
                "peer {}: unreliable_len {} but {unreliable} unreliable packets queued",
                self.address, state.unreliable_len
            ));
        }
        let bytes: usize = state
            .reliable
            .values()
            .map(|p| p.frame.len())
            .sum::<usize>()
            + state
                .fifo
                .iter()
                .map(|e| match e {
                    Outgoing::Unreliable { frame, .. } => frame.len(),
                    Outgoing::Reliable(_) => 0,
                })
                .sum::<usize>();
        if bytes != state.queued_bytes {
            return Err(format!(
                "peer {}: queued_bytes {} but the queues hold {bytes}",
                self.address, state.queued_bytes
            ));
        }
        let stale = state
            .fifo
            .iter()
            .filter(|e| matches!(e, Outgoing::Reliable(id) if !state.reliable.contains_key(id)))
            .count();
        if stale != state.tombstones {
            return Err(format!(
                "peer {}: {} tombstones recorded but {stale} stale ids in the FIFO",
                self.address, state.tombstones
            ));
        }
        if state.reliable.len() > self.reliable_max
            || state.unreliable_len > self.unreliable_max
            || state.queued_bytes > self.bytes_max
        {
            return Err(format!("peer {}: a queue exceeds its bound", self.address));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
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
        assert!(!Peer::has_work(&peer.lock()));
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
}
