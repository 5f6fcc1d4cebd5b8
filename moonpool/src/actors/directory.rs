//! Floor 3: one node's partition of the directory. The partition that owns an identity (by
//! rendezvous hashing over the membership view) is the only place its entry is created, confirmed
//! or removed. Every change is made durable (write, sync, rename of the partition's file) before
//! it is answered, so a rebooted node knows every entry it granted and never reuses a grant.
//!
//! Removal by anyone but the host itself goes through revocation: the entry is marked revoking
//! (confirmations of it are refused meanwhile), the host is asked, and only a host that answers
//! [`Revoked`](super::wire::Revocation::Revoked) loses its entry. The node layer does the asking;
//! this file only keeps the table.
//!
//! Grants are time-bounded: the partition holds an entry for `grant_hold` (the grant plus the
//! drift margin, [`ClusterConfig`](super::ClusterConfig)) after each confirmation (renewal), on
//! its own clock; an entry whose hold has run out may be replaced by a new grant, since its host
//! has stopped processing by then. When the membership view changes, the partition drops every
//! entry it no longer owns (or all of them when versions were skipped: someone else may have
//! owned them in between), and, when it may have gained identities (a member left, the node
//! itself joined, versions were skipped, or the node just started), grants nothing new for the
//! quiet period. A grant is
//! `max(last + 1, version << 32)`, so grants of one identity increase across owners too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use moonpool_core::{NetworkAddress, StorageProvider};
use serde::{Deserialize, Serialize};

use super::durable;
use super::error::ActorError;
use super::identity::ActorId;
use moonpool_core::UID;

use super::membership::MembershipView;
use super::wire::{Entry, Registration};

/// Why the partition grants nothing right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Quiet {
    pub(crate) left: Duration,
}

/// The durable part of a partition.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Table {
    /// The last grant issued: the next one is above it.
    last_grant: u64,
    /// The entries (a list: JSON maps take only string keys).
    entries: Vec<(ActorId, Record)>,
    /// The membership version the entries are owned under.
    #[serde(default)]
    view: u64,
}

/// An entry and the activation that confirmed it (none before confirmation). Every activation a
/// host starts has a fresh random id, so a late release from an activation that already ended
/// cannot remove the entry a later activation of the same grant confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    entry: Entry,
    activation: Option<UID>,
    /// Until when (local clock) the entry's grant may be live: not stored (a reloaded entry is
    /// held for a whole grant from the reload).
    #[serde(skip, default)]
    hold_until: Duration,
}

#[derive(Debug, Default)]
struct Memory {
    last_grant: u64,
    entries: BTreeMap<ActorId, Record>,
    /// Entries being revoked (not durable: a reboot forgets a revocation in progress, which
    /// only leaves the entry in place).
    revoking: BTreeSet<ActorId>,
    /// Quiet periods: no new grant before `until` (local clock) of an identity this node did not
    /// own under `previous` (`None`: of any identity).
    quiet: Vec<(Option<MembershipView>, Duration)>,
    view: u64,
}

impl Memory {
    /// The end of the quiet period that applies to `id` at `now`, if one does.
    fn quiet_for(&self, id: &ActorId, me: NetworkAddress, now: Duration) -> Option<Duration> {
        self.quiet
            .iter()
            .filter(|(previous, until)| {
                now < *until
                    && previous
                        .as_ref()
                        .is_none_or(|view| view.owner(id).ok() != Some(me))
            })
            .map(|(_, until)| *until)
            .max()
    }

    fn table(&self) -> Table {
        Table {
            view: self.view,
            last_grant: self.last_grant,
            entries: self
                .entries
                .iter()
                .map(|(id, entry)| (id.clone(), *entry))
                .collect(),
        }
    }
}

