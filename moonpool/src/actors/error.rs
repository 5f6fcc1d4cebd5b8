//! Floor 1: what can go wrong, as values. Every actor call ends with its reply or an
//! [`ActorError`]; state operations with a [`StateError`]; bad configuration with a
//! [`ConfigError`](super::ActorConfigError).

use moonpool_core::NetworkAddress;
use serde::{Deserialize, Serialize};

use super::identity::ActorId;

/// Why an actor call, or a step of routing it, ended without the actor's reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ActorError {
    /// The actor type is not registered on the node that was asked to host it.
    #[error("actor type `{actor_type}` is not registered on {node}")]
    UnknownActorType {
        /// The type asked for.
        actor_type: String,
        /// The node that does not know it.
        node: NetworkAddress,
    },
    /// The actor type has no method with this index (a reference of another version).
    #[error("actor type `{actor_type}` has no method {method}")]
    UnknownMethod {
        /// The type.
        actor_type: String,
        /// The method index.
        method: u32,
    },
    /// The arguments or the reply could not be encoded or decoded.
    #[error("serialization failed: {0}")]
    Serialization(String),
    /// The node is at its bound of activations.
    #[error("{node} already hosts {limit} activations (its bound); {id} was not activated")]
    TooManyActivations {
        /// The refused identity.
        id: ActorId,
        /// The node.
        node: NetworkAddress,
        /// The bound (`ActorConfig::max_activations`).
        limit: usize,
    },
    /// The activation's mailbox is full.
    #[error("the mailbox of {id} holds {capacity} messages (its bound); the message was refused")]
    MailboxFull {
        /// The identity.
        id: ActorId,
        /// The bound (`ActorConfig::mailbox_capacity`).
        capacity: usize,
    },
    /// `on_activate` failed; the activation was abandoned.
    #[error("activating {id} failed: {reason}")]
    ActivationFailed {
        /// The identity.
        id: ActorId,
        /// What `on_activate` said.
        reason: String,
    },
    /// The handler panicked; the activation was dropped (its state is what it last wrote).
    #[error("the handler of {id} panicked: {message}")]
    HandlerPanicked {
        /// The identity.
        id: ActorId,
        /// The panic message.
        message: String,
    },
    /// The call had started (a `#[reentrant]` call, suspended at an `.await`) when its
    /// activation ended, because another call of the same activation panicked: the call was
    /// dropped where it was suspended, so it may have run in part. Not retried by the runtime.
    #[error("a call to {id} was interrupted after it started: {reason}")]
    Interrupted {
        /// The identity.
        id: ActorId,
        /// Why the activation ended.
        reason: String,
    },
    /// The message went through `max_hops` routing attempts without reaching an activation.
    #[error("{id} was not reached after {hops} routing attempts: {last}")]
    TooManyHops {
        /// The identity.
        id: ActorId,
        /// Attempts made.
        hops: u32,
        /// Why the last attempt failed.
        last: String,
    },
    /// A node (the directory owner, the host or the gateway) could not be reached, or did not
    /// answer in time. The message may or may not have been processed.
    #[error("{node} did not answer ({reason}) for {id}")]
    Unreachable {
        /// The identity.
        id: ActorId,
        /// The node.
        node: NetworkAddress,
        /// The transport's reason.
        reason: String,
    },
    /// The directory could not store a change (its disk failed).
    #[error("the directory on {node} failed: {reason}")]
    Directory {
        /// The directory owner.
        node: NetworkAddress,
        /// What failed.
        reason: String,
    },
    /// The node is shutting down and takes no new messages.
    #[error("{node} is shutting down")]
    ShuttingDown {
        /// The node.
        node: NetworkAddress,
    },
    /// The cluster has no members to route to.
    #[error("the membership view is empty")]
    NoMembers,
    /// The placement strategy failed.
    #[error("placement of {id} failed: {reason}")]
    Placement {
        /// The identity.
        id: ActorId,
        /// What the strategy said.
        reason: String,
    },
    /// A state operation failed (from `on_activate` or a handler that propagates it).
    #[error("{0}")]
    State(StateError),
    /// The identity's directory owner cannot grant now: its membership view has expired, or it
    /// is in its quiet period after a view change. Routers retry; a call ends with it when its
    /// attempts run out.
    #[error("{node} cannot grant {id} now: {reason}")]
    Unavailable {
        /// The identity.
        id: ActorId,
        /// The owner that refused.
        node: NetworkAddress,
        /// Why.
        reason: String,
    },
    /// The activation lost its grant (it could not renew it in time) while running this
    /// message, and stopped: the message may or may not have been processed.
    #[error("the activation of {id} (grant {grant}) lost its grant during the call")]
    GrantExpired {
        /// The identity.
        id: ActorId,
        /// The grant that ran out.
        grant: u64,
    },
    /// The call did not finish within the client's call timeout.
    #[error("the call to {id} timed out")]
    Timeout {
        /// The identity.
        id: ActorId,
    },
}

/// Why a state operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Optimistic concurrency: the stored state changed since it was read (`expected` is the
    /// ETag the writer read, `found` the one stored). Nothing was written.
    #[error("stale write to the state of {id}: expected ETag {expected}, found {found}")]
    StaleETag {
        /// The identity.
        id: ActorId,
        /// The ETag the writer held.
        expected: u64,
        /// The stored ETag.
        found: u64,
    },
    /// Fencing: a newer activation (grant `fence`) has read the state, so this activation
    /// (grant `epoch`) may no longer write it. Nothing was written.
    #[error("the activation of {id} with grant {epoch} is fenced off (grant {fence} owns it)")]
    FencedOff {
        /// The identity.
        id: ActorId,
        /// The writer's grant.
        epoch: u64,
        /// The newest grant that read the state.
        fence: u64,
    },
    /// The storage failed (nothing or everything was written: the write is atomic).
    #[error("state storage failed for {id}: {reason}")]
    Storage {
        /// The identity.
        id: ActorId,
        /// What failed.
        reason: String,
    },
    /// The stored bytes are not a valid state of this type.
    #[error("the stored state of {id} is invalid: {reason}")]
    Corrupt {
        /// The identity.
        id: ActorId,
        /// What is wrong.
        reason: String,
    },
    /// The node that stores this identity's state could not be reached.
    #[error("the state store on {node} is unreachable: {reason}")]
    Unreachable {
        /// The state's home node.
        node: NetworkAddress,
        /// The transport's reason.
        reason: String,
    },
}
