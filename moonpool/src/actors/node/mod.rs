//! Floor 5 (the top): an actor node. [`ActorNodeBuilder`] registers actor types with their
//! placement, chooses the state backend, loads the node's directory partition and serves the
//! node protocol ([`NodeApi`](super::wire::NodeApi)); [`ActorNode`] is the running node: its
//! [`client`](ActorNode::client), its counts, and [`shutdown`](ActorNode::shutdown), which drains.
//!
//! The builder and `start` are in `builder`, the node protocol's handlers and the remote state
//! store in `service`; this file holds what both share ([`NodeInner`]) and the running node.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use moonpool_core::{Endpoint, NetworkAddress, Providers, TimeProvider, UID, assert_sometimes};
use moonpool_transport::NetTransport;

use super::actor::{ActivationObserver, ActorClock, Factory};
use super::client::{ActorClient, Caller};
use super::config::ActorConfig;
use super::directory::DirectoryPartition;
use super::error::ActorError;
use super::fencing::ClusterConfig;
use super::host::Host;
use super::identity::ActorId;
use super::membership::{MembershipTable, MembershipView, ViewCell};
use super::router::{Router, RouterCaller};
use super::state::StateStore;
use super::ticks::ReminderTable;
use super::wire::{Entry, NodeApiClient, NodeApiServer, Revocation};

mod builder;
mod service;

pub use builder::{ActorNodeBuilder, ActorStartError};
pub(crate) use service::NodeService;
use service::RemoteStateStore;

/// Everything a node is made of, shared by its service handlers and activation tasks.
pub(crate) struct NodeInner<P: Providers> {
    pub(crate) providers: P,
    pub(crate) transport: NetTransport,
    pub(crate) view: Arc<ViewCell>,
    pub(crate) me: NetworkAddress,
    pub(crate) incarnation: UID,
    pub(crate) config: ActorConfig,
    pub(crate) cluster: ClusterConfig,
    pub(crate) factories: BTreeMap<String, Factory>,
    pub(crate) host: Host,
    /// Deliveries to this node's host whose answers are on their way back.
    pub(crate) in_flight: super::inflight::InFlight,
    pub(crate) router: Arc<Router<P>>,
    pub(crate) directory: DirectoryPartition<P::Storage>,
    pub(crate) backend: Arc<dyn StateStore>,
    /// Where activations keep state when not at their directory owner (the cluster process).
    pub(crate) activation_store: Option<Arc<dyn StateStore>>,
    pub(crate) membership: Option<Arc<dyn MembershipTable>>,
    pub(crate) observer: Option<Arc<dyn ActivationObserver>>,
    pub(crate) data: Option<Arc<dyn std::any::Any + Send + Sync>>,
    /// Where activations register durable reminders (`None`: they cannot).
    pub(crate) reminders: Option<Arc<dyn ReminderTable>>,
}

impl<P: Providers> NodeInner<P> {
    /// The node protocol at `node`.
    pub(crate) fn api(&self, node: NetworkAddress) -> NodeApiClient {
        NodeApiClient::new(Endpoint::new(node, self.config.service_base))
    }

    /// A client that routes through this node.
    pub(crate) fn client(&self) -> ActorClient {
        ActorClient::new(Arc::new(RouterCaller(Arc::clone(&self.router))) as Arc<dyn Caller>)
    }

    /// The state store activations on this node use: requests to each identity's home node.
    pub(crate) fn remote_state(&self) -> Arc<dyn StateStore> {
        if let Some(store) = &self.activation_store {
            return Arc::clone(store);
        }
        Arc::new(RemoteStateStore {
            transport: self.transport.clone(),
            view: Arc::clone(&self.view),
            base: self.config.service_base,
            timeout: self.config.directory_timeout,
        })
    }

    pub(crate) fn clock(&self) -> Arc<dyn ActorClock> {
        Arc::new(Clock(self.providers.time().clone()))
    }

    /// The local clock that leases are measured by.
    pub(crate) fn timer(&self) -> Duration {
        self.providers.time().timer()
    }

