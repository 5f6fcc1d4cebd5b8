//! What workloads, checks, invariants and fault injectors receive.

use std::net::IpAddr;
use std::sync::Arc;

use crate::providers::SimProviders;
pub use crate::world::{Member, Topology};
use crate::world::{ShutdownSignal, StateHandle, WorldControl};

/// What a workload's `run` and `check` receive.
#[derive(Clone)]
pub struct WorkloadContext {
    /// This instance's providers.
    pub providers: SimProviders,
    /// Instance name, e.g. `client-0`.
    pub name: String,
    /// Index among the instances of its group.
    pub index: usize,
    /// This instance's IP.
    pub ip: IpAddr,
    /// Everyone's names, IPs and localities.
    pub topology: Arc<Topology>,
    /// Shared state read by invariants.
    pub state: StateHandle,
    pub(crate) chaos_over: ShutdownSignal,
    pub(crate) seed: u64,
}

impl WorkloadContext {
    /// The seed of this run.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// True while the chaos phase lasts (faults may fire).
    pub fn chaos_active(&self) -> bool {
        !self.chaos_over.is_requested()
    }

    /// Completes when the chaos phase ends; a workload that loops "until told to stop" awaits this.
    pub async fn chaos_ended(&self) {
        self.chaos_over.requested().await;
    }

    /// A handle on the world (faults, clock, processes).
    pub fn control(&self) -> &WorldControl {
        self.providers.control()
    }

    /// Swarm testing of the operation alphabet: whether operation `op` is enabled for this seed.
    /// A pure function of the seed and the name: about half the operations are on in each seed,
    /// so seeds explore different mixes rather than every operation at a low rate. Enable at least
    /// one operation yourself if your workload needs one.
    pub fn swarm_op_enabled(&self, op: &str) -> bool {
        swarm_bit(self.seed, op)
    }
}

/// Deterministic half-probability bit from a seed and a name (FNV-1a then a mix).
pub(crate) fn swarm_bit(seed: u64, name: &str) -> bool {
    let mut hash = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for byte in name.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash & 1 == 1
}

/// What a fault injector receives.
#[derive(Clone)]
pub struct FaultContext {
    /// The injector's own providers (time, randomness).
    pub providers: SimProviders,
    /// Everyone's names, IPs and localities.
    pub topology: Arc<Topology>,
    pub(crate) chaos_over: ShutdownSignal,
}

impl FaultContext {
    /// The world: reboot, partition, clog.
    pub fn control(&self) -> &WorldControl {
        self.providers.control()
    }

    /// True while the chaos phase lasts. Injectors are stopped when it ends anyway.
    pub fn chaos_active(&self) -> bool {
        !self.chaos_over.is_requested()
    }
}
