//! Packet sources: capture files (offline) and network interfaces (live).

pub mod live;
pub mod offline;

pub use live::{LiveCapture, LiveError, LiveOptions};
pub use offline::{CaptureError, OfflineCapture, RawPacket};
