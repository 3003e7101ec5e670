//! The open segment: an append-only file of fixed-size little-endian records, so that a crash
//! loses at most the record being written and a reader can always find the record boundaries.
//!
//! ```text
//! header  (20 bytes): b"NAHJ" | version u32 = 1 | ω µs u64 | reserved u32 = 0
//! record (469 bytes): start_ns i64 | end_ns i64 | 53 × f64 features | packets u64 |
//!                     capture_drops u64 | score f64 | flags u8 | FNV-1a 32 of the bytes before
//! flags: bit 0 distinct_estimated, bit 1 alerted, bit 2 score present
//! ```

use std::path::Path;

use super::{HistoryError, HistoryRow};
use crate::window::features::{FeatureVector, NUM_FEATURES};
use crate::window::Omega;

/// The first bytes of every journal.
const MAGIC: &[u8; 4] = b"NAHJ";
/// The record layout's version.
const VERSION: u32 = 1;
/// Bytes of the header.
pub const HEADER_LEN: usize = 20;
/// Bytes of one record.
pub const RECORD_LEN: usize = 8 + 8 + NUM_FEATURES * 8 + 8 + 8 + 8 + 1 + 4;

/// FNV-1a, 32 bits: enough to tell a torn or overwritten record from a whole one.
fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The header of a journal of windows of length `omega`.
pub fn header(omega: Omega) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(MAGIC);
    h[4..8].copy_from_slice(&VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&omega.micros().to_le_bytes());
    h
}

/// Appends the record of `row` to `out`.
pub fn encode(row: &HistoryRow, out: &mut Vec<u8>) {
    let begin = out.len();
    out.extend_from_slice(&row.start_ns.to_le_bytes());
    out.extend_from_slice(&row.end_ns.to_le_bytes());
    for v in &row.features {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&row.packets.to_le_bytes());
    out.extend_from_slice(&row.capture_drops.to_le_bytes());
    out.extend_from_slice(&row.score.unwrap_or(0.0).to_le_bytes());
    let flags = u8::from(row.distinct_estimated)
        | u8::from(row.alerted) << 1
        | u8::from(row.score.is_some()) << 2;
    out.push(flags);
    let sum = fnv1a(&out[begin..]);
    out.extend_from_slice(&sum.to_le_bytes());
}

/// What reading a journal found.
#[derive(Debug, Default)]
pub struct JournalRead {
    /// The whole records, in file order.
    pub rows: Vec<HistoryRow>,
    /// Bytes at the end that do not make a whole record (a write cut off by a crash).
    pub truncated_bytes: usize,
    /// Whole records whose checksum did not match (skipped).
    pub bad_records: usize,
}

/// Little-endian u64 at `at` (the caller checked the length).
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Decodes one record (exactly [`RECORD_LEN`] bytes); `None` if its checksum is wrong.
fn decode(b: &[u8], omega: Omega) -> Option<HistoryRow> {
    let body = &b[..RECORD_LEN - 4];
    let mut sum = [0u8; 4];
    sum.copy_from_slice(&b[RECORD_LEN - 4..]);
    if fnv1a(body) != u32::from_le_bytes(sum) {
        return None;
    }
    let mut features: FeatureVector = [0.0; NUM_FEATURES];
    for (i, f) in features.iter_mut().enumerate() {
        *f = f64::from_bits(u64_at(b, 16 + i * 8));
    }
    let at = 16 + NUM_FEATURES * 8;
    let flags = b[at + 24];
    Some(HistoryRow {
        omega,
        start_ns: u64_at(b, 0) as i64,
        end_ns: u64_at(b, 8) as i64,
        features,
        packets: u64_at(b, at),
        capture_drops: u64_at(b, at + 8),
        score: (flags & 4 != 0).then(|| f64::from_bits(u64_at(b, at + 16))),
        distinct_estimated: flags & 1 != 0,
        alerted: flags & 2 != 0,
    })
}

/// Reads the journal at `path`: whole records with a good checksum; a cut-off tail and bad
/// records are counted, not errors. A missing or foreign header is an error.
pub fn read(path: &Path) -> Result<JournalRead, HistoryError> {
    let bytes = std::fs::read(path).map_err(|source| HistoryError::Io {
        path: path.to_path_buf(),
        error: source,
    })?;
    parse(path, &bytes)
}

/// As [`read`], from the file's bytes.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<JournalRead, HistoryError> {
    let bad = || HistoryError::BadJournal {
        path: path.to_path_buf(),
    };
    if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC || bytes[4..8] != VERSION.to_le_bytes() {
        return Err(bad());
    }
    let omega = Omega::from_micros(u64_at(bytes, 8)).ok_or_else(bad)?;
    let body = &bytes[HEADER_LEN..];
    let mut read = JournalRead {
        truncated_bytes: body.len() % RECORD_LEN,
        ..JournalRead::default()
    };
    for rec in body.chunks_exact(RECORD_LEN) {
        match decode(rec, omega) {
            Some(row) => read.rows.push(row),
            None => read.bad_records += 1,
        }
    }
    Ok(read)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A row with every field set, distinct per `k`.
    pub(crate) fn row(k: i64, score: Option<f64>) -> HistoryRow {
        let omega = Omega::from_micros(500_000).unwrap();
        let mut features = [0.0; NUM_FEATURES];
        for (i, f) in features.iter_mut().enumerate() {
            *f = k as f64 * 0.25 + i as f64 / 7.0;
        }
        HistoryRow {
            omega,
            start_ns: 1_700_000_000_000_000_000 + k * 500_000_000,
            end_ns: 1_700_000_000_000_000_000 + (k + 1) * 500_000_000,
            features,
            packets: k as u64 * 3,
            distinct_estimated: k % 2 == 0,
            capture_drops: k as u64 % 5,
            alerted: k % 3 == 0,
            score,
        }
    }

    /// Records round-trip exactly; a cut-off tail and a flipped byte are counted, not fatal.
    #[test]
    fn round_trip_torn_tail_and_bad_record() {
        let omega = Omega::from_micros(500_000).unwrap();
        let mut bytes = header(omega).to_vec();
        let rows: Vec<_> = (0..4)
            .map(|k| row(k, (k != 1).then_some(k as f64 / 3.0)))
            .collect();
        for r in &rows {
            encode(r, &mut bytes);
        }
        assert_eq!(bytes.len(), HEADER_LEN + 4 * RECORD_LEN);
        let p = Path::new("x.journal");
        let got = parse(p, &bytes).unwrap();
        assert_eq!(got.rows, rows);
        assert_eq!((got.truncated_bytes, got.bad_records), (0, 0));

        bytes.truncate(bytes.len() - 100);
        let got = parse(p, &bytes).unwrap();
        assert_eq!(got.rows, rows[..3]);
        assert_eq!(got.truncated_bytes, RECORD_LEN - 100);

        bytes[HEADER_LEN + RECORD_LEN + 20] ^= 0xff;
        let got = parse(p, &bytes).unwrap();
        assert_eq!(got.rows, vec![rows[0].clone(), rows[2].clone()]);
        assert_eq!(got.bad_records, 1);

        let e = parse(p, b"garbage that is long enough").unwrap_err();
        assert!(matches!(e, HistoryError::BadJournal { .. }), "{e}");
    }
}
