//! What a connection needs from the transport above it, inverted: [`ConnectionHost`] is defined
//! here and implemented by the dispatch floor, so that a connection can hand over the packets it
//! receives and report its peer's state without knowing endpoints, pending replies or the
//! failure monitor. [`Origin`] says where a handed-over packet came from.

use std::sync::Arc;

use moonpool_core::{Endpoint, NetworkAddress, UID};

use super::shared::ConnectionShared;
use crate::config::TransportConfig;
use crate::env::Env;
use crate::metrics::TransportCounters;
use crate::peer::Peer;
use crate::protocol::Hello;

/// Where a delivered packet came from: replies to requests go back the same way.
#[derive(Clone)]
pub(crate) enum Origin {
    /// From this transport (local delivery).
    Local,
    /// From a connection.
    Connection(Arc<ConnectionShared>),
}

/// The transport a connection works for, as the connection sees it.
/// What the host hands a packet to (an endpoint's receiver), as a connection's reader may keep
/// it between packets in its [`DeliveryCache`].
pub(crate) trait Receive: Send + Sync {
    /// Takes one packet.
    fn receive(&self, token: UID, payload: &[u8], origin: &Origin);
}

/// The endpoint a connection's reader delivered to last, kept by the reader for its host: the
/// host alone fills and trusts it (while `generation` is the host's endpoint generation, the
/// receiver at `token` is still `target`), so a stream of packets to one endpoint is handed
/// over without looking the endpoint up, or counting a reference, each time.
#[derive(Default)]
pub(crate) struct DeliveryCache {
    pub(crate) token: UID,
    pub(crate) generation: u64,
    pub(crate) target: Option<Arc<dyn Receive>>,
}

pub(crate) trait ConnectionHost: Send + Sync + 'static {
    /// Timings and bounds.
    fn config(&self) -> &TransportConfig;

    /// Time, randomness and tasks.
    fn env(&self) -> &dyn Env;

    /// Transport-wide counters (deliveries, notices and drops are counted there).
    fn counters(&self) -> &Arc<TransportCounters>;

    /// What this transport announces at the start of every connection.
    fn hello(&self) -> Hello;

    /// True once the transport shut down.
    fn is_shut_down(&self) -> bool;

    /// Hands a data packet for `token` to whatever is registered there; false when nothing is.
    /// `via`: the peer owning the connection it came in on (an outbound connection); `cache`:
    /// the reader's [`DeliveryCache`].
    fn deliver(
        &self,
        token: UID,
        payload: &[u8],
        origin: &Origin,
        via: Option<&Peer>,
        cache: &mut DeliveryCache,
    ) -> bool;

    /// The remote transport at the other end of an outbound connection answered that `endpoint`
    /// does not exist.
    fn endpoint_not_found(&self, endpoint: Endpoint);

    /// An outbound connection to `address` completed its handshake; the remote announced
    /// `instance`.
    fn peer_available(&self, address: NetworkAddress, instance: UID);

    /// A connection attempt or the connection of epoch `epoch` (0: none was established) to
    /// `address` failed.
    fn peer_failed(&self, address: NetworkAddress, epoch: u64);
}
