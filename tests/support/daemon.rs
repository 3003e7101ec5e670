//! Shared helpers of the daemon tests (`tests/daemon_replay.rs`, `tests/daemon_live.rs`):
//!
//! - synthetic traffic written to pcap files: "normal" LAN traffic (TCP connections, DNS,
//!   an SSH session), quiet loopback traffic, and SYN floods;
//! - training a small model bundle with `netanom train` once per test binary;
//! - running `netanom run` as a child process (killed when the guard drops), reading its JSON
//!   log lines as they come, sending it signals;
//! - a minimal HTTP/1.1 GET client, a Prometheus text-format parser;
//! - the alert log: reading it and checking every event against the documented schema
//!   (docs/alerts.md), written from the documentation, not from the crate's types;
//! - an independent oracle: `netanom score` gives every window's score, and
//!   [`expected_incidents`] applies the documented incident rule (docs/alerts.md) to them.
//!
//! Include with `#[path = "support/daemon.rs"] mod daemon_support;` next to `mod common;`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, flags, linktype, Pcap, FEATURE_NAMES};

/// ω of every model trained here, seconds and nanoseconds.
pub const OMEGA: &str = "0.5";
pub const OMEGA_NS: i64 = 500_000_000;

// ---------------------------------------------------------------------------------------------
// Randomness (deterministic: a fixed seed gives the same capture)
// ---------------------------------------------------------------------------------------------

/// xorshift64*: small, seedable, good enough for traffic shapes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

// ---------------------------------------------------------------------------------------------
// Traffic
// ---------------------------------------------------------------------------------------------

/// Packets (timestamp, Ethernet frame) collected in any order, written sorted by time.
#[derive(Default)]
pub struct Traffic {
    packets: Vec<(i64, Vec<u8>)>,
}

/// Ethernet + IPv4 + TCP (Linux-like: SYNs carry 20 bytes of options, other segments the
/// 12-byte timestamp option).
pub fn tcp_frame(
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    ttl: u8,
    tcp_flags: u8,
    payload_len: usize,
) -> Vec<u8> {
    let options: &[u8] = if tcp_flags & flags::SYN != 0 {
        &common::SYN_OPTIONS
    } else {
        &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]
    };
    let seg = common::tcp_opts(src.1, dst.1, tcp_flags, options, &vec![0x42; payload_len]);
    common::eth(
        common::ETH_IPV4,
        &common::ipv4(src.0, dst.0, ttl, common::proto::TCP, &seg),
    )
}

/// A bare 20-byte-header SYN, as hping3 and flood tools send.
pub fn bare_syn(src: ([u8; 4], u16), dst: ([u8; 4], u16)) -> Vec<u8> {
    let seg = common::tcp(src.1, dst.1, flags::SYN, &[]);
    common::eth(
        common::ETH_IPV4,
        &common::ipv4(src.0, dst.0, 64, common::proto::TCP, &seg),
    )
}

/// Ethernet + IPv4 + UDP.
pub fn udp_frame(src: ([u8; 4], u16), dst: ([u8; 4], u16), ttl: u8, payload_len: usize) -> Vec<u8> {
    let dgram = common::udp(src.1, dst.1, &vec![0x17; payload_len]);
    common::eth(
        common::ETH_IPV4,
        &common::ipv4(src.0, dst.0, ttl, common::proto::UDP, &dgram),
    )
}

/// Microsecond-aligned (the pcap files are microsecond ones).
fn us(ns: i64) -> i64 {
    ns - ns.rem_euclid(1000)
}

impl Traffic {
    pub fn new() -> Traffic {
        Traffic::default()
    }

    pub fn push(&mut self, ts_ns: i64, frame: Vec<u8>) {
        self.packets.push((us(ts_ns), frame));
    }

    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// A whole TCP connection from `client` to `server` starting at `t`: handshake, `requests`
    /// request/response exchanges, FIN from the client; about 2 ms between segments.
    #[allow(clippy::too_many_arguments)]
    pub fn tcp_connection(
        &mut self,
        t: i64,
        client: ([u8; 4], u16),
        server: ([u8; 4], u16),
        client_ttl: u8,
        server_ttl: u8,
        requests: usize,
        request_len: usize,
        response_len: usize,
    ) {
        let step = 2_000_000;
        let mut t = t;
        let c2s = |t: &mut i64, f: u8, len: usize, me: &mut Traffic| {
            me.push(*t, tcp_frame(client, server, client_ttl, f, len));
            *t += step;
        };
        c2s(&mut t, flags::SYN, 0, self);
        self.push(
            t,
            tcp_frame(server, client, server_ttl, flags::SYN | flags::ACK, 0),
        );
        t += step;
        c2s(&mut t, flags::ACK, 0, self);
        for _ in 0..requests {
            c2s(&mut t, flags::PSH | flags::ACK, request_len, self);
            self.push(
                t,
                tcp_frame(
                    server,
                    client,
                    server_ttl,
                    flags::PSH | flags::ACK,
                    response_len,
                ),
            );
            t += step;
            c2s(&mut t, flags::ACK, 0, self);
        }
        c2s(&mut t, flags::FIN | flags::ACK, 0, self);
        self.push(
            t,
            tcp_frame(server, client, server_ttl, flags::FIN | flags::ACK, 0),
        );
        t += step;
        c2s(&mut t, flags::ACK, 0, self);
    }

