//! [`SimStorageProvider`]; its files, [`SimFile`], are in `file.rs`.

use std::future::{Future, poll_fn};
use std::io;
use std::path::{Path, PathBuf};
use std::task::Poll;

use moonpool_core::{OpenOptions, StorageError, StorageOperation, StorageProvider};

use crate::executor::ProcessId;
use crate::handle::{WorldHandle, WorldState};
use crate::kernel::Core;
use crate::storage::disk::Pending;
use crate::storage::path::{Named, directory_only_error, file_key, name_of};
use crate::storage::{Begin, IoKind, begin};

mod file;

pub use file::SimFile;

/// The disk of one simulated process.
///
/// Paths are normalized with [`Path::components`] (`a//b/./c` is `a/b/c`) and a leading `.` is
/// dropped (`./x` is `x`); there are no directories to create. As on a real file system, a path
/// naming a directory (`/`, `.`, `..`, `a/..`) does not open as a file (`IsADirectory`; `exists`
/// says true), nor does a name followed by a separator (`x/`, `x/.`: the errors Linux gives,
/// `IsADirectory` when creating `x/`, else `NotADirectory` when the file `x` exists and
/// `NotFound` when it does not; `exists` says false), and a path with a NUL byte is refused
/// (`InvalidInput`). Every operation takes
/// simulated time and may meet the faults of the world's
/// [`StorageConfiguration`](crate::StorageConfiguration).
#[derive(Clone)]
pub struct SimStorageProvider {
    world: WorldHandle,
    process: ProcessId,
    /// The boot of the process this provider belongs to: a provider kept from an earlier boot
    /// must not reach the disk of a later one.
    generation: u64,
}

impl SimStorageProvider {
    pub(crate) fn new(world: WorldHandle, process: ProcessId) -> Self {
        let generation =
            world.with(|state| state.core.process(process).map_or(0, |p| p.generation));
        Self {
            world,
            process,
            generation,
        }
    }
}

/// Fails when `process` is no longer in boot `generation` (rebooted since, or down).
fn check_boot(
    core: &Core,
    process: ProcessId,
    generation: u64,
    op: StorageOperation,
    path: &Path,
) -> Result<(), StorageError> {
    match core.process(process) {
        Some(p) if p.alive && p.generation == generation => Ok(()),
        Some(p) => Err(StorageError::with_kind(
            op,
            path,
            io::ErrorKind::NotConnected,
            &format!(
                "this storage provider belongs to boot {generation} of process '{}', which is gone",
                p.name
            ),
        )),
        None => Err(StorageError::with_kind(
            op,
            path,
            io::ErrorKind::NotConnected,
            "unknown process",
        )),
    }
}

fn process_down_error(operation: StorageOperation, path: &Path) -> StorageError {
    StorageError::with_kind(
        operation,
        path,
        io::ErrorKind::NotConnected,
        "the process owning this disk is down",
    )
}

/// A metadata operation (open, exists, remove, rename) of boot `generation` of `process`: fails
/// when that boot is gone, before the disk starts it or once it completes; otherwise waits for the
/// disk (forever, on a failed disk).
async fn metadata_io(
    world: &WorldHandle,
    process: ProcessId,
    generation: u64,
    kind: IoKind,
    op: StorageOperation,
    path: &Path,
) -> Result<(), StorageError> {
    let plan = world.with(|state| {
        check_boot(&state.core, process, generation, op, path)?;
        Ok::<_, StorageError>(begin(&mut state.storage, &mut state.core, process, kind, 0))
    })?;
    wait(world, plan).await;
    world.with(|state| check_boot(&state.core, process, generation, op, path))
}

/// Completes when the operation does.
async fn wait(world: &WorldHandle, plan: Begin) {
    let op = match plan {
        Begin::Scheduled(op) => op,
        Begin::Never => {
            std::future::pending::<()>().await;
            return;
        }
    };
    let mut guard = OpGuard {
        world,
        op: Some(op),
    };
    poll_fn(|cx| {
        let done = world.with(|state| {
            let executor = state.timers.executor();
            state.storage.poll_op(op, cx.waker(), executor)
        });
        if done {
            guard.op = None;
            Poll::Ready(())
        } else {
            crate::executor::note_wait(crate::executor::WaitReason::Storage);
            Poll::Pending
        }
    })
    .await;
}

/// Forgets an operation whose future is dropped before it completed.
struct OpGuard<'a> {
    world: &'a WorldHandle,
    op: Option<u64>,
}

impl Drop for OpGuard<'_> {
    fn drop(&mut self) {
        if let Some(op) = self.op.take() {
            self.world.with(|state| state.storage.cancel(op));
        }
    }
}

/// The key of the file `path` names, or the error a real file system gives for it; for a name
/// followed by a separator (`x/`) that error depends on whether the file `x` exists and on
/// whether the operation creates (see `directory_only_error`).
fn key_on_disk(
    world: &WorldHandle,
    process: ProcessId,
    path: &Path,
    op: StorageOperation,
    creating: bool,
) -> Result<PathBuf, StorageError> {
    match name_of(path) {
        Named::File(key) => Ok(key),
        Named::DirectoryOnly(key) => {
            let exists = world.with(|state| state.storage.lookup(process, &key).is_some());
            Err(directory_only_error(op, path, exists, creating))
        }
        Named::Directory | Named::Invalid => file_key(path, op),
    }
}

