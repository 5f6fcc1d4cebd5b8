//! Message encoding: [`MessageCodec`], the default [`JsonCodec`] and the compact [`BinaryCodec`].
//!
//! ## Choosing a codec
//! - [`JsonCodec`]: readable on the wire and in traces, self-describing, tolerant of added
//!   optional fields. The default.
//! - [`BinaryCodec`]: compact and fast, for the RPC hot path. Not self-describing: both ends must
//!   be built with the same message types.
//!
//! ## The binary format
//! [`BinaryCodec`] writes serde's data model as follows. *Varint* means unsigned LEB128: seven
//! bits per byte, least significant group first, the high bit set on every byte but the last; at
//! most ten bytes, at most `u64::MAX`, and canonical (no redundant trailing zero group), so every
//! value has exactly one encoding.
//!
//! | Data model | Bytes |
//! |---|---|
//! | `bool` | one byte, `0` or `1`; anything else is an error naming the byte and its offset |
//! | `u8`, `i8` | one byte |
//! | `u16` … `u128`, `i16` … `i128` | fixed width (2, 4, 8, 16 bytes), little-endian, two's complement |
//! | `f32`, `f64` | the IEEE 754 bits, little-endian (NaN payloads survive) |
//! | `char` | its scalar value as a little-endian `u32`; surrogates and values above `0x10FFFF` are errors |
//! | string, bytes | varint byte length, then the bytes; strings must be UTF-8 |
//! | `Option` | `0` for `None`; `1` then the value for `Some` |
//! | unit, unit struct | nothing |
//! | newtype struct | the inner value |
//! | tuple, tuple struct, struct | the fields in order: no count, no names |
//! | sequence | varint element count, then the elements |
//! | map | varint entry count, then key, value, key, value, … |
//! | enum variant | varint variant index (at most `u32::MAX`), then its content as above: nothing, the newtype's value, or the fields |
//!
//! A sequence or map serialized without a known length (`serialize_seq(None)`) gets a one-byte
//! placeholder that is patched when it ends; with 128 elements or more the contents shift to
//! make room for the wider count.
//!
//! Decoding rules, so that hostile input costs no more than its own size:
//! - A length or count larger than the bytes left is an error naming both, raised before
//!   anything is reserved. So every element of a sequence or map must take at least one byte:
//!   encoding a non-empty sequence of zero-sized values (`vec![(); 3]`) fails, and everything
//!   [`BinaryCodec`] encodes it can decode.
//! - Nesting (options, newtypes, sequences, tuples, structs, maps, enums) is limited to
//!   [`BinaryCodec::DEPTH_MAX`] levels, when encoding and when decoding.
//! - Bytes left after the value are an error naming how many.
//! - `deserialize_any`, `deserialize_ignored_any` and `deserialize_identifier` are errors saying
//!   the format is not self-describing; so are, in effect, `serde_json::Value`, untagged and
//!   internally tagged enums and `#[serde(flatten)]`. Avoid `#[serde(skip_serializing_if)]`: the
//!   decoder cannot tell that a field was left out.
//! - Both directions report `is_human_readable() == false`, so types such as `IpAddr` use their
//!   compact form.

use serde::Serialize;
use serde::de::DeserializeOwned;

mod binary;
mod json;

pub use binary::BinaryCodec;
pub use json::JsonCodec;

/// A value could not be encoded or decoded; names the Rust type involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Encoding failed.
    #[error("cannot encode a `{type_name}`: {message}")]
    Encode {
        /// The type being encoded.
        type_name: &'static str,
        /// What the serializer said.
        message: String,
    },
    /// Decoding failed.
    #[error("cannot decode {len} bytes as `{type_name}`: {message}")]
    Decode {
        /// The type being decoded.
        type_name: &'static str,
        /// Length of the input.
        len: usize,
        /// What the deserializer said.
        message: String,
    },
}

/// Turns messages into bytes and back.
///
/// The transport is generic over its codec, so a binary format can replace JSON without touching
/// application code.
pub trait MessageCodec: Clone + Send + Sync + 'static {
    /// Encodes `value`.
    fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, CodecError>;

    /// Appends the encoding of `value` to `out` (the transport encodes straight into its frame
    /// buffers this way). On error `out` is left as it was.
    ///
    /// The default calls [`encode`](Self::encode) and copies; codecs override it to write in place.
    fn encode_into<T: Serialize>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(&self.encode(value)?);
        Ok(())
    }

    /// Decodes a `T` from `bytes`.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError>;
}
