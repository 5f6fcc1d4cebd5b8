//! Floor 3, beside `cluster` and `reminders`: a [`ReminderTable`] over the transport.
//! [`ReminderServer`] serves a table at [`REMINDER_SERVICE_BASE`] (typically on the cluster
//! process, beside the [`ClusterServer`](super::ClusterServer));
//! [`RemoteReminderTable`] is what nodes use to reach it.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use moonpool_core::{Endpoint, NetworkAddress, UID};
use moonpool_transport::{CallError, NetTransport, ReplyError, TransportError, service};

use super::identity::ActorId;
use super::ticks::{DueReminder, ReminderError, ReminderTable};

/// The base token a [`ReminderServer`] serves at.
pub const REMINDER_SERVICE_BASE: UID = UID::well_known(44);

/// What a [`ReminderServer`] answers (the [`ReminderTable`] operations).
#[service(in_flight_max = 1024)]
pub trait ReminderApi {
    /// [`ReminderTable::register`].
    async fn register(
        &self,
        id: ActorId,
        name: String,
        delay: Duration,
        period: Option<Duration>,
    ) -> Result<UID, ReminderError>;
    /// [`ReminderTable::unregister`].
    async fn unregister(&self, id: ActorId, name: String) -> Result<bool, ReminderError>;
    /// [`ReminderTable::list`].
    async fn list(
        &self,
        members: Vec<NetworkAddress>,
        owner: NetworkAddress,
    ) -> Result<Vec<DueReminder>, ReminderError>;
    /// [`ReminderTable::claim`].
    async fn claim(
        &self,
        id: ActorId,
        name: String,
        registration: UID,
        tick: u64,
    ) -> Result<bool, ReminderError>;
    /// [`ReminderTable::acknowledge`].
    async fn acknowledge(
        &self,
        id: ActorId,
        name: String,
        registration: UID,
        tick: u64,
    ) -> Result<(), ReminderError>;
}

struct ReminderService {
    table: Arc<dyn ReminderTable>,
}

impl ReminderApi for ReminderService {
    async fn register(
        &self,
        id: ActorId,
        name: String,
        delay: Duration,
        period: Option<Duration>,
    ) -> Result<UID, ReminderError> {
        self.table.register(id, name, delay, period).await
    }

    async fn unregister(&self, id: ActorId, name: String) -> Result<bool, ReminderError> {
        self.table.unregister(id, name).await
    }

    async fn list(
        &self,
        members: Vec<NetworkAddress>,
        owner: NetworkAddress,
    ) -> Result<Vec<DueReminder>, ReminderError> {
        self.table.list(members, owner).await
    }

    async fn claim(
        &self,
        id: ActorId,
        name: String,
        registration: UID,
        tick: u64,
    ) -> Result<bool, ReminderError> {
        self.table.claim(id, name, registration, tick).await
    }

    async fn acknowledge(
        &self,
        id: ActorId,
        name: String,
        registration: UID,
        tick: u64,
    ) -> Result<(), ReminderError> {
        self.table.acknowledge(id, name, registration, tick).await
    }
}

/// Serves a [`ReminderTable`] at [`REMINDER_SERVICE_BASE`] until dropped.
pub struct ReminderServer {
    _server: ReminderApiServer,
}

impl std::fmt::Debug for ReminderServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReminderServer").finish_non_exhaustive()
    }
}

impl ReminderServer {
    /// Serves `table` on `transport` (which must listen).
    ///
    /// # Errors
    /// The transport could not register the service.
    pub fn serve(
        transport: &NetTransport,
        table: Arc<dyn ReminderTable>,
    ) -> Result<Self, TransportError> {
        let server = ReminderApiServer::serve_at(
            transport,
            REMINDER_SERVICE_BASE,
            ReminderService { table },
        )?;
        Ok(Self { _server: server })
    }
}

/// The reminder table served by a [`ReminderServer`] at `address`, reached over the transport.
#[derive(Clone)]
pub struct RemoteReminderTable {
    transport: NetTransport,
    address: NetworkAddress,
    api: ReminderApiClient,
    timeout: Duration,
}

impl std::fmt::Debug for RemoteReminderTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteReminderTable")
            .field("address", &self.address)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RemoteReminderTable {
    /// The table served at `address`; each request waits at most `timeout`.
    pub fn new(transport: NetTransport, address: NetworkAddress, timeout: Duration) -> Self {
        Self {
            transport,
            address,
            api: ReminderApiClient::new(Endpoint::new(address, REMINDER_SERVICE_BASE)),
            timeout,
        }
    }
}

fn failed(
    transport: &NetTransport,
    address: NetworkAddress,
    error: CallError<ReminderError>,
) -> ReminderError {
    match error {
        CallError::Service(error) => error,
        CallError::Transport(error) => {
            // After "endpoint not found" (the process restarted or had not started serving),
            // the transport refuses the endpoint until it sees the next incarnation, which a
            // ping's connection shows.
            if matches!(error, ReplyError::EndpointNotFound { .. }) {
                drop(transport.ping(address));
            }
            ReminderError::Unreachable {
                reason: error.to_string(),
            }
        }
    }
}

macro_rules! remote {
    ($self:ident, $method:ident ( $($arg:expr),* )) => {{
        let transport = $self.transport.clone();
        let api = $self.api.clone();
        let (address, timeout) = ($self.address, $self.timeout);
        Box::pin(async move {
            api.$method(&transport, $($arg),*)
                .try_get_reply()
                .timeout(timeout)
                .await
                .map_err(|error| failed(&transport, address, error))
        })
    }};
}

impl ReminderTable for RemoteReminderTable {
    fn register(
        &self,
        id: ActorId,
        name: String,
        delay: Duration,
        period: Option<Duration>,
    ) -> BoxFuture<'static, Result<UID, ReminderError>> {
        remote!(self, register(id, name, delay, period))
    }

    fn unregister(
        &self,
        id: ActorId,
        name: String,
    ) -> BoxFuture<'static, Result<bool, ReminderError>> {
        remote!(self, unregister(id, name))
    }

    fn list(
        &self,
        members: Vec<NetworkAddress>,
        owner: NetworkAddress,
    ) -> BoxFuture<'static, Result<Vec<DueReminder>, ReminderError>> {
        remote!(self, list(members, owner))
    }

    fn claim(
        &self,
        id: ActorId,
        name: String,
        registration: UID,
        tick: u64,
    ) -> BoxFuture<'static, Result<bool, ReminderError>> {
        remote!(self, claim(id, name, registration, tick))
    }

    fn acknowledge(
        &self,
        id: ActorId,
        name: String,
        registration: UID,
        tick: u64,
    ) -> BoxFuture<'static, Result<(), ReminderError>> {
        remote!(self, acknowledge(id, name, registration, tick))
    }
}
