//! One test per simulated-network fault, proving it fires and has its documented effect.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default,
    clippy::let_and_return,
    missing_docs
)]

use std::io::ErrorKind;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{NetworkProvider, Providers, TcpListener, TimeProvider};
use moonpool_sim::{Locality, NetworkConfiguration, RebootKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

use common::network::{MS, add_echo_server, ip, round_trip, run_client, world_with};

#[test]
fn test_fixed_latency_gives_exact_round_trips() {
    let mut world = world_with(1, |_| {});
    add_echo_server(&mut world, "server", "10.0.0.2:4500");
    let (rtts, _) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let start = p.time().now();
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        let connect = p.time().now() - start;
        let mut rtts = vec![connect];
        for _ in 0..5 {
            rtts.push(round_trip(&p, &mut stream, b"ping").await);
        }
        rtts
    });
    assert_eq!(rtts[0], MS, "handshake takes the connect latency");
    assert!(rtts[1..].iter().all(|rtt| *rtt == 2 * MS), "{rtts:?}");
}

#[test]
fn test_partition_blocks_exactly_the_partitioned_pair() {
    let mut world = world_with(2, |_| {});
    add_echo_server(&mut world, "b", "10.0.0.2:4500");
    add_echo_server(&mut world, "c", "10.0.0.3:4500");
    let ((to_b, to_c, new_connect), summary) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut b = p.network().connect("10.0.0.2:4500").await.unwrap();
        let mut c = p.network().connect("10.0.0.3:4500").await.unwrap();
        p.control()
            .partition(ip("10.0.0.1"), ip("10.0.0.2"), Duration::from_secs(10));
        let to_c = round_trip(&p, &mut c, b"c").await;
        let new_connect = p
            .network()
            .connect("10.0.0.2:4500")
            .await
            .map(|_| ())
            .map_err(|e| e.kind());
        let to_b = round_trip(&p, &mut b, b"b").await;
        (to_b, to_c, new_connect)
    });
    assert_eq!(to_c, 2 * MS, "the unpartitioned pair is unaffected");
    assert_eq!(
        new_connect,
        Err(ErrorKind::TimedOut),
        "connects across the partition time out"
    );
    // The failed connect took its 5 s timeout; the echo is held until the partition ends at 10 s.
    assert!(
        to_b >= Duration::from_millis(4_900),
        "held until heal: {to_b:?}"
    );
    assert_eq!(summary.faults.get("network.partition"), Some(&1));
}

#[test]
fn test_one_way_partition_blocks_one_direction() {
    let mut world = world_with(3, |_| {});
    world
        .add_process("b", "10.0.0.2", Locality::default(), |ctx| async move {
            let listener = ctx.providers.network().bind("10.0.0.2:4500").await.unwrap();
            let (mut stream, _) = listener.accept().await.unwrap();
            // Announce, then report when the client's byte arrives.
            stream.write_all(b"hi").await.unwrap();
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.unwrap();
            stream.write_all(b"!").await.unwrap();
            ctx.providers.time().sleep(Duration::from_secs(60)).await;
        })
        .unwrap();
    let ((hello_at, ack_at), _) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        p.control()
            .partition_one_way(ip("10.0.0.1"), ip("10.0.0.2"), Duration::from_millis(500));
        let start = p.time().now();
        stream.write_all(b"x").await.unwrap();
        let mut hello = [0u8; 2];
        stream.read_exact(&mut hello).await.unwrap();
        let hello_at = p.time().now() - start;
        let mut ack = [0u8; 1];
        stream.read_exact(&mut ack).await.unwrap();
        (hello_at, p.time().now() - start)
    });
    assert!(
        hello_at <= 2 * MS,
        "server-to-client still flows: {hello_at:?}"
    );
    assert!(
        ack_at >= Duration::from_millis(500),
        "client-to-server held: {ack_at:?}"
    );
}

fn close_outcome(reset_share: f64) -> (ErrorKind, Result<usize, ErrorKind>) {
    let mut world = world_with(4, |n| {
        n.random_close_probability = 1.0;
        n.random_close_cooldown = Duration::ZERO;
        n.random_close_reset_share = reset_share;
        n.random_close_one_way_share = 0.0;
    });
    let server_saw = Arc::new(Mutex::new(None));
    let saw = Arc::clone(&server_saw);
    world
        .add_process("server", "10.0.0.2", Locality::default(), move |ctx| {
            let saw = Arc::clone(&saw);
            async move {
                let listener = ctx.providers.network().bind("10.0.0.2:4500").await.unwrap();
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut buffer = [0u8; 8];
                let result = stream.read(&mut buffer).await.map_err(|e| e.kind());
                *saw.lock().unwrap() = Some(result);
            }
        })
        .unwrap();
    let (client_error, _) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        let error = stream.write_all(b"doomed").await.unwrap_err();
        p.time().sleep(Duration::from_millis(10)).await;
        error.kind()
    });
    let server = server_saw.lock().unwrap().take().unwrap();
    (client_error, server)
}

