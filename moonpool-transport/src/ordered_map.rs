//! [`OrderedMap`]: a map ordered by key, kept as a sorted vector while small and as a `BTreeMap`
//! once large, for the tables that see an insert and a remove per request (the replies awaited,
//! a peer's reliable packets) and usually hold a handful of entries whose keys grow: an insert is
//! then a push at the end and a remove a search of a few entries, with no tree node to walk.
//! Iteration is in key order in both forms, so nothing observable depends on the form.
//!
//! Floor 1: a primitive with no knowledge of the transport.

use std::collections::BTreeMap;
use std::collections::btree_map;

/// Entries held as a sorted vector at most.
const SMALL_MAX: usize = 32;
/// A large map shrunk below this many entries goes back to a vector (half of [`SMALL_MAX`], so
/// that a map hovering around the threshold does not convert at every operation).
const SMALL_AGAIN: usize = SMALL_MAX / 2;

/// A map ordered by key; see the module's documentation.
#[derive(Debug)]
pub(crate) enum OrderedMap<K, V> {
    /// Sorted by key, keys unique.
    Small(Vec<(K, V)>),
    /// More than [`SMALL_MAX`] entries (until it shrinks below [`SMALL_AGAIN`]).
    Large(BTreeMap<K, V>),
}

impl<K, V> Default for OrderedMap<K, V> {
    fn default() -> Self {
        OrderedMap::Small(Vec::new())
    }
}

impl<K: Ord, V> OrderedMap<K, V> {
    /// An empty map.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        match self {
            OrderedMap::Small(entries) => entries.len(),
            OrderedMap::Large(map) => map.len(),
        }
    }

    /// True when nothing is held.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where `key` is (`Ok`) or would go (`Err`) in a small map: the last entry is looked at
    /// first (keys usually grow), then the first (entries usually leave in order).
    fn search(entries: &[(K, V)], key: &K) -> Result<usize, usize> {
        match entries.last() {
            None => return Err(0),
            Some((last, _)) if *last < *key => return Err(entries.len()),
            _ => {}
        }
        if let Some((first, _)) = entries.first()
            && *first == *key
        {
            return Ok(0);
        }
        entries.binary_search_by(|(probe, _)| probe.cmp(key))
    }

    /// Inserts `value` at `key`; returns the value it replaced.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self {
            OrderedMap::Small(entries) => match Self::search(entries, &key) {
                Ok(at) => entries
                    .get_mut(at)
                    .map(|entry| std::mem::replace(&mut entry.1, value)),
                Err(at) => {
                    if at == entries.len() {
                        entries.push((key, value));
                    } else {
                        entries.insert(at, (key, value));
                    }
                    if entries.len() > SMALL_MAX {
                        let map: BTreeMap<K, V> = std::mem::take(entries).into_iter().collect();
                        *self = OrderedMap::Large(map);
                    }
                    None
                }
            },
            OrderedMap::Large(map) => map.insert(key, value),
        }
    }

    /// Removes and returns the value at `key`.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        match self {
            OrderedMap::Small(entries) => {
                let at = Self::search(entries, key).ok()?;
                Some(entries.remove(at).1)
            }
            OrderedMap::Large(map) => {
                let removed = map.remove(key);
                if map.len() < SMALL_AGAIN {
                    let entries: Vec<(K, V)> = std::mem::take(map).into_iter().collect();
                    *self = OrderedMap::Small(entries);
                }
                removed
            }
        }
    }

    /// Removes the value at `key`, dropping it where it lies when it is the last entry of a
    /// small map (the usual case: no move of the value); false when nothing was there.
    #[cfg(test)]
    pub(crate) fn remove_in_place(&mut self, key: &K) -> bool {
        self.take_in_place(key, |_| ()).is_some()
    }

    /// Lets `take` take what it wants from the value at `key`, then removes the value where it
    /// lies when it is the last entry of a small map (the usual case: no move of the value), with
    /// one search; `None` when nothing was there.
    pub(crate) fn take_in_place<R>(
        &mut self,
        key: &K,
        take: impl FnOnce(&mut V) -> R,
    ) -> Option<R> {
        match self {
            OrderedMap::Small(entries) => {
                let at = Self::search(entries, key).ok()?;
                let taken = take(&mut entries.get_mut(at)?.1);
                if at + 1 == entries.len() {
                    entries.truncate(at);
                } else {
                    drop(entries.remove(at));
                }
                Some(taken)
            }
            OrderedMap::Large(_) => {
                let taken = take(self.get_mut(key)?);
                drop(self.remove(key));
                Some(taken)
            }
        }
    }

    /// True when something is held at `key`.
    pub(crate) fn contains_key(&self, key: &K) -> bool {
        match self {
            OrderedMap::Small(entries) => Self::search(entries, key).is_ok(),
            OrderedMap::Large(map) => map.contains_key(key),
        }
    }

    /// The value at `key`, mutably.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match self {
            OrderedMap::Small(entries) => {
                let at = Self::search(entries, key).ok()?;
                entries.get_mut(at).map(|entry| &mut entry.1)
            }
            OrderedMap::Large(map) => map.get_mut(key),
        }
    }

    /// Removes everything (a small map keeps its buffer).
    pub(crate) fn clear(&mut self) {
        match self {
            OrderedMap::Small(entries) => entries.clear(),
            OrderedMap::Large(_) => *self = OrderedMap::default(),
        }
    }

    /// The entries in key order.
    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        match self {
            OrderedMap::Small(entries) => Iter::Small(entries.iter()),
            OrderedMap::Large(map) => Iter::Large(map.iter()),
        }
    }

    /// The entries in key order, values mutable.
    pub(crate) fn iter_mut(&mut self) -> IterMut<'_, K, V> {
        match self {
            OrderedMap::Small(entries) => IterMut::Small(entries.iter_mut()),
            OrderedMap::Large(map) => IterMut::Large(map.iter_mut()),
        }
    }

    /// The values in key order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, value)| value)
    }
}

