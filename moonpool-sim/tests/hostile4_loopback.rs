//! Edges of the loopback addressing (docs/fault-injection.md, "Addresses"): other 127.x
//! addresses, IPv6 loopback and IPv4-mapped loopback from an IPv4 process, a process registered
//! at a loopback address, loopback connections under partitions of the process's own address, a
//! loopback listener dropped with connections in its backlog, a port-0 bind on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use moonpool_core::{NetworkProvider, Providers, TcpListener, TimeProvider};
use moonpool_sim::{Locality, SimProviders};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod hostile4_common;

use hostile4_common::*;

/// What a connect to `address` gave within 30 s: "connected", the error's kind, or "hung".
async fn try_connect(p: &SimProviders, address: &str) -> String {
    match p
        .time()
        .timeout(Duration::from_secs(30), p.network().connect(address))
        .await
    {
        Ok(Ok(_)) => "connected".to_string(),
        Ok(Err(error)) => format!("{:?}", error.kind()),
        Err(_) => "hung".to_string(),
    }
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn run_ok(world: &mut moonpool_sim::SimWorld) {
    let outcome = run_caught(world).expect("no panic out of SimWorld::run");
    assert!(outcome.is_ok(), "{outcome:?}");
}

/// Any 127.x address reaches the process's own wildcard listener, and both ends show the address
/// the connect named (as on a real host, where all of 127.0.0.0/8 is the host itself).
#[test]
fn test_a_wildcard_listener_is_reached_through_any_127_address_which_both_ends_show() {
    let out = log();
    let o = Arc::clone(&out);
    let mut world = quiet(1);
    world
        .add_workload("local", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("0.0.0.0:7100").await.unwrap();
            for target in ["127.0.0.2:7100", "127.1.2.3:7100", "127.255.255.254:7100"] {
                let mut client = p.network().connect(target).await.unwrap();
                let (mut server, peer) = listener.accept().await.unwrap();
                assert_eq!(client.peer_addr(), addr(target));
                assert_eq!(client.local_addr().ip(), addr(target).ip());
                assert_eq!(server.local_addr(), addr(target));
                assert_eq!(server.peer_addr(), client.local_addr());
                assert_eq!(peer, client.local_addr());
                client.write_all(b"hi").await.unwrap();
                let mut two = [0u8; 2];
                server.read_exact(&mut two).await.unwrap();
                o.lock()
                    .unwrap()
                    .push(format!("{target} {}", String::from_utf8_lossy(&two)));
            }
        })
        .unwrap();
    run_ok(&mut world);
    assert_eq!(
        taken(&out),
        [
            "127.0.0.2:7100 hi",
            "127.1.2.3:7100 hi",
            "127.255.255.254:7100 hi"
        ]
    );
}

/// A listener bound to 127.0.0.2 reports 127.0.0.2 (what it was bound to), as a listener bound
/// to 127.0.0.1 reports 127.0.0.1.
#[test]
fn test_a_bind_of_127_0_0_2_reports_127_0_0_2() {
    let out = log();
    let o = Arc::clone(&out);
    let mut world = quiet(2);
    world
        .add_workload("local", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("127.0.0.2:7101").await.unwrap();
            o.lock()
                .unwrap()
                .push(listener.local_addr().unwrap().to_string());
        })
        .unwrap();
    run_ok(&mut world);
    assert_eq!(taken(&out), ["127.0.0.2:7101"]);
}

/// On a real host a listener bound to 127.0.0.2 is reached through 127.0.0.2 and refuses a
/// connect to 127.0.0.1 (another address of the host, where nothing listens on that port).
#[test]
fn test_a_listener_bound_to_127_0_0_2_is_not_reached_through_127_0_0_1() {
    let out = log();
    let o = Arc::clone(&out);
    let mut world = quiet(3);
    world
        .add_workload("local", "10.0.0.1", move |p| async move {
            let _listener = p.network().bind("127.0.0.2:7102").await.unwrap();
            let through_its_address = try_connect(&p, "127.0.0.2:7102").await;
            let through_another = try_connect(&p, "127.0.0.1:7102").await;
            let through_ipv6 = try_connect(&p, "[::1]:7102").await;
            o.lock().unwrap().push(format!(
                "{through_its_address}, {through_another}, {through_ipv6}"
            ));
        })
        .unwrap();
    run_ok(&mut world);
    assert_eq!(
        taken(&out),
        ["connected, ConnectionRefused, ConnectionRefused"]
    );
}

