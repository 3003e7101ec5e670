//! Packet sources: capture files now, live interfaces in the daemon.

pub mod offline;

pub use offline::{CaptureError, OfflineCapture};
