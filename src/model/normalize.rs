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
//!
//! Also beyond the paper, [`Smoothing`] shrinks the features that are averages over a window's
//! packets (the means, variances and flag ratios) toward their training mean by a prior of
//! `packets` packets: `(n·x + k·μ) / (n + k)` with n the window's `pkt_count`. One RST among 12
//! packets of a quiet night window is a ratio of 0.08, six times a busy day's maximum; with a
//! prior of 64 packets it is 0.013, while a scan's 13 RSTs among 114 packets stay at 0.07
//! (docs/model.md, "Small-window smoothing").

use crate::window::features::{Feature, FeatureVector, FEATURE_NAMES, NUM_FEATURES};

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
    /// A smoothing prior that is not a positive number of packets.
    #[error("small-window smoothing: prior of {packets} packets, expected a finite number > 0")]
    BadPrior { packets: f64 },
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

/// The features that are averages over a window's packets (`docs/features.md`): the packet
/// size and TTL means and variances and the ten flag ratios. [`Smoothing`] shrinks these,
/// taking `pkt_count` as their sample size (the ratios' own, the TCP packets, is not a
/// feature; it is at most `pkt_count`, so the prior weighs at least as much as intended).
pub const AVERAGED_FEATURES: [Feature; 14] = averaged_features();

/// The four size and TTL moments, then [`Feature::FLAG_RATIOS`].
const fn averaged_features() -> [Feature; 14] {
    let mut out = [Feature::PktSizeMean; 14];
    out[1] = Feature::PktSizeVar;
    out[2] = Feature::TtlMean;
    out[3] = Feature::TtlVar;
    let mut i = 0;
    while i < Feature::FLAG_RATIOS.len() {
        out[4 + i] = Feature::FLAG_RATIOS[i];
        i += 1;
    }
    out
}

/// Small-window smoothing (beyond the paper): each of the [`AVERAGED_FEATURES`] of a window
/// of n packets becomes `(n·x + packets·center) / (n + packets)`, its training mean standing
/// for `packets` packets of prior evidence. A window of thousands of packets keeps its value;
/// one of a dozen moves most of the way to the mean, so one odd packet of a quiet night
/// cannot look like an attack.
///
/// Invariants (checked by every constructor): `packets` finite and > 0; `center`, `min`
/// and `max` 53 finite values each, min ≤ max. `min`/`max` are the bounds of the SMOOTHED
/// training values (what the scaling and the min–max see); the raw bounds stay in [`MinMax`].
#[derive(Clone, Debug, PartialEq)]
pub struct Smoothing {
    packets: f64,
    center: Vec<f64>,
    min: Vec<f64>,
    max: Vec<f64>,
}

impl Smoothing {
    /// Builds from stored values (a bundle's `normalization.smoothing`), checking the
    /// invariants.
    pub fn new(
        packets: f64,
        center: Vec<f64>,
        min: Vec<f64>,
        max: Vec<f64>,
    ) -> Result<Smoothing, NormalizeError> {
        if !(packets.is_finite() && packets > 0.0) {
            return Err(NormalizeError::BadPrior { packets });
        }
        check_bounds(
            [
                ("smoothing center", &center),
                ("smoothing min", &min),
                ("smoothing max", &max),
            ],
            &min,
            &max,
        )?;
        Ok(Smoothing {
            packets,
            center,
            min,
            max,
        })
    }

    /// The prior's weight, in packets.
    pub fn packets(&self) -> f64 {
        self.packets
    }

    /// The training mean each averaged feature is shrunk toward (raw; other features' means
    /// are kept too, unused).
    pub fn center(&self) -> &[f64] {
        &self.center
    }

    /// Per-feature minimum of the smoothed training values.
    pub fn min(&self) -> &[f64] {
        &self.min
    }

    /// Per-feature maximum of the smoothed training values.
    pub fn max(&self) -> &[f64] {
        &self.max
    }

    /// `x` with its averaged features shrunk toward the training mean.
    pub fn apply(&self, x: &FeatureVector) -> FeatureVector {
        apply_prior(x, self.packets, &self.center)
    }
}

/// `x` with each averaged feature shrunk toward `center` by a prior of `packets` packets.
fn apply_prior(x: &FeatureVector, packets: f64, center: &[f64]) -> FeatureVector {
    let mut out = *x;
    // A pkt_count below 0 is not a window; treat it as empty rather than divide by ≤ 0.
    let n = x[Feature::PktCount.index()].max(0.0);
    for f in AVERAGED_FEATURES {
        let i = f.index();
        out[i] = (n * x[i] + packets * center[i]) / (n + packets);
    }
    out
}

