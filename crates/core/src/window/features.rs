//! The 53 window features of the contract (`docs/features.md`): names, order, arithmetic.
//!
//! [`Feature`] is the one list: its discriminants are the column indices of a
//! [`FeatureVector`], [`FEATURE_NAMES`] is generated from it, and the aggregator writes each
//! feature through it (no bare offsets).

/// Number of features per window.
pub const NUM_FEATURES: usize = 53;

/// Ports whose source and destination packet counts are features 32–53, in contract order.
pub const WELL_KNOWN_PORTS: [u16; 11] = [110, 22, 53, 443, 80, 25, 465, 587, 995, 993, 143];

/// One window's feature vector, in contract order (index it with [`Feature::index`]).
pub type FeatureVector = [f64; NUM_FEATURES];

/// Defines [`Feature`] (variant = contract name) and [`FEATURE_NAMES`] from one list.
macro_rules! features {
    ($($variant:ident => $name:literal,)*) => {
        /// One of the 53 features, in contract order (Table 1 of the paper read row by row).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u8)]
        pub enum Feature {
            $(#[doc = $name] $variant,)*
        }

        impl Feature {
            /// Every feature in contract order.
            pub const ALL: [Feature; NUM_FEATURES] = [$(Feature::$variant,)*];
        }

        /// Feature names in contract order (the CSV columns and `model.json`'s list).
        pub const FEATURE_NAMES: [&str; NUM_FEATURES] = [$($name,)*];
    };
}

features! {
    PktSizeMean => "pkt_size_mean",
    PktCount => "pkt_count",
    PktSizeVar => "pkt_size_var",
    TtlMean => "ttl_mean",
    TtlVar => "ttl_var",
    DstIpDistinct => "dst_ip_distinct",
    SrcIpDistinct => "src_ip_distinct",
    SrcPortDistinct => "src_port_distinct",
    DstPortDistinct => "dst_port_distinct",
    SynCount => "syn_count",
    FinCount => "fin_count",
    PshCount => "psh_count",
    RstCount => "rst_count",
    UrgCount => "urg_count",
    AckCount => "ack_count",
    FinAckCount => "fin_ack_count",
    RstAckCount => "rst_ack_count",
    SynAckCount => "syn_ack_count",
    PshAckCount => "psh_ack_count",
    RstRatio => "rst_ratio",
    SynRatio => "syn_ratio",
    PshRatio => "psh_ratio",
    UrgRatio => "urg_ratio",
    FinRatio => "fin_ratio",
    AckRatio => "ack_ratio",
    RstAckRatio => "rst_ack_ratio",
    PshAckRatio => "psh_ack_ratio",
    SynAckRatio => "syn_ack_ratio",
    FinAckRatio => "fin_ack_ratio",
    IcmpCount => "icmp_count",
    UdpCount => "udp_count",
    SrcPort110Count => "src_port_110_count",
    SrcPort22Count => "src_port_22_count",
    SrcPort53Count => "src_port_53_count",
    SrcPort443Count => "src_port_443_count",
    SrcPort80Count => "src_port_80_count",
    SrcPort25Count => "src_port_25_count",
    SrcPort465Count => "src_port_465_count",
    SrcPort587Count => "src_port_587_count",
    SrcPort995Count => "src_port_995_count",
    SrcPort993Count => "src_port_993_count",
    SrcPort143Count => "src_port_143_count",
    DstPort110Count => "dst_port_110_count",
    DstPort22Count => "dst_port_22_count",
    DstPort53Count => "dst_port_53_count",
    DstPort443Count => "dst_port_443_count",
    DstPort80Count => "dst_port_80_count",
    DstPort25Count => "dst_port_25_count",
    DstPort465Count => "dst_port_465_count",
    DstPort587Count => "dst_port_587_count",
    DstPort995Count => "dst_port_995_count",
    DstPort993Count => "dst_port_993_count",
    DstPort143Count => "dst_port_143_count",
}

impl Feature {
    /// TCP flag counts, features 10–19, in contract order.
    pub const FLAG_COUNTS: [Feature; 10] = [
        Feature::SynCount,
        Feature::FinCount,
        Feature::PshCount,
        Feature::RstCount,
        Feature::UrgCount,
        Feature::AckCount,
        Feature::FinAckCount,
        Feature::RstAckCount,
        Feature::SynAckCount,
        Feature::PshAckCount,
    ];

    /// TCP flag ratios, features 20–29, in contract order (note: not the counts' order).
    pub const FLAG_RATIOS: [Feature; 10] = [
        Feature::RstRatio,
        Feature::SynRatio,
        Feature::PshRatio,
        Feature::UrgRatio,
        Feature::FinRatio,
        Feature::AckRatio,
        Feature::RstAckRatio,
        Feature::PshAckRatio,
        Feature::SynAckRatio,
        Feature::FinAckRatio,
    ];

    /// Column index in a [`FeatureVector`].
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The contract name.
    pub const fn name(self) -> &'static str {
        FEATURE_NAMES[self as usize]
    }

    /// The feature of a name, `None` for an unknown name.
    pub fn from_name(name: &str) -> Option<Feature> {
        FEATURE_NAMES
            .iter()
            .position(|&n| n == name)
            .map(|i| Feature::ALL[i])
    }

    /// `src_port_<p>_count` for the `i`-th port of [`WELL_KNOWN_PORTS`].
    #[inline]
    pub const fn src_port(i: usize) -> Feature {
        Feature::ALL[Feature::SrcPort110Count as usize + i]
    }

    /// `dst_port_<p>_count` for the `i`-th port of [`WELL_KNOWN_PORTS`].
    #[inline]
    pub const fn dst_port(i: usize) -> Feature {
        Feature::ALL[Feature::DstPort110Count as usize + i]
    }
}

