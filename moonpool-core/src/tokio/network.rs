use std::future::Future;
use std::net::SocketAddr;

use crate::network::{NetworkError, NetworkOperation, NetworkProvider, TcpListener};

/// Real TCP through `tokio::net`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioNetworkProvider;

impl TokioNetworkProvider {
    /// The provider.
    pub fn new() -> Self {
        Self
    }
}

/// A bound `tokio::net::TcpListener`, remembering the address it was asked to bind.
#[derive(Debug)]
pub struct TokioTcpListener {
    inner: tokio::net::TcpListener,
    address: String,
}

impl TcpListener for TokioTcpListener {
    type Stream = tokio::net::TcpStream;

    async fn accept(&self) -> Result<(Self::Stream, SocketAddr), NetworkError> {
        let (stream, peer) =
            self.inner.accept().await.map_err(|e| {
                NetworkError::new(NetworkOperation::Accept, self.address.clone(), e)
            })?;
        // As on connect: small RPC frames must leave at once, or delayed ACKs stall replies.
        let _ = stream.set_nodelay(true);
        Ok((stream, peer))
    }

    fn local_addr(&self) -> Result<SocketAddr, NetworkError> {
        self.inner
            .local_addr()
            .map_err(|e| NetworkError::new(NetworkOperation::LocalAddr, self.address.clone(), e))
    }
}

impl NetworkProvider for TokioNetworkProvider {
    type TcpStream = tokio::net::TcpStream;
    type TcpListener = TokioTcpListener;

    fn bind(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<Self::TcpListener, NetworkError>> + Send {
        let address = address.to_string();
        async move {
            match tokio::net::TcpListener::bind(address.as_str()).await {
                Ok(inner) => Ok(TokioTcpListener { inner, address }),
                Err(e) => Err(NetworkError::new(NetworkOperation::Bind, address, e)),
            }
        }
    }

    fn connect(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<Self::TcpStream, NetworkError>> + Send {
        let address = address.to_string();
        async move {
            match tokio::net::TcpStream::connect(address.as_str()).await {
                Ok(stream) => {
                    // Small RPC frames should leave at once, as they do in the simulator.
                    let _ = stream.set_nodelay(true);
                    Ok(stream)
                }
                Err(e) => Err(NetworkError::new(NetworkOperation::Connect, address, e)),
            }
        }
    }
}
