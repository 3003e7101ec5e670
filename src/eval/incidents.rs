//! Incident-level evaluation: what SOC staff count. The windows' metrics (the paper's) say how
//! well scores separate attack windows; these say how many incidents a run raised, how many of
//! them were attacks, whether every attack raised one, into how many pieces, and how soon.
//!
//! Rules (docs/evaluation.md, "Incident metrics"):
//! - An *attack* is a labelled span: the rows of one name whose spans overlap or touch are one
//!   attack (a row per direction is common); the same name at another time is another attack.
//! - An incident *overlaps* an attack when [incident start, incident end] meets [attack start,
//!   attack end + tolerance]. The tolerance is (3 − 1) windows of the longest scale: a score
//!   covers three windows and belongs to the last, so the two windows after an attack still
//!   see it.
//! - A *false alarm* is an incident that overlaps no attack.
//! - *Time to first alert*: from the attack's start to the end of the first alerting window (of
//!   any scale) that overlaps the attack (with the tolerance): an alert is raised when that
//!   window closes. Never negative; an incident that began before the attack (a false alarm
//!   merged with it) does not make detection look early.
//! - *Merged*: a true incident that overlaps more than one attack; `attacks_per_incident` says
//!   how much `incidents_per_attack` = 1 owes to merging.
//! - *Flagged fraction*: the share of the attack's duration covered by alerting windows of any
//!   scale.

use serde::Serialize;

use super::labels::Labels;

/// One incident as the evaluation sees it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IncidentRecord {
    /// The incident's id.
    pub id: String,
    /// Start of its first alerting window, Unix seconds.
    pub start: f64,
    /// End of its last alerting window, Unix seconds.
    pub end: f64,
    /// End of the window that reported it, Unix seconds.
    pub reported: f64,
    pub peak_score: f64,
    /// Alerting windows, all scales.
    pub windows: u64,
    /// The window lengths that alerted, seconds.
    pub scales: Vec<f64>,
    /// Names of the attacks it overlaps (filled in by [`evaluate_incidents`]).
    pub attacks: Vec<String>,
}

/// One labelled attack and what the incidents made of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AttackIncidents {
    pub name: String,
    /// Unix seconds.
    pub start: f64,
    pub end: f64,
    /// Incidents that overlap it.
    pub incidents: u64,
    /// Seconds from its start to its first alert; `None` when no incident overlaps it.
    pub time_to_first_alert_s: Option<f64>,
    /// Share of its duration covered by alerting windows (0 to 1).
    pub flagged_fraction: f64,
}

/// The incident metrics (`incidents` in metrics.json).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IncidentEvaluation {
    /// Incidents raised.
    pub incidents: u64,
    /// Incidents that overlap a labelled attack.
    pub true_incidents: u64,
    /// Incidents that overlap none.
    pub false_alarms: u64,
    /// Labelled attacks (see the module's rules).
    pub attacks: u64,
    /// Attacks with at least one overlapping incident.
    pub attacks_detected: u64,
    /// Mean incidents per detected attack (1 is best; `None` with no detected attack).
    pub incidents_per_attack: Option<f64>,
    /// Mean attacks per true incident (1 is best: above 1, attacks were merged).
    pub attacks_per_incident: Option<f64>,
    /// True incidents that overlap more than one attack.
    pub merged_incidents: u64,
    /// Mean time to first alert over detected attacks, seconds.
    pub mean_time_to_first_alert_s: Option<f64>,
    /// The tolerance after an attack's end, seconds.
    pub tolerance_s: f64,
    pub per_attack: Vec<AttackIncidents>,
    pub list: Vec<IncidentRecord>,
}