/// Which end of a packet a contributor count is keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// The packet's source address.
    SrcAddr,
    /// The packet's destination address.
    DstAddr,
}

/// What a family's count says about the host it credits: the end of the packet it is keyed
/// by, and which side of an attack that host is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sent the packets (keyed by source address). Attacker side.
    Source,
    /// Received the replies (SYN+ACK, RST+ACK, a bare RST from a lower port, ICMP echo reply,
    /// unreachable, time exceeded; keyed by destination address): the host whose probes
    /// provoked them, a scanner. Attacker side.
    ReplyTarget,
    /// Received packets from sources new in the window (keyed by destination address): the
    /// victim of a spoofed flood. Victim side.
    FloodTarget,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Source, Role::ReplyTarget, Role::FloodTarget];

    /// The end of the packet that is credited.
    #[inline(always)]
    pub const fn key(self) -> KeyKind {
        match self {
            Role::Source => KeyKind::SrcAddr,
            Role::ReplyTarget | Role::FloodTarget => KeyKind::DstAddr,
        }
    }

    /// True for the roles of a host that causes what it is credited with (the sender, the
    /// prober); false for a victim.
    pub const fn is_attacker_side(self) -> bool {
        !matches!(self, Role::FloodTarget)
    }

    /// The name in the alert log (`source`, `reply_target`, `flood_target`).
    pub const fn name(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::ReplyTarget => "reply_target",
            Role::FloodTarget => "flood_target",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a family's counts count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CountUnit {
    /// Packets of the family sent by (or to) the key.
    Packets,
    /// Values first seen in the window that the key's packets brought (distinct counts).
    NewValues,
}

