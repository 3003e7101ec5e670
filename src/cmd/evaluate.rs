//! `netanom evaluate`: score captures, label windows from LABELS.csv, write the report.

use std::process::ExitCode;

use anyhow::{bail, Context};

use netanom::decode::PacketSummary;
use netanom::detect::incident::{
    EndReason, IncidentConfig, IncidentEvent, IncidentTracker, ScoredWindow,
};
use netanom::detect::score::Scale;
use netanom::eval::{
    evaluate, evaluate_and_report, evaluate_incidents, EvalConfig, Extras, IncidentRecord,
    LabelCounter, Labels, WindowEval,
};
use netanom::model::{ModelSet, SEQ_LEN};
use netanom::output::alerts::Explanation;
use netanom::pipeline::{
    log_summary, pump, MultiWindower, Pace, PacketSource, ScaleSink, SinkError,
};
use netanom::timestamp::format_ts;
use netanom::window::{Window, WindowConfig};
use netanom_cli::EvaluateArgs;

/// Scores each window of every scale, counts the labelled attack packets in it, and follows
/// the incidents the daemon would raise (its default `[alerts]` rules).
struct Evaluation<'a> {
    scales: Vec<Scale>,
    labels: &'a Labels,
    /// Per scale: the attack packets of its open window, and its evaluated windows.
    counters: Vec<LabelCounter>,
    windows: Vec<Vec<WindowEval>>,
    tracker: IncidentTracker<()>,
    incidents: Vec<IncidentRecord>,
    /// Spans of every alerting window (any scale), ns.
    alerting: Vec<(i64, i64)>,
}

impl Evaluation<'_> {
    /// Records what the incident events say.
    fn incident_events(&mut self, events: Vec<IncidentEvent<()>>) {
        for event in events {
            self.incident_event(event);
        }
    }

    /// Records what an incident event says.
    fn incident_event(&mut self, event: IncidentEvent<()>) {
        match event {
            IncidentEvent::Start { incident, window } => self.incidents.push(IncidentRecord {
                id: incident.id.clone(),
                start: incident.start_ns as f64 / 1e9,
                end: incident.last_alert_end_ns as f64 / 1e9,
                reported: window.end_ns as f64 / 1e9,
                peak_score: incident.peak.score,
                windows: incident.alerting_windows,
                scales: Vec::new(),
                attacks: Vec::new(),
            }),
            IncidentEvent::End { incident, .. } => {
                if let Some(r) = self
                    .incidents
                    .iter_mut()
                    .rev()
                    .find(|r| r.id == incident.id)
                {
                    r.start = incident.start_ns as f64 / 1e9;
                    r.end = incident.last_alert_end_ns as f64 / 1e9;
                    r.peak_score = incident.peak.score;
                    r.windows = incident.alerting_windows;
                    r.scales = incident
                        .alerting_scales()
                        .map(|s| s.omega.secs_f64())
                        .collect();
                }
            }
            IncidentEvent::Culprit { .. } => {}
        }
    }
}

impl ScaleSink for Evaluation<'_> {
    fn window(&mut self, scale: usize, w: Window) -> Result<(), SinkError> {
        let (start_ns, end_ns) = (w.start_ns, w.end_ns);
        let sc = &mut self.scales[scale];
        let scored = sc
            .push(w)
            .with_context(|| format!("scoring the window at {}", format_ts(start_ns)))?;
        let threshold = scored.threshold;
        let (attack_packets, per_label) = self.counters[scale].take();
        self.windows[scale].push(WindowEval {
            start_ns,
            end_ns,
            score: scored.score,
            alerted: scored.score.map(|_| scored.alerting),
            attack_packets,
            per_label,
        });
        if scored.sequence_broken {
            let events = self.tracker.flush(EndReason::SequenceBreak);
            self.incident_events(events);
        }
        if let Some(score) = scored.score {
            let sw = ScoredWindow {
                scale,
                start_ns,
                end_ns,
                score,
                threshold,
            };
            // As the daemon does: an alerting window's culprits decide its incident.
            let culprits = if sw.is_alerting() {
                self.alerting.push((start_ns, end_ns));
                let sc = &self.scales[scale];
                Explanation::of_run(sc.stage.recent().iter(), &sc.min, &sc.max, 0).culprits
            } else {
                Vec::new()
            };
            let events = self.tracker.observe(sw, &culprits, || ());
            self.incident_events(events);
        }
        Ok(())
    }

    /// After the windows the packet closed: it counts in the window it belongs to.
    fn packet(&mut self, p: &PacketSummary) {
        for c in &mut self.counters {
            c.observe_packet(self.labels, p);
        }
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        let events = self.tracker.flush(EndReason::Shutdown);
        self.incident_events(events);
        Ok(())
    }
}

