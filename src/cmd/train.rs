//! `netanom train`: fit the normaliser and the LSTM on normal traffic, write a model bundle.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{bail, Context};

use netanom::csv::read_feature_csv;
use netanom::model::bundle::TrainingData;
use netanom::model::{train_segments, Bundle, EpochStats, ModelSet, ThresholdRule, TrainOptions};
use netanom::pipeline::{
    log_summary, pump, MultiWindower, Pace, PacketSource, ScaleSink, SinkError,
};
use netanom::timestamp::format_ts;
use netanom::window::features::FeatureVector;
use netanom::window::{Omega, Window, WindowConfig};
use netanom_cli::{ThresholdRuleArg, TrainArgs};

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
    };
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
/// for every ω) or feature CSVs (one ω).
fn collect(args: &TrainArgs) -> anyhow::Result<Vec<Collected>> {
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
