//! Connections: the peer keeper (connect, run, back off), the accept loop, and a running
//! connection, which has three parts:
//!
//! - the **reader** (the connection's task) decodes packets and dispatches them; a checksum
//!   mismatch or any malformed packet ends the connection;
//! - the **writer** is shared: a sender with nothing else in flight writes its packet itself,
//!   from its own task (no task switch, the lowest latency); packets queued in bursts, and
//!   whatever the stream could not take at once, are written in batches by the connection's task.
//!   The Hello goes first; on an outbound connection the peer's queues follow, on an accepted
//!   one the outbox (replies, pongs, EndpointNotFound notices, acknowledgements);
//! - the **monitor** (its own task, aborted with the connection) wakes every `ping_interval`: it
//!   fails the connection when no whole packet arrived for `ping_timeout`, and on outbound
//!   connections queues a ping (unreliable) so that a live peer always has something to answer
//!   (FoundationDB's connectionMonitor).
//!
//! Roles: the side that connected (the *initiator*, owned by a [`Peer`]) sends requests and
//! messages and receives replies; the side that accepted (the *acceptor*) receives requests and
//! messages, and writes replies, pongs, EndpointNotFound notices and acknowledgements on the
//! same connection. Replies therefore always travel back on the connection their request came
//! in on, and a lost reply always means a failed connection, which the caller sees.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use moonpool_core::{
    CodecError, NetworkAddress, NetworkProvider, Providers, TaskProvider, TcpListener,
    TimeProvider, UID, WellKnownToken,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::TransportError;
use crate::peer::{Fate, PacketId, Peer, Unwritten};
use crate::protocol::{self, CONTROL_TOKEN, Control, Hello, ProtocolError};
use crate::signal::Signal;
use crate::transport::{Core, Counters, Origin};
use crate::wire::{FrameDecoder, WireError, encode_frame};

/// Bytes gathered into one write.
const WRITE_BATCH_BYTES: usize = 64 * 1024;
/// Bytes asked of one read, at most.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Bytes asked of one read at first.
const READ_CHUNK_MIN_BYTES: usize = 4 * 1024;

/// Which side of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// We connected; a peer owns the connection.
    Initiator,
    /// We accepted.
    Acceptor,
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The other side closed the stream.
    #[error("closed by the other side")]
    Closed,
    /// Malformed bytes (checksum mismatch, bad length): the stream cannot be trusted any more.
    #[error("malformed packet: {0}")]
    Wire(#[from] WireError),
    /// A protocol violation.
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtocolError),
    /// Nothing arrived for `ping_timeout`.
    #[error("nothing received for {0:?}")]
    PingTimeout(Duration),
    /// More replies piled up than `connection_outbox_max`: the reader on the other side is not
    /// keeping up, so the connection is closed and the callers retry.
    #[error("outbox overflow ({0} packets)")]
    OutboxOverflow(usize),
    /// The transport shut down or the peer was closed.
    #[error("transport shut down")]
    Shutdown,
}

#[derive(Default)]
struct Outbox {
    frames: VecDeque<Vec<u8>>,
    overflowed: bool,
    ack_requested: bool,
}

