//! [`Core`]: the shared state of a transport. Its tables (endpoints and replies awaited,
//! peers, accepted connections, background tasks), its tokens, the dispatch of a packet to
//! whatever is registered at its token, local delivery, shutdown and metrics.
//!
//! Requests (registering a reply and sending) are in [`requests`](super::requests), accepted
//! connections in [`incoming`](super::incoming), what connections see of the core in
//! [`host`](super::host).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use moonpool_core::{Endpoint, JoinHandle, NetworkAddress, UID, WellKnownToken};

use super::pending::PendingReply;
use super::receiver::PacketReceiver;
use super::registry::Registry;
use crate::config::TransportConfig;
use crate::connection::{Connector, DeliveryCache, Origin, Receive};
use crate::endpoint_map::EndpointMap;
use crate::env::Env;
use crate::error::{ReplyError, TransportError};
use crate::failure_monitor::FailureMonitor;
use crate::metrics::{TransportCounters, TransportMetrics};
use crate::peer::{Flush, PacketId, Peer};
use crate::spin::{SpinGuard, SpinLock};
use crate::wire::HEADER_SIZE;

/// How late a buggified local delivery of an unreliable packet is.
const LOCAL_REORDER_DELAY: std::time::Duration = std::time::Duration::from_millis(1);

struct PeerEntry {
    peer: Arc<Peer>,
    keeper: Option<JoinHandle<()>>,
}

/// Accepted connections, by admission id.
#[derive(Default)]
pub(super) struct Incoming {
    pub(super) connections: BTreeMap<u64, Option<JoinHandle<()>>>,
    pub(super) next_id: u64,
}

/// The shared state of a transport; tasks hold it, users hold a
/// [`NetTransport`](crate::NetTransport).
pub(crate) struct Core {
    pub(crate) config: TransportConfig,
    pub(crate) local_address: Option<NetworkAddress>,
    pub(crate) listening: bool,
    pub(crate) instance: UID,
    pub(crate) env: Arc<dyn Env>,
    /// Spawns peer keepers (the network provider, type-erased).
    connector: Arc<dyn Connector>,
    pub(crate) failure_monitor: FailureMonitor,
    pub(crate) counters: Arc<TransportCounters>,
    /// Short critical sections that never block: a spin lock, whose release is a plain store.
    registry: SpinLock<Registry>,
    peers: Mutex<BTreeMap<NetworkAddress, PeerEntry>>,
    pub(super) incoming: Mutex<Incoming>,
    background: Mutex<Vec<JoinHandle<()>>>,
    shut_down: AtomicBool,
    /// Tokens handed out by this transport: a random high half per instance and a counter, so
    /// a token is never reused while the instance lives (a late reply can never reach a newer
    /// request) and no randomness is drawn per request.
    /// (The counter is the registry's.)
    token_base: u64,
    /// Counts the changes of the endpoint table (see [`DeliveryCache`]).
    endpoints_generation: AtomicU64,
    /// Counts the pending replies resolved (changed only under the registry's lock; see
    /// [`resolutions`](Self::resolutions)).
    resolutions: AtomicU64,
    pub(super) weak_self: Weak<Core>,
}

