//! A fast path for [`JsonCodec`]: the transport's encodes and decodes of message bodies, when the
//! codec is `JsonCodec`, go through a serializer and a deserializer of its own that produce
//! exactly the bytes `serde_json` produces and decode exactly the values it decodes, for the
//! values small messages are made of (structs, enums, sequences, maps, strings, integers,
//! booleans, options, units). Anything else (a float, a 128-bit integer, an escaped string on
//! the way in, whitespace, any error) goes to `JsonCodec` itself, unchanged: the bytes on the
//! wire, the values and the error messages are `JsonCodec`'s in every case, only cheaper.
//!
//! `serde_json` spends several hundred instructions per small message on its general
//! machinery (its writer and formatter layers, its whitespace and escape scans, its number
//! parser's float cases); the fast path does the same work for the compact form only.
//!
//! Floor 1: bytes and codecs only.

use std::any::TypeId;

use moonpool_core::{CodecError, JsonCodec, MessageCodec};
use serde::Serialize;
use serde::de::DeserializeOwned;

mod de;
mod ser;

#[cfg(test)]
mod tests;

/// Appends the encoding of `value` by `codec` to `out`, as
/// [`MessageCodec::encode_into`] does (on error `out` is left as it was).
#[inline]
pub(crate) fn encode_into<C: MessageCodec, T: Serialize>(
    codec: &C,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    if TypeId::of::<C>() == TypeId::of::<JsonCodec>() {
        let start = out.len();
        if ser::write(value, out) {
            return Ok(());
        }
        out.truncate(start);
        return encode_slowly(codec, value, out);
    }
    codec.encode_into(value, out)
}

/// `JsonCodec` itself, where the fast path gave up: out of line, so that `serde_json`'s code
/// does not crowd the fast path's.
#[cold]
#[inline(never)]
fn encode_slowly<C: MessageCodec, T: Serialize>(
    codec: &C,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    codec.encode_into(value, out)
}

/// Decodes a `T` from `bytes` with `codec`, as [`MessageCodec::decode`] does.
#[inline]
pub(crate) fn decode<C: MessageCodec, T: DeserializeOwned>(
    codec: &C,
    bytes: &[u8],
) -> Result<T, CodecError> {
    if TypeId::of::<C>() == TypeId::of::<JsonCodec>() {
        return match de::read::<T>(bytes) {
            Some(value) => Ok(value),
            None => decode_slowly(codec, bytes),
        };
    }
    codec.decode(bytes)
}

/// `JsonCodec` itself, where the fast path gave up (out of line, as [`encode_slowly`]).
#[cold]
#[inline(never)]
fn decode_slowly<C: MessageCodec, T: DeserializeOwned>(
    codec: &C,
    bytes: &[u8],
) -> Result<T, CodecError> {
    codec.decode(bytes)
}
