//! `BinaryCodec`: round trips for every serde data model type, every decode error path, and a
//! deterministic fuzz loop over random and mutated input.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::fmt::{self, Debug};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use moonpool_core::{
    BinaryCodec, CodecError, Endpoint, JsonCodec, MessageCodec, NetworkAddress, UID, WellKnownToken,
};
use serde::de::{DeserializeOwned, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const CODEC: BinaryCodec = BinaryCodec;

/// Encodes `value` three ways (encode, encode_into an empty and a non-empty buffer), checks they
/// agree and that decoding gives `value` back; returns the encoding.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) -> Vec<u8> {
    let bytes = CODEC.encode(value).unwrap();
    let mut framed = vec![0xEE, 0xFF];
    CODEC.encode_into(value, &mut framed).unwrap();
    assert_eq!(&framed[..2], &[0xEE, 0xFF]);
    assert_eq!(&framed[2..], &bytes[..], "encode_into differs from encode");
    let back: T = CODEC.decode(&bytes).unwrap();
    assert_eq!(&back, value);
    bytes
}

/// The message of a decode error, after checking it names `T` and the input length.
fn decode_error<T: DeserializeOwned + Debug>(bytes: &[u8]) -> String {
    match CODEC.decode::<T>(bytes) {
        Err(CodecError::Decode {
            type_name,
            len,
            message,
        }) => {
            assert_eq!(type_name, std::any::type_name::<T>());
            assert_eq!(len, bytes.len());
            message
        }
        other => panic!("expected a decode error for {bytes:?}, got {other:?}"),
    }
}

/// The message of an encode error, after checking that `encode_into` left the buffer alone.
fn encode_error<T: Serialize>(value: &T) -> String {
    let mut out = vec![1, 2, 3];
    let error = CODEC.encode_into(value, &mut out).unwrap_err();
    assert_eq!(
        out,
        [1, 2, 3],
        "encode_into must leave the buffer as it was"
    );
    assert_eq!(CODEC.encode(value).unwrap_err(), error);
    match error {
        CodecError::Encode { type_name, message } => {
            assert_eq!(type_name, std::any::type_name::<T>());
            message
        }
        other => panic!("expected an encode error, got {other:?}"),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UnitStruct;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Newtype(u32);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TupleStruct(i8, String, Option<u16>);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Message {
    seq: u64,
    name: String,
    tags: Vec<String>,
    flags: BTreeMap<String, bool>,
    reply_to: Option<Endpoint>,
    body: Body,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Body {
    Empty,
    Ping(u64),
    Pair(i32, char),
    Put { key: String, value: Vec<u8> },
    Nested(Inner),
    Many(Vec<Body>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Inner {
    A,
    B(Option<Box<Inner>>),
    C { x: f64, y: (u8, u128) },
}

/// Recursive, to test the nesting limit: `Node^k Leaf` nests `k + 1` levels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Nest {
    Leaf,
    Node(Box<Nest>),
}

fn nest(depth: usize) -> Nest {
    (0..depth).fold(Nest::Leaf, |inner, _| Nest::Node(Box::new(inner)))
}

fn sample_message() -> Message {
    Message {
        seq: 0x0102_0304_0506_0708,
        name: "héllo wörld".to_string(),
        tags: vec!["a".into(), String::new(), "ccc".into()],
        flags: [("x".to_string(), true), ("y".to_string(), false)]
            .into_iter()
            .collect(),
        reply_to: Some(Endpoint::new(
            NetworkAddress::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 4500),
            UID::new(7, 9),
        )),
        body: Body::Many(vec![
            Body::Empty,
            Body::Ping(u64::MAX),
            Body::Pair(-5, '🦀'),
            Body::Put {
                key: "k".into(),
                value: vec![0, 255, 7],
            },
            Body::Nested(Inner::B(Some(Box::new(Inner::C {
                x: -1.5,
                y: (3, u128::MAX),
            })))),
            Body::Nested(Inner::A),
        ]),
    }
}

/// Bytes through `serialize_bytes` / `deserialize_byte_buf`.
#[derive(Debug, Clone, PartialEq)]
struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl Visitor<'_> for BytesVisitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
        }
        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

/// A sequence serialized without announcing its length (as iterator adapters do).
#[derive(Debug, Clone, PartialEq)]
struct UnknownLen(Vec<u32>);

impl Serialize for UnknownLen {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for item in &self.0 {
            seq.serialize_element(item)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for UnknownLen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::deserialize(deserializer).map(UnknownLen)
    }
}

/// A map serialized without announcing its length, holding unknown-length sequences.
#[derive(Debug, Clone, PartialEq)]
struct UnknownLenMap(BTreeMap<u8, UnknownLen>);

impl Serialize for UnknownLenMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for UnknownLenMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(deserializer).map(UnknownLenMap)
    }
}

