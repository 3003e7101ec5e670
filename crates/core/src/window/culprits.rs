//! Culprits: per feature family, the hosts that contributed most to it in a window.
//!
//! One [`SpaceSaving`] summary per [`Family`] (8 counters each, a few KiB for all of them,
//! allocated once): memory does not grow with the number of hosts, so a spoofed flood cannot
//! blow it up. The packets family is the exception: its top is the window's source tally
//! (exact up to 65,536 sources, count-min beyond), which is kept anyway for the top talkers. A packet counts in the families it belongs to (its flags, protocol, well-known
//! ports), keyed by its source address; a distinct-count family counts a key only when the
//! packet brought a value not yet seen in the window. [`Contributors`] is what a closed
//! window keeps: the top few of each family.

use std::net::IpAddr;

use super::features::{Family, Feature, NUM_FAMILIES};
use super::partial::{WireCulprits, WireError};
use super::spacesaving::SpaceSaving;
use crate::decode::{key_to_addr, IpKey};

pub use super::spacesaving::{fingerprint, SLOTS};

/// Contributors a closed window keeps per family.
pub const CONTRIBUTORS_PER_FAMILY: usize = 3;

/// The open window's heavy hitters, one summary per family.
pub struct CulpritTally {
    // Inline, not boxed: one load less per update (the aggregator itself lives on the heap
    // or the stack of its thread, allocated once).
    families: [SpaceSaving; NUM_FAMILIES],
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
        }
    }

    /// Counts one packet (or new value) of `family` for `key` (fingerprint `fp`).
    #[inline(always)]
    pub fn add(&mut self, family: Family, key: IpKey, fp: u16) {
        self.families[family.index()].add(key, fp);
    }

    /// The top [`CONTRIBUTORS_PER_FAMILY`] of every family, then forgets the window. The
    /// packets family is not summarised here: `packets` is its top, from the exact source tally.
    pub fn take(&mut self, packets: Vec<Contributor>) -> Contributors {
        // Gathered on the stack, then one allocation of the exact size.
        let mut buf = [EMPTY; NUM_FAMILIES * CONTRIBUTORS_PER_FAMILY];
        let mut n = 0;
        let mut ends = [0u16; NUM_FAMILIES];
        for (i, s) in self.families.iter_mut().enumerate() {
            if i == Family::Packets.index() {
                for c in packets.iter().take(CONTRIBUTORS_PER_FAMILY) {
                    buf[n] = *c;
                    n += 1;
                }
            } else {
                s.each_top(CONTRIBUTORS_PER_FAMILY, |key, count, max_error| {
                    buf[n] = Contributor {
                        addr: key_to_addr(key),
                        count,
                        max_error,
                    };
                    n += 1;
                });
                s.reset();
            }
            // At most NUM_FAMILIES × 3 = 117 entries: fits.
            ends[i] = n as u16;
        }
        Contributors {
            entries: buf[..n].to_vec(),
            ends,
        }
    }

    /// Forgets the window without reporting it.
    pub fn reset(&mut self) {
        for s in self.families.iter_mut() {
            s.reset();
        }
    }

    /// Adds another part of the same window: every summary merges with its counterpart
    /// ([`SpaceSaving::merge`]). A new summary of the tally merges here too.
    pub fn merge(&mut self, other: &CulpritTally) {
        for (s, o) in self.families.iter_mut().zip(other.families.iter()) {
            s.merge(o);
        }
    }

    /// Every summary as it travels, in family order.
    pub(super) fn to_wire(&self) -> WireCulprits {
        WireCulprits {
            families: self.families.iter().map(SpaceSaving::to_wire).collect(),
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
        Ok(())
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
    /// The key: a source address, or for [`Family::NewSrcAddrs`] a destination address.
    pub addr: IpAddr,
    /// Its count in the family ([`Family::unit`]): at least the true count.
    pub count: u64,
    /// How much `count` may exceed the true count (0: exact; at most N / [`SLOTS`]).
    pub max_error: u64,
}

/// A closed window's top contributors of every family, largest first within a family.
#[derive(Clone, Debug, PartialEq)]
pub struct Contributors {
    entries: Vec<Contributor>,
    /// `ends[i]`: end of family i's entries in `entries` (empty: an empty window).
    ends: [u16; NUM_FAMILIES],
}

impl Default for Contributors {
    /// No contributors (an empty window); allocates nothing.
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            ends: [0; NUM_FAMILIES],
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

    /// The contributors that explain a feature (those of its [`Feature::family`]).
    pub fn for_feature(&self, feature: Feature) -> &[Contributor] {
        self.of(feature.family())
    }

    /// Builds contributors from per-family lists (tests and fixtures).
    pub fn from_lists(lists: &[(Family, Vec<Contributor>)]) -> Self {
        let mut entries = Vec::new();
        let mut ends = [0u16; NUM_FAMILIES];
        for fam in Family::ALL {
            if let Some((_, l)) = lists.iter().find(|(f, _)| *f == fam) {
                entries.extend(l.iter().copied());
            }
            ends[fam.index()] = u16::try_from(entries.len()).unwrap_or(u16::MAX);
        }
        Contributors { entries, ends }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{ipv4_key, tcp_flags, IpSummary, PacketSummary, Transport};
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

        let syn = w.contributors.for_feature(Feature::SynCount);
        assert_eq!(syn[0].addr, key_to_addr(heavy));
        // Held from its first packet, never evicted: exact.
        assert_eq!((syn[0].count, syn[0].max_error), (heavy_syns as u64, 0));
        // The others are spoofed one-packet sources, counted at most N / SLOTS over.
        for c in &syn[1..] {
            assert!(c.count - c.max_error <= 1, "{c:?}");
            assert!(c.max_error <= (n_syn / SLOTS) as u64, "{c:?}");
        }
        assert_eq!(w.contributors.for_feature(Feature::SynRatio), syn);
        let ack = w.contributors.for_feature(Feature::AckCount);
        assert_eq!(ack.len(), 1);
        assert_eq!((ack[0].addr, ack[0].count), (key_to_addr(busy), busy_acks));
        // 20,000 new sources, all to the victim.
        let new_src = w.contributors.for_feature(Feature::SrcIpDistinct);
        assert_eq!(new_src[0].addr, key_to_addr(victim));
        assert_eq!(new_src[0].count, spoofed as u64 + 2);
        assert!(w.contributors.for_feature(Feature::UdpCount).is_empty());
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
        let scan = w.contributors.for_feature(Feature::DstPortDistinct);
        assert_eq!(scan[0].addr, key_to_addr(scanner));
        assert_eq!((scan[0].count, scan[0].max_error), (999, 0));
        // Next: the server, whose replies brought the 50 client ports.
        assert_eq!((scan[1].addr, scan[1].count), (key_to_addr(server), 50));
        // The busiest sender is the server, not the scanner.
        assert_eq!(w.talkers.src_addrs[0].0, key_to_addr(server));
        let syn = w.contributors.for_feature(Feature::SynCount);
        assert_eq!((syn[0].addr, syn[0].count), (key_to_addr(scanner), 1_000));
        // 50 clients with 20 packets each to port 443 in 8 counters: the counts are over, by
        // at most their error, which is at most N / SLOTS.
        let dst_443 = w.contributors.for_feature(Feature::DstPort443Count);
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
            w.contributors
                .for_feature(f)
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
