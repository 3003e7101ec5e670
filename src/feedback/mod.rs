//! Operator feedback, after Alertmanager's silences and Elastic's exception rules: a SOC
//! analyst marks what an incident was, and netanom acts on it.
//!
//! - `suppress`: matching incidents are still written to the alert log, with
//!   `suppressed_by: [rule ids]`, but are not firing (`netanom_incident_active`,
//!   `netanom_incidents_total` leave them out; `netanom_incidents_suppressed_total{reason=
//!   "feedback"}` counts them).
//! - `benign`: the windows of matching incidents are normal traffic after all: the next
//!   training (learning mode, scheduled retraining, `netanom train --history`) includes them
//!   instead of leaving them out.
//!
//! A rule has a scope (an incident id, a host, a subnet, a feature; several together must
//! all match), a comment, who made it and when, and an optional expiry. Rules live in an
//! append-only JSON-lines file ([`store`]); expiring a rule appends a record, nothing is ever
//! rewritten. The daemon follows the file and applies new rules within seconds.

pub mod incidents;
pub mod store;

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// What a rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Matching incidents are logged but do not fire.
    Suppress,
    /// Matching incidents' windows are trained on.
    Benign,
}

impl Action {
    /// Both actions.
    pub const ALL: [Action; 2] = [Action::Suppress, Action::Benign];

    /// `suppress` or `benign`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Suppress => "suppress",
            Action::Benign => "benign",
        }
    }
}

/// Which incidents a rule is about: every field given must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// The incident's id (`incident.id` in the alert log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    /// A host the incident names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<IpAddr>,
    /// A subnet holding a host the incident names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<IpNet>,
    /// One of the incident's top features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
}

impl Scope {
    /// True when the scope matches every incident: nothing given, or only a subnet of
    /// prefix length 0 (`0.0.0.0/0`, `::/0`).
    pub fn matches_everything(&self) -> bool {
        self.incident.is_none()
            && self.host.is_none()
            && self.feature.is_none()
            && self.subnet.is_none_or(|n| n.prefix_len() == 0)
    }

    /// Whether an incident is in scope.
    pub fn matches(&self, facts: &IncidentFacts) -> bool {
        self.incident.as_ref().is_none_or(|id| *id == facts.id)
            && self.host.is_none_or(|h| facts.hosts.contains(&h))
            && self
                .subnet
                .is_none_or(|n| facts.hosts.iter().any(|h| n.contains(h)))
            && self
                .feature
                .as_ref()
                .is_none_or(|f| facts.features.iter().any(|g| g == f))
    }
}

impl std::fmt::Display for Scope {
    /// `incident 6747b2a1-3, host 10.0.0.5`, or `everything`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(i) = &self.incident {
            parts.push(format!("incident {i}"));
        }
        if let Some(h) = &self.host {
            parts.push(format!("host {h}"));
        }
        if let Some(n) = &self.subnet {
            parts.push(format!("subnet {n}"));
        }
        if let Some(x) = &self.feature {
            parts.push(format!("feature {x}"));
        }
        if parts.is_empty() {
            f.write_str("everything")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// The span of an incident, Unix seconds (recorded with an `--incident` rule, so that it still
/// counts once the alert log has been rotated away).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub start_epoch: f64,
    pub end_epoch: f64,
}

/// A rule, as appended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Short unique id (8 hex digits).
    pub id: String,
    pub action: Action,
    pub scope: Scope,
    /// Why (required).
    pub comment: String,
    /// Who: `SUDO_USER`, `USER`, or the uid.
    pub who: String,
    /// When, RFC 3339 UTC, and as Unix seconds.
    pub created: String,
    pub created_epoch: f64,
    /// When it stops applying (`--expires`), if ever.
    #[serde(default)]
    pub expires: Option<String>,
    #[serde(default)]
    pub expires_epoch: Option<f64>,
    /// Made with `--force` (a scope that matches everything).
    #[serde(default)]
    pub force: bool,
    /// With an incident scope: that incident's span when the rule was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_span: Option<Span>,
}

/// An expiry appended for a rule (`netanom feedback expire`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Expiry {
    /// The rule's id.
    pub id: String,
    pub comment: String,
    pub who: String,
    pub at: String,
    pub at_epoch: f64,
}

/// One line of the feedback file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A new rule.
    Rule(Rule),
    /// A rule expired by hand.
    Expire(Expiry),
}

/// A rule's state at some time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleState {
    /// It applies.
    Active,
    /// Its `--expires` time passed, or it was expired by hand.
    Expired,
}

impl RuleState {
    /// `active` or `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleState::Active => "active",
            RuleState::Expired => "expired",
        }
    }
}

/// A rule and how it ended, if it did by hand.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub rule: Rule,
    pub expired: Option<Expiry>,
}

impl Entry {
    /// The rule's state at `now` (Unix seconds).
    pub fn state(&self, now: f64) -> RuleState {
        let timed_out = self.rule.expires_epoch.is_some_and(|e| e <= now);
        if self.expired.is_some() || timed_out {
            RuleState::Expired
        } else {
            RuleState::Active
        }
    }
}

