//! The report's data files (metrics.json, roc.csv) and the human summary table.
//!
//! metrics.json (P values are object keys, as strings):
//!
//! ```text
//! {
//!   "format": "netanom-eval/1",
//!   "alert_rule": "score > threshold",
//!   "threshold": 0.5,
//!   "p_values": [1, 10, 20],
//!   "windows": {"total": 8, "scored": 6, "unscored": 2, "nan_score": 0},
//!   "windows_by_p": {"1": {"positive": 3, "negative": 3}, ...},
//!   "auc_by_p": {"1": 0.7777777777777778, "10": null, ...},
//!   "auc_undefined_reason": {"10": "no positive window (...)"},      // only undefined P
//!   "at_threshold": {"1": {"tp":2,"fp":1,"tn":2,"fn":1,"tpr":..,"fpr":..,
//!                          "precision":..,"recall":..,"f1":..}, ...},
//!   "best_f1": {"1": {"threshold":0.2,"min_alerted_score":0.3,"f1":..,"precision":..,
//!                     "recall":..,"tp":3,"fp":1} | null, ...},
//!   "attack_names": ["synflood", ...],
//!   "per_attack": {"synflood": {"attack_packets": 97, "p": 1, "anomalous_windows": 3,
//!                               "detected_windows": 2,
//!                               "by_p": {"1": {"anomalous_windows":3,"detected_windows":2}, ...}}}
//! }
//! ```
//!
//! `per_attack.NAME.anomalous_windows/detected_windows` are at the smallest P (`p`); `by_p`
//! has every P. No NaN or infinity is ever written: a value that is not a finite number is
//! `null` (with a reason for AUC).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::metrics::Evaluation;
use super::EvalError;

/// The metrics as JSON (see the module doc for the layout).
pub fn metrics_json(e: &Evaluation) -> Value {
    let key = |p: u64| p.to_string();
    let mut windows_by_p = Map::new();
    let mut auc_by_p = Map::new();
    let mut auc_reason = Map::new();
    let mut at_threshold = Map::new();
    let mut best_f1 = Map::new();
    for pe in &e.by_p {
        windows_by_p.insert(
            key(pe.p),
            json!({"positive": pe.positive_windows, "negative": pe.negative_windows}),
        );
        auc_by_p.insert(key(pe.p), num(pe.auc));
        if let Some(r) = &pe.auc_undefined_reason {
            auc_reason.insert(key(pe.p), Value::String(r.clone()));
        }
        let c = &pe.at_threshold;
        at_threshold.insert(
            key(pe.p),
            json!({
                "tp": c.tp, "fp": c.fp, "tn": c.tn, "fn": c.fn_,
                "tpr": num(Some(c.tpr)), "fpr": num(Some(c.fpr)),
                "precision": num(Some(c.precision)), "recall": num(Some(c.recall)),
                "f1": num(Some(c.f1)),
            }),
        );
        best_f1.insert(
            key(pe.p),
            match &pe.best_f1 {
                None => Value::Null,
                Some(b) => json!({
                    "threshold": num(Some(b.threshold)),
                    "min_alerted_score": num(Some(b.min_alerted_score)),
                    "f1": num(Some(b.f1)),
                    "precision": num(Some(b.precision)),
                    "recall": num(Some(b.recall)),
                    "tp": b.tp, "fp": b.fp,
                }),
            },
        );
    }
    let mut per_attack = Map::new();
    for (l, name) in e.label_names.iter().enumerate() {
        let mut by_p = Map::new();
        for pe in &e.by_p {
            if let Some(d) = pe.per_attack.get(l) {
                by_p.insert(
                    key(pe.p),
                    json!({"anomalous_windows": d.anomalous_windows, "detected_windows": d.detected_windows}),
                );
            }
        }
        let first = e
            .by_p
            .first()
            .and_then(|pe| pe.per_attack.get(l).map(|d| (pe.p, d)));
        let mut entry = Map::new();
        entry.insert(
            "attack_packets".into(),
            json!(e.attack_packets.get(l).copied().unwrap_or(0)),
        );
        if let Some((p, d)) = first {
            entry.insert("p".into(), json!(p));
            entry.insert("anomalous_windows".into(), json!(d.anomalous_windows));
            entry.insert("detected_windows".into(), json!(d.detected_windows));
        }
        entry.insert("by_p".into(), Value::Object(by_p));
        per_attack.insert(name.clone(), Value::Object(entry));
    }
    json!({
        "format": "netanom-eval/1",
        "alert_rule": "score > threshold",
        "threshold": num(Some(e.threshold)),
        "p_values": e.by_p.iter().map(|pe| pe.p).collect::<Vec<_>>(),
        "windows": {
            "total": e.windows_total,
            "scored": e.windows_scored,
            "unscored": e.windows_unscored,
            "nan_score": e.windows_nan_score,
        },
        "windows_by_p": windows_by_p,
        "auc_by_p": auc_by_p,
        "auc_undefined_reason": auc_reason,
        "at_threshold": at_threshold,
        "best_f1": best_f1,
        "attack_names": e.label_names,
        "per_attack": per_attack,
    })
}

