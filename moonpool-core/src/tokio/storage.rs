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
        use std::path::Component;
        match &self.root {
            Some(root) => {
                // Not `root.join(path)`: an absolute `path` would replace the root.
                let mut resolved = root.clone();
                for component in path.components() {
                    if !matches!(component, Component::RootDir | Component::Prefix(_)) {
                        resolved.push(component);
                    }
                }
                resolved
            }
            None => path.to_path_buf(),
        }
    }
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
            tokio::fs::try_exists(&resolved)
                .await
                .map_err(|e| StorageError::new(StorageOperation::Exists, given, e))
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
