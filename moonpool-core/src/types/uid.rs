//! [`UID`]: 128-bit identifiers for endpoints, processes and requests.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::RandomProvider;

/// A 128-bit identifier, FoundationDB-style: two 64-bit halves.
///
/// A UID whose `first` half is `u64::MAX` is *well-known*: its `second` half is a small index
/// (see [`crate::WellKnownToken`]) that every process agrees on without exchanging it.
///
/// `Display` prints 32 lowercase hex digits and [`FromStr`] parses exactly that form back.
///
/// ```
/// use moonpool_core::UID;
/// let uid = UID::new(0x1234, 0xabcd);
/// let text = uid.to_string();
/// assert_eq!(text, "0000000000001234000000000000abcd");
/// assert_eq!(text.parse::<UID>().unwrap(), uid);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct UID {
    /// High half.
    pub first: u64,
    /// Low half.
    pub second: u64,
}

/// Number of hex digits in a UID's text form.
pub const UID_HEX_LEN: usize = 32;

impl UID {
    /// A UID from its two halves.
    pub const fn new(first: u64, second: u64) -> Self {
        Self { first, second }
    }

    /// The well-known UID with index `index`.
    pub const fn well_known(index: u32) -> Self {
        Self {
            first: u64::MAX,
            second: index as u64,
        }
    }

    /// A fresh random UID drawn from `random` (never zero, never well-known).
    pub fn random(random: &impl RandomProvider) -> Self {
        loop {
            let uid = Self::new(random.random(), random.random());
            if uid.is_valid() && !uid.is_well_known() {
                return uid;
            }
        }
    }

    /// True for well-known UIDs.
    pub const fn is_well_known(&self) -> bool {
        self.first == u64::MAX
    }

    /// False for the all-zero UID, which marks "no identifier".
    pub const fn is_valid(&self) -> bool {
        self.first != 0 || self.second != 0
    }

    /// The UID of the `index`-th member of an interface whose base UID is `self`.
    ///
    /// The index is mixed into both halves (added above bit 32 of `first`, and added, wrapping,
    /// to the low 32 bits of `second`), so the tokens of one interface's methods are distinct from
    /// each other and from the base. `adjusted(0)` is `self`.
    #[allow(clippy::cast_possible_truncation)]
    pub const fn adjusted(&self, index: u32) -> Self {
        let first = self.first.wrapping_add((index as u64) << 32);
        let low = (self.second as u32).wrapping_add(index);
        let second = (self.second & 0xFFFF_FFFF_0000_0000) | low as u64;
        Self { first, second }
    }
}

impl fmt::Display for UID {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}{:016x}", self.first, self.second)
    }
}

impl fmt::Debug for UID {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UID({self})")
    }
}

/// Text that is not a UID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UidParseError {
    /// The text does not have exactly 32 characters.
    #[error("UID '{input}' has {len} characters, expected {UID_HEX_LEN} hex digits")]
    WrongLength {
        /// The text given.
        input: String,
        /// Its length in characters.
        len: usize,
    },
    /// The text has a character that is not a hex digit.
    #[error("UID '{input}' contains '{character}', which is not a hex digit")]
    NotHex {
        /// The text given.
        input: String,
        /// The first offending character.
        character: char,
    },
}

impl FromStr for UID {
    type Err = UidParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let len = input.chars().count();
        if len != UID_HEX_LEN {
            return Err(UidParseError::WrongLength {
                input: input.to_string(),
                len,
            });
        }
        if let Some(character) = input.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(UidParseError::NotHex {
                input: input.to_string(),
                character,
            });
        }
        let parse = |half: &str| {
            u64::from_str_radix(half, 16).map_err(|_| UidParseError::NotHex {
                input: input.to_string(),
                character: '?',
            })
        };
        Ok(Self::new(parse(&input[..16])?, parse(&input[16..])?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_adjusted_is_distinct_and_zero_is_identity() {
        let base = UID::new(0x0123_4567_89ab_cdef, 0xffff_ffff_ffff_fffe);
        assert_eq!(base.adjusted(0), base);
        let tokens: Vec<UID> = (0..16).map(|i| base.adjusted(i)).collect();
        for (i, a) in tokens.iter().enumerate() {
            for b in &tokens[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // The low half wraps within its 32 bits and leaves the high 32 bits alone.
        assert_eq!(base.adjusted(3).second, 0xffff_ffff_0000_0001);
    }

    #[test]
    fn test_well_known() {
        let uid = UID::well_known(1);
        assert!(uid.is_well_known());
        assert!(uid.is_valid());
        assert!(!UID::default().is_valid());
        assert!(!UID::new(1, 2).is_well_known());
    }
}
