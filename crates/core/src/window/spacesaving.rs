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

/// One Space-Saving summary of [`SLOTS`] counters. Empty slots hold count 0 and take part in
/// the minimum, so filling a free slot and replacing a smallest one are the same step.
#[derive(Clone, Debug)]
#[repr(C, align(16))]
pub struct SpaceSaving {
    /// Fingerprints of the held keys, 0 for an empty slot (first: one vector load).
    fps: [u16; SLOTS],
    counts: [u32; SLOTS],
    errors: [u32; SLOTS],
    keys: [IpKey; SLOTS],
    /// Bit i: slot i holds the minimum count.
    at_min: u32,
    /// The minimum count.
    min: u32,
    /// `min + 1` (saturated), what a replacing key starts at.
    next: u32,
}

impl Default for SpaceSaving {
    fn default() -> Self {
        Self::new()
    }
}

impl SpaceSaving {
    /// An empty summary.
    pub const fn new() -> Self {
        Self {
            fps: [0; SLOTS],
            counts: [0; SLOTS],
            errors: [0; SLOTS],
            keys: [0; SLOTS],
            at_min: ALL_SLOTS,
            min: 0,
            next: 1,
        }
    }

    /// Counts one for `key`, whose [`fingerprint`] is `fp`.
    #[inline(always)]
    pub fn add(&mut self, key: IpKey, fp: u16) {
        // Two bits per slot: 2i and 2i + 1 for slot i.
        let hits = eq_mask2_u16(&self.fps, fp);
        if hits == 0 {
            return self.replace_min(key, fp);
        }
        // The high bit tells the compiler the operand is not zero (one instruction).
        let i = ((hits | 1 << (2 * SLOTS)).trailing_zeros() / 2) as usize & (SLOTS - 1);
        if self.keys[i] == key {
            return self.bump(i);
        }
        self.add_colliding(key, fp)
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
    fn replace_min(&mut self, key: IpKey, fp: u16) {
        let i = (self.at_min | 1 << SLOTS).trailing_zeros() as usize & (SLOTS - 1);
        self.keys[i] = key;
        self.fps[i] = fp;
        self.errors[i] = self.min;
        self.counts[i] = self.next;
        // Clears bit i, the lowest set one.
        self.at_min &= self.at_min.wrapping_sub(1);
        if self.at_min == 0 {
            self.find_min();
        }
    }

    /// Fingerprints matched but the key did not (rare): compare every held key.
    #[cold]
    #[inline(never)]
    fn add_colliding(&mut self, key: IpKey, fp: u16) {
        let found = (0..SLOTS).find(|&i| self.fps[i] == fp && self.keys[i] == key);
        match found {
            Some(i) => self.bump(i),
            None => self.replace_min(key, fp),
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
    }

    /// The held keys, largest count first (ties by key): `(key, count, error)`, where the true
    /// count lies in `count − error ..= count`.
    pub fn top(&self, n: usize) -> Vec<(IpKey, u64, u64)> {
        let mut out = Vec::new();
        self.each_top(n, |key, count, error| out.push((key, count, error)));
        out
    }

    /// Calls `f(key, count, error)` for the `n` largest held keys, as [`Self::top`] lists them,
    /// without allocating (once per family and window close).
    pub fn each_top(&self, n: usize, mut f: impl FnMut(IpKey, u64, u64)) {
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
            );
        }
    }
}

impl SpaceSaving {
    /// The smallest count, empty slots (count 0) included: what a key not held may have had.
    fn floor(&self) -> u64 {
        u64::from(self.counts.iter().copied().min().unwrap_or(0))
    }

    /// The held slots as `(key, count, error)`, in slot order.
    fn held(&self) -> impl Iterator<Item = (IpKey, u64, u64)> + '_ {
        (0..SLOTS).filter(|&i| self.fps[i] != 0).map(|i| {
            (
                self.keys[i],
                u64::from(self.counts[i]),
                u64::from(self.errors[i]),
            )
        })
    }

    /// Adds the summary of another part of the same stream (the mergeable-summaries rule of
    /// Agarwal et al., 2012): a key held by both adds counts and errors; a key held by one
    /// side adds the other side's smallest count to both, since it may have had up to that
    /// much there unseen (0 while that side has an empty slot); then the [`SLOTS`] largest
    /// stay. Each kept count still brackets its true count, `count − error ≤ true ≤ count`,
    /// with `error ≤ (N1 + N2) / SLOTS`; a key not kept has at most the new smallest count.
    pub fn merge(&mut self, other: &SpaceSaving) {
        let (mine, theirs) = (self.floor(), other.floor());
        let mut all = [(0u128, 0u64, 0u64); 2 * SLOTS];
        let mut n = 0;
        for (key, count, error) in self.held() {
            let (c, e) = match other.held().find(|h| h.0 == key) {
                Some((_, oc, oe)) => (count + oc, error + oe),
                None => (count + theirs, error + theirs),
            };
            all[n] = (key, c, e);
            n += 1;
        }
        for (key, count, error) in other.held() {
            if !self.held().any(|h| h.0 == key) {
                all[n] = (key, count + mine, error + mine);
                n += 1;
            }
        }
        let all = &mut all[..n];
        all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        self.set(all.iter().take(SLOTS).copied());
    }

    /// Holds exactly `entries` (at most [`SLOTS`]; `(key, count, error)`), minimum recomputed.
    fn set(&mut self, entries: impl Iterator<Item = (IpKey, u64, u64)>) {
        self.reset();
        for (i, (key, count, error)) in entries.take(SLOTS).enumerate() {
            self.keys[i] = key;
            self.fps[i] = fingerprint(key);
            self.counts[i] = u32::try_from(count).unwrap_or(u32::MAX);
            self.errors[i] = u32::try_from(error).unwrap_or(u32::MAX);
        }
        self.scan_min();
    }

    /// The held keys as they travel: `(key, count, error)`, largest first.
    pub(crate) fn to_wire(&self) -> Vec<(IpKey, u32, u32)> {
        let mut out = Vec::new();
        self.each_top(SLOTS, |k, c, e| {
            out.push((k, c as u32, e as u32));
        });
        out
    }

    /// Fills this summary from its wire form: at most [`SLOTS`] distinct keys, each with a
    /// count above 0 and no more error than count.
    pub(crate) fn read_wire(&mut self, wire: &[(IpKey, u32, u32)]) -> Result<(), WireError> {
        if wire.len() > SLOTS {
            return Err(WireError::TooMany("heavy-hitter slots"));
        }
        for (i, &(key, count, error)) in wire.iter().enumerate() {
            if count == 0 || error > count {
                return Err(WireError::ZeroCount("heavy-hitter slots"));
            }
            if wire[..i].iter().any(|w| w.0 == key) {
                return Err(WireError::NotSorted("heavy-hitter slots"));
            }
        }
        self.set(
            wire.iter()
                .map(|&(k, c, e)| (k, u64::from(c), u64::from(e))),
        );
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
