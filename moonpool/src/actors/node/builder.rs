//! The node's builder: actor types, placement, state backend, and `start`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use moonpool_core::{NetworkAddress, Providers, TaskProvider, TimeProvider, UID};
use moonpool_transport::{NetTransport, TransportError};

use super::{ActorNode, NodeInner, NodeService};
use crate::actors::actor::{ActivationObserver, Actor, Factory, factory};
use crate::actors::cluster::{ClusterStateStore, RemoteMembershipTable};
use crate::actors::config::{ActorConfig, ActorConfigError};
use crate::actors::directory::DirectoryPartition;
use crate::actors::error::ActorError;
use crate::actors::fencing::{ClusterConfig, ClusterConfigError};
use crate::actors::host::Host;
use crate::actors::membership::{MembershipTable, MembershipView, ViewCell};
use crate::actors::placement::{Placement, PlacementStrategy};
use crate::actors::reminders::{ReminderConfig, ReminderConfigError};
use crate::actors::router::Router;
use crate::actors::state::{FileStateStore, MemoryStateStore, StateStore};
use crate::actors::ticks::ReminderTable;
use crate::actors::wire::NodeApiServer;

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
    /// [`RemoteReminderTable`](crate::actors::RemoteReminderTable) to the cluster process): activations
    /// register theirs with [`ActorContext::register_reminder`](crate::actors::ActorContext::register_reminder),
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
    /// ([`ClusterServer`](crate::actors::ClusterServer)): its membership table, and its state store for
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

    /// A value every activation on this node can read with [`ActorContext::data`](crate::actors::ActorContext::data).
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
            crate::actors::starting::Starting {
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
            in_flight: crate::actors::inflight::InFlight::default(),
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
                let task = crate::actors::heartbeat::run(Arc::downgrade(&inner), table);
                inner.providers.task().spawn("actor membership", task)
            }
            None => {
                let task = crate::actors::heartbeat::keepalive(Arc::downgrade(&inner));
                inner.providers.task().spawn("actor keepalive", task)
            }
        });
        let reminding = self
            .reminders
            .map(|(table, config)| crate::actors::reminding::start(&inner, table, config));
        Ok(ActorNode {
            inner,
            server: Some(server),
            heartbeat,
            reminding,
        })
    }
}
