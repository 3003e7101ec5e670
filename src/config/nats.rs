//! `[nats]`: windows from sensors on other taps (`netanom sensor`) over NATS JetStream,
//! merged here (the collector) instead of capturing.

use std::time::Duration;

use serde::Deserialize;

use super::learning::duration;
use super::{quoted, show_value, Checker, CliOverrides};

/// `[nats]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsSettings {
    /// The server (`nats://host:4222`); `None`: no collector, capture as `[capture]` says.
    pub url: Option<String>,
    /// The sensors merged, by name, in this order.
    pub sensors: Vec<String>,
    /// The JetStream stream of the partial windows.
    pub stream: String,
    /// Prefix of this collector's durable consumers (`<consumer>-<sensor>`).
    pub consumer: String,
    /// How long a live window waits for a missing sensor's partial after its first one.
    pub lateness: Duration,
    /// A sensor silent this long (while another one is heard) is dead: not waited for.
    pub liveness: Duration,
    /// How long JetStream waits for an acknowledgement (or a progress reminder) before
    /// delivering again; also how long a restarted collector may wait for the windows its
    /// predecessor had in flight.
    pub ack_wait: Duration,
    /// Unacknowledged windows per sensor (how far one sensor may run ahead of another).
    pub max_ack_pending: u32,
}

/// `[nats]` as written, with the defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawNats {
    url: String,
    /// A list, or one comma-separated string (from the environment).
    sensors: Option<config::Value>,
    stream: String,
    consumer: String,
    lateness: String,
    liveness: String,
    ack_wait: String,
    max_ack_pending: i64,
}

impl Default for RawNats {
    /// No collector; when one is set: 2 s lateness, 10 s liveness, 30 s until redelivery,
    /// 4,096 windows ahead.
    fn default() -> Self {
        RawNats {
            url: String::new(),
            sensors: None,
            stream: "NETANOM_PARTIALS".into(),
            consumer: "netanom".into(),
            lateness: "2s".into(),
            liveness: "10s".into(),
            ack_wait: "30s".into(),
            max_ack_pending: 4096,
        }
    }
}

impl RawNats {
    /// `nats.url` as written, trimmed.
    pub(super) fn url(&self) -> &str {
        self.url.trim()
    }
}

