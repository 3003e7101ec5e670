//! `[model]`: which trained model bundle scores the windows.

use std::path::PathBuf;

use serde::Deserialize;

use super::Checker;

/// Default model bundle directory (`StateDirectory=netanom` in the unit).
pub const DEFAULT_MODEL_DIR: &str = "/var/lib/netanom/model";

/// `[model]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSettings {
    /// The bundle directory (`model.json`, `weights.safetensors`).
    pub dir: PathBuf,
    /// Replaces the bundle's threshold when set.
    pub threshold: Option<f64>,
}

/// `[model]` as written, with the defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawModel {
    /// `model.dir`.
    dir: PathBuf,
    /// `model.threshold`.
    threshold: Option<f64>,
}

impl Default for RawModel {
    /// The built-in `[model]`: [`DEFAULT_MODEL_DIR`], the bundle's threshold.
    fn default() -> Self {
        RawModel {
            dir: PathBuf::from(DEFAULT_MODEL_DIR),
            threshold: None,
        }
    }
}

/// Applies `--model` (`cli_dir`) to `raw` and validates it; `None` after a problem.
pub(super) fn validate(
    mut raw: RawModel,
    ck: &mut Checker,
    cli_dir: Option<PathBuf>,
) -> Option<ModelSettings> {
    let mark = ck.mark();
    ck.flag("model.dir", "--model", &mut raw.dir, cli_dir);
    if raw.dir.as_os_str().is_empty() {
        ck.fail(
            "model.dir",
            "\"\"",
            "empty (expected the directory holding model.json and weights.safetensors)",
        );
    }
    if let Some(t) = raw.threshold {
        if !t.is_finite() || t <= 0.0 {
            ck.fail("model.threshold", t.to_string(), "not a positive finite number (an anomaly score threshold; leave it out to use the model's)");
        }
    }
    ck.clean_since(mark).then_some(ModelSettings {
        dir: raw.dir,
        threshold: raw.threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::assert_each_named;

    /// Each invalid `[model]` value is reported with its key, value and what is allowed.
    #[test]
    fn each_invalid_value_is_named() {
        assert_each_named(&[
            ("[model]\ndir = \"\"", "model.dir = \"\": empty"),
            (
                "[model]\nthreshold = -2.0",
                "model.threshold = -2: not a positive finite number",
            ),
            (
                "[model]\nthreshold = nan",
                "model.threshold = NaN: not a positive finite number",
            ),
        ]);
    }

    /// The section on its own: `--model` wins and is named by its flag; zero and infinity are
    /// not thresholds.
    #[test]
    fn validates_on_its_own() {
        let mut ck = Checker::default();
        let raw = RawModel {
            threshold: Some(0.5),
            ..Default::default()
        };
        let m = validate(raw, &mut ck, Some("/tmp/m".into())).unwrap();
        assert_eq!(m.dir, PathBuf::from("/tmp/m"));
        assert_eq!(m.threshold, Some(0.5));

        let mut ck = Checker::default();
        assert_eq!(
            validate(RawModel::default(), &mut ck, Some("".into())),
            None
        );
        for t in [0.0, f64::INFINITY] {
            let raw = RawModel {
                threshold: Some(t),
                ..Default::default()
            };
            assert_eq!(validate(raw, &mut ck, None), None);
        }
        let problems: Vec<String> = ck.into_problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].starts_with("--model = \"\": empty"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("model.threshold = 0: not a positive"),
            "{problems:?}"
        );
        assert!(
            problems[2].starts_with("model.threshold = inf: not a positive"),
            "{problems:?}"
        );
    }
}
