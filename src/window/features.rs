//! The 53 window features of the contract (`docs/features.md`): names, order, arithmetic.

/// Number of features per window.
pub const NUM_FEATURES: usize = 53;

/// Ports whose source and destination packet counts are features 32–53, in contract order.
pub const WELL_KNOWN_PORTS: [u16; 11] = [110, 22, 53, 443, 80, 25, 465, 587, 995, 993, 143];

/// Feature names in contract order (Table 1 of the paper read row by row).
pub const FEATURE_NAMES: [&str; NUM_FEATURES] = [
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

/// One window's feature vector, in contract order.
pub type FeatureVector = [f64; NUM_FEATURES];