    /// Directory `stale` at the owner: revoke `entry` at its host, remove it if revoked (or if
    /// its hold ran out: its host has stopped processing).
    async fn handle_stale(&self, id: ActorId, entry: Entry) -> Result<(), ActorError> {
        if !self.directory.begin_revoke(&id, &entry)? {
            return Ok(());
        }
        if self.directory.expired(&id, &entry, self.timer()) {
            assert_sometimes!(true, "an expired grant is removed without its host");
            return self.directory.finish_revoke(&id, &entry, true).await;
        }
        let answer = self
            .api(entry.node)
            .revoke(&self.transport, id.clone(), entry)
            .try_get_reply()
            .timeout(self.config.directory_timeout)
            .await;
        let revoked = matches!(answer, Ok(Revocation::Revoked));
        self.directory.finish_revoke(&id, &entry, revoked).await
    }
}

struct Clock<T: TimeProvider>(T);

impl<T: TimeProvider> ActorClock for Clock<T> {
    fn now(&self) -> Duration {
        self.0.now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(self.0.sleep(duration))
    }
}

/// A running actor node.
pub struct ActorNode<P: Providers> {
    inner: Arc<NodeInner<P>>,
    server: Option<NodeApiServer>,
    heartbeat: Option<moonpool_core::JoinHandle<()>>,
    /// The task that delivers the reminders this node owns.
    reminding: Option<moonpool_core::JoinHandle<()>>,
}

impl<P: Providers> Drop for ActorNode<P> {
    fn drop(&mut self) {
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
        }
        if let Some(reminding) = self.reminding.take() {
            reminding.abort();
        }
    }
}

impl<P: Providers> std::fmt::Debug for ActorNode<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorNode")
            .field("address", &self.inner.me)
            .field("incarnation", &self.inner.incarnation)
            .field("activations", &self.activations())
            .finish_non_exhaustive()
    }
}

impl<P: Providers> ActorNode<P> {
    /// A builder (see [`ActorNodeBuilder::new`]).
    pub fn builder(
        providers: P,
        transport: NetTransport,
        view: MembershipView,
    ) -> ActorNodeBuilder<P> {
        ActorNodeBuilder::new(providers, transport, view)
    }

    /// A client that routes calls through this node.
    pub fn client(&self) -> ActorClient {
        self.inner.client()
    }

    /// This node's address.
    pub fn address(&self) -> NetworkAddress {
        self.inner.me
    }

    /// This node's incarnation (random per start).
    pub fn incarnation(&self) -> UID {
        self.inner.incarnation
    }

    /// Activations hosted now (including ones activating or deactivating).
    pub fn activations(&self) -> usize {
        self.inner.host.len()
    }

    /// The membership version this node acts on.
    pub fn membership_version(&self) -> u64 {
        self.inner.view.current().version()
    }

    /// Directory entries in this node's partition.
    pub fn directory_entries(&self) -> usize {
        self.inner.directory.len()
    }

    /// Drains the node: new messages are refused (callers retry and, once the entry is
    /// released, reach a new activation elsewhere), every activation finishes its mailbox, runs
    /// `on_deactivate` and releases its directory entry; then the node stops serving. Waits at
    /// most `drain_timeout`; returns the activations still running then (0 after a clean drain).
    ///
    /// With a membership table the node first leaves it (best effort: a node that cannot reach
    /// the table is declared dead later), so the others stop routing to it.
    pub async fn shutdown(mut self) -> usize {
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
        }
        if let Some(reminding) = self.reminding.take() {
            reminding.abort();
        }
        if let Some(table) = &self.inner.membership {
            let _ = self
                .inner
                .providers
                .time()
                .timeout(
                    self.inner.config.directory_timeout,
                    table.leave(self.inner.me),
                )
                .await;
        }
        let left = Host::drain(&self.inner).await;
        // The answers of the drained activations leave before the node stops serving.
        let _ = self
            .inner
            .providers
            .time()
            .timeout(
                self.inner.config.drain_timeout,
                self.inner.in_flight.settled(),
            )
            .await;
        if let Some(server) = self.server.take() {
            server.stop();
        }
        left
    }
}
