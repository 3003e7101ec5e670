//! The learner thread: trains models from the feature history in the background — the first
//! model in learning mode, then one every `learning.retrain_every` — checks a candidate
//! against the running model, installs it in the model store and hands it to the scorer.
//!
//! Capture and scoring never wait for it (except replaying files, where the scorer waits for
//! each answer so that a replay always gives the same result). It runs at a lower CPU
//! priority and libtorch single-threaded, so on a 2-core tap it takes at most one core. A
//! training that fails leaves the running model as it was; one killed with the daemon leaves
//! only a `.tmp` bundle, removed at the next start (`model/store.rs`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use crossbeam_channel::{Receiver, Sender};

use super::scorer::{Control, Detector};
use crate::config::LearningSettings;
use crate::detect::score::Scale;
use crate::detect::threshold::ThresholdConfig;
use crate::history::{self, HistoryRow, TimeRange};
use crate::model::bundle::TrainingData;
use crate::model::{train_segments, Bundle, ModelSet, ModelStore, ThresholdRule, TrainOptions};
use crate::output::metrics::Metrics;
use crate::window::{Scales, Window};

/// What the scorer asks for. Times are window ends in capture time, ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    /// Learning mode: train the first model on all the history before `until_ns`.
    First { until_ns: i64 },
    /// Retrain on `[until − window, until − holdout)`, compare on `[until − holdout, until)`.
    Retrain { until_ns: i64 },
}

impl Job {
    /// The capture time the job was asked at.
    pub fn until_ns(&self) -> i64 {
        match *self {
            Job::First { until_ns } | Job::Retrain { until_ns } => until_ns,
        }
    }
}

/// How a job ended (`netanom_retrains_total{result}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LearnResult {
    /// The first model of learning mode was trained and installed.
    Learned,
    /// A retrained candidate replaced the running model.
    Promoted,
    /// The candidate alerted more than the running model on the held-out history: kept the
    /// running one.
    Rejected,
    /// Training or installing failed: the running model is untouched.
    Failed,
}

impl LearnResult {
    /// Every result, for the metric's label values.
    pub const ALL: [LearnResult; 4] = [
        LearnResult::Learned,
        LearnResult::Promoted,
        LearnResult::Rejected,
        LearnResult::Failed,
    ];

    /// The `result` label.
    pub fn as_str(self) -> &'static str {
        match self {
            LearnResult::Learned => "learned",
            LearnResult::Promoted => "promoted",
            LearnResult::Rejected => "rejected",
            LearnResult::Failed => "failed",
        }
    }
}

/// The learner's answer to one job.
pub struct Learned {
    pub job: Job,
    pub result: LearnResult,
    /// The model to run now (learned or promoted).
    pub detector: Option<Detector>,
    /// What happened, for the log.
    pub message: String,
}

/// Everything the learner needs; built by the daemon from the settings.
pub struct Learner {
    pub history_dir: PathBuf,
    /// The operators' feedback rules (`benign` incidents are trained on) and the alert log
    /// they are matched against.
    pub feedback_file: PathBuf,
    pub alert_log: PathBuf,
    pub model_dir: PathBuf,
    pub scales: Scales,
    pub learning: LearningSettings,
    /// How the scorer chooses thresholds (`[alerts]`, `model.threshold`).
    pub thresholds: ThresholdConfig,
    /// Builds the scorer's detector for a model set (threshold override, alert settings).
    pub detector: Box<dyn Fn(ModelSet) -> anyhow::Result<Detector> + Send>,
    pub metrics: Arc<Metrics>,
}

/// Alerting and scored windows of a model on some history.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AlertRate {
    pub alerting: u64,
    pub scored: u64,
}

impl AlertRate {
    /// Alerting share of the scored windows (0 with none scored).
    pub fn rate(&self) -> f64 {
        if self.scored == 0 {
            0.0
        } else {
            self.alerting as f64 / self.scored as f64
        }
    }
}

