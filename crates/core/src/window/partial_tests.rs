//! Partial windows: any split of a stream merges to the single aggregator's windows; the
//! encoding round-trips and refuses hostile bytes.

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;

use super::*;
use crate::decode::{ipv4_key, key_to_addr, IpSummary, PacketSummary, Transport};
use crate::window::culprits::CONTRIBUTORS_PER_FAMILY;
use crate::window::features::{Family, Feature};
use crate::window::spacesaving::SLOTS;
use crate::window::FLAG_COMBOS;
use crate::window::{Window, WindowAggregator, WindowConfig};

const OMEGA_US: u64 = 1_000_000;

fn omega() -> Omega {
    Omega::from_micros(OMEGA_US).unwrap()
}

fn config() -> WindowConfig {
    WindowConfig::new(omega())
}

/// The windows of one aggregator over all of `packets`.
fn single(packets: &[PacketSummary]) -> Vec<Window> {
    let mut agg = WindowAggregator::new(config());
    let mut out = Vec::new();
    for p in packets {
        agg.push(p, &mut |w| out.push(w));
    }
    agg.finish(&mut |w| out.push(w));
    out
}

/// Each part's encoded partials by window index.
fn parts(packets: &[PacketSummary], assign: &[usize], k: usize) -> Vec<BTreeMap<i64, Vec<u8>>> {
    (0..k)
        .map(|part| {
            let mut agg = WindowAggregator::new(config());
            let mut out = BTreeMap::new();
            let mut emit = |p: &mut PartialWindow| {
                out.insert(p.index(), p.to_bytes().expect("encodes"));
            };
            for (p, _) in packets.iter().zip(assign).filter(|(_, &a)| a % k == part) {
                agg.push_partials(p, &mut emit);
            }
            agg.finish_partials(&mut emit);
            out
        })
        .collect()
}

/// The windows of the single aggregator's span, each merged from the decoded parts in
/// `order`; an index no part emitted is an empty window.
fn merged(parts: &[BTreeMap<i64, Vec<u8>>], order: &[usize], first: i64, last: i64) -> Vec<Window> {
    let mut acc = PartialWindow::new(omega(), first);
    let mut scratch = PartialWindow::new(omega(), 0);
    (first..=last)
        .map(|index| {
            acc.reset_to(index);
            for &i in order {
                if let Some(bytes) = parts[i].get(&index) {
                    scratch.decode_into(bytes).expect("decodes");
                    // Decoding and encoding again gives the same bytes.
                    assert_eq!(&scratch.to_bytes().unwrap(), bytes);
                    acc.merge(&scratch).expect("same window");
                }
            }
            acc.finish(config().top_k)
        })
        .collect()
}

