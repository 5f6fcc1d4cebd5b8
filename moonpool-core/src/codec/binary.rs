//! [`BinaryCodec`]: the compact binary format described in the [module docs](super).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{CodecError, MessageCodec};

mod de;
mod error;
mod ser;

/// How deeply values may nest (options, newtypes, sequences, tuples, structs, maps, enums)
/// before encoding or decoding fails: bounds the recursion that hostile input can cause.
const DEPTH_MAX: usize = 128;

/// How deep the value being encoded or decoded is nested, bounded by [`DEPTH_MAX`].
#[derive(Debug, Default)]
struct Depth(usize);

impl Depth {
    /// Goes one nesting level down, or fails past [`DEPTH_MAX`].
    #[inline]
    fn enter(&mut self) -> Result<(), error::Error> {
        if self.0 >= DEPTH_MAX {
            return Err(error::Error::DepthExceeded {
                depth_max: DEPTH_MAX,
            });
        }
        self.0 += 1;
        Ok(())
    }

    /// Comes back up one nesting level.
    #[inline]
    fn leave(&mut self) {
        self.0 = self.0.saturating_sub(1);
    }
}

/// What [`BinaryCodec::encode`] reserves up front: most RPC messages fit, larger ones grow.
const ENCODE_CAPACITY_INITIAL: usize = 64;

/// A compact binary serde format, written for the RPC hot path: fixed-width little-endian
/// numbers, varint lengths, no field names and no type tags. See the
/// [format description](super#the-binary-format).
///
/// It is **not self-describing**: both ends must agree on the exact Rust types, and types that
/// inspect the input to decide what they are (`serde_json::Value`, `#[serde(untagged)]`,
/// internally tagged enums, `#[serde(flatten)]`) fail with a [`CodecError`] saying so. Encoding
/// writes straight into the caller's buffer, and decoding borrows `&str` and `&[u8]` from the
/// input ([`decode_borrowed`](Self::decode_borrowed)). Hostile input gets a typed error, never
/// a panic or an allocation larger than the input.
///
/// ```
/// use std::collections::BTreeMap;
/// use moonpool_core::{BinaryCodec, CodecError, MessageCodec};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// enum Request {
///     Get { key: String },
///     Put { key: String, value: Vec<u8>, ttl_ms: Option<u64> },
///     Batch(BTreeMap<u32, bool>),
/// }
///
/// let codec = BinaryCodec;
/// let request = Request::Get { key: "apple".to_string() };
/// let bytes = codec.encode(&request)?;
/// // Variant index 0, then the key: length 5 and its bytes.
/// assert_eq!(bytes, [0, 5, b'a', b'p', b'p', b'l', b'e']);
/// assert_eq!(codec.decode::<Request>(&bytes)?, request);
///
/// // Encode into an existing frame buffer.
/// let mut frame = vec![0xAB];
/// codec.encode_into(&(7u16, true), &mut frame)?;
/// assert_eq!(frame, [0xAB, 7, 0, 1]);
///
/// // Borrow straight from the input.
/// let name: &str = codec.decode_borrowed(&bytes[1..])?;
/// assert_eq!(name, "apple");
///
/// // Bad input is a typed error naming what was wrong.
/// let error = codec.decode::<bool>(&[2]).unwrap_err();
/// assert!(matches!(error, CodecError::Decode { len: 1, .. }));
/// assert!(error.to_string().contains("invalid bool byte 0x02 at byte offset 0"));
/// # Ok::<(), CodecError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BinaryCodec;

impl BinaryCodec {
    /// How deeply values may nest before encoding or decoding fails.
    pub const DEPTH_MAX: usize = DEPTH_MAX;

    /// Decodes a `T` that may borrow from `bytes` (`&str`, `&[u8]`, structs holding them).
    /// [`MessageCodec::decode`] is this for owned types.
    pub fn decode_borrowed<'de, T: Deserialize<'de>>(
        &self,
        bytes: &'de [u8],
    ) -> Result<T, CodecError> {
        let mut deserializer = de::Deserializer::new(bytes);
        let result = T::deserialize(&mut deserializer)
            .and_then(|value| deserializer.finish().map(|()| value));
        result.map_err(|error| CodecError::Decode {
            type_name: std::any::type_name::<T>(),
            len: bytes.len(),
            message: error.message_at(deserializer.offset()),
        })
    }
}

impl MessageCodec for BinaryCodec {
    #[inline]
    fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(ENCODE_CAPACITY_INITIAL);
        self.encode_into(value, &mut out)?;
        Ok(out)
    }

    #[inline]
    fn encode_into<T: Serialize>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let start = out.len();
        let result = value.serialize(&mut ser::Serializer::new(out));
        result.map_err(|error| {
            out.truncate(start);
            CodecError::Encode {
                type_name: std::any::type_name::<T>(),
                message: error.to_string(),
            }
        })
    }

    #[inline]
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        self.decode_borrowed(bytes)
    }
}
