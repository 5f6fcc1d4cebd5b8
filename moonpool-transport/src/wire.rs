//! The wire format: `[length u32 LE][crc32c u32 LE of token+payload][token 16 bytes][payload]`.
//!
//! `length` is the size of the whole packet, header included, so the smallest valid packet is
//! [`HEADER_SIZE`] bytes (an empty payload). The token is written as its `first` half then its
//! `second` half, each little-endian. The checksum is CRC-32C (Castagnoli) over the 16 token bytes
//! followed by the payload.
//!
//! [`FrameDecoder`] is a streaming decoder: feed it whatever the socket returned (half a header,
//! three packets and a bit, one byte at a time) and pull complete [`Frame`]s out. Malformed input
//! is a [`WireError`] naming the bad value; after an error the decoder stays failed, because a
//! byte stream that lost its framing cannot be trusted again (FoundationDB tears the connection
//! down on a checksum mismatch, and so does the transport).
//!
//! ```
//! use moonpool_core::UID;
//! use moonpool_transport::wire::{encode_frame, FrameDecoder, DEFAULT_MAX_PACKET_SIZE};
//!
//! let token = UID::new(1, 2);
//! let bytes = encode_frame(token, b"hello", DEFAULT_MAX_PACKET_SIZE).unwrap();
//! let mut decoder = FrameDecoder::new(DEFAULT_MAX_PACKET_SIZE);
//! decoder.extend(&bytes[..7]); // a partial read
//! assert!(decoder.next_frame().unwrap().is_none());
//! decoder.extend(&bytes[7..]);
//! let frame = decoder.next_frame().unwrap().unwrap();
//! assert_eq!((frame.token, frame.payload.as_slice()), (token, &b"hello"[..]));
//! ```
//!
//! Floor 1, the bottom of the transport: bytes and frames only. It knows nothing of what packets
//! mean (the [`protocol`](crate::protocol)), of connections or of endpoints.

use moonpool_core::UID;

/// Bytes of the length field.
pub const LENGTH_SIZE: usize = 4;
/// Bytes of the checksum field.
pub const CHECKSUM_SIZE: usize = 4;
/// Bytes of the token.
pub const TOKEN_SIZE: usize = 16;
/// Bytes before the payload: length, checksum and token.
pub const HEADER_SIZE: usize = LENGTH_SIZE + CHECKSUM_SIZE + TOKEN_SIZE;
/// Default bound on a whole packet (header included): 1 MiB.
pub const DEFAULT_MAX_PACKET_SIZE: usize = 1 << 20;

/// Malformed bytes on the wire, or a packet that may not be sent. Every variant names the value
/// that was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The length field is smaller than a header.
    #[error("packet length {length} is smaller than the {HEADER_SIZE}-byte header")]
    LengthTooSmall {
        /// The length read from the wire.
        length: u32,
    },
    /// The length field (or a packet being encoded) exceeds the configured maximum.
    #[error("packet length {length} exceeds the maximum packet size {max}")]
    PacketTooLarge {
        /// The declared or computed length.
        length: u64,
        /// The configured maximum.
        max: usize,
    },
    /// The checksum in the header does not match the token and payload.
    #[error(
        "checksum mismatch on a {length}-byte packet for token {token}: header says {expected:#010x}, \
         content hashes to {actual:#010x}"
    )]
    ChecksumMismatch {
        /// The checksum in the header.
        expected: u32,
        /// The checksum of the bytes received.
        actual: u32,
        /// The (unverified) token of the packet.
        token: UID,
        /// The packet length.
        length: u32,
    },
    /// The configured maximum packet size cannot hold even a header.
    #[error("maximum packet size {max} is smaller than the {HEADER_SIZE}-byte header")]
    InvalidMaximum {
        /// The configured maximum.
        max: usize,
    },
}

/// One decoded packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The destination token.
    pub token: UID,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

/// The checksum of a packet: CRC-32C over the token bytes then the payload.
pub fn checksum(token: UID, payload: &[u8]) -> u32 {
    let crc = crate::crc::crc32c(&token_bytes(token));
    crate::crc::crc32c_append(crc, payload)
}

