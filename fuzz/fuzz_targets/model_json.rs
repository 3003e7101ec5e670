//! Any bytes as a bundle's model.json: every check before the weights runs; an accepted one
//! has a positive ω and 53 features.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use netanom::model::bundle::parse_meta;

fuzz_target!(|data: &[u8]| {
    if let Ok((meta, _, _)) = parse_meta(data, Path::new("model.json"), None) {
        assert!(meta.omega.micros() > 0);
        assert_eq!(meta.feature_names.len(), 53);
    }
});
