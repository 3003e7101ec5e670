//! Writes a large synthetic classic pcap (Ethernet, microsecond timestamps) for benchmarks.
//!
//! ```text
//! cargo run --release --example synth_pcap -- --packets 3000000 --out big.pcap [--seed 1]
//!     [--duration 600] [--hosts 3000] [--servers 300] [--snaplen 65535]
//! ```
//!
//! The traffic is a deterministic (per seed) interleaving of a few hundred concurrent flows:
//! TCP sessions (SYN, SYN/ACK, ACK, PSH/ACK data, FIN/ACK teardown; some reset, some
//! refused), DNS over UDP, other UDP (NTP, high ports), ICMP / ICMPv6 echo and ARP. About a
//! fifth of the flows run over IPv6 and about a tenth of the hosts sit behind an 802.1Q tag.
//! Clients come from 10.0.0.0/8 and 2001:db8::/48, servers from 198.51.100.0/24,
//! 203.0.113.0/24 and 2001:db8:ffff::/48 (private and documentation ranges: this is only a
//! file, nothing is sent). Host popularity is skewed so windows have top talkers.
//! Timestamps are non-decreasing, with random gaps averaging `duration / packets`.
//!
//! Only the headers are meaningful: payload bytes are zero, the IPv4 header checksum is
//! correct, TCP checksums are left 0 (no reader used here verifies them).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// First packet's timestamp: 2023-11-14T22:13:20Z.
const START_SECS: u64 = 1_700_000_000;
/// Concurrent flows; each packet comes from a random one, so flows interleave.
const SLOTS: usize = 512;

const USAGE: &str = "usage: synth_pcap --packets N --out FILE [--seed S] [--duration SECONDS] \
                     [--hosts N] [--servers N] [--snaplen BYTES]";

struct Args {
    packets: u64,
    out: PathBuf,
    seed: u64,
    duration_s: f64,
    hosts: u32,
    servers: u32,
    snaplen: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut packets = None;
    let mut out = None;
    let mut args = Args {
        packets: 0,
        out: PathBuf::new(),
        seed: 1,
        duration_s: 600.0,
        hosts: 3000,
        servers: 300,
        snaplen: 65_535,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("{flag}: {v:?} is not a whole number"))
        };
        match flag.as_str() {
            "--packets" => packets = Some(num(&value)?),
            "--out" => out = Some(PathBuf::from(value)),
            "--seed" => args.seed = num(&value)?,
            "--duration" => {
                args.duration_s = value
                    .parse()
                    .ok()
                    .filter(|d: &f64| d.is_finite() && *d > 0.0)
                    .ok_or_else(|| format!("--duration: {value:?} is not a positive number"))?
            }
            "--hosts" => args.hosts = num(&value)?.clamp(1, 1 << 20) as u32,
            "--servers" => args.servers = num(&value)?.clamp(1, 500) as u32,
            "--snaplen" => args.snaplen = num(&value)?.clamp(64, 262_144) as u32,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    args.packets = packets.ok_or("--packets is required")?;
    args.out = out.ok_or("--out is required")?;
    Ok(args)
}

/// SplitMix64: small, fast, good enough for traffic shapes, reproducible per seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
    /// Uniform in lo..=hi.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// True with probability p.
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 * (1.0 / (1u64 << 53) as f64) < p
    }
    /// Skewed index in 0..n: low indices are much more popular (a few heavy talkers).
    fn skewed(&mut self, n: u32) -> u32 {
        let u = (self.next() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        ((u * u) * f64::from(n)) as u32
    }
}

/// One endpoint: addresses of both families, MAC, optional VLAN, TTL as seen on the wire.
#[derive(Clone, Copy)]
struct Host {
    v4: [u8; 4],
    v6: [u8; 16],
    mac: [u8; 6],
    vlan: Option<u16>,
    ttl: u8,
}

