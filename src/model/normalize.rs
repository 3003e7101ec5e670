//! Min–max normalisation of the 53 features (paper, section 2.1; `docs/features.md`).
//!
//! `x' = (x − min) / (max − min)` per feature, with min and max fitted on the training windows.
//! A feature with max = min maps to 0. Values outside the training range are NOT clipped: a
//! SYN flood's syn_count far above anything seen in training becomes x' ≫ 1, which the model
//! cannot reproduce, and that is the anomaly.

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

/// Per-feature minimum and maximum over the training windows.
///
/// Invariants (checked by every constructor): 53 values each, all finite, min ≤ max.
#[derive(Clone, Debug, PartialEq)]
pub struct MinMax {
    min: Vec<f64>,
    max: Vec<f64>,
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
    /// Fits min and max per feature over `windows`.
    pub fn fit(windows: &[FeatureVector]) -> Result<MinMax, NormalizeError> {
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
        Ok(MinMax { min, max })
    }

    /// Builds from stored vectors (a bundle's `model.json`), checking the invariants.
    pub fn new(min: Vec<f64>, max: Vec<f64>) -> Result<MinMax, NormalizeError> {
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
        Ok(MinMax { min, max })
    }

    /// Per-feature minimum, in feature order.
    pub fn min(&self) -> &[f64] {
        &self.min
    }

    /// Per-feature maximum, in feature order.
    pub fn max(&self) -> &[f64] {
        &self.max
    }

    /// Normalises one window: `(x − min) / (max − min)`, 0 where max = min, never clipped.
    ///
    /// Refuses a non-finite feature (it would make a NaN score, i.e. a silently wrong one).
    pub fn transform(&self, x: &FeatureVector) -> Result<FeatureVector, NormalizeError> {
        check_finite(x, "window")?;
        let mut out = [0.0; NUM_FEATURES];
        for i in 0..NUM_FEATURES {
            let range = self.max[i] - self.min[i];
            out[i] = if range > 0.0 {
                (x[i] - self.min[i]) / range
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