    /// One window of "normal" LAN traffic in `[start, start + ω)`: a few web connections from
    /// clients 10.0.0.0/24 to 10.0.1.1:443/80, DNS queries to 10.0.1.2:53, an SSH session to
    /// 10.0.1.3:22. Volumes vary by window but stay in a regular range.
    pub fn lan_window(&mut self, rng: &mut Rng, start: i64) {
        let at = |rng: &mut Rng, span: i64| start + rng.range(0, span as u64) as i64;
        let client = |rng: &mut Rng| [10, 0, 0, rng.range(2, 40) as u8];
        let eph = |rng: &mut Rng| rng.range(32_768, 60_999) as u16;
        // Web: the connection starts early enough to end inside the window (~30 ms long).
        for _ in 0..rng.range(1, 4) {
            let port = if rng.chance(0.7) { 443 } else { 80 };
            let c = client(rng);
            let p = eph(rng);
            let t = at(rng, OMEGA_NS - 60_000_000);
            let reqs = rng.range(1, 3) as usize;
            let req = rng.range(80, 600) as usize;
            let resp = rng.range(200, 1400) as usize;
            self.tcp_connection(t, (c, p), ([10, 0, 1, 1], port), 64, 63, reqs, req, resp);
        }
        // DNS.
        for _ in 0..rng.range(2, 8) {
            let c = client(rng);
            let p = eph(rng);
            let t = at(rng, OMEGA_NS - 2_000_000);
            let q = rng.range(28, 60) as usize;
            self.push(t, udp_frame((c, p), ([10, 0, 1, 2], 53), 64, q));
            self.push(
                t + 1_000_000,
                udp_frame(
                    ([10, 0, 1, 2], 53),
                    (c, p),
                    63,
                    q + rng.range(16, 200) as usize,
                ),
            );
        }
        // A long SSH session: a few segments each way.
        for _ in 0..rng.range(2, 8) {
            let t = at(rng, OMEGA_NS - 1_000_000);
            let (c, s) = (([10, 0, 0, 9], 50_022), ([10, 0, 1, 3], 22));
            if rng.chance(0.5) {
                self.push(t, tcp_frame(c, s, 64, flags::PSH | flags::ACK, 36));
            } else {
                let len = rng.range(36, 300) as usize;
                self.push(t, tcp_frame(s, c, 63, flags::PSH | flags::ACK, len));
            }
        }
    }

    /// `windows` windows of LAN traffic from `start` (a multiple of ω).
    pub fn lan(&mut self, rng: &mut Rng, start: i64, windows: i64) {
        for k in 0..windows {
            self.lan_window(rng, start + k * OMEGA_NS);
        }
    }

    /// One window of quiet loopback traffic (127.0.0.1 both ways, TTL 64, what `lo` carries
    /// when a few local programs talk): often nothing; else some UDP datagrams to one port,
    /// or a few short TCP connections to a local listener, or both.
    pub fn loopback_window(&mut self, rng: &mut Rng, start: i64) {
        const LO: [u8; 4] = [127, 0, 0, 1];
        let mode = rng.range(0, 9);
        let udp = matches!(mode, 4..=6 | 9);
        let tcp = matches!(mode, 7..=9);
        let at = |rng: &mut Rng, span: i64| start + rng.range(0, span as u64) as i64;
        if udp {
            let port = rng.range(32_768, 60_999) as u16;
            for _ in 0..rng.range(1, 200) {
                let t = at(rng, OMEGA_NS - 1_000);
                let len = rng.range(8, 256) as usize;
                self.push(t, udp_frame((LO, port), (LO, 40_000), 64, len));
            }
        }
        if tcp {
            for _ in 0..rng.range(1, 14) {
                let t = at(rng, OMEGA_NS - 40_000_000);
                let p = rng.range(32_768, 60_999) as u16;
                let req = rng.range(1, 64) as usize;
                let resp = rng.range(0, 64) as usize;
                let reqs = rng.range(0, 1) as usize;
                self.tcp_connection(t, (LO, p), (LO, 40_001), 64, 64, reqs, req, resp);
            }
        }
    }

    /// `windows` windows of loopback traffic from `start`.
    pub fn loopback(&mut self, rng: &mut Rng, start: i64, windows: i64) {
        for k in 0..windows {
            self.loopback_window(rng, start + k * OMEGA_NS);
        }
    }

    /// A SYN flood: `count` bare SYNs from `src` to `dst`, evenly spread over
    /// `[start, start + duration)`, to `ports` (cycled).
    pub fn syn_flood(
        &mut self,
        start: i64,
        duration: i64,
        count: usize,
        src: [u8; 4],
        dst: [u8; 4],
        ports: &[u16],
    ) {
        for i in 0..count {
            let t = start + duration * i as i64 / count as i64;
            let sport = 1024 + (i % 60_000) as u16;
            let dport = ports[i % ports.len()];
            self.push(t, bare_syn((src, sport), (dst, dport)));
        }
    }

    /// Writes the packets, sorted by time, as a microsecond Ethernet pcap.
    pub fn write(&mut self, path: &Path) {
        self.packets.sort_by_key(|(t, _)| *t);
        let mut pcap = Pcap::micro(linktype::EN10MB);
        for (t, f) in &self.packets {
            pcap.packet(*t, f);
        }
        pcap.write(path);
    }
}

/// Start of the synthetic captures: a multiple of ω (2023-11-14T22:13:20Z).
pub const T0: i64 = 1_700_000_000 * 1_000_000_000;

/// The flooder of every synthetic attack, and its victim.
pub const FLOODER: [u8; 4] = [198, 51, 100, 66];
pub const VICTIM: [u8; 4] = [10, 0, 1, 1];

/// Ports 1..=n.
pub fn ports(n: u16) -> Vec<u16> {
    (1..=n).collect()
}

// ---------------------------------------------------------------------------------------------
// Running netanom
// ---------------------------------------------------------------------------------------------

/// The netanom binary under test.
/// A copy of the shipped demo model (`model/default`) in `dir/model`: a daemon keeps its
/// adaptive threshold's state in its model directory, which must not be the repository's.
pub fn default_model_copy(dir: &Path) -> std::path::PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("model/default");
    let to = dir.join("model");
    std::fs::create_dir_all(&to).expect("create the model copy's directory");
    for f in ["model.json", "weights.safetensors"] {
        std::fs::copy(from.join(f), to.join(f)).expect("copy the demo model");
    }
    to
}

pub fn netanom_bin() -> std::path::PathBuf {
    common::netanom_exe()
}

/// A `netanom` command with an environment free of the caller's netanom settings, so the
/// test sees the documented defaults (and no `NETANOM_…` variable from the developer's shell),
/// except that the feature history is off (`NETANOM_HISTORY__ENABLED=false`: the default
/// directory is the host's /var/lib/netanom/history); tests of the history turn it on.
pub fn netanom_command() -> Command {
    let mut cmd = Command::new(netanom_bin());
    for (k, _) in std::env::vars_os() {
        let name = k.to_string_lossy().to_ascii_uppercase();
        if name.starts_with("NETANOM") || name == "RUST_LOG" {
            cmd.env_remove(&k);
        }
    }
    cmd.env(HISTORY_OFF.0, HISTORY_OFF.1)
        .env(FIXED_THRESHOLD.0, FIXED_THRESHOLD.1);
    cmd
}

/// The threshold rule these tests were written for: the bundle's fixed threshold (the
/// paper's way), whose value `train`'s threshold options set. The adaptive threshold (the
/// default) has its own tests (tests/feedback.rs, tests/threshold_state.rs), which set
/// [`SPOT_THRESHOLD`].
pub const FIXED_THRESHOLD: (&str, &str) = ("NETANOM_ALERTS__THRESHOLD_RULE", "fixed");

