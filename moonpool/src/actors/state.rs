//! Floor 2: persistent actor state with optimistic concurrency and fencing.
//!
//! A [`StateStore`] keeps, per identity, the state's bytes, its ETag (a version: 0 before the
//! first write, then 1, 2, ...) and its fence (the newest activation grant that read it). A write
//! names the ETag it read and its activation's grant: a stale ETag is
//! [`StateError::StaleETag`], a grant older than the fence is [`StateError::FencedOff`]; neither
//! writes anything. Two stores: [`MemoryStateStore`] and [`FileStateStore`] (one file per identity,
//! replaced by write, sync, rename). An actor sees its state as a [`PersistentState`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use moonpool_core::StorageProvider;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::durable;
use super::error::StateError;
use super::identity::ActorId;

/// One identity's stored state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredState {
    /// The version of the data: 0 before the first write.
    pub etag: u64,
    /// The newest activation grant that read or wrote the state; older grants may not write.
    pub fence: u64,
    /// The state's encoding (JSON), `None` before the first write.
    pub data: Option<String>,
}

/// Where actor state lives. Implementations check ETag and fence atomically with the write.
pub trait StateStore: Send + Sync + 'static {
    /// Reads `id`'s state for the activation with grant `epoch`, raising the fence to `epoch`
    /// (durably, before answering) so that no older activation can write after this read.
    fn read(&self, id: ActorId, epoch: u64) -> BoxFuture<'static, Result<StoredState, StateError>>;

    /// Writes `data` as `id`'s state if its ETag is still `expected` and `epoch` is not below
    /// the fence; returns the new ETag.
    fn write(
        &self,
        id: ActorId,
        epoch: u64,
        expected: u64,
        data: String,
    ) -> BoxFuture<'static, Result<u64, StateError>>;
}

/// The rule every store applies: is this write allowed over `current`?
pub(crate) fn check_write(
    id: &ActorId,
    current: &StoredState,
    epoch: u64,
    expected: u64,
) -> Result<(), StateError> {
    if epoch < current.fence {
        return Err(StateError::FencedOff {
            id: id.clone(),
            epoch,
            fence: current.fence,
        });
    }
    if current.etag != expected {
        return Err(StateError::StaleETag {
            id: id.clone(),
            expected,
            found: current.etag,
        });
    }
    Ok(())
}

/// State in memory: lost when the process ends. For tests and for state that need not survive.
#[derive(Debug, Clone, Default)]
pub struct MemoryStateStore {
    states: Arc<Mutex<BTreeMap<ActorId, StoredState>>>,
}

impl MemoryStateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// What is stored for `id` (for tests and audits).
    pub fn peek(&self, id: &ActorId) -> Option<StoredState> {
        self.states.lock().ok()?.get(id).cloned()
    }
}

impl StateStore for MemoryStateStore {
    fn read(&self, id: ActorId, epoch: u64) -> BoxFuture<'static, Result<StoredState, StateError>> {
        let result = match self.states.lock() {
            Ok(mut states) => {
                let entry = states.entry(id).or_default();
                entry.fence = entry.fence.max(epoch);
                Ok(entry.clone())
            }
            Err(_) => Err(StateError::Storage {
                id,
                reason: "the memory store's lock is poisoned".into(),
            }),
        };
        Box::pin(async move { result })
    }

    fn write(
        &self,
        id: ActorId,
        epoch: u64,
        expected: u64,
        data: String,
    ) -> BoxFuture<'static, Result<u64, StateError>> {
        let result = match self.states.lock() {
            Ok(mut states) => {
                let entry = states.entry(id.clone()).or_default();
                check_write(&id, entry, epoch, expected).map(|()| {
                    entry.etag += 1;
                    entry.fence = entry.fence.max(epoch);
                    entry.data = Some(data);
                    entry.etag
                })
            }
            Err(_) => Err(StateError::Storage {
                id,
                reason: "the memory store's lock is poisoned".into(),
            }),
        };
        Box::pin(async move { result })
    }
}

