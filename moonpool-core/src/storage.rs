//! Storage: files with explicit durability.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite};

/// How to open a file; mirrors [`std::fs::OpenOptions`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Open for reading.
    pub read: bool,
    /// Open for writing.
    pub write: bool,
    /// Every write goes to the end of the file (implies write access).
    pub append: bool,
    /// Truncate to zero length on open (needs write access).
    pub truncate: bool,
    /// Create the file if it does not exist (needs write or append access).
    pub create: bool,
    /// Create the file, failing if it exists (needs write or append access).
    pub create_new: bool,
}

impl OpenOptions {
    /// All flags off; set them with the builder methods.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read an existing file.
    pub fn read_only() -> Self {
        Self::new().read(true)
    }

    /// Read and write an existing file.
    pub fn read_write() -> Self {
        Self::new().read(true).write(true)
    }

    /// Read and write, creating the file if missing (keeps existing contents).
    pub fn read_write_create() -> Self {
        Self::read_write().create(true)
    }

    /// Write a fresh file: create it or truncate it.
    pub fn create_write() -> Self {
        Self::new().write(true).create(true).truncate(true)
    }

    /// Sets read access.
    pub fn read(mut self, value: bool) -> Self {
        self.read = value;
        self
    }

    /// Sets write access.
    pub fn write(mut self, value: bool) -> Self {
        self.write = value;
        self
    }

    /// Sets append mode.
    pub fn append(mut self, value: bool) -> Self {
        self.append = value;
        self
    }

    /// Sets truncation on open.
    pub fn truncate(mut self, value: bool) -> Self {
        self.truncate = value;
        self
    }

    /// Sets creation of a missing file.
    pub fn create(mut self, value: bool) -> Self {
        self.create = value;
        self
    }

    /// Sets exclusive creation.
    pub fn create_new(mut self, value: bool) -> Self {
        self.create_new = value;
        self
    }

    /// True when the file may be written.
    pub fn writable(&self) -> bool {
        self.write || self.append
    }

    /// Checks the combination the way the operating system does; every provider calls this first
    /// so that the simulator and production reject the same options.
    pub fn validate(&self) -> Result<(), InvalidOpenOptions> {
        if !self.read && !self.writable() {
            return Err(InvalidOpenOptions::NoAccess);
        }
        if (self.create || self.create_new || self.truncate) && !self.writable() {
            return Err(InvalidOpenOptions::CreateOrTruncateWithoutWrite);
        }
        if self.truncate && self.append {
            return Err(InvalidOpenOptions::TruncateWithAppend);
        }
        Ok(())
    }

    /// [`validate`](Self::validate) as the `StorageError` an `open` of `path` returns
    /// (`InvalidInput`, naming the path and the problem).
    pub fn validate_for(&self, path: &Path) -> Result<(), StorageError> {
        self.validate().map_err(|invalid| {
            StorageError::with_kind(
                StorageOperation::Open,
                path,
                io::ErrorKind::InvalidInput,
                &invalid.to_string(),
            )
        })
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn to_tokio(self) -> tokio::fs::OpenOptions {
        let mut options = tokio::fs::OpenOptions::new();
        options
            .read(self.read)
            .write(self.write)
            .append(self.append)
            .truncate(self.truncate)
            .create(self.create)
            .create_new(self.create_new);
        options
    }
}

/// An [`OpenOptions`] combination no file system accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidOpenOptions {
    /// Neither read nor write access was asked for.
    #[error("open options ask for neither read nor write access")]
    NoAccess,
    /// `create`, `create_new` or `truncate` without write access.
    #[error("open options create or truncate without write access")]
    CreateOrTruncateWithoutWrite,
    /// `truncate` together with `append`.
    #[error("open options combine truncate with append")]
    TruncateWithAppend,
}

/// The storage operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageOperation {
    /// Opening a file.
    Open,
    /// Checking whether a file exists.
    Exists,
    /// Removing a file.
    Remove,
    /// Renaming a file (the path is the source).
    Rename,
}

