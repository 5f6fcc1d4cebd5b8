//! Hostile use of the TCP model after the scale pass (`network/half.rs`: buffers swapped between
//! empty queues, halves' slots reserved up front; `providers/network/`: the write and read
//! paths): megabytes of random-sized writes and reads in both directions at once through small
//! send buffers, checked byte for byte (a prefix with TCP faults on, where a connection may
//! fail); many processes opening and closing connections past the reservation; a writer blocked
//! on a full buffer whose reader goes away; reads after the peer's close.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default,
    missing_docs
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{
    NetworkProvider, Providers, RandomProvider, TaskProvider, TcpListener, TimeProvider,
};
use moonpool_sim::{Locality, NetworkConfiguration, SimProviders, SimWorld, WorldConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Byte `index` of stream `stream` (a function both ends compute).
fn byte_of(stream: u64, index: u64) -> u8 {
    let mut x = stream
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(index.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    (x >> 29) as u8
}

/// Writes `total` bytes of stream `stream` in random-sized writes (1..`max` bytes each),
/// sometimes sleeping; returns how many were written before an error.
async fn write_stream<W: AsyncWrite + Unpin>(
    providers: &SimProviders,
    writer: &mut W,
    stream: u64,
    total: u64,
    max: usize,
) -> u64 {
    let random = providers.random().clone();
    let mut sent = 0u64;
    while sent < total {
        let len = random.random_range(1..max).min((total - sent) as usize);
        let chunk: Vec<u8> = (0..len as u64).map(|i| byte_of(stream, sent + i)).collect();
        if writer.write_all(&chunk).await.is_err() {
            return sent;
        }
        sent += len as u64;
        if random.random_range(0..8u32) == 0 {
            providers.time().sleep(Duration::from_micros(50)).await;
        }
    }
    sent
}

/// Reads stream `stream` in random-sized reads until `total` bytes, end of stream or an error;
/// returns how many bytes arrived and the index of the first wrong byte, if any.
async fn read_stream<R: AsyncRead + Unpin>(
    providers: &SimProviders,
    reader: &mut R,
    stream: u64,
    total: u64,
    max: usize,
) -> (u64, Option<u64>) {
    let random = providers.random().clone();
    let mut got = 0u64;
    let mut first_bad = None;
    let mut buffer = vec![0u8; max];
    while got < total {
        let len = random.random_range(1..max);
        match reader.read(&mut buffer[..len]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                for (offset, &byte) in buffer[..n].iter().enumerate() {
                    let index = got + offset as u64;
                    if first_bad.is_none() && byte != byte_of(stream, index) {
                        first_bad = Some(index);
                    }
                }
                got += n as u64;
            }
        }
        if random.random_range(0..8u32) == 0 {
            providers.time().sleep(Duration::from_micros(70)).await;
        }
    }
    (got, first_bad)
}

/// What one direction of one connection saw: bytes written, bytes read, first wrong byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Direction {
    written: u64,
    read: u64,
    bad: Option<u64>,
}

type Results = Arc<Mutex<Vec<(u64, Direction)>>>;

/// What a duplex world's clients and server saw, and its run.
type Duplex = (Vec<(u64, Direction)>, Vec<(u64, Direction)>, String);

/// A server that, on each connection, reads the client's stream and writes its own at once.
fn add_duplex_server(
    world: &mut SimWorld,
    total: u64,
    max: usize,
    results: Results,
) -> moonpool_sim::ProcessId {
    world
        .add_process("server", "10.0.0.1", Locality::default(), move |ctx| {
            let results = Arc::clone(&results);
            async move {
                let providers = ctx.providers;
                let Ok(listener) = providers.network().bind("10.0.0.1:7000").await else {
                    return;
                };
                let mut index = 0u64;
                while let Ok((stream, _)) = listener.accept().await {
                    index += 1;
                    let (mut reader, mut writer) = tokio::io::split(stream);
                    let (p1, p2) = (providers.clone(), providers.clone());
                    let results = Arc::clone(&results);
                    let written = Arc::new(Mutex::new(0u64));
                    let seen = Arc::clone(&written);
                    let _w = providers.task().spawn("server-writer", async move {
                        // The server's stream ids: 1_000 + connection index.
                        let n = write_stream(&p1, &mut writer, 1_000 + index, total, max).await;
                        *seen.lock().unwrap() = n;
                        // Keep the write half until the reader is done (dropping it closes).
                        p1.time().sleep(Duration::from_secs(30)).await;
                    });
                    drop(providers.task().spawn("server-reader", async move {
                        let (read, bad) = read_stream(&p2, &mut reader, index, total, max).await;
                        results.lock().unwrap().push((
                            index,
                            Direction {
                                written: 0,
                                read,
                                bad,
                            },
                        ));
                    }));
                    drop(written);
                }
            }
        })
        .unwrap()
}

