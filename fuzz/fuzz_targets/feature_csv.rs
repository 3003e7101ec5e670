//! Any text as a feature CSV (`netanom train --features`): parsed or refused, never a panic;
//! every accepted row has 53 finite features.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use netanom_core::csv::parse_feature_csv;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(rows) = parse_feature_csv(Path::new("fuzz.csv"), text) {
        for r in rows {
            assert!(r.features.iter().all(|v| v.is_finite()));
        }
    }
});
