//! TCP-layer faults and per-connection controls: one test per fault and per scripted control
//! (cut, restore, read-side clog, per-direction delay, send buffer, loss as retransmission,
//! random close on reads); the debug log of a failing connection is in
//! `network_tcp_logs.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default,
    missing_docs
)]

use std::io::ErrorKind;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{NetworkProvider, Providers, TcpListener, TimeProvider};
use moonpool_sim::network::{ConnectionEnd, ConnectionError, ConnectionId, SendBufferSizing};
use moonpool_sim::{Locality, NetworkConfiguration, RunSummary, SimWorld, WorldConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

use common::network::{MS, add_echo_server, round_trip, run_client, world_with};

fn connection_of(error: &std::io::Error) -> Option<ConnectionId> {
    error
        .get_ref()
        .and_then(|e| e.downcast_ref::<ConnectionError>())
        .map(|e| e.connection)
}

#[test]
fn test_connection_ids_are_shared_by_both_ends_and_listed() {
    let mut world = world_with(1, |_| {});
    let server_id = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&server_id);
    world
        .add_process("server", "10.0.0.2", Locality::default(), move |ctx| {
            let seen = Arc::clone(&seen);
            async move {
                let listener = ctx.providers.network().bind("10.0.0.2:4500").await.unwrap();
                let (stream, _) = listener.accept().await.unwrap();
                assert_eq!(stream.end(), ConnectionEnd::Server);
                *seen.lock().unwrap() = Some(stream.connection_id());
                ctx.providers.time().sleep(Duration::from_secs(1)).await;
            }
        })
        .unwrap();
    let ((first, second, listed, server_listed), _) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let a = p.network().connect("10.0.0.2:4500").await.unwrap();
        let b = p.network().connect("10.0.0.2:4500").await.unwrap();
        assert_eq!(a.end(), ConnectionEnd::Client);
        p.time().sleep(10 * MS).await;
        let me = p.control().process("client").unwrap();
        let server = p.control().process("server").unwrap();
        let listed = p.control().connections_of(me);
        let server_listed = p.control().connections_of(server);
        (a.connection_id(), b.connection_id(), listed, server_listed)
    });
    assert_ne!(first, second);
    assert_eq!(
        listed.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![first, second]
    );
    assert!(listed.iter().all(|c| c.end == ConnectionEnd::Client));
    assert_eq!(listed[0].remote.to_string(), "10.0.0.2:4500");
    assert_eq!(
        *server_id.lock().unwrap(),
        Some(first),
        "both ends share the id"
    );
    assert!(
        server_listed
            .iter()
            .any(|c| c.id == first && c.end == ConnectionEnd::Server)
    );
    assert_eq!(first.to_string(), format!("conn#{}", first.0));
}

#[test]
fn test_scripted_cut_holds_both_directions_until_restore() {
    let mut world = world_with(2, |_| {});
    add_echo_server(&mut world, "server", "10.0.0.2:4500");
    let ((cut_seen, restored_seen, late, waited), summary) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        round_trip(&p, &mut stream, b"warm").await;
        let id = stream.connection_id();
        assert!(!p.control().is_connection_cut(id));
        assert!(p.control().cut_connection(id, None));
        let cut_seen = p.control().is_connection_cut(id);
        let start = p.time().now();
        stream.write_all(b"held back").await.unwrap();
        let mut reply = [0u8; 9];
        let late = p
            .time()
            .timeout(Duration::from_secs(3), stream.read_exact(&mut reply))
            .await
            .is_err();
        assert!(p.control().restore_connection(id));
        let restored_seen = p.control().is_connection_cut(id);
        stream.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"held back", "nothing lost, nothing reordered");
        (cut_seen, restored_seen, late, p.time().now() - start)
    });
    assert!(cut_seen);
    assert!(!restored_seen);
    assert!(late, "no reply while cut");
    // Restored at 3 s: the held request is delivered at once, the echo takes one more latency.
    assert!(
        waited >= Duration::from_secs(3) && waited <= Duration::from_secs(3) + 3 * MS,
        "{waited:?}"
    );
    assert_eq!(summary.faults.get("network.cut_connection"), Some(&1));
}

