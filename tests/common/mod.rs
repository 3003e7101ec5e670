//! Shared helpers for the integration tests of the offline engine.
//!
//! - [`Pcap`]: a tiny classic-pcap writer (microsecond or nanosecond magic, either file byte
//!   order, any link type, snap-length truncation with `caplen < len`).
//! - Packet builders, all by hand so malformed and odd packets are as easy as good ones:
//!   link layers (Ethernet with VLAN stacks, Linux SLL/SLL2, BSD null/loop, raw IP),
//!   IPv4 (options, fragments, lying length fields), IPv6 and its extension headers, AH,
//!   ESP, TCP (options, any flags), UDP, ICMPv4, ICMPv6, ARP.
//! - A runner for the `netanom` binary and a CSV parser, plus [`assert_row`], which checks a
//!   whole 53-feature row: the listed features have the given values, every other is 0.
//!
//! Nothing here reads the crate: the feature names are copied from the contract
//! (docs/features.md), so a renamed or reordered column fails the tests.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

// ---------------------------------------------------------------------------------------------
// The contract's column names
// ---------------------------------------------------------------------------------------------

/// The 53 feature names in contract order (Table 1 of the paper read row by row).
pub const FEATURE_NAMES: [&str; 53] = [
    "pkt_size_mean",
    "pkt_count",
    "pkt_size_var",
    "ttl_mean",
    "ttl_var",
    "dst_ip_distinct",
    "src_ip_distinct",
    "src_port_distinct",
    "dst_port_distinct",
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
    "icmp_count",
    "udp_count",
    "src_port_110_count",
    "src_port_22_count",
    "src_port_53_count",
    "src_port_443_count",
    "src_port_80_count",
    "src_port_25_count",
    "src_port_465_count",
    "src_port_587_count",
    "src_port_995_count",
    "src_port_993_count",
    "src_port_143_count",
    "dst_port_110_count",
    "dst_port_22_count",
    "dst_port_53_count",
    "dst_port_443_count",
    "dst_port_80_count",
    "dst_port_25_count",
    "dst_port_465_count",
    "dst_port_587_count",
    "dst_port_995_count",
    "dst_port_993_count",
    "dst_port_143_count",
];

/// The well-known ports of features 32–53, in contract order.
pub const WELL_KNOWN_PORTS: [u16; 11] = [110, 22, 53, 443, 80, 25, 465, 587, 995, 993, 143];

/// Index of a feature by name (panics on a typo, so tests cannot check a column that is not there).
pub fn feature_index(name: &str) -> usize {
    FEATURE_NAMES
        .iter()
        .position(|&n| n == name)
        .unwrap_or_else(|| panic!("no feature named {name:?} in the contract"))
}

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

/// Parses "1700000000.2" (seconds, up to 9 decimals) into integer nanoseconds, exactly.
pub fn t(text: &str) -> i64 {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    assert!(frac.len() <= 9, "{text}: more than 9 decimals");
    let secs: i64 = int.parse().expect("seconds");
    let frac_ns: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().expect("fraction")
    };
    secs * 1_000_000_000 + frac_ns
}

// ---------------------------------------------------------------------------------------------
// Classic pcap writer
// ---------------------------------------------------------------------------------------------

/// Link-layer header type values as written in the pcap file header (LINKTYPE_*).
pub mod linktype {
    pub const NULL: u32 = 0;
    pub const EN10MB: u32 = 1;
    pub const RAW: u32 = 101;
    pub const IEEE802_11: u32 = 105;
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
}

struct Record {
    sec: u32,
    frac: u32,
    orig_len: u32,
    data: Vec<u8>,
}

/// A classic pcap file built in memory.
pub struct Pcap {
    link: u32,
    nanos: bool,
    big_endian: bool,
    snaplen: u32,
    records: Vec<Record>,
}

impl Pcap {
    /// Microsecond-resolution file (magic 0xa1b2c3d4), little-endian.
    pub fn micro(link: u32) -> Self {
        Self {
            link,
            nanos: false,
            big_endian: false,
            snaplen: 262_144,
            records: Vec::new(),
        }
    }

    /// Nanosecond-resolution file (magic 0xa1b23c4d), little-endian.
    pub fn nano(link: u32) -> Self {
        Self {
            nanos: true,
            ..Self::micro(link)
        }
    }

    /// Writes the file in big-endian byte order (as a big-endian host would).
    pub fn big_endian(mut self) -> Self {
        self.big_endian = true;
        self
    }

