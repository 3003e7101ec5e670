//! The windows of a history that are fit to train on: `netanom train --history` and, later,
//! the daemon's learning mode.
//!
//! Left out, in this order of precedence (a window is counted once, under the first rule):
//! 1. windows that alerted, unless an operator marked their incident benign
//!    ([`TrainingSpans`]: `netanom feedback benign`) and no other incident covers them;
//! 2. windows within `SEQ_LEN − 1` windows (in time) of one that alerted, so no run of three
//!    holds an alerted window;
//! 3. windows with capture drops (their features undercount the traffic).
//!
//! Every left-out window, and every gap in time (the daemon was down, rows were dropped, a
//! clock jump), breaks the sequence: no run of three straddles it (`breaks`, as
//! [`crate::model::train_segments`] takes them).

use std::path::{Path, PathBuf};

use super::{scan, HistoryError, HistoryRow};
use crate::model::SEQ_LEN;
use crate::window::features::FeatureVector;
use crate::window::Omega;

/// A range of window starts, ns since the epoch: `from` inclusive, `to` exclusive; `None`
/// leaves that side open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
}

impl TimeRange {
    /// Every window.
    pub const ALL: TimeRange = TimeRange {
        from_ns: None,
        to_ns: None,
    };

    /// Whether a window starting at `start_ns` is in the range.
    pub fn contains(&self, start_ns: i64) -> bool {
        self.from_ns.is_none_or(|f| start_ns >= f) && self.to_ns.is_none_or(|t| start_ns < t)
    }
}

/// Spans of time (ns, start inclusive, end inclusive of the last window's end) that decide
/// about alerted windows: one inside a `benign` span and inside no `other` span is trained on
/// as normal traffic. Built from the feedback rules and the alert log (`feedback::incidents`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrainingSpans {
    /// Incidents marked benign.
    pub benign: Vec<(i64, i64)>,
    /// Every other incident.
    pub other: Vec<(i64, i64)>,
    /// The ids of the benign incidents (to report).
    pub benign_incidents: Vec<String>,
}

impl TrainingSpans {
    /// Whether the alerted window `[start, end)` is to be trained on.
    pub fn takes_in(&self, start_ns: i64, end_ns: i64) -> bool {
        let inside = |&(a, b): &(i64, i64)| start_ns >= a && end_ns <= b;
        self.benign.iter().any(inside) && !self.other.iter().any(inside)
    }
}

/// The training windows selected from a history, and what was left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainingSet {
    /// The window length.
    pub omega: Option<Omega>,
    /// The kept windows' features, oldest first.
    pub windows: Vec<FeatureVector>,
    /// Indices of kept windows that do not directly follow the kept window before them.
    pub breaks: Vec<usize>,
    /// Start of the first and end of the last kept window, ns (0 when none is kept).
    pub start_ns: i64,
    pub end_ns: i64,
    /// Windows in the range (before anything was left out).
    pub rows: usize,
    /// Windows left out because they alerted.
    pub excluded_alerted: usize,
    /// Alerted windows kept because their incident was marked benign.
    pub included_benign: usize,
    /// Windows left out because they lie within `SEQ_LEN − 1` windows of one that alerted.
    pub excluded_near_alert: usize,
    /// Windows left out because libpcap dropped packets while they were open.
    pub excluded_drops: usize,
    /// Segments read.
    pub segments: usize,
    /// Segments that could not be read (skipped, with a warning).
    pub unreadable: Vec<PathBuf>,
    /// Windows seen twice (the same start in two segments), kept once.
    pub duplicates: usize,
}

