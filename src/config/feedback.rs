//! `[feedback]`: where the operators' feedback rules are (`netanom feedback`, docs/deploy.md,
//! "Quieting netanom: feedback").

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{quoted, Checker};

/// Default `[feedback] dir` (`StateDirectory=netanom` in the unit).
pub const DEFAULT_FEEDBACK_DIR: &str = "/var/lib/netanom";

/// The file of rules inside `[feedback] dir`.
pub const FEEDBACK_FILE: &str = "feedback.jsonl";

/// `[feedback]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedbackSettings {
    /// The state directory holding [`FEEDBACK_FILE`].
    pub dir: PathBuf,
}

impl FeedbackSettings {
    /// The rules file: `dir/feedback.jsonl`.
    pub fn file(&self) -> PathBuf {
        feedback_file(&self.dir)
    }
}

/// The rules file in a state directory.
pub fn feedback_file(dir: &Path) -> PathBuf {
    dir.join(FEEDBACK_FILE)
}

/// `[feedback]` as written, with the defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawFeedback {
    /// `feedback.dir`.
    dir: PathBuf,
}

impl Default for RawFeedback {
    /// The built-in `[feedback]`: [`DEFAULT_FEEDBACK_DIR`].
    fn default() -> Self {
        RawFeedback {
            dir: PathBuf::from(DEFAULT_FEEDBACK_DIR),
        }
    }
}

/// Applies `--state-dir` (`cli_dir`) and validates `raw`; `None` after a problem.
pub(super) fn validate(
    mut raw: RawFeedback,
    ck: &mut Checker,
    cli_dir: Option<PathBuf>,
) -> Option<FeedbackSettings> {
    let mark = ck.mark();
    ck.flag("feedback.dir", "--state-dir", &mut raw.dir, cli_dir);
    if raw.dir.as_os_str().is_empty() {
        ck.fail(
            "feedback.dir",
            quoted(""),
            "empty (expected the state directory, e.g. /var/lib/netanom)",
        );
    }
    ck.clean_since(mark)
        .then_some(FeedbackSettings { dir: raw.dir })
}

#[cfg(test)]
mod tests {
    use crate::config::testing::assert_each_named;

    /// An invalid `[feedback]` value is reported with its key.
    #[test]
    fn each_invalid_value_is_named() {
        assert_each_named(&[
            ("[feedback]\ndir = \"\"", "feedback.dir = \"\": empty"),
            (
                "[feedback]\npath = \"/x\"",
                "unknown setting `feedback.path`",
            ),
        ]);
    }
}