/// Checks that each named vector has 53 finite values and that `min` ≤ `max` per feature.
fn check_bounds<const K: usize>(
    vectors: [(&'static str, &Vec<f64>); K],
    min: &[f64],
    max: &[f64],
) -> Result<(), NormalizeError> {
    for (which, v) in vectors {
        if v.len() != NUM_FEATURES {
            return Err(NormalizeError::WrongLength {
                which,
                found: v.len(),
                expected: NUM_FEATURES,
            });
        }
        if let Some(index) = v.iter().position(|x| !x.is_finite()) {
            return Err(NormalizeError::NonFinite {
                what: which,
                index,
                name: FEATURE_NAMES[index],
                value: v[index],
            });
        }
    }
    for i in 0..NUM_FEATURES {
        if min[i] > max[i] {
            return Err(NormalizeError::MinAboveMax {
                index: i,
                name: FEATURE_NAMES[i],
                min: min[i],
                max: max[i],
            });
        }
    }
    Ok(())
}

/// Per-feature minimum and maximum over the training windows, the scaling applied first, and
/// the small-window smoothing if any.
///
/// Invariants (checked by every constructor): 53 values each, all finite, min ≤ max. `min`
/// and `max` are raw feature values (what an operator compares a window with); the scaling
/// maps them like the values. With [`Smoothing`], the min–max uses its bounds instead.
#[derive(Clone, Debug, PartialEq)]
pub struct MinMax {
    min: Vec<f64>,
    max: Vec<f64>,
    scaling: Scaling,
    smoothing: Option<Smoothing>,
    /// `scaling.map(min)` and the range `scaling.map(max) − scaling.map(min)`, per feature
    /// (of the smoothed bounds with smoothing).
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
        MinMax::fit_smoothed(windows, scaling, None)
    }

    /// Fits min and max per feature over `windows`, for `scaling`, with small-window
    /// smoothing by a prior of `prior_packets` packets when given (its center the training
    /// mean, its bounds those of the smoothed training windows).
    pub fn fit_smoothed(
        windows: &[FeatureVector],
        scaling: Scaling,
        prior_packets: Option<f64>,
    ) -> Result<MinMax, NormalizeError> {
        if windows.is_empty() {
            return Err(NormalizeError::Empty);
        }
        let mut min = vec![f64::INFINITY; NUM_FEATURES];
        let mut max = vec![f64::NEG_INFINITY; NUM_FEATURES];
        let mut sum = vec![0.0; NUM_FEATURES];
        for w in windows {
            check_finite(w, "training window")?;
            for (i, &v) in w.iter().enumerate() {
                min[i] = min[i].min(v);
                max[i] = max[i].max(v);
                sum[i] += v;
            }
        }
        let smoothing = match prior_packets {
            None => None,
            Some(packets) => {
                let center: Vec<f64> = sum.iter().map(|s| s / windows.len() as f64).collect();
                let mut smin = vec![f64::INFINITY; NUM_FEATURES];
                let mut smax = vec![f64::NEG_INFINITY; NUM_FEATURES];
                for w in windows {
                    for (i, v) in apply_prior(w, packets, &center).into_iter().enumerate() {
                        smin[i] = smin[i].min(v);
                        smax[i] = smax[i].max(v);
                    }
                }
                Some(Smoothing::new(packets, center, smin, smax)?)
            }
        };
        Ok(MinMax::derive(min, max, scaling, smoothing))
    }

    /// Derives the scaled bounds (min and max already checked): from the smoothed bounds
    /// when smoothing.
    fn derive(
        min: Vec<f64>,
        max: Vec<f64>,
        scaling: Scaling,
        smoothing: Option<Smoothing>,
    ) -> MinMax {
        let (bmin, bmax) = match &smoothing {
            Some(s) => (&s.min, &s.max),
            None => (&min, &max),
        };
        let lo: Vec<f64> = bmin.iter().map(|&m| scaling.map(m)).collect();
        let range = bmax
            .iter()
            .zip(&lo)
            .map(|(&m, &l)| scaling.map(m) - l)
            .collect();
        MinMax {
            min,
            max,
            scaling,
            smoothing,
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
        MinMax::new_smoothed(min, max, scaling, None)
    }

    /// Builds from stored vectors, a scaling and a smoothing, checking the invariants.
    pub fn new_smoothed(
        min: Vec<f64>,
        max: Vec<f64>,
        scaling: Scaling,
        smoothing: Option<Smoothing>,
    ) -> Result<MinMax, NormalizeError> {
        check_bounds([("min", &min), ("max", &max)], &min, &max)?;
        Ok(MinMax::derive(min, max, scaling, smoothing))
    }

    /// The small-window smoothing, if the model uses one.
    pub fn smoothing(&self) -> Option<&Smoothing> {
        self.smoothing.as_ref()
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
    /// where max = min, never clipped (x, min and max smoothed with a smoothing).
    ///
    /// Refuses a non-finite feature (it would make a NaN score, i.e. a silently wrong one).
    pub fn transform(&self, x: &FeatureVector) -> Result<FeatureVector, NormalizeError> {
        check_finite(x, "window")?;
        let smoothed;
        let x = match &self.smoothing {
            Some(s) => {
                smoothed = s.apply(x);
                &smoothed
            }
            None => x,
        };
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

    const RST: usize = Feature::RstRatio.index();
    const PKT_COUNT: usize = Feature::PktCount.index();

    /// A window of `n` packets, `rst` of them RSTs (rst_ratio), everything else 0.
    fn rst_window(n: f64, rst: f64) -> FeatureVector {
        let mut x = [0.0; NUM_FEATURES];
        x[Feature::PktCount.index()] = n;
        x[RST] = rst / n;
        x
    }

    /// Smoothing: the training mean is the prior; a dozen packets move most of the way to
    /// it, thousands keep their value; the min–max runs on the smoothed bounds while the raw
    /// bounds stay what an operator compares a window with.
    #[test]
    fn smoothing_shrinks_small_windows_toward_the_training_mean() {
        // Training: busy windows of 1,000 packets with 0 or 10 RSTs (ratio 0 or 0.01).
        let train: Vec<FeatureVector> = (0..10)
            .map(|k| rst_window(1000.0, 10.0 * (k % 2) as f64))
            .collect();
        let mm = MinMax::fit_smoothed(&train, Scaling::Linear, Some(64.0)).unwrap();
        let s = mm.smoothing().unwrap();
        assert_eq!(s.packets(), 64.0);
        assert!((s.center()[RST] - 0.005).abs() < 1e-12);
        assert_eq!(
            (mm.min()[RST], mm.max()[RST]),
            (0.0, 0.01),
            "raw bounds kept"
        );
        // Smoothed bounds: (1000·0 + 64·0.005)/1064 and (1000·0.01 + 64·0.005)/1064.
        assert!(
            (s.min()[RST] - 0.32 / 1064.0).abs() < 1e-12,
            "{}",
            s.min()[RST]
        );
        assert!(
            (s.max()[RST] - 10.32 / 1064.0).abs() < 1e-12,
            "{}",
            s.max()[RST]
        );
        // pkt_count, not an average, is untouched.
        assert_eq!((s.min()[PKT_COUNT], s.max()[PKT_COUNT]), (1000.0, 1000.0));

        // One RST among 12 packets of a quiet window: 8.3 × the range unsmoothed, 1.8 ×
        // smoothed ((1 + 0.32) / 76 = 0.0174; (0.0174 − 0.0003) / 0.0094).
        let quiet = rst_window(12.0, 1.0);
        let plain = MinMax::fit(&train).unwrap();
        assert!((plain.transform(&quiet).unwrap()[RST] - 8.333).abs() < 1e-3);
        let q = mm.transform(&quiet).unwrap()[RST];
        let range = 10.0 / 1064.0;
        assert!(
            (q - (1.32 / 76.0 - 0.32 / 1064.0) / range).abs() < 1e-9,
            "{q}"
        );
        assert!(q < 2.0, "{q}");
        // A scan's 13 RSTs among 114 packets stays far outside: (13.32/178 − 0.0003)/0.0094 = 7.9.
        let scan = mm.transform(&rst_window(114.0, 13.0)).unwrap()[RST];
        assert!(scan > 7.5, "{scan}");
        // A flood of 10,000 packets, half of them RSTs, is barely moved (0.497 instead of 0.5).
        let flood = mm.transform(&rst_window(10_000.0, 5_000.0)).unwrap()[RST];
        assert!((flood - (5000.32 / 10064.0 - 0.32 / 1064.0) / range).abs() < 1e-9);
        // An empty window sits at the mean.
        let empty = mm.transform(&[0.0; NUM_FEATURES]).unwrap()[RST];
        assert!((empty - 0.5).abs() < 1e-9, "{empty}");

        let again = MinMax::new_smoothed(
            mm.min().to_vec(),
            mm.max().to_vec(),
            Scaling::Linear,
            Some(
                Smoothing::new(
                    64.0,
                    s.center().to_vec(),
                    s.min().to_vec(),
                    s.max().to_vec(),
                )
                .unwrap(),
            ),
        )
        .unwrap();
        assert_eq!(again, mm);
        assert_eq!(
            again.transform(&quiet).unwrap(),
            mm.transform(&quiet).unwrap()
        );
    }

    #[test]
    fn smoothing_refuses_bad_stored_values() {
        let v = vec![0.0; NUM_FEATURES];
        for p in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = Smoothing::new(p, v.clone(), v.clone(), v.clone()).unwrap_err();
            assert!(matches!(e, NormalizeError::BadPrior { .. }), "{e}");
        }
        let e = Smoothing::new(64.0, vec![0.0; 52], v.clone(), v.clone()).unwrap_err();
        assert_eq!(
            e,
            NormalizeError::WrongLength {
                which: "smoothing center",
                found: 52,
                expected: NUM_FEATURES
            }
        );
        let mut nan = v.clone();
        nan[3] = f64::NAN;
        let e = Smoothing::new(64.0, v.clone(), nan, v.clone()).unwrap_err();
        assert!(e.to_string().contains("ttl_mean"), "{e}");
        let mut low = v.clone();
        low[RST] = -1.0;
        let e = Smoothing::new(64.0, v.clone(), v.clone(), low).unwrap_err();
        assert!(e.to_string().contains("rst_ratio"), "{e}");
        let e = MinMax::fit_smoothed(&[], Scaling::Linear, Some(64.0)).unwrap_err();
        assert_eq!(e, NormalizeError::Empty);
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
