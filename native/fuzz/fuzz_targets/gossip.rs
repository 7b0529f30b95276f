//! Membership gossip: `membership::State::decode` on the whole input, and the CRDT laws on the
//! states of its three parts. Input: two big-endian u16 cut points, then the bytes; the parts
//! are `[..p1]`, `[p1..p2]` and `[p2..]` of the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use partisan_fuzz::{check_gossip, check_merge};

fuzz_target!(|data: &[u8]| {
    let [a, b, c, d, rest @ ..] = data else {
        check_gossip(data);
        return;
    };
    check_gossip(rest);
    let p1 = (u16::from_be_bytes([*a, *b]) as usize).min(rest.len());
    let p2 = (u16::from_be_bytes([*c, *d]) as usize).clamp(p1, rest.len());
    let (Some(x), Some(y), Some(z)) = (
        check_gossip(&rest[..p1]),
        check_gossip(&rest[p1..p2]),
        check_gossip(&rest[p2..]),
    ) else {
        return;
    };
    check_merge(&x, &y, &z);
});
