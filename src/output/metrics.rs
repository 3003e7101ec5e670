//! Prometheus metrics (`docs/metrics.md`) and the HTTP endpoint that serves them.
//!
//! - [`Metrics`]: every metric, registered in its own [`Registry`] with the `netanom_` prefix.
//!   Its handles are cheap atomics; share the `Metrics` by `Arc` between the threads.
//!   No metric has an IP address or port label (unbounded cardinality; and addresses belong in
//!   the alert log, not in a TSDB kept for months).
//! - [`WrappingCounter`]: libpcap's `ps_drop`/`ps_ifdrop` are u32 and wrap; this turns
//!   successive readings into a monotonic u64.
//! - [`Health`]: a heartbeat the scorer beats per window; `/healthz` is 503 once it is stale.
//! - [`MetricsServer`]: `/metrics`, `/healthz` and 404 over HTTP/1.1 on tokio + hyper, stopped
//!   by a [`tokio::sync::watch`] signal.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{
    exponential_buckets, Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::window::Omega;
use crate::window::Window;

/// Prefix of every metric name (without its `_`).
pub const PREFIX: &str = "netanom";

/// Content type of the text exposition format.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Most connections served at once; more are closed at accept (a scraper needs one).
const MAX_CONNECTIONS: usize = 64;
/// A client must send its request headers within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Wrapping counters.

/// Turns successive readings of a u32 counter that wraps (libpcap's `ps_drop`, `ps_ifdrop`)
/// into a monotonic u64 total.
///
/// A reading below the previous one is taken as one wrap (`2^32 − last + new`). A counter that
/// restarted from 0 (a new capture handle) looks the same: call [`WrappingCounter::reset`] when
/// the handle is reopened. Readings must come often enough that the counter cannot move by
/// 2^32 between two of them (at 1 Mpps of drops that is over an hour; read every few seconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WrappingCounter {
    last: u32,
    total: u64,
}

impl WrappingCounter {
    /// A counter whose source starts at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a new reading; returns how much the counter advanced since the previous one.
    pub fn update(&mut self, reading: u32) -> u64 {
        let delta = u64::from(reading.wrapping_sub(self.last));
        self.last = reading;
        self.total += delta;
        delta
    }

    /// The source restarted from 0 (a new capture handle); the total is kept.
    pub fn reset(&mut self) {
        self.last = 0;
    }

    /// Sum of all increments.
    pub fn total(&self) -> u64 {
        self.total
    }
}

// ---------------------------------------------------------------------------------------------
// The metrics.

