//! Min–max normalisation of the 53 features (paper, section 2.1; `docs/features.md`).
//!
//! `x' = (x − min) / (max − min)` per feature, with min and max fitted on the training windows.
//! A feature with max = min maps to 0. Values outside the training range are NOT clipped: a
//! SYN flood's syn_count far above anything seen in training becomes x' ≫ 1, which the model
//! cannot reproduce, and that is the anomaly.
//!
//! Beyond the paper, [`Scaling::Log`] takes `ln(1 + x)` of every feature before the same
//! min–max scaling: a network whose load doubles between training and detection moves a count
//! by ln 2 instead of by its whole training range, while a flood a thousand times the normal
//! rate still lands far outside it (docs/model.md, "Feature scaling").

use crate::window::features::{FeatureVector, FEATURE_NAMES, NUM_FEATURES};

/// Why a min/max pair or a feature vector was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NormalizeError {
    /// `fit` was given no window.
    #[error("cannot fit min-max normalisation on zero windows")]
    Empty,
    /// min or max vector of the wrong length.
    #[error("min-max {which} vector has {found} values, expected {expected} (one per feature)")]
    WrongLength {
        which: &'static str,
        found: usize,
        expected: usize,
    },
    /// A NaN or infinite value.
    #[error("{what}: feature {index} ({name}) is {value}, expected a finite number")]
    NonFinite {
        what: &'static str,
        index: usize,
        name: &'static str,
        value: f64,
    },
    /// min above max.
    #[error("min-max: feature {index} ({name}) has min {min} > max {max}")]
    MinAboveMax {
        index: usize,
        name: &'static str,
        min: f64,
        max: f64,
    },
}

/// How features are mapped before min–max scaling (`normalization.method` of a bundle).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scaling {
    /// The paper's: the raw value.
    #[default]
    Linear,
    /// `sign(x) · ln(1 + |x|)`: load drift moves a feature by its ratio, not its difference.
    Log,
}

impl Scaling {
    /// The value this scaling maps `x` to before min–max.
    #[inline]
    pub fn map(self, x: f64) -> f64 {
        match self {
            Scaling::Linear => x,
            // Every feature is ≥ 0; the sign keeps the map monotonic for any input anyway.
            Scaling::Log => x.signum() * x.abs().ln_1p(),
        }
    }

    /// The option's value: `linear` or `log`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scaling::Linear => "linear",
            Scaling::Log => "log",
        }
    }

    /// Parses an option's value (`linear`, `log`).
    pub fn parse(s: &str) -> Option<Scaling> {
        match s {
            "linear" => Some(Scaling::Linear),
            "log" => Some(Scaling::Log),
            _ => None,
        }
    }
}

/// Per-feature minimum and maximum over the training windows, and the scaling applied first.
///
/// Invariants (checked by every constructor): 53 values each, all finite, min ≤ max. `min`
/// and `max` are raw feature values (what an operator compares a window with); the scaling
/// maps them like the values.
#[derive(Clone, Debug, PartialEq)]
pub struct MinMax {
    min: Vec<f64>,
    max: Vec<f64>,
    scaling: Scaling,
    /// `scaling.map(min)` and the range `scaling.map(max) − scaling.map(min)`, per feature.
    lo: Vec<f64>,
    range: Vec<f64>,
}

/// Checks that every feature of `x` is finite; `what` names the data in the error.
pub fn check_finite(x: &FeatureVector, what: &'static str) -> Result<(), NormalizeError> {
    match x.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(NormalizeError::NonFinite {
            what,
            index,
            name: FEATURE_NAMES[index],
            value: x[index],
        }),
    }
}

impl MinMax {
    /// Fits min and max per feature over `windows`, for the paper's linear scaling.
    pub fn fit(windows: &[FeatureVector]) -> Result<MinMax, NormalizeError> {
        MinMax::fit_scaled(windows, Scaling::Linear)
    }

