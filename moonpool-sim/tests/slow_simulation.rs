//! Long chaos runs (named `slow_simulation_*`): nextest's `sim` profile runs them one at a time;
//! CI runs them with a bounded number of seeds (`ci_max_seeds`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use moonpool_core::{
    NetworkProvider, OpenOptions, Providers, RandomProvider, StorageFile, StorageProvider,
    TcpListener, TimeProvider, assert_always, assert_sometimes,
};
use moonpool_sim::{Attrition, Chaos, IterationControl, RebootKind, SimulationBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A durable counter service: every increment is appended and synced before it is acknowledged.
/// After crashes and disk faults, no acknowledged increment may be lost.
async fn counter_server(ctx: moonpool_sim::ProcessContext) {
    let providers = ctx.providers.clone();
    let Ok(mut log) = providers
        .storage()
        .open(
            "increments.log",
            OpenOptions::read_write_create().append(true),
        )
        .await
    else {
        return;
    };
    let mut contents = Vec::new();
    let _ = tokio::io::AsyncSeekExt::seek(&mut log, std::io::SeekFrom::Start(0)).await;
    if log.read_to_end(&mut contents).await.is_err() {
        return;
    }
    let mut count = contents.iter().filter(|b| **b == b'+').count() as u64;
    let Ok(listener) = providers.network().bind(&format!("{}:7000", ctx.ip)).await else {
        return;
    };
    while let Ok((mut stream, _)) = listener.accept().await {
        let mut byte = [0u8; 1];
        let read = providers
            .time()
            .timeout(Duration::from_secs(2), stream.read_exact(&mut byte))
            .await;
        if !matches!(read, Ok(Ok(_))) {
            continue;
        }
        if byte[0] == b'+' {
            if log.write_all(b"+").await.is_err() || log.sync_data().await.is_err() {
                continue;
            }
            count += 1;
        }
        // Count and checksum: the network flips bits, so the reply carries its own check.
        let mut reply = count.to_le_bytes().to_vec();
        reply.extend_from_slice(&checksum(count).to_le_bytes());
        let _ = stream.write_all(&reply).await;
    }
}

fn checksum(value: u64) -> u64 {
    value.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995
}

#[test]
fn slow_simulation_durable_counter_under_crashes() {
    let report = SimulationBuilder::new("durable-counter")
        .progress(false)
        .enable_chaos([
            Chaos::Network,
            Chaos::Clock,
            Chaos::Partitions,
            Chaos::Attrition(
                Attrition::default()
                    .with_max_dead(1)
                    .with_kinds(vec![RebootKind::Crash, RebootKind::Graceful]),
            ),
        ])
        .chaos_duration(Duration::from_secs(15))
        .iterations(IterationControl::UntilCoverageStable {
            plateau_seeds: 50,
            max_seeds: 2_000,
        })
        .ci_max_seeds(150)
        .process("counter", 1, counter_server)
        .workload("client", 1, |ctx| async move {
            let server = format!("{}:7000", ctx.topology.ips_of("counter")[0]);
            let mut acknowledged = 0u64;
            while ctx.chaos_active() {
                let increment = ctx.providers.random().random_bool(0.7);
                let attempt = ctx.providers.time().timeout(Duration::from_secs(1), async {
                    let mut stream = ctx.providers.network().connect(&server).await.ok()?;
                    stream
                        .write_all(if increment { b"+" } else { b"?" })
                        .await
                        .ok()?;
                    let mut reply = [0u8; 16];
                    stream.read_exact(&mut reply).await.ok()?;
                    let count = u64::from_le_bytes(reply[..8].try_into().ok()?);
                    let check = u64::from_le_bytes(reply[8..].try_into().ok()?);
                    if check != checksum(count) {
                        assert_sometimes!(true, "a corrupted reply was caught by its checksum");
                        return None;
                    }
                    Some(count)
                });
                match attempt.await {
                    Ok(Some(count)) => {
                        assert_always!(
                            count >= acknowledged,
                            "no acknowledged increment is lost",
                            (count, acknowledged)
                        );
                        assert_sometimes!(
                            count > acknowledged + 1,
                            "an unacknowledged increment survived"
                        );
                        acknowledged = if increment {
                            acknowledged.max(count)
                        } else {
                            acknowledged
                        };
                    }
                    _ => assert_sometimes!(true, "a request failed"),
                }
                ctx.providers.time().sleep(Duration::from_millis(50)).await;
            }
            Ok(())
        })
        .run()
        .unwrap();
    report.assert_success();
    println!("{report}");
}

#[test]
fn slow_simulation_determinism_over_many_seeds() {
    let report = SimulationBuilder::new("determinism-canary")
        .progress(false)
        .check_determinism(true)
        .enable_chaos([
            Chaos::Network,
            Chaos::Storage,
            Chaos::Clock,
            Chaos::Buggify,
            Chaos::Partitions,
        ])
        .chaos_duration(Duration::from_secs(5))
        .iterations(IterationControl::FixedCount(1_000))
        .ci_max_seeds(100)
        .process("echo", 2, |ctx| async move {
            let Ok(listener) = ctx
                .providers
                .network()
                .bind(&format!("{}:9000", ctx.ip))
                .await
            else {
                return;
            };
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut byte = [0u8; 1];
                if stream.read_exact(&mut byte).await.is_ok() {
                    let _ = stream.write_all(&byte).await;
                }
            }
        })
        .workload("client", 2, |ctx| async move {
            let targets = ctx.topology.ips_of("echo");
            while ctx.chaos_active() {
                let target = targets[ctx.providers.random().random_range(0..targets.len())];
                let _ = ctx
                    .providers
                    .time()
                    .timeout(Duration::from_millis(500), async {
                        let mut stream = ctx
                            .providers
                            .network()
                            .connect(&format!("{target}:9000"))
                            .await
                            .ok()?;
                        stream.write_all(b"x").await.ok()?;
                        let mut byte = [0u8; 1];
                        stream.read_exact(&mut byte).await.ok()
                    })
                    .await;
                ctx.providers.time().sleep(Duration::from_millis(20)).await;
            }
            Ok(())
        })
        .run()
        .unwrap();
    assert_eq!(report.failed(), 0, "{report}");
}
