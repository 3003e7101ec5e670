//! Outputs of the daemon: the alert log (JSON lines), its Suricata EVE twin, and the
//! Prometheus metrics with their HTTP endpoint. None knows about threads; the daemon owns and
//! drives them.

pub mod alerts;
pub mod eve;
pub mod metrics;
