//! Ground truth: `LABELS.csv`, and which packets are attack packets.
//!
//! The file is CSV with the header exactly
//! `name,src_cidr,dst_cidr,start_epoch,end_epoch` and one row per labelled span:
//!
//! ```text
//! name,src_cidr,dst_cidr,start_epoch,end_epoch
//! synflood,10.0.0.0/24,192.168.1.10,1577836800,1577836860.5
//! scan,2001:db8::/32,*,1577836900,1577836950
//! synflood,*,any,1577837000.000000001,1577837001
//! ```
//!
//! * `name`: the attack's name (non-empty). Several rows may share a name (an attack in
//!   several spans or from several networks); names are numbered in order of first
//!   appearance, and that number is what [`Labels::classify`] returns.
//! * `src_cidr`, `dst_cidr`: an IPv4 or IPv6 network (`10.0.0.0/8`, `2001:db8::/32`), a bare
//!   address (= /32 or /128), or `*` / `any` (case-insensitive) for any address, IPv4 or
//!   IPv6. Host bits after the prefix are ignored (`10.0.0.1/24` = `10.0.0.0/24`). IPv4
//!   networks match IPv4 packets through the IPv4-mapped space `::ffff:a.b.c.d`, the way
//!   [`crate::decode::IpSummary`] stores them (so `::ffff:10.0.0.0/104` = `10.0.0.0/8`).
//! * `start_epoch`, `end_epoch`: Unix time in seconds, with up to 9 decimals
//!   (`1577836800`, `1577836800.25`); the span is inclusive at both ends, and compared
//!   exactly on integer nanoseconds (no floating point). `start_epoch > end_epoch` is an error.
//!
//! One row per line (a quoted field may hold commas, not line breaks). Fields are trimmed
//! of surrounding blanks; lines starting with `#` are comments; blank lines are skipped;
//! the file is UTF-8 (a byte-order mark is allowed), with LF or CRLF line ends. A file with a header and no rows is valid (no attacks).
//!
//! A packet is an attack packet of row `r` when its source is in `r.src_cidr`, its
//! destination in `r.dst_cidr` and its timestamp in `[r.start, r.end]`. A packet without an
//! IP layer is never an attack packet. A packet matching several rows counts once, for the
//! name of the first matching row in file order.

use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use crate::decode::PacketSummary;

/// The header a labels file must have, in this order.
pub const LABELS_HEADER: [&str; 5] = ["name", "src_cidr", "dst_cidr", "start_epoch", "end_epoch"];

/// What went wrong reading a labels file. `Display` names the file, the line, the column
/// and what was expected, e.g.
/// `labels.csv line 4: src_cidr "10.0.0.300/24" is not an IP network (expected e.g. 10.0.0.0/24, 2001:db8::/32, or *)`.
#[derive(Debug)]
pub struct LabelsError {
    /// The file, as given to the reader.
    pub file: String,
    /// 1-based line number; 0 when the file could not be read at all.
    pub line: u64,
    /// The column concerned, when there is one (`"src_cidr"`, ...).
    pub column: Option<&'static str>,
    /// The problem and what was expected.
    pub message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl fmt::Display for LabelsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{} line {}: {}", self.file, self.line, self.message)
        }
    }
}

impl std::error::Error for LabelsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e.as_ref() as &(dyn std::error::Error + 'static))
    }
}

impl LabelsError {
    fn new(file: &str, line: u64, column: Option<&'static str>, message: String) -> Self {
        LabelsError {
            file: file.to_string(),
            line,
            column,
            message,
            source: None,
        }
    }
}

/// One labelled span, as read from a row (for plots and reports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttackSpan {
    /// Index of the attack name in [`Labels::names`].
    pub label: usize,
    /// Inclusive start, nanoseconds since the Unix epoch.
    pub start_ns: i64,
    /// Inclusive end, nanoseconds since the Unix epoch.
    pub end_ns: i64,
    /// The row's `src_cidr` and `dst_cidr` as written (trimmed).
    pub src: String,
    pub dst: String,
    /// The row's line in the file.
    pub line: u64,
}