/// Per family, per key: what the part-wise aggregators credit in total (the truth for the
/// merged window). "New" families credit a value new to the part that saw it. Each family
/// credits the end of the packet its role names; replies (SYN+ACK, RST+ACK, a bare RST from a
/// lower port, ICMP replies) leave the packets, SYN, RST, ACK and port families to the reply
/// families (docs/alerts.md, "Families and roles").
fn truth(
    packets: &[&PacketSummary],
    assign: &[usize],
    k: usize,
) -> HashMap<Family, HashMap<IpKey, u64>> {
    use crate::window::features::{KeyKind, REPLY_SHARED_FLAGS};
    let mut t: HashMap<Family, HashMap<IpKey, u64>> = HashMap::new();
    let mut seen: Vec<[HashSet<u128>; 4]> = (0..k).map(|_| Default::default()).collect();
    for (p, &a) in packets.iter().zip(assign) {
        let Some(ip) = p.ip else { continue };
        let mut credit = |f: Family| {
            let key = match f.key_kind() {
                KeyKind::SrcAddr => ip.src,
                KeyKind::DstAddr => ip.dst,
            };
            *t.entry(f).or_default().entry(key).or_default() += 1
        };
        let reply = p.transport.is_reply();
        credit(if reply {
            Family::PacketsInReplies
        } else {
            Family::Packets
        });
        let s = &mut seen[a % k];
        if s[0].insert(ip.src) {
            credit(Family::NewSrcAddrs);
        }
        if s[1].insert(ip.dst) {
            credit(if reply {
                Family::NewDstAddrsInReplies
            } else {
                Family::NewDstAddrs
            });
        }
        let ports = match p.transport {
            Transport::Tcp {
                src_port,
                dst_port,
                flags,
            } => {
                for (i, combo) in FLAG_COMBOS.iter().enumerate() {
                    if flags & combo == *combo
                        && !(reply && REPLY_SHARED_FLAGS.contains(&(i as u8)))
                    {
                        credit(Family::Flag(i as u8));
                    }
                }
                if reply && flags & crate::decode::tcp_flags::ACK == 0 {
                    credit(Family::RstReplies);
                }
                Some((src_port, dst_port))
            }
            Transport::Udp { src_port, dst_port } => {
                credit(Family::Udp);
                Some((src_port, dst_port))
            }
            Transport::Icmp { .. } => {
                credit(if reply {
                    Family::IcmpReplies
                } else {
                    Family::Icmp
                });
                None
            }
            Transport::None => None,
        };
        if let Some((sp, dp)) = ports {
            for (i, &wk) in WELL_KNOWN_PORTS.iter().enumerate() {
                let i = i as u8;
                if sp == wk {
                    credit(if reply {
                        Family::SrcPortInReplies(i)
                    } else {
                        Family::SrcPort(i)
                    });
                }
                if dp == wk {
                    credit(if reply {
                        Family::DstPortInReplies(i)
                    } else {
                        Family::DstPort(i)
                    });
                }
            }
            if s[2].insert(u128::from(sp)) {
                credit(if reply {
                    Family::NewSrcPortsInReplies
                } else {
                    Family::NewSrcPorts
                });
            }
            if s[3].insert(u128::from(dp)) {
                credit(if reply {
                    Family::NewDstPortsInReplies
                } else {
                    Family::NewDstPorts
                });
            }
        }
    }
    t
}

/// True for the families keyed by values new in a window (credited per part when merged).
fn is_new_family(f: Family) -> bool {
    matches!(
        f,
        Family::NewSrcAddrs
            | Family::NewDstAddrs
            | Family::NewSrcPorts
            | Family::NewDstPorts
            | Family::NewDstAddrsInReplies
            | Family::NewSrcPortsInReplies
            | Family::NewDstPortsInReplies
    )
}