/// Every netanom metric. Names are given without the `netanom_` prefix, which the registry adds.
pub struct Metrics {
    registry: Registry,
    /// Last anomaly score (`netanom_anomaly_score`).
    pub anomaly_score: Gauge,
    /// Distribution of scores (`netanom_window_score`).
    pub window_score: Histogram,
    /// Threshold in force (`netanom_threshold`).
    pub threshold: Gauge,
    pub windows_total: IntCounter,
    pub windows_dropped_total: IntCounter,
    pub windows_scored_total: IntCounter,
    pub alert_windows_total: IntCounter,
    pub incidents_total: IntCounter,
    pub incidents_suppressed_total: IntCounter,
    pub incident_active: IntGauge,
    pub alert_write_errors_total: IntCounter,
    pub packets_total: IntCounter,
    pub bytes_total: IntCounter,
    pub decode_errors_truncated: IntCounter,
    pub decode_errors_malformed: IntCounter,
    pub late_packets_total: IntCounter,
    pub time_jumps_total: IntCounter,
    pub pcap_kernel_drops_total: IntCounter,
    pub pcap_interface_drops_total: IntCounter,
    pub scoring_seconds: Histogram,
    pub last_window_end_timestamp_seconds: Gauge,
    model_info: IntGaugeVec,
    pcap_drops: Mutex<(WrappingCounter, WrappingCounter)>,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::with_opts(Opts::new(name, help)).expect("valid counter");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Gauge {
    let g = Gauge::with_opts(Opts::new(name, help)).expect("valid gauge");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid histogram");
    registry
        .register(Box::new(h.clone()))
        .expect("unique metric");
    h
}

impl Metrics {
    /// Registers every metric; `netanom_build_info{version}` is set to this crate's version.
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some(PREFIX.into()), None).expect("valid prefix");
        let r = &registry;
        let decode_errors = IntCounterVec::new(
            Opts::new("decode_errors_total", "Packets whose headers could not be decoded, by kind: truncated (cut by snaplen or short) or malformed."),
            &["kind"],
        )
        .expect("valid counter vec");
        registry
            .register(Box::new(decode_errors.clone()))
            .expect("unique metric");
        let model_info = IntGaugeVec::new(
            Opts::new(
                "model_info",
                "The model in use (value 1): its id and window length in seconds.",
            ),
            &["model_id", "omega_seconds"],
        )
        .expect("valid gauge vec");
        registry
            .register(Box::new(model_info.clone()))
            .expect("unique metric");
        let build_info = IntGaugeVec::new(
            Opts::new("build_info", "netanom build (value 1)."),
            &["version"],
        )
        .expect("valid gauge vec");
        registry
            .register(Box::new(build_info.clone()))
            .expect("unique metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        Metrics {
            anomaly_score: gauge(r, "anomaly_score", "Anomaly score of the last scored window (sum of squared reconstruction errors over 3 windows x 53 features)."),
            // 1e-3 .. 1e6, two buckets per decade: normal scores are well below 1, floods reach 1e5+.
            window_score: histogram(
                r,
                "window_score",
                "Distribution of window anomaly scores.",
                exponential_buckets(1e-3, 10f64.sqrt(), 19).expect("valid buckets"),
            ),
            threshold: gauge(r, "threshold", "Anomaly score threshold in force; a window scoring above it is alerting."),
            windows_total: counter(r, "windows_total", "Windows closed by the aggregator."),
            windows_dropped_total: counter(
                r,
                "windows_dropped_total",
                "Windows dropped unscored because the scorer was behind (its queue was full).",
            ),
            windows_scored_total: counter(r, "windows_scored_total", "Windows that received an anomaly score (not the first two after a start or a break)."),
            alert_windows_total: counter(r, "alert_windows_total", "Scored windows whose score was above the threshold."),
            incidents_total: counter(r, "incidents_total", "Incidents reported (incident_start events)."),
            incidents_suppressed_total: counter(r, "incidents_suppressed_total", "Incidents that ended before reaching alerts.min_windows alerting windows (not reported)."),
            incident_active: {
                let g = IntGauge::with_opts(Opts::new("incident_active", "1 while a reported incident is open, else 0.")).expect("valid gauge");
                registry.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            alert_write_errors_total: counter(
                r,
                "alert_write_errors_total",
                "Alert events that could not be written to the alert log (disk full, permissions).",
            ),
            packets_total: counter(r, "packets_total", "Packets captured (or read from capture files)."),
            bytes_total: counter(r, "bytes_total", "Bytes of captured packets, as on the wire (not the captured length)."),
            decode_errors_truncated: decode_errors.with_label_values(&["truncated"]),
            decode_errors_malformed: decode_errors.with_label_values(&["malformed"]),
            late_packets_total: counter(r, "late_packets_total", "Packets stamped earlier than the open window (counted in it)."),
            time_jumps_total: counter(r, "time_jumps_total", "Jumps in packet time longer than window.max_gap_windows that were collapsed."),
            pcap_kernel_drops_total: counter(r, "pcap_kernel_drops_total", "Packets dropped by the kernel because the capture buffer was full (libpcap ps_drop)."),
            pcap_interface_drops_total: counter(r, "pcap_interface_drops_total", "Packets dropped by the network interface or its driver (libpcap ps_ifdrop)."),
            // 10 µs .. ~1.3 s, doubling.
            scoring_seconds: histogram(
                r,
                "scoring_seconds",
                "Time to score one window (normalisation and model).",
                exponential_buckets(1e-5, 2.0, 18).expect("valid buckets"),
            ),
            last_window_end_timestamp_seconds: gauge(r, "last_window_end_timestamp_seconds", "End of the last closed window, Unix seconds (capture time)."),
            model_info,
            pcap_drops: Mutex::new((WrappingCounter::new(), WrappingCounter::new())),
            registry,
        }
    }

    /// The registry to serve.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Sets `netanom_model_info{model_id, omega_seconds} 1` (replacing a previous model) and
    /// the threshold.
    pub fn set_model(&self, model_id: &str, omega: Omega, threshold: f64) {
        self.model_info.reset();
        self.model_info
            .with_label_values(&[model_id, &omega.to_string()])
            .set(1);
        self.threshold.set(threshold);
    }