/// A stream with its type erased, so senders can write directly. It lives in the [`Writer`],
/// whose lock also serves the reader (one lock per read or write, where `tokio::io::split`
/// would add its own).
trait ErasedStream: Send {
    fn poll_write_erased(&mut self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>>;
    fn poll_read_erased(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>>;
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> ErasedStream for S {
    fn poll_write_erased(&mut self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(self).poll_write(cx, bytes)
    }

    fn poll_read_erased(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(self).poll_read(cx, buf)
    }
}

/// The writing side of a connection, shared by its task and by senders.
struct Writer {
    /// The whole stream (read by the connection's task under this lock too).
    sink: Option<Box<dyn ErasedStream>>,
    /// Bytes taken from the queues and not yet written, from `written` on.
    pending: Vec<u8>,
    written: usize,
    /// Packets received that the last acknowledgement covered.
    acked: u64,
    /// The last write failed or the connection is over; the task reports why.
    failure: Option<ConnectionError>,
}

/// What became of a reply offered for a direct write.
enum Direct {
    /// Written (or handed to the connection's task to finish writing).
    Sent,
    /// Not possible now: queue it.
    NotNow,
    /// The body failed to encode (the message says why).
    Failed(String),
}

/// The part of a connection that other tasks reach: its outbox (replies are written here), its
/// writer (senders write directly when the stream accepts), and its identity.
pub(crate) struct ConnectionShared {
    role: Role,
    /// The remote's listening address if it announced one, else its socket address.
    remote: Mutex<Option<NetworkAddress>>,
    outbox: Mutex<Outbox>,
    /// Set when the outbox may hold something (spares the writer a lock per write otherwise).
    outbox_dirty: AtomicBool,
    writer: Mutex<Writer>,
    /// Wakes the connection task's writer (for an outbound connection, the peer's signal).
    signal: Arc<Signal>,
    /// The peer draining through this connection, and the connection's epoch.
    owner: Option<(Weak<Peer>, u64)>,
    outbox_max: usize,
    max_packet_size: usize,
    ack_every_packets: u64,
    counters: Arc<Counters>,
    closed: AtomicBool,
    /// Data packets received (what acknowledgements count).
    received: AtomicU64,
    /// Reply promises created for requests that came in on this connection and not answered
    /// yet. While some are, their replies will carry the acknowledgement, so none is sent on its
    /// own.
    outstanding: AtomicU64,
}

impl ConnectionShared {
    fn new(
        role: Role,
        remote: Option<NetworkAddress>,
        owner: Option<(&Arc<Peer>, u64)>,
        core: &Arc<Core>,
    ) -> Result<Arc<Self>, WireError> {
        let hello = protocol::encode_hello(&Hello {
            instance: core.instance,
            listen_address: core.listen_address(),
        });
        // The Hello is the first thing written, before anything queued.
        let pending = encode_frame(CONTROL_TOKEN, &hello, core.config.max_packet_size)?;
        let signal = match owner {
            Some((peer, _)) => peer.signal(),
            None => Arc::new(Signal::default()),
        };
        Ok(Arc::new(Self {
            role,
            remote: Mutex::new(remote),
            outbox: Mutex::new(Outbox::default()),
            outbox_dirty: AtomicBool::new(false),
            writer: Mutex::new(Writer {
                sink: None,
                pending,
                written: 0,
                acked: 0,
                failure: None,
            }),
            signal,
            owner: owner.map(|(peer, epoch)| (Arc::downgrade(peer), epoch)),
            outbox_max: core.config.connection_outbox_max,
            max_packet_size: core.config.max_packet_size,
            ack_every_packets: core.config.ack_every_packets,
            counters: Arc::clone(&core.counters),
            closed: AtomicBool::new(false),
            received: AtomicU64::new(0),
            outstanding: AtomicU64::new(0),
        }))
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a reply promise for a request that arrived on this connection, until
    /// [`promise_settled`](Self::promise_settled).
    pub(crate) fn promise_opened(&self) {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
    }

    /// A promise counted by [`promise_opened`](Self::promise_opened) was answered (or broken).
    pub(crate) fn promise_settled(&self) {
        self.outstanding.fetch_sub(1, Ordering::AcqRel);
    }

    /// The remote's address (listening address when known).
    pub(crate) fn remote(&self) -> Option<NetworkAddress> {
        *self.remote.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a packet for `token` on this connection and writes it if the stream accepts it.
    /// False when the connection is gone (the packet is dropped; an RPC caller notices the
    /// connection failure and retries or fails).
    pub(crate) fn send(&self, token: UID, payload: &[u8]) -> bool {
        self.send_encoded(token, &[], &mut |out: &mut Vec<u8>| {
            out.extend_from_slice(payload);
            Ok(())
        })
    }

    /// Sends a reply whose payload is `prefix` followed by what `body` writes (an encoder, run
    /// straight into the writer's buffer when the reply can be written at once). A body that
    /// fails to encode, or a packet too large, is answered with a serialization error reply.
    pub(crate) fn send_encoded(
        &self,
        token: UID,
        prefix: &[u8],
        body: &mut dyn FnMut(&mut Vec<u8>) -> Result<(), CodecError>,
    ) -> bool {
        if self.closed.load(Ordering::Acquire) {
            self.counters
                .replies_dropped
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if self.outstanding.load(Ordering::Acquire) <= 1 {
            match self.send_direct(token, prefix, body) {
                Direct::Sent => return true,
                Direct::Failed(message) => return self.send_serialization_error(token, message),
                Direct::NotNow => {}
            }
        }
        let mut payload = prefix.to_vec();
        if let Err(error) = body(&mut payload) {
            return self.send_serialization_error(token, error.to_string());
        }
        let frame = match encode_frame(token, &payload, self.max_packet_size) {
            Ok(frame) => frame,
            Err(error) => return self.send_serialization_error(token, error.to_string()),
        };
        self.queue_frame(frame);
        true
    }

    /// Answers `token` with a serialization error (its reply could not be encoded or sent).
    fn send_serialization_error(&self, token: UID, message: String) -> bool {
        let reply = protocol::serialization_error_reply(message);
        match encode_frame(token, &reply, self.max_packet_size) {
            Ok(frame) => {
                self.queue_frame(frame);
                true
            }
            Err(_) => false,
        }
    }

    /// Queues an encoded reply frame in the outbox and gets it written.
    fn queue_frame(&self, frame: Vec<u8>) {
        {
            let mut outbox = self.outbox();
            if outbox.frames.len() >= self.outbox_max {
                outbox.overflowed = true;
            } else {
                outbox.frames.push_back(frame);
            }
            self.outbox_dirty.store(true, Ordering::Release);
        }
        if self.outstanding.load(Ordering::Acquire) <= 1 {
            // The only request being answered: write the reply at once.
            self.flush_direct(None);
        } else {
            // More replies are coming: let the connection's task write them in one batch.
            self.signal.notify();
        }
    }

    /// The only request being answered, with nothing queued and the writer idle: encodes the
    /// packet straight into the writer's buffer and writes it (no outbox, no extra copy).
    /// [`Direct::NotNow`] when that is not the case or the packet is too large (the caller
    /// queues it instead, or turns it into an error reply).
    fn send_direct(
        &self,
        token: UID,
        prefix: &[u8],
        body: &mut dyn FnMut(&mut Vec<u8>) -> Result<(), CodecError>,
    ) -> Direct {
        let Some(mut guard) = self.idle_writer() else {
            return Direct::NotNow;
        };
        let writer = &mut *guard;
        match crate::wire::append_frame_with(
            &mut writer.pending,
            token,
            prefix,
            body,
            self.max_packet_size,
        ) {
            Ok(true) => {}
            // Too large: the queued path turns it into an error reply.
            Ok(false) => return Direct::NotNow,
            Err(error) => return Direct::Failed(error.to_string()),
        }
        self.write_direct(guard);
        Direct::Sent
    }

    /// The writer, locked, when it is idle with nothing queued anywhere (so a packet written
    /// now overtakes nothing), its buffer emptied for that packet.
    fn idle_writer(&self) -> Option<MutexGuard<'_, Writer>> {
        let mut guard = self.writer();
        let writer = &mut *guard;
        if writer.failure.is_some()
            || writer.sink.is_none()
            || writer.written != writer.pending.len()
            || self.outbox_dirty.load(Ordering::Acquire)
        {
            return None;
        }
        writer.pending.clear();
        writer.written = 0;
        Some(guard)
    }

    /// Writes what was put in an [idle writer](Self::idle_writer)'s buffer from the caller's
    /// task; what the stream does not take now is left to the connection's task, and a failure
    /// is handed to it to report.
    fn write_direct(&self, mut guard: MutexGuard<'_, Writer>) {
        let writer = &mut *guard;
        let result = match self.append_ack(writer, false) {
            Ok(()) => {
                let mut cx = Context::from_waker(Waker::noop());
                self.poll_flush_locked(writer, &mut cx, false, None)
            }
            Err(error) => Poll::Ready(Err(error)),
        };
        drop(guard);
        match result {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(error)) => self.fail(error),
            Poll::Pending => self.signal.notify(),
        }
    }

    /// Writes reliable packet `id` of `peer` (this connection's owner) at once from the sender's
    /// task, when the writer is idle with nothing queued: one lock of the peer instead of two,
    /// and no trip through its FIFO. Gives the frame and fate back when that is not the case.
    pub(crate) fn write_reliable_now(
        &self,
        peer: &Peer,
        id: PacketId,
        frame: Vec<u8>,
        owned: bool,
        fate: Option<Fate>,
    ) -> Result<Option<Unwritten>, TransportError> {
        let Some((_, epoch)) = &self.owner else {
            return Ok(Some((frame, fate)));
        };
        if self.closed.load(Ordering::Acquire) {
            return Ok(Some((frame, fate)));
        }
        let Some(mut guard) = self.idle_writer() else {
            return Ok(Some((frame, fate)));
        };
        if let Some(unwritten) =
            peer.admit_written(*epoch, id, frame, owned, fate, &mut guard.pending)?
        {
            return Ok(Some(unwritten));
        }
        self.write_direct(guard);
        Ok(None)
    }

    /// On an accepted connection, appends an acknowledgement of what arrived so far when one is
    /// requested (threshold reached with no reply pending, or a monitor tick), or piggybacked on
    /// a write once `ack_every_packets` are unacknowledged: acknowledgements only release
    /// memory, so they can wait.
    fn append_ack(&self, writer: &mut Writer, ack_requested: bool) -> Result<(), ConnectionError> {
        if self.role == Role::Acceptor {
            let received = self.received.load(Ordering::Relaxed);
            let due = received - writer.acked >= self.ack_every_packets;
            if received > writer.acked && (ack_requested || (due && !writer.pending.is_empty())) {
                let frame = encode_frame(
                    CONTROL_TOKEN,
                    &protocol::encode_ack(received),
                    self.max_packet_size,
                )?;
                writer.pending.extend_from_slice(&frame);
                writer.acked = received;
            }
        }
        Ok(())
    }

    fn request_ack(&self) {
        self.outbox().ack_requested = true;
        self.outbox_dirty.store(true, Ordering::Release);
        self.signal.notify();
    }

    /// Moves queued packets into the writer's buffer; returns false when there is nothing.
    fn refill(&self, writer: &mut Writer, peer: Option<&Peer>) -> Result<bool, ConnectionError> {
        writer.pending.clear();
        writer.written = 0;
        // A load first: the flag is usually clear, and a swap is a read-modify-write.
        let ack_requested = if !self.outbox_dirty.load(Ordering::Acquire)
            || !self.outbox_dirty.swap(false, Ordering::AcqRel)
        {
            false
        } else {
            let mut outbox = self.outbox();
            if outbox.overflowed {
                self.counters
                    .outbox_overflows
                    .fetch_add(1, Ordering::Relaxed);
                return Err(ConnectionError::OutboxOverflow(self.outbox_max));
            }
            while writer.pending.len() < WRITE_BATCH_BYTES {
                let Some(frame) = outbox.frames.pop_front() else {
                    break;
                };
                writer.pending.extend_from_slice(&frame);
            }
            if !outbox.frames.is_empty() {
                // More than one batch: look again next time.
                self.outbox_dirty.store(true, Ordering::Release);
            }
            std::mem::take(&mut outbox.ack_requested)
        };
        if let Some((owner, epoch)) = &self.owner {
            let taken = match peer {
                Some(peer) => peer.take_batch_open(*epoch, &mut writer.pending, WRITE_BATCH_BYTES),
                None => owner.upgrade().and_then(|owner| {
                    owner.take_batch_open(*epoch, &mut writer.pending, WRITE_BATCH_BYTES)
                }),
            };
            if taken.is_none() {
                return Err(ConnectionError::Shutdown);
            }
        }
        self.append_ack(writer, ack_requested)?;
        Ok(!writer.pending.is_empty())
    }

    /// Writes everything queued. `Ready(Ok)`: all written; `Pending`: the stream is full (it
    /// wakes `cx` when it has room); `Ready(Err)`: the connection is over.
    fn poll_flush(
        &self,
        cx: &mut Context<'_>,
        peer: Option<&Peer>,
    ) -> Poll<Result<(), ConnectionError>> {
        let mut guard = self.writer();
        let writer = &mut *guard;
        if writer.failure.is_some() {
            return Poll::Ready(Err(ConnectionError::Shutdown));
        }
        self.poll_flush_locked(writer, cx, true, peer)
    }

    /// [`poll_flush`](Self::poll_flush) under the writer's lock; `more`: the queues may hold
    /// something.
    fn poll_flush_locked(
        &self,
        writer: &mut Writer,
        cx: &mut Context<'_>,
        mut more: bool,
        peer: Option<&Peer>,
    ) -> Poll<Result<(), ConnectionError>> {
        // Whether the queues may hold more than the last refill took. Whoever queues while this
        // lock is held either flushes after it (and waits for the lock) or notifies the
        // connection's task, so once a refill took everything there is no need to look again.
        loop {
            if writer.written == writer.pending.len() {
                if !more {
                    return Poll::Ready(Ok(()));
                }
                match self.refill(writer, peer) {
                    Ok(true) => {}
                    Ok(false) => return Poll::Ready(Ok(())),
                    Err(error) => return Poll::Ready(Err(error)),
                }
                more = writer.pending.len() >= WRITE_BATCH_BYTES
                    || self.outbox_dirty.load(Ordering::Acquire);
            }
            let Some(sink) = writer.sink.as_mut() else {
                return Poll::Ready(Err(ConnectionError::Shutdown));
            };
            match sink.poll_write_erased(cx, &writer.pending[writer.written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(ConnectionError::Io(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the stream accepted no bytes",
                    ))));
                }
                Poll::Ready(Ok(written)) => writer.written += written,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(ConnectionError::Io(error))),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Writes what is queued from the caller's task; hands over to the connection's task when
    /// the stream cannot take everything now or the write failed (the task reports it).
    /// `peer`: this connection's owner, when the caller has it at hand (spares an upgrade).
    pub(crate) fn flush_direct(&self, peer: Option<&Peer>) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.poll_flush(&mut cx, peer) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(error)) => self.fail(error),
            Poll::Pending => self.signal.notify(),
        }
    }

    /// Ends the connection with `error` (reported by the connection's task).
    fn fail(&self, error: ConnectionError) {
        {
            let mut writer = self.writer();
            if writer.failure.is_none() {
                writer.failure = Some(error);
            }
        }
        self.signal.notify();
    }

    /// The connection is over (its reader has stopped): nothing more is written; the stream is
    /// dropped.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.outbox().frames.clear();
        let sink = {
            let mut writer = self.writer();
            if writer.failure.is_none() {
                writer.failure = Some(ConnectionError::Shutdown);
            }
            // Reply promises may keep this state alive a while: free the write buffer now.
            writer.pending = Vec::new();
            writer.written = 0;
            writer.sink.take()
        };
        drop(sink);
    }
}