/// The merged windows equal the single aggregator's: features bitwise, talkers exactly,
/// contributors exactly where nothing was evicted and within Space-Saving's bounds otherwise.
fn check_split(packets: &[PacketSummary], assign: &[usize], k: usize, order: &[usize]) {
    let one = single(packets);
    let parts = parts(packets, assign, k);
    let Some(first) = one.first() else {
        assert!(parts.iter().all(|p| p.is_empty()));
        return;
    };
    let first_index = first.start_ns / omega().nanos();
    let last_index = one.last().unwrap().start_ns / omega().nanos();
    let many = merged(&parts, order, first_index, last_index);
    assert_eq!(one.len(), many.len());
    for (a, b) in one.iter().zip(&many) {
        assert_eq!((a.start_ns, a.end_ns), (b.start_ns, b.end_ns));
        for f in Feature::ALL {
            assert_eq!(
                a.features[f.index()].to_bits(),
                b.features[f.index()].to_bits(),
                "{f:?} at {}: {} vs {}",
                a.start_ns,
                a.features[f.index()],
                b.features[f.index()]
            );
        }
        assert_eq!(a.distinct_estimated, b.distinct_estimated);
        assert_eq!(a.late_packets, b.late_packets);
        assert_eq!(a.talkers, b.talkers, "talkers at {}", a.start_ns);
        // The truth of this window, part by part.
        let in_window: Vec<(&PacketSummary, usize)> = packets
            .iter()
            .zip(assign)
            .filter(|(p, _)| p.ts_ns.div_euclid(omega().nanos()) * omega().nanos() == a.start_ns)
            .map(|(p, &s)| (p, s))
            .collect();
        let (ps, asg): (Vec<&PacketSummary>, Vec<usize>) = in_window.into_iter().unzip();
        let t = truth(&ps, &asg, k);
        for fam in Family::ALL {
            let truth = t.get(&fam).cloned().unwrap_or_default();
            let got = b.contributors.of(fam);
            let n: u64 = truth.values().sum();
            if truth.len() <= SLOTS && (k == 1 || !is_new_family(fam)) {
                // Nothing evicted anywhere: exact, and the same as one aggregator's.
                assert_eq!(a.contributors.of(fam), got, "{fam:?} at {}", a.start_ns);
                for c in got {
                    assert_eq!(c.max_error, 0);
                }
            }
            for c in got {
                let key = truth
                    .iter()
                    .find(|(k, _)| key_to_addr(**k) == c.addr)
                    .map(|(_, &v)| v)
                    .unwrap_or(0);
                assert!(
                    c.count >= key && c.count - c.max_error <= key,
                    "{fam:?}: {c:?} vs true {key}"
                );
                assert!(c.max_error <= n / SLOTS as u64, "{fam:?}: {c:?}, N = {n}");
            }
            if truth.len() <= SLOTS {
                // Every key that made it into the top of the truth is named.
                assert_eq!(got.len(), truth.len().min(CONTRIBUTORS_PER_FAMILY));
            }
        }
    }
}

/// A packet of the generated streams.
fn packet() -> impl Strategy<Value = PacketSummary> {
    let v4 = (0u8..6).prop_map(|i| ipv4_key([10, 0, 0, i]));
    let v6 = (0u8..3).prop_map(|i| (0x2001_0db8u128 << 96) | u128::from(i));
    let spoofed = any::<u32>().prop_map(|x| ipv4_key(x.to_be_bytes()));
    let addr = prop_oneof![4 => v4, 2 => v6, 1 => spoofed];
    let port = prop_oneof![
        3 => proptest::sample::select(WELL_KNOWN_PORTS.to_vec()),
        2 => 1024u16..1040,
        1 => any::<u16>(),
    ];
    let transport = prop_oneof![
        4 => (port.clone(), port.clone(), any::<u8>()).prop_map(|(s, d, f)| Transport::Tcp {
            src_port: s,
            dst_port: d,
            flags: f,
        }),
        2 => (port.clone(), port).prop_map(|(s, d)| Transport::Udp { src_port: s, dst_port: d }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(icmp_type, v6)| Transport::Icmp { icmp_type, v6 }),
        1 => Just(Transport::None),
    ];
    let ip = prop_oneof![
        9 => (addr.clone(), addr, any::<u8>()).prop_map(|(src, dst, ttl)| Some(IpSummary { src, dst, ttl })),
        1 => Just(None),
    ];
    (0i64..3_500_000_000, 40u32..1600, ip, transport).prop_map(
        |(ts_ns, wire_len, ip, transport)| PacketSummary {
            ts_ns,
            wire_len,
            transport: if ip.is_some() {
                transport
            } else {
                Transport::None
            },
            ip,
            ..PacketSummary::default()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Any split of a stream into k ≤ 4 parts, merged in any order, gives one aggregator's
    /// windows.
    #[test]
    fn any_split_merges_to_the_single_aggregators_windows(
        mut packets in proptest::collection::vec(packet(), 0..400),
        k in 1usize..=4,
        assign in proptest::collection::vec(0usize..4, 400),
        order in Just(vec![0usize, 1, 2, 3]).prop_shuffle(),
    ) {
        packets.sort_by_key(|p| p.ts_ns);
        let order: Vec<usize> = order.into_iter().filter(|&i| i < k).collect();
        check_split(&packets, &assign, k, &order);
    }

    /// Mutated encodings decode to an error or to a partial that encodes again; never a panic.
    #[test]
    fn mutated_encodings_never_panic(
        packets in proptest::collection::vec(packet(), 1..60),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = one_partial(&packets).to_bytes().unwrap();
        let mut bad = bytes.clone();
        for (i, b) in flips {
            let i = i.index(bad.len());
            bad[i] ^= b | 1;
        }
        if let Ok(p) = PartialWindow::decode(&bad) {
            p.to_bytes().unwrap();
        }
        let cut = cut.index(bytes.len());
        prop_assert!(PartialWindow::decode(&bytes[..cut]).is_err());
    }
}

/// The packets, all moved into window 0, as one partial.
fn one_partial(packets: &[PacketSummary]) -> PartialWindow {
    let mut p = PartialWindow::new(omega(), 0);
    for s in packets {
        let mut s = *s;
        s.ts_ns %= omega().nanos();
        p.count(&s);
    }
    p
}

/// A source flood of distinct addresses, as packets in window 0.
fn flood(n: u32, offset: u32, seed: u64) -> Vec<PacketSummary> {
    let mut x = seed;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let heavy = i % 7 == 0;
            let src = if heavy {
                ipv4_key([127, 0, 66, (i % 3) as u8])
            } else {
                ipv4_key((offset.wrapping_add(i)).to_be_bytes())
            };
            PacketSummary {
                ts_ns: i64::from(i),
                wire_len: 60,
                ip: Some(IpSummary {
                    src,
                    dst: ipv4_key([10, 0, 1, (x % 4) as u8]),
                    ttl: 64,
                }),
                transport: Transport::Tcp {
                    src_port: (x >> 8) as u16,
                    dst_port: 80,
                    flags: 0x02,
                },
                ..PacketSummary::default()
            }
        })
        .collect()
}

