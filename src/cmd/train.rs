//! `netanom train`: fit the normaliser and the LSTM on normal traffic, write a model bundle.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::cli::TrainArgs;
use netanom::extract::{format_ts, log_report, run_offline};
use netanom::featurecsv::read_feature_csv;
use netanom::model::bundle::TrainingData;
use netanom::model::{train_segments, Bundle, EpochStats, ThresholdRule, TrainOptions};
use netanom::window::features::FeatureVector;
use netanom::window::WindowConfig;

/// Collects the training windows, trains, saves the bundle and prints a summary.
pub fn run(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let (windows, breaks, omega_us, start_ns, end_ns, files) = collect(&args)?;
    let opts = TrainOptions {
        hidden: args.hidden,
        layers: args.layers,
        epochs: args.epochs,
        learning_rate: args.learning_rate,
        batch_size: args.batch_size,
        seed: args.seed,
        validation_fraction: args.validation_fraction,
        threshold_rule: match args.threshold_rule.as_str() {
            "quantile" => ThresholdRule::QuantileTimesFactor {
                quantile: args.threshold_quantile,
                factor: args.threshold_factor,
            },
            "max" => ThresholdRule::MaxTimesFactor {
                factor: args.threshold_factor,
            },
            other => bail!("--threshold-rule {other:?}: expected quantile or max"),
        },
    };
    eprintln!(
        "training on {} windows of {} s ({} to {}), {} epochs, hidden {}, layers {}",
        windows.len(),
        omega_us as f64 / 1e6,
        format_ts(start_ns),
        format_ts(end_ns),
        opts.epochs,
        opts.hidden,
        opts.layers
    );
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(opts.epochs as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} epoch {pos}/{len} {msg} [{elapsed_precise}, eta {eta}]",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let trained = train_segments(&windows, &breaks, &opts, |s: &EpochStats| {
        let msg = format!(
            "train loss {:.6} validation loss {:.6}",
            s.train_loss, s.validation_loss
        );
        match &bar {
            Some(bar) => {
                bar.println(format!("epoch {}/{}: {msg}", s.epoch, s.epochs));
                bar.set_message(msg);
                bar.inc(1);
            }
            None => eprintln!("epoch {}/{}: {msg}", s.epoch, s.epochs),
        }
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let data = TrainingData {
        files,
        start_unix: start_ns as f64 / 1e9,
        end_unix: end_ns as f64 / 1e9,
    };
    let bundle = Bundle::from_trained(trained, omega_us, data)?;
    bundle.save(&args.out)?;
    // Reload: the id is the weights' hash, fixed at save time; this also proves the bundle loads.
    let saved = Bundle::load(&args.out, Some(omega_us)).with_context(|| {
        format!(
            "reloading the bundle just written to {}",
            args.out.display()
        )
    })?;
    let q = &saved.meta.validation_scores;
    println!("model bundle: {}", args.out.display());
    println!("model id:     {}", saved.model_id());
    println!(
        "threshold:    {} ({:?})",
        saved.threshold(),
        saved.meta.threshold.rule
    );
    println!(
        "validation scores over {} runs: p50 {:.6} p90 {:.6} p99 {:.6} p99.5 {:.6} max {:.6}",
        q.count, q.p50, q.p90, q.p99, q.p99_5, q.max
    );
    Ok(ExitCode::SUCCESS)
}

/// Training windows, the indices where a new run of consecutive windows starts, ω (µs),
/// time range (ns) and source names.
type Collected = (Vec<FeatureVector>, Vec<usize>, u64, i64, i64, Vec<String>);

/// The training windows, from captures or feature CSVs.
fn collect(args: &TrainArgs) -> anyhow::Result<Collected> {
    let mut windows = Vec::new();
    let mut breaks = Vec::new();
    let (mut start, mut end) = (i64::MAX, i64::MIN);
    if !args.pcaps.is_empty() {
        let Some(omega_us) = args.window else {
            bail!("--window is required with --pcap (the window length in seconds, e.g. 0.5)");
        };
        let mut config = WindowConfig::new(omega_us);
        config.max_gap_windows = args.max_gap_windows;
        let report = run_offline(
            &args.pcaps,
            config,
            |_| {},
            |w| {
                if w.after_time_jump {
                    breaks.push(windows.len());
                }
                start = start.min(w.start_ns);
                end = end.max(w.end_ns);
                windows.push(w.features);
            },
        )?;
        if log_report(&report) != ExitCode::SUCCESS {
            bail!("refusing to train on a capture that is cut off");
        }
        let files = args.pcaps.iter().map(|p| p.display().to_string()).collect();
        return Ok((windows, breaks, omega_us, start, end, files));
    }
    let mut omega_seen: Option<(i64, String)> = None;
    let mut last_end: Option<i64> = None;
    for path in &args.features {
        let rows = read_feature_csv(path)?;
        for row in rows {
            // Runs of three must be consecutive windows: a gap or a new file starts a new run.
            if last_end.is_some_and(|e| e != row.start_ns) {
                breaks.push(windows.len());
            }
            last_end = Some(row.end_ns);
            let len = row.end_ns - row.start_ns;
            match &omega_seen {
                None => omega_seen = Some((len, path.display().to_string())),
                Some((o, first)) if *o != len => bail!(
                    "{}: windows of {} s, but {first} has windows of {} s: one model needs one window length",
                    path.display(),
                    len as f64 / 1e9,
                    *o as f64 / 1e9
                ),
                Some(_) => {}
            }
            start = start.min(row.start_ns);
            end = end.max(row.end_ns);
            windows.push(row.features);
        }
    }
    let Some((omega_ns, _)) = omega_seen else {
        bail!("the feature files hold no windows");
    };
    let omega_us = u64::try_from(omega_ns / 1000).unwrap_or(0);
    if let Some(w) = args.window {
        if w != omega_us {
            bail!(
                "--window {} s does not match the feature files' windows of {} s",
                w as f64 / 1e6,
                omega_us as f64 / 1e6
            );
        }
    }
    let files = args
        .features
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    Ok((windows, breaks, omega_us, start, end, files))
}