/// The documented case: `[::1]` from an IPv4 process reaches its `0.0.0.0` listener, and both
/// ends show IPv6 loopback addresses.
#[test]
fn test_ipv6_loopback_from_an_ipv4_process_reaches_its_wildcard_listener() {
    let out = log();
    let o = Arc::clone(&out);
    let mut world = quiet(4);
    world
        .add_workload("local", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("0.0.0.0:7103").await.unwrap();
            let mut client = p.network().connect("[::1]:7103").await.unwrap();
            let (mut server, peer) = listener.accept().await.unwrap();
            assert_eq!(client.peer_addr(), addr("[::1]:7103"));
            assert_eq!(server.local_addr(), addr("[::1]:7103"));
            assert_eq!(peer, client.local_addr());
            assert!(peer.ip().is_loopback() && peer.is_ipv6(), "{peer}");
            server.write_all(b"v6").await.unwrap();
            let mut two = [0u8; 2];
            client.read_exact(&mut two).await.unwrap();
            o.lock().unwrap().push(String::from_utf8_lossy(&two).into());
        })
        .unwrap();
    run_ok(&mut world);
    assert_eq!(taken(&out), ["v6"]);
}

/// `[::ffff:127.0.0.1]` (IPv4-mapped loopback) is the loopback address 127.0.0.1 spelled in
/// IPv6: on a real dual-stack host it reaches the process's wildcard listener. At the least it must
/// not hang until the connect times out, as a connect to an address nobody has does.
#[test]
fn test_ipv4_mapped_loopback_reaches_the_own_wildcard_listener() {
    let out = log();
    let o = Arc::clone(&out);
    let mut world = quiet(5);
    world
        .add_workload("local", "10.0.0.1", move |p| async move {
            let _listener = p.network().bind("0.0.0.0:7104").await.unwrap();
            let mapped = try_connect(&p, "[::ffff:127.0.0.1]:7104").await;
            o.lock().unwrap().push(mapped);
        })
        .unwrap();
    run_ok(&mut world);
    assert_eq!(taken(&out), ["connected"]);
}

/// A process registered at a loopback address could never be reached by another process (a
/// connect to 127.0.0.1 always means the connecting process itself): a serious user expects the
/// registration refused as a setup error naming the address, not a world where every client
/// connects to itself.
#[test]
fn test_a_process_registered_at_a_loopback_address_is_refused() {
    for ip in ["127.0.0.1", "127.0.0.9", "::1"] {
        let mut world = quiet(6);
        let added = world.add_process("server", ip, Locality::default(), |_ctx| async {});
        let error = added.expect_err("a loopback process address must be refused");
        assert!(error.to_string().contains(ip), "{error}");
        let mut world = quiet(6);
        let added = world.add_workload("client", ip, |_p| async {});
        assert!(added.is_err(), "workload at {ip} accepted");
    }
}

/// A loopback connect and write while the process's own address is partitioned from itself: the
/// docs say "no partition separates a process from itself", so the connect succeeds and its bytes
/// arrive at once (well before the partition's end).
#[test]
fn test_a_self_partition_does_not_hold_loopback_bytes() {
    let out = log();
    let o = Arc::clone(&out);
    let mut world = quiet(7);
    let control = world.control();
    world
        .add_workload("local", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("0.0.0.0:7105").await.unwrap();
            let me = "10.0.0.1".parse().unwrap();
            control.partition(me, me, Duration::from_secs(100));
            let start = p.time().now();
            let mut client = p.network().connect("127.0.0.1:7105").await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            client.write_all(b"ab").await.unwrap();
            let mut two = [0u8; 2];
            let read = p
                .time()
                .timeout(Duration::from_secs(10), server.read_exact(&mut two))
                .await;
            o.lock().unwrap().push(format!(
                "{} within 10 s: {}",
                String::from_utf8_lossy(&two),
                read.is_ok()
            ));
            assert!(p.time().now() - start < Duration::from_secs(10));
        })
        .unwrap();
    run_ok(&mut world);
    assert_eq!(taken(&out), ["ab within 10 s: true"]);
}

