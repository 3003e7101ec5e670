//! The sensor's side: a bounded queue of encoded partial windows, published in order by a
//! thread of its own, each retried until JetStream acknowledges it. A message larger than the
//! server's `max_payload` can never be stored: it is given up at once, counted and logged
//! (the collector finds the window missing and fires it incomplete).

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage as Publish;
use tokio::sync::mpsc;

use crate::{clock_name, connect, ensure_stream, message_id, subject, NatsError, PartClock};
use crate::{StreamSettings, CLOCK_HEADER, END_HEADER};

/// What the sensor hands the publisher.
#[derive(Debug)]
pub enum Outgoing {
    /// One encoded partial window of ω = `omega_us` starting at `start_ns`.
    Partial {
        omega_us: u64,
        start_ns: i64,
        bytes: Vec<u8>,
    },
    /// The capture ended: nothing follows.
    End,
}

/// What the publisher did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublisherReport {
    /// Messages JetStream acknowledged (duplicates included).
    pub published: u64,
    /// Of those, ones JetStream had already (a window published again): dropped by it.
    pub duplicates: u64,
    /// Attempts that failed and were retried (server down, restarting, timeouts).
    pub retries: u64,
    /// Messages given up after retrying for the give-up bound (live) or at shutdown.
    pub given_up: u64,
    /// Messages larger than the server's `max_payload`: given up at once (not retried).
    pub too_large: u64,
}

/// The sensor's end of the queue; clone it into the pipeline's sink.
#[derive(Clone)]
pub struct PublishQueue {
    tx: mpsc::Sender<Outgoing>,
}

/// The publisher is gone (it could not start, or it was finished).
#[derive(Debug, thiserror::Error)]
#[error("the NATS publisher stopped")]
pub struct PublisherGone;

impl PublishQueue {
    /// Queues `m`, waiting for room (replaying files: nothing is lost by waiting).
    pub fn wait(&self, m: Outgoing) -> Result<(), PublisherGone> {
        self.tx.blocking_send(m).map_err(|_| PublisherGone)
    }

    /// Queues `m` if there is room; `Ok(false)` when the queue is full (live: never wait).
    pub fn try_send(&self, m: Outgoing) -> Result<bool, PublisherGone> {
        match self.tx.try_send(m) {
            Ok(()) => Ok(true),
            Err(mpsc::error::TrySendError::Full(_)) => Ok(false),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(PublisherGone),
        }
    }
}

/// The publishing thread and the queue to it.
pub struct Publisher {
    queue: Option<PublishQueue>,
    thread: Option<JoinHandle<PublisherReport>>,
    /// Set by [`Publisher::finish`]: from then, retries stop after the finishing deadline.
    closing: Arc<Mutex<Option<(Instant, Duration)>>>,
    /// Why the publisher could not start, once it gave up.
    failure: Arc<Mutex<Option<NatsError>>>,
}

impl Publisher {
    /// Starts publishing `sensor`'s windows (cut by `clock`) to the stream of `settings`,
    /// creating the stream if needed. A message is retried until JetStream acknowledges it,
    /// or for at most `limits.give_up_after` (live: the duplicate window, after which a retry
    /// could be stored twice); `limits.queue` windows may wait. With
    /// `limits.connect_within`, a stream not reachable by then fails the publisher
    /// ([`Publisher::failure`]) and closes the queue.
    pub fn start(
        settings: StreamSettings,
        sensor: &str,
        clock: PartClock,
        limits: PublishLimits,
    ) -> Result<Publisher, NatsError> {
        crate::check_sensor_name(sensor)?;
        let (tx, rx) = mpsc::channel(limits.queue.max(1));
        let closing = Arc::new(Mutex::new(None));
        let failure = Arc::new(Mutex::new(None));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(NatsError::Thread)?;
        let state = PublishState {
            closing: closing.clone(),
            failure: failure.clone(),
        };
        let sensor = sensor.to_string();
        let thread = std::thread::Builder::new()
            .name("netanom-publish".into())
            .spawn(move || {
                runtime.block_on(publish_all(settings, sensor, clock, rx, limits, state))
            })
            .map_err(NatsError::Thread)?;
        Ok(Publisher {
            queue: Some(PublishQueue { tx }),
            thread: Some(thread),
            closing,
            failure,
        })
    }

    /// Why the publisher gave up before publishing anything (a server not reachable within
    /// `connect_within`), if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|e| e.to_string())
    }

    /// The queue to the publisher.
    pub fn queue(&self) -> PublishQueue {
        self.queue.clone().expect("the queue is kept until finish")
    }

    /// Publishes what is queued (every clone of the queue must be dropped by now), retrying
    /// each for at most `deadline` from now, and stops; an error when it gave up connecting
    /// (nothing was published).
    pub fn finish(mut self, deadline: Duration) -> Result<PublisherReport, NatsError> {
        *self.closing.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), deadline));
        self.queue = None;
        let report = self
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        match self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
}

