//! The alert log: one JSON object per line per incident event (`docs/alerts.md`).
//!
//! - Each event is serialised to one buffer and written with a single `write` on a file opened
//!   with `O_APPEND`, so a reader (`tail -F`, a log shipper) never sees half a line from us, and
//!   it is in the kernel when [`AlertLog::write`] returns (no user-space buffer to lose on a
//!   crash).
//! - With `fsync` (the default) it is also `fdatasync`ed: it then survives a power loss. Events
//!   are at most two per incident, so the cost does not matter; on a stalled disk the call blocks
//!   the thread that writes (keep it off the capture path).
//! - [`AlertLog::reopen`] (on SIGHUP, after logrotate renamed the file) opens the path again,
//!   creating it with mode 0640, and only then lets go of the old file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::detect::incident::{EndReason, IncidentEvent, IncidentSummary, ScoredWindow};
use crate::window::features::{FeatureVector, FEATURE_NAMES, NUM_FEATURES};
use crate::window::{Omega, Talkers, Window};

/// Version of the event schema; bumped on an incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// `event_type` of an alert event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// The event that reports an incident.
    IncidentStart,
    /// The event that closes an incident.
    IncidentEnd,
}

const TIMESTAMP_FORMAT: &[BorrowedFormatItem<'static>] = format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6][offset_hour sign:mandatory]:[offset_minute]"
);

/// ISO 8601 / RFC 3339 in UTC with microseconds and an explicit offset, as Suricata's EVE
/// writes it: `2026-11-29T01:02:03.123456+00:00`. Out-of-range times give the epoch.
pub fn format_timestamp(ns: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(TIMESTAMP_FORMAT)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000+00:00".into())
}

/// The system host name (`gethostname`), or "localhost" if it cannot be read.
pub fn system_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(s) if !s.is_empty() => s.to_string(),
        _ => "localhost".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Explanations: which features deviated, who talked.

/// One feature of a window against its training range.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FeatureDeviation {
    /// Contract name (`docs/features.md`).
    pub name: &'static str,
    /// The window's raw value.
    pub value: f64,
    /// Smallest value in the training windows.
    pub training_min: f64,
    /// Largest value in the training windows.
    pub training_max: f64,
    /// `(value − min) / (max − min)` as the model saw it: 0–1 inside the training range,
    /// beyond it outside; 0 for a feature that was constant in training.
    pub normalized: f64,
}

impl FeatureDeviation {
    /// Distance outside [0, 1] in normalised units (0 inside the range).
    pub fn outside(&self) -> f64 {
        if self.normalized > 1.0 {
            self.normalized - 1.0
        } else if self.normalized < 0.0 {
            -self.normalized
        } else {
            0.0
        }
    }
}

/// The `n` features that deviate most from the training range: ranked by distance outside
/// [0, 1] in normalised units, then by normalised value (higher first), then feature order.
///
/// `min`/`max` are the model's per-feature training extremes (53 each; extra values are
/// ignored, missing ones end the list). A feature constant in training is normalised to 0,
/// as the model does, whatever its value.
pub fn top_deviations(
    features: &FeatureVector,
    min: &[f64],
    max: &[f64],
    n: usize,
) -> Vec<FeatureDeviation> {
    let mut all: Vec<FeatureDeviation> = (0..NUM_FEATURES.min(min.len()).min(max.len()))
        .map(|i| {
            let (v, lo, hi) = (features[i], min[i], max[i]);
            let range = hi - lo;
            let normalized = if range > 0.0 { (v - lo) / range } else { 0.0 };
            FeatureDeviation {
                name: FEATURE_NAMES[i],
                value: v,
                training_min: lo,
                training_max: hi,
                normalized,
            }
        })
        .collect();
    // NaN sorts last.
    let key = |x: f64| if x.is_nan() { f64::NEG_INFINITY } else { x };
    all.sort_by(|a, b| {
        key(b.outside())
            .total_cmp(&key(a.outside()))
            .then(key(b.normalized).total_cmp(&key(a.normalized)))
    });
    all.truncate(n);
    all
}

