//! Loopback addresses in the simulated network: `127.0.0.1` (any of `127.0.0.0/8`) and `::1`
//! are the connecting process itself, as on a real host. A listener bound to a wildcard address
//! is reached through the process's own address and through loopback; one bound to the own
//! address only through that address; one bound to a loopback address only by its own process,
//! through loopback. Both ends of a loopback connection see loopback addresses.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{NetworkProvider, Providers, TcpListener, TimeProvider};
use moonpool_sim::{NetworkConfiguration, SimProviders, SimWorld, WorldConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Log = Arc<Mutex<Vec<String>>>;

fn world() -> SimWorld {
    let mut config = WorldConfig::quiet();
    config.network = NetworkConfiguration::with_fixed_latency(Duration::from_micros(100));
    SimWorld::with_config(7, config).unwrap()
}

/// What a connect to `address` gave: "connected", the error's kind, or "hung".
async fn try_connect(p: &SimProviders, address: &str) -> String {
    let connected = p
        .time()
        .timeout(Duration::from_secs(30), p.network().connect(address))
        .await;
    match connected {
        Ok(Ok(_)) => "connected".to_string(),
        Ok(Err(error)) => format!("{:?}", error.kind()),
        Err(_) => "hung".to_string(),
    }
}

fn run_logged(world: &mut SimWorld, log: &Log) -> Vec<String> {
    let outcome = world.run();
    assert!(outcome.is_ok(), "{outcome:?}");
    log.lock().unwrap().clone()
}

#[test]
fn test_a_loopback_connection_carries_bytes_and_shows_loopback_addresses_at_both_ends() {
    let log: Log = Arc::default();
    let out = log.clone();
    let mut world = world();
    world
        .add_workload("local", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("0.0.0.0:7000").await.unwrap();
            let mut client = p.network().connect("127.0.0.1:7000").await.unwrap();
            let (mut server, peer) = listener.accept().await.unwrap();
            let loopback_peer: SocketAddr = "127.0.0.1:7000".parse().unwrap();
            assert_eq!(client.peer_addr(), loopback_peer);
            assert_eq!(client.local_addr().ip(), loopback_peer.ip());
            assert_eq!(peer, client.local_addr());
            assert_eq!(server.peer_addr(), client.local_addr());
            assert_eq!(server.local_addr(), loopback_peer);
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
    assert_eq!(run_logged(&mut world, &log), ["pong"]);
}

#[test]
fn test_ipv6_loopback_reaches_an_ipv6_process_wildcard_listener() {
    let log: Log = Arc::default();
    let out = log.clone();
    let mut world = world();
    world
        .add_workload("local6", "fd00::1", move |p| async move {
            let _listener = p.network().bind("[::]:7000").await.unwrap();
            let outcome = try_connect(&p, "[::1]:7000").await;
            out.lock().unwrap().push(outcome);
        })
        .unwrap();
    assert_eq!(run_logged(&mut world, &log), ["connected"]);
}

#[test]
fn test_a_loopback_bind_is_reached_by_its_own_process_through_loopback_only() {
    let log: Log = Arc::default();
    let (own, other) = (log.clone(), log.clone());
    let mut world = world();
    world
        .add_workload("owner", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("127.0.0.1:7001").await.unwrap();
            assert_eq!(
                listener.local_addr().unwrap(),
                "127.0.0.1:7001".parse::<SocketAddr>().unwrap()
            );
            let through_loopback = try_connect(&p, "127.0.0.1:7001").await;
            let through_own_address = try_connect(&p, "10.0.0.1:7001").await;
            own.lock()
                .unwrap()
                .push(format!("owner: {through_loopback}, {through_own_address}"));
            // Held until the other process has tried.
            p.time().sleep(Duration::from_secs(1)).await;
            drop(listener);
        })
        .unwrap();
    world
        .add_workload("other", "10.0.0.2", move |p| async move {
            p.time().sleep(Duration::from_millis(100)).await;
            let from_elsewhere = try_connect(&p, "10.0.0.1:7001").await;
            // Its own loopback is itself, where nothing listens.
            let own_loopback = try_connect(&p, "127.0.0.1:7001").await;
            other
                .lock()
                .unwrap()
                .push(format!("other: {from_elsewhere}, {own_loopback}"));
        })
        .unwrap();
    let mut seen = run_logged(&mut world, &log);
    seen.sort();
    assert_eq!(
        seen,
        [
            "other: ConnectionRefused, ConnectionRefused",
            "owner: connected, ConnectionRefused"
        ]
    );
}

#[test]
fn test_an_own_address_bind_is_not_reached_through_loopback() {
    let log: Log = Arc::default();
    let out = log.clone();
    let mut world = world();
    world
        .add_workload("own", "10.0.0.1", move |p| async move {
            let _listener = p.network().bind("10.0.0.1:7002").await.unwrap();
            let through_loopback = try_connect(&p, "127.0.0.1:7002").await;
            let through_own_address = try_connect(&p, "10.0.0.1:7002").await;
            out.lock()
                .unwrap()
                .push(format!("{through_loopback}, {through_own_address}"));
        })
        .unwrap();
    assert_eq!(
        run_logged(&mut world, &log),
        ["ConnectionRefused, connected"]
    );
}

#[test]
fn test_another_process_loopback_never_reaches_a_wildcard_listener_elsewhere() {
    let log: Log = Arc::default();
    let out = log.clone();
    let mut world = world();
    world
        .add_process("server", "10.0.0.1", Default::default(), |ctx| async move {
            let listener = ctx.providers.network().bind("0.0.0.0:7003").await.unwrap();
            while listener.accept().await.is_ok() {}
        })
        .unwrap();
    world
        .add_workload("client", "10.0.0.2", move |p| async move {
            let through_loopback = try_connect(&p, "127.0.0.1:7003").await;
            let through_address = try_connect(&p, "10.0.0.1:7003").await;
            out.lock()
                .unwrap()
                .push(format!("{through_loopback}, {through_address}"));
        })
        .unwrap();
    assert_eq!(
        run_logged(&mut world, &log),
        ["ConnectionRefused, connected"]
    );
}

#[test]
fn test_wildcard_own_and_loopback_binds_of_one_port_conflict() {
    let log: Log = Arc::default();
    let out = log.clone();
    let mut world = world();
    world
        .add_workload("binder", "10.0.0.1", move |p| async move {
            let _wildcard = p.network().bind("0.0.0.0:7004").await.unwrap();
            let mut kinds = Vec::new();
            for address in ["127.0.0.1:7004", "10.0.0.1:7004", "127.0.0.2:7004"] {
                let kind = match p.network().bind(address).await {
                    Ok(_) => "bound".to_string(),
                    Err(error) => {
                        assert!(error.to_string().contains(address), "{error}");
                        format!("{:?}", error.kind())
                    }
                };
                kinds.push(kind);
            }
            out.lock().unwrap().push(kinds.join(", "));
        })
        .unwrap();
    assert_eq!(
        run_logged(&mut world, &log),
        ["AddrInUse, AddrInUse, AddrInUse"]
    );
}
