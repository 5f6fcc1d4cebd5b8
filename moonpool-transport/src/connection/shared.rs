//! [`ConnectionShared`]: the part of a running connection that other tasks reach (its outbox,
//! its writer with the stream, its identity and counts), and the vocabulary of a connection:
//! [`Role`] and [`ConnectionError`].
//!
//! The write path is in [`write`](super::write), the reply path in [`reply`](super::reply); this
//! module holds the state they share, its creation and its end.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use moonpool_core::NetworkAddress;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::TransportConfig;
use crate::metrics::TransportCounters;
use crate::peer::Peer;
use crate::protocol::{self, CONTROL_TOKEN, Hello, ProtocolError};
use crate::signal::Signal;
use crate::spin::{SpinGuard, SpinLock};
use crate::wire::{WireError, encode_frame};

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
#[non_exhaustive]
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

/// Replies, pongs and notices of an accepted connection waiting to be written.
#[derive(Default)]
pub(super) struct Outbox {
    pub(super) frames: VecDeque<Vec<u8>>,
    pub(super) overflowed: bool,
    pub(super) ack_requested: bool,
}

/// A stream with its type erased, so senders can write directly. It lives in the [`Writer`],
/// whose lock also serves the reader (one lock per read or write, where `tokio::io::split`
/// would add its own).
pub(super) trait ErasedStream: Send {
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
pub(super) struct Writer {
    /// The whole stream (read by the connection's task under this lock too).
    pub(super) sink: Option<Box<dyn ErasedStream>>,
    /// Bytes taken from the queues and not yet written, from `written` on.
    pub(super) pending: Vec<u8>,
    pub(super) written: usize,
    /// Packets received that the last acknowledgement covered.
    pub(super) acked: u64,
    /// The last write failed or the connection is over; the task reports why.
    pub(super) failure: Option<ConnectionError>,
}

/// The part of a connection that other tasks reach: its outbox (replies are written here), its
/// writer (senders write directly when the stream accepts), and its identity.
pub(crate) struct ConnectionShared {
    pub(super) role: Role,
    /// The remote's listening address if it announced one, else its socket address.
    pub(super) remote: Mutex<Option<NetworkAddress>>,
    pub(super) outbox: Mutex<Outbox>,
    /// Set when the outbox may hold something (spares the writer a lock per write otherwise).
    pub(super) outbox_dirty: AtomicBool,
    /// Short critical sections (at most one non-blocking read or write on the stream): a spin
    /// lock, whose release is a plain store.
    pub(super) writer: SpinLock<Writer>,
    /// Wakes the connection task's writer (for an outbound connection, the peer's signal).
    pub(super) signal: Arc<Signal>,
    /// The peer draining through this connection, and the connection's epoch.
    pub(super) owner: Option<(Weak<Peer>, u64)>,
    pub(super) outbox_max: usize,
    pub(super) max_packet_size: usize,
    pub(super) ack_every_packets: u64,
    pub(super) counters: Arc<TransportCounters>,
    pub(super) closed: AtomicBool,
    /// Data packets received (what acknowledgements count).
    pub(super) received: AtomicU64,
    /// Reply promises created for requests that came in on this connection (counted by its
    /// reader, their only writer: a load and a store). Those not settled yet are
    /// [`outstanding`](Self::outstanding): while some are, their replies will carry the
    /// acknowledgement, so none is sent on its own.
    pub(super) opened: AtomicU64,
    /// Promises settled by a reply written directly (counted under the writer's lock, which
    /// every such count holds: a load and a store).
    pub(super) settled_locked: AtomicU64,
    /// Promises settled any other way (a read-modify-write).
    pub(super) settled_other: AtomicU64,
}

impl ConnectionShared {
    /// A connection that will start by writing `hello`.
    pub(super) fn new(
        role: Role,
        remote: Option<NetworkAddress>,
        owner: Option<(&Arc<Peer>, u64)>,
        hello: &Hello,
        config: &TransportConfig,
        counters: &Arc<TransportCounters>,
    ) -> Result<Arc<Self>, WireError> {
        let hello = protocol::encode_hello(hello);
        // The Hello is the first thing written, before anything queued.
        let pending = encode_frame(CONTROL_TOKEN, &hello, config.max_packet_size)?;
        let signal = match owner {
            Some((peer, _)) => peer.signal(),
            None => Arc::new(Signal::default()),
        };
        Ok(Arc::new(Self {
            role,
            remote: Mutex::new(remote),
            outbox: Mutex::new(Outbox::default()),
            outbox_dirty: AtomicBool::new(false),
            writer: SpinLock::new(Writer {
                sink: None,
                pending,
                written: 0,
                acked: 0,
                failure: None,
            }),
            signal,
            owner: owner.map(|(peer, epoch)| (Arc::downgrade(peer), epoch)),
            outbox_max: config.connection_outbox_max,
            max_packet_size: config.max_packet_size,
            ack_every_packets: config.ack_every_packets,
            counters: Arc::clone(counters),
            closed: AtomicBool::new(false),
            received: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            settled_locked: AtomicU64::new(0),
            settled_other: AtomicU64::new(0),
        }))
    }

    pub(super) fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn writer(&self) -> SpinGuard<'_, Writer> {
        self.writer.lock()
    }

    /// Counts a reply promise for a request that arrived on this connection, until it is
    /// settled ([`promise_settled`](Self::promise_settled), or
    /// [`answer_encoded`](Self::answer_encoded)). Called by this connection's reader only (the
    /// count's only writer), as it hands a request over.
    pub(crate) fn promise_opened(&self) {
        let opened = self.opened.load(Ordering::Relaxed);
        self.opened.store(opened + 1, Ordering::Release);
    }

    /// A promise counted by [`promise_opened`](Self::promise_opened) was answered (or broken)
    /// other than by [`answer_encoded`](Self::answer_encoded).
    pub(crate) fn promise_settled(&self) {
        self.settled_other.fetch_add(1, Ordering::AcqRel);
    }

    /// Promises opened and not settled yet (the settled counts are read first, so the
    /// difference never underflows: each promise is opened before it is settled).
    pub(crate) fn outstanding(&self) -> u64 {
        let settled = self
            .settled_locked
            .load(Ordering::Acquire)
            .wrapping_add(self.settled_other.load(Ordering::Acquire));
        self.opened.load(Ordering::Acquire).saturating_sub(settled)
    }

    /// The remote's address (listening address when known).
    pub(crate) fn remote(&self) -> Option<NetworkAddress> {
        *self.remote.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the remote's listening address (announced in its Hello).
    pub(super) fn set_remote(&self, address: NetworkAddress) {
        *self.remote.lock().unwrap_or_else(PoisonError::into_inner) = Some(address);
    }

    /// Ends the connection with `error` (reported by the connection's task).
    pub(super) fn fail(&self, error: ConnectionError) {
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
    pub(super) fn close(&self) {
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
