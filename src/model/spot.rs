//! Streaming peaks over threshold: an alert threshold for a target false-window rate, from
//! extreme value theory (SPOT and DSPOT: Siffer, Fouque, Termier and Largouët, "Anomaly
//! detection in streams with extreme value theory", KDD 2017).
//!
//! The scores above a high quantile `t` of normal scores (the *peaks*) follow a generalized
//! Pareto distribution (Pickands–Balkema–de Haan). Fitted to the excesses `Y = X − t`
//! (Grimshaw's maximum-likelihood procedure), it gives the score `z_q` that a normal score
//! exceeds with probability `q`:
//!
//! ```text
//! z_q = t + σ/γ · ((q · n / N_t)^(−γ) − 1)      (γ ≠ 0)
//! z_q = t − σ · ln(q · n / N_t)                  (γ = 0)
//! ```
//!
//! `n` scores seen, `N_t` of them above `t`. [`SpotState::calibrate`] starts from the
//! validation scores of training; [`SpotState::update`] adds each later score that did not
//! alert (an excess refits the tail). DSPOT (`depth > 0`) works on the score minus the mean of
//! the last `depth` normal scores, so a slow drift of the whole distribution moves the
//! threshold with it.
//!
//! Median baseline (`median_window > 0`, beyond the paper and SPOT): a score is judged by its
//! ratio to the median score of the last `median_window` scored windows, `x = ln(score /
//! median)`, and SPOT runs on `x`. A network whose load doubles raises every score together;
//! the median follows within half its window and the threshold with it, while an attack
//! shorter than half the window cannot move a median (measured on drifting traffic:
//! docs/experiments.md). Unlike the tail, which learns only from windows that did not alert,
//! the median takes every scored window: it must follow a drift that lifts normal scores
//! above the threshold, which learning only from quiet windows never sees.
//!
//! Bounded memory: at most `capacity` excesses are kept (the oldest is dropped), with the
//! observation number of each, so the tail fraction `N_t / n` is estimated over the same
//! stretch of scores the tail is fitted on. A state is at most `capacity` × 16 bytes plus
//! `depth` × 8 plus `median_window` × 16.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::median::MedianRing;
use super::quantile_sorted;

/// Default quantile level of the peaks threshold `t` (the paper's 0.98).
pub const DEFAULT_LEVEL: f64 = 0.98;
/// Default number of excesses kept.
pub const DEFAULT_CAPACITY: usize = 1000;
/// Fewest calibration scores SPOT starts from.
pub const MIN_CALIBRATION_SCORES: usize = 10;
/// The calibration level is lowered (not below [`LOWEST_LEVEL`]) so that at least this many
/// calibration scores are excesses: a tail fitted on one or two points says nothing.
const MIN_CALIBRATION_EXCESSES: usize = 10;
/// Lowest automatic level of `t`.
const LOWEST_LEVEL: f64 = 0.8;
/// Fewest excesses a generalized Pareto fit is made on; with fewer the tail is taken as
/// exponential (γ = 0, σ = mean excess: the maximum-likelihood fit of that case), which is
/// stable on a handful of points where γ's estimate is not.
pub const MIN_GPD_EXCESSES: usize = 20;
/// Target false-window rates accepted (`alerts.false_rate`).
pub const FALSE_RATE_MIN: f64 = 1e-9;
/// See [`FALSE_RATE_MIN`].
pub const FALSE_RATE_MAX: f64 = 1e-2;

/// A generalized Pareto distribution of excesses: P(Y > y) = (1 + γ y / σ)^(−1/γ).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gpd {
    /// Shape γ (0: exponential tail; > 0 heavy; < 0 bounded at σ / −γ).
    pub gamma: f64,
    /// Scale σ > 0.
    pub sigma: f64,
}

/// The heaviest tail a fit may take. Scores of normal traffic have a light or moderately heavy
/// tail; a shape above 1/2 (infinite variance) on the few dozen peaks SPOT holds at first is
/// a mixture of two regimes (the calibration's peaks and a drifted network's), and its
/// extrapolation to q = 1e-5 ran a 5 s threshold from 2.7 to 225 on one refit. Such a fit is
/// not a candidate; the exponential case always is.
pub const MAX_GAMMA: f64 = 0.5;

/// The longest DSPOT memory (scores): a state file naming more is refused, so a damaged one
/// cannot make the daemon keep an unbounded window of scores.
pub const MAX_DEPTH: usize = 10_000;

/// The longest median baseline, in windows (a day of half-second windows): the same bound for
/// the median's memory.
pub const MAX_MEDIAN_WINDOW: usize = 172_800;

/// Scores at or below this are taken as this for the median baseline's ratio (a perfect
/// reconstruction scores 0; its logarithm must stay finite).
const TINY_SCORE: f64 = 1e-12;

/// |γ| below this is taken as 0 (the exponential formulas, which are its limit).
const GAMMA_ZERO: f64 = 1e-12;

