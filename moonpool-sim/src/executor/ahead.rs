//! Looking ahead of the pick: the generator's next draws, read before they are used, and the
//! cache prefetches they make possible.
//!
//! Among 1,000 connections every task a pick chooses is out of the cache: its slot, then its
//! future (found through the slot), then whatever the future reads, one miss waiting for the
//! last. The pick is uniform and seeded, but the draws it will use are known before it makes
//! them: [`PickRng`] reads them ahead into a small buffer and hands them out in the same order,
//! so every pick draws exactly what it drew before (the same fingerprints), while the drain
//! can guess the next two picks from them and start their loads early ([`prefetch`]). A guess
//! is only a guess: a poll that wakes or removes tasks changes the ready queue and the index
//! the draw maps to, and then the prefetched line is merely unused. Nothing reads a
//! prefetched line's value; a prefetch never faults, whatever the address.

use rand_chacha::ChaCha8Rng;

use super::TaskId;
use rand_core::Rng;

/// The pick's generator with up to two draws read ahead.
#[derive(Clone)]
pub(crate) struct PickRng {
    rng: ChaCha8Rng,
    /// Draws taken from `rng` and not yet handed out, oldest first: `ahead[..queued]`.
    ahead: [u64; 2],
    queued: u8,
}

impl PickRng {
    pub(crate) fn new(rng: ChaCha8Rng) -> Self {
        Self {
            rng,
            ahead: [0; 2],
            queued: 0,
        }
    }

    /// The next draw: the oldest one read ahead, or a new one.
    #[inline(always)]
    pub(crate) fn next_u64(&mut self) -> u64 {
        match self.queued {
            0 => self.rng.next_u64(),
            _ => {
                let value = self.ahead[0];
                self.ahead[0] = self.ahead[1];
                self.queued -= 1;
                value
            }
        }
    }

    /// The draw `k` places ahead (`0`: what the next [`next_u64`](Self::next_u64) returns),
    /// read from the generator now if it was not yet. `k` is 0 or 1.
    #[inline(always)]
    pub(crate) fn peek(&mut self, k: usize) -> u64 {
        let k = k.min(1);
        while usize::from(self.queued) <= k {
            self.ahead[usize::from(self.queued)] = self.rng.next_u64();
            self.queued += 1;
        }
        self.ahead[k]
    }

    /// The generator as it would be had nothing been read ahead: what
    /// [`next_u64`](Self::next_u64) would continue with (each draw is two 32-bit words).
    pub(crate) fn snapshot(&self) -> ChaCha8Rng {
        let mut rng = self.rng.clone();
        if self.queued > 0 {
            let back = 2 * u128::from(self.queued);
            rng.set_word_pos(rng.get_word_pos().wrapping_sub(back));
        }
        rng
    }
}

/// The index in `0..len` that a pick's first draw `raw` maps to (a pick that rejects its first
/// draw, once in 2^64 / `len`, draws again: the guess is then wrong, which costs nothing).
#[inline(always)]
pub(crate) fn guess_index(raw: u64, len: usize) -> usize {
    ((u128::from(raw) * len as u128) >> 64) as usize
}

/// Addresses a woken task will read first when it is polled (`0`: none), given by the code that
/// woke it: a delivery names the reader's half, its first unread byte and the peer half its
/// reply will be written to. The two lines at each
/// are prefetched, never read through: a stale address costs nothing.
pub(crate) type Hints = [usize; 3];

/// One entry of the ready queue: the task by slot and id, and what to prefetch for it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ready {
    pub(crate) slot: u32,
    pub(crate) id: TaskId,
    pub(crate) hints: Hints,
}
