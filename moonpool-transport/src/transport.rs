//! [`NetTransport`] and [`NetTransportBuilder`]: peers, endpoints, dispatch and local delivery.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use moonpool_core::{
    CodecError, Endpoint, JoinHandle, JsonCodec, MessageCodec, NetworkAddress, NetworkProvider,
    Providers, TcpListener, UID, WellKnownToken,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::config::TransportConfig;
use crate::connection::{ConnectionShared, run_accept_loop};
use crate::endpoint_map::EndpointMap;
use crate::env::{Env, ProvidersEnv};
use crate::error::{ReplyError, TransportError};
use crate::failure_monitor::FailureMonitor;
use crate::metrics::TransportMetrics;
use crate::peer::{Fate, Flush, PacketId, Peer};
use crate::protocol;
use crate::queue::{MessageReceiver, NetNotifiedQueue};
use crate::rpc::{ReplyFuture, RequestClient, RequestReceiver, RequestStream};
use crate::wire::{FrameBuilder, HEADER_SIZE};

/// Where a delivered packet came from: replies to requests go back the same way.
#[derive(Clone)]
pub(crate) enum Origin {
    /// From this transport (local delivery).
    Local,
    /// From a connection.
    Connection(Arc<ConnectionShared>),
}

/// How a reply reaches its caller.
pub(crate) enum ReplyRoute {
    /// The caller is this transport.
    Local(Weak<Core>),
    /// Back on the connection the request arrived on. Held strongly (it is small once closed:
    /// a closed connection drops the reply and counts it).
    Connection(Arc<ConnectionShared>),
}

impl ReplyRoute {
    /// Sends a reply payload to `token`; false if it could not be handed over.
    pub(crate) fn send(&self, token: UID, payload: Vec<u8>) -> bool {
        match self {
            ReplyRoute::Local(core) => core
                .upgrade()
                .is_some_and(|core| core.deliver(token, &payload, &Origin::Local)),
            ReplyRoute::Connection(conn) => conn.send(token, &payload),
        }
    }

    /// Sends a reply whose payload is `prefix` followed by what `body` writes (run straight
    /// into the connection's buffer when it can be). A body that fails to encode is answered
    /// with a serialization error reply.
    pub(crate) fn send_encoded(
        &self,
        token: UID,
        prefix: &[u8],
        body: &mut dyn FnMut(&mut Vec<u8>) -> Result<(), CodecError>,
    ) -> bool {
        match self {
            ReplyRoute::Local(_) => {
                let mut payload = prefix.to_vec();
                match body(&mut payload) {
                    Ok(()) => self.send(token, payload),
                    Err(error) => self.send(
                        token,
                        protocol::serialization_error_reply(error.to_string()),
                    ),
                }
            }
            ReplyRoute::Connection(conn) => conn.send_encoded(token, prefix, body),
        }
    }
}

impl ReplyRoute {
    /// Ends the count taken by [`Origin::reply_route_from`] with `counted`.
    pub(crate) fn settle(&self) {
        if let ReplyRoute::Connection(conn) = self {
            conn.promise_settled();
        }
    }
}

impl Origin {
    pub(crate) fn reply_route(&self, core: &Core) -> ReplyRoute {
        self.reply_route_from(&core.weak_self, false)
    }

    /// The route back for a reply; when `counted`, the connection counts the promise as
    /// outstanding until the route is [settled](ReplyRoute::settle).
    pub(crate) fn reply_route_from(&self, core: &Weak<Core>, counted: bool) -> ReplyRoute {
        match self {
            Origin::Local => ReplyRoute::Local(core.clone()),
            Origin::Connection(conn) => {
                if counted {
                    conn.promise_opened();
                }
                ReplyRoute::Connection(Arc::clone(conn))
            }
        }
    }
}

/// Something registered at a token.
pub(crate) trait PacketReceiver: Send + Sync {
    /// Takes one packet.
    fn receive(&self, token: UID, payload: &[u8], origin: &Origin);
    /// The endpoint is being unregistered or the transport is shutting down.
    fn close(&self) {}
}

