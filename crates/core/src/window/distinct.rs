//! Distinct counting per window: exact up to [`EXACT_LIMIT`] values, a bounded sketch beyond.
//!
//! Addresses are counted exactly in two pre-sized hash maps, a small cache-resident one for
//! the first 4,096 addresses of a window and a large one for the rest (no allocation per
//! packet). The first address past the limit switches the window to a HyperLogLog
//! (precision 16, 64 Ki registers, standard error 1.04/√65536 ≈ 0.41 %) seeded with every
//! exact key, plus a count-min sketch that keeps heavy hitters visible. Ports need no
//! sketch: 65,536 counters cover them exactly.

use foldhash::fast::FixedState;
// HyperLogLogPF keeps only the low 32 bits of the hash: they must be well mixed even for
// consecutive addresses, which foldhash's `fast` variant does not guarantee.
use foldhash::quality::FixedState as QualityState;
use hyperloglogplus::{HyperLogLog, HyperLogLogPF};
use std::collections::HashMap;
use std::hash::BuildHasher;

use super::talkers::HeavyHitters;
use crate::decode::IpKey;

/// Distinct values counted exactly per window; beyond, an estimate (≤ 2 % error, see docs).
pub const EXACT_LIMIT: usize = 65_536;

/// HyperLogLog precision: 2^16 registers of one byte each.
const HLL_PRECISION: u8 = 16;

/// Fixed seeds keep estimates reproducible from run to run.
const MAP_SEED: u64 = 0x6e65_7461_6e6f_6d31;
const HLL_SEED: u64 = 0x6e65_7461_6e6f_6d32;

/// Addresses a window holds in the small, cache-resident map before the large one is used.
const FRONT_CAPACITY: usize = 4_096;

/// Per-window packet counts by address: exact while small, sketched beyond.
///
/// The exact counts live in two pre-sized maps: the first [`FRONT_CAPACITY`] addresses of a
/// window in a small one (256 KiB of buckets, stays in cache), the rest up to [`EXACT_LIMIT`]
/// in a large one that ordinary windows never touch. A single map sized for 65,536 spreads a
/// few thousand addresses over 4 MiB, so nearly every lookup missed the cache, and closing a
/// window scanned all of its buckets. An address is in at most one of the two maps: the large
/// one only takes addresses once the small one is full, and neither shrinks within a window.
pub struct AddrTally {
    front: HashMap<IpKey, u32, FixedState>,
    back: HashMap<IpKey, u32, FixedState>,
    overflow: Option<Box<Overflow>>,
}

/// What a window needs once it holds more than [`EXACT_LIMIT`] distinct addresses.
struct Overflow {
    hll: HyperLogLogPF<IpKey, QualityState>,
    heavy: HeavyHitters,
}

impl Default for AddrTally {
    fn default() -> Self {
        Self::new()
    }
}

impl AddrTally {
    /// Allocates the exact maps once, sized so the hot path never grows them.
    pub fn new() -> Self {
        let map =
            |capacity| HashMap::with_capacity_and_hasher(capacity, FixedState::with_seed(MAP_SEED));
        Self {
            front: map(FRONT_CAPACITY),
            back: map(EXACT_LIMIT - FRONT_CAPACITY),
            overflow: None,
        }
    }

    /// Counts one packet for `key`; true when `key` is new in the window (past the exact
    /// limit: when the sketch has certainly not seen it, so a few new keys read as seen).
    #[inline(always)]
    pub fn add(&mut self, key: IpKey) -> bool {
        if let Some(count) = self.front.get_mut(&key) {
            *count = count.saturating_add(1);
            return false;
        }
        if self.front.len() < FRONT_CAPACITY {
            // The large map is empty until the small one is full: `key` is new.
            self.front.insert(key, 1);
            return true;
        }
        self.add_back(key)
    }

    /// A window with more than [`FRONT_CAPACITY`] addresses: the large map, then the sketch.
    fn add_back(&mut self, key: IpKey) -> bool {
        if let Some(count) = self.back.get_mut(&key) {
            *count = count.saturating_add(1);
            return false;
        }
        if self.front.len() + self.back.len() < EXACT_LIMIT {
            self.back.insert(key, 1);
            return true;
        }
        self.add_overflow(key)
    }

    /// The exact counts of both maps.
    fn exact(&self) -> impl Iterator<Item = (&IpKey, &u32)> {
        self.front.iter().chain(self.back.iter())
    }

