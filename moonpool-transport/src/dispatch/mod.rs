//! The dispatch floor: the endpoint table, the replies awaited, the peers and accepted
//! connections of a transport, local delivery, the built-in endpoints, and the failure monitor's
//! feed. [`Core`] is the shared state; [`TransportHandle`] is what user-facing types hold.
//!
//! Floor 3, above the peers and connections (which it drives and which report to it through
//! [`ConnectionHost`](crate::connection::ConnectionHost), implemented in `host`) and below typed
//! RPC. It moves bytes to tokens: it knows nothing of codecs, typed queues, request streams or
//! reply promises; those register here as [`PacketReceiver`]s and send through
//! [`Core::start_request`] and [`Core::send_frame`].
//!
//! Inside: `receiver` ([`PacketReceiver`]), `pending` (a reply awaited) → `registry` (the
//! endpoint table and the replies awaited) → `core` (tables, tokens, dispatch, local delivery,
//! shutdown, metrics) → `requests`, `incoming` (the accept
//! loop), `route` ([`ReplyRoute`]) → `builtins`, `host`, `handle`.

mod builtins;
mod core;
mod handle;
mod host;
mod incoming;
mod pending;
mod receiver;
mod registry;
mod requests;
mod route;

pub(crate) use self::core::{Core, unaddressed};
pub(crate) use self::handle::TransportHandle;
pub(crate) use self::incoming::run_accept_loop;
pub(crate) use self::pending::RequestMode;
pub(crate) use self::receiver::PacketReceiver;
pub(crate) use self::requests::{PendingRequest, recycle_buffer};
pub(crate) use self::route::ReplyRoute;
