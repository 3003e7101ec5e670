//! The Grafana dashboard, the Prometheus alert rules and docs/metrics.md against the metrics
//! the daemon really exports.
//!
//! The exported names come from a real `netanom run` (the shipped model, a real-time replay of
//! `data/normal-lo.pcap`, no root needed), scraped once per test binary. Then:
//! - every metric a dashboard query names (panel targets, annotations, template variables)
//!   is exported: a panel that queries a metric that does not exist fails the test;
//! - the same for every alert rule's expression (promtool's unit tests use synthetic series,
//!   so they cannot see a renamed metric; this does);
//! - docs/metrics.md's table lists exactly the exported metric families.
//!
//! Metric names are taken from PromQL by a small lexer ([`metric_names`]): identifiers that
//! are not functions, aggregation operators, keywords, label names (in `{…}`, `by (…)`,
//! `on (…)`…), durations, numbers or strings. Its own tests are at the end.

mod common;
#[path = "support/daemon.rs"]
mod daemon_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use daemon_support::*;
use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

// ---------------------------------------------------------------------------------------------
// What the daemon exports
// ---------------------------------------------------------------------------------------------

struct Exported {
    /// Sample names (histograms as `_bucket`, `_sum`, `_count`): what PromQL can select.
    samples: BTreeSet<String>,
    /// Metric families and their `# TYPE`.
    families: BTreeMap<String, String>,
}

