//! Hostile edges of the simulated network's addressing and lifetimes: a process connecting to
//! its own listener, binds on addresses a process does not own, the loopback address, and
//! streams that outlive their world's run and the world itself.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod hostile3_common;

use std::io::ErrorKind;
use std::time::Duration;

use hostile3_common::{Log, log, taken, world_with};
use moonpool_core::{NetworkProvider, Providers, TcpListener, TimeProvider};
use moonpool_sim::{NetworkConfiguration, SimTcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn network() -> NetworkConfiguration {
    NetworkConfiguration::with_fixed_latency(Duration::from_micros(100))
}

#[test]
fn test_a_process_connects_to_its_own_listener() {
    let results: Log<String> = log();
    let out = results.clone();
    let mut world = world_with(1, network());
    world
        .add_workload("self", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("10.0.0.1:7000").await.unwrap();
            let mut client = p.network().connect("10.0.0.1:7000").await.unwrap();
            let (mut server, peer) = listener.accept().await.unwrap();
            assert_eq!(peer, client.local_addr());
            assert_eq!(server.local_addr(), client.peer_addr());
            client.write_all(b"ping").await.unwrap();
            let mut four = [0u8; 4];
            server.read_exact(&mut four).await.unwrap();
            server.write_all(b"pong").await.unwrap();
            client.read_exact(&mut four).await.unwrap();
            out.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&four).into());
        })
        .unwrap();
    let outcome = world.run();
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(taken(&results), vec!["pong".to_string()]);
}

#[test]
fn test_binds_on_addresses_the_process_does_not_own_are_refused() {
    let results: Log<(String, Option<ErrorKind>)> = log();
    let out = results.clone();
    let mut world = world_with(2, network());
    world
        .add_workload("other", "10.0.0.9", |p| async move {
            p.time().sleep(Duration::from_secs(1)).await;
        })
        .unwrap();
    world
        .add_workload("binder", "10.0.0.1", move |p| async move {
            for address in ["10.0.0.9:7000", "10.0.0.2:7000", "10.0.0.1:7000"] {
                let bound = p.network().bind(address).await;
                out.lock()
                    .unwrap()
                    .push((address.to_string(), bound.err().map(|e| e.kind())));
            }
        })
        .unwrap();
    let outcome = world.run();
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(
        taken(&results),
        vec![
            (
                "10.0.0.9:7000".to_string(),
                Some(ErrorKind::AddrNotAvailable)
            ),
            (
                "10.0.0.2:7000".to_string(),
                Some(ErrorKind::AddrNotAvailable)
            ),
            ("10.0.0.1:7000".to_string(), None),
        ]
    );
}

#[test]
fn test_the_loopback_address_reaches_the_processs_own_wildcard_listener() {
    let results: Log<String> = log();
    let out = results.clone();
    let mut world = world_with(3, network());
    world
        .add_workload("local", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("0.0.0.0:7000").await.unwrap();
            let connected = p
                .time()
                .timeout(
                    Duration::from_secs(30),
                    p.network().connect("127.0.0.1:7000"),
                )
                .await;
            let outcome = match connected {
                Ok(Ok(_)) => "connected".to_string(),
                Ok(Err(error)) => format!("{:?}", error.kind()),
                Err(_) => "hung".to_string(),
            };
            out.lock().unwrap().push(outcome);
            drop(listener);
        })
        .unwrap();
    let outcome = world.run();
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(taken(&results), vec!["connected".to_string()]);
}

#[test]
fn test_streams_that_outlive_the_run_and_the_world_drop_cleanly() {
    let kept: Log<SimTcpStream> = log();
    let out = kept.clone();
    let mut world = world_with(4, network());
    world
        .add_workload("keeper", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("10.0.0.1:7000").await.unwrap();
            let mut client = p.network().connect("10.0.0.1:7000").await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            // Bytes in flight when the run ends.
            client.write_all(&[7u8; 10_000]).await.unwrap();
            out.lock().unwrap().extend([client, server]);
        })
        .unwrap();
    let outcome = world.run();
    assert!(outcome.is_ok(), "{outcome:?}");
    let mut streams = std::mem::take(&mut *kept.lock().unwrap());
    assert_eq!(streams.len(), 2);
    // After the run, before the world's drop: a write and a read are answered or pend, never
    // panic.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    {
        use std::pin::Pin;
        use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
        let mut buffer = [0u8; 16];
        let mut read = ReadBuf::new(&mut buffer);
        let _ = Pin::new(&mut streams[1]).poll_read(&mut cx, &mut read);
        let _ = Pin::new(&mut streams[0]).poll_write(&mut cx, b"after");
    }
    let server = streams.pop().unwrap();
    drop(streams);
    drop(world);
    // The last one after the world itself.
    drop(server);
}
