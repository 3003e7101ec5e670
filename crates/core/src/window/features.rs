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
}
