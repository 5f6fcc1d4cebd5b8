//! [`NetTransport`] and [`NetTransportBuilder`]: the façade users hold.
//!
//! The top of the transport (floor 4, with typed RPC): it builds the dispatch `Core` and its
//! environment, starts the accept loop of a listening transport, and hands out the typed
//! endpoints ([`RequestStream`], [`NetNotifiedQueue`]) and clients ([`RequestClient`]) of the RPC
//! floor. No other module of the transport names it.

use std::sync::Arc;

use moonpool_core::{
    Endpoint, JsonCodec, MessageCodec, NetworkAddress, NetworkProvider, Providers, TcpListener,
    UID, WellKnownToken,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::TransportConfig;
use crate::dispatch::{Core, TransportHandle, run_accept_loop, unaddressed};
use crate::env::{Env, ProvidersEnv};
use crate::error::TransportError;
use crate::failure_monitor::FailureMonitor;
use crate::metrics::TransportMetrics;
use crate::peer::Peer;
use crate::queue::{MessageReceiver, NetNotifiedQueue};
use crate::rpc::{
    CallShared, ErasedCodec, ReplyFuture, RequestClient, RequestReceiver, RequestStream,
};
use crate::wire::FrameBuilder;

/// A transport: peers, endpoints, and RPC on top. Cheap to clone.
///
/// Build one with [`NetTransportBuilder`]. The transport shuts down (its tasks stop, pending
/// replies fail with [`ReplyError::TransportClosed`](crate::ReplyError::TransportClosed)) when the
/// last handle to it is dropped: this value, its clones, and the [`RequestStream`]s,
/// [`NetNotifiedQueue`]s, [`RequestClient`]s and [`ReplyFuture`]s made from it; or at once with
/// [`shutdown`](Self::shutdown).
pub struct NetTransport<C: MessageCodec = JsonCodec> {
    handle: TransportHandle,
    codec: C,
    /// The codec again, shared and type-erased, and the peers reached, for the typed
    /// interfaces' calls.
    erased: ErasedCodec,
}

impl<C: MessageCodec> Clone for NetTransport<C> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
            codec: self.codec.clone(),
            erased: Arc::clone(&self.erased),
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
    fn core(&self) -> &Arc<Core> {
        self.handle.core()
    }

    /// The handle shared with everything made from this transport (for the interface floor).
    pub(crate) fn handle(&self) -> &TransportHandle {
        &self.handle
    }

    /// The codec, shared and type-erased (for the interface floor's calls).
    pub(crate) fn erased_codec(&self) -> &ErasedCodec {
        &self.erased
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
        if let Err(error) = self.core().register(token, Arc::new(receiver)) {
            queue.close_unregistered();
            return Err(error);
        }
        Ok(RequestStream::new(
            queue,
            self.handle.clone(),
            self.codec.clone(),
        ))
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
        if let Err(error) = self.core().register(token, Arc::new(receiver)) {
            queue.close_unregistered();
            return Err(error);
        }
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
        RequestClient::new(self.handle.clone(), self.codec.clone(), endpoint)
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
        let mut builder = FrameBuilder::with_capacity(endpoint.token, 64);
        crate::json::encode_into(&self.codec, message, builder.buffer())?;
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
        let env = Arc::new(ProvidersEnv {
            providers: self.providers.clone(),
        });
        let core = Core::new(
            self.config,
            Arc::clone(&env) as Arc<dyn Env>,
            env,
            local_address,
            listening,
        );
        core.register_builtins()?;
        let handle = TransportHandle::new(core);
        Ok((
            NetTransport {
                handle,
                erased: Arc::new(CallShared::new(self.codec.clone())),
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
