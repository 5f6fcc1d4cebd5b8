//! Hostile checks of the transport's JSON fast path (`src/json/`), through the public API only
//! (see `hostile3_json_wire/mod.rs`): generated documents with every escape, flattened, renamed and
//! skipped fields, integer-, bool-, char- and enum-keyed maps, written byte for byte as
//! `serde_json` writes them and, mangled, decoded as `JsonCodec` decodes them; every one-letter
//! string; integer and float extremes; map keys; odd `Serialize` impls.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod hostile3_json_wire;

use std::collections::BTreeMap;

use hostile3_json_wire::{Rng, Wire};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, PartialOrd, Ord, Eq)]
enum Key {
    Alpha,
    #[serde(rename = "be\"ta\n")]
    Beta,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Unit;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Wrapped(String);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Empty,
    New(i64),
    Pair(u8, String),
    NoFields(),
    Record {
        a: Option<u32>,
        b: Vec<bool>,
    },
    #[serde(rename = "ré\"named")]
    Renamed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Inner {
    x: u16,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    y: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Doc {
    #[serde(rename = "id-\u{e9}\t")]
    id: u64,
    neg: i64,
    small: i8,
    text: String,
    ch: char,
    shapes: Vec<Shape>,
    by_name: BTreeMap<String, u32>,
    by_i32: BTreeMap<i32, String>,
    by_u64: BTreeMap<u64, bool>,
    by_bool: BTreeMap<bool, u8>,
    by_char: BTreeMap<char, u8>,
    by_key: BTreeMap<Key, Unit>,
    wrapped: Wrapped,
    tuple: (u8, i16, String),
    nested: Option<Option<u8>>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    maybe: Vec<u32>,
    #[serde(flatten)]
    inner: Inner,
}

fn shape(rng: &mut Rng) -> Shape {
    match rng.below(6) {
        0 => Shape::Empty,
        1 => Shape::New(rng.int() as i64),
        2 => Shape::Pair(rng.int() as u8, rng.text()),
        3 => Shape::NoFields(),
        4 => Shape::Record {
            a: (rng.below(2) == 0).then(|| rng.int() as u32),
            b: (0..rng.below(4)).map(|_| rng.below(2) == 0).collect(),
        },
        _ => Shape::Renamed,
    }
}

fn doc(rng: &mut Rng) -> Doc {
    Doc {
        id: rng.int(),
        neg: match rng.below(3) {
            0 => i64::MIN,
            1 => -(rng.int() as i64).abs().max(1),
            _ => rng.int() as i64,
        },
        small: rng.int() as i8,
        text: rng.text(),
        ch: rng.text().chars().next().unwrap_or('\u{0}'),
        shapes: (0..rng.below(5)).map(|_| shape(rng)).collect(),
        by_name: (0..rng.below(4))
            .map(|_| (rng.text(), rng.int() as u32))
            .collect(),
        by_i32: (0..rng.below(4))
            .map(|_| (rng.int() as i32, rng.text()))
            .collect(),
        by_u64: (0..rng.below(3)).map(|_| (rng.int(), true)).collect(),
        by_bool: (0..rng.below(3)).map(|_| (rng.below(2) == 0, 7)).collect(),
        by_char: (0..rng.below(3))
            .map(|_| (char::from_u32(rng.below(0x80) as u32).unwrap(), 1))
            .collect(),
        by_key: (0..rng.below(3))
            .map(|_| {
                let key = if rng.below(2) == 0 {
                    Key::Alpha
                } else {
                    Key::Beta
                };
                (key, Unit)
            })
            .collect(),
        wrapped: Wrapped(rng.text()),
        tuple: (rng.int() as u8, rng.int() as i16, rng.text()),
        nested: match rng.below(3) {
            0 => None,
            1 => Some(None),
            _ => Some(Some(rng.int() as u8)),
        },
        maybe: (0..rng.below(3)).map(|_| rng.int() as u32).collect(),
        inner: Inner {
            x: rng.int() as u16,
            y: (rng.below(2) == 0).then(|| rng.text()),
        },
    }
}

/// `bytes` mangled one of several ways: whitespace inserted, truncated, garbage appended, a
/// byte replaced.
fn mangle(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if out.is_empty() {
        return out;
    }
    let at = rng.below(out.len() as u64) as usize;
    match rng.below(5) {
        0 => out.insert(at, [b' ', b'\n', b'\t', b'\r'][rng.below(4) as usize]),
        1 => out.truncate(at),
        2 => out.extend_from_slice([&b" "[..], b"x", b",", b"}", b"\0"][rng.below(5) as usize]),
        3 => out[at] = b"0123456789-.eE\"\\{}[],:ntf \x01\xff"[rng.below(27) as usize],
        _ => {
            out.remove(at);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_generated_documents_are_written_as_serde_json_writes_them() {
    let mut wire = Wire::open().await;
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for _ in 0..300 {
        wire.encode_check(doc(&mut rng)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_generated_documents_and_their_manglings_decode_as_json_codec_decodes_them() {
    let mut wire = Wire::open().await;
    let mut rng = Rng(0xDEAD_BEEF_0BAD_F00D);
    for _ in 0..150 {
        let value = doc(&mut rng);
        let bytes = serde_json::to_vec(&value).unwrap();
        wire.decode_check::<Doc>(&bytes).await;
        for _ in 0..3 {
            let mangled = mangle(&mut rng, &bytes);
            wire.decode_check::<Doc>(&mangled).await;
            wire.decode_check::<serde_json::Value>(&mangled).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_every_single_character_string_is_written_and_read_as_serde_json_does() {
    let mut wire = Wire::open().await;
    let mut chars: Vec<char> = (0u32..0x100).filter_map(char::from_u32).collect();
    chars.extend([
        '\u{d7ff}',
        '\u{e000}',
        '\u{fffd}',
        '\u{ffff}',
        '\u{10000}',
        '\u{10ffff}',
    ]);
    // One string holding all of them, and each alone as a `char` and as a one-letter string.
    let all: String = chars.iter().collect();
    wire.encode_check(all.clone()).await;
    wire.decode_check::<String>(&serde_json::to_vec(&all).unwrap())
        .await;
    for ch in chars {
        wire.encode_check(ch).await;
        wire.encode_check(ch.to_string()).await;
        let raw = format!("\"{ch}\"");
        wire.decode_check::<char>(raw.as_bytes()).await;
        wire.decode_check::<String>(raw.as_bytes()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_integer_extremes_are_written_and_read_as_serde_json_does() {
    let mut wire = Wire::open().await;
    wire.encode_check((u64::MAX, i64::MIN, i64::MAX, 0u64, -1i64))
        .await;
    wire.encode_check((u8::MAX, i8::MIN, u16::MAX, i16::MIN, u32::MAX, i32::MIN))
        .await;
    for n in [9u64, 10, 99, 100, 999, 1_000, 9_999, 10_000, 99_999] {
        wire.encode_check(n).await;
        wire.encode_check(-(n as i64)).await;
    }
    for text in [
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "-18446744073709551615",
        "-0",
        "0",
        "00",
        "01",
        "-",
        "--1",
        "+1",
        "1e5",
        "1E5",
        "1.0",
        "1.",
        ".5",
        "1e",
        "256",
        "-129",
        " 5",
        "5 ",
        "5\n",
        "\"5\"",
        "true",
        "null",
        "",
    ] {
        let bytes = text.as_bytes();
        wire.decode_check::<u64>(bytes).await;
        wire.decode_check::<i64>(bytes).await;
        wire.decode_check::<u8>(bytes).await;
        wire.decode_check::<i8>(bytes).await;
        wire.decode_check::<Option<u64>>(bytes).await;
        wire.decode_check::<u128>(bytes).await;
        wire.decode_check::<serde_json::Value>(bytes).await;
    }
}

/// Floats compared by their bits (so that `-0.0` and `0.0` differ and NaN equals itself).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
struct Bits(f64);

impl PartialEq for Bits {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_float_edges_are_written_and_read_as_serde_json_does() {
    let mut wire = Wire::open().await;
    let floats = [
        0.0,
        -0.0,
        f64::MIN_POSITIVE,
        5e-324,
        -5e-324,
        1e308,
        f64::MAX,
        f64::MIN,
        0.1,
        1.0 / 3.0,
        9007199254740993.0,
        1e21,
        1e-7,
        123456789012345680.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    for value in floats {
        wire.encode_check(value).await;
        wire.encode_check((value as f32, Some(value), vec![value]))
            .await;
    }
    // Non-finite keys and values in a map: serde_json quotes them or writes null.
    let mut map = BTreeMap::new();
    map.insert("nan".to_string(), f64::NAN);
    map.insert("inf".to_string(), f64::INFINITY);
    wire.encode_check(map).await;
    for text in [
        "0",
        "-0",
        "5",
        "-5",
        "0.0",
        "-0.0",
        "1e308",
        "1e309",
        "-1e309",
        "5e-324",
        "2e-324",
        "18446744073709551616",
        "16777217",
        "1.5",
        "NaN",
        "null",
        "\"1\"",
        "1e+2",
        "1E-2",
    ] {
        wire.decode_check::<Bits>(text.as_bytes()).await;
        wire.decode_check::<f32>(text.as_bytes()).await;
        wire.decode_check::<Option<Bits>>(text.as_bytes()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_map_keys_decode_as_json_codec_decodes_them() {
    let mut wire = Wire::open().await;
    for text in [
        r#"{"1":2}"#,
        r#"{"-1":2}"#,
        r#"{"01":2}"#,
        r#"{"1 ":2}"#,
        r#"{" 1":2}"#,
        r#"{"1.0":2}"#,
        r#"{"1e2":2}"#,
        r#"{"-0":2}"#,
        r#"{"":2}"#,
        r#"{"x":2}"#,
        r#"{"true":2}"#,
        r#"{"false":2}"#,
        r#"{"True":2}"#,
        r#"{"truex":2}"#,
        r#"{"18446744073709551616":2}"#,
        r#"{"\u0031":2}"#,
        r#"{"1":2,"1":3}"#,
        r#"{"Alpha":null}"#,
        r#"{"be\"ta\n":null}"#,
        r#"{"Gamma":null}"#,
        r#"{1:2}"#,
    ] {
        let bytes = text.as_bytes();
        wire.decode_check::<BTreeMap<u64, u8>>(bytes).await;
        wire.decode_check::<BTreeMap<i8, u8>>(bytes).await;
        wire.decode_check::<BTreeMap<bool, u8>>(bytes).await;
        wire.decode_check::<BTreeMap<char, Option<u8>>>(bytes).await;
        wire.decode_check::<BTreeMap<Key, Option<u8>>>(bytes).await;
        wire.decode_check::<BTreeMap<String, Option<u8>>>(bytes)
            .await;
        wire.decode_check::<BTreeMap<u128, u8>>(bytes).await;
    }
}

/// A `Serialize` that swallows the error of a field (a float the fast path refuses) and writes
/// something else: the bytes must still be `serde_json`'s.
#[derive(Debug)]
struct Swallower;

impl Serialize for Swallower {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(None)?;
        if seq.serialize_element(&1.5f64).is_err() {
            seq.serialize_element("fallback")?;
        }
        seq.serialize_element(&u128::MAX)?;
        seq.end()
    }
}

/// A `Serialize` that lies about its lengths (zero, then writes elements anyway).
#[derive(Debug)]
struct Liar;

impl Serialize for Liar {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(0))?;
        map.serialize_entry("a", &1u8)?;
        map.serialize_entry(&7u32, &[(); 0])?;
        map.end()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_odd_serialize_impls_are_written_as_serde_json_writes_them() {
    let mut wire = Wire::open().await;
    wire.encode_check(Swallower).await;
    wire.encode_check(Liar).await;
    wire.encode_check(((), Unit, Wrapped(String::new()), ((),), [0u8; 0]))
        .await;
    wire.encode_check(serde_json::json!({"x": [1, -2, 3.5, null, "é\u{1}"], "": {}}))
        .await;
    wire.encode_check(Shape::NoFields()).await;
    wire.encode_check(Some(Shape::Record { a: None, b: vec![] }))
        .await;
    let bytes: Vec<u8> = (0..=255).collect();
    wire.encode_check(bytes).await;
    let mut keyed: BTreeMap<i64, Option<Key>> = BTreeMap::new();
    keyed.insert(i64::MIN, Some(Key::Beta));
    keyed.insert(0, None);
    wire.encode_check(keyed).await;
}
