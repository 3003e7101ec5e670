//! The Prometheus registry and every netanom metric, plus [`WrappingCounter`] for libpcap's
//! wrapping u32 drop counters.

use std::sync::Mutex;
use std::time::Duration;

use prometheus::{
    exponential_buckets, Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::detect::threshold::{InForce, Threshold};
use crate::window::Omega;
use crate::window::Window;

/// Prefix of every metric name (without its `_`).
pub const PREFIX: &str = "netanom";

// ---------------------------------------------------------------------------------------------
// Wrapping counters.

/// Turns successive readings of a u32 counter that wraps (libpcap's `ps_drop`, `ps_ifdrop`)
/// into a monotonic u64 total.
///
/// A reading below the previous one is taken as one wrap (`2^32 − last + new`). A counter that
/// restarted from 0 (a new capture handle) looks the same: call [`WrappingCounter::reset`] when
/// the handle is reopened. Readings must come often enough that the counter cannot move by
/// 2^32 between two of them (at 1 Mpps of drops that is over an hour; read every few seconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WrappingCounter {
    last: u32,
    total: u64,
}

impl WrappingCounter {
    /// A counter whose source starts at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a new reading; returns how much the counter advanced since the previous one.
    pub fn update(&mut self, reading: u32) -> u64 {
        let delta = u64::from(reading.wrapping_sub(self.last));
        self.last = reading;
        self.total += delta;
        delta
    }

    /// The source restarted from 0 (a new capture handle); the total is kept.
    pub fn reset(&mut self) {
        self.last = 0;
    }

    /// Sum of all increments.
    pub fn total(&self) -> u64 {
        self.total
    }
}

// ---------------------------------------------------------------------------------------------
// The metrics.

