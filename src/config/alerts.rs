//! `[alerts]`: when windows above the threshold become an incident, and where events go.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{quoted, Checker};
use crate::detect::incident::{IncidentConfig, DEFAULT_LOUD_RATIO};
use crate::detect::threshold::{RuleChoice, ThresholdConfig, DEFAULT_FALSE_RATE};
use crate::model::spot::{FALSE_RATE_MAX, FALSE_RATE_MIN};
use crate::window::features::NUM_FEATURES;

/// Default alert log (`LogsDirectory=netanom` in the unit).
pub const DEFAULT_ALERT_LOG: &str = "/var/log/netanom/alerts.jsonl";

/// `[alerts]`.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertSettings {
    /// The alert log, JSON lines.
    pub path: PathBuf,
    /// Consecutive windows at or below the threshold that end an incident.
    pub cooldown_windows: u32,
    /// Alerting windows an incident needs before it is reported.
    pub min_windows: u32,
    /// A window this many times over its threshold reports its incident before
    /// `min_windows` (0: never).
    pub loud_ratio: u32,
    /// How many deviating features an event lists.
    pub top_features: usize,
    /// `host` field of the events; `None` for the system host name.
    pub host: Option<String>,
    /// fdatasync the alert log after each event.
    pub fsync: bool,
    /// The Suricata EVE log (`alerts.eve_path`, `--eve-log`); `None`: off.
    pub eve_path: Option<PathBuf>,
    /// Which threshold runs: the adaptive one (SPOT) or the bundle's fixed one.
    pub threshold_rule: RuleChoice,
    /// SPOT's target share of normal windows that alert.
    pub false_rate: f64,
    /// How often the adaptive thresholds' state is saved to the model directory.
    pub threshold_save_interval: Duration,
}

impl AlertSettings {
    /// The incident state machine's settings.
    pub fn incident_config(&self) -> IncidentConfig {
        IncidentConfig {
            cooldown_windows: self.cooldown_windows,
            min_windows: self.min_windows,
            loud_ratio: self.loud_ratio,
        }
    }

    /// The thresholds' configuration, with `model.threshold` (`manual`) if set.
    pub fn threshold_config(&self, manual: Option<f64>) -> ThresholdConfig {
        ThresholdConfig {
            rule: self.threshold_rule,
            false_rate: self.false_rate,
            manual,
        }
    }
}

/// `[alerts]` as written, with the defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAlerts {
    /// `alerts.path`.
    path: PathBuf,
    /// `alerts.cooldown_windows`.
    cooldown_windows: i64,
    /// `alerts.min_windows`.
    min_windows: i64,
    /// `alerts.loud_ratio`.
    loud_ratio: i64,
    /// `alerts.top_features`.
    top_features: i64,
    /// `alerts.host`; empty for the system host name.
    host: String,
    /// `alerts.fsync`.
    fsync: bool,
    /// `alerts.threshold_rule`: `spot` or `fixed`.
    threshold_rule: String,
    /// `alerts.false_rate`.
    false_rate: f64,
    /// `alerts.threshold_save_interval`: a duration.
    threshold_save_interval: String,
    /// `alerts.eve_path`; empty: no EVE log.
    eve_path: PathBuf,
}

impl Default for RawAlerts {
    /// The built-in `[alerts]`: [`DEFAULT_ALERT_LOG`], 3 windows of cool-down, 5 features.
    fn default() -> Self {
        RawAlerts {
            path: PathBuf::from(DEFAULT_ALERT_LOG),
            cooldown_windows: 3,
            min_windows: 1,
            loud_ratio: i64::from(DEFAULT_LOUD_RATIO),
            top_features: 5,
            host: String::new(),
            fsync: true,
            threshold_rule: "spot".into(),
            false_rate: DEFAULT_FALSE_RATE,
            threshold_save_interval: "60s".into(),
            eve_path: PathBuf::new(),
        }
    }
}