/// An address and its packet count in the window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AddrCount {
    pub ip: IpAddr,
    pub packets: u64,
}

/// A port and its packet count in the window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PortCount {
    pub port: u16,
    pub packets: u64,
}

/// A window's top talkers, by packet count (ECS names: source, destination).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TopTalkers {
    pub source: Vec<AddrCount>,
    pub destination: Vec<AddrCount>,
    pub destination_port: Vec<PortCount>,
    /// True when counts are sketch estimates (a window with more than 65,536 addresses).
    pub approximate: bool,
}

impl From<&Talkers> for TopTalkers {
    fn from(t: &Talkers) -> Self {
        let addrs = |v: &[(IpAddr, u64)]| {
            v.iter()
                .map(|&(ip, packets)| AddrCount { ip, packets })
                .collect()
        };
        TopTalkers {
            source: addrs(&t.src_addrs),
            destination: addrs(&t.dst_addrs),
            destination_port: t
                .dst_ports
                .iter()
                .map(|&(port, packets)| PortCount { port, packets })
                .collect(),
            approximate: t.approximate,
        }
    }
}

/// What an event says about one window's content.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Explanation {
    pub top_features: Vec<FeatureDeviation>,
    pub top_talkers: TopTalkers,
}

impl Explanation {
    /// Explains `window` against the model's training range, listing `n_features` features.
    pub fn of(window: &Window, min: &[f64], max: &[f64], n_features: usize) -> Explanation {
        Explanation {
            top_features: top_deviations(&window.features, min, max, n_features),
            top_talkers: TopTalkers::from(&window.talkers),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Events.

/// Fixed facts every event carries.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertContext {
    /// `host` field.
    pub host: String,
    /// The model bundle's id.
    pub model_id: String,
    /// The model's ω.
    pub omega: Omega,
}

/// A window's span.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WindowSpan {
    pub start: String,
    pub end: String,
    /// Unix seconds (float; the ISO strings are exact).
    pub start_epoch: f64,
    pub end_epoch: f64,
}

impl WindowSpan {
    pub fn new(start_ns: i64, end_ns: i64) -> Self {
        WindowSpan {
            start: format_timestamp(start_ns),
            end: format_timestamp(end_ns),
            start_epoch: start_ns as f64 / 1e9,
            end_epoch: end_ns as f64 / 1e9,
        }
    }
}

/// `model` object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelRef {
    pub id: String,
    /// ω in seconds.
    pub omega_s: f64,
}

/// `incident` object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IncidentRef {
    pub id: String,
    /// Start of the first alerting window.
    pub start: String,
    pub start_epoch: f64,
    /// End of the last alerting window (end events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_epoch: Option<f64>,
    /// Why it ended: cooldown, shutdown, sequence_break (end events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    /// From start to the end of the last alerting window so far, seconds.
    pub duration_s: f64,
    pub peak_score: f64,
    pub peak_window: WindowSpan,
    /// Alerting windows so far.
    pub windows: u64,
    /// Windows from the first to the last alerting one (short dips included).
    pub span_windows: u64,
}

/// One line of the alert log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertEvent {
    /// End of `window` (capture time, not wall-clock time: replays keep their own times).
    pub timestamp: String,
    pub event_type: EventType,
    pub schema_version: u32,
    pub host: String,
    /// Start: the window that opened (reported) the incident. End: the last window seen, the
    /// one that completed the cooldown.
    pub window: WindowSpan,
    /// Score of `window`.
    pub score: f64,
    pub threshold: f64,
    pub model: ModelRef,
    pub incident: IncidentRef,
    /// Start: of `window`. End: of the peak window.
    pub top_features: Vec<FeatureDeviation>,
    /// Start: of `window`. End: of the peak window.
    pub top_talkers: TopTalkers,
}

