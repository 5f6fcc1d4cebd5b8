//! [`Peer`]: the queues and the connection state for one remote address.
//!
//! Floor 2 (below the connection, which drains it): a peer knows its queues, its connection
//! state machine and its counters, and reaches its running connection only through the small
//! `Drain` trait that the connection implements. It knows nothing of endpoints, dispatch, the
//! failure monitor or RPC.
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
//! peer (in the [connection](crate::connection) module) connects when there is something to
//! send, runs the connection, and after a failure waits an exponentially growing, jittered delay
//! before the next attempt. Nothing has to be driven by hand.
//!
//! Inside, each file naming only those before it: `packet` (fates and ids), `counters`, `link`
//! (the connection state machine), `queues` (the FIFO, reliable packets, bounds), then this
//! module ([`Peer`], `Drain`).

mod counters;
mod link;
mod packet;
mod queues;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moonpool_core::{NetworkAddress, UID};

use self::counters::{PeerCounters, ReadCounters};
use self::link::Link;
use self::queues::{Bounds, Queues};
use crate::config::TransportConfig;
use crate::error::TransportError;
use crate::metrics::PeerMetrics;
use crate::protocol::ProtocolError;
use crate::signal::Signal;
use crate::spin::{SpinGuard, SpinLock};

pub(crate) use self::packet::{Fate, Flush, PacketId};

/// The running connection of a peer, as the peer sees it: what it needs to write from the
/// sender's task. Implemented by the connection floor, which owns the stream.
pub(crate) trait Drain: Send + Sync {
    /// Writes what is queued from the caller's task; hands over to the connection's task when
    /// the stream cannot take everything now or the write failed (the task reports it).
    /// `peer`: the connection's owner, when the caller has it at hand (spares an upgrade).
    fn flush_direct(&self, peer: Option<&Peer>);

    /// Called under the peer's lock: when this is the peer's connection of `epoch` and its
    /// writer is idle with nothing queued (the writer's lock taken without waiting: it is
    /// otherwise taken before the peer's, never after), writes `frame` from the caller's task
    /// straight to the stream, never waiting for a lock (what the stream does not take now, or a
    /// failure, is left to the connection's task), and returns true. False, with nothing
    /// written, when that is not possible now.
    fn write_now(&self, epoch: u64, frame: &[u8]) -> bool;
}

struct PeerState {
    queues: Queues,
    link: Link,
    counters: PeerCounters,
    /// The running connection, for writing directly from the sender's task (under this lock,
    /// so that a sender finds it with the queues it checks, in one acquisition).
    current: Option<Arc<dyn Drain>>,
}

