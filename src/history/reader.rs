//! Reading a history directory: list the segments of each ω (closed Parquet files and open
//! or crash-left journals), read them, skip and name the unreadable ones.

use std::path::{Path, PathBuf};

use super::training::TimeRange;
use super::writer::{omega_dirs, parquet_path_of};
use super::{journal, parquet, parse_omega_dir_name, HistoryError, HistoryRow};
use crate::window::Omega;

/// What a segment file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentKind {
    /// A closed segment.
    Parquet,
    /// The open segment of a running recorder, or one left by a crash.
    Journal,
}

/// One segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentFile {
    /// Its path.
    pub path: PathBuf,
    /// The window length of its directory.
    pub omega: Omega,
    /// Parquet or journal.
    pub kind: SegmentKind,
}

/// The segments of one ω, in name (= time) order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OmegaScan {
    /// The window length.
    pub omega: Omega,
    /// Its segment files.
    pub segments: Vec<SegmentFile>,
}

/// The segments of a history directory, per ω (ascending).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryScan {
    /// The directory.
    pub dir: PathBuf,
    /// One entry per `omega_us=…` directory.
    pub omegas: Vec<OmegaScan>,
}

impl HistoryScan {
    /// The window lengths present.
    pub fn omegas(&self) -> Vec<Omega> {
        self.omegas.iter().map(|o| o.omega).collect()
    }

    /// The segments of `omega`, if any.
    pub fn get(&self, omega: Omega) -> Option<&OmegaScan> {
        self.omegas.iter().find(|o| o.omega == omega)
    }
}

/// Lists the segments under `dir` (nothing is read). A journal whose Parquet file exists is
/// left out (the crash came between the rename and the delete).
pub fn scan(dir: &Path) -> Result<HistoryScan, HistoryError> {
    if !dir.is_dir() {
        return Err(HistoryError::NoDir {
            path: dir.to_path_buf(),
        });
    }
    let mut omegas = Vec::new();
    for sub in omega_dirs(dir) {
        let Some(omega) = sub
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_omega_dir_name)
        else {
            continue;
        };
        let entries = std::fs::read_dir(&sub).map_err(|source| HistoryError::Io {
            path: sub.clone(),
            error: source,
        })?;
        let mut segments: Vec<SegmentFile> = entries
            .flatten()
            .filter_map(|e| {
                let path = e.path();
                let kind = match path.extension().and_then(|x| x.to_str()) {
                    Some("parquet") => SegmentKind::Parquet,
                    Some("journal") if !parquet_path_of(&path).exists() => SegmentKind::Journal,
                    _ => return None,
                };
                Some(SegmentFile { path, omega, kind })
            })
            .collect();
        segments.sort_by(|a, b| a.path.cmp(&b.path));
        omegas.push(OmegaScan { omega, segments });
    }
    omegas.sort_by_key(|o| o.omega);
    Ok(HistoryScan {
        dir: dir.to_path_buf(),
        omegas,
    })
}

impl SegmentFile {
    /// Reads the segment's rows. A journal's cut-off tail is skipped with a warning; a journal
    /// converted since it was listed is read from its Parquet file.
    pub fn read(&self) -> Result<Vec<HistoryRow>, HistoryError> {
        match self.kind {
            SegmentKind::Parquet => parquet::read_segment(&self.path, self.omega),
            SegmentKind::Journal => match journal::read(&self.path) {
                Ok(read) => {
                    if read.truncated_bytes > 0 || read.bad_records > 0 {
                        tracing::warn!(
                            journal = %self.path.display(),
                            truncated_bytes = read.truncated_bytes,
                            bad_records = read.bad_records,
                            "feature history: skipping a cut-off or damaged record"
                        );
                    }
                    Ok(read.rows)
                }
                Err(HistoryError::Io { error: source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    parquet::read_segment(&parquet_path_of(&self.path), self.omega)
                }
                Err(e) => Err(e),
            },
        }
    }
}

/// The rows of one ω read from its segments.
#[derive(Debug, Default)]
pub struct OmegaRows {
    /// Rows with a start in the range, sorted by start; a start seen twice is kept once.
    pub rows: Vec<HistoryRow>,
    /// Segments read.
    pub segments: usize,
    /// Segments that could not be read (skipped), with why.
    pub unreadable: Vec<(PathBuf, HistoryError)>,
    /// Rows left out because an earlier segment had a window with the same start.
    pub duplicates: usize,
}

impl OmegaScan {
    /// Reads every segment (warning about and skipping the unreadable ones) and keeps the
    /// rows whose start lies in `range`.
    pub fn read(&self, range: TimeRange) -> OmegaRows {
        let mut out = OmegaRows::default();
        for seg in &self.segments {
            match seg.read() {
                Ok(rows) => {
                    out.segments += 1;
                    out.rows
                        .extend(rows.into_iter().filter(|r| range.contains(r.start_ns)));
                }
                Err(e) => {
                    tracing::warn!("feature history: unreadable segment skipped: {e}");
                    out.unreadable.push((seg.path.clone(), e));
                }
            }
        }
        out.rows.sort_by_key(|r| r.start_ns);
        let before = out.rows.len();
        out.rows.dedup_by_key(|r| r.start_ns);
        out.duplicates = before - out.rows.len();
        out
    }
}
