//! The collector (`[nats]`, `netanom run --nats URL --sensors a,b`): in place of the capture
//! thread, it consumes the partial windows that sensors on other taps publish to JetStream,
//! merges each window of all sensors (`pipeline::merge`) and hands it to the scorer's queue,
//! then acknowledges the window's messages.
//!
//! Acknowledging only after the hand-over means a collector killed at any moment loses no
//! window JetStream kept: what it had not handed over is delivered again after
//! `nats.ack_wait` to the next collector with the same `nats.consumer`, which fires no window
//! until those came back ([`Collector::replaying`]), so they are merged, not dropped as late.
//! A sensor's end is acknowledged only once every window it sent has fired.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};
use netanom_nats::{AckToken, Collector, CollectorSettings, StreamSettings};

use super::capture::WindowQueue;
use super::scorer::ScaledWindow;
use crate::config::NatsSettings;
use crate::output::metrics::Metrics;
use crate::pipeline::{Backpressure, MergeRules, Merged, Merger, Offer, ScaleSink, MAX_AHEAD};
use crate::timestamp::format_ts;
use crate::window::WindowConfig;

/// How often waiting windows are looked at when no message comes.
const TICK: Duration = Duration::from_millis(50);

/// Runs the collector until stopped.
pub fn run(
    nats: &NatsSettings,
    configs: &[WindowConfig],
    tx: Sender<ScaledWindow>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let url = nats
        .url
        .clone()
        .ok_or_else(|| anyhow::anyhow!("nats.url is not set"))?;
    let mut stream = StreamSettings::new(url);
    stream.stream = nats.stream.clone();
    let collector = Collector::start(CollectorSettings {
        stream,
        consumer: nats.consumer.clone(),
        sensors: nats.sensors.clone(),
        ack_wait: nats.ack_wait,
        max_ack_pending: i64::from(nats.max_ack_pending),
    })?;
    let omegas: Vec<_> = configs.iter().map(|c| c.omega).collect();
    let first = configs.first().copied();
    let rules = MergeRules {
        lateness: nats.lateness,
        liveness: nats.liveness,
        max_gap_windows: first.map_or(100_000, |c| c.max_gap_windows),
        top_k: first.map_or(5, |c| c.top_k),
        max_ahead: MAX_AHEAD,
        // A replaying sensor is at most max_ack_pending messages ahead of the windows fired.
        max_ahead_windows: u64::from(nats.max_ack_pending),
    };
    let mut merger: Merger<AckToken> =
        Merger::new(nats.sensors.len(), &omegas, rules, Instant::now());
    // Nothing is lost by waiting for the scorer: JetStream holds what is not consumed yet.
    let mut queue = WindowQueue::new(tx, Backpressure::Wait, metrics.clone());
    let mut result = Ok(());
    // Sensors' ends, acknowledged once every window they sent fired.
    let mut ends: Vec<(usize, AckToken)> = Vec::new();
    let mut replaying = true;
    while !stop.load(Ordering::Relaxed) {
        match collector.deliveries().recv_timeout(TICK) {
            Ok(d) => {
                let name = &nats.sensors[d.sensor.min(nats.sensors.len() - 1)];
                if d.end {
                    tracing::info!(sensor = %name, "sensor's capture ended");
                    merger.end(d.sensor, Instant::now());
                    ends.push((d.sensor, d.token));
                } else {
                    let outcome = match merger.offer(
                        d.sensor,
                        d.payload,
                        d.clock,
                        d.token,
                        Instant::now(),
                    ) {
                        Offer::Kept => "merged",
                        // Delivered again while its window waits: the first delivery is kept.
                        Offer::Duplicate(_) => "duplicate",
                        Offer::Late(token) => {
                            tracing::warn!(sensor = %name, "partial window later than its window: dropped");
                            collector.ack(vec![token]);
                            "late"
                        }
                        Offer::Rejected(token, reason) => {
                            tracing::error!(sensor = %name, "partial window rejected: {reason}");
                            collector.ack(vec![token]);
                            "rejected"
                        }
                    };
                    metrics.record_partial(name, outcome);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                result = Err(anyhow::anyhow!("the NATS consumer stopped"));
                break;
            }
        }
        let now = Instant::now();
        if replaying {
            // Windows an earlier collector had in flight come back first: no newer window
            // fires before them.
            replaying = collector.replaying(now);
            if replaying {
                continue;
            }
            tracing::info!("every partial window an earlier collector had not acknowledged was delivered again (or ack_wait passed): merging");
        }
        let mut error = None;
        merger.poll(now, &mut |m: Merged<AckToken>| {
            if m.window.incomplete {
                let missing: Vec<&str> = m.missing.iter().map(|&i| nats.sensors[i].as_str()).collect();
                tracing::warn!(window_start = %format_ts(m.window.start_ns), ?missing, "window merged without the partial of a sensor (dead or late)");
            }
            if error.is_some() {
                return;
            }
            match queue.window(m.scale, m.window) {
                Ok(()) => collector.ack(m.tokens),
                Err(e) => error = Some(e),
            }
        });
        if let Some(e) = error {
            result = Err(anyhow::anyhow!(e));
            break;
        }
        collector.ack(merger.take_dropped());
        let (done, waiting): (Vec<_>, Vec<_>) =
            ends.into_iter().partition(|(s, _)| merger.caught_up(*s));
        ends = waiting;
        collector.ack(done.into_iter().map(|(_, t)| t).collect());
    }
    // Windows still waiting are not acknowledged: JetStream delivers them again.
    collector.stop();
    let s = merger.stats();
    tracing::info!(
        windows = s.windows,
        incomplete = s.incomplete,
        late = s.late,
        duplicates = s.duplicates,
        rejected = s.rejected,
        waiting = merger.pending(),
        "collector stopped"
    );
    result
}
