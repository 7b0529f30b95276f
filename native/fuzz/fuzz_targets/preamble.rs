//! The connection preamble: `wire::read_preamble` on the first five bytes (and on every later
//! window of five, as a reader that lost sync would see them).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for i in 0..data.len().min(64) {
        partisan_fuzz::check_preamble(&data[i..]);
    }
});
