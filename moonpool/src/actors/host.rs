//! Floor 4: the activations a node hosts. One slot per identity holds the activation's grant,
//! its phase, its mailbox and the count of its re-entrant calls running; one task per activation
//! takes messages from the mailbox in arrival order, so different identities run concurrently.
//!
//! Within an activation the turn discipline is readers-writer, first come first served: a
//! `&mut self` message (a turn, the default) starts only when no call is running and runs alone
//! to completion; a `#[reentrant]` (`&self`) message starts as soon as it is at the head of the
//! mailbox and no turn is running, so re-entrant calls interleave with each other at their
//! `.await`s. A turn at the head of the mailbox waits for the running re-entrant calls to finish,
//! and the messages behind it wait for it. The borrow checker holds the activation to this: the
//! re-entrant calls' futures borrow the actor shared (all polled by the activation's one task),
//! and they are all finished before a turn borrows it exclusively. That loop is `host/turns.rs`.
//!
//! An activation starts only after the identity's directory partition confirms that the entry
//! naming this node and the grant is current (the confirmation records the activation's fresh
//! id, which its release names); it ends when idle for
//! `idle_timeout`, when its node drains, when `on_activate` fails, or when a handler panics. Its
//! slot exists from the first message until the end (so a revocation in between is refused), and
//! the observer hears of it from confirmation to the end (also when the task is dropped, as in a
//! crash).

