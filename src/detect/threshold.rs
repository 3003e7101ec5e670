//! The alert threshold of one scale at detection: the bundle's fixed value (the paper's way,
//! `alerts.threshold_rule = "fixed"`), the adaptive SPOT threshold that follows the network
//! (`"spot"`, the default), or a value given by hand (`model.threshold`, `--threshold`).
//!
//! SPOT (`model/spot.rs`) starts from the calibration stored in the bundle (or from the
//! daemon's saved state) and learns from every scored window that did not alert, except the
//! two after an alerting one, whose runs of three still hold the alerting window, and except
//! a sustained run of peaks: more than [`MAX_LEARNED_PEAK_RUN`] consecutive scores above the
//! peaks threshold `t`. One odd window lifts the three runs that hold it, so normal traffic
//! makes short runs of peaks; a slow scan or a slow flood that stays just under the alert
//! threshold makes long ones, and learning them would raise the threshold under the attack
//! until it hides it (measured: a 5 s threshold went from 4.6 to 1e8 in the 40 s of an nmap
//! -T2 scan, and never came back). Peaks are therefore learned only once the run they belong
//! to has ended short. An alert itself is never learned from.

use crate::model::spot::{SpotState, FALSE_RATE_MAX, FALSE_RATE_MIN};
use crate::model::{Bundle, SEQ_LEN};

/// Longest run of consecutive peaks SPOT learns from: a single odd window lifts the
/// [`SEQ_LEN`] runs that hold it, two adjacent ones lift four; anything longer is sustained.
pub const MAX_LEARNED_PEAK_RUN: usize = 2 * SEQ_LEN - 1;

/// `alerts.threshold_rule`: which threshold a model with both runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RuleChoice {
    /// The adaptive threshold (SPOT) for `alerts.false_rate`; the fixed one for a bundle
    /// without a SPOT calibration.
    #[default]
    Spot,
    /// The bundle's fixed threshold (`threshold.value`: 1.5 × p99.5 of validation scores).
    Fixed,
}

impl RuleChoice {
    /// The setting's value: `spot` or `fixed`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleChoice::Spot => "spot",
            RuleChoice::Fixed => "fixed",
        }
    }

    /// Parses a setting's value.
    pub fn parse(s: &str) -> Option<RuleChoice> {
        match s {
            "spot" => Some(RuleChoice::Spot),
            "fixed" => Some(RuleChoice::Fixed),
            _ => None,
        }
    }
}

/// How thresholds are chosen at detection (`[alerts] threshold_rule`, `false_rate`,
/// `model.threshold`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThresholdConfig {
    /// The rule asked for.
    pub rule: RuleChoice,
    /// SPOT's target false-window rate q (in `FALSE_RATE_MIN ..= FALSE_RATE_MAX`).
    pub false_rate: f64,
    /// A fixed value given by hand; wins over `rule`.
    pub manual: Option<f64>,
}

/// The default false-window rate: with ω = 0.5 s and 5 s together (189,000 windows a day),
/// about two false windows a day, i.e. about one false incident (a score bump lifts the
/// two or three overlapping runs that hold it).
pub const DEFAULT_FALSE_RATE: f64 = 1e-5;

impl Default for ThresholdConfig {
    /// SPOT at q = 1e-5, no value by hand.
    fn default() -> Self {
        ThresholdConfig {
            rule: RuleChoice::Spot,
            false_rate: DEFAULT_FALSE_RATE,
            manual: None,
        }
    }
}

impl ThresholdConfig {
    /// The fixed rule (the paper's way), with `manual` if given.
    pub fn fixed(manual: Option<f64>) -> Self {
        ThresholdConfig {
            rule: RuleChoice::Fixed,
            manual,
            ..ThresholdConfig::default()
        }
    }

    /// Checks `false_rate`'s range.
    pub fn validate(&self) -> Result<(), String> {
        if !(FALSE_RATE_MIN..=FALSE_RATE_MAX).contains(&self.false_rate) {
            return Err(format!(
                "false rate {} is outside {FALSE_RATE_MIN:e} to {FALSE_RATE_MAX:e} (a share of windows)",
                self.false_rate
            ));
        }
        Ok(())
    }
}

/// The threshold a scale runs (`netanom_threshold_rule{rule}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InForce {
    /// The bundle's fixed value.
    Fixed,
    /// SPOT.
    Spot,
    /// A value given by hand.
    Manual,
}

impl InForce {
    /// `fixed`, `spot` or `manual`.
    pub fn as_str(self) -> &'static str {
        match self {
            InForce::Fixed => "fixed",
            InForce::Spot => "spot",
            InForce::Manual => "manual",
        }
    }
}

/// What judging one score gave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Judgement {
    /// The score is strictly above the threshold.
    pub alerting: bool,
    /// The threshold it was compared with (in force before the score).
    pub threshold: f64,
}

