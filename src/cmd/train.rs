//! `netanom train`: fit the normaliser and the LSTM on normal traffic, write a model bundle.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{bail, Context};

use std::path::Path;

use netanom::config::ToolPaths;
use netanom::csv::read_feature_csv;
use netanom::feedback::incidents::training_spans;
use netanom::history::{self, TimeRange, TrainingSpans};
use netanom::model::bundle::TrainingData;
use netanom::model::spot::SpotOptions;
use netanom::model::{
    train_segments, Bundle, EpochStats, ModelSet, Scaling, ThresholdRule, TrainOptions,
};
use netanom::pipeline::{
    log_summary, pump, MultiWindower, Pace, PacketSource, ScaleSink, SinkError,
};
use netanom::timestamp::format_ts;
use netanom::window::features::FeatureVector;
use netanom::window::{Omega, Window, WindowConfig};
use netanom_cli::{ScalingArg, ThresholdRuleArg, TrainArgs};

/// Collects the training windows, trains one model per window length, saves the set and
/// prints a summary.
pub fn run(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let collected = collect(&args)?;
    let opts = TrainOptions {
        hidden: args.hidden,
        layers: args.layers,
        epochs: args.epochs,
        learning_rate: args.learning_rate,
        batch_size: args.batch_size,
        seed: args.seed,
        validation_fraction: args.validation_fraction,
        threshold_rule: match args.threshold_rule {
            ThresholdRuleArg::Quantile => ThresholdRule::QuantileTimesFactor {
                quantile: args.threshold_quantile,
                factor: args.threshold_factor,
            },
            ThresholdRuleArg::Max => ThresholdRule::MaxTimesFactor {
                factor: args.threshold_factor,
            },
        },
        max_runs_per_epoch: (args.max_runs_per_epoch > 0).then_some(args.max_runs_per_epoch),
        max_validation_runs: (args.max_validation_runs > 0).then_some(args.max_validation_runs),
        spot: SpotOptions {
            level: args.spot_level,
            depth: args.spot_depth,
            ..SpotOptions::default()
        },
        scaling: match args.scaling {
            ScalingArg::Linear => Scaling::Linear,
            ScalingArg::Log => Scaling::Log,
        },
        smoothing_packets: args.smoothing.0.map(f64::from),
        load_augment: args.load_augment.0.map(f64::from),
        spot_median_s: args.spot_median.0.map_or(0.0, |d| d.as_secs_f64()),
    };
    if args.spot_median.0.is_some() && args.spot_depth > 0 {
        bail!("--spot-median and --spot-depth cannot be used together (two baselines for one threshold)");
    }
    let mut bundles = Vec::with_capacity(collected.len());
    for c in collected {
        bundles.push(train_one(c, &opts)?);
    }
    let set = ModelSet::new(bundles)?;
    set.save(&args.out)?;
    // Reload: the ids are the weights' hashes, fixed at save time; this also proves it loads.
    let saved = ModelSet::load(&args.out)
        .with_context(|| format!("reloading the model just written to {}", args.out.display()))?;
    println!("model bundle: {}", args.out.display());
    println!("model id:     {}", saved.id());
    for b in saved.bundles() {
        let q = &b.meta.validation_scores;
        if saved.is_multi_scale() {
            println!("ω = {} s: model id {}", b.omega(), b.model_id());
        }
        println!(
            "threshold:    {} ({:?})",
            b.threshold(),
            b.meta.threshold.rule
        );
        println!(
            "validation scores over {} runs: p50 {:.6} p90 {:.6} p99 {:.6} p99.5 {:.6} max {:.6}",
            q.count, q.p50, q.p90, q.p99, q.p99_5, q.max
        );
        match &b.meta.threshold.spot {
            Some(s) => println!(
                "adaptive threshold (SPOT): peaks above {:.6} (level {:.4}, {} of {} runs), tail γ {:.4} σ {:.6}; at false_rate 1e-5: {:.6}",
                s.t,
                s.level,
                s.n_t,
                s.n,
                s.tail.gamma,
                s.tail.sigma,
                s.threshold(1e-5)
            ),
            None => println!(
                "adaptive threshold (SPOT): none (too few validation runs); the daemon uses the fixed threshold"
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Trains the model of one window length, with the progress bar.
fn train_one(c: Collected, opts: &TrainOptions) -> anyhow::Result<Bundle> {
    let Collected {
        windows,
        breaks,
        omega,
        start_ns,
        end_ns,
        files,
    } = c;
    eprintln!(
        "training on {} windows of {} s ({} to {}), {} epochs, hidden {}, layers {}",
        windows.len(),
        omega,
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
    let opts = &opts.for_omega(omega.secs_f64());
    let trained = train_segments(&windows, &breaks, opts, |s: &EpochStats| {
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
    })
    .with_context(|| format!("training the model of ω = {omega} s"))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let data = TrainingData {
        files,
        start_unix: start_ns as f64 / 1e9,
        end_unix: end_ns as f64 / 1e9,
    };
    Ok(Bundle::from_trained(trained, omega, data)?)
}

/// The training windows and where they came from.
struct Collected {
    windows: Vec<FeatureVector>,
    /// Indices where a new run of consecutive windows starts.
    breaks: Vec<usize>,
    omega: Omega,
    /// Time range covered, ns.
    start_ns: i64,
    end_ns: i64,
    /// Source names, as given.
    files: Vec<String>,
}

/// Keeps training windows and where a run of consecutive windows breaks.
#[derive(Default)]
struct Collector {
    windows: Vec<FeatureVector>,
    breaks: Vec<usize>,
    last_end_ns: Option<i64>,
    start_ns: i64,
    end_ns: i64,
}

impl Collector {
    fn new() -> Self {
        Collector {
            start_ns: i64::MAX,
            end_ns: i64::MIN,
            ..Collector::default()
        }
    }

    /// The windows collected, with ω and the sources' names.
    fn into_collected(self, omega: Omega, files: &[std::path::PathBuf]) -> Collected {
        Collected {
            windows: self.windows,
            breaks: self.breaks,
            omega,
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            files: files.iter().map(|p| p.display().to_string()).collect(),
        }
    }

    /// Adds one window; runs of three never straddle a gap, a collapsed jump or a new file.
    fn add(&mut self, start_ns: i64, end_ns: i64, broken: bool, features: FeatureVector) {
        if broken || self.last_end_ns.is_some_and(|e| e != start_ns) {
            self.breaks.push(self.windows.len());
        }
        self.last_end_ns = Some(end_ns);
        self.start_ns = self.start_ns.min(start_ns);
        self.end_ns = self.end_ns.max(end_ns);
        self.windows.push(features);
    }
}

/// One collector per window length.
struct Collectors(Vec<Collector>);

impl ScaleSink for Collectors {
    fn window(&mut self, scale: usize, w: Window) -> Result<(), SinkError> {
        self.0[scale].add(w.start_ns, w.end_ns, w.after_time_jump, w.features);
        Ok(())
    }
}

/// The training windows of each window length (shortest first), from captures (one decode
/// for every ω), feature CSVs (one ω) or a feature history (its ω, or those of --window).
fn collect(args: &TrainArgs) -> anyhow::Result<Vec<Collected>> {
    if let Some(dir) = &args.history {
        return collect_history(dir, args);
    }
    if !args.pcaps.is_empty() {
        let Some(scales) = &args.window else {
            bail!("--window is required with --pcap (the window length in seconds, e.g. 0.5, or several: 0.5,5)");
        };
        let configs: Vec<WindowConfig> = scales
            .omegas()
            .iter()
            .map(|&omega| {
                let mut config = WindowConfig::new(omega);
                config.max_gap_windows = args.max_gap_windows;
                config
            })
            .collect();
        let source = PacketSource::open_files(&args.pcaps, Pace::Unpaced)?;
        let collectors = Collectors(configs.iter().map(|_| Collector::new()).collect());
        let mut pipeline = MultiWindower::new(&configs, collectors);
        let report = pump(source, &mut pipeline, &mut ())?;
        if log_summary(&report, pipeline.stats()[0]) != ExitCode::SUCCESS {
            bail!("refusing to train on a capture that is damaged");
        }
        return Ok(pipeline
            .into_sink()
            .0
            .into_iter()
            .zip(scales.omegas())
            .map(|(c, &omega)| c.into_collected(omega, &args.pcaps))
            .collect());
    }
    let mut c = Collector::new();
    let mut omega_seen: Option<(Omega, String)> = None;
    for path in &args.features {
        let rows = read_feature_csv(path)?;
        for row in rows {
            let len_ns = row.end_ns - row.start_ns;
            let omega = u64::try_from(len_ns)
                .ok()
                .filter(|ns| ns % 1000 == 0)
                .and_then(|ns| Omega::from_micros(ns / 1000))
                .with_context(|| {
                    format!(
                        "{}: a window from {} to {} is not a whole positive number of microseconds long",
                        path.display(),
                        format_ts(row.start_ns),
                        format_ts(row.end_ns)
                    )
                })?;
            match &omega_seen {
                None => omega_seen = Some((omega, path.display().to_string())),
                Some((o, first)) if *o != omega => bail!(
                    "{}: windows of {omega} s, but {first} has windows of {o} s: one model needs one window length",
                    path.display(),
                ),
                Some(_) => {}
            }
            // A gap in time (also between files) starts a new run.
            c.add(row.start_ns, row.end_ns, false, row.features);
        }
    }
    let Some((omega, _)) = omega_seen else {
        bail!("the feature files hold no windows");
    };
    if let Some(w) = &args.window {
        if w.omegas() != [omega] {
            bail!("--window {w} s does not match the feature files' windows of {omega} s (feature files hold one window length: train several from captures with --pcap)");
        }
    }
    Ok(vec![c.into_collected(omega, &args.features)])
}

/// The training windows of a feature history: ω from the history (or each of `--window`),
/// the time range from `--since` (back from the newest window) or `--from`/`--to`, alerted
/// windows and their neighbours, windows with drops and gaps left out
/// (`history::training_set`).
fn collect_history(dir: &Path, args: &TrainArgs) -> anyhow::Result<Vec<Collected>> {
    let scan = history::scan(dir)?;
    let present = scan.omegas();
    let omegas: Vec<Omega> = match (&args.window, present.as_slice()) {
        (Some(w), _) => w.omegas().to_vec(),
        (None, []) => bail!(
            "{}: the history holds no windows (no omega_us=… directory); `netanom run` records them under [history] dir",
            dir.display()
        ),
        (None, [one]) => vec![*one],
        (None, many) => bail!(
            "{}: the history holds windows of several lengths ({}): choose with --window (one, or several comma-separated)",
            dir.display(),
            many.iter()
                .map(|o| format!("{o} s"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let paths = ToolPaths::load(
        args.config.as_deref(),
        args.alert_log.clone(),
        args.state_dir.clone(),
    )?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let spans = training_spans(&paths.feedback.file(), &paths.alert_log, now);
    if !spans.benign_incidents.is_empty() {
        eprintln!(
            "feedback {}: incidents marked benign, their windows trained on: {}",
            paths.feedback.file().display(),
            spans.benign_incidents.join(", ")
        );
    }
    omegas
        .into_iter()
        .map(|omega| collect_history_omega(dir, &scan, omega, args, &spans))
        .collect()
}

/// The training windows of one ω of a feature history (see [`collect_history`]).
fn collect_history_omega(
    dir: &Path,
    scan: &history::HistoryScan,
    omega: Omega,
    args: &TrainArgs,
    spans: &TrainingSpans,
) -> anyhow::Result<Collected> {
    let range = match args.since {
        Some(since) => {
            let newest = newest_window_end(scan, omega)
                .with_context(|| format!("{}: no readable windows of {omega} s", dir.display()))?;
            let back = i64::try_from(since.as_nanos()).unwrap_or(i64::MAX);
            TimeRange {
                from_ns: Some(newest.saturating_sub(back)),
                to_ns: None,
            }
        }
        None => TimeRange {
            from_ns: args.from,
            to_ns: args.to,
        },
    };
    let set = history::training_set(dir, omega, range, spans)?;
    eprintln!(
        "history {}: {} windows of {omega} s in range, {} kept ({} alerted but marked benign); left out: {} alerted, {} within {} windows of an alert, {} with capture drops; {} breaks in the sequence (gaps and left-out windows); {} segments read, {} unreadable (skipped)",
        dir.display(),
        set.rows,
        set.windows.len(),
        set.included_benign,
        set.excluded_alerted,
        set.excluded_near_alert,
        netanom::model::SEQ_LEN - 1,
        set.excluded_drops,
        set.breaks.len(),
        set.segments,
        set.unreadable.len(),
    );
    if set.windows.is_empty() {
        bail!(
            "{}: no windows of {omega} s fit for training in the range asked for",
            dir.display()
        );
    }
    Ok(Collected {
        start_ns: set.start_ns,
        end_ns: set.end_ns,
        windows: set.windows,
        breaks: set.breaks,
        omega,
        files: vec![dir.display().to_string()],
    })
}

/// The end of the newest window of `omega`: from the last segment (in time order) that reads.
fn newest_window_end(scan: &history::HistoryScan, omega: Omega) -> Option<i64> {
    let stream = scan.get(omega)?;
    stream
        .segments
        .iter()
        .rev()
        .find_map(|seg| seg.read().ok()?.iter().map(|r| r.end_ns).max())
}
