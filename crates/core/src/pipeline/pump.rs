//! The one packet pump: read, decode once, count, hand to the sinks, keep the clock.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::sink::{PacketSink, SinkError};
use super::source::{Files, Pace, PacketSource};
use crate::capture::live::interface_is_up;
use crate::capture::{
    CaptureError, DropCounters, LiveCapture, LiveError, LiveOptions, OfflineCapture, RawPacket,
};
use crate::decode::{decode_into, DecodeIssue, LinkType, PacketSummary};

/// How often the observer hears of progress and the live clock closes windows.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// How often libpcap's drop counters are read on a live interface.
const DROPS_EVERY: Duration = Duration::from_secs(1);

/// Packets between two looks at the clock while packets keep coming.
const CLOCK_EVERY_PACKETS: u32 = 1024;

/// Longest sleep of paced replay, so a stop request is honoured promptly.
const PACE_STEP: Duration = Duration::from_millis(50);

/// A wall clock that moved this much more (or less) than the monotonic clock between two
/// looks was stepped (NTP's step, `date -s`), not slewed.
const CLOCK_STEP_TOLERANCE_NS: i64 = 1_000_000_000;

/// First wait before reopening a failed interface; doubled per failure up to the cap.
const REOPEN_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between two reopening attempts.
const REOPEN_MAX: Duration = Duration::from_secs(5);
/// A capture that ran this long without failing starts its next backoff from the beginning.
const REOPEN_RESET_AFTER: Duration = Duration::from_secs(10);

/// What the pump read, as totals (in [`PumpReport`]) or as increments (to the observer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadCounts {
    /// Frames read.
    pub packets: u64,
    /// Their length on the wire.
    pub bytes: u64,
    /// Frames whose headers were cut off before the transport layer.
    pub truncated_headers: u64,
    /// Frames with an invalid header (bad version, IHL or data offset).
    pub malformed_headers: u64,
    /// Frames without an IP header.
    pub non_ip: u64,
}

impl ReadCounts {
    fn add(&mut self, other: &ReadCounts) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.truncated_headers += other.truncated_headers;
        self.malformed_headers += other.malformed_headers;
        self.non_ip += other.non_ip;
    }
}

/// What a finished pump read.
#[derive(Debug, Default)]
pub struct PumpReport {
    /// Capture files read (0 live).
    pub files: usize,
    /// Totals over the whole run.
    pub counts: ReadCounts,
    /// Files that ended early (cut off mid-record, read error): the packets before the damage
    /// were used and reading went on with the next file.
    pub damaged: Vec<CaptureError>,
    /// True when the observer asked the pump to stop before the source ended.
    pub stopped: bool,
}

/// Why the pump stopped before its source ended.
#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    /// A sink could not take a packet or window (its error says why). A failing live
    /// interface is not an error of the pump: it is reopened (see [`pump`]).
    #[error(transparent)]
    Sink(SinkError),
}

/// How the caller watches and steers a running pump. Every method has a default, so `()`
/// is an observer that never stops and hears nothing.
pub trait Observer {
    /// Checked between packets: `true` ends the pump (without finishing the open windows).
    fn stop_requested(&self) -> bool {
        false
    }
    /// About every [`PROGRESS_EVERY`]: what was read since the last call, and libpcap's drop
    /// counters on a live interface (u32 totals that wrap).
    fn progress(&mut self, _delta: &ReadCounts, _drops: Option<DropCounters>) {}
    /// Live: the interface failed; the pump reopens it with backoff until it can read again.
    fn capture_down(&mut self, _error: &LiveError) {}
    /// Live: the interface was reopened (its drop counters restart from 0).
    fn capture_up(&mut self) {}
    /// Live: the wall clock was stepped by `delta_ns` (negative: set back).
    fn clock_step(&mut self, _delta_ns: i64) {}
}

impl Observer for () {}