    /// Sets the snap length announced in the file header.
    pub fn snaplen(mut self, snaplen: u32) -> Self {
        self.snaplen = snaplen;
        self
    }

    /// Splits ns since the epoch into the record's (seconds, fraction) fields.
    fn split_ts(&self, ts_ns: i64) -> (u32, u32) {
        assert!(ts_ns >= 0, "negative timestamps are not representable here");
        let sec = u32::try_from(ts_ns / 1_000_000_000).expect("seconds fit in u32");
        let ns = (ts_ns % 1_000_000_000) as u32;
        if self.nanos {
            (sec, ns)
        } else {
            assert_eq!(ns % 1000, 0, "a microsecond file cannot hold {ts_ns} ns");
            (sec, ns / 1000)
        }
    }

    /// A frame captured whole at `ts_ns`.
    pub fn packet(&mut self, ts_ns: i64, frame: &[u8]) -> &mut Self {
        self.packet_snap(ts_ns, frame, frame.len())
    }

    /// A frame cut by the snap length: the first `caplen` bytes are captured, the wire
    /// length stays `frame.len()`.
    pub fn packet_snap(&mut self, ts_ns: i64, frame: &[u8], caplen: usize) -> &mut Self {
        let caplen = caplen.min(frame.len());
        let (sec, frac) = self.split_ts(ts_ns);
        self.records.push(Record {
            sec,
            frac,
            orig_len: frame.len() as u32,
            data: frame[..caplen].to_vec(),
        });
        self
    }

    /// A record with raw header fields (the fraction is µs or ns per the file's magic).
    pub fn packet_raw(&mut self, sec: u32, frac: u32, data: &[u8], orig_len: u32) -> &mut Self {
        self.records.push(Record {
            sec,
            frac,
            orig_len,
            data: data.to_vec(),
        });
        self
    }

    /// Number of records so far.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    fn u32b(&self, out: &mut Vec<u8>, v: u32) {
        if self.big_endian {
            out.extend_from_slice(&v.to_be_bytes());
        } else {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn u16b(&self, out: &mut Vec<u8>, v: u16) {
        if self.big_endian {
            out.extend_from_slice(&v.to_be_bytes());
        } else {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// The 24-byte global header.
    pub fn header_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        let magic = if self.nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        self.u32b(&mut out, magic);
        self.u16b(&mut out, 2);
        self.u16b(&mut out, 4);
        self.u32b(&mut out, 0); // thiszone
        self.u32b(&mut out, 0); // sigfigs
        self.u32b(&mut out, self.snaplen);
        self.u32b(&mut out, self.link);
        out
    }

    /// The whole file.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = self.header_bytes();
        for r in &self.records {
            self.u32b(&mut out, r.sec);
            self.u32b(&mut out, r.frac);
            self.u32b(&mut out, r.data.len() as u32);
            self.u32b(&mut out, r.orig_len);
            out.extend_from_slice(&r.data);
        }
        out
    }

    /// Writes the file to `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.bytes()).expect("write pcap");
    }
}

// ---------------------------------------------------------------------------------------------
// Link layers
// ---------------------------------------------------------------------------------------------

pub const ETH_IPV4: u16 = 0x0800;
pub const ETH_IPV6: u16 = 0x86DD;
pub const ETH_ARP: u16 = 0x0806;
pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88A8;
pub const TPID_9100: u16 = 0x9100;

const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// Ethernet II frame (14-byte header, no FCS).
pub fn eth(ether_type: u16, payload: &[u8]) -> Vec<u8> {
    eth_vlan(&[], ether_type, payload)
}

