//! The task of one activation-local timer: sleeps until the tick is due on the node's clock,
//! puts the tick in the activation's mailbox (where it runs as a `&mut self` turn, within the
//! grant, like any message), waits for it to finish, and schedules the next one from the period
//! (skipping the ticks that fell due meanwhile). It ends when the activation is gone, finishing,
//! or its node drains, and is aborted when the activation ends ([`Timers::close`]).

use std::sync::{Arc, Weak};
use std::time::Duration;

use moonpool_core::{JoinHandle, Providers, TaskProvider, TimeProvider, assert_sometimes};
use tokio::sync::oneshot;

use super::{Mail, NodeInner, Pushed};
use crate::actors::identity::ActorId;
use crate::actors::ticks::{TIMER_METHOD, TimerTick};
use crate::actors::timers::{TimerSpawn, Timers};

/// The timers of the activation of `id` with `grant` on `node`.
pub(super) fn timers<P: Providers>(
    node: &Arc<NodeInner<P>>,
    id: &ActorId,
    grant: u64,
) -> Arc<Timers> {
    let spawner = Spawner {
        node: Arc::downgrade(node),
        id: id.clone(),
        grant,
    };
    Arc::new(Timers::new(id.clone(), grant, Box::new(spawner)))
}

struct Spawner<P: Providers> {
    node: Weak<NodeInner<P>>,
    id: ActorId,
    grant: u64,
}

impl<P: Providers> TimerSpawn for Spawner<P> {
    fn spawn(
        &self,
        timer: u64,
        name: String,
        delay: Duration,
        period: Option<Duration>,
    ) -> Option<JoinHandle<()>> {
        let node = self.node.upgrade()?;
        let task_name = format!("timer {name} of {}", self.id);
        let tick = Tick {
            node: Weak::clone(&self.node),
            id: self.id.clone(),
            grant: self.grant,
            timer,
            name,
        };
        Some(node.providers.task().spawn(
            &task_name,
            run(tick, delay, period, node.providers.time().clone()),
        ))
    }
}

struct Tick<P: Providers> {
    node: Weak<NodeInner<P>>,
    id: ActorId,
    grant: u64,
    timer: u64,
    name: String,
}

/// The next due time after `now` of a timer due at `due` every `period`.
fn next_due(due: Duration, period: Duration, now: Duration) -> Duration {
    let next = due.saturating_add(period);
    if next > now {
        return next;
    }
    let behind = (now - next).as_nanos();
    let period_ns = period.as_nanos().max(1);
    let skip = u64::try_from(period_ns - behind % period_ns).unwrap_or(u64::MAX);
    assert_sometimes!(
        true,
        "a periodic timer skips ticks that fell due while one ran"
    );
    now.saturating_add(Duration::from_nanos(skip))
}

async fn run<P: Providers, T: TimeProvider>(
    tick: Tick<P>,
    delay: Duration,
    period: Option<Duration>,
    time: T,
) {
    let mut due = time.timer().saturating_add(delay);
    let mut count = 0u64;
    loop {
        let now = time.timer();
        if due > now {
            time.sleep(due - now).await;
        }
        let Some(node) = tick.node.upgrade() else {
            return;
        };
        let body = TimerTick {
            name: tick.name.clone(),
            timer: tick.timer,
            count,
        };
        let Ok(body) = serde_json::to_string(&body) else {
            return;
        };
        let (reply, done) = oneshot::channel();
        let mail = Mail {
            method: TIMER_METHOD,
            body,
            reply,
        };
        let capacity = node.config.mailbox_capacity;
        match node.host.push_tick(&tick.id, tick.grant, mail, capacity) {
            Pushed::Gone => return,
            Pushed::Full => {}
            Pushed::Queued => {
                drop(node);
                let _ = done.await;
                count += 1;
            }
        }
        let Some(period) = period else {
            return;
        };
        due = next_due(due, period, time.timer());
    }
}