/// Transport-wide counters.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) local_deliveries: AtomicU64,
    pub(crate) remote_deliveries: AtomicU64,
    pub(crate) endpoint_not_found_sent: AtomicU64,
    pub(crate) endpoint_not_found_received: AtomicU64,
    pub(crate) unknown_tokens_dropped: AtomicU64,
    pub(crate) replies_dropped: AtomicU64,
    pub(crate) outbox_overflows: AtomicU64,
}

/// How a request's reply is awaited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestMode {
    /// Sent unreliably; a connection failure resolves it.
    AtMostOnce,
    /// Sent reliably; resent after reconnections until answered or abandoned.
    AtLeastOnce,
}

struct PendingReply {
    sender: oneshot::Sender<Result<Vec<u8>, ReplyError>>,
    destination: Endpoint,
    mode: RequestMode,
    /// What became of the request's packet, when somebody looks (at-most-once requests, and
    /// callers bounded by the failure monitor).
    fate: Option<Fate>,
    packet: Option<(Arc<Peer>, PacketId)>,
}

impl PendingReply {
    fn complete(self, result: Result<Vec<u8>, ReplyError>) {
        if let Some((peer, id)) = &self.packet {
            peer.cancel(*id);
        }
        let _ = self.sender.send(result);
    }
}

struct Registry {
    endpoints: EndpointMap<Arc<dyn PacketReceiver>>,
    pending: BTreeMap<UID, PendingReply>,
}

struct PeerEntry {
    peer: Arc<Peer>,
    keeper: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Incoming {
    connections: BTreeMap<u64, Option<JoinHandle<()>>>,
    next_id: u64,
}

/// A request registered and queued; dropping it abandons the request (its reply endpoint is
/// removed and its reliable packet released).
pub(crate) struct PendingRequest {
    pub(crate) token: UID,
    /// Set once the reply (or error) was received: the entry is already gone.
    pub(crate) settled: bool,
    pub(crate) receiver: oneshot::Receiver<Result<Vec<u8>, ReplyError>>,
    pub(crate) fate: Option<Fate>,
    pub(crate) destination: Endpoint,
    core: Arc<Core>,
}

impl Drop for PendingRequest {
    fn drop(&mut self) {
        if !self.settled {
            self.core.abandon(self.token);
        }
    }
}

/// The shared state of a transport; tasks hold it, users hold a [`NetTransport`].
pub(crate) struct Core {
    pub(crate) config: TransportConfig,
    local_address: Option<NetworkAddress>,
    listening: bool,
    pub(crate) instance: UID,
    pub(crate) env: Arc<dyn Env>,
    pub(crate) failure_monitor: FailureMonitor,
    pub(crate) counters: Arc<Counters>,
    registry: Mutex<Registry>,
    peers: Mutex<BTreeMap<NetworkAddress, PeerEntry>>,
    incoming: Mutex<Incoming>,
    background: Mutex<Vec<JoinHandle<()>>>,
    shut_down: AtomicBool,
    /// Tokens handed out by this transport: a random high half per instance and a counter, so
    /// a token is never reused while the instance lives (a late reply can never reach a newer
    /// request) and no randomness is drawn per request.
    token_base: u64,
    token_counter: AtomicU64,
    weak_self: Weak<Core>,
}

/// Payload bytes reserved up front for a request (reply token and a small body): most requests
/// are encoded without growing their buffer.
const REQUEST_CAPACITY: usize = 112;

/// The address of endpoints on a transport built without one (`0.0.0.0:0`).
fn unaddressed() -> NetworkAddress {
    NetworkAddress::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Core {
    fn new(
        config: TransportConfig,
        env: Arc<dyn Env>,
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
            failure_monitor,
            counters: Arc::new(Counters::default()),
            registry: Mutex::new(Registry {
                endpoints,
                pending: BTreeMap::new(),
            }),
            peers: Mutex::new(BTreeMap::new()),
            incoming: Mutex::new(Incoming::default()),
            background: Mutex::new(Vec::new()),
            shut_down: AtomicBool::new(false),
            token_base,
            token_counter: AtomicU64::new(1),
            weak_self: weak_self.clone(),
        })
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        lock(&self.registry)
    }