/// The entries of an [`OrderedMap`] in key order.
pub(crate) enum Iter<'a, K, V> {
    Small(std::slice::Iter<'a, (K, V)>),
    Large(btree_map::Iter<'a, K, V>),
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Small(entries) => entries.next().map(|(key, value)| (key, value)),
            Iter::Large(entries) => entries.next(),
        }
    }
}

/// The entries of an [`OrderedMap`] in key order, values mutable.
pub(crate) enum IterMut<'a, K, V> {
    Small(std::slice::IterMut<'a, (K, V)>),
    Large(btree_map::IterMut<'a, K, V>),
}

impl<'a, K, V> Iterator for IterMut<'a, K, V> {
    type Item = (&'a K, &'a mut V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            IterMut::Small(entries) => entries.next().map(|(key, value)| (&*key, value)),
            IterMut::Large(entries) => entries.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so the test needs no randomness crate.
    struct Steps(u64);

    impl Steps {
        fn next(&mut self, below: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % below
        }
    }

    fn same(map: &OrderedMap<u64, u64>, model: &BTreeMap<u64, u64>) {
        assert_eq!(map.len(), model.len());
        assert_eq!(map.is_empty(), model.is_empty());
        let entries: Vec<(u64, u64)> = map.iter().map(|(k, v)| (*k, *v)).collect();
        let expected: Vec<(u64, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(entries, expected);
    }

    #[test]
    fn test_ordered_map_matches_btreemap_across_both_forms() {
        for seed in 1..=20u64 {
            let mut steps = Steps(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut map = OrderedMap::new();
            let mut model = BTreeMap::new();
            // Key ranges that keep the map small, cross the threshold, and stay large.
            let range = [8, 40, 200][usize::try_from(seed % 3).unwrap()];
            let mut next_key = 0u64;
            for step in 0..4_000u64 {
                let key = if steps.next(3) == 0 {
                    // Mostly growing keys, as tokens and packet ids.
                    next_key += 1;
                    next_key % range
                } else {
                    steps.next(range)
                };
                match steps.next(6) {
                    0 | 1 => assert_eq!(map.insert(key, step), model.insert(key, step)),
                    2 => assert_eq!(map.remove(&key), model.remove(&key)),
                    3 => assert_eq!(map.remove_in_place(&key), model.remove(&key).is_some()),
                    4 => {
                        assert_eq!(map.contains_key(&key), model.contains_key(&key));
                        if let (Some(value), Some(expected)) =
                            (map.get_mut(&key), model.get_mut(&key))
                        {
                            *value += 1;
                            *expected += 1;
                        }
                    }
                    _ => {
                        for ((_, value), (_, expected)) in map.iter_mut().zip(model.iter_mut()) {
                            *value ^= 1;
                            *expected ^= 1;
                        }
                    }
                }
                same(&map, &model);
                if step % 997 == 0 {
                    map.clear();
                    model.clear();
                }
            }
            let values: Vec<u64> = map.values().copied().collect();
            assert_eq!(values, model.values().copied().collect::<Vec<_>>());
        }
    }

    #[test]
    fn test_ordered_map_converts_at_its_thresholds() {
        let mut map = OrderedMap::new();
        for key in 0..=SMALL_MAX as u64 {
            map.insert(key, key);
        }
        assert!(matches!(map, OrderedMap::Large(_)));
        for key in 0..=(SMALL_MAX - SMALL_AGAIN + 1) as u64 {
            map.remove(&key);
        }
        assert!(matches!(map, OrderedMap::Small(_)));
        assert_eq!(map.len(), SMALL_AGAIN - 1);
        assert_eq!(map.iter().next().map(|(k, _)| *k), Some(18));
    }
}
