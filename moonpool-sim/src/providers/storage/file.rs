//! [`SimFile`]: an open simulated file, its reads, writes and seeks.

use std::future::Future;
use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use moonpool_core::StorageFile;
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

use crate::executor::ProcessId;
use crate::handle::{WorldHandle, WorldState};
use crate::kernel::Core;
use crate::kernel::fault::FaultKind;
use crate::storage::disk::{self, MAX_FILE_SIZE, Pending};
use crate::storage::{Begin, IoKind, StorageState, begin};

use super::wait;

/// How much longer a buggified sync takes.
const SLOW_SYNC: std::time::Duration = std::time::Duration::from_millis(20);

/// An operation a [`SimFile`] started from `poll_read` / `poll_write` and waits for.
#[derive(Debug, Clone, Copy)]
pub(super) struct InFlight {
    kind: IoKind,
    /// `None` on a failed disk: it never completes.
    op: Option<u64>,
}

/// An open simulated file: Tokio's `AsyncRead`, `AsyncWrite` and `AsyncSeek`, plus
/// [`StorageFile`].
///
/// Reads and writes take simulated time; data written is durable only after a sync. Seeking is
/// instantaneous (it touches no disk). A handle opened before its process rebooted fails every
/// operation with `NotConnected`.
pub struct SimFile {
    pub(super) world: WorldHandle,
    pub(super) process: ProcessId,
    pub(super) generation: u64,
    pub(super) inode: u64,
    pub(super) path: PathBuf,
    pub(super) readable: bool,
    pub(super) writable: bool,
    pub(super) append: bool,
    pub(super) position: u64,
    pub(super) in_flight: Option<InFlight>,
}