/// The default threshold rule, for the tests of the adaptive threshold.
pub const SPOT_THRESHOLD: (&str, &str) = ("NETANOM_ALERTS__THRESHOLD_RULE", "spot");

/// The variable that keeps test daemons from recording to the host's history directory.
pub const HISTORY_OFF: (&str, &str) = ("NETANOM_HISTORY__ENABLED", "false");

/// The output of a finished command.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics unless it exited 0 without a panic.
    pub fn assert_ok(&self, what: &str) -> &Self {
        assert!(
            !self.stderr.contains("panicked"),
            "{what} panicked:\n{}",
            self.stderr
        );
        assert_eq!(
            self.status.code(),
            Some(0),
            "{what} failed ({}):\n{}",
            self.status,
            self.stderr
        );
        self
    }
}

/// Runs `cmd` to completion, killing it (and failing) after `timeout`.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration, what: &str) -> Finished {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = ChildGuard(Some(cmd.spawn().unwrap_or_else(|e| panic!("{what}: {e}"))));
    let c = child.0.as_mut().expect("child");
    let mut out = c.stdout.take().expect("stdout");
    let mut err = c.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = c.try_wait().expect("try_wait") {
            break st;
        }
        if started.elapsed() > timeout {
            let _ = c.kill();
            let _ = c.wait();
            let err = t_err.join().unwrap_or_default();
            panic!(
                "{what}: still running after {timeout:?}; killed. stderr:\n{}",
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    child.0 = None;
    Finished {
        status,
        stdout: String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned(),
        elapsed,
    }
}

/// Kills (SIGKILL) and reaps a child still running when dropped: a failing test leaves no
/// daemon behind.
pub struct ChildGuard(pub Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

/// Trains a model bundle into `out` from `pcap` with ω = 0.5 s: a small LSTM, a few epochs.
/// `threshold` are extra `netanom train` arguments for the threshold rule.
pub fn train(pcap: &Path, out: &Path, threshold: &[&str]) {
    let mut cmd = netanom_command();
    cmd.arg("train")
        .arg("--pcap")
        .arg(pcap)
        .args(["--window", OMEGA])
        .arg("--out")
        .arg(out)
        .args(["--hidden", "16", "--epochs", "8", "--seed", "7"])
        .args(threshold);
    run_with_timeout(cmd, Duration::from_secs(300), "netanom train").assert_ok("netanom train");
    assert!(
        out.join("model.json").is_file(),
        "no model.json in {}",
        out.display()
    );
}

/// One row of `netanom score`.
#[derive(Clone, Debug)]
pub struct ScoreRow {
    pub start: String,
    pub end: String,
    pub score: Option<f64>,
    pub threshold: f64,
}

/// `netanom score --model M --pcap P`: every window's score (the offline path; an oracle for
/// what the daemon must report).
pub fn score_windows(model: &Path, pcap: &Path) -> Vec<ScoreRow> {
    score_files(model, &[pcap])
}

/// As [`score_windows`] for several files replayed in order.
pub fn score_files(model: &Path, pcaps: &[&Path]) -> Vec<ScoreRow> {
    let mut cmd = netanom_command();
    cmd.arg("score")
        .arg("--model")
        .arg(model)
        .args(["--threshold-rule", "fixed"]);
    for p in pcaps {
        cmd.arg("--pcap").arg(p);
    }
    let f = run_with_timeout(cmd, Duration::from_secs(120), "netanom score");
    f.assert_ok("netanom score");
    let mut lines = f.stdout.lines();
    assert_eq!(
        lines.next(),
        Some("window_start,window_end,score,threshold,alert")
    );
    lines
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            assert_eq!(c.len(), 5, "score row {l:?}");
            ScoreRow {
                start: c[0].to_string(),
                end: c[1].to_string(),
                score: (!c[2].is_empty()).then(|| c[2].parse().expect("score")),
                threshold: c[3].parse().expect("threshold"),
            }
        })
        .collect()
}

/// An incident as the documented rule makes it from the window scores.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectedIncident {
    /// Index (into the score rows) of the first alerting window.
    pub first: usize,
    /// Index of the last alerting window.
    pub last: usize,
    pub alerting_windows: usize,
    pub peak_score: f64,
    /// Ended by the cooldown (else by the end of input: "shutdown").
    pub cooled_down: bool,
}

/// docs/alerts.md with `min_windows` 1: a window scoring strictly above the threshold opens
/// an incident or extends the open one; `cooldown` consecutive windows at or below it end it;
/// the end of the input ends an open one.
pub fn expected_incidents(rows: &[ScoreRow], cooldown: usize) -> Vec<ExpectedIncident> {
    let mut out = Vec::new();
    let mut open: Option<ExpectedIncident> = None;
    let mut calm = 0;
    for (i, r) in rows.iter().enumerate() {
        let Some(s) = r.score else { continue };
        let alerting = s > r.threshold;
        match (&mut open, alerting) {
            (None, false) => {}
            (None, true) => {
                open = Some(ExpectedIncident {
                    first: i,
                    last: i,
                    alerting_windows: 1,
                    peak_score: s,
                    cooled_down: false,
                });
                calm = 0;
            }
            (Some(o), true) => {
                o.last = i;
                o.alerting_windows += 1;
                o.peak_score = o.peak_score.max(s);
                calm = 0;
            }
            (Some(_), false) => {
                calm += 1;
                if calm >= cooldown {
                    let mut o = open.take().expect("open");
                    o.cooled_down = true;
                    out.push(o);
                }
            }
        }
    }
    out.extend(open);
    out
}

// ---------------------------------------------------------------------------------------------
// The daemon as a child process
// ---------------------------------------------------------------------------------------------

/// A running `netanom run`; its standard error (JSON log lines) is collected as it comes.
/// Dropping it kills the process.
pub struct Daemon {
    child: ChildGuard,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    pub started: Instant,
}

impl Daemon {
    /// Starts `netanom run ARGS` with JSON logs (`NETANOM_LOG__FORMAT=json`) and `envs`.
    pub fn start(args: &[OsString], envs: &[(&str, &str)]) -> Daemon {
        let mut cmd = netanom_command();
        cmd.arg("run").args(args);
        Daemon::spawn(cmd, envs)
    }