/// Starts `netanom run` on a real-time replay of a capture with the shipped model, waits until
/// it has scored a window (so every metric has been touched), scrapes `/metrics`, stops it.
fn exported() -> &'static Exported {
    static E: OnceLock<Exported> = OnceLock::new();
    E.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("tempdir");
        let log = tmp.path().join("alerts.jsonl");
        let args = os_args([
            "--pcap".into(),
            repo("data/normal-lo.pcap").into_os_string(),
            "--realtime".into(),
            "--model".into(),
            default_model_copy(tmp.path()).into_os_string(),
            "--alert-log".into(),
            log.into_os_string(),
            "--metrics-listen".into(),
            "127.0.0.1:0".into(),
        ]);
        let d = Daemon::start(&args, &[]);
        let addr = d.metrics_addr(Duration::from_secs(60));
        let (ok, e) = scrape_until(addr, Duration::from_secs(60), |e| {
            e.get("netanom_model_loaded") == Some(1.0)
                && e.get("netanom_windows_scored_total").unwrap_or(0.0) >= 1.0
        });
        assert!(
            ok,
            "the daemon scored no window within 60 s:\n{}",
            d.log_text()
        );
        drop(d);
        let samples: BTreeSet<String> = e.samples.iter().map(|s| s.name.clone()).collect();
        assert!(samples.len() >= 20, "too few metrics exported: {samples:?}");
        Exported {
            samples,
            families: e.types,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// PromQL: the metric names an expression selects
// ---------------------------------------------------------------------------------------------

/// Aggregation operators, binary operators and modifiers: identifiers that are not metrics.
const KEYWORDS: [&str; 25] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "and",
    "or",
    "unless",
    "atan2",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Index just past the string literal starting at `i` (`"…"`, `'…'` with escapes, or `` `…` ``).
fn skip_string(b: &[char], i: usize) -> usize {
    let quote = b[i];
    let mut j = i + 1;
    while j < b.len() {
        if b[j] == '\\' && quote != '`' {
            j += 2;
            continue;
        }
        if b[j] == quote {
            return j + 1;
        }
        j += 1;
    }
    j
}

/// Index just past the bracket that closes the one at `i` (strings inside are skipped).
fn skip_group(b: &[char], i: usize) -> usize {
    let (open, close) = (b[i], matching(b[i]));
    let mut depth = 0;
    let mut j = i;
    while j < b.len() {
        match b[j] {
            '"' | '\'' | '`' => {
                j = skip_string(b, j);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
        j += 1;
    }
    j
}

fn matching(c: char) -> char {
    match c {
        '(' => ')',
        '[' => ']',
        '{' => '}',
        _ => unreachable!("not a bracket: {c}"),
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The metric names selected by a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let b: Vec<char> = expr.chars().collect();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            '"' | '\'' | '`' => i = skip_string(&b, i),
            // Label matchers and ranges/subqueries: no metric names inside.
            '{' | '[' => i = skip_group(&b, i),
            '#' => {
                while i < b.len() && b[i] != '\n' {
                    i += 1;
                }
            }
            // Grafana variables ($instance, $__rate_interval).
            '$' => {
                i += 1;
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
            }
            // Numbers and durations: 0.99, 1e6, 5m, 0x1f.
            c if c.is_ascii_digit()
                || (c == '.' && b.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                while i < b.len()
                    && (is_ident(b[i])
                        || b[i] == '.'
                        || ((b[i] == '+' || b[i] == '-') && matches!(b[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
                let word: String = b[start..i].iter().collect();
                let mut j = i;
                while j < b.len() && b[j].is_whitespace() {
                    j += 1;
                }
                let lower = word.to_ascii_lowercase();
                if LABEL_LISTS.contains(&lower.as_str()) && b.get(j) == Some(&'(') {
                    i = skip_group(&b, j);
                } else if KEYWORDS.contains(&lower.as_str()) || lower == "nan" {
                } else if b.get(j) == Some(&'(') {
                    // a function call
                } else {
                    out.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// A Grafana template-variable query: `label_values(SELECTOR, LABEL)` (or
/// `label_values(LABEL)`) selects SELECTOR; anything else is PromQL.
fn grafana_query_metrics(q: &str) -> BTreeSet<String> {
    let t = q.trim();
    if let Some(args) = t
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return match args.rsplit_once(',') {
            Some((selector, _label)) => metric_names(selector),
            None => BTreeSet::new(),
        };
    }
    metric_names(t)
}

// ---------------------------------------------------------------------------------------------
// The dashboard's queries
// ---------------------------------------------------------------------------------------------

/// A query of the dashboard and where it is (for messages).
#[derive(Debug)]
struct Query {
    place: String,
    metrics: BTreeSet<String>,
}

/// Every query of a dashboard: each panel's targets (rows' nested panels included), the
/// annotation queries and the template variables.
fn dashboard_queries(d: &Value) -> Vec<Query> {
    fn panels(list: &Value, out: &mut Vec<Query>) {
        for p in list.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("(untitled)");
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push(Query {
                        place: format!("panel {title:?} target {}", t["refId"]),
                        metrics: metric_names(e),
                    });
                }
            }
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&d["panels"], &mut out);
    for a in d["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(e) = a["expr"].as_str() {
            out.push(Query {
                place: format!("annotation {:?}", a["name"].as_str().unwrap_or("")),
                metrics: metric_names(e),
            });
        }
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"].as_str().or_else(|| v["query"].as_str());
        if let Some(q) = q {
            out.push(Query {
                place: format!("variable {:?}", v["name"].as_str().unwrap_or("")),
                metrics: grafana_query_metrics(q),
            });
        }
    }
    out
}

/// One line per query naming a metric not in `known`; empty when all exist.
fn unknown_metrics(queries: &[Query], known: &BTreeSet<String>) -> Vec<String> {
    queries
        .iter()
        .flat_map(|q| {
            q.metrics
                .iter()
                .filter(|m| !known.contains(*m))
                .map(move |m| format!("{}: {m} is not exported", q.place))
        })
        .collect()
}

fn dashboard() -> Value {
    let path = repo("config/grafana-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("read the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Labelled by source (a worker's number, a sensor's name): no series, so no family, until
/// capture workers or a collector merge partial windows, which this replay does not.
const MERGE_ONLY: [&str; 1] = ["netanom_partials_total"];

#[test]
fn every_dashboard_query_names_exported_metrics() {
    let d = dashboard();
    let queries = dashboard_queries(&d);
    // Every panel has at least one query, and every query names a metric.
    let panels = d["panels"].as_array().expect("panels");
    assert!(panels.len() >= 15, "{} panels", panels.len());
    for p in panels {
        let title = p["title"].as_str().expect("panel title");
        assert!(
            queries
                .iter()
                .any(|q| q.place.starts_with(&format!("panel {title:?} "))),
            "panel {title:?} has no query"
        );
    }
    for q in &queries {
        assert!(!q.metrics.is_empty(), "{} names no metric", q.place);
    }
    // Series that exist only while capture workers or a collector merge partial windows,
    // which this replay does not: their families are checked against the registry's names in
    // the_metrics_doc_lists_exactly_the_exported_families' list instead.
    let mut known = exported().samples.clone();
    known.extend(MERGE_ONLY.iter().map(|m| m.to_string()));
    let bad = unknown_metrics(&queries, &known);
    assert!(
        bad.is_empty(),
        "the dashboard queries metrics the daemon does not export:\n{}\nexported: {:?}",
        bad.join("\n"),
        exported().samples
    );
    // The panels operators rely on are there.
    let used: BTreeSet<&String> = queries.iter().flat_map(|q| &q.metrics).collect();
    for m in [
        "netanom_anomaly_score",
        "netanom_threshold",
        "netanom_incident_active",
        "netanom_packets_total",
        "netanom_pcap_kernel_drops_total",
        "netanom_scoring_seconds_bucket",
        "netanom_window_score_bucket",
        "netanom_features_outside_training_range",
        "netanom_model_loaded",
        "netanom_build_info",
        "netanom_incidents_suppressed_total",
        "netanom_feedback_rules",
        "netanom_threshold_peak_runs_held",
        "netanom_capture_packets_total",
        "netanom_windows_incomplete_total",
    ] {
        assert!(used.contains(&m.to_string()), "no dashboard query uses {m}");
    }
}

// ---------------------------------------------------------------------------------------------
// The alert rules' expressions
// ---------------------------------------------------------------------------------------------

/// (alert name, expression) of every rule in a Prometheus rules file, read line by line:
/// `expr:` on one line, or a block scalar (`expr: |`) of the lines indented deeper.
fn rule_exprs(yaml: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    let mut alert = String::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        let t = l.trim_start();
        if let Some(name) = t.strip_prefix("- alert:") {
            alert = name.trim().to_string();
        } else if let Some(rest) = t.strip_prefix("expr:") {
            let rest = rest.trim();
            let indent = l.len() - t.len();
            let expr = if rest.starts_with('|') || rest.starts_with('>') {
                let mut body = Vec::new();
                while i + 1 < lines.len() {
                    let n = lines[i + 1];
                    let depth = n.len() - n.trim_start().len();
                    if !n.trim().is_empty() && depth <= indent {
                        break;
                    }
                    body.push(n.trim());
                    i += 1;
                }
                body.join(" ")
            } else {
                rest.trim_matches(|c| c == '"' || c == '\'').to_string()
            };
            assert!(!alert.is_empty(), "expr before any alert: {l}");
            out.push((alert.clone(), expr));
        }
        i += 1;
    }
    out
}

#[test]
fn every_alert_rule_names_exported_metrics() {
    let text =
        std::fs::read_to_string(repo("config/prometheus-rules.yml")).expect("read the rules");
    let rules = rule_exprs(&text);
    let alerts = text.matches("- alert:").count();
    assert_eq!(rules.len(), alerts, "one expression per alert: {rules:?}");
    assert!(alerts >= 15, "{alerts} alerts");
    // `up` is made by Prometheus for each target, not exported by the daemon.
    let mut known = exported().samples.clone();
    known.insert("up".into());
    let queries: Vec<Query> = rules
        .iter()
        .map(|(name, expr)| Query {
            place: format!("alert {name}"),
            metrics: metric_names(expr),
        })
        .collect();
    for q in &queries {
        assert!(!q.metrics.is_empty(), "{} names no metric", q.place);
    }
    let bad = unknown_metrics(&queries, &known);
    assert!(
        bad.is_empty(),
        "alert rules on metrics the daemon does not export (they could never fire):\n{}",
        bad.join("\n")
    );
    let drift = queries
        .iter()
        .find(|q| q.place == "alert NetanomTrafficDrift")
        .expect("a drift alert");
    assert_eq!(
        drift.metrics,
        BTreeSet::from(["netanom_features_outside_training_range".to_string()])
    );
}

// ---------------------------------------------------------------------------------------------
// docs/metrics.md
// ---------------------------------------------------------------------------------------------

#[test]
fn the_metrics_doc_lists_exactly_the_exported_families() {
    let text = std::fs::read_to_string(repo("docs/metrics.md")).expect("read docs/metrics.md");
    let mut documented = BTreeMap::new();
    for l in text.lines() {
        let Some(rest) = l.strip_prefix("| `netanom_") else {
            continue;
        };
        let name = format!("netanom_{}", rest.split('`').next().unwrap_or(""));
        let kind = l.split('|').nth(2).unwrap_or("").trim().to_string();
        documented.insert(name, kind);
    }
    let families = &exported().families;
    let doc_names: BTreeSet<&String> = documented
        .keys()
        .filter(|k| !MERGE_ONLY.contains(&k.as_str()))
        .collect();
    let exported_names: BTreeSet<&String> = families.keys().collect();
    assert_eq!(
        doc_names, exported_names,
        "docs/metrics.md's table and /metrics disagree"
    );
    for (name, ty) in families {
        assert!(
            documented[name].starts_with(ty.as_str()),
            "{name}: documented as {:?}, exported as {ty}",
            documented[name]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The checker itself
// ---------------------------------------------------------------------------------------------

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_lexer_finds_metric_names_and_only_them() {
    for (expr, want) in [
        ("netanom_anomaly_score", &["netanom_anomaly_score"][..]),
        (
            r#"netanom_anomaly_score{instance=~"$instance", job="netanom"}"#,
            &["netanom_anomaly_score"],
        ),
        (
            r#"sum by (instance, kind) (rate(netanom_decode_errors_total{instance=~"$instance"}[$__rate_interval])) / ignoring(kind) group_left sum by (instance) (rate(netanom_packets_total[5m]))"#,
            &["netanom_decode_errors_total", "netanom_packets_total"],
        ),
        (
            "histogram_quantile(0.99, sum by (instance, le) (rate(netanom_scoring_seconds_bucket[10m]))) > 0.5",
            &["netanom_scoring_seconds_bucket"],
        ),
        (
            "time() - max(netanom_last_window_end_timestamp_seconds) > 300",
            &["netanom_last_window_end_timestamp_seconds"],
        ),
        (
            "quantile_over_time(0.5, x_total[6h:1m]) >= 1e3 and on() count(y) offset 5m",
            &["x_total", "y"],
        ),
        ("sum(rate(a[1m])) by (instance) or vector(0)", &["a"]),
        ("absent(up{job=\"netanom\"})", &["up"]),
        (r#"label_replace(b, "dst", "$1", "src", "(.*)")"#, &["b"]),
        ("netanom_typo_totl + 1", &["netanom_typo_totl"]),
    ] {
        assert_eq!(metric_names(expr), set(want), "{expr}");
    }
    assert_eq!(
        grafana_query_metrics("label_values(netanom_build_info, instance)"),
        set(&["netanom_build_info"])
    );
    assert_eq!(grafana_query_metrics("label_values(instance)"), set(&[]));
}

#[test]
fn a_panel_on_a_metric_that_does_not_exist_is_reported() {
    let known = set(&["netanom_anomaly_score", "netanom_threshold"]);
    let d: Value = serde_json::json!({
        "panels": [
            {"title": "ok", "targets": [{"refId": "A", "expr": "netanom_anomaly_score"}]},
            {"title": "row", "panels": [
                {"title": "nested", "targets": [
                    {"refId": "B", "expr": "rate(netanom_anomaly_scores_total[5m]) > netanom_threshold"}
                ]}
            ]}
        ],
        "annotations": {"list": [{"name": "inc", "expr": "changes(netanom_incidents_total[1m])"}]},
        "templating": {"list": [
            {"name": "instance", "type": "query", "query": {"query": "label_values(netanom_build_info, instance)"}}
        ]}
    });
    let bad = unknown_metrics(&dashboard_queries(&d), &known);
    assert_eq!(
        bad,
        vec![
            "panel \"nested\" target \"B\": netanom_anomaly_scores_total is not exported",
            "annotation \"inc\": netanom_incidents_total is not exported",
            "variable \"instance\": netanom_build_info is not exported",
        ]
    );
    // The real dashboard with one metric misspelt fails the same way.
    let text = std::fs::read_to_string(repo("config/grafana-dashboard.json")).unwrap();
    let broken: Value =
        serde_json::from_str(&text.replace("netanom_threshold{", "netanom_treshold{")).unwrap();
    let mut all = set(&[]);
    for q in dashboard_queries(&dashboard()) {
        all.extend(q.metrics);
    }
    let bad = unknown_metrics(&dashboard_queries(&broken), &all);
    assert_eq!(
        bad,
        vec!["panel \"Anomaly score vs threshold\" target \"B\": netanom_treshold is not exported"]
    );
}

#[test]
fn rule_expressions_are_read_whole() {
    let yaml = "groups:\n  - name: g\n    rules:\n      - alert: One\n        expr: a > 1\n        for: 5m\n      - alert: Two\n        expr: |\n          rate(b[5m])\n            / rate(c[5m])\n        labels:\n          severity: info\n";
    assert_eq!(
        rule_exprs(yaml),
        vec![
            ("One".to_string(), "a > 1".to_string()),
            ("Two".to_string(), "rate(b[5m]) / rate(c[5m])".to_string()),
        ]
    );
}
