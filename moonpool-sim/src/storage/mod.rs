//! Simulated storage (stub: replaced by the storage model).

use std::future::Future;
use std::io;
use std::path::Path;

use moonpool_core::{OpenOptions, StorageError, StorageOperation, StorageProvider};

use crate::executor::ProcessId;
use crate::world::{Core, RebootKind, WorldHandle};

/// Storage configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StorageConfiguration {}

impl StorageConfiguration {
    /// No faults.
    pub fn fast_local() -> Self {
        Self {}
    }

    /// Validate.
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

pub(crate) struct StorageState {}

impl StorageState {
    pub(crate) fn new(_config: StorageConfiguration) -> Self {
        Self {}
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum StorageEvent {}

impl StorageEvent {
    pub(crate) fn fingerprint(&self) -> (u64, u64) {
        match *self {}
    }
}

pub(crate) fn apply(_s: &mut StorageState, _c: &mut Core, event: StorageEvent) {
    match event {}
}

pub(crate) fn process_down(_s: &mut StorageState, _c: &mut Core, _p: ProcessId, _k: RebootKind) {}

/// Storage provider.
#[derive(Clone)]
pub struct SimStorageProvider {
    _world: WorldHandle,
    _process: ProcessId,
}

impl SimStorageProvider {
    pub(crate) fn new(world: WorldHandle, process: ProcessId) -> Self {
        Self {
            _world: world,
            _process: process,
        }
    }
}

/// Stub file.
pub struct SimFile;

fn stub_error() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "storage not built yet")
}

impl tokio::io::AsyncRead for SimFile {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Err(stub_error()))
    }
}
impl tokio::io::AsyncWrite for SimFile {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::task::Poll::Ready(Err(stub_error()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
impl tokio::io::AsyncSeek for SimFile {
    fn start_seek(self: std::pin::Pin<&mut Self>, _: io::SeekFrom) -> io::Result<()> {
        Err(stub_error())
    }
    fn poll_complete(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<u64>> {
        std::task::Poll::Ready(Err(stub_error()))
    }
}
impl moonpool_core::StorageFile for SimFile {
    async fn sync_all(&mut self) -> io::Result<()> {
        Err(stub_error())
    }
    async fn sync_data(&mut self) -> io::Result<()> {
        Err(stub_error())
    }
    async fn set_len(&mut self, _len: u64) -> io::Result<()> {
        Err(stub_error())
    }
    async fn size(&mut self) -> io::Result<u64> {
        Err(stub_error())
    }
}

fn unsupported(op: StorageOperation, path: &Path) -> StorageError {
    StorageError::with_kind(
        op,
        path,
        io::ErrorKind::Unsupported,
        "storage not built yet",
    )
}

impl StorageProvider for SimStorageProvider {
    type File = SimFile;
    fn open(
        &self,
        path: impl AsRef<Path> + Send,
        _o: OpenOptions,
    ) -> impl Future<Output = Result<Self::File, StorageError>> + Send {
        let e = unsupported(StorageOperation::Open, path.as_ref());
        async move { Err(e) }
    }
    fn exists(
        &self,
        path: impl AsRef<Path> + Send,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send {
        let e = unsupported(StorageOperation::Exists, path.as_ref());
        async move { Err(e) }
    }
    fn remove(
        &self,
        path: impl AsRef<Path> + Send,
    ) -> impl Future<Output = Result<(), StorageError>> + Send {
        let e = unsupported(StorageOperation::Remove, path.as_ref());
        async move { Err(e) }
    }
    fn rename(
        &self,
        from: impl AsRef<Path> + Send,
        _to: impl AsRef<Path> + Send,
    ) -> impl Future<Output = Result<(), StorageError>> + Send {
        let e = unsupported(StorageOperation::Rename, from.as_ref());
        async move { Err(e) }
    }
}
