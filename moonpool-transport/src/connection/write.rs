//! The write path of a connection: everything queued (the peer's packets on an outbound
//! connection, the outbox on an accepted one, acknowledgements) gathered into batches and
//! written, either from the sender's own task when the writer is idle ([`Drain`], direct
//! writes) or by the connection's task ([`write_loop`]).

use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use super::shared::{ConnectionError, ConnectionShared, Role, Writer};
use crate::peer::{Drain, Peer};
use crate::protocol::{self, CONTROL_TOKEN};
use crate::signal::Registration;
use crate::spin::SpinGuard;
use crate::wire::encode_frame;

/// Bytes gathered into one write.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

impl ConnectionShared {
    /// The writer, locked, when it is idle with nothing queued anywhere (so a packet written
    /// now overtakes nothing), its buffer emptied for that packet.
    pub(super) fn idle_writer(&self) -> Option<SpinGuard<'_, Writer>> {
        self.idle(self.writer())
    }

    /// [`idle_writer`](Self::idle_writer) without waiting: `None` also when another task holds
    /// the writer's lock (for callers holding a peer's lock, which the writer's lock is
    /// otherwise taken before, never after).
    fn try_idle_writer(&self) -> Option<SpinGuard<'_, Writer>> {
        self.writer.try_lock().and_then(|guard| self.idle(guard))
    }

    /// `guard` if its writer is idle with nothing queued anywhere, its buffer emptied.
    fn idle<'a>(&self, mut guard: SpinGuard<'a, Writer>) -> Option<SpinGuard<'a, Writer>> {
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
    /// is handed to it to report (recorded under the lock already held: this takes no lock).
    pub(super) fn write_direct(&self, mut guard: SpinGuard<'_, Writer>) {
        let writer = &mut *guard;
        let result = match self.append_ack(writer, false) {
            Ok(()) => {
                let mut cx = Context::from_waker(Waker::noop());
                self.poll_flush_locked(writer, &mut cx, false, None)
            }
            Err(error) => Poll::Ready(Err(error)),
        };
        let done = matches!(result, Poll::Ready(Ok(())));
        if let Poll::Ready(Err(error)) = result
            && writer.failure.is_none()
        {
            writer.failure = Some(error);
        }
        drop(guard);
        if !done {
            self.signal.notify();
        }
    }

    /// Writes `frame` from the caller's task with an [idle writer](Self::idle_writer) of an
    /// outbound connection (which has no acknowledgements to add), as
    /// [`write_direct`](Self::write_direct) does with the writer's buffer: the bytes the stream
    /// does not take now go to that buffer for the connection's task, a failure is recorded for
    /// it to report.
    fn write_frame_direct(&self, mut guard: SpinGuard<'_, Writer>, frame: &[u8]) {
        let writer = &mut *guard;
        let mut cx = Context::from_waker(Waker::noop());
        let mut at = 0;
        let result = loop {
            let Some(rest) = frame.get(at..).filter(|rest| !rest.is_empty()) else {
                break Poll::Ready(Ok(()));
            };
            let Some(sink) = writer.sink.as_mut() else {
                break Poll::Ready(Err(ConnectionError::Shutdown));
            };
            match sink.poll_write_erased(&mut cx, rest) {
                Poll::Ready(Ok(0)) => {
                    break Poll::Ready(Err(ConnectionError::Io(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the stream accepted no bytes",
                    ))));
                }
                Poll::Ready(Ok(written)) => at += written,
                Poll::Ready(Err(error)) => break Poll::Ready(Err(ConnectionError::Io(error))),
                Poll::Pending => break Poll::Pending,
            }
        };
        match result {
            Poll::Ready(Ok(())) => return,
            Poll::Ready(Err(error)) => {
                if writer.failure.is_none() {
                    writer.failure = Some(error);
                }
            }
            Poll::Pending => {
                writer
                    .pending
                    .extend_from_slice(frame.get(at..).unwrap_or_default());
                writer.written = 0;
            }
        }
        drop(guard);
        self.signal.notify();
    }

    /// On an accepted connection, appends an acknowledgement of what arrived so far when one is
    /// requested (threshold reached with no reply pending, or a monitor tick), or piggybacked on
    /// a write once `ack_every_packets` are unacknowledged: acknowledgements only release
    /// memory, so they can wait.
    pub(super) fn append_ack(
        &self,
        writer: &mut Writer,
        ack_requested: bool,
    ) -> Result<(), ConnectionError> {
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

    pub(super) fn request_ack(&self) {
        self.outbox().ack_requested = true;
        self.outbox_dirty.store(true, Ordering::Release);
        self.signal.notify();
    }

    /// Moves queued packets into the writer's buffer; returns false when there is nothing.
    pub(super) fn refill(
        &self,
        writer: &mut Writer,
        peer: Option<&Peer>,
    ) -> Result<bool, ConnectionError> {
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
    pub(super) fn poll_flush(
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
    pub(super) fn poll_flush_locked(
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
    pub(super) fn flush_direct(&self, peer: Option<&Peer>) {
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
}

/// The peer floor reaches its running connection through [`Drain`].
impl Drain for ConnectionShared {
    fn flush_direct(&self, peer: Option<&Peer>) {
        ConnectionShared::flush_direct(self, peer);
    }

    /// Under the owning peer's lock: when this is the connection of `epoch` and its writer is
    /// idle (its lock free now) with nothing queued, writes `frame` from the sender's task
    /// straight from the frame's own buffer (one acquisition of the peer's lock for the whole
    /// direct write, no trip through its FIFO, no copy into the writer's buffer).
    fn write_now(&self, epoch: u64, frame: &[u8]) -> bool {
        if self.owner.as_ref().is_none_or(|(_, own)| *own != epoch)
            || self.closed.load(Ordering::Acquire)
        {
            return false;
        }
        let Some(guard) = self.try_idle_writer() else {
            return false;
        };
        self.write_frame_direct(guard, frame);
        true
    }
}

/// Writes whatever senders could not write themselves: wakes on the signal, or on the stream
/// when it was full.
pub(super) async fn write_loop(conn: &Arc<ConnectionShared>) -> ConnectionError {
    // Start with a flush: the Hello, and whatever was queued before the connection existed.
    let mut blocked = true;
    // What the signal knows of this task's waker (registered again only when it changes).
    let mut registration = Registration::default();
    poll_fn(|cx| {
        loop {
            let notified = conn.signal.poll_notified(cx, &mut registration);
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
