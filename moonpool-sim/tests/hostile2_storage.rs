//! Hostile use of simulated storage (second pass): reads after a crash, zero-length operations,
//! odd paths (empty, root, `.`, `./x`, a NUL byte, very long), several handles on one file, the
//! path of a removed file reused, offsets at the edge of the file-size limit, and storage
//! configurations at their extremes. Every operation ends in a value or a typed error (never a
//! panic), and the same seed gives the same run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{ErrorKind, SeekFrom};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{OpenOptions, Providers, StorageFile, StorageProvider, TimeProvider};
use moonpool_sim::{
    LatencyDistribution, Locality, RebootKind, SimError, SimProviders, SimWorld,
    StorageConfiguration, WorldConfig,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

mod hostile2_common;

use hostile2_common::*;

/// Runs `body` as the only workload of a quiet world (seed `seed`, storage `storage`) and
/// returns what it returned, or the run's verdict, or the panic that escaped the run.
fn with_workload<T: Send + 'static, F, Fut>(
    seed: u64,
    storage: StorageConfiguration,
    body: F,
) -> Result<Result<T, SimError>, String>
where
    F: FnOnce(SimProviders) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let mut config = WorldConfig::quiet();
    config.storage = storage;
    let mut world = SimWorld::with_config(seed, config).unwrap();
    let out: Slot<T> = slot();
    let o = Arc::clone(&out);
    let body = Mutex::new(Some(body));
    world
        .add_workload("disk-user", "10.0.0.1", move |p| {
            let body = body.lock().unwrap().take().expect("one boot");
            let o = Arc::clone(&o);
            async move {
                let value = body(p).await;
                *o.lock().unwrap() = Some(value);
            }
        })
        .unwrap();
    let outcome = run_caught(world)?;
    Ok(outcome.map(|_| out.lock().unwrap().take().expect("the workload finished")))
}

async fn read_all(p: &SimProviders, path: &str) -> std::io::Result<Vec<u8>> {
    let mut file = p
        .storage()
        .open(path, OpenOptions::read_only())
        .await
        .map_err(std::io::Error::other)?;
    let mut data = Vec::new();
    file.read_to_end(&mut data).await?;
    Ok(data)
}

/// A server writes a synced record and an unsynced one, is crashed, and reads its file at the
/// next boot: with unsynced writes never kept, exactly the synced bytes; kept always, both;
/// with the default crash model, the synced bytes and all or none of the unsynced (4 bytes are
/// one sector). The same seed reads the same bytes.
#[test]
fn test_reads_after_a_crash_see_the_synced_bytes_and_whole_sectors_of_the_rest() {
    let run = |seed: u64, keep: Option<f64>| {
        let mut config = WorldConfig::quiet();
        if let Some(keep) = keep {
            config.storage.crash_keep_unsynced_probability = keep;
            config.storage.torn_write_probability = 0.0;
        } else {
            let defaults = StorageConfiguration::default();
            config.storage.crash_keep_unsynced_probability =
                defaults.crash_keep_unsynced_probability;
            config.storage.torn_write_probability = defaults.torn_write_probability;
        }
        let mut world = SimWorld::with_config(seed, config).unwrap();
        let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let db = world
            .add_process("db", "10.0.0.9", Locality::default(), move |ctx| {
                let s = Arc::clone(&s);
                async move {
                    let p = ctx.providers;
                    if ctx.boot == 1 {
                        let mut f = p
                            .storage()
                            .open("log", OpenOptions::read_write_create())
                            .await
                            .unwrap();
                        f.write_all(b"AAAA").await.unwrap();
                        f.sync_all().await.unwrap();
                        f.write_all(b"BBBB").await.unwrap();
                        std::future::pending::<()>().await;
                    } else {
                        let data = read_all(&p, "log").await.unwrap();
                        s.lock().unwrap().push(data);
                    }
                }
            })
            .unwrap();
        let control = world.control();
        world
            .add_workload("crasher", "10.0.0.1", move |p| {
                let control = control.clone();
                async move {
                    p.time().sleep(Duration::from_millis(10)).await;
                    control.reboot(db, RebootKind::Crash, Some(Duration::from_millis(1)));
                    p.time().sleep(Duration::from_millis(20)).await;
                }
            })
            .unwrap();
        let summary = world.run().unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "seed {seed}: the second boot read once");
        (seen[0].clone(), key(&summary))
    };
    for seed in 0..6 {
        assert_eq!(run(seed, Some(0.0)).0, b"AAAA", "seed {seed}");
        assert_eq!(run(seed, Some(1.0)).0, b"AAAABBBB", "seed {seed}");
    }
    let mut outcomes = std::collections::BTreeSet::new();
    for seed in 0..seeds_or(24) {
        let first = run(seed, None);
        assert_eq!(first, run(seed, None), "seed {seed} twice");
        assert!(
            first.0 == b"AAAA" || first.0 == b"AAAABBBB",
            "seed {seed}: {:?}",
            String::from_utf8_lossy(&first.0)
        );
        outcomes.insert(first.0);
    }
    assert_eq!(
        outcomes.len(),
        2,
        "the default crash model keeps some and loses some"
    );
}