/// An outbound connection's owner and its epoch.
#[derive(Clone, Copy)]
struct Owner<'a> {
    peer: &'a Arc<Peer>,
    epoch: u64,
}

/// Connects `peer` whenever it has something to send, runs the connection, backs off after
/// failures. Runs until the peer is closed.
pub(crate) async fn run_peer_keeper<P: Providers>(providers: P, core: Arc<Core>, peer: Arc<Peer>) {
    let address = peer.address();
    let target = address.socket_addr().to_string();
    loop {
        if !peer.wait_for_work().await {
            return;
        }
        peer.note_connect_attempt();
        let connect = providers.network().connect(&target);
        let end = match providers
            .time()
            .timeout(core.config.connect_timeout, connect)
            .await
        {
            Ok(Ok(stream)) => {
                let epoch = peer.connection_opened();
                let error = match ConnectionShared::new(
                    Role::Initiator,
                    Some(address),
                    Some((&peer, epoch)),
                    &core,
                ) {
                    Ok(conn) => {
                        let owner = Owner { peer: &peer, epoch };
                        let error = run_connection(&core, stream, &conn, Some(owner)).await;
                        conn.close();
                        error
                    }
                    Err(error) => ConnectionError::Wire(error),
                };
                match &error {
                    ConnectionError::PingTimeout(_) => peer.record_ping_timeout(),
                    ConnectionError::Wire(_) => peer.record_wire_error(),
                    ConnectionError::Protocol(_) => peer.record_protocol_error(),
                    _ => {}
                }
                error.to_string()
            }
            Ok(Err(error)) => error.to_string(),
            Err(elapsed) => format!("connect timed out: {elapsed}"),
        };
        tracing::debug!(peer = %address, reason = %end, "connection to peer ended");
        let report = peer.connection_failed();
        core.failure_monitor.set_failed(address);
        core.resolve_try_requests(address, report.epoch);
        if peer.is_closed() {
            return;
        }
        let delay = peer.reconnect_delay(&core.config, core.env.random_ratio());
        providers.time().sleep(delay).await;
    }
}

