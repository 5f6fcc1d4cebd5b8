//! # moonpool-transport
//!
//! FoundationDB-style messaging for Moonpool: a checksummed wire format, [`Peer`] connections
//! with reliable and unreliable queues and reconnection, a [`NetTransport`] with its
//! [`EndpointMap`], and RPC ([`RequestStream`], [`ReplyPromise`], [`RequestClient`],
//! [`ReplyFuture`]) with four delivery modes.
//!
//! It depends on `moonpool-core` alone at run time, so it runs on Tokio without the simulator, and
//! is tested in simulation through `moonpool-sim` as a dev-dependency. Everything is
//! self-driving: peers, connections and listeners run in tasks spawned through the
//! [`TaskProvider`](moonpool_core::TaskProvider); nothing needs ticking.
//!
//! See the README (below, and compiled as a doctest) for a first example, the delivery modes and
//! the bounds.
//!
//! ## Map
//! - [`wire`]: packet format and the streaming [`FrameDecoder`].
//! - [`protocol`]: what packets carry (Hello, acknowledgements, request and reply envelopes).
//! - [`Peer`]: outbound queues and the connection keeper; [`connection`]: reader, writer,
//!   monitor and accept loop.
//! - [`NetTransport`], [`NetTransportBuilder`], [`EndpointMap`], [`FailureMonitor`].
//! - RPC: [`RequestStream`], [`ReplyPromise`], [`RequestClient`], [`ReplyFuture`],
//!   [`NetNotifiedQueue`].
//! - [`TransportConfig`]: timings and every bound; [`TransportMetrics`] shows sizes next to them.

pub mod config;
pub mod connection;
pub mod endpoint_map;
mod env;
pub mod error;
pub mod failure_monitor;
pub mod metrics;
pub mod peer;
pub mod protocol;
pub mod queue;
pub mod rpc;
mod signal;
pub mod transport;
pub mod wire;

pub use config::{ConfigError, TransportConfig};
pub use connection::ConnectionError;
pub use endpoint_map::EndpointMap;
pub use error::{ReplyError, TransportError};
pub use failure_monitor::{AddressStatus, FailureMonitor};
pub use metrics::{PeerMetrics, TransportMetrics};
pub use peer::Peer;
pub use queue::{NetNotifiedQueue, QueueStats};
pub use rpc::{ReplyFuture, ReplyPromise, RequestClient, RequestStream};
pub use transport::{NetTransport, NetTransportBuilder};
pub use wire::{Frame, FrameDecoder, WireError};

pub use moonpool_core::{Endpoint, JsonCodec, MessageCodec, NetworkAddress, UID, WellKnownToken};

/// The README's code blocks, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
