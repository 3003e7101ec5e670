//! netanom against the real Prometheus: Debian's `prometheus` and `promtool` (installed by
//! scripts/setup.sh; the tests fail with a message saying so when they are missing).
//!
//! - `promtool test rules config/prometheus-rules.test.yml` passes, and that file has a
//!   firing and a non-firing case for every alert of config/prometheus-rules.yml;
//! - `promtool check rules` accepts the rules file;
//! - live, on `lo` (root: the daemon captures there; hping3 sends a SYN flood to 127.0.0.1):
//!   `promtool check metrics` finds no problem in the daemon's `/metrics`; a real Prometheus
//!   (free port on 127.0.0.1, temporary data directory, 1 s scrape and rule evaluation, the
//!   repository's rules loaded) scrapes the daemon, and its HTTP API returns the score,
//!   threshold, model and packet series with the daemon's values; every rule evaluates
//!   without error; after a SYN flood the NetanomIncidentActive alert has fired in
//!   Prometheus, and the alerts about a broken daemon have not.
//!
//! Traffic goes to 127.0.0.1 only. Every wait has a deadline.

mod common;
#[path = "support/daemon.rs"]
mod daemon_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use daemon_support::*;
use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `name` on PATH or in /usr/bin, /usr/sbin, /sbin; fails naming the Debian package.
fn tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "tests/prometheus.rs needs {name}: install Debian's {package} package \
                 (scripts/setup.sh does)"
            )
        })
}

fn promtool() -> PathBuf {
    tool("promtool", "prometheus")
}

