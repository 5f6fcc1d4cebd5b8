//! `JsonCodec` on real TCP: what the docs promise ("readable on the wire") byte for byte, JSON
//! written by someone else (whitespace, escapes, floats) still understood, and the payloads at
//! the edges (unit, escaped text, floats, a large body, one that does not decode).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::time::Duration;

use moonpool_core::{Endpoint, NetworkAddress, TokioProviders, UID};
use moonpool_transport::protocol::{CONTROL_TOKEN, Hello, encode_hello, split_request};
use moonpool_transport::wire::{FrameDecoder, encode_frame};
use moonpool_transport::{NetTransport, NetTransportBuilder, ReplyError};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Echo {
    n: u64,
    text: String,
}

async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("the test hung")
}

/// Reads frames from `stream` until one for a token other than the control token arrives.
async fn next_request(
    stream: &mut tokio::net::TcpStream,
    decoder: &mut FrameDecoder,
) -> (UID, Vec<u8>) {
    let mut buffer = [0u8; 4096];
    loop {
        while let Some(frame) = decoder.next_frame().unwrap() {
            if frame.token != CONTROL_TOKEN {
                return (frame.token, frame.payload);
            }
        }
        let read = stream.read(&mut buffer).await.unwrap();
        assert!(read > 0, "the client closed the connection");
        decoder.extend(&buffer[..read]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_json_bodies_are_readable_on_the_wire_and_foreign_json_is_understood() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: NetworkAddress = listener.local_addr().unwrap().to_string().parse().unwrap();
    let endpoint = Endpoint::new(address, UID::new(0xAB, 1));
    let client = NetTransportBuilder::new(TokioProviders::new())
        .build()
        .unwrap();
    let rpc = client.client::<Echo, Echo>(endpoint);
    let call = tokio::spawn({
        let rpc = rpc.clone();
        async move {
            rpc.get_reply(&Echo {
                n: 7,
                text: "say \"hi\"\n".to_string(),
            })
            .await
        }
    });
    let (mut stream, _) = within(listener.accept()).await.unwrap();
    let mut decoder = FrameDecoder::new(1 << 20);
    let (token, payload) = within(next_request(&mut stream, &mut decoder)).await;
    assert_eq!(token, endpoint.token);
    let (reply_token, body) = split_request(&payload).unwrap();
    // The request's body is the JSON text serde_json writes, escapes and all.
    assert_eq!(
        std::str::from_utf8(body).unwrap(),
        r#"{"n":7,"text":"say \"hi\"\n"}"#
    );
    // Answer as another JSON writer might: spaces, an escaped non-ASCII letter, a field order of
    // its own.
    let hello = encode_hello(&Hello {
        instance: UID::new(9, 9),
        listen_address: None,
    });
    stream
        .write_all(&encode_frame(CONTROL_TOKEN, &hello, 1 << 20).unwrap())
        .await
        .unwrap();
    let mut reply = vec![0u8]; // a value reply
    reply.extend_from_slice(b"{ \"text\" : \"caf\\u00e9\",\n  \"n\": 8 }");
    stream
        .write_all(&encode_frame(reply_token, &reply, 1 << 20).unwrap())
        .await
        .unwrap();
    let answer = within(call).await.unwrap().unwrap();
    assert_eq!(
        answer,
        Echo {
            n: 8,
            text: "café".to_string()
        }
    );
}

async fn serving<Req, Resp>(
    handler: impl Fn(Req) -> Resp + Send + 'static,
) -> (NetTransport, Endpoint)
where
    Req: Serialize + serde::de::DeserializeOwned + Send + 'static,
    Resp: Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let transport = NetTransportBuilder::new(TokioProviders::new())
        .local_address("127.0.0.1:0".parse().unwrap())
        .build_listening()
        .await
        .unwrap();
    let stream = transport.register_stream::<Req, Resp>().unwrap();
    let endpoint = stream.endpoint();
    tokio::spawn(async move {
        while let Some((request, reply)) = stream.recv().await {
            reply.send(handler(request));
        }
    });
    (transport, endpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_json_payloads_at_the_edges_round_trip() {
    let client = NetTransportBuilder::new(TokioProviders::new())
        .build()
        .unwrap();

    // Unit requests and replies (`null` on the wire).
    let (_unit_server, unit) = serving(|(): ()| ()).await;
    within(client.client::<(), ()>(unit).get_reply(&()))
        .await
        .unwrap();

    // Floats and 128-bit integers (left to serde_json by the fast path), escaped text.
    type Odd = (f64, Option<f32>, u128, String);
    let (_odd_server, odd) = serving(|value: Odd| value).await;
    let value: Odd = (
        -0.1,
        Some(2.5),
        u128::MAX,
        "tab\t quote\" \u{1} 漢".to_string(),
    );
    let back = within(client.client::<Odd, Odd>(odd).get_reply(&value))
        .await
        .unwrap();
    assert_eq!(back, value);

    // A large body: half a megabyte of text and a long sequence.
    type Big = (String, Vec<u64>);
    let (_big_server, big) = serving(|value: Big| value).await;
    let value: Big = ("x\u{e9}".repeat(100_000), (0..20_000).collect());
    let back = within(client.client::<Big, Big>(big).get_reply(&value))
        .await
        .unwrap();
    assert_eq!(back, value);

    // A request the server cannot decode (a string where it wants a number), and a reply the
    // client cannot decode: typed serialization errors naming the type.
    let (_number_server, number) = serving(|n: u64| n.to_string()).await;
    let error = within(
        client
            .client::<String, u64>(number)
            .get_reply(&"five".to_string()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, ReplyError::Serialization { message } if message.contains("u64")),
        "{error:?}"
    );
    let error = within(client.client::<u64, u64>(number).get_reply(&5))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ReplyError::Serialization { message } if message.contains("u64")),
        "{error:?}"
    );
    assert_eq!(
        within(client.client::<u64, String>(number).get_reply(&5))
            .await
            .unwrap(),
        "5"
    );
}
