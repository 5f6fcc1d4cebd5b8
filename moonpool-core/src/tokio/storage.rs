use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::storage::{OpenOptions, StorageError, StorageFile, StorageOperation, StorageProvider};

/// Real files through `tokio::fs`, optionally under a root directory.
#[derive(Debug, Clone, Default)]
pub struct TokioStorageProvider {
    root: Option<PathBuf>,
}

impl TokioStorageProvider {
    /// Paths are used as given.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every path is taken relative to `root` (a data directory, or a temp dir in tests), an
    /// absolute one too: `/x` is `root/x`. (`..` is not confined: `../x` is beside the root.)
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        Self {
            root: Some(root.into()),
        }
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        match &self.root {
            Some(root) => under_root(root, path),
            None => path.to_path_buf(),
        }
    }
}

/// `path` under `root`, byte for byte after its leading separators (not `root.join(path)`: an
/// absolute `path` would replace the root). The bytes are kept, not the components: those drop
/// a trailing `/` or `/.`, and `x/` must stay a name no file opens by, as it is without a root.
#[cfg(unix)]
fn under_root(root: &Path, path: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let start = bytes.iter().position(|&b| b != b'/').unwrap_or(bytes.len());
    root.join(std::ffi::OsStr::from_bytes(&bytes[start..]))
}

/// `path` under `root` (see the Unix version), component by component, then its trailing
/// separator or `.`.
#[cfg(not(unix))]
fn under_root(root: &Path, path: &Path) -> PathBuf {
    use std::path::Component;
    let mut resolved = root.to_path_buf();
    for component in path.components() {
        if !matches!(component, Component::RootDir | Component::Prefix(_)) {
            resolved.push(component);
        }
    }
    let text = path.as_os_str().to_string_lossy();
    let mut tail = text.chars().rev();
    match (tail.next(), tail.next()) {
        (Some('.'), Some(before)) if std::path::is_separator(before) => resolved.push("."),
        (Some(last), _) if std::path::is_separator(last) => resolved.push(""),
        _ => {}
    }
    resolved
}

/// An open `tokio::fs::File`.
#[derive(Debug)]
pub struct TokioFile {
    inner: tokio::fs::File,
}

impl AsyncRead for TokioFile {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TokioFile {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl AsyncSeek for TokioFile {
    fn start_seek(self: Pin<&mut Self>, position: io::SeekFrom) -> io::Result<()> {
        Pin::new(&mut self.get_mut().inner).start_seek(position)
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Pin::new(&mut self.get_mut().inner).poll_complete(cx)
    }
}

impl StorageFile for TokioFile {
    async fn sync_all(&mut self) -> io::Result<()> {
        {
            self.inner.flush().await?;
            self.inner.sync_all().await
        }
    }

    async fn sync_data(&mut self) -> io::Result<()> {
        {
            self.inner.flush().await?;
            self.inner.sync_data().await
        }
    }

    async fn set_len(&mut self, len: u64) -> io::Result<()> {
        {
            self.inner.flush().await?;
            self.inner.set_len(len).await
        }
    }

    async fn size(&mut self) -> io::Result<u64> {
        {
            self.inner.flush().await?;
            Ok(self.inner.metadata().await?.len())
        }
    }
}

impl StorageProvider for TokioStorageProvider {
    type File = TokioFile;

    fn open(
        &self,
        path: impl AsRef<Path> + Send,
        options: OpenOptions,
    ) -> impl Future<Output = Result<Self::File, StorageError>> + Send {
        let given = path.as_ref().to_path_buf();
        let resolved = self.resolve(&given);
        async move {
            options.validate_for(&given)?;
            match options.to_tokio().open(&resolved).await {
                Ok(inner) => Ok(TokioFile { inner }),
                Err(e) => Err(StorageError::new(StorageOperation::Open, given, e)),
            }
        }
    }

    fn exists(
        &self,
        path: impl AsRef<Path> + Send,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send {
        let given = path.as_ref().to_path_buf();
        let resolved = self.resolve(&given);
        async move {
            match tokio::fs::try_exists(&resolved).await {
                // A file where the path needs a directory (`x/`, `x/y` with `x` a file): the
                // path names nothing, as on the simulated disk.
                Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Ok(false),
                result => result.map_err(|e| StorageError::new(StorageOperation::Exists, given, e)),
            }
        }
    }

    fn remove(
        &self,
        path: impl AsRef<Path> + Send,
    ) -> impl Future<Output = Result<(), StorageError>> + Send {
        let given = path.as_ref().to_path_buf();
        let resolved = self.resolve(&given);
        async move {
            tokio::fs::remove_file(&resolved)
                .await
                .map_err(|e| StorageError::new(StorageOperation::Remove, given, e))
        }
    }

    fn rename(
        &self,
        from: impl AsRef<Path> + Send,
        to: impl AsRef<Path> + Send,
    ) -> impl Future<Output = Result<(), StorageError>> + Send {
        let given = from.as_ref().to_path_buf();
        let source = self.resolve(&given);
        let target = self.resolve(to.as_ref());
        async move {
            tokio::fs::rename(&source, &target)
                .await
                .map_err(|e| StorageError::new(StorageOperation::Rename, given, e))
        }
    }
}
