//! Floor 3: the cluster process. [`StorageMembershipTable`] is a [`MembershipTable`] kept in one
//! file of a `StorageProvider` (every change written, synced and renamed before it is answered,
//! so it survives a crash of its process); [`ClusterServer`] serves it, and a state store, over
//! the transport at [`CLUSTER_SERVICE_BASE`]; [`RemoteMembershipTable`] and the cluster state
//! store are what nodes use to reach it.
//!
//! The table refuses to declare a member dead while it heard that member's heartbeat within the
//! failure timeout, so a partition between two members (each still reaching the table) removes
//! neither. After a restart the table counts every member as heard at its boot.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use moonpool_core::{Endpoint, NetworkAddress, Providers, TimeProvider, UID};
use moonpool_transport::{CallError, NetTransport, ReplyError, TransportError, service};
use serde::{Deserialize, Serialize};

use super::durable;
use super::error::StateError;
use super::identity::ActorId;
use super::membership::{MembershipError, MembershipTable, MembershipView};
use super::state::{StateStore, StoredState};

/// The base token the cluster process serves at.
pub const CLUSTER_SERVICE_BASE: UID = UID::well_known(43);

/// What the cluster process answers.
#[service(in_flight_max = 1024)]
pub trait ClusterApi {
    /// A member's heartbeat; the current view.
    async fn heartbeat(
        &self,
        node: NetworkAddress,
        incarnation: UID,
    ) -> Result<MembershipView, MembershipError>;
    /// Adds a member.
    async fn join(&self, node: NetworkAddress) -> Result<MembershipView, MembershipError>;
    /// Removes a member.
    async fn leave(&self, node: NetworkAddress) -> Result<MembershipView, MembershipError>;
    /// Removes a member another one suspects, unless it still heartbeats.
    async fn declare_dead(
        &self,
        node: NetworkAddress,
        reporter: NetworkAddress,
    ) -> Result<MembershipView, MembershipError>;
    /// State store: read for grant `epoch` (raises the fence).
    async fn read_state(&self, id: ActorId, epoch: u64) -> Result<StoredState, StateError>;
    /// State store: conditional write.
    async fn write_state(
        &self,
        id: ActorId,
        epoch: u64,
        expected: u64,
        data: String,
    ) -> Result<u64, StateError>;
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TableFile {
    version: u64,
    members: Vec<NetworkAddress>,
}

struct TableInner<P: Providers> {
    providers: P,
    path: PathBuf,
    failure_timeout: Duration,
    view: Mutex<MembershipView>,
    /// Last heartbeat heard per node (local clock); every member counts as heard at boot.
    heard: Mutex<BTreeMap<NetworkAddress, Duration>>,
    boot: Duration,
    turn: tokio::sync::Mutex<()>,
}

/// A [`MembershipTable`] in one file of the providers' storage.
pub struct StorageMembershipTable<P: Providers> {
    inner: Arc<TableInner<P>>,
}

impl<P: Providers> Clone for StorageMembershipTable<P> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<P: Providers> std::fmt::Debug for StorageMembershipTable<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageMembershipTable")
            .field("path", &self.inner.path)
            .field("view", &self.view())
            .finish_non_exhaustive()
    }
}

fn storage_error(reason: String) -> MembershipError {
    MembershipError::Storage { reason }
}