/// A row, precomputed for matching: address ranges in the 128-bit key space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rule {
    start_ns: i64,
    end_ns: i64,
    src_lo: u128,
    src_hi: u128,
    dst_lo: u128,
    dst_hi: u128,
    label: usize,
}

/// Parsed labels: attack names and the rows that define them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels {
    names: Vec<String>,
    rules: Vec<Rule>,
    spans: Vec<AttackSpan>,
}

impl Labels {
    /// Reads and parses a labels file; errors name the file by `path` as given.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Labels, LabelsError> {
        let path = path.as_ref();
        let file_name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| LabelsError {
            file: file_name.clone(),
            line: 0,
            column: None,
            message: format!("cannot open labels file: {e}"),
            source: Some(Box::new(e)),
        })?;
        Labels::from_reader(&file_name, file)
    }

    /// Parses labels from a string; `file_name` is used in error messages.
    pub fn parse_str(file_name: &str, text: &str) -> Result<Labels, LabelsError> {
        Labels::from_reader(file_name, text.as_bytes())
    }

    /// Parses labels from a reader; `file_name` is used in error messages.
    pub fn from_reader<R: Read>(file_name: &str, mut reader: R) -> Result<Labels, LabelsError> {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).map_err(|e| LabelsError {
            file: file_name.to_string(),
            line: 0,
            column: None,
            message: format!("cannot read labels file: {e}"),
            source: Some(Box::new(e)),
        })?;
        let text = match std::str::from_utf8(&bytes) {
            Ok(t) => t,
            Err(e) => {
                let line = 1 + bytes[..e.valid_up_to()]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count() as u64;
                return Err(LabelsError::new(
                    file_name,
                    line,
                    None,
                    "not valid UTF-8 text (expected a UTF-8 CSV file)".to_string(),
                ));
            }
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // One row per line: each line is parsed as CSV on its own (so quoting works), and
        // line numbers are counted here, blank and comment lines included.
        let mut labels = Labels::default();
        let mut record = csv::StringRecord::new();
        let mut saw_header = false;
        for (i, raw) in text.split('\n').enumerate() {
            let line = i as u64 + 1;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let mut rdr = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .trim(csv::Trim::All)
                .from_reader(raw.as_bytes());
            match rdr.read_record(&mut record) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    return Err(LabelsError {
                        file: file_name.to_string(),
                        line,
                        column: None,
                        message: format!("not valid CSV: {e}"),
                        source: Some(Box::new(e)),
                    })
                }
            }
            if !saw_header {
                check_header(file_name, line, &record)?;
                saw_header = true;
                continue;
            }
            labels.push_row(file_name, line, &record)?;
        }
        if !saw_header {
            return Err(LabelsError::new(
                file_name,
                1,
                None,
                format!(
                    "missing header (the file is empty; expected the header {})",
                    LABELS_HEADER.join(",")
                ),
            ));
        }
        Ok(labels)
    }

    fn push_row(
        &mut self,
        file: &str,
        line: u64,
        rec: &csv::StringRecord,
    ) -> Result<(), LabelsError> {
        if rec.len() != LABELS_HEADER.len() {
            return Err(LabelsError::new(
                file,
                line,
                None,
                format!(
                    "expected {} fields ({}), found {}",
                    LABELS_HEADER.len(),
                    LABELS_HEADER.join(","),
                    rec.len()
                ),
            ));
        }
        let field = |i: usize| rec.get(i).unwrap_or("");
        let name = field(0);
        if name.is_empty() {
            return Err(LabelsError::new(
                file,
                line,
                Some("name"),
                "name is empty (expected an attack name, e.g. synflood)".to_string(),
            ));
        }
        let (src_lo, src_hi) =
            parse_net(field(1)).ok_or_else(|| bad_net(file, line, 1, field(1)))?;
        let (dst_lo, dst_hi) =
            parse_net(field(2)).ok_or_else(|| bad_net(file, line, 2, field(2)))?;
        let start_ns =
            parse_epoch_ns(field(3)).map_err(|why| bad_time(file, line, 3, field(3), why))?;
        let end_ns =
            parse_epoch_ns(field(4)).map_err(|why| bad_time(file, line, 4, field(4), why))?;
        if start_ns > end_ns {
            return Err(LabelsError::new(
                file,
                line,
                Some("start_epoch"),
                format!(
                    "start_epoch {} is after end_epoch {} (expected start_epoch <= end_epoch)",
                    field(3),
                    field(4)
                ),
            ));
        }
        let label = match self.names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                self.names.push(name.to_string());
                self.names.len() - 1
            }
        };
        self.rules.push(Rule {
            start_ns,
            end_ns,
            src_lo,
            src_hi,
            dst_lo,
            dst_hi,
            label,
        });
        self.spans.push(AttackSpan {
            label,
            start_ns,
            end_ns,
            src: field(1).to_string(),
            dst: field(2).to_string(),
            line,
        });
        Ok(())
    }

    /// The attack names, in order of first appearance; indices are label numbers.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The rows, in file order.
    pub fn spans(&self) -> &[AttackSpan] {
        &self.spans
    }

    /// Number of distinct attack names.
    pub fn num_names(&self) -> usize {
        self.names.len()
    }

    /// True when the file had no rows.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The attack a packet belongs to: the name index of the first row (in file order)
    /// whose span holds `ts_ns` and whose networks hold `src` and `dst`; `None` for a
    /// normal packet. Addresses are [`crate::decode::IpKey`]s (IPv4 as `::ffff:a.b.c.d`).
    /// Runs per packet: a linear scan over the rows, no allocation.
    #[inline]
    pub fn classify(&self, ts_ns: i64, src: u128, dst: u128) -> Option<usize> {
        self.rules
            .iter()
            .find(|r| {
                ts_ns >= r.start_ns
                    && ts_ns <= r.end_ns
                    && src >= r.src_lo
                    && src <= r.src_hi
                    && dst >= r.dst_lo
                    && dst <= r.dst_hi
            })
            .map(|r| r.label)
    }

    /// [`Labels::classify`] for a decoded packet; a packet without an IP layer is `None`.
    #[inline]
    pub fn classify_packet(&self, p: &PacketSummary) -> Option<usize> {
        let ip = p.ip.as_ref()?;
        self.classify(p.ts_ns, ip.src, ip.dst)
    }
}

