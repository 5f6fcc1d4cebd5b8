//! Foreign wakers (a combinator's, a test's: not a task's own) woken by the engine on the paths
//! the earlier passes did not cover: a FIN, a peer's crash, a connect landing in a listener's
//! backlog, a reader freeing room for a blocked writer, a graceful reboot's shutdown signal.
//!
//! The engine says (network/half.rs, `wake_reader_on`) that such a waker "is returned for the
//! caller to wake once it has let go of the world's state: its `wake`, or the drop of what it
//! holds, may reach the world", and the timer, delivery and disk paths do so (`hostile2_*`). A
//! serious user expects the same of every path: a wake that reads the world (here
//! `WorldControl::now`) works, and a wake that panics is the seed's failure (a `SimError`),
//! never a panic out of `SimWorld::run`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Context;
use std::time::Duration;

use moonpool_core::{NetworkProvider, Providers, TaskProvider, TcpListener, TimeProvider};
use moonpool_sim::{Locality, RebootKind, WorldControl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod hostile4_common;

use hostile4_common::*;

fn panics() -> Arc<dyn Fn() + Send + Sync> {
    Arc::new(|| panic!("waker panicked on wake"))
}

/// A workload whose read waits (through `action`'s waker) for the FIN of a peer stream that a
/// second task drops 1 ms later; logs what the read returned.
fn fin_world(
    action: impl FnOnce(WorldControl) -> Arc<dyn Fn() + Send + Sync>,
    out: Log,
) -> moonpool_sim::SimWorld {
    let mut world = quiet(1);
    let action = action(world.control());
    world
        .add_workload("reader", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("0.0.0.0:7000").await.unwrap();
            let mut client = p.network().connect("10.0.0.1:7000").await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let time = p.time().clone();
            let closer = p.task().spawn("closer", async move {
                time.sleep(Duration::from_millis(1)).await;
                drop(server);
            });
            let mut byte = [0u8; 1];
            let read = through(Box::pin(client.read(&mut byte)), action).await;
            out.lock().unwrap().push(format!("{read:?}"));
            closer.await.unwrap();
        })
        .unwrap();
    world
}

/// Expected: the FIN wakes the reader through its waker, whose read of the world works; the read
/// returns end of file.
#[test]
fn test_a_fin_wakes_a_foreign_waker_that_reads_the_world() {
    let out = log();
    let calls = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&calls);
    let mut world = fin_world(move |control| reads_the_world(control, c), Arc::clone(&out));
    let outcome = run_caught(&mut world).expect("no panic out of SimWorld::run");
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(taken(&out), ["Ok(0)"]);
    assert!(calls.load(Ordering::SeqCst) >= 1);
}

/// Expected: a waker that panics when the FIN wakes it is the seed's failure, a `SimError` naming
/// the panic, as the same waker woken by a timer or a delivery is.
#[test]
fn test_a_fin_waking_a_panicking_waker_is_a_verdict() {
    let mut world = fin_world(|_| panics(), log());
    let outcome = run_caught(&mut world).expect("no panic out of SimWorld::run");
    let error = outcome.expect_err("a panicking waker must fail the seed");
    assert!(error.to_string().contains("waker panicked"), "{error}");
}

/// A reader at 10.0.0.2 waiting on a connection to a server at 10.0.0.1, polled through
/// `action`'s waker, while the workload crashes the server for good after 1 ms.
fn crash_world(
    action: impl FnOnce(WorldControl) -> Arc<dyn Fn() + Send + Sync>,
    out: Log,
) -> moonpool_sim::SimWorld {
    let mut world = quiet(2);
    let control = world.control();
    let action = action(world.control());
    world
        .add_process(
            "server",
            "10.0.0.1",
            Locality::default(),
            |ctx| async move {
                let listener = ctx.providers.network().bind("0.0.0.0:7000").await.unwrap();
                let mut kept = Vec::new();
                while let Ok((stream, _)) = listener.accept().await {
                    kept.push(stream);
                }
            },
        )
        .unwrap();
    world
        .add_workload("reader", "10.0.0.2", move |p| async move {
            let mut client = p.network().connect("10.0.0.1:7000").await.unwrap();
            let time = p.time().clone();
            let crasher = p.task().spawn("crasher", async move {
                time.sleep(Duration::from_millis(1)).await;
                let server = control.process("server").unwrap();
                control.reboot(server, RebootKind::Crash, None);
            });
            let mut byte = [0u8; 1];
            let read = p
                .time()
                .timeout(
                    Duration::from_secs(600),
                    through(Box::pin(client.read(&mut byte)), action),
                )
                .await;
            let shown = match read {
                Ok(Ok(n)) => format!("read {n}"),
                Ok(Err(error)) => format!("{:?}", error.kind()),
                Err(_) => "hung".to_string(),
            };
            out.lock().unwrap().push(shown);
            crasher.await.unwrap();
        })
        .unwrap();
    world
}