    /// Registers the built-in Ping and EndpointNotFound receivers.
    fn register_builtins(&self) -> Result<(), TransportError> {
        let mut registry = self.registry();
        registry.endpoints.insert(
            WellKnownToken::Ping.uid(),
            Arc::new(PingReceiver {
                core: self.weak_self.clone(),
            }),
        )?;
        registry.endpoints.insert(
            WellKnownToken::EndpointNotFound.uid(),
            Arc::new(EndpointNotFoundReceiver {
                core: self.weak_self.clone(),
            }),
        )?;
        Ok(())
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    /// The address announced in Hellos (only when listening).
    pub(crate) fn listen_address(&self) -> Option<NetworkAddress> {
        self.local_address.filter(|_| self.listening)
    }

    fn is_local(&self, address: &NetworkAddress) -> bool {
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
        self.registry().endpoints.insert(token, receiver)
    }

    /// Removes the receiver at `token` and closes it.
    pub(crate) fn unregister(&self, token: UID) {
        let removed = self.registry().endpoints.remove(&token);
        if let Some(receiver) = removed {
            receiver.close();
        }
    }

    /// The next token of this instance (never handed out before).
    fn next_token(&self) -> UID {
        UID::new(
            self.token_base,
            self.token_counter.fetch_add(1, Ordering::Relaxed),
        )
    }

    /// A token free in both the endpoint map and the pending replies.
    pub(crate) fn fresh_token(&self) -> UID {
        loop {
            let token = self.next_token();
            let registry = self.registry();
            if !registry.endpoints.contains(&token) && !registry.pending.contains_key(&token) {
                return token;
            }
        }
    }

    /// Hands `payload` to whatever is registered at `token` (a pending reply or an endpoint).
    /// False when nothing is.
    pub(crate) fn deliver(&self, token: UID, payload: &[u8], origin: &Origin) -> bool {
        enum Target {
            Reply(PendingReply),
            Receiver(Arc<dyn PacketReceiver>),
        }
        let target = {
            let mut registry = self.registry();
            if let Some(pending) = registry.pending.remove(&token) {
                Some(Target::Reply(pending))
            } else {
                registry
                    .endpoints
                    .get(&token)
                    .cloned()
                    .map(Target::Receiver)
            }
        };
        match target {
            Some(Target::Reply(pending)) => {
                pending.complete(Ok(payload.to_vec()));
                true
            }
            Some(Target::Receiver(receiver)) => {
                receiver.receive(token, payload, origin);
                true
            }
            None => false,
        }
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
        let keeper = self.env.spawn_peer_keeper(core, Arc::clone(&peer));
        peers.insert(
            address,
            PeerEntry {
                peer: Arc::clone(&peer),
                keeper: Some(keeper),
            },
        );
        Ok(peer)
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
            peer.enqueue_unreliable(frame, None, Flush::Batched)
        }
    }

