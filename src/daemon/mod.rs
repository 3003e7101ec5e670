//! The live daemon: threads, channels, signals, readiness and watchdog.
//!
//! ```text
//! capture thread ──Window (bounded queue)──▶ scorer thread ──▶ alert log
//!   pipeline::pump: libpcap, decode,          scoring stage,    tracing log
//!   aggregator                                incidents
//!            └──────── counters ──────▶ Metrics ◀──── scores ──────┘
//! main thread: signals (TERM/INT stop, HUP reload), sd_notify, watchdog; tokio thread: /metrics
//! ```

pub mod capture;
pub mod collector;
pub mod learner;
pub mod reload;
pub mod scorer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::capture::{Fanout, LiveCapture, LiveOptions};
use crate::config::{CaptureSource, CliOverrides, Settings};
use crate::detect::incident::EndReason;
use crate::history::HistoryWriter;
use crate::model::{ModelSet, ModelStore};
use crate::output::alerts::{system_hostname, AlertLog};
use crate::output::eve::EveLog;
use crate::output::metrics::{Health, Metrics, MetricsServer};
use crate::pipeline::{Pace, PacketSource};
use crate::window::Scales;
use learner::Learner;
use scorer::{Control, Detector, LearnPlan, Scorer};

/// Windows the capture thread may queue ahead of the scorer (minutes of windows at ω = 0.5 s).
/// Live, a full queue drops windows (counted); replaying files, the reader waits for room.
const WINDOW_QUEUE: usize = 4096;

/// Where the settings came from, so SIGHUP can read them again the same way.
#[derive(Clone, Debug)]
pub struct SettingsSource {
    pub file: Option<PathBuf>,
    pub overrides: CliOverrides,
}

impl SettingsSource {
    /// Reads the settings (file, environment, flags).
    pub fn load(&self) -> anyhow::Result<Settings> {
        Ok(Settings::load(self.file.as_deref(), &self.overrides)?)
    }
}

/// Loads the model set named by the settings, with a hint when it is missing.
fn load_models(settings: &Settings) -> anyhow::Result<ModelSet> {
    ModelSet::load(&settings.model.dir).with_context(|| {
        format!(
            "loading the model (model.dir = {}); train one with `netanom train --pcap NORMAL.pcap --window 0.5 --out DIR` (or `--history DIR`), point model.dir / --model at a bundle, or let the daemon learn this network first: `--window 0.5,5 --learn-for 24h`",
            settings.model.dir.display()
        )
    })
}

/// The scorer's model and alert settings from `settings` and a loaded model set; its
/// adaptive thresholds continue from the state saved in `model.dir`.
fn detector(settings: &Settings, set: ModelSet) -> anyhow::Result<Detector> {
    let mut d = fresh_detector(settings, set)?;
    d.restore_thresholds(&settings.model.dir);
    Ok(d)
}

/// As [`detector`], from the models' calibration only (a model just trained).
fn fresh_detector(settings: &Settings, set: ModelSet) -> anyhow::Result<Detector> {
    Detector::new(
        set,
        &settings.alerts.threshold_config(settings.model.threshold),
        settings.alerts.host.clone().unwrap_or_else(system_hostname),
        settings.alerts.incident_config(),
        settings.alerts.top_features,
    )
    .context("model.threshold")
}

/// Opens the packet sources named by the settings (errors carry hints): the files, the
/// interface, or one handle per capture worker, joined in one new PACKET_FANOUT group.
fn open_sources(settings: &Settings) -> anyhow::Result<Vec<PacketSource>> {
    let c = &settings.capture;
    Ok(match &c.source {
        CaptureSource::Interface(name) => {
            let mut options = LiveOptions {
                interface: name.clone(),
                bpf_filter: c.bpf_filter.clone().unwrap_or_default(),
                snaplen: c.snaplen,
                buffer_size_mb: c.buffer_size_mb,
                promiscuous: c.promiscuous,
                timeout_ms: c.timeout_ms,
                fanout: if c.workers > 1 {
                    Fanout::NewGroup
                } else {
                    Fanout::None
                },
            };
            let mut sources = Vec::with_capacity(c.workers);
            for _ in 0..c.workers {
                let capture = LiveCapture::open(&options)?;
                // The first handle made the group; the others join it.
                options.fanout = capture.options().fanout;
                sources.push(PacketSource::live(capture));
            }
            if let Fanout::Join(group) = options.fanout {
                tracing::info!(
                    workers = c.workers,
                    fanout_group = group,
                    "capture workers in one PACKET_FANOUT group (flow hash)"
                );
            }
            sources
        }
        // The collector captures nothing: its windows come from sensors.
        CaptureSource::Sensors => Vec::new(),
        CaptureSource::Replay { files, realtime } => vec![PacketSource::open_files(
            files,
            if *realtime {
                Pace::Recorded
            } else {
                Pace::Unpaced
            },
        )?],
    })
}