/// Announces `declared` elements and serializes `actual`.
struct LyingLen {
    declared: usize,
    actual: usize,
}

impl Serialize for LyingLen {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.declared))?;
        for i in 0..self.actual {
            seq.serialize_element(&(i as u8))?;
        }
        seq.end()
    }
}

/// Writes some bytes and then fails.
struct FailsHalfway;

impl Serialize for FailsHalfway {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(3))?;
        seq.serialize_element("written")?;
        seq.serialize_element(&42u64)?;
        Err(serde::ser::Error::custom("refusing the third element"))
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

#[test]
fn test_integers_round_trip_at_every_width() {
    for value in [0u8, 1, 0x7f, 0x80, u8::MAX] {
        assert_eq!(round_trip(&value), [value]);
    }
    for value in [i8::MIN, -1, 0, i8::MAX] {
        assert_eq!(round_trip(&value).len(), 1);
    }
    for value in [0u16, 1, 0x1234, u16::MAX] {
        assert_eq!(round_trip(&value), value.to_le_bytes());
    }
    for value in [i16::MIN, -1, 0, i16::MAX] {
        assert_eq!(round_trip(&value), value.to_le_bytes());
    }
    for value in [0u32, 1, 0xDEAD_BEEF, u32::MAX] {
        assert_eq!(round_trip(&value), value.to_le_bytes());
    }
    for value in [i32::MIN, -1, 0, i32::MAX] {
        assert_eq!(round_trip(&value), value.to_le_bytes());
    }
    for value in [0u64, 1, 0x0102_0304_0506_0708, u64::MAX] {
        assert_eq!(round_trip(&value), value.to_le_bytes());
    }
    for value in [i64::MIN, -1, 0, i64::MAX] {
        assert_eq!(round_trip(&value), value.to_le_bytes());
    }
    for value in [0u128, 1, u128::from(u64::MAX) + 1, u128::MAX] {
        assert_eq!(round_trip(&value), value.to_le_bytes());
    }
    for value in [i128::MIN, -1, 0, i128::MAX] {
        assert_eq!(round_trip(&value), value.to_le_bytes());
    }
    assert_eq!(round_trip(&0x0102_0304u32), [4, 3, 2, 1]);
}

#[test]
fn test_floats_round_trip_bit_for_bit_including_nan_payloads() {
    let f32_bits = [
        0.0f32.to_bits(),
        (-0.0f32).to_bits(),
        1.5f32.to_bits(),
        f32::INFINITY.to_bits(),
        f32::NEG_INFINITY.to_bits(),
        f32::MIN_POSITIVE.to_bits(),
        1, // subnormal
        0x7fc0_0000,
        0x7fc0_1234, // quiet NaN with a payload
        0x7f80_0001, // signalling NaN
        0xffc0_0000, // negative NaN
    ];
    for bits in f32_bits {
        let bytes = CODEC.encode(&f32::from_bits(bits)).unwrap();
        assert_eq!(bytes, bits.to_le_bytes());
        let back: f32 = CODEC.decode(&bytes).unwrap();
        assert_eq!(back.to_bits(), bits);
    }
    let f64_bits = [
        0.0f64.to_bits(),
        (-0.0f64).to_bits(),
        std::f64::consts::PI.to_bits(),
        f64::INFINITY.to_bits(),
        f64::MAX.to_bits(),
        0x7ff8_0000_0000_0000,
        0x7ff8_dead_beef_0001,
        0x7ff0_0000_0000_0001,
        0xfff8_0000_0000_0000,
    ];
    for bits in f64_bits {
        let bytes = CODEC.encode(&f64::from_bits(bits)).unwrap();
        assert_eq!(bytes, bits.to_le_bytes());
        let back: f64 = CODEC.decode(&bytes).unwrap();
        assert_eq!(back.to_bits(), bits);
    }
}

