#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! One test per simulated-storage data fault, proving it fires and has its documented effect,
//! and the crash model. Episodes, failed disks, the latency formula and determinism are in
//! `storage_episodes.rs`.

mod common;

use std::collections::BTreeMap;
use std::io::{ErrorKind, SeekFrom};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::storage::*;
use moonpool_core::{Providers, StorageFile, StorageProvider, TimeProvider};
use moonpool_sim::{Locality, RebootKind, SimFile, StorageConfiguration};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

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
