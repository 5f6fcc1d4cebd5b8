//! The turn discipline of one activation (readers-writer, first come first served): which
//! message may start ([`take`], under the slots lock), and the loop that runs an activation's
//! messages, `&mut self` turns alone with the actor borrowed exclusively and `#[reentrant]`
//! calls beside each other with it borrowed shared ([`turns`], [`shared_turns`]).

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::future::{BoxFuture, Either};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use moonpool_core::{Providers, TimeProvider, assert_reachable, assert_sometimes};

use super::{Mail, Next, NodeInner, Phase, Reply, Slot};
use crate::actors::actor::{ErasedActor, SharedDispatch};
use crate::actors::error::ActorError;
use crate::actors::grant::{self, Lease};
use crate::actors::identity::ActorId;
use crate::actors::ticks::{REMINDER_METHOD, TIMER_METHOD};
use crate::actors::wire::{Delivered, Refusal};

/// What `Host::next` decides for `slot` (with its lock held).
pub(super) fn take(
    slot: &mut Slot,
    finish: bool,
    reentrant: impl Fn(u32) -> bool,
) -> (Next, Option<Site>) {
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
pub(super) enum Site {
    Interleaving(usize),
    TurnWaits,
}

/// The re-entrancy coverage sites, each in its own function so that only the suites that run
/// re-entrant calls (or make a turn wait for them) have it in scope.
pub(super) fn interleaving(running: usize) {
    assert_sometimes!(running > 1, "re-entrant calls interleave");
}

pub(super) fn turn_waits() {
    assert_reachable!("a turn waits for running re-entrant calls");
}

/// How an activation's messages ended.
pub(super) enum Ended {
    /// Idle, or its node drains: no message waits and no call runs.
    Deactivate,
    /// The slot is gone (not this activation's any more).
    Gone,
    /// A handler panicked; its caller has the error, which ends the activation.
    Panicked(ActorError),
    /// The activation's grant ran out: it processes nothing more (a turn it cut was answered
    /// with [`ActorError::GrantExpired`], re-entrant calls it cut with
    /// [`ActorError::Interrupted`]).
    LeaseExpired,
}

/// Where [`shared_turns`] stopped.
enum Stop {
    /// A `&mut self` message, with no call running.
    Exclusive(Mail),
    Ended(Ended),
}

/// Runs an activation's messages until it ends: re-entrant ones through [`shared_turns`] with
/// `actor` borrowed shared, each `&mut self` one alone with `actor` borrowed exclusively; all
/// of them only while `lease` holds (each runs [`within`](grant::within) it).
pub(super) async fn turns<P: Providers>(
    node: &NodeInner<P>,
    id: &ActorId,
    grant: u64,
    lease: &Lease,
    actor: &mut Box<dyn ErasedActor>,
) -> Ended {
    // When the activation was last busy with a message (a timer's tick does not count: ticks
    // do not keep an activation from idling out).
    let mut last_busy = node.timer();
    loop {
        let shared = actor.shared();
        let stop = shared_turns(node, id, grant, lease, shared, &mut last_busy).await;
        let mail = match stop {
            Stop::Exclusive(mail) => mail,
            Stop::Ended(ended) => return ended,
        };
        let tick = mail.method == TIMER_METHOD;
        let turn = AssertUnwindSafe(run_turn(actor, mail.method, mail.body)).catch_unwind();
        let Some(outcome) = grant::within(node, lease, turn).await else {
            let _ = mail
                .reply
                .send(Err(Refusal::Failed(ActorError::GrantExpired {
                    id: id.clone(),
                    grant,
                })));
            return Ended::LeaseExpired;
        };
        if let Err(error) = answer(id, mail.reply, outcome, node.host.len()) {
            return Ended::Panicked(error);
        }
        if !tick {
            last_busy = node.timer();
        }
    }
}

/// A `&mut self` turn: a reminder's delivery, a timer's tick, or a `#[service]` method.
fn run_turn(
    actor: &mut Box<dyn ErasedActor>,
    method: u32,
    body: String,
) -> BoxFuture<'_, Result<String, ActorError>> {
    match method {
        REMINDER_METHOD => actor.remind(body),
        TIMER_METHOD => {
            assert_sometimes!(true, "a timer tick runs as a turn");
            actor.tick(body)
        }
        _ => actor.handle(method, body),
    }
}

