//! Daemon settings: a TOML file, overridden by `NETANOM_…` environment variables, overridden by
//! command-line flags; then validated into typed [`Settings`].
//!
//! Precedence (lowest first): built-in defaults → the TOML file → environment → CLI flags.
//!
//! Environment variables: `NETANOM_<SECTION>__<KEY>`, a single `_` after `NETANOM` and a
//! **double** underscore between section and key, because keys contain single underscores:
//! `NETANOM_CAPTURE__INTERFACE=eth1`, `NETANOM_CAPTURE__BPF_FILTER="not port 22"`,
//! `NETANOM_METRICS__LISTEN=0.0.0.0:9405`. Names are case-insensitive. Variables without a
//! double underscore (`NETANOM_LOG`, the tracing filter of the `extract` command, or
//! `NETANOM_CONFIG`) are not settings and are left alone, except that one that looks like a
//! mistyped setting (`NETANOM_CAPTURE_INTERFACE`) is an error naming the right spelling.
//!
//! Every invalid value is reported with its key, its value and what is allowed, all problems at
//! once; an unknown key (a typo) is an error naming it. See `docs/config.md`.
//!
//! Layout: this module loads and merges the sources and collects [`Problem`]s in a
//! `Checker`; each section (`capture`, `window`, `model`, `alerts`, `metrics`, `log`,
//! `history`) has its
//! own file holding its settings struct, its raw (as written) form with the defaults, and the
//! `validate` that turns one into the other.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::window::{Omega, Scales, WindowConfig};

mod alerts;
mod capture;
mod feedback;
mod history;
mod learning;
mod log;
mod metrics;
mod model;
mod nats;
mod window;

pub use alerts::{AlertSettings, DEFAULT_ALERT_LOG};
pub use capture::{CaptureSettings, CaptureSource, DEFAULT_SNAPLEN, MAX_WORKERS};
pub use feedback::{feedback_file, FeedbackSettings, DEFAULT_FEEDBACK_DIR, FEEDBACK_FILE};
pub use history::HistorySettings;
pub use learning::LearningSettings;
pub use log::{LogFormat, LogLevel, LogSettings};
pub use metrics::{MetricsSettings, DEFAULT_METRICS_LISTEN};
pub use model::{ModelSettings, DEFAULT_MODEL_DIR};
pub use nats::NatsSettings;
pub use window::WindowSettings;

/// Where the packaged unit and the docs put the settings file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/netanom/netanom.toml";
/// Prefix of the environment variables that override settings.
pub const ENV_PREFIX: &str = "NETANOM";
/// Separator between section and key in environment variable names.
pub const ENV_SEPARATOR: &str = "__";

/// All settings, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// `[capture]`: what packets are read from, and how.
    pub capture: CaptureSettings,
    /// `[window]`: how the packet stream is cut into windows.
    pub window: WindowSettings,
    /// `[model]`: the model bundle and its threshold.
    pub model: ModelSettings,
    /// `[alerts]`: incidents and the alert log.
    pub alerts: AlertSettings,
    /// `[metrics]`: the Prometheus and health endpoint.
    pub metrics: MetricsSettings,
    /// `[log]`: the daemon's own log.
    pub log: LogSettings,
    /// `[history]`: the feature history recorded for training.
    pub history: HistorySettings,
    /// `[learning]`: training from the history (learning mode, scheduled retraining).
    pub learning: LearningSettings,
    /// `[feedback]`: the operators' feedback rules.
    pub feedback: FeedbackSettings,
    /// `[nats]`: windows from sensors on other taps (the collector).
    pub nats: NatsSettings,
}