/// A feature family: the packets that make a group of features, and the key by which the
/// window's heavy hitters of those packets are kept (see `culprits`). [`Feature::families`]
/// maps every feature to the families that explain it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IP packets other than replies, by source (counts, sizes, TTL).
    Packets,
    /// TCP packets with one of the flag combinations of [`Feature::FLAG_COUNTS`]: the index
    /// into that list. SYN+ACK and RST+ACK (replies) by destination: the host whose SYN they
    /// answer. The others by source; SYN, RST and ACK count only packets that are not
    /// replies (a reply is in the SYN+ACK, RST+ACK or bare-RST-reply family instead).
    Flag(u8),
    /// ICMPv4 and ICMPv6 packets other than replies, by source.
    Icmp,
    /// UDP packets, by source.
    Udp,
    /// ICMP replies (echo reply, destination unreachable, time exceeded), by destination: the
    /// host whose packets they answer.
    IcmpReplies,
    /// TCP/UDP packets from the `i`-th port of [`WELL_KNOWN_PORTS`], by source; replies aside.
    SrcPort(u8),
    /// TCP/UDP packets to the `i`-th port of [`WELL_KNOWN_PORTS`], by source; replies aside.
    DstPort(u8),
    /// Destination addresses first seen in the window, by the source that sent to them (a
    /// sweep); replies aside.
    NewDstAddrs,
    /// Source addresses first seen in the window, by the destination they sent to.
    NewSrcAddrs,
    /// TCP/UDP source ports first seen in the window, by source address; replies aside.
    NewSrcPorts,
    /// TCP/UDP destination ports first seen in the window, by source address (a port scan);
    /// replies aside.
    NewDstPorts,
    /// Destination addresses first seen in the window in a reply, by that destination.
    NewDstAddrsInReplies,
    /// Source ports first seen in the window in a reply (a scanned port answering), by the
    /// reply's destination: the host that probed the port.
    NewSrcPortsInReplies,
    /// Destination ports first seen in the window in a reply (a flood's varying source ports
    /// answered), by the reply's destination.
    NewDstPortsInReplies,
    /// IP packets that are replies, by destination: the host they answer (a scanned or
    /// flooded victim's answers count for the scanner, not for the victim).
    PacketsInReplies,
    /// TCP replies that are bare RSTs (no ACK: [`Transport::is_reply`]), by destination: the
    /// host whose ACK probes they answer (an ACK or window scan).
    ///
    /// [`Transport::is_reply`]: crate::decode::Transport::is_reply
    RstReplies,
    /// Replies from the `i`-th port of [`WELL_KNOWN_PORTS`] (a probed service answering), by
    /// destination.
    SrcPortInReplies(u8),
    /// Replies to the `i`-th port of [`WELL_KNOWN_PORTS`] (probes sent from it answered), by
    /// destination.
    DstPortInReplies(u8),
}

/// Number of families (the length of [`Family::ALL`]).
pub const NUM_FAMILIES: usize =
    1 + 10 + 3 + 2 * WELL_KNOWN_PORTS.len() + 7 + 2 + 2 * WELL_KNOWN_PORTS.len();

/// Indices into [`Feature::FLAG_COUNTS`] of the flag combinations that are replies
/// (RST+ACK, SYN+ACK).
const REPLY_FLAGS: [u8; 2] = [7, 8];

/// Indices into [`Feature::FLAG_COUNTS`] of the combinations a reply also has but whose
/// families leave replies out (SYN, RST, ACK).
pub const REPLY_SHARED_FLAGS: [u8; 3] = [0, 3, 5];

impl Family {
    /// Every family, in [`Family::index`] order.
    pub const ALL: [Family; NUM_FAMILIES] = {
        let mut all = [Family::Packets; NUM_FAMILIES];
        let mut i = 0;
        while i < NUM_FAMILIES {
            all[i] = Family::from_index(i);
            i += 1;
        }
        all
    };

    /// First index of the flag families.
    const FLAG_BASE: usize = 1;
    /// First index of the source-port families.
    const SRC_PORT_BASE: usize = Self::FLAG_BASE + 10 + 3;
    /// First index of the destination-port families.
    const DST_PORT_BASE: usize = Self::SRC_PORT_BASE + WELL_KNOWN_PORTS.len();
    /// First index of the distinct-count families.
    const NEW_BASE: usize = Self::DST_PORT_BASE + WELL_KNOWN_PORTS.len();
    /// First index of the reply families added with schema 3's victim fix (packets, bare
    /// RSTs, then the well-known ports in replies).
    const REPLY_BASE: usize = Self::NEW_BASE + 7;
    /// First index of the source-port families of replies.
    const SRC_PORT_REPLY_BASE: usize = Self::REPLY_BASE + 2;
    /// First index of the destination-port families of replies.
    const DST_PORT_REPLY_BASE: usize = Self::SRC_PORT_REPLY_BASE + WELL_KNOWN_PORTS.len();

