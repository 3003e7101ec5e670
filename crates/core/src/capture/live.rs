//! Live capture from a network interface through libpcap.

use pcap::{Active, Capture, Device, Precision};

use super::offline::RawPacket;
use crate::decode::{LinkType, SUPPORTED_LINK_TYPES};

/// How to open an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveOptions {
    pub interface: String,
    /// BPF filter expression ("" = everything).
    pub bpf_filter: String,
    /// Bytes captured per packet: headers only, the size features use the wire length.
    pub snaplen: u32,
    /// Kernel buffer size in MiB.
    pub buffer_size_mb: u32,
    pub promiscuous: bool,
    /// How long a read waits before returning so the loop can tick the clock.
    pub timeout_ms: u32,
    /// Whether the handle joins a PACKET_FANOUT group (capture workers).
    pub fanout: Fanout,
}

/// Membership of a capture handle in a Linux PACKET_FANOUT group: the kernel spreads the
/// interface's packets over the group's sockets by flow hash (both directions of a flow to
/// the same socket; fragments reassembled first, so they hash with their flow). Each
/// socket outside the group still sees every packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fanout {
    /// An ordinary handle: every packet.
    #[default]
    None,
    /// Create a new group whose id the kernel picks, unused on this host (the first worker).
    NewGroup,
    /// Join the group with this id (the other workers, and every worker that reopens).
    Join(u16),
}

/// How long after joining a fanout group a handle may still read packets from before it
/// joined, beyond libpcap's buffer timeout (the kernel hands over a ring block at the latest
/// that long after its first packet).
const JOIN_SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Sets the BPF filter `expr` ("" or blanks: every packet).
fn set_filter<T: pcap::Activated + ?Sized>(
    capture: &mut Capture<T>,
    expr: &str,
) -> Result<(), LiveError> {
    capture
        .filter(expr.trim(), true)
        .map_err(|e| LiveError::Filter {
            filter: expr.into(),
            reason: e.to_string(),
        })
}

/// `PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG`, the group's mode (linux/if_packet.h).
const FANOUT_MODE: u32 = libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG;

/// Puts the packet socket `fd` into a fanout group; the group's id.
fn join_fanout(fd: std::os::fd::RawFd, fanout: Fanout) -> std::io::Result<Option<u16>> {
    let arg: u32 = match fanout {
        Fanout::None => return Ok(None),
        Fanout::NewGroup => (FANOUT_MODE | libc::PACKET_FANOUT_FLAG_UNIQUEID) << 16,
        Fanout::Join(id) => u32::from(id) | FANOUT_MODE << 16,
    };
    let len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: `arg` is a valid u32 for the duration of the call and `len` is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_FANOUT,
            (&arg as *const u32).cast(),
            len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut got: u32 = 0;
    let mut got_len = len;
    // SAFETY: `got` and `got_len` are valid for writing and `got_len` is the size of `got`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_FANOUT,
            (&mut got as *mut u32).cast(),
            &mut got_len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Some((got & 0xffff) as u16))
}

/// Why an interface could not be opened; each message carries a hint.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("no interface named {name:?}; interfaces here: {available}")]
    NoSuchInterface { name: String, available: String },
    #[error("no permission to capture on {name:?} ({reason}); run as root or grant CAP_NET_RAW, e.g. via the systemd unit's AmbientCapabilities")]
    Permission { name: String, reason: String },
    #[error("cannot capture on {name:?}: {reason}")]
    Open { name: String, reason: String },
    #[error("capture.bpf_filter {filter:?} does not compile: {reason}")]
    Filter { filter: String, reason: String },
    #[error("interface {name:?} has link type {dlt}, which netanom does not decode; supported: {SUPPORTED_LINK_TYPES}")]
    LinkType { name: String, dlt: i32 },
    #[error("reading from {name:?}: {reason}")]
    Read { name: String, reason: String },
}

/// Kernel and interface drop counters as libpcap reports them (u32, they wrap).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounters {
    pub received: u32,
    pub kernel_dropped: u32,
    pub interface_dropped: u32,
}

