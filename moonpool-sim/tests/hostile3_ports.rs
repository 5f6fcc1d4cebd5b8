//! Hostile use of the simulated network's ports (`providers/network/mod.rs`'s bind and
//! establish, `kernel/process.rs`'s ephemeral ports): port-zero binds, ephemeral ports past the
//! size of the range, and a listener on a port of the ephemeral range.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod hostile3_common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use hostile3_common::{Log, log, taken, world_with};
use moonpool_core::{NetworkProvider, Providers, TcpListener, TimeProvider};
use moonpool_sim::{Locality, NetworkConfiguration};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn network() -> NetworkConfiguration {
    NetworkConfiguration::with_fixed_latency(Duration::from_micros(20))
}

#[test]
fn test_port_zero_binds_get_distinct_ports_that_accept() {
    let results: Log<(SocketAddr, Vec<u8>)> = log();
    let out = results.clone();
    let mut world = world_with(1, network());
    world
        .add_process(
            "server",
            "10.0.0.1",
            Locality::default(),
            |ctx| async move {
                let p = ctx.providers;
                let mut listeners = Vec::new();
                for _ in 0..3 {
                    listeners.push(p.network().bind("10.0.0.1:0").await.unwrap());
                }
                let wildcard = p.network().bind("0.0.0.0:0").await.unwrap();
                listeners.push(wildcard);
                for (i, listener) in listeners.iter().enumerate() {
                    let (mut stream, _) = listener.accept().await.unwrap();
                    stream.write_all(&[i as u8]).await.unwrap();
                }
                p.time().sleep(Duration::from_secs(1)).await;
            },
        )
        .unwrap();
    world
        .add_workload("client", "10.0.0.2", move |p| async move {
            p.time().sleep(Duration::from_millis(1)).await;
            // The ports the server got: the first ephemeral ones, in order.
            let first = 49_152u16;
            for port in first..first + 4 {
                let address = format!("10.0.0.1:{port}");
                let mut stream = p.network().connect(&address).await.unwrap();
                let mut byte = vec![0u8; 1];
                stream.read_exact(&mut byte).await.unwrap();
                out.lock().unwrap().push((stream.peer_addr(), byte));
            }
        })
        .unwrap();
    let outcome = world.run();
    assert!(outcome.is_ok(), "{outcome:?}");
    let seen = taken(&results);
    let ports: BTreeSet<u16> = seen.iter().map(|(a, _)| a.port()).collect();
    assert_eq!(ports.len(), 4, "{seen:?}");
    assert!(!ports.contains(&0));
    let bytes: Vec<u8> = seen.iter().map(|(_, b)| b[0]).collect();
    assert_eq!(bytes, vec![0, 1, 2, 3]);
}

/// Opens `count` connections from one process to one listener and keeps them all open; the
/// local addresses the client streams got, or the first connect error.
fn open_at_once(count: usize) -> (Vec<SocketAddr>, Option<String>) {
    let addresses: Log<SocketAddr> = log();
    let failure: Log<String> = log();
    let (out, fail) = (addresses.clone(), failure.clone());
    let mut world = world_with(2, network());
    world
        .add_process(
            "server",
            "10.0.0.1",
            Locality::default(),
            |ctx| async move {
                let p = ctx.providers;
                let listener = p.network().bind("10.0.0.1:7000").await.unwrap();
                let mut held = Vec::new();
                while let Ok((stream, _)) = listener.accept().await {
                    held.push(stream);
                }
            },
        )
        .unwrap();
    world
        .add_workload("client", "10.0.0.2", move |p| async move {
            let mut held = Vec::new();
            for _ in 0..count {
                match p.network().connect("10.0.0.1:7000").await {
                    Ok(stream) => {
                        out.lock().unwrap().push(stream.local_addr());
                        held.push(stream);
                    }
                    Err(error) => {
                        fail.lock().unwrap().push(error.to_string());
                        break;
                    }
                }
            }
            p.time().sleep(Duration::from_millis(1)).await;
        })
        .unwrap();
    let outcome = world.run();
    assert!(outcome.is_ok(), "{outcome:?}");
    (taken(&addresses), taken(&failure).into_iter().next())
}

#[test]
fn test_live_connections_below_the_ephemeral_range_size_have_distinct_local_ports() {
    let (addresses, failure) = open_at_once(5_000);
    assert_eq!(failure, None);
    let distinct: BTreeSet<_> = addresses.iter().collect();
    assert_eq!(distinct.len(), addresses.len());
}

