//! The node protocol's handlers ([`NodeApi`]) and the remote state store activations use.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use moonpool_core::{Endpoint, NetworkAddress, Providers, UID, assert_sometimes};
use moonpool_transport::NetTransport;

use super::NodeInner;
use crate::actors::error::{ActorError, StateError};
use crate::actors::host::Host;
use crate::actors::identity::ActorId;
use crate::actors::membership::{MembershipView, ViewCell};
use crate::actors::state::{StateStore, StoredState};
use crate::actors::wire::{
    Delivered, Entry, Envelope, NodeApi, NodeApiClient, Refusal, Registration, Revocation,
};

/// State operations sent to the identity's home node (the owner of its directory entry).
pub(super) struct RemoteStateStore {
    pub(super) transport: NetTransport,
    pub(super) view: Arc<ViewCell>,
    pub(super) base: UID,
    pub(super) timeout: Duration,
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

/// The node protocol's implementation (served through [`Starting`](crate::actors::starting::Starting)).
pub(crate) struct NodeService<P: Providers> {
    pub(super) inner: Arc<NodeInner<P>>,
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
