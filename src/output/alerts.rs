//! The alert log: one JSON object per line per incident event (`docs/alerts.md`).
//!
//! - Each event is serialised to one buffer, a complete line, and appended to a file opened
//!   with `O_APPEND` (`write(2)`, again for the rest only if the kernel took part of it); it is
//!   in the kernel when [`AlertLog::write`] returns (no user-space buffer to lose on a crash).
//! - A write the kernel does not take whole (a full disk) is undone with `ftruncate`, so the
//!   file never keeps a partial line; the event waits in a bounded queue and is written, in
//!   order, before the next event and on [`AlertLog::retry`].
//! - Before each line the path is checked (`stat`, device and inode): a file deleted or renamed
//!   under it (rotation) is noticed without a signal and the path is opened again, creating the
//!   file with mode 0640.
//! - With `fsync` (the default) each line is also `fdatasync`ed: it then survives a power loss.
//!   Events are at most two per incident, so the cost does not matter; on a stalled disk the
//!   call blocks the thread that writes (keep it off the capture path).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::detect::incident::{
    rank, Culprit, EndReason, IncidentCulprit, IncidentEvent, IncidentSummary, ScoredWindow, Target,
};
use crate::window::features::{
    CountUnit, Family, Feature, FeatureSet, FeatureVector, Role, FEATURE_NAMES, NUM_FEATURES,
};
use crate::window::{Contributor, Contributors, Omega, Talkers, Window};

/// Version of the event schema; bumped on an incompatible change.
/// 2: `model.scales`, `incident.scales` (several window lengths, one incident across them).
/// 3: incidents split by culprit: `incident.culprits`, the `incident_culprit` event and its
/// `culprit`, `role` on every contributor; replies credit the host they went to.
pub const SCHEMA_VERSION: u32 = 3;

/// `event_type` of an alert event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// The event that reports an incident.
    IncidentStart,
    /// A new culprit joined a reported incident.
    IncidentCulprit,
    /// The event that closes an incident.
    IncidentEnd,
}

impl EventType {
    /// `start`, `culprit` or `end`: the kind of incident event.
    pub fn kind(self) -> &'static str {
        match self {
            EventType::IncidentStart => "start",
            EventType::IncidentCulprit => "culprit",
            EventType::IncidentEnd => "end",
        }
    }
}

/// Suricata's name of an IP protocol (`proto` in EVE): `TCP`, `UDP`, `ICMP`, `IPv6-ICMP`.
pub fn proto_name(proto: u8) -> Option<&'static str> {
    match proto {
        6 => Some("TCP"),
        17 => Some("UDP"),
        1 => Some("ICMP"),
        58 => Some("IPv6-ICMP"),
        _ => None,
    }
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
    /// The hosts that contributed most to this feature in the window, largest first (at most
    /// three; empty until [`FeatureDeviation::with_contributors`] fills it).
    pub contributors: Vec<FeatureContributor>,
}

/// A host's share of one feature: its count in the feature's family (`docs/alerts.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeatureContributor {
    /// The host.
    pub ip: IpAddr,
    /// Its count, at least the true one.
    pub count: u64,
    /// What it counts: packets, or values new in the window.
    pub unit: CountUnit,
    /// What the count says of the host: it sent the packets, the replies went to it, or it
    /// received packets from new sources.
    pub role: Role,
    /// How much `count` may exceed the true count (0: exact).
    pub max_error: u64,
    /// The family it was counted in (not in the alert log: `role` and the unit say it there;
    /// the EVE signature is chosen by it).
    pub family: Family,
}

impl FeatureContributor {
    /// A window contributor of `family`.
    pub fn new(family: Family, c: &Contributor) -> Self {
        FeatureContributor {
            ip: c.addr,
            count: c.count,
            unit: family.unit(),
            role: family.role(),
            max_error: c.max_error,
            family,
        }
    }
}

impl Serialize for FeatureContributor {
    /// `{"ip": …, "role": …, "packets" | "new_values": n}`, plus `"max_error"` when the count
    /// is not exact.
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("ip", &self.ip)?;
        m.serialize_entry("role", &self.role)?;
        let unit = match self.unit {
            CountUnit::Packets => "packets",
            CountUnit::NewValues => "new_values",
        };
        m.serialize_entry(unit, &self.count)?;
        if self.max_error > 0 {
            m.serialize_entry("max_error", &self.max_error)?;
        }
        m.end()
    }
}

impl std::fmt::Display for FeatureContributor {
    /// `127.0.66.3 sent 4654`, `127.0.66.1 got 990 replies`, `10.0.0.9 brought 1000 new`,
    /// `198.51.100.1 received 4000 new`; ` (at least N)` when the count may be over.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (ip, n) = (self.ip, self.count);
        match (self.unit, self.role) {
            (CountUnit::Packets, Role::Source) => write!(f, "{ip} sent {n}")?,
            (CountUnit::Packets, Role::ReplyTarget) => write!(f, "{ip} got {n} replies")?,
            (CountUnit::Packets, Role::FloodTarget) => write!(f, "{ip} received {n}")?,
            (CountUnit::NewValues, Role::Source) => write!(f, "{ip} brought {n} new")?,
            (CountUnit::NewValues, _) => write!(f, "{ip} received {n} new")?,
        }
        if self.max_error > 0 {
            write!(
                f,
                " (at least {})",
                self.count.saturating_sub(self.max_error)
            )?;
        }
        Ok(())
    }
}

