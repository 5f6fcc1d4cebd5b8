//! Requests: [`Core::start_request`] registers the reply awaited and sends the request (locally,
//! or through the destination's peer, written at once when nothing else is in flight); a
//! [`PendingRequest`] is what the caller holds, and dropping it abandons the request. Failed
//! connections resolve the at-most-once requests they carried
//! ([`Core::resolve_try_requests`]).

use std::cell::Cell;
use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use moonpool_core::{CodecError, Endpoint, NetworkAddress, UID};

use super::core::Core;
use super::handle::TransportHandle;
use super::pending::{PendingReply, RequestMode};
use crate::connection::Origin;
use crate::error::{ReplyError, TransportError};
use crate::peer::{Fate, Flush, Peer};
use crate::protocol;
use crate::wire::{FrameBuilder, HEADER_SIZE};

/// Payload bytes reserved up front for a request (reply token and a small body): most requests
/// are encoded without growing their buffer.
const REQUEST_CAPACITY: usize = 112;

/// The largest buffer kept for the next request (a larger reply's buffer is freed).
const SPARE_BUFFER_MAX: usize = 4096;

thread_local! {
    /// The buffer of the last reply decoded on this thread, for the next request's packet: a
    /// caller's sequential requests reuse one buffer instead of an allocation and a free each.
    /// Only its capacity carries over (it is emptied first), so what a seed does is the same.
    static SPARE_BUFFER: Cell<Option<Vec<u8>>> = const { Cell::new(None) };
}

/// Keeps `buffer` (a reply's envelope, decoded) for this thread's next request, if it is not
/// too large.
pub(crate) fn recycle_buffer(buffer: Vec<u8>) {
    if buffer.capacity() <= SPARE_BUFFER_MAX {
        // During the thread's teardown the buffer is simply dropped.
        let _ = SPARE_BUFFER.try_with(|spare| spare.set(Some(buffer)));
    }
}

fn spare_buffer() -> Option<Vec<u8>> {
    SPARE_BUFFER.try_with(Cell::take).ok().flatten()
}

/// A request registered and queued; dropping it abandons the request (its reply endpoint is
/// removed and its reliable packet released).
pub(crate) struct PendingRequest {
    pub(crate) token: UID,
    /// Set once the reply (or error) was taken: the entry is already gone.
    pub(crate) settled: bool,
    /// Set at the first look at the outcome.
    polled: bool,
    /// The waker the entry was made with (the registry's spare, a guess at this caller's), and
    /// the registry's count of resolutions then: see [`poll_outcome`](Self::poll_outcome).
    guess: Option<WakerId>,
    resolutions: u64,
    pub(crate) fate: Option<Fate>,
    /// The transport: a share of its lifetime (the caller's transport stays up while it waits),
    /// and its core.
    pub(crate) handle: TransportHandle,
}

/// What a request's future takes once its request is resolved: the reply's envelope and the
/// endpoint it came from, or why there is none.
pub(crate) type Taken = Result<(Vec<u8>, Endpoint), ReplyError>;

/// What [`Waker::will_wake`] compares: a waker's data pointer and vtable, as addresses (only
/// compared, never turned back into pointers).
#[derive(Clone, Copy, PartialEq, Eq)]
struct WakerId(usize, NonZeroUsize);

impl WakerId {
    /// `None` only if the vtable's address were zero, which a reference's never is.
    fn of(waker: &Waker) -> Option<Self> {
        let vtable = NonZeroUsize::new(std::ptr::from_ref(waker.vtable()) as usize)?;
        Some(WakerId(waker.data() as usize, vtable))
    }
}

impl PendingRequest {
    /// The outcome once the request is resolved (the entry is then removed and the request
    /// settled); until then the caller's waker is kept in the entry. `TransportClosed` when the
    /// entry is gone (polled again after the outcome was taken).
    ///
    /// The first look skips the registry's lock when the entry was made with a waker that
    /// wakes this caller (`will_wake`'s comparison) and nothing was resolved since (the
    /// registry's count of resolutions, stored under its lock before any wake, is unchanged):
    /// the entry is then unresolved, or resolved by somebody whose wake of that waker has not
    /// happened before this poll, so it will poll the caller again. The identity is sound
    /// because the entry holds that waker, alive, until this request removes the entry
    /// (resolving never takes it), so no other waker can have its address.
    pub(crate) fn poll_outcome(&mut self, cx: &mut Context<'_>) -> Poll<Taken> {
        if self.settled {
            return Poll::Ready(Err(ReplyError::TransportClosed));
        }
        let core = self.handle.core();
        if !std::mem::replace(&mut self.polled, true)
            && let Some(guess) = self.guess
            && Some(guess) == WakerId::of(cx.waker())
            && core.resolutions() == self.resolutions
        {
            return Poll::Pending;
        }
        let mut registry = core.registry();
        let Some(entry) = registry.pending.get_mut(&self.token) else {
            self.settled = true;
            return Poll::Ready(Err(ReplyError::TransportClosed));
        };
        if !entry.is_resolved() {
            entry.set_waker(cx.waker());
            return Poll::Pending;
        }
        let (outcome, waker) = registry
            .remove_pending_with(&self.token, |entry| {
                let from = entry.destination;
                let outcome = entry
                    .take_outcome()
                    .map(|outcome| outcome.map(|envelope| (envelope, from)));
                (outcome, entry.take_waker())
            })
            .unwrap_or((None, None));
        // The caller's waker stays for its next request (the entry it replaces is dropped
        // once the lock is released).
        let replaced = registry.keep_spare(waker);
        drop(registry);
        drop(replaced);
        self.settled = true;
        Poll::Ready(outcome.unwrap_or(Err(ReplyError::TransportClosed)))
    }
}

