//! Suricata EVE output (`[alerts] eve_path`): one `event_type: "alert"` record per incident
//! start, culprit and end, in the schema Suricata writes (`etc/schema.json`), so the tools that
//! read Suricata's `eve.json` (Elastic's Suricata integration, Filebeat's module, EveBox,
//! Wazuh, Security Onion, FEVER) take netanom's incidents as they are (`docs/alerts.md`).
//!
//! Built from the [`AlertEvent`] the alert log gets, written by the same [`AlertLog`] machinery
//! (complete lines appended with `O_APPEND`, the path followed across rotation and deletion,
//! events queued while the disk is full, never a partial line).
//!
//! - `src_ip` is the culprit (the event's new culprit, else the incident's first), `dest_ip`
//!   the host its packets went to ([`main_victim`] when its own flow was not seen), with
//!   `src_port`, `dest_port` and `proto` where every packet of that flow had the same; a
//!   flood's victim without an attacker-side culprit is `dest_ip` alone.
//! - `alert.signature_id` is stable per feature family ([`signature_id`]), fixed for an incident
//!   by its start event ([`Signatures`], kept by the scorer); `alert.category` the kind of the
//!   incident's attack ([`category`], followed by [`Signatures`]); `alert.severity` 1–3 from the incident's peak score over the
//!   threshold it was scored with ([`severity`]); netanom's own fields are under
//!   `alert.metadata`, as arrays of strings.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde::Serialize;

use super::alerts::{
    number, AlertEvent, AlertLog, CulpritRef, EventType, FeatureDeviation, Flush, SCHEMA_VERSION,
};
use crate::window::features::{Family, Feature, Role, WELL_KNOWN_PORTS};

/// `alert.gid` of every record (Suricata's generator id of rule alerts).
pub const GID: u32 = 1;

/// `alert.rev` of every signature; raised if a signature's meaning changes.
pub const REV: u32 = 1;

/// `alert.signature_id` of an incident without a deviating feature to name.
pub const SID_UNEXPLAINED: u32 = 1_000_000;

/// The stable `alert.signature_id` of a feature family, in Suricata's local range
/// 1000000–1999999 (docs/alerts.md has the table).
pub const fn signature_id(family: Family) -> u32 {
    match family {
        Family::Packets => 1_000_001,
        Family::PacketsInReplies => 1_000_002,
        Family::Flag(i) => 1_000_010 + i as u32,
        Family::Icmp => 1_000_020,
        Family::Udp => 1_000_021,
        Family::IcmpReplies => 1_000_022,
        Family::RstReplies => 1_000_023,
        Family::NewDstAddrs => 1_000_030,
        Family::NewSrcAddrs => 1_000_031,
        Family::NewSrcPorts => 1_000_032,
        Family::NewDstPorts => 1_000_033,
        Family::NewDstAddrsInReplies => 1_000_034,
        Family::NewSrcPortsInReplies => 1_000_035,
        Family::NewDstPortsInReplies => 1_000_036,
        // The port itself in the last digits: 1010443 is source port 443.
        Family::SrcPort(i) => 1_010_000 + WELL_KNOWN_PORTS[i as usize] as u32,
        Family::DstPort(i) => 1_020_000 + WELL_KNOWN_PORTS[i as usize] as u32,
        Family::SrcPortInReplies(i) => 1_030_000 + WELL_KNOWN_PORTS[i as usize] as u32,
        Family::DstPortInReplies(i) => 1_040_000 + WELL_KNOWN_PORTS[i as usize] as u32,
    }
}

/// A family's name in `alert.signature` (the table of docs/alerts.md): `SYN`, `RST+ACK
/// replies`, `new destination ports`, `replies from port 80`, …
pub fn family_label(family: Family) -> String {
    const FLAGS: [&str; 10] = [
        "SYN",
        "FIN",
        "PSH",
        "RST",
        "URG",
        "ACK",
        "FIN+ACK",
        "RST+ACK replies",
        "SYN+ACK replies",
        "PSH+ACK",
    ];
    let port = |i: u8| WELL_KNOWN_PORTS.get(usize::from(i)).copied().unwrap_or(0);
    match family {
        Family::Packets => "packets".into(),
        Family::PacketsInReplies => "replies".into(),
        Family::Flag(i) => FLAGS
            .get(usize::from(i))
            .copied()
            .unwrap_or("TCP flags")
            .into(),
        Family::Icmp => "ICMP".into(),
        Family::Udp => "UDP".into(),
        Family::IcmpReplies => "ICMP replies".into(),
        Family::RstReplies => "bare RST replies".into(),
        Family::NewDstAddrs => "new destination addresses".into(),
        Family::NewSrcAddrs => "new source addresses".into(),
        Family::NewSrcPorts => "new source ports".into(),
        Family::NewDstPorts => "new destination ports".into(),
        Family::NewDstAddrsInReplies => "new destination addresses in replies".into(),
        Family::NewSrcPortsInReplies => "new source ports in replies".into(),
        Family::NewDstPortsInReplies => "new destination ports in replies".into(),
        Family::SrcPort(i) => format!("packets from port {}", port(i)),
        Family::DstPort(i) => format!("packets to port {}", port(i)),
        Family::SrcPortInReplies(i) => format!("replies from port {}", port(i)),
        Family::DstPortInReplies(i) => format!("replies to port {}", port(i)),
    }
}

/// Suricata's classification (`classification.config`) of a network scan.
pub const CATEGORY_SCAN: &str = "Detection of a Network Scan";
/// Of a denial of service.
pub const CATEGORY_DOS: &str = "Attempted Denial of Service";
/// Of anything else.
pub const CATEGORY_BAD: &str = "Potentially Bad Traffic";