impl SimFile {
    /// The path the file was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, kind: io::ErrorKind, message: &str) -> io::Error {
        io::Error::new(kind, format!("{}: {message}", self.path.display()))
    }

    /// Fails when the handle outlived its process incarnation or its file.
    fn check(&self, state: &WorldState) -> io::Result<()> {
        match state.core.process(self.process) {
            Some(p) if p.alive && p.generation == self.generation => {}
            Some(p) => {
                return Err(self.error(
                    io::ErrorKind::NotConnected,
                    &format!(
                        "stale handle: opened by incarnation {} of process '{}', which is gone",
                        self.generation, p.name
                    ),
                ));
            }
            None => return Err(self.error(io::ErrorKind::NotConnected, "unknown process")),
        }
        if state.storage.inode(self.inode).is_none() {
            return Err(self.error(io::ErrorKind::NotFound, "the file no longer exists"));
        }
        Ok(())
    }

    /// Abandons a read or write that was started and never completed.
    fn cancel_in_flight(&mut self, storage: &mut StorageState) {
        if let Some(InFlight { op: Some(op), .. }) = self.in_flight.take() {
            storage.cancel(op);
        }
    }

    /// Starts (once) and polls the operation backing a `poll_read` / `poll_write`.
    fn poll_io(
        &mut self,
        state: &mut WorldState,
        cx: &Context<'_>,
        kind: IoKind,
        bytes: u64,
    ) -> Poll<()> {
        if self.in_flight.is_some_and(|f| f.kind != kind) {
            self.cancel_in_flight(&mut state.storage);
        }
        let in_flight = match self.in_flight {
            Some(in_flight) => in_flight,
            None => {
                let plan = begin(
                    &mut state.storage,
                    &mut state.core,
                    self.process,
                    kind,
                    bytes,
                );
                let in_flight = InFlight {
                    kind,
                    op: match plan {
                        Begin::Scheduled(op) => Some(op),
                        Begin::Never => None,
                    },
                };
                self.in_flight = Some(in_flight);
                in_flight
            }
        };
        crate::executor::note_wait(crate::executor::WaitReason::Storage);
        let Some(op) = in_flight.op else {
            return Poll::Pending;
        };
        let executor = state.timers.executor();
        if state.storage.poll_op(op, cx.waker(), executor) {
            self.in_flight = None;
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// What `poll_read` and `poll_write` share: a live handle (else its unfinished operation is
    /// abandoned), opened for this access (`allowed`, else `denied` is the error), then the disk
    /// operation for `bytes`. `Ready(Ok)` when the data may move now.
    fn poll_access(
        &mut self,
        state: &mut WorldState,
        cx: &Context<'_>,
        kind: IoKind,
        bytes: u64,
        allowed: bool,
        denied: &str,
    ) -> Poll<io::Result<()>> {
        if let Err(error) = self.check(state) {
            self.cancel_in_flight(&mut state.storage);
            return Poll::Ready(Err(error));
        }
        if !allowed {
            return Poll::Ready(Err(self.error(io::ErrorKind::PermissionDenied, denied)));
        }
        ready!(self.poll_io(state, cx, kind, bytes));
        Poll::Ready(self.check(state))
    }

    /// Runs one whole-file operation (sync, set_len, size) through the disk.
    async fn file_io(&mut self, kind: IoKind) -> io::Result<()> {
        let world = self.world.clone();
        let plan = world.with(|state| {
            self.cancel_in_flight(&mut state.storage);
            self.check(state)?;
            Ok::<_, io::Error>(begin(
                &mut state.storage,
                &mut state.core,
                self.process,
                kind,
                0,
            ))
        })?;
        wait(&world, plan).await;
        Ok(())
    }

    /// `sync_all` and `sync_data` alike: the unsynced changes become durable, unless the
    /// injected sync failure fires.
    async fn sync(&mut self) -> io::Result<()> {
        // Buggify: a slow sync (a busy disk, a long journal commit); a crash meanwhile finds
        // nothing made durable, as it would mid-sync.
        if moonpool_core::buggify!() {
            crate::providers::time::sleep_for(&self.world, SLOW_SYNC).await;
        }
        self.file_io(IoKind::Sync).await?;
        let world = self.world.clone();
        world.with(|state| {
            self.check(state)?;
            let core = &mut state.core;
            if core
                .rng
                .fault(FaultKind::StorageSyncFailure)
                .chance(state.storage.config.sync_failure_probability)
            {
                core.fired(FaultKind::StorageSyncFailure, "storage.sync_failure");
                return Err(self.error(
                    io::ErrorKind::Other,
                    "sync failed (injected): nothing was made durable",
                ));
            }
            if let Some(inode) = state.storage.inode_mut(self.inode) {
                inode.flush();
            }
            Ok(())
        })
    }
}

/// Reads at `position` as of now, with the read faults of the configuration.
fn read_locked(
    storage: &mut StorageState,
    core: &mut Core,
    inode: u64,
    position: u64,
    wanted: usize,
) -> Vec<u8> {
    let config = &storage.config;
    let (misdirect_p, uninit_p, corrupt_p) = (
        config.misdirected_read_probability,
        config.uninitialized_read_probability,
        config.read_corruption_probability,
    );
    let Some(file) = storage.inodes.get(&inode) else {
        return Vec::new();
    };
    let image = &file.current;
    let len = image.len();
    if position >= len || wanted == 0 {
        return Vec::new();
    }
    let n = usize::try_from(len - position).map_or(wanted, |left| left.min(wanted));
    let mut source = position;
    let misdirect = core.rng.fault(FaultKind::StorageMisdirectedRead);
    if misdirect.chance(misdirect_p) {
        source = disk::other_offset(misdirect, position, len);
        core.fired(
            FaultKind::StorageMisdirectedRead,
            "storage.misdirected_read",
        );
    }
    let mut out = image.read(source, n);
    if uninit_p > 0.0 {
        let gaps = image.written.gaps(source, source + n as u64);
        let uninit = core.rng.fault(FaultKind::StorageUninitializedRead);
        if !gaps.is_empty() && uninit.chance(uninit_p) {
            for (start, end) in gaps {
                let (Ok(from), Ok(to)) = (
                    usize::try_from(start - source),
                    usize::try_from(end - source),
                ) else {
                    continue;
                };
                disk::garbage(uninit, &mut out[from..to]);
            }
            core.fired(
                FaultKind::StorageUninitializedRead,
                "storage.uninitialized_read",
            );
        }
    }
    let corrupt = core.rng.fault(FaultKind::StorageReadCorruption);
    if corrupt.chance(corrupt_p) {
        disk::flip_bits(corrupt, &mut out);
        core.fired(FaultKind::StorageReadCorruption, "storage.read_corruption");
    }
    out
}

/// Writes `buf` at `offset` as of now, with the write faults of the configuration.
fn write_locked(
    storage: &mut StorageState,
    core: &mut Core,
    inode: u64,
    offset: u64,
    buf: &[u8],
) -> io::Result<()> {
    let config = &storage.config;
    let (phantom_p, corrupt_p, misdirect_p) = (
        config.phantom_write_probability,
        config.write_corruption_probability,
        config.misdirected_write_probability,
    );
    let Some(file) = storage.inodes.get_mut(&inode) else {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the file no longer exists",
        ));
    };
    let end = offset.saturating_add(buf.len() as u64);
    if end > MAX_FILE_SIZE {
        return Err(disk::too_large(end));
    }
    if core
        .rng
        .fault(FaultKind::StoragePhantomWrite)
        .chance(phantom_p)
    {
        core.fired(FaultKind::StoragePhantomWrite, "storage.phantom_write");
        return Ok(());
    }
    let mut data = buf.to_vec();
    let corrupt = core.rng.fault(FaultKind::StorageWriteCorruption);
    if corrupt.chance(corrupt_p) {
        disk::flip_bits(corrupt, &mut data);
        core.fired(
            FaultKind::StorageWriteCorruption,
            "storage.write_corruption",
        );
    }
    let mut target = offset;
    let misdirect = core.rng.fault(FaultKind::StorageMisdirectedWrite);
    if misdirect.chance(misdirect_p) {
        let limit = file
            .current
            .len()
            .max(end)
            .min(MAX_FILE_SIZE - buf.len() as u64);
        target = disk::other_offset(misdirect, offset, limit);
        core.fired(
            FaultKind::StorageMisdirectedWrite,
            "storage.misdirected_write",
        );
    }
    file.change(Pending::Write {
        offset: target,
        data,
    });
    Ok(())
}

