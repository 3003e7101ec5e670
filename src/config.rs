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

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::window::features::NUM_FEATURES;
use crate::window::{Omega, WindowConfig};

/// Where the packaged unit and the docs put the settings file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/netanom/netanom.toml";
/// Prefix of the environment variables that override settings.
pub const ENV_PREFIX: &str = "NETANOM";
/// Separator between section and key in environment variable names.
pub const ENV_SEPARATOR: &str = "__";

/// Default capture length per packet, bytes: the largest header stack the decoder reads
/// (Ethernet 14 + two VLAN tags 8 + IPv4 with options 60 + TCP with options 60 = 142; or
/// IPv6 40 + 38 bytes of extension headers + TCP 60) fits; payload is never needed.
pub const DEFAULT_SNAPLEN: u32 = 160;
/// Default metrics listen address (loopback: scrape through a local Prometheus or a proxy).
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9405";
/// Default model bundle directory (`StateDirectory=netanom` in the unit).
pub const DEFAULT_MODEL_DIR: &str = "/var/lib/netanom/model";
/// Default alert log (`LogsDirectory=netanom` in the unit).
pub const DEFAULT_ALERT_LOG: &str = "/var/log/netanom/alerts.jsonl";

/// All settings, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub capture: CaptureSettings,
    pub window: WindowSettings,
    pub model: ModelSettings,
    pub alerts: AlertSettings,
    pub metrics: MetricsSettings,
    pub log: LogSettings,
}

/// What packets are read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaptureSource {
    /// A live interface (`capture.interface`, `--interface`).
    Interface(String),
    /// Capture files replayed in order (`capture.pcap_files`, `--pcap`); `realtime` paces them
    /// at their recorded speed instead of as fast as possible.
    Replay { files: Vec<PathBuf>, realtime: bool },
}

/// `[capture]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureSettings {
    pub source: CaptureSource,
    /// BPF filter applied in the kernel; `None` for all packets.
    pub bpf_filter: Option<String>,
    /// Bytes captured per packet.
    pub snaplen: u32,
    /// Kernel capture buffer (ring) size, MiB.
    pub buffer_size_mb: u32,
    pub promiscuous: bool,
    /// libpcap packet-buffer timeout, ms (how long the kernel may hold packets before waking us).
    pub timeout_ms: u32,
}

/// `[window]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowSettings {
    /// ω if configured; it must then equal the model's ω.
    pub omega: Option<Omega>,
    pub max_gap_windows: u64,
    pub top_k: usize,
}

/// `[model]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSettings {
    pub dir: PathBuf,
    /// Replaces the bundle's threshold when set.
    pub threshold: Option<f64>,
}

/// `[alerts]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertSettings {
    pub path: PathBuf,
    /// Consecutive windows at or below the threshold that end an incident.
    pub cooldown_windows: u32,
    /// Alerting windows an incident needs before it is reported.
    pub min_windows: u32,
    /// How many deviating features an event lists.
    pub top_features: usize,
    /// `host` field of the events; `None` for the system host name.
    pub host: Option<String>,
    /// fdatasync the alert log after each event.
    pub fsync: bool,
}

/// `[metrics]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsSettings {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// `/healthz` fails when no window was scored for this long; `None`: 3 ω + 30 s.
    pub health_stale_after_s: Option<u64>,
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSettings {
    pub level: LogLevel,
    pub format: LogFormat,
}

/// Verbosity of the daemon's own log (not the alert log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    const NAMES: [(&'static str, LogLevel); 5] = [
        ("error", LogLevel::Error),
        ("warn", LogLevel::Warn),
        ("info", LogLevel::Info),
        ("debug", LogLevel::Debug),
        ("trace", LogLevel::Trace),
    ];

    /// The name, usable as a `tracing_subscriber::EnvFilter` directive.
    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, l)| *l == self)
            .map(|(n, _)| *n)
            .unwrap_or("info")
    }

    /// The matching `tracing` level.
    pub fn to_tracing(self) -> tracing::Level {
        match self {
            LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Trace => tracing::Level::TRACE,
        }
    }
}

/// Format of the daemon's own log lines on standard error (the journal under systemd).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
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
        path: PathBuf,
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
// Raw (as written) settings: what the `config` crate deserializes; defaults live here.

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

