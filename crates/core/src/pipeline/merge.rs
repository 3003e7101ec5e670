//! Windows from several sources: the partial windows of capture workers or of sensors on
//! several taps, merged per window and finished once, in time order.
//!
//! Each source hands its encoded partials (one per window, empty ones too) in window order
//! per window length. A window fires when every source has reported it, has passed it (sent a
//! later one), or has ended; or when a source it waits for is dead (silent for `liveness`
//! while another source was heard, or while every other source ended); or, for windows cut by
//! a live clock, `lateness` after its first partial arrived. A window fired without some
//! source is `incomplete`. A partial of a window that already fired is late: counted and
//! dropped. Windows of replayed captures carry data time only, so they never fire by the wall
//! clock: a source that is behind (it reads more slowly) is waited for as long as it keeps
//! sending.
//!
//! Since a source sends every window, a source that passed a window without reporting it
//! lost that partial (a full queue, a message too large or given up), unless its next partial
//! says a time jump precedes it (a gap collapsed, a clock step: the skipped windows had no
//! data). A lost partial is not waited for, and its window fires incomplete.
//!
//! A source whose clock was stepped back (a partial more than `max_gap_windows` before the
//! last fired window) is behind: its partials are kept for the next timeline while the
//! current one goes on without it (incomplete). Once every live source stepped, what the
//! current timeline holds fires and the next one starts, flagged `after_time_jump`, as one
//! aggregator starts one. One stale source never clears the others' windows.
//!
//! Windows no source reported between two fired ones are emitted empty, as one aggregator
//! fills quiet stretches (up to `max_gap_windows`; a longer gap is collapsed and the next
//! window flagged `after_time_jump`).
//!
//! Memory is bounded: a live partial whose window starts more than `max_ahead` after this
//! host's clock, and a replayed one more than `max_ahead_windows` past the last fired window
//! (unless a time jump precedes it), is rejected; the next timeline of a stepped source
//! holds at most `max_ahead_windows` windows, and for a live source only while the others
//! could still follow (`liveness`).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::pump::wall_ns;
use crate::window::{Omega, PartHeader, PartialWindow, Window, WireError};

/// Lost ranges remembered per source and window length; beyond, the two oldest are joined (a
/// window between them then counts as lost too: incomplete, never waited for).
const MAX_LOST_RANGES: usize = 64;

/// How far after this host's clock a live partial's window may start (clocks of sensors on
/// other hosts differ by seconds under NTP, not minutes).
pub const MAX_AHEAD: Duration = Duration::from_secs(60);

/// When windows fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergeRules {
    /// How long a live-clock window waits for its missing sources after its first partial.
    pub lateness: Duration,
    /// A source silent this long while another one is heard is dead: not waited for.
    pub liveness: Duration,
    /// Longest run of empty windows emitted for a stretch no source reported.
    pub max_gap_windows: u64,
    /// Top talkers per window.
    pub top_k: usize,
    /// A live partial whose window starts more than this after this host's clock is rejected
    /// (a sensor's clock far off): it would hold windows that never fire ([`MAX_AHEAD`]).
    pub max_ahead: Duration,
    /// A replayed partial more than this many windows past the last fired window, without a
    /// time jump before it, is rejected (a bogus index); also the most windows a stepped
    /// source's next timeline holds.
    pub max_ahead_windows: u64,
}

/// The clock that cut a partial window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartClock {
    /// A live capture's: the wall clock closes windows; late parts are bounded by `lateness`.
    Live,
    /// A replayed capture's: data time only.
    Replay,
}

/// What became of an offered partial (the token comes back when the merger does not keep it).
#[derive(Debug)]
pub enum Offer<T> {
    /// Kept for its window.
    Kept,
    /// This source already gave this window: ignored.
    Duplicate(T),
    /// Its window already fired: counted and dropped.
    Late(T),
    /// Not usable: not a partial window, of a window length not merged here, or too far
    /// ahead.
    Rejected(T, RejectReason),
}

/// Why a partial was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("a partial window of ω = {0} s, which is not one of the window lengths merged here")]
    Omega(Omega),
    #[error("source {0} is not one of the sources merged here")]
    Source(usize),
    #[error("window {index} (ω = {omega} s) starts {ahead:?} after this host's clock, more than {limit:?}: the source's clock is off")]
    AheadOfClock {
        omega: Omega,
        index: i64,
        ahead: Duration,
        limit: Duration,
    },
    #[error("window {index} (ω = {omega} s) is more than {limit} windows past the last window fired ({fired}) with no time jump before it")]
    AheadOfFired {
        omega: Omega,
        index: i64,
        fired: i64,
        limit: u64,
    },
}

