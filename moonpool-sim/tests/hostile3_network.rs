//! Hostile use of the TCP model's quiet paths (`providers/network/write.rs`'s quiet write,
//! `network/apply.rs`'s quiet delivery, `network/half.rs`'s queues): the same workload on the
//! quiet paths and forced down the full paths (a partition of two unrelated addresses, or fault
//! probabilities too small to fire) must give the same timeline; zero latency across seeds;
//! half-close; bytes in flight at a drop; read_exact across thousands of deliveries; a stream
//! moved between tasks; a reader aborted between its wake and its poll; refused connects; a
//! thousand connections to one listener.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod hostile3_common;

use std::io::ErrorKind;
use std::time::Duration;

use hostile3_common::{Log, byte_of, chunk, first_bad, log, taken, world_with};
use moonpool_core::{
    NetworkProvider, Providers, RandomProvider, TaskProvider, TcpListener, TimeProvider,
};
use moonpool_sim::{Locality, NetworkConfiguration, SimProviders, SimWorld};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SERVER: &str = "10.0.0.1";
const ADDR: &str = "10.0.0.1:7000";

fn fixed(latency: Duration, buffer: usize) -> NetworkConfiguration {
    let mut network = NetworkConfiguration::with_fixed_latency(latency);
    network.send_buffer_bytes = buffer;
    network
}

/// A server process that hands each accepted stream (with its accept index) to `serve`.
fn add_server<F, Fut>(world: &mut SimWorld, serve: F)
where
    F: Fn(SimProviders, moonpool_sim::SimTcpStream, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    world
        .add_process("server", SERVER, Locality::default(), move |ctx| {
            let serve = serve.clone();
            async move {
                let providers = ctx.providers;
                let listener = providers.network().bind(ADDR).await.unwrap();
                let mut index = 0;
                while let Ok((stream, _)) = listener.accept().await {
                    let task = serve(providers.clone(), stream, index);
                    drop(providers.task().spawn("serve", task));
                    index += 1;
                }
            }
        })
        .unwrap();
}

/// What the timeline workload saw: (connection, time in ns, bytes read, first wrong byte).
type Timeline = Vec<(u64, u128, usize, Option<u64>)>;

/// Four connections writing random-sized chunks with random pauses, then shutting down; the
/// server reads them with random-sized reads and notes each read's time and size.
fn timeline_world(
    seed: u64,
    network: NetworkConfiguration,
    force_full: bool,
) -> (Timeline, String, Duration, u64) {
    let mut world = world_with(seed, network);
    if force_full {
        // Two addresses no process uses: no connection's writes or deliveries are held, but
        // every one of them goes down the full path.
        let control = world.control();
        control.partition(
            "10.9.9.8".parse().unwrap(),
            "10.9.9.9".parse().unwrap(),
            Duration::MAX,
        );
    }
    let seen: Log<(u64, u128, usize, Option<u64>)> = log();
    let out = seen.clone();
    add_server(&mut world, move |providers, mut stream, index| {
        let out = out.clone();
        async move {
            let mut got = 0u64;
            let mut buffer = vec![0u8; 5_000];
            loop {
                let len = providers.random().random_range(1..5_000usize);
                let n = stream.read(&mut buffer[..len]).await.unwrap();
                let bad = first_bad(index, got, &buffer[..n]);
                let now = providers.time().now().as_nanos();
                out.lock().unwrap().push((index, now, n, bad));
                if n == 0 {
                    break;
                }
                got += n as u64;
                if providers.random().random_range(0..4u32) == 0 {
                    providers.time().sleep(Duration::from_micros(30)).await;
                }
            }
        }
    });
    world
        .add_workload("client", "10.0.0.2", |providers| async move {
            let mut joins = Vec::new();
            for index in 0..4u64 {
                let mut stream = providers.network().connect(ADDR).await.unwrap();
                let p = providers.clone();
                joins.push(providers.task().spawn("writer", async move {
                    let mut sent = 0u64;
                    while sent < 60_000 {
                        let len = p.random().random_range(1..4_000usize);
                        stream.write_all(&chunk(index, sent, len)).await.unwrap();
                        sent += len as u64;
                        if p.random().random_range(0..3u32) == 0 {
                            p.time().sleep(Duration::from_micros(40)).await;
                        }
                    }
                    stream.shutdown().await.unwrap();
                    p.time().sleep(Duration::from_secs(1)).await;
                }));
            }
            for join in joins {
                join.await.unwrap();
            }
        })
        .unwrap();
    let summary = world.run().unwrap();
    let mut timeline = taken(&seen);
    timeline.sort();
    (
        timeline,
        format!("{:?}", summary.fault_kinds),
        summary.sim_time,
        summary.events,
    )
}

