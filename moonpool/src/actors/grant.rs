//! Floor 4, beside `host`: the time-bounded grant an activation processes under.
//!
//! The first confirmation and every renewal (a confirmation again, every quarter of the grant)
//! that the owner accepts lets the activation process until `sent + grant_duration` on its
//! host's clock, `sent` being when the request left. Every turn, `on_activate` and
//! `on_deactivate` run [`within`] the lease: the future is dropped when the lease runs out,
//! and the activation stops ([`stopped`]) without running anything more. The owner holds the
//! entry for the grant plus twice the drift bound after each renewal it answers (see
//! `fencing.rs`), so it never grants the identity again while this activation may process.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{Providers, TaskProvider, TimeProvider, UID, assert_sometimes};

use super::error::StateError;
use super::host::{Phase, SlotGuard, Watch, confirm, refuse, release};
use super::identity::ActorId;
use super::node::NodeInner;
use super::wire::{Entry, Refusal};

/// Until when (local clock) an activation may process.
#[derive(Debug)]
pub(crate) struct Lease {
    until: Mutex<Duration>,
    ended: AtomicBool,
}

impl Lease {
    pub(crate) fn new(until: Duration) -> Self {
        Self {
            until: Mutex::new(until),
            ended: AtomicBool::new(false),
        }
    }

    fn until(&self) -> Duration {
        *self
            .until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// True while the activation may process at local time `now`.
    pub(crate) fn holds(&self, now: Duration) -> bool {
        now < self.until()
    }

    /// What is left of the lease at local time `now`.
    pub(crate) fn remaining(&self, now: Duration) -> Duration {
        self.until().saturating_sub(now)
    }

    fn extend(&self, until: Duration) {
        let mut current = self
            .until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = (*current).max(until);
    }
}

/// Ends the renewal task when the activation ends.
pub(crate) struct Renewing(Arc<Lease>);

impl Drop for Renewing {
    fn drop(&mut self) {
        self.0.ended.store(true, Ordering::Release);
    }
}

/// Starts renewing `lease` with the identity's owner; renewal stops when the guard is dropped,
/// when the owner refuses, or when the lease has run out.
pub(crate) fn start_renewal<P: Providers>(
    node: &Arc<NodeInner<P>>,
    id: &ActorId,
    entry: Entry,
    activation: UID,
    lease: &Arc<Lease>,
) -> Renewing {
    let (node_task, id_task, lease_task) = (Arc::clone(node), id.clone(), Arc::clone(lease));
    let task = async move {
        let time = node_task.providers.time().clone();
        loop {
            time.sleep(node_task.cluster.renew_interval()).await;
            if lease_task.ended.load(Ordering::Acquire) || !lease_task.holds(node_task.timer()) {
                return;
            }
            let sent = node_task.timer();
            if confirm(&node_task, &id_task, entry, activation).await {
                let from = if node_task.cluster.planted_renewal() {
                    // The planted bug: counted from the answer, not from the request.
                    node_task.timer()
                } else {
                    sent
                };
                lease_task.extend(from.saturating_add(node_task.cluster.grant_duration));
            } else {
                assert_sometimes!(true, "a grant renewal fails");
            }
        }
    };
    drop(node.providers.task().spawn(&format!("renew {id}"), task));
    Renewing(Arc::clone(lease))
}

/// Runs `future` while `lease` holds: its output, or `None` when the lease ran out first (the
/// future is dropped then).
pub(crate) async fn within<P: Providers, F: Future + Send>(
    node: &NodeInner<P>,
    lease: &Lease,
    future: F,
) -> Option<F::Output> {
    let time = node.providers.time().clone();
    let mut future = pin!(future);
    loop {
        let left = lease.remaining(node.timer());
        if left.is_zero() {
            assert_sometimes!(true, "a turn is cut when its grant runs out");
            return None;
        }
        if let Ok(output) = time.timeout(left, future.as_mut()).await {
            return Some(output);
        }
    }
}

/// Raises the state store's fence to `grant` before the activation runs anything, so that no
/// write of an older activation is accepted from now on (even one that arrives late).
pub(crate) async fn fence_state<P: Providers>(
    node: &NodeInner<P>,
    id: &ActorId,
    grant: u64,
    lease: &Lease,
) -> Option<Result<(), StateError>> {
    let store = node.remote_state();
    within(node, lease, store.read(id.clone(), grant))
        .await
        .map(|read| read.map(|_| ()))
}

/// Ends an activation whose lease ran out: it has stopped processing; its waiting messages are
/// refused (the callers retry elsewhere), and its entry is released if the owner can be reached.
pub(crate) async fn stopped<P: Providers>(
    node: &NodeInner<P>,
    id: &ActorId,
    (entry, activation): (Entry, UID),
    watch: Watch,
    slot: SlotGuard<P>,
) {
    assert_sometimes!(true, "an activation stops when its grant runs out");
    node.host.set_phase(id, entry.grant, Phase::Deactivating);
    drop(watch);
    {
        let mut slots = node.host.slots();
        if let Some(slot) = slots.get_mut(id).filter(|slot| slot.grant == entry.grant) {
            for mail in slot.mailbox.drain(..) {
                refuse(mail, Refusal::Retry(format!("the grant of {id} ran out")));
            }
        }
    }
    release(node, id, entry, activation).await;
    drop(slot);
}
