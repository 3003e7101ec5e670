//! Prometheus metrics (`docs/metrics.md`) and the HTTP endpoint that serves them.
//!
//! Layers, lowest first (a lower one never uses a higher one):
//! - `registry`: [`Metrics`], every metric, registered in its own
//!   [`Registry`](prometheus::Registry) with the `netanom_` prefix ([`PREFIX`]).
//!   Its handles are cheap atomics; share the `Metrics` by `Arc` between the threads.
//!   No metric has an IP address or port label (unbounded cardinality; and addresses belong in
//!   the alert log, not in a TSDB kept for months). [`WrappingCounter`]: libpcap's
//!   `ps_drop`/`ps_ifdrop` are u32 and wrap; this turns successive readings into a monotonic
//!   u64. [`encode`]: the text exposition of a registry.
//! - `health`: [`Health`], a heartbeat the scorer beats per window; `/healthz` is 503 once it
//!   is stale. Knows nothing of HTTP.
//! - `http`: [`MetricsServer`] (and [`serve`], [`RunningServer`]): `/metrics`, `/healthz` and
//!   404 over HTTP/1.1 on tokio + hyper, stopped by a [`tokio::sync::watch`] signal; serves a
//!   registry and a health, under [`ConnectionLimits`] (per peer, in all, timeouts) so that a
//!   scraper gets through whatever other clients hold open.

mod health;
mod http;
mod registry;

pub use health::Health;
pub use http::{
    serve, ConnectionLimits, MetricsServer, RunningServer, ServeError, CONTENT_TYPE_TEXT,
};
pub use registry::{encode, Metrics, WrappingCounter, PREFIX};
