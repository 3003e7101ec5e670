//! Throughput of the per-packet hot path: `decode` on typical frames and
//! `WindowAggregator::push` on pre-built packet summaries.
//!
//! `cargo bench --bench aggregator` (add `-- decode` or `-- push` to run one group).
//! Figures are elements (packets) per second; compare them with each other and with
//! `scripts/bench-extract.sh`, not with absolute targets: machines are noisy.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use etherparse::{PacketBuilder, VlanId};
use netanom::decode::{decode, ipv4_key, IpSummary, LinkType, PacketSummary, Transport};
use netanom::window::{Omega, WindowAggregator, WindowConfig};

/// SplitMix64, so the inputs are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
    /// Skewed towards low values: a few heavy talkers, a long tail.
    fn skewed(&mut self, n: u64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u) * n as f64) as u64
    }
}

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [0x02, 0, 0x5e, 0, 0, 1];

/// Ethernet / IPv4 / TCP PSH+ACK with 200 payload bytes.
fn frame_v4_tcp() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([10, 0, 1, 7], [198, 51, 100, 20], 64)
        .tcp(51_000, 443, 1_000, 64_240)
        .psh()
        .ack(2_000)
        .write(&mut v, &[0u8; 200])
        .unwrap();
    v
}

/// Ethernet / IPv6 / UDP (a DNS query, 40 payload bytes).
fn frame_v6_udp() -> Vec<u8> {
    let mut v = Vec::new();
    let src = [
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x07,
    ];
    let dst = [
        0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x35,
    ];
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(src, dst, 64)
        .udp(40_000, 53)
        .write(&mut v, &[0u8; 40])
        .unwrap();
    v
}

/// Ethernet / 802.1Q / IPv4 / TCP SYN.
fn frame_vlan_v4_tcp() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .single_vlan(VlanId::try_new(100).unwrap())
        .ipv4([10, 0, 2, 9], [203, 0, 113, 80], 64)
        .tcp(52_000, 80, 7, 64_240)
        .syn()
        .write(&mut v, &[])
        .unwrap();
    v
}

fn bench_decode(c: &mut Criterion) {
    let frames = [
        ("eth_ipv4_tcp", frame_v4_tcp()),
        ("eth_ipv6_udp", frame_v6_udp()),
        ("eth_vlan_ipv4_tcp", frame_vlan_v4_tcp()),
    ];
    let mut group = c.benchmark_group("decode");
    group.measurement_time(Duration::from_secs(3));
    for (name, frame) in &frames {
        let wire = frame.len() as u32;
        group.throughput(Throughput::Elements(1));
        group.bench_function(*name, |b| {
            b.iter(|| {
                decode(
                    LinkType::Ethernet,
                    black_box(frame.as_slice()),
                    black_box(1_700_000_000_000_000_000),
                    wire,
                )
            })
        });
    }
    // The three kinds interleaved, 1,024 frames a batch, as a stream would mix them.
    let mixed: Vec<&[u8]> = (0..1024).map(|i| frames[i % 3].1.as_slice()).collect();
    group.throughput(Throughput::Elements(mixed.len() as u64));
    group.bench_function("mixed_1024", |b| {
        b.iter(|| {
            let mut ok = 0u32;
            for (i, f) in mixed.iter().enumerate() {
                let s = decode(LinkType::Ethernet, black_box(f), i as i64, f.len() as u32);
                ok += u32::from(s.ip.is_some());
            }
            ok
        })
    });
    group.finish();
}

/// A realistic stream: ~3,000 clients and ~300 servers (skewed popularity), IPv4 with a
/// fifth IPv6, mostly TCP with the usual flag mix, DNS and other UDP, some ICMP and non-IP,
/// `rate` packets per second of capture time.
fn realistic_mix(n: usize, rate: u64, seed: u64) -> Vec<PacketSummary> {
    let mut rng = Rng(seed);
    let start = 1_700_000_000_000_000_000i64;
    let gap = 1_000_000_000 / rate;
    let mut ts = start;
    const SERVICES: [u16; 10] = [443, 443, 443, 80, 80, 22, 25, 993, 587, 8080];
    const FLAGS: [u8; 10] = [0x10, 0x10, 0x10, 0x10, 0x18, 0x18, 0x02, 0x12, 0x11, 0x14];
    (0..n)
        .map(|_| {
            ts += rng.below(2 * gap + 1) as i64;
            let client_i = rng.skewed(3_000) as u32 + 1;
            let server_i = rng.skewed(300) as u32 + 1;
            let v6 = rng.below(5) == 0;
            let (client, server) = if v6 {
                (
                    0x2001_0db8_0000_0000_0000_0000_0000_0000u128 | u128::from(client_i),
                    0x2001_0db8_ffff_0000_0000_0000_0000_0000u128 | u128::from(server_i),
                )
            } else {
                (
                    ipv4_key([10, 0, (client_i >> 8) as u8, client_i as u8]),
                    if server_i < 255 {
                        ipv4_key([198, 51, 100, server_i as u8])
                    } else {
                        ipv4_key([203, 0, 113, (server_i - 254) as u8])
                    },
                )
            };
            let to_server = rng.below(2) == 0;
            let (src, dst) = if to_server {
                (client, server)
            } else {
                (server, client)
            };
            let eph = 32_768 + rng.below(28_000) as u16;
            let kind = rng.below(100);
            let (transport, wire_len) = if kind < 85 {
                let svc = SERVICES[rng.below(10) as usize];
                let (sp, dp) = if to_server { (eph, svc) } else { (svc, eph) };
                let flags = FLAGS[rng.below(10) as usize];
                let len = if flags == 0x10 && !to_server {
                    1514
                } else {
                    60 + rng.below(600) as u32
                };
                (
                    Transport::Tcp {
                        src_port: sp,
                        dst_port: dp,
                        flags,
                    },
                    len,
                )
            } else if kind < 95 {
                let svc = if kind < 92 { 53 } else { 123 };
                let (sp, dp) = if to_server { (eph, svc) } else { (svc, eph) };
                (
                    Transport::Udp {
                        src_port: sp,
                        dst_port: dp,
                    },
                    80 + rng.below(400) as u32,
                )
            } else if kind < 98 {
                (
                    Transport::Icmp {
                        icmp_type: if rng.below(4) == 0 { 3 } else { 8 },
                        v6: false,
                    },
                    98,
                )
            } else {
                (Transport::None, 60)
            };
            let ip = (kind < 98).then_some(IpSummary {
                src,
                dst,
                ttl: if to_server {
                    64
                } else {
                    50 + rng.below(10) as u8
                },
            });
            PacketSummary {
                ts_ns: ts,
                wire_len,
                ip,
                transport: if ip.is_some() {
                    transport
                } else {
                    Transport::None
                },
                ..PacketSummary::default()
            }
        })
        .collect()
}

