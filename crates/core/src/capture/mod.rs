//! Packet sources: capture files (offline) and network interfaces (live).

pub mod live;
pub mod offline;

pub use live::{DropCounters, Fanout, LiveCapture, LiveError, LiveOptions};
pub use offline::{CaptureError, OfflineCapture, RawPacket};

/// A libpcap timestamp in nanoseconds. With nanosecond precision (which both sources request)
/// libpcap puts nanoseconds in `tv_usec`.
#[inline]
// `time_t` and `suseconds_t` are i64 here but narrower on some targets.
#[allow(clippy::useless_conversion)]
pub(crate) fn timeval_ns(ts: libc::timeval) -> i64 {
    i64::from(ts.tv_sec)
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(ts.tv_usec))
}
