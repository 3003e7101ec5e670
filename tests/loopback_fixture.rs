//! `netanom extract` on a real loopback capture (tests/fixtures/lo-sample.pcap, recorded by
//! scripts/record-lo-fixture.sh), checked window by window against what tshark decodes
//! from the same file at test time.
//!
//! tshark is required: when it is missing the test fails (it does not pass silently).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use common::*;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/lo-sample.pcap");

/// What tshark says about one frame.
#[derive(Debug)]
struct Frame {
    /// Microseconds since the epoch (the fixture has microsecond timestamps).
    ts_us: i64,
    len: u64,
    /// Outer IP layer: source, destination, TTL / hop limit.
    ip: Option<(String, String, u64)>,
    transport: Transport,
}

#[derive(Debug)]
enum Transport {
    None,
    Tcp { sport: u16, dport: u16, flags: u8 },
    Udp { sport: u16, dport: u16 },
    Icmp,
}

const FIELDS: [&str; 15] = [
    "frame.time_epoch",
    "frame.len",
    "ip.src",
    "ip.dst",
    "ip.ttl",
    "ipv6.src",
    "ipv6.dst",
    "ipv6.hlim",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.flags",
    "udp.srcport",
    "udp.dstport",
    "icmp.type",
    "icmpv6.type",
];

/// Runs tshark on the fixture; one `Frame` per packet.
fn tshark_frames() -> Vec<Frame> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r", FIXTURE, "-T", "fields", "-E", "separator=|"])
        // The first occurrence of each field: the outer headers, not those quoted in ICMP errors.
        .args(["-E", "occurrence=f"]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "this test needs tshark to compute the expected values, and it could not be run \
             ({e}); install it (e.g. `apt-get install tshark`)"
        )
    });
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("tshark output is UTF-8");
    text.lines().map(parse_frame).collect()
}

fn parse_frame(line: &str) -> Frame {
    let f: Vec<&str> = line.split('|').collect();
    assert_eq!(f.len(), FIELDS.len(), "tshark line: {line}");
    let opt = |i: usize| Some(f[i]).filter(|s| !s.is_empty());
    let port = |i: usize| opt(i).map(|s| s.parse::<u16>().expect("port"));
    // "1764377606.041908000": integer seconds and the first 6 decimals, no floats.
    let (sec, frac) = f[0].split_once('.').unwrap_or((f[0], "0"));
    let frac6: String = format!("{frac:0<6}").chars().take(6).collect();
    let ts_us = sec.parse::<i64>().expect("seconds") * 1_000_000 + frac6.parse::<i64>().unwrap();
    assert!(
        frac.len() <= 6 || frac[6..].bytes().all(|b| b == b'0'),
        "sub-microsecond time in a microsecond fixture: {}",
        f[0]
    );
    let ip = match (opt(2), opt(5)) {
        (Some(src), _) => Some((src.into(), f[3].into(), f[4].parse().expect("ttl"))),
        (None, Some(src)) => Some((src.into(), f[6].into(), f[7].parse().expect("hlim"))),
        (None, None) => None,
    };
    let transport = if opt(13).is_some() || opt(14).is_some() {
        Transport::Icmp
    } else if let Some(flags) = opt(10) {
        let flags = u16::from_str_radix(flags.trim_start_matches("0x"), 16).expect("tcp.flags");
        Transport::Tcp {
            sport: port(8).unwrap(),
            dport: port(9).unwrap(),
            flags: (flags & 0xff) as u8,
        }
    } else if let Some(sport) = port(11) {
        Transport::Udp {
            sport,
            dport: port(12).unwrap(),
        }
    } else {
        Transport::None
    };
    Frame {
        ts_us,
        len: f[1].parse().expect("frame.len"),
        ip,
        transport,
    }
}

