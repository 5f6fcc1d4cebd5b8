//! The core as the connection floor sees it: [`ConnectionHost`] implemented for [`Core`].
//! Received packets go to the endpoint table, EndpointNotFound notices to the pending replies
//! and the failure monitor, a peer's handshake and failures to the failure monitor and the
//! at-most-once requests it carried.

use std::sync::Arc;

use moonpool_core::{Endpoint, NetworkAddress, UID};

use super::core::Core;
use crate::config::TransportConfig;
use crate::connection::{ConnectionHost, DeliveryCache, Origin};
use crate::env::Env;
use crate::metrics::TransportCounters;
use crate::peer::Peer;
use crate::protocol::Hello;

impl ConnectionHost for Core {
    fn config(&self) -> &TransportConfig {
        &self.config
    }

    fn env(&self) -> &dyn Env {
        &*self.env
    }

    fn counters(&self) -> &Arc<TransportCounters> {
        &self.counters
    }

    fn hello(&self) -> Hello {
        Hello {
            instance: self.instance,
            listen_address: self.listen_address(),
        }
    }

    fn is_shut_down(&self) -> bool {
        Core::is_shut_down(self)
    }

    fn deliver(
        &self,
        token: UID,
        payload: &[u8],
        origin: &Origin,
        via: Option<&Peer>,
        cache: &mut DeliveryCache,
    ) -> bool {
        Core::deliver_via(self, token, payload, origin, via, Some(cache))
    }

    fn endpoint_not_found(&self, endpoint: Endpoint) {
        self.on_endpoint_not_found(endpoint, true);
    }

    fn peer_available(&self, address: NetworkAddress, instance: UID) {
        self.failure_monitor.set_available(address, instance);
    }

    fn peer_failed(&self, address: NetworkAddress, epoch: u64) {
        self.failure_monitor.set_failed(address);
        self.resolve_try_requests(address, epoch);
    }
}
