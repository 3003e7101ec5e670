//! The recorder: its own thread, fed by [`HistoryHandle::record`] through a bounded queue
//! (`try_send`: a full queue drops the row and counts it, the caller never waits).
//!
//! * Each ω has one open segment, a journal (`.*.journal`, hidden from Parquet tools), flushed to the kernel every second
//!   ([`FLUSH_EVERY`]; a `kill -9` loses at most that) and fsync'ed every 30 s ([`SYNC_EVERY`];
//!   a power cut loses at most that).
//! * A segment covers `segment` of window time (aligned: 60 min gives 14:00–15:00); the first
//!   window of the next period, and a clean stop, close it: its journal is converted to Parquet
//!   (`.*.parquet.tmp`, fsync, rename) and deleted.
//! * At start, journals left by a crash are converted the same way (a cut-off last record is
//!   skipped with a warning; a journal that cannot be read is left, with a warning).
//! * Retention: closed segments last modified more than `retention` ago are deleted, at start
//!   and every hour.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use super::{journal, omega_dir_name, parquet, parse_omega_dir_name, HistoryError, HistoryRow};
use crate::output::metrics::Metrics;
use crate::window::{Omega, Window};

/// How often the open journals are flushed to the kernel (what a `kill -9` can lose).
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often the open journals are fsync'ed (what a power cut can lose).
pub const SYNC_EVERY: Duration = Duration::from_secs(30);
/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// How long write errors are quiet in the log between two reports.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// What the recorder needs to know (from `[history]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryConfig {
    /// The history directory.
    pub dir: PathBuf,
    /// Closed segments older than this are deleted.
    pub retention: Duration,
    /// Window time one segment covers.
    pub segment: Duration,
    /// Rows the queue holds before rows are dropped.
    pub queue: usize,
}

impl HistoryConfig {
    /// Default queue length: over an hour of windows at ω = 0.5 s.
    pub const DEFAULT_QUEUE: usize = 8192;
}

/// How long a stop waits for the recorder to close its segments (a stuck disk must not keep
/// the daemon from exiting; the journals are then recovered at the next start).
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);

/// The recorder thread; [`HistoryWriter::finish`] waits for it to close its segments.
pub struct HistoryWriter {
    thread: JoinHandle<()>,
    /// Disconnected when the thread ends.
    done: Receiver<()>,
}

/// What the recorder's queue carries.
// Rows are the traffic and flushes rare: boxing rows to shrink the enum would allocate per window.
#[allow(clippy::large_enum_variant)]
enum Record {
    /// A window to record.
    Row(HistoryRow),
    /// Flush the open journals, then acknowledge (a reader is about to read them).
    Flush(Sender<()>),
}

/// Hands rows to the recorder without ever waiting; cheap to clone.
#[derive(Clone)]
pub struct HistoryHandle {
    tx: Sender<Record>,
    metrics: Arc<Metrics>,
    /// The libpcap drop total when the last window of each ω was recorded.
    last_drops: Vec<(Omega, u64)>,
    /// When dropped rows were last reported in the log.
    last_warned: Option<Instant>,
}

impl HistoryWriter {
    /// Checks that `config.dir` can be created and written, then starts the recorder thread,
    /// which first recovers journals left by a crash and applies retention.
    pub fn start(
        config: HistoryConfig,
        metrics: Arc<Metrics>,
    ) -> Result<(HistoryWriter, HistoryHandle), HistoryError> {
        check_writable(&config.dir)?;
        let (tx, rx) = crossbeam_channel::bounded(config.queue.max(1));
        let recorder = Recorder::new(config, metrics.clone());
        let (done_tx, done) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("netanom-history".into())
            .spawn(move || {
                let _done = done_tx;
                recorder.run(rx)
            })
            .map_err(HistoryError::Thread)?;
        let handle = HistoryHandle {
            tx,
            metrics,
            last_drops: Vec::new(),
            last_warned: None,
        };
        Ok((HistoryWriter { thread, done }, handle))
    }

    /// Waits until every handle is dropped and the recorder has closed its segments (at most
    /// 30 s: a recorder stuck on its disk is left behind, its journals recovered next start).
    pub fn finish(self) {
        if let Err(RecvTimeoutError::Timeout) = self.done.recv_timeout(FINISH_TIMEOUT) {
            tracing::error!("the history recorder did not finish within 30 s (stuck disk?); its open journals are recovered at the next start");
            return;
        }
        if self.thread.join().is_err() {
            tracing::error!("the history recorder thread panicked; its journals are recovered at the next start");
        }
    }
}