impl<P: Providers> StorageMembershipTable<P> {
    /// Loads the table from `path`; a table that does not exist yet starts at version 1 with
    /// `initial` members (and is written).
    ///
    /// # Errors
    /// [`MembershipError::Storage`] when the file cannot be read, parsed or written.
    pub async fn load(
        providers: P,
        path: impl Into<PathBuf>,
        initial: impl IntoIterator<Item = NetworkAddress>,
        failure_timeout: Duration,
    ) -> Result<Self, MembershipError> {
        let path = path.into();
        let storage = providers.storage().clone();
        let existing = durable::read(&storage, &path)
            .await
            .map_err(storage_error)?;
        let view = match existing {
            Some(bytes) => {
                let file: TableFile = serde_json::from_slice(&bytes).map_err(|error| {
                    storage_error(format!("{} is corrupt: {error}", path.display()))
                })?;
                MembershipView::new(file.version, file.members)
            }
            None => {
                let view = MembershipView::new(1, initial);
                persist(&storage, &path, &view).await?;
                view
            }
        };
        let boot = providers.time().timer();
        Ok(Self {
            inner: Arc::new(TableInner {
                providers,
                path,
                failure_timeout,
                view: Mutex::new(view),
                heard: Mutex::new(BTreeMap::new()),
                boot,
                turn: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The current view.
    pub fn view(&self) -> MembershipView {
        self.inner
            .view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn heard(&self) -> std::sync::MutexGuard<'_, BTreeMap<NetworkAddress, Duration>> {
        self.inner
            .heard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies `change` to the members as one new version (none when nothing changes).
    async fn change(
        &self,
        change: impl FnOnce(&MembershipView) -> Result<Option<Vec<NetworkAddress>>, MembershipError>,
    ) -> Result<MembershipView, MembershipError> {
        let _turn = self.inner.turn.lock().await;
        let current = self.view();
        let Some(members) = change(&current)? else {
            return Ok(current);
        };
        let next = MembershipView::new(current.version() + 1, members);
        persist(self.inner.providers.storage(), &self.inner.path, &next).await?;
        *self
            .inner
            .view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = next.clone();
        Ok(next)
    }

    async fn do_heartbeat(&self, node: NetworkAddress) -> MembershipView {
        let now = self.inner.providers.time().timer();
        self.heard().insert(node, now);
        self.view()
    }

    async fn do_join(&self, node: NetworkAddress) -> Result<MembershipView, MembershipError> {
        let now = self.inner.providers.time().timer();
        self.heard().insert(node, now);
        self.change(|view| {
            Ok((!view.contains(node)).then(|| {
                let mut members = view.members().to_vec();
                members.push(node);
                members
            }))
        })
        .await
    }

    async fn do_leave(&self, node: NetworkAddress) -> Result<MembershipView, MembershipError> {
        self.change(|view| Ok(view.contains(node).then(|| without(view, node))))
            .await
    }

    async fn do_declare_dead(
        &self,
        node: NetworkAddress,
        reporter: NetworkAddress,
    ) -> Result<MembershipView, MembershipError> {
        let now = self.inner.providers.time().timer();
        let heard = self.heard().get(&node).copied().unwrap_or(self.inner.boot);
        let timeout = self.inner.failure_timeout;
        self.change(|view| {
            if !view.contains(node) {
                return Ok(None);
            }
            if now.saturating_sub(heard) < timeout {
                return Err(MembershipError::Refused {
                    node,
                    reason: format!(
                        "{reporter} suspects it, but its heartbeat arrived {:?} ago (failure \
                         timeout {timeout:?})",
                        now.saturating_sub(heard)
                    ),
                });
            }
            Ok(Some(without(view, node)))
        })
        .await
    }
}

fn without(view: &MembershipView, node: NetworkAddress) -> Vec<NetworkAddress> {
    view.members()
        .iter()
        .copied()
        .filter(|member| *member != node)
        .collect()
}

async fn persist<S: moonpool_core::StorageProvider>(
    storage: &S,
    path: &std::path::Path,
    view: &MembershipView,
) -> Result<(), MembershipError> {
    let file = TableFile {
        version: view.version(),
        members: view.members().to_vec(),
    };
    let bytes = serde_json::to_vec(&file).map_err(|error| storage_error(error.to_string()))?;
    durable::replace(storage, path, &bytes)
        .await
        .map_err(storage_error)
}

impl<P: Providers> MembershipTable for StorageMembershipTable<P> {
    fn heartbeat(
        &self,
        node: NetworkAddress,
        _incarnation: UID,
    ) -> BoxFuture<'static, Result<MembershipView, MembershipError>> {
        let table = self.clone();
        Box::pin(async move { Ok(table.do_heartbeat(node).await) })
    }

    fn join(
        &self,
        node: NetworkAddress,
    ) -> BoxFuture<'static, Result<MembershipView, MembershipError>> {
        let table = self.clone();
        Box::pin(async move { table.do_join(node).await })
    }

    fn leave(
        &self,
        node: NetworkAddress,
    ) -> BoxFuture<'static, Result<MembershipView, MembershipError>> {
        let table = self.clone();
        Box::pin(async move { table.do_leave(node).await })
    }

    fn declare_dead(
        &self,
        node: NetworkAddress,
        reporter: NetworkAddress,
    ) -> BoxFuture<'static, Result<MembershipView, MembershipError>> {
        let table = self.clone();
        Box::pin(async move { table.do_declare_dead(node, reporter).await })
    }
}

struct ClusterService<P: Providers> {
    table: StorageMembershipTable<P>,
    state: Arc<dyn StateStore>,
}

impl<P: Providers> ClusterApi for ClusterService<P> {
    async fn heartbeat(
        &self,
        node: NetworkAddress,
        _incarnation: UID,
    ) -> Result<MembershipView, MembershipError> {
        Ok(self.table.do_heartbeat(node).await)
    }

    async fn join(&self, node: NetworkAddress) -> Result<MembershipView, MembershipError> {
        self.table.do_join(node).await
    }

    async fn leave(&self, node: NetworkAddress) -> Result<MembershipView, MembershipError> {
        self.table.do_leave(node).await
    }

    async fn declare_dead(
        &self,
        node: NetworkAddress,
        reporter: NetworkAddress,
    ) -> Result<MembershipView, MembershipError> {
        self.table.do_declare_dead(node, reporter).await
    }

    async fn read_state(&self, id: ActorId, epoch: u64) -> Result<StoredState, StateError> {
        self.state.read(id, epoch).await
    }

    async fn write_state(
        &self,
        id: ActorId,
        epoch: u64,
        expected: u64,
        data: String,
    ) -> Result<u64, StateError> {
        self.state.write(id, epoch, expected, data).await
    }
}

/// The cluster process: the membership table and a state store, served at
/// [`CLUSTER_SERVICE_BASE`] until dropped.
pub struct ClusterServer<P: Providers> {
    table: StorageMembershipTable<P>,
    _server: ClusterApiServer,
}

impl<P: Providers> std::fmt::Debug for ClusterServer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterServer")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl<P: Providers> ClusterServer<P> {
    /// Serves `table` and `state` on `transport` (which must listen).
    ///
    /// # Errors
    /// The transport could not register the service.
    pub fn serve(
        transport: &NetTransport,
        table: StorageMembershipTable<P>,
        state: Arc<dyn StateStore>,
    ) -> Result<Self, TransportError> {
        let server = ClusterApiServer::serve_at(
            transport,
            CLUSTER_SERVICE_BASE,
            ClusterService {
                table: table.clone(),
                state,
            },
        )?;
        Ok(Self {
            table,
            _server: server,
        })
    }

    /// The table served.
    pub fn table(&self) -> &StorageMembershipTable<P> {
        &self.table
    }
}

fn unreachable<E>(
    transport: &NetTransport,
    address: NetworkAddress,
    error: CallError<E>,
) -> Result<MembershipView, MembershipError>
where
    E: Into<MembershipError>,
{
    match error {
        CallError::Service(error) => Err(error.into()),
        CallError::Transport(error) => {
            poke(transport, address, &error);
            Err(MembershipError::Unreachable {
                reason: error.to_string(),
            })
        }
    }
}

/// After "endpoint not found" (the cluster process stopped serving, or had not started yet),
/// the transport refuses that endpoint until it sees the process's next incarnation, which only
/// a connection shows: a ping (never refused) makes one. Sent now, its answer not awaited.
fn poke(transport: &NetTransport, address: NetworkAddress, error: &ReplyError) {
    if matches!(error, ReplyError::EndpointNotFound { .. }) {
        drop(transport.ping(address));
    }
}

/// The membership table of a cluster process, reached over the transport.
#[derive(Clone)]
pub struct RemoteMembershipTable {
    transport: NetTransport,
    address: NetworkAddress,
    api: ClusterApiClient,
    timeout: Duration,
}

impl std::fmt::Debug for RemoteMembershipTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteMembershipTable")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RemoteMembershipTable {
    /// The table served by the cluster process at `address`; each request waits `timeout`.
    pub fn new(transport: NetTransport, address: NetworkAddress, timeout: Duration) -> Self {
        Self {
            transport,
            address,
            api: ClusterApiClient::new(Endpoint::new(address, CLUSTER_SERVICE_BASE)),
            timeout,
        }
    }
}

