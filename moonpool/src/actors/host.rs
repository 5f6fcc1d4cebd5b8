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
//! and they are all finished before a turn borrows it exclusively.
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
use futures::StreamExt;
use futures::future::{BoxFuture, Either};
use futures::stream::FuturesUnordered;
use moonpool_core::{
    NetworkAddress, Providers, TaskProvider, TimeProvider, UID, assert_reachable, assert_sometimes,
};
use tokio::sync::{Notify, oneshot};

use super::actor::{ActivationObserver, ActorContext, ErasedActor, SharedDispatch};
use super::error::ActorError;
use super::identity::ActorId;
use super::node::NodeInner;
use super::wire::{Delivered, Entry, Envelope, Refusal, Revocation};

type Reply = oneshot::Sender<Result<Delivered, Refusal>>;

struct Mail {
    method: u32,
    body: String,
    reply: Reply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the directory's confirmation and `on_activate`.
    Activating,
    /// Running messages.
    Active,
    /// Finishing: takes no new message.
    Deactivating,
}

struct Slot {
    grant: u64,
    phase: Phase,
    mailbox: VecDeque<Mail>,
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

fn refuse(mail: Mail, refusal: Refusal) {
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

    fn slots(&self) -> std::sync::MutexGuard<'_, BTreeMap<ActorId, Slot>> {
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
            Some(slot) => take(slot, finish, reentrant),
            None => (Next::Gone, None),
        };
        // The coverage sites, outside the lock.
        match site {
            Some(Site::Interleaving(running)) => interleaving(running),
            Some(Site::TurnWaits) => turn_waits(),
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

    fn set_phase(&self, id: &ActorId, grant: u64, phase: Phase) {
        if let Some(slot) = self.slots().get_mut(id).filter(|slot| slot.grant == grant) {
            slot.phase = phase;
        }
    }
}

/// What [`Host::next`] decides for `slot` (with its lock held).
fn take(slot: &mut Slot, finish: bool, reentrant: impl Fn(u32) -> bool) -> (Next, Option<Site>) {
    let Some(head) = slot.mailbox.front() else {
        if slot.running == 0 && finish {
            slot.phase = Phase::Deactivating;
            return (Next::Deactivate, None);
        }
        return (Next::Wait(Arc::clone(&slot.wake)), None);
    };
    if reentrant(head.method) {
        let Some(mail) = slot.mailbox.pop_front() else {
            return (Next::Gone, None);
        };
        slot.running += 1;
        return (Next::Shared(mail), Some(Site::Interleaving(slot.running)));
    }
    if slot.running > 0 {
        return (Next::Wait(Arc::clone(&slot.wake)), Some(Site::TurnWaits));
    }
    match slot.mailbox.pop_front() {
        Some(mail) => (Next::Exclusive(mail), None),
        None => (Next::Gone, None),
    }
}

/// A coverage site that [`take`] reached.
enum Site {
    Interleaving(usize),
    TurnWaits,
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

/// The re-entrancy coverage sites, each in its own function so that only the suites that run
/// re-entrant calls (or make a turn wait for them) have it in scope.
fn interleaving(running: usize) {
    assert_sometimes!(running > 1, "re-entrant calls interleave");
}

fn turn_waits() {
    assert_reachable!("a turn waits for running re-entrant calls");
}

/// Tells the observer of an activation's end when dropped: also when the task is dropped.
struct Watch {
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
struct SlotGuard<P: Providers> {
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

async fn confirm<P: Providers>(
    node: &NodeInner<P>,
    id: &ActorId,
    entry: Entry,
    activation: UID,
) -> bool {
    let Ok(owner) = node.view.owner(id) else {
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

async fn release<P: Providers>(node: &NodeInner<P>, id: &ActorId, entry: Entry, activation: UID) {
    let Ok(owner) = node.view.owner(id) else {
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
    if !confirm(&node, &id, entry, activation).await {
        node.host.remove(&id, grant, &Refusal::NotHere);
        return;
    }
    let watch = Watch {
        observer: node.observer.clone(),
        id: id.clone(),
        grant,
        node: node.me,
    };
    if let Some(observer) = &node.observer {
        observer.activated(&id, grant, node.me);
    }
    let context = ActorContext {
        id: id.clone(),
        grant,
        client: node.client(),
        store: node.remote_state(),
        clock: node.clock(),
        data: node.data.clone(),
    };
    let activated = AssertUnwindSafe(make(context)).catch_unwind().await;
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
    match turns(&node, &id, grant, &mut actor).await {
        Ended::Deactivate => {}
        Ended::Gone => return,
        Ended::Panicked(error) => {
            drop(actor);
            end(&node, &id, (entry, activation), watch, slot, error).await;
            return;
        }
    }
    actor.deactivate().await;
    drop(actor);
    drop(watch);
    release(&node, &id, entry, activation).await;
    drop(slot);
}

/// How an activation's messages ended.
enum Ended {
    /// Idle, or its node drains: no message waits and no call runs.
    Deactivate,
    /// The slot is gone (not this activation's any more).
    Gone,
    /// A handler panicked; its caller has the error, which ends the activation.
    Panicked(ActorError),
}

/// Where [`shared_turns`] stopped.
enum Stop {
    /// A `&mut self` message, with no call running.
    Exclusive(Mail),
    Ended(Ended),
}

/// Runs an activation's messages until it ends: re-entrant ones through [`shared_turns`] with
/// `actor` borrowed shared, each `&mut self` one alone with `actor` borrowed exclusively.
async fn turns<P: Providers>(
    node: &NodeInner<P>,
    id: &ActorId,
    grant: u64,
    actor: &mut Box<dyn ErasedActor>,
) -> Ended {
    loop {
        let shared = actor.shared();
        let stop = shared_turns(node, id, grant, shared).await;
        let mail = match stop {
            Stop::Exclusive(mail) => mail,
            Stop::Ended(ended) => return ended,
        };
        let outcome = AssertUnwindSafe(actor.handle(mail.method, mail.body))
            .catch_unwind()
            .await;
        if let Err(error) = answer(id, mail.reply, outcome, node.host.len()) {
            return Ended::Panicked(error);
        }
    }
}

/// Runs messages while the actor is borrowed shared: starts each re-entrant message as it
/// reaches the head of the mailbox, polls the running ones while waiting for mail, and returns
/// a `&mut self` message once no re-entrant call runs (or the end of the activation). Its
/// idle clock runs only while no call runs.
async fn shared_turns<P: Providers>(
    node: &NodeInner<P>,
    id: &ActorId,
    grant: u64,
    actor: Option<&dyn SharedDispatch>,
) -> Stop {
    let time = node.providers.time().clone();
    let mut running = Reentrant::new(id);
    let mut idle = false;
    loop {
        let reentrant = |method| actor.is_some_and(|actor| actor.reentrant(method));
        match node.host.next(id, grant, idle, reentrant) {
            Next::Shared(mail) => {
                idle = false;
                if let Some(actor) = actor {
                    running.start(actor, mail);
                }
            }
            Next::Exclusive(mail) => return Stop::Exclusive(mail),
            Next::Wait(wake) if running.calls.is_empty() => {
                let woken = time
                    .timeout(node.config.idle_timeout, wake.notified())
                    .await;
                idle = woken.is_err();
            }
            Next::Wait(wake) => {
                let done = {
                    let woken = std::pin::pin!(wake.notified());
                    match futures::future::select(running.calls.next(), woken).await {
                        Either::Left((done, _)) => done,
                        Either::Right(_) => None,
                    }
                };
                if let Some((seq, outcome)) = done {
                    node.host.finished(id, grant);
                    if let Err(error) = running.answer(seq, outcome, node.host.len()) {
                        return Stop::Ended(Ended::Panicked(error));
                    }
                }
            }
            Next::Deactivate => return Stop::Ended(Ended::Deactivate),
            Next::Gone => return Stop::Ended(Ended::Gone),
        }
    }
}

/// A handler's outcome: a reply or an error, or a panic.
type Outcome = Result<Result<String, ActorError>, Box<dyn std::any::Any + Send>>;

/// Sends a finished call's outcome to its caller; a panic is also returned (it ends the
/// activation).
fn answer(id: &ActorId, reply: Reply, outcome: Outcome, load: usize) -> Result<(), ActorError> {
    match outcome {
        Ok(result) => {
            let _ = reply.send(match result {
                Ok(body) => Ok(Delivered { body, load }),
                Err(error) => Err(Refusal::Failed(error)),
            });
            Ok(())
        }
        Err(payload) => {
            let message = moonpool_core::task::panic_message(&*payload);
            let error = ActorError::HandlerPanicked {
                id: id.clone(),
                message,
            };
            let _ = reply.send(Err(Refusal::Failed(error.clone())));
            Err(error)
        }
    }
}

/// The re-entrant calls of one activation that started and have not finished: their futures,
/// which borrow the actor shared and are polled by the activation's task, and their callers.
/// Dropped with calls still running (a sibling panicked, or the slot is gone), it cancels them
/// and tells their callers [`ActorError::Interrupted`] (never a retry: they had started).
struct Reentrant<'a> {
    id: &'a ActorId,
    calls: FuturesUnordered<BoxFuture<'a, (u64, Outcome)>>,
    replies: BTreeMap<u64, Reply>,
    next: u64,
    /// Why the calls still running are dropped.
    reason: String,
}

impl<'a> Reentrant<'a> {
    fn new(id: &'a ActorId) -> Self {
        Self {
            id,
            calls: FuturesUnordered::new(),
            replies: BTreeMap::new(),
            next: 0,
            reason: "the activation ended while the call was suspended".into(),
        }
    }

    fn start(&mut self, actor: &'a dyn SharedDispatch, mail: Mail) {
        let seq = self.next;
        self.next += 1;
        self.replies.insert(seq, mail.reply);
        let call = AssertUnwindSafe(actor.run_shared(mail.method, mail.body)).catch_unwind();
        self.calls
            .push(Box::pin(call.map(move |outcome| (seq, outcome))));
    }

    fn answer(&mut self, seq: u64, outcome: Outcome, load: usize) -> Result<(), ActorError> {
        let Some(reply) = self.replies.remove(&seq) else {
            return Ok(());
        };
        answer(self.id, reply, outcome, load).inspect_err(|error| {
            self.reason = format!("another call of the same activation failed: {error}");
        })
    }
}

impl Drop for Reentrant<'_> {
    fn drop(&mut self) {
        drop(std::mem::take(&mut self.calls));
        for (_, reply) in std::mem::take(&mut self.replies) {
            let _ = reply.send(Err(Refusal::Failed(ActorError::Interrupted {
                id: self.id.clone(),
                reason: self.reason.clone(),
            })));
        }
    }
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
