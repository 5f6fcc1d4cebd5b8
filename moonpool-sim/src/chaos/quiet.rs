//! The simulator's own buggify sites on hot paths (a socket read or write), asked with the
//! running world's chaos state at hand ([`RunChaos`]).
//!
//! A site that is *disabled* for the seed never fires and draws nothing: a call only counts. Such
//! a site, once reached through the chaos state (which decides its activation at its first call,
//! in call order, as for any site), is remembered in a small cache beside the world's state, and
//! its later calls are counted there: no lock, no lookup. The counts are added to the chaos
//! state's counters when an entry is evicted and when the run ends ([`RunChaos::flush`]), before
//! anything reads them (the assertion table is read after the run). An enabled site goes through
//! the chaos state at every call, since each call draws whether it fires.

use moonpool_core::chaos::Site;

use super::{ChaosState, SharedChaos};

/// Cached disabled sites (looked up by address, replaced in turn).
const ENTRIES: usize = 4;

/// One cached disabled site: its address, its index in the chaos state's counters, and calls
/// not yet added there.
#[derive(Clone, Copy, Default)]
struct Entry {
    site: usize,
    index: usize,
    calls: u64,
}

/// A run's chaos state as the world's state holds it for the run.
pub(crate) struct RunChaos {
    shared: SharedChaos,
    quiet: [Entry; ENTRIES],
    /// The entry a new site replaces when none is free.
    next_evicted: usize,
}

impl RunChaos {
    pub(crate) fn new(shared: SharedChaos) -> Self {
        Self {
            shared,
            quiet: [Entry::default(); ENTRIES],
            next_evicted: 0,
        }
    }

    /// One call of the buggify site `site` (the same answer and the same counts as `buggify!`
    /// through the installed hooks).
    #[inline]
    pub(crate) fn buggify(&mut self, site: &'static Site, probability: f64) -> bool {
        let address = std::ptr::from_ref(site) as usize;
        for entry in &mut self.quiet {
            if entry.site == address {
                entry.calls += 1;
                return false;
            }
        }
        self.buggify_slow(site, probability)
    }

    #[cold]
    fn buggify_slow(&mut self, site: &'static Site, probability: f64) -> bool {
        let mut state = self.shared.lock();
        let fired = state.buggify(site, probability);
        if let Some(index) = state.disabled_index(site) {
            // Round robin: a free entry first, else the next one in turn.
            let slot = self
                .quiet
                .iter()
                .position(|entry| entry.site == 0)
                .unwrap_or(self.next_evicted);
            self.next_evicted = (slot + 1) % ENTRIES;
            if let Some(entry) = self.quiet.get_mut(slot) {
                flush_entry(&mut state, entry);
                *entry = Entry {
                    site: std::ptr::from_ref(site) as usize,
                    index,
                    calls: 0,
                };
            }
        }
        fired
    }

    /// Adds the cached calls to the chaos state's counters and empties the cache.
    pub(crate) fn flush(&mut self) {
        let mut state = self.shared.lock();
        for entry in &mut self.quiet {
            flush_entry(&mut state, entry);
            *entry = Entry::default();
        }
    }
}

fn flush_entry(state: &mut ChaosState, entry: &mut Entry) {
    if entry.calls > 0 {
        state.add_calls(entry.index, entry.calls);
        entry.calls = 0;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;
    use crate::chaos::BuggifyConfig;
    use crate::run_lock::RunLock;

    fn run_chaos(buggify: BuggifyConfig) -> RunChaos {
        let rng = crate::kernel::rng::stream(7, crate::kernel::rng::STREAM_BUGGIFY);
        RunChaos::new(Arc::new(RunLock::new(ChaosState::new(buggify, rng))))
    }

    fn calls(chaos: &RunChaos) -> Vec<u64> {
        chaos
            .shared
            .lock()
            .counters
            .iter()
            .map(|c| c.calls)
            .collect()
    }

    #[test]
    fn test_a_disabled_site_is_counted_beside_the_state_and_flushed() {
        let mut chaos = run_chaos(BuggifyConfig::disabled());
        let first: &'static Site = moonpool_core::__chaos_site!("buggify", None);
        let second: &'static Site = moonpool_core::__chaos_site!("buggify", None);
        for _ in 0..5 {
            assert!(!chaos.buggify(first, 1.0));
            assert!(!chaos.buggify(second, 1.0));
        }
        // Only the first call of each reached the state; the rest wait in the cache.
        assert_eq!(calls(&chaos), vec![1, 1]);
        assert_eq!(chaos.quiet.iter().filter(|e| e.site != 0).count(), 2);
        chaos.flush();
        assert_eq!(calls(&chaos), vec![5, 5]);
        assert!(chaos.quiet.iter().all(|e| e.site == 0 && e.calls == 0));
    }

    #[test]
    fn test_more_disabled_sites_than_entries_are_all_counted() {
        let mut chaos = run_chaos(BuggifyConfig::disabled());
        let sites: [&'static Site; 6] = [
            moonpool_core::__chaos_site!("buggify", None),
            moonpool_core::__chaos_site!("buggify", None),
            moonpool_core::__chaos_site!("buggify", None),
            moonpool_core::__chaos_site!("buggify", None),
            moonpool_core::__chaos_site!("buggify", None),
            moonpool_core::__chaos_site!("buggify", None),
        ];
        for round in 0..7 {
            for site in &sites[..=round.min(5)] {
                assert!(!chaos.buggify(site, 1.0));
            }
        }
        chaos.flush();
        assert_eq!(calls(&chaos), vec![7, 6, 5, 4, 3, 2]);
    }

    #[test]
    #[allow(clippy::field_reassign_with_default)]
    fn test_an_enabled_site_goes_through_the_state_at_every_call() {
        let mut every = BuggifyConfig::default();
        every.site_activation_probability = 1.0;
        let mut chaos = run_chaos(every);
        let site: &'static Site = moonpool_core::__chaos_site!("buggify", None);
        let fired = (0..100).filter(|_| chaos.buggify(site, 0.5)).count();
        assert!(fired > 0 && fired < 100, "{fired} of 100 fired");
        assert_eq!(calls(&chaos), vec![100]);
        assert!(chaos.quiet.iter().all(|e| e.site == 0));
        let state = chaos.shared.lock();
        assert_eq!(state.buggify_fired, fired as u64);
    }
}