/// One remote address: bounded queues of outgoing packets and the connection that drains them.
///
/// Obtained from [`NetTransport::peer`](crate::NetTransport::peer); its keeper task is spawned by
/// the transport. Sending through a `Peer` takes a destination token and raw bytes; typed sends
/// go through the [`NetTransport`](crate::NetTransport).
pub struct Peer {
    address: NetworkAddress,
    /// Short critical sections (at most one non-blocking write on a stream): a spin lock,
    /// whose release is a plain store.
    state: SpinLock<PeerState>,
    /// Wakes the keeper (no connection) or the connection's writer (connected).
    signal: Arc<Signal>,
    bounds: Bounds,
    max_packet_size: usize,
    read: ReadCounters,
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
            state: SpinLock::new(PeerState {
                queues: Queues::default(),
                link: Link::default(),
                counters: PeerCounters::default(),
                current: None,
            }),
            signal: Arc::new(Signal::default()),
            bounds: Bounds::new(config),
            max_packet_size: config.max_packet_size,
            read: ReadCounters::default(),
            next_id: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> SpinGuard<'_, PeerState> {
        self.state.lock()
    }

    /// The remote address.
    pub fn address(&self) -> NetworkAddress {
        self.address
    }

    pub(crate) fn signal(&self) -> Arc<Signal> {
        Arc::clone(&self.signal)
    }

    /// Something was queued: with [`Flush::Now`] and a connection up (`target`, taken under the
    /// lock that queued), write it from the caller's task (the connection's task takes over if
    /// the stream cannot take it all); otherwise wake the connection's writer (or the keeper),
    /// which writes everything queued in one batch.
    fn kick(&self, target: Option<Arc<dyn Drain>>) {
        match target {
            Some(conn) => conn.flush_direct(Some(self)),
            None => self.signal.notify(),
        }
    }

    /// The connection to flush into from the sender's task, if `flush` says so and one is up.
    fn kick_target(state: &PeerState, flush: Flush) -> Option<Arc<dyn Drain>> {
        match flush {
            Flush::Now => state.current.clone(),
            Flush::Batched => None,
        }
    }

    /// Installs the connection that now drains this peer.
    pub(crate) fn attach(&self, conn: Arc<dyn Drain>) {
        let replaced = self.lock().current.replace(conn);
        drop(replaced);
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
        self.enqueue_unreliable_lossy(frame, Flush::Batched)
    }

    /// Queues an unreliable packet whose sender does not wait for its fate (a fire-and-forget
    /// send, a ping; never a request). Buggify: drops it at once, as a lossy path may drop an
    /// unreliable packet; counted as dropped.
    pub(crate) fn enqueue_unreliable_lossy(
        &self,
        frame: Vec<u8>,
        flush: Flush,
    ) -> Result<(), TransportError> {
        if moonpool_core::buggify_with_prob!(0.1) {
            let mut state = self.lock();
            if state.link.closed {
                return Err(TransportError::Shutdown);
            }
            state.counters.unreliable_dropped += 1;
            return Ok(());
        }
        self.enqueue_unreliable(frame, None, flush)
    }

    fn check_room(
        &self,
        state: &PeerState,
        len: usize,
        reliable: bool,
    ) -> Result<(), TransportError> {
        if state.link.closed {
            return Err(TransportError::Shutdown);
        }
        state
            .queues
            .check_room(self.address, &self.bounds, len, reliable)
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

    /// Queues an encoded frame reliably under a reserved id. With [`Flush::Now`], when nothing
    /// else waits to be written and the connection's writer is idle, the packet is written at
    /// once by the sender's task without going through the FIFO (recorded as written on the
    /// connection's epoch), all under one acquisition of the peer's lock.
    pub(crate) fn enqueue_reliable_as(
        &self,
        id: PacketId,
        frame: Vec<u8>,
        owned: bool,
        fate: Option<Fate>,
        flush: Flush,
    ) -> Result<(), TransportError> {
        let target = {
            let mut guard = self.lock();
            let state = &mut *guard;
            self.check_room(state, frame.len(), true)?;
            let epoch = state.link.epoch;
            if flush == Flush::Now
                && !state.queues.has_work()
                && state
                    .current
                    .as_ref()
                    .is_some_and(|conn| conn.write_now(epoch, &frame))
            {
                state
                    .queues
                    .push_written(epoch, id, frame, owned, fate, &mut state.counters);
                return Ok(());
            }
            state.queues.push_reliable(id, frame, owned, fate);
            Self::kick_target(state, flush)
        };
        self.kick(target);
        Ok(())
    }

    /// Queues an encoded frame unreliably.
    pub(crate) fn enqueue_unreliable(
        &self,
        frame: Vec<u8>,
        fate: Option<Fate>,
        flush: Flush,
    ) -> Result<(), TransportError> {
        let target = {
            let mut state = self.lock();
            self.check_room(&state, frame.len(), false)?;
            state.queues.push_unreliable(frame, fate);
            Self::kick_target(&state, flush)
        };
        self.kick(target);
        Ok(())
    }

    /// Releases an owned reliable packet (its reply arrived, or nobody waits any more).
    pub(crate) fn cancel(&self, id: PacketId) {
        drop(self.cancel_reuse(id));
    }

    /// [`cancel`](Self::cancel), giving back the packet's buffer (for reuse by the caller; the
    /// lock is released before it is dropped or reused).
    pub(crate) fn cancel_reuse(&self, id: PacketId) -> Option<Vec<u8>> {
        let mut state = self.lock();
        let state = &mut *state;
        state.queues.cancel(id, &mut state.counters)
    }

    /// Waits until there is something to send (or the peer is closed: returns false).
    pub(crate) async fn wait_for_work(&self) -> bool {
        std::future::poll_fn(|cx| {
            self.signal.register(cx);
            self.signal.take();
            let state = self.lock();
            if state.link.closed {
                std::task::Poll::Ready(false)
            } else if state.queues.has_work() {
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
        let epoch = state.link.opened();
        state.queues.connection_opened();
        epoch
    }

    /// The remote's Hello arrived. Returns the previous instance if it changed.
    pub(crate) fn handshake_done(&self, instance: UID) -> Option<UID> {
        let mut state = self.lock();
        state.counters.connections_established += 1;
        state.link.handshake_done(instance)
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
        if state.link.closed {
            return None;
        }
        if state.link.epoch != epoch {
            return Some(0);
        }
        Some(
            state
                .queues
                .take_batch(epoch, batch, max_bytes, &mut state.counters),
        )
    }

    /// The remote acknowledged `count` packets of connection `epoch`: releases the unowned
    /// reliable packets among them.
    pub(crate) fn acknowledge(&self, epoch: u64, count: u64) -> Result<(), ProtocolError> {
        let mut state = self.lock();
        if state.link.epoch != epoch {
            return Ok(());
        }
        let state = &mut *state;
        state.queues.acknowledge(count, &mut state.counters)
    }

    /// A connection attempt or a connection failed: drops unreliable packets (their fates become
    /// dropped) and requeues every reliable packet still held, in order.
    pub(crate) fn connection_failed(&self) -> FailureReport {
        let (epoch, detached) = {
            let mut state = self.lock();
            let state = &mut *state;
            let detached = state.current.take();
            let epoch = state.link.failed();
            state.counters.connection_failures += 1;
            state.queues.connection_failed(&mut state.counters);
            (epoch, detached)
        };
        drop(detached);
        FailureReport { epoch }
    }

    /// The delay before the next connection attempt: exponential in the number of consecutive
    /// failures, capped, times a jitter factor drawn from `random_ratio` (in `[0, 1)`).
    pub(crate) fn reconnect_delay(&self, config: &TransportConfig, random_ratio: f64) -> Duration {
        let failures = self.lock().link.consecutive_failures;
        Link::reconnect_delay(failures, config, random_ratio)
    }

    /// Stops the peer: the keeper exits, queued packets are dropped.
    pub(crate) fn close(&self) {
        let detached = {
            let mut state = self.lock();
            state.link.closed = true;
            state.queues.clear();
            state.current.take()
        };
        drop(detached);
        self.signal.notify();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().link.closed
    }

    /// True while a connection is established and its handshake completed.
    pub fn is_connected(&self) -> bool {
        self.lock().link.connected
    }

    /// The instance id the remote announced in its last Hello.
    pub fn remote_instance(&self) -> Option<UID> {
        self.lock().link.remote_instance
    }

    /// Counts bytes and packets read (atomics: the reader does this at every read).
    pub(crate) fn record_read(&self, bytes_read: u64, frames: u64) {
        self.read.record(bytes_read, frames);
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
            connected: state.link.connected,
            connect_attempts: c.connect_attempts,
            connections_established: c.connections_established,
            connection_failures: c.connection_failures,
            reliable_queue_len: state.queues.reliable_len(),
            reliable_queue_max: self.bounds.reliable_max,
            unreliable_queue_len: state.queues.unreliable_len(),
            unreliable_queue_max: self.bounds.unreliable_max,
            queued_bytes: state.queues.queued_bytes(),
            queued_bytes_max: self.bounds.bytes_max,
            reliable_sent: c.reliable_sent,
            reliable_resent: c.reliable_resent,
            reliable_acked: c.reliable_acked,
            reliable_cancelled: c.reliable_cancelled,
            unreliable_sent: c.unreliable_sent,
            unreliable_dropped: c.unreliable_dropped,
            frames_received: self.read.frames_received(),
            bytes_written: c.bytes_written,
            bytes_read: self.read.bytes_read(),
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
        self.lock()
            .queues
            .check_invariants(self.address, &self.bounds)
    }
}
