//! Faults provoked for real on a live daemon (root): an interface taken down and up again in a
//! network namespace, and the system clock stepped back and forward.
//!
//! Both tests change state shared by the whole machine or namespace, so they run one at a time
//! (a lock), and restore it in guards that also run when an assertion fails.

mod common;
#[path = "support/daemon.rs"]
mod daemon_support;
#[path = "support/netns.rs"]
mod netns;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use daemon_support::*;
use netns::{in_netns, VethPair};
use serde_json::Value;

/// One test at a time: they step the clock or depend on steady timing.
static SERIAL: Mutex<()> = Mutex::new(());

/// A model trained on quiet loopback-like traffic (empty windows are normal for it).
fn model() -> &'static PathBuf {
    static M: OnceLock<PathBuf> = OnceLock::new();
    M.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("daemon_faults-fixture");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("fixture dir");
        let pcap = dir.join("loopback.pcap");
        let mut t = Traffic::new();
        t.loopback(&mut Rng::new(3), T0, 800);
        t.write(&pcap);
        let model = dir.join("model");
        train(
            &pcap,
            &model,
            &["--threshold-rule", "max", "--threshold-factor", "3"],
        );
        model
    })
}

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "tests/daemon_faults.rs needs root (network namespaces, capture, clock_settime); CI runs as root"
    );
}