/// One node's directory partition.
pub(crate) struct DirectoryPartition<S: StorageProvider> {
    node: NetworkAddress,
    storage: S,
    path: PathBuf,
    memory: Mutex<Memory>,
    /// Held for every change, across its durable write: changes apply one at a time, in order.
    disk: tokio::sync::Mutex<()>,
}

impl<S: StorageProvider> DirectoryPartition<S> {
    /// Loads the partition from `path` (empty when the file does not exist).
    /// Entries read back are held for `hold` from `now`; nothing new is granted before
    /// `quiet_until`.
    pub(crate) async fn load(
        node: NetworkAddress,
        storage: S,
        path: PathBuf,
        now: Duration,
        hold: Duration,
        quiet_until: Duration,
    ) -> Result<Self, ActorError> {
        let failed = |reason: String| ActorError::Directory { node, reason };
        let table: Table = match durable::read(&storage, &path).await.map_err(failed)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|error| failed(format!("{} is corrupt: {error}", path.display())))?,
            None => Table::default(),
        };
        let memory = Memory {
            last_grant: table.last_grant,
            entries: table
                .entries
                .into_iter()
                .map(|(id, mut record)| {
                    record.hold_until = now.saturating_add(hold);
                    (id, record)
                })
                .collect(),
            revoking: BTreeSet::new(),
            quiet: vec![(None, quiet_until)],
            view: table.view,
        };
        Ok(Self {
            node,
            storage,
            path,
            memory: Mutex::new(memory),
            disk: tokio::sync::Mutex::new(()),
        })
    }

    fn failed(&self, reason: impl Into<String>) -> ActorError {
        ActorError::Directory {
            node: self.node,
            reason: reason.into(),
        }
    }

    fn memory(&self) -> Result<std::sync::MutexGuard<'_, Memory>, ActorError> {
        self.memory
            .lock()
            .map_err(|_| self.failed("the partition's lock is poisoned"))
    }

    async fn persist(&self, table: &Table) -> Result<(), ActorError> {
        let bytes = serde_json::to_vec(table).map_err(|error| self.failed(error.to_string()))?;
        durable::replace(&self.storage, &self.path, &bytes)
            .await
            .map_err(|reason| self.failed(reason))
    }

    /// The entry of `id`, created at `proposal` under a fresh grant when there is none (or when
    /// the one there has outlived its hold at local time `now`). `Err(Quiet)` while the
    /// partition may not grant.
    pub(crate) async fn register(
        &self,
        id: ActorId,
        proposal: NetworkAddress,
        view: u64,
        now: Duration,
        hold: Duration,
    ) -> Result<Result<Registration, Quiet>, ActorError> {
        let live = |memory: &Memory| {
            memory
                .entries
                .get(&id)
                .filter(|record| now < record.hold_until)
                .map(|record| record.entry)
        };
        if let Some(entry) = live(&*self.memory()?) {
            return Ok(Ok(Registration {
                entry,
                created: false,
            }));
        }
        let _turn = self.disk.lock().await;
        let (entry, replaced, table) = {
            let memory = self.memory()?;
            if let Some(entry) = live(&memory) {
                return Ok(Ok(Registration {
                    entry,
                    created: false,
                }));
            }
            // The caller checked ownership under `view`; the partition may have moved to a newer
            // version since (it moves before the node's view does), dropping the entry: grant
            // nothing under the older version.
            if view < memory.view {
                return Ok(Err(Quiet {
                    left: Duration::ZERO,
                }));
            }
            if let Some(until) = memory.quiet_for(&id, self.node, now) {
                return Ok(Err(Quiet {
                    left: until.saturating_sub(now),
                }));
            }
            let entry = Entry {
                node: proposal,
                grant: (memory.last_grant + 1).max(view << 32),
                view,
            };
            let replaced = memory.entries.contains_key(&id);
            let mut table = memory.table();
            table.last_grant = entry.grant;
            table.entries.retain(|(other, _)| *other != id);
            table.entries.push((
                id.clone(),
                Record {
                    entry,
                    activation: None,
                    hold_until: Duration::ZERO,
                },
            ));
            (entry, replaced, table)
        };
        self.persist(&table).await?;
        if replaced {
            moonpool_core::assert_sometimes!(true, "an expired grant is replaced");
        }
        let mut memory = self.memory()?;
        memory.last_grant = entry.grant;
        memory.revoking.remove(&id);
        memory.entries.insert(
            id,
            Record {
                entry,
                activation: None,
                hold_until: now.saturating_add(hold),
            },
        );
        Ok(Ok(Registration {
            entry,
            created: true,
        }))
    }

    /// True when `entry` is `id`'s current entry and is not being revoked; it is then recorded
    /// (durably) as hosted by `activation`. Only the entry's node confirms it, for a slot it
    /// holds; a node has one incarnation alive at a time, so a newer activation confirming
    /// replaces an older one, which has ended.
    ///
    /// A confirmation is also a renewal: the entry is held for `hold` from local time `now`.
    pub(crate) async fn confirm(
        &self,
        id: &ActorId,
        entry: &Entry,
        activation: UID,
        now: Duration,
        hold: Duration,
    ) -> Result<bool, ActorError> {
        let renew = |memory: &mut Memory| {
            if let Some(record) = memory.entries.get_mut(id) {
                record.hold_until = record.hold_until.max(now.saturating_add(hold));
            }
        };
        let current = |memory: &Memory| {
            memory.entries.get(id).map(|record| record.entry) == Some(*entry)
                && !memory.revoking.contains(id)
        };
        {
            let mut memory = self.memory()?;
            if !current(&memory) {
                return Ok(false);
            }
            if memory.entries.get(id).and_then(|record| record.activation) == Some(activation) {
                renew(&mut memory);
                return Ok(true);
            }
        }
        let _turn = self.disk.lock().await;
        let table = {
            let memory = self.memory()?;
            if !current(&memory) {
                return Ok(false);
            }
            let mut table = memory.table();
            for (other, record) in &mut table.entries {
                if other == id {
                    record.activation = Some(activation);
                }
            }
            table
        };
        self.persist(&table).await?;
        let mut memory = self.memory()?;
        if !current(&memory) {
            // Revocation began while the record was written: it refuses confirmation. The
            // record written names this activation, which only matters for release.
            return Ok(false);
        }
        if let Some(record) = memory.entries.get_mut(id) {
            record.activation = Some(activation);
        }
        renew(&mut memory);
        Ok(true)
    }

    /// A release by the host of `entry`: `activation` ended. The entry is removed only if it is
    /// still recorded as confirmed by that activation and its hold has run out at local time
    /// `now`: a release (or a confirmation of an activation that already ended) may arrive late,
    /// after another activation of the same grant confirmed, so only the hold proves that no
    /// activation of the grant still processes. Until then the entry stays, and the host
    /// activates it again on demand.
    pub(crate) async fn release(
        &self,
        id: &ActorId,
        entry: &Entry,
        activation: UID,
        now: Duration,
    ) -> Result<(), ActorError> {
        let releasable = self.memory()?.entries.get(id).is_some_and(|record| {
            record.entry == *entry
                && record.activation == Some(activation)
                && now >= record.hold_until
        });
        if releasable {
            self.remove(id, entry, Some(activation)).await
        } else {
            Ok(())
        }
    }

    /// Removes `id`'s entry if it is still `entry` and, when `activation` is given, still
    /// recorded as confirmed by that activation.
    pub(crate) async fn remove(
        &self,
        id: &ActorId,
        entry: &Entry,
        activation: Option<UID>,
    ) -> Result<(), ActorError> {
        let _turn = self.disk.lock().await;
        let table = {
            let memory = self.memory()?;
            let Some(record) = memory.entries.get(id) else {
                return Ok(());
            };
            if record.entry != *entry {
                return Ok(());
            }
            if activation.is_some() && record.activation != activation {
                return Ok(());
            }
            let mut table = memory.table();
            table.entries.retain(|(other, _)| other != id);
            table
        };
        self.persist(&table).await?;
        let mut memory = self.memory()?;
        memory.entries.remove(id);
        Ok(())
    }

    /// Marks `entry` as being revoked; false when it is not current or already being revoked
    /// (then there is nothing for this caller to do).
    pub(crate) fn begin_revoke(&self, id: &ActorId, entry: &Entry) -> Result<bool, ActorError> {
        let mut memory = self.memory()?;
        if memory.entries.get(id).map(|record| record.entry) != Some(*entry)
            || memory.revoking.contains(id)
        {
            return Ok(false);
        }
        memory.revoking.insert(id.clone());
        Ok(true)
    }

    /// Ends a revocation: removes the entry when the host revoked it.
    pub(crate) async fn finish_revoke(
        &self,
        id: &ActorId,
        entry: &Entry,
        revoked: bool,
    ) -> Result<(), ActorError> {
        let result = if revoked {
            self.remove(id, entry, None).await
        } else {
            Ok(())
        };
        self.memory()?.revoking.remove(id);
        result
    }

    /// True when `entry` is `id`'s entry and its hold ran out at local time `now` (its host has
    /// stopped processing).
    pub(crate) fn expired(&self, id: &ActorId, entry: &Entry, now: Duration) -> bool {
        self.memory().is_ok_and(|memory| {
            memory
                .entries
                .get(id)
                .is_some_and(|record| record.entry == *entry && now >= record.hold_until)
        })
    }

    /// Moves the partition to membership view `view` (from `previous`, the view it last acted on,
    /// if known): drops the entries `me` no longer owns (all of them unless `view` directly
    /// follows `previous`), and starts a quiet period of `quiet` from `now` when `me` may have
    /// gained identities. Returns how many entries were dropped.
    pub(crate) async fn adopt_view(
        &self,
        me: NetworkAddress,
        view: &MembershipView,
        previous: Option<&MembershipView>,
        now: Duration,
        quiet: Duration,
    ) -> Result<usize, ActorError> {
        let _turn = self.disk.lock().await;
        let (table, dropped) = {
            let mut memory = self.memory()?;
            if view.version() <= memory.view && previous.is_some() {
                return Ok(0);
            }
            let follows = previous.is_some_and(|p| p.version() + 1 == view.version())
                || memory.view == view.version();
            // With rendezvous hashing a member gains identities when another member leaves, or
            // when it joins itself.
            let gained = match previous {
                Some(p) if follows => {
                    !p.contains(me) || p.members().iter().any(|m| !view.contains(*m))
                }
                _ => !follows,
            };
            if gained {
                // Only identities this node did not own under `previous` may have been granted
                // elsewhere (all of them when versions were skipped).
                let previous = previous.filter(|_| follows).cloned();
                memory.quiet.retain(|(_, until)| now < *until);
                memory.quiet.push((previous, now.saturating_add(quiet)));
            }
            let before = memory.entries.len();
            memory
                .entries
                .retain(|id, _| follows && view.owner(id).is_ok_and(|owner| owner == me));
            let dropped = before - memory.entries.len();
            let kept: BTreeSet<ActorId> = memory.entries.keys().cloned().collect();
            memory.revoking.retain(|id| kept.contains(id));
            memory.view = view.version();
            (memory.table(), dropped)
        };
        if dropped > 0 {
            moonpool_core::assert_sometimes!(true, "a view change drops directory entries");
        }
        self.persist(&table).await?;
        Ok(dropped)
    }

    /// Entries held (for tests and metrics).
    pub(crate) fn len(&self) -> usize {
        self.memory()
            .map(|memory| memory.entries.len())
            .unwrap_or(0)
    }
}

