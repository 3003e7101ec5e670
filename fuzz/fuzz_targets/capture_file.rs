//! Any bytes as a capture file (pcap or pcapng, read by libpcap) through the whole offline
//! pipeline: opening fails cleanly or the pump reads to the end without panicking, and no
//! packet emits more windows than the jump rule allows.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use netanom_core::pipeline::{pump, PacketSource, Pace, Windower};
use netanom_core::window::{Omega, Window, WindowConfig};

/// Windows per packet at most: a jump longer than this is collapsed.
const MAX_GAP: u64 = 1000;

fuzz_target!(|data: &[u8]| {
    // In memory when /dev/shm exists: libpcap reads files, not buffers.
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        tempfile::Builder::new().tempdir_in("/dev/shm")
    } else {
        tempfile::tempdir()
    };
    let Ok(dir) = dir else { return };
    let path = dir.path().join("input.pcap");
    let Ok(mut f) = std::fs::File::create(&path) else {
        return;
    };
    if f.write_all(data).is_err() {
        return;
    }
    drop(f);
    let Ok(source) = PacketSource::open_files(&[path], Pace::Unpaced) else {
        return;
    };
    let mut config = WindowConfig::new(Omega::from_micros(100_000).unwrap());
    config.max_gap_windows = MAX_GAP;
    let mut windows = Windower::new(config, Vec::<Window>::new());
    let report = pump(source, &mut windows, &mut ()).expect("a Vec sink never fails");
    let emitted = windows.stats().windows;
    assert!(emitted <= report.counts.packets * (MAX_GAP + 1) + 1);
});
