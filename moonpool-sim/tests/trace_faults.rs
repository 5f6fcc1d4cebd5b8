//! Faults in a trace: each on the track it hit, and the traces of chaos seeds valid whatever
//! fired.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::trace::{echo_server, failed_trace};
use moonpool_core::{NetworkProvider, Providers, TimeProvider, assert_always};
use moonpool_sim::{IterationControl, SimulationBuilder, WorldConfig, check_chrome_trace};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Faults drawn where they hit: a storage fault on the disk track of the process whose task hit
/// it, a bit flip on the track of the connection end it hit, its delivery marked corrupted.
#[test]
fn test_disk_and_bit_flip_faults_on_the_tracks_they_hit() {
    use moonpool_core::{OpenOptions, StorageFile, StorageProvider};
    use moonpool_sim::{NetworkConfiguration, StorageConfiguration};
    let dir = tempfile::tempdir().unwrap();
    let config = {
        let mut cfg = WorldConfig::quiet();
        cfg.network = {
            let mut cfg = NetworkConfiguration::fast_local();
            cfg.bit_flip_probability = 1.0;
            cfg
        };
        cfg.storage = {
            let mut cfg = StorageConfiguration::fast_local();
            cfg.write_corruption_probability = 1.0;
            cfg
        };
        cfg
    };
    let report = SimulationBuilder::new("faulty")
        .world_config(config)
        .progress(false)
        .jobs(1)
        .iterations(IterationControl::FixedCount(1))
        .chaos_duration(Duration::from_millis(500))
        .chrome_trace_dir(dir.path())
        .process("server", 1, echo_server)
        .workload("client", 1, |ctx| async move {
            let mut file = ctx
                .providers
                .storage()
                .open("log", OpenOptions::read_write_create())
                .await?;
            file.write_all(b"entry\n").await?;
            file.sync_all().await?;
            let server = ctx.topology.ips_of("server")[0];
            let mut stream = ctx
                .providers
                .network()
                .connect(&format!("{server}:4500"))
                .await?;
            stream.write_all(b"hello\n").await?;
            ctx.providers.time().sleep(Duration::from_millis(50)).await;
            assert_always!(false, "planted: stop here");
            Ok(())
        })
        .run()
        .unwrap();
    let trace = failed_trace(&report);
    let client = trace.pid("client-0");
    let server = trace.pid("server-0");
    let disk =
        trace.all(|e| e["cat"] == "fault" && e["args"]["kind"] == "storage.write_corruption");
    assert!(!disk.is_empty());
    assert!(
        disk.iter().all(|e| e["pid"] == client && e["tid"] == 2),
        "{disk:?}"
    );
    let flip = trace.all(|e| e["cat"] == "fault" && e["args"]["kind"] == "network.bit_flip");
    assert!(!flip.is_empty());
    // On the thread of the connection end whose bytes were flipped, next to the delivery.
    assert!(
        flip.iter().all(|e| {
            trace.thread_name(e).starts_with("conn#") && e["args"]["connection"].is_string()
        }),
        "{flip:?}"
    );
    assert!(flip.iter().any(|e| e["pid"] == server));
    let corrupted = trace.all(|e| e["cat"] == "message-corrupt" && e["pid"] == server);
    assert!(!corrupted.is_empty());
    assert!(
        corrupted
            .iter()
            .all(|e| trace.thread_name(e).starts_with("conn#1 10.0.0.1:4500 -> "))
    );
    assert!(
        corrupted[0]["name"]
            .as_str()
            .unwrap()
            .ends_with("(corrupted)")
    );
}

/// Every trace of a chaos run is valid, whatever the faults: seeds with the swarm network
/// chaos, the TCP-layer faults, random partitions and clogs and attrition, each failing at its
/// end so that its trace is written, each trace checked (matched flows, nested slices on every
/// connection thread, sorted timestamps) and showing connection threads. Seeds:
/// `MOONPOOL_TRACE_CHAOS_SEEDS` (default 16, 8 in CI).
#[test]
fn test_traces_of_chaos_seeds_are_valid() {
    use moonpool_sim::{Chaos, NetworkConfiguration, ShrinkMode};
    let seeds: usize = match std::env::var("MOONPOOL_TRACE_CHAOS_SEEDS") {
        Ok(count) => count.parse().unwrap(),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => 8,
        Err(_) => 16,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = WorldConfig::quiet();
    config.network = NetworkConfiguration::random_for_seed(7).with_random_tcp_faults(7);
    let report = SimulationBuilder::new("chaos-traced")
        .world_config(config)
        .progress(false)
        .jobs(1)
        .iterations(IterationControl::FixedCount(seeds))
        .chaos_duration(Duration::from_secs(3))
        .enable_chaos([
            Chaos::Network,
            Chaos::Partitions,
            Chaos::Attrition(moonpool_sim::Attrition::default()),
        ])
        .shrink(ShrinkMode::Off)
        .chrome_trace_dir(dir.path())
        .process("server", 2, echo_server)
        .workload("client", 2, |ctx| async move {
            let servers = ctx.topology.ips_of("server");
            for i in 0..40 {
                let server = servers[i % servers.len()];
                let address = format!("{server}:4500");
                let connect = ctx.providers.network().connect(&address);
                let Ok(Ok(stream)) = ctx
                    .providers
                    .time()
                    .timeout(Duration::from_millis(200), connect)
                    .await
                else {
                    continue;
                };
                let (reader, mut writer) = tokio::io::split(stream);
                let mut reader = BufReader::new(reader);
                let _ = writer.write_all(format!("ping {i}\n").as_bytes()).await;
                let mut line = String::new();
                let _ = ctx
                    .providers
                    .time()
                    .timeout(Duration::from_millis(200), reader.read_line(&mut line))
                    .await;
            }
            assert_always!(
                false,
                "planted: every seed fails, so that its trace is written"
            );
            Ok(())
        })
        .run()
        .unwrap();
    let mut traced = 0;
    let mut connection_threads = 0;
    let mut held_or_lost = 0;
    let mut spans = 0;
    let mut lanes = 0;
    for failed in report.failures() {
        let path = failed
            .trace_file
            .as_deref()
            .expect("a trace per failed seed");
        let text = std::fs::read_to_string(path).unwrap();
        check_chrome_trace(&text).unwrap_or_else(|e| panic!("seed {}: {e}", failed.seed));
        traced += 1;
        connection_threads += text.matches("\"name\":\"conn#").count();
        held_or_lost += text.matches("held back: ").count() + text.matches("message-lost").count();
        spans += text.matches("\"cat\":\"fault-span\",\"dur\"").count();
        lanes += text.matches("(overlapping faults)").count();
    }
    eprintln!(
        "{traced} traces: {connection_threads} connection threads, {spans} fault slices on them, \
         {lanes} overlap threads, {held_or_lost} held or lost marks"
    );
    assert_eq!(traced, seeds, "{report}");
    assert!(connection_threads > seeds, "{connection_threads}");
    assert!(held_or_lost > 0);
}
