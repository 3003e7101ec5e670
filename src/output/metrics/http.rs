//! The HTTP/1.1 server of `/metrics` and `/healthz` (tokio + hyper): binding, the accept loop
//! with its per-peer and total connection limits, the request, idle and write timeouts, and the
//! responses.
//!
//! A scraper must get through whatever other clients do, so:
//! - each source address may hold [`ConnectionLimits::per_peer`] connections and all together
//!   [`ConnectionLimits::total`]; a connection over either limit is closed (reset) as soon as
//!   it is accepted, so one noisy peer cannot use up the slots of another;
//! - a request must arrive whole within [`ConnectionLimits::request_timeout`] of the
//!   connection opening or of the previous response (both endpoints read no request body, so
//!   the head is the request); the same timeout closes an idle kept-alive connection;
//! - a response the client does not read for [`ConnectionLimits::write_timeout`] closes the
//!   connection;
//! - a connection older than [`ConnectionLimits::max_age`] is closed after its current
//!   response.
//!
//! Refused connections and timeouts are counted in `netanom_metrics_connections_refused_total`
//! and `netanom_metrics_connections_timed_out_total`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::health::Health;
use super::registry::encode;

/// Content type of the text exposition format.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What keeps a few clients from locking the others out of the endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections one source address may hold open at once.
    pub per_peer: usize,
    /// Connections open at once, all peers together.
    pub total: usize,
    /// From the connection opening, or the end of the previous response, until the request
    /// is complete; also how long a kept-alive connection may stay idle.
    pub request_timeout: Duration,
    /// How long a response may make no progress because the client does not read it.
    pub write_timeout: Duration,
    /// Age after which a connection is closed once its current response is written.
    pub max_age: Duration,
}

impl Default for ConnectionLimits {
    /// 8 per peer, 512 in all, 5 s to send a request, 10 s of a stalled response, 5 minutes.
    fn default() -> Self {
        ConnectionLimits {
            per_peer: 8,
            total: 512,
            request_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            max_age: Duration::from_secs(300),
        }
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another process listens on the address.
    #[error("metrics address {addr} is in use: set metrics.listen or --metrics-listen")]
    AddrInUse { addr: SocketAddr },
    /// The address is not one of this host's.
    #[error("metrics address {addr} is not an address of this host: set metrics.listen or --metrics-listen")]
    AddrNotAvailable { addr: SocketAddr },
    /// Binding needs a privilege (a port below 1024).
    #[error("metrics address {addr}: permission denied (ports below 1024 need CAP_NET_BIND_SERVICE): set metrics.listen or --metrics-listen")]
    PermissionDenied { addr: SocketAddr },
    /// Any other I/O error.
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
    /// The bound socket, non-blocking.
    listener: std::net::TcpListener,
    /// Its address.
    addr: SocketAddr,
    /// Connection limits and timeouts.
    limits: ConnectionLimits,
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
        Ok(MetricsServer {
            listener,
            addr,
            limits: ConnectionLimits::default(),
        })
    }

