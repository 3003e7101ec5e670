//! The command line of `netanom` and `netanom-full`: subcommands and their options (clap),
//! logging and output helpers, and the `extract` subcommand (the only one that needs no model).
//!
//! This crate and everything below it are free of libtorch (tests/lean.rs checks it).

pub mod extract;
pub mod sensor;

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
    /// Summarise a feature history recorded by `netanom run`: what there is to train on.
    History(HistoryArgs),
    /// Cut a tap's traffic into partial windows and publish them to NATS JetStream, for a
    /// collector (`netanom run --nats URL --sensors ...`) that merges several taps.
    Sensor(SensorArgs),
    /// Operator feedback: suppress incidents, mark them benign (trained on next time), list
    /// and expire rules. The daemon applies new rules without a restart.
    Feedback(FeedbackArgs),
}

/// Options of `netanom feedback`.
#[derive(Debug, Args)]
pub struct FeedbackArgs {
    #[command(subcommand)]
    pub command: FeedbackCommand,
    /// Settings file naming `feedback.dir` and `alerts.path`; default
    /// /etc/netanom/netanom.toml if it exists.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// The state directory holding feedback.jsonl (overrides feedback.dir).
    #[arg(long, value_name = "DIR", global = true)]
    pub state_dir: Option<PathBuf>,
    /// The alert log incident ids are looked up in (overrides alerts.path).
    #[arg(long, value_name = "FILE", global = true)]
    pub alert_log: Option<PathBuf>,
}

/// `netanom feedback` subcommands.
#[derive(Debug, Subcommand)]
pub enum FeedbackCommand {
    /// Matching incidents are still logged (with `suppressed_by`) but do not fire.
    Suppress(FeedbackRuleArgs),
    /// Matching incidents are normal traffic: the next training takes their windows in.
    Benign(FeedbackRuleArgs),
    /// The rules: active ones, or all with --all.
    List(FeedbackListArgs),
    /// Ends a rule now (an expiry is appended; nothing is rewritten).
    Expire(FeedbackExpireArgs),
}

/// A new rule's scope and reasons. Scope options given together must all match.
#[derive(Debug, Args)]
pub struct FeedbackRuleArgs {
    /// This incident (`incident.id` of the alert log).
    #[arg(long, value_name = "ID")]
    pub incident: Option<String>,
    /// Incidents naming this host among their culprits.
    #[arg(long, value_name = "IP")]
    pub host: Option<std::net::IpAddr>,
    /// Incidents naming a host in this subnet.
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<ipnet::IpNet>,
    /// Incidents with this feature among their top features.
    #[arg(long, value_name = "NAME", value_parser = parse_feature)]
    pub feature: Option<String>,
    /// Why (required): kept with the rule, shown by `list`.
    #[arg(long, value_name = "TEXT", required = true)]
    pub comment: String,
    /// The rule ends after this long (90s, 30m, 12h, 7d); default: never.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub expires: Option<std::time::Duration>,
    /// Accept a scope that matches every incident (no scope, 0.0.0.0/0, ::/0).
    #[arg(long)]
    pub force: bool,
}

/// Options of `netanom feedback list`.
#[derive(Debug, Args)]
pub struct FeedbackListArgs {
    /// Expired rules too.
    #[arg(long)]
    pub all: bool,
    /// One JSON object per rule, one per line.
    #[arg(long)]
    pub json: bool,
}

/// Options of `netanom feedback expire`.
#[derive(Debug, Args)]
pub struct FeedbackExpireArgs {
    /// The rule's id (`netanom feedback list`).
    pub id: String,
    /// Why (required).
    #[arg(long, value_name = "TEXT", required = true)]
    pub comment: String,
}

