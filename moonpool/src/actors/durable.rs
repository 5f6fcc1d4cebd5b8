//! Floor 1: whole-file durable writes over a [`StorageProvider`]: write a temporary file, sync it,
//! rename it over the old one. A crash leaves either the old file or the new one, never a mix.

use std::path::{Path, PathBuf};

use moonpool_core::{OpenOptions, StorageFile, StorageProvider};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Replaces `path` with `bytes`, durably: `path.tmp` is written, synced and renamed over `path`.
pub(crate) async fn replace<S: StorageProvider>(
    storage: &S,
    path: &Path,
    bytes: &[u8],
) -> Result<(), String> {
    let temporary = temporary_path(path);
    let mut file = storage
        .open(&temporary, OpenOptions::create_write())
        .await
        .map_err(|error| format!("opening {}: {error}", temporary.display()))?;
    file.write_all(bytes)
        .await
        .map_err(|error| format!("writing {}: {error}", temporary.display()))?;
    file.sync_all()
        .await
        .map_err(|error| format!("syncing {}: {error}", temporary.display()))?;
    drop(file);
    storage.rename(&temporary, path).await.map_err(|error| {
        format!(
            "renaming {} to {}: {error}",
            temporary.display(),
            path.display()
        )
    })
}

/// The contents of `path`, or `None` when it does not exist.
pub(crate) async fn read<S: StorageProvider>(
    storage: &S,
    path: &Path,
) -> Result<Option<Vec<u8>>, String> {
    match storage.exists(path).await {
        Ok(false) => return Ok(None),
        Ok(true) => {}
        Err(error) => return Err(format!("looking for {}: {error}", path.display())),
    }
    let mut file = match storage.open(path, OpenOptions::read_only()).await {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("opening {}: {error}", path.display())),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .await
        .map_err(|error| format!("reading {}: {error}", path.display()))?;
    Ok(Some(bytes))
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}