/// Runs the paper's evaluation protocol and prints the summary table.
pub fn run(args: EvaluateArgs) -> anyhow::Result<ExitCode> {
    let set = ModelSet::load(&args.model)?;
    let labels = Labels::from_path(&args.labels)?;
    if args.min_attack_packets.is_empty() || args.min_attack_packets.contains(&0) {
        bail!("--min-attack-packets: expected positive packet counts, e.g. 1,10,20");
    }
    let model_id = set.id().to_string();
    let omegas = set.scales();
    let scales =
        Scale::from_set(set, &super::threshold_config(&args.thresholds)?).context("--threshold")?;
    let configs: Vec<WindowConfig> = scales
        .iter()
        .map(|s| {
            let mut config = WindowConfig::new(s.omega);
            config.max_gap_windows = args.max_gap_windows;
            config
        })
        .collect();
    // Window metrics count each window as the threshold in force judged it; the value the
    // report names is the threshold at the start (the fixed rule's: its only value).
    let thresholds: Vec<f64> = scales.iter().map(|s| s.threshold.value()).collect();
    let rules: Vec<&str> = scales
        .iter()
        .map(|s| s.threshold.in_force().as_str())
        .collect();
    let source = PacketSource::open_files(&args.pcaps, Pace::Unpaced)?;
    let n = scales.len();
    let sink = Evaluation {
        scales,
        labels: &labels,
        counters: (0..n).map(|_| LabelCounter::new(&labels)).collect(),
        windows: vec![Vec::new(); n],
        tracker: IncidentTracker::new(IncidentConfig::default(), omegas.omegas(), "eval"),
        incidents: Vec::new(),
        alerting: Vec::new(),
    };
    let mut pipeline = MultiWindower::new(&configs, sink);
    let report = pump(source, &mut pipeline, &mut ())?;
    let code = log_summary(&report, pipeline.stats()[0]);
    let sink = pipeline.into_sink();
    // The two windows after an attack are still in runs that saw it (a score covers three).
    let tolerance_ns = omegas.longest().nanos() * (SEQ_LEN as i64 - 1);
    let incidents = evaluate_incidents(sink.incidents, &sink.alerting, &labels, tolerance_ns);
    let cfg = |threshold| EvalConfig {
        threshold,
        ps: args.min_attack_packets.clone(),
    };
    let mut extras = Extras {
        incidents: Some(incidents),
        scales: Vec::new(),
    };
    for (k, windows) in sink.windows.iter().enumerate().skip(1) {
        let e = evaluate(windows, labels.names(), &cfg(thresholds[k]))?;
        extras.scales.push((omegas.omegas()[k].secs_f64(), e));
    }
    let result = evaluate_and_report(
        &args.report,
        &sink.windows[0],
        &labels,
        &cfg(thresholds[0]),
        &extras,
    )?;
    if omegas.len() > 1 {
        println!(
            "model {model_id}, window lengths {omegas} s, thresholds {thresholds:?} ({rules:?}, at the start); window metrics of ω = {} s (the others in metrics.json, \"scales\")",
            omegas.shortest()
        );
    } else {
        println!(
            "model {model_id}, threshold {} ({}{})",
            thresholds[0],
            rules[0],
            if rules[0] == "spot" {
                ", at the start; it adapts"
            } else {
                ""
            }
        );
    }
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
