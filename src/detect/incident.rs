//! The incident state machine: turns the per-window scores into incidents, so that a flood that
//! keeps the score over the threshold for hours is one `Start` and one `End`, not a line per
//! window.
//!
//! A window is *alerting* when its score is strictly above its threshold (a NaN score never is).
//! - No incident open, alerting window: an incident opens at that window. It is reported with a
//!   [`IncidentEvent::Start`] once it has `min_windows` alerting windows (1: at once).
//! - Incident open, alerting window: counted; the peak score (and its window's payload) kept.
//! - Incident open, quiet: the incident ends with [`IncidentEvent::End`] (reason `cooldown`)
//!   once every scale has seen `cooldown_windows` × ω_longest of time at or below its threshold
//!   after the last alerting window (of any scale). With one scale that is `cooldown_windows`
//!   consecutive calm windows, as in the paper's setting; a shorter dip keeps it open. With
//!   several scales (`0.5,5`), the long windows see a slow scan or a flood's dips as one run, so
//!   the short windows' alerts that belong to it join one incident.
//!   An incident that ends before it was reported (fewer than `min_windows` alerting windows)
//!   is dropped silently and counted in [`IncidentTracker::suppressed`].
//! - [`IncidentTracker::flush`] ends an open incident now (shutdown, or a break in the window
//!   sequence), with that reason.
//!
//! The tracker is generic over a payload `P` kept for the peak window (e.g. its features and
//! talkers, to explain the incident in the `End` event); it is made by a closure only when a
//! window becomes the new peak, so calm windows cost nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::window::Omega;

/// Settings of the state machine (`[alerts]` in the settings file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IncidentConfig {
    /// Consecutive windows at or below the threshold that end an incident (≥ 1).
    pub cooldown_windows: u32,
    /// Alerting windows an incident needs before it is reported (≥ 1).
    pub min_windows: u32,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            cooldown_windows: 3,
            min_windows: 1,
        }
    }
}

/// One scored window, as the state machine sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoredWindow {
    /// Index of its scale (0: the shortest ω; always 0 with one scale).
    pub scale: usize,
    /// Window start, ns since the epoch.
    pub start_ns: i64,
    /// Window end (exclusive), ns since the epoch.
    pub end_ns: i64,
    pub score: f64,
    pub threshold: f64,
}

impl ScoredWindow {
    /// Score strictly above the threshold (false for NaN).
    pub fn is_alerting(&self) -> bool {
        self.score > self.threshold
    }

    /// True when this window is further over its threshold than `other` is over its own
    /// (score / threshold; the plain score when the thresholds are equal).
    fn exceeds(&self, other: &ScoredWindow) -> bool {
        if self.threshold == other.threshold || !(self.threshold > 0.0 && other.threshold > 0.0) {
            return self.score > other.score;
        }
        self.score * other.threshold > other.score * self.threshold
    }
}

/// What an incident holds of one scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScaleSummary {
    /// The scale's ω.
    pub omega: Omega,
    /// Its alerting windows in the incident.
    pub alerting_windows: u64,
    /// Its highest score in the incident (NaN before its first alerting window).
    pub peak_score: f64,
    /// Its threshold.
    pub threshold: f64,
}

/// Why an incident ended (`incident.end_reason` in the alert log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// `cooldown_windows` consecutive windows at or below the threshold.
    Cooldown,
    /// The daemon is stopping.
    Shutdown,
    /// The window sequence broke (a collapsed clock jump, lost windows): scoring restarts.
    SequenceBreak,
    /// The capture side failed for good (its thread died): the daemon exits for a restart.
    CaptureFailed,
    /// The scorer hit an internal error (a panic) and stopped: the daemon exits for a restart.
    InternalError,
}

/// What is known of an incident so far.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentSummary {
    /// 1, 2, … in this process.
    pub seq: u64,
    /// `<prefix>-<seq>`: unique per host when the prefix is the process start time.
    pub id: String,
    /// Start of the first alerting window, ns since the epoch.
    pub start_ns: i64,
    /// End of the last alerting window so far, ns since the epoch.
    pub last_alert_end_ns: i64,
    /// Alerting windows so far, all scales together.
    pub alerting_windows: u64,
    /// Windows of the shortest ω from the first to the last alerting one, both included (dips
    /// count).
    pub span_windows: u64,
    /// The window furthest over its threshold (the first of equal ones); with one scale, the
    /// highest score.
    pub peak: ScoredWindow,
    /// Per scale, shortest ω first: what each saw of the incident.
    pub scales: Vec<ScaleSummary>,
}