/// Unix seconds now.
fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Nanoseconds of a duration, saturating.
fn ns(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl Learner {
    /// Starts the thread; jobs go in through the returned sender, answers reach the scorer as
    /// [`Control::Learned`].
    pub fn spawn(
        self,
        control: Sender<Control>,
    ) -> anyhow::Result<(Sender<Job>, std::thread::JoinHandle<()>)> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("netanom-learner".into())
            .spawn(move || self.run(rx, control))
            .context("starting the learner thread")?;
        Ok((tx, thread))
    }

    /// Serves jobs until the scorer drops its sender.
    fn run(self, jobs: Receiver<Job>, control: Sender<Control>) {
        // Below capture and scoring: nice 10 for this thread only (Linux sets it per thread).
        // SAFETY: plain system calls on this thread's id.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, 10);
        }
        for job in jobs {
            let started = std::time::Instant::now();
            let learned = match self.handle(job) {
                Ok(l) => l,
                Err(e) => Learned {
                    job,
                    result: LearnResult::Failed,
                    detector: None,
                    message: format!("training failed, the running model is untouched: {e:#}"),
                },
            };
            self.metrics.record_retrain(learned.result.as_str());
            tracing::info!(
                result = learned.result.as_str(),
                seconds = started.elapsed().as_secs_f64(),
                "{}",
                learned.message
            );
            if control.send(Control::Learned(Box::new(learned))).is_err() {
                break;
            }
        }
    }

    /// Trains, checks and installs for one job.
    fn handle(&self, job: Job) -> anyhow::Result<Learned> {
        let until = job.until_ns();
        match job {
            Job::First { .. } => {
                let range = TimeRange {
                    from_ns: None,
                    to_ns: Some(until),
                };
                let set = self.train(range)?;
                let store = ModelStore::open(&self.model_dir, self.learning.keep_models)?;
                let path = store.install(&set, now_unix())?;
                let loaded = ModelSet::load(&self.model_dir)?;
                let id = loaded.id().to_string();
                Ok(Learned {
                    job,
                    result: LearnResult::Learned,
                    detector: Some((self.detector)(loaded)?),
                    message: format!(
                        "learning done: model {id} trained from the history and installed at {}; detecting from now on",
                        path.display()
                    ),
                })
            }
            Job::Retrain { .. } => {
                let holdout_from = until - ns(self.learning.holdout);
                let range = TimeRange {
                    from_ns: Some(until - ns(self.learning.window)),
                    to_ns: Some(holdout_from),
                };
                let held_out = TimeRange {
                    from_ns: Some(holdout_from),
                    to_ns: Some(until),
                };
                let candidate = self.train(range)?;
                let store = ModelStore::open(&self.model_dir, self.learning.keep_models)?;
                let staged = store.stage(&candidate, now_unix())?;
                let checked = (|| -> anyhow::Result<(AlertRate, AlertRate)> {
                    let running =
                        ModelSet::load(&self.model_dir).context("loading the running model")?;
                    let staged_set = ModelSet::load(staged.path())?;
                    let rows = self.rows(held_out)?;
                    Ok((
                        alert_rate(Scale::from_set(staged_set, &self.thresholds)?, &rows),
                        alert_rate(Scale::from_set(running, &self.thresholds)?, &rows),
                    ))
                })();
                let (mine, theirs) = match checked {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = store.discard(staged);
                        return Err(e);
                    }
                };
                let (c, r) = (mine.rate(), theirs.rate());
                let held = humantime::format_duration(self.learning.holdout);
                if mine.scored == 0 || theirs.scored == 0 {
                    store.discard(staged)?;
                    return Ok(Learned {
                        job,
                        result: LearnResult::Rejected,
                        detector: None,
                        message: format!(
                            "retrained model {} rejected: the last {held} of history hold no run of three windows to check it against the running model on (learning.holdout); keeping the running model",
                            candidate.id()
                        ),
                    });
                }
                if c > r {
                    store.discard(staged)?;
                    return Ok(Learned {
                        job,
                        result: LearnResult::Rejected,
                        detector: None,
                        message: format!(
                            "retrained model {} rejected: it alerts on {:.3} % of the last {held} of history ({} of {} windows), the running model on {:.3} % ({} of {}); keeping the running model",
                            candidate.id(),
                            c * 100.0,
                            mine.alerting,
                            mine.scored,
                            r * 100.0,
                            theirs.alerting,
                            theirs.scored
                        ),
                    });
                }
                let path = store.commit(staged)?;
                let loaded = ModelSet::load(&self.model_dir)?;
                let id = loaded.id().to_string();
                Ok(Learned {
                    job,
                    result: LearnResult::Promoted,
                    detector: Some((self.detector)(loaded)?),
                    message: format!(
                        "retrained model {id} promoted: it alerts on {:.3} % of the last {held} of history ({} of {} windows), the running model on {:.3} % ({} of {}); installed at {}",
                        c * 100.0,
                        mine.alerting,
                        mine.scored,
                        r * 100.0,
                        theirs.alerting,
                        theirs.scored,
                        path.display()
                    ),
                })
            }
        }
    }

    /// One model per window length from the history in `range`.
    fn train(&self, range: TimeRange) -> anyhow::Result<ModelSet> {
        let mut bundles = Vec::new();
        let spans = crate::feedback::incidents::training_spans(
            &self.feedback_file,
            &self.alert_log,
            now_unix() as f64,
        );
        for &omega in self.scales.omegas() {
            let set = history::training_set(&self.history_dir, omega, range, &spans)?;
            if set.windows.len() < 10 {
                bail!(
                    "{}: only {} windows of {omega} s fit for training in the range (of {} recorded)",
                    self.history_dir.display(),
                    set.windows.len(),
                    set.rows
                );
            }
            let opts = TrainOptions {
                hidden: self.learning.hidden,
                epochs: self.learning.epochs,
                seed: self.learning.seed,
                threshold_rule: ThresholdRule::default(),
                // As `netanom train` caps them: a week at ω = 0.5 s in minutes.
                max_runs_per_epoch: Some(100_000),
                max_validation_runs: Some(50_000),
                scaling: self.learning.scaling,
                smoothing_packets: self.learning.smoothing.map(f64::from),
                load_augment: self.learning.load_augment.map(f64::from),
                spot_median_s: self.learning.spot_median.map_or(0.0, |d| d.as_secs_f64()),
                ..TrainOptions::default()
            }
            .for_omega(omega.secs_f64());
            tracing::info!(
                omega_s = %omega,
                windows = set.windows.len(),
                left_out_alerted = set.excluded_alerted,
                benign_kept = set.included_benign,
                benign_incidents = %spans.benign_incidents.join(","),
                left_out_near_alert = set.excluded_near_alert,
                left_out_drops = set.excluded_drops,
                epochs = opts.epochs,
                scaling = opts.scaling.as_str(),
                "training a model from the feature history"
            );
            let trained = train_segments(&set.windows, &set.breaks, &opts, |_| {})
                .with_context(|| format!("training the model of ω = {omega} s"))?;
            let data = TrainingData {
                files: vec![self.history_dir.display().to_string()],
                start_unix: set.start_ns as f64 / 1e9,
                end_unix: set.end_ns as f64 / 1e9,
            };
            bundles.push(Bundle::from_trained(trained, omega, data)?);
        }
        Ok(ModelSet::new(bundles)?)
    }

    /// The recorded rows of every scale in `range`, shortest ω first.
    fn rows(&self, range: TimeRange) -> anyhow::Result<Vec<Vec<HistoryRow>>> {
        let scan = history::scan(&self.history_dir)?;
        Ok(self
            .scales
            .omegas()
            .iter()
            .map(|o| scan.get(*o).map(|s| s.read(range).rows).unwrap_or_default())
            .collect())
    }
}

/// How many windows of `rows` (per scale, as `scales`) alert under `scales`, scored in
/// sequence as the daemon scores them (a gap restarts the run of three).
pub fn alert_rate(scales: Vec<Scale>, rows: &[Vec<HistoryRow>]) -> AlertRate {
    let mut out = AlertRate::default();
    for (mut scale, rows) in scales.into_iter().zip(rows) {
        for r in rows {
            let w = Window {
                start_ns: r.start_ns,
                end_ns: r.end_ns,
                features: r.features,
                talkers: Default::default(),
                contributors: Default::default(),
                distinct_estimated: r.distinct_estimated,
                late_packets: 0,
                after_time_jump: false,
                incomplete: false,
            };
            if let Ok(judged) = scale.push(w) {
                if judged.score.is_some() {
                    out.scored += 1;
                    out.alerting += u64::from(judged.alerting);
                }
            }
        }
    }
    out
}