/// Runs `cmd` with `stdin` as its standard input; (success, stdout + stderr).
fn run(mut cmd: Command, stdin: &str) -> (bool, String) {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The alert names of the rules file, in order.
fn alert_names() -> Vec<String> {
    let text = std::fs::read_to_string(repo("config/prometheus-rules.yml")).expect("rules");
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("- alert:"))
        .map(|n| n.trim().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// promtool on the rules
// ---------------------------------------------------------------------------------------------

#[test]
fn promtool_checks_the_rules_file() {
    let mut cmd = Command::new(promtool());
    cmd.args(["check", "rules"])
        .arg(repo("config/prometheus-rules.yml"));
    let (ok, out) = run(cmd, "");
    let n = alert_names().len();
    assert!(ok, "promtool check rules failed:\n{out}");
    assert!(
        out.contains(&format!("SUCCESS: {n} rules found")),
        "promtool found another number of rules than the {n} alerts:\n{out}"
    );
}

#[test]
fn promtool_unit_tests_of_the_alert_rules_pass() {
    let mut cmd = Command::new(promtool());
    cmd.args(["test", "rules"])
        .arg(repo("config/prometheus-rules.test.yml"));
    let (ok, out) = run(cmd, "");
    assert!(ok, "promtool test rules failed:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
    assert!(!out.contains("FAILED"), "{out}");
}

/// For every `alertname:` of a promtool test file, whether each of its cases expects the
/// alert firing (`exp_alerts:` followed by items) or not (`exp_alerts: []`).
fn test_cases(yaml: &str) -> BTreeMap<String, (usize, usize)> {
    let mut cases: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut current: Option<String> = None;
    for l in yaml.lines() {
        let t = l.trim();
        if t.starts_with('#') {
            continue;
        }
        let t = t.strip_prefix("- ").unwrap_or(t);
        if let Some(name) = t.strip_prefix("alertname:") {
            current = Some(name.trim().to_string());
        } else if let Some(rest) = t.strip_prefix("exp_alerts:") {
            let name = current.take().expect("exp_alerts without alertname");
            let e = cases.entry(name).or_default();
            if rest.trim() == "[]" {
                e.1 += 1;
            } else {
                assert!(rest.trim().is_empty(), "exp_alerts: {rest}");
                e.0 += 1;
            }
        }
    }
    cases
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_unit_test() {
    let yaml = std::fs::read_to_string(repo("config/prometheus-rules.test.yml")).expect("tests");
    assert!(
        yaml.lines().any(|l| l.trim() == "- prometheus-rules.yml"),
        "the test file does not load the rules file next to it"
    );
    let cases = test_cases(&yaml);
    let alerts = alert_names();
    assert!(alerts.len() >= 15, "{alerts:?}");
    for a in [
        "NetanomIncidentActive",
        "NetanomKernelDrops",
        "NetanomTargetDown",
        "NetanomNoWindows",
        "NetanomModelNotLoaded",
        "NetanomTrafficDrift",
    ] {
        assert!(alerts.iter().any(|x| x == a), "no alert {a} in the rules");
    }
    for a in &alerts {
        let (firing, quiet) = cases.get(a).copied().unwrap_or_default();
        assert!(
            firing >= 1 && quiet >= 1,
            "{a}: {firing} firing and {quiet} non-firing cases in prometheus-rules.test.yml"
        );
    }
    let known: BTreeSet<&String> = alerts.iter().collect();
    for name in cases.keys() {
        assert!(
            known.contains(name),
            "test of an alert that is not in the rules: {name}"
        );
    }
}

#[test]
fn the_case_reader_counts_firing_and_quiet_cases() {
    let yaml = "tests:\n  - alert_rule_test:\n      - eval_time: 1m\n        alertname: A\n        exp_alerts: []\n      # alertname: B\n      - eval_time: 2m\n        alertname: A\n        exp_alerts:\n          - exp_labels: {}\n      - alertname: C\n        exp_alerts: []\n";
    let c = test_cases(yaml);
    assert_eq!(c.get("A"), Some(&(1, 1)));
    assert_eq!(c.get("C"), Some(&(0, 1)));
    assert_eq!(c.get("B"), None);
}

// ---------------------------------------------------------------------------------------------
// A real Prometheus scraping the daemon on lo
// ---------------------------------------------------------------------------------------------

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Percent-encodes a query-string value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus server on 127.0.0.1, killed when dropped.
struct Prometheus {
    _child: ChildGuard,
    addr: SocketAddr,
    log: PathBuf,
}

impl Prometheus {
    /// Starts `prometheus` in `dir` (config and data there) scraping `target` every second
    /// as job "netanom" and evaluating `rules` every second.
    fn start(dir: &Path, port: u16, target: SocketAddr, rules: &Path) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {rules}\n\
                 scrape_configs:\n  - job_name: netanom\n    static_configs:\n      - targets: [\"{target}\"]\n",
                rules = rules.display()
            ),
        )
        .expect("write prometheus.yml");
        let log = dir.join("prometheus.log");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = Command::new(tool("prometheus", "prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--storage.tsdb.retention.time=1h")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("prometheus.log"))
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            _child: ChildGuard(Some(child)),
            addr,
            log,
        };
        let ready = wait(Duration::from_secs(60), || {
            http_get(addr, "/-/ready").is_ok_and(|r| r.status == 200)
        });
        assert!(ready, "Prometheus not ready within 60 s:\n{}", p.log_text());
        p
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET an API path; its `data` (panics unless `status` is "success").
    fn api(&self, path: &str) -> Value {
        let r = http_get(self.addr, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(r.status, 200, "GET {path}: {r:?}");
        let v: Value = serde_json::from_str(&r.body).expect("API answer is JSON");
        assert_eq!(v["status"], "success", "GET {path}: {v}");
        v["data"].clone()
    }

    /// An instant query: (labels, value) of each series in the vector.
    fn query(&self, q: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let data = self.api(&format!("/api/v1/query?query={}", urlencode(q)));
        assert_eq!(data["resultType"], "vector", "{q}: {data}");
        data["result"]
            .as_array()
            .expect("result")
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .expect("metric")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect();
                let v = s["value"][1].as_str().expect("value string");
                let v = match v {
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    "NaN" => f64::NAN,
                    v => v.parse().expect("value"),
                };
                (labels, v)
            })
            .collect()
    }

    /// The single value of a query that must return one series.
    fn one(&self, q: &str) -> Option<f64> {
        let r = self.query(q);
        assert!(r.len() <= 1, "{q}: {r:?}");
        r.first().map(|(_, v)| *v)
    }
}

/// Polls `cond` every 100 ms until it holds (true) or `timeout` passes (false).
fn wait(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "tests/prometheus.rs needs root: the daemon captures on `lo` (CAP_NET_RAW) and \
             hping3 needs a raw socket. Run it as root (CI does), e.g. \
             `sudo -E cargo test --test prometheus`."
        );
    }
}

