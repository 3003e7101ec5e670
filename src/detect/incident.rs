//! The incident state machine: turns the per-window scores into incidents, so that a flood that
//! keeps the score over the threshold for hours is one `Start` and one `End`, not a line per
//! window, and so that two attacks from two hosts are two incidents even when they overlap.
//!
//! A window is *alerting* when its score is strictly above its threshold (a NaN score never is).
//! Each alerting window comes with its [`Culprit`]s: the hosts that explain its deviating
//! features, each with a weight (its share of the explained deviation, 0–1) and a [`Role`].
//! - The window's **primary culprit** P is the heaviest culprit of an attacker-side role
//!   (else of any role) weighing at least [`MIN_CULPRIT_WEIGHT`]; a window may have none.
//! - **P's victim is no attacker.** The host P's packets went to (P's [`Target`]) is never a
//!   substantial culprit, nor keeps another incident open, in a role of the attacker side: what
//!   it is credited with as a sender is its answers or its own traffic. (Replies are credited
//!   to the host they answer in the window already; this also covers what is not recognised as
//!   a reply, e.g. a bare RST from a higher port.)
//! - **Which incident.** An open incident that names P takes the window; else one that names
//!   a *substantial* culprit of the window (weight ≥ [`SECONDARY_SHARE`] × P's and ≥
//!   [`MIN_CULPRIT_WEIGHT`]); else one that names no culprit yet; else the window opens a new
//!   incident (at most [`MAX_OPEN_INCIDENTS`] open: beyond, the most recently alerting one takes
//!   it). A window without P joins the most recently alerting open incident, or opens one.
//!   Among several candidates, the most recently alerting wins.
//! - **New culprits.** P and every substantial culprit that no open incident names join the
//!   incident that took the window (at most [`MAX_CULPRITS`] each) if they weigh at least
//!   [`JOIN_WEIGHT`] — or, for P, if the incident names no culprit yet. A culprit that joins a
//!   reported incident is an event of its own, [`IncidentEvent::Culprit`].
//! - **Kept open.** Another open incident that names a culprit of the window weighing at least
//!   [`MIN_CULPRIT_WEIGHT`] (P's victim aside) counts it as the end of its latest activity (its
//!   culprit is still at work), without counting the window in it.
//! - **Reported.** An incident is reported with [`IncidentEvent::Start`] once it has
//!   `min_windows` alerting windows (1: at once), or at once when one of its windows scores
//!   `loud_ratio` times its threshold or more: persistence is for the marginal one-window
//!   anomalies of normal traffic, and a 2 s scan seen only by the 5 s scale (one window, three
//!   alerting runs at 400 × the threshold) must not be dropped with them.
//! - **Cooldown, per incident.** An incident ends with [`IncidentEvent::End`] (reason
//!   `cooldown`) once every scale has seen `cooldown_windows` × ω_longest of time after its last
//!   alerting window (of any scale). With one scale that is `cooldown_windows` consecutive calm
//!   windows, as in the paper's setting; a shorter dip keeps it open. With several scales
//!   (`0.5,5`), the long windows see a slow scan or a flood's dips as one run, so the short
//!   windows' alerts that belong to it join one incident. An incident that ends before it was
//!   reported (fewer than `min_windows` alerting windows) is dropped silently and counted in
//!   [`IncidentTracker::suppressed`].
//! - [`IncidentTracker::flush`] ends every open incident now (shutdown, or a break in the window
//!   sequence), with that reason.
//!
//! With no culprits at all (every window without P) the rule is the time-only one: one open
//! incident at a time.
//!
//! The tracker is generic over a payload `P` kept for the peak window (e.g. its features and
//! talkers, to explain the incident in the `End` event); it is made by a closure only when a
//! window becomes the new peak, so calm windows cost nothing: a calm window allocates nothing
//! (with no incident open it is two stores), an alerting one a few short lists of culprits.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::window::features::{FeatureSet, Role};
use crate::window::Omega;

/// Least weight (share of a window's explained deviation) of a culprit that can be a window's
/// primary culprit, join an incident, or keep one open.
pub const MIN_CULPRIT_WEIGHT: f64 = 0.1;

/// A culprit of a window is substantial, and may join the primary culprit's incident, when it
/// weighs at least this share of the primary culprit's weight.
pub const SECONDARY_SHARE: f64 = 0.5;

/// Least weight of a culprit joining an incident that already names one.
pub const JOIN_WEIGHT: f64 = 0.25;

/// Most incidents open at once; beyond, the most recently alerting one takes new windows.
pub const MAX_OPEN_INCIDENTS: usize = 16;

/// Most culprits an incident names; later ones are not added (they stay in the explanations).
pub const MAX_CULPRITS: usize = 16;

/// Settings of the state machine (`[alerts]` in the settings file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IncidentConfig {
    /// Consecutive windows at or below the threshold that end an incident (≥ 1).
    pub cooldown_windows: u32,
    /// Alerting windows an incident needs before it is reported (≥ 1).
    pub min_windows: u32,
    /// A window scoring this many times its threshold reports its incident at once, before
    /// `min_windows` (0: never).
    pub loud_ratio: u32,
}

/// Default [`IncidentConfig::loud_ratio`]: above every one-window false incident measured on
/// the drift benchmark (the loudest 87 ×, docs/experiments.md), below the scans it dropped.
pub const DEFAULT_LOUD_RATIO: u32 = 100;

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            cooldown_windows: 3,
            min_windows: 1,
            loud_ratio: DEFAULT_LOUD_RATIO,
        }
    }
}

/// One scored window, as the state machine sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoredWindow {
    /// Index of its scale (0: the shortest ω; always 0 with one scale).
    pub scale: usize,
    /// Window start, ns since the epoch.
    pub start_ns: i64,
    /// Window end (exclusive), ns since the epoch.
    pub end_ns: i64,
    pub score: f64,
    pub threshold: f64,
}

impl ScoredWindow {
    /// Score strictly above the threshold (false for NaN).
    pub fn is_alerting(&self) -> bool {
        self.score > self.threshold
    }

    /// Score ÷ threshold (infinite over a threshold of 0, NaN for a NaN score).
    pub fn ratio(&self) -> f64 {
        self.score / self.threshold
    }

    /// True when this window is further over its threshold than `other` is over its own
    /// (score / threshold; the plain score when the thresholds are equal).
    fn exceeds(&self, other: &ScoredWindow) -> bool {
        if self.threshold == other.threshold || !(self.threshold > 0.0 && other.threshold > 0.0) {
            return self.score > other.score;
        }
        self.score * other.threshold > other.score * self.threshold
    }
}

/// Where a culprit's packets went in a window: the other end of its heaviest flow, and the
/// protocol and ports of most of that flow's packets, when one dominates. Ports are seen from
/// the culprit: `src_port` is its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub ip: IpAddr,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
    pub proto: Option<u8>,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
}

/// A host that explains part of an alerting window's deviation.
#[derive(Clone, Debug, PartialEq)]
pub struct Culprit {
    pub ip: IpAddr,
    /// Its main role in the window (the one with most of its weight).
    pub role: Role,
    /// Its share of the window's explained deviation, 0–1.
    pub weight: f64,
    /// The deviating features it contributed to.
    pub features: FeatureSet,
    /// Whom its packets went to (none for a flood's victim).
    pub target: Option<Target>,
}

impl Culprit {
    /// Ranking order: attacker-side roles first, then heavier first, then by address.
    pub fn ranks_before(&self, other: &Culprit) -> bool {
        rank_key(self.role, self.weight, self.ip) < rank_key(other.role, other.weight, other.ip)
    }
}

