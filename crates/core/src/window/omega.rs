//! The window length ω: one type for parsing, printing and every unit it is used in.

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The window length ω, a positive whole number of microseconds (the contract's resolution).
///
/// Text is seconds with at most six decimals (`"30"`, `"0.5"`, `"0.000001"`), parsed exactly
/// (no float on the way) and printed back the same way without trailing zeros. On disk
/// (`model.json`) it is the integer `omega_us`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Omega(NonZeroU64);

/// Why a text or number is not a window length.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OmegaError {
    #[error("window length {0:?} is not a positive number of seconds with at most 6 decimals (e.g. 30, 5, 0.5)")]
    NotSeconds(String),
    #[error("window length of 0 µs: expected a positive number of microseconds")]
    Zero,
    #[error("window length of {0} µs is too long (at most {max} µs)", max = Omega::MAX_MICROS)]
    TooLong(u64),
}

impl Omega {
    /// Longest ω: its nanoseconds must fit an `i64` with room for window arithmetic (a year).
    pub const MAX_MICROS: u64 = 365 * 24 * 3600 * 1_000_000;

    /// ω from microseconds; `None` for 0 or more than [`Omega::MAX_MICROS`].
    pub const fn from_micros(us: u64) -> Option<Omega> {
        if us > Self::MAX_MICROS {
            return None;
        }
        match NonZeroU64::new(us) {
            Some(v) => Some(Omega(v)),
            None => None,
        }
    }

    /// ω in microseconds.
    pub const fn micros(self) -> u64 {
        self.0.get()
    }

    /// ω in nanoseconds (never overflows: see [`Omega::MAX_MICROS`]).
    pub const fn nanos(self) -> i64 {
        (self.0.get() * 1000) as i64
    }

    /// ω in seconds, for display in floats (metrics, JSON).
    pub fn secs_f64(self) -> f64 {
        self.0.get() as f64 / 1e6
    }

    /// ω as a duration.
    pub const fn duration(self) -> Duration {
        Duration::from_micros(self.0.get())
    }
}

impl TryFrom<u64> for Omega {
    type Error = OmegaError;

    fn try_from(us: u64) -> Result<Omega, OmegaError> {
        match us {
            0 => Err(OmegaError::Zero),
            us => Omega::from_micros(us).ok_or(OmegaError::TooLong(us)),
        }
    }
}

impl From<Omega> for u64 {
    fn from(o: Omega) -> u64 {
        o.micros()
    }
}

impl FromStr for Omega {
    type Err = OmegaError;

    /// Parses seconds ("30", "0.5", ".25", "0.000001") exactly into microseconds.
    fn from_str(text: &str) -> Result<Omega, OmegaError> {
        let bad = || OmegaError::NotSeconds(text.to_string());
        let t = text.trim();
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        if (int.is_empty() && frac.is_empty())
            || frac.len() > 6
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let int: u64 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let frac_us: u64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<6}").parse().map_err(|_| bad())?
        };
        let us = int
            .checked_mul(1_000_000)
            .and_then(|v| v.checked_add(frac_us))
            .ok_or_else(bad)?;
        if us == 0 {
            return Err(bad());
        }
        Omega::from_micros(us).ok_or(OmegaError::TooLong(us))
    }
}

impl fmt::Display for Omega {
    /// Seconds without trailing zeros: "30", "0.5", "0.000001".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.micros();
        let (s, frac) = (us / 1_000_000, us % 1_000_000);
        if frac == 0 {
            write!(f, "{s}")
        } else {
            let digits = format!("{frac:06}");
            write!(f, "{s}.{}", digits.trim_end_matches('0'))
        }
    }
}

/// Several window lengths run at once (`--window 0.5,5`): distinct, ascending, each a whole
/// multiple of the shortest so that their windows share boundaries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scales(Vec<Omega>);

/// Why a list of window lengths is refused; each names the value at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScalesError {
    #[error("window list {list:?}: {source}")]
    Omega {
        list: String,
        #[source]
        source: OmegaError,
    },
    #[error("window list is empty: expected window lengths in seconds, e.g. 0.5 or 0.5,5")]
    Empty,
    #[error("window list names {0} s twice: each window length once")]
    Duplicate(Omega),
    #[error("window length {long} s is not a whole multiple of the shortest, {short} s: windows of several lengths must share boundaries (e.g. 0.5,5,30)")]
    NotMultiple { long: Omega, short: Omega },
    #[error("window list has {0} lengths: at most {max}", max = Scales::MAX)]
    TooMany(usize),
}

impl Scales {
    /// Most window lengths one bundle runs at once.
    pub const MAX: usize = 8;