#[test]
fn test_random_close_reset_versus_fin() {
    let (client, server) = close_outcome(1.0);
    assert_eq!(client, ErrorKind::ConnectionReset);
    assert_eq!(
        server,
        Err(ErrorKind::ConnectionReset),
        "RST reaches the peer as an error"
    );
    let (client, server) = close_outcome(0.0);
    assert_eq!(client, ErrorKind::BrokenPipe);
    assert_eq!(server, Ok(0), "FIN reaches the peer as end-of-file");
}

#[test]
fn test_half_open_after_peer_crash_then_reset() {
    let mut world = world_with(5, |n| n.half_open_timeout = Duration::from_secs(10));
    add_echo_server(&mut world, "server", "10.0.0.2:4500");
    let ((write_ok, read_error, waited), summary) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        round_trip(&p, &mut stream, b"warm").await;
        let server = p.control().process("server").unwrap();
        p.control().reboot(server, RebootKind::Crash, None);
        p.time().sleep(MS).await;
        let crashed_at = p.time().now();
        let write_ok = stream.write_all(b"into the void").await.is_ok();
        let mut buffer = [0u8; 4];
        let read_error = stream.read(&mut buffer).await.unwrap_err().kind();
        (write_ok, read_error, p.time().now() - crashed_at)
    });
    assert!(write_ok, "writes to a half-open connection succeed");
    assert_eq!(read_error, ErrorKind::ConnectionReset);
    assert!(
        waited >= Duration::from_secs(9),
        "the error surfaces only after the timeout: {waited:?}"
    );
    assert_eq!(summary.faults.get("network.half_open"), Some(&1));
}

#[test]
fn test_graceful_reboot_closes_with_fin() {
    let mut world = world_with(6, |_| {});
    add_echo_server(&mut world, "server", "10.0.0.2:4500");
    let (read, _) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        let server = p.control().process("server").unwrap();
        p.control()
            .reboot(server, RebootKind::Graceful, Some(Duration::from_secs(1)));
        let mut buffer = [0u8; 4];
        stream.read(&mut buffer).await.map_err(|e| e.kind())
    });
    assert_eq!(read, Ok(0), "a graceful stop closes connections with FIN");
}

#[test]
fn test_black_hole_accepts_writes_and_never_delivers() {
    let mut world = world_with(7, |n| n.black_hole_probability = 1.0);
    add_echo_server(&mut world, "server", "10.0.0.2:4500");
    let ((wrote, waited), summary) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        let wrote = stream.write_all(b"hello?").await.is_ok();
        let mut buffer = [0u8; 6];
        let waited = p
            .time()
            .timeout(Duration::from_secs(30), stream.read_exact(&mut buffer))
            .await;
        (wrote, waited.is_err())
    });
    assert!(wrote);
    assert!(
        waited,
        "nothing ever arrives, and no error either: only a timeout gets out"
    );
    assert!(
        summary
            .faults
            .get("network.black_hole")
            .copied()
            .unwrap_or(0)
            >= 1
    );
}

fn fnv(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[test]
fn test_bit_flips_are_caught_by_a_checksum() {
    let mut world = world_with(8, |n| {
        n.bit_flip_probability = 0.05;
        n.bit_flip_cooldown = Duration::ZERO;
    });
    add_echo_server(&mut world, "server", "10.0.0.2:4500");
    let (corrupted, summary) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        let mut corrupted = 0;
        for i in 0u32..200 {
            let payload = [i.to_le_bytes(), (i * 7).to_le_bytes()].concat();
            let mut frame = fnv(&payload).to_le_bytes().to_vec();
            frame.extend_from_slice(&payload);
            stream.write_all(&frame).await.unwrap();
            let mut reply = [0u8; 12];
            stream.read_exact(&mut reply).await.unwrap();
            let sum = u32::from_le_bytes(reply[..4].try_into().unwrap());
            if sum != fnv(&reply[4..]) {
                corrupted += 1;
            }
        }
        corrupted
    });
    let flips = summary.faults.get("network.bit_flip").copied().unwrap_or(0);
    assert!(flips > 0, "bit flips fired");
    assert!(
        corrupted > 0,
        "the checksum caught corrupted frames ({flips} flips)"
    );
}

