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
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::BuildHasher;

use super::partial::{MergeError, WireAddrs, WireError, WireSketch};
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

/// Registers of the HyperLogLog (2^[`HLL_PRECISION`]).
pub(super) const HLL_REGISTERS: usize = 1 << HLL_PRECISION;

/// Largest value a register of a precision-16 HyperLogLogPF holds: 1 + the leading zeros of
/// a 32-bit hash shifted left by 16 with a stop bit (at most 16 zeros).
const HLL_MAX_REGISTER: u8 = 17;

/// The HyperLogLog's hasher: foldhash's quality variant under [`HLL_SEED`], as a type that
/// serde can name, so the sketch's registers can be read and rebuilt (see [`hll_registers`]).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub(super) struct HllHasher;

impl BuildHasher for HllHasher {
    type Hasher = foldhash::quality::FoldHasher<'static>;

    #[inline]
    fn build_hasher(&self) -> Self::Hasher {
        QualityState::with_seed(HLL_SEED).build_hasher()
    }
}

/// The sketch of distinct addresses past the exact limit.
type Hll = HyperLogLogPF<IpKey, HllHasher>;

/// A new, empty sketch.
fn new_hll() -> Hll {
    HyperLogLogPF::new(HLL_PRECISION, HllHasher)
        .expect("precision 16 is within HyperLogLogPF's bounds")
}

/// `hyperloglogplus` merges sketches but shows its registers only through serde: this is the
/// shape its derive writes (pinned to 0.4.1 in Cargo.toml; `hll_registers_round_trip` checks
/// it). Registers are 5 bits, six to a `u32`.
#[derive(Serialize, Deserialize)]
struct HllImage {
    builder: HllHasher,
    count: usize,
    precision: u8,
    registers: RegistersImage,
    phantom: (),
}

/// `hyperloglogplus`'s `Registers` as its derive writes it.
#[derive(Serialize, Deserialize)]
struct RegistersImage {
    buf: Vec<u32>,
    count: usize,
    zeros: usize,
}

/// Registers per `u32` of the crate's packing.
const PER_WORD: usize = 6;

/// Exact keys an estimated tally ships: the heaviest, at least `window.top_k` (at most 100),
/// so a decoded part names the same top talkers; the others travel in its count-min sketch.
pub(super) const SHIPPED_EXACT: usize = 128;

/// Bits of one register on the wire (values 0 to [`HLL_MAX_REGISTER`]).
const REGISTER_BITS: usize = 5;

/// Bytes of the packed registers.
const PACKED_REGISTERS: usize = HLL_REGISTERS * REGISTER_BITS / 8;

/// The registers (one byte each, at most [`HLL_MAX_REGISTER`]) packed in 5 bits each, low bits
/// first: 40,960 bytes instead of 65,536.
fn pack_registers(registers: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PACKED_REGISTERS);
    let (mut acc, mut bits) = (0u32, 0usize);
    for &r in registers {
        acc |= u32::from(r & 0x1f) << bits;
        bits += REGISTER_BITS;
        while bits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            bits -= 8;
        }
    }
    if bits > 0 {
        out.push(acc as u8);
    }
    out
}

/// The registers from their packed form (checked: exactly 65,536 of them).
fn unpack_registers(packed: &[u8]) -> Result<Vec<u8>, WireError> {
    if packed.len() != PACKED_REGISTERS {
        return Err(WireError::Sketch);
    }
    let mut out = Vec::with_capacity(HLL_REGISTERS);
    let (mut acc, mut bits) = (0u32, 0usize);
    for &b in packed {
        acc |= u32::from(b) << bits;
        bits += 8;
        while bits >= REGISTER_BITS {
            out.push((acc & 0x1f) as u8);
            acc >>= REGISTER_BITS;
            bits -= REGISTER_BITS;
        }
    }
    Ok(out)
}

/// The sketch's registers, one byte each.
fn hll_registers(hll: &Hll) -> Result<Vec<u8>, WireError> {
    let bytes = postcard::to_allocvec(hll).map_err(|_| WireError::Sketch)?;
    let image: HllImage = postcard::from_bytes(&bytes).map_err(|_| WireError::Sketch)?;
    if image.count != HLL_REGISTERS || image.registers.count != HLL_REGISTERS {
        return Err(WireError::Sketch);
    }
    let mut out = Vec::with_capacity(HLL_REGISTERS);
    for word in &image.registers.buf {
        for i in 0..PER_WORD {
            if out.len() < HLL_REGISTERS {
                out.push(((word >> (5 * i)) & 0x1f) as u8);
            }
        }
    }
    if out.len() != HLL_REGISTERS {
        return Err(WireError::Sketch);
    }
    Ok(out)
}

