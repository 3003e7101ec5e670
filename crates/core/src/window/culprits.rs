//! Culprits: per feature family, the hosts that contributed most to it in a window.
//!
//! One [`SpaceSaving`] summary per [`Family`] (8 counters each, a few KiB for all of them,
//! allocated once): memory does not grow with the number of hosts, so a spoofed flood cannot
//! blow it up. The packets family is the exception: its top is the window's source tally
//! (exact up to 65,536 sources, count-min beyond), which is kept anyway for the top talkers. A packet counts in the families it belongs to (its flags, protocol, well-known
//! ports), keyed by its source address; a distinct-count family counts a key only when the
//! packet brought a value not yet seen in the window. [`Contributors`] is what a closed
//! window keeps: the top few of each family.

use std::net::IpAddr;

use super::features::{Family, Feature, NUM_FAMILIES};
use super::spacesaving::SpaceSaving;
use crate::decode::{key_to_addr, IpKey};

pub use super::spacesaving::{fingerprint, SLOTS};

/// Contributors a closed window keeps per family.
pub const CONTRIBUTORS_PER_FAMILY: usize = 3;

/// The open window's heavy hitters, one summary per family.
pub struct CulpritTally {
    families: Box<[SpaceSaving; NUM_FAMILIES]>,
}

impl Default for CulpritTally {
    fn default() -> Self {
        Self::new()
    }
}

impl CulpritTally {
    /// Allocates every family's summary (the only allocation).
    pub fn new() -> Self {
        Self {
            families: Box::new([const { SpaceSaving::new() }; NUM_FAMILIES]),
        }
    }

    /// Counts one packet (or new value) of `family` for `key` (fingerprint `fp`).
    #[inline(always)]
    pub fn add(&mut self, family: Family, key: IpKey, fp: u16) {
        self.families[family.index()].add(key, fp);
    }

    /// The top [`CONTRIBUTORS_PER_FAMILY`] of every family, then forgets the window. The
    /// packets family is not summarised here: `packets` is its top, from the exact source tally.
    pub fn take(&mut self, packets: Vec<Contributor>) -> Contributors {
        let mut entries = packets;
        let mut ends = [0u16; NUM_FAMILIES];
        for (i, s) in self.families.iter_mut().enumerate() {
            if i == Family::Packets.index() {
                ends[i] = u16::try_from(entries.len()).unwrap_or(u16::MAX);
                continue;
            }
            entries.extend(s.top(CONTRIBUTORS_PER_FAMILY).into_iter().map(
                |(key, count, max_error)| Contributor {
                    addr: key_to_addr(key),
                    count,
                    max_error,
                },
            ));
            ends[i] = u16::try_from(entries.len()).unwrap_or(u16::MAX);
            s.reset();
        }
        Contributors { entries, ends }
    }

    /// Forgets the window without reporting it.
    pub fn reset(&mut self) {
        for s in self.families.iter_mut() {
            s.reset();
        }
    }
}

/// A host that contributed to a family in a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contributor {
    /// The key: a source address, or for [`Family::NewSrcAddrs`] a destination address.
    pub addr: IpAddr,
    /// Its count in the family ([`Family::unit`]): at least the true count.
    pub count: u64,
    /// How much `count` may exceed the true count (0: exact; at most N / [`SLOTS`]).
    pub max_error: u64,
}

/// A closed window's top contributors of every family, largest first within a family.
#[derive(Clone, Debug, PartialEq)]
pub struct Contributors {
    entries: Vec<Contributor>,
    /// `ends[i]`: end of family i's entries in `entries` (empty: an empty window).
    ends: [u16; NUM_FAMILIES],
}

impl Default for Contributors {
    /// No contributors (an empty window); allocates nothing.
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            ends: [0; NUM_FAMILIES],
        }
    }
}

impl Contributors {
    /// The contributors of a family, largest count first (empty when it saw no packet).
    pub fn of(&self, family: Family) -> &[Contributor] {
        let i = family.index();
        let end = usize::from(self.ends[i]).min(self.entries.len());
        let start = if i == 0 {
            0
        } else {
            usize::from(self.ends[i - 1]).min(end)
        };
        &self.entries[start..end]
    }

    /// The contributors that explain a feature (those of its [`Feature::family`]).
    pub fn for_feature(&self, feature: Feature) -> &[Contributor] {
        self.of(feature.family())
    }

    /// Builds contributors from per-family lists (tests and fixtures).
    pub fn from_lists(lists: &[(Family, Vec<Contributor>)]) -> Self {
        let mut entries = Vec::new();
        let mut ends = [0u16; NUM_FAMILIES];
        for fam in Family::ALL {
            if let Some((_, l)) = lists.iter().find(|(f, _)| *f == fam) {
                entries.extend(l.iter().copied());
            }
            ends[fam.index()] = u16::try_from(entries.len()).unwrap_or(u16::MAX);
        }
        Contributors { entries, ends }
    }
}
