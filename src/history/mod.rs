//! The feature history: every closed window's 53 features, recorded by `netanom run` so that a
//! model can be trained from days of traffic without keeping the captures (docs/history.md).
//!
//! ```text
//! DIR/omega_us=500000/20261201T140000Z.parquet   closed segments (Apache Parquet)
//! DIR/omega_us=500000/.20261201T150000Z.journal  the open segment (append-only records)
//! ```
//!
//! * [`writer`]: the recorder thread, fed by [`HistoryHandle::record`] (never blocks), the
//!   journal, rotation to Parquet, recovery of journals left by a crash, retention;
//! * [`journal`]: the open segment's fixed-size binary records;
//! * [`parquet`]: the schema of closed segments, writing and reading them;
//! * [`reader`]: listing and reading a history directory (unreadable segments skipped);
//! * [`training`]: the windows of a time range that are fit to train on.

pub mod journal;
pub mod parquet;
pub mod reader;
pub mod training;
pub mod writer;

use std::path::PathBuf;

use crate::window::features::{Feature, FeatureVector};
use crate::window::{Omega, Window};

pub use reader::{scan, HistoryScan, OmegaScan, SegmentFile, SegmentKind};
pub use training::{training_set, TimeRange, TrainingSet, TrainingSpans};
pub use writer::{HistoryConfig, HistoryHandle, HistoryWriter};

/// Default `[history] dir` (`StateDirectory=netanom` in the unit).
pub const DEFAULT_HISTORY_DIR: &str = "/var/lib/netanom/history";

/// One recorded window.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryRow {
    /// The window length of the stream this window belongs to.
    pub omega: Omega,
    /// Window start, ns since the epoch (a multiple of ω).
    pub start_ns: i64,
    /// Window end (exclusive), ns since the epoch.
    pub end_ns: i64,
    /// The 53 features in contract order.
    pub features: FeatureVector,
    /// Packets counted in the window (`pkt_count`).
    pub packets: u64,
    /// A distinct count of the window is a sketch estimate.
    pub distinct_estimated: bool,
    /// Packets libpcap reported dropped while this window was open (0 when unknown).
    pub capture_drops: u64,
    /// The window's score was above the threshold.
    pub alerted: bool,
    /// The anomaly score of the run of three ending with this window; `None` when not scored
    /// (the first two windows, no model yet).
    pub score: Option<f64>,
}

impl HistoryRow {
    /// The row of a closed window of a stream of length `omega`.
    pub fn from_window(
        w: &Window,
        omega: Omega,
        capture_drops: u64,
        alerted: bool,
        score: Option<f64>,
    ) -> HistoryRow {
        HistoryRow {
            omega,
            start_ns: w.start_ns,
            end_ns: w.end_ns,
            features: w.features,
            packets: w.features[Feature::PktCount as usize].max(0.0) as u64,
            distinct_estimated: w.distinct_estimated,
            capture_drops,
            alerted,
            score,
        }
    }
}

/// Why the history could not be written or read; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// `history.dir` (or a directory below it) could not be created.
    #[error("history.dir {}: cannot create the directory: {error}", path.display())]
    CreateDir {
        path: PathBuf,
        error: std::io::Error,
    },
    /// `history.dir` exists but files cannot be written in it.
    #[error("history.dir {}: cannot write in the directory: {error}", path.display())]
    NotWritable {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Reading, writing or renaming a file failed.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A journal's header is not netanom's (not a journal, or the wrong version).
    #[error("{}: not a netanom history journal (bad header)", path.display())]
    BadJournal { path: PathBuf },
    /// A Parquet segment could not be read or does not have the history schema.
    #[error("{}: not a readable history segment: {what}", path.display())]
    BadSegment { path: PathBuf, what: String },
    /// Writing a Parquet segment failed.
    #[error("{}: cannot write the Parquet segment: {what}", path.display())]
    WriteSegment { path: PathBuf, what: String },
    /// The directory to read does not exist or is not a directory.
    #[error("{}: no such history directory", path.display())]
    NoDir { path: PathBuf },
    /// The history holds no windows of the length asked for.
    #[error("{}: the history holds no windows of {omega} s (it holds: {present})", path.display(), present = if present.is_empty() { "none" } else { present.as_str() })]
    NoSuchOmega {
        path: PathBuf,
        omega: Omega,
        present: String,
    },
    /// The recorder thread could not be started.
    #[error("starting the history recorder thread: {0}")]
    Thread(std::io::Error),
}

/// The name of the directory holding the segments of windows of length `omega`.
pub fn omega_dir_name(omega: Omega) -> String {
    format!("omega_us={}", omega.micros())
}

/// ω from a directory name written by [`omega_dir_name`].
pub fn parse_omega_dir_name(name: &str) -> Option<Omega> {
    name.strip_prefix("omega_us=")?
        .parse::<u64>()
        .ok()
        .and_then(Omega::from_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Directory names round-trip and junk is refused.
    #[test]
    fn omega_dir_names() {
        let o = Omega::from_micros(500_000).unwrap();
        assert_eq!(omega_dir_name(o), "omega_us=500000");
        assert_eq!(parse_omega_dir_name("omega_us=500000"), Some(o));
        assert_eq!(parse_omega_dir_name("omega_us=0"), None);
        assert_eq!(parse_omega_dir_name("omega=5"), None);
    }
}
