//! The window aggregator: packet summaries and clock ticks in, finished windows out.
//!
//! One [`WindowAggregator`] keeps the timeline (the open window, gaps, jumps, clock steps) and
//! counts the open window into one [`PartialWindow`]; closing a window finishes that partial
//! into its features, or hands it on unfinished to be merged with other parts of the same
//! window ([`partial`]). It is driven by a single thread (the capture thread live, the reader
//! offline), so the hot path takes no lock and, once constructed, allocates nothing per packet.

pub mod culprits;
pub mod distinct;
pub mod features;
pub mod omega;
pub mod partial;
pub mod spacesaving;
pub mod talkers;

use crate::decode::{key_to_addr, tcp_flags, IpSummary, PacketSummary, Transport};
use culprits::Ends;
pub use culprits::{Contributor, Contributors, Flow};
use features::{
    Family, Feature, FeatureVector, NUM_FEATURES, REPLY_SHARED_FLAGS, WELL_KNOWN_PORTS,
};
pub use omega::{Omega, OmegaError, Scales, ScalesError};
pub use partial::{MergeError, PartHeader, PartialWindow, WireError};
pub use talkers::Talkers;

/// Settings of the aggregator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowConfig {
    /// Window length ω.
    pub omega: Omega,
    /// Longest run of empty windows emitted for a gap; a longer jump is collapsed.
    pub max_gap_windows: u64,
    /// How many top talkers of each kind a window reports.
    pub top_k: usize,
}

impl WindowConfig {
    /// Default cap on emitted empty windows for one gap.
    pub const DEFAULT_MAX_GAP_WINDOWS: u64 = 100_000;

    /// A config with ω and the defaults for the rest.
    pub fn new(omega: Omega) -> Self {
        Self {
            omega,
            max_gap_windows: Self::DEFAULT_MAX_GAP_WINDOWS,
            top_k: 5,
        }
    }
}

/// A finished window: its span, its 53 features and what alerts need to explain it.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// Window start, ns since the epoch (a multiple of ω).
    pub start_ns: i64,
    /// Window end (exclusive), ns since the epoch.
    pub end_ns: i64,
    /// The 53 features in contract order.
    pub features: FeatureVector,
    /// Top sources, destinations and destination ports.
    pub talkers: Talkers,
    /// Per feature family, the hosts that contributed most (see [`Feature::family`]).
    pub contributors: Contributors,
    /// True when a distinct count is a sketch estimate (more than 65,536 values).
    pub distinct_estimated: bool,
    /// Packets stamped earlier than this window that were counted in it.
    pub late_packets: u64,
    /// True when a time jump was collapsed just before this window (the sequence broke).
    pub after_time_jump: bool,
    /// True when the window was merged from parts (capture workers, sensors) and fired
    /// without one of them (`pipeline::merge`); always false for one aggregator's windows.
    pub incomplete: bool,
}

/// Counters of what the aggregator saw and did, for logs and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AggregatorStats {
    pub packets: u64,
    pub windows: u64,
    /// Packets whose timestamp fell in an already closed window (counted in the open one).
    pub late_packets: u64,
    /// Jumps longer than `max_gap_windows` (either direction) that were collapsed.
    pub time_jumps: u64,
    /// Empty windows not emitted because of collapsed jumps.
    pub skipped_windows: u64,
}

/// A collapsed time jump, reported to the caller so it can say so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeJump {
    pub from_window_start_ns: i64,
    pub to_window_start_ns: i64,
}

/// Running sums of the open window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Sums {
    frames: u64,
    size_sum: u64,
    size_sq: u128,
    ip: u64,
    ttl_sum: u64,
    ttl_sq: u64,
    tcp: u64,
    /// TCP flag counts in [`Feature::FLAG_COUNTS`] order.
    flags: [u64; 10],
    icmp: u64,
    udp: u64,
    src_well_known: [u64; 11],
    dst_well_known: [u64; 11],
    late: u64,
}

