//! The binary format's internal error: every way encoding or decoding can fail, each naming the
//! bad value and where it was. It is rendered into a [`CodecError`](crate::CodecError) message.

use std::fmt::Display;

/// What went wrong, with byte offsets into the input (decoding) where they are known.
#[derive(Debug, thiserror::Error)]
pub(super) enum Error {
    /// A message from a `Serialize` or `Deserialize` impl (for example an unknown enum variant
    /// index reported by a derived visitor).
    #[error("{0}")]
    Custom(String),
    /// The input ended in the middle of a value.
    #[error("input ends at byte offset {offset}: needed {needed} more bytes, {remaining} left")]
    UnexpectedEnd {
        /// Where the read started.
        offset: usize,
        /// Bytes the read needed.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A length prefix claims more than the rest of the input can hold.
    #[error(
        "length prefix {len} at byte offset {offset} exceeds the {remaining} bytes left in the input"
    )]
    LengthTooLarge {
        /// Where the prefix starts.
        offset: usize,
        /// The claimed length (bytes for strings and bytes, elements for sequences and maps).
        len: u64,
        /// Bytes left after the prefix.
        remaining: usize,
    },
    /// A `bool` byte other than 0 or 1.
    #[error("invalid bool byte {byte:#04x} at byte offset {offset} (expected 0x00 or 0x01)")]
    InvalidBool {
        /// Where the byte is.
        offset: usize,
        /// The byte found.
        byte: u8,
    },
    /// An `Option` tag other than 0 or 1.
    #[error("invalid Option tag {byte:#04x} at byte offset {offset} (expected 0x00 or 0x01)")]
    InvalidOptionTag {
        /// Where the tag is.
        offset: usize,
        /// The byte found.
        byte: u8,
    },
    /// A `char` that is not a Unicode scalar value.
    #[error("invalid char {value:#x} at byte offset {offset} (not a Unicode scalar value)")]
    InvalidChar {
        /// Where the char starts.
        offset: usize,
        /// The 32-bit value found.
        value: u32,
    },
    /// A string that is not UTF-8.
    #[error("invalid UTF-8 in a {len}-byte string at byte offset {offset}")]
    InvalidUtf8 {
        /// Where the first invalid byte is.
        offset: usize,
        /// Length of the whole string.
        len: usize,
    },
    /// A varint longer than 10 bytes or above `u64::MAX`.
    #[error("varint at byte offset {offset} overflows 64 bits")]
    VarintOverflow {
        /// Where the varint starts.
        offset: usize,
    },
    /// A varint with redundant trailing zero groups: every value has exactly one encoding.
    #[error("non-canonical varint at byte offset {offset} (ends in a redundant zero byte)")]
    VarintNonCanonical {
        /// Where the varint starts.
        offset: usize,
    },
    /// An enum variant index above `u32::MAX`.
    #[error("enum variant index {index} at byte offset {offset} exceeds u32::MAX")]
    VariantIndexTooLarge {
        /// Where the index starts.
        offset: usize,
        /// The index found.
        index: u64,
    },
    /// Bytes left over after the value.
    #[error("{count} trailing bytes after the value, starting at byte offset {offset}")]
    TrailingBytes {
        /// Where the value ended.
        offset: usize,
        /// How many bytes follow it.
        count: usize,
    },
    /// The type asked the format to describe itself.
    #[error(
        "the binary format is not self-describing: `{method}` is not supported (types such as \
         serde_json::Value, untagged or internally tagged enums and #[serde(flatten)] need a \
         self-describing codec such as JsonCodec)"
    )]
    NotSelfDescribing {
        /// The `Deserializer` method that was called.
        method: &'static str,
    },
    /// Values nested deeper than the limit.
    #[error("nesting deeper than {depth_max} levels")]
    DepthExceeded {
        /// The limit.
        depth_max: usize,
    },
    /// A `Serialize` impl announced one length and produced another.
    #[error("a sequence or map announced {declared} elements but produced {actual}")]
    LengthMismatch {
        /// The length passed to `serialize_seq` or `serialize_map`.
        declared: usize,
        /// The number actually serialized.
        actual: usize,
    },
    /// A sequence or map whose elements take fewer bytes than their count; it could not be
    /// decoded, because a decoder bounds every count by the bytes left.
    #[error(
        "a sequence or map of {count} elements encoded in only {bytes} bytes: every element must \
         take at least one byte (sequences of zero-sized values such as `()` are not supported)"
    )]
    ZeroSizedElements {
        /// Number of elements.
        count: usize,
        /// Bytes they took.
        bytes: usize,
    },
}

impl Error {
    /// The message for a [`CodecError`](crate::CodecError); messages from serde impls, which
    /// cannot know the position, get the offset where decoding stopped.
    pub(super) fn message_at(&self, offset: usize) -> String {
        match self {
            Self::Custom(message) => format!("{message} (at byte offset {offset})"),
            other => other.to_string(),
        }
    }
}

impl serde::ser::Error for Error {
    fn custom<T: Display>(message: T) -> Self {
        Self::Custom(message.to_string())
    }
}

impl serde::de::Error for Error {
    fn custom<T: Display>(message: T) -> Self {
        Self::Custom(message.to_string())
    }
}
