//! Mergeable partial windows: one window's state before its features are computed.
//!
//! [`PartialWindow`] holds what the aggregator counts for a window (sums, the exact address
//! maps that fall back to a HyperLogLog and a count-min sketch, the port tallies, the
//! per-family heavy hitters, late packets). Packets of one window counted by several
//! aggregators (capture workers, sensors on several taps) give one partial each; `merge`
//! adds them and [`PartialWindow::finish`] computes the 53 features with the same code as a
//! single aggregator, so a stream split any way gives the same features (exact counts
//! bitwise; past 65,536 distinct addresses the same HyperLogLog estimate, since the merged
//! sketch is the sketch of the same set of addresses). What merging can only bound is in
//! docs/architecture.md ("Partial windows").
//!
//! The encoding ([`PartialWindow::encode`]) is a magic, a version and a postcard body
//! (varints; exact maps as sorted key/count lists with keys as deltas; sketches only when a
//! window has them, and then only the heaviest exact keys, the others folded into the
//! count-min sketch, with the HyperLogLog registers packed: an estimated tally costs about
//! 100–200 KB instead of its 65,536 exact keys). Decoding checks every length, order and
//! count: hostile bytes are an error, never a panic or a large allocation.

use serde::{Deserialize, Serialize};

use super::culprits::CulpritTally;
use super::distinct::{AddrTally, PortTally};
use super::features::{NUM_FAMILIES, WELL_KNOWN_PORTS};
use super::omega::Omega;
use super::spacesaving::WireSummary;
use super::Sums;
use crate::decode::IpKey;

/// The first bytes of an encoded partial window.
pub const MAGIC: [u8; 4] = *b"NAPW";
/// The version of the encoding this build writes and reads. 2: replies have families of
/// their own for packets, bare RSTs and the well-known ports (67 heavy-hitter families, the
/// packets family a summary of its own); an estimated address tally ships its heaviest exact
/// keys only, the rest folded into its count-min sketch, and its HyperLogLog registers packed
/// in 5 bits.
pub const VERSION: u8 = 2;

/// What the first bytes of an encoded partial say, read without decoding the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartHeader {
    /// The window length.
    pub omega: Omega,
    /// Index k of the window.
    pub index: i64,
    /// A time jump (a gap collapsed, a clock step) precedes the window: the windows its
    /// source skipped before it had no data, they were not lost.
    pub after_time_jump: bool,
}

/// A window's state before its features are computed; see the module docs.
pub struct PartialWindow {
    /// The window length.
    pub(super) omega: Omega,
    /// Index k of the window: it spans `[k·ω, (k+1)·ω)`.
    pub(super) index: i64,
    pub(super) sums: Sums,
    pub(super) src_addrs: AddrTally,
    pub(super) dst_addrs: AddrTally,
    pub(super) src_ports: PortTally,
    pub(super) dst_ports: PortTally,
    pub(super) culprits: CulpritTally,
    /// A time jump was collapsed just before this window (in any part: merged by "or").
    pub(super) after_time_jump: bool,
}

impl std::fmt::Debug for PartialWindow {
    /// The window and what it holds in brief (the tallies are large).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartialWindow")
            .field("omega", &self.omega)
            .field("index", &self.index)
            .field("frames", &self.sums.frames)
            .field("after_time_jump", &self.after_time_jump)
            .finish_non_exhaustive()
    }
}

/// Why two partial windows cannot be merged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("partial windows of different window lengths: {ours} s and {theirs} s")]
    Omega { ours: Omega, theirs: Omega },
    #[error("partial windows of different windows: index {ours} and {theirs} (ω = {omega} s)")]
    Window {
        ours: i64,
        theirs: i64,
        omega: Omega,
    },
    #[error("the HyperLogLog sketches of the two parts have different precisions")]
    Sketch,
}