use std::collections::{BTreeMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use moonpool_core::{NetworkAddress, Providers, TaskProvider, TimeProvider, UID, assert_sometimes};
use tokio::sync::{Notify, oneshot};

use super::actor::{ActivationObserver, ActorContext, ErasedActor};
use super::error::ActorError;
use super::identity::ActorId;
use super::node::NodeInner;
use super::wire::{Delivered, Entry, Envelope, Refusal, Revocation};

mod timer_task;
mod turns;

use turns::{Ended, Site};

type Reply = oneshot::Sender<Result<Delivered, Refusal>>;

pub(crate) struct Mail {
    method: u32,
    body: String,
    reply: Reply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for the directory's confirmation and `on_activate`.
    Activating,
    /// Running messages.
    Active,
    /// Finishing: takes no new message.
    Deactivating,
}

pub(crate) struct Slot {
    pub(crate) grant: u64,
    phase: Phase,
    pub(crate) mailbox: VecDeque<Mail>,
    /// Re-entrant calls taken from the mailbox and not finished (they count against
    /// `mailbox_capacity` with the mailbox).
    running: usize,
    wake: Arc<Notify>,
}

/// The slots of one node.
pub(crate) struct Host {
    slots: Mutex<BTreeMap<ActorId, Slot>>,
    draining: AtomicBool,
    drained: Notify,
}

pub(crate) fn refuse(mail: Mail, refusal: Refusal) {
    let _ = mail.reply.send(Err(refusal));
}

impl Host {
    pub(crate) fn new() -> Self {
        Self {
            slots: Mutex::new(BTreeMap::new()),
            draining: AtomicBool::new(false),
            drained: Notify::new(),
        }
    }

    pub(crate) fn slots(&self) -> std::sync::MutexGuard<'_, BTreeMap<ActorId, Slot>> {
        // A poisoned lock means a panic while holding it, which no code path here allows; the
        // map is still consistent (every change is a single insert or remove).
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Slots held now.
    pub(crate) fn len(&self) -> usize {
        self.slots().len()
    }

    /// A host's answer to the directory's revocation of `entry`.
    pub(crate) fn revoke(&self, me: NetworkAddress, id: &ActorId, entry: &Entry) -> Revocation {
        if entry.node != me {
            return Revocation::Revoked;
        }
        match self.slots().get(id) {
            Some(slot) if slot.grant == entry.grant => Revocation::Active,
            _ => Revocation::Revoked,
        }
    }

    /// Runs `envelope` on its activation here, activating it if needed.
    pub(crate) async fn deliver<P: Providers>(
        node: &Arc<NodeInner<P>>,
        envelope: Envelope,
    ) -> Result<Delivered, Refusal> {
        let Envelope {
            id,
            entry,
            method,
            body,
            caller,
            ..
        } = envelope;
        if entry.node != node.me {
            return Err(Refusal::NotHere);
        }
        let host = &node.host;
        if host.draining.load(Ordering::Acquire) {
            return Err(Refusal::Retry(format!("{} is draining", node.me)));
        }
        let (tx, rx) = oneshot::channel();
        let mail = Mail {
            method,
            body,
            reply: tx,
        };
        let spawn = {
            let mut slots = host.slots();
            let count = slots.len();
            match slots.get_mut(&id) {
                Some(slot) if slot.grant == entry.grant => {
                    if slot.phase == Phase::Deactivating {
                        return Err(Refusal::Retry(format!("{id} is deactivating")));
                    }
                    if slot.mailbox.len() + slot.running >= node.config.mailbox_capacity {
                        return Err(Refusal::Failed(ActorError::MailboxFull {
                            id,
                            capacity: node.config.mailbox_capacity,
                        }));
                    }
                    slot.mailbox.push_back(mail);
                    slot.wake.notify_one();
                    None
                }
                Some(slot) if slot.grant > entry.grant => return Err(Refusal::NotHere),
                Some(_) => {
                    return Err(Refusal::Retry(format!(
                        "an older activation of {id} is finishing here"
                    )));
                }
                None => {
                    let Some(make) = node.factories.get(&id.actor_type) else {
                        return Err(Refusal::Failed(ActorError::UnknownActorType {
                            actor_type: id.actor_type.clone(),
                            node: node.me,
                        }));
                    };
                    if count >= node.config.max_activations {
                        return Err(Refusal::Failed(ActorError::TooManyActivations {
                            id,
                            node: node.me,
                            limit: node.config.max_activations,
                        }));
                    }
                    let wake = Arc::new(Notify::new());
                    let mut mailbox = VecDeque::new();
                    mailbox.push_back(mail);
                    slots.insert(
                        id.clone(),
                        Slot {
                            grant: entry.grant,
                            phase: Phase::Activating,
                            mailbox,
                            running: 0,
                            wake: Arc::clone(&wake),
                        },
                    );
                    Some((Arc::clone(make), wake))
                }
            }
        };
        if let Some((make, wake)) = spawn {
            if caller == Some(node.me) {
                assert_sometimes!(true, "local activation");
            }
            let task_node = Arc::clone(node);
            let name = format!("actor {id}");
            let task = run_activation(task_node, id, entry, make, wake);
            drop(node.providers.task().spawn(&name, task));
        }
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(Refusal::Retry("the activation ended".into())),
        }
    }

    /// Drains every activation; the count still running after `drain_timeout`.
    pub(crate) async fn drain<P: Providers>(node: &Arc<NodeInner<P>>) -> usize {
        let host = &node.host;
        host.draining.store(true, Ordering::Release);
        for slot in host.slots().values() {
            slot.wake.notify_one();
        }
        let time = node.providers.time().clone();
        let wait = async {
            loop {
                let drained = host.drained.notified();
                if host.len() == 0 {
                    return;
                }
                drained.await;
            }
        };
        let _ = time.timeout(node.config.drain_timeout, wait).await;
        host.len()
    }

    /// Takes the next message that may start, or decides to deactivate (atomically with the
    /// mailbox being empty and no call running, so no message is accepted and then dropped).
    /// A re-entrant message at the head starts whenever it is taken (the caller runs no turn
    /// meanwhile); a `&mut self` message at the head starts only with no re-entrant call
    /// running, and until then nothing behind it starts either.
    fn next(
        &self,
        id: &ActorId,
        grant: u64,
        finish: bool,
        reentrant: impl Fn(u32) -> bool,
    ) -> Next {
        let finish = finish || self.draining.load(Ordering::Acquire);
        let (next, site) = match self.slots().get_mut(id).filter(|slot| slot.grant == grant) {
            Some(slot) => turns::take(slot, finish, reentrant),
            None => (Next::Gone, None),
        };
        // The coverage sites, outside the lock.
        match site {
            Some(Site::Interleaving(running)) => turns::interleaving(running),
            Some(Site::TurnWaits) => turns::turn_waits(),
            None => {}
        }
        next
    }

    /// A re-entrant call of the activation with `grant` finished.
    fn finished(&self, id: &ActorId, grant: u64) {
        if let Some(slot) = self.slots().get_mut(id).filter(|slot| slot.grant == grant) {
            slot.running = slot.running.saturating_sub(1);
        }
    }

    /// Removes the slot, refusing what is left in it.
    fn remove(&self, id: &ActorId, grant: u64, refusal: &Refusal) {
        let removed = {
            let mut slots = self.slots();
            match slots.get(id) {
                Some(slot) if slot.grant == grant => slots.remove(id),
                _ => None,
            }
        };
        if let Some(slot) = removed {
            for mail in slot.mailbox {
                refuse(mail, refusal.clone());
            }
        }
        if self.len() == 0 {
            self.drained.notify_waiters();
        }
    }

    /// Puts a timer's tick in the mailbox of the activation with `grant`, unless it is gone,
    /// finishing or its node drains (the timer then ends), or its mailbox is full (the tick is
    /// skipped).
    fn push_tick(&self, id: &ActorId, grant: u64, mail: Mail, capacity: usize) -> Pushed {
        if self.draining.load(Ordering::Acquire) {
            return Pushed::Gone;
        }
        let mut slots = self.slots();
        let Some(slot) = slots.get_mut(id).filter(|slot| slot.grant == grant) else {
            return Pushed::Gone;
        };
        if slot.phase == Phase::Deactivating {
            return Pushed::Gone;
        }
        if slot.mailbox.len() + slot.running >= capacity {
            return Pushed::Full;
        }
        slot.mailbox.push_back(mail);
        slot.wake.notify_one();
        Pushed::Queued
    }

    pub(crate) fn set_phase(&self, id: &ActorId, grant: u64, phase: Phase) {
        if let Some(slot) = self.slots().get_mut(id).filter(|slot| slot.grant == grant) {
            slot.phase = phase;
        }
    }
}

