//! Floor 1: the durable reminders' table as a trait ([`ReminderTable`]), what a reminder or a
//! timer hands an actor ([`ReminderTick`], [`TimerTick`]), the
//! errors of registering them ([`ReminderError`], [`TimerError`]) and the checks of their
//! schedules. Both arrive at the activation as messages with reserved method numbers, which
//! the host runs as `&mut self` turns ([`REMINDER_METHOD`], [`TIMER_METHOD`]).

use std::time::Duration;

use futures::future::BoxFuture;
use moonpool_core::{NetworkAddress, UID};
use serde::{Deserialize, Serialize};

use super::identity::ActorId;

/// The method number of a reminder's delivery (never a `#[service]` method's index).
pub(crate) const REMINDER_METHOD: u32 = u32::MAX;
/// The method number of an activation-local timer's tick.
pub(crate) const TIMER_METHOD: u32 = u32::MAX - 1;

/// The longest name a reminder or timer may have, in bytes.
pub const MAX_TICK_NAME: usize = 100;

/// The longest delay or period a reminder or timer may have (about 100 years).
pub const MAX_TICK_DELAY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A reminder as [`ReminderTable::list`] answers it to the node that owns its identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueReminder {
    /// The identity.
    pub id: ActorId,
    /// The reminder's name.
    pub name: String,
    /// The registration (a new one each time the name is registered).
    pub registration: UID,
    /// The period (`None`: one-shot).
    pub period: Option<Duration>,
    /// The latest tick that is due and not acknowledged yet, if any.
    pub due: Option<u64>,
    /// Time until the next tick after that one falls due (`None`: no further tick).
    pub next_in: Option<Duration>,
}

/// A durable table of reminders.
///
/// Implementations must store each change before answering it (a registration answered is
/// never lost) and must be linearizable per reminder: once [`unregister`](Self::unregister)
/// has answered, [`claim`](Self::claim) refuses every tick of the removed registration.
/// `StorageReminderTable` is one over a `StorageProvider`; production users can implement it
/// over their own consistent store.
pub trait ReminderTable: Send + Sync + 'static {
    /// Registers (or replaces) `id`'s reminder `name`: first due `delay` from now on the table's
    /// clock, then every `period` (`None`: once). The new registration.
    fn register(
        &self,
        id: ActorId,
        name: String,
        delay: Duration,
        period: Option<Duration>,
    ) -> BoxFuture<'static, Result<UID, ReminderError>>;
    /// Removes `id`'s reminder `name`; true if it existed.
    fn unregister(
        &self,
        id: ActorId,
        name: String,
    ) -> BoxFuture<'static, Result<bool, ReminderError>>;
    /// The reminders of the identities that `owner` owns among `members` (rendezvous hashing,
    /// as `MembershipView::owner`), sorted by identity and name.
    fn list(
        &self,
        members: Vec<NetworkAddress>,
        owner: NetworkAddress,
    ) -> BoxFuture<'static, Result<Vec<DueReminder>, ReminderError>>;
    /// True if `tick` of `registration` may be delivered now: the registration is current and
    /// the tick is later than the last one acknowledged.
    fn claim(
        &self,
        id: ActorId,
        name: String,
        registration: UID,
        tick: u64,
    ) -> BoxFuture<'static, Result<bool, ReminderError>>;
    /// `tick` of `registration` was delivered: it is not listed as due again (a one-shot
    /// reminder is removed). A stale registration is ignored.
    fn acknowledge(
        &self,
        id: ActorId,
        name: String,
        registration: UID,
        tick: u64,
    ) -> BoxFuture<'static, Result<(), ReminderError>>;
}

/// One firing of a durable reminder, given to
/// [`Actor::receive_reminder`](super::Actor::receive_reminder).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderTick {
    /// The reminder's name.
    pub name: String,
    /// Which tick this is: tick `k` was due at `first due + k × period` on the table's clock
    /// (0 for a one-shot reminder). Ticks that came due while none could be delivered are
    /// collapsed into the latest one, so numbers may be skipped; one may arrive more than once.
    pub tick: u64,
    /// The registration this tick belongs to (a new one each time the name is registered).
    pub registration: UID,
}

/// One tick of an activation-local timer, given to
/// [`Actor::receive_timer`](super::Actor::receive_timer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerTick {
    /// The timer's name.
    pub name: String,
    /// The timer, as [`ActorContext::start_timer`](super::ActorContext::start_timer) answered.
    pub timer: u64,
    /// Ticks of this timer that ran before this one (ticks that fell due while the previous
    /// one still ran are skipped, not queued).
    pub count: u64,
}

