//! The fast path against `serde_json` itself: the same bytes out, the same values (or the same
//! error) back, for every kind of value, and for mutated inputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fmt::Debug;

use moonpool_core::{BinaryCodec, JsonCodec, MessageCodec};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{de, decode, encode_into, ser};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Request {
    seq: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Unit;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Empty {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Newtype(u32);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pair(i16, String);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Dot,
    Circle(u32),
    Line(i64, i64),
    Rect { w: u16, h: u16 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Tagged {
    A { x: u8 },
    B,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "c")]
enum Adjacent {
    A(u8),
    B { s: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    Num(u64),
    Text(String),
    Pair(u8, u8),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Inner {
    a: i32,
    b: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Everything {
    small: u8,
    signed: i8,
    big: u64,
    negative: i64,
    flag: bool,
    letter: char,
    text: String,
    maybe: Option<u32>,
    nothing: Option<u32>,
    unit: (),
    unit_struct: Unit,
    empty: Empty,
    newtype: Newtype,
    pair: Pair,
    tuple: (u8, bool, String),
    shapes: Vec<Shape>,
    tagged: Vec<Tagged>,
    adjacent: Vec<Adjacent>,
    untagged: Vec<Untagged>,
    by_name: BTreeMap<String, Inner>,
    by_number: BTreeMap<u64, bool>,
    by_signed: BTreeMap<i32, u8>,
    by_flag: BTreeMap<bool, u8>,
    by_letter: BTreeMap<char, u8>,
    by_shape: BTreeMap<ShapeKey, u8>,
    #[serde(flatten)]
    inner: Inner,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    skipped: Option<u8>,
    nested: Vec<Vec<Option<Vec<u8>>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum ShapeKey {
    Square,
    Triangle,
}

fn everything() -> Everything {
    Everything {
        small: 255,
        signed: -128,
        big: u64::MAX,
        negative: i64::MIN,
        flag: true,
        letter: 'é',
        text:
            "quote \" backslash \\ slash / tab \t newline \n nul \0 unit \u{1f} del \u{7f} é 漢 🚀"
                .to_string(),
        maybe: Some(0),
        nothing: None,
        unit: (),
        unit_struct: Unit,
        empty: Empty {},
        newtype: Newtype(7),
        pair: Pair(-1, String::new()),
        tuple: (0, false, "x".to_string()),
        shapes: vec![
            Shape::Dot,
            Shape::Circle(3),
            Shape::Line(-5, 5),
            Shape::Rect { w: 1, h: 2 },
        ],
        tagged: vec![Tagged::A { x: 1 }, Tagged::B],
        adjacent: vec![Adjacent::A(2), Adjacent::B { s: "s".to_string() }],
        untagged: vec![
            Untagged::Num(9),
            Untagged::Text("t".to_string()),
            Untagged::Pair(1, 2),
        ],
        by_name: [
            ("k".to_string(), Inner { a: -3, b: None }),
            (
                "with \"quote\"".to_string(),
                Inner {
                    a: 0,
                    b: Some("b".to_string()),
                },
            ),
        ]
        .into(),
        by_number: [(0, true), (10, false), (u64::MAX, true)].into(),
        by_signed: [(-7, 1), (7, 2)].into(),
        by_flag: [(false, 0), (true, 1)].into(),
        by_letter: [('a', 1), ('"', 2)].into(),
        by_shape: [(ShapeKey::Square, 4), (ShapeKey::Triangle, 3)].into(),
        inner: Inner {
            a: 42,
            b: Some("flat".to_string()),
        },
        skipped: None,
        nested: vec![vec![], vec![None, Some(vec![]), Some(vec![1, 2, 3])]],
    }
}

/// `value` through the fast path's encoder and `serde_json`'s: the same bytes, and the fast
/// path's whole encode (with its fallback) too.
fn same_encoding<T: Serialize>(value: &T) -> Vec<u8> {
    let expected = serde_json::to_vec(value).unwrap();
    let mut fast = b"prefix".to_vec();
    encode_into(&JsonCodec, value, &mut fast).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&fast[6..]),
        String::from_utf8_lossy(&expected)
    );
    expected
}

/// Decodes `bytes` both ways: the fast path's value (when it takes the input) is
/// `serde_json`'s, and the fast path's whole decode returns exactly what `JsonCodec` returns.
fn same_decoding<T: DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) -> Option<T> {
    let expected = JsonCodec.decode::<T>(bytes);
    if let Some(fast) = de::read::<T>(bytes) {
        assert_eq!(
            Some(&fast),
            expected.as_ref().ok(),
            "fast path decoded {:?} from {:?}",
            fast,
            String::from_utf8_lossy(bytes)
        );
    }
    let through = decode::<JsonCodec, T>(&JsonCodec, bytes);
    assert_eq!(through, expected);
    expected.ok()
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let bytes = same_encoding(value);
    assert_eq!(same_decoding::<T>(&bytes).as_ref(), Some(value));
}

#[test]
fn test_json_fast_path_matches_serde_json_on_every_kind_of_value() {
    round_trip(&Request { seq: 0 });
    round_trip(&Request { seq: 123_456_789 });
    round_trip(&());
    round_trip(&Unit);
    round_trip(&Empty {});
    round_trip(&Newtype(u32::MAX));
    round_trip(&Pair(i16::MIN, "é".to_string()));
    round_trip(&(1u8, -2i32, "three".to_string(), Some(false), None::<u8>));
    round_trip(&u64::MAX);
    round_trip(&i64::MIN);
    round_trip(&i64::MAX);
    round_trip(&-1i64);
    round_trip(&0u8);
    round_trip(&'x');
    round_trip(&String::new());
    round_trip(&Vec::<u8>::new());
    round_trip(&vec![Shape::Dot, Shape::Rect { w: 0, h: 0 }]);
    round_trip(&everything());
    // All of these take the fast path both ways (none has a float or a 128-bit integer).
    let mut out = Vec::new();
    assert!(ser::write(&everything(), &mut out));
    // The decoder takes strings without escapes only (the rest goes to serde_json).
    assert_eq!(de::read::<Everything>(&out), None);
    let mut plain = everything();
    plain.text = "no escapes: / \u{7f} é 漢 🚀".to_string();
    plain.by_name.remove("with \"quote\"");
    plain.by_letter.remove(&'"');
    round_trip(&plain);
    let mut out = Vec::new();
    assert!(ser::write(&plain, &mut out));
    assert_eq!(de::read::<Everything>(&out), Some(plain));
}

#[test]
fn test_json_fast_path_only_takes_the_fast_shapes_and_defers_the_rest() {
    // What the fast path takes, on the way out and on the way in.
    let mut out = Vec::new();
    assert!(ser::write(&Request { seq: 5 }, &mut out));
    assert_eq!(out, b"{\"seq\":5}");
    assert_eq!(
        de::read::<Request>(b"{\"seq\":5}"),
        Some(Request { seq: 5 })
    );
    assert_eq!(de::read::<()>(b"null"), Some(()));
    assert_eq!(de::read::<String>(b"\"plain\""), Some("plain".to_string()));
    // What it leaves to serde_json, which then gives the same result as ever.
    for shape in [1.5f64, 0.0, -0.0, f64::NAN, 1e300] {
        let mut out = Vec::new();
        assert!(!ser::write(&shape, &mut out));
        same_encoding(&shape);
        same_encoding(&vec![shape]);
    }
    assert!(!ser::write(&u128::MAX, &mut Vec::new()));
    same_encoding(&u128::MAX);
    same_encoding(&i128::MIN);
    for (input, takes) in [
        (&b"{\"seq\": 5}"[..], false), // whitespace
        (b" {\"seq\":5}", false),
        (b"{\"seq\":5} ", false),
        (b"{\"s\\u0065q\":5}", false), // an escape in a key
        (b"{\"seq\":5.0}", false),     // a float
        (b"{\"seq\":5e0}", false),
        (b"{\"seq\":05}", false),
        (b"{\"seq\":18446744073709551616}", false), // above u64::MAX
        (b"{\"seq\":5,\"seq\":6}", false),          // duplicate field: serde's error
        (b"{\"seq\":5,}", false),
        (b"{\"seq\":5", false),
        (b"{\"other\":[1,{\"x\":null}],\"seq\":5}", true), // an unknown field, skipped
        (b"[5]", true),                                    // a struct as a sequence
    ] {
        assert_eq!(
            de::read::<Request>(input).is_some(),
            takes,
            "{}",
            String::from_utf8_lossy(input)
        );
        same_decoding::<Request>(input);
    }
    same_decoding::<f64>(b"5");
    same_decoding::<f64>(b"-5");
    same_decoding::<f64>(b"-0");
    same_decoding::<f64>(b"5.25");
    same_decoding::<i64>(b"-9223372036854775808");
    same_decoding::<i64>(b"-9223372036854775809");
    same_decoding::<u64>(b"-0");
    same_decoding::<i8>(b"300");
    same_decoding::<String>(b"\"tab\\tand \\u00e9\"");
    same_decoding::<String>(b"\"raw\ttab\"");
    same_decoding::<String>(b"\"\xff\"");
    same_decoding::<char>(b"\"ab\"");
    same_decoding::<BTreeMap<u8, u8>>(b"{\"1\":2,\"-1\":3}");
    same_decoding::<BTreeMap<bool, u8>>(b"{\"true\":2,\"fals\":3}");
    same_decoding::<Shape>(b"\"Circle\"");
    same_decoding::<Shape>(b"{\"Dot\":null}");
    same_decoding::<Shape>(b"{\"Dot\":1}");
    same_decoding::<Shape>(b"{\"Circle\":1,\"Dot\":null}");
    same_decoding::<Option<Option<u8>>>(b"null");
}

#[test]
fn test_json_fast_path_serde_json_values_take_the_same_path() {
    // `serde_json::Value` deserializes through `deserialize_any`, floats and all.
    let value: serde_json::Value = serde_json::from_str(
        r#"{"a":[1,-2,3.5,"x",null,true,{"b":{}}],"c":18446744073709551615,"d":-0}"#,
    )
    .unwrap();
    let bytes = same_encoding(&value);
    assert_eq!(same_decoding::<serde_json::Value>(&bytes), Some(value));
    let no_floats: serde_json::Value =
        serde_json::from_str(r#"{"a":[1,-2,"x",null,true,{"b":{}}],"c":[]}"#).unwrap();
    let bytes = same_encoding(&no_floats);
    assert!(de::read::<serde_json::Value>(&bytes).is_some());
}

/// Serializes a float, ignores the error it gets, and carries on: the fast path must not
/// keep what it wrote after giving up.
struct SwallowsItsError;

impl Serialize for SwallowsItsError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(None)?;
        let _ = seq.serialize_element(&f64::NAN);
        seq.serialize_element(&1u8)?;
        seq.end()
    }
}

/// Decodes an `f64` and falls back to 0 when that fails (as `serde_with`'s `DefaultOnError`
/// does): with the fast path's refusal of floats, it would decode 0 where serde_json gets 2.5.
#[derive(Debug, PartialEq)]
struct DefaultOnError(f64);

impl<'de> Deserialize<'de> for DefaultOnError {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Seed;
        impl<'de> serde::de::Visitor<'de> for Seed {
            type Value = DefaultOnError;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<DefaultOnError, A::Error> {
                let value = seq.next_element::<f64>().unwrap_or(Some(0.0));
                Ok(DefaultOnError(value.unwrap_or(0.0)))
            }
        }
        deserializer.deserialize_seq(Seed)
    }
}

#[test]
fn test_json_fast_path_errors_a_value_swallowed_do_not_change_the_result() {
    let mut out = Vec::new();
    assert!(!ser::write(&SwallowsItsError, &mut out));
    same_encoding(&SwallowsItsError);
    assert_eq!(de::read::<DefaultOnError>(b"[2.5]"), None);
    assert_eq!(
        decode::<JsonCodec, DefaultOnError>(&JsonCodec, b"[2.5]").unwrap(),
        DefaultOnError(2.5)
    );
}

/// A `Serialize` that always fails.
struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _serializer: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "this value refuses to be encoded",
        ))
    }
}