macro_rules! remote {
    ($self:ident, $method:ident ( $($arg:expr),* )) => {{
        let transport = $self.transport.clone();
        let api = $self.api.clone();
        let (address, timeout) = ($self.address, $self.timeout);
        Box::pin(async move {
            match api.$method(&transport, $($arg),*).try_get_reply().timeout(timeout).await {
                Ok(view) => Ok(view),
                Err(error) => unreachable(&transport, address, error),
            }
        })
    }};
}

impl MembershipTable for RemoteMembershipTable {
    fn heartbeat(
        &self,
        node: NetworkAddress,
        incarnation: UID,
    ) -> BoxFuture<'static, Result<MembershipView, MembershipError>> {
        remote!(self, heartbeat(node, incarnation))
    }

    fn join(
        &self,
        node: NetworkAddress,
    ) -> BoxFuture<'static, Result<MembershipView, MembershipError>> {
        remote!(self, join(node))
    }

    fn leave(
        &self,
        node: NetworkAddress,
    ) -> BoxFuture<'static, Result<MembershipView, MembershipError>> {
        remote!(self, leave(node))
    }

    fn declare_dead(
        &self,
        node: NetworkAddress,
        reporter: NetworkAddress,
    ) -> BoxFuture<'static, Result<MembershipView, MembershipError>> {
        remote!(self, declare_dead(node, reporter))
    }
}