/// A feature name (`--feature`): one of the 53, or an error naming the closest ones.
pub fn parse_feature(text: &str) -> Result<String, String> {
    use netanom_core::window::features::FEATURE_NAMES;
    if FEATURE_NAMES.contains(&text) {
        return Ok(text.to_string());
    }
    let key = |n: &str| {
        let common = n
            .split('_')
            .filter(|p| text.split('_').any(|q| q == *p))
            .count();
        (common, usize::MAX - n.len().abs_diff(text.len()))
    };
    let mut close: Vec<&str> = FEATURE_NAMES.to_vec();
    close.sort_by_key(|n| std::cmp::Reverse(key(n)));
    Err(format!(
        "unknown feature {text:?}; closest: {}; the features are: {}",
        close[..3].join(", "),
        FEATURE_NAMES.join(", ")
    ))
}

/// Options of `netanom sensor`.
#[derive(Debug, Args)]
pub struct SensorArgs {
    /// Capture live from this interface.
    #[arg(
        long,
        value_name = "IF",
        conflicts_with = "pcaps",
        required_unless_present = "pcaps"
    )]
    pub interface: Option<String>,
    /// Replay capture files instead (repeatable, in time order), as fast as they read.
    #[arg(long = "pcap", value_name = "FILE")]
    pub pcaps: Vec<PathBuf>,
    /// Replay at the recorded pace.
    #[arg(long, requires = "pcaps")]
    pub realtime: bool,
    /// Window length(s) in seconds: those of the collector's model (`0.5` or `0.5,5`).
    #[arg(long, value_name = "SECONDS[,SECONDS...]")]
    pub window: Scales,
    /// NATS server URL, e.g. nats://collector.example:4222.
    #[arg(long, value_name = "URL")]
    pub nats: String,
    /// This sensor's name (letters, digits, '-', '_'): subject netanom.partial.<NAME>.
    #[arg(long, value_name = "NAME")]
    pub sensor: String,
    /// The JetStream stream (created if missing).
    #[arg(long, value_name = "NAME", default_value = netanom_nats::DEFAULT_STREAM)]
    pub stream: String,
    /// BPF filter of the live capture.
    #[arg(long, value_name = "EXPR")]
    pub bpf_filter: Option<String>,
    /// Bytes captured per packet (headers only).
    #[arg(long, value_name = "BYTES", default_value_t = 160)]
    pub snaplen: u32,
    /// Kernel capture buffer, MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub buffer_size_mb: u32,
    /// Longest run of empty windows for one gap (see `extract`).
    #[arg(long, value_name = "WINDOWS", default_value_t = WindowConfig::DEFAULT_MAX_GAP_WINDOWS)]
    pub max_gap_windows: u64,
}