/// Why bytes are not an encoded partial window.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("not a partial window (no NAPW magic)")]
    Magic,
    #[error("partial window encoding version {found}, this build reads version {VERSION}")]
    Version { found: u8 },
    #[error("partial window body does not decode: {0}")]
    Body(String),
    #[error("partial window has {0} bytes after its body")]
    Trailing(usize),
    #[error("partial window has an invalid window length of {0} µs")]
    Omega(u64),
    #[error("partial window index {index} at ω = {omega} s is out of the time range")]
    Index { index: i64, omega: Omega },
    #[error("partial window lists too many {0}")]
    TooMany(&'static str),
    #[error("partial window lists {0} out of order or twice")]
    NotSorted(&'static str),
    #[error("partial window lists {0} with a count of 0 (or an error above the count)")]
    ZeroCount(&'static str),
    #[error("partial window has {found} heavy-hitter families, this build has {expected}")]
    Families { found: usize, expected: usize },
    #[error("partial window has a malformed distinct-count sketch")]
    Sketch,
    #[error("partial window sums are inconsistent: {0}")]
    Sums(&'static str),
}

impl PartialWindow {
    /// An empty partial of window `index` at `omega`; all its memory is allocated here.
    pub fn new(omega: Omega, index: i64) -> Self {
        Self {
            omega,
            index,
            sums: Sums::default(),
            src_addrs: AddrTally::new(),
            dst_addrs: AddrTally::new(),
            src_ports: PortTally::new(),
            dst_ports: PortTally::new(),
            culprits: CulpritTally::new(),
            after_time_jump: false,
        }
    }

    /// The window length.
    pub fn omega(&self) -> Omega {
        self.omega
    }

    /// Index k of the window (it starts at k·ω).
    pub fn index(&self) -> i64 {
        self.index
    }

    /// Window start, ns since the epoch.
    pub fn start_ns(&self) -> i64 {
        self.index.saturating_mul(self.omega.nanos())
    }

    /// Frames counted in this part.
    pub fn packets(&self) -> u64 {
        self.sums.frames
    }

    /// True when this part counted nothing and no time jump precedes it.
    pub fn is_empty(&self) -> bool {
        self.sums.frames == 0 && !self.after_time_jump
    }

    /// Forgets the contents and makes this the (empty) partial of window `index`; keeps
    /// the allocations.
    pub fn reset_to(&mut self, index: i64) {
        self.clear();
        self.index = index;
    }

    /// Forgets the contents, keeps the window and the allocations.
    pub fn clear(&mut self) {
        self.sums = Sums::default();
        self.src_addrs.reset();
        self.dst_addrs.reset();
        self.src_ports.reset();
        self.dst_ports.reset();
        self.culprits.reset();
        self.after_time_jump = false;
    }

    /// Adds another part of the same window (same ω, same index): sums add, exact maps
    /// union, sketches merge, port tallies add, heavy hitters merge (see
    /// [`super::spacesaving::SpaceSaving::merge`] for the bound).
    pub fn merge(&mut self, other: &PartialWindow) -> Result<(), MergeError> {
        if self.omega != other.omega {
            return Err(MergeError::Omega {
                ours: self.omega,
                theirs: other.omega,
            });
        }
        if self.index != other.index {
            return Err(MergeError::Window {
                ours: self.index,
                theirs: other.index,
                omega: self.omega,
            });
        }
        self.src_addrs.merge(&other.src_addrs)?;
        self.dst_addrs.merge(&other.dst_addrs)?;
        self.sums.merge(&other.sums);
        self.src_ports.merge(&other.src_ports);
        self.dst_ports.merge(&other.dst_ports);
        self.culprits.merge(&other.culprits);
        self.after_time_jump |= other.after_time_jump;
        Ok(())
    }

    /// Appends the encoding (magic, version, body) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let wire = Wire {
            omega_us: self.omega.micros(),
            index: self.index,
            after_time_jump: self.after_time_jump,
            sums: self.sums.to_wire(),
            src_addrs: self.src_addrs.to_wire()?,
            dst_addrs: self.dst_addrs.to_wire()?,
            src_ports: self.src_ports.to_wire(),
            dst_ports: self.dst_ports.to_wire(),
            culprits: self.culprits.to_wire(),
        };
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        let body = postcard::to_extend(&wire, std::mem::take(out))
            .map_err(|e| WireError::Body(e.to_string()))?;
        *out = body;
        Ok(())
    }

    /// The encoding as a new buffer.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }

    /// The window length, index and time-jump flag of an encoded partial, read from its
    /// first bytes.
    pub fn peek(bytes: &[u8]) -> Result<PartHeader, WireError> {
        let body = Self::body(bytes)?;
        let ((omega_us, index, after_time_jump), _): ((u64, i64, bool), _) =
            postcard::take_from_bytes(body).map_err(|e| WireError::Body(e.to_string()))?;
        let omega = Omega::from_micros(omega_us).ok_or(WireError::Omega(omega_us))?;
        Ok(PartHeader {
            omega,
            index,
            after_time_jump,
        })
    }

    /// The body after the magic and version, which must be ours.
    fn body(bytes: &[u8]) -> Result<&[u8], WireError> {
        let body = bytes.strip_prefix(&MAGIC).ok_or(WireError::Magic)?;
        let (&version, body) = body.split_first().ok_or(WireError::Magic)?;
        if version != VERSION {
            return Err(WireError::Version { found: version });
        }
        Ok(body)
    }

    /// Decodes an encoded partial window (allocates one; see [`Self::decode_into`]).
    pub fn decode(bytes: &[u8]) -> Result<PartialWindow, WireError> {
        let omega = Omega::from_micros(1).expect("1 µs is a window length");
        let mut p = PartialWindow::new(omega, 0);
        p.decode_into(bytes)?;
        Ok(p)
    }

    /// Decodes into this partial, reusing its memory; on error it is left empty.
    pub fn decode_into(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        let result = self.read(bytes);
        if result.is_err() {
            self.clear();
        }
        result
    }

    /// [`Self::decode_into`] without the cleanup.
    fn read(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        let body = Self::body(bytes)?;
        let (wire, rest): (Wire, &[u8]) =
            postcard::take_from_bytes(body).map_err(|e| WireError::Body(e.to_string()))?;
        if !rest.is_empty() {
            return Err(WireError::Trailing(rest.len()));
        }
        let omega = Omega::from_micros(wire.omega_us).ok_or(WireError::Omega(wire.omega_us))?;
        if wire
            .index
            .checked_mul(omega.nanos())
            .and_then(|s| s.checked_add(omega.nanos()))
            .is_none()
        {
            return Err(WireError::Index {
                index: wire.index,
                omega,
            });
        }
        self.omega = omega;
        self.index = wire.index;
        self.after_time_jump = wire.after_time_jump;
        self.sums = Sums::from_wire(&wire.sums)?;
        self.src_addrs.read_wire(wire.src_addrs)?;
        self.dst_addrs.read_wire(wire.dst_addrs)?;
        self.src_ports.read_wire(&wire.src_ports)?;
        self.dst_ports.read_wire(&wire.dst_ports)?;
        self.culprits.read_wire(&wire.culprits)?;
        Ok(())
    }
}

impl Sums {
    /// Adds another part's sums (saturating: decoded parts may claim anything).
    fn merge(&mut self, o: &Sums) {
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.frames, o.frames);
        add(&mut self.size_sum, o.size_sum);
        self.size_sq = self.size_sq.saturating_add(o.size_sq);
        add(&mut self.ip, o.ip);
        add(&mut self.ttl_sum, o.ttl_sum);
        add(&mut self.ttl_sq, o.ttl_sq);
        add(&mut self.tcp, o.tcp);
        for (a, b) in self.flags.iter_mut().zip(o.flags) {
            add(a, b);
        }
        add(&mut self.icmp, o.icmp);
        add(&mut self.udp, o.udp);
        for (a, b) in self.src_well_known.iter_mut().zip(o.src_well_known) {
            add(a, b);
        }
        for (a, b) in self.dst_well_known.iter_mut().zip(o.dst_well_known) {
            add(a, b);
        }
        add(&mut self.late, o.late);
    }

    fn to_wire(&self) -> WireSums {
        WireSums {
            frames: self.frames,
            size_sum: self.size_sum,
            size_sq: self.size_sq,
            ip: self.ip,
            ttl_sum: self.ttl_sum,
            ttl_sq: self.ttl_sq,
            tcp: self.tcp,
            flags: self.flags,
            icmp: self.icmp,
            udp: self.udp,
            src_well_known: self.src_well_known.to_vec(),
            dst_well_known: self.dst_well_known.to_vec(),
            late: self.late,
        }
    }

    /// Sums from their wire form; counts of a subset may not exceed the set's.
    fn from_wire(w: &WireSums) -> Result<Sums, WireError> {
        let ports = |v: &[u64]| -> Result<[u64; 11], WireError> {
            v.try_into()
                .map_err(|_| WireError::Sums("well-known port counts"))
        };
        let s = Sums {
            frames: w.frames,
            size_sum: w.size_sum,
            size_sq: w.size_sq,
            ip: w.ip,
            ttl_sum: w.ttl_sum,
            ttl_sq: w.ttl_sq,
            tcp: w.tcp,
            flags: w.flags,
            icmp: w.icmp,
            udp: w.udp,
            src_well_known: ports(&w.src_well_known)?,
            dst_well_known: ports(&w.dst_well_known)?,
            late: w.late,
        };
        let transport = s
            .tcp
            .checked_add(s.udp)
            .ok_or(WireError::Sums("TCP and UDP"))?;
        if s.ip > s.frames || transport.saturating_add(s.icmp) > s.ip || s.late > s.frames {
            return Err(WireError::Sums(
                "more IP, TCP, UDP, ICMP or late packets than frames",
            ));
        }
        if s.flags.iter().any(|&f| f > s.tcp) {
            return Err(WireError::Sums("a flag count above the TCP packets"));
        }
        if s.src_well_known
            .iter()
            .chain(&s.dst_well_known)
            .any(|&c| c > transport)
        {
            return Err(WireError::Sums(
                "a port count above the TCP and UDP packets",
            ));
        }
        Ok(s)
    }
}