/// Reads `source` to its end (or until `observer` asks to stop), decoding each packet once
/// and handing it to `sink`.
///
/// The policy, the same for every command:
/// - Files are read in the order given as one stream. A file that ends early (cut off
///   mid-record, a read error) ends there: what was read before counts, the error is logged
///   and kept in [`PumpReport::damaged`], and reading goes on with the next file. At the end
///   the sinks finish, so the last window is emitted.
/// - A live interface is read until stopped; the wall clock (less libpcap's buffer timeout and
///   a margin) closes windows on a quiet link. A step of the wall clock (against the monotonic
///   clock, by more than a second) starts a new timeline ([`PacketSink::clock_step`]): no
///   stall after a step back, no burst of empty windows after a step forward. A read error
///   (interface down, driver reset) is logged and the interface is reopened with backoff
///   (0.1 s doubling to 5 s) while windows keep closing by the clock; only a stop ends it.
/// - A sink error ends the pump at once with [`PumpError::Sink`].
///
/// Waiting or dropping when a consumer is behind is the sinks' business, following
/// [`PacketSource::backpressure`].
pub fn pump(
    source: PacketSource,
    sink: &mut impl PacketSink,
    observer: &mut impl Observer,
) -> Result<PumpReport, PumpError> {
    let mut pump = Pump {
        counts: ReadCounts::default(),
        total: ReadCounts::default(),
        last_progress: Instant::now(),
    };
    let mut report = match source {
        PacketSource::Files(files) => pump.files(files, sink, observer),
        PacketSource::Live(capture) => pump.live(capture, sink, observer),
    };
    pump.flush_progress(observer, None);
    if let Ok(r) = &mut report {
        r.counts = pump.total;
    }
    report
}

/// The pump's running state.
struct Pump {
    /// Counts since the last progress call.
    counts: ReadCounts,
    /// Counts over the run.
    total: ReadCounts,
    last_progress: Instant,
}

