//! Fuzzes the streaming packet decoder with arbitrary bytes cut into arbitrary chunks, under an
//! arbitrary maximum packet size. Half the inputs are raw byte streams; the other half are valid
//! packets built from the input, with one byte optionally flipped, so the fuzzer also reaches the
//! paths that decode whole packets.
//!
//! Properties: no input panics; every packet that comes out re-encodes to bytes that decode to
//! the same packet; valid streams decode completely and exactly; the decoder stays failed once it
//! failed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moonpool_transport::UID;
use moonpool_transport::wire::{FrameDecoder, encode_frame};

fuzz_target!(|data: &[u8]| {
    let [mode, chunk_seed, rest @ ..] = data else {
        return;
    };
    let max_packet_size = match mode % 4 {
        0 => 24,
        1 => 64,
        2 => 4096,
        _ => 1 << 20,
    };
    if mode & 0x80 == 0 {
        decode(rest, *chunk_seed, max_packet_size, None);
        return;
    }
    // Valid packets: payloads of up to 40 bytes taken from the input, tokens from their length.
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for (index, payload) in rest.chunks(40).enumerate() {
        let token = UID::new(index as u64 + 1, payload.len() as u64);
        if let Ok(bytes) = encode_frame(token, payload, max_packet_size) {
            stream.extend_from_slice(&bytes);
            expected.push((token, payload.to_vec()));
        }
    }
    let corrupt = mode & 0x40 != 0 && !stream.is_empty();
    if corrupt {
        let index = usize::from(*chunk_seed) * 7 % stream.len();
        stream[index] ^= 1 << (chunk_seed % 8);
    }
    decode(&stream, *chunk_seed, max_packet_size, (!corrupt).then_some(expected));
});

fn decode(stream: &[u8], chunk_seed: u8, max_packet_size: usize, expected: Option<Vec<(UID, Vec<u8>)>>) {
    let mut decoder = FrameDecoder::new(max_packet_size);
    let mut decoded = Vec::new();
    let mut offset = 0;
    let mut chunk = usize::from(chunk_seed % 17) + 1;
    let mut failed = false;
    while offset < stream.len() && !failed {
        let end = (offset + chunk).min(stream.len());
        decoder.extend(&stream[offset..end]);
        offset = end;
        chunk = if chunk_seed & 0x80 != 0 { stream.len() } else { (chunk * 7 + 3) % 17 + 1 };
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    let bytes = encode_frame(frame.token, &frame.payload, max_packet_size)
                        .expect("a decoded packet fits the maximum it was decoded under");
                    let mut check = FrameDecoder::new(max_packet_size);
                    check.extend(&bytes);
                    assert_eq!(check.next_frame().ok().flatten().as_ref(), Some(&frame));
                    decoded.push((frame.token, frame.payload));
                }
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    assert!(decoder.next_frame().is_err(), "the decoder recovered");
                    break;
                }
            }
        }
    }
    if let Some(expected) = expected {
        assert!(!failed, "a valid stream was rejected");
        assert_eq!(decoded, expected, "a valid stream decoded differently");
        assert_eq!(decoder.buffered_len(), 0);
    }
}