/// State in files through a [`StorageProvider`]: one file per identity in `dir`, each change a
/// write of a temporary file, a sync and a rename, finished before the operation answers. State
/// written this way survives a crash and reboot of the node.
pub struct FileStateStore<S: StorageProvider> {
    storage: S,
    dir: PathBuf,
    /// One operation at a time: the check and the write of one identity must not interleave
    /// with another's on the same file.
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl<S: StorageProvider> Clone for FileStateStore<S> {
    fn clone(&self) -> Self {
        Self {
            storage: self.storage.clone(),
            dir: self.dir.clone(),
            turn: Arc::clone(&self.turn),
        }
    }
}

impl<S: StorageProvider> std::fmt::Debug for FileStateStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStateStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// What a state file holds: the identity (checked on read) and its stored state.
#[derive(Serialize, Deserialize)]
struct StateFile {
    id: ActorId,
    state: StoredState,
}

impl<S: StorageProvider> FileStateStore<S> {
    /// A store in the directory `dir` of `storage` (the directory must exist on real file
    /// systems; the simulator has no directories).
    pub fn new(storage: S, dir: impl Into<PathBuf>) -> Self {
        Self {
            storage,
            dir: dir.into(),
            turn: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The file of `id`: its type and key, hex-encoded (unique and safe in any file system).
    fn path(&self, id: &ActorId) -> Result<PathBuf, StateError> {
        let encoded = serde_json::to_vec(id).map_err(|error| StateError::Storage {
            id: id.clone(),
            reason: error.to_string(),
        })?;
        if encoded.len() > 100 {
            return Err(StateError::Storage {
                id: id.clone(),
                reason: format!(
                    "the identity is {} bytes encoded; file-backed state takes at most 100",
                    encoded.len()
                ),
            });
        }
        let name: String = encoded.iter().map(|byte| format!("{byte:02x}")).collect();
        Ok(self.dir.join(format!("actor-{name}.state")))
    }

    async fn load(&self, id: &ActorId) -> Result<StoredState, StateError> {
        let path = self.path(id)?;
        let bytes = durable::read(&self.storage, &path)
            .await
            .map_err(|reason| StateError::Storage {
                id: id.clone(),
                reason,
            })?;
        let Some(bytes) = bytes else {
            return Ok(StoredState::default());
        };
        let file: StateFile =
            serde_json::from_slice(&bytes).map_err(|error| StateError::Corrupt {
                id: id.clone(),
                reason: format!("{}: {error}", path.display()),
            })?;
        if &file.id != id {
            return Err(StateError::Corrupt {
                id: id.clone(),
                reason: format!("{} holds the state of {}", path.display(), file.id),
            });
        }
        Ok(file.state)
    }

    async fn store(&self, id: &ActorId, state: &StoredState) -> Result<(), StateError> {
        let path = self.path(id)?;
        let bytes = serde_json::to_vec(&StateFile {
            id: id.clone(),
            state: state.clone(),
        })
        .map_err(|error| StateError::Storage {
            id: id.clone(),
            reason: error.to_string(),
        })?;
        durable::replace(&self.storage, &path, &bytes)
            .await
            .map_err(|reason| StateError::Storage {
                id: id.clone(),
                reason,
            })
    }
}

impl<S: StorageProvider> StateStore for FileStateStore<S> {
    fn read(&self, id: ActorId, epoch: u64) -> BoxFuture<'static, Result<StoredState, StateError>> {
        let store = self.clone();
        Box::pin(async move {
            let _turn = store.turn.lock().await;
            let mut state = store.load(&id).await?;
            if epoch > state.fence {
                state.fence = epoch;
                store.store(&id, &state).await?;
            }
            Ok(state)
        })
    }

    fn write(
        &self,
        id: ActorId,
        epoch: u64,
        expected: u64,
        data: String,
    ) -> BoxFuture<'static, Result<u64, StateError>> {
        let store = self.clone();
        Box::pin(async move {
            let _turn = store.turn.lock().await;
            let mut state = store.load(&id).await?;
            check_write(&id, &state, epoch, expected)?;
            state.etag += 1;
            state.fence = state.fence.max(epoch);
            state.data = Some(data);
            store.store(&id, &state).await?;
            Ok(state.etag)
        })
    }
}

/// An actor's view of its persistent state: the value, and the ETag it was read at.
///
/// Change it through [`state_mut`](Self::state_mut); nothing is stored until
/// [`write_state`](Self::write_state) returns `Ok`. A failed write leaves the stored state
/// unchanged; the value in memory keeps the change, so an actor that cannot write should
/// [`reload`](Self::reload) or fail its turn.
pub struct PersistentState<T> {
    id: ActorId,
    epoch: u64,
    etag: u64,
    value: T,
    store: Arc<dyn StateStore>,
}

impl<T: std::fmt::Debug> std::fmt::Debug for PersistentState<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistentState")
            .field("id", &self.id)
            .field("epoch", &self.epoch)
            .field("etag", &self.etag)
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

impl<T: Serialize + DeserializeOwned + Default + Send> PersistentState<T> {
    /// Reads `id`'s state from `store` for grant `epoch` (raising the fence).
    ///
    /// # Errors
    /// The store failed or holds bytes that are not a `T`.
    pub async fn load(
        store: Arc<dyn StateStore>,
        id: ActorId,
        epoch: u64,
    ) -> Result<Self, StateError> {
        let stored = store.read(id.clone(), epoch).await?;
        let value = match &stored.data {
            Some(data) => serde_json::from_str(data).map_err(|error| StateError::Corrupt {
                id: id.clone(),
                reason: error.to_string(),
            })?,
            None => T::default(),
        };
        Ok(Self {
            id,
            epoch,
            etag: stored.etag,
            value,
            store,
        })
    }