#[test]
fn test_partial_reads_never_return_zero_before_eof() {
    let mut world = world_with(9, |n| n.partial_read_probability = 1.0);
    world
        .add_process(
            "server",
            "10.0.0.2",
            Locality::default(),
            |ctx| async move {
                let listener = ctx.providers.network().bind("10.0.0.2:4500").await.unwrap();
                let (mut stream, _) = listener.accept().await.unwrap();
                let data: Vec<u8> = (0..10_000u32).map(|i| (i % 256) as u8).collect();
                stream.write_all(&data).await.unwrap();
                stream.shutdown().await.unwrap();
                ctx.providers.time().sleep(Duration::from_secs(1)).await;
            },
        )
        .unwrap();
    let ((sizes, data), summary) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        let mut sizes = Vec::new();
        let mut data = Vec::new();
        let mut buffer = vec![0u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.unwrap();
            sizes.push(n);
            if n == 0 {
                break;
            }
            data.extend_from_slice(&buffer[..n]);
        }
        (sizes, data)
    });
    assert_eq!(data.len(), 10_000);
    assert!(data.iter().enumerate().all(|(i, b)| *b == (i % 256) as u8));
    assert_eq!(
        sizes.iter().filter(|n| **n == 0).count(),
        1,
        "only the final read is empty"
    );
    assert_eq!(sizes.last(), Some(&0));
    assert!(
        summary
            .faults
            .get("network.partial_read")
            .copied()
            .unwrap_or(0)
            > 0
    );
}

#[test]
fn test_partial_writes_accept_part_of_the_buffer() {
    let mut world = world_with(10, |n| n.partial_write_probability = 1.0);
    add_echo_server(&mut world, "server", "10.0.0.2:4500");
    let ((short, intact), summary) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        let payload = vec![7u8; 1000];
        let written = stream.write(&payload).await.unwrap();
        stream.write_all(&payload[written..]).await.unwrap();
        let mut reply = vec![0u8; 1000];
        stream.read_exact(&mut reply).await.unwrap();
        (written < payload.len(), reply == payload)
    });
    assert!(short, "a single write accepted only part of the buffer");
    assert!(intact, "write_all still delivers every byte in order");
    assert!(
        summary
            .faults
            .get("network.partial_write")
            .copied()
            .unwrap_or(0)
            > 0
    );
}

#[test]
fn test_clog_delays_delivery() {
    let mut world = world_with(11, |n| {
        n.clog_probability = 1.0;
        n.clog_duration = (Duration::from_millis(100), Duration::from_millis(100));
    });
    add_echo_server(&mut world, "server", "10.0.0.2:4500");
    let (rtt, summary) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        round_trip(&p, &mut stream, b"slow").await
    });
    assert!(
        rtt >= Duration::from_millis(200),
        "each direction waits out its clog: {rtt:?}"
    );
    assert!(summary.faults.get("network.clog").copied().unwrap_or(0) >= 2);
}

#[test]
fn test_clog_pair_from_control() {
    let mut world = world_with(12, |_| {});
    add_echo_server(&mut world, "server", "10.0.0.2:4500");
    let (rtt, _) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        p.control()
            .clog(ip("10.0.0.1"), ip("10.0.0.2"), Duration::from_millis(300));
        round_trip(&p, &mut stream, b"x").await
    });
    assert!(rtt >= Duration::from_millis(300), "{rtt:?}");
}

#[test]
fn test_temporary_cut_stalls_then_restores() {
    let mut world = world_with(13, |n| {
        n.cut_probability = 1.0;
        n.cut_duration = (Duration::from_millis(250), Duration::from_millis(250));
    });
    add_echo_server(&mut world, "server", "10.0.0.2:4500");
    let (rtt, summary) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        round_trip(&p, &mut stream, b"after the cut").await
    });
    assert!(rtt >= Duration::from_millis(250), "{rtt:?}");
    assert!(summary.faults.get("network.cut").copied().unwrap_or(0) >= 1);
}

#[test]
fn test_connect_refused_and_connect_hang() {
    let mut world = world_with(14, |n| n.connect_refuse_probability = 1.0);
    add_echo_server(&mut world, "server", "10.0.0.2:4500");
    let (refused, _) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        p.network()
            .connect("10.0.0.2:4500")
            .await
            .map(|_| ())
            .map_err(|e| e.kind())
    });
    assert_eq!(refused, Err(ErrorKind::ConnectionRefused));

    let mut world = world_with(15, |n| n.connect_hang_probability = 1.0);
    add_echo_server(&mut world, "server", "10.0.0.2:4500");
    let (hung, summary) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        p.time()
            .timeout(
                Duration::from_secs(60),
                p.network().connect("10.0.0.2:4500"),
            )
            .await
            .is_err()
    });
    assert!(
        hung,
        "the connect never completes; only the caller's timeout ends it"
    );
    assert_eq!(summary.faults.get("network.connect_hang"), Some(&1));
}