/// The sort key of the culprit ranking: attacker side first, weight descending, address.
fn rank_key(role: Role, weight: f64, ip: IpAddr) -> (bool, std::cmp::Reverse<u64>, IpAddr) {
    // Weights are in [0, 1]: their bits order as the numbers do.
    let w = if weight.is_finite() {
        weight.max(0.0)
    } else {
        0.0
    };
    (!role.is_attacker_side(), std::cmp::Reverse(w.to_bits()), ip)
}

/// Sorts culprits in ranking order.
pub fn rank(culprits: &mut [Culprit]) {
    culprits.sort_by_key(|c| rank_key(c.role, c.weight, c.ip));
}

/// A culprit of an incident.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentCulprit {
    pub ip: IpAddr,
    /// Its role in the window where it weighed most.
    pub role: Role,
    /// Its mean weight over the incident's alerting windows (0 in those it was absent from).
    pub weight: f64,
    /// Alerting windows of the incident it was a culprit of.
    pub windows: u64,
    /// Every deviating feature it contributed to.
    pub features: FeatureSet,
    /// Whom its packets went to, in the window where it weighed most.
    pub target: Option<Target>,
    /// Start of the window in which it joined the incident, ns.
    pub joined_ns: i64,
    /// Sum of its window weights.
    weight_sum: f64,
    /// Its largest window weight.
    best: f64,
}

impl IncidentCulprit {
    /// A culprit joining at window `w`.
    fn new(c: &Culprit, w: &ScoredWindow) -> Self {
        IncidentCulprit {
            ip: c.ip,
            role: c.role,
            weight: c.weight,
            windows: 1,
            features: c.features,
            target: c.target,
            joined_ns: w.start_ns,
            weight_sum: c.weight,
            best: c.weight,
        }
    }

    /// The same host as a culprit of another window of the incident.
    fn absorb(&mut self, c: &Culprit) {
        self.weight_sum += c.weight;
        self.windows += 1;
        self.features = self.features.union(c.features);
        if c.weight > self.best {
            self.best = c.weight;
            self.role = c.role;
            self.target = c.target.or(self.target);
        }
    }
}

/// What an incident holds of one scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScaleSummary {
    /// The scale's ω.
    pub omega: Omega,
    /// Its alerting windows in the incident.
    pub alerting_windows: u64,
    /// Its highest score in the incident (NaN before its first alerting window).
    pub peak_score: f64,
    /// The threshold of its latest alerting window (an adaptive threshold moves).
    pub threshold: f64,
    /// Its largest score ÷ threshold, each window against the threshold it was scored with
    /// (NaN before its first alerting window): how far over the incident went, which
    /// `peak_score` over the latest `threshold` does not say when the threshold moved.
    pub peak_ratio: f64,
}

/// Why an incident ended (`incident.end_reason` in the alert log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// `cooldown_windows` consecutive windows at or below the threshold.
    Cooldown,
    /// The daemon is stopping.
    Shutdown,
    /// The window sequence broke (a collapsed clock jump, lost windows): scoring restarts.
    SequenceBreak,
    /// The capture side failed for good (its thread died): the daemon exits for a restart.
    CaptureFailed,
    /// The scorer hit an internal error (a panic) and stopped: the daemon exits for a restart.
    InternalError,
}

/// What is known of an incident so far.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentSummary {
    /// 1, 2, … in this process.
    pub seq: u64,
    /// `<prefix>-<seq>`: unique per host when the prefix is the process start time.
    pub id: String,
    /// Start of the first alerting window, ns since the epoch.
    pub start_ns: i64,
    /// End of the last alerting window so far (or of the last window that kept it open), ns
    /// since the epoch.
    pub last_alert_end_ns: i64,
    /// Alerting windows so far, all scales together.
    pub alerting_windows: u64,
    /// Windows of the shortest ω from the first to the last alerting one, both included (dips
    /// count).
    pub span_windows: u64,
    /// The window furthest over its threshold (the first of equal ones); with one scale, the
    /// highest score.
    pub peak: ScoredWindow,
    /// Per scale, shortest ω first: what each saw of the incident.
    pub scales: Vec<ScaleSummary>,
    /// Its culprits in ranking order: attacker-side roles first, then by weight.
    pub culprits: Vec<IncidentCulprit>,
}

impl IncidentSummary {
    /// The window lengths that alerted in this incident, shortest first.
    pub fn alerting_scales(&self) -> impl Iterator<Item = &ScaleSummary> {
        self.scales.iter().filter(|s| s.alerting_windows > 0)
    }

    /// From the start of the first alerting window to the end of the last one, seconds.
    pub fn duration_s(&self) -> f64 {
        (self.last_alert_end_ns - self.start_ns) as f64 / 1e9
    }

    /// Whether it names `ip` as a culprit.
    pub fn names(&self, ip: IpAddr) -> bool {
        self.culprits.iter().any(|c| c.ip == ip)
    }

    /// Recomputes the mean weights and the ranking after a window.
    fn rerank(&mut self) {
        let n = self.alerting_windows.max(1) as f64;
        for c in &mut self.culprits {
            c.weight = c.weight_sum / n;
        }
        self.culprits
            .sort_by_key(|c| rank_key(c.role, c.weight, c.ip));
    }
}

/// An event for the outputs.
#[derive(Clone, Debug, PartialEq)]
pub enum IncidentEvent<P> {
    /// The incident is reported; `window` is the window that made it so (the first alerting
    /// one when `min_windows` is 1).
    Start {
        incident: IncidentSummary,
        window: ScoredWindow,
    },
    /// A new culprit joined the reported incident at `window`.
    Culprit {
        incident: IncidentSummary,
        window: ScoredWindow,
        culprit: IncidentCulprit,
    },
    /// The incident is over; `window` is the last window observed (the one that completed the
    /// cooldown), `peak_payload` the payload made for the peak window.
    End {
        incident: IncidentSummary,
        reason: EndReason,
        window: ScoredWindow,
        peak_payload: P,
    },
}

impl<P> IncidentEvent<P> {
    /// The incident the event is about.
    pub fn incident(&self) -> &IncidentSummary {
        match self {
            IncidentEvent::Start { incident, .. }
            | IncidentEvent::Culprit { incident, .. }
            | IncidentEvent::End { incident, .. } => incident,
        }
    }
}

struct Open<P> {
    summary: IncidentSummary,
    peak_payload: P,
    reported: bool,
}

/// The state machine. One per scorer; not shared between threads.
pub struct IncidentTracker<P = ()> {
    config: IncidentConfig,
    /// ω of each scale, shortest first.
    omegas: Vec<Omega>,
    /// End of the last window each scale observed, ns (`i64::MIN` before its first).
    seen_until: Vec<i64>,
    /// The last window observed (the window of an `End` event).
    last: Option<ScoredWindow>,
    id_prefix: String,
    reported: u64,
    suppressed: u64,
    suppressed_taken: u64,
    /// Open incidents, oldest first.
    open: Vec<Open<P>>,
}

/// An incident id prefix from the process start time (Unix seconds, hexadecimal): ids then do
/// not repeat across restarts of the daemon on one host.
pub fn default_id_prefix(start: SystemTime) -> String {
    let secs = start
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{secs:x}")
}

/// Which open incident takes an alerting window.
enum Assign {
    /// The open incident at this index.
    Existing(usize),
    /// A new one.
    New,
}

