//! [`NetNotifiedQueue`]: a bounded, typed receive queue registered at an endpoint.
//!
//! Floor 4 (typed RPC), at its bottom: the queue under both message endpoints and request
//! streams. It knows the dispatch floor (it registers a `PacketReceiver` and unregisters on
//! drop) and codecs; it knows nothing of requests, replies or the transport façade.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Poll, Waker};

use moonpool_core::{Endpoint, MessageCodec, UID};
use serde::de::DeserializeOwned;

use crate::connection::{Origin, Receive};
use crate::dispatch::{PacketReceiver, TransportHandle};
use crate::spin::{SpinGuard, SpinLock};

struct QueueState<T> {
    items: VecDeque<T>,
    closed: bool,
    /// Tasks waiting in `pop` (usually one). All are woken on a push or a close, in the order
    /// they registered, so a waiter that was cancelled cannot swallow a wake-up.
    waiters: Vec<Waker>,
    /// The waker of the last lone waiter woken by a push, kept so that the same task waiting
    /// again registers it without cloning (a clone and a drop per request served otherwise).
    spare: Option<Waker>,
    /// Items accepted since registration (counted under the lock, which a push holds anyway).
    received: u64,
    /// Items refused because the queue was full or closed.
    refused: u64,
}

/// The shared part of a queue: items, bound, and the waiters' wakers.
pub(crate) struct QueueShared<T> {
    /// Short critical sections that never block (wakes only schedule): a spin lock, whose
    /// release is a plain store.
    state: SpinLock<QueueState<T>>,
    max: usize,
    malformed: AtomicU64,
}

impl<T> QueueShared<T> {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            state: SpinLock::new(QueueState {
                items: VecDeque::new(),
                closed: false,
                waiters: Vec::new(),
                spare: None,
                received: 0,
                refused: 0,
            }),
            max,
            malformed: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> SpinGuard<'_, QueueState<T>> {
        self.state.lock()
    }

    /// Appends `item`; gives it back when the queue is full or closed.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        let mut state = self.lock();
        if state.closed || state.items.len() >= self.max {
            state.refused += 1;
            return Err(item);
        }
        state.items.push_back(item);
        state.received += 1;
        match state.waiters.len() {
            0 => {}
            1 => {
                // The usual lone waiter: woken by reference (a waker only schedules its task,
                // it never runs it here), its waker kept for when it waits again.
                let waker = state.waiters.pop();
                if let Some(waker) = &waker {
                    waker.wake_by_ref();
                }
                let replaced = std::mem::replace(&mut state.spare, waker);
                // Dropped once the lock is released: dropping a waker may drop a task, whose
                // future may reach this queue.
                drop(state);
                drop(replaced);
            }
            _ => {
                let wakers = std::mem::take(&mut state.waiters);
                drop(state);
                for waker in wakers {
                    waker.wake();
                }
            }
        }
        Ok(())
    }

    pub(crate) fn note_malformed(&self) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn try_pop(&self) -> Option<T> {
        self.lock().items.pop_front()
    }

    /// The next item; `None` once the queue is closed and empty.
    pub(crate) async fn pop(&self) -> Option<T> {
        std::future::poll_fn(|cx| {
            let mut state = self.lock();
            if let Some(item) = state.items.pop_front() {
                return Poll::Ready(Some(item));
            }
            if state.closed {
                return Poll::Ready(None);
            }
            let mut stale = None;
            if !state.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                let waker = match state.spare.take() {
                    Some(spare) if spare.will_wake(cx.waker()) => spare,
                    other => {
                        stale = other;
                        cx.waker().clone()
                    }
                };
                state.waiters.push(waker);
            }
            // A spare of another task is dropped once the lock is released (see `push`).
            drop(state);
            drop(stale);
            Poll::Pending
        })
        .await
    }

    /// Closes the queue, dropping queued items (requests among them answer BrokenPromise).
    pub(crate) fn close(&self) {
        let (items, waiters, spare) = {
            let mut state = self.lock();
            state.closed = true;
            (
                std::mem::take(&mut state.items),
                std::mem::take(&mut state.waiters),
                state.spare.take(),
            )
        };
        drop(items);
        drop(spare);
        for waker in waiters {
            waker.wake();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub(crate) fn stats(&self) -> QueueStats {
        let state = self.lock();
        QueueStats {
            len: state.items.len(),
            max: self.max,
            received: state.received,
            refused: state.refused,
            malformed: self.malformed.load(Ordering::Relaxed),
        }
    }
}

/// Counters of one receive queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    /// Items queued now.
    pub len: usize,
    /// The bound (`receive_queue_max`).
    pub max: usize,
    /// Items accepted since registration.
    pub received: u64,
    /// Items refused because the queue was full (or closed).
    pub refused: u64,
    /// Packets that could not be decoded.
    pub malformed: u64,
}

/// A typed queue of messages sent to one endpoint with
/// [`send_reliable`](crate::NetTransport::send_reliable) or
/// [`send_unreliable`](crate::NetTransport::send_unreliable).
///
/// Bounded by `receive_queue_max`: messages arriving at a full queue are dropped and counted
/// ([`stats`](Self::stats)). Packets that do not decode as `T` are dropped and counted too.
/// Dropping the queue unregisters its endpoint.
pub struct NetNotifiedQueue<T> {
    shared: Arc<QueueShared<T>>,
    endpoint: Endpoint,
    transport: TransportHandle,
}

