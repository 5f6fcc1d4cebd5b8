//! [`Endpoint`]: a message destination.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{NetworkAddress, UID, WellKnownToken};

/// Where a message goes: the address of the process that owns the receiver, and the receiver's
/// token on that process.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    /// The owning process's address.
    pub address: NetworkAddress,
    /// The receiver's token.
    pub token: UID,
}

impl Endpoint {
    /// An endpoint from an address and token.
    pub const fn new(address: NetworkAddress, token: UID) -> Self {
        Self { address, token }
    }

    /// The well-known endpoint `token` on `address`.
    pub const fn well_known(address: NetworkAddress, token: WellKnownToken) -> Self {
        Self::new(address, token.uid())
    }

    /// The endpoint of the `index`-th member of an interface based at this endpoint.
    pub const fn adjusted(&self, index: u32) -> Self {
        Self::new(self.address, self.token.adjusted(index))
    }

    /// False when the token is the zero UID.
    pub const fn is_valid(&self) -> bool {
        self.token.is_valid()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.address, self.token)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({self})")
    }
}
