//! Floor 3: one node's partition of the directory. The partition that owns an identity (by
//! rendezvous hashing over the membership view) is the only place its entry is created, confirmed
//! or removed. Every change is made durable (write, sync, rename of the partition's file) before
//! it is answered, so a rebooted node knows every entry it granted and never reuses a grant.
//!
//! Removal by anyone but the host itself goes through revocation: the entry is marked revoking
//! (confirmations of it are refused meanwhile), the host is asked, and only a host that answers
//! [`Revoked`](super::wire::Revocation::Revoked) loses its entry. The node layer does the asking;
//! this file only keeps the table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;

use moonpool_core::{NetworkAddress, StorageProvider};
use serde::{Deserialize, Serialize};

use super::durable;
use super::error::ActorError;
use super::identity::ActorId;
use moonpool_core::UID;

use super::wire::{Entry, Registration};

/// The durable part of a partition.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Table {
    /// The last grant issued: the next one is above it.
    last_grant: u64,
    /// The entries (a list: JSON maps take only string keys).
    entries: Vec<(ActorId, Record)>,
}

/// An entry and the activation that confirmed it (none before confirmation). Every activation a
/// host starts has a fresh random id, so a late release from an activation that already ended
/// cannot remove the entry a later activation of the same grant confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    entry: Entry,
    activation: Option<UID>,
}

#[derive(Debug, Default)]
struct Memory {
    last_grant: u64,
    entries: BTreeMap<ActorId, Record>,
    /// Entries being revoked (not durable: a reboot forgets a revocation in progress, which
    /// only leaves the entry in place).
    revoking: BTreeSet<ActorId>,
}

impl Memory {
    fn table(&self) -> Table {
        Table {
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
    pub(crate) async fn load(
        node: NetworkAddress,
        storage: S,
        path: PathBuf,
    ) -> Result<Self, ActorError> {
        let failed = |reason: String| ActorError::Directory { node, reason };
        let table: Table = match durable::read(&storage, &path).await.map_err(failed)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|error| failed(format!("{} is corrupt: {error}", path.display())))?,
            None => Table::default(),
        };
        let memory = Memory {
            last_grant: table.last_grant,
            entries: table.entries.into_iter().collect(),
            revoking: BTreeSet::new(),
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

    /// The entry of `id`, created at `proposal` under a fresh grant when there is none.
    pub(crate) async fn register(
        &self,
        id: ActorId,
        proposal: NetworkAddress,
        view: u64,
    ) -> Result<Registration, ActorError> {
        if let Some(record) = self.memory()?.entries.get(&id) {
            return Ok(Registration {
                entry: record.entry,
                created: false,
            });
        }
        let _turn = self.disk.lock().await;
        let (entry, table) = {
            let memory = self.memory()?;
            if let Some(record) = memory.entries.get(&id) {
                return Ok(Registration {
                    entry: record.entry,
                    created: false,
                });
            }
            let entry = Entry {
                node: proposal,
                grant: memory.last_grant + 1,
                view,
            };
            let mut table = memory.table();
            table.last_grant = entry.grant;
            table.entries.push((
                id.clone(),
                Record {
                    entry,
                    activation: None,
                },
            ));
            (entry, table)
        };
        self.persist(&table).await?;
        let mut memory = self.memory()?;
        memory.last_grant = entry.grant;
        memory.entries.insert(
            id,
            Record {
                entry,
                activation: None,
            },
        );
        Ok(Registration {
            entry,
            created: true,
        })
    }

    /// True when `entry` is `id`'s current entry and is not being revoked; it is then recorded
    /// (durably) as hosted by `activation`. Only the entry's node confirms it, for a slot it
    /// holds; a node has one incarnation alive at a time, so a newer activation confirming
    /// replaces an older one, which has ended.
    pub(crate) async fn confirm(
        &self,
        id: &ActorId,
        entry: &Entry,
        activation: UID,
    ) -> Result<bool, ActorError> {
        let current = |memory: &Memory| {
            memory.entries.get(id).map(|record| record.entry) == Some(*entry)
                && !memory.revoking.contains(id)
        };
        {
            let memory = self.memory()?;
            if !current(&memory) {
                return Ok(false);
            }
            if memory.entries.get(id).and_then(|record| record.activation) == Some(activation) {
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
        Ok(true)
    }

    /// Removes `id`'s entry if it is still `entry` and, when `activation` is given (a release by
    /// its host), still recorded as confirmed by that activation.
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

    #[test]
    fn test_partition_grants_once_fences_releases_and_survives_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("actor-directory.json");
        let me: NetworkAddress = "10.0.0.1:1".parse().unwrap();
        let host: NetworkAddress = "10.0.0.2:1".parse().unwrap();
        let id = ActorId::new("A", 1);
        let (first, second) = (UID::new(1, 1), UID::new(2, 2));
        block_on(async {
            let storage = TokioStorageProvider::new();
            let partition = DirectoryPartition::load(me, storage.clone(), path.clone())
                .await
                .unwrap();
            let made = partition.register(id.clone(), host, 1).await.unwrap();
            assert!(made.created);
            assert_eq!(made.entry.grant, 1);
            // A second registration, elsewhere, finds the same entry.
            let again = partition.register(id.clone(), me, 1).await.unwrap();
            assert_eq!((again.created, again.entry), (false, made.entry));
            let entry = made.entry;
            assert!(partition.confirm(&id, &entry, first).await.unwrap());
            // A later activation of the same grant confirms; the first one's late release
            // must not remove the entry.
            assert!(partition.confirm(&id, &entry, second).await.unwrap());
            partition.remove(&id, &entry, Some(first)).await.unwrap();
            assert_eq!(partition.len(), 1);
            // Revocation in progress refuses confirmation; a refused revocation keeps it.
            assert!(partition.begin_revoke(&id, &entry).unwrap());
            assert!(!partition.begin_revoke(&id, &entry).unwrap());
            assert!(!partition.confirm(&id, &entry, second).await.unwrap());
            partition.finish_revoke(&id, &entry, false).await.unwrap();
            assert!(partition.confirm(&id, &entry, second).await.unwrap());
            // Its own release removes it.
            partition.remove(&id, &entry, Some(second)).await.unwrap();
            assert_eq!(partition.len(), 0);
            assert!(!partition.confirm(&id, &entry, second).await.unwrap());
            let next = partition.register(id.clone(), host, 1).await.unwrap();
            assert_eq!(next.entry.grant, 2);
            drop(partition);
            // Reloaded from disk: the entry and the grant counter are back.
            let reloaded = DirectoryPartition::load(me, storage, path).await.unwrap();
            assert_eq!(reloaded.len(), 1);
            let found = reloaded.register(id.clone(), me, 1).await.unwrap();
            assert_eq!((found.created, found.entry), (false, next.entry));
            let other = reloaded
                .register(ActorId::new("A", 2), me, 1)
                .await
                .unwrap();
            assert_eq!(
                other.entry.grant, 3,
                "grants are never reused after a reload"
            );
        });
    }
}
