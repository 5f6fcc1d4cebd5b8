#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! One test per simulated-storage fault, proving it fires and has its documented effect, plus
//! the crash model, the latency formula and determinism.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{ErrorKind, SeekFrom};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{
    OpenOptions, Providers, StorageFile, StorageProvider, TaskProvider, TimeProvider,
};
use moonpool_sim::{
    Locality, ProcessId, RebootKind, RunSummary, SimError, SimFile, SimProviders, SimWorld,
    StorageConfiguration, WorldConfig, WorldControl,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

const MS: Duration = Duration::from_millis(1);

// ---------------------------------------------------------------------------------------------
// Helpers

fn world(seed: u64, storage: StorageConfiguration) -> SimWorld {
    SimWorld::with_config(seed, {
        let mut cfg = WorldConfig::quiet();
        cfg.storage = storage;
        cfg
    })
    .unwrap()
}

/// A faultless disk (10 µs per operation, a crash keeps exactly the synced data), tweaked.
fn storage_with(tweak: impl FnOnce(&mut StorageConfiguration)) -> StorageConfiguration {
    let mut config = StorageConfiguration::fast_local();
    tweak(&mut config);
    config
}

/// Runs one workload at 10.0.0.1 named "driver"; returns the summary and the body's output.
fn run_workload<T, F, Fut>(seed: u64, storage: StorageConfiguration, body: F) -> (RunSummary, T)
where
    F: FnOnce(SimProviders) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let out = Arc::new(Mutex::new(None));
    let mut world = world(seed, storage);
    let slot = Arc::clone(&out);
    world
        .add_workload("driver", "10.0.0.1", move |providers| {
            let body = body(providers);
            async move {
                let value = body.await;
                *slot.lock().unwrap() = Some(value);
            }
        })
        .unwrap();
    let summary = world.run().unwrap();
    let value = out.lock().unwrap().take().expect("the workload finished");
    (summary, value)
}

/// 64-bit FNV-1a: the checksum the tests use to detect corruption.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Non-zero bytes that differ from position to position.
fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u8).wrapping_mul(31).wrapping_add(salt)) | 1)
        .collect()
}

fn fault(summary: &RunSummary, kind: &str) -> u64 {
    summary.faults.get(kind).copied().unwrap_or(0)
}

async fn create(providers: &SimProviders, path: &str) -> SimFile {
    providers
        .storage()
        .open(path, OpenOptions::read_write_create())
        .await
        .unwrap()
}

async fn read_all(providers: &SimProviders, path: &str) -> Vec<u8> {
    let mut file = providers
        .storage()
        .open(path, OpenOptions::read_only())
        .await
        .unwrap();
    let mut contents = Vec::new();
    file.read_to_end(&mut contents).await.unwrap();
    contents
}

async fn read_at(file: &mut SimFile, offset: u64, len: usize) -> Vec<u8> {
    file.seek(SeekFrom::Start(offset)).await.unwrap();
    let mut buffer = vec![0u8; len];
    file.read_exact(&mut buffer).await.unwrap();
    buffer
}

/// Waits (polling the simulated clock) until `ready` holds.
async fn wait_until(providers: &SimProviders, ready: impl Fn() -> bool) {
    while !ready() {
        providers.time().sleep(MS).await;
    }
}

/// A server at 10.0.0.2 whose boot `n` runs `boot(providers, n)` and records its output; a
/// driver waits for boot 1, calls `before` (fault injection), takes the server down by `kind`,
/// and waits for boot 2's output. Returns the summary and the outputs by boot.
fn reboot_scenario<T, B, Fut>(
    seed: u64,
    storage: StorageConfiguration,
    kind: RebootKind,
    before: impl FnOnce(&WorldControl, ProcessId) + Send + 'static,
    boot: B,
) -> (RunSummary, BTreeMap<u64, T>)
where
    T: Send + 'static,
    B: Fn(SimProviders, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let reports: Arc<Mutex<BTreeMap<u64, T>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let mut world = world(seed, storage);
    let boot = Arc::new(boot);
    let server_reports = Arc::clone(&reports);
    let server = world
        .add_process("server", "10.0.0.2", Locality::default(), move |ctx| {
            let body = boot(ctx.providers.clone(), ctx.boot);
            let reports = Arc::clone(&server_reports);
            async move {
                let value = body.await;
                reports.lock().unwrap().insert(ctx.boot, value);
                std::future::pending::<()>().await;
            }
        })
        .unwrap();
    let driver_reports = Arc::clone(&reports);
    world
        .add_workload("driver", "10.0.0.1", move |providers| async move {
            let seen = |boot: u64| {
                let reports = Arc::clone(&driver_reports);
                move || reports.lock().unwrap().contains_key(&boot)
            };
            wait_until(&providers, seen(1)).await;
            before(providers.control(), server);
            providers.control().reboot(server, kind, Some(10 * MS));
            wait_until(&providers, seen(2)).await;
        })
        .unwrap();
    let summary = world.run().unwrap();
    let reports = std::mem::take(&mut *reports.lock().unwrap());
    (summary, reports)
}