/// `capture.pcap_files`: a list of paths, or one path (an environment variable holds one).
fn pcap_files_of(v: &config::Value) -> Result<Vec<PathBuf>, ()> {
    match &v.kind {
        config::ValueKind::String(s) => Ok(vec![PathBuf::from(s)]),
        config::ValueKind::Array(items) => items
            .iter()
            .map(|i| match &i.kind {
                config::ValueKind::String(s) => Ok(PathBuf::from(s)),
                _ => Err(()),
            })
            .collect(),
        _ => Err(()),
    }
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSettings {
    capture: RawCapture,
    window: RawWindow,
    model: RawModel,
    alerts: RawAlerts,
    metrics: RawMetrics,
    log: RawLog,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCapture {
    interface: Option<String>,
    pcap_files: Option<config::Value>,
    realtime: bool,
    bpf_filter: String,
    snaplen: i64,
    buffer_size_mb: i64,
    promiscuous: bool,
    timeout_ms: i64,
}

impl Default for RawCapture {
    fn default() -> Self {
        RawCapture {
            interface: None,
            pcap_files: None,
            realtime: false,
            bpf_filter: String::new(),
            snaplen: i64::from(DEFAULT_SNAPLEN),
            buffer_size_mb: 64,
            promiscuous: true,
            timeout_ms: 100,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWindow {
    omega: Option<config::Value>,
    max_gap_windows: i64,
    top_k: i64,
}

impl Default for RawWindow {
    fn default() -> Self {
        RawWindow {
            omega: None,
            max_gap_windows: WindowConfig::DEFAULT_MAX_GAP_WINDOWS as i64,
            top_k: 5,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawModel {
    dir: PathBuf,
    threshold: Option<f64>,
}

impl Default for RawModel {
    fn default() -> Self {
        RawModel {
            dir: PathBuf::from(DEFAULT_MODEL_DIR),
            threshold: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAlerts {
    path: PathBuf,
    cooldown_windows: i64,
    min_windows: i64,
    top_features: i64,
    host: String,
    fsync: bool,
}

impl Default for RawAlerts {
    fn default() -> Self {
        RawAlerts {
            path: PathBuf::from(DEFAULT_ALERT_LOG),
            cooldown_windows: 3,
            min_windows: 1,
            top_features: 5,
            host: String::new(),
            fsync: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMetrics {
    enabled: bool,
    listen: String,
    health_stale_after_s: Option<i64>,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics {
            enabled: true,
            listen: DEFAULT_METRICS_LISTEN.into(),
            health_stale_after_s: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
    level: String,
    format: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

const SECTIONS: [&str; 6] = ["capture", "window", "model", "alerts", "metrics", "log"];

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
        let raw: RawSettings = built.try_deserialize().map_err(|e| {
            SettingsError::Parse(describe_deserialize_error(&e.to_string(), &origin_name))
        })?;
        validate(raw, cli)
    }

    /// The aggregator's settings for a model trained with ω = `model_omega`; an error if
    /// `window.omega` is set to something else.
    pub fn window_config(&self, model_omega: Omega) -> Result<WindowConfig, SettingsError> {
        if let Some(configured) = self.window.omega {
            if configured != model_omega {
                return Err(SettingsError::Invalid(vec![Problem {
                    key: "window.omega".into(),
                    value: configured.to_string(),
                    reason: format!(
                        "does not match the model's window length of {model_omega} s (model.dir = {:?}); ω comes from the model: remove window.omega or use a model trained with this ω",
                        self.model.dir.display().to_string(),
                    ),
                }]));
            }
        }
        Ok(WindowConfig {
            omega: model_omega,
            max_gap_windows: self.window.max_gap_windows,
            top_k: self.window.top_k,
        })
    }

    /// How long `/healthz` tolerates no scored window: `metrics.health_stale_after_s`, or
    /// 3 ω + 30 s (a window is scored every ω; startup needs 3 windows before the first score).
    pub fn health_stale_after(&self, omega: Omega) -> Duration {
        match self.metrics.health_stale_after_s {
            Some(s) => Duration::from_secs(s),
            None => omega.duration() * 3 + Duration::from_secs(30),
        }
    }
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

struct Checker {
    problems: Vec<Problem>,
    /// Keys whose value came from a CLI flag, with the flag.
    cli: HashMap<&'static str, &'static str>,
}

impl Checker {
    fn name(&self, key: &str) -> String {
        self.cli
            .get(key)
            .map(|f| f.to_string())
            .unwrap_or_else(|| key.to_string())
    }

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
}

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

/// Interface names: 1–15 bytes (IFNAMSIZ − 1), no whitespace, no '/'.
fn interface_problem(name: &str) -> Option<&'static str> {
    if name.is_empty()
        || name.len() > 15
        || name.contains('/')
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        Some("not an interface name (1 to 15 characters, no spaces or '/'; e.g. eth1, enp3s0f1, any)")
    } else {
        None
    }
}

/// Compiles a BPF filter against Ethernet to catch syntax errors at startup.
fn bpf_problem(filter: &str) -> Option<String> {
    let dead = match pcap::Capture::dead(pcap::Linktype::ETHERNET) {
        Ok(d) => d,
        Err(_) => return None, // cannot check here; the capture will compile it again
    };
    match dead.compile(filter, true) {
        Ok(_) => None,
        Err(e) => Some(format!(
            "not a valid BPF filter: {e} (see pcap-filter(7); e.g. \"not port 22\")"
        )),
    }
}

fn validate(mut raw: RawSettings, cli: &CliOverrides) -> Result<Settings, SettingsError> {
    let mut ck = Checker {
        problems: Vec::new(),
        cli: HashMap::new(),
    };

    // CLI overrides, remembering which keys they set.
    if cli.interface.is_some() && !cli.pcap_files.is_empty() {
        ck.problems.push(Problem {
            key: "--interface".into(),
            value: quoted(cli.interface.as_deref().unwrap_or_default()),
            reason: "cannot be combined with --pcap (capture live or replay files, not both)"
                .into(),
        });
    }
    if let Some(i) = &cli.interface {
        raw.capture.interface = Some(i.clone());
        raw.capture.pcap_files = None;
        ck.cli.insert("capture.interface", "--interface");
    }
    if !cli.pcap_files.is_empty() {
        raw.capture.pcap_files = None;
        raw.capture.interface = None;
        ck.cli.insert("capture.pcap_files", "--pcap");
    }
    if let Some(r) = cli.realtime {
        raw.capture.realtime = r;
    }
    if let Some(d) = &cli.model_dir {
        raw.model.dir = d.clone();
        ck.cli.insert("model.dir", "--model");
    }
    if let Some(l) = &cli.metrics_listen {
        raw.metrics.listen = l.clone();
        ck.cli.insert("metrics.listen", "--metrics-listen");
    }
    if let Some(p) = &cli.alert_log {
        raw.alerts.path = p.clone();
        ck.cli.insert("alerts.path", "--alert-log");
    }

    // [capture]
    let c = &raw.capture;
    let files = if !cli.pcap_files.is_empty() {
        cli.pcap_files.clone()
    } else {
        match &c.pcap_files {
            None => Vec::new(),
            Some(v) => pcap_files_of(v).unwrap_or_else(|()| {
                ck.fail(
                    "capture.pcap_files",
                    show_value(v),
                    "not a list of file names (expected e.g. [\"/srv/pcaps/a.pcap\", \"/srv/pcaps/b.pcap\"])",
                );
                Vec::new()
            }),
        }
    };
    let interface = c.interface.clone().filter(|i| !i.is_empty());
    let source = match (interface, files.is_empty()) {
        (Some(_), false) => {
            let value = quoted(c.interface.as_deref().unwrap_or_default());
            ck.fail(
                "capture.interface",
                value,
                "capture.pcap_files is set too: capture live or replay files, not both (--interface or --pcap override both)",
            );
            None
        }
        (Some(i), true) => {
            if let Some(why) = interface_problem(&i) {
                ck.fail("capture.interface", quoted(&i), why);
            }
            Some(CaptureSource::Interface(i))
        }
        (None, false) => {
            for f in &files {
                if f.as_os_str().is_empty() {
                    ck.fail(
                        "capture.pcap_files",
                        "\"\"",
                        "an empty file name (expected paths of pcap or pcapng files)",
                    );
                }
            }
            Some(CaptureSource::Replay {
                files,
                realtime: c.realtime,
            })
        }
        (None, true) => {
            ck.fail(
                "capture.interface",
                "(not set)",
                "nothing to capture: set capture.interface (NETANOM_CAPTURE__INTERFACE, --interface) to an interface, or capture.pcap_files (--pcap) to replay files",
            );
            None
        }
    };
    let bpf_filter = Some(c.bpf_filter.trim().to_string()).filter(|f| !f.is_empty());
    if let Some(f) = &bpf_filter {
        if let Some(why) = bpf_problem(f) {
            ck.fail("capture.bpf_filter", quoted(f), why);
        }
    }
    let snaplen = ck.int_range(
        "capture.snaplen",
        c.snaplen,
        96,
        262_144,
        "bytes; below 96 even Ethernet + IPv6 + TCP headers are cut",
    ) as u32;
    let buffer_size_mb =
        ck.int_range("capture.buffer_size_mb", c.buffer_size_mb, 1, 4096, "MiB") as u32;
    let timeout_ms = ck.int_range(
        "capture.timeout_ms",
        c.timeout_ms,
        1,
        10_000,
        "ms; 0 would wait forever",
    ) as u32;
    let promiscuous = c.promiscuous;

    // [window]
    let w = &raw.window;
    let omega = match &w.omega {
        None => None,
        Some(v) => match omega_text(v).map(|t| t.parse::<Omega>()) {
            Some(Ok(o)) => Some(o),
            _ => {
                ck.fail(
                    "window.omega",
                    show_value(v),
                    "not a window length (expected positive seconds with at most 6 decimals, e.g. 30 or 0.5; or leave it out to take ω from the model)",
                );
                None
            }
        },
    };
    let max_gap_windows = ck.int_range(
        "window.max_gap_windows",
        w.max_gap_windows,
        1,
        i64::MAX,
        "windows",
    ) as u64;
    let top_k = ck.int_range("window.top_k", w.top_k, 1, 100, "talkers of each kind") as usize;

    // [model]
    let m = &raw.model;
    if m.dir.as_os_str().is_empty() {
        ck.fail(
            "model.dir",
            "\"\"",
            "empty (expected the directory holding model.json and weights.safetensors)",
        );
    }
    if let Some(t) = m.threshold {
        if !t.is_finite() || t <= 0.0 {
            ck.fail("model.threshold", t.to_string(), "not a positive finite number (an anomaly score threshold; leave it out to use the model's)");
        }
    }

    // [alerts]
    let a = &raw.alerts;
    if a.path.as_os_str().is_empty() || a.path.file_name().is_none() {
        ck.fail(
            "alerts.path",
            quoted(&a.path.display().to_string()),
            "not a file path (expected e.g. /var/log/netanom/alerts.jsonl)",
        );
    }
    let cooldown_windows = ck.int_range(
        "alerts.cooldown_windows",
        a.cooldown_windows,
        1,
        100_000,
        "windows",
    ) as u32;
    let min_windows =
        ck.int_range("alerts.min_windows", a.min_windows, 1, 100_000, "windows") as u32;
    let top_features = ck.int_range(
        "alerts.top_features",
        a.top_features,
        0,
        NUM_FEATURES as i64,
        "features",
    ) as usize;
    let host = Some(a.host.trim().to_string()).filter(|h| !h.is_empty());

    // [metrics]
    let mt = &raw.metrics;
    let listen = match mt.listen.trim().parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            ck.fail(
                "metrics.listen",
                quoted(&mt.listen),
                "not a socket address (expected e.g. 127.0.0.1:9405 or [::1]:9405; host names are not resolved)",
            );
            DEFAULT_METRICS_LISTEN
                .parse()
                .expect("default listen address parses")
        }
    };
    let health_stale_after_s = mt
        .health_stale_after_s
        .map(|s| ck.int_range("metrics.health_stale_after_s", s, 1, 86_400, "seconds") as u64);

    // [log]
    let l = &raw.log;
    let level_text = l.level.trim().to_ascii_lowercase();
    let level = match LogLevel::NAMES.iter().find(|(n, _)| *n == level_text) {
        Some((_, lv)) => *lv,
        None => {
            ck.fail(
                "log.level",
                quoted(&l.level),
                "not a log level (expected error, warn, info, debug or trace)",
            );
            LogLevel::Info
        }
    };
    let format = match l.format.trim().to_ascii_lowercase().as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        _ => {
            ck.fail(
                "log.format",
                quoted(&l.format),
                "not a log format (expected text or json)",
            );
            LogFormat::Text
        }
    };

    // Deduplicate (a value can be reported once) and fail with all problems.
    let mut seen = BTreeSet::new();
    ck.problems.retain(|p| seen.insert(p.to_string()));
    if !ck.problems.is_empty() {
        return Err(SettingsError::Invalid(ck.problems));
    }
    Ok(Settings {
        capture: CaptureSettings {
            source: source.expect("a source when there is no problem"),
            bpf_filter,
            snaplen,
            buffer_size_mb,
            promiscuous,
            timeout_ms,
        },
        window: WindowSettings {
            omega,
            max_gap_windows,
            top_k,
        },
        model: ModelSettings {
            dir: m.dir.clone(),
            threshold: m.threshold,
        },
        alerts: AlertSettings {
            path: a.path.clone(),
            cooldown_windows,
            min_windows,
            top_features,
            host,
            fsync: a.fsync,
        },
        metrics: MetricsSettings {
            enabled: mt.enabled,
            listen,
            health_stale_after_s,
        },
        log: LogSettings { level, format },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn live() -> CliOverrides {
        CliOverrides {
            interface: Some("eth0".into()),
            ..Default::default()
        }
    }

    fn load(
        toml: &str,
        vars: &[(&str, &str)],
        cli: &CliOverrides,
    ) -> Result<Settings, SettingsError> {
        Settings::load_str(Some(toml), Some(Path::new("test.toml")), env(vars), cli)
    }

    /// The single problem's text, or the parse error's text.
    fn err(toml: &str, vars: &[(&str, &str)], cli: &CliOverrides) -> String {
        load(toml, vars, cli)
            .expect_err("should be rejected")
            .to_string()
    }

    #[test]
    fn defaults() {
        let s = Settings::load_str(None, None, env(&[]), &live()).unwrap();
        assert_eq!(s.capture.source, CaptureSource::Interface("eth0".into()));
        assert_eq!(s.capture.bpf_filter, None);
        assert_eq!(s.capture.snaplen, DEFAULT_SNAPLEN);
        assert_eq!(s.capture.buffer_size_mb, 64);
        assert!(s.capture.promiscuous);
        assert_eq!(s.capture.timeout_ms, 100);
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

    #[test]
    fn example_config_file_loads() {
        let text = include_str!("../config/netanom.toml");
        let s = Settings::load_str(Some(text), None, env(&[]), &CliOverrides::default()).unwrap();
        assert_eq!(s.capture.source, CaptureSource::Interface("eth1".into()));
        assert_eq!(s.metrics.listen, "127.0.0.1:9405".parse().unwrap());
        assert_eq!(s.alerts.path, PathBuf::from(DEFAULT_ALERT_LOG));
        assert_eq!(s.capture.snaplen, DEFAULT_SNAPLEN);
    }

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
        assert_eq!(s.window.omega, Omega::from_micros(500_000));
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

    #[test]
    fn replay_from_file_and_env() {
        let s = load(
            "[capture]\npcap_files = [\"x.pcap\", \"y.pcapng\"]\nrealtime = true\n",
            &[],
            &CliOverrides::default(),
        )
        .unwrap();
        assert_eq!(
            s.capture.source,
            CaptureSource::Replay {
                files: vec!["x.pcap".into(), "y.pcapng".into()],
                realtime: true
            }
        );
        let s = load(
            "",
            &[("NETANOM_CAPTURE__PCAP_FILES", "one.pcap")],
            &CliOverrides::default(),
        )
        .unwrap();
        assert_eq!(
            s.capture.source,
            CaptureSource::Replay {
                files: vec!["one.pcap".into()],
                realtime: false
            }
        );
        // --interface replaces configured files
        let s = load("[capture]\npcap_files = [\"x.pcap\"]\n", &[], &live()).unwrap();
        assert_eq!(s.capture.source, CaptureSource::Interface("eth0".into()));
    }

    #[test]
    fn omega_must_match_model() {
        let s = load("[window]\nomega = 30\n", &[], &live()).unwrap();
        let us = |v| Omega::from_micros(v).unwrap();
        assert_eq!(s.window.omega, Some(us(30_000_000)));
        let wc = s.window_config(us(30_000_000)).unwrap();
        assert_eq!(wc.omega, us(30_000_000));
        assert_eq!(wc.top_k, 5);
        let e = s.window_config(us(5_000_000)).unwrap_err().to_string();
        assert!(
            e.starts_with("window.omega = 30: does not match the model's window length of 5 s"),
            "{e}"
        );
        // unset: anything goes
        let s = load("", &[], &live()).unwrap();
        assert_eq!(s.window_config(us(500_000)).unwrap().omega, us(500_000));
        // float form
        let s = load("[window]\nomega = 0.5\n", &[], &live()).unwrap();
        assert_eq!(s.window.omega, Some(us(500_000)));
    }

    #[test]
    fn each_invalid_value_is_named() {
        let cases: &[(&str, &str)] = &[
            ("[metrics]\nlisten = \"localhost:99999\"", "metrics.listen = \"localhost:99999\": not a socket address (expected e.g. 127.0.0.1:9405"),
            ("[metrics]\nlisten = \"127.0.0.1\"", "metrics.listen = \"127.0.0.1\": not a socket address"),
            ("[metrics]\nhealth_stale_after_s = 0", "metrics.health_stale_after_s = 0: out of range"),
            ("[capture]\nsnaplen = 40", "capture.snaplen = 40: out of range (expected 96 to 262144 bytes"),
            ("[capture]\nsnaplen = 300000", "capture.snaplen = 300000: out of range"),
            ("[capture]\nbuffer_size_mb = 0", "capture.buffer_size_mb = 0: out of range (expected 1 to 4096 MiB)"),
            ("[capture]\ntimeout_ms = 0", "capture.timeout_ms = 0: out of range"),
            ("[capture]\nbpf_filter = \"prot 80\"", "capture.bpf_filter = \"prot 80\": not a valid BPF filter"),
            ("[window]\nomega = -1", "window.omega = -1: not a window length"),
            ("[window]\nomega = \"soon\"", "window.omega = \"soon\": not a window length"),
            ("[window]\nomega = 0.0000001", "window.omega = 0.0000001: not a window length"),
            ("[window]\nomega = [1]", "window.omega = […]: not a window length"),
            ("[capture]\npcap_files = 3", "capture.pcap_files = 3: not a list of file names"),
            ("[capture]\npcap_files = [\"a.pcap\", 3]", "capture.pcap_files = […]: not a list of file names"),
            ("[window]\nmax_gap_windows = 0", "window.max_gap_windows = 0: out of range (expected at least 1 windows)"),
            ("[window]\ntop_k = 0", "window.top_k = 0: out of range"),
            ("[window]\ntop_k = 1000", "window.top_k = 1000: out of range"),
            ("[model]\ndir = \"\"", "model.dir = \"\": empty"),
            ("[model]\nthreshold = -2.0", "model.threshold = -2: not a positive finite number"),
            ("[model]\nthreshold = nan", "model.threshold = NaN: not a positive finite number"),
            ("[alerts]\npath = \"\"", "alerts.path = \"\": not a file path"),
            ("[alerts]\ncooldown_windows = 0", "alerts.cooldown_windows = 0: out of range (expected 1 to 100000 windows)"),
            ("[alerts]\nmin_windows = 0", "alerts.min_windows = 0: out of range"),
            ("[alerts]\ntop_features = 54", "alerts.top_features = 54: out of range (expected 0 to 53 features)"),
            ("[log]\nlevel = \"verbose\"", "log.level = \"verbose\": not a log level (expected error, warn, info, debug or trace)"),
            ("[log]\nformat = \"xml\"", "log.format = \"xml\": not a log format (expected text or json)"),
            ("[capture]\ninterface = \"eth 0\"", "capture.interface = \"eth 0\": not an interface name"),
            ("[capture]\ninterface = \"averyveryverylongname\"", "capture.interface = \"averyveryverylongname\": not an interface name"),
        ];
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

    #[test]
    fn source_problems() {
        let e = err("", &[], &CliOverrides::default());
        assert!(
            e.starts_with("capture.interface = (not set): nothing to capture"),
            "{e}"
        );
        let e = err(
            "[capture]\ninterface = \"eth0\"\npcap_files = [\"a.pcap\"]\n",
            &[],
            &CliOverrides::default(),
        );
        assert!(e.contains("capture.pcap_files is set too"), "{e}");
        let cli = CliOverrides {
            interface: Some("eth0".into()),
            pcap_files: vec!["a.pcap".into()],
            ..Default::default()
        };
        let e = err("", &[], &cli);
        assert!(
            e.contains("--interface = \"eth0\": cannot be combined with --pcap"),
            "{e}"
        );
    }

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
