//! The serving side of a typed interface: one task per method, each taking requests from the
//! method's [`RequestStream`] and answering them with the handler's value; [`Serving`] holds the
//! tasks and stops them when dropped.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::Poll;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use moonpool_core::{Endpoint, JoinHandle, MessageCodec, UID};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::method_token;
use crate::dispatch::Core;
use crate::error::TransportError;
use crate::rpc::{ReplyPromise, RequestStream};
use crate::transport::NetTransport;

/// The running methods of one service on one transport.
///
/// Made by a generated server (`FooServer::serve`), which wraps it. Each method is served by a
/// task of its own, spawned through the transport's providers. Dropping this value, or calling
/// [`stop`](Self::stop), stops serving at once: every method's endpoint is unregistered (a later
/// call ends with `EndpointNotFound`), requests still queued are answered `BrokenPromise`, and
/// the tasks are aborted, so the handlers in progress are dropped and their callers get
/// `BrokenPromise` too. Serving also ends when the transport shuts down.
pub struct Serving {
    core: Arc<Core>,
    base: Endpoint,
    interface: UID,
    name: &'static str,
    methods: Vec<(UID, JoinHandle<()>)>,
}

impl fmt::Debug for Serving {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serving")
            .field("service", &self.name)
            .field("base", &self.base)
            .field("interface", &self.interface)
            .field("methods", &self.methods.len())
            .field("serving", &self.is_serving())
            .finish()
    }
}

impl Serving {
    /// The service's base endpoint: the address clients call, and the base token its method
    /// tokens are derived from (see [`method_token`]).
    pub fn endpoint(&self) -> Endpoint {
        self.base
    }

    /// The interface id mixed into the method tokens.
    pub fn interface(&self) -> UID {
        self.interface
    }

    /// True while every method's task is running (false once stopped, or once the transport
    /// shut down and the tasks ended).
    pub fn is_serving(&self) -> bool {
        !self.methods.is_empty() && self.methods.iter().all(|(_, task)| !task.is_finished())
    }

    /// Stops serving now (see the type docs). Dropping the value does the same.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        for (token, task) in self.methods.drain(..) {
            // Unregistering first closes the request queue: queued requests answer
            // BrokenPromise and no new one is accepted, even before the task is dropped.
            self.core.unregister(token);
            task.abort();
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Registers a service's methods one by one, then [`finish`](Self::finish)es into [`Serving`].
///
/// This is what generated servers call; it is public so that the generated code can, and is not
/// meant to be used by hand. If it is dropped before `finish` (a method failed to register), the
/// methods registered so far are stopped: a service is served whole or not at all.
pub struct ServingBuilder<'t, C: MessageCodec> {
    transport: &'t NetTransport<C>,
    serving: Serving,
}

impl<C: MessageCodec> fmt::Debug for ServingBuilder<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServingBuilder")
            .field("serving", &self.serving)
            .finish()
    }
}

impl<'t, C: MessageCodec> ServingBuilder<'t, C> {
    /// Starts serving the service `name` with interface id `interface` on `transport`, at the
    /// base token `base`, or at a fresh random one when `base` is `None`.
    ///
    /// # Errors
    /// [`TransportError::Shutdown`] when the transport has shut down.
    pub fn new(
        transport: &'t NetTransport<C>,
        name: &'static str,
        interface: UID,
        base: Option<UID>,
    ) -> Result<Self, TransportError> {
        let core = Arc::clone(transport.handle().core());
        if core.is_shut_down() {
            return Err(TransportError::Shutdown);
        }
        let base = base.unwrap_or_else(|| core.env.random_uid());
        let address = transport
            .local_address()
            .unwrap_or_else(crate::dispatch::unaddressed);
        Ok(Self {
            transport,
            serving: Serving {
                core,
                base: Endpoint::new(address, base),
                interface,
                name,
                methods: Vec::new(),
            },
        })
    }

