//! The pipeline's heartbeat behind `/healthz` (and the systemd watchdog); no HTTP here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The pipeline's heartbeat: the scorer calls [`Health::beat`] for every window it handles;
/// `/healthz` fails once no beat came for `stale_after`, or after [`Health::fail`].
#[derive(Clone)]
pub struct Health {
    inner: Arc<HealthInner>,
}

/// The state shared by every clone of a [`Health`].
struct HealthInner {
    /// Origin of the millisecond clock.
    base: Instant,
    /// Milliseconds from `base` to the last beat (the creation counts as one).
    last_beat_ms: AtomicU64,
    /// Longest time without a beat that is still healthy.
    stale_after: Duration,
    /// Why the pipeline failed for good, once it has.
    failed: Mutex<Option<String>>,
}

impl Health {
    /// A heartbeat, fresh now, that goes stale after `stale_after` without a beat.
    pub fn new(stale_after: Duration) -> Health {
        Health {
            inner: Arc::new(HealthInner {
                base: Instant::now(),
                last_beat_ms: AtomicU64::new(0),
                stale_after,
                failed: Mutex::new(None),
            }),
        }
    }

    /// The pipeline is alive.
    pub fn beat(&self) {
        let ms = self.inner.base.elapsed().as_millis() as u64;
        self.inner.last_beat_ms.store(ms, Ordering::Relaxed);
    }

    /// Marks the pipeline failed for good (a thread died); `/healthz` reports `reason`.
    pub fn fail(&self, reason: impl Into<String>) {
        *self.inner.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.into());
    }

    /// Time since the last beat.
    pub fn since_last_beat(&self) -> Duration {
        let now = self.inner.base.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.inner.last_beat_ms.load(Ordering::Relaxed)))
    }

    /// `Ok` while alive, else why not. Also what a systemd watchdog thread should check before
    /// each `WATCHDOG=1`.
    pub fn check(&self) -> Result<(), String> {
        if let Some(reason) = self
            .inner
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            return Err(format!("pipeline failed: {reason}"));
        }
        let since = self.since_last_beat();
        if since > self.inner.stale_after {
            return Err(format!(
                "stale: no window scored for {} s (limit {} s)",
                since.as_secs(),
                self.inner.stale_after.as_secs()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_without_beats_and_failed_for_good() {
        let h = Health::new(Duration::from_secs(3600));
        assert_eq!(h.check(), Ok(()), "fresh at creation");
        let stale = Health::new(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(5));
        let e = stale.check().unwrap_err();
        assert!(
            e.starts_with("stale: no window scored for 0 s (limit 0 s)"),
            "{e}"
        );
        // A clone shares the heartbeat.
        let clone = h.clone();
        clone.beat();
        assert!(h.since_last_beat() < Duration::from_secs(3600));
        clone.fail("capture thread exited");
        assert_eq!(
            h.check(),
            Err("pipeline failed: capture thread exited".to_string())
        );
        h.beat();
        assert!(h.check().is_err(), "a beat does not undo a failure");
    }
}