/// Where hping3 is (not always on PATH).
fn hping3() -> PathBuf {
    ["/usr/sbin/hping3", "/sbin/hping3", "/usr/bin/hping3"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("hping3 (apt-get install hping3)")
}

/// Scrapes `/metrics` inside namespace `ns`.
fn scrape_in(ns: &str, addr: std::net::SocketAddr) -> Exposition {
    in_netns(ns, move || scrape(addr))
}

/// Polls `cond` on fresh scrapes until it holds or `timeout` passes; the last scrape.
fn wait_metrics(
    ns: &str,
    addr: std::net::SocketAddr,
    timeout: Duration,
    what: &str,
    cond: impl Fn(&Exposition) -> bool,
) -> Exposition {
    let deadline = Instant::now() + timeout;
    loop {
        let e = scrape_in(ns, addr);
        if cond(&e) {
            return e;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_interface_taken_down_and_up_is_reopened_in_the_same_process() {
    require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let model = model();
    let net = VethPair::new("f");
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("alerts.jsonl");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &net.a])
        .arg(netanom_bin())
        .args(["run", "--interface", &net.if_a, "--model"])
        .arg(model)
        .arg("--alert-log")
        .arg(&log)
        .args(["--metrics-listen", "127.0.0.1:0"]);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy()
            .to_ascii_uppercase()
            .starts_with("NETANOM")
        {
            cmd.env_remove(&k);
        }
    }
    let mut d = Daemon::spawn(cmd, &[]);
    let addr = d.metrics_addr(Duration::from_secs(30));
    let ns = net.a.clone();
    let e = wait_metrics(&ns, addr, Duration::from_secs(10), "capture up", |e| {
        e.value("netanom_capture_up") == 1.0 && e.value("netanom_windows_scored_total") >= 1.0
    });
    assert_eq!(e.value("netanom_capture_errors_total"), 0.0);

    // A bounded SYN flood from the other namespace: an incident opens.
    let flood = Command::new("ip")
        .args(["netns", "exec", &net.b])
        .arg(hping3())
        .args([
            "-q",
            "-S",
            "-p",
            "80",
            "-i",
            "u200",
            "-c",
            "10000",
            "10.213.0.1",
        ])
        .output()
        .expect("hping3");
    assert!(flood.status.success(), "{flood:?}");
    // The flood's incident names the flooder (an interface's own noise, e.g. IPv6 duplicate
    // address detection as it comes up, may be an incident of another culprit before it).
    let names_flooder = |e: &Value| {
        e["event_type"] == "incident_start"
            && e["incident"]["culprits"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["ip"] == "10.213.0.2"))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        let events = read_alerts(&log);
        if let Some(e) = events.iter().find(|e| names_flooder(e)) {
            break e["incident"]["id"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no incident of the flooder: {events:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    // Down: the capture fails, the process stays and says so in its metrics.
    let before = scrape_in(&ns, addr);
    net.set_a(false);
    let down = wait_metrics(&ns, addr, Duration::from_secs(15), "capture down", |e| {
        e.value("netanom_capture_up") == 0.0 && e.value("netanom_capture_errors_total") >= 1.0
    });
    assert!(d.running(), "the daemon exited:\n{}", d.log_text());
    // Up: reopened (backoff at most 5 s), capturing again, counters kept.
    net.set_a(true);
    let up = wait_metrics(
        &ns,
        addr,
        Duration::from_secs(20),
        "capture up again",
        |e| e.value("netanom_capture_up") == 1.0,
    );
    assert!(
        up.value("netanom_packets_total") >= before.value("netanom_packets_total"),
        "counters restarted: the process was restarted"
    );
    wait_metrics(&ns, addr, Duration::from_secs(10), "windows go on", |e| {
        e.value("netanom_windows_total") > up.value("netanom_windows_total") + 2.0
    });
    assert!(
        d.wait_for_message("interface reopened", 0, Duration::from_secs(1))
            .is_some(),
        "{}",
        d.log_text()
    );
    // The incident state survived: the same incident ends by its cooldown.
    let deadline = Instant::now() + Duration::from_secs(30);
    let end = loop {
        let events = read_alerts(&log);
        let end = events
            .iter()
            .find(|e| e["event_type"] == "incident_end" && e["incident"]["id"] == id);
        if let Some(end) = end {
            break end.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the flood's incident did not end: {events:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(end["incident"]["end_reason"], "cooldown", "{end:#}");
    let starts = read_alerts(&log)
        .iter()
        .filter(|e| names_flooder(e))
        .count();
    assert_eq!(starts, 1, "one incident of the flooder across the outage");
    assert!(down.value("netanom_windows_total") >= before.value("netanom_windows_total"));
    d.signal(libc::SIGTERM);
    let status = d
        .wait_exit(Duration::from_secs(15))
        .expect("exit after SIGTERM");
    assert!(status.success(), "{status}:\n{}", d.log_text());
}

// ---------------------------------------------------------------------------------------------
// The system clock
// ---------------------------------------------------------------------------------------------

/// Steps CLOCK_REALTIME by `delta_s` seconds.
fn step_clock(delta_s: i64) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointers to a timespec for both calls.
    unsafe {
        assert_eq!(libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts), 0);
        ts.tv_sec += delta_s as libc::time_t;
        assert_eq!(
            libc::clock_settime(libc::CLOCK_REALTIME, &ts),
            0,
            "clock_settime: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Puts the clock back by what was stepped and not yet undone, when dropped.
struct ClockGuard {
    stepped_s: i64,
}

impl ClockGuard {
    fn step(&mut self, delta_s: i64) {
        step_clock(delta_s);
        self.stepped_s += delta_s;
    }
}

impl Drop for ClockGuard {
    fn drop(&mut self) {
        if self.stepped_s != 0 {
            step_clock(-self.stepped_s);
        }
    }
}

#[test]
fn steps_of_the_system_clock_neither_stall_nor_flood_the_windows() {
    require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let model = model();
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("alerts.jsonl");
    let args = os_args([
        "--interface",
        "lo",
        "--model",
        model.to_str().unwrap(),
        "--alert-log",
        log.to_str().unwrap(),
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    // Only traffic the test makes: none (the metrics port is excluded).
    let mut d = Daemon::start(&args, &[("NETANOM_CAPTURE__BPF_FILTER", "udp port 9")]);
    let addr = d.metrics_addr(Duration::from_secs(30));
    let windows = |e: &Exposition| e.value("netanom_windows_total");
    let wait = |d: &Daemon, what: &str, cond: &dyn Fn(&Exposition) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let e = scrape(addr);
            if cond(&e) {
                return e;
            }
            assert!(Instant::now() < deadline, "{what}:\n{}", d.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let start = wait(&d, "windows close", &|e| windows(e) >= 2.0);
    let mut clock = ClockGuard { stepped_s: 0 };

    // Back by an hour: before, no window closed until the clock caught up (an hour).
    clock.step(-3600);
    assert!(
        d.wait_for_message("the system clock was stepped", 0, Duration::from_secs(10))
            .is_some(),
        "{}",
        d.log_text()
    );
    let after_back = wait(&d, "windows go on after a step back", &|e| {
        windows(e) >= windows(&start) + 6.0
    });
    assert_eq!(after_back.value("netanom_clock_steps_total"), 1.0);
    assert!(d.running());

    // Forward by the hour again: before, 7,200 empty windows at once.
    clock.step(3600);
    assert!(
        d.wait_for_message("the system clock was stepped", 1, Duration::from_secs(10))
            .is_some(),
        "{}",
        d.log_text()
    );
    let t = Instant::now();
    let after_fwd = wait(&d, "windows go on after a step forward", &|e| {
        windows(e) >= windows(&after_back) + 4.0
    });
    assert_eq!(after_fwd.value("netanom_clock_steps_total"), 2.0);
    let elapsed_windows = (t.elapsed().as_secs_f64() + 15.0) / 0.5;
    assert!(
        windows(&after_fwd) - windows(&after_back) < elapsed_windows,
        "a burst of windows after the step: {} then {}",
        windows(&after_back),
        windows(&after_fwd)
    );
    assert_eq!(after_fwd.value("netanom_windows_dropped_total"), 0.0);
    drop(clock);
    d.signal(libc::SIGTERM);
    let status = d
        .wait_exit(Duration::from_secs(15))
        .expect("exit after SIGTERM");
    assert!(status.success(), "{status}:\n{}", d.log_text());
}
