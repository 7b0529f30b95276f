//! The handshake: `Hello::decode` and `HelloAck::decode` on the same bytes (each with its round
//! trip), and the node and channel name validators against docs/wire.md's rules.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    partisan_fuzz::check_hello(data);
    partisan_fuzz::check_hello_ack(data);
    partisan_fuzz::check_names(data);
});