#[test]
fn test_scripted_cut_with_duration_restores_itself() {
    let mut world = world_with(3, |_| {});
    add_echo_server(&mut world, "server", "10.0.0.2:4500");
    let ((rtt, after), _) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        let id = stream.connection_id();
        p.control()
            .cut_connection(id, Some(Duration::from_millis(500)));
        let rtt = round_trip(&p, &mut stream, b"x").await;
        (rtt, p.control().is_connection_cut(id))
    });
    assert!(
        rtt >= Duration::from_millis(500) && rtt <= Duration::from_millis(502),
        "{rtt:?}"
    );
    assert!(!after);
}

/// The server writes `b"ready"` at once; returns how long the client's read took when its
/// reads were clogged for 50 ms after the data had already arrived.
#[test]
fn test_scripted_read_clog_hides_delivered_data() {
    let mut world = world_with(4, |_| {});
    world
        .add_process(
            "server",
            "10.0.0.2",
            Locality::default(),
            |ctx| async move {
                let listener = ctx.providers.network().bind("10.0.0.2:4500").await.unwrap();
                let (mut stream, _) = listener.accept().await.unwrap();
                stream.write_all(b"ready").await.unwrap();
                ctx.providers.time().sleep(Duration::from_secs(1)).await;
            },
        )
        .unwrap();
    let ((delivered_before, read_took), summary) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        p.time().sleep(10 * MS).await;
        // The 5 bytes are delivered by now: the server's buffer has drained.
        let id = stream.connection_id();
        let delivered_before = p
            .control()
            .send_buffer(id, ConnectionEnd::Server)
            .unwrap()
            .used;
        assert!(
            p.control()
                .clog_connection_reads(id, ConnectionEnd::Client, 50 * MS)
        );
        let start = p.time().now();
        let mut buffer = [0u8; 5];
        stream.read_exact(&mut buffer).await.unwrap();
        assert_eq!(&buffer, b"ready");
        (delivered_before, p.time().now() - start)
    });
    assert_eq!(delivered_before, 5, "data sits delivered and unread");
    assert_eq!(read_took, 50 * MS, "the reader waited out the clog");
    assert_eq!(summary.faults.get("network.read_clog_connection"), Some(&1));
}

#[test]
fn test_random_read_clog_delays_reads() {
    let mut world = world_with(5, |n| {
        n.read_clog_probability = 1.0;
        n.read_clog_duration = (20 * MS, 20 * MS);
    });
    add_echo_server(&mut world, "server", "10.0.0.2:4500");
    let (rtt, summary) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        round_trip(&p, &mut stream, b"ping").await
    });
    // Both readers (the echo server, then the client) are clogged 20 ms after delivery.
    assert_eq!(rtt, 2 * MS + 40 * MS, "{rtt:?}");
    assert!(
        summary
            .faults
            .get("network.read_clog")
            .copied()
            .unwrap_or(0)
            >= 2
    );
}

#[test]
fn test_asymmetric_connection_delay_measured_both_ways() {
    let mut world = world_with(6, |_| {});
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&arrivals);
    world
        .add_process("server", "10.0.0.2", Locality::default(), move |ctx| {
            let log = Arc::clone(&log);
            async move {
                let listener = ctx.providers.network().bind("10.0.0.2:4500").await.unwrap();
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut byte = [0u8; 1];
                while stream.read_exact(&mut byte).await.is_ok() {
                    log.lock().unwrap().push(ctx.providers.time().now());
                    if stream.write_all(&byte).await.is_err() {
                        return;
                    }
                }
            }
        })
        .unwrap();
    let (samples, _) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        let id = stream.connection_id();
        assert!(p.control().set_connection_delay(id, 30 * MS, 5 * MS));
        let mut samples = Vec::new();
        for _ in 0..3 {
            let sent = p.time().now();
            stream.write_all(b"x").await.unwrap();
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.unwrap();
            samples.push((sent, p.time().now()));
        }
        samples
    });
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 3);
    for ((sent, back), at_server) in samples.into_iter().zip(arrivals) {
        assert_eq!(at_server - sent, MS + 30 * MS, "client to server");
        assert_eq!(back - at_server, MS + 5 * MS, "server to client");
    }
}

