//! The calling side of a typed interface: a [`Call`] or [`FallibleCall`] is one method call with
//! its arguments, not yet sent; its delivery-mode methods send it.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use moonpool_core::{Endpoint, JsonCodec, MessageCodec};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ReplyError, TransportError};
use crate::rpc::{CallMode, ReplyFuture, call, send};
use crate::transport::NetTransport;

/// One call of a method whose reply is a value (`async fn m(&self, ..) -> T`), ready to send.
///
/// Made by a generated client's method (`client.m(&transport, args..)`); nothing is sent until
/// one of the delivery modes is chosen. Which one when:
///
/// | Mode | If the connection fails | The handler sees the request |
/// |---|---|---|
/// | [`send`](Self::send) | lost silently (no reply at all) | at most once |
/// | [`try_get_reply`](Self::try_get_reply) | `ConnectionFailed` (never sent) or `MaybeDelivered` | at most once |
/// | [`get_reply`](Self::get_reply) | resent after reconnecting, until answered | at least once |
/// | [`get_reply_unless_failed_for`](Self::get_reply_unless_failed_for) | resent until the address has been failed for the duration | at least once |
///
/// Every mode can also end with `BrokenPromise` (the handler ended without answering),
/// `EndpointNotFound` (no such method at that address, for instance a server that restarted
/// with new tokens), `Overloaded`, `Serialization`, `BoundExceeded` or `TransportClosed`; bound
/// any wait with [`ReplyFuture::timeout`].
#[must_use = "a call is sent only by one of its delivery modes"]
pub struct Call<'t, Req, Resp, C: MessageCodec = JsonCodec> {
    transport: &'t NetTransport<C>,
    endpoint: Endpoint,
    request: Req,
    _reply: PhantomData<fn() -> Resp>,
}

impl<Req, Resp, C: MessageCodec> fmt::Debug for Call<'_, Req, Resp, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl<'t, Req, Resp, C> Call<'t, Req, Resp, C>
where
    Req: Serialize,
    Resp: DeserializeOwned + Send + 'static,
    C: MessageCodec,
{
    /// A call of the method at `endpoint` with `request`, through `transport`. Generated clients
    /// make these; call it yourself only to reach a method by hand.
    pub fn new(transport: &'t NetTransport<C>, endpoint: Endpoint, request: Req) -> Self {
        Self {
            transport,
            endpoint,
            request,
            _reply: PhantomData,
        }
    }

    /// The method's endpoint (the service's address, and the method's token).
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// The request (the method's arguments).
    pub fn request(&self) -> &Req {
        &self.request
    }

    /// Fire and forget: sent unreliably, at most once, and nobody waits for the reply (the
    /// handler runs and its answer is discarded). For notifications whose loss is harmless.
    ///
    /// # Errors
    /// The request could not be encoded or queued ([`TransportError`]).
    pub fn send(self) -> Result<(), TransportError> {
        send(
            self.transport.handle(),
            self.transport.codec(),
            self.endpoint,
            &self.request,
        )
    }

    /// At most once: [`ReplyError::ConnectionFailed`] if the request was never written,
    /// [`ReplyError::MaybeDelivered`] if the connection failed after it was. For requests that
    /// must not run twice.
    pub fn try_get_reply(self) -> ReplyFuture<Resp> {
        self.start(CallMode::TryGetReply)
    }

    /// At least once: resent after every reconnection until answered, so the handler must be
    /// idempotent. Never fails because of a connection; bound the wait with
    /// [`ReplyFuture::timeout`].
    pub fn get_reply(self) -> ReplyFuture<Resp> {
        self.start(CallMode::GetReply)
    }

    /// As [`get_reply`](Self::get_reply), but gives up once the destination has been failed for
    /// `duration`: [`ReplyError::MaybeDelivered`] if the request was sent,
    /// [`ReplyError::ConnectionFailed`] if it never was. For idempotent requests when there is
    /// another replica to try.
    pub fn get_reply_unless_failed_for(self, duration: Duration) -> ReplyFuture<Resp> {
        self.start(CallMode::UnlessFailedFor(duration))
    }

    fn start(self, mode: CallMode) -> ReplyFuture<Resp> {
        call(
            self.transport.handle(),
            self.transport.codec(),
            self.transport.erased_codec(),
            self.endpoint,
            &self.request,
            mode,
        )
    }
}

/// How a call of a fallible method (`-> Result<T, E>`) ended without a `T`: the service answered
/// with its own error, or the call failed in transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError<E> {
    /// The handler ran and answered `Err(E)`.
    Service(E),
    /// No answer: the transport's reason (timeout, broken promise, connection failure...).
    Transport(ReplyError),
}

impl<E> CallError<E> {
    /// The service's error, if the handler answered one.
    pub fn service(&self) -> Option<&E> {
        match self {
            CallError::Service(error) => Some(error),
            CallError::Transport(_) => None,
        }
    }

