//! Hostile arguments to `WorldControl`'s scripted-fault verbs (second pass): durations of
//! `Duration::MAX`, factors of 1e300 and NaN, process and connection ids that do not exist.
//! Each verb must do what it says or nothing, and the run must end with a result or a verdict;
//! never an arithmetic panic inside the engine, and never one blamed on an innocent task.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use moonpool_core::{
    NetworkProvider, OpenOptions, Providers, StorageFile, StorageProvider, TcpListener,
    TimeProvider,
};
use moonpool_sim::{
    Locality, ProcessId, RebootKind, SimError, SimWorld, WorldConfig, WorldControl,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod hostile2_common;

use hostile2_common::*;

/// A server that echoes bytes and keeps a file it writes and syncs every millisecond, and a
/// workload that runs `script` against the world's control and then round-trips and sleeps.
fn scripted(
    seed: u64,
    script: impl Fn(&WorldControl, ProcessId) + Send + Sync + 'static,
) -> Result<Result<moonpool_sim::RunSummary, SimError>, String> {
    let mut world = SimWorld::with_config(seed, WorldConfig::quiet()).unwrap();
    let server = world
        .add_process(
            "server",
            "10.0.0.1",
            Locality::default(),
            |ctx| async move {
                let p = ctx.providers.clone();
                let disk = p.clone();
                drop(moonpool_core::TaskProvider::spawn(
                    p.task(),
                    "disk",
                    async move {
                        let Ok(mut file) = disk
                            .storage()
                            .open("log", OpenOptions::read_write_create())
                            .await
                        else {
                            return;
                        };
                        loop {
                            if file.write_all(b"tick").await.is_err()
                                || file.sync_all().await.is_err()
                            {
                                return;
                            }
                            disk.time().sleep(Duration::from_millis(1)).await;
                        }
                    },
                ));
                let Ok(listener) = p.network().bind("10.0.0.1:4500").await else {
                    return;
                };
                while let Ok((mut stream, _)) = listener.accept().await {
                    drop(moonpool_core::TaskProvider::spawn(
                        p.task(),
                        "echo",
                        async move {
                            let mut byte = [0u8; 1];
                            while stream.read_exact(&mut byte).await.is_ok() {
                                if stream.write_all(&byte).await.is_err() {
                                    return;
                                }
                            }
                        },
                    ));
                }
            },
        )
        .unwrap();
    let control = world.control();
    let script = Arc::new(script);
    world
        .add_workload("scripter", "10.0.0.2", move |p| {
            let (control, script) = (control.clone(), Arc::clone(&script));
            async move {
                let time = p.time().clone();
                time.sleep(Duration::from_millis(2)).await;
                let connected = time
                    .timeout(Duration::from_secs(1), p.network().connect("10.0.0.1:4500"))
                    .await;
                script(&control, server);
                if let Ok(Ok(mut stream)) = connected {
                    for _ in 0..5 {
                        let trip = time
                            .timeout(Duration::from_millis(100), async {
                                stream.write_all(b"x").await?;
                                let mut b = [0u8; 1];
                                stream.read_exact(&mut b).await
                            })
                            .await;
                        if !matches!(trip, Ok(Ok(_))) {
                            break;
                        }
                    }
                }
                time.sleep(Duration::from_millis(20)).await;
            }
        })
        .unwrap();
    run_caught(world)
}

/// The run did not panic, and no task panicked because of the verb.
fn sound(what: &str, outcome: Result<Result<moonpool_sim::RunSummary, SimError>, String>) {
    match outcome {
        Err(panic) => panic!("{what}: a panic escaped run: {panic}"),
        Ok(Err(SimError::TaskPanicked { task, message, .. })) => {
            panic!("{what}: task '{task}' panicked: {message}")
        }
        Ok(_) => {}
    }
}

/// Partitions, isolation and clogs of `Duration::MAX` saturate ("until the end of time").
#[test]
fn test_network_verbs_of_duration_max_saturate() {
    let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
    sound(
        "partition",
        scripted(1, move |c, _| c.partition(a, b, Duration::MAX)),
    );
    sound(
        "partition_one_way",
        scripted(1, move |c, _| c.partition_one_way(a, b, Duration::MAX)),
    );
    sound(
        "isolate",
        scripted(1, move |c, _| c.isolate(a, Duration::MAX)),
    );
    sound("clog", scripted(1, move |c, _| c.clog(b, a, Duration::MAX)));
    sound(
        "clog reads",
        scripted(1, |c, server| {
            for info in c.connections_of(server) {
                c.clog_connection_reads(info.id, info.end, Duration::MAX);
            }
        }),
    );
    sound(
        "cut",
        scripted(1, |c, server| {
            for info in c.connections_of(server) {
                c.cut_connection(info.id, Some(Duration::MAX));
            }
        }),
    );
}

/// Verbs naming a process, machine or IP that does not exist do nothing.
#[test]
fn test_verbs_on_things_that_do_not_exist_do_nothing() {
    let ghost = ProcessId(9_999);
    let nowhere: IpAddr = "192.168.77.77".parse().unwrap();
    sound(
        "ghosts",
        scripted(2, move |c, _| {
            c.reboot(ghost, RebootKind::Crash, Some(Duration::from_millis(1)));
            c.reboot_machine("", RebootKind::Crash, None);
            c.reboot_zone("no-such-zone", RebootKind::Graceful, None);
            c.fail_disk(ghost);
            c.stall_disk(ghost, Duration::MAX);
            c.throttle_disk(ghost, f64::NAN, Duration::MAX);
            assert!(c.disk_paths(ghost).is_empty());
            assert!(c.connections_of(ghost).is_empty());
            assert!(!c.is_alive(ghost));
            c.partition(nowhere, nowhere, Duration::MAX);
            c.isolate(nowhere, Duration::from_secs(1));
        }),
    );
}

/// A reboot whose restart is `Duration::MAX` away: the process stays down, the run ends.
#[test]
fn test_a_crash_restarting_after_duration_max_stays_down() {
    sound(
        "restart after MAX",
        scripted(3, |c, server| {
            c.reboot(server, RebootKind::Crash, Some(Duration::MAX));
        }),
    );
}

/// Disk throttles with a NaN or infinite factor count as 1 (documented); a huge finite factor
/// must not overflow the next operation's latency.
#[test]
fn test_a_disk_throttle_of_1e300_saturates() {
    sound(
        "throttle 1e300",
        scripted(4, |c, server| {
            c.throttle_disk(server, 1e300, Duration::from_secs(1))
        }),
    );
}

#[test]
fn test_disk_throttles_of_nan_and_infinity_count_as_one() {
    for factor in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -5.0, 0.0] {
        sound(
            "throttle",
            scripted(4, move |c, server| {
                c.throttle_disk(server, factor, Duration::from_secs(1))
            }),
        );
    }
}

/// A disk stalled until the end of time: its operations never start (the server's disk task
/// waits; the run ends when the workload does), no overflow adding the latency to the stall.
#[test]
fn test_a_disk_stalled_for_duration_max_never_completes_and_never_panics() {
    sound(
        "stall MAX",
        scripted(5, |c, server| c.stall_disk(server, Duration::MAX)),
    );
}

/// A connection delay of `Duration::MAX` each way: bytes never arrive (the workload's
/// round trips time out), no overflow in the write path.
#[test]
fn test_a_connection_delay_of_duration_max_never_delivers_and_never_panics() {
    sound(
        "delay MAX",
        scripted(6, |c, server| {
            for info in c.connections_of(server) {
                c.set_connection_delay(info.id, Duration::MAX, Duration::MAX);
            }
        }),
    );
}

/// Loss bursts of `Duration::MAX` fail the connection after the retransmission budget.
#[test]
fn test_a_loss_burst_of_duration_max_fails_the_connection() {
    sound(
        "loss burst MAX",
        scripted(7, |c, server| {
            for info in c.connections_of(server) {
                c.loss_burst(info.id, info.end, Duration::MAX);
            }
        }),
    );
}