    /// Starts `cmd` (a `netanom run` command line, possibly behind a wrapper such as
    /// `ip netns exec`) with JSON logs and `envs`, collecting its standard error.
    pub fn spawn(mut cmd: Command, envs: &[(&str, &str)]) -> Daemon {
        cmd.env("NETANOM_LOG__FORMAT", "json")
            .env(HISTORY_OFF.0, HISTORY_OFF.1)
            .env(FIXED_THRESHOLD.0, FIXED_THRESHOLD.1)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start netanom run");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("log lines").push(line);
            }
        });
        Daemon {
            child: ChildGuard(Some(child)),
            lines,
            reader: Some(reader),
            started: Instant::now(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.0.as_ref().expect("child").id() as i32
    }

    /// Sends a signal (libc::SIGHUP, SIGTERM, …).
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) with the pid of our own child (not yet reaped: we hold the Child).
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(
            rc,
            0,
            "kill({}, {sig}): {}",
            self.pid(),
            std::io::Error::last_os_error()
        );
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let c = self.child.0.as_mut().expect("child");
        loop {
            if let Some(st) = c.try_wait().expect("try_wait") {
                // The log is complete once the pipe closes.
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.0.as_mut().expect("child").try_wait(), Ok(None))
    }

    /// The log lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.lines.lock().expect("log lines").clone()
    }

    /// The whole log so far, for failure messages.
    pub fn log_text(&self) -> String {
        self.log_lines().join("\n")
    }

    /// The log lines so far, parsed (non-JSON lines are skipped).
    pub fn log_records(&self) -> Vec<Value> {
        self.log_lines()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits up to `timeout` for the `skip`-th (0-based) log record whose message contains
    /// `needle`; returns it.
    pub fn wait_for_message(&self, needle: &str, skip: usize, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .log_records()
                .into_iter()
                .filter(|r| log_message(r).contains(needle))
                .nth(skip);
            if found.is_some() {
                return found;
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Number of log records whose message contains `needle`.
    pub fn count_messages(&self, needle: &str) -> usize {
        self.log_records()
            .iter()
            .filter(|r| log_message(r).contains(needle))
            .count()
    }

    /// The address the metrics server listens on, from its "serving /metrics" log line.
    pub fn metrics_addr(&self, timeout: Duration) -> SocketAddr {
        let rec = self
            .wait_for_message("serving /metrics", 0, timeout)
            .unwrap_or_else(|| {
                panic!(
                    "no 'serving /metrics' log line within {timeout:?}:\n{}",
                    self.log_text()
                )
            });
        rec["fields"]["addr"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no addr in {rec}"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // ChildGuard kills; then the pipe closes and the reader ends.
        if let Some(mut c) = self.child.0.take() {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// The `message` of a tracing JSON record.
pub fn log_message(rec: &Value) -> &str {
    rec["fields"]["message"].as_str().unwrap_or("")
}

// ---------------------------------------------------------------------------------------------
// HTTP and Prometheus
// ---------------------------------------------------------------------------------------------

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` over HTTP/1.1 with `Connection: close`, 5 s timeouts.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {text:?}")))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// One sample of the text exposition format.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parsed `/metrics`: samples and the `# TYPE` of each metric family.
#[derive(Clone, Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    pub types: BTreeMap<String, String>,
}

impl Exposition {
    /// The value of the unlabelled sample `name` (panics when absent).
    pub fn value(&self, name: &str) -> f64 {
        self.get(name)
            .unwrap_or_else(|| panic!("no sample {name} in /metrics"))
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels.is_empty())
            .map(|s| s.value)
    }

    /// Samples named `name`, any labels.
    pub fn all(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }
}

/// Parses the Prometheus text format (what the tests need: comments, labels with escapes,
/// float values including `+Inf`/`NaN`). Panics on a line it cannot read.
pub fn parse_exposition(text: &str) -> Exposition {
    let mut e = Exposition::default();
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').expect("# TYPE name type");
            e.types.insert(name.to_string(), ty.to_string());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("metric line {line:?}"));
        let name = &line[..name_end];
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            let mut end = None;
            loop {
                // key
                while chars.peek().is_some_and(|(_, c)| *c == ',' || *c == ' ') {
                    chars.next();
                }
                let Some(&(ks, c)) = chars.peek() else { break };
                if c == '}' {
                    end = Some(ks + 1);
                    break;
                }
                let mut ke = ks;
                for (i, c) in chars.by_ref() {
                    if c == '=' {
                        ke = i;
                        break;
                    }
                }
                let key = r[ks..ke].to_string();
                assert_eq!(
                    chars.next().map(|(_, c)| c),
                    Some('"'),
                    "label value in {line:?}"
                );
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c)) => value.push(c),
                            None => panic!("label escape in {line:?}"),
                        },
                        Some((_, '"')) => break,
                        Some((_, c)) => value.push(c),
                        None => panic!("unterminated label value in {line:?}"),
                    }
                }
                labels.insert(key, value);
            }
            let end = end.unwrap_or_else(|| panic!("unterminated labels in {line:?}"));
            rest = &r[end..];
        }
        let value_text = rest.split_whitespace().next().expect("sample value");
        let value = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("sample value {v:?} in {line:?}")),
        };
        e.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    e
}

/// Scrapes `/metrics` and parses it, checking the status and content type.
pub fn scrape(addr: SocketAddr) -> Exposition {
    let r = http_get(addr, "/metrics").unwrap_or_else(|e| panic!("GET /metrics: {e}"));
    assert_eq!(r.status, 200, "GET /metrics: {r:?}");
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8"),
        "content type of /metrics"
    );
    parse_exposition(&r.body)
}

/// Polls `/metrics` until `pred` holds or `timeout` passes; returns the last scrape.
pub fn scrape_until(
    addr: SocketAddr,
    timeout: Duration,
    mut pred: impl FnMut(&Exposition) -> bool,
) -> (bool, Exposition) {
    let deadline = Instant::now() + timeout;
    loop {
        let e = scrape(addr);
        if pred(&e) {
            return (true, e);
        }
        if Instant::now() >= deadline {
            return (false, e);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// True if `s` holds an IPv4 or IPv6 address (a whole label value or an embedded one).
pub fn contains_ip(s: &str) -> bool {
    if s.parse::<IpAddr>().is_ok() {
        return true;
    }
    s.split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
        .any(|tok| {
            tok.parse::<std::net::Ipv4Addr>().is_ok()
                || (tok.contains("::") && tok.parse::<std::net::Ipv6Addr>().is_ok())
        })
}

// ---------------------------------------------------------------------------------------------
// The alert log
// ---------------------------------------------------------------------------------------------

/// The alert log's events, one per line; every line must be a complete JSON object.
pub fn read_alerts(path: &Path) -> Vec<Value> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("reading {}: {e}", path.display()),
    };
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{}: the last line is not complete: {text:?}",
        path.display()
    );
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l}", path.display()));
            assert!(v.is_object(), "not a JSON object: {l}");
            v
        })
        .collect()
}