impl AlertEvent {
    fn base(
        ctx: &AlertContext,
        event_type: EventType,
        w: &ScoredWindow,
        inc: IncidentRef,
        ex: &Explanation,
    ) -> AlertEvent {
        AlertEvent {
            timestamp: format_timestamp(w.end_ns),
            event_type,
            schema_version: SCHEMA_VERSION,
            host: ctx.host.clone(),
            window: WindowSpan::new(w.start_ns, w.end_ns),
            score: w.score,
            threshold: w.threshold,
            model: ModelRef {
                id: ctx.model_id.clone(),
                omega_s: ctx.omega.secs_f64(),
            },
            incident: inc,
            top_features: ex.top_features.clone(),
            top_talkers: ex.top_talkers.clone(),
        }
    }

    fn incident_ref(inc: &IncidentSummary) -> IncidentRef {
        IncidentRef {
            id: inc.id.clone(),
            start: format_timestamp(inc.start_ns),
            start_epoch: inc.start_ns as f64 / 1e9,
            end: None,
            end_epoch: None,
            end_reason: None,
            duration_s: inc.duration_s(),
            peak_score: inc.peak.score,
            peak_window: WindowSpan::new(inc.peak.start_ns, inc.peak.end_ns),
            windows: inc.alerting_windows,
            span_windows: inc.span_windows,
        }
    }

    /// `incident_start` for an incident reported at `window`, explained by that window.
    pub fn start(
        ctx: &AlertContext,
        incident: &IncidentSummary,
        window: &ScoredWindow,
        explain: &Explanation,
    ) -> AlertEvent {
        Self::base(
            ctx,
            EventType::IncidentStart,
            window,
            Self::incident_ref(incident),
            explain,
        )
    }

    /// `incident_end`; `peak` explains the incident's peak window.
    pub fn end(
        ctx: &AlertContext,
        incident: &IncidentSummary,
        reason: EndReason,
        window: &ScoredWindow,
        peak: &Explanation,
    ) -> AlertEvent {
        let mut r = Self::incident_ref(incident);
        r.end = Some(format_timestamp(incident.last_alert_end_ns));
        r.end_epoch = Some(incident.last_alert_end_ns as f64 / 1e9);
        r.end_reason = Some(reason);
        Self::base(ctx, EventType::IncidentEnd, window, r, peak)
    }

    /// The event for a tracker's event whose payload is the peak's [`Explanation`];
    /// `current` explains the window just observed (used by start events only).
    pub fn from_incident_event(
        ctx: &AlertContext,
        event: &IncidentEvent<Explanation>,
        current: impl FnOnce() -> Explanation,
    ) -> AlertEvent {
        match event {
            IncidentEvent::Start { incident, window } => {
                Self::start(ctx, incident, window, &current())
            }
            IncidentEvent::End {
                incident,
                reason,
                window,
                peak_payload,
            } => Self::end(ctx, incident, *reason, window, peak_payload),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The file.

/// The alert log file.
pub struct AlertLog {
    path: PathBuf,
    file: File,
    fsync: bool,
    /// The last write failed part-way: start the next one on a new line.
    broken_line: bool,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open alert log {}: {e}", path.display()),
            )
        })
}

impl AlertLog {
    /// Opens (appends to, or creates with mode 0640) the alert log at `path`.
    pub fn open(path: impl Into<PathBuf>, fsync: bool) -> io::Result<AlertLog> {
        let path = path.into();
        let file = open_append(&path)?;
        Ok(AlertLog {
            path,
            file,
            fsync,
            broken_line: false,
        })
    }

    /// The path it writes to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event as a line, flushed to the kernel (and to disk with `fsync`).
    pub fn write(&mut self, event: &AlertEvent) -> io::Result<()> {
        self.write_json(event)
    }

    /// Appends any serialisable value as one JSON line.
    pub fn write_json<T: Serialize + ?Sized>(&mut self, value: &T) -> io::Result<()> {
        let mut line = Vec::with_capacity(1024);
        if self.broken_line {
            line.push(b'\n');
        }
        serde_json::to_writer(&mut line, value).map_err(io::Error::other)?;
        line.push(b'\n');
        let result = self.file.write_all(&line).and_then(|()| self.file.flush());
        let result = match result {
            Ok(()) if self.fsync => self.file.sync_data(),
            other => other,
        };
        match result {
            Ok(()) => {
                self.broken_line = false;
                Ok(())
            }
            Err(e) => {
                self.broken_line = true;
                Err(io::Error::new(
                    e.kind(),
                    format!("cannot write alert log {}: {e}", self.path.display()),
                ))
            }
        }
    }