#[cfg(all(test, feature = "tokio"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use moonpool_core::TokioStorageProvider;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    const HOLD: Duration = Duration::from_secs(4);

    async fn register(
        partition: &DirectoryPartition<TokioStorageProvider>,
        id: &ActorId,
        proposal: NetworkAddress,
        now: Duration,
    ) -> Registration {
        partition
            .register(id.clone(), proposal, 1, now, HOLD)
            .await
            .unwrap()
            .unwrap()
    }

    #[test]
    fn test_partition_grants_once_fences_releases_and_survives_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("actor-directory.json");
        let me: NetworkAddress = "10.0.0.1:1".parse().unwrap();
        let host: NetworkAddress = "10.0.0.2:1".parse().unwrap();
        let id = ActorId::new("A", 1);
        let (first, second) = (UID::new(1, 1), UID::new(2, 2));
        let t = Duration::ZERO;
        let base = 1u64 << 32;
        block_on(async {
            let storage = TokioStorageProvider::new();
            let partition = DirectoryPartition::load(me, storage.clone(), path.clone(), t, HOLD, t)
                .await
                .unwrap();
            let made = register(&partition, &id, host, t).await;
            assert!(made.created);
            assert_eq!(made.entry.grant, base, "the first grant of version 1");
            // A second registration, elsewhere, finds the same entry.
            let again = register(&partition, &id, me, t).await;
            assert_eq!((again.created, again.entry), (false, made.entry));
            let entry = made.entry;
            assert!(
                partition
                    .confirm(&id, &entry, first, t, HOLD)
                    .await
                    .unwrap()
            );
            // A later activation of the same grant confirms; the first one's late release
            // must not remove the entry.
            assert!(
                partition
                    .confirm(&id, &entry, second, t, HOLD)
                    .await
                    .unwrap()
            );
            partition
                .release(&id, &entry, first, HOLD * 2)
                .await
                .unwrap();
            assert_eq!(partition.len(), 1);
            // Revocation in progress refuses confirmation; a refused revocation keeps it.
            assert!(partition.begin_revoke(&id, &entry).unwrap());
            assert!(!partition.begin_revoke(&id, &entry).unwrap());
            assert!(
                !partition
                    .confirm(&id, &entry, second, t, HOLD)
                    .await
                    .unwrap()
            );
            partition.finish_revoke(&id, &entry, false).await.unwrap();
            assert!(
                partition
                    .confirm(&id, &entry, second, t, HOLD)
                    .await
                    .unwrap()
            );
            // Its own release removes it, once the hold has run out (not before: an activation
            // of the same grant may have confirmed since and still run).
            partition.release(&id, &entry, second, t).await.unwrap();
            assert_eq!(partition.len(), 1);
            partition.release(&id, &entry, second, HOLD).await.unwrap();
            assert_eq!(partition.len(), 0);
            assert!(
                !partition
                    .confirm(&id, &entry, second, t, HOLD)
                    .await
                    .unwrap()
            );
            let next = register(&partition, &id, host, t).await;
            assert_eq!(next.entry.grant, base + 1);
            drop(partition);
            // Reloaded from disk: the entry and the grant counter are back.
            let reloaded = DirectoryPartition::load(me, storage, path, t, HOLD, t)
                .await
                .unwrap();
            assert_eq!(reloaded.len(), 1);
            let found = register(&reloaded, &id, me, t).await;
            assert_eq!((found.created, found.entry), (false, next.entry));
            let other = register(&reloaded, &ActorId::new("A", 2), me, t).await;
            assert_eq!(
                other.entry.grant,
                base + 2,
                "grants are never reused after a reload"
            );
            // A grant not renewed within its hold is replaced (its host has stopped).
            assert!(!reloaded.expired(&id, &next.entry, HOLD - Duration::from_millis(1)));
            assert!(reloaded.expired(&id, &next.entry, HOLD));
            let replaced = register(&reloaded, &id, me, HOLD).await;
            assert!(replaced.created);
            assert_eq!(replaced.entry.grant, base + 3);
        });
    }

    #[test]
    fn test_partition_drops_moved_entries_and_keeps_quiet_after_a_member_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("actor-directory.json");
        let a: NetworkAddress = "10.0.0.1:1".parse().unwrap();
        let b: NetworkAddress = "10.0.0.2:1".parse().unwrap();
        let c: NetworkAddress = "10.0.0.3:1".parse().unwrap();
        let t = Duration::ZERO;
        let quiet = Duration::from_secs(10);
        block_on(async {
            let storage = TokioStorageProvider::new();
            let partition = DirectoryPartition::load(a, storage, path, t, HOLD, t)
                .await
                .unwrap();
            let v1 = MembershipView::new(1, [a, b]);
            partition.adopt_view(a, &v1, None, t, quiet).await.unwrap();
            // Version 1 is new to the partition (it had none): quiet.
            let id = (0..100)
                .map(|key| ActorId::new("A", key))
                .find(|id| v1.owner(id).unwrap() == a)
                .unwrap();
            let refused = partition.register(id.clone(), a, 1, t, HOLD).await.unwrap();
            assert_eq!(refused, Err(Quiet { left: quiet }));
            let made = partition
                .register(id.clone(), a, 1, quiet, HOLD)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(made.entry.grant, 1 << 32);
            // A join (version 2) that keeps `id` at `a`: kept, no quiet.
            let v2 = MembershipView::new(2, [a, b, c]);
            partition
                .adopt_view(a, &v2, Some(&v1), quiet, quiet)
                .await
                .unwrap();
            let kept = v2.owner(&id).unwrap() == a;
            assert_eq!(partition.len(), usize::from(kept));
            // A leave (version 3): `a` gains what `b` owned, and is quiet for those only.
            let v3 = MembershipView::new(3, [a, c]);
            let now = quiet + Duration::from_secs(1);
            partition
                .adopt_view(a, &v3, Some(&v2), now, quiet)
                .await
                .unwrap();
            let keys = 0..1000;
            let gained = keys
                .clone()
                .map(|key| ActorId::new("A", key))
                .find(|id| v2.owner(id).unwrap() == b && v3.owner(id).unwrap() == a)
                .unwrap();
            assert!(matches!(
                partition.register(gained, a, 3, now, HOLD).await.unwrap(),
                Err(Quiet { .. })
            ));
            let kept = keys
                .map(|key| ActorId::new("A", key + 1000))
                .find(|id| v2.owner(id).unwrap() == a && v3.owner(id).unwrap() == a)
                .unwrap();
            assert!(
                partition
                    .register(kept, a, 3, now, HOLD)
                    .await
                    .unwrap()
                    .is_ok(),
                "an identity owned all along is granted at once"
            );
            // A member that joins gains identities: quiet for all it owns now.
            let joiner = DirectoryPartition::load(
                b,
                TokioStorageProvider::new(),
                dir.path().join("b.json"),
                now,
                HOLD,
                now,
            )
            .await
            .unwrap();
            joiner.adopt_view(b, &v3, None, now, quiet).await.unwrap();
            let back = MembershipView::new(4, [a, b, c]);
            joiner
                .adopt_view(b, &back, Some(&v3), now + quiet, quiet)
                .await
                .unwrap();
            let regained = (0..1000)
                .map(|key| ActorId::new("A", key))
                .find(|id| back.owner(id).unwrap() == b)
                .unwrap();
            assert!(matches!(
                joiner
                    .register(regained, b, 4, now + quiet, HOLD)
                    .await
                    .unwrap(),
                Err(Quiet { .. })
            ));
            // Skipping versions drops everything.
            let v5 = MembershipView::new(5, [a, c]);
            partition
                .adopt_view(a, &v5, Some(&v3), now, quiet)
                .await
                .unwrap();
            assert_eq!(partition.len(), 0);
        });
    }
}