/// A sketch with these registers (checked: 65,536 of them, each a value the sketch can hold).
fn hll_from_registers(registers: &[u8]) -> Result<Hll, WireError> {
    if registers.len() != HLL_REGISTERS || registers.iter().any(|&r| r > HLL_MAX_REGISTER) {
        return Err(WireError::Sketch);
    }
    let buf = registers
        .chunks(PER_WORD)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u32, |w, (i, &r)| w | (u32::from(r) << (5 * i)))
        })
        .collect();
    let image = HllImage {
        builder: HllHasher,
        count: HLL_REGISTERS,
        precision: HLL_PRECISION,
        registers: RegistersImage {
            buf,
            count: HLL_REGISTERS,
            zeros: registers.iter().filter(|&&r| r == 0).count(),
        },
        phantom: (),
    };
    let bytes = postcard::to_allocvec(&image).map_err(|_| WireError::Sketch)?;
    postcard::from_bytes(&bytes).map_err(|_| WireError::Sketch)
}

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
    hll: Hll,
    heavy: HeavyHitters,
    /// Made by merging parts: an address may be exact in one part and sketched in another, so
    /// its reported count adds its count-min estimate to its exact count (an upper bound, as
    /// count-min's is). Never set by packets.
    merged: bool,
}

impl Overflow {
    /// A sketch seeded with the exact keys `keys`.
    fn seeded<'a>(keys: impl Iterator<Item = &'a IpKey>) -> Box<Overflow> {
        let mut hll = new_hll();
        for k in keys {
            hll.insert(k);
        }
        Box::new(Overflow {
            hll,
            heavy: HeavyHitters::new(),
            merged: false,
        })
    }
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
        let overflow = self
            .overflow
            .get_or_insert_with(|| Overflow::seeded(front.keys().chain(back.keys())));
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
            if o.merged {
                // Parts may have sketched what another part counted exactly (see `merged`).
                for (key, count) in &mut top {
                    *count += o.heavy.estimate(*key);
                }
                for (key, estimate) in o.heavy.candidates() {
                    if !top.iter().any(|t| t.0 == key) {
                        top.push((key, estimate + u64::from(self.exact_count(key))));
                    }
                }
            } else {
                top.extend(o.heavy.candidates());
            }
            top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            top.truncate(k);
        }
        top
    }

    /// The exact count of `key` (0 when not held exactly).
    fn exact_count(&self, key: IpKey) -> u32 {
        self.front
            .get(&key)
            .or_else(|| self.back.get(&key))
            .copied()
            .unwrap_or(0)
    }

    /// Adds another part of the same window: exact counts add while the union of the exact
    /// keys fits [`EXACT_LIMIT`]; beyond, the first keys stay exact (this part's, then the
    /// other's) and the rest go to the count-min sketch with their counts, the HyperLogLogs
    /// merge (registers by max) and take every exact key of both sides, and the count-min
    /// rows add. The distinct count is then exactly what one tally of both parts' packets
    /// would estimate: the sketch of the same set of addresses.
    pub fn merge(&mut self, other: &AddrTally) -> Result<(), MergeError> {
        if self.overflow.is_none() && other.overflow.is_none() {
            let new = other
                .exact()
                .filter(|(k, _)| self.exact_count(**k) == 0)
                .count();
            if self.front.len() + self.back.len() + new <= EXACT_LIMIT {
                for (&k, &c) in other.exact() {
                    self.insert_exact(k, c);
                }
                return Ok(());
            }
        }
        let (front, back) = (&self.front, &self.back);
        let mut overflow = self
            .overflow
            .take()
            .unwrap_or_else(|| Overflow::seeded(front.keys().chain(back.keys())));
        overflow.merged = true;
        if let Some(o) = &other.overflow {
            overflow.hll.merge(&o.hll).map_err(|_| MergeError::Sketch)?;
            overflow.heavy.merge(&o.heavy);
        }
        for (&k, &c) in other.exact() {
            overflow.hll.insert(&k);
            if self.exact_count(k) > 0 || self.front.len() + self.back.len() < EXACT_LIMIT {
                self.insert_exact(k, c);
            } else {
                overflow.heavy.add_weighted(k, c);
            }
        }
        self.overflow = Some(overflow);
        Ok(())
    }

    /// Adds `count` to `key`'s exact count, inserting it (the caller checked the limit).
    fn insert_exact(&mut self, key: IpKey, count: u32) {
        if let Some(c) = self.front.get_mut(&key) {
            *c = c.saturating_add(count);
        } else if let Some(c) = self.back.get_mut(&key) {
            *c = c.saturating_add(count);
        } else if self.front.len() < FRONT_CAPACITY {
            self.front.insert(key, count);
        } else {
            self.back.insert(key, count);
        }
    }

    /// The tally as it travels: exact keys sorted, as deltas; the sketch only when estimated.
    /// An estimated tally ships only its [`SHIPPED_EXACT`] heaviest exact keys and folds the
    /// others into (a copy of) its count-min sketch, whose estimates never undercount: the
    /// distinct count is the HyperLogLog's either way, the top talkers are the same keys, and
    /// a part costs about 100–200 KB instead of every exact key (up to 1.2 MB for IPv6).
    pub(super) fn to_wire(&self) -> Result<WireAddrs, WireError> {
        let mut exact: Vec<(IpKey, u32)> = self.exact().map(|(&k, &c)| (k, c)).collect();
        let sketch = match &self.overflow {
            None => None,
            Some(o) => {
                let mut heavy = o.heavy.clone();
                if exact.len() > SHIPPED_EXACT {
                    // The heaviest keys first, ties by key: the same keys whatever the order
                    // of the maps.
                    exact.select_nth_unstable_by(SHIPPED_EXACT - 1, |a, b| {
                        b.1.cmp(&a.1).then(a.0.cmp(&b.0))
                    });
                    let mut folded = exact.split_off(SHIPPED_EXACT);
                    folded.sort_unstable();
                    for (k, c) in folded {
                        heavy.add_weighted(k, c);
                    }
                }
                Some(WireSketch {
                    registers: pack_registers(&hll_registers(&o.hll)?),
                    heavy: heavy.to_wire(),
                    merged: o.merged,
                })
            }
        };
        exact.sort_unstable();
        let mut prev = 0;
        for e in &mut exact {
            (e.0, prev) = (e.0 - prev, e.0);
        }
        Ok(WireAddrs { exact, sketch })
    }

    /// Fills this (reset) tally from its wire form, checking every count and limit.
    pub(super) fn read_wire(&mut self, wire: WireAddrs) -> Result<(), WireError> {
        self.reset();
        let limit = if wire.sketch.is_some() {
            SHIPPED_EXACT
        } else {
            EXACT_LIMIT
        };
        if wire.exact.len() > limit {
            return Err(WireError::TooMany("exact addresses"));
        }
        let mut key: IpKey = 0;
        for (i, &(delta, count)) in wire.exact.iter().enumerate() {
            if i > 0 && delta == 0 {
                return Err(WireError::NotSorted("exact addresses"));
            }
            key = key
                .checked_add(delta)
                .ok_or(WireError::NotSorted("exact addresses"))?;
            if count == 0 {
                return Err(WireError::ZeroCount("exact addresses"));
            }
            self.insert_exact(key, count);
        }
        if let Some(s) = wire.sketch {
            self.overflow = Some(Box::new(Overflow {
                hll: hll_from_registers(&unpack_registers(&s.registers)?)?,
                heavy: HeavyHitters::from_wire(s.heavy)?,
                merged: s.merged,
            }));
        }
        Ok(())
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

    /// Adds another part of the same window's port counts.
    pub fn merge(&mut self, other: &PortTally) {
        for &p in &other.touched {
            self.add_count(p, other.counts[usize::from(p)]);
        }
    }

    /// Adds `count` (> 0) packets to `port`.
    fn add_count(&mut self, port: u16, count: u32) {
        let c = &mut self.counts[usize::from(port)];
        if *c == 0 {
            self.touched.push(port);
        }
        *c = c.saturating_add(count);
    }

    /// The counts as they travel: sorted by port, ports as deltas.
    pub(super) fn to_wire(&self) -> Vec<(u16, u32)> {
        let mut ports: Vec<u16> = self.touched.clone();
        ports.sort_unstable();
        let mut prev = 0;
        ports
            .into_iter()
            .map(|p| {
                let delta = p - prev;
                prev = p;
                (delta, self.counts[usize::from(p)])
            })
            .collect()
    }

    /// Fills this (reset) tally from its wire form, checking order and counts.
    pub(super) fn read_wire(&mut self, wire: &[(u16, u32)]) -> Result<(), WireError> {
        self.reset();
        let mut port: u16 = 0;
        for (i, &(delta, count)) in wire.iter().enumerate() {
            if i > 0 && delta == 0 {
                return Err(WireError::NotSorted("ports"));
            }
            port = port
                .checked_add(delta)
                .ok_or(WireError::NotSorted("ports"))?;
            if count == 0 {
                return Err(WireError::ZeroCount("ports"));
            }
            self.add_count(port, count);
        }
        Ok(())
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
