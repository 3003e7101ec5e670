//! Evaluation: ground-truth labels, window-level metrics (ROC/AUC, precision/recall/F1 per
//! P, as in the paper), and the report (metrics.json, roc.csv, ROC and score plots).
//!
//! This layer knows nothing of capture, threads or the model: the caller gives it one
//! [`WindowEval`] per window (score, attack packet counts from a [`LabelCounter`]) and
//! gets metrics and files back. See docs/evaluation.md for the formats and conventions.
//!
//! ```no_run
//! # use netanom::eval::*;
//! # fn f(windows: Vec<WindowEval>) -> Result<(), Box<dyn std::error::Error>> {
//! let labels = Labels::from_path("LABELS.csv")?;
//! // ... per packet: counter.observe(&labels, ts_ns, src, dst); per window: counter.take() ...
//! let report = evaluate_and_report("out".as_ref(), &windows, &labels, &EvalConfig::new(0.5), &Extras::default())?;
//! println!("{}", report.summary);
//! # Ok(()) }
//! ```

pub mod incidents;
pub mod labels;
pub mod metrics;
pub mod plot;
pub mod report;

use std::path::{Path, PathBuf};

pub use incidents::{evaluate_incidents, AttackIncidents, IncidentEvaluation, IncidentRecord};
pub use labels::{AttackSpan, LabelCounter, Labels, LabelsError, LABELS_HEADER};
pub use metrics::{
    evaluate, AttackDetection, BestF1, Confusion, EvalConfig, Evaluation, MetricsError, PEval,
    RocPoint, WindowEval, DEFAULT_PS,
};

/// An evaluation or report failure.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot write JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: cannot draw the plot: {message}", path.display())]
    Plot { path: PathBuf, message: String },
}

/// The files a report wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportFiles {
    pub metrics_json: PathBuf,
    pub roc_csv: PathBuf,
    pub roc_png: PathBuf,
    pub roc_svg: PathBuf,
    pub score_png: PathBuf,
    pub score_svg: PathBuf,
}

impl ReportFiles {
    /// All paths, in a fixed order.
    pub fn all(&self) -> [&Path; 6] {
        [
            &self.metrics_json,
            &self.roc_csv,
            &self.roc_png,
            &self.roc_svg,
            &self.score_png,
            &self.score_svg,
        ]
    }
}

/// An evaluation and the report written for it.
#[derive(Clone, Debug)]
pub struct Report {
    pub evaluation: Evaluation,
    /// The human summary table (what the CLI prints).
    pub summary: String,
    pub files: ReportFiles,
}

/// What a report holds besides the paper's window metrics of the (shortest) scale.
#[derive(Clone, Debug, Default)]
pub struct Extras {
    /// Incident metrics (`incidents` in metrics.json; incidents marked on the score plot).
    pub incidents: Option<IncidentEvaluation>,
    /// Window metrics of the longer scales: (ω in seconds, evaluation) (`scales` in
    /// metrics.json).
    pub scales: Vec<(f64, Evaluation)>,
}