#[test]
fn test_live_connections_past_the_ephemeral_range_never_share_a_local_port() {
    // One more than the range 49152..=65535 holds. A real stack refuses the connect
    // (EADDRNOTAVAIL) rather than hand out a port a live connection to the same peer holds.
    let (addresses, failure) = open_at_once(16_385);
    let distinct: BTreeSet<_> = addresses.iter().collect();
    assert_eq!(
        distinct.len(),
        addresses.len(),
        "{} live connections, {} distinct local addresses (connect error: {failure:?})",
        addresses.len(),
        distinct.len()
    );
}

#[test]
fn test_a_connection_never_takes_the_port_of_a_listener_of_its_process() {
    let results: Log<(u16, u16)> = log();
    let out = results.clone();
    let mut world = world_with(3, network());
    world
        .add_process(
            "server",
            "10.0.0.1",
            Locality::default(),
            |ctx| async move {
                let p = ctx.providers;
                let listener = p.network().bind("10.0.0.1:7000").await.unwrap();
                let mut held = Vec::new();
                while let Ok((stream, _)) = listener.accept().await {
                    held.push(stream);
                }
            },
        )
        .unwrap();
    world
        .add_workload("client", "10.0.0.2", move |p| async move {
            // The client listens on the first two ports of the ephemeral range, then connects.
            let first = p.network().bind("10.0.0.2:49152").await.unwrap();
            let second = p.network().bind("10.0.0.2:49153").await.unwrap();
            let mut held = Vec::new();
            for _ in 0..3 {
                let stream = p.network().connect("10.0.0.1:7000").await.unwrap();
                out.lock().unwrap().push((
                    stream.local_addr().port(),
                    first.local_addr().unwrap().port(),
                ));
                held.push(stream);
            }
            drop(second);
            p.time().sleep(Duration::from_millis(1)).await;
        })
        .unwrap();
    let outcome = world.run();
    assert!(outcome.is_ok(), "{outcome:?}");
    for (local, _) in taken(&results) {
        assert!(
            local != 49_152 && local != 49_153,
            "a connection took local port {local}, which its process listens on"
        );
    }
}

#[test]
fn test_a_port_zero_bind_with_every_ephemeral_port_taken_returns() {
    // The world runs on a thread of its own; the test waits for its answer (a minute is far
    // beyond the few milliseconds 16,385 binds take, so no answer means the bind never returns).
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let results: Log<String> = log();
        let out = results.clone();
        let mut world = world_with(4, network());
        world
            .add_workload("binder", "10.0.0.1", move |p| async move {
                let mut held = Vec::new();
                for _ in 0..16_384 {
                    held.push(p.network().bind("10.0.0.1:0").await.unwrap());
                }
                let last = p.network().bind("10.0.0.1:0").await;
                out.lock()
                    .unwrap()
                    .push(format!("{:?}", last.err().map(|e| e.kind())));
            })
            .unwrap();
        let outcome = format!("{:?}", world.run().map(|_| ()));
        let _ = send.send((outcome, taken(&results)));
    });
    let (outcome, results) = receive
        .recv_timeout(Duration::from_secs(60))
        .expect("the 16,385th port-zero bind never returned");
    assert_eq!(outcome, "Ok(())");
    assert_eq!(results.len(), 1);
    assert_ne!(
        results[0], "None",
        "a 16,385th ephemeral listener was bound"
    );
}

#[test]
fn test_every_port_of_the_ephemeral_range_can_be_bound_with_port_zero() {
    // The setup of the test above, one bind short of it: quick, and every port distinct.
    let results: Log<u16> = log();
    let out = results.clone();
    let mut world = world_with(4, network());
    world
        .add_workload("binder", "10.0.0.1", move |p| async move {
            let mut held = Vec::new();
            for _ in 0..16_384 {
                let listener = p.network().bind("10.0.0.1:0").await.unwrap();
                out.lock()
                    .unwrap()
                    .push(listener.local_addr().unwrap().port());
                held.push(listener);
            }
        })
        .unwrap();
    let outcome = world.run();
    assert!(outcome.is_ok(), "{outcome:?}");
    let ports: BTreeSet<u16> = taken(&results).into_iter().collect();
    assert_eq!(ports.len(), 16_384);
    assert_eq!(ports.first(), Some(&49_152));
    assert_eq!(ports.last(), Some(&u16::MAX));
}
