//! `netanom evaluate`: score captures, label windows from LABELS.csv, write the report.

use std::process::ExitCode;

use anyhow::{bail, Context};

use netanom::decode::PacketSummary;
use netanom::detect::score::ScoringStage;
use netanom::eval::{evaluate_and_report, EvalConfig, LabelCounter, Labels, WindowEval};
use netanom::model::Bundle;
use netanom::pipeline::{log_summary, pump, Pace, PacketSource, SinkError, WindowSink, Windower};
use netanom::timestamp::format_ts;
use netanom::window::{Window, WindowConfig};
use netanom_cli::EvaluateArgs;

/// Scores each window and counts the labelled attack packets in it.
struct Evaluation<'a> {
    stage: ScoringStage,
    labels: &'a Labels,
    counter: LabelCounter,
    windows: Vec<WindowEval>,
}

impl WindowSink for Evaluation<'_> {
    fn window(&mut self, w: Window) -> Result<(), SinkError> {
        let (start_ns, end_ns) = (w.start_ns, w.end_ns);
        let scored = self
            .stage
            .push(w)
            .with_context(|| format!("scoring the window at {}", format_ts(start_ns)))?;
        let (attack_packets, per_label) = self.counter.take();
        self.windows.push(WindowEval {
            start_ns,
            end_ns,
            score: scored.score,
            attack_packets,
            per_label,
        });
        Ok(())
    }

    /// After the windows the packet closed: it counts in the window it belongs to.
    fn packet(&mut self, p: &PacketSummary) {
        self.counter.observe_packet(self.labels, p);
    }
}

/// Runs the paper's evaluation protocol and prints the summary table.
pub fn run(args: EvaluateArgs) -> anyhow::Result<ExitCode> {
    let bundle = Bundle::load(&args.model, None)?;
    let labels = Labels::from_path(&args.labels)?;
    if args.min_attack_packets.is_empty() || args.min_attack_packets.contains(&0) {
        bail!("--min-attack-packets: expected positive packet counts, e.g. 1,10,20");
    }
    let threshold = args.threshold.unwrap_or_else(|| bundle.threshold());
    let mut config = WindowConfig::new(bundle.omega());
    config.max_gap_windows = args.max_gap_windows;
    let model_id = bundle.model_id().to_string();
    let source = PacketSource::open_files(&args.pcaps, Pace::Unpaced)?;
    let sink = Evaluation {
        stage: ScoringStage::from_bundle(bundle),
        labels: &labels,
        counter: LabelCounter::new(&labels),
        windows: Vec::new(),
    };
    let mut pipeline = Windower::new(config, sink);
    let report = pump(source, &mut pipeline, &mut ())?;
    let code = log_summary(&report, pipeline.stats());
    let windows = pipeline.into_sink().windows;
    let cfg = EvalConfig {
        threshold,
        ps: args.min_attack_packets.clone(),
    };
    let result = evaluate_and_report(&args.report, &windows, &labels, &cfg)?;
    println!("model {model_id}, threshold {threshold}");
    println!("{}", result.summary);
    println!("report: {}", args.report.display());
    let f = &result.files;
    for p in [
        &f.metrics_json,
        &f.roc_csv,
        &f.roc_png,
        &f.roc_svg,
        &f.score_png,
        &f.score_svg,
    ] {
        println!("  {}", p.display());
    }
    Ok(code)
}
