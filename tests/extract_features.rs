//! `netanom extract` against the feature contract (docs/features.md), feature by feature.
//!
//! Every capture is generated here into a temporary directory; every expected value was
//! computed by hand (the arithmetic is in the comments). `assert_row` checks the whole row:
//! the features listed must match (exactly when the value is exactly representable, else
//! within 1e-9) and every feature not listed must be 0, so a packet counted where it must
//! not be is caught as surely as one that is missed.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];
const C: [u8; 4] = [10, 0, 0, 3];

fn a6() -> [u8; 16] {
    v6("2001:db8::1")
}

fn b6() -> [u8; 16] {
    v6("2001:db8::2")
}

/// T0 = 1700000000 s, a multiple of 0.5 s and of 1 s (not of 30 s).
fn at(offset: &str) -> i64 {
    t("1700000000") + t(offset)
}

fn save(dir: &Path, name: &str, pcap: &Pcap) -> PathBuf {
    let path = dir.join(name);
    pcap.write(&path);
    path
}

/// Runs extract on one file and returns its rows.
fn rows_of(pcap: &Pcap, window: &str) -> Vec<Row> {
    let dir = tempfile::tempdir().unwrap();
    let path = save(dir.path(), "in.pcap", pcap);
    extract_ok(&[&path], window).rows
}

/// Runs extract with ω = 1 and expects exactly one window.
fn one_window(pcap: &Pcap) -> Row {
    let rows = rows_of(pcap, "1");
    assert_eq!(rows.len(), 1, "expected one window, got {rows:#?}");
    rows.into_iter().next().unwrap()
}

fn e4(ip: Vec<u8>) -> Vec<u8> {
    eth(ETH_IPV4, &ip)
}

fn e6(ip: Vec<u8>) -> Vec<u8> {
    eth(ETH_IPV6, &ip)
}

// ---------------------------------------------------------------------------------------------
// Output format
// ---------------------------------------------------------------------------------------------

#[test]
fn header_row_is_exactly_the_contract() {
    let mut p = Pcap::micro(linktype::EN10MB);
    p.packet(at("0.25"), &pad_to(eth(ETH_ARP, &arp_request()), 60));
    let dir = tempfile::tempdir().unwrap();
    let path = save(dir.path(), "h.pcap", &p);
    let run = extract(&[&path], "1");
    run.assert_ok();
    let first = run.stdout.lines().next().unwrap();
    let mut want = String::from("window_start,window_end,");
    want.push_str(&FEATURE_NAMES.join(","));
    assert_eq!(first, want);
    assert_eq!(first.split(',').count(), 55);
    assert!(first.starts_with("window_start,window_end,pkt_size_mean,pkt_count,pkt_size_var,"));
    assert!(first.ends_with(",dst_port_993_count,dst_port_143_count"));
    // One data row, times with exactly 6 decimals.
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[1].starts_with("1700000000.000000,1700000001.000000,60,1,0,"));
}

// ---------------------------------------------------------------------------------------------
// Sizes and TTL
// ---------------------------------------------------------------------------------------------

#[test]
fn sizes_count_every_frame_at_wire_length() {
    let mut p = Pcap::micro(linktype::EN10MB);
    // 60 B ARP (not IP): counts for pkt_count and sizes only.
    p.packet(at("0.1"), &pad_to(eth(ETH_ARP, &arp_request()), 60));
    // 100 B IPv4/UDP 10.0.0.1:5000 -> 10.0.0.2:6000, TTL 64.
    p.packet(
        at("0.2"),
        &pad_to(e4(ipv4(A, B, 64, proto::UDP, &udp(5000, 6000, &[]))), 100),
    );
    // 140 B on the wire, 50 B captured: the TCP header is cut after 16 bytes, so the
    // packet is IP only (10.0.0.1 -> 10.0.0.3), but its size is 140.
    let cut = pad_to(
        e4(ipv4(
            A,
            C,
            64,
            proto::TCP,
            &tcp(40000, 8080, flags::ACK, &[]),
        )),
        140,
    );
    p.packet_snap(at("0.3"), &cut, 50);
    // 100 B IPv6/UDP [2001:db8::1]:5000 -> [2001:db8::2]:6000, hop limit 64.
    p.packet(
        at("0.4"),
        &pad_to(
            e6(ipv6(a6(), b6(), 64, proto::UDP, &udp(5000, 6000, &[]))),
            100,
        ),
    );
    let row = one_window(&p);
    // sizes 60, 100, 140, 100: mean 400/4 = 100; var ((-40)^2 + 0 + 40^2 + 0)/4 = 800.
    // IP packets: 3, all TTL 64 -> mean 64, var 0.
    // dst {10.0.0.2, 10.0.0.3, 2001:db8::2} = 3; src {10.0.0.1, 2001:db8::1} = 2.
    // ports: only the two UDP packets: src {5000} = 1, dst {6000} = 1.
    assert_row(
        &row,
        "sizes",
        &[
            ("pkt_size_mean", 100.0),
            ("pkt_count", 4.0),
            ("pkt_size_var", 800.0),
            ("ttl_mean", 64.0),
            ("dst_ip_distinct", 3.0),
            ("src_ip_distinct", 2.0),
            ("src_port_distinct", 1.0),
            ("dst_port_distinct", 1.0),
            ("udp_count", 2.0),
        ],
    );
}

#[test]
fn size_variance_is_population_variance() {
    let mut p = Pcap::micro(linktype::EN10MB);
    p.packet(at("0.1"), &pad_to(eth(ETH_ARP, &arp_request()), 60));
    p.packet(
        at("0.2"),
        &pad_to(e4(ipv4(A, B, 64, proto::UDP, &udp(1111, 2222, &[]))), 100),
    );
    p.packet(
        at("0.3"),
        &pad_to(e4(ipv4(A, B, 64, proto::UDP, &udp(1111, 2222, &[]))), 1514),
    );
    let row = one_window(&p);
    // sizes 60, 100, 1514: sum 1674, mean 558.
    // deviations -498, -458, 956: squares 248004 + 209764 + 913936 = 1371704;
    // population variance 1371704 / 3 = 457234.666… (not / 2).
    assert_row(
        &row,
        "size variance",
        &[
            ("pkt_size_mean", 558.0),
            ("pkt_count", 3.0),
            ("pkt_size_var", 1371704.0 / 3.0),
            ("ttl_mean", 64.0),
            ("dst_ip_distinct", 1.0),
            ("src_ip_distinct", 1.0),
            ("src_port_distinct", 1.0),
            ("dst_port_distinct", 1.0),
            ("udp_count", 2.0),
        ],
    );
}

