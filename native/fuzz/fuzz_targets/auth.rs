//! The authentication frames: `AuthInit`, `AuthChallenge` and `AuthResponse` decode (and the
//! HMAC check of the proofs they carry).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    partisan_fuzz::check_auth(data);
});