/// Options of `netanom history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The history directory (`[history] dir` of the daemon).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
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
    /// Also write every incident event as a Suricata EVE `alert` record to this file
    /// (`alerts.eve_path`), for tools that read Suricata's eve.json.
    #[arg(long, value_name = "FILE")]
    pub eve_log: Option<PathBuf>,
    /// Record the feature history in this directory (turns `[history]` on).
    #[arg(long, value_name = "DIR")]
    pub history_dir: Option<PathBuf>,
    /// Window length(s) in seconds (`window.omega`): what learning mode cuts traffic into;
    /// with a model, it must match the model's.
    #[arg(long, value_name = "SECONDS[,SECONDS...]")]
    pub window: Option<Scales>,
    /// Merge the partial windows of these sensors (comma-separated names) from NATS instead
    /// of capturing (`nats.sensors`; needs --nats).
    #[arg(long, value_name = "NAME[,NAME...]", value_delimiter = ',', requires = "nats", conflicts_with_all = ["interface", "pcaps"])]
    pub sensors: Vec<String>,
    /// NATS server of the sensors (`nats.url`).
    #[arg(long, value_name = "URL", conflicts_with_all = ["interface", "pcaps"])]
    pub nats: Option<String>,
    /// Learning mode, when the model directory holds no model yet: record this much history
    /// (90s, 30m, 12h, 7d), then train the first model in the background and start detecting.
    #[arg(long, value_name = "DURATION")]
    pub learn_for: Option<String>,
    /// State directory holding the operators' feedback rules (`feedback.dir`, default
    /// /var/lib/netanom): feedback.jsonl, written by `netanom feedback`.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Capture workers (`capture.workers`): N libpcap handles on the interface in one
    /// PACKET_FANOUT group, merged per window (1: one capture thread).
    #[arg(long, value_name = "N")]
    pub workers: Option<u16>,
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
        required_unless_present_any = ["features", "history"],
        conflicts_with_all = ["features", "history"]
    )]
    pub pcaps: Vec<PathBuf>,
    /// Feature CSV written by `netanom extract` (instead of captures); repeatable.
    #[arg(long = "features", value_name = "FILE", conflicts_with = "history")]
    pub features: Vec<PathBuf>,
    /// Feature history directory recorded by `netanom run` (instead of captures).
    #[arg(long, value_name = "DIR")]
    pub history: Option<PathBuf>,
    /// With --history: the windows of the last DURATION before the newest one (90s, 30m,
    /// 12h, 7d).
    #[arg(long, value_name = "DURATION", requires = "history", conflicts_with_all = ["from", "to"], value_parser = parse_duration)]
    pub since: Option<std::time::Duration>,
    /// With --history: the first window start to use (RFC 3339 UTC or epoch seconds).
    #[arg(long, value_name = "TIME", requires = "history", value_parser = parse_time_ns)]
    pub from: Option<i64>,
    /// With --history: windows starting before this time (RFC 3339 UTC or epoch seconds).
    #[arg(long, value_name = "TIME", requires = "history", value_parser = parse_time_ns)]
    pub to: Option<i64>,
    /// With --history: the settings file naming the feedback state directory and the alert
    /// log (`feedback.dir`, `alerts.path`); default /etc/netanom/netanom.toml if it exists.
    /// Windows of incidents marked `benign` (netanom feedback) are trained on.
    #[arg(long, value_name = "FILE", requires = "history")]
    pub config: Option<PathBuf>,
    /// With --history: the feedback state directory (overrides feedback.dir).
    #[arg(long, value_name = "DIR", requires = "history")]
    pub state_dir: Option<PathBuf>,
    /// With --history: the alert log that benign rules are matched against (overrides
    /// alerts.path).
    #[arg(long, value_name = "FILE", requires = "history")]
    pub alert_log: Option<PathBuf>,
    /// Runs of three drawn (without replacement) for each epoch; 0 uses every run. The
    /// default keeps a week of history at ω = 0.5 s within about 15 minutes on 2 cores
    /// (docs/history.md).
    #[arg(long, value_name = "RUNS", default_value_t = 100_000)]
    pub max_runs_per_epoch: usize,
    /// Validation runs scored (a fixed random sample); 0 scores every run.
    #[arg(long, value_name = "RUNS", default_value_t = 50_000)]
    pub max_validation_runs: usize,
    /// Window length ω in seconds (required with --pcap; checked against feature CSVs), or
    /// several, comma-separated (`0.5,5`): one model per ω from the same data, in one bundle. With --history: the
    /// window lengths to train (required when the history holds several).
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
    /// Adaptive threshold (SPOT, stored beside the fixed one): quantile level of the
    /// validation scores above which scores are peaks (lowered on small validation sets).
    #[arg(long, value_name = "LEVEL", default_value_t = 0.98)]
    pub spot_level: f64,
    /// Adaptive threshold: DSPOT depth, scores taken relative to the mean of the last N
    /// normal ones (follows a drift of the whole score distribution); 0 is plain SPOT.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub spot_depth: usize,
    /// Adaptive threshold: judge each score by its ratio to the median score of the last
    /// DURATION of windows (all of them: an attack shorter than half of it cannot move a
    /// median), so the threshold follows the network's drift (docs/model.md, "Median
    /// baseline"); `off` for plain SPOT.
    #[arg(long, value_name = "DURATION|off", default_value = "off", value_parser = parse_spot_median)]
    pub spot_median: SpotMedian,
    /// Feature scaling before min–max: `linear` (the paper's) or `log` (ln(1 + x) first: a
    /// count that doubles moves by ln 2; docs/model.md, "Feature scaling").
    #[arg(long, value_enum, default_value_t = ScalingArg::Linear)]
    pub scaling: ScalingArg,
    /// Small-window smoothing: shrink the means, variances and flag ratios of a window toward
    /// their training mean by a prior of PACKETS packets, so a window of a dozen packets
    /// cannot make one odd packet an anomaly (docs/model.md, "Small-window smoothing");
    /// `off` (the paper's) by default.
    #[arg(long, value_name = "PACKETS|off", default_value = "off", value_parser = parse_smoothing)]
    pub smoothing: Smoothing,
    /// Load augmentation: train half the runs of three as if the network carried up to FACTOR
    /// times more or less load (counts scaled, averages kept), so a model of a quiet hour
    /// knows a busy one (docs/model.md, "Load augmentation"); `off` (the paper's) by default.
    #[arg(long, value_name = "FACTOR|off", default_value = "off", value_parser = parse_load_augment)]
    pub load_augment: LoadAugment,
    /// Longest run of empty windows written for one gap (see `extract`).
    #[arg(long, value_name = "WINDOWS", default_value_t = WindowConfig::DEFAULT_MAX_GAP_WINDOWS)]
    pub max_gap_windows: u64,
}