    /// Opens the path again (after logrotate moved the file away); on failure the old file is
    /// kept and written to.
    pub fn reopen(&mut self) -> io::Result<()> {
        let file = open_append(&self.path)?;
        self.file = file;
        self.broken_line = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::incident::{IncidentConfig, IncidentTracker};
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;

    const S: i64 = 1_000_000_000;
    // 2026-11-29T01:02:00Z
    const T0: i64 = 1_795_914_120 * S;

    fn window(k: i64, syn: f64) -> Window {
        let mut features = [1.0; NUM_FEATURES];
        features[9] = syn; // syn_count
        features[1] = 50.0; // pkt_count, inside [0, 100]
        Window {
            start_ns: T0 + k * 30 * S,
            end_ns: T0 + (k + 1) * 30 * S,
            features,
            talkers: Talkers {
                src_addrs: vec![
                    ("192.0.2.7".parse().unwrap(), 900),
                    ("2001:db8::1".parse().unwrap(), 12),
                ],
                dst_addrs: vec![("198.51.100.1".parse().unwrap(), 910)],
                dst_ports: vec![(80, 905), (443, 7)],
                approximate: false,
            },
            distinct_estimated: false,
            late_packets: 0,
            after_time_jump: false,
        }
    }

    fn ranges() -> (Vec<f64>, Vec<f64>) {
        let mut max = vec![2.0; NUM_FEATURES];
        max[9] = 10.0;
        max[1] = 100.0;
        (vec![0.0; NUM_FEATURES], max)
    }

    fn ctx() -> AlertContext {
        AlertContext {
            host: "tap-01".into(),
            model_id: "m-2026-11".into(),
            omega: Omega::from_micros(30_000_000).unwrap(),
        }
    }

    /// Runs a spike through a tracker and returns the two events.
    fn events() -> (AlertEvent, AlertEvent) {
        let (min, max) = ranges();
        let mut tr: IncidentTracker<Explanation> =
            IncidentTracker::new(IncidentConfig::default(), "abc");
        let mut out = Vec::new();
        for (k, (score, syn)) in [
            (0.1, 1.0),
            (7.5, 500.0),
            (9.0, 900.0),
            (0.2, 1.0),
            (0.2, 1.0),
            (0.2, 1.0),
        ]
        .into_iter()
        .enumerate()
        {
            let w = window(k as i64, syn);
            let sw = ScoredWindow {
                start_ns: w.start_ns,
                end_ns: w.end_ns,
                score,
                threshold: 2.0,
            };
            if let Some(ev) = tr.observe(sw, || Explanation::of(&w, &min, &max, 3)) {
                out.push(AlertEvent::from_incident_event(&ctx(), &ev, || {
                    Explanation::of(&w, &min, &max, 3)
                }));
            }
        }
        assert_eq!(out.len(), 2);
        let end = out.pop().unwrap();
        (out.pop().unwrap(), end)
    }

    fn ts_ok(s: &str) -> bool {
        // YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM
        let b = s.as_bytes();
        let digits =
            |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
        b.len() == 32
            && digits(0..4)
            && b[4] == b'-'
            && digits(5..7)
            && b[7] == b'-'
            && digits(8..10)
            && b[10] == b'T'
            && digits(11..13)
            && b[13] == b':'
            && digits(14..16)
            && b[16] == b':'
            && digits(17..19)
            && b[19] == b'.'
            && digits(20..26)
            && (b[26] == b'+' || b[26] == b'-')
            && digits(27..29)
            && b[29] == b':'
            && digits(30..32)
    }

    #[test]
    fn timestamp_format() {
        assert_eq!(
            format_timestamp(T0 + 3 * S + 123_456_789),
            "2026-11-29T01:02:03.123456+00:00"
        );
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000000+00:00");
        assert!(ts_ok(&format_timestamp(T0)));
        assert!(!ts_ok("2026-11-29T01:02:03Z"));
    }

    #[test]
    fn deviations_ranked() {
        let (min, mut max) = ranges();
        let mut f = [1.0; NUM_FEATURES]; // normalised 0.5 for most
        f[9] = 30.0; // syn_count: (30-0)/10 = 3 → 2 outside
        f[0] = -4.0; // pkt_size_mean: -2 → 2 outside (tie on distance; lower normalised)
        f[2] = 1.9; // pkt_size_var: 0.95 inside
        f[1] = 50.0; // 0.5
        max[5] = 0.0; // dst_ip_distinct constant in training: normalised 0 whatever the value
        f[5] = 1e6;
        let top = top_deviations(&f, &min, &max, 4);
        let names: Vec<_> = top.iter().map(|d| d.name).collect();
        assert_eq!(
            names,
            ["syn_count", "pkt_size_mean", "pkt_size_var", "pkt_count"]
        );
        assert_eq!(top[0].normalized, 3.0);
        assert_eq!(top[0].outside(), 2.0);
        assert_eq!(top[0].training_max, 10.0);
        assert_eq!(top[1].normalized, -2.0);
        assert_eq!(top_deviations(&f, &min, &max, 0), vec![]);
        assert_eq!(top_deviations(&f, &min, &max, 100).len(), NUM_FEATURES);
        let all = top_deviations(&f, &min, &max, 100);
        let d = all.iter().find(|d| d.name == "dst_ip_distinct").unwrap();
        assert_eq!(d.normalized, 0.0);
    }

    #[test]
    fn start_and_end_schema() {
        let (start, end) = events();
        let s: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&start).unwrap()).unwrap();
        assert_eq!(s["event_type"], "incident_start");
        assert_eq!(s["schema_version"], 1);
        assert_eq!(s["host"], "tap-01");
        assert!(
            ts_ok(s["timestamp"].as_str().unwrap()),
            "{}",
            s["timestamp"]
        );
        assert_eq!(
            s["timestamp"], "2026-11-29T01:03:00.000000+00:00",
            "end of the first alerting window"
        );
        assert_eq!(s["window"]["start"], "2026-11-29T01:02:30.000000+00:00");
        assert_eq!(s["window"]["end"], "2026-11-29T01:03:00.000000+00:00");
        assert_eq!(s["window"]["start_epoch"].as_f64(), Some(1_795_914_150.0));
        assert_eq!(s["window"]["end_epoch"].as_f64(), Some(1_795_914_180.0));
        assert_eq!(s["score"].as_f64(), Some(7.5));
        assert_eq!(s["threshold"].as_f64(), Some(2.0));
        assert_eq!(s["model"]["id"], "m-2026-11");
        assert_eq!(s["model"]["omega_s"].as_f64(), Some(30.0));
        let inc = &s["incident"];
        assert_eq!(inc["id"], "abc-1");
        assert_eq!(inc["start"], "2026-11-29T01:02:30.000000+00:00");
        assert_eq!(inc["windows"], 1);
        assert_eq!(inc["duration_s"].as_f64(), Some(30.0));
        assert_eq!(inc["peak_score"].as_f64(), Some(7.5));
        assert!(inc.get("end").is_none() && inc.get("end_reason").is_none());
        let tf = s["top_features"].as_array().unwrap();
        assert_eq!(tf.len(), 3);
        assert_eq!(tf[0]["name"], "syn_count");
        assert_eq!(tf[0]["value"].as_f64(), Some(500.0));
        assert_eq!(tf[0]["training_min"].as_f64(), Some(0.0));
        assert_eq!(tf[0]["training_max"].as_f64(), Some(10.0));
        assert_eq!(tf[0]["normalized"].as_f64(), Some(50.0));
        let tt = &s["top_talkers"];
        assert_eq!(tt["source"][0]["ip"], "192.0.2.7");
        assert_eq!(tt["source"][0]["packets"], 900);
        assert_eq!(tt["source"][1]["ip"], "2001:db8::1");
        assert_eq!(tt["destination"][0]["ip"], "198.51.100.1");
        assert_eq!(tt["destination_port"][0]["port"], 80);
        assert_eq!(tt["destination_port"][0]["packets"], 905);
        assert_eq!(tt["approximate"], false);