impl FeatureDeviation {
    /// Fills [`Self::contributors`] from a window's contributors (those of the feature's
    /// families, largest count first).
    pub fn with_contributors(mut self, contributors: &Contributors) -> Self {
        if let Some(feature) = Feature::from_name(self.name) {
            let mut all: Vec<FeatureContributor> = contributors
                .for_feature(feature)
                .map(|(family, c)| FeatureContributor::new(family, c))
                .collect();
            // Stable: within a family the order is the summary's.
            all.sort_by_key(|c| std::cmp::Reverse(c.count));
            all.truncate(MAX_CONTRIBUTORS);
            self.contributors = all;
        }
        self
    }

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

/// Contributors listed per feature.
pub const MAX_CONTRIBUTORS: usize = 3;

impl std::fmt::Display for FeatureDeviation {
    /// The log line of a feature: `syn_count 4662 (training max 28): 127.0.66.3 sent 4654`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (bound, limit) = if self.normalized < 0.0 {
            ("min", self.training_min)
        } else {
            ("max", self.training_max)
        };
        write!(
            f,
            "{} {} (training {bound} {})",
            self.name,
            number(self.value),
            number(limit)
        )?;
        for (i, c) in self.contributors.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { ", " })?;
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// A feature value for a log line: whole numbers without decimals, others to 4 places.
pub fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        let s = format!("{x:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The log line of an explanation's features: each as its [`Display`](FeatureDeviation) form,
/// joined by `; `.
pub fn describe(features: &[FeatureDeviation]) -> String {
    let parts: Vec<String> = features.iter().map(ToString::to_string).collect();
    parts.join("; ")
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
                contributors: Vec::new(),
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
    /// The hosts that explain the window's deviation, in ranking order ([`window_culprits`]).
    pub culprits: Vec<Culprit>,
    /// The window was merged from sensors' or workers' parts without one of them.
    pub incomplete: bool,
}

/// Features the culprit weights are computed over: the window's most deviating ones
/// (whatever `alerts.top_features` lists).
pub const CULPRIT_FEATURES: usize = 5;

impl Explanation {
    /// Explains `window` against the model's training range, listing `n_features` features,
    /// each with the hosts that contributed most to it, and the window's culprits.
    pub fn of(window: &Window, min: &[f64], max: &[f64], n_features: usize) -> Explanation {
        let mut top = top_deviations(&window.features, min, max, n_features.max(CULPRIT_FEATURES));
        let culprits = window_culprits(window, &top[..top.len().min(CULPRIT_FEATURES)]);
        top.truncate(n_features);
        Explanation {
            top_features: top
                .into_iter()
                .map(|d| d.with_contributors(&window.contributors))
                .collect(),
            top_talkers: TopTalkers::from(&window.talkers),
            culprits,
            incomplete: window.incomplete,
        }
    }

    /// Explains a scored run of windows (oldest first) by the one whose features lie farthest
    /// outside the training range (the latest of equals); the default for an empty run.
    pub fn of_run<'a>(
        run: impl DoubleEndedIterator<Item = &'a Window>,
        min: &[f64],
        max: &[f64],
        n_features: usize,
    ) -> Explanation {
        let key = |w: &Window| {
            top_deviations(&w.features, min, max, 1)
                .first()
                .map(|d| (d.outside(), d.normalized))
                .unwrap_or((0.0, 0.0))
        };
        let mut best: Option<(&Window, (f64, f64))> = None;
        for w in run.rev() {
            let k = key(w);
            if best.is_none_or(|(_, b)| k > b) {
                best = Some((w, k));
            }
        }
        best.map(|(w, _)| Explanation::of(w, min, max, n_features))
            .unwrap_or_default()
    }
}

