//! One pipeline for every command: a [`PacketSource`], the one [`pump`], and sinks.
//!
//! ```text
//! PacketSource ──RawPacket──▶ pump: decode once, count ──&PacketSummary──▶ PacketSink(s)
//!  files | live                 clock (live, paced replay)                   Windower ─Window─▶ WindowSink
//! ```
//!
//! `extract`, `train`, `score`, `evaluate` and `run` differ only in their sinks. The policy
//! for damaged files and for the clock lives in [`pump`]; the policy for a consumer that is
//! behind is [`PacketSource::backpressure`]: reading files never drops a window (the reader
//! waits), a live interface never waits (what must be dropped is counted).

pub mod merge;
mod pump;
mod sink;
mod source;

pub use merge::{
    MergeRules, MergeStats, Merged, Merger, Offer, PartClock, RejectReason, MAX_AHEAD,
};
pub use pump::{live_grace, pump, Observer, PumpError, PumpReport, ReadCounts, PROGRESS_EVERY};
pub use sink::{
    Finish, MultiWindower, PacketSink, PartialSink, ScaleSink, SinkError, WindowSink, Windower,
};
pub use source::{Backpressure, Files, Pace, PacketSource};

use crate::window::AggregatorStats;

/// Logs the closing summary of an offline run and names each damaged file on stderr; the exit
/// status it deserves: failure when a file was damaged (what was read before was still used).
pub fn log_summary(report: &PumpReport, windows: AggregatorStats) -> std::process::ExitCode {
    let c = &report.counts;
    tracing::info!(
        files = report.files,
        packets = c.packets,
        windows = windows.windows,
        non_ip = c.non_ip,
        truncated_headers = c.truncated_headers,
        malformed_headers = c.malformed_headers,
        late_packets = windows.late_packets,
        time_jumps = windows.time_jumps,
        damaged_files = report.damaged.len(),
        "read"
    );
    if report.damaged.is_empty() {
        return std::process::ExitCode::SUCCESS;
    }
    tracing::warn!("the windows read before each damage were written");
    for e in &report.damaged {
        eprintln!("netanom: error: {e}");
    }
    std::process::ExitCode::FAILURE
}

#[cfg(test)]
mod tests;