impl fmt::Display for StorageOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StorageOperation::Open => "open",
            StorageOperation::Exists => "check existence of",
            StorageOperation::Remove => "remove",
            StorageOperation::Rename => "rename",
        })
    }
}

/// A failed storage operation, naming the path involved.
///
/// [`kind`](Self::kind) gives the underlying [`io::ErrorKind`] (`NotFound`, `AlreadyExists`,
/// `InvalidInput`, ...) and the error converts into an [`io::Error`] of that kind.
#[derive(Debug, thiserror::Error)]
#[error("{operation} '{}': {source}", path.display())]
pub struct StorageError {
    /// What was being done.
    pub operation: StorageOperation,
    /// The path as the caller gave it.
    pub path: PathBuf,
    /// The underlying I/O error.
    #[source]
    pub source: io::Error,
}

impl StorageError {
    /// Builds an error for `operation` on `path`.
    pub fn new(operation: StorageOperation, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self {
            operation,
            path: path.into(),
            source,
        }
    }

    /// Shorthand for an error of `kind` with a message.
    pub fn with_kind(
        operation: StorageOperation,
        path: impl Into<PathBuf>,
        kind: io::ErrorKind,
        message: &str,
    ) -> Self {
        Self::new(operation, path, io::Error::new(kind, message.to_string()))
    }

    /// The kind of the underlying I/O error.
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}

impl From<StorageError> for io::Error {
    fn from(error: StorageError) -> Self {
        io::Error::new(error.kind(), error)
    }
}

/// An open file.
///
/// Reads, writes and seeks go through Tokio's I/O traits. Written data is durable only after
/// [`sync_all`](Self::sync_all) or [`sync_data`](Self::sync_data). What a crash does to data
/// written since the last sync is unknown, as on a real disk: in the simulator each unsynced
/// write independently survives whole, survives torn (only some of its 512-byte sectors) or is
/// lost (`StorageConfiguration::crash_keep_unsynced_probability`, 0.5 by default, and
/// `torn_write_probability`; with both at zero a crash keeps exactly the synced data). A later
/// unsynced write can survive while an earlier one is lost. A graceful reboot keeps everything.
pub trait StorageFile: AsyncRead + AsyncWrite + AsyncSeek + Unpin + Send + 'static {
    /// Makes data and metadata durable.
    fn sync_all(&mut self) -> impl Future<Output = io::Result<()>> + Send;

    /// Makes data durable.
    fn sync_data(&mut self) -> impl Future<Output = io::Result<()>> + Send;

    /// Truncates or extends the file; extension reads as zeros.
    fn set_len(&mut self, len: u64) -> impl Future<Output = io::Result<()>> + Send;

    /// The file's current length in bytes.
    fn size(&mut self) -> impl Future<Output = io::Result<u64>> + Send;
}

/// A file system.
pub trait StorageProvider: Clone + Send + Sync + 'static {
    /// An open file.
    type File: StorageFile;

    /// Opens `path` with `options`. A missing file without `create` fails with `NotFound`;
    /// `create_new` on an existing file with `AlreadyExists`; invalid options with `InvalidInput`.
    fn open(
        &self,
        path: impl AsRef<Path> + Send,
        options: OpenOptions,
    ) -> impl Future<Output = Result<Self::File, StorageError>> + Send;

    /// True if `path` exists; false, not an error, when it runs through a file where it needs a
    /// directory (`x/` or `x/y` with `x` a file).
    fn exists(
        &self,
        path: impl AsRef<Path> + Send,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Removes the file at `path`.
    fn remove(
        &self,
        path: impl AsRef<Path> + Send,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Renames `from` to `to`, replacing `to` if it exists.
    fn rename(
        &self,
        from: impl AsRef<Path> + Send,
        to: impl AsRef<Path> + Send,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
}