/// The encoded body (version 2).
#[derive(Serialize, Deserialize)]
struct Wire {
    omega_us: u64,
    index: i64,
    after_time_jump: bool,
    sums: WireSums,
    src_addrs: WireAddrs,
    dst_addrs: WireAddrs,
    /// `(port delta, count)`, sorted by port.
    src_ports: Vec<(u16, u32)>,
    dst_ports: Vec<(u16, u32)>,
    culprits: WireCulprits,
}

/// [`Sums`] on the wire.
#[derive(Serialize, Deserialize)]
struct WireSums {
    frames: u64,
    size_sum: u64,
    size_sq: u128,
    ip: u64,
    ttl_sum: u64,
    ttl_sq: u64,
    tcp: u64,
    flags: [u64; 10],
    icmp: u64,
    udp: u64,
    src_well_known: Vec<u64>,
    dst_well_known: Vec<u64>,
    late: u64,
}

/// An address tally on the wire.
#[derive(Serialize, Deserialize)]
pub(super) struct WireAddrs {
    /// `(key delta, count)`, sorted by key: every exact key, or with a sketch only the
    /// heaviest (see [`super::distinct::SHIPPED_EXACT`]).
    pub(super) exact: Vec<(IpKey, u32)>,
    pub(super) sketch: Option<WireSketch>,
}

/// The sketches of an estimated address tally.
#[derive(Serialize, Deserialize)]
pub(super) struct WireSketch {
    /// The HyperLogLog's 65,536 registers, 5 bits each, packed (40,960 bytes).
    pub(super) registers: Vec<u8>,
    pub(super) heavy: WireHeavy,
    pub(super) merged: bool,
}

/// A count-min sketch and its candidate keys.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireHeavy {
    pub(crate) rows: Vec<u32>,
    pub(crate) candidates: Vec<IpKey>,
}

/// The culprit tally on the wire: each family's heavy hitters, then the heaviest flows.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireCulprits {
    pub(crate) families: Vec<WireSummary<IpKey>>,
    pub(crate) flows: WireSummary<(IpKey, IpKey)>,
}

/// Checked at compile time: the sums' port arrays match the contract's port list.
const _: () = assert!(WELL_KNOWN_PORTS.len() == 11 && NUM_FAMILIES > 0);

#[cfg(test)]
#[path = "partial_tests.rs"]
mod tests;
