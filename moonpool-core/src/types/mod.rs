//! Identifiers and addresses shared by every layer.

mod address;
mod endpoint;
mod uid;
mod well_known;

pub use address::{AddressParseError, FLAG_PUBLIC, FLAG_TLS, NetworkAddress};
pub use endpoint::Endpoint;
pub use uid::{UID, UID_HEX_LEN, UidParseError};
pub use well_known::{WELL_KNOWN_RESERVED_COUNT, WellKnownToken};