/// The window lengths of learning mode (`window.omega`), checked against what it needs.
fn learning_scales(settings: &Settings) -> anyhow::Result<Scales> {
    let Some(scales) = settings.window.omega.clone() else {
        anyhow::bail!(
            "learning.learn_for: model.dir {} holds no model yet and learning mode needs the window lengths to learn: set window.omega (--window), e.g. 0.5 or 0.5,5",
            settings.model.dir.display()
        );
    };
    if !settings.history.enabled {
        anyhow::bail!(
            "learning.learn_for: learning mode trains from the feature history, but history.enabled = false; turn it on (or --history-dir DIR)"
        );
    }
    tracing::info!(
        model_dir = %settings.model.dir.display(),
        window_s = %scales,
        learn_for = %settings.learning.learn_for.map(|d| humantime::format_duration(d).to_string()).unwrap_or_default(),
        "no model yet: learning mode; recording the history, alerting nothing until a model is trained"
    );
    Ok(scales)
}

/// The oldest recorded window start of `omega` under `dir` (a restart during learning keeps
/// what was already recorded).
fn oldest_recorded(dir: &std::path::Path, omega: crate::window::Omega) -> Option<i64> {
    let scan = crate::history::scan(dir).ok()?;
    let first = scan.get(omega)?.segments.first()?.read().ok()?;
    first.iter().map(|r| r.start_ns).min()
}

/// The learner and when to ask it, if `[learning]` asks for training at all.
fn learn_plan(
    settings: &Settings,
    scales: &Scales,
    learning_mode: bool,
    replaying: bool,
    metrics: &Arc<Metrics>,
    control: &crossbeam_channel::Sender<Control>,
) -> anyhow::Result<Option<LearnPlan>> {
    let l = &settings.learning;
    if !learning_mode && l.retrain_every.is_none() {
        return Ok(None);
    }
    let builder = settings.clone();
    let learner = Learner {
        history_dir: settings.history.dir.clone(),
        feedback_file: settings.feedback.file(),
        alert_log: settings.alerts.path.clone(),
        model_dir: settings.model.dir.clone(),
        scales: scales.clone(),
        learning: l.clone(),
        thresholds: settings.alerts.threshold_config(settings.model.threshold),
        detector: Box::new(move |set| fresh_detector(&builder, set)),
        metrics: metrics.clone(),
    };
    // Not joined at exit: a training in progress is abandoned (its bundle is a .tmp).
    let (jobs, _thread) = learner.spawn(control.clone())?;
    let ns = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    Ok(Some(LearnPlan {
        jobs,
        learn_for_ns: l.learn_for.filter(|_| learning_mode).map(ns),
        retrain_every_ns: l.retrain_every.map(ns),
        since_ns: if learning_mode {
            oldest_recorded(&settings.history.dir, scales.shortest())
        } else {
            None
        },
        in_flight: false,
        wait: replaying,
    }))
}

