//! The rewrite of pids, ports and references in received messages: `wire::walk`,
//! `rewrite_payload`, `for_each_atom` and `parse_pid`. The first byte picks the rules (which of
//! two, of which kinds); the rest is the term (the version byte is put in front for the
//! functions that take a whole payload).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, term)) = data.split_first() else {
        return;
    };
    partisan_fuzz::check_term_rewrite(flags, term);
});
