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
//!   the host its packets went to, with `src_port`, `dest_port` and `proto` where one carried
//!   most of that flow; a flood's victim without an attacker-side culprit is `dest_ip` alone.
//! - `alert.signature_id` is stable per feature family ([`signature_id`]), fixed for an incident
//!   by its first record; `alert.severity` 1–3 from the incident's peak score over its
//!   threshold ([`severity`]); netanom's own fields are under `alert.metadata`, as arrays of
//!   strings.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;

use serde::Serialize;

use super::alerts::{number, AlertEvent, AlertLog, CulpritRef, EventType, Flush, SCHEMA_VERSION};
use crate::window::features::{Family, Feature, Role};

/// `alert.gid` of every record (Suricata's generator id of rule alerts).
pub const GID: u32 = 1;

/// `alert.rev` of every signature; raised if a signature's meaning changes.
pub const REV: u32 = 1;

/// `alert.signature_id` of an incident without a deviating feature to name.
pub const SID_UNEXPLAINED: u32 = 1_000_000;

/// The stable `alert.signature_id` of a feature family, in Suricata's local range
/// 1000000–1999999 (docs/alerts.md has the table).
pub const fn signature_id(family: Family) -> u32 {
    use crate::window::features::WELL_KNOWN_PORTS;
    match family {
        Family::Packets => 1_000_001,
        Family::Flag(i) => 1_000_010 + i as u32,
        Family::Icmp => 1_000_020,
        Family::Udp => 1_000_021,
        Family::IcmpReplies => 1_000_022,
        Family::NewDstAddrs => 1_000_030,
        Family::NewSrcAddrs => 1_000_031,
        Family::NewSrcPorts => 1_000_032,
        Family::NewDstPorts => 1_000_033,
        Family::NewDstAddrsInReplies => 1_000_034,
        Family::NewSrcPortsInReplies => 1_000_035,
        Family::NewDstPortsInReplies => 1_000_036,
        Family::PacketsInReplies => 1_000_002,
        Family::RstReplies => 1_000_023,
        // The port itself in the last digits: 1010443 is source port 443.
        Family::SrcPort(i) => 1_010_000 + WELL_KNOWN_PORTS[i as usize] as u32,
        Family::DstPort(i) => 1_020_000 + WELL_KNOWN_PORTS[i as usize] as u32,
        Family::SrcPortInReplies(i) => 1_030_000 + WELL_KNOWN_PORTS[i as usize] as u32,
        Family::DstPortInReplies(i) => 1_040_000 + WELL_KNOWN_PORTS[i as usize] as u32,
    }
}