impl HistoryHandle {
    /// Queues `row`; `false` (and counted in `netanom_history_rows_dropped_total`) when the
    /// queue is full or the recorder is gone.
    pub fn record(&mut self, row: HistoryRow) -> bool {
        match self.tx.try_send(Record::Row(row)) {
            Ok(()) => true,
            Err(
                TrySendError::Full(Record::Row(row)) | TrySendError::Disconnected(Record::Row(row)),
            ) => {
                self.metrics.history_rows_dropped_total.inc();
                let now = Instant::now();
                if self
                    .last_warned
                    .is_none_or(|t| now.duration_since(t) >= REPORT_EVERY)
                {
                    self.last_warned = Some(now);
                    tracing::warn!(
                        window_start = %crate::timestamp::format_ts(row.start_ns),
                        dropped_total = self.metrics.history_rows_dropped_total.get(),
                        "feature history is behind (slow disk?): history rows dropped"
                    );
                }
                false
            }
            Err(_) => false,
        }
    }

    /// Waits (at most `timeout`) until every row queued so far is in the journals' files, so
    /// that a reader sees them: the learner reads the history right after a replay recorded
    /// it. `false` on timeout or when the recorder is gone.
    pub fn flush_wait(&self, timeout: Duration) -> bool {
        let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
        self.tx.send_timeout(Record::Flush(ack_tx), timeout).is_ok()
            && ack_rx.recv_timeout(timeout).is_ok()
    }

    /// Queues `row`, waiting for room: for tools that generate a history (the benchmark), never
    /// for the daemon. `false` when the recorder is gone.
    pub fn record_wait(&mut self, row: HistoryRow) -> bool {
        self.tx.send(Record::Row(row)).is_ok()
    }

    /// The row of window `w` of the stream of length `omega`, not yet scored; the libpcap
    /// drops reported since the previous row of that stream are attributed to it.
    pub fn row(&mut self, w: &Window, omega: Omega) -> HistoryRow {
        let total = self.metrics.pcap_drops_total();
        let drops = match self.last_drops.iter_mut().find(|(o, _)| *o == omega) {
            Some((_, last)) => {
                let d = total.saturating_sub(*last);
                *last = total;
                d
            }
            // The drops before the first window of a stream belong to none of its windows.
            None => {
                self.last_drops.push((omega, total));
                0
            }
        };
        HistoryRow::from_window(w, omega, drops, false, None)
    }

    /// Records window `w` of the stream of length `omega` with its outcome (see [`Self::row`]).
    pub fn record_window(
        &mut self,
        w: &Window,
        omega: Omega,
        alerted: bool,
        score: Option<f64>,
    ) -> bool {
        let row = HistoryRow {
            alerted,
            score,
            ..self.row(w, omega)
        };
        self.record(row)
    }
}

/// Creates `dir` and proves a file can be written in it.
fn check_writable(dir: &Path) -> Result<(), HistoryError> {
    std::fs::create_dir_all(dir).map_err(|source| HistoryError::CreateDir {
        path: dir.to_path_buf(),
        error: source,
    })?;
    let probe = dir.join(".netanom-write-test");
    File::create(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|source| HistoryError::NotWritable {
            path: dir.to_path_buf(),
            error: source,
        })
}

/// The open segment of one ω.
struct OpenSegment {
    /// Index of the segment period (window start / segment length).
    period: i64,
    /// The journal's path.
    journal: PathBuf,
    /// The journal, buffered.
    file: BufWriter<File>,
    /// Records not yet flushed to the kernel.
    unflushed: bool,
}

/// The recorder thread's state.
struct Recorder {
    config: HistoryConfig,
    metrics: Arc<Metrics>,
    open: HashMap<Omega, OpenSegment>,
    last_flush: Instant,
    last_sync: Instant,
    last_retention: Instant,
    /// Since when writes fail and when that was last reported.
    failing: Option<Instant>,
    /// Reused record buffer.
    buf: Vec<u8>,
}

impl Recorder {
    /// A recorder writing under `config.dir`.
    fn new(config: HistoryConfig, metrics: Arc<Metrics>) -> Self {
        let now = Instant::now();
        Recorder {
            config,
            metrics,
            open: HashMap::new(),
            last_flush: now,
            last_sync: now,
            last_retention: now,
            failing: None,
            buf: Vec::with_capacity(journal::RECORD_LEN),
        }
    }