/// Zero-length writes, reads, `set_len(0)`, sizes and syncs of an empty file, and a read at the
/// end: all succeed with nothing, without touching the file.
#[test]
fn test_zero_length_operations_do_nothing() {
    let out = with_workload(1, StorageConfiguration::fast_local(), |p| async move {
        let mut f = p
            .storage()
            .open("empty", OpenOptions::read_write_create())
            .await
            .unwrap();
        assert_eq!(f.write(&[]).await.unwrap(), 0);
        f.write_all(&[]).await.unwrap();
        assert_eq!(f.read(&mut []).await.unwrap(), 0);
        let mut buf = [0u8; 8];
        assert_eq!(f.read(&mut buf).await.unwrap(), 0, "a read at the end");
        f.set_len(0).await.unwrap();
        f.sync_all().await.unwrap();
        f.sync_data().await.unwrap();
        assert_eq!(f.size().await.unwrap(), 0);
        f.write_all(b"xy").await.unwrap();
        f.seek(SeekFrom::Start(2)).await.unwrap();
        assert_eq!(f.read(&mut buf).await.unwrap(), 0, "a read at the end");
        f.size().await.unwrap()
    });
    assert_eq!(out.unwrap().unwrap(), 2);
}

/// Paths a user might pass by mistake: each gives a value or a typed error naming the path,
/// never a panic.
#[test]
fn test_odd_paths_give_typed_errors_or_work() {
    let long = "d/".repeat(5_000) + "f";
    let out = with_workload(2, StorageConfiguration::fast_local(), move |p| async move {
        let mut results = Vec::new();
        for path in [
            "",
            "/",
            ".",
            "..",
            "a\0b",
            "//",
            long.as_str(),
            "a/./b",
            "é🦀",
        ] {
            let opened = p
                .storage()
                .open(path, OpenOptions::read_write_create())
                .await;
            let exists = p.storage().exists(path).await;
            let removed = p.storage().remove(path).await;
            let renamed = p.storage().rename(path, "target").await;
            let renamed_to = p.storage().rename("missing", path).await;
            results.push((
                path.chars().take(8).collect::<String>(),
                opened.map(|_| ()).map_err(|e| e.to_string()),
                exists.map_err(|e| e.to_string()),
                removed.map_err(|e| e.to_string()),
                renamed.map_err(|e| e.to_string()),
                renamed_to.map_err(|e| e.to_string()),
            ));
        }
        results
    });
    let results = out
        .expect("no panic out of run")
        .expect("the run ends well");
    let empty = &results[0];
    assert!(empty.1.is_err(), "an empty path is not a file: {empty:?}");
}

