//! Contracts of [`StorageProvider`] and [`StorageFile`].

use std::io::{ErrorKind, SeekFrom};

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{ContractResult, ContractViolation, Fixture, attempt, ensure};
use crate::{OpenOptions, Providers, StorageFile, StorageProvider};

async fn read_all<F: StorageFile>(file: &mut F) -> Result<Vec<u8>, ContractViolation> {
    attempt!(file.seek(SeekFrom::Start(0)).await, "seeking to the start");
    let mut contents = Vec::new();
    attempt!(file.read_to_end(&mut contents).await, "reading the file");
    Ok(contents)
}

async fn write_file<P: Providers>(fx: &Fixture<P>, name: &str, data: &[u8]) -> ContractResult {
    let storage = fx.providers.storage();
    let mut file = attempt!(
        storage
            .open(fx.path(name), OpenOptions::create_write())
            .await,
        format!("creating {name}")
    );
    attempt!(file.write_all(data).await, format!("writing {name}"));
    attempt!(file.sync_all().await, format!("syncing {name}"));
    Ok(())
}

async fn read_file<P: Providers>(
    fx: &Fixture<P>,
    name: &str,
) -> Result<Vec<u8>, ContractViolation> {
    let storage = fx.providers.storage();
    let mut file = attempt!(
        storage.open(fx.path(name), OpenOptions::read_only()).await,
        format!("opening {name}")
    );
    read_all(&mut file).await
}

/// Data written and synced reads back after reopening.
pub async fn write_sync_reopen_read<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    write_file(fx, "durable.dat", b"moonpool").await?;
    let contents = read_file(fx, "durable.dat").await?;
    ensure!(contents == b"moonpool", "reopened file holds {contents:?}");
    let mut file = attempt!(
        fx.providers
            .storage()
            .open(fx.path("durable.dat"), OpenOptions::read_only())
            .await,
        "opening for size"
    );
    let size = attempt!(file.size().await, "reading the size");
    ensure!(size == 8, "size() is {size}, expected 8");
    Ok(())
}

/// Opening a missing file without `create` fails with `NotFound`, naming the path.
pub async fn open_missing_without_create_fails<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let path = fx.path("missing.dat");
    match fx
        .providers
        .storage()
        .open(&path, OpenOptions::read_write())
        .await
    {
        Ok(_) => Err(ContractViolation::new("opening a missing file succeeded")),
        Err(error) => {
            ensure!(
                error.kind() == ErrorKind::NotFound,
                "failed with {:?}: {error}",
                error.kind()
            );
            ensure!(error.path == path, "error names {:?}", error.path);
            ensure!(
                error.to_string().contains("missing.dat"),
                "message lacks the path: {error}"
            );
            Ok(())
        }
    }
}

/// `create_new` on an existing file fails with `AlreadyExists`.
pub async fn create_new_on_existing_fails<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    write_file(fx, "exists.dat", b"x").await?;
    let options = OpenOptions::new().write(true).create_new(true);
    match fx
        .providers
        .storage()
        .open(fx.path("exists.dat"), options)
        .await
    {
        Ok(_) => Err(ContractViolation::new(
            "create_new on an existing file succeeded",
        )),
        Err(error) => {
            ensure!(
                error.kind() == ErrorKind::AlreadyExists,
                "failed with {:?}: {error}",
                error.kind()
            );
            Ok(())
        }
    }
}

/// Option combinations no file system accepts fail with `InvalidInput`.
pub async fn invalid_options_rejected<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    for options in [
        OpenOptions::new(),
        OpenOptions::new().read(true).create(true),
    ] {
        match fx
            .providers
            .storage()
            .open(fx.path("invalid.dat"), options)
            .await
        {
            Ok(_) => return Err(ContractViolation::new(format!("{options:?} was accepted"))),
            Err(error) => ensure!(
                error.kind() == ErrorKind::InvalidInput,
                "{options:?} failed with {:?}: {error}",
                error.kind()
            ),
        }
    }
    Ok(())
}

/// `rename` moves contents, and replaces an existing target.
pub async fn rename_moves_and_replaces<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let storage = fx.providers.storage();
    write_file(fx, "old.dat", b"first").await?;
    attempt!(
        storage.rename(fx.path("old.dat"), fx.path("new.dat")).await,
        "renaming"
    );
    ensure!(
        !attempt!(storage.exists(fx.path("old.dat")).await, "exists(old)"),
        "old name still exists"
    );
    ensure!(
        attempt!(storage.exists(fx.path("new.dat")).await, "exists(new)"),
        "new name missing"
    );
    let contents = read_file(fx, "new.dat").await?;
    ensure!(contents == b"first", "renamed file holds {contents:?}");
    write_file(fx, "other.dat", b"second").await?;
    attempt!(
        storage
            .rename(fx.path("other.dat"), fx.path("new.dat"))
            .await,
        "renaming over"
    );
    let contents = read_file(fx, "new.dat").await?;
    ensure!(contents == b"second", "replaced file holds {contents:?}");
    Ok(())
}

