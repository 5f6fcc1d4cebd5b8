//! More paths that wake a waker that is not a task's own under the world's state, beyond those
//! of `hostile4_foreign_wakers.rs`: a listener dropped with a connection in its backlog (the
//! client's reader gets a reset), a writer waiting for room woken when its send buffer is grown
//! (`WorldControl::set_send_buffer_capacity`), and a reader whose held bytes a restore of a
//! scripted cut delivers. Each waker reads the world when woken (`WorldControl::now`): the run
//! must end well, the read or write see what it should, and the waker must have run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moonpool_core::{NetworkProvider, Providers, TaskProvider, TcpListener, TimeProvider};
use moonpool_sim::network::ConnectionEnd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod hostile4_common;

use hostile4_common::*;

fn check(mut world: moonpool_sim::SimWorld, out: &Log, calls: &AtomicU64, expected: &[&str]) {
    let outcome = run_caught(&mut world).expect("no panic out of SimWorld::run");
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(taken(out), expected);
    assert!(calls.load(Ordering::SeqCst) >= 1, "the waker ran");
}

#[test]
fn test_a_listener_dropped_with_a_backlog_resets_a_reader_whose_waker_reads_the_world() {
    let (out, calls) = (log(), Arc::new(AtomicU64::new(0)));
    let mut world = quiet(11);
    let action = reads_the_world(world.control(), Arc::clone(&calls));
    let o = Arc::clone(&out);
    world
        .add_workload("client", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("0.0.0.0:7000").await.unwrap();
            let mut client = p.network().connect("10.0.0.1:7000").await.unwrap();
            let time = p.time().clone();
            // Never accepted: dropping the listener resets the queued connection.
            let closer = p.task().spawn("closer", async move {
                time.sleep(Duration::from_millis(1)).await;
                drop(listener);
            });
            let mut byte = [0u8; 1];
            let read = through(Box::pin(client.read(&mut byte)), action).await;
            o.lock()
                .unwrap()
                .push(format!("{:?}", read.map_err(|e| e.kind())));
            closer.await.unwrap();
        })
        .unwrap();
    check(world, &out, &calls, &["Err(ConnectionReset)"]);
}

#[test]
fn test_growing_a_full_send_buffer_wakes_a_writer_whose_waker_reads_the_world() {
    let (out, calls) = (log(), Arc::new(AtomicU64::new(0)));
    let mut world = quiet(12);
    let control = world.control();
    let action = reads_the_world(world.control(), Arc::clone(&calls));
    let o = Arc::clone(&out);
    world
        .add_workload("writer", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("0.0.0.0:7000").await.unwrap();
            let mut client = p.network().connect("10.0.0.1:7000").await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let id = client.connection_id();
            assert!(control.set_send_buffer_capacity(id, ConnectionEnd::Client, 1_024));
            let time = p.time().clone();
            let grow = control.clone();
            // The server never reads: only a bigger buffer lets the write finish.
            let grower = p.task().spawn("grower", async move {
                time.sleep(Duration::from_millis(5)).await;
                assert!(grow.set_send_buffer_capacity(id, ConnectionEnd::Client, 1 << 20));
            });
            let written = through(Box::pin(client.write_all(&[5u8; 16_384])), action).await;
            o.lock().unwrap().push(format!("{written:?}"));
            grower.await.unwrap();
            drop(server);
        })
        .unwrap();
    check(world, &out, &calls, &["Ok(())"]);
}

#[test]
fn test_restoring_a_cut_connection_wakes_a_reader_whose_waker_reads_the_world() {
    let (out, calls) = (log(), Arc::new(AtomicU64::new(0)));
    let mut world = quiet(13);
    let control = world.control();
    let action = reads_the_world(world.control(), Arc::clone(&calls));
    let o = Arc::clone(&out);
    world
        .add_workload("reader", "10.0.0.1", move |p| async move {
            let listener = p.network().bind("0.0.0.0:7000").await.unwrap();
            let mut client = p.network().connect("10.0.0.1:7000").await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            let id = client.connection_id();
            assert!(control.cut_connection(id, None));
            server.write_all(b"x").await.unwrap();
            let time = p.time().clone();
            // The held byte is delivered at the restore, from this task's poll.
            let restorer = p.task().spawn("restorer", async move {
                time.sleep(Duration::from_millis(5)).await;
                assert!(control.restore_connection(id));
                server
            });
            let mut byte = [0u8; 1];
            let read = through(Box::pin(client.read(&mut byte)), action).await;
            o.lock()
                .unwrap()
                .push(format!("{:?} {byte:?}", read.map_err(|e| e.kind())));
            drop(restorer.await.unwrap());
        })
        .unwrap();
    check(world, &out, &calls, &["Ok(1) [120]"]);
}