    /// Fits min and max per feature over `windows`, for `scaling`.
    pub fn fit_scaled(
        windows: &[FeatureVector],
        scaling: Scaling,
    ) -> Result<MinMax, NormalizeError> {
        if windows.is_empty() {
            return Err(NormalizeError::Empty);
        }
        let mut min = vec![f64::INFINITY; NUM_FEATURES];
        let mut max = vec![f64::NEG_INFINITY; NUM_FEATURES];
        for w in windows {
            check_finite(w, "training window")?;
            for (i, &v) in w.iter().enumerate() {
                min[i] = min[i].min(v);
                max[i] = max[i].max(v);
            }
        }
        Ok(MinMax::with_scaling(min, max, scaling))
    }

    /// Derives the scaled bounds (min and max already checked).
    fn with_scaling(min: Vec<f64>, max: Vec<f64>, scaling: Scaling) -> MinMax {
        let lo: Vec<f64> = min.iter().map(|&m| scaling.map(m)).collect();
        let range = max
            .iter()
            .zip(&lo)
            .map(|(&m, &l)| scaling.map(m) - l)
            .collect();
        MinMax {
            min,
            max,
            scaling,
            lo,
            range,
        }
    }

    /// Builds from stored vectors (a bundle's `model.json`), checking the invariants; the
    /// paper's linear scaling.
    pub fn new(min: Vec<f64>, max: Vec<f64>) -> Result<MinMax, NormalizeError> {
        MinMax::new_scaled(min, max, Scaling::Linear)
    }

    /// Builds from stored vectors and a scaling, checking the invariants.
    pub fn new_scaled(
        min: Vec<f64>,
        max: Vec<f64>,
        scaling: Scaling,
    ) -> Result<MinMax, NormalizeError> {
        for (which, v) in [("min", &min), ("max", &max)] {
            if v.len() != NUM_FEATURES {
                return Err(NormalizeError::WrongLength {
                    which,
                    found: v.len(),
                    expected: NUM_FEATURES,
                });
            }
        }
        for i in 0..NUM_FEATURES {
            for (what, v) in [("min-max min", min[i]), ("min-max max", max[i])] {
                if !v.is_finite() {
                    return Err(NormalizeError::NonFinite {
                        what,
                        index: i,
                        name: FEATURE_NAMES[i],
                        value: v,
                    });
                }
            }
            if min[i] > max[i] {
                return Err(NormalizeError::MinAboveMax {
                    index: i,
                    name: FEATURE_NAMES[i],
                    min: min[i],
                    max: max[i],
                });
            }
        }
        Ok(MinMax::with_scaling(min, max, scaling))
    }

    /// The scaling applied before min–max.
    pub fn scaling(&self) -> Scaling {
        self.scaling
    }

    /// Per-feature minimum, in feature order.
    pub fn min(&self) -> &[f64] {
        &self.min
    }

    /// Per-feature maximum, in feature order.
    pub fn max(&self) -> &[f64] {
        &self.max
    }

    /// Normalises one window: `(s(x) − s(min)) / (s(max) − s(min))` with `s` the scaling, 0
    /// where max = min, never clipped.
    ///
    /// Refuses a non-finite feature (it would make a NaN score, i.e. a silently wrong one).
    pub fn transform(&self, x: &FeatureVector) -> Result<FeatureVector, NormalizeError> {
        check_finite(x, "window")?;
        let mut out = [0.0; NUM_FEATURES];
        for i in 0..NUM_FEATURES {
            let range = self.range[i];
            out[i] = if range > 0.0 {
                (self.scaling.map(x[i]) - self.lo[i]) / range
            } else {
                0.0
            };
        }
        // Finite input and finite min/max can still overflow ((1e308 - -1e308) / tiny).
        check_finite(&out, "normalised window")?;
        Ok(out)
    }