    /// Registers a reply endpoint and sends a request to `destination`.
    pub(crate) fn start_request(
        &self,
        destination: Endpoint,
        body: &mut dyn FnMut(&mut Vec<u8>) -> Result<(), CodecError>,
        mode: RequestMode,
        track_fate: bool,
        peer_cache: &OnceLock<Arc<Peer>>,
    ) -> Result<PendingRequest, ReplyError> {
        let Some(core) = self.weak_self.upgrade() else {
            return Err(ReplyError::TransportClosed);
        };
        if self.is_shut_down() {
            return Err(ReplyError::TransportClosed);
        }
        if self.failure_monitor.is_endpoint_failed(&destination) {
            return Err(ReplyError::EndpointNotFound {
                endpoint: destination,
            });
        }
        let mut token = self.next_token();
        // The body is encoded straight into the packet, after the reply token.
        let mut builder = FrameBuilder::with_capacity(destination.token, REQUEST_CAPACITY);
        protocol::write_uid(builder.buffer(), token);
        body(builder.buffer()).map_err(|error| ReplyError::Serialization {
            message: error.to_string(),
        })?;
        let mut frame = builder
            .finish(self.config.max_packet_size)
            .map_err(|error| ReplyError::from(TransportError::from(error)))?;
        let (sender, receiver) = oneshot::channel();
        let fate = (track_fate || mode == RequestMode::AtMostOnce).then(Fate::default);
        let local = self.is_local(&destination.address);
        let peer = if local {
            None
        } else {
            Some(match peer_cache.get() {
                Some(peer) => peer,
                None => {
                    let peer = self.peer_for(destination.address)?;
                    peer_cache.get_or_init(|| peer)
                }
            })
        };
        // The reliable packet's id is reserved now, so the pending entry records it from the
        // start and whoever resolves the request releases the packet.
        let packet = match (peer, mode) {
            (Some(peer), RequestMode::AtLeastOnce) => Some((Arc::clone(peer), peer.reserve_id())),
            _ => None,
        };
        let reserved = packet.as_ref().map(|(_, id)| *id);
        let flush = {
            let mut registry = self.registry();
            if registry.pending.len() >= self.config.pending_replies_max {
                return Err(ReplyError::BoundExceeded {
                    bound: "pending_replies_max",
                    limit: self.config.pending_replies_max,
                });
            }
            if registry.endpoints.contains(&token) {
                // An endpoint was registered by hand at this very token: take another one.
                token = self.next_token();
                frame = {
                    let body = &frame[HEADER_SIZE + protocol::UID_SIZE..];
                    let mut builder = FrameBuilder::with_capacity(
                        destination.token,
                        protocol::UID_SIZE + body.len(),
                    );
                    protocol::write_uid(builder.buffer(), token);
                    builder.extend(body);
                    builder
                        .finish(self.config.max_packet_size)
                        .map_err(|error| ReplyError::from(TransportError::from(error)))?
                };
            }
            registry.pending.insert(
                token,
                PendingReply {
                    sender,
                    destination,
                    mode,
                    fate: fate.clone(),
                    packet,
                },
            );
            // A caller with nothing else in flight gets its request written at once; callers
            // with many requests in flight get them batched by the connection's task.
            if registry.pending.len() == 1 {
                Flush::Now
            } else {
                Flush::Batched
            }
        };
        let pending = PendingRequest {
            token,
            settled: false,
            receiver,
            fate: fate.clone(),
            destination,
            core,
        };
        let Some(peer) = peer else {
            self.counters
                .local_deliveries
                .fetch_add(1, Ordering::Relaxed);
            if !self.deliver(destination.token, &frame[HEADER_SIZE..], &Origin::Local) {
                self.on_endpoint_not_found(destination, false);
            }
            return Ok(pending);
        };
        // On error `pending` is dropped, which removes the entry again.
        match reserved {
            None => peer.enqueue_unreliable(frame, fate, flush)?,
            Some(id) => peer.enqueue_reliable_as(id, frame, true, fate, flush)?,
        }
        Ok(pending)
    }

    /// Removes a pending reply nobody waits for, releasing its packet.
    fn abandon(&self, token: UID) {
        let removed = self.registry().pending.remove(&token);
        if let Some(pending) = removed {
            if let Some((peer, id)) = pending.packet {
                peer.cancel(id);
            }
        }
    }

    /// Resolves pending replies matching `select` with the error it returns.
    fn resolve_pending(&self, select: impl Fn(&PendingReply) -> Option<ReplyError>) -> usize {
        let resolved: Vec<(PendingReply, ReplyError)> = {
            let mut registry = self.registry();
            let matches: Vec<(UID, ReplyError)> = registry
                .pending
                .iter()
                .filter_map(|(token, pending)| select(pending).map(|error| (*token, error)))
                .collect();
            matches
                .into_iter()
                .filter_map(|(token, error)| {
                    registry
                        .pending
                        .remove(&token)
                        .map(|pending| (pending, error))
                })
                .collect()
        };
        let count = resolved.len();
        for (pending, error) in resolved {
            pending.complete(Err(error));
        }
        count
    }

