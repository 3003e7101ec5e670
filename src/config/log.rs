//! `[log]`: the daemon's own log on standard error (not the alert log).

use serde::Deserialize;

use super::{quoted, Checker};

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSettings {
    /// The most verbose level logged.
    pub level: LogLevel,
    /// How lines are written.
    pub format: LogFormat,
}

/// Verbosity of the daemon's own log (not the alert log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// Also what the daemon does (the default).
    Info,
    /// Also details for debugging.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The name, usable as a `tracing_subscriber::EnvFilter` directive.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
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
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The name as written in settings.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// A setting whose value is one of a fixed set of names.
trait Vocabulary: Copy + 'static {
    /// Every value, in the order messages list them.
    const ALL: &'static [Self];
    /// What a value is, for messages ("log level").
    const WHAT: &'static str;
    /// The value's name as written in settings.
    fn name(self) -> &'static str;
}

impl Vocabulary for LogLevel {
    const ALL: &'static [Self] = &[
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Trace,
    ];
    const WHAT: &'static str = "log level";

    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Vocabulary for LogFormat {
    const ALL: &'static [Self] = &[LogFormat::Text, LogFormat::Json];
    const WHAT: &'static str = "log format";

    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// `text` as one of `T`'s names (any case, spaces around ignored), else a problem at `key`
/// listing them.
fn parse_name<T: Vocabulary>(ck: &mut Checker, key: &str, text: &str) -> Option<T> {
    let wanted = text.trim().to_ascii_lowercase();
    let found = T::ALL.iter().copied().find(|v| v.name() == wanted);
    if found.is_none() {
        ck.fail(
            key,
            quoted(text),
            format!("not a {} (expected {})", T::WHAT, one_of::<T>()),
        );
    }
    found
}

/// `T`'s names as a list for messages: "error, warn, info, debug or trace".
fn one_of<T: Vocabulary>() -> String {
    let names: Vec<&str> = T::ALL.iter().map(|v| v.name()).collect();
    match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// `[log]` as written, with the defaults; the names are checked in [`validate`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLog {
    /// `log.level`.
    level: String,
    /// `log.format`.
    format: String,
}

impl Default for RawLog {
    /// The built-in `[log]`: info, text.
    fn default() -> Self {
        RawLog {
            level: LogLevel::Info.as_str().into(),
            format: LogFormat::Text.as_str().into(),
        }
    }
}

/// Validates `raw`; `None` after a problem.
pub(super) fn validate(raw: RawLog, ck: &mut Checker) -> Option<LogSettings> {
    let level = parse_name(ck, "log.level", &raw.level);
    let format = parse_name(ck, "log.format", &raw.format);
    Some(LogSettings {
        level: level?,
        format: format?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::assert_each_named;

    /// Each invalid `[log]` value is reported with its key, value and the names allowed.
    #[test]
    fn each_invalid_value_is_named() {
        assert_each_named(&[
            ("[log]\nlevel = \"verbose\"", "log.level = \"verbose\": not a log level (expected error, warn, info, debug or trace)"),
            ("[log]\nformat = \"xml\"", "log.format = \"xml\": not a log format (expected text or json)"),
        ]);
    }

    /// Names are matched in any case with spaces around; every value parses from its name.
    #[test]
    fn names_ignore_case_and_spaces() {
        let mut ck = Checker::default();
        let raw = RawLog {
            level: " DEBUG ".into(),
            format: "Json".into(),
        };
        let l = validate(raw, &mut ck).unwrap();
        assert_eq!(l.level, LogLevel::Debug);
        assert_eq!(l.format, LogFormat::Json);
        for &level in LogLevel::ALL {
            assert_eq!(
                parse_name(&mut ck, "log.level", level.as_str()),
                Some(level)
            );
        }
        for &format in LogFormat::ALL {
            assert_eq!(
                parse_name(&mut ck, "log.format", format.as_str()),
                Some(format)
            );
        }
        assert!(ck.into_problems().is_empty());
    }

    /// Both keys are checked, so both problems are reported.
    #[test]
    fn both_problems_reported() {
        let mut ck = Checker::default();
        let raw = RawLog {
            level: "".into(),
            format: "yaml".into(),
        };
        assert_eq!(validate(raw, &mut ck), None);
        let problems: Vec<String> = ck.into_problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            problems,
            [
                "log.level = \"\": not a log level (expected error, warn, info, debug or trace)",
                "log.format = \"yaml\": not a log format (expected text or json)",
            ]
        );
    }
}
