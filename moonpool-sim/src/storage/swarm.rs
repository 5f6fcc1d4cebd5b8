//! What swarm testing, fault masks and presets do to a [`StorageConfiguration`].

use super::config::StorageConfiguration;
use crate::kernel::fault::{FaultKind, FaultSet};
use crate::kernel::rng::{StreamRng, WorldRng};

/// On with even odds, then `base` scaled by `[0.1, 10)`, capped at 1; the same draws whatever
/// `base` is (a zero base stays zero without shifting later draws).
fn family(rng: &mut StreamRng, base: f64) -> f64 {
    if rng.chance(0.5) {
        (base * rng.range(0.1..10.0)).min(1.0)
    } else {
        0.0
    }
}

impl StorageConfiguration {
    /// Swarm testing of *this* configuration for one seed: each fault is on or fully off (even
    /// odds, all off possible), and the ones on get this configuration's probability scaled by
    /// 0.1x to 10x (capped at 1). A fault at zero here stays off; latencies and throughput are
    /// kept. Crash behaviour: in half the seeds a crash keeps exactly the synced contents; in
    /// the others each unsynced write survives with a probability drawn in `[0.1, 0.9)` (only if
    /// this configuration lets unsynced writes survive at all) and torn writes are perturbed
    /// like the other faults. The same seed always gives the same choices.
    pub fn perturbed_for_seed(&self, seed: u64) -> Self {
        let mut rng = WorldRng::new(seed ^ 0x7374_6f72_6167_6500);
        let mut config = self.clone();
        config.read_corruption_probability = family(&mut rng, self.read_corruption_probability);
        config.write_corruption_probability = family(&mut rng, self.write_corruption_probability);
        config.misdirected_read_probability = family(&mut rng, self.misdirected_read_probability);
        config.misdirected_write_probability = family(&mut rng, self.misdirected_write_probability);
        config.phantom_write_probability = family(&mut rng, self.phantom_write_probability);
        config.sync_failure_probability = family(&mut rng, self.sync_failure_probability);
        config.uninitialized_read_probability =
            family(&mut rng, self.uninitialized_read_probability);
        if rng.chance(0.5) {
            let keep = rng.range(0.1..0.9);
            config.crash_keep_unsynced_probability = if self.crash_keep_unsynced_probability > 0.0 {
                keep
            } else {
                0.0
            };
            config.torn_write_probability = family(&mut rng, self.torn_write_probability);
        } else {
            config.crash_keep_unsynced_probability = 0.0;
            config.torn_write_probability = 0.0;
        }
        config.stall_probability = family(&mut rng, self.stall_probability);
        config.throttle_probability = family(&mut rng, self.throttle_probability);
        config.failed_disk_probability = family(&mut rng, self.failed_disk_probability);
        config
    }

    /// This configuration with the storage fault kinds outside `kinds` off. Turning
    /// `storage.unsynced_kept` off makes a crash keep exactly the synced contents.
    #[must_use]
    pub fn with_fault_kinds(mut self, kinds: FaultSet) -> Self {
        for kind in FaultKind::ALL {
            if !kinds.contains(kind)
                && let Some(p) = self.probability_mut(kind)
            {
                *p = 0.0;
            }
        }
        self
    }

    fn probability_mut(&mut self, kind: FaultKind) -> Option<&mut f64> {
        Some(match kind {
            FaultKind::StorageReadCorruption => &mut self.read_corruption_probability,
            FaultKind::StorageWriteCorruption => &mut self.write_corruption_probability,
            FaultKind::StorageMisdirectedRead => &mut self.misdirected_read_probability,
            FaultKind::StorageMisdirectedWrite => &mut self.misdirected_write_probability,
            FaultKind::StoragePhantomWrite => &mut self.phantom_write_probability,
            FaultKind::StorageSyncFailure => &mut self.sync_failure_probability,
            FaultKind::StorageUninitializedRead => &mut self.uninitialized_read_probability,
            FaultKind::StorageUnsyncedKept => &mut self.crash_keep_unsynced_probability,
            FaultKind::StorageTornWrite => &mut self.torn_write_probability,
            FaultKind::StorageStall => &mut self.stall_probability,
            FaultKind::StorageThrottle => &mut self.throttle_probability,
            FaultKind::StorageFailedDisk => &mut self.failed_disk_probability,
            _ => return None,
        })
    }

    /// The storage fault kinds this configuration can inject (probability above zero).
    pub fn fault_kinds(&self) -> FaultSet {
        let mut copy = self.clone();
        FaultKind::ALL
            .into_iter()
            .filter(|k| copy.probability_mut(*k).is_some_and(|p| *p > 0.0))
            .fold(FaultSet::none(), FaultSet::with)
    }

    /// What a store that syncs before it acknowledges claims to survive: at a crash, unsynced
    /// writes are lost, kept or torn (each unsynced write survives whole with probability 0.5,
    /// a write of two sectors or more is torn with probability 0.1), and nothing else: no
    /// corruption, no misdirected, phantom or lost writes, no sync failures, no stalls. The
    /// latencies are the default's. The storage preset of "lose or tear unsynced data on crash,
    /// nothing else".
    pub fn crash_consistent() -> Self {
        let everything = Self::default();
        Self {
            crash_keep_unsynced_probability: everything.crash_keep_unsynced_probability,
            torn_write_probability: everything.torn_write_probability,
            ..Self::disabled()
        }
    }

    /// Every storage fault on at the default rates (the same as `default()`), named for what it
    /// claims: a program tested with it claims to survive corruption, misdirected and phantom
    /// writes too, which only a store with checksums and more than one copy can.
    pub fn everything() -> Self {
        Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn test_perturbation_keeps_latencies_and_zeros() {
        let mine = StorageConfiguration {
            stall_probability: 0.01,
            ..StorageConfiguration::with_fixed_latency(Duration::from_millis(2))
        };
        for seed in 0..64 {
            let c = mine.perturbed_for_seed(seed);
            assert_eq!(c.read_latency, mine.read_latency);
            assert_eq!(c.phantom_write_probability, 0.0);
            assert_eq!(c.crash_keep_unsynced_probability, 0.0);
        }
        for seed in 0..16 {
            assert_eq!(
                StorageConfiguration::random_for_seed(seed),
                StorageConfiguration::default().perturbed_for_seed(seed)
            );
        }
    }

    #[test]
    fn test_crash_consistent_has_only_crash_kinds() {
        let kinds = StorageConfiguration::crash_consistent().fault_kinds();
        assert_eq!(
            kinds,
            FaultSet::only([FaultKind::StorageUnsyncedKept, FaultKind::StorageTornWrite])
        );
        let none = StorageConfiguration::default().with_fault_kinds(FaultSet::none());
        assert!(none.fault_kinds().is_empty());
    }
}