        let e: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&end).unwrap()).unwrap();
        assert_eq!(e["event_type"], "incident_end");
        assert!(ts_ok(e["timestamp"].as_str().unwrap()));
        assert_eq!(
            e["timestamp"], "2026-11-29T01:05:00.000000+00:00",
            "end of the window completing the cooldown"
        );
        assert_eq!(e["score"].as_f64(), Some(0.2));
        let inc = &e["incident"];
        assert_eq!(inc["id"], "abc-1");
        assert_eq!(inc["start"], "2026-11-29T01:02:30.000000+00:00");
        assert_eq!(inc["end"], "2026-11-29T01:03:30.000000+00:00");
        assert_eq!(inc["end_reason"], "cooldown");
        assert_eq!(inc["duration_s"].as_f64(), Some(60.0));
        assert_eq!(inc["peak_score"].as_f64(), Some(9.0));
        assert_eq!(
            inc["peak_window"]["start"],
            "2026-11-29T01:03:00.000000+00:00"
        );
        assert_eq!(inc["windows"], 2);
        assert_eq!(inc["span_windows"], 2);
        assert!(inc["end_epoch"].is_f64());
        assert_eq!(
            e["top_features"][0]["value"].as_f64(),
            Some(900.0),
            "explains the peak window"
        );
        for v in [&s, &e] {
            for key in ["timestamp", "event_type", "host"] {
                assert!(v[key].is_string(), "{key}");
            }
            for key in ["score", "threshold"] {
                assert!(v[key].is_number(), "{key}");
            }
            assert!(v["top_features"].is_array() && v["top_talkers"].is_object());
        }
    }

    #[test]
    fn written_line_is_readable_before_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let mut log = AlertLog::open(&path, true).unwrap();
        let (start, end) = events();
        log.write(&start).unwrap();
        // read while the writer is alive: the line must be there, complete
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'));
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["event_type"], "incident_start");
        log.write(&end).unwrap();
        let lines: Vec<String> = BufReader::new(File::open(&path).unwrap())
            .lines()
            .map(Result::unwrap)
            .collect();
        assert_eq!(lines.len(), 2);
        assert!(lines
            .iter()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o640, 0, "created at most 0640, got {mode:o}");
        drop(log);
        // appends to an existing file
        let mut log = AlertLog::open(&path, false).unwrap();
        log.write(&start).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
    }

    #[test]
    fn reopen_after_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let rotated = dir.path().join("alerts.jsonl.1");
        let mut log = AlertLog::open(&path, false).unwrap();
        let (start, end) = events();
        log.write(&start).unwrap();
        std::fs::rename(&path, &rotated).unwrap();
        // before reopen, writes still go to the renamed file (same inode)
        log.write(&start).unwrap();
        log.reopen().unwrap();
        log.write(&end).unwrap();
        let old = std::fs::read_to_string(&rotated).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(old.lines().count(), 2);
        assert_eq!(new.lines().count(), 1);
        assert!(new.contains("\"incident_end\""));
        // a failed reopen keeps the old file
        let mut log = AlertLog::open(dir.path().join("sub-alerts.jsonl"), false).unwrap();
        log.path = dir.path().join("missing-dir/alerts.jsonl");
        let e = log.reopen().unwrap_err();
        assert!(e.to_string().contains("missing-dir/alerts.jsonl"), "{e}");
        log.write(&start).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("sub-alerts.jsonl"))
                .unwrap()
                .lines()
                .count(),
            1
        );
    }

    #[test]
    fn open_error_names_path() {
        let e = AlertLog::open("/nonexistent-dir/alerts.jsonl", false)
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("/nonexistent-dir/alerts.jsonl"),
            "{e}"
        );
    }

    #[test]
    fn hostname_is_not_empty() {
        assert!(!system_hostname().is_empty());
    }
}