/// Runs messages while the actor is borrowed shared: starts each re-entrant message as it
/// reaches the head of the mailbox, polls the running ones while waiting for mail, and returns
/// a `&mut self` message once no re-entrant call runs (or the end of the activation). Its
/// idle clock runs only while no call runs; every wait ends by the time `lease` runs out, and
/// an expired lease ends the activation (the calls still running are dropped).
async fn shared_turns<P: Providers>(
    node: &NodeInner<P>,
    id: &ActorId,
    grant: u64,
    lease: &Lease,
    actor: Option<&dyn SharedDispatch>,
    last_busy: &mut std::time::Duration,
) -> Stop {
    let time = node.providers.time().clone();
    let mut running = Reentrant::new(id);
    let mut idle = false;
    loop {
        if !lease.holds(node.timer()) {
            running.reason = format!("the grant {grant} of the activation ran out");
            return Stop::Ended(Ended::LeaseExpired);
        }
        let reentrant = |method| actor.is_some_and(|actor| actor.reentrant(method));
        match node.host.next(id, grant, idle, reentrant) {
            Next::Shared(mail) => {
                idle = false;
                if let Some(actor) = actor {
                    running.start(actor, mail);
                }
            }
            Next::Exclusive(mail) => return Stop::Exclusive(mail),
            Next::Wait(wake) if running.is_empty() => {
                let now = node.timer();
                let idle_left = node
                    .config
                    .idle_timeout
                    .saturating_sub(now.saturating_sub(*last_busy));
                let wait = idle_left.min(lease.remaining(now));
                let _ = time.timeout(wait, wake.notified()).await;
                idle = node.timer().saturating_sub(*last_busy) >= node.config.idle_timeout;
            }
            Next::Wait(wake) => {
                let left = lease.remaining(node.timer());
                let done = {
                    let finished = std::pin::pin!(running.next_finished());
                    let woken = std::pin::pin!(wake.notified());
                    let either = futures::future::select(finished, woken);
                    match time.timeout(left, either).await {
                        Ok(Either::Left((done, _))) => done,
                        Ok(Either::Right(_)) | Err(_) => None,
                    }
                };
                if let Some((seq, outcome)) = done {
                    *last_busy = node.timer();
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
                Ok(body) => Ok(Delivered {
                    body,
                    load,
                    moved: None,
                }),
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
    /// Made with the first call (an actor without re-entrant methods never allocates it).
    calls: Option<FuturesUnordered<BoxFuture<'a, (u64, Outcome)>>>,
    replies: BTreeMap<u64, Reply>,
    next: u64,
    /// Why the calls still running are dropped.
    reason: String,
}

impl<'a> Reentrant<'a> {
    fn new(id: &'a ActorId) -> Self {
        Self {
            id,
            calls: None,
            replies: BTreeMap::new(),
            next: 0,
            reason: "the activation ended while the call was suspended".into(),
        }
    }

    fn is_empty(&self) -> bool {
        self.calls.as_ref().is_none_or(FuturesUnordered::is_empty)
    }

    /// The next call to finish (`None` at once when none runs).
    async fn next_finished(&mut self) -> Option<(u64, Outcome)> {
        match self.calls.as_mut() {
            Some(calls) => calls.next().await,
            None => None,
        }
    }

    fn start(&mut self, actor: &'a dyn SharedDispatch, mail: Mail) {
        let seq = self.next;
        self.next += 1;
        self.replies.insert(seq, mail.reply);
        let call = AssertUnwindSafe(actor.run_shared(mail.method, mail.body)).catch_unwind();
        self.calls
            .get_or_insert_with(FuturesUnordered::new)
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
        drop(self.calls.take());
        for (_, reply) in std::mem::take(&mut self.replies) {
            let _ = reply.send(Err(Refusal::Failed(ActorError::Interrupted {
                id: self.id.clone(),
                reason: self.reason.clone(),
            })));
        }
    }
}