#[test]
fn test_json_fast_path_failures_are_json_codec_failures() {
    for codec_result in [
        {
            let mut out = b"kept".to_vec();
            let result = encode_into(&JsonCodec, &Unencodable, &mut out);
            assert_eq!(out, b"kept");
            result
        },
        {
            // serde_json refuses a map whose keys are not strings or numbers.
            let map: BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
            let mut out = b"kept".to_vec();
            let result = encode_into(&JsonCodec, &map, &mut out);
            assert_eq!(out, b"kept");
            result
        },
    ] {
        let error = codec_result.unwrap_err();
        assert!(
            matches!(error, moonpool_core::CodecError::Encode { .. }),
            "{error}"
        );
    }
    assert_eq!(
        encode_into(&JsonCodec, &Unencodable, &mut Vec::new()),
        JsonCodec.encode_into(&Unencodable, &mut Vec::new())
    );
    // A body that does not decode: JsonCodec's own error, naming the type.
    let error = decode::<JsonCodec, Request>(&JsonCodec, b"{\"seq\":\"five\"}").unwrap_err();
    assert_eq!(
        error,
        JsonCodec
            .decode::<Request>(b"{\"seq\":\"five\"}")
            .unwrap_err()
    );
    assert!(error.to_string().contains("Request"), "{error}");
    assert!(decode::<JsonCodec, Request>(&JsonCodec, b"").is_err());
}

