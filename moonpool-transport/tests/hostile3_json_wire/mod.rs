//! The harness the `hostile3_json*` suites share (a module folder, so that cargo builds no test
//! target of its own for it): a client transport whose only peer is a raw TCP socket the test
//! drives, so the request bodies the client writes can be compared byte for byte with
//! `serde_json`, and the reply bodies the socket writes are decoded by the client and compared
//! with `JsonCodec`; and a seeded generator of integers and strings full of escapes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use moonpool_core::{Endpoint, JsonCodec, MessageCodec, NetworkAddress, TokioProviders, UID};
use moonpool_transport::protocol::{CONTROL_TOKEN, Hello, encode_hello, split_request};
use moonpool_transport::wire::{FrameDecoder, encode_frame};
use moonpool_transport::{NetTransport, NetTransportBuilder, ReplyError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const FRAME_MAX: usize = 1 << 22;

pub async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("the test hung")
}

/// A client transport whose only peer is a raw socket this test drives.
pub struct Wire {
    client: NetTransport,
    endpoint: Endpoint,
    stream: tokio::net::TcpStream,
    decoder: FrameDecoder,
}

impl Wire {
    pub async fn open() -> Wire {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: NetworkAddress = listener.local_addr().unwrap().to_string().parse().unwrap();
        let endpoint = Endpoint::new(address, UID::new(0xAB, 1));
        let client = NetTransportBuilder::new(TokioProviders::new())
            .build()
            .unwrap();
        let rpc = client.client::<u64, u64>(endpoint);
        let first = tokio::spawn(async move { rpc.get_reply(&1).await });
        let (stream, _) = within(listener.accept()).await.unwrap();
        let mut wire = Wire {
            client,
            endpoint,
            stream,
            decoder: FrameDecoder::new(FRAME_MAX),
        };
        let hello = encode_hello(&Hello {
            instance: UID::new(9, 9),
            listen_address: None,
        });
        wire.stream
            .write_all(&encode_frame(CONTROL_TOKEN, &hello, FRAME_MAX).unwrap())
            .await
            .unwrap();
        let (reply_token, body) = wire.next_request().await;
        assert_eq!(body, b"1");
        wire.reply(reply_token, b"2").await;
        assert_eq!(within(first).await.unwrap().unwrap(), 2);
        wire
    }

    /// The next request frame: its reply token and its body.
    async fn next_request(&mut self) -> (UID, Vec<u8>) {
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            while let Some(frame) = self.decoder.next_frame().unwrap() {
                // Frames to other tokens (the client's pings of a well-known endpoint) are
                // left unanswered.
                if frame.token == self.endpoint.token {
                    let (reply, body) = split_request(&frame.payload).unwrap();
                    return (reply, body.to_vec());
                }
            }
            let read = within(self.stream.read(&mut buffer)).await.unwrap();
            assert!(read > 0, "the client closed the connection");
            self.decoder.extend(&buffer[..read]);
        }
    }

    async fn reply(&mut self, token: UID, body: &[u8]) {
        let mut reply = vec![0u8]; // a value reply
        reply.extend_from_slice(body);
        self.stream
            .write_all(&encode_frame(token, &reply, FRAME_MAX).unwrap())
            .await
            .unwrap();
    }

    /// Sends `request` (returning the body the client wrote) and answers it with `reply_body`
    /// (returning what the client decoded of it).
    pub async fn round<Req, Resp>(
        &mut self,
        request: Req,
        reply_body: &[u8],
    ) -> (Vec<u8>, Result<Resp, ReplyError>)
    where
        Req: Serialize + Send + 'static,
        Resp: DeserializeOwned + Send + 'static,
    {
        let rpc = self.client.client::<Req, Resp>(self.endpoint);
        let call = tokio::spawn(async move { rpc.get_reply(&request).await });
        let (token, body) = self.next_request().await;
        self.reply(token, reply_body).await;
        (body, within(call).await.unwrap())
    }

    /// The body the client writes for `value`, checked against `serde_json`.
    pub async fn encode_check<T: Serialize + Send + Debug + 'static>(&mut self, value: T) {
        let expected = serde_json::to_vec(&value).unwrap();
        let shown = format!("{value:?}");
        let (body, _) = self.round::<T, ()>(value, b"null").await;
        assert_eq!(
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&expected),
            "the bytes written for {shown}"
        );
        assert_eq!(body, expected, "the bytes written for {shown}");
    }

    /// What the client decodes of `bytes` as a `T`, checked against `JsonCodec` (the value, or
    /// the error's message).
    pub async fn decode_check<T>(&mut self, bytes: &[u8])
    where
        T: DeserializeOwned + Send + Debug + PartialEq + 'static,
    {
        let (_, got) = self.round::<(), T>((), bytes).await;
        let expected = JsonCodec.decode::<T>(bytes);
        let input = String::from_utf8_lossy(bytes);
        match (got, expected) {
            (Ok(got), Ok(expected)) => assert_eq!(got, expected, "decoding {input:?}"),
            (Err(ReplyError::Serialization { message }), Err(expected)) => {
                assert_eq!(message, expected.to_string(), "the error for {input:?}")
            }
            (got, expected) => panic!("decoding {input:?}: got {got:?}, JsonCodec {expected:?}"),
        }
    }
}

/// A seeded xorshift, for generated values.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn int(&mut self) -> u64 {
        match self.below(6) {
            0 => 0,
            1 => u64::MAX - self.below(3),
            2 => self.below(10),
            3 => self.below(100_000),
            4 => 1u64 << self.below(64),
            _ => self.next_u64(),
        }
    }

    pub fn text(&mut self) -> String {
        const ODD: &[char] = &[
            '"',
            '\\',
            '/',
            '\u{7f}',
            '\u{80}',
            '\u{9f}',
            '\u{a0}',
            'é',
            '\u{7ff}',
            '\u{800}',
            '\u{2028}',
            '\u{2029}',
            '\u{d7ff}',
            '\u{e000}',
            '\u{fffd}',
            '\u{fffe}',
            '\u{ffff}',
            '\u{10000}',
            '😀',
            '\u{10ffff}',
            'a',
            'Z',
            ' ',
            '0',
            '{',
            '}',
            '[',
            ':',
            ',',
        ];
        let len = match self.below(20) {
            0 => 0,
            1 => 5_000 + self.below(20_000) as usize,
            2 => 16,
            3 => 17,
            _ => self.below(40) as usize,
        };
        (0..len)
            .map(|_| match self.below(4) {
                0 => char::from_u32(self.below(0x20) as u32).unwrap(),
                1 => ODD[self.below(ODD.len() as u64) as usize],
                _ => char::from(b'a' + self.below(26) as u8),
            })
            .collect()
    }
}