/// Applies `--alert-log` (`cli_path`) and `--eve-log` (`cli_eve`) to `raw` and validates it;
/// `None` after a problem.
pub(super) fn validate(
    mut raw: RawAlerts,
    ck: &mut Checker,
    cli_path: Option<PathBuf>,
    cli_eve: Option<PathBuf>,
) -> Option<AlertSettings> {
    let mark = ck.mark();
    ck.flag("alerts.path", "--alert-log", &mut raw.path, cli_path);
    if raw.path.as_os_str().is_empty() || raw.path.file_name().is_none() {
        ck.fail(
            "alerts.path",
            quoted(&raw.path.display().to_string()),
            "not a file path (expected e.g. /var/log/netanom/alerts.jsonl)",
        );
    }
    let cooldown_windows = ck.int_range(
        "alerts.cooldown_windows",
        raw.cooldown_windows,
        1,
        100_000,
        "windows",
    ) as u32;
    let min_windows =
        ck.int_range("alerts.min_windows", raw.min_windows, 1, 100_000, "windows") as u32;
    let loud_ratio = ck.int_range(
        "alerts.loud_ratio",
        raw.loud_ratio,
        0,
        1_000_000,
        "times the threshold; 0: off",
    ) as u32;
    let top_features = ck.int_range(
        "alerts.top_features",
        raw.top_features,
        0,
        NUM_FEATURES as i64,
        "features",
    ) as usize;
    ck.flag("alerts.eve_path", "--eve-log", &mut raw.eve_path, cli_eve);
    let eve_path = (!raw.eve_path.as_os_str().is_empty()).then_some(raw.eve_path);
    if let Some(eve) = &eve_path {
        let shown = quoted(&eve.display().to_string());
        // `Path::file_name` ignores a trailing slash: a directory named so is not a file.
        let dir = eve.as_os_str().to_string_lossy().ends_with('/');
        if eve.file_name().is_none() || dir {
            ck.fail(
                "alerts.eve_path",
                shown,
                "not a file path (expected e.g. /var/log/netanom/eve.json, or empty for no EVE log)",
            );
        } else if same_file(eve, &raw.path) {
            let other = format!(
                "{} = {}",
                ck.name("alerts.path"),
                quoted(&raw.path.display().to_string())
            );
            ck.fail(
                "alerts.eve_path",
                shown,
                format!("the same file as {other} (expected another file: the two logs have different schemas)"),
            );
        }
    }
    let host = Some(raw.host.trim().to_string()).filter(|h| !h.is_empty());
    let threshold_rule = RuleChoice::parse(raw.threshold_rule.trim()).unwrap_or_else(|| {
        ck.fail(
            "alerts.threshold_rule",
            quoted(&raw.threshold_rule),
            "expected \"spot\" (the adaptive threshold) or \"fixed\" (the model's fixed threshold, the paper's way)",
        );
        RuleChoice::Fixed
    });
    if !(FALSE_RATE_MIN..=FALSE_RATE_MAX).contains(&raw.false_rate) {
        ck.fail(
            "alerts.false_rate",
            raw.false_rate.to_string(),
            format!("out of range (expected {FALSE_RATE_MIN:e} to {FALSE_RATE_MAX:e}: the share of normal windows that may alert, e.g. 1e-5)"),
        );
    }
    let threshold_save_interval =
        match humantime::parse_duration(raw.threshold_save_interval.trim()) {
            Ok(d) if d >= Duration::from_secs(1) => d,
            _ => {
                ck.fail(
                    "alerts.threshold_save_interval",
                    quoted(&raw.threshold_save_interval),
                    "not a duration of at least a second (expected e.g. 60s, 5m)",
                );
                Duration::from_secs(60)
            }
        };
    ck.clean_since(mark).then_some(AlertSettings {
        path: raw.path,
        cooldown_windows,
        min_windows,
        loud_ratio,
        top_features,
        host,
        fsync: raw.fsync,
        threshold_rule,
        false_rate: raw.false_rate,
        threshold_save_interval,
        eve_path,
    })
}