#[test]
fn test_the_quiet_paths_give_the_full_paths_timeline() {
    for (latency, buffer) in [(Duration::from_micros(200), 1_500), (Duration::ZERO, 700)] {
        for seed in [3, 4] {
            let quiet = timeline_world(seed, fixed(latency, buffer), false);
            let full = timeline_world(seed, fixed(latency, buffer), true);
            assert_eq!(quiet.0, full.0, "seed {seed}: the timelines differ");
            assert_eq!(quiet.2, full.2, "seed {seed}: the end times differ");
            assert_eq!(quiet.3, full.3, "seed {seed}: the event counts differ");
            let eofs = quiet.0.iter().filter(|(_, _, n, _)| *n == 0).count();
            assert_eq!(eofs, 4, "every connection ends in EOF");
            for index in 0..4 {
                let total: usize = quiet.0.iter().filter(|e| e.0 == index).map(|e| e.2).sum();
                assert!(total >= 60_000, "connection {index} got {total}");
                assert!(quiet.0.iter().all(|e| e.3.is_none()), "a wrong byte");
            }
        }
    }
}

#[test]
fn test_fault_probabilities_too_small_to_fire_give_the_quiet_timeline() {
    let base = fixed(Duration::from_micros(150), 2_000);
    let quiet = timeline_world(7, base.clone(), false);
    let mut tiny = base;
    tiny.loss_probability = 1e-300;
    tiny.cut_probability = 1e-300;
    tiny.clog_probability = 1e-300;
    tiny.partial_write_probability = 1e-300;
    tiny.bit_flip_probability = 1e-300;
    tiny.read_clog_probability = 1e-300;
    let full = timeline_world(7, tiny, false);
    assert_eq!(full.1, quiet.1, "no fault fired in either");
    assert_eq!(quiet.0, full.0, "the timelines differ");
    assert_eq!((quiet.2, quiet.3), (full.2, full.3));
}

#[test]
fn test_zero_latency_keeps_every_connections_bytes_whole_and_in_order_on_every_seed() {
    for seed in 0..8u64 {
        let (timeline, _, _, _) = timeline_world(seed, fixed(Duration::ZERO, 300), false);
        for index in 0..4 {
            let reads: Vec<_> = timeline.iter().filter(|e| e.0 == index).collect();
            let total: usize = reads.iter().map(|e| e.2).sum();
            assert!(total >= 60_000, "seed {seed} connection {index}: {total}");
            assert!(
                reads.iter().all(|e| e.3.is_none()),
                "seed {seed}: a wrong byte"
            );
        }
    }
}

/// Runs a client workload against a server, both given; returns the run's outcome as text.
fn pair_world<S, SF, C, CF>(network: NetworkConfiguration, seed: u64, serve: S, client: C) -> String
where
    S: Fn(SimProviders, moonpool_sim::SimTcpStream, u64) -> SF + Send + Sync + Clone + 'static,
    SF: std::future::Future<Output = ()> + Send + 'static,
    C: FnOnce(SimProviders) -> CF + Send + 'static,
    CF: std::future::Future<Output = ()> + Send + 'static,
{
    let mut world = world_with(seed, network);
    add_server(&mut world, serve);
    world.add_workload("client", "10.0.0.2", client).unwrap();
    format!("{:?}", world.run())
}

#[test]
fn test_a_half_closed_stream_still_reads_the_other_direction() {
    let results: Log<String> = log();
    let out = results.clone();
    let outcome = pair_world(
        fixed(Duration::from_millis(1), 4_000),
        1,
        |_providers, mut stream, _| async move {
            let mut all = Vec::new();
            stream.read_to_end(&mut all).await.unwrap();
            assert_eq!(all.len(), 50_000, "the server read everything before EOF");
            assert_eq!(first_bad(1, 0, &all), None);
            // Only now answer: the client's write side is shut, its read side is not.
            stream.write_all(&chunk(2, 0, 30_000)).await.unwrap();
        },
        move |providers| async move {
            let mut stream = providers.network().connect(ADDR).await.unwrap();
            stream.write_all(&chunk(1, 0, 50_000)).await.unwrap();
            stream.shutdown().await.unwrap();
            let after = stream.write(b"late").await;
            out.lock()
                .unwrap()
                .push(format!("{:?}", after.map_err(|e| e.kind())));
            let mut back = Vec::new();
            let read = stream.read_to_end(&mut back).await;
            out.lock().unwrap().push(format!(
                "{:?} {} {:?}",
                read.map_err(|e| e.kind()),
                back.len(),
                first_bad(2, 0, &back)
            ));
        },
    );
    assert!(outcome.starts_with("Ok("), "{outcome}");
    assert_eq!(
        taken(&results),
        vec![
            format!("{:?}", Err::<usize, _>(ErrorKind::BrokenPipe)),
            "Ok(30000) 30000 None".to_string()
        ]
    );
}

