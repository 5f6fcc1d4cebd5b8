//! Floor 4: calling actors. An [`ActorClient`] sends a method call to an identity and answers
//! with the reply or an [`ActorError`]; inside the cluster it is a node's router, outside it is a
//! gateway client that hands each call to a member node (any member will do).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use moonpool_core::{Endpoint, NetworkAddress, TimeProvider, UID};
use moonpool_transport::{NetTransport, ReplyError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::ActorError;
use super::identity::ActorId;
use super::membership::MembershipView;
use super::wire::NodeApiClient;

/// Something that can deliver a call to an actor.
pub(crate) trait Caller: Send + Sync + 'static {
    fn call(
        &self,
        id: ActorId,
        method: u32,
        body: String,
    ) -> BoxFuture<'static, Result<String, ActorError>>;
}

/// A handle to call actors (cheap to clone). Generated actor references take one:
/// `account.deposit(&client, 10).await`.
#[derive(Clone)]
pub struct ActorClient {
    caller: Arc<dyn Caller>,
}

impl std::fmt::Debug for ActorClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorClient").finish_non_exhaustive()
    }
}

impl ActorClient {
    pub(crate) fn new(caller: Arc<dyn Caller>) -> Self {
        Self { caller }
    }

    /// A client outside the cluster: each call goes to a member of `view` (in turn, moving on
    /// to the next one when a member cannot be reached before the call was sent), which routes
    /// it. `base` is the cluster's service base token (`ActorConfig::service_base`), `timeout`
    /// bounds each call.
    pub fn external(
        transport: NetTransport,
        view: MembershipView,
        base: UID,
        timeout: Duration,
    ) -> Self {
        Self::new(Arc::new(Gateway {
            transport,
            view,
            base,
            timeout,
            next: AtomicUsize::new(0),
            time: None,
        }))
    }

    /// As [`external`](Self::external), but `timeout` bounds each call as a whole (across the
    /// members it tries), measured on `time`: a call ends with its reply or an error within
    /// `timeout` (plus the time the transport takes to give up on its last attempt).
    pub fn external_within<T: TimeProvider>(
        transport: NetTransport,
        view: MembershipView,
        base: UID,
        timeout: Duration,
        time: T,
    ) -> Self {
        Self::new(Arc::new(Gateway {
            transport,
            view,
            base,
            timeout,
            next: AtomicUsize::new(0),
            time: Some(Arc::new(time)),
        }))
    }

    /// Calls method `method` of `id` with arguments encoded as `body`; the reply, encoded.
    /// Generated references call this; use it by hand only for untyped access.
    ///
    /// # Errors
    /// Every way a call can fail, as an [`ActorError`].
    pub fn call_raw(
        &self,
        id: ActorId,
        method: u32,
        body: String,
    ) -> BoxFuture<'static, Result<String, ActorError>> {
        self.caller.call(id, method, body)
    }

    /// Calls method `method` of `id` with `request`, decoding the reply as `R`.
    ///
    /// # Errors
    /// As [`call_raw`](Self::call_raw), and [`ActorError::Serialization`].
    pub fn call<Q: Serialize, R: DeserializeOwned + Send + 'static>(
        &self,
        id: ActorId,
        method: u32,
        request: &Q,
    ) -> BoxFuture<'static, Result<R, ActorError>> {
        let body = encode(request);
        let caller = Arc::clone(&self.caller);
        Box::pin(async move {
            let reply = caller.call(id, method, body?).await?;
            decode(&reply)
        })
    }
}

/// Encodes a request or reply (generated code uses it).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<String, ActorError> {
    serde_json::to_string(value).map_err(|error| ActorError::Serialization(error.to_string()))
}

/// Decodes a request or reply (generated code uses it).
pub fn decode<T: DeserializeOwned>(text: &str) -> Result<T, ActorError> {
    serde_json::from_str(text).map_err(|error| ActorError::Serialization(error.to_string()))
}

struct Gateway {
    transport: NetTransport,
    view: MembershipView,
    base: UID,
    timeout: Duration,
    next: AtomicUsize,
    /// With a clock, `timeout` is a deadline for the whole call.
    time: Option<Arc<dyn Now>>,
}

/// The time source of a bounded gateway.
trait Now: Send + Sync + 'static {
    fn now(&self) -> Duration;
}

impl<T: TimeProvider> Now for T {
    fn now(&self) -> Duration {
        TimeProvider::now(self)
    }
}

impl Caller for Gateway {
    fn call(
        &self,
        id: ActorId,
        method: u32,
        body: String,
    ) -> BoxFuture<'static, Result<String, ActorError>> {
        let members: Vec<NetworkAddress> = self.view.members().to_vec();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let transport = self.transport.clone();
        let base = self.base;
        let whole = self.timeout;
        let time = self.time.clone();
        let deadline = time.as_ref().map(|time| time.now().saturating_add(whole));
        Box::pin(async move {
            if members.is_empty() {
                return Err(ActorError::NoMembers);
            }
            let mut last = None;
            for turn in 0..members.len() {
                let Some(&node) = members.get(start.wrapping_add(turn) % members.len()) else {
                    continue;
                };
                let timeout = match (&time, deadline) {
                    (Some(time), Some(deadline)) => deadline.saturating_sub(time.now()),
                    _ => whole,
                };
                if timeout.is_zero() {
                    return Err(ActorError::Timeout { id });
                }
                let api = NodeApiClient::new(Endpoint::new(node, base));
                let reply = api
                    .call(&transport, id.clone(), method, body.clone())
                    .try_get_reply()
                    .timeout(timeout)
                    .await;
                match reply {
                    Ok(reply) => return Ok(reply),
                    Err(moonpool_transport::CallError::Service(error)) => return Err(error),
                    // Never sent: safe to try another member.
                    Err(moonpool_transport::CallError::Transport(
                        error @ ReplyError::ConnectionFailed { .. },
                    )) => last = Some((node, error.to_string())),
                    // Not served there (a node that stopped serving, or not yet): never run.
                    // The transport then refuses to send to that endpoint until it sees the
                    // node's next incarnation, which only a connection shows: a ping makes
                    // one (its endpoint is never marked; the ping is sent now, its answer not
                    // awaited).
                    Err(moonpool_transport::CallError::Transport(
                        error @ ReplyError::EndpointNotFound { .. },
                    )) => {
                        drop(transport.ping(node));
                        last = Some((node, error.to_string()));
                    }
                    Err(moonpool_transport::CallError::Transport(ReplyError::Timeout {
                        ..
                    })) => {
                        return Err(ActorError::Timeout { id });
                    }
                    Err(moonpool_transport::CallError::Transport(error)) => {
                        return Err(ActorError::Unreachable {
                            id,
                            node,
                            reason: error.to_string(),
                        });
                    }
                }
            }
            match last {
                Some((node, reason)) => Err(ActorError::Unreachable { id, node, reason }),
                None => Err(ActorError::NoMembers),
            }
        })
    }
}