    /// The slow path of a flood: sketch the key. Allocates once per window, not per packet.
    #[cold]
    fn add_overflow(&mut self, key: IpKey) -> bool {
        let (front, back) = (&self.front, &self.back);
        let overflow = self.overflow.get_or_insert_with(|| {
            let mut hll = HyperLogLogPF::new(HLL_PRECISION, QualityState::with_seed(HLL_SEED))
                .expect("precision 16 is within HyperLogLogPF's bounds");
            for k in front.keys().chain(back.keys()) {
                hll.insert(k);
            }
            Box::new(Overflow {
                hll,
                heavy: HeavyHitters::new(),
            })
        });
        overflow.hll.insert(&key);
        // Count-min never undercounts: an estimate of 1 means the first packet of `key`.
        overflow.heavy.add(key) == 1
    }

    /// Distinct addresses seen: exact, or the HyperLogLog estimate after overflow.
    pub fn distinct(&mut self) -> f64 {
        match &mut self.overflow {
            None => (self.front.len() + self.back.len()) as f64,
            // The estimate can fall below the exact part; the exact part is a hard floor.
            Some(o) => o.hll.count().round().max(EXACT_LIMIT as f64 + 1.0),
        }
    }

    /// Whether the distinct count is an estimate.
    pub fn is_estimated(&self) -> bool {
        self.overflow.is_some()
    }

    /// The `k` addresses with most packets (count-min estimates for late arrivals in a flood).
    pub fn top(&self, k: usize) -> Vec<(IpKey, u64)> {
        let mut top = top_k(self.exact().map(|(&a, &c)| (a, u64::from(c))), k);
        if let Some(o) = &self.overflow {
            top.extend(o.heavy.candidates());
            top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            top.truncate(k);
        }
        top
    }

    /// Forgets the window; keeps the maps' allocations.
    pub fn reset(&mut self) {
        if !self.front.is_empty() {
            self.front.clear();
        }
        if !self.back.is_empty() {
            self.back.clear();
        }
        self.overflow = None;
    }
}

/// Per-window packet counts by port: exact for all 65,536 ports.
pub struct PortTally {
    counts: Box<[u32]>,
    touched: Vec<u16>,
}

impl Default for PortTally {
    fn default() -> Self {
        Self::new()
    }
}

impl PortTally {
    /// Allocates the 65,536 counters and the touched list once.
    pub fn new() -> Self {
        Self {
            counts: vec![0u32; 65_536].into_boxed_slice(),
            touched: Vec::with_capacity(65_536),
        }
    }

    /// Counts one packet for `port`; true when `port` is new in the window.
    #[inline(always)]
    pub fn add(&mut self, port: u16) -> bool {
        let count = &mut self.counts[usize::from(port)];
        let new = *count == 0;
        if new {
            self.touched.push(port);
        }
        *count = count.saturating_add(1);
        new
    }

    /// Distinct ports seen (exact).
    pub fn distinct(&self) -> usize {
        self.touched.len()
    }

    /// The `k` ports with most packets, ties broken by lower port.
    pub fn top(&self, k: usize) -> Vec<(u16, u64)> {
        top_k(
            self.touched
                .iter()
                .map(|&p| (p, u64::from(self.counts[usize::from(p)]))),
            k,
        )
    }

    /// Forgets the window: clears only the counters it touched.
    pub fn reset(&mut self) {
        for &p in &self.touched {
            self.counts[usize::from(p)] = 0;
        }
        self.touched.clear();
    }
}

