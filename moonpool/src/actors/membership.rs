//! Floor 2: who is in the cluster. A [`MembershipView`] is a versioned list of node addresses;
//! the directory partition that owns an identity, and the node that stores its state, follow
//! from the view by rendezvous hashing (the member with the highest `hash(identity, member)`), so
//! every node with the same view agrees on them without talking.
//!
//! Today the view is fixed when the cluster starts (version 1). The version is carried so that a
//! changing membership (planned) can fence directory answers given under an older view.

use moonpool_core::NetworkAddress;
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
