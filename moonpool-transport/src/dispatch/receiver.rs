//! [`PacketReceiver`]: what the endpoint table holds, implemented by the built-in endpoints
//! here and by the typed receive queues of the RPC floor.

use crate::connection::Receive;

/// Something registered at a token: it takes packets ([`Receive`], the connection floor's view
/// of it, which a connection's reader may keep between packets) and can be closed.
pub(crate) trait PacketReceiver: Receive {
    /// The endpoint is being unregistered or the transport is shutting down.
    fn close(&self) {}
}
