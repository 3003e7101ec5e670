//! The pump and sinks on small captures written here.

use std::path::{Path, PathBuf};

use super::*;
use crate::capture::CaptureError;
use crate::decode::PacketSummary;
use crate::window::features::Feature;
use crate::window::{AggregatorStats, Omega, Window, WindowConfig};

/// A pcap file (microsecond timestamps, Ethernet) of IPv4/UDP frames at the given times (µs).
fn write_pcap(path: &Path, times_us: &[i64]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&65535u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    for &t in times_us {
        let frame = udp_frame();
        b.extend_from_slice(&((t / 1_000_000) as u32).to_le_bytes());
        b.extend_from_slice(&((t % 1_000_000) as u32).to_le_bytes());
        b.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        b.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        b.extend_from_slice(&frame);
    }
    std::fs::write(path, &b).unwrap();
    b
}

/// Ethernet + IPv4 (no checksum needed for decoding) + UDP 10.0.0.1:5000 → 10.0.0.2:53.
fn udp_frame() -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let udp_len = 8u16;
    let total = 20 + udp_len;
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0,
        0,
        64,
        17,
        0,
        0,
    ]);
    f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    f.extend_from_slice(&5000u16.to_be_bytes());
    f.extend_from_slice(&53u16.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f
}

fn omega(text: &str) -> WindowConfig {
    WindowConfig::new(text.parse::<Omega>().unwrap())
}

fn counts(ws: &[Window]) -> Vec<f64> {
    ws.iter().map(|w| w.at(Feature::PktCount)).collect()
}

/// A feature of a window by name.
trait Features {
    fn at(&self, f: Feature) -> f64;
}

impl Features for Window {
    fn at(&self, f: Feature) -> f64 {
        self.features[f.index()]
    }
}

fn files(dir: &Path, names_times: &[(&str, &[i64])]) -> Vec<PathBuf> {
    names_times
        .iter()
        .map(|(name, times)| {
            let p = dir.join(name);
            write_pcap(&p, times);
            p
        })
        .collect()
}

#[test]
fn files_are_one_stream_and_the_last_window_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    let paths = files(
        dir.path(),
        &[
            ("a.pcap", &[100_000, 200_000]),
            ("b.pcap", &[1_100_000, 2_300_000]),
        ],
    );
    let source = PacketSource::open_files(&paths, Pace::Unpaced).unwrap();
    assert_eq!(source.backpressure(), Backpressure::Wait);
    let mut w = Windower::new(omega("1"), Vec::<Window>::new());
    let report = pump(source, &mut w, &mut ()).unwrap();
    assert_eq!(report.files, 2);
    assert_eq!(report.counts.packets, 4);
    assert_eq!(report.counts.bytes, 4 * 42);
    assert_eq!(report.counts.non_ip, 0);
    assert!(report.damaged.is_empty() && !report.stopped);
    let ws = w.into_sink();
    let got: Vec<(i64, f64)> = ws
        .iter()
        .map(|w| (w.start_ns, w.at(Feature::PktCount)))
        .collect();
    assert_eq!(
        got,
        [(0, 2.0), (1_000_000_000, 1.0), (2_000_000_000, 1.0)],
        "windows of both files, the last one closed at the end"
    );
}

#[test]
fn a_cut_off_file_ends_there_and_the_next_file_is_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.pcap");
    let bytes = write_pcap(&a, &[100_000, 200_000, 300_000]);
    // Cut the last record in the middle of its frame.
    std::fs::write(&a, &bytes[..bytes.len() - 10]).unwrap();
    let b = dir.path().join("b.pcap");
    write_pcap(&b, &[1_500_000]);
    let source = PacketSource::open_files(&[a.clone(), b], Pace::Unpaced).unwrap();
    let mut w = Windower::new(omega("1"), Vec::<Window>::new());
    let report = pump(source, &mut w, &mut ()).unwrap();
    assert_eq!(report.counts.packets, 3, "two whole packets of a, one of b");
    assert_eq!(report.damaged.len(), 1);
    match &report.damaged[0] {
        CaptureError::Truncated { path, packets, .. } => {
            assert_eq!(path, &a);
            assert_eq!(*packets, 2);
        }
        other => panic!("expected a cut-off file, got {other:?}"),
    }
    let ws = w.into_sink();
    assert_eq!(
        ws.iter()
            .map(|w| w.at(Feature::PktCount))
            .collect::<Vec<_>>(),
        [2.0, 1.0]
    );
    assert_eq!(
        log_summary(&report, AggregatorStats::default()),
        std::process::ExitCode::FAILURE
    );
}

/// Records what a window sink is told, in order.
#[derive(Default)]
struct Journal(Vec<String>);

impl WindowSink for Journal {
    fn window(&mut self, w: Window) -> Result<(), SinkError> {
        self.0.push(format!(
            "w{}:{}",
            w.start_ns / 500_000_000,
            w.at(Feature::PktCount)
        ));
        Ok(())
    }
    fn packet(&mut self, p: &PacketSummary) {
        self.0.push(format!("p{}", p.ts_ns / 100_000_000));
    }
    fn finish(&mut self) -> Result<(), SinkError> {
        self.0.push("end".into());
        Ok(())
    }
}