/// The `k` largest counts, descending, ties by ascending key (deterministic output).
fn top_k<K: Ord + Copy>(items: impl Iterator<Item = (K, u64)>, k: usize) -> Vec<(K, u64)> {
    if k == 0 {
        return Vec::new();
    }
    // A min-heap of the k best so far: O(n log k) over the window's distinct keys, once per
    // window. Once it is full, an item that does not beat its worst (most of them) costs one
    // comparison; one that does replaces the worst in place.
    let mut heap = std::collections::BinaryHeap::with_capacity(k);
    for (key, count) in items {
        let item = std::cmp::Reverse((count, std::cmp::Reverse(key)));
        if heap.len() < k {
            heap.push(item);
        } else if let Some(mut worst) = heap.peek_mut() {
            if item < *worst {
                *worst = item;
            }
        }
    }
    let mut out: Vec<(K, u64)> = heap
        .into_iter()
        .map(|std::cmp::Reverse((c, std::cmp::Reverse(key)))| (key, c))
        .collect();
    out.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// A 64-bit hash of an address under a fixed seed (shared with the heavy-hitter sketch).
#[inline]
pub(crate) fn hash_key(seed: u64, key: IpKey) -> u64 {
    QualityState::with_seed(seed).hash_one(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_below_limit() {
        let mut t = AddrTally::new();
        for i in 0..EXACT_LIMIT as u128 {
            t.add(i);
            t.add(i);
        }
        assert!(!t.is_estimated());
        assert_eq!(t.distinct(), EXACT_LIMIT as f64);
        t.reset();
        assert_eq!(t.distinct(), 0.0);
    }

    #[test]
    fn exact_across_both_maps() {
        // More addresses than the small map holds: counts, distinct and top span both maps.
        let mut t = AddrTally::new();
        let n = 3 * FRONT_CAPACITY as u128;
        for i in 0..n {
            t.add(i);
        }
        for _ in 0..5 {
            t.add(n - 1); // in the large map
        }
        for _ in 0..3 {
            t.add(1); // in the small map
        }
        assert!(!t.is_estimated());
        assert_eq!(t.distinct(), n as f64);
        assert_eq!(t.top(3), vec![(n - 1, 6), (1, 4), (0, 1)]);
        t.reset();
        assert_eq!(t.distinct(), 0.0);
        assert!(t.top(3).is_empty());
        t.add(n - 1);
        assert_eq!(t.top(3), vec![(n - 1, 1)]);
    }

    #[test]
    fn estimate_beyond_limit_within_two_percent() {
        let mut t = AddrTally::new();
        // Scattered (random spoofing) and consecutive (a sweep of a range) addresses.
        let scattered =
            |i: u128| 0xffff_0000_0000u128 | (i.wrapping_mul(2_654_435_761) & 0xffff_ffff);
        let consecutive = |i: u128| 0xffff_0a00_0000u128 + i;
        let v6 = |i: u128| (0x2001_0db8u128 << 96) | i;
        for n in [100_000u128, 200_000, 1_000_000] {
            for (name, f) in [
                ("scattered", &scattered as &dyn Fn(u128) -> u128),
                ("consecutive", &consecutive),
                ("ipv6", &v6),
            ] {
                t.reset();
                for i in 0..n {
                    t.add(f(i));
                }
                assert!(t.is_estimated());
                let est = t.distinct();
                let err = (est - n as f64).abs() / n as f64;
                assert!(err < 0.02, "{name} n={n} est={est} err={err}");
            }
        }
    }

    #[test]
    fn heavy_hitter_survives_flood() {
        let mut t = AddrTally::new();
        for i in 0..200_000u128 {
            t.add(1_000_000 + i);
            if i % 10 == 0 {
                t.add(7); // a talker that first appears after the exact map is full
            }
        }
        // Key 7 first appears at i = 0, so it is exact; add one that only starts late.
        for i in 0..50_000u128 {
            t.add(5_000_000 + i);
            t.add(9);
        }
        let top = t.top(3);
        assert_eq!(top[0].0, 9);
        assert!(top[0].1 >= 50_000);
        assert_eq!(top[1], (7, 20_000));
    }

    #[test]
    fn top_k_matches_a_full_sort() {
        // Counts with many ties, keys unique: the k largest, ties by ascending key.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let items: Vec<(u32, u64)> = (0..2_000u32)
            .map(|key| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (key.wrapping_mul(2_654_435_761), x % 50)
            })
            .collect();
        let mut sorted = items.clone();
        sorted.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for k in [0, 1, 3, 5, 10, 100, 2_000, 3_000] {
            let expected: Vec<_> = sorted.iter().copied().take(k).collect();
            assert_eq!(top_k(items.iter().copied(), k), expected, "k={k}");
        }
    }

    #[test]
    fn ports_exact_and_top() {
        let mut p = PortTally::new();
        for port in [80u16, 80, 443, 22, 80, 443, 0, 65535] {
            p.add(port);
        }
        assert_eq!(p.distinct(), 5);
        assert_eq!(p.top(2), vec![(80, 3), (443, 2)]);
        assert_eq!(p.top(10).len(), 5);
        p.reset();
        assert_eq!(p.distinct(), 0);
        assert!(p.top(3).is_empty());
    }
}
