//! [`SimTcpStream`]: the stream's identity and send buffer, its reads (read clogs, a buggified
//! would-block, partial reads, random closes on read), shutdown and close. Writes are in
//! `write.rs`.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::write::poll_write_locked;
use crate::handle::WorldHandle;
use crate::kernel::Core;
use crate::kernel::fault::FaultKind;
use crate::network::{
    ConnectionEnd, ConnectionId, HalfId, NetworkState, SendBufferState, connection_error, log,
    nanos,
};

/// A simulated TCP stream: Tokio's `AsyncRead` and `AsyncWrite`, so hyper and codecs run on it.
pub struct SimTcpStream {
    pub(super) world: WorldHandle,
    pub(super) half: HalfId,
    pub(super) connection: ConnectionId,
    pub(super) end: ConnectionEnd,
    pub(super) local: SocketAddr,
    pub(super) peer: SocketAddr,
}

impl SimTcpStream {
    /// The connection's id, shared by both ends; address it through `WorldControl`.
    pub fn connection_id(&self) -> ConnectionId {
        self.connection
    }

    /// Which end of the connection this stream is.
    pub fn end(&self) -> ConnectionEnd {
        self.end
    }

    /// This end's send buffer (capacity, bytes in flight or unread by the peer, free space), or
    /// `None` once the connection is gone.
    pub fn send_buffer(&self) -> Option<SendBufferState> {
        self.world
            .with(|state| state.network.send_buffer(self.half))
    }

    /// Sets this end's send buffer capacity (at least 1 byte); a writer waiting for space is
    /// woken to look again. Returns false once the connection is gone.
    pub fn set_send_buffer_capacity(&self, bytes: usize) -> bool {
        self.world
            .with(|state| set_capacity(&mut state.network, &mut state.core, self.half, bytes))
    }

    /// This end's address (the process IP and, for outbound connections, an ephemeral port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The other end's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
}

/// Sets `half`'s send buffer capacity; false when it is gone.
pub(crate) fn set_capacity(
    net: &mut NetworkState,
    core: &mut Core,
    half: HalfId,
    bytes: usize,
) -> bool {
    let Some(h) = net.model_mut(half) else {
        return false;
    };
    h.send_capacity = bytes.max(1);
    h.wake_writer();
    log(
        net,
        core,
        half,
        "send_buffer",
        format_args!("capacity set to {} bytes", bytes.max(1)),
    );
    true
}

pub(super) fn not_connected(connection: ConnectionId) -> io::Error {
    connection_error(
        connection,
        io::ErrorKind::NotConnected,
        "connection no longer exists",
    )
}

/// Random close of a connection (FDB's random connection failures), with a world-wide cooldown.
/// Returns true when it fired.
pub(super) fn maybe_random_close(
    net: &mut NetworkState,
    core: &mut Core,
    half: HalfId,
    p: f64,
    on_read: bool,
) -> bool {
    if p <= 0.0 {
        return false;
    }
    let now = core.now;
    if net
        .last_random_close
        .is_some_and(|last| now < last + net.config.random_close_cooldown)
    {
        return false;
    }
    let fault = if on_read {
        FaultKind::NetworkRandomCloseRead
    } else {
        FaultKind::NetworkRandomClose
    };
    if !core.rng.fault(fault).chance(p) {
        return false;
    }
    net.last_random_close = Some(now);
    let Some(peer) = net.half(half).map(|h| h.peer) else {
        return false;
    };
    // Closes on reads are counted under their own names (the write names are pinned).
    let name = |write: &'static str, read: &'static str| if on_read { read } else { write };
    let kind = if core
        .rng
        .fault(fault)
        .chance(net.config.random_close_reset_share)
    {
        net.close(core, half, true);
        name(
            "network.random_close.reset",
            "network.random_close_read.reset",
        )
    } else if core
        .rng
        .fault(fault)
        .chance(net.config.random_close_one_way_share)
    {
        net.close(core, half, false);
        name(
            "network.random_close.one_way",
            "network.random_close_read.one_way",
        )
    } else {
        net.close(core, half, false);
        net.close(core, peer, false);
        name("network.random_close.fin", "network.random_close_read.fin")
    };
    core.fired(fault, kind);
    log(net, core, half, "random_close", format_args!("{kind}"));
    true
}