#[test]
fn test_json_fast_path_other_codecs_are_untouched() {
    let mut out = Vec::new();
    encode_into(&BinaryCodec, &Request { seq: 5 }, &mut out).unwrap();
    assert_eq!(out, BinaryCodec.encode(&Request { seq: 5 }).unwrap());
    assert_eq!(
        decode::<BinaryCodec, Request>(&BinaryCodec, &out).unwrap(),
        Request { seq: 5 }
    );
}

#[test]
fn test_json_fast_path_huge_payloads() {
    let numbers: Vec<u64> = (0..200_000u64).map(|n| n * 7_919).collect();
    round_trip(&numbers);
    let text = "abc\u{e9}\"\n".repeat(100_000);
    round_trip(&text);
    // Nesting deeper than the fast path follows goes to serde_json (which allows 127 levels).
    let mut deep = serde_json::Value::Null;
    for _ in 0..100 {
        deep = serde_json::Value::Array(vec![deep]);
    }
    let bytes = same_encoding(&deep);
    assert!(de::read::<serde_json::Value>(&bytes).is_none());
    assert_eq!(same_decoding::<serde_json::Value>(&bytes), Some(deep));
    same_decoding::<serde_json::Value>(&[b'['; 200]);
}

/// A small deterministic generator for the mutations below.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mutate(rng: &mut Mix, bytes: &[u8]) -> Vec<u8> {
    const BYTES: &[u8] = b"{}[],:\"\\-0123456789.eEntrufalse \t\n\x00\x1f\xc3\xa9\xff";
    let mut out = bytes.to_vec();
    for _ in 0..=rng.below(3) {
        let byte = BYTES[rng.below(BYTES.len())];
        match rng.below(4) {
            0 if !out.is_empty() => {
                let at = rng.below(out.len());
                out[at] = byte;
            }
            1 => {
                let at = rng.below(out.len() + 1);
                out.insert(at, byte);
            }
            2 if !out.is_empty() => {
                let at = rng.below(out.len());
                out.remove(at);
            }
            _ => {
                let at = rng.below(out.len() + 1);
                out.truncate(at);
            }
        }
    }
    out
}

