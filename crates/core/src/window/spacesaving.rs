//! Space-Saving (Metwally, Agrawal and El Abbadi, 2005): the heaviest keys of a stream in
//! [`SLOTS`] counters, whatever the number of distinct keys.
//!
//! A key already held is counted in its slot; a new key takes the slot of a smallest count
//! `m` and starts at `m + w`, remembering `m` as its possible overcount. Every key whose true
//! count exceeds `N / SLOTS` (N: total weight) is held, and a held count `c` with error `e`
//! brackets the true count: `c − e ≤ true ≤ c`, `e ≤ N / SLOTS`.
//!
//! Made for the per-packet path: fixed arrays (no heap), a lookup compares the 16-bit
//! fingerprints of all slots in one SSE2 instruction (the fingerprint is computed once per
//! packet and shared by every summary keyed by the same address), and the slots holding the
//! minimum are kept as a bit mask, so a replacement scans nothing except about once every
//! [`SLOTS`] replacements.

use super::partial::WireError;
use crate::decode::IpKey;

/// Counters per summary.
pub const SLOTS: usize = 8;

/// Every slot.
const ALL_SLOTS: u32 = (1 << SLOTS) - 1;

/// A key's fingerprint, never 0 (0 marks an empty slot): a cheap multiplicative hash of both
/// halves. Not secret: a collision only sends a lookup to the full-key scan.
#[inline(always)]
pub fn fingerprint(key: IpKey) -> u16 {
    let x = (key as u64) ^ ((key >> 64) as u64).rotate_left(29);
    ((x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 48) as u16) | 1
}

/// A key a summary can hold: an address, or a (source, destination) pair.
pub trait SlotKey: Copy + Eq + Ord {
    /// The key of an empty slot (never compared: empty slots have fingerprint 0).
    const EMPTY: Self;
    /// Its fingerprint, as the per-packet path computes it (a decoded summary rebuilds its
    /// fingerprints with it, so later updates and merges find the keys).
    fn fingerprint(self) -> u16;
}

impl SlotKey for IpKey {
    const EMPTY: Self = 0;
    fn fingerprint(self) -> u16 {
        fingerprint(self)
    }
}

impl SlotKey for (IpKey, IpKey) {
    const EMPTY: Self = (0, 0);
    fn fingerprint(self) -> u16 {
        pair_fingerprint(fingerprint(self.0), fingerprint(self.1))
    }
}

/// The fingerprint of a (source, destination) pair from its ends' fingerprints; never 0, and
/// not that of the reverse pair.
#[inline(always)]
pub fn pair_fingerprint(src_fp: u16, dst_fp: u16) -> u16 {
    (src_fp.rotate_left(8) ^ dst_fp.wrapping_mul(3)) | 1
}

/// What a slot keeps about its key besides the count (nothing, `()`, for most summaries):
/// started by the update that gave it the slot, updated by every later one, and merged.
pub trait SlotValue: Copy {
    /// What an update brings.
    type Input: Copy;
    /// An empty slot's value.
    const EMPTY: Self;
    /// The value of a key that just took the slot.
    fn start(x: Self::Input) -> Self;
    /// Another update of the held key.
    fn hit(&mut self, x: Self::Input);
    /// Adds what another summary kept about the same key.
    fn merge(&mut self, other: &Self);
    /// The value as it travels (partial windows).
    fn to_words(&self) -> [u64; 2];
    /// The value from its wire form (any words make some value: nothing to validate).
    fn from_words(words: [u64; 2]) -> Self;
}

impl SlotValue for () {
    type Input = ();
    const EMPTY: Self = ();
    #[inline(always)]
    fn start(_: ()) {}
    #[inline(always)]
    fn hit(&mut self, _: ()) {}
    #[inline(always)]
    fn merge(&mut self, _: &()) {}
    fn to_words(&self) -> [u64; 2] {
        [0, 0]
    }
    fn from_words(_: [u64; 2]) {}
}