impl IncidentSummary {
    /// The window lengths that alerted in this incident, shortest first.
    pub fn alerting_scales(&self) -> impl Iterator<Item = &ScaleSummary> {
        self.scales.iter().filter(|s| s.alerting_windows > 0)
    }

    /// From the start of the first alerting window to the end of the last one, seconds.
    pub fn duration_s(&self) -> f64 {
        (self.last_alert_end_ns - self.start_ns) as f64 / 1e9
    }
}

/// An event for the outputs.
#[derive(Clone, Debug, PartialEq)]
pub enum IncidentEvent<P> {
    /// The incident is reported; `window` is the window that made it so (the first alerting
    /// one when `min_windows` is 1).
    Start {
        incident: IncidentSummary,
        window: ScoredWindow,
    },
    /// The incident is over; `window` is the last window observed (the one that completed the
    /// cooldown), `peak_payload` the payload made for the peak window.
    End {
        incident: IncidentSummary,
        reason: EndReason,
        window: ScoredWindow,
        peak_payload: P,
    },
}

struct Open<P> {
    summary: IncidentSummary,
    peak_payload: P,
    reported: bool,
    last: ScoredWindow,
}

/// The state machine. One per scorer; not shared between threads.
pub struct IncidentTracker<P = ()> {
    config: IncidentConfig,
    /// ω of each scale, shortest first.
    omegas: Vec<Omega>,
    /// End of the last window each scale observed, ns (`i64::MIN` before its first).
    seen_until: Vec<i64>,
    id_prefix: String,
    reported: u64,
    suppressed: u64,
    suppressed_taken: u64,
    open: Option<Open<P>>,
}

/// An incident id prefix from the process start time (Unix seconds, hexadecimal): ids then do
/// not repeat across restarts of the daemon on one host.
pub fn default_id_prefix(start: SystemTime) -> String {
    let secs = start
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{secs:x}")
}

impl<P> IncidentTracker<P> {
    /// A tracker over windows of the scales `omegas` (shortest first; one for the paper's
    /// method) whose incident ids are `<id_prefix>-1`, `<id_prefix>-2`, …
    /// Values below 1 in `config` are taken as 1.
    pub fn new(config: IncidentConfig, omegas: &[Omega], id_prefix: impl Into<String>) -> Self {
        IncidentTracker {
            config: IncidentConfig {
                cooldown_windows: config.cooldown_windows.max(1),
                min_windows: config.min_windows.max(1),
            },
            omegas: omegas.to_vec(),
            seen_until: vec![i64::MIN; omegas.len()],
            id_prefix: id_prefix.into(),
            reported: 0,
            suppressed: 0,
            suppressed_taken: 0,
            open: None,
        }
    }

    /// Calm time after the last alert that ends an incident, ns: `cooldown_windows` windows of
    /// the longest scale.
    fn cooldown_ns(&self) -> i64 {
        let longest = self.omegas.last().map_or(0, |o| o.nanos());
        longest.saturating_mul(i64::from(self.config.cooldown_windows))
    }

    /// The configuration in force.
    pub fn config(&self) -> IncidentConfig {
        self.config
    }

    /// Takes new settings (a reload); an open incident continues under them.
    pub fn set_config(&mut self, config: IncidentConfig) {
        self.config = IncidentConfig {
            cooldown_windows: config.cooldown_windows.max(1),
            min_windows: config.min_windows.max(1),
        };
    }

