//! Annotations: what a layer above the providers (the transport) tells a trace about the bytes
//! it sends and receives, so that a simulator's trace can name messages by endpoint and method.
//!
//! The simulator sees bytes only. A transport calls [`frame_sent`] when it builds a packet,
//! [`frame_received`] when it decodes one, [`frame_corrupt`] when a checksum does not match,
//! [`request`] when a request carries a reply token, [`handling`] when the task that runs a
//! method takes a request, [`reply_taken`] when the caller's task takes a request's outcome, and
//! [`name_endpoint`] when it registers an endpoint under a name. A simulator that records a trace installs an [`Annotator`] on its
//! thread for the run ([`install`]); everywhere else (production, a simulation without a trace)
//! every call returns after one relaxed atomic load, and a name is never even formatted.
//!
//! ```
//! use moonpool_core::UID;
//! use moonpool_core::annotate::{self, Annotator, FrameNote};
//!
//! #[derive(Default)]
//! struct Count(std::sync::Arc<std::sync::atomic::AtomicUsize>);
//! impl Annotator for Count {
//!     fn endpoint(&mut self, _token: UID, _name: &str) {}
//!     fn frame(&mut self, _note: FrameNote) {
//!         self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!     }
//!     fn request(&mut self, _token: UID, _reply_to: UID) {}
//! }
//!
//! annotate::frame_sent(UID::new(1, 2), 0xabcd, 40); // no annotator: nothing happens
//! let count = Count::default();
//! let seen = count.0.clone();
//! let guard = annotate::install(Box::new(count));
//! annotate::frame_sent(UID::new(1, 2), 0xabcd, 40);
//! drop(guard);
//! annotate::frame_sent(UID::new(1, 2), 0xabcd, 40);
//! assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 1);
//! ```

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::UID;

/// What happened to one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameDirection {
    /// Built to be sent.
    Sent,
    /// Decoded intact.
    Received,
    /// Dropped on receipt: the checksum did not match (`checksum` is the one in the header).
    Corrupt,
}

/// One packet, as a transport describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameNote {
    /// Sent, received or corrupt.
    pub direction: FrameDirection,
    /// The destination token (for a corrupt packet: the unverified token read).
    pub token: UID,
    /// The packet's checksum as written by its sender: with the token and length, it names one
    /// packet on both sides.
    pub checksum: u32,
    /// The packet's length, header included.
    pub len: usize,
}

/// Receives the annotations of one thread.
pub trait Annotator {
    /// `token` is an endpoint named `name` (for RPC: `Interface::method`).
    fn endpoint(&mut self, token: UID, name: &str);
    /// A packet was built, decoded or found corrupt.
    fn frame(&mut self, note: FrameNote);
    /// The request being built for `token` wants its reply at `reply_to`.
    fn request(&mut self, token: UID, reply_to: UID);
    /// The task serving `token` took the request whose reply goes to `reply_to` (the task that
    /// runs the method is being polled). Ignored unless overridden.
    fn handling(&mut self, token: UID, reply_to: UID) {
        let _ = (token, reply_to);
    }
    /// The caller's task took the outcome of the request whose reply token is `reply_to`:
    /// `replied` when a reply arrived (an answer or an error sent by the server), false for a
    /// failure of the transport. Ignored unless overridden.
    fn reply_taken(&mut self, reply_to: UID, replied: bool) {
        let _ = (reply_to, replied);
    }
}

/// Annotators installed on any thread; zero keeps every call to one atomic load.
static INSTALLED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static ANNOTATOR: RefCell<Option<Box<dyn Annotator>>> = const { RefCell::new(None) };
}

/// Removes the annotator (restoring the one before, usually none) when dropped.
#[must_use = "the annotator is removed when the guard is dropped"]
pub struct AnnotatorGuard {
    previous: Option<Box<dyn Annotator>>,
}

impl std::fmt::Debug for AnnotatorGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnotatorGuard").finish_non_exhaustive()
    }
}

impl Drop for AnnotatorGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = ANNOTATOR.try_with(|slot| {
            if let Ok(mut slot) = slot.try_borrow_mut() {
                *slot = previous;
            }
        });
        INSTALLED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Installs `annotator` for this thread until the guard is dropped.
pub fn install(annotator: Box<dyn Annotator>) -> AnnotatorGuard {
    INSTALLED.fetch_add(1, Ordering::Relaxed);
    let previous = ANNOTATOR.with(|slot| slot.borrow_mut().replace(annotator));
    AnnotatorGuard { previous }
}

/// True when an annotator may be installed on this thread (one relaxed atomic load): lets a
/// caller skip work that only an annotation needs.
#[inline]
pub fn active() -> bool {
    INSTALLED.load(Ordering::Relaxed) != 0
}

#[inline]
fn with_annotator(f: impl FnOnce(&mut dyn Annotator)) {
    if INSTALLED.load(Ordering::Relaxed) == 0 {
        return;
    }
    with_installed(f);
}

#[inline(never)]
fn with_installed(f: impl FnOnce(&mut dyn Annotator)) {
    let _ = ANNOTATOR.try_with(|slot| {
        // A re-entrant call (an annotation from inside an annotator) is ignored.
        if let Ok(mut slot) = slot.try_borrow_mut()
            && let Some(annotator) = slot.as_mut()
        {
            f(annotator.as_mut());
        }
    });
}

/// `token` is an endpoint named by `name()` (called only when an annotator is installed).
#[inline]
pub fn name_endpoint(token: UID, name: impl FnOnce() -> String) {
    with_annotator(|a| a.endpoint(token, &name()));
}

/// A packet for `token` with `checksum`, `len` bytes long (header included), was built.
#[inline]
pub fn frame_sent(token: UID, checksum: u32, len: usize) {
    with_annotator(|a| {
        a.frame(FrameNote {
            direction: FrameDirection::Sent,
            token,
            checksum,
            len,
        });
    });
}

/// A packet for `token` with `checksum`, `len` bytes long, was decoded intact.
#[inline]
pub fn frame_received(token: UID, checksum: u32, len: usize) {
    with_annotator(|a| {
        a.frame(FrameNote {
            direction: FrameDirection::Received,
            token,
            checksum,
            len,
        });
    });
}

/// A packet whose header names `token` and `checksum` failed its checksum and was dropped.
#[inline]
pub fn frame_corrupt(token: UID, checksum: u32, len: usize) {
    with_annotator(|a| {
        a.frame(FrameNote {
            direction: FrameDirection::Corrupt,
            token,
            checksum,
            len,
        });
    });
}

/// The request being built for `token` wants its reply at `reply_to`.
#[inline]
pub fn request(token: UID, reply_to: UID) {
    with_annotator(|a| a.request(token, reply_to));
}

/// The task serving `token` took the request whose reply goes to `reply_to`.
#[inline]
pub fn handling(token: UID, reply_to: UID) {
    with_annotator(|a| a.handling(token, reply_to));
}

/// The caller's task took the outcome of the request whose reply token is `reply_to`
/// (`replied`: a reply arrived, rather than a transport failure).
#[inline]
pub fn reply_taken(reply_to: UID, replied: bool) {
    with_annotator(|a| a.reply_taken(reply_to, replied));
}
