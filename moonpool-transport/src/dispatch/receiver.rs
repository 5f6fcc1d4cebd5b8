//! [`PacketReceiver`]: what the endpoint table holds, implemented by the built-in endpoints
//! here and by the typed receive queues of the RPC floor.

use moonpool_core::UID;

use crate::connection::Origin;

/// Something registered at a token.
pub(crate) trait PacketReceiver: Send + Sync {
    /// Takes one packet.
    fn receive(&self, token: UID, payload: &[u8], origin: &Origin);
    /// The endpoint is being unregistered or the transport is shutting down.
    fn close(&self) {}
}