impl Gpd {
    /// The exponential fit (γ = 0, σ = mean): `None` for no excess.
    pub fn exponential(excesses: &[f64]) -> Option<Gpd> {
        if excesses.is_empty() {
            return None;
        }
        let mean = excesses.iter().sum::<f64>() / excesses.len() as f64;
        (mean > 0.0 && mean.is_finite()).then_some(Gpd {
            gamma: 0.0,
            sigma: mean,
        })
    }

    /// Maximum-likelihood fit to `excesses` (all > 0) by Grimshaw's procedure: the roots of
    /// `w(x) = u(x)·v(x) − 1` in `(−1/Y_max, 0)` and `(0, 2(Ȳ − Y_min)/Y_min²)` and the
    /// exponential case are candidates, the one of highest likelihood wins. `None` when the
    /// excesses cannot be fitted (none, or one not positive and finite).
    pub fn fit(excesses: &[f64]) -> Option<Gpd> {
        let exp = Gpd::exponential(excesses)?;
        if excesses.iter().any(|y| !(*y > 0.0 && y.is_finite())) {
            return None;
        }
        let n = excesses.len() as f64;
        let (mut ymin, mut ymax) = (f64::INFINITY, 0.0f64);
        for &y in excesses {
            ymin = ymin.min(y);
            ymax = ymax.max(y);
        }
        let mean = exp.sigma;
        let w = |x: f64| -> f64 {
            let (mut u, mut v) = (0.0, 0.0);
            for &y in excesses {
                let s = 1.0 + x * y;
                if s <= 0.0 {
                    return f64::NAN;
                }
                u += 1.0 / s;
                v += (x * y).ln_1p();
            }
            (u / n) * (1.0 + v / n) - 1.0
        };
        // Grid points inside each interval (x = 0 is always a root and is the exponential
        // case); w changes sign around each other root.
        let mut grid: Vec<f64> = [
            0.999_999, 0.9999, 0.999, 0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1,
            0.05, 0.01, 1e-3, 1e-4, 1e-5, 1e-6,
        ]
        .iter()
        .map(|f| -f / ymax)
        .collect();
        // Geometric from x·Y_max = 1e-6 up to the bound, three points a decade.
        let upper = (2.0 * (mean - ymin) / (ymin * ymin)).min(1e9 / mean);
        let lower = 1e-6 / ymax;
        if upper > lower && upper.is_finite() {
            let steps = ((upper / lower).log10() * 3.0).ceil().max(1.0) as usize;
            grid.extend((0..=steps).map(|k| lower * (upper / lower).powf(k as f64 / steps as f64)));
        }
        let mut candidates = vec![exp];
        let values: Vec<(f64, f64)> = grid.iter().map(|&x| (x, w(x))).collect();
        for pair in values.windows(2) {
            let ((a, fa), (b, fb)) = (pair[0], pair[1]);
            if !(fa.is_finite() && fb.is_finite()) || (a < 0.0) != (b < 0.0) {
                continue;
            }
            if fa == 0.0 || fa * fb < 0.0 {
                let mut conv = Relative { rel: 1e-12 };
                let root = if fa == 0.0 {
                    Ok(a)
                } else {
                    roots::find_root_brent(a, b, w, &mut conv)
                };
                if let Ok(x) = root {
                    let gamma = excesses.iter().map(|&y| (x * y).ln_1p()).sum::<f64>() / n;
                    let sigma = gamma / x;
                    if gamma.is_finite() && gamma <= MAX_GAMMA && sigma > 0.0 && sigma.is_finite() {
                        candidates.push(Gpd { gamma, sigma });
                    }
                }
            }
        }
        candidates
            .into_iter()
            .map(|g| (g.log_likelihood(excesses), g))
            .filter(|(l, _)| l.is_finite())
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, g)| g)
    }

    /// The log-likelihood of `excesses` (−∞ outside the support).
    pub fn log_likelihood(&self, excesses: &[f64]) -> f64 {
        let n = excesses.len() as f64;
        if self.sigma.is_nan() || self.sigma <= 0.0 {
            return f64::NEG_INFINITY;
        }
        if self.gamma.abs() < GAMMA_ZERO {
            return -n * self.sigma.ln() - excesses.iter().sum::<f64>() / self.sigma;
        }
        let mut sum = 0.0;
        for &y in excesses {
            let s = 1.0 + self.gamma * y / self.sigma;
            if s <= 0.0 {
                return f64::NEG_INFINITY;
            }
            sum += s.ln();
        }
        -n * self.sigma.ln() - (1.0 + 1.0 / self.gamma) * sum
    }

    /// The excess exceeded with probability `p` (0 for p ≥ 1).
    pub fn excess_quantile(&self, p: f64) -> f64 {
        if p >= 1.0 {
            return 0.0;
        }
        if self.gamma.abs() < GAMMA_ZERO {
            -self.sigma * p.ln()
        } else {
            self.sigma / self.gamma * (p.powf(-self.gamma) - 1.0)
        }
    }
}

