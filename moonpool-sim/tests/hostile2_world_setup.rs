//! Hostile setup of a bare `SimWorld` (second pass): odd process names and addresses,
//! duplicates, an IPv6 world, a world run twice, and a process added after the run. Each gives
//! a typed error naming the value, or works; never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{NetworkProvider, Providers, TcpListener, TimeProvider};
use moonpool_sim::Locality;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod hostile2_common;

use hostile2_common::*;

/// Odd names: refused naming the name, or accepted and run.
#[test]
fn test_odd_process_names_are_refused_by_name_or_run() {
    let long = "n".repeat(100_000);
    for name in ["", "a/b", "tab\tname", "é🦀", long.as_str()] {
        let mut world = quiet(1);
        let added = caught(|| {
            world.add_workload(name, "10.0.0.1", |p| async move {
                p.time().sleep(Duration::from_millis(1)).await;
            })
        })
        .unwrap_or_else(|panic| panic!("{name:.20?}: add_workload panicked: {panic}"));
        match added {
            Ok(_) => {
                run_caught(world)
                    .unwrap_or_else(|panic| panic!("{name:.20?}: run panicked: {panic}"))
                    .unwrap_or_else(|error| panic!("{name:.20?}: {error}"));
            }
            Err(error) => assert!(error.to_string().contains(name), "{name:.20?}: {error}"),
        }
    }
}

/// Odd addresses: refused naming the address, or accepted and run.
#[test]
fn test_odd_process_addresses_are_refused_by_value_or_run() {
    for ip in [
        "",
        "not-an-ip",
        "10.0.0.1:80",
        "10.0.0.1 ",
        "300.1.1.1",
        "0.0.0.0",
        "255.255.255.255",
        "127.0.0.1",
        "::1",
        "fe80::1%eth0",
    ] {
        let mut world = quiet(2);
        let added = caught(|| {
            world.add_workload("w", ip, |p| async move {
                p.time().sleep(Duration::from_millis(1)).await;
            })
        })
        .unwrap_or_else(|panic| panic!("{ip:?}: add_workload panicked: {panic}"));
        match added {
            Ok(_) => {
                run_caught(world)
                    .unwrap_or_else(|panic| panic!("{ip:?}: run panicked: {panic}"))
                    .unwrap_or_else(|error| panic!("{ip:?}: {error}"));
            }
            Err(error) => assert!(error.to_string().contains(ip), "{ip:?}: {error}"),
        }
    }
}

/// Duplicates: a second process with a name or an address already taken is refused, naming it.
#[test]
fn test_duplicate_names_and_addresses_are_refused_by_value() {
    let mut world = quiet(3);
    world
        .add_process("server", "10.0.0.1", Locality::default(), |_| async {})
        .unwrap();
    let by_name = world
        .add_process("server", "10.0.0.2", Locality::default(), |_| async {})
        .unwrap_err();
    assert!(by_name.to_string().contains("'server'"), "{by_name}");
    let by_ip = world
        .add_workload("client", "10.0.0.1", |_| async {})
        .unwrap_err();
    assert!(by_ip.to_string().contains("10.0.0.1"), "{by_ip}");
}

/// An IPv6 world: if IPv6 addresses are accepted for processes, a server binds and a client
/// connects and echoes over them.
#[test]
fn test_an_ipv6_world_echoes_or_refuses_ipv6_by_value() {
    let mut world = quiet(4);
    let added = world.add_process("server", "fd00::1", Locality::default(), |ctx| async move {
        let Ok(listener) = ctx.providers.network().bind("[fd00::1]:4500").await else {
            return;
        };
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut byte = [0u8; 1];
            if stream.read_exact(&mut byte).await.is_ok() {
                let _ = stream.write_all(&byte).await;
            }
        }
    });
    if let Err(error) = added {
        assert!(error.to_string().contains("fd00::1"), "{error}");
        return;
    }
    let echoed = Arc::new(Mutex::new(None));
    let e = Arc::clone(&echoed);
    world
        .add_workload("client", "fd00::2", move |p| async move {
            let attempt = p
                .time()
                .timeout(Duration::from_secs(5), async {
                    let mut stream = p.network().connect("[fd00::1]:4500").await.ok()?;
                    stream.write_all(b"6").await.ok()?;
                    let mut reply = [0u8; 1];
                    stream.read_exact(&mut reply).await.ok()?;
                    Some(reply)
                })
                .await;
            *e.lock().unwrap() = Some(attempt);
        })
        .unwrap();
    run_caught(world).unwrap().unwrap();
    let echoed = echoed.lock().unwrap().take().unwrap();
    assert_eq!(echoed, Ok(Some(*b"6")), "the IPv6 echo");
}

/// A world run twice, and a world given a process after its run: a typed error or a second
/// sound run, never a panic.
#[test]
fn test_a_world_run_twice_or_grown_after_its_run_does_not_panic() {
    let mut world = quiet(5);
    world
        .add_workload("once", "10.0.0.1", |p| async move {
            p.time().sleep(Duration::from_millis(1)).await;
        })
        .unwrap();
    let first = world.run().unwrap();
    let second = caught(|| world.run().map(|s| s.sim_time).map_err(|e| e.to_string()))
        .unwrap_or_else(|panic| panic!("the second run panicked: {panic}"));
    if let Ok(time) = second {
        assert!(time >= first.sim_time, "time does not go back");
    }
    let added = caught(|| {
        world.add_workload("late", "10.0.0.2", |p| async move {
            p.time().sleep(Duration::from_millis(1)).await;
        })
    })
    .unwrap_or_else(|panic| panic!("adding after the run panicked: {panic}"));
    if added.is_ok() {
        let third = caught(|| world.run().map(|s| s.sim_time).map_err(|e| e.to_string()))
            .unwrap_or_else(|panic| panic!("the run after adding panicked: {panic}"));
        let _ = third;
    }
}
