//! Floor 2: who is in the cluster. A [`MembershipView`] is a versioned list of node addresses;
//! the directory partition that owns an identity, and the node that stores its state, follow
//! from the view by rendezvous hashing (the member with the highest `hash(identity, member)`), so
//! every node with the same view agrees on them without talking.
//!
//! A view is either fixed when the cluster starts (no table: the view never changes), or comes
//! from a [`MembershipTable`]: a versioned table every change of which (join, leave, declared
//! dead) makes a new version. Nodes act only on the versions the table answered, and only for a
//! bounded time after asking ([`ClusterConfig::membership_lease`](super::ClusterConfig)); the
//! node keeps its view in a [`ViewCell`].

use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use moonpool_core::{NetworkAddress, UID};
use serde::{Deserialize, Serialize};

use super::error::ActorError;
use super::identity::{ActorId, Fnv};

/// A versioned set of cluster members (node addresses, sorted, without duplicates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipView {
    version: u64,
    members: Vec<NetworkAddress>,
}

impl MembershipView {
    /// Version `version` of a cluster made of `members` (sorted and deduplicated here).
    pub fn new(version: u64, members: impl IntoIterator<Item = NetworkAddress>) -> Self {
        let mut members: Vec<NetworkAddress> = members.into_iter().collect();
        members.sort();
        members.dedup();
        Self { version, members }
    }

    /// The view's version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The members, sorted.
    pub fn members(&self) -> &[NetworkAddress] {
        &self.members
    }

    /// True if `address` is a member.
    pub fn contains(&self, address: NetworkAddress) -> bool {
        self.members.binary_search(&address).is_ok()
    }

    /// The member that owns `id`'s directory entry and stores its state.
    ///
    /// # Errors
    /// [`ActorError::NoMembers`] for an empty view.
    pub fn owner(&self, id: &ActorId) -> Result<NetworkAddress, ActorError> {
        rendezvous(id.stable_hash(), &self.members).ok_or(ActorError::NoMembers)
    }
}

/// Why a membership table operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// The table could not be reached or did not answer in time.
    #[error("the membership table did not answer: {reason}")]
    Unreachable {
        /// The transport's reason.
        reason: String,
    },
    /// The table could not store the change (its disk failed); nothing changed.
    #[error("the membership table could not store the change: {reason}")]
    Storage {
        /// What failed.
        reason: String,
    },
    /// The table refused: `node` is still alive by its own heartbeats, or is not a member.
    #[error("the membership table refused the change for {node}: {reason}")]
    Refused {
        /// The node the change was about.
        node: NetworkAddress,
        /// Why.
        reason: String,
    },
}

/// A versioned membership table: every change makes a new version; answers are whole views.
///
/// Implementations must be linearizable (each change applies to the latest version, durably,
/// before it is answered) and must never answer a version lower than one they answered before.
/// `moonpool::actors::ClusterServer` serves one over a `StorageProvider`; production users can
/// implement it over their own consistent store.
pub trait MembershipTable: Send + Sync + 'static {
    /// `node` (incarnation `incarnation`) is alive; the current view.
    fn heartbeat(
        &self,
        node: NetworkAddress,
        incarnation: UID,
    ) -> BoxFuture<'static, Result<MembershipView, MembershipError>>;
    /// Adds `node` (no change if it is a member); the new view.
    fn join(
        &self,
        node: NetworkAddress,
    ) -> BoxFuture<'static, Result<MembershipView, MembershipError>>;
    /// Removes `node` (no change if it is not a member); the new view.
    fn leave(
        &self,
        node: NetworkAddress,
    ) -> BoxFuture<'static, Result<MembershipView, MembershipError>>;
    /// `reporter` suspects `node` (its connections failed): removes it unless the table heard
    /// `node`'s heartbeat within the failure timeout.
    fn declare_dead(
        &self,
        node: NetworkAddress,
        reporter: NetworkAddress,
    ) -> BoxFuture<'static, Result<MembershipView, MembershipError>>;
}

/// A node's current view, and until when (on its clock) it may act on it.
#[derive(Debug)]
pub(crate) struct ViewCell {
    state: Mutex<(MembershipView, Option<Duration>)>,
}

impl ViewCell {
    /// A cell holding `view`, valid forever when `until` is `None` (a fixed membership).
    pub(crate) fn new(view: MembershipView, until: Option<Duration>) -> Self {
        Self {
            state: Mutex::new((view, until)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (MembershipView, Option<Duration>)> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The latest view (for routing and placement, which the owners fence).
    pub(crate) fn current(&self) -> MembershipView {
        self.lock().0.clone()
    }

    /// The view, if it may still be acted on at local time `now`.
    pub(crate) fn valid(&self, now: Duration) -> Option<MembershipView> {
        let state = self.lock();
        match state.1 {
            Some(until) if now >= until => None,
            _ => Some(state.0.clone()),
        }
    }

    /// Takes `view`, answered to a heartbeat, to be acted on until local `until`: a newer
    /// version replaces the view, the same version extends the lease, an older one is ignored.
    pub(crate) fn adopt(&self, view: MembershipView, until: Duration) {
        let mut state = self.lock();
        if view.version < state.0.version {
            return;
        }
        if view.version > state.0.version {
            state.0 = view;
        }
        if let Some(old) = state.1 {
            state.1 = Some(old.max(until));
        }
    }
}

/// The member with the highest weight for `hash` (rendezvous hashing): when a member leaves,
/// only the identities it owned move.
pub(crate) fn rendezvous(hash: u64, members: &[NetworkAddress]) -> Option<NetworkAddress> {
    members
        .iter()
        .map(|member| (weight(hash, *member), *member))
        .max()
        .map(|(_, member)| member)
}

fn weight(hash: u64, member: NetworkAddress) -> u64 {
    let mut fnv = Fnv::new();
    fnv.write(&hash.to_le_bytes());
    fnv.write(member.to_string().as_bytes());
    fnv.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(i: u8) -> NetworkAddress {
        format!("10.0.0.{i}:4700").parse().unwrap()
    }

    #[test]
    fn test_owner_is_stable_and_spreads() {
        let view = MembershipView::new(1, [address(3), address(1), address(2), address(1)]);
        assert_eq!(view.members().len(), 3);
        let mut counts = [0usize; 3];
        for key in 0..300i64 {
            let owner = view.owner(&ActorId::new("A", key)).unwrap();
            let index = view.members().iter().position(|m| *m == owner).unwrap();
            counts[index] += 1;
        }
        assert!(counts.iter().all(|&c| c > 60), "{counts:?}");
        assert_eq!(
            MembershipView::new(1, []).owner(&ActorId::new("A", 1)),
            Err(ActorError::NoMembers)
        );
    }
}