#[test]
fn test_json_fast_path_mutated_inputs_decode_as_serde_json_decodes_them() {
    let mut rng = Mix(0x9E37_79B9_7F4A_7C15);
    let everything = serde_json::to_vec(&everything()).unwrap();
    let request = serde_json::to_vec(&Request { seq: 1_234 }).unwrap();
    let shapes = serde_json::to_vec(&vec![
        Shape::Dot,
        Shape::Circle(3),
        Shape::Line(-5, 5),
        Shape::Rect { w: 1, h: 2 },
    ])
    .unwrap();
    let value = br#"{"a":[1,-2,"x",null,true,{"b":{}}],"c":[-0,7]}"#.to_vec();
    let mut taken = 0;
    for _ in 0..20_000 {
        let input = mutate(&mut rng, &request);
        taken += usize::from(same_decoding::<Request>(&input).is_some());
        same_decoding::<u64>(&input);
        same_decoding::<i64>(&input);
        same_decoding::<Option<u64>>(&input);
        same_decoding::<Vec<Shape>>(&mutate(&mut rng, &shapes));
        same_decoding::<serde_json::Value>(&mutate(&mut rng, &value));
        same_decoding::<BTreeMap<String, serde_json::Value>>(&mutate(&mut rng, &value));
    }
    for _ in 0..5_000 {
        same_decoding::<Everything>(&mutate(&mut rng, &everything));
    }
    assert!(taken > 100, "only {taken} mutated requests decoded");
}

