//! The command line of `netanom` and `netanom-full`: subcommands and their options (clap),
//! logging and output helpers, and the `extract` subcommand (the only one that needs no model).
//!
//! This crate and everything below it are free of libtorch (tests/lean.rs checks it).

pub mod extract;

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use netanom_core::window::{Omega, Scales, WindowConfig};

/// Network anomaly detection by LSTM over windowed header features.
#[derive(Debug, Parser)]
#[command(name = "netanom", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Extract the 53 window features from capture files into CSV.
    Extract(ExtractArgs),
    /// Train a model bundle on normal traffic (captures or feature CSVs).
    Train(TrainArgs),
    /// Score every window of capture files with a model bundle.
    Score(ScoreArgs),
    /// Score labelled captures and report ROC/AUC, precision, recall, F1 with plots.
    Evaluate(EvaluateArgs),
    /// Run the detector as a service: capture (or replay), score, alert, serve metrics.
    Run(RunArgs),
}

/// Options of `netanom run`; each overrides the settings file and `NETANOM_…` variables.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Settings file (TOML); see config/netanom.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Capture live from this interface.
    #[arg(long, value_name = "IF", conflicts_with = "pcaps")]
    pub interface: Option<String>,
    /// Replay capture files through the pipeline instead (repeatable, in time order).
    #[arg(long = "pcap", value_name = "FILE")]
    pub pcaps: Vec<PathBuf>,
    /// Replay at the recorded pace instead of as fast as possible.
    #[arg(long, requires = "pcaps")]
    pub realtime: bool,
    /// Model bundle directory.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Address for /metrics and /healthz, e.g. 127.0.0.1:9405.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Alert log file (JSON lines).
    #[arg(long, value_name = "FILE")]
    pub alert_log: Option<PathBuf>,
}

/// Options of `netanom extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Capture file (pcap or pcapng); repeat for several files in time order.
    #[arg(long = "pcap", value_name = "FILE", required = true)]
    pub pcaps: Vec<PathBuf>,
    /// Window length ω in seconds (e.g. 30, 5, 0.5; at most 6 decimals).
    #[arg(long, value_name = "SECONDS")]
    pub window: Omega,
    /// CSV output file (default: standard output).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Longest run of empty windows written for one gap in packet time; a longer jump
    /// (a bad timestamp) is collapsed and reported.
    #[arg(long, value_name = "WINDOWS", default_value_t = WindowConfig::DEFAULT_MAX_GAP_WINDOWS)]
    pub max_gap_windows: u64,
}

/// Options of `netanom train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Capture file of normal traffic; repeat for several files in time order.
    #[arg(
        long = "pcap",
        value_name = "FILE",
        required_unless_present = "features",
        conflicts_with = "features"
    )]
    pub pcaps: Vec<PathBuf>,
    /// Feature CSV written by `netanom extract` (instead of captures); repeatable.
    #[arg(long = "features", value_name = "FILE")]
    pub features: Vec<PathBuf>,
    /// Window length ω in seconds (required with --pcap; checked against feature CSVs), or
    /// several, comma-separated (`0.5,5`): one model per ω from the same data, in one bundle.
    #[arg(long, value_name = "SECONDS[,SECONDS...]")]
    pub window: Option<Scales>,
    /// Output model bundle directory (created; files in it are replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// LSTM hidden size.
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
    /// LSTM layers.
    #[arg(long, default_value_t = 1)]
    pub layers: usize,
    /// Training epochs (the paper used 20, 30 and 100).
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub learning_rate: f64,
    /// Runs of three windows per batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Seed: the same seed and data give the same model.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fraction of the windows, the last ones in time order, held out for validation.
    #[arg(long, default_value_t = 0.2)]
    pub validation_fraction: f64,
    /// Threshold rule: `quantile` (factor × quantile of validation scores) or `max`.
    #[arg(long, value_enum, default_value_t = ThresholdRuleArg::Quantile)]
    pub threshold_rule: ThresholdRuleArg,
    /// Quantile of the validation scores for the `quantile` rule.
    #[arg(long, default_value_t = 0.995)]
    pub threshold_quantile: f64,
    /// Margin factor applied to the quantile or maximum.
    #[arg(long, default_value_t = 1.5)]
    pub threshold_factor: f64,
    /// Longest run of empty windows written for one gap (see `extract`).
    #[arg(long, value_name = "WINDOWS", default_value_t = WindowConfig::DEFAULT_MAX_GAP_WINDOWS)]
    pub max_gap_windows: u64,
}

/// `netanom train --threshold-rule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ThresholdRuleArg {
    /// factor × a quantile of the validation scores.
    Quantile,
    /// factor × the largest validation score.
    Max,
}