/// Ethernet II with a stack of VLAN tags, outermost first: each tag is its TPID
/// (0x8100, 0x88A8 or 0x9100) and a 2-byte TCI; 4 bytes per tag.
pub fn eth_vlan(tpids: &[u16], ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 4 * tpids.len() + payload.len());
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    for (i, tpid) in tpids.iter().enumerate() {
        f.extend_from_slice(&tpid.to_be_bytes());
        let tci: u16 = 100 + i as u16; // PCP 0, DEI 0, VID 100, 101, ...
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ether_type.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Linux cooked capture v1 (16 bytes): packet type, ARPHRD, address length, address,
/// protocol.
pub fn sll(protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(16 + payload.len());
    f.extend_from_slice(&0u16.to_be_bytes()); // LINUX_SLL_HOST
    f.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
    f.extend_from_slice(&6u16.to_be_bytes());
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&protocol.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Linux cooked capture v2 (20 bytes): protocol, reserved, interface index, ARPHRD,
/// packet type, address length, address.
pub fn sll2(protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(20 + payload.len());
    f.extend_from_slice(&protocol.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&3u32.to_be_bytes()); // if_index
    f.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
    f.push(4); // LINUX_SLL_OUTGOING
    f.push(6);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// BSD null header (DLT 0): the address family in the capturing host's byte order.
pub fn null_frame(family: u32, little_endian: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(4 + payload.len());
    if little_endian {
        f.extend_from_slice(&family.to_le_bytes());
    } else {
        f.extend_from_slice(&family.to_be_bytes());
    }
    f.extend_from_slice(payload);
    f
}

/// OpenBSD loop header (DLT 108): the address family in network byte order.
pub fn loop_frame(family: u32, payload: &[u8]) -> Vec<u8> {
    null_frame(family, false, payload)
}

/// An ARP request (28 bytes, Ethernet/IPv4).
pub fn arp_request() -> Vec<u8> {
    let mut a = Vec::with_capacity(28);
    a.extend_from_slice(&1u16.to_be_bytes()); // HTYPE Ethernet
    a.extend_from_slice(&0x0800u16.to_be_bytes()); // PTYPE IPv4
    a.push(6);
    a.push(4);
    a.extend_from_slice(&1u16.to_be_bytes()); // request
    a.extend_from_slice(&SRC_MAC);
    a.extend_from_slice(&[10, 0, 0, 1]);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&[10, 0, 0, 2]);
    a
}

/// Appends zero bytes until `frame` is `len` bytes long (Ethernet padding, trailers).
pub fn pad_to(mut frame: Vec<u8>, len: usize) -> Vec<u8> {
    assert!(
        frame.len() <= len,
        "frame is {} bytes, longer than {len}",
        frame.len()
    );
    frame.resize(len, 0);
    frame
}

// ---------------------------------------------------------------------------------------------
// IP
// ---------------------------------------------------------------------------------------------

pub mod proto {
    pub const HOPOPT: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6_ROUTE: u8 = 43;
    pub const IPV6_FRAG: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT: u8 = 59;
    pub const IPV6_DSTOPTS: u8 = 60;
    /// RFC 3692 experimental: a protocol nobody decodes.
    pub const EXPERIMENTAL: u8 = 253;
}

/// The Internet checksum of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 header under construction.
#[derive(Clone, Debug)]
pub struct Ipv4 {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub ttl: u8,
    pub protocol: u8,
    /// Options, padded with zeros (end of options list) to a multiple of 4 bytes.
    pub options: Vec<u8>,
    pub more_fragments: bool,
    pub dont_fragment: bool,
    /// Fragment offset in units of 8 bytes.
    pub frag_offset: u16,
    /// Overrides the total length field (default: the true length).
    pub total_len: Option<u16>,
    /// Overrides the IHL nibble (default: from the options).
    pub ihl: Option<u8>,
}

impl Ipv4 {
    pub fn new(src: [u8; 4], dst: [u8; 4], protocol: u8) -> Self {
        Self {
            src,
            dst,
            ttl: 64,
            protocol,
            options: Vec::new(),
            more_fragments: false,
            dont_fragment: false,
            frag_offset: 0,
            total_len: None,
            ihl: None,
        }
    }

    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }

    pub fn options(mut self, options: &[u8]) -> Self {
        self.options = options.to_vec();
        while !self.options.len().is_multiple_of(4) {
            self.options.push(0);
        }
        self
    }

    pub fn fragment(mut self, more_fragments: bool, offset_units: u16) -> Self {
        self.more_fragments = more_fragments;
        self.frag_offset = offset_units;
        self
    }

    pub fn dont_fragment(mut self) -> Self {
        self.dont_fragment = true;
        self
    }

    pub fn total_len(mut self, len: u16) -> Self {
        self.total_len = Some(len);
        self
    }

    pub fn ihl(mut self, ihl: u8) -> Self {
        self.ihl = Some(ihl);
        self
    }

    /// Header + payload.
    pub fn build(&self, payload: &[u8]) -> Vec<u8> {
        let header_len = 20 + self.options.len();
        let ihl = self.ihl.unwrap_or((header_len / 4) as u8);
        let total = self
            .total_len
            .unwrap_or((header_len + payload.len()) as u16);
        let mut h = Vec::with_capacity(header_len + payload.len());
        h.push(0x40 | (ihl & 0x0f));
        h.push(0); // DSCP/ECN
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&0x1234u16.to_be_bytes()); // identification
        let flags_frag = (u16::from(self.dont_fragment) << 14)
            | (u16::from(self.more_fragments) << 13)
            | (self.frag_offset & 0x1fff);
        h.extend_from_slice(&flags_frag.to_be_bytes());
        h.push(self.ttl);
        h.push(self.protocol);
        h.extend_from_slice(&[0, 0]);
        h.extend_from_slice(&self.src);
        h.extend_from_slice(&self.dst);
        h.extend_from_slice(&self.options);
        let sum = checksum(&h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        h.extend_from_slice(payload);
        h
    }
}

/// A plain IPv4 packet (IHL 5, not fragmented).
pub fn ipv4(src: [u8; 4], dst: [u8; 4], ttl: u8, protocol: u8, payload: &[u8]) -> Vec<u8> {
    Ipv4::new(src, dst, protocol).ttl(ttl).build(payload)
}

/// An IPv6 address from its text form.
pub fn v6(text: &str) -> [u8; 16] {
    text.parse::<std::net::Ipv6Addr>()
        .expect("IPv6 address")
        .octets()
}

/// An IPv6 packet; `payload` starts with the header named by `next_header`.
pub fn ipv6(
    src: [u8; 16],
    dst: [u8; 16],
    hop_limit: u8,
    next_header: u8,
    payload: &[u8],
) -> Vec<u8> {
    ipv6_len(
        src,
        dst,
        hop_limit,
        next_header,
        payload,
        payload.len() as u16,
    )
}

/// An IPv6 packet with an arbitrary payload length field.
pub fn ipv6_len(
    src: [u8; 16],
    dst: [u8; 16],
    hop_limit: u8,
    next_header: u8,
    payload: &[u8],
    payload_len: u16,
) -> Vec<u8> {
    let mut p = Vec::with_capacity(40 + payload.len());
    p.extend_from_slice(&0x6000_0000u32.to_be_bytes()); // version 6, class 0, flow 0
    p.extend_from_slice(&payload_len.to_be_bytes());
    p.push(next_header);
    p.push(hop_limit);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(payload);
    p
}

/// Hop-by-hop or destination options header of `8 * (len_units + 1)` bytes, filled with
/// one PadN option, followed by `rest`.
pub fn ext_options(next_header: u8, len_units: u8, rest: &[u8]) -> Vec<u8> {
    let total = 8 * (usize::from(len_units) + 1);
    let mut h = vec![next_header, len_units, 1, (total - 4) as u8];
    h.resize(total, 0);
    h.extend_from_slice(rest);
    h
}

/// Routing header (type 0 layout, segments left 0, one address): 24 bytes, then `rest`.
pub fn ext_routing(next_header: u8, rest: &[u8]) -> Vec<u8> {
    let mut h = vec![next_header, 2, 0, 0, 0, 0, 0, 0];
    h.extend_from_slice(&v6("2001:db8::99"));
    h.extend_from_slice(rest);
    h
}

/// Fragment header (8 bytes): offset in 8-byte units, M flag; then `rest`.
pub fn ext_fragment(next_header: u8, offset_units: u16, more: bool, rest: &[u8]) -> Vec<u8> {
    let mut h = vec![next_header, 0];
    let off = (offset_units << 3) | u16::from(more);
    h.extend_from_slice(&off.to_be_bytes());
    h.extend_from_slice(&0xdead_beefu32.to_be_bytes());
    h.extend_from_slice(rest);
    h
}

/// Authentication header with a 12-byte ICV (24 bytes in all), then `rest`.
pub fn ah(next_header: u8, rest: &[u8]) -> Vec<u8> {
    // Payload Len is the AH length in 4-byte words minus 2: 24 / 4 - 2 = 4.
    let mut h = vec![next_header, 4, 0, 0];
    h.extend_from_slice(&0x0000_1000u32.to_be_bytes()); // SPI
    h.extend_from_slice(&1u32.to_be_bytes()); // sequence
    h.extend_from_slice(&[0xAA; 12]); // ICV
    h.extend_from_slice(rest);
    h
}

/// ESP: SPI + sequence number, then opaque (encrypted) bytes.
pub fn esp(opaque: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(8 + opaque.len());
    h.extend_from_slice(&0x0000_2000u32.to_be_bytes());
    h.extend_from_slice(&1u32.to_be_bytes());
    h.extend_from_slice(opaque);
    h
}

// ---------------------------------------------------------------------------------------------
// Transport
// ---------------------------------------------------------------------------------------------

/// TCP flag bits (byte 13).
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// A 20-byte TCP header (no options) followed by `payload`.
pub fn tcp(src_port: u16, dst_port: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    tcp_opts(src_port, dst_port, flags, &[], payload)
}

/// A TCP header with options (padded with NOPs to a multiple of 4 bytes), then `payload`.
pub fn tcp_opts(
    src_port: u16,
    dst_port: u16,
    flags: u8,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut opts = options.to_vec();
    while !opts.len().is_multiple_of(4) {
        opts.push(1); // NOP
    }
    let offset = ((20 + opts.len()) / 4) as u8;
    tcp_raw(src_port, dst_port, flags, offset, &opts, payload)
}

/// A TCP header with an arbitrary data offset nibble (for malformed headers).
pub fn tcp_raw(
    src_port: u16,
    dst_port: u16,
    flags: u8,
    data_offset: u8,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut h = Vec::with_capacity(20 + options.len() + payload.len());
    h.extend_from_slice(&src_port.to_be_bytes());
    h.extend_from_slice(&dst_port.to_be_bytes());
    h.extend_from_slice(&1000u32.to_be_bytes()); // seq
    h.extend_from_slice(&2000u32.to_be_bytes()); // ack
    h.push(data_offset << 4);
    h.push(flags);
    h.extend_from_slice(&65535u16.to_be_bytes()); // window
    h.extend_from_slice(&[0, 0]); // checksum (not checked by anyone)
    h.extend_from_slice(&0u16.to_be_bytes()); // urgent pointer
    h.extend_from_slice(options);
    h.extend_from_slice(payload);
    h
}

/// Typical SYN options: MSS 1460, SACK permitted, timestamps, NOP, window scale 7
/// (20 bytes: data offset 10).
pub const SYN_OPTIONS: [u8; 20] = [
    2, 4, 0x05, 0xb4, // MSS
    4, 2, // SACK permitted
    8, 10, 0, 0, 0, 1, 0, 0, 0, 0, // timestamps
    1, // NOP
    3, 3, 7, // window scale
];

/// An 8-byte UDP header (true length field) followed by `payload`.
pub fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(8 + payload.len());
    h.extend_from_slice(&src_port.to_be_bytes());
    h.extend_from_slice(&dst_port.to_be_bytes());
    h.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(payload);
    h
}