/// One Space-Saving summary of [`SLOTS`] counters. Empty slots hold count 0 and take part in
/// the minimum, so filling a free slot and replacing a smallest one are the same step.
#[derive(Clone, Debug)]
#[repr(C, align(16))]
pub struct SpaceSaving<K = IpKey, V = ()> {
    /// Fingerprints of the held keys, 0 for an empty slot (first: one vector load).
    fps: [u16; SLOTS],
    counts: [u32; SLOTS],
    errors: [u32; SLOTS],
    keys: [K; SLOTS],
    values: [V; SLOTS],
    /// Bit i: slot i holds the minimum count.
    at_min: u32,
    /// The minimum count.
    min: u32,
    /// `min + 1` (saturated), what a replacing key starts at.
    next: u32,
    /// N − Σ counts: 0 until a merge (each update adds one to exactly one count, so the
    /// counts add up to N and the hot path keeps no total of its own).
    merged_extra: u64,
}

impl<K: SlotKey, V: SlotValue> Default for SpaceSaving<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: SlotKey> SpaceSaving<K, ()> {
    /// Counts one for `key`, whose fingerprint is `fp`.
    #[inline(always)]
    pub fn add(&mut self, key: K, fp: u16) {
        self.add_with(key, fp, ())
    }
}

impl<K: SlotKey, V: SlotValue> SpaceSaving<K, V> {
    /// An empty summary.
    pub const fn new() -> Self {
        Self {
            fps: [0; SLOTS],
            counts: [0; SLOTS],
            errors: [0; SLOTS],
            keys: [K::EMPTY; SLOTS],
            values: [V::EMPTY; SLOTS],
            at_min: ALL_SLOTS,
            min: 0,
            next: 1,
            merged_extra: 0,
        }
    }

    /// Counts one for `key` (fingerprint `fp`), bringing `x` to its slot's value.
    #[inline(always)]
    pub fn add_with(&mut self, key: K, fp: u16, x: V::Input) {
        // Two bits per slot: 2i and 2i + 1 for slot i.
        let hits = eq_mask2_u16(&self.fps, fp);
        if hits == 0 {
            return self.replace_min(key, fp, x);
        }
        // The high bit tells the compiler the operand is not zero (one instruction).
        let i = ((hits | 1 << (2 * SLOTS)).trailing_zeros() / 2) as usize & (SLOTS - 1);
        if self.keys[i] == key {
            self.values[i].hit(x);
            return self.bump(i);
        }
        self.add_colliding(key, fp, x)
    }

    /// Adds one to slot `i`, which leaves the minimum set if it was in it.
    #[inline(always)]
    fn bump(&mut self, i: usize) {
        self.counts[i] = self.counts[i].saturating_add(1);
        if self.at_min & (1 << i) != 0 {
            self.at_min &= !(1 << i);
            if self.at_min == 0 {
                self.find_min();
            }
        }
    }

    /// A key not held takes the place of a smallest count `m` (an empty slot has 0) and starts
    /// at `m + 1`, `m` being how much it may be overcounted.
    #[inline(always)]
    fn replace_min(&mut self, key: K, fp: u16, x: V::Input) {
        let i = (self.at_min | 1 << SLOTS).trailing_zeros() as usize & (SLOTS - 1);
        self.keys[i] = key;
        self.fps[i] = fp;
        self.errors[i] = self.min;
        self.counts[i] = self.next;
        self.values[i] = V::start(x);
        // Clears bit i, the lowest set one.
        self.at_min &= self.at_min.wrapping_sub(1);
        if self.at_min == 0 {
            self.find_min();
        }
    }

    /// Fingerprints matched but the key did not (rare): compare every held key.
    #[cold]
    #[inline(never)]
    fn add_colliding(&mut self, key: K, fp: u16, x: V::Input) {
        let found = (0..SLOTS).find(|&i| self.fps[i] == fp && self.keys[i] == key);
        match found {
            Some(i) => {
                self.values[i].hit(x);
                self.bump(i)
            }
            None => self.replace_min(key, fp, x),
        }
    }

    /// Finds the minimum and its slots once no slot holds the old one (about once every
    /// [`SLOTS`] replacements in a stream of many keys).
    #[inline(always)]
    fn find_min(&mut self) {
        // Every count is now above the old minimum: if one is just above, that is the new one.
        let at = eq_mask_u32(&self.counts, self.next);
        if at != 0 {
            self.min = self.next;
            self.next = self.next.saturating_add(1);
            self.at_min = at;
            return;
        }
        self.scan_min();
    }