/// `connections` clients at once, each writing its stream while reading the server's.
fn duplex_world(
    seed: u64,
    network: NetworkConfiguration,
    connections: u64,
    total: u64,
    max: usize,
) -> Duplex {
    duplex_world_with(seed, network, connections, total, max, false)
}

/// The duplex world, with a workload that scripts lossless faults on the server's connections
/// (cuts and restores, read clogs, delays, short loss bursts, send buffers resized) when
/// `monkey` is set.
fn duplex_world_with(
    seed: u64,
    network: NetworkConfiguration,
    connections: u64,
    total: u64,
    max: usize,
    monkey: bool,
) -> Duplex {
    let mut config = WorldConfig::quiet();
    config.network = network;
    config.time_budget = Duration::from_secs(3_600);
    let mut world = SimWorld::with_config(seed, config).unwrap();
    let server_results: Results = Arc::default();
    let server = add_duplex_server(&mut world, total, max, Arc::clone(&server_results));
    if monkey {
        let control = world.control();
        world
            .add_workload("monkey", "10.0.0.3", move |providers| async move {
                use moonpool_sim::network::ConnectionEnd;
                let random = providers.random().clone();
                providers.time().sleep(Duration::from_millis(5)).await;
                let mut restore = Vec::new();
                for _ in 0..400 {
                    let ends = control.connections_of(server);
                    if ends.is_empty() {
                        break;
                    }
                    let info = &ends[random.random_range(0..ends.len())];
                    let end = if random.random_range(0..2u32) == 0 {
                        ConnectionEnd::Client
                    } else {
                        ConnectionEnd::Server
                    };
                    let short = Duration::from_micros(random.random_range(10..3_000));
                    match random.random_range(0..7u32) {
                        0 => {
                            control.cut_connection(info.id, Some(short));
                        }
                        1 => {
                            if control.cut_connection(info.id, None) {
                                restore.push(info.id);
                            }
                        }
                        2 => {
                            control.clog_connection_reads(info.id, end, short);
                        }
                        3 => {
                            control.set_connection_delay(info.id, short / 3, short / 5);
                        }
                        4 => {
                            control.loss_burst(info.id, end, short / 10);
                        }
                        5 => {
                            let bytes = random.random_range(1..6_000usize);
                            control.set_send_buffer_capacity(info.id, end, bytes);
                        }
                        _ => {
                            for id in restore.drain(..) {
                                control.restore_connection(id);
                            }
                        }
                    }
                    providers
                        .time()
                        .sleep(Duration::from_micros(random.random_range(100..2_000)))
                        .await;
                }
                for id in restore.drain(..) {
                    control.restore_connection(id);
                }
            })
            .unwrap();
    }
    let client_results: Results = Arc::default();
    let out = Arc::clone(&client_results);
    world
        .add_workload("client", "10.0.0.2", move |providers| async move {
            let mut joins = Vec::new();
            for _ in 0..connections {
                let Ok(stream) = providers.network().connect("10.0.0.1:7000").await else {
                    continue;
                };
                // Connection indices are in accept order, which is connect order here.
                let index = joins.len() as u64 + 1;
                let (mut reader, mut writer) = tokio::io::split(stream);
                let (p1, p2) = (providers.clone(), providers.clone());
                let writer_task = providers.task().spawn("client-writer", async move {
                    let n = write_stream(&p1, &mut writer, index, total, max).await;
                    p1.time().sleep(Duration::from_secs(30)).await;
                    drop(writer);
                    n
                });
                let reader_task = providers.task().spawn("client-reader", async move {
                    read_stream(&p2, &mut reader, 1_000 + index, total, max).await
                });
                joins.push((index, writer_task, reader_task));
            }
            for (index, writer_task, reader_task) in joins {
                let written = writer_task.await.unwrap_or(0);
                let (read, bad) = reader_task.await.unwrap_or((0, None));
                out.lock()
                    .unwrap()
                    .push((index, Direction { written, read, bad }));
            }
        })
        .unwrap();
    let summary = format!("{:?}", world.run());
    drop(world);
    let mut server = server_results.lock().unwrap().clone();
    server.sort_by_key(|(index, _)| *index);
    let client = client_results.lock().unwrap().clone();
    (client, server, summary)
}