/// One scale's threshold: its rule, its SPOT state and the value in force.
#[derive(Clone, Debug)]
pub struct Threshold {
    /// The bundle's fixed value.
    fixed: f64,
    config: ThresholdConfig,
    /// The SPOT state (the bundle's calibration, or a saved state); `None` for an old bundle.
    spot: Option<SpotState>,
    /// The value in force.
    value: f64,
    /// Windows left that do not update SPOT (their runs hold an alerting window).
    hold: usize,
    /// The current run of consecutive peaks, learned only if it ends within
    /// [`MAX_LEARNED_PEAK_RUN`] scores (at most that many kept).
    pending: Vec<f64>,
    /// Length of the current run of peaks (it may exceed what `pending` keeps).
    run: usize,
    /// Runs of peaks too long to learn from, since the start.
    held_runs: u64,
}

impl Threshold {
    /// The threshold of `bundle` under `config`. Asking for SPOT of a bundle without a
    /// calibration falls back to the fixed value, with a warning saying how to get SPOT.
    pub fn of_bundle(bundle: &Bundle, config: &ThresholdConfig) -> Threshold {
        let spot = bundle.meta.threshold.spot.clone();
        if spot.is_none() && config.rule == RuleChoice::Spot && config.manual.is_none() {
            tracing::warn!(
                model_id = %bundle.model_id(),
                omega_s = %bundle.omega(),
                "model {} (ω = {} s) has no adaptive-threshold calibration (trained before netanom had it, or from too few validation runs): using its fixed threshold {}; retrain it (netanom train, or learning mode) to use alerts.threshold_rule = \"spot\"",
                bundle.model_id(),
                bundle.omega(),
                bundle.threshold()
            );
        }
        Threshold::new(bundle.threshold(), spot, config)
    }

    /// A threshold from its parts (tests, and [`Threshold::of_bundle`]).
    pub fn new(fixed: f64, spot: Option<SpotState>, config: &ThresholdConfig) -> Threshold {
        let mut t = Threshold {
            fixed,
            config: *config,
            spot,
            value: fixed,
            hold: 0,
            pending: Vec::with_capacity(MAX_LEARNED_PEAK_RUN),
            run: 0,
            held_runs: 0,
        };
        t.refresh();
        t
    }

    /// Which threshold is in force.
    pub fn in_force(&self) -> InForce {
        match (self.config.manual, self.config.rule, &self.spot) {
            (Some(_), _, _) => InForce::Manual,
            (None, RuleChoice::Spot, Some(_)) => InForce::Spot,
            _ => InForce::Fixed,
        }
    }

    /// The value in force: the next window alerts when its score is above it.
    pub fn value(&self) -> f64 {
        self.value
    }

    /// The configuration in force.
    pub fn config(&self) -> &ThresholdConfig {
        &self.config
    }

    /// The SPOT state, when SPOT is in force.
    pub fn spot(&self) -> Option<&SpotState> {
        self.spot
            .as_ref()
            .filter(|_| self.in_force() == InForce::Spot)
    }

    /// Excesses SPOT keeps (0 when it is not in force).
    pub fn excesses(&self) -> usize {
        self.spot().map_or(0, |s| s.excesses.len())
    }

    /// Replaces the SPOT state (one saved by the daemon), after checking it.
    pub fn restore(&mut self, state: SpotState) -> Result<(), String> {
        state.validate().map_err(|e| e.to_string())?;
        self.spot = Some(state);
        self.refresh();
        Ok(())
    }

    /// Takes a new configuration (a reload); the SPOT state is kept.
    pub fn reconfigure(&mut self, config: &ThresholdConfig) {
        self.config = *config;
        self.refresh();
    }

    /// Judges a score against the value in force, then lets SPOT learn from it.
    pub fn judge(&mut self, score: f64) -> Judgement {
        let threshold = self.value;
        let alerting = score > threshold;
        if self.in_force() == InForce::Spot {
            let q = self.config.false_rate;
            if let Some(spot) = self.spot.as_mut() {
                if alerting {
                    spot.alarm(q);
                    self.hold = SEQ_LEN - 1;
                    // A run of peaks that ends in an alert belongs to it.
                    self.pending.clear();
                    self.run = 0;
                } else if self.hold > 0 {
                    self.hold -= 1;
                } else if spot.is_excess(score) {
                    self.run += 1;
                    if self.run <= MAX_LEARNED_PEAK_RUN {
                        self.pending.push(score);
                    } else {
                        if self.run == MAX_LEARNED_PEAK_RUN + 1 {
                            self.held_runs += 1;
                            tracing::debug!(
                                t = spot.t,
                                "a sustained run of peaks: not learned by the adaptive threshold"
                            );
                        }
                        self.pending.clear();
                    }
                } else {
                    // The run of peaks ended short: it was normal, learn it, then this.
                    for s in self.pending.drain(..) {
                        spot.update(s);
                    }
                    self.run = 0;
                    spot.update(score);
                }
                // Every scored window moves the median baseline, an alert too: a median
                // ignores anything shorter than half its window, and follows a drift that
                // alerts (docs/model.md, "Median baseline").
                spot.observe(score);
            }
            self.refresh();
        }
        Judgement {
            alerting,
            threshold,
        }
    }