/// `alert.category`: Suricata's classification (`classification.config`) of what a family's
/// anomaly usually is.
pub const fn category(family: Option<Family>) -> &'static str {
    const SCAN: &str = "Detection of a Network Scan";
    const DOS: &str = "Attempted Denial of Service";
    const BAD: &str = "Potentially Bad Traffic";
    match family {
        // Replies to probes, new destinations and ports, FIN and URG probes.
        Some(Family::Flag(1 | 3 | 4 | 7 | 8))
        | Some(
            Family::IcmpReplies
            | Family::RstReplies
            | Family::NewDstAddrs
            | Family::NewDstPorts
            | Family::NewDstAddrsInReplies
            | Family::NewSrcPortsInReplies
            | Family::NewDstPortsInReplies,
        ) => SCAN,
        Some(
            Family::Packets
            | Family::PacketsInReplies
            | Family::Flag(_)
            | Family::Icmp
            | Family::Udp
            | Family::NewSrcAddrs
            | Family::NewSrcPorts,
        ) => DOS,
        Some(
            Family::SrcPort(_)
            | Family::DstPort(_)
            | Family::SrcPortInReplies(_)
            | Family::DstPortInReplies(_),
        )
        | None => BAD,
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

/// Open incidents whose signature is remembered (an end lost to a crash cannot grow it).
const MAX_REMEMBERED: usize = 1024;

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

/// The family a deviating feature's anomaly is about: the family of its top contributor's
/// role (for `icmp_count`, the unreachable errors when a scanner tops it), else its first.
fn family_of(alert: &AlertEvent) -> Option<Family> {
    let d = alert.top_features.first()?;
    let feature = Feature::from_name(d.name)?;
    let families = feature.families();
    let by_role = d
        .contributors
        .first()
        .and_then(|c| families.iter().find(|f| f.role() == c.role));
    Some(*by_role.unwrap_or(&feature.family()))
}

/// `NETANOM anomaly: syn_count 4662 (max 28)`: the explanation's most deviating feature
/// against its training range.
fn signature(alert: &AlertEvent) -> String {
    match alert.top_features.first() {
        Some(d) => {
            let (bound, limit) = if d.normalized < 0.0 {
                ("min", d.training_min)
            } else {
                ("max", d.training_max)
            };
            format!(
                "NETANOM anomaly: {} {} ({bound} {})",
                d.name,
                number(d.value),
                number(limit)
            )
        }
        None => "NETANOM anomaly".to_string(),
    }
}

/// The incident's score over threshold so far: the largest over its scales.
fn peak_ratio(alert: &AlertEvent) -> f64 {
    alert
        .incident
        .scales
        .iter()
        .filter(|s| s.threshold > 0.0)
        .map(|s| s.peak_score / s.threshold)
        .fold(alert.score / alert.threshold, f64::max)
}

impl EveAlert {
    /// The EVE record of an alert event, with signature id `sid` and `in_iface`.
    pub fn of(alert: &AlertEvent, sid: u32, in_iface: Option<&str>) -> EveAlert {
        let culprit: Option<&CulpritRef> =
            alert.culprit.as_ref().or(alert.incident.culprits.first());
        let (mut src, mut dst, mut proto) = (None, None, None);
        if let Some(c) = culprit {
            if c.role.is_attacker_side() {
                src = Some(Endpoint {
                    ip: c.ip,
                    port: c.target.as_ref().and_then(|t| t.src_port),
                });
                if let Some(t) = &c.target {
                    dst = Some(Endpoint {
                        ip: t.ip,
                        port: t.dest_port,
                    });
                    proto = t.proto;
                }
            } else {
                // A flood's victim: the attacker is unknown (spoofed sources).
                dst = Some(Endpoint {
                    ip: c.ip,
                    port: None,
                });
            }
        }
        let family = family_of(alert);
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
                signature_id: sid,
                rev: REV,
                signature: signature(alert),
                category: category(family),
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

/// The EVE log: the alert log's file machinery writing [`EveAlert`] records, and the signature
/// id of each open incident.
pub struct EveLog {
    log: AlertLog,
    in_iface: Option<String>,
    /// Signature id by incident id, fixed by its first record; oldest first for the bound.
    sids: HashMap<String, u32>,
    order: VecDeque<String>,
}

impl EveLog {
    /// An EVE log writing through `log`; records carry `in_iface` when capturing live.
    pub fn new(log: AlertLog, in_iface: Option<String>) -> EveLog {
        EveLog {
            log,
            in_iface,
            sids: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The file machinery (path, queue, reopening).
    pub fn log(&self) -> &AlertLog {
        &self.log
    }

    /// The file machinery, to reopen, switch, retry or flush.
    pub fn log_mut(&mut self) -> &mut AlertLog {
        &mut self.log
    }

    /// The record of `alert`, its signature id fixed per incident.
    pub fn record(&mut self, alert: &AlertEvent) -> EveAlert {
        let id = &alert.incident.id;
        let sid = match self.sids.get(id) {
            Some(&sid) => sid,
            None => {
                let sid = family_of(alert).map_or(SID_UNEXPLAINED, signature_id);
                if self.order.len() >= MAX_REMEMBERED {
                    if let Some(old) = self.order.pop_front() {
                        self.sids.remove(&old);
                    }
                }
                self.sids.insert(id.clone(), sid);
                self.order.push_back(id.clone());
                sid
            }
        };
        if alert.event_type == EventType::IncidentEnd {
            self.sids.remove(id);
            self.order.retain(|o| o != id);
        }
        EveAlert::of(alert, sid, self.in_iface.as_deref())
    }

    /// Writes the record of `alert` as one line (and what is queued before it).
    pub fn write(&mut self, alert: &AlertEvent) -> Flush {
        let record = self.record(alert);
        self.log.write_json(&record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::incident::{IncidentConfig, IncidentTracker, ScoredWindow};
    use crate::output::alerts::{AlertContext, AlertFile, Explanation};
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
        for (k, &(score, syn, attacker)) in windows.iter().enumerate() {
            let w = window(k as i64, syn, attacker);
            let sw = ScoredWindow {
                scale: 0,
                start_ns: w.start_ns,
                end_ns: w.end_ns,
                score,
                threshold: 2.0,
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

    #[test]
    fn a_record_names_the_attacker_as_source_and_its_flow() {
        let ev = events(&[(25.0, 4662.0, "127.0.66.1"), (3.0, 900.0, "127.0.66.1")]);
        assert_eq!(ev.len(), 2);
        let mut log = EveLog::new(
            AlertLog::with_file(AlertFile::open("/dev/null").unwrap(), false, 10),
            Some("eth0".into()),
        );
        let start = log.record(&ev[0]);
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
        assert_eq!(a["signature"], "NETANOM anomaly: syn_count 4662 (max 28)");
        assert_eq!(a["category"], "Attempted Denial of Service");
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
        // The end: same signature id, the incident's end fields.
        let end = log.record(&ev[1]);
        assert_eq!(end.alert.signature_id, 1_000_010);
        assert_eq!(end.alert.metadata["netanom_event"], ["end"]);
        assert_eq!(end.alert.metadata["netanom_end_reason"], ["shutdown"]);
        assert_eq!(end.src_ip, Some(ip("127.0.66.1")));
        assert!(log.sids.is_empty(), "forgotten once ended");
    }

    #[test]
    fn signature_ids_are_stable_distinct_and_in_the_local_range() {
        let sids: HashSet<u32> = Family::ALL.iter().map(|&f| signature_id(f)).collect();
        assert_eq!(sids.len(), NUM_FAMILIES);
        assert!(sids.iter().all(|s| (1_000_000..=1_999_999).contains(s)));
        assert!(!sids.contains(&SID_UNEXPLAINED));
        // The published table (docs/alerts.md) must not move.
        assert_eq!(signature_id(Family::Packets), 1_000_001);
        assert_eq!(signature_id(Family::Flag(0)), 1_000_010);
        assert_eq!(signature_id(Family::Flag(7)), 1_000_017);
        assert_eq!(signature_id(Family::IcmpReplies), 1_000_022);
        assert_eq!(signature_id(Family::NewDstPorts), 1_000_033);
        assert_eq!(signature_id(Family::SrcPort(3)), 1_010_443);
        assert_eq!(signature_id(Family::DstPort(1)), 1_020_022);
        assert_eq!(
            category(Some(Family::NewDstPorts)),
            "Detection of a Network Scan"
        );
        assert_eq!(
            category(Some(Family::Flag(7))),
            "Detection of a Network Scan"
        );
        assert_eq!(
            category(Some(Family::NewSrcAddrs)),
            "Attempted Denial of Service"
        );
        assert_eq!(category(None), "Potentially Bad Traffic");
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
        let mut log = EveLog::new(
            AlertLog::with_file(AlertFile::open("/dev/null").unwrap(), false, 10),
            None,
        );
        let start = log.record(&ev[0]);
        let joined = log.record(&culprit);
        assert_eq!(joined.src_ip, Some(ip("127.0.66.2")));
        assert_eq!(
            (joined.dest_ip, joined.proto),
            (None, None),
            "its flow was not seen"
        );
        assert_eq!(joined.alert.signature_id, start.alert.signature_id);
        assert_eq!(joined.alert.metadata["netanom_event"], ["culprit"]);
        assert_eq!(joined.alert.metadata["netanom_new_culprit"], ["127.0.66.2"]);
        assert_eq!(
            joined.alert.metadata["netanom_culprits"],
            ["127.0.66.1", "127.0.66.2"]
        );
        assert!(joined.in_iface.is_none());
        // A flood's victim alone: the destination, no source.
        let e = &mut ev[0];
        e.incident.culprits[0].role = Role::FloodTarget;
        e.incident.culprits[0].target = None;
        let r = log.record(e);
        assert_eq!((r.src_ip, r.dest_ip), (None, Some(ip("127.0.66.1"))));
        assert!(r.alert.source.is_none());
    }

    #[test]
    fn the_eve_log_follows_rotation_and_queues_on_a_full_disk() {
        let ev = events(&[(25.0, 4662.0, "127.0.66.1"), (3.0, 900.0, "127.0.66.1")]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eve.json");
        let mut log = EveLog::new(AlertLog::open(&path, false).unwrap(), None);
        assert_eq!(log.write(&ev[0]).written, 1);
        std::fs::rename(&path, dir.path().join("eve.json.1")).unwrap();
        let f = log.write(&ev[1]);
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
            assert_eq!(full.write(e).written, 0);
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