    /// Registers method `index` (named `method` in logs and task names) and spawns its task,
    /// which answers each request with `M::call(&service, request)`. At most `in_flight_max`
    /// requests of this method are handled at once (1: one at a time, in arrival order); the
    /// others wait in the method's receive queue (bounded by `receive_queue_max`, beyond which
    /// callers get `Overloaded`).
    ///
    /// # Errors
    /// The token could not be registered ([`TransportError::TokenInUse`] when the same service
    /// is already served at this base on this transport, [`TransportError::TooManyEndpoints`]).
    pub fn method<S, M>(
        &mut self,
        index: u32,
        method: &'static str,
        in_flight_max: usize,
        service: &Arc<S>,
    ) -> Result<&mut Self, TransportError>
    where
        S: Send + Sync + 'static,
        M: Method<S>,
    {
        let token = method_token(self.serving.base.token, self.serving.interface, index);
        let stream = self
            .transport
            .register_stream_at::<M::Request, M::Reply>(token)?;
        let name = format!("{}::{method}", self.serving.name);
        let service = Arc::clone(service);
        moonpool_core::annotate::name_endpoint(token, || name.clone());
        let task = if in_flight_max <= 1 {
            self.serving.core.env.spawn(
                &name,
                Box::pin(serve_serially::<S, M, C>(stream, service, method)),
            )
        } else {
            self.serving.core.env.spawn(
                &name,
                Box::pin(serve_concurrently::<S, M, C>(
                    stream,
                    service,
                    method,
                    in_flight_max,
                )),
            )
        };
        self.serving.methods.push((token, task));
        Ok(self)
    }

    /// Every method is registered: the service is served until the returned value is dropped.
    pub fn finish(self) -> Serving {
        self.serving
    }
}

/// One method of a service, as its serving task calls it: the method's request and reply
/// types, and how an implementation `S` answers a request.
///
/// The generated server defines one (zero-sized, private) type per method and passes it to
/// [`ServingBuilder::method`]; the task borrows the implementation for each call, so serving
/// a request allocates nothing and touches no reference count. Not meant to be implemented by
/// hand.
pub trait Method<S: ?Sized>: 'static {
    /// The method's request: its arguments.
    type Request: DeserializeOwned + Send + 'static;
    /// The method's reply.
    type Reply: Serialize + Send + 'static;
    /// Answers `request` with `service`.
    fn call(service: &S, request: Self::Request) -> impl Future<Output = Self::Reply> + Send + '_;
}

/// One request at a time, in arrival order.
async fn serve_serially<S, M, C>(
    stream: RequestStream<M::Request, M::Reply, C>,
    service: Arc<S>,
    method: &'static str,
) where
    S: Send + Sync + 'static,
    M: Method<S>,
    C: MessageCodec,
{
    while let Some((request, promise)) = stream.recv().await {
        answer(M::call(&service, request), promise, method).await;
    }
}

/// Up to `in_flight_max` requests at once, all driven by this one task (no task per request:
/// stopping the task drops every handler in progress).
async fn serve_concurrently<S, M, C>(
    stream: RequestStream<M::Request, M::Reply, C>,
    service: Arc<S>,
    method: &'static str,
    in_flight_max: usize,
) where
    S: Send + Sync + 'static,
    M: Method<S>,
    C: MessageCodec,
{
    let service = &*service;
    let mut in_flight = FuturesUnordered::new();
    loop {
        if in_flight.len() >= in_flight_max {
            in_flight.next().await;
            continue;
        }
        let next = moonpool_core::select! {
            biased;
            Some(()) = in_flight.next(), if !in_flight.is_empty() => continue,
            next = stream.recv() => next,
        };
        match next {
            Some((request, promise)) => {
                in_flight.push(answer(M::call(service, request), promise, method));
            }
            // The transport shut down (the stream closed): nothing can be answered any more.
            None => return,
        }
    }
}