fn small_buffers() -> NetworkConfiguration {
    let mut network = NetworkConfiguration::with_fixed_latency(Duration::from_micros(300));
    network.send_buffer_bytes = 1_500;
    network
}

#[test]
fn test_duplex_streams_through_small_buffers_arrive_intact() {
    let total = 150_000;
    for seed in [1, 2] {
        let (client, server, summary) = duplex_world(seed, small_buffers(), 6, total, 3_000);
        assert!(summary.starts_with("Ok("), "seed {seed}: {summary}");
        assert_eq!(client.len(), 6, "seed {seed}: {client:?}");
        assert_eq!(server.len(), 6, "seed {seed}: {server:?}");
        for (index, direction) in &client {
            assert_eq!(direction.written, total, "seed {seed} client {index} wrote");
            assert_eq!(direction.read, total, "seed {seed} client {index} read");
            assert_eq!(
                direction.bad, None,
                "seed {seed} client {index}: a wrong byte"
            );
        }
        for (index, direction) in &server {
            assert_eq!(direction.read, total, "seed {seed} server {index} read");
            assert_eq!(
                direction.bad, None,
                "seed {seed} server {index}: a wrong byte"
            );
        }
    }
}

#[test]
fn test_duplex_streams_with_tiny_writes_and_a_tiny_buffer_arrive_intact() {
    let mut network = NetworkConfiguration::with_fixed_latency(Duration::from_micros(100));
    network.send_buffer_bytes = 16;
    let total = 20_000;
    let (client, server, summary) = duplex_world(9, network, 3, total, 40);
    assert!(summary.starts_with("Ok("), "{summary}");
    for (index, direction) in client.iter().chain(&server) {
        assert_eq!(direction.read, total, "{index}");
        assert_eq!(direction.bad, None, "{index}");
    }
}

#[test]
fn test_duplex_streams_under_tcp_faults_arrive_as_an_intact_prefix() {
    let total = 300_000;
    let mut failed_some = 0;
    for seed in 0..3u64 {
        let mut network =
            NetworkConfiguration::with_fixed_latency(Duration::from_micros(300)).with_tcp_faults();
        // Raise the rates so that each fault happens within a few hundred KB.
        network.read_clog_probability = 0.01;
        network.random_close_read_probability = 0.000_2;
        network.loss_probability = 0.05;
        network.loss_burst_probability = 0.000_5;
        let (client, server, summary) = duplex_world(100 + seed, network, 4, total, 5_000);
        assert!(summary.starts_with("Ok("), "seed {seed}: {summary}");
        for (index, direction) in client.iter().chain(&server) {
            // What arrived is an intact prefix of what was sent.
            assert_eq!(
                direction.bad, None,
                "seed {seed} {index}: a wrong byte {direction:?}"
            );
            assert!(direction.read <= total);
            if direction.read < total {
                failed_some += 1;
            }
        }
    }
    // (How many connections a fault ended is not asserted: only that bytes are intact.)
    eprintln!("directions cut short by a fault: {failed_some} of 24");
}