/// Brent's stopping rule relative to the bracket's size (the roots here span many decades).
struct Relative {
    rel: f64,
}

impl roots::Convergency<f64> for Relative {
    /// Never by the value alone: w is small near 0 anyway.
    fn is_root_found(&mut self, y: f64) -> bool {
        y == 0.0
    }
    /// The bracket is narrower than `rel` times its position.
    fn is_converged(&mut self, a: f64, b: f64) -> bool {
        (a - b).abs() <= self.rel * a.abs().max(b.abs())
    }
    /// 200 steps: Brent converges in a few dozen.
    fn is_iteration_limit_reached(&mut self, iter: usize) -> bool {
        iter >= 200
    }
}

/// How a SPOT state is calibrated (training options, stored in the state).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpotOptions {
    /// Quantile level of the peaks threshold `t` among the calibration scores (lowered on
    /// small calibration sets so that at least 10 are excesses, not below 0.8).
    pub level: f64,
    /// Excesses kept (the memory bound).
    pub capacity: usize,
    /// DSPOT: scores relative to the mean of the last `depth` normal scores; 0 is SPOT.
    pub depth: usize,
    /// Median baseline: scores judged by their ratio to the median of the last
    /// `median_window` scored windows; 0 is off. Exclusive with `depth`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub median_window: usize,
}

impl Default for SpotOptions {
    /// SPOT at level 0.98 keeping 1,000 excesses, no baseline.
    fn default() -> Self {
        SpotOptions {
            level: DEFAULT_LEVEL,
            capacity: DEFAULT_CAPACITY,
            depth: 0,
            median_window: 0,
        }
    }
}

impl SpotOptions {
    /// Checks the ranges: level in [0.5, 1), capacity 10 ..= 100,000, depth ≤ 10,000.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.5..1.0).contains(&self.level) {
            return Err(format!(
                "SPOT level {} is outside [0.5, 1) (the quantile of calibration scores above which scores are peaks)",
                self.level
            ));
        }
        if !(10..=100_000).contains(&self.capacity) {
            return Err(format!(
                "SPOT capacity {} is outside 10 to 100000 excesses",
                self.capacity
            ));
        }
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "DSPOT depth {} is above {MAX_DEPTH} scores",
                self.depth
            ));
        }
        if self.median_window > MAX_MEDIAN_WINDOW {
            return Err(format!(
                "median baseline of {} windows is above {MAX_MEDIAN_WINDOW}",
                self.median_window
            ));
        }
        if self.depth > 0 && self.median_window > 0 {
            return Err("a DSPOT depth and a median baseline cannot be used together".into());
        }
        Ok(())
    }

    /// These options with a median baseline of `seconds` of windows of `omega_s` seconds (at
    /// least three windows; 0 seconds turns it off).
    pub fn with_median_seconds(mut self, seconds: f64, omega_s: f64) -> SpotOptions {
        self.median_window = if seconds > 0.0 && omega_s > 0.0 {
            ((seconds / omega_s).round() as usize).clamp(3, MAX_MEDIAN_WINDOW)
        } else {
            0
        };
        self
    }
}

/// Why a SPOT state could not be calibrated or loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpotError {
    /// Too few calibration scores.
    #[error("{found} calibration scores, at least {need} are needed for SPOT")]
    TooFewScores { found: usize, need: usize },
    /// No calibration score lies above the peaks threshold (all equal).
    #[error("no calibration score lies above the peaks threshold {t} (the scores are all equal)")]
    NoExcess { t: f64 },
    /// A calibration score is not finite.
    #[error("calibration score #{index} is {value}, not a finite number")]
    NotFinite { index: usize, value: f64 },
    /// A loaded state breaks an invariant.
    #[error("invalid SPOT state: {0}")]
    Invalid(String),
}

/// The streaming state of one scale's threshold (serialised in `model.json` and in the
/// daemon's state file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpotState {
    /// Quantile level of the calibration scores that `t` is.
    pub level: f64,
    /// The peaks threshold: scores (minus the DSPOT baseline) above it are excesses.
    pub t: f64,
    /// Observations so far: calibration scores, then every score that updated the state.
    pub n: u64,
    /// Of those, the excesses over `t`.
    pub n_t: u64,
    /// Observations that were calibration scores (the first ones).
    pub n_calibration: u64,
    /// Excesses imputed for alerts ([`SpotState::alarm`]).
    pub imputed: u64,
    /// Most excesses kept.
    pub capacity: usize,
    /// The kept excesses (score − baseline − t > 0), oldest first.
    pub excesses: VecDeque<f64>,
    /// The observation number (0-based) of each kept excess.
    pub excess_seq: VecDeque<u64>,
    /// The tail fitted to `excesses`.
    pub tail: Gpd,
    /// DSPOT depth (0: SPOT).
    pub depth: usize,
    /// DSPOT: the last `depth` normal scores, oldest first.
    pub recent: VecDeque<f64>,
    /// Median baseline: windows it covers (0: off; not written then, so a state without it
    /// reads and writes as before).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub median_window: usize,
    /// Median baseline: the last `median_window` scores (every scored window), oldest first.
    #[serde(default, skip_serializing_if = "MedianRing::is_empty")]
    pub median: MedianRing,
}