/// `n` UDP datagrams of 64 bytes from 127.0.0.1 to a socket on 127.0.0.1 that reads them.
fn udp_traffic(n: usize) {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 128];
    for i in 0..n {
        tx.send_to(&[i as u8; 64], rx.local_addr().unwrap())
            .unwrap();
        rx.recv_from(&mut buf).expect("datagram on lo");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_real_prometheus_scrapes_the_daemon_on_lo() {
    require_root();
    let hping3 = tool("hping3", "hping3");
    let promtool = promtool();
    let tmp = tempfile::tempdir().unwrap();
    let model = default_model_copy(tmp.path());
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(model.join("model.json")).expect("model.json"),
    )
    .expect("model.json is JSON");
    let model_id = meta["model_id"].as_str().expect("model_id").to_string();
    let threshold = meta["threshold"]["value"].as_f64().expect("threshold");

    let metrics_port = free_port();
    let prom_port = free_port();
    assert_ne!(metrics_port, prom_port);
    // Our own scrapes and API calls are not traffic to score.
    let filter = format!("not tcp port {metrics_port} and not tcp port {prom_port}");
    let args = os_args([
        "--interface".into(),
        "lo".into(),
        "--model".into(),
        model.clone().into_os_string(),
        "--alert-log".into(),
        tmp.path().join("alerts.jsonl").into_os_string(),
        "--metrics-listen".into(),
        format!("127.0.0.1:{metrics_port}").into(),
    ]);
    let d = Daemon::start(&args, &[("NETANOM_CAPTURE__BPF_FILTER", &filter)]);
    assert!(
        d.wait_for_message("netanom running", 0, Duration::from_secs(60))
            .is_some(),
        "the daemon did not start:\n{}",
        d.log_text()
    );
    let target = d.metrics_addr(Duration::from_secs(5));
    assert_eq!(target.port(), metrics_port);
    let (scored, _) = scrape_until(target, Duration::from_secs(30), |e| {
        e.get("netanom_windows_scored_total").unwrap_or(0.0) >= 1.0
    });
    assert!(scored, "no window scored on idle lo:\n{}", d.log_text());

    // promtool's lint of the exposition: no problem at all.
    let body = http_get(target, "/metrics").expect("GET /metrics").body;
    let mut cmd = Command::new(&promtool);
    cmd.args(["check", "metrics"]);
    let (ok, out) = run(cmd, &body);
    assert!(
        ok && out.trim().is_empty(),
        "promtool check metrics reports problems:\n{out}"
    );

    let prom = Prometheus::start(
        tmp.path(),
        prom_port,
        target,
        &repo("config/prometheus-rules.yml"),
    );
    let instance = target.to_string();

    // The target is up and scraped without error.
    let up = wait(Duration::from_secs(30), || {
        prom.one("up{job=\"netanom\"}") == Some(1.0)
    });
    assert!(up, "up{{job=\"netanom\"}} never 1:\n{}", prom.log_text());
    let targets = prom.api("/api/v1/targets?state=active");
    let active = targets["activeTargets"].as_array().expect("activeTargets");
    assert_eq!(active.len(), 1, "{targets}");
    assert_eq!(active[0]["health"], "up", "{targets}");
    assert_eq!(active[0]["lastError"], "", "{targets}");
    assert_eq!(active[0]["labels"]["instance"], instance.as_str());

    // Packets: send some, Prometheus sees the counter reach them.
    let p0 = prom
        .one("netanom_packets_total{job=\"netanom\"}")
        .unwrap_or(0.0);
    udp_traffic(200);
    let mut seen = 0.0;
    let counted = wait(Duration::from_secs(20), || {
        seen = prom
            .one("netanom_packets_total{job=\"netanom\"}")
            .unwrap_or(0.0);
        seen - p0 >= 200.0
    });
    assert!(
        counted,
        "Prometheus' netanom_packets_total went from {p0} to {seen} for 200 datagrams"
    );
    let direct = scrape(target);
    assert!(
        seen <= direct.value("netanom_packets_total"),
        "Prometheus has more packets ({seen}) than the daemon"
    );
    let bytes = prom
        .one("netanom_bytes_total{job=\"netanom\"}")
        .expect("bytes");
    assert!(bytes >= 200.0 * 64.0, "netanom_bytes_total {bytes}");

    // Score, threshold, model: the daemon's values, labelled with job and instance.
    let score = prom.query("netanom_anomaly_score");
    assert_eq!(score.len(), 1, "{score:?}");
    assert_eq!(score[0].0.get("job").map(String::as_str), Some("netanom"));
    assert_eq!(
        score[0].0.get("instance").map(String::as_str),
        Some(instance.as_str())
    );
    assert!(
        score[0].1.is_finite() && score[0].1 >= 0.0,
        "score {}",
        score[0].1
    );
    let t = prom.one("netanom_threshold").expect("threshold series");
    assert!(
        (t - threshold).abs() <= 1e-12 * threshold,
        "netanom_threshold {t}, model.json {threshold}"
    );
    assert_eq!(prom.one("netanom_model_loaded"), Some(1.0));
    let info = prom.query("netanom_model_info");
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(
        info[0].0.get("model_id").map(String::as_str),
        Some(model_id.as_str())
    );
    assert_eq!(
        info[0].0.get("omega_seconds").map(String::as_str),
        Some("0.5")
    );
    let windows = prom
        .one("increase(netanom_windows_scored_total[30s])")
        .expect("windows scored");
    assert!(windows > 0.0, "no window scored in Prometheus' view");
    let drift = prom
        .one("netanom_features_outside_training_range")
        .expect("drift series");
    assert!((0.0..=53.0).contains(&drift), "drift {drift}");

    // Every rule loaded and evaluated without error.
    let alerts = alert_names();
    let evaluated = wait(Duration::from_secs(20), || {
        let rules = prom.api("/api/v1/rules");
        let all: Vec<Value> = rules["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        all.len() == alerts.len()
            && all.iter().all(|r| {
                r["health"] == "ok"
                    && r["lastEvaluation"]
                        .as_str()
                        .is_some_and(|t| !t.starts_with("0001"))
            })
    });
    let rules = prom.api("/api/v1/rules");
    assert!(
        evaluated,
        "not every rule evaluated cleanly: {rules:#}\n{}",
        prom.log_text()
    );
    let names: BTreeSet<String> = rules["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(names, alerts.iter().cloned().collect::<BTreeSet<_>>());

    // A SYN flood on 127.0.0.1: the score goes over the threshold in Prometheus and the
    // NetanomIncidentActive alert fires there.
    let mut flood = ChildGuard(Some(
        Command::new(&hping3)
            .args([
                "-q",
                "-S",
                "-p",
                "80",
                "-i",
                "u100",
                "-c",
                "20000",
                "127.0.0.1",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start hping3"),
    ));
    let flood_done = wait(Duration::from_secs(60), || {
        flood
            .0
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("try_wait").is_some())
    });
    assert!(flood_done, "hping3 still running after 60 s");
    let fired = wait(Duration::from_secs(30), || {
        prom.one(
            "max_over_time(ALERTS{alertname=\"NetanomIncidentActive\",alertstate=\"firing\"}[5m])",
        ) == Some(1.0)
    });
    let peak = prom
        .one("max_over_time(netanom_anomaly_score[5m])")
        .unwrap_or(f64::NAN);
    assert!(
        fired,
        "NetanomIncidentActive never fired in Prometheus (peak score {peak}, threshold \
         {threshold}):\n{}\n{}",
        d.log_text(),
        prom.log_text()
    );
    assert!(
        peak > threshold,
        "peak score {peak} in Prometheus, threshold {threshold}"
    );
    let firing = prom.query(
        "max_over_time(ALERTS{alertname=\"NetanomIncidentActive\",alertstate=\"firing\"}[5m])",
    );
    assert_eq!(
        firing[0].0.get("instance").map(String::as_str),
        Some(instance.as_str())
    );
    assert_eq!(
        firing[0].0.get("severity").map(String::as_str),
        Some("warning")
    );
    let incidents = wait(Duration::from_secs(10), || {
        prom.one("netanom_incidents_total{job=\"netanom\"}")
            .is_some_and(|v| v >= 1.0)
    });
    assert!(
        incidents,
        "netanom_incidents_total never reached 1 in Prometheus"
    );
    assert_eq!(
        prom.one("max_over_time(netanom_incident_active[5m])"),
        Some(1.0),
        "netanom_incident_active was never 1 in Prometheus"
    );

    // The alerts about a broken daemon stay quiet (not even pending).
    let active = prom.api("/api/v1/alerts");
    for a in active["alerts"].as_array().expect("alerts") {
        let name = a["labels"]["alertname"].as_str().unwrap_or("");
        assert!(
            ![
                "NetanomTargetDown",
                "NetanomAbsent",
                "NetanomModelNotLoaded",
                "NetanomNoWindows",
                "NetanomNoScores",
                "NetanomWindowsDropped",
                "NetanomAlertLogWriteErrors",
            ]
            .contains(&name),
            "{name} is {} against a healthy daemon: {a}",
            a["state"]
        );
    }
    drop(prom);
    drop(d);
}
