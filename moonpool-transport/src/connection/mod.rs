//! Connections: the peer keeper (connect, run, back off), accepted connections, and a running
//! connection, which has three parts:
//!
//! - the **reader** (the connection's task) decodes packets and dispatches them; a checksum
//!   mismatch or any malformed packet ends the connection;
//! - the **writer** is shared: a sender with nothing else in flight writes its packet itself,
//!   from its own task (no task switch, the lowest latency); packets queued in bursts, and
//!   whatever the stream could not take at once, are written in batches by the connection's task.
//!   The Hello goes first; on an outbound connection the peer's queues follow, on an accepted
//!   one the outbox (replies, pongs, EndpointNotFound notices, acknowledgements);
//! - the **monitor** (its own task, aborted with the connection) wakes every `ping_interval`: it
//!   fails the connection when no whole packet arrived for `ping_timeout`, and on outbound
//!   connections queues a ping (unreliable) so that a live peer always has something to answer
//!   (FoundationDB's connectionMonitor).
//!
//! Roles: the side that connected (the *initiator*, owned by a [`Peer`](crate::Peer)) sends
//! requests and messages and receives replies; the side that accepted (the *acceptor*) receives
//! requests and messages, and writes replies, pongs, EndpointNotFound notices and
//! acknowledgements on the same connection. Replies therefore always travel back on the
//! connection their request came in on, and a lost reply always means a failed connection, which
//! the caller sees.
//!
//! Floor 2, above the [peer](crate::peer) it drains: a connection knows its stream, the wire, the
//! protocol and its owning peer. It knows nothing of endpoints, pending replies, the failure
//! monitor or RPC: received packets and the peer's state go up through `ConnectionHost`, which
//! the dispatch floor implements; the peer reaches its connection through the peer floor's
//! `Drain`, implemented here.
//!
//! Inside, each file naming only those before it: `shared` (the state other tasks reach,
//! [`ConnectionError`]), `write`, `reply`, `host` (`ConnectionHost`, `Origin`), `read`,
//! `monitor`, `keeper` (`Connector`, the tasks).

mod host;
mod keeper;
mod monitor;
mod read;
mod reply;
mod shared;
mod write;

pub use self::shared::ConnectionError;

pub(crate) use self::host::{ConnectionHost, DeliveryCache, Origin, Receive};
pub(crate) use self::keeper::{Connector, run_accepted};
pub(crate) use self::shared::ConnectionShared;