/// A merged window, ready for the scorer.
#[derive(Debug)]
pub struct Merged<T> {
    /// Index of its window length in the merger's list.
    pub scale: usize,
    pub window: Window,
    /// The sources it fired without (empty: complete).
    pub missing: Vec<usize>,
    /// The tokens of the partials merged into it (the collector acknowledges them).
    pub tokens: Vec<T>,
}

/// What the merger did, for logs and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MergeStats {
    pub windows: u64,
    pub incomplete: u64,
    pub late: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Parts kept but not decodable when merged (cannot happen for parts this build encoded).
    pub undecodable: u64,
    /// Windows that fired by the lateness bound or a dead source.
    pub fired_late: u64,
    /// Partials found lost: a source passed their window without a time jump.
    pub lost: u64,
    /// Times a source's clock was stepped back (its partials went to the next timeline).
    pub steps_back: u64,
}

/// A source's state on one window length.
#[derive(Default)]
struct SourceScale {
    /// Highest window index reported on the current timeline.
    last: Option<i64>,
    /// Windows it passed without reporting them and without a time jump (inclusive ranges,
    /// oldest first): their partials were lost.
    lost: VecDeque<(i64, i64)>,
    /// Its clock was stepped back: its partials go to the next timeline.
    behind: bool,
}

impl SourceScale {
    /// True when this source lost its partial of window `k`.
    fn lost(&self, k: i64) -> bool {
        self.lost.iter().any(|&(a, b)| a <= k && k <= b)
    }
}

/// A source's state.
struct Source {
    last_seen: Instant,
    ended: bool,
    /// Per window length.
    scales: Vec<SourceScale>,
}

/// A window waiting for its parts.
struct Pending<T> {
    parts: Vec<(usize, Vec<u8>)>,
    tokens: Vec<T>,
    first: Instant,
    live: bool,
}

impl<T> Pending<T> {
    /// True when `source` gave a part of this window.
    fn has(&self, source: usize) -> bool {
        self.parts.iter().any(|(s, _)| *s == source)
    }
}

/// One window length's windows.
struct Scale<T> {
    omega: Omega,
    pending: BTreeMap<i64, Pending<T>>,
    /// The partials of sources whose clock was stepped back: the next timeline.
    next: BTreeMap<i64, Pending<T>>,
    /// Index of the last window fired.
    fired: Option<i64>,
    /// The next window fired starts a new timeline (the sources' clocks were stepped back).
    jumped: bool,
    acc: PartialWindow,
}

/// Merges the partial windows of `sources` sources for several window lengths.
pub struct Merger<T> {
    rules: MergeRules,
    sources: Vec<Source>,
    scales: Vec<Scale<T>>,
    scratch: PartialWindow,
    stats: MergeStats,
    /// Tokens of parts dropped while waiting (see [`Merger::take_dropped`]).
    dropped: Vec<T>,
}

/// Keeps `source`'s part of window `index` in `map`.
fn keep<T>(
    map: &mut BTreeMap<i64, Pending<T>>,
    index: i64,
    source: usize,
    bytes: Vec<u8>,
    token: T,
    live: bool,
    now: Instant,
) -> Offer<T> {
    let p = map.entry(index).or_insert_with(|| Pending {
        parts: Vec::new(),
        tokens: Vec::new(),
        first: now,
        live: false,
    });
    if p.has(source) {
        return Offer::Duplicate(token);
    }
    p.parts.push((source, bytes));
    p.tokens.push(token);
    p.live |= live;
    Offer::Kept
}

impl<T> Merger<T> {
    /// A merger of `sources` sources (at most 64) for the window lengths `omegas` (scale i is
    /// `omegas[i]`), started at `now`.
    pub fn new(sources: usize, omegas: &[Omega], rules: MergeRules, now: Instant) -> Self {
        let sources = sources.clamp(1, 64);
        Merger {
            rules,
            sources: (0..sources)
                .map(|_| Source {
                    last_seen: now,
                    ended: false,
                    scales: omegas.iter().map(|_| SourceScale::default()).collect(),
                })
                .collect(),
            scales: omegas
                .iter()
                .map(|&omega| Scale {
                    omega,
                    pending: BTreeMap::new(),
                    next: BTreeMap::new(),
                    fired: None,
                    jumped: false,
                    acc: PartialWindow::new(omega, 0),
                })
                .collect(),
            scratch: PartialWindow::new(
                omegas
                    .first()
                    .copied()
                    .unwrap_or(Omega::from_micros(1).expect("1 µs")),
                0,
            ),
            stats: MergeStats::default(),
            dropped: Vec::new(),
        }
    }

    /// What the merger did so far.
    pub fn stats(&self) -> MergeStats {
        self.stats
    }