    /// Dense index, `0..NUM_FAMILIES` (the aggregator's array slot).
    #[inline]
    pub const fn index(self) -> usize {
        match self {
            Family::Packets => 0,
            Family::Flag(i) => Self::FLAG_BASE + i as usize,
            Family::Icmp => Self::FLAG_BASE + 10,
            Family::Udp => Self::FLAG_BASE + 11,
            Family::IcmpReplies => Self::FLAG_BASE + 12,
            Family::SrcPort(i) => Self::SRC_PORT_BASE + i as usize,
            Family::DstPort(i) => Self::DST_PORT_BASE + i as usize,
            Family::NewDstAddrs => Self::NEW_BASE,
            Family::NewSrcAddrs => Self::NEW_BASE + 1,
            Family::NewSrcPorts => Self::NEW_BASE + 2,
            Family::NewDstPorts => Self::NEW_BASE + 3,
            Family::NewDstAddrsInReplies => Self::NEW_BASE + 4,
            Family::NewSrcPortsInReplies => Self::NEW_BASE + 5,
            Family::NewDstPortsInReplies => Self::NEW_BASE + 6,
            Family::PacketsInReplies => Self::REPLY_BASE,
            Family::RstReplies => Self::REPLY_BASE + 1,
            Family::SrcPortInReplies(i) => Self::SRC_PORT_REPLY_BASE + i as usize,
            Family::DstPortInReplies(i) => Self::DST_PORT_REPLY_BASE + i as usize,
        }
    }

    /// The family at a dense index (the inverse of [`Family::index`]); out of range: packets.
    const fn from_index(i: usize) -> Family {
        match i {
            0 => Family::Packets,
            i if i < Self::FLAG_BASE + 10 => Family::Flag((i - Self::FLAG_BASE) as u8),
            i if i == Self::FLAG_BASE + 10 => Family::Icmp,
            i if i == Self::FLAG_BASE + 11 => Family::Udp,
            i if i == Self::FLAG_BASE + 12 => Family::IcmpReplies,
            i if i < Self::DST_PORT_BASE => Family::SrcPort((i - Self::SRC_PORT_BASE) as u8),
            i if i < Self::NEW_BASE => Family::DstPort((i - Self::DST_PORT_BASE) as u8),
            i if i == Self::NEW_BASE => Family::NewDstAddrs,
            i if i == Self::NEW_BASE + 1 => Family::NewSrcAddrs,
            i if i == Self::NEW_BASE + 2 => Family::NewSrcPorts,
            i if i == Self::NEW_BASE + 3 => Family::NewDstPorts,
            i if i == Self::NEW_BASE + 4 => Family::NewDstAddrsInReplies,
            i if i == Self::NEW_BASE + 5 => Family::NewSrcPortsInReplies,
            i if i == Self::NEW_BASE + 6 => Family::NewDstPortsInReplies,
            i if i == Self::REPLY_BASE => Family::PacketsInReplies,
            i if i == Self::REPLY_BASE + 1 => Family::RstReplies,
            i if i >= Self::SRC_PORT_REPLY_BASE && i < Self::DST_PORT_REPLY_BASE => {
                Family::SrcPortInReplies((i - Self::SRC_PORT_REPLY_BASE) as u8)
            }
            i if i >= Self::DST_PORT_REPLY_BASE && i < NUM_FAMILIES => {
                Family::DstPortInReplies((i - Self::DST_PORT_REPLY_BASE) as u8)
            }
            _ => Family::Packets,
        }
    }

    /// Whom its counts credit: the sender, the target of replies, or a flood's victim.
    pub const fn role(self) -> Role {
        match self {
            Family::Flag(i) if i == REPLY_FLAGS[0] || i == REPLY_FLAGS[1] => Role::ReplyTarget,
            Family::IcmpReplies
            | Family::NewDstAddrsInReplies
            | Family::NewSrcPortsInReplies
            | Family::NewDstPortsInReplies
            | Family::PacketsInReplies
            | Family::RstReplies
            | Family::SrcPortInReplies(_)
            | Family::DstPortInReplies(_) => Role::ReplyTarget,
            Family::NewSrcAddrs => Role::FloodTarget,
            _ => Role::Source,
        }
    }

    /// The end of the packet its heavy hitters are kept by.
    pub const fn key_kind(self) -> KeyKind {
        self.role().key()
    }

    /// What its counts count.
    pub const fn unit(self) -> CountUnit {
        match self {
            Family::NewDstAddrs
            | Family::NewSrcAddrs
            | Family::NewSrcPorts
            | Family::NewDstPorts
            | Family::NewDstAddrsInReplies
            | Family::NewSrcPortsInReplies
            | Family::NewDstPortsInReplies => CountUnit::NewValues,
            _ => CountUnit::Packets,
        }
    }
}