// ---------------------------------------------------------------------------------------------
// Crash model

#[test]
fn test_crash_loses_unsynced_writes_and_keeps_synced_ones() {
    let synced = pattern(4096, 1);
    let unsynced = pattern(4096, 2);
    let (s, u) = (synced.clone(), unsynced.clone());
    let (summary, reports) = reboot_scenario(
        1,
        StorageConfiguration::fast_local(),
        RebootKind::Crash,
        |_, _| {},
        move |p, boot| {
            let (s, u) = (s.clone(), u.clone());
            async move {
                if boot == 1 {
                    let mut wal = create(&p, "wal").await;
                    wal.write_all(&s).await.unwrap();
                    wal.sync_all().await.unwrap();
                    wal.write_all(&u).await.unwrap();
                    wal.seek(SeekFrom::Start(0)).await.unwrap();
                    wal.write_all(b"overwritten").await.unwrap();
                    let mut fresh = create(&p, "fresh").await;
                    fresh.write_all(b"never synced").await.unwrap();
                    assert_eq!(wal.size().await.unwrap(), 8192);
                    (Vec::new(), None)
                } else {
                    let fresh = if p.storage().exists("fresh").await.unwrap() {
                        Some(read_all(&p, "fresh").await)
                    } else {
                        None
                    };
                    (read_all(&p, "wal").await, fresh)
                }
            }
        },
    );
    let (wal, fresh) = &reports[&2];
    assert_eq!(wal.len(), 4096, "the unsynced append was lost");
    assert!(wal == &synced, "the synced data survived untouched");
    // Creation is durable at once (metadata rule); its unsynced data is not.
    assert_eq!(fresh.as_deref(), Some(&[][..]));
    assert_eq!(fault(&summary, "process.crash"), 1);
    assert_eq!(fault(&summary, "storage.crash_lost_write"), 3);
}

#[test]
fn test_graceful_reboot_keeps_unsynced_writes() {
    let (_, reports) = reboot_scenario(
        2,
        StorageConfiguration::fast_local(),
        RebootKind::Graceful,
        |_, _| {},
        |p, boot| async move {
            if boot == 1 {
                let mut file = create(&p, "log").await;
                file.write_all(b"flushed by the OS").await.unwrap();
                Vec::new()
            } else {
                read_all(&p, "log").await
            }
        },
    );
    assert_eq!(reports[&2], b"flushed by the OS");
}

#[test]
fn test_rename_is_durable_but_unsynced_contents_are_not() {
    let (_, reports) = reboot_scenario(
        3,
        StorageConfiguration::fast_local(),
        RebootKind::Crash,
        |_, _| {},
        |p, boot| async move {
            if boot == 1 {
                for (name, sync) in [("careless", false), ("careful", true)] {
                    let mut file = create(&p, name).await;
                    file.write_all(b"v1").await.unwrap();
                    file.sync_all().await.unwrap();
                    let tmp = format!("{name}.tmp");
                    let mut next = create(&p, &tmp).await;
                    next.write_all(b"v2").await.unwrap();
                    if sync {
                        next.sync_all().await.unwrap();
                    }
                    p.storage().rename(&tmp, name).await.unwrap();
                }
                BTreeMap::new()
            } else {
                let mut seen = BTreeMap::new();
                for name in ["careless", "careful", "careless.tmp", "careful.tmp"] {
                    let contents = if p.storage().exists(name).await.unwrap() {
                        Some(read_all(&p, name).await)
                    } else {
                        None
                    };
                    seen.insert(name, contents);
                }
                seen
            }
        },
    );
    let seen = &reports[&2];
    // Rename without syncing the new file first: the old contents are gone and the new ones
    // never reached the disk (the classic lost-config bug).
    assert_eq!(seen["careless"].as_deref(), Some(&[][..]));
    assert_eq!(seen["careful"].as_deref(), Some(&b"v2"[..]));
    assert_eq!(seen["careless.tmp"], None);
    assert_eq!(seen["careful.tmp"], None);
}

