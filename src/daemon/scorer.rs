//! The scorer thread: normalises each window, scores runs of three, tracks incidents and
//! writes alert events; reloads its model on request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use crossbeam_channel::{select, Receiver, Sender};

use crate::detect::incident::{
    EndReason, IncidentConfig, IncidentEvent, IncidentTracker, ScoredWindow,
};
use crate::detect::score::{Scale, ThresholdForScales};
use crate::detect::threshold::ThresholdConfig;
use crate::feedback::store::Follower;
use crate::feedback::{Action, IncidentFacts};
use crate::history::HistoryHandle;
use crate::model::state::{self as threshold_state, SavedScale};
use crate::model::ModelSet;
use crate::output::alerts::{
    describe, AlertContext, AlertEvent, AlertFile, AlertLog, Explanation, Flush, QUEUE_CAPACITY,
};
use crate::output::eve::{EveLog, Signatures};
use crate::output::metrics::{Health, Metrics};
use crate::timestamp::format_ts;
use crate::window::{Omega, Window};

use super::learner::{Job, Learned};

/// A finished window and the index of its scale (0: the shortest ω).
pub type ScaledWindow = (usize, Window);

/// What the scorer needs from a model set and the settings; swapped whole on reload.
pub struct Detector {
    /// One per window length, shortest first (one for the paper's method); none while
    /// learning (no model yet).
    pub scales: Vec<Scale>,
    pub context: AlertContext,
    pub incident: IncidentConfig,
    pub top_features: usize,
    /// When the model was trained (the oldest of its bundles), Unix seconds.
    pub created_unix: Option<u64>,
    /// How the scales' thresholds are chosen.
    pub thresholds: ThresholdConfig,
}

impl Detector {
    /// Builds a detector from a loaded model set, thresholds chosen by `thresholds`.
    pub fn new(
        set: ModelSet,
        thresholds: &ThresholdConfig,
        host: String,
        incident: IncidentConfig,
        top_features: usize,
    ) -> Result<Self, ThresholdForScales> {
        let context = AlertContext {
            host,
            model_id: set.id().to_string(),
            omegas: set.scales().omegas().to_vec(),
        };
        let created_unix = set.bundles().iter().map(|b| b.meta.created_unix).min();
        Ok(Self {
            scales: Scale::from_set(set, thresholds)?,
            context,
            incident,
            top_features,
            created_unix,
            thresholds: *thresholds,
        })
    }

    /// Continues each scale's adaptive threshold from the state saved in `model_dir`, where
    /// it belongs to the same bundle and ω. A missing file is no state; an unreadable or
    /// corrupt one is named in a warning and the models' calibration is used.
    pub fn restore_thresholds(&mut self, model_dir: &std::path::Path) {
        let saved = match threshold_state::load(model_dir) {
            Ok(Some(saved)) => saved,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("{e}; the adaptive thresholds start from the model's calibration");
                return;
            }
        };
        for sc in &mut self.scales {
            let Some(s) = saved
                .iter()
                .find(|s| s.omega == sc.omega && s.model_id == sc.model_id)
            else {
                continue;
            };
            match sc.threshold.restore(s.state.clone()) {
                Ok(()) => tracing::info!(
                    omega_s = %sc.omega,
                    model_id = %sc.model_id,
                    threshold = sc.threshold.value(),
                    n = s.state.n,
                    n_t = s.state.n_t,
                    excesses = s.state.excesses.len(),
                    "adaptive threshold state loaded from {}",
                    threshold_state::state_path(model_dir).display()
                ),
                Err(e) => tracing::warn!(
                    omega_s = %sc.omega,
                    "the saved adaptive threshold state is invalid ({e}); starting from the model's calibration"
                ),
            }
        }
    }

    /// The adaptive thresholds' states to save (scales running SPOT).
    fn saved_thresholds(&self) -> Vec<SavedScale> {
        self.scales
            .iter()
            .filter_map(|sc| {
                sc.threshold.spot().map(|state| SavedScale {
                    omega: sc.omega,
                    model_id: sc.model_id.clone(),
                    state: state.clone(),
                })
            })
            .collect()
    }

    /// No model yet (learning mode): windows of `omegas` are recorded, not scored.
    pub fn waiting(
        omegas: &[Omega],
        host: String,
        incident: IncidentConfig,
        top_features: usize,
    ) -> Self {
        Self {
            scales: Vec::new(),
            context: AlertContext {
                host,
                model_id: String::new(),
                omegas: omegas.to_vec(),
            },
            incident,
            top_features,
            created_unix: None,
            thresholds: ThresholdConfig::default(),
        }
    }

    /// True when a model is loaded.
    pub fn has_model(&self) -> bool {
        !self.scales.is_empty()
    }

    /// The thresholds in force, shortest ω first.
    fn thresholds(&self) -> Vec<f64> {
        self.scales.iter().map(|s| s.threshold.value()).collect()
    }

    /// Publishes the model in force to the metrics.
    fn publish(&self, metrics: &Metrics) {
        if !self.has_model() {
            metrics.model_loaded.set(0);
            return;
        }
        let omegas: Vec<String> = self.scales.iter().map(|s| s.omega.to_string()).collect();
        metrics.set_model(&self.context.model_id, &omegas.join(","));
        for s in &self.scales {
            metrics.set_scale_threshold(s.omega, &s.threshold);
        }
        if let Some(s) = self.scales.first() {
            metrics.threshold.set(s.threshold.value());
        }
    }
}