#[test]
fn past_the_exact_limit_the_merged_estimate_is_the_single_ones() {
    // 150,000 packets from ~128,000 distinct sources, split three ways at random; and three
    // parts of 40,000 distinct sources each, exact on their own, estimated together.
    let packets = flood(150_000, 0x0b00_0000, 7);
    let mut x = 99u64;
    let assign: Vec<usize> = (0..packets.len())
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 3) as usize
        })
        .collect();
    let one = single(&packets);
    assert!(one[0].distinct_estimated);
    let parts_ = parts(&packets, &assign, 3);
    for order in [[0, 1, 2], [2, 0, 1]] {
        let many = merged(&parts_, &order, 0, 0);
        check_estimated(&packets, &one[0], &many[0]);
    }

    let mut disjoint = Vec::new();
    let mut assign = Vec::new();
    for part in 0..3u32 {
        for p in flood(46_000, 0x0c00_0000 + part * 50_000, u64::from(part) + 1) {
            disjoint.push(p);
            assign.push(part as usize);
        }
    }
    let mut order: Vec<usize> = (0..disjoint.len()).collect();
    order.sort_by_key(|&i| (disjoint[i].ts_ns, i));
    let disjoint: Vec<PacketSummary> = order.iter().map(|&i| disjoint[i]).collect();
    let assign: Vec<usize> = order.iter().map(|&i| assign[i]).collect();
    let parts_ = parts(&disjoint, &assign, 3);
    for bytes in parts_.iter().flat_map(|p| p.values()) {
        assert!(!PartialWindow::decode(bytes)
            .unwrap()
            .src_addrs
            .is_estimated());
    }
    let one = single(&disjoint);
    assert!(one[0].distinct_estimated);
    let many = merged(&parts_, &[1, 2, 0], 0, 0);
    check_estimated(&disjoint, &one[0], &many[0]);
}