#[test]
fn test_send_buffer_is_readable_and_settable_per_connection() {
    let mut world = world_with(7, |_| {});
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
                assert_eq!(sink.len(), 10_000);
            },
        )
        .unwrap();
    let ((initial, after_write, blocked_until), _) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        let initial = stream.send_buffer().unwrap();
        assert!(stream.set_send_buffer_capacity(4_000));
        stream.write_all(&[7u8; 3_000]).await.unwrap();
        let after_write = p
            .control()
            .send_buffer(stream.connection_id(), ConnectionEnd::Client)
            .unwrap();
        let start = p.time().now();
        stream.write_all(&[7u8; 7_000]).await.unwrap();
        stream.shutdown().await.unwrap();
        (initial, after_write, p.time().now() - start)
    });
    assert_eq!(initial.capacity, 256 * 1024, "default: send_buffer_bytes");
    assert_eq!(initial.used, 0);
    assert_eq!(after_write.capacity, 4_000);
    assert_eq!(after_write.used, 3_000);
    assert_eq!(after_write.free, 1_000);
    assert!(
        blocked_until >= Duration::from_millis(990),
        "the writer waited for the reader: {blocked_until:?}"
    );
}

#[test]
fn test_send_buffer_follows_bandwidth_delay_product_when_asked() {
    // rtt = 2 × 1 ms; 10 MB/s × 2 ms = 20,000 bytes, inside [1 KiB, 1 MiB].
    let capacity = |sizing: SendBufferSizing| {
        let mut world = world_with(8, |n| n.send_buffer_sizing = sizing);
        add_echo_server(&mut world, "server", "10.0.0.2:4500");
        run_client(world, |p| async move {
            p.time().sleep(MS).await;
            let stream = p.network().connect("10.0.0.2:4500").await.unwrap();
            stream.send_buffer().unwrap().capacity
        })
        .0
    };
    let bdp = |floor, ceiling| SendBufferSizing::BandwidthDelay {
        bandwidth_bytes_per_second: 10_000_000,
        floor,
        ceiling,
    };
    assert_eq!(capacity(bdp(1024, 1 << 20)), 20_000);
    assert_eq!(capacity(bdp(64 * 1024, 1 << 20)), 64 * 1024, "floor");
    assert_eq!(capacity(bdp(1024, 8 * 1024)), 8 * 1024, "ceiling");
    assert_eq!(capacity(SendBufferSizing::Fixed), 256 * 1024);
}