/// An ICMP (v4 or v6) message: type, code, checksum 0, 4 bytes of rest-of-header, body.
pub fn icmp(icmp_type: u8, code: u8, body: &[u8]) -> Vec<u8> {
    let mut h = vec![icmp_type, code, 0, 0, 0, 1, 0, 1];
    h.extend_from_slice(body);
    h
}

/// ICMPv4 echo request with `n` payload bytes.
pub fn icmp_echo(n: usize) -> Vec<u8> {
    icmp(8, 0, &vec![0x61; n])
}

/// ICMPv6 echo request with `n` payload bytes.
pub fn icmpv6_echo(n: usize) -> Vec<u8> {
    icmp(128, 0, &vec![0x61; n])
}

// ---------------------------------------------------------------------------------------------
// Running the binary and reading its CSV
// ---------------------------------------------------------------------------------------------

/// What a run of `netanom` did.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics unless the run exited 0 without a panic message.
    pub fn assert_ok(&self) -> &Self {
        self.assert_no_panic();
        assert_eq!(self.code, 0, "netanom failed:\n{}", self.stderr);
        self
    }

    /// Panics if anything panicked.
    pub fn assert_no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked"),
            "netanom panicked:\n{}",
            self.stderr
        );
        assert!(
            self.code >= 0,
            "netanom was killed by a signal:\n{}",
            self.stderr
        );
    }
}