/// Accepts connections until the listener fails for good.
pub(crate) async fn run_accept_loop<P: Providers>(
    providers: P,
    core: Arc<Core>,
    listener: <P::Network as NetworkProvider>::TcpListener,
) {
    loop {
        match listener.accept().await {
            Ok((stream, socket)) => {
                let Some(id) = core.admit_connection() else {
                    drop(stream);
                    continue;
                };
                let task_core = Arc::clone(&core);
                let name = format!("moonpool-transport/in/{socket}");
                let handle = providers.task().spawn(&name, async move {
                    run_accepted(task_core, stream, NetworkAddress::from(socket), id).await;
                });
                core.connection_started(id, handle);
            }
            Err(error) => {
                if core.is_shut_down() || error.kind() == io::ErrorKind::NotConnected {
                    tracing::debug!(%error, "listener closed");
                    return;
                }
                tracing::warn!(%error, "accept failed; retrying");
                providers
                    .time()
                    .sleep(core.config.reconnect_delay_initial)
                    .await;
            }
        }
    }
}

async fn run_accepted<S>(core: Arc<Core>, stream: S, socket: NetworkAddress, id: u64)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match ConnectionShared::new(Role::Acceptor, Some(socket), None, &core) {
        Ok(conn) => {
            let error = run_connection(&core, stream, &conn, None).await;
            conn.close();
            tracing::debug!(remote = %socket, reason = %error, "accepted connection ended");
        }
        Err(error) => tracing::warn!(%error, "cannot start connection"),
    }
    core.connection_finished(id);
}