/// Per-window attack packet counts: a fixed-size vector indexed by label number.
///
/// Typical use: per packet `p` of the current window, `counter.observe_packet(&labels, &p)`
/// (or `observe` with the timestamp and addresses); when the window closes,
/// [`LabelCounter::take`] (or read, then [`LabelCounter::reset`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelCounter {
    counts: Vec<u64>,
    total: u64,
}

impl LabelCounter {
    /// A counter with one slot per name of `labels`.
    pub fn new(labels: &Labels) -> Self {
        LabelCounter::with_len(labels.num_names())
    }

    /// A counter with `n` slots.
    pub fn with_len(n: usize) -> Self {
        LabelCounter {
            counts: vec![0; n],
            total: 0,
        }
    }

    /// Classifies one packet and counts it when it is an attack packet; returns its label.
    #[inline]
    pub fn observe(&mut self, labels: &Labels, ts_ns: i64, src: u128, dst: u128) -> Option<usize> {
        let label = labels.classify(ts_ns, src, dst)?;
        self.record(label);
        Some(label)
    }

    /// [`LabelCounter::observe`] for a decoded packet.
    #[inline]
    pub fn observe_packet(&mut self, labels: &Labels, p: &PacketSummary) -> Option<usize> {
        let label = labels.classify_packet(p)?;
        self.record(label);
        Some(label)
    }

    /// Counts one attack packet of `label` (an index out of range is ignored).
    #[inline]
    pub fn record(&mut self, label: usize) {
        if let Some(c) = self.counts.get_mut(label) {
            *c += 1;
            self.total += 1;
        }
    }

    /// Attack packets counted in this window, all names together.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Attack packets counted in this window, per name.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Zeroes the counts for the next window (keeps the allocation).
    pub fn reset(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.total = 0;
    }