    /// A connection (or connection attempt) to `address` failed at `epoch` (0: none was
    /// established): resolves the at-most-once requests it carried or dropped.
    pub(crate) fn resolve_try_requests(&self, address: NetworkAddress, epoch: u64) {
        self.resolve_pending(|pending| {
            if pending.mode != RequestMode::AtMostOnce || pending.destination.address != address {
                return None;
            }
            match pending.fate.as_ref().map_or(Fate::QUEUED, Fate::get) {
                Fate::DROPPED => Some(ReplyError::ConnectionFailed { address }),
                written if epoch != 0 && written == epoch => {
                    Some(ReplyError::MaybeDelivered { address })
                }
                _ => None,
            }
        });
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

    /// Reserves a slot for an accepted connection; `None` when at the bound.
    pub(crate) fn admit_connection(&self) -> Option<u64> {
        let mut incoming = lock(&self.incoming);
        if self.is_shut_down() || incoming.connections.len() >= self.config.incoming_connections_max
        {
            self.counters
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let id = incoming.next_id;
        incoming.next_id += 1;
        incoming.connections.insert(id, None);
        self.counters
            .connections_accepted
            .fetch_add(1, Ordering::Relaxed);
        Some(id)
    }

    /// Records the task of an admitted connection.
    pub(crate) fn connection_started(&self, id: u64, handle: JoinHandle<()>) {
        let mut incoming = lock(&self.incoming);
        match incoming.connections.get_mut(&id) {
            Some(slot) => *slot = Some(handle),
            // It already finished.
            None => drop(handle),
        }
    }

    /// An accepted connection ended.
    pub(crate) fn connection_finished(&self, id: u64) {
        let handle = lock(&self.incoming).connections.remove(&id);
        drop(handle);
    }

    fn add_background(&self, handle: JoinHandle<()>) {
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
            let pending = std::mem::take(&mut registry.pending);
            (receivers, pending)
        };
        for receiver in receivers {
            receiver.close();
        }
        for pending in pending.into_values() {
            pending.complete(Err(ReplyError::TransportClosed));
        }
        self.failure_monitor.close();
        drop(peers);
        drop(incoming);
    }

    fn metrics(&self) -> TransportMetrics {
        let (endpoints, well_known, pending) = {
            let registry = self.registry();
            (
                registry.endpoints.dynamic_len(),
                registry.endpoints.well_known_len(),
                registry.pending.len(),
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
            remote_deliveries: counter(&c.remote_deliveries),
            endpoint_not_found_sent: counter(&c.endpoint_not_found_sent),
            endpoint_not_found_received: counter(&c.endpoint_not_found_received),
            unknown_tokens_dropped: counter(&c.unknown_tokens_dropped),
            replies_dropped: counter(&c.replies_dropped),
            outbox_overflows: counter(&c.outbox_overflows),
            peer_metrics,
        }
    }

    fn peers_snapshot(&self) -> Vec<Arc<Peer>> {
        lock(&self.peers)
            .values()
            .map(|entry| Arc::clone(&entry.peer))
            .collect()
    }
}

/// The built-in Ping endpoint: echoes the request body.
struct PingReceiver {
    core: Weak<Core>,
}

impl PacketReceiver for PingReceiver {
    fn receive(&self, _token: UID, payload: &[u8], origin: &Origin) {
        let Ok((reply_token, body)) = protocol::split_request(payload) else {
            return;
        };
        if !reply_token.is_valid() {
            return;
        }
        let Some(core) = self.core.upgrade() else {
            return;
        };
        let mut reply = Vec::with_capacity(1 + body.len());
        protocol::reply_ok_prefix(&mut reply);
        reply.extend_from_slice(body);
        origin.reply_route(&core).send(reply_token, reply);
    }
}

/// The built-in EndpointNotFound endpoint (for notices delivered locally or on an accepted
/// connection; the ones arriving on outbound connections are handled by the connection).
struct EndpointNotFoundReceiver {
    core: Weak<Core>,
}

impl PacketReceiver for EndpointNotFoundReceiver {
    fn receive(&self, _token: UID, payload: &[u8], origin: &Origin) {
        let Some(core) = self.core.upgrade() else {
            return;
        };
        let Ok(missing) = protocol::read_uid(payload, "EndpointNotFound notice") else {
            return;
        };
        match origin {
            Origin::Local => {
                if let Some(local) = core.local_address {
                    core.on_endpoint_not_found(Endpoint::new(local, missing), false);
                }
            }
            Origin::Connection(conn) => {
                if let Some(remote) = conn.remote() {
                    core.on_endpoint_not_found(Endpoint::new(remote, missing), true);
                }
            }
        }
    }
}

/// Shuts the transport down when the last user-facing handle goes.
struct Lifetime {
    core: Arc<Core>,
}

impl Drop for Lifetime {
    fn drop(&mut self) {
        self.core.shutdown();
    }
}

/// What user-facing types hold: the core, and a share of the transport's lifetime.
#[derive(Clone)]
pub(crate) struct TransportHandle {
    pub(crate) core: Arc<Core>,
    _lifetime: Arc<Lifetime>,
}

/// A transport: peers, endpoints, and RPC on top. Cheap to clone.
///
/// Build one with [`NetTransportBuilder`]. The transport shuts down (its tasks stop, pending
/// replies fail with [`ReplyError::TransportClosed`]) when the last handle to it is dropped:
/// this value, its clones, and the [`RequestStream`]s, [`NetNotifiedQueue`]s, [`RequestClient`]s
/// and [`ReplyFuture`]s made from it; or at once with [`shutdown`](Self::shutdown).
pub struct NetTransport<C: MessageCodec = JsonCodec> {
    handle: TransportHandle,
    codec: C,
}

impl<C: MessageCodec> Clone for NetTransport<C> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
            codec: self.codec.clone(),
        }
    }
}

