//! `netanom sensor`: a tap's packets cut into partial windows (the same source, pump and
//! aggregators as every command), each published to NATS JetStream for a collector that
//! merges several taps (crates/nats, docs/deploy.md "Several taps, one model").

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use netanom_core::capture::{Fanout, LiveCapture, LiveOptions};
use netanom_core::pipeline::{
    log_summary, pump, Backpressure, MultiWindower, Observer, Pace, PacketSink, PacketSource,
    PartialSink, SinkError,
};
use netanom_core::window::{PartialWindow, WindowConfig};
use netanom_nats::{Outgoing, PartClock, PublishLimits, PublishQueue, Publisher, StreamSettings};

use crate::SensorArgs;

/// Windows that may wait for the publisher (minutes of windows at ω = 0.5 s).
const QUEUE: usize = 4096;

/// How long a replaying sensor waits for the NATS server before failing (a live one keeps
/// trying: it may start before the server).
const REPLAY_CONNECT_WITHIN: Duration = Duration::from_secs(15);

/// Hands each closed partial window to the publisher: replaying, waiting for room; live,
/// never waiting (a full queue drops the window, counted; the collector sees the sensor skip
/// it and merges that window without this sensor, incomplete).
struct PublishSink {
    queue: PublishQueue,
    policy: Backpressure,
    dropped: u64,
}

impl PublishSink {
    /// Queues `m` as the policy says: waiting for room, or dropping it (counted) when full.
    fn send(&mut self, m: Outgoing) -> Result<(), SinkError> {
        match self.policy {
            Backpressure::Wait => self.queue.wait(m)?,
            Backpressure::Drop => {
                if !self.queue.try_send(m)? {
                    self.dropped += 1;
                    if self.dropped.is_power_of_two() {
                        tracing::error!(
                            dropped = self.dropped,
                            "the NATS publisher is behind: partial windows dropped"
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

impl PartialSink for PublishSink {
    fn partial(
        &mut self,
        _scale: usize,
        _top_k: usize,
        p: &mut PartialWindow,
    ) -> Result<(), SinkError> {
        self.send(Outgoing::Partial {
            omega_us: p.omega().micros(),
            start_ns: p.start_ns(),
            bytes: p.to_bytes()?,
        })
    }

    /// The capture ended (files read, or a live sensor stopped after its open windows went
    /// out): tell the collector nothing follows.
    fn finish(&mut self) -> Result<(), SinkError> {
        self.send(Outgoing::End)
    }
}

/// Stops the pump on SIGTERM or SIGINT.
struct Stop(Arc<AtomicBool>);

impl Observer for Stop {
    fn stop_requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs the sensor until its files end or it is stopped.
pub fn run(args: SensorArgs) -> anyhow::Result<ExitCode> {
    netanom_nats::check_sensor_name(&args.sensor).context("--sensor")?;
    let source = match &args.interface {
        Some(interface) => PacketSource::live(LiveCapture::open(&LiveOptions {
            interface: interface.clone(),
            bpf_filter: args.bpf_filter.clone().unwrap_or_default(),
            snaplen: args.snaplen,
            buffer_size_mb: args.buffer_size_mb,
            promiscuous: true,
            timeout_ms: 100,
            fanout: Fanout::None,
        })?),
        None => PacketSource::open_files(
            &args.pcaps,
            if args.realtime {
                Pace::Recorded
            } else {
                Pace::Unpaced
            },
        )?,
    };
    let policy = source.backpressure();
    let clock = match policy {
        Backpressure::Wait => PartClock::Replay,
        Backpressure::Drop => PartClock::Live,
    };
    let mut stream = StreamSettings::new(&args.nats);
    stream.stream = args.stream.clone();
    let limits = PublishLimits {
        queue: QUEUE,
        give_up_after: (clock == PartClock::Live).then_some(stream.duplicate_window),
        connect_within: (clock == PartClock::Replay).then_some(REPLAY_CONNECT_WITHIN),
    };
    let publisher = Publisher::start(stream, &args.sensor, clock, limits)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let configs: Vec<WindowConfig> = args
        .window
        .omegas()
        .iter()
        .map(|&omega| {
            let mut c = WindowConfig::new(omega);
            c.max_gap_windows = args.max_gap_windows;
            c
        })
        .collect();
    tracing::info!(sensor = %args.sensor, source = %source.describe(), window_s = %args.window, "sensor running");
    let sink = PublishSink {
        queue: publisher.queue(),
        policy,
        dropped: 0,
    };
    let mut windows = MultiWindower::partials(&configs, sink);
    let report = match pump(source, &mut windows, &mut Stop(stop.clone())) {
        Ok(r) => r,
        // The publisher gave up (the server not reachable): say so, with its URL.
        Err(e) => match publisher.failure() {
            Some(failure) => anyhow::bail!("--nats: {failure}"),
            None => return Err(e.into()),
        },
    };
    if report.stopped && clock == PartClock::Live {
        // Stopped: the open windows go out as they are, then the end, so that the collector
        // fires none of them complete without this sensor's packets. A replay cut short
        // sends no end: the collector finds it dead, and waits for it again if restarted.
        windows
            .finish()
            .map_err(|e| anyhow::anyhow!("publishing the last windows: {e}"))?;
    }
    let stats = windows.stats();
    let dropped = windows.partial_sink().dropped;
    drop(windows);
    let deadline = if clock == PartClock::Live { 5 } else { 120 };
    let published = publisher
        .finish(Duration::from_secs(deadline))
        .map_err(|e| anyhow::anyhow!("--nats: {e}"))?;
    tracing::info!(
        published = published.published,
        duplicates = published.duplicates,
        retries = published.retries,
        given_up = published.given_up,
        too_large = published.too_large,
        dropped,
        "sensor stopped"
    );
    let total = stats.iter().fold(
        Default::default(),
        |mut a: netanom_core::window::AggregatorStats, s| {
            a.windows += s.windows;
            a.late_packets += s.late_packets;
            a.time_jumps += s.time_jumps;
            a
        },
    );
    Ok(log_summary(&report, total))
}