/// A finite number, or null.
fn num(x: Option<f64>) -> Value {
    match x {
        Some(v) if v.is_finite() => json!(v),
        _ => Value::Null,
    }
}

/// Writes `dir/metrics.json` (pretty-printed) and returns its path.
pub fn write_metrics_json(
    dir: &Path,
    e: &Evaluation,
    extras: &super::Extras,
) -> Result<PathBuf, EvalError> {
    let path = dir.join("metrics.json");
    let mut value = metrics_json(e);
    if let Value::Object(map) = &mut value {
        if let Some(i) = &extras.incidents {
            map.insert(
                "incidents".into(),
                serde_json::to_value(i).unwrap_or(Value::Null),
            );
        }
        if !extras.scales.is_empty() {
            let scales: Map<String, Value> = extras
                .scales
                .iter()
                .map(|(omega, ev)| {
                    let m = metrics_json(ev);
                    (
                        omega.to_string(),
                        json!({"auc_by_p": m["auc_by_p"], "at_threshold": m["at_threshold"], "threshold": m["threshold"], "windows": m["windows"]}),
                    )
                })
                .collect();
            map.insert("scales".into(), Value::Object(scales));
        }
    }
    let mut text = serde_json::to_string_pretty(&value).map_err(|source| EvalError::Json {
        path: path.clone(),
        source,
    })?;
    text.push('\n');
    std::fs::write(&path, text).map_err(|source| EvalError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// The incident metrics as lines under the window table.
pub fn incident_table(i: &super::IncidentEvaluation) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\nincidents: {} ({} overlap a labelled attack, {} false alarms); attacks detected: {} of {}; incidents per detected attack: {}; attacks per true incident: {}; mean time to first alert: {}",
        i.incidents,
        i.true_incidents,
        i.false_alarms,
        i.attacks_detected,
        i.attacks,
        i.incidents_per_attack.map_or("-".into(), |v| format!("{v:.2}")),
        i.attacks_per_incident.map_or("-".into(), |v| format!("{v:.2}")),
        i.mean_time_to_first_alert_s.map_or("-".into(), |v| format!("{v:.1} s")),
    );
    let _ = writeln!(
        t,
        "{:<24} {:>9} {:>16} {:>9}",
        "attack", "incidents", "first alert (s)", "flagged"
    );
    for a in &i.per_attack {
        let _ = writeln!(
            t,
            "{:<24} {:>9} {:>16} {:>8.0}%",
            a.name,
            a.incidents,
            a.time_to_first_alert_s
                .map_or("-".into(), |v| format!("{v:.1}")),
            a.flagged_fraction * 100.0
        );
    }
    t
}