/// `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d$`
pub fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let pattern = b"dddd-dd-ddTdd:dd:dd.dddddd+dd:dd";
    b.len() == pattern.len()
        && b.iter().zip(pattern.iter()).all(|(&c, &p)| match p {
            b'd' => c.is_ascii_digit(),
            b'+' => c == b'+' || c == b'-',
            _ => c == p,
        })
}

/// Unix seconds of a timestamp in the format above (days from the civil date; offset applied).
pub fn timestamp_epoch(s: &str) -> f64 {
    assert!(is_timestamp(s), "timestamp {s:?}");
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().expect("digits");
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let (hh, mm, ss, micro) = (n(11, 13), n(14, 16), n(17, 19), n(20, 26));
    let sign = if &s[26..27] == "-" { -1 } else { 1 };
    let off = sign * (n(27, 29) * 3600 + n(30, 32) * 60);
    // Howard Hinnant's days_from_civil.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss - off;
    secs as f64 + micro as f64 / 1e6
}

fn num(v: &Value, path: &str) -> f64 {
    let x = pointer(v, path);
    assert!(x.is_number(), "{path} is not a number: {x} in {v}");
    x.as_f64().expect("number")
}

fn uint(v: &Value, path: &str) -> u64 {
    let x = pointer(v, path);
    x.as_u64()
        .unwrap_or_else(|| panic!("{path} is not a non-negative integer: {x} in {v}"))
}

fn string<'a>(v: &'a Value, path: &str) -> &'a str {
    let x = pointer(v, path);
    x.as_str()
        .unwrap_or_else(|| panic!("{path} is not a string: {x} in {v}"))
}

