//! Any bytes as an encoded partial window (what a collector reads from JetStream): decoding
//! fails cleanly, or gives a partial that encodes to the same bytes, merges with itself and
//! finishes into 53 finite-or-NaN-free features.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netanom::window::PartialWindow;

fuzz_target!(|data: &[u8]| {
    let _ = PartialWindow::peek(data);
    if let Ok(p) = PartialWindow::decode(data) {
        let bytes = p.to_bytes().expect("a decoded partial encodes");
        let mut q = PartialWindow::decode(&bytes).expect("its encoding decodes");
        assert_eq!(q.to_bytes().expect("encodes"), bytes);
        q.merge(&p).expect("the same window");
        let w = q.finish(5);
        assert!(w.features.iter().all(|f| !f.is_nan()));
    }
});
