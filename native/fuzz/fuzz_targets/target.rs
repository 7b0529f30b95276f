//! The start of a data frame's body: `wire::Target::decode` (and `parse_pid_text`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    partisan_fuzz::check_target(data);
});