/// What the command line can override; `None`/empty leaves the file and environment value.
///
/// `interface` and `pcap_files` choose the source: giving one discards the other from the file
/// and the environment (so `--pcap x.pcap` works with a config that names an interface).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CliOverrides {
    /// `--interface`
    pub interface: Option<String>,
    /// `--pcap`, repeatable.
    pub pcap_files: Vec<PathBuf>,
    /// `--realtime`
    pub realtime: Option<bool>,
    /// `--model`
    pub model_dir: Option<PathBuf>,
    /// `--metrics-listen`
    pub metrics_listen: Option<String>,
    /// `--alert-log`
    pub alert_log: Option<PathBuf>,
    /// `--eve-log`
    pub eve_log: Option<PathBuf>,
    /// `--history-dir` (also turns recording on)
    pub history_dir: Option<PathBuf>,
    /// `--window` (`window.omega`: the window lengths of learning mode)
    pub omega: Option<Scales>,
    /// `--learn-for` (`learning.learn_for`), as written
    pub learn_for: Option<String>,
    /// `--state-dir` (`feedback.dir`)
    pub state_dir: Option<PathBuf>,
    /// `--workers` (`capture.workers`)
    pub workers: Option<u16>,
    /// `--nats` (`nats.url`)
    pub nats_url: Option<String>,
    /// `--sensors` (`nats.sensors`)
    pub sensors: Vec<String>,
}

/// One invalid value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key (`metrics.listen`), or the flag (`--metrics-listen`) when the CLI set it.
    pub key: String,
    /// The value as given, quoted when a string.
    pub value: String,
    /// What is wrong and what is allowed.
    pub reason: String,
}

impl fmt::Display for Problem {
    /// `key = value: reason`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}: {}", self.key, self.value, self.reason)
    }
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read.
    #[error("cannot read settings file {}: {source}", path.display())]
    Io {
        /// The file named.
        path: PathBuf,
        /// Why reading it failed.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, an unknown key, a value of the wrong type, a misspelt environment variable.
    #[error("{0}")]
    Parse(String),
    /// Values of the right type but out of range or inconsistent, all of them.
    #[error("{}", format_problems(.0))]
    Invalid(Vec<Problem>),
}

/// One problem on its own, or a count and one problem per line.
fn format_problems(problems: &[Problem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let mut s = format!("{} invalid settings:", many.len());
            for p in many {
                s.push_str("\n  ");
                s.push_str(&p.to_string());
            }
            s
        }
    }
}