    /// The window sequence broke: the next runs hold no window of before (a run of peaks in
    /// progress is forgotten, not learned).
    pub fn break_sequence(&mut self) {
        self.hold = 0;
        self.pending.clear();
        self.run = 0;
    }

    /// Runs of peaks too long to learn from (a slow attack under the threshold), since the
    /// start (`netanom_threshold_peak_runs_held`).
    pub fn held_runs(&self) -> u64 {
        self.held_runs
    }

    /// Recomputes the value in force.
    fn refresh(&mut self) {
        self.value = match (self.in_force(), &self.spot) {
            (InForce::Manual, _) => self.config.manual.unwrap_or(self.fixed),
            (InForce::Spot, Some(s)) => {
                let z = s.threshold(self.config.false_rate);
                if z.is_finite() {
                    z
                } else {
                    self.fixed
                }
            }
            _ => self.fixed,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spot::SpotOptions;

    fn state() -> SpotState {
        let scores: Vec<f64> = (0..1000)
            .map(|k| ((k * 7919) % 1000) as f64 / 100.0)
            .collect();
        SpotState::calibrate(&scores, &SpotOptions::default()).unwrap()
    }

    /// The rule in force and its value: SPOT when asked and calibrated, the fixed value
    /// otherwise, a value by hand above both.
    #[test]
    fn rules_in_force() {
        let spot = ThresholdConfig::default();
        let t = Threshold::new(5.0, Some(state()), &spot);
        assert_eq!(t.in_force(), InForce::Spot);
        assert_eq!(t.value(), state().threshold(1e-5));
        assert!(t.value() > 9.9, "{}", t.value());
        let t = Threshold::new(5.0, None, &spot);
        assert_eq!((t.in_force(), t.value()), (InForce::Fixed, 5.0));
        let t = Threshold::new(5.0, Some(state()), &ThresholdConfig::fixed(None));
        assert_eq!((t.in_force(), t.value()), (InForce::Fixed, 5.0));
        assert_eq!(t.excesses(), 0);
        let t = Threshold::new(5.0, Some(state()), &ThresholdConfig::fixed(Some(2.5)));
        assert_eq!((t.in_force(), t.value()), (InForce::Manual, 2.5));
        assert!(ThresholdConfig {
            false_rate: 0.5,
            ..spot
        }
        .validate()
        .is_err());
    }

    /// An alert is judged against the value before it and not learned from; neither are the
    /// two windows after it; the third is.
    #[test]
    fn alerts_and_their_runs_do_not_update() {
        let mut t = Threshold::new(5.0, Some(state()), &ThresholdConfig::default());
        let before = t.spot().unwrap().clone();
        let z = t.value();
        let j = t.judge(1e6);
        assert_eq!(
            j,
            Judgement {
                alerting: true,
                threshold: z
            }
        );
        let after_alert = t.spot().unwrap().clone();
        assert_eq!(
            after_alert, before,
            "nothing learned, nothing imputed before the target allows an alert"
        );
        for _ in 0..2 {
            assert!(!t.judge(9.95).alerting);
            assert_eq!(t.spot().unwrap().n, after_alert.n, "held");
        }
        t.judge(9.95);
        assert_eq!(
            t.spot().unwrap().n,
            after_alert.n,
            "a peak waits for its run to end"
        );
        t.judge(0.0);
        assert_eq!(t.spot().unwrap().n, after_alert.n + 2);
        assert_eq!(t.spot().unwrap().n_t, after_alert.n_t + 1, "9.95 is a peak");
        // A short run of peaks (one odd window lifts three runs) is learned when it ends; a
        // sustained one (a slow scan under the threshold) is not.
        let mut t = Threshold::new(5.0, Some(state()), &ThresholdConfig::default());
        let t_peaks = t.spot().unwrap().t;
        let (peak, calm) = (t_peaks + 0.01, t_peaks / 2.0);
        let n0 = t.spot().unwrap().n;
        for _ in 0..SEQ_LEN {
            assert!(!t.judge(peak).alerting);
        }
        assert_eq!(t.spot().unwrap().n, n0, "pending until the run ends");
        t.judge(calm);
        assert_eq!(t.spot().unwrap().n, n0 + SEQ_LEN as u64 + 1);
        let (n1, nt1, value1) = (t.spot().unwrap().n, t.spot().unwrap().n_t, t.value());
        for _ in 0..40 {
            assert!(!t.judge(peak).alerting);
        }
        assert_eq!(t.held_runs(), 1);
        t.judge(calm);
        assert_eq!(
            t.spot().unwrap().n,
            n1 + 1,
            "only the calm score after the run"
        );
        assert_eq!(t.spot().unwrap().n_t, nt1, "no peak of the sustained run");
        assert!(
            (t.value() - value1).abs() <= 0.01 * value1,
            "{} vs {value1}",
            t.value()
        );
        // The fixed rule never moves.
        let mut f = Threshold::new(5.0, Some(state()), &ThresholdConfig::fixed(None));
        assert!(f.judge(6.0).alerting);
        assert_eq!(f.value(), 5.0);
    }
}