#[test]
fn test_bytes_in_flight_when_the_writer_drops_arrive_before_eof() {
    for seed in 0..4 {
        let results: Log<(usize, Option<u64>, String)> = log();
        let out = results.clone();
        let outcome = pair_world(
            fixed(Duration::from_millis(10), 1 << 20),
            seed,
            move |providers, mut stream, _| {
                let out = out.clone();
                async move {
                    let mut all = Vec::new();
                    let end = stream.read_to_end(&mut all).await.map(|_| ());
                    // The peer is gone: a write fails (at once, or within a few tries).
                    let mut write = Ok(0);
                    for _ in 0..5 {
                        write = stream.write(b"anyone?").await;
                        if write.is_err() {
                            break;
                        }
                        providers.time().sleep(Duration::from_millis(20)).await;
                    }
                    out.lock().unwrap().push((
                        all.len(),
                        first_bad(5, 0, &all),
                        format!("{:?} {:?}", end.map_err(|e| e.kind()), write.is_err()),
                    ));
                }
            },
            |providers| async move {
                let mut stream = providers.network().connect(ADDR).await.unwrap();
                stream.write_all(&chunk(5, 0, 200_000)).await.unwrap();
                drop(stream);
                providers.time().sleep(Duration::from_secs(2)).await;
            },
        );
        assert!(outcome.starts_with("Ok("), "{outcome}");
        assert_eq!(
            taken(&results),
            vec![(200_000, None, "Ok(()) true".to_string())],
            "seed {seed}"
        );
    }
}

#[test]
fn test_read_exact_across_thousands_of_tiny_deliveries() {
    let total = 30_000usize;
    let results: Log<Option<u64>> = log();
    let out = results.clone();
    let outcome = pair_world(
        fixed(Duration::from_micros(10), 64),
        2,
        move |_providers, mut stream, _| {
            let out = out.clone();
            async move {
                let mut all = vec![0u8; total];
                stream.read_exact(&mut all).await.unwrap();
                out.lock().unwrap().push(first_bad(9, 0, &all));
                let mut one = [0u8; 1];
                assert_eq!(stream.read(&mut one).await.unwrap(), 0, "EOF after all");
            }
        },
        move |providers| async move {
            let mut stream = providers.network().connect(ADDR).await.unwrap();
            let mut sent = 0;
            while sent < total {
                let len = providers.random().random_range(1..8usize).min(total - sent);
                let written = stream.write(&chunk(9, sent as u64, len)).await.unwrap();
                assert!((1..=len).contains(&written));
                sent += written;
                if providers.random().random_range(0..5u32) == 0 {
                    providers.task().yield_now().await;
                }
            }
            // Zero-length writes change nothing, even after everything.
            assert_eq!(stream.write(&[]).await.unwrap(), 0);
            stream.shutdown().await.unwrap();
            providers.time().sleep(Duration::from_secs(1)).await;
        },
    );
    assert!(outcome.starts_with("Ok("), "{outcome}");
    assert_eq!(taken(&results), vec![None]);
}

#[test]
fn test_a_single_write_takes_at_most_the_buffer_and_a_huge_write_all_arrives_whole() {
    let total = 3 << 20;
    let results: Log<String> = log();
    let out = results.clone();
    let outcome = pair_world(
        fixed(Duration::from_micros(100), 1_500),
        3,
        move |_providers, mut stream, _| {
            let out = out.clone();
            async move {
                let mut all = Vec::new();
                stream.read_to_end(&mut all).await.unwrap();
                out.lock()
                    .unwrap()
                    .push(format!("{} {:?}", all.len(), first_bad(4, 0, &all)));
            }
        },
        move |providers| async move {
            let mut stream = providers.network().connect(ADDR).await.unwrap();
            let data = chunk(4, 0, total);
            let first = stream.write(&data).await.unwrap();
            assert!((1..=1_500).contains(&first), "one write took {first} bytes");
            stream.write_all(&data[first..]).await.unwrap();
            drop(stream);
            providers.time().sleep(Duration::from_secs(1)).await;
        },
    );
    assert!(outcome.starts_with("Ok("), "{outcome}");
    assert_eq!(taken(&results), vec![format!("{total} None")]);
}