/// The hosts that explain a window's deviation, attacker-side roles first, then by weight.
///
/// Only the features at or above their training maximum (normalised value ≥ 1) are
/// explained: they are what the window has too much of, and a feature below its minimum is
/// nobody's doing. If none of the given features is, all of them are. Means and variances
/// (packet size, TTL) are left out: a host's share of the packets does not say how much it
/// moved an average (one odd TTL among many packets moves the variance most). Over those features f,
/// with d(f) their normalised value (how many training ranges high they are), a host's weight
/// is Σ_f d(f) · share_f(host) / Σ_f d(f), where share_f is the part of the total of the
/// feature's families the host certainly made (`count − max_error`, so spoofed one-packet
/// sources weigh nothing). Its role is the role of most of its weight; its target is the other
/// end of its heaviest flow (none for a flood's victim).
pub fn window_culprits(window: &Window, deviations: &[FeatureDeviation]) -> Vec<Culprit> {
    let shares = |d: &&FeatureDeviation| {
        !matches!(
            Feature::from_name(d.name),
            None | Some(
                Feature::PktSizeMean | Feature::PktSizeVar | Feature::TtlMean | Feature::TtlVar
            )
        )
    };
    let excess = |d: &&FeatureDeviation| d.normalized >= 1.0 && d.normalized.is_finite();
    let counted: Vec<&FeatureDeviation> = deviations.iter().filter(shares).collect();
    let explained: Vec<&FeatureDeviation> = if counted.iter().any(excess) {
        counted.into_iter().filter(excess).collect()
    } else {
        counted
            .into_iter()
            .filter(|d| d.normalized > 0.0 && d.normalized.is_finite())
            .collect()
    };
    // (host, weight per role, features), a few dozen at most.
    let mut acc: Vec<(IpAddr, [f64; 3], FeatureSet)> = Vec::new();
    let mut total = 0.0;
    for d in explained {
        let Some(feature) = Feature::from_name(d.name) else {
            continue;
        };
        let fw = d.normalized;
        total += fw;
        let n = window.contributors.feature_total(feature);
        if n == 0 {
            continue;
        }
        for (family, c) in window.contributors.for_feature(feature) {
            let share = (c.at_least() as f64 / n as f64).min(1.0);
            if share <= 0.0 {
                continue;
            }
            let i = match acc.iter().position(|e| e.0 == c.addr) {
                Some(i) => i,
                None => {
                    acc.push((c.addr, [0.0; 3], FeatureSet::default()));
                    acc.len() - 1
                }
            };
            let role = Role::ALL
                .iter()
                .position(|&r| r == family.role())
                .unwrap_or(0);
            acc[i].1[role] += fw * share;
            acc[i].2.insert(feature);
        }
    }
    if total <= 0.0 {
        return Vec::new();
    }
    let mut out: Vec<Culprit> = acc
        .into_iter()
        .map(|(ip, by_role, features)| {
            let (main, _) = by_role
                .iter()
                .enumerate()
                .fold(
                    (0, f64::MIN),
                    |best, (i, &w)| if w > best.1 { (i, w) } else { best },
                );
            let role = Role::ALL[main];
            Culprit {
                ip,
                role,
                weight: (by_role.iter().sum::<f64>() / total).min(1.0),
                features,
                target: if role.is_attacker_side() {
                    target_of(&window.contributors, ip)
                } else {
                    None
                },
            }
        })
        .collect();
    rank(&mut out);
    out
}

/// Where `ip`'s packets went: the other end of its heaviest flow, ports seen from `ip`.
fn target_of(contributors: &Contributors, ip: IpAddr) -> Option<Target> {
    let f = contributors.flow_of(ip)?;
    Some(if f.src == ip {
        Target {
            ip: f.dst,
            proto: f.proto,
            src_port: f.src_port,
            dst_port: f.dst_port,
        }
    } else {
        // Only its replies were seen: the flow back, turned around.
        Target {
            ip: f.src,
            proto: f.proto,
            src_port: f.dst_port,
            dst_port: f.src_port,
        }
    })
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
    /// The model set's window lengths, shortest first (one for the paper's method).
    pub omegas: Vec<Omega>,
}

impl AlertContext {
    /// ω of scale `scale` (the shortest if out of range).
    fn omega(&self, scale: usize) -> Option<Omega> {
        self.omegas.get(scale).or(self.omegas.first()).copied()
    }
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
    /// ω in seconds of the scale that scored `window`.
    pub omega_s: f64,
    /// Every window length the model runs, seconds, shortest first.
    pub scales: Vec<f64>,
}

/// One entry of `incident.scales`: a window length that alerted in the incident.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScaleRef {
    pub omega_s: f64,
    /// Its alerting windows.
    pub windows: u64,
    pub peak_score: f64,
    /// The threshold of its latest alerting window.
    pub threshold: f64,
    /// Its largest score ÷ threshold, each window against its own threshold.
    pub peak_ratio: f64,
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
    /// Windows of the shortest ω from the first to the last alerting one (short dips included).
    pub span_windows: u64,
    /// The window lengths that saw it, shortest first.
    pub scales: Vec<ScaleRef>,
    /// Its culprits, attacker-side roles first, then by weight.
    pub culprits: Vec<CulpritRef>,
}

/// Where a culprit's packets went (`incident.culprits[].target`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TargetRef {
    pub ip: IpAddr,
    /// `TCP`, `UDP`, `ICMP` or `IPv6-ICMP`, when one protocol carried most of the flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proto: Option<&'static str>,
    /// The culprit's own port, when one carried most of the flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// The target's port, when one carried most of the flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_port: Option<u16>,
}

impl From<&Target> for TargetRef {
    fn from(t: &Target) -> Self {
        TargetRef {
            ip: t.ip,
            proto: t.proto.and_then(proto_name),
            src_port: t.src_port,
            dest_port: t.dst_port,
        }
    }
}