/// Every netanom metric. Names are given without the `netanom_` prefix, which the registry adds.
pub struct Metrics {
    registry: Registry,
    /// Last anomaly score (`netanom_anomaly_score`).
    pub anomaly_score: Gauge,
    /// Distribution of scores (`netanom_window_score`).
    pub window_score: Histogram,
    /// Threshold in force (`netanom_threshold`).
    pub threshold: Gauge,
    pub windows_total: IntCounter,
    pub windows_dropped_total: IntCounter,
    pub windows_scored_total: IntCounter,
    pub alert_windows_total: IntCounter,
    /// Incidents reported and not suppressed by feedback (`netanom_incidents_total`).
    pub incidents_total: IntCounter,
    /// Incidents not counted as firing, by reason (`netanom_incidents_suppressed_total{reason}`).
    incidents_suppressed: IntCounterVec,
    /// 1 while a reported incident that no feedback rule suppresses is open.
    pub incident_active: IntGauge,
    /// Feedback rules by action and state (`netanom_feedback_rules{action,state}`).
    feedback_rules: IntGaugeVec,
    /// Reported incidents open now (`netanom_incidents_open`).
    pub incidents_open: IntGauge,
    pub alert_write_errors_total: IntCounter,
    /// Alert events waiting to be written (`netanom_alert_events_queued`).
    pub alert_events_queued: IntGauge,
    /// Alert events dropped from the full queue (`netanom_alert_events_dropped_total`).
    pub alert_events_dropped_total: IntCounter,
    /// Failed EVE log calls (`netanom_eve_write_errors_total`).
    pub eve_write_errors_total: IntCounter,
    /// EVE records waiting to be written (`netanom_eve_events_queued`).
    pub eve_events_queued: IntGauge,
    /// EVE records dropped from the full queue (`netanom_eve_events_dropped_total`).
    pub eve_events_dropped_total: IntCounter,
    pub packets_total: IntCounter,
    pub bytes_total: IntCounter,
    pub decode_errors_truncated: IntCounter,
    pub decode_errors_malformed: IntCounter,
    pub late_packets_total: IntCounter,
    pub time_jumps_total: IntCounter,
    pub pcap_kernel_drops_total: IntCounter,
    pub pcap_interface_drops_total: IntCounter,
    pub scoring_seconds: Histogram,
    pub last_window_end_timestamp_seconds: Gauge,
    /// 1 while the live interface is open and readable (`netanom_capture_up`).
    pub capture_up: IntGauge,
    /// Failures of the live interface, each followed by reopening (`netanom_capture_errors_total`).
    pub capture_errors_total: IntCounter,
    /// Steps of the system clock seen by the capture (`netanom_clock_steps_total`).
    pub clock_steps_total: IntCounter,
    /// 1 while a model is loaded and scoring (`netanom_model_loaded`).
    pub model_loaded: IntGauge,
    /// Features of the last scored window outside the model's training range
    /// (`netanom_features_outside_training_range`): drift in view.
    pub features_outside_training_range: IntGauge,
    /// Learning mode: share of `learning.learn_for` recorded so far
    /// (`netanom_learning_progress_ratio`; 1 once a model is loaded).
    pub learning_progress_ratio: Gauge,
    /// Age of the running model (`netanom_model_age_seconds`).
    pub model_age_seconds: Gauge,
    /// Trainings of the learner by result (`netanom_retrains_total{result}`).
    retrains: IntCounterVec,
    /// Windows written to the feature history (`netanom_history_rows_total`).
    pub history_rows_total: IntCounter,
    /// History rows dropped because the recorder was behind (`netanom_history_rows_dropped_total`).
    pub history_rows_dropped_total: IntCounter,
    /// Failed history writes: journal, Parquet, retention (`netanom_history_write_errors_total`).
    pub history_write_errors_total: IntCounter,
    model_info: IntGaugeVec,
    /// Last score per window length (`netanom_scale_anomaly_score{omega_seconds}`).
    scale_score: GaugeVec,
    /// Threshold per window length (`netanom_scale_threshold{omega_seconds}`).
    scale_threshold: GaugeVec,
    /// The threshold rule in force per window length (`netanom_threshold_rule{omega_seconds,rule}`).
    threshold_rule: IntGaugeVec,
    /// Excesses the adaptive threshold keeps per window length (`netanom_threshold_excesses`).
    threshold_excesses: IntGaugeVec,
    /// The adaptive threshold's median baseline per window length
    /// (`netanom_threshold_baseline`).
    threshold_baseline: GaugeVec,
    /// Sustained runs of peaks the adaptive threshold did not learn from, per window length
    /// (`netanom_threshold_peak_runs_held`).
    threshold_peak_runs_held: IntGaugeVec,
    /// Per capture worker: libpcap's kernel and interface drop counters.
    pcap_drops: Mutex<Vec<(WrappingCounter, WrappingCounter)>>,
    /// Packets read per capture worker (`netanom_capture_packets_total{worker}`).
    capture_packets: IntCounterVec,
    /// libpcap drops per capture worker (`netanom_capture_drops_total{worker, kind}`).
    capture_drops: IntCounterVec,
    /// Merged windows fired without one of their parts (`netanom_windows_incomplete_total`).
    pub windows_incomplete_total: IntCounter,
    /// Partial windows by what became of them (`netanom_partials_total{source, result}`).
    partials: IntCounterVec,
}

/// Registers a new integer gauge `name` in `registry`.
fn int_gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::with_opts(Opts::new(name, help)).expect("valid gauge");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

/// Registers a new integer counter `name` in `registry`.
fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::with_opts(Opts::new(name, help)).expect("valid counter");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

/// Registers a new float gauge `name` in `registry`.
fn gauge(registry: &Registry, name: &str, help: &str) -> Gauge {
    let g = Gauge::with_opts(Opts::new(name, help)).expect("valid gauge");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

/// Registers a new histogram `name` with these bucket bounds in `registry`.
fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid histogram");
    registry
        .register(Box::new(h.clone()))
        .expect("unique metric");
    h
}

