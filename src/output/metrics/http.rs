//! The HTTP/1.1 server of `/metrics` and `/healthz` (tokio + hyper): binding, the accept loop
//! with its connection limit and header timeout, and the responses.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::Registry;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::health::Health;
use super::registry::encode;

/// Content type of the text exposition format.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Most connections served at once; more are closed at accept (a scraper needs one).
const MAX_CONNECTIONS: usize = 64;
/// A client must send its request headers within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

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
