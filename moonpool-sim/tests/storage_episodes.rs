#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Simulated-storage episodes (stalls, throttling, failed disks), the latency formula and
//! determinism under every storage fault.

mod common;

use std::collections::BTreeMap;
use std::io::SeekFrom;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::storage::*;
use moonpool_core::{
    OpenOptions, Providers, StorageFile, StorageProvider, TaskProvider, TimeProvider,
};
use moonpool_sim::{
    Locality, RebootKind, RunSummary, SimError, SimWorld, StorageConfiguration, WorldConfig,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

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