/// `remove` deletes a file; removing it again fails with `NotFound`.
pub async fn remove_deletes<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let storage = fx.providers.storage();
    write_file(fx, "doomed.dat", b"bye").await?;
    attempt!(storage.remove(fx.path("doomed.dat")).await, "removing");
    ensure!(
        !attempt!(storage.exists(fx.path("doomed.dat")).await, "exists"),
        "removed file exists"
    );
    match storage.remove(fx.path("doomed.dat")).await {
        Ok(()) => Err(ContractViolation::new("removing a missing file succeeded")),
        Err(error) => {
            ensure!(
                error.kind() == ErrorKind::NotFound,
                "failed with {:?}: {error}",
                error.kind()
            );
            Ok(())
        }
    }
}

/// A file's name followed by a separator (`x/`) names a directory: it opens nothing (with or
/// without `create`), removes nothing, does not exist, and leaves the file `x` as it was.
pub async fn trailing_separator_names_no_file<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let storage = fx.providers.storage();
    write_file(fx, "plain.dat", b"plain").await?;
    let mut slashed = fx.path("plain.dat").into_os_string();
    slashed.push("/");
    let slashed = std::path::PathBuf::from(slashed);
    for options in [OpenOptions::read_only(), OpenOptions::read_write_create()] {
        ensure!(
            storage.open(&slashed, options).await.is_err(),
            "{} opened with {options:?}",
            slashed.display()
        );
    }
    ensure!(
        !attempt!(storage.exists(&slashed).await, "exists"),
        "{} exists",
        slashed.display()
    );
    ensure!(
        storage.remove(&slashed).await.is_err(),
        "removing {} succeeded",
        slashed.display()
    );
    let contents = read_file(fx, "plain.dat").await?;
    ensure!(contents == b"plain", "the file now holds {contents:?}");
    Ok(())
}

/// `set_len` truncates, and extends with zeros.
pub async fn set_len_truncates_and_zero_extends<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let storage = fx.providers.storage();
    let mut file = attempt!(
        storage
            .open(fx.path("len.dat"), OpenOptions::read_write_create())
            .await,
        "creating"
    );
    attempt!(file.write_all(b"abcdef").await, "writing");
    attempt!(file.set_len(3).await, "truncating");
    ensure!(
        attempt!(file.size().await, "size") == 3,
        "truncated size is not 3"
    );
    ensure!(
        read_all(&mut file).await? == b"abc",
        "truncated contents differ"
    );
    attempt!(file.set_len(6).await, "extending");
    let contents = read_all(&mut file).await?;
    ensure!(
        contents == b"abc\0\0\0",
        "extended contents are {contents:?}"
    );
    Ok(())
}

/// Reading at or past the end returns zero bytes.
pub async fn read_past_end_returns_zero<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    write_file(fx, "short.dat", b"12345").await?;
    let mut file = attempt!(
        fx.providers
            .storage()
            .open(fx.path("short.dat"), OpenOptions::read_only())
            .await,
        "opening"
    );
    for position in [5u64, 100] {
        attempt!(file.seek(SeekFrom::Start(position)).await, "seeking");
        let mut buffer = [0u8; 8];
        let read = attempt!(file.read(&mut buffer).await, "reading past the end");
        ensure!(
            read == 0,
            "read at offset {position} of a 5-byte file returned {read} bytes"
        );
    }
    Ok(())
}

/// Seeking then writing overwrites in place.
pub async fn seek_and_overwrite<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let mut file = attempt!(
        fx.providers
            .storage()
            .open(fx.path("seek.dat"), OpenOptions::read_write_create())
            .await,
        "creating"
    );
    attempt!(file.write_all(b"hello world").await, "writing");
    let position = attempt!(file.seek(SeekFrom::Start(6)).await, "seeking");
    ensure!(position == 6, "seek returned {position}");
    attempt!(file.write_all(b"WORLD").await, "overwriting");
    let end = attempt!(file.seek(SeekFrom::End(-5)).await, "seeking from the end");
    ensure!(end == 6, "seek from end returned {end}");
    let contents = read_all(&mut file).await?;
    ensure!(contents == b"hello WORLD", "contents are {contents:?}");
    Ok(())
}

/// In append mode every write lands at the end, whatever the position.
pub async fn append_writes_at_end<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    write_file(fx, "log.dat", b"one;").await?;
    let options = OpenOptions::new().read(true).append(true);
    let mut file = attempt!(
        fx.providers
            .storage()
            .open(fx.path("log.dat"), options)
            .await,
        "opening for append"
    );
    attempt!(file.write_all(b"two;").await, "appending");
    attempt!(file.seek(SeekFrom::Start(0)).await, "seeking to the start");
    attempt!(file.write_all(b"three;").await, "appending after a seek");
    attempt!(file.sync_all().await, "syncing");
    let contents = read_all(&mut file).await?;
    ensure!(
        contents == b"one;two;three;",
        "appended contents are {contents:?}"
    );
    Ok(())
}