/// Expected: the peer's crash ends the read (an error or end of file, not a hang), through a
/// waker whose read of the world works.
#[test]
fn test_a_peers_crash_wakes_a_foreign_waker_that_reads_the_world() {
    let out = log();
    let calls = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&calls);
    let mut world = crash_world(move |control| reads_the_world(control, c), Arc::clone(&out));
    let outcome = run_caught(&mut world).expect("no panic out of SimWorld::run");
    assert!(outcome.is_ok(), "{outcome:?}");
    let seen = taken(&out);
    assert_eq!(seen.len(), 1);
    assert_ne!(seen[0], "hung", "{seen:?}");
    assert!(calls.load(Ordering::SeqCst) >= 1);
}

/// Expected: a waker panicking when a peer's crash wakes it fails the seed with a `SimError`.
#[test]
fn test_a_peers_crash_waking_a_panicking_waker_is_a_verdict() {
    let mut world = crash_world(|_| panics(), log());
    let outcome = run_caught(&mut world).expect("no panic out of SimWorld::run");
    let error = outcome.expect_err("a panicking waker must fail the seed");
    assert!(error.to_string().contains("waker panicked"), "{error}");
}

/// Expected: an accept polled through a waker that reads the world is woken by another task's
/// connect, and both the accept and the connect succeed.
#[test]
fn test_a_connect_wakes_a_foreign_accept_waker_that_reads_the_world() {
    let out = log();
    let o = Arc::clone(&out);
    let mut world = quiet(3);
    let calls = Arc::new(AtomicU64::new(0));
    let action = reads_the_world(world.control(), Arc::clone(&calls));
    world
        .add_workload("acceptor", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("0.0.0.0:7000").await.unwrap();
            let (net, time) = (p.network().clone(), p.time().clone());
            let connector = p.task().spawn("connector", async move {
                time.sleep(Duration::from_millis(1)).await;
                net.connect("10.0.0.1:7000").await.map(drop).is_ok()
            });
            let accepted = through(Box::pin(listener.accept()), action).await;
            o.lock()
                .unwrap()
                .push(format!("accepted {}", accepted.is_ok()));
            let connected = connector.await;
            o.lock().unwrap().push(format!("connected {connected:?}"));
        })
        .unwrap();
    let outcome = run_caught(&mut world).expect("no panic out of SimWorld::run");
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(taken(&out), ["accepted true", "connected Ok(true)"]);
    assert!(calls.load(Ordering::SeqCst) >= 1);
}

/// Expected: a writer blocked on a full send buffer, polled through a waker that reads the
/// world, is woken when the reader frees room, and every byte arrives.
#[test]
fn test_a_read_wakes_a_foreign_writer_waker_that_reads_the_world() {
    const LEN: usize = 1 << 20;
    let out = log();
    let o = Arc::clone(&out);
    let mut world = quiet(4);
    let calls = Arc::new(AtomicU64::new(0));
    let action = reads_the_world(world.control(), Arc::clone(&calls));
    world
        .add_workload("pair", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("0.0.0.0:7000").await.unwrap();
            let mut client = p.network().connect("10.0.0.1:7000").await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            let reader = p.task().spawn("reader", async move {
                let mut all = vec![0u8; LEN];
                server
                    .read_exact(&mut all)
                    .await
                    .map(|_| all.iter().map(|b| u64::from(*b)).sum::<u64>())
            });
            let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
            let expected: u64 = data.iter().map(|b| u64::from(*b)).sum();
            let written = through(Box::pin(client.write_all(&data)), action).await;
            o.lock()
                .unwrap()
                .push(format!("written {}", written.is_ok()));
            let sum = reader.await.unwrap().unwrap();
            o.lock()
                .unwrap()
                .push(format!("sum ok {}", sum == expected));
        })
        .unwrap();
    let outcome = run_caught(&mut world).expect("no panic out of SimWorld::run");
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(taken(&out), ["written true", "sum ok true"]);
    assert!(calls.load(Ordering::SeqCst) >= 1, "the writer never waited");
}

