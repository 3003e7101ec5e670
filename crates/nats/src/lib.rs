//! Partial windows over NATS JetStream: sensors on several taps publish them, one collector
//! merges them into windows for one model.
//!
//! ```text
//! sensor a ─┐  netanom.partial.a   ┌───────────────────────┐  durable pull consumer
//! sensor b ─┼─▶ netanom.partial.b ─▶ stream NETANOM_PARTIALS ├─▶ per sensor ─▶ collector
//!   …       ┘  (Nats-Msg-Id:        │ file storage, limits   │  (acks after the merged
//!               a/<ω µs>/<start ns>) └───────────────────────┘   window reached the scorer)
//! ```
//!
//! Every message is one encoded [`netanom_core::window::PartialWindow`] (empty windows too)
//! with its message id `<sensor>/<omega_us>/<window_start_ns>`, so a window a sensor
//! publishes again (a retry, a restarted replay) is dropped by JetStream within the stream's
//! duplicate window; a header says which clock cut it (`Netanom-Clock: live|replay`). A
//! sensor whose capture ended sends one message with `Netanom-End` and no body.
//!
//! Both sides run a small tokio runtime on a thread of their own and talk to the rest of
//! netanom (threads, no async) through channels: [`Publisher`] for the sensor, [`Collector`]
//! for the collector.

mod collector;
mod publisher;

use std::time::Duration;

use async_nats::jetstream;

pub use collector::{AckToken, Collector, CollectorSettings, Delivery};
pub use netanom_core::pipeline::PartClock;
pub use publisher::{Outgoing, PublishLimits, PublishQueue, Publisher, PublisherReport};

/// Subjects of the partial windows: `netanom.partial.<sensor>`.
pub const SUBJECT_PREFIX: &str = "netanom.partial";
/// Header naming the clock that cut the window (`live` or `replay`).
pub const CLOCK_HEADER: &str = "Netanom-Clock";
/// Header of a sensor's last message: its capture ended.
pub const END_HEADER: &str = "Netanom-End";
/// Default stream name.
pub const DEFAULT_STREAM: &str = "NETANOM_PARTIALS";

/// The JetStream stream the partial windows live in, and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSettings {
    /// `nats://host:port` (several, comma-separated, for a cluster).
    pub url: String,
    /// The stream's name.
    pub stream: String,
    /// How long JetStream remembers message ids to drop a window published again.
    pub duplicate_window: Duration,
    /// How long windows are kept (a collector down longer loses the oldest).
    pub max_age: Duration,
    /// Most bytes kept; beyond, the oldest windows go.
    pub max_bytes: i64,
}

impl StreamSettings {
    /// The defaults for `url`: 2 minutes of duplicates, a day of windows, at most 1 GiB.
    pub fn new(url: impl Into<String>) -> Self {
        StreamSettings {
            url: url.into(),
            stream: DEFAULT_STREAM.into(),
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::from_secs(24 * 3600),
            max_bytes: 1 << 30,
        }
    }

    /// The stream's configuration.
    fn config(&self) -> jetstream::stream::Config {
        jetstream::stream::Config {
            name: self.stream.clone(),
            subjects: vec![format!("{SUBJECT_PREFIX}.>")],
            storage: jetstream::stream::StorageType::File,
            duplicate_window: self.duplicate_window,
            max_age: self.max_age,
            max_bytes: self.max_bytes,
            discard: jetstream::stream::DiscardPolicy::Old,
            ..Default::default()
        }
    }
}

/// Why the transport failed.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("sensor name {0:?}: expected 1 to 64 letters, digits, '-' or '_'")]
    SensorName(String),
    #[error("cannot start the NATS client thread: {0}")]
    Thread(std::io::Error),
    #[error("NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
}

/// Checks a sensor name: it is a subject token and part of message ids.
pub fn check_sensor_name(name: &str) -> Result<(), NatsError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(NatsError::SensorName(name.into()))
    }
}

/// The subject of a sensor's partial windows.
pub fn subject(sensor: &str) -> String {
    format!("{SUBJECT_PREFIX}.{sensor}")
}

/// The message id of a sensor's window: the same window published again has the same id.
pub fn message_id(sensor: &str, omega_us: u64, start_ns: i64) -> String {
    format!("{sensor}/{omega_us}/{start_ns}")
}

/// The value of [`CLOCK_HEADER`] for a clock.
fn clock_name(clock: PartClock) -> &'static str {
    match clock {
        PartClock::Live => "live",
        PartClock::Replay => "replay",
    }
}

/// Connects (retrying in the background if the server is not up yet) and returns the
/// JetStream context.
async fn connect(url: &str) -> Result<jetstream::Context, NatsError> {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| NatsError::Connect {
            url: url.into(),
            reason: e.to_string(),
        })?;
    Ok(jetstream::new(client))
}

/// Creates the stream if it does not exist yet, retrying while the server is unreachable
/// (until `give_up` returns true).
async fn ensure_stream(
    js: &jetstream::Context,
    settings: &StreamSettings,
    give_up: impl Fn() -> bool,
) -> Option<jetstream::stream::Stream> {
    let mut warned = false;
    loop {
        match js.get_or_create_stream(settings.config()).await {
            Ok(s) => return Some(s),
            Err(e) => {
                if !warned {
                    tracing::warn!(url = %settings.url, stream = %settings.stream, "JetStream not reachable yet, retrying: {e}");
                    warned = true;
                }
                if give_up() {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids() {
        assert!(check_sensor_name("tap-1_b").is_ok());
        for bad in ["", "a.b", "a b", "x>", &"a".repeat(65)] {
            assert!(check_sensor_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(subject("a"), "netanom.partial.a");
        assert_eq!(
            message_id("a", 500_000, 1_700_000_000_500_000_000),
            "a/500000/1700000000500000000"
        );
    }
}
