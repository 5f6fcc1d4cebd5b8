//! Floor 5 (the top): an actor node. [`ActorNodeBuilder`] registers actor types with their
//! placement, chooses the state backend, loads the node's directory partition and serves the
//! node protocol ([`NodeApi`](super::wire::NodeApi)); [`ActorNode`] is the running node: its
//! [`client`](ActorNode::client), its counts, and [`shutdown`](ActorNode::shutdown), which drains.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use moonpool_core::{
    Endpoint, NetworkAddress, Providers, TaskProvider, TimeProvider, UID, assert_sometimes,
};
use moonpool_transport::{NetTransport, TransportError};

use super::actor::{ActivationObserver, Actor, ActorClock, Factory, factory};
use super::client::{ActorClient, Caller};
use super::cluster::{ClusterStateStore, RemoteMembershipTable};
use super::config::{ActorConfig, ActorConfigError};
use super::directory::DirectoryPartition;
use super::error::{ActorError, StateError};
use super::fencing::{ClusterConfig, ClusterConfigError};
use super::host::Host;
use super::identity::ActorId;
use super::membership::{MembershipTable, MembershipView, ViewCell};
use super::placement::{Placement, PlacementStrategy};
use super::reminders::{ReminderConfig, ReminderConfigError};
use super::router::{Router, RouterCaller};
use super::state::{FileStateStore, MemoryStateStore, StateStore, StoredState};
use super::ticks::ReminderTable;
use super::wire::{
    Delivered, Entry, Envelope, NodeApi, NodeApiClient, NodeApiServer, Refusal, Registration,
    Revocation,
};

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum ActorStartError {
    /// A bad configuration value.
    #[error(transparent)]
    Config(#[from] ActorConfigError),
    /// A bad cluster (fencing) configuration value.
    #[error(transparent)]
    ClusterConfig(#[from] ClusterConfigError),
    /// The transport has no local address (it must listen: other members call it).
    #[error("the transport has no local address: build it with build_listening()")]
    NotListening,
    /// The transport's address is not in the membership view.
    #[error("{address} is not a member of the view {members:?}")]
    NotAMember {
        /// This node's address.
        address: NetworkAddress,
        /// The view's members.
        members: Vec<NetworkAddress>,
    },
    /// An actor type was registered twice.
    #[error("actor type `{0}` is registered twice")]
    DuplicateType(String),
    /// The directory partition could not be loaded.
    #[error(transparent)]
    Directory(ActorError),
    /// The node protocol could not be served.
    #[error("serving the actor protocol failed: {0}")]
    Transport(#[from] TransportError),
    /// A bad reminder configuration value.
    #[error(transparent)]
    ReminderConfig(#[from] ReminderConfigError),
}

/// Where this node stores the state of the identities it is the home of.
enum Backend {
    Files(PathBuf),
    Memory,
    Custom(Arc<dyn StateStore>),
    /// Activations read and write state at the cluster process.
    Cluster(NetworkAddress),
}

/// Builds an [`ActorNode`].
pub struct ActorNodeBuilder<P: Providers> {
    providers: P,
    transport: NetTransport,
    view: MembershipView,
    config: ActorConfig,
    types: Vec<(String, Factory, Arc<dyn PlacementStrategy>)>,
    backend: Backend,
    directory_file: PathBuf,
    observer: Option<Arc<dyn ActivationObserver>>,
    data: Option<Arc<dyn std::any::Any + Send + Sync>>,
    cluster: ClusterConfig,
    membership: Option<Arc<dyn MembershipTable>>,
    reminders: Option<(Arc<dyn ReminderTable>, ReminderConfig)>,
}

impl<P: Providers> std::fmt::Debug for ActorNodeBuilder<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorNodeBuilder")
            .field("view", &self.view)
            .field("config", &self.config)
            .field(
                "types",
                &self.types.iter().map(|t| &t.0).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<P: Providers> ActorNodeBuilder<P> {
    /// A node on `transport` (which must listen at an address of `view`), taking time, tasks,
    /// randomness and storage from `providers`. State goes to files named `actor-*.state` and
    /// the directory partition to `actor-directory.json`, in the storage's working directory,
    /// unless [`state_dir`](Self::state_dir) says otherwise.
    pub fn new(providers: P, transport: NetTransport, view: MembershipView) -> Self {
        Self {
            providers,
            transport,
            view,
            config: ActorConfig::default(),
            types: Vec::new(),
            backend: Backend::Files(PathBuf::new()),
            directory_file: PathBuf::from("actor-directory.json"),
            observer: None,
            data: None,
            cluster: ClusterConfig::default(),
            membership: None,
            reminders: None,
        }
    }

    /// Keeps durable reminders in `table` (for example a
    /// [`RemoteReminderTable`](super::RemoteReminderTable) to the cluster process): activations
    /// register theirs with [`ActorContext::register_reminder`](super::ActorContext::register_reminder),
    /// and this node delivers the reminders of the identities whose directory partition it owns,
    /// as `config` says. Without a table, registering a reminder is an error.
    pub fn reminders(mut self, table: Arc<dyn ReminderTable>, config: ReminderConfig) -> Self {
        self.reminders = Some((table, config));
        self
    }

    /// The fencing configuration (grant and membership leases, clock drift bound).
    pub fn cluster_config(mut self, config: ClusterConfig) -> Self {
        self.cluster = config;
        self
    }

    /// Takes the membership from `table` instead of the fixed view: the node heartbeats to it,
    /// joins when it is not a member, asks it to declare members dead that its transport's
    /// failure monitor has seen failed for `failure_timeout`, and acts only on the versions it
    /// answers (the view given to the builder is then only the starting point for routing).
    pub fn membership(mut self, table: Arc<dyn MembershipTable>) -> Self {
        self.membership = Some(table);
        self
    }

    /// Joins the cluster served by the cluster process at `address`
    /// ([`ClusterServer`](super::ClusterServer)): its membership table, and its state store for
    /// every activation of this node (state then does not move when members come and go).
    pub fn cluster(mut self, address: NetworkAddress) -> Self {
        self.membership = Some(Arc::new(RemoteMembershipTable::new(
            self.transport.clone(),
            address,
            self.config.directory_timeout,
        )));
        self.backend = Backend::Cluster(address);
        self
    }

    /// A value every activation on this node can read with [`ActorContext::data`](super::ActorContext::data).
    pub fn data<T: std::any::Any + Send + Sync>(mut self, value: T) -> Self {
        self.data = Some(Arc::new(value));
        self
    }

    /// The configuration.
    pub fn config(mut self, config: ActorConfig) -> Self {
        self.config = config;
        self
    }

    /// Hosts actors of type `A`, placed by `placement`.
    pub fn actor<A: Actor>(self, placement: Placement) -> Self {
        self.actor_with::<A>(Arc::new(placement))
    }

    /// Hosts actors of type `A`, placed by a custom strategy.
    pub fn actor_with<A: Actor>(mut self, placement: Arc<dyn PlacementStrategy>) -> Self {
        self.types
            .push((A::ACTOR_TYPE.to_string(), factory::<A>(), placement));
        self
    }

    /// Keeps state files and the directory partition in `dir` (which must exist).
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        self.directory_file = dir.join("actor-directory.json");
        self.backend = Backend::Files(dir);
        self
    }

    /// Keeps state in memory (lost on reboot; the directory partition stays on disk).
    pub fn state_in_memory(mut self) -> Self {
        self.backend = Backend::Memory;
        self
    }

    /// Keeps state in `store`.
    pub fn state_store(mut self, store: Arc<dyn StateStore>) -> Self {
        self.backend = Backend::Custom(store);
        self
    }

    /// Tells `observer` about every activation's start and end.
    pub fn observer(mut self, observer: Arc<dyn ActivationObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Loads the directory partition and starts serving.
    ///
    /// # Errors
    /// [`ActorStartError`] names what is wrong.
    pub async fn start(self) -> Result<ActorNode<P>, ActorStartError> {
        self.config.validate()?;
        self.cluster.validate()?;
        if let Some((_, config)) = &self.reminders {
            config.validate()?;
        }
        let address = self
            .transport
            .local_address()
            .ok_or(ActorStartError::NotListening)?;
        if self.membership.is_none() && !self.view.contains(address) {
            return Err(ActorStartError::NotAMember {
                address,
                members: self.view.members().to_vec(),
            });
        }
        let mut types = BTreeMap::new();
        for (name, make, placement) in self.types {
            if types.insert(name.clone(), (make, placement)).is_some() {
                return Err(ActorStartError::DuplicateType(name));
            }
        }
        // Served before anything else, answering "starting" until the node is ready.
        let ready = Arc::new(std::sync::OnceLock::new());
        let server = NodeApiServer::serve_at(
            &self.transport,
            self.config.service_base,
            super::starting::Starting {
                ready: Arc::clone(&ready),
                me: address,
            },
        )?;
        let time = self.providers.time().clone();
        let incarnation = UID::random(self.providers.random());
        // With a table, the node acts on nothing until the table answers (version 0, expired),
        // joins if it is not a member, and grants nothing for the quiet period: an earlier
        // incarnation, or the identities' previous owners, may have granted what this one does
        // not know.
        let (view, until, quiet_until) = match &self.membership {
            None => (self.view.clone(), None, Duration::ZERO),
            Some(_) => (
                MembershipView::new(0, []),
                Some(Duration::ZERO),
                time.timer().saturating_add(self.cluster.quiet_period()),
            ),
        };
        let storage = self.providers.storage().clone();
        let directory = DirectoryPartition::load(
            address,
            storage.clone(),
            self.directory_file,
            time.timer(),
            self.cluster.grant_hold(),
            quiet_until,
        )
        .await
        .map_err(ActorStartError::Directory)?;
        let mut activation_store = None;
        let backend: Arc<dyn StateStore> = match self.backend {
            Backend::Files(dir) => Arc::new(FileStateStore::new(storage, dir)),
            Backend::Memory => Arc::new(MemoryStateStore::new()),
            Backend::Custom(store) => store,
            Backend::Cluster(cluster) => {
                activation_store = Some(Arc::new(ClusterStateStore {
                    transport: self.transport.clone(),
                    address: cluster,
                    timeout: self.config.directory_timeout,
                }) as Arc<dyn StateStore>);
                Arc::new(MemoryStateStore::new())
            }
        };
        let view = Arc::new(ViewCell::new(view, until));
        let inner = Arc::new(NodeInner {
            router: Router::new(
                self.providers.clone(),
                self.transport.clone(),
                Arc::clone(&view),
                Some(address),
                self.config.clone(),
                types
                    .iter()
                    .map(|(name, (_, placement))| (name.clone(), Arc::clone(placement)))
                    .collect(),
            ),
            host: Host::new(),
            in_flight: super::inflight::InFlight::default(),
            providers: self.providers.clone(),
            transport: self.transport.clone(),
            view,
            me: address,
            incarnation,
            config: self.config.clone(),
            cluster: self.cluster.clone(),
            factories: types
                .into_iter()
                .map(|(name, (make, _))| (name, make))
                .collect(),
            directory,
            backend,
            activation_store,
            membership: self.membership.clone(),
            observer: self.observer,
            data: self.data,
            reminders: self.reminders.as_ref().map(|(table, _)| Arc::clone(table)),
        });
        let _ = ready.set(NodeService {
            inner: Arc::clone(&inner),
        });
        let heartbeat = Some(match self.membership {
            Some(table) => {
                let task = super::heartbeat::run(Arc::downgrade(&inner), table);
                inner.providers.task().spawn("actor membership", task)
            }
            None => {
                let task = super::heartbeat::keepalive(Arc::downgrade(&inner));
                inner.providers.task().spawn("actor keepalive", task)
            }
        });
        let reminding = self
            .reminders
            .map(|(table, config)| super::reminding::start(&inner, table, config));
        Ok(ActorNode {
            inner,
            server: Some(server),
            heartbeat,
            reminding,
        })
    }
}

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

/// State operations sent to the identity's home node (the owner of its directory entry).
struct RemoteStateStore {
    transport: NetTransport,
    view: Arc<ViewCell>,
    base: UID,
    timeout: Duration,
}

fn state_failure(
    node: NetworkAddress,
    error: moonpool_transport::CallError<StateError>,
) -> StateError {
    match error {
        moonpool_transport::CallError::Service(error) => error,
        moonpool_transport::CallError::Transport(error) => StateError::Unreachable {
            node,
            reason: error.to_string(),
        },
    }
}

impl StateStore for RemoteStateStore {
    fn read(&self, id: ActorId, epoch: u64) -> BoxFuture<'static, Result<StoredState, StateError>> {
        let transport = self.transport.clone();
        let owner = self.view.current().owner(&id);
        let (base, timeout) = (self.base, self.timeout);
        Box::pin(async move {
            let node = owner.map_err(|error| StateError::Storage {
                id: id.clone(),
                reason: error.to_string(),
            })?;
            NodeApiClient::new(Endpoint::new(node, base))
                .read_state(&transport, id, epoch)
                .try_get_reply()
                .timeout(timeout)
                .await
                .map_err(|error| state_failure(node, error))
        })
    }

    fn write(
        &self,
        id: ActorId,
        epoch: u64,
        expected: u64,
        data: String,
    ) -> BoxFuture<'static, Result<u64, StateError>> {
        let transport = self.transport.clone();
        let owner = self.view.current().owner(&id);
        let (base, timeout) = (self.base, self.timeout);
        Box::pin(async move {
            let node = owner.map_err(|error| StateError::Storage {
                id: id.clone(),
                reason: error.to_string(),
            })?;
            NodeApiClient::new(Endpoint::new(node, base))
                .write_state(&transport, id, epoch, expected, data)
                .try_get_reply()
                .timeout(timeout)
                .await
                .map_err(|error| state_failure(node, error))
        })
    }
}

/// The node protocol's implementation (served through [`Starting`](super::starting::Starting)).
pub(crate) struct NodeService<P: Providers> {
    inner: Arc<NodeInner<P>>,
}

impl<P: Providers> NodeService<P> {
    /// The directory operations are only answered by the identity's owner, under a view it
    /// may still act on.
    fn owned(&self, id: &ActorId) -> Result<MembershipView, ActorError> {
        let Some(view) = self.inner.view.valid(self.inner.timer()) else {
            return Err(ActorError::Unavailable {
                id: id.clone(),
                node: self.inner.me,
                reason: "its membership view has expired (the table did not answer)".into(),
            });
        };
        let owner = view.owner(id)?;
        if owner == self.inner.me {
            Ok(view)
        } else {
            Err(ActorError::Directory {
                node: self.inner.me,
                reason: format!("{id} belongs to the partition of {owner}"),
            })
        }
    }
}

impl<P: Providers> NodeApi for NodeService<P> {
    async fn deliver(&self, envelope: Envelope) -> Result<Delivered, Refusal> {
        let kept = envelope.clone();
        let answered = {
            let _in_flight = self.inner.in_flight.enter();
            Host::deliver(&self.inner, envelope).await
        };
        match answered {
            Err(Refusal::NotHere) => forward(&self.inner, kept).await,
            other => other,
        }
    }

    async fn register(
        &self,
        id: ActorId,
        proposal: NetworkAddress,
    ) -> Result<Registration, ActorError> {
        let view = self.owned(&id)?;
        let hold = self.inner.cluster.grant_hold();
        let now = self.inner.timer();
        match self
            .inner
            .directory
            .register(id.clone(), proposal, view.version(), now, hold)
            .await?
        {
            Ok(registration) => Ok(registration),
            Err(quiet) => {
                assert_sometimes!(true, "a quiet partition defers a grant");
                Err(ActorError::Unavailable {
                    id,
                    node: self.inner.me,
                    reason: format!(
                        "its directory partition grants nothing for {:?} (quiet after a view change)",
                        quiet.left
                    ),
                })
            }
        }
    }

    async fn confirm(
        &self,
        id: ActorId,
        entry: Entry,
        activation: UID,
    ) -> Result<bool, ActorError> {
        self.owned(&id)?;
        let (now, hold) = (self.inner.timer(), self.inner.cluster.grant_hold());
        self.inner
            .directory
            .confirm(&id, &entry, activation, now, hold)
            .await
    }

    async fn release(&self, id: ActorId, entry: Entry, activation: UID) -> Result<(), ActorError> {
        self.owned(&id)?;
        let now = self.inner.timer();
        self.inner
            .directory
            .release(&id, &entry, activation, now)
            .await
    }

    async fn stale(&self, id: ActorId, entry: Entry) -> Result<(), ActorError> {
        self.owned(&id)?;
        self.inner.handle_stale(id, entry).await
    }

    async fn revoke(&self, id: ActorId, entry: Entry) -> Revocation {
        self.inner.host.revoke(self.inner.me, &id, &entry)
    }

    async fn read_state(&self, id: ActorId, epoch: u64) -> Result<StoredState, StateError> {
        self.inner.backend.read(id, epoch).await
    }

    async fn write_state(
        &self,
        id: ActorId,
        epoch: u64,
        expected: u64,
        data: String,
    ) -> Result<u64, StateError> {
        self.inner.backend.write(id, epoch, expected, data).await
    }

    async fn call(&self, id: ActorId, method: u32, body: String) -> Result<String, ActorError> {
        self.inner.router.route(id, method, body).await
    }
}

/// Host-side forwarding: the host refused `envelope` as not hosted here (it was not run), so
/// this node routes it on with the attempts it has left; past `max_hops` in all the caller gets
/// `TooManyHops`. The caller learns the entry that answered.
async fn forward<P: Providers>(
    inner: &NodeInner<P>,
    envelope: Envelope,
) -> Result<Delivered, Refusal> {
    assert_sometimes!(true, "a host forwards a message it does not host");
    match inner.router.forward(envelope).await {
        Ok((body, entry)) => Ok(Delivered {
            body,
            load: inner.host.len(),
            moved: Some(entry),
        }),
        Err(error) => Err(Refusal::Failed(error)),
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