/// Runs one connection until it fails; returns why.
async fn run_connection<S>(
    core: &Arc<Core>,
    stream: S,
    conn: &Arc<ConnectionShared>,
    owner: Option<Owner<'_>>,
) -> ConnectionError
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    conn.writer().sink = Some(Box::new(stream));
    if let Some(owner) = owner {
        // From now on senders write directly into this connection.
        owner.peer.attach(Arc::clone(conn));
    }
    let last_received = Arc::new(AtomicU64::new(duration_nanos(core.env.now())));
    let monitor_token = core.env.random_uid();
    // The monitor runs in its own task, so that it is not polled at every packet.
    let _monitor = AbortOnDrop(core.env.spawn(
        "moonpool-transport/monitor",
        Box::pin(monitor_loop(
            Arc::clone(core),
            Arc::clone(conn),
            owner.map(|owner| (Arc::clone(owner.peer), owner.epoch)),
            Arc::clone(&last_received),
            monitor_token,
        )),
    ));
    let reader = read_loop(core, conn, owner, &last_received, monitor_token);
    let writer = write_loop(conn);
    moonpool_core::select! {
        biased;
        error = reader => error,
        error = writer => error,
    }
}

/// Aborts a task when dropped (the monitor goes with its connection, however that ends).
struct AbortOnDrop(moonpool_core::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Reads into `buffer` from the stream held by the writer.
async fn read_stream(conn: &ConnectionShared, buffer: &mut [u8]) -> io::Result<usize> {
    poll_fn(|cx| {
        let mut writer = conn.writer();
        let Some(stream) = writer.sink.as_mut() else {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection is closed",
            )));
        };
        let mut chunk = ReadBuf::new(buffer);
        match stream.poll_read_erased(cx, &mut chunk) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(chunk.filled().len())),
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

