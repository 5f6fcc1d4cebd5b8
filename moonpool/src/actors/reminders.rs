//! Floor 3, beside `cluster`: durable reminders' table. A [`ReminderTable`] holds each
//! identity's reminders (name, first due time, period, the last tick delivered); the node that
//! owns an identity's directory partition lists the reminders it owns, claims each due tick,
//! delivers it, and acknowledges it (`reminding.rs`, floor 5). [`StorageReminderTable`] keeps
//! the table in one file of a `StorageProvider` (every change written, synced and renamed before
//! it is answered). Its server and remote client are in `reminder_server.rs`.
//!
//! Due times are on the table's clock: the serving process's clock, which resumes after a
//! restart from the time of the table's last stored change (so the time the table was down, and
//! since its last change, does not count).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use moonpool_core::{NetworkAddress, Providers, TimeProvider, UID};
use serde::{Deserialize, Serialize};

use super::durable;
use super::identity::ActorId;
use super::membership::MembershipView;
use super::ticks::{self, DueReminder, ReminderError, ReminderTable};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    id: ActorId,
    name: String,
    registration: UID,
    first_due: Duration,
    period: Option<Duration>,
    delivered: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TableFile {
    /// The table's clock when the file was written.
    clock: Duration,
    reminders: Vec<Stored>,
}

type Key = (ActorId, String);

struct TableInner<P: Providers> {
    providers: P,
    path: PathBuf,
    /// The table's clock at load, and the process clock then.
    base: Duration,
    loaded_at: Duration,
    reminders: Mutex<BTreeMap<Key, Stored>>,
    turn: tokio::sync::Mutex<()>,
}

/// A [`ReminderTable`] in one file of the providers' storage.
pub struct StorageReminderTable<P: Providers> {
    inner: Arc<TableInner<P>>,
}

impl<P: Providers> Clone for StorageReminderTable<P> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<P: Providers> std::fmt::Debug for StorageReminderTable<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageReminderTable")
            .field("path", &self.inner.path)
            .field("reminders", &self.len())
            .finish_non_exhaustive()
    }
}

fn storage_error(reason: String) -> ReminderError {
    ReminderError::Storage { reason }
}

/// The latest tick due at `now` not acknowledged yet, and the time until the next one.
fn due(stored: &Stored, now: Duration) -> (Option<u64>, Option<Duration>) {
    if now < stored.first_due {
        return (None, Some(stored.first_due - now));
    }
    let Some(period) = stored.period else {
        return (stored.delivered.is_none().then_some(0), None);
    };
    let period_ns = period.as_nanos().max(1);
    let since = (now - stored.first_due).as_nanos();
    let latest = u64::try_from(since / period_ns).unwrap_or(u64::MAX);
    let next_at = u128::from(latest)
        .saturating_add(1)
        .saturating_mul(period_ns);
    let next_in = u64::try_from(next_at.saturating_sub(since)).unwrap_or(u64::MAX);
    let due = stored.delivered.is_none_or(|done| latest > done);
    (due.then_some(latest), Some(Duration::from_nanos(next_in)))
}