/// The publisher's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishLimits {
    /// Windows that may wait to be published.
    pub queue: usize,
    /// Retry a message at most this long (`None`: until the publisher finishes).
    pub give_up_after: Option<Duration>,
    /// Fail if the stream is not reachable within this (`None`: keep trying).
    pub connect_within: Option<Duration>,
}

/// What the publishing thread shares with [`Publisher`].
struct PublishState {
    closing: Arc<Mutex<Option<(Instant, Duration)>>>,
    failure: Arc<Mutex<Option<NatsError>>>,
}

impl PublishState {
    /// Records why the publisher gave up.
    fn fail(&self, e: NatsError) {
        tracing::error!("{e}");
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }
}

/// The publishing loop: every queued message in order, each retried until acknowledged.
async fn publish_all(
    settings: StreamSettings,
    sensor: String,
    clock: PartClock,
    mut rx: mpsc::Receiver<Outgoing>,
    limits: PublishLimits,
    state: PublishState,
) -> PublisherReport {
    let mut report = PublisherReport::default();
    let closed = || {
        state
            .closing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|(at, d)| at.elapsed() >= d)
    };
    let js = match connect(&settings.url).await {
        Ok(js) => js,
        Err(e) => {
            state.fail(e);
            return report;
        }
    };
    let started = Instant::now();
    let too_slow = || {
        limits
            .connect_within
            .is_some_and(|d| started.elapsed() >= d)
    };
    if ensure_stream(&js, &settings, || closed() || too_slow())
        .await
        .is_none()
    {
        let reason = match limits.connect_within {
            Some(d) if too_slow() => {
                format!("JetStream not reachable within {d:?}; nothing was published")
            }
            _ => "JetStream never became reachable; nothing was published".into(),
        };
        state.fail(NatsError::Connect {
            url: settings.url.clone(),
            reason,
        });
        // Dropping the queue tells the sensor at once.
        drop(rx);
        return report;
    }
    let client = js.client();
    tracing::info!(url = %settings.url, stream = %settings.stream, subject = %subject(&sensor), "publishing partial windows");
    let subj = subject(&sensor);
    let mut last_start = 0i64;
    while let Some(m) = rx.recv().await {
        let (id, size, publish) = match m {
            Outgoing::Partial {
                omega_us,
                start_ns,
                bytes,
            } => {
                last_start = start_ns;
                let id = message_id(&sensor, omega_us, start_ns);
                let max = client.max_payload();
                if bytes.len() > max {
                    too_large(&mut report, &id, bytes.len(), max);
                    continue;
                }
                (id, bytes.len(), Publish::build().payload(bytes.into()))
            }
            Outgoing::End => (
                format!("{sensor}/end/{last_start}"),
                0,
                Publish::build().header(END_HEADER, "1"),
            ),
        };
        let publish = publish
            .message_id(&id)
            .header(CLOCK_HEADER, clock_name(clock));
        let first = Instant::now();
        loop {
            let attempt = match js.send_publish(subj.clone(), publish.clone()).await {
                Ok(ack) => ack.await.map_err(|e| e.to_string()),
                Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    // The headers pushed it over: no retry can succeed.
                    too_large(&mut report, &id, size, client.max_payload());
                    break;
                }
                Err(e) => Err(e.to_string()),
            };
            match attempt {
                Ok(ack) => {
                    report.published += 1;
                    report.duplicates += u64::from(ack.duplicate);
                    break;
                }
                Err(e) => {
                    report.retries += 1;
                    if report.retries.is_power_of_two() {
                        tracing::warn!(message_id = %id, retries = report.retries, "publishing failed, retrying: {e}");
                    }
                    if limits.give_up_after.is_some_and(|g| first.elapsed() >= g) || closed() {
                        report.given_up += 1;
                        tracing::error!(message_id = %id, "partial window given up after retrying for {:?}: {e}", first.elapsed());
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    report
}

/// Counts and logs a message larger than the server's `max_payload` (never published).
fn too_large(report: &mut PublisherReport, id: &str, size: usize, max: usize) {
    report.too_large += 1;
    tracing::error!(message_id = %id, bytes = size, max_payload = max, too_large = report.too_large, "partial window larger than the NATS server's max_payload: not published (the collector merges its window without this sensor, incomplete); raise max_payload in nats-server.conf");
}