impl<C: MessageCodec> std::fmt::Debug for NetTransport<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetTransport")
            .field("local_address", &self.local_address())
            .field("listening", &self.is_listening())
            .field("instance", &self.instance_id())
            .field("metrics", &self.metrics())
            .finish()
    }
}

impl<C: MessageCodec> NetTransport<C> {
    pub(crate) fn handle(&self) -> &TransportHandle {
        &self.handle
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.handle.core
    }

    /// This transport's address: the bound address when listening, the configured one otherwise.
    /// Messages to it are delivered locally, without the network.
    pub fn local_address(&self) -> Option<NetworkAddress> {
        self.core().local_address
    }

    /// True when built with [`NetTransportBuilder::build_listening`].
    pub fn is_listening(&self) -> bool {
        self.core().listening
    }

    /// A random id drawn at build time; peers see a new one when this process restarts.
    pub fn instance_id(&self) -> UID {
        self.core().instance
    }

    /// The codec used for every typed message.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// The configuration.
    pub fn config(&self) -> &TransportConfig {
        &self.core().config
    }

    /// The failure monitor of this transport.
    pub fn failure_monitor(&self) -> &FailureMonitor {
        &self.core().failure_monitor
    }

    /// Registers a request stream at a fresh random token.
    pub fn register_stream<Req, Resp>(&self) -> Result<RequestStream<Req, Resp, C>, TransportError>
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
    {
        self.register_stream_at(self.core().fresh_token())
    }

    /// Registers a request stream at `token`: a well-known token
    /// (`UID::well_known(i)` with `i` in `3..64`, O(1) dispatch) or a fixed dynamic token (for
    /// example `UID::new(interface_id, 0).adjusted(method_index)`). Register fixed tokens before
    /// clients can call them: a request that arrives first is answered with EndpointNotFound.
    pub fn register_stream_at<Req, Resp>(
        &self,
        token: UID,
    ) -> Result<RequestStream<Req, Resp, C>, TransportError>
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
    {
        let endpoint = self.endpoint_for(token)?;
        let (receiver, queue) =
            RequestReceiver::new(self.handle.clone(), self.codec.clone(), endpoint);
        self.core().register(token, Arc::new(receiver))?;
        Ok(RequestStream::new(queue, self.clone()))
    }

