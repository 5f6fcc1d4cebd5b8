//! Floor 5, beside `node`: a node's side of the durable reminders. While the node may act on
//! its membership view (it is a member and the view has not expired), it lists from the
//! [`ReminderTable`] the reminders of the identities whose directory partition it owns under
//! that view, at least every `poll_interval` and whenever the next known tick falls due. For
//! each due tick (one delivery task per reminder at a time, so that a slow delivery delays no
//! other reminder nor the next list) it claims the tick at the table (refused once the reminder is unregistered or
//! the tick acknowledged), delivers it to the actor through the node's router (which activates
//! it wherever placement puts it), and on success acknowledges it. A delivery that fails is
//! tried again on a later list; one whose acknowledgement is lost is delivered again: reminders
//! are delivered at least once.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use moonpool_core::{JoinHandle, Providers, TaskProvider, TimeProvider, assert_sometimes};

use super::identity::ActorId;
use super::node::NodeInner;
use super::reminders::ReminderConfig;
use super::ticks::{DueReminder, REMINDER_METHOD, ReminderTable, ReminderTick};

/// The shortest pause between two lists.
const MIN_PAUSE: Duration = Duration::from_millis(1);

/// Starts the reminder task of `node`; it ends when the node is gone or the handle is aborted.
pub(crate) fn start<P: Providers>(
    node: &Arc<NodeInner<P>>,
    table: Arc<dyn ReminderTable>,
    config: ReminderConfig,
) -> JoinHandle<()> {
    let task = run(Arc::downgrade(node), table, config);
    node.providers.task().spawn("actor reminders", task)
}

/// The deliveries running, one per reminder at most; aborted with the reminder task.
struct Deliveries(BTreeMap<(ActorId, String), JoinHandle<()>>);

impl Drop for Deliveries {
    fn drop(&mut self) {
        for delivery in self.0.values() {
            delivery.abort();
        }
    }
}

async fn run<P: Providers>(
    node: Weak<NodeInner<P>>,
    table: Arc<dyn ReminderTable>,
    config: ReminderConfig,
) {
    let mut deliveries = Deliveries(BTreeMap::new());
    loop {
        let Some(inner) = node.upgrade() else {
            return;
        };
        let time = inner.providers.time().clone();
        let started = time.timer();
        let wait = poll(&inner, &table, &config, &mut deliveries).await;
        drop(inner);
        let elapsed = time.timer().saturating_sub(started);
        time.sleep(wait.saturating_sub(elapsed).max(MIN_PAUSE))
            .await;
    }
}

/// One list; starts a delivery task for each due tick of a reminder with none running. How
/// long after its start the next list is due.
async fn poll<P: Providers>(
    node: &Arc<NodeInner<P>>,
    table: &Arc<dyn ReminderTable>,
    config: &ReminderConfig,
    deliveries: &mut Deliveries,
) -> Duration {
    deliveries.0.retain(|_, delivery| !delivery.is_finished());
    let wait = config.poll_interval;
    let Some(view) = node.view.valid(node.timer()) else {
        return wait;
    };
    if !view.contains(node.me) {
        return wait;
    }
    let time = node.providers.time().clone();
    let listed = time
        .timeout(
            node.config.directory_timeout,
            table.list(view.members().to_vec(), node.me),
        )
        .await;
    let Ok(Ok(listed)) = listed else {
        unanswered();
        return wait;
    };
    let wait = listed
        .iter()
        .filter_map(|reminder| reminder.next_in)
        .fold(wait, Duration::min);
    for reminder in listed {
        let Some(tick) = reminder.due else {
            continue;
        };
        let key = (reminder.id.clone(), reminder.name.clone());
        if deliveries.0.contains_key(&key) {
            continue;
        }
        let task = deliver(Arc::clone(node), Arc::clone(table), reminder, tick);
        let name = format!("reminder {}/{}", key.0, key.1);
        deliveries
            .0
            .insert(key, node.providers.task().spawn(&name, task));
    }
    wait
}

/// Claims, delivers and acknowledges `tick` of `reminder`.
async fn deliver<P: Providers>(
    node: Arc<NodeInner<P>>,
    table: Arc<dyn ReminderTable>,
    reminder: DueReminder,
    tick: u64,
) {
    let time = node.providers.time().clone();
    let timeout = node.config.directory_timeout;
    let DueReminder {
        id,
        name,
        registration,
        ..
    } = reminder;
    let claim = table.claim(id.clone(), name.clone(), registration, tick);
    if !matches!(time.timeout(timeout, claim).await, Ok(Ok(true))) {
        refused();
        return;
    }
    let body = ReminderTick {
        name: name.clone(),
        tick,
        registration,
    };
    let Ok(body) = serde_json::to_string(&body) else {
        return;
    };
    let routed = node.router.route(id.clone(), REMINDER_METHOD, body);
    match time.timeout(node.config.call_timeout, routed).await {
        Ok(Ok(_)) => {
            let acknowledged = table.acknowledge(id, name, registration, tick);
            match time.timeout(timeout, acknowledged).await {
                Ok(Ok(())) => delivered(),
                _ => unacknowledged(),
            }
        }
        _ => failed(),
    }
}

// Each assertion has a function of its own: a seed that never reaches one keeps it out of its
// coverage scope.

fn unanswered() {
    assert_sometimes!(true, "the reminder table does not answer a list");
}

fn refused() {
    assert_sometimes!(true, "a reminder tick's claim is refused or unanswered");
}

fn delivered() {
    assert_sometimes!(true, "a reminder tick is delivered and acknowledged");
}

fn unacknowledged() {
    assert_sometimes!(true, "a delivered reminder tick is not acknowledged");
}

fn failed() {
    assert_sometimes!(true, "a reminder tick's delivery fails");
}