/// Streams `count` 16-byte messages (sequence, send time) one per 50 ms; the server checks
/// order and contents and records each message's one-way latency. Returns the latencies.
fn stream_latencies(seed: u64, loss: f64, count: u64) -> (Vec<Duration>, RunSummary) {
    let mut world = world_with(seed, |n| {
        n.loss_probability = loss;
        n.retransmit_timeout = Duration::from_millis(200);
    });
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let out = Arc::clone(&latencies);
    world
        .add_process("server", "10.0.0.2", Locality::default(), move |ctx| {
            let out = Arc::clone(&out);
            async move {
                let listener = ctx.providers.network().bind("10.0.0.2:4500").await.unwrap();
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut message = [0u8; 16];
                let mut expected = 0u64;
                while stream.read_exact(&mut message).await.is_ok() {
                    let sequence = u64::from_le_bytes(message[..8].try_into().unwrap());
                    let sent = u64::from_le_bytes(message[8..].try_into().unwrap());
                    assert_eq!(sequence, expected, "in order, nothing missing");
                    expected += 1;
                    let now = ctx.providers.time().now();
                    out.lock().unwrap().push(now - Duration::from_nanos(sent));
                }
            }
        })
        .unwrap();
    let (_, summary) = run_client(world, move |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        for sequence in 0..count {
            let mut message = [0u8; 16];
            message[..8].copy_from_slice(&sequence.to_le_bytes());
            let sent = p.time().now().as_nanos() as u64;
            message[8..].copy_from_slice(&sent.to_le_bytes());
            stream.write_all(&message).await.unwrap();
            p.time().sleep(50 * MS).await;
        }
        stream.shutdown().await.unwrap();
        p.time().sleep(Duration::from_secs(30)).await;
    });
    let latencies = latencies.lock().unwrap().clone();
    (latencies, summary)
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[test]
fn test_loss_surfaces_as_retransmission_delay_never_missing_bytes() {
    let count = 2_000;
    let (clean, clean_summary) = stream_latencies(9, 0.0, count);
    let (lossy, lossy_summary) = stream_latencies(9, 0.05, count);
    assert_eq!(clean.len() as u64, count);
    assert_eq!(lossy.len() as u64, count, "every byte arrives, in order");
    let (clean_p50, clean_p99) = (percentile(&clean, 0.5), percentile(&clean, 0.99));
    let (lossy_p50, lossy_p99) = (percentile(&lossy, 0.5), percentile(&lossy, 0.99));
    eprintln!(
        "per-message latency: clean p50 {clean_p50:?} p99 {clean_p99:?}; \
         5% loss p50 {lossy_p50:?} p99 {lossy_p99:?}; faults {:?}",
        lossy_summary.faults
    );
    assert_eq!(
        clean_p99, MS,
        "no loss: every message takes the write latency"
    );
    assert!(
        lossy_p99 >= Duration::from_millis(100),
        "a visibly longer tail: {lossy_p99:?}"
    );
    assert!(lossy_p99 > 50 * clean_p99);
    assert!(
        lossy_summary
            .faults
            .get("network.loss")
            .copied()
            .unwrap_or(0)
            >= 50
    );
    assert!(lossy_summary.faults.contains_key("network.retransmit"));
    assert!(!clean_summary.faults.contains_key("network.loss"));
}

/// A loss burst longer than the retransmission budget (here 100 ms × (2^4 − 1) = 1.5 s) fails
/// the connection: `TimedOut` at the writer, `ConnectionReset` at the peer, both naming it.
fn burst_failure(
    scripted: bool,
) -> (
    (ConnectionId, std::io::Error, Duration),
    Option<std::io::Error>,
    RunSummary,
) {
    let mut world = world_with(10, |n| {
        n.retransmit_timeout = 100 * MS;
        n.max_retransmits = 3;
        if !scripted {
            n.loss_burst_probability = 1.0;
            n.loss_burst_duration = (Duration::from_secs(10), Duration::from_secs(10));
        }
    });
    let server_error = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&server_error);
    world
        .add_process("server", "10.0.0.2", Locality::default(), move |ctx| {
            let seen = Arc::clone(&seen);
            async move {
                let listener = ctx.providers.network().bind("10.0.0.2:4500").await.unwrap();
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut buffer = [0u8; 64];
                loop {
                    match stream.read(&mut buffer).await {
                        Ok(0) => return,
                        Ok(_) => {}
                        Err(error) => {
                            *seen.lock().unwrap() = Some(error);
                            return;
                        }
                    }
                }
            }
        })
        .unwrap();
    let (client, summary) = run_client(world, move |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        let id = stream.connection_id();
        if scripted {
            assert!(
                p.control()
                    .loss_burst(id, ConnectionEnd::Client, Duration::from_secs(10))
            );
        }
        let start = p.time().now();
        stream.write_all(b"into the burst").await.unwrap();
        let mut buffer = [0u8; 1];
        let error = stream.read(&mut buffer).await.unwrap_err();
        (id, error, p.time().now() - start)
    });
    let server = server_error.lock().unwrap().take();
    (client, server, summary)
}