/// Runs the daemon until SIGTERM/SIGINT (or, replaying, the end of the files).
pub fn run(source: SettingsSource) -> anyhow::Result<()> {
    // Kept up to date by SIGHUP: the settings in force.
    let mut settings = source.load()?;
    let learning_mode =
        settings.learning.learn_for.is_some() && !ModelStore::has_model(&settings.model.dir);
    let (scales, detector) = if learning_mode {
        let scales = learning_scales(&settings)?;
        let waiting = Detector::waiting(
            scales.omegas(),
            settings.alerts.host.clone().unwrap_or_else(system_hostname),
            settings.alerts.incident_config(),
            settings.alerts.top_features,
        );
        (scales, waiting)
    } else {
        let set = load_models(&settings)?;
        (set.scales(), detector(&settings, set)?)
    };
    if settings.learning.retrain_every.is_some() && !settings.history.enabled {
        anyhow::bail!(
            "learning.retrain_every: retraining learns from the feature history, but history.enabled = false; turn it on (or --history-dir DIR)"
        );
    }
    let window_configs = settings.window_configs(&scales)?;
    let model_id = if learning_mode {
        "(learning)".to_string()
    } else {
        detector.context.model_id.clone()
    };
    let metrics = Arc::new(Metrics::new());
    // Windows of the shortest ω come most often: they tell whether the pipeline is alive.
    let health = Health::new(settings.health_stale_after(scales.shortest()));
    let log = AlertLog::open(&settings.alerts.path, settings.alerts.fsync)?;
    let eve_iface = match &settings.capture.source {
        CaptureSource::Interface(name) => Some(name.clone()),
        CaptureSource::Replay { .. } | CaptureSource::Sensors => None,
    };
    let eve = match &settings.alerts.eve_path {
        Some(path) => {
            let log = AlertLog::open(path, settings.alerts.fsync)
                .context("alerts.eve_path (the Suricata EVE log)")?;
            Some(EveLog::new(log, eve_iface.clone()))
        }
        None => None,
    };
    let packets = open_sources(&settings)?;

    let server = if settings.metrics.enabled {
        let server = MetricsServer::bind(settings.metrics.listen)?;
        let running = server
            .spawn(metrics.registry().clone(), health.clone())
            .context("starting the metrics server")?;
        Some(running)
    } else {
        None
    };

    // Signals are registered before any thread starts so none is missed.
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .context("installing signal handlers")?;
    let stop = Arc::new(AtomicBool::new(false));
    let (window_tx, window_rx) = crossbeam_channel::bounded(WINDOW_QUEUE);
    let (control_tx, control_rx) = crossbeam_channel::unbounded();

    let (history_writer, history) = match settings.history.recorder() {
        Some(config) => {
            let dir = config.dir.clone();
            let (writer, handle) = HistoryWriter::start(config, metrics.clone())?;
            tracing::info!(dir = %dir.display(), "recording the feature history");
            (Some(writer), Some(handle))
        }
        None => (None, None),
    };
    let plan = learn_plan(
        &settings,
        &scales,
        learning_mode,
        matches!(packets.first(), Some(PacketSource::Files(_))),
        &metrics,
        &control_tx,
    )?;
    let scorer = Scorer::new(detector, log, metrics.clone(), health.clone())
        .with_eve(eve, eve_iface)
        .with_history(history)
        .with_learning(plan)
        .with_threshold_saving(
            settings.model.dir.clone(),
            settings.alerts.threshold_save_interval,
        )
        .with_feedback(settings.feedback.file());
    let scorer_thread = std::thread::Builder::new()
        .name("netanom-scorer".into())
        .spawn(move || scorer.run(window_rx, control_rx))
        .context("starting the scorer thread")?;
    let source_text = match packets.len() {
        0 => format!(
            "merging the windows of sensors {} from {}",
            settings.nats.sensors.join(","),
            settings.nats.url.as_deref().unwrap_or_default()
        ),
        1 => packets[0].describe(),
        n => format!("{} with {n} capture workers", packets[0].describe()),
    };
    let nats = settings.nats.clone();
    let (capture_metrics, capture_stop) = (metrics.clone(), stop.clone());
    let capture_control = control_tx.clone();
    let capture_thread = std::thread::Builder::new()
        .name("netanom-capture".into())
        .spawn(move || {
            // Kept until the reason is sent, so the scorer sees the reason before the end.
            let queue_guard = window_tx.clone();
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if packets.is_empty() {
                    collector::run(
                        &nats,
                        &window_configs,
                        window_tx,
                        capture_metrics,
                        capture_stop,
                    )
                } else {
                    capture::run(
                        packets,
                        &window_configs,
                        window_tx,
                        capture_metrics,
                        capture_stop,
                    )
                }
            }));
            let result = run.unwrap_or_else(|payload| {
                Err(anyhow::anyhow!(
                    "the capture thread panicked: {}",
                    scorer::panic_text(payload.as_ref())
                ))
            });
            if result.is_err() {
                let _ = capture_control.send(Control::Ending(EndReason::CaptureFailed));
            }
            drop(queue_guard);
            result
        })
        .context("starting the capture thread")?;

    tracing::info!(
        model = %settings.model.dir.display(),
        omega_s = %scales,
        alert_log = %settings.alerts.path.display(),
        eve_log = %settings.alerts.eve_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        "netanom running"
    );
    let status = format!("{source_text}, ω={scales} s, model {model_id}");
    let _ = sd_notify::notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status),
    ]);
    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    let mut last_ping = Instant::now();

    let mut exit_reason = "end of input";
    while !capture_thread.is_finished() {
        for signal in signals.pending() {
            match signal {
                SIGHUP => reload::reload(&source, &mut settings, &scales, &control_tx),
                _ => {
                    exit_reason = if signal == SIGTERM {
                        "SIGTERM"
                    } else {
                        "SIGINT"
                    };
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if scorer_thread.is_finished() {
            // Only a failure ends the scorer while windows can still come: stop, don't limp on.
            health.fail("the scorer thread stopped");
            exit_reason = "scorer thread stopped";
            break;
        }
        if let Some(interval) = watchdog {
            // Ping only while the pipeline is alive: a stuck scorer lets systemd restart us.
            if last_ping.elapsed() >= interval && health.check().is_ok() {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                last_ping = Instant::now();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!(reason = exit_reason, "stopping");
    stop.store(true, Ordering::Relaxed);
    // Panics are caught inside both threads; a join error would be a panic while unwinding.
    let capture_result = capture_thread
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the capture thread died")));
    // The window sender is gone with the capture thread: the scorer drains, ends the open
    // incident (with the reason the capture thread sent, if it failed) and returns.
    drop(control_tx);
    let scorer_result = scorer_thread
        .join()
        .unwrap_or_else(|_| Err(scorer::ScorerFailed("the scorer thread died".into())));
    // The scorer held the last history handle: the recorder closes its segments.
    if let Some(writer) = history_writer {
        writer.finish();
    }
    if let Some(running) = server {
        if let Err(e) = running.stop() {
            tracing::warn!("metrics server: {e}");
        }
    }
    // Either failure exits non-zero, so systemd restarts the service (Restart=on-failure).
    capture_result.context("capture")?;
    scorer_result?;
    tracing::info!("stopped");
    Ok(())
}