impl Metrics {
    /// Registers every metric; `netanom_build_info{version}` is set to this crate's version.
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some(PREFIX.into()), None).expect("valid prefix");
        let r = &registry;
        let decode_errors = IntCounterVec::new(
            Opts::new("decode_errors_total", "Packets whose headers could not be decoded, by kind: truncated (cut by snaplen or short) or malformed."),
            &["kind"],
        )
        .expect("valid counter vec");
        registry
            .register(Box::new(decode_errors.clone()))
            .expect("unique metric");
        let retrains = IntCounterVec::new(
            Opts::new("retrains_total", "Trainings of the daemon's learner by result: learned (the first model of learning mode), promoted (a retrained model replaced the running one), rejected (it alerted more on the held-out history; the running model was kept), failed (the running model is untouched)."),
            &["result"],
        )
        .expect("valid counter vec");
        registry
            .register(Box::new(retrains.clone()))
            .expect("unique metric");
        for result in ["learned", "promoted", "rejected", "failed"] {
            retrains.with_label_values(&[result]);
        }
        let vec = |name: &str, help: &str, labels: &[&str]| {
            let v = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter vec");
            registry
                .register(Box::new(v.clone()))
                .expect("unique metric");
            v
        };
        let capture_packets = vec(
            "capture_packets_total",
            "Packets read by each capture worker ([capture] workers; worker 0 alone by default). Their sum is netanom_packets_total.",
            &["worker"],
        );
        let capture_drops = vec(
            "capture_drops_total",
            "Packets libpcap reported dropped on each capture worker's handle, by kind: kernel (its buffer was full) or interface. Their sums are netanom_pcap_kernel_drops_total and netanom_pcap_interface_drops_total.",
            &["worker", "kind"],
        );
        // The single capture is worker 0: its drop series exist from the start, at 0.
        for kind in ["kernel", "interface"] {
            capture_drops.with_label_values(&["0", kind]);
        }
        let partials = vec(
            "partials_total",
            "Partial windows received from each source (a capture worker's number or a sensor's name) by result: merged, late (its window had fired: dropped), duplicate (given twice: ignored), rejected (not decodable, of another window length, or too far ahead), dropped (a capture worker's queue to the merger was full).",
            &["source", "result"],
        );
        let model_info = IntGaugeVec::new(
            Opts::new(
                "model_info",
                "The model in use (value 1): its id and window length in seconds.",
            ),
            &["model_id", "omega_seconds"],
        )
        .expect("valid gauge vec");
        registry
            .register(Box::new(model_info.clone()))
            .expect("unique metric");
        let scale_vec = |name: &str, help: &str| {
            let v =
                GaugeVec::new(Opts::new(name, help), &["omega_seconds"]).expect("valid gauge vec");
            registry
                .register(Box::new(v.clone()))
                .expect("unique metric");
            v
        };
        let scale_score = scale_vec(
            "scale_anomaly_score",
            "Last anomaly score of each window length the model runs (one series per omega_seconds; with one window length it equals netanom_anomaly_score).",
        );
        let scale_threshold = scale_vec(
            "scale_threshold",
            "Alert threshold of each window length the model runs.",
        );
        let threshold_baseline = scale_vec(
            "threshold_baseline",
            "The median score of the recent windows that the adaptive threshold of each window length judges scores against (its median baseline); 0 when it has none.",
        );
        let int_vec = |name: &str, help: &str, labels: &[&str]| {
            let v = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge vec");
            registry
                .register(Box::new(v.clone()))
                .expect("unique metric");
            v
        };
        let threshold_rule = int_vec(
            "threshold_rule",
            "The threshold rule each window length runs (value 1): spot (adaptive, alerts.false_rate), fixed (the model's, fixed at training) or manual (model.threshold).",
            &["omega_seconds", "rule"],
        );
        let threshold_excesses = int_vec(
            "threshold_excesses",
            "Peaks (scores above its peaks threshold) the adaptive threshold of each window length keeps to fit its tail (at most 1000 by default); 0 when it does not run.",
            &["omega_seconds"],
        );
        let threshold_peak_runs_held = int_vec(
            "threshold_peak_runs_held",
            "Sustained runs of peaks (more than 5 consecutive scores above the peaks threshold, e.g. a slow scan under the alert threshold) the adaptive threshold of each window length did not learn from, since its model was loaded.",
            &["omega_seconds"],
        );
        let feedback_rules = int_vec(
            "feedback_rules",
            "Operator feedback rules (netanom feedback) by action (suppress, benign) and state (active, expired).",
            &["action", "state"],
        );
        for action in ["suppress", "benign"] {
            for state in ["active", "expired"] {
                feedback_rules.with_label_values(&[action, state]).set(0);
            }
        }
        let incidents_suppressed = IntCounterVec::new(
            Opts::new("incidents_suppressed_total", "Incidents not counted as firing, by reason: min_windows (ended before alerts.min_windows alerting windows; not written), feedback (matched by a suppress rule; written with suppressed_by)."),
            &["reason"],
        )
        .expect("valid counter vec");
        registry
            .register(Box::new(incidents_suppressed.clone()))
            .expect("unique metric");
        for reason in ["min_windows", "feedback"] {
            incidents_suppressed.with_label_values(&[reason]);
        }
        let build_info = IntGaugeVec::new(
            Opts::new("build_info", "netanom build (value 1)."),
            &["version"],
        )
        .expect("valid gauge vec");
        registry
            .register(Box::new(build_info.clone()))
            .expect("unique metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        Metrics {
            anomaly_score: gauge(r, "anomaly_score", "Anomaly score of the last scored window (sum of squared reconstruction errors over 3 windows x 53 features)."),
            // 1e-3 .. 1e6, two buckets per decade: normal scores are well below 1, floods reach 1e5+.
            window_score: histogram(
                r,
                "window_score",
                "Distribution of window anomaly scores.",
                exponential_buckets(1e-3, 10f64.sqrt(), 19).expect("valid buckets"),
            ),
            threshold: gauge(r, "threshold", "Anomaly score threshold in force; a window scoring above it is alerting."),
            windows_total: counter(r, "windows_total", "Windows closed by the aggregator."),
            windows_dropped_total: counter(
                r,
                "windows_dropped_total",
                "Windows dropped unscored because the scorer was behind (its queue was full).",
            ),
            windows_scored_total: counter(r, "windows_scored_total", "Windows that received an anomaly score (not the first two after a start or a break)."),
            alert_windows_total: counter(r, "alert_windows_total", "Scored windows whose score was above the threshold."),
            incidents_total: counter(r, "incidents_total", "Incidents reported (incident_start events) that no feedback rule suppresses."),
            incidents_suppressed,
            incident_active: int_gauge(r, "incident_active", "1 while at least one reported incident that no feedback rule suppresses is open, else 0."),
            feedback_rules,
            incidents_open: int_gauge(r, "incidents_open", "Reported incidents open now that no feedback rule suppresses (attacks from different culprits are separate incidents)."),
            alert_write_errors_total: counter(
                r,
                "alert_write_errors_total",
                "Failed alert log calls (open, stat, write, ftruncate, fdatasync), retries included.",
            ),
            alert_events_queued: int_gauge(r, "alert_events_queued", "Alert events waiting to be written because the alert log could not be written (at most 10000)."),
            alert_events_dropped_total: counter(r, "alert_events_dropped_total", "Alert events dropped, oldest first, because 10000 were already waiting for the alert log."),
            eve_write_errors_total: counter(r, "eve_write_errors_total", "Failed EVE log calls (open, stat, write, ftruncate, fdatasync), retries included."),
            eve_events_queued: int_gauge(r, "eve_events_queued", "EVE records waiting to be written because the EVE log could not be written (at most 10000)."),
            eve_events_dropped_total: counter(r, "eve_events_dropped_total", "EVE records dropped, oldest first, because 10000 were already waiting for the EVE log."),
            packets_total: counter(r, "packets_total", "Packets captured (or read from capture files)."),
            bytes_total: counter(r, "bytes_total", "Bytes of captured packets, as on the wire (not the captured length)."),
            decode_errors_truncated: decode_errors.with_label_values(&["truncated"]),
            decode_errors_malformed: decode_errors.with_label_values(&["malformed"]),
            late_packets_total: counter(r, "late_packets_total", "Packets stamped earlier than the open window (counted in it)."),
            time_jumps_total: counter(r, "time_jumps_total", "Jumps in packet time longer than window.max_gap_windows that were collapsed."),
            pcap_kernel_drops_total: counter(r, "pcap_kernel_drops_total", "Packets dropped by the kernel because the capture buffer was full (libpcap ps_drop)."),
            pcap_interface_drops_total: counter(r, "pcap_interface_drops_total", "Packets dropped by the network interface or its driver (libpcap ps_ifdrop)."),
            // 10 µs .. ~1.3 s, doubling.
            scoring_seconds: histogram(
                r,
                "scoring_seconds",
                "Time to score one window (normalisation and model).",
                exponential_buckets(1e-5, 2.0, 18).expect("valid buckets"),
            ),
            last_window_end_timestamp_seconds: gauge(r, "last_window_end_timestamp_seconds", "End of the last closed window, Unix seconds (capture time)."),
            capture_up: int_gauge(r, "capture_up", "1 while the live capture interface is open and readable; 0 while it is being reopened after a failure (and when replaying files)."),
            capture_errors_total: counter(r, "capture_errors_total", "Failures of the live capture interface (down, removed, driver reset); each is followed by reopening it with backoff."),
            clock_steps_total: counter(r, "clock_steps_total", "Steps of the system clock (set back or forward by more than a second) seen by the live capture; each starts a new window timeline."),
            model_loaded: int_gauge(r, "model_loaded", "1 while a model is loaded and scoring windows, else 0."),
            features_outside_training_range: int_gauge(r, "features_outside_training_range", "Features (of 53) of the last scored window that lie outside the model's training range: sustained high values mean traffic has drifted from what the model learned."),
            learning_progress_ratio: gauge(r, "learning_progress_ratio", "Learning mode (no model yet): share of learning.learn_for of history recorded so far; 1 once a model is loaded, 0 when the daemon started with a model."),
            model_age_seconds: gauge(r, "model_age_seconds", "Seconds since the running model was trained (its bundle's created_unix)."),
            retrains,
            history_rows_total: counter(r, "history_rows_total", "Windows written to the feature history ([history] dir), all window lengths together."),
            history_rows_dropped_total: counter(r, "history_rows_dropped_total", "Windows not written to the feature history because the recorder's queue was full (the disk is slow or stuck); capture and scoring never wait for it."),
            history_write_errors_total: counter(r, "history_write_errors_total", "Failed writes of the feature history (journal, Parquet conversion, retention); the rows of a failed journal write are lost."),
            model_info,
            scale_score,
            scale_threshold,
            threshold_rule,
            threshold_excesses,
            threshold_baseline,
            threshold_peak_runs_held,
            pcap_drops: Mutex::new(Vec::new()),
            capture_packets,
            capture_drops,
            windows_incomplete_total: counter(r, "windows_incomplete_total", "Merged windows (capture workers, sensors) that fired without the partial window of one of their parts: it was late beyond the lateness bound, or its sensor was dead."),
            partials,
            registry,
        }
    }

    /// Packets libpcap reported dropped so far (kernel and interface), for the feature history.
    pub fn pcap_drops_total(&self) -> u64 {
        self.pcap_kernel_drops_total.get() + self.pcap_interface_drops_total.get()
    }

    /// The registry to serve.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Sets `netanom_model_info{model_id, omega_seconds} 1` (replacing a previous model);
    /// `omegas` is the window length, or the lengths joined by commas (`"0.5,5"`).
    pub fn set_model(&self, model_id: &str, omegas: &str) {
        self.model_info.reset();
        self.scale_score.reset();
        self.scale_threshold.reset();
        self.threshold_rule.reset();
        self.threshold_excesses.reset();
        self.threshold_baseline.reset();
        self.threshold_peak_runs_held.reset();
        self.model_info
            .with_label_values(&[model_id, omegas])
            .set(1);
        self.model_loaded.set(1);
    }

    /// Publishes the threshold of the scale `omega`: its value, rule and SPOT memory (the
    /// shortest scale's value is also `netanom_threshold`, set by [`Self::record_score`]).
    pub fn set_scale_threshold(&self, omega: Omega, threshold: &Threshold) {
        let o = omega.to_string();
        self.scale_threshold
            .with_label_values(&[&o])
            .set(threshold.value());
        for rule in [InForce::Spot, InForce::Fixed, InForce::Manual] {
            let on = rule == threshold.in_force();
            self.threshold_rule
                .with_label_values(&[&o, rule.as_str()])
                .set(i64::from(on));
        }
        self.threshold_excesses
            .with_label_values(&[&o])
            .set(i64::try_from(threshold.excesses()).unwrap_or(i64::MAX));
        self.threshold_peak_runs_held
            .with_label_values(&[&o])
            .set(i64::try_from(threshold.held_runs()).unwrap_or(i64::MAX));
        self.threshold_baseline.with_label_values(&[&o]).set(
            threshold
                .spot()
                .and_then(|s| s.median_baseline())
                .unwrap_or(0.0),
        );
    }

    /// Sets `netanom_feedback_rules{action, state}`.
    pub fn set_feedback_rules(&self, action: &str, state: &str, n: usize) {
        self.feedback_rules
            .with_label_values(&[action, state])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts an incident suppressed by a feedback rule.
    pub fn record_suppressed_by_feedback(&self) {
        self.incidents_suppressed
            .with_label_values(&["feedback"])
            .inc();
    }

    /// Counts one training of the learner with its `result` label.
    pub fn record_retrain(&self, result: &str) {
        self.retrains.with_label_values(&[result]).inc();
    }

    /// Sets how many features of the last scored window lie outside the training range.
    pub fn record_drift(&self, features_outside: usize) {
        self.features_outside_training_range
            .set(i64::try_from(features_outside).unwrap_or(i64::MAX));
    }

    /// Counts a closed window (before scoring): windows, late packets, time jumps, last end.
    pub fn record_window(&self, w: &Window) {
        self.windows_total.inc();
        self.late_packets_total.inc_by(w.late_packets);
        if w.after_time_jump {
            self.time_jumps_total.inc();
        }
        if w.incomplete {
            self.windows_incomplete_total.inc();
        }
        self.last_window_end_timestamp_seconds
            .set(w.end_ns as f64 / 1e9);
    }

    /// A closed window was dropped before scoring (the scorer's queue was full).
    pub fn record_window_dropped(&self) {
        self.windows_dropped_total.inc();
    }

    /// One alert log call failed.
    pub fn record_alert_write_error(&self) {
        self.alert_write_errors_total.inc();
    }

    /// After an alert log attempt: `errors` failed calls, `queued` events waiting, `dropped`
    /// more events dropped from the full queue.
    pub fn record_alert_log(&self, errors: usize, queued: usize, dropped: u64) {
        self.alert_write_errors_total.inc_by(errors as u64);
        self.alert_events_queued
            .set(i64::try_from(queued).unwrap_or(i64::MAX));
        self.alert_events_dropped_total.inc_by(dropped);
    }

    /// After an EVE log attempt, as [`Self::record_alert_log`].
    pub fn record_eve_log(&self, errors: usize, queued: usize, dropped: u64) {
        self.eve_write_errors_total.inc_by(errors as u64);
        self.eve_events_queued
            .set(i64::try_from(queued).unwrap_or(i64::MAX));
        self.eve_events_dropped_total.inc_by(dropped);
    }

    /// Incidents that ended unreported (below `alerts.min_windows`); feed it
    /// `IncidentTracker::take_suppressed()` after each `observe`/`flush`.
    pub fn record_suppressed(&self, n: u64) {
        self.incidents_suppressed
            .with_label_values(&["min_windows"])
            .inc_by(n);
    }

    /// Records a window's score: `alerting` against the threshold it was judged by; the
    /// threshold's value now (after it learned from the score) is published.
    /// `primary`: the shortest scale, whose score is also `netanom_anomaly_score`.
    pub fn record_score(
        &self,
        omega: Omega,
        primary: bool,
        score: f64,
        alerting: bool,
        threshold: &Threshold,
        scoring: Duration,
    ) {
        self.windows_scored_total.inc();
        if primary {
            self.anomaly_score.set(score);
            self.threshold.set(threshold.value());
        }
        self.scale_score
            .with_label_values(&[&omega.to_string()])
            .set(score);
        self.set_scale_threshold(omega, threshold);
        if score.is_finite() {
            self.window_score.observe(score);
        }
        if alerting {
            self.alert_windows_total.inc();
        }
        self.scoring_seconds.observe(scoring.as_secs_f64());
    }

    /// Reflects the incident state machine: counts a reported start, sets the open and active
    /// gauges from the number of reported incidents open.
    pub fn record_incident(&self, started: bool, open: usize) {
        if started {
            self.incidents_total.inc();
        }
        self.incidents_open
            .set(i64::try_from(open).unwrap_or(i64::MAX));
        self.incident_active.set(i64::from(open > 0));
    }

    /// Adds captured packets and their wire bytes (call per batch, not per packet).
    pub fn add_packets(&self, packets: u64, bytes: u64) {
        self.packets_total.inc_by(packets);
        self.bytes_total.inc_by(bytes);
    }

    /// Adds decode errors by kind.
    pub fn add_decode_errors(&self, truncated: u64, malformed: u64) {
        self.decode_errors_truncated.inc_by(truncated);
        self.decode_errors_malformed.inc_by(malformed);
    }

    /// Feeds a `pcap_stats` reading (`ps_drop`, `ps_ifdrop`, both u32 and wrapping) of the
    /// only capture handle.
    pub fn record_pcap_stats(&self, ps_drop: u32, ps_ifdrop: u32) {
        self.record_worker_pcap_stats(0, ps_drop, ps_ifdrop);
    }

    /// Feeds a `pcap_stats` reading of capture worker `worker`'s handle.
    pub fn record_worker_pcap_stats(&self, worker: usize, ps_drop: u32, ps_ifdrop: u32) {
        let mut d = self.pcap_drops.lock().unwrap_or_else(|e| e.into_inner());
        if d.len() <= worker {
            d.resize(worker + 1, (WrappingCounter::new(), WrappingCounter::new()));
        }
        let (kernel, interface) = (d[worker].0.update(ps_drop), d[worker].1.update(ps_ifdrop));
        self.pcap_kernel_drops_total.inc_by(kernel);
        self.pcap_interface_drops_total.inc_by(interface);
        let w = worker.to_string();
        self.capture_drops
            .with_label_values(&[w.as_str(), "kernel"])
            .inc_by(kernel);
        self.capture_drops
            .with_label_values(&[w.as_str(), "interface"])
            .inc_by(interface);
    }

    /// The only capture handle was reopened: its counters restart from 0.
    pub fn reset_pcap_stats(&self) {
        self.reset_worker_pcap_stats(0);
    }

    /// Capture worker `worker`'s handle was reopened: its counters restart from 0.
    pub fn reset_worker_pcap_stats(&self, worker: usize) {
        let mut d = self.pcap_drops.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = d.get_mut(worker) {
            c.0.reset();
            c.1.reset();
        }
    }

    /// Packets read by capture worker `worker` (also counted in the totals by `add_packets`).
    pub fn add_worker_packets(&self, worker: usize, packets: u64) {
        self.capture_packets
            .with_label_values(&[worker.to_string().as_str()])
            .inc_by(packets);
    }

    /// One partial window from `source` and what became of it (`merged`, `late`,
    /// `duplicate`, `rejected`).
    pub fn record_partial(&self, source: &str, result: &str) {
        self.partials.with_label_values(&[source, result]).inc();
    }

    /// The exposition text of every metric.
    pub fn encode(&self) -> String {
        encode(&self.registry)
    }
}

