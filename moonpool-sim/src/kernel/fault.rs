//! [`FaultKind`]: every kind of fault the simulator injects, each with its own random stream, and
//! [`FaultSet`], a set of kinds (the fault mask of a run, `MOONPOOL_FAULTS`).

use std::fmt;
use std::str::FromStr;

/// One kind of fault. Each kind draws from its own stream of the seed ([`FaultKind::stream`]), so
/// turning one off leaves every other kind's draws where they were (see
/// [`rng`](super::rng#fault-independence)).
///
/// The name ([`FaultKind::name`]) is what reports, [`FaultSet`] and `MOONPOOL_FAULTS` use.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// `network.clog`: a direction of a connection holds its deliveries for a while (per write).
    NetworkClog,
    /// `network.partition`: two hosts cannot reach each other for a while (per write).
    NetworkPartition,
    /// `network.random_close`: a connection is reset or closed at random (per write).
    NetworkRandomClose,
    /// `network.cut`: both directions of a connection stall, then resume (per write).
    NetworkCut,
    /// `network.black_hole`: a new connection silently drops everything (per connection).
    NetworkBlackHole,
    /// `network.bit_flip`: bits flip in delivered bytes, undetected by TCP (per delivery).
    NetworkBitFlip,
    /// `network.partial_write`: a write accepts only part of the buffer.
    NetworkPartialWrite,
    /// `network.partial_read`: a read returns only part of the available bytes.
    NetworkPartialRead,
    /// `network.connect_refuse`: a connect is refused although a listener exists.
    NetworkConnectRefuse,
    /// `network.connect_hang`: a connect never completes.
    NetworkConnectHang,
    /// `network.read_clog`: delivered data is held back from the reader for a while.
    NetworkReadClog,
    /// `network.random_close_read`: a connection is reset or closed at random (per read).
    NetworkRandomCloseRead,
    /// `network.loss`: a segment is lost and retransmitted later.
    NetworkLoss,
    /// `network.loss_burst`: every segment of a direction is lost for a while.
    NetworkLossBurst,
    /// `storage.read_corruption`: a read returns flipped bits.
    StorageReadCorruption,
    /// `storage.write_corruption`: a write stores flipped bits.
    StorageWriteCorruption,
    /// `storage.misdirected_read`: a read returns another offset's bytes.
    StorageMisdirectedRead,
    /// `storage.misdirected_write`: a write lands at another offset.
    StorageMisdirectedWrite,
    /// `storage.phantom_write`: a write reports success and stores nothing.
    StoragePhantomWrite,
    /// `storage.sync_failure`: a sync fails and makes nothing durable.
    StorageSyncFailure,
    /// `storage.uninitialized_read`: a read of a never-written hole returns garbage.
    StorageUninitializedRead,
    /// `storage.unsynced_kept`: at a crash, some unsynced writes reach the disk anyway (off: a
    /// crash keeps exactly the synced contents).
    StorageUnsyncedKept,
    /// `storage.torn_write`: at a crash, only some sectors of an unsynced write reach the disk.
    StorageTornWrite,
    /// `storage.stall`: a disk starts no operation for a while.
    StorageStall,
    /// `storage.throttle`: a disk runs slower for a while.
    StorageThrottle,
    /// `storage.failed_disk`: a server's disk never completes any operation.
    StorageFailedDisk,
    /// `clock.drift`: a process's `timer()` runs ahead of the world clock.
    ClockDrift,
    /// `clock.sleep_delay`: a sleep lasts longer than asked.
    ClockSleepDelay,
    /// `partitions`: the runner's random partitions and clogs between processes
    /// (`Chaos::Partitions`).
    Partitions,
    /// `attrition`: the runner's random reboots of server processes (`Chaos::Attrition`).
    Attrition,
    /// `buggify`: `buggify!` sites and `buggify_knob!` values (`Chaos::Buggify`).
    Buggify,
}

