//! [`StorageConfiguration`]: latencies, throughput limits and fault probabilities of the simulated
//! disks.
//!
//! Every probability is per operation (per read, per write, per sync, per unsynced write at a
//! crash, per disk) and every fault is off at probability zero without consuming randomness. See
//! `docs/fault-injection.md` for what each fault exposes and its FoundationDB and
//! TigerBeetle counterparts.

use std::time::Duration;

use crate::network::config::{check_probability, check_range};

use crate::network::LatencyDistribution;

/// Latencies, throughput limits and faults of the simulated disks.
///
/// The default is hostile on purpose (FoundationDB / TigerBeetle style): every fault is on at a
/// low rate. [`fast_local`](Self::fast_local) and [`disabled`](Self::disabled) turn every fault
/// off; [`random_for_seed`](Self::random_for_seed) enables a random subset per seed (swarm
/// testing).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StorageConfiguration {
    /// Base latency of a read, before the transfer time.
    pub read_latency: LatencyDistribution,
    /// Base latency of a write, before the transfer time.
    pub write_latency: LatencyDistribution,
    /// Latency of `sync_all` / `sync_data`.
    pub sync_latency: LatencyDistribution,
    /// Latency of metadata operations: open, exists, remove, rename, set_len, size.
    pub metadata_latency: LatencyDistribution,
    /// Transfer rate of a disk in bytes per second; a read or write of `n` bytes takes
    /// `n / bandwidth` longer and keeps the disk busy that long. Zero means unlimited.
    pub bandwidth_bytes_per_second: u64,
    /// Operations per second a disk can start; each operation keeps the disk busy for
    /// `1 / iops`. Zero means unlimited.
    pub iops: u64,

    /// Per read: flip bits in the returned bytes (the stored bytes stay intact).
    pub read_corruption_probability: f64,
    /// Per write: flip bits in the stored bytes (the caller's buffer and the reported length are
    /// intact).
    pub write_corruption_probability: f64,
    /// Per read: return the bytes of another (sector-aligned) offset of the file.
    pub misdirected_read_probability: f64,
    /// Per write: store the bytes at another (sector-aligned) offset; the intended region keeps
    /// its old contents.
    pub misdirected_write_probability: f64,
    /// Per write: report success without storing anything (a lost write).
    pub phantom_write_probability: f64,
    /// Per sync: fail with an I/O error and make nothing durable.
    pub sync_failure_probability: f64,
    /// Per read that touches a never-written region (a hole left by `set_len` or by writing past
    /// the end): return garbage there instead of zeros.
    pub uninitialized_read_probability: f64,
    /// At a crash, per unsynced write or size change: the probability that it survives whole.
    /// The others are lost (or torn, see
    /// [`torn_write_probability`](Self::torn_write_probability)). Zero means a crash keeps
    /// exactly the synced contents.
    pub crash_keep_unsynced_probability: f64,
    /// At a crash, per unsynced write covering at least two sectors: the probability that only
    /// part of its sectors (a prefix, or a random subset) reach the disk.
    pub torn_write_probability: f64,

    /// Per operation, when the process's disk is not already stalled: start a stall episode
    /// during which no operation of that disk starts.
    pub stall_probability: f64,
    /// Length of a stall episode.
    pub stall_duration: (Duration, Duration),
    /// Per operation, when the process's disk is not already throttled: start a throttle episode
    /// during which latency and disk occupancy are multiplied by a factor.
    pub throttle_probability: f64,
    /// Length of a throttle episode.
    pub throttle_duration: (Duration, Duration),
    /// Slow-down factor of a throttle episode, drawn in `[min, max]` (at least 1).
    pub throttle_factor: (f64, f64),
    /// Per server disk, drawn once at its first operation (and again after a wipe): the disk has
    /// failed and never completes any operation. Workload (test driver) disks never fail at
    /// random; `WorldControl::fail_disk` fails any disk.
    pub failed_disk_probability: f64,
}

impl Default for StorageConfiguration {
    /// FoundationDB / TigerBeetle-like chaos: an SSD-like disk (25 000 IOPS, 150 MB/s, latencies
    /// of tens of microseconds with a rare slow tail) and every fault on at a low rate.
    fn default() -> Self {
        Self {
            read_latency: LatencyDistribution::Bimodal {
                fast: (Duration::from_micros(20), Duration::from_micros(200)),
                slow: (Duration::from_millis(1), Duration::from_millis(20)),
                slow_probability: 0.001,
            },
            write_latency: LatencyDistribution::Bimodal {
                fast: (Duration::from_micros(10), Duration::from_micros(100)),
                slow: (Duration::from_millis(1), Duration::from_millis(10)),
                slow_probability: 0.001,
            },
            sync_latency: LatencyDistribution::Bimodal {
                fast: (Duration::from_micros(200), Duration::from_millis(2)),
                slow: (Duration::from_millis(10), Duration::from_millis(100)),
                slow_probability: 0.01,
            },
            metadata_latency: LatencyDistribution::Uniform {
                min: Duration::from_micros(10),
                max: Duration::from_micros(100),
            },
            bandwidth_bytes_per_second: 150_000_000,
            iops: 25_000,
            read_corruption_probability: 0.000_1,
            write_corruption_probability: 0.000_1,
            misdirected_read_probability: 0.000_05,
            misdirected_write_probability: 0.000_05,
            phantom_write_probability: 0.000_1,
            sync_failure_probability: 0.000_1,
            uninitialized_read_probability: 0.1,
            crash_keep_unsynced_probability: 0.5,
            torn_write_probability: 0.1,
            stall_probability: 0.000_1,
            stall_duration: (Duration::from_millis(50), Duration::from_secs(2)),
            throttle_probability: 0.000_1,
            throttle_duration: (Duration::from_secs(1), Duration::from_secs(10)),
            throttle_factor: (2.0, 10.0),
            failed_disk_probability: 0.001,
        }
    }
}

