//! Unix time as text: seconds with a fixed number of decimals, exact on integer nanoseconds.

/// Unix seconds with exactly 6 decimals, from integer nanoseconds (no float rounding).
pub fn format_ts(ns: i64) -> String {
    let us = ns.div_euclid(1000);
    let (secs, frac) = (us.div_euclid(1_000_000), us.rem_euclid(1_000_000));
    if secs < 0 && frac != 0 {
        // -0.5 s is secs = -1, frac = 500000: print as -0.500000.
        let total = -us;
        format!("-{}.{:06}", total / 1_000_000, total % 1_000_000)
    } else {
        format!("{secs}.{frac:06}")
    }
}

/// Parses "1700000000.500000" (up to 9 decimals, optional sign) into nanoseconds exactly.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_exactly() {
        assert_eq!(format_ts(0), "0.000000");
        assert_eq!(format_ts(1_700_000_000_123_456_789), "1700000000.123456");
        assert_eq!(format_ts(300_000_000), "0.300000");
        assert_eq!(format_ts(-500_000_000), "-0.500000");
        assert_eq!(format_ts(-1_500_000_000), "-1.500000");
    }

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
    fn format_then_parse_round_trips_to_the_microsecond() {
        for ns in [0, 1_700_000_000_123_456_000, -500_000_000, 42_000] {
            assert_eq!(parse_ts_ns(&format_ts(ns)), Some(ns));
        }
    }
}