    /// Recomputes the minimum and its slots by a scan.
    #[cold]
    #[inline(never)]
    fn scan_min(&mut self) {
        let min = self.counts.iter().copied().min().unwrap_or(0);
        let mut at = 0u32;
        for (i, &c) in self.counts.iter().enumerate() {
            at |= u32::from(c == min) << i;
        }
        self.min = min;
        self.next = min.saturating_add(1);
        self.at_min = at;
    }

    /// Forgets everything (a new window).
    #[inline]
    pub fn reset(&mut self) {
        self.fps = [0; SLOTS];
        self.counts = [0; SLOTS];
        self.at_min = ALL_SLOTS;
        self.min = 0;
        self.next = 1;
        self.merged_extra = 0;
    }

    /// The total weight N counted since the last reset (merges included).
    pub fn total(&self) -> u64 {
        let held: u64 = self.counts.iter().map(|&c| u64::from(c)).sum();
        held + self.merged_extra
    }

    /// The held keys, largest count first (ties by key): `(key, count, error)`, where the true
    /// count lies in `count − error ..= count`.
    pub fn top(&self, n: usize) -> Vec<(K, u64, u64)> {
        let mut out = Vec::new();
        self.each_top(n, |key, count, error, _| out.push((key, count, error)));
        out
    }

    /// Calls `f(key, count, error, value)` for the `n` largest held keys, as [`Self::top`]
    /// lists them, without allocating (once per family and window close).
    pub fn each_top(&self, n: usize, mut f: impl FnMut(K, u64, u64, &V)) {
        // Insertion sort of the held slots' indices: at most 8.
        let mut order = [0usize; SLOTS];
        let mut held = 0;
        let before = |a: usize, b: usize| {
            (self.counts[a], std::cmp::Reverse(self.keys[a]))
                > (self.counts[b], std::cmp::Reverse(self.keys[b]))
        };
        for i in (0..SLOTS).filter(|&i| self.fps[i] != 0) {
            let mut j = held;
            while j > 0 && before(i, order[j - 1]) {
                order[j] = order[j - 1];
                j -= 1;
            }
            order[j] = i;
            held += 1;
        }
        for &i in &order[..held.min(n)] {
            f(
                self.keys[i],
                u64::from(self.counts[i]),
                u64::from(self.errors[i]),
                &self.values[i],
            );
        }
    }

    /// Adds another summary of the same window's keys (a part of the stream counted apart),
    /// keeping Space-Saving's bounds over both parts (the merge of Agarwal et al., "Mergeable
    /// summaries", 2012): a key held by both adds counts and errors; a key held by one only
    /// adds the other's minimum `m` (an upper bound of its count there, 0 when that summary
    /// is not full) to its count and its error; the [`SLOTS`] largest are kept. Counts stay
    /// at least the true ones, errors at most (N₁ + N₂) / [`SLOTS`], and a key with more than
    /// that is held.
    pub fn merge(&mut self, other: &Self) {
        let (m_self, m_other) = (u64::from(self.min), u64::from(other.min));
        // Up to 2 × SLOTS candidates: (count, error, key, fp, value).
        let mut cand: [(u64, u64, K, u16, V); 2 * SLOTS] =
            [(0, 0, K::EMPTY, 0, V::EMPTY); 2 * SLOTS];
        let mut n = 0;
        let find =
            |s: &Self, key: K, fp: u16| (0..SLOTS).find(|&j| s.fps[j] == fp && s.keys[j] == key);
        for i in (0..SLOTS).filter(|&i| self.fps[i] != 0) {
            let (key, fp) = (self.keys[i], self.fps[i]);
            let (c, e) = (u64::from(self.counts[i]), u64::from(self.errors[i]));
            let mut v = self.values[i];
            cand[n] = match find(other, key, fp) {
                Some(j) => {
                    v.merge(&other.values[j]);
                    let (c2, e2) = (u64::from(other.counts[j]), u64::from(other.errors[j]));
                    (c + c2, e + e2, key, fp, v)
                }
                None => (c + m_other, e + m_other, key, fp, v),
            };
            n += 1;
        }
        for j in (0..SLOTS).filter(|&j| other.fps[j] != 0) {
            let (key, fp) = (other.keys[j], other.fps[j]);
            if find(self, key, fp).is_none() {
                let (c, e) = (u64::from(other.counts[j]), u64::from(other.errors[j]));
                cand[n] = (c + m_self, e + m_self, key, fp, other.values[j]);
                n += 1;
            }
        }
        let cand = &mut cand[..n];
        cand.sort_unstable_by(|a, b| {
            (b.0, std::cmp::Reverse(b.2)).cmp(&(a.0, std::cmp::Reverse(a.2)))
        });
        let total = self.total() + other.total();
        self.reset();
        for (i, &(c, e, key, fp, v)) in cand.iter().take(SLOTS).enumerate() {
            self.fps[i] = fp;
            self.keys[i] = key;
            self.counts[i] = u32::try_from(c).unwrap_or(u32::MAX);
            self.errors[i] = u32::try_from(e).unwrap_or(u32::MAX);
            self.values[i] = v;
        }
        self.merged_extra = total.saturating_sub(self.total());
        self.scan_min();
    }
}

