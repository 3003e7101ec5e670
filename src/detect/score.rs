//! Scoring: the one stage that turns finished windows into anomaly scores, used by `score`,
//! `evaluate` and the daemon alike.
//!
//! [`ScoreRing`] feeds consecutive windows to the model and yields one score per window once
//! three are in: the score of the run (n, n+1, n+2) is returned by the push of window n+2 and
//! belongs to window n+2 (`docs/features.md`, "Normalisation and score"). [`ScoringStage`] puts
//! the sequence rule in front of it: a window that does not start where the last one ended (a
//! dropped window) or that follows a collapsed clock jump breaks the run, and the next score
//! comes two windows later, never from windows that were not consecutive.

use std::collections::VecDeque;

use crate::model::lstm::LstmAutoencoder;
use crate::model::normalize::MinMax;
use crate::model::{Bundle, ModelError, ModelSet, Run, SEQ_LEN};
use crate::window::features::{FeatureVector, NUM_FEATURES};
use crate::window::{Omega, Window};

use super::threshold::{Threshold, ThresholdConfig};

/// One scale of a model set: its window length, scoring stage and threshold.
pub struct Scale {
    /// The scale's ω.
    pub omega: Omega,
    /// Its bundle's id.
    pub model_id: String,
    /// Sequence rule, ring and model.
    pub stage: ScoringStage,
    /// Alert threshold (fixed, adaptive or by hand): a window alerts when its score is above
    /// the value in force.
    pub threshold: Threshold,
    /// Training minima and maxima (to explain alerts, to count drift).
    pub min: Vec<f64>,
    pub max: Vec<f64>,
}

/// A threshold given by hand cannot apply to several scales at once.
#[derive(Debug, thiserror::Error)]
#[error("a threshold of {threshold} was given, but the model set has {count} window lengths ({scales} s), each with its own threshold: leave the threshold out (or use one scale, e.g. --model DIR/omega-<ω>s)")]
pub struct ThresholdForScales {
    pub threshold: f64,
    pub count: usize,
    pub scales: String,
}

/// What scoring and judging one window gave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Judged {
    /// The score of the run this window ends; `None` until three consecutive windows are in.
    pub score: Option<f64>,
    /// True when this window broke the sequence (gap or collapsed jump before it).
    pub sequence_broken: bool,
    /// The threshold the score was compared with (the value in force before it).
    pub threshold: f64,
    /// The score is above it.
    pub alerting: bool,
}

impl Scale {
    /// The scales of a model set, shortest ω first, with thresholds chosen by `config`
    /// (`config.manual` is refused for several scales).
    pub fn from_set(
        set: ModelSet,
        config: &ThresholdConfig,
    ) -> Result<Vec<Scale>, ThresholdForScales> {
        if let (Some(threshold), true) = (config.manual, set.is_multi_scale()) {
            return Err(ThresholdForScales {
                threshold,
                count: set.bundles().len(),
                scales: set.scales().to_string(),
            });
        }
        Ok(set
            .into_bundles()
            .into_iter()
            .map(|b| Scale::from_bundle(b, config))
            .collect())
    }

    /// One scale from a bundle, its threshold chosen by `config`.
    pub fn from_bundle(bundle: Bundle, config: &ThresholdConfig) -> Scale {
        Scale {
            omega: bundle.omega(),
            model_id: bundle.model_id().to_string(),
            threshold: Threshold::of_bundle(&bundle, config),
            min: bundle.normalizer.min().to_vec(),
            max: bundle.normalizer.max().to_vec(),
            stage: ScoringStage::from_bundle(bundle),
        }
    }

    /// Scores the next window and judges the score against the threshold (which then learns
    /// from it, under SPOT). An error (a non-finite feature) breaks the run, as in
    /// [`ScoringStage::push`].
    pub fn push(&mut self, w: Window) -> Result<Judged, ModelError> {
        let scored = self.stage.push(w);
        if !matches!(
            scored,
            Ok(Scored {
                sequence_broken: false,
                ..
            })
        ) {
            self.threshold.break_sequence();
        }
        let scored = scored?;
        let (threshold, alerting) = match scored.score {
            Some(s) => {
                let j = self.threshold.judge(s);
                (j.threshold, j.alerting)
            }
            None => (self.threshold.value(), false),
        };
        Ok(Judged {
            score: scored.score,
            sequence_broken: scored.sequence_broken,
            threshold,
            alerting,
        })
    }