#[test]
fn test_duplex_streams_with_random_tcp_faults_and_default_chaos_arrive_intact() {
    for seed in 0..4u64 {
        let network = NetworkConfiguration::random_for_seed(seed).with_random_tcp_faults(seed);
        if network.validate().is_err() {
            continue;
        }
        let mut network = network;
        network.bit_flip_probability = 0.0;
        network.partial_write_probability = 0.2;
        network.partial_read_probability = 0.2;
        network.clog_probability = 0.05;
        let (client, server, summary) = duplex_world(200 + seed, network, 3, 100_000, 4_000);
        assert!(
            summary.starts_with("Ok(") || summary.contains("TimeBudget"),
            "seed {seed}: {summary}"
        );
        assert!(!client.is_empty(), "seed {seed}: no connection: {summary}");
        for (index, direction) in client.iter().chain(&server) {
            assert_eq!(
                direction.bad, None,
                "seed {seed} {index}: a wrong byte {direction:?}"
            );
        }
    }
}

/// Many processes, each opening and closing `per_process` connections one after another, one
/// round trip on each; returns the round trips that succeeded and the run.
fn churn(seed: u64, processes: usize, per_process: usize, faults: bool) -> (usize, String) {
    let mut network = NetworkConfiguration::with_fixed_latency(Duration::from_micros(200));
    if faults {
        network = network.with_tcp_faults();
    }
    let mut config = WorldConfig::quiet();
    config.network = network;
    config.time_budget = Duration::from_secs(36_000);
    let mut world = SimWorld::with_config(seed, config).unwrap();
    world
        .add_process(
            "server",
            "10.0.0.1",
            Locality::default(),
            |ctx| async move {
                let providers = ctx.providers;
                let Ok(listener) = providers.network().bind("10.0.0.1:7001").await else {
                    return;
                };
                while let Ok((mut stream, _)) = listener.accept().await {
                    drop(providers.task().spawn("echo", async move {
                        let mut buffer = [0u8; 64];
                        while let Ok(n) = stream.read(&mut buffer).await {
                            if n == 0 || stream.write_all(&buffer[..n]).await.is_err() {
                                return;
                            }
                        }
                    }));
                }
            },
        )
        .unwrap();
    let ok = Arc::new(Mutex::new(0usize));
    for p in 0..processes {
        let ok = Arc::clone(&ok);
        let ip = format!("10.1.{}.{}", p / 250, p % 250 + 1);
        world
            .add_workload(
                &format!("churn-{p}"),
                &ip,
                move |providers: SimProviders| async move {
                    let time = providers.time().clone();
                    for round in 0..per_process {
                        let connect = time
                            .timeout(
                                Duration::from_secs(5),
                                providers.network().connect("10.0.0.1:7001"),
                            )
                            .await;
                        let Ok(Ok(mut stream)) = connect else {
                            continue;
                        };
                        let frame = [(round % 251) as u8; 24];
                        let mut reply = [0u8; 24];
                        let trip = time
                            .timeout(Duration::from_secs(5), async {
                                stream.write_all(&frame).await?;
                                stream.read_exact(&mut reply).await
                            })
                            .await;
                        if matches!(trip, Ok(Ok(_))) && reply == frame {
                            *ok.lock().unwrap() += 1;
                        }
                        // Closed by drop, every other one after a shutdown.
                        if round % 2 == 0 {
                            let _ = stream.shutdown().await;
                        }
                    }
                },
            )
            .unwrap();
    }
    let summary = format!("{:?}", world.run());
    drop(world);
    let ok = *ok.lock().unwrap();
    (ok, summary)
}

#[test]
fn test_many_processes_open_and_close_connections_past_the_reservation() {
    // 40 processes x 50 connections: 2,000 connections, against a reservation of two halves per
    // process registered at the first connection.
    let (ok, summary) = churn(5, 40, 50, false);
    assert!(summary.starts_with("Ok("), "{summary}");
    assert_eq!(ok, 2_000, "{summary}");
}