/// The 53 features of a window computed from tshark's view, by the contract's definitions.
fn features(frames: &[&Frame]) -> Vec<f64> {
    let mut v = vec![0.0; 53];
    let mut set = |name: &str, x: f64| v[feature_index(name)] = x;
    let mean_var = |xs: &[u64]| -> (f64, f64) {
        if xs.is_empty() {
            return (0.0, 0.0);
        }
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<u64>() as f64 / n;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var)
    };
    let sizes: Vec<u64> = frames.iter().map(|f| f.len).collect();
    let (m, var) = mean_var(&sizes);
    set("pkt_size_mean", m);
    set("pkt_count", frames.len() as f64);
    set("pkt_size_var", var);
    let ttls: Vec<u64> = frames
        .iter()
        .filter_map(|f| f.ip.as_ref().map(|ip| ip.2))
        .collect();
    let (m, var) = mean_var(&ttls);
    set("ttl_mean", m);
    set("ttl_var", var);
    let srcs: BTreeSet<&str> = frames
        .iter()
        .filter_map(|f| f.ip.as_ref().map(|ip| ip.0.as_str()))
        .collect();
    let dsts: BTreeSet<&str> = frames
        .iter()
        .filter_map(|f| f.ip.as_ref().map(|ip| ip.1.as_str()))
        .collect();
    set("dst_ip_distinct", dsts.len() as f64);
    set("src_ip_distinct", srcs.len() as f64);
    let mut sports = BTreeSet::new();
    let mut dports = BTreeSet::new();
    let mut tcp = 0u64;
    let mut udp = 0u64;
    let mut icmp = 0u64;
    // syn fin psh rst urg ack fin_ack rst_ack syn_ack psh_ack
    let mut fl = [0u64; 10];
    let mut src_wk = [0u64; 11];
    let mut dst_wk = [0u64; 11];
    for f in frames {
        let ports = match f.transport {
            Transport::Tcp {
                sport,
                dport,
                flags,
            } => {
                tcp += 1;
                let has = |m: u8| u64::from(flags & m == m);
                for (i, m) in [0x02, 0x01, 0x08, 0x04, 0x20, 0x10, 0x11, 0x14, 0x12, 0x18]
                    .into_iter()
                    .enumerate()
                {
                    fl[i] += has(m);
                }
                Some((sport, dport))
            }
            Transport::Udp { sport, dport } => {
                udp += 1;
                Some((sport, dport))
            }
            Transport::Icmp => {
                icmp += 1;
                None
            }
            Transport::None => None,
        };
        if let Some((s, d)) = ports {
            sports.insert(s);
            dports.insert(d);
            if let Some(i) = WELL_KNOWN_PORTS.iter().position(|&p| p == s) {
                src_wk[i] += 1;
            }
            if let Some(i) = WELL_KNOWN_PORTS.iter().position(|&p| p == d) {
                dst_wk[i] += 1;
            }
        }
    }
    set("src_port_distinct", sports.len() as f64);
    set("dst_port_distinct", dports.len() as f64);
    let counts = [
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
    ];
    for (name, c) in counts.iter().zip(fl) {
        set(name, c as f64);
    }
    let ratio = |c: u64| if tcp == 0 { 0.0 } else { c as f64 / tcp as f64 };
    for (name, i) in [
        ("rst_ratio", 3),
        ("syn_ratio", 0),
        ("psh_ratio", 2),
        ("urg_ratio", 4),
        ("fin_ratio", 1),
        ("ack_ratio", 5),
        ("rst_ack_ratio", 7),
        ("psh_ack_ratio", 9),
        ("syn_ack_ratio", 8),
        ("fin_ack_ratio", 6),
    ] {
        set(name, ratio(fl[i]));
    }
    set("icmp_count", icmp as f64);
    set("udp_count", udp as f64);
    for (i, p) in WELL_KNOWN_PORTS.iter().enumerate() {
        set(&format!("src_port_{p}_count"), src_wk[i] as f64);
        set(&format!("dst_port_{p}_count"), dst_wk[i] as f64);
    }
    v
}

/// Checks every window of `netanom extract --window <omega>` against tshark.
fn compare(frames: &[Frame], omega: &str, omega_us: i64) -> usize {
    let mut windows: BTreeMap<i64, Vec<&Frame>> = BTreeMap::new();
    for f in frames {
        windows
            .entry(f.ts_us.div_euclid(omega_us))
            .or_default()
            .push(f);
    }
    let first = *windows.keys().next().unwrap();
    let last = *windows.keys().next_back().unwrap();
    let csv = extract_ok(&[std::path::Path::new(FIXTURE)], omega);
    assert_eq!(
        csv.rows.len() as i64,
        last - first + 1,
        "ω = {omega}: one row per window from the first packet's to the last's"
    );
    for (row, k) in csv.rows.iter().zip(first..=last) {
        let start_us = k * omega_us;
        let want_start = format!("{}.{:06}", start_us / 1_000_000, start_us % 1_000_000);
        assert_eq!(row.start, want_start, "ω = {omega}");
        let empty = Vec::new();
        let want = features(windows.get(&k).unwrap_or(&empty));
        for (i, (&got, &exp)) in row.values.iter().zip(&want).enumerate() {
            let tol = 1e-9 * exp.abs().max(1.0);
            assert!(
                (got - exp).abs() <= tol,
                "ω = {omega}, window {}: {} = {got}, tshark says {exp}",
                row.start,
                FEATURE_NAMES[i]
            );
        }
    }
    // Empty windows emitted between packets.
    csv.rows.len() - windows.len()
}

#[test]
fn loopback_capture_matches_tshark_window_by_window() {
    let meta = std::fs::metadata(FIXTURE).expect("tests/fixtures/lo-sample.pcap");
    assert!(meta.len() < 200_000, "the fixture should stay small");
    let frames = tshark_frames();
    // The fixture must exercise what we compare, or the comparison proves little.
    let n = |pred: &dyn Fn(&Frame) -> bool| frames.iter().filter(|f| pred(f)).count();
    assert!(frames.len() >= 50, "only {} frames", frames.len());
    assert!(n(&|f| matches!(f.transport, Transport::Tcp { flags, .. } if flags & 0x02 != 0)) >= 2);
    assert!(n(&|f| matches!(f.transport, Transport::Tcp { dport: 80, .. })) >= 4);
    assert!(n(&|f| matches!(f.transport, Transport::Tcp { flags, .. } if flags & 0x04 != 0)) >= 1);
    assert!(n(&|f| matches!(f.transport, Transport::Udp { dport: 53, .. })) >= 2);
    assert!(n(&|f| matches!(f.transport, Transport::Icmp)) >= 4);
    assert!(
        n(&|f| f.ip.as_ref().is_some_and(|ip| ip.0.contains(':'))) >= 4,
        "IPv6 traffic"
    );
    // ω = 1 s (and 0.5 s for finer windows), every feature of every window.
    assert!(
        compare(&frames, "1", 1_000_000) >= 1,
        "the fixture has a quiet second"
    );
    compare(&frames, "0.5", 500_000);
}
