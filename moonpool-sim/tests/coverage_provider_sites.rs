//! The simulated providers' buggify sites (docs/fault-injection.md, "Buggify sites"): short
//! reads and writes, slow syncs, spurious would-blocks, short socket writes and slow accepts
//! fire, and never break the provider contract: a program that uses `write_all`, `read_exact`
//! and `read_to_end` as it should reads back exactly what it wrote.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use moonpool_core::{
    NetworkProvider, OpenOptions, Providers, StorageFile, StorageProvider, TaskProvider,
    TcpListener, TimeProvider, assert_always,
};
use moonpool_sim::{
    BuggifyConfig, IterationControl, SimulationBuilder, SimulationReport, StorageConfiguration,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// A block of bytes that tells where it came from.
fn block(round: u32) -> Vec<u8> {
    (0..4096u32)
        .map(|i| u8::try_from((i * 31 + round * 7) % 251).unwrap())
        .collect()
}

fn simulation(name: &str, seeds: usize, buggify: BuggifyConfig) -> SimulationBuilder {
    SimulationBuilder::new(name)
        .progress(false)
        .storage(StorageConfiguration::default().without_faults())
        .buggify(buggify)
        .process("echo", 1, |ctx| async move {
            let Ok(listener) = ctx
                .providers
                .network()
                .bind(&format!("{}:7100", ctx.ip))
                .await
            else {
                return;
            };
            while let Ok((mut stream, _)) = listener.accept().await {
                drop(ctx.providers.task().spawn("echo", async move {
                    let mut buffer = vec![0u8; 4096];
                    while stream.read_exact(&mut buffer).await.is_ok() {
                        if stream.write_all(&buffer).await.is_err() {
                            return;
                        }
                    }
                }));
            }
        })
        .workload("client", 1, |ctx| async move {
            let storage = ctx.providers.storage();
            let mut file = storage
                .open("data.bin", OpenOptions::read_write_create())
                .await?;
            let mut written = Vec::new();
            for round in 0..8 {
                let data = block(round);
                file.write_all(&data).await?;
                file.sync_all().await?;
                written.extend_from_slice(&data);
            }
            file.seek(std::io::SeekFrom::Start(0)).await?;
            let mut back = Vec::new();
            file.read_to_end(&mut back).await?;
            assert_always!(back == written, "a file reads back what was written");

            let server = ctx.topology.ips_of("echo")[0].to_string();
            // The echo server may not be listening yet at time 0.
            ctx.providers.time().sleep(Duration::from_millis(10)).await;
            let mut stream = ctx
                .providers
                .network()
                .connect(&format!("{server}:7100"))
                .await?;
            for round in 0..8 {
                let data = block(round);
                stream.write_all(&data).await?;
                let mut echo = vec![0u8; data.len()];
                stream.read_exact(&mut echo).await?;
                assert_always!(echo == data, "a stream delivers what was sent, in order");
            }
            Ok(())
        })
        .network(moonpool_sim::NetworkConfiguration::default().without_faults())
        .iterations(IterationControl::FixedCount(seeds))
}

/// `MOONPOOL_BUGGIFY_SEEDS`, or `default` (to run many more seeds by hand).
fn seeds(default: usize) -> usize {
    std::env::var("MOONPOOL_BUGGIFY_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fired(report: &SimulationReport, file: &str, function: &str) -> u64 {
    report
        .buggify_sites()
        .filter(|r| r.location.starts_with(file) && r.function.contains(function))
        .map(|r| r.fired)
        .sum()
}

#[test]
fn test_provider_buggify_sites_fire_without_breaking_the_contract() {
    let every_site = {
        let mut cfg = BuggifyConfig::default();
        cfg.enabled = true;
        cfg.site_activation_probability = 1.0;
        cfg
    };
    let report = simulation("provider-buggify", seeds(12), every_site)
        .run()
        .unwrap();
    report.assert_success();
    assert_eq!(report.seeds_run(), seeds(12));
    let storage = "moonpool-sim/src/providers/storage/file.rs";
    let listener = "moonpool-sim/src/providers/network/listener.rs";
    let stream = "moonpool-sim/src/providers/network/stream.rs";
    let write = "moonpool-sim/src/providers/network/write.rs";
    for (file, function, what) in [
        (storage, "SimFile::sync", "slow sync"),
        (storage, "AsyncRead>::poll_read", "short file read"),
        (storage, "AsyncWrite>::poll_write", "short file write"),
        (listener, "accept", "slow accept"),
        (stream, "AsyncRead>::poll_read", "spurious would-block"),
        (write, "poll_write_locked", "short socket write"),
    ] {
        assert!(
            fired(&report, file, function) > 0,
            "{what} never fired:\n{report}"
        );
    }
}

#[test]
fn test_provider_buggify_sites_stay_quiet_with_buggify_off() {
    let report = simulation("provider-buggify-off", 3, BuggifyConfig::disabled())
        .run()
        .unwrap();
    report.assert_success();
    assert!(report.buggify_sites().all(|r| r.fired == 0));
    assert!(!report.faults.contains_key("buggify.fired"));
}