/// Paths that no real file system opens as a regular file: the root, `.`, `..` (directories:
/// `EISDIR`) and a path with a NUL byte (`InvalidInput` from the standard library before any
/// system call). On the Tokio provider each `open(.., read_write_create)` fails; in the
/// simulator each one creates a file, so code that opens them passes under test and fails in
/// production.
#[test]
fn test_paths_no_file_system_opens_as_a_file_are_refused() {
    let out = with_workload(2, StorageConfiguration::fast_local(), |p| async move {
        let mut opened = Vec::new();
        for path in ["/", ".", "..", "a\0b"] {
            if p.storage()
                .open(path, OpenOptions::read_write_create())
                .await
                .is_ok()
            {
                opened.push(path);
            }
        }
        opened
    });
    let opened = out.unwrap().unwrap();
    assert!(opened.is_empty(), "opened as regular files: {opened:?}");
}

/// `x/` names a directory on every real file system: with a file `x` there, removing or
/// renaming `x/` fails (`ENOTDIR`), creating it too (`EISDIR`), and `x/` does not exist; the
/// file `x` stays as it was. With no `x`, creating `x/` fails with `EISDIR`, opening or removing
/// it with `ENOENT` (the kinds Linux gives).
#[test]
fn test_a_name_followed_by_a_separator_is_no_file() {
    let out = with_workload(4, StorageConfiguration::fast_local(), |p| async move {
        let mut f = p
            .storage()
            .open("/d/x", OpenOptions::read_write_create())
            .await
            .unwrap();
        f.write_all(b"kept").await.unwrap();
        drop(f);
        let mut kinds = Vec::new();
        for path in ["/d/x/", "/d/x/."] {
            let open = p
                .storage()
                .open(path, OpenOptions::read_write_create())
                .await;
            kinds.push(open.err().map(|e| e.kind()));
            kinds.push(p.storage().remove(path).await.err().map(|e| e.kind()));
            let renamed = p.storage().rename(path, "/d/y").await;
            kinds.push(renamed.err().map(|e| e.kind()));
            assert!(!p.storage().exists(path).await.unwrap(), "{path} exists");
        }
        // Absent: creating it says it is a directory, anything else that it is not there.
        let mut absent = Vec::new();
        let created = p
            .storage()
            .open("/d/new/", OpenOptions::read_write_create())
            .await;
        absent.push(created.err().map(|e| e.kind()));
        let opened = p.storage().open("/d/new/", OpenOptions::read_only()).await;
        absent.push(opened.err().map(|e| e.kind()));
        absent.push(p.storage().remove("/d/new/").await.err().map(|e| e.kind()));
        (kinds, absent, read_all(&p, "/d/x").await.unwrap())
    });
    let (kinds, absent, kept) = out.unwrap().unwrap();
    let not_a_directory = Some(ErrorKind::NotADirectory);
    let (x_slash, x_dot) = kinds.split_at(3);
    // Creating `x/` is `EISDIR` on Linux even with a file `x`; `x/.` needs `x` as a directory.
    assert_eq!(
        x_slash,
        [
            Some(ErrorKind::IsADirectory),
            not_a_directory,
            not_a_directory
        ]
    );
    assert_eq!(x_dot, [not_a_directory; 3]);
    assert_eq!(
        absent,
        [
            Some(ErrorKind::IsADirectory),
            Some(ErrorKind::NotFound),
            Some(ErrorKind::NotFound)
        ]
    );
    assert_eq!(kept, b"kept");
}

/// `./x` and `x` name one file on every real file system (and on the Tokio provider); so must
/// they in the simulator, or code that mixes the two spellings behaves differently under test.
#[test]
fn test_a_leading_dot_names_the_same_file() {
    let out = with_workload(3, StorageConfiguration::fast_local(), |p| async move {
        let mut f = p
            .storage()
            .open("x", OpenOptions::read_write_create())
            .await
            .unwrap();
        f.write_all(b"same").await.unwrap();
        let through_dot = read_all(&p, "./x").await.map_err(|e| e.to_string());
        let exists = p.storage().exists("./x").await.unwrap();
        (through_dot, exists)
    });
    let (through_dot, exists) = out.unwrap().unwrap();
    assert!(exists, "./x exists once x does");
    assert_eq!(through_dot.unwrap(), b"same");
}