/// Actor state kept by the cluster process (so it does not move when membership changes).
#[derive(Clone)]
pub(crate) struct ClusterStateStore {
    pub(crate) transport: NetTransport,
    pub(crate) address: NetworkAddress,
    pub(crate) timeout: Duration,
}

impl ClusterStateStore {
    fn api(&self) -> ClusterApiClient {
        ClusterApiClient::new(Endpoint::new(self.address, CLUSTER_SERVICE_BASE))
    }
}

fn state_failure(
    transport: &NetTransport,
    node: NetworkAddress,
    error: CallError<StateError>,
) -> StateError {
    match error {
        CallError::Service(error) => error,
        CallError::Transport(error) => {
            poke(transport, node, &error);
            StateError::Unreachable {
                node,
                reason: error.to_string(),
            }
        }
    }
}

impl StateStore for ClusterStateStore {
    fn read(&self, id: ActorId, epoch: u64) -> BoxFuture<'static, Result<StoredState, StateError>> {
        let (store, api) = (self.clone(), self.api());
        Box::pin(async move {
            api.read_state(&store.transport, id, epoch)
                .try_get_reply()
                .timeout(store.timeout)
                .await
                .map_err(|error| state_failure(&store.transport, store.address, error))
        })
    }

    fn write(
        &self,
        id: ActorId,
        epoch: u64,
        expected: u64,
        data: String,
    ) -> BoxFuture<'static, Result<u64, StateError>> {
        let (store, api) = (self.clone(), self.api());
        Box::pin(async move {
            api.write_state(&store.transport, id, epoch, expected, data)
                .try_get_reply()
                .timeout(store.timeout)
                .await
                .map_err(|error| state_failure(&store.transport, store.address, error))
        })
    }
}
