//! Floor 4: getting a message to its activation. The router resolves the identity (its cache,
//! else the owning directory partition, which creates the entry at the node the actor type's
//! placement proposes) and delivers. A node whose host does not host the entry's activation
//! forwards the message itself ([`Router::forward`]: it reports the stale entry to the owner and
//! routes on with the attempts left) and tells the caller the entry that answered; a router that
//! gets [`NotHere`](super::wire::Refusal::NotHere) does the same itself. At most `max_hops`
//! attempts in all, and every call ends with the reply or an [`ActorError`] (nothing is dropped
//! silently).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use moonpool_core::{
    Endpoint, NetworkAddress, Providers, RandomProvider, TimeProvider, assert_sometimes, buggify,
};
use moonpool_transport::{CallError, NetTransport, ReplyError};

use super::client::Caller;
use super::config::ActorConfig;
use super::error::ActorError;
use super::identity::ActorId;
use super::membership::ViewCell;
use super::placement::{Placement, PlacementContext, PlacementStrategy};
use super::wire::{Entry, Envelope, NodeApiClient, Refusal};

/// A node's router.
pub(crate) struct Router<P: Providers> {
    providers: P,
    transport: NetTransport,
    view: Arc<ViewCell>,
    local: Option<NetworkAddress>,
    config: ActorConfig,
    placements: BTreeMap<String, Arc<dyn PlacementStrategy>>,
    fallback: Placement,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    entries: BTreeMap<ActorId, Entry>,
    /// Entries invalidated, kept so that a buggified lookup can answer a stale one.
    invalidated: BTreeMap<ActorId, Entry>,
    /// Activations per node, from replies.
    loads: BTreeMap<NetworkAddress, usize>,
}

fn bounded_insert(map: &mut BTreeMap<ActorId, Entry>, id: ActorId, entry: Entry, capacity: usize) {
    if !map.contains_key(&id) && map.len() >= capacity {
        map.pop_first();
    }
    map.insert(id, entry);
}

