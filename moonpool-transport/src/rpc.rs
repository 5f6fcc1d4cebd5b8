//! Typed RPC: [`RequestStream`] and [`ReplyPromise`] on the server side, [`RequestClient`] and
//! [`ReplyFuture`] on the calling side.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use moonpool_core::{Endpoint, JsonCodec, MessageCodec, UID};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ReplyError, TransportError};
use crate::peer::{Fate, Peer};
use crate::protocol::{self, WireReplyError};
use crate::queue::{NetNotifiedQueue, QueueShared, QueueStats};
use crate::transport::{
    NetTransport, Origin, PacketReceiver, PendingRequest, ReplyRoute, RequestMode, TransportHandle,
};

/// The server's half of one request: send exactly one reply with [`send`](Self::send).
///
/// Dropping it without sending answers the caller with [`ReplyError::BrokenPromise`], so no
/// caller waits forever on a handler that gave up. The reply travels back on the connection the
/// request arrived on (or directly, for a local caller), unreliably: if that connection is gone,
/// the caller sees the connection failure instead.
pub struct ReplyPromise<T, C: MessageCodec = JsonCodec> {
    token: UID,
    /// Taken when answered. On a connection it counts this promise as outstanding until then.
    route: Option<ReplyRoute>,
    codec: C,
    endpoint: Endpoint,
    _types: PhantomData<fn(T)>,
}

impl<T, C: MessageCodec> std::fmt::Debug for ReplyPromise<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyPromise")
            .field("reply_token", &self.token)
            .field("endpoint", &self.endpoint)
            .field("pending", &self.route.is_some())
            .finish()
    }
}

impl<T: Serialize, C: MessageCodec> ReplyPromise<T, C> {
    fn from_parts(token: UID, route: ReplyRoute, codec: C, endpoint: Endpoint) -> Self {
        Self {
            token,
            route: token.is_valid().then_some(route),
            codec,
            endpoint,
            _types: PhantomData,
        }
    }

    /// False for a request sent with [`RequestClient::send`] (nobody waits for the reply).
    pub fn wants_reply(&self) -> bool {
        self.route.is_some()
    }

    /// The endpoint the request was addressed to.
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// Sends the reply. Returns false when it could not be handed to the connection (gone) or to
    /// the local caller (no longer waiting); the caller then sees a connection failure or has
    /// already given up.
    pub fn send(mut self, value: T) -> bool {
        let Some(route) = self.route.take() else {
            return false;
        };
        let codec = &self.codec;
        let sent = route.send_encoded(
            self.token,
            &protocol::REPLY_OK_PREFIX,
            &mut |out: &mut Vec<u8>| codec.encode_into(&value, out),
        );
        route.settle();
        sent
    }

    fn fail(mut self, error: WireReplyError) {
        if let Some(route) = self.route.take() {
            route.send(self.token, protocol::encode_reply_error(&error));
            route.settle();
        }
    }
}

impl<T, C: MessageCodec> Drop for ReplyPromise<T, C> {
    fn drop(&mut self) {
        if let Some(route) = self.route.take() {
            route.send(
                self.token,
                protocol::encode_reply_error(&WireReplyError::BrokenPromise),
            );
            route.settle();
        }
    }
}

type Request<Req, Resp, C> = (Req, ReplyPromise<Resp, C>);

/// Decodes request envelopes into `(request, promise)` pairs.
pub(crate) struct RequestReceiver<Req, Resp, C: MessageCodec> {
    shared: Arc<QueueShared<Request<Req, Resp, C>>>,
    codec: C,
    endpoint: Endpoint,
    core: std::sync::Weak<crate::transport::Core>,
}

impl<Req, Resp, C> RequestReceiver<Req, Resp, C>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    C: MessageCodec,
{
    pub(crate) fn new(
        transport: TransportHandle,
        codec: C,
        endpoint: Endpoint,
    ) -> (Self, NetNotifiedQueue<Request<Req, Resp, C>>) {
        let shared = QueueShared::new(transport.core.config.receive_queue_max);
        let receiver = Self {
            shared: Arc::clone(&shared),
            codec,
            endpoint,
            core: Arc::downgrade(&transport.core),
        };
        (receiver, NetNotifiedQueue::new(shared, endpoint, transport))
    }
}

