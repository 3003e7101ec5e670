//! Load augmentation at training (beyond the paper): runs of three windows replayed as if the
//! network carried k times its load, so a model of a quiet quarter hour has seen the shape of
//! a busier one (docs/model.md, "Load augmentation").
//!
//! A window's features are either averages over its packets (the 14 of
//! [`AVERAGED_FEATURES`](super::normalize::AVERAGED_FEATURES): means, variances, flag
//! ratios), which a change of load leaves alone, or counts (packets, flags, ports, protocols,
//! distinct addresses and ports), which move with it. At k times the load, the counts are
//! multiplied by k and the averages kept. A flood or a scan changes the averages (a SYN ratio
//! near 1, an RST ratio of a tenth) or the counts by far more than any k trained on, so it
//! still stands out.

use super::normalize::AVERAGED_FEATURES;
use super::SplitMix64;
use crate::window::features::{Feature, FeatureVector, NUM_FEATURES};

/// Whether each feature moves with the load (a count), in feature order.
const fn scales_with_load() -> [bool; NUM_FEATURES] {
    let mut out = [true; NUM_FEATURES];
    let mut i = 0;
    while i < AVERAGED_FEATURES.len() {
        out[AVERAGED_FEATURES[i] as usize] = false;
        i += 1;
    }
    out
}

/// `true` for the count features, which [`at_load`] multiplies.
pub const SCALES_WITH_LOAD: [bool; NUM_FEATURES] = scales_with_load();

/// `x` as if the network had carried `k` times its load: counts × k, averages kept.
pub fn at_load(x: &FeatureVector, k: f64) -> FeatureVector {
    let mut out = *x;
    for (v, scales) in out.iter_mut().zip(SCALES_WITH_LOAD) {
        if scales {
            *v *= k;
        }
    }
    out
}

/// Draws the load factor of each training run: half the runs as recorded (k = 1), the other
/// half at k log-uniform in [1/`factor`, `factor`], so the model learns the recorded load
/// exactly and its neighbourhood.
#[derive(Clone, Debug)]
pub struct LoadAugment {
    ln_factor: f64,
    rng: SplitMix64,
}

impl LoadAugment {
    /// Factors up to `factor` (> 1) either way, drawn from a generator seeded with `seed`.
    pub fn new(factor: f64, seed: u64) -> LoadAugment {
        LoadAugment {
            ln_factor: factor.ln(),
            // Its own stream: the same seed without augmentation keeps its shuffles.
            rng: SplitMix64::new(seed ^ 0x10AD_10AD_10AD_10AD),
        }
    }

    /// The next run's load factor.
    pub fn next_factor(&mut self) -> f64 {
        if self.rng.next_f64() < 0.5 {
            1.0
        } else {
            (self.ln_factor * self.rng.uniform(-1.0, 1.0)).exp()
        }
    }
}

/// `true` when `f` is one of the features [`at_load`] multiplies.
pub fn scales(f: Feature) -> bool {
    SCALES_WITH_LOAD[f.index()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_move_with_the_load_and_averages_stay() {
        let x: FeatureVector = std::array::from_fn(|i| i as f64 + 1.0);
        let y = at_load(&x, 3.0);
        for f in Feature::ALL {
            let i = f.index();
            let expected = if scales(f) { 3.0 * x[i] } else { x[i] };
            assert_eq!(y[i], expected, "{}", f.name());
        }
        // The contract's kinds: 39 counts, 14 averages.
        assert_eq!(SCALES_WITH_LOAD.iter().filter(|&&s| s).count(), 39);
        for f in [
            Feature::PktCount,
            Feature::SynCount,
            Feature::DstPortDistinct,
            Feature::SrcPort22Count,
            Feature::UdpCount,
        ] {
            assert!(scales(f), "{}", f.name());
        }
        for f in [Feature::SynRatio, Feature::TtlMean, Feature::PktSizeVar] {
            assert!(!scales(f), "{}", f.name());
        }
    }

    #[test]
    fn factors_are_half_one_half_log_uniform_within_the_bound() {
        let mut a = LoadAugment::new(4.0, 7);
        let ks: Vec<f64> = (0..20_000).map(|_| a.next_factor()).collect();
        let ones = ks.iter().filter(|&&k| k == 1.0).count();
        assert!((9_500..10_500).contains(&ones), "{ones}");
        assert!(ks.iter().all(|&k| (0.25..=4.0).contains(&k)));
        // Log-uniform: as many above 2 as below 1/2 (each a quarter of the scaled half).
        let above = ks.iter().filter(|&&k| k > 2.0).count();
        let below = ks.iter().filter(|&&k| k < 0.5).count();
        assert!((2_200..2_800).contains(&above), "{above}");
        assert!((2_200..2_800).contains(&below), "{below}");
        // Deterministic per seed.
        let mut b = LoadAugment::new(4.0, 7);
        assert!(ks.iter().all(|&k| k == b.next_factor()));
    }
}
