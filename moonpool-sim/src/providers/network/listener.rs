//! [`SimTcpListener`]: a listening socket, its accept (latency, a buggified slow accept) and
//! what closing it does to the connections still queued.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::task::Poll;
use std::time::Duration;

use moonpool_core::{NetworkError, NetworkOperation, TcpListener};

use super::SimTcpStream;
use crate::executor::ProcessId;
use crate::handle::WorldHandle;
use crate::network::{ConnectionEnd, ConnectionId, log};
use crate::providers::time::sleep_for;

/// How late a buggified accept is.
const SLOW_ACCEPT: Duration = Duration::from_millis(50);

/// A simulated listening socket. Dropping it stops listening; queued connections are reset.
pub struct SimTcpListener {
    pub(super) world: WorldHandle,
    /// Where the listener is kept: the process's own address and the port.
    pub(super) local: SocketAddr,
    /// The address it reports: a loopback bind's own loopback address, else `local`.
    pub(super) shown: SocketAddr,
    pub(super) owner: ProcessId,
}

impl TcpListener for SimTcpListener {
    type Stream = SimTcpStream;

    async fn accept(&self) -> Result<(Self::Stream, SocketAddr), NetworkError> {
        let local = self.local;
        let world = &self.world;
        let (half, peer) = poll_fn(|cx| {
            let mut state = world.lock();
            match state.network.listeners.get_mut(&local) {
                Some(listener) if listener.owner == self.owner => {
                    if let Some(next) = listener.backlog.pop_front() {
                        Poll::Ready(Ok(next))
                    } else {
                        listener.waker.register(cx.waker());
                        crate::executor::note_wait(crate::executor::WaitReason::Accept);
                        Poll::Pending
                    }
                }
                _ => Poll::Ready(Err(NetworkError::with_kind(
                    NetworkOperation::Accept,
                    local.to_string(),
                    io::ErrorKind::NotConnected,
                    "the listener is closed (its process went down)",
                ))),
            }
        })
        .await?;
        let latency = world.with(|state| {
            let core = &mut state.core;
            state.network.config.accept_latency.sample(&mut core.rng)
        });
        if !latency.is_zero() {
            sleep_for(world, latency).await;
        }
        // Buggify: a busy server accepts late; the connection waits in the backlog (its client
        // may already be writing).
        if moonpool_core::buggify!() {
            sleep_for(world, SLOW_ACCEPT).await;
        }
        // The server end's address is its half's: a loopback one for a connection that came
        // through loopback.
        let (connection, local) = world.with(|state| {
            let (connection, at) = state
                .network
                .half(half)
                .map_or((ConnectionId(0), local), |h| (h.connection, h.local));
            log(
                &state.network,
                &state.core,
                half,
                "accept",
                format_args!("on {local}"),
            );
            (connection, at)
        });
        Ok((
            SimTcpStream {
                world: world.clone(),
                half,
                connection,
                end: ConnectionEnd::Server,
                local,
                peer,
            },
            peer,
        ))
    }

    fn local_addr(&self) -> Result<SocketAddr, NetworkError> {
        Ok(self.shown)
    }
}

impl Drop for SimTcpListener {
    fn drop(&mut self) {
        self.world.with(|state| {
            let owned = state
                .network
                .listeners
                .get(&self.local)
                .is_some_and(|l| l.owner == self.owner);
            if owned && let Some(listener) = state.network.listeners.remove(&self.local) {
                for (half, _) in listener.backlog {
                    state.network.close(&mut state.core, half, true);
                    state.network.remove(half);
                }
            }
        });
    }
}