/// Labelled attacks: per name, rows whose spans overlap or touch merged; (name, start, end) in
/// nanoseconds, by start.
pub fn attacks(labels: &Labels) -> Vec<(String, i64, i64)> {
    let mut out = Vec::new();
    for (l, name) in labels.names().iter().enumerate() {
        let mut spans: Vec<(i64, i64)> = labels
            .spans()
            .iter()
            .filter(|s| s.label == l)
            .map(|s| (s.start_ns, s.end_ns))
            .collect();
        spans.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for (a, b) in spans {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        out.extend(merged.into_iter().map(|(a, b)| (name.clone(), a, b)));
    }
    out.sort_by_key(|a| (a.1, a.2));
    out
}

/// Length of the part of `[a, b]` covered by `spans` (sorted by start, may overlap), ns.
fn covered(spans: &[(i64, i64)], a: i64, b: i64) -> i64 {
    let (mut total, mut reach) = (0i64, a);
    for &(s, e) in spans {
        let (s, e) = (s.max(reach), e.min(b));
        if e > s {
            total += e - s;
            reach = e;
        }
    }
    total
}

/// Evaluates `incidents` against `labels`. `alerting` holds the spans (ns) of every alerting
/// window of any scale; `tolerance_ns` is added after each attack's end (see the module).
pub fn evaluate_incidents(
    mut incidents: Vec<IncidentRecord>,
    alerting: &[(i64, i64)],
    labels: &Labels,
    tolerance_ns: i64,
) -> IncidentEvaluation {
    let attacks = attacks(labels);
    let mut alerting = alerting.to_vec();
    alerting.sort_unstable();
    let ns = |s: f64| (s * 1e9).round() as i64;
    let mut per_attack = Vec::with_capacity(attacks.len());
    for (name, a, b) in &attacks {
        let mut count = 0;
        for inc in incidents.iter_mut() {
            if ns(inc.start) <= b + tolerance_ns && ns(inc.end) >= *a {
                count += 1;
                inc.attacks.push(name.clone());
            }
        }
        // The first alerting window that sees the attack; only with an incident (min_windows
        // may have suppressed a lone alert).
        let first = (count > 0)
            .then(|| {
                alerting
                    .iter()
                    .filter(|(s, e)| *e > *a && *s <= b + tolerance_ns)
                    .map(|(_, e)| (e - a) as f64 / 1e9)
                    .reduce(f64::min)
            })
            .flatten();
        let duration = (b - a).max(1);
        per_attack.push(AttackIncidents {
            name: name.clone(),
            start: *a as f64 / 1e9,
            end: *b as f64 / 1e9,
            incidents: count,
            time_to_first_alert_s: first,
            flagged_fraction: covered(&alerting, *a, (*b).max(a + 1)) as f64 / duration as f64,
        });
    }
    let true_incidents = incidents.iter().filter(|i| !i.attacks.is_empty()).count() as u64;
    let merged_incidents = incidents.iter().filter(|i| i.attacks.len() > 1).count() as u64;
    let detected: Vec<&AttackIncidents> = per_attack.iter().filter(|a| a.incidents > 0).collect();
    let mean = |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    IncidentEvaluation {
        incidents: incidents.len() as u64,
        true_incidents,
        false_alarms: incidents.len() as u64 - true_incidents,
        attacks: attacks.len() as u64,
        attacks_detected: detected.len() as u64,
        incidents_per_attack: mean(detected.iter().map(|a| a.incidents as f64).collect()),
        attacks_per_incident: mean(
            incidents
                .iter()
                .filter(|i| !i.attacks.is_empty())
                .map(|i| i.attacks.len() as f64)
                .collect(),
        ),
        merged_incidents,
        mean_time_to_first_alert_s: mean(
            detected
                .iter()
                .filter_map(|a| a.time_to_first_alert_s)
                .collect(),
        ),
        tolerance_s: tolerance_ns as f64 / 1e9,
        per_attack,
        list: incidents,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::LABELS_HEADER;

    const S: i64 = 1_000_000_000;

    fn labels() -> Labels {
        let t0 = 1_700_000_000i64;
        Labels::parse_str(
            "labels.csv",
            &format!(
                "{}\nscan,10.0.0.66/32,*,{},{}\nscan,*,10.0.0.66/32,{},{}\nflood,10.0.0.7/32,*,{},{}\nscan,10.0.0.66/32,*,{},{}\n",
                LABELS_HEADER.join(","),
                t0 + 100,
                t0 + 160,
                t0 + 100,
                t0 + 161,
                t0 + 300,
                t0 + 330,
                t0 + 500,
                t0 + 510,
            ),
        )
        .unwrap()
    }

    fn inc(id: &str, start: i64, end: i64, reported: i64) -> IncidentRecord {
        let t0 = 1_700_000_000f64;
        IncidentRecord {
            id: id.into(),
            start: t0 + start as f64,
            end: t0 + end as f64,
            reported: t0 + reported as f64,
            peak_score: 1.0,
            windows: 1,
            scales: vec![0.5],
            attacks: Vec::new(),
        }
    }

    #[test]
    fn attacks_merge_rows_per_name_and_split_times_apart() {
        let a = attacks(&labels());
        let names: Vec<_> = a.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["scan", "flood", "scan"]);
        assert_eq!(
            (a[0].2 - a[0].1) / S,
            61,
            "the two directions are one attack"
        );
    }

    #[test]
    fn incidents_are_matched_counted_and_timed() {
        let t0 = 1_700_000_000 * S;
        let incidents = vec![
            inc("i-1", 102, 120, 103),
            inc("i-2", 130, 158, 131),
            inc("i-3", 200, 210, 201), // nothing there: a false alarm
            inc("i-4", 331, 335, 332), // just after the flood: within the tolerance
        ];
        // Alerting windows over the first scan: 102..120 and 130..158 of 100..161.
        let alerting = [(t0 + 102 * S, t0 + 120 * S), (t0 + 130 * S, t0 + 158 * S)];
        let e = evaluate_incidents(incidents, &alerting, &labels(), 2 * S);
        assert_eq!(e.incidents, 4);
        assert_eq!(e.true_incidents, 3);
        assert_eq!(e.false_alarms, 1);
        assert_eq!(e.attacks, 3);
        assert_eq!(e.attacks_detected, 2);
        assert_eq!(e.incidents_per_attack, Some(1.5));
        let scan = &e.per_attack[0];
        assert_eq!(scan.incidents, 2);
        assert_eq!(
            scan.time_to_first_alert_s,
            Some(20.0),
            "end of the first alerting window"
        );
        assert!((scan.flagged_fraction - 46.0 / 61.0).abs() < 1e-9);
        let flood = &e.per_attack[1];
        assert_eq!(flood.incidents, 1);
        assert_eq!(
            flood.time_to_first_alert_s, None,
            "no alerting window given for it"
        );
        assert_eq!(e.per_attack[2].incidents, 0);
        assert_eq!(e.per_attack[2].time_to_first_alert_s, None);
        assert_eq!(e.mean_time_to_first_alert_s, Some(20.0));
        assert_eq!((e.merged_incidents, e.attacks_per_incident), (0, Some(1.0)));
        assert_eq!(e.list[2].attacks, Vec::<String>::new());
        assert_eq!(e.list[3].attacks, ["flood"]);
        // An incident that began before the attack and runs into it: the attack's first alert
        // is the first alerting window that sees it, never before its start; one incident
        // over two attacks is merged.
        let early = vec![inc("i-9", 90, 335, 91)];
        let alerting = [
            (t0 + 90 * S, t0 + 91 * S),
            (t0 + 104 * S, t0 + 105 * S),
            (t0 + 300 * S, t0 + 301 * S),
        ];
        let e = evaluate_incidents(early, &alerting, &labels(), 2 * S);
        assert_eq!(e.per_attack[0].time_to_first_alert_s, Some(5.0));
        assert_eq!(e.per_attack[1].time_to_first_alert_s, Some(1.0));
        assert_eq!(e.merged_incidents, 1);
        assert_eq!(e.attacks_per_incident, Some(2.0));
        assert_eq!(e.incidents_per_attack, Some(1.0));
        // Without the tolerance the late incident is a false alarm.
        let e = evaluate_incidents(vec![inc("i-4", 331, 335, 332)], &[], &labels(), 0);
        assert_eq!(e.false_alarms, 1);
    }
}
