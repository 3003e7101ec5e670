//! Distinct counting per window: exact up to [`EXACT_LIMIT`] values, a bounded sketch beyond.
//!
//! Addresses are counted exactly in a pre-sized hash map (no allocation per packet). The
//! first address past the limit switches the window to a HyperLogLog (precision 16,
//! 64 Ki registers, standard error 1.04/√65536 ≈ 0.41 %) seeded with every exact key, plus
//! a count-min sketch that keeps heavy hitters visible. Ports need no sketch: 65,536
//! counters cover them exactly.

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

/// Per-window packet counts by address: exact while small, sketched beyond.
pub struct AddrTally {
    exact: HashMap<IpKey, u32, FixedState>,
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
    /// Allocates the exact map once, sized so the hot path never grows it.
    pub fn new() -> Self {
        Self {
            exact: HashMap::with_capacity_and_hasher(EXACT_LIMIT, FixedState::with_seed(MAP_SEED)),
            overflow: None,
        }
    }

    /// Counts one packet for `key`.
    #[inline]
    pub fn add(&mut self, key: IpKey) {
        if let Some(count) = self.exact.get_mut(&key) {
            *count = count.saturating_add(1);
            return;
        }
        if self.exact.len() < EXACT_LIMIT {
            self.exact.insert(key, 1);
            return;
        }
        self.add_overflow(key);
    }

    /// The slow path of a flood: sketch the key. Allocates once per window, not per packet.
    #[cold]
    fn add_overflow(&mut self, key: IpKey) {
        let exact = &self.exact;
        let overflow = self.overflow.get_or_insert_with(|| {
            let mut hll = HyperLogLogPF::new(HLL_PRECISION, QualityState::with_seed(HLL_SEED))
                .expect("precision 16 is within HyperLogLogPF's bounds");
            for k in exact.keys() {
                hll.insert(k);
            }
            Box::new(Overflow {
                hll,
                heavy: HeavyHitters::new(),
            })
        });
        overflow.hll.insert(&key);
        overflow.heavy.add(key);
    }

    /// Distinct addresses seen: exact, or the HyperLogLog estimate after overflow.
    pub fn distinct(&mut self) -> f64 {
        match &mut self.overflow {
            None => self.exact.len() as f64,
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
        let mut top = top_k(self.exact.iter().map(|(&a, &c)| (a, u64::from(c))), k);
        if let Some(o) = &self.overflow {
            top.extend(o.heavy.candidates());
            top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            top.truncate(k);
        }
        top
    }

    /// Forgets the window; keeps the map's allocation.
    pub fn reset(&mut self) {
        if !self.exact.is_empty() {
            self.exact.clear();
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

    /// Counts one packet for `port`.
    #[inline]
    pub fn add(&mut self, port: u16) {
        let count = &mut self.counts[usize::from(port)];
        if *count == 0 {
            self.touched.push(port);
        }
        *count = count.saturating_add(1);
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
    // A min-heap of size k: O(n log k) over the window's distinct keys, once per window.
    let mut heap = std::collections::BinaryHeap::with_capacity(k + 1);
    for (key, count) in items {
        heap.push(std::cmp::Reverse((count, std::cmp::Reverse(key))));
        if heap.len() > k {
            heap.pop();
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
