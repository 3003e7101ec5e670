//! The collector's side: one durable pull consumer per sensor (so a sensor far ahead never
//! holds back another's deliveries), every message handed over a channel with a token that
//! acknowledges it once the window it belongs to reached the scorer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, message::Acker};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::{connect, ensure_stream, subject, NatsError, PartClock, StreamSettings};
use crate::{CLOCK_HEADER, END_HEADER};

/// How the collector consumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectorSettings {
    pub stream: StreamSettings,
    /// Prefix of the durable consumers' names: `<consumer>-<sensor>`. A restarted collector
    /// with the same prefix resumes where it acknowledged.
    pub consumer: String,
    /// The sensors, in the order the merger numbers them.
    pub sensors: Vec<String>,
    /// How long JetStream waits for an acknowledgement before delivering again.
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
    /// Acknowledges the message ([`Collector::ack`]).
    pub token: AckToken,
}

/// Acknowledges one delivered message.
pub struct AckToken(Acker);

impl std::fmt::Debug for AckToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AckToken")
    }
}

/// The consuming thread.
pub struct Collector {
    deliveries: crossbeam_channel::Receiver<Delivery>,
    acks: Option<mpsc::UnboundedSender<Vec<AckToken>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    /// Connects (retrying while the server is down) and consumes every sensor's subject.
    pub fn start(settings: CollectorSettings) -> Result<Collector, NatsError> {
        for s in &settings.sensors {
            crate::check_sensor_name(s)?;
        }
        // Bounded by JetStream: at most max_ack_pending unacknowledged messages per sensor.
        let (tx, deliveries) = crossbeam_channel::unbounded();
        let (acks, ack_rx) = mpsc::unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(NatsError::Thread)?;
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("netanom-collect".into())
            .spawn(move || runtime.block_on(consume_all(settings, tx, ack_rx, stop2)))
            .map_err(NatsError::Thread)?;
        Ok(Collector {
            deliveries,
            acks: Some(acks),
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
        if let Some(a) = &self.acks {
            let _ = a.send(tokens);
        }
    }

    /// Sends the pending acknowledgements and stops consuming.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.acks = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects, starts one consuming task per sensor, and acknowledges what it is told until
/// the collector stops.
async fn consume_all(
    settings: CollectorSettings,
    tx: crossbeam_channel::Sender<Delivery>,
    mut acks: mpsc::UnboundedReceiver<Vec<AckToken>>,
    stop: Arc<AtomicBool>,
) {
    let js = match connect(&settings.stream.url).await {
        Ok(js) => js,
        Err(e) => {
            tracing::error!("{e}");
            return;
        }
    };
    let stopped = || stop.load(Ordering::Relaxed);
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
            tx.clone(),
            stop.clone(),
        ));
    }
    drop(tx);
    // Until the collector stops (it drops the sender): acknowledge in order.
    while let Some(tokens) = acks.recv().await {
        for AckToken(a) in tokens {
            if let Err(e) = a.ack().await {
                tracing::warn!("acknowledging a partial window failed (it will be delivered again and dropped as late): {e}");
            }
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
    tx: crossbeam_channel::Sender<Delivery>,
    stop: Arc<AtomicBool>,
) {
    let durable = config.durable_name.clone().unwrap_or_default();
    let mut warned = false;
    while !stop.load(Ordering::Relaxed) {
        let messages = match stream
            .get_or_create_consumer(&durable, config.clone())
            .await
        {
            Ok(c) => c.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
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
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(sensor = %name, "consumer: {e}");
                    continue;
                }
            };
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
            let d = Delivery {
                sensor,
                payload: msg.payload.to_vec(),
                clock,
                end: header(END_HEADER).is_some(),
                token: AckToken(acker),
            };
            if tx.send(d).is_err() || stop.load(Ordering::Relaxed) {
                return;
            }
        }
    }
}
