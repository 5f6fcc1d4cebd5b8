//! What swarm testing and fault masks do to a [`NetworkConfiguration`]: perturb the user's own
//! configuration per seed, switch fault kinds off, and say whether any fault is on.

use std::time::Duration;

use super::config::{NetworkConfiguration, SendBufferSizing, tcp_faults_from_env};
use crate::kernel::fault::{FaultKind, FaultSet};
use crate::kernel::rng::{StreamRng, WorldRng};

/// On with even odds, then `base` scaled by a factor in `[0.1, 10)` and capped at `cap`; always
/// the same draws whatever `base` is, so a zero base (a fault the user turned off) stays zero
/// without shifting the draws of the faults after it.
fn family(rng: &mut StreamRng, base: f64, cap: f64) -> f64 {
    if rng.chance(0.5) {
        (base * rng.range(0.1..10.0)).min(cap)
    } else {
        0.0
    }
}

impl NetworkConfiguration {
    /// Swarm testing of *this* configuration for one seed: each fault is on or fully off (even
    /// odds, all off possible), and the ones on get this configuration's probability scaled by
    /// 0.1x to 10x (capped at 1; partial reads and writes at half of it, capped at 0.9). A fault
    /// at zero here stays off; latencies, buffers and timeouts are kept; the per-pair extra
    /// latency is dropped in about half the seeds. The same seed always gives the same choices.
    ///
    /// The TCP-layer faults (read clogs, random closes on reads, loss, loss bursts) are perturbed
    /// the same way from their own draws; when `MOONPOOL_NETWORK_TCP_FAULTS=1`, those at zero
    /// here start from the rates of [`with_tcp_faults`](Self::with_tcp_faults) instead, and
    /// bandwidth-delay send buffers are used in about half the seeds.
    pub fn perturbed_for_seed(&self, seed: u64) -> Self {
        let mut rng = WorldRng::new(seed ^ 0x6e65_7477_6f72_6b00);
        let mut config = self.clone();
        config.clog_probability = family(&mut rng, self.clog_probability, 1.0);
        config.partition_probability = family(&mut rng, self.partition_probability, 1.0);
        config.random_close_probability = family(&mut rng, self.random_close_probability, 1.0);
        config.cut_probability = family(&mut rng, self.cut_probability, 1.0);
        config.black_hole_probability = family(&mut rng, self.black_hole_probability, 1.0);
        config.bit_flip_probability = family(&mut rng, self.bit_flip_probability, 1.0);
        config.partial_write_probability =
            family(&mut rng, self.partial_write_probability * 0.5, 0.9);
        config.partial_read_probability =
            family(&mut rng, self.partial_read_probability * 0.5, 0.9);
        config.connect_refuse_probability = family(&mut rng, self.connect_refuse_probability, 1.0);
        config.connect_hang_probability = family(&mut rng, self.connect_hang_probability, 1.0);
        if rng.chance(0.5) {
            config.pair_latency_max = Duration::ZERO;
        }
        config.perturb_tcp_faults(seed, tcp_faults_from_env())
    }

    fn perturb_tcp_faults(mut self, seed: u64, from_env: bool) -> Self {
        let mut rng = WorldRng::new(seed ^ 0x7463_705f_6661_756c);
        let rates = Self::default().with_tcp_faults();
        let base = |mine: f64, rate: f64| if from_env && mine == 0.0 { rate } else { mine };
        self.read_clog_probability = family(
            &mut rng,
            base(self.read_clog_probability, rates.read_clog_probability),
            1.0,
        );
        self.random_close_read_probability = family(
            &mut rng,
            base(
                self.random_close_read_probability,
                rates.random_close_read_probability,
            ),
            1.0,
        );
        self.loss_probability = family(
            &mut rng,
            base(self.loss_probability, rates.loss_probability),
            1.0,
        );
        self.loss_burst_probability = family(
            &mut rng,
            base(self.loss_burst_probability, rates.loss_burst_probability),
            1.0,
        );
        if from_env {
            let bdp = match &self.send_buffer_sizing {
                SendBufferSizing::BandwidthDelay { .. } => self.send_buffer_sizing.clone(),
                SendBufferSizing::Fixed => rates.send_buffer_sizing,
            };
            self.send_buffer_sizing = if rng.chance(0.5) {
                bdp
            } else {
                SendBufferSizing::Fixed
            };
        }
        self
    }