    /// The same server with other limits (tests use short timeouts).
    pub fn with_limits(mut self, limits: ConnectionLimits) -> MetricsServer {
        self.limits = limits;
        self
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
        let (addr, limits) = (self.addr, self.limits);
        let listener = tokio::net::TcpListener::from_std(self.listener)
            .map_err(|e| ServeError::Io { addr, source: e })?;
        let counters = Arc::new(ConnectionCounters::register(&registry));
        let registry = Arc::new(registry);
        let admission = Admission::new(limits);
        let mut conns = JoinSet::new();
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.request_timeout);
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
                    let slot = match admission.admit(peer.ip()) {
                        Ok(slot) => slot,
                        Err(refused) => {
                            counters.refused(refused).inc();
                            tracing::debug!(%peer, "metrics: {}, closing", refused.as_str());
                            // A reset, not a FIN: no TIME_WAIT left behind here.
                            let _ = stream.set_zero_linger();
                            drop(stream);
                            continue;
                        }
                    };
                    let state = Arc::new(ConnState::default());
                    let io = TokioIo::new(Guarded {
                        inner: stream,
                        write_timeout: limits.write_timeout,
                        stalled: None,
                        state: Arc::clone(&state),
                    });
                    let registry = Arc::clone(&registry);
                    let health = health.clone();
                    let conn = http.serve_connection(
                        io,
                        hyper::service::service_fn(move |req| {
                            let resp = respond(&req, &registry, &health);
                            async move { Ok::<_, Infallible>(resp) }
                        }),
                    );
                    let counters = Arc::clone(&counters);
                    conns.spawn(async move {
                        let _slot = slot;
                        let mut conn = std::pin::pin!(conn);
                        let result = tokio::select! {
                            r = conn.as_mut() => r,
                            () = tokio::time::sleep(limits.max_age) => {
                                // Old enough: finish the current response, then close; a
                                // client that stalls even that is dropped.
                                conn.as_mut().graceful_shutdown();
                                let grace = limits.request_timeout + limits.write_timeout;
                                tokio::time::timeout(grace, conn.as_mut()).await.unwrap_or(Ok(()))
                            }
                        };
                        match classify(&result, &state) {
                            Some(phase) => counters.timed_out(phase).inc(),
                            None => {
                                if let Err(e) = result {
                                    tracing::debug!(%peer, "metrics connection: {e}");
                                }
                            }
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

/// Why a connection was refused at accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refused {
    /// Its source address already holds [`ConnectionLimits::per_peer`] connections.
    PeerLimit,
    /// [`ConnectionLimits::total`] connections are open.
    TotalLimit,
}

impl Refused {
    /// The `reason` label.
    fn as_str(self) -> &'static str {
        match self {
            Refused::PeerLimit => "peer_limit",
            Refused::TotalLimit => "total_limit",
        }
    }
}

/// Where a connection timed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Nothing of a request arrived within the request timeout (a new or kept-alive
    /// connection left idle).
    Idle,
    /// Part of a request arrived, not all of it, within the request timeout.
    Request,
    /// The client did not read the response for the write timeout.
    Response,
}

impl Phase {
    /// The `phase` label.
    fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Request => "request",
            Phase::Response => "response",
        }
    }
}

/// The server's own counters, registered in the registry it serves.
struct ConnectionCounters {
    /// `metrics_connections_refused_total{reason}`.
    refused: IntCounterVec,
    /// `metrics_connections_timed_out_total{phase}`.
    timed_out: IntCounterVec,
}

impl ConnectionCounters {
    /// Creates both counters (every label at 0) and registers them in `registry`; if that
    /// fails (registered twice), they still count, unexposed.
    fn register(registry: &Registry) -> ConnectionCounters {
        let refused = IntCounterVec::new(
            Opts::new(
                "metrics_connections_refused_total",
                "Connections to the metrics endpoint closed at accept: reason = peer_limit (the source address held its maximum) or total_limit.",
            ),
            &["reason"],
        )
        .expect("valid counter vec");
        let timed_out = IntCounterVec::new(
            Opts::new(
                "metrics_connections_timed_out_total",
                "Metrics endpoint connections closed by a timeout: phase = idle (no request), request (incomplete request) or response (not read by the client).",
            ),
            &["phase"],
        )
        .expect("valid counter vec");
        for r in [Refused::PeerLimit, Refused::TotalLimit] {
            refused.with_label_values(&[r.as_str()]);
        }
        for p in [Phase::Idle, Phase::Request, Phase::Response] {
            timed_out.with_label_values(&[p.as_str()]);
        }
        for c in [&refused, &timed_out] {
            if let Err(e) = registry.register(Box::new(c.clone())) {
                tracing::debug!("metrics server counters not exposed: {e}");
            }
        }
        ConnectionCounters { refused, timed_out }
    }

    /// The counter of connections refused for `why`.
    fn refused(&self, why: Refused) -> IntCounter {
        self.refused.with_label_values(&[why.as_str()])
    }

    /// The counter of connections timed out in `phase`.
    fn timed_out(&self, phase: Phase) -> IntCounter {
        self.timed_out.with_label_values(&[phase.as_str()])
    }
}

/// Open connections per source address and in all.
struct Admission {
    /// The limits to enforce.
    limits: ConnectionLimits,
    /// Counts, shared with the [`Slot`]s that give them back.
    open: Arc<Mutex<OpenConnections>>,
}