    /// Checks and sorts `omegas` (shortest first).
    pub fn new(omegas: Vec<Omega>) -> Result<Scales, ScalesError> {
        let mut v = omegas;
        if v.is_empty() {
            return Err(ScalesError::Empty);
        }
        if v.len() > Self::MAX {
            return Err(ScalesError::TooMany(v.len()));
        }
        v.sort();
        if let Some(w) = v.windows(2).find(|w| w[0] == w[1]) {
            return Err(ScalesError::Duplicate(w[0]));
        }
        let short = v[0];
        if let Some(&long) = v.iter().find(|o| o.micros() % short.micros() != 0) {
            return Err(ScalesError::NotMultiple { long, short });
        }
        Ok(Scales(v))
    }

    /// One window length.
    pub fn one(omega: Omega) -> Scales {
        Scales(vec![omega])
    }

    /// The lengths, shortest first.
    pub fn omegas(&self) -> &[Omega] {
        &self.0
    }

    /// The shortest length (the paper's scale when there is one).
    pub fn shortest(&self) -> Omega {
        self.0[0]
    }

    /// The longest length.
    pub fn longest(&self) -> Omega {
        self.0[self.0.len() - 1]
    }

    /// Number of lengths.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true (a list holds at least one length); for clippy's `len` convention.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for Scales {
    type Err = ScalesError;

    /// Parses `"0.5"` or `"0.5,5,30"` (seconds, comma-separated).
    fn from_str(text: &str) -> Result<Scales, ScalesError> {
        let omegas = text
            .split(',')
            .map(|t| {
                t.trim()
                    .parse::<Omega>()
                    .map_err(|source| ScalesError::Omega {
                        list: text.to_string(),
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Scales::new(omegas)
    }
}

impl fmt::Display for Scales {
    /// `"0.5,5"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, o) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{o}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(text: &str) -> Result<u64, OmegaError> {
        text.parse::<Omega>().map(Omega::micros)
    }

    #[test]
    fn parses_exactly() {
        assert_eq!(us("30"), Ok(30_000_000));
        assert_eq!(us("0.5"), Ok(500_000));
        assert_eq!(us("0.1"), Ok(100_000));
        assert_eq!(us(".25"), Ok(250_000));
        assert_eq!(us("0.000001"), Ok(1));
        for bad in ["0", "0.0", "-1", "1e3", "abc", "", "0.0000001", "1.2.3"] {
            assert_eq!(us(bad), Err(OmegaError::NotSeconds(bad.into())), "{bad}");
        }
        assert_eq!(
            us("99999999999"),
            Err(OmegaError::TooLong(99_999_999_999_000_000))
        );
    }

    #[test]
    fn prints_what_it_parses() {
        for text in ["30", "0.5", "0.000001", "5", "1.25", "86400"] {
            assert_eq!(text.parse::<Omega>().unwrap().to_string(), text);
        }
        assert_eq!("0.500".parse::<Omega>().unwrap().to_string(), "0.5");
    }

    #[test]
    fn units_agree() {
        let o: Omega = "0.5".parse().unwrap();
        assert_eq!(o.micros(), 500_000);
        assert_eq!(o.nanos(), 500_000_000);
        assert_eq!(o.secs_f64(), 0.5);
        assert_eq!(o.duration(), Duration::from_millis(500));
    }

    #[test]
    fn serde_is_integer_microseconds() {
        let o: Omega = "0.5".parse().unwrap();
        assert_eq!(serde_json::to_string(&o).unwrap(), "500000");
        assert_eq!(serde_json::from_str::<Omega>("500000").unwrap(), o);
        let e = serde_json::from_str::<Omega>("0").unwrap_err().to_string();
        assert!(e.contains("0 µs"), "{e}");
    }

    #[test]
    fn scale_lists_are_checked_and_sorted() {
        let s: Scales = "5, 0.5,30".parse().unwrap();
        assert_eq!(s.to_string(), "0.5,5,30");
        assert_eq!(s.shortest().micros(), 500_000);
        assert_eq!(s.longest().micros(), 30_000_000);
        assert_eq!(
            "0.5,5,0.5".parse::<Scales>(),
            Err(ScalesError::Duplicate("0.5".parse().unwrap()))
        );
        let e = "0.5,0".parse::<Scales>().unwrap_err();
        assert!(matches!(e, ScalesError::Omega { .. }), "{e}");
        assert!(e.to_string().contains("\"0\""), "{e}");
        assert_eq!(
            "0.5,1.2".parse::<Scales>(),
            Err(ScalesError::NotMultiple {
                long: "1.2".parse().unwrap(),
                short: "0.5".parse().unwrap()
            })
        );
        assert_eq!(
            "2".parse::<Scales>().unwrap(),
            Scales::one("2".parse().unwrap())
        );
    }
}
