//! The capture thread: runs the pipeline's pump over the daemon's packet source; finished
//! windows go to the scorer over a bounded queue, waiting or dropping as the source requires.
//!
//! With capture workers (`capture.workers` > 1) the capture thread starts one worker thread
//! per libpcap handle of the PACKET_FANOUT group; each runs the same pump with its own
//! aggregators, whose closed windows it sends unfinished (encoded partial windows) to the
//! capture thread, which merges them per window (`pipeline::merge`) and hands the windows to
//! the scorer's queue.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, SendError, Sender, TrySendError};

use crate::capture::{DropCounters, LiveError};
use crate::output::metrics::Metrics;
use crate::pipeline::{
    live_grace, pump, Backpressure, MergeRules, Merger, MultiWindower, Observer, Offer, PacketSink,
    PacketSource, PartClock, PartialSink, ReadCounts, ScaleSink, SinkError, MAX_AHEAD,
};
use crate::timestamp::format_ts;
use crate::window::{PartialWindow, Window, WindowConfig};

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

/// Publishes one capture worker's counters to the metrics and passes on stop requests.
struct DaemonObserver {
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    /// The capture worker (0 without workers).
    worker: usize,
}

impl Observer for DaemonObserver {
    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn progress(&mut self, delta: &ReadCounts, drops: Option<DropCounters>) {
        self.metrics.add_packets(delta.packets, delta.bytes);
        self.metrics.add_worker_packets(self.worker, delta.packets);
        self.metrics
            .add_decode_errors(delta.truncated_headers, delta.malformed_headers);
        if let Some(d) = drops {
            self.metrics.record_worker_pcap_stats(
                self.worker,
                d.kernel_dropped,
                d.interface_dropped,
            );
        }
    }

    fn capture_down(&mut self, _error: &LiveError) {
        self.metrics.capture_up.set(0);
        self.metrics.capture_errors_total.inc();
    }

    fn capture_up(&mut self) {
        self.metrics.reset_worker_pcap_stats(self.worker);
        self.metrics.capture_up.set(1);
    }

    fn clock_step(&mut self, _delta_ns: i64) {
        // Every worker sees the same step of the one system clock.
        if self.worker == 0 {
            self.metrics.clock_steps_total.inc();
        }
    }
}

/// Partial windows a capture worker may queue ahead of the merger.
const PARTIAL_QUEUE: usize = 1024;

/// How long a merged window waits for a worker's partial beyond the capture's own delays
/// (see [`worker_lateness`]): a stuck worker costs incomplete windows, never a stall.
const WORKER_MARGIN: Duration = Duration::from_secs(2);

/// How long a merged window waits for a worker's partial after the first one arrived: an idle
/// worker wakes once per libpcap buffer timeout (`timeout_ms`) and closes a window the pump's
/// grace after its end, so another worker's partial may come that much later, plus a margin.
fn worker_lateness(timeout_ms: u32) -> Duration {
    Duration::from_millis(u64::from(timeout_ms)) + live_grace(timeout_ms) + WORKER_MARGIN
}

/// How often the merger looks for windows that waited long enough.
const MERGE_TICK: Duration = Duration::from_millis(50);

/// From a capture worker to the merger.
enum WorkerMsg {
    /// An encoded partial window.
    Part { worker: usize, bytes: Vec<u8> },
    /// The worker's pump returned (`failed`: with an error or a panic).
    End { worker: usize, failed: bool },
}

/// A capture worker's sink: encodes each closed partial window and hands it to the merger
/// without waiting (a full queue drops it, counted; the merger sees the worker skip that
/// window and fires it incomplete).
struct PartialQueue {
    worker: usize,
    tx: Sender<WorkerMsg>,
    metrics: Arc<Metrics>,
}

impl PartialSink for PartialQueue {
    fn partial(
        &mut self,
        _scale: usize,
        _top_k: usize,
        partial: &mut PartialWindow,
    ) -> Result<(), SinkError> {
        let bytes = partial.to_bytes()?;
        match self.tx.try_send(WorkerMsg::Part {
            worker: self.worker,
            bytes,
        }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.metrics
                    .record_partial(&self.worker.to_string(), "dropped");
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => Err(ScorerGone.into()),
        }
    }
}

/// Runs the capture side until stopped (live) or the files end (replay): one source as one
/// pump, several (capture workers) as one pump each, merged.
pub fn run(
    mut sources: Vec<PacketSource>,
    configs: &[WindowConfig],
    tx: Sender<ScaledWindow>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    if sources.len() > 1 {
        return run_workers(sources, configs, tx, metrics, stop);
    }
    let source = sources
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no packet source"))?;
    let queue = WindowQueue::new(tx, source.backpressure(), metrics.clone());
    metrics
        .capture_up
        .set(i64::from(matches!(source, PacketSource::Live(_))));
    let mut windows = MultiWindower::new(configs, queue);
    let mut observer = DaemonObserver {
        metrics,
        stop,
        worker: 0,
    };
    let report = pump(source, &mut windows, &mut observer)?;
    if !report.damaged.is_empty() {
        tracing::warn!(
            damaged_files = report.damaged.len(),
            "replay done; some files ended early (see the errors above)"
        );
    }
    Ok(())
}