impl SettingsError {
    /// The problems of an [`SettingsError::Invalid`], empty otherwise.
    pub fn problems(&self) -> &[Problem] {
        match self {
            SettingsError::Invalid(p) => p,
            _ => &[],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw (as written) settings: what the `config` crate deserializes; each section's file holds
// its part and the defaults.

/// The whole settings file as written; a missing section takes its defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSettings {
    /// `[capture]` as written.
    capture: capture::RawCapture,
    /// `[window]` as written.
    window: window::RawWindow,
    /// `[model]` as written.
    model: model::RawModel,
    /// `[alerts]` as written.
    alerts: alerts::RawAlerts,
    /// `[metrics]` as written.
    metrics: metrics::RawMetrics,
    /// `[log]` as written.
    log: log::RawLog,
    /// `[history]` as written.
    history: history::RawHistory,
    /// `[learning]` as written.
    learning: learning::RawLearning,
    /// `[feedback]` as written.
    feedback: feedback::RawFeedback,
    /// `[nats]` as written.
    nats: nats::RawNats,
}

/// The section names, for recognising misspelt environment variables.
const SECTIONS: [&str; 10] = [
    "capture", "window", "model", "alerts", "metrics", "log", "history", "learning", "feedback",
    "nats",
];

/// How a value was written, for messages: strings quoted, numbers as they are.
fn show_value(v: &config::Value) -> String {
    match &v.kind {
        config::ValueKind::String(s) => quoted(s),
        config::ValueKind::Array(_) => "[…]".into(),
        config::ValueKind::Table(_) => "{…}".into(),
        config::ValueKind::Nil => "(empty)".into(),
        _ => v.clone().into_string().unwrap_or_default(),
    }
}

/// A string as messages show it: quoted, with escapes.
fn quoted(s: &str) -> String {
    format!("{s:?}")
}

// ---------------------------------------------------------------------------------------------
// Loading.

impl Settings {
    /// Loads settings from `file` (none: defaults only), the process environment and `cli`.
    pub fn load(file: Option<&Path>, cli: &CliOverrides) -> Result<Settings, SettingsError> {
        Self::load_from(
            file,
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
            cli,
        )
    }

    /// As [`Settings::load`] with the environment given explicitly (tests, or a filtered one).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        cli: &CliOverrides,
    ) -> Result<Settings, SettingsError> {
        let text = match file {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|source| SettingsError::Io {
                        path: path.to_path_buf(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        Self::load_str(text.as_deref(), file, env, cli)
    }

    /// As [`Settings::load_from`] with the file's text given (`origin` names it in errors).
    pub fn load_str(
        toml_text: Option<&str>,
        origin: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        cli: &CliOverrides,
    ) -> Result<Settings, SettingsError> {
        validate(raw_settings(toml_text, origin, env)?, cli)
    }

    /// One aggregator's settings per scale of a model trained with `model_scales`; an error if
    /// `window.omega` is set to something else.
    pub fn window_configs(
        &self,
        model_scales: &Scales,
    ) -> Result<Vec<WindowConfig>, SettingsError> {
        self.window.configs(model_scales, &self.model.dir)
    }

    /// How long `/healthz` tolerates no scored window: `metrics.health_stale_after_s`, or
    /// 3 ω + 30 s (a window is scored every ω; startup needs 3 windows before the first score).
    pub fn health_stale_after(&self, omega: Omega) -> Duration {
        self.metrics.health_stale_after(omega)
    }
}

/// The file's text (`origin` names it in errors) merged with the environment, as written.
fn raw_settings(
    toml_text: Option<&str>,
    origin: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<RawSettings, SettingsError> {
    let origin_name = origin
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the settings file".into());
    let env = settings_env(env)?;
    let mut builder = config::Config::builder();
    if let Some(text) = toml_text {
        builder = builder.add_source(config::File::from_str(text, config::FileFormat::Toml));
    }
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("_")
            .separator(ENV_SEPARATOR)
            .source(Some(env.into_iter().collect())),
    );
    let built = builder
        .build()
        .map_err(|e| SettingsError::Parse(format!("{origin_name}: {e}")))?;
    built
        .try_deserialize()
        .map_err(|e| SettingsError::Parse(describe_deserialize_error(&e.to_string(), &origin_name)))
}

/// Keeps the `NETANOM_<SECTION>__<KEY>` variables; rejects ones that look like a misspelt
/// setting (`NETANOM_CAPTURE_INTERFACE`).
fn settings_env(
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, SettingsError> {
    let prefix = format!("{ENV_PREFIX}_");
    let mut keep = Vec::new();
    let mut bad = Vec::new();
    for (name, value) in env {
        let upper = name.to_ascii_uppercase();
        let Some(rest) = upper.strip_prefix(&prefix) else {
            continue;
        };
        if rest.contains(ENV_SEPARATOR) {
            keep.push((name, value));
            continue;
        }
        let lower = rest.to_ascii_lowercase();
        if let Some(section) = SECTIONS.iter().find(|s| {
            lower
                .strip_prefix(**s)
                .is_some_and(|tail| tail.starts_with('_') && tail.len() > 1)
        }) {
            let key = &lower[section.len() + 1..];
            bad.push(format!(
                "environment variable {name}: settings take a double underscore between section and key: {prefix}{}{ENV_SEPARATOR}{}",
                section.to_ascii_uppercase(),
                key.to_ascii_uppercase()
            ));
        }
    }
    if bad.is_empty() {
        Ok(keep)
    } else {
        Err(SettingsError::Parse(bad.join("\n")))
    }
}

/// Rewrites the `config` crate's deserialization errors into ones an operator can act on.
fn describe_deserialize_error(msg: &str, origin: &str) -> String {
    // Unknown keys: `unknown field `x`, expected one of ... for key `capture``, or at the top
    // level without "for key".
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        if let Some((field, tail)) = rest.split_once('`') {
            let section = tail
                .split_once("for key `")
                .and_then(|(_, k)| k.split_once('`'))
                .map(|(k, _)| k.to_string());
            let expected = tail.split_once(", expected ").map(|(_, e)| {
                e.split(" for key ")
                    .next()
                    .unwrap_or(e)
                    .split(" in ")
                    .next()
                    .unwrap_or(e)
                    .to_string()
            });
            let key = match &section {
                Some(s) => format!("{s}.{field}"),
                None => field.to_string(),
            };
            let env_name = format!(
                "{ENV_PREFIX}_{}",
                key.replace('.', ENV_SEPARATOR).to_ascii_uppercase()
            );
            return match expected {
                Some(exp) => format!(
                    "unknown setting `{key}` (in {origin} or as {env_name}): expected {exp}"
                ),
                None => format!("unknown setting `{key}` (in {origin} or as {env_name})"),
            };
        }
    }
    // Type errors from the environment name the key; add the variable's name.
    if let Some(head) = msg.strip_suffix(" in the environment") {
        if let Some(key) = head
            .rsplit_once("for key `")
            .and_then(|(_, k)| k.strip_suffix('`'))
        {
            let env_name = format!(
                "{ENV_PREFIX}_{}",
                key.replace('.', ENV_SEPARATOR).to_ascii_uppercase()
            );
            return format!("environment variable {env_name}: {head}");
        }
        return format!("environment: {msg}");
    }
    format!("{origin}: {msg}")
}

// ---------------------------------------------------------------------------------------------
// Validation.

/// Collects the problems of one validation, naming each key by the flag that set it, if any.
#[derive(Debug, Default)]
struct Checker {
    /// Every problem found so far, in order.
    problems: Vec<Problem>,
    /// Keys whose value came from a CLI flag, with the flag.
    cli: HashMap<&'static str, &'static str>,
}

impl Checker {
    /// A mark to pass to [`Checker::clean_since`]: the number of problems so far.
    fn mark(&self) -> usize {
        self.problems.len()
    }

    /// Whether no problem was found since `mark` was taken.
    fn clean_since(&self, mark: usize) -> bool {
        self.problems.len() == mark
    }

    /// Records that `flag` set `key`, so that problems with it name the flag.
    fn set_by_flag(&mut self, key: &'static str, flag: &'static str) {
        self.cli.insert(key, flag);
    }

    /// Replaces `slot` by the command line's value for `key` when `flag` gave one.
    fn flag<T>(&mut self, key: &'static str, flag: &'static str, slot: &mut T, given: Option<T>) {
        if let Some(value) = given {
            *slot = value;
            self.set_by_flag(key, flag);
        }
    }

    /// How problems name `key`: the flag that set it, else the dotted key itself.
    fn name(&self, key: &str) -> String {
        self.cli
            .get(key)
            .map(|f| f.to_string())
            .unwrap_or_else(|| key.to_string())
    }

    /// Records a problem with `key`'s `value`.
    fn fail(&mut self, key: &str, value: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem {
            key: self.name(key),
            value: value.into(),
            reason: reason.into(),
        });
    }

    /// An integer in `lo..=hi`, else a problem; returns the value clamped into range.
    fn int_range(&mut self, key: &str, v: i64, lo: i64, hi: i64, what: &str) -> i64 {
        if v < lo || v > hi {
            let expected = if hi == i64::MAX {
                format!("at least {lo} {what}")
            } else {
                format!("{lo} to {hi} {what}")
            };
            self.fail(
                key,
                v.to_string(),
                format!("out of range (expected {expected})"),
            );
            v.clamp(lo, hi)
        } else {
            v
        }
    }

    /// The problems found, each reported once, in the order found.
    fn into_problems(mut self) -> Vec<Problem> {
        let mut seen = BTreeSet::new();
        self.problems.retain(|p| seen.insert(p.to_string()));
        self.problems
    }
}

/// Applies `cli` and validates every section of `raw`: the settings, or all problems at once.
fn validate(raw: RawSettings, cli: &CliOverrides) -> Result<Settings, SettingsError> {
    let mut ck = Checker::default();
    // The source flags choose the source; without them, a NATS URL makes this a collector.
    let collecting = cli.interface.is_none()
        && cli.pcap_files.is_empty()
        && (cli.nats_url.is_some() || !raw.nats.url().is_empty());
    let capture = capture::validate(raw.capture, &mut ck, cli, collecting);
    let nats = nats::validate(raw.nats, &mut ck, cli);
    let mut window = window::validate(raw.window, &mut ck);
    if let (Some(w), Some(scales)) = (window.as_mut(), cli.omega.clone()) {
        w.omega = Some(scales);
    }
    let model = model::validate(raw.model, &mut ck, cli.model_dir.clone());
    let alerts = alerts::validate(
        raw.alerts,
        &mut ck,
        cli.alert_log.clone(),
        cli.eve_log.clone(),
    );
    let metrics = metrics::validate(raw.metrics, &mut ck, cli.metrics_listen.clone());
    let log = log::validate(raw.log, &mut ck);
    let history = history::validate(raw.history, &mut ck, cli.history_dir.clone());
    let learning = learning::validate(raw.learning, &mut ck, cli.learn_for.clone());
    if let (Some(l), Some(w)) = (&learning, &window) {
        learning::check_against_window(l, w, &mut ck);
    }
    let feedback = feedback::validate(raw.feedback, &mut ck, cli.state_dir.clone());
    let problems = ck.into_problems();
    match (
        capture, window, model, alerts, metrics, log, history, learning, feedback, nats,
    ) {
        (
            Some(capture),
            Some(window),
            Some(model),
            Some(alerts),
            Some(metrics),
            Some(log),
            Some(history),
            Some(learning),
            Some(feedback),
            Some(nats),
        ) if problems.is_empty() => Ok(Settings {
            capture,
            window,
            model,
            alerts,
            metrics,
            log,
            history,
            learning,
            feedback,
            nats,
        }),
        _ => Err(SettingsError::Invalid(problems)),
    }
}

/// What the operator's tools (`netanom feedback`, `netanom train --history`) read of the
/// daemon's settings: the alert log and the feedback state directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolPaths {
    /// `alerts.path`.
    pub alert_log: PathBuf,
    /// `feedback.dir`.
    pub feedback: FeedbackSettings,
}

impl ToolPaths {
    /// Reads `file` (none: the packaged settings file if it exists, else defaults only), the
    /// environment and the flags, validating only the `[alerts]` and `[feedback]` sections: the
    /// tools need no capture source.
    pub fn load(
        file: Option<&Path>,
        alert_log: Option<PathBuf>,
        state_dir: Option<PathBuf>,
    ) -> Result<ToolPaths, SettingsError> {
        let packaged = Path::new(DEFAULT_CONFIG_PATH);
        let file = file.or_else(|| packaged.is_file().then_some(packaged));
        let text = match file {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|source| SettingsError::Io {
                        path: path.to_path_buf(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        let raw = raw_settings(text.as_deref(), file, env)?;
        let mut ck = Checker::default();
        let alerts = alerts::validate(raw.alerts, &mut ck, alert_log, None);
        let feedback = feedback::validate(raw.feedback, &mut ck, state_dir);
        let problems = ck.into_problems();
        match (alerts, feedback) {
            (Some(a), Some(feedback)) if problems.is_empty() => Ok(ToolPaths {
                alert_log: a.path,
                feedback,
            }),
            _ => Err(SettingsError::Invalid(problems)),
        }
    }
}

/// Helpers shared by the tests of this module and of each section.
#[cfg(test)]
mod testing {
    use std::path::Path;

    use super::{CliOverrides, Settings, SettingsError};

    /// An environment of `pairs`.
    pub(super) fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Flags that capture live from `eth0`: enough for a source.
    pub(super) fn live() -> CliOverrides {
        CliOverrides {
            interface: Some("eth0".into()),
            ..Default::default()
        }
    }

    /// Loads `toml` as `test.toml` with the environment `vars` and the flags `cli`.
    pub(super) fn load(
        toml: &str,
        vars: &[(&str, &str)],
        cli: &CliOverrides,
    ) -> Result<Settings, SettingsError> {
        Settings::load_str(Some(toml), Some(Path::new("test.toml")), env(vars), cli)
    }

    /// The single problem's text, or the parse error's text.
    pub(super) fn err(toml: &str, vars: &[(&str, &str)], cli: &CliOverrides) -> String {
        load(toml, vars, cli)
            .expect_err("should be rejected")
            .to_string()
    }

    /// Each `(toml, want)`: loading `toml` fails with a message that starts with `want` (or,
    /// when the case sets the source itself, contains it, after the missing-source problem).
    pub(super) fn assert_each_named(cases: &[(&str, &str)]) {
        for (toml, want) in cases {
            let mut text = toml.to_string();
            if !text.contains("interface") {
                text = format!("{text}\n");
            }
            let own_source = toml.contains("interface") || toml.contains("pcap_files");
            let cli = if own_source {
                CliOverrides::default()
            } else {
                live()
            };
            let got = err(&text, &[], &cli);
            let ok = if own_source {
                got.contains(want)
            } else {
                got.starts_with(want)
            };
            assert!(ok, "for {toml:?}\n got: {got}\nwant: {want}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{env, err, live, load};
    use super::*;

    /// Nothing configured but a source: every default.
    #[test]
    fn defaults() {
        let s = Settings::load_str(None, None, env(&[]), &live()).unwrap();
        assert_eq!(s.capture.source, CaptureSource::Interface("eth0".into()));
        assert_eq!(s.capture.bpf_filter, None);
        assert_eq!(s.capture.snaplen, DEFAULT_SNAPLEN);
        assert_eq!(s.capture.buffer_size_mb, 64);
        assert!(s.capture.promiscuous);
        assert_eq!(s.capture.timeout_ms, 100);
        assert_eq!(s.capture.workers, 1);
        assert_eq!(s.window.omega, None);
        assert_eq!(
            s.window.max_gap_windows,
            WindowConfig::DEFAULT_MAX_GAP_WINDOWS
        );
        assert_eq!(s.window.top_k, 5);
        assert_eq!(s.model.dir, PathBuf::from(DEFAULT_MODEL_DIR));
        assert_eq!(s.model.threshold, None);
        assert_eq!(s.alerts.path, PathBuf::from(DEFAULT_ALERT_LOG));
        assert_eq!(s.alerts.cooldown_windows, 3);
        assert_eq!(s.alerts.min_windows, 1);
        assert_eq!(s.alerts.loud_ratio, 100);
        assert_eq!(s.alerts.top_features, 5);
        assert_eq!(s.alerts.host, None);
        assert!(s.alerts.fsync);
        assert!(s.metrics.enabled);
        assert_eq!(s.metrics.listen, "127.0.0.1:9405".parse().unwrap());
        assert_eq!(s.metrics.health_stale_after_s, None);
        assert_eq!(s.log.level, LogLevel::Info);
        assert_eq!(s.log.format, LogFormat::Text);
        assert_eq!(
            s.health_stale_after(Omega::from_micros(30_000_000).unwrap()),
            Duration::from_secs(120)
        );
    }

    /// The example file shipped in `config/` loads as it is.
    #[test]
    fn example_config_file_loads() {
        let text = include_str!("../../config/netanom.toml");
        let s = Settings::load_str(Some(text), None, env(&[]), &CliOverrides::default()).unwrap();
        assert_eq!(s.capture.source, CaptureSource::Interface("eth1".into()));
        assert_eq!(s.metrics.listen, "127.0.0.1:9405".parse().unwrap());
        assert_eq!(s.alerts.path, PathBuf::from(DEFAULT_ALERT_LOG));
        assert_eq!(s.capture.snaplen, DEFAULT_SNAPLEN);
        // Every [history] key is written out with its default.
        let defaults = Settings::load_str(None, None, env(&[]), &live()).unwrap();
        assert_eq!(s.history, defaults.history);
        // So is every [learning] key (learn_for and retrain_every commented out: unset).
        assert_eq!(s.learning, defaults.learning);
        // And every [feedback] key, and the new [alerts] keys.
        assert_eq!(s.feedback, defaults.feedback);
        assert_eq!(s.alerts.threshold_rule, defaults.alerts.threshold_rule);
        assert_eq!(s.alerts.false_rate, defaults.alerts.false_rate);
        // The one deliberate difference: the packaged file asks for persistence (more than
        // one odd window, docs/config.md), the built-in default is the paper's.
        assert_eq!((s.alerts.min_windows, defaults.alerts.min_windows), (4, 1));
        // A loud window still reports at once, written out with its default.
        assert_eq!(s.alerts.loud_ratio, defaults.alerts.loud_ratio);
        let incident = s.alerts.incident_config();
        assert_eq!((incident.min_windows, incident.loud_ratio), (4, 100));
    }

    /// The environment overrides the file, flags override both.
    #[test]
    fn precedence_file_then_env_then_cli() {
        let toml = r#"
            [capture]
            interface = "eth1"
            snaplen = 200
            [metrics]
            listen = "127.0.0.1:9500"
            [alerts]
            cooldown_windows = 4
            path = "/tmp/a.jsonl"
            [log]
            level = "debug"
        "#;
        // file only
        let s = load(toml, &[], &CliOverrides::default()).unwrap();
        assert_eq!(s.capture.source, CaptureSource::Interface("eth1".into()));
        assert_eq!(s.capture.snaplen, 200);
        assert_eq!(s.metrics.listen.port(), 9500);
        assert_eq!(s.alerts.cooldown_windows, 4);
        assert_eq!(s.log.level, LogLevel::Debug);

        // env over file (typed from strings; case-insensitive names); unrelated vars ignored
        let vars = [
            ("NETANOM_CAPTURE__INTERFACE", "eth2"),
            ("NETANOM_CAPTURE__SNAPLEN", "256"),
            ("netanom_metrics__listen", "127.0.0.1:9600"),
            ("NETANOM_CAPTURE__PROMISCUOUS", "false"),
            ("NETANOM_MODEL__THRESHOLD", "0.25"),
            ("NETANOM_WINDOW__OMEGA", "0.5"),
            ("NETANOM_LOG", "trace"), // the tracing filter, not a setting
            ("NETANOM_CONFIG", "/x"),
            ("PATH", "/usr/bin"),
        ];
        let s = load(toml, &vars, &CliOverrides::default()).unwrap();
        assert_eq!(s.capture.source, CaptureSource::Interface("eth2".into()));
        assert_eq!(s.capture.snaplen, 256);
        assert!(!s.capture.promiscuous);
        assert_eq!(s.metrics.listen.port(), 9600);
        assert_eq!(s.model.threshold, Some(0.25));
        assert_eq!(
            s.window.omega,
            Omega::from_micros(500_000).map(crate::window::Scales::one)
        );
        assert_eq!(
            s.alerts.cooldown_windows, 4,
            "file value kept where env says nothing"
        );
        assert_eq!(s.log.level, LogLevel::Debug);

        // CLI over env over file
        let cli = CliOverrides {
            interface: Some("eth3".into()),
            metrics_listen: Some("[::1]:9700".into()),
            alert_log: Some("/tmp/b.jsonl".into()),
            model_dir: Some("/tmp/model".into()),
            ..Default::default()
        };
        let s = load(toml, &vars, &cli).unwrap();
        assert_eq!(s.capture.source, CaptureSource::Interface("eth3".into()));
        assert_eq!(s.metrics.listen, "[::1]:9700".parse().unwrap());
        assert_eq!(s.alerts.path, PathBuf::from("/tmp/b.jsonl"));
        assert_eq!(s.model.dir, PathBuf::from("/tmp/model"));
        assert_eq!(s.capture.snaplen, 256);

        // --pcap replaces the configured interface
        let cli = CliOverrides {
            pcap_files: vec!["a.pcap".into(), "b.pcap".into()],
            realtime: Some(true),
            ..Default::default()
        };
        let s = load(toml, &vars, &cli).unwrap();
        assert_eq!(
            s.capture.source,
            CaptureSource::Replay {
                files: vec!["a.pcap".into(), "b.pcap".into()],
                realtime: true
            }
        );
    }

    /// A value set by a flag is named by the flag in problems.
    #[test]
    fn cli_values_are_named_by_flag() {
        let cli = CliOverrides {
            interface: Some("eth0".into()),
            metrics_listen: Some("localhost:99999".into()),
            ..Default::default()
        };
        let e = err("", &[], &cli);
        assert!(
            e.starts_with("--metrics-listen = \"localhost:99999\": not a socket address"),
            "{e}"
        );
    }

    /// Problems in several sections are reported together.
    #[test]
    fn all_problems_reported_at_once() {
        let e = load(
            "[capture]\nsnaplen = 1\n[log]\nlevel = \"loud\"\n",
            &[],
            &live(),
        )
        .unwrap_err();
        assert_eq!(e.problems().len(), 2, "{e}");
        assert!(e.to_string().starts_with("2 invalid settings:"), "{e}");
    }

    /// An unknown key or section is an error naming it and the known keys.
    #[test]
    fn unknown_keys_are_named() {
        let e = err(
            "[capture]\ninterfac = \"eth0\"\n",
            &[],
            &CliOverrides::default(),
        );
        assert!(e.contains("unknown setting `capture.interfac`"), "{e}");
        assert!(e.contains("interface"), "expected keys listed: {e}");
        let e = err(
            "[capture]\ninterface = \"eth0\"\n[metric]\nlisten = \"x\"\n",
            &[],
            &CliOverrides::default(),
        );
        assert!(e.contains("unknown setting `metric`"), "{e}");
        let e = err("", &[("NETANOM_ALERTS__COOLDOWN", "3")], &live());
        assert!(e.contains("unknown setting `alerts.cooldown`"), "{e}");
        assert!(e.contains("NETANOM_ALERTS__COOLDOWN"), "{e}");
    }

    /// A setting's variable with a single underscore is an error naming the right one.
    #[test]
    fn misspelt_env_var_is_an_error() {
        let e = err(
            "",
            &[("NETANOM_CAPTURE_INTERFACE", "eth1")],
            &CliOverrides::default(),
        );
        assert!(e.contains("NETANOM_CAPTURE_INTERFACE"), "{e}");
        assert!(e.contains("NETANOM_CAPTURE__INTERFACE"), "{e}");
    }

    /// Values of the wrong type name the key, or the variable when from the environment.
    #[test]
    fn wrong_types_name_the_key() {
        let e = err("[capture]\nsnaplen = \"big\"\n", &[], &live());
        assert!(e.contains("capture.snaplen"), "{e}");
        let e = err("", &[("NETANOM_CAPTURE__SNAPLEN", "big")], &live());
        assert!(
            e.starts_with(
                "environment variable NETANOM_CAPTURE__SNAPLEN: invalid type: string \"big\""
            ),
            "{e}"
        );
        assert!(!e.contains("test.toml"), "{e}");
        let e = err("[capture]\npromiscuous = \"perhaps\"\n", &[], &live());
        assert!(e.contains("capture.promiscuous"), "{e}");
        let e = err("this is not toml", &[], &live());
        assert!(e.contains("test.toml"), "{e}");
    }

    /// An unreadable file is an error naming it.
    #[test]
    fn missing_file_names_the_path() {
        let e = Settings::load_from(
            Some(Path::new("/nonexistent/netanom.toml")),
            env(&[]),
            &live(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/netanom.toml"), "{e}");
    }
}