/// Isolating a process cuts it off from every other process, not from itself: a loopback
/// connection made and used during the isolation works at once.
#[test]
fn test_an_isolated_process_still_reaches_itself_through_loopback() {
    let out = log();
    let o = Arc::clone(&out);
    let mut world = quiet(8);
    let control = world.control();
    world
        .add_workload("peer", "10.0.0.2", |_p| async {})
        .unwrap();
    world
        .add_workload("local", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("0.0.0.0:7106").await.unwrap();
            control.isolate("10.0.0.1".parse().unwrap(), Duration::from_secs(100));
            let start = p.time().now();
            let mut client = p.network().connect("127.0.0.1:7106").await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            client.write_all(b"cd").await.unwrap();
            let mut two = [0u8; 2];
            server.read_exact(&mut two).await.unwrap();
            let elapsed = p.time().now() - start;
            o.lock().unwrap().push(format!(
                "{} fast {}",
                String::from_utf8_lossy(&two),
                elapsed < Duration::from_secs(1)
            ));
        })
        .unwrap();
    run_ok(&mut world);
    assert_eq!(taken(&out), ["cd fast true"]);
}

/// A loopback listener dropped with two connections still in its backlog: both clients learn it
/// (a read ends with an error or end of file within a few seconds, no hang), and a new loopback
/// connect to the port is refused.
#[test]
fn test_a_loopback_listener_dropped_with_a_backlog_ends_its_connections() {
    let out = log();
    let o = Arc::clone(&out);
    let mut world = quiet(9);
    world
        .add_workload("local", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("127.0.0.1:7107").await.unwrap();
            let mut first = p.network().connect("127.0.0.1:7107").await.unwrap();
            let mut second = p.network().connect("127.0.0.1:7107").await.unwrap();
            p.time().sleep(Duration::from_millis(1)).await;
            drop(listener);
            for client in [&mut first, &mut second] {
                let mut byte = [0u8; 1];
                let read = p
                    .time()
                    .timeout(Duration::from_secs(5), client.read(&mut byte))
                    .await;
                let shown = match read {
                    Ok(Ok(0)) => "eof".to_string(),
                    Ok(Ok(n)) => format!("read {n}"),
                    Ok(Err(error)) => format!("{:?}", error.kind()),
                    Err(_) => "hung".to_string(),
                };
                o.lock().unwrap().push(shown);
            }
            let again = try_connect(&p, "127.0.0.1:7107").await;
            o.lock().unwrap().push(again);
        })
        .unwrap();
    run_ok(&mut world);
    let seen = taken(&out);
    assert_eq!(seen.len(), 3, "{seen:?}");
    for shown in &seen[..2] {
        assert!(
            shown == "eof" || shown == "ConnectionReset" || shown == "ConnectionAborted",
            "{seen:?}"
        );
    }
    assert_eq!(seen[2], "ConnectionRefused");
}

/// A port-0 bind of 127.0.0.1 gets an ephemeral port, reports 127.0.0.1 with it, is reached
/// through loopback and not through the process's own address, and holds the port against a
/// wildcard bind of it.
#[test]
fn test_a_port_zero_loopback_bind_gets_an_ephemeral_port_reached_through_loopback_only() {
    let out = log();
    let o = Arc::clone(&out);
    let mut world = quiet(10);
    world
        .add_workload("local", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("127.0.0.1:0").await.unwrap();
            let local = listener.local_addr().unwrap();
            assert_eq!(local.ip(), addr("127.0.0.1:1").ip(), "{local}");
            assert!((49152..=65535).contains(&local.port()), "{local}");
            let port = local.port();
            let looped = try_connect(&p, &format!("127.0.0.1:{port}")).await;
            let own = try_connect(&p, &format!("10.0.0.1:{port}")).await;
            let wildcard = match p.network().bind(&format!("0.0.0.0:{port}")).await {
                Ok(_) => "bound".to_string(),
                Err(error) => format!("{:?}", error.kind()),
            };
            // A second port-0 loopback bind gets another port.
            let other = p.network().bind("127.0.0.1:0").await.unwrap();
            let distinct = other.local_addr().unwrap().port() != port;
            o.lock()
                .unwrap()
                .push(format!("{looped}, {own}, {wildcard}, distinct {distinct}"));
            drop(listener);
        })
        .unwrap();
    run_ok(&mut world);
    assert_eq!(
        taken(&out),
        ["connected, ConnectionRefused, AddrInUse, distinct true"]
    );
}