impl<P: Providers> StorageReminderTable<P> {
    /// Loads the table from `path` (an empty table when it does not exist yet).
    ///
    /// # Errors
    /// [`ReminderError::Storage`] when the file cannot be read or parsed.
    pub async fn load(providers: P, path: impl Into<PathBuf>) -> Result<Self, ReminderError> {
        let path = path.into();
        let storage = providers.storage().clone();
        let file = match durable::read(&storage, &path)
            .await
            .map_err(storage_error)?
        {
            Some(bytes) => serde_json::from_slice::<TableFile>(&bytes).map_err(|error| {
                storage_error(format!("{} is corrupt: {error}", path.display()))
            })?,
            None => TableFile::default(),
        };
        let reminders = file
            .reminders
            .into_iter()
            .map(|stored| ((stored.id.clone(), stored.name.clone()), stored))
            .collect();
        let loaded_at = providers.time().now();
        Ok(Self {
            inner: Arc::new(TableInner {
                providers,
                path,
                base: file.clock,
                loaded_at,
                reminders: Mutex::new(reminders),
                turn: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The table's clock (due times are on it).
    pub fn clock(&self) -> Duration {
        let now = self.inner.providers.time().now();
        self.inner
            .base
            .saturating_add(now.saturating_sub(self.inner.loaded_at))
    }

    /// Reminders held.
    pub fn len(&self) -> usize {
        self.reminders().len()
    }

    /// True when no reminder is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The names of `id`'s reminders.
    pub fn names(&self, id: &ActorId) -> Vec<String> {
        self.reminders()
            .keys()
            .filter(|(held, _)| held == id)
            .map(|(_, name)| name.clone())
            .collect()
    }

    fn reminders(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, Stored>> {
        self.inner
            .reminders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies `change` to a copy of the reminders, stores it, then takes it (so a failed write
    /// changes nothing). `change` answers `None` when nothing changes.
    async fn change<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<Key, Stored>) -> Option<T>,
        unchanged: T,
    ) -> Result<T, ReminderError> {
        let _turn = self.inner.turn.lock().await;
        let mut next = self.reminders().clone();
        let Some(answer) = change(&mut next) else {
            return Ok(unchanged);
        };
        let file = TableFile {
            clock: self.clock(),
            reminders: next.values().cloned().collect(),
        };
        let bytes = serde_json::to_vec(&file).map_err(|error| storage_error(error.to_string()))?;
        durable::replace(self.inner.providers.storage(), &self.inner.path, &bytes)
            .await
            .map_err(storage_error)?;
        *self.reminders() = next;
        Ok(answer)
    }

    async fn do_register(
        &self,
        id: ActorId,
        name: String,
        delay: Duration,
        period: Option<Duration>,
    ) -> Result<UID, ReminderError> {
        ticks::check(&name, delay, period).map_err(|bad| bad.reminder(&id, &name))?;
        let registration = UID::random(self.inner.providers.random());
        let first_due = self.clock().saturating_add(delay);
        let stored = Stored {
            id: id.clone(),
            name: name.clone(),
            registration,
            first_due,
            period,
            delivered: None,
        };
        self.change(
            |reminders| {
                reminders.insert((id, name), stored);
                Some(registration)
            },
            registration,
        )
        .await
    }

    async fn do_unregister(&self, id: ActorId, name: String) -> Result<bool, ReminderError> {
        self.change(
            |reminders| reminders.remove(&(id, name)).map(|_| true),
            false,
        )
        .await
    }

    fn do_list(&self, members: Vec<NetworkAddress>, owner: NetworkAddress) -> Vec<DueReminder> {
        let view = MembershipView::new(0, members);
        let now = self.clock();
        self.reminders()
            .values()
            .filter(|stored| view.owner(&stored.id) == Ok(owner))
            .map(|stored| {
                let (due, next_in) = due(stored, now);
                DueReminder {
                    id: stored.id.clone(),
                    name: stored.name.clone(),
                    registration: stored.registration,
                    period: stored.period,
                    due,
                    next_in,
                }
            })
            .collect()
    }

    fn do_claim(&self, id: ActorId, name: String, registration: UID, tick: u64) -> bool {
        let now = self.clock();
        self.reminders()
            .get(&(id, name))
            .filter(|stored| stored.registration == registration)
            .filter(|stored| stored.delivered.is_none_or(|done| tick > done))
            .is_some_and(|stored| due(stored, now).0.is_some_and(|due| due >= tick))
    }

    async fn do_acknowledge(
        &self,
        id: ActorId,
        name: String,
        registration: UID,
        tick: u64,
    ) -> Result<(), ReminderError> {
        self.change(
            |reminders| {
                let key = (id, name);
                let stored = reminders
                    .get_mut(&key)
                    .filter(|stored| stored.registration == registration)
                    .filter(|stored| stored.delivered.is_none_or(|done| tick > done))?;
                if stored.period.is_none() {
                    reminders.remove(&key);
                } else {
                    stored.delivered = Some(tick);
                }
                Some(())
            },
            (),
        )
        .await
    }
}

impl<P: Providers> ReminderTable for StorageReminderTable<P> {
    fn register(
        &self,
        id: ActorId,
        name: String,
        delay: Duration,
        period: Option<Duration>,
    ) -> BoxFuture<'static, Result<UID, ReminderError>> {
        let table = self.clone();
        Box::pin(async move { table.do_register(id, name, delay, period).await })
    }

    fn unregister(
        &self,
        id: ActorId,
        name: String,
    ) -> BoxFuture<'static, Result<bool, ReminderError>> {
        let table = self.clone();
        Box::pin(async move { table.do_unregister(id, name).await })
    }

    fn list(
        &self,
        members: Vec<NetworkAddress>,
        owner: NetworkAddress,
    ) -> BoxFuture<'static, Result<Vec<DueReminder>, ReminderError>> {
        let listed = self.do_list(members, owner);
        Box::pin(async move { Ok(listed) })
    }

    fn claim(
        &self,
        id: ActorId,
        name: String,
        registration: UID,
        tick: u64,
    ) -> BoxFuture<'static, Result<bool, ReminderError>> {
        let claimed = self.do_claim(id, name, registration, tick);
        Box::pin(async move { Ok(claimed) })
    }

    fn acknowledge(
        &self,
        id: ActorId,
        name: String,
        registration: UID,
        tick: u64,
    ) -> BoxFuture<'static, Result<(), ReminderError>> {
        let table = self.clone();
        Box::pin(async move { table.do_acknowledge(id, name, registration, tick).await })
    }
}

/// How a node drives the reminders it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReminderConfig {
    /// How often the node lists the reminders it owns (it also wakes when the next known tick
    /// falls due). A tick is claimed at most this long (plus the list's round trip) after it
    /// falls due while the owner, its view and the table are up. Default 1 s.
    pub poll_interval: Duration,
}