/// Nanoseconds since the epoch by the wall clock.
pub(crate) fn wall_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Pump {
    /// The per-packet path: decode, count locally (no atomics, no allocation), hand over.
    #[inline(always)]
    fn packet(
        &mut self,
        link: LinkType,
        raw: &RawPacket<'_>,
        sink: &mut impl PacketSink,
    ) -> Result<(), PumpError> {
        let mut summary = PacketSummary::default();
        decode_into(link, raw.data, raw.ts_ns, raw.wire_len, &mut summary);
        let c = &mut self.counts;
        c.packets += 1;
        c.bytes += u64::from(raw.wire_len);
        match summary.issue {
            DecodeIssue::None => {}
            DecodeIssue::Truncated => c.truncated_headers += 1,
            DecodeIssue::Malformed => c.malformed_headers += 1,
        }
        if summary.ip.is_none() {
            c.non_ip += 1;
        }
        sink.packet(&summary).map_err(PumpError::Sink)
    }

    /// Hands the counts since the last call to the observer.
    fn flush_progress(&mut self, observer: &mut impl Observer, drops: Option<DropCounters>) {
        let delta = std::mem::take(&mut self.counts);
        self.total.add(&delta);
        observer.progress(&delta, drops);
        self.last_progress = Instant::now();
    }

    fn files(
        &mut self,
        files: Files,
        sink: &mut impl PacketSink,
        observer: &mut impl Observer,
    ) -> Result<PumpReport, PumpError> {
        let Files { mut captures, pace } = files;
        let mut report = PumpReport {
            files: captures.len(),
            ..PumpReport::default()
        };
        // Paced replay: (first packet time, when it was read).
        let mut clock: Option<(i64, Instant)> = None;
        for capture in &mut captures {
            let _span = tracing::info_span!("read", file = %capture.path().display()).entered();
            // Two instantiations, so the unpaced loop carries no pacing test per packet.
            let end = match pace {
                Pace::Unpaced => self.file::<false>(capture, &mut clock, sink, observer)?,
                Pace::Recorded => self.file::<true>(capture, &mut clock, sink, observer)?,
            };
            match end {
                FileEnd::Done => {}
                FileEnd::Damaged(e) => {
                    tracing::error!(
                        "{e}; the packets before it were used, going on with the next file"
                    );
                    report.damaged.push(e);
                }
                FileEnd::Stopped => {
                    report.stopped = true;
                    return Ok(report);
                }
            }
        }
        sink.finish().map_err(PumpError::Sink)?;
        Ok(report)
    }

    /// Reads one file to its end; `PACED` waits for each packet's recorded time.
    fn file<const PACED: bool>(
        &mut self,
        capture: &mut OfflineCapture,
        clock: &mut Option<(i64, Instant)>,
        sink: &mut impl PacketSink,
        observer: &mut impl Observer,
    ) -> Result<FileEnd, PumpError> {
        let link = capture.link_type();
        let mut since_clock = 0u32;
        loop {
            if observer.stop_requested() {
                return Ok(FileEnd::Stopped);
            }
            let raw = match capture.next_packet() {
                Ok(Some(raw)) => raw,
                Ok(None) => return Ok(FileEnd::Done),
                Err(e) => return Ok(FileEnd::Damaged(e)),
            };
            if PACED {
                let (first_ts, started) = *clock.get_or_insert((raw.ts_ns, Instant::now()));
                if !wait_until(raw.ts_ns, first_ts, started, sink, observer)? {
                    return Ok(FileEnd::Stopped);
                }
            }
            self.packet(link, &raw, sink)?;
            since_clock += 1;
            if PACED || since_clock >= CLOCK_EVERY_PACKETS {
                since_clock = 0;
                if self.last_progress.elapsed() >= PROGRESS_EVERY {
                    self.flush_progress(observer, None);
                }
            }
        }
    }

    fn live(
        &mut self,
        mut capture: LiveCapture,
        sink: &mut impl PacketSink,
        observer: &mut impl Observer,
    ) -> Result<PumpReport, PumpError> {
        let _span = tracing::info_span!("capture", interface = %capture.name()).entered();
        let options = capture.options().clone();
        let mut clock = LiveClock::new(capture.timeout_ms());
        let mut backoff = Backoff::new();
        let mut last_drops = Instant::now();
        let mut since_clock = 0u32;
        // Windows advance from the start, even before the first packet.
        sink.advance_to(clock.window_time())
            .map_err(PumpError::Sink)?;
        while !observer.stop_requested() {
            let link = capture.link_type();
            let step = match capture.next_packet() {
                Ok(Some(raw)) => {
                    self.packet(link, &raw, sink)?;
                    since_clock += 1;
                    LiveStep::Packet
                }
                Ok(None) => LiveStep::Idle,
                Err(e) => LiveStep::Failed(e),
            };
            if let LiveStep::Failed(e) = step {
                drop(capture);
                match self.reopen(&options, e, &mut backoff, &mut clock, sink, observer)? {
                    Some(c) => {
                        capture = c;
                        last_drops = Instant::now();
                        continue;
                    }
                    None => break,
                }
            }
            if matches!(step, LiveStep::Idle) || since_clock >= CLOCK_EVERY_PACKETS {
                since_clock = 0;
                if self.last_progress.elapsed() >= PROGRESS_EVERY {
                    clock.tick(sink, observer)?;
                    let drops = if last_drops.elapsed() >= DROPS_EVERY {
                        last_drops = Instant::now();
                        capture.drops()
                    } else {
                        None
                    };
                    self.flush_progress(observer, drops);
                }
            }
        }
        Ok(PumpReport {
            stopped: true,
            ..PumpReport::default()
        })
    }

    /// Reopens a failed interface with backoff; windows keep closing by the clock meanwhile.
    /// `None` when a stop was requested first.
    fn reopen(
        &mut self,
        options: &LiveOptions,
        error: LiveError,
        backoff: &mut Backoff,
        clock: &mut LiveClock,
        sink: &mut impl PacketSink,
        observer: &mut impl Observer,
    ) -> Result<Option<LiveCapture>, PumpError> {
        tracing::error!("{error}; reopening the interface");
        observer.capture_down(&error);
        backoff.failed();
        let mut attempts = 0u32;
        loop {
            let until = Instant::now() + backoff.delay();
            loop {
                if observer.stop_requested() {
                    return Ok(None);
                }
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(PROGRESS_EVERY));
                clock.tick(sink, observer)?;
                self.flush_progress(observer, None);
            }
            attempts += 1;
            // A capture opened on an interface that is still down would just be silent.
            let opened = if interface_is_up(&options.interface) {
                LiveCapture::open(options)
            } else {
                Err(LiveError::Open {
                    name: options.interface.clone(),
                    reason: "the interface is down".into(),
                })
            };
            match opened {
                Ok(capture) => {
                    tracing::warn!(attempts, "interface reopened, capturing again");
                    observer.capture_up();
                    backoff.reopened();
                    return Ok(Some(capture));
                }
                Err(e) => {
                    // Powers of two, then every attempt at the cap: enough to follow, no flood.
                    if attempts.is_power_of_two() || backoff.delay() == REOPEN_MAX {
                        tracing::warn!(attempts, "cannot reopen the interface yet: {e}");
                    }
                    backoff.failed();
                }
            }
        }
    }
}

