//! The offline pipeline: capture files → decode → windows, shared by extract, train,
//! score and evaluate. Several files in time order are one stream.

use std::io::Write;
use std::path::PathBuf;

use crate::capture::{CaptureError, OfflineCapture};
use crate::decode::{decode, DecodeIssue, PacketSummary};
use crate::window::features::FEATURE_NAMES;
use crate::window::{AggregatorStats, Window, WindowAggregator, WindowConfig};

/// What an offline run read, for the closing summary line.
#[derive(Debug, Default)]
pub struct OfflineReport {
    pub files: usize,
    pub aggregator: AggregatorStats,
    /// Frames whose headers were cut off before the transport layer.
    pub truncated_headers: u64,
    /// Frames with an invalid header (bad version, IHL or data offset).
    pub malformed_headers: u64,
    /// Frames without an IP header.
    pub non_ip: u64,
    /// A file cut off mid-record: windows up to that point were still emitted.
    pub cut_off: Option<CaptureError>,
}

/// Reads `paths` in order as one stream; calls `on_window` per window and `on_packet` per
/// packet, the latter after the windows that the packet's timestamp closes.
///
/// All files are opened (and checked) before the first packet is read, so a bad path fails
/// fast. A file cut off mid-record ends the stream: the windows so far are emitted and the
/// error is returned in [`OfflineReport::cut_off`].
pub fn run_offline(
    paths: &[PathBuf],
    config: WindowConfig,
    on_packet: impl FnMut(&PacketSummary),
    on_window: impl FnMut(Window),
) -> Result<OfflineReport, CaptureError> {
    OfflineInput::open(paths)?.run(config, on_packet, on_window)
}

/// Capture files opened and checked, ready to be read as one stream.
pub struct OfflineInput {
    captures: Vec<OfflineCapture>,
}

impl OfflineInput {
    /// Opens every file, so that a missing or bad one fails before any output is created.
    pub fn open(paths: &[PathBuf]) -> Result<Self, CaptureError> {
        let captures = paths
            .iter()
            .map(|p| OfflineCapture::open(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { captures })
    }

    /// Reads the files in order as one stream (see [`run_offline`]).
    pub fn run(
        self,
        config: WindowConfig,
        mut on_packet: impl FnMut(&PacketSummary),
        mut on_window: impl FnMut(Window),
    ) -> Result<OfflineReport, CaptureError> {
        let mut captures = self.captures;
        let mut aggregator = WindowAggregator::new(config);
        let mut report = OfflineReport {
            files: captures.len(),
            ..OfflineReport::default()
        };
        'files: for capture in &mut captures {
            let link = capture.link_type();
            loop {
                let raw = match capture.next_packet() {
                    Ok(Some(raw)) => raw,
                    Ok(None) => break,
                    Err(e @ CaptureError::Truncated { .. }) => {
                        report.cut_off = Some(e);
                        break 'files;
                    }
                    Err(e) => return Err(e),
                };
                let summary = decode(link, raw.data, raw.ts_ns, raw.wire_len);
                match summary.issue {
                    DecodeIssue::None => {}
                    DecodeIssue::Truncated => report.truncated_headers += 1,
                    DecodeIssue::Malformed => report.malformed_headers += 1,
                }
                if summary.ip.is_none() {
                    report.non_ip += 1;
                }
                // Windows the packet closes are emitted first, so per-window tallies kept by
                // `on_packet` (attack labels) never leak into the window before.
                aggregator.push(&summary, &mut on_window);
                on_packet(&summary);
                if let Some(jump) = aggregator.take_time_jump() {
                    tracing::warn!(
                        file = %capture.path().display(),
                        packet = capture.packets(),
                        from = %format_ts(jump.from_window_start_ns),
                        to = %format_ts(jump.to_window_start_ns),
                        "timestamp jump longer than {} windows: collapsed, no empty windows emitted for it",
                        config.max_gap_windows
                    );
                }
            }
        }
        aggregator.finish(&mut on_window);
        report.aggregator = aggregator.stats();
        Ok(report)
    }
}

/// Logs the closing summary of an offline run; reports a cut-off file as an error and
/// returns the exit code it deserves (1 when the input was cut off).
pub fn log_report(report: &OfflineReport) -> std::process::ExitCode {
    let a = report.aggregator;
    tracing::info!(
        files = report.files,
        packets = a.packets,
        windows = a.windows,
        non_ip = report.non_ip,
        truncated_headers = report.truncated_headers,
        malformed_headers = report.malformed_headers,
        late_packets = a.late_packets,
        time_jumps = a.time_jumps,
        "read"
    );
    match &report.cut_off {
        Some(cut) => {
            tracing::warn!("the windows read before the cut were written");
            eprintln!("netanom: error: {cut}");
            std::process::ExitCode::FAILURE
        }
        None => std::process::ExitCode::SUCCESS,
    }
}

/// Unix seconds with exactly 6 decimals, from integer nanoseconds (no float rounding).
pub fn format_ts(ns: i64) -> String {
    let us = ns.div_euclid(1000);
    let (secs, frac) = (us.div_euclid(1_000_000), us.rem_euclid(1_000_000));
    if secs < 0 && frac != 0 {
        // -0.5 s is secs = -1, frac = 500000: print as -0.500000.
        let total = -us;
        format!("-{}.{:06}", total / 1_000_000, total % 1_000_000)
    } else {
        format!("{secs}.{frac:06}")
    }
}

/// The CSV header of `netanom extract`.
pub fn csv_header() -> String {
    let mut h = String::from("window_start,window_end");
    for name in FEATURE_NAMES {
        h.push(',');
        h.push_str(name);
    }
    h
}

/// Writes one window as a CSV row: times with 6 decimals, features at full f64 precision.
pub fn write_csv_row(out: &mut impl Write, w: &Window) -> std::io::Result<()> {
    write!(out, "{},{}", format_ts(w.start_ns), format_ts(w.end_ns))?;
    for v in &w.features {
        // Display for f64 is the shortest exact round-trip form and never uses exponents.
        write!(out, ",{v}")?;
    }
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_exactly() {
        assert_eq!(format_ts(0), "0.000000");
        assert_eq!(format_ts(1_700_000_000_123_456_789), "1700000000.123456");
        assert_eq!(format_ts(300_000_000), "0.300000");
        assert_eq!(format_ts(-500_000_000), "-0.500000");
        assert_eq!(format_ts(-1_500_000_000), "-1.500000");
    }

    #[test]
    fn header_has_55_columns() {
        let h = csv_header();
        assert_eq!(h.split(',').count(), 55);
        assert!(h.starts_with("window_start,window_end,pkt_size_mean,pkt_count,"));
        assert!(h.ends_with(",dst_port_143_count"));
    }
}