    /// Returns `(total, per-name counts)` for the window just closed and resets.
    pub fn take(&mut self) -> (u64, Vec<u64>) {
        let out = (self.total, self.counts.clone());
        self.reset();
        out
    }
}

fn check_header(file: &str, line: u64, rec: &csv::StringRecord) -> Result<(), LabelsError> {
    let expected = LABELS_HEADER.join(",");
    for (i, want) in LABELS_HEADER.iter().enumerate() {
        let got = rec.get(i).map(|s| s.trim_start_matches('\u{feff}'));
        let problem = match got {
            Some(g) if g == *want => continue,
            Some(g) => format!(
                "header column {} is \"{g}\" (expected \"{want}\"; the header must be exactly {expected})",
                i + 1
            ),
            None => format!(
                "header column {} ({want}) is missing (the header must be exactly {expected})",
                i + 1
            ),
        };
        return Err(LabelsError::new(file, line, Some(want), problem));
    }
    if rec.len() > LABELS_HEADER.len() {
        return Err(LabelsError::new(
            file,
            line,
            None,
            format!(
                "unknown header column {} \"{}\" (the header must be exactly {})",
                LABELS_HEADER.len() + 1,
                rec.get(LABELS_HEADER.len()).unwrap_or(""),
                expected
            ),
        ));
    }
    Ok(())
}

fn bad_net(file: &str, line: u64, col: usize, value: &str) -> LabelsError {
    let column = LABELS_HEADER[col];
    LabelsError::new(
        file,
        line,
        Some(column),
        format!(
            "{column} \"{value}\" is not an IP network (expected e.g. 10.0.0.0/24, 2001:db8::/32, or *)"
        ),
    )
}

fn bad_time(file: &str, line: u64, col: usize, value: &str, why: &str) -> LabelsError {
    let column = LABELS_HEADER[col];
    LabelsError::new(
        file,
        line,
        Some(column),
        format!(
            "{column} \"{value}\" {why} (expected Unix time in seconds, e.g. 1577836800 or 1577836800.25)"
        ),
    )
}

const V4_MAPPED: u128 = 0xffff_u128 << 32;

/// A network as an inclusive range of 128-bit keys; `None` when `s` is not one.
fn parse_net(s: &str) -> Option<(u128, u128)> {
    if s == "*" || s.eq_ignore_ascii_case("any") {
        return Some((0, u128::MAX));
    }
    let net: IpNet = if s.contains('/') {
        s.parse().ok()?
    } else {
        IpNet::from(s.parse::<IpAddr>().ok()?)
    };
    Some(match net {
        IpNet::V4(n) => {
            let host_bits = 32 - u32::from(n.prefix_len());
            let host_mask: u128 = (1u128 << host_bits) - 1;
            let lo = V4_MAPPED | (u128::from(u32::from(n.network())) & !host_mask);
            (lo, lo | host_mask)
        }
        IpNet::V6(n) => {
            let host_bits = 128 - u32::from(n.prefix_len());
            let host_mask: u128 = if host_bits == 128 {
                u128::MAX
            } else {
                (1u128 << host_bits) - 1
            };
            let lo = u128::from(n.network()) & !host_mask;
            (lo, lo | host_mask)
        }
    })
}

/// Unix seconds with up to 9 decimals to integer nanoseconds, exactly.
fn parse_epoch_ns(s: &str) -> Result<i64, &'static str> {
    const NOT_TIME: &str = "is not a number of seconds";
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(NOT_TIME);
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(NOT_TIME);
    }
    if frac_part.len() > 9 {
        return Err("has more than 9 decimals (nanosecond precision)");
    }
    const OUT_OF_RANGE: &str = "is out of range (years 1678 to 2262)";
    let mut secs: i64 = 0;
    for b in int_part.bytes() {
        secs = secs
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or(OUT_OF_RANGE)?;
    }
    let mut frac: i64 = 0;
    for i in 0..9 {
        let d = frac_part
            .as_bytes()
            .get(i)
            .map_or(0, |b| i64::from(b - b'0'));
        frac = frac * 10 + d;
    }
    let ns = secs
        .checked_mul(1_000_000_000)
        .and_then(|v| v.checked_add(frac))
        .ok_or(OUT_OF_RANGE)?;
    Ok(if neg { -ns } else { ns })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> u128 {
        V4_MAPPED | u128::from(u32::from_be_bytes([a, b, c, d]))
    }
    fn v6(s: &str) -> u128 {
        u128::from(s.parse::<std::net::Ipv6Addr>().unwrap())
    }
    const S: i64 = 1_000_000_000;

    const GOOD: &str = "\
name,src_cidr,dst_cidr,start_epoch,end_epoch
synflood,10.0.0.0/24,192.168.1.10,1577836800,1577836860.5
# a comment line
scan, 2001:db8::/32 , * ,1577836900,1577836950

