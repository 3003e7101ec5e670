//! Reading pcap and pcapng files through libpcap, zero-copy, nanosecond timestamps.

use std::path::{Path, PathBuf};

use pcap::{Capture, Offline, Precision};

use crate::decode::{LinkType, SUPPORTED_LINK_TYPES};

/// Why a capture file could not be read; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: cannot open: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("{path}: not a pcap or pcapng capture ({reason})")]
    NotACapture { path: PathBuf, reason: String },
    #[error("{path}: unsupported link type {name} ({dlt}); supported: {SUPPORTED_LINK_TYPES}")]
    UnsupportedLinkType {
        path: PathBuf,
        dlt: i32,
        name: String,
    },
    #[error("{path}: file is cut off after packet {packets}: {reason}")]
    Truncated {
        path: PathBuf,
        packets: u64,
        reason: String,
    },
    #[error("{path}: read error after packet {packets}: {reason}")]
    Read {
        path: PathBuf,
        packets: u64,
        reason: String,
    },
}

/// One raw frame borrowed from libpcap's buffer.
#[derive(Clone, Copy, Debug)]
pub struct RawPacket<'a> {
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// Length on the wire.
    pub wire_len: u32,
    /// The captured bytes (at most the snap length).
    pub data: &'a [u8],
}

/// An open capture file with a supported link type.
pub struct OfflineCapture {
    path: PathBuf,
    capture: Capture<Offline>,
    link: LinkType,
    packets: u64,
}

impl OfflineCapture {
    /// Opens `path`, checking it is a readable capture of a supported link type.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        // Ask the OS first: libpcap's message for a missing file is less direct.
        if let Err(e) = std::fs::File::open(path) {
            return Err(CaptureError::Open {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
        if path.is_dir() {
            return Err(CaptureError::Open {
                path: path.to_path_buf(),
                reason: "is a directory".into(),
            });
        }
        let capture = Capture::from_file_with_precision(path, Precision::Nano).map_err(|e| {
            CaptureError::NotACapture {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        let dlt = capture.get_datalink();
        let link = LinkType::from_dlt(dlt.0).ok_or_else(|| CaptureError::UnsupportedLinkType {
            path: path.to_path_buf(),
            dlt: dlt.0,
            name: dlt.get_name().unwrap_or_else(|_| "unknown".into()),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            capture,
            link,
            packets: 0,
        })
    }

    /// The file's link type.
    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Packets read so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// The next frame, `Ok(None)` at the end of the file. Always inlined: it is the file
    /// loop's per-packet call, and LLVM stopped inlining it when the aggregator grew.
    #[inline(always)]
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        match self.capture.next_packet() {
            Ok(packet) => {
                self.packets += 1;
                let ts_ns = super::timeval_ns(packet.header.ts);
                Ok(Some(RawPacket {
                    ts_ns,
                    wire_len: packet.header.len,
                    data: packet.data,
                }))
            }
            Err(pcap::Error::NoMorePackets) => Ok(None),
            Err(e) => Err(read_error(&self.path, self.packets, e)),
        }
    }
}

/// The kind of a libpcap read error on a file. libpcap reports it only as text (its status is
/// -1 either way), and the text of a short read is fixed ("truncated dump file", "truncated
/// pcapng dump file"): this is the one place that reads it. Both kinds end the file the same
/// way (docs/features.md, "Damaged files"); the kind only chooses the words for the operator.
fn read_error(path: &Path, packets: u64, e: pcap::Error) -> CaptureError {
    let reason = e.to_string();
    let path = path.to_path_buf();
    if reason.contains("truncated") {
        CaptureError::Truncated {
            path,
            packets,
            reason,
        }
    } else {
        CaptureError::Read {
            path,
            packets,
            reason,
        }
    }
}