fn token_bytes(token: UID) -> [u8; TOKEN_SIZE] {
    let mut bytes = [0u8; TOKEN_SIZE];
    bytes[..8].copy_from_slice(&token.first.to_le_bytes());
    bytes[8..].copy_from_slice(&token.second.to_le_bytes());
    bytes
}

/// Encodes one packet.
pub fn encode_frame(
    token: UID,
    payload: &[u8],
    max_packet_size: usize,
) -> Result<Vec<u8>, WireError> {
    let mut builder = FrameBuilder::with_capacity(token, payload.len());
    builder.extend(payload);
    builder.finish(max_packet_size)
}

/// Appends the frame of `prefix` followed by what `body` writes (the payload) for `token` to
/// `out`; `body` writes straight into `out` (an encoder). `Ok(false)` when the packet would exceed `max_packet_size`, `Err` when `body` failed; either
/// way nothing is appended.
pub(crate) fn append_frame_with<E>(
    out: &mut Vec<u8>,
    token: UID,
    prefix: &[u8],
    body: &mut dyn FnMut(&mut Vec<u8>) -> Result<(), E>,
    max_packet_size: usize,
) -> Result<bool, E> {
    let start = out.len();
    out.extend_from_slice(&[0u8; LENGTH_SIZE + CHECKSUM_SIZE]);
    out.extend_from_slice(&token_bytes(token));
    out.extend_from_slice(prefix);
    if let Err(error) = body(out) {
        out.truncate(start);
        return Err(error);
    }
    let length = out.len() - start;
    let Ok(length32) = u32::try_from(length) else {
        out.truncate(start);
        return Ok(false);
    };
    if length > max_packet_size {
        out.truncate(start);
        return Ok(false);
    }
    let crc = crate::crc::crc32c(&out[start + LENGTH_SIZE + CHECKSUM_SIZE..]);
    out[start..start + LENGTH_SIZE].copy_from_slice(&length32.to_le_bytes());
    out[start + LENGTH_SIZE..start + LENGTH_SIZE + CHECKSUM_SIZE]
        .copy_from_slice(&crc.to_le_bytes());
    moonpool_core::annotate::frame_sent(token, crc, length);
    Ok(true)
}

/// Builds a packet in place: the payload is appended piece by piece after a reserved header, and
/// [`finish`](Self::finish) fills in the length and checksum. Avoids copying a payload that is
/// assembled from several parts.
#[derive(Debug)]
pub struct FrameBuilder {
    bytes: Vec<u8>,
}

impl FrameBuilder {
    /// A packet for `token` with room for `payload_capacity` payload bytes.
    pub fn with_capacity(token: UID, payload_capacity: usize) -> Self {
        let mut bytes = Vec::with_capacity(HEADER_SIZE + payload_capacity);
        bytes.extend_from_slice(&[0u8; LENGTH_SIZE + CHECKSUM_SIZE]);
        bytes.extend_from_slice(&token_bytes(token));
        Self { bytes }
    }

    /// A packet for `token` built in `bytes` (emptied first), keeping its capacity: for reusing
    /// a buffer that is no longer needed.
    ///
    /// ```
    /// use moonpool_core::UID;
    /// use moonpool_transport::wire::FrameBuilder;
    /// let token = UID::new(1, 2);
    /// let mut reused = FrameBuilder::with_buffer(token, vec![9; 300]);
    /// reused.extend(b"hi");
    /// let mut fresh = FrameBuilder::with_capacity(token, 2);
    /// fresh.extend(b"hi");
    /// assert_eq!(reused.finish(1024).unwrap(), fresh.finish(1024).unwrap());
    /// ```
    pub fn with_buffer(token: UID, mut bytes: Vec<u8>) -> Self {
        bytes.clear();
        bytes.extend_from_slice(&[0u8; LENGTH_SIZE + CHECKSUM_SIZE]);
        bytes.extend_from_slice(&token_bytes(token));
        Self { bytes }
    }

    /// Appends payload bytes.
    pub fn extend(&mut self, payload: &[u8]) {
        self.bytes.extend_from_slice(payload);
    }