/// Incident id prefix: the start time of this model's tracker, and the reload count so that
/// a reload within the same second never repeats an id.
fn incident_prefix(reloads: u32) -> String {
    let start = crate::detect::incident::default_id_prefix(std::time::SystemTime::now());
    if reloads == 0 {
        start
    } else {
        format!("{start}r{reloads}")
    }
}

/// How long a failing alert log is quiet in the daemon's log between two reports.
const ALERT_LOG_REPORT_EVERY: Duration = Duration::from_secs(60);

/// Requests from the main and capture threads.
pub enum Control {
    /// The windows are about to stop for this reason (sent before the window queue closes).
    Ending(EndReason),
    /// Use a new model and settings (SIGHUP) and reopen (or switch) the alert log.
    Reload(Box<Reload>),
    /// Reopen the alert log only (the model could not be reloaded).
    ReopenLog,
    /// The learner finished a job (a new model to run, or why not).
    Learned(Box<Learned>),
}

/// What a reload does to the EVE log.
pub enum EveReload {
    /// `alerts.eve_path` unchanged: reopen it (if on).
    Same,
    /// `alerts.eve_path` emptied: no EVE log any more.
    Off,
    /// A new `alerts.eve_path`, already opened by the main thread.
    Open(AlertFile),
}

/// What a successful reload hands the scorer.
pub struct Reload {
    /// The new model and alert settings.
    pub detector: Detector,
    /// A new `alerts.path`, already opened by the main thread; `None`: reopen the same path.
    pub log_file: Option<AlertFile>,
    /// What becomes of the EVE log.
    pub eve: EveReload,
    /// `alerts.fsync`.
    pub fsync: bool,
    /// `model.dir`: where the adaptive thresholds' state is saved from now on.
    pub model_dir: std::path::PathBuf,
}

/// The scoring side of the pipeline.
pub struct Scorer {
    detector: Detector,
    tracker: IncidentTracker<Explanation>,
    log: AlertLog,
    metrics: Arc<Metrics>,
    health: Health,
    /// Reloads that changed the model, for incident ids that stay unique.
    reloads: u32,
    /// Windows received and windows scored, for the closing log line.
    windows: u64,
    scored: u64,
    /// Since when the alert log fails (events queued), and when that was last reported.
    log_failing: Option<(Instant, Instant)>,
    /// The Suricata EVE log, when `alerts.eve_path` is set.
    eve: Option<EveLog>,
    /// The EVE signature of each open incident, kept whether or not the EVE log is on, so a
    /// reload that turns it off and on again does not change an open incident's signature.
    signatures: Signatures,
    /// Since when the EVE log fails, and when that was last reported.
    eve_failing: Option<(Instant, Instant)>,
    /// `in_iface` of EVE records (the live interface), also for an EVE log a reload turns on.
    eve_iface: Option<String>,
    /// Why the open incident ends when the window queue closes.
    end_reason: EndReason,
    /// Test hook (debug builds): panic at this window, to exercise the failure path.
    panic_at_window: Option<u64>,
    /// The feature history recorder, when `[history]` is on.
    history: Option<HistoryHandle>,
    /// When to ask the learner for a model, when `[learning]` is on.
    learning: Option<LearnPlan>,
    /// Where and how often the adaptive thresholds' state is saved.
    threshold_saving: Option<ThresholdSaving>,
    /// The operators' feedback rules, followed.
    feedback: Option<FeedbackRules>,
}

/// How often the feedback file is checked for new rules.
const FEEDBACK_POLL: Duration = Duration::from_secs(2);

/// The operators' rules as the scorer applies them.
pub struct FeedbackRules {
    /// The file, followed.
    follower: Follower,
    /// The last check.
    last_poll: Option<Instant>,
    /// The open incidents' facts and the suppress rules matching each.
    open: HashMap<String, (IncidentFacts, Vec<String>)>,
    /// The last read failed (reported once until it works again).
    failing: bool,
}

/// Saving the adaptive thresholds' state to the model directory.
pub struct ThresholdSaving {
    /// `model.dir`.
    pub dir: std::path::PathBuf,
    /// `alerts.threshold_save_interval`.
    pub every: Duration,
    /// The last save (or the start).
    pub last: Instant,
    /// A save failed and was reported: the next failure is logged at debug only.
    pub failing: bool,
}

