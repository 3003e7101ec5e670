//! Incidents as the alert log records them, for feedback: does an incident id exist, what
//! spans of time do the `benign` rules cover (the windows the next training takes in).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::{Action, IncidentFacts, RuleSet, RuleState};
use crate::history::TrainingSpans;

/// An incident of the alert log.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedIncident {
    /// What rules are matched against (start and end events together).
    pub facts: IncidentFacts,
    /// Start of its first alerting window, ns.
    pub start_ns: i64,
    /// End of its last alerting window, ns (from the end event; without one, as far as the
    /// start event says).
    pub end_ns: i64,
    /// An end event was read.
    pub ended: bool,
}

/// Unix seconds (as the alert log writes them) to ns; windows are whole microseconds.
fn ns(epoch: f64) -> i64 {
    ((epoch * 1e6).round() as i64).saturating_mul(1000)
}

/// The alert log at `path` and its rotated generations beside it, oldest first: logrotate's
/// numbered ones (`alerts.jsonl.2.gz`, `alerts.jsonl.1`, the highest number the oldest) and
/// dated ones (`alerts.jsonl-20261205[.gz]`, `dateext`), then `path` itself. An incident named
/// yesterday lives in a rotated file: feedback must find it there. `path` comes last even when
/// missing (a log just rotated away), so its absence is an error only if nothing was rotated.
pub fn alert_log_generations(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return vec![path.to_path_buf()];
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut numbered: Vec<(u64, PathBuf)> = Vec::new();
    let mut dated: Vec<(String, PathBuf)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let file = e.file_name();
            let Some(file) = file.to_str() else { continue };
            let Some(rest) = file.strip_prefix(name) else {
                continue;
            };
            let (sep, tail) = rest.split_at(rest.len().min(1));
            let stem = tail.strip_suffix(".gz").unwrap_or(tail);
            if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let p = dir.join(file);
            match sep {
                "." => numbered.push((stem.parse().unwrap_or(u64::MAX), p)),
                "-" => dated.push((stem.to_string(), p)),
                _ => {}
            }
        }
    }
    numbered.sort_by_key(|n| std::cmp::Reverse(n.0));
    dated.sort();
    dated
        .into_iter()
        .map(|(_, p)| p)
        .chain(numbered.into_iter().map(|(_, p)| p))
        .chain(std::iter::once(path.to_path_buf()))
        .collect()
}

/// Reads the incidents of the alert log at `path` and of its rotated generations
/// ([`alert_log_generations`], gzip-compressed ones too), in order of first event. Lines that
/// are not events are skipped. An error when no generation can be read (the caller names
/// `path`); an unreadable rotated file is skipped with a warning naming it.
pub fn read_incidents(path: &Path) -> std::io::Result<Vec<LoggedIncident>> {
    let mut order: Vec<String> = Vec::new();
    let mut by_id: HashMap<String, LoggedIncident> = HashMap::new();
    let mut read_any = false;
    let mut last_err = None;
    for file in alert_log_generations(path) {
        match read_generation(&file, &mut order, &mut by_id) {
            Ok(()) => read_any = true,
            Err(e) if file == path => last_err = Some(e),
            Err(e) => tracing::warn!("{}: skipped: {e}", file.display()),
        }
    }
    if let (false, Some(e)) = (read_any, last_err) {
        return Err(e);
    }
    Ok(order
        .into_iter()
        .filter_map(|id| by_id.remove(&id))
        .collect())
}

/// Adds the incident events of one alert-log file (gzip when named `*.gz`).
fn read_generation(
    file: &Path,
    order: &mut Vec<String>,
    by_id: &mut HashMap<String, LoggedIncident>,
) -> std::io::Result<()> {
    let f = std::fs::File::open(file)?;
    let reader: Box<dyn BufRead> = if file.extension().is_some_and(|e| e == "gz") {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(f)))
    } else {
        Box::new(BufReader::new(f))
    };
    // By bytes: one torn or non-UTF-8 line is skipped like any other non-event.
    for line in reader.split(b'\n') {
        let line = line?;
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) else {
            continue;
        };
        let Some(facts) = IncidentFacts::of_event(&v) else {
            continue;
        };
        let num = |p: &str| v.pointer(p).and_then(|x| x.as_f64());
        let Some(start) = num("/incident/start_epoch") else {
            continue;
        };
        let end = num("/incident/end_epoch")
            .or_else(|| num("/incident/duration_s").map(|d| start + d))
            .unwrap_or(start);
        let is_end = v.get("event_type").and_then(|t| t.as_str()) == Some("incident_end");
        match by_id.get_mut(&facts.id) {
            Some(inc) => {
                inc.start_ns = inc.start_ns.min(ns(start));
                inc.end_ns = inc.end_ns.max(ns(end));
                inc.ended |= is_end;
                inc.facts.merge(facts);
            }
            None => {
                order.push(facts.id.clone());
                by_id.insert(
                    facts.id.clone(),
                    LoggedIncident {
                        facts,
                        start_ns: ns(start),
                        end_ns: ns(end),
                        ended: is_end,
                    },
                );
            }
        }
    }
    Ok(())
}

/// The spans of time a training takes alerted windows back in: incidents that an active
/// `benign` rule matches at `now` (and the recorded spans of incident rules whose incident is
/// no longer in the log), and, to keep out, the spans of every other incident (an alerted
/// window that also lies in one of those stays out).
pub fn benign_spans(rules: &RuleSet, incidents: &[LoggedIncident], now: f64) -> TrainingSpans {
    let mut spans = TrainingSpans::default();
    for inc in incidents {
        let span = (inc.start_ns, inc.end_ns);
        if rules.matching(Action::Benign, &inc.facts, now).is_empty() {
            spans.other.push(span);
        } else {
            spans.benign.push(span);
            spans.benign_incidents.push(inc.facts.id.clone());
        }
    }
    for e in rules.entries() {
        if e.rule.action != Action::Benign || e.state(now) != RuleState::Active {
            continue;
        }
        let (Some(id), Some(s)) = (&e.rule.scope.incident, e.rule.incident_span) else {
            continue;
        };
        if !incidents.iter().any(|i| i.facts.id == *id) {
            spans.benign.push((ns(s.start_epoch), ns(s.end_epoch)));
            spans.benign_incidents.push(id.clone());
        }
    }
    spans
}

/// The spans the next training takes in, from the rules in `feedback_file` and the incidents
/// of `alert_log` at wall-clock `now`. Problems reading either are warnings (named), never
/// failures: a training without feedback is what it was before.
pub fn training_spans(feedback_file: &Path, alert_log: &Path, now: f64) -> TrainingSpans {
    let contents = match super::store::read(feedback_file) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("{e}; training without the feedback rules");
            return TrainingSpans::default();
        }
    };
    for s in &contents.skipped {
        tracing::warn!(
            "{}:{}: skipped: {}",
            feedback_file.display(),
            s.line,
            s.reason
        );
    }
    let any_benign = contents
        .rules
        .entries()
        .any(|e| e.rule.action == Action::Benign && e.state(now) == RuleState::Active);
    if !any_benign {
        return TrainingSpans::default();
    }
    let incidents = match read_incidents(alert_log) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(
                "cannot read the alert log {}: {e}; benign rules are matched against the incidents they name only",
                alert_log.display()
            );
            Vec::new()
        }
    };
    benign_spans(&contents.rules, &incidents, now)
}