impl<Req, Resp, C> PacketReceiver for RequestReceiver<Req, Resp, C>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    C: MessageCodec,
{
    fn receive(&self, _token: UID, payload: &[u8], origin: &Origin) {
        let Ok((reply_token, body)) = protocol::split_request(payload) else {
            self.shared.note_malformed();
            return;
        };
        let route = origin.reply_route_from(&self.core, reply_token.is_valid());
        let promise =
            ReplyPromise::from_parts(reply_token, route, self.codec.clone(), self.endpoint);
        match self.codec.decode::<Req>(body) {
            Ok(request) => {
                if let Err((_, promise)) = self.shared.push((request, promise)) {
                    promise.fail(WireReplyError::Overloaded);
                }
            }
            Err(error) => {
                self.shared.note_malformed();
                promise.fail(WireReplyError::Serialization(error.to_string()));
            }
        }
    }

    fn close(&self) {
        self.shared.close();
    }
}

/// The server side of an RPC endpoint: yields `(request, reply promise)` pairs.
///
/// Register with [`NetTransport::register_stream`] (random token) or
/// [`NetTransport::register_stream_at`] (fixed token). Bounded by `receive_queue_max`: a request
/// arriving at a full stream is answered [`ReplyError::Overloaded`]. Dropping the stream
/// unregisters its endpoint and answers the requests still queued with BrokenPromise.
///
/// Several streams are served by one task with `moonpool_core::select!` (see the `calculator`
/// example).
pub struct RequestStream<Req, Resp, C: MessageCodec = JsonCodec> {
    queue: NetNotifiedQueue<Request<Req, Resp, C>>,
    transport: NetTransport<C>,
}

impl<Req, Resp, C: MessageCodec> std::fmt::Debug for RequestStream<Req, Resp, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestStream")
            .field("endpoint", &self.queue.endpoint())
            .field("stats", &self.queue.stats())
            .finish()
    }
}

impl<Req, Resp, C> RequestStream<Req, Resp, C>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    C: MessageCodec,
{
    pub(crate) fn new(
        queue: NetNotifiedQueue<Request<Req, Resp, C>>,
        transport: NetTransport<C>,
    ) -> Self {
        Self { queue, transport }
    }

    /// The next request and the promise to answer it; `None` once the transport shut down.
    pub async fn recv(&self) -> Option<(Req, ReplyPromise<Resp, C>)> {
        self.queue.recv().await
    }

    /// The next request if one is queued.
    pub fn try_recv(&self) -> Option<(Req, ReplyPromise<Resp, C>)> {
        self.queue.try_recv()
    }

    /// The endpoint clients call.
    pub fn endpoint(&self) -> Endpoint {
        self.queue.endpoint()
    }

    /// Counters and size of the receive queue.
    pub fn stats(&self) -> QueueStats {
        self.queue.stats()
    }

    /// A client for this stream on the same transport (calls are delivered locally).
    pub fn client(&self) -> RequestClient<Req, Resp, C>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        RequestClient::new(self.transport.clone(), self.endpoint())
    }
}

/// The calling side of an RPC endpoint, with FoundationDB's four delivery modes.
///
/// | Mode | Sent | On connection failure | Handler sees the request |
/// |---|---|---|---|
/// | [`send`](Self::send) | unreliably, no reply | lost silently | at most once |
/// | [`try_get_reply`](Self::try_get_reply) | unreliably | `ConnectionFailed` (not sent) or `MaybeDelivered` (sent) | at most once |
/// | [`get_reply`](Self::get_reply) | reliably | resent after reconnecting, until answered | at least once |
/// | [`get_reply_unless_failed_for`](Self::get_reply_unless_failed_for) | reliably | resent, until the address has been failed for the duration | at least once |
///
/// Every mode also ends with `BrokenPromise` (handler dropped the promise), `EndpointNotFound`,
/// `Overloaded`, `Serialization` or `TransportClosed` when those happen.
pub struct RequestClient<Req, Resp, C: MessageCodec = JsonCodec> {
    transport: NetTransport<C>,
    endpoint: Endpoint,
    /// The destination's peer, looked up once.
    peer: OnceLock<Arc<Peer>>,
    /// Turns a reply envelope into a `Resp` with this client's codec (shared by its futures).
    decode: Decoder<Resp>,
    _types: PhantomData<fn(Req) -> Resp>,
}

/// Decodes a reply envelope from the given endpoint.
type Decoder<T> = Arc<dyn Fn(&[u8], Endpoint) -> Result<T, ReplyError> + Send + Sync>;

impl<Req, Resp, C: MessageCodec> Clone for RequestClient<Req, Resp, C> {
    fn clone(&self) -> Self {
        Self {
            transport: self.transport.clone(),
            endpoint: self.endpoint,
            peer: self.peer.clone(),
            decode: Arc::clone(&self.decode),
            _types: PhantomData,
        }
    }
}