/// The `netanom` binary under test. It belongs to the `netanom-cli` crate (which has no
/// libtorch), so Cargo gives this package only `netanom-full`'s path; `cargo test` at the
/// workspace root builds both into the same directory.
pub fn netanom_exe() -> std::path::PathBuf {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_netanom-full")).with_file_name("netanom");
    assert!(
        exe.is_file(),
        "{} is missing: run the tests from the workspace root (`cargo test` builds every crate)",
        exe.display()
    );
    exe
}

/// Runs the netanom binary built for these tests with `args`.
pub fn netanom<S: AsRef<OsStr>>(args: &[S]) -> Run {
    let out = Command::new(netanom_exe())
        .args(args)
        // Keep the default log level regardless of the caller's environment.
        .env_remove("NETANOM_LOG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run netanom");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `netanom extract --window W --pcap F...` to standard output.
pub fn extract(pcaps: &[&Path], window: &str) -> Run {
    let mut args: Vec<std::ffi::OsString> =
        vec!["extract".into(), "--window".into(), window.into()];
    for p in pcaps {
        args.push("--pcap".into());
        args.push(p.as_os_str().to_owned());
    }
    netanom(&args)
}

/// Like [`extract`], asserting success, and parses the CSV.
pub fn extract_ok(pcaps: &[&Path], window: &str) -> Csv {
    let run = extract(pcaps, window);
    run.assert_ok();
    parse_csv(&run.stdout)
}

/// One CSV row.
#[derive(Clone, Debug)]
pub struct Row {
    /// `window_start` as written (6 decimals).
    pub start: String,
    /// `window_end` as written.
    pub end: String,
    /// The 53 features.
    pub values: Vec<f64>,
}

impl Row {
    /// A feature by name.
    pub fn get(&self, name: &str) -> f64 {
        self.values[feature_index(name)]
    }
}

/// Parsed `netanom extract` output.
#[derive(Clone, Debug)]
pub struct Csv {
    pub header: String,
    pub rows: Vec<Row>,
}

impl Csv {
    /// The `pkt_count` column.
    pub fn counts(&self) -> Vec<f64> {
        self.rows.iter().map(|r| r.get("pkt_count")).collect()
    }

    /// The `window_start` column.
    pub fn starts(&self) -> Vec<&str> {
        self.rows.iter().map(|r| r.start.as_str()).collect()
    }
}

/// The header row the contract prescribes.
pub fn expected_header() -> String {
    let mut h = String::from("window_start,window_end");
    for n in FEATURE_NAMES {
        h.push(',');
        h.push_str(n);
    }
    h
}

/// Whether `s` is Unix seconds written with exactly 6 decimals.
pub fn is_six_decimals(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    match s.split_once('.') {
        Some((int, frac)) => {
            !int.is_empty()
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.len() == 6
                && frac.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// Parses extract output, checking the header, the column count and the time format.
pub fn parse_csv(text: &str) -> Csv {
    let mut lines = text.lines();
    let header = lines.next().expect("a header row").to_string();
    assert_eq!(header, expected_header(), "CSV header");
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        let cols: Vec<&str> = line.split(',').collect();
        assert_eq!(cols.len(), 55, "row {i} has {} columns: {line}", cols.len());
        assert!(
            is_six_decimals(cols[0]),
            "row {i}: window_start {:?}",
            cols[0]
        );
        assert!(
            is_six_decimals(cols[1]),
            "row {i}: window_end {:?}",
            cols[1]
        );
        let values = cols[2..]
            .iter()
            .enumerate()
            .map(|(j, v)| {
                let x: f64 = v.parse().unwrap_or_else(|_| {
                    panic!("row {i}: {} = {v:?} is not a number", FEATURE_NAMES[j])
                });
                assert!(x.is_finite(), "row {i}: {} = {v}", FEATURE_NAMES[j]);
                x
            })
            .collect();
        rows.push(Row {
            start: cols[0].to_string(),
            end: cols[1].to_string(),
            values,
        });
    }
    Csv { header, rows }
}

/// Whether a hand-computed value is exactly representable in the form written (an integer
/// or a fraction with a power-of-two denominator up to 2^20): then it is compared exactly.
fn exactly_representable(v: f64) -> bool {
    (v * 1_048_576.0).fract() == 0.0
}

/// Checks a whole row: each `(name, value)` listed must match (exactly when the value is
/// exactly representable, else within 1e-9), and every feature not listed must be 0.
pub fn assert_row(row: &Row, context: &str, expected: &[(&str, f64)]) {
    let mut want = [0.0f64; 53];
    for &(name, v) in expected {
        want[feature_index(name)] = v;
    }
    let mut errors = Vec::new();
    for (i, (&got, &exp)) in row.values.iter().zip(want.iter()).enumerate() {
        let ok = if exactly_representable(exp) {
            got == exp
        } else {
            (got - exp).abs() <= 1e-9
        };
        if !ok {
            errors.push(format!("  {}: expected {exp}, got {got}", FEATURE_NAMES[i]));
        }
    }
    assert!(
        errors.is_empty(),
        "{context} (window {}):\n{}",
        row.start,
        errors.join("\n")
    );
}

/// All 53 features zero (an empty window).
pub fn assert_empty_row(row: &Row, context: &str) {
    assert_row(row, context, &[]);
}