    /// The payload as a writable buffer (for encoders that write into a `Vec<u8>`).
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// Fails when the packet, as it stands, exceeds `max_packet_size` (what
    /// [`finish`](Self::finish) checks first).
    pub fn check_size(&self, max_packet_size: usize) -> Result<(), WireError> {
        let length = self.bytes.len();
        if length > max_packet_size || u32::try_from(length).is_err() {
            return Err(WireError::PacketTooLarge {
                length: length as u64,
                max: max_packet_size,
            });
        }
        Ok(())
    }

    /// Overwrites the payload's first 16 bytes (written earlier, e.g. as zeros) with `uid`, in
    /// the layout of [`protocol::write_uid`](crate::protocol::write_uid): a field filled in
    /// after the rest of the payload. False (nothing written) when the payload is shorter.
    pub fn set_leading_uid(&mut self, uid: UID) -> bool {
        match self.bytes.get_mut(HEADER_SIZE..HEADER_SIZE + TOKEN_SIZE) {
            Some(field) => {
                field.copy_from_slice(&token_bytes(uid));
                true
            }
            None => false,
        }
    }

    /// Fills in the header; fails when the packet exceeds `max_packet_size`.
    pub fn finish(mut self, max_packet_size: usize) -> Result<Vec<u8>, WireError> {
        self.check_size(max_packet_size)?;
        let length = self.bytes.len();
        let crc = crate::crc::crc32c(&self.bytes[LENGTH_SIZE + CHECKSUM_SIZE..]);
        #[allow(clippy::cast_possible_truncation)]
        let length = length as u32;
        self.bytes[..LENGTH_SIZE].copy_from_slice(&length.to_le_bytes());
        self.bytes[LENGTH_SIZE..LENGTH_SIZE + CHECKSUM_SIZE].copy_from_slice(&crc.to_le_bytes());
        if moonpool_core::annotate::active() {
            let token = &self.bytes[LENGTH_SIZE + CHECKSUM_SIZE..HEADER_SIZE];
            let token = UID::new(read_u64(&token[..8]), read_u64(&token[8..]));
            moonpool_core::annotate::frame_sent(token, crc, length as usize);
        }
        Ok(self.bytes)
    }
}

/// A streaming packet decoder with a bounded buffer.
///
/// The buffer never holds more than one incomplete packet (at most the maximum packet size) plus
/// whatever was fed since the last [`next_frame`](Self::next_frame) call: a length field above the
/// maximum is rejected as soon as its four bytes arrive, before the body is buffered.
#[derive(Debug)]
pub struct FrameDecoder {
    /// Initialized storage; the buffered bytes are `buffer[start..end]`, and the tail after
    /// `end` is room to read into.
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    max_packet_size: usize,
    failed: Option<WireError>,
    frames_decoded: u64,
}

impl FrameDecoder {
    /// A decoder accepting packets up to `max_packet_size` bytes (header included).
    ///
    /// A maximum smaller than a header makes every packet fail with
    /// [`WireError::InvalidMaximum`].
    pub fn new(max_packet_size: usize) -> Self {
        let failed = (max_packet_size < HEADER_SIZE).then_some(WireError::InvalidMaximum {
            max: max_packet_size,
        });
        Self {
            buffer: Vec::new(),
            start: 0,
            end: 0,
            max_packet_size,
            failed,
            frames_decoded: 0,
        }
    }

    /// Appends bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        self.make_room(bytes.len());
        self.buffer[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }

    /// Makes at least `additional` bytes of room after the buffered bytes: moves them to the
    /// front when that is enough, grows the storage otherwise.
    fn make_room(&mut self, additional: usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buffer.len() - self.end < additional && self.start > 0 {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buffer.len() - self.end < additional {
            self.buffer.resize(self.end + additional, 0);
        }
    }

    /// Room for at least `len` more bytes, for reading straight into the decoder (no copy);
    /// then [`commit`](Self::commit) the bytes read.
    pub(crate) fn read_space(&mut self, len: usize) -> &mut [u8] {
        self.make_room(len);
        &mut self.buffer[self.end..]
    }

    /// Adds `len` bytes written into [`read_space`](Self::read_space).
    pub(crate) fn commit(&mut self, len: usize) {
        if self.failed.is_some() {
            return;
        }
        self.end = (self.end + len).min(self.buffer.len());
    }

    /// The next complete packet: `Ok(None)` when more bytes are needed, an error when the stream
    /// is malformed (and on every later call).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, WireError> {
        Ok(self.next_frame_borrowed()?.map(|(token, payload)| Frame {
            token,
            payload: payload.to_vec(),
        }))
    }

