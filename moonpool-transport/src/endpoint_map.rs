//! [`EndpointMap`]: token to receiver routing.
//!
//! Well-known tokens (`first == u64::MAX`, index below
//! `WELL_KNOWN_RESERVED_COUNT`) live in a fixed array
//! indexed by the token's index: O(1), no hashing, no allocation. Every other token lives in a
//! `BTreeMap`, whose iteration order is the token order (never a random hasher's), bounded by
//! `dynamic_max`.
//!
//! Floor 3 (endpoints and dispatch): a plain bounded table, generic over what it holds; it knows
//! nothing of packets, connections or RPC.

use std::collections::BTreeMap;

use moonpool_core::{UID, WELL_KNOWN_RESERVED_COUNT};

use crate::error::TransportError;

const SLOTS: usize = WELL_KNOWN_RESERVED_COUNT as usize;

/// Maps endpoint tokens to receivers of type `R`.
///
/// ```
/// use moonpool_core::{UID, WellKnownToken};
/// use moonpool_transport::EndpointMap;
///
/// let mut map = EndpointMap::new(100);
/// map.insert(WellKnownToken::Ping.uid(), "ping").unwrap();
/// map.insert(UID::new(1, 2), "dynamic").unwrap();
/// assert_eq!(map.get(&WellKnownToken::Ping.uid()), Some(&"ping"));
/// assert_eq!(map.remove(&UID::new(1, 2)), Some("dynamic"));
/// assert!(map.get(&UID::new(1, 2)).is_none());
/// ```
#[derive(Debug)]
pub struct EndpointMap<R> {
    well_known: [Option<R>; SLOTS],
    well_known_len: usize,
    dynamic: BTreeMap<UID, R>,
    dynamic_max: usize,
}

impl<R> EndpointMap<R> {
    /// An empty map holding at most `dynamic_max` non-well-known tokens.
    pub fn new(dynamic_max: usize) -> Self {
        Self {
            well_known: std::array::from_fn(|_| None),
            well_known_len: 0,
            dynamic: BTreeMap::new(),
            dynamic_max,
        }
    }

    /// The array slot of a well-known token; `None` for other tokens.
    fn slot(token: &UID) -> Option<usize> {
        if !token.is_well_known() {
            return None;
        }
        usize::try_from(token.second).ok()
    }

    /// Registers `receiver` at `token`.
    ///
    /// Fails with [`TransportError::TokenInUse`] when the token is taken,
    /// [`TransportError::InvalidWellKnownToken`] for a well-known index outside the array, and
    /// [`TransportError::TooManyEndpoints`] when `dynamic_max` tokens are registered.
    pub fn insert(&mut self, token: UID, receiver: R) -> Result<(), TransportError> {
        if let Some(index) = Self::slot(&token) {
            let slot =
                self.well_known
                    .get_mut(index)
                    .ok_or(TransportError::InvalidWellKnownToken {
                        index: u32::try_from(index).unwrap_or(u32::MAX),
                        first: 0,
                        limit: WELL_KNOWN_RESERVED_COUNT,
                    })?;
            if slot.is_some() {
                return Err(TransportError::TokenInUse { token });
            }
            *slot = Some(receiver);
            self.well_known_len += 1;
            return Ok(());
        }
        if self.dynamic.contains_key(&token) {
            return Err(TransportError::TokenInUse { token });
        }
        if self.dynamic.len() >= self.dynamic_max {
            return Err(TransportError::TooManyEndpoints {
                bound: self.dynamic_max,
            });
        }
        self.dynamic.insert(token, receiver);
        Ok(())
    }

    /// The receiver at `token`.
    pub fn get(&self, token: &UID) -> Option<&R> {
        match Self::slot(token) {
            Some(index) => self.well_known.get(index).and_then(Option::as_ref),
            None => self.dynamic.get(token),
        }
    }

    /// Removes and returns the receiver at `token`.
    pub fn remove(&mut self, token: &UID) -> Option<R> {
        match Self::slot(token) {
            Some(index) => {
                let removed = self.well_known.get_mut(index).and_then(Option::take);
                if removed.is_some() {
                    self.well_known_len -= 1;
                }
                removed
            }
            None => self.dynamic.remove(token),
        }
    }

    /// True when `token` is registered.
    pub fn contains(&self, token: &UID) -> bool {
        self.get(token).is_some()
    }

    /// Number of well-known tokens registered.
    pub fn well_known_len(&self) -> usize {
        self.well_known_len
    }

    /// Number of other tokens registered.
    pub fn dynamic_len(&self) -> usize {
        self.dynamic.len()
    }

    /// The bound on other tokens.
    pub fn dynamic_max(&self) -> usize {
        self.dynamic_max
    }

    /// Removes every receiver, returning them (well-known first, then by token order).
    pub fn drain(&mut self) -> Vec<R> {
        let mut out: Vec<R> = self
            .well_known
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        self.well_known_len = 0;
        out.extend(std::mem::take(&mut self.dynamic).into_values());
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use moonpool_core::WellKnownToken;

    #[test]
    fn test_well_known_slots_and_dynamic_tokens() {
        let mut map = EndpointMap::new(2);
        for index in 0..WELL_KNOWN_RESERVED_COUNT {
            map.insert(UID::well_known(index), index).unwrap();
        }
        assert_eq!(map.well_known_len(), 64);
        assert_eq!(map.get(&WellKnownToken::Ping.uid()), Some(&1));
        assert!(matches!(
            map.insert(UID::well_known(64), 64),
            Err(TransportError::InvalidWellKnownToken { index: 64, .. })
        ));
        assert!(matches!(
            map.insert(UID::well_known(3), 0),
            Err(TransportError::TokenInUse { .. })
        ));
        // Dynamic tokens are bounded; well-known ones do not count against the bound.
        map.insert(UID::new(1, 1), 100).unwrap();
        map.insert(UID::new(1, 2), 101).unwrap();
        assert!(matches!(
            map.insert(UID::new(1, 3), 102),
            Err(TransportError::TooManyEndpoints { bound: 2 })
        ));
        assert_eq!(map.dynamic_len(), 2);
        assert_eq!(map.remove(&UID::new(1, 1)), Some(100));
        map.insert(UID::new(1, 3), 102).unwrap();
        assert_eq!(map.remove(&UID::well_known(5)), Some(5));
        assert_eq!(map.remove(&UID::well_known(5)), None);
        assert_eq!(map.well_known_len(), 63);
        assert!(!map.contains(&UID::well_known(5)));
        let drained = map.drain();
        assert_eq!(drained.len(), 63 + 2);
        assert_eq!(map.well_known_len() + map.dynamic_len(), 0);
    }

    #[test]
    fn test_a_well_known_looking_token_beyond_the_array_is_not_dynamic() {
        let mut map: EndpointMap<u8> = EndpointMap::new(10);
        assert!(map.insert(UID::new(u64::MAX, 1 << 40), 1).is_err());
        assert!(map.get(&UID::new(u64::MAX, 1 << 40)).is_none());
        assert_eq!(map.dynamic_len(), 0);
    }
}