/// Three handles on one file (a writer, a truncater, an appender): every handle sees the one
/// current content, with POSIX semantics (a write past the end after a truncation leaves a hole
/// of zeros; an append writes at the end).
#[test]
fn test_three_handles_on_one_file_see_one_content() {
    let out = with_workload(4, StorageConfiguration::fast_local(), |p| async move {
        let s = p.storage().clone();
        let mut writer = s
            .open("shared", OpenOptions::read_write_create())
            .await
            .unwrap();
        let mut truncater = s.open("shared", OpenOptions::read_write()).await.unwrap();
        let mut appender = s
            .open("shared", OpenOptions::read_write().append(true))
            .await
            .unwrap();
        writer.write_all(b"hello").await.unwrap();
        let mut seen = vec![0u8; 5];
        truncater.read_exact(&mut seen).await.unwrap();
        assert_eq!(&seen, b"hello");
        truncater.set_len(2).await.unwrap();
        writer.write_all(b"world").await.unwrap();
        appender.write_all(b"!").await.unwrap();
        let all = read_all(&p, "shared").await.unwrap();
        (
            all,
            writer.size().await.unwrap(),
            appender.size().await.unwrap(),
        )
    });
    let (all, size_w, size_a) = out.unwrap().unwrap();
    assert_eq!(all, b"he\0\0\0world!");
    assert_eq!((size_w, size_a), (11, 11));
}

/// A file removed while a handle holds it: the handle goes on with the old file (or fails with a
/// typed error), a new file at the path starts empty and never sees the old handle's writes, a
/// second remove is `NotFound`, and a rename onto the path with the old handle still open
/// replaces the path only.
#[test]
fn test_the_path_of_a_removed_file_is_a_new_file() {
    let out = with_workload(5, StorageConfiguration::fast_local(), |p| async move {
        let s = p.storage().clone();
        let mut old = s.open("f", OpenOptions::read_write_create()).await.unwrap();
        old.write_all(b"old").await.unwrap();
        s.remove("f").await.unwrap();
        assert!(!s.exists("f").await.unwrap());
        let second = s.remove("f").await.unwrap_err();
        assert_eq!(second.source.kind(), ErrorKind::NotFound, "{second}");
        let Err(reopened) = s.open("f", OpenOptions::read_write()).await else {
            panic!("a removed path opened without create");
        };
        assert_eq!(reopened.source.kind(), ErrorKind::NotFound, "{reopened}");
        // The unlinked file, through its handle.
        let still = old.write_all(b"-more").await.map_err(|e| e.kind());
        let mut fresh = s.open("f", OpenOptions::read_write_create()).await.unwrap();
        assert_eq!(fresh.size().await.unwrap(), 0, "a new file at the old path");
        fresh.write_all(b"new").await.unwrap();
        if still.is_ok() {
            old.seek(SeekFrom::Start(0)).await.unwrap();
            let mut back = Vec::new();
            old.read_to_end(&mut back).await.unwrap();
            assert_eq!(
                back, b"old-more",
                "the unlinked file lives on in its handle"
            );
        }
        // Rename another file onto the path while both handles are open.
        let mut g = s.open("g", OpenOptions::read_write_create()).await.unwrap();
        g.write_all(b"gee").await.unwrap();
        s.rename("g", "f").await.unwrap();
        let at_f = read_all(&p, "f").await.unwrap();
        fresh.seek(SeekFrom::Start(0)).await.unwrap();
        let mut replaced = Vec::new();
        fresh.read_to_end(&mut replaced).await.unwrap();
        // Renaming a missing file, and a file onto itself.
        let missing = s.rename("nope", "f").await.unwrap_err();
        s.rename("f", "f").await.unwrap();
        (
            at_f,
            replaced,
            missing.source.kind(),
            s.exists("f").await.unwrap(),
        )
    });
    let (at_f, replaced, missing, exists) = out.unwrap().unwrap();
    assert_eq!(at_f, b"gee");
    assert_eq!(replaced, b"new", "the replaced file lives on in its handle");
    assert_eq!(missing, ErrorKind::NotFound);
    assert!(exists, "a rename onto itself keeps the file");
}

