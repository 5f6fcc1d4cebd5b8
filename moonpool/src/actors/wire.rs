//! Floor 3: what nodes say to each other. One `#[service]` interface, [`NodeApi`], served by
//! every node at the configured base token: message delivery to hosts, the directory partition's
//! operations, revocation, the state store's reads and writes, and the gateway call that external
//! clients use.

use moonpool_core::{NetworkAddress, UID};
use moonpool_transport::service;
use serde::{Deserialize, Serialize};

use super::error::{ActorError, StateError};
use super::identity::ActorId;
use super::state::StoredState;

/// A directory entry: where an identity's one activation lives and under which grant.
///
/// Grants are issued by the identity's directory partition, strictly increasing, and never
/// reused (the partition persists its counter): an activation is known by its grant everywhere
/// (host, directory, state store fence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The hosting node.
    pub node: NetworkAddress,
    /// The activation grant.
    pub grant: u64,
    /// The membership version the partition granted it under.
    pub view: u64,
}

/// A message for an activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The target.
    pub id: ActorId,
    /// The entry the sender routed by.
    pub entry: Entry,
    /// The method index.
    pub method: u32,
    /// The encoded arguments.
    pub body: String,
    /// The node the call came from (for local-placement bookkeeping), if a member.
    pub caller: Option<NetworkAddress>,
    /// Routing attempts already spent on this message (a host that forwards it adds one).
    #[serde(default)]
    pub hops: u32,
}

/// A delivered message's answer, with the host's activation count (for least-loaded placement).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    /// The encoded reply.
    pub body: String,
    /// Activations on the host when it answered.
    pub load: usize,
    /// Set when the node that was asked forwarded the message: the entry it reached, for the
    /// caller's cache.
    #[serde(default)]
    pub moved: Option<Entry>,
}

/// Why a host did not run a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// This node does not host (and will not host) the activation the entry names: the entry
    /// is stale.
    NotHere,
    /// Try again shortly: the activation is being deactivated, or the node is draining.
    Retry(String),
    /// The message was refused for good, or the actor failed it.
    Failed(ActorError),
}

/// A host's answer to a revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Revocation {
    /// The host does not host that activation and never will (it holds no slot for it; a
    /// later message for it is only activated after the directory confirms the entry).
    Revoked,
    /// The host holds the activation: the entry stays.
    Active,
}

/// What a directory registration answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The identity's entry.
    pub entry: Entry,
    /// True when this registration created it (a directory miss).
    pub created: bool,
}

/// The node-to-node interface.
#[service(in_flight_max = 512)]
pub trait NodeApi {
    /// Runs a message on this node's activation of `envelope.id` (activating it if needed).
    async fn deliver(&self, envelope: Envelope) -> Result<Delivered, Refusal>;
    /// Directory: the entry of `id`, created at `proposal` when there is none.
    async fn register(
        &self,
        id: ActorId,
        proposal: NetworkAddress,
    ) -> Result<Registration, ActorError>;
    /// Directory: is `entry` the current entry of `id` (and not being revoked)? If so it is
    /// recorded as confirmed by `activation` (the host's fresh id for this activation).
    async fn confirm(&self, id: ActorId, entry: Entry, activation: UID)
    -> Result<bool, ActorError>;
    /// Directory: `activation` of the host of `entry` ended; remove the entry if it is still
    /// current and still recorded as confirmed by that activation.
    async fn release(&self, id: ActorId, entry: Entry, activation: UID) -> Result<(), ActorError>;
    /// Directory: a caller found `entry` stale; revoke it at its host and remove it if revoked.
    async fn stale(&self, id: ActorId, entry: Entry) -> Result<(), ActorError>;
    /// Host: give up `entry` if it is not active here.
    async fn revoke(&self, id: ActorId, entry: Entry) -> Revocation;
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
    /// Gateway: route a call from outside the cluster.
    async fn call(&self, id: ActorId, method: u32, body: String) -> Result<String, ActorError>;
}
