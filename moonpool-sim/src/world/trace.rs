//! The run fingerprint: a hash folded over every processed event and every scheduling decision.
//!
//! Two runs of one seed must produce the same fingerprint; a difference means something other than
//! the seed leaked into the run.

/// A 64-bit running hash (FNV-1a over words, then a final mix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceHash {
    state: u64,
    words: u64,
}

impl Default for TraceHash {
    fn default() -> Self {
        Self {
            state: 0xcbf2_9ce4_8422_2325,
            words: 0,
        }
    }
}

impl TraceHash {
    /// A hash that starts from `seed`, so that two seeds' runs differ in fingerprint even when
    /// they fail before their first event.
    pub fn for_seed(seed: u64) -> Self {
        let mut hash = Self::default();
        hash.fold(seed);
        hash
    }

    /// Folds one word.
    #[inline]
    pub fn fold(&mut self, word: u64) {
        self.state = (self.state ^ word).wrapping_mul(0x0000_0100_0000_01b3);
        self.words += 1;
    }

    /// The fingerprint so far.
    pub fn value(&self) -> u64 {
        let mut z = self.state ^ self.words;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
