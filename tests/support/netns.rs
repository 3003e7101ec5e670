#![allow(dead_code)] // each test binary uses part of it

//! Network namespaces for the tests that need an interface of their own: two namespaces
//! joined by a veth pair, deleted on drop (also when an assertion fails). Traffic the tests
//! send stays inside them.

use std::process::Command;

/// Runs a command that must succeed.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces joined by a veth pair: `a` (`10.213.<net>.1/30` on `if_a`, the daemon's
/// side) and `b` (`.2/30` on `if_b`, the traffic's side). Names are unique per test process
/// and `tag`. Deleted on drop.
pub struct VethPair {
    pub a: String,
    pub b: String,
    pub if_a: String,
    pub if_b: String,
}

impl VethPair {
    /// Creates the pair; `tag` (one letter) keeps the pairs of one test binary apart.
    pub fn new(tag: &str) -> VethPair {
        let id = std::process::id() % 100_000;
        let (a, b) = (format!("na{tag}-a{id}"), format!("na{tag}-b{id}"));
        let (if_a, if_b) = (format!("n{tag}a{id}"), format!("n{tag}b{id}"));
        let pair = VethPair {
            a: a.clone(),
            b: b.clone(),
            if_a: if_a.clone(),
            if_b: if_b.clone(),
        };
        sh(&["ip", "netns", "add", &a]);
        sh(&["ip", "netns", "add", &b]);
        sh(&[
            "ip", "link", "add", &if_a, "netns", &a, "type", "veth", "peer", "name", &if_b,
            "netns", &b,
        ]);
        for (ns, dev, addr) in [(&a, &if_a, "10.213.0.1/30"), (&b, &if_b, "10.213.0.2/30")] {
            sh(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        pair
    }

    /// Takes the daemon's interface down or up.
    pub fn set_a(&self, up: bool) {
        sh(&[
            "ip",
            "-n",
            &self.a,
            "link",
            "set",
            &self.if_a,
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `f` on a thread that has entered network namespace `ns` (to reach a daemon's
/// 127.0.0.1 inside it).
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: a valid namespace fd; setns affects only this thread.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("netns thread")
}
