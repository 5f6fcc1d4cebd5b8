//! The calling side of RPC: [`RequestClient`] sends requests in FoundationDB's four delivery
//! modes through the dispatch floor (which registers the reply awaited and sends); a
//! [`ReplyFuture`] awaits the reply (or the failure monitor, or a deadline) and abandons the
//! request when dropped.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use moonpool_core::{BinaryCodec, Endpoint, JsonCodec, MessageCodec, NetworkAddress, UID};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::dispatch::{PendingRequest, RequestMode, TransportHandle};
use crate::error::{ReplyError, TransportError};
use crate::peer::{Fate, Peer};
use crate::protocol::{self, WireReplyError};
use crate::wire::FrameBuilder;

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
    handle: TransportHandle,
    codec: C,
    endpoint: Endpoint,
    /// The destination's peer, looked up once.
    peer: OnceLock<Arc<Peer>>,
    /// Turns a reply envelope into a `Resp` with this client's codec (shared by its futures).
    decode: Decoder<Resp>,
    /// The same as a plain function, for the built-in codecs (what the futures then hold).
    decode_static: Option<StaticDecoder<Resp>>,
    _types: PhantomData<fn(Req) -> Resp>,
}

/// Decodes a reply envelope from the given endpoint.
type Decoder<T> = Arc<dyn Fn(&[u8], Endpoint) -> Result<T, ReplyError> + Send + Sync>;

/// [`Decoder`] as a plain function, for a codec that needs no state.
type StaticDecoder<T> = fn(&[u8], Endpoint) -> Result<T, ReplyError>;

/// The decoder of `C` as a plain function when `C` is one of the built-in codecs (unit structs,
/// so the function can make its own), so that a reply future holds no reference-counted decoder.
fn static_decoder<T: DeserializeOwned, C: MessageCodec>() -> Option<StaticDecoder<T>> {
    let codec = std::any::TypeId::of::<C>();
    if codec == std::any::TypeId::of::<JsonCodec>() {
        Some(|envelope, endpoint| decode_reply::<T, JsonCodec>(&JsonCodec, envelope, endpoint))
    } else if codec == std::any::TypeId::of::<BinaryCodec>() {
        Some(|envelope, endpoint| decode_reply::<T, BinaryCodec>(&BinaryCodec, envelope, endpoint))
    } else {
        None
    }
}

/// Distinct remote addresses whose peers a transport remembers for the calls made without a
/// [`RequestClient`]; calls to further addresses look their peer up each time.
const PEER_SLOTS: usize = 16;

/// What a transport keeps for the calls made without a [`RequestClient`] (the typed
/// interfaces' calls, whose clients are plain data): its codec, type-erased, so that a call
/// allocates no decoder of its own; and the peers those calls reached, so that a call does not
/// look its peer up (peers live as long as their transport, so a peer found once stays right).
pub(crate) struct CallShared {
    codec: Box<dyn Any + Send + Sync>,
    /// Filled in order, each slot once: an address, then (on the first remote call) its peer.
    peers: [PeerSlot; PEER_SLOTS],
}

#[derive(Default)]
struct PeerSlot {
    address: OnceLock<NetworkAddress>,
    peer: OnceLock<Arc<Peer>>,
}

impl CallShared {
    pub(crate) fn new<C: MessageCodec>(codec: C) -> Self {
        Self {
            codec: Box::new(codec),
            peers: Default::default(),
        }
    }

    /// The cache of `address`'s peer: its slot (claimed now if it had none and one is free),
    /// or `None` when every slot holds another address.
    fn peer_slot(&self, address: NetworkAddress) -> Option<&OnceLock<Arc<Peer>>> {
        self.peers.iter().find_map(|slot| {
            let claimed = match slot.address.get() {
                Some(claimed) => *claimed,
                // Two callers may race for a free slot: one claims it, the other goes on.
                None => *slot.address.get_or_init(|| address),
            };
            (claimed == address).then_some(&slot.peer)
        })
    }
}

/// A transport's [`CallShared`], shared by its clones and by the reply futures of its calls.
pub(crate) type ErasedCodec = Arc<CallShared>;

/// How a [`ReplyFuture`] decodes its reply: with a plain function (the built-in codecs, which are
/// unit values: no reference count per request), with its client's decoder, or with the
/// transport's erased codec and the function that knows its type.
enum Decode<T> {
    Static(StaticDecoder<T>),
    Shared(Decoder<T>),
    Erased(
        ErasedCodec,
        fn(&(dyn Any + Send + Sync), &[u8], Endpoint) -> Result<T, ReplyError>,
    ),
}

impl<T> Decode<T> {
    fn run(&self, envelope: &[u8], endpoint: Endpoint) -> Result<T, ReplyError> {
        match self {
            Decode::Static(decode) => decode(envelope, endpoint),
            Decode::Shared(decode) => decode(envelope, endpoint),
            Decode::Erased(shared, decode) => decode(&*shared.codec, envelope, endpoint),
        }
    }
}