/// Evaluates `windows` against `labels` and writes the whole report into `dir` (created
/// when missing): metrics.json, roc.csv, roc.png, roc.svg, score.png, score.svg.
pub fn evaluate_and_report(
    dir: &Path,
    windows: &[WindowEval],
    labels: &Labels,
    cfg: &EvalConfig,
    extras: &Extras,
) -> Result<Report, EvalError> {
    let evaluation = evaluate(windows, labels.names(), cfg)?;
    std::fs::create_dir_all(dir).map_err(|source| EvalError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let metrics_json = report::write_metrics_json(dir, &evaluation, extras)?;
    let roc_csv = report::write_roc_csv(dir, &evaluation)?;
    let [roc_png, roc_svg] = plot::write_roc_plots(dir, &evaluation)?;
    let incident_spans: Vec<(f64, f64)> = extras
        .incidents
        .iter()
        .flat_map(|e| e.list.iter().map(|i| (i.start, i.end)))
        .collect();
    let [score_png, score_svg] =
        plot::write_score_plots(dir, windows, &evaluation, labels.spans(), &incident_spans)?;
    let mut summary = report::summary_table(&evaluation);
    if let Some(i) = &extras.incidents {
        summary.push_str(&report::incident_table(i));
    }
    Ok(Report {
        evaluation,
        summary,
        files: ReportFiles {
            metrics_json,
            roc_csv,
            roc_png,
            roc_svg,
            score_png,
            score_svg,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic run: 1 s windows, two attacks, scores that mostly separate them.
    pub(crate) fn synthetic() -> (Labels, Vec<WindowEval>) {
        let t0: i64 = 1_577_836_800;
        let labels = Labels::parse_str(
            "labels.csv",
            &format!(
                "{}\nsynflood,10.0.0.0/24,*,{},{}\nportscan,2001:db8::/32,*,{},{}\n",
                LABELS_HEADER.join(","),
                t0 + 100,
                t0 + 160,
                t0 + 300,
                t0 + 330
            ),
        )
        .unwrap();
        let s = 1_000_000_000i64;
        let mut windows = Vec::new();
        let mut x: u64 = 12345;
        for k in 0..600i64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let start = (t0 + k) * s;
            let mut c = LabelCounter::new(&labels);
            let n = (x % 40) as i64;
            for j in 0..n {
                let ts = start + j * (s / 40);
                let v4 = (0xffffu128 << 32) | u128::from(u32::from_be_bytes([10, 0, 0, 5]));
                let v6 = u128::from("2001:db8::7".parse::<std::net::Ipv6Addr>().unwrap());
                c.observe(&labels, ts, if j % 2 == 0 { v4 } else { v6 }, 1);
            }
            let (total, per_label) = c.take();
            let noise = ((x >> 20) % 1000) as f64 / 1000.0;
            let score = if k < 2 {
                None
            } else if k == 50 {
                Some(0.0)
            } else {
                Some(0.02 * (1.0 + noise) + (total as f64).powi(2) * 0.05 * noise)
            };
            windows.push(WindowEval {
                alerted: None,
                start_ns: start,
                end_ns: start + s,
                score,
                attack_packets: total,
                per_label,
            });
        }
        (labels, windows)
    }

    #[test]
    fn full_report_writes_all_files() {
        let (labels, windows) = synthetic();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("report");
        let r = evaluate_and_report(
            &out,
            &windows,
            &labels,
            &EvalConfig::new(1.0),
            &Extras::default(),
        )
        .unwrap();
        for p in r.files.all() {
            let len = std::fs::metadata(p).unwrap().len();
            assert!(len > 1000, "{} is only {len} bytes", p.display());
        }
        for png in [&r.files.roc_png, &r.files.score_png] {
            let bytes = std::fs::read(png).unwrap();
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", png.display());
        }
        for svg in [&r.files.roc_svg, &r.files.score_svg] {
            let text = std::fs::read_to_string(svg).unwrap();
            assert!(text.contains("<svg"), "{}", svg.display());
            assert!(text.contains("</svg>"));
            assert!(text.contains("<text"), "{} has no text", svg.display());
        }
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&r.files.metrics_json).unwrap()).unwrap();
        for key in [
            "auc_by_p",
            "at_threshold",
            "best_f1",
            "per_attack",
            "windows",
            "threshold",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert_eq!(json["windows"]["total"], 600);
        assert_eq!(json["windows"]["scored"], 598);
        assert!(json["auc_by_p"]["1"].as_f64().unwrap() > 0.5);
        assert!(
            json["per_attack"]["synflood"]["anomalous_windows"]
                .as_u64()
                .unwrap()
                > 0
        );
        assert!(r.summary.contains("AUC"));
        if let Ok(keep) = std::env::var("NETANOM_EVAL_KEEP") {
            // For looking at the plots by hand: NETANOM_EVAL_KEEP=/tmp/x cargo test ...
            let keep = Path::new(&keep);
            std::fs::create_dir_all(keep).unwrap();
            for p in r.files.all() {
                std::fs::copy(p, keep.join(p.file_name().unwrap())).unwrap();
            }
            println!("{}", r.summary);
        }
    }

    #[test]
    fn report_dir_that_cannot_be_made_is_an_error() {
        let (labels, windows) = synthetic();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let e = evaluate_and_report(
            &file.join("sub"),
            &windows,
            &labels,
            &EvalConfig::new(1.0),
            &Extras::default(),
        )
        .unwrap_err();
        assert!(matches!(e, EvalError::Io { .. }), "{e}");
        let e = evaluate_and_report(
            dir.path(),
            &windows,
            &labels,
            &EvalConfig::new(f64::NAN),
            &Extras::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("threshold is NaN"));
    }
}