/// What [`Host::push_tick`] did.
enum Pushed {
    Queued,
    Full,
    Gone,
}

enum Next {
    /// A re-entrant message: start it beside the running ones.
    Shared(Mail),
    /// A `&mut self` message, with no call running: run it alone.
    Exclusive(Mail),
    Wait(Arc<Notify>),
    Deactivate,
    Gone,
}

/// Tells the observer of an activation's end when dropped: also when the task is dropped.
pub(crate) struct Watch {
    observer: Option<Arc<dyn ActivationObserver>>,
    id: ActorId,
    grant: u64,
    node: NetworkAddress,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(observer) = &self.observer {
            observer.deactivated(&self.id, self.grant, self.node);
        }
    }
}

/// Removes the slot when the task ends, however it ends.
pub(crate) struct SlotGuard<P: Providers> {
    node: Arc<NodeInner<P>>,
    id: ActorId,
    grant: u64,
}

impl<P: Providers> Drop for SlotGuard<P> {
    fn drop(&mut self) {
        self.node.host.remove(
            &self.id,
            self.grant,
            &Refusal::Retry("the activation ended".into()),
        );
    }
}

pub(crate) async fn confirm<P: Providers>(
    node: &NodeInner<P>,
    id: &ActorId,
    entry: Entry,
    activation: UID,
) -> bool {
    let Ok(owner) = node.view.current().owner(id) else {
        return false;
    };
    matches!(
        node.api(owner)
            .confirm(&node.transport, id.clone(), entry, activation)
            .try_get_reply()
            .timeout(node.config.directory_timeout)
            .await,
        Ok(true)
    )
}

pub(crate) async fn release<P: Providers>(
    node: &NodeInner<P>,
    id: &ActorId,
    entry: Entry,
    activation: UID,
) {
    let Ok(owner) = node.view.current().owner(id) else {
        return;
    };
    // Best effort: an entry left behind is stale and is revoked by the next caller.
    let _ = node
        .api(owner)
        .release(&node.transport, id.clone(), entry, activation)
        .try_get_reply()
        .timeout(node.config.directory_timeout)
        .await;
}