#[test]
fn test_connect_to_absent_host_times_out() {
    let world = world_with(16, |n| n.connect_timeout = Duration::from_secs(3));
    let ((kind, waited), _) = run_client(world, |p| async move {
        let start = p.time().now();
        let error = p
            .network()
            .connect("10.9.9.9:1")
            .await
            .map(|_| ())
            .unwrap_err();
        (error.kind(), p.time().now() - start)
    });
    assert_eq!(kind, ErrorKind::TimedOut);
    assert_eq!(waited, Duration::from_secs(3));
}

#[test]
fn test_bounded_send_buffer_applies_back_pressure() {
    let mut world = world_with(17, |n| n.send_buffer_bytes = 1024);
    world
        .add_process(
            "server",
            "10.0.0.2",
            Locality::default(),
            |ctx| async move {
                let listener = ctx.providers.network().bind("10.0.0.2:4500").await.unwrap();
                let (mut stream, _) = listener.accept().await.unwrap();
                ctx.providers.time().sleep(Duration::from_secs(1)).await;
                let mut sink = Vec::new();
                stream.read_to_end(&mut sink).await.unwrap();
                assert_eq!(sink.len(), 100_000);
            },
        )
        .unwrap();
    let (finished_after, _) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        let start = p.time().now();
        stream.write_all(&vec![1u8; 100_000]).await.unwrap();
        stream.shutdown().await.unwrap();
        p.time().now() - start
    });
    assert!(
        finished_after >= Duration::from_millis(990),
        "the writer waited for the reader: {finished_after:?}"
    );
}

#[test]
fn test_pair_latency_is_stable_per_pair_and_differs_between_pairs() {
    let mut world = world_with(18, |n| n.pair_latency_max = Duration::from_millis(20));
    add_echo_server(&mut world, "b", "10.0.0.2:4500");
    add_echo_server(&mut world, "c", "10.0.0.3:4500");
    let ((to_b, to_c), _) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut b = p.network().connect("10.0.0.2:4500").await.unwrap();
        let mut c = p.network().connect("10.0.0.3:4500").await.unwrap();
        let mut to_b = Vec::new();
        let mut to_c = Vec::new();
        for _ in 0..5 {
            to_b.push(round_trip(&p, &mut b, b"b").await);
            to_c.push(round_trip(&p, &mut c, b"c").await);
        }
        (to_b, to_c)
    });
    assert!(to_b.windows(2).all(|w| w[0] == w[1]), "{to_b:?}");
    assert!(to_c.windows(2).all(|w| w[0] == w[1]), "{to_c:?}");
    assert_ne!(to_b[0], to_c[0], "one peer is stably slower than the other");
    assert!(to_b[0] > 2 * MS || to_c[0] > 2 * MS);
}

#[test]
fn test_accepted_connections_see_client_ip_and_ephemeral_port() {
    let mut world = world_with(19, |_| {});
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    world
        .add_process("server", "10.0.0.2", Locality::default(), move |ctx| {
            let record = Arc::clone(&record);
            async move {
                let listener = ctx.providers.network().bind("0.0.0.0:4500").await.unwrap();
                assert_eq!(listener.local_addr().unwrap().to_string(), "10.0.0.2:4500");
                for _ in 0..3 {
                    let (_stream, peer) = listener.accept().await.unwrap();
                    record.lock().unwrap().push(peer);
                }
            }
        })
        .unwrap();
    run_client(world, |p| async move {
        p.time().sleep(MS).await;
        // Several clients connect before the server accepts any.
        let mut streams = Vec::new();
        for _ in 0..3 {
            streams.push(p.network().connect("10.0.0.2:4500").await.unwrap());
        }
        p.time().sleep(Duration::from_millis(10)).await;
    });
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    for peer in seen.iter() {
        assert_eq!(peer.ip(), ip("10.0.0.1"));
        assert!(peer.port() >= 49_152, "{peer}");
    }
    assert!(seen[0].port() != seen[1].port() && seen[1].port() != seen[2].port());
}

#[test]
fn test_bind_rejects_other_hosts_ip() {
    let world = world_with(20, |_| {});
    let (kind, _) = run_client(world, |p| async move {
        p.network()
            .bind("10.0.0.7:80")
            .await
            .map(|_| ())
            .unwrap_err()
            .kind()
    });
    assert_eq!(kind, ErrorKind::AddrNotAvailable);
}

#[test]
fn test_random_for_seed_is_a_per_seed_swarm() {
    let a = NetworkConfiguration::random_for_seed(1);
    assert_eq!(a, NetworkConfiguration::random_for_seed(1));
    let configs: Vec<_> = (0..20).map(NetworkConfiguration::random_for_seed).collect();
    assert!(configs.iter().any(|c| c.clog_probability == 0.0));
    assert!(configs.iter().any(|c| c.clog_probability > 0.0));
    assert!(configs.windows(2).any(|w| w[0] != w[1]));
    for config in &configs {
        config.validate().unwrap();
    }
}