/// Offsets at the file-size limit and past it: typed errors (`FileTooLarge`, `InvalidInput`)
/// naming the size, never a panic or an attempt to allocate the offset.
#[test]
fn test_offsets_past_the_size_limit_are_typed_errors() {
    let out = with_workload(6, StorageConfiguration::fast_local(), |p| async move {
        let mut f = p
            .storage()
            .open("edge", OpenOptions::read_write_create())
            .await
            .unwrap();
        let mut kinds = Vec::new();
        f.seek(SeekFrom::Start(u64::MAX)).await.unwrap();
        kinds.push(f.write(b"x").await.map(|_| ()).map_err(|e| e.kind()));
        let mut buf = [0u8; 4];
        assert_eq!(
            f.read(&mut buf).await.unwrap(),
            0,
            "a read far past the end"
        );
        kinds.push(f.set_len(u64::MAX).await.map_err(|e| e.kind()));
        kinds.push(f.set_len((1 << 32) + 1).await.map_err(|e| e.kind()));
        kinds.push(
            f.seek(SeekFrom::End(i64::MIN))
                .await
                .map(|_| ())
                .map_err(|e| e.kind()),
        );
        f.seek(SeekFrom::Start(0)).await.unwrap();
        f.seek(SeekFrom::Current(i64::MAX)).await.unwrap();
        f.seek(SeekFrom::Current(i64::MAX)).await.unwrap();
        kinds.push(
            f.seek(SeekFrom::Current(i64::MAX))
                .await
                .map(|_| ())
                .map_err(|e| e.kind()),
        );
        // A write that ends exactly one past the limit.
        f.seek(SeekFrom::Start((1 << 32) - 1)).await.unwrap();
        kinds.push(f.write_all(b"ab").await.map_err(|e| e.kind()));
        (kinds, f.size().await.unwrap())
    });
    let (kinds, size) = out
        .expect("no panic out of run")
        .expect("the run ends well");
    assert_eq!(
        kinds,
        vec![
            Err(ErrorKind::FileTooLarge),
            Err(ErrorKind::FileTooLarge),
            Err(ErrorKind::FileTooLarge),
            Err(ErrorKind::InvalidInput),
            Err(ErrorKind::InvalidInput),
            Err(ErrorKind::FileTooLarge),
        ]
    );
    assert_eq!(size, 0, "nothing was written");
}

/// An 8 MiB write in one call and its read back, through a throttled, bandwidth-limited disk:
/// the bytes are intact and the simulated time is what the bandwidth says.
#[test]
fn test_an_eight_mebibyte_write_reads_back_intact() {
    let mut storage = StorageConfiguration::fast_local();
    storage.bandwidth_bytes_per_second = 1 << 20;
    let out = with_workload(7, storage, |p| async move {
        let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
        let mut f = p
            .storage()
            .open("big", OpenOptions::read_write_create())
            .await
            .unwrap();
        let start = p.time().now();
        f.write_all(&data).await.unwrap();
        f.sync_all().await.unwrap();
        let took = p.time().now() - start;
        let back = read_all(&p, "big").await.unwrap();
        (back == data, took)
    });
    let (same, took) = out.unwrap().unwrap();
    assert!(same);
    assert!(took >= Duration::from_secs(8), "8 MiB at 1 MiB/s: {took:?}");
}

/// A storage configuration that passes `validate` must not panic inside the disk model: `what`
/// is the field it sets. The run may end with a verdict (a disk so slow the budget runs out),
/// but a task panic with an arithmetic overflow is the engine's bug.
fn extreme_storage(what: &str, storage: StorageConfiguration) {
    let mut config = WorldConfig::quiet();
    config.storage = storage;
    if let Err(error) = SimWorld::with_config(1, config.clone()) {
        assert!(
            error.to_string().contains(what),
            "refused without naming {what}: {error}"
        );
        return;
    }
    for seed in 0..seeds_or(16) {
        extreme_storage_seed(what, seed, config.storage.clone());
    }
}

