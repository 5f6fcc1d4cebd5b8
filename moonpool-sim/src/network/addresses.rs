//! The set of socket addresses held by live client halves, in O(1) per operation.
//!
//! Every connect asks whether the next ephemeral port is free, inserts the port it takes and,
//! at close, removes it. A B-tree made those a search of a tree that grows with the open
//! connections (about 100 instructions a round trip at 1,000 clients of 10 round trips each);
//! a hash set makes them constant.
//!
//! Determinism: a hash set's iteration order depends on its hasher and its history, so
//! [`AddressSet`] offers no iteration at all: only `insert`, `remove` and `contains`, whose
//! answers are the same whatever the order of the buckets. The hasher is fixed (no random
//! keys), so even the memory layout is the same from run to run.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;

/// A set of socket addresses that answers membership only (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct AddressSet {
    addresses: HashSet<SocketAddr, BuildHasherDefault<AddressHasher>>,
}

impl AddressSet {
    /// Adds `address`; false when it was already in.
    pub(crate) fn insert(&mut self, address: SocketAddr) -> bool {
        self.addresses.insert(address)
    }

    /// Removes `address`; false when it was not in.
    pub(crate) fn remove(&mut self, address: &SocketAddr) -> bool {
        self.addresses.remove(address)
    }

    /// Before the first address: room for `addresses` of them (at most
    /// [`MAX_RESERVED_ADDRESSES`]), so that the set does not rehash as the first connections
    /// of a large world open. Does nothing once any room exists.
    pub(crate) fn reserve_for(&mut self, addresses: usize) {
        if self.addresses.capacity() == 0 {
            self.addresses
                .reserve(addresses.min(MAX_RESERVED_ADDRESSES));
        }
    }

    /// True when `address` is in.
    pub(crate) fn contains(&self, address: &SocketAddr) -> bool {
        self.addresses.contains(address)
    }

    /// The room for addresses, made or not.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.addresses.capacity()
    }

    /// How many addresses are in.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.addresses.len()
    }
}

/// The most room [`AddressSet::reserve_for`] makes: one client half per process up to a
/// world of this many processes (8,192 buckets of 33 bytes, about 270 KiB, as the slab's
/// reserve stops at as many connections); a larger world grows the set as it goes.
pub(crate) const MAX_RESERVED_ADDRESSES: usize = 4_096;

/// A small multiply-rotate hasher with no key: each word written is mixed into the state by an
/// odd 64-bit multiplier, and `finish` folds the high bits down so that the bucket index (the
/// low bits) depends on all of them. A `SocketAddr` writes its variant as an `isize` (routed to
/// `write_usize`), a v4 address as a `u32`, a v6 one as a `u128` (16 bytes, the byte path) and
/// two `u32`s, and its port as a `u16`; all but the `u128` take one mix each. Not resistant to
/// chosen keys, which a simulation does not have to fear: its addresses are the test's own.
#[derive(Debug, Default)]
pub(crate) struct AddressHasher {
    state: u64,
}

/// An odd constant with bits spread over the whole word (the fractional part of the golden
/// ratio, times 2^64).
const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

impl AddressHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.state = (self.state.rotate_left(26) ^ word).wrapping_mul(MIX);
    }
}

impl Hasher for AddressHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length keeps a short tail apart from the same bytes followed by zeros.
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u16(&mut self, n: u16) {
        self.mix(u64::from(n));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.state ^ (self.state >> 29)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::hash::{BuildHasher, BuildHasherDefault};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

    use super::{AddressHasher, AddressSet};

    fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port)
    }

    /// Answers as a B-tree set does, through a long history of inserts and removes over v4 and
    /// v6 addresses, ports that differ in one bit and addresses that share their ports.
    #[test]
    fn test_address_set_answers_as_a_btree_set_does() {
        let mut set = AddressSet::default();
        let mut model = BTreeSet::new();
        let mut x: u64 = 0x1234_5678;
        for step in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let port = 49_152 + (x % 64) as u16;
            let address = match (x >> 8) % 3 {
                0 => v4(10, 0, (x >> 16) as u8 % 4, 1, port),
                1 => v4(127, 0, 0, 1, port),
                _ => SocketAddr::new(
                    IpAddr::V6(Ipv6Addr::new(
                        0xfd00,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        (x >> 20) as u16 % 3,
                    )),
                    port,
                ),
            };
            if (x >> 32).is_multiple_of(3) {
                assert_eq!(set.remove(&address), model.remove(&address), "step {step}");
            } else {
                assert_eq!(set.insert(address), model.insert(address), "step {step}");
            }
            assert_eq!(set.len(), model.len(), "step {step}");
            let probe = v4(
                10,
                0,
                (x >> 40) as u8 % 4,
                1,
                49_152 + (x >> 44) as u16 % 64,
            );
            assert_eq!(set.contains(&probe), model.contains(&probe), "step {step}");
        }
    }

    /// The first reserve makes room once, up to the cap; later ones do nothing.
    #[test]
    fn test_address_set_reserves_once_and_at_most_the_cap() {
        let mut set = AddressSet::default();
        set.reserve_for(1_000);
        let first = set.capacity();
        assert!((1_000..2_000).contains(&first), "capacity {first}");
        set.reserve_for(3_000);
        assert_eq!(set.capacity(), first);
        for port in 0..1_000 {
            set.insert(v4(10, 0, 0, 1, 49_152 + port));
        }
        assert_eq!(set.capacity(), first, "no growth up to the reserve");
        let mut huge = AddressSet::default();
        huge.reserve_for(usize::MAX);
        assert!(huge.capacity() >= super::MAX_RESERVED_ADDRESSES);
        assert!(huge.capacity() < 2 * super::MAX_RESERVED_ADDRESSES);
    }

    /// The hasher has no key: the same address hashes the same in every set, and neighbouring
    /// ports and hosts spread over the buckets about as a random function would.
    #[test]
    fn test_address_hasher_is_fixed_and_spreads_neighbours() {
        let build = BuildHasherDefault::<AddressHasher>::default();
        let address = v4(10, 0, 0, 1, 49_152);
        assert_eq!(
            build.hash_one(address),
            BuildHasherDefault::<AddressHasher>::default().hash_one(address)
        );
        // 1,024 consecutive ports on 16 hosts into the low 14 bits (a table of 16,384
        // buckets): a random function fills about 63% of them (10,356); a hasher that ignored
        // the host or the port's high bits would fill at most 1,024 or 4,096.
        let mut buckets = BTreeSet::new();
        for host in 0..16u8 {
            for port in 0..1_024u16 {
                buckets.insert(build.hash_one(v4(10, 0, host, 1, 49_152 + port)) & 0x3fff);
            }
        }
        assert!(buckets.len() > 9_000, "{} distinct buckets", buckets.len());
    }
}