impl Default for ReminderConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// A bad [`ReminderConfig`] value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReminderConfigError {
    /// `poll_interval` must be at least 1 ms.
    #[error("ReminderConfig::poll_interval must be at least 1 ms (it was {0:?})")]
    PollInterval(Duration),
}

impl ReminderConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// [`ReminderConfigError`] names the bad field and its value.
    pub fn validate(&self) -> Result<(), ReminderConfigError> {
        if self.poll_interval < Duration::from_millis(1) {
            return Err(ReminderConfigError::PollInterval(self.poll_interval));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(first_due: u64, period: Option<u64>, delivered: Option<u64>) -> Stored {
        Stored {
            id: ActorId::new("A", 1),
            name: "r".into(),
            registration: UID::new(1, 2),
            first_due: Duration::from_secs(first_due),
            period: period.map(Duration::from_secs),
            delivered,
        }
    }

    #[test]
    fn test_due_ticks() {
        let s = Duration::from_secs;
        assert_eq!(due(&stored(10, Some(5), None), s(3)), (None, Some(s(7))));
        assert_eq!(
            due(&stored(10, Some(5), None), s(10)),
            (Some(0), Some(s(5)))
        );
        assert_eq!(
            due(&stored(10, Some(5), None), s(23)),
            (Some(2), Some(s(2)))
        );
        assert_eq!(
            due(&stored(10, Some(5), Some(2)), s(23)),
            (None, Some(s(2)))
        );
        assert_eq!(due(&stored(10, None, None), s(23)), (Some(0), None));
        assert_eq!(due(&stored(10, None, Some(0)), s(23)), (None, None));
    }
}