/// An open interface.
pub struct LiveCapture {
    /// How it was opened, to open it again after a failure.
    options: LiveOptions,
    name: String,
    capture: Capture<Active>,
    link: LinkType,
    /// The capture's file descriptor, polled while the link is idle.
    fd: std::os::fd::RawFd,
    timeout_ms: u32,
    /// The last read found nothing: wait on the descriptor before reading again.
    idle: bool,
    /// When it joined an existing fanout group: packets stamped earlier are skipped.
    joined: Option<JoinedAt>,
}

/// When a handle joined an existing fanout group.
#[derive(Clone, Copy, Debug)]
struct JoinedAt {
    /// By the clock that stamps packets.
    wall_ns: i64,
    /// Skipping ends by then at the latest (the buffer timeout plus [`JOIN_SETTLE`]): a clock
    /// stepped back cannot make the handle skip packets for longer.
    until: std::time::Instant,
}

/// Nanoseconds since the epoch by the wall clock (the clock of the kernel's timestamps).
fn wall_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Names of the interfaces libpcap can see, for error messages.
pub fn interface_names() -> String {
    match Device::list() {
        Ok(list) if !list.is_empty() => list
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        Ok(_) => "none found".into(),
        Err(e) => format!("cannot list them ({e})"),
    }
}

/// True when libpcap lists an interface of that name (or cannot list any: then let the open
/// say what is wrong).
fn interface_exists(name: &str) -> bool {
    Device::list()
        .map(|l| l.iter().any(|d| d.name == name))
        .unwrap_or(true)
}

/// The pending error of a socket (`SO_ERROR`, which reading clears), as text.
fn socket_error(fd: std::os::fd::RawFd) -> String {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are valid for writing and `len` is the size of `err`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    match (rc, err) {
        (0, 0) => "the capture socket reported an error".into(),
        (0, e) => std::io::Error::from_raw_os_error(e).to_string(),
        _ => std::io::Error::last_os_error().to_string(),
    }
}

/// True when the interface exists and is up (administratively and with a carrier).
pub fn interface_is_up(name: &str) -> bool {
    Device::list()
        .map(|l| {
            l.iter()
                .any(|d| d.name == name && d.flags.is_up() && d.flags.is_running())
        })
        .unwrap_or(false)
}

/// CAP_NET_RAW's bit in the capability sets (linux/capability.h).
const CAP_NET_RAW: u32 = 13;

/// True when this process may open raw sockets: root, or CAP_NET_RAW in its effective set.
fn may_capture() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_NET_RAW) != 0)
}

