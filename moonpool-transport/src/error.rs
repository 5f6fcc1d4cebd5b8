//! Error types: [`TransportError`] for sending and registering, [`ReplyError`] for RPC outcomes.
//!
//! Floor 1: the vocabulary of failures shared by every floor; it knows nothing of where they arise.

use std::time::Duration;

use moonpool_core::{CodecError, Endpoint, NetworkAddress, NetworkError, UID};

use crate::config::ConfigError;
use crate::wire::WireError;

/// Why a transport operation (build, register, send) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `build_listening` was called without a local address.
    #[error("build_listening needs a local address to bind (NetTransportBuilder::local_address)")]
    NoListenAddress,
    /// Binding the listener failed.
    #[error("cannot listen: {0}")]
    Bind(#[source] NetworkError),
    /// A message could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A packet could not be framed (too large).
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A peer queue is full.
    #[error("the {queue} queue to {address} is full ({bound} {unit})")]
    QueueFull {
        /// The destination.
        address: NetworkAddress,
        /// `"reliable"`, `"unreliable"` or `"bytes"`.
        queue: &'static str,
        /// The bound that was hit.
        bound: usize,
        /// `"packets"` or `"bytes"`.
        unit: &'static str,
    },
    /// The transport already talks to `peers_max` distinct addresses.
    #[error("cannot open a peer to {address}: the transport already has {bound} peers (peers_max)")]
    TooManyPeers {
        /// The address that needed a new peer.
        address: NetworkAddress,
        /// The bound.
        bound: usize,
    },
    /// The transport already holds `endpoints_max` endpoints.
    #[error("cannot register another endpoint: {bound} are registered (endpoints_max)")]
    TooManyEndpoints {
        /// The bound.
        bound: usize,
    },
    /// The token is already registered.
    #[error("token {token} is already registered")]
    TokenInUse {
        /// The token.
        token: UID,
    },
    /// A well-known token index is outside the reserved range, or reserved by Moonpool.
    #[error(
        "well-known token index {index} is not available to applications (use {first}..{limit})"
    )]
    InvalidWellKnownToken {
        /// The index given.
        index: u32,
        /// First application index.
        first: u32,
        /// One past the last index.
        limit: u32,
    },
    /// The transport has shut down.
    #[error("the transport has shut down")]
    Shutdown,
}

/// How an RPC ended without a reply value.
///
/// Which ones a caller can see depends on the delivery mode; see the crate docs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The server dropped the [`ReplyPromise`](crate::ReplyPromise) without answering.
    #[error("broken promise: {endpoint} dropped the request without replying")]
    BrokenPromise {
        /// The request's destination.
        endpoint: Endpoint,
    },
    /// The request certainly did not reach the server: it was never written to a connection
    /// (the connection could not be established, or failed first).
    #[error("connection to {address} failed before the request was sent")]
    ConnectionFailed {
        /// The destination address.
        address: NetworkAddress,
    },
    /// The request was sent, then the connection failed before a reply arrived: the server may
    /// or may not have processed it (FoundationDB's `request_maybe_delivered`).
    #[error(
        "connection to {address} failed after the request was sent: it may have been delivered"
    )]
    MaybeDelivered {
        /// The destination address.
        address: NetworkAddress,
    },
    /// No reply within the caller's deadline ([`ReplyFuture::timeout`](crate::ReplyFuture::timeout)).
    #[error("no reply within {duration:?}")]
    Timeout {
        /// The deadline.
        duration: Duration,
    },
    /// The request or reply could not be encoded or decoded.
    #[error("serialization failed: {message}")]
    Serialization {
        /// What went wrong.
        message: String,
    },
    /// Nothing is registered at the destination token.
    #[error("endpoint {endpoint} not found")]
    EndpointNotFound {
        /// The destination.
        endpoint: Endpoint,
    },
    /// The destination's receive queue is full (`receive_queue_max`), so the request was refused.
    #[error("endpoint {endpoint} refused the request: its receive queue is full")]
    Overloaded {
        /// The destination.
        endpoint: Endpoint,
    },
    /// The request could not be queued: a named bound of the [`TransportConfig`] was reached
    /// (`pending_replies_max`, `peer_reliable_queue_max`, `peer_unreliable_queue_max`,
    /// `peer_queue_bytes_max`, `peers_max`) or the request exceeds `max_packet_size`.
    ///
    /// [`TransportConfig`]: crate::TransportConfig
    #[error("request not sent: {bound} ({limit}) reached")]
    BoundExceeded {
        /// The configuration field whose bound was reached.
        bound: &'static str,
        /// Its value.
        limit: usize,
    },
    /// The request could not be sent for another reason (named in the message).
    #[error("request not sent: {message}")]
    SendFailed {
        /// The [`TransportError`] as text.
        message: String,
    },
    /// The local transport shut down while the request was pending.
    #[error("the transport shut down before a reply arrived")]
    TransportClosed,
}

impl ReplyError {
    /// True for the errors after which the request may have been processed by the server
    /// (so a retry needs an idempotent handler): [`MaybeDelivered`](Self::MaybeDelivered),
    /// [`Timeout`](Self::Timeout) and [`TransportClosed`](Self::TransportClosed).
    pub fn maybe_delivered(&self) -> bool {
        matches!(
            self,
            ReplyError::MaybeDelivered { .. }
                | ReplyError::Timeout { .. }
                | ReplyError::TransportClosed
        )
    }
}

impl From<TransportError> for ReplyError {
    fn from(error: TransportError) -> Self {
        match error {
            TransportError::Codec(codec) => ReplyError::Serialization {
                message: codec.to_string(),
            },
            TransportError::Shutdown => ReplyError::TransportClosed,
            TransportError::QueueFull { queue, bound, .. } => ReplyError::BoundExceeded {
                bound: match queue {
                    "reliable" => "peer_reliable_queue_max",
                    "unreliable" => "peer_unreliable_queue_max",
                    _ => "peer_queue_bytes_max",
                },
                limit: bound,
            },
            TransportError::TooManyPeers { bound, .. } => ReplyError::BoundExceeded {
                bound: "peers_max",
                limit: bound,
            },
            TransportError::Wire(WireError::PacketTooLarge { max, .. }) => {
                ReplyError::BoundExceeded {
                    bound: "max_packet_size",
                    limit: max,
                }
            }
            other => ReplyError::SendFailed {
                message: other.to_string(),
            },
        }
    }
}