impl<P: Providers> Router<P> {
    pub(crate) fn new(
        providers: P,
        transport: NetTransport,
        view: Arc<ViewCell>,
        local: Option<NetworkAddress>,
        config: ActorConfig,
        placements: BTreeMap<String, Arc<dyn PlacementStrategy>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            providers,
            transport,
            view,
            local,
            config,
            placements,
            fallback: Placement::Random,
            cache: Mutex::new(Cache::default()),
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn api(&self, node: NetworkAddress) -> NodeApiClient {
        NodeApiClient::new(Endpoint::new(node, self.config.service_base))
    }

    fn invalidate(&self, id: &ActorId, entry: Entry) {
        let capacity = self.config.cache_capacity;
        let mut cache = self.cache();
        if cache.entries.get(id) == Some(&entry) {
            cache.entries.remove(id);
        }
        bounded_insert(&mut cache.invalidated, id.clone(), entry, capacity);
    }

    /// A host forwarded a message sent by `stale` and reached `moved`: cache that instead.
    fn learn(&self, id: &ActorId, stale: Entry, moved: Entry) {
        assert_sometimes!(true, "a forwarded reply corrects the cache");
        let capacity = self.config.cache_capacity;
        let mut cache = self.cache();
        if cache.entries.get(id).is_none_or(|cached| *cached == stale) {
            bounded_insert(&mut cache.entries, id.clone(), moved, capacity);
        }
    }

    /// Where `id`'s activation is, asking the directory (and placing) when the cache does not
    /// know.
    async fn resolve(&self, id: &ActorId) -> Result<Entry, ActorError> {
        // Buggified: a lookup that answers an entry known to be stale.
        if buggify!()
            && let Some(old) = self.cache().invalidated.get(id).copied()
        {
            used_stale();
            return Ok(old);
        }
        let cached = self.cache().entries.get(id).copied();
        // Buggified: the cache lookup fails, so the directory is asked.
        if let Some(entry) = cached.filter(|_| !buggify!()) {
            assert_sometimes!(true, "directory cache hit");
            return Ok(entry);
        }
        let owner = self.view.current().owner(id)?;
        // Buggified: slow placement.
        if buggify!() {
            let delay = self.providers.random().random_range(1..200u64);
            self.providers
                .time()
                .sleep(Duration::from_millis(delay))
                .await;
        }
        let proposal = self.place(id)?;
        let registered = self
            .api(owner)
            .register(&self.transport, id.clone(), proposal)
            .try_get_reply()
            .timeout(self.config.directory_timeout)
            .await
            .map_err(|error| self.failure(id, owner, error))?;
        if registered.created {
            assert_sometimes!(true, "directory miss");
        } else {
            assert_sometimes!(true, "directory hit");
        }
        let capacity = self.config.cache_capacity;
        bounded_insert(
            &mut self.cache().entries,
            id.clone(),
            registered.entry,
            capacity,
        );
        Ok(registered.entry)
    }

    /// The proposal for a new activation of `id`: the member the type's placement chooses.
    fn place(&self, id: &ActorId) -> Result<NetworkAddress, ActorError> {
        let strategy: &dyn PlacementStrategy = match self.placements.get(&id.actor_type) {
            Some(strategy) => strategy.as_ref(),
            None => &self.fallback,
        };
        let random = self.providers.random().random::<u64>();
        let view = self.view.current();
        let node = {
            let cache = self.cache();
            let context = PlacementContext {
                view: &view,
                local: self.local,
                loads: &cache.loads,
                random,
            };
            strategy.place(id, &context)
        };
        let node = node.ok_or_else(|| ActorError::Placement {
            id: id.clone(),
            reason: format!(
                "the strategy of `{}` chose no member of {:?}",
                id.actor_type,
                view.members()
            ),
        })?;
        if !view.contains(node) {
            return Err(ActorError::Placement {
                id: id.clone(),
                reason: format!("the strategy chose {node}, which is not a member"),
            });
        }
        Ok(node)
    }

    fn failure<E: Into<ActorError>>(
        &self,
        id: &ActorId,
        node: NetworkAddress,
        error: CallError<E>,
    ) -> ActorError {
        match error {
            CallError::Service(error) => error.into(),
            CallError::Transport(ReplyError::Timeout { .. }) => {
                ActorError::Timeout { id: id.clone() }
            }
            CallError::Transport(error) => ActorError::Unreachable {
                id: id.clone(),
                node,
                reason: error.to_string(),
            },
        }
    }

    /// Routes one call.
    pub(crate) async fn route(
        &self,
        id: ActorId,
        method: u32,
        body: String,
    ) -> Result<String, ActorError> {
        self.route_from(id, method, body, 0)
            .await
            .map(|(body, _)| body)
    }

    /// Forwards a message this node's host refused (`NotHere`: it was not run) after `hops`
    /// attempts: the stale `entry` is reported, then the message is routed with the attempts
    /// left. The reply, and the entry that answered it (for the caller's cache).
    pub(crate) async fn forward(&self, envelope: Envelope) -> Result<(String, Entry), ActorError> {
        let Envelope {
            id,
            entry,
            method,
            body,
            hops,
            ..
        } = envelope;
        self.invalidate(&id, entry);
        // Whatever this node had cached for the identity is no better: ask the owner.
        self.cache().entries.remove(&id);
        // Best effort: the owner revokes the stale entry (or finds it gone already).
        let _ = self.report_stale(&id, entry).await;
        self.route_from(id, method, body, hops.saturating_add(1))
            .await
    }

    /// Routes one call that has already taken `hops` attempts: at most `max_hops` in all.
    async fn route_from(
        &self,
        id: ActorId,
        method: u32,
        body: String,
        hops: u32,
    ) -> Result<(String, Entry), ActorError> {
        let mut last = String::from("no attempt");
        // A forwarded message comes from a stale entry.
        let mut corrected = hops > 0;
        if hops >= self.config.max_hops {
            last = format!("{hops} attempts already made before this node");
        }
        for hop in hops..self.config.max_hops {
            let entry = match self.resolve(&id).await {
                Ok(entry) => entry,
                Err(ActorError::Unavailable { reason, .. }) => {
                    self.wait_for_owner(hop).await;
                    last = reason;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let envelope = Envelope {
                id: id.clone(),
                entry,
                method,
                body: body.clone(),
                caller: self.local,
                hops: hop,
            };
            let node = entry.node;
            let delivered = self
                .api(node)
                .deliver(&self.transport, envelope)
                .try_get_reply()
                .timeout(self.config.call_timeout)
                .await;
            match delivered {
                Ok(delivered) => {
                    if Some(node) != self.local {
                        assert_sometimes!(true, "remote forward");
                        if corrected {
                            assert_sometimes!(
                                true,
                                "forwarded to a new location after a stale entry"
                            );
                        }
                    }
                    self.cache().loads.insert(node, delivered.load);
                    let reached = match delivered.moved {
                        Some(moved) => {
                            self.learn(&id, entry, moved);
                            moved
                        }
                        None => entry,
                    };
                    return Ok((delivered.body, reached));
                }
                Err(CallError::Service(Refusal::NotHere)) => {
                    // Nodes forward what their host refuses; a node that does not (an older
                    // one) still gets the entry corrected here.
                    refused_as_stale();
                    self.invalidate(&id, entry);
                    self.report_stale(&id, entry).await?;
                    corrected = true;
                    last = format!("{node} does not host grant {}", entry.grant);
                }
                Err(CallError::Service(Refusal::Retry(reason))) => {
                    self.invalidate(&id, entry);
                    let pause = self.config.retry_backoff.saturating_mul(hop + 1);
                    self.providers.time().sleep(pause).await;
                    last = reason;
                }
                Err(CallError::Service(Refusal::Failed(error))) => return Err(error),
                Err(CallError::Transport(error)) => {
                    self.invalidate(&id, entry);
                    return Err(self.failure::<ActorError>(&id, node, CallError::Transport(error)));
                }
            }
        }
        Err(ActorError::TooManyHops {
            id,
            hops: self.config.max_hops,
            last,
        })
    }

    /// The owner is between views or quiet: wait before asking again. (Its own function, so
    /// that a run with a fixed membership, where it never happens, has it out of scope.)
    async fn wait_for_owner(&self, hop: u32) {
        assert_sometimes!(true, "a call waits for an unavailable owner");
        let pause = self.config.retry_backoff.saturating_mul(hop + 1);
        self.providers.time().sleep(pause).await;
    }

    /// Tells the owner that `entry` is stale (it revokes it at the host and removes it).
    async fn report_stale(&self, id: &ActorId, entry: Entry) -> Result<(), ActorError> {
        let owner = self.view.current().owner(id)?;
        self.api(owner)
            .stale(&self.transport, id.clone(), entry)
            .try_get_reply()
            .timeout(self.config.directory_timeout)
            .await
            .map_err(|error| self.failure(id, owner, error))
    }
}

/// Its own function, so that a run whose buggified lookups never found an invalidated entry has
/// it out of its coverage scope.
fn used_stale() {
    assert_sometimes!(true, "stale directory entry used");
}

/// Its own function: with host-side forwarding no node answers `NotHere` to a router, so this
/// stays out of a run's coverage scope unless it happens.
fn refused_as_stale() {
    assert_sometimes!(true, "stale entry refused by its node");
}

/// A router as a [`Caller`] (the calls' futures own a handle on it).
pub(crate) struct RouterCaller<P: Providers>(pub(crate) Arc<Router<P>>);

impl<P: Providers> Caller for RouterCaller<P> {
    fn call(
        &self,
        id: ActorId,
        method: u32,
        body: String,
    ) -> BoxFuture<'static, Result<String, ActorError>> {
        let router = Arc::clone(&self.0);
        Box::pin(async move { router.route(id, method, body).await })
    }
}
