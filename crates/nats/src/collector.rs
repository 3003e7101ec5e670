//! The collector's side: one durable pull consumer per sensor (so a sensor far ahead never
//! holds back another's deliveries), every message handed over a bounded channel with a token
//! that acknowledges it once the window it belongs to reached the scorer.
//!
//! The tokens are numbers; this thread keeps the messages' ackers, and while a message waits
//! (its window waits for another sensor) it tells JetStream every third of `ack_wait` that
//! work is in progress, so nothing is delivered again while this collector lives, however
//! long a window waits. A token dropped without acknowledging (a duplicate delivery, a part
//! the merger gave up) stops those reminders: JetStream delivers the message again later.
//!
//! A collector that starts after another one stopped (or was killed) finds, per consumer, the
//! messages delivered to it and not acknowledged: JetStream delivers them again only after
//! `ack_wait`, after newer ones. [`Collector::replaying`] says whether some of them are still
//! to come (at most `ack_wait` after the consumer was found), so that no newer window fires
//! before them and they are merged, not dropped as late.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, message::Acker, AckKind};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::{connect, ensure_stream, subject, NatsError, PartClock, StreamSettings};
use crate::{CLOCK_HEADER, END_HEADER};

/// Deliveries that may wait for the collector's loop; beyond, consuming waits (JetStream
/// keeps the rest).
const DELIVERY_QUEUE: usize = 1024;

/// How long a consuming task waits before trying a full delivery queue again.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(10);

/// First wait after a consumer error; doubled per consecutive error up to the cap.
const ERROR_WAIT_FIRST: Duration = Duration::from_millis(50);
/// Longest wait after consumer errors.
const ERROR_WAIT_MAX: Duration = Duration::from_secs(2);

/// How the collector consumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectorSettings {
    pub stream: StreamSettings,
    /// Prefix of the durable consumers' names: `<consumer>-<sensor>`. A restarted collector
    /// with the same prefix resumes where it acknowledged.
    pub consumer: String,
    /// The sensors, in the order the merger numbers them.
    pub sensors: Vec<String>,
    /// How long JetStream waits for an acknowledgement (or a progress reminder) before
    /// delivering again.
    pub ack_wait: Duration,
    /// Unacknowledged messages per sensor; a sensor that far ahead waits for the others.
    pub max_ack_pending: i64,
}

/// One message: a sensor's partial window, or its end.
#[derive(Debug)]
pub struct Delivery {
    /// Index of the sensor in [`CollectorSettings::sensors`].
    pub sensor: usize,
    /// The encoded partial window (empty for an end).
    pub payload: Vec<u8>,
    /// The clock that cut it.
    pub clock: PartClock,
    /// The sensor's capture ended: nothing follows.
    pub end: bool,
    /// Acknowledges the message ([`Collector::ack`]); dropped, the message is delivered
    /// again after `ack_wait`.
    pub token: AckToken,
}

/// What the collector's loop asks of the consuming thread.
enum Command {
    /// A delivered message's acker (sent by the consuming task before the delivery; boxed:
    /// an acker is large, the other commands small).
    Track(u64, Box<Acker>),
    /// Acknowledge these messages.
    Ack(Vec<u64>),
    /// Stop reminding JetStream of this message (it will be delivered again).
    Forget(u64),
    /// Stop: every command before this one was handled.
    Stop,
}

/// Acknowledges one delivered message; dropped without [`Collector::ack`], the message is
/// left to JetStream's redelivery.
pub struct AckToken {
    id: u64,
    commands: Option<mpsc::UnboundedSender<Command>>,
}

impl std::fmt::Debug for AckToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AckToken({})", self.id)
    }
}

impl Drop for AckToken {
    /// Not acknowledged: no more progress reminders for it.
    fn drop(&mut self) {
        if let Some(c) = self.commands.take() {
            let _ = c.send(Command::Forget(self.id));
        }
    }
}

/// Where one sensor's earlier, unacknowledged messages stand.
#[derive(Clone, Copy, Debug)]
enum Backlog {
    /// Its consumer was not found yet (the server is not reachable).
    Unknown,
    /// `left` messages up to stream sequence `through` are still to be delivered again,
    /// until `until` at the latest.
    Waiting {
        through: u64,
        left: usize,
        until: Instant,
    },
    /// Nothing more to wait for.
    Done,
}

/// The sensors' backlogs, shared between the consuming tasks and the collector's loop.
struct Backlogs {
    sensors: Mutex<Vec<Backlog>>,
    /// Unknown consumers stop holding windows back after this (a server down at start).
    unknown_until: Instant,
}

impl Backlogs {
    /// Runs `f` on sensor `i`'s backlog.
    fn with<R>(&self, i: usize, f: impl FnOnce(&mut Backlog) -> R) -> Option<R> {
        let mut s = self.sensors.lock().unwrap_or_else(|e| e.into_inner());
        s.get_mut(i).map(f)
    }
}

