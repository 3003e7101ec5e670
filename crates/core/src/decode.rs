//! Link-layer frames to [`PacketSummary`]: zero-copy header views (etherparse), no allocation.
//!
//! The walk follows `docs/features.md`: a header counts only when it was captured whole,
//! IP length fields are not trusted, a non-first fragment has no transport header, IPv6
//! extension headers and AH are walked, ESP or anything else ends the walk.

use etherparse::{
    Ethernet2HeaderSlice, IpAuthHeaderSlice, IpNumber, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice,
    Ipv6HeaderSlice, Ipv6RawExtHeaderSlice, SingleVlanHeaderSlice, TcpHeaderSlice, UdpHeaderSlice,
};

/// A decoded packet: the few header fields the window features need. `Copy`, no heap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketSummary {
    /// Capture timestamp, nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// Frame length on the wire (pcap `len`), not the captured length.
    pub wire_len: u32,
    /// The IP layer, when an IPv4/IPv6 header was captured whole.
    pub ip: Option<IpSummary>,
    /// The transport layer, when its header was captured whole.
    pub transport: Transport,
    /// Why decoding stopped early, if it did (for counters; the packet still counts).
    pub issue: DecodeIssue,
}

/// IP addresses as 128-bit keys: IPv4 maps into `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2).
pub type IpKey = u128;

/// Maps an IPv4 address into the IPv6 key space.
#[inline]
pub fn ipv4_key(octets: [u8; 4]) -> IpKey {
    0xffff_0000_0000u128 | u128::from(u32::from_be_bytes(octets))
}

/// Turns a key back into an address for display.
pub fn key_to_addr(key: IpKey) -> std::net::IpAddr {
    let v6 = std::net::Ipv6Addr::from(key);
    match v6.to_ipv4_mapped() {
        Some(v4) => std::net::IpAddr::V4(v4),
        None => std::net::IpAddr::V6(v6),
    }
}

/// The IP header fields the features use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpSummary {
    pub src: IpKey,
    pub dst: IpKey,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
}

/// TCP flag bits as they sit in byte 13 of the TCP header.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
}

/// The transport header fields the features use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    #[default]
    None,
    Tcp {
        src_port: u16,
        dst_port: u16,
        flags: u8,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
    },
    /// ICMPv4 or ICMPv6 (`v6`), with the message type of its header.
    Icmp {
        icmp_type: u8,
        v6: bool,
    },
}

impl Transport {
    /// A reply to someone else's packet, which says more about the host it goes to than
    /// about its sender: a TCP SYN+ACK or RST+ACK (the answer to a SYN, open or closed port),
    /// a bare RST (no SYN, no ACK) from a lower port to a higher one (a service port
    /// answering an ACK probe from a client's port: an ACK or window scan), or an ICMP echo
    /// reply, destination unreachable or time exceeded (ICMPv4 types 0, 3, 11; ICMPv6 129, 1,
    /// 3). A scan's and a flood's answers are replies; so is a server's SYN+ACK to an ordinary
    /// client. A bare RST from the higher port is its sender's own (a SYN scanner resetting
    /// the SYN+ACKs it got, from its high source port): which of the two a bare RST is cannot
    /// be told from one packet, and the ports are the one hint it carries (docs/alerts.md,
    /// "Families and roles").
    #[inline(always)]
    pub const fn is_reply(self) -> bool {
        match self {
            Transport::Tcp {
                flags,
                src_port,
                dst_port,
            } => {
                let syn_rst_ack = flags & (tcp_flags::SYN | tcp_flags::RST | tcp_flags::ACK);
                (flags & tcp_flags::ACK != 0 && flags & (tcp_flags::SYN | tcp_flags::RST) != 0)
                    || (syn_rst_ack == tcp_flags::RST && src_port < dst_port)
            }
            Transport::Icmp {
                icmp_type,
                v6: false,
            } => matches!(icmp_type, 0 | 3 | 11),
            Transport::Icmp {
                icmp_type,
                v6: true,
            } => matches!(icmp_type, 1 | 3 | 129),
            _ => false,
        }
    }