impl<P> IncidentTracker<P> {
    /// A tracker over windows of the scales `omegas` (shortest first; one for the paper's
    /// method) whose incident ids are `<id_prefix>-1`, `<id_prefix>-2`, …
    /// Values below 1 in `config` are taken as 1.
    pub fn new(config: IncidentConfig, omegas: &[Omega], id_prefix: impl Into<String>) -> Self {
        IncidentTracker {
            config: IncidentConfig {
                cooldown_windows: config.cooldown_windows.max(1),
                min_windows: config.min_windows.max(1),
                loud_ratio: config.loud_ratio,
            },
            omegas: omegas.to_vec(),
            seen_until: vec![i64::MIN; omegas.len()],
            last: None,
            id_prefix: id_prefix.into(),
            reported: 0,
            suppressed: 0,
            suppressed_taken: 0,
            open: Vec::new(),
        }
    }

    /// Calm time after the last alert that ends an incident, ns: `cooldown_windows` windows of
    /// the longest scale.
    fn cooldown_ns(&self) -> i64 {
        let longest = self.omegas.last().map_or(0, |o| o.nanos());
        longest.saturating_mul(i64::from(self.config.cooldown_windows))
    }

    /// The configuration in force.
    pub fn config(&self) -> IncidentConfig {
        self.config
    }

    /// Takes new settings (a reload); open incidents continue under them.
    pub fn set_config(&mut self, config: IncidentConfig) {
        self.config = IncidentConfig {
            cooldown_windows: config.cooldown_windows.max(1),
            min_windows: config.min_windows.max(1),
            loud_ratio: config.loud_ratio,
        };
    }

    /// Feeds the next scored window of scale `w.scale` with its culprits (those of an alerting
    /// window; ignored for a calm one); `payload` is called only if this window becomes the
    /// peak of an incident. The events it caused, in order (none for most windows). A calm
    /// window allocates nothing, open incidents or not; an alerting one a few short lists.
    pub fn observe(
        &mut self,
        w: ScoredWindow,
        culprits: &[Culprit],
        payload: impl FnOnce() -> P,
    ) -> Vec<IncidentEvent<P>> {
        if let Some(seen) = self.seen_until.get_mut(w.scale) {
            // In time order within a scale; a new timeline (after a flush) starts over.
            *seen = w.end_ns;
        }
        self.last = Some(w);
        let mut events = Vec::new();
        if self.open.is_empty() && !w.is_alerting() {
            return events;
        }
        let mut taken = None;
        let mut news = Vec::new();
        if w.is_alerting() {
            let (i, new) = self.take_window(w, culprits, payload);
            taken = Some(i);
            news = new;
        }
        // Incidents calm for long enough end (not the one this window extended), removed in
        // place, oldest first (at most MAX_OPEN_INCIDENTS: no list is built for it).
        let cooldown = self.cooldown_ns();
        let mut i = 0;
        while i < self.open.len() {
            let quiet_until = self.open[i]
                .summary
                .last_alert_end_ns
                .saturating_add(cooldown);
            let due = Some(i) != taken && self.seen_until.iter().all(|&s| s >= quiet_until);
            if !due {
                i += 1;
                continue;
            }
            let o = self.open.remove(i);
            events.extend(self.close(o, EndReason::Cooldown, w));
            // The taken incident sits after a removed one: one place earlier now.
            taken = taken.map(|t| if t > i { t - 1 } else { t });
        }
        if let Some(i) = taken {
            events.extend(self.report_if_due(i, w, &news));
        }
        events
    }

    /// Counts an alerting window in the incident the rule gives it (opening one if need be);
    /// returns its index and the culprits that joined it now.
    fn take_window(
        &mut self,
        w: ScoredWindow,
        culprits: &[Culprit],
        payload: impl FnOnce() -> P,
    ) -> (usize, Vec<IpAddr>) {
        let strong = |c: &&Culprit| c.weight >= MIN_CULPRIT_WEIGHT;
        let primary = culprits
            .iter()
            .filter(strong)
            .min_by_key(|c| rank_key(c.role, c.weight, c.ip));
        let victim = primary.and_then(victim_of);
        let substantial: Vec<&Culprit> = match primary {
            Some(p) => culprits
                .iter()
                .filter(strong)
                .filter(|c| !is_victim(c, victim))
                .filter(|c| c.weight >= SECONDARY_SHARE * p.weight)
                .collect(),
            None => Vec::new(),
        };
        let who = Who {
            primary: primary.map(|p| p.ip),
            victim,
        };
        match self.assign(primary, &substantial) {
            Assign::Existing(i) => {
                let joined = self.count_in(i, w, culprits, &substantial, who);
                let o = &mut self.open[i];
                if w.exceeds(&o.summary.peak) {
                    o.summary.peak = w;
                    o.peak_payload = payload();
                }
                (i, joined)
            }
            Assign::New => {
                self.open.push(self.opened(w, payload()));
                let i = self.open.len() - 1;
                (i, self.count_in(i, w, culprits, &substantial, who))
            }
        }
    }

    /// Counts alerting window `w` in incident `i`: its counts, scales, culprits (the
    /// substantial ones no other open incident names join); keeps open the other incidents
    /// whose culprits are in the window. Returns the culprits that joined.
    fn count_in(
        &mut self,
        i: usize,
        w: ScoredWindow,
        culprits: &[Culprit],
        substantial: &[&Culprit],
        who: Who,
    ) -> Vec<IpAddr> {
        let primary = who.primary;
        let named_elsewhere = |ip: IpAddr| {
            self.open
                .iter()
                .enumerate()
                .any(|(j, o)| j != i && o.summary.names(ip))
        };
        // The first culprit of an incident always joins it; later ones only when they weigh
        // JOIN_WEIGHT (a normal host's share of a weak window is no culprit).
        let first = self.open[i].summary.culprits.is_empty();
        let admit: Vec<IpAddr> = substantial
            .iter()
            .filter(|c| (first && Some(c.ip) == primary) || c.weight >= JOIN_WEIGHT)
            .map(|c| c.ip)
            .filter(|&ip| !named_elsewhere(ip))
            .collect();
        let shortest = self.shortest_ns();
        // Other incidents whose culprits are still at work stay open (not for P's victim: its
        // answers to P are P's work).
        for (j, o) in self.open.iter_mut().enumerate() {
            let at_work = culprits.iter().any(|c| {
                c.weight >= MIN_CULPRIT_WEIGHT && !is_victim(c, who.victim) && o.summary.names(c.ip)
            });
            if j != i && at_work {
                o.summary.last_alert_end_ns = o.summary.last_alert_end_ns.max(w.end_ns);
                o.summary.span_windows = span(&o.summary, shortest);
            }
        }
        let s = &mut self.open[i].summary;
        s.alerting_windows += 1;
        s.start_ns = s.start_ns.min(w.start_ns);
        s.last_alert_end_ns = s.last_alert_end_ns.max(w.end_ns);
        if let Some(sc) = s.scales.get_mut(w.scale) {
            if sc.alerting_windows == 0 || w.score > sc.peak_score {
                sc.peak_score = w.score;
            }
            if sc.alerting_windows == 0 || w.ratio() > sc.peak_ratio {
                sc.peak_ratio = w.ratio();
            }
            sc.alerting_windows += 1;
            sc.threshold = w.threshold;
        }
        let mut joined = Vec::new();
        for c in culprits {
            if let Some(ic) = s.culprits.iter_mut().find(|x| x.ip == c.ip) {
                ic.absorb(c);
            } else if admit.contains(&c.ip) && s.culprits.len() < MAX_CULPRITS {
                s.culprits.push(IncidentCulprit::new(c, &w));
                joined.push(c.ip);
            }
        }
        s.rerank();
        s.span_windows = span(s, shortest);
        joined
    }