/// The consuming thread.
pub struct Collector {
    deliveries: crossbeam_channel::Receiver<Delivery>,
    commands: mpsc::UnboundedSender<Command>,
    backlogs: Arc<Backlogs>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    /// Connects (retrying while the server is down) and consumes every sensor's subject.
    pub fn start(settings: CollectorSettings) -> Result<Collector, NatsError> {
        for s in &settings.sensors {
            crate::check_sensor_name(s)?;
        }
        // Bounded: a loop that falls behind holds the consumers back, not memory.
        let (tx, deliveries) = crossbeam_channel::bounded(DELIVERY_QUEUE);
        let (commands, command_rx) = mpsc::unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let backlogs = Arc::new(Backlogs {
            sensors: Mutex::new(vec![Backlog::Unknown; settings.sensors.len()]),
            unknown_until: Instant::now() + settings.ack_wait,
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(NatsError::Thread)?;
        let shared = Shared {
            tx,
            commands: commands.clone(),
            backlogs: backlogs.clone(),
            stop: stop.clone(),
            ids: Arc::new(AtomicU64::new(0)),
        };
        let thread = std::thread::Builder::new()
            .name("netanom-collect".into())
            .spawn(move || runtime.block_on(consume_all(settings, shared, command_rx)))
            .map_err(NatsError::Thread)?;
        Ok(Collector {
            deliveries,
            commands,
            backlogs,
            stop,
            thread: Some(thread),
        })
    }

    /// The delivered messages, in order per sensor.
    pub fn deliveries(&self) -> &crossbeam_channel::Receiver<Delivery> {
        &self.deliveries
    }

    /// Acknowledges messages (their window reached the scorer, or they were dropped).
    pub fn ack(&self, tokens: Vec<AckToken>) {
        if tokens.is_empty() {
            return;
        }
        let ids = tokens
            .into_iter()
            .map(|mut t| {
                t.commands = None;
                t.id
            })
            .collect();
        let _ = self.commands.send(Command::Ack(ids));
    }

    /// True while messages delivered to an earlier collector and not acknowledged by it are
    /// still to be delivered again (see the module docs): windows should not fire yet.
    pub fn replaying(&self, now: Instant) -> bool {
        let s = self
            .backlogs
            .sensors
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        s.iter().any(|b| match *b {
            Backlog::Unknown => now < self.backlogs.unknown_until,
            Backlog::Waiting { until, .. } => now < until,
            Backlog::Done => false,
        })
    }

    /// Sends the pending acknowledgements and stops consuming.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.commands.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the consuming tasks share.
#[derive(Clone)]
struct Shared {
    tx: crossbeam_channel::Sender<Delivery>,
    commands: mpsc::UnboundedSender<Command>,
    backlogs: Arc<Backlogs>,
    stop: Arc<AtomicBool>,
    ids: Arc<AtomicU64>,
}

/// Connects, starts one consuming task per sensor, and handles the loop's commands (and the
/// progress reminders) until the collector stops.
async fn consume_all(
    settings: CollectorSettings,
    shared: Shared,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let js = match connect(&settings.stream.url).await {
        Ok(js) => js,
        Err(e) => {
            tracing::error!("{e}");
            return;
        }
    };
    let stopped = || shared.stop.load(Ordering::Relaxed);
    let Some(stream) = ensure_stream(&js, &settings.stream, stopped).await else {
        return;
    };
    tracing::info!(url = %settings.stream.url, stream = %settings.stream.stream, sensors = ?settings.sensors, "consuming partial windows");
    for (i, sensor) in settings.sensors.iter().enumerate() {
        let config = consumer::pull::Config {
            durable_name: Some(format!("{}-{sensor}", settings.consumer)),
            filter_subject: subject(sensor),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: settings.ack_wait,
            max_ack_pending: settings.max_ack_pending,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        };
        tokio::spawn(consume(
            stream.clone(),
            i,
            sensor.clone(),
            config,
            shared.clone(),
        ));
    }
    let mut ackers: HashMap<u64, Box<Acker>> = HashMap::new();
    let period = (settings.ack_wait / 3).max(Duration::from_millis(100));
    let mut remind = tokio::time::interval(period);
    remind.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned = false;
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(Command::Track(id, acker)) => {
                    ackers.insert(id, acker);
                }
                Some(Command::Ack(ids)) => {
                    for id in ids {
                        let Some(a) = ackers.remove(&id) else { continue };
                        if let Err(e) = a.ack().await {
                            tracing::warn!("acknowledging a partial window failed (it will be delivered again and dropped as late): {e}");
                        }
                    }
                }
                Some(Command::Forget(id)) => {
                    ackers.remove(&id);
                }
                Some(Command::Stop) | None => return,
            },
            _ = remind.tick() => {
                // Every waiting message: work in progress, do not deliver it again.
                for a in ackers.values() {
                    if let Err(e) = a.ack_with(AckKind::Progress).await {
                        if !warned {
                            tracing::warn!("telling JetStream that partial windows still wait failed (they may be delivered again, then merged or dropped as duplicates): {e}");
                            warned = true;
                        }
                    }
                }
            }
        }
    }
}