    /// As [`next_frame`](Self::next_frame), with the payload borrowed from the decoder's buffer
    /// (valid until the decoder is fed again): no allocation per packet.
    pub(crate) fn next_frame_borrowed(&mut self) -> Result<Option<(UID, &[u8])>, WireError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        match self.decode_range() {
            Ok(Some((token, payload))) => Ok(Some((token, &self.buffer[payload]))),
            Ok(None) => Ok(None),
            Err(error) => {
                self.failed = Some(error.clone());
                self.buffer = Vec::new();
                self.start = 0;
                self.end = 0;
                Err(error)
            }
        }
    }

    /// Decodes the next packet: its token and where its payload lies in the buffer.
    fn decode_range(&mut self) -> Result<Option<(UID, std::ops::Range<usize>)>, WireError> {
        let available = &self.buffer[self.start..self.end];
        let Some(length_bytes) = available.get(..LENGTH_SIZE) else {
            return Ok(None);
        };
        let length = read_u32(length_bytes);
        if (length as usize) < HEADER_SIZE {
            return Err(WireError::LengthTooSmall { length });
        }
        if length as usize > self.max_packet_size {
            return Err(WireError::PacketTooLarge {
                length: u64::from(length),
                max: self.max_packet_size,
            });
        }
        let Some(packet) = available.get(..length as usize) else {
            return Ok(None);
        };
        let expected = read_u32(&packet[LENGTH_SIZE..LENGTH_SIZE + CHECKSUM_SIZE]);
        let body = &packet[LENGTH_SIZE + CHECKSUM_SIZE..];
        let token = UID::new(read_u64(&body[..8]), read_u64(&body[8..TOKEN_SIZE]));
        let actual = crate::crc::crc32c(body);
        if actual != expected {
            moonpool_core::annotate::frame_corrupt(token, expected, length as usize);
            return Err(WireError::ChecksumMismatch {
                expected,
                actual,
                token,
                length,
            });
        }
        let payload =
            self.start + LENGTH_SIZE + CHECKSUM_SIZE + TOKEN_SIZE..self.start + length as usize;
        self.start += length as usize;
        self.frames_decoded += 1;
        moonpool_core::annotate::frame_received(token, expected, length as usize);
        Ok(Some((token, payload)))
    }

    /// Bytes buffered and not yet returned as packets.
    pub fn buffered_len(&self) -> usize {
        self.end - self.start
    }

    /// Packets decoded so far.
    pub fn frames_decoded(&self) -> u64 {
        self.frames_decoded
    }

    /// The error that stopped the decoder, if any.
    pub fn error(&self) -> Option<&WireError> {
        self.failed.as_ref()
    }
}