impl Drop for PendingRequest {
    fn drop(&mut self) {
        if !self.settled {
            self.handle.core().abandon(self.token, self.polled);
        }
    }
}

impl Core {
    /// Registers a reply endpoint and sends a request to `destination`; `handle` is this core's
    /// handle, which the request holds while it waits.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_request(
        &self,
        handle: &TransportHandle,
        destination: Endpoint,
        body: &mut dyn FnMut(&mut Vec<u8>) -> Result<(), CodecError>,
        mode: RequestMode,
        track_fate: bool,
        peer_cache: &OnceLock<Arc<Peer>>,
    ) -> Result<PendingRequest, ReplyError> {
        debug_assert!(std::ptr::eq(self, &**handle.core()));
        if self.is_shut_down() {
            return Err(ReplyError::TransportClosed);
        }
        if self.failure_monitor.is_endpoint_failed(&destination) {
            return Err(ReplyError::EndpointNotFound {
                endpoint: destination,
            });
        }
        // The body is encoded straight into the packet, after the reply token, which is taken
        // below under the registry's lock and filled in then (zeros until then).
        let mut builder = match spare_buffer() {
            Some(buffer) => FrameBuilder::with_buffer(destination.token, buffer),
            None => FrameBuilder::with_capacity(destination.token, REQUEST_CAPACITY),
        };
        protocol::write_uid(builder.buffer(), UID::new(0, 0));
        body(builder.buffer()).map_err(|error| ReplyError::Serialization {
            message: error.to_string(),
        })?;
        builder
            .check_size(self.config.max_packet_size)
            .map_err(|error| ReplyError::from(TransportError::from(error)))?;
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
        let reserved = match (peer, mode) {
            (Some(peer), RequestMode::AtLeastOnce) => Some(peer.reserve_id()),
            _ => None,
        };
        // One acquisition of the registry: the bound, the token (skipping any registered by
        // hand) and the entry.
        let (token, flush, guess, resolutions) = {
            let mut registry = self.registry();
            if registry.waiting() >= self.config.pending_replies_max {
                return Err(ReplyError::BoundExceeded {
                    bound: "pending_replies_max",
                    limit: self.config.pending_replies_max,
                });
            }
            let token = registry.free_token(self.token_base());
            // A remote request's entry starts with the spare waker (see `poll_outcome`); a local
            // one may be resolved before its caller looks, so it starts with none.
            let spare = if local { None } else { registry.take_spare() };
            let guess = spare.as_ref().and_then(WakerId::of);
            registry.insert_pending(
                token,
                PendingReply::new(destination, mode, fate.clone(), reserved, spare),
            );
            // A caller with nothing else in flight gets its request written at once; callers
            // with many requests in flight get them batched by the connection's task.
            let flush = if registry.waiting() == 1 {
                Flush::Now
            } else {
                Flush::Batched
            };
            (token, flush, guess, self.resolutions())
        };
        let pending = PendingRequest {
            token,
            settled: false,
            polled: false,
            guess,
            resolutions,
            fate: fate.clone(),
            handle: handle.clone(),
        };
        builder.set_leading_uid(token);
        moonpool_core::annotate::request(destination.token, token);
        let frame = builder
            .finish(self.config.max_packet_size)
            .map_err(|error| ReplyError::from(TransportError::from(error)))?;
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

    /// Removes a pending reply nobody waits for, releasing its packet (its caller had `polled`
    /// it, or not).
    pub(super) fn abandon(&self, token: UID, polled: bool) {
        let removed = self.registry().remove_pending(&token);
        if let Some(pending) = removed {
            pending.release(|address, id| self.cancel_packet(address, id), polled);
        }
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
}