#[test]
fn test_ten_thousand_connections_from_three_processes() {
    let (ok, summary) = churn(6, 3, 3_334, false);
    assert!(summary.starts_with("Ok("), "{summary}");
    assert_eq!(ok, 3 * 3_334, "{summary}");
}

#[test]
fn test_connection_churn_under_tcp_faults_stays_deterministic() {
    let first = churn(7, 20, 30, true);
    let second = churn(7, 20, 30, true);
    assert_eq!(first, second);
    assert!(first.1.starts_with("Ok("), "{}", first.1);
    assert!(first.0 > 500, "{first:?}");
}

/// Connections held open at once past the reservation (all alive together), each with a round
/// trip after all are open.
#[test]
fn test_ten_thousand_connections_open_at_once() {
    let mut config = WorldConfig::quiet();
    config.network = NetworkConfiguration::with_fixed_latency(Duration::from_micros(100));
    config.time_budget = Duration::from_secs(36_000);
    let mut world = SimWorld::with_config(8, config).unwrap();
    world
        .add_process(
            "server",
            "10.0.0.1",
            Locality::default(),
            |ctx| async move {
                let providers = ctx.providers;
                let Ok(listener) = providers.network().bind("10.0.0.1:7002").await else {
                    return;
                };
                while let Ok((mut stream, _)) = listener.accept().await {
                    drop(providers.task().spawn("echo", async move {
                        let mut buffer = [0u8; 16];
                        while let Ok(n) = stream.read(&mut buffer).await {
                            if n == 0 || stream.write_all(&buffer[..n]).await.is_err() {
                                return;
                            }
                        }
                    }));
                }
            },
        )
        .unwrap();
    let ok = Arc::new(Mutex::new(0usize));
    let out = Arc::clone(&ok);
    world
        .add_workload("client", "10.0.0.2", move |providers| async move {
            let mut streams = Vec::new();
            for _ in 0..5_000 {
                if let Ok(stream) = providers.network().connect("10.0.0.1:7002").await {
                    streams.push(stream);
                }
            }
            for (index, stream) in streams.iter_mut().enumerate().rev() {
                let frame = (index as u64).to_le_bytes();
                let mut reply = [0u8; 8];
                if stream.write_all(&frame).await.is_ok()
                    && stream.read_exact(&mut reply).await.is_ok()
                    && reply == frame
                {
                    *out.lock().unwrap() += 1;
                }
            }
        })
        .unwrap();
    let summary = format!("{:?}", world.run());
    assert!(summary.starts_with("Ok("), "{summary}");
    assert_eq!(*ok.lock().unwrap(), 5_000);
}

/// A writer blocked on a full send buffer whose peer stops reading and drops its stream: the
/// writer ends with an error (or its bytes all accepted), never waits forever.
#[test]
fn test_a_writer_blocked_on_a_full_buffer_whose_reader_drops_ends() {
    for (seed, faults) in [(1u64, false), (2, true), (3, false)] {
        let mut network = NetworkConfiguration::with_fixed_latency(Duration::from_micros(200));
        if faults {
            network = network.with_tcp_faults();
        }
        network.send_buffer_bytes = 64;
        let mut config = WorldConfig::quiet();
        config.network = network;
        let mut world = SimWorld::with_config(seed, config).unwrap();
        world
            .add_process(
                "server",
                "10.0.0.1",
                Locality::default(),
                |ctx| async move {
                    let providers = ctx.providers;
                    let Ok(listener) = providers.network().bind("10.0.0.1:7003").await else {
                        return;
                    };
                    while let Ok((mut stream, _)) = listener.accept().await {
                        // Read a little, then drop the stream while the writer waits.
                        let mut buffer = [0u8; 100];
                        let _ = stream.read(&mut buffer).await;
                        providers.time().sleep(Duration::from_millis(5)).await;
                        drop(stream);
                    }
                },
            )
            .unwrap();
        let ended = Arc::new(Mutex::new(None));
        let out = Arc::clone(&ended);
        world
            .add_workload("client", "10.0.0.2", move |providers| async move {
                let Ok(mut stream) = providers.network().connect("10.0.0.1:7003").await else {
                    return;
                };
                let data = vec![7u8; 100_000];
                let result = providers
                    .time()
                    .timeout(Duration::from_secs(60), stream.write_all(&data))
                    .await;
                *out.lock().unwrap() = Some(format!("{result:?}"));
                // And a read after the peer's drop ends too.
                let mut byte = [0u8; 1];
                let read = providers
                    .time()
                    .timeout(Duration::from_secs(60), stream.read(&mut byte))
                    .await;
                assert!(read.is_ok(), "a read after the peer dropped hangs");
            })
            .unwrap();
        let summary = format!("{:?}", world.run());
        assert!(summary.starts_with("Ok("), "seed {seed}: {summary}");
        let ended = ended.lock().unwrap().clone().unwrap();
        assert!(
            ended.starts_with("Ok(Err("),
            "seed {seed}: the blocked writer did not fail: {ended}"
        );
    }
}