/// Writes `dir/roc.csv`: `p,min_alerted_score,fpr,tpr,tp,fp`, one row per ROC point (the
/// point alerts on windows with `score >= min_alerted_score`; the first point, alerting on
/// nothing, has `inf`). A P whose AUC is undefined has no rows.
pub fn write_roc_csv(dir: &Path, e: &Evaluation) -> Result<PathBuf, EvalError> {
    let path = dir.join("roc.csv");
    let mut text = String::from("p,min_alerted_score,fpr,tpr,tp,fp\n");
    for pe in &e.by_p {
        for r in &pe.roc {
            let _ = writeln!(
                text,
                "{},{},{},{},{},{}",
                pe.p, r.min_alerted_score, r.fpr, r.tpr, r.tp, r.fp
            );
        }
    }
    std::fs::write(&path, text).map_err(|source| EvalError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// A short table for the terminal: counts, then per P the AUC and the metrics at the
/// threshold, the best F1, then per attack the detected / anomalous windows per P.
pub fn summary_table(e: &Evaluation) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "windows: {} total, {} scored, {} without score{}; threshold {} (alert when score > threshold)",
        e.windows_total,
        e.windows_scored,
        e.windows_unscored,
        if e.windows_nan_score > 0 {
            format!(", {} with NaN score (left out)", e.windows_nan_score)
        } else {
            String::new()
        },
        fmt_g(e.threshold)
    );
    let _ = writeln!(
        s,
        "{:>5} {:>7} {:>7} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}  best F1 (threshold)",
        "P", "pos", "neg", "AUC", "TP", "FP", "TPR", "FPR", "prec", "recall", "F1"
    );
    for pe in &e.by_p {
        let c = &pe.at_threshold;
        let auc = pe.auc.map_or("n/a".to_string(), |a| format!("{a:.4}"));
        let best = pe.best_f1.map_or("n/a".to_string(), |b| {
            format!("{:.4} ({})", b.f1, fmt_g(b.threshold))
        });
        let _ = writeln!(
            s,
            "{:>5} {:>7} {:>7} {:>7} {:>6} {:>6} {:>6.4} {:>6.4} {:>6.4} {:>6.4} {:>6.4}  {}",
            pe.p,
            pe.positive_windows,
            pe.negative_windows,
            auc,
            c.tp,
            c.fp,
            c.tpr,
            c.fpr,
            c.precision,
            c.recall,
            c.f1,
            best
        );
    }
    for pe in &e.by_p {
        if let Some(r) = &pe.auc_undefined_reason {
            let _ = writeln!(s, "  AUC undefined for P = {}: {}", pe.p, r);
        }
    }
    if !e.label_names.is_empty() {
        let w = e
            .label_names
            .iter()
            .map(|n| n.chars().count())
            .max()
            .unwrap_or(0)
            .max(6);
        let _ = write!(
            s,
            "per attack, detected/anomalous windows:\n  {:<w$} {:>10}",
            "attack", "packets"
        );
        for pe in &e.by_p {
            let _ = write!(s, " {:>11}", format!("P={}", pe.p));
        }
        s.push('\n');
        for (l, name) in e.label_names.iter().enumerate() {
            let _ = write!(
                s,
                "  {:<w$} {:>10}",
                name,
                e.attack_packets.get(l).copied().unwrap_or(0)
            );
            for pe in &e.by_p {
                let cell = pe.per_attack.get(l).map_or(String::new(), |d| {
                    format!("{}/{}", d.detected_windows, d.anomalous_windows)
                });
                let _ = write!(s, " {cell:>11}");
            }
            s.push('\n');
        }
    }
    s
}

