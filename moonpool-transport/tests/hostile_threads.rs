//! Hostile use of the transport on a 4-worker Tokio runtime over real loopback TCP: many callers
//! against one server with bodies of every length from 0 to 600 bytes (across the checksum's
//! short path and its 256-byte boundary), reply futures dropped at random points, and server
//! restarts under load, queues fed and dropped from several threads; and, in a simulation, the
//! same bodies through a network that flips bits. Every wait is bounded: a hang fails the test
//! at its timeout.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use moonpool_core::{
    BinaryCodec, Endpoint, JsonCodec, MessageCodec, NetworkAddress, TokioProviders, UID,
};
use moonpool_transport::{NetTransport, NetTransportBuilder, RequestClient};

const TOKEN: UID = UID::well_known(7);

/// A small deterministic generator (each test's sequence from its own seed).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn body(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = XorShift(seed | 1);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// A listening transport at `address` echoing `Vec<u8>` requests at `TOKEN`.
async fn echo_server<C: MessageCodec>(address: NetworkAddress, codec: C) -> NetTransport<C> {
    let transport = NetTransportBuilder::new(TokioProviders::new())
        .codec(codec)
        .local_address(address)
        .build_listening()
        .await
        .unwrap();
    let stream = transport
        .register_stream_at::<Vec<u8>, Vec<u8>>(TOKEN)
        .unwrap();
    tokio::spawn(async move {
        while let Some((request, reply)) = stream.recv().await {
            reply.send(request);
        }
    });
    transport
}

fn loopback() -> NetworkAddress {
    "127.0.0.1:0".parse().unwrap()
}

/// Polls `future` once from the calling task.
async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
}