/// A sensor's name as `netanom sensor --sensor` takes it.
fn sensor_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Applies `--nats` and `--sensors` and validates `raw`; `None` after a problem.
pub(super) fn validate(
    mut raw: RawNats,
    ck: &mut Checker,
    cli: &CliOverrides,
) -> Option<NatsSettings> {
    let mark = ck.mark();
    if cli.interface.is_some() || !cli.pcap_files.is_empty() {
        // A source flag chooses the source: the configured collector is not used.
        raw.url = String::new();
        raw.sensors = None;
    }
    if let Some(url) = &cli.nats_url {
        raw.url = url.clone();
        ck.set_by_flag("nats.url", "--nats");
    }
    let mut sensors: Vec<String> = match &raw.sensors {
        None => Vec::new(),
        Some(v) => match &v.kind {
            config::ValueKind::String(s) => s.split(',').map(|s| s.trim().to_string()).collect(),
            config::ValueKind::Array(items) => items
                .iter()
                .map(|i| i.clone().into_string().unwrap_or_default())
                .collect(),
            _ => {
                ck.fail(
                    "nats.sensors",
                    show_value(v),
                    "not a list of sensor names (expected e.g. [\"tap-a\", \"tap-b\"])",
                );
                Vec::new()
            }
        },
    };
    if !cli.sensors.is_empty() {
        sensors = cli.sensors.clone();
        ck.set_by_flag("nats.sensors", "--sensors");
    }
    let url = Some(raw.url.trim().to_string()).filter(|u| !u.is_empty());
    for s in &sensors {
        if !sensor_name_ok(s) {
            ck.fail("nats.sensors", quoted(s), "not a sensor name (1 to 64 letters, digits, '-' or '_', as given to netanom sensor --sensor)");
        }
    }
    let mut unique = sensors.clone();
    unique.sort();
    unique.dedup();
    if unique.len() != sensors.len() {
        ck.fail(
            "nats.sensors",
            quoted(&sensors.join(",")),
            "a sensor is named twice",
        );
    }
    match (&url, sensors.len()) {
        (Some(u), 0) => ck.fail(
            "nats.sensors",
            "(not set)",
            format!(
                "nats.url = {} collects from sensors: name them (--sensors a,b)",
                quoted(u)
            ),
        ),
        (None, n) if n > 0 => ck.fail(
            "nats.url",
            "(not set)",
            "nats.sensors needs the NATS server of the sensors (--nats nats://host:4222)",
        ),
        (_, n) if n > 64 => ck.fail("nats.sensors", n.to_string(), "at most 64 sensors"),
        _ => {}
    }
    if let Some(u) = &url {
        if !(u.starts_with("nats://") || u.starts_with("tls://") || !u.contains("://")) {
            ck.fail(
                "nats.url",
                quoted(u),
                "not a NATS URL (expected e.g. nats://127.0.0.1:4222)",
            );
        }
    }
    if raw.stream.is_empty() || raw.stream.contains(['.', ' ', '*', '>']) {
        ck.fail(
            "nats.stream",
            quoted(&raw.stream),
            "not a stream name (no '.', spaces, '*' or '>')",
        );
    }
    if !sensor_name_ok(&raw.consumer) {
        ck.fail(
            "nats.consumer",
            quoted(&raw.consumer),
            "not a consumer name (letters, digits, '-' or '_')",
        );
    }
    let lateness = duration(ck, "nats.lateness", &raw.lateness);
    let liveness = duration(ck, "nats.liveness", &raw.liveness);
    let ack_wait = duration(ck, "nats.ack_wait", &raw.ack_wait);
    if let (Some(l), Some(v), Some(a)) = (lateness, liveness, ack_wait) {
        if a <= l + v {
            ck.fail("nats.ack_wait", quoted(&raw.ack_wait), "not longer than nats.lateness + nats.liveness: windows still waiting would be delivered again");
        }
    }
    let max_ack_pending = ck.int_range(
        "nats.max_ack_pending",
        raw.max_ack_pending,
        16,
        1_000_000,
        "windows",
    ) as u32;
    if !ck.clean_since(mark) {
        return None;
    }
    Some(NatsSettings {
        url,
        sensors,
        stream: raw.stream,
        consumer: raw.consumer,
        lateness: lateness?,
        liveness: liveness?,
        ack_wait: ack_wait?,
        max_ack_pending,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{err, load};
    use crate::config::{CaptureSource, CliOverrides};

    /// A collector needs no capture source; its settings from the file and the flags.
    #[test]
    fn a_collector_from_file_and_flags() {
        let s = load(
            "[nats]\nurl = \"nats://127.0.0.1:4222\"\nsensors = [\"a\", \"b\"]\n",
            &[],
            &CliOverrides::default(),
        )
        .unwrap();
        assert_eq!(s.capture.source, CaptureSource::Sensors);
        assert_eq!(s.nats.sensors, ["a", "b"]);
        assert_eq!(s.nats.lateness, std::time::Duration::from_secs(2));
        let cli = CliOverrides {
            nats_url: Some("nats://h:1".into()),
            sensors: vec!["x".into()],
            ..Default::default()
        };
        let s = load("", &[("NETANOM_NATS__SENSORS", "p,q")], &cli).unwrap();
        assert_eq!(
            (s.nats.url.as_deref(), s.nats.sensors.as_slice()),
            (Some("nats://h:1"), &["x".to_string()][..])
        );
        let s = load(
            "",
            &[
                ("NETANOM_NATS__URL", "nats://h:2"),
                ("NETANOM_NATS__SENSORS", "p, q"),
            ],
            &CliOverrides::default(),
        )
        .unwrap();
        assert_eq!(s.nats.sensors, ["p", "q"]);
    }

    /// Each invalid `[nats]` value is reported with its key, value and what is allowed.
    #[test]
    fn each_invalid_value_is_named() {
        for (toml, want) in [
            (
                "[nats]\nurl = \"nats://h:4222\"",
                "nats.sensors = (not set): nats.url = \"nats://h:4222\" collects from sensors",
            ),
            (
                "[nats]\nsensors = [\"a\"]\n[capture]\ninterface = \"eth0\"",
                "nats.url = (not set): nats.sensors needs the NATS server",
            ),
            (
                "[nats]\nurl = \"nats://h:1\"\nsensors = [\"a.b\"]",
                "nats.sensors = \"a.b\": not a sensor name",
            ),
            (
                "[nats]\nurl = \"nats://h:1\"\nsensors = [\"a\", \"a\"]",
                "nats.sensors = \"a,a\": a sensor is named twice",
            ),
            (
                "[nats]\nurl = \"http://h:1\"\nsensors = [\"a\"]",
                "nats.url = \"http://h:1\": not a NATS URL",
            ),
            (
                "[nats]\nurl = \"nats://h:1\"\nsensors = [\"a\"]\nlateness = \"soon\"",
                "nats.lateness = \"soon\": not a duration",
            ),
            (
                "[nats]\nurl = \"nats://h:1\"\nsensors = [\"a\"]\nack_wait = \"5s\"",
                "nats.ack_wait = \"5s\": not longer than nats.lateness + nats.liveness",
            ),
            (
                "[nats]\nurl = \"nats://h:1\"\nsensors = [\"a\"]\nmax_ack_pending = 1",
                "nats.max_ack_pending = 1: out of range",
            ),
            (
                "[nats]\nurl = \"nats://h:1\"\nsensors = [\"a\"]\n[capture]\ninterface = \"eth0\"",
                "capture.interface = \"eth0\": nats.url is set too",
            ),
            (
                "[nats]\nurl = \"nats://h:1\"\nsensors = [\"a\"]\n[capture]\nworkers = 2",
                "capture.workers = 2: capture workers share a live interface",
            ),
        ] {
            let got = err(toml, &[], &CliOverrides::default());
            assert!(
                got.contains(want),
                "for {toml:?}\n got: {got}\nwant: {want}"
            );
        }
    }
}
