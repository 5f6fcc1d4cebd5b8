//! [`JsonCodec`]: JSON through `serde_json`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{CodecError, MessageCodec};

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