    /// The IP protocol number of the transport header (0: none decoded).
    #[inline(always)]
    pub const fn protocol(self) -> u8 {
        match self {
            Transport::None => 0,
            Transport::Tcp { .. } => 6,
            Transport::Udp { .. } => 17,
            Transport::Icmp { v6: false, .. } => 1,
            Transport::Icmp { v6: true, .. } => 58,
        }
    }

    /// Source and destination ports of TCP and UDP (0, 0 otherwise).
    #[inline(always)]
    pub const fn ports(self) -> (u16, u16) {
        match self {
            Transport::Tcp {
                src_port, dst_port, ..
            }
            | Transport::Udp { src_port, dst_port } => (src_port, dst_port),
            _ => (0, 0),
        }
    }
}

/// Why the header walk stopped before a transport header (counted, never fatal).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DecodeIssue {
    /// Nothing unusual (including plain non-IP frames and non-first fragments).
    #[default]
    None,
    /// A header was cut off by the snap length or the frame end.
    Truncated,
    /// A header was present but invalid (bad version, IHL < 5, data offset < 5, …).
    Malformed,
}

/// Capture link types netanom decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// Ethernet II, with any number of 802.1Q / 802.1ad / 0x9100 VLAN tags.
    Ethernet,
    /// Linux cooked capture v1 (`any` device).
    LinuxSll,
    /// Linux cooked capture v2.
    LinuxSll2,
    /// Raw IP, version taken from the first nibble.
    RawIp,
    /// BSD loopback, address family in host byte order.
    Null,
    /// OpenBSD loopback, address family in network byte order.
    Loop,
}

/// The supported link types, for error messages.
pub const SUPPORTED_LINK_TYPES: &str =
    "EN10MB (Ethernet), LINUX_SLL, LINUX_SLL2, RAW/IPV4/IPV6 (raw IP), NULL, LOOP";

impl LinkType {
    /// Every supported link type.
    pub const ALL: [LinkType; 6] = [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::RawIp,
        LinkType::Null,
        LinkType::Loop,
    ];