    /// Recovers, then records rows until every sender is gone, then closes the segments.
    fn run(mut self, rx: Receiver<Record>) {
        for e in recover_dir(&self.config.dir) {
            self.error(&e);
        }
        self.retention();
        loop {
            match rx.recv_timeout(FLUSH_EVERY) {
                Ok(Record::Row(row)) => self.append(row),
                Ok(Record::Flush(ack)) => {
                    self.flush_all();
                    let _ = ack.send(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.periodic();
        }
        let omegas: Vec<Omega> = self.open.keys().copied().collect();
        for omega in omegas {
            self.close(omega);
        }
        tracing::info!(dir = %self.config.dir.display(), "feature history closed");
    }

    /// Counts and reports a failed write (the first, then at most once a minute).
    fn error(&mut self, e: &HistoryError) {
        self.metrics.history_write_errors_total.inc();
        let now = Instant::now();
        if self
            .failing
            .is_none_or(|t| now.duration_since(t) >= REPORT_EVERY)
        {
            self.failing = Some(now);
            tracing::error!(
                errors_total = self.metrics.history_write_errors_total.get(),
                "feature history: {e}"
            );
        }
    }

    /// The segment period of a window start.
    fn period(&self, start_ns: i64) -> i64 {
        let len = i64::try_from(self.config.segment.as_nanos())
            .unwrap_or(i64::MAX)
            .max(1);
        start_ns.div_euclid(len)
    }

    /// Appends one row to its ω's journal, rotating first when its period has begun.
    fn append(&mut self, row: HistoryRow) {
        let period = self.period(row.start_ns);
        if self
            .open
            .get(&row.omega)
            .is_some_and(|s| s.period != period)
        {
            self.close(row.omega);
        }
        if !self.open.contains_key(&row.omega) {
            match self.open_segment(row.omega, period) {
                Ok(seg) => {
                    self.open.insert(row.omega, seg);
                }
                Err(e) => return self.error(&e),
            }
        }
        self.buf.clear();
        journal::encode(&row, &mut self.buf);
        let Some(seg) = self.open.get_mut(&row.omega) else {
            return;
        };
        match seg.file.write_all(&self.buf) {
            Ok(()) => {
                seg.unflushed = true;
                self.metrics.history_rows_total.inc();
            }
            Err(source) => {
                // Give the segment up (its journal is recovered at the next start); the next
                // row opens a new one.
                let path = seg.journal.clone();
                self.open.remove(&row.omega);
                self.error(&HistoryError::Io {
                    path,
                    error: source,
                });
            }
        }
    }

    /// Creates the journal of a new segment of `omega` for segment period `period`.
    fn open_segment(&self, omega: Omega, period: i64) -> Result<OpenSegment, HistoryError> {
        let dir = self.config.dir.join(omega_dir_name(omega));
        std::fs::create_dir_all(&dir).map_err(|source| HistoryError::CreateDir {
            path: dir.clone(),
            error: source,
        })?;
        let seg_ns = i64::try_from(self.config.segment.as_nanos()).unwrap_or(i64::MAX);
        let stem = segment_stem(period.saturating_mul(seg_ns));
        let journal = free_name(&dir, &stem);
        let io = |source| HistoryError::Io {
            path: journal.clone(),
            error: source,
        };
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&journal)
            .map_err(io)?;
        let mut file = BufWriter::with_capacity(64 * 1024, file);
        file.write_all(&journal::header(omega)).map_err(io)?;
        Ok(OpenSegment {
            period,
            journal,
            file,
            unflushed: true,
        })
    }

    /// Flushes every open journal now (errors are counted and reported as in `periodic`).
    fn flush_all(&mut self) {
        let mut failed = Vec::new();
        for seg in self.open.values_mut() {
            if let Err(source) = seg.file.flush() {
                failed.push(HistoryError::Io {
                    path: seg.journal.clone(),
                    error: source,
                });
            }
            seg.unflushed = false;
        }
        for e in failed {
            self.error(&e);
        }
    }

    /// Flushes and syncs the open journals when due; runs retention when due.
    fn periodic(&mut self) {
        let now = Instant::now();
        let sync = now.duration_since(self.last_sync) >= SYNC_EVERY;
        if now.duration_since(self.last_flush) >= FLUSH_EVERY || sync {
            self.last_flush = now;
            let mut failed = Vec::new();
            for (omega, seg) in &mut self.open {
                let r = if seg.unflushed {
                    seg.file.flush()
                } else {
                    Ok(())
                };
                let r = r.and_then(|()| {
                    if sync {
                        seg.file.get_ref().sync_data()
                    } else {
                        Ok(())
                    }
                });
                seg.unflushed = false;
                if let Err(source) = r {
                    failed.push((*omega, seg.journal.clone(), source));
                }
            }
            for (omega, path, source) in failed {
                self.open.remove(&omega);
                self.error(&HistoryError::Io {
                    path,
                    error: source,
                });
            }
        }
        if sync {
            self.last_sync = now;
        }
        if now.duration_since(self.last_retention) >= RETENTION_EVERY {
            self.last_retention = now;
            self.retention();
        }
    }

    /// Closes the open segment of `omega`: its journal becomes a Parquet file.
    fn close(&mut self, omega: Omega) {
        let Some(mut seg) = self.open.remove(&omega) else {
            return;
        };
        let flushed = seg
            .file
            .flush()
            .and_then(|()| seg.file.get_ref().sync_data());
        if let Err(source) = flushed {
            return self.error(&HistoryError::Io {
                path: seg.journal,
                error: source,
            });
        }
        drop(seg.file);
        if let Err(e) = convert_journal(&seg.journal) {
            self.error(&e);
        }
    }

    /// Deletes closed segments last modified more than `retention` ago.
    fn retention(&mut self) {
        let Some(cutoff) = SystemTime::now().checked_sub(self.config.retention) else {
            return;
        };
        let mut errors = Vec::new();
        for dir in omega_dirs(&self.config.dir) {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_none_or(|e| e != "parquet") {
                    continue;
                }
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < cutoff);
                if old {
                    match std::fs::remove_file(&path) {
                        Ok(()) => {
                            tracing::info!(segment = %path.display(), "feature history: segment past history.retention_days deleted")
                        }
                        Err(source) => errors.push(HistoryError::Io {
                            path,
                            error: source,
                        }),
                    }
                }
            }
        }
        for e in errors {
            self.error(&e);
        }
    }
}