fn pointer<'a>(v: &'a Value, path: &str) -> &'a Value {
    let p = format!("/{}", path.replace('.', "/"));
    v.pointer(&p)
        .unwrap_or_else(|| panic!("field {path} missing in {v}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

/// A `{start, end, start_epoch, end_epoch}` span: formats, UTC, strings and epochs agree,
/// one ω long (`omega_s`).
fn check_span(v: &Value, path: &str, omega_s: f64) {
    let start = string(v, &format!("{path}.start"));
    let end = string(v, &format!("{path}.end"));
    for t in [start, end] {
        assert!(is_timestamp(t), "{path}: timestamp {t:?} in {v}");
        assert!(t.ends_with("+00:00"), "{path}: {t:?} is not UTC");
    }
    let se = num(v, &format!("{path}.start_epoch"));
    let ee = num(v, &format!("{path}.end_epoch"));
    assert!(
        close(se, timestamp_epoch(start)),
        "{path}.start_epoch {se} vs {start}"
    );
    assert!(
        close(ee, timestamp_epoch(end)),
        "{path}.end_epoch {ee} vs {end}"
    );
    assert!(
        close(ee - se, omega_s),
        "{path} is not one window long: {v}"
    );
}

/// Checks one alert event against the schema of docs/alerts.md (every documented field, its
/// type, and the relations the table states). `omega_s`: the model's ω.
pub fn check_event(v: &Value, omega_s: f64) {
    check_event_min(v, omega_s, 1)
}

/// As [`check_event`] with `alerts.min_windows` = `min_windows`: a start event is then about
/// the `min_windows`-th alerting window.
pub fn check_event_min(v: &Value, omega_s: f64, min_windows: u64) {
    let ts = string(v, "timestamp");
    assert!(is_timestamp(ts), "timestamp {ts:?}");
    assert!(ts.ends_with("+00:00"), "timestamp {ts:?} is not UTC");
    let event_type = string(v, "event_type");
    assert!(
        ["incident_start", "incident_culprit", "incident_end"].contains(&event_type),
        "event_type {event_type:?}"
    );
    assert_eq!(uint(v, "schema_version"), 3, "schema_version in {v}");
    assert!(!string(v, "host").is_empty(), "empty host in {v}");
    check_span(v, "window", omega_s);
    assert_eq!(
        ts,
        string(v, "window.end"),
        "timestamp is the end of window"
    );
    let score = num(v, "score");
    let threshold = num(v, "threshold");
    assert!(threshold > 0.0, "threshold {threshold}");
    assert!(score.is_finite() && score >= 0.0, "score {score}");
    assert!(!string(v, "model.id").is_empty(), "model.id in {v}");
    assert!(
        close(num(v, "model.omega_s"), omega_s),
        "model.omega_s in {v}"
    );

    // incident
    let id = string(v, "incident.id");
    let (prefix, seq) = id
        .split_once('-')
        .unwrap_or_else(|| panic!("incident.id {id:?} is not <hex>-<n>"));
    // `<start, hex>` or, after a model change, `<time of the change, hex>r<changes>`.
    let (time, changes) = prefix.split_once('r').unwrap_or((prefix, "1"));
    assert!(
        !time.is_empty()
            && time.bytes().all(|b| b.is_ascii_hexdigit())
            && changes.parse::<u32>().is_ok_and(|n| n >= 1),
        "incident.id {id:?}: prefix"
    );
    assert!(
        seq.parse::<u64>().is_ok_and(|n| n >= 1),
        "incident.id {id:?}: number"
    );
    let inc_start = string(v, "incident.start");
    assert!(is_timestamp(inc_start), "incident.start {inc_start:?}");
    let inc_start_epoch = num(v, "incident.start_epoch");
    assert!(
        close(inc_start_epoch, timestamp_epoch(inc_start)),
        "incident.start_epoch"
    );
    // Spans of an incident are counted in windows of the model's shortest ω.
    let shortest = v["model"]["scales"]
        .as_array()
        .and_then(|a| a.iter().filter_map(Value::as_f64).reduce(f64::min))
        .unwrap_or(omega_s);
    let duration = num(v, "incident.duration_s");
    assert!(
        duration >= shortest - 1e-9,
        "incident.duration_s {duration} < ω"
    );
    let peak = num(v, "incident.peak_score");
    // The peak is the window furthest over its own scale's threshold.
    let peak_threshold = v["incident"]["scales"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|s| s["peak_score"].as_f64().is_some_and(|p| close(p, peak)))
        })
        .and_then(|s| s["threshold"].as_f64())
        .unwrap_or(threshold);
    assert!(
        peak > peak_threshold,
        "peak_score {peak} not above its threshold {peak_threshold}"
    );
    // The peak window is of whichever scale went furthest over its threshold.
    let peak_len =
        num(v, "incident.peak_window.end_epoch") - num(v, "incident.peak_window.start_epoch");
    let peak_omega = v["model"]["scales"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .filter_map(Value::as_f64)
                .find(|o| close(*o, peak_len))
        })
        .unwrap_or(omega_s);
    check_span(v, "incident.peak_window", peak_omega);
    let windows = uint(v, "incident.windows");
    let span = uint(v, "incident.span_windows");
    // Every scale that alerted, with its share of the alerting windows.
    let scales = v["incident"]["scales"]
        .as_array()
        .unwrap_or_else(|| panic!("incident.scales in {v}"));
    assert!(!scales.is_empty(), "incident.scales is empty in {v}");
    let by_scale: u64 = scales
        .iter()
        .map(|s| s["windows"].as_u64().expect("incident.scales[].windows"))
        .sum();
    assert_eq!(
        by_scale, windows,
        "incident.scales[].windows add up to incident.windows"
    );
    let model_scales = v["model"]["scales"]
        .as_array()
        .unwrap_or_else(|| panic!("model.scales in {v}"));
    for s in scales {
        let o = s["omega_s"].as_f64().expect("incident.scales[].omega_s");
        assert!(
            model_scales.iter().any(|m| m.as_f64() == Some(o)),
            "incident.scales omega_s {o} is not one of model.scales in {v}"
        );
        assert!(
            s["peak_score"].as_f64().expect("peak_score")
                > s["threshold"].as_f64().expect("threshold")
        );
        // Each alerting window was over the threshold it was scored with.
        let ratio = s["peak_ratio"]
            .as_f64()
            .expect("incident.scales[].peak_ratio");
        assert!(ratio > 1.0, "incident.scales[].peak_ratio {ratio} in {v}");
    }
    assert!(
        windows >= 1 && span >= windows,
        "windows {windows} span {span}"
    );
    // The peak window lies in the incident.
    let peak_start = num(v, "incident.peak_window.start_epoch");
    assert!(
        peak_start >= inc_start_epoch - 1e-6,
        "peak before the incident: {v}"
    );
    assert!(
        num(v, "incident.peak_window.end_epoch") <= inc_start_epoch + duration + 1e-6,
        "peak after the last alerting window: {v}"
    );
    let inc = pointer(v, "incident");
    check_culprits(v, windows);
    if event_type == "incident_culprit" {
        // A culprit joined the reported incident at `window`, an alerting window of it.
        assert!(
            score > threshold,
            "culprit: score {score} not above {threshold}"
        );
        for k in ["end", "end_epoch", "end_reason"] {
            assert!(inc.get(k).is_none(), "incident.{k} in a culprit event: {v}");
        }
        assert!(
            windows >= min_windows,
            "culprit event before the incident was reported"
        );
        assert!(
            num(v, "window.end_epoch") <= inc_start_epoch + duration + 1e-6,
            "culprit: its window after the incident's last alert: {v}"
        );
        let c = pointer(v, "culprit");
        check_culprit(c, windows);
        let ip = c["ip"].as_str().expect("culprit.ip");
        assert!(
            v["incident"]["culprits"]
                .as_array()
                .is_some_and(|l| l.iter().any(|x| x["ip"] == ip)),
            "the new culprit {ip} is not in incident.culprits: {v}"
        );
        assert!(
            close(
                timestamp_epoch(c["joined"].as_str().expect("culprit.joined")),
                num(v, "window.start_epoch")
            ),
            "culprit.joined is not its window's start: {v}"
        );
    } else {
        assert!(
            v.get("culprit").is_none(),
            "culprit in a {event_type} event: {v}"
        );
    }
    if event_type == "incident_start" {
        // The window that reported it: with min_windows 1 the first alerting one, the peak.
        assert!(
            score > threshold,
            "start score {score} not above {threshold}"
        );
        for k in ["end", "end_epoch", "end_reason"] {
            assert!(inc.get(k).is_none(), "incident.{k} in a start event: {v}");
        }
        assert_eq!(
            windows, min_windows,
            "start: incident.windows is min_windows"
        );
        assert!(
            close(duration, span as f64 * shortest),
            "start: duration_s {duration} vs span_windows {span} × ω"
        );
        assert!(
            close(num(v, "window.end_epoch"), inc_start_epoch + duration),
            "start: the reporting window ends the incident so far: {v}"
        );
        assert!(peak >= score, "start: peak_score {peak} < score {score}");
        if min_windows == 1 {
            assert_eq!(
                string(v, "window.start"),
                inc_start,
                "start window is the first"
            );
            assert!(
                close(peak, score),
                "start: peak_score {peak} vs score {score}"
            );
            // One window: of the shortest ω, or a longer one in windows of the shortest.
            let len = num(v, "window.end_epoch") - num(v, "window.start_epoch");
            assert_eq!(
                span,
                (len / shortest).round() as u64,
                "start: span_windows is the reporting window's length"
            );
        }
    } else if event_type == "incident_end" {
        let end = string(v, "incident.end");
        assert!(is_timestamp(end), "incident.end {end:?}");
        let end_epoch = num(v, "incident.end_epoch");
        assert!(close(end_epoch, timestamp_epoch(end)), "incident.end_epoch");
        assert!(
            close(end_epoch - inc_start_epoch, duration),
            "duration_s {duration} is not incident.end − incident.start"
        );
        assert!(
            close(duration, span as f64 * shortest),
            "duration_s {duration} vs span_windows {span} × ω"
        );
        let reason = string(v, "incident.end_reason");
        assert!(
            [
                "cooldown",
                "shutdown",
                "sequence_break",
                "capture_failed",
                "internal_error"
            ]
            .contains(&reason),
            "end_reason {reason:?}"
        );
        assert!(
            num(v, "window.end_epoch") >= end_epoch - 1e-6,
            "end event's window before the incident's end: {v}"
        );
    }

    // top_features
    let tf = pointer(v, "top_features")
        .as_array()
        .unwrap_or_else(|| panic!("top_features is not an array in {v}"));
    assert!(tf.len() <= 5, "more than alerts.top_features (5) features");
    let mut last_outside = f64::INFINITY;
    for f in tf {
        let name = f["name"].as_str().expect("top_features[].name");
        assert!(FEATURE_NAMES.contains(&name), "unknown feature {name:?}");
        let contributors = f["contributors"]
            .as_array()
            .unwrap_or_else(|| panic!("top_features[].contributors in {f}"));
        assert!(contributors.len() <= 3, "more than 3 contributors: {f}");
        let mut last = u64::MAX;
        for c in contributors {
            let ip = c["ip"].as_str().expect("contributor ip");
            assert!(ip.parse::<IpAddr>().is_ok(), "contributor ip {ip:?}");
            let role = c["role"].as_str().expect("contributor role");
            assert!(ROLES.contains(&role), "contributor role {role:?} in {f}");
            let n = c["packets"]
                .as_u64()
                .or_else(|| c["new_values"].as_u64())
                .unwrap_or_else(|| panic!("contributor without packets / new_values: {c}"));
            assert!(n <= last, "contributors not largest first: {f}");
            last = n;
            if let Some(e) = c.get("max_error") {
                assert!(
                    e.as_u64().is_some_and(|e| e >= 1 && e <= n),
                    "max_error {c}"
                );
            }
        }
        for k in ["value", "training_min", "training_max", "normalized"] {
            assert!(f[k].is_number(), "top_features[].{k} in {f}");
        }
        let (val, lo, hi, norm) = (
            f["value"].as_f64().expect("v"),
            f["training_min"].as_f64().expect("min"),
            f["training_max"].as_f64().expect("max"),
            f["normalized"].as_f64().expect("n"),
        );
        assert!(lo <= hi, "training range {f}");
        let want = if hi > lo { (val - lo) / (hi - lo) } else { 0.0 };
        assert!(
            close(norm, want),
            "normalized {norm} is not (value − min)/(max − min) = {want}"
        );
        let outside = if norm > 1.0 {
            norm - 1.0
        } else if norm < 0.0 {
            -norm
        } else {
            0.0
        };
        assert!(
            outside <= last_outside + 1e-9,
            "top_features not most deviating first: {tf:?}"
        );
        last_outside = outside;
    }

    // top_talkers
    for kind in ["source", "destination"] {
        let list = pointer(v, &format!("top_talkers.{kind}"))
            .as_array()
            .unwrap_or_else(|| panic!("top_talkers.{kind} is not an array"));
        assert!(
            list.len() <= 5,
            "top_talkers.{kind}: more than window.top_k"
        );
        let mut last = u64::MAX;
        for t in list {
            let ip = t["ip"].as_str().expect("ip string");
            assert!(ip.parse::<IpAddr>().is_ok(), "top_talkers.{kind} ip {ip:?}");
            let p = t["packets"].as_u64().expect("packets integer");
            assert!(
                p >= 1 && p <= last,
                "top_talkers.{kind} not by packets: {list:?}"
            );
            last = p;
        }
    }
    let ports = pointer(v, "top_talkers.destination_port")
        .as_array()
        .expect("top_talkers.destination_port array");
    for t in ports {
        let port = t["port"].as_u64().expect("port integer");
        assert!(port <= 65_535, "port {port}");
        assert!(t["packets"].as_u64().is_some(), "port packets {t}");
    }
    assert!(
        pointer(v, "top_talkers.approximate").is_boolean(),
        "top_talkers.approximate is not a bool"
    );
}

