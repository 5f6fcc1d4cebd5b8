//! The JSON fast path on the transport's other paths: replies encoded by a server straight into
//! its connection's writer (floats and 128-bit integers bailing part way), replies and requests
//! that cannot be encoded at all (the connection must go on), and queue messages written by a
//! raw socket, decoded by `queue.rs` (a message `JsonCodec` cannot decode is dropped, the rest
//! arrive in order with `JsonCodec`'s values).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use moonpool_core::{JsonCodec, MessageCodec, NetworkAddress, TokioProviders, UID};
use moonpool_transport::protocol::{CONTROL_TOKEN, Hello, encode_hello};
use moonpool_transport::wire::encode_frame;
use moonpool_transport::{NetTransport, NetTransportBuilder, ReplyError};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("the test hung")
}

async fn listening() -> NetTransport {
    NetTransportBuilder::new(TokioProviders::new())
        .local_address("127.0.0.1:0".parse().unwrap())
        .build_listening()
        .await
        .unwrap()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Reading {
    name: String,
    value: f64,
    exact: u128,
    tags: Vec<(String, f32)>,
    nested: Option<Box<Reading>>,
}

fn reading(i: u64) -> Reading {
    let name = format!("r{i}\u{1}\"\\é");
    Reading {
        name: name.clone(),
        value: (i as f64) * 0.1 - 3.0,
        exact: u128::from(i) << 70,
        tags: (0..i % 4)
            .map(|t| (format!("t{t}"), t as f32 / 3.0))
            .collect(),
        nested: i.is_multiple_of(3).then(|| {
            Box::new(Reading {
                name,
                value: -0.0,
                exact: 0,
                tags: vec![],
                nested: None,
            })
        }),
    }
}

/// `value` written and read back by `JsonCodec` (serde_json's float parsing is not exact
/// without its `float_roundtrip` feature: -1.5999999999999999 reads back as -1.6).
fn through_json_codec(value: &Reading) -> Reading {
    JsonCodec.decode(&JsonCodec.encode(value).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_replies_that_bail_part_way_round_trip_through_the_server() {
    let server = listening().await;
    let stream = server.register_stream::<u64, Reading>().unwrap();
    let endpoint = stream.endpoint();
    tokio::spawn(async move {
        while let Some((i, reply)) = stream.recv().await {
            reply.send(reading(i));
        }
    });
    let client = NetTransportBuilder::new(TokioProviders::new())
        .build()
        .unwrap();
    let rpc = client.client::<u64, Reading>(endpoint);
    for i in 0..200 {
        let back = within(rpc.get_reply(&i)).await.unwrap();
        assert_eq!(back, through_json_codec(&reading(i)), "reply {i}");
    }
    // Many at once (the replies are queued, not written directly).
    let calls: Vec<_> = (0..100u64)
        .map(|i| {
            let rpc = rpc.clone();
            tokio::spawn(async move { (i, rpc.get_reply(&i).await) })
        })
        .collect();
    for call in calls {
        let (i, back) = within(call).await.unwrap();
        assert_eq!(back.unwrap(), through_json_codec(&reading(i)));
    }
}

/// A map `serde_json` cannot write (its keys are sequences), after a first entry it can start.
fn unencodable() -> BTreeMap<Vec<u8>, u8> {
    let mut map = BTreeMap::new();
    map.insert(vec![1, 2], 3);
    map
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_an_unencodable_reply_is_a_serialization_error_and_the_connection_goes_on() {
    let server = listening().await;
    let stream = server
        .register_stream::<u32, BTreeMap<Vec<u8>, u8>>()
        .unwrap();
    let endpoint = stream.endpoint();
    tokio::spawn(async move {
        while let Some((n, reply)) = stream.recv().await {
            if !n.is_multiple_of(2) {
                reply.send(unencodable());
            } else {
                reply.send(BTreeMap::new());
            }
        }
    });
    let client = NetTransportBuilder::new(TokioProviders::new())
        .build()
        .unwrap();
    let rpc = client.client::<u32, BTreeMap<Vec<u8>, u8>>(endpoint);
    let expected = JsonCodec.encode(&unencodable()).unwrap_err().to_string();
    for n in 0..40u32 {
        let reply = within(rpc.get_reply(&n)).await;
        if !n.is_multiple_of(2) {
            match reply {
                Err(ReplyError::Serialization { message }) => {
                    assert_eq!(message, expected, "the error of reply {n}")
                }
                other => panic!("reply {n}: {other:?}"),
            }
        } else {
            assert_eq!(reply.unwrap(), BTreeMap::new(), "reply {n}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_an_unencodable_request_fails_and_the_next_request_goes_through() {
    let server = listening().await;
    let stream = server
        .register_stream::<BTreeMap<Vec<u8>, u8>, usize>()
        .unwrap();
    let endpoint = stream.endpoint();
    tokio::spawn(async move {
        while let Some((map, reply)) = stream.recv().await {
            reply.send(map.len());
        }
    });
    let client = NetTransportBuilder::new(TokioProviders::new())
        .build()
        .unwrap();
    let rpc = client.client::<BTreeMap<Vec<u8>, u8>, usize>(endpoint);
    for round in 0..10 {
        let failed = within(rpc.get_reply(&unencodable())).await;
        assert!(failed.is_err(), "round {round}: {failed:?}");
        assert!(rpc.send(&unencodable()).is_err(), "round {round}");
        assert_eq!(within(rpc.get_reply(&BTreeMap::new())).await.unwrap(), 0);
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Note {
    id: u32,
    text: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_queue_messages_from_a_raw_socket_decode_as_json_codec_decodes_them() {
    let server = listening().await;
    let queue = server.register_queue::<Note>().unwrap();
    let endpoint = queue.endpoint();
    let address: NetworkAddress = server.local_address().unwrap();
    let mut socket = tokio::net::TcpStream::connect(address.to_string())
        .await
        .unwrap();
    let hello = encode_hello(&Hello {
        instance: UID::new(77, 1),
        listen_address: None,
    });
    socket
        .write_all(&encode_frame(CONTROL_TOKEN, &hello, 1 << 20).unwrap())
        .await
        .unwrap();
    let bodies: Vec<String> = vec![
        r#"{"id":1,"text":"a"}"#.into(),
        r#"{"id":2,"text":"a\"b"}"#.into(),
        r#"{"id":3,"text":"x","id":4}"#.into(),
        r#" {"id":5,"text":"lead"}"#.into(),
        r#"{"id":6,"text":"trail"} "#.into(),
        r#"{"id":7,"text":"junk"}x"#.into(),
        r#"{"id":8.0,"text":"f"}"#.into(),
        r#"{"id":9,"text":"\ud800"}"#.into(),
        r#"{"id":10,"text":"ok","more":[1,{"a":null}]}"#.into(),
        r#"[11,"seq"]"#.into(),
        r#"{"id":-12,"text":"neg"}"#.into(),
        r#"{"id":4294967296,"text":"big"}"#.into(),
        r#"{"text":"missing"}"#.into(),
        "{\"id\":13,\"text\":\"ctl\u{1}\"}".into(),
        r#"{"id":14,"text":"\u00e9"}"#.into(),
        r#"{"id":15,"text":"last"}"#.into(),
    ];
    let expected: Vec<Note> = bodies
        .iter()
        .filter_map(|body| JsonCodec.decode::<Note>(body.as_bytes()).ok())
        .collect();
    for body in &bodies {
        socket
            .write_all(&encode_frame(endpoint.token, body.as_bytes(), 1 << 20).unwrap())
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    while got.len() < expected.len() {
        got.push(within(queue.recv()).await.unwrap());
    }
    assert_eq!(got, expected);
    // Nothing else arrives: the undecodable ones were dropped, not delivered late or mangled.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(queue.try_recv(), None);
}
