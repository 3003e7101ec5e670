//! SIGHUP: the settings read again are compared key by key with the ones in force; every key
//! that can change live is applied, and each changed key that cannot is named in the log as
//! needing a restart (its old value stays in force).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use crossbeam_channel::Sender;

use super::scorer::{Control, EveReload, Reload};
use super::{detector, load_models, SettingsSource};
use crate::config::{CaptureSource, LogFormat, LogLevel, Settings};
use crate::detect::threshold::RuleChoice;
use crate::model::{ModelStore, Scaling};
use crate::output::alerts::AlertFile;
use crate::window::{Omega, Scales};

/// How a changed key takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Apply {
    /// Taken by the scorer with the new model and alert settings.
    Live,
    /// Live: the new `alerts.path` is opened first; if that fails the old file stays.
    AlertPath,
    /// Live: the new `alerts.eve_path` is opened first (if that fails the old file stays);
    /// empty turns the EVE log off.
    EvePath,
    /// Live when the log was set up with a level handle (`netanom run` does).
    LogLevel,
    /// Read at startup only: needs a restart.
    Restart,
}

/// One setting as a reload sees it.
pub struct Key {
    /// The dotted name (`capture.snaplen`).
    pub name: &'static str,
    /// How a change takes effect.
    pub apply: Apply,
    /// What the daemon goes on doing with the old value, for the restart message.
    pub still: &'static str,
    /// The value as messages show it (strings quoted, unset as `(unset)`).
    show: fn(&Settings) -> String,
    /// Puts `old`'s value of this key back into `new`.
    keep: fn(&mut Settings, &Settings),
}

impl Key {
    /// The value of this key in `s`, as messages show it.
    pub fn show(&self, s: &Settings) -> String {
        (self.show)(s)
    }
}

/// A value as reload messages show it.
trait Shown {
    /// Strings and paths quoted, numbers plain, `None` as `(unset)`.
    fn shown(&self) -> String;
}

