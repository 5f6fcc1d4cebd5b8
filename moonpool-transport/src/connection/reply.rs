//! The reply path of a connection: replies, pongs and notices offered by other tasks
//! (handlers answering promises, the built-in endpoints, the reader's EndpointNotFound notices),
//! written straight into the writer when it is idle and this is the only reply in flight, queued
//! in the outbox otherwise.

use std::sync::atomic::Ordering;

use moonpool_core::{CodecError, UID};

use super::shared::ConnectionShared;
use crate::protocol;
use crate::wire::encode_frame;

/// Whether a reply's promise was settled on the way (under the writer's lock), and whether the
/// reply was handed over.
enum Settled {
    Yes(bool),
    No(bool),
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

impl ConnectionShared {
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
        self.reply_encoded(token, prefix, body, false)
    }

    /// [`send_encoded`](Self::send_encoded) for the promise of a request counted by
    /// [`promise_opened`](Self::promise_opened), which it settles: under the writer's lock
    /// when the reply is written directly (no read-modify-write), after it otherwise.
    pub(crate) fn answer_encoded(
        &self,
        token: UID,
        prefix: &[u8],
        body: &mut dyn FnMut(&mut Vec<u8>) -> Result<(), CodecError>,
    ) -> bool {
        self.reply_encoded(token, prefix, body, true)
    }

    /// Sends as [`send_encoded`](Self::send_encoded); settles a promise when `settle`.
    fn reply_encoded(
        &self,
        token: UID,
        prefix: &[u8],
        body: &mut dyn FnMut(&mut Vec<u8>) -> Result<(), CodecError>,
        settle: bool,
    ) -> bool {
        let sent = self.reply_encoded_unsettled(token, prefix, body, settle);
        match sent {
            Settled::Yes(sent) => sent,
            Settled::No(sent) => {
                if settle {
                    self.promise_settled();
                }
                sent
            }
        }
    }

    /// Sends as [`send_encoded`](Self::send_encoded); a reply written directly settles a
    /// promise under the writer's lock when `settle`, and says so.
    fn reply_encoded_unsettled(
        &self,
        token: UID,
        prefix: &[u8],
        body: &mut dyn FnMut(&mut Vec<u8>) -> Result<(), CodecError>,
        settle: bool,
    ) -> Settled {
        if self.closed.load(Ordering::Acquire) {
            self.counters
                .replies_dropped
                .fetch_add(1, Ordering::Relaxed);
            return Settled::No(false);
        }
        if self.outstanding() <= 1 {
            match self.send_direct(token, prefix, body, settle) {
                Direct::Sent => return Settled::Yes(true),
                Direct::Failed(message) => {
                    return Settled::No(self.send_serialization_error(token, message));
                }
                Direct::NotNow => {}
            }
        }
        let mut payload = prefix.to_vec();
        if let Err(error) = body(&mut payload) {
            return Settled::No(self.send_serialization_error(token, error.to_string()));
        }
        let frame = match encode_frame(token, &payload, self.max_packet_size) {
            Ok(frame) => frame,
            Err(error) => {
                return Settled::No(self.send_serialization_error(token, error.to_string()));
            }
        };
        self.queue_frame(frame);
        Settled::No(true)
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
        if self.outstanding() <= 1 {
            // The only request being answered: write the reply at once.
            self.flush_direct(None);
        } else {
            // More replies are coming: let the connection's task write them in one batch.
            self.signal.notify();
        }
    }

    /// The only request being answered, with nothing queued and the writer idle: encodes the
    /// packet straight into the writer's buffer and writes it (no outbox, no extra copy); once
    /// it is in, settles a promise when `settle` (under the writer's lock, the count's).
    /// [`Direct::NotNow`] when that is not the case or the packet is too large (the caller
    /// queues it instead, or turns it into an error reply).
    fn send_direct(
        &self,
        token: UID,
        prefix: &[u8],
        body: &mut dyn FnMut(&mut Vec<u8>) -> Result<(), CodecError>,
        settle: bool,
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
        if settle {
            let settled = self.settled_locked.load(Ordering::Relaxed);
            self.settled_locked.store(settled + 1, Ordering::Release);
        }
        self.write_direct(guard);
        Direct::Sent
    }
}