impl<Req, Resp, C: MessageCodec> std::fmt::Debug for RequestClient<Req, Resp, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestClient")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// How a reply is awaited by the future.
#[derive(Clone, Copy)]
enum Wait {
    Reply,
    UnlessFailedFor(Duration),
}

impl<Req, Resp, C> RequestClient<Req, Resp, C>
where
    Req: Serialize,
    Resp: DeserializeOwned + Send + 'static,
    C: MessageCodec,
{
    pub(crate) fn new(transport: NetTransport<C>, endpoint: Endpoint) -> Self {
        let codec = transport.codec().clone();
        Self {
            transport,
            endpoint,
            peer: OnceLock::new(),
            decode: Arc::new(move |envelope, endpoint| {
                decode_reply::<Resp, C>(&codec, envelope, endpoint)
            }),
            _types: PhantomData,
        }
    }

    /// The endpoint called.
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// Fire and forget: sent unreliably, no reply. Use for notifications whose loss is harmless
    /// or covered by a later message (heartbeats, hints). The handler's promise does not want a
    /// reply, and dropping it sends nothing.
    pub fn send(&self, request: &Req) -> Result<(), TransportError> {
        let mut builder = crate::wire::FrameBuilder::with_capacity(self.endpoint.token, 64);
        protocol::write_uid(builder.buffer(), UID::new(0, 0));
        self.transport
            .codec()
            .encode_into(request, builder.buffer())?;
        let frame = builder.finish(self.transport.config().max_packet_size)?;
        self.transport
            .core()
            .send_frame(&self.endpoint, frame, false)
    }

    /// At most once: sent unreliably; if the connection fails before the reply, the future ends
    /// with [`ReplyError::ConnectionFailed`] (never sent) or [`ReplyError::MaybeDelivered`] (sent,
    /// outcome unknown). Use for requests that must not run twice, or when the caller wants to
    /// decide itself whether to retry.
    pub fn try_get_reply(&self, request: &Req) -> ReplyFuture<Resp> {
        self.request(request, RequestMode::AtMostOnce, Wait::Reply)
    }

    /// At least once: sent reliably and resent after every reconnection until a reply arrives, so
    /// the handler may see the request more than once and must be idempotent. Never fails because
    /// of a connection; it waits for the destination to come back. Pair it with
    /// [`ReplyFuture::timeout`] or use
    /// [`get_reply_unless_failed_for`](Self::get_reply_unless_failed_for) to bound the wait.
    pub fn get_reply(&self, request: &Req) -> ReplyFuture<Resp> {
        self.request(request, RequestMode::AtLeastOnce, Wait::Reply)
    }

    /// As [`get_reply`](Self::get_reply), but gives up once the failure monitor has seen the
    /// destination address failed continuously for `duration`: then
    /// [`ReplyError::MaybeDelivered`] if the request was sent, [`ReplyError::ConnectionFailed`]
    /// if it never was. Use for idempotent requests to a server that may be gone for good, when
    /// the caller can go elsewhere (another replica).
    pub fn get_reply_unless_failed_for(
        &self,
        request: &Req,
        duration: Duration,
    ) -> ReplyFuture<Resp> {
        self.request(
            request,
            RequestMode::AtLeastOnce,
            Wait::UnlessFailedFor(duration),
        )
    }

    fn request(&self, request: &Req, mode: RequestMode, wait: Wait) -> ReplyFuture<Resp> {
        let handle = self.transport.handle().clone();
        let codec = self.transport.codec();
        let pending = match handle.core.start_request(
            self.endpoint,
            &mut |out: &mut Vec<u8>| codec.encode_into(request, out),
            mode,
            matches!(wait, Wait::UnlessFailedFor(_)),
            &self.peer,
        ) {
            Ok(pending) => pending,
            Err(error) => return ReplyFuture::ready(handle, Err(error)),
        };
        let inner = match wait {
            // The common case, without an allocation: the future polls the reply itself.
            Wait::Reply => ReplyInner::Reply {
                pending,
                decode: Arc::clone(&self.decode),
            },
            Wait::UnlessFailedFor(duration) => {
                let monitor = self.transport.failure_monitor().clone();
                let decode = Arc::clone(&self.decode);
                ReplyInner::Boxed(Box::pin(async move {
                    let mut pending = pending;
                    let destination = pending.destination;
                    let failed = monitor.on_failed_for(destination.address, duration);
                    let outcome = moonpool_core::select! {
                        biased;
                        outcome = &mut pending.receiver => outcome,
                        () = failed => {
                            let address = destination.address;
                            return Err(if pending.fate.as_ref().is_some_and(Fate::was_written) {
                                ReplyError::MaybeDelivered { address }
                            } else {
                                ReplyError::ConnectionFailed { address }
                            });
                        }
                    };
                    // Resolved either way: the transport removed the entry when it answered.
                    pending.settled = true;
                    let envelope = outcome.map_err(|_| ReplyError::TransportClosed)??;
                    decode(&envelope, destination)
                }))
            }
        };
        ReplyFuture {
            inner,
            transport: Some(handle),
        }
    }
}

