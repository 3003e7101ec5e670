//! The feature CSV of `netanom extract`, both directions: the header, writing a window as a
//! row (also as a [`WindowSink`]), and reading rows back for `netanom train --features`.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::pipeline::{SinkError, WindowSink};
use crate::timestamp::{format_ts, parse_ts_ns};
use crate::window::features::{FeatureVector, FEATURE_NAMES, NUM_FEATURES};
use crate::window::Window;

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

/// A window sink that writes the feature CSV (header first) to `out`, named `name` in errors.
pub struct CsvWriter<W: Write> {
    out: W,
    name: String,
    rows: u64,
}

impl<W: Write> CsvWriter<W> {
    /// Writes the header and returns the writer.
    pub fn new(mut out: W, name: impl Into<String>) -> Result<Self, CsvWriteError> {
        let name = name.into();
        writeln!(out, "{}", csv_header()).map_err(|source| CsvWriteError {
            name: name.clone(),
            source,
        })?;
        Ok(Self { out, name, rows: 0 })
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Flushes the output.
    pub fn flush(&mut self) -> Result<(), CsvWriteError> {
        self.out.flush().map_err(|source| CsvWriteError {
            name: self.name.clone(),
            source,
        })
    }
}

/// A feature CSV could not be written (disk full, closed pipe); names the output.
#[derive(Debug, thiserror::Error)]
#[error("writing {name}: {source}")]
pub struct CsvWriteError {
    pub name: String,
    pub source: std::io::Error,
}

impl<W: Write> WindowSink for CsvWriter<W> {
    fn window(&mut self, w: Window) -> Result<(), SinkError> {
        write_csv_row(&mut self.out, &w).map_err(|source| CsvWriteError {
            name: self.name.clone(),
            source,
        })?;
        self.rows += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(self.flush()?)
    }
}

/// One row of a feature CSV.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureRow {
    pub start_ns: i64,
    pub end_ns: i64,
    pub features: FeatureVector,
}

/// Why a feature CSV could not be read; each names the file and line.
#[derive(Debug, thiserror::Error)]
pub enum FeatureCsvError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the header is not netanom's feature header (expected `window_start,window_end,pkt_size_mean,…,dst_port_143_count`, 55 columns)")]
    Header { path: PathBuf },
    #[error("{path} line {line}: {what}")]
    Row {
        path: PathBuf,
        line: usize,
        what: String,
    },
}

/// Reads one feature CSV.
pub fn read_feature_csv(path: &Path) -> Result<Vec<FeatureRow>, FeatureCsvError> {
    let text = std::fs::read_to_string(path).map_err(|source| FeatureCsvError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_feature_csv(path, &text)
}

/// Parses the text of a feature CSV; `path` names it in errors.
pub fn parse_feature_csv(path: &Path, text: &str) -> Result<Vec<FeatureRow>, FeatureCsvError> {
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(csv_header().as_str()) {
        return Err(FeatureCsvError::Header {
            path: path.to_path_buf(),
        });
    }
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        let line_no = i + 2;
        if line.trim().is_empty() {
            continue;
        }
        let err = |what: String| FeatureCsvError::Row {
            path: path.to_path_buf(),
            line: line_no,
            what,
        };
        let cols: Vec<&str> = line.split(',').collect();
        if cols.len() != NUM_FEATURES + 2 {
            return Err(err(format!(
                "{} columns, expected {}",
                cols.len(),
                NUM_FEATURES + 2
            )));
        }
        let start_ns = parse_ts_ns(cols[0])
            .ok_or_else(|| err(format!("window_start {:?} is not a Unix time", cols[0])))?;
        let end_ns = parse_ts_ns(cols[1])
            .ok_or_else(|| err(format!("window_end {:?} is not a Unix time", cols[1])))?;
        let mut features = [0.0; NUM_FEATURES];
        for (j, (slot, text)) in features.iter_mut().zip(&cols[2..]).enumerate() {
            *slot = text
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    err(format!(
                        "{} = {text:?} is not a finite number",
                        FEATURE_NAMES[j]
                    ))
                })?;
        }
        rows.push(FeatureRow {
            start_ns,
            end_ns,
            features,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_and_rejects_bad_rows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.csv");
        let zeros = vec!["0"; NUM_FEATURES].join(",");
        std::fs::write(&p, format!("{}\n1.000000,1.500000,{zeros}\n", csv_header())).unwrap();
        let rows = read_feature_csv(&p).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].end_ns - rows[0].start_ns, 500_000_000);
        std::fs::write(
            &p,
            format!("{}\n1.000000,1.500000,{zeros},9\n", csv_header()),
        )
        .unwrap();
        let e = read_feature_csv(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("56 columns"), "{e}");
        std::fs::write(&p, "a,b\n").unwrap();
        let e = read_feature_csv(&p).unwrap_err().to_string();
        assert!(e.contains("header"), "{e}");
    }

    #[test]
    fn header_has_55_columns() {
        let h = csv_header();
        assert_eq!(h.split(',').count(), 55);
        assert!(h.starts_with("window_start,window_end,pkt_size_mean,pkt_count,"));
        assert!(h.ends_with(",dst_port_143_count"));
    }
}
