//! `[learning]`: the daemon trains its own model from the feature history — once when it
//! starts without one (learning mode), and on a schedule (retraining with a safe swap).

use std::time::Duration;

use serde::Deserialize;

use super::window::WindowSettings;
use super::{quoted, Checker};
use crate::model::{Scaling, SEQ_LEN};

/// `[learning]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LearningSettings {
    /// With no model in `model.dir`: record this much history, then train the first model.
    pub learn_for: Option<Duration>,
    /// Retrain this often (`None`: never).
    pub retrain_every: Option<Duration>,
    /// Train on the history of this long before now (the rolling window).
    pub window: Duration,
    /// The most recent history a candidate is not trained on; candidate and running model
    /// are compared on it.
    pub holdout: Duration,
    /// Bundles kept in `model.dir/bundles` (for rollback).
    pub keep_models: usize,
    /// Training options of the daemon's trainings.
    pub epochs: usize,
    pub hidden: usize,
    pub seed: u64,
    /// Feature scaling of the daemon's trainings (`learning.scaling`).
    pub scaling: Scaling,
    /// The adaptive threshold's median baseline of its trainings (`learning.spot_median`;
    /// `None`: off).
    pub spot_median: Option<Duration>,
    /// Small-window smoothing of its trainings, the prior in packets (`learning.smoothing`;
    /// `None`: off, the paper's).
    pub smoothing: Option<u32>,
    /// Load augmentation of its trainings, the largest factor (`learning.load_augment`;
    /// `None`: off, the paper's).
    pub load_augment: Option<u32>,
}

impl LearningSettings {
    /// Training runs of three a background epoch draws at most (docs/history.md).
    pub const DEFAULT_EPOCHS: usize = 30;
}

/// `[learning]` as written, with the defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLearning {
    /// `learning.learn_for`: a duration such as `"1h"`, `"30m"`, `"7d"`.
    learn_for: Option<String>,
    /// `learning.retrain_every`.
    retrain_every: Option<String>,
    /// `learning.window`.
    window: String,
    /// `learning.holdout`.
    holdout: String,
    /// `learning.keep_models`.
    keep_models: i64,
    /// `learning.epochs`.
    epochs: i64,
    /// `learning.hidden`.
    hidden: i64,
    /// `learning.seed`.
    seed: i64,
    /// `learning.scaling`: `"linear"` or `"log"`.
    scaling: String,
    /// `learning.spot_median`: a duration or `"off"`.
    spot_median: String,
    /// `learning.smoothing`: the prior in packets, 0 for off.
    smoothing: i64,
    /// `learning.load_augment`: the largest load factor, 0 for off.
    load_augment: i64,
}

impl Default for RawLearning {
    /// The built-in `[learning]`: no learning mode, no retraining; a week of history with the
    /// last hour held out; three bundles kept; 30 epochs of a 64-unit LSTM; no smoothing, no load
    /// augmentation.
    fn default() -> Self {
        RawLearning {
            learn_for: None,
            retrain_every: None,
            window: "7d".into(),
            holdout: "1h".into(),
            keep_models: 3,
            epochs: LearningSettings::DEFAULT_EPOCHS as i64,
            hidden: 64,
            seed: 1,
            scaling: Scaling::default().as_str().into(),
            spot_median: "off".into(),
            smoothing: 0,
            load_augment: 0,
        }
    }
}

/// A duration such as `90s`, `30m`, `12h`, `7d` (humantime's syntax), at least one second.
pub(super) fn duration(ck: &mut Checker, key: &str, text: &str) -> Option<Duration> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) if d >= Duration::from_secs(1) => Some(d),
        Ok(_) => {
            ck.fail(
                key,
                quoted(text),
                "shorter than a second (expected e.g. 90s, 30m, 12h, 7d)",
            );
            None
        }
        Err(e) => {
            ck.fail(
                key,
                quoted(text),
                format!("not a duration: {e} (expected e.g. 90s, 30m, 12h, 7d)"),
            );
            None
        }
    }
}