/// The counts behind an [`Admission`].
#[derive(Default)]
struct OpenConnections {
    /// Per source address (IPv4-mapped IPv6 folded into IPv4); no entry at 0.
    per_peer: HashMap<IpAddr, usize>,
    /// All together.
    total: usize,
}

impl Admission {
    /// No connection open yet.
    fn new(limits: ConnectionLimits) -> Admission {
        Admission {
            limits,
            open: Arc::new(Mutex::new(OpenConnections::default())),
        }
    }

    /// A slot for a new connection from `ip`, or why there is none.
    fn admit(&self, ip: IpAddr) -> Result<Slot, Refused> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.per_peer.get(&ip).copied().unwrap_or(0) >= self.limits.per_peer {
            return Err(Refused::PeerLimit);
        }
        if open.total >= self.limits.total {
            return Err(Refused::TotalLimit);
        }
        *open.per_peer.entry(ip).or_insert(0) += 1;
        open.total += 1;
        Ok(Slot {
            ip,
            open: Arc::clone(&self.open),
        })
    }
}

/// One admitted connection; dropping it (the connection ended, or its task was aborted)
/// gives the slot back.
struct Slot {
    /// The peer it counts against.
    ip: IpAddr,
    /// The counts to decrement.
    open: Arc<Mutex<OpenConnections>>,
}

impl Drop for Slot {
    /// Gives the slot back.
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_peer.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_peer.remove(&self.ip);
            }
        }
    }
}

/// What the connection's stream saw, for telling its timeouts apart.
#[derive(Default)]
struct ConnState {
    /// Bytes of a request arrived since the last response bytes were written.
    mid_request: AtomicBool,
    /// A write made no progress for the write timeout.
    write_timed_out: AtomicBool,
}

/// The accepted stream, whose writes fail with `TimedOut` once they make no progress for
/// `write_timeout`, and which notes what it saw in a [`ConnState`].
struct Guarded {
    /// The socket.
    inner: tokio::net::TcpStream,
    /// Longest time a write may stay blocked.
    write_timeout: Duration,
    /// Started when a write blocked; cleared by any progress.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Shared with the connection's task.
    state: Arc<ConnState>,
}

impl Guarded {
    /// After a write call: clears the stall timer on progress; on `Pending`, polls the timer
    /// and turns its expiry into a `TimedOut` error.
    fn on_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timeout = self.write_timeout;
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        self.state.write_timed_out.store(true, Ordering::Relaxed);
                        Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client did not read the response",
                        )))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    /// Bytes of a response went out: the request before it is complete (hyper also flushes
    /// with nothing to write, which says nothing).
    fn note_response(&self, polled: &Poll<io::Result<usize>>) {
        if matches!(polled, Poll::Ready(Ok(n)) if *n > 0) {
            self.state.mid_request.store(false, Ordering::Relaxed);
        }
    }
}

impl AsyncRead for Guarded {
    /// Reads from the socket; notes that a request has begun.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.state.mid_request.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Guarded {
    /// Writes to the socket, under the write timeout.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.note_response(&polled);
        this.on_write(cx, polled)
    }

    /// Writes several buffers, under the write timeout.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.note_response(&polled);
        this.on_write(cx, polled)
    }

    /// The socket takes vectored writes.
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    /// Flushes, under the write timeout.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.on_write(cx, polled)
    }

    /// Shuts the write side down, under the write timeout.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.on_write(cx, polled)
    }
}