/// Estimated windows: the same features bitwise (the merged HyperLogLog is the sketch of the
/// same addresses); talkers never undercount.
fn check_estimated(packets: &[PacketSummary], one: &Window, many: &Window) {
    assert!(many.distinct_estimated);
    for f in Feature::ALL {
        assert_eq!(
            one.features[f.index()].to_bits(),
            many.features[f.index()].to_bits(),
            "{f:?}: {} vs {}",
            one.features[f.index()],
            many.features[f.index()]
        );
    }
    let mut by_src: HashMap<IpKey, u64> = HashMap::new();
    for p in packets {
        *by_src.entry(p.ip.unwrap().src).or_default() += 1;
    }
    for (addr, count) in &many.talkers.src_addrs {
        let t = by_src
            .iter()
            .find(|(k, _)| key_to_addr(**k) == *addr)
            .map(|(_, &v)| v)
            .unwrap_or(0);
        assert!(*count >= t, "{addr}: {count} < {t}");
    }
    // The three heavy sources (one packet in 7) lead, as in one aggregator's window.
    let heavy: HashSet<_> = (0..3u8)
        .map(|i| key_to_addr(ipv4_key([127, 0, 66, i])))
        .collect();
    let top: HashSet<_> = many.talkers.src_addrs.iter().take(3).map(|t| t.0).collect();
    assert_eq!(top, heavy);
    assert!(one
        .talkers
        .src_addrs
        .iter()
        .take(3)
        .all(|t| heavy.contains(&t.0)));
}

#[test]
fn merging_different_windows_or_lengths_is_an_error() {
    let mut a = PartialWindow::new(omega(), 5);
    let b = PartialWindow::new(omega(), 6);
    assert!(matches!(
        a.merge(&b),
        Err(MergeError::Window {
            ours: 5,
            theirs: 6,
            ..
        })
    ));
    let c = PartialWindow::new(Omega::from_micros(500_000).unwrap(), 5);
    assert!(matches!(a.merge(&c), Err(MergeError::Omega { .. })));
}

#[test]
fn an_empty_partial_finishes_to_the_empty_window() {
    let mut a = WindowAggregator::new(config());
    let mut windows = Vec::new();
    let mut sizes = Vec::new();
    a.push(&packets_at(&[0])[0], &mut |w| windows.push(w));
    a.push(&packets_at(&[3_000_000_000])[0], &mut |w| windows.push(w));
    assert_eq!(windows.len(), 3);
    for w in &windows[1..] {
        assert_eq!(w.features, [0.0; crate::window::features::NUM_FEATURES]);
        assert_eq!(w.contributors, Default::default());
        assert_eq!(w.talkers, Default::default());
    }
    let mut p = WindowAggregator::new(config());
    p.push_partials(&packets_at(&[0])[0], &mut |_| {});
    p.push_partials(&packets_at(&[3_000_000_000])[0], &mut |w| {
        sizes.push(w.to_bytes().unwrap().len())
    });
    // What an empty and a busy window cost on the wire (docs/architecture.md).
    assert!(sizes.iter().all(|&s| s < 256), "{sizes:?}");
}

/// Packets with no headers at the given times.
fn packets_at(ns: &[i64]) -> Vec<PacketSummary> {
    ns.iter()
        .map(|&ts_ns| PacketSummary {
            ts_ns,
            wire_len: 60,
            ..PacketSummary::default()
        })
        .collect()
}

