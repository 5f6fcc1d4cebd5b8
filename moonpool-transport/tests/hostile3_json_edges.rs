//! Hostile decoding through the transport's JSON fast path (`hostile3_json_wire/mod.rs`): foreign
//! objects (duplicate and unknown fields, escapes, truncations, trailing bytes, tagged and
//! untagged enums), nesting around both depth limits, bytes, 128-bit integers and adjacently
//! tagged enums, each compared with `JsonCodec`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod hostile3_json_wire;

use std::collections::BTreeMap;

use hostile3_json_wire::Wire;
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Pair {
    a: u32,
    b: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Strict {
    a: u32,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t")]
enum Tagged {
    One { a: u32 },
    Two(Pair),
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Loose {
    Small(u8),
    Text(String),
    Many(Vec<u64>),
    Float(f64),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_foreign_objects_decode_as_json_codec_decodes_them() {
    let mut wire = Wire::open().await;
    let texts: &[&str] = &[
        r#"{"a":1,"b":"x"}"#,
        r#"{"b":"x","a":1}"#,
        r#"{"a":1,"a":2,"b":"x"}"#,
        r#"{"a":1,"b":"x","c":[1,{"d":null},"e",true,-3]}"#,
        r#"{"a":1,"b":"x","c":1.5}"#,
        r#"{"a":1,"b":"x","c":"\u0041"}"#,
        r#"{"a":1,"b":"x","c":-0}"#,
        r#"{"a":1,"b":"x","c":18446744073709551616}"#,
        r#"{"a":1,"b":"x",}"#,
        r#"{"a":1,"b":"x","c":[1,]}"#,
        r#"{"a":1,"b":"x","c":{"d":1,}}"#,
        r#"{"\u0061":1,"b":"x"}"#,
        r#"{"a":1,"b":"\u00e9"}"#,
        r#"{"a":1,"b":"\ud83d\ude00"}"#,
        r#"{"a":1,"b":"\ud83d"}"#,
        r#"{"a":1}"#,
        r#"{"a":1,"b":null}"#,
        r#"[1,"x"]"#,
        r#"[1,"x",2]"#,
        r#"[1]"#,
        r#"{"a":1,"b":"x"}{"a":1,"b":"x"}"#,
        r#"{"a":1 ,"b":"x"}"#,
        r#"{"a":1,"b":"x"} "#,
        "{\"a\":1,\"b\":\"tab\there\"}",
        "{\"a\":1,\"b\":\"x\x7f\"}",
        r#"{"a":1e0,"b":"x"}"#,
        r#"{"a":01,"b":"x"}"#,
        r#"{"a":"1","b":"x"}"#,
        r#"{"a":1,"b":"x""#,
        r#"{"a":1,"b":"x"#,
        r#"{"a":1,"b""#,
        r#"{"a":1,"#,
        r#"{"#,
        r#"{}"#,
        r#"{"t":"One","a":1}"#,
        r#"{"a":1,"t":"One"}"#,
        r#"{"t":"Two","a":1,"b":"x"}"#,
        r#"{"t":"Three"}"#,
        r#"[1,2,3]"#,
        r#"300"#,
        r#""x""#,
        r#"1.5"#,
    ];
    for text in texts {
        let bytes = text.as_bytes();
        wire.decode_check::<Pair>(bytes).await;
        wire.decode_check::<Strict>(bytes).await;
        wire.decode_check::<Tagged>(bytes).await;
        wire.decode_check::<Loose>(bytes).await;
        wire.decode_check::<BTreeMap<String, serde_json::Value>>(bytes)
            .await;
        wire.decode_check::<serde_json::Value>(bytes).await;
    }
    // Invalid UTF-8 inside a string (and inside an ignored one).
    wire.decode_check::<Pair>(b"{\"a\":1,\"b\":\"\xff\"}").await;
    wire.decode_check::<Pair>(b"{\"a\":1,\"b\":\"x\",\"c\":\"\xc3\"}")
        .await;
    wire.decode_check::<Pair>(b"{\"a\":1,\"b\":\"\xed\xa0\x80\"}")
        .await;
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Nest {
    Leaf,
    Node(Box<Nest>),
}

fn nest(depth: usize) -> Nest {
    (0..depth).fold(Nest::Leaf, |inner, _| Nest::Node(Box::new(inner)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_deep_nesting_around_both_depth_limits_decodes_as_json_codec_decodes_it() {
    let mut wire = Wire::open().await;
    for depth in [1, 62, 63, 64, 65, 100, 126, 127, 128, 129, 200] {
        let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        wire.decode_check::<serde_json::Value>(arrays.as_bytes())
            .await;
        let objects = format!("{}1{}", "{\"k\":".repeat(depth), "}".repeat(depth));
        wire.decode_check::<serde_json::Value>(objects.as_bytes())
            .await;
        // An ignored field holding the nest.
        let ignored = format!("{{\"a\":1,\"b\":\"x\",\"c\":{arrays}}}");
        wire.decode_check::<Pair>(ignored.as_bytes()).await;
        if depth <= 120 {
            let value = nest(depth);
            let bytes = serde_json::to_vec(&value).unwrap();
            wire.decode_check::<Nest>(&bytes).await;
            wire.encode_check(value).await;
        }
    }
}

/// Bytes written with `serialize_bytes` and read with `deserialize_byte_buf` (as `serde_bytes`
/// does).
#[derive(Debug, PartialEq)]
struct Blob(Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Blob, E> {
                Ok(Blob(v.as_bytes().to_vec()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Blob, A::Error> {
                let mut out = Vec::new();
                while let Some(byte) = seq.next_element::<u8>()? {
                    out.push(byte);
                }
                Ok(Blob(out))
            }
        }
        deserializer.deserialize_byte_buf(Visit)
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body")]
enum Adjacent {
    Empty,
    Wide(i128),
    Blobbed(Blob),
    Both { a: u128, b: Blob },
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_bytes_wide_integers_and_adjacent_tags_match_serde_json_both_ways() {
    let mut wire = Wire::open().await;
    let values = [
        Adjacent::Empty,
        Adjacent::Wide(i128::MIN),
        Adjacent::Wide(i128::from(i64::MAX) + 1),
        Adjacent::Blobbed(Blob(vec![])),
        Adjacent::Blobbed(Blob((0..=255).collect())),
        Adjacent::Both {
            a: u128::MAX,
            b: Blob(b"\"\\".to_vec()),
        },
    ];
    for value in values {
        let bytes = serde_json::to_vec(&value).unwrap();
        wire.encode_check(value).await;
        wire.decode_check::<Adjacent>(&bytes).await;
    }
    for text in [
        r#"{"kind":"Blobbed","body":"abc"}"#,
        r#"{"kind":"Blobbed","body":[1,2,300]}"#,
        r#"{"body":[1,2],"kind":"Blobbed"}"#,
        r#"{"kind":"Wide","body":170141183460469231731687303715884105727}"#,
        r#"{"kind":"Wide","body":170141183460469231731687303715884105728}"#,
        r#"{"kind":"Wide","body":5}"#,
        r#"{"kind":"Empty"}"#,
        r#"{"kind":"Empty","body":null}"#,
        r#"{"kind":"Both","body":{"a":1,"b":[9]}}"#,
    ] {
        wire.decode_check::<Adjacent>(text.as_bytes()).await;
        wire.decode_check::<Blob>(text.as_bytes()).await;
    }
    for text in [r#""abc""#, "[1,2,3]", "[]", r#""\u0000""#, "[256]", "null"] {
        wire.decode_check::<Blob>(text.as_bytes()).await;
    }
}
