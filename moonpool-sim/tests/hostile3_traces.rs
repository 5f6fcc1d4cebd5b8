//! The TCP model's quiet paths with the event trace and the story on (their `trace_log` and
//! `story` branches): the same workload on the quiet paths and forced down the full ones (a
//! partition of two addresses no process uses) must record the same trace and fingerprint-
//! relevant counts, apart from the partition's own fault mark.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod hostile3_common;

use std::time::Duration;

use hostile3_common::{chunk, first_bad, log, taken};
use moonpool_core::{
    NetworkProvider, Providers, RandomProvider, TaskProvider, TcpListener, TimeProvider,
};
use moonpool_sim::{Locality, NetworkConfiguration, SimWorld, TRACE_FAULT, WorldConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Recorded {
    trace: Vec<String>,
    reads: Vec<(u64, u128, usize, Option<u64>)>,
    sim_time: Duration,
    events: u64,
    polls: u64,
}

fn recorded(seed: u64, force_full: bool, story: bool) -> Recorded {
    let mut config = WorldConfig::quiet();
    let mut network = NetworkConfiguration::with_fixed_latency(Duration::from_micros(120));
    network.send_buffer_bytes = 900;
    config.network = network;
    config.record_trace = true;
    config.record_story = story;
    let mut world = SimWorld::with_config(seed, config).unwrap();
    if force_full {
        world.control().partition(
            "10.9.9.8".parse().unwrap(),
            "10.9.9.9".parse().unwrap(),
            Duration::MAX,
        );
    }
    let seen = log();
    let out = seen.clone();
    world
        .add_process("server", "10.0.0.1", Locality::default(), move |ctx| {
            let out = out.clone();
            async move {
                let p = ctx.providers;
                let listener = p.network().bind("10.0.0.1:7000").await.unwrap();
                let mut index = 0u64;
                while let Ok((mut stream, _)) = listener.accept().await {
                    let (p2, out) = (p.clone(), out.clone());
                    drop(p.task().spawn("reader", async move {
                        let mut got = 0u64;
                        let mut buffer = vec![0u8; 2_000];
                        loop {
                            let len = p2.random().random_range(1..2_000usize);
                            let n = stream.read(&mut buffer[..len]).await.unwrap();
                            let bad = first_bad(index, got, &buffer[..n]);
                            let now = p2.time().now().as_nanos();
                            out.lock().unwrap().push((index, now, n, bad));
                            if n == 0 {
                                break;
                            }
                            got += n as u64;
                            // Answer a little, so both directions carry bytes.
                            stream.write_all(&buffer[..n.min(7)]).await.unwrap();
                        }
                    }));
                    index += 1;
                }
            }
        })
        .unwrap();
    world
        .add_workload("client", "10.0.0.2", |p| async move {
            let mut joins = Vec::new();
            for index in 0..3u64 {
                let mut stream = p.network().connect("10.0.0.1:7000").await.unwrap();
                let p2 = p.clone();
                joins.push(p.task().spawn("writer", async move {
                    let mut sent = 0u64;
                    let mut sink = vec![0u8; 512];
                    while sent < 20_000 {
                        let len = p2.random().random_range(1..1_500usize);
                        stream.write_all(&chunk(index, sent, len)).await.unwrap();
                        sent += len as u64;
                        let _ = p2
                            .time()
                            .timeout(Duration::from_micros(50), stream.read(&mut sink))
                            .await;
                    }
                    stream.shutdown().await.unwrap();
                    let mut rest = Vec::new();
                    let _ = stream.read_to_end(&mut rest).await;
                }));
            }
            for join in joins {
                join.await.unwrap();
            }
        })
        .unwrap();
    let summary = world.run().unwrap();
    let mut reads = taken(&seen);
    reads.sort();
    Recorded {
        trace: summary
            .trace
            .iter()
            .filter(|entry| entry.kind != TRACE_FAULT)
            .map(|entry| format!("{entry:?}"))
            .collect(),
        reads,
        sim_time: summary.sim_time,
        events: summary.events,
        polls: summary.polls,
    }
}

fn compare(seed: u64, story: bool) {
    let quiet = recorded(seed, false, story);
    let full = recorded(seed, true, story);
    assert!(!quiet.trace.is_empty(), "the trace was recorded");
    assert_eq!(quiet.reads, full.reads, "seed {seed}: the reads differ");
    assert!(
        quiet.reads.iter().all(|r| r.3.is_none()),
        "seed {seed}: a wrong byte"
    );
    assert_eq!(
        (quiet.sim_time, quiet.events, quiet.polls),
        (full.sim_time, full.events, full.polls),
        "seed {seed}"
    );
    let first_difference = quiet
        .trace
        .iter()
        .zip(&full.trace)
        .position(|(a, b)| a != b);
    assert_eq!(
        (first_difference, quiet.trace.len()),
        (None, full.trace.len()),
        "seed {seed}: the traces differ"
    );
}

#[test]
fn test_the_quiet_paths_record_the_full_paths_trace() {
    for seed in [11, 12] {
        compare(seed, false);
    }
}

#[test]
fn test_the_quiet_paths_record_the_full_paths_trace_with_the_story_on() {
    compare(13, true);
}