/// One entry of `incident.culprits`, and the `culprit` of an `incident_culprit` event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CulpritRef {
    pub ip: IpAddr,
    /// `source`, `reply_target` or `flood_target` (a victim).
    pub role: Role,
    /// Its mean share of the explained deviation over the incident's alerting windows, 0–1.
    pub weight: f64,
    /// Alerting windows of the incident in which it was a culprit.
    pub windows: u64,
    /// The deviating features it contributed to.
    pub features: Vec<&'static str>,
    /// Start of the window in which it joined the incident.
    pub joined: String,
    /// Whom its packets went to, in the window where it weighed most.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetRef>,
}

impl From<&IncidentCulprit> for CulpritRef {
    fn from(c: &IncidentCulprit) -> Self {
        CulpritRef {
            ip: c.ip,
            role: c.role,
            // Four decimals say enough of a share.
            weight: (c.weight * 1e4).round() / 1e4,
            windows: c.windows,
            features: c.features.iter().map(Feature::name).collect(),
            joined: format_timestamp(c.joined_ns),
            target: c.target.as_ref().map(TargetRef::from),
        }
    }
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
    /// `incident_culprit` events only: the culprit that joined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub culprit: Option<CulpritRef>,
    /// Start and culprit: of `window`. End: of the peak window.
    pub top_features: Vec<FeatureDeviation>,
    /// Start: of `window`. End: of the peak window.
    pub top_talkers: TopTalkers,
    /// The ids of the operators' `suppress` rules that match the incident (absent when none):
    /// it is logged but does not fire (docs/alerts.md, "Suppressed incidents").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suppressed_by: Vec<String>,
    /// Present (true) only when the explained window was merged from the partial windows of
    /// sensors or capture workers and fired without one of them (docs/deploy.md).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
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
                omega_s: ctx.omega(w.scale).map_or(f64::NAN, Omega::secs_f64),
                scales: ctx.omegas.iter().map(|o| o.secs_f64()).collect(),
            },
            incident: inc,
            culprit: None,
            top_features: ex.top_features.clone(),
            top_talkers: ex.top_talkers.clone(),
            suppressed_by: Vec::new(),
            incomplete: ex.incomplete,
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
            scales: inc
                .alerting_scales()
                .map(|s| ScaleRef {
                    omega_s: s.omega.secs_f64(),
                    windows: s.alerting_windows,
                    peak_score: s.peak_score,
                    threshold: s.threshold,
                    peak_ratio: s.peak_ratio,
                })
                .collect(),
            culprits: inc.culprits.iter().map(CulpritRef::from).collect(),
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

    /// `incident_culprit`: `culprit` joined the incident at `window`, explained by that window.
    pub fn culprit(
        ctx: &AlertContext,
        incident: &IncidentSummary,
        window: &ScoredWindow,
        culprit: &IncidentCulprit,
        explain: &Explanation,
    ) -> AlertEvent {
        let mut e = Self::base(
            ctx,
            EventType::IncidentCulprit,
            window,
            Self::incident_ref(incident),
            explain,
        );
        e.culprit = Some(CulpritRef::from(culprit));
        e
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
    /// `current` explains the window just observed (used by start and culprit events).
    pub fn from_incident_event(
        ctx: &AlertContext,
        event: &IncidentEvent<Explanation>,
        current: impl FnOnce() -> Explanation,
    ) -> AlertEvent {
        match event {
            IncidentEvent::Start { incident, window } => {
                Self::start(ctx, incident, window, &current())
            }
            IncidentEvent::Culprit {
                incident,
                window,
                culprit,
            } => Self::culprit(ctx, incident, window, culprit, &current()),
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

/// Most events kept while the alert log cannot be written; beyond it the oldest are dropped
/// (and counted).
pub const QUEUE_CAPACITY: usize = 10_000;

/// How often queued events are retried when no new event comes.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// What went wrong with the alert log; each variant is one failed system call (or the
/// serialisation of an event).
#[derive(Debug, thiserror::Error)]
pub enum AlertLogError {
    /// Opening (creating) the file at the path failed.
    #[error("cannot open alert log {}: {source}", path.display())]
    Open {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `stat` of the path failed for another reason than its absence.
    #[error("cannot check alert log {}: {source}", path.display())]
    Check {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Appending the line failed (a full disk); nothing of it is left in the file.
    #[error("cannot write alert log {}: {source}", path.display())]
    Write {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Cutting off the part of a line a failed write left failed; nothing more is appended
    /// until it succeeds.
    #[error("cannot cut a partial line off alert log {}: {source}", path.display())]
    Truncate {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `fdatasync` failed after the whole line was written: the line is in the file (the
    /// kernel has it) but may not survive a power loss. It is not written again.
    #[error("cannot fdatasync alert log {}: {source}", path.display())]
    Sync {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The event could not be serialised (never expected).
    #[error("cannot serialise an alert event: {0}")]
    Serialize(#[source] serde_json::Error),
}

impl AlertLogError {
    /// True when the line reached the file despite the error (only [`AlertLogError::Sync`]).
    pub fn line_delivered(&self) -> bool {
        matches!(self, AlertLogError::Sync { .. })
    }
}

/// An alert log file opened for appending, with the identity (device, inode) it had then.
#[derive(Debug)]
pub struct AlertFile {
    /// The path it was opened at.
    path: PathBuf,
    /// The open file (`O_APPEND`).
    file: File,
    /// `(st_dev, st_ino)` of the open file.
    id: (u64, u64),
}

impl AlertFile {
    /// Opens `path` for appending, creating it with mode 0640.
    pub fn open(path: impl Into<PathBuf>) -> Result<AlertFile, AlertLogError> {
        let path = path.into();
        let opened = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(&path)
            .and_then(|file| {
                let m = file.metadata()?;
                Ok((file, (m.dev(), m.ino())))
            });
        match opened {
            Ok((file, id)) => Ok(AlertFile { path, file, id }),
            Err(source) => Err(AlertLogError::Open { path, source }),
        }
    }

    /// The path it was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What one attempt to write the queued events did.
#[derive(Debug, Default)]
pub struct Flush {
    /// Lines that reached the file.
    pub written: usize,
    /// Every failed call, in order (a [`AlertLogError::Sync`] one did not stop the flush).
    pub errors: Vec<AlertLogError>,
    /// The file at the path had been moved or deleted and a new one was opened there.
    pub reopened: bool,
}

/// The alert log: appends each event as one line to the file at its path.
///
/// - Before each line it checks (`stat`) that the path still names the open file; when the
///   file was deleted or renamed (rotation) it opens the path again, creating a new file, as
///   `tail -F` follows a name.
/// - A line that a write does not take whole (a full disk) is cut off again (`ftruncate` to
///   the length before it), so no partial line stays in the file; nothing is appended while a
///   cut is pending.
/// - Events that could not be written wait in a queue (up to [`QUEUE_CAPACITY`], the oldest
///   dropped beyond it, counted by [`AlertLog::take_dropped`]) and are written, in order,
///   before the next event and by [`AlertLog::retry`].
pub struct AlertLog {
    /// The file being written.
    file: AlertFile,
    /// `fdatasync` after each line.
    fsync: bool,
    /// Complete lines (ending in `\n`) not written yet, oldest first.
    queue: VecDeque<Vec<u8>>,
    /// Most lines kept in `queue`.
    capacity: usize,
    /// Lines dropped from the full queue since the last [`AlertLog::take_dropped`].
    dropped: u64,
    /// A failed write left part of a line after this length and cutting it off failed.
    truncate_to: Option<u64>,
    /// No retry of the queue before this time (after a failure).
    next_retry: Option<Instant>,
}

impl AlertLog {
    /// Opens (appends to, or creates with mode 0640) the alert log at `path`.
    pub fn open(path: impl Into<PathBuf>, fsync: bool) -> Result<AlertLog, AlertLogError> {
        Ok(Self::with_file(
            AlertFile::open(path)?,
            fsync,
            QUEUE_CAPACITY,
        ))
    }

    /// An alert log writing to `file`, keeping up to `capacity` events while it cannot.
    pub fn with_file(file: AlertFile, fsync: bool, capacity: usize) -> AlertLog {
        AlertLog {
            file,
            fsync,
            queue: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
            truncate_to: None,
            next_retry: None,
        }
    }

    /// The path it writes to.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// Whether each line is `fdatasync`ed.
    pub fn fsync(&self) -> bool {
        self.fsync
    }

    /// Turns `fdatasync` after each line on or off (a reload).
    pub fn set_fsync(&mut self, fsync: bool) {
        self.fsync = fsync;
    }

    /// Events waiting to be written.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Events dropped from the full queue since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// Queues one event as a line and writes every queued line it can, oldest first.
    pub fn write(&mut self, event: &AlertEvent) -> Flush {
        self.write_json(event)
    }

    /// As [`AlertLog::write`] for any serialisable value.
    pub fn write_json<T: Serialize + ?Sized>(&mut self, value: &T) -> Flush {
        let mut line = Vec::with_capacity(2048);
        if let Err(e) = serde_json::to_writer(&mut line, value) {
            return Flush {
                errors: vec![AlertLogError::Serialize(e)],
                ..Flush::default()
            };
        }
        line.push(b'\n');
        self.queue.push_back(line);
        while self.queue.len() > self.capacity {
            self.queue.pop_front();
            self.dropped += 1;
        }
        self.flush()
    }

    /// Writes the queued lines if there are some and the last failure is [`RETRY_INTERVAL`]
    /// old; `None` when there was nothing to do.
    pub fn retry(&mut self, now: Instant) -> Option<Flush> {
        if self.queue.is_empty() || self.next_retry.is_some_and(|t| now < t) {
            return None;
        }
        Some(self.flush())
    }

    /// Writes every queued line it can, oldest first; stops at the first line that does not
    /// reach the file.
    pub fn flush(&mut self) -> Flush {
        let mut report = Flush::default();
        while let Some(line) = self.queue.pop_front() {
            match self.write_line(&line, &mut report.reopened) {
                Ok(()) => report.written += 1,
                Err(e) if e.line_delivered() => {
                    report.written += 1;
                    report.errors.push(e);
                }
                Err(e) => {
                    self.queue.push_front(line);
                    report.errors.push(e);
                    self.next_retry = Some(Instant::now() + RETRY_INTERVAL);
                    return report;
                }
            }
        }
        self.next_retry = None;
        report
    }

    /// Opens the path again now (SIGHUP, after logrotate moved the file away); on failure the
    /// open file is kept, and lines wait until the path can be opened.
    pub fn reopen(&mut self) -> Result<(), AlertLogError> {
        let file = AlertFile::open(self.file.path.clone())?;
        self.switch(file);
        Ok(())
    }

    /// Writes to `file` from now on (a reload with a new `alerts.path`); queued lines go there.
    pub fn switch(&mut self, file: AlertFile) {
        if let Some(len) = self.truncate_to.take() {
            // Last chance to cut the partial line off the old file.
            let _ = self.file.file.set_len(len);
        }
        self.file = file;
        self.next_retry = None;
    }

    /// Reopens the path when it no longer names the open file; true when it did.
    fn follow_path(&mut self) -> Result<bool, AlertLogError> {
        match std::fs::metadata(&self.file.path) {
            Ok(m) if (m.dev(), m.ino()) == self.file.id => Ok(false),
            Ok(_) => self.reopen().map(|()| true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.reopen().map(|()| true),
            Err(source) => Err(AlertLogError::Check {
                path: self.file.path.clone(),
                source,
            }),
        }
    }

    /// Appends one complete line: follows the path, cuts off a pending partial line, writes,
    /// undoes a partial write, syncs.
    fn write_line(&mut self, line: &[u8], reopened: &mut bool) -> Result<(), AlertLogError> {
        if self.follow_path()? {
            *reopened = true;
        }
        let path = || self.file.path.clone();
        if let Some(len) = self.truncate_to {
            self.file
                .file
                .set_len(len)
                .map_err(|source| AlertLogError::Truncate {
                    path: path(),
                    source,
                })?;
            self.truncate_to = None;
        }
        let before = self
            .file
            .file
            .metadata()
            .map_err(|source| AlertLogError::Write {
                path: path(),
                source,
            })?
            .len();
        if let Err(source) = (&self.file.file).write_all(line) {
            self.undo_partial(before);
            return Err(AlertLogError::Write {
                path: self.file.path.clone(),
                source,
            });
        }
        if self.fsync {
            self.file
                .file
                .sync_data()
                .map_err(|source| AlertLogError::Sync {
                    path: self.file.path.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    /// After a failed write: cuts the file back to `before` if part of the line got in; if
    /// that fails too, remembers to do it before the next line.
    fn undo_partial(&mut self, before: u64) {
        let grew = match self.file.file.metadata() {
            Ok(m) => m.len() > before,
            Err(_) => true,
        };
        if grew && self.file.file.set_len(before).is_err() {
            self.truncate_to = Some(before);
        }
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
            // The SYNs came from a host that is not the busiest source.
            contributors: Contributors::from_lists(&[(
                Family::Flag(0),
                vec![
                    Contributor {
                        addr: "203.0.113.9".parse().unwrap(),
                        count: (syn as u64).saturating_sub(20),
                        max_error: 0,
                    },
                    Contributor {
                        addr: "192.0.2.7".parse().unwrap(),
                        count: 20,
                        max_error: 3,
                    },
                ],
            )]),
            distinct_estimated: false,
            late_packets: 0,
            after_time_jump: false,
            incomplete: false,
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
            omegas: vec![Omega::from_micros(30_000_000).unwrap()],
        }
    }

    /// Runs a spike through a tracker and returns the two events.
    fn events() -> (AlertEvent, AlertEvent) {
        let (min, max) = ranges();
        let mut tr: IncidentTracker<Explanation> =
            IncidentTracker::new(IncidentConfig::default(), &ctx().omegas, "abc");
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
                scale: 0,
                start_ns: w.start_ns,
                end_ns: w.end_ns,
                score,
                threshold: 2.0,
            };
            let ex = Explanation::of(&w, &min, &max, 3);
            for ev in tr.observe(sw, &ex.culprits, || ex.clone()) {
                out.push(AlertEvent::from_incident_event(&ctx(), &ev, || ex.clone()));
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
    fn the_log_line_names_the_contributors() {
        let (min, max) = ranges();
        let ex = Explanation::of(&window(1, 4662.0), &min, &max, 2);
        assert_eq!(
            ex.top_features[0].to_string(),
            "syn_count 4662 (training max 10): 203.0.113.9 sent 4642, 192.0.2.7 sent 20 (at least 17)"
        );
        assert_eq!(
            describe(&ex.top_features),
            format!("{}; pkt_size_mean 1 (training max 2)", ex.top_features[0])
        );
        let mut d = ex.top_features[1].clone();
        d.value = -0.25;
        d.normalized = -0.0025;
        d.contributors = vec![FeatureContributor {
            ip: "198.51.100.1".parse().unwrap(),
            count: 4000,
            unit: CountUnit::NewValues,
            role: Role::FloodTarget,
            max_error: 0,
            family: Family::NewSrcAddrs,
        }];
        assert_eq!(
            d.to_string(),
            "pkt_size_mean -0.25 (training min 0): 198.51.100.1 received 4000 new"
        );
        let v = serde_json::to_value(&d.contributors).unwrap();
        assert_eq!(
            v,
            serde_json::json!([{"ip": "198.51.100.1", "role": "flood_target", "new_values": 4000}])
        );
    }

    #[test]
    fn culprit_weights_follow_the_excess_features_and_certain_counts() {
        let c = |addr: &str, count, max_error| Contributor {
            addr: addr.parse().unwrap(),
            count,
            max_error,
        };
        let (min, mut max) = (vec![0.0; NUM_FEATURES], vec![2.0; NUM_FEATURES]);
        max[Feature::SynCount.index()] = 10.0;
        max[Feature::SrcIpDistinct.index()] = 100.0;
        max[Feature::PktCount.index()] = 100.0;
        let mut w = window(0, 1.0);
        // 500 SYNs (50 ranges over the maximum): 300 certain from 203.0.113.9, a spoofed
        // source's count all error. 400 new sources (4 ranges over), all to the victim; ttl_var
        // far out, but a variance is nobody's share.
        w.features[Feature::SynCount.index()] = 500.0;
        w.features[Feature::SrcIpDistinct.index()] = 400.0;
        w.features[Feature::TtlVar.index()] = 1000.0;
        w.features[Feature::AckRatio.index()] = 1.5; // inside: normalised 0.75
        w.contributors = Contributors::from_lists(&[
            (
                Family::Flag(0),
                vec![c("203.0.113.9", 300, 0), c("100.64.0.1", 120, 119)],
            ),
            (Family::NewSrcAddrs, vec![c("198.51.100.1", 400, 0)]),
            (Family::Packets, vec![c("192.0.2.7", 5000, 0)]),
            (Family::Flag(5), vec![c("192.0.2.7", 900, 0)]),
        ])
        .with_total(Family::Flag(0), 500)
        .with_total(Family::Packets, 6000);
        let ex = Explanation::of(&w, &min, &max, 5);
        let got: Vec<(String, Role, f64)> = ex
            .culprits
            .iter()
            .map(|c| (c.ip.to_string(), c.role, (c.weight * 1e4).round() / 1e4))
            .collect();
        // syn_count d = 50, src_ip_distinct d = 4; ack_ratio is inside, ttl_var a variance.
        let syn = 50.0 * 300.0 / 500.0 / 54.0;
        let spoofed = 50.0 * 1.0 / 500.0 / 54.0;
        let victim = 4.0 / 54.0;
        let r = |x: f64| (x * 1e4).round() / 1e4;
        assert_eq!(
            got,
            [
                ("203.0.113.9".into(), Role::Source, r(syn)),
                ("100.64.0.1".into(), Role::Source, r(spoofed)),
                ("198.51.100.1".into(), Role::FloodTarget, r(victim)),
            ],
            "attacker side first, the victim last; the busiest host nowhere"
        );
        assert!(ex.culprits[0].features.contains(Feature::SynCount));
        assert!(!ex.culprits[0].features.contains(Feature::TtlVar));
        // Nothing over the maximum: the features with a positive normalised value count.
        let mut calm = window(0, 1.0);
        calm.features[Feature::AckRatio.index()] = 1.5;
        calm.contributors = Contributors::from_lists(&[(
            Family::Flag(5),
            vec![c("192.0.2.7", 900, 0), c("192.0.2.8", 100, 0)],
        )]);
        let ex = Explanation::of(&calm, &min, &max, 5);
        assert_eq!(ex.culprits[0].ip.to_string(), "192.0.2.7");
    }

    #[test]
    fn start_and_end_schema() {
        let (start, end) = events();
        let s: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&start).unwrap()).unwrap();
        assert_eq!(s["event_type"], "incident_start");
        assert_eq!(s["schema_version"], 3);
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
        assert_eq!(s["model"]["scales"], serde_json::json!([30.0]));
        let inc = &s["incident"];
        assert_eq!(
            inc["scales"],
            serde_json::json!([{"omega_s": 30.0, "windows": 1, "peak_score": 7.5, "threshold": 2.0, "peak_ratio": 3.75}])
        );
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
        assert_eq!(
            tf[0]["contributors"],
            serde_json::json!([
                {"ip": "203.0.113.9", "role": "source", "packets": 480},
                {"ip": "192.0.2.7", "role": "source", "packets": 20, "max_error": 3},
            ])
        );
        assert_eq!(tf[1]["contributors"], serde_json::json!([]));
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
        assert_eq!(inc["scales"][0]["windows"], 2);
        assert_eq!(inc["scales"][0]["peak_score"].as_f64(), Some(9.0));
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

    /// Panics unless the flush wrote `n` lines without an error.
    fn clean(f: Flush, n: usize) {
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!(f.written, n, "{f:?}");
    }

    #[test]
    fn written_line_is_readable_before_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let mut log = AlertLog::open(&path, true).unwrap();
        let (start, end) = events();
        clean(log.write(&start), 1);
        // read while the writer is alive: the line must be there, complete
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'));
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["event_type"], "incident_start");
        clean(log.write(&end), 1);
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
        clean(log.write(&start), 1);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
    }

    #[test]
    fn follows_a_renamed_or_deleted_file_without_a_signal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let rotated = dir.path().join("alerts.jsonl.1");
        let mut log = AlertLog::open(&path, false).unwrap();
        let (start, end) = events();
        let f = log.write(&start);
        assert!(!f.reopened);
        clean(f, 1);
        // logrotate renames: the next event goes to a new file at the path
        std::fs::rename(&path, &rotated).unwrap();
        let f = log.write(&end);
        assert!(f.reopened, "{f:?}");
        clean(f, 1);
        assert_eq!(
            std::fs::read_to_string(&rotated).unwrap().lines().count(),
            1
        );
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(new.lines().count(), 1);
        assert!(new.contains("\"incident_end\""));
        // deleted: recreated (0640) at the next event
        std::fs::remove_file(&path).unwrap();
        let f = log.write(&start);
        assert!(f.reopened);
        clean(f, 1);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o640, 0, "recreated at most 0640, got {mode:o}");
        // replaced by another file (logrotate `create`): followed too
        std::fs::rename(&path, &rotated).unwrap();
        std::fs::write(&path, b"").unwrap();
        let f = log.write(&end);
        assert!(f.reopened);
        clean(f, 1);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
        // an explicit reopen (SIGHUP) of the same file changes nothing
        log.reopen().unwrap();
        clean(log.write(&end), 1);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
    }

    #[test]
    fn a_path_that_cannot_be_opened_queues_events_until_it_can() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("alerts.jsonl");
        let mut log = AlertLog::open(&path, false).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_dir(&sub).unwrap();
        let e = log.reopen().unwrap_err();
        assert!(
            matches!(&e, AlertLogError::Open { source, .. } if source.kind() == io::ErrorKind::NotFound),
            "{e:?}"
        );
        assert!(e.to_string().contains("sub/alerts.jsonl"), "{e}");
        let f = log.write_json(&serde_json::json!({"n": 1}));
        assert_eq!(f.written, 0);
        assert!(
            matches!(f.errors[..], [AlertLogError::Open { .. }]),
            "{f:?}"
        );
        assert_eq!(log.queued(), 1);
        // not retried before the interval; then written once the directory is back
        assert!(log.retry(Instant::now()).is_none());
        std::fs::create_dir(&sub).unwrap();
        let f = log
            .retry(Instant::now() + RETRY_INTERVAL)
            .expect("a retry is due");
        assert!(f.reopened);
        clean(f, 1);
        assert_eq!(log.queued(), 0);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"n\":1}\n");
        assert!(
            log.retry(Instant::now() + RETRY_INTERVAL).is_none(),
            "nothing queued"
        );
    }

    #[test]
    fn a_full_device_queues_events_and_drops_the_oldest() {
        // /dev/full: every write fails with ENOSPC.
        let full = AlertFile::open("/dev/full").expect("/dev/full");
        let mut log = AlertLog::with_file(full, false, 3);
        for n in 1..=5 {
            let f = log.write_json(&serde_json::json!({ "n": n }));
            assert_eq!(f.written, 0);
            assert_eq!(f.errors.len(), 1, "{f:?}");
            assert!(
                matches!(&f.errors[0], AlertLogError::Write { source, .. } if source.raw_os_error() == Some(libc::ENOSPC)),
                "{f:?}"
            );
        }
        assert_eq!(log.queued(), 3);
        assert_eq!(log.take_dropped(), 2);
        assert_eq!(log.take_dropped(), 0);
        // space again (another file): the three kept, in order
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        log.switch(AlertFile::open(&path).unwrap());
        clean(log.flush(), 3);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"n\":3}\n{\"n\":4}\n{\"n\":5}\n"
        );
        assert_eq!(log.path(), path);
    }

    #[test]
    fn a_failed_fdatasync_is_reported_and_adds_no_blank_line() {
        // fdatasync on a FIFO fails (EINVAL) after the line went through whole.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("alerts.fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let mut reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let mut log = AlertLog::open(&fifo, true).unwrap();
        for n in 1..=2 {
            let f = log.write_json(&serde_json::json!({ "n": n }));
            assert_eq!(f.written, 1, "{f:?}");
            assert!(
                matches!(f.errors[..], [AlertLogError::Sync { .. }]),
                "{f:?}"
            );
            assert!(f.errors[0].line_delivered());
            assert_eq!(log.queued(), 0, "a synced-or-not line is not written again");
        }
        log.set_fsync(false);
        clean(log.write_json(&serde_json::json!({ "n": 3 })), 1);
        drop(log); // the reader then sees the end
        let mut got = String::new();
        io::Read::read_to_string(&mut reader, &mut got).unwrap();
        assert_eq!(got, "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    }

    #[test]
    fn open_error_names_path() {
        let e = AlertLog::open("/nonexistent-dir/alerts.jsonl", false)
            .err()
            .unwrap();
        assert!(matches!(e, AlertLogError::Open { .. }), "{e:?}");
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
