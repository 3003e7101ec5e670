//! Any bytes as a frame of any supported link type: decoding never panics and keeps the
//! wire length and time it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netanom_core::decode::{decode, LinkType};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let link = LinkType::ALL[usize::from(selector) % LinkType::ALL.len()];
    let s = decode(link, frame, 1_700_000_000_000_000_000, 1514);
    assert_eq!(s.wire_len, 1514);
    assert_eq!(s.ts_ns, 1_700_000_000_000_000_000);
});
