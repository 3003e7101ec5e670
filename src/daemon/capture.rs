//! The capture thread: reads packets (live or replayed), decodes them and drives the window
//! aggregator; finished windows go to the scorer over a bounded channel, never waiting on it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Sender, TrySendError};

use crate::capture::{LiveCapture, OfflineCapture, RawPacket};
use crate::decode::{decode, DecodeIssue, LinkType};
use crate::extract::format_ts;
use crate::output::metrics::Metrics;
use crate::window::{Window, WindowAggregator, WindowConfig};

/// Where packets come from.
pub enum Source {
    /// An open interface.
    Live(LiveCapture),
    /// Capture files in order; `realtime` paces them at their recorded speed.
    Replay {
        files: Vec<OfflineCapture>,
        realtime: bool,
    },
}

/// How often counters are published to the metrics and the live clock is read.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// Packet counters kept on the capture thread and published in batches (no atomics per packet).
#[derive(Default)]
struct LocalCounts {
    packets: u64,
    bytes: u64,
    truncated: u64,
    malformed: u64,
}

/// The capture side of the pipeline.
pub struct CaptureLoop {
    aggregator: WindowAggregator,
    tx: Sender<Window>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    counts: LocalCounts,
    last_publish: Instant,
    /// Extra time after a window's end before wall time closes it: the kernel may hold a
    /// packet up to the libpcap buffer timeout before we read it.
    grace_ns: i64,
}

/// Nanoseconds since the epoch by the wall clock.
fn wall_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl CaptureLoop {
    /// A loop that sends windows to `tx` until `stop` is set or the source ends.
    pub fn new(
        config: WindowConfig,
        tx: Sender<Window>,
        metrics: Arc<Metrics>,
        stop: Arc<AtomicBool>,
        timeout_ms: u32,
    ) -> Self {
        Self {
            aggregator: WindowAggregator::new(config),
            tx,
            metrics,
            stop,
            counts: LocalCounts::default(),
            last_publish: Instant::now(),
            grace_ns: (i64::from(timeout_ms) + 100) * 1_000_000,
        }
    }

    /// Runs until stopped (live) or the files end (replay). Returns why it ended.
    pub fn run(mut self, source: Source) -> anyhow::Result<()> {
        let result = match source {
            Source::Live(capture) => self.run_live(capture),
            Source::Replay { files, realtime } => self.run_replay(files, realtime),
        };
        self.publish();
        result
    }

    fn run_live(&mut self, mut capture: LiveCapture) -> anyhow::Result<()> {
        let link = capture.link_type();
        let mut last_drops = Instant::now();
        let mut since_clock = 0u32;
        // Windows advance from the start, even before the first packet.
        self.advance_clock();
        while !self.stop.load(Ordering::Relaxed) {
            match capture.next_packet()? {
                Some(raw) => {
                    self.packet(link, &raw);
                    since_clock += 1;
                    if since_clock >= 1024 {
                        since_clock = 0;
                        self.tick();
                    }
                }
                None => self.tick(),
            }
            if last_drops.elapsed() >= Duration::from_secs(1) {
                last_drops = Instant::now();
                if let Some(d) = capture.drops() {
                    self.metrics
                        .record_pcap_stats(d.kernel_dropped, d.interface_dropped);
                }
            }
        }
        Ok(())
    }

    /// Publishes counters and closes windows by the wall clock, at most every PUBLISH_EVERY.
    fn tick(&mut self) {
        if self.last_publish.elapsed() >= PUBLISH_EVERY {
            self.advance_clock();
            self.publish();
        }
    }

    fn advance_clock(&mut self) {
        let now = wall_ns().saturating_sub(self.grace_ns);
        let (tx, metrics) = (&self.tx, &self.metrics);
        self.aggregator
            .advance_to(now, &mut |w| send_window(tx, metrics, w));
    }

    fn run_replay(&mut self, mut files: Vec<OfflineCapture>, realtime: bool) -> anyhow::Result<()> {
        let mut pace: Option<(i64, Instant)> = None;
        for file in &mut files {
            let link = file.link_type();
            loop {
                if self.stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let raw = match file.next_packet() {
                    Ok(Some(raw)) => raw,
                    Ok(None) => break,
                    Err(e) => {
                        // A cut-off file ends the replay like its end would; say so.
                        tracing::error!("{e}");
                        break;
                    }
                };
                if realtime {
                    let (first_ts, started) = *pace.get_or_insert((raw.ts_ns, Instant::now()));
                    let due = Duration::from_nanos(
                        u64::try_from(raw.ts_ns.saturating_sub(first_ts)).unwrap_or(0),
                    );
                    // Sleep in short steps so a stop request is honoured promptly. One clock
                    // reading per step: reading it again for the subtraction could pass `due`
                    // and underflow (a panic of the capture thread).
                    loop {
                        let left = due.saturating_sub(started.elapsed());
                        if left.is_zero() {
                            break;
                        }
                        if self.stop.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        std::thread::sleep(left.min(Duration::from_millis(50)));
                        // Replayed time passes while we wait: close windows as live would.
                        let now = first_ts.saturating_add(
                            i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX),
                        );
                        let (tx, metrics) = (&self.tx, &self.metrics);
                        self.aggregator
                            .advance_to(now, &mut |w| send_window(tx, metrics, w));
                    }
                }
                self.packet(link, &raw);
                if self.last_publish.elapsed() >= PUBLISH_EVERY {
                    self.publish();
                }
            }
        }
        let (tx, metrics) = (&self.tx, &self.metrics);
        self.aggregator.finish(&mut |w| send_window(tx, metrics, w));
        Ok(())
    }

    /// The per-packet path: decode, count locally, aggregate.
    #[inline]
    fn packet(&mut self, link: LinkType, raw: &RawPacket<'_>) {
        let summary = decode(link, raw.data, raw.ts_ns, raw.wire_len);
        let c = &mut self.counts;
        c.packets += 1;
        c.bytes += u64::from(raw.wire_len);
        match summary.issue {
            DecodeIssue::None => {}
            DecodeIssue::Truncated => c.truncated += 1,
            DecodeIssue::Malformed => c.malformed += 1,
        }
        let (tx, metrics) = (&self.tx, &self.metrics);
        self.aggregator
            .push(&summary, &mut |w| send_window(tx, metrics, w));
        if let Some(jump) = self.aggregator.take_time_jump() {
            tracing::warn!(
                from = %format_ts(jump.from_window_start_ns),
                to = %format_ts(jump.to_window_start_ns),
                "packet time jumped by more than window.max_gap_windows windows: collapsed"
            );
        }
    }

    fn publish(&mut self) {
        let c = std::mem::take(&mut self.counts);
        self.metrics.add_packets(c.packets, c.bytes);
        self.metrics.add_decode_errors(c.truncated, c.malformed);
        self.last_publish = Instant::now();
    }
}

/// Hands a window to the scorer without waiting; a full queue drops it and says so.
fn send_window(tx: &Sender<Window>, metrics: &Metrics, w: Window) {
    match tx.try_send(w) {
        Ok(()) => {}
        Err(TrySendError::Full(w)) => {
            metrics.record_window_dropped();
            tracing::error!(
                window_start = %format_ts(w.start_ns),
                "scorer is behind: window queue full, window dropped"
            );
        }
        Err(TrySendError::Disconnected(_)) => {}
    }
}
