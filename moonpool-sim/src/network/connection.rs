//! Connection identity as tests and errors see it: ids, ends, what a connection looks like from
//! outside, its send buffer, and the error every stream operation returns.

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// Identifies a connection (both its ends) for its whole life; numbered from 1 in creation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// One end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConnectionEnd {
    /// The end that called `connect`.
    Client,
    /// The end returned by `accept`.
    Server,
}

impl ConnectionEnd {
    /// The other end.
    pub fn other(self) -> Self {
        match self {
            ConnectionEnd::Client => ConnectionEnd::Server,
            ConnectionEnd::Server => ConnectionEnd::Client,
        }
    }
}

/// What a test can learn about one end of a live connection (see `WorldControl::connections_of`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The connection.
    pub id: ConnectionId,
    /// Which end this is.
    pub end: ConnectionEnd,
    /// This end's address.
    pub local: SocketAddr,
    /// The other end's address.
    pub remote: SocketAddr,
}

/// A connection's send buffer as seen from one end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendBufferState {
    /// Bytes this end may have in flight and unread by the peer before writes wait.
    pub capacity: usize,
    /// Bytes in flight or unread.
    pub used: usize,
    /// `capacity - used` (zero when over capacity after a shrink).
    pub free: usize,
}

/// The error inside every `io::Error` a simulated stream returns: which connection, and why.
/// Reach it with `err.get_ref().and_then(|e| e.downcast_ref::<ConnectionError>())`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionError {
    /// The failed connection.
    pub connection: ConnectionId,
    /// The error kind (also the `io::Error`'s kind).
    pub kind: io::ErrorKind,
    /// What happened.
    pub reason: &'static str,
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({:?})", self.connection, self.reason, self.kind)
    }
}

impl std::error::Error for ConnectionError {}

/// An `io::Error` of `kind` naming `connection`.
pub(crate) fn connection_error(
    connection: ConnectionId,
    kind: io::ErrorKind,
    reason: &'static str,
) -> io::Error {
    io::Error::new(
        kind,
        ConnectionError {
            connection,
            kind,
            reason,
        },
    )
}