/// For serde: a zero is left out.
fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl SpotState {
    /// Calibrates on normal `scores` in time order (the validation scores of training).
    pub fn calibrate(scores: &[f64], opts: &SpotOptions) -> Result<SpotState, SpotError> {
        opts.validate().map_err(SpotError::Invalid)?;
        if let Some((index, &value)) = scores.iter().enumerate().find(|(_, s)| !s.is_finite()) {
            return Err(SpotError::NotFinite { index, value });
        }
        let need = MIN_CALIBRATION_SCORES + opts.depth;
        if scores.len() < need {
            return Err(SpotError::TooFewScores {
                found: scores.len(),
                need,
            });
        }
        // DSPOT: the first `depth` scores only seed the moving mean.
        let mut recent: VecDeque<f64> = scores[..opts.depth].iter().copied().collect();
        let mut detrended = Vec::with_capacity(scores.len() - opts.depth);
        let mut median = MedianRing::default();
        if opts.median_window > 0 {
            // The first window's scores are judged against their own median (a rolling one
            // would judge the first against itself), the later ones against the median of the
            // window before them, as at detection.
            let first = scores.len().min(opts.median_window);
            median = MedianRing::from_values(scores[..first].iter().copied(), opts.median_window);
            let m0 = median.median().unwrap_or(1.0).max(TINY_SCORE);
            for (i, &s) in scores.iter().enumerate() {
                let m = if i < first {
                    m0
                } else {
                    let m = median.median().unwrap_or(1.0).max(TINY_SCORE);
                    median.push(s, opts.median_window);
                    m
                };
                detrended.push((s.max(TINY_SCORE) / m).ln());
            }
        } else {
            for &s in &scores[opts.depth..] {
                let base = mean(&recent);
                detrended.push(s - base);
                if opts.depth > 0 {
                    recent.pop_front();
                    recent.push_back(s);
                }
            }
        }
        let n = detrended.len();
        let level = opts
            .level
            .min((1.0 - MIN_CALIBRATION_EXCESSES as f64 / n as f64).max(LOWEST_LEVEL));
        let mut sorted = detrended.clone();
        sorted.sort_by(f64::total_cmp);
        let t = quantile_sorted(&sorted, level).unwrap_or(f64::NAN);
        let mut state = SpotState {
            level,
            t,
            n: n as u64,
            n_t: 0,
            n_calibration: n as u64,
            imputed: 0,
            capacity: opts.capacity,
            excesses: VecDeque::new(),
            excess_seq: VecDeque::new(),
            tail: Gpd {
                gamma: 0.0,
                sigma: 1.0,
            },
            depth: opts.depth,
            recent,
            median_window: opts.median_window,
            median,
        };
        for (i, &x) in detrended.iter().enumerate() {
            if x > t {
                state.push_excess(x - t, i as u64);
            }
        }
        if state.excesses.is_empty() {
            return Err(SpotError::NoExcess { t });
        }
        state.refit();
        Ok(state)
    }

    /// The DSPOT baseline (mean of the last `depth` normal scores); 0 for SPOT.
    pub fn baseline(&self) -> f64 {
        mean(&self.recent)
    }

    /// The median baseline in force (the median of the last scores); `None` when off.
    pub fn median_baseline(&self) -> Option<f64> {
        (self.median_window > 0).then(|| self.median.median().unwrap_or(1.0).max(TINY_SCORE))
    }

    /// The value SPOT works on for a score: its log-ratio to the median baseline, or the
    /// score minus the DSPOT baseline (the score itself for plain SPOT).
    fn to_x(&self, score: f64) -> f64 {
        match self.median_baseline() {
            Some(m) => (score.max(TINY_SCORE) / m).ln(),
            None => score - self.baseline(),
        }
    }

    /// The score of a working value (the inverse of [`SpotState::to_x`]).
    fn score_of_x(&self, x: f64) -> f64 {
        match self.median_baseline() {
            Some(m) => m * x.exp(),
            None => x + self.baseline(),
        }
    }

    /// Records a scored window's score in the median baseline (every scored window, alerts
    /// included; nothing when the baseline is off).
    pub fn observe(&mut self, score: f64) {
        if self.median_window > 0 {
            self.median.push(score, self.median_window);
        }
    }

    /// The share of observations above `t`, over the stretch the kept excesses come from.
    pub fn tail_fraction(&self) -> f64 {
        let full = self.excesses.len() >= self.capacity && self.n_t > self.capacity as u64;
        match (full, self.excess_seq.front()) {
            (true, Some(&first)) => {
                self.excesses.len() as f64 / (self.n.saturating_sub(first)).max(1) as f64
            }
            _ => self.n_t as f64 / self.n.max(1) as f64,
        }
    }

    /// The alert threshold for a false-window rate `q`: a normal score exceeds it with
    /// probability `q`.
    pub fn threshold(&self, q: f64) -> f64 {
        let p = q / self.tail_fraction();
        self.score_of_x(self.t + self.tail.excess_quantile(p))
    }

    /// True when `score` would be an excess over the peaks threshold `t` (after the DSPOT
    /// baseline).
    pub fn is_excess(&self, score: f64) -> bool {
        score.is_finite() && self.to_x(score) > self.t
    }

    /// Adds a normal score (one that did not alert): an excess over `t` refits the tail.
    pub fn update(&mut self, score: f64) {
        if !score.is_finite() {
            return;
        }
        let x = self.to_x(score);
        let seq = self.n;
        self.n += 1;
        if x > self.t {
            self.push_excess(x - self.t, seq);
            self.refit();
        }
        if self.depth > 0 {
            if self.recent.len() >= self.depth {
                self.recent.pop_front();
            }
            self.recent.push_back(score);
        }
    }

    /// A score above the threshold for rate `q` (an alert): its value is never learned (an
    /// attack must not raise the threshold). But normal scores exceed the threshold too, a
    /// share `q` of them, and a tail fitted only to what stayed below it is biased lighter,
    /// which lowers the threshold, which hides more of the tail: on a stream of normal scores
    /// this feeds itself (measured: 6.6 × q after 200,000 scores at q = 1e-3, level 0.98).
    /// So while alerts come no faster than the target allows (`q` × the scores seen since
    /// calibration, plus one once that is at least one), each adds in its place a value of the fitted tail beyond the threshold;
    /// beyond that budget (an attack) alerts add nothing. No alert is imputed before the
    /// target allows one: an early alert is most likely an attack, and on a small calibration
    /// (a 5 s scale trained on minutes: ten peaks) one imputed value far out in the tail
    /// would swing the fit (measured: 4.6 to 5,500 once the fit passed 20 peaks).
    pub fn alarm(&mut self, q: f64) {
        let allowed = q * self.n.saturating_sub(self.n_calibration) as f64;
        // One more than the expected count once one is expected (the rate of alerts runs a
        // little above q while the imputed values are few).
        let budget = if allowed >= 1.0 {
            allowed.floor() as u64 + 1
        } else {
            0
        };
        if self.imputed >= budget {
            return;
        }
        let c = self.tail.excess_quantile(q / self.tail_fraction());
        let g = self.tail;
        // Y − c | Y > c is a GPD(γ, σ + γ c): its median.
        let sigma_c = g.sigma + g.gamma * c;
        if !(c > 0.0 && sigma_c > 0.0) {
            return;
        }
        // Spread over the tail beyond (a golden-ratio sequence of survival probabilities),
        // so that the imputed excesses have the fitted tail's shape, not just its middle.
        let u = (0.5 + self.imputed as f64 * 0.618_033_988_749_894_9)
            .fract()
            .max(1e-9);
        let beyond = Gpd {
            gamma: g.gamma,
            sigma: sigma_c,
        }
        .excess_quantile(u);
        let y = c + beyond;
        if !(y > 0.0 && y.is_finite()) {
            return;
        }
        self.imputed += 1;
        let seq = self.n;
        self.n += 1;
        self.push_excess(y, seq);
        self.refit();
    }

    /// Keeps an excess (dropping the oldest when full).
    fn push_excess(&mut self, y: f64, seq: u64) {
        if self.excesses.len() >= self.capacity {
            self.excesses.pop_front();
            self.excess_seq.pop_front();
        }
        self.excesses.push_back(y);
        self.excess_seq.push_back(seq);
        self.n_t += 1;
    }

    /// Fits the tail to the kept excesses: a generalized Pareto distribution from
    /// [`MIN_GPD_EXCESSES`] on, exponential below (or when the fit fails).
    fn refit(&mut self) {
        let y = self.excesses.make_contiguous();
        let fit = if y.len() >= MIN_GPD_EXCESSES {
            Gpd::fit(y).or_else(|| Gpd::exponential(y))
        } else {
            Gpd::exponential(y)
        };
        if let Some(g) = fit {
            self.tail = g;
        }
    }

    /// Checks every invariant of a state read from a file.
    pub fn validate(&self) -> Result<(), SpotError> {
        let bad = |s: String| Err(SpotError::Invalid(s));
        if !(self.level > 0.0 && self.level < 1.0) {
            return bad(format!("level {} is outside (0, 1)", self.level));
        }
        if !self.t.is_finite() {
            return bad(format!("t = {} is not finite", self.t));
        }
        if !(1..=100_000).contains(&self.capacity) {
            return bad(format!("capacity {} is outside 1 to 100000", self.capacity));
        }
        if self.excesses.is_empty()
            || self.excesses.len() > self.capacity
            || self.excesses.len() != self.excess_seq.len()
        {
            return bad(format!(
                "{} excesses and {} observation numbers (capacity {}, at least 1 needed)",
                self.excesses.len(),
                self.excess_seq.len(),
                self.capacity
            ));
        }
        if self.n_t > self.n
            || (self.excesses.len() as u64) > self.n_t
            || self.n_calibration > self.n
            || self.imputed > self.n_t
        {
            return bad(format!(
                "n = {}, n_t = {}, {} kept: expected kept ≤ n_t ≤ n",
                self.n,
                self.n_t,
                self.excesses.len()
            ));
        }
        if let Some(y) = self.excesses.iter().find(|y| !(**y > 0.0 && y.is_finite())) {
            return bad(format!("excess {y} is not a positive finite number"));
        }
        let increasing = self
            .excess_seq
            .iter()
            .zip(self.excess_seq.iter().skip(1))
            .all(|(a, b)| a < b);
        if !increasing || self.excess_seq.back().is_some_and(|&s| s >= self.n) {
            return bad("the excesses' observation numbers are not increasing below n".into());
        }
        if !(self.tail.sigma > 0.0 && self.tail.sigma.is_finite() && self.tail.gamma.is_finite()) {
            return bad(format!(
                "tail γ = {}, σ = {}: expected finite values, σ > 0",
                self.tail.gamma, self.tail.sigma
            ));
        }
        if self.depth > MAX_DEPTH {
            return bad(format!(
                "DSPOT depth {} is above {MAX_DEPTH} scores",
                self.depth
            ));
        }
        if self.median_window > MAX_MEDIAN_WINDOW
            || (self.median_window > 0 && self.depth > 0)
            || self.median.len() > self.median_window
            || (self.median_window > 0 && self.median.is_empty())
            || self.median.values().any(|s| !s.is_finite())
        {
            return bad(format!(
                "median baseline of {} windows holding {} scores (at most {MAX_MEDIAN_WINDOW} windows, not with a DSPOT depth, at least one finite score)",
                self.median_window,
                self.median.len()
            ));
        }
        if self.recent.len() > self.depth || self.recent.iter().any(|s| !s.is_finite()) {
            return bad(format!(
                "{} recent scores for a DSPOT depth of {} (or one not finite)",
                self.recent.len(),
                self.depth
            ));
        }
        Ok(())
    }
}

