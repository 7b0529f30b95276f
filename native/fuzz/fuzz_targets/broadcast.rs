//! Plumtree broadcast frames: the input is a sequence of records (u16 length, bytes), each a
//! broadcast frame body. Each is decoded by partisan_core's broadcast codec (it must re-encode
//! to the same bytes), and all of them in order are fed to the trees of one node from two
//! neighbours; whatever the trees send in answer must decode too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    partisan_fuzz::check_broadcast_trees(&partisan_fuzz::records(data));
});