impl FaultKind {
    /// Every kind, in a fixed order (the order of reports and of shrinking).
    pub const ALL: [FaultKind; 31] = [
        FaultKind::NetworkClog,
        FaultKind::NetworkPartition,
        FaultKind::NetworkRandomClose,
        FaultKind::NetworkCut,
        FaultKind::NetworkBlackHole,
        FaultKind::NetworkBitFlip,
        FaultKind::NetworkPartialWrite,
        FaultKind::NetworkPartialRead,
        FaultKind::NetworkConnectRefuse,
        FaultKind::NetworkConnectHang,
        FaultKind::NetworkReadClog,
        FaultKind::NetworkRandomCloseRead,
        FaultKind::NetworkLoss,
        FaultKind::NetworkLossBurst,
        FaultKind::StorageReadCorruption,
        FaultKind::StorageWriteCorruption,
        FaultKind::StorageMisdirectedRead,
        FaultKind::StorageMisdirectedWrite,
        FaultKind::StoragePhantomWrite,
        FaultKind::StorageSyncFailure,
        FaultKind::StorageUninitializedRead,
        FaultKind::StorageUnsyncedKept,
        FaultKind::StorageTornWrite,
        FaultKind::StorageStall,
        FaultKind::StorageThrottle,
        FaultKind::StorageFailedDisk,
        FaultKind::ClockDrift,
        FaultKind::ClockSleepDelay,
        FaultKind::Partitions,
        FaultKind::Attrition,
        FaultKind::Buggify,
    ];