/// Most families one feature has.
pub const MAX_FEATURE_FAMILIES: usize = 3;

/// Per feature: its families and how many. A feature whose packets include replies is
/// explained by its own family (the packets that are not replies) and the reply families
/// that hold the rest.
const FEATURE_FAMILIES: [([Family; MAX_FEATURE_FAMILIES], usize); NUM_FEATURES] = {
    let mut t = [([Family::Packets; MAX_FEATURE_FAMILIES], 1); NUM_FEATURES];
    let (syn_ack, rst_ack) = (Family::Flag(8), Family::Flag(7));
    let mut i = 0;
    while i < NUM_FEATURES {
        let f = Feature::ALL[i];
        let p = primary_family(f);
        t[i] = match (f, p) {
            (_, Family::Packets) => ([p, Family::PacketsInReplies, p], 2),
            (_, Family::SrcPort(port)) => ([p, Family::SrcPortInReplies(port), p], 2),
            (_, Family::DstPort(port)) => ([p, Family::DstPortInReplies(port), p], 2),
            (Feature::SynCount | Feature::SynRatio, _) => ([p, syn_ack, p], 2),
            (Feature::RstCount | Feature::RstRatio, _) => ([p, rst_ack, Family::RstReplies], 3),
            (Feature::AckCount | Feature::AckRatio, _) => ([p, rst_ack, syn_ack], 3),
            (Feature::IcmpCount, _) => ([p, Family::IcmpReplies, p], 2),
            (Feature::DstIpDistinct, _) => ([p, Family::NewDstAddrsInReplies, p], 2),
            (Feature::SrcPortDistinct, _) => ([p, Family::NewSrcPortsInReplies, p], 2),
            (Feature::DstPortDistinct, _) => ([p, Family::NewDstPortsInReplies, p], 2),
            _ => ([p, p, p], 1),
        };
        i += 1;
    }
    t
};

/// The family whose packets a feature counts (a ratio: its numerator's; a distinct count:
/// the first sightings of new values), replies aside.
const fn primary_family(f: Feature) -> Family {
    use Feature as F;
    let i = f as usize;
    match f {
        F::PktSizeMean | F::PktCount | F::PktSizeVar | F::TtlMean | F::TtlVar => Family::Packets,
        F::DstIpDistinct => Family::NewDstAddrs,
        F::SrcIpDistinct => Family::NewSrcAddrs,
        F::SrcPortDistinct => Family::NewSrcPorts,
        F::DstPortDistinct => Family::NewDstPorts,
        F::SynCount
        | F::FinCount
        | F::PshCount
        | F::RstCount
        | F::UrgCount
        | F::AckCount
        | F::FinAckCount
        | F::RstAckCount
        | F::SynAckCount
        | F::PshAckCount => Family::Flag((i - F::SynCount as usize) as u8),
        // Ratios list the flags in another order: their numerator's count.
        F::RstRatio => Family::Flag(3),
        F::SynRatio => Family::Flag(0),
        F::PshRatio => Family::Flag(2),
        F::UrgRatio => Family::Flag(4),
        F::FinRatio => Family::Flag(1),
        F::AckRatio => Family::Flag(5),
        F::RstAckRatio => Family::Flag(7),
        F::PshAckRatio => Family::Flag(9),
        F::SynAckRatio => Family::Flag(8),
        F::FinAckRatio => Family::Flag(6),
        F::IcmpCount => Family::Icmp,
        F::UdpCount => Family::Udp,
        _ if i < F::DstPort110Count as usize => {
            Family::SrcPort((i - F::SrcPort110Count as usize) as u8)
        }
        _ => Family::DstPort((i - F::DstPort110Count as usize) as u8),
    }
}

impl Feature {
    /// The families whose heavy hitters explain this feature: its own, and for a feature
    /// that replies also make (the packet counts, sizes and TTLs, SYN, RST and ACK counts and
    /// ratios, `icmp_count`, the well-known port counts, the distinct addresses and ports) the
    /// reply families that hold those. They partition the feature's packets (a SYN+RST+ACK
    /// packet aside). The one mapping of features to families.
    pub fn families(self) -> &'static [Family] {
        let (families, n) = &FEATURE_FAMILIES[self as usize];
        &families[..*n]
    }

    /// The first of [`Self::families`]: the packets the feature counts (a ratio: its
    /// numerator's flag count).
    pub const fn family(self) -> Family {
        FEATURE_FAMILIES[self as usize].0[0]
    }
}