    /// The transport's error, if the call got no answer.
    pub fn transport(&self) -> Option<&ReplyError> {
        match self {
            CallError::Service(_) => None,
            CallError::Transport(error) => Some(error),
        }
    }
}

impl<E> From<ReplyError> for CallError<E> {
    fn from(error: ReplyError) -> Self {
        CallError::Transport(error)
    }
}

impl<E> From<TransportError> for CallError<E> {
    /// A transport that could not be built or used, as a transport failure of the call.
    fn from(error: TransportError) -> Self {
        CallError::Transport(ReplyError::from(error))
    }
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Service(error) => write!(f, "the service answered an error: {error}"),
            CallError::Transport(error) => write!(f, "{error}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CallError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CallError::Service(error) => Some(error),
            CallError::Transport(error) => Some(error),
        }
    }
}

/// One call of a fallible method (`async fn m(&self, ..) -> Result<T, E>`), ready to send.
///
/// The same delivery modes as [`Call`]; the reply future ends with `Ok(T)`, or
/// [`CallError::Service`] when the handler answered `Err(E)`, or [`CallError::Transport`].
#[must_use = "a call is sent only by one of its delivery modes"]
pub struct FallibleCall<'t, Req, T, E, C: MessageCodec = JsonCodec> {
    call: Call<'t, Req, Result<T, E>, C>,
}

impl<Req, T, E, C: MessageCodec> fmt::Debug for FallibleCall<'_, Req, T, E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallibleCall")
            .field("endpoint", &self.call.endpoint)
            .finish_non_exhaustive()
    }
}

impl<'t, Req, T, E, C> FallibleCall<'t, Req, T, E, C>
where
    Req: Serialize,
    T: DeserializeOwned + Send + 'static,
    E: DeserializeOwned + Send + 'static,
    C: MessageCodec,
{
    /// A call of the method at `endpoint` with `request`, through `transport` (see
    /// [`Call::new`]).
    pub fn new(transport: &'t NetTransport<C>, endpoint: Endpoint, request: Req) -> Self {
        Self {
            call: Call::new(transport, endpoint, request),
        }
    }

    /// The method's endpoint.
    pub fn endpoint(&self) -> Endpoint {
        self.call.endpoint
    }

    /// The request (the method's arguments).
    pub fn request(&self) -> &Req {
        &self.call.request
    }

    /// Fire and forget (see [`Call::send`]); the handler's answer, `Ok` or `Err`, is discarded.
    ///
    /// # Errors
    /// The request could not be encoded or queued ([`TransportError`]).
    pub fn send(self) -> Result<(), TransportError> {
        self.call.send()
    }

    /// At most once (see [`Call::try_get_reply`]).
    pub fn try_get_reply(self) -> FallibleReplyFuture<T, E> {
        FallibleReplyFuture::new(self.call.try_get_reply())
    }

    /// At least once (see [`Call::get_reply`]).
    pub fn get_reply(self) -> FallibleReplyFuture<T, E> {
        FallibleReplyFuture::new(self.call.get_reply())
    }

    /// At least once, unless the destination has been failed for `duration` (see
    /// [`Call::get_reply_unless_failed_for`]).
    pub fn get_reply_unless_failed_for(self, duration: Duration) -> FallibleReplyFuture<T, E> {
        FallibleReplyFuture::new(self.call.get_reply_unless_failed_for(duration))
    }
}

/// The outcome of a fallible call: `Ok(T)`, or a [`CallError`] keeping the service's `E` apart
/// from the transport's [`ReplyError`].
///
/// Dropping it abandons the request, as dropping a [`ReplyFuture`] does.
#[must_use = "a request is abandoned when its reply future is dropped"]
pub struct FallibleReplyFuture<T, E> {
    reply: ReplyFuture<Result<T, E>>,
}

impl<T, E> fmt::Debug for FallibleReplyFuture<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallibleReplyFuture")
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static, E: Send + 'static> FallibleReplyFuture<T, E> {
    fn new(reply: ReplyFuture<Result<T, E>>) -> Self {
        Self { reply }
    }

    /// Gives up with `CallError::Transport(ReplyError::Timeout)` when no reply arrived within
    /// `duration` on the transport's clock (see [`ReplyFuture::timeout`]).
    pub fn timeout(self, duration: Duration) -> Self {
        Self {
            reply: self.reply.timeout(duration),
        }
    }
}

impl<T, E> Future for FallibleReplyFuture<T, E> {
    type Output = Result<T, CallError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let outcome = std::task::ready!(Pin::new(&mut self.get_mut().reply).poll(cx));
        Poll::Ready(match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(CallError::Service(error)),
            Err(error) => Err(CallError::Transport(error)),
        })
    }
}