    /// The state.
    pub fn state(&self) -> &T {
        &self.value
    }

    /// The state, to change (then [`write_state`](Self::write_state)).
    pub fn state_mut(&mut self) -> &mut T {
        &mut self.value
    }

    /// The ETag the state was last read or written at (0: never written).
    pub fn etag(&self) -> u64 {
        self.etag
    }

    /// Stores the state, if nobody wrote it since it was read and no newer activation fenced
    /// this one off.
    ///
    /// # Errors
    /// [`StateError::StaleETag`], [`StateError::FencedOff`] (nothing written), or a storage
    /// failure (nothing written).
    pub async fn write_state(&mut self) -> Result<(), StateError> {
        let data = serde_json::to_string(&self.value).map_err(|error| StateError::Storage {
            id: self.id.clone(),
            reason: error.to_string(),
        })?;
        self.etag = self
            .store
            .write(self.id.clone(), self.epoch, self.etag, data)
            .await?;
        Ok(())
    }

    /// Reads the stored state again (after a failed write, to drop the change kept in memory).
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub async fn reload(&mut self) -> Result<(), StateError> {
        let fresh = Self::load(Arc::clone(&self.store), self.id.clone(), self.epoch).await?;
        self.etag = fresh.etag;
        self.value = fresh.value;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn test_memory_store_rejects_stale_etag_and_fenced_writer() {
        let store = MemoryStateStore::new();
        let id = ActorId::new("Counter", 1);
        block_on(async {
            assert_eq!(store.read(id.clone(), 1).await.unwrap().etag, 0);
            assert_eq!(store.write(id.clone(), 1, 0, "1".into()).await, Ok(1));
            assert_eq!(
                store.write(id.clone(), 1, 0, "2".into()).await,
                Err(StateError::StaleETag {
                    id: id.clone(),
                    expected: 0,
                    found: 1
                })
            );
            // A newer activation reads: the old one is fenced off.
            assert_eq!(store.read(id.clone(), 2).await.unwrap().fence, 2);
            assert_eq!(
                store.write(id.clone(), 1, 1, "3".into()).await,
                Err(StateError::FencedOff {
                    id: id.clone(),
                    epoch: 1,
                    fence: 2
                })
            );
            assert_eq!(store.write(id.clone(), 2, 1, "4".into()).await, Ok(2));
            assert_eq!(store.peek(&id).unwrap().data.as_deref(), Some("4"));
        });
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn test_file_store_keeps_etag_and_fence_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let id = ActorId::new("Account", "alice");
        let storage = moonpool_core::TokioStorageProvider::new();
        block_on(async {
            let store = FileStateStore::new(storage.clone(), dir.path());
            assert_eq!(
                store.read(id.clone(), 3).await.unwrap(),
                StoredState {
                    etag: 0,
                    fence: 3,
                    data: None
                }
            );
            assert_eq!(store.write(id.clone(), 3, 0, "10".into()).await, Ok(1));
            let reopened = FileStateStore::new(storage, dir.path());
            let stored = reopened.read(id.clone(), 3).await.unwrap();
            assert_eq!(
                (stored.etag, stored.fence, stored.data.as_deref()),
                (1, 3, Some("10"))
            );
            assert!(matches!(
                reopened.write(id.clone(), 2, 1, "11".into()).await,
                Err(StateError::FencedOff {
                    epoch: 2,
                    fence: 3,
                    ..
                })
            ));
            assert!(matches!(
                reopened.write(id.clone(), 3, 0, "11".into()).await,
                Err(StateError::StaleETag {
                    expected: 0,
                    found: 1,
                    ..
                })
            ));
            let mut typed = PersistentState::<u64>::load(Arc::new(reopened), id, 4)
                .await
                .unwrap();
            assert_eq!(*typed.state(), 10);
            *typed.state_mut() += 1;
            typed.write_state().await.unwrap();
            assert_eq!(typed.etag(), 2);
        });
    }
}