    /// The kind's stable name, e.g. `network.bit_flip`.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::NetworkClog => "network.clog",
            FaultKind::NetworkPartition => "network.partition",
            FaultKind::NetworkRandomClose => "network.random_close",
            FaultKind::NetworkCut => "network.cut",
            FaultKind::NetworkBlackHole => "network.black_hole",
            FaultKind::NetworkBitFlip => "network.bit_flip",
            FaultKind::NetworkPartialWrite => "network.partial_write",
            FaultKind::NetworkPartialRead => "network.partial_read",
            FaultKind::NetworkConnectRefuse => "network.connect_refuse",
            FaultKind::NetworkConnectHang => "network.connect_hang",
            FaultKind::NetworkReadClog => "network.read_clog",
            FaultKind::NetworkRandomCloseRead => "network.random_close_read",
            FaultKind::NetworkLoss => "network.loss",
            FaultKind::NetworkLossBurst => "network.loss_burst",
            FaultKind::StorageReadCorruption => "storage.read_corruption",
            FaultKind::StorageWriteCorruption => "storage.write_corruption",
            FaultKind::StorageMisdirectedRead => "storage.misdirected_read",
            FaultKind::StorageMisdirectedWrite => "storage.misdirected_write",
            FaultKind::StoragePhantomWrite => "storage.phantom_write",
            FaultKind::StorageSyncFailure => "storage.sync_failure",
            FaultKind::StorageUninitializedRead => "storage.uninitialized_read",
            FaultKind::StorageUnsyncedKept => "storage.unsynced_kept",
            FaultKind::StorageTornWrite => "storage.torn_write",
            FaultKind::StorageStall => "storage.stall",
            FaultKind::StorageThrottle => "storage.throttle",
            FaultKind::StorageFailedDisk => "storage.failed_disk",
            FaultKind::ClockDrift => "clock.drift",
            FaultKind::ClockSleepDelay => "clock.sleep_delay",
            FaultKind::Partitions => "partitions",
            FaultKind::Attrition => "attrition",
            FaultKind::Buggify => "buggify",
        }
    }

    /// The kind with this name.
    pub fn from_name(name: &str) -> Option<FaultKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The group of the name (`network`, `storage`, `clock`, or the name itself).
    pub fn group(self) -> &'static str {
        let name = self.name();
        name.split_once('.').map_or(name, |(group, _)| group)
    }

    /// The position in [`ALL`](Self::ALL).
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The kind's stream number: a hash of its name with the top bit set, so it never meets the
    /// numbered streams 0 to 4 and does not change when kinds are added.
    pub fn stream(self) -> u64 {
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for byte in self.name().bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash | (1 << 63)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of fault kinds: the kinds a run may inject (its *fault mask*; every kind by default).
///
/// Written and parsed as a comma-separated list ([`FromStr`], `MOONPOOL_FAULTS`): `all`, `none`,
/// kind names (`network.bit_flip`), group names (`network`, `storage`, `clock`) and removals
/// (`-attrition`). A list that starts with a name keeps only what it lists
/// (`network.bit_flip,attrition`); one that starts with a removal starts from every kind
/// (`-buggify,-clock`).
///
/// ```
/// use moonpool_sim::{FaultKind, FaultSet};
///
/// let only_flips: FaultSet = "network.bit_flip".parse().unwrap();
/// assert_eq!(only_flips, FaultSet::only([FaultKind::NetworkBitFlip]));
/// let calm: FaultSet = "-attrition,-clock".parse().unwrap();
/// assert!(!calm.contains(FaultKind::ClockDrift) && calm.contains(FaultKind::NetworkClog));
/// assert_eq!(calm.to_string().parse::<FaultSet>().unwrap(), calm);
/// assert!("network.bit_flop".parse::<FaultSet>().is_err());
/// // What a crash-consistent store behind a checksummed protocol claims to survive:
/// let claim = FaultSet::crash_consistent().union(FaultSet::checksummed_wire());
/// assert!(claim.contains(FaultKind::StorageTornWrite) && !claim.contains(FaultKind::NetworkBitFlip));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultSet(u64);

impl Default for FaultSet {
    fn default() -> Self {
        Self::all()
    }
}

impl FaultSet {
    /// Every kind.
    pub fn all() -> Self {
        FaultKind::ALL
            .into_iter()
            .fold(Self::none(), |set, k| set.with(k))
    }

    /// No kind.
    pub fn none() -> Self {
        Self(0)
    }

    /// Exactly these kinds.
    pub fn only(kinds: impl IntoIterator<Item = FaultKind>) -> Self {
        kinds.into_iter().fold(Self::none(), |set, k| set.with(k))
    }

    /// This set and `kind`.
    #[must_use]
    pub fn with(self, kind: FaultKind) -> Self {
        Self(self.0 | (1 << kind.index()))
    }

    /// This set without `kind`.
    #[must_use]
    pub fn without(self, kind: FaultKind) -> Self {
        Self(self.0 & !(1 << kind.index()))
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: FaultKind) -> bool {
        self.0 & (1 << kind.index()) != 0
    }

    /// The kinds in the set, in [`FaultKind::ALL`] order.
    pub fn kinds(self) -> impl Iterator<Item = FaultKind> {
        FaultKind::ALL
            .into_iter()
            .filter(move |k| self.contains(*k))
    }

    /// How many kinds the set holds.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every kind is in the set.
    pub fn is_all(self) -> bool {
        self == Self::all()
    }

    /// The kinds in either set.
    #[must_use]
    pub fn union(self, other: FaultSet) -> Self {
        Self(self.0 | other.0)
    }

    /// The kinds in both sets.
    #[must_use]
    pub fn intersection(self, other: FaultSet) -> Self {
        Self(self.0 & other.0)
    }

    /// Every kind of a group (`network`, `storage`, `clock`).
    pub fn group(group: &str) -> Self {
        Self::only(
            FaultKind::ALL
                .into_iter()
                .filter(|k| k.name().contains('.') && k.group() == group),
        )
    }

    /// Preset: what a crash-consistent program claims to survive: crashes and reboots
    /// (`attrition`), and at a crash unsynced writes lost (always possible), kept
    /// (`storage.unsynced_kept`) or torn (`storage.torn_write`). Nothing else.
    pub fn crash_consistent() -> Self {
        Self::only([
            FaultKind::Attrition,
            FaultKind::StorageUnsyncedKept,
            FaultKind::StorageTornWrite,
        ])
    }

    /// Preset: what a protocol with its own checksums over TCP claims to survive: every network
    /// kind but `network.bit_flip` (an undetected flip on the raw stream), random partitions,
    /// and the clock's drift and sleep delays. Nothing of storage, no reboots, no buggify:
    /// combine with [`union`](Self::union).
    pub fn checksummed_wire() -> Self {
        Self::group("network")
            .without(FaultKind::NetworkBitFlip)
            .union(Self::group("clock"))
            .with(FaultKind::Partitions)
    }

    /// Preset: every kind ([`all`](Self::all)), for a program that claims to survive them all
    /// (checksums on the wire and on disk, replicated data, leases robust to drift).
    pub fn everything() -> Self {
        Self::all()
    }
}

impl fmt::Display for FaultSet {
    /// `all`, `none`, or the names joined by commas (what [`FromStr`] reads back).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("all");
        }
        if self.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.kinds().map(FaultKind::name).collect();
        f.write_str(&names.join(","))
    }
}