/// Expected: a server waiting for its shutdown signal through a waker that reads the world sees
/// the graceful reboot a workload requests, and the run ends well.
#[test]
fn test_a_graceful_reboot_wakes_a_foreign_shutdown_waker_that_reads_the_world() {
    let out = log();
    let (o, o2) = (Arc::clone(&out), Arc::clone(&out));
    let mut world = quiet(5);
    let control = world.control();
    let calls = Arc::new(AtomicU64::new(0));
    let action = reads_the_world(world.control(), Arc::clone(&calls));
    world
        .add_process("server", "10.0.0.1", Locality::default(), move |ctx| {
            let action = Arc::clone(&action);
            let o = Arc::clone(&o);
            async move {
                if ctx.boot > 1 {
                    return;
                }
                let shutdown = ctx.shutdown.clone();
                through(Box::pin(shutdown.requested()), action).await;
                o.lock().unwrap().push("shutdown seen".to_string());
                std::future::pending::<()>().await;
            }
        })
        .unwrap();
    world
        .add_workload("rebooter", "10.0.0.2", move |p| async move {
            p.time().sleep(Duration::from_millis(1)).await;
            let server = control.process("server").unwrap();
            control.reboot(server, RebootKind::Graceful, None);
            p.time().sleep(Duration::from_secs(60)).await;
            o2.lock()
                .unwrap()
                .push(format!("alive {}", control.is_alive(server)));
        })
        .unwrap();
    let outcome = run_caught(&mut world).expect("no panic out of SimWorld::run");
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(taken(&out), ["shutdown seen", "alive false"]);
    assert!(calls.load(Ordering::SeqCst) >= 1);
}