    /// Features of `w` outside this scale's training range (drift).
    pub fn features_outside(&self, w: &Window) -> usize {
        w.features
            .iter()
            .zip(self.min.iter().zip(&self.max))
            .filter(|(v, (lo, hi))| *v < lo || *v > hi)
            .count()
    }
}

/// What scoring one window gave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scored {
    /// The score of the run this window ends; `None` until three consecutive windows are in.
    pub score: Option<f64>,
    /// True when this window broke the sequence (gap or collapsed jump before it).
    pub sequence_broken: bool,
}

/// The scoring stage: sequence rule, score ring, and the windows of the current run.
pub struct ScoringStage {
    ring: ScoreRing,
    last_end_ns: Option<i64>,
    /// The windows of the run being scored, oldest first (at most three).
    recent: VecDeque<Window>,
}

impl ScoringStage {
    /// A stage scoring with `ring`.
    pub fn new(ring: ScoreRing) -> ScoringStage {
        ScoringStage {
            ring,
            last_end_ns: None,
            recent: VecDeque::with_capacity(SEQ_LEN),
        }
    }

    /// A stage over a loaded bundle's model (see [`ScoreRing::from_bundle`]).
    pub fn from_bundle(bundle: Bundle) -> ScoringStage {
        ScoringStage::new(ScoreRing::from_bundle(bundle))
    }

    /// Scores the next window. An error (a non-finite feature) also breaks the run; the
    /// window is still kept as the latest.
    pub fn push(&mut self, w: Window) -> Result<Scored, ModelError> {
        let consecutive = self.last_end_ns.is_none_or(|end| end == w.start_ns);
        let sequence_broken = w.after_time_jump || !consecutive;
        if sequence_broken {
            self.ring.reset();
            self.recent.clear();
        }
        self.last_end_ns = Some(w.end_ns);
        if self.recent.len() == SEQ_LEN {
            self.recent.pop_front();
        }
        let result = self.ring.push(&w.features);
        self.recent.push_back(w);
        Ok(Scored {
            score: result?,
            sequence_broken,
        })
    }

    /// The windows of the current run, oldest first; the last is the one pushed last.
    pub fn recent(&self) -> &VecDeque<Window> {
        &self.recent
    }

    /// The window pushed last.
    pub fn last(&self) -> Option<&Window> {
        self.recent.back()
    }

    /// The normaliser in use (training minima and maxima, to explain alerts).
    pub fn normalizer(&self) -> &MinMax {
        self.ring.normalizer()
    }
}

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

    fn window(k: i64, v: f64) -> Window {
        Window {
            start_ns: k * 1000,
            end_ns: (k + 1) * 1000,
            features: w(v),
            talkers: Default::default(),
            contributors: Default::default(),
            distinct_estimated: false,
            late_packets: 0,
            after_time_jump: false,
            incomplete: false,
        }
    }

    #[test]
    fn stage_restarts_the_run_after_a_gap_or_a_jump() {
        let (r, model, mm) = ring();
        let mut st = ScoringStage::new(r);
        let score = |st: &mut ScoringStage, w| st.push(w).unwrap();
        assert_eq!(score(&mut st, window(0, 0.0)).score, None);
        assert_eq!(score(&mut st, window(1, 1.0)).score, None);
        let s = score(&mut st, window(2, 2.0));
        assert_eq!(s.score, Some(direct(&model, &mm, 0.0, 1.0, 2.0)));
        assert!(!s.sequence_broken);
        // Window 3 lost: 4 starts a new run.
        let s = score(&mut st, window(4, 3.0));
        assert_eq!((s.score, s.sequence_broken), (None, true));
        assert_eq!(st.recent().len(), 1);
        assert_eq!(score(&mut st, window(5, 2.0)).score, None);
        let s = score(&mut st, window(6, 1.0));
        assert_eq!(s.score, Some(direct(&model, &mm, 3.0, 2.0, 1.0)));
        assert_eq!(st.recent().len(), 3);
        assert_eq!(st.last().unwrap().start_ns, 6000);
        // A collapsed jump breaks it even when the times line up.
        let mut jumped = window(7, 0.0);
        jumped.after_time_jump = true;
        let s = score(&mut st, jumped);
        assert_eq!((s.score, s.sequence_broken), (None, true));
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
