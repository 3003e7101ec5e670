//! `[history]`: the feature history `netanom run` records for training (docs/history.md).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Checker;
use crate::history::{HistoryConfig, DEFAULT_HISTORY_DIR};

/// `[history]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistorySettings {
    /// Record every closed window.
    pub enabled: bool,
    /// Where (`DIR/omega_us=<µs>/*.parquet`).
    pub dir: PathBuf,
    /// Closed segments older than this many days are deleted.
    pub retention_days: u32,
    /// Window time one segment file covers, minutes.
    pub segment_minutes: u32,
}

impl HistorySettings {
    /// The recorder's settings, `None` when recording is off.
    pub fn recorder(&self) -> Option<HistoryConfig> {
        self.enabled.then(|| HistoryConfig {
            dir: self.dir.clone(),
            retention: Duration::from_secs(u64::from(self.retention_days) * 86_400),
            segment: Duration::from_secs(u64::from(self.segment_minutes) * 60),
            queue: HistoryConfig::DEFAULT_QUEUE,
        })
    }
}

/// `[history]` as written, with the defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawHistory {
    /// `history.enabled`.
    enabled: bool,
    /// `history.dir`.
    dir: PathBuf,
    /// `history.retention_days`.
    retention_days: i64,
    /// `history.segment_minutes`.
    segment_minutes: i64,
}

impl Default for RawHistory {
    /// The built-in `[history]`: on, [`DEFAULT_HISTORY_DIR`], 30 days, hourly segments.
    fn default() -> Self {
        RawHistory {
            enabled: true,
            dir: PathBuf::from(DEFAULT_HISTORY_DIR),
            retention_days: 30,
            segment_minutes: 60,
        }
    }
}

/// Applies `--history-dir` (`cli_dir`, which also turns recording on) and validates `raw`;
/// `None` after a problem.
pub(super) fn validate(
    mut raw: RawHistory,
    ck: &mut Checker,
    cli_dir: Option<PathBuf>,
) -> Option<HistorySettings> {
    let mark = ck.mark();
    if cli_dir.is_some() {
        raw.enabled = true;
    }
    ck.flag("history.dir", "--history-dir", &mut raw.dir, cli_dir);
    if raw.enabled && raw.dir.as_os_str().is_empty() {
        ck.fail(
            "history.dir",
            "\"\"",
            "empty (expected a directory for the feature history, or history.enabled = false)",
        );
    }
    let retention_days = ck.int_range(
        "history.retention_days",
        raw.retention_days,
        1,
        36_500,
        "days",
    ) as u32;
    let segment_minutes = ck.int_range(
        "history.segment_minutes",
        raw.segment_minutes,
        1,
        1440,
        "minutes",
    ) as u32;
    ck.clean_since(mark).then_some(HistorySettings {
        enabled: raw.enabled,
        dir: raw.dir,
        retention_days,
        segment_minutes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{assert_each_named, err, live, load};

    /// Defaults, the file, and `--history-dir` (which turns recording on).
    #[test]
    fn defaults_file_and_flag() {
        let s = load("", &[], &live()).unwrap();
        assert!(s.history.enabled);
        assert_eq!(s.history.dir, PathBuf::from(DEFAULT_HISTORY_DIR));
        assert_eq!(s.history.retention_days, 30);
        assert_eq!(s.history.segment_minutes, 60);
        let r = s.history.recorder().unwrap();
        assert_eq!(r.retention, Duration::from_secs(30 * 86_400));
        assert_eq!(r.segment, Duration::from_secs(3600));

        let s = load(
            "[history]\nenabled = false\nretention_days = 7\nsegment_minutes = 15\n",
            &[],
            &live(),
        )
        .unwrap();
        assert!(!s.history.enabled);
        assert_eq!(s.history.recorder(), None);
        assert_eq!(s.history.retention_days, 7);

        let s = load(
            "[history]\nenabled = false\n",
            &[],
            &crate::config::CliOverrides {
                history_dir: Some("/tmp/h".into()),
                ..live()
            },
        )
        .unwrap();
        assert!(s.history.enabled);
        assert_eq!(s.history.dir, PathBuf::from("/tmp/h"));

        let s = load("", &[("NETANOM_HISTORY__ENABLED", "false")], &live()).unwrap();
        assert!(!s.history.enabled);
    }

    /// Each invalid `[history]` value, and an unknown key, is named.
    #[test]
    fn each_invalid_value_is_named() {
        assert_each_named(&[
            ("[history]\ndir = \"\"", "history.dir = \"\": empty"),
            (
                "[history]\nretention_days = 0",
                "history.retention_days = 0: out of range (expected 1 to 36500 days)",
            ),
            (
                "[history]\nsegment_minutes = 2000",
                "history.segment_minutes = 2000: out of range (expected 1 to 1440 minutes)",
            ),
        ]);
        let e = err("[history]\nretention = 3\n", &[], &live());
        assert!(e.contains("unknown setting `history.retention`"), "{e}");
        assert!(e.contains("retention_days"), "{e}");
    }
}