/// Every rule of a feedback file, in the order made.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleSet {
    entries: BTreeMap<String, Entry>,
    order: Vec<String>,
}

impl RuleSet {
    /// Applies one record; an expiry of an unknown rule, or a second rule of an id, is
    /// returned as an error text (the record is ignored).
    pub fn apply(&mut self, record: Record) -> Result<(), String> {
        match record {
            Record::Rule(rule) => {
                if self.entries.contains_key(&rule.id) {
                    return Err(format!("a second rule with id {}", rule.id));
                }
                self.order.push(rule.id.clone());
                self.entries.insert(
                    rule.id.clone(),
                    Entry {
                        rule,
                        expired: None,
                    },
                );
                Ok(())
            }
            Record::Expire(x) => match self.entries.get_mut(&x.id) {
                Some(e) if e.expired.is_none() => {
                    e.expired = Some(x);
                    Ok(())
                }
                Some(_) => Err(format!("rule {} expired twice", x.id)),
                None => Err(format!("an expiry of unknown rule {}", x.id)),
            },
        }
    }

    /// The rule of `id`.
    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id)
    }

    /// Every rule, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.order.iter().filter_map(|id| self.entries.get(id))
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when there is no rule.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The ids of the rules of `action` active at `now` whose scope matches `facts`, oldest
    /// first.
    pub fn matching(&self, action: Action, facts: &IncidentFacts, now: f64) -> Vec<String> {
        self.entries()
            .filter(|e| e.rule.action == action && e.state(now) == RuleState::Active)
            .filter(|e| e.rule.scope.matches(facts))
            .map(|e| e.rule.id.clone())
            .collect()
    }

    /// Rules by action and state at `now` (for `netanom_feedback_rules`).
    pub fn counts(&self, now: f64) -> Vec<(Action, RuleState, usize)> {
        let mut out = Vec::new();
        for action in Action::ALL {
            for state in [RuleState::Active, RuleState::Expired] {
                let n = self
                    .entries()
                    .filter(|e| e.rule.action == action && e.state(now) == state)
                    .count();
                out.push((action, state, n));
            }
        }
        out
    }
}

/// What a rule is matched against: an incident's id, the hosts it names and its top
/// features.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IncidentFacts {
    pub id: String,
    pub hosts: Vec<IpAddr>,
    pub features: Vec<String>,
}