/// A summary as it travels (partial windows, `window/partial.rs`): the held slots, largest
/// first, as `(key, count, error, value words)`, and the total weight N.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WireSummary<K> {
    slots: Vec<(K, u32, u32, [u64; 2])>,
    total: u64,
}

impl<K: SlotKey, V: SlotValue> SpaceSaving<K, V> {
    /// The summary as it travels.
    pub(crate) fn to_wire(&self) -> WireSummary<K> {
        let mut slots = Vec::with_capacity(SLOTS);
        self.each_top(SLOTS, |k, c, e, v| {
            slots.push((k, c as u32, e as u32, v.to_words()));
        });
        WireSummary {
            slots,
            total: self.total(),
        }
    }

    /// Fills this summary from its wire form: at most [`SLOTS`] distinct keys, each with a
    /// count above 0 and no more error than count, and a total no smaller than the counts.
    pub(crate) fn read_wire(&mut self, wire: &WireSummary<K>) -> Result<(), WireError> {
        let what = "heavy-hitter slots";
        if wire.slots.len() > SLOTS {
            return Err(WireError::TooMany(what));
        }
        self.reset();
        let mut held = 0u64;
        for (i, &(key, count, error, words)) in wire.slots.iter().enumerate() {
            if count == 0 || error > count {
                self.reset();
                return Err(WireError::ZeroCount(what));
            }
            if wire.slots[..i].iter().any(|w| w.0 == key) {
                self.reset();
                return Err(WireError::NotSorted(what));
            }
            self.keys[i] = key;
            self.fps[i] = key.fingerprint();
            self.counts[i] = count;
            self.errors[i] = error;
            self.values[i] = V::from_words(words);
            held += u64::from(count);
        }
        if wire.total < held {
            self.reset();
            return Err(WireError::ZeroCount("heavy-hitter totals"));
        }
        self.merged_extra = wire.total - held;
        self.scan_min();
        Ok(())
    }
}

/// Bits 2i and 2i + 1 set when `v[i] == x` (the byte mask of the lane compare, one
/// instruction less than narrowing it to one bit per slot).
#[inline(always)]
fn eq_mask2_u16(v: &[u16; SLOTS], x: u16) -> u32 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi16, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi16,
        };
        // SAFETY: SSE2 is enabled (cfg above); `v` is 16 readable bytes.
        unsafe {
            let eq = _mm_cmpeq_epi16(
                _mm_loadu_si128(v.as_ptr().cast::<__m128i>()),
                _mm_set1_epi16(x as i16),
            );
            _mm_movemask_epi8(eq) as u32
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        let one = eq_mask_scalar(v, x);
        let mut two = 0;
        for i in 0..SLOTS {
            two |= ((one >> i) & 1) * (0b11 << (2 * i));
        }
        two
    }
}

/// Bit i set when `v[i] == x`.
#[inline(always)]
fn eq_mask_u32(v: &[u32; SLOTS], x: u32) -> u32 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi32, _mm_loadu_si128, _mm_movemask_epi8, _mm_packs_epi16,
            _mm_packs_epi32, _mm_set1_epi32, _mm_setzero_si128,
        };
        // SAFETY: SSE2 is enabled (cfg above); `v` is 32 readable bytes.
        unsafe {
            let p = v.as_ptr().cast::<__m128i>();
            let t = _mm_set1_epi32(x as i32);
            let lo = _mm_cmpeq_epi32(_mm_loadu_si128(p), t);
            let hi = _mm_cmpeq_epi32(_mm_loadu_si128(p.add(1)), t);
            // Lanes of all ones or zeros narrow without saturation trouble.
            let words = _mm_packs_epi32(lo, hi);
            _mm_movemask_epi8(_mm_packs_epi16(words, _mm_setzero_si128())) as u32
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        eq_mask_scalar(v, x)
    }
}