    /// Feeds the next scored window of scale `w.scale`; `payload` is called only if this window
    /// becomes the peak of an incident.
    pub fn observe(
        &mut self,
        w: ScoredWindow,
        payload: impl FnOnce() -> P,
    ) -> Option<IncidentEvent<P>> {
        let alerting = w.is_alerting();
        if let Some(seen) = self.seen_until.get_mut(w.scale) {
            // In time order within a scale; a new timeline (after a flush) starts over.
            *seen = w.end_ns;
        }
        let Some(open) = self.open.as_mut() else {
            if !alerting {
                return None;
            }
            let mut scales: Vec<ScaleSummary> = self
                .omegas
                .iter()
                .map(|&omega| ScaleSummary {
                    omega,
                    alerting_windows: 0,
                    peak_score: f64::NAN,
                    threshold: f64::NAN,
                })
                .collect();
            if let Some(s) = scales.get_mut(w.scale) {
                *s = ScaleSummary {
                    alerting_windows: 1,
                    peak_score: w.score,
                    threshold: w.threshold,
                    ..*s
                };
            }
            self.open = Some(Open {
                summary: IncidentSummary {
                    seq: 0,
                    id: String::new(),
                    start_ns: w.start_ns,
                    last_alert_end_ns: w.end_ns,
                    alerting_windows: 1,
                    span_windows: 1,
                    peak: w,
                    scales,
                },
                peak_payload: payload(),
                reported: false,
                last: w,
            });
            let shortest = self.shortest_ns();
            if let Some(open) = self.open.as_mut() {
                open.summary.span_windows = span(&open.summary, shortest);
            }
            return self.report_if_due(w);
        };
        open.last = w;
        if alerting {
            let s = &mut open.summary;
            s.alerting_windows += 1;
            s.start_ns = s.start_ns.min(w.start_ns);
            s.last_alert_end_ns = s.last_alert_end_ns.max(w.end_ns);
            if let Some(sc) = s.scales.get_mut(w.scale) {
                sc.alerting_windows += 1;
                sc.threshold = w.threshold;
                if sc.peak_score.is_nan() || w.score > sc.peak_score {
                    sc.peak_score = w.score;
                }
            }
            if w.exceeds(&s.peak) {
                s.peak = w;
                open.peak_payload = payload();
            }
            let shortest = self.shortest_ns();
            if let Some(open) = self.open.as_mut() {
                open.summary.span_windows = span(&open.summary, shortest);
            }
            return self.report_if_due(w);
        }
        let quiet_until = open.summary.last_alert_end_ns + self.cooldown_ns();
        if self.seen_until.iter().all(|&seen| seen >= quiet_until) {
            return self.close(EndReason::Cooldown);
        }
        None
    }

    /// ω of the shortest scale, ns.
    fn shortest_ns(&self) -> i64 {
        self.omegas.first().map_or(1, |o| o.nanos())
    }

    /// Ends the open incident now, if any; `None` when there is none or it was never reported.
    pub fn flush(&mut self, reason: EndReason) -> Option<IncidentEvent<P>> {
        self.seen_until.fill(i64::MIN);
        self.close(reason)
    }

    /// True while a reported incident is open (the `netanom_incident_active` gauge).
    pub fn is_active(&self) -> bool {
        self.open.as_ref().is_some_and(|o| o.reported)
    }

    /// The open, reported incident.
    pub fn current(&self) -> Option<&IncidentSummary> {
        self.open
            .as_ref()
            .filter(|o| o.reported)
            .map(|o| &o.summary)
    }

    /// Incidents reported so far (Start events emitted).
    pub fn reported(&self) -> u64 {
        self.reported
    }

    /// Incidents that ended with fewer than `min_windows` alerting windows (never reported).
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    /// Suppressed incidents since the last call (for a counter metric).
    pub fn take_suppressed(&mut self) -> u64 {
        let new = self.suppressed - self.suppressed_taken;
        self.suppressed_taken = self.suppressed;
        new
    }

    /// ω of each scale, shortest first.
    pub fn omegas(&self) -> &[Omega] {
        &self.omegas
    }

    fn report_if_due(&mut self, w: ScoredWindow) -> Option<IncidentEvent<P>> {
        let open = self.open.as_mut()?;
        if open.reported || open.summary.alerting_windows < u64::from(self.config.min_windows) {
            return None;
        }
        self.reported += 1;
        open.reported = true;
        open.summary.seq = self.reported;
        open.summary.id = format!("{}-{}", self.id_prefix, self.reported);
        Some(IncidentEvent::Start {
            incident: open.summary.clone(),
            window: w,
        })
    }

    fn close(&mut self, reason: EndReason) -> Option<IncidentEvent<P>> {
        let open = self.open.take()?;
        if !open.reported {
            self.suppressed += 1;
            return None;
        }
        Some(IncidentEvent::End {
            incident: open.summary,
            reason,
            window: open.last,
            peak_payload: open.peak_payload,
        })
    }
}

