//! `[window]`: how the packet stream is cut into windows (ω itself comes from the model).

use std::path::Path;

use serde::Deserialize;

use super::{show_value, Checker, Problem, SettingsError};
use crate::window::{Scales, WindowConfig};

/// `[window]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowSettings {
    /// ω (or several, `"0.5,5"`) if configured; it must then equal the model's.
    pub omega: Option<Scales>,
    /// Longest run of empty windows emitted for a gap; a longer jump is collapsed.
    pub max_gap_windows: u64,
    /// How many top talkers of each kind a window reports.
    pub top_k: usize,
}

impl WindowSettings {
    /// One aggregator's settings per scale of a model (in `model_dir`) trained with the window
    /// lengths `model_scales`; an error if `window.omega` is set to something else.
    pub fn configs(
        &self,
        model_scales: &Scales,
        model_dir: &Path,
    ) -> Result<Vec<WindowConfig>, SettingsError> {
        if let Some(configured) = &self.omega {
            if configured != model_scales {
                return Err(SettingsError::Invalid(vec![Problem {
                    key: "window.omega".into(),
                    value: configured.to_string(),
                    reason: format!(
                        "does not match the model's window length of {model_scales} s (model.dir = {:?}); ω comes from the model: remove window.omega or use a model trained with this ω",
                        model_dir.display().to_string(),
                    ),
                }]));
            }
        }
        Ok(model_scales
            .omegas()
            .iter()
            .map(|&omega| WindowConfig {
                omega,
                max_gap_windows: self.max_gap_windows,
                top_k: self.top_k,
            })
            .collect())
    }
}

/// `[window]` as written, with the defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawWindow {
    /// `window.omega`: an integer, a float or a string of seconds; checked in [`validate`].
    omega: Option<config::Value>,
    /// `window.max_gap_windows`.
    max_gap_windows: i64,
    /// `window.top_k`.
    top_k: i64,
}

impl Default for RawWindow {
    /// The built-in `[window]`: ω from the model, the aggregator's default gap, 5 talkers.
    fn default() -> Self {
        RawWindow {
            omega: None,
            max_gap_windows: WindowConfig::DEFAULT_MAX_GAP_WINDOWS as i64,
            top_k: 5,
        }
    }
}

/// Validates `raw`; `None` after a problem.
pub(super) fn validate(raw: RawWindow, ck: &mut Checker) -> Option<WindowSettings> {
    let mark = ck.mark();
    let omega = match &raw.omega {
        None => None,
        Some(v) => match omega_text(v).map(|t| t.parse::<Scales>()) {
            Some(Ok(o)) => Some(o),
            Some(Err(e)) => {
                ck.fail(
                    "window.omega",
                    show_value(v),
                    format!("not a window length: {e} (expected positive seconds with at most 6 decimals, e.g. 30 or 0.5, or a list \"0.5,5\"; or leave it out to take ω from the model)"),
                );
                None
            }
            None => {
                ck.fail(
                    "window.omega",
                    show_value(v),
                    "not a window length (expected positive seconds with at most 6 decimals, e.g. 30 or 0.5, or a list \"0.5,5\"; or leave it out to take ω from the model)",
                );
                None
            }
        },
    };
    let max_gap_windows = ck.int_range(
        "window.max_gap_windows",
        raw.max_gap_windows,
        1,
        i64::MAX,
        "windows",
    ) as u64;
    let top_k = ck.int_range("window.top_k", raw.top_k, 1, 100, "talkers of each kind") as usize;
    ck.clean_since(mark).then_some(WindowSettings {
        omega,
        max_gap_windows,
        top_k,
    })
}

/// `window.omega` as text for [`Omega`]'s parser: TOML integer, float or string.
fn omega_text(v: &config::Value) -> Option<String> {
    match &v.kind {
        // Display of f64 never uses an exponent: 0.5 → "0.5", 1e-6 → "0.000001".
        config::ValueKind::String(_)
        | config::ValueKind::I64(_)
        | config::ValueKind::U64(_)
        | config::ValueKind::I128(_)
        | config::ValueKind::U128(_)
        | config::ValueKind::Float(_) => v.clone().into_string().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{assert_each_named, live, load};
    use crate::window::Omega;

    /// A configured ω must equal the model's; unset, the model's is taken.
    #[test]
    fn omega_must_match_model() {
        let s = load("[window]\nomega = 30\n", &[], &live()).unwrap();
        let us = |v| Omega::from_micros(v).unwrap();
        assert_eq!(s.window.omega, Some(Scales::one(us(30_000_000))));
        let wc = s.window_configs(&Scales::one(us(30_000_000))).unwrap();
        assert_eq!(wc[0].omega, us(30_000_000));
        assert_eq!(wc[0].top_k, 5);
        let e = s
            .window_configs(&Scales::one(us(5_000_000)))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("window.omega = 30: does not match the model's window length of 5 s"),
            "{e}"
        );
        // unset: anything goes
        let s = load("", &[], &live()).unwrap();
        assert_eq!(
            s.window_configs(&Scales::one(us(500_000))).unwrap()[0].omega,
            us(500_000)
        );
        // float form
        let s = load("[window]\nomega = 0.5\n", &[], &live()).unwrap();
        assert_eq!(s.window.omega, Some(Scales::one(us(500_000))));
    }

    /// Each invalid `[window]` value is reported with its key, value and what is allowed.
    #[test]
    fn each_invalid_value_is_named() {
        assert_each_named(&[
            (
                "[window]\nomega = -1",
                "window.omega = -1: not a window length",
            ),
            (
                "[window]\nomega = \"soon\"",
                "window.omega = \"soon\": not a window length",
            ),
            (
                "[window]\nomega = 0.0000001",
                "window.omega = 0.0000001: not a window length",
            ),
            (
                "[window]\nomega = [1]",
                "window.omega = […]: not a window length",
            ),
            (
                "[window]\nmax_gap_windows = 0",
                "window.max_gap_windows = 0: out of range (expected at least 1 windows)",
            ),
            ("[window]\ntop_k = 0", "window.top_k = 0: out of range"),
            (
                "[window]\ntop_k = 1000",
                "window.top_k = 1000: out of range",
            ),
        ]);
    }

    /// The section on its own: ω as a string, the bounds of `top_k`, and all problems found.
    #[test]
    fn validates_on_its_own() {
        let mut ck = Checker::default();
        let raw = RawWindow {
            omega: Some(config::Value::from("0.25")),
            top_k: 100,
            ..Default::default()
        };
        let w = validate(raw, &mut ck).unwrap();
        assert_eq!(w.omega, Omega::from_micros(250_000).map(Scales::one));
        assert_eq!(w.top_k, 100);
        assert_eq!(w.max_gap_windows, WindowConfig::DEFAULT_MAX_GAP_WINDOWS);
        assert!(ck.into_problems().is_empty());

        let mut ck = Checker::default();
        let raw = RawWindow {
            omega: Some(config::Value::from("0")),
            top_k: 101,
            ..Default::default()
        };
        assert_eq!(validate(raw, &mut ck), None);
        let problems: Vec<String> = ck.into_problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("window.omega = \"0\": not a window length"));
        assert_eq!(
            problems[1],
            "window.top_k = 101: out of range (expected 1 to 100 talkers of each kind)"
        );
    }
}
