//! Culprits: per feature family, the hosts that contributed most to it in a window, and the
//! flows (source, destination pairs) that carried most packets.
//!
//! One [`SpaceSaving`] summary per [`Family`] (8 counters each, about 15 KiB for all of them,
//! allocated once): memory does not grow with the number of hosts, so a spoofed flood cannot
//! blow it up. A packet counts in the families it belongs to (its flags, protocol, well-known
//! ports; replies in the reply families), keyed by the end of the packet its family's role
//! ([`Family::role`]) names: the source for most, the destination for replies (SYN+ACK,
//! RST+ACK, a bare RST from a lower port, ICMP replies: the host that provoked them, so a
//! victim's answers never count as its own) and for new sources (a spoofed flood's victim).
//! That choice is made here, in
//! [`CulpritTally::add`], from the packet's [`Ends`]; a distinct-count family counts a key
//! only when the packet brought a value not yet seen in the window. One more summary, keyed
//! by the (source, destination) pair, keeps per flow the protocol and ports its packets all
//! shared, if they did: whom a culprit's packets went to, and how. [`Contributors`] is what a closed window
//! keeps: the top few of each family, each family's total, the top flows.

use std::net::IpAddr;

use super::features::{Family, Feature, KeyKind, NUM_FAMILIES};
use super::partial::{WireCulprits, WireError};
use super::spacesaving::{pair_fingerprint, SlotValue, SpaceSaving};
use crate::decode::{key_to_addr, IpKey, Transport};

pub use super::spacesaving::{fingerprint, SLOTS};

/// Contributors a closed window keeps per family.
pub const CONTRIBUTORS_PER_FAMILY: usize = 3;

/// Per family (by [`Family::index`]): true when it is keyed by the packet's destination.
const BY_DST: [bool; NUM_FAMILIES] = {
    let mut t = [false; NUM_FAMILIES];
    let mut i = 0;
    while i < NUM_FAMILIES {
        t[i] = matches!(Family::ALL[i].role().key(), KeyKind::DstAddr);
        i += 1;
    }
    t
};

/// Both addresses of an IP packet with their fingerprints, computed once per packet and
/// shared by every summary it updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ends {
    pub src: IpKey,
    pub dst: IpKey,
    src_fp: u16,
    dst_fp: u16,
}

impl Ends {
    /// The ends of a packet from `src` to `dst`.
    #[inline(always)]
    pub fn new(src: IpKey, dst: IpKey) -> Self {
        Ends {
            src,
            dst,
            src_fp: fingerprint(src),
            dst_fp: fingerprint(dst),
        }
    }

    /// The fingerprint of the (source, destination) pair; never 0, and not that of the
    /// reverse pair.
    #[inline(always)]
    fn pair_fp(&self) -> u16 {
        pair_fingerprint(self.src_fp, self.dst_fp)
    }
}

/// A packet as a flow's slot sees it: protocol number and ports (0 without ports) packed in
/// one word, `proto << 32 | src_port << 16 | dst_port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowShape(u64);

impl FlowShape {
    /// A packet of IP protocol `proto` between these ports.
    #[inline(always)]
    pub const fn new(proto: u8, src_port: u16, dst_port: u16) -> Self {
        FlowShape((proto as u64) << 32 | (src_port as u64) << 16 | dst_port as u64)
    }

    /// The shape of a packet with this transport header.
    #[inline(always)]
    pub const fn of(transport: Transport) -> Self {
        let (src_port, dst_port) = transport.ports();
        FlowShape::new(transport.protocol(), src_port, dst_port)
    }
}

/// What a flow's slot keeps of its packets' shapes: the first one, and the bits in which any
/// later one differed from it (two instructions an update; merges exactly: the bits either
/// part saw differ, and those in which the two first shapes differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowSeen {
    first: u64,
    differ: u64,
}

/// The bits of each field of a [`FlowShape`].
const PROTO_BITS: u64 = 0xff << 32;
const SRC_PORT_BITS: u64 = 0xffff << 16;
const DST_PORT_BITS: u64 = 0xffff;

impl FlowSeen {
    /// The field under `mask` (shifted down by `shift`), if every packet seen had the same.
    fn same(&self, mask: u64, shift: u32) -> Option<u64> {
        (self.differ & mask == 0).then_some((self.first & mask) >> shift)
    }
}

impl SlotValue for FlowSeen {
    type Input = FlowShape;
    const EMPTY: Self = FlowSeen {
        first: 0,
        differ: 0,
    };

    #[inline(always)]
    fn start(x: FlowShape) -> Self {
        FlowSeen {
            first: x.0,
            differ: 0,
        }
    }

    #[inline(always)]
    fn hit(&mut self, x: FlowShape) {
        self.differ |= self.first ^ x.0;
    }

    fn merge(&mut self, other: &Self) {
        self.differ |= other.differ | (self.first ^ other.first);
    }

    fn to_words(&self) -> [u64; 2] {
        [self.first, self.differ]
    }

    fn from_words(w: [u64; 2]) -> Self {
        FlowSeen {
            first: w[0],
            differ: w[1],
        }
    }
}

/// The open window's heavy hitters, one summary per family, and its heaviest flows.
pub struct CulpritTally {
    // Inline, not boxed: one load less per update (the aggregator itself lives on the heap
    // or the stack of its thread, allocated once).
    families: [SpaceSaving; NUM_FAMILIES],
    flows: SpaceSaving<(IpKey, IpKey), FlowSeen>,
}