/// The roles of docs/alerts.md, attacker-side ones first.
pub const ROLES: [&str; 3] = ["source", "reply_target", "flood_target"];

/// `incident.culprits`: each entry valid, ranked attacker-side roles first, then by weight.
fn check_culprits(v: &Value, windows: u64) {
    let list = pointer(v, "incident.culprits")
        .as_array()
        .unwrap_or_else(|| panic!("incident.culprits is not an array in {v}"));
    let mut seen = std::collections::HashSet::new();
    let mut last = (false, f64::INFINITY);
    for c in list {
        check_culprit(c, windows);
        assert!(
            seen.insert(c["ip"].as_str().unwrap().to_string()),
            "a culprit twice: {v}"
        );
        let victim = c["role"] == "flood_target";
        let w = c["weight"].as_f64().unwrap();
        assert!(
            (victim, -w) >= (last.0, -last.1),
            "incident.culprits not ranked (attacker side first, then weight): {v}"
        );
        last = (victim, w);
    }
}

/// One culprit entry: `ip`, `role`, `weight` 0–1, `windows`, `features`, `joined`, `target`.
fn check_culprit(c: &Value, windows: u64) {
    let ip = c["ip"]
        .as_str()
        .unwrap_or_else(|| panic!("culprit ip in {c}"));
    assert!(ip.parse::<IpAddr>().is_ok(), "culprit ip {ip:?}");
    let role = c["role"]
        .as_str()
        .unwrap_or_else(|| panic!("culprit role in {c}"));
    assert!(ROLES.contains(&role), "culprit role {role:?}");
    let w = c["weight"]
        .as_f64()
        .unwrap_or_else(|| panic!("culprit weight in {c}"));
    assert!((0.0..=1.0).contains(&w), "culprit weight {w}");
    let n = c["windows"]
        .as_u64()
        .unwrap_or_else(|| panic!("culprit windows in {c}"));
    assert!(
        n >= 1 && n <= windows,
        "culprit windows {n} of {windows}: {c}"
    );
    let features = c["features"]
        .as_array()
        .unwrap_or_else(|| panic!("culprit features in {c}"));
    assert!(!features.is_empty(), "a culprit of no feature: {c}");
    for f in features {
        let f = f.as_str().expect("feature name");
        assert!(FEATURE_NAMES.contains(&f), "culprit feature {f:?}");
    }
    let joined = c["joined"]
        .as_str()
        .unwrap_or_else(|| panic!("culprit joined in {c}"));
    assert!(is_timestamp(joined), "culprit joined {joined:?}");
    if let Some(t) = c.get("target") {
        let tip = t["ip"]
            .as_str()
            .unwrap_or_else(|| panic!("target ip in {c}"));
        assert!(tip.parse::<IpAddr>().is_ok(), "target ip {tip:?}");
        assert_ne!(role, "flood_target", "a flood's victim has no target: {c}");
        if let Some(p) = t.get("proto") {
            assert!(
                ["TCP", "UDP", "ICMP", "IPv6-ICMP"].contains(&p.as_str().unwrap_or("")),
                "target proto {p}"
            );
        }
        for k in ["src_port", "dest_port"] {
            if let Some(p) = t.get(k) {
                assert!(p.as_u64().is_some_and(|p| p <= 65_535), "target {k} {p}");
                assert!(
                    matches!(t["proto"].as_str(), Some("TCP" | "UDP")),
                    "a port without TCP or UDP: {c}"
                );
            }
        }
    }
}