/// Why a reminder could not be registered, unregistered or served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ReminderError {
    /// The name is empty.
    #[error("a reminder of {id} needs a name (it was empty)")]
    EmptyName {
        /// The identity.
        id: ActorId,
    },
    /// The name is longer than [`MAX_TICK_NAME`] bytes.
    #[error("the reminder name {name:?} of {id} is {len} bytes long (at most {MAX_TICK_NAME})")]
    NameTooLong {
        /// The identity.
        id: ActorId,
        /// The name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The period is zero.
    #[error("the reminder {name:?} of {id} has a zero period")]
    ZeroPeriod {
        /// The identity.
        id: ActorId,
        /// The name.
        name: String,
    },
    /// The delay or the period is longer than [`MAX_TICK_DELAY`].
    #[error("the reminder {name:?} of {id} has a {what} of {value:?} (at most {MAX_TICK_DELAY:?})")]
    TooLong {
        /// The identity.
        id: ActorId,
        /// The name.
        name: String,
        /// `"delay"` or `"period"`.
        what: String,
        /// The value given.
        value: Duration,
    },
    /// The node was built without a reminder table (`ActorNodeBuilder::reminders`).
    #[error("{id} cannot use reminders: its node has no reminder table")]
    NoTable {
        /// The identity.
        id: ActorId,
    },
    /// The table could not be reached or did not answer in time; the change may or may not
    /// have been made.
    #[error("the reminder table did not answer: {reason}")]
    Unreachable {
        /// Why.
        reason: String,
    },
    /// The table could not store the change (its disk failed); nothing changed.
    #[error("the reminder table could not store the change: {reason}")]
    Storage {
        /// What failed.
        reason: String,
    },
}

/// Why an activation-local timer could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimerError {
    /// The name is empty.
    #[error("a timer of {id} needs a name (it was empty)")]
    EmptyName {
        /// The identity.
        id: ActorId,
    },
    /// The name is longer than [`MAX_TICK_NAME`] bytes.
    #[error("the timer name {name:?} of {id} is {len} bytes long (at most {MAX_TICK_NAME})")]
    NameTooLong {
        /// The identity.
        id: ActorId,
        /// The name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The period is zero.
    #[error("the timer {name:?} of {id} has a zero period")]
    ZeroPeriod {
        /// The identity.
        id: ActorId,
        /// The name.
        name: String,
    },
    /// The delay or the period is longer than [`MAX_TICK_DELAY`].
    #[error("the timer {name:?} of {id} has a {what} of {value:?} (at most {MAX_TICK_DELAY:?})")]
    TooLong {
        /// The identity.
        id: ActorId,
        /// The name.
        name: String,
        /// `"delay"` or `"period"`.
        what: String,
        /// The value given.
        value: Duration,
    },
    /// The activation this context belongs to has ended (its timers went with it).
    #[error("the activation {grant} of {id} has ended; it can start no timer")]
    Ended {
        /// The identity.
        id: ActorId,
        /// The ended activation's grant.
        grant: u64,
    },
}

/// What is wrong with a schedule, if anything.
pub(crate) enum BadSchedule {
    EmptyName,
    NameTooLong(usize),
    ZeroPeriod,
    TooLong(&'static str, Duration),
}

/// Checks a name, a first delay and a period.
pub(crate) fn check(
    name: &str,
    delay: Duration,
    period: Option<Duration>,
) -> Result<(), BadSchedule> {
    if name.is_empty() {
        return Err(BadSchedule::EmptyName);
    }
    if name.len() > MAX_TICK_NAME {
        return Err(BadSchedule::NameTooLong(name.len()));
    }
    if delay > MAX_TICK_DELAY {
        return Err(BadSchedule::TooLong("delay", delay));
    }
    match period {
        Some(period) if period.is_zero() => Err(BadSchedule::ZeroPeriod),
        Some(period) if period > MAX_TICK_DELAY => Err(BadSchedule::TooLong("period", period)),
        _ => Ok(()),
    }
}

impl BadSchedule {
    pub(crate) fn reminder(self, id: &ActorId, name: &str) -> ReminderError {
        let (id, name) = (id.clone(), name.to_string());
        match self {
            Self::EmptyName => ReminderError::EmptyName { id },
            Self::NameTooLong(len) => ReminderError::NameTooLong { id, name, len },
            Self::ZeroPeriod => ReminderError::ZeroPeriod { id, name },
            Self::TooLong(what, value) => ReminderError::TooLong {
                id,
                name,
                what: what.to_string(),
                value,
            },
        }
    }

    pub(crate) fn timer(self, id: &ActorId, name: &str) -> TimerError {
        let (id, name) = (id.clone(), name.to_string());
        match self {
            Self::EmptyName => TimerError::EmptyName { id },
            Self::NameTooLong(len) => TimerError::NameTooLong { id, name, len },
            Self::ZeroPeriod => TimerError::ZeroPeriod { id, name },
            Self::TooLong(what, value) => TimerError::TooLong {
                id,
                name,
                what: what.to_string(),
                value,
            },
        }
    }
}
