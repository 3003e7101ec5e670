//! The three-window ring: feeds consecutive windows to the model and yields one anomaly score
//! per window once three are in.
//!
//! The score of the run (n, n+1, n+2) is returned by the push of window n+2 and belongs to
//! window n+2 (`docs/features.md`, "Normalisation and score"). After a break in the sequence
//! (windows lost, a clock jump that the aggregator collapsed) call [`ScoreRing::reset`]: the next
//! score then comes two windows after the break, never from windows that were not consecutive.

use crate::model::lstm::LstmAutoencoder;
use crate::model::normalize::MinMax;
use crate::model::{Bundle, ModelError, Run, SEQ_LEN};
use crate::window::features::{FeatureVector, NUM_FEATURES};

/// The last three normalised windows and the model that scores them.
#[derive(Debug)]
pub struct ScoreRing {
    model: LstmAutoencoder,
    normalizer: MinMax,
    /// Normalised windows, oldest first; only the first `len` are valid.
    ring: Run,
    len: usize,
}

impl ScoreRing {
    /// A ring that scores with `model` after normalising with `normalizer`.
    pub fn new(model: LstmAutoencoder, normalizer: MinMax) -> ScoreRing {
        ScoreRing {
            model,
            normalizer,
            ring: [[0.0; NUM_FEATURES]; SEQ_LEN],
            len: 0,
        }
    }

    /// A ring over a loaded bundle's model (the metadata is dropped; keep what you need, e.g.
    /// the threshold and model id, before).
    pub fn from_bundle(bundle: Bundle) -> ScoreRing {
        ScoreRing::new(bundle.model, bundle.normalizer)
    }

    /// Adds the next window (raw features) and returns the score of the last three windows,
    /// or `None` while fewer than three consecutive windows have been pushed.
    ///
    /// A window with a non-finite feature is refused with an error and also resets the ring
    /// (the sequence is broken: the next score needs three new good windows).
    pub fn push(&mut self, features: &FeatureVector) -> Result<Option<f64>, ModelError> {
        let norm = match self.normalizer.transform(features) {
            Ok(n) => n,
            Err(e) => {
                self.reset();
                return Err(e.into());
            }
        };
        if self.len == SEQ_LEN {
            self.ring.rotate_left(1);
            self.ring[SEQ_LEN - 1] = norm;
        } else {
            self.ring[self.len] = norm;
            self.len += 1;
        }
        if self.len < SEQ_LEN {
            return Ok(None);
        }
        self.model.score(&self.ring).map(Some)
    }

    /// Forgets the windows held: the sequence is broken.
    pub fn reset(&mut self) {
        self.len = 0;
    }

    /// Number of windows held (0 to 3).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no window is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The normaliser in use.
    pub fn normalizer(&self) -> &MinMax {
        &self.normalizer
    }

    /// The model in use.
    pub fn model(&self) -> &LstmAutoencoder {
        &self.model
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::lstm::Architecture;

    fn ring() -> (ScoreRing, LstmAutoencoder, MinMax) {
        let arch = Architecture {
            hidden: 8,
            layers: 1,
        };
        let ws: Vec<FeatureVector> = (0..4).map(|k| [k as f64; NUM_FEATURES]).collect();
        let mm = MinMax::fit(&ws).unwrap();
        let r = ScoreRing::new(LstmAutoencoder::new(arch, 1).unwrap(), mm.clone());
        (r, LstmAutoencoder::new(arch, 1).unwrap(), mm)
    }

    fn w(v: f64) -> FeatureVector {
        [v; NUM_FEATURES]
    }

    fn direct(model: &LstmAutoencoder, mm: &MinMax, a: f64, b: f64, c: f64) -> f64 {
        let run = [
            mm.transform(&w(a)).unwrap(),
            mm.transform(&w(b)).unwrap(),
            mm.transform(&w(c)).unwrap(),
        ];
        model.score(&run).unwrap()
    }

    #[test]
    fn scores_from_the_third_window_on() {
        let (mut r, model, mm) = ring();
        assert!(r.is_empty());
        assert_eq!(r.push(&w(0.0)).unwrap(), None);
        assert_eq!(r.push(&w(1.0)).unwrap(), None);
        assert_eq!(
            r.push(&w(2.0)).unwrap(),
            Some(direct(&model, &mm, 0.0, 1.0, 2.0))
        );
        assert_eq!(
            r.push(&w(3.0)).unwrap(),
            Some(direct(&model, &mm, 1.0, 2.0, 3.0))
        );
        assert_eq!(
            r.push(&w(0.5)).unwrap(),
            Some(direct(&model, &mm, 2.0, 3.0, 0.5))
        );
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn reset_breaks_the_sequence() {
        let (mut r, model, mm) = ring();
        for v in [0.0, 1.0, 2.0] {
            r.push(&w(v)).unwrap();
        }
        r.reset();
        assert_eq!(r.len(), 0);
        assert_eq!(r.push(&w(3.0)).unwrap(), None);
        assert_eq!(r.push(&w(2.0)).unwrap(), None);
        assert_eq!(
            r.push(&w(1.0)).unwrap(),
            Some(direct(&model, &mm, 3.0, 2.0, 1.0))
        );
    }

    #[test]
    fn ring_can_move_to_the_scorer_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<ScoreRing>();
        assert_send::<crate::model::Bundle>();
    }

    #[test]
    fn bad_window_is_an_error_and_resets() {
        let (mut r, _, _) = ring();
        r.push(&w(0.0)).unwrap();
        r.push(&w(1.0)).unwrap();
        let mut bad = w(2.0);
        bad[1] = f64::NAN;
        let e = r.push(&bad).unwrap_err();
        assert!(e.to_string().contains("pkt_count"), "{e}");
        assert_eq!(r.len(), 0);
        assert_eq!(r.push(&w(2.0)).unwrap(), None);
    }
}