impl StorageConfiguration {
    /// A fast, faultless disk: fixed 10 µs latency for every operation, no bandwidth or IOPS
    /// limit, no faults, and a crash keeps exactly the synced contents.
    pub fn fast_local() -> Self {
        Self::with_fixed_latency(Duration::from_micros(10))
    }

    /// No faults, no bandwidth or IOPS limit, and the same fixed latency for every operation.
    pub fn with_fixed_latency(latency: Duration) -> Self {
        Self {
            read_latency: LatencyDistribution::Fixed(latency),
            write_latency: LatencyDistribution::Fixed(latency),
            sync_latency: LatencyDistribution::Fixed(latency),
            metadata_latency: LatencyDistribution::Fixed(latency),
            bandwidth_bytes_per_second: 0,
            iops: 0,
            ..Self::disabled()
        }
    }

    /// The same latencies and limits with every fault off (the settle phase after chaos).
    pub fn without_faults(&self) -> Self {
        let quiet = Self::disabled();
        Self {
            read_latency: self.read_latency.clone(),
            write_latency: self.write_latency.clone(),
            sync_latency: self.sync_latency.clone(),
            metadata_latency: self.metadata_latency.clone(),
            bandwidth_bytes_per_second: self.bandwidth_bytes_per_second,
            iops: self.iops,
            ..quiet
        }
    }

    /// Every fault off (a crash keeps exactly the synced contents); latencies and throughput as
    /// in the default. Turn single faults on from here in tests.
    pub fn disabled() -> Self {
        Self {
            read_corruption_probability: 0.0,
            write_corruption_probability: 0.0,
            misdirected_read_probability: 0.0,
            misdirected_write_probability: 0.0,
            phantom_write_probability: 0.0,
            sync_failure_probability: 0.0,
            uninitialized_read_probability: 0.0,
            crash_keep_unsynced_probability: 0.0,
            torn_write_probability: 0.0,
            stall_probability: 0.0,
            throttle_probability: 0.0,
            failed_disk_probability: 0.0,
            ..Self::default()
        }
    }

    /// Swarm testing for one seed: [`perturbed_for_seed`](Self::perturbed_for_seed) of the
    /// default configuration. The same seed always gives the same configuration.
    pub fn random_for_seed(seed: u64) -> Self {
        Self::default().perturbed_for_seed(seed)
    }

    /// Checks every field; the error names the first bad one and its value.
    pub fn validate(&self) -> Result<(), String> {
        self.read_latency.validate("read_latency")?;
        self.write_latency.validate("write_latency")?;
        self.sync_latency.validate("sync_latency")?;
        self.metadata_latency.validate("metadata_latency")?;
        for (field, p) in [
            (
                "read_corruption_probability",
                self.read_corruption_probability,
            ),
            (
                "write_corruption_probability",
                self.write_corruption_probability,
            ),
            (
                "misdirected_read_probability",
                self.misdirected_read_probability,
            ),
            (
                "misdirected_write_probability",
                self.misdirected_write_probability,
            ),
            ("phantom_write_probability", self.phantom_write_probability),
            ("sync_failure_probability", self.sync_failure_probability),
            (
                "uninitialized_read_probability",
                self.uninitialized_read_probability,
            ),
            (
                "crash_keep_unsynced_probability",
                self.crash_keep_unsynced_probability,
            ),
            ("torn_write_probability", self.torn_write_probability),
            ("stall_probability", self.stall_probability),
            ("throttle_probability", self.throttle_probability),
            ("failed_disk_probability", self.failed_disk_probability),
        ] {
            check_probability(field, p)?;
        }
        check_range("stall_duration", self.stall_duration)?;
        check_range("throttle_duration", self.throttle_duration)?;
        let (lo, hi) = self.throttle_factor;
        if !(lo.is_finite() && hi.is_finite()) || lo < 1.0 || lo > hi {
            return Err(format!(
                "throttle_factor is ({lo}, {hi}), expected finite factors with 1 <= min <= max"
            ));
        }
        Ok(())
    }
}
