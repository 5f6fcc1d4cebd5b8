//! Network: TCP listeners and streams.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

/// The network operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetworkOperation {
    /// Binding a listener.
    Bind,
    /// Connecting to a listener.
    Connect,
    /// Accepting a connection.
    Accept,
    /// Reading a listener's local address.
    LocalAddr,
}

impl fmt::Display for NetworkOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetworkOperation::Bind => "bind",
            NetworkOperation::Connect => "connect to",
            NetworkOperation::Accept => "accept on",
            NetworkOperation::LocalAddr => "local address of",
        })
    }
}

/// A failed bind, connect or accept, naming the address involved.
///
/// [`kind`](Self::kind) gives the underlying [`io::ErrorKind`] (`ConnectionRefused`, `AddrInUse`,
/// `InvalidInput` for an unparsable address, ...), and the error converts into an [`io::Error`] of
/// the same kind, so `?` works in functions that return `io::Result`.
#[derive(Debug, thiserror::Error)]
#[error("{operation} '{address}': {source}")]
pub struct NetworkError {
    /// What was being done.
    pub operation: NetworkOperation,
    /// The address as the caller gave it.
    pub address: String,
    /// The underlying I/O error.
    #[source]
    pub source: io::Error,
}

impl NetworkError {
    /// Builds an error for `operation` on `address`.
    pub fn new(operation: NetworkOperation, address: impl Into<String>, source: io::Error) -> Self {
        Self {
            operation,
            address: address.into(),
            source,
        }
    }

    /// Shorthand for an error of `kind` with a message.
    pub fn with_kind(
        operation: NetworkOperation,
        address: impl Into<String>,
        kind: io::ErrorKind,
        message: &str,
    ) -> Self {
        Self::new(
            operation,
            address,
            io::Error::new(kind, message.to_string()),
        )
    }

    /// The kind of the underlying I/O error.
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}

impl From<NetworkError> for io::Error {
    fn from(error: NetworkError) -> Self {
        io::Error::new(error.kind(), error)
    }
}

/// A bound TCP listener.
pub trait TcpListener: Send + Sync + 'static {
    /// The stream type of accepted connections.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Waits for the next connection; returns it with the address of the connecting peer.
    fn accept(
        &self,
    ) -> impl Future<Output = Result<(Self::Stream, SocketAddr), NetworkError>> + Send;

    /// The address the listener is bound to (with the real port when bound to port 0).
    fn local_addr(&self) -> Result<SocketAddr, NetworkError>;
}

/// TCP networking.
///
/// Streams implement Tokio's [`AsyncRead`] and [`AsyncWrite`], so real libraries (hyper,
/// `tokio-util` codecs) run on them unchanged. Shutting a stream down for writing
/// (`AsyncWriteExt::shutdown`) sends FIN: the peer reads end-of-file.
pub trait NetworkProvider: Clone + Send + Sync + 'static {
    /// A connected stream.
    type TcpStream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// A listener whose accepted streams are [`Self::TcpStream`].
    type TcpListener: TcpListener<Stream = Self::TcpStream>;

    /// Binds a listener to `address` (`"ip:port"`; port 0 picks a free port).
    fn bind(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<Self::TcpListener, NetworkError>> + Send;

    /// Connects to `address`.
    fn connect(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<Self::TcpStream, NetworkError>> + Send;
}