/// `alert.category` of an event read alone: the kind of its incident's attack
/// ([`attack_category`]) where the window shows the attacker's part, else the kind of the
/// whole window's excess, each feature read through the family of its first contributor.
pub fn category(features: &[FeatureDeviation], primary: Option<IpAddr>) -> &'static str {
    attack_category(features, primary).unwrap_or_else(|| {
        kind(
            over_range(features)
                .filter_map(|d| Some((Feature::from_name(d.name)?, family_of(d)?)))
                .collect(),
        )
    })
}

/// The kind of `primary`'s part of a window's excess (the incident's first culprit, its
/// attacker): the event's features at or above their training maximum that are its own, each
/// read through its own family. A ratio, mean or variance is its own when it contributed to
/// it; a count when its own packets or new values alone reach the training maximum (a scan's
/// one probe of port 53 among a normal host's DNS burst does not make the burst the scan's).
/// None when no excess is its own: the window then shows someone else's (a normal host
/// joining a slow scan's incident), which says nothing of the attack's kind.
pub fn attack_category(
    features: &[FeatureDeviation],
    primary: Option<IpAddr>,
) -> Option<&'static str> {
    let ip = primary?;
    let over: Vec<(Feature, Family)> = over_range(features)
        .filter_map(|d| {
            let f = Feature::from_name(d.name)?;
            let c = d.contributors.iter().find(|c| c.ip == ip)?;
            (!is_count(f) || c.count as f64 >= d.training_max).then_some((f, c.family))
        })
        .collect();
    (!over.is_empty()).then(|| kind(over))
}

/// True for a feature that counts packets or values (not a ratio, a mean or a variance).
fn is_count(f: Feature) -> bool {
    use Feature as F;
    !matches!(f, F::PktSizeMean | F::PktSizeVar | F::TtlMean | F::TtlVar)
        && !F::FLAG_RATIOS.contains(&f)
}

/// The features of an event at or above their training maximum (what the window has too much
/// of).
fn over_range(features: &[FeatureDeviation]) -> impl Iterator<Item = &FeatureDeviation> {
    features
        .iter()
        .filter(|d| d.normalized >= 1.0 && d.normalized.is_finite())
}

/// The kind of an excess, from its features and the family each is read through:
/// - a scan when one of them is new destination ports or addresses of a sender, or new source
///   ports in replies (the probed ports answering);
/// - else a denial of service when one of them is a count (packets, a flag, a protocol, a
///   port, or new values of a flood: its varying source addresses and ports, and the victim's
///   answers to them);
/// - else a scan when one of them is the ratio of a probe's flags or of their answers (SYN,
///   FIN, URG, RST, RST+ACK, SYN+ACK): half-open or odd packets without volume, a slow scan;
/// - else (other ratios, means, variances, or nothing above the range) potentially bad traffic.
fn kind(over: Vec<(Feature, Family)>) -> &'static str {
    use Feature as F;
    let probing = over.iter().any(|(_, family)| {
        matches!(
            family,
            Family::NewDstPorts | Family::NewDstAddrs | Family::NewSrcPortsInReplies
        )
    });
    let volume = over.iter().any(|&(f, _)| is_count(f));
    let probe_ratios = over.iter().any(|(f, _)| {
        matches!(
            f,
            F::SynRatio | F::FinRatio | F::UrgRatio | F::RstRatio | F::RstAckRatio | F::SynAckRatio
        )
    });
    if probing || (!volume && probe_ratios) {
        CATEGORY_SCAN
    } else if volume {
        CATEGORY_DOS
    } else {
        CATEGORY_BAD
    }
}

/// `alert.severity` (1 highest) from how far the score went over the threshold: 1 at ten times
/// the threshold or more, 2 from three times, else 3.
pub fn severity(score_over_threshold: f64) -> u8 {
    if score_over_threshold >= 10.0 {
        1
    } else if score_over_threshold >= 3.0 {
        2
    } else {
        3
    }
}

/// One EVE `alert` record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EveAlert {
    /// As Suricata writes it: `2026-12-02T10:29:08.500000+0000` (capture time, UTC).
    pub timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_iface: Option<String>,
    pub event_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proto: Option<&'static str>,
    pub host: String,
    pub alert: EveAlertBody,
}

/// The `alert` object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EveAlertBody {
    /// `allowed`: netanom watches, it blocks nothing.
    pub action: &'static str,
    pub gid: u32,
    pub signature_id: u32,
    pub rev: u32,
    pub signature: String,
    pub category: &'static str,
    pub severity: u8,
    /// The attacker (Suricata's `target` keyword fills these too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Endpoint>,
    /// The victim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Endpoint>,
    /// netanom's own fields, each an array of strings (Suricata's rule metadata shape).
    pub metadata: BTreeMap<&'static str, Vec<String>>,
}

/// `alert.source` / `alert.target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub ip: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// The family a deviating feature's anomaly is about: that of its first contributor (the
/// family it was counted in: `syn_count`'s SYN+ACK replies, `icmp_count`'s unreachable
/// errors), else the feature's own.
fn family_of(d: &FeatureDeviation) -> Option<Family> {
    d.contributors
        .first()
        .map(|c| c.family)
        .or_else(|| Feature::from_name(d.name).map(Feature::family))
}

/// An incident's signature: the family of its start event's most deviating feature (none:
/// nothing deviated to name), which gives `alert.signature_id` and the name in
/// `alert.signature`, and the kind of its attack so far (`alert.category`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature {
    /// The family that names the incident (fixed by its first event).
    pub family: Option<Family>,
    /// `alert.category`: of the last event that showed the attacker's part ([`category`]).
    pub category: &'static str,
}

impl Signature {
    /// The signature an event would fix: its most deviating feature's family, its category.
    pub fn of(alert: &AlertEvent) -> Signature {
        Signature {
            family: alert.top_features.first().and_then(family_of),
            category: category(&alert.top_features, primary(alert)),
        }
    }