#[test]
fn test_json_fast_path_strings_are_checked_for_utf8() {
    // ASCII (taken without a second UTF-8 check), non-ASCII (checked), invalid (left to
    // serde_json, which refuses it), and ASCII right up to the byte before a bad one.
    assert_eq!(de::read::<String>(b"\"seq\""), Some("seq".to_string()));
    assert_eq!(
        de::read::<String>(b"\"\x7f~ \""),
        Some("\x7f~ ".to_string())
    );
    assert_eq!(
        de::read::<String>("\"é漢🚀\"".as_bytes()),
        Some("é漢🚀".to_string())
    );
    for bad in [
        &b"\"\xff\""[..],
        b"\"abc\xc3\"",
        b"\"\xc3(\"",
        b"\"\xed\xa0\x80\"",
        b"\"ab\x80\"",
    ] {
        assert_eq!(de::read::<String>(bad), None);
        assert!(de::read::<&str>(bad).is_none());
        same_decoding::<String>(bad);
    }
    let mut rng = Mix(7);
    for _ in 0..20_000 {
        let len = rng.below(6);
        let mut input = vec![b'"'];
        input.extend((0..len).map(|_| match rng.below(3) {
            0 => (rng.next() % 0x80) as u8,
            _ => (rng.next() % 0x100) as u8,
        }));
        input.push(b'"');
        if let Some(text) = de::read::<&str>(&input) {
            assert_eq!(Ok(text), std::str::from_utf8(&input[1..input.len() - 1]));
        }
        same_decoding::<String>(&input);
    }
}

/// Bytes as `serialize_bytes` hands them over (what `serde_bytes` does): an array of numbers.
struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

/// A value written with `collect_str` (as many `Display` types are), escapes included.
struct Shown(&'static str);

impl Serialize for Shown {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self.0)
    }
}

#[test]
fn test_json_fast_path_std_types_bytes_and_displayed_values() {
    same_encoding(&Bytes(vec![]));
    same_encoding(&Bytes(vec![0, 1, 255]));
    same_encoding(&Shown("plain"));
    same_encoding(&Shown("with \"quotes\" and \u{1}"));
    let shown: BTreeMap<String, Shown> = [("k".to_string(), Shown("v\n"))].into();
    same_encoding(&shown);
    round_trip(&"10.0.0.1".parse::<std::net::IpAddr>().unwrap());
    round_trip(&"[::1]:4500".parse::<std::net::SocketAddr>().unwrap());
    round_trip(&std::time::Duration::new(5, 250));
    round_trip(&[1u8, 2, 3, 4]);
    round_trip(&Box::<str>::from("boxed"));
    round_trip(&std::borrow::Cow::<str>::Borrowed("cow").into_owned());
    round_trip(&Some(Box::new(Shape::Circle(1))));
    round_trip(&moonpool_core::UID::new(1, u64::MAX));
}
