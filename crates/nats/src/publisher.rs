//! The sensor's side: a bounded queue of encoded partial windows, published in order by a
//! thread of its own, each retried until JetStream acknowledges it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    failed: Arc<AtomicBool>,
}

impl Publisher {
    /// Starts publishing `sensor`'s windows (cut by `clock`) to the stream of `settings`,
    /// creating the stream if needed. A message is retried until JetStream acknowledges it,
    /// or for at most `give_up_after` (live: the duplicate window, after which a retry could
    /// be stored twice); `queue` windows may wait.
    pub fn start(
        settings: StreamSettings,
        sensor: &str,
        clock: PartClock,
        queue: usize,
        give_up_after: Option<Duration>,
    ) -> Result<Publisher, NatsError> {
        crate::check_sensor_name(sensor)?;
        let (tx, rx) = mpsc::channel(queue.max(1));
        let closing = Arc::new(Mutex::new(None));
        let failed = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(NatsError::Thread)?;
        let (sensor, closing2, failed2) = (sensor.to_string(), closing.clone(), failed.clone());
        let thread = std::thread::Builder::new()
            .name("netanom-publish".into())
            .spawn(move || {
                runtime.block_on(publish_all(
                    settings,
                    sensor,
                    clock,
                    rx,
                    give_up_after,
                    closing2,
                    failed2,
                ))
            })
            .map_err(NatsError::Thread)?;
        Ok(Publisher {
            queue: Some(PublishQueue { tx }),
            thread: Some(thread),
            closing,
            failed,
        })
    }

    /// The queue to the publisher.
    pub fn queue(&self) -> PublishQueue {
        self.queue.clone().expect("the queue is kept until finish")
    }

    /// True once the publisher gave up connecting (a bad URL).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Publishes what is queued (every clone of the queue must be dropped by now), retrying
    /// each for at most `deadline` from now, and stops.
    pub fn finish(mut self, deadline: Duration) -> PublisherReport {
        *self.closing.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), deadline));
        self.queue = None;
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

/// The publishing loop: every queued message in order, each retried until acknowledged.
async fn publish_all(
    settings: StreamSettings,
    sensor: String,
    clock: PartClock,
    mut rx: mpsc::Receiver<Outgoing>,
    give_up_after: Option<Duration>,
    closing: Arc<Mutex<Option<(Instant, Duration)>>>,
    failed: Arc<AtomicBool>,
) -> PublisherReport {
    let mut report = PublisherReport::default();
    let closed = || {
        closing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|(at, d)| at.elapsed() >= d)
    };
    let js = match connect(&settings.url).await {
        Ok(js) => js,
        Err(e) => {
            tracing::error!("{e}");
            failed.store(true, Ordering::Relaxed);
            return report;
        }
    };
    if ensure_stream(&js, &settings, closed).await.is_none() {
        tracing::error!(url = %settings.url, "JetStream never became reachable; nothing was published");
        failed.store(true, Ordering::Relaxed);
        while rx.recv().await.is_some() {
            report.given_up += 1;
        }
        return report;
    }
    tracing::info!(url = %settings.url, stream = %settings.stream, subject = %subject(&sensor), "publishing partial windows");
    let subj = subject(&sensor);
    let mut last_start = 0i64;
    while let Some(m) = rx.recv().await {
        let (id, publish) = match m {
            Outgoing::Partial {
                omega_us,
                start_ns,
                bytes,
            } => {
                last_start = start_ns;
                let id = message_id(&sensor, omega_us, start_ns);
                (id, Publish::build().payload(bytes.into()))
            }
            Outgoing::End => (
                format!("{sensor}/end/{last_start}"),
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
                    if give_up_after.is_some_and(|g| first.elapsed() >= g) || closed() {
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
