//! `wire::FrameDecoder` over arbitrary byte streams: the first byte picks the frame limit and
//! how the stream is cut, the second seeds the cut sizes. The stream decoded in one piece, in
//! pseudo-random chunks and byte by byte gives the same frames and the same error; each frame's
//! body then goes to the decoder of its kind (Hello, Gossip, Data target, ...).
#![no_main]

use libfuzzer_sys::fuzz_target;
use partisan_core::wire::FrameDecoder;
use partisan_fuzz::{check_frame_body, decode_stream, FRAME_LIMITS};

fuzz_target!(|data: &[u8]| {
    let [cfg, seed, stream @ ..] = data else {
        return;
    };
    let dec = FrameDecoder::new(FRAME_LIMITS[(cfg & 7) as usize]);
    let whole = decode_stream(&dec, stream, &mut || usize::MAX);
    // Chunks of 1..=span bytes from a small linear congruential generator.
    let span = [3usize, 17, 64, 700][((cfg >> 3) & 3) as usize];
    let mut x = u32::from(*seed) | 1;
    let chunked = decode_stream(&dec, stream, &mut || {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        1 + (x >> 16) as usize % span
    });
    assert_eq!(whole, chunked, "the cut of a stream does not matter");
    if cfg & 0x20 != 0 {
        let bytewise = decode_stream(&dec, stream, &mut || 1);
        assert_eq!(whole, bytewise);
    }
    for (kind, body) in &whole.frames {
        check_frame_body(*kind, body);
    }
});