fn decode_erased<T: DeserializeOwned, C: MessageCodec>(
    codec: &(dyn Any + Send + Sync),
    envelope: &[u8],
    endpoint: Endpoint,
) -> Result<T, ReplyError> {
    match codec.downcast_ref::<C>() {
        Some(codec) => decode_reply(codec, envelope, endpoint),
        None => Err(ReplyError::Serialization {
            message: "the transport's codec is not the call's".to_string(),
        }),
    }
}

/// How a call made without a [`RequestClient`] waits for its reply.
#[derive(Clone, Copy)]
pub(crate) enum CallMode {
    TryGetReply,
    GetReply,
    UnlessFailedFor(Duration),
}

/// Sends `request` to `endpoint` in `mode` and returns the future of its reply: what
/// [`RequestClient`]'s modes do, without a client (no decoder allocated; the peer remembered by
/// the transport's [`CallShared`]). Used by the typed interfaces, whose clients are plain data.
pub(crate) fn call<Req, Resp, C>(
    handle: &TransportHandle,
    codec: &C,
    erased: &ErasedCodec,
    endpoint: Endpoint,
    request: &Req,
    mode: CallMode,
) -> ReplyFuture<Resp>
where
    Req: Serialize,
    Resp: DeserializeOwned + Send + 'static,
    C: MessageCodec,
{
    let (mode, wait) = match mode {
        CallMode::TryGetReply => (RequestMode::AtMostOnce, Wait::Reply),
        CallMode::GetReply => (RequestMode::AtLeastOnce, Wait::Reply),
        CallMode::UnlessFailedFor(duration) => {
            (RequestMode::AtLeastOnce, Wait::UnlessFailedFor(duration))
        }
    };
    let uncached = OnceLock::new();
    let peer = erased.peer_slot(endpoint.address).unwrap_or(&uncached);
    start(
        handle,
        codec,
        endpoint,
        request,
        mode,
        wait,
        peer,
        || match static_decoder::<Resp, C>() {
            Some(decode) => Decode::Static(decode),
            None => Decode::Erased(Arc::clone(erased), decode_erased::<Resp, C>),
        },
    )
}

/// Sends `request` to `endpoint` unreliably, wanting no reply (its reply token is zero): what
/// [`RequestClient::send`] does, without a client.
pub(crate) fn send<Req: Serialize, C: MessageCodec>(
    handle: &TransportHandle,
    codec: &C,
    endpoint: Endpoint,
    request: &Req,
) -> Result<(), TransportError> {
    let mut builder = FrameBuilder::with_capacity(endpoint.token, 64);
    protocol::write_uid(builder.buffer(), UID::new(0, 0));
    crate::json::encode_into(codec, request, builder.buffer())?;
    let frame = builder.finish(handle.core().config.max_packet_size)?;
    handle.core().send_frame(&endpoint, frame, false)
}

impl<Req, Resp, C: MessageCodec> Clone for RequestClient<Req, Resp, C> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
            codec: self.codec.clone(),
            endpoint: self.endpoint,
            peer: self.peer.clone(),
            decode: Arc::clone(&self.decode),
            decode_static: self.decode_static,
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
    pub(crate) fn new(handle: TransportHandle, codec: C, endpoint: Endpoint) -> Self {
        let decode_codec = codec.clone();
        Self {
            handle,
            codec,
            endpoint,
            peer: OnceLock::new(),
            decode: Arc::new(move |envelope, endpoint| {
                decode_reply::<Resp, C>(&decode_codec, envelope, endpoint)
            }),
            decode_static: static_decoder::<Resp, C>(),
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
        send(&self.handle, &self.codec, self.endpoint, request)
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
        start(
            &self.handle,
            &self.codec,
            self.endpoint,
            request,
            mode,
            wait,
            &self.peer,
            || match self.decode_static {
                Some(decode) => Decode::Static(decode),
                None => Decode::Shared(Arc::clone(&self.decode)),
            },
        )
    }
}