fn read_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(word)
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MAX: usize = DEFAULT_MAX_PACKET_SIZE;

    #[test]
    fn test_round_trip_and_layout() {
        let token = UID::new(0x0102_0304_0506_0708, 0x1112_1314_1516_1718);
        let bytes = encode_frame(token, b"abc", MAX).unwrap();
        assert_eq!(bytes.len(), HEADER_SIZE + 3);
        assert_eq!(&bytes[..4], &(27u32).to_le_bytes());
        assert_eq!(&bytes[4..8], &checksum(token, b"abc").to_le_bytes());
        assert_eq!(&bytes[8..16], &token.first.to_le_bytes());
        assert_eq!(&bytes[16..24], &token.second.to_le_bytes());
        assert_eq!(&bytes[24..], b"abc");
        let mut decoder = FrameDecoder::new(MAX);
        decoder.extend(&bytes);
        let frame = decoder.next_frame().unwrap().unwrap();
        assert_eq!(frame.token, token);
        assert_eq!(frame.payload, b"abc");
        assert_eq!(decoder.next_frame().unwrap(), None);
        assert_eq!(decoder.buffered_len(), 0);
    }

    #[test]
    fn test_empty_payload_is_a_header() {
        let bytes = encode_frame(UID::new(5, 6), &[], MAX).unwrap();
        assert_eq!(bytes.len(), HEADER_SIZE);
        let mut decoder = FrameDecoder::new(MAX);
        decoder.extend(&bytes);
        assert_eq!(decoder.next_frame().unwrap().unwrap().payload, b"");
    }

    #[test]
    fn test_byte_at_a_time_and_several_per_read() {
        let frames: Vec<Vec<u8>> = (0..5u64)
            .map(|i| encode_frame(UID::new(i, i + 1), &vec![i as u8; i as usize * 7], MAX).unwrap())
            .collect();
        let stream: Vec<u8> = frames.concat();
        // One byte at a time.
        let mut decoder = FrameDecoder::new(MAX);
        let mut seen = 0;
        for byte in &stream {
            decoder.extend(std::slice::from_ref(byte));
            while let Some(frame) = decoder.next_frame().unwrap() {
                assert_eq!(frame.token, UID::new(seen, seen + 1));
                seen += 1;
            }
        }
        assert_eq!(seen, 5);
        // Everything in one read.
        let mut decoder = FrameDecoder::new(MAX);
        decoder.extend(&stream);
        let mut count = 0;
        while decoder.next_frame().unwrap().is_some() {
            count += 1;
        }
        assert_eq!(count, 5);
        assert_eq!(decoder.frames_decoded(), 5);
    }

    #[test]
    fn test_checksum_mismatch_names_values_and_sticks() {
        let token = UID::new(9, 9);
        let mut bytes = encode_frame(token, b"payload", MAX).unwrap();
        bytes[HEADER_SIZE] ^= 0x01;
        let mut decoder = FrameDecoder::new(MAX);
        decoder.extend(&bytes);
        let error = decoder.next_frame().unwrap_err();
        match &error {
            WireError::ChecksumMismatch {
                expected,
                actual,
                token: t,
                length,
            } => {
                assert_eq!(*expected, checksum(token, b"payload"));
                assert_ne!(actual, expected);
                assert_eq!(*t, token);
                assert_eq!(*length as usize, bytes.len());
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(error.to_string().contains("checksum mismatch"));
        // The decoder stays failed, even when fed valid bytes.
        decoder.extend(&encode_frame(token, b"ok", MAX).unwrap());
        assert_eq!(decoder.next_frame().unwrap_err(), error);
        assert_eq!(decoder.error(), Some(&error));
    }

    #[test]
    fn test_bad_lengths() {
        let mut decoder = FrameDecoder::new(MAX);
        decoder.extend(&10u32.to_le_bytes());
        assert_eq!(
            decoder.next_frame().unwrap_err(),
            WireError::LengthTooSmall { length: 10 }
        );
        let mut decoder = FrameDecoder::new(100);
        decoder.extend(&101u32.to_le_bytes());
        let error = decoder.next_frame().unwrap_err();
        assert_eq!(
            error,
            WireError::PacketTooLarge {
                length: 101,
                max: 100
            }
        );
        assert!(error.to_string().contains("101"));
        // Oversize is rejected before the body arrives.
        let mut decoder = FrameDecoder::new(MAX);
        decoder.extend(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decoder.next_frame(),
            Err(WireError::PacketTooLarge { .. })
        ));
    }

    #[test]
    fn test_encode_respects_maximum() {
        let error = encode_frame(UID::new(1, 1), &[0u8; 100], 64).unwrap_err();
        assert_eq!(
            error,
            WireError::PacketTooLarge {
                length: (HEADER_SIZE + 100) as u64,
                max: 64
            }
        );
        assert!(encode_frame(UID::new(1, 1), &[0u8; 40], 64).is_ok());
        let mut decoder = FrameDecoder::new(10);
        assert_eq!(
            decoder.next_frame().unwrap_err(),
            WireError::InvalidMaximum { max: 10 }
        );
    }

    #[test]
    fn test_frame_builder_matches_encode() {
        let token = UID::new(3, 4);
        let mut builder = FrameBuilder::with_capacity(token, 8);
        builder.extend(b"ab");
        builder.buffer().extend_from_slice(b"cd");
        assert_eq!(
            builder.finish(MAX).unwrap(),
            encode_frame(token, b"abcd", MAX).unwrap()
        );
    }
}