/// The wildcard of the other family: an IPv4 process's `[::]` listener and an IPv6 process's
/// `0.0.0.0` listener are reached through both loopback families and through the own address (the
/// docs: a wildcard bind, `0.0.0.0:p` or `[::]:p`, is reached through any loopback address).
#[test]
fn test_a_wildcard_of_the_other_family_is_reached_through_both_loopbacks() {
    let out = log();
    let (o4, o6) = (Arc::clone(&out), Arc::clone(&out));
    let mut world = quiet(11);
    world
        .add_workload("v4", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("[::]:7400").await.unwrap();
            let shown = listener.local_addr().unwrap();
            let a = try_connect(&p, "127.0.0.1:7400").await;
            let b = try_connect(&p, "[::1]:7400").await;
            let c = try_connect(&p, "10.0.0.1:7400").await;
            o4.lock()
                .unwrap()
                .push(format!("v4 {}: {a}, {b}, {c}", shown.port()));
        })
        .unwrap();
    world
        .add_workload("v6", "fd00::2", move |p| async move {
            let listener = p.network().bind("0.0.0.0:7401").await.unwrap();
            let shown = listener.local_addr().unwrap();
            let a = try_connect(&p, "127.0.0.1:7401").await;
            let b = try_connect(&p, "[::1]:7401").await;
            let c = try_connect(&p, "[fd00::2]:7401").await;
            o6.lock()
                .unwrap()
                .push(format!("v6 {}: {a}, {b}, {c}", shown.port()));
        })
        .unwrap();
    run_ok(&mut world);
    let mut seen = taken(&out);
    seen.sort();
    assert_eq!(
        seen,
        [
            "v4 7400: connected, connected, connected",
            "v6 7401: connected, connected, connected"
        ]
    );
}

/// Two processes each bind 127.0.0.1 on the same port: each is its own host, so both binds
/// succeed, and each process's loopback connect reaches its own listener (the accepted peer is
/// the process's own connection).
#[test]
fn test_two_processes_bind_the_same_loopback_port_and_each_reaches_its_own() {
    let out = log();
    let mut world = quiet(12);
    for (name, ip) in [("a", "10.0.0.1"), ("b", "10.0.0.2")] {
        let o = Arc::clone(&out);
        world
            .add_workload(name, ip, move |p| async move {
                let listener = p.network().bind("127.0.0.1:7500").await.unwrap();
                let mut client = p.network().connect("127.0.0.1:7500").await.unwrap();
                let (mut server, peer) = listener.accept().await.unwrap();
                assert_eq!(peer, client.local_addr());
                client.write_all(name.as_bytes()).await.unwrap();
                let mut one = [0u8; 1];
                server.read_exact(&mut one).await.unwrap();
                o.lock()
                    .unwrap()
                    .push(format!("{name} got {}", one[0] as char));
                // Both listeners are alive at once.
                p.time().sleep(Duration::from_millis(10)).await;
            })
            .unwrap();
    }
    run_ok(&mut world);
    let mut seen = taken(&out);
    seen.sort();
    assert_eq!(seen, ["a got a", "b got b"]);
}

/// `WorldControl::connections_of` lists both ends of a loopback connection (both are the
/// process's), under the streams' connection id, each with the addresses its stream reports
/// (loopback ones: "both ends of such a connection report loopback addresses"), so that a test
/// can match the list to its streams.
#[test]
fn test_connections_of_shows_a_loopback_connections_ends_as_their_streams_do() {
    let out = log();
    let o = Arc::clone(&out);
    let mut world = quiet(13);
    let control = world.control();
    world
        .add_workload("local", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("0.0.0.0:7600").await.unwrap();
            let client = p.network().connect("127.0.0.1:7600").await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let me = control.process("local").unwrap();
            let ends = control.connections_of(me);
            assert_eq!(ends.len(), 2, "{ends:?}");
            for (end, stream) in ends.iter().zip([&client, &server]) {
                assert_eq!(end.id, stream.connection_id(), "{ends:?}");
                o.lock().unwrap().push(format!(
                    "{:?}: {} -> {} (stream {} -> {})",
                    end.end,
                    end.local,
                    end.remote,
                    stream.local_addr(),
                    stream.peer_addr()
                ));
                assert_eq!(end.local, stream.local_addr(), "{ends:?}");
                assert_eq!(end.remote, stream.peer_addr(), "{ends:?}");
            }
        })
        .unwrap();
    run_ok(&mut world);
    assert_eq!(taken(&out).len(), 2);
}
