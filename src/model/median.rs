//! The median of the last N values, exactly, in bounded memory: the baseline the adaptive
//! threshold judges each score against (`model/spot.rs`, "median baseline").
//!
//! A ring of the values in arrival order beside the same values sorted: a push inserts by
//! binary search and removes the value leaving the ring the same way, so the median is one
//! index away. Each push moves at most N floats (a `memmove` of 28 kB for 30 minutes of
//! half-second windows, twice a second: nothing beside scoring a window). Serialised as the
//! ring alone; the sorted copy is rebuilt on load.

use std::collections::VecDeque;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The last `capacity` values and their median.
#[derive(Clone, Debug, Default)]
pub struct MedianRing {
    /// The values, oldest first (at most `capacity`).
    ring: VecDeque<f64>,
    /// The same values in ascending order.
    sorted: Vec<f64>,
}

impl MedianRing {
    /// A ring holding `values` (the last `capacity` of them), oldest first.
    pub fn from_values(values: impl IntoIterator<Item = f64>, capacity: usize) -> MedianRing {
        let mut ring: VecDeque<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        while ring.len() > capacity {
            ring.pop_front();
        }
        let mut sorted: Vec<f64> = ring.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        MedianRing { ring, sorted }
    }

    /// Values held.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// True when no value is held.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// The values, oldest first.
    pub fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.ring.iter().copied()
    }

    /// Adds `v` (a non-finite value is ignored), dropping the oldest beyond `capacity`.
    pub fn push(&mut self, v: f64, capacity: usize) {
        if !v.is_finite() || capacity == 0 {
            return;
        }
        while self.ring.len() >= capacity {
            let Some(old) = self.ring.pop_front() else {
                break;
            };
            let i = self.sorted.partition_point(|x| x.total_cmp(&old).is_lt());
            self.sorted.remove(i);
        }
        self.ring.push_back(v);
        let i = self.sorted.partition_point(|x| x.total_cmp(&v).is_lt());
        self.sorted.insert(i, v);
    }

    /// The median: the lower of the two middle values for an even count (a value that was
    /// seen, so a ratio to it is the same whether scores or their logarithms are ranked);
    /// `None` when empty.
    pub fn median(&self) -> Option<f64> {
        let n = self.sorted.len();
        (n > 0).then(|| self.sorted[(n - 1) / 2])
    }
}

impl PartialEq for MedianRing {
    /// The same values in the same order (the sorted copy follows from them).
    fn eq(&self, other: &Self) -> bool {
        self.ring == other.ring
    }
}

impl Serialize for MedianRing {
    /// The values, oldest first, as a list.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.ring.serialize(s)
    }
}

impl<'de> Deserialize<'de> for MedianRing {
    /// A list of values, oldest first; the caller checks the length against its capacity.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let ring = VecDeque::<f64>::deserialize(d)?;
        let mut sorted: Vec<f64> = ring.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        Ok(MedianRing { ring, sorted })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SplitMix64;

    /// The median after every push equals a sort of the last N values.
    #[test]
    fn median_of_the_last_n_matches_a_sort() {
        let mut rng = SplitMix64::new(3);
        let mut r = MedianRing::default();
        let mut all = Vec::new();
        for k in 0..2_000 {
            // Ties too: values on a coarse grid.
            let v = (rng.next_f64() * 50.0).floor();
            all.push(v);
            r.push(v, 101);
            let start = all.len().saturating_sub(101);
            let mut w = all[start..].to_vec();
            w.sort_by(f64::total_cmp);
            assert_eq!(r.median(), Some(w[(w.len() - 1) / 2]), "after {k} pushes");
            assert_eq!(r.len(), w.len());
        }
        r.push(f64::NAN, 101);
        assert_eq!(r.len(), 101, "NaN ignored");
    }

    /// Even counts take the lower middle; the ring keeps the last values in order; a round
    /// trip through JSON keeps the values and rebuilds the order.
    #[test]
    fn lower_middle_order_and_round_trip() {
        let mut r = MedianRing::from_values([5.0, 1.0, 4.0, 2.0], 10);
        assert_eq!(r.median(), Some(2.0));
        r.push(3.0, 4);
        assert_eq!(r.values().collect::<Vec<_>>(), vec![1.0, 4.0, 2.0, 3.0]);
        assert_eq!(r.median(), Some(2.0));
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "[1.0,4.0,2.0,3.0]");
        let back: MedianRing = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.median(), Some(2.0));
        assert_eq!(MedianRing::default().median(), None);
        let r = MedianRing::from_values((0..10).map(f64::from), 3);
        assert_eq!(r.values().collect::<Vec<_>>(), vec![7.0, 8.0, 9.0]);
    }
}