/// Events grouped into incidents by id: each incident's first event is its `incident_start`,
/// then its `incident_culprit` events, then its `incident_end` (incidents may overlap: two
/// attackers at once are two incidents). Returns (start, end) pairs in the order of the
/// starts; an incident may have no end only when `allow_open`.
pub fn pair_incidents(events: &[Value], allow_open: bool) -> Vec<(Value, Option<Value>)> {
    let mut out: Vec<(Value, Option<Value>)> = Vec::new();
    for e in events {
        let id = &e["incident"]["id"];
        let at = out.iter().position(|(s, _)| &s["incident"]["id"] == id);
        match (e["event_type"].as_str(), at) {
            (Some("incident_start"), None) => out.push((e.clone(), None)),
            (Some("incident_start"), Some(_)) => {
                panic!("a second incident_start of {id}: {events:#?}")
            }
            (Some(kind @ ("incident_culprit" | "incident_end")), Some(i)) => {
                let (s, end) = &mut out[i];
                assert!(end.is_none(), "{kind} after the end of {id}: {events:#?}");
                assert_eq!(
                    s["incident"]["start"], e["incident"]["start"],
                    "incident.start"
                );
                // One model; `omega_s` is the scale of each event's own window.
                assert_eq!(s["model"]["id"], e["model"]["id"], "model.id");
                assert_eq!(s["model"]["scales"], e["model"]["scales"], "model.scales");
                if kind == "incident_end" {
                    *end = Some(e.clone());
                }
            }
            (Some(kind), None) => panic!("{kind} of {id} without its start: {events:#?}"),
            (other, _) => panic!("event_type {other:?}"),
        }
    }
    if !allow_open {
        if let Some((s, _)) = out.iter().find(|(_, end)| end.is_none()) {
            panic!(
                "incident {} has no end event: {events:#?}",
                s["incident"]["id"]
            );
        }
    }
    out
}

/// Command-line arguments from strings and paths.
pub fn os_args<I, S>(items: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    items.into_iter().map(Into::into).collect()
}

// ---------------------------------------------------------------------------------------------
// Faults: connections from other loopback addresses, a tiny tmpfs
// ---------------------------------------------------------------------------------------------

/// A TCP connection to `to` from `local` (any 127/8 address works on Linux loopback): the
/// socket is bound before it connects, so the server sees `local` as the peer.
pub fn connect_from(local: std::net::Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(to) = to else {
        return Err(std::io::Error::other("IPv4 only"));
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
    // SAFETY: socket(2) gives a descriptor that the TcpStream owns from here on (and closes on
    // every path); bind and connect read addresses that outlive the calls.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let from = sin(local, 0);
        if libc::bind(fd, (&from as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let dst = sin(*to.ip(), to.port());
        if libc::connect(fd, (&dst as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// When the server closed `s` (EOF or reset), as time since `since`, waiting until `limit`
/// after `since`; `None` if it is still open then. Data the server sends is skipped.
pub fn closed_within(s: &mut TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(since.elapsed())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("set_read_timeout");
        match s.read(&mut buf) {
            Ok(0) => return Some(since.elapsed()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(since.elapsed())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// The value of the sample `name` whose label `label` is `value`.
pub fn labelled(e: &Exposition, name: &str, label: &str, value: &str) -> Option<f64> {
    e.all(name)
        .into_iter()
        .find(|s| s.labels.get(label).map(String::as_str) == Some(value))
        .map(|s| s.value)
}

/// A tmpfs mounted on a directory of ours; unmounted (lazily, if busy) when dropped, also when
/// the test fails.
pub struct Tmpfs {
    pub dir: std::path::PathBuf,
}

/// Why a tmpfs could not be mounted.
#[derive(Debug)]
pub enum MountError {
    /// Not root (or no CAP_SYS_ADMIN in this namespace): the test cannot run here.
    NotPermitted(std::io::Error),
    /// Anything else.
    Other(std::io::Error),
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` bytes on `dir` (an existing, empty directory).
    pub fn mount(dir: &Path, size: u64) -> Result<Tmpfs, MountError> {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let target = CString::new(dir.as_os_str().as_bytes()).map_err(|e| {
            MountError::Other(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
        })?;
        let data = CString::new(format!("size={size},mode=0755")).expect("no NUL");
        // SAFETY: NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                data.as_ptr().cast(),
            )
        };
        if rc == 0 {
            return Ok(Tmpfs {
                dir: dir.to_path_buf(),
            });
        }
        let e = std::io::Error::last_os_error();
        Err(match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => MountError::NotPermitted(e),
            _ => MountError::Other(e),
        })
    }

    /// Fills the file system: a file `name` grown until the device has no block left.
    /// Returns its path (remove it to free the space).
    pub fn fill(&self, name: &str) -> std::path::PathBuf {
        let path = self.dir.join(name);
        let mut f = std::fs::File::create(&path).expect("create the filler");
        let chunk = vec![0x66u8; 4096];
        for size in [chunk.len(), 1] {
            loop {
                match f.write(&chunk[..size]) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                    Err(e) => panic!("filling {}: {e}", path.display()),
                }
            }
        }
        path
    }
}

impl Drop for Tmpfs {
    /// Unmounts, detaching it if a process still holds files there.
    fn drop(&mut self) {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        if let Ok(target) = CString::new(self.dir.as_os_str().as_bytes()) {
            // SAFETY: a NUL-terminated path that outlives the call.
            let rc = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
            if rc != 0 {
                eprintln!(
                    "unmounting the test tmpfs {}: {}",
                    self.dir.display(),
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// True when this process runs as root (mounting a tmpfs needs it).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Every row the feature history under `dir` recorded for ω = `omega_us` µs: every segment
/// read, duplicates kept (a window recorded twice shows twice), by window start.
pub fn history_rows(dir: &Path, omega_us: u64) -> Vec<netanom::history::HistoryRow> {
    let scan = netanom::history::scan(dir).expect("history scan");
    let omega = netanom::window::Omega::from_micros(omega_us).expect("a window length");
    let mut rows: Vec<_> = scan
        .get(omega)
        .map(|o| {
            o.segments
                .iter()
                .flat_map(|s| s.read().expect("history segment"))
                .collect()
        })
        .unwrap_or_default();
    rows.sort_by_key(|r| r.start_ns);
    rows
}
