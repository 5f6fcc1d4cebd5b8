//! Reserved endpoint tokens.

use crate::UID;

/// Number of well-known token indexes reserved for O(1) lookup (`0..64`).
pub const WELL_KNOWN_RESERVED_COUNT: u32 = 64;

/// Tokens every process knows without being told.
///
/// Indexes `0..FirstAvailable` belong to Moonpool; applications may use
/// `FirstAvailable..WELL_KNOWN_RESERVED_COUNT` for their own fixed endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum WellKnownToken {
    /// Replies from a transport that received a packet for a token it does not know.
    EndpointNotFound = 0,
    /// Liveness pings between peers.
    Ping = 1,
    /// Replies refusing a packet for an endpoint the sender may not use.
    UnauthorizedEndpoint = 2,
    /// The first index free for applications.
    FirstAvailable = 3,
}

impl WellKnownToken {
    /// The token's index.
    pub const fn index(self) -> u32 {
        self as u32
    }

    /// The token as a well-known [`UID`].
    pub const fn uid(self) -> UID {
        UID::well_known(self as u32)
    }

    /// The token whose index is `index`, if Moonpool reserves it.
    pub const fn from_index(index: u32) -> Option<Self> {
        match index {
            0 => Some(Self::EndpointNotFound),
            1 => Some(Self::Ping),
            2 => Some(Self::UnauthorizedEndpoint),
            3 => Some(Self::FirstAvailable),
            _ => None,
        }
    }
}

impl From<WellKnownToken> for UID {
    fn from(token: WellKnownToken) -> Self {
        token.uid()
    }
}