synflood,*,any,1577837000.000000001,1577837001
quoted,\"10.1.0.0/16\",ANY,100,100
";

    #[test]
    fn parses_good_file() {
        let l = Labels::parse_str("labels.csv", GOOD).unwrap();
        assert_eq!(l.names(), ["synflood", "scan", "quoted"]);
        assert_eq!(l.num_names(), 3);
        assert!(!l.is_empty());
        let sp = l.spans();
        assert_eq!(sp.len(), 4);
        assert_eq!(sp[0].label, 0);
        assert_eq!(sp[0].start_ns, 1_577_836_800 * S);
        assert_eq!(sp[0].end_ns, 1_577_836_860 * S + 500_000_000);
        assert_eq!(sp[0].line, 2);
        assert_eq!(sp[1].label, 1);
        assert_eq!(sp[1].src, "2001:db8::/32");
        assert_eq!(sp[1].line, 4);
        assert_eq!(sp[2].label, 0);
        assert_eq!(sp[2].start_ns, 1_577_837_000 * S + 1);
        assert_eq!(sp[2].line, 6);
        assert_eq!(sp[3].label, 2);
        assert_eq!(sp[3].line, 7);
    }

    #[test]
    fn header_only_is_empty_labels() {
        let l =
            Labels::parse_str("l.csv", "name,src_cidr,dst_cidr,start_epoch,end_epoch\n").unwrap();
        assert!(l.is_empty());
        assert_eq!(l.classify(0, 0, 0), None);
        // CRLF and a UTF-8 BOM are fine too.
        let l = Labels::parse_str(
            "l.csv",
            "\u{feff}name,src_cidr,dst_cidr,start_epoch,end_epoch\r\na,*,*,1,2\r\n",
        )
        .unwrap();
        assert_eq!(l.classify(S, 0, 0), Some(0));
    }

    fn err(text: &str) -> LabelsError {
        match Labels::parse_str("labels.csv", text) {
            Ok(_) => panic!("expected an error for {text:?}"),
            Err(e) => e,
        }
    }

    const H: &str = "name,src_cidr,dst_cidr,start_epoch,end_epoch\n";

    #[test]
    fn bad_src_cidr_names_line_and_column() {
        let e = err(&format!(
            "{H}a,*,*,1,2\nb,*,*,1,2\n# c\nc,10.0.0.300/24,*,1,2\n"
        ));
        assert_eq!(
            e.to_string(),
            "labels.csv line 5: src_cidr \"10.0.0.300/24\" is not an IP network \
             (expected e.g. 10.0.0.0/24, 2001:db8::/32, or *)"
        );
        assert_eq!(e.line, 5);
        assert_eq!(e.column, Some("src_cidr"));
    }

    #[test]
    fn bad_dst_cidr() {
        for bad in [
            "10.0.0.0/33",
            "2001:db8::/129",
            "foo",
            "",
            "10.0.0.0/",
            "anyhost",
        ] {
            let e = err(&format!("{H}a,*,{bad},1,2\n"));
            assert_eq!(e.line, 2, "{bad}");
            assert_eq!(e.column, Some("dst_cidr"));
            assert!(
                e.to_string().starts_with(&format!(
                    "labels.csv line 2: dst_cidr \"{bad}\" is not an IP network (expected"
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn bad_times() {
        for (bad, why) in [
            ("abc", "is not a number of seconds"),
            ("1.5e9", "is not a number of seconds"),
            ("", "is not a number of seconds"),
            (".", "is not a number of seconds"),
            ("1.0000000001", "has more than 9 decimals"),
            ("99999999999999999999", "is out of range"),
            ("9300000000", "is out of range"),
        ] {
            let e = err(&format!("{H}a,*,*,{bad},2\n"));
            assert_eq!(e.line, 2);
            assert_eq!(e.column, Some("start_epoch"));
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("labels.csv line 2: start_epoch \"{bad}\" {why}")),
                "{msg}"
            );
            assert!(msg.contains("(expected Unix time in seconds"), "{msg}");
            let e = err(&format!("{H}a,*,*,1,{bad}\n"));
            assert_eq!(e.column, Some("end_epoch"));
            assert!(e
                .to_string()
                .starts_with(&format!("labels.csv line 2: end_epoch \"{bad}\"")));
        }
    }

    #[test]
    fn start_after_end() {
        let e = err(&format!("{H}a,*,*,1,2\na,*,*,1577836800.5,1577836800.4\n"));
        assert_eq!(
            e.to_string(),
            "labels.csv line 3: start_epoch 1577836800.5 is after end_epoch 1577836800.4 \
             (expected start_epoch <= end_epoch)"
        );
        assert_eq!(e.column, Some("start_epoch"));
    }

    #[test]
    fn empty_name_and_field_count() {
        let e = err(&format!("{H},*,*,1,2\n"));
        assert_eq!(e.line, 2);
        assert_eq!(e.column, Some("name"));
        assert!(e
            .to_string()
            .starts_with("labels.csv line 2: name is empty (expected"));
        let e = err(&format!("{H}a,*,*,1\n"));
        assert_eq!(
            e.to_string(),
            "labels.csv line 2: expected 5 fields (name,src_cidr,dst_cidr,start_epoch,end_epoch), found 4"
        );
        let e = err(&format!("{H}a,*,*,1,2,3\n"));
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("found 6"));
    }

    #[test]
    fn header_errors() {
        let e = err("");
        assert_eq!(e.line, 1);
        assert!(
            e.to_string()
                .starts_with("labels.csv line 1: missing header"),
            "{e}"
        );
        let e = err("# only a comment\n\n");
        assert!(e.to_string().contains("missing header"), "{e}");
        let e = err("name,src,dst_cidr,start_epoch,end_epoch\n");
        assert_eq!(e.line, 1);
        assert_eq!(e.column, Some("src_cidr"));
        assert_eq!(
            e.to_string(),
            "labels.csv line 1: header column 2 is \"src\" (expected \"src_cidr\"; the header must \
             be exactly name,src_cidr,dst_cidr,start_epoch,end_epoch)"
        );
        let e = err("name,src_cidr,dst_cidr,start_epoch\n");
        assert_eq!(e.column, Some("end_epoch"));
        assert!(
            e.to_string()
                .contains("header column 5 (end_epoch) is missing"),
            "{e}"
        );
        let e = err("name,src_cidr,dst_cidr,start_epoch,end_epoch,comment\n");
        assert!(
            e.to_string()
                .contains("unknown header column 6 \"comment\""),
            "{e}"
        );
        // A data row where the header should be.
        let e = err("a,*,*,1,2\n");
        assert_eq!(e.column, Some("name"));
        assert!(e
            .to_string()
            .starts_with("labels.csv line 1: header column 1 is \"a\""));
        // A header line after a comment: still named by its own line.
        let e = err("# x\nname,src_cidr,dst_cidr,start,end_epoch\n");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn bad_utf8_and_missing_file() {
        let mut bytes = H.as_bytes().to_vec();
        bytes.extend_from_slice(b"a\xff,*,*,1,2\n");
        let e = Labels::from_reader("labels.csv", &bytes[..]).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(
            e.to_string()
                .starts_with("labels.csv line 2: not valid UTF-8"),
            "{e}"
        );
        let e = Labels::from_path("/nonexistent/labels.csv").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/labels.csv: cannot open labels file"),
            "{e}"
        );
    }

    #[test]
    fn classify_v4_cidr_and_bare_address() {
        let l =
            Labels::parse_str("l", &format!("{H}syn,10.0.0.0/24,192.168.1.10,100,200\n")).unwrap();
        let (a, b) = (v4(10, 0, 0, 7), v4(192, 168, 1, 10));
        assert_eq!(l.classify(150 * S, a, b), Some(0));
        assert_eq!(l.classify(150 * S, v4(10, 0, 0, 0), b), Some(0));
        assert_eq!(l.classify(150 * S, v4(10, 0, 0, 255), b), Some(0));
        assert_eq!(l.classify(150 * S, v4(10, 0, 1, 0), b), None);
        assert_eq!(l.classify(150 * S, v4(9, 255, 255, 255), b), None);
        assert_eq!(l.classify(150 * S, a, v4(192, 168, 1, 11)), None);
        assert_eq!(l.classify(150 * S, b, a), None, "direction matters");
        // The raw (unmapped) IPv4 value is not the IPv4 address.
        assert_eq!(
            l.classify(150 * S, u128::from(u32::from_be_bytes([10, 0, 0, 7])), b),
            None
        );
        // Host bits are ignored; /0 is every IPv4 address and no IPv6 one.
        let l = Labels::parse_str("l", &format!("{H}x,10.0.0.1/24,0.0.0.0/0,0,1\n")).unwrap();
        assert_eq!(l.classify(0, v4(10, 0, 0, 200), v4(8, 8, 8, 8)), Some(0));
        assert_eq!(l.classify(0, v4(10, 0, 0, 200), v6("2001:db8::1")), None);
    }

    #[test]
    fn classify_v6_and_any() {
        let l = Labels::parse_str(
            "l",
            &format!("{H}v6,2001:db8::/32,*,0,10\nhost,*,2001:db8::1,0,10\nall,any,::/0,0,10\n"),
        )
        .unwrap();
        assert_eq!(
            l.classify(5 * S, v6("2001:db8:ffff::9"), v4(1, 2, 3, 4)),
            Some(0)
        );
        assert_eq!(
            l.classify(5 * S, v6("2001:db9::"), v6("2001:db8::1")),
            Some(1)
        );
        assert_eq!(
            l.classify(5 * S, v6("2001:db9::"), v6("2001:db8::2")),
            Some(2)
        );
        // ::/0 is the whole key space, IPv4-mapped addresses included.
        assert_eq!(l.classify(5 * S, v4(1, 1, 1, 1), v4(2, 2, 2, 2)), Some(2));
        // An IPv4-mapped IPv6 network is the same as the IPv4 one.
        let l = Labels::parse_str("l", &format!("{H}m,::ffff:10.0.0.0/104,*,0,10\n")).unwrap();
        assert_eq!(l.classify(0, v4(10, 9, 8, 7), 0), Some(0));
        assert_eq!(l.classify(0, v4(11, 0, 0, 0), 0), None);
        let l = Labels::parse_str("l", &format!("{H}h,2001:db8::5,2001:db8::/128,0,10\n")).unwrap();
        assert_eq!(l.classify(0, v6("2001:db8::5"), v6("2001:db8::")), Some(0));
        assert_eq!(l.classify(0, v6("2001:db8::4"), v6("2001:db8::")), None);
        assert_eq!(l.classify(0, v6("2001:db8::5"), v6("2001:db8::1")), None);
    }

    #[test]
    fn classify_time_bounds_inclusive_in_ns() {
        let l = Labels::parse_str(
            "l",
            &format!("{H}a,*,*,1577836800.25,1577836801.000000001\n"),
        )
        .unwrap();
        let start = 1_577_836_800 * S + 250_000_000;
        let end = 1_577_836_801 * S + 1;
        assert_eq!(l.classify(start - 1, 0, 0), None);
        assert_eq!(l.classify(start, 0, 0), Some(0));
        assert_eq!(l.classify(end, 0, 0), Some(0));
        assert_eq!(l.classify(end + 1, 0, 0), None);
        // A one-instant span and negative (pre-1970) times.
        let l = Labels::parse_str("l", &format!("{H}a,*,*,-1.5,-1.5\n")).unwrap();
        assert_eq!(l.classify(-1_500_000_000, 0, 0), Some(0));
        assert_eq!(l.classify(-1_500_000_001, 0, 0), None);
    }

    #[test]
    fn first_matching_row_wins() {
        let l = Labels::parse_str(
            "l",
            &format!("{H}a,10.0.0.0/8,*,0,10\nb,10.1.0.0/16,*,0,10\na,10.2.0.0/16,*,20,30\n"),
        )
        .unwrap();
        assert_eq!(l.names(), ["a", "b"]);
        assert_eq!(l.classify(5 * S, v4(10, 1, 0, 1), 0), Some(0));
        assert_eq!(l.classify(25 * S, v4(10, 2, 0, 1), 0), Some(0));
        assert_eq!(l.classify(25 * S, v4(10, 1, 0, 1), 0), None);
    }

    #[test]
    fn packets_from_the_decoder() {
        use crate::decode::{ipv4_key, IpSummary, PacketSummary};
        // The decoder's IPv4 mapping is the one the networks are precomputed in.
        assert_eq!(ipv4_key([10, 1, 2, 3]), v4(10, 1, 2, 3));
        let l = Labels::parse_str("l", &format!("{H}syn,10.0.0.0/8,2001:db8::/32,0,10\n")).unwrap();
        let mut p = PacketSummary {
            ts_ns: 10 * S,
            ip: Some(IpSummary {
                src: ipv4_key([10, 9, 9, 9]),
                dst: v6("2001:db8::1"),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(l.classify_packet(&p), Some(0));
        let mut c = LabelCounter::new(&l);
        assert_eq!(c.observe_packet(&l, &p), Some(0));
        p.ts_ns += 1;
        assert_eq!(c.observe_packet(&l, &p), None);
        p.ts_ns = 0;
        p.ip = None;
        assert_eq!(
            l.classify_packet(&p),
            None,
            "no IP layer: never an attack packet"
        );
        assert_eq!(c.counts(), [1]);
    }

    #[test]
    fn label_counter_counts_and_resets() {
        let l = Labels::parse_str(
            "l",
            &format!("{H}a,10.0.0.0/8,*,0,10\nb,*,10.0.0.0/8,0,10\n"),
        )
        .unwrap();
        let mut c = LabelCounter::new(&l);
        assert_eq!(c.observe(&l, S, v4(10, 0, 0, 1), 0), Some(0));
        assert_eq!(c.observe(&l, S, v4(10, 0, 0, 1), v4(10, 0, 0, 2)), Some(0));
        assert_eq!(c.observe(&l, S, 0, v4(10, 0, 0, 2)), Some(1));
        assert_eq!(c.observe(&l, S, 0, 0), None);
        assert_eq!(c.observe(&l, 11 * S, v4(10, 0, 0, 1), 0), None);
        c.record(99); // ignored
        assert_eq!(c.total(), 3);
        assert_eq!(c.counts(), [2, 1]);
        assert_eq!(c.take(), (3, vec![2, 1]));
        assert_eq!(c.total(), 0);
        assert_eq!(c.counts(), [0, 0]);
        c.record(1);
        c.reset();
        assert_eq!(c.counts(), [0, 0]);
    }

    #[test]
    fn epoch_parsing() {
        assert_eq!(parse_epoch_ns("0"), Ok(0));
        assert_eq!(parse_epoch_ns("1."), Ok(S));
        assert_eq!(parse_epoch_ns(".5"), Ok(S / 2));
        assert_eq!(parse_epoch_ns("+2.000000003"), Ok(2 * S + 3));
        assert_eq!(parse_epoch_ns("-0.1"), Ok(-100_000_000));
        assert_eq!(parse_epoch_ns("9223372036.854775807"), Ok(i64::MAX));
        assert!(parse_epoch_ns("9223372036.854775808").is_err());
        assert!(parse_epoch_ns("1 2").is_err());
        assert!(parse_epoch_ns("--1").is_err());
    }
}