async fn read_loop(
    core: &Arc<Core>,
    conn: &Arc<ConnectionShared>,
    owner: Option<Owner<'_>>,
    last_received: &AtomicU64,
    monitor_token: UID,
) -> ConnectionError {
    let mut decoder = FrameDecoder::new(core.config.max_packet_size);
    // Reads go straight into the decoder; the size asked grows with what arrives, up to
    // `READ_CHUNK_BYTES` (small packets one at a time need no large buffer).
    let mut chunk = READ_CHUNK_MIN_BYTES;
    let mut handler = FrameHandler {
        core,
        conn,
        origin: Origin::Connection(Arc::clone(conn)),
        owner,
        monitor_token,
        hello_received: false,
        unacked: 0,
    };
    loop {
        let read = match read_stream(conn, decoder.read_space(chunk)).await {
            Ok(0) => return ConnectionError::Closed,
            Ok(read) => read,
            Err(error) => return ConnectionError::Io(error),
        };
        decoder.commit(read);
        if read >= chunk {
            chunk = (chunk * 2).min(READ_CHUNK_BYTES);
        }
        let mut frames = 0u64;
        loop {
            match decoder.next_frame_borrowed() {
                Ok(Some((token, payload))) => {
                    frames += 1;
                    if let Err(error) = handler.handle(token, payload) {
                        return error;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, remote = ?conn.remote(), "malformed packet; closing");
                    return ConnectionError::Wire(error);
                }
            }
        }
        if frames > 0 {
            // Liveness counts whole packets, not bytes: a corrupted length field can swallow the
            // rest of the stream into one never-ending packet while bytes keep arriving.
            last_received.store(duration_nanos(core.env.now()), Ordering::Relaxed);
        }
        if let Some(owner) = owner {
            owner.peer.record_read(read as u64, frames);
        }
        // A standalone acknowledgement only when no reply is about to carry one: a small write
        // followed by another small one can stall on Nagle's algorithm for a delayed-ACK period
        // when the socket has no TCP_NODELAY.
        if conn.role == Role::Acceptor
            && handler.unacked >= core.config.ack_every_packets
            && conn.outstanding.load(Ordering::Acquire) == 0
        {
            handler.unacked = 0;
            conn.request_ack();
        }
    }
}