impl<T> std::fmt::Debug for NetNotifiedQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetNotifiedQueue")
            .field("endpoint", &self.endpoint)
            .field("stats", &self.shared.stats())
            .finish()
    }
}

impl<T> NetNotifiedQueue<T> {
    pub(crate) fn new(
        shared: Arc<QueueShared<T>>,
        endpoint: Endpoint,
        transport: TransportHandle,
    ) -> Self {
        Self {
            shared,
            endpoint,
            transport,
        }
    }

    /// Where senders send.
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// The next message; `None` once the transport shut down and the queue is empty.
    pub async fn recv(&self) -> Option<T> {
        self.shared.pop().await
    }

    /// The next message if one is queued.
    pub fn try_recv(&self) -> Option<T> {
        self.shared.try_pop()
    }

    /// Messages queued now.
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once the queue was closed (transport shut down).
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Counters and size.
    pub fn stats(&self) -> QueueStats {
        self.shared.stats()
    }

    /// Closes a queue whose registration failed, so that dropping it leaves alone whatever is
    /// registered at its token (the registration that made it fail).
    pub(crate) fn close_unregistered(&self) {
        self.shared.close();
    }
}

impl<T> Drop for NetNotifiedQueue<T> {
    fn drop(&mut self) {
        // A closed queue was already unregistered (by `Core::unregister`, or by the transport's
        // shutdown): its token may belong to a newer registration by now, which must stay.
        if !self.shared.is_closed() {
            self.transport.core().unregister(self.endpoint.token);
        }
        self.shared.close();
    }
}

/// Decodes packets as `T` into a queue.
pub(crate) struct MessageReceiver<T, C> {
    shared: Arc<QueueShared<T>>,
    codec: C,
    _types: PhantomData<fn() -> T>,
}

impl<T, C> MessageReceiver<T, C>
where
    T: DeserializeOwned + Send + 'static,
    C: MessageCodec,
{
    pub(crate) fn new(
        transport: TransportHandle,
        codec: C,
        endpoint: Endpoint,
        max: usize,
    ) -> (Self, NetNotifiedQueue<T>) {
        let shared = QueueShared::new(max);
        let receiver = Self {
            shared: Arc::clone(&shared),
            codec,
            _types: PhantomData,
        };
        (receiver, NetNotifiedQueue::new(shared, endpoint, transport))
    }
}

impl<T, C> Receive for MessageReceiver<T, C>
where
    T: DeserializeOwned + Send + 'static,
    C: MessageCodec,
{
    fn receive(&self, token: UID, payload: &[u8], _origin: &Origin) {
        match crate::json::decode::<C, T>(&self.codec, payload) {
            Ok(message) => {
                if self.shared.push(message).is_err() {
                    tracing::debug!(%token, "receive queue full; message dropped");
                }
            }
            Err(error) => {
                self.shared.note_malformed();
                tracing::debug!(%token, %error, "undecodable message dropped");
            }
        }
    }
}

impl<T, C> PacketReceiver for MessageReceiver<T, C>
where
    T: DeserializeOwned + Send + 'static,
    C: MessageCodec,
{
    fn close(&self) {
        self.shared.close();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::task::{Context, Wake};

    /// A waker whose last drop closes a queue (as a task's future owning a stream would when
    /// the task's last waker goes).
    struct ClosesOnDrop(Mutex<Option<Arc<QueueShared<u32>>>>);

    impl Wake for ClosesOnDrop {
        fn wake(self: Arc<Self>) {}
    }

    impl Drop for ClosesOnDrop {
        fn drop(&mut self) {
            if let Some(queue) = self.0.lock().unwrap().take() {
                queue.close();
            }
        }
    }

    fn poll_pop(queue: &QueueShared<u32>, waker: &Waker) -> Poll<Option<u32>> {
        let mut pop = std::pin::pin!(queue.pop());
        pop.as_mut().poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn test_queue_drops_a_stale_waker_after_releasing_its_lock() {
        // On a thread of its own: taking the lock again under it would spin forever.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let queue = QueueShared::<u32>::new(8);
            let closer = Waker::from(Arc::new(ClosesOnDrop(Mutex::new(Some(Arc::clone(&queue))))));
            assert!(poll_pop(&queue, &closer).is_pending());
            drop(closer); // the queue holds the last reference
            queue.push(1).unwrap(); // wakes it by reference and keeps it as the spare
            let other = Waker::noop();
            assert_eq!(poll_pop(&queue, other), Poll::Ready(Some(1)));
            // Another task waits: the spare is not its waker and is dropped, closing the queue.
            assert!(poll_pop(&queue, other).is_pending());
            assert!(queue.is_closed());
            assert_eq!(poll_pop(&queue, other), Poll::Ready(None));
            done.send(()).unwrap();
        });
        finished
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("a waker dropped under the queue's lock took that lock again");
    }
}