impl AsyncRead for SimTcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut guard = this.world.lock();
        let state = &mut *guard;
        let (net, core, chaos) = (&mut state.network, &mut state.core, state.chaos.as_mut());
        let connection = this.connection;
        let executor = net.executor;
        let partial_p = net.config.partial_read_probability;
        let close_p = net.config.random_close_read_probability;
        if close_p > 0.0 {
            let Some(h) = net.half(this.half) else {
                return Poll::Ready(Err(not_connected(connection)));
            };
            if h.error.is_none()
                && maybe_random_close(net, core, this.half, close_p, true)
                && let Some(kind) = net.half(this.half).and_then(|h| h.error)
            {
                return Poll::Ready(Err(connection_error(
                    connection,
                    kind,
                    "connection closed (injected, on read)",
                )));
            }
        }
        let Some(h) = net.model_mut(this.half) else {
            return Poll::Ready(Err(not_connected(connection)));
        };
        if h.delivered > 0 && h.stalls && h.read_clogged_until > nanos(core.now) {
            // Read-side clog: the data is here, the reader may not see it yet.
            h.register_reader(cx.waker(), executor);
            crate::executor::note_wait(crate::executor::WaitReason::NetworkRead);
            return Poll::Pending;
        }
        // Buggify: a spurious would-block. The data is here but this poll says "not yet" and
        // wakes the reader at once, as a readiness-based socket may.
        if h.delivered > 0
            && crate::chaos::buggify_at(chaos, moonpool_core::__chaos_site!("buggify", None), 0.05)
        {
            drop(guard);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if h.delivered > 0 {
            let mut n = buf.remaining().min(h.delivered);
            if n > 1
                && let Some(partial) = core.rng.fault_if(FaultKind::NetworkPartialRead, partial_p)
            {
                n = partial.range(1..=n);
                core.fired(FaultKind::NetworkPartialRead, "network.partial_read");
                tracing::debug!(
                    target: "moonpool_sim::network",
                    at = ?core.now,
                    connection = %connection,
                    "partial_read: {n} of {} bytes",
                    buf.remaining().min(h.delivered)
                );
            }
            if let Some(front) = h.bytes.as_slice().get(..n) {
                buf.put_slice(front);
            }
            // All read (the common case): the queue empties, which also puts the next bytes at
            // the front of its buffer, so a frame spans as few cache lines as it can.
            h.bytes.consume(n);
            h.delivered -= n;
            core.note(|| crate::kernel::story::What::Read {
                connection: connection.0,
                bytes: n as u64,
            });
            // Room freed: the peer's writer is woken if it waits (only then is the peer read).
            if std::mem::take(&mut h.writer_waits) {
                let peer = h.peer;
                if let Some(p) = net.model_mut(peer) {
                    p.wake_writer();
                }
            }
            return Poll::Ready(Ok(()));
        }
        if let Some(kind) = h.error {
            return Poll::Ready(Err(connection_error(connection, kind, error_reason(kind))));
        }
        if h.fin_received && h.bytes.is_empty() {
            return Poll::Ready(Ok(()));
        }
        h.register_reader(cx.waker(), executor);
        crate::executor::note_wait(crate::executor::WaitReason::NetworkRead);
        Poll::Pending
    }
}

pub(super) fn error_reason(kind: io::ErrorKind) -> &'static str {
    match kind {
        io::ErrorKind::TimedOut => "connection timed out (retransmissions exhausted)",
        io::ErrorKind::ConnectionReset => "connection reset by peer",
        _ => "connection failed",
    }
}

impl AsyncWrite for SimTcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut guard = this.world.lock();
        let state = &mut *guard;
        let (net, core, chaos) = (&mut state.network, &mut state.core, state.chaos.as_mut());
        poll_write_locked(net, core, chaos, this.half, this.connection, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.world.with(|state| {
            if state.network.half(this.half).is_some() {
                state.network.close(&mut state.core, this.half, false);
            }
        });
        Poll::Ready(Ok(()))
    }
}

impl Drop for SimTcpStream {
    fn drop(&mut self) {
        self.world.with(|state| {
            if state.network.half(self.half).is_some() {
                log(
                    &state.network,
                    &state.core,
                    self.half,
                    "close",
                    format_args!("stream dropped"),
                );
            }
            if let Some(h) = state.network.half(self.half) {
                if h.error.is_none() && !h.half_open {
                    state.network.close(&mut state.core, self.half, false);
                }
                state.network.remove(self.half);
            }
        });
    }
}