/// A SYN flood with spoofed random IPv4 sources at one victim: every packet a new source,
/// so a window quickly passes the 65,536 exact limit into the HyperLogLog path.
fn spoofed_flood(n: usize, seed: u64) -> Vec<PacketSummary> {
    let mut rng = Rng(seed);
    let start = 1_700_000_000_000_000_000i64;
    let victim = ipv4_key([203, 0, 113, 80]);
    (0..n)
        .map(|i| {
            let src = rng.next() as u32;
            PacketSummary {
                // 1 µs apart: all in one 1 s window for n ≤ 1,000,000.
                ts_ns: start + i as i64 * 1_000,
                wire_len: 60,
                ip: Some(IpSummary {
                    src: ipv4_key(src.to_be_bytes()),
                    dst: victim,
                    ttl: 40 + (src >> 27) as u8,
                }),
                transport: Transport::Tcp {
                    src_port: (src >> 8) as u16,
                    dst_port: 80,
                    flags: 0x02,
                },
                ..PacketSummary::default()
            }
        })
        .collect()
}

/// Pushes the whole stream through a fresh aggregator and closes it; returns the windows.
fn run(config: WindowConfig, packets: &[PacketSummary]) -> usize {
    let mut agg = WindowAggregator::new(config);
    let mut windows = 0usize;
    let mut emit = |w: netanom::window::Window| {
        black_box(&w);
        windows += 1;
    };
    for p in packets {
        agg.push(black_box(p), &mut emit);
    }
    agg.finish(&mut emit);
    windows
}

fn bench_push(c: &mut Criterion) {
    const N: usize = 262_144;
    let mut group = c.benchmark_group("push");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(N as u64));

    // 5,000 packets/s of capture time (the synth_pcap default: 3 M packets in 10 min):
    // ~52 s of traffic, so ω = 1 s closes ~52 windows, ω = 0.5 s ~105, ω = 30 s 2.
    let mix = realistic_mix(N, 5_000, 1);
    for (name, omega_us) in [
        ("mix_5kpps_omega_0.5s", 500_000),
        ("mix_5kpps_omega_1s", 1_000_000),
        ("mix_5kpps_omega_30s", 30_000_000),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                run(
                    WindowConfig::new(Omega::from_micros(omega_us).unwrap()),
                    &mix,
                )
            })
        });
    }
    // The same mix at 1 M packets/s: ~4 windows of ω = 0.1 s, each with ~100 k packets,
    // so the per-packet work dominates and window closing hardly shows.
    let dense = realistic_mix(N, 1_000_000, 2);
    group.bench_function("mix_1mpps_omega_0.1s", |b| {
        b.iter(|| {
            run(
                WindowConfig::new(Omega::from_micros(100_000).unwrap()),
                &dense,
            )
        })
    });
    // Spoofed-source flood: 262,144 distinct sources in one window, past the exact limit.
    let flood = spoofed_flood(N, 3);
    let mut estimated = false;
    let mut agg = WindowAggregator::new(WindowConfig::new(Omega::from_micros(1_000_000).unwrap()));
    let mut check = |w: netanom::window::Window| estimated |= w.distinct_estimated;
    for p in &flood {
        agg.push(p, &mut check);
    }
    agg.finish(&mut check);
    assert!(estimated, "the flood case must cross the exact limit");
    group.bench_function("spoofed_flood_omega_1s", |b| {
        b.iter(|| {
            run(
                WindowConfig::new(Omega::from_micros(1_000_000).unwrap()),
                &flood,
            )
        })
    });
    group.finish();

    // Aggregator construction alone (two 65,536-entry maps, two port tables), for scale.
    let mut group = c.benchmark_group("setup");
    group.bench_function("aggregator_new", |b| {
        b.iter_batched(
            || (),
            |_| WindowAggregator::new(WindowConfig::new(Omega::from_micros(1_000_000).unwrap())),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // No plots: with this crate's plotters features (ab_glyph, no system fonts) criterion's
    // plotters backend finds no font and panics (FontUnavailable).
    config = Criterion::default().without_plots();
    targets = bench_decode, bench_push
}
criterion_main!(benches);
