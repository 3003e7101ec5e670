//! The capture thread: runs the pipeline's pump over the daemon's packet source; finished
//! windows go to the scorer over a bounded queue, waiting or dropping as the source requires.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{SendError, Sender, TrySendError};

use crate::capture::{DropCounters, LiveError};
use crate::output::metrics::Metrics;
use crate::pipeline::{
    pump, Backpressure, MultiWindower, Observer, PacketSource, ReadCounts, ScaleSink, SinkError,
};
use crate::timestamp::format_ts;
use crate::window::Window;
use crate::window::WindowConfig;

use super::scorer::ScaledWindow;

/// The scorer is gone: nothing downstream takes windows any more.
#[derive(Debug, thiserror::Error)]
#[error("the scorer thread stopped taking windows")]
pub struct ScorerGone;

/// Hands windows to the scorer's queue: with [`Backpressure::Wait`] (files) it waits for room,
/// so a replay never loses a window; with [`Backpressure::Drop`] (live) it never waits, and a
/// full queue drops the window and counts it.
pub struct WindowQueue {
    tx: Sender<ScaledWindow>,
    policy: Backpressure,
    metrics: Arc<Metrics>,
    /// Windows handed over so far.
    windows: u64,
    /// Test hook (debug builds): panic at this window (see `scorer::injected_fault`).
    panic_at_window: Option<u64>,
}

impl WindowQueue {
    /// A queue sink with the source's policy.
    pub fn new(tx: Sender<ScaledWindow>, policy: Backpressure, metrics: Arc<Metrics>) -> Self {
        Self {
            tx,
            policy,
            metrics,
            windows: 0,
            panic_at_window: super::scorer::injected_fault("capture-panic-at-window"),
        }
    }
}

impl ScaleSink for WindowQueue {
    fn window(&mut self, scale: usize, w: Window) -> Result<(), SinkError> {
        self.windows += 1;
        if self.panic_at_window == Some(self.windows) {
            panic!("injected fault (NETANOM_FAULT_INJECT)");
        }
        match self.policy {
            Backpressure::Wait => self
                .tx
                .send((scale, w))
                .map_err(|SendError(_)| ScorerGone)?,
            Backpressure::Drop => match self.tx.try_send((scale, w)) {
                Ok(()) => {}
                Err(TrySendError::Full((_, w))) => {
                    self.metrics.record_window_dropped();
                    tracing::error!(
                        window_start = %format_ts(w.start_ns),
                        "scorer is behind: window queue full, window dropped"
                    );
                }
                Err(TrySendError::Disconnected(_)) => return Err(ScorerGone.into()),
            },
        }
        Ok(())
    }
}

/// Publishes the pump's counters to the metrics and passes on stop requests.
struct DaemonObserver {
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
}

impl Observer for DaemonObserver {
    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn progress(&mut self, delta: &ReadCounts, drops: Option<DropCounters>) {
        self.metrics.add_packets(delta.packets, delta.bytes);
        self.metrics
            .add_decode_errors(delta.truncated_headers, delta.malformed_headers);
        if let Some(d) = drops {
            self.metrics
                .record_pcap_stats(d.kernel_dropped, d.interface_dropped);
        }
    }

    fn capture_down(&mut self, _error: &LiveError) {
        self.metrics.capture_up.set(0);
        self.metrics.capture_errors_total.inc();
    }

    fn capture_up(&mut self) {
        self.metrics.reset_pcap_stats();
        self.metrics.capture_up.set(1);
    }

    fn clock_step(&mut self, _delta_ns: i64) {
        self.metrics.clock_steps_total.inc();
    }
}

/// Runs the capture side until stopped (live) or the files end (replay).
pub fn run(
    source: PacketSource,
    configs: &[WindowConfig],
    tx: Sender<ScaledWindow>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let queue = WindowQueue::new(tx, source.backpressure(), metrics.clone());
    metrics
        .capture_up
        .set(i64::from(matches!(source, PacketSource::Live(_))));
    let mut windows = MultiWindower::new(configs, queue);
    let mut observer = DaemonObserver { metrics, stop };
    let report = pump(source, &mut windows, &mut observer)?;
    if !report.damaged.is_empty() {
        tracing::warn!(
            damaged_files = report.damaged.len(),
            "replay done; some files ended early (see the errors above)"
        );
    }
    Ok(())
}