/// Windows of `shortest_ns` from the incident's start to the end of its last alert.
fn span(s: &IncidentSummary, shortest_ns: i64) -> u64 {
    let ns = s.last_alert_end_ns.saturating_sub(s.start_ns).max(0);
    let d = shortest_ns.max(1);
    u64::try_from((ns + d - 1) / d).unwrap_or(0).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;
    const T: f64 = 1.0;

    /// Window k of 10 s with score `score`.
    fn win(k: i64, score: f64) -> ScoredWindow {
        ScoredWindow {
            scale: 0,
            start_ns: k * 10 * S,
            end_ns: (k + 1) * 10 * S,
            score,
            threshold: T,
        }
    }

    /// Feeds scores from window 0 on; returns (window index, event) for each event, the payload
    /// being the window index.
    fn run(tr: &mut IncidentTracker<i64>, scores: &[f64]) -> Vec<(i64, IncidentEvent<i64>)> {
        let mut out = Vec::new();
        for (k, &s) in scores.iter().enumerate() {
            let k = k as i64;
            if let Some(e) = tr.observe(win(k, s), || k) {
                out.push((k, e));
            }
        }
        out
    }

    fn tracker(cooldown: u32, min: u32) -> IncidentTracker<i64> {
        IncidentTracker::new(
            IncidentConfig {
                cooldown_windows: cooldown,
                min_windows: min,
            },
            &[Omega::from_micros(10_000_000).unwrap()],
            "t",
        )
    }

    fn end_of(e: &IncidentEvent<i64>) -> (&IncidentSummary, EndReason, ScoredWindow, i64) {
        match e {
            IncidentEvent::End {
                incident,
                reason,
                window,
                peak_payload,
            } => (incident, *reason, *window, *peak_payload),
            other => panic!("expected End, got {other:?}"),
        }
    }

    fn start_of(e: &IncidentEvent<i64>) -> (&IncidentSummary, ScoredWindow) {
        match e {
            IncidentEvent::Start { incident, window } => (incident, *window),
            other => panic!("expected Start, got {other:?}"),
        }
    }

    #[test]
    fn calm_stream_emits_nothing() {
        let mut tr = tracker(3, 1);
        assert!(
            run(&mut tr, &[0.1, 0.5, 1.0, 0.9]).is_empty(),
            "score equal to the threshold is calm"
        );
        assert!(!tr.is_active());
        assert_eq!(tr.flush(EndReason::Shutdown), None);
    }

    #[test]
    fn single_window_spike() {
        let mut tr = tracker(3, 1);
        let ev = run(&mut tr, &[0.1, 0.2, 5.0, 0.1, 0.1, 0.1, 0.1]);
        assert_eq!(ev.len(), 2, "{ev:?}");
        let (k, ref e) = ev[0];
        assert_eq!(k, 2);
        let (inc, w) = start_of(e);
        assert_eq!(inc.id, "t-1");
        assert_eq!(inc.start_ns, 20 * S);
        assert_eq!(inc.alerting_windows, 1);
        assert_eq!(w, win(2, 5.0));
        let (k, ref e) = ev[1];
        assert_eq!(k, 5, "ends at the third calm window");
        let (inc, reason, w, payload) = end_of(e);
        assert_eq!(reason, EndReason::Cooldown);
        assert_eq!(inc.id, "t-1");
        assert_eq!(inc.start_ns, 20 * S);
        assert_eq!(inc.last_alert_end_ns, 30 * S);
        assert_eq!(inc.duration_s(), 10.0);
        assert_eq!(inc.alerting_windows, 1);
        assert_eq!(inc.span_windows, 1);
        assert_eq!(inc.peak, win(2, 5.0));
        assert_eq!(payload, 2);
        assert_eq!(w, win(5, 0.1));
        assert!(!tr.is_active());
    }

    #[test]
    fn long_run_is_one_incident() {
        let mut tr = tracker(3, 1);
        let mut scores = vec![0.1];
        scores.extend((0..10_000).map(|i| 2.0 + (i % 100) as f64)); // peak 101 first at index 1+99
        scores.extend([0.1, 0.1, 0.1]);
        let ev = run(&mut tr, &scores);
        assert_eq!(ev.len(), 2, "a flood gives two events, not one per window");
        let (k, _) = ev[0];
        assert_eq!(k, 1);
        let (inc, reason, _, payload) = end_of(&ev[1].1);
        assert_eq!(reason, EndReason::Cooldown);
        assert_eq!(inc.alerting_windows, 10_000);
        assert_eq!(inc.span_windows, 10_000);
        assert_eq!(inc.peak.score, 101.0);
        assert_eq!(payload, 100, "first window with the peak score");
        assert_eq!(inc.duration_s(), 100_000.0);
        assert_eq!(tr.reported(), 1);
    }

    #[test]
    fn dip_shorter_than_cooldown_is_one_incident() {
        let mut tr = tracker(3, 1);
        // alert, 2 calm (< 3), alert again, then calm for good
        let ev = run(&mut tr, &[2.0, 0.1, 0.1, 3.0, 0.1, 0.1, 0.1]);
        assert_eq!(ev.len(), 2, "{ev:?}");
        start_of(&ev[0].1);
        let (inc, _, _, payload) = end_of(&ev[1].1);
        assert_eq!(inc.alerting_windows, 2);
        assert_eq!(inc.span_windows, 4);
        assert_eq!(inc.start_ns, 0);
        assert_eq!(inc.last_alert_end_ns, 40 * S);
        assert_eq!(inc.peak.score, 3.0);
        assert_eq!(payload, 3);
        assert_eq!(ev[1].0, 6);
    }

    #[test]
    fn dip_as_long_as_cooldown_gives_two_incidents() {
        let mut tr = tracker(3, 1);
        let ev = run(&mut tr, &[2.0, 0.1, 0.1, 0.1, 3.0, 0.1, 0.1, 0.1]);
        let kinds: Vec<_> = ev
            .iter()
            .map(|(k, e)| match e {
                IncidentEvent::Start { incident, .. } => (*k, "start", incident.id.clone()),
                IncidentEvent::End { incident, .. } => (*k, "end", incident.id.clone()),
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                (0, "start", "t-1".to_string()),
                (3, "end", "t-1".to_string()),
                (4, "start", "t-2".to_string()),
                (7, "end", "t-2".to_string()),
            ]
        );
        assert_eq!(tr.reported(), 2);
    }

    #[test]
    fn shutdown_flush_ends_open_incident() {
        let mut tr = tracker(3, 1);
        let ev = run(&mut tr, &[0.1, 4.0, 6.0, 0.5]);
        assert_eq!(ev.len(), 1);
        assert!(tr.is_active());
        assert_eq!(tr.current().unwrap().alerting_windows, 2);
        let e = tr.flush(EndReason::Shutdown).expect("an End event");
        let (inc, reason, w, payload) = end_of(&e);
        assert_eq!(reason, EndReason::Shutdown);
        assert_eq!(serde_json::to_string(&reason).unwrap(), "\"shutdown\"");
        assert_eq!(inc.alerting_windows, 2);
        assert_eq!(inc.peak.score, 6.0);
        assert_eq!(payload, 2);
        assert_eq!(w, win(3, 0.5), "the last window observed");
        assert!(!tr.is_active());
        assert_eq!(tr.flush(EndReason::Shutdown), None, "nothing left to flush");
    }

    #[test]
    fn min_windows_suppresses_short_bursts() {
        let mut tr = tracker(2, 3);
        // two alerting windows then cooldown: suppressed
        let ev = run(&mut tr, &[2.0, 2.0, 0.1, 0.1]);
        assert!(ev.is_empty(), "{ev:?}");
        assert_eq!(tr.suppressed(), 1);
        assert_eq!(tr.take_suppressed(), 1);
        assert_eq!(tr.take_suppressed(), 0);
        // three alerting windows (with a short dip): reported at the third, start = the first
        let mut tr = tracker(2, 3);
        let ev = run(&mut tr, &[2.0, 0.1, 2.0, 9.0, 0.1, 0.1]);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(ev[0].0, 3);
        let (inc, w) = start_of(&ev[0].1);
        assert_eq!(inc.start_ns, 0);
        assert_eq!(inc.alerting_windows, 3);
        assert_eq!(inc.id, "t-1");
        assert_eq!(w.score, 9.0);
        // a pending (unreported) incident is not flushed as an End
        let mut tr = tracker(2, 3);
        run(&mut tr, &[2.0]);
        assert!(!tr.is_active());
        assert_eq!(tr.flush(EndReason::Shutdown), None);
        assert_eq!(tr.suppressed(), 1);
    }

    #[test]
    fn nan_score_is_calm_and_zero_config_is_one() {
        let mut tr = tracker(0, 0);
        assert_eq!(
            tr.config(),
            IncidentConfig {
                cooldown_windows: 1,
                min_windows: 1
            }
        );
        let ev = run(&mut tr, &[f64::NAN, 2.0, f64::NAN]);
        assert_eq!(ev.len(), 2);
        assert_eq!(end_of(&ev[1].1).1, EndReason::Cooldown);
    }

    #[test]
    fn payload_made_only_for_peaks() {
        let mut tr: IncidentTracker<i64> = tracker(3, 1);
        let mut calls = 0;
        for (k, s) in [0.1, 2.0, 1.5, 3.0, 2.5, 0.1].into_iter().enumerate() {
            tr.observe(win(k as i64, s), || {
                calls += 1;
                k as i64
            });
        }
        assert_eq!(calls, 2, "the first alerting window and the new peak");
    }

    #[test]
    fn id_prefix_from_start_time() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(0x6b0c_1e8b);
        assert_eq!(default_id_prefix(t), "6b0c1e8b");
    }

    /// Window k of scale `scale` (ω = `omega_s` seconds) with `score`.
    fn swin(scale: usize, omega_s: i64, k: i64, score: f64) -> ScoredWindow {
        ScoredWindow {
            scale,
            start_ns: k * omega_s * S,
            end_ns: (k + 1) * omega_s * S,
            score,
            threshold: T,
        }
    }

    /// Feeds 1 s and 10 s windows in the order a decode closes them: the 10 s window after the
    /// ten 1 s windows it covers. `short(k)`, `long(k)`: the scores of window k.
    fn two_scales(
        tr: &mut IncidentTracker<i64>,
        seconds: i64,
        short: impl Fn(i64) -> f64,
        long: impl Fn(i64) -> f64,
    ) -> Vec<(i64, IncidentEvent<i64>)> {
        let mut out = Vec::new();
        for k in 0..seconds {
            if let Some(e) = tr.observe(swin(0, 1, k, short(k)), || k) {
                out.push((k, e));
            }
            if (k + 1) % 10 == 0 {
                let j = k / 10;
                if let Some(e) = tr.observe(swin(1, 10, j, long(j)), || 1000 + j) {
                    out.push((k, e));
                }
            }
        }
        out
    }

    fn scales_tracker() -> IncidentTracker<i64> {
        IncidentTracker::new(
            IncidentConfig::default(),
            &[
                Omega::from_micros(1_000_000).unwrap(),
                Omega::from_micros(10_000_000).unwrap(),
            ],
            "m",
        )
    }

    #[test]
    fn a_slow_scan_the_long_windows_see_is_one_incident_across_scales() {
        let mut tr = scales_tracker();
        // 60 s of scan from t = 100 s: the 1 s windows alert every third second only (7
        // incidents on their own), the 10 s windows alert throughout.
        let scan = |t: i64| (100..160).contains(&t);
        let ev = two_scales(
            &mut tr,
            300,
            |k| if scan(k) && k % 3 == 0 { 3.0 } else { 0.1 },
            |j| if scan(j * 10) { 2.0 } else { 0.1 },
        );
        assert_eq!(ev.len(), 2, "{ev:?}");
        let (inc, w) = start_of(&ev[0].1);
        assert_eq!(
            (ev[0].0, w.scale),
            (102, 0),
            "the first short alert reports it"
        );
        assert_eq!(inc.id, "m-1");
        let (inc, reason, _, payload) = end_of(&ev[1].1);
        assert_eq!(reason, EndReason::Cooldown);
        assert_eq!(
            inc.start_ns,
            100 * S,
            "the long window that starts the scan"
        );
        assert_eq!(inc.last_alert_end_ns, 160 * S);
        assert_eq!(inc.alerting_windows, 20 + 6);
        let scales: Vec<_> = inc.alerting_scales().map(|s| s.alerting_windows).collect();
        assert_eq!(scales, vec![20, 6]);
        assert_eq!(inc.scales[0].peak_score, 3.0);
        assert_eq!(inc.span_windows, 60);
        assert_eq!(
            payload, 102,
            "the peak is the furthest over its threshold: 3.0 at 1 s"
        );
        // Ends once both scales have been calm for 3 long windows (30 s) after 160 s.
        assert_eq!(ev[1].0, 189);
    }

    #[test]
    fn attacks_far_apart_stay_separate_incidents_across_scales() {
        let mut tr = scales_tracker();
        let ev = two_scales(
            &mut tr,
            300,
            |k| if k == 20 || k == 200 { 5.0 } else { 0.1 },
            |_| 0.1,
        );
        let ids: Vec<_> = ev
            .iter()
            .filter_map(|(_, e)| match e {
                IncidentEvent::Start { incident, .. } => Some(incident.id.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(ids, ["m-1", "m-2"]);
        assert_eq!(ev.len(), 4);
        let (inc, _, _, _) = end_of(&ev[1].1);
        assert_eq!(inc.alerting_scales().count(), 1);
    }
}