/// True when `a` and `b` name the same file, however written: relative or absolute, with `.`,
/// `..` or a symlinked directory on the way, or (for files that exist) a symlink to the other.
fn same_file(a: &Path, b: &Path) -> bool {
    match (file_identity(a), file_identity(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

/// The path a file is at once symlinks, `.` and `..` are resolved, relative to the working
/// directory: the file itself canonicalised when it exists, else its directory canonicalised
/// (made absolute and cleaned of `.` and `..` when it does not exist either) and its name.
fn file_identity(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = std::fs::canonicalize(path) {
        return Some(p);
    }
    let name = path.file_name()?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir = std::fs::canonicalize(dir)
        .or_else(|_| std::path::absolute(dir).map(clean))
        .ok()?;
    Some(dir.join(name))
}

/// An absolute path without `.` and `..` (lexically: a directory that does not exist has no
/// symlinks to follow).
fn clean(path: PathBuf) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::assert_each_named;

    /// Each invalid `[alerts]` value is reported with its key, value and what is allowed.
    #[test]
    fn each_invalid_value_is_named() {
        assert_each_named(&[
            (
                "[alerts]\npath = \"\"",
                "alerts.path = \"\": not a file path",
            ),
            (
                "[alerts]\ncooldown_windows = 0",
                "alerts.cooldown_windows = 0: out of range (expected 1 to 100000 windows)",
            ),
            (
                "[alerts]\nmin_windows = 0",
                "alerts.min_windows = 0: out of range",
            ),
            (
                "[alerts]\nloud_ratio = -1",
                "alerts.loud_ratio = -1: out of range (expected 0 to 1000000 times the threshold; 0: off)",
            ),
            (
                "[alerts]\ntop_features = 54",
                "alerts.top_features = 54: out of range (expected 0 to 53 features)",
            ),
            (
                "[alerts]\nthreshold_rule = \"adaptive\"",
                "alerts.threshold_rule = \"adaptive\": expected \"spot\"",
            ),
            (
                "[alerts]\nfalse_rate = 0.5",
                "alerts.false_rate = 0.5: out of range (expected 1e-9 to 1e-2",
            ),
            (
                "[alerts]\nthreshold_save_interval = \"soon\"",
                "alerts.threshold_save_interval = \"soon\": not a duration",
            ),
            (
                "[alerts]\neve_path = \"/var/log/\"",
                "alerts.eve_path = \"/var/log/\": not a file path",
            ),
            (
                "[alerts]\npath = \"/tmp/a.json\"\neve_path = \"/tmp/a.json\"",
                "alerts.eve_path = \"/tmp/a.json\": the same file as alerts.path = \"/tmp/a.json\"",
            ),
            (
                "[alerts]\npath = \"a.json\"\neve_path = \"./a.json\"",
                "alerts.eve_path = \"./a.json\": the same file as alerts.path = \"a.json\"",
            ),
            (
                "[alerts]\npath = \"/tmp/x/../a.json\"\neve_path = \"/tmp/./a.json\"",
                "alerts.eve_path = \"/tmp/./a.json\": the same file as alerts.path",
            ),
        ]);
    }

    /// A symlinked directory, or a symlink to the alert log, is the same file; `--alert-log`
    /// is named as the flag.
    #[test]
    fn the_same_file_through_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&logs, &link).unwrap();
        let check = |alert: PathBuf, eve: PathBuf| {
            let mut ck = Checker::default();
            let ok = validate(RawAlerts::default(), &mut ck, Some(alert), Some(eve)).is_some();
            (
                ok,
                ck.into_problems()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            )
        };
        let (ok, problems) = check(logs.join("a.json"), link.join("a.json"));
        assert!(!ok);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let want = format!(
            "--eve-log = \"{}\": the same file as --alert-log = \"{}\"",
            link.join("a.json").display(),
            logs.join("a.json").display()
        );
        assert!(problems[0].starts_with(&want), "{problems:?}");
        // A symlink to the existing alert log.
        std::fs::write(logs.join("a.json"), "").unwrap();
        std::os::unix::fs::symlink(logs.join("a.json"), logs.join("eve.json")).unwrap();
        assert!(!check(logs.join("a.json"), logs.join("eve.json")).0);
        // Two files in one directory are two files.
        let (ok, problems) = check(logs.join("a.json"), link.join("b.json"));
        assert!(ok && problems.is_empty(), "{problems:?}");
    }

    /// The section on its own: the host is trimmed (blank: none), zero features is allowed, and
    /// a directory given as `--alert-log` is named by the flag.
    #[test]
    fn validates_on_its_own() {
        let mut ck = Checker::default();
        let raw = RawAlerts {
            host: "  sensor-1 ".into(),
            top_features: 0,
            ..Default::default()
        };
        let a = validate(raw, &mut ck, None, None).unwrap();
        assert_eq!(a.host.as_deref(), Some("sensor-1"));
        assert_eq!(a.eve_path, None, "off by default");
        assert_eq!(a.top_features, 0);
        let raw = RawAlerts {
            host: "   ".into(),
            ..Default::default()
        };
        assert_eq!(validate(raw, &mut ck, None, None).unwrap().host, None);
        let eve = validate(
            RawAlerts::default(),
            &mut ck,
            None,
            Some("/tmp/eve.json".into()),
        );
        assert_eq!(eve.unwrap().eve_path, Some(PathBuf::from("/tmp/eve.json")));
        assert!(ck.into_problems().is_empty());

        let mut ck = Checker::default();
        assert_eq!(
            validate(
                RawAlerts::default(),
                &mut ck,
                Some("/var/log/..".into()),
                None
            ),
            None
        );
        let problems = ck.into_problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0]
                .to_string()
                .starts_with("--alert-log = \"/var/log/..\": not a file path"),
            "{problems:?}"
        );
    }
}