    /// Maps a libpcap DLT value (what `pcap_datalink` returns) to a link type.
    pub fn from_dlt(dlt: i32) -> Option<Self> {
        match dlt {
            1 => Some(Self::Ethernet),
            113 => Some(Self::LinuxSll),
            276 => Some(Self::LinuxSll2),
            // DLT_RAW is 12 on most systems, 14 on OpenBSD; LINKTYPE_RAW 101; IPV4 228; IPV6 229.
            12 | 14 | 101 | 228 | 229 => Some(Self::RawIp),
            0 => Some(Self::Null),
            108 => Some(Self::Loop),
            _ => None,
        }
    }
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88A8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

/// Decodes one frame. `data` is the captured bytes, `wire_len` the original length.
// Always inlined: the pump that calls it lives in another crate's instantiation, and a call
// here (with the summary returned through memory) costs about 8 % of extraction.
#[inline(always)]
pub fn decode(link: LinkType, data: &[u8], ts_ns: i64, wire_len: u32) -> PacketSummary {
    let mut summary = PacketSummary::default();
    decode_into(link, data, ts_ns, wire_len, &mut summary);
    summary
}

/// [`decode`] into a summary the caller holds (the pump's, reused for every packet, so that
/// the summary is not copied from decode's frame to the caller's).
#[inline(always)]
pub fn decode_into(
    link: LinkType,
    data: &[u8],
    ts_ns: i64,
    wire_len: u32,
    summary: &mut PacketSummary,
) {
    *summary = PacketSummary {
        ts_ns,
        wire_len,
        ..PacketSummary::default()
    };
    let network = match link {
        LinkType::Ethernet => ethernet_payload(data),
        LinkType::LinuxSll => sll_payload(data),
        LinkType::LinuxSll2 => sll2_payload(data),
        LinkType::RawIp => Ok(Some(data)),
        LinkType::Null => null_payload(data, false),
        LinkType::Loop => null_payload(data, true),
    };
    match network {
        Ok(Some(ip)) => decode_ip(ip, summary),
        Ok(None) => {}
        Err(issue) => summary.issue = issue,
    }
}

/// Ethernet II: skip any stack of VLAN tags; `Ok(None)` for a non-IP ethertype.
fn ethernet_payload(data: &[u8]) -> Result<Option<&[u8]>, DecodeIssue> {
    let eth = Ethernet2HeaderSlice::from_slice(data).map_err(|_| DecodeIssue::Truncated)?;
    let mut ether_type = eth.ether_type().0;
    let mut rest = &data[eth.slice().len()..];
    while matches!(
        ether_type,
        ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
    ) {
        let vlan = SingleVlanHeaderSlice::from_slice(rest).map_err(|_| DecodeIssue::Truncated)?;
        ether_type = vlan.ether_type().0;
        rest = &rest[vlan.slice().len()..];
    }
    Ok(ip_ether_type(ether_type).then_some(rest))
}

/// Whether an ethertype carries IPv4 or IPv6.
#[inline]
fn ip_ether_type(ether_type: u16) -> bool {
    ether_type == ETHERTYPE_IPV4 || ether_type == ETHERTYPE_IPV6
}

/// Linux SLL: 16-byte header, protocol type in bytes 14..16.
fn sll_payload(data: &[u8]) -> Result<Option<&[u8]>, DecodeIssue> {
    // Parsed by hand: etherparse's LinuxSllHeaderSlice rejects packet types and
    // ARPHRD values it does not know, which would turn valid frames into errors.
    if data.len() < 16 {
        return Err(DecodeIssue::Truncated);
    }
    let protocol = u16::from_be_bytes([data[14], data[15]]);
    Ok(ip_ether_type(protocol).then_some(&data[16..]))
}

/// Linux SLL2: 20-byte header, protocol type in bytes 0..2 (etherparse has no SLL2 view).
fn sll2_payload(data: &[u8]) -> Result<Option<&[u8]>, DecodeIssue> {
    if data.len() < 20 {
        return Err(DecodeIssue::Truncated);
    }
    let protocol = u16::from_be_bytes([data[0], data[1]]);
    Ok(ip_ether_type(protocol).then_some(&data[20..]))
}

/// BSD null / OpenBSD loop: a 4-byte address family (AF_INET 2; AF_INET6 10, 24, 28 or 30).
fn null_payload(data: &[u8], network_order: bool) -> Result<Option<&[u8]>, DecodeIssue> {
    let Some(family) = data.get(..4) else {
        return Err(DecodeIssue::Truncated);
    };
    let family = [family[0], family[1], family[2], family[3]];
    let family = if network_order {
        u32::from_be_bytes(family)
    } else {
        // Host order of the capturing machine, unknown to us: a family fits in 16 bits,
        // so whichever reading does is the right one.
        let le = u32::from_le_bytes(family);
        if le > 0xffff {
            u32::from_be_bytes(family)
        } else {
            le
        }
    };
    Ok(matches!(family, 2 | 10 | 24 | 28 | 30).then_some(&data[4..]))
}

/// IPv4 or IPv6 by the version nibble.
#[inline]
fn decode_ip(data: &[u8], summary: &mut PacketSummary) {
    match data.first().map(|b| b >> 4) {
        Some(4) => decode_ipv4(data, summary),
        Some(6) => decode_ipv6(data, summary),
        Some(_) => summary.issue = DecodeIssue::Malformed,
        None => summary.issue = DecodeIssue::Truncated,
    }
}

/// Maps an etherparse slicing failure to our issue kind.
fn slice_issue(is_len: bool) -> DecodeIssue {
    if is_len {
        DecodeIssue::Truncated
    } else {
        DecodeIssue::Malformed
    }
}

fn decode_ipv4(data: &[u8], summary: &mut PacketSummary) {
    use etherparse::err::ipv4::HeaderSliceError;
    let ip = match Ipv4HeaderSlice::from_slice(data) {
        Ok(ip) => ip,
        Err(e) => {
            summary.issue = slice_issue(matches!(e, HeaderSliceError::Len(_)));
            return;
        }
    };
    summary.ip = Some(IpSummary {
        src: ipv4_key(ip.source()),
        dst: ipv4_key(ip.destination()),
        ttl: ip.ttl(),
    });
    if ip.fragments_offset().value() != 0 {
        return;
    }
    let payload = &data[ip.slice().len()..];
    decode_after_ip(ip.protocol(), payload, false, summary);
}

fn decode_ipv6(data: &[u8], summary: &mut PacketSummary) {
    use etherparse::err::ipv6::HeaderSliceError;
    let ip = match Ipv6HeaderSlice::from_slice(data) {
        Ok(ip) => ip,
        Err(e) => {
            summary.issue = slice_issue(matches!(e, HeaderSliceError::Len(_)));
            return;
        }
    };
    summary.ip = Some(IpSummary {
        src: u128::from_be_bytes(ip.source()),
        dst: u128::from_be_bytes(ip.destination()),
        ttl: ip.hop_limit(),
    });
    let payload = &data[ip.slice().len()..];
    decode_after_ip(ip.next_header(), payload, true, summary);
}

/// Walks extension headers (IPv6 ones only for IPv6; AH for both) to the transport header.
fn decode_after_ip(mut next: IpNumber, mut rest: &[u8], ipv6: bool, summary: &mut PacketSummary) {
    // Every extension header is at least 8 bytes, so the walk ends within rest.len()/8 steps.
    loop {
        match next {
            IpNumber::IPV6_HEADER_HOP_BY_HOP
            | IpNumber::IPV6_ROUTE_HEADER
            | IpNumber::IPV6_DESTINATION_OPTIONS
                if ipv6 =>
            {
                let Ok(ext) = Ipv6RawExtHeaderSlice::from_slice(rest) else {
                    summary.issue = DecodeIssue::Truncated;
                    return;
                };
                next = ext.next_header();
                rest = &rest[ext.slice().len()..];
            }
            IpNumber::IPV6_FRAGMENTATION_HEADER if ipv6 => {
                let Ok(frag) = Ipv6FragmentHeaderSlice::from_slice(rest) else {
                    summary.issue = DecodeIssue::Truncated;
                    return;
                };
                if frag.fragment_offset().value() != 0 {
                    return;
                }
                next = frag.next_header();
                rest = &rest[frag.slice().len()..];
            }
            IpNumber::AUTHENTICATION_HEADER => match IpAuthHeaderSlice::from_slice(rest) {
                Ok(auth) => {
                    next = auth.next_header();
                    rest = &rest[auth.slice().len()..];
                }
                Err(etherparse::err::ip_auth::HeaderSliceError::Len(_)) => {
                    summary.issue = DecodeIssue::Truncated;
                    return;
                }
                Err(_) => {
                    summary.issue = DecodeIssue::Malformed;
                    return;
                }
            },
            _ => break,
        }
    }
    decode_transport(next, rest, ipv6, summary);
}

fn decode_transport(protocol: IpNumber, data: &[u8], ipv6: bool, summary: &mut PacketSummary) {
    use etherparse::err::tcp::HeaderSliceError;
    match protocol {
        IpNumber::TCP => match TcpHeaderSlice::from_slice(data) {
            Ok(tcp) => {
                summary.transport = Transport::Tcp {
                    src_port: tcp.source_port(),
                    dst_port: tcp.destination_port(),
                    // Byte 13 holds CWR ECE URG ACK PSH RST SYN FIN.
                    flags: tcp.slice()[13],
                };
            }
            Err(e) => summary.issue = slice_issue(matches!(e, HeaderSliceError::Len(_))),
        },
        IpNumber::UDP => match UdpHeaderSlice::from_slice(data) {
            Ok(udp) => {
                summary.transport = Transport::Udp {
                    src_port: udp.source_port(),
                    dst_port: udp.destination_port(),
                }
            }
            Err(_) => summary.issue = DecodeIssue::Truncated,
        },
        IpNumber::ICMP if !ipv6 => icmp(data, false, summary),
        IpNumber::IPV6_ICMP if ipv6 => icmp(data, true, summary),
        _ => {}
    }
}

/// ICMP counts when its 8-byte header was captured; its first byte is the type.
#[inline]
fn icmp(data: &[u8], v6: bool, summary: &mut PacketSummary) {
    if data.len() >= 8 {
        summary.transport = Transport::Icmp {
            icmp_type: data[0],
            v6,
        };
    } else {
        summary.issue = DecodeIssue::Truncated;
    }
}