async fn run_activation<P: Providers>(
    node: Arc<NodeInner<P>>,
    id: ActorId,
    entry: Entry,
    make: super::actor::Factory,
    _wake: Arc<Notify>,
) {
    let grant = entry.grant;
    let slot = SlotGuard {
        node: Arc::clone(&node),
        id: id.clone(),
        grant,
    };
    let activation = UID::random(node.providers.random());
    let sent = node.timer();
    if !confirm(&node, &id, entry, activation).await {
        node.host.remove(&id, grant, &Refusal::NotHere);
        return;
    }
    let lease = Arc::new(super::grant::Lease::new(
        sent.saturating_add(node.cluster.grant_duration),
    ));
    let _renewing = super::grant::start_renewal(&node, &id, entry, activation, &lease);
    // The state store's fence is raised to this grant before anything runs (and before the
    // observer hears of the activation), so no older activation's write is accepted from then on.
    let fence = super::grant::fence_state(&node, &id, grant, &lease).await;
    let watch = Watch {
        observer: node.observer.clone(),
        id: id.clone(),
        grant,
        node: node.me,
    };
    if let (Some(observer), Some(Ok(()))) = (&node.observer, &fence) {
        observer.activated(&id, grant, node.me);
    }
    let timers = timer_task::timers(&node, &id, grant);
    let _timers = super::timers::CloseOnDrop(Arc::clone(&timers));
    let context = ActorContext {
        id: id.clone(),
        grant,
        client: node.client(),
        store: node.remote_state(),
        clock: node.clock(),
        data: node.data.clone(),
        reminders: node.reminders.clone(),
        timers,
    };
    let activated = match fence {
        Some(Ok(())) => {
            super::grant::within(
                &node,
                &lease,
                AssertUnwindSafe(make(context)).catch_unwind(),
            )
            .await
        }
        Some(Err(error)) => Some(Ok(Err(ActorError::State(error)))),
        None => None,
    };
    let Some(activated) = activated else {
        super::grant::stopped(&node, &id, (entry, activation), watch, slot).await;
        return;
    };
    let mut actor: Box<dyn ErasedActor> = match activated {
        Ok(Ok(actor)) => actor,
        Ok(Err(error)) => {
            let reason = error.to_string();
            end(
                &node,
                &id,
                (entry, activation),
                watch,
                slot,
                ActorError::ActivationFailed {
                    id: id.clone(),
                    reason,
                },
            )
            .await;
            return;
        }
        Err(payload) => {
            let reason = format!(
                "on_activate panicked: {}",
                moonpool_core::task::panic_message(&*payload)
            );
            end(
                &node,
                &id,
                (entry, activation),
                watch,
                slot,
                ActorError::ActivationFailed {
                    id: id.clone(),
                    reason,
                },
            )
            .await;
            return;
        }
    };
    node.host.set_phase(&id, grant, Phase::Active);
    match turns::turns(&node, &id, grant, &lease, &mut actor).await {
        Ended::Deactivate => {}
        Ended::Gone => return,
        Ended::Panicked(error) => {
            drop(actor);
            end(&node, &id, (entry, activation), watch, slot, error).await;
            return;
        }
        Ended::LeaseExpired => {
            drop(actor);
            super::grant::stopped(&node, &id, (entry, activation), watch, slot).await;
            return;
        }
    }
    if super::grant::within(&node, &lease, actor.deactivate())
        .await
        .is_none()
    {
        drop(actor);
        super::grant::stopped(&node, &id, (entry, activation), watch, slot).await;
        return;
    }
    drop(actor);
    drop(watch);
    release(&node, &id, entry, activation).await;
    drop(slot);
}

/// Ends an activation that failed: refuses its mail with `error`, releases its entry.
async fn end<P: Providers>(
    node: &NodeInner<P>,
    id: &ActorId,
    (entry, activation): (Entry, UID),
    watch: Watch,
    slot: SlotGuard<P>,
    error: ActorError,
) {
    node.host.set_phase(id, entry.grant, Phase::Deactivating);
    drop(watch);
    {
        let mut slots = node.host.slots();
        if let Some(slot) = slots.get_mut(id).filter(|slot| slot.grant == entry.grant) {
            for mail in slot.mailbox.drain(..) {
                refuse(mail, Refusal::Failed(error.clone()));
            }
        }
    }
    release(node, id, entry, activation).await;
    drop(slot);
}
