//! Floor 2: where a new activation goes. A [`PlacementStrategy`] picks a member for an identity
//! that has no activation; one strategy per actor type. Built in: [`Placement`] (random, local,
//! round-robin, consistent hash, least-loaded); a custom strategy implements the trait.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use moonpool_core::NetworkAddress;

use super::identity::ActorId;
use super::membership::{MembershipView, rendezvous};

/// What a strategy knows when it places an activation.
#[derive(Debug)]
pub struct PlacementContext<'a> {
    /// The cluster.
    pub view: &'a MembershipView,
    /// The node placing the activation (the caller's node), if it is a member.
    pub local: Option<NetworkAddress>,
    /// Activations per node as last seen by the placing node (its own count is exact; others
    /// come from their replies and may be old or missing).
    pub loads: &'a BTreeMap<NetworkAddress, usize>,
    /// A random number drawn from the placing node's random provider, for strategies that
    /// choose at random (never draw from anywhere else: simulations must replay).
    pub random: u64,
}

/// Chooses the node of a new activation.
pub trait PlacementStrategy: Send + Sync + 'static {
    /// A member of `context.view` to activate `id` on; `None` when it cannot choose (the
    /// router then reports [`ActorError::Placement`](super::ActorError::Placement)).
    fn place(&self, id: &ActorId, context: &PlacementContext<'_>) -> Option<NetworkAddress>;
}

/// The built-in strategies.
#[non_exhaustive]
pub enum Placement {
    /// A member drawn at random.
    Random,
    /// The caller's node when it is a member, else random.
    Local,
    /// Members in turn, per placing node.
    RoundRobin(RoundRobin),
    /// The member chosen by rendezvous hashing of the identity: the same node every time while
    /// the membership is the same.
    ConsistentHash,
    /// The member with the fewest activations known to the placing node (ties: the first in
    /// address order; unknown counts as zero).
    LeastLoaded,
}

impl fmt::Debug for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Placement::Random => "Random",
            Placement::Local => "Local",
            Placement::RoundRobin(_) => "RoundRobin",
            Placement::ConsistentHash => "ConsistentHash",
            Placement::LeastLoaded => "LeastLoaded",
        })
    }
}

impl Placement {
    /// Round-robin with a fresh counter.
    pub fn round_robin() -> Self {
        Placement::RoundRobin(RoundRobin::default())
    }
}

/// The counter of [`Placement::RoundRobin`].
#[derive(Debug, Default)]
pub struct RoundRobin(AtomicUsize);

fn random_member(context: &PlacementContext<'_>) -> Option<NetworkAddress> {
    let members = context.view.members();
    if members.is_empty() {
        return None;
    }
    let index = usize::try_from(context.random % members.len() as u64).ok()?;
    members.get(index).copied()
}

impl PlacementStrategy for Placement {
    fn place(&self, id: &ActorId, context: &PlacementContext<'_>) -> Option<NetworkAddress> {
        let members = context.view.members();
        match self {
            Placement::Random => random_member(context),
            Placement::Local => match context.local {
                Some(local) if context.view.contains(local) => Some(local),
                _ => random_member(context),
            },
            Placement::RoundRobin(counter) => {
                if members.is_empty() {
                    return None;
                }
                let turn = counter.0.fetch_add(1, Ordering::Relaxed);
                members.get(turn % members.len()).copied()
            }
            Placement::ConsistentHash => rendezvous(id.stable_hash() ^ 0x5eed, members),
            Placement::LeastLoaded => members
                .iter()
                .min_by_key(|member| context.loads.get(member).copied().unwrap_or(0))
                .copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> MembershipView {
        MembershipView::new(1, (1..=3).map(|i| format!("10.0.0.{i}:1").parse().unwrap()))
    }

    #[test]
    fn test_each_strategy_places_on_a_member() {
        let view = view();
        let members = view.members().to_vec();
        let mut loads = BTreeMap::new();
        loads.insert(members[0], 5);
        loads.insert(members[1], 1);
        loads.insert(members[2], 3);
        let id = ActorId::new("A", 1);
        let context = |random, local| PlacementContext {
            view: &view,
            local,
            loads: &loads,
            random,
        };
        assert_eq!(
            Placement::Random.place(&id, &context(4, None)),
            Some(members[1])
        );
        assert_eq!(
            Placement::Local.place(&id, &context(0, Some(members[2]))),
            Some(members[2])
        );
        let outsider: NetworkAddress = "10.9.9.9:1".parse().unwrap();
        assert_eq!(
            Placement::Local.place(&id, &context(0, Some(outsider))),
            Some(members[0])
        );
        let rr = Placement::round_robin();
        let turns: Vec<_> = (0..4)
            .map(|_| rr.place(&id, &context(0, None)).unwrap())
            .collect();
        assert_eq!(turns, vec![members[0], members[1], members[2], members[0]]);
        let hashed = Placement::ConsistentHash.place(&id, &context(0, None));
        assert_eq!(
            hashed,
            Placement::ConsistentHash.place(&id, &context(9, None))
        );
        assert_eq!(
            Placement::LeastLoaded.place(&id, &context(0, None)),
            Some(members[1])
        );
        let empty = MembershipView::new(1, []);
        let none = PlacementContext {
            view: &empty,
            local: None,
            loads: &loads,
            random: 0,
        };
        assert_eq!(Placement::Random.place(&id, &none), None);
        assert_eq!(Placement::round_robin().place(&id, &none), None);
    }
}