/// The control case, the path the engine fixed: a delivery wakes a foreign reader waker that
/// reads the world, outside the world's state. Expected: the byte arrives, the run ends well.
#[test]
fn test_a_delivery_wakes_a_foreign_waker_that_reads_the_world() {
    let out = log();
    let o = Arc::clone(&out);
    let mut world = quiet(6);
    let calls = Arc::new(AtomicU64::new(0));
    let action = reads_the_world(world.control(), Arc::clone(&calls));
    world
        .add_workload("reader", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("0.0.0.0:7000").await.unwrap();
            let mut client = p.network().connect("10.0.0.1:7000").await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            let time = p.time().clone();
            let writer = p.task().spawn("writer", async move {
                time.sleep(Duration::from_millis(1)).await;
                server.write_all(b"z").await.unwrap();
                server
            });
            let mut byte = [0u8; 1];
            let read = through(Box::pin(client.read(&mut byte)), action).await;
            o.lock()
                .unwrap()
                .push(format!("{read:?} {}", byte[0] as char));
            drop(writer.await.unwrap());
        })
        .unwrap();
    let outcome = run_caught(&mut world).expect("no panic out of SimWorld::run");
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(taken(&out), ["Ok(1) z"]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

type BoxedSleep = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// A waker that wakes `inner` and owns `held`, a sleep registered with the world: dropping the
/// last clone of the waker drops the sleep, whose drop removes its timer from the world.
struct Holding {
    inner: std::task::Waker,
    _held: std::sync::Mutex<Option<BoxedSleep>>,
}

impl std::task::Wake for Holding {
    fn wake(self: Arc<Self>) {
        self.inner.wake_by_ref();
    }
}

/// A sleep registered with the world by the calling task, returned pending.
async fn registered_sleep(time: &moonpool_sim::SimTimeProvider) -> BoxedSleep {
    let mut sleep: BoxedSleep = Box::pin(time.sleep(Duration::from_secs(5)));
    poll_fn(|cx| {
        let _ = sleep.as_mut().poll(cx);
        std::task::Poll::Ready(())
    })
    .await;
    sleep
}

/// A read first polled through a waker that owns a registered sleep (the only clone left is
/// the one the connection keeps), then polled with the task's own waker: the connection drops
/// the old waker, hence the sleep, whose drop reaches the world. Expected (what the engine says
/// of "the drop of what it holds"): harmless, the byte arrives and the run ends well.
#[test]
fn test_a_reader_dropping_a_foreign_waker_that_owns_a_sleep_is_harmless() {
    reader_dropping_a_holding_waker(true);
}

/// The control case: the same waker owning nothing; the byte arrives.
#[test]
fn test_a_reader_dropping_a_foreign_waker_that_owns_nothing_is_harmless() {
    reader_dropping_a_holding_waker(false);
}

fn reader_dropping_a_holding_waker(own_sleep: bool) {
    let out = log();
    let o = Arc::clone(&out);
    let mut world = quiet(7);
    world
        .add_workload("reader", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("0.0.0.0:7000").await.unwrap();
            let mut client = p.network().connect("10.0.0.1:7000").await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            let time = p.time().clone();
            let sleep = registered_sleep(&time).await;
            let mut byte = [0u8; 1];
            let mut read = Box::pin(client.read(&mut byte));
            let mut first = Some(sleep);
            let read = poll_fn(|cx| {
                if let Some(sleep) = first.take() {
                    let waker = std::task::Waker::from(Arc::new(Holding {
                        inner: cx.waker().clone(),
                        _held: std::sync::Mutex::new(own_sleep.then_some(sleep)),
                    }));
                    let polled = read.as_mut().poll(&mut Context::from_waker(&waker));
                    drop(waker);
                    // Polled again at once, now with the task's own waker.
                    cx.waker().wake_by_ref();
                    return match polled {
                        std::task::Poll::Ready(r) => std::task::Poll::Ready(r),
                        std::task::Poll::Pending => std::task::Poll::Pending,
                    };
                }
                read.as_mut().poll(cx)
            });
            let writer = p.task().spawn("writer", async move {
                server.write_all(b"q").await.unwrap();
                server
            });
            let got = read.await;
            o.lock().unwrap().push(format!("{got:?}"));
            drop(writer.await.unwrap());
        })
        .unwrap();
    let outcome = run_caught(&mut world).expect("no panic out of SimWorld::run");
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(taken(&out), ["Ok(1)"]);
}

/// The same with a listener: an accept first polled through a waker owning a registered sleep,
/// then with the task's own waker. Expected: harmless, the connect is accepted.
#[test]
fn test_an_accept_dropping_a_foreign_waker_that_owns_a_sleep_is_harmless() {
    let out = log();
    let o = Arc::clone(&out);
    let mut world = quiet(8);
    world
        .add_workload("acceptor", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("0.0.0.0:7000").await.unwrap();
            let time = p.time().clone();
            let sleep = registered_sleep(&time).await;
            let mut accept = Box::pin(listener.accept());
            let mut first = Some(sleep);
            let accepted = poll_fn(|cx| {
                if let Some(sleep) = first.take() {
                    let waker = std::task::Waker::from(Arc::new(Holding {
                        inner: cx.waker().clone(),
                        _held: std::sync::Mutex::new(Some(sleep)),
                    }));
                    let polled = accept.as_mut().poll(&mut Context::from_waker(&waker));
                    drop(waker);
                    cx.waker().wake_by_ref();
                    return polled;
                }
                accept.as_mut().poll(cx)
            });
            let net = p.network().clone();
            let t = p.time().clone();
            let connector = p.task().spawn("connector", async move {
                t.sleep(Duration::from_millis(1)).await;
                net.connect("10.0.0.1:7000").await.is_ok()
            });
            let accepted = accepted.await;
            o.lock()
                .unwrap()
                .push(format!("accepted {}", accepted.is_ok()));
            let connected = connector.await.unwrap();
            o.lock().unwrap().push(format!("connected {connected}"));
        })
        .unwrap();
    let outcome = run_caught(&mut world).expect("no panic out of SimWorld::run");
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(taken(&out), ["accepted true", "connected true"]);
}