/// When the scorer asks the learner to train (capture time, ns).
pub struct LearnPlan {
    /// The learner's job queue.
    pub jobs: Sender<Job>,
    /// Learning mode: history to record before the first model.
    pub learn_for_ns: Option<i64>,
    /// Retrain this often.
    pub retrain_every_ns: Option<i64>,
    /// Start of the history learning mode counts from (the oldest recorded window, or the
    /// first window of this run); after a training, the end of its history.
    pub since_ns: Option<i64>,
    /// A job was sent and not answered yet.
    pub in_flight: bool,
    /// Replaying files: wait for each answer, so a replay gives the same result every time.
    pub wait: bool,
}

/// The scorer stopped on an internal error (a panic); the open incident was ended first.
#[derive(Debug, thiserror::Error)]
#[error("the scorer stopped on an internal error: {0}")]
pub struct ScorerFailed(pub String);

/// Debug builds only: `NETANOM_FAULT_INJECT=scorer-panic-at-window=N` (or
/// `capture-panic-at-window=N`) makes that thread panic at its N-th window, to test the
/// failure path for real; release builds ignore the variable.
pub(crate) fn injected_fault(name: &str) -> Option<u64> {
    crate::fault::injected(name)
}

/// The text of a panic payload.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

impl Scorer {
    /// A scorer writing events to `log`.
    pub fn new(detector: Detector, log: AlertLog, metrics: Arc<Metrics>, health: Health) -> Self {
        let tracker = IncidentTracker::new(
            detector.incident,
            &detector.context.omegas,
            incident_prefix(0),
        );
        detector.publish(&metrics);
        Self {
            detector,
            tracker,
            log,
            metrics,
            health,
            reloads: 0,
            windows: 0,
            scored: 0,
            log_failing: None,
            eve: None,
            signatures: Signatures::default(),
            eve_failing: None,
            eve_iface: None,
            end_reason: EndReason::Shutdown,
            panic_at_window: injected_fault("scorer-panic-at-window"),
            history: None,
            learning: None,
            threshold_saving: None,
            feedback: None,
        }
    }

    /// Applies the operators' rules in `file` (`netanom feedback`), re-read every 2 s.
    pub fn with_feedback(mut self, file: std::path::PathBuf) -> Self {
        self.feedback = Some(FeedbackRules {
            follower: Follower::new(file),
            last_poll: None,
            open: HashMap::new(),
            failing: false,
        });
        self.poll_feedback(true);
        self
    }

    /// Reads new feedback rules (at most every 2 s unless `now`), logs them, updates the
    /// metrics and applies them to the open incidents.
    fn poll_feedback(&mut self, force: bool) {
        let Some(fb) = self.feedback.as_mut() else {
            return;
        };
        if !force && fb.last_poll.is_some_and(|t| t.elapsed() < FEEDBACK_POLL) {
            return;
        }
        fb.last_poll = Some(Instant::now());
        let path = fb.follower.path().display().to_string();
        match fb.follower.poll() {
            Ok(None) => {}
            Ok(Some(skipped)) => {
                fb.failing = false;
                for s in skipped {
                    tracing::warn!("{path}:{}: feedback line skipped: {}", s.line, s.reason);
                }
                tracing::info!(
                    rules = fb.follower.rules().len(),
                    file = %path,
                    "feedback rules read"
                );
            }
            Err(e) if !fb.failing => {
                fb.failing = true;
                tracing::warn!("{e}; the feedback rules read before stay in force");
            }
            Err(_) => {}
        }
        let now = wall_now();
        for (action, state, n) in fb.follower.rules().counts(now) {
            self.metrics
                .set_feedback_rules(action.as_str(), state.as_str(), n);
        }
        // A rule made while an incident is open applies to it at once.
        for (id, (facts, by)) in fb.open.iter_mut() {
            let now_by = fb.follower.rules().matching(Action::Suppress, facts, now);
            if !now_by.is_empty() && by.is_empty() {
                tracing::info!(incident = %id, rules = %now_by.join(","), "open incident suppressed by a new feedback rule");
                self.metrics.record_suppressed_by_feedback();
            }
            *by = now_by;
        }
        self.metrics.record_incident(false, self.firing());
    }

    /// The open, reported incidents that no suppress rule matches (the firing ones).
    fn firing(&self) -> usize {
        self.tracker
            .current()
            .filter(|inc| {
                self.feedback
                    .as_ref()
                    .is_none_or(|fb| fb.open.get(&inc.id).is_none_or(|(_, by)| by.is_empty()))
            })
            .count()
    }