#[test]
fn test_bool_and_char_round_trip() {
    assert_eq!(round_trip(&false), [0]);
    assert_eq!(round_trip(&true), [1]);
    assert_eq!(round_trip(&'A'), [0x41, 0, 0, 0]);
    for value in ['\0', 'é', '\u{D7FF}', '\u{E000}', '🦀', char::MAX] {
        assert_eq!(round_trip(&value), u32::from(value).to_le_bytes());
    }
}

#[test]
fn test_strings_round_trip_with_varint_lengths() {
    assert_eq!(round_trip(&String::new()), [0]);
    assert_eq!(round_trip(&"abc".to_string()), [3, b'a', b'b', b'c']);
    round_trip(&"héllo wörld 🦀".to_string());
    // 127 bytes: a one-byte length; 128: two bytes (0x80 0x01); 300: 0xAC 0x02.
    let s127 = "x".repeat(127);
    assert_eq!(&round_trip(&s127)[..1], &[127]);
    let s128 = "x".repeat(128);
    assert_eq!(&round_trip(&s128)[..2], &[0x80, 0x01]);
    let s300 = "y".repeat(300);
    let bytes = round_trip(&s300);
    assert_eq!(&bytes[..2], &[0xAC, 0x02]);
    assert_eq!(bytes.len(), 302);
    round_trip(&"z".repeat(100_000));
}

#[test]
fn test_borrowed_str_and_bytes_point_into_the_input() {
    let bytes = CODEC.encode(&"borrowed").unwrap();
    let text: &str = CODEC.decode_borrowed(&bytes).unwrap();
    assert_eq!(text, "borrowed");
    assert!(bytes.as_ptr_range().contains(&text.as_ptr()));

    let encoded = CODEC.encode(&Bytes(vec![9, 8, 7])).unwrap();
    let raw: &[u8] = CODEC.decode_borrowed(&encoded).unwrap();
    assert_eq!(raw, [9, 8, 7]);
    assert!(encoded.as_ptr_range().contains(&raw.as_ptr()));

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct View<'a> {
        id: u32,
        name: &'a str,
        parts: Vec<&'a str>,
    }
    let view = View {
        id: 3,
        name: "view",
        parts: vec!["p", "q"],
    };
    let encoded = CODEC.encode(&view).unwrap();
    let back: View<'_> = CODEC.decode_borrowed(&encoded).unwrap();
    assert_eq!(back, view);
    assert!(encoded.as_ptr_range().contains(&back.name.as_ptr()));
    // The owned form decodes from the same bytes.
    let owned: (u32, String, Vec<String>) = CODEC.decode(&encoded).unwrap();
    assert_eq!(owned, (3, "view".into(), vec!["p".into(), "q".into()]));
}

#[test]
fn test_bytes_round_trip() {
    assert_eq!(round_trip(&Bytes(Vec::new())), [0]);
    assert_eq!(round_trip(&Bytes(vec![0, 1, 255])), [3, 0, 1, 255]);
    round_trip(&Bytes((0..=255).cycle().take(10_000).collect()));
}

#[test]
fn test_option_unit_unit_struct_and_newtype_round_trip() {
    assert_eq!(round_trip(&None::<u32>), [0]);
    assert_eq!(round_trip(&Some(5u8)), [1, 5]);
    assert_eq!(round_trip(&Some(None::<u8>)), [1, 0]);
    assert_eq!(round_trip(&Some(Some(())),), [1, 1]);
    assert_eq!(round_trip(&()), Vec::<u8>::new());
    assert_eq!(round_trip(&UnitStruct), Vec::<u8>::new());
    assert_eq!(round_trip(&Newtype(7)), [7, 0, 0, 0]);
    round_trip(&std::marker::PhantomData::<String>);
}

