//! Floor 5, beside `node`: the node protocol while the node starts. The protocol is served as
//! soon as `start` begins (before the directory partition is loaded and the first membership
//! view is known), answering every request with a typed "not yet" (retry, unavailable,
//! unreachable state, an `Active` revocation that removes nothing): a request that arrived before
//! the service existed would be answered "endpoint not found", which makes callers' transports
//! treat the node's endpoints as gone for as long as this process lives.

use std::sync::{Arc, OnceLock};

use moonpool_core::{NetworkAddress, Providers, UID};

use super::error::{ActorError, StateError};
use super::identity::ActorId;
use super::node::NodeService;
use super::state::StoredState;
use super::wire::{Delivered, Entry, Envelope, NodeApi, Refusal, Registration, Revocation};

/// The served protocol: "starting" answers until `ready` is set.
pub(crate) struct Starting<P: Providers> {
    pub(crate) ready: Arc<OnceLock<NodeService<P>>>,
    pub(crate) me: NetworkAddress,
}

impl<P: Providers> Starting<P> {
    fn unavailable(&self, id: ActorId) -> ActorError {
        ActorError::Unavailable {
            id,
            node: self.me,
            reason: "the node is starting".into(),
        }
    }

    fn unreachable(&self) -> StateError {
        StateError::Unreachable {
            node: self.me,
            reason: "the node is starting".into(),
        }
    }
}

impl<P: Providers> NodeApi for Starting<P> {
    async fn deliver(&self, envelope: Envelope) -> Result<Delivered, Refusal> {
        match self.ready.get() {
            Some(service) => service.deliver(envelope).await,
            None => Err(Refusal::Retry(format!("{} is starting", self.me))),
        }
    }

    async fn register(
        &self,
        id: ActorId,
        proposal: NetworkAddress,
    ) -> Result<Registration, ActorError> {
        match self.ready.get() {
            Some(service) => service.register(id, proposal).await,
            None => Err(self.unavailable(id)),
        }
    }

    async fn confirm(
        &self,
        id: ActorId,
        entry: Entry,
        activation: UID,
    ) -> Result<bool, ActorError> {
        match self.ready.get() {
            Some(service) => service.confirm(id, entry, activation).await,
            None => Err(self.unavailable(id)),
        }
    }

    async fn release(&self, id: ActorId, entry: Entry, activation: UID) -> Result<(), ActorError> {
        match self.ready.get() {
            Some(service) => service.release(id, entry, activation).await,
            None => Err(self.unavailable(id)),
        }
    }

    async fn stale(&self, id: ActorId, entry: Entry) -> Result<(), ActorError> {
        match self.ready.get() {
            Some(service) => service.stale(id, entry).await,
            None => Err(self.unavailable(id)),
        }
    }

    async fn revoke(&self, id: ActorId, entry: Entry) -> Revocation {
        match self.ready.get() {
            Some(service) => service.revoke(id, entry).await,
            // Nothing is known yet: keep the entry (the owner retries later).
            None => Revocation::Active,
        }
    }

    async fn read_state(&self, id: ActorId, epoch: u64) -> Result<StoredState, StateError> {
        match self.ready.get() {
            Some(service) => service.read_state(id, epoch).await,
            None => Err(self.unreachable()),
        }
    }

    async fn write_state(
        &self,
        id: ActorId,
        epoch: u64,
        expected: u64,
        data: String,
    ) -> Result<u64, StateError> {
        match self.ready.get() {
            Some(service) => service.write_state(id, epoch, expected, data).await,
            None => Err(self.unreachable()),
        }
    }

    async fn call(&self, id: ActorId, method: u32, body: String) -> Result<String, ActorError> {
        match self.ready.get() {
            Some(service) => service.call(id, method, body).await,
            None => Err(self.unavailable(id)),
        }
    }
}