    /// Windows waiting for parts, over every scale (the next timelines included).
    pub fn pending(&self) -> usize {
        self.scales
            .iter()
            .map(|s| s.pending.len() + s.next.len())
            .sum()
    }

    /// The tokens of parts the merger dropped after keeping them (a stepped source's next
    /// timeline that the others did not follow): the collector acknowledges them.
    pub fn take_dropped(&mut self) -> Vec<T> {
        std::mem::take(&mut self.dropped)
    }

    /// True when no waiting window holds a part of `source`: everything it sent fired or was
    /// dropped (its end may be acknowledged).
    pub fn caught_up(&self, source: usize) -> bool {
        self.scales.iter().all(|s| {
            s.pending
                .values()
                .chain(s.next.values())
                .all(|p| !p.has(source))
        })
    }

    /// Rejects a partial that is too far ahead to be kept (see the module docs).
    fn check_ahead(
        &self,
        scale: usize,
        head: &PartHeader,
        clock: PartClock,
    ) -> Result<(), RejectReason> {
        match clock {
            PartClock::Live => {
                let start = head.index.saturating_mul(head.omega.nanos());
                let ahead = start.saturating_sub(wall_ns());
                let limit = self.rules.max_ahead;
                if ahead > i64::try_from(limit.as_nanos()).unwrap_or(i64::MAX) {
                    return Err(RejectReason::AheadOfClock {
                        omega: head.omega,
                        index: head.index,
                        ahead: Duration::from_nanos(ahead.unsigned_abs()),
                        limit,
                    });
                }
            }
            PartClock::Replay => {
                let limit = self.rules.max_ahead_windows;
                if let Some(fired) = self.scales[scale].fired {
                    let past = u64::try_from(head.index.saturating_sub(fired)).unwrap_or(0);
                    if past > limit && !head.after_time_jump {
                        return Err(RejectReason::AheadOfFired {
                            omega: head.omega,
                            index: head.index,
                            fired,
                            limit,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Offers `source`'s encoded partial window, cut by `clock`, received at `now`.
    pub fn offer(
        &mut self,
        source: usize,
        bytes: Vec<u8>,
        clock: PartClock,
        token: T,
        now: Instant,
    ) -> Offer<T> {
        if source >= self.sources.len() {
            self.stats.rejected += 1;
            return Offer::Rejected(token, RejectReason::Source(source));
        }
        let head = match PartialWindow::peek(&bytes) {
            Ok(v) => v,
            Err(e) => {
                self.stats.rejected += 1;
                return Offer::Rejected(token, e.into());
            }
        };
        let Some(scale) = self.scales.iter().position(|s| s.omega == head.omega) else {
            self.stats.rejected += 1;
            return Offer::Rejected(token, RejectReason::Omega(head.omega));
        };
        if let Err(reason) = self.check_ahead(scale, &head, clock) {
            self.stats.rejected += 1;
            return Offer::Rejected(token, reason);
        }
        let index = head.index;
        let live = clock == PartClock::Live;
        let src = &mut self.sources[source];
        src.last_seen = now;
        // A source that ended and sends again was restarted: it is waited for again.
        src.ended = false;
        let max_gap = i64::try_from(self.rules.max_gap_windows).unwrap_or(i64::MAX);
        let s = &mut self.scales[scale];
        let st = &mut src.scales[scale];
        if s.fired.is_some_and(|f| index.saturating_add(max_gap) < f) {
            // Far behind what fired: this source's clock was stepped back. Its partials wait
            // for the next timeline, which starts once every live source stepped.
            if !st.behind {
                st.behind = true;
                self.stats.steps_back += 1;
                tracing::warn!(source, window = index, "a source's clock was stepped back: its windows wait for the others to step too");
            }
            let cap = usize::try_from(self.rules.max_ahead_windows).unwrap_or(usize::MAX);
            if s.next.len() >= cap.max(1) && !s.next.contains_key(&index) {
                if let Some((_, p)) = s.next.pop_first() {
                    self.stats.late += p.parts.len() as u64;
                    self.dropped.extend(p.tokens);
                }
            }
            return match keep(&mut s.next, index, source, bytes, token, live, now) {
                Offer::Duplicate(t) => {
                    self.stats.duplicates += 1;
                    Offer::Duplicate(t)
                }
                other => other,
            };
        }
        if st.behind {
            // Back on the current timeline (its clock stepped forward again): what it kept
            // for the next one is dropped.
            st.behind = false;
            for p in s.next.values_mut() {
                if let Some(i) = p.parts.iter().position(|(x, _)| *x == source) {
                    p.parts.remove(i);
                    self.dropped.push(p.tokens.remove(i));
                    self.stats.late += 1;
                }
            }
            s.next.retain(|_, p| !p.parts.is_empty());
        }
        match st.last {
            Some(l) if index > l.saturating_add(1) && !head.after_time_jump => {
                // Passed windows l+1 .. index-1 without a jump: their partials were lost.
                self.stats.lost += u64::try_from(index - l - 1).unwrap_or(0);
                if st.lost.len() >= MAX_LOST_RANGES {
                    if let (Some((a, _)), Some((_, b))) = (st.lost.pop_front(), st.lost.pop_front())
                    {
                        st.lost.push_front((a, b));
                    }
                }
                st.lost.push_back((l + 1, index - 1));
            }
            _ => {}
        }
        st.last = Some(st.last.map_or(index, |l| l.max(index)));
        if s.fired.is_some_and(|f| index <= f) {
            self.stats.late += 1;
            return Offer::Late(token);
        }
        match keep(&mut s.pending, index, source, bytes, token, live, now) {
            Offer::Duplicate(t) => {
                self.stats.duplicates += 1;
                Offer::Duplicate(t)
            }
            other => other,
        }
    }

    /// `source` has nothing more to send (its capture ended); heard at `now`.
    pub fn end(&mut self, source: usize, now: Instant) {
        if let Some(s) = self.sources.get_mut(source) {
            s.ended = true;
            s.last_seen = now;
        }
    }

    /// True once every source ended.
    pub fn all_ended(&self) -> bool {
        self.sources.iter().all(|s| s.ended)
    }

    /// Whether `source` is dead at `now`: silent for `liveness` measured against the newest
    /// message of the sources still sending (or against `now` when all others ended), so a
    /// pause of the transport itself, when nobody is heard, kills nobody.
    fn dead(&self, source: usize, now: Instant) -> bool {
        let s = &self.sources[source];
        let others = self
            .sources
            .iter()
            .enumerate()
            .filter(|(i, o)| *i != source && !o.ended)
            .map(|(_, o)| o.last_seen)
            .max();
        let reference = others.unwrap_or(now);
        reference.saturating_duration_since(s.last_seen) > self.rules.liveness
    }

    /// Fires every window that is ready at `now`, in order within each window length.
    pub fn poll(&mut self, now: Instant, emit: &mut impl FnMut(Merged<T>)) {
        for scale in 0..self.scales.len() {
            self.poll_scale(scale, now, false, emit);
        }
    }

    /// Fires every waiting window now, complete or not (shutdown).
    pub fn flush(&mut self, now: Instant, emit: &mut impl FnMut(Merged<T>)) {
        for scale in 0..self.scales.len() {
            self.poll_scale(scale, now, true, emit);
        }
    }

    /// Fires what is ready on one window length, after starting the next timeline if every
    /// live source stepped to it.
    fn poll_scale(
        &mut self,
        scale: usize,
        now: Instant,
        all: bool,
        emit: &mut impl FnMut(Merged<T>),
    ) {
        self.expire_next(scale, now);
        if self.all_stepped(scale, now) {
            self.fire_ready(scale, now, true, emit);
            self.start_next_timeline(scale);
        }
        self.fire_ready(scale, now, all, emit);
    }

    /// True when some source is behind on `scale` and every source still sending is.
    fn all_stepped(&self, scale: usize, now: Instant) -> bool {
        let mut any = false;
        for (i, s) in self.sources.iter().enumerate() {
            if s.scales[scale].behind {
                any = true;
            } else if !s.ended && !self.dead(i, now) {
                return false;
            }
        }
        any
    }

    /// Drops the next timeline's live windows that waited longer than `liveness` for the
    /// other sources to step too: the stepped source's clock is off, not the others'.
    fn expire_next(&mut self, scale: usize, now: Instant) {
        let liveness = self.rules.liveness;
        let (stats, dropped) = (&mut self.stats, &mut self.dropped);
        self.scales[scale].next.retain(|_, p| {
            let keep = !p.live || now.saturating_duration_since(p.first) <= liveness;
            if !keep {
                stats.late += p.parts.len() as u64;
                dropped.append(&mut p.tokens);
            }
            keep
        });
    }

    /// Starts the next timeline: its windows become the waiting ones.
    fn start_next_timeline(&mut self, scale: usize) {
        let s = &mut self.scales[scale];
        s.pending = std::mem::take(&mut s.next);
        s.fired = None;
        s.jumped = true;
        for (i, src) in self.sources.iter_mut().enumerate() {
            let st = &mut src.scales[scale];
            st.behind = false;
            st.lost.clear();
            st.last = s
                .pending
                .iter()
                .rev()
                .find(|(_, p)| p.has(i))
                .map(|(&k, _)| k);
        }
        tracing::warn!("every source's clock was stepped back: windows start a new timeline");
    }

    /// Fires the waiting windows that are ready (`all`: every one), in order.
    fn fire_ready(
        &mut self,
        scale: usize,
        now: Instant,
        all: bool,
        emit: &mut impl FnMut(Merged<T>),
    ) {
        loop {
            let Some((&k, p)) = self.scales[scale].pending.first_key_value() else {
                return;
            };
            let (mut missing, mut waiting) = (Vec::new(), Vec::new());
            for (i, s) in self.sources.iter().enumerate() {
                let st = &s.scales[scale];
                if p.has(i) {
                    continue;
                }
                if st.behind || st.lost(k) {
                    // It will not report this window: not waited for, missing.
                    missing.push(i);
                } else if !s.ended && st.last.is_none_or(|l| l <= k) {
                    waiting.push(i);
                }
            }
            let ready = waiting.is_empty()
                || all
                || waiting.iter().all(|&i| self.dead(i, now))
                || (p.live && now.saturating_duration_since(p.first) >= self.rules.lateness);
            if !ready {
                return;
            }
            if !waiting.is_empty() {
                self.stats.fired_late += 1;
            }
            missing.extend(waiting);
            missing.sort_unstable();
            let p = self.scales[scale]
                .pending
                .remove(&k)
                .expect("the first pending window");
            for s in &mut self.sources {
                s.scales[scale].lost.retain(|&(_, b)| b > k);
            }
            self.fire(scale, k, p, missing, emit);
        }
    }

    /// Emits window `k` merged from its parts, after the empty windows since the last one.
    fn fire(
        &mut self,
        scale: usize,
        k: i64,
        p: Pending<T>,
        missing: Vec<usize>,
        emit: &mut impl FnMut(Merged<T>),
    ) {
        let top_k = self.rules.top_k;
        let max_gap = i64::try_from(self.rules.max_gap_windows).unwrap_or(i64::MAX);
        let s = &mut self.scales[scale];
        let mut jumped = std::mem::take(&mut s.jumped);
        if let Some(f) = s.fired {
            if k - f - 1 > max_gap {
                jumped = true;
            } else {
                for e in f + 1..k {
                    s.acc.reset_to(e);
                    self.stats.windows += 1;
                    emit(Merged {
                        scale,
                        window: s.acc.finish(top_k),
                        missing: Vec::new(),
                        tokens: Vec::new(),
                    });
                }
            }
        }
        s.acc.reset_to(k);
        for (_, bytes) in &p.parts {
            let merged = self
                .scratch
                .decode_into(bytes)
                .map_err(|_| ())
                .and_then(|()| s.acc.merge(&self.scratch).map_err(|_| ()));
            if merged.is_err() {
                self.stats.undecodable += 1;
            }
        }
        let mut window = s.acc.finish(top_k);
        window.after_time_jump |= jumped;
        window.incomplete = !missing.is_empty();
        s.fired = Some(k);
        self.stats.windows += 1;
        if window.incomplete {
            self.stats.incomplete += 1;
        }
        emit(Merged {
            scale,
            window,
            missing,
            tokens: p.tokens,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::PacketSummary;
    use crate::window::{WindowAggregator, WindowConfig};

    fn omega() -> Omega {
        Omega::from_micros(1_000_000).unwrap()
    }

    fn rules() -> MergeRules {
        MergeRules {
            lateness: Duration::from_secs(2),
            liveness: Duration::from_secs(10),
            max_gap_windows: 100,
            top_k: 5,
            max_ahead: Duration::from_secs(60),
            max_ahead_windows: 1000,
        }
    }

    /// Encoded partials of one source with a packet at each of `secs`.
    fn partials(secs: &[i64]) -> Vec<Vec<u8>> {
        partials_with_gap(secs, WindowConfig::DEFAULT_MAX_GAP_WINDOWS)
    }

    /// As [`partials`], collapsing gaps longer than `max_gap` windows (a time jump).
    fn partials_with_gap(secs: &[i64], max_gap: u64) -> Vec<Vec<u8>> {
        let mut config = WindowConfig::new(omega());
        config.max_gap_windows = max_gap;
        let mut a = WindowAggregator::new(config);
        let mut out = Vec::new();
        for &s in secs {
            let p = PacketSummary {
                ts_ns: s * 1_000_000_000,
                wire_len: 100,
                ..PacketSummary::default()
            };
            a.push_partials(&p, &mut |w| out.push(w.to_bytes().unwrap()));
        }
        a.finish_partials(&mut |w| out.push(w.to_bytes().unwrap()));
        out
    }

    fn drain(m: &mut Merger<u32>, now: Instant) -> Vec<(i64, f64, bool)> {
        let mut out = Vec::new();
        m.poll(now, &mut |w| {
            out.push((
                w.window.start_ns / 1_000_000_000,
                w.window.features[crate::window::features::Feature::PktCount.index()],
                w.window.incomplete,
            ))
        });
        out
    }

    #[test]
    fn a_replay_source_that_is_behind_is_waited_for() {
        let t0 = Instant::now();
        let mut m = Merger::new(2, &[omega()], rules(), t0);
        // Source 0 runs far ahead: windows 0..=5; source 1 has sent nothing yet.
        for (i, b) in partials(&[0, 1, 2, 3, 4, 5]).into_iter().enumerate() {
            assert!(matches!(
                m.offer(0, b, PartClock::Replay, i as u32, t0),
                Offer::Kept
            ));
        }
        // Minutes later, but source 1 was heard as recently as source 0: nothing fires.
        assert!(drain(&mut m, t0 + Duration::from_secs(5)).is_empty());
        // Source 1's first window is 3: windows 0–2 had nothing of it.
        let later = t0 + Duration::from_secs(6);
        let b1 = partials(&[3, 3, 6]);
        m.offer(1, b1[0].clone(), PartClock::Replay, 100, later);
        let out = drain(&mut m, later);
        assert_eq!(
            out,
            [
                (0, 1.0, false),
                (1, 1.0, false),
                (2, 1.0, false),
                (3, 3.0, false)
            ]
        );
        // Window 4 waits for source 1, which sends 4 (empty), 5 (empty), 6.
        for (i, b) in b1.into_iter().enumerate().skip(1) {
            m.offer(1, b, PartClock::Replay, 101 + i as u32, later);
        }
        m.end(0, later);
        m.end(1, later);
        let out = drain(&mut m, later);
        assert_eq!(out, [(4, 1.0, false), (5, 1.0, false), (6, 1.0, false)]);
        assert_eq!(m.stats().incomplete, 0);
    }

    #[test]
    fn a_dead_source_gives_incomplete_windows_and_its_late_parts_are_dropped() {
        let t0 = Instant::now();
        let mut m = Merger::new(2, &[omega()], rules(), t0);
        let a = partials(&[0, 1, 2, 3]);
        let b = partials(&[0, 1, 2, 3]);
        m.offer(1, b[0].clone(), PartClock::Replay, 0, t0);
        for (i, p) in a.iter().enumerate() {
            m.offer(
                0,
                p.clone(),
                PartClock::Replay,
                1,
                t0 + Duration::from_secs(4 * i as u64),
            );
        }
        // Window 0 complete at once; 1–3 wait for source 1 until it has been silent for 10 s
        // while source 0 was heard.
        let out = drain(&mut m, t0 + Duration::from_secs(12));
        assert_eq!(
            out,
            [
                (0, 2.0, false),
                (1, 1.0, true),
                (2, 1.0, true),
                (3, 1.0, true)
            ]
        );
        assert!(matches!(
            m.offer(1, b[1].clone(), PartClock::Replay, 9, t0),
            Offer::Late(9)
        ));
        assert_eq!(m.stats().late, 1);
        assert_eq!(m.stats().incomplete, 3);
    }

    #[test]
    fn live_windows_wait_at_most_the_lateness_bound_and_duplicates_are_ignored() {
        let t0 = Instant::now();
        let mut m = Merger::new(2, &[omega()], rules(), t0);
        let a = partials(&[0, 5]);
        m.offer(0, a[0].clone(), PartClock::Live, 0, t0);
        assert!(matches!(
            m.offer(0, a[0].clone(), PartClock::Live, 1, t0),
            Offer::Duplicate(1)
        ));
        assert!(drain(&mut m, t0 + Duration::from_millis(1_900)).is_empty());
        // The other source arrives within the bound: merged.
        m.offer(
            1,
            partials(&[0])[0].clone(),
            PartClock::Live,
            2,
            t0 + Duration::from_millis(1_950),
        );
        assert_eq!(
            drain(&mut m, t0 + Duration::from_millis(1_950)),
            [(0, 2.0, false)]
        );
        // Window 5 waits 2 s, then fires without source 1; 1–4 come out empty before it.
        m.offer(
            0,
            a[5].clone(),
            PartClock::Live,
            3,
            t0 + Duration::from_secs(5),
        );
        let out = drain(&mut m, t0 + Duration::from_secs(7));
        assert_eq!(out.len(), 5);
        assert_eq!(out[4], (5, 1.0, true));
        assert!(out[..4].iter().all(|w| w.1 == 0.0 && !w.2));
    }

    #[test]
    fn a_source_that_ended_and_sends_again_is_waited_for_again() {
        let t0 = Instant::now();
        let mut m = Merger::new(2, &[omega()], rules(), t0);
        let (a, b) = (partials(&[0, 1, 2, 3]), partials(&[0, 1, 2, 3]));
        m.offer(1, b[0].clone(), PartClock::Replay, 0, t0);
        m.end(1, t0);
        m.offer(0, a[0].clone(), PartClock::Replay, 1, t0);
        m.offer(0, a[1].clone(), PartClock::Replay, 2, t0);
        assert_eq!(drain(&mut m, t0), [(0, 2.0, false), (1, 1.0, false)]);
        // Source 1 is back (a restarted sensor): from now on its windows are waited for.
        m.offer(1, b[2].clone(), PartClock::Replay, 3, t0);
        m.offer(0, a[2].clone(), PartClock::Replay, 4, t0);
        assert_eq!(drain(&mut m, t0), [(2, 2.0, false)]);
        m.offer(0, a[3].clone(), PartClock::Replay, 5, t0);
        assert!(drain(&mut m, t0).is_empty());
        m.offer(1, b[3].clone(), PartClock::Replay, 6, t0);
        assert_eq!(drain(&mut m, t0), [(3, 2.0, false)]);
    }

    #[test]
    fn bad_parts_are_rejected() {
        let t0 = Instant::now();
        let mut m = Merger::<u32>::new(1, &[omega()], rules(), t0);
        assert!(matches!(
            m.offer(0, b"junk".to_vec(), PartClock::Live, 1, t0),
            Offer::Rejected(1, _)
        ));
        let other = PartialWindow::new(Omega::from_micros(500_000).unwrap(), 3)
            .to_bytes()
            .unwrap();
        assert!(matches!(
            m.offer(0, other, PartClock::Live, 2, t0),
            Offer::Rejected(2, RejectReason::Omega(_))
        ));
        assert!(matches!(
            m.offer(5, Vec::new(), PartClock::Live, 3, t0),
            Offer::Rejected(3, RejectReason::Source(5))
        ));
    }

    /// Every window fired: (start s, packets, incomplete, after a time jump, missing).
    fn drain_all(m: &mut Merger<u32>, now: Instant) -> Vec<(i64, f64, bool, bool, Vec<usize>)> {
        let mut out = Vec::new();
        m.poll(now, &mut |w| {
            out.push((
                w.window.start_ns / 1_000_000_000,
                w.window.features[crate::window::features::Feature::PktCount.index()],
                w.window.incomplete,
                w.window.after_time_jump,
                w.missing,
            ))
        });
        out
    }

    #[test]
    fn a_partial_a_source_skipped_is_lost_and_its_window_fires_incomplete() {
        let t0 = Instant::now();
        let mut m = Merger::new(2, &[omega()], rules(), t0);
        let (a, b) = (partials(&[0, 1, 2, 3]), partials(&[0, 1, 2, 3]));
        // Source 0 sends windows 0, 1 and 3: its partial of window 2 was lost (a full
        // queue), not empty: live sources send every window.
        for (i, p) in [&a[0], &a[1], &a[3]].into_iter().enumerate() {
            m.offer(0, p.clone(), PartClock::Live, i as u32, t0);
        }
        for (i, p) in b.iter().enumerate() {
            m.offer(1, p.clone(), PartClock::Live, 10 + i as u32, t0);
        }
        // No waiting for it (source 0 passed window 2): window 2 fires at once, incomplete.
        assert_eq!(
            drain_all(&mut m, t0),
            [
                (0, 2.0, false, false, vec![]),
                (1, 2.0, false, false, vec![]),
                (2, 1.0, true, false, vec![0]),
                (3, 2.0, false, false, vec![]),
            ]
        );
        assert_eq!((m.stats().lost, m.stats().incomplete), (1, 1));
    }

    #[test]
    fn windows_skipped_by_a_time_jump_are_not_lost() {
        let t0 = Instant::now();
        let mut rules = rules();
        rules.max_gap_windows = 2;
        let mut m = Merger::new(2, &[omega()], rules, t0);
        // Packets at 0 s and 10 s with gaps of at most 2 windows filled: window 10 follows
        // window 0 with the time-jump flag.
        let (a, b) = (
            partials_with_gap(&[0, 10], 2),
            partials_with_gap(&[0, 10], 2),
        );
        assert_eq!((a.len(), b.len()), (2, 2));
        m.offer(0, a[0].clone(), PartClock::Live, 0, t0);
        m.offer(0, a[1].clone(), PartClock::Live, 1, t0);
        m.offer(1, b[0].clone(), PartClock::Live, 2, t0);
        // Window 10 waits for source 1 (not lost: a jump), then both are merged.
        assert_eq!(drain_all(&mut m, t0), [(0, 2.0, false, false, vec![])]);
        m.offer(1, b[1].clone(), PartClock::Live, 3, t0);
        assert_eq!(drain_all(&mut m, t0), [(10, 2.0, false, true, vec![])]);
        assert_eq!(m.stats().lost, 0);
    }

    #[test]
    fn one_source_stepped_back_does_not_reset_the_others_windows() {
        let t0 = Instant::now();
        let mut m = Merger::new(2, &[omega()], rules(), t0);
        let (a, b) = (
            partials(&[1000, 1001, 1002, 1003]),
            partials(&[1000, 1001, 1002, 1003]),
        );
        for i in 0..2 {
            m.offer(0, a[i].clone(), PartClock::Live, i as u32, t0);
            m.offer(1, b[i].clone(), PartClock::Live, 10 + i as u32, t0);
        }
        assert_eq!(drain_all(&mut m, t0).len(), 2);
        // Source 0's clock is set back by 1,000 windows (more than max_gap_windows = 100).
        let back = partials(&[5]);
        assert!(matches!(
            m.offer(0, back[0].clone(), PartClock::Live, 20, t0),
            Offer::Kept
        ));
        // Source 1 goes on: its windows fire without waiting for source 0, incomplete.
        m.offer(1, b[2].clone(), PartClock::Live, 12, t0);
        m.offer(1, b[3].clone(), PartClock::Live, 13, t0);
        assert_eq!(
            drain_all(&mut m, t0),
            [
                (1002, 1.0, true, false, vec![0]),
                (1003, 1.0, true, false, vec![0]),
            ]
        );
        // Source 1 steps back too: the next timeline starts, source 0's window 5 kept.
        m.offer(1, partials(&[5])[0].clone(), PartClock::Live, 21, t0);
        assert_eq!(drain_all(&mut m, t0), [(5, 2.0, false, true, vec![])]);
        assert_eq!(m.stats().steps_back, 2);
        assert!(m.take_dropped().is_empty());
    }

    #[test]
    fn a_stepped_source_the_others_do_not_follow_is_dropped_after_liveness() {
        let t0 = Instant::now();
        let mut m = Merger::new(2, &[omega()], rules(), t0);
        let (a, b) = (partials(&[1000, 1001]), partials(&[1000, 1001]));
        m.offer(0, a[0].clone(), PartClock::Live, 0, t0);
        m.offer(1, b[0].clone(), PartClock::Live, 1, t0);
        assert_eq!(drain_all(&mut m, t0).len(), 1);
        m.offer(0, partials(&[5])[0].clone(), PartClock::Live, 7, t0);
        let later = t0 + Duration::from_secs(11);
        m.offer(1, b[1].clone(), PartClock::Live, 2, later);
        assert_eq!(
            drain_all(&mut m, later),
            [(1001, 1.0, true, false, vec![0])]
        );
        // Its window 5 waited more than liveness (10 s): dropped, its token handed back.
        assert_eq!(m.take_dropped(), [7]);
        assert_eq!(m.pending(), 0);
    }

    #[test]
    fn partials_too_far_ahead_are_rejected() {
        let t0 = Instant::now();
        let mut m = Merger::new(1, &[omega()], rules(), t0);
        // Live: a window an hour after this host's clock (a sensor's clock far off).
        let now_s = super::wall_ns() / 1_000_000_000;
        let ahead = partials(&[now_s + 3600]);
        assert!(matches!(
            m.offer(0, ahead[0].clone(), PartClock::Live, 1, t0),
            Offer::Rejected(1, RejectReason::AheadOfClock { .. })
        ));
        let current = partials(&[now_s]);
        assert!(matches!(
            m.offer(0, current[0].clone(), PartClock::Live, 2, t0),
            Offer::Kept
        ));
        // Replay: more than max_ahead_windows (1,000) past the last fired window, unless a
        // time jump precedes it.
        let mut m = Merger::new(1, &[omega()], rules(), t0);
        let a = partials_with_gap(&[0, 1500], 100);
        m.offer(0, a[0].clone(), PartClock::Replay, 1, t0);
        assert_eq!(drain_all(&mut m, t0).len(), 1);
        let bogus = partials(&[1500]);
        assert!(matches!(
            m.offer(0, bogus[0].clone(), PartClock::Replay, 2, t0),
            Offer::Rejected(2, RejectReason::AheadOfFired { fired: 0, .. })
        ));
        assert!(matches!(
            m.offer(0, a[1].clone(), PartClock::Replay, 3, t0),
            Offer::Kept
        ));
        assert_eq!(m.stats().rejected, 1);
    }
}
