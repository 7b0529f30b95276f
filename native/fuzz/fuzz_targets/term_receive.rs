//! The receive path of a data frame's payload: `wire::uncompressed_term`, then the rewrite,
//! then `wire::plan_in_place` (the plan for decoding a large message in place). The first byte
//! holds flags: the low four bits say where in the frame the payload starts, bits 4-5 pick the
//! rewrite rules, and bit 7 appends 70,000 zero bytes to the frame, so that binaries large
//! enough to be referenced in place (64 KiB) can be named by a small input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, frame)) = data.split_first() else {
        return;
    };
    let at = (flags & 0x0f) as usize;
    if flags & 0x80 != 0 {
        let mut big = Vec::with_capacity(frame.len() + 70_000);
        big.extend_from_slice(frame);
        big.resize(frame.len() + 70_000, 0);
        partisan_fuzz::check_receive(flags, &big, at);
    } else {
        partisan_fuzz::check_receive(flags, frame, at);
    }
});