/// Applies `--learn-for` (`cli_learn_for`) and validates `raw`; `None` after a problem.
pub(super) fn validate(
    mut raw: RawLearning,
    ck: &mut Checker,
    cli_learn_for: Option<String>,
) -> Option<LearningSettings> {
    let mark = ck.mark();
    if let Some(v) = cli_learn_for {
        raw.learn_for = Some(v.clone());
        ck.set_by_flag("learning.learn_for", "--learn-for");
    }
    let learn_for = raw
        .learn_for
        .as_deref()
        .and_then(|t| duration(ck, "learning.learn_for", t));
    let retrain_every = raw
        .retrain_every
        .as_deref()
        .and_then(|t| duration(ck, "learning.retrain_every", t));
    let window = duration(ck, "learning.window", &raw.window);
    let holdout = duration(ck, "learning.holdout", &raw.holdout);
    if let (Some(w), Some(h)) = (window, holdout) {
        if h >= w {
            ck.fail(
                "learning.holdout",
                quoted(&raw.holdout),
                format!(
                    "not shorter than learning.window ({}): the candidate must have history to train on",
                    raw.window.trim()
                ),
            );
        }
    }
    let keep_models =
        ck.int_range("learning.keep_models", raw.keep_models, 1, 100, "bundles") as usize;
    let epochs = ck.int_range("learning.epochs", raw.epochs, 1, 10_000, "epochs") as usize;
    let hidden = ck.int_range("learning.hidden", raw.hidden, 1, 4096, "units") as usize;
    let seed = ck.int_range("learning.seed", raw.seed, 0, i64::MAX, "") as u64;
    let scaling = Scaling::parse(raw.scaling.trim());
    if scaling.is_none() {
        ck.fail(
            "learning.scaling",
            quoted(&raw.scaling),
            "expected \"linear\" (the paper's min-max) or \"log\" (ln(1 + x) first)",
        );
    }
    let spot_median = match raw.spot_median.trim() {
        "off" => None,
        t => duration(ck, "learning.spot_median", t),
    };
    let smoothing = ck.int_range(
        "learning.smoothing",
        raw.smoothing,
        0,
        1_000_000,
        "packets (0: off)",
    ) as u32;
    let load_augment = if raw.load_augment == 0 {
        0
    } else {
        ck.int_range(
            "learning.load_augment",
            raw.load_augment,
            2,
            100,
            "(a load factor; 0: off)",
        ) as u32
    };
    if !ck.clean_since(mark) {
        return None;
    }
    Some(LearningSettings {
        learn_for,
        retrain_every,
        window: window?,
        holdout: holdout?,
        keep_models,
        epochs,
        hidden,
        seed,
        scaling: scaling?,
        spot_median,
        smoothing: (smoothing > 0).then_some(smoothing),
        load_augment: (load_augment > 0).then_some(load_augment),
    })
}

/// `learning.learn_for` must cover one run of three windows of the longest `window.omega`.
pub(super) fn check_against_window(l: &LearningSettings, w: &WindowSettings, ck: &mut Checker) {
    let (Some(learn_for), Some(scales)) = (l.learn_for, &w.omega) else {
        return;
    };
    let longest = scales.longest();
    if learn_for < longest.duration() * SEQ_LEN as u32 {
        ck.fail(
            "learning.learn_for",
            quoted(&humantime::format_duration(learn_for).to_string()),
            format!(
                "shorter than three windows of {longest} s: a model learns from runs of three windows (expected at least {} s, in practice hours)",
                longest.secs_f64() * SEQ_LEN as f64
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::assert_each_named;

    /// Each invalid `[learning]` value is reported with its key, value and what is allowed.
    #[test]
    fn each_invalid_value_is_named() {
        assert_each_named(&[
            (
                "[learning]\nlearn_for = \"soon\"",
                "learning.learn_for = \"soon\": not a duration",
            ),
            (
                "[learning]\nretrain_every = \"0s\"",
                "learning.retrain_every = \"0s\": shorter than a second",
            ),
            (
                "[learning]\nwindow = \"1h\"\nholdout = \"2h\"",
                "learning.holdout = \"2h\": not shorter than learning.window (1h)",
            ),
            (
                "[learning]\nkeep_models = 0",
                "learning.keep_models = 0: out of range (expected 1 to 100 bundles)",
            ),
            (
                "[learning]\nepochs = 0",
                "learning.epochs = 0: out of range",
            ),
            (
                "[learning]\nspot_median = \"half an hour\"",
                "learning.spot_median = \"half an hour\": not a duration",
            ),
            (
                "[learning]\nscaling = \"ln\"",
                "learning.scaling = \"ln\": expected \"linear\"",
            ),
            (
                "[learning]\nsmoothing = -1",
                "learning.smoothing = -1: out of range (expected 0 to 1000000 packets (0: off))",
            ),
            (
                "[learning]\nload_augment = 1",
                "learning.load_augment = 1: out of range (expected 2 to 100 (a load factor; 0: off))",
            ),
            (
                "[learning]\nlearn = \"1h\"",
                "unknown setting `learning.learn`",
            ),
            (
                "[window]\nomega = 5\n[learning]\nlearn_for = \"12s\"",
                "learning.learn_for = \"12s\": shorter than three windows of 5 s",
            ),
        ]);
    }
}