    /// Saves the adaptive thresholds' state in `dir` every `every` and at the end.
    pub fn with_threshold_saving(mut self, dir: std::path::PathBuf, every: Duration) -> Self {
        self.threshold_saving = Some(ThresholdSaving {
            dir,
            every,
            last: Instant::now(),
            failing: false,
        });
        self
    }

    /// Writes the adaptive thresholds' state (when one runs); `force` ignores the interval.
    fn save_thresholds(&mut self, force: bool) {
        let Some(saving) = self.threshold_saving.as_mut() else {
            return;
        };
        if !force && saving.last.elapsed() < saving.every {
            return;
        }
        saving.last = Instant::now();
        let scales = self.detector.saved_thresholds();
        if scales.is_empty() {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        match threshold_state::save(&saving.dir, &scales, now) {
            Ok(()) => {
                saving.failing = false;
                let summary: Vec<String> = scales
                    .iter()
                    .map(|s| {
                        format!(
                            "ω = {} s: n {} n_t {} threshold {}",
                            s.omega,
                            s.state.n,
                            s.state.n_t,
                            s.state.threshold(self.detector.thresholds.false_rate)
                        )
                    })
                    .collect();
                tracing::debug!(
                    path = %threshold_state::state_path(&saving.dir).display(),
                    state = %summary.join("; "),
                    "adaptive threshold state saved"
                );
            }
            Err(e) if !saving.failing => {
                saving.failing = true;
                tracing::warn!("{e}; the adaptive thresholds will restart from the model's calibration after a restart (retrying every {})", humantime::format_duration(saving.every));
            }
            Err(e) => tracing::debug!("{e}"),
        }
    }

    /// Also writes every event as a Suricata EVE record to `eve`; `iface` is the live
    /// interface (`in_iface`), kept for an EVE log a reload turns on.
    pub fn with_eve(mut self, eve: Option<EveLog>, iface: Option<String>) -> Self {
        self.eve = eve;
        self.eve_iface = iface;
        self
    }

    /// Asks `plan`'s learner for models (learning mode, retraining).
    pub fn with_learning(mut self, plan: Option<LearnPlan>) -> Self {
        self.learning = plan;
        self
    }

    /// Records every window (with its score and whether it alerted) to the feature history.
    pub fn with_history(mut self, history: Option<HistoryHandle>) -> Self {
        self.history = history;
        self
    }

    /// Handles windows and control messages until the window channel closes, then ends any
    /// open incident (reason: shutdown, or what a `Control::Ending` said) so its end event is
    /// written. A panic while handling a window ends the incident (`internal_error`) and
    /// returns an error instead of taking the incident down with the thread.
    pub fn run(
        mut self,
        windows: Receiver<ScaledWindow>,
        control: Receiver<Control>,
    ) -> Result<(), ScorerFailed> {
        let result = self.serve(&windows, &control);
        if let Err(e) = &result {
            tracing::error!("{e}");
            self.end_reason = EndReason::InternalError;
        }
        self.end_incident(self.end_reason);
        self.save_thresholds(true);
        // Last try for events the alert log could not take.
        if self.log.queued() > 0 {
            let report = self.log.flush();
            self.after_log(report);
        }
        if let Some(report) = self
            .eve
            .as_mut()
            .filter(|e| e.log().queued() > 0)
            .map(|e| e.log_mut().flush())
        {
            self.after_eve(report);
        }
        if let Some(eve) = self.eve.as_ref().filter(|e| e.log().queued() > 0) {
            tracing::error!(
                lost = eve.log().queued(),
                path = %eve.log().path().display(),
                "EVE records could not be written to the EVE log before exit; the events are in this log (\"anomaly incident\" lines)"
            );
        }
        if self.log.queued() > 0 {
            tracing::error!(
                lost = self.log.queued(),
                path = %self.log.path().display(),
                "alert events could not be written to the alert log before exit; they are in this log (\"anomaly incident\" lines)"
            );
        }
        tracing::info!(
            windows = self.windows,
            scored = self.scored,
            "scorer finished"
        );
        result
    }

    /// The loop of [`Self::run`].
    fn serve(
        &mut self,
        windows: &Receiver<ScaledWindow>,
        control: &Receiver<Control>,
    ) -> Result<(), ScorerFailed> {
        loop {
            select! {
                recv(windows) -> w => match w {
                    Ok(w) => {
                        self.guarded_window(w)?;
                        self.wait_for_learner(control);
                    }
                    Err(_) => break,
                },
                recv(control) -> c => match c {
                    Ok(c) => self.control(c),
                    // The main thread is gone: keep draining windows.
                    Err(_) => {
                        for w in windows.iter() {
                            self.guarded_window(w)?;
                        }
                        break;
                    }
                },
            }
        }
        // A reason sent just before the queue closed may still be waiting.
        while let Ok(c) = control.try_recv() {
            self.control(c);
        }
        Ok(())
    }

    /// Replaying with a job in flight: handles control messages until the learner answers.
    fn wait_for_learner(&mut self, control: &Receiver<Control>) {
        while self
            .learning
            .as_ref()
            .is_some_and(|p| p.wait && p.in_flight)
        {
            match control.recv() {
                Ok(c) => self.control(c),
                Err(_) => break,
            }
        }
    }

    /// After a window ending at `end_ns` of scale `scale`: sends the learner a job when one is
    /// due (learning mode: enough history; retraining: `retrain_every` since the last one).
    fn plan_learning(&mut self, scale: usize, start_ns: i64, end_ns: i64) {
        let has_model = self.detector.has_model();
        let Some(plan) = self.learning.as_mut() else {
            return;
        };
        let since = *plan.since_ns.get_or_insert(start_ns);
        // The shortest scale's windows set the pace (they close first).
        if scale != 0 || plan.in_flight {
            return;
        }
        let job = if has_model {
            match plan.retrain_every_ns {
                Some(every) if end_ns - since >= every => Job::Retrain { until_ns: end_ns },
                _ => return,
            }
        } else {
            let Some(learn_for) = plan.learn_for_ns else {
                return;
            };
            let progress = ((end_ns - since) as f64 / learn_for as f64).clamp(0.0, 1.0);
            self.metrics.learning_progress_ratio.set(progress);
            if end_ns - since < learn_for {
                return;
            }
            Job::First { until_ns: end_ns }
        };
        if plan.wait {
            // Replaying faster than the recorder's flush period: let it catch up first.
            if let Some(h) = self.history.as_ref() {
                h.flush_wait(Duration::from_secs(30));
            }
        }
        match plan.jobs.try_send(job) {
            Ok(()) => {
                plan.in_flight = true;
                tracing::info!(
                    job = ?job,
                    history_s = (end_ns - since) as f64 / 1e9,
                    "training a model from the feature history in the background"
                );
            }
            Err(e) => tracing::error!("the learner is gone: {e}"),
        }
    }

    /// Takes a learner's answer: runs the new model, or says why not.
    fn learned(&mut self, learned: Learned) {
        if let Some(plan) = self.learning.as_mut() {
            plan.in_flight = false;
            // The next retraining counts from this job's history, whatever its result.
            plan.since_ns = Some(learned.job.until_ns());
        }
        let Some(new) = learned.detector else {
            return;
        };
        // Scores of the old and new model are not comparable: end the incident.
        self.end_incident(EndReason::SequenceBreak);
        self.detector = new;
        self.reloads += 1;
        self.tracker = IncidentTracker::new(
            self.detector.incident,
            &self.detector.context.omegas,
            incident_prefix(self.reloads),
        );
        self.detector.publish(&self.metrics);
        self.metrics.learning_progress_ratio.set(1.0);
        tracing::info!(
            model_id = %self.detector.context.model_id,
            thresholds = ?self.detector.thresholds(),
            "new model loaded: detecting with it"
        );
    }

    /// [`Self::window`], with a panic turned into an error.
    fn guarded_window(&mut self, (scale, w): ScaledWindow) -> Result<(), ScorerFailed> {
        let start = w.start_ns;
        let end = w.end_ns;
        let row = match (
            self.history.as_mut(),
            self.detector.context.omegas.get(scale),
        ) {
            (Some(h), Some(&omega)) => Some(h.row(&w, omega)),
            _ => None,
        };
        let score =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.window(scale, w)))
                .map_err(|payload| {
                    ScorerFailed(format!(
                        "panic on the window at {}: {}",
                        format_ts(start),
                        panic_text(payload.as_ref())
                    ))
                })?;
        if let (Some(h), Some(mut row)) = (self.history.as_mut(), row) {
            row.score = score.map(|(s, _)| s);
            row.alerted = score.is_some_and(|(_, alerted)| alerted);
            h.record(row);
        }
        self.plan_learning(scale, start, end);
        Ok(())
    }

    /// Applies a request from the main thread.
    fn control(&mut self, c: Control) {
        match c {
            Control::Reload(reload) => {
                let Reload {
                    detector: new,
                    log_file,
                    eve,
                    fsync,
                    model_dir,
                } = *reload;
                let new = Box::new(new);
                // The same model (its id is its weights' hash): the adaptive thresholds have
                // moved since its state was saved, so they are compared by their settings,
                // not their values.
                let same_model = new.context.model_id == self.detector.context.model_id;
                if let Some(saving) = self.threshold_saving.as_mut() {
                    saving.dir = model_dir;
                }
                if same_model {
                    // A routine reload (logrotate): keep the three-window run, the thresholds'
                    // state and the open incident, take the other settings.
                    let d = &mut self.detector;
                    d.context = new.context;
                    d.top_features = new.top_features;
                    if d.thresholds != new.thresholds {
                        d.thresholds = new.thresholds;
                        for sc in &mut d.scales {
                            sc.threshold.reconfigure(&new.thresholds);
                        }
                        d.publish(&self.metrics);
                    }
                    if d.incident != new.incident {
                        d.incident = new.incident;
                        self.tracker.set_config(new.incident);
                    }
                } else {
                    // Scores of the old and new model are not comparable: end the incident.
                    self.end_incident(EndReason::SequenceBreak);
                    self.detector = *new;
                    self.reloads += 1;
                    self.tracker = IncidentTracker::new(
                        self.detector.incident,
                        &self.detector.context.omegas,
                        incident_prefix(self.reloads),
                    );
                    self.detector.publish(&self.metrics);
                }
                tracing::info!(
                    model_id = %self.detector.context.model_id,
                    thresholds = ?self.detector.thresholds(),
                    model_changed = !same_model,
                    "settings reloaded"
                );
                self.log.set_fsync(fsync);
                match log_file {
                    Some(file) => {
                        let old = self.log.path().to_path_buf();
                        self.log.switch(file);
                        tracing::info!(
                            path = %self.log.path().display(),
                            old = %old.display(),
                            "alert log switched to the new alerts.path"
                        );
                        let report = self.log.flush();
                        self.after_log(report);
                    }
                    None => self.reopen_log(),
                }
                self.reload_eve(eve, fsync);
            }
            Control::ReopenLog => {
                self.reopen_log();
                self.reopen_eve();
            }
            Control::Ending(reason) => self.end_reason = reason,
            Control::Learned(learned) => self.learned(*learned),
        }
    }

    /// Opens the alert log's path again (SIGHUP) and writes what is queued.
    fn reopen_log(&mut self) {
        match self.log.reopen() {
            Ok(()) => tracing::info!(path = %self.log.path().display(), "alert log reopened"),
            Err(e) => {
                self.metrics.record_alert_write_error();
                tracing::error!("{e}; events wait until the path can be opened");
            }
        }
        let report = self.log.flush();
        self.after_log(report);
    }

    /// Counts what an alert log attempt did and reports failures and recovery in the log
    /// (the first failure, then at most every minute while it lasts, and the recovery).
    fn after_log(&mut self, report: Flush) {
        report_flush(
            EventFile::Alerts,
            &mut self.log,
            &mut self.log_failing,
            &self.metrics,
            report,
        );
    }

    /// As [`Self::after_log`] for the EVE log.
    fn after_eve(&mut self, report: Flush) {
        if let Some(eve) = self.eve.as_mut() {
            report_flush(
                EventFile::Eve,
                eve.log_mut(),
                &mut self.eve_failing,
                &self.metrics,
                report,
            );
        }
    }

    /// Opens the EVE log's path again (SIGHUP) and writes what is queued.
    fn reopen_eve(&mut self) {
        let Some(eve) = self.eve.as_mut() else {
            return;
        };
        match eve.log_mut().reopen() {
            Ok(()) => tracing::info!(path = %eve.log().path().display(), "EVE log reopened"),
            Err(e) => {
                self.metrics.record_eve_log(1, eve.log().queued(), 0);
                tracing::error!("{e}; EVE records wait until the path can be opened");
            }
        }
        let report = eve.log_mut().flush();
        self.after_eve(report);
    }

    /// Applies a reload's `alerts.eve_path`.
    fn reload_eve(&mut self, eve: EveReload, fsync: bool) {
        match eve {
            EveReload::Same => {
                if let Some(e) = self.eve.as_mut() {
                    e.log_mut().set_fsync(fsync);
                }
                self.reopen_eve();
            }
            EveReload::Off => {
                if let Some(mut e) = self.eve.take() {
                    let report = e.log_mut().flush();
                    let lost = e.log().queued();
                    tracing::info!(
                        path = %e.log().path().display(),
                        written = report.written,
                        lost,
                        "EVE log turned off"
                    );
                }
                self.eve_failing = None;
            }
            EveReload::Open(file) => {
                match self.eve.as_mut() {
                    Some(e) => {
                        let old = e.log().path().to_path_buf();
                        e.log_mut().set_fsync(fsync);
                        e.log_mut().switch(file);
                        tracing::info!(
                            path = %e.log().path().display(),
                            old = %old.display(),
                            "EVE log switched to the new alerts.eve_path"
                        );
                    }
                    None => {
                        let log = AlertLog::with_file(file, fsync, QUEUE_CAPACITY);
                        tracing::info!(path = %log.path().display(), "EVE log turned on");
                        self.eve = Some(EveLog::new(log, self.eve_iface.clone()));
                    }
                }
                if let Some(e) = self.eve.as_mut() {
                    let report = e.log_mut().flush();
                    self.after_eve(report);
                }
            }
        }
    }

    /// One closed window of scale `scale`: score it, update the incident, write events; its
    /// score and whether it alerted, if scored.
    fn window(&mut self, scale: usize, w: Window) -> Option<(f64, bool)> {
        // A window comes every ω: retry events the alert log could not take.
        if let Some(report) = self.log.retry(Instant::now()) {
            self.after_log(report);
        }
        if let Some(report) = self
            .eve
            .as_mut()
            .and_then(|e| e.log_mut().retry(Instant::now()))
        {
            self.after_eve(report);
        }
        self.metrics.record_window(&w);
        self.windows += 1;
        self.poll_feedback(false);
        if self.panic_at_window == Some(self.windows) {
            panic!("injected fault (NETANOM_FAULT_INJECT)");
        }
        if let Some(created) = self.detector.created_unix {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(created);
            self.metrics
                .model_age_seconds
                .set(now.saturating_sub(created) as f64);
        }
        if !self.detector.has_model() {
            // Learning: the window is recorded (by the caller), nothing is scored. The
            // pipeline is alive all the same.
            self.health.beat();
            return None;
        }
        let Some(sc) = self.detector.scales.get_mut(scale) else {
            tracing::error!(scale, "window of an unknown scale dropped");
            return None;
        };
        let start_ns = w.start_ns;
        let started = Instant::now();
        let judged = match sc.push(w) {
            Ok(judged) => {
                // Alive means windows really get through the model (the watchdog follows this).
                self.health.beat();
                // A collapsed clock jump or a dropped window broke the run of windows.
                if judged.sequence_broken {
                    self.end_incident(EndReason::SequenceBreak);
                }
                judged
            }
            Err(e) => {
                self.end_incident(EndReason::SequenceBreak);
                tracing::warn!(window_start = %format_ts(start_ns), "window not scored: {e}");
                return None;
            }
        };
        let score = judged.score?;
        self.scored += 1;
        let sc = &self.detector.scales[scale];
        if scale == 0 {
            if let Some(w) = sc.stage.last() {
                self.metrics.record_drift(sc.features_outside(w));
            }
        }
        self.metrics.record_score(
            sc.omega,
            scale == 0,
            score,
            judged.alerting,
            &sc.threshold,
            started.elapsed(),
        );
        self.save_thresholds(false);
        let d = &self.detector;
        let sc = &d.scales[scale];
        let recent = sc.stage.recent();
        let Some(w) = recent.back() else {
            return Some((score, judged.alerting));
        };
        let scored = ScoredWindow {
            scale,
            start_ns: w.start_ns,
            end_ns: w.end_ns,
            score,
            threshold: judged.threshold,
        };
        // The score covers three windows: explain the one that left the training range most.
        // An alerting window's culprits decide its incident.
        let explained = scored
            .is_alerting()
            .then(|| Explanation::of_run(recent.iter(), &sc.min, &sc.max, d.top_features));
        let culprits = explained.as_ref().map_or(&[][..], |e| &e.culprits[..]);
        let explain = || explained.clone().unwrap_or_default();
        let events = self.tracker.observe(scored, culprits, explain);
        self.metrics
            .record_suppressed(self.tracker.take_suppressed());
        let alerts: Vec<AlertEvent> = events
            .iter()
            .map(|e| AlertEvent::from_incident_event(&d.context, e, explain))
            .collect();
        for (event, alert) in events.iter().zip(&alerts) {
            self.emit(event, alert);
        }
        Some((score, judged.alerting))
    }

    /// Ends the open incidents (if any) for `reason` and writes their end events.
    fn end_incident(&mut self, reason: EndReason) {
        let events = self.tracker.flush(reason);
        self.metrics
            .record_suppressed(self.tracker.take_suppressed());
        for event in &events {
            let alert = AlertEvent::from_incident_event(&self.detector.context, event, || {
                Explanation::default()
            });
            self.emit(event, &alert);
        }
    }

    /// Writes an event to the alert log (flushed) and the tracing log, and counts it. An
    /// incident that a suppress rule matches is written with `suppressed_by` and not counted
    /// as firing.
    fn emit(&mut self, event: &IncidentEvent<Explanation>, alert: &AlertEvent) {
        let started = matches!(event, IncidentEvent::Start { .. });
        let mut alert = alert.clone();
        if let Some(fb) = self.feedback.as_mut() {
            let now = wall_now();
            let value = serde_json::to_value(&alert).unwrap_or_default();
            if let Some(facts) = IncidentFacts::of_event(&value) {
                let id = facts.id.clone();
                let entry = fb
                    .open
                    .entry(id.clone())
                    .or_insert_with(|| (IncidentFacts::default(), Vec::new()));
                let mut all = std::mem::take(&mut entry.0);
                if all.id.is_empty() {
                    all = facts;
                } else {
                    all.merge(facts);
                }
                let by = fb.follower.rules().matching(Action::Suppress, &all, now);
                // Counted once, when it becomes suppressed: at its start, or later when a
                // culprit joins that a rule names or a rule made while it is open matches.
                if !by.is_empty() && entry.1.is_empty() {
                    self.metrics.record_suppressed_by_feedback();
                }
                *entry = (all, by.clone());
                alert.suppressed_by = by;
                if matches!(event, IncidentEvent::End { .. }) {
                    fb.open.remove(&id);
                }
            }
        }
        let suppressed = !alert.suppressed_by.is_empty();
        self.metrics
            .record_incident(started && !suppressed, self.firing());
        let report = self.log.write(&alert);
        self.after_log(report);
        let signature = self.signatures.of(&alert);
        if let Some(eve) = self.eve.as_mut() {
            let report = eve.write(&alert, signature);
            self.after_eve(report);
        }
        let json = serde_json::to_string(&alert).unwrap_or_default();
        // The top features and who caused them, for a reader of the journal.
        let explained = describe(&alert.top_features);
        let suppressed_by = alert.suppressed_by.join(",");
        let culprits = alert
            .incident
            .culprits
            .iter()
            .map(|c| format!("{} ({})", c.ip, c.role))
            .collect::<Vec<_>>()
            .join(", ");
        if started {
            tracing::warn!(
                incident = %alert.incident.id,
                score = alert.score,
                threshold = alert.threshold,
                %culprits,
                %explained,
                %suppressed_by,
                event = %json,
                "anomaly incident started{}",
                if suppressed { " (suppressed by feedback)" } else { "" }
            );
        } else if let Some(c) = &alert.culprit {
            tracing::warn!(
                incident = %alert.incident.id,
                culprit = %c.ip,
                role = %c.role,
                %culprits,
                %explained,
                event = %json,
                "anomaly incident culprit joined"
            );
        } else {
            tracing::warn!(
                incident = %alert.incident.id,
                peak_score = alert.incident.peak_score,
                duration_s = alert.incident.duration_s,
                %culprits,
                %explained,
                %suppressed_by,
                event = %json,
                "anomaly incident ended{}",
                if suppressed { " (suppressed by feedback)" } else { "" }
            );
        }
    }
}