/// A fault list that names something that is not a fault kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown fault kind '{token}' in the fault list '{list}' (expected all, none, a group \
     (network, storage, clock), a kind name such as network.bit_flip, or one of them after '-'; \
     kinds: {known})"
)]
pub struct FaultSetError {
    /// The token that is not a kind.
    pub token: String,
    /// The whole list.
    pub list: String,
    /// Every kind name, comma-separated.
    pub known: String,
}

impl FromStr for FaultSet {
    type Err = FaultSetError;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let tokens: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        let error = |token: &str| FaultSetError {
            token: token.to_string(),
            list: list.to_string(),
            known: FaultKind::ALL.map(FaultKind::name).join(","),
        };
        let mut set = match tokens.first() {
            Some(first) if first.starts_with('-') => FaultSet::all(),
            None => return Err(error(list)),
            _ => FaultSet::none(),
        };
        for token in tokens {
            let (remove, name) = match token.strip_prefix('-') {
                Some(name) => (true, name.trim()),
                None => (false, token),
            };
            let kinds: Vec<FaultKind> = match name {
                "all" => FaultKind::ALL.to_vec(),
                "none" => Vec::new(),
                _ => match FaultKind::from_name(name) {
                    Some(kind) => vec![kind],
                    None => {
                        let group: Vec<FaultKind> = FaultKind::ALL
                            .into_iter()
                            .filter(|k| k.name().contains('.') && k.group() == name)
                            .collect();
                        if group.is_empty() {
                            return Err(error(token));
                        }
                        group
                    }
                },
            };
            if name == "none" && !remove {
                set = FaultSet::none();
            }
            for kind in kinds {
                set = if remove {
                    set.without(kind)
                } else {
                    set.with(kind)
                };
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_names_round_trip_and_streams_are_distinct() {
        let mut streams = std::collections::BTreeSet::new();
        for (i, kind) in FaultKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i);
            assert_eq!(FaultKind::from_name(kind.name()), Some(kind));
            assert!(kind.stream() > 4);
            assert!(streams.insert(kind.stream()), "{kind}");
        }
    }

    #[test]
    fn test_fault_lists_parse_and_print() {
        assert_eq!("all".parse::<FaultSet>().unwrap(), FaultSet::all());
        assert_eq!("none".parse::<FaultSet>().unwrap(), FaultSet::none());
        let one: FaultSet = "network.bit_flip".parse().unwrap();
        assert_eq!(one, FaultSet::only([FaultKind::NetworkBitFlip]));
        let minus: FaultSet = "-attrition, -clock".parse().unwrap();
        assert!(!minus.contains(FaultKind::Attrition));
        assert!(!minus.contains(FaultKind::ClockDrift));
        assert!(minus.contains(FaultKind::NetworkClog));
        let group: FaultSet = "storage".parse().unwrap();
        assert!(group.contains(FaultKind::StorageTornWrite));
        assert!(!group.contains(FaultKind::NetworkClog));
        for set in [one, minus, group, FaultSet::all(), FaultSet::none()] {
            assert_eq!(set.to_string().parse::<FaultSet>().unwrap(), set);
        }
        let bad = "network.bit_flop".parse::<FaultSet>().unwrap_err();
        assert_eq!(bad.token, "network.bit_flop");
        assert!(bad.to_string().contains("network.bit_flip"), "{bad}");
        assert!("".parse::<FaultSet>().is_err());
    }
}