/// Options of `netanom score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Model bundle directory (from `netanom train`).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Capture file; repeat for several files in time order.
    #[arg(long = "pcap", value_name = "FILE", required = true)]
    pub pcaps: Vec<PathBuf>,
    /// CSV output file (default: standard output).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Use this threshold instead of the bundle's.
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Longest run of empty windows written for one gap (see `extract`).
    #[arg(long, value_name = "WINDOWS", default_value_t = WindowConfig::DEFAULT_MAX_GAP_WINDOWS)]
    pub max_gap_windows: u64,
}

/// Options of `netanom evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Model bundle directory (from `netanom train`).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Capture file; repeat for several files in time order.
    #[arg(long = "pcap", value_name = "FILE", required = true)]
    pub pcaps: Vec<PathBuf>,
    /// Attack labels: CSV with header `name,src_cidr,dst_cidr,start_epoch,end_epoch`.
    #[arg(long, value_name = "LABELS.csv")]
    pub labels: PathBuf,
    /// A window is anomalous when it holds at least P attack packets; one report per P.
    #[arg(
        long,
        value_name = "P,P,...",
        value_delimiter = ',',
        default_value = "1,10,20"
    )]
    pub min_attack_packets: Vec<u64>,
    /// Report directory (metrics.json, roc.csv, roc/score plots as PNG and SVG).
    #[arg(long, value_name = "DIR")]
    pub report: PathBuf,
    /// Use this threshold instead of the bundle's.
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Longest run of empty windows written for one gap (see `extract`).
    #[arg(long, value_name = "WINDOWS", default_value_t = WindowConfig::DEFAULT_MAX_GAP_WINDOWS)]
    pub max_gap_windows: u64,
}

/// An output file, or standard output when `path` is `None`, with a name for messages.
pub fn open_output(path: Option<&Path>) -> anyhow::Result<(Box<dyn Write>, String)> {
    Ok(match path {
        Some(path) => (
            Box::new(BufWriter::new(File::create(path).with_context(|| {
                format!("{}: cannot create output file", path.display())
            })?)),
            path.display().to_string(),
        ),
        None => (
            Box::new(BufWriter::new(std::io::stdout().lock())),
            "standard output".into(),
        ),
    })
}

/// Why the level of the log could not be changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogLevelError {
    /// `NETANOM_LOG` set the filter at startup and keeps overriding the level.
    OverriddenByEnv,
    /// The log was not set up by [`init_logging`] in this process.
    NotInstalled,
    /// The filter could not be replaced (the subscriber is gone).
    Reload(String),
}

impl std::fmt::Display for LogLevelError {
    /// The reason, for a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogLevelError::OverriddenByEnv => {
                write!(f, "the NETANOM_LOG environment variable overrides it")
            }
            LogLevelError::NotInstalled => write!(f, "the log cannot be reconfigured"),
            LogLevelError::Reload(e) => write!(f, "the log filter could not be replaced: {e}"),
        }
    }
}

impl std::error::Error for LogLevelError {}

/// The filter-replacing function behind a [`LogLevelHandle`].
type SetFilter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Changes the level of the log that [`init_logging`] set up (the daemon's reload).
pub struct LogLevelHandle {
    /// Replaces the filter with one of this level.
    set: SetFilter,
    /// `NETANOM_LOG` chose the filter: levels from settings are ignored.
    overridden_by_env: bool,
}

impl LogLevelHandle {
    /// Logs at `level` (`error` … `trace`) from now on.
    pub fn set_level(&self, level: &str) -> Result<(), LogLevelError> {
        if self.overridden_by_env {
            return Err(LogLevelError::OverriddenByEnv);
        }
        (self.set)(level).map_err(LogLevelError::Reload)
    }
}

/// Logs go to stderr (the journal, under systemd); `NETANOM_LOG` overrides `level`.
pub fn init_logging(level: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NETANOM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// As [`init_logging`], with a handle that changes the level later (the daemon: `log.level` on
/// SIGHUP). The filter then sits behind a lock, which the batch commands do not need.
pub fn init_reloadable_logging(level: &str, json: bool) -> LogLevelHandle {
    let from_env = tracing_subscriber::EnvFilter::try_from_env("NETANOM_LOG").ok();
    let overridden_by_env = from_env.is_some();
    let filter = from_env.unwrap_or_else(|| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter);
    let set: SetFilter = if json {
        let builder = builder.json().with_filter_reloading();
        let handle = builder.reload_handle();
        builder.init();
        Box::new(move |level| {
            handle
                .reload(tracing_subscriber::EnvFilter::new(level))
                .map_err(|e| e.to_string())
        })
    } else {
        let builder = builder.with_filter_reloading();
        let handle = builder.reload_handle();
        builder.init();
        Box::new(move |level| {
            handle
                .reload(tracing_subscriber::EnvFilter::new(level))
                .map_err(|e| e.to_string())
        })
    };
    LogLevelHandle {
        set,
        overridden_by_env,
    }
}

/// Prints an error the way every subcommand does and gives the failure exit code.
pub fn report_error(e: &anyhow::Error) -> std::process::ExitCode {
    eprintln!("netanom: error: {e:#}");
    std::process::ExitCode::FAILURE
}
