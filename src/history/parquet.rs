//! Closed segments: one Apache Parquet file (snappy) per segment, one row per window.
//!
//! Columns, in order: `window_start`, `window_end` (epoch seconds, float64), the 53 features
//! named as in [`FEATURE_NAMES`] (float64), `packets` (uint64), `distinct_estimated` (bool),
//! `capture_drops` (int64), `alerted` (bool), `score` (float64, null when not scored). The file
//! metadata holds `netanom.omega_us`. Times are whole microseconds, so float64 seconds round
//! back to the exact nanosecond values (to within 0.3 µs before rounding, for dates to 2100).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::{HistoryError, HistoryRow};
use crate::window::features::{FeatureVector, FEATURE_NAMES, NUM_FEATURES};
use crate::window::Omega;

/// The file metadata key holding ω in microseconds.
pub const OMEGA_KEY: &str = "netanom.omega_us";

/// The column names of a segment, in order.
pub fn column_names() -> Vec<&'static str> {
    let mut names = vec!["window_start", "window_end"];
    names.extend(FEATURE_NAMES.iter().copied());
    names.extend([
        "packets",
        "distinct_estimated",
        "capture_drops",
        "alerted",
        "score",
    ]);
    names
}

/// The Arrow schema of a segment of windows of length `omega`.
pub fn schema(omega: Omega) -> Schema {
    let mut fields: Vec<Field> = ["window_start", "window_end"]
        .iter()
        .chain(FEATURE_NAMES.iter())
        .map(|n| Field::new(*n, DataType::Float64, false))
        .collect();
    fields.push(Field::new("packets", DataType::UInt64, false));
    fields.push(Field::new("distinct_estimated", DataType::Boolean, false));
    fields.push(Field::new("capture_drops", DataType::Int64, false));
    fields.push(Field::new("alerted", DataType::Boolean, false));
    fields.push(Field::new("score", DataType::Float64, true));
    Schema::new(fields).with_metadata(HashMap::from([(
        OMEGA_KEY.to_string(),
        omega.micros().to_string(),
    )]))
}

/// Epoch seconds of a time in ns.
fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}

/// ns of epoch seconds written by [`secs`] (rounded to the microsecond they were).
fn nanos(s: f64) -> i64 {
    (s * 1e6).round() as i64 * 1000
}

/// The rows as one record batch.
pub fn to_batch(omega: Omega, rows: &[HistoryRow]) -> Result<RecordBatch, String> {
    let f64s = |f: &dyn Fn(&HistoryRow) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let mut cols: Vec<ArrayRef> = vec![f64s(&|r| secs(r.start_ns)), f64s(&|r| secs(r.end_ns))];
    for i in 0..NUM_FEATURES {
        cols.push(f64s(&|r| r.features[i]));
    }
    cols.push(Arc::new(UInt64Array::from(
        rows.iter().map(|r| r.packets).collect::<Vec<_>>(),
    )));
    cols.push(Arc::new(BooleanArray::from(
        rows.iter()
            .map(|r| r.distinct_estimated)
            .collect::<Vec<_>>(),
    )));
    cols.push(Arc::new(Int64Array::from(
        rows.iter()
            .map(|r| i64::try_from(r.capture_drops).unwrap_or(i64::MAX))
            .collect::<Vec<_>>(),
    )));
    cols.push(Arc::new(BooleanArray::from(
        rows.iter().map(|r| r.alerted).collect::<Vec<_>>(),
    )));
    cols.push(Arc::new(Float64Array::from(
        rows.iter().map(|r| r.score).collect::<Vec<_>>(),
    )));
    RecordBatch::try_new(Arc::new(schema(omega)), cols).map_err(|e| e.to_string())
}

/// The temporary (hidden) name a segment is written under before it is renamed to `path`:
/// `X.parquet` → `.X.parquet.tmp`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Writes `rows` as the segment `path`, atomically: [`tmp_path`], fsync, rename, fsync of the
/// directory. A crash leaves either no `path` or a whole one.
pub fn write_segment(path: &Path, omega: Omega, rows: &[HistoryRow]) -> Result<(), HistoryError> {
    let tmp = tmp_path(path);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| HistoryError::Io {
            path: p,
            error: source,
        }
    };
    let bad = |what: String| HistoryError::WriteSegment {
        path: path.to_path_buf(),
        what,
    };
    let batch = to_batch(omega, rows).map_err(bad)?;
    let file = File::create(&tmp).map_err(io(&tmp))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer =
        ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(|e| bad(e.to_string()))?;
    writer.write(&batch).map_err(|e| bad(e.to_string()))?;
    let mut file = writer.into_inner().map_err(|e| bad(e.to_string()))?;
    file.flush().map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        // Makes the rename itself durable; a failure here is not worth losing the segment.
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// A column of `batch` by name, of type `A`, or what is wrong with it.
fn column<'a, A: Array + 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a A, String> {
    batch
        .column_by_name(name)
        .ok_or_else(|| format!("no column `{name}`"))?
        .as_any()
        .downcast_ref::<A>()
        .ok_or_else(|| format!("column `{name}` has the wrong type"))
}

/// Reads the segment at `path` (windows of length `omega`, from its directory's name).
pub fn read_segment(path: &Path, omega: Omega) -> Result<Vec<HistoryRow>, HistoryError> {
    let bad = |what: String| HistoryError::BadSegment {
        path: path.to_path_buf(),
        what,
    };
    let file = File::open(path).map_err(|source| HistoryError::Io {
        path: path.to_path_buf(),
        error: source,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad(e.to_string()))?;
    let names: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    if names != column_names() {
        return Err(bad(format!(
            "the columns are not netanom's history columns (expected window_start, window_end, the 53 features, packets, distinct_estimated, capture_drops, alerted, score; found {} columns)",
            names.len()
        )));
    }
    let reader = builder.build().map_err(|e| bad(e.to_string()))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| bad(e.to_string()))?;
        append_rows(&batch, omega, &mut rows).map_err(bad)?;
    }
    Ok(rows)
}

/// Appends the rows of one record batch.
fn append_rows(b: &RecordBatch, omega: Omega, rows: &mut Vec<HistoryRow>) -> Result<(), String> {
    let start = column::<Float64Array>(b, "window_start")?;
    let end = column::<Float64Array>(b, "window_end")?;
    let features: Vec<&Float64Array> = FEATURE_NAMES
        .iter()
        .map(|n| column::<Float64Array>(b, n))
        .collect::<Result<_, _>>()?;
    let packets = column::<UInt64Array>(b, "packets")?;
    let estimated = column::<BooleanArray>(b, "distinct_estimated")?;
    let drops = column::<Int64Array>(b, "capture_drops")?;
    let alerted = column::<BooleanArray>(b, "alerted")?;
    let score = column::<Float64Array>(b, "score")?;
    rows.reserve(b.num_rows());
    for i in 0..b.num_rows() {
        let mut f: FeatureVector = [0.0; NUM_FEATURES];
        for (v, col) in f.iter_mut().zip(&features) {
            *v = col.value(i);
        }
        rows.push(HistoryRow {
            omega,
            start_ns: nanos(start.value(i)),
            end_ns: nanos(end.value(i)),
            features: f,
            packets: packets.value(i),
            distinct_estimated: estimated.value(i),
            capture_drops: u64::try_from(drops.value(i)).unwrap_or(0),
            alerted: alerted.value(i),
            score: (!score.is_null(i)).then(|| score.value(i)),
        });
    }
    Ok(())
}
