//! The model layer: min–max normalisation, the LSTM reconstruction model, its training, and the
//! on-disk model bundle (`model.json` + `weights.safetensors`).
//!
//! Data flow (paper, section 2; contract in `docs/features.md`, "Normalisation and score"):
//! a window's 53 features are min–max normalised ([`normalize::MinMax`]); the LSTM
//! ([`lstm::LstmAutoencoder`]) reads three consecutive normalised windows and reproduces them;
//! the anomaly score is Σ over the 3 × 53 values of (t' − y')².
//!
//! This layer knows nothing of capture, alerts, threads or files other than its bundle.
//! See `docs/model.md` for the architecture, the training, the threshold rule and the bundle
//! format.

pub mod augment;
pub mod bundle;
pub mod lstm;
pub mod median;
pub mod normalize;
pub mod set;
pub mod spot;
pub mod state;
pub mod store;
pub mod train;

use std::sync::Once;

pub use bundle::{Bundle, BundleError, ModelMeta};
pub use lstm::{Architecture, LstmAutoencoder};
pub use normalize::{MinMax, NormalizeError, Scaling};
pub use set::ModelSet;
pub use store::ModelStore;
pub use train::{train, train_segments, EpochStats, ThresholdRule, TrainOptions, TrainedModel};

use crate::window::features::{FeatureVector, NUM_FEATURES};

/// Number of consecutive windows the model reads and reproduces (paper, Fig. 1).
pub const SEQ_LEN: usize = 3;

/// Number of values that one anomaly score sums over (3 windows × 53 features).
pub const RUN_VALUES: usize = SEQ_LEN * NUM_FEATURES;

/// A run of three consecutive windows (oldest first).
pub type Run = [FeatureVector; SEQ_LEN];

/// Errors of the model layer other than the bundle's ([`BundleError`]).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// An error reported by libtorch, with what we were doing.
    #[error("libtorch error while {context}: {source}")]
    Torch {
        context: &'static str,
        #[source]
        source: tch::TchError,
    },
    /// Training data rejected before training.
    #[error("not enough training data: {0}")]
    TooLittleData(String),
    /// A training option out of its range.
    #[error("invalid training option: {0}")]
    InvalidOption(String),
    /// The loss became NaN or infinite.
    #[error("training diverged at epoch {epoch}: loss is {loss} (try a smaller learning rate)")]
    Diverged { epoch: usize, loss: f64 },
    /// Input that cannot be normalised or scored.
    #[error(transparent)]
    Normalize(#[from] NormalizeError),
    /// The model produced a non-finite value (never reported as a score).
    #[error("the model produced a non-finite {what}")]
    NonFiniteOutput { what: &'static str },
}

impl ModelError {
    pub(crate) fn torch(context: &'static str) -> impl FnOnce(tch::TchError) -> ModelError {
        move |source| ModelError::Torch { context, source }
    }
}

/// Puts libtorch in single-threaded mode, once per process.
///
/// Why: (1) scoring one run is a few tiny matrix products (3 × 53 inputs, hidden 64): OpenMP's
/// fork/join and spinning workers cost more than the arithmetic and would steal cores from the
/// capture and window threads; (2) training must be reproducible: with one thread every
/// reduction runs in the same order on every machine, so a fixed seed gives bit-identical
/// weights regardless of the core count. The setting is process-wide in libtorch; this layer is
/// its only user of torch.
pub fn use_single_thread() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tch::set_num_threads(1);
        tracing::debug!("libtorch intra-op threads set to 1");
    });
}

/// A small deterministic PRNG (SplitMix64) for weight initialisation and shuffling.
///
/// Kept here rather than using libtorch's global generator so that a fixed seed gives the same
/// model even when several trainings run at once in one process (tests run in parallel, and
/// `tch::manual_seed` is process-global).
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }

    /// Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; bias < 2^-64·n, irrelevant here).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Fisher–Yates shuffle.
    pub(crate) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// Linear-interpolation quantile (the "type 7" definition, numpy's default) of sorted data.
/// `q` in [0, 1]; `None` for empty data.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    let frac = h - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile_sorted(&v, 0.0), Some(1.0));
        assert_eq!(quantile_sorted(&v, 1.0), Some(5.0));
        assert_eq!(quantile_sorted(&v, 0.5), Some(3.0));
        assert_eq!(quantile_sorted(&v, 0.9), Some(4.6));
        assert_eq!(quantile_sorted(&[], 0.5), None);
        assert_eq!(quantile_sorted(&v, 1.5), None);
    }

    #[test]
    fn rng_is_deterministic_and_shuffles() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        let mut va: Vec<usize> = (0..100).collect();
        let mut vb = va.clone();
        a.shuffle(&mut va);
        b.shuffle(&mut vb);
        assert_eq!(va, vb);
        assert_ne!(va, (0..100).collect::<Vec<_>>());
        let mut sorted = va.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        for _ in 0..1000 {
            let x = a.uniform(-0.5, 0.5);
            assert!((-0.5..0.5).contains(&x));
        }
    }
}
