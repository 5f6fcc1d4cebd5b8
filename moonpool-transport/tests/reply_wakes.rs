//! How a caller is woken for its reply, on the paths the cheap first look takes or must not
//! take: a reply that lands before the caller's first look (the wake already consumed by then),
//! callers of one transport in several tasks (each request's entry starts with the waker of
//! whoever took a reply last, a wrong guess for the others), futures dropped before and after
//! their first look, and the same on a multi-threaded Tokio runtime over real TCP.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use moonpool_core::{
    Endpoint, NetworkAddress, Providers, TaskProvider, TimeProvider, TokioProviders, UID,
};
use moonpool_sim::{Locality, NetworkConfiguration, SimProviders, SimWorld, WorldConfig};
use moonpool_transport::{NetTransport, NetTransportBuilder, RequestClient};

const TOKEN: UID = UID::well_known(3);
const SERVER: &str = "10.0.0.1:4500";

async fn serve<P: Providers>(providers: P, address: &str) -> NetTransport {
    let transport = NetTransportBuilder::new(providers.clone())
        .local_address(address.parse().unwrap())
        .build_listening()
        .await
        .unwrap();
    let stream = transport.register_stream_at::<u64, u64>(TOKEN).unwrap();
    providers.task().spawn("server", async move {
        while let Some((request, reply)) = stream.recv().await {
            reply.send(request + 1);
        }
    });
    transport
}

/// Polls `future` once, from the calling task.
async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
}

fn world(seed: u64) -> SimWorld {
    let mut config = WorldConfig::quiet();
    config.network = NetworkConfiguration::with_fixed_latency(Duration::from_millis(1));
    let mut world = SimWorld::with_config(seed, config).unwrap();
    world
        .add_process(
            "server",
            "10.0.0.1",
            Locality::default(),
            |ctx| async move {
                let _server = serve(ctx.providers.clone(), SERVER).await;
                std::future::pending::<()>().await;
            },
        )
        .unwrap();
    world
}

fn rpc(transport: &NetTransport) -> RequestClient<u64, u64> {
    transport.client::<u64, u64>(Endpoint::new(SERVER.parse().unwrap(), TOKEN))
}

/// A caller that sends, waits past its reply's arrival, then looks for the first time: the
/// reply's wake went to its task while it slept (and was consumed by the sleep's end), so its
/// first look must see the reply rather than wait for a wake that already happened. Mixed with
/// ordinary calls, so that the spare waker is its own.
#[test]
fn test_reply_landing_before_the_first_look_is_taken() {
    for seed in 1..=5 {
        let mut world = world(seed);
        let done = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&done);
        world
            .add_workload("client", "10.0.0.2", move |p: SimProviders| async move {
                p.time().sleep(Duration::from_millis(1)).await;
                let transport = NetTransportBuilder::new(p.clone()).build().unwrap();
                let rpc = rpc(&transport);
                for n in 0..200u64 {
                    if n % 2 == 0 {
                        assert_eq!(rpc.get_reply(&n).await.unwrap(), n + 1);
                    } else {
                        let reply = rpc.get_reply(&n);
                        p.time().sleep(Duration::from_millis(10)).await;
                        assert_eq!(reply.await.unwrap(), n + 1);
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
            .unwrap();
        world.run().unwrap();
        assert_eq!(done.load(Ordering::Relaxed), 200, "seed {seed}");
    }
}

/// Three tasks calling through one transport, interleaved, some futures dropped before their
/// first look and some after it: every call that is awaited gets its reply, and nothing is left
/// waiting in the transport.
#[test]
fn test_callers_in_several_tasks_share_one_transport() {
    for seed in 1..=5 {
        let mut world = world(seed);
        let done = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&done);
        world
            .add_workload("client", "10.0.0.2", move |p: SimProviders| async move {
                p.time().sleep(Duration::from_millis(1)).await;
                let transport = NetTransportBuilder::new(p.clone()).build().unwrap();
                let mut tasks = Vec::new();
                for t in 0..3u64 {
                    let rpc = rpc(&transport);
                    let p = p.clone();
                    let count = Arc::clone(&count);
                    tasks.push(p.clone().task().spawn("caller", async move {
                        for n in 0..100u64 {
                            let value = t * 1_000 + n;
                            match n % 5 {
                                // Dropped before its first look.
                                0 => drop(rpc.get_reply(&value)),
                                // Dropped after one look that found nothing yet.
                                1 => {
                                    let mut reply = rpc.get_reply(&value);
                                    assert!(poll_once(&mut reply).await.is_pending());
                                    drop(reply);
                                }
                                _ => {
                                    assert_eq!(rpc.get_reply(&value).await.unwrap(), value + 1);
                                    count.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            if n % 7 == 0 {
                                p.time().sleep(Duration::from_micros(300 * (t + 1))).await;
                            }
                        }
                    }));
                }
                for task in tasks {
                    task.await.unwrap();
                }
                assert_eq!(transport.metrics().pending_replies, 0);
            })
            .unwrap();
        world.run().unwrap();
        assert_eq!(done.load(Ordering::Relaxed), 3 * 60, "seed {seed}");
    }
}

fn loopback() -> NetworkAddress {
    "127.0.0.1:0".parse().unwrap()
}

/// The same on a 2-worker Tokio runtime over real TCP: four tasks share one client transport,
/// some waiting past their reply before their first look, so wakes, first looks and direct
/// writes race across threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_callers_on_several_threads_share_one_transport() {
    let providers = TokioProviders::new();
    let server = NetTransportBuilder::new(providers.clone())
        .local_address(loopback())
        .build_listening()
        .await
        .unwrap();
    let stream = server.register_stream::<u64, u64>().unwrap();
    let endpoint = stream.endpoint();
    tokio::spawn(async move {
        while let Some((request, reply)) = stream.recv().await {
            reply.send(request + 1);
        }
    });
    let client = NetTransportBuilder::new(providers).build().unwrap();
    let mut tasks = Vec::new();
    for t in 0..4u64 {
        let rpc = client.client::<u64, u64>(endpoint);
        tasks.push(tokio::spawn(async move {
            for n in 0..500u64 {
                let value = t * 10_000 + n;
                let reply = rpc.get_reply(&value);
                if n % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                assert_eq!(reply.await.unwrap(), value + 1);
            }
        }));
    }
    tokio::time::timeout(Duration::from_secs(30), async {
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await
    .expect("a caller was never woken");
    assert_eq!(client.metrics().pending_replies, 0);
}