/// Implements [`Shown`] by `Display`.
macro_rules! shown_by_display {
    ($($t:ty),*) => {$(
        impl Shown for $t {
            /// Its `Display`.
            fn shown(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
shown_by_display!(u32, u64, usize, bool, f64, SocketAddr, Omega, Scales);

impl Shown for std::time::Duration {
    /// `1h`, `7days`: humantime's form.
    fn shown(&self) -> String {
        humantime::format_duration(*self).to_string()
    }
}

impl Shown for String {
    /// Quoted.
    fn shown(&self) -> String {
        format!("{self:?}")
    }
}

impl Shown for PathBuf {
    /// Quoted.
    fn shown(&self) -> String {
        format!("{:?}", self.display().to_string())
    }
}

impl Shown for Scaling {
    /// Its name, quoted.
    fn shown(&self) -> String {
        format!("{:?}", self.as_str())
    }
}

impl Shown for RuleChoice {
    /// Its name, quoted.
    fn shown(&self) -> String {
        format!("{:?}", self.as_str())
    }
}

impl Shown for LogLevel {
    /// Its name, quoted.
    fn shown(&self) -> String {
        format!("{:?}", self.as_str())
    }
}

impl Shown for LogFormat {
    /// Its name, quoted.
    fn shown(&self) -> String {
        format!("{:?}", self.as_str())
    }
}

impl<T: Shown> Shown for Option<T> {
    /// The value, or `(unset)`.
    fn shown(&self) -> String {
        match self {
            Some(v) => v.shown(),
            None => "(unset)".into(),
        }
    }
}

impl<T: Shown> Shown for Vec<T> {
    /// `[a, b]`.
    fn shown(&self) -> String {
        let items: Vec<String> = self.iter().map(Shown::shown).collect();
        format!("[{}]", items.join(", "))
    }
}

/// A key backed by one field of [`Settings`] (`section.field`).
macro_rules! key {
    ($name:literal, $apply:ident, $still:literal, $($field:ident).+) => {
        Key {
            name: $name,
            apply: Apply::$apply,
            still: $still,
            show: |s| s.$($field).+.shown(),
            keep: |new, old| new.$($field).+ = old.$($field).+.clone(),
        }
    };
}

/// The interface captured from, if live.
fn interface(s: &Settings) -> Option<String> {
    match &s.capture.source {
        CaptureSource::Interface(name) => Some(name.clone()),
        CaptureSource::Replay { .. } | CaptureSource::Sensors => None,
    }
}

/// The files replayed (empty when live).
fn pcap_files(s: &Settings) -> Vec<PathBuf> {
    match &s.capture.source {
        CaptureSource::Replay { files, .. } => files.clone(),
        CaptureSource::Interface(_) | CaptureSource::Sensors => Vec::new(),
    }
}

/// Whether a replay is paced (false when live).
fn realtime(s: &Settings) -> bool {
    matches!(
        s.capture.source,
        CaptureSource::Replay { realtime: true, .. }
    )
}

/// Puts `old`'s capture source back into `new` (the three source keys share it).
fn keep_source(new: &mut Settings, old: &Settings) {
    new.capture.source = old.capture.source.clone();
}

/// Every setting, in the order of docs/config.md; `every_setting_is_compared` checks that none
/// is missing.
pub static KEYS: &[Key] = &[
    Key {
        name: "capture.interface",
        apply: Apply::Restart,
        still: "capturing on",
        show: |s| interface(s).shown(),
        keep: keep_source,
    },
    Key {
        name: "capture.pcap_files",
        apply: Apply::Restart,
        still: "replaying",
        show: |s| pcap_files(s).shown(),
        keep: keep_source,
    },
    Key {
        name: "capture.realtime",
        apply: Apply::Restart,
        still: "using",
        show: |s| realtime(s).shown(),
        keep: keep_source,
    },
    key!(
        "capture.bpf_filter",
        Restart,
        "filtering with",
        capture.bpf_filter
    ),
    key!("capture.snaplen", Restart, "using", capture.snaplen),
    key!(
        "capture.buffer_size_mb",
        Restart,
        "using",
        capture.buffer_size_mb
    ),
    key!("capture.promiscuous", Restart, "using", capture.promiscuous),
    key!("capture.timeout_ms", Restart, "using", capture.timeout_ms),
    key!("capture.workers", Restart, "using", capture.workers),
    key!("window.omega", Restart, "using", window.omega),
    key!(
        "window.max_gap_windows",
        Restart,
        "using",
        window.max_gap_windows
    ),
    key!("window.top_k", Restart, "using", window.top_k),
    key!("model.dir", Live, "using", model.dir),
    key!("model.threshold", Live, "using", model.threshold),
    key!("alerts.path", AlertPath, "writing to", alerts.path),
    key!(
        "alerts.cooldown_windows",
        Live,
        "using",
        alerts.cooldown_windows
    ),
    key!("alerts.min_windows", Live, "using", alerts.min_windows),
    key!("alerts.loud_ratio", Live, "using", alerts.loud_ratio),
    key!("alerts.top_features", Live, "using", alerts.top_features),
    key!("alerts.host", Live, "using", alerts.host),
    key!("alerts.fsync", Live, "using", alerts.fsync),
    key!(
        "alerts.threshold_rule",
        Live,
        "using",
        alerts.threshold_rule
    ),
    key!("alerts.false_rate", Live, "using", alerts.false_rate),
    key!(
        "alerts.threshold_save_interval",
        Restart,
        "saving every",
        alerts.threshold_save_interval
    ),
    key!(
        "alerts.eve_path",
        EvePath,
        "writing EVE to",
        alerts.eve_path
    ),
    key!("metrics.enabled", Restart, "using", metrics.enabled),
    key!("metrics.listen", Restart, "listening on", metrics.listen),
    key!(
        "metrics.health_stale_after_s",
        Restart,
        "using",
        metrics.health_stale_after_s
    ),
    key!("log.level", LogLevel, "logging at", log.level),
    key!("log.format", Restart, "using", log.format),
    key!("history.enabled", Restart, "using", history.enabled),
    key!("history.dir", Restart, "recording to", history.dir),
    key!(
        "history.retention_days",
        Restart,
        "using",
        history.retention_days
    ),
    key!(
        "history.segment_minutes",
        Restart,
        "using",
        history.segment_minutes
    ),
    key!("learning.learn_for", Restart, "using", learning.learn_for),
    key!(
        "learning.retrain_every",
        Restart,
        "retraining every",
        learning.retrain_every
    ),
    key!("learning.window", Restart, "training on", learning.window),
    key!("learning.holdout", Restart, "holding out", learning.holdout),
    key!(
        "learning.keep_models",
        Restart,
        "keeping",
        learning.keep_models
    ),
    key!("learning.epochs", Restart, "using", learning.epochs),
    key!("learning.hidden", Restart, "using", learning.hidden),
    key!("learning.seed", Restart, "using", learning.seed),
    key!("learning.scaling", Restart, "using", learning.scaling),
    key!(
        "learning.spot_median",
        Restart,
        "using",
        learning.spot_median
    ),
    key!("learning.smoothing", Restart, "using", learning.smoothing),
    key!(
        "learning.load_augment",
        Restart,
        "using",
        learning.load_augment
    ),
    key!("feedback.dir", Restart, "reading rules from", feedback.dir),
    key!("nats.url", Restart, "collecting from", nats.url),
    key!("nats.sensors", Restart, "merging", nats.sensors),
    key!("nats.stream", Restart, "using", nats.stream),
    key!("nats.consumer", Restart, "using", nats.consumer),
    key!("nats.lateness", Restart, "using", nats.lateness),
    key!("nats.liveness", Restart, "using", nats.liveness),
    key!("nats.ack_wait", Restart, "using", nats.ack_wait),
    key!(
        "nats.max_ack_pending",
        Restart,
        "using",
        nats.max_ack_pending
    ),
];

/// One key whose value differs.
pub struct Change {
    /// The key.
    pub key: &'static Key,
    /// The value in force, as shown.
    pub from: String,
    /// The value read now, as shown.
    pub to: String,
}

/// The keys whose value differs between `running` and `new`, in [`KEYS`] order.
pub fn diff(running: &Settings, new: &Settings) -> Vec<Change> {
    KEYS.iter()
        .filter_map(|key| {
            let (from, to) = (key.show(running), key.show(new));
            (from != to).then_some(Change { key, from, to })
        })
        .collect()
}

/// The log's level handle, installed by `netanom run` at startup.
static LOG_LEVEL: OnceLock<netanom_cli::LogLevelHandle> = OnceLock::new();

/// Lets a reload change `log.level` through `handle` (the first one installed stays).
pub fn install_log_level_handle(handle: netanom_cli::LogLevelHandle) {
    let _ = LOG_LEVEL.set(handle);
}

/// Logs at `level` from now on.
fn set_log_level(level: LogLevel) -> Result<(), netanom_cli::LogLevelError> {
    match LOG_LEVEL.get() {
        Some(handle) => handle.set_level(level.as_str()),
        None => Err(netanom_cli::LogLevelError::NotInstalled),
    }
}

/// SIGHUP: rereads the settings and the model; applies every live key that changed (a new
/// `alerts.path` included), names each changed restart-only key in a warning, and updates
/// `running` to what is now in force. On any error nothing changes but the alert log is
/// reopened, and the log says why.
pub(super) fn reload(
    source: &SettingsSource,
    running: &mut Settings,
    scales: &Scales,
    control: &Sender<Control>,
) {
    tracing::info!("SIGHUP: reloading settings and model");
    if running.learning.learn_for.is_some() && !ModelStore::has_model(&running.model.dir) {
        // Learning mode: there is no model to reload yet; settings are restart-only then.
        tracing::info!(
            model_dir = %running.model.dir.display(),
            "SIGHUP while learning: no model to reload yet (it is loaded when trained); alert log reopened"
        );
        let _ = control.send(Control::ReopenLog);
        return;
    }
    let loaded = source.load().and_then(|settings| {
        let set = load_models(&settings)?;
        if set.scales() != *scales {
            anyhow::bail!(
                "the new model's window length ({} s) differs from the running one ({scales} s): restart the service to change ω",
                set.scales(),
            );
        }
        settings.window_configs(scales)?;
        Ok((settings, set))
    });
    let (mut next, set) = match loaded {
        Ok(x) => x,
        Err(e) => {
            tracing::error!("reload failed, keeping the running model: {e:#}");
            let _ = control.send(Control::ReopenLog);
            return;
        }
    };
    let changes = diff(running, &next);
    let mut log_file = None;
    let mut eve = EveReload::Same;
    for c in &changes {
        let (key, from, to) = (c.key.name, &c.from, &c.to);
        match c.key.apply {
            Apply::Restart => {
                tracing::warn!(
                    key,
                    running = %from,
                    configured = %to,
                    "{key} changed to {to}: needs a restart, still {} {from}",
                    c.key.still
                );
                (c.key.keep)(&mut next, running);
            }
            Apply::AlertPath => match AlertFile::open(next.alerts.path.clone()) {
                Ok(file) => {
                    log_file = Some(file);
                    tracing::info!(key, value = %to, "{key} changed to {to}: applied");
                }
                Err(e) => {
                    tracing::error!(key, "{key} changed to {to}: {e}; still writing to {from}");
                    (c.key.keep)(&mut next, running);
                }
            },
            Apply::EvePath => match &next.alerts.eve_path {
                None => {
                    eve = EveReload::Off;
                    tracing::info!(key, "{key} changed to {to}: applied, no EVE log any more");
                }
                Some(path) => match AlertFile::open(path.clone()) {
                    Ok(file) => {
                        eve = EveReload::Open(file);
                        tracing::info!(key, value = %to, "{key} changed to {to}: applied");
                    }
                    Err(e) => {
                        tracing::error!(
                            key,
                            "{key} changed to {to}: {e}; still writing EVE to {from}"
                        );
                        (c.key.keep)(&mut next, running);
                    }
                },
            },
            Apply::LogLevel => match set_log_level(next.log.level) {
                Ok(()) => tracing::info!(key, value = %to, "{key} changed to {to}: applied"),
                Err(e) => {
                    tracing::warn!(
                        key,
                        running = %from,
                        configured = %to,
                        "{key} changed to {to}: cannot apply it ({e}), needs a restart, still logging at {from}"
                    );
                    (c.key.keep)(&mut next, running);
                }
            },
            Apply::Live => tracing::info!(key, value = %to, "{key} changed to {to}: applied"),
        }
    }
    tracing::debug!(
        changed = changes.len(),
        compared = KEYS.len(),
        "reload compared every setting"
    );
    let detector = match detector(&next, set) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("reload failed, keeping the running model: {e:#}");
            let _ = control.send(Control::ReopenLog);
            return;
        }
    };
    let reload = Reload {
        detector,
        log_file,
        eve,
        fsync: next.alerts.fsync,
        model_dir: next.model.dir.clone(),
    };
    let _ = control.send(Control::Reload(Box::new(reload)));
    *running = next;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        AlertSettings, CaptureSettings, CliOverrides, FeedbackSettings, HistorySettings,
        LearningSettings, LogSettings, MetricsSettings, ModelSettings, NatsSettings,
        WindowSettings,
    };

    /// Settings from a TOML text, no environment, no flags.
    fn load(toml: &str) -> Settings {
        Settings::load_str(Some(toml), None, Vec::new(), &CliOverrides::default())
            .unwrap_or_else(|e| panic!("{e}\n{toml}"))
    }

    /// Every field of every section differs between the two files.
    const A: &str = r#"
        [capture]
        interface = "eth0"
        bpf_filter = "tcp"
        snaplen = 160
        buffer_size_mb = 64
        promiscuous = true
        timeout_ms = 100
        workers = 2
        [window]
        omega = 0.5
        max_gap_windows = 100
        top_k = 5
        [model]
        dir = "/m/a"
        threshold = 1.5
        [alerts]
        path = "/a/alerts.jsonl"
        cooldown_windows = 3
        min_windows = 1
        loud_ratio = 100
        top_features = 5
        host = "a"
        fsync = true
        threshold_rule = "spot"
        false_rate = 1e-5
        threshold_save_interval = "60s"
        eve_path = "/a/eve.json"
        [metrics]
        enabled = true
        listen = "127.0.0.1:9405"
        health_stale_after_s = 60
        [log]
        level = "info"
        format = "text"
        [history]
        enabled = true
        dir = "/h/a"
        retention_days = 30
        segment_minutes = 60
        [learning]
        learn_for = "1h"
        retrain_every = "24h"
        window = "7d"
        holdout = "1h"
        keep_models = 3
        epochs = 30
        hidden = 64
        seed = 1
        scaling = "linear"
        spot_median = "off"
        smoothing = 0
        load_augment = 0
        [feedback]
        dir = "/s/a"
        [nats]
        stream = "A"
        consumer = "a"
        lateness = "2s"
        liveness = "10s"
        ack_wait = "5m"
        max_ack_pending = 4096
    "#;

    /// `A` with every value changed, and a replay instead of an interface.
    const B: &str = r#"
        [capture]
        pcap_files = ["x.pcap"]
        realtime = true
        bpf_filter = "udp"
        snaplen = 200
        buffer_size_mb = 32
        promiscuous = false
        timeout_ms = 50
        workers = 1
        [window]
        omega = 1
        max_gap_windows = 200
        top_k = 3
        [model]
        dir = "/m/b"
        threshold = 2.5
        [alerts]
        path = "/b/alerts.jsonl"
        cooldown_windows = 4
        min_windows = 2
        loud_ratio = 0
        top_features = 2
        host = "b"
        fsync = false
        threshold_rule = "fixed"
        false_rate = 1e-6
        threshold_save_interval = "30s"
        eve_path = ""
        [metrics]
        enabled = false
        listen = "127.0.0.1:9406"
        health_stale_after_s = 61
        [log]
        level = "debug"
        format = "json"
        [history]
        enabled = false
        dir = "/h/b"
        retention_days = 7
        segment_minutes = 15
        [learning]
        learn_for = "2h"
        retrain_every = "12h"
        window = "3d"
        holdout = "2h"
        keep_models = 4
        epochs = 20
        hidden = 32
        seed = 2
        scaling = "log"
        spot_median = "30m"
        smoothing = 64
        load_augment = 4
        [feedback]
        dir = "/s/b"
        [nats]
        stream = "B"
        consumer = "b"
        lateness = "3s"
        liveness = "20s"
        ack_wait = "6m"
        max_ack_pending = 100
    "#;

    #[test]
    fn every_setting_is_compared() {
        let (a, b) = (load(A), load(B));
        // A new field breaks this pattern: add it to KEYS and to A and B.
        let Settings {
            capture:
                CaptureSettings {
                    source: _,
                    bpf_filter: _,
                    snaplen: _,
                    buffer_size_mb: _,
                    promiscuous: _,
                    timeout_ms: _,
                    workers: _,
                },
            window:
                WindowSettings {
                    omega: _,
                    max_gap_windows: _,
                    top_k: _,
                },
            model:
                ModelSettings {
                    dir: _,
                    threshold: _,
                },
            alerts:
                AlertSettings {
                    path: _,
                    cooldown_windows: _,
                    min_windows: _,
                    loud_ratio: _,
                    top_features: _,
                    host: _,
                    fsync: _,
                    threshold_rule: _,
                    false_rate: _,
                    threshold_save_interval: _,
                    eve_path: _,
                },
            metrics:
                MetricsSettings {
                    enabled: _,
                    listen: _,
                    health_stale_after_s: _,
                },
            log: LogSettings {
                level: _,
                format: _,
            },
            history:
                HistorySettings {
                    enabled: _,
                    dir: _,
                    retention_days: _,
                    segment_minutes: _,
                },
            learning:
                LearningSettings {
                    learn_for: _,
                    retrain_every: _,
                    window: _,
                    holdout: _,
                    keep_models: _,
                    epochs: _,
                    hidden: _,
                    seed: _,
                    scaling: _,
                    spot_median: _,
                    smoothing: _,
                    load_augment: _,
                },
            feedback: FeedbackSettings { dir: _ },
            nats:
                NatsSettings {
                    url: _,
                    sensors: _,
                    stream: _,
                    consumer: _,
                    lateness: _,
                    liveness: _,
                    ack_wait: _,
                    max_ack_pending: _,
                },
        } = &a;
        let changed: Vec<&str> = diff(&a, &b).iter().map(|c| c.key.name).collect();
        // A and B capture; the collector's url and sensors differ between two collectors.
        let collector = ["nats.url", "nats.sensors"];
        let all: Vec<&str> = KEYS
            .iter()
            .map(|k| k.name)
            .filter(|k| !collector.contains(k))
            .collect();
        assert_eq!(changed, all);
        let c1 = load("[nats]\nurl = \"nats://a:1\"\nsensors = [\"x\"]\n");
        let c2 = load("[nats]\nurl = \"nats://b:1\"\nsensors = [\"x\", \"y\"]\n");
        let changed: Vec<&str> = diff(&c1, &c2).iter().map(|c| c.key.name).collect();
        assert_eq!(changed, collector);
        assert!(diff(&a, &a).is_empty());
        assert!(diff(&b, &b.clone()).is_empty());
    }

    #[test]
    fn values_are_shown_as_written() {
        let (a, b) = (load(A), load(B));
        let shown: Vec<(String, String, String)> = diff(&a, &b)
            .into_iter()
            .map(|c| (c.key.name.to_string(), c.from, c.to))
            .collect();
        let get = |k: &str| {
            shown
                .iter()
                .find(|(n, _, _)| n == k)
                .map(|(_, f, t)| (f.as_str(), t.as_str()))
                .unwrap()
        };
        assert_eq!(get("capture.interface"), ("\"eth0\"", "(unset)"));
        assert_eq!(get("capture.pcap_files"), ("[]", "[\"x.pcap\"]"));
        assert_eq!(get("capture.realtime"), ("false", "true"));
        assert_eq!(get("capture.snaplen"), ("160", "200"));
        assert_eq!(get("window.omega"), ("0.5", "1"));
        assert_eq!(get("model.threshold"), ("1.5", "2.5"));
        assert_eq!(
            get("alerts.path"),
            ("\"/a/alerts.jsonl\"", "\"/b/alerts.jsonl\"")
        );
        assert_eq!(get("alerts.eve_path"), ("\"/a/eve.json\"", "(unset)"));
        assert_eq!(get("metrics.listen"), ("127.0.0.1:9405", "127.0.0.1:9406"));
        assert_eq!(get("log.level"), ("\"info\"", "\"debug\""));
    }

    #[test]
    fn keeping_restart_keys_leaves_only_live_changes() {
        let (a, b) = (load(A), load(B));
        let mut next = b.clone();
        for c in diff(&a, &b) {
            if c.key.apply == Apply::Restart {
                (c.key.keep)(&mut next, &a);
            }
        }
        let left: Vec<(&str, Apply)> = diff(&a, &next)
            .iter()
            .map(|c| (c.key.name, c.key.apply))
            .collect();
        assert_eq!(
            left,
            [
                ("model.dir", Apply::Live),
                ("model.threshold", Apply::Live),
                ("alerts.path", Apply::AlertPath),
                ("alerts.cooldown_windows", Apply::Live),
                ("alerts.min_windows", Apply::Live),
                ("alerts.loud_ratio", Apply::Live),
                ("alerts.top_features", Apply::Live),
                ("alerts.host", Apply::Live),
                ("alerts.fsync", Apply::Live),
                ("alerts.threshold_rule", Apply::Live),
                ("alerts.false_rate", Apply::Live),
                ("alerts.eve_path", Apply::EvePath),
                ("log.level", Apply::LogLevel),
            ]
        );
        assert_eq!(next.capture, a.capture);
        assert_eq!(next.window, a.window);
        assert_eq!(next.metrics, a.metrics);
        assert_eq!(next.log.format, a.log.format);
        let mut alerts = b.alerts.clone();
        alerts.threshold_save_interval = a.alerts.threshold_save_interval;
        assert_eq!(next.alerts, alerts);
    }

    #[test]
    fn log_level_without_a_handle_is_not_installed() {
        // The unit-test process never installs one.
        if LOG_LEVEL.get().is_none() {
            assert_eq!(
                set_log_level(LogLevel::Debug),
                Err(netanom_cli::LogLevelError::NotInstalled)
            );
        }
    }
}