#[test]
fn test_tuples_and_structs_are_their_fields_in_order() {
    assert_eq!(round_trip(&(1u8, true, 'a')), [1, 1, 0x61, 0, 0, 0]);
    assert_eq!(
        round_trip(&TupleStruct(-1, "s".into(), Some(2))),
        [0xFF, 1, b's', 1, 2, 0]
    );
    assert_eq!(round_trip(&[7u16; 3]), [7, 0, 7, 0, 7, 0]);
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Point {
        x: u8,
        y: i16,
    }
    assert_eq!(round_trip(&Point { x: 1, y: -2 }), [1, 0xFE, 0xFF]);
    round_trip(&sample_message());
    round_trip(&(
        (),
        UnitStruct,
        Newtype(1),
        (
            (1u8,),
            [(); 0],
            std::time::Duration::from_nanos(123_456_789),
        ),
    ));
}

#[test]
fn test_collections_round_trip_including_empty_ones() {
    assert_eq!(round_trip(&Vec::<u64>::new()), [0]);
    assert_eq!(round_trip(&vec![1u8, 2, 3]), [3, 1, 2, 3]);
    assert_eq!(round_trip(&BTreeMap::<String, u32>::new()), [0]);
    let map: BTreeMap<u8, String> = [(1, "a".into()), (2, String::new())].into_iter().collect();
    assert_eq!(round_trip(&map), [2, 1, 1, b'a', 2, 0]);
    round_trip(&vec![
        Vec::<String>::new(),
        vec![String::new()],
        vec!["x".into(); 3],
    ]);
    let nested: BTreeMap<String, BTreeMap<u32, Vec<Option<bool>>>> = [
        ("empty".to_string(), BTreeMap::new()),
        (
            "full".to_string(),
            [(1, vec![None, Some(true), Some(false)]), (2, vec![])]
                .into_iter()
                .collect(),
        ),
    ]
    .into_iter()
    .collect();
    round_trip(&nested);
    round_trip(&(0..1000u32).collect::<Vec<_>>());
    round_trip(&std::collections::BTreeSet::from([3u16, 1, 2]));
    // A sequence of zero-sized values is fine when empty.
    assert_eq!(round_trip(&Vec::<()>::new()), [0]);
}

#[test]
fn test_nested_enums_round_trip_every_variant_kind() {
    assert_eq!(round_trip(&Body::Empty), [0]);
    assert_eq!(round_trip(&Body::Ping(1)), [1, 1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        round_trip(&Body::Pair(2, 'b')),
        [2, 2, 0, 0, 0, b'b', 0, 0, 0]
    );
    assert_eq!(
        round_trip(&Body::Put {
            key: "k".into(),
            value: vec![9]
        }),
        [3, 1, b'k', 1, 9]
    );
    round_trip(&Body::Nested(Inner::A));
    round_trip(&Body::Nested(Inner::B(None)));
    round_trip(&Body::Nested(Inner::B(Some(Box::new(Inner::B(Some(
        Box::new(Inner::C {
            x: f64::MIN,
            y: (0, 1),
        }),
    )))))));
    round_trip(&Body::Many(vec![]));
    round_trip(&Body::Many(vec![Body::Many(vec![
        Body::Empty,
        Body::Ping(3),
    ])]));
    round_trip(&Ok::<u8, String>(1));
    round_trip(&Err::<u8, String>("no".into()));
    round_trip(&nest(100));
}

#[test]
fn test_core_types_round_trip() {
    round_trip(&UID::new(u64::MAX, 42));
    round_trip(&UID::well_known(3));
    round_trip(&NetworkAddress::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 443));
    let endpoint = Endpoint::well_known("10.0.0.1:4500".parse().unwrap(), WellKnownToken::Ping);
    let bytes = round_trip(&endpoint);
    // The compact form is much smaller than JSON.
    assert!(bytes.len() < JsonCodec.encode(&endpoint).unwrap().len() / 2);
}