    /// Normalises many windows.
    pub fn transform_all(
        &self,
        xs: &[FeatureVector],
    ) -> Result<Vec<FeatureVector>, NormalizeError> {
        xs.iter().map(|x| self.transform(x)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(f: impl Fn(usize) -> f64) -> FeatureVector {
        std::array::from_fn(f)
    }

    #[test]
    fn fit_and_transform() {
        let a = w(|i| i as f64);
        let b = w(|i| if i == 5 { 5.0 } else { 2.0 * i as f64 + 10.0 });
        let mm = MinMax::fit(&[a, b]).unwrap();
        assert_eq!(mm.min()[3], 3.0);
        assert_eq!(mm.max()[3], 16.0);
        let t = mm.transform(&a).unwrap();
        assert_eq!(t[3], 0.0);
        let t = mm.transform(&b).unwrap();
        assert_eq!(t[3], 1.0);
        // constant feature (index 5: 5 in both) maps to 0, whatever the value
        assert_eq!(t[5], 0.0);
        assert_eq!(mm.transform(&w(|_| 1000.0)).unwrap()[5], 0.0);
        // not clipped
        let big = mm.transform(&w(|i| 3.0 * i as f64 + 100.0)).unwrap();
        assert!(big[3] > 1.0);
        let small = mm.transform(&w(|_| -50.0)).unwrap();
        assert!(small[3] < 0.0);
    }

    /// Log scaling: ln(1 + x) before min–max; doubling the load moves a count by about ln 2
    /// of its log range, not by its whole range.
    #[test]
    fn log_scaling() {
        let lo = w(|_| 0.0);
        let hi = w(|_| 99.0);
        let mm = MinMax::fit_scaled(&[lo, hi], Scaling::Log).unwrap();
        assert_eq!(mm.scaling(), Scaling::Log);
        assert_eq!((mm.min()[4], mm.max()[4]), (0.0, 99.0), "raw bounds kept");
        let t = mm.transform(&w(|_| 9.0)).unwrap();
        assert!((t[4] - 10f64.ln() / 100f64.ln()).abs() < 1e-12, "{}", t[4]);
        assert_eq!(mm.transform(&hi).unwrap()[4], 1.0);
        // Twice the training maximum: 1.15 on the log scale, 2.0 on the linear one.
        let twice = w(|_| 198.0);
        let log2 = mm.transform(&twice).unwrap()[4];
        assert!((log2 - 199f64.ln() / 100f64.ln()).abs() < 1e-12, "{log2}");
        let lin = MinMax::fit(&[lo, hi]).unwrap().transform(&twice).unwrap()[4];
        assert_eq!(lin, 2.0);
        // A flood (1,000 ×) still lands far outside.
        assert!(mm.transform(&w(|_| 99_000.0)).unwrap()[4] > 2.4);
        let again = MinMax::new_scaled(mm.min().to_vec(), mm.max().to_vec(), Scaling::Log).unwrap();
        assert_eq!(again, mm);
        assert_eq!(Scaling::parse("log"), Some(Scaling::Log));
        assert_eq!(
            Scaling::parse(Scaling::Linear.as_str()),
            Some(Scaling::Linear)
        );
        assert_eq!(Scaling::parse("ln"), None);
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(MinMax::fit(&[]), Err(NormalizeError::Empty));
        let mut bad = w(|_| 1.0);
        bad[9] = f64::NAN;
        let e = MinMax::fit(&[bad]).unwrap_err();
        assert!(e.to_string().contains("syn_count"), "{e}");
        let mm = MinMax::fit(&[w(|_| 0.0), w(|_| 1.0)]).unwrap();
        bad[9] = f64::INFINITY;
        assert!(mm.transform(&bad).is_err());
        let e = MinMax::new(vec![0.0; 52], vec![1.0; 53]).unwrap_err();
        assert!(e.to_string().contains("52 values, expected 53"), "{e}");
        let mut min = vec![0.0; 53];
        min[1] = 2.0;
        let e = MinMax::new(min, vec![1.0; 53]).unwrap_err();
        assert!(e.to_string().contains("pkt_count"), "{e}");
        assert!(MinMax::new(vec![0.0; 53], vec![f64::NAN; 53]).is_err());
    }
}