#[test]
fn test_a_zero_length_read_consumes_nothing() {
    let results: Log<String> = log();
    let out = results.clone();
    let outcome = pair_world(
        fixed(Duration::from_micros(100), 4_000),
        4,
        move |providers, mut stream, _| {
            let out = out.clone();
            async move {
                providers.time().sleep(Duration::from_millis(1)).await;
                let zero = stream.read(&mut []).await.unwrap();
                let mut all = Vec::new();
                stream.read_to_end(&mut all).await.unwrap();
                out.lock().unwrap().push(format!("{zero} {all:?}"));
            }
        },
        |providers| async move {
            let mut stream = providers.network().connect(ADDR).await.unwrap();
            stream.write_all(b"abc").await.unwrap();
            drop(stream);
            providers.time().sleep(Duration::from_secs(1)).await;
        },
    );
    assert!(outcome.starts_with("Ok("), "{outcome}");
    assert_eq!(taken(&results), vec!["0 [97, 98, 99]".to_string()]);
}

#[test]
fn test_a_stream_moved_to_another_task_between_reads_wakes_the_new_reader() {
    for seed in 0..4 {
        let results: Log<(usize, Option<u64>)> = log();
        let out = results.clone();
        let outcome = pair_world(
            fixed(Duration::from_micros(300), 4_000),
            seed,
            move |providers, stream, _| {
                let out = out.clone();
                async move {
                    // The first task reads a little and hands the stream back mid-transfer.
                    let first = providers.task().spawn("first", async move {
                        let mut stream = stream;
                        let mut part = vec![0u8; 1_000];
                        stream.read_exact(&mut part).await.unwrap();
                        (stream, part)
                    });
                    let (mut stream, mut all) = first.await.unwrap();
                    let second = providers.task().spawn("second", async move {
                        stream.read_to_end(&mut all).await.unwrap();
                        all
                    });
                    let all = second.await.unwrap();
                    out.lock().unwrap().push((all.len(), first_bad(6, 0, &all)));
                }
            },
            |providers| async move {
                let mut stream = providers.network().connect(ADDR).await.unwrap();
                for part in 0..20u64 {
                    stream
                        .write_all(&chunk(6, part * 1_000, 1_000))
                        .await
                        .unwrap();
                    providers.time().sleep(Duration::from_millis(1)).await;
                }
                drop(stream);
                providers.time().sleep(Duration::from_secs(1)).await;
            },
        );
        assert!(outcome.starts_with("Ok("), "seed {seed}: {outcome}");
        assert_eq!(taken(&results), vec![(20_000, None)], "seed {seed}");
    }
}

#[test]
fn test_a_reader_aborted_at_its_delivery_instant_leaves_later_connections_whole() {
    for seed in 0..10u64 {
        let results: Log<(u64, usize, Option<u64>)> = log();
        let out = results.clone();
        let outcome = pair_world(
            fixed(Duration::from_millis(1), 4_000),
            seed,
            move |providers, mut stream, index| {
                let out = out.clone();
                async move {
                    let reader = providers.task().spawn("reader", async move {
                        let mut all = Vec::new();
                        let _ = stream.read_to_end(&mut all).await;
                        all
                    });
                    if index == 0 {
                        // At the instant the first bytes are delivered (woken, maybe not polled).
                        let until = Duration::from_millis(3).saturating_sub(providers.time().now());
                        providers.time().sleep(until).await;
                        reader.abort();
                        let _ = reader.await;
                    } else {
                        let all = reader.await.unwrap();
                        out.lock()
                            .unwrap()
                            .push((index, all.len(), first_bad(index, 0, &all)));
                    }
                }
            },
            move |providers| async move {
                // Write at 2 ms (the handshake is done by then), so the bytes land at 3 ms.
                let mut stream = providers.network().connect(ADDR).await.unwrap();
                let until = Duration::from_millis(2).saturating_sub(providers.time().now());
                providers.time().sleep(until).await;
                let _ = stream.write_all(&chunk(0, 0, 3_000)).await;
                providers.time().sleep(Duration::from_millis(5)).await;
                let failed = stream.write_all(b"more").await.is_err();
                assert!(failed, "seed {seed}: writing to an aborted reader's stream");
                drop(stream);
                for index in 1..4u64 {
                    let mut next = providers.network().connect(ADDR).await.unwrap();
                    next.write_all(&chunk(index, 0, 10_000)).await.unwrap();
                    drop(next);
                }
                providers.time().sleep(Duration::from_secs(1)).await;
            },
        );
        assert!(outcome.starts_with("Ok("), "seed {seed}: {outcome}");
        let mut seen = taken(&results);
        seen.sort();
        assert_eq!(
            seen,
            vec![(1, 10_000, None), (2, 10_000, None), (3, 10_000, None)],
            "seed {seed}"
        );
    }
}