/// A duration such as `90s`, `30m`, `12h`, `7d` (`--since`).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("a duration of zero selects nothing".into()),
        Err(e) => Err(format!(
            "{e} (expected a duration such as 90s, 30m, 12h or 7d)"
        )),
    }
}

/// `netanom train --smoothing`: the prior's weight in packets, or none (`off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Smoothing(pub Option<u32>);

/// A whole number of packets from 1 to 1,000,000 (`64`) or `off`.
pub fn parse_smoothing(text: &str) -> Result<Smoothing, String> {
    let text = text.trim();
    if text == "off" {
        return Ok(Smoothing(None));
    }
    match text.parse::<u32>() {
        Ok(p) if (1..=1_000_000).contains(&p) => Ok(Smoothing(Some(p))),
        _ => Err(format!(
            "{text:?} is not a number of packets from 1 to 1000000, nor \"off\" (e.g. 64)"
        )),
    }
}

/// `netanom train --load-augment`: the largest load factor, or none (`off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadAugment(pub Option<u32>);

/// A whole factor from 2 to 100 (`4`) or `off`.
pub fn parse_load_augment(text: &str) -> Result<LoadAugment, String> {
    let text = text.trim();
    if text == "off" {
        return Ok(LoadAugment(None));
    }
    match text.parse::<u32>() {
        Ok(f) if (2..=100).contains(&f) => Ok(LoadAugment(Some(f))),
        _ => Err(format!(
            "{text:?} is not a load factor from 2 to 100, nor \"off\" (e.g. 4)"
        )),
    }
}

/// `netanom train --spot-median`: the median baseline's length, or none (`off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpotMedian(pub Option<std::time::Duration>);

/// A duration (`30m`, `2h`) or `off`.
pub fn parse_spot_median(text: &str) -> Result<SpotMedian, String> {
    if text.trim() == "off" {
        return Ok(SpotMedian(None));
    }
    parse_duration(text).map(|d| SpotMedian(Some(d)))
}

/// A point in time, ns since the epoch: RFC 3339 in UTC (`2026-12-01T14:00:00Z`) or epoch
/// seconds (`1764597600.5`).
pub fn parse_time_ns(text: &str) -> Result<i64, String> {
    if let Ok(secs) = text.parse::<f64>() {
        if secs.is_finite() && secs.abs() < 9.2e9 {
            return Ok((secs * 1e9).round() as i64);
        }
    }
    let t = humantime::parse_rfc3339_weak(text).map_err(|e| {
        format!("{e} (expected RFC 3339 in UTC, e.g. 2026-12-01T14:00:00Z, or epoch seconds)")
    })?;
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).map_err(|_| "too far in the future".to_string()),
        Err(e) => i64::try_from(e.duration().as_nanos())
            .map(|ns| -ns)
            .map_err(|_| "too far in the past".to_string()),
    }
}

