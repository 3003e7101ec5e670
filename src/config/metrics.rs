//! `[metrics]`: the Prometheus `/metrics` and `/healthz` HTTP endpoint.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::{quoted, Checker};
use crate::window::Omega;

/// Default metrics listen address (loopback: scrape through a local Prometheus or a proxy).
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9405";

/// `[metrics]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Serve the endpoint at all.
    pub enabled: bool,
    /// Address the endpoint listens on.
    pub listen: SocketAddr,
    /// `/healthz` fails when no window was scored for this long; `None`: 3 ω + 30 s.
    pub health_stale_after_s: Option<u64>,
}

impl MetricsSettings {
    /// How long `/healthz` tolerates no scored window: `metrics.health_stale_after_s`, or
    /// 3 ω + 30 s (a window is scored every ω; startup needs 3 windows before the first score).
    pub fn health_stale_after(&self, omega: Omega) -> Duration {
        match self.health_stale_after_s {
            Some(s) => Duration::from_secs(s),
            None => omega.duration() * 3 + Duration::from_secs(30),
        }
    }
}

/// `[metrics]` as written, with the defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawMetrics {
    /// `metrics.enabled`.
    enabled: bool,
    /// `metrics.listen`: an address and port; checked in [`validate`].
    listen: String,
    /// `metrics.health_stale_after_s`.
    health_stale_after_s: Option<i64>,
}

impl Default for RawMetrics {
    /// The built-in `[metrics]`: enabled on [`DEFAULT_METRICS_LISTEN`], staleness from ω.
    fn default() -> Self {
        RawMetrics {
            enabled: true,
            listen: DEFAULT_METRICS_LISTEN.into(),
            health_stale_after_s: None,
        }
    }
}

/// Applies `--metrics-listen` (`cli_listen`) to `raw` and validates it; `None` after a problem.
pub(super) fn validate(
    mut raw: RawMetrics,
    ck: &mut Checker,
    cli_listen: Option<String>,
) -> Option<MetricsSettings> {
    let mark = ck.mark();
    ck.flag(
        "metrics.listen",
        "--metrics-listen",
        &mut raw.listen,
        cli_listen,
    );
    let listen = match raw.listen.trim().parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            ck.fail(
                "metrics.listen",
                quoted(&raw.listen),
                "not a socket address (expected e.g. 127.0.0.1:9405 or [::1]:9405; host names are not resolved)",
            );
            None
        }
    };
    let health_stale_after_s = raw
        .health_stale_after_s
        .map(|s| ck.int_range("metrics.health_stale_after_s", s, 1, 86_400, "seconds") as u64);
    if !ck.clean_since(mark) {
        return None;
    }
    Some(MetricsSettings {
        enabled: raw.enabled,
        listen: listen?,
        health_stale_after_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::assert_each_named;

    /// Each invalid `[metrics]` value is reported with its key, value and what is allowed.
    #[test]
    fn each_invalid_value_is_named() {
        assert_each_named(&[
            ("[metrics]\nlisten = \"localhost:99999\"", "metrics.listen = \"localhost:99999\": not a socket address (expected e.g. 127.0.0.1:9405"),
            ("[metrics]\nlisten = \"127.0.0.1\"", "metrics.listen = \"127.0.0.1\": not a socket address"),
            ("[metrics]\nhealth_stale_after_s = 0", "metrics.health_stale_after_s = 0: out of range"),
        ]);
    }

    /// The section on its own: a trimmed IPv6 address, and a configured staleness that replaces
    /// the one derived from ω.
    #[test]
    fn validates_on_its_own() {
        let mut ck = Checker::default();
        let raw = RawMetrics {
            enabled: false,
            listen: " [::]:9500 ".into(),
            health_stale_after_s: Some(86_400),
        };
        let m = validate(raw, &mut ck, None).unwrap();
        assert!(!m.enabled);
        assert_eq!(m.listen, "[::]:9500".parse().unwrap());
        let omega = Omega::from_micros(30_000_000).unwrap();
        assert_eq!(m.health_stale_after(omega), Duration::from_secs(86_400));
        let raw = RawMetrics {
            health_stale_after_s: Some(86_401),
            ..Default::default()
        };
        assert_eq!(validate(raw, &mut ck, None), None);
        let problems = ck.into_problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            problems[0].to_string(),
            "metrics.health_stale_after_s = 86401: out of range (expected 1 to 86400 seconds)"
        );
    }
}