impl IncidentFacts {
    /// The facts of an alert event, as the alert log holds it (docs/alerts.md). `None`
    /// without `incident.id`.
    pub fn of_event(event: &serde_json::Value) -> Option<IncidentFacts> {
        let id = event.pointer("/incident/id")?.as_str()?.to_string();
        let features = event
            .get("top_features")
            .and_then(|f| f.as_array())
            .map(|f| {
                f.iter()
                    .filter_map(|x| x.get("name")?.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        Some(IncidentFacts {
            id,
            hosts: named_hosts(event),
            features,
        })
    }

    /// Adds the hosts and features of another event of the same incident.
    pub fn merge(&mut self, other: IncidentFacts) {
        for h in other.hosts {
            if !self.hosts.contains(&h) {
                self.hosts.push(h);
            }
        }
        for f in other.features {
            if !self.features.contains(&f) {
                self.features.push(f);
            }
        }
    }
}

/// The hosts an incident event names: its culprits (`incident.culprits[]`, attacker side
/// first, schema 3); for an event without culprits (an alert log of an older netanom), each
/// top feature's contributors, then the top source talkers. The one place that decides which
/// hosts a host or subnet rule is matched against. Culprits only, when there are some: the
/// busy servers every incident's talkers list would otherwise match every rule about them.
pub fn named_hosts(event: &serde_json::Value) -> Vec<IpAddr> {
    let culprits: Vec<IpAddr> = event
        .pointer("/incident/culprits")
        .and_then(|c| c.as_array())
        .map(|cs| {
            let mut v: Vec<IpAddr> = Vec::new();
            for ip in cs
                .iter()
                .filter_map(|c| c.get("ip").and_then(|ip| ip.as_str()))
                .filter_map(|s| s.parse::<IpAddr>().ok())
            {
                if !v.contains(&ip) {
                    v.push(ip);
                }
            }
            v
        })
        .unwrap_or_default();
    if !culprits.is_empty() {
        return culprits;
    }
    let mut hosts: Vec<IpAddr> = Vec::new();
    let mut add = |v: Option<&serde_json::Value>| {
        if let Some(ip) = v
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse::<IpAddr>().ok())
        {
            if !hosts.contains(&ip) {
                hosts.push(ip);
            }
        }
    };
    if let Some(features) = event.get("top_features").and_then(|f| f.as_array()) {
        for f in features {
            if let Some(cs) = f.get("contributors").and_then(|c| c.as_array()) {
                for c in cs {
                    add(c.get("ip"));
                }
            }
        }
    }
    if let Some(sources) = event
        .pointer("/top_talkers/source")
        .and_then(|s| s.as_array())
    {
        for s in sources {
            add(s.get("ip"));
        }
    }
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, action: Action, scope: Scope) -> Rule {
        Rule {
            id: id.into(),
            action,
            scope,
            comment: "c".into(),
            who: "w".into(),
            created: "t".into(),
            created_epoch: 100.0,
            expires: None,
            expires_epoch: None,
            force: false,
            incident_span: None,
        }
    }

    fn facts() -> IncidentFacts {
        let event = serde_json::json!({
            "incident": {"id": "abc-1"},
            "top_features": [
                {"name": "pkt_count", "contributors": [{"ip": "10.0.0.5", "packets": 9}]},
                {"name": "syn_count", "contributors": []}
            ],
            "top_talkers": {"source": [{"ip": "192.0.2.7", "packets": 3}, {"ip": "10.0.0.5", "packets": 1}]}
        });
        IncidentFacts::of_event(&event).unwrap()
    }

    /// The facts of an event: contributors first, then talkers, each once.
    #[test]
    fn facts_of_an_event() {
        let f = facts();
        assert_eq!(f.id, "abc-1");
        assert_eq!(
            f.hosts,
            vec![
                "10.0.0.5".parse::<IpAddr>().unwrap(),
                "192.0.2.7".parse().unwrap()
            ]
        );
        assert_eq!(f.features, ["pkt_count", "syn_count"]);
    }

    /// Each scope field, together (all must match), and scopes that match everything.
    #[test]
    fn scopes_match() {
        let f = facts();
        let s = |incident: Option<&str>,
                 host: Option<&str>,
                 subnet: Option<&str>,
                 feature: Option<&str>| Scope {
            incident: incident.map(String::from),
            host: host.map(|h| h.parse().unwrap()),
            subnet: subnet.map(|n| n.parse().unwrap()),
            feature: feature.map(String::from),
        };
        assert!(s(Some("abc-1"), None, None, None).matches(&f));
        assert!(!s(Some("abc-2"), None, None, None).matches(&f));
        assert!(s(None, Some("192.0.2.7"), None, None).matches(&f));
        assert!(!s(None, Some("192.0.2.8"), None, None).matches(&f));
        assert!(s(None, None, Some("10.0.0.0/24"), None).matches(&f));
        assert!(!s(None, None, Some("10.0.1.0/24"), None).matches(&f));
        assert!(s(None, None, None, Some("syn_count")).matches(&f));
        assert!(!s(None, None, None, Some("rst_count")).matches(&f));
        assert!(s(None, Some("10.0.0.5"), None, Some("pkt_count")).matches(&f));
        assert!(!s(None, Some("10.0.0.5"), None, Some("rst_count")).matches(&f));
        assert!(s(None, None, None, None).matches_everything());
        assert!(s(None, None, Some("0.0.0.0/0"), None).matches_everything());
        assert!(s(None, None, Some("::/0"), None).matches_everything());
        assert!(!s(None, None, Some("10.0.0.0/8"), None).matches_everything());
        assert_eq!(
            s(Some("x"), Some("10.0.0.5"), None, None).to_string(),
            "incident x, host 10.0.0.5"
        );
    }

    /// Rules by action, expiry by time and by hand, and the counts of each state.
    #[test]
    fn rule_sets_expire() {
        let mut set = RuleSet::default();
        let mut timed = rule("t1", Action::Suppress, Scope::default());
        timed.expires_epoch = Some(200.0);
        set.apply(Record::Rule(timed)).unwrap();
        set.apply(Record::Rule(rule("b1", Action::Benign, Scope::default())))
            .unwrap();
        set.apply(Record::Rule(rule("s2", Action::Suppress, Scope::default())))
            .unwrap();
        let f = facts();
        assert_eq!(set.matching(Action::Suppress, &f, 150.0), ["t1", "s2"]);
        assert_eq!(set.matching(Action::Suppress, &f, 250.0), ["s2"]);
        assert_eq!(set.matching(Action::Benign, &f, 250.0), ["b1"]);
        let x = Expiry {
            id: "s2".into(),
            comment: "done".into(),
            who: "w".into(),
            at: "t".into(),
            at_epoch: 240.0,
        };
        set.apply(Record::Expire(x.clone())).unwrap();
        assert!(set.matching(Action::Suppress, &f, 250.0).is_empty());
        assert!(set.apply(Record::Expire(x)).unwrap_err().contains("twice"));
        assert!(set
            .apply(Record::Rule(rule("b1", Action::Benign, Scope::default())))
            .unwrap_err()
            .contains("second rule"));
        let counts = set.counts(250.0);
        assert!(counts.contains(&(Action::Suppress, RuleState::Expired, 2)));
        assert!(counts.contains(&(Action::Benign, RuleState::Active, 1)));
        assert!(counts.contains(&(Action::Suppress, RuleState::Active, 0)));
    }
}