/// A set of features (one bit each).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FeatureSet(u64);

impl FeatureSet {
    /// Adds a feature.
    pub fn insert(&mut self, f: Feature) {
        self.0 |= 1 << f.index();
    }

    /// Whether it holds `f`.
    pub fn contains(self, f: Feature) -> bool {
        self.0 & (1 << f.index()) != 0
    }

    /// Both sets' features.
    pub fn union(self, other: FeatureSet) -> FeatureSet {
        FeatureSet(self.0 | other.0)
    }

    /// True when it holds none.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Its features in contract order.
    pub fn iter(self) -> impl Iterator<Item = Feature> {
        Feature::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

impl FromIterator<Feature> for FeatureSet {
    fn from_iter<I: IntoIterator<Item = Feature>>(iter: I) -> Self {
        let mut s = FeatureSet::default();
        for f in iter {
            s.insert(f);
        }
        s
    }
}

impl std::fmt::Display for Feature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_and_names_agree() {
        for (i, f) in Feature::ALL.iter().enumerate() {
            assert_eq!(f.index(), i);
            assert_eq!(Feature::from_name(f.name()), Some(*f));
        }
        assert_eq!(Feature::from_name("syn_cnt"), None);
        assert_eq!(Feature::SynCount.name(), "syn_count");
        assert_eq!(Feature::DstPort143Count.index(), 52);
    }

    #[test]
    fn port_features_follow_the_port_list() {
        for (i, p) in WELL_KNOWN_PORTS.iter().enumerate() {
            assert_eq!(Feature::src_port(i).name(), format!("src_port_{p}_count"));
            assert_eq!(Feature::dst_port(i).name(), format!("dst_port_{p}_count"));
        }
    }

    #[test]
    fn flag_groups_name_their_flags() {
        for f in Feature::FLAG_COUNTS {
            assert!(f.name().ends_with("_count"), "{f}");
        }
        for f in Feature::FLAG_RATIOS {
            assert!(f.name().ends_with("_ratio"), "{f}");
        }
        assert_eq!(Feature::FLAG_COUNTS[0].index(), 9);
        assert_eq!(Feature::FLAG_RATIOS[0].index(), 19);
    }
    #[test]
    fn every_feature_has_the_family_of_what_it_counts() {
        // Every family index is dense and round-trips.
        for (i, fam) in Family::ALL.iter().enumerate() {
            assert_eq!(fam.index(), i, "{fam:?}");
        }
        // Flag counts: their own family; ratios: the family of their numerator (same name).
        for (i, f) in Feature::FLAG_COUNTS.iter().enumerate() {
            assert_eq!(f.family(), Family::Flag(i as u8), "{f}");
        }
        for r in Feature::FLAG_RATIOS {
            let count = Feature::from_name(&r.name().replace("_ratio", "_count")).unwrap();
            assert_eq!(r.family(), count.family(), "{r}");
        }
        for i in 0..WELL_KNOWN_PORTS.len() {
            assert_eq!(Feature::src_port(i).family(), Family::SrcPort(i as u8));
            assert_eq!(Feature::dst_port(i).family(), Family::DstPort(i as u8));
        }
        let expect = [
            (Feature::PktCount, Family::Packets),
            (Feature::PktSizeVar, Family::Packets),
            (Feature::TtlMean, Family::Packets),
            (Feature::DstIpDistinct, Family::NewDstAddrs),
            (Feature::SrcIpDistinct, Family::NewSrcAddrs),
            (Feature::SrcPortDistinct, Family::NewSrcPorts),
            (Feature::DstPortDistinct, Family::NewDstPorts),
            (Feature::IcmpCount, Family::Icmp),
            (Feature::UdpCount, Family::Udp),
        ];
        for (f, fam) in expect {
            assert_eq!(f.family(), fam, "{f}");
        }
        // Every feature maps to a family, and every family explains some feature.
        let used: std::collections::HashSet<Family> = Feature::ALL
            .iter()
            .flat_map(|f| f.families())
            .copied()
            .collect();
        assert_eq!(used.len(), NUM_FAMILIES);
        assert_eq!(Family::NewSrcAddrs.key_kind(), KeyKind::DstAddr);
        assert_eq!(Family::NewDstPorts.unit(), CountUnit::NewValues);
        assert_eq!(Family::Flag(0).unit(), CountUnit::Packets);
        // Each feature's first family is its own; the rest hold its replies.
        for f in Feature::ALL {
            assert_eq!(f.families()[0], f.family(), "{f}");
            assert_eq!(
                f.family().role(),
                if f == Feature::SrcIpDistinct {
                    Role::FloodTarget
                } else if matches!(
                    f,
                    Feature::RstAckCount
                        | Feature::RstAckRatio
                        | Feature::SynAckCount
                        | Feature::SynAckRatio
                ) {
                    Role::ReplyTarget
                } else {
                    Role::Source
                },
                "{f}"
            );
            for fam in &f.families()[1..] {
                assert_eq!(fam.role(), Role::ReplyTarget, "{f}: {fam:?}");
            }
        }
        assert_eq!(
            Feature::IcmpCount.families(),
            [Family::Icmp, Family::IcmpReplies]
        );
        assert_eq!(
            Feature::SynRatio.families(),
            [Family::Flag(0), Family::Flag(8)]
        );
        assert_eq!(
            Feature::RstCount.families(),
            [Family::Flag(3), Family::Flag(7), Family::RstReplies]
        );
        assert_eq!(
            Feature::PktCount.families(),
            [Family::Packets, Family::PacketsInReplies]
        );
        assert_eq!(
            Feature::TtlVar.families(),
            [Family::Packets, Family::PacketsInReplies]
        );
        assert_eq!(
            Feature::SrcPort80Count.families(),
            [Family::SrcPort(4), Family::SrcPortInReplies(4)]
        );
        assert_eq!(
            Feature::DstPort443Count.families(),
            [Family::DstPort(3), Family::DstPortInReplies(3)]
        );
        assert_eq!(
            Feature::AckCount.families(),
            [Family::Flag(5), Family::Flag(7), Family::Flag(8)]
        );
        assert_eq!(
            Feature::SrcPortDistinct.families(),
            [Family::NewSrcPorts, Family::NewSrcPortsInReplies]
        );
        let multi = Feature::ALL
            .iter()
            .filter(|f| f.families().len() > 1)
            .count();
        // Ten as before, the five packet features and the 22 port counts.
        assert_eq!(multi, 10 + 5 + 22);
    }

    #[test]
    fn replies_credit_their_destination_and_a_flood_target_is_a_victim() {
        let role = |f: Feature| f.family().role();
        for f in [
            Feature::RstAckCount,
            Feature::SynAckCount,
            Feature::RstAckRatio,
            Feature::SynAckRatio,
        ] {
            assert_eq!(role(f), Role::ReplyTarget, "{f}");
            assert_eq!(f.family().key_kind(), KeyKind::DstAddr, "{f}");
        }
        assert_eq!(Family::IcmpReplies.role(), Role::ReplyTarget);
        assert_eq!(role(Feature::SrcIpDistinct), Role::FloodTarget);
        assert!(!Role::FloodTarget.is_attacker_side());
        assert!(Role::ReplyTarget.is_attacker_side() && Role::Source.is_attacker_side());
        // Every other family credits the sender.
        let by_dst: Vec<Family> = Family::ALL
            .into_iter()
            .filter(|f| f.key_kind() == KeyKind::DstAddr)
            .collect();
        // SYN+ACK, RST+ACK, ICMP replies, new sources, three distinct counts in replies,
        // packets and bare RSTs in replies, 22 port counts in replies.
        assert_eq!(by_dst.len(), 7 + 2 + 22, "{by_dst:?}");
        for f in [
            Feature::SynCount,
            Feature::RstCount,
            Feature::AckCount,
            Feature::FinCount,
            Feature::UdpCount,
            Feature::DstPortDistinct,
            Feature::SrcPortDistinct,
            Feature::DstIpDistinct,
            Feature::PktCount,
        ] {
            assert_eq!(role(f), Role::Source, "{f}");
        }
        let set: FeatureSet = [Feature::SynCount, Feature::DstPort143Count]
            .into_iter()
            .collect();
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            [Feature::SynCount, Feature::DstPort143Count]
        );
        assert!(!set.is_empty() && !set.contains(Feature::PktCount));
    }
}