    /// A new incident at alerting window `w` (counted by the caller).
    fn opened(&self, w: ScoredWindow, peak_payload: P) -> Open<P> {
        let scales = self
            .omegas
            .iter()
            .map(|&omega| ScaleSummary {
                omega,
                alerting_windows: 0,
                peak_score: f64::NAN,
                threshold: f64::NAN,
                peak_ratio: f64::NAN,
            })
            .collect();
        Open {
            summary: IncidentSummary {
                seq: 0,
                id: String::new(),
                start_ns: w.start_ns,
                last_alert_end_ns: w.end_ns,
                alerting_windows: 0,
                span_windows: 1,
                peak: w,
                scales,
                culprits: Vec::new(),
            },
            peak_payload,
            reported: false,
        }
    }

    /// The rule of the module doc: which open incident takes a window whose primary culprit
    /// is `primary` with these substantial culprits.
    fn assign(&self, primary: Option<&Culprit>, substantial: &[&Culprit]) -> Assign {
        // The most recently alerting of the open incidents that pass `pick`.
        let latest = |pick: &dyn Fn(&IncidentSummary) -> bool| {
            self.open
                .iter()
                .enumerate()
                .filter(|(_, o)| pick(&o.summary))
                .max_by_key(|(i, o)| (o.summary.last_alert_end_ns, *i))
                .map(|(i, _)| Assign::Existing(i))
        };
        let Some(p) = primary else {
            return latest(&|_| true).unwrap_or(Assign::New);
        };
        latest(&|s| s.names(p.ip))
            .or_else(|| latest(&|s| substantial.iter().any(|q| s.names(q.ip))))
            .or_else(|| latest(&|s| s.culprits.is_empty()))
            .or_else(|| {
                (self.open.len() >= MAX_OPEN_INCIDENTS)
                    .then(|| latest(&|_| true))
                    .flatten()
            })
            .unwrap_or(Assign::New)
    }

    /// ω of the shortest scale, ns.
    fn shortest_ns(&self) -> i64 {
        self.omegas.first().map_or(1, |o| o.nanos())
    }

    /// Ends every open incident now, oldest first; the end events of those that were
    /// reported.
    pub fn flush(&mut self, reason: EndReason) -> Vec<IncidentEvent<P>> {
        self.seen_until.fill(i64::MIN);
        let mut events = Vec::new();
        for o in std::mem::take(&mut self.open) {
            let window = self.last.unwrap_or(o.summary.peak);
            events.extend(self.close(o, reason, window));
        }
        events
    }

    /// True while a reported incident is open (the `netanom_incident_active` gauge).
    pub fn is_active(&self) -> bool {
        self.open.iter().any(|o| o.reported)
    }

    /// Reported incidents open now (the `netanom_incidents_open` gauge).
    pub fn open_incidents(&self) -> usize {
        self.open.iter().filter(|o| o.reported).count()
    }

    /// The open, reported incidents, oldest first.
    pub fn current(&self) -> impl Iterator<Item = &IncidentSummary> {
        self.open.iter().filter(|o| o.reported).map(|o| &o.summary)
    }

    /// Incidents reported so far (Start events emitted).
    pub fn reported(&self) -> u64 {
        self.reported
    }

    /// Incidents that ended with fewer than `min_windows` alerting windows (never reported).
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    /// Suppressed incidents since the last call (for a counter metric).
    pub fn take_suppressed(&mut self) -> u64 {
        let new = self.suppressed - self.suppressed_taken;
        self.suppressed_taken = self.suppressed;
        new
    }

    /// ω of each scale, shortest first.
    pub fn omegas(&self) -> &[Omega] {
        &self.omegas
    }

    /// After incident `i` took window `w`: its Start once it has `min_windows` alerting
    /// windows or a window at `loud_ratio` × its threshold, or, already reported, a Culprit
    /// event per culprit that joined now.
    fn report_if_due(
        &mut self,
        i: usize,
        w: ScoredWindow,
        joined: &[IpAddr],
    ) -> Vec<IncidentEvent<P>> {
        let min_windows = u64::from(self.config.min_windows);
        let loud_ratio = self.config.loud_ratio;
        let Some(o) = self.open.get_mut(i) else {
            return Vec::new();
        };
        if o.reported {
            return joined
                .iter()
                .filter_map(|ip| o.summary.culprits.iter().find(|c| c.ip == *ip))
                .map(|c| IncidentEvent::Culprit {
                    incident: o.summary.clone(),
                    window: w,
                    culprit: c.clone(),
                })
                .collect();
        }
        // NaN peak ratios (scales without an alerting window yet) compare false.
        let loud = loud_ratio > 0
            && o.summary
                .scales
                .iter()
                .any(|sc| sc.peak_ratio >= f64::from(loud_ratio));
        if o.summary.alerting_windows < min_windows && !loud {
            return Vec::new();
        }
        self.reported += 1;
        o.reported = true;
        o.summary.seq = self.reported;
        o.summary.id = format!("{}-{}", self.id_prefix, self.reported);
        vec![IncidentEvent::Start {
            incident: o.summary.clone(),
            window: w,
        }]
    }

    /// Ends an incident taken out of the open list; its End event, if it was reported.
    fn close(
        &mut self,
        o: Open<P>,
        reason: EndReason,
        window: ScoredWindow,
    ) -> Option<IncidentEvent<P>> {
        if !o.reported {
            self.suppressed += 1;
            return None;
        }
        Some(IncidentEvent::End {
            incident: o.summary,
            reason,
            window,
            peak_payload: o.peak_payload,
        })
    }
}

/// The window's primary culprit and its victim, as [`IncidentTracker::count_in`] needs them.
#[derive(Clone, Copy, Debug)]
struct Who {
    primary: Option<IpAddr>,
    victim: Option<IpAddr>,
}

/// The host a primary culprit's packets went to, when it is another host: its victim.
fn victim_of(primary: &Culprit) -> Option<IpAddr> {
    primary.target.map(|t| t.ip).filter(|&ip| ip != primary.ip)
}

/// True when `c` is the primary's victim credited on the attacker side (what it sent: its
/// answers or its own traffic); as a flood's victim (`flood_target`) it stays what it is.
fn is_victim(c: &Culprit, victim: Option<IpAddr>) -> bool {
    Some(c.ip) == victim && c.role.is_attacker_side()
}