#[test]
fn hostile_bytes_are_errors() {
    let packets = flood(200, 0x0d00_0000, 3);
    let good = one_partial(&packets).to_bytes().unwrap();
    assert!(PartialWindow::decode(&good).is_ok());
    // Every cut is an error.
    for cut in 0..good.len() {
        assert!(PartialWindow::decode(&good[..cut]).is_err(), "cut at {cut}");
    }
    // Trailing bytes, wrong magic, another version.
    let mut long = good.clone();
    long.push(0);
    assert_eq!(
        PartialWindow::decode(&long).unwrap_err(),
        WireError::Trailing(1)
    );
    assert_eq!(
        PartialWindow::decode(b"NAPX\x01").unwrap_err(),
        WireError::Magic
    );
    for other in [VERSION - 1, VERSION + 1] {
        let mut v = good.clone();
        v[4] = other;
        assert_eq!(
            PartialWindow::decode(&v).unwrap_err(),
            WireError::Version { found: other }
        );
    }
    // Absurd lengths: the first list of an empty partial (its exact sources, at byte 54:
    // magic, version, ω in 3 bytes, index, jump flag, 46 bytes of zero sums and two port
    // lists of 11) claims 2^62 entries.
    let empty = PartialWindow::new(omega(), 0).to_bytes().unwrap();
    assert_eq!((empty[29], empty[41], empty[54]), (11, 11, 0));
    let mut absurd = empty[..54].to_vec();
    absurd.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f]);
    absurd.extend_from_slice(&empty[55..]);
    assert!(matches!(
        PartialWindow::decode(&absurd),
        Err(WireError::Body(_))
    ));
    // A partial that claims more TCP packets than frames, or unsorted addresses.
    let mut p = one_partial(&packets);
    p.sums.tcp = p.sums.frames + 1;
    assert!(matches!(
        PartialWindow::decode(&p.to_bytes().unwrap()),
        Err(WireError::Sums(_))
    ));
    // An ω of 0 µs.
    let mut zero = good.clone();
    zero[5] = 0;
    assert!(PartialWindow::decode(&zero).is_err());
}

#[test]
fn hll_registers_round_trip() {
    // The serde shape of hyperloglogplus is what `hll_registers` expects: an estimated tally
    // goes through the wire and gives the same estimate and registers.
    let packets = flood(80_000, 0x0e00_0000, 5);
    let p = one_partial(&packets);
    assert!(p.src_addrs.is_estimated());
    let bytes = p.to_bytes().unwrap();
    let mut q = PartialWindow::decode(&bytes).unwrap();
    assert_eq!(q.to_bytes().unwrap(), bytes);
    let mut p = p;
    assert_eq!(p.src_addrs.distinct(), q.src_addrs.distinct());
    assert!(
        bytes.len() > 40_960,
        "registers travel when estimated: {}",
        bytes.len()
    );
}

/// Random IPv6 source addresses (the worst case for exact keys sent as deltas).
fn v6_source(i: u64) -> IpKey {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (u128::from(next()) << 64) | u128::from(next())
}