impl AsyncRead for SimFile {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let world = this.world.clone();
        let mut guard = world.lock();
        let state = &mut *guard;
        let len = state
            .storage
            .inode(this.inode)
            .map_or(0, |file| file.current.len());
        let bytes = len
            .saturating_sub(this.position)
            .min(buf.remaining() as u64);
        let (readable, denied) = (this.readable, "the file was not opened for reading");
        if let Err(error) =
            ready!(this.poll_access(state, cx, IoKind::Read, bytes, readable, denied))
        {
            return Poll::Ready(Err(error));
        }
        // Buggify: a short read, half of what was asked (a read may return fewer bytes than
        // the file has).
        let mut wanted = buf.remaining();
        if wanted > 1 && moonpool_core::buggify_with_prob!(0.05) {
            wanted /= 2;
        }
        let data = read_locked(
            &mut state.storage,
            &mut state.core,
            this.inode,
            this.position,
            wanted,
        );
        buf.put_slice(&data);
        this.position += data.len() as u64;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for SimFile {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let world = this.world.clone();
        let mut guard = world.lock();
        let state = &mut *guard;
        let (writable, denied) = (this.writable, "the file was not opened for writing");
        let bytes = buf.len() as u64;
        if let Err(error) =
            ready!(this.poll_access(state, cx, IoKind::Write, bytes, writable, denied))
        {
            return Poll::Ready(Err(error));
        }
        let offset = if this.append {
            state
                .storage
                .inode(this.inode)
                .map_or(0, |file| file.current.len())
        } else {
            this.position
        };
        // Buggify: a short write, only the first half is taken (a write may accept fewer
        // bytes than offered; `write_all` goes on with the rest).
        let buf = if buf.len() > 1 && moonpool_core::buggify_with_prob!(0.05) {
            buf.get(..buf.len() / 2).unwrap_or(buf)
        } else {
            buf
        };
        let written = write_locked(&mut state.storage, &mut state.core, this.inode, offset, buf);
        match written {
            Ok(()) => {
                this.position = offset + buf.len() as u64;
                Poll::Ready(Ok(buf.len()))
            }
            Err(error) => Poll::Ready(Err(this.error(error.kind(), &error.to_string()))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // No user-space buffer: writes reach the (simulated) OS cache when they complete.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncSeek for SimFile {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        let world = this.world.clone();
        let mut guard = world.lock();
        let state = &mut *guard;
        this.cancel_in_flight(&mut state.storage);
        this.check(state)?;
        let len = state
            .storage
            .inode(this.inode)
            .map_or(0, |file| file.current.len());
        let target = match position {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => len.checked_add_signed(delta),
            SeekFrom::Current(delta) => this.position.checked_add_signed(delta),
        };
        match target {
            Some(target) => {
                this.position = target;
                Ok(())
            }
            None => Err(this.error(
                io::ErrorKind::InvalidInput,
                &format!("seek to {position:?} lands before the start of the file"),
            )),
        }
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.position))
    }
}

impl StorageFile for SimFile {
    fn sync_all(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        self.sync()
    }

    fn sync_data(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        self.sync()
    }

    async fn set_len(&mut self, len: u64) -> io::Result<()> {
        if !self.writable {
            return Err(self.error(
                io::ErrorKind::InvalidInput,
                "set_len on a file not opened for writing",
            ));
        }
        if len > MAX_FILE_SIZE {
            return Err(disk::too_large(len));
        }
        self.file_io(IoKind::SetLen).await?;
        let world = self.world.clone();
        world.with(|state| {
            self.check(state)?;
            if let Some(inode) = state.storage.inode_mut(self.inode) {
                inode.change(Pending::SetLen(len));
            }
            Ok(())
        })
    }

    async fn size(&mut self) -> io::Result<u64> {
        self.file_io(IoKind::Size).await?;
        let world = self.world.clone();
        world.with(|state| {
            self.check(state)?;
            Ok(state
                .storage
                .inode(self.inode)
                .map_or(0, |inode| inode.current.len()))
        })
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let world = self.world.clone();
        world.with(|state| {
            self.cancel_in_flight(&mut state.storage);
            if let Some(inode) = state.storage.inode_mut(self.inode) {
                inode.handles = inode.handles.saturating_sub(1);
            }
            state.storage.collect(self.inode);
        });
    }
}