#[test]
fn one_decode_feeds_several_aggregators_and_packets_follow_the_windows_they_close() {
    let dir = tempfile::tempdir().unwrap();
    let paths = files(dir.path(), &[("a.pcap", &[100_000, 600_000, 1_200_000])]);
    let source = PacketSource::open_files(&paths, Pace::Unpaced).unwrap();
    let mut sinks = (
        Windower::new(omega("0.5"), Journal::default()),
        Windower::new(omega("1"), Vec::<Window>::new()),
    );
    let report = pump(source, &mut sinks, &mut ()).unwrap();
    assert_eq!(report.counts.packets, 3);
    assert_eq!(
        sinks.0.sink().0,
        ["p1", "w0:1", "p6", "w1:1", "p12", "w2:1", "end"],
        "a packet comes after the window its timestamp closed"
    );
    assert_eq!(sinks.0.stats().packets, 3);
    assert_eq!(counts(sinks.1.sink()), [2.0, 1.0]);
    assert_eq!(sinks.1.omega(), "1".parse().unwrap());
}

/// Fails on the second window.
struct FailSecond(u32);

impl WindowSink for FailSecond {
    fn window(&mut self, _w: Window) -> Result<(), SinkError> {
        self.0 += 1;
        if self.0 == 2 {
            return Err("disk full".into());
        }
        Ok(())
    }
}

#[test]
fn a_sink_error_stops_the_pump() {
    let dir = tempfile::tempdir().unwrap();
    let times: Vec<i64> = (0..10).map(|k| k * 1_000_000 + 1).collect();
    let paths = files(dir.path(), &[("a.pcap", &times)]);
    let source = PacketSource::open_files(&paths, Pace::Unpaced).unwrap();
    let mut w = Windower::new(omega("1"), FailSecond(0));
    match pump(source, &mut w, &mut ()) {
        Err(PumpError::Sink(e)) => assert_eq!(e.to_string(), "disk full"),
        other => panic!("expected the sink's error, got {other:?}"),
    }
    assert_eq!(
        w.stats().packets,
        3,
        "reading stopped at the packet that closed window 2"
    );
}

/// Asks to stop after `after` progress checks.
struct StopAt {
    checks: std::cell::Cell<u32>,
    after: u32,
}

impl Observer for StopAt {
    fn stop_requested(&self) -> bool {
        self.checks.set(self.checks.get() + 1);
        self.checks.get() > self.after
    }
}

#[test]
fn a_stop_request_ends_the_pump_without_finishing() {
    let dir = tempfile::tempdir().unwrap();
    let paths = files(dir.path(), &[("a.pcap", &[1, 2, 3, 4, 5, 2_000_000])]);
    let source = PacketSource::open_files(&paths, Pace::Unpaced).unwrap();
    let mut w = Windower::new(omega("1"), Vec::<Window>::new());
    let mut stop = StopAt {
        checks: Default::default(),
        after: 3,
    };
    let report = pump(source, &mut w, &mut stop).unwrap();
    assert!(report.stopped);
    assert_eq!(report.counts.packets, 3);
    assert!(
        w.sink().is_empty(),
        "the open window is not emitted on a stop"
    );
}

#[test]
fn paced_replay_takes_the_recorded_time_and_closes_quiet_windows() {
    let dir = tempfile::tempdir().unwrap();
    // 0.3 s of recorded time with a quiet 0.1 s window in the middle.
    let paths = files(dir.path(), &[("a.pcap", &[1_000, 101_000, 301_000])]);
    let source = PacketSource::open_files(&paths, Pace::Recorded).unwrap();
    let mut w = Windower::new(omega("0.1"), Vec::<Window>::new());
    let started = std::time::Instant::now();
    pump(source, &mut w, &mut ()).unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    assert_eq!(counts(w.sink()), [1.0, 1.0, 0.0, 1.0]);
}

#[test]
fn a_multi_windower_gives_each_scale_the_windows_a_windower_of_that_length_gives() {
    let dir = tempfile::tempdir().unwrap();
    let times: Vec<i64> = (0..40).map(|k| k * 130_000 + 7).collect();
    let paths = files(dir.path(), &[("a.pcap", &times)]);
    let configs = [omega("0.5"), omega("2")];
    let source = PacketSource::open_files(&paths, Pace::Unpaced).unwrap();
    let mut multi = MultiWindower::new(&configs, Vec::<(usize, Window)>::new());
    pump(source, &mut multi, &mut ()).unwrap();
    let tagged = multi.into_sink();
    for (scale, config) in configs.iter().enumerate() {
        let source = PacketSource::open_files(&paths, Pace::Unpaced).unwrap();
        let mut single = Windower::new(*config, Vec::<Window>::new());
        pump(source, &mut single, &mut ()).unwrap();
        let mine: Vec<Window> = tagged
            .iter()
            .filter(|(s, _)| *s == scale)
            .map(|(_, w)| w.clone())
            .collect();
        assert_eq!(&mine, single.sink(), "scale {scale}");
    }
    let n = |s| tagged.iter().filter(|(k, _)| *k == s).count();
    // 40 packets 0.13 s apart span 5.07 s: 11 windows of 0.5 s, 3 of 2 s.
    assert_eq!((n(0), n(1)), (11, 3));
}