#[test]
fn an_estimated_partial_is_compact_and_merges_within_the_sketch_error() {
    // Two sensors each see a flood from 70,000 random IPv6 sources (35,000 of them seen by
    // both, 105,000 in all), every 7th packet from one of three heavy sources.
    let heavy = |j: u64| (0x2001_0db8u128 << 96) | u128::from(j % 3);
    let mut packets = Vec::new();
    let mut assign = Vec::new();
    for j in 0..140_000u64 {
        let (part, source) = if j < 70_000 {
            (0, j)
        } else {
            (1, j - 70_000 + 35_000)
        };
        let mut srcs = vec![v6_source(source)];
        if j % 7 == 0 {
            srcs.push(heavy(j));
        }
        for src in srcs {
            packets.push(PacketSummary {
                ts_ns: packets.len() as i64,
                wire_len: 80,
                ip: Some(IpSummary {
                    src,
                    dst: (0x2001_0db8_0000_0001u128 << 64) | 1,
                    ttl: 64,
                }),
                transport: Transport::Udp {
                    src_port: (v6_source(j) >> 3) as u16,
                    dst_port: 53,
                },
                ..PacketSummary::default()
            });
            assign.push(part);
        }
    }
    let parts_ = parts(&packets, &assign, 2);
    for part in &parts_ {
        let bytes = &part[&0];
        let decoded = PartialWindow::decode(bytes).unwrap();
        assert!(decoded.src_addrs.is_estimated());
        eprintln!("estimated IPv6 partial: {} bytes", bytes.len());
        // NATS's default max_payload is 1 MiB; docs/deploy.md says 100–300 KB.
        assert!(bytes.len() < 300 * 1024, "{} bytes", bytes.len());
    }
    let one = single(&packets);
    let many = merged(&parts_, &[1, 0], 0, 0);
    assert!(one[0].distinct_estimated && many[0].distinct_estimated);
    // The distinct counts are the same HyperLogLog's: every feature bitwise.
    for f in Feature::ALL {
        assert_eq!(
            one[0].features[f.index()].to_bits(),
            many[0].features[f.index()].to_bits(),
            "{f:?}"
        );
    }
    // Talkers never undercount and exceed the truth by at most the count-min error (e/w of
    // the packets, here with a margin of 4) ; the three heavy sources lead.
    let mut truth: HashMap<IpKey, u64> = HashMap::new();
    for p in &packets {
        *truth.entry(p.ip.unwrap().src).or_default() += 1;
    }
    let bound =
        4.0 * std::f64::consts::E / crate::window::talkers::CMS_WIDTH as f64 * packets.len() as f64;
    for (addr, count) in &many[0].talkers.src_addrs {
        let t = truth
            .iter()
            .find(|(k, _)| key_to_addr(**k) == *addr)
            .map(|(_, &v)| v)
            .unwrap_or(0);
        assert!(
            *count >= t && (*count - t) as f64 <= bound,
            "{addr}: {count} vs {t} (bound {bound})"
        );
    }
    let top: HashSet<_> = many[0]
        .talkers
        .src_addrs
        .iter()
        .take(3)
        .map(|t| t.0)
        .collect();
    let want: HashSet<_> = (0..3).map(|j| key_to_addr(heavy(j))).collect();
    assert_eq!(top, want);

    // The worst case: both directions estimated, random ports both ways.
    let both: Vec<PacketSummary> = (0..70_000u64)
        .map(|j| PacketSummary {
            ts_ns: j as i64,
            wire_len: 80,
            ip: Some(IpSummary {
                src: v6_source(j),
                dst: v6_source(j + 1_000_000),
                ttl: 64,
            }),
            transport: Transport::Udp {
                src_port: (v6_source(j) >> 3) as u16,
                dst_port: (v6_source(j) >> 23) as u16,
            },
            ..PacketSummary::default()
        })
        .collect();
    let p = one_partial(&both);
    assert!(p.src_addrs.is_estimated() && p.dst_addrs.is_estimated());
    let bytes = p.to_bytes().unwrap().len();
    eprintln!("estimated both ways, random ports: {bytes} bytes");
    assert!(bytes < 512 * 1024, "{bytes} bytes");
}

#[test]
fn what_a_window_costs_on_the_wire() {
    // Empty: the header, ω, index and zero sums. Busy: 5,000 packets of 3,000 clients and
    // 300 servers (the bench's mix at ω = 1 s), every heavy-hitter family filled.
    let empty = PartialWindow::new(omega(), 1_764_597_600)
        .to_bytes()
        .unwrap();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let busy: Vec<PacketSummary> = (0..5_000)
        .map(|i| {
            let (c, s, r) = (next() % 3_000, next() % 300, next());
            let client = ipv4_key([10, 0, (c >> 8) as u8, c as u8]);
            let server = ipv4_key([198, 51, 100, s as u8]);
            let (src, dst) = if r % 2 == 0 {
                (client, server)
            } else {
                (server, client)
            };
            PacketSummary {
                ts_ns: i,
                wire_len: 60 + (r % 1400) as u32,
                ip: Some(IpSummary { src, dst, ttl: 64 }),
                transport: Transport::Tcp {
                    src_port: if r % 2 == 0 {
                        40_000 + (r % 20_000) as u16
                    } else {
                        443
                    },
                    dst_port: if r % 2 == 0 {
                        443
                    } else {
                        40_000 + (r % 20_000) as u16
                    },
                    flags: [0x10, 0x18, 0x02, 0x12, 0x11][(r % 5) as usize],
                },
                ..PacketSummary::default()
            }
        })
        .collect();
    let busy = one_partial(&busy).to_bytes().unwrap();
    eprintln!(
        "encoded partial window: empty {} bytes, busy {} bytes",
        empty.len(),
        busy.len()
    );
    assert!(empty.len() < 256, "{}", empty.len());
    assert!(busy.len() < 64 * 1024, "{}", busy.len());
}