#[test]
fn test_long_scripted_loss_burst_fails_the_connection_with_a_typed_error() {
    let ((id, error, after), server, summary) = burst_failure(true);
    assert_eq!(error.kind(), ErrorKind::TimedOut);
    assert_eq!(
        connection_of(&error),
        Some(id),
        "the error names the connection"
    );
    assert!(error.to_string().contains(&id.to_string()), "{error}");
    assert_eq!(
        after,
        Duration::from_millis(1_500),
        "the retransmission budget"
    );
    let server = server.expect("the peer saw an error");
    assert_eq!(server.kind(), ErrorKind::ConnectionReset);
    assert_eq!(connection_of(&server), Some(id));
    assert_eq!(summary.faults.get("network.loss"), Some(&4));
    assert_eq!(summary.faults.get("network.retransmit_timeout"), Some(&1));
    assert_eq!(
        summary.faults.get("network.loss_burst_connection"),
        Some(&1)
    );
}

#[test]
fn test_random_loss_burst_fails_the_connection() {
    let ((id, error, _), _, summary) = burst_failure(false);
    assert_eq!(error.kind(), ErrorKind::TimedOut);
    assert_eq!(connection_of(&error), Some(id));
    assert!(
        summary
            .faults
            .get("network.loss_burst")
            .copied()
            .unwrap_or(0)
            >= 1
    );
}

#[test]
fn test_short_loss_burst_only_delays() {
    let mut world = world_with(11, |_| {});
    add_echo_server(&mut world, "server", "10.0.0.2:4500");
    let (rtt, summary) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        let id = stream.connection_id();
        p.control()
            .loss_burst(id, ConnectionEnd::Client, Duration::from_millis(500));
        round_trip(&p, &mut stream, b"late, not lost").await
    });
    // Lost at 0, 200 ms and 600 ms (backoff 200, 400) ... the 600 ms retransmission gets through.
    assert_eq!(rtt, Duration::from_millis(600) + 2 * MS, "{rtt:?}");
    assert_eq!(summary.faults.get("network.loss"), Some(&2));
}

#[test]
fn test_random_close_fires_on_reads() {
    let mut world = world_with(12, |n| {
        n.random_close_read_probability = 1.0;
        n.random_close_cooldown = Duration::ZERO;
        n.random_close_reset_share = 1.0;
    });
    world
        .add_process(
            "server",
            "10.0.0.2",
            Locality::default(),
            |ctx| async move {
                let listener = ctx.providers.network().bind("10.0.0.2:4500").await.unwrap();
                let (_stream, _) = listener.accept().await.unwrap();
                ctx.providers.time().sleep(Duration::from_secs(1)).await;
            },
        )
        .unwrap();
    let ((id, error), summary) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        let mut buffer = [0u8; 4];
        (
            stream.connection_id(),
            stream.read(&mut buffer).await.unwrap_err(),
        )
    });
    assert_eq!(error.kind(), ErrorKind::ConnectionReset);
    assert_eq!(connection_of(&error), Some(id));
    assert_eq!(
        summary.faults.get("network.random_close_read.reset"),
        Some(&1)
    );
}

#[test]
fn test_new_faults_at_zero_draw_nothing() {
    // Same seed, default chaos: changing the knobs of the (off) new faults changes nothing.
    let run = |tweak: fn(&mut NetworkConfiguration)| {
        let mut network = NetworkConfiguration::default();
        tweak(&mut network);
        let mut world = SimWorld::with_config(13, {
            let mut cfg = WorldConfig::quiet();
            cfg.network = network;
            cfg
        })
        .unwrap();
        add_echo_server(&mut world, "server", "10.0.0.2:4500");
        run_client(world, |p| async move {
            p.time().sleep(MS).await;
            let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
            for _ in 0..50 {
                round_trip(&p, &mut stream, b"steady").await;
            }
        })
        .1
    };
    let base = run(|_| {});
    let retuned = run(|n| {
        n.retransmit_timeout = Duration::from_secs(1);
        n.max_retransmits = 2;
        n.read_clog_duration = (MS, MS);
        n.loss_burst_duration = (MS, MS);
    });
    assert_eq!(base.fingerprint, retuned.fingerprint);
    for name in ["network.loss", "network.read_clog", "network.loss_burst"] {
        assert!(!base.faults.contains_key(name), "{name} off by default");
    }
    let defaults = NetworkConfiguration::default();
    assert_eq!(defaults.loss_probability, 0.0);
    assert_eq!(defaults.read_clog_probability, 0.0);
    assert_eq!(defaults.random_close_read_probability, 0.0);
    assert_eq!(defaults.loss_burst_probability, 0.0);
    assert_eq!(defaults.send_buffer_sizing, SendBufferSizing::Fixed);
    for seed in 0..100 {
        let swarm = NetworkConfiguration::random_for_seed(seed);
        assert_eq!(swarm.loss_probability, 0.0);
        assert_eq!(swarm.read_clog_probability, 0.0);
    }
    let on = NetworkConfiguration::default().with_tcp_faults();
    assert!(on.loss_probability > 0.0 && on.read_clog_probability > 0.0);
    assert_eq!(on.validate(), Ok(()));
}

