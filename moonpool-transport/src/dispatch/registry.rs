//! [`Registry`]: the endpoint table and the replies awaited of a transport, under one lock (the
//! core's), with the token counter and the spare waker of the calling side; resolving and
//! removing pending replies. Plain data: the core takes the lock and finishes what a resolution
//! leaves to do once it is released.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;

use moonpool_core::UID;

use super::pending::{PendingReply, Resolved};
use super::receiver::PacketReceiver;
use crate::endpoint_map::EndpointMap;
use crate::error::ReplyError;
use crate::ordered_map::OrderedMap;
use crate::peer::Peer;

/// The endpoint table and the replies awaited, under one lock.
pub(super) struct Registry {
    pub(super) endpoints: EndpointMap<Arc<dyn PacketReceiver>>,
    /// The replies awaited, and those resolved that their callers have not taken yet.
    pub(super) pending: OrderedMap<UID, PendingReply>,
    /// Entries of `pending` not resolved yet (what the bound, the metrics and the choice of a
    /// direct write count).
    waiting: usize,
    /// The low half of the next token handed out (see [`Core::fresh_token`](super::Core::fresh_token)): under the
    /// registry's lock, so a request takes its token and registers its reply in one
    /// acquisition, with no atomic counter of its own.
    token_counter: u64,
    /// The waker of the caller that took an outcome last, kept for the next remote request's
    /// entry (usually the same task calling again): see [`take_spare`](Self::take_spare).
    spare: Option<Waker>,
}

impl Registry {
    /// An empty registry over `endpoints`; tokens start at 1.
    pub(super) fn new(endpoints: EndpointMap<Arc<dyn PacketReceiver>>) -> Self {
        Self {
            endpoints,
            pending: OrderedMap::new(),
            waiting: 0,
            token_counter: 1,
            spare: None,
        }
    }

    /// The next token of the transport whose random high half is `base`.
    pub(super) fn take_token(&mut self, base: u64) -> UID {
        let token = UID::new(base, self.token_counter);
        self.token_counter = self.token_counter.wrapping_add(1);
        token
    }

    /// The next token of `base` free in both the endpoint map and the pending replies (one
    /// may have been registered by hand at a token of this transport's).
    pub(super) fn free_token(&mut self, base: u64) -> UID {
        loop {
            let token = self.take_token(base);
            if !self.endpoints.contains(&token) && !self.pending.contains_key(&token) {
                return token;
            }
        }
    }

    /// The spare waker, for a new entry: a guess at its caller's waker, which the caller checks
    /// at its first look without the lock ([`PendingRequest`](super::PendingRequest) keeps
    /// its identity). A wrong guess is replaced at that look; until then it can only cause a
    /// spurious wake.
    pub(super) fn take_spare(&mut self) -> Option<Waker> {
        self.spare.take()
    }

    /// Keeps `waker` (taken from an entry its caller removed) as the spare; gives back the
    /// spare it replaces, to be dropped once the lock is released (dropping a waker may drop a
    /// task, whose future may reach this registry).
    pub(super) fn keep_spare(&mut self, waker: Option<Waker>) -> Option<Waker> {
        match waker {
            Some(waker) => self.spare.replace(waker),
            None => None,
        }
    }

    /// Replies awaited and not resolved yet.
    pub(super) fn waiting(&self) -> usize {
        self.waiting
    }

    /// Registers a reply awaited at `token` (free: checked by the caller).
    pub(super) fn insert_pending(&mut self, token: UID, reply: PendingReply) {
        self.waiting += 1;
        if let Some(replaced) = self.pending.insert(token, reply)
            && !replaced.is_resolved()
        {
            self.waiting -= 1;
        }
    }

    /// Takes what `take` wants from the entry at `token` (in place), then removes the entry,
    /// resolved or not, without moving it.
    pub(super) fn remove_pending_with<R>(
        &mut self,
        token: &UID,
        take: impl FnOnce(&mut PendingReply) -> R,
    ) -> Option<R> {
        let (resolved, taken) = self
            .pending
            .take_in_place(token, |entry| (entry.is_resolved(), take(entry)))?;
        if !resolved {
            self.waiting -= 1;
        }
        Some(taken)
    }

    /// Removes the entry at `token`, resolved or not.
    pub(super) fn remove_pending(&mut self, token: &UID) -> Option<PendingReply> {
        let removed = self.pending.remove(token)?;
        if !removed.is_resolved() {
            self.waiting -= 1;
        }
        Some(removed)
    }

    /// Resolves the entry at `token`, if it waits, with a copy of `payload` that came in through
    /// `via`'s connection (see [`PendingReply::resolve_with`]); `None` when nothing waits there.
    /// `resolutions` is counted first (see [`Core::resolutions`](super::Core::resolutions)).
    pub(super) fn resolve_with(
        &mut self,
        token: &UID,
        payload: &[u8],
        via: Option<&Peer>,
        resolutions: &AtomicU64,
    ) -> Option<Resolved> {
        let entry = self.pending.get_mut(token)?;
        if entry.is_resolved() {
            return None;
        }
        count_resolution(resolutions);
        let resolved = entry.resolve_with(payload, via);
        self.waiting -= 1;
        Some(resolved)
    }

    /// Resolves every waiting entry for which `select` gives an error, in token order
    /// (`resolutions` counted first).
    pub(super) fn resolve_matching(
        &mut self,
        select: impl Fn(&PendingReply) -> Option<ReplyError>,
        resolutions: &AtomicU64,
    ) -> Vec<Resolved> {
        let mut resolved = Vec::new();
        for (_, entry) in self.pending.iter_mut() {
            if entry.is_resolved() {
                continue;
            }
            if let Some(error) = select(entry) {
                count_resolution(resolutions);
                resolved.push(entry.resolve(Err(error)));
            }
        }
        self.waiting -= resolved.len();
        resolved
    }
}

/// Counts a resolution (under the registry's lock, which every count holds: a load and a store,
/// no read-modify-write), before the resolution's wake.
fn count_resolution(resolutions: &AtomicU64) {
    let count = resolutions.load(Ordering::Relaxed);
    resolutions.store(count.wrapping_add(1), Ordering::Release);
}
