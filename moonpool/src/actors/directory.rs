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

mod revoke;
mod table;
#[cfg(all(test, feature = "tokio"))]
mod tests;
mod view;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use moonpool_core::{NetworkAddress, StorageProvider, UID};

use super::durable;
use super::error::ActorError;
use super::identity::ActorId;
use super::wire::{Entry, Registration};
pub(crate) use table::Quiet;
use table::{Memory, Record, Table};

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

    /// Entries held (for tests and metrics).
    pub(crate) fn len(&self) -> usize {
        self.memory()
            .map(|memory| memory.entries.len())
            .unwrap_or(0)
    }
}