/// Cuts a packet stream into ω windows and computes their features.
pub struct WindowAggregator {
    config: WindowConfig,
    omega_ns: i64,
    /// Index k of the open window, `None` before the first packet or tick.
    open: Option<i64>,
    /// Highest window index opened on this timeline: time already covered. Empty windows are
    /// only emitted past it, so timestamps that go back and forth cannot make the same stretch
    /// of time be filled with empty windows again and again.
    high: Option<i64>,
    jumped: bool,
    /// The open window's counts.
    partial: PartialWindow,
    stats: AggregatorStats,
    last_jump: Option<TimeJump>,
}

impl WindowAggregator {
    /// Builds an aggregator; all per-window memory is allocated here.
    pub fn new(config: WindowConfig) -> Self {
        Self {
            config,
            omega_ns: config.omega.nanos(),
            open: None,
            high: None,
            jumped: false,
            partial: PartialWindow::new(config.omega, 0),
            stats: AggregatorStats::default(),
            last_jump: None,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> WindowConfig {
        self.config
    }

    /// What the aggregator has seen so far.
    pub fn stats(&self) -> AggregatorStats {
        self.stats
    }

    /// The last collapsed time jump, taken (so each is reported once).
    #[inline]
    pub fn take_time_jump(&mut self) -> Option<TimeJump> {
        // Checked first: this runs per packet, and `take` would store `None` every time.
        self.last_jump?;
        self.last_jump.take()
    }

    /// Window index of a timestamp: floor(ts / ω) on integer nanoseconds.
    #[inline]
    fn index_of(&self, ts_ns: i64) -> i64 {
        ts_ns.div_euclid(self.omega_ns)
    }

    /// Adds one packet, first emitting every window that its timestamp closes.
    ///
    /// Each packet emits at most `max_gap_windows + 1` windows: a jump over more than
    /// `max_gap_windows` windows, either way, is collapsed.
    #[inline(always)]
    pub fn push(&mut self, packet: &PacketSummary, emit: &mut impl FnMut(Window)) {
        let k = self.index_of(packet.ts_ns);
        if !matches!(self.open, Some(open) if open == k) {
            // Another window than the open one (once per window): only then is the finishing
            // closure built, so the per-packet path is the same as for partials.
            let top_k = self.config.top_k;
            self.step_to(k, &mut |p| emit(p.finish(top_k)));
        }
        self.stats.packets += 1;
        self.partial.count(packet);
    }

    /// As [`Self::push`], handing each closed window unfinished: `emit` may read it, merge it
    /// elsewhere or swap it for an empty partial of the same ω ([`std::mem::swap`]); it is
    /// cleared afterwards.
    #[inline(always)]
    pub fn push_partials(
        &mut self,
        packet: &PacketSummary,
        emit: &mut impl FnMut(&mut PartialWindow),
    ) {
        let k = self.index_of(packet.ts_ns);
        if !matches!(self.open, Some(open) if open == k) {
            self.step_to(k, emit);
        }
        self.stats.packets += 1;
        self.partial.count(packet);
    }

    /// A packet of window `k`, not the open one: opens the first window, closes the windows
    /// its time closes, collapses a jump, or counts it late in the open window. Not inlined:
    /// inlining it made LLVM build the caller's closure on every packet (+6 instructions).
    #[inline(never)]
    fn step_to(&mut self, k: i64, emit: &mut impl FnMut(&mut PartialWindow)) {
        match self.open {
            Some(open) if k == open => {}
            Some(open) if k < open => {
                if open - k - 1 > self.max_gap() {
                    self.jump(open, k, emit);
                } else {
                    self.partial.sums.late += 1;
                    self.stats.late_packets += 1;
                }
            }
            Some(open) => self.move_to(open, k, emit),
            None => self.start_at(k),
        }
    }

    /// Tells the aggregator the time is `now_ns`: closes every window that ended by then.
    /// A clock behind the open window changes nothing (see [`Self::clock_step`] for a clock
    /// that was set back).
    pub fn advance_to(&mut self, now_ns: i64, emit: &mut impl FnMut(Window)) {
        let top_k = self.config.top_k;
        self.advance_partials_to(now_ns, &mut |p| emit(p.finish(top_k)));
    }

    /// As [`Self::advance_to`], handing closed windows unfinished (see [`Self::push_partials`]).
    pub fn advance_partials_to(&mut self, now_ns: i64, emit: &mut impl FnMut(&mut PartialWindow)) {
        let k = self.index_of(now_ns);
        match self.open {
            Some(open) if k > open => self.move_to(open, k, emit),
            Some(_) => {}
            None => self.start_at(k),
        }
    }

    /// The clock that stamps packets was stepped (set back or forward, as NTP or an operator
    /// does): the time before and after are not one timeline. Closes the open window, starts a
    /// new timeline at `now_ns` without empty windows for the step, and flags the next window
    /// so the detector restarts its sequence. Counted as a time jump.
    pub fn clock_step(&mut self, now_ns: i64, emit: &mut impl FnMut(Window)) {
        let top_k = self.config.top_k;
        self.clock_step_partials(now_ns, &mut |p| emit(p.finish(top_k)));
    }

    /// As [`Self::clock_step`], handing closed windows unfinished (see [`Self::push_partials`]).
    pub fn clock_step_partials(&mut self, now_ns: i64, emit: &mut impl FnMut(&mut PartialWindow)) {
        let k = self.index_of(now_ns);
        match self.open {
            Some(open) if open != k => {
                self.jump(open, k, emit);
                // A new timeline: what the old clock covered says nothing about this one.
                self.high = Some(k);
            }
            Some(_) => {}
            None => self.start_at(k),
        }
    }

    /// Opens window `k` as the first of a timeline.
    fn start_at(&mut self, k: i64) {
        self.open = Some(k);
        self.high = Some(k);
    }

    /// Closes the open window (end of a capture).
    pub fn finish(&mut self, emit: &mut impl FnMut(Window)) {
        let top_k = self.config.top_k;
        self.finish_partials(&mut |p| emit(p.finish(top_k)));
    }

    /// As [`Self::finish`], handing the last window unfinished (see [`Self::push_partials`]).
    pub fn finish_partials(&mut self, emit: &mut impl FnMut(&mut PartialWindow)) {
        if let Some(open) = self.open.take() {
            self.close(open, emit);
        }
    }

    fn max_gap(&self) -> i64 {
        i64::try_from(self.config.max_gap_windows).unwrap_or(i64::MAX)
    }

    /// Closes `open` and the empty windows up to `k`, which becomes the open window. Empty
    /// windows are emitted only for time not covered before (past the high-water mark).
    fn move_to(&mut self, open: i64, k: i64, emit: &mut impl FnMut(&mut PartialWindow)) {
        if k - open - 1 > self.max_gap() {
            self.jump(open, k, emit);
            return;
        }
        self.close(open, emit);
        let high = self.high.unwrap_or(open);
        let first_empty = (open + 1).max(high + 1).min(k);
        if first_empty > open + 1 {
            // Windows of time already covered (after a backward jump) were not emitted again:
            // the run is not consecutive.
            self.jumped = true;
            self.stats.skipped_windows += u64::try_from(first_empty - open - 1).unwrap_or(0);
        }
        for e in first_empty..k {
            self.emit_empty(e, emit);
        }
        self.open = Some(k);
        self.high = Some(high.max(k));
    }

    /// Collapses a jump too long to fill with empty windows.
    #[cold]
    fn jump(&mut self, open: i64, k: i64, emit: &mut impl FnMut(&mut PartialWindow)) {
        self.close(open, emit);
        self.stats.time_jumps += 1;
        self.stats.skipped_windows += (k - open).unsigned_abs().saturating_sub(1);
        self.last_jump = Some(TimeJump {
            from_window_start_ns: open.saturating_mul(self.omega_ns),
            to_window_start_ns: k.saturating_mul(self.omega_ns),
        });
        self.jumped = true;
        self.open = Some(k);
        self.high = Some(self.high.map_or(k, |h| h.max(k)));
    }

    /// Emits window `k` with nothing in it (the open partial is empty between windows).
    fn emit_empty(&mut self, k: i64, emit: &mut impl FnMut(&mut PartialWindow)) {
        self.close(k, emit);
    }

    /// Closes window `k`: hands the partial to `emit`, then empties it for the next window.
    fn close(&mut self, k: i64, emit: &mut impl FnMut(&mut PartialWindow)) {
        self.partial.index = k;
        self.partial.after_time_jump = std::mem::take(&mut self.jumped);
        self.stats.windows += 1;
        emit(&mut self.partial);
        self.partial.clear();
    }
}

impl PartialWindow {
    /// Accumulates one packet into the open window.
    #[inline(always)]
    fn count(&mut self, p: &PacketSummary) {
        let s = &mut self.sums;
        let size = u64::from(p.wire_len);
        s.frames += 1;
        s.size_sum += size;
        s.size_sq += u128::from(size * size);
        let Some(IpSummary { src, dst, ttl }) = p.ip else {
            // No IP header, no transport header: a frame counts in the sizes only.
            return;
        };
        let ttl = u64::from(ttl);
        s.ip += 1;
        s.ttl_sum += ttl;
        s.ttl_sq += ttl * ttl;
        // Both ends with their fingerprints, once; each family's role picks its key.
        let ends = Ends::new(src, dst);
        // A reply (SYN+ACK, RST+ACK, a bare RST from a lower port, ICMP echo reply /
        // unreachable / time exceeded) is counted for the host it answers, in the reply
        // families: a victim's answers never make it a contributor of its own.
        let reply = p.transport.is_reply();
        self.culprits.add_flow(&ends, p.transport);
        self.culprits.add(
            if reply {
                Family::PacketsInReplies
            } else {
                Family::Packets
            },
            &ends,
        );
        if self.src_addrs.add(src) {
            // A new source: credited to the destination it came to (a spoofed flood's victim).
            self.culprits.add(Family::NewSrcAddrs, &ends);
        }
        if self.dst_addrs.add(dst) {
            let family = if reply {
                Family::NewDstAddrsInReplies
            } else {
                Family::NewDstAddrs
            };
            self.culprits.add(family, &ends);
        }
        let s = &mut self.sums;
        match p.transport {
            Transport::Tcp {
                src_port,
                dst_port,
                flags,
            } => {
                s.tcp += 1;
                // One table load gives the flag counts this packet is in; each is counted in
                // the sums and, unless a reply leaves it to the reply families, its family
                // (usually one to three of them).
                let mut mask = FLAG_COUNT_BITS[usize::from(flags & 0x3f)];
                let credited = if reply {
                    mask & !REPLY_SHARED_MASK
                } else {
                    mask
                };
                while mask != 0 {
                    let i = mask.trailing_zeros() as usize;
                    s.flags[i] += 1;
                    if credited & (1 << i) != 0 {
                        self.culprits.add(Family::Flag(i as u8), &ends);
                    }
                    mask &= mask - 1;
                }
                if reply && flags & tcp_flags::ACK == 0 {
                    // A reply without ACK is a bare RST: RST+ACK holds the others.
                    self.culprits.add(Family::RstReplies, &ends);
                }
                self.count_ports(src_port, dst_port, &ends, reply);
            }
            Transport::Udp { src_port, dst_port } => {
                s.udp += 1;
                self.culprits.add(Family::Udp, &ends);
                self.count_ports(src_port, dst_port, &ends, false);
            }
            Transport::Icmp { .. } => {
                s.icmp += 1;
                let family = if reply {
                    Family::IcmpReplies
                } else {
                    Family::Icmp
                };
                self.culprits.add(family, &ends);
            }
            Transport::None => {}
        }
    }

    /// The port features of a TCP/UDP packet between `ends` (`reply`: a TCP reply, whose
    /// well-known and new ports count for the host it answers).
    #[inline(always)]
    fn count_ports(&mut self, src_port: u16, dst_port: u16, ends: &Ends, reply: bool) {
        if let Some(i) = well_known_index(src_port) {
            self.sums.src_well_known[i] += 1;
            let family = if reply {
                Family::SrcPortInReplies(i as u8)
            } else {
                Family::SrcPort(i as u8)
            };
            self.culprits.add(family, ends);
        }
        if let Some(i) = well_known_index(dst_port) {
            self.sums.dst_well_known[i] += 1;
            let family = if reply {
                Family::DstPortInReplies(i as u8)
            } else {
                Family::DstPort(i as u8)
            };
            self.culprits.add(family, ends);
        }
        if self.src_ports.add(src_port) {
            let family = if reply {
                Family::NewSrcPortsInReplies
            } else {
                Family::NewSrcPorts
            };
            self.culprits.add(family, ends);
        }
        if self.dst_ports.add(dst_port) {
            let family = if reply {
                Family::NewDstPortsInReplies
            } else {
                Family::NewDstPorts
            };
            self.culprits.add(family, ends);
        }
    }

    /// Computes the window's features, talkers and contributors (the one place they are
    /// computed, for one aggregator's windows and merged ones alike), and empties the partial.
    pub fn finish(&mut self, top_k: usize) -> Window {
        let start_ns = self.start_ns();
        let end_ns = start_ns.saturating_add(self.omega.nanos());
        let s = &self.sums;
        let (size_mean, size_var) = mean_var(s.frames, u128::from(s.size_sum), s.size_sq);
        let (ttl_mean, ttl_var) = mean_var(s.ip, u128::from(s.ttl_sum), u128::from(s.ttl_sq));
        let ratio = |n: u64| {
            if s.tcp == 0 {
                0.0
            } else {
                n as f64 / s.tcp as f64
            }
        };
        let estimated = self.src_addrs.is_estimated() || self.dst_addrs.is_estimated();
        let mut f = [0.0; NUM_FEATURES];
        let mut set = |feature: Feature, v: f64| f[feature.index()] = v;
        set(Feature::PktSizeMean, size_mean);
        set(Feature::PktCount, s.frames as f64);
        set(Feature::PktSizeVar, size_var);
        set(Feature::TtlMean, ttl_mean);
        set(Feature::TtlVar, ttl_var);
        set(Feature::DstIpDistinct, self.dst_addrs.distinct());
        set(Feature::SrcIpDistinct, self.src_addrs.distinct());
        set(Feature::SrcPortDistinct, self.src_ports.distinct() as f64);
        set(Feature::DstPortDistinct, self.dst_ports.distinct() as f64);
        for (feature, c) in Feature::FLAG_COUNTS.into_iter().zip(s.flags) {
            set(feature, c as f64);
        }
        // A ratio's family is its numerator's flag count.
        for feature in Feature::FLAG_RATIOS {
            if let Family::Flag(i) = feature.family() {
                set(feature, ratio(s.flags[usize::from(i)]));
            }
        }
        set(Feature::IcmpCount, s.icmp as f64);
        set(Feature::UdpCount, s.udp as f64);
        for i in 0..WELL_KNOWN_PORTS.len() {
            set(Feature::src_port(i), s.src_well_known[i] as f64);
            set(Feature::dst_port(i), s.dst_well_known[i] as f64);
        }
        let k_top = top_k;
        let (talkers, contributors) = if s.frames == 0 {
            (Talkers::default(), Contributors::default())
        } else {
            let addrs = |v: Vec<(u128, u64)>| {
                v.into_iter()
                    .map(|(a, c)| (key_to_addr(a), c))
                    .collect::<Vec<_>>()
            };
            let talkers = Talkers {
                src_addrs: addrs(self.src_addrs.top(k_top)),
                dst_addrs: addrs(self.dst_addrs.top(k_top)),
                dst_ports: self.dst_ports.top(k_top),
                approximate: estimated,
            };
            (talkers, self.culprits.take())
        };
        let window = Window {
            start_ns,
            end_ns,
            features: f,
            talkers,
            contributors,
            distinct_estimated: estimated,
            late_packets: s.late,
            after_time_jump: self.after_time_jump,
            incomplete: false,
        };
        self.clear();
        window
    }
}

/// The flag combinations of [`Feature::FLAG_COUNTS`], in that order.
const FLAG_COMBOS: [u8; 10] = [
    tcp_flags::SYN,
    tcp_flags::FIN,
    tcp_flags::PSH,
    tcp_flags::RST,
    tcp_flags::URG,
    tcp_flags::ACK,
    tcp_flags::FIN | tcp_flags::ACK,
    tcp_flags::RST | tcp_flags::ACK,
    tcp_flags::SYN | tcp_flags::ACK,
    tcp_flags::PSH | tcp_flags::ACK,
];

/// For each value of the six classic flag bits, bit i set when the packet counts in the i-th
/// of [`Feature::FLAG_COUNTS`] (all flags of the combination set, others may be too).
const FLAG_COUNT_BITS: [u16; 64] = {
    let mut t = [0u16; 64];
    let mut f = 0;
    while f < 64 {
        let mut i = 0;
        while i < FLAG_COMBOS.len() {
            if f as u8 & FLAG_COMBOS[i] == FLAG_COMBOS[i] {
                t[f] |= 1 << i;
            }
            i += 1;
        }
        f += 1;
    }
    t
};

/// The bits of [`FLAG_COUNT_BITS`] whose families leave replies out (SYN, RST, ACK).
const REPLY_SHARED_MASK: u16 = {
    let mut m = 0u16;
    let mut i = 0;
    while i < REPLY_SHARED_FLAGS.len() {
        m |= 1 << REPLY_SHARED_FLAGS[i];
        i += 1;
    }
    m
};

/// Multiplier of the perfect hash of [`WELL_KNOWN_PORTS`]: `(port × M mod 2^16) >> 12` is a
/// different slot of 16 for each (checked when the table is built).
const PORT_HASH_MUL: u16 = 705;

/// Slot of a port in [`PORT_SLOTS`].
#[inline(always)]
const fn port_slot(port: u16) -> usize {
    (port.wrapping_mul(PORT_HASH_MUL) >> 12) as usize
}

/// Per slot: the well-known port there (`u32::MAX`: none) and its index in the list.
const PORT_SLOTS: [(u32, u8); 16] = {
    let mut t = [(u32::MAX, 0u8); 16];
    let mut i = 0;
    while i < WELL_KNOWN_PORTS.len() {
        let slot = port_slot(WELL_KNOWN_PORTS[i]);
        assert!(
            t[slot].0 == u32::MAX,
            "PORT_HASH_MUL must separate the ports"
        );
        t[slot] = (WELL_KNOWN_PORTS[i] as u32, i as u8);
        i += 1;
    }
    t
};

/// Index of a well-known port in the contract's port list: one table probe, no search.
#[inline(always)]
fn well_known_index(port: u16) -> Option<usize> {
    let (p, i) = PORT_SLOTS[port_slot(port)];
    (p == u32::from(port)).then_some(usize::from(i))
}

/// Mean and population variance from n, Σx and Σx², exact in integers until the division.
fn mean_var(n: u64, sum: u128, sum_sq: u128) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let n128 = u128::from(n);
    let mean = sum as f64 / n as f64;
    // n·Σx² − (Σx)² ≥ 0 by Cauchy–Schwarz for sums of real packets (a decoded partial may
    // claim others: saturated); checked so absurd sizes fall back to floats.
    let var = match (n128.checked_mul(sum_sq), sum.checked_mul(sum)) {
        (Some(a), Some(b)) => a.saturating_sub(b) as f64 / (n as f64 * n as f64),
        _ => (sum_sq as f64 / n as f64 - mean * mean).max(0.0),
    };
    (mean, var)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(max_gap: u64) -> WindowAggregator {
        let mut c = WindowConfig::new(Omega::from_micros(1_000_000).unwrap());
        c.max_gap_windows = max_gap;
        WindowAggregator::new(c)
    }

    /// A packet summary at `secs` (no headers: counts as a frame only).
    fn at(secs: i64) -> PacketSummary {
        crate::decode::decode(
            crate::decode::LinkType::Ethernet,
            &[],
            secs * 1_000_000_000,
            60,
        )
    }

    /// Pushes packets at the given seconds; the windows emitted by each packet.
    fn feed(a: &mut WindowAggregator, secs: &[i64]) -> Vec<Vec<(i64, bool)>> {
        secs.iter()
            .map(|&t| {
                let mut out = Vec::new();
                a.push(&at(t), &mut |w| {
                    out.push((w.start_ns / 1_000_000_000, w.after_time_jump))
                });
                out
            })
            .collect()
    }

    #[test]
    fn a_jump_of_more_than_max_gap_either_way_is_collapsed() {
        let mut a = agg(10);
        let out = feed(&mut a, &[0, 12, 0, 10, 20, 31]);
        assert_eq!(out[0], []);
        assert_eq!(out[1], [(0, false)], "11 windows in between: collapsed");
        assert_eq!(out[2], [(12, true)], "11 back: collapsed");
        // 10 ahead is within max_gap, but all of it was covered before: no empties again.
        assert_eq!(out[3], [(0, true)]);
        // Windows 11 and 12 were covered before; past them, quiet windows are real.
        assert_eq!(out[4][0], (10, true), "windows 1–9 were skipped before it");
        let filled: Vec<i64> = out[4][1..].iter().map(|w| w.0).collect();
        assert_eq!(filled, (13..=19).collect::<Vec<_>>());
        assert!(out[4][1].1, "11 and 12 skipped before 13");
        // Exactly max_gap empty windows in between: filled.
        assert_eq!(out[5].len(), 11);
        assert_eq!(a.stats().time_jumps, 2);
    }

    #[test]
    fn alternating_timestamps_emit_a_bounded_number_of_windows() {
        // Two times just over max_gap apart, alternating: one window per packet.
        let mut a = agg(100_000);
        let mut times = Vec::new();
        for _ in 0..500 {
            times.extend([0, 100_002]);
        }
        let out = feed(&mut a, &times);
        let total: usize = out.iter().map(Vec::len).sum();
        assert!(
            total <= times.len(),
            "{total} windows for {} packets",
            times.len()
        );
        // max_gap + 1 apart (the crafted capture of issue 9: forward filled, backward
        // collapsed, 100,000 windows per pair): now filled once, then late packets.
        let mut a = agg(100_000);
        let mut times = Vec::new();
        for _ in 0..500 {
            times.extend([0, 100_001]);
        }
        let total: usize = feed(&mut a, &times).iter().map(Vec::len).sum();
        assert_eq!(total, 100_001, "the gap is filled once");
        // Three points walking backwards: forward moves inside covered time fill nothing.
        let mut a = agg(100);
        let mut times = Vec::new();
        let mut t = 1_000_000;
        for _ in 0..500 {
            times.extend([t, t + 100]);
            t -= 101;
        }
        let total: usize = feed(&mut a, &times).iter().map(Vec::len).sum();
        assert!(
            total <= times.len() + 100,
            "{total} windows for {} packets",
            times.len()
        );
    }

    #[test]
    fn a_clock_step_starts_a_new_timeline_without_empty_windows() {
        let mut a = agg(100_000);
        feed(&mut a, &[1000, 1001]);
        let mut out = Vec::new();
        // Set back by an hour: the open window closes, the next one is flagged.
        a.clock_step(1001 * 1_000_000_000 - 3_600_000_000_000, &mut |w| {
            out.push(w.start_ns)
        });
        assert_eq!(out, [1_001_000_000_000]);
        // The new timeline fills its own quiet windows as usual; its first window is flagged.
        let out = feed(&mut a, &[1001 - 3600, 1001 - 3600 + 3]);
        assert_eq!(out[0], []);
        assert_eq!(out[1], [(-2599, true), (-2598, false), (-2597, false)]);
        // Forward by an hour: no 3,600 empty windows.
        let mut out = Vec::new();
        a.clock_step((1001 + 5) * 1_000_000_000, &mut |w| out.push(w.start_ns));
        assert_eq!(out.len(), 1);
        assert_eq!(a.stats().time_jumps, 2);
    }

    #[test]
    fn lookup_tables_agree_with_their_definitions() {
        for port in 0..=u16::MAX {
            let expected = WELL_KNOWN_PORTS.iter().position(|&p| p == port);
            assert_eq!(well_known_index(port), expected, "{port}");
        }
        for f in 0..=u8::MAX {
            let bits = FLAG_COUNT_BITS[usize::from(f & 0x3f)];
            for (i, combo) in FLAG_COMBOS.iter().enumerate() {
                assert_eq!(bits & (1 << i) != 0, f & combo == *combo, "{f:#x} {i}");
            }
        }
    }

    #[test]
    fn mean_var_exact() {
        // sizes 60, 100, 1500: mean 553.333…, var = E[x²] − mean²
        let (m, v) = mean_var(3, 1660, 60 * 60 + 100 * 100 + 1500 * 1500);
        assert!((m - 1660.0 / 3.0).abs() < 1e-12);
        let expected = (3.0 * (3600.0 + 10000.0 + 2_250_000.0) - 1660.0f64 * 1660.0) / 9.0;
        assert!((v - expected).abs() < 1e-9);
        assert_eq!(mean_var(0, 0, 0), (0.0, 0.0));
    }
}