/// The `omega_us=…` directories under `dir`.
pub(crate) fn omega_dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(parse_omega_dir_name)
                .is_some()
                && e.path().is_dir()
        })
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

/// The file stem of a segment starting at `ns`: `20261201T140000Z` (UTC).
fn segment_stem(ns: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ns.div_euclid(1_000_000_000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    t.format(&fmt).unwrap_or_else(|_| ns.to_string())
}

/// `dir/.stem.journal`, or `dir/.stem-2.journal`, … when that segment exists already (a
/// restart within the same period). Journals are hidden (a leading dot) so that tools reading
/// the directory as a Parquet data set (pandas, pyarrow) skip them.
fn free_name(dir: &Path, stem: &str) -> PathBuf {
    let mut n = 1;
    loop {
        let s = if n == 1 {
            stem.to_string()
        } else {
            format!("{stem}-{n}")
        };
        let taken = [
            format!(".{s}.journal"),
            format!("{s}.parquet"),
            format!(".{s}.parquet.tmp"),
        ]
        .iter()
        .any(|name| dir.join(name).exists());
        if !taken {
            return dir.join(format!(".{s}.journal"));
        }
        n += 1;
    }
}

/// The Parquet path of a journal: `.X.journal` → `X.parquet`.
pub(crate) fn parquet_path_of(journal: &Path) -> PathBuf {
    let name = journal
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let stem = name.strip_prefix('.').unwrap_or(name);
    let stem = stem.strip_suffix(".journal").unwrap_or(stem);
    journal.with_file_name(format!("{stem}.parquet"))
}

/// Converts a journal to its Parquet segment and deletes it (an empty journal is just
/// deleted). A cut-off tail or bad records are skipped with a warning.
pub fn convert_journal(path: &Path) -> Result<(), HistoryError> {
    let read = journal::read(path)?;
    if read.truncated_bytes > 0 || read.bad_records > 0 {
        tracing::warn!(
            journal = %path.display(),
            truncated_bytes = read.truncated_bytes,
            bad_records = read.bad_records,
            rows = read.rows.len(),
            "feature history: journal has a cut-off or damaged record (a crash?); it is skipped"
        );
    }
    if let Some(first) = read.rows.first() {
        parquet::write_segment(&parquet_path_of(path), first.omega, &read.rows)?;
    }
    std::fs::remove_file(path).map_err(|source| HistoryError::Io {
        path: path.to_path_buf(),
        error: source,
    })
}

/// Converts every journal under `dir` left by a crash; deletes `*.parquet.tmp` leftovers.
/// Returns what failed (each journal that failed is left as it is, and read as a journal).
pub fn recover_dir(dir: &Path) -> Vec<HistoryError> {
    let mut errors = Vec::new();
    for sub in omega_dirs(dir) {
        let Ok(entries) = std::fs::read_dir(&sub) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if name.ends_with(".parquet.tmp") {
                tracing::warn!(file = %path.display(), "feature history: deleting a segment left half-written by a crash (its journal is kept)");
                if let Err(source) = std::fs::remove_file(&path) {
                    errors.push(HistoryError::Io {
                        path,
                        error: source,
                    });
                }
            } else if name.ends_with(".journal") {
                if parquet_path_of(&path).exists() {
                    // Converted, but the crash came before the journal was deleted.
                    if let Err(source) = std::fs::remove_file(&path) {
                        errors.push(HistoryError::Io {
                            path,
                            error: source,
                        });
                    }
                    continue;
                }
                tracing::info!(journal = %path.display(), "feature history: recovering a journal left by an unclean stop");
                if let Err(e) = convert_journal(&path) {
                    tracing::warn!("feature history: {e}; left as it is and skipped");
                    errors.push(e);
                }
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Segment names: aligned UTC start; a taken name gets a suffix.
    #[test]
    fn segment_names() {
        assert_eq!(segment_stem(1_764_597_600_000_000_000), "20251201T140000Z");
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(free_name(dir.path(), "a"), dir.path().join(".a.journal"));
        std::fs::write(dir.path().join("a.parquet"), b"").unwrap();
        assert_eq!(free_name(dir.path(), "a"), dir.path().join(".a-2.journal"));
        let j = Path::new("/h/omega_us=5/.20251201T140000Z-2.journal");
        assert_eq!(
            parquet_path_of(j),
            Path::new("/h/omega_us=5/20251201T140000Z-2.parquet")
        );
        assert_eq!(
            parquet_path_of(Path::new("/x/b.journal")),
            Path::new("/x/b.parquet")
        );
    }

    /// Rows across a rotation come back exactly from the Parquet files, in two segments per
    /// period, with the documented column names; the metrics count them.
    #[test]
    fn round_trip_across_a_rotation() {
        use crate::history::reader::scan;
        use crate::history::TimeRange;
        use crate::window::features::{FEATURE_NAMES, NUM_FEATURES};

        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let config = HistoryConfig {
            dir: dir.path().join("h"),
            retention: Duration::from_secs(86_400),
            segment: Duration::from_secs(60),
            queue: 1000,
        };
        let (writer, mut handle) = HistoryWriter::start(config, metrics.clone()).unwrap();
        let omega = Omega::from_micros(500_000).unwrap();
        // 14:00:50 to 14:01:10 (UTC): 40 windows of 0.5 s, 20 in each minute.
        let t0 = 1_764_597_650_000_000_000_i64;
        let rows: Vec<HistoryRow> = (0..40)
            .map(|k| {
                let mut features = [0.0; NUM_FEATURES];
                for (i, f) in features.iter_mut().enumerate() {
                    *f = k as f64 * 1.5 + i as f64 / 3.0;
                }
                HistoryRow {
                    omega,
                    start_ns: t0 + k * 500_000_000,
                    end_ns: t0 + (k + 1) * 500_000_000,
                    features,
                    packets: k as u64 * 10,
                    distinct_estimated: k == 7,
                    capture_drops: if k == 3 { 12 } else { 0 },
                    alerted: k == 30,
                    score: (k >= 2).then(|| k as f64 / 9.0),
                }
            })
            .collect();
        for r in &rows {
            assert!(handle.record(r.clone()));
        }
        drop(handle);
        writer.finish();

        let sub = dir.path().join("h/omega_us=500000");
        let mut names: Vec<String> = std::fs::read_dir(&sub)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["20251201T140000Z.parquet", "20251201T140100Z.parquet"]
        );

        let history = scan(&dir.path().join("h")).unwrap();
        assert_eq!(history.omegas(), vec![omega]);
        let read = history.get(omega).unwrap().read(TimeRange::ALL);
        assert_eq!(read.segments, 2);
        assert!(read.unreadable.is_empty());
        assert_eq!(read.rows, rows);
        assert_eq!(metrics.history_rows_total.get(), 40);
        assert_eq!(metrics.history_rows_dropped_total.get(), 0);

        // The file's own schema, as any Parquet reader sees it.
        let file = File::open(sub.join("20251201T140000Z.parquet")).unwrap();
        let builder =
            ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let got: Vec<String> = builder
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut want = vec!["window_start".to_string(), "window_end".to_string()];
        want.extend(FEATURE_NAMES.iter().map(|s| s.to_string()));
        want.extend(
            [
                "packets",
                "distinct_estimated",
                "capture_drops",
                "alerted",
                "score",
            ]
            .map(String::from),
        );
        assert_eq!(got, want);
        assert_eq!(builder.metadata().file_metadata().num_rows(), 20);
    }

    /// A full queue drops rows and counts them; the caller never waits.
    #[test]
    fn full_queue_drops_and_counts() {
        let metrics = Arc::new(Metrics::new());
        let (tx, _rx) = crossbeam_channel::bounded(1);
        let mut handle = HistoryHandle {
            tx,
            metrics: metrics.clone(),
            last_drops: Vec::new(),
            last_warned: None,
        };
        let row = crate::history::journal::tests::row(1, None);
        assert!(handle.record(row.clone()));
        assert!(!handle.record(row.clone()));
        assert!(!handle.record(row));
        assert_eq!(metrics.history_rows_dropped_total.get(), 2);
    }

    /// libpcap drops reported between two windows of a stream go to the later one; each ω
    /// keeps its own tally; the drops before a stream's first window go to none.
    #[test]
    fn drops_are_attributed_per_stream() {
        let metrics = Arc::new(Metrics::new());
        let (tx, _rx) = crossbeam_channel::bounded(10);
        let mut handle = HistoryHandle {
            tx,
            metrics: metrics.clone(),
            last_drops: Vec::new(),
            last_warned: None,
        };
        let w = Window {
            start_ns: 0,
            end_ns: 500_000_000,
            features: [1.0; crate::window::features::NUM_FEATURES],
            talkers: Default::default(),
            contributors: Default::default(),
            distinct_estimated: true,
            late_packets: 0,
            after_time_jump: false,
            incomplete: false,
        };
        let (half, five) = (
            Omega::from_micros(500_000).unwrap(),
            Omega::from_micros(5_000_000).unwrap(),
        );
        metrics.record_pcap_stats(7, 0);
        assert_eq!(handle.row(&w, half).capture_drops, 0);
        metrics.record_pcap_stats(10, 2);
        let r = handle.row(&w, half);
        assert_eq!(
            (r.capture_drops, r.packets, r.distinct_estimated),
            (5, 1, true)
        );
        assert_eq!(handle.row(&w, five).capture_drops, 0);
        metrics.record_pcap_stats(11, 2);
        assert_eq!(handle.row(&w, half).capture_drops, 1);
        assert_eq!(handle.row(&w, five).capture_drops, 1);
        assert_eq!(handle.row(&w, half).capture_drops, 0);
    }

    /// A journal left by a crash (cut off mid-record) is recovered into Parquet at start.
    #[test]
    fn crash_left_journal_is_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("omega_us=500000");
        std::fs::create_dir_all(&sub).unwrap();
        let rows: Vec<HistoryRow> = (0..5)
            .map(|k| crate::history::journal::tests::row(k, Some(0.5)))
            .collect();
        let mut bytes = journal::header(rows[0].omega).to_vec();
        for r in &rows {
            journal::encode(r, &mut bytes);
        }
        bytes.truncate(bytes.len() - 7);
        std::fs::write(sub.join(".a.journal"), &bytes).unwrap();
        std::fs::write(sub.join(".b.parquet.tmp"), b"half").unwrap();
        assert!(recover_dir(dir.path()).is_empty());
        assert!(!sub.join(".a.journal").exists());
        assert!(!sub.join(".b.parquet.tmp").exists());
        let back = parquet::read_segment(&sub.join("a.parquet"), rows[0].omega).unwrap();
        assert_eq!(back, rows[..4]);
    }

    /// A directory under a regular file is an error naming the path.
    #[test]
    fn unwritable_dir_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let e = check_writable(&file.join("history")).unwrap_err();
        assert!(matches!(e, HistoryError::CreateDir { .. }), "{e}");
        assert!(e.to_string().starts_with("history.dir "), "{e}");
        assert!(e.to_string().contains("file/history"), "{e}");
    }
}