/// Starts a request and returns the future of its reply, decoded by `decode()`.
#[allow(clippy::too_many_arguments)]
fn start<Req, Resp, C>(
    handle: &TransportHandle,
    codec: &C,
    endpoint: Endpoint,
    request: &Req,
    mode: RequestMode,
    wait: Wait,
    peer: &OnceLock<Arc<Peer>>,
    decode: impl FnOnce() -> Decode<Resp>,
) -> ReplyFuture<Resp>
where
    Req: Serialize,
    Resp: DeserializeOwned + Send + 'static,
    C: MessageCodec,
{
    let pending = match handle.core().start_request(
        handle,
        endpoint,
        &mut |out: &mut Vec<u8>| crate::json::encode_into(codec, request, out),
        mode,
        matches!(wait, Wait::UnlessFailedFor(_)),
        peer,
    ) {
        Ok(pending) => pending,
        Err(error) => return ReplyFuture::ready(handle.clone(), Err(error)),
    };
    let inner: BoxedReply<Resp> = match wait {
        // The common case, without an allocation: the future polls the reply itself (and the
        // pending request holds the transport).
        Wait::Reply => {
            return ReplyFuture {
                inner: ReplyInner::Reply {
                    pending,
                    decode: decode(),
                },
            };
        }
        Wait::UnlessFailedFor(duration) => {
            let monitor = handle.core().failure_monitor.clone();
            let decode = decode();
            Box::pin(async move {
                let mut pending = pending;
                let destination = endpoint;
                let failed = monitor.on_failed_for(destination.address, duration);
                let outcome = moonpool_core::select! {
                    biased;
                    outcome = std::future::poll_fn(|cx| pending.poll_outcome(cx)) => outcome,
                    () = failed => {
                        let address = destination.address;
                        return Err(if pending.fate.as_ref().is_some_and(Fate::was_written) {
                            ReplyError::MaybeDelivered { address }
                        } else {
                            ReplyError::ConnectionFailed { address }
                        });
                    }
                };
                moonpool_core::annotate::reply_taken(pending.token, outcome.is_ok());
                let (envelope, from) = outcome?;
                decode.run(&envelope, from)
            })
        }
    };
    ReplyFuture {
        inner: ReplyInner::Boxed {
            future: inner,
            transport: handle.clone(),
        },
    }
}

fn decode_reply<T: DeserializeOwned, C: MessageCodec>(
    codec: &C,
    envelope: &[u8],
    endpoint: Endpoint,
) -> Result<T, ReplyError> {
    match protocol::decode_reply(envelope) {
        Ok(Ok(body)) => {
            crate::json::decode::<C, T>(codec, body).map_err(|error| ReplyError::Serialization {
                message: error.to_string(),
            })
        }
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
}

/// A reply future of any other shape.
type BoxedReply<T> = Pin<Box<dyn Future<Output = Result<T, ReplyError>> + Send>>;

/// What a [`ReplyFuture`] is waiting for.
enum ReplyInner<T> {
    /// The reply to `pending` (the common case, polled without any allocation).
    Reply {
        pending: PendingRequest,
        decode: Decode<T>,
    },
    /// Anything else: a result known at once, a race with the failure monitor, a deadline;
    /// with the transport, for [`timeout`](ReplyFuture::timeout) (a pending reply holds it).
    Boxed {
        future: BoxedReply<T>,
        transport: TransportHandle,
    },
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
            inner: ReplyInner::Boxed {
                future: Box::pin(std::future::ready(result)),
                transport,
            },
        }
    }

    /// Gives up with [`ReplyError::Timeout`] when no reply arrived within `duration` (measured
    /// on the transport's clock, so simulated time in simulation). The request is abandoned.
    pub fn timeout(self, duration: Duration) -> ReplyFuture<T> {
        let transport = match &self.inner {
            ReplyInner::Boxed { transport, .. } => transport.clone(),
            ReplyInner::Reply { pending, .. } => pending.handle.clone(),
            ReplyInner::Done => return self,
        };
        let sleep = transport.core().env.sleep(duration);
        let inner = self;
        let future = async move {
            moonpool_core::select! {
                biased;
                outcome = inner => outcome,
                () = sleep => Err(ReplyError::Timeout { duration }),
            }
        };
        ReplyFuture {
            inner: ReplyInner::Boxed {
                future: Box::pin(future),
                transport,
            },
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
                let outcome = std::task::ready!(pending.poll_outcome(cx));
                moonpool_core::annotate::reply_taken(pending.token, outcome.is_ok());
                outcome.and_then(|(envelope, from)| {
                    let decoded = decode.run(&envelope, from);
                    crate::dispatch::recycle_buffer(envelope);
                    decoded
                })
            }
            ReplyInner::Boxed { future, .. } => std::task::ready!(future.as_mut().poll(cx)),
            ReplyInner::Done => return Poll::Pending,
        };
        this.inner = ReplyInner::Done;
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(i: usize) -> NetworkAddress {
        format!("10.0.0.{}:4500", i + 1).parse().unwrap()
    }

    #[test]
    fn test_peer_slots_hold_sixteen_addresses_then_let_calls_look_up() {
        let shared = CallShared::new(JsonCodec);
        let slots: Vec<*const OnceLock<Arc<Peer>>> = (0..PEER_SLOTS)
            .map(|i| std::ptr::from_ref(shared.peer_slot(address(i)).unwrap()))
            .collect();
        for (i, slot) in slots.iter().enumerate() {
            // The same address finds the same slot; distinct addresses have distinct slots.
            assert_eq!(
                std::ptr::from_ref(shared.peer_slot(address(i)).unwrap()),
                *slot
            );
            assert!(slots[..i].iter().all(|other| other != slot));
        }
        // Every slot is taken: a further address gets none (its calls look the peer up).
        assert!(shared.peer_slot(address(PEER_SLOTS)).is_none());
        assert!(shared.peer_slot(address(0)).is_some());
    }
}