async fn every_length<C: MessageCodec + Clone>(codec: C, callers: u64) {
    let server = echo_server(loopback(), codec.clone()).await;
    let address = server.local_address().unwrap();
    let client = NetTransportBuilder::new(TokioProviders::new())
        .codec(codec)
        .build()
        .unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for caller in 0..callers {
        let rpc: RequestClient<Vec<u8>, Vec<u8>, C> = client.client(Endpoint::new(address, TOKEN));
        let done = Arc::clone(&done);
        tasks.push(tokio::spawn(async move {
            let mut rng = XorShift(caller * 7919 + 13);
            // Every length once, in an order of the caller's own, several in flight.
            let mut lengths: Vec<usize> = (0..=600).collect();
            for i in (1..lengths.len()).rev() {
                lengths.swap(i, rng.below(i as u64 + 1) as usize);
            }
            for chunk in lengths.chunks(5) {
                let requests: Vec<Vec<u8>> = chunk
                    .iter()
                    .map(|&len| body(caller << 32 | len as u64, len))
                    .collect();
                let replies: Vec<_> = requests.iter().map(|r| rpc.get_reply(r)).collect();
                for (request, reply) in requests.iter().zip(replies) {
                    let got = reply.await.unwrap();
                    assert_eq!(&got, request, "caller {caller}: length {}", request.len());
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::timeout(Duration::from_secs(60), async {
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await
    .expect("a caller hung");
    assert_eq!(done.load(Ordering::Relaxed), callers * 601);
    assert_eq!(client.metrics().pending_replies, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_bodies_of_every_length_binary_on_four_workers() {
    every_length(BinaryCodec, 12).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_bodies_of_every_length_json_on_four_workers() {
    every_length(JsonCodec, 3).await;
}

/// Callers dropping reply futures before, between and after polls, with awaited calls mixed in;
/// at the end nothing is left pending and every awaited call got its own reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_reply_futures_dropped_at_random_points_on_four_workers() {
    let server = echo_server(loopback(), BinaryCodec).await;
    let address = server.local_address().unwrap();
    let client = NetTransportBuilder::new(TokioProviders::new())
        .codec(BinaryCodec)
        .build()
        .unwrap();
    let awaited = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for caller in 0..16u64 {
        let rpc: RequestClient<Vec<u8>, Vec<u8>, BinaryCodec> =
            client.client(Endpoint::new(address, TOKEN));
        let awaited = Arc::clone(&awaited);
        tasks.push(tokio::spawn(async move {
            let mut rng = XorShift(caller * 104_729 + 1);
            for n in 0..400u64 {
                let len = rng.below(600) as usize;
                let request = body(caller << 40 | n, len);
                let mut reply = rpc.get_reply(&request);
                match rng.below(6) {
                    0 => drop(reply),
                    1 => {
                        let _ = poll_once(&mut reply).await;
                        drop(reply);
                    }
                    2 => {
                        tokio::task::yield_now().await;
                        let _ = poll_once(&mut reply).await;
                        tokio::task::yield_now().await;
                        drop(reply);
                    }
                    3 => {
                        // Dropped at a random moment, maybe after the reply arrived.
                        let wait = Duration::from_micros(rng.below(300));
                        let _ = tokio::time::timeout(wait, &mut reply).await;
                        drop(reply);
                    }
                    _ => {
                        let got = reply.await.unwrap();
                        assert_eq!(got, request, "caller {caller} call {n}");
                        awaited.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    tokio::time::timeout(Duration::from_secs(60), async {
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await
    .expect("a caller hung");
    assert!(awaited.load(Ordering::Relaxed) > 16 * 400 / 6);
    // Dropped calls' entries go away (their replies may still be arriving: wait a moment).
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if client.metrics().pending_replies == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        drained.is_ok(),
        "pending replies left: {}",
        client.metrics().pending_replies
    );
}

/// Callers keep calling while the server is shut down and rebuilt at the same address five
/// times. Calls may fail while it is down, but none may hang, and after the last restart every
/// caller's calls succeed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_server_restarts_under_load_on_four_workers() {
    let first = echo_server(loopback(), BinaryCodec).await;
    let address = first.local_address().unwrap();
    let client = NetTransportBuilder::new(TokioProviders::new())
        .codec(BinaryCodec)
        .build()
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let hung = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for caller in 0..8u64 {
        let rpc: RequestClient<Vec<u8>, Vec<u8>, BinaryCodec> =
            client.client(Endpoint::new(address, TOKEN));
        let (stop, ok, failed, hung) = (
            Arc::clone(&stop),
            Arc::clone(&ok),
            Arc::clone(&failed),
            Arc::clone(&hung),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = XorShift(caller + 99);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let request = body(caller << 40 | n, rng.below(600) as usize);
                match tokio::time::timeout(Duration::from_secs(20), rpc.get_reply(&request)).await {
                    Ok(Ok(got)) => {
                        assert_eq!(got, request);
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(_)) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err(_) => {
                        hung.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let mut server = first;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        server.shutdown();
        drop(server);
        tokio::time::sleep(Duration::from_millis(10)).await;
        // The port may take a moment to be free again.
        let mut attempt = 0;
        server = loop {
            let built = NetTransportBuilder::new(TokioProviders::new())
                .codec(BinaryCodec)
                .local_address(address)
                .build_listening()
                .await;
            match built {
                Ok(transport) => {
                    let stream = transport
                        .register_stream_at::<Vec<u8>, Vec<u8>>(TOKEN)
                        .unwrap();
                    tokio::spawn(async move {
                        while let Some((request, reply)) = stream.recv().await {
                            reply.send(request);
                        }
                    });
                    break transport;
                }
                Err(error) => {
                    attempt += 1;
                    assert!(attempt < 200, "the server's address stays taken: {error}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
    }
    // After the last restart: each caller gets replies again.
    let before = ok.load(Ordering::Relaxed);
    let recovered = tokio::time::timeout(Duration::from_secs(30), async {
        while ok.load(Ordering::Relaxed) < before + 200 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await;
    assert!(
        recovered.is_ok(),
        "no replies after the last restart: ok {} failed {} hung {}",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        hung.load(Ordering::Relaxed)
    );
    assert!(ended.is_ok(), "a caller hung past its own timeouts");
    eprintln!(
        "restarts: ok {} failed {} hung {}",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        hung.load(Ordering::Relaxed)
    );
    assert_eq!(
        hung.load(Ordering::Relaxed),
        0,
        "calls that waited 20 s (ok {}, failed {})",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
}

/// Many client transports (one per caller, each its own peer and connection) against one
/// server: connections set up and torn down concurrently on four workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_many_client_transports_connect_and_leave_on_four_workers() {
    let server = echo_server(loopback(), BinaryCodec).await;
    let address = server.local_address().unwrap();
    let mut tasks = Vec::new();
    for caller in 0..24u64 {
        tasks.push(tokio::spawn(async move {
            for round in 0..5u64 {
                let client = NetTransportBuilder::new(TokioProviders::new())
                    .codec(BinaryCodec)
                    .build()
                    .unwrap();
                let rpc: RequestClient<Vec<u8>, Vec<u8>, BinaryCodec> =
                    client.client(Endpoint::new(address, TOKEN));
                for n in 0..10u64 {
                    let len = ((caller * 31 + round * 7 + n * 53) % 601) as usize;
                    let request = body(caller << 40 | round << 20 | n, len);
                    assert_eq!(rpc.get_reply(&request).await.unwrap(), request);
                }
                if round % 2 == 0 {
                    client.shutdown();
                }
                drop(client);
            }
        }));
    }
    tokio::time::timeout(Duration::from_secs(60), async {
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await
    .expect("a caller hung");
    assert!(server.check_invariants().is_ok());
}

/// Eight tasks on four workers send reliably to one queue through one client transport; the
/// receiver gets every message, each sender's in its send order, with bodies of every length.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_queue_senders_on_four_workers_arrive_in_order() {
    let server = NetTransportBuilder::new(TokioProviders::new())
        .codec(BinaryCodec)
        .local_address(loopback())
        .build_listening()
        .await
        .unwrap();
    let queue = server.register_queue::<(u64, u64, Vec<u8>)>().unwrap();
    let endpoint = queue.endpoint();
    let client = Arc::new(
        NetTransportBuilder::new(TokioProviders::new())
            .codec(BinaryCodec)
            .build()
            .unwrap(),
    );
    const SENDERS: u64 = 8;
    const EACH: u64 = 700;
    let mut tasks = Vec::new();
    for sender in 0..SENDERS {
        let client = Arc::clone(&client);
        tasks.push(tokio::spawn(async move {
            for n in 0..EACH {
                let len = ((n * 37 + sender) % 601) as usize;
                client
                    .send_reliable(&endpoint, &(sender, n, body(sender << 32 | n, len)))
                    .unwrap();
                if n.is_multiple_of(64) {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    let received = tokio::time::timeout(Duration::from_secs(60), async {
        let mut next = vec![0u64; SENDERS as usize];
        let mut count = 0;
        while count < SENDERS * EACH {
            let (sender, n, bytes) = queue.recv().await.expect("the queue closed");
            let expected = next[sender as usize];
            // Reliable messages may repeat after a reconnection, never go backwards past one.
            assert!(n <= expected, "sender {sender}: {n} after {expected}");
            if n == expected {
                let len = ((n * 37 + sender) % 601) as usize;
                assert_eq!(
                    bytes,
                    body(sender << 32 | n, len),
                    "sender {sender} message {n}"
                );
                next[sender as usize] += 1;
                count += 1;
            }
        }
        count
    })
    .await
    .expect("messages never arrived");
    assert_eq!(received, SENDERS * EACH);
    for task in tasks {
        task.await.unwrap();
    }
}

/// A queue dropped while senders on other threads keep sending to it, then registered again at
/// the same token: no hang, no panic, and the new queue receives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_queue_dropped_under_senders_and_registered_again() {
    let server = NetTransportBuilder::new(TokioProviders::new())
        .codec(BinaryCodec)
        .local_address(loopback())
        .build_listening()
        .await
        .unwrap();
    let address = server.local_address().unwrap();
    let token = UID::well_known(9);
    let endpoint = Endpoint::new(address, token);
    let client = Arc::new(
        NetTransportBuilder::new(TokioProviders::new())
            .codec(BinaryCodec)
            .build()
            .unwrap(),
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for sender in 0..4u64 {
        let (client, stop) = (Arc::clone(&client), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let _ = client.send_unreliable(&endpoint, &(sender, n));
                if n.is_multiple_of(16) {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for round in 0..20 {
        let queue = server.register_queue_at::<(u64, u64)>(token).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            for _ in 0..50 {
                queue.recv().await.expect("closed");
            }
        })
        .await;
        assert!(got.is_ok(), "round {round}: the queue received nothing");
        // Dropped with a waiter's waker left behind and messages arriving.
        let waiting = tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_millis(1), queue.recv()).await;
            drop(queue);
        });
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("dropping the queue hung")
            .unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    tokio::time::timeout(Duration::from_secs(10), async {
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await
    .expect("a sender hung");
}

/// A server that drops some promises, answers some from another task after a wait and some at
/// once, on four workers: every call ends (a broken promise is an error, not a hang).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_promises_dropped_delayed_and_direct_on_four_workers() {
    let server = NetTransportBuilder::new(TokioProviders::new())
        .codec(BinaryCodec)
        .local_address(loopback())
        .build_listening()
        .await
        .unwrap();
    let stream = server
        .register_stream_at::<Vec<u8>, Vec<u8>>(TOKEN)
        .unwrap();
    tokio::spawn(async move {
        while let Some((request, reply)) = stream.recv().await {
            match request.len() % 3 {
                0 => drop(reply),
                1 => {
                    drop(tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_micros(200)).await;
                        reply.send(request);
                    }));
                }
                _ => {
                    let _ = reply.send(request);
                }
            }
        }
    });
    let address = server.local_address().unwrap();
    let client = NetTransportBuilder::new(TokioProviders::new())
        .codec(BinaryCodec)
        .build()
        .unwrap();
    let broken = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for caller in 0..8u64 {
        let rpc: RequestClient<Vec<u8>, Vec<u8>, BinaryCodec> =
            client.client(Endpoint::new(address, TOKEN));
        let broken = Arc::clone(&broken);
        tasks.push(tokio::spawn(async move {
            for n in 0..300u64 {
                let len = ((caller * 301 + n * 7) % 601) as usize;
                let request = body(caller << 32 | n, len);
                match rpc.get_reply(&request).await {
                    Ok(got) => {
                        assert_ne!(len % 3, 0, "a dropped promise answered");
                        assert_eq!(got, request);
                    }
                    Err(error) => {
                        assert_eq!(len % 3, 0, "length {len}: {error}");
                        broken.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    tokio::time::timeout(Duration::from_secs(60), async {
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await
    .expect("a caller hung");
    assert!(broken.load(Ordering::Relaxed) > 0);
    assert_eq!(client.metrics().pending_replies, 0);
}

// ---------------------------------------------------------------------------------------------
// The same bodies in a simulation whose network flips bits: the checksum (short path up to 256
// bytes, the crate beyond) must catch every flip, so no caller ever gets a wrong reply.

/// Echo calls of every length 0..=600 through a network that flips bits often; returns the
/// calls answered correctly and those that failed (never a wrong answer: that panics).
fn flipped_bits_run(seed: u64) -> (u64, u64) {
    use moonpool_core::{Providers, TimeProvider};
    use moonpool_sim::{Locality, NetworkConfiguration, SimProviders, SimWorld, WorldConfig};
    let mut config = WorldConfig::quiet();
    config.network = NetworkConfiguration::with_fixed_latency(Duration::from_micros(200));
    config.network.bit_flip_probability = 0.05;
    config.network.bit_flip_cooldown = Duration::ZERO;
    config.time_budget = Duration::from_secs(36_000);
    let mut world = SimWorld::with_config(seed, config).unwrap();
    let address: NetworkAddress = "10.0.0.1:4600".parse().unwrap();
    world
        .add_process(
            "server",
            "10.0.0.1",
            Locality::default(),
            move |ctx| async move {
                let providers = ctx.providers;
                let transport = NetTransportBuilder::new(providers.clone())
                    .codec(BinaryCodec)
                    .local_address(address)
                    .build_listening()
                    .await
                    .unwrap();
                let stream = transport
                    .register_stream_at::<Vec<u8>, Vec<u8>>(TOKEN)
                    .unwrap();
                while let Some((request, reply)) = stream.recv().await {
                    let _ = reply.send(request);
                }
            },
        )
        .unwrap();
    let counts = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let out = Arc::clone(&counts);
    world
        .add_workload("client", "10.0.0.2", move |p: SimProviders| async move {
            p.time().sleep(Duration::from_millis(1)).await;
            let transport = NetTransportBuilder::new(p.clone())
                .codec(BinaryCodec)
                .build()
                .unwrap();
            let rpc: RequestClient<Vec<u8>, Vec<u8>, BinaryCodec> =
                transport.client(Endpoint::new(address, TOKEN));
            for len in 0..=600usize {
                let request = body(seed << 32 | len as u64, len);
                let answer = p
                    .time()
                    .timeout(Duration::from_secs(30), rpc.get_reply(&request))
                    .await;
                match answer {
                    Ok(Ok(got)) => {
                        assert_eq!(got, request, "seed {seed}: a wrong reply of length {len}");
                        out.0.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        out.1.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
        .unwrap();
    let summary = world.run().unwrap();
    let flips: u64 = summary
        .faults
        .iter()
        .filter(|(k, _)| k.contains("bit_flip"))
        .map(|(_, n)| *n)
        .sum();
    assert!(
        flips >= 10,
        "seed {seed}: {flips} bits flipped: {:?}",
        summary.faults
    );
    eprintln!("seed {seed}: {flips} bit flips");
    (
        counts.0.load(Ordering::Relaxed),
        counts.1.load(Ordering::Relaxed),
    )
}

#[test]
fn test_sim_bodies_of_every_length_under_bit_flips_never_answer_wrong() {
    let mut answered = 0;
    for seed in 1..=2 {
        let (ok, failed) = flipped_bits_run(seed);
        assert_eq!(ok + failed, 601);
        eprintln!("seed {seed}: {ok} answered, {failed} failed");
        answered += ok;
    }
    assert!(answered > 0);
}