#[test]
fn test_validation_names_each_new_knob() {
    let check = |tweak: fn(&mut NetworkConfiguration), needle: &str| {
        let mut config = NetworkConfiguration::default();
        tweak(&mut config);
        let error = config.validate().unwrap_err();
        assert!(error.contains(needle), "{error}");
    };
    check(|n| n.loss_probability = 1.5, "loss_probability is 1.5");
    check(
        |n| n.loss_burst_probability = -0.1,
        "loss_burst_probability is -0.1",
    );
    check(
        |n| n.read_clog_probability = 2.0,
        "read_clog_probability is 2",
    );
    check(
        |n| n.random_close_read_probability = 3.0,
        "random_close_read_probability is 3",
    );
    check(
        |n| n.read_clog_duration = (2 * MS, MS),
        "read_clog_duration",
    );
    check(
        |n| n.loss_burst_duration = (2 * MS, MS),
        "loss_burst_duration",
    );
    check(
        |n| {
            n.loss_probability = 0.1;
            n.retransmit_timeout = Duration::ZERO;
        },
        "retransmit_timeout",
    );
    check(|n| n.max_retransmits = 99, "max_retransmits is 99");
    check(
        |n| {
            n.send_buffer_sizing = SendBufferSizing::BandwidthDelay {
                bandwidth_bytes_per_second: 1,
                floor: 10,
                ceiling: 5,
            }
        },
        "floor 10 exceeds ceiling 5",
    );
}

/// A writer that fills a small send buffer waits, and every read that frees room wakes it
/// again (the reader's half says whether the peer's writer waits): 2,000 bytes through a
/// 16-byte buffer, read 7 bytes at a time with a pause between reads, arrive whole and in order,
/// and both ends finish.
#[test]
fn test_a_writer_blocked_on_a_full_buffer_is_woken_by_every_read_that_frees_room() {
    let data: Vec<u8> = (0..2_000u32).map(|i| (i % 251) as u8).collect();
    let expected = data.clone();
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&received);
    let mut world = world_with(11, |_| {});
    world
        .add_process("server", "10.0.0.2", Locality::default(), move |ctx| {
            let sink = Arc::clone(&sink);
            async move {
                let listener = ctx.providers.network().bind("10.0.0.2:4500").await.unwrap();
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut chunk = [0u8; 7];
                loop {
                    let n = stream.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    sink.lock().unwrap().extend_from_slice(&chunk[..n]);
                    ctx.providers.time().sleep(MS).await;
                }
                stream.write_all(b"done").await.unwrap();
            }
        })
        .unwrap();
    let (waited, _) = run_client(world, move |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        assert!(stream.set_send_buffer_capacity(16));
        let start = p.time().now();
        stream.write_all(&data).await.unwrap();
        let waited = p.time().now() - start;
        stream.shutdown().await.unwrap();
        let mut ack = Vec::new();
        stream.read_to_end(&mut ack).await.unwrap();
        assert_eq!(ack, b"done");
        waited
    });
    assert_eq!(*received.lock().unwrap(), expected);
    assert!(
        waited >= Duration::from_millis(100),
        "the writer waited for the reads: {waited:?}"
    );
}
