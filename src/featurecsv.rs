//! Reading feature CSVs written by `netanom extract` back into windows.

use std::path::{Path, PathBuf};

use crate::extract::csv_header;
use crate::window::features::{FeatureVector, NUM_FEATURES};

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

/// Parses "1700000000.500000" into nanoseconds exactly.
pub fn parse_ts_ns(text: &str) -> Option<i64> {
    let (neg, t) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = int.parse().ok()?;
    let frac_ns: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    let ns = secs.checked_mul(1_000_000_000)?.checked_add(frac_ns)?;
    Some(if neg { -ns } else { ns })
}

/// Reads one feature CSV.
pub fn read_feature_csv(path: &Path) -> Result<Vec<FeatureRow>, FeatureCsvError> {
    let text = std::fs::read_to_string(path).map_err(|source| FeatureCsvError::Io {
        path: path.to_path_buf(),
        source,
    })?;
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
                        crate::window::features::FEATURE_NAMES[j]
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
    fn timestamps_parse_exactly() {
        assert_eq!(parse_ts_ns("0.300000"), Some(300_000_000));
        assert_eq!(
            parse_ts_ns("1700000000.123456"),
            Some(1_700_000_000_123_456_000)
        );
        assert_eq!(parse_ts_ns("-0.500000"), Some(-500_000_000));
        assert_eq!(parse_ts_ns("12"), Some(12_000_000_000));
        assert_eq!(parse_ts_ns("x"), None);
        assert_eq!(parse_ts_ns("1.2.3"), None);
    }

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
}
