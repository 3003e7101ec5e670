//! Where packets come from: capture files read in order as one stream, or a live interface.

use std::path::PathBuf;

use crate::capture::{CaptureError, LiveCapture, OfflineCapture};

/// How fast capture files are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// As fast as the sinks take them.
    Unpaced,
    /// At the recorded speed; windows close by the replayed clock while waiting.
    Recorded,
}

/// What a sink downstream of the pump should do when its consumer is behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backpressure {
    /// Wait for the consumer: nothing is lost by waiting (files).
    Wait,
    /// Never wait, drop and count: waiting would make the kernel drop packets (live).
    Drop,
}

/// Capture files opened and checked, to be read in order as one stream.
pub struct Files {
    pub(super) captures: Vec<OfflineCapture>,
    pub(super) pace: Pace,
}

/// A packet source for [`super::pump`].
pub enum PacketSource {
    /// Capture files (pcap or pcapng) in time order.
    Files(Files),
    /// An open network interface.
    Live(LiveCapture),
}

impl PacketSource {
    /// Opens every file, so that a missing or bad one fails before any output is created.
    pub fn open_files(paths: &[PathBuf], pace: Pace) -> Result<PacketSource, CaptureError> {
        let captures = paths
            .iter()
            .map(|p| OfflineCapture::open(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PacketSource::Files(Files { captures, pace }))
    }

    /// A live interface opened by [`LiveCapture::open`].
    pub fn live(capture: LiveCapture) -> PacketSource {
        PacketSource::Live(capture)
    }

    /// The policy for queues behind this source: files wait, a live interface drops.
    pub fn backpressure(&self) -> Backpressure {
        match self {
            PacketSource::Files(_) => Backpressure::Wait,
            PacketSource::Live(_) => Backpressure::Drop,
        }
    }

    /// A short description for logs and systemd's status line.
    pub fn describe(&self) -> String {
        match self {
            PacketSource::Files(f) => match f.pace {
                Pace::Unpaced => format!("replaying {} file(s)", f.captures.len()),
                Pace::Recorded => format!("replaying {} file(s) in real time", f.captures.len()),
            },
            PacketSource::Live(c) => format!("capturing on {}", c.name()),
        }
    }
}
