//! Accepted connections: the accept loop of a listening transport, admission against
//! `incoming_connections_max`, and the bookkeeping of the connections' tasks (aborted at
//! shutdown). Each admitted connection is run by the connection floor
//! (`connection::run_accepted`).

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use moonpool_core::{
    JoinHandle, NetworkAddress, NetworkProvider, Providers, TaskProvider, TcpListener, TimeProvider,
};

use super::core::{Core, lock};
use crate::connection::{ConnectionHost, run_accepted};

impl Core {
    /// Reserves a slot for an accepted connection; `None` when at the bound.
    fn admit_connection(&self) -> Option<u64> {
        let mut incoming = lock(&self.incoming);
        if self.is_shut_down() || incoming.connections.len() >= self.config.incoming_connections_max
        {
            self.counters
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let id = incoming.next_id;
        incoming.next_id += 1;
        incoming.connections.insert(id, None);
        self.counters
            .connections_accepted
            .fetch_add(1, Ordering::Relaxed);
        Some(id)
    }

    /// Records the task of an admitted connection.
    fn connection_started(&self, id: u64, handle: JoinHandle<()>) {
        let mut incoming = lock(&self.incoming);
        match incoming.connections.get_mut(&id) {
            Some(slot) => *slot = Some(handle),
            // It already finished.
            None => drop(handle),
        }
    }

    /// An accepted connection ended.
    fn connection_finished(&self, id: u64) {
        let handle = lock(&self.incoming).connections.remove(&id);
        drop(handle);
    }
}

/// Accepts connections until the listener fails for good.
pub(crate) async fn run_accept_loop<P: Providers>(
    providers: P,
    core: Arc<Core>,
    listener: <P::Network as NetworkProvider>::TcpListener,
) {
    loop {
        match listener.accept().await {
            Ok((stream, socket)) => {
                let Some(id) = core.admit_connection() else {
                    drop(stream);
                    continue;
                };
                let task_core = Arc::clone(&core);
                let name = format!("moonpool-transport/in/{socket}");
                let handle = providers.task().spawn(&name, async move {
                    let host: Arc<dyn ConnectionHost> = Arc::<Core>::clone(&task_core);
                    run_accepted(host, stream, NetworkAddress::from(socket)).await;
                    task_core.connection_finished(id);
                });
                core.connection_started(id, handle);
            }
            Err(error) => {
                if core.is_shut_down() || error.kind() == io::ErrorKind::NotConnected {
                    tracing::debug!(%error, "listener closed");
                    return;
                }
                tracing::warn!(%error, "accept failed; retrying");
                providers
                    .time()
                    .sleep(core.config.reconnect_delay_initial)
                    .await;
            }
        }
    }
}
