//! A reply awaited: [`PendingReply`], the entry the core keeps per outstanding request, and
//! [`RequestMode`], how it is awaited. The entry is also where the reply lands: whoever answers
//! it (the reader of a connection, a local reply, a failure) stores the outcome in it and wakes
//! the caller, whose future takes the outcome and removes the entry (no channel per request).
//! Resolving an entry releases the request's reliable packet from its peer.

use std::task::Waker;

use moonpool_core::{Endpoint, NetworkAddress};

use crate::error::ReplyError;
use crate::peer::{Fate, PacketId, Peer};

/// How a request's reply is awaited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestMode {
    /// Sent unreliably; a connection failure resolves it.
    AtMostOnce,
    /// Sent reliably; resent after reconnections until answered or abandoned.
    AtLeastOnce,
}

/// What a reply awaited ends with: the reply's envelope, or why there is none.
pub(crate) type Outcome = Result<Vec<u8>, ReplyError>;

/// One reply awaited, by its reply token in the core's registry.
pub(super) struct PendingReply {
    pub(super) destination: Endpoint,
    pub(super) mode: RequestMode,
    /// What became of the request's packet, when somebody looks (at-most-once requests, and
    /// callers bounded by the failure monitor).
    pub(super) fate: Option<Fate>,
    /// The request's reliable packet, held by the peer of the destination's address; released
    /// when the entry is resolved or removed.
    packet: Option<PacketId>,
    /// The caller's waker, once its future waited, or the one guessed for it when the entry was
    /// made (see [`Registry::take_spare`](super::registry::Registry::take_spare)). Held until
    /// the caller removes the entry: resolving the entry wakes it by reference or wakes a clone.
    waker: Option<Waker>,
    /// Set once resolved; the caller's future takes it and removes the entry.
    outcome: Option<Outcome>,
}

/// What resolving an entry leaves to do once the registry's lock is released: release the
/// request's packet and wake its caller.
#[must_use = "the packet is released and the caller woken by `finish`"]
pub(super) struct Resolved {
    packet: Option<(NetworkAddress, PacketId)>,
    waker: Option<Waker>,
}

impl Resolved {
    /// Releases the packet with `cancel` (given the address whose peer holds it), then wakes
    /// the caller.
    pub(super) fn finish(self, cancel: impl FnOnce(NetworkAddress, PacketId)) {
        if let Some((address, id)) = self.packet {
            cancel(address, id);
        }
        if let Some(waker) = self.waker {
            waker.wake();
        }
    }
}

impl PendingReply {
    pub(super) fn new(
        destination: Endpoint,
        mode: RequestMode,
        fate: Option<Fate>,
        packet: Option<PacketId>,
        waker: Option<Waker>,
    ) -> Self {
        Self {
            destination,
            mode,
            fate,
            packet,
            waker,
            outcome: None,
        }
    }

    /// True once an outcome is stored (the entry only waits for its caller to take it).
    pub(super) fn is_resolved(&self) -> bool {
        self.outcome.is_some()
    }

    /// Stores `outcome`; the packet's release and the caller's wake are left to the returned
    /// [`Resolved`] (with a clone of the caller's waker: the entry keeps its own until the caller
    /// removes it, see [`take_waker`](Self::take_waker)).
    pub(super) fn resolve(&mut self, outcome: Outcome) -> Resolved {
        self.outcome = Some(outcome);
        Resolved {
            packet: self.packet.take().map(|id| (self.destination.address, id)),
            waker: self.waker.clone(),
        }
    }

    /// Stores a copy of `payload` (the reply's envelope) as the outcome. When the reply came in
    /// on a connection of `via`, the peer holding the request's packet (the usual case), the
    /// packet is released now (under the registry's lock: the peer's lock nests inside it, never
    /// the other way round) and its buffer, no longer needed, carries the copy, so a reply to a
    /// reliable request allocates nothing and looks no peer up; the caller is then woken at once,
    /// by reference (a waker only schedules its task), and its waker stays in the entry for the
    /// caller's next request. Otherwise the packet's release, then the wake, are left to the
    /// returned [`Resolved`].
    pub(super) fn resolve_with(&mut self, payload: &[u8], via: Option<&Peer>) -> Resolved {
        let address = self.destination.address;
        let (mut envelope, packet) = match (self.packet.take(), via) {
            (Some(id), Some(peer)) if peer.address() == address => {
                (peer.cancel_reuse(id).unwrap_or_default(), None)
            }
            (packet, _) => (Vec::new(), packet.map(|id| (address, id))),
        };
        envelope.clear();
        envelope.extend_from_slice(payload);
        self.outcome = Some(Ok(envelope));
        if packet.is_none() {
            if let Some(waker) = &self.waker {
                waker.wake_by_ref();
            }
            return Resolved {
                packet,
                waker: None,
            };
        }
        Resolved {
            packet,
            waker: self.waker.clone(),
        }
    }

    /// Remembers `waker` as the caller's (unless it is the one already held).
    pub(super) fn set_waker(&mut self, waker: &Waker) {
        if !self
            .waker
            .as_ref()
            .is_some_and(|held| held.will_wake(waker))
        {
            self.waker = Some(waker.clone());
        }
    }

    /// The outcome stored by [`resolve`](Self::resolve), taken.
    pub(super) fn take_outcome(&mut self) -> Option<Outcome> {
        self.outcome.take()
    }

    /// The waker held (the caller's, or the one guessed for it), taken.
    pub(super) fn take_waker(&mut self) -> Option<Waker> {
        self.waker.take()
    }

    /// The entry is dropped unresolved (its caller abandoned it): releases its packet and, when
    /// its caller had `polled` (so the waker is the one it left, not one guessed for it), wakes
    /// that waker once. That wake is spurious (the caller is dropping its future), but it is what
    /// the per-request channel this entry replaced did when its sender was dropped, and seeds
    /// replay it: without it the pinned fingerprints would move.
    pub(super) fn release(self, cancel: impl FnOnce(NetworkAddress, PacketId), polled: bool) {
        if let Some(id) = self.packet {
            cancel(self.destination.address, id);
        }
        if let Some(waker) = self.waker
            && polled
        {
            waker.wake();
        }
    }
}