/// Bytes written just before a close are read by the peer before its end of stream, and the
/// closer's peer can still write back until it closes too (as far as the model allows: its
/// writes fail or succeed, but never hang).
#[test]
fn test_bytes_written_before_a_close_arrive_before_the_end() {
    for seed in 0..5u64 {
        let mut world = SimWorld::with_config(seed, {
            let mut config = WorldConfig::quiet();
            config.network = NetworkConfiguration::with_fixed_latency(Duration::from_micros(500));
            config.network.send_buffer_bytes = 300;
            config
        })
        .unwrap();
        let got = Arc::new(Mutex::new(None));
        let out = Arc::clone(&got);
        world
            .add_process("server", "10.0.0.1", Locality::default(), move |ctx| {
                let out = Arc::clone(&out);
                async move {
                    let providers = ctx.providers;
                    let Ok(listener) = providers.network().bind("10.0.0.1:7004").await else {
                        return;
                    };
                    if let Ok((mut stream, _)) = listener.accept().await {
                        let (read, bad) =
                            read_stream(&providers, &mut stream, 5, u64::MAX, 700).await;
                        let back = providers
                            .time()
                            .timeout(Duration::from_secs(10), stream.write_all(b"late"))
                            .await;
                        assert!(back.is_ok(), "a write after the peer's close hangs");
                        *out.lock().unwrap() = Some((read, bad));
                    }
                }
            })
            .unwrap();
        world
            .add_workload("client", "10.0.0.2", move |providers| async move {
                let Ok(mut stream) = providers.network().connect("10.0.0.1:7004").await else {
                    return;
                };
                let sent = write_stream(&providers, &mut stream, 5, 50_000, 900).await;
                assert_eq!(sent, 50_000);
                let _ = stream.shutdown().await;
                drop(stream);
                providers.time().sleep(Duration::from_secs(1)).await;
            })
            .unwrap();
        let summary = format!("{:?}", world.run());
        assert!(summary.starts_with("Ok("), "seed {seed}: {summary}");
        assert_eq!(
            *got.lock().unwrap(),
            Some((50_000, None)),
            "seed {seed}: the bytes before the close"
        );
    }
}

#[test]
fn test_duplex_streams_under_scripted_lossless_faults_arrive_intact() {
    let total = 150_000;
    for seed in [21u64, 22, 23] {
        let (client, server, summary) =
            duplex_world_with(seed, small_buffers(), 4, total, 4_000, true);
        for fault in [
            "network.cut_connection",
            "network.read_clog_connection",
            "network.loss",
        ] {
            assert!(
                summary.contains(fault),
                "seed {seed}: no {fault}: {summary}"
            );
        }
        assert!(summary.starts_with("Ok("), "seed {seed}: {summary}");
        assert_eq!(client.len(), 4, "seed {seed}: {client:?}");
        assert_eq!(server.len(), 4, "seed {seed}: {server:?}");
        for (index, direction) in client.iter().chain(&server) {
            assert_eq!(direction.bad, None, "seed {seed} {index}: a wrong byte");
            assert_eq!(
                direction.read, total,
                "seed {seed} {index}: bytes lost {direction:?}"
            );
        }
    }
}