/// How the reading of one file ended.
enum FileEnd {
    /// Its end.
    Done,
    /// Damage (cut off, read error): the file ends there.
    Damaged(CaptureError),
    /// A stop request.
    Stopped,
}

/// What one read of a live interface gave.
enum LiveStep {
    Packet,
    Idle,
    Failed(LiveError),
}

/// The delay before the next attempt to reopen an interface.
struct Backoff {
    delay: Duration,
    /// When the capture was last (re)opened.
    opened: Instant,
}

impl Backoff {
    /// A backoff for a capture opened now.
    fn new() -> Self {
        Backoff {
            delay: Duration::ZERO,
            opened: Instant::now(),
        }
    }

    /// The wait before the next attempt.
    fn delay(&self) -> Duration {
        self.delay
    }

    /// One more failure: wait longer, unless the capture had been running fine for a while.
    fn failed(&mut self) {
        self.delay = if self.delay.is_zero() || self.opened.elapsed() >= REOPEN_RESET_AFTER {
            self.opened = Instant::now();
            REOPEN_FIRST
        } else {
            (self.delay * 2).min(REOPEN_MAX)
        };
    }

    /// The capture is open again.
    fn reopened(&mut self) {
        self.opened = Instant::now();
    }
}

/// The wall clock of a live capture, watched against the monotonic clock for steps.
struct LiveClock {
    /// The kernel may hold a packet up to the buffer timeout before we read it: close a
    /// window only that long (plus a margin) after its end.
    grace_ns: i64,
    last_wall_ns: i64,
    last_mono: Instant,
}

/// How long after its end a live window closes: libpcap's buffer timeout `timeout_ms`, for
/// which the kernel may hold a packet, plus a margin of 100 ms.
pub fn live_grace(timeout_ms: u32) -> Duration {
    Duration::from_millis(u64::from(timeout_ms) + 100)
}

impl LiveClock {
    /// A clock for a capture with libpcap's buffer timeout `timeout_ms`.
    fn new(timeout_ms: u32) -> Self {
        LiveClock {
            grace_ns: i64::try_from(live_grace(timeout_ms).as_nanos()).unwrap_or(i64::MAX),
            last_wall_ns: wall_ns(),
            last_mono: Instant::now(),
        }
    }

    /// The time up to which windows may close.
    fn window_time(&self) -> i64 {
        self.last_wall_ns.saturating_sub(self.grace_ns)
    }

    /// Reads the clock: reports a step to the sinks and the observer, then closes the windows
    /// that ended.
    fn tick(
        &mut self,
        sink: &mut impl PacketSink,
        observer: &mut impl Observer,
    ) -> Result<(), PumpError> {
        let (wall, mono) = (wall_ns(), Instant::now());
        let elapsed =
            i64::try_from(mono.duration_since(self.last_mono).as_nanos()).unwrap_or(i64::MAX);
        let delta = wall.saturating_sub(self.last_wall_ns.saturating_add(elapsed));
        self.last_wall_ns = wall;
        self.last_mono = mono;
        if delta.abs() > CLOCK_STEP_TOLERANCE_NS {
            tracing::warn!(
                step_s = delta as f64 / 1e9,
                "the system clock was stepped: windows start a new timeline (the open window is closed, no empty windows for the step)"
            );
            observer.clock_step(delta);
            sink.clock_step(self.window_time())
                .map_err(PumpError::Sink)?;
        }
        sink.advance_to(self.window_time()).map_err(PumpError::Sink)
    }
}

/// Paced replay: sleeps until packet time `ts_ns` is due, closing windows by the replayed
/// clock meanwhile. `false` when a stop was requested while waiting.
fn wait_until(
    ts_ns: i64,
    first_ts: i64,
    started: Instant,
    sink: &mut impl PacketSink,
    observer: &mut impl Observer,
) -> Result<bool, PumpError> {
    let due = Duration::from_nanos(u64::try_from(ts_ns.saturating_sub(first_ts)).unwrap_or(0));
    loop {
        // One clock reading per step: reading it again for the subtraction could pass `due`.
        let left = due.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Ok(true);
        }
        if observer.stop_requested() {
            return Ok(false);
        }
        std::thread::sleep(left.min(PACE_STEP));
        let now = first_ts
            .saturating_add(i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX));
        sink.advance_to(now.min(ts_ns)).map_err(PumpError::Sink)?;
    }
}