impl LiveCapture {
    /// Opens the interface with the given options.
    pub fn open(opts: &LiveOptions) -> Result<Self, LiveError> {
        let name = opts.interface.clone();
        if !interface_exists(&name) {
            return Err(LiveError::NoSuchInterface {
                name,
                available: interface_names(),
            });
        }
        let inactive = Capture::from_device(name.as_str()).map_err(|e| LiveError::Open {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        let mut capture = inactive
            .snaplen(i32::try_from(opts.snaplen).unwrap_or(i32::MAX))
            .promisc(opts.promiscuous)
            .buffer_size(
                i32::try_from(u64::from(opts.buffer_size_mb) * 1024 * 1024).unwrap_or(i32::MAX),
            )
            .timeout(i32::try_from(opts.timeout_ms).unwrap_or(i32::MAX))
            .precision(Precision::Nano)
            .open()
            .map_err(|e| {
                // libpcap reports why activation failed only as text (the pcap crate drops
                // the status code), so the kind is decided from facts, not from the message.
                let reason = e.to_string();
                if !may_capture() {
                    LiveError::Permission {
                        name: name.clone(),
                        reason,
                    }
                } else if !interface_exists(&name) {
                    LiveError::NoSuchInterface {
                        name: name.clone(),
                        available: interface_names(),
                    }
                } else {
                    LiveError::Open {
                        name: name.clone(),
                        reason,
                    }
                }
            })?;
        if let Some(ms) =
            crate::fault::injected("fanout-join-delay-ms").filter(|_| opts.fanout != Fanout::None)
        {
            // Test hook (debug builds): packets reach the new handle before it joins.
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        if !opts.bpf_filter.trim().is_empty() {
            set_filter(&mut capture, &opts.bpf_filter)?;
        }
        // Non-blocking reads plus our own poll(): with TPACKET_V3, a blocking read on a quiet
        // link never returns (the kernel only hands over non-empty blocks), so the clock could
        // not close windows and a stop request would wait for the next packet.
        let capture = capture.setnonblock().map_err(|e| LiveError::Open {
            name: name.clone(),
            reason: format!("cannot switch to non-blocking mode: {e}"),
        })?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&capture);
        let mut options = opts.clone();
        if let Some(id) = join_fanout(fd, opts.fanout).map_err(|e| LiveError::Open {
            name: name.clone(),
            reason: format!("cannot join a PACKET_FANOUT group ({:?}): {e}", opts.fanout),
        })? {
            // Reopening after a failure joins the same group.
            options.fanout = Fanout::Join(id);
        }
        // Until it joined an existing group, the handle saw every packet of the interface, as
        // the group's members did: those (stamped before now) are not this worker's.
        let joined = matches!(opts.fanout, Fanout::Join(_)).then(|| JoinedAt {
            wall_ns: wall_ns(),
            until: std::time::Instant::now()
                + std::time::Duration::from_millis(u64::from(opts.timeout_ms))
                + JOIN_SETTLE,
        });
        let dlt = capture.get_datalink().0;
        let link = LinkType::from_dlt(dlt).ok_or(LiveError::LinkType {
            name: name.clone(),
            dlt,
        })?;
        Ok(Self {
            options,
            name,
            capture,
            link,
            fd,
            timeout_ms: opts.timeout_ms.max(1),
            idle: false,
            joined,
        })
    }

    /// The interface's link type.
    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The PACKET_FANOUT group this handle is in, if any.
    pub fn fanout_group(&self) -> Option<u16> {
        match self.options.fanout {
            Fanout::Join(id) => Some(id),
            _ => None,
        }
    }

    /// The options it was opened with (a new fanout group as the group it made).
    pub fn options(&self) -> &LiveOptions {
        &self.options
    }

    /// How long a read waits for packets (libpcap's buffer timeout), in milliseconds.
    pub fn timeout_ms(&self) -> u32 {
        self.timeout_ms
    }

    /// The next frame, or `Ok(None)` when nothing arrived within the timeout.
    #[inline]
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, LiveError> {
        if self.idle {
            self.idle = false;
            let mut pfd = libc::pollfd {
                fd: self.fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let timeout = i32::try_from(self.timeout_ms).unwrap_or(i32::MAX);
            // SAFETY: one valid pollfd for the duration of the call. EINTR or a timeout just
            // lead to a read that finds nothing.
            unsafe { libc::poll(&mut pfd, 1, timeout) };
            // A non-blocking libpcap read does not report a socket error: the kernel flags
            // the packet socket (POLLERR, SO_ERROR = ENETDOWN) when the interface goes down.
            if pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                return Err(LiveError::Read {
                    name: self.name.clone(),
                    reason: socket_error(self.fd),
                });
            }
        }
        match self.capture.next_packet() {
            Ok(packet) => {
                let ts_ns = super::timeval_ns(packet.header.ts);
                if let Some(j) = self.joined {
                    if ts_ns < j.wall_ns && std::time::Instant::now() < j.until {
                        // Read before joining the group: another worker has it too.
                        return Ok(None);
                    }
                    self.joined = None;
                }
                Ok(Some(RawPacket {
                    ts_ns,
                    wire_len: packet.header.len,
                    data: packet.data,
                }))
            }
            Err(pcap::Error::TimeoutExpired) => {
                self.idle = true;
                Ok(None)
            }
            Err(e) => Err(LiveError::Read {
                name: self.name.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// libpcap's counters (u32 each; the caller handles wrap-around).
    pub fn drops(&mut self) -> Option<DropCounters> {
        self.capture.stats().ok().map(|s| DropCounters {
            received: s.received,
            kernel_dropped: s.dropped,
            interface_dropped: s.if_dropped,
        })
    }
}