/// A compact number: plain for ordinary magnitudes, scientific otherwise.
pub(crate) fn fmt_g(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    if a == 0.0 || (1e-3..1e6).contains(&a) {
        let t = format!("{x:.6}");
        let t = t.trim_end_matches('0').trim_end_matches('.');
        if t == "-0" {
            "0".to_string()
        } else {
            t.to_string()
        }
    } else {
        // 4 decimals of mantissa at most, trailing zeros dropped: 1.5e-7, 1e-4, 2.3457e9.
        let t = format!("{x:.4e}");
        match t.split_once('e') {
            Some((m, e)) if m.contains('.') => {
                format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'))
            }
            _ => t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::metrics::{evaluate, EvalConfig, WindowEval};
    use super::*;

    fn small() -> Evaluation {
        let w = |score: Option<f64>, a: u64, b: u64| WindowEval {
            alerted: None,
            start_ns: 0,
            end_ns: 1,
            score,
            attack_packets: a + b,
            per_label: vec![a, b],
        };
        let ws = vec![
            w(None, 0, 0),
            w(Some(0.9), 30, 0),
            w(Some(0.8), 0, 0),
            w(Some(0.7), 0, 5),
            w(Some(0.3), 12, 0),
            w(Some(0.2), 0, 0),
            w(Some(0.1), 0, 0),
        ];
        let names = vec!["synflood".to_string(), "scan".to_string()];
        evaluate(
            &ws,
            &names,
            &EvalConfig {
                threshold: 0.5,
                ps: vec![1, 10, 50],
            },
        )
        .unwrap()
    }

    #[test]
    fn json_has_required_keys_and_no_nan() {
        let e = small();
        let v = metrics_json(&e);
        let text = serde_json::to_string(&v).unwrap();
        assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
        assert_eq!(v["threshold"], 0.5);
        assert_eq!(v["alert_rule"], "score > threshold");
        assert_eq!(v["windows"]["total"], 7);
        assert_eq!(v["windows"]["scored"], 6);
        assert_eq!(v["windows"]["unscored"], 1);
        assert_eq!(v["auc_by_p"]["1"], 7.0 / 9.0);
        assert_eq!(v["auc_by_p"]["10"], 0.75);
        assert_eq!(v["auc_by_p"]["50"], Value::Null);
        assert!(v["auc_undefined_reason"]["50"]
            .as_str()
            .unwrap()
            .starts_with("no positive window"));
        assert!(v["auc_undefined_reason"].get("1").is_none());
        let t = &v["at_threshold"]["1"];
        for k in [
            "tpr",
            "fpr",
            "precision",
            "recall",
            "f1",
            "tp",
            "fp",
            "tn",
            "fn",
        ] {
            assert!(t.get(k).is_some(), "at_threshold missing {k}");
        }
        assert_eq!((t["tp"].as_u64(), t["fn"].as_u64()), (Some(2), Some(1)));
        assert_eq!(v["best_f1"]["1"]["f1"], 6.0 / 7.0);
        assert_eq!(v["best_f1"]["1"]["threshold"], 0.2);
        assert_eq!(v["best_f1"]["50"], Value::Null);
        let s = &v["per_attack"]["synflood"];
        assert_eq!(s["p"], 1);
        assert_eq!(s["attack_packets"], 42);
        assert_eq!(
            (
                s["anomalous_windows"].as_u64(),
                s["detected_windows"].as_u64()
            ),
            (Some(2), Some(1))
        );
        assert_eq!(s["by_p"]["10"]["anomalous_windows"], 2);
        assert_eq!(
            v["per_attack"]["scan"]["by_p"]["10"]["anomalous_windows"],
            0
        );
        assert_eq!(v["p_values"], json!([1, 10, 50]));
    }

    #[test]
    fn files_and_summary() {
        let e = small();
        let dir = tempfile::tempdir().unwrap();
        let p = write_metrics_json(dir.path(), &e, &crate::eval::Extras::default()).unwrap();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(v, metrics_json(&e));
        let p = write_roc_csv(dir.path(), &e).unwrap();
        let csv = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "p,min_alerted_score,fpr,tpr,tp,fp");
        assert_eq!(lines[1], "1,inf,0,0,0,0");
        assert_eq!(lines[2], "1,0.9,0,0.3333333333333333,1,0");
        assert_eq!(lines.len(), 1 + 7 + 7);
        let s = summary_table(&e);
        assert!(
            s.contains("threshold 0.5 (alert when score > threshold)"),
            "{s}"
        );
        assert!(s.contains("0.7778"), "{s}");
        assert!(
            s.contains("AUC undefined for P = 50: no positive window"),
            "{s}"
        );
        assert!(s.contains("synflood"), "{s}");
        // synflood at P=1: 1 of 2 windows detected.
        let row = s
            .lines()
            .find(|l| l.trim_start().starts_with("synflood"))
            .unwrap();
        assert!(row.contains("1/2"), "{row}");
    }

    #[test]
    fn fmt_g_forms() {
        assert_eq!(fmt_g(0.5), "0.5");
        assert_eq!(fmt_g(0.0), "0");
        assert_eq!(fmt_g(12.0), "12");
        assert_eq!(fmt_g(1.5e-7), "1.5e-7");
        assert_eq!(fmt_g(1e-4), "1e-4");
        assert_eq!(fmt_g(-2.345678e9), "-2.3457e9");
        assert_eq!(fmt_g(0.00123456), "0.001235");
        assert_eq!(fmt_g(f64::INFINITY), "inf");
    }
}