impl Default for CulpritTally {
    fn default() -> Self {
        Self::new()
    }
}

impl CulpritTally {
    /// Every family's summary, empty.
    pub fn new() -> Self {
        Self {
            families: [const { SpaceSaving::new() }; NUM_FAMILIES],
            flows: SpaceSaving::new(),
        }
    }

    /// Counts one packet (or new value) of `family`, for the end of the packet its role
    /// names (one table load; a constant when `family` is).
    #[inline(always)]
    pub fn add(&mut self, family: Family, ends: &Ends) {
        let i = family.index();
        let (key, fp) = if BY_DST[i] {
            (ends.dst, ends.dst_fp)
        } else {
            (ends.src, ends.src_fp)
        };
        self.families[i].add(key, fp);
    }

    /// Counts one IP packet in its flow (once per IP packet).
    #[inline(always)]
    pub fn add_flow(&mut self, ends: &Ends, transport: Transport) {
        self.flows.add_with(
            (ends.src, ends.dst),
            ends.pair_fp(),
            FlowShape::of(transport),
        );
    }

    /// Adds the tally of another part of the same window (counted apart, e.g. on another
    /// thread), with Space-Saving's bounds over both ([`SpaceSaving::merge`]).
    pub fn merge(&mut self, other: &CulpritTally) {
        for (a, b) in self.families.iter_mut().zip(&other.families) {
            a.merge(b);
        }
        self.flows.merge(&other.flows);
    }

    /// The top [`CONTRIBUTORS_PER_FAMILY`] of every family, each family's total, the top
    /// flows; then forgets the window.
    pub fn take(&mut self) -> Contributors {
        // Gathered on the stack, then one allocation of the exact size.
        let mut buf = [EMPTY; NUM_FAMILIES * CONTRIBUTORS_PER_FAMILY];
        let mut n = 0;
        let mut ends = [0u16; NUM_FAMILIES];
        let mut totals = [0u64; NUM_FAMILIES];
        for (i, s) in self.families.iter_mut().enumerate() {
            s.each_top(CONTRIBUTORS_PER_FAMILY, |key, count, max_error, _| {
                buf[n] = Contributor {
                    addr: key_to_addr(key),
                    count,
                    max_error,
                };
                n += 1;
            });
            totals[i] = s.total();
            s.reset();
            // At most NUM_FAMILIES × 3 entries: fits.
            ends[i] = n as u16;
        }
        let mut flows = Vec::with_capacity(SLOTS);
        self.flows
            .each_top(SLOTS, |(src, dst), packets, max_error, votes| {
                flows.push(Flow::new(src, dst, packets, max_error, votes))
            });
        self.flows.reset();
        Contributors {
            entries: buf[..n].to_vec(),
            ends,
            totals,
            flows,
        }
    }

    /// Forgets the window without reporting it.
    pub fn reset(&mut self) {
        for s in self.families.iter_mut() {
            s.reset();
        }
        self.flows.reset();
    }

    /// Every summary as it travels: the families in family order, then the flows.
    pub(super) fn to_wire(&self) -> WireCulprits {
        WireCulprits {
            families: self.families.iter().map(SpaceSaving::to_wire).collect(),
            flows: self.flows.to_wire(),
        }
    }

    /// Fills the tally from its wire form: one summary per family, each checked.
    pub(super) fn read_wire(&mut self, wire: &WireCulprits) -> Result<(), WireError> {
        if wire.families.len() != NUM_FAMILIES {
            return Err(WireError::Families {
                found: wire.families.len(),
                expected: NUM_FAMILIES,
            });
        }
        for (s, w) in self.families.iter_mut().zip(wire.families.iter()) {
            s.read_wire(w)?;
        }
        self.flows.read_wire(&wire.flows)
    }
}

/// A placeholder entry (never read: only the filled part of a buffer is kept).
const EMPTY: Contributor = Contributor {
    addr: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    count: 0,
    max_error: 0,
};

/// A host that contributed to a family in a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contributor {
    /// The key: the end of the packets its family's role names
    /// ([`Family::role`](super::features::Family::role)).
    pub addr: IpAddr,
    /// Its count in the family ([`Family::unit`]): at least the true count.
    pub count: u64,
    /// How much `count` may exceed the true count (0: exact; at most N / [`SLOTS`]).
    pub max_error: u64,
}

impl Contributor {
    /// The count it certainly has: `count − max_error`.
    pub fn at_least(&self) -> u64 {
        self.count.saturating_sub(self.max_error)
    }
}

/// One of a window's heaviest flows: the IP packets from one address to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Its packets, at least the true number (Space-Saving over all pairs of the window).
    pub packets: u64,
    /// How much `packets` may exceed the true number.
    pub max_error: u64,
    /// The IP protocol (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6) of every packet of it the
    /// summary saw, if they all had the same.
    pub proto: Option<u8>,
    /// The TCP/UDP source port of every packet seen, if one (only for TCP or UDP flows).
    pub src_port: Option<u16>,
    /// The TCP/UDP destination port of every packet seen, if one (likewise).
    pub dst_port: Option<u16>,
}