#[test]
fn test_torn_write_survives_a_crash_partially() {
    let config = storage_with(|c| {
        c.torn_write_probability = 0.5;
        c.crash_keep_unsynced_probability = 0.5;
    });
    let mut torn_seeds = 0;
    let mut outcomes = BTreeMap::new();
    for seed in 0..24 {
        let (summary, reports) = reboot_scenario(
            seed,
            config.clone(),
            RebootKind::Crash,
            |_, _| {},
            |p, boot| async move {
                if boot == 1 {
                    let mut file = create(&p, "pages").await;
                    file.write_all(&[0x11; 2048]).await.unwrap();
                    file.sync_all().await.unwrap();
                    file.seek(SeekFrom::Start(0)).await.unwrap();
                    // One unsynced write covering four 512-byte sectors.
                    file.write_all(&[0x22; 2048]).await.unwrap();
                    Vec::new()
                } else {
                    read_all(&p, "pages").await
                }
            },
        );
        let contents = &reports[&2];
        assert_eq!(contents.len(), 2048);
        let sectors: Vec<u8> = contents
            .chunks(512)
            .map(|sector| {
                assert!(
                    sector.iter().all(|b| *b == sector[0]),
                    "seed {seed}: a sector was torn inside (tears happen at sector boundaries)"
                );
                sector[0]
            })
            .collect();
        let new = sectors.iter().filter(|b| **b == 0x22).count();
        let torn = fault(&summary, "storage.torn_write");
        if torn == 1 {
            torn_seeds += 1;
            assert!(
                new > 0 && new < 4,
                "seed {seed}: a torn write lands partially, got {sectors:x?}"
            );
        } else {
            assert!(
                new == 0 || new == 4,
                "seed {seed}: an untorn write is all or nothing, got {sectors:x?}"
            );
        }
        outcomes
            .entry(match (torn, new) {
                (1, _) => "torn",
                (_, 0) => "lost",
                _ => "kept",
            })
            .and_modify(|n| *n += 1)
            .or_insert(1);
    }
    assert!(torn_seeds > 0, "no seed tore the write: {outcomes:?}");
    assert_eq!(
        outcomes.len(),
        3,
        "every crash outcome happens: {outcomes:?}"
    );
}

#[test]
fn test_crash_and_wipe_deletes_files_and_resets_disk_episodes() {
    let (summary, reports) = reboot_scenario(
        4,
        StorageConfiguration::fast_local(),
        RebootKind::CrashAndWipe,
        |control, server| {
            assert_eq!(control.disk_paths(server).len(), 2);
            // A failed, stalled disk must not outlive the wipe.
            control.stall_disk(server, Duration::from_secs(3600));
            control.fail_disk(server);
        },
        |p, boot| async move {
            if boot == 1 {
                for name in ["a", "b"] {
                    let mut file = create(&p, name).await;
                    file.write_all(b"synced").await.unwrap();
                    file.sync_all().await.unwrap();
                }
                (Duration::ZERO, Vec::new())
            } else {
                let started = p.time().now();
                let mut seen = Vec::new();
                for name in ["a", "b"] {
                    seen.push(p.storage().exists(name).await.unwrap());
                }
                let mut file = create(&p, "c").await;
                file.write_all(b"new disk").await.unwrap();
                (p.time().now() - started, seen)
            }
        },
    );
    let (elapsed, existed) = &reports[&2];
    assert_eq!(existed, &vec![false, false], "the wipe deleted every file");
    assert!(
        *elapsed < MS,
        "the fresh disk is neither stalled nor failed ({elapsed:?})"
    );
    assert_eq!(fault(&summary, "process.crash_and_wipe"), 1);
}

