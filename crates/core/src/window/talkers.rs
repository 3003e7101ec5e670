//! Top talkers: who sent and received most packets in a window, in bounded memory.
//!
//! Exact counts come from the distinct tallies while a window holds at most
//! [`super::distinct::EXACT_LIMIT`] addresses. Past that, a count-min sketch estimates the
//! counts of new addresses and a few candidate slots keep the largest of them.

use std::net::IpAddr;

use super::distinct::hash_key;
use super::partial::{WireError, WireHeavy};
use crate::decode::IpKey;

/// A window's top sources, destinations and destination ports, by packet count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Talkers {
    pub src_addrs: Vec<(IpAddr, u64)>,
    pub dst_addrs: Vec<(IpAddr, u64)>,
    pub dst_ports: Vec<(u16, u64)>,
    /// True when some counts are count-min estimates (a window past the exact limit).
    pub approximate: bool,
}

const CMS_DEPTH: usize = 4;
/// Counters per count-min row.
pub(crate) const CMS_WIDTH: usize = 16_384;
const CANDIDATES: usize = 16;
const CMS_SEED: u64 = 0x6e65_7461_6e6f_6d33;

/// Count-min sketch (4 × 16 Ki counters, 256 KiB) plus 16 heavy-hitter candidate slots.
#[derive(Clone)]
pub(crate) struct HeavyHitters {
    rows: Box<[u32]>,
    candidates: [(IpKey, u64); CANDIDATES],
    used: usize,
}

impl HeavyHitters {
    /// Allocates the sketch (once per overflowing window).
    pub(crate) fn new() -> Self {
        Self {
            rows: vec![0u32; CMS_DEPTH * CMS_WIDTH].into_boxed_slice(),
            candidates: [(0, 0); CANDIDATES],
            used: 0,
        }
    }

    /// Counts one packet for `key` and keeps it if it is among the largest seen; returns its
    /// estimated count.
    #[inline]
    pub(crate) fn add(&mut self, key: IpKey) -> u32 {
        // Kirsch–Mitzenmacher: two halves of one hash give all row indices.
        let h = hash_key(CMS_SEED, key);
        let (h1, h2) = (h as u32 as usize, (h >> 32) as usize | 1);
        let mut estimate = u32::MAX;
        for row in 0..CMS_DEPTH {
            let idx = row * CMS_WIDTH + (h1.wrapping_add(row.wrapping_mul(h2)) % CMS_WIDTH);
            let c = &mut self.rows[idx];
            *c = c.saturating_add(1);
            estimate = estimate.min(*c);
        }
        let est = estimate;
        let estimate = u64::from(estimate);
        if let Some(slot) = self.candidates[..self.used]
            .iter_mut()
            .find(|(k, _)| *k == key)
        {
            slot.1 = estimate;
            return est;
        }
        if self.used < CANDIDATES {
            self.candidates[self.used] = (key, estimate);
            self.used += 1;
            return est;
        }
        let (min_idx, min) = self
            .candidates
            .iter()
            .enumerate()
            .min_by_key(|(_, (_, c))| *c)
            .map(|(i, (_, c))| (i, *c))
            .unwrap_or((0, 0));
        if estimate > min {
            self.candidates[min_idx] = (key, estimate);
        }
        est
    }

    /// The row indices of `key`.
    #[inline]
    fn cells(key: IpKey) -> [usize; CMS_DEPTH] {
        // Kirsch–Mitzenmacher: two halves of one hash give all row indices.
        let h = hash_key(CMS_SEED, key);
        let (h1, h2) = (h as u32 as usize, (h >> 32) as usize | 1);
        std::array::from_fn(|row| {
            row * CMS_WIDTH + (h1.wrapping_add(row.wrapping_mul(h2)) % CMS_WIDTH)
        })
    }

    /// The estimated count of `key`, without counting anything.
    pub(crate) fn estimate(&self, key: IpKey) -> u64 {
        Self::cells(key)
            .iter()
            .map(|&i| u64::from(self.rows[i]))
            .min()
            .unwrap_or(0)
    }

    /// Counts `count` packets for `key` at once (a merged part's exact count moved here).
    pub(crate) fn add_weighted(&mut self, key: IpKey, count: u32) {
        for i in Self::cells(key) {
            self.rows[i] = self.rows[i].saturating_add(count);
        }
        self.offer(key);
    }

    /// Adds another part's sketch (rows add) and re-estimates both parts' candidates.
    pub(crate) fn merge(&mut self, other: &HeavyHitters) {
        for (a, b) in self.rows.iter_mut().zip(other.rows.iter()) {
            *a = a.saturating_add(*b);
        }
        let mut keys: Vec<IpKey> = self
            .candidates()
            .chain(other.candidates())
            .map(|c| c.0)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        self.used = 0;
        for key in keys {
            self.offer(key);
        }
    }

    /// Keeps `key` among the candidates if its estimate is among the largest.
    fn offer(&mut self, key: IpKey) {
        let estimate = self.estimate(key);
        if let Some(slot) = self.candidates[..self.used]
            .iter_mut()
            .find(|(k, _)| *k == key)
        {
            slot.1 = estimate;
        } else if self.used < CANDIDATES {
            self.candidates[self.used] = (key, estimate);
            self.used += 1;
        } else if let Some(min) = self
            .candidates
            .iter_mut()
            .min_by_key(|(k, c)| (*c, std::cmp::Reverse(*k)))
            .filter(|(_, c)| estimate > *c)
        {
            *min = (key, estimate);
        }
    }

    /// The sketch as it travels.
    pub(crate) fn to_wire(&self) -> WireHeavy {
        WireHeavy {
            rows: self.rows.to_vec(),
            candidates: self.candidates().map(|(k, _)| k).collect(),
        }
    }

    /// A sketch from its wire form: exactly the rows of this sketch, at most its candidates;
    /// the candidates' estimates are recomputed from the rows.
    pub(crate) fn from_wire(wire: WireHeavy) -> Result<HeavyHitters, WireError> {
        if wire.rows.len() != CMS_DEPTH * CMS_WIDTH {
            return Err(WireError::Sketch);
        }
        if wire.candidates.len() > CANDIDATES {
            return Err(WireError::TooMany("heavy-hitter candidates"));
        }
        let mut h = HeavyHitters {
            rows: wire.rows.into_boxed_slice(),
            candidates: [(0, 0); CANDIDATES],
            used: 0,
        };
        for key in wire.candidates {
            h.offer(key);
        }
        Ok(h)
    }

    /// The candidate addresses with their estimated counts.
    pub(crate) fn candidates(&self) -> impl Iterator<Item = (IpKey, u64)> + '_ {
        self.candidates[..self.used].iter().copied()
    }
}
