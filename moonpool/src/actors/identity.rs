//! Floor 1: who an actor is. An [`ActorId`] is the actor's type name plus its [`ActorKey`]; it is
//! data (serde, ordered, hashed stably), so references to actors travel inside messages.

use std::fmt;

use moonpool_core::UID;
use serde::{Deserialize, Serialize};

/// The key of an actor within its type: a string, an integer or a UID.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ActorKey {
    /// A string key (an account number, a user name).
    Str(String),
    /// An integer key.
    Int(i64),
    /// A 128-bit key.
    Uid(UID),
}

impl fmt::Debug for ActorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ActorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActorKey::Str(key) => write!(f, "{key:?}"),
            ActorKey::Int(key) => write!(f, "{key}"),
            ActorKey::Uid(key) => write!(f, "{key}"),
        }
    }
}

impl From<&str> for ActorKey {
    fn from(key: &str) -> Self {
        ActorKey::Str(key.to_string())
    }
}

impl From<String> for ActorKey {
    fn from(key: String) -> Self {
        ActorKey::Str(key)
    }
}

impl From<i64> for ActorKey {
    fn from(key: i64) -> Self {
        ActorKey::Int(key)
    }
}

impl From<UID> for ActorKey {
    fn from(key: UID) -> Self {
        ActorKey::Uid(key)
    }
}

/// An actor's identity: its type name (the `#[service]` trait's name) and its key.
///
/// ```
/// use moonpool::actors::{ActorId, ActorKey};
/// let id = ActorId::new("Account", "alice");
/// assert_eq!(id.to_string(), "Account/\"alice\"");
/// let text = serde_json::to_string(&id).unwrap();
/// assert_eq!(serde_json::from_str::<ActorId>(&text).unwrap(), id);
/// assert_eq!(ActorId::new("Counter", 7).key, ActorKey::Int(7));
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ActorId {
    /// The actor type (for generated references, the trait's name).
    pub actor_type: String,
    /// The key within the type.
    pub key: ActorKey,
}

impl ActorId {
    /// The identity of the actor of type `actor_type` with key `key`.
    pub fn new(actor_type: impl Into<String>, key: impl Into<ActorKey>) -> Self {
        Self {
            actor_type: actor_type.into(),
            key: key.into(),
        }
    }

    /// A hash of the identity that is the same on every node, every run and every platform
    /// (FNV-1a over a canonical encoding): what the directory partitions and consistent-hash
    /// placement use.
    pub fn stable_hash(&self) -> u64 {
        let mut hash = Fnv::new();
        hash.write(self.actor_type.as_bytes());
        hash.write(&[0xff]);
        match &self.key {
            ActorKey::Str(key) => {
                hash.write(&[0]);
                hash.write(key.as_bytes());
            }
            ActorKey::Int(key) => {
                hash.write(&[1]);
                hash.write(&key.to_le_bytes());
            }
            ActorKey::Uid(key) => {
                hash.write(&[2]);
                hash.write(&key.first.to_le_bytes());
                hash.write(&key.second.to_le_bytes());
            }
        }
        hash.finish()
    }
}

impl fmt::Debug for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.actor_type, self.key)
    }
}

/// FNV-1a, 64 bits, finished with a mixer so that nearby inputs spread.
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub(crate) fn finish(&self) -> u64 {
        mix(self.0)
    }
}

/// A 64-bit finalizer (splitmix64's).
pub(crate) fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED: u64 = 7_424_709_518_648_412_973;

    #[test]
    fn test_stable_hash_is_pinned_and_distinguishes_key_kinds() {
        let a = ActorId::new("Account", "1");
        let b = ActorId::new("Account", 1);
        assert_ne!(a.stable_hash(), b.stable_hash());
        assert_eq!(a.stable_hash(), ActorId::new("Account", "1").stable_hash());
        // Pinned: the directory's partitioning must not change between builds.
        assert_eq!(ActorId::new("Account", 1).stable_hash(), PINNED);
        let uid = ActorId::new("X", UID::new(1, 2));
        assert_eq!(uid.to_string(), format!("X/{}", UID::new(1, 2)));
    }
}