/// `netanom train --scaling`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScalingArg {
    /// The raw feature values (the paper's min–max).
    Linear,
    /// ln(1 + x) of each feature, then min–max.
    Log,
}

/// `netanom train --threshold-rule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ThresholdRuleArg {
    /// factor × a quantile of the validation scores.
    Quantile,
    /// factor × the largest validation score.
    Max,
}

/// The threshold options of `score` and `evaluate`: the daemon's `[alerts] threshold_rule`,
/// `false_rate` and `model.threshold`, so that offline scoring judges windows as it does.
#[derive(Debug, Args)]
pub struct ThresholdArgs {
    /// Use this fixed threshold instead of the bundle's (wins over --threshold-rule).
    #[arg(long)]
    pub threshold: Option<f64>,
    /// `spot`: the adaptive threshold, starting from the bundle's calibration and learning
    /// from the windows that do not alert (as a freshly started daemon); `fixed`: the bundle's
    /// fixed threshold (the paper's way).
    #[arg(long, value_enum, default_value_t = DetectRuleArg::Spot)]
    pub threshold_rule: DetectRuleArg,
    /// With `spot`: the share of normal windows allowed to alert (1e-9 to 1e-2).
    #[arg(long, value_name = "Q", default_value_t = 1e-5)]
    pub false_rate: f64,
}

/// `--threshold-rule` of `score`, `evaluate` (`alerts.threshold_rule`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DetectRuleArg {
    /// The adaptive threshold (SPOT).
    Spot,
    /// The bundle's fixed threshold.
    Fixed,
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
    /// How each window's threshold is chosen (as the daemon does).
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
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
    /// How each window's threshold is chosen (as the daemon does).
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `--since` durations, and what is refused.
    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("90s"),
            Ok(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            parse_duration("7d"),
            Ok(std::time::Duration::from_secs(7 * 86_400))
        );
        assert_eq!(
            parse_duration("12h"),
            Ok(std::time::Duration::from_secs(12 * 3600))
        );
        assert!(parse_duration("soon")
            .unwrap_err()
            .contains("90s, 30m, 12h or 7d"));
        assert!(parse_duration("0s").is_err());
    }

    /// `--from`/`--to`: RFC 3339 in UTC or epoch seconds.
    #[test]
    fn times() {
        assert_eq!(parse_time_ns("1764597600"), Ok(1_764_597_600_000_000_000));
        assert_eq!(parse_time_ns("1764597600.5"), Ok(1_764_597_600_500_000_000));
        assert_eq!(
            parse_time_ns("2025-12-01T14:00:00Z"),
            Ok(1_764_597_600_000_000_000)
        );
        assert_eq!(
            parse_time_ns("2025-12-01T14:00:00.25Z"),
            Ok(1_764_597_600_250_000_000)
        );
        assert!(parse_time_ns("yesterday").unwrap_err().contains("RFC 3339"));
    }

    /// The flags parse, and `--since` with `--from` is refused.
    #[test]
    fn train_history_flags() {
        let cli = Cli::try_parse_from([
            "netanom",
            "train",
            "--history",
            "/h",
            "--since",
            "30m",
            "--out",
            "/m",
        ])
        .unwrap();
        let Command::Train(a) = cli.command else {
            panic!("not train")
        };
        assert_eq!(a.since, Some(std::time::Duration::from_secs(1800)));
        assert_eq!(a.history.as_deref(), Some(Path::new("/h")));
        let e = Cli::try_parse_from([
            "netanom",
            "train",
            "--history",
            "/h",
            "--since",
            "30m",
            "--from",
            "0",
            "--out",
            "/m",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("--since"), "{e}");
        let e =
            Cli::try_parse_from(["netanom", "train", "--since", "30m", "--out", "/m"]).unwrap_err();
        assert!(e.to_string().contains("--history"), "{e}");
    }
}