/// Capture workers: one thread per handle runs the pump; this thread merges their partial
/// windows and feeds the scorer. A worker that fails (its pump's error, a panic) stops them
/// all and fails the capture, as a single capture thread's failure does; a worker that is
/// only slow costs incomplete windows (counted in `netanom_windows_incomplete_total`).
fn run_workers(
    sources: Vec<PacketSource>,
    configs: &[WindowConfig],
    tx: Sender<ScaledWindow>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let n = sources.len();
    let timeout_ms = sources
        .iter()
        .filter_map(|s| match s {
            PacketSource::Live(c) => Some(c.timeout_ms()),
            PacketSource::Files(_) => None,
        })
        .max()
        .unwrap_or(0);
    metrics.capture_up.set(1);
    let (part_tx, part_rx) = crossbeam_channel::bounded(PARTIAL_QUEUE);
    let workers_stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::with_capacity(n);
    for (worker, source) in sources.into_iter().enumerate() {
        let (configs, part_tx) = (configs.to_vec(), part_tx.clone());
        let (metrics, workers_stop) = (metrics.clone(), workers_stop.clone());
        let handle = std::thread::Builder::new()
            .name(format!("netanom-worker-{worker}"))
            .spawn(move || {
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let sink = PartialQueue {
                        worker,
                        tx: part_tx.clone(),
                        metrics: metrics.clone(),
                    };
                    let mut windows = MultiWindower::partials(&configs, sink);
                    let mut observer = DaemonObserver {
                        metrics,
                        stop: workers_stop,
                        worker,
                    };
                    let report = pump(source, &mut windows, &mut observer)?;
                    if report.stopped {
                        // Stopped: the open windows go out as they are, so that none fires
                        // complete without this worker's packets.
                        windows.finish().map_err(|e| anyhow::anyhow!("{e}"))?;
                    }
                    Ok::<(), anyhow::Error>(())
                }));
                let result = match run {
                    Ok(r) => r.map_err(|e| e.context(format!("capture worker {worker}"))),
                    Err(payload) => Err(anyhow::anyhow!(
                        "capture worker {worker} panicked: {}",
                        super::scorer::panic_text(payload.as_ref())
                    )),
                };
                let _ = part_tx.send(WorkerMsg::End {
                    worker,
                    failed: result.is_err(),
                });
                result
            })?;
        handles.push(handle);
    }
    drop(part_tx);
    let omegas: Vec<_> = configs.iter().map(|c| c.omega).collect();
    let first = configs.first().copied();
    let lateness = worker_lateness(timeout_ms);
    let rules = MergeRules {
        lateness,
        liveness: lateness * 5,
        max_gap_windows: first.map_or(100_000, |c| c.max_gap_windows),
        top_k: first.map_or(5, |c| c.top_k),
        max_ahead: MAX_AHEAD,
        max_ahead_windows: PARTIAL_QUEUE as u64,
    };
    let mut merger = Merger::new(n, &omegas, rules, Instant::now());
    let mut queue = WindowQueue::new(tx, Backpressure::Drop, metrics.clone());
    let mut failed: Option<anyhow::Error> = None;
    let mut ended = 0;
    while ended < n {
        if stop.load(Ordering::Relaxed) {
            workers_stop.store(true, Ordering::Relaxed);
        }
        match part_rx.recv_timeout(MERGE_TICK) {
            Ok(WorkerMsg::Part { worker, bytes }) => {
                let result = match merger.offer(worker, bytes, PartClock::Live, (), Instant::now())
                {
                    Offer::Kept => "merged",
                    Offer::Duplicate(()) => "duplicate",
                    Offer::Late(()) => "late",
                    Offer::Rejected((), reason) => {
                        tracing::error!(worker, "partial window rejected: {reason}");
                        "rejected"
                    }
                };
                metrics.record_partial(&worker.to_string(), result);
            }
            Ok(WorkerMsg::End { worker, failed: f }) => {
                merger.end(worker, Instant::now());
                ended += 1;
                if f {
                    workers_stop.store(true, Ordering::Relaxed);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if let Err(e) = fire(&mut merger, &mut queue, false) {
            failed.get_or_insert(e);
            workers_stop.store(true, Ordering::Relaxed);
        }
    }
    let _ = fire(&mut merger, &mut queue, true);
    for h in handles {
        let result = h
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("a capture worker died")));
        if let Err(e) = result {
            failed.get_or_insert(e);
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Hands the windows the merger can fire to the scorer's queue; `all`: every waiting one.
fn fire(merger: &mut Merger<()>, queue: &mut WindowQueue, all: bool) -> anyhow::Result<()> {
    let mut error = None;
    let mut emit = |m: crate::pipeline::Merged<()>| {
        if m.window.incomplete {
            tracing::warn!(
                window_start = %format_ts(m.window.start_ns),
                missing_workers = ?m.missing,
                "window merged without the partial of a capture worker (late or stuck)"
            );
        }
        if error.is_none() {
            if let Err(e) = queue.window(m.scale, m.window) {
                error = Some(e);
            }
        }
    };
    if all {
        merger.flush(Instant::now(), &mut emit);
    } else {
        merger.poll(Instant::now(), &mut emit);
    }
    // Workers' parts carry no token to acknowledge.
    merger.take_dropped();
    match error {
        Some(e) => Err(anyhow::anyhow!(e)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lateness covers an idle worker's wake-up (one buffer timeout) and the pump's grace,
    /// plus 2 s: with capture.timeout_ms = 10,000 a quiet worker's partial may come 10 s after
    /// a busy one's.
    #[test]
    fn worker_lateness_follows_the_buffer_timeout() {
        assert_eq!(
            worker_lateness(100),
            Duration::from_millis(100 + 200 + 2_000)
        );
        assert_eq!(
            worker_lateness(10_000),
            Duration::from_millis(10_000 + 10_100 + 2_000)
        );
    }
}