    /// Registers a typed message queue at a fresh random token.
    pub fn register_queue<T>(&self) -> Result<NetNotifiedQueue<T>, TransportError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.register_queue_at(self.core().fresh_token())
    }

    /// Registers a typed message queue at `token` (see [`register_stream_at`](Self::register_stream_at)).
    pub fn register_queue_at<T>(&self, token: UID) -> Result<NetNotifiedQueue<T>, TransportError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let endpoint = self.endpoint_for(token)?;
        let (receiver, queue) = MessageReceiver::new(
            self.handle.clone(),
            self.codec.clone(),
            endpoint,
            self.core().config.receive_queue_max,
        );
        self.core().register(token, Arc::new(receiver))?;
        Ok(queue)
    }

    fn endpoint_for(&self, token: UID) -> Result<Endpoint, TransportError> {
        // A transport without an address still registers endpoints (local use, replies); they
        // are addressed by the unspecified address.
        let address = self.local_address().unwrap_or_else(unaddressed);
        if self.core().is_shut_down() {
            return Err(TransportError::Shutdown);
        }
        Ok(Endpoint::new(address, token))
    }

    /// A typed client for the request stream at `endpoint`.
    pub fn client<Req, Resp>(&self, endpoint: Endpoint) -> RequestClient<Req, Resp, C>
    where
        Req: Serialize,
        Resp: DeserializeOwned + Send + 'static,
    {
        RequestClient::new(self.clone(), endpoint)
    }

    /// Sends `message` to the queue at `endpoint`, reliably: it is resent after reconnections
    /// until the remote transport acknowledges it, so it may arrive more than once.
    pub fn send_reliable<T: Serialize>(
        &self,
        endpoint: &Endpoint,
        message: &T,
    ) -> Result<(), TransportError> {
        let frame = self.encode_message(endpoint, message)?;
        self.core().send_frame(endpoint, frame, true)
    }

    /// Sends `message` to the queue at `endpoint`, unreliably: at most once, lost if the
    /// connection fails before it is written.
    pub fn send_unreliable<T: Serialize>(
        &self,
        endpoint: &Endpoint,
        message: &T,
    ) -> Result<(), TransportError> {
        let frame = self.encode_message(endpoint, message)?;
        self.core().send_frame(endpoint, frame, false)
    }

    fn encode_message<T: Serialize>(
        &self,
        endpoint: &Endpoint,
        message: &T,
    ) -> Result<Vec<u8>, TransportError> {
        let body = self.codec.encode(message)?;
        let mut builder = FrameBuilder::with_capacity(endpoint.token, body.len());
        builder.extend(&body);
        Ok(builder.finish(self.core().config.max_packet_size)?)
    }

    /// Pings the transport at `address` through its well-known Ping endpoint (at most once).
    pub fn ping(&self, address: NetworkAddress) -> ReplyFuture<u64> {
        let nonce = (self.core().env.random_ratio() * 1e18) as u64;
        self.client::<u64, u64>(Endpoint::well_known(address, WellKnownToken::Ping))
            .try_get_reply(&nonce)
    }

    /// The peer for `address` (created on first use; its keeper connects when it has something
    /// to send).
    pub fn peer(&self, address: NetworkAddress) -> Result<Arc<Peer>, TransportError> {
        self.core().peer_for(address)
    }

    /// Sizes, bounds and counters of the transport and every peer.
    pub fn metrics(&self) -> TransportMetrics {
        self.core().metrics()
    }

    /// Checks that every map and queue is within its bound and that every peer's queue counters
    /// match its queues. Meant for tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.metrics().check_bounds()?;
        for peer in self.core().peers_snapshot() {
            peer.check_invariants()?;
        }
        Ok(())
    }

    /// Stops the transport now (see the type docs).
    pub fn shutdown(&self) {
        self.core().shutdown();
    }
}