/// Records sensor `sensor`'s backlog from its consumer's state when first found.
fn note_backlog(shared: &Shared, sensor: usize, name: &str, info: &consumer::Info) {
    shared.backlogs.with(sensor, |b| {
        if !matches!(b, Backlog::Unknown) {
            return;
        }
        *b = if info.num_ack_pending == 0 {
            Backlog::Done
        } else {
            tracing::info!(sensor = %name, unacknowledged = info.num_ack_pending, ack_wait = ?info.config.ack_wait, "partial windows delivered to an earlier collector were not acknowledged: windows wait until they are delivered again");
            Backlog::Waiting {
                through: info.delivered.stream_sequence,
                left: info.num_ack_pending,
                // JetStream delivers them again ack_wait after their last delivery, which
                // was before now; a margin for the delivery itself.
                until: Instant::now() + info.config.ack_wait + Duration::from_secs(2),
            }
        };
    });
}

/// Counts a message of sensor `sensor` at stream sequence `seq` against its backlog.
fn count_backlog(shared: &Shared, sensor: usize, seq: u64) {
    shared.backlogs.with(sensor, |b| {
        if let Backlog::Waiting { through, left, .. } = b {
            if seq <= *through {
                *left = left.saturating_sub(1);
                if *left == 0 {
                    *b = Backlog::Done;
                }
            }
        }
    });
}

/// The sensor's durable consumer: found (updated when its settings changed) or created.
async fn open_consumer(
    stream: &jetstream::stream::Stream,
    name: &str,
    config: &consumer::pull::Config,
) -> Result<jetstream::consumer::PullConsumer, String> {
    let durable = config.durable_name.clone().unwrap_or_default();
    let found = stream
        .get_or_create_consumer(&durable, config.clone())
        .await
        .map_err(|e| e.to_string())?;
    let c = &found.cached_info().config;
    if c.ack_wait == config.ack_wait && c.max_ack_pending == config.max_ack_pending {
        return Ok(found);
    }
    // Made by an earlier collector with other settings: JetStream updates a durable
    // consumer created again with changed limits.
    match stream.create_consumer(config.clone()).await {
        Ok(updated) => Ok(updated),
        Err(e) => {
            tracing::warn!(sensor = %name, consumer = %durable, "cannot update the consumer to nats.ack_wait = {:?}, nats.max_ack_pending = {} (it keeps {:?} and {}): {e}", config.ack_wait, config.max_ack_pending, c.ack_wait, c.max_ack_pending);
            Ok(found)
        }
    }
}

/// Consumes one sensor's subject for ever, re-creating the consumer after errors (a server
/// restart).
async fn consume(
    stream: jetstream::stream::Stream,
    sensor: usize,
    name: String,
    config: consumer::pull::Config,
    shared: Shared,
) {
    let stopped = || shared.stop.load(Ordering::Relaxed);
    let mut warned = false;
    let mut error_wait = ERROR_WAIT_FIRST;
    while !stopped() {
        let messages = match open_consumer(&stream, &name, &config).await {
            Ok(c) => {
                note_backlog(&shared, sensor, &name, c.cached_info());
                c.messages().await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e),
        };
        let mut messages = match messages {
            Ok(m) => {
                warned = false;
                m
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(sensor = %name, "cannot consume yet, retrying: {e}");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        while let Some(m) = messages.next().await {
            let m = match m {
                Ok(m) => {
                    error_wait = ERROR_WAIT_FIRST;
                    m
                }
                Err(e) => {
                    // A server restarting, a timeout: wait a little more each time.
                    tracing::debug!(sensor = %name, "consumer: {e}");
                    tokio::time::sleep(error_wait).await;
                    error_wait = (error_wait * 2).min(ERROR_WAIT_MAX);
                    if stopped() {
                        return;
                    }
                    continue;
                }
            };
            if let Ok(info) = m.info() {
                count_backlog(&shared, sensor, info.stream_sequence);
            }
            let (msg, acker) = m.split();
            let header = |h: &str| {
                msg.headers
                    .as_ref()
                    .and_then(|hs| hs.get(h))
                    .map(|v| v.as_str().to_string())
            };
            let clock = match header(CLOCK_HEADER).as_deref() {
                Some("replay") => PartClock::Replay,
                _ => PartClock::Live,
            };
            let id = shared.ids.fetch_add(1, Ordering::Relaxed);
            // Tracked before the loop can acknowledge it: one channel, in order.
            if shared
                .commands
                .send(Command::Track(id, Box::new(acker)))
                .is_err()
            {
                return;
            }
            let mut d = Delivery {
                sensor,
                payload: msg.payload.to_vec(),
                clock,
                end: header(END_HEADER).is_some(),
                token: AckToken {
                    id,
                    commands: Some(shared.commands.clone()),
                },
            };
            loop {
                match shared.tx.try_send(d) {
                    Ok(()) => break,
                    Err(crossbeam_channel::TrySendError::Full(back)) => {
                        if stopped() {
                            return;
                        }
                        d = back;
                        tokio::time::sleep(QUEUE_FULL_WAIT).await;
                    }
                    Err(crossbeam_channel::TrySendError::Disconnected(_)) => return,
                }
            }
            if stopped() {
                return;
            }
        }
    }
}
