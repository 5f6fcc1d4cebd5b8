//! Running connections: the peer keeper (connect, run, back off), an accepted connection, and
//! [`run_connection`], which starts the monitor and runs the reader and the writer until one of
//! them fails.
//!
//! Keepers are generic over the network provider; the dispatch floor spawns them through the
//! object-safe [`Connector`], implemented for the [`ProvidersEnv`] it was built with.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use moonpool_core::{
    JoinHandle, NetworkAddress, NetworkProvider, Providers, TaskProvider, TimeProvider,
};
use tokio::io::{AsyncRead, AsyncWrite};

use super::host::ConnectionHost;
use super::monitor::monitor_loop;
use super::read::{Owner, duration_nanos, read_loop};
use super::shared::{ConnectionError, ConnectionShared, Role};
use super::write::write_loop;
use crate::env::ProvidersEnv;
use crate::peer::Peer;

/// Spawns peer keepers: the network provider behind an object-safe trait, so that the transport
/// above is not generic over it.
pub(crate) trait Connector: Send + Sync + 'static {
    /// Spawns the connection keeper of `peer`, working for `host`.
    fn spawn_keeper(&self, host: Arc<dyn ConnectionHost>, peer: Arc<Peer>) -> JoinHandle<()>;
}

impl<P: Providers> Connector for ProvidersEnv<P> {
    fn spawn_keeper(&self, host: Arc<dyn ConnectionHost>, peer: Arc<Peer>) -> JoinHandle<()> {
        let name = format!("moonpool-transport/peer/{}", peer.address());
        let providers = self.providers.clone();
        self.providers
            .task()
            .spawn(&name, run_peer_keeper(providers, host, peer))
    }
}

/// Connects `peer` whenever it has something to send, runs the connection, backs off after
/// failures. Runs until the peer is closed.
async fn run_peer_keeper<P: Providers>(
    providers: P,
    host: Arc<dyn ConnectionHost>,
    peer: Arc<Peer>,
) {
    let address = peer.address();
    let target = address.socket_addr().to_string();
    loop {
        if !peer.wait_for_work().await {
            return;
        }
        peer.note_connect_attempt();
        let connect = providers.network().connect(&target);
        let end = match providers
            .time()
            .timeout(host.config().connect_timeout, connect)
            .await
        {
            Ok(Ok(stream)) => {
                let epoch = peer.connection_opened();
                let error = match ConnectionShared::new(
                    Role::Initiator,
                    Some(address),
                    Some((&peer, epoch)),
                    &host.hello(),
                    host.config(),
                    host.counters(),
                ) {
                    Ok(conn) => {
                        let owner = Owner { peer: &peer, epoch };
                        let error = run_connection(&host, stream, &conn, Some(owner)).await;
                        conn.close();
                        error
                    }
                    Err(error) => ConnectionError::Wire(error),
                };
                match &error {
                    ConnectionError::PingTimeout(_) => peer.record_ping_timeout(),
                    ConnectionError::Wire(_) => peer.record_wire_error(),
                    ConnectionError::Protocol(_) => peer.record_protocol_error(),
                    _ => {}
                }
                error.to_string()
            }
            Ok(Err(error)) => error.to_string(),
            Err(elapsed) => format!("connect timed out: {elapsed}"),
        };
        tracing::debug!(peer = %address, reason = %end, "connection to peer ended");
        let report = peer.connection_failed();
        host.peer_failed(address, report.epoch);
        if peer.is_closed() {
            return;
        }
        let mut delay = peer.reconnect_delay(host.config(), host.env().random_ratio());
        // Buggify: a slow reconnect (a busy host, a slow resolver), a whole maximum delay late.
        if moonpool_core::buggify!() {
            delay += host.config().reconnect_delay_max;
        }
        providers.time().sleep(delay).await;
    }
}

/// Runs a connection accepted from `socket` until it ends. Admission and the bookkeeping of
/// accepted connections belong to the caller (the accept loop).
pub(crate) async fn run_accepted<S>(
    host: Arc<dyn ConnectionHost>,
    stream: S,
    socket: NetworkAddress,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match ConnectionShared::new(
        Role::Acceptor,
        Some(socket),
        None,
        &host.hello(),
        host.config(),
        host.counters(),
    ) {
        Ok(conn) => {
            let error = run_connection(&host, stream, &conn, None).await;
            conn.close();
            tracing::debug!(remote = %socket, reason = %error, "accepted connection ended");
        }
        Err(error) => tracing::warn!(%error, "cannot start connection"),
    }
}

/// Runs one connection until it fails; returns why.
async fn run_connection<S>(
    host: &Arc<dyn ConnectionHost>,
    stream: S,
    conn: &Arc<ConnectionShared>,
    owner: Option<Owner<'_>>,
) -> ConnectionError
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    conn.writer().sink = Some(Box::new(stream));
    if let Some(owner) = owner {
        // From now on senders write directly into this connection.
        owner.peer.attach(Arc::<ConnectionShared>::clone(conn));
    }
    let last_received = Arc::new(AtomicU64::new(duration_nanos(host.env().now())));
    let monitor_token = host.env().random_uid();
    // The monitor runs in its own task, so that it is not polled at every packet.
    let _monitor = AbortOnDrop(host.env().spawn(
        "moonpool-transport/monitor",
        Box::pin(monitor_loop(
            Arc::clone(host),
            Arc::clone(conn),
            owner.map(|owner| (Arc::clone(owner.peer), owner.epoch)),
            Arc::clone(&last_received),
            monitor_token,
        )),
    ));
    let reader = read_loop(host, conn, owner, &last_received, monitor_token);
    let writer = write_loop(conn);
    moonpool_core::select! {
        biased;
        error = reader => error,
        error = writer => error,
    }
}

/// Aborts a task when dropped (the monitor goes with its connection, however that ends).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::tests::{ManualEnv, NeverRuns};

    /// Keepers of a transport on a [`ManualEnv`] never run.
    impl Connector for ManualEnv {
        fn spawn_keeper(&self, _host: Arc<dyn ConnectionHost>, peer: Arc<Peer>) -> JoinHandle<()> {
            JoinHandle::from_raw(peer.address().to_string(), Box::new(NeverRuns))
        }
    }
}