impl StorageProvider for SimStorageProvider {
    type File = SimFile;

    fn open(
        &self,
        path: impl AsRef<Path> + Send,
        options: OpenOptions,
    ) -> impl Future<Output = Result<Self::File, StorageError>> + Send {
        let given = path.as_ref().to_path_buf();
        let world = self.world.clone();
        let (process, generation) = (self.process, self.generation);
        async move {
            let op = StorageOperation::Open;
            options.validate_for(&given)?;
            metadata_io(&world, process, generation, IoKind::Open, op, &given).await?;
            let creating = options.create || options.create_new;
            let key = key_on_disk(&world, process, &given, op, creating)?;
            let opened = world.with(|state| open_locked(state, process, &given, key, options))?;
            let (inode, generation) = opened;
            Ok(SimFile {
                world: world.clone(),
                process,
                generation,
                inode,
                path: given,
                readable: options.read,
                writable: options.writable(),
                append: options.append,
                position: 0,
                in_flight: None,
            })
        }
    }

    fn exists(
        &self,
        path: impl AsRef<Path> + Send,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send {
        let given = path.as_ref().to_path_buf();
        let world = self.world.clone();
        let (process, generation) = (self.process, self.generation);
        async move {
            let op = StorageOperation::Exists;
            metadata_io(&world, process, generation, IoKind::Exists, op, &given).await?;
            let key = match name_of(&given) {
                Named::File(key) => key,
                // A directory exists on a real file system (`/`, `.`, `..`).
                Named::Directory => return Ok(true),
                // `x/` is no file, and no directory is kept (a file `x` makes it `ENOTDIR`).
                Named::DirectoryOnly(_) => return Ok(false),
                Named::Invalid => return file_key(&given, op).map(|_| false),
            };
            Ok(world.with(|state| state.storage.lookup(process, &key).is_some()))
        }
    }

    fn remove(
        &self,
        path: impl AsRef<Path> + Send,
    ) -> impl Future<Output = Result<(), StorageError>> + Send {
        let given = path.as_ref().to_path_buf();
        let world = self.world.clone();
        let (process, generation) = (self.process, self.generation);
        async move {
            let op = StorageOperation::Remove;
            metadata_io(&world, process, generation, IoKind::Remove, op, &given).await?;
            let key = key_on_disk(&world, process, &given, op, false)?;
            if world.with(|state| state.storage.unlink(process, &key)) {
                Ok(())
            } else {
                Err(StorageError::with_kind(
                    op,
                    &given,
                    io::ErrorKind::NotFound,
                    "no such file",
                ))
            }
        }
    }

    fn rename(
        &self,
        from: impl AsRef<Path> + Send,
        to: impl AsRef<Path> + Send,
    ) -> impl Future<Output = Result<(), StorageError>> + Send {
        let from = from.as_ref().to_path_buf();
        let to = to.as_ref().to_path_buf();
        let world = self.world.clone();
        let (process, generation) = (self.process, self.generation);
        async move {
            let op = StorageOperation::Rename;
            metadata_io(&world, process, generation, IoKind::Rename, op, &from).await?;
            let source = key_on_disk(&world, process, &from, op, false)?;
            let target = file_key(&to, op)?;
            if target.as_os_str().is_empty() {
                return Err(StorageError::with_kind(
                    op,
                    &from,
                    io::ErrorKind::NotFound,
                    "the target path is empty",
                ));
            }
            if world.with(|state| state.storage.rename(process, &source, target)) {
                Ok(())
            } else {
                Err(StorageError::with_kind(
                    op,
                    &from,
                    io::ErrorKind::NotFound,
                    "no such file",
                ))
            }
        }
    }
}

/// Opens or creates the file; returns its inode and the process generation.
fn open_locked(
    state: &mut WorldState,
    process: ProcessId,
    given: &Path,
    key: PathBuf,
    options: OpenOptions,
) -> Result<(u64, u64), StorageError> {
    let op = StorageOperation::Open;
    let fail =
        |kind: io::ErrorKind, message: &str| StorageError::with_kind(op, given, kind, message);
    let generation = match state.core.process(process) {
        Some(p) if p.alive => p.generation,
        _ => return Err(process_down_error(op, given)),
    };
    let storage = &mut state.storage;
    let inode = match storage.lookup(process, &key) {
        Some(_) if options.create_new => {
            return Err(fail(
                io::ErrorKind::AlreadyExists,
                "the file already exists",
            ));
        }
        Some(inode) => {
            if options.truncate
                && let Some(file) = storage.inode_mut(inode)
            {
                file.change(Pending::SetLen(0));
            }
            inode
        }
        None if key.as_os_str().is_empty() => {
            return Err(fail(io::ErrorKind::NotFound, "the path is empty"));
        }
        None if options.create || options.create_new => storage.create(process, key),
        None => return Err(fail(io::ErrorKind::NotFound, "no such file")),
    };
    if let Some(file) = storage.inode_mut(inode) {
        file.handles += 1;
    }
    Ok((inode, generation))
}
