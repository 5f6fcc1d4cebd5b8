//! `no_reply()` on a multi-threaded Tokio runtime: a handler that awaits (and so may resume on
//! another worker thread) before it declines still gives its caller `BrokenPromise`, and one
//! that declines never leaks into another handler polled next on the same thread (those still
//! answer). `no_reply` marks the thread only for the duration of one poll of one handler, so it
//! is right wherever each poll runs; the test checks that handlers did resume on other threads.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use futures::future::join_all;
use moonpool_core::TokioProviders;
use moonpool_transport::{NetTransportBuilder, ReplyError, no_reply, service};

#[service(in_flight_max = 32)]
pub trait Gate {
    /// Answers even numbers, declines odd ones, after `hops` awaits.
    async fn pass(&self, x: u64, hops: u32) -> u64;
    /// The same, one request at a time.
    #[serve(in_flight_max = 1)]
    async fn pass_serially(&self, x: u64, hops: u32) -> u64;
}

#[derive(Default)]
struct Gatekeeper {
    /// Handlers that ran on more than one thread.
    moved: AtomicUsize,
    threads: Mutex<Vec<ThreadId>>,
}

impl Gatekeeper {
    async fn decide(&self, x: u64, hops: u32) -> u64 {
        let first = std::thread::current().id();
        let mut moved = false;
        for hop in 0..hops {
            if hop % 2 == 0 {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(Duration::from_micros(50)).await;
            }
            moved |= std::thread::current().id() != first;
        }
        if moved {
            self.moved.fetch_add(1, Ordering::Relaxed);
        }
        let here = std::thread::current().id();
        {
            let mut threads = self.threads.lock().unwrap();
            if !threads.contains(&here) {
                threads.push(here);
            }
        }
        if x % 2 == 1 {
            return no_reply().await;
        }
        x
    }
}

/// The served implementation; the test keeps the other handle on the counters.
struct Shared(Arc<Gatekeeper>);

impl Gate for Shared {
    async fn pass(&self, x: u64, hops: u32) -> u64 {
        self.0.decide(x, hops).await
    }
    async fn pass_serially(&self, x: u64, hops: u32) -> u64 {
        self.0.decide(x, hops).await
    }
}

#[test]
fn test_no_reply_holds_when_handlers_resume_on_other_threads() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let providers = TokioProviders::new();
        let server = NetTransportBuilder::new(providers.clone())
            .local_address("127.0.0.1:0".parse().unwrap())
            .build_listening()
            .await
            .unwrap();
        let keeper = Arc::new(Gatekeeper::default());
        let serving = GateServer::serve(&server, Shared(Arc::clone(&keeper))).unwrap();
        let gate = serving.client();
        let transport = NetTransportBuilder::new(providers).build().unwrap();
        // Rounds until some handler was seen to resume on another thread (bounded).
        for round in 0..50u64 {
            let calls = (0..64u64).map(|i| {
                let transport = transport.clone();
                tokio::spawn(async move {
                    let x = round * 64 + i;
                    let hops = u32::try_from(i % 5).unwrap();
                    // Bounded, so that a declined call that never ends fails the test.
                    let limit = Duration::from_secs(20);
                    let reply = if i % 4 == 0 {
                        gate.pass_serially(&transport, x, hops)
                            .get_reply()
                            .timeout(limit)
                            .await
                    } else {
                        gate.pass(&transport, x, hops)
                            .get_reply()
                            .timeout(limit)
                            .await
                    };
                    (x, reply)
                })
            });
            for outcome in join_all(calls).await {
                let (x, reply) = outcome.unwrap();
                if x % 2 == 0 {
                    assert_eq!(reply, Ok(x), "an answered call of {x}");
                } else {
                    assert!(
                        matches!(reply, Err(ReplyError::BrokenPromise { .. })),
                        "a declined call of {x}: {reply:?}"
                    );
                }
            }
            if keeper.moved.load(Ordering::Relaxed) > 0 && round >= 2 {
                break;
            }
        }
        assert!(
            keeper.moved.load(Ordering::Relaxed) > 0,
            "no handler resumed on another thread: the test did not test that"
        );
        assert!(serving.is_serving());
    });
}

/// Awaited outside a handler (in a task the handler spawned) it never completes: the caller
/// gets what the handler itself returns.
#[test]
fn test_no_reply_in_a_spawned_task_does_not_end_the_handler() {
    #[service]
    pub trait Spawner {
        async fn run(&self) -> bool;
    }
    struct Detached;
    impl Spawner for Detached {
        async fn run(&self) -> bool {
            let task = tokio::spawn(async { no_reply::<()>().await });
            tokio::time::sleep(Duration::from_millis(20)).await;
            let finished = task.is_finished();
            task.abort();
            !finished
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let providers = TokioProviders::new();
        let server = NetTransportBuilder::new(providers.clone())
            .local_address("127.0.0.1:0".parse().unwrap())
            .build_listening()
            .await
            .unwrap();
        let serving = SpawnerServer::serve(&server, Detached).unwrap();
        let transport = NetTransportBuilder::new(providers).build().unwrap();
        assert_eq!(serving.client().run(&transport).get_reply().await, Ok(true));
    });
}
