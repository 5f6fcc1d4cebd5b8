//! A reply awaited: [`PendingReply`], the entry the core keeps per outstanding request, and
//! [`RequestMode`], how it is awaited. Completing an entry releases the request's reliable
//! packet from its peer.

use std::sync::Arc;

use moonpool_core::Endpoint;
use tokio::sync::oneshot;

use crate::error::ReplyError;
use crate::peer::{Fate, PacketId, Peer};

/// How a request's reply is awaited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestMode {
    /// Sent unreliably; a connection failure resolves it.
    AtMostOnce,
    /// Sent reliably; resent after reconnections until answered or abandoned.
    AtLeastOnce,
}

/// One reply awaited, by its reply token in the core's registry.
pub(super) struct PendingReply {
    pub(super) sender: oneshot::Sender<Result<Vec<u8>, ReplyError>>,
    pub(super) destination: Endpoint,
    pub(super) mode: RequestMode,
    /// What became of the request's packet, when somebody looks (at-most-once requests, and
    /// callers bounded by the failure monitor).
    pub(super) fate: Option<Fate>,
    pub(super) packet: Option<(Arc<Peer>, PacketId)>,
}

impl PendingReply {
    /// Answers the caller with `result` and releases the request's packet.
    pub(super) fn complete(self, result: Result<Vec<u8>, ReplyError>) {
        if let Some((peer, id)) = &self.packet {
            peer.cancel(*id);
        }
        let _ = self.sender.send(result);
    }

    /// Answers the caller with a copy of `payload` (the reply's envelope) and releases the
    /// request's packet, whose buffer, no longer needed, carries the copy: a reply to a reliable
    /// request allocates nothing.
    pub(super) fn complete_with(self, payload: &[u8]) {
        let mut envelope = match &self.packet {
            Some((peer, id)) => peer.cancel_reuse(*id).unwrap_or_default(),
            None => Vec::new(),
        };
        envelope.clear();
        envelope.extend_from_slice(payload);
        let _ = self.sender.send(Ok(envelope));
    }
}