#[test]
fn ttl_and_hop_limit_mean_and_variance_over_ip_packets() {
    let mut p = Pcap::micro(linktype::EN10MB);
    let x = proto::EXPERIMENTAL; // no transport: IP-level features only
    p.packet(at("0.1"), &pad_to(e4(ipv4(A, B, 1, x, &[])), 60));
    p.packet(at("0.2"), &pad_to(e4(ipv4(A, B, 64, x, &[])), 60));
    p.packet(at("0.3"), &pad_to(e4(ipv4(B, A, 128, x, &[])), 60));
    p.packet(at("0.4"), &pad_to(e6(ipv6(a6(), b6(), 255, x, &[])), 60));
    p.packet(at("0.5"), &pad_to(eth(ETH_ARP, &arp_request()), 60)); // no TTL
    let row = one_window(&p);
    // TTLs 1, 64, 128, 255 (ARP excluded): mean 448/4 = 112.
    // deviations -111, -48, 16, 143: 12321 + 2304 + 256 + 20449 = 35330; / 4 = 8832.5.
    // dst {10.0.0.2, 10.0.0.1, 2001:db8::2} = 3; src {10.0.0.1, 10.0.0.2, 2001:db8::1} = 3.
    assert_row(
        &row,
        "ttl",
        &[
            ("pkt_size_mean", 60.0),
            ("pkt_count", 5.0),
            ("ttl_mean", 112.0),
            ("ttl_var", 8832.5),
            ("dst_ip_distinct", 3.0),
            ("src_ip_distinct", 3.0),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Distinct addresses and ports
// ---------------------------------------------------------------------------------------------

#[test]
fn distinct_addresses_count_v4_and_v6_together() {
    let mut p = Pcap::micro(linktype::EN10MB);
    let x = proto::EXPERIMENTAL;
    p.packet(at("0.1"), &pad_to(e4(ipv4(A, B, 64, x, &[])), 60));
    p.packet(at("0.2"), &pad_to(e4(ipv4(A, B, 64, x, &[])), 60)); // same pair again
    p.packet(at("0.3"), &pad_to(e4(ipv4(B, A, 64, x, &[])), 60));
    p.packet(at("0.4"), &pad_to(e6(ipv6(a6(), b6(), 64, x, &[])), 60));
    p.packet(
        at("0.5"),
        &pad_to(e6(ipv6(v6("fe80::1"), b6(), 64, x, &[])), 60),
    );
    // ::10.0.0.1 -> ::10.0.0.2 (IPv4-compatible IPv6): same low 32 bits as 10.0.0.1 and
    // 10.0.0.2 but different addresses; they must not merge with the IPv4 ones.
    p.packet(
        at("0.6"),
        &pad_to(e6(ipv6(v6("::a00:1"), v6("::a00:2"), 64, x, &[])), 60),
    );
    let row = one_window(&p);
    // dst {10.0.0.2, 10.0.0.1, 2001:db8::2, ::10.0.0.2} = 4
    // src {10.0.0.1, 10.0.0.2, 2001:db8::1, fe80::1, ::10.0.0.1} = 5
    assert_row(
        &row,
        "distinct addresses",
        &[
            ("pkt_size_mean", 60.0),
            ("pkt_count", 6.0),
            ("ttl_mean", 64.0),
            ("dst_ip_distinct", 4.0),
            ("src_ip_distinct", 5.0),
        ],
    );
}

#[test]
fn distinct_ports_count_tcp_and_udp_port_numbers_together() {
    let mut p = Pcap::micro(linktype::EN10MB);
    let ack = flags::ACK;
    p.packet(
        at("0.1"),
        &e4(ipv4(A, B, 64, proto::TCP, &tcp(1000, 80, ack, &[]))),
    );
    p.packet(
        at("0.2"),
        &e4(ipv4(A, B, 64, proto::TCP, &tcp(1000, 443, ack, &[]))),
    );
    p.packet(
        at("0.3"),
        &pad_to(e4(ipv4(A, B, 64, proto::UDP, &udp(1000, 53, &[]))), 54),
    );
    p.packet(
        at("0.4"),
        &pad_to(e4(ipv4(A, B, 64, proto::UDP, &udp(2000, 80, &[]))), 54),
    );
    p.packet(
        at("0.5"),
        &pad_to(e4(ipv4(A, B, 64, proto::ICMP, &icmp_echo(0))), 54),
    );
    let row = one_window(&p);
    // all frames 54 B (14 + 20 + 20; UDP/ICMP padded): mean 54, var 0.
    // src ports {1000, 2000} = 2 (TCP 1000 and UDP 1000 are one port number);
    // dst ports {80, 443, 53} = 3 (TCP 80 and UDP 80 are one). ICMP has no ports.
    // TCP = 2, both ACK: ack_ratio 2/2 = 1.
    // dst_port_80: TCP 80 + UDP 80 = 2; dst_port_443 = 1; dst_port_53 = 1.
    assert_row(
        &row,
        "ports",
        &[
            ("pkt_size_mean", 54.0),
            ("pkt_count", 5.0),
            ("ttl_mean", 64.0),
            ("dst_ip_distinct", 1.0),
            ("src_ip_distinct", 1.0),
            ("src_port_distinct", 2.0),
            ("dst_port_distinct", 3.0),
            ("ack_count", 2.0),
            ("ack_ratio", 1.0),
            ("icmp_count", 1.0),
            ("udp_count", 2.0),
            ("dst_port_80_count", 2.0),
            ("dst_port_443_count", 1.0),
            ("dst_port_53_count", 1.0),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// TCP flags and ratios
// ---------------------------------------------------------------------------------------------

#[test]
fn tcp_flag_counts_combined_counts_and_ratios() {
    use flags::*;
    let sets = [
        SYN,             // 1
        SYN | ACK,       // 2
        ACK,             // 3
        PSH | ACK,       // 4
        FIN | ACK,       // 5
        RST,             // 6
        RST | ACK,       // 7
        URG | ACK | PSH, // 8
        FIN | PSH | URG, // 9 (no ACK)
        ECE | CWR,       // 10 (none of the six)
    ];
    let mut p = Pcap::micro(linktype::EN10MB);
    for (i, f) in sets.iter().enumerate() {
        let ts = at(&format!("0.{i}"));
        p.packet(
            ts,
            &e4(ipv4(A, B, 64, proto::TCP, &tcp(1234, 5678, *f, &[]))),
        );
    }
    // A second window: three packets with all six flags, one with none (TCP = 4).
    for i in 0..4 {
        let f = if i < 3 { 0x3f } else { 0 };
        let ts = at(&format!("1.{i}"));
        p.packet(
            ts,
            &e4(ipv4(A, B, 64, proto::TCP, &tcp(1234, 5678, f, &[]))),
        );
    }
    let rows = rows_of(&p, "1");
    assert_eq!(rows.len(), 2);
    // Window 1, TCP = 10:
    //   syn: 1,2 = 2     fin: 5,9 = 2     psh: 4,8,9 = 3   rst: 6,7 = 2   urg: 8,9 = 2
    //   ack: 2,3,4,5,7,8 = 6
    //   fin_ack: 5 = 1   rst_ack: 7 = 1   syn_ack: 2 = 1   psh_ack: 4,8 = 2
    //   ratios: each / 10.
    let common = [
        ("pkt_size_mean", 54.0),
        ("ttl_mean", 64.0),
        ("dst_ip_distinct", 1.0),
        ("src_ip_distinct", 1.0),
        ("src_port_distinct", 1.0),
        ("dst_port_distinct", 1.0),
    ];
    let mut want1 = common.to_vec();
    want1.extend([
        ("pkt_count", 10.0),
        ("syn_count", 2.0),
        ("fin_count", 2.0),
        ("psh_count", 3.0),
        ("rst_count", 2.0),
        ("urg_count", 2.0),
        ("ack_count", 6.0),
        ("fin_ack_count", 1.0),
        ("rst_ack_count", 1.0),
        ("syn_ack_count", 1.0),
        ("psh_ack_count", 2.0),
        ("rst_ratio", 0.2),
        ("syn_ratio", 0.2),
        ("psh_ratio", 0.3),
        ("urg_ratio", 0.2),
        ("fin_ratio", 0.2),
        ("ack_ratio", 0.6),
        ("rst_ack_ratio", 0.1),
        ("psh_ack_ratio", 0.2),
        ("syn_ack_ratio", 0.1),
        ("fin_ack_ratio", 0.1),
    ]);
    assert_row(&rows[0], "flags window 1", &want1);
    // Window 2, TCP = 4: every count (single and combined) = 3, every ratio 3/4 = 0.75.
    let mut want2 = common.to_vec();
    want2.push(("pkt_count", 4.0));
    for name in [
        "syn_count",
        "fin_count",
        "psh_count",
        "rst_count",
        "urg_count",
        "ack_count",
        "fin_ack_count",
        "rst_ack_count",
        "syn_ack_count",
        "psh_ack_count",
    ] {
        want2.push((name, 3.0));
    }
    for name in [
        "rst_ratio",
        "syn_ratio",
        "psh_ratio",
        "urg_ratio",
        "fin_ratio",
        "ack_ratio",
        "rst_ack_ratio",
        "psh_ack_ratio",
        "syn_ack_ratio",
        "fin_ack_ratio",
    ] {
        want2.push((name, 0.75));
    }
    assert_row(&rows[1], "flags window 2", &want2);
}

#[test]
fn ratios_are_over_tcp_packets_only() {
    // 1 TCP SYN among UDP, ICMP and ARP frames: syn_ratio = 1/1, not 1/5.
    let mut p = Pcap::micro(linktype::EN10MB);
    p.packet(
        at("0.1"),
        &e4(ipv4(
            A,
            B,
            64,
            proto::TCP,
            &tcp(40000, 8080, flags::SYN, &[]),
        )),
    );
    p.packet(
        at("0.2"),
        &pad_to(e4(ipv4(A, B, 64, proto::UDP, &udp(40000, 8080, &[]))), 54),
    );
    p.packet(
        at("0.3"),
        &pad_to(e4(ipv4(A, B, 64, proto::ICMP, &icmp_echo(0))), 54),
    );
    p.packet(at("0.4"), &pad_to(eth(ETH_ARP, &arp_request()), 54));
    p.packet(at("0.5"), &pad_to(eth(ETH_ARP, &arp_request()), 54));
    let row = one_window(&p);
    assert_row(
        &row,
        "ratios over TCP",
        &[
            ("pkt_size_mean", 54.0),
            ("pkt_count", 5.0),
            ("ttl_mean", 64.0),
            ("dst_ip_distinct", 1.0),
            ("src_ip_distinct", 1.0),
            ("src_port_distinct", 1.0),
            ("dst_port_distinct", 1.0),
            ("syn_count", 1.0),
            ("syn_ratio", 1.0),
            ("icmp_count", 1.0),
            ("udp_count", 1.0),
        ],
    );
    // A window with no TCP at all: every ratio 0 (not NaN).
    let mut q = Pcap::micro(linktype::EN10MB);
    q.packet(
        at("0.1"),
        &pad_to(e4(ipv4(A, B, 64, proto::UDP, &udp(1, 2, &[]))), 60),
    );
    let row = one_window(&q);
    assert_row(
        &row,
        "no TCP",
        &[
            ("pkt_size_mean", 60.0),
            ("pkt_count", 1.0),
            ("ttl_mean", 64.0),
            ("dst_ip_distinct", 1.0),
            ("src_ip_distinct", 1.0),
            ("src_port_distinct", 1.0),
            ("dst_port_distinct", 1.0),
            ("udp_count", 1.0),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Well-known ports
// ---------------------------------------------------------------------------------------------

#[test]
fn each_well_known_source_and_destination_port_has_its_own_column() {
    let mut p = Pcap::micro(linktype::EN10MB);
    // Window 1: i + 1 TCP/ACK packets from port WELL_KNOWN_PORTS[i] to 50000 (66 in all),
    // so a swapped column shows up as a wrong count.
    let mut n = 0;
    for (i, &port) in WELL_KNOWN_PORTS.iter().enumerate() {
        for _ in 0..=i {
            let ts = at("0") + n * 10_000_000; // 10 ms apart, all within [0, 1)
            p.packet(
                ts,
                &e4(ipv4(
                    A,
                    B,
                    64,
                    proto::TCP,
                    &tcp(port, 50000, flags::ACK, &[]),
                )),
            );
            n += 1;
        }
    }
    // Window 2: i + 1 UDP packets from 50000 to port WELL_KNOWN_PORTS[i].
    let mut n = 0;
    for (i, &port) in WELL_KNOWN_PORTS.iter().enumerate() {
        for _ in 0..=i {
            let ts = at("1") + n * 10_000_000;
            p.packet(ts, &e4(ipv4(A, B, 64, proto::UDP, &udp(50000, port, &[]))));
            n += 1;
        }
    }
    // Window 3: UDP 22 -> 22 (both columns), TCP 8080 -> 0 with no flags (no column).
    p.packet(
        at("2.1"),
        &e4(ipv4(A, B, 64, proto::UDP, &udp(22, 22, &[]))),
    );
    p.packet(
        at("2.2"),
        &e4(ipv4(A, B, 64, proto::TCP, &tcp(8080, 0, 0, &[]))),
    );
    let rows = rows_of(&p, "1");
    assert_eq!(rows.len(), 3);

    // Window 1: 66 frames of 54 B; src ports 11 distinct, dst {50000}; all ACK.
    let mut want: Vec<(String, f64)> = vec![
        ("pkt_size_mean".into(), 54.0),
        ("pkt_count".into(), 66.0),
        ("ttl_mean".into(), 64.0),
        ("dst_ip_distinct".into(), 1.0),
        ("src_ip_distinct".into(), 1.0),
        ("src_port_distinct".into(), 11.0),
        ("dst_port_distinct".into(), 1.0),
        ("ack_count".into(), 66.0),
        ("ack_ratio".into(), 1.0),
    ];
    for (i, port) in WELL_KNOWN_PORTS.iter().enumerate() {
        want.push((format!("src_port_{port}_count"), (i + 1) as f64));
    }
    let want_ref: Vec<(&str, f64)> = want.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    assert_row(&rows[0], "well-known source ports", &want_ref);

    // Window 2: 66 frames of 42 B (14 + 20 + 8); dst ports 11 distinct; all UDP.
    let mut want: Vec<(String, f64)> = vec![
        ("pkt_size_mean".into(), 42.0),
        ("pkt_count".into(), 66.0),
        ("ttl_mean".into(), 64.0),
        ("dst_ip_distinct".into(), 1.0),
        ("src_ip_distinct".into(), 1.0),
        ("src_port_distinct".into(), 1.0),
        ("dst_port_distinct".into(), 11.0),
        ("udp_count".into(), 66.0),
    ];
    for (i, port) in WELL_KNOWN_PORTS.iter().enumerate() {
        want.push((format!("dst_port_{port}_count"), (i + 1) as f64));
    }
    let want_ref: Vec<(&str, f64)> = want.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    assert_row(&rows[1], "well-known destination ports", &want_ref);

    // Window 3: sizes 42 and 54: mean 48, var (36 + 36)/2 = 36. TCP = 1 with no flags:
    // all flag counts and ratios 0. src ports {22, 8080}, dst ports {22, 0}.
    assert_row(
        &rows[2],
        "port 22 both ways, flagless TCP",
        &[
            ("pkt_size_mean", 48.0),
            ("pkt_count", 2.0),
            ("pkt_size_var", 36.0),
            ("ttl_mean", 64.0),
            ("dst_ip_distinct", 1.0),
            ("src_ip_distinct", 1.0),
            ("src_port_distinct", 2.0),
            ("dst_port_distinct", 2.0),
            ("udp_count", 1.0),
            ("src_port_22_count", 1.0),
            ("dst_port_22_count", 1.0),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// ICMP and UDP
// ---------------------------------------------------------------------------------------------

#[test]
fn icmp_v4_and_v6_and_udp_counts() {
    let mut p = Pcap::micro(linktype::EN10MB);
    // p1 ICMPv4 echo; p2 ICMPv6 echo.
    p.packet(
        at("0.1"),
        &pad_to(e4(ipv4(A, B, 64, proto::ICMP, &icmp_echo(0))), 100),
    );
    p.packet(
        at("0.2"),
        &pad_to(
            e6(ipv6(a6(), b6(), 64, proto::ICMPV6, &icmpv6_echo(0))),
            100,
        ),
    );
    // p3 ICMPv4 port unreachable 10.0.0.2 -> 10.0.0.1 quoting a TCP SYN to port 80: ICMP
    // only; the quoted IP/TCP headers are not counted (no SYN, no port).
    let quoted = ipv4(A, B, 64, proto::TCP, &tcp(40000, 80, flags::SYN, &[]));
    p.packet(
        at("0.3"),
        &pad_to(e4(ipv4(B, A, 64, proto::ICMP, &icmp(3, 3, &quoted))), 100),
    );
    // p4 ICMPv6 echo behind a hop-by-hop header.
    let hbh = ext_options(proto::ICMPV6, 0, &icmpv6_echo(0));
    p.packet(
        at("0.4"),
        &pad_to(e6(ipv6(a6(), b6(), 64, proto::HOPOPT, &hbh)), 100),
    );
    // p5, p6 UDP 5353 -> 53 over v4 and v6.
    p.packet(
        at("0.5"),
        &pad_to(e4(ipv4(A, B, 64, proto::UDP, &udp(5353, 53, &[]))), 100),
    );
    p.packet(
        at("0.6"),
        &pad_to(
            e6(ipv6(a6(), b6(), 64, proto::UDP, &udp(5353, 53, &[]))),
            100,
        ),
    );
    // p7 ICMPv4 with only 4 of its 8 header bytes captured: IP only.
    let icmp_cut = pad_to(e4(ipv4(A, B, 64, proto::ICMP, &icmp_echo(0))), 100);
    p.packet_snap(at("0.7"), &icmp_cut, 14 + 20 + 4);
    let row = one_window(&p);
    // 7 frames of 100 B. IP: all 7, TTL 64.
    // dst {10.0.0.2, 2001:db8::2, 10.0.0.1} = 3; src {10.0.0.1, 2001:db8::1, 10.0.0.2} = 3.
    // ICMP: p1..p4 = 4. UDP: p5, p6 = 2; ports src {5353}, dst {53}; dst_port_53 = 2.
    assert_row(
        &row,
        "icmp/udp",
        &[
            ("pkt_size_mean", 100.0),
            ("pkt_count", 7.0),
            ("ttl_mean", 64.0),
            ("dst_ip_distinct", 3.0),
            ("src_ip_distinct", 3.0),
            ("src_port_distinct", 1.0),
            ("dst_port_distinct", 1.0),
            ("icmp_count", 4.0),
            ("udp_count", 2.0),
            ("dst_port_53_count", 2.0),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// IPv6 extension headers, IPv4 options, AH, ESP
// ---------------------------------------------------------------------------------------------

#[test]
fn ipv6_extension_headers_and_ah_are_walked_esp_ends_the_walk() {
    let mut p = Pcap::micro(linktype::EN10MB);
    let ip6 = |next: u8, payload: Vec<u8>| pad_to(e6(ipv6(a6(), b6(), 64, next, &payload)), 200);
    // p1 hop-by-hop -> routing -> destination options -> fragment (offset 0, M) -> TCP SYN
    //    with options, 40001 -> 443: TCP.
    let t1 = tcp_opts(40001, 443, flags::SYN, &SYN_OPTIONS, &[]);
    let chain = ext_options(
        proto::IPV6_ROUTE,
        0,
        &ext_routing(
            proto::IPV6_DSTOPTS,
            &ext_options(proto::IPV6_FRAG, 0, &ext_fragment(proto::TCP, 0, true, &t1)),
        ),
    );
    p.packet(at("0.1"), &ip6(proto::HOPOPT, chain));
    // p2 AH -> UDP 40002 -> 53: UDP.
    p.packet(
        at("0.2"),
        &ip6(proto::AH, ah(proto::UDP, &udp(40002, 53, &[]))),
    );
    // p3 destination options (16 bytes) -> ICMPv6 echo: ICMP.
    p.packet(
        at("0.3"),
        &ip6(
            proto::IPV6_DSTOPTS,
            ext_options(proto::ICMPV6, 1, &icmpv6_echo(4)),
        ),
    );
    // p4 ESP (opaque bytes that happen to look like a UDP header to 53): IP only.
    p.packet(at("0.4"), &ip6(proto::ESP, esp(&udp(40009, 53, &[]))));
    // p5 non-first fragment (offset 185 units) whose data looks like TCP SYN -> 80: IP only.
    p.packet(
        at("0.5"),
        &ip6(
            proto::IPV6_FRAG,
            ext_fragment(proto::TCP, 185, false, &tcp(40010, 80, flags::SYN, &[])),
        ),
    );
    // p6 hop-by-hop -> No Next Header: IP only.
    p.packet(
        at("0.6"),
        &ip6(proto::HOPOPT, ext_options(proto::NO_NEXT, 0, &[])),
    );
    // p7 hop-by-hop cut after 4 of its 8 bytes: IP only (the IPv6 header was whole).
    let cut = ip6(
        proto::HOPOPT,
        ext_options(proto::UDP, 0, &udp(40011, 53, &[])),
    );
    p.packet_snap(at("0.7"), &cut, 14 + 40 + 4);
    // p8 hop-by-hop -> AH -> fragment (offset 0, M) -> UDP 40004 -> 22: UDP.
    let chain = ext_options(
        proto::AH,
        0,
        &ah(
            proto::IPV6_FRAG,
            &ext_fragment(proto::UDP, 0, true, &udp(40004, 22, &[])),
        ),
    );
    p.packet(at("0.8"), &ip6(proto::HOPOPT, chain));
    let row = one_window(&p);
    // 8 frames of 200 B, all IPv6 2001:db8::1 -> 2001:db8::2, hop limit 64.
    // TCP: p1 (SYN) -> syn 1, syn_ratio 1/1. UDP: p2, p8. ICMP: p3.
    // src ports {40001, 40002, 40004} = 3; dst ports {443, 53, 22} = 3.
    assert_row(
        &row,
        "ipv6 extension headers",
        &[
            ("pkt_size_mean", 200.0),
            ("pkt_count", 8.0),
            ("ttl_mean", 64.0),
            ("dst_ip_distinct", 1.0),
            ("src_ip_distinct", 1.0),
            ("src_port_distinct", 3.0),
            ("dst_port_distinct", 3.0),
            ("syn_count", 1.0),
            ("syn_ratio", 1.0),
            ("icmp_count", 1.0),
            ("udp_count", 2.0),
            ("dst_port_443_count", 1.0),
            ("dst_port_53_count", 1.0),
            ("dst_port_22_count", 1.0),
        ],
    );
}

#[test]
fn ipv4_options_ah_and_esp() {
    let mut p = Pcap::micro(linktype::EN10MB);
    // p1 IPv4 with router alert (IHL 6) -> TCP SYN with 20 option bytes, 40001 -> 22.
    let ip = Ipv4::new(A, B, proto::TCP).options(&[0x94, 0x04, 0, 0]);
    let f = e4(ip.build(&tcp_opts(40001, 22, flags::SYN, &SYN_OPTIONS, &[])));
    p.packet(at("0.1"), &pad_to(f, 150));
    // p2 IPv4 with 40 option bytes (IHL 15: 39 NOPs + end of list) -> UDP 40002 -> 53.
    let mut opts = vec![1u8; 39];
    opts.push(0);
    let ip = Ipv4::new(A, B, proto::UDP).options(&opts);
    p.packet(at("0.2"), &pad_to(e4(ip.build(&udp(40002, 53, &[]))), 150));
    // p3 IPv4 AH -> TCP PSH|ACK 40003 -> 25.
    let f = e4(ipv4(
        A,
        B,
        64,
        proto::AH,
        &ah(proto::TCP, &tcp(40003, 25, flags::PSH | flags::ACK, &[])),
    ));
    p.packet(at("0.3"), &pad_to(f, 150));
    // p4 IPv4 ESP: IP only.
    p.packet(
        at("0.4"),
        &pad_to(e4(ipv4(A, B, 64, proto::ESP, &esp(&[0x55; 40]))), 150),
    );
    // p5 IPv4 AH -> ESP: IP only.
    p.packet(
        at("0.5"),
        &pad_to(
            e4(ipv4(
                A,
                B,
                64,
                proto::AH,
                &ah(proto::ESP, &esp(&[0x55; 40])),
            )),
            150,
        ),
    );
    let row = one_window(&p);
    // 5 frames of 150 B, IPv4 10.0.0.1 -> 10.0.0.2, TTL 64.
    // TCP = 2 (p1 SYN, p3 PSH|ACK): syn 1, psh 1, ack 1, psh_ack 1; ratios 1/2.
    // UDP = 1 (p2). src ports {40001, 40002, 40003}; dst ports {22, 53, 25}.
    assert_row(
        &row,
        "ipv4 options/AH/ESP",
        &[
            ("pkt_size_mean", 150.0),
            ("pkt_count", 5.0),
            ("ttl_mean", 64.0),
            ("dst_ip_distinct", 1.0),
            ("src_ip_distinct", 1.0),
            ("src_port_distinct", 3.0),
            ("dst_port_distinct", 3.0),
            ("syn_count", 1.0),
            ("psh_count", 1.0),
            ("ack_count", 1.0),
            ("psh_ack_count", 1.0),
            ("syn_ratio", 0.5),
            ("psh_ratio", 0.5),
            ("ack_ratio", 0.5),
            ("psh_ack_ratio", 0.5),
            ("udp_count", 1.0),
            ("dst_port_22_count", 1.0),
            ("dst_port_53_count", 1.0),
            ("dst_port_25_count", 1.0),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Fragments and truncation
// ---------------------------------------------------------------------------------------------

#[test]
fn ipv4_fragments_first_counts_as_transport_others_as_ip_only() {
    let mut p = Pcap::micro(linktype::EN10MB);
    // p1 first fragment (offset 0, MF) with a TCP SYN 40001 -> 80: TCP.
    let f = Ipv4::new(A, B, proto::TCP)
        .fragment(true, 0)
        .build(&tcp(40001, 80, flags::SYN, &[]));
    p.packet(at("0.1"), &pad_to(e4(f), 100));
    // p2 middle fragment (offset 185, MF) whose data looks like a TCP SYN to 443: IP only.
    let f =
        Ipv4::new(A, B, proto::TCP)
            .fragment(true, 185)
            .build(&tcp(40002, 443, flags::SYN, &[]));
    p.packet(at("0.2"), &pad_to(e4(f), 100));
    // p3 last fragment (offset 370, no MF) whose data looks like UDP to 53: IP only.
    let f = Ipv4::new(A, B, proto::UDP)
        .fragment(false, 370)
        .build(&udp(40003, 53, &[]));
    p.packet(at("0.3"), &pad_to(e4(f), 100));
    // p4 non-first fragment of an ICMP message: IP only.
    let f = Ipv4::new(A, B, proto::ICMP)
        .fragment(false, 1)
        .build(&icmp_echo(0));
    p.packet(at("0.4"), &pad_to(e4(f), 100));
    // p5 DF set, offset 0: an ordinary UDP packet 40004 -> 123.
    let f = Ipv4::new(A, B, proto::UDP)
        .dont_fragment()
        .build(&udp(40004, 123, &[]));
    p.packet(at("0.5"), &pad_to(e4(f), 100));
    let row = one_window(&p);
    // 5 frames of 100 B, all IP (TTL 64). TCP = 1 (SYN): syn_ratio 1. UDP = 1. No ICMP.
    // src ports {40001, 40004}; dst ports {80, 123}; dst_port_80 = 1 (not 443, not 53).
    assert_row(
        &row,
        "ipv4 fragments",
        &[
            ("pkt_size_mean", 100.0),
            ("pkt_count", 5.0),
            ("ttl_mean", 64.0),
            ("dst_ip_distinct", 1.0),
            ("src_ip_distinct", 1.0),
            ("src_port_distinct", 2.0),
            ("dst_port_distinct", 2.0),
            ("syn_count", 1.0),
            ("syn_ratio", 1.0),
            ("udp_count", 1.0),
            ("dst_port_80_count", 1.0),
        ],
    );
}

#[test]
fn ipv6_first_fragment_counts_non_first_does_not() {
    let mut p = Pcap::micro(linktype::EN10MB);
    let ip6 = |payload: Vec<u8>| pad_to(e6(ipv6(a6(), b6(), 64, proto::IPV6_FRAG, &payload)), 100);
    // first fragment (offset 0, M) -> UDP 40001 -> 53: UDP.
    p.packet(
        at("0.1"),
        &ip6(ext_fragment(proto::UDP, 0, true, &udp(40001, 53, &[]))),
    );
    // non-first fragments (offset 1, M) and (offset 8191, last): IP only.
    p.packet(
        at("0.2"),
        &ip6(ext_fragment(proto::UDP, 1, true, &udp(40002, 443, &[]))),
    );
    p.packet(
        at("0.3"),
        &ip6(ext_fragment(proto::ICMPV6, 8191, false, &icmpv6_echo(0))),
    );
    // atomic fragment (offset 0, no M, RFC 6946) -> TCP ACK 40003 -> 80: TCP.
    p.packet(
        at("0.4"),
        &ip6(ext_fragment(
            proto::TCP,
            0,
            false,
            &tcp(40003, 80, flags::ACK, &[]),
        )),
    );
    let row = one_window(&p);
    assert_row(
        &row,
        "ipv6 fragments",
        &[
            ("pkt_size_mean", 100.0),
            ("pkt_count", 4.0),
            ("ttl_mean", 64.0),
            ("dst_ip_distinct", 1.0),
            ("src_ip_distinct", 1.0),
            ("src_port_distinct", 2.0),
            ("dst_port_distinct", 2.0),
            ("ack_count", 1.0),
            ("ack_ratio", 1.0),
            ("udp_count", 1.0),
            ("dst_port_53_count", 1.0),
            ("dst_port_80_count", 1.0),
        ],
    );
}

#[test]
fn truncated_and_malformed_headers_count_at_the_deepest_complete_layer() {
    let mut p = Pcap::micro(linktype::EN10MB);
    const W: usize = 200; // every frame is 200 B on the wire
    let v4 = |proto: u8, payload: Vec<u8>| pad_to(e4(ipv4(A, B, 64, proto, &payload)), W);
    let v6p = |next: u8, payload: Vec<u8>| pad_to(e6(ipv6(a6(), b6(), 64, next, &payload)), W);
    let mut n = 0;
    let mut ts = || {
        n += 1;
        at("0") + n * 1_000_000
    };
    // p1 TCP header cut after 10 bytes: IP only.
    p.packet_snap(
        ts(),
        &v4(proto::TCP, tcp(40001, 80, flags::SYN, &[])),
        14 + 20 + 10,
    );
    // p2 TCP with 40-byte header (options) cut after 30 bytes: IP only.
    p.packet_snap(
        ts(),
        &v4(
            proto::TCP,
            tcp_opts(40002, 80, flags::SYN, &SYN_OPTIONS, &[]),
        ),
        14 + 20 + 30,
    );
    // p3 the same header captured exactly whole (74 bytes): TCP SYN 40003 -> 443.
    p.packet_snap(
        ts(),
        &v4(
            proto::TCP,
            tcp_opts(40003, 443, flags::SYN, &SYN_OPTIONS, &[]),
        ),
        14 + 20 + 40,
    );
    // p4 IPv4 with IHL 6 cut after 22 of its 24 header bytes: frame only.
    let f = pad_to(
        e4(Ipv4::new(A, B, proto::UDP)
            .options(&[0x94, 4, 0, 0])
            .build(&udp(1, 2, &[]))),
        W,
    );
    p.packet_snap(ts(), &f, 14 + 22);
    // p5 IPv4 header cut after 10 bytes: frame only.
    p.packet_snap(ts(), &v4(proto::UDP, udp(1, 2, &[])), 14 + 10);
    // p6 IPv6 header cut after 30 bytes: frame only.
    p.packet_snap(ts(), &v6p(proto::UDP, udp(1, 2, &[])), 14 + 30);
    // p7 UDP header cut after 6 bytes: IP only.
    p.packet_snap(ts(), &v4(proto::UDP, udp(40007, 53, &[])), 14 + 20 + 6);
    // p8 TCP data offset 4 (< 5), fully captured: IP only.
    p.packet(
        ts(),
        &v4(proto::TCP, tcp_raw(40008, 80, flags::SYN, 4, &[], &[])),
    );
    // p9 IPv4 IHL 4 (< 5): frame only.
    p.packet(
        ts(),
        &pad_to(
            e4(Ipv4::new(A, B, proto::UDP).ihl(4).build(&udp(1, 2, &[]))),
            W,
        ),
    );
    // p10 Ethernet header cut after 10 bytes: frame only.
    p.packet_snap(ts(), &v4(proto::UDP, udp(1, 2, &[])), 10);
    // p11 VLAN tag cut after 2 of its 4 bytes: frame only.
    let f = pad_to(
        eth_vlan(
            &[TPID_8021Q],
            ETH_IPV4,
            &ipv4(A, B, 64, proto::UDP, &udp(1, 2, &[])),
        ),
        W,
    );
    p.packet_snap(ts(), &f, 14 + 2);
    // p12 IPv4 total length 0 (as with TSO captures) with a whole TCP ACK 40012 -> 22:
    //     lengths are not trusted, so TCP.
    let f = Ipv4::new(A, B, proto::TCP)
        .total_len(0)
        .build(&tcp(40012, 22, flags::ACK, &[]));
    p.packet(ts(), &pad_to(e4(f), W));
    // p13 IPv4 total length 20 (header only) followed by a whole UDP 40013 -> 53: UDP.
    let f = Ipv4::new(A, B, proto::UDP)
        .total_len(20)
        .build(&udp(40013, 53, &[]));
    p.packet(ts(), &pad_to(e4(f), W));
    // p14 IPv6 payload length 0 with a whole TCP FIN|ACK 40014 -> 25: TCP.
    let f = ipv6_len(
        a6(),
        b6(),
        64,
        proto::TCP,
        &tcp(40014, 25, flags::FIN | flags::ACK, &[]),
        0,
    );
    p.packet(ts(), &pad_to(e6(f), W));
    // p15 IPv6 -> AH cut after 10 of its 24 bytes: IP only.
    p.packet_snap(
        ts(),
        &v6p(proto::AH, ah(proto::UDP, &udp(1, 2, &[]))),
        14 + 40 + 10,
    );
    // p16 UDP captured exactly 8 bytes: UDP 40016 -> 123.
    p.packet_snap(ts(), &v4(proto::UDP, udp(40016, 123, &[])), 14 + 20 + 8);
    // p17 ICMPv6 captured exactly 8 bytes: ICMP.
    p.packet_snap(ts(), &v6p(proto::ICMPV6, icmpv6_echo(20)), 14 + 40 + 8);
    let row = one_window(&p);
    // 17 frames, all 200 B on the wire: mean 200, var 0.
    // IP (TTL 64): p1 p2 p3 p7 p8 p12 p13 p16 (v4) + p14 p15 p17 (v6) = 11 -> ttl mean 64.
    //   (frame only: p4 p5 p6 p9 p10 p11.)
    // dst {10.0.0.2, 2001:db8::2} = 2; src {10.0.0.1, 2001:db8::1} = 2.
    // TCP = p3 (SYN), p12 (ACK), p14 (FIN|ACK) = 3:
    //   syn 1, ack 2, fin 1, fin_ack 1; ratios 1/3, 2/3, 1/3, 1/3.
    // UDP = p13, p16 = 2. ICMP = p17 = 1.
    // src ports {40003, 40012, 40014, 40013, 40016} = 5; dst {443, 22, 25, 53, 123} = 5.
    assert_row(
        &row,
        "truncation",
        &[
            ("pkt_size_mean", 200.0),
            ("pkt_count", 17.0),
            ("ttl_mean", 64.0),
            ("dst_ip_distinct", 2.0),
            ("src_ip_distinct", 2.0),
            ("src_port_distinct", 5.0),
            ("dst_port_distinct", 5.0),
            ("syn_count", 1.0),
            ("fin_count", 1.0),
            ("ack_count", 2.0),
            ("fin_ack_count", 1.0),
            ("syn_ratio", 1.0 / 3.0),
            ("fin_ratio", 1.0 / 3.0),
            ("ack_ratio", 2.0 / 3.0),
            ("fin_ack_ratio", 1.0 / 3.0),
            ("icmp_count", 1.0),
            ("udp_count", 2.0),
            ("dst_port_443_count", 1.0),
            ("dst_port_22_count", 1.0),
            ("dst_port_25_count", 1.0),
            ("dst_port_53_count", 1.0),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Link types
// ---------------------------------------------------------------------------------------------

/// The same four packets over a link type: IPv4 TCP SYN 10.0.0.1:40001 -> 10.0.0.2:80
/// (40 B of IP), IPv6 UDP [2001:db8::1]:40002 -> [2001:db8::2]:53 (48 B of IP), and two
/// non-IP frames with 36 and 52 bytes after the link header.
fn four_packets(link: u32, wrap: impl Fn(Kind, Vec<u8>) -> Vec<u8>) -> Pcap {
    let mut p = Pcap::micro(link);
    let tcp4 = ipv4(A, B, 64, proto::TCP, &tcp(40001, 80, flags::SYN, &[]));
    assert_eq!(tcp4.len(), 40);
    let udp6 = ipv6(a6(), b6(), 64, proto::UDP, &udp(40002, 53, &[]));
    assert_eq!(udp6.len(), 48);
    p.packet(at("0.1"), &wrap(Kind::V4, tcp4));
    p.packet(at("0.2"), &wrap(Kind::V6, udp6));
    p.packet(at("0.3"), &wrap(Kind::Other, vec![0; 36]));
    p.packet(at("0.4"), &wrap(Kind::Other, vec![0; 52]));
    p
}

#[derive(Clone, Copy)]
enum Kind {
    V4,
    V6,
    Other,
}

/// What `four_packets` gives with a link header of `h` bytes:
/// sizes h+40, h+48, h+36, h+52: mean h+44; deviations -4, 4, -8, 8: var (16+16+64+64)/4 = 40.
fn assert_four(row: &Row, context: &str, h: f64) {
    assert_row(
        row,
        context,
        &[
            ("pkt_size_mean", h + 44.0),
            ("pkt_count", 4.0),
            ("pkt_size_var", 40.0),
            ("ttl_mean", 64.0),
            ("dst_ip_distinct", 2.0),
            ("src_ip_distinct", 2.0),
            ("src_port_distinct", 2.0),
            ("dst_port_distinct", 2.0),
            ("syn_count", 1.0),
            ("syn_ratio", 1.0),
            ("udp_count", 1.0),
            ("dst_port_80_count", 1.0),
            ("dst_port_53_count", 1.0),
        ],
    );
}

#[test]
fn ethernet_with_0_to_3_vlan_tags() {
    let stacks: [(&[u16], f64); 6] = [
        (&[], 14.0),
        (&[TPID_8021Q], 18.0),
        (&[TPID_8021AD], 18.0),
        (&[TPID_9100], 18.0),
        (&[TPID_8021AD, TPID_8021Q], 22.0),
        (&[TPID_9100, TPID_8021AD, TPID_8021Q], 26.0),
    ];
    for (tags, h) in stacks {
        let p = four_packets(linktype::EN10MB, |k, payload| {
            let et = match k {
                Kind::V4 => ETH_IPV4,
                Kind::V6 => ETH_IPV6,
                Kind::Other => ETH_ARP,
            };
            eth_vlan(tags, et, &payload)
        });
        assert_four(
            &one_window(&p),
            &format!("Ethernet with tags {tags:04x?}"),
            h,
        );
    }
}

#[test]
fn linux_sll_and_sll2() {
    let et = |k: Kind| match k {
        Kind::V4 => ETH_IPV4,
        Kind::V6 => ETH_IPV6,
        Kind::Other => ETH_ARP,
    };
    let p = four_packets(linktype::LINUX_SLL, |k, payload| sll(et(k), &payload));
    assert_four(&one_window(&p), "LINUX_SLL", 16.0);
    let p = four_packets(linktype::LINUX_SLL2, |k, payload| sll2(et(k), &payload));
    assert_four(&one_window(&p), "LINUX_SLL2", 20.0);
}

#[test]
fn raw_ip_linktype_101() {
    // LINKTYPE_RAW (101) in the file; libpcap hands it over as DLT_RAW (12 on Linux).
    // Non-IP "frames" here are bytes whose version nibble is 0: frame only.
    let p = four_packets(linktype::RAW, |_, payload| payload);
    assert_four(&one_window(&p), "RAW", 0.0);
}

#[test]
fn raw_ip_linktypes_ipv4_228_and_ipv6_229() {
    // 228: IPv4 TCP SYN (40 B); 229: IPv6 UDP (48 B).
    let mut p = Pcap::micro(linktype::IPV4);
    p.packet(
        at("0.1"),
        &ipv4(A, B, 64, proto::TCP, &tcp(40001, 80, flags::SYN, &[])),
    );
    let common = [
        ("pkt_count", 1.0),
        ("ttl_mean", 64.0),
        ("dst_ip_distinct", 1.0),
        ("src_ip_distinct", 1.0),
        ("src_port_distinct", 1.0),
        ("dst_port_distinct", 1.0),
    ];
    let mut want = common.to_vec();
    want.extend([
        ("pkt_size_mean", 40.0),
        ("syn_count", 1.0),
        ("syn_ratio", 1.0),
        ("dst_port_80_count", 1.0),
    ]);
    assert_row(&one_window(&p), "LINKTYPE_IPV4", &want);
    let mut p = Pcap::micro(linktype::IPV6);
    p.packet(
        at("0.1"),
        &ipv6(a6(), b6(), 64, proto::UDP, &udp(40002, 53, &[])),
    );
    let mut want = common.to_vec();
    want.extend([
        ("pkt_size_mean", 48.0),
        ("udp_count", 1.0),
        ("dst_port_53_count", 1.0),
    ]);
    assert_row(&one_window(&p), "LINKTYPE_IPV6", &want);
}

#[test]
fn bsd_null_in_both_byte_orders_and_loop() {
    // NULL, little-endian writer: AF_INET 2, AF_INET6 30 (macOS); non-IP family 7.
    let p = four_packets(linktype::NULL, |k, payload| {
        let fam = match k {
            Kind::V4 => 2,
            Kind::V6 => 30,
            Kind::Other => 7,
        };
        null_frame(fam, true, &payload)
    });
    assert_four(&one_window(&p), "NULL little-endian", 4.0);
    // NULL, big-endian writer: AF_INET 2, AF_INET6 28 (FreeBSD); non-IP family 17.
    let p = four_packets(linktype::NULL, |k, payload| {
        let fam = match k {
            Kind::V4 => 2,
            Kind::V6 => 28,
            Kind::Other => 17,
        };
        null_frame(fam, false, &payload)
    });
    assert_four(&one_window(&p), "NULL big-endian", 4.0);
    // LOOP: network byte order; AF_INET6 24 (OpenBSD).
    let p = four_packets(linktype::LOOP, |k, payload| {
        let fam = match k {
            Kind::V4 => 2,
            Kind::V6 => 24,
            Kind::Other => 7,
        };
        loop_frame(fam, &payload)
    });
    assert_four(&one_window(&p), "LOOP", 4.0);
}

#[test]
fn bsd_null_every_ipv6_family_value() {
    // AF_INET6 is 10 (Linux), 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS): all IPv6.
    let mut p = Pcap::micro(linktype::NULL);
    for (i, fam) in [10u32, 24, 28, 30].into_iter().enumerate() {
        for le in [true, false] {
            let dst = v6(&format!("2001:db8::{:x}", 0x100 + i));
            let ip = ipv6(a6(), dst, 64, proto::ICMPV6, &icmpv6_echo(0));
            let ts = at("0") + (2 * i as i64 + i64::from(le)) * 1_000_000;
            p.packet(ts, &null_frame(fam, le, &ip));
        }
    }
    // 8 frames of 4 + 40 + 8 = 52 B, all ICMPv6; dst: 4 distinct, src 1.
    assert_row(
        &one_window(&p),
        "NULL IPv6 families",
        &[
            ("pkt_size_mean", 52.0),
            ("pkt_count", 8.0),
            ("ttl_mean", 64.0),
            ("dst_ip_distinct", 4.0),
            ("src_ip_distinct", 1.0),
            ("icmp_count", 8.0),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Windows
// ---------------------------------------------------------------------------------------------

#[test]
fn windows_align_to_multiples_of_half_a_second() {
    let mut p = Pcap::micro(linktype::EN10MB);
    for ts in ["0.2", "0.7", "1.3"] {
        p.packet(at(ts), &pad_to(eth(ETH_ARP, &arp_request()), 60));
    }
    let csv = {
        let dir = tempfile::tempdir().unwrap();
        let path = save(dir.path(), "a.pcap", &p);
        extract_ok(&[&path], "0.5")
    };
    assert_eq!(
        csv.starts(),
        [
            "1700000000.000000",
            "1700000000.500000",
            "1700000001.000000"
        ]
    );
    let ends: Vec<&str> = csv.rows.iter().map(|r| r.end.as_str()).collect();
    assert_eq!(
        ends,
        [
            "1700000000.500000",
            "1700000001.000000",
            "1700000001.500000"
        ]
    );
    assert_eq!(csv.counts(), [1.0, 1.0, 1.0]);
}

#[test]
fn windows_align_to_multiples_of_30_seconds_with_empty_windows_between() {
    // 1700000000 = 30 * 56666666 + 20, so the window of 1700000000.2 starts at 1699999980.
    let mut p = Pcap::micro(linktype::EN10MB);
    let arp = pad_to(eth(ETH_ARP, &arp_request()), 60);
    p.packet(t("1699999980.0"), &arp); // exactly on a boundary: its own window's start
    p.packet(t("1700000009.999999"), &arp); // last microsecond of that window
    p.packet(t("1700000010.0"), &arp); // next window
    p.packet(t("1700000070.5"), &arp); // two windows later; [1700000040, 1700000070) empty
    let rows = rows_of(&p, "30");
    let starts: Vec<&str> = rows.iter().map(|r| r.start.as_str()).collect();
    assert_eq!(
        starts,
        [
            "1699999980.000000",
            "1700000010.000000",
            "1700000040.000000",
            "1700000070.000000"
        ]
    );
    assert_eq!(rows[3].end, "1700000100.000000");
    let arp_row = |n: f64| vec![("pkt_size_mean", 60.0), ("pkt_count", n)];
    assert_row(&rows[0], "first 30 s window", &arp_row(2.0));
    assert_row(&rows[1], "second 30 s window", &arp_row(1.0));
    assert_empty_row(&rows[2], "empty window between packets");
    assert_row(&rows[3], "last 30 s window", &arp_row(1.0));
}

#[test]
fn window_index_uses_exact_integer_time() {
    // 0.3 s with ω = 0.1 s is window 3 (0.3 / 0.1 = 2.9999999999999996 in f64) and
    // 0.7 s is window 7 (0.7 / 0.1 = 6.999999999999999 in f64). Windows 4..6 are empty.
    let arp = pad_to(eth(ETH_ARP, &arp_request()), 60);
    let mut p = Pcap::micro(linktype::EN10MB);
    p.packet(t("0.3"), &arp);
    p.packet(t("0.7"), &arp);
    let rows = rows_of(&p, "0.1");
    let starts: Vec<&str> = rows.iter().map(|r| r.start.as_str()).collect();
    assert_eq!(
        starts,
        ["0.300000", "0.400000", "0.500000", "0.600000", "0.700000"]
    );
    let ends: Vec<&str> = rows.iter().map(|r| r.end.as_str()).collect();
    assert_eq!(
        ends,
        ["0.400000", "0.500000", "0.600000", "0.700000", "0.800000"]
    );
    let counts: Vec<f64> = rows.iter().map(|r| r.get("pkt_count")).collect();
    assert_eq!(counts, [1.0, 0.0, 0.0, 0.0, 1.0]);
    for r in &rows[1..4] {
        assert_empty_row(r, "empty 0.1 s window");
    }
    // The same near a real date: 1700000000.3 is in [1700000000.3, 1700000000.4).
    let mut p = Pcap::micro(linktype::EN10MB);
    p.packet(t("1700000000.3"), &arp);
    p.packet(t("1700000000.399999"), &arp);
    let rows = rows_of(&p, "0.1");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].start, "1700000000.300000");
    assert_eq!(rows[0].end, "1700000000.400000");
    assert_eq!(rows[0].get("pkt_count"), 2.0);
}

#[test]
fn nanosecond_captures_keep_nanoseconds() {
    let arp = pad_to(eth(ETH_ARP, &arp_request()), 60);
    // ω = 0.5: .499999999 and .500000000 are in different windows.
    let mut p = Pcap::nano(linktype::EN10MB);
    p.packet(t("1700000000.499999999"), &arp);
    p.packet(t("1700000000.500000000"), &arp);
    let rows = rows_of(&p, "0.5");
    let starts: Vec<&str> = rows.iter().map(|r| r.start.as_str()).collect();
    assert_eq!(starts, ["1700000000.000000", "1700000000.500000"]);
    // ω = 1 µs: 1700000000.000000999 is in [.000000, .000001), .000001000 in the next.
    let mut p = Pcap::nano(linktype::EN10MB);
    p.packet(t("1700000000.000000999"), &arp);
    p.packet(t("1700000000.000001000"), &arp);
    p.packet(t("1700000000.000001999"), &arp);
    let rows = rows_of(&p, "0.000001");
    let starts: Vec<&str> = rows.iter().map(|r| r.start.as_str()).collect();
    assert_eq!(starts, ["1700000000.000000", "1700000000.000001"]);
    assert_eq!(rows[1].end, "1700000000.000002");
    let counts: Vec<f64> = rows.iter().map(|r| r.get("pkt_count")).collect();
    assert_eq!(counts, [1.0, 2.0]);
}

#[test]
fn micro_nano_and_big_endian_files_give_the_same_csv() {
    let build = |mut p: Pcap| {
        for (i, ts) in ["0.2", "0.7", "1.3", "4.9"].iter().enumerate() {
            let port = 1000 + i as u16;
            p.packet(
                at(ts),
                &e4(ipv4(A, B, 64, proto::TCP, &tcp(port, 443, flags::SYN, &[]))),
            );
        }
        p
    };
    let dir = tempfile::tempdir().unwrap();
    let files = [
        save(dir.path(), "us.pcap", &build(Pcap::micro(linktype::EN10MB))),
        save(dir.path(), "ns.pcap", &build(Pcap::nano(linktype::EN10MB))),
        save(
            dir.path(),
            "us-be.pcap",
            &build(Pcap::micro(linktype::EN10MB).big_endian()),
        ),
        save(
            dir.path(),
            "ns-be.pcap",
            &build(Pcap::nano(linktype::EN10MB).big_endian()),
        ),
    ];
    let outs: Vec<String> = files
        .iter()
        .map(|f| {
            let run = extract(&[f], "0.5");
            run.assert_ok();
            run.stdout
        })
        .collect();
    // 0.2 .7 1.3 4.9 with ω 0.5: windows 0.0 .. 4.5 = 10 rows.
    assert_eq!(parse_csv(&outs[0]).rows.len(), 10);
    for (f, out) in files.iter().zip(&outs) {
        assert_eq!(
            out,
            &outs[0],
            "{} differs from the microsecond file",
            f.display()
        );
    }
}

#[test]
fn several_files_are_one_stream() {
    let dir = tempfile::tempdir().unwrap();
    // File 1 (Ethernet): 100.1 and 100.6; file 2 (raw IP): 100.8 and 102.2. ω = 1.
    let mut p1 = Pcap::micro(linktype::EN10MB);
    p1.packet(
        t("100.1"),
        &e4(ipv4(A, B, 64, proto::UDP, &udp(1, 53, &[]))),
    );
    p1.packet(
        t("100.6"),
        &e4(ipv4(A, C, 64, proto::UDP, &udp(1, 53, &[]))),
    );
    let mut p2 = Pcap::micro(linktype::RAW);
    p2.packet(t("100.8"), &ipv4(C, B, 64, proto::UDP, &udp(2, 53, &[])));
    p2.packet(t("102.2"), &ipv4(C, B, 64, proto::UDP, &udp(2, 53, &[])));
    let f1 = save(dir.path(), "1.pcap", &p1);
    let f2 = save(dir.path(), "2.pcap", &p2);
    let csv = extract_ok(&[&f1, &f2], "1");
    assert_eq!(csv.starts(), ["100.000000", "101.000000", "102.000000"]);
    // Window 100 spans both files: sizes 42, 42, 28 -> mean 112/3, var:
    // deviations 14/3, 14/3, -28/3 -> (196 + 196 + 784)/9/3 = 1176/27 = 43.555…
    // dst {10.0.0.2, 10.0.0.3} = 2; src {10.0.0.1, 10.0.0.3} = 2; src ports {1, 2}.
    assert_row(
        &csv.rows[0],
        "window across two files",
        &[
            ("pkt_size_mean", 112.0 / 3.0),
            ("pkt_count", 3.0),
            ("pkt_size_var", 1176.0 / 27.0),
            ("ttl_mean", 64.0),
            ("dst_ip_distinct", 2.0),
            ("src_ip_distinct", 2.0),
            ("src_port_distinct", 2.0),
            ("dst_port_distinct", 1.0),
            ("udp_count", 3.0),
            ("dst_port_53_count", 3.0),
        ],
    );
    assert_empty_row(&csv.rows[1], "empty window between files");
    assert_eq!(csv.rows[2].get("pkt_count"), 1.0);
}

#[test]
fn output_option_writes_the_same_csv_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Pcap::micro(linktype::EN10MB);
    p.packet(
        at("0.2"),
        &e4(ipv4(A, B, 64, proto::TCP, &tcp(1, 80, flags::SYN, &[]))),
    );
    p.packet(
        at("2.2"),
        &e4(ipv4(A, B, 64, proto::TCP, &tcp(1, 80, flags::ACK, &[]))),
    );
    let input = save(dir.path(), "in.pcap", &p);
    let to_stdout = extract(&[&input], "1");
    to_stdout.assert_ok();
    let out = dir.path().join("features.csv");
    let run = netanom(&[
        "extract".as_ref(),
        "--pcap".as_ref(),
        input.as_os_str(),
        "--window".as_ref(),
        "1".as_ref(),
        "--output".as_ref(),
        out.as_os_str(),
    ]);
    run.assert_ok();
    assert_eq!(run.stdout, "", "nothing but the file gets the CSV");
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written, to_stdout.stdout);
    assert_eq!(parse_csv(&written).rows.len(), 3);
}

#[test]
fn a_timestamp_years_ahead_does_not_emit_millions_of_windows() {
    let arp = pad_to(eth(ETH_ARP, &arp_request()), 60);
    let mut p = Pcap::micro(linktype::EN10MB);
    p.packet(at("0.1"), &arp);
    p.packet(at("0.6"), &arp);
    // 10 years ahead (≈ 6.3e8 windows of 0.5 s), then back to normal.
    p.packet(at("315360000.1"), &arp);
    p.packet(at("1.1"), &arp);
    let dir = tempfile::tempdir().unwrap();
    let path = save(dir.path(), "jump.pcap", &p);
    let run = extract(&[&path], "0.5");
    run.assert_ok();
    let csv = parse_csv(&run.stdout);
    assert!(
        csv.rows.len() <= 10,
        "{} rows for 4 packets",
        csv.rows.len()
    );
    let total: f64 = csv.counts().iter().sum();
    assert_eq!(total, 4.0, "every packet is still counted once");
    for start in ["1700000000.000000", "1700000000.500000"] {
        assert!(
            csv.starts().contains(&start),
            "window {start} missing: {:?}",
            csv.starts()
        );
    }
    assert!(
        run.stderr.to_lowercase().contains("jump"),
        "no warning about the jump on stderr:\n{}",
        run.stderr
    );
}

#[test]
fn max_gap_windows_bounds_the_empty_windows_of_one_gap() {
    let arp = pad_to(eth(ETH_ARP, &arp_request()), 60);
    let mut p = Pcap::micro(linktype::EN10MB);
    p.packet(at("0.1"), &arp);
    p.packet(at("4.1"), &arp); // 3 empty windows (1, 2, 3) between, ω = 1
    let dir = tempfile::tempdir().unwrap();
    let path = save(dir.path(), "gap.pcap", &p);
    let run_with = |max: &str| {
        let run = netanom(&[
            "extract".as_ref(),
            "--pcap".as_ref(),
            path.as_os_str(),
            "--window".as_ref(),
            "1".as_ref(),
            "--max-gap-windows".as_ref(),
            max.as_ref(),
        ]);
        run.assert_ok();
        run
    };
    let run = run_with("3");
    assert_eq!(parse_csv(&run.stdout).counts(), [1.0, 0.0, 0.0, 0.0, 1.0]);
    let run = run_with("2");
    let csv = parse_csv(&run.stdout);
    assert_eq!(csv.starts(), ["1700000000.000000", "1700000004.000000"]);
    assert!(run.stderr.to_lowercase().contains("jump"), "{}", run.stderr);
}

// ---------------------------------------------------------------------------------------------
// Distinct counts beyond 65,536
// ---------------------------------------------------------------------------------------------

#[test]
fn exactly_65536_distinct_values_are_counted_exactly() {
    // Raw IP, UDP, source 10.0.(i >> 8).(i & 255) and both ports = i, for i in 0..65536:
    // 65536 distinct sources, source ports and destination ports; one destination.
    // Each well-known port number occurs once as source and once as destination.
    let mut p = Pcap::micro(linktype::RAW);
    let dst = [192, 0, 2, 1];
    for i in 0..65_536u32 {
        let src = [10, 0, (i >> 8) as u8, i as u8];
        let ts = at("0") + i64::from(i) * 10_000; // 10 µs apart, 0.655 s in all
        p.packet(
            ts,
            &ipv4(src, dst, 64, proto::UDP, &udp(i as u16, i as u16, &[])),
        );
    }
    // The next window: 2 packets from 2 sources (the counters were reset).
    p.packet(at("1.1"), &ipv4(A, dst, 64, proto::UDP, &udp(7, 7, &[])));
    p.packet(at("1.2"), &ipv4(B, dst, 64, proto::UDP, &udp(7, 7, &[])));
    let rows = rows_of(&p, "1");
    assert_eq!(rows.len(), 2);
    let mut want = vec![
        ("pkt_size_mean", 28.0),
        ("pkt_count", 65536.0),
        ("ttl_mean", 64.0),
        ("dst_ip_distinct", 1.0),
        ("src_ip_distinct", 65536.0),
        ("src_port_distinct", 65536.0),
        ("dst_port_distinct", 65536.0),
        ("udp_count", 65536.0),
    ];
    let names: Vec<String> = WELL_KNOWN_PORTS
        .iter()
        .flat_map(|p| [format!("src_port_{p}_count"), format!("dst_port_{p}_count")])
        .collect();
    want.extend(names.iter().map(|n| (n.as_str(), 1.0)));
    assert_row(&rows[0], "65,536 distinct", &want);
    assert_row(
        &rows[1],
        "after the big window",
        &[
            ("pkt_size_mean", 28.0),
            ("pkt_count", 2.0),
            ("ttl_mean", 64.0),
            ("dst_ip_distinct", 1.0),
            ("src_ip_distinct", 2.0),
            ("src_port_distinct", 1.0),
            ("dst_port_distinct", 1.0),
            ("udp_count", 2.0),
        ],
    );
}

#[test]
fn one_hundred_thousand_spoofed_sources_are_estimated_within_two_percent() {
    // 100,000 distinct sources 10.(i >> 16).(i >> 8).(i) to one destination, raw IP,
    // protocol 253 (20-byte packets), all in one 1 s window; then a window with 3 sources.
    let mut p = Pcap::micro(linktype::RAW);
    let dst = [192, 0, 2, 1];
    for i in 0..100_000u32 {
        let src = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let ts = at("0") + i64::from(i) * 5_000; // 5 µs apart, 0.5 s in all
        p.packet(ts, &ipv4(src, dst, 64, proto::EXPERIMENTAL, &[]));
    }
    for (k, src) in [A, B, C].into_iter().enumerate() {
        p.packet(
            at("1.1") + k as i64 * 1000,
            &ipv4(src, dst, 64, proto::EXPERIMENTAL, &[]),
        );
    }
    let rows = rows_of(&p, "1");
    assert_eq!(rows.len(), 2);
    let est = rows[0].get("src_ip_distinct");
    let err = (est - 100_000.0).abs() / 100_000.0;
    assert!(
        err <= 0.02,
        "estimate {est} for 100,000 sources: error {:.3} %",
        err * 100.0
    );
    // Everything else in that window is exact: 100,000 frames of 20 B, one destination.
    assert_eq!(rows[0].get("pkt_count"), 100_000.0);
    assert_eq!(rows[0].get("pkt_size_mean"), 20.0);
    assert_eq!(rows[0].get("dst_ip_distinct"), 1.0);
    assert_eq!(rows[0].get("ttl_mean"), 64.0);
    // The sketch does not leak into the next window: 3 sources, exactly.
    assert_row(
        &rows[1],
        "after the flood",
        &[
            ("pkt_size_mean", 20.0),
            ("pkt_count", 3.0),
            ("ttl_mean", 64.0),
            ("dst_ip_distinct", 1.0),
            ("src_ip_distinct", 3.0),
        ],
    );
}