fn decode_reply<T: DeserializeOwned, C: MessageCodec>(
    codec: &C,
    envelope: &[u8],
    endpoint: Endpoint,
) -> Result<T, ReplyError> {
    match protocol::decode_reply(envelope) {
        Ok(Ok(body)) => codec
            .decode(body)
            .map_err(|error| ReplyError::Serialization {
                message: error.to_string(),
            }),
        Ok(Err(WireReplyError::BrokenPromise)) => Err(ReplyError::BrokenPromise { endpoint }),
        Ok(Err(WireReplyError::Overloaded)) => Err(ReplyError::Overloaded { endpoint }),
        Ok(Err(WireReplyError::Serialization(message))) => {
            Err(ReplyError::Serialization { message })
        }
        Err(error) => Err(ReplyError::Serialization {
            message: format!("malformed reply from {endpoint}: {error}"),
        }),
    }
}

/// The outcome of a request: the reply, or a [`ReplyError`].
///
/// Dropping it abandons the request: its reply endpoint is removed at once and, for the
/// reliable modes, the request stops being resent. It never hangs on a dead connection: the
/// at-most-once mode fails when the connection does; the reliable modes resend on the next one.
#[must_use = "a request is abandoned when its ReplyFuture is dropped"]
pub struct ReplyFuture<T> {
    inner: ReplyInner<T>,
    transport: Option<TransportHandle>,
}

/// What a [`ReplyFuture`] is waiting for.
enum ReplyInner<T> {
    /// The reply to `pending` (the common case, polled without any allocation).
    Reply {
        pending: PendingRequest,
        decode: Decoder<T>,
    },
    /// Anything else: a result known at once, a race with the failure monitor, a deadline.
    Boxed(Pin<Box<dyn Future<Output = Result<T, ReplyError>> + Send>>),
    /// The output was returned.
    Done,
}

impl<T> std::fmt::Debug for ReplyFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyFuture").finish_non_exhaustive()
    }
}

impl<T: Send + 'static> ReplyFuture<T> {
    fn ready(transport: TransportHandle, result: Result<T, ReplyError>) -> Self {
        Self {
            inner: ReplyInner::Boxed(Box::pin(std::future::ready(result))),
            transport: Some(transport),
        }
    }

    /// Gives up with [`ReplyError::Timeout`] when no reply arrived within `duration` (measured
    /// on the transport's clock, so simulated time in simulation). The request is abandoned.
    pub fn timeout(self, duration: Duration) -> ReplyFuture<T> {
        let Some(transport) = self.transport.clone() else {
            return self;
        };
        let sleep = transport.core.env.sleep(duration);
        let inner = ReplyFuture {
            inner: self.inner,
            transport: None,
        };
        let future = async move {
            moonpool_core::select! {
                biased;
                outcome = inner => outcome,
                () = sleep => Err(ReplyError::Timeout { duration }),
            }
        };
        ReplyFuture {
            inner: ReplyInner::Boxed(Box::pin(future)),
            transport: Some(transport),
        }
    }
}

impl<T> Future for ReplyFuture<T> {
    type Output = Result<T, ReplyError>;

    /// Polling again after the output was returned stays pending (a caller's bug, not a
    /// request that could hang).
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let result = match &mut this.inner {
            ReplyInner::Reply { pending, decode } => {
                let outcome = std::task::ready!(Pin::new(&mut pending.receiver).poll(cx));
                // Resolved: the transport removed the entry when it answered.
                pending.settled = true;
                outcome
                    .map_err(|_| ReplyError::TransportClosed)
                    .and_then(|reply| reply)
                    .and_then(|envelope| decode(&envelope, pending.destination))
            }
            ReplyInner::Boxed(future) => std::task::ready!(future.as_mut().poll(cx)),
            ReplyInner::Done => return Poll::Pending,
        };
        this.inner = ReplyInner::Done;
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::PendingRequest;

    fn assert_send<T: Send>() {}

    #[test]
    fn test_user_facing_types_are_send() {
        assert_send::<RequestClient<u32, u32>>();
        assert_send::<ReplyFuture<u32>>();
        assert_send::<ReplyPromise<u32>>();
        assert_send::<RequestStream<u32, u32>>();
        assert_send::<PendingRequest>();
    }
}