struct FrameHandler<'a> {
    core: &'a Arc<Core>,
    conn: &'a Arc<ConnectionShared>,
    /// Where packets from this connection come from (built once).
    origin: Origin,
    owner: Option<Owner<'a>>,
    monitor_token: UID,
    hello_received: bool,
    unacked: u64,
}

impl FrameHandler<'_> {
    fn handle(&mut self, token: UID, payload: &[u8]) -> Result<(), ConnectionError> {
        if !self.hello_received {
            if token != CONTROL_TOKEN {
                return Err(ProtocolError::MissingHello { token }.into());
            }
            return match protocol::decode_control(payload)? {
                Control::Hello(hello) => {
                    self.on_hello(hello);
                    Ok(())
                }
                Control::Ack(_) => Err(ProtocolError::MissingHello { token }.into()),
            };
        }
        if token == CONTROL_TOKEN {
            return match protocol::decode_control(payload)? {
                Control::Ack(count) => match (self.conn.role, self.owner) {
                    (Role::Initiator, Some(owner)) => {
                        owner.peer.acknowledge(owner.epoch, count)?;
                        Ok(())
                    }
                    _ => Err(ProtocolError::UnexpectedControl { kind: 2 }.into()),
                },
                Control::Hello(_) => Err(ProtocolError::UnexpectedControl { kind: 1 }.into()),
            };
        }
        // Only this reader writes the count: a plain store, not a read-modify-write.
        let received = self.conn.received.load(Ordering::Relaxed);
        self.conn.received.store(received + 1, Ordering::Relaxed);
        self.unacked += 1;
        if token == self.monitor_token {
            if let Some(owner) = self.owner {
                owner.peer.record_pong();
            }
            return Ok(());
        }
        if token == WellKnownToken::EndpointNotFound.uid() && self.conn.role == Role::Initiator {
            let missing = protocol::read_uid(payload, "EndpointNotFound notice")?;
            if let Some(address) = self.conn.remote() {
                self.core
                    .on_endpoint_not_found(moonpool_core::Endpoint::new(address, missing), true);
            }
            return Ok(());
        }
        if self.core.deliver(token, payload, &self.origin) {
            self.core
                .counters
                .remote_deliveries
                .fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        match self.conn.role {
            Role::Acceptor => {
                // A request or message for a token nobody registered: tell the sender.
                let mut notice = Vec::with_capacity(16);
                protocol::write_uid(&mut notice, token);
                self.conn
                    .send(WellKnownToken::EndpointNotFound.uid(), &notice);
                self.core
                    .counters
                    .endpoint_not_found_sent
                    .fetch_add(1, Ordering::Relaxed);
            }
            Role::Initiator => {
                // A reply nobody waits for any more (answered already, or abandoned).
                self.core
                    .counters
                    .unknown_tokens_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn on_hello(&mut self, hello: Hello) {
        self.hello_received = true;
        if let Some(address) = hello.listen_address {
            if self.conn.role == Role::Acceptor {
                *self
                    .conn
                    .remote
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(address);
            }
        }
        if let Some(owner) = self.owner {
            owner.peer.handshake_done(hello.instance);
            self.core
                .failure_monitor
                .set_available(owner.peer.address(), hello.instance);
        }
    }
}

/// Writes whatever senders could not write themselves: wakes on the signal, or on the stream
/// when it was full.
async fn write_loop(conn: &Arc<ConnectionShared>) -> ConnectionError {
    // Start with a flush: the Hello, and whatever was queued before the connection existed.
    let mut blocked = true;
    // The waker registered with the signal: it stays there until a notify takes it (and sets
    // the flag), so it is registered again only then, or when the task's waker changes.
    let mut registered: Option<Waker> = None;
    poll_fn(|cx| {
        loop {
            let fresh = !registered
                .as_ref()
                .is_some_and(|waker| waker.will_wake(cx.waker()));
            if fresh {
                registered = Some(cx.waker().clone());
                conn.signal.register(cx);
            }
            let notified = conn.signal.take();
            if notified && !fresh {
                conn.signal.register(cx);
            }
            if !notified && !blocked {
                return Poll::Pending;
            }
            if let Some(error) = conn.writer().failure.take() {
                return Poll::Ready(error);
            }
            match conn.poll_flush(cx, None) {
                Poll::Ready(Ok(())) => blocked = false,
                Poll::Ready(Err(error)) => return Poll::Ready(error),
                Poll::Pending => {
                    blocked = true;
                    return Poll::Pending;
                }
            }
        }
    })
    .await
}

/// Pings (outbound connections) and checks liveness every `ping_interval`; a connection on
/// which nothing arrived for `ping_timeout` is failed through its writer.
async fn monitor_loop(
    core: Arc<Core>,
    conn: Arc<ConnectionShared>,
    owner: Option<(Arc<Peer>, u64)>,
    last_received: Arc<AtomicU64>,
    monitor_token: UID,
) {
    let interval = core.config.ping_interval;
    let timeout = core.config.ping_timeout;
    let mut nonce: u64 = 0;
    let mut ticks: u64 = 0;
    loop {
        core.env.sleep(interval).await;
        if conn.closed.load(Ordering::Acquire) {
            return;
        }
        if core.is_shut_down() {
            conn.fail(ConnectionError::Shutdown);
            return;
        }
        let silent = core
            .env
            .now()
            .saturating_sub(Duration::from_nanos(last_received.load(Ordering::Relaxed)));
        if silent >= timeout {
            conn.fail(ConnectionError::PingTimeout(silent));
            return;
        }
        match &owner {
            Some((peer, _)) => {
                // A ping is an ordinary request to the remote's well-known Ping endpoint, sent
                // unreliably; its reply comes back to this connection's monitor token.
                nonce += 1;
                let mut payload = Vec::with_capacity(24);
                protocol::write_uid(&mut payload, monitor_token);
                payload.extend_from_slice(&nonce.to_le_bytes());
                if peer
                    .send_unreliable(WellKnownToken::Ping.uid(), &payload)
                    .is_ok()
                {
                    peer.record_ping();
                }
            }
            None => {
                // Acknowledge at every tick when no reply is pending (it would carry the ack),
                // and at every third tick regardless (a handler may hold a promise for long).
                ticks += 1;
                let quiet = conn.outstanding.load(Ordering::Acquire) == 0;
                if conn.received.load(Ordering::Relaxed) > 0 && (quiet || ticks % 3 == 0) {
                    conn.request_ack();
                }
            }
        }
    }
}
