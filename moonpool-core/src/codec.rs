//! Message encoding: [`MessageCodec`] and the default [`JsonCodec`].

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value could not be encoded or decoded; names the Rust type involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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

/// JSON through `serde_json`: readable on the wire and in traces. The default codec.
///
/// ```
/// use moonpool_core::{JsonCodec, MessageCodec};
/// let codec = JsonCodec;
/// let bytes = codec.encode(&(1u32, "two")).unwrap();
/// let back: (u32, String) = codec.decode(&bytes).unwrap();
/// assert_eq!(back, (1, "two".to_string()));
/// assert!(codec.decode::<u32>(b"garbage").is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonCodec;

impl MessageCodec for JsonCodec {
    fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        serde_json::to_vec(value).map_err(|error| CodecError::Encode {
            type_name: std::any::type_name::<T>(),
            message: error.to_string(),
        })
    }

    fn encode_into<T: Serialize>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let start = out.len();
        serde_json::to_writer(&mut *out, value).map_err(|error| {
            out.truncate(start);
            CodecError::Encode {
                type_name: std::any::type_name::<T>(),
                message: error.to_string(),
            }
        })
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        serde_json::from_slice(bytes).map_err(|error| CodecError::Decode {
            type_name: std::any::type_name::<T>(),
            len: bytes.len(),
            message: error.to_string(),
        })
    }
}
