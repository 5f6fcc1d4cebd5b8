//! The streaming decoder against 100,000 random and corrupted frames from a seeded generator:
//! truncations, flipped bits, bad lengths, oversize lengths, garbage, each fed in random chunks.
//! No input panics; every corruption is rejected with a typed error (a truncation waits for more
//! bytes); every intact frame comes out exactly as it went in.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use std::sync::atomic::{AtomicU64, Ordering};

use moonpool_core::{RandomProvider, UID};
use moonpool_transport::wire::{FrameDecoder, HEADER_SIZE, WireError, encode_frame};

const CASES: u32 = 100_000;
const MAX: usize = 1024;

/// SplitMix64: a fast, seeded generator (the test draws millions of values).
#[derive(Debug)]
struct SplitMix(AtomicU64);

impl Clone for SplitMix {
    fn clone(&self) -> Self {
        Self(AtomicU64::new(self.0.load(Ordering::Relaxed)))
    }
}

impl SplitMix {
    fn with_seed(seed: u64) -> Self {
        Self(AtomicU64::new(seed))
    }
}

impl RandomProvider for SplitMix {
    fn next_u64(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A decoded packet: token and payload.
type Decoded = (UID, Vec<u8>);

/// Feeds `bytes` in random chunks; returns the frames produced and the final state.
fn feed(
    decoder: &mut FrameDecoder,
    bytes: &[u8],
    random: &SplitMix,
) -> (Vec<Decoded>, Result<(), WireError>) {
    let mut frames = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let chunk = random.random_range(1..=bytes.len() - offset);
        decoder.extend(&bytes[offset..offset + chunk]);
        offset += chunk;
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => frames.push((frame.token, frame.payload)),
                Ok(None) => break,
                Err(error) => return (frames, Err(error)),
            }
        }
    }
    (frames, Ok(()))
}

fn random_frame(random: &SplitMix) -> (UID, Vec<u8>, Vec<u8>) {
    let token = UID::new(random.random(), random.random());
    let len = random.random_range(0..=MAX - HEADER_SIZE);
    let len = if random.random_bool(0.8) {
        len % 200
    } else {
        len
    };
    let mut payload = vec![0u8; len];
    random.fill_bytes(&mut payload);
    let bytes = encode_frame(token, &payload, MAX).unwrap();
    (token, payload, bytes)
}

/// After corrupted bytes, a full packet's worth of padding forces the decoder to decide: any
/// length it may be waiting for is covered.
fn padding(random: &SplitMix) -> Vec<u8> {
    let mut bytes = vec![0u8; MAX + HEADER_SIZE];
    random.fill_bytes(&mut bytes);
    bytes
}

#[test]
fn test_decoder_survives_100k_random_and_corrupted_frames() {
    let random = SplitMix::with_seed(0x5EED_DEC0);
    let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
    let mut tally = |key: String| *outcomes.entry(key).or_insert(0) += 1;
    for case in 0..CASES {
        let (token, payload, bytes) = random_frame(&random);
        let mut decoder = FrameDecoder::new(MAX);
        match random.random_range(0..6u32) {
            // Intact frames, several per stream.
            0 => {
                let (token2, payload2, bytes2) = random_frame(&random);
                let stream = [bytes.as_slice(), bytes2.as_slice()].concat();
                let (frames, result) = feed(&mut decoder, &stream, &random);
                assert!(
                    result.is_ok(),
                    "case {case}: intact stream rejected: {result:?}"
                );
                assert_eq!(
                    frames,
                    vec![(token, payload), (token2, payload2)],
                    "case {case}"
                );
                assert_eq!(decoder.buffered_len(), 0);
                tally("intact".into());
            }
            // Truncation: waits for more bytes, yields nothing.
            1 => {
                let cut = random.random_range(0..bytes.len());
                let (frames, result) = feed(&mut decoder, &bytes[..cut], &random);
                assert!(
                    result.is_ok() && frames.is_empty(),
                    "case {case}: truncation"
                );
                assert_eq!(decoder.buffered_len(), cut);
                tally("truncated/waiting".into());
            }
            // Flipped bits anywhere in the packet.
            2 => {
                let mut corrupted = bytes.clone();
                let flips = random.random_range(1..=8u32);
                for _ in 0..flips {
                    let index = random.random_range(0..corrupted.len());
                    corrupted[index] ^= 1 << random.random_range(0..8u32);
                }
                if corrupted == bytes {
                    tally("flips/cancelled_out".into());
                    continue;
                }
                corrupted.extend(padding(&random));
                let (frames, result) = feed(&mut decoder, &corrupted, &random);
                assert!(
                    frames.is_empty(),
                    "case {case}: a corrupted frame was accepted"
                );
                let error = result.expect_err("corruption not detected");
                tally(format!("flips/{}", kind(&error)));
            }
            // Length below a header.
            3 => {
                let mut corrupted = bytes.clone();
                let length = random.random_range(0..HEADER_SIZE as u32);
                corrupted[..4].copy_from_slice(&length.to_le_bytes());
                let (frames, result) = feed(&mut decoder, &corrupted, &random);
                assert!(frames.is_empty());
                assert_eq!(
                    result,
                    Err(WireError::LengthTooSmall { length }),
                    "case {case}"
                );
                tally("bad_length".into());
            }
            // Length above the maximum.
            4 => {
                let mut corrupted = bytes.clone();
                let length = random.random_range(MAX as u32 + 1..=u32::MAX);
                corrupted[..4].copy_from_slice(&length.to_le_bytes());
                let (frames, result) = feed(&mut decoder, &corrupted, &random);
                assert!(frames.is_empty());
                assert_eq!(
                    result,
                    Err(WireError::PacketTooLarge {
                        length: u64::from(length),
                        max: MAX
                    }),
                    "case {case}"
                );
                tally("oversize".into());
            }
            // Garbage.
            _ => {
                let mut garbage = vec![0u8; random.random_range(1..3 * MAX)];
                random.fill_bytes(&mut garbage);
                if garbage.len() >= 4 && random.random_bool(0.5) {
                    // A plausible length, so the checksum has to catch it.
                    let length = random.random_range(HEADER_SIZE as u32..=MAX as u32);
                    garbage[..4].copy_from_slice(&length.to_le_bytes());
                }
                garbage.extend(padding(&random));
                let (frames, result) = feed(&mut decoder, &garbage, &random);
                assert!(frames.is_empty(), "case {case}: garbage decoded as a frame");
                let error = result.expect_err("garbage not rejected");
                tally(format!("garbage/{}", kind(&error)));
            }
        }
    }
    let total: u32 = outcomes.values().sum();
    assert_eq!(total, CASES);
    println!("{outcomes:#?}");
    for key in ["intact", "truncated/waiting", "bad_length", "oversize"] {
        assert!(
            outcomes.get(key).copied().unwrap_or(0) > 10_000,
            "{key}: {outcomes:#?}"
        );
    }
    assert!(outcomes.keys().any(|k| k.starts_with("flips/checksum")));
    assert!(outcomes.contains_key("garbage/checksum"));
}

fn kind(error: &WireError) -> &'static str {
    match error {
        WireError::LengthTooSmall { .. } => "length_too_small",
        WireError::PacketTooLarge { .. } => "too_large",
        WireError::ChecksumMismatch { .. } => "checksum",
        WireError::InvalidMaximum { .. } => "invalid_maximum",
        _ => "other",
    }
}
