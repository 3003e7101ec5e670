//! `netanom evaluate`: score captures, label windows from LABELS.csv, write the report.

use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::cli::EvaluateArgs;
use netanom::detect::score::ScoreRing;
use netanom::eval::{evaluate_and_report, EvalConfig, LabelCounter, Labels, WindowEval};
use netanom::extract::{log_report, run_offline};
use netanom::model::Bundle;
use netanom::window::WindowConfig;

/// Runs the paper's evaluation protocol and prints the summary table.
pub fn run(args: EvaluateArgs) -> anyhow::Result<ExitCode> {
    let bundle = Bundle::load(&args.model, None)?;
    let labels = Labels::from_path(&args.labels)?;
    if args.min_attack_packets.is_empty() || args.min_attack_packets.contains(&0) {
        bail!("--min-attack-packets: expected positive packet counts, e.g. 1,10,20");
    }
    let threshold = args.threshold.unwrap_or_else(|| bundle.threshold());
    let mut config = WindowConfig::new(bundle.omega_us());
    config.max_gap_windows = args.max_gap_windows;
    let model_id = bundle.model_id().to_string();
    let mut ring = ScoreRing::from_bundle(bundle);
    // Both callbacks of run_offline touch the counter; they never run at the same time.
    let counter = std::cell::RefCell::new(LabelCounter::new(&labels));
    let mut windows: Vec<WindowEval> = Vec::new();
    let mut failure = None;
    let report = run_offline(
        &args.pcaps,
        config,
        |p| {
            counter.borrow_mut().observe_packet(&labels, p);
        },
        |w| {
            if w.after_time_jump {
                ring.reset();
            }
            let score = match ring.push(&w.features) {
                Ok(s) => s,
                Err(e) => {
                    failure.get_or_insert(e);
                    None
                }
            };
            let (attack_packets, per_label) = counter.borrow_mut().take();
            windows.push(WindowEval {
                start_ns: w.start_ns,
                end_ns: w.end_ns,
                score,
                attack_packets,
                per_label,
            });
        },
    )?;
    if let Some(e) = failure {
        return Err(e).context("scoring");
    }
    let code = log_report(&report);
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