#[test]
fn test_stale_handle_fails_after_reboot_and_never_touches_new_files() {
    #[derive(Default)]
    struct Shared {
        stale: Option<SimFile>,
        ready: bool,
        stale_checked: bool,
        final_contents: Option<Vec<u8>>,
    }
    let shared = Arc::new(Mutex::new(Shared::default()));
    let mut world = world(5, StorageConfiguration::fast_local());
    let server_shared = Arc::clone(&shared);
    let server = world
        .add_process("server", "10.0.0.2", Locality::default(), move |ctx| {
            let shared = Arc::clone(&server_shared);
            async move {
                let p = ctx.providers.clone();
                let mut file = create(&p, "f").await;
                if ctx.boot == 1 {
                    file.write_all(b"old").await.unwrap();
                    file.sync_all().await.unwrap();
                    shared.lock().unwrap().stale = Some(file);
                    return std::future::pending::<()>().await;
                }
                file.set_len(0).await.unwrap();
                file.write_all(b"new").await.unwrap();
                file.sync_all().await.unwrap();
                shared.lock().unwrap().ready = true;
                let checked = || shared.lock().unwrap().stale_checked;
                wait_until(&p, checked).await;
                let contents = read_all(&p, "f").await;
                shared.lock().unwrap().final_contents = Some(contents);
                std::future::pending::<()>().await;
            }
        })
        .unwrap();
    let driver_shared = Arc::clone(&shared);
    world
        .add_workload("driver", "10.0.0.1", move |p| async move {
            let shared = driver_shared;
            wait_until(&p, || shared.lock().unwrap().stale.is_some()).await;
            p.control().reboot(server, RebootKind::Crash, Some(10 * MS));
            wait_until(&p, || shared.lock().unwrap().ready).await;
            let mut stale = shared.lock().unwrap().stale.take().unwrap();
            let write = stale.write_all(b"XXXXXXXX").await.unwrap_err();
            assert_eq!(write.kind(), ErrorKind::NotConnected, "{write}");
            let mut buffer = [0u8; 4];
            let read = stale.read(&mut buffer).await.unwrap_err();
            assert_eq!(read.kind(), ErrorKind::NotConnected);
            assert!(stale.sync_all().await.is_err());
            assert!(stale.set_len(100).await.is_err());
            assert!(stale.size().await.is_err());
            assert!(stale.seek(SeekFrom::End(0)).await.is_err());
            drop(stale);
            shared.lock().unwrap().stale_checked = true;
            wait_until(&p, || shared.lock().unwrap().final_contents.is_some()).await;
            let contents = shared.lock().unwrap().final_contents.take().unwrap();
            assert_eq!(contents, b"new");
        })
        .unwrap();
    world.run().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Data faults

#[test]
fn test_write_corruption_is_caught_by_a_checksum() {
    let data = pattern(4096, 7);
    let expected = fnv1a(&data);
    let (summary, (first, second)) = run_workload(
        6,
        storage_with(|c| c.write_corruption_probability = 1.0),
        move |p| async move {
            let mut file = create(&p, "block").await;
            let written = file.write(&data).await.unwrap();
            assert_eq!(written, data.len(), "the write reports full success");
            let first = read_at(&mut file, 0, 4096).await;
            let second = read_at(&mut file, 0, 4096).await;
            (first, second)
        },
    );
    assert_ne!(
        fnv1a(&first),
        expected,
        "the checksum catches the corruption"
    );
    assert_eq!(
        first, second,
        "the stored bytes are corrupt: every read agrees"
    );
    assert_eq!(fault(&summary, "storage.write_corruption"), 1);
}

#[test]
fn test_read_corruption_is_caught_by_a_checksum_and_leaves_the_data_intact() {
    let data = pattern(4096, 9);
    let expected = fnv1a(&data);
    let (summary, checksums) = run_workload(
        7,
        storage_with(|c| c.read_corruption_probability = 0.5),
        move |p| async move {
            let mut file = create(&p, "block").await;
            file.write_all(&data).await.unwrap();
            let mut checksums = Vec::new();
            for _ in 0..20 {
                checksums.push(fnv1a(&read_at(&mut file, 0, 4096).await));
            }
            checksums
        },
    );
    let bad = checksums.iter().filter(|c| **c != expected).count() as u64;
    assert!(bad > 0, "some read was corrupted");
    assert!(bad < 20, "the stored data is intact: some read is clean");
    assert_eq!(fault(&summary, "storage.read_corruption"), bad);
}

#[test]
fn test_misdirected_write_lands_elsewhere() {
    let (summary, contents) = run_workload(
        8,
        storage_with(|c| c.misdirected_write_probability = 1.0),
        |p| async move {
            let mut file = create(&p, "sectors").await;
            file.set_len(8 * 512).await.unwrap();
            file.seek(SeekFrom::Start(2048)).await.unwrap();
            file.write_all(&[0xAB; 512]).await.unwrap();
            read_at(&mut file, 0, 8 * 512).await
        },
    );
    assert_eq!(
        &contents[2048..2560],
        &[0u8; 512][..],
        "the intended sector is untouched"
    );
    let landed: Vec<usize> = contents
        .chunks(512)
        .enumerate()
        .filter(|(_, sector)| sector.iter().all(|b| *b == 0xAB))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(landed.len(), 1, "the data landed in one other sector");
    assert_ne!(landed[0], 4);
    assert_eq!(fault(&summary, "storage.misdirected_write"), 1);
}

#[test]
fn test_misdirected_read_returns_another_offset() {
    let (summary, sector) = run_workload(
        9,
        storage_with(|c| c.misdirected_read_probability = 1.0),
        |p| async move {
            let mut file = create(&p, "sectors").await;
            for i in 0..8u8 {
                file.write_all(&[i + 1; 512]).await.unwrap();
            }
            read_at(&mut file, 2 * 512, 512).await
        },
    );
    assert!(
        sector.iter().all(|b| *b == sector[0]),
        "a whole other sector"
    );
    assert_ne!(sector[0], 3, "not the sector asked for");
    assert!((1..=8).contains(&sector[0]));
    assert_eq!(fault(&summary, "storage.misdirected_read"), 1);
}

#[test]
fn test_phantom_write_reports_success_and_stores_nothing() {
    let (summary, (written, size, contents)) = run_workload(
        10,
        storage_with(|c| c.phantom_write_probability = 1.0),
        |p| async move {
            let mut file = create(&p, "lost").await;
            let written = file.write(b"hello").await.unwrap();
            let size = file.size().await.unwrap();
            drop(file);
            (written, size, read_all(&p, "lost").await)
        },
    );
    assert_eq!(written, 5, "the write claimed success");
    assert_eq!(size, 0);
    assert!(contents.is_empty());
    assert_eq!(fault(&summary, "storage.phantom_write"), 1);
}

#[test]
fn test_sync_failure_returns_an_error_and_makes_nothing_durable() {
    let (summary, reports) = reboot_scenario(
        11,
        storage_with(|c| c.sync_failure_probability = 1.0),
        RebootKind::Crash,
        |_, _| {},
        |p, boot| async move {
            if boot == 1 {
                let mut file = create(&p, "journal").await;
                file.write_all(b"commit 1").await.unwrap();
                let error = file.sync_all().await.unwrap_err();
                let error_data = file.sync_data().await.unwrap_err();
                assert_eq!(error_data.kind(), error.kind());
                (Some(error.to_string()), Vec::new())
            } else {
                (None, read_all(&p, "journal").await)
            }
        },
    );
    let message = reports[&1].0.as_ref().unwrap();
    assert!(
        message.contains("sync failed") && message.contains("journal"),
        "{message}"
    );
    assert!(reports[&2].1.is_empty(), "nothing became durable");
    assert_eq!(fault(&summary, "storage.sync_failure"), 2);
}

#[test]
fn test_uninitialized_read_returns_garbage_instead_of_zeros() {
    let (summary, (extended, hole)) = run_workload(
        12,
        storage_with(|c| c.uninitialized_read_probability = 1.0),
        |p| async move {
            let mut file = create(&p, "sparse").await;
            file.write_all(b"abc").await.unwrap();
            file.set_len(4096).await.unwrap();
            let extended = read_at(&mut file, 0, 4096).await;
            let mut other = create(&p, "hole").await;
            other.seek(SeekFrom::Start(1000)).await.unwrap();
            other.write_all(b"x").await.unwrap();
            let hole = read_at(&mut other, 0, 1001).await;
            (extended, hole)
        },
    );
    assert_eq!(&extended[..3], b"abc", "written bytes read back");
    assert!(
        extended[3..].iter().all(|b| *b != 0),
        "the extension reads as garbage, not zeros"
    );
    assert!(hole[..1000].iter().all(|b| *b != 0));
    assert_eq!(hole[1000], b'x');
    assert_eq!(fault(&summary, "storage.uninitialized_read"), 2);
}

// ---------------------------------------------------------------------------------------------
// Episodes and failed disks

#[test]
fn test_stall_episode_delays_an_operation_by_at_least_its_length() {
    let stall = Duration::from_millis(500);
    let (summary, elapsed) = run_workload(
        13,
        storage_with(|c| {
            c.stall_probability = 1.0;
            c.stall_duration = (stall, stall);
        }),
        |p| async move {
            let started = p.time().now();
            p.storage().exists("anything").await.unwrap();
            p.time().now() - started
        },
    );
    assert!(elapsed >= stall, "took {elapsed:?}");
    assert_eq!(fault(&summary, "storage.stall"), 1);
}

#[test]
fn test_every_operation_goes_through_the_disk_path() {
    // A stall before each operation must delay it: nothing bypasses the latency and fault path.
    let stall = 100 * MS;
    let (summary, timings) = run_workload(
        14,
        StorageConfiguration::fast_local(),
        move |p| async move {
            let me = p.process();
            let mut timings: Vec<(&str, Duration)> = Vec::new();
            macro_rules! timed {
                ($name:expr, $op:expr) => {{
                    p.control().stall_disk(me, stall);
                    let started = p.time().now();
                    let value = $op;
                    timings.push(($name, p.time().now() - started));
                    value
                }};
            }
            let storage = p.storage().clone();
            let mut file = timed!("open", create(&p, "f").await);
            timed!("write", file.write_all(b"abc").await.unwrap());
            timed!("sync", file.sync_all().await.unwrap());
            timed!("set_len", file.set_len(10).await.unwrap());
            timed!("size", file.size().await.unwrap());
            file.seek(SeekFrom::Start(0)).await.unwrap();
            let mut buffer = [0u8; 3];
            timed!("read", file.read_exact(&mut buffer).await.unwrap());
            timed!("exists", storage.exists("f").await.unwrap());
            timed!("rename", storage.rename("f", "g").await.unwrap());
            timed!("remove", storage.remove("g").await.unwrap());
            timings
        },
    );
    assert_eq!(timings.len(), 9);
    for (op, elapsed) in &timings {
        assert!(*elapsed >= stall, "{op} took only {elapsed:?}");
    }
    assert_eq!(fault(&summary, "storage.stall"), 9);
}

/// Simulated time of a fixed sequence of operations.
fn op_sequence_duration(config: StorageConfiguration) -> (RunSummary, Duration) {
    run_workload(15, config, |p| async move {
        let started = p.time().now();
        let mut file = create(&p, "bench").await;
        for i in 0..10u8 {
            file.write_all(&pattern(4096, i)).await.unwrap();
        }
        file.sync_all().await.unwrap();
        read_at(&mut file, 0, 8192).await;
        p.time().now() - started
    })
}

#[test]
fn test_throttled_disk_is_slower_by_its_factor() {
    let base = || {
        let mut config = StorageConfiguration::with_fixed_latency(Duration::from_micros(100));
        config.bandwidth_bytes_per_second = 10_000_000;
        config.iops = 1_000;
        config
    };
    let (_, normal) = op_sequence_duration(base());
    let mut throttled_config = base();
    throttled_config.throttle_probability = 1.0;
    throttled_config.throttle_factor = (4.0, 4.0);
    throttled_config.throttle_duration = (Duration::from_secs(3600), Duration::from_secs(3600));
    let (summary, throttled) = op_sequence_duration(throttled_config);
    let ratio = throttled.as_secs_f64() / normal.as_secs_f64();
    assert!(
        (ratio - 4.0).abs() < 0.001,
        "normal {normal:?}, throttled {throttled:?}, ratio {ratio}"
    );
    assert_eq!(fault(&summary, "storage.throttle"), 1);
}

#[test]
fn test_failed_disk_never_completes_and_the_run_reports_the_stuck_task() {
    // Forced on the driver's own disk: a timeout gets out, a bare await hangs and the world
    // reports a deadlock naming the task.
    let mut world = world(16, StorageConfiguration::fast_local());
    world
        .add_workload("driver", "10.0.0.1", |p| async move {
            p.control().fail_disk(p.process());
            let timed_out = p
                .time()
                .timeout(Duration::from_secs(1), p.storage().exists("x"))
                .await;
            assert!(
                timed_out.is_err(),
                "an operation on a failed disk completed"
            );
            let _ = p
                .storage()
                .open("x", OpenOptions::read_write_create())
                .await;
            unreachable!("a failed disk completed an open");
        })
        .unwrap();
    match world.run() {
        Err(SimError::Deadlock { stuck, now, .. }) => {
            assert!(stuck.iter().any(|t| t.contains("driver")), "{stuck:?}");
            assert_eq!(now, Duration::from_secs(1));
        }
        other => panic!("expected a deadlock, got {other:?}"),
    }
}

#[test]
fn test_failed_disk_from_configuration_hangs_the_server_until_the_time_budget() {
    let faults = Arc::new(Mutex::new(BTreeMap::new()));
    let mut world = SimWorld::with_config(17, {
        let mut cfg = WorldConfig::quiet();
        cfg.storage = storage_with(|c| c.failed_disk_probability = 1.0);
        cfg.time_budget = Duration::from_secs(10);
        cfg
    })
    .unwrap();
    let done = Arc::new(Mutex::new(false));
    let server_done = Arc::clone(&done);
    world
        .add_process("server", "10.0.0.2", Locality::default(), move |ctx| {
            let done = Arc::clone(&server_done);
            async move {
                let _file = create(&ctx.providers, "data").await;
                *done.lock().unwrap() = true;
            }
        })
        .unwrap();
    let driver_faults = Arc::clone(&faults);
    world
        .add_workload("driver", "10.0.0.1", move |p| async move {
            // A client without a timeout: waits for the server forever.
            while !*done.lock().unwrap() {
                *driver_faults.lock().unwrap() = p.control().faults();
                p.time().sleep(100 * MS).await;
            }
        })
        .unwrap();
    match world.run() {
        Err(SimError::TimeBudgetExceeded { live, .. }) => {
            assert!(
                live.iter().any(|t| t.starts_with("server/")),
                "the stuck server task is named: {live:?}"
            );
        }
        other => panic!("expected an exhausted time budget, got {other:?}"),
    }
    assert_eq!(faults.lock().unwrap().get("storage.failed_disk"), Some(&1));
}

// ---------------------------------------------------------------------------------------------
// Latency model

#[test]
fn test_latency_is_base_plus_size_over_bandwidth() {
    let mut config = StorageConfiguration::with_fixed_latency(MS);
    config.bandwidth_bytes_per_second = 1_000_000; // one byte per microsecond
    let (_, timings) = run_workload(18, config, |p| async move {
        let mut timings = Vec::new();
        let mut last = p.time().now();
        let mut lap = |timings: &mut Vec<Duration>| {
            let now = p.time().now();
            timings.push(now - last);
            last = now;
        };
        let mut file = create(&p, "f").await;
        lap(&mut timings);
        file.write_all(&pattern(4096, 0)).await.unwrap();
        lap(&mut timings);
        file.seek(SeekFrom::Start(0)).await.unwrap();
        lap(&mut timings);
        let mut buffer = vec![0u8; 2000];
        file.read_exact(&mut buffer).await.unwrap();
        lap(&mut timings);
        file.sync_all().await.unwrap();
        lap(&mut timings);
        file.set_len(10).await.unwrap();
        lap(&mut timings);
        timings
    });
    let us = Duration::from_micros;
    assert_eq!(
        timings,
        vec![
            MS,             // open: base only
            MS + us(4096),  // write: base + 4096 B at 1 B/µs
            Duration::ZERO, // seek touches no disk
            MS + us(2000),  // read
            MS,             // sync
            MS,             // set_len
        ]
    );
}

#[test]
fn test_iops_limit_queues_concurrent_operations() {
    let mut config = StorageConfiguration::with_fixed_latency(Duration::ZERO);
    config.iops = 100; // each operation occupies the disk for 10 ms
    let (_, mut finished) = run_workload(19, config, |p| async move {
        let mut handles = Vec::new();
        for i in 0..5 {
            let p2 = p.clone();
            handles.push(p.task().spawn(&format!("op{i}"), async move {
                p2.storage().exists("x").await.unwrap();
                p2.time().now()
            }));
        }
        let mut finished = Vec::new();
        for handle in handles {
            finished.push(handle.await.unwrap());
        }
        finished
    });
    finished.sort();
    assert_eq!(
        finished,
        (0..5).map(|i| i * 10 * MS).collect::<Vec<_>>(),
        "one operation starts every 1/iops"
    );
}

// ---------------------------------------------------------------------------------------------
// Determinism

fn chaos_storage() -> StorageConfiguration {
    let mut cfg = StorageConfiguration::default();
    cfg.read_corruption_probability = 0.02;
    cfg.write_corruption_probability = 0.02;
    cfg.misdirected_read_probability = 0.02;
    cfg.misdirected_write_probability = 0.02;
    cfg.phantom_write_probability = 0.02;
    cfg.sync_failure_probability = 0.05;
    cfg.uninitialized_read_probability = 0.5;
    cfg.crash_keep_unsynced_probability = 0.5;
    cfg.torn_write_probability = 0.5;
    cfg.stall_probability = 0.01;
    cfg.stall_duration = (MS, 20 * MS);
    cfg.throttle_probability = 0.01;
    cfg.throttle_duration = (10 * MS, 100 * MS);
    cfg.failed_disk_probability = 0.1;
    cfg
}

/// A server that appends checksummed records, syncs now and then, reads them back, truncates and
/// renames, rebooted (crash, wipe, graceful) by a driver; every storage fault on.
fn chaos_run(seed: u64) -> RunSummary {
    let mut world = world(seed, chaos_storage());
    let server = world
        .add_process(
            "server",
            "10.0.0.2",
            Locality::default(),
            |ctx| async move {
                let p = ctx.providers;
                let Ok(mut file) = p
                    .storage()
                    .open("records", OpenOptions::read_write_create())
                    .await
                else {
                    return;
                };
                for i in 0..200u32 {
                    let record = pattern(300 + (i as usize % 7) * 100, i as u8);
                    let _ = file.seek(SeekFrom::End(0)).await;
                    let _ = file.write_all(&record).await;
                    let _ = file.write_all(&fnv1a(&record).to_le_bytes()).await;
                    if i % 5 == 0 {
                        let _ = file.sync_data().await;
                    }
                    if i % 11 == 0 {
                        let mut back = Vec::new();
                        let _ = file.seek(SeekFrom::Start(0)).await;
                        let _ = file.read_to_end(&mut back).await;
                    }
                    if i % 37 == 0 {
                        let size = file.size().await.unwrap_or(0);
                        let _ = file.set_len(size + 4096).await;
                        let _ = p.storage().rename("records", "records.old").await;
                        let _ = p.storage().rename("records.old", "records").await;
                    }
                    p.time().sleep(MS).await;
                }
            },
        )
        .unwrap();
    world
        .add_workload("driver", "10.0.0.1", move |p| async move {
            for kind in [
                RebootKind::Crash,
                RebootKind::Graceful,
                RebootKind::Crash,
                RebootKind::CrashAndWipe,
                RebootKind::Crash,
            ] {
                p.time().sleep(150 * MS).await;
                p.control().reboot(server, kind, Some(5 * MS));
            }
            p.time().sleep(100 * MS).await;
        })
        .unwrap();
    world.run().unwrap()
}

#[test]
fn test_same_seed_with_every_storage_fault_gives_the_same_run() {
    let mut kinds = BTreeMap::new();
    for seed in [21, 22, 23] {
        let first = chaos_run(seed);
        let second = chaos_run(seed);
        assert_eq!(first, second, "seed {seed} diverged");
        for (kind, count) in &first.faults {
            if kind.starts_with("storage.") {
                *kinds.entry(*kind).or_insert(0) += count;
            }
        }
    }
    assert_ne!(chaos_run(21).fingerprint, chaos_run(22).fingerprint);
    // Positive evidence: the runs really exercised the fault catalog.
    for kind in [
        "storage.write_corruption",
        "storage.read_corruption",
        "storage.misdirected_write",
        "storage.misdirected_read",
        "storage.uninitialized_read",
        "storage.phantom_write",
        "storage.sync_failure",
        "storage.crash_lost_write",
        "storage.torn_write",
        "storage.stall",
        "storage.throttle",
    ] {
        assert!(kinds.contains_key(kind), "{kind} never fired: {kinds:?}");
    }
}
