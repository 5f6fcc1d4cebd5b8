//! Contracts of [`NetworkProvider`].

use std::io::ErrorKind;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ContractResult, ContractViolation, Fixture, attempt, ensure};
use crate::{NetworkProvider, Providers, TaskProvider, TcpListener};

async fn listen<P: Providers>(
    fx: &Fixture<P>,
) -> Result<(<P::Network as NetworkProvider>::TcpListener, String), ContractViolation> {
    let listener = attempt!(
        fx.providers.network().bind(&fx.bind_address).await,
        format!("binding {}", fx.bind_address)
    );
    let address = attempt!(listener.local_addr(), "reading the listener's address").to_string();
    Ok((listener, address))
}

/// Bytes written by a client come back from an echo server.
pub async fn echo_round_trip<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let (listener, address) = listen(fx).await?;
    let server = fx.providers.task().spawn("echo-server", async move {
        let (mut stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut buffer = [0u8; 5];
        stream
            .read_exact(&mut buffer)
            .await
            .map_err(|e| e.to_string())?;
        stream.write_all(&buffer).await.map_err(|e| e.to_string())?;
        stream.flush().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    });
    let mut client = attempt!(fx.providers.network().connect(&address).await, "connecting");
    attempt!(client.write_all(b"hello").await, "writing");
    attempt!(client.flush().await, "flushing");
    let mut reply = [0u8; 5];
    attempt!(client.read_exact(&mut reply).await, "reading the echo");
    ensure!(&reply == b"hello", "echo returned {reply:?}");
    attempt!(attempt!(server.await, "joining the server"), "server side");
    Ok(())
}

/// Shutting down the write half delivers end-of-file to the peer, which can still answer.
pub async fn half_close_gives_eof<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let (listener, address) = listen(fx).await?;
    let server = fx.providers.task().spawn("eof-server", async move {
        let (mut stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut received = Vec::new();
        stream
            .read_to_end(&mut received)
            .await
            .map_err(|e| e.to_string())?;
        stream.write_all(b"bye").await.map_err(|e| e.to_string())?;
        stream.shutdown().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(received)
    });
    let mut client = attempt!(fx.providers.network().connect(&address).await, "connecting");
    attempt!(client.write_all(b"hello").await, "writing");
    attempt!(client.shutdown().await, "shutting down the write half");
    let mut reply = Vec::new();
    attempt!(
        client.read_to_end(&mut reply).await,
        "reading after half-close"
    );
    ensure!(
        reply == b"bye",
        "client read {reply:?} after its half-close"
    );
    let received = attempt!(attempt!(server.await, "joining the server"), "server side");
    ensure!(received == b"hello", "server read {received:?} before EOF");
    Ok(())
}

/// Connecting where nothing listens fails with `ConnectionRefused`.
pub async fn connect_to_closed_port_fails<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let (listener, address) = listen(fx).await?;
    drop(listener);
    match fx.providers.network().connect(&address).await {
        Ok(_) => Err(ContractViolation::new(format!(
            "connect to closed {address} succeeded"
        ))),
        Err(error) => {
            ensure!(
                error.kind() == ErrorKind::ConnectionRefused,
                "connect to closed {address} failed with {:?}: {error}",
                error.kind()
            );
            ensure!(error.address == address, "error names '{}'", error.address);
            Ok(())
        }
    }
}

/// `accept` returns the connecting side's address, with a real (non-zero) port.
pub async fn accept_reports_peer_address<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let (listener, address) = listen(fx).await?;
    let client = attempt!(fx.providers.network().connect(&address).await, "connecting");
    let (_stream, peer) = attempt!(listener.accept().await, "accepting");
    ensure!(peer.port() != 0, "accepted peer address {peer} has port 0");
    ensure!(
        peer.to_string() != address,
        "accepted peer address {peer} equals the listener's own address"
    );
    drop(client);
    Ok(())
}

/// Several clients may connect before the server accepts any of them.
pub async fn several_clients_before_accept<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let (listener, address) = listen(fx).await?;
    let mut clients = Vec::new();
    for id in 0u8..3 {
        let mut client = attempt!(fx.providers.network().connect(&address).await, "connecting");
        attempt!(client.write_all(&[id]).await, "writing the client id");
        attempt!(client.flush().await, "flushing");
        clients.push(client);
    }
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (mut stream, _) = attempt!(listener.accept().await, "accepting");
        let mut id = [0u8; 1];
        attempt!(stream.read_exact(&mut id).await, "reading a client id");
        ids.push(id[0]);
    }
    ids.sort_unstable();
    ensure!(ids == vec![0, 1, 2], "accepted client ids {ids:?}");
    Ok(())
}

/// Binding an address already bound fails with `AddrInUse`.
pub async fn bind_in_use_fails<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let (_listener, address) = listen(fx).await?;
    match fx.providers.network().bind(&address).await {
        Ok(_) => Err(ContractViolation::new(format!(
            "second bind of {address} succeeded"
        ))),
        Err(error) => {
            ensure!(
                error.kind() == ErrorKind::AddrInUse,
                "second bind of {address} failed with {:?}: {error}",
                error.kind()
            );
            Ok(())
        }
    }
}

/// An address that cannot be parsed is rejected with an error that names it.
pub async fn invalid_address_names_input<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    match fx.providers.network().connect("nonsense").await {
        Ok(_) => Err(ContractViolation::new("connect(\"nonsense\") succeeded")),
        Err(error) => {
            ensure!(
                error.to_string().contains("nonsense"),
                "error does not name the input: {error}"
            );
            Ok(())
        }
    }
}

/// A transfer much larger than one read arrives complete and in order.
pub async fn large_transfer_arrives_intact<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    const LEN: usize = 256 * 1024;
    let (listener, address) = listen(fx).await?;
    let server = fx.providers.task().spawn("sink", async move {
        let (mut stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut received = Vec::new();
        stream
            .read_to_end(&mut received)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(received)
    });
    #[allow(clippy::cast_possible_truncation)]
    let payload: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    let mut client = attempt!(fx.providers.network().connect(&address).await, "connecting");
    attempt!(client.write_all(&payload).await, "writing");
    attempt!(client.shutdown().await, "shutting down");
    let received = attempt!(attempt!(server.await, "joining the sink"), "sink side");
    ensure!(
        received.len() == LEN,
        "received {} of {LEN} bytes",
        received.len()
    );
    ensure!(received == payload, "received bytes differ from those sent");
    Ok(())
}