/// Runs one handler and answers its caller: with the handler's value; or `BrokenPromise` when
/// the handler ended without one ([`no_reply`]) or panicked. A panic is caught (the method keeps
/// serving) and logged.
async fn answer<Resp, C, F>(handler: F, promise: ReplyPromise<Resp, C>, method: &'static str)
where
    Resp: Serialize,
    C: MessageCodec,
    F: Future<Output = Resp>,
{
    let mut handler = std::pin::pin!(handler);
    let outcome = std::future::poll_fn(|cx| {
        let scope = HandlerScope::enter();
        let polled = catch_unwind(AssertUnwindSafe(|| handler.as_mut().poll(cx)));
        let declined = scope.leave();
        match polled {
            Ok(Poll::Ready(value)) => Poll::Ready(Outcome::Value(value)),
            Ok(Poll::Pending) if declined => Poll::Ready(Outcome::NoReply),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Outcome::Panicked(moonpool_core::task::panic_message(
                &*payload,
            ))),
        }
    })
    .await;
    match outcome {
        Outcome::Value(value) => {
            // False when the caller is gone or never wanted a reply: nothing to do either way.
            let _ = promise.send(value);
        }
        Outcome::NoReply => drop(promise),
        Outcome::Panicked(message) => {
            tracing::error!(
                method,
                %message,
                "a #[service] handler panicked; its caller gets BrokenPromise"
            );
            drop(promise);
        }
    }
}

enum Outcome<T> {
    Value(T),
    NoReply,
    Panicked(String),
}

/// Where the current thread is, as far as [`no_reply`] is concerned.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Not polling a handler.
    Outside,
    /// Polling a handler.
    Handler,
    /// Polling a handler that called `no_reply`.
    Declined,
}

thread_local! {
    static SCOPE: Cell<Scope> = const { Cell::new(Scope::Outside) };
}

/// Marks the thread as polling a handler until [`leave`](Self::leave) or drop (restoring what it
/// replaced, so a panic cannot leave the mark behind).
struct HandlerScope {
    previous: Scope,
}

impl HandlerScope {
    fn enter() -> Self {
        Self {
            previous: SCOPE.with(|scope| scope.replace(Scope::Handler)),
        }
    }

    /// True when the handler called `no_reply` during this poll.
    fn leave(self) -> bool {
        let now = SCOPE.with(|scope| scope.get());
        now == Scope::Declined
    }
}

impl Drop for HandlerScope {
    fn drop(&mut self) {
        SCOPE.with(|scope| scope.set(self.previous));
    }
}

/// Ends the `#[service]` handler that awaits it without answering: its caller gets
/// [`ReplyError::BrokenPromise`](crate::ReplyError::BrokenPromise), as from a
/// [`ReplyPromise`] dropped unanswered. The handler's future is dropped at once.
///
/// ```
/// # use moonpool_transport::interface::no_reply;
/// /// A handler body that refuses odd numbers without answering.
/// async fn half(x: u64) -> u64 {
///     if x % 2 == 1 {
///         return no_reply().await;
///     }
///     x / 2
/// }
/// ```
///
/// It works in the handler's own future (anything the handler awaits directly or through
/// `select!`/`join!`), which the generated server polls. The server marks the thread for the
/// length of each poll of the handler, not for the handler's life, so a handler that resumes on
/// another worker thread of a multi-threaded runtime after an await declines all the same, and
/// the mark never outlives the poll into another handler. Awaited anywhere else (a task the
/// handler spawned, code that is not a handler) it never completes, and says so in the log.
pub async fn no_reply<T>() -> T {
    let mut warned = false;
    std::future::poll_fn(|_| {
        let inside = SCOPE.with(|scope| {
            if scope.get() == Scope::Outside {
                false
            } else {
                scope.set(Scope::Declined);
                true
            }
        });
        if !inside && !warned {
            warned = true;
            tracing::warn!("no_reply() awaited outside a #[service] handler: it never completes");
        }
        Poll::Pending
    })
    .await
}