    /// This configuration with the network fault kinds outside `kinds` off (probability zero).
    /// Latencies and the other kinds are untouched.
    #[must_use]
    pub fn with_fault_kinds(mut self, kinds: FaultSet) -> Self {
        for kind in FaultKind::ALL {
            if kinds.contains(kind) {
                continue;
            }
            if let Some(p) = self.probability_mut(kind) {
                *p = 0.0;
            }
        }
        self
    }

    /// The probability field behind a network fault kind (`None` for other kinds).
    fn probability_mut(&mut self, kind: FaultKind) -> Option<&mut f64> {
        Some(match kind {
            FaultKind::NetworkClog => &mut self.clog_probability,
            FaultKind::NetworkPartition => &mut self.partition_probability,
            FaultKind::NetworkRandomClose => &mut self.random_close_probability,
            FaultKind::NetworkCut => &mut self.cut_probability,
            FaultKind::NetworkBlackHole => &mut self.black_hole_probability,
            FaultKind::NetworkBitFlip => &mut self.bit_flip_probability,
            FaultKind::NetworkPartialWrite => &mut self.partial_write_probability,
            FaultKind::NetworkPartialRead => &mut self.partial_read_probability,
            FaultKind::NetworkConnectRefuse => &mut self.connect_refuse_probability,
            FaultKind::NetworkConnectHang => &mut self.connect_hang_probability,
            FaultKind::NetworkReadClog => &mut self.read_clog_probability,
            FaultKind::NetworkRandomCloseRead => &mut self.random_close_read_probability,
            FaultKind::NetworkLoss => &mut self.loss_probability,
            FaultKind::NetworkLossBurst => &mut self.loss_burst_probability,
            _ => return None,
        })
    }

    /// The network fault kinds this configuration can inject (probability above zero).
    pub fn fault_kinds(&self) -> FaultSet {
        let mut copy = self.clone();
        FaultKind::ALL
            .into_iter()
            .filter(|k| copy.probability_mut(*k).is_some_and(|p| *p > 0.0))
            .fold(FaultSet::none(), FaultSet::with)
    }

    /// A TCP connection with checksummed frames (what `moonpool-transport` does) claims to
    /// survive: every network fault of the default, at the default rates, with the TCP-layer
    /// faults on too, but no bit flips (TCP's own checksum misses some in real networks; a
    /// protocol without its own checksum cannot survive them, see `docs/fault-injection.md`).
    pub fn checksummed_wire() -> Self {
        Self {
            bit_flip_probability: 0.0,
            ..Self::default().with_tcp_faults()
        }
    }

    /// Every network fault on, the TCP-layer ones included, bit flips too.
    pub fn everything() -> Self {
        Self::default().with_tcp_faults()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_perturbation_keeps_the_users_latencies_and_zeros() {
        let mine = NetworkConfiguration {
            bit_flip_probability: 0.0,
            connect_timeout: Duration::from_secs(9),
            ..NetworkConfiguration::with_fixed_latency(Duration::from_millis(3))
        };
        let mine = NetworkConfiguration {
            clog_probability: 0.01,
            ..mine
        };
        for seed in 0..64 {
            let c = mine.perturbed_for_seed(seed);
            assert_eq!(c.write_latency, mine.write_latency);
            assert_eq!(c.connect_timeout, Duration::from_secs(9));
            assert_eq!(c.bit_flip_probability, 0.0);
            assert!(c.clog_probability == 0.0 || (0.001..=0.1).contains(&c.clog_probability));
        }
    }

    #[test]
    fn test_default_perturbation_is_random_for_seed() {
        for seed in 0..16 {
            assert_eq!(
                NetworkConfiguration::random_for_seed(seed),
                NetworkConfiguration::default().perturbed_for_seed(seed)
            );
        }
    }

    #[test]
    fn test_masks_zero_exactly_the_kinds_left_out() {
        let all = NetworkConfiguration::everything();
        assert!(all.fault_kinds().contains(FaultKind::NetworkBitFlip));
        let masked = all
            .clone()
            .with_fault_kinds(FaultSet::all().without(FaultKind::NetworkBitFlip));
        assert_eq!(masked.bit_flip_probability, 0.0);
        assert_eq!(masked.clog_probability, all.clog_probability);
        assert!(
            NetworkConfiguration::checksummed_wire()
                .fault_kinds()
                .contains(FaultKind::NetworkLoss)
        );
        assert!(
            !NetworkConfiguration::checksummed_wire()
                .fault_kinds()
                .contains(FaultKind::NetworkBitFlip)
        );
    }
}