    /// Counts a closed window (before scoring): windows, late packets, time jumps, last end.
    pub fn record_window(&self, w: &Window) {
        self.windows_total.inc();
        self.late_packets_total.inc_by(w.late_packets);
        if w.after_time_jump {
            self.time_jumps_total.inc();
        }
        self.last_window_end_timestamp_seconds
            .set(w.end_ns as f64 / 1e9);
    }

    /// A closed window was dropped before scoring (the scorer's queue was full).
    pub fn record_window_dropped(&self) {
        self.windows_dropped_total.inc();
    }

    /// An alert event could not be written to the alert log.
    pub fn record_alert_write_error(&self) {
        self.alert_write_errors_total.inc();
    }

    /// Incidents that ended unreported (below `alerts.min_windows`); feed it
    /// `IncidentTracker::take_suppressed()` after each `observe`/`flush`.
    pub fn record_suppressed(&self, n: u64) {
        self.incidents_suppressed_total.inc_by(n);
    }

    /// Records a window's score.
    pub fn record_score(&self, score: f64, threshold: f64, scoring: Duration) {
        self.windows_scored_total.inc();
        self.anomaly_score.set(score);
        self.threshold.set(threshold);
        if score.is_finite() {
            self.window_score.observe(score);
        }
        if score > threshold {
            self.alert_windows_total.inc();
        }
        self.scoring_seconds.observe(scoring.as_secs_f64());
    }

    /// Reflects the incident state machine: counts a reported start, sets the active gauge.
    pub fn record_incident(&self, started: bool, active: bool) {
        if started {
            self.incidents_total.inc();
        }
        self.incident_active.set(i64::from(active));
    }

    /// Adds captured packets and their wire bytes (call per batch, not per packet).
    pub fn add_packets(&self, packets: u64, bytes: u64) {
        self.packets_total.inc_by(packets);
        self.bytes_total.inc_by(bytes);
    }

    /// Adds decode errors by kind.
    pub fn add_decode_errors(&self, truncated: u64, malformed: u64) {
        self.decode_errors_truncated.inc_by(truncated);
        self.decode_errors_malformed.inc_by(malformed);
    }

    /// Feeds a `pcap_stats` reading (`ps_drop`, `ps_ifdrop`, both u32 and wrapping).
    pub fn record_pcap_stats(&self, ps_drop: u32, ps_ifdrop: u32) {
        let mut d = self.pcap_drops.lock().unwrap_or_else(|e| e.into_inner());
        self.pcap_kernel_drops_total.inc_by(d.0.update(ps_drop));
        self.pcap_interface_drops_total
            .inc_by(d.1.update(ps_ifdrop));
    }

    /// The capture handle was reopened: its counters restart from 0.
    pub fn reset_pcap_stats(&self) {
        let mut d = self.pcap_drops.lock().unwrap_or_else(|e| e.into_inner());
        d.0.reset();
        d.1.reset();
    }

    /// The exposition text of every metric.
    pub fn encode(&self) -> String {
        encode(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The text exposition of a registry.
pub fn encode(registry: &Registry) -> String {
    let mut buf = Vec::with_capacity(8192);
    // Encoding only fails on an invalid metric family, which registration already refused.
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut buf) {
        tracing::warn!("encoding metrics: {e}");
    }
    String::from_utf8(buf).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Health.

/// The pipeline's heartbeat: the scorer calls [`Health::beat`] for every window it handles;
/// `/healthz` fails once no beat came for `stale_after`, or after [`Health::fail`].
#[derive(Clone)]
pub struct Health {
    inner: Arc<HealthInner>,
}

struct HealthInner {
    base: Instant,
    /// Milliseconds from `base` to the last beat (the creation counts as one).
    last_beat_ms: AtomicU64,
    stale_after: Duration,
    failed: Mutex<Option<String>>,
}

impl Health {
    /// A heartbeat, fresh now, that goes stale after `stale_after` without a beat.
    pub fn new(stale_after: Duration) -> Health {
        Health {
            inner: Arc::new(HealthInner {
                base: Instant::now(),
                last_beat_ms: AtomicU64::new(0),
                stale_after,
                failed: Mutex::new(None),
            }),
        }
    }

    /// The pipeline is alive.
    pub fn beat(&self) {
        let ms = self.inner.base.elapsed().as_millis() as u64;
        self.inner.last_beat_ms.store(ms, Ordering::Relaxed);
    }

    /// Marks the pipeline failed for good (a thread died); `/healthz` reports `reason`.
    pub fn fail(&self, reason: impl Into<String>) {
        *self.inner.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.into());
    }

    /// Time since the last beat.
    pub fn since_last_beat(&self) -> Duration {
        let now = self.inner.base.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.inner.last_beat_ms.load(Ordering::Relaxed)))
    }