/// Mean of `v` (0 for none).
fn mean(v: &VecDeque<f64>) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SplitMix64;

    /// `n` draws of a GPD(γ, σ) by inversion.
    fn gpd_sample(n: usize, gamma: f64, sigma: f64, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|_| {
                let u = 1.0 - rng.next_f64(); // (0, 1]
                if gamma == 0.0 {
                    -sigma * u.ln()
                } else {
                    sigma / gamma * (u.powf(-gamma) - 1.0)
                }
            })
            .collect()
    }

    /// A GPD sample of known parameters: the fit finds them, and the 1e-3 quantile it gives
    /// is the true one within a few per cent.
    #[test]
    fn grimshaw_recovers_known_parameters() {
        for (gamma, sigma) in [(0.25, 2.0), (-0.2, 1.0), (0.0, 0.5)] {
            let y = gpd_sample(20_000, gamma, sigma, 7);
            let g = Gpd::fit(&y).unwrap();
            assert!(
                (g.gamma - gamma).abs() < 0.04,
                "γ {gamma}: fitted {} (σ {})",
                g.gamma,
                g.sigma
            );
            assert!(
                (g.sigma / sigma - 1.0).abs() < 0.05,
                "σ {sigma}: fitted {}",
                g.sigma
            );
            let truth = Gpd { gamma, sigma }.excess_quantile(1e-3);
            let fitted = g.excess_quantile(1e-3);
            assert!(
                (fitted / truth - 1.0).abs() < 0.1,
                "γ {gamma}: quantile {fitted} vs {truth}"
            );
            // The winner is at least as likely as the truth (it is the maximum).
            assert!(g.log_likelihood(&y) >= Gpd { gamma, sigma }.log_likelihood(&y) - 1e-6);
        }
    }

    /// Exact small cases: the exponential fit is the mean; known quantile formulas.
    #[test]
    fn exponential_fit_and_quantiles() {
        let g = Gpd::exponential(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(
            g,
            Gpd {
                gamma: 0.0,
                sigma: 2.0
            }
        );
        assert!((g.excess_quantile(0.01) - 2.0 * 100f64.ln()).abs() < 1e-12);
        let h = Gpd {
            gamma: 0.5,
            sigma: 1.0,
        };
        // σ/γ (p^-γ − 1) = 2 (10 − 1) = 18 at p = 0.01.
        assert!((h.excess_quantile(0.01) - 18.0).abs() < 1e-9);
        assert_eq!(h.excess_quantile(1.5), 0.0);
        assert_eq!(Gpd::exponential(&[]), None);
        assert_eq!(Gpd::fit(&[1.0, -1.0]), None);
        assert_eq!(
            Gpd {
                gamma: -0.5,
                sigma: 1.0
            }
            .log_likelihood(&[3.0]),
            f64::NEG_INFINITY,
            "beyond the bounded tail's end"
        );
    }

    /// On an i.i.d. stream the share of alerts is near the target rate, and the threshold
    /// near the true quantile; a burst of attack scores does not move it.
    #[test]
    fn false_window_rate_on_an_iid_stream_is_near_the_target() {
        // Lognormal scores e^(0.5 Z).
        let mut rng = SplitMix64::new(11);
        let mut draw = move || {
            let u = rng.next_f64().max(1e-300);
            let v = rng.next_f64();
            let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
            (0.5 * z).exp()
        };
        let calibration: Vec<f64> = (0..5_000).map(|_| draw()).collect();
        let opts = SpotOptions {
            capacity: 500,
            ..SpotOptions::default()
        };
        let mut s = SpotState::calibrate(&calibration, &opts).unwrap();
        assert_eq!((s.n, s.n_t, s.n_calibration), (5_000, 100, 5_000));
        // A demanding rate (q / 0.02 = 5 % of the tail lies above the threshold): without
        // the imputation of `alarm` the rate ran away to 6.6 × q here.
        let q = 1e-3;
        // The true 1 − q quantile of e^(0.5 Z): exp(0.5 × 3.0902).
        let truth = (0.5 * 3.090_232_306_167_8_f64).exp();
        let z0 = s.threshold(q);
        assert!((z0 / truth - 1.0).abs() < 0.1, "calibrated {z0} vs {truth}");
        let (mut alerts, total) = (0u64, 200_000u64);
        for _ in 0..total {
            let x = draw();
            if x > s.threshold(q) {
                alerts += 1;
                s.alarm(q);
            } else {
                s.update(x);
            }
        }
        let rate = alerts as f64 / total as f64;
        assert!(
            (0.6 * q..1.6 * q).contains(&rate),
            "false-window rate {rate} for a target of {q}"
        );
        assert!(
            s.excesses.len() == 500 && s.n_t > 3_000,
            "{} {}",
            s.excesses.len(),
            s.n_t
        );
        s.validate().unwrap();
        let z = s.threshold(q);
        assert!((z / truth - 1.0).abs() < 0.1, "streamed {z} vs {truth}");
        // An attack: 5,000 alerts in a row add at most the budget's worth of excesses.
        let imputed = s.imputed;
        for _ in 0..5_000 {
            s.alarm(q);
        }
        assert!(s.imputed <= imputed + 1, "{} after {imputed}", s.imputed);
        assert!((s.threshold(q) / z - 1.0).abs() < 0.05);
    }

    /// DSPOT follows a drift of the whole distribution; SPOT alerts on it.
    #[test]
    fn dspot_follows_a_drift() {
        let mut rng = SplitMix64::new(3);
        let mut noise = move || rng.next_f64();
        let calibration: Vec<f64> = (0..2_000).map(|_| 10.0 + noise()).collect();
        let d = SpotOptions {
            depth: 50,
            ..SpotOptions::default()
        };
        let mut dspot = SpotState::calibrate(&calibration, &d).unwrap();
        let mut spot = SpotState::calibrate(&calibration, &SpotOptions::default()).unwrap();
        let (mut a_d, mut a_s) = (0, 0);
        for k in 0..20_000 {
            let x = 10.0 + k as f64 * 1e-3 + noise();
            if x > dspot.threshold(1e-4) {
                a_d += 1;
                dspot.alarm(1e-4);
            } else {
                dspot.update(x);
            }
            if x > spot.threshold(1e-4) {
                a_s += 1;
                spot.alarm(1e-4);
            } else {
                spot.update(x);
            }
        }
        assert!(a_d < 20, "DSPOT alerted on {a_d} drifting windows");
        assert!(a_s > 1_000, "SPOT alerted on only {a_s} drifting windows");
        assert_eq!(dspot.recent.len(), 50);
        dspot.validate().unwrap();
    }

    /// Small calibration sets lower the level so that 10 scores are excesses; too few or
    /// equal scores are errors naming why.
    #[test]
    fn small_and_degenerate_calibrations() {
        let s: Vec<f64> = (0..27).map(|k| k as f64).collect();
        let st = SpotState::calibrate(&s, &SpotOptions::default()).unwrap();
        assert!((st.level - 0.8).abs() < 1e-12, "{}", st.level);
        assert_eq!(st.n_t, 6); // 21 ..= 26 above t = 20.8
        assert_eq!(st.tail.gamma, 0.0, "exponential below 20 excesses");
        let s: Vec<f64> = (0..300).map(|k| k as f64).collect();
        let st = SpotState::calibrate(&s, &SpotOptions::default()).unwrap();
        assert!((st.level - (1.0 - 10.0 / 300.0)).abs() < 1e-12);
        assert_eq!(st.n_t, 10);
        assert_eq!(
            SpotState::calibrate(&[1.0; 5], &SpotOptions::default()).unwrap_err(),
            SpotError::TooFewScores { found: 5, need: 10 }
        );
        assert!(matches!(
            SpotState::calibrate(&[2.0; 50], &SpotOptions::default()).unwrap_err(),
            SpotError::NoExcess { .. }
        ));
        let mut bad = vec![1.0; 50];
        bad[3] = f64::NAN;
        assert!(SpotState::calibrate(&bad, &SpotOptions::default())
            .unwrap_err()
            .to_string()
            .contains("#3"));
    }

    /// The median baseline follows scores that all rise together (a busier network) where
    /// plain SPOT alerts on the drift, still alerts on an attack shorter than half its
    /// window, which does not move it; its state round-trips and validates.
    #[test]
    fn median_baseline_follows_a_multiplicative_drift_but_not_an_attack() {
        // Normal scores: log-normal around 1, their scale tripling over the stream (load
        // rising): every score rises together, as the model's errors do on a busier network.
        let mut rng = SplitMix64::new(11);
        let mut normal = move |scale: f64| {
            // Box–Muller: a log-normal error around `scale`.
            let (u, v) = (1.0 - rng.next_f64(), rng.next_f64());
            let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
            scale * (0.3 * z).exp()
        };
        let calibration: Vec<f64> = (0..2_000).map(|_| normal(1.0)).collect();
        let m = SpotOptions::default().with_median_seconds(500.0, 1.0);
        assert_eq!(m.median_window, 500);
        let mut med = SpotState::calibrate(&calibration, &m).unwrap();
        let mut spot = SpotState::calibrate(&calibration, &SpotOptions::default()).unwrap();
        assert_eq!(
            med.median.len(),
            500,
            "seeded with the calibration's last scores"
        );
        let q = 1e-4;
        let (mut a_m, mut a_s) = (0, 0);
        let judge = |st: &mut SpotState, x: f64| -> bool {
            let alert = x > st.threshold(q);
            if alert {
                st.alarm(q);
            } else {
                st.update(x);
            }
            st.observe(x);
            alert
        };
        for k in 0..20_000 {
            let x = normal(1.0 + 2.0 * k as f64 / 20_000.0);
            a_m += usize::from(judge(&mut med, x));
            a_s += usize::from(judge(&mut spot, x));
        }
        // q × 20,000 = 2 expected; SPOT, whose threshold learns only from what stayed under
        // it, lags the rise.
        assert!(
            a_m <= 10,
            "the median baseline alerted on {a_m} drifting windows"
        );
        assert!(a_s >= 50, "SPOT alerted on only {a_s} drifting windows");
        let base = med.median_baseline().unwrap();
        assert!((2.5..3.5).contains(&base), "the median followed to {base}");
        // An attack: 100 windows (a fifth of the median's window) at 30 × the normal level
        // alert every one, and move the median only to a higher rank of the normal scores.
        let mut hits = 0;
        for _ in 0..100 {
            hits += usize::from(judge(&mut med, 90.0));
        }
        assert_eq!(hits, 100);
        let after = med.median_baseline().unwrap();
        assert!(
            after < base * 1.2,
            "the attack moved the median from {base} to {after}"
        );
        med.validate().unwrap();
        let back: SpotState = serde_json::from_str(&serde_json::to_string(&med).unwrap()).unwrap();
        assert_eq!(back, med);
        assert_eq!(back.threshold(q), med.threshold(q));
        // A state whose ring is longer than its window, or with a DSPOT depth too, is refused.
        let mut bad = med.clone();
        bad.median_window = 10;
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("median baseline"));
        let mut bad = med;
        bad.depth = 5;
        assert!(bad.validate().is_err());
        assert!(SpotOptions { depth: 5, ..m }
            .validate()
            .unwrap_err()
            .contains("together"));
    }

    /// A state survives JSON exactly; a tampered one fails validation naming the invariant.
    #[test]
    fn state_round_trips_and_validates() {
        let y = gpd_sample(3_000, 0.1, 1.0, 5);
        let mut st = SpotState::calibrate(&y, &SpotOptions::default()).unwrap();
        for x in gpd_sample(500, 0.1, 1.0, 6) {
            st.update(x);
        }
        let json = serde_json::to_string(&st).unwrap();
        let back: SpotState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, st);
        assert_eq!(back.threshold(1e-5), st.threshold(1e-5));
        back.validate().unwrap();
        let mut t = st.clone();
        t.excess_seq.pop_back();
        assert!(t
            .validate()
            .unwrap_err()
            .to_string()
            .contains("observation numbers"));
        let mut t = st.clone();
        t.n_t = t.n + 1;
        assert!(t.validate().is_err());
        let mut t = st;
        t.excesses[0] = -1.0;
        assert!(t.validate().unwrap_err().to_string().contains("positive"));
    }
}