/// Which timeout ended a connection that ended in `result`, if one did.
fn classify(result: &Result<(), hyper::Error>, state: &ConnState) -> Option<Phase> {
    let Err(e) = result else { return None };
    if state.write_timed_out.load(Ordering::Relaxed) {
        Some(Phase::Response)
    } else if e.is_timeout() {
        // hyper's header timeout: a request was due.
        Some(if state.mid_request.load(Ordering::Relaxed) {
            Phase::Request
        } else {
            Phase::Idle
        })
    } else {
        None
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

/// A plain-text response with `Cache-Control: no-store`.
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

/// Answers one request: `/metrics`, `/healthz`, 405 for other methods, 404 for other paths.
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
    use super::super::registry::Metrics;
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    /// `GET path` on a fresh connection: status, lower-cased head, body.
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

    /// As [`get`], an error when the server closes the connection instead of answering.
    fn try_get(addr: SocketAddr, path: &str) -> io::Result<(u16, String)> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )?;
        let mut resp = String::new();
        s.read_to_string(&mut resp)?;
        let (head, body) = resp
            .split_once("\r\n\r\n")
            .ok_or_else(|| io::Error::other("no response"))?;
        let status = head.split(' ').nth(1).and_then(|c| c.parse().ok());
        Ok((
            status.ok_or_else(|| io::Error::other("no status"))?,
            body.to_string(),
        ))
    }

    /// A TCP connection to `to` from `local` (any 127/8 address works on loopback), with the
    /// receive buffer set to `rcvbuf` bytes before connecting when given.
    fn connect_from(local: std::net::Ipv4Addr, to: SocketAddr, rcvbuf: Option<i32>) -> TcpStream {
        use std::os::fd::FromRawFd;
        let SocketAddr::V4(to) = to else {
            panic!("IPv4 only")
        };
        let sin = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: plain socket calls on a descriptor we own; the addresses outlive the calls.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
            let stream = TcpStream::from_raw_fd(fd);
            if let Some(n) = rcvbuf {
                let rc = libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    (&n as *const i32).cast(),
                    std::mem::size_of::<i32>() as libc::socklen_t,
                );
                assert_eq!(rc, 0, "SO_RCVBUF: {}", io::Error::last_os_error());
            }
            let from = sin(local, 0);
            let rc = libc::bind(fd, (&from as *const libc::sockaddr_in).cast(), len);
            assert_eq!(rc, 0, "bind {local}: {}", io::Error::last_os_error());
            let dst = sin(*to.ip(), to.port());
            let rc = libc::connect(fd, (&dst as *const libc::sockaddr_in).cast(), len);
            assert_eq!(rc, 0, "connect {to}: {}", io::Error::last_os_error());
            stream
        }
    }

    /// How long after `since` the server closed `s` (EOF or reset), waiting until `limit`
    /// after `since`; `None` if it is still open then.
    fn closed_within(
        s: &mut TcpStream,
        since: std::time::Instant,
        limit: Duration,
    ) -> Option<Duration> {
        let mut buf = [0u8; 4096];
        loop {
            let left = limit.checked_sub(since.elapsed())?;
            s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match s.read(&mut buf) {
                Ok(0) => return Some(since.elapsed()),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Some(since.elapsed())
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// The value of `name{label}` in an exposition text.
    fn sample(body: &str, name: &str, label: &str) -> f64 {
        let want = format!("{name}{{{label}}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&want))
            .unwrap_or_else(|| panic!("no {want} in\n{body}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Limits small enough to test: 2 per peer, 5 in all, short timeouts.
    fn small() -> ConnectionLimits {
        ConnectionLimits {
            per_peer: 2,
            total: 5,
            request_timeout: Duration::from_millis(400),
            write_timeout: Duration::from_millis(400),
            max_age: Duration::from_secs(300),
        }
    }

    #[test]
    fn a_peer_at_its_limit_does_not_lock_out_another() {
        let limits = ConnectionLimits {
            request_timeout: Duration::from_secs(30),
            ..small()
        };
        let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap())
            .unwrap()
            .with_limits(limits);
        let addr = server.local_addr();
        let running = server
            .spawn(Registry::new(), Health::new(Duration::from_secs(60)))
            .unwrap();
        let ip = |d: u8| std::net::Ipv4Addr::new(127, 0, 0, d);
        // 127.0.0.2 holds its two; its third is closed at once.
        let mut held: Vec<TcpStream> = (0..2).map(|_| connect_from(ip(2), addr, None)).collect();
        let mut third = connect_from(ip(2), addr, None);
        let t = std::time::Instant::now();
        assert!(
            closed_within(&mut third, t, Duration::from_secs(5)).is_some(),
            "a connection over the peer's limit stays open"
        );
        // The held ones are still open.
        for s in &mut held {
            let t = std::time::Instant::now();
            assert_eq!(closed_within(s, t, Duration::from_millis(100)), None);
        }
        // Another peer gets in.
        let (status, _, body) = get(addr, "/metrics");
        assert_eq!(status, 200);
        assert_eq!(
            sample(
                &body,
                "metrics_connections_refused_total",
                "reason=\"peer_limit\""
            ),
            1.0
        );
        // Fill the total: 2 held + 2 from .3 + 1 from .4 = 5; a sixth from .5 is refused.
        held.extend((0..2).map(|_| connect_from(ip(3), addr, None)));
        held.push(connect_from(ip(4), addr, None));
        let mut sixth = connect_from(ip(5), addr, None);
        let t = std::time::Instant::now();
        assert!(closed_within(&mut sixth, t, Duration::from_secs(5)).is_some());
        // Closing connections gives their slots back.
        drop(held);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let body = loop {
            match try_get(addr, "/metrics") {
                Ok((200, body)) => break body,
                other => assert!(
                    std::time::Instant::now() < deadline,
                    "slots not given back: {other:?}"
                ),
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            sample(
                &body,
                "metrics_connections_refused_total",
                "reason=\"total_limit\""
            ) >= 1.0
        );
        running.stop().unwrap();
    }

    #[test]
    fn idle_half_sent_and_unread_connections_time_out() {
        // A body of a few MB, so that a client that does not read it stalls the writes.
        let registry = Registry::new();
        let big = prometheus::IntGaugeVec::new(Opts::new("big", "padding"), &["l"]).unwrap();
        registry.register(Box::new(big.clone())).unwrap();
        for i in 0..40_000 {
            big.with_label_values(&[&format!("{i:0>60}")]).set(1);
        }
        let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap())
            .unwrap()
            .with_limits(small());
        let addr = server.local_addr();
        let running = server
            .spawn(registry, Health::new(Duration::from_secs(60)))
            .unwrap();
        let lo = std::net::Ipv4Addr::new(127, 0, 0, 2);

        // Idle: closed after the request timeout (400 ms).
        let t = std::time::Instant::now();
        let mut idle = connect_from(lo, addr, None);
        let closed = closed_within(&mut idle, t, Duration::from_secs(5)).expect("idle closed");
        assert!(closed >= Duration::from_millis(350), "{closed:?}");

        // Half-sent: the headers never end; closed after the request timeout although bytes
        // keep coming.
        let t = std::time::Instant::now();
        let mut half = connect_from(lo, addr, None);
        half.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let _ = half.write_all(b"X-Slow: 1\r\n");
        let closed = closed_within(&mut half, t, Duration::from_secs(5)).expect("half-sent closed");
        assert!(closed >= Duration::from_millis(350), "{closed:?}");

        // Unread: a request, then no reading, with a tiny receive window.
        let unread = connect_from(lo, addr, Some(4096));
        (&unread)
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let body = loop {
            let (_, _, body) = get(addr, "/metrics");
            let n = sample(
                &body,
                "metrics_connections_timed_out_total",
                "phase=\"response\"",
            );
            if n >= 1.0 {
                break body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "an unread response did not time out"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        for (phase, n) in [("response", 1.0), ("idle", 1.0), ("request", 1.0)] {
            assert_eq!(
                sample(
                    &body,
                    "metrics_connections_timed_out_total",
                    &format!("phase=\"{phase}\"")
                ),
                n,
                "{phase}"
            );
        }
        drop(unread);
        running.stop().unwrap();
    }

    #[test]
    fn a_kept_alive_connection_serves_requests_then_closes_when_idle() {
        let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap())
            .unwrap()
            .with_limits(small());
        let addr = server.local_addr();
        let running = server
            .spawn(Registry::new(), Health::new(Duration::from_secs(60)))
            .unwrap();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for _ in 0..3 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).unwrap();
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            assert!(text.ends_with("ok\n"), "{text}");
        }
        let t = std::time::Instant::now();
        let closed = closed_within(&mut s, t, Duration::from_secs(5)).expect("idle closed");
        assert!(closed >= Duration::from_millis(350), "{closed:?}");
        running.stop().unwrap();
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