impl Flow {
    /// A flow from its slot: the protocol and ports all its packets had.
    fn new(src: IpKey, dst: IpKey, packets: u64, max_error: u64, v: &FlowSeen) -> Flow {
        let proto = v.same(PROTO_BITS, 32).map(|p| p as u8);
        let ported = matches!(proto, Some(6 | 17));
        let port = |mask, shift| v.same(mask, shift).filter(|_| ported).map(|p| p as u16);
        Flow {
            src: key_to_addr(src),
            dst: key_to_addr(dst),
            packets,
            max_error,
            proto,
            src_port: port(SRC_PORT_BITS, 16),
            dst_port: port(DST_PORT_BITS, 0),
        }
    }
}

/// A closed window's top contributors of every family, largest first within a family, with
/// each family's total, and its heaviest flows.
#[derive(Clone, Debug, PartialEq)]
pub struct Contributors {
    entries: Vec<Contributor>,
    /// `ends[i]`: end of family i's entries in `entries` (empty: an empty window).
    ends: [u16; NUM_FAMILIES],
    /// `totals[i]`: family i's total N in the window (packets, or new values).
    totals: [u64; NUM_FAMILIES],
    /// The heaviest flows, most packets first (at most [`SLOTS`]).
    flows: Vec<Flow>,
}

impl Default for Contributors {
    /// No contributors (an empty window); allocates nothing.
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            ends: [0; NUM_FAMILIES],
            totals: [0; NUM_FAMILIES],
            flows: Vec::new(),
        }
    }
}

impl Contributors {
    /// The contributors of a family, largest count first (empty when it saw no packet).
    pub fn of(&self, family: Family) -> &[Contributor] {
        let i = family.index();
        let end = usize::from(self.ends[i]).min(self.entries.len());
        let start = if i == 0 {
            0
        } else {
            usize::from(self.ends[i - 1]).min(end)
        };
        &self.entries[start..end]
    }

    /// The family's total in the window: its packets, or the new values it counted.
    pub fn total(&self, family: Family) -> u64 {
        self.totals[family.index()]
    }

    /// The contributors that explain a feature, with their family (those of each of its
    /// [`Feature::families`], in that order).
    pub fn for_feature(&self, feature: Feature) -> impl Iterator<Item = (Family, &Contributor)> {
        feature
            .families()
            .iter()
            .flat_map(move |&fam| self.of(fam).iter().map(move |c| (fam, c)))
    }

    /// The total of a feature's families.
    pub fn feature_total(&self, feature: Feature) -> u64 {
        feature.families().iter().map(|&f| self.total(f)).sum()
    }

    /// The heaviest flows, most packets first.
    pub fn flows(&self) -> &[Flow] {
        &self.flows
    }

    /// The heaviest flow `addr` sent; if it sent none of them, the heaviest it received.
    pub fn flow_of(&self, addr: IpAddr) -> Option<&Flow> {
        self.flows
            .iter()
            .find(|f| f.src == addr)
            .or_else(|| self.flows.iter().find(|f| f.dst == addr))
    }

    /// Builds contributors from per-family lists (tests and fixtures); a family's total is
    /// the sum of its listed counts.
    pub fn from_lists(lists: &[(Family, Vec<Contributor>)]) -> Self {
        let mut entries = Vec::new();
        let mut ends = [0u16; NUM_FAMILIES];
        let mut totals = [0u64; NUM_FAMILIES];
        for fam in Family::ALL {
            if let Some((_, l)) = lists.iter().find(|(f, _)| *f == fam) {
                entries.extend(l.iter().copied());
                totals[fam.index()] = l.iter().map(|c| c.count).sum();
            }
            ends[fam.index()] = u16::try_from(entries.len()).unwrap_or(u16::MAX);
        }
        Contributors {
            entries,
            ends,
            totals,
            flows: Vec::new(),
        }
    }

    /// Sets a family's total (tests and fixtures).
    pub fn with_total(mut self, family: Family, total: u64) -> Self {
        self.totals[family.index()] = total;
        self
    }