#[test]
fn test_unknown_length_sequences_are_back_patched() {
    for len in [0usize, 1, 5, 127, 128, 129, 300, 16_383, 16_384, 20_000] {
        let items: Vec<u32> = (0..len as u32).collect();
        let bytes = round_trip(&UnknownLen(items.clone()));
        assert_eq!(bytes, CODEC.encode(&items).unwrap(), "len {len}");
    }
    let map = UnknownLenMap(
        (0..=200u8)
            .map(|key| (key, UnknownLen((0..u32::from(key)).collect())))
            .collect(),
    );
    let bytes = round_trip(&map);
    let known: BTreeMap<u8, Vec<u32>> = map
        .0
        .iter()
        .map(|(key, value)| (*key, value.0.clone()))
        .collect();
    assert_eq!(bytes, CODEC.encode(&known).unwrap());
    // Inside a larger frame the patch lands at the right place.
    let mut framed = b"head".to_vec();
    CODEC
        .encode_into(&(UnknownLen((0..200).collect()), 7u8), &mut framed)
        .unwrap();
    let back: (Vec<u32>, u8) = CODEC.decode(&framed[4..]).unwrap();
    assert_eq!(back, ((0..200).collect(), 7));
}

// ---------------------------------------------------------------------------------------------
// Encode errors
// ---------------------------------------------------------------------------------------------

#[test]
fn test_encode_errors_leave_the_buffer_unchanged() {
    let message = encode_error(&FailsHalfway);
    assert!(message.contains("refusing the third element"), "{message}");

    let message = encode_error(&LyingLen {
        declared: 3,
        actual: 2,
    });
    assert!(
        message.contains("announced 3 elements but produced 2"),
        "{message}"
    );
    let message = encode_error(&LyingLen {
        declared: 0,
        actual: 1,
    });
    assert!(
        message.contains("announced 0 elements but produced 1"),
        "{message}"
    );
}

#[test]
fn test_sequences_of_zero_sized_values_are_rejected_on_encode() {
    let message = encode_error(&vec![(); 3]);
    assert!(
        message.contains("3 elements encoded in only 0 bytes"),
        "{message}"
    );
    let message = encode_error(&vec![UnitStruct; 2]);
    assert!(message.contains("2 elements"), "{message}");
    let map: BTreeMap<(), ()> = [((), ())].into_iter().collect();
    encode_error(&map);
}

