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
//!
//! The transport is built in four floors; a module names only its own floor or lower ones, and
//! where a lower floor must call up it defines a small trait that the floor above implements.
//!
//! 1. **Bytes and vocabulary**: [`wire`] (packet format and the streaming [`FrameDecoder`]),
//!    [`protocol`] (what packets carry: Hello, acknowledgements, request and reply envelopes),
//!    [`config`] ([`TransportConfig`]: timings and every bound), [`error`], [`metrics`]
//!    ([`TransportMetrics`] shows sizes next to their bounds), and the providers behind one
//!    object-safe trait.
//! 2. **One peer, one connection**: [`peer`] ([`Peer`]: outbound queues, the connection state
//!    machine, counters) and, above it, [`connection`] (reader, writer, monitor, the peer keeper).
//!    A connection hands received packets and its peer's state up through a host trait; a peer
//!    reaches its running connection through a drain trait.
//! 3. **Endpoints and dispatch**: [`endpoint_map`] ([`EndpointMap`]), [`failure_monitor`]
//!    ([`FailureMonitor`]), and the transport's core (endpoint table, replies awaited, peers,
//!    accepted connections, local delivery, built-in endpoints).
//! 4. **Typed RPC**: [`queue`] ([`NetNotifiedQueue`]), [`rpc`] ([`RequestStream`],
//!    [`ReplyPromise`], [`RequestClient`], [`ReplyFuture`]), and the façade on top,
//!    [`transport`] ([`NetTransport`], [`NetTransportBuilder`]).

// Floor 1: bytes and vocabulary.
pub mod config;
mod env;
pub mod error;
pub mod metrics;
pub mod protocol;
mod signal;
pub mod wire;

// Floor 2: one peer, one connection.
pub mod connection;
pub mod peer;

// Floor 3: endpoints and dispatch.
mod dispatch;
pub mod endpoint_map;
pub mod failure_monitor;

// Floor 4: typed RPC, and the façade.
pub mod queue;
pub mod rpc;
pub mod transport;

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
