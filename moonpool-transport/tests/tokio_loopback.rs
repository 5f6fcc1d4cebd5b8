//! Real TCP on 127.0.0.1 with Tokio: request/reply, each delivery mode and its failure paths,
//! local delivery, bounds, abandonment, and connection teardown on a checksum mismatch.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::time::Duration;

use moonpool_core::{Endpoint, NetworkAddress, TokioProviders, UID};
use moonpool_transport::protocol::{CONTROL_TOKEN, Hello, encode_hello};
use moonpool_transport::wire::encode_frame;
use moonpool_transport::{
    NetTransport, NetTransportBuilder, ReplyError, RequestStream, TransportConfig, TransportError,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Echo {
    n: u64,
    text: String,
}

fn echo(n: u64) -> Echo {
    Echo {
        n,
        text: format!("hello {n}"),
    }
}

fn loopback() -> NetworkAddress {
    "127.0.0.1:0".parse().unwrap()
}

/// Fails the test instead of hanging it.
async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("the test hung")
}

async fn listening(address: NetworkAddress, config: TransportConfig) -> NetTransport {
    NetTransportBuilder::new(TokioProviders::new())
        .local_address(address)
        .config(config)
        .build_listening()
        .await
        .unwrap()
}

async fn server() -> (NetTransport, RequestStream<Echo, Echo>) {
    let transport = listening(loopback(), TransportConfig::default()).await;
    let stream = transport.register_stream::<Echo, Echo>().unwrap();
    (transport, stream)
}

fn client() -> NetTransport {
    client_with(TransportConfig::default())
}

fn client_with(config: TransportConfig) -> NetTransport {
    NetTransportBuilder::new(TokioProviders::new())
        .config(config)
        .build()
        .unwrap()
}

fn serve(stream: RequestStream<Echo, Echo>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut served = 0;
        while let Some((request, reply)) = stream.recv().await {
            served += 1;
            reply.send(request);
        }
        served
    })
}

