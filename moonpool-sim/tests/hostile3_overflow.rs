//! Network settings of `Duration::MAX` that the configuration accepts, added to the clock at
//! run time (`providers/network/mod.rs`'s connect timeout, `network/apply.rs`'s bit-flip
//! cooldown, `providers/network/stream.rs`'s random-close cooldown): each must be refused when
//! the world is made, or saturate; never panic with a `Duration` overflow at run time.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod hostile3_common;

use std::time::Duration;

use hostile3_common::run_caught;
use moonpool_core::{NetworkProvider, Providers, TcpListener, TimeProvider};
use moonpool_sim::{Locality, NetworkConfiguration, SimWorld, WorldConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The world for `network`, or `None` when the configuration is refused.
fn world(seed: u64, network: NetworkConfiguration) -> Option<SimWorld> {
    let mut config = WorldConfig::quiet();
    config.network = network;
    config.time_budget = Duration::from_secs(60);
    SimWorld::with_config(seed, config).ok()
}

/// An echo server and a client that talks to it `rounds` times over fresh connections.
fn chatter(world: &mut SimWorld, rounds: usize) {
    world
        .add_process(
            "server",
            "10.0.0.1",
            Locality::default(),
            |ctx| async move {
                let p = ctx.providers;
                let listener = p.network().bind("10.0.0.1:7000").await.unwrap();
                while let Ok((mut stream, _)) = listener.accept().await {
                    let mut buffer = [0u8; 64];
                    while let Ok(n) = stream.read(&mut buffer).await {
                        if n == 0 || stream.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            },
        )
        .unwrap();
    world
        .add_workload("client", "10.0.0.2", move |p| async move {
            for _ in 0..rounds {
                p.time().sleep(Duration::from_millis(1)).await;
                let Ok(mut stream) = p.network().connect("10.0.0.1:7000").await else {
                    continue;
                };
                for _ in 0..5 {
                    if stream.write_all(b"hello").await.is_err() {
                        break;
                    }
                    let mut back = [0u8; 5];
                    let _ = p
                        .time()
                        .timeout(Duration::from_millis(10), stream.read_exact(&mut back))
                        .await;
                }
            }
        })
        .unwrap();
}

fn no_overflow(outcome: &str) {
    assert!(
        !outcome.contains("overflow"),
        "a Duration overflow at run time: {outcome}"
    );
}

#[test]
fn test_a_connect_timeout_of_duration_max_is_refused_or_saturates() {
    let mut network = NetworkConfiguration::with_fixed_latency(Duration::from_micros(100));
    network.connect_timeout = Duration::MAX;
    let Some(mut world) = world(1, network) else {
        return; // Refused when made: fine.
    };
    world
        .add_workload("client", "10.0.0.2", |p| async move {
            p.time().sleep(Duration::from_millis(1)).await;
            // Nobody at this address: the connect waits out its timeout.
            let attempt = p
                .time()
                .timeout(Duration::from_secs(10), p.network().connect("10.0.0.77:1"))
                .await;
            assert!(attempt.is_err(), "the connect to nobody answered");
        })
        .unwrap();
    let outcome = format!("{:?}", run_caught(world));
    no_overflow(&outcome);
}

#[test]
fn test_a_bit_flip_cooldown_of_duration_max_is_refused_or_saturates() {
    let mut network = NetworkConfiguration::with_fixed_latency(Duration::from_micros(100));
    network.bit_flip_probability = 1.0;
    network.bit_flip_cooldown = Duration::MAX;
    let Some(mut world) = world(2, network) else {
        return;
    };
    chatter(&mut world, 3);
    let outcome = format!("{:?}", run_caught(world));
    no_overflow(&outcome);
}

#[test]
fn test_a_random_close_cooldown_of_duration_max_is_refused_or_saturates() {
    let mut network = NetworkConfiguration::with_fixed_latency(Duration::from_micros(100));
    network.random_close_probability = 1.0;
    network.random_close_cooldown = Duration::MAX;
    let Some(mut world) = world(3, network) else {
        return;
    };
    chatter(&mut world, 4);
    let outcome = format!("{:?}", run_caught(world));
    no_overflow(&outcome);
}

#[test]
fn test_the_same_settings_at_a_hundred_years_run() {
    // The 100-year bound the latencies have: every one of the settings above at that bound.
    let century = Duration::from_secs(100 * 365 * 24 * 3_600);
    let mut network = NetworkConfiguration::with_fixed_latency(Duration::from_micros(100));
    network.connect_timeout = century;
    network.bit_flip_probability = 1.0;
    network.bit_flip_cooldown = century;
    network.random_close_probability = 1.0;
    network.random_close_cooldown = century;
    let mut world = world(4, network).expect("a century is a valid setting");
    chatter(&mut world, 3);
    let outcome = format!("{:?}", run_caught(world));
    no_overflow(&outcome);
    assert!(outcome.starts_with("Ok("), "{outcome}");
}

#[test]
fn test_a_pair_latency_max_of_duration_max_is_refused_or_saturates() {
    for seed in 0..4 {
        let mut network = NetworkConfiguration::with_fixed_latency(Duration::from_micros(100));
        network.pair_latency_max = Duration::MAX;
        let Some(mut world) = world(10 + seed, network) else {
            return;
        };
        chatter(&mut world, 2);
        let outcome = format!("{:?}", run_caught(world));
        no_overflow(&outcome);
    }
}

#[test]
fn test_fault_duration_ranges_ending_at_duration_max_are_refused_or_saturate() {
    let mut network = NetworkConfiguration::with_fixed_latency(Duration::from_micros(100));
    network.clog_probability = 1.0;
    network.clog_duration = (Duration::ZERO, Duration::MAX);
    let Some(mut world) = world(20, network) else {
        return;
    };
    chatter(&mut world, 2);
    let outcome = format!("{:?}", run_caught(world));
    no_overflow(&outcome);
}

#[test]
fn test_a_random_partition_of_duration_max_is_refused_or_saturates() {
    let mut network = NetworkConfiguration::with_fixed_latency(Duration::from_micros(100));
    network.partition_probability = 1.0;
    network.partition_duration = (Duration::MAX, Duration::MAX);
    let Some(mut world) = world(21, network) else {
        return;
    };
    chatter(&mut world, 2);
    let outcome = format!("{:?}", run_caught(world));
    no_overflow(&outcome);
}

#[test]
fn test_a_storage_stall_range_ending_at_duration_max_is_refused_or_saturates() {
    use moonpool_core::{OpenOptions, StorageFile, StorageProvider};
    let mut config = WorldConfig::quiet();
    let mut storage = moonpool_sim::StorageConfiguration::fast_local();
    storage.stall_probability = 1.0;
    storage.stall_duration = (Duration::ZERO, Duration::MAX);
    config.storage = storage;
    config.time_budget = Duration::from_secs(60);
    let Ok(mut world) = SimWorld::with_config(30, config) else {
        return;
    };
    world
        .add_workload("disk", "10.0.0.1", |p| async move {
            let opened = p
                .time()
                .timeout(
                    Duration::from_secs(1),
                    p.storage().open("f", OpenOptions::read_write_create()),
                )
                .await;
            if let Ok(Ok(mut file)) = opened {
                let _ = p
                    .time()
                    .timeout(Duration::from_secs(1), file.sync_all())
                    .await;
            }
        })
        .unwrap();
    let outcome = format!("{:?}", run_caught(world));
    no_overflow(&outcome);
}