#[test]
fn test_nesting_limit_applies_to_encode_and_decode() {
    assert_eq!(BinaryCodec::DEPTH_MAX, 128);
    // Node^127 Leaf nests exactly 128 levels.
    let deepest = nest(BinaryCodec::DEPTH_MAX - 1);
    round_trip(&deepest);
    let message = encode_error(&nest(BinaryCodec::DEPTH_MAX));
    assert!(
        message.contains("nesting deeper than 128 levels"),
        "{message}"
    );

    let mut bytes = vec![1u8; BinaryCodec::DEPTH_MAX];
    bytes.push(0);
    let message = decode_error::<Nest>(&bytes);
    assert!(
        message.contains("nesting deeper than 128 levels"),
        "{message}"
    );

    // Far deeper hostile input fails at the limit rather than overflowing the stack.
    let mut bytes = vec![1u8; 1_000_000];
    bytes.push(0);
    let message = decode_error::<Nest>(&bytes);
    assert!(
        message.contains("nesting deeper than 128 levels"),
        "{message}"
    );

    // Options and sequences count too.
    type Deep = Option<Vec<Option<Box<Nest>>>>;
    let message = decode_error::<Deep>(&[1, 1, 1].repeat(200));
    assert!(message.contains("nesting deeper"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// Decode errors
// ---------------------------------------------------------------------------------------------

#[test]
fn test_truncated_input_at_every_prefix_is_an_error() {
    let bytes = CODEC.encode(&sample_message()).unwrap();
    assert!(bytes.len() > 100);
    for cut in 0..bytes.len() {
        let message = decode_error::<Message>(&bytes[..cut]);
        assert!(
            message.contains("input ends") || message.contains("exceeds the"),
            "cut {cut}: {message}"
        );
    }
    let message = decode_error::<u64>(&[1, 2, 3]);
    assert_eq!(
        message,
        "input ends at byte offset 0: needed 8 more bytes, 3 left"
    );
}

#[test]
fn test_invalid_bool_byte_names_the_byte_and_offset() {
    let message = decode_error::<bool>(&[2]);
    assert_eq!(
        message,
        "invalid bool byte 0x02 at byte offset 0 (expected 0x00 or 0x01)"
    );
    let message = decode_error::<(u8, u16, bool)>(&[0, 0, 0, 0xFF]);
    assert!(
        message.contains("invalid bool byte 0xff at byte offset 3"),
        "{message}"
    );
}

#[test]
fn test_invalid_option_tag_is_an_error() {
    let message = decode_error::<Option<u8>>(&[7, 1]);
    assert!(
        message.contains("invalid Option tag 0x07 at byte offset 0"),
        "{message}"
    );
}

#[test]
fn test_invalid_char_is_an_error() {
    for value in [0xD800u32, 0xDFFF, 0x11_0000, u32::MAX] {
        let message = decode_error::<char>(&value.to_le_bytes());
        assert!(
            message.contains(&format!("invalid char {value:#x} at byte offset 0")),
            "{message}"
        );
    }
}

#[test]
fn test_invalid_utf8_is_an_error() {
    let message = decode_error::<String>(&[3, b'a', 0xFF, b'b']);
    assert!(
        message.contains("invalid UTF-8 in a 3-byte string at byte offset 2"),
        "{message}"
    );
    // A truncated multi-byte sequence.
    decode_error::<String>(&[2, 0xE2, 0x82]);
    // Borrowed strings are checked the same way.
    assert!(CODEC.decode_borrowed::<&str>(&[1, 0x80]).is_err());
}

#[test]
fn test_oversized_length_prefix_names_length_and_bytes_left() {
    // 2^32 - 1 as a varint, then one byte.
    let message = decode_error::<String>(&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F, b'x']);
    assert_eq!(
        message,
        "length prefix 4294967295 at byte offset 0 exceeds the 1 bytes left in the input"
    );
    // u64::MAX elements: rejected before anything is reserved.
    let mut bytes = vec![0xFF; 9];
    bytes.push(0x01);
    let message = decode_error::<Vec<u64>>(&bytes);
    assert!(
        message.contains("length prefix 18446744073709551615"),
        "{message}"
    );
    let message = decode_error::<BTreeMap<u8, u8>>(&[5, 1, 1]);
    assert!(message.contains("length prefix 5 at byte offset 0 exceeds the 2 bytes left"));
    let message = decode_error::<Bytes>(&[4, 1, 2]);
    assert!(message.contains("length prefix 4"), "{message}");
    // Lengths deeper in the value name their own offset.
    let message = decode_error::<(u8, Vec<u8>)>(&[0, 9, 1]);
    assert!(
        message.contains("at byte offset 1 exceeds the 1 bytes left"),
        "{message}"
    );
}

#[test]
fn test_malformed_varints_are_errors() {
    let message = decode_error::<String>(&[0x80, 0x00]);
    assert!(
        message.contains("non-canonical varint at byte offset 0"),
        "{message}"
    );
    let message = decode_error::<Vec<u8>>(&[0x81, 0x80, 0x00]);
    assert!(message.contains("non-canonical"), "{message}");
    let mut eleven = vec![0x80; 10];
    eleven.push(0x01);
    let message = decode_error::<String>(&eleven);
    assert!(message.contains("overflows 64 bits"), "{message}");
    let mut top = vec![0xFF; 9];
    top.push(0x02);
    let message = decode_error::<String>(&top);
    assert!(message.contains("overflows 64 bits"), "{message}");
    let message = decode_error::<String>(&[0x80]);
    assert!(message.contains("input ends at byte offset 1"), "{message}");
}

#[test]
fn test_trailing_bytes_are_named() {
    let message = decode_error::<u8>(&[1, 2, 3]);
    assert_eq!(
        message,
        "2 trailing bytes after the value, starting at byte offset 1"
    );
    let mut bytes = CODEC.encode(&sample_message()).unwrap();
    let len = bytes.len();
    bytes.push(0);
    let message = decode_error::<Message>(&bytes);
    assert!(message.contains(&format!(
        "1 trailing bytes after the value, starting at byte offset {len}"
    )));
}

#[test]
fn test_unknown_enum_variant_index_is_an_error() {
    let message = decode_error::<Body>(&[6]);
    assert!(message.contains("variant index 0 <= i < 6"), "{message}");
    assert!(message.contains("at byte offset 1"), "{message}");
    let message = decode_error::<Body>(&[4, 3]);
    assert!(
        message.contains("expected variant index 0 <= i < 3"),
        "{message}"
    );
    // Above u32::MAX: 2^32 as a varint.
    let message = decode_error::<Body>(&[0x80, 0x80, 0x80, 0x80, 0x10]);
    assert!(
        message.contains("enum variant index 4294967296 at byte offset 0"),
        "{message}"
    );
}

#[test]
fn test_self_describing_types_are_rejected() {
    let bytes = CODEC.encode(&1u8).unwrap();
    let message = decode_error::<serde_json::Value>(&bytes);
    assert!(message.contains("not self-describing"), "{message}");
    assert!(message.contains("deserialize_any"), "{message}");

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(untagged)]
    enum Untagged {
        Number(u8),
        Text(String),
    }
    let message = decode_error::<Untagged>(&[1]);
    assert!(message.contains("not self-describing"), "{message}");

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(tag = "type")]
    enum Internal {
        A { x: u8 },
    }
    let message = decode_error::<Internal>(&[1]);
    assert!(message.contains("not self-describing"), "{message}");

    #[derive(Debug, Serialize, Deserialize)]
    struct Flattened {
        a: u8,
        #[serde(flatten)]
        rest: BTreeMap<String, u8>,
    }
    let message = decode_error::<Flattened>(&[1, 1, b'a', 0]);
    assert!(message.contains("not self-describing"), "{message}");

    /// Asks for an identifier and for an ignored value directly.
    #[derive(Debug)]
    struct Identifier;
    impl<'de> Deserialize<'de> for Identifier {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer
                .deserialize_identifier(serde::de::IgnoredAny)
                .map(|_| Identifier)
        }
    }
    let message = decode_error::<Identifier>(&[1, b'a']);
    assert!(
        message.contains("`deserialize_identifier` is not supported"),
        "{message}"
    );
    let message = decode_error::<serde::de::IgnoredAny>(&[1]);
    assert!(
        message.contains("`deserialize_ignored_any` is not supported"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------------
// Fuzzing
// ---------------------------------------------------------------------------------------------

/// xorshift64: deterministic, good enough to generate junk.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// Decodes `bytes` as several nested types; any result is fine, a panic is not.
fn decode_all(bytes: &[u8]) -> usize {
    let mut ok = 0;
    ok += usize::from(CODEC.decode::<Message>(bytes).is_ok());
    ok += usize::from(CODEC.decode::<Vec<Body>>(bytes).is_ok());
    ok += usize::from(
        CODEC
            .decode::<BTreeMap<String, Option<Vec<u16>>>>(bytes)
            .is_ok(),
    );
    ok += usize::from(CODEC.decode::<Nest>(bytes).is_ok());
    ok += usize::from(CODEC.decode::<(char, bool, f32, Inner)>(bytes).is_ok());
    ok += usize::from(CODEC.decode_borrowed::<Vec<&str>>(bytes).is_ok());
    ok
}

#[test]
fn test_fuzz_random_bytes_never_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut decoded = 0;
    let mut buffer = Vec::new();
    for _ in 0..100_000 {
        buffer.clear();
        let len = rng.below(48) as usize;
        // Bias towards small bytes so that tags, indexes and lengths are often valid.
        let small = rng.below(2) == 0;
        for _ in 0..len {
            let byte = rng.next() as u8;
            buffer.push(if small { byte % 8 } else { byte });
        }
        decoded += decode_all(&buffer);
    }
    // Some random inputs are valid values (for example a short Vec<Body>).
    assert!(decoded > 0);
}

#[test]
fn test_fuzz_mutated_valid_encodings_never_panic() {
    let mut rng = XorShift(0x0123_4567_89AB_CDEF);
    let valid = [
        CODEC.encode(&sample_message()).unwrap(),
        CODEC.encode(&vec![sample_message().body; 3]).unwrap(),
        CODEC.encode(&nest(50)).unwrap(),
    ];
    for round in 0..20_000 {
        let mut bytes = valid[round % valid.len()].clone();
        for _ in 0..=rng.below(4) {
            let index = rng.below(bytes.len() as u64) as usize;
            match rng.below(3) {
                0 => bytes[index] = rng.next() as u8,
                1 => bytes.truncate(index),
                _ => bytes.insert(index, rng.next() as u8),
            }
            if bytes.is_empty() {
                break;
            }
        }
        decode_all(&bytes);
    }
}
