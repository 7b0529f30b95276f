//! HyParView overlay frames: the input is a sequence of records (u16 length, bytes), each an
//! overlay frame body. Each is decoded by partisan_core's overlay codec (with its round trip),
//! and all of them in order are fed to a `control::Node` in HyParView mode as frames from a
//! peer's control connection (refused exactly when malformed; HyParView handles the rest).
#![no_main]

use libfuzzer_sys::fuzz_target;
use partisan_fuzz::{check_overlay_codec, check_overlay_node, records};

fuzz_target!(|data: &[u8]| {
    let bodies = records(data);
    for b in &bodies {
        check_overlay_codec(b);
    }
    check_overlay_node(&bodies);
});