    /// `Ok` while alive, else why not. Also what a systemd watchdog thread should check before
    /// each `WATCHDOG=1`.
    pub fn check(&self) -> Result<(), String> {
        if let Some(reason) = self
            .inner
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            return Err(format!("pipeline failed: {reason}"));
        }
        let since = self.since_last_beat();
        if since > self.inner.stale_after {
            return Err(format!(
                "stale: no window scored for {} s (limit {} s)",
                since.as_secs(),
                self.inner.stale_after.as_secs()
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The HTTP server.

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("metrics address {addr} is in use: set metrics.listen or --metrics-listen")]
    AddrInUse { addr: SocketAddr },
    #[error("metrics address {addr} is not an address of this host: set metrics.listen or --metrics-listen")]
    AddrNotAvailable { addr: SocketAddr },
    #[error("metrics address {addr}: permission denied (ports below 1024 need CAP_NET_BIND_SERVICE): set metrics.listen or --metrics-listen")]
    PermissionDenied { addr: SocketAddr },
    #[error("metrics address {addr}: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// A bound (not yet serving) metrics endpoint. Binding is separate so that the daemon can fail
/// at startup, before it tells systemd it is ready.
pub struct MetricsServer {
    listener: std::net::TcpListener,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Binds `listen` (no runtime needed).
    pub fn bind(listen: SocketAddr) -> Result<MetricsServer, ServeError> {
        let listener = std::net::TcpListener::bind(listen).map_err(|e| match e.kind() {
            io::ErrorKind::AddrInUse => ServeError::AddrInUse { addr: listen },
            io::ErrorKind::AddrNotAvailable => ServeError::AddrNotAvailable { addr: listen },
            io::ErrorKind::PermissionDenied => ServeError::PermissionDenied { addr: listen },
            _ => ServeError::Io {
                addr: listen,
                source: e,
            },
        })?;
        let addr = listener.local_addr().map_err(|e| ServeError::Io {
            addr: listen,
            source: e,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| ServeError::Io { addr, source: e })?;
        Ok(MetricsServer { listener, addr })
    }

    /// The bound address (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` becomes `true` (or its sender is dropped); must run inside a
    /// tokio runtime. Open connections are closed at shutdown.
    pub async fn run(
        self,
        registry: Registry,
        health: Health,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), ServeError> {
        let addr = self.addr;
        let listener = tokio::net::TcpListener::from_std(self.listener)
            .map_err(|e| ServeError::Io { addr, source: e })?;
        let registry = Arc::new(registry);
        let mut conns = JoinSet::new();
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        tracing::info!(%addr, "serving /metrics and /healthz");
        loop {
            if *shutdown.borrow_and_update() {
                break;
            }
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(x) => x,
                        Err(e) => {
                            // EMFILE and friends: do not spin.
                            tracing::warn!(%addr, "metrics accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    while conns.try_join_next().is_some() {}
                    if conns.len() >= MAX_CONNECTIONS {
                        tracing::debug!(%peer, "metrics: too many connections, closing");
                        continue;
                    }
                    let registry = Arc::clone(&registry);
                    let health = health.clone();
                    let conn = http.serve_connection(
                        TokioIo::new(stream),
                        hyper::service::service_fn(move |req| {
                            let resp = respond(&req, &registry, &health);
                            async move { Ok::<_, Infallible>(resp) }
                        }),
                    );
                    conns.spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(%peer, "metrics connection: {e}");
                        }
                    });
                }
            }
        }
        conns.abort_all();
        while conns.join_next().await.is_some() {}
        tracing::info!(%addr, "metrics server stopped");
        Ok(())
    }

    /// Runs the server on its own thread (`metrics-http`) with a single-threaded tokio
    /// runtime; [`RunningServer::stop`] ends it.
    pub fn spawn(self, registry: Registry, health: Health) -> io::Result<RunningServer> {
        let addr = self.addr;
        let (stop, rx) = watch::channel(false);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("metrics-http".into())
            .spawn(move || runtime.block_on(self.run(registry, health, rx)))?;
        Ok(RunningServer { addr, stop, thread })
    }
}

/// A server running on its own thread.
pub struct RunningServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: std::thread::JoinHandle<Result<(), ServeError>>,
}