    /// The same incident after `alert`: the family kept, the category of `alert` where its
    /// window shows the attacker's part ([`attack_category`]), else the one it had.
    fn then(self, alert: &AlertEvent) -> Signature {
        Signature {
            category: attack_category(&alert.top_features, primary(alert)).unwrap_or(self.category),
            ..self
        }
    }

    /// `alert.signature_id`.
    pub fn id(self) -> u32 {
        self.family.map_or(SID_UNEXPLAINED, signature_id)
    }
}

/// An event's incident's first culprit: its attacker.
fn primary(alert: &AlertEvent) -> Option<IpAddr> {
    alert.incident.culprits.first().map(|c| c.ip)
}

/// The signature of each open incident, fixed by its first event (the category followed by
/// each event that shows the attacker's part) and forgotten at its end.
/// The scorer keeps it across reloads (the EVE log turned off and on again, its path changed),
/// so an open incident's records keep one signature id. It holds one entry per open incident:
/// every incident that got a first event gets an end event (a flush ends them all on every
/// way out of the scorer).
#[derive(Debug, Default)]
pub struct Signatures {
    open: HashMap<String, Signature>,
}

impl Signatures {
    /// The signature of `alert`'s incident: fixed by this event if it is the first; forgotten
    /// after an end event.
    pub fn of(&mut self, alert: &AlertEvent) -> Signature {
        let id = &alert.incident.id;
        let sig = match self.open.get_mut(id) {
            Some(sig) => {
                *sig = sig.then(alert);
                *sig
            }
            None => {
                let sig = Signature::of(alert);
                self.open.insert(id.clone(), sig);
                sig
            }
        };
        if alert.event_type == EventType::IncidentEnd {
            self.open.remove(id);
        }
        sig
    }

    /// Open incidents whose signature is kept.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// True when no incident's signature is kept.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

/// `NETANOM anomaly (SYN): syn_count 4662 (max 28)`: the incident's signature family, then the
/// event's most deviating feature against its training range (`NETANOM anomaly` alone when
/// nothing deviated).
fn signature_text(alert: &AlertEvent, sig: Signature) -> String {
    let family = sig
        .family
        .map(|f| format!(" ({})", family_label(f)))
        .unwrap_or_default();
    match alert.top_features.first() {
        Some(d) => {
            let (bound, limit) = if d.normalized < 0.0 {
                ("min", d.training_min)
            } else {
                ("max", d.training_max)
            };
            format!(
                "NETANOM anomaly{family}: {} {} ({bound} {})",
                d.name,
                number(d.value),
                number(limit)
            )
        }
        None => format!("NETANOM anomaly{family}"),
    }
}

/// The incident's score over threshold so far: the largest over its scales, each window
/// against the threshold it was scored with, and the event's own window.
fn peak_ratio(alert: &AlertEvent) -> f64 {
    alert
        .incident
        .scales
        .iter()
        .map(|s| s.peak_ratio)
        .filter(|r| !r.is_nan())
        .fold(alert.score / alert.threshold, f64::max)
}

/// The main victim of an incident when `culprit`'s own flow was not seen (not among the
/// window's heaviest flows): another attacker-side culprit's target, else a flood's victim
/// among the culprits, else the explaining window's top destination; never `culprit` itself.
pub fn main_victim(alert: &AlertEvent, culprit: IpAddr) -> Option<IpAddr> {
    let inc = &alert.incident;
    let others = || inc.culprits.iter().filter(move |c| c.ip != culprit);
    others()
        .filter(|c| c.role.is_attacker_side())
        .find_map(|c| c.target.as_ref().map(|t| t.ip))
        .or_else(|| others().find(|c| c.role == Role::FloodTarget).map(|c| c.ip))
        .or_else(|| {
            alert
                .top_talkers
                .destination
                .iter()
                .map(|d| d.ip)
                .find(|&ip| ip != culprit)
        })
        .filter(|&ip| ip != culprit)
}

impl EveAlert {
    /// The EVE record of an alert event, with its incident's signature and `in_iface`.
    pub fn of(alert: &AlertEvent, sig: Signature, in_iface: Option<&str>) -> EveAlert {
        let culprit: Option<&CulpritRef> =
            alert.culprit.as_ref().or(alert.incident.culprits.first());
        let (mut src, mut dst, mut proto) = (None, None, None);
        if let Some(c) = culprit {
            if c.role.is_attacker_side() {
                src = Some(Endpoint {
                    ip: c.ip,
                    port: c.target.as_ref().and_then(|t| t.src_port),
                });
                dst = match &c.target {
                    Some(t) => {
                        proto = t.proto;
                        Some(Endpoint {
                            ip: t.ip,
                            port: t.dest_port,
                        })
                    }
                    // Its flow was not seen: the incident's victim, without ports.
                    None => main_victim(alert, c.ip).map(|ip| Endpoint { ip, port: None }),
                };
            } else {
                // A flood's victim: the attacker is unknown (spoofed sources).
                dst = Some(Endpoint {
                    ip: c.ip,
                    port: None,
                });
            }
        }
        EveAlert {
            timestamp: suricata_timestamp(&alert.timestamp),
            in_iface: in_iface.map(str::to_string),
            event_type: "alert",
            src_ip: src.map(|e| e.ip),
            src_port: src.and_then(|e| e.port),
            dest_ip: dst.map(|e| e.ip),
            dest_port: dst.and_then(|e| e.port),
            proto,
            host: alert.host.clone(),
            alert: EveAlertBody {
                action: "allowed",
                gid: GID,
                signature_id: sig.id(),
                rev: REV,
                signature: signature_text(alert, sig),
                category: sig.category,
                severity: severity(peak_ratio(alert)),
                source: src,
                target: dst,
                metadata: metadata(alert),
            },
        }
    }
}

/// `2026-12-02T10:29:08.500000+00:00` (the alert log's) as Suricata writes it:
/// `2026-12-02T10:29:08.500000+0000`.
pub fn suricata_timestamp(iso: &str) -> String {
    match iso.len().checked_sub(3) {
        Some(i) if iso.as_bytes().get(i) == Some(&b':') => {
            format!("{}{}", &iso[..i], &iso[i + 1..])
        }
        _ => iso.to_string(),
    }
}

/// netanom's fields of an event, each as an array of strings.
fn metadata(a: &AlertEvent) -> BTreeMap<&'static str, Vec<String>> {
    let one = |s: String| vec![s];
    let inc = &a.incident;
    let mut m = BTreeMap::new();
    m.insert("netanom_event", one(a.event_type.kind().to_string()));
    m.insert("netanom_schema_version", one(SCHEMA_VERSION.to_string()));
    m.insert("netanom_incident_id", one(inc.id.clone()));
    m.insert("netanom_incident_start", one(inc.start.clone()));
    m.insert("netanom_duration_s", one(inc.duration_s.to_string()));
    m.insert("netanom_peak_score", one(inc.peak_score.to_string()));
    m.insert("netanom_windows", one(inc.windows.to_string()));
    m.insert(
        "netanom_scales",
        inc.scales.iter().map(|s| s.omega_s.to_string()).collect(),
    );
    m.insert("netanom_model_id", one(a.model.id.clone()));
    m.insert("netanom_omega_s", one(a.model.omega_s.to_string()));
    m.insert("netanom_score", one(a.score.to_string()));
    m.insert("netanom_threshold", one(a.threshold.to_string()));
    m.insert("netanom_window_start", one(a.window.start.clone()));
    m.insert("netanom_window_end", one(a.window.end.clone()));
    m.insert(
        "netanom_culprits",
        inc.culprits.iter().map(|c| c.ip.to_string()).collect(),
    );
    m.insert(
        "netanom_culprit_roles",
        inc.culprits.iter().map(|c| role_name(c.role)).collect(),
    );
    m.insert(
        "netanom_culprit_weights",
        inc.culprits.iter().map(|c| c.weight.to_string()).collect(),
    );
    m.insert(
        "netanom_top_features",
        a.top_features.iter().map(|d| d.name.to_string()).collect(),
    );
    if !a.suppressed_by.is_empty() {
        // An operator silenced it (`netanom feedback suppress`): a SIEM rule can drop it.
        m.insert("netanom_suppressed_by", a.suppressed_by.clone());
    }
    if a.incomplete {
        // The explaining window missed a sensor's or worker's part: its counts are low.
        m.insert("netanom_incomplete", one("true".to_string()));
    }
    if let Some(c) = &a.culprit {
        m.insert("netanom_new_culprit", one(c.ip.to_string()));
    }
    if a.event_type == EventType::IncidentEnd {
        if let Some(end) = &inc.end {
            m.insert("netanom_incident_end", one(end.clone()));
        }
        if let Some(r) = inc.end_reason {
            let r = serde_json::to_value(r).ok();
            if let Some(r) = r.as_ref().and_then(|v| v.as_str()) {
                m.insert("netanom_end_reason", one(r.to_string()));
            }
        }
    }
    // Suricata's schema wants at least one item in an array: drop empty ones.
    m.retain(|_, v| !v.is_empty());
    m
}