/// Waits until `condition` holds (polling), or fails.
async fn eventually(mut condition: impl FnMut() -> bool) {
    within(async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_get_reply_round_trips_and_exact_metrics() {
    let (server_transport, stream) = server().await;
    let endpoint = stream.endpoint();
    let _server = serve(stream);
    let client = client();
    let rpc = client.client::<Echo, Echo>(endpoint);
    for n in 0..100 {
        assert_eq!(within(rpc.get_reply(&echo(n))).await.unwrap(), echo(n));
    }
    // Polled again after returning its reply, a future stays pending (it does not panic).
    let mut future = rpc.get_reply(&echo(100));
    assert_eq!(within(&mut future).await.unwrap(), echo(100));
    assert!(futures::FutureExt::now_or_never(&mut future).is_none());
    let metrics = client.metrics();
    assert_eq!(metrics.pending_replies, 0);
    assert_eq!(metrics.peers, 1);
    let peer = &metrics.peer_metrics[0];
    assert_eq!(peer.reliable_sent, 101);
    assert_eq!(
        peer.reliable_cancelled, 101,
        "answered requests are released"
    );
    assert_eq!(peer.reliable_queue_len, 0);
    assert_eq!(peer.queued_bytes, 0);
    assert_eq!(peer.connections_established, 1);
    // Every reply came in over the connection (each reader counts into its own slot). A
    // reader counts a delivery just after handing the packet on, so on this multi-threaded
    // runtime the caller may hold its reply a moment before the count says so: wait for it
    // (5 s at most), then the count is exact.
    let mut waited = 0;
    while (client.metrics().remote_deliveries < 101
        || server_transport.metrics().remote_deliveries < 101)
        && waited < 5_000
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
        waited += 1;
    }
    let metrics = client.metrics();
    assert_eq!(metrics.remote_deliveries, 101, "{metrics:?}");
    assert!(server_transport.metrics().remote_deliveries >= 101);
    client.check_invariants().unwrap();
    server_transport.check_invariants().unwrap();
    assert_eq!(server_transport.metrics().incoming_connections, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_64_requests_in_flight() {
    let (_server_transport, stream) = server().await;
    let endpoint = stream.endpoint();
    let _server = serve(stream);
    let client = client();
    let rpc = client.client::<Echo, Echo>(endpoint);
    let futures: Vec<_> = (0..64).map(|n| rpc.get_reply(&echo(n))).collect();
    // Some replies may be back already (the first request is written at once).
    assert!(client.metrics().pending_replies <= 64);
    for (n, future) in futures.into_iter().enumerate() {
        assert_eq!(within(future).await.unwrap(), echo(n as u64));
    }
    assert_eq!(client.metrics().pending_replies, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_try_get_reply_send_ping_and_unless_failed_for() {
    let (server_transport, stream) = server().await;
    let endpoint = stream.endpoint();
    let server = serve(stream);
    let client = client();
    let rpc = client.client::<Echo, Echo>(endpoint);
    assert_eq!(within(rpc.try_get_reply(&echo(1))).await.unwrap(), echo(1));
    rpc.send(&echo(2)).unwrap();
    within(client.ping(server_transport.local_address().unwrap()))
        .await
        .unwrap();
    assert_eq!(
        within(rpc.get_reply_unless_failed_for(&echo(3), Duration::from_secs(1)))
            .await
            .unwrap(),
        echo(3)
    );
    // The fire-and-forget request was served too (the ping went to the built-in endpoint).
    // Shutting the transport down ends the stream.
    server_transport.shutdown();
    let served = within(server).await.unwrap();
    assert_eq!(served, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_broken_promise_and_endpoint_not_found() {
    let (server_transport, stream) = server().await;
    let endpoint = stream.endpoint();
    tokio::spawn(async move {
        while let Some((_request, reply)) = stream.recv().await {
            drop(reply);
        }
    });
    let client = client();
    let rpc = client.client::<Echo, Echo>(endpoint);
    assert_eq!(
        within(rpc.get_reply(&echo(1))).await,
        Err(ReplyError::BrokenPromise { endpoint })
    );
    let missing = Endpoint::new(server_transport.local_address().unwrap(), UID::new(42, 42));
    let ghost = client.client::<Echo, Echo>(missing);
    assert_eq!(
        within(ghost.get_reply(&echo(2))).await,
        Err(ReplyError::EndpointNotFound { endpoint: missing })
    );
    // Now known: the next call fails at once, without a round trip.
    assert!(client.failure_monitor().is_endpoint_failed(&missing));
    let sent_before = server_transport.metrics().endpoint_not_found_sent;
    assert_eq!(
        within(ghost.try_get_reply(&echo(3))).await,
        Err(ReplyError::EndpointNotFound { endpoint: missing })
    );
    assert_eq!(
        server_transport.metrics().endpoint_not_found_sent,
        sent_before
    );
    assert_eq!(client.metrics().pending_replies, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_try_get_reply_is_maybe_delivered_when_the_server_dies_mid_request() {
    let (server_transport, stream) = server().await;
    let endpoint = stream.endpoint();
    let (received_tx, received_rx) = tokio::sync::oneshot::channel();
    let holder = tokio::spawn(async move {
        // Receive the request, keep its promise, and let the transport die under it.
        let (request, reply) = stream.recv().await.unwrap();
        let _ = received_tx.send(request);
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(reply);
    });
    let client = client();
    let rpc = client.client::<Echo, Echo>(endpoint);
    let pending = rpc.try_get_reply(&echo(7));
    let request = within(received_rx).await.unwrap();
    assert_eq!(request, echo(7));
    holder.abort();
    server_transport.shutdown();
    let result = within(pending).await;
    assert!(
        matches!(result, Err(ReplyError::MaybeDelivered { address }) if address == endpoint.address)
            || matches!(result, Err(ReplyError::BrokenPromise { .. })),
        "{result:?}"
    );
    assert_eq!(client.metrics().pending_replies, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_failed_when_nothing_listens() {
    // Bind and drop a listener to get a free port with nothing behind it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let address: NetworkAddress = format!("127.0.0.1:{port}").parse().unwrap();
    let client = client();
    let rpc = client.client::<Echo, Echo>(Endpoint::new(address, UID::new(1, 1)));
    assert_eq!(
        within(rpc.try_get_reply(&echo(1))).await,
        Err(ReplyError::ConnectionFailed { address })
    );
    assert_eq!(
        within(rpc.get_reply_unless_failed_for(&echo(2), Duration::from_millis(200))).await,
        Err(ReplyError::ConnectionFailed { address })
    );
    assert!(client.failure_monitor().is_failed(&address));
    // get_reply does not give up on its own: bound it with a timeout.
    let result = within(rpc.get_reply(&echo(3)).timeout(Duration::from_millis(200))).await;
    assert_eq!(
        result,
        Err(ReplyError::Timeout {
            duration: Duration::from_millis(200)
        })
    );
    let metrics = client.metrics();
    assert_eq!(metrics.pending_replies, 0);
    assert_eq!(metrics.peer_metrics[0].reliable_queue_len, 0);
    assert!(metrics.peer_metrics[0].connection_failures >= 1);
    client.check_invariants().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_get_reply_is_resent_to_a_restarted_server() {
    // First server: takes the request and dies without answering.
    let first = listening(loopback(), TransportConfig::default()).await;
    let address = first.local_address().unwrap();
    let token = UID::well_known(20);
    let stream = first.register_stream_at::<Echo, Echo>(token).unwrap();
    let client = client();
    let rpc = client.client::<Echo, Echo>(Endpoint::new(address, token));
    let pending = tokio::spawn(rpc.get_reply(&echo(9)));
    let (request, reply) = within(stream.recv()).await.unwrap();
    assert_eq!(request, echo(9));
    std::mem::forget(reply); // Never answered, not even a broken promise.
    first.shutdown();
    drop(stream);
    drop(first);
    // A new instance on the same address gets the request again and answers. (The old
    // listener closes when its aborted task is dropped, which may take a moment.)
    let second = within(async {
        loop {
            match NetTransportBuilder::new(TokioProviders::new())
                .local_address(address)
                .build_listening()
                .await
            {
                Ok(transport) => return transport,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await;
    let stream = second.register_stream_at::<Echo, Echo>(token).unwrap();
    let _server = serve(stream);
    assert_eq!(within(pending).await.unwrap().unwrap(), echo(9));
    let peer = &client.metrics().peer_metrics[0];
    assert!(peer.reliable_resent >= 1, "{peer:?}");
    assert_eq!(peer.connections_established, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_local_delivery_skips_the_network() {
    let (transport, stream) = server().await;
    let local = stream.client();
    let endpoint = stream.endpoint();
    let _server = serve(stream);
    assert_eq!(within(local.get_reply(&echo(1))).await.unwrap(), echo(1));
    assert_eq!(
        within(local.try_get_reply(&echo(2))).await.unwrap(),
        echo(2)
    );
    local.send(&echo(3)).unwrap();
    let ghost = Endpoint::new(endpoint.address, UID::new(5, 5));
    assert_eq!(
        within(transport.client::<Echo, Echo>(ghost).get_reply(&echo(4))).await,
        Err(ReplyError::EndpointNotFound { endpoint: ghost })
    );
    within(transport.ping(endpoint.address)).await.unwrap();
    let metrics = transport.metrics();
    assert_eq!(metrics.peers, 0, "no connection to itself");
    assert!(metrics.local_deliveries >= 4, "{metrics:?}");
    assert_eq!(metrics.pending_replies, 0);
    // A client-only transport delivers to its own (unaddressed) endpoints locally too.
    let client = client();
    let queue = client.register_queue::<Echo>().unwrap();
    client.send_reliable(&queue.endpoint(), &echo(6)).unwrap();
    assert_eq!(queue.try_recv(), Some(echo(6)));
    assert_eq!(client.metrics().peers, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_abandoned_and_timed_out_requests_release_everything() {
    let (_server_transport, stream) = server().await;
    let endpoint = stream.endpoint();
    // A server that never answers (and never drops the promises).
    let _holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(request) = stream.recv().await {
            held.push(request);
        }
    });
    let client = client();
    let rpc = client.client::<Echo, Echo>(endpoint);
    let futures: Vec<_> = (0..10).map(|n| rpc.get_reply(&echo(n))).collect();
    assert_eq!(client.metrics().pending_replies, 10);
    drop(futures);
    assert_eq!(client.metrics().pending_replies, 0);
    assert_eq!(client.metrics().peer_metrics[0].reliable_queue_len, 0);
    let result = within(
        rpc.try_get_reply(&echo(11))
            .timeout(Duration::from_millis(50)),
    )
    .await;
    assert!(matches!(result, Err(ReplyError::Timeout { .. })));
    assert_eq!(client.metrics().pending_replies, 0);
    client.check_invariants().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_bounds_are_typed_errors() {
    let config = {
        let mut cfg = TransportConfig::default();
        cfg.pending_replies_max = 4;
        cfg.endpoints_max = 2;
        cfg.receive_queue_max = 1;
        cfg
    };
    let transport = listening(loopback(), config.clone()).await;
    // Endpoints.
    let a = transport.register_stream::<Echo, Echo>().unwrap();
    let _b = transport.register_queue::<Echo>().unwrap();
    assert!(matches!(
        transport.register_stream::<Echo, Echo>(),
        Err(TransportError::TooManyEndpoints { bound: 2 })
    ));
    // Receive queue: the second request finds the stream full.
    let client = client_with(config);
    let rpc = client.client::<Echo, Echo>(a.endpoint());
    let first = rpc.get_reply(&echo(1));
    let second = rpc.get_reply(&echo(2));
    assert_eq!(
        within(second).await,
        Err(ReplyError::Overloaded {
            endpoint: a.endpoint()
        })
    );
    // Pending replies: requests to an address where nothing listens stay pending (get_reply
    // waits for the destination to come back).
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dead: NetworkAddress = format!("127.0.0.1:{port}").parse().unwrap();
    let nowhere = client.client::<Echo, Echo>(Endpoint::new(dead, UID::new(1, 1)));
    let more: Vec<_> = (0..3).map(|n| nowhere.get_reply(&echo(n))).collect();
    assert_eq!(client.metrics().pending_replies, 4);
    assert_eq!(
        within(nowhere.get_reply(&echo(9))).await,
        Err(ReplyError::BoundExceeded {
            bound: "pending_replies_max",
            limit: 4
        })
    );
    drop(more);
    let (request, reply) = within(a.recv()).await.unwrap();
    reply.send(request);
    assert_eq!(within(first).await.unwrap(), echo(1));
    client.check_invariants().unwrap();
    transport.check_invariants().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reliable_messages_are_delivered_and_acknowledged() {
    let transport = listening(loopback(), TransportConfig::default()).await;
    let queue = transport.register_queue::<Echo>().unwrap();
    let client = client();
    for n in 0..200 {
        client.send_reliable(&queue.endpoint(), &echo(n)).unwrap();
    }
    for n in 0..200 {
        assert_eq!(within(queue.recv()).await.unwrap(), echo(n));
    }
    // Acknowledgements release the packets (at the latest on the next ping interval). The
    // connection's monitor queues its 48-byte ping on the same peer every interval, so the
    // queued bytes are looked at in the same snapshot, once that ping is written too.
    eventually(|| {
        let peer = &client.metrics().peer_metrics[0];
        peer.reliable_queue_len == 0 && peer.queued_bytes == 0
    })
    .await;
    let peer = &client.metrics().peer_metrics[0];
    assert_eq!(peer.reliable_acked, 200);
    client
        .send_unreliable(&queue.endpoint(), &echo(999))
        .unwrap();
    assert_eq!(within(queue.recv()).await.unwrap(), echo(999));
    assert_eq!(queue.stats().received, 201);
}

async fn raw_hello(stream: &mut tokio::net::TcpStream) {
    let hello = encode_hello(&Hello {
        instance: UID::new(1, 2),
        listen_address: None,
    });
    let frame = encode_frame(CONTROL_TOKEN, &hello, 1 << 20).unwrap();
    stream.write_all(&frame).await.unwrap();
}

/// Reads until the server closes the connection; true if it did.
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> bool {
    let mut buffer = [0u8; 4096];
    within(async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_checksum_mismatch_and_garbage_tear_the_connection_down() {
    let (transport, stream) = server().await;
    let endpoint = stream.endpoint();
    let _server = serve(stream);
    let address = transport.local_address().unwrap().socket_addr();
    // A valid Hello, then a packet with one flipped bit.
    let mut raw = tokio::net::TcpStream::connect(address).await.unwrap();
    raw_hello(&mut raw).await;
    let mut frame = encode_frame(endpoint.token, b"{\"n\":1,\"text\":\"x\"}", 1 << 20).unwrap();
    let last = frame.len() - 1;
    frame[last] ^= 0x10;
    raw.write_all(&frame).await.unwrap();
    assert!(closed_by_server(&mut raw).await);
    // No Hello at all.
    let mut raw = tokio::net::TcpStream::connect(address).await.unwrap();
    raw.write_all(&encode_frame(endpoint.token, b"{}", 1 << 20).unwrap())
        .await
        .unwrap();
    assert!(closed_by_server(&mut raw).await);
    // Garbage.
    let mut raw = tokio::net::TcpStream::connect(address).await.unwrap();
    raw.write_all(&[0xFF; 64]).await.unwrap();
    assert!(closed_by_server(&mut raw).await);
    // The server still serves well-behaved clients.
    let client = client();
    let rpc = client.client::<Echo, Echo>(endpoint);
    assert_eq!(within(rpc.get_reply(&echo(5))).await.unwrap(), echo(5));
    eventually(|| transport.metrics().incoming_connections == 1).await;
}

/// A value JSON cannot encode: maps with non-string keys are not JSON objects.
type Unencodable = std::collections::BTreeMap<Vec<u8>, u8>;

fn unencodable() -> Unencodable {
    Unencodable::from([(vec![1], 2)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_requests_and_replies_that_cannot_be_encoded_are_typed_errors() {
    let server_transport = listening(loopback(), TransportConfig::default()).await;
    // The server decodes a u64 and answers with a value that cannot be encoded.
    let stream = server_transport
        .register_stream::<u64, Unencodable>()
        .unwrap();
    let endpoint = stream.endpoint();
    tokio::spawn(async move {
        while let Some((_, reply)) = stream.recv().await {
            reply.send(unencodable());
        }
    });
    let client = client();

    // A request that cannot be encoded fails at once and registers nothing.
    let bad_request = client.client::<Unencodable, Unencodable>(endpoint);
    let error = within(bad_request.get_reply(&unencodable()))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ReplyError::Serialization { message } if message.contains("BTreeMap")),
        "{error:?}"
    );
    assert_eq!(client.metrics().pending_replies, 0);

    // A reply that cannot be encoded comes back as a serialization error: alone (the reply is
    // encoded straight into the connection's buffer) and with many in flight (queued replies).
    let rpc = client.client::<u64, Unencodable>(endpoint);
    let error = within(rpc.get_reply(&1)).await.unwrap_err();
    assert!(
        matches!(&error, ReplyError::Serialization { message } if message.contains("BTreeMap")),
        "{error:?}"
    );
    let futures: Vec<_> = (0..16).map(|n| rpc.get_reply(&n)).collect();
    for future in futures {
        let error = within(future).await.unwrap_err();
        assert!(
            matches!(error, ReplyError::Serialization { .. }),
            "{error:?}"
        );
    }
    assert_eq!(client.metrics().pending_replies, 0);
    client.check_invariants().unwrap();
    server_transport.check_invariants().unwrap();
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Command {
    Put { key: String, value: Vec<u8> },
    Get(String),
    Stop,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_binary_codec_end_to_end_with_error_replies() {
    use moonpool_core::BinaryCodec;
    let server_transport = NetTransportBuilder::new(TokioProviders::new())
        .codec(BinaryCodec)
        .local_address(loopback())
        .build_listening()
        .await
        .unwrap();
    let stream = server_transport
        .register_stream::<Command, Option<Command>>()
        .unwrap();
    let endpoint = stream.endpoint();
    tokio::spawn(async move {
        while let Some((command, reply)) = stream.recv().await {
            match command {
                // Dropped unanswered: the caller sees a broken promise.
                Command::Stop => drop(reply),
                other => {
                    reply.send(Some(other));
                }
            }
        }
    });
    let client = NetTransportBuilder::new(TokioProviders::new())
        .codec(BinaryCodec)
        .build()
        .unwrap();
    let rpc = client.client::<Command, Option<Command>>(endpoint);
    let commands = [
        Command::Put {
            key: "k".repeat(300),
            value: vec![0, 255, 7],
        },
        Command::Get(String::new()),
    ];
    for command in commands {
        let echoed = within(rpc.get_reply(&command)).await.unwrap();
        assert_eq!(echoed, Some(command));
    }
    assert_eq!(
        within(rpc.get_reply(&Command::Stop)).await,
        Err(ReplyError::BrokenPromise { endpoint })
    );
    // A client speaking JSON to a binary server: the server cannot decode the request and says so.
    let json_client = client_with(TransportConfig::default());
    let mismatched = json_client.client::<Command, Option<Command>>(endpoint);
    let error = within(mismatched.get_reply(&Command::Get("x".into())))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ReplyError::Serialization { .. }),
        "{error:?}"
    );
    assert_eq!(client.metrics().pending_replies, 0);
    assert_eq!(json_client.metrics().pending_replies, 0);
}

/// A registration refused because its token is taken leaves the registration that holds the
/// token alone (it used to unregister it when the refused stream was dropped), for request
/// streams and message queues alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_refused_registration_leaves_the_first_one_registered() {
    within(async {
        let transport = listening(loopback(), TransportConfig::default()).await;
        let token = UID::new(0xF00D, 7);
        let stream = transport.register_stream_at::<Echo, Echo>(token).unwrap();
        let refused = transport.register_stream_at::<Echo, Echo>(token);
        assert!(matches!(
            refused,
            Err(moonpool_transport::TransportError::TokenInUse { .. })
        ));
        let queue_token = UID::new(0xF00D, 8);
        let _queue = transport.register_queue_at::<u64>(queue_token).unwrap();
        assert!(transport.register_queue_at::<u64>(queue_token).is_err());
        let _served = serve(stream);
        let caller = client();
        let endpoint = Endpoint::new(transport.local_address().unwrap(), token);
        let reply = caller
            .client::<Echo, Echo>(endpoint)
            .get_reply(&echo(1))
            .await;
        assert_eq!(reply, Ok(echo(1)));
    })
    .await;
}

/// A connection's reader remembers the endpoint it delivered to last; a change of the endpoint
/// table makes it look again. Over one connection: requests to a stream, the stream dropped
/// and another registered at its token (the new one answers, not the closed one), then that
/// one dropped too (EndpointNotFound, not a delivery to a stale receiver).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_token_registered_again_is_found_again_over_the_same_connection() {
    within(async {
        let transport = listening(loopback(), TransportConfig::default()).await;
        let token = UID::new(0xF00D, 9);
        let endpoint = Endpoint::new(transport.local_address().unwrap(), token);
        let caller = client();
        let rpc = caller.client::<Echo, Echo>(endpoint);

        let first = transport.register_stream_at::<Echo, Echo>(token).unwrap();
        let first_served = serve(first);
        for n in 0..3 {
            assert_eq!(rpc.get_reply(&echo(n)).await, Ok(echo(n)));
        }
        // Dropping the stream ends its serving task (its queue closes).
        first_served.abort();
        let _ = first_served.await;
        eventually(|| transport.metrics().endpoints == 0).await;

        let second = transport.register_stream_at::<Echo, Echo>(token).unwrap();
        let second_served = tokio::spawn(async move {
            while let Some((request, reply)) = second.recv().await {
                reply.send(echo(request.n + 1000));
            }
        });
        for n in 0..3 {
            assert_eq!(rpc.get_reply(&echo(n)).await, Ok(echo(n + 1000)));
        }
        second_served.abort();
        let _ = second_served.await;
        eventually(|| transport.metrics().endpoints == 0).await;
        assert_eq!(
            rpc.get_reply(&echo(7)).await,
            Err(ReplyError::EndpointNotFound { endpoint })
        );
        // One connection carried all of it.
        let peers = caller.metrics().peer_metrics;
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].connections_established, 1);
        assert_eq!(caller.metrics().pending_replies, 0);
    })
    .await;
}