/// The portable form of the masks above.
#[allow(dead_code)]
#[inline(always)]
fn eq_mask_scalar<T: Copy + PartialEq>(v: &[T; SLOTS], x: T) -> u32 {
    let mut hits = 0u32;
    for (i, &e) in v.iter().enumerate() {
        hits |= u32::from(e == x) << i;
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn add(s: &mut SpaceSaving, key: IpKey) {
        s.add(key, fingerprint(key));
    }

    #[test]
    fn exact_while_keys_fit() {
        let mut s = SpaceSaving::new();
        for (key, n) in [(5u128, 7), (1, 3), (9, 12), (2, 1)] {
            for _ in 0..n {
                add(&mut s, key);
            }
        }
        assert_eq!(s.top(3), vec![(9, 12, 0), (5, 7, 0), (1, 3, 0)]);
        s.reset();
        assert!(s.top(3).is_empty());
    }

    #[test]
    fn bounds_hold_on_a_skewed_stream() {
        // Keys 0..1000, key k with weight ~1/(k+1), interleaved pseudo-randomly; plus heavy 7777.
        let mut s = SpaceSaving::new();
        let mut truth = std::collections::HashMap::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut n = 0u64;
        for step in 0..100_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = if step % 3 == 0 {
                7777
            } else {
                u128::from((x % 1000) * (x % 7) / 6)
            };
            add(&mut s, key);
            *truth.entry(key).or_insert(0u64) += 1;
            n += 1;
        }
        let bound = n / SLOTS as u64;
        let top = s.top(SLOTS);
        assert_eq!(top[0].0, 7777);
        for (key, count, error) in top {
            let t = truth[&key];
            assert!(
                count >= t && count - error <= t,
                "{key}: {count} −{error} vs {t}"
            );
            assert!(error <= bound);
        }
        // Every key above N / SLOTS is held.
        for (key, t) in truth {
            if t > bound {
                assert!(s.top(SLOTS).iter().any(|e| e.0 == key), "{key} ({t})");
            }
        }
    }

    #[test]
    fn vector_masks_match_the_scalar_ones() {
        let v16: [u16; SLOTS] = [3, 0, 3, 9, 0xffff, 3, 1, 0x8000];
        let v32: [u32; SLOTS] = [7, 0, u32::MAX, 7, 1 << 31, 5, 7, 0];
        for x in [0u16, 3, 9, 0xffff, 0x8000, 2] {
            let one = eq_mask_scalar(&v16, x);
            let two = eq_mask2_u16(&v16, x);
            for i in 0..SLOTS {
                assert_eq!((two >> (2 * i)) & 0b11, ((one >> i) & 1) * 0b11, "{x} {i}");
            }
        }
        for x in [0u32, 7, u32::MAX, 1 << 31, 5, 6] {
            assert_eq!(eq_mask_u32(&v32, x), eq_mask_scalar(&v32, x), "{x}");
        }
        assert_eq!(eq_mask2_u16(&v16, 3), 0b1100_0011_0011);
    }

    /// A skewed stream of 100,000 keys; `part(step)` says which of two halves it goes to.
    fn skewed(part: impl Fn(u64) -> bool) -> (SpaceSaving, SpaceSaving, HashMap<IpKey, u64>) {
        let (mut a, mut b) = (SpaceSaving::new(), SpaceSaving::new());
        let mut truth = HashMap::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for step in 0..100_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = match step % 7 {
                0 => 7777,
                1 if step < 50_000 => 4242,
                _ => u128::from((x % 1000) * (x % 7) / 6),
            };
            add(if part(step) { &mut a } else { &mut b }, key);
            *truth.entry(key).or_insert(0u64) += 1;
        }
        (a, b, truth)
    }

    #[test]
    fn a_merge_keeps_the_bounds_of_the_whole_stream() {
        // Halves by time (the heavy key 4242 only in the first), and interleaved.
        let splits: [fn(u64) -> bool; 3] = [|s| s < 50_000, |s| s % 2 == 0, |s| s % 10 == 0];
        for split in splits {
            let (mut a, b, truth) = skewed(split);
            let n: u64 = truth.values().sum();
            a.merge(&b);
            assert_eq!(a.total(), n);
            let bound = n / SLOTS as u64;
            let top = a.top(SLOTS);
            assert_eq!(top.len(), SLOTS);
            assert_eq!(top[0].0, 7777);
            for &(key, count, error) in &top {
                let t = truth[&key];
                assert!(
                    count >= t && count - error <= t,
                    "{key}: {count} −{error} vs {t}"
                );
                assert!(error <= bound, "{key}: error {error} > {bound}");
            }
            for (&key, &t) in &truth {
                if t > bound {
                    assert!(
                        top.iter().any(|e| e.0 == key),
                        "{key} ({t}) lost by the merge"
                    );
                }
            }
            // Adding after a merge goes on from the merged minimum.
            for _ in 0..3 {
                add(&mut a, 999_999);
            }
            let held = a.top(SLOTS);
            if let Some(e) = held.iter().find(|e| e.0 == 999_999) {
                assert!(e.1 - e.2 <= 3 && e.1 >= 3, "{e:?}");
            }
        }
        // Merging an empty summary changes nothing; into an empty one copies.
        let (a, _, _) = skewed(|_| true);
        let mut c = a.clone();
        c.merge(&SpaceSaving::new());
        assert_eq!(c.top(SLOTS), a.top(SLOTS));
        let mut e = SpaceSaving::new();
        e.merge(&a);
        assert_eq!(e.top(SLOTS), a.top(SLOTS));
        assert_eq!(e.total(), a.total());
    }

    /// A slot value: how many updates carried an even number.
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Evens(u32);

    impl SlotValue for Evens {
        type Input = u32;
        const EMPTY: Self = Evens(0);
        fn start(x: u32) -> Self {
            Evens(u32::from(x.is_multiple_of(2)))
        }
        fn hit(&mut self, x: u32) {
            self.0 += u32::from(x.is_multiple_of(2));
        }
        fn merge(&mut self, other: &Self) {
            self.0 += other.0;
        }
        fn to_words(&self) -> [u64; 2] {
            [u64::from(self.0), 0]
        }
        fn from_words(w: [u64; 2]) -> Self {
            Evens(w[0] as u32)
        }
    }

    #[test]
    fn slot_values_follow_their_key_through_replacements_and_merges() {
        let mut s: SpaceSaving<(IpKey, IpKey), Evens> = SpaceSaving::new();
        let pair = |k: u128| ((k, k + 1), fingerprint(k));
        for n in 0..10u32 {
            let (k, fp) = pair(1);
            s.add_with(k, fp, n);
        }
        // Eight more keys: the ninth evicts one of them, never the heavy one.
        for k in 2..11 {
            let (key, fp) = pair(k);
            s.add_with(key, fp, 1);
        }
        let mut seen = Vec::new();
        s.each_top(SLOTS, |k, c, e, v| seen.push((k, c, e, *v)));
        assert_eq!(seen[0], ((1, 2), 10, 0, Evens(5)));
        let newest = seen
            .iter()
            .find(|e| e.0 == (10, 11))
            .expect("the last key holds a slot");
        assert_eq!(
            (newest.1, newest.2, newest.3),
            (2, 1, Evens(0)),
            "restarted, not inherited"
        );
        let mut t = SpaceSaving::new();
        let (k, fp) = pair(1);
        t.add_with(k, fp, 2);
        s.merge(&t);
        let mut top = Vec::new();
        s.each_top(1, |k, c, e, v| top.push((k, c, e, *v)));
        assert_eq!(top, [((1, 2), 11, 0, Evens(6))]);
    }

    #[test]
    fn colliding_fingerprints_keep_keys_apart() {
        let mut s = SpaceSaving::new();
        for _ in 0..3 {
            s.add(1, 43);
        }
        s.add(2, 43);
        s.add(2, 43);
        assert_eq!(s.top(2), vec![(1, 3, 0), (2, 2, 0)]);
    }
}