/// Reads the windows of length `omega` under `dir` that start in `range` and selects those
/// fit for training (see the module doc). Unreadable segments are skipped and listed.
pub fn training_set(
    dir: &Path,
    omega: Omega,
    range: TimeRange,
    spans: &TrainingSpans,
) -> Result<TrainingSet, HistoryError> {
    let history = scan(dir)?;
    let Some(stream) = history.get(omega) else {
        return Err(HistoryError::NoSuchOmega {
            path: dir.to_path_buf(),
            omega,
            present: history
                .omegas()
                .iter()
                .map(|o| format!("{o} s"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let read = stream.read(range);
    let mut set = select(&read.rows, omega, spans);
    set.segments = read.segments;
    set.unreadable = read.unreadable.into_iter().map(|(p, _)| p).collect();
    set.duplicates = read.duplicates;
    Ok(set)
}

/// Why a window is left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Keep,
    Alerted,
    NearAlert,
    Drops,
}

/// Selects the training windows among `rows` (sorted by start, one ω); alerted windows
/// that `spans` takes in count as normal.
pub fn select(rows: &[HistoryRow], omega: Omega, spans: &TrainingSpans) -> TrainingSet {
    let reach = omega.nanos() * (SEQ_LEN as i64 - 1);
    let alerted: Vec<bool> = rows
        .iter()
        .map(|r| r.alerted && !spans.takes_in(r.start_ns, r.end_ns))
        .collect();
    let included_benign = rows
        .iter()
        .zip(&alerted)
        .filter(|(r, a)| r.alerted && !**a)
        .count();
    let mut verdict: Vec<Verdict> = rows
        .iter()
        .zip(&alerted)
        .map(|(r, &alerted)| match (alerted, r.capture_drops > 0) {
            (true, _) => Verdict::Alerted,
            (false, true) => Verdict::Drops,
            _ => Verdict::Keep,
        })
        .collect();
    for (i, r) in rows.iter().enumerate() {
        if !alerted[i] {
            continue;
        }
        let near = |j: usize| (rows[j].start_ns - r.start_ns).abs() <= reach;
        let mut j = i;
        while j > 0 && near(j - 1) {
            j -= 1;
            if verdict[j] != Verdict::Alerted {
                verdict[j] = Verdict::NearAlert;
            }
        }
        let mut j = i + 1;
        while j < rows.len() && near(j) {
            if verdict[j] != Verdict::Alerted {
                verdict[j] = Verdict::NearAlert;
            }
            j += 1;
        }
    }
    let mut set = TrainingSet {
        omega: Some(omega),
        rows: rows.len(),
        included_benign,
        ..TrainingSet::default()
    };
    let mut last_end: Option<i64> = None;
    for (r, v) in rows.iter().zip(&verdict) {
        match v {
            Verdict::Alerted => set.excluded_alerted += 1,
            Verdict::NearAlert => set.excluded_near_alert += 1,
            Verdict::Drops => set.excluded_drops += 1,
            Verdict::Keep => {
                if last_end.is_some_and(|e| e != r.start_ns) {
                    set.breaks.push(set.windows.len());
                }
                if set.windows.is_empty() {
                    set.start_ns = r.start_ns;
                }
                set.end_ns = r.end_ns;
                set.windows.push(r.features);
            }
        }
        // A left-out window breaks the sequence too: its successor does not follow the last
        // kept window.
        last_end = Some(if *v == Verdict::Keep {
            r.end_ns
        } else {
            i64::MIN
        });
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::features::NUM_FEATURES;

    const W: i64 = 500_000_000;

    /// A window `k` ω after an origin, with `k` as its first feature.
    fn row(k: i64, alerted: bool, drops: u64) -> HistoryRow {
        let mut features = [0.0; NUM_FEATURES];
        features[0] = k as f64;
        HistoryRow {
            omega: Omega::from_micros(500_000).unwrap(),
            start_ns: k * W,
            end_ns: (k + 1) * W,
            features,
            packets: 1,
            distinct_estimated: false,
            capture_drops: drops,
            alerted,
            score: Some(0.1),
        }
    }

    /// Alerted windows and their two neighbours on each side, drop windows and gaps: exact
    /// counts, and breaks exactly where a run of three must not cross.
    #[test]
    fn leaves_out_alerts_neighbours_drops_and_breaks_at_gaps() {
        let omega = Omega::from_micros(500_000).unwrap();
        // 0..20, alert at 10, drops at 15, gap 20..25 (no windows), 25..30, alert at 29.
        let mut rows: Vec<HistoryRow> = (0..20)
            .map(|k| row(k, k == 10, if k == 15 { 7 } else { 0 }))
            .collect();
        rows.extend((25..30).map(|k| row(k, k == 29, 0)));
        let set = select(&rows, omega, &TrainingSpans::default());
        assert_eq!(set.rows, 25);
        assert_eq!(set.excluded_alerted, 2);
        // 8, 9, 11, 12 around 10; 27, 28 before 29.
        assert_eq!(set.excluded_near_alert, 6);
        assert_eq!(set.excluded_drops, 1);
        let kept: Vec<i64> = set.windows.iter().map(|w| w[0] as i64).collect();
        let want: Vec<i64> = (0..8).chain(13..15).chain(16..20).chain(25..27).collect();
        assert_eq!(kept, want);
        // Breaks at 13 (after the alert), 16 (after the drop), 25 (the gap).
        assert_eq!(set.breaks, vec![8, 10, 14]);
        assert_eq!(set.start_ns, 0);
        assert_eq!(set.end_ns, 27 * W);
        // No run of three (that train_segments would build) holds a left-out window.
        for start in 0..set.windows.len() - 2 {
            if set.breaks.iter().any(|&b| b > start && b < start + 3) {
                continue;
            }
            let ks = [kept[start], kept[start + 1], kept[start + 2]];
            assert!(ks[2] - ks[0] == 2, "{ks:?} is not consecutive");
        }
    }

    /// `training_set` on a directory: two segments (one a journal), a range that cuts the
    /// first windows off, an unreadable segment skipped and listed, exact counts; another ω
    /// is an error naming the ones present.
    #[test]
    fn training_set_reads_a_directory() {
        let omega = Omega::from_micros(500_000).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("omega_us=500000");
        std::fs::create_dir_all(&sub).unwrap();
        let first: Vec<HistoryRow> = (0..20).map(|k| row(k, k == 10, 0)).collect();
        crate::history::parquet::write_segment(&sub.join("a.parquet"), omega, &first).unwrap();
        let mut bytes = crate::history::journal::header(omega).to_vec();
        for k in 20..30 {
            crate::history::journal::encode(&row(k, false, u64::from(k == 25)), &mut bytes);
        }
        std::fs::write(sub.join(".b.journal"), bytes).unwrap();
        std::fs::write(sub.join("c.parquet"), b"garbage").unwrap();

        let range = TimeRange {
            from_ns: Some(2 * W),
            to_ns: Some(28 * W),
        };
        let set = training_set(dir.path(), omega, range, &TrainingSpans::default()).unwrap();
        assert_eq!(set.rows, 26); // 2..28
        assert_eq!(set.segments, 2);
        assert_eq!(set.unreadable, vec![sub.join("c.parquet")]);
        assert_eq!(
            (
                set.excluded_alerted,
                set.excluded_near_alert,
                set.excluded_drops
            ),
            (1, 4, 1)
        );
        assert_eq!(set.windows.len(), 20);
        // 2..8 | 13..25 | 26..28
        assert_eq!(set.breaks, vec![6, 18]);
        assert_eq!((set.start_ns, set.end_ns), (2 * W, 28 * W));

        let e = training_set(
            dir.path(),
            Omega::from_micros(5_000_000).unwrap(),
            range,
            &TrainingSpans::default(),
        )
        .unwrap_err();
        assert!(matches!(e, HistoryError::NoSuchOmega { .. }), "{e}");
        assert!(e.to_string().contains("(it holds: 0.5 s)"), "{e}");
    }

    /// A benign incident's alerted windows are kept (and their neighbours), unless another
    /// incident also covers them.
    #[test]
    fn benign_spans_take_alerted_windows_back_in() {
        let omega = Omega::from_micros(500_000).unwrap();
        // Alerts at 5, 6 (benign incident) and 15 (another incident).
        let rows: Vec<HistoryRow> = (0..20)
            .map(|k| row(k, [5, 6, 15].contains(&k), 0))
            .collect();
        let spans = TrainingSpans {
            benign: vec![(5 * W, 7 * W)],
            other: vec![(15 * W, 16 * W)],
            benign_incidents: vec!["x-1".into()],
        };
        let set = select(&rows, omega, &spans);
        assert_eq!(set.included_benign, 2);
        assert_eq!((set.excluded_alerted, set.excluded_near_alert), (1, 4));
        assert_eq!(set.windows.len(), 15);
        // The same windows in an overlapping non-benign incident stay out.
        let both = TrainingSpans {
            other: vec![(4 * W, 8 * W), (15 * W, 16 * W)],
            ..spans
        };
        let set = select(&rows, omega, &both);
        assert_eq!((set.included_benign, set.excluded_alerted), (0, 3));
    }

    /// The range is start-inclusive, end-exclusive.
    #[test]
    fn range_bounds() {
        let r = TimeRange {
            from_ns: Some(10),
            to_ns: Some(20),
        };
        assert!(!r.contains(9) && r.contains(10) && r.contains(19) && !r.contains(20));
        assert!(TimeRange::ALL.contains(i64::MIN));
    }
}