fn extreme_storage_seed(what: &str, seed: u64, storage: StorageConfiguration) {
    let out = with_workload(seed, storage, |p| async move {
        let mut f = p
            .storage()
            .open("x", OpenOptions::read_write_create())
            .await
            .ok()?;
        for _ in 0..4 {
            f.write_all(b"0123456789").await.ok()?;
            f.sync_all().await.ok()?;
            p.time().sleep(Duration::from_millis(1)).await;
        }
        Some(())
    });
    match out.expect("no panic out of run") {
        Ok(_) => {}
        Err(SimError::TaskPanicked { message, .. }) => {
            panic!("{what}, seed {seed}: the disk model panicked inside a task: {message}")
        }
        Err(_verdict) => {}
    }
}

#[test]
fn test_a_huge_throttle_factor_is_refused_or_saturates() {
    let mut storage = StorageConfiguration::fast_local();
    storage.throttle_probability = 1.0;
    storage.throttle_duration = (Duration::from_secs(1), Duration::from_secs(1));
    storage.throttle_factor = (1e300, 1e300);
    extreme_storage("throttle_factor", storage);
}

#[test]
fn test_a_duration_max_storage_latency_is_refused_or_saturates() {
    let mut storage = StorageConfiguration::fast_local();
    storage.write_latency = LatencyDistribution::Fixed(Duration::MAX);
    extreme_storage("write_latency", storage);
}

#[test]
fn test_an_exponential_latency_with_a_huge_mean_is_refused_or_saturates() {
    let mut storage = StorageConfiguration::fast_local();
    storage.read_latency = LatencyDistribution::Exponential {
        mean: Duration::MAX,
        max: Duration::MAX,
    };
    storage.write_latency = storage.read_latency.clone();
    storage.sync_latency = storage.read_latency.clone();
    storage.metadata_latency = storage.read_latency.clone();
    extreme_storage("latency", storage);
}

#[test]
fn test_a_duration_max_stall_is_refused_or_saturates() {
    let mut storage = StorageConfiguration::fast_local();
    storage.stall_probability = 1.0;
    storage.stall_duration = (Duration::MAX, Duration::MAX);
    extreme_storage("stall_duration", storage);
}

/// Extremes that are legal and must simply work: a bandwidth of one byte a second, an IOPS
/// limit of one, a stall of a whole second on every operation.
#[test]
fn test_slow_but_legal_storage_extremes_run() {
    let mut storage = StorageConfiguration::fast_local();
    storage.bandwidth_bytes_per_second = 1;
    extreme_storage("bandwidth", storage);
    let mut storage = StorageConfiguration::fast_local();
    storage.iops = 1;
    extreme_storage("iops", storage);
    let mut storage = StorageConfiguration::fast_local();
    storage.stall_probability = 1.0;
    storage.stall_duration = (Duration::from_secs(1), Duration::from_secs(1));
    extreme_storage("stall", storage);
}

/// Resident memory of this process in bytes (Linux), for the sparse-file test.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Preallocating a file (`set_len` far past its data, as logs and databases do) costs a real
/// file system nothing until the bytes are written; the simulated disk keeps every file as one
/// dense buffer, so a 256 MiB `set_len` and its sync hold 512 MiB of zeros (the current and the
/// durable image; a crash clones it once more), and a file at the 4 GiB limit 8 GiB or more.
#[test]
fn test_a_preallocated_file_costs_no_memory_until_written() {
    let before = resident_bytes().expect("/proc/self/statm");
    let out = with_workload(8, StorageConfiguration::fast_local(), |p| async move {
        let mut f = p
            .storage()
            .open("prealloc", OpenOptions::read_write_create())
            .await
            .unwrap();
        f.set_len(256 << 20).await.unwrap();
        f.sync_all().await.unwrap();
        let grown = resident_bytes().expect("/proc/self/statm");
        (f.size().await.unwrap(), grown)
    });
    let (size, during) = out.unwrap().unwrap();
    assert_eq!(size, 256 << 20);
    let grown = during.saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "a 256 MiB preallocation took {} MiB of memory",
        grown >> 20
    );
}
