//! The server side of RPC: [`RequestStream`] yields `(request, promise)` pairs decoded by a
//! `RequestReceiver` registered at the stream's token; a [`ReplyPromise`] sends exactly one
//! reply back the way its request came.

use std::marker::PhantomData;
use std::sync::{Arc, Weak};

use moonpool_core::{Endpoint, JsonCodec, MessageCodec, UID};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::client::RequestClient;
use crate::connection::{Origin, Receive};
use crate::dispatch::{Core, PacketReceiver, ReplyRoute, TransportHandle};
use crate::protocol::{self, WireReplyError};
use crate::queue::{NetNotifiedQueue, QueueShared, QueueStats};

/// The server's half of one request: send exactly one reply with [`send`](Self::send).
///
/// Dropping it without sending answers the caller with
/// [`ReplyError::BrokenPromise`](crate::ReplyError::BrokenPromise), so no caller waits forever on
/// a handler that gave up. The reply travels back on the connection the request arrived on (or
/// directly, for a local caller), unreliably: if that connection is gone, the caller sees the
/// connection failure instead.
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
        // Settles the route's count too.
        route.answer_encoded(
            self.token,
            &protocol::REPLY_OK_PREFIX,
            &mut |out: &mut Vec<u8>| crate::json::encode_into(codec, &value, out),
        )
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
    core: Weak<Core>,
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
        let shared = QueueShared::new(transport.core().config.receive_queue_max);
        let receiver = Self {
            shared: Arc::clone(&shared),
            codec,
            endpoint,
            core: Arc::downgrade(transport.core()),
        };
        (receiver, NetNotifiedQueue::new(shared, endpoint, transport))
    }
}

impl<Req, Resp, C> Receive for RequestReceiver<Req, Resp, C>
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
        let route = ReplyRoute::back(origin, &self.core, reply_token.is_valid());
        let promise =
            ReplyPromise::from_parts(reply_token, route, self.codec.clone(), self.endpoint);
        match crate::json::decode::<C, Req>(&self.codec, body) {
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
}

impl<Req, Resp, C> PacketReceiver for RequestReceiver<Req, Resp, C>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    C: MessageCodec,
{
    fn close(&self) {
        self.shared.close();
    }
}

/// The server side of an RPC endpoint: yields `(request, reply promise)` pairs.
///
/// Register with [`NetTransport::register_stream`](crate::NetTransport::register_stream) (random
/// token) or [`NetTransport::register_stream_at`](crate::NetTransport::register_stream_at) (fixed
/// token). Bounded by `receive_queue_max`: a request arriving at a full stream is answered
/// [`ReplyError::Overloaded`](crate::ReplyError::Overloaded). Dropping the stream unregisters its
/// endpoint and answers the requests still queued with BrokenPromise.
///
/// Several streams are served by one task with `moonpool_core::select!` (see the `calculator`
/// example).
pub struct RequestStream<Req, Resp, C: MessageCodec = JsonCodec> {
    queue: NetNotifiedQueue<Request<Req, Resp, C>>,
    /// The transport, for the clients made from this stream.
    handle: TransportHandle,
    codec: C,
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
        handle: TransportHandle,
        codec: C,
    ) -> Self {
        Self {
            queue,
            handle,
            codec,
        }
    }

    /// The next request and the promise to answer it; `None` once the transport shut down.
    pub async fn recv(&self) -> Option<(Req, ReplyPromise<Resp, C>)> {
        let next = self.queue.recv().await;
        self.annotate_taken(next.as_ref());
        next
    }

    /// The next request if one is queued.
    pub fn try_recv(&self) -> Option<(Req, ReplyPromise<Resp, C>)> {
        let next = self.queue.try_recv();
        self.annotate_taken(next.as_ref());
        next
    }

    /// Tells a trace that the task polled now took `next` (one atomic load when none is
    /// recorded).
    #[inline]
    fn annotate_taken(&self, next: Option<&(Req, ReplyPromise<Resp, C>)>) {
        if moonpool_core::annotate::active()
            && let Some((_, promise)) = next
            && promise.token.is_valid()
        {
            moonpool_core::annotate::handling(self.queue.endpoint().token, promise.token);
        }
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
        RequestClient::new(self.handle.clone(), self.codec.clone(), self.endpoint())
    }
}