impl Default for Metrics {
    /// Same as [`Metrics::new`].
    fn default() -> Self {
        Self::new()
    }
}

/// The text exposition of a registry.
pub fn encode(registry: &Registry) -> String {
    let mut buf = Vec::with_capacity(8192);
    // Encoding only fails on an invalid metric family, which registration already refused.
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut buf) {
        tracing::warn!("encoding metrics: {e}");
    }
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_counter_across_the_wrap() {
        let mut c = WrappingCounter::new();
        assert_eq!(
            c.update(10),
            10,
            "first reading counts from 0 (the handle's start)"
        );
        assert_eq!(c.update(10), 0);
        assert_eq!(c.update(u32::MAX - 5), u64::from(u32::MAX) - 15);
        // wraps: MAX-5 → 4 is 10 increments
        assert_eq!(c.update(4), 10);
        assert_eq!(c.total(), u64::from(u32::MAX) - 5 + 10);
        assert_eq!(c.update(u32::MAX), u64::from(u32::MAX) - 4);
        assert_eq!(c.update(0), 1);
        assert_eq!(c.total(), 2 * (u64::from(u32::MAX) + 1));
        // many wraps keep the total monotonic past u32
        let mut c = WrappingCounter::new();
        let mut reading = 0u32;
        let mut expect = 0u64;
        for _ in 0..1000 {
            reading = reading.wrapping_add(3_000_000_000);
            expect += 3_000_000_000;
            c.update(reading);
            assert_eq!(c.total(), expect);
        }
        // a reset (new capture handle) does not count the restart as a wrap
        let mut c = WrappingCounter::new();
        c.update(1000);
        c.reset();
        assert_eq!(c.update(5), 5);
        assert_eq!(c.total(), 1005);
    }

    /// A closed 30 s window with 3 late packets, after a time jump.
    fn sample_window() -> Window {
        Window {
            start_ns: 1_795_914_120_000_000_000,
            end_ns: 1_795_914_150_000_000_000,
            features: [0.0; 53],
            talkers: Default::default(),
            contributors: Default::default(),
            distinct_estimated: false,
            late_packets: 3,
            after_time_jump: true,
            incomplete: false,
        }
    }

    #[test]
    fn exposition_names_and_format() {
        let m = Metrics::new();
        m.set_model("m-1", "30");
        m.set_model("m-2", "0.5"); // replaces m-1
        let half = Omega::from_micros(500_000).unwrap();
        m.record_window(&sample_window());
        let fixed = Threshold::new(
            3.5,
            None,
            &crate::detect::threshold::ThresholdConfig::fixed(None),
        );
        m.record_score(half, true, 7.0, true, &fixed, Duration::from_micros(250));
        m.record_score(half, true, 0.01, false, &fixed, Duration::from_micros(300));
        m.record_suppressed_by_feedback();
        m.set_feedback_rules("benign", "active", 2);
        m.record_incident(true, 2);
        m.add_packets(10, 1500);
        m.add_decode_errors(2, 1);
        m.record_pcap_stats(u32::MAX, 1);
        m.record_pcap_stats(9, 2);
        m.record_window_dropped();
        m.record_alert_write_error();
        m.record_alert_log(2, 7, 3);
        m.record_suppressed(2);
        let text = m.encode();
        for (line, why) in [
            ("# TYPE netanom_anomaly_score gauge", ""),
            ("netanom_anomaly_score 0.01", ""),
            ("# TYPE netanom_window_score histogram", ""),
            ("netanom_window_score_count 2", ""),
            ("netanom_window_score_bucket{le=\"0.001\"} 0", ""),
            ("netanom_window_score_bucket{le=\"+Inf\"} 2", ""),
            ("netanom_threshold 3.5", ""),
            (
                "netanom_scale_anomaly_score{omega_seconds=\"0.5\"} 0.01",
                "",
            ),
            ("# TYPE netanom_windows_total counter", ""),
            ("netanom_windows_total 1", ""),
            ("netanom_windows_scored_total 2", ""),
            ("netanom_alert_windows_total 1", ""),
            ("netanom_incidents_total 1", ""),
            (
                "netanom_incidents_suppressed_total{reason=\"min_windows\"} 2",
                "",
            ),
            (
                "netanom_incidents_suppressed_total{reason=\"feedback\"} 1",
                "",
            ),
            ("netanom_scale_threshold{omega_seconds=\"0.5\"} 3.5", ""),
            (
                "netanom_threshold_rule{omega_seconds=\"0.5\",rule=\"fixed\"} 1",
                "",
            ),
            (
                "netanom_threshold_rule{omega_seconds=\"0.5\",rule=\"spot\"} 0",
                "",
            ),
            ("netanom_threshold_excesses{omega_seconds=\"0.5\"} 0", ""),
            (
                "netanom_feedback_rules{action=\"benign\",state=\"active\"} 2",
                "",
            ),
            (
                "netanom_feedback_rules{action=\"suppress\",state=\"expired\"} 0",
                "",
            ),
            ("netanom_windows_dropped_total 1", ""),
            ("netanom_alert_write_errors_total 3", ""),
            ("netanom_alert_events_queued 7", ""),
            ("netanom_alert_events_dropped_total 3", ""),
            ("netanom_incident_active 1", ""),
            ("netanom_incidents_open 2", ""),
            ("netanom_packets_total 10", ""),
            ("netanom_bytes_total 1500", ""),
            ("netanom_decode_errors_total{kind=\"truncated\"} 2", ""),
            ("netanom_decode_errors_total{kind=\"malformed\"} 1", ""),
            ("netanom_late_packets_total 3", ""),
            ("netanom_time_jumps_total 1", ""),
            (
                "netanom_pcap_kernel_drops_total 4294967305",
                "u32::MAX then a wrap to 9",
            ),
            ("netanom_pcap_interface_drops_total 2", ""),
            ("# TYPE netanom_scoring_seconds histogram", ""),
            ("netanom_scoring_seconds_count 2", ""),
            (
                "netanom_model_info{model_id=\"m-2\",omega_seconds=\"0.5\"} 1",
                "",
            ),
            ("netanom_last_window_end_timestamp_seconds 1795914150", ""),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing line {line:?} {why}\n{text}"
            );
        }
        assert!(
            !text.contains("model_id=\"m-1\""),
            "old model label set removed"
        );
        assert!(
            text.contains(&format!(
                "netanom_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        // every sample is netanom_-prefixed and no label carries addresses or ports
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(l.starts_with("netanom_"), "{l}");
            for bad in ["ip=", "addr", "src", "dst", "port="] {
                assert!(!l.contains(bad), "label {bad} in {l}");
            }
        }
        // counters end in _total, per Prometheus naming
        for l in text
            .lines()
            .filter(|l| l.starts_with("# TYPE") && l.ends_with(" counter"))
        {
            assert!(l.split(' ').nth(2).unwrap().ends_with("_total"), "{l}");
        }
    }
}
