//! The read path of a connection: bytes from the stream into the decoder, packets out of it,
//! each handled by [`FrameHandler`]: the Hello first, acknowledgements to the owning peer,
//! pongs to the monitor, data packets to the [host](super::host) (the dispatch floor), and
//! EndpointNotFound notices for tokens nobody registered.

use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use moonpool_core::{UID, WellKnownToken};
use tokio::io::ReadBuf;

use super::host::{ConnectionHost, DeliveryCache, Origin};
use super::shared::{ConnectionError, ConnectionShared, Role};
use crate::metrics::CounterSlot;
use crate::peer::Peer;
use crate::protocol::{self, CONTROL_TOKEN, Control, Hello, ProtocolError};
use crate::wire::FrameDecoder;

/// Bytes asked of one read, at most.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Bytes asked of one read at first.
const READ_CHUNK_MIN_BYTES: usize = 4 * 1024;

/// An outbound connection's owner and its epoch.
#[derive(Clone, Copy)]
pub(super) struct Owner<'a> {
    pub(super) peer: &'a Arc<Peer>,
    pub(super) epoch: u64,
}

pub(super) fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// What the stream said right after the bytes of a read.
enum Then {
    /// Nothing more for now, and it holds the task's waker: the next read need not ask it
    /// again before the task is polled again.
    Waiting,
    /// Not known (it gave more bytes, which are in).
    Unknown,
    /// The other side closed the stream after these bytes.
    Closed,
    /// The stream failed after these bytes.
    Failed(io::Error),
}

/// Reads into `decoder` (up to `chunk` bytes at a time) from the stream held by the writer: the
/// bytes available, then, under the same lock, asks again, which either gives more bytes or
/// leaves the task's waker with the stream, so a lone packet costs one lock, not two.
async fn read_stream(
    conn: &ConnectionShared,
    decoder: &mut FrameDecoder,
    chunk: usize,
) -> io::Result<(usize, Then)> {
    poll_fn(|cx| {
        let mut writer = conn.writer();
        let Some(stream) = writer.sink.as_mut() else {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection is closed",
            )));
        };
        let mut space = ReadBuf::new(decoder.read_space(chunk));
        match stream.poll_read_erased(cx, &mut space) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => return Poll::Pending,
        }
        let read = space.filled().len();
        decoder.commit(read);
        if read == 0 {
            return Poll::Ready(Ok((0, Then::Unknown)));
        }
        let mut space = ReadBuf::new(decoder.read_space(chunk));
        let then = match stream.poll_read_erased(cx, &mut space) {
            Poll::Ready(Ok(())) => {
                let more = space.filled().len();
                decoder.commit(more);
                if more == 0 {
                    return Poll::Ready(Ok((read, Then::Closed)));
                }
                return Poll::Ready(Ok((read + more, Then::Unknown)));
            }
            Poll::Ready(Err(error)) => Then::Failed(error),
            Poll::Pending => Then::Waiting,
        };
        Poll::Ready(Ok((read, then)))
    })
    .await
}

/// Pending once (without waking anybody: the stream holds the task's waker), ready when the
/// task is polled again, by that wake or any other.
struct NextPoll(bool);

impl std::future::Future for NextPoll {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, _cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

pub(super) async fn read_loop(
    host: &Arc<dyn ConnectionHost>,
    conn: &Arc<ConnectionShared>,
    owner: Option<Owner<'_>>,
    last_received: &AtomicU64,
    monitor_token: UID,
) -> ConnectionError {
    let mut decoder = FrameDecoder::new(host.config().max_packet_size);
    // Reads go straight into the decoder; the size asked grows with what arrives, up to
    // `READ_CHUNK_BYTES` (small packets one at a time need no large buffer).
    let mut chunk = READ_CHUNK_MIN_BYTES;
    let mut handler = FrameHandler {
        host: &**host,
        conn,
        origin: Origin::Connection(Arc::clone(conn)),
        owner,
        monitor_token,
        hello_received: false,
        unacked: 0,
        cache: DeliveryCache::default(),
        delivered: host.counters().remote_deliveries.slot(),
    };
    let mut waiting = false;
    loop {
        if std::mem::take(&mut waiting) {
            // The last read left the task's waker with the stream: asking again now would only
            // say so again.
            NextPoll(false).await;
        }
        let (read, then) = match read_stream(conn, &mut decoder, chunk).await {
            Ok((0, _)) => return ConnectionError::Closed,
            Ok(read) => read,
            Err(error) => return ConnectionError::Io(error),
        };
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
            last_received.store(duration_nanos(host.env().now()), Ordering::Relaxed);
        }
        if let Some(owner) = owner {
            owner.peer.record_read(read as u64, frames);
        }
        // A standalone acknowledgement only when no reply is about to carry one: a small write
        // followed by another small one can stall on Nagle's algorithm for a delayed-ACK period
        // when the socket has no TCP_NODELAY.
        // Buggify: a slow acknowledgement, skipped here and sent later (by the next batch or
        // the monitor), so the sender holds its reliable packets longer.
        if conn.role == Role::Acceptor
            && handler.unacked >= host.config().ack_every_packets
            && conn.outstanding() == 0
            && !moonpool_core::buggify!()
        {
            handler.unacked = 0;
            conn.request_ack();
        }
        match then {
            Then::Waiting => waiting = true,
            Then::Unknown => {}
            Then::Closed => return ConnectionError::Closed,
            Then::Failed(error) => return ConnectionError::Io(error),
        }
    }
}

struct FrameHandler<'a> {
    host: &'a dyn ConnectionHost,
    conn: &'a Arc<ConnectionShared>,
    /// Where packets from this connection come from (built once).
    origin: Origin,
    owner: Option<Owner<'a>>,
    monitor_token: UID,
    hello_received: bool,
    unacked: u64,
    /// The endpoint delivered to last, for the host.
    cache: DeliveryCache,
    /// This reader's share of the transport's count of remote deliveries.
    delivered: CounterSlot<'a>,
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
                self.host
                    .endpoint_not_found(moonpool_core::Endpoint::new(address, missing));
            }
            return Ok(());
        }
        let via = self.owner.map(|owner| &**owner.peer);
        if self
            .host
            .deliver(token, payload, &self.origin, via, &mut self.cache)
        {
            self.delivered.bump();
            return Ok(());
        }
        match self.conn.role {
            Role::Acceptor => {
                // A request or message for a token nobody registered: tell the sender.
                let mut notice = Vec::with_capacity(16);
                protocol::write_uid(&mut notice, token);
                self.conn
                    .send(WellKnownToken::EndpointNotFound.uid(), &notice);
                self.host
                    .counters()
                    .endpoint_not_found_sent
                    .fetch_add(1, Ordering::Relaxed);
            }
            Role::Initiator => {
                // A reply nobody waits for any more (answered already, or abandoned).
                self.host
                    .counters()
                    .unknown_tokens_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn on_hello(&mut self, hello: Hello) {
        self.hello_received = true;
        if let Some(address) = hello.listen_address
            && self.conn.role == Role::Acceptor
        {
            self.conn.set_remote(address);
        }
        if let Some(owner) = self.owner {
            owner.peer.handshake_done(hello.instance);
            self.host
                .peer_available(owner.peer.address(), hello.instance);
        }
    }
}
