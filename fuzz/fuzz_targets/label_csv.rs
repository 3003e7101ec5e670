//! Any text as a labels CSV (`netanom evaluate --labels`): parsed or refused, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netanom::eval::Labels;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Labels::parse_str("fuzz.csv", text);
});