impl RunningServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes open connections and waits for the thread.
    pub fn stop(self) -> Result<(), ServeError> {
        // An error means the server already ended; join tells how.
        let _ = self.stop.send(true);
        match self.thread.join() {
            Ok(result) => result,
            Err(_) => Err(ServeError::Io {
                addr: self.addr,
                source: io::Error::other("metrics server thread panicked"),
            }),
        }
    }
}

/// Binds `listen` and serves until `shutdown` (inside a tokio runtime).
pub async fn serve(
    listen: SocketAddr,
    registry: Registry,
    health: Health,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    MetricsServer::bind(listen)?
        .run(registry, health, shutdown)
        .await
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn respond(req: &Request<Incoming>, registry: &Registry, health: &Health) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path != "/metrics" && path != "/healthz" {
        return text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics or /healthz\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    // HEAD: hyper sends the headers (with Content-Length) and leaves the body out.
    if path == "/metrics" {
        let mut r = text(StatusCode::OK, encode(registry));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_TEXT));
        r
    } else {
        match health.check() {
            Ok(()) => text(StatusCode::OK, "ok\n"),
            Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    #[test]
    fn wrapping_counter_across_the_wrap() {
        let mut c = WrappingCounter::new();
        assert_eq!(
            c.update(10),
            10,
            "first reading counts from 0 (the handle's start)"
        );
        assert_eq!(c.update(10), 0);
        assert_eq!(c.update(u32::MAX - 5), u64::from(u32::MAX) - 15);
        // wraps: MAX-5 → 4 is 10 increments
        assert_eq!(c.update(4), 10);
        assert_eq!(c.total(), u64::from(u32::MAX) - 5 + 10);
        assert_eq!(c.update(u32::MAX), u64::from(u32::MAX) - 4);
        assert_eq!(c.update(0), 1);
        assert_eq!(c.total(), 2 * (u64::from(u32::MAX) + 1));
        // many wraps keep the total monotonic past u32
        let mut c = WrappingCounter::new();
        let mut reading = 0u32;
        let mut expect = 0u64;
        for _ in 0..1000 {
            reading = reading.wrapping_add(3_000_000_000);
            expect += 3_000_000_000;
            c.update(reading);
            assert_eq!(c.total(), expect);
        }
        // a reset (new capture handle) does not count the restart as a wrap
        let mut c = WrappingCounter::new();
        c.update(1000);
        c.reset();
        assert_eq!(c.update(5), 5);
        assert_eq!(c.total(), 1005);
    }

    fn sample_window() -> Window {
        Window {
            start_ns: 1_795_914_120_000_000_000,
            end_ns: 1_795_914_150_000_000_000,
            features: [0.0; 53],
            talkers: Default::default(),
            distinct_estimated: false,
            late_packets: 3,
            after_time_jump: true,
        }
    }

    #[test]
    fn exposition_names_and_format() {
        let m = Metrics::new();
        m.set_model("m-1", Omega::from_micros(30_000_000).unwrap(), 2.5);
        m.set_model("m-2", Omega::from_micros(500_000).unwrap(), 3.5); // replaces m-1
        m.record_window(&sample_window());
        m.record_score(7.0, 3.5, Duration::from_micros(250));
        m.record_score(0.01, 3.5, Duration::from_micros(300));
        m.record_incident(true, true);
        m.add_packets(10, 1500);
        m.add_decode_errors(2, 1);
        m.record_pcap_stats(u32::MAX, 1);
        m.record_pcap_stats(9, 2);
        m.record_window_dropped();
        m.record_alert_write_error();
        m.record_suppressed(2);
        let text = m.encode();
        for (line, why) in [
            ("# TYPE netanom_anomaly_score gauge", ""),
            ("netanom_anomaly_score 0.01", ""),
            ("# TYPE netanom_window_score histogram", ""),
            ("netanom_window_score_count 2", ""),
            ("netanom_window_score_bucket{le=\"0.001\"} 0", ""),
            ("netanom_window_score_bucket{le=\"+Inf\"} 2", ""),
            ("netanom_threshold 3.5", ""),
            ("# TYPE netanom_windows_total counter", ""),
            ("netanom_windows_total 1", ""),
            ("netanom_windows_scored_total 2", ""),
            ("netanom_alert_windows_total 1", ""),
            ("netanom_incidents_total 1", ""),
            ("netanom_incidents_suppressed_total 2", ""),
            ("netanom_windows_dropped_total 1", ""),
            ("netanom_alert_write_errors_total 1", ""),
            ("netanom_incident_active 1", ""),
            ("netanom_packets_total 10", ""),
            ("netanom_bytes_total 1500", ""),
            ("netanom_decode_errors_total{kind=\"truncated\"} 2", ""),
            ("netanom_decode_errors_total{kind=\"malformed\"} 1", ""),
            ("netanom_late_packets_total 3", ""),
            ("netanom_time_jumps_total 1", ""),
            (
                "netanom_pcap_kernel_drops_total 4294967305",
                "u32::MAX then a wrap to 9",
            ),
            ("netanom_pcap_interface_drops_total 2", ""),
            ("# TYPE netanom_scoring_seconds histogram", ""),
            ("netanom_scoring_seconds_count 2", ""),
            (
                "netanom_model_info{model_id=\"m-2\",omega_seconds=\"0.5\"} 1",
                "",
            ),
            ("netanom_last_window_end_timestamp_seconds 1795914150", ""),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing line {line:?} {why}\n{text}"
            );
        }
        assert!(
            !text.contains("model_id=\"m-1\""),
            "old model label set removed"
        );
        assert!(
            text.contains(&format!(
                "netanom_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        // every sample is netanom_-prefixed and no label carries addresses or ports
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(l.starts_with("netanom_"), "{l}");
            for bad in ["ip=", "addr", "src", "dst", "port="] {
                assert!(!l.contains(bad), "label {bad} in {l}");
            }
        }
        // counters end in _total, per Prometheus naming
        for l in text
            .lines()
            .filter(|l| l.starts_with("# TYPE") && l.ends_with(" counter"))
        {
            assert!(l.split(' ').nth(2).unwrap().ends_with("_total"), "{l}");
        }
    }

    fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let (head, body) = resp.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_ascii_lowercase(), body.to_string())
    }

    #[test]
    fn http_metrics_healthz_404_and_shutdown() {
        let m = Metrics::new();
        m.windows_total.inc_by(42);
        let health = Health::new(Duration::from_secs(1));
        let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        let running = server.spawn(m.registry().clone(), health.clone()).unwrap();
        assert_eq!(running.local_addr(), addr);

        let (status, head, body) = get(addr, "/metrics");
        assert_eq!(status, 200);
        assert!(
            head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
            "{head}"
        );
        assert!(
            body.lines().any(|l| l == "netanom_windows_total 42"),
            "{body}"
        );

        health.beat();
        let (status, _, body) = get(addr, "/healthz");
        assert_eq!((status, body.as_str()), (200, "ok\n"));

        std::thread::sleep(Duration::from_millis(1300));
        let (status, _, body) = get(addr, "/healthz");
        assert_eq!(status, 503);
        assert!(body.starts_with("stale: no window scored for"), "{body}");
        health.beat();
        assert_eq!(get(addr, "/healthz").0, 200);
        health.fail("capture thread exited: interface eth1 went away");
        let (status, _, body) = get(addr, "/healthz");
        assert_eq!(status, 503);
        assert!(body.contains("interface eth1 went away"), "{body}");

        assert_eq!(get(addr, "/").0, 404);
        assert_eq!(get(addr, "/metricsx").0, 404);

        // POST is refused
        let mut s = TcpStream::connect(addr).unwrap();
        write!(
            s,
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");

        // an idle keep-alive connection does not hold up shutdown
        let _idle = TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        running.stop().unwrap();
        assert!(
            TcpStream::connect(addr).is_err(),
            "listener closed after shutdown"
        );
    }

    #[test]
    fn address_in_use_is_a_clear_error() {
        let first = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr();
        let e = MetricsServer::bind(addr).err().expect("second bind fails");
        assert!(matches!(e, ServeError::AddrInUse { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!("metrics address {addr} is in use: set metrics.listen or --metrics-listen")
        );
    }

    #[test]
    fn async_serve_stops_on_signal() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (tx, rx) = watch::channel(false);
            let task = tokio::spawn(serve(
                "127.0.0.1:0".parse().unwrap(),
                Registry::new(),
                Health::new(Duration::from_secs(1)),
                rx,
            ));
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send(true).unwrap();
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        });
    }
}
