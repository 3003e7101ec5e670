//! Windows from several sources: the partial windows of capture workers or of sensors on
//! several taps, merged per window and finished once, in time order.
//!
//! Each source hands its encoded partials (one per window, empty ones too) in window order
//! per window length. A window fires when every source has reported it, has passed it (sent a
//! later one: it has nothing for this one), or has ended; or when a source it waits for is
//! dead (silent for `liveness` while another source was heard, or while every other source
//! ended); or, for windows cut by a live clock, `lateness` after its first partial arrived.
//! A window fired without some source is `incomplete`. A partial of a window that already
//! fired is late: counted and dropped. Windows of replayed captures carry data time only, so
//! they never fire by the wall clock: a source that is behind (it reads more slowly) is
//! waited for as long as it keeps sending.
//!
//! Windows no source reported between two fired ones are emitted empty, as one aggregator
//! fills quiet stretches (up to `max_gap_windows`; a longer gap is collapsed and the next
//! window flagged `after_time_jump`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::window::{Omega, PartialWindow, Window, WireError};

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
    /// Not usable: not a partial window, or of a window length not merged here.
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
}

/// A source's state.
struct Source {
    last_seen: Instant,
    ended: bool,
    /// Highest window index reported, per scale.
    last_index: Vec<Option<i64>>,
}

/// A window waiting for its parts.
struct Pending<T> {
    parts: Vec<(usize, Vec<u8>)>,
    tokens: Vec<T>,
    first: Instant,
    live: bool,
}

/// One window length's windows.
struct Scale<T> {
    omega: Omega,
    pending: BTreeMap<i64, Pending<T>>,
    /// Index of the last window fired.
    fired: Option<i64>,
    /// The next window fired starts a new timeline (a source's clock was stepped back).
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
                    last_index: vec![None; omegas.len()],
                })
                .collect(),
            scales: omegas
                .iter()
                .map(|&omega| Scale {
                    omega,
                    pending: BTreeMap::new(),
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
        }
    }

    /// What the merger did so far.
    pub fn stats(&self) -> MergeStats {
        self.stats
    }

    /// Windows waiting for parts, over every scale.
    pub fn pending(&self) -> usize {
        self.scales.iter().map(|s| s.pending.len()).sum()
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
        let Some(src) = self.sources.get_mut(source) else {
            self.stats.rejected += 1;
            return Offer::Rejected(token, RejectReason::Source(source));
        };
        let (omega, index) = match PartialWindow::peek(&bytes) {
            Ok(h) => (h.omega, h.index),
            Err(e) => {
                self.stats.rejected += 1;
                return Offer::Rejected(token, e.into());
            }
        };
        let Some(scale) = self.scales.iter().position(|s| s.omega == omega) else {
            self.stats.rejected += 1;
            return Offer::Rejected(token, RejectReason::Omega(omega));
        };
        src.last_seen = now;
        // A source that ended and sends again was restarted: it is waited for again.
        src.ended = false;
        let max_gap = i64::try_from(self.rules.max_gap_windows).unwrap_or(i64::MAX);
        let s = &mut self.scales[scale];
        if s.fired.is_some_and(|f| index.saturating_add(max_gap) < f) {
            // Far behind what fired: a source's clock was stepped back. A new timeline starts
            // (as one aggregator starts one); what waited on the old one is dropped.
            self.stats.late += s
                .pending
                .values()
                .map(|p| p.parts.len() as u64)
                .sum::<u64>();
            s.pending.clear();
            s.fired = None;
            s.jumped = true;
            for src in &mut self.sources {
                src.last_index[scale] = None;
            }
        }
        let src = &mut self.sources[source];
        let last = &mut src.last_index[scale];
        *last = Some(last.map_or(index, |l| l.max(index)));
        let s = &mut self.scales[scale];
        if s.fired.is_some_and(|f| index <= f) {
            self.stats.late += 1;
            return Offer::Late(token);
        }
        let p = s.pending.entry(index).or_insert_with(|| Pending {
            parts: Vec::new(),
            tokens: Vec::new(),
            first: now,
            live: false,
        });
        if p.parts.iter().any(|(s, _)| *s == source) {
            self.stats.duplicates += 1;
            return Offer::Duplicate(token);
        }
        p.parts.push((source, bytes));
        p.tokens.push(token);
        p.live |= clock == PartClock::Live;
        Offer::Kept
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

    fn poll_scale(
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
            let waiting: Vec<usize> = (0..self.sources.len())
                .filter(|&i| {
                    let s = &self.sources[i];
                    !s.ended
                        && !p.parts.iter().any(|(src, _)| *src == i)
                        && s.last_index[scale].is_none_or(|l| l <= k)
                })
                .collect();
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
            let p = self.scales[scale]
                .pending
                .remove(&k)
                .expect("the first pending window");
            self.fire(scale, k, p, waiting, emit);
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
        }
    }

    /// Encoded partials of one source with a packet at each of `secs`.
    fn partials(secs: &[i64]) -> Vec<Vec<u8>> {
        let mut a = WindowAggregator::new(WindowConfig::new(omega()));
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
}