/// Wall-clock Unix seconds (rules expire in human time).
fn wall_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The event files the scorer writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EventFile {
    /// `alerts.path`, netanom's JSON lines.
    Alerts,
    /// `alerts.eve_path`, Suricata EVE records.
    Eve,
}

impl EventFile {
    /// How messages name it.
    fn name(self) -> &'static str {
        match self {
            EventFile::Alerts => "alert log",
            EventFile::Eve => "EVE log",
        }
    }

    /// Its setting.
    fn key(self) -> &'static str {
        match self {
            EventFile::Alerts => "alerts.path",
            EventFile::Eve => "alerts.eve_path",
        }
    }
}

/// Counts what an attempt to write `log` did and reports failures and recovery in the daemon's
/// log (the first failure, then at most every minute while it lasts, and the recovery);
/// `failing` is since when it fails and when that was last reported.
fn report_flush(
    file: EventFile,
    log: &mut AlertLog,
    failing: &mut Option<(Instant, Instant)>,
    metrics: &Metrics,
    report: Flush,
) {
    let dropped = log.take_dropped();
    let queued = log.queued();
    match file {
        EventFile::Alerts => metrics.record_alert_log(report.errors.len(), queued, dropped),
        EventFile::Eve => metrics.record_eve_log(report.errors.len(), queued, dropped),
    }
    let (name, key) = (file.name(), file.key());
    let path = log.path().display().to_string();
    if report.reopened {
        tracing::info!(%path, "{name} reopened: the file at {key} was moved or deleted");
    }
    if dropped > 0 {
        tracing::error!(dropped, %path, "{} events dropped: the queue of events waiting for the {name} is full", if file == EventFile::Alerts { "alert" } else { "EVE" });
    }
    let now = Instant::now();
    if let Some(e) = report.errors.first() {
        match *failing {
            None => {
                tracing::error!(queued, log = name, "{e}");
                if queued > 0 {
                    *failing = Some((now, now));
                }
            }
            Some((since, last)) if now.duration_since(last) >= ALERT_LOG_REPORT_EVERY => {
                tracing::error!(
                    queued,
                    failing_s = now.duration_since(since).as_secs(),
                    "{name} still failing: {e}"
                );
                *failing = Some((since, now));
            }
            Some(_) => {}
        }
        for e in &report.errors[1..] {
            tracing::debug!("{e}");
        }
    }
    if queued == 0 {
        if let Some((since, _)) = failing.take() {
            tracing::info!(
                written = report.written,
                failing_s = now.duration_since(since).as_secs(),
                %path,
                "{name} writable again: queued events written"
            );
        }
    }
}