fn client(i: u32, rng: &mut Rng) -> Host {
    let n = i + 1;
    let mut v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    v6[6..8].copy_from_slice(&((n >> 8) as u16).to_be_bytes());
    v6[12..16].copy_from_slice(&n.to_be_bytes());
    Host {
        v4: [10, (n >> 16) as u8, (n >> 8) as u8, n as u8 | 1],
        v6,
        mac: [0x02, 0x00, 0x00, (n >> 16) as u8, (n >> 8) as u8, n as u8],
        vlan: rng.chance(0.1).then(|| 100 + (n % 8) as u16),
        ttl: 64,
    }
}

fn server(i: u32, rng: &mut Rng) -> Host {
    let (net, host) = if i < 250 {
        ([198, 51, 100], i + 1)
    } else {
        ([203, 0, 113], i - 250 + 1)
    };
    let mut v6 = [
        0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    v6[14..16].copy_from_slice(&(i as u16 + 1).to_be_bytes());
    // Servers are some hops away: initial TTL 64, 128 or 255 minus a path length.
    let initial = [64u8, 128, 255][rng.below(3) as usize];
    Host {
        v4: [net[0], net[1], net[2], host as u8],
        v6,
        // Traffic to servers goes through the router: its MAC per VLAN is enough.
        mac: [0x02, 0x00, 0x5e, 0x00, 0x00, 0x01],
        vlan: None,
        ttl: initial - rng.range(3, 20) as u8,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tcp,
    Dns,
    Udp,
    Icmp,
    Arp,
}

/// One packet of a flow's script.
#[derive(Clone, Copy)]
struct Step {
    /// True: client → server.
    from_client: bool,
    /// TCP flags, or ICMP type for ICMP, or ARP opcode for ARP.
    flags: u8,
    /// Transport payload bytes.
    payload: u16,
}

struct Flow {
    kind: Kind,
    v6: bool,
    client: Host,
    server: Host,
    cport: u16,
    sport: u16,
    seq: [u32; 2],
    steps: Vec<Step>,
    pos: usize,
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// Server ports by popularity, weights in percent.
const TCP_SERVICES: [(u16, u64); 12] = [
    (443, 46),
    (80, 18),
    (22, 6),
    (25, 4),
    (587, 3),
    (465, 2),
    (993, 5),
    (143, 2),
    (995, 2),
    (110, 2),
    (8080, 5),
    (9000, 5),
];

struct Generator {
    rng: Rng,
    clients: Vec<Host>,
    servers: Vec<Host>,
    resolvers: [Host; 2],
    ip_id: u16,
}

impl Generator {
    fn pick_service(&mut self) -> u16 {
        let mut r = self.rng.below(100);
        for (port, w) in TCP_SERVICES {
            if r < w {
                return port;
            }
            r -= w;
        }
        443
    }

    /// Fills `flow` with a new random flow.
    fn new_flow(&mut self, flow: &mut Flow) {
        let rng = &mut self.rng;
        let r = rng.below(100);
        flow.kind = match r {
            0..=67 => Kind::Tcp,
            68..=84 => Kind::Dns,
            85..=93 => Kind::Udp,
            94..=97 => Kind::Icmp,
            _ => Kind::Arp,
        };
        flow.v6 = flow.kind != Kind::Arp && rng.chance(0.2);
        flow.client = self.clients[rng.skewed(self.clients.len() as u32) as usize];
        flow.server = self.servers[rng.skewed(self.servers.len() as u32) as usize];
        flow.cport = rng.range(32_768, 60_999) as u16;
        flow.seq = [rng.next() as u32, rng.next() as u32];
        flow.steps.clear();
        flow.pos = 0;
        let c = |flags, payload| Step {
            from_client: true,
            flags,
            payload,
        };
        let s = |flags, payload| Step {
            from_client: false,
            flags,
            payload,
        };
        match flow.kind {
            Kind::Tcp => {
                flow.sport = self.pick_service();
                let rng = &mut self.rng;
                let steps = &mut flow.steps;
                steps.push(c(SYN, 0));
                if rng.chance(0.03) {
                    // Refused: the port is closed.
                    steps.push(s(RST | ACK, 0));
                    return;
                }
                if rng.chance(0.02) {
                    // Unanswered SYN, retransmitted once.
                    steps.push(c(SYN, 0));
                    return;
                }
                steps.push(s(SYN | ACK, 0));
                steps.push(c(ACK, 0));
                let exchanges = 1 + rng.skewed(12);
                for _ in 0..exchanges {
                    steps.push(c(PSH | ACK, rng.range(40, 900) as u16));
                    // The response: one or more full segments and a tail, acked now and then.
                    let segments = rng.skewed(20);
                    for i in 0..segments {
                        steps.push(s(ACK, 1448));
                        if i % 2 == 1 {
                            steps.push(c(ACK, 0));
                        }
                    }
                    steps.push(s(PSH | ACK, rng.range(1, 1448) as u16));
                    steps.push(c(ACK, 0));
                }
                if rng.chance(0.04) {
                    steps.push(c(RST | ACK, 0));
                } else if rng.chance(0.02) {
                    steps.push(s(RST, 0));
                } else {
                    steps.push(c(FIN | ACK, 0));
                    steps.push(s(FIN | ACK, 0));
                    steps.push(c(ACK, 0));
                }
            }
            Kind::Dns => {
                flow.server = self.resolvers[rng.below(2) as usize];
                flow.sport = 53;
                flow.steps.push(c(0, rng.range(28, 60) as u16));
                if !rng.chance(0.03) {
                    flow.steps.push(s(0, rng.range(44, 480) as u16));
                }
            }
            Kind::Udp => {
                if rng.chance(0.3) {
                    flow.sport = 123;
                    flow.cport = 123;
                    flow.steps.push(c(0, 48));
                    flow.steps.push(s(0, 48));
                } else {
                    // Media-like stream to a high port.
                    flow.sport = rng.range(10_000, 20_000) as u16;
                    for _ in 0..rng.range(2, 40) {
                        let from_client = rng.chance(0.5);
                        flow.steps.push(Step {
                            from_client,
                            flags: 0,
                            payload: rng.range(100, 1200) as u16,
                        });
                    }
                }
            }
            Kind::Icmp => {
                flow.sport = rng.below(65_536) as u16; // echo identifier
                let (req, rep) = if flow.v6 { (128, 129) } else { (8, 0) };
                for _ in 0..rng.range(1, 4) {
                    flow.steps.push(c(req, 56));
                    if !rng.chance(0.1) {
                        flow.steps.push(s(rep, 56));
                    }
                }
            }
            Kind::Arp => {
                flow.steps.push(c(1, 0));
                flow.steps.push(s(2, 0));
            }
        }
    }

    /// Writes the frame of `flow`'s next step into `buf`; returns the wire length.
    fn frame(&mut self, flow: &mut Flow, buf: &mut Vec<u8>) -> usize {
        let step = flow.steps[flow.pos];
        flow.pos += 1;
        let (src, dst) = if step.from_client {
            (flow.client, flow.server)
        } else {
            (flow.server, flow.client)
        };
        buf.clear();
        // Ethernet II, tagged when the client's VLAN has a tag.
        buf.extend_from_slice(&dst.mac);
        buf.extend_from_slice(&src.mac);
        if let Some(vid) = flow.client.vlan {
            buf.extend_from_slice(&0x8100u16.to_be_bytes());
            buf.extend_from_slice(&vid.to_be_bytes());
        }
        if flow.kind == Kind::Arp {
            buf.extend_from_slice(&0x0806u16.to_be_bytes());
            buf.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, step.flags]);
            buf.extend_from_slice(&src.mac);
            buf.extend_from_slice(&src.v4);
            buf.extend_from_slice(if step.flags == 1 { &[0; 6] } else { &dst.mac });
            buf.extend_from_slice(&dst.v4);
            buf.resize(buf.len().max(60), 0);
            return buf.len();
        }
        let (proto, l4_len) = match flow.kind {
            Kind::Tcp => (6u8, if step.flags & SYN != 0 { 40 } else { 20 }),
            Kind::Dns | Kind::Udp => (17, 8),
            Kind::Icmp => (if flow.v6 { 58 } else { 1 }, 8),
            Kind::Arp => unreachable!(),
        };
        let l4_total = l4_len + usize::from(step.payload);
        if flow.v6 {
            buf.extend_from_slice(&0x86ddu16.to_be_bytes());
            let label = u32::from(flow.cport) << 4 ^ u32::from(flow.sport);
            buf.extend_from_slice(&((6u32 << 28) | (label & 0xf_ffff)).to_be_bytes());
            buf.extend_from_slice(&(l4_total as u16).to_be_bytes());
            buf.push(proto);
            buf.push(src.ttl);
            buf.extend_from_slice(&src.v6);
            buf.extend_from_slice(&dst.v6);
        } else {
            buf.extend_from_slice(&0x0800u16.to_be_bytes());
            let start = buf.len();
            self.ip_id = self.ip_id.wrapping_add(1);
            let df: u16 = if proto == 6 { 0x4000 } else { 0 };
            buf.extend_from_slice(&[0x45, 0]);
            buf.extend_from_slice(&((20 + l4_total) as u16).to_be_bytes());
            buf.extend_from_slice(&self.ip_id.to_be_bytes());
            buf.extend_from_slice(&df.to_be_bytes());
            buf.extend_from_slice(&[src.ttl, proto, 0, 0]);
            buf.extend_from_slice(&src.v4);
            buf.extend_from_slice(&dst.v4);
            let sum = ipv4_checksum(&buf[start..start + 20]);
            buf[start + 10..start + 12].copy_from_slice(&sum.to_be_bytes());
        }
        let (sp, dp) = if step.from_client {
            (flow.cport, flow.sport)
        } else {
            (flow.sport, flow.cport)
        };
        match flow.kind {
            Kind::Tcp => {
                let (me, peer) = if step.from_client { (0, 1) } else { (1, 0) };
                buf.extend_from_slice(&sp.to_be_bytes());
                buf.extend_from_slice(&dp.to_be_bytes());
                buf.extend_from_slice(&flow.seq[me].to_be_bytes());
                let ack = if step.flags & ACK != 0 {
                    flow.seq[peer]
                } else {
                    0
                };
                buf.extend_from_slice(&ack.to_be_bytes());
                buf.push(((l4_len / 4) as u8) << 4);
                buf.push(step.flags);
                buf.extend_from_slice(&[0xfa, 0xf0, 0, 0, 0, 0]); // window, checksum 0, urg
                if l4_len == 40 {
                    // MSS 1460, SACK permitted, timestamps, window scale 7.
                    buf.extend_from_slice(&[2, 4, 0x05, 0xb4, 4, 2, 8, 10]);
                    buf.extend_from_slice(&flow.seq[me].rotate_left(7).to_be_bytes());
                    buf.extend_from_slice(&[0, 0, 0, 0, 1, 3, 3, 7]);
                }
                let advance = u32::from(step.payload) + u32::from(step.flags & (SYN | FIN) != 0);
                flow.seq[me] = flow.seq[me].wrapping_add(advance);
            }
            Kind::Dns | Kind::Udp => {
                buf.extend_from_slice(&sp.to_be_bytes());
                buf.extend_from_slice(&dp.to_be_bytes());
                buf.extend_from_slice(&(l4_total as u16).to_be_bytes());
                buf.extend_from_slice(&[0, 0]);
            }
            Kind::Icmp => {
                buf.extend_from_slice(&[step.flags, 0, 0, 0]);
                buf.extend_from_slice(&flow.sport.to_be_bytes());
                buf.extend_from_slice(&(flow.pos as u16).to_be_bytes());
            }
            Kind::Arp => unreachable!(),
        }
        buf.resize(buf.len() + usize::from(step.payload), 0);
        buf.resize(buf.len().max(60), 0);
        buf.len()
    }
}

fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks_exact(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn run(args: &Args) -> std::io::Result<(u64, u64)> {
    let mut rng = Rng(args.seed ^ 0x6e65_7461_6e6f_6d00);
    let clients = (0..args.hosts).map(|i| client(i, &mut rng)).collect();
    let servers = (0..args.servers).map(|i| server(i, &mut rng)).collect();
    let mut resolvers = [
        server(args.servers, &mut rng),
        server(args.servers + 1, &mut rng),
    ];
    resolvers[0].v4 = [198, 51, 100, 53];
    resolvers[1].v4 = [203, 0, 113, 53];
    let mut gen = Generator {
        rng,
        clients,
        servers,
        resolvers,
        ip_id: 0,
    };
    let mut flows: Vec<Flow> = (0..SLOTS)
        .map(|_| {
            let mut f = Flow {
                kind: Kind::Tcp,
                v6: false,
                client: gen.clients[0],
                server: gen.servers[0],
                cport: 0,
                sport: 0,
                seq: [0; 2],
                steps: Vec::with_capacity(64),
                pos: 0,
            };
            gen.new_flow(&mut f);
            f
        })
        .collect();

    let file = File::create(&args.out)?;
    let mut out = BufWriter::with_capacity(4 << 20, file);
    // Classic pcap global header: microsecond magic, v2.4, LINKTYPE_ETHERNET.
    out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    out.write_all(&2u16.to_le_bytes())?;
    out.write_all(&4u16.to_le_bytes())?;
    out.write_all(&0i32.to_le_bytes())?;
    out.write_all(&0u32.to_le_bytes())?;
    out.write_all(&args.snaplen.to_le_bytes())?;
    out.write_all(&1u32.to_le_bytes())?;

    // Gaps uniform in 0..=2·mean nanoseconds: the capture spans about `duration`.
    let mean_gap_ns = (args.duration_s * 1e9 / args.packets.max(1) as f64).max(1.0);
    let max_gap_ns = (2.0 * mean_gap_ns) as u64;
    let mut ts_ns: u64 = START_SECS * 1_000_000_000;
    let mut buf = Vec::with_capacity(2048);
    let mut bytes = 0u64;
    for _ in 0..args.packets {
        ts_ns += gen.rng.below(max_gap_ns + 1);
        let slot = gen.rng.below(SLOTS as u64) as usize;
        let flow = &mut flows[slot];
        let wire = gen.frame(flow, &mut buf);
        if flow.pos == flow.steps.len() {
            gen.new_flow(flow);
        }
        let caplen = wire.min(args.snaplen as usize);
        let us = ts_ns / 1000;
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&((us / 1_000_000) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&((us % 1_000_000) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&(caplen as u32).to_le_bytes());
        rec[12..16].copy_from_slice(&(wire as u32).to_le_bytes());
        out.write_all(&rec)?;
        out.write_all(&buf[..caplen])?;
        bytes += 16 + caplen as u64;
    }
    out.flush()?;
    Ok((bytes + 24, ts_ns / 1000 - START_SECS * 1_000_000))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("synth_pcap: {e}");
            }
            eprintln!("{USAGE}");
            return if e.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    let t0 = Instant::now();
    match run(&args) {
        Ok((bytes, span_us)) => {
            let secs = t0.elapsed().as_secs_f64();
            eprintln!(
                "synth_pcap: wrote {} packets, {:.1} MiB, spanning {:.1} s of capture time, to {} in {:.2} s ({:.2} M packets/s)",
                args.packets,
                bytes as f64 / (1024.0 * 1024.0),
                span_us as f64 / 1e6,
                args.out.display(),
                secs,
                args.packets as f64 / secs / 1e6
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("synth_pcap: {}: {e}", args.out.display());
            ExitCode::FAILURE
        }
    }
}
