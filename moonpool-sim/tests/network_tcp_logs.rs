//! The debug log of a failing TCP connection: each fault it met, in order, on the end it hit.
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
use moonpool_sim::Locality;
use moonpool_sim::network::ConnectionEnd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

use common::network::{MS, add_echo_server, round_trip, run_client, world_with};

/// A buffer the tracing subscriber writes into.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `body` with a debug-level subscriber writing into a buffer; returns its result and the
/// log text.
fn with_network_log<T>(body: impl FnOnce() -> T) -> (T, String) {
    let buffer = LogBuffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, body);
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    (out, text)
}

/// The network log's event names for one connection, in order.
fn connection_events<'a>(text: &'a str, tag: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|line| line.contains(tag))
        .filter_map(|line| line.split("moonpool_sim::network: ").nth(1))
        .filter_map(|rest| rest.split(':').next())
        .collect()
}

#[test]
fn test_debug_log_of_a_failing_seed_shows_each_fault_in_order() {
    let ((outcome, _), text) = with_network_log(|| {
        let mut world = world_with(14, |n| {
            n.retransmit_timeout = 100 * MS;
            n.max_retransmits = 3;
        });
        add_echo_server(&mut world, "server", "10.0.0.2:4500");
        run_client(world, |p| async move {
            p.time().sleep(MS).await;
            let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
            let id = stream.connection_id();
            let control = p.control();
            control.cut_connection(id, Some(20 * MS));
            round_trip(&p, &mut stream, b"one").await;
            control.clog_connection_reads(id, ConnectionEnd::Client, 5 * MS);
            round_trip(&p, &mut stream, b"two").await;
            control.loss_burst(id, ConnectionEnd::Client, Duration::from_secs(10));
            // The workload's request fails: this is the failing seed.
            stream.write_all(b"three").await.unwrap();
            let mut reply = [0u8; 5];
            let error = stream.read_exact(&mut reply).await.unwrap_err();
            (id, error.to_string())
        })
    });
    let (id, error) = outcome;
    let tag = format!("connection={id}");
    let events = connection_events(&text, &tag);
    eprintln!("{text}");
    let expected = [
        "connect",
        "cut",
        "accept",
        "restore",
        "read_clog",
        "read_clog_end",
        "loss_burst",
        "loss",
        "loss",
        "loss",
        "loss",
        "retransmit_exhausted",
        "retransmit_timeout",
        // Both streams dropped at the end of the run.
        "close",
        "close",
    ];
    assert_eq!(events, expected, "log:\n{text}");
    assert!(error.contains(&id.to_string()), "{error}");
    // Every line carries the simulated time and both process names.
    for line in text.lines().filter(|line| line.contains(&tag)) {
        assert!(line.contains("at="), "{line}");
        assert!(
            line.contains("process=") && line.contains("peer_process="),
            "{line}"
        );
    }
}

#[test]
fn test_random_clogs_and_cuts_log_their_end() {
    let ((id, _), text) = with_network_log(|| {
        let mut world = world_with(16, |n| {
            n.clog_probability = 1.0;
            n.clog_duration = (5 * MS, 5 * MS);
            n.cut_probability = 1.0;
            n.cut_duration = (8 * MS, 8 * MS);
        });
        add_echo_server(&mut world, "server", "10.0.0.2:4500");
        run_client(world, |p| async move {
            p.time().sleep(MS).await;
            let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
            let id = stream.connection_id();
            round_trip(&p, &mut stream, b"one").await;
            p.time().sleep(100 * MS).await;
            id
        })
    });
    let events = connection_events(&text, &format!("connection={id}"));
    let position = |name: &str| events.iter().position(|e| *e == name);
    for (start, end) in [("clog", "clog_end"), ("cut", "cut_end")] {
        let (Some(start_at), Some(end_at)) = (position(start), position(end)) else {
            panic!("no {start} then {end} in {events:?}\nlog:\n{text}");
        };
        assert!(start_at < end_at, "{end} before {start}: {events:?}");
    }
}

#[test]
fn test_closing_behind_a_lost_segment_resets_the_peer() {
    let mut world = world_with(15, |n| {
        n.retransmit_timeout = 100 * MS;
        n.max_retransmits = 2;
    });
    let server_saw = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&server_saw);
    world
        .add_process("server", "10.0.0.2", Locality::default(), move |ctx| {
            let seen = Arc::clone(&seen);
            async move {
                let listener = ctx.providers.network().bind("10.0.0.2:4500").await.unwrap();
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut sink = Vec::new();
                let result = stream.read_to_end(&mut sink).await.map_err(|e| e.kind());
                *seen.lock().unwrap() = Some((result, ctx.providers.time().now()));
            }
        })
        .unwrap();
    let (_, _) = run_client(world, |p| async move {
        p.time().sleep(MS).await;
        let mut stream = p.network().connect("10.0.0.2:4500").await.unwrap();
        p.control().loss_burst(
            stream.connection_id(),
            ConnectionEnd::Client,
            Duration::from_secs(10),
        );
        stream.write_all(b"never acknowledged").await.unwrap();
        drop(stream); // closes before the retransmissions give up
        p.time().sleep(Duration::from_secs(2)).await;
    });
    let (result, at) = server_saw
        .lock()
        .unwrap()
        .take()
        .expect("the server's read ended");
    assert_eq!(
        result,
        Err(ErrorKind::ConnectionReset),
        "a reset, not a hang"
    );
    // 100 + 200 + 400 ms of retransmissions after the write at 2 ms.
    assert_eq!(at, Duration::from_millis(702), "{at:?}");
}