/// The address of endpoints on a transport built without one (`0.0.0.0:0`).
pub(crate) fn unaddressed() -> NetworkAddress {
    NetworkAddress::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0)
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Core {
    pub(crate) fn new(
        config: TransportConfig,
        env: Arc<dyn Env>,
        connector: Arc<dyn Connector>,
        local_address: Option<NetworkAddress>,
        listening: bool,
    ) -> Arc<Self> {
        let instance = env.random_uid();
        // Neither zero (the control token's half) nor all ones (well-known tokens).
        let token_base = env.random_uid().first.clamp(1, u64::MAX - 1);
        let failure_monitor = FailureMonitor::new(Arc::clone(&env), config.failed_endpoints_max);
        let endpoints = EndpointMap::new(config.endpoints_max);
        Arc::new_cyclic(|weak_self| Core {
            config,
            local_address,
            listening,
            instance,
            env,
            connector,
            failure_monitor,
            counters: Arc::new(TransportCounters::default()),
            registry: SpinLock::new(Registry::new(endpoints)),
            peers: Mutex::new(BTreeMap::new()),
            incoming: Mutex::new(Incoming::default()),
            background: Mutex::new(Vec::new()),
            shut_down: AtomicBool::new(false),
            token_base,
            endpoints_generation: AtomicU64::new(1),
            resolutions: AtomicU64::new(0),
            weak_self: weak_self.clone(),
        })
    }

    pub(super) fn registry(&self) -> SpinGuard<'_, Registry> {
        self.registry.lock()
    }

    /// How many pending replies were resolved so far: counted under the registry's lock before
    /// each resolution's wake, so a caller that reads the count it saw when its entry was made
    /// knows that no wake of a resolution happened before its read.
    pub(super) fn resolutions(&self) -> u64 {
        self.resolutions.load(Ordering::Acquire)
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    /// The address announced in Hellos (only when listening).
    pub(crate) fn listen_address(&self) -> Option<NetworkAddress> {
        self.local_address.filter(|_| self.listening)
    }

    pub(super) fn is_local(&self, address: &NetworkAddress) -> bool {
        let local = self.local_address.unwrap_or_else(unaddressed);
        local.ip == address.ip && local.port == address.port
    }

    /// Registers `receiver` at `token`, refusing Moonpool's reserved well-known indexes.
    pub(crate) fn register(
        &self,
        token: UID,
        receiver: Arc<dyn PacketReceiver>,
    ) -> Result<(), TransportError> {
        if self.is_shut_down() {
            return Err(TransportError::Shutdown);
        }
        if token.is_well_known() && token.second < u64::from(WellKnownToken::FirstAvailable.index())
        {
            return Err(TransportError::InvalidWellKnownToken {
                index: u32::try_from(token.second).unwrap_or(u32::MAX),
                first: WellKnownToken::FirstAvailable.index(),
                limit: moonpool_core::WELL_KNOWN_RESERVED_COUNT,
            });
        }
        if !token.is_valid() {
            return Err(TransportError::TokenInUse { token });
        }
        let mut registry = self.registry();
        let inserted = registry.endpoints.insert(token, receiver);
        self.endpoints_changed();
        inserted
    }

    /// The endpoint table changed (called with the registry's lock held): connections' delivery
    /// caches are stale.
    pub(super) fn endpoints_changed(&self) {
        self.endpoints_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Removes the receiver at `token` and closes it.
    pub(crate) fn unregister(&self, token: UID) {
        let removed = {
            let mut registry = self.registry();
            let removed = registry.endpoints.remove(&token);
            self.endpoints_changed();
            removed
        };
        if let Some(receiver) = removed {
            receiver.close();
        }
    }

    /// The next token of this instance (never handed out before).
    pub(super) fn token_base(&self) -> u64 {
        self.token_base
    }

    /// A token free in both the endpoint map and the pending replies.
    pub(crate) fn fresh_token(&self) -> UID {
        self.registry().free_token(self.token_base)
    }

    /// Hands `payload` to whatever is registered at `token` (a pending reply or an endpoint).
    /// False when nothing is.
    pub(crate) fn deliver(&self, token: UID, payload: &[u8], origin: &Origin) -> bool {
        self.deliver_via(token, payload, origin, None, None)
    }

    /// [`deliver`](Self::deliver) for a packet that came in on a connection of `via` (an
    /// outbound connection's peer, which holds the reliable packets of the requests sent
    /// through it: a reply releases its request's packet without looking the peer up).
    pub(crate) fn deliver_via(
        &self,
        token: UID,
        payload: &[u8],
        origin: &Origin,
        via: Option<&Peer>,
        cache: Option<&mut DeliveryCache>,
    ) -> bool {
        // The endpoint delivered to last on this connection, if nothing was registered or
        // unregistered since: no reply awaited can be at its token (a request never takes a
        // token an endpoint holds, and the cache is filled only when none was awaited there).
        if let Some(cache) = cache.as_deref()
            && cache.token == token
            && cache.generation == self.endpoints_generation.load(Ordering::Acquire)
            && let Some(target) = &cache.target
        {
            target.receive(token, payload, origin);
            return true;
        }
        let (receiver, generation) = {
            let mut registry = self.registry();
            if let Some(resolved) = registry.resolve_with(&token, payload, via, &self.resolutions) {
                drop(registry);
                resolved.finish(|address, id| self.cancel_packet(address, id));
                return true;
            }
            let receiver = registry.endpoints.get(&token).cloned();
            // Read under the lock, which every change of the endpoints holds; none when a reply
            // is awaited at the token (then the cache must not skip the lookup).
            let generation = (!registry.pending.contains_key(&token))
                .then(|| self.endpoints_generation.load(Ordering::Acquire));
            (receiver, generation)
        };
        let Some(receiver) = receiver else {
            return false;
        };
        receiver.receive(token, payload, origin);
        if let (Some(cache), Some(generation)) = (cache, generation) {
            // Kept for the next packet (the reference taken for this one moves in).
            cache.token = token;
            cache.generation = generation;
            cache.target = Some(receiver as Arc<dyn Receive>);
        }
        true
    }

    /// The peer for `address`, created (and its keeper spawned) on first use.
    pub(crate) fn peer_for(&self, address: NetworkAddress) -> Result<Arc<Peer>, TransportError> {
        let mut peers = lock(&self.peers);
        if let Some(entry) = peers.get(&address) {
            return Ok(Arc::clone(&entry.peer));
        }
        if self.is_shut_down() {
            return Err(TransportError::Shutdown);
        }
        if peers.len() >= self.config.peers_max {
            return Err(TransportError::TooManyPeers {
                address,
                bound: self.config.peers_max,
            });
        }
        let Some(core) = self.weak_self.upgrade() else {
            return Err(TransportError::Shutdown);
        };
        let peer = Arc::new(Peer::new(address, &self.config));
        self.failure_monitor.track(address);
        let keeper = self.connector.spawn_keeper(core, Arc::clone(&peer));
        peers.insert(
            address,
            PeerEntry {
                peer: Arc::clone(&peer),
                keeper: Some(keeper),
            },
        );
        Ok(peer)
    }

    /// Releases reliable packet `id` from the peer of `address` (if the transport still has it).
    pub(super) fn cancel_packet(&self, address: NetworkAddress, id: PacketId) {
        let peer = lock(&self.peers)
            .get(&address)
            .map(|entry| Arc::clone(&entry.peer));
        if let Some(peer) = peer {
            peer.cancel(id);
        }
    }

    /// Sends an encoded packet: locally, or through the peer of the destination.
    pub(crate) fn send_frame(
        &self,
        destination: &Endpoint,
        frame: Vec<u8>,
        reliable: bool,
    ) -> Result<(), TransportError> {
        if self.is_shut_down() {
            return Err(TransportError::Shutdown);
        }
        if self.is_local(&destination.address) {
            self.counters
                .local_deliveries
                .fetch_add(1, Ordering::Relaxed);
            // Buggify: an unreliable local packet is delivered a little later, so packets sent
            // after it overtake it (unreliable packets promise no order).
            if !reliable && moonpool_core::buggify!() {
                self.deliver_later(*destination, frame);
                return Ok(());
            }
            if !self.deliver(destination.token, &frame[HEADER_SIZE..], &Origin::Local) {
                self.on_endpoint_not_found(*destination, false);
            }
            return Ok(());
        }
        let peer = self.peer_for(destination.address)?;
        if reliable {
            peer.enqueue_reliable(frame, false, None, Flush::Batched)
                .map(|_| ())
        } else {
            peer.enqueue_unreliable_lossy(frame, Flush::Batched)
        }
    }

    /// Delivers a local packet from a task of its own after [`LOCAL_REORDER_DELAY`].
    fn deliver_later(&self, destination: Endpoint, frame: Vec<u8>) {
        let core = self.weak_self.clone();
        let env = Arc::clone(&self.env);
        let delivery = async move {
            env.sleep(LOCAL_REORDER_DELAY).await;
            let Some(core) = core.upgrade() else { return };
            if core.is_shut_down() {
                return;
            }
            let payload = frame.get(HEADER_SIZE..).unwrap_or_default();
            if !core.deliver(destination.token, payload, &Origin::Local) {
                core.on_endpoint_not_found(destination, false);
            }
        };
        // Detached: the delivery runs on its own; the transport's shutdown makes it a no-op.
        drop(
            self.env
                .spawn("moonpool-transport/local-delivery", Box::pin(delivery)),
        );
    }

    /// Resolves pending replies matching `select` with the error it returns (their callers
    /// are woken in token order).
    pub(super) fn resolve_pending(
        &self,
        select: impl Fn(&PendingReply) -> Option<ReplyError>,
    ) -> usize {
        let resolved = self.registry().resolve_matching(select, &self.resolutions);
        let count = resolved.len();
        for resolved in resolved {
            resolved.finish(|address, id| self.cancel_packet(address, id));
        }
        count
    }

    /// `endpoint` does not exist: resolves every request waiting on it and, for a remote
    /// endpoint, tells the failure monitor.
    pub(crate) fn on_endpoint_not_found(&self, endpoint: Endpoint, remote: bool) {
        self.counters
            .endpoint_not_found_received
            .fetch_add(1, Ordering::Relaxed);
        if remote {
            self.failure_monitor.endpoint_not_found(endpoint);
        }
        self.resolve_pending(|pending| {
            (pending.destination == endpoint).then_some(ReplyError::EndpointNotFound { endpoint })
        });
    }

    /// Keeps a task (the listener) until shutdown aborts it.
    pub(crate) fn add_background(&self, handle: JoinHandle<()>) {
        lock(&self.background).push(handle);
    }

    /// Stops everything: tasks aborted, peers closed, pending replies failed with
    /// [`ReplyError::TransportClosed`], receive queues closed.
    pub(crate) fn shutdown(&self) {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return;
        }
        let peers = std::mem::take(&mut *lock(&self.peers));
        for entry in peers.values() {
            entry.peer.close();
            if let Some(keeper) = &entry.keeper {
                keeper.abort();
            }
        }
        let incoming = std::mem::take(&mut lock(&self.incoming).connections);
        for handle in incoming.values().flatten() {
            handle.abort();
        }
        for handle in std::mem::take(&mut *lock(&self.background)) {
            handle.abort();
        }
        let (receivers, pending) = {
            let mut registry = self.registry();
            let receivers = registry.endpoints.drain();
            self.endpoints_changed();
            // The callers take their outcome (a reply already in, or `TransportClosed`).
            let pending =
                registry.resolve_matching(|_| Some(ReplyError::TransportClosed), &self.resolutions);
            (receivers, pending)
        };
        for receiver in receivers {
            receiver.close();
        }
        for resolved in pending {
            resolved.finish(|address, id| self.cancel_packet(address, id));
        }
        self.failure_monitor.close();
        drop(peers);
        drop(incoming);
    }

    pub(crate) fn metrics(&self) -> TransportMetrics {
        let (endpoints, well_known, pending) = {
            let registry = self.registry();
            (
                registry.endpoints.dynamic_len(),
                registry.endpoints.well_known_len(),
                registry.waiting(),
            )
        };
        let peer_metrics: Vec<_> = lock(&self.peers)
            .values()
            .map(|entry| entry.peer.metrics())
            .collect();
        let counter = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let c = &self.counters;
        TransportMetrics {
            endpoints,
            endpoints_max: self.config.endpoints_max,
            well_known_endpoints: well_known,
            pending_replies: pending,
            pending_replies_max: self.config.pending_replies_max,
            peers: peer_metrics.len(),
            peers_max: self.config.peers_max,
            incoming_connections: lock(&self.incoming).connections.len(),
            incoming_connections_max: self.config.incoming_connections_max,
            failed_endpoints: self.failure_monitor.failed_endpoints_len(),
            failed_endpoints_max: self.config.failed_endpoints_max,
            connections_accepted: counter(&c.connections_accepted),
            connections_refused: counter(&c.connections_refused),
            local_deliveries: counter(&c.local_deliveries),
            remote_deliveries: c.remote_deliveries.get(),
            endpoint_not_found_sent: counter(&c.endpoint_not_found_sent),
            endpoint_not_found_received: counter(&c.endpoint_not_found_received),
            unknown_tokens_dropped: counter(&c.unknown_tokens_dropped),
            replies_dropped: counter(&c.replies_dropped),
            outbox_overflows: counter(&c.outbox_overflows),
            peer_metrics,
        }
    }

    pub(crate) fn peers_snapshot(&self) -> Vec<Arc<Peer>> {
        lock(&self.peers)
            .values()
            .map(|entry| Arc::clone(&entry.peer))
            .collect()
    }
}
