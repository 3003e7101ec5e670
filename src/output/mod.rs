//! Outputs of the daemon: the alert log (JSON lines) and the Prometheus metrics with their
//! HTTP endpoint. Neither knows about threads; the daemon owns and drives them.

pub mod alerts;
pub mod metrics;