    /// Sets the flows (tests and fixtures).
    pub fn with_flows(mut self, flows: Vec<Flow>) -> Self {
        self.flows = flows;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{ipv4_key, tcp_flags, IpSummary, PacketSummary, Transport};
    use crate::window::features::{Role, WELL_KNOWN_PORTS};
    use crate::window::{Omega, Window, WindowAggregator, WindowConfig};

    /// A TCP packet at 0.1 s (all in the first 1 s window).
    fn tcp(src: IpKey, dst: IpKey, sport: u16, dport: u16, flags: u8) -> PacketSummary {
        PacketSummary {
            ts_ns: 100_000_000,
            wire_len: 60,
            ip: Some(IpSummary { src, dst, ttl: 64 }),
            transport: Transport::Tcp {
                src_port: sport,
                dst_port: dport,
                flags,
            },
            ..PacketSummary::default()
        }
    }

    /// Pushes the packets and closes their window.
    fn window_of(packets: impl IntoIterator<Item = PacketSummary>) -> Window {
        let mut agg =
            WindowAggregator::new(WindowConfig::new(Omega::from_micros(1_000_000).unwrap()));
        let mut out = Vec::new();
        for p in packets {
            agg.push(&p, &mut |w| out.push(w));
        }
        agg.finish(&mut |w| out.push(w));
        assert_eq!(out.len(), 1);
        out.pop().unwrap()
    }

    /// xorshift64: spoofed addresses.
    fn rng(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// The contributors of a feature in a window (all its families).
    pub(super) fn top(w: &Window, f: Feature) -> Vec<Contributor> {
        w.contributors.for_feature(f).map(|(_, c)| *c).collect()
    }

    /// The key of an IPv4 address.
    fn v4(a: [u8; 4]) -> IpKey {
        ipv4_key(a)
    }

    #[test]
    fn a_syn_flood_names_the_heavy_source_not_the_spoofed_ones_or_the_busiest() {
        let heavy = v4([127, 0, 66, 3]);
        let busy = v4([10, 0, 0, 2]);
        let victim = v4([10, 0, 1, 1]);
        let mut packets = Vec::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let (spoofed, heavy_syns, busy_acks) = (20_000, 4_654, 10_000);
        for i in 0..spoofed {
            // One heavy SYN every 4 spoofed ones, from the very start; ACKs throughout.
            if i % 4 == 0 && i / 4 < heavy_syns {
                packets.push(tcp(heavy, victim, 4_000, 80, tcp_flags::SYN));
            }
            let src = v4((rng(&mut x) as u32).to_be_bytes());
            packets.push(tcp(src, victim, 1_024, 80, tcp_flags::SYN));
            if i % 2 == 0 {
                packets.push(tcp(busy, victim, 50_000, 443, tcp_flags::ACK));
            }
        }
        let sent_by_heavy = packets
            .iter()
            .filter(|p| p.ip.unwrap().src == heavy)
            .count();
        assert_eq!(sent_by_heavy, heavy_syns);
        let n_syn = spoofed + heavy_syns;
        let w = window_of(packets);
        assert_eq!(w.features[Feature::SynCount.index()], n_syn as f64);
        // The top talker is the busy host (every spoofed source sent one packet).
        assert_eq!(w.talkers.src_addrs[0].0, key_to_addr(busy));

        let syn = top(&w, Feature::SynCount);
        assert_eq!(syn[0].addr, key_to_addr(heavy));
        // Held from its first packet, never evicted: exact.
        assert_eq!((syn[0].count, syn[0].max_error), (heavy_syns as u64, 0));
        // The others are spoofed one-packet sources, counted at most N / SLOTS over.
        for c in &syn[1..] {
            assert!(c.count - c.max_error <= 1, "{c:?}");
            assert!(c.max_error <= (n_syn / SLOTS) as u64, "{c:?}");
        }
        assert_eq!(top(&w, Feature::SynRatio), syn);
        let ack = top(&w, Feature::AckCount);
        assert_eq!(ack.len(), 1);
        assert_eq!((ack[0].addr, ack[0].count), (key_to_addr(busy), busy_acks));
        // 20,000 new sources, all to the victim.
        let new_src = top(&w, Feature::SrcIpDistinct);
        assert_eq!(new_src[0].addr, key_to_addr(victim));
        assert_eq!(new_src[0].count, spoofed as u64 + 2);
        assert!(top(&w, Feature::UdpCount).is_empty());
    }

    #[test]
    fn a_port_scan_names_the_scanner() {
        let scanner = v4([10, 9, 9, 9]);
        let server = v4([10, 0, 1, 1]);
        let mut packets = Vec::new();
        // 50 clients talk to the server's port 443, which replies to their own ports.
        for c in 0..50u16 {
            let client = v4([10, 0, 0, c as u8 + 10]);
            for _ in 0..20 {
                packets.push(tcp(client, server, 40_000 + c, 443, tcp_flags::ACK));
                packets.push(tcp(server, client, 443, 40_000 + c, tcp_flags::ACK));
            }
        }
        // The scanner probes ports 1–1000 of the server (443 is not new by then).
        for port in 1..=1000 {
            packets.push(tcp(scanner, server, 55_555, port, tcp_flags::SYN));
        }
        let w = window_of(packets);
        assert_eq!(w.features[Feature::DstPortDistinct.index()], 1_000.0 + 50.0);
        let scan = top(&w, Feature::DstPortDistinct);
        assert_eq!(scan[0].addr, key_to_addr(scanner));
        assert_eq!((scan[0].count, scan[0].max_error), (999, 0));
        // Next: the server, whose replies brought the 50 client ports.
        assert_eq!((scan[1].addr, scan[1].count), (key_to_addr(server), 50));
        // The busiest sender is the server, not the scanner.
        assert_eq!(w.talkers.src_addrs[0].0, key_to_addr(server));
        let syn = top(&w, Feature::SynCount);
        assert_eq!((syn[0].addr, syn[0].count), (key_to_addr(scanner), 1_000));
        // 50 clients with 20 packets each to port 443 in 8 counters: the counts are over, by
        // at most their error, which is at most N / SLOTS.
        let dst_443 = top(&w, Feature::DstPort443Count);
        assert_eq!(dst_443.len(), 3);
        for c in dst_443 {
            assert!(c.count >= 20 && c.count - c.max_error <= 20, "{c:?}");
            assert!(c.max_error <= 1_000 / SLOTS as u64, "{c:?}");
        }
    }

    #[test]
    fn flag_combinations_have_their_own_families() {
        let (a, b, d) = (v4([10, 0, 0, 1]), v4([10, 0, 0, 2]), v4([10, 0, 1, 1]));
        let (psh_ack, psh) = (tcp_flags::PSH | tcp_flags::ACK, tcp_flags::PSH);
        let fin_ack = tcp_flags::FIN | tcp_flags::ACK;
        let mut packets = vec![tcp(a, d, 1, 2, psh_ack); 5];
        packets.extend(vec![tcp(b, d, 1, 2, psh); 7]);
        packets.extend(vec![tcp(a, d, 1, 2, psh_ack); 2]);
        packets.extend(vec![tcp(b, d, 1, 2, fin_ack); 3]);
        let w = window_of(packets);
        let top = |f: Feature| -> Vec<(IpAddr, u64)> {
            super::tests::top(&w, f)
                .iter()
                .map(|c| (c.addr, c.count))
                .collect()
        };
        let (a, b) = (key_to_addr(a), key_to_addr(b));
        assert_eq!(top(Feature::PshCount), [(a, 7), (b, 7)], "ties by address");
        assert_eq!(top(Feature::PshAckCount), [(a, 7)]);
        assert_eq!(top(Feature::FinCount), [(b, 3)]);
        assert_eq!(top(Feature::FinAckCount), [(b, 3)]);
        assert_eq!(top(Feature::AckCount), [(a, 7), (b, 3)]);
        assert_eq!(w.features[Feature::PshAckCount.index()], 7.0);
    }

    /// An ICMP packet at 0.1 s.
    fn icmp(src: IpKey, dst: IpKey, icmp_type: u8) -> PacketSummary {
        PacketSummary {
            ts_ns: 100_000_000,
            wire_len: 70,
            ip: Some(IpSummary { src, dst, ttl: 64 }),
            transport: Transport::Icmp {
                icmp_type,
                v6: false,
            },
            ..PacketSummary::default()
        }
    }

    /// A UDP packet at 0.1 s.
    fn udp(src: IpKey, dst: IpKey, sport: u16, dport: u16) -> PacketSummary {
        PacketSummary {
            ts_ns: 100_000_000,
            wire_len: 60,
            ip: Some(IpSummary { src, dst, ttl: 64 }),
            transport: Transport::Udp {
                src_port: sport,
                dst_port: dport,
            },
            ..PacketSummary::default()
        }
    }

    #[test]
    fn a_syn_scan_s_replies_name_the_scanner_not_the_victim() {
        let scanner = v4([127, 0, 66, 1]);
        let victim = v4([127, 0, 0, 41]);
        let client = v4([10, 0, 0, 7]);
        let mut packets = Vec::new();
        // Ordinary traffic of the victim with a client (replies carry ACK, never RST).
        for _ in 0..200 {
            packets.push(tcp(client, victim, 40_000, 443, tcp_flags::ACK));
            packets.push(tcp(
                victim,
                client,
                443,
                40_000,
                tcp_flags::ACK | tcp_flags::PSH,
            ));
        }
        // nmap -sS: one source port, 1000 destination ports; closed ones answer RST+ACK,
        // open ones (every 100th) SYN+ACK, which the scanner resets.
        for port in 1..=1000u16 {
            packets.push(tcp(scanner, victim, 61_000, port, tcp_flags::SYN));
            if port % 100 == 0 {
                packets.push(tcp(
                    victim,
                    scanner,
                    port,
                    61_000,
                    tcp_flags::SYN | tcp_flags::ACK,
                ));
                packets.push(tcp(scanner, victim, 61_000, port, tcp_flags::RST));
            } else {
                packets.push(tcp(
                    victim,
                    scanner,
                    port,
                    61_000,
                    tcp_flags::RST | tcp_flags::ACK,
                ));
            }
        }
        let w = window_of(packets);
        let (scanner, victim) = (key_to_addr(scanner), key_to_addr(victim));
        let first = |f: Feature| {
            let (fam, c) = w.contributors.for_feature(f).next().expect("a contributor");
            (c.addr, c.count, fam.role())
        };
        assert_eq!(
            first(Feature::RstAckCount),
            (scanner, 990, Role::ReplyTarget)
        );
        assert_eq!(
            first(Feature::RstAckRatio),
            (scanner, 990, Role::ReplyTarget)
        );
        assert_eq!(
            first(Feature::SynAckCount),
            (scanner, 10, Role::ReplyTarget)
        );
        assert_eq!(first(Feature::SynCount), (scanner, 1000, Role::Source));
        // The RSTs: the scanner's own 10 (it sent them), 990 RST+ACK (it provoked them).
        let rst: Vec<_> = w
            .contributors
            .for_feature(Feature::RstCount)
            .map(|(fam, c)| (fam, c.addr, c.count))
            .collect();
        assert_eq!(
            rst,
            [
                (Family::Flag(3), scanner, 10),
                (Family::Flag(7), scanner, 990)
            ]
        );
        assert_eq!(w.features[Feature::RstCount.index()], 1000.0);
        assert_eq!(w.contributors.feature_total(Feature::RstCount), 1000);
        // The victim appears nowhere: not for the source ports of its answers either.
        let sports: Vec<_> = w
            .contributors
            .for_feature(Feature::SrcPortDistinct)
            .map(|(fam, c)| (fam, c.addr, c.count))
            .collect();
        assert!(
            sports.contains(&(Family::NewSrcPortsInReplies, scanner, 999)),
            "{sports:?}"
        );
        let victim_ports: u64 = sports.iter().filter(|e| e.1 == victim).map(|e| e.2).sum();
        assert_eq!(victim_ports, 1, "only its own port 443 in its own packets");
        for f in [Feature::SynCount, Feature::RstAckCount, Feature::RstCount] {
            assert!(
                w.contributors.for_feature(f).all(|(_, c)| c.addr != victim),
                "{f}"
            );
        }
        // Its ordinary replies to the client brought one new destination port; its answers to
        // the scanner count for the scanner.
        let dports: Vec<_> = w
            .contributors
            .for_feature(Feature::DstPortDistinct)
            .map(|(fam, c)| (fam, c.addr, c.count))
            .collect();
        assert!(
            dports.contains(&(Family::NewDstPorts, scanner, 999)),
            "{dports:?}"
        );
        assert!(
            dports.contains(&(Family::NewDstPorts, victim, 1)),
            "{dports:?}"
        );
        // Every feature, the packet counts and the well-known ports included: the victim is
        // credited with its ordinary traffic only (200 packets to the client, from port 443),
        // its answers to the scanner with nothing.
        let of = |f: Feature, addr: IpAddr| -> Vec<(Family, u64)> {
            w.contributors
                .for_feature(f)
                .filter(|(_, c)| c.addr == addr)
                .map(|(fam, c)| (fam, c.count))
                .collect()
        };
        for f in Feature::ALL {
            let own = match f {
                Feature::PktCount
                | Feature::PktSizeMean
                | Feature::PktSizeVar
                | Feature::TtlMean
                | Feature::TtlVar => vec![(Family::Packets, 200)],
                Feature::SrcPort443Count => vec![(Family::SrcPort(3), 200)],
                Feature::AckCount | Feature::AckRatio => vec![(Family::Flag(5), 200)],
                Feature::PshCount | Feature::PshRatio => vec![(Family::Flag(2), 200)],
                Feature::PshAckCount | Feature::PshAckRatio => vec![(Family::Flag(9), 200)],
                Feature::DstIpDistinct => vec![(Family::NewDstAddrs, 1)],
                // Victim side: the new sources it received (the client and the scanner).
                Feature::SrcIpDistinct => vec![(Family::NewSrcAddrs, 2)],
                Feature::SrcPortDistinct => vec![(Family::NewSrcPorts, 1)],
                Feature::DstPortDistinct => vec![(Family::NewDstPorts, 1)],
                _ => vec![],
            };
            assert_eq!(of(f, victim), own, "{f}");
        }
        // The scanner: its 1,010 packets and the 1,000 answers it got; each well-known port
        // it probed answered once, from that port (none of them open).
        assert_eq!(
            of(Feature::PktCount, scanner),
            [(Family::Packets, 1010), (Family::PacketsInReplies, 1000)]
        );
        assert_eq!(w.contributors.feature_total(Feature::PktCount), 2410);
        for i in 0..WELL_KNOWN_PORTS.len() {
            let i8 = i as u8;
            assert_eq!(
                of(Feature::src_port(i), scanner),
                [(Family::SrcPortInReplies(i8), 1)],
                "{}",
                Feature::src_port(i)
            );
            assert_eq!(
                of(Feature::dst_port(i), scanner),
                [(Family::DstPort(i8), 1)],
                "{}",
                Feature::dst_port(i)
            );
        }
        // Whom the scanner's packets went to: one source port, no dominant destination port.
        let flow = w.contributors.flow_of(scanner).expect("the scanner's flow");
        assert_eq!((flow.src, flow.dst, flow.packets), (scanner, victim, 1010));
        assert_eq!(
            (flow.proto, flow.src_port, flow.dst_port),
            (Some(6), Some(61_000), None)
        );
        // The victim's heaviest flow is its replies to the scanner.
        let back = w.contributors.flow_of(victim).expect("the victim's flow");
        assert_eq!((back.dst, back.packets), (scanner, 1000));
        assert_eq!(back.dst_port, Some(61_000));
        assert!(w.contributors.flows().len() <= SLOTS);
    }

    #[test]
    fn an_ack_scan_s_bare_rsts_name_the_scanner_not_the_victim() {
        let scanner = v4([127, 0, 66, 7]);
        let victim = v4([127, 0, 0, 41]);
        let mut packets = Vec::new();
        // nmap -sA: an ACK to each port from one high source port; every port, open or
        // closed, answers with a bare RST (no ACK) from the probed port.
        for port in 1..=1000u16 {
            packets.push(tcp(scanner, victim, 61_000, port, tcp_flags::ACK));
            packets.push(tcp(victim, scanner, port, 61_000, tcp_flags::RST));
        }
        // A RST flood from a high port to a service: the sender's own.
        let flooder = v4([127, 0, 66, 8]);
        for i in 0..300u16 {
            packets.push(tcp(flooder, victim, 40_000 + i, 80, tcp_flags::RST));
        }
        let w = window_of(packets);
        let (scanner, victim, flooder) = (
            key_to_addr(scanner),
            key_to_addr(victim),
            key_to_addr(flooder),
        );
        let list = |f: Feature| -> Vec<(Family, IpAddr, u64)> {
            w.contributors
                .for_feature(f)
                .map(|(fam, c)| (fam, c.addr, c.count))
                .collect()
        };
        assert_eq!(w.features[Feature::RstCount.index()], 1300.0);
        assert_eq!(
            list(Feature::RstCount),
            [
                (Family::Flag(3), flooder, 300),
                (Family::RstReplies, scanner, 1000)
            ]
        );
        assert_eq!(Family::RstReplies.role(), Role::ReplyTarget);
        assert_eq!(
            list(Feature::SrcPortDistinct)[..2],
            [
                (Family::NewSrcPorts, flooder, 300),
                (Family::NewSrcPorts, scanner, 1)
            ]
        );
        assert!(list(Feature::SrcPortDistinct).contains(&(
            Family::NewSrcPortsInReplies,
            scanner,
            1000
        )));
        assert_eq!(
            list(Feature::PktCount),
            [
                (Family::Packets, scanner, 1000),
                (Family::Packets, flooder, 300),
                (Family::PacketsInReplies, scanner, 1000)
            ]
        );
        // The victim only as what it is: the host that received from new sources.
        for f in Feature::ALL {
            assert!(
                w.contributors
                    .for_feature(f)
                    .all(|(fam, c)| c.addr != victim || fam.role() == Role::FloodTarget),
                "{f}: {:?}",
                list(f)
            );
        }
    }

    #[test]
    fn a_udp_scan_s_unreachable_errors_name_the_scanner() {
        let scanner = v4([127, 0, 66, 2]);
        let victim = v4([127, 0, 0, 41]);
        let pinger = v4([10, 0, 0, 9]);
        let mut packets = Vec::new();
        for port in 1..=300u16 {
            packets.push(udp(scanner, victim, 50_000, port));
            // Port unreachable (type 3), quoting the probe.
            packets.push(icmp(victim, scanner, 3));
        }
        for _ in 0..40 {
            packets.push(icmp(pinger, victim, 8));
            packets.push(icmp(victim, pinger, 0));
        }
        let w = window_of(packets);
        assert_eq!(w.features[Feature::IcmpCount.index()], 380.0);
        let (scanner, victim, pinger) = (
            key_to_addr(scanner),
            key_to_addr(victim),
            key_to_addr(pinger),
        );
        let icmp: Vec<_> = w
            .contributors
            .for_feature(Feature::IcmpCount)
            .map(|(fam, c)| (fam, c.addr, c.count))
            .collect();
        // Echo requests by their sender; the replies and errors credited to the hosts they
        // answer, not to their sender.
        assert_eq!(
            icmp,
            [
                (Family::Icmp, pinger, 40),
                (Family::IcmpReplies, scanner, 300),
                (Family::IcmpReplies, pinger, 40),
            ]
        );
        assert!(icmp.iter().all(|e| e.1 != victim));
        assert_eq!(w.contributors.feature_total(Feature::IcmpCount), 380);
        let flow = w.contributors.flow_of(scanner).unwrap();
        assert_eq!(
            (flow.proto, flow.src_port, flow.dst_port),
            (Some(17), Some(50_000), None)
        );
        let back = w.contributors.flow_of(victim).unwrap();
        assert_eq!(
            (back.dst, back.proto, back.src_port),
            (scanner, Some(1), None)
        );
    }

    #[test]
    fn icmp_types_come_from_the_decoder() {
        use crate::decode::{decode, LinkType};
        // IPv4 + ICMP type 3 code 3; IPv6 + ICMPv6 type 1 and type 128 (echo request).
        let mut v4 = vec![
            0x45, 0, 0, 36, 0, 0, 0, 0, 64, 1, 0, 0, 127, 0, 0, 41, 127, 0, 66, 2,
        ];
        v4.extend([3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let p = decode(LinkType::RawIp, &v4, 0, v4.len() as u32);
        assert_eq!(
            p.transport,
            Transport::Icmp {
                icmp_type: 3,
                v6: false
            }
        );
        assert!(p.transport.is_reply());
        assert_eq!(p.transport.protocol(), 1);
        for (t, unreachable) in [(1u8, true), (128, false)] {
            let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 58, 64];
            v6.extend([0u8; 15]);
            v6.push(1);
            v6.extend([0u8; 15]);
            v6.push(2);
            v6.extend([t, 0, 0, 0, 0, 0, 0, 0]);
            let p = decode(LinkType::RawIp, &v6, 0, v6.len() as u32);
            assert_eq!(
                p.transport,
                Transport::Icmp {
                    icmp_type: t,
                    v6: true
                }
            );
            assert_eq!(p.transport.is_reply(), unreachable);
            assert_eq!(p.transport.protocol(), 58);
        }
        // Replies: echo replies, unreachable, time exceeded (either version); not requests.
        let icmp = |icmp_type, v6| Transport::Icmp { icmp_type, v6 }.is_reply();
        assert!(icmp(0, false) && icmp(11, false) && icmp(129, true) && icmp(3, true));
        assert!(!icmp(8, false) && !icmp(1, false) && !icmp(128, true) && !icmp(0, true));
        let tcp = |flags| {
            Transport::Tcp {
                src_port: 1,
                dst_port: 2,
                flags,
            }
            .is_reply()
        };
        assert!(tcp(tcp_flags::SYN | tcp_flags::ACK) && tcp(tcp_flags::RST | tcp_flags::ACK));
        assert!(!tcp(tcp_flags::SYN) && !tcp(tcp_flags::ACK));
        // A bare RST: a reply from the lower port (a service answering an ACK probe), its
        // sender's own from the higher one (a SYN scanner resetting from its source port).
        let rst = |src_port, dst_port, flags| {
            Transport::Tcp {
                src_port,
                dst_port,
                flags,
            }
            .is_reply()
        };
        assert!(rst(80, 61_000, tcp_flags::RST) && rst(1, 2, tcp_flags::RST | tcp_flags::PSH));
        assert!(!rst(61_000, 80, tcp_flags::RST) && !rst(80, 80, tcp_flags::RST));
        assert!(!rst(80, 61_000, tcp_flags::RST | tcp_flags::SYN));
        assert!(!Transport::Udp {
            src_port: 1,
            dst_port: 2
        }
        .is_reply());
    }

    #[test]
    fn a_flood_to_one_port_has_its_port_and_protocol() {
        let a = v4([127, 0, 66, 3]);
        let d = v4([127, 0, 0, 1]);
        let mut packets = Vec::new();
        // 3 of 4 packets to port 80 (the rest to 443), from changing source ports: no port
        // is every packet's.
        for i in 0..4_000u16 {
            let dport = if i % 4 == 3 { 443 } else { 80 };
            packets.push(tcp(a, d, 1_024 + i, dport, tcp_flags::SYN));
        }
        let w = window_of(packets);
        let flow = w.contributors.flow_of(key_to_addr(a)).unwrap();
        assert_eq!(
            (flow.proto, flow.src_port, flow.dst_port),
            (Some(6), None, None)
        );
        assert_eq!((flow.packets, flow.max_error), (4_000, 0));
        // All to port 80: that port.
        let packets = (0..4_000u16).map(|i| tcp(a, d, 1_024 + i, 80, tcp_flags::SYN));
        let w = window_of(packets);
        let flow = w.contributors.flow_of(key_to_addr(a)).unwrap();
        assert_eq!(
            (flow.proto, flow.src_port, flow.dst_port),
            (Some(6), None, Some(80))
        );
    }

    #[test]
    fn tallies_of_two_halves_merge_into_the_whole_window_s() {
        let victim = v4([10, 0, 1, 1]);
        let heavy = v4([127, 0, 66, 3]);
        let mut x = 7u64;
        let mut packets = Vec::new();
        for i in 0..20_000u32 {
            if i % 3 == 0 {
                packets.push((heavy, victim, tcp_flags::SYN));
            }
            let src = v4((rng(&mut x) as u32).to_be_bytes());
            packets.push((src, victim, tcp_flags::SYN));
        }
        let (mut a, mut b, mut whole) = (
            CulpritTally::new(),
            CulpritTally::new(),
            CulpritTally::new(),
        );
        for (i, &(s, d, f)) in packets.iter().enumerate() {
            let ends = Ends::new(s, d);
            let t = Transport::Tcp {
                src_port: 1,
                dst_port: 80,
                flags: f,
            };
            // Halves by arrival, as two threads would take alternate batches.
            let part = if (i / 500) % 2 == 0 { &mut a } else { &mut b };
            for t2 in [&mut *part, &mut whole] {
                t2.add(Family::Flag(0), &ends);
                t2.add_flow(&ends, t);
            }
        }
        a.merge(&b);
        let n = packets.len() as u64;
        let (merged, single) = (a.take(), whole.take());
        for c in [&merged, &single] {
            let syn = c.of(Family::Flag(0));
            assert_eq!(syn[0].addr, key_to_addr(heavy), "{syn:?}");
            assert!(
                syn[0].at_least() <= 6_667 && syn[0].count >= 6_667,
                "{:?}",
                syn[0]
            );
            for e in syn {
                assert!(e.max_error <= n / SLOTS as u64, "{e:?}");
            }
            assert_eq!(c.total(Family::Flag(0)), n);
            let flow = c.flow_of(key_to_addr(heavy)).unwrap();
            assert!(flow.packets >= 6_667 && flow.packets - flow.max_error <= 6_667);
            assert_eq!(flow.dst_port, Some(80), "{flow:?}");
        }
    }

    #[test]
    fn memory_stays_constant_with_a_million_spoofed_sources() {
        let victim = v4([10, 0, 1, 1]);
        let mut agg =
            WindowAggregator::new(WindowConfig::new(Omega::from_micros(1_000_000).unwrap()));
        let tally_bytes = std::mem::size_of_val(&agg.partial.culprits.families);
        assert_eq!(
            tally_bytes,
            NUM_FAMILIES * std::mem::size_of::<SpaceSaving>()
        );
        assert!(tally_bytes < 16 * 1024, "{tally_bytes}");
        let mut x = 1u64;
        let n = 1_000_000u64;
        let mut out = Vec::new();
        for _ in 0..n {
            let src = v4((rng(&mut x) as u32).to_be_bytes());
            agg.push(&tcp(src, victim, 1_024, 80, tcp_flags::SYN), &mut |w| {
                out.push(w)
            });
        }
        // Fixed arrays, no growth: each summary holds at most SLOTS keys whose counts add up
        // to the packets (Space-Saving's invariant once full).
        assert_eq!(
            std::mem::size_of_val(&agg.partial.culprits.families),
            tally_bytes
        );
        let syn = &agg.partial.culprits.families[Family::Flag(0).index()];
        let held = syn.top(usize::MAX);
        assert_eq!(held.len(), SLOTS);
        assert_eq!(held.iter().map(|h| h.1).sum::<u64>(), n);
        assert!(held.iter().all(|h| h.2 <= n / SLOTS as u64));
        agg.finish(&mut |w| out.push(w));
        let w = out.pop().unwrap();
        assert!(w.distinct_estimated);
        // A window reports at most 3 contributors per family, whatever the flood.
        for fam in Family::ALL {
            assert!(
                w.contributors.of(fam).len() <= CONTRIBUTORS_PER_FAMILY,
                "{fam:?}"
            );
        }
        assert!(w.contributors.entries.len() <= NUM_FAMILIES * CONTRIBUTORS_PER_FAMILY);
        assert_eq!(
            w.contributors.entries.capacity(),
            w.contributors.entries.len()
        );
    }
}
