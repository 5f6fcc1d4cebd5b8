//! # moonpool-transport
//!
//! FoundationDB-style messaging for Moonpool: a checksummed wire format, `Peer` connections with
//! reliable and unreliable queues and reconnection, `NetTransport` with its `EndpointMap`, and RPC
//! (`RequestStream`, `ReplyPromise`, `ReplyFuture`, four delivery modes).
//!
//! It depends on `moonpool-core` alone at run time, so it runs on Tokio without the simulator, and
//! is tested in simulation through `moonpool-sim` as a dev-dependency.
//!
//! **Status:** the crate is a documented shell; the transport itself is built in the
//! "moonpool-transport" issue, after the simulator engine and runner.

pub use moonpool_core::{Endpoint, NetworkAddress, UID, WellKnownToken};