/// Builds a [`NetTransport`] over a [`Providers`] bundle.
///
/// - [`build`](Self::build): a client-only transport. It connects to others and gets replies on
///   those connections, but accepts no connections, so nobody can send it unsolicited messages.
/// - [`build_listening`](Self::build_listening): also binds its
///   [`local_address`](Self::local_address) and accepts connections.
pub struct NetTransportBuilder<P: Providers, C: MessageCodec = JsonCodec> {
    providers: P,
    codec: C,
    local_address: Option<NetworkAddress>,
    config: TransportConfig,
}

impl<P: Providers> NetTransportBuilder<P, JsonCodec> {
    /// A builder with the JSON codec and the default configuration.
    pub fn new(providers: P) -> Self {
        Self {
            providers,
            codec: JsonCodec,
            local_address: None,
            config: TransportConfig::default(),
        }
    }
}

impl<P: Providers, C: MessageCodec> NetTransportBuilder<P, C> {
    /// The address to listen on (port 0 picks a free port), or for a client-only transport the
    /// address it answers to locally.
    pub fn local_address(mut self, address: NetworkAddress) -> Self {
        self.local_address = Some(address);
        self
    }

    /// Replaces the configuration.
    pub fn config(mut self, config: TransportConfig) -> Self {
        self.config = config;
        self
    }

    /// Replaces the codec.
    pub fn codec<C2: MessageCodec>(self, codec: C2) -> NetTransportBuilder<P, C2> {
        NetTransportBuilder {
            providers: self.providers,
            codec,
            local_address: self.local_address,
            config: self.config,
        }
    }

    fn finish(
        self,
        local_address: Option<NetworkAddress>,
        listening: bool,
    ) -> Result<(NetTransport<C>, P), TransportError> {
        let env: Arc<dyn Env> = Arc::new(ProvidersEnv {
            providers: self.providers.clone(),
        });
        let core = Core::new(self.config, env, local_address, listening);
        core.register_builtins()?;
        let handle = TransportHandle {
            core: Arc::clone(&core),
            _lifetime: Arc::new(Lifetime { core }),
        };
        Ok((
            NetTransport {
                handle,
                codec: self.codec,
            },
            self.providers,
        ))
    }

    /// A client-only transport.
    pub fn build(self) -> Result<NetTransport<C>, TransportError> {
        self.config.validate()?;
        let local = self.local_address;
        self.finish(local, false).map(|(transport, _)| transport)
    }

    /// A transport that listens on its local address and accepts connections.
    pub async fn build_listening(self) -> Result<NetTransport<C>, TransportError> {
        self.config.validate()?;
        let requested = self.local_address.ok_or(TransportError::NoListenAddress)?;
        let listener = self
            .providers
            .network()
            .bind(&requested.socket_addr().to_string())
            .await
            .map_err(TransportError::Bind)?;
        let bound = listener.local_addr().map_err(TransportError::Bind)?;
        let local = NetworkAddress::from(bound).with_flags(requested.flags);
        let (transport, providers) = self.finish(Some(local), true)?;
        let core = Arc::clone(transport.core());
        let name = format!("moonpool-transport/listener/{local}");
        let task = moonpool_core::TaskProvider::spawn(
            providers.task(),
            &name,
            run_accept_loop(providers.clone(), Arc::clone(&core), listener),
        );
        core.add_background(task);
        Ok(transport)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::env::tests::ManualEnv;

    #[test]
    fn test_reserved_well_known_tokens_are_refused() {
        let core = Core::new(TransportConfig::default(), ManualEnv::new(), None, false);
        core.register_builtins().unwrap();
        let receiver: Arc<dyn PacketReceiver> = Arc::new(PingReceiver { core: Weak::new() });
        for index in 0..3 {
            assert!(matches!(
                core.register(UID::well_known(index), Arc::clone(&receiver)),
                Err(TransportError::InvalidWellKnownToken { first: 3, .. })
            ));
        }
        core.register(UID::well_known(3), Arc::clone(&receiver))
            .unwrap();
        assert!(matches!(
            core.register(UID::well_known(3), receiver),
            Err(TransportError::TokenInUse { .. })
        ));
    }
}