#[test]
fn test_connects_to_closed_ports_are_refused_and_a_port_binds_once() {
    let results: Log<String> = log();
    let out = results.clone();
    let mut world = world_with(1, fixed(Duration::from_micros(100), 4_000));
    world
        .add_process("server", SERVER, Locality::default(), |ctx| async move {
            let providers = ctx.providers;
            let first = providers.network().bind("10.0.0.1:7100").await.unwrap();
            let twice = providers.network().bind("10.0.0.1:7100").await;
            assert_eq!(twice.err().map(|e| e.kind()), Some(ErrorKind::AddrInUse));
            providers.time().sleep(Duration::from_millis(10)).await;
            drop(first);
            providers.time().sleep(Duration::from_millis(10)).await;
            let again = providers.network().bind("10.0.0.1:7100").await.unwrap();
            let (mut stream, _) = again.accept().await.unwrap();
            stream.write_all(b"hi").await.unwrap();
            providers.time().sleep(Duration::from_secs(1)).await;
        })
        .unwrap();
    world
        .add_workload("client", "10.0.0.2", move |providers| async move {
            let net = providers.network();
            let never = net.connect("10.0.0.1:7999").await;
            out.lock()
                .unwrap()
                .push(format!("{:?}", never.err().map(|e| e.kind())));
            providers.time().sleep(Duration::from_millis(15)).await;
            // Between the drop and the second bind.
            let gap = net.connect("10.0.0.1:7100").await;
            out.lock()
                .unwrap()
                .push(format!("{:?}", gap.err().map(|e| e.kind())));
            providers.time().sleep(Duration::from_millis(10)).await;
            let mut stream = net.connect("10.0.0.1:7100").await.unwrap();
            let mut hi = [0u8; 2];
            stream.read_exact(&mut hi).await.unwrap();
            out.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&hi).into());
            // An address no process has: refused or timed out, never connected.
            let nobody = net.connect("10.0.0.77:7100").await;
            out.lock()
                .unwrap()
                .push(format!("nobody {}", nobody.is_err()));
        })
        .unwrap();
    let outcome = world.run();
    assert!(outcome.is_ok(), "{outcome:?}");
    let refused = format!("{:?}", Some(ErrorKind::ConnectionRefused));
    assert_eq!(
        taken(&results),
        vec![
            refused.clone(),
            refused,
            "hi".to_string(),
            "nobody true".to_string()
        ]
    );
}

#[test]
fn test_a_thousand_connections_to_one_listener_each_echo_their_own_bytes() {
    let results: Log<(u64, bool)> = log();
    let out = results.clone();
    let outcome = pair_world(
        fixed(Duration::from_micros(50), 4_000),
        5,
        |_providers, mut stream, _| async move {
            let mut all = Vec::new();
            stream.read_to_end(&mut all).await.unwrap();
            stream.write_all(&all).await.unwrap();
        },
        move |providers| async move {
            let mut joins = Vec::new();
            for index in 0..1_000u64 {
                let mut stream = providers.network().connect(ADDR).await.unwrap();
                joins.push(providers.task().spawn("echo", async move {
                    let mut sent = index.to_le_bytes().to_vec();
                    sent.extend(chunk(index, 0, (index % 97) as usize));
                    stream.write_all(&sent).await.unwrap();
                    stream.shutdown().await.unwrap();
                    let mut back = Vec::new();
                    stream.read_to_end(&mut back).await.unwrap();
                    (index, back == sent)
                }));
            }
            for join in joins {
                let seen = join.await.unwrap();
                out.lock().unwrap().push(seen);
            }
        },
    );
    assert!(outcome.starts_with("Ok("), "{outcome}");
    let seen = taken(&results);
    assert_eq!(seen.len(), 1_000);
    assert!(seen.iter().all(|(_, same)| *same), "an echo differed");
    let _ = byte_of(0, 0);
}