/// Windows of `shortest_ns` from the incident's start to the end of its last alert.
fn span(s: &IncidentSummary, shortest_ns: i64) -> u64 {
    let ns = s.last_alert_end_ns.saturating_sub(s.start_ns).max(0);
    let d = shortest_ns.max(1);
    u64::try_from((ns + d - 1) / d).unwrap_or(0).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;
    const T: f64 = 1.0;

    /// Window k of 10 s with score `score`.
    fn win(k: i64, score: f64) -> ScoredWindow {
        ScoredWindow {
            scale: 0,
            start_ns: k * 10 * S,
            end_ns: (k + 1) * 10 * S,
            score,
            threshold: T,
        }
    }

    /// Feeds scores from window 0 on; returns (window index, event) for each event, the payload
    /// being the window index.
    fn run(tr: &mut IncidentTracker<i64>, scores: &[f64]) -> Vec<(i64, IncidentEvent<i64>)> {
        let mut out = Vec::new();
        for (k, &s) in scores.iter().enumerate() {
            let k = k as i64;
            for e in tr.observe(win(k, s), &[], || k) {
                out.push((k, e));
            }
        }
        out
    }

    fn tracker(cooldown: u32, min: u32) -> IncidentTracker<i64> {
        IncidentTracker::new(
            IncidentConfig {
                cooldown_windows: cooldown,
                min_windows: min,
                loud_ratio: 0,
            },
            &[Omega::from_micros(10_000_000).unwrap()],
            "t",
        )
    }

    fn end_of(e: &IncidentEvent<i64>) -> (&IncidentSummary, EndReason, ScoredWindow, i64) {
        match e {
            IncidentEvent::End {
                incident,
                reason,
                window,
                peak_payload,
            } => (incident, *reason, *window, *peak_payload),
            other => panic!("expected End, got {other:?}"),
        }
    }

    fn start_of(e: &IncidentEvent<i64>) -> (&IncidentSummary, ScoredWindow) {
        match e {
            IncidentEvent::Start { incident, window } => (incident, *window),
            other => panic!("expected Start, got {other:?}"),
        }
    }

    #[test]
    fn calm_stream_emits_nothing() {
        let mut tr = tracker(3, 1);
        assert!(
            run(&mut tr, &[0.1, 0.5, 1.0, 0.9]).is_empty(),
            "score equal to the threshold is calm"
        );
        assert!(!tr.is_active());
        assert!(tr.flush(EndReason::Shutdown).is_empty());
    }

    #[test]
    fn single_window_spike() {
        let mut tr = tracker(3, 1);
        let ev = run(&mut tr, &[0.1, 0.2, 5.0, 0.1, 0.1, 0.1, 0.1]);
        assert_eq!(ev.len(), 2, "{ev:?}");
        let (k, ref e) = ev[0];
        assert_eq!(k, 2);
        let (inc, w) = start_of(e);
        assert_eq!(inc.id, "t-1");
        assert_eq!(inc.start_ns, 20 * S);
        assert_eq!(inc.alerting_windows, 1);
        assert_eq!(w, win(2, 5.0));
        let (k, ref e) = ev[1];
        assert_eq!(k, 5, "ends at the third calm window");
        let (inc, reason, w, payload) = end_of(e);
        assert_eq!(reason, EndReason::Cooldown);
        assert_eq!(inc.id, "t-1");
        assert_eq!(inc.start_ns, 20 * S);
        assert_eq!(inc.last_alert_end_ns, 30 * S);
        assert_eq!(inc.duration_s(), 10.0);
        assert_eq!(inc.alerting_windows, 1);
        assert_eq!(inc.span_windows, 1);
        assert_eq!(inc.peak, win(2, 5.0));
        assert_eq!(payload, 2);
        assert_eq!(w, win(5, 0.1));
        assert!(!tr.is_active());
    }

    #[test]
    fn long_run_is_one_incident() {
        let mut tr = tracker(3, 1);
        let mut scores = vec![0.1];
        scores.extend((0..10_000).map(|i| 2.0 + (i % 100) as f64)); // peak 101 first at index 1+99
        scores.extend([0.1, 0.1, 0.1]);
        let ev = run(&mut tr, &scores);
        assert_eq!(ev.len(), 2, "a flood gives two events, not one per window");
        let (k, _) = ev[0];
        assert_eq!(k, 1);
        let (inc, reason, _, payload) = end_of(&ev[1].1);
        assert_eq!(reason, EndReason::Cooldown);
        assert_eq!(inc.alerting_windows, 10_000);
        assert_eq!(inc.span_windows, 10_000);
        assert_eq!(inc.peak.score, 101.0);
        assert_eq!(payload, 100, "first window with the peak score");
        assert_eq!(inc.duration_s(), 100_000.0);
        assert_eq!(tr.reported(), 1);
    }

    #[test]
    fn dip_shorter_than_cooldown_is_one_incident() {
        let mut tr = tracker(3, 1);
        // alert, 2 calm (< 3), alert again, then calm for good
        let ev = run(&mut tr, &[2.0, 0.1, 0.1, 3.0, 0.1, 0.1, 0.1]);
        assert_eq!(ev.len(), 2, "{ev:?}");
        start_of(&ev[0].1);
        let (inc, _, _, payload) = end_of(&ev[1].1);
        assert_eq!(inc.alerting_windows, 2);
        assert_eq!(inc.span_windows, 4);
        assert_eq!(inc.start_ns, 0);
        assert_eq!(inc.last_alert_end_ns, 40 * S);
        assert_eq!(inc.peak.score, 3.0);
        assert_eq!(payload, 3);
        assert_eq!(ev[1].0, 6);
    }

    #[test]
    fn dip_as_long_as_cooldown_gives_two_incidents() {
        let mut tr = tracker(3, 1);
        let ev = run(&mut tr, &[2.0, 0.1, 0.1, 0.1, 3.0, 0.1, 0.1, 0.1]);
        let kinds: Vec<_> = ev
            .iter()
            .map(|(k, e)| match e {
                IncidentEvent::Start { incident, .. } => (*k, "start", incident.id.clone()),
                IncidentEvent::End { incident, .. } => (*k, "end", incident.id.clone()),
                IncidentEvent::Culprit { incident, .. } => (*k, "culprit", incident.id.clone()),
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                (0, "start", "t-1".to_string()),
                (3, "end", "t-1".to_string()),
                (4, "start", "t-2".to_string()),
                (7, "end", "t-2".to_string()),
            ]
        );
        assert_eq!(tr.reported(), 2);
    }

    #[test]
    fn shutdown_flush_ends_open_incident() {
        let mut tr = tracker(3, 1);
        let ev = run(&mut tr, &[0.1, 4.0, 6.0, 0.5]);
        assert_eq!(ev.len(), 1);
        assert!(tr.is_active());
        assert_eq!(tr.current().next().unwrap().alerting_windows, 2);
        assert_eq!(tr.open_incidents(), 1);
        let mut ended = tr.flush(EndReason::Shutdown);
        assert_eq!(ended.len(), 1);
        let e = ended.pop().expect("an End event");
        let (inc, reason, w, payload) = end_of(&e);
        assert_eq!(reason, EndReason::Shutdown);
        assert_eq!(serde_json::to_string(&reason).unwrap(), "\"shutdown\"");
        assert_eq!(inc.alerting_windows, 2);
        assert_eq!(inc.peak.score, 6.0);
        assert_eq!(payload, 2);
        assert_eq!(w, win(3, 0.5), "the last window observed");
        assert!(!tr.is_active());
        assert!(
            tr.flush(EndReason::Shutdown).is_empty(),
            "nothing left to flush"
        );
    }

    #[test]
    fn min_windows_suppresses_short_bursts() {
        let mut tr = tracker(2, 3);
        // two alerting windows then cooldown: suppressed
        let ev = run(&mut tr, &[2.0, 2.0, 0.1, 0.1]);
        assert!(ev.is_empty(), "{ev:?}");
        assert_eq!(tr.suppressed(), 1);
        assert_eq!(tr.take_suppressed(), 1);
        assert_eq!(tr.take_suppressed(), 0);
        // three alerting windows (with a short dip): reported at the third, start = the first
        let mut tr = tracker(2, 3);
        let ev = run(&mut tr, &[2.0, 0.1, 2.0, 9.0, 0.1, 0.1]);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(ev[0].0, 3);
        let (inc, w) = start_of(&ev[0].1);
        assert_eq!(inc.start_ns, 0);
        assert_eq!(inc.alerting_windows, 3);
        assert_eq!(inc.id, "t-1");
        assert_eq!(w.score, 9.0);
        // a pending (unreported) incident is not flushed as an End
        let mut tr = tracker(2, 3);
        run(&mut tr, &[2.0]);
        assert!(!tr.is_active());
        assert!(tr.flush(EndReason::Shutdown).is_empty());
        assert_eq!(tr.suppressed(), 1);
    }

    #[test]
    fn a_loud_window_is_reported_before_min_windows() {
        let loud = |ratio: u32| {
            IncidentTracker::<i64>::new(
                IncidentConfig {
                    cooldown_windows: 2,
                    min_windows: 4,
                    loud_ratio: ratio,
                },
                &[Omega::from_micros(10_000_000).unwrap()],
                "t",
            )
        };
        // One window at 400 × the threshold: reported at once, not dropped with the blips.
        let mut tr = loud(100);
        let ev = run(&mut tr, &[400.0 * T, 0.1, 0.1]);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(ev[0].0, 0, "reported with its first window");
        assert_eq!(start_of(&ev[0].1).0.alerting_windows, 1);
        assert_eq!(end_of(&ev[1].1).1, EndReason::Cooldown);
        assert_eq!(tr.suppressed(), 0);
        // Just below the ratio: persistence still applies, the short incident is dropped.
        let mut tr = loud(100);
        assert!(run(&mut tr, &[99.0 * T, 2.0 * T, 0.1, 0.1]).is_empty());
        assert_eq!(tr.suppressed(), 1);
        // A quiet start then a loud window: reported at the loud one (the second window).
        let mut tr = loud(100);
        let ev = run(&mut tr, &[2.0 * T, 150.0 * T, 0.1, 0.1]);
        assert_eq!(ev[0].0, 1, "{ev:?}");
        assert_eq!(
            start_of(&ev[0].1).0.start_ns,
            0,
            "the incident starts with its first window"
        );
        // 0 turns it off.
        let mut tr = loud(0);
        assert!(run(&mut tr, &[1000.0 * T, 0.1, 0.1]).is_empty());
        assert_eq!(tr.suppressed(), 1);
    }

    #[test]
    fn nan_score_is_calm_and_zero_config_is_one() {
        let mut tr = tracker(0, 0);
        assert_eq!(
            tr.config(),
            IncidentConfig {
                cooldown_windows: 1,
                min_windows: 1,
                loud_ratio: 0,
            }
        );
        let ev = run(&mut tr, &[f64::NAN, 2.0, f64::NAN]);
        assert_eq!(ev.len(), 2);
        assert_eq!(end_of(&ev[1].1).1, EndReason::Cooldown);
    }

    #[test]
    fn payload_made_only_for_peaks() {
        let mut tr: IncidentTracker<i64> = tracker(3, 1);
        let mut calls = 0;
        for (k, s) in [0.1, 2.0, 1.5, 3.0, 2.5, 0.1].into_iter().enumerate() {
            tr.observe(win(k as i64, s), &[], || {
                calls += 1;
                k as i64
            });
        }
        assert_eq!(calls, 2, "the first alerting window and the new peak");
    }

    #[test]
    fn id_prefix_from_start_time() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(0x6b0c_1e8b);
        assert_eq!(default_id_prefix(t), "6b0c1e8b");
    }

    /// Window k of scale `scale` (ω = `omega_s` seconds) with `score`.
    fn swin(scale: usize, omega_s: i64, k: i64, score: f64) -> ScoredWindow {
        ScoredWindow {
            scale,
            start_ns: k * omega_s * S,
            end_ns: (k + 1) * omega_s * S,
            score,
            threshold: T,
        }
    }

    /// Feeds 1 s and 10 s windows in the order a decode closes them: the 10 s window after the
    /// ten 1 s windows it covers. `short(k)`, `long(k)`: the scores of window k.
    fn two_scales(
        tr: &mut IncidentTracker<i64>,
        seconds: i64,
        short: impl Fn(i64) -> f64,
        long: impl Fn(i64) -> f64,
    ) -> Vec<(i64, IncidentEvent<i64>)> {
        let mut out = Vec::new();
        for k in 0..seconds {
            for e in tr.observe(swin(0, 1, k, short(k)), &[], || k) {
                out.push((k, e));
            }
            if (k + 1) % 10 == 0 {
                let j = k / 10;
                for e in tr.observe(swin(1, 10, j, long(j)), &[], || 1000 + j) {
                    out.push((k, e));
                }
            }
        }
        out
    }

    fn scales_tracker() -> IncidentTracker<i64> {
        IncidentTracker::new(
            IncidentConfig::default(),
            &[
                Omega::from_micros(1_000_000).unwrap(),
                Omega::from_micros(10_000_000).unwrap(),
            ],
            "m",
        )
    }

    #[test]
    fn a_slow_scan_the_long_windows_see_is_one_incident_across_scales() {
        let mut tr = scales_tracker();
        // 60 s of scan from t = 100 s: the 1 s windows alert every third second only (7
        // incidents on their own), the 10 s windows alert throughout.
        let scan = |t: i64| (100..160).contains(&t);
        let ev = two_scales(
            &mut tr,
            300,
            |k| if scan(k) && k % 3 == 0 { 3.0 } else { 0.1 },
            |j| if scan(j * 10) { 2.0 } else { 0.1 },
        );
        assert_eq!(ev.len(), 2, "{ev:?}");
        let (inc, w) = start_of(&ev[0].1);
        assert_eq!(
            (ev[0].0, w.scale),
            (102, 0),
            "the first short alert reports it"
        );
        assert_eq!(inc.id, "m-1");
        let (inc, reason, _, payload) = end_of(&ev[1].1);
        assert_eq!(reason, EndReason::Cooldown);
        assert_eq!(
            inc.start_ns,
            100 * S,
            "the long window that starts the scan"
        );
        assert_eq!(inc.last_alert_end_ns, 160 * S);
        assert_eq!(inc.alerting_windows, 20 + 6);
        let scales: Vec<_> = inc.alerting_scales().map(|s| s.alerting_windows).collect();
        assert_eq!(scales, vec![20, 6]);
        assert_eq!(inc.scales[0].peak_score, 3.0);
        assert_eq!(inc.span_windows, 60);
        assert_eq!(
            payload, 102,
            "the peak is the furthest over its threshold: 3.0 at 1 s"
        );
        // Ends once both scales have been calm for 3 long windows (30 s) after 160 s.
        assert_eq!(ev[1].0, 189);
    }

    #[test]
    fn attacks_far_apart_stay_separate_incidents_across_scales() {
        let mut tr = scales_tracker();
        let ev = two_scales(
            &mut tr,
            300,
            |k| if k == 20 || k == 200 { 5.0 } else { 0.1 },
            |_| 0.1,
        );
        let ids: Vec<_> = ev
            .iter()
            .filter_map(|(_, e)| match e {
                IncidentEvent::Start { incident, .. } => Some(incident.id.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(ids, ["m-1", "m-2"]);
        assert_eq!(ev.len(), 4);
        let (inc, _, _, _) = end_of(&ev[1].1);
        assert_eq!(inc.alerting_scales().count(), 1);
    }

    /// A culprit of a window.
    fn cw(ip: &str, role: Role, weight: f64) -> Culprit {
        Culprit {
            ip: ip.parse().unwrap(),
            role,
            weight,
            features: FeatureSet::default(),
            target: None,
        }
    }

    /// Feeds 1 s and 10 s windows for `seconds` (as [`two_scales`]); `at(t)` gives the
    /// alerting state and culprits of the window starting at t seconds, and of the long window
    /// covering it (the culprits of its last second). Returns (second, event kind, id, culprit
    /// IPs of the incident).
    fn culprit_run(
        tr: &mut IncidentTracker<i64>,
        seconds: i64,
        at: impl Fn(i64) -> Vec<Culprit>,
    ) -> Vec<(i64, &'static str, String, Vec<String>)> {
        let mut out = Vec::new();
        let mut push = |k: i64, evs: Vec<IncidentEvent<i64>>| {
            for e in evs {
                let kind = match &e {
                    IncidentEvent::Start { .. } => "start",
                    IncidentEvent::Culprit { .. } => "culprit",
                    IncidentEvent::End { .. } => "end",
                };
                let inc = e.incident();
                let ips = inc.culprits.iter().map(|c| c.ip.to_string()).collect();
                out.push((k, kind, inc.id.clone(), ips));
            }
        };
        for k in 0..seconds {
            let c = at(k);
            let score = if c.is_empty() { 0.1 } else { 3.0 };
            push(k, tr.observe(swin(0, 1, k, score), &c, || k));
            if (k + 1) % 10 == 0 {
                let j = k / 10;
                let c = (j * 10..=k)
                    .rev()
                    .map(&at)
                    .find(|c| !c.is_empty())
                    .unwrap_or_default();
                let score = if c.is_empty() { 0.1 } else { 2.0 };
                push(k, tr.observe(swin(1, 10, j, score), &c, || 1000 + j));
            }
        }
        push(seconds, tr.flush(EndReason::Shutdown));
        out
    }

    const A: &str = "127.0.66.1";
    const B: &str = "127.0.66.2";
    const V: &str = "127.0.0.41";

    #[test]
    fn a_fast_and_a_slow_scan_from_two_hosts_are_two_incidents_while_they_overlap() {
        let mut tr = scales_tracker();
        // A scans fast from 100 to 130 s; B slowly from 124 to 197 s: a tiny share while A
        // runs, most of the deviation after.
        let ev = culprit_run(&mut tr, 300, |t| {
            let a = (100..130).contains(&t);
            let b = (124..197).contains(&t);
            match (a, b) {
                (true, true) => vec![
                    cw(A, Role::Source, 0.9),
                    cw(V, Role::Source, 0.08),
                    cw(B, Role::Source, 0.01),
                ],
                (true, false) => vec![cw(A, Role::Source, 0.92), cw(V, Role::Source, 0.08)],
                (false, true) => vec![cw(B, Role::ReplyTarget, 0.85), cw(V, Role::Source, 0.1)],
                _ => vec![],
            }
        });
        let starts: Vec<_> = ev.iter().filter(|e| e.1 == "start").collect();
        assert_eq!(starts.len(), 2, "{ev:#?}");
        assert_eq!(
            (starts[0].0, starts[0].3.as_slice()),
            (100, [A.to_string()].as_slice())
        );
        assert_eq!(
            (starts[1].0, starts[1].3.as_slice()),
            (130, [B.to_string()].as_slice())
        );
        let ends: Vec<_> = ev.iter().filter(|e| e.1 == "end").collect();
        assert_eq!(ends.len(), 2, "{ev:#?}");
        // A's incident ends 30 s (3 long windows) after its last alert, while B's goes on.
        assert_eq!((ends[0].0, ends[0].2.as_str()), (159, "m-1"));
        assert_eq!(ends[0].3, [A]);
        assert_eq!((ends[1].0, ends[1].2.as_str()), (229, "m-2"));
        assert_eq!(ends[1].3, [B]);
        assert!(ev.iter().all(|e| e.1 != "culprit"), "{ev:#?}");
    }

    #[test]
    fn a_flood_with_dips_from_one_host_is_one_incident() {
        let mut tr = tracker(3, 1);
        // A floods with calm windows between (shorter than the cooldown); some alerting
        // windows name no culprit (all traffic gone: the empty window itself is the anomaly).
        let mut events = Vec::new();
        for k in 0..40i64 {
            let (score, c) = match k % 4 {
                _ if k >= 30 => (0.1, vec![]),
                0 | 1 => (5.0, vec![cw(A, Role::Source, 0.97)]),
                2 => (4.0, vec![]),
                _ => (0.1, vec![]),
            };
            events.extend(tr.observe(win(k, score), &c, || k));
        }
        assert_eq!(events.len(), 2, "{events:#?}");
        let (inc, _, _, _) = end_of(&events[1]);
        assert_eq!(inc.alerting_windows, 8 * 3 - 1);
        assert_eq!(inc.culprits.len(), 1);
        assert_eq!(inc.culprits[0].ip.to_string(), A);
        assert_eq!(inc.culprits[0].windows, 16);
        assert!((inc.culprits[0].weight - 0.97 * 16.0 / 23.0).abs() < 1e-12);
    }

    #[test]
    fn a_second_host_joining_a_flood_is_a_culprit_event_of_the_same_incident() {
        let mut tr = tracker(3, 1);
        let mut events = Vec::new();
        for k in 0..20i64 {
            let c = match k {
                0..=4 => vec![cw(A, Role::Source, 0.95)],
                5..=11 => vec![cw(A, Role::Source, 0.6), cw(B, Role::Source, 0.35)],
                // B now the heavier one: still the same incident, which names it.
                12..=14 => vec![cw(B, Role::Source, 0.7), cw(A, Role::Source, 0.25)],
                _ => vec![],
            };
            let score = if c.is_empty() { 0.1 } else { 6.0 };
            events.extend(tr.observe(win(k, score), &c, || k));
        }
        let kinds: Vec<_> = events
            .iter()
            .map(|e| match e {
                IncidentEvent::Start { .. } => "start",
                IncidentEvent::Culprit {
                    culprit, window, ..
                } => {
                    assert_eq!(culprit.ip.to_string(), B);
                    assert_eq!(window.start_ns, 50 * S);
                    assert_eq!(culprit.joined_ns, 50 * S);
                    "culprit"
                }
                IncidentEvent::End { .. } => "end",
            })
            .collect();
        assert_eq!(kinds, ["start", "culprit", "end"]);
        let (inc, _, _, _) = end_of(&events[2]);
        let ips: Vec<String> = inc.culprits.iter().map(|c| c.ip.to_string()).collect();
        assert_eq!(ips, [A, B], "A weighs more over the incident");
        assert_eq!(inc.alerting_windows, 15);
        assert!(
            (inc.culprits[0].weight - (5.0 * 0.95 + 7.0 * 0.6 + 3.0 * 0.25) / 15.0).abs() < 1e-12
        );
        assert_eq!(inc.culprits[1].windows, 10);
    }

    #[test]
    fn two_attacks_from_two_hosts_twenty_seconds_apart_are_two_incidents() {
        // ω = 10 s, cooldown 3: the second attack starts within A's cooldown.
        let mut tr = tracker(3, 1);
        let mut events = Vec::new();
        for k in 0..20i64 {
            let c = match k {
                0..=3 => vec![cw(A, Role::Source, 0.9)],
                5..=8 => vec![cw(B, Role::Source, 0.9), cw(V, Role::Source, 0.05)],
                _ => vec![],
            };
            let score = if c.is_empty() { 0.1 } else { 6.0 };
            for e in tr.observe(win(k, score), &c, || k) {
                events.push((k, e));
            }
        }
        let summary: Vec<_> = events
            .iter()
            .map(|(k, e)| {
                (
                    *k,
                    matches!(e, IncidentEvent::Start { .. }),
                    e.incident().id.clone(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (0, true, "t-1".to_string()),
                // B's attack starts within A's cooldown: an incident of its own.
                (5, true, "t-2".to_string()),
                (6, false, "t-1".to_string()),
                (11, false, "t-2".to_string()),
            ]
        );
        // With no culprits the same windows would be one incident (time only).
        let mut tr = tracker(3, 1);
        let n = (0..20i64)
            .flat_map(|k| {
                tr.observe(
                    win(
                        k,
                        if (0..4).contains(&k) || (5..9).contains(&k) {
                            6.0
                        } else {
                            0.1
                        },
                    ),
                    &[],
                    || k,
                )
            })
            .count();
        assert_eq!(n, 2);
    }

    #[test]
    fn attacker_side_roles_rank_first_and_rotating_sources_stay_one_incident() {
        let mut c = vec![
            cw(V, Role::FloodTarget, 0.8),
            cw(B, Role::Source, 0.1),
            cw(A, Role::ReplyTarget, 0.15),
        ];
        rank(&mut c);
        let ips: Vec<_> = c.iter().map(|c| c.ip.to_string()).collect();
        assert_eq!(ips, [A, B, V]);
        assert!(c[0].ranks_before(&c[2]));
        // Bots taking turns as the heaviest source: each window's primary is named by the
        // incident or comes with one of its culprits.
        let bots = ["10.9.0.1", "10.9.0.2", "10.9.0.3", "10.9.0.4"];
        let mut tr = tracker(3, 1);
        let mut events = Vec::new();
        for k in 0..12i64 {
            let (p, q) = (bots[(k as usize) % 4], bots[(k as usize + 3) % 4]);
            let c = vec![cw(p, Role::Source, 0.3), cw(q, Role::Source, 0.25)];
            events.extend(tr.observe(win(k, 4.0), &c, || k));
        }
        events.extend(tr.flush(EndReason::Shutdown));
        let starts = events
            .iter()
            .filter(|e| matches!(e, IncidentEvent::Start { .. }))
            .count();
        assert_eq!(starts, 1, "{events:#?}");
        let (inc, _, _, _) = end_of(events.last().unwrap());
        assert_eq!(inc.culprits.len(), 4);
        // A flood's victim alone is a primary culprit: the incident names it.
        let mut tr = tracker(3, 1);
        let ev = tr.observe(win(0, 4.0), &[cw(V, Role::FloodTarget, 0.9)], || 0);
        let (inc, _) = start_of(&ev[0]);
        assert_eq!(inc.culprits[0].role, Role::FloodTarget);
    }

    /// A culprit of a window whose packets went to `target`.
    fn toward(ip: &str, role: Role, weight: f64, target: &str) -> Culprit {
        Culprit {
            target: Some(Target {
                ip: target.parse().unwrap(),
                proto: Some(6),
                src_port: None,
                dst_port: None,
            }),
            ..cw(ip, role, weight)
        }
    }

    #[test]
    fn a_victim_s_answers_never_make_it_a_culprit_nor_keep_an_incident_open() {
        // A scans V, then B scans V within A's cooldown. V's answers weigh half as much as
        // each attacker (as sender: what is not taken for a reply). V neither joins A's
        // incident nor brings B's windows into it, nor keeps it open while B runs.
        let mut tr = tracker(3, 1);
        let mut events = Vec::new();
        for k in 0..30i64 {
            let c = match k {
                0..=3 => vec![
                    toward(A, Role::Source, 0.55, V),
                    toward(V, Role::Source, 0.4, A),
                ],
                5..=12 => vec![
                    toward(B, Role::Source, 0.6, V),
                    toward(V, Role::Source, 0.35, B),
                ],
                _ => vec![],
            };
            let score = if c.is_empty() { 0.1 } else { 6.0 };
            for e in tr.observe(win(k, score), &c, || k) {
                events.push((k, e));
            }
        }
        let summary: Vec<_> = events
            .iter()
            .map(|(k, e)| {
                let kind = match e {
                    IncidentEvent::Start { .. } => "start",
                    IncidentEvent::Culprit { .. } => "culprit",
                    IncidentEvent::End { .. } => "end",
                };
                let ips: Vec<String> = e
                    .incident()
                    .culprits
                    .iter()
                    .map(|c| c.ip.to_string())
                    .collect();
                (*k, kind, e.incident().id.clone(), ips)
            })
            .collect();
        let s = |x: &str| x.to_string();
        assert_eq!(
            summary,
            [
                (0, "start", s("t-1"), vec![s(A)]),
                (5, "start", s("t-2"), vec![s(B)]),
                // A's incident ends 3 windows after its last one, while B's goes on.
                (6, "end", s("t-1"), vec![s(A)]),
                (15, "end", s("t-2"), vec![s(B)]),
            ]
        );
        let (inc, _, _, _) = end_of(&events[2].1);
        assert_eq!(inc.last_alert_end_ns, 40 * S, "not stretched over B's scan");
        assert_eq!(inc.alerting_windows, 4);
        // A flood's victim (victim side) still joins as what it is.
        let mut tr = tracker(3, 1);
        let ev = tr.observe(
            win(0, 4.0),
            &[
                toward(A, Role::Source, 0.5, V),
                cw(V, Role::FloodTarget, 0.45),
            ],
            || 0,
        );
        let (inc, _) = start_of(&ev[0]);
        let roles: Vec<_> = inc
            .culprits
            .iter()
            .map(|c| (c.ip.to_string(), c.role))
            .collect();
        assert_eq!(roles, [(s(A), Role::Source), (s(V), Role::FloodTarget)]);
    }

    #[test]
    fn each_scale_keeps_its_peak_over_the_threshold_it_was_scored_with() {
        // An adaptive threshold rises during the incident: the highest score is not the
        // window furthest over its threshold.
        let mut tr = tracker(3, 1);
        let mut events = Vec::new();
        for (k, (score, threshold)) in [(10.0, 2.0), (12.0, 10.0), (11.0, 10.5), (0.1, 10.0)]
            .into_iter()
            .enumerate()
        {
            let w = ScoredWindow {
                threshold,
                ..win(k as i64, score)
            };
            events.extend(tr.observe(w, &[], || k as i64));
        }
        events.extend(tr.flush(EndReason::Shutdown));
        let (inc, _, _, payload) = end_of(events.last().unwrap());
        let sc = inc.scales[0];
        assert_eq!((sc.alerting_windows, sc.peak_score), (3, 12.0));
        assert_eq!(sc.threshold, 10.5, "the latest alerting window's");
        assert_eq!(sc.peak_ratio, 5.0, "10 over 2, not 12 over 10.5");
        assert_eq!((inc.peak.score, payload), (10.0, 0));
    }

    #[test]
    fn open_incidents_are_bounded() {
        let mut tr = tracker(3, 1);
        for k in 0..(MAX_OPEN_INCIDENTS as i64 + 5) {
            let ip = format!("10.8.0.{}", k + 1);
            tr.observe(win(k, 4.0), &[cw(&ip, Role::Source, 0.9)], || k);
        }
        // Ten seconds a window, cooldown 3: the oldest ended, the rest are open.
        assert!(tr.open_incidents() <= MAX_OPEN_INCIDENTS);
        let mut tr = IncidentTracker::<i64>::new(
            IncidentConfig {
                cooldown_windows: 1000,
                min_windows: 1,
                loud_ratio: 0,
            },
            &[Omega::from_micros(10_000_000).unwrap()],
            "t",
        );
        for k in 0..(MAX_OPEN_INCIDENTS as i64 + 5) {
            let ip = format!("10.8.0.{}", k + 1);
            tr.observe(win(k, 4.0), &[cw(&ip, Role::Source, 0.9)], || k);
        }
        assert_eq!(tr.open_incidents(), MAX_OPEN_INCIDENTS);
        assert_eq!(tr.reported(), MAX_OPEN_INCIDENTS as u64);
        let last = tr.current().max_by_key(|s| s.last_alert_end_ns).unwrap();
        assert_eq!(last.culprits.len(), 6, "the newest takes the rest");
    }
}