/// The role's name, as in the alert log.
fn role_name(r: Role) -> String {
    r.name().to_string()
}

/// The EVE log: the alert log's file machinery writing [`EveAlert`] records.
pub struct EveLog {
    log: AlertLog,
    in_iface: Option<String>,
}

impl EveLog {
    /// An EVE log writing through `log`; records carry `in_iface` when capturing live.
    pub fn new(log: AlertLog, in_iface: Option<String>) -> EveLog {
        EveLog { log, in_iface }
    }

    /// The file machinery (path, queue, reopening).
    pub fn log(&self) -> &AlertLog {
        &self.log
    }

    /// The file machinery, to reopen, switch, retry or flush.
    pub fn log_mut(&mut self) -> &mut AlertLog {
        &mut self.log
    }

    /// The record of `alert`, with its incident's signature.
    pub fn record(&self, alert: &AlertEvent, sig: Signature) -> EveAlert {
        EveAlert::of(alert, sig, self.in_iface.as_deref())
    }

    /// Writes the record of `alert` as one line (and what is queued before it).
    pub fn write(&mut self, alert: &AlertEvent, sig: Signature) -> Flush {
        let record = self.record(alert, sig);
        self.log.write_json(&record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::incident::{IncidentConfig, IncidentTracker, ScoredWindow};
    use crate::output::alerts::{AlertContext, AlertFile, Explanation, FeatureContributor};
    use crate::window::features::{NUM_FAMILIES, NUM_FEATURES};
    use crate::window::{Contributor, Contributors, Flow, Omega, Talkers, Window};
    use std::collections::HashSet;

    const S: i64 = 1_000_000_000;
    // 2026-12-02T10:29:08Z
    const T0: i64 = 1_796_207_348 * S;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A 0.5 s window `k` whose SYNs (`syn` of them) come from `attacker` to 127.0.0.41:80.
    fn window(k: i64, syn: f64, attacker: &str) -> Window {
        let mut features = [1.0; NUM_FEATURES];
        features[Feature::SynCount.index()] = syn;
        let c = |addr: &str, count| Contributor {
            addr: ip(addr),
            count,
            max_error: 0,
        };
        Window {
            start_ns: T0 + k * S / 2,
            end_ns: T0 + (k + 1) * S / 2,
            features,
            talkers: Talkers::default(),
            contributors: Contributors::from_lists(&[(
                Family::Flag(0),
                vec![c(attacker, syn as u64 - 10), c("10.0.0.7", 10)],
            )])
            .with_flows(vec![Flow {
                src: ip(attacker),
                dst: ip("127.0.0.41"),
                packets: syn as u64 - 10,
                max_error: 0,
                proto: Some(6),
                src_port: Some(61_000),
                dst_port: Some(80),
            }]),
            distinct_estimated: false,
            late_packets: 0,
            after_time_jump: false,
            incomplete: false,
        }
    }

    /// The alert events of windows (score, SYNs, attacker) through a tracker, then a flush.
    fn events(windows: &[(f64, f64, &str)]) -> Vec<AlertEvent> {
        let w: Vec<_> = windows.iter().map(|&(s, n, a)| (s, 2.0, n, a)).collect();
        events_with(&w)
    }

    /// As [`events`], each window (score, threshold, SYNs, attacker) with its own threshold.
    fn events_with(windows: &[(f64, f64, f64, &str)]) -> Vec<AlertEvent> {
        let (min, mut max) = (vec![0.0; NUM_FEATURES], vec![2.0; NUM_FEATURES]);
        max[Feature::SynCount.index()] = 28.0;
        let ctx = AlertContext {
            host: "tap-01".into(),
            model_id: "m-1".into(),
            omegas: vec![Omega::from_micros(500_000).unwrap()],
        };
        let mut tr: IncidentTracker<Explanation> =
            IncidentTracker::new(IncidentConfig::default(), &ctx.omegas, "abc");
        let mut out = Vec::new();
        for (k, &(score, threshold, syn, attacker)) in windows.iter().enumerate() {
            let w = window(k as i64, syn, attacker);
            let sw = ScoredWindow {
                scale: 0,
                start_ns: w.start_ns,
                end_ns: w.end_ns,
                score,
                threshold,
            };
            let ex = Explanation::of(&w, &min, &max, 3);
            for ev in tr.observe(sw, &ex.culprits, || ex.clone()) {
                out.push(AlertEvent::from_incident_event(&ctx, &ev, || ex.clone()));
            }
        }
        for ev in tr.flush(crate::detect::incident::EndReason::Shutdown) {
            out.push(AlertEvent::from_incident_event(
                &ctx,
                &ev,
                Explanation::default,
            ));
        }
        out
    }

    /// An EVE log that writes nowhere.
    fn null_log(iface: Option<&str>) -> EveLog {
        EveLog::new(
            AlertLog::with_file(AlertFile::open("/dev/null").unwrap(), false, 10),
            iface.map(str::to_string),
        )
    }

    #[test]
    fn a_record_names_the_attacker_as_source_and_its_flow() {
        let ev = events(&[(25.0, 4662.0, "127.0.66.1"), (3.0, 900.0, "127.0.66.1")]);
        assert_eq!(ev.len(), 2);
        let log = null_log(Some("eth0"));
        let mut sigs = Signatures::default();
        let start = log.record(&ev[0], sigs.of(&ev[0]));
        let v = serde_json::to_value(&start).unwrap();
        assert_eq!(v["timestamp"], "2026-12-02T10:29:08.500000+0000");
        assert_eq!(v["event_type"], "alert");
        assert_eq!(v["in_iface"], "eth0");
        assert_eq!(v["host"], "tap-01");
        assert_eq!(v["src_ip"], "127.0.66.1");
        assert_eq!(v["src_port"], 61_000);
        assert_eq!(v["dest_ip"], "127.0.0.41");
        assert_eq!(v["dest_port"], 80);
        assert_eq!(v["proto"], "TCP");
        let a = &v["alert"];
        assert_eq!(a["action"], "allowed");
        assert_eq!((a["gid"].as_u64(), a["rev"].as_u64()), (Some(1), Some(1)));
        assert_eq!(a["signature_id"], 1_000_010, "the SYN family");
        assert_eq!(
            a["signature"],
            "NETANOM anomaly (SYN): syn_count 4662 (max 28)"
        );
        assert_eq!(
            a["category"], "Attempted Denial of Service",
            "SYNs, no scan"
        );
        assert_eq!(a["severity"], 1, "12.5 times the threshold");
        assert_eq!(
            a["source"],
            serde_json::json!({"ip": "127.0.66.1", "port": 61000})
        );
        assert_eq!(
            a["target"],
            serde_json::json!({"ip": "127.0.0.41", "port": 80})
        );
        let m = a["metadata"].as_object().unwrap();
        for (k, v) in m {
            let items = v.as_array().unwrap_or_else(|| panic!("{k}: {v}"));
            assert!(
                !items.is_empty() && items.iter().all(|s| s.is_string()),
                "{k}: {v}"
            );
        }
        assert_eq!(m["netanom_event"], serde_json::json!(["start"]));
        assert_eq!(m["netanom_incident_id"], serde_json::json!(["abc-1"]));
        assert_eq!(m["netanom_culprits"], serde_json::json!(["127.0.66.1"]));
        assert_eq!(m["netanom_culprit_roles"], serde_json::json!(["source"]));
        assert_eq!(m["netanom_schema_version"], serde_json::json!(["3"]));
        assert!(m.get("netanom_end_reason").is_none());
        assert!(m.get("netanom_incomplete").is_none());
        // The end: same signature id, the incident's end fields.
        let end = log.record(&ev[1], sigs.of(&ev[1]));
        assert_eq!(end.alert.signature_id, 1_000_010);
        assert_eq!(end.alert.metadata["netanom_event"], ["end"]);
        assert_eq!(end.alert.metadata["netanom_end_reason"], ["shutdown"]);
        assert_eq!(end.src_ip, Some(ip("127.0.66.1")));
        assert!(sigs.is_empty(), "forgotten once ended");
        // A window merged without one of its parts says so.
        let mut e = ev[0].clone();
        e.incomplete = true;
        let r = log.record(&e, Signature::of(&e));
        assert_eq!(r.alert.metadata["netanom_incomplete"], ["true"]);
    }

    #[test]
    fn signature_ids_are_stable_distinct_and_in_the_local_range() {
        let sids: HashSet<u32> = Family::ALL.iter().map(|&f| signature_id(f)).collect();
        assert_eq!(sids.len(), NUM_FAMILIES);
        assert!(sids.iter().all(|s| (1_000_000..=1_999_999).contains(s)));
        assert!(!sids.contains(&SID_UNEXPLAINED));
        // The published table (docs/alerts.md) must not move.
        assert_eq!(signature_id(Family::Packets), 1_000_001);
        assert_eq!(signature_id(Family::PacketsInReplies), 1_000_002);
        assert_eq!(signature_id(Family::Flag(0)), 1_000_010);
        assert_eq!(signature_id(Family::Flag(7)), 1_000_017);
        assert_eq!(signature_id(Family::IcmpReplies), 1_000_022);
        assert_eq!(signature_id(Family::RstReplies), 1_000_023);
        assert_eq!(signature_id(Family::NewDstPorts), 1_000_033);
        assert_eq!(signature_id(Family::SrcPort(3)), 1_010_443);
        assert_eq!(signature_id(Family::DstPort(1)), 1_020_022);
        assert_eq!(signature_id(Family::SrcPortInReplies(4)), 1_030_080);
        assert_eq!(signature_id(Family::DstPortInReplies(2)), 1_040_053);
        assert_eq!(family_label(Family::Flag(8)), "SYN+ACK replies");
        assert_eq!(
            family_label(Family::SrcPortInReplies(4)),
            "replies from port 80"
        );
        let labels: HashSet<String> = Family::ALL.iter().map(|&f| family_label(f)).collect();
        assert_eq!(labels.len(), NUM_FAMILIES, "one name per family");
        assert_eq!(
            (
                severity(10.0),
                severity(9.99),
                severity(3.0),
                severity(1.01)
            ),
            (1, 2, 2, 3)
        );
        assert_eq!(
            suricata_timestamp("1970-01-01T00:00:00.000000+00:00"),
            "1970-01-01T00:00:00.000000+0000"
        );
    }

    /// A deviating feature at `normalized` whose first contributor counted in `family`.
    fn dev(feature: Feature, normalized: f64, family: Family) -> FeatureDeviation {
        dev_by(feature, normalized, family, "127.0.66.1")
    }

    /// The same with `host` as its contributor.
    fn dev_by(feature: Feature, normalized: f64, family: Family, host: &str) -> FeatureDeviation {
        let c = Contributor {
            addr: ip(host),
            count: 100,
            max_error: 0,
        };
        FeatureDeviation {
            name: feature.name(),
            value: normalized * 10.0,
            training_min: 0.0,
            training_max: 10.0,
            normalized,
            contributors: vec![FeatureContributor::new(family, &c)],
        }
    }

    #[test]
    fn the_category_is_the_kind_of_deviation_not_the_top_feature_s_flag() {
        // nmap -sS: syn_count tops, but new destination ports from one sender make it a scan.
        let scan = [
            dev(Feature::SynCount, 43.7, Family::Flag(0)),
            dev(Feature::DstPortDistinct, 23.8, Family::NewDstPorts),
            dev(Feature::SrcPortDistinct, 23.7, Family::NewSrcPortsInReplies),
            dev(Feature::PktCount, 8.0, Family::Packets),
        ];
        assert_eq!(category(&scan, None), CATEGORY_SCAN);
        // The probed ports answering are enough (a slow scan's peak).
        let slow = [
            dev(Feature::SynRatio, 3.0, Family::Flag(0)),
            dev(Feature::SrcPortDistinct, 2.0, Family::NewSrcPortsInReplies),
        ];
        assert_eq!(category(&slow, None), CATEGORY_SCAN);
        // hping3 -S -p 80: the flood's varying source ports, and the victim's answers to
        // them as new destination ports in replies: volume, one port.
        let flood = [
            dev(Feature::SynCount, 308.8, Family::Flag(0)),
            dev(Feature::SrcPortDistinct, 168.6, Family::NewSrcPorts),
            dev(
                Feature::DstPortDistinct,
                168.6,
                Family::NewDstPortsInReplies,
            ),
            dev(Feature::SrcPort80Count, 97.3, Family::SrcPortInReplies(4)),
        ];
        assert_eq!(category(&flood, None), CATEGORY_DOS);
        // A new-ports feature below the training maximum is no evidence.
        let weak = [
            dev(Feature::UdpCount, 161.0, Family::Udp),
            dev(Feature::DstPortDistinct, 0.9, Family::NewDstPorts),
        ];
        assert_eq!(category(&weak, None), CATEGORY_DOS);
        // A slow scan's window: more SYNs than ever in proportion, no volume.
        let half_open = [
            dev(Feature::AckRatio, -2.6, Family::Flag(5)),
            dev(Feature::SynRatio, 1.8, Family::Flag(0)),
            dev(Feature::TtlVar, 0.99, Family::Packets),
        ];
        assert_eq!(category(&half_open, None), CATEGORY_SCAN);
        // With volume, the same ratio is a flood's.
        let mut syn_flood = half_open.to_vec();
        syn_flood.push(dev(Feature::SynCount, 90.0, Family::Flag(0)));
        assert_eq!(category(&syn_flood, None), CATEGORY_DOS);
        // Other ratios and means over the range, or nothing: potentially bad traffic.
        let ratios = [
            dev(Feature::PshRatio, 1.4, Family::Flag(2)),
            dev(Feature::TtlVar, 5.0, Family::Packets),
            dev(Feature::AckRatio, -1.9, Family::Flag(5)),
        ];
        assert_eq!(category(&ratios, None), CATEGORY_BAD);
        assert_eq!(category(&[], None), CATEGORY_BAD);
        // A window of a slow scan's incident where a normal host's DNS burst also went over
        // the range (a culprit joining): read as a whole, its counts make it a flood; read
        // through the incident's attacker (the scanner, 127.0.66.1), it is the scan it is.
        let dns = dev_by(Feature::SrcPort53Count, 1.3, Family::SrcPort(2), "10.0.1.2");
        let joined = [half_open[1].clone(), dns];
        assert_eq!(category(&joined, None), CATEGORY_DOS);
        assert_eq!(category(&joined, Some(ip("127.0.66.1"))), CATEGORY_SCAN);
        // An attacker that contributed to none of them: the whole window, as before.
        assert_eq!(category(&joined, Some(ip("127.0.66.9"))), CATEGORY_DOS);
        // The attacker's own family decides, not the first contributor's: the victim's
        // answers counted first, the scanner's new destination ports second.
        let mut ports = dev(Feature::DstPortDistinct, 4.0, Family::NewDstPortsInReplies);
        let scanner = dev_by(
            Feature::DstPortDistinct,
            4.0,
            Family::NewDstPorts,
            "127.0.66.2",
        );
        ports.contributors.push(scanner.contributors[0]);
        let volume = dev(Feature::AckCount, 2.0, Family::Flag(5));
        let both = [ports, volume];
        assert_eq!(category(&both, None), CATEGORY_DOS);
        assert_eq!(category(&both, Some(ip("127.0.66.2"))), CATEGORY_SCAN);
    }

    #[test]
    fn the_signature_is_the_family_its_first_contributor_was_counted_in() {
        let mut ev = events(&[(25.0, 4662.0, "127.0.66.1")]);
        let start = &mut ev[0];
        // ack_count's first contributor got SYN+ACK replies (the third of its families, the
        // second with the reply_target role): that family's id, and its name in the text.
        start.top_features = vec![dev(Feature::AckCount, 40.0, Family::Flag(8))];
        let r = null_log(None).record(start, Signature::of(start));
        assert_eq!(r.alert.signature_id, 1_000_018, "SYN+ACK, not RST+ACK");
        assert_eq!(
            r.alert.signature,
            "NETANOM anomaly (SYN+ACK replies): ack_count 400 (max 10)"
        );
        // No contributor: the feature's own family. Nothing deviating: unexplained.
        start.top_features[0].contributors.clear();
        assert_eq!(Signature::of(start).id(), 1_000_015);
        start.top_features.clear();
        let r = null_log(None).record(start, Signature::of(start));
        assert_eq!(r.alert.signature_id, SID_UNEXPLAINED);
        assert_eq!(r.alert.signature, "NETANOM anomaly");
        assert_eq!(r.alert.category, CATEGORY_BAD);
    }

    #[test]
    fn an_open_incident_keeps_its_signature_whatever_happens_to_the_eve_log() {
        let ev = events(&[(25.0, 4662.0, "127.0.66.1"), (3.0, 900.0, "127.0.66.1")]);
        let mut sigs = Signatures::default();
        let first = null_log(None).record(&ev[0], sigs.of(&ev[0]));
        // Two thousand other incidents open meanwhile: nothing is evicted.
        for n in 0..2_000 {
            let mut other = ev[0].clone();
            other.incident.id = format!("other-{n}");
            other.top_features.clear();
            sigs.of(&other);
        }
        assert_eq!(sigs.len(), 2_001);
        // The EVE log turned off and on again (a new EveLog), the end explained by another
        // feature: the start's signature.
        let mut end = ev[1].clone();
        end.top_features = vec![dev(Feature::UdpCount, 40.0, Family::Udp)];
        let last = null_log(None).record(&end, sigs.of(&end));
        assert_eq!(last.alert.signature_id, first.alert.signature_id);
        assert!(last
            .alert
            .signature
            .starts_with("NETANOM anomaly (SYN): udp_count"));
        assert_eq!(sigs.len(), 2_000, "forgotten at its end");
    }

    #[test]
    fn an_incident_keeps_its_attack_s_category_through_a_window_of_someone_else_s_excess() {
        let ev = events(&[(25.0, 4662.0, "127.0.66.1"), (3.0, 900.0, "127.0.66.1")]);
        assert_eq!(ev[0].incident.culprits[0].ip, ip("127.0.66.1"));
        let scan = vec![
            dev(Feature::SynRatio, 1.8, Family::Flag(0)),
            dev(Feature::SrcPortDistinct, 2.0, Family::NewSrcPortsInReplies),
        ];
        let (mut start, mut end) = (ev[0].clone(), ev[1].clone());
        start.top_features = scan.clone();
        end.top_features = scan;
        // A culprit record whose window's excess is a normal host's DNS burst alone.
        let mut joined = ev[0].clone();
        joined.event_type = EventType::IncidentCulprit;
        joined.top_features = vec![dev_by(
            Feature::SrcPort53Count,
            1.3,
            Family::SrcPort(2),
            "10.0.1.2",
        )];
        assert_eq!(Signature::of(&joined).category, CATEGORY_DOS, "read alone");
        // The scanner's one probe of port 53 answered among the burst (a reply it provoked,
        // 1 packet against a training maximum of 10) does not make the burst its own.
        let probe = Contributor {
            addr: ip("127.0.66.1"),
            count: 1,
            max_error: 0,
        };
        joined.top_features[0]
            .contributors
            .push(FeatureContributor::new(Family::SrcPortInReplies(2), &probe));
        assert_eq!(
            attack_category(&joined.top_features, Some(ip("127.0.66.1"))),
            None
        );
        assert_eq!(Signature::of(&joined).category, CATEGORY_DOS, "read alone");
        let log = null_log(None);
        let mut sigs = Signatures::default();
        let records: Vec<&str> = [&start, &joined, &end]
            .iter()
            .map(|e| log.record(e, sigs.of(e)).alert.category)
            .collect();
        assert_eq!(records, [CATEGORY_SCAN; 3]);
        // The attacker's own part turning into volume files the incident anew.
        let mut flood = ev[0].clone();
        flood.incident.id = "flood".into();
        flood.top_features = vec![dev(Feature::SynRatio, 1.8, Family::Flag(0))];
        assert_eq!(
            log.record(&flood, sigs.of(&flood)).alert.category,
            CATEGORY_SCAN
        );
        flood
            .top_features
            .push(dev(Feature::SynCount, 90.0, Family::Flag(0)));
        assert_eq!(
            log.record(&flood, sigs.of(&flood)).alert.category,
            CATEGORY_DOS
        );
    }

    #[test]
    fn severity_is_the_peak_over_the_threshold_each_window_was_scored_with() {
        // The adaptive threshold rises from 2 to 40: the first window was 10 times over it,
        // the later, higher scores barely.
        let ev = events_with(&[
            (20.0, 2.0, 4662.0, "127.0.66.1"),
            (41.0, 40.0, 4662.0, "127.0.66.1"),
            (42.0, 40.0, 4662.0, "127.0.66.1"),
        ]);
        let end = ev.last().unwrap();
        let scale = &end.incident.scales[0];
        assert_eq!((scale.peak_score, scale.threshold), (42.0, 40.0));
        assert_eq!(scale.peak_ratio, 10.0);
        let r = null_log(None).record(end, Signature::of(end));
        assert_eq!(r.alert.severity, 1, "10 times over, not 42 / 40");
    }

    #[test]
    fn a_new_culprit_is_the_source_of_its_own_record() {
        // A floods; B joins with a substantial share (A 0.6 / B 0.4 of the SYNs).
        let mut ev = events(&[(25.0, 1000.0, "127.0.66.1")]);
        assert_eq!(ev.len(), 2);
        let mut culprit = ev[0].clone();
        culprit.event_type = EventType::IncidentCulprit;
        let mut c = culprit.incident.culprits[0].clone();
        c.ip = ip("127.0.66.2");
        c.target = None;
        culprit.culprit = Some(c.clone());
        culprit.incident.culprits.push(c);
        let log = null_log(None);
        let mut sigs = Signatures::default();
        let start = log.record(&ev[0], sigs.of(&ev[0]));
        let joined = log.record(&culprit, sigs.of(&culprit));
        assert_eq!(joined.src_ip, Some(ip("127.0.66.2")));
        // Its own flow was not seen: the incident's victim (A's target), without ports.
        assert_eq!(
            (joined.dest_ip, joined.dest_port, joined.proto),
            (Some(ip("127.0.0.41")), None, None)
        );
        assert_eq!(joined.alert.signature_id, start.alert.signature_id);
        assert_eq!(joined.alert.metadata["netanom_event"], ["culprit"]);
        assert_eq!(joined.alert.metadata["netanom_new_culprit"], ["127.0.66.2"]);
        assert_eq!(
            joined.alert.metadata["netanom_culprits"],
            ["127.0.66.1", "127.0.66.2"]
        );
        assert!(joined.in_iface.is_none());
        // No culprit's target known: a flood's victim among the culprits, else the window's
        // top destination, never the culprit itself.
        let mut lone = ev[0].clone();
        lone.incident.culprits[0].target = None;
        lone.top_talkers.destination = vec![
            crate::output::alerts::AddrCount {
                ip: ip("127.0.66.1"),
                packets: 9,
            },
            crate::output::alerts::AddrCount {
                ip: ip("10.0.1.1"),
                packets: 5,
            },
        ];
        let r = log.record(&lone, Signature::of(&lone));
        assert_eq!(
            (r.src_ip, r.dest_ip),
            (Some(ip("127.0.66.1")), Some(ip("10.0.1.1")))
        );
        let mut victim = lone.incident.culprits[0].clone();
        victim.ip = ip("198.51.100.1");
        victim.role = Role::FloodTarget;
        lone.incident.culprits.push(victim);
        let r = log.record(&lone, Signature::of(&lone));
        assert_eq!(r.dest_ip, Some(ip("198.51.100.1")));
        // A flood's victim alone: the destination, no source.
        let e = &mut ev[0];
        e.incident.culprits[0].role = Role::FloodTarget;
        e.incident.culprits[0].target = None;
        let r = log.record(e, Signature::of(e));
        assert_eq!((r.src_ip, r.dest_ip), (None, Some(ip("127.0.66.1"))));
        assert!(r.alert.source.is_none());
    }

    #[test]
    fn the_eve_log_follows_rotation_and_queues_on_a_full_disk() {
        let ev = events(&[(25.0, 4662.0, "127.0.66.1"), (3.0, 900.0, "127.0.66.1")]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eve.json");
        let mut log = EveLog::new(AlertLog::open(&path, false).unwrap(), None);
        let sig = Signature::of(&ev[0]);
        assert_eq!(log.write(&ev[0], sig).written, 1);
        std::fs::rename(&path, dir.path().join("eve.json.1")).unwrap();
        let f = log.write(&ev[1], sig);
        assert!(f.reopened && f.written == 1, "{f:?}");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(
            v["alert"]["metadata"]["netanom_event"],
            serde_json::json!(["end"])
        );
        // /dev/full: every write fails; the records wait, in order, for another file.
        let mut full = EveLog::new(
            AlertLog::with_file(AlertFile::open("/dev/full").unwrap(), false, 10),
            None,
        );
        for e in &ev {
            assert_eq!(full.write(e, sig).written, 0);
        }
        assert_eq!(full.log().queued(), 2);
        let other = dir.path().join("eve2.json");
        full.log_mut().switch(AlertFile::open(&other).unwrap());
        assert_eq!(full.log_mut().flush().written, 2);
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&other)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let kinds: Vec<_> = lines
            .iter()
            .map(|v| v["alert"]["metadata"]["netanom_event"][0].clone())
            .collect();
        assert_eq!(kinds, ["start", "end"]);
    }
}
