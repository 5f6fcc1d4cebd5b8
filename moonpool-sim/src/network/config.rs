//! [`NetworkConfiguration`]: latencies and fault probabilities of the simulated network.
//!
//! Every probability is per operation (per write, per read, per new connection) and every fault is
//! off at probability zero without consuming randomness. See `docs/fault-injection.md` for what
//! each fault exposes and its FoundationDB counterpart.

use std::time::Duration;

use crate::kernel::rng::WorldRng;

/// A latency distribution.
#[derive(Debug, Clone, PartialEq)]
pub enum LatencyDistribution {
    /// Always the same; draws no randomness.
    Fixed(Duration),
    /// Uniform in `[min, max]` (one draw).
    Uniform {
        /// Lower bound.
        min: Duration,
        /// Upper bound.
        max: Duration,
    },
    /// Exponential with `mean`, capped at `max`: mostly short, with a long tail.
    Exponential {
        /// Mean latency.
        mean: Duration,
        /// Cap.
        max: Duration,
    },
    /// Usually `fast`, with probability `slow_probability` from `slow` instead.
    Bimodal {
        /// The common case, uniform.
        fast: (Duration, Duration),
        /// The slow case, uniform.
        slow: (Duration, Duration),
        /// How often the slow case happens.
        slow_probability: f64,
    },
}

impl LatencyDistribution {
    /// Draws a latency.
    pub(crate) fn sample(&self, rng: &mut WorldRng) -> Duration {
        match self {
            LatencyDistribution::Fixed(latency) => *latency,
            LatencyDistribution::Uniform { min, max } => rng.duration(*min, *max),
            LatencyDistribution::Exponential { mean, max } => {
                if mean.is_zero() {
                    return Duration::ZERO;
                }
                let u = rng.ratio();
                let factor = -(1.0 - u).ln();
                mean.mul_f64(factor).min(*max)
            }
            LatencyDistribution::Bimodal {
                fast,
                slow,
                slow_probability,
            } => {
                if rng.chance(*slow_probability) {
                    rng.duration(slow.0, slow.1)
                } else {
                    rng.duration(fast.0, fast.1)
                }
            }
        }
    }

    /// Checks the distribution; the error names `field`.
    pub(crate) fn validate(&self, field: &str) -> Result<(), String> {
        let ordered = |name: &str, lo: Duration, hi: Duration| {
            if lo > hi {
                Err(format!(
                    "{field}: {name} minimum {lo:?} exceeds maximum {hi:?}"
                ))
            } else {
                Ok(())
            }
        };
        match self {
            LatencyDistribution::Fixed(_) => Ok(()),
            LatencyDistribution::Uniform { min, max } => ordered("uniform", *min, *max),
            LatencyDistribution::Exponential { mean, max } => ordered("exponential", *mean, *max),
            LatencyDistribution::Bimodal {
                fast,
                slow,
                slow_probability,
            } => {
                ordered("fast", fast.0, fast.1)?;
                ordered("slow", slow.0, slow.1)?;
                check_probability(&format!("{field}.slow_probability"), *slow_probability)
            }
        }
    }
}

/// A probability in `[0, 1]`, or an error naming `field` and the value.
pub(crate) fn check_probability(field: &str, p: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(format!("{field} is {p}, expected a probability in [0, 1]"))
    }
}

/// `min <= max`, or an error naming `field`.
pub(crate) fn check_range(field: &str, range: (Duration, Duration)) -> Result<(), String> {
    if range.0 > range.1 {
        Err(format!(
            "{field} minimum {:?} exceeds maximum {:?}",
            range.0, range.1
        ))
    } else {
        Ok(())
    }
}

/// Latencies and faults of the simulated network.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfiguration {
    /// Delay before a `bind` completes.
    pub bind_latency: LatencyDistribution,
    /// Delay between a connection reaching the listener and `accept` returning it.
    pub accept_latency: LatencyDistribution,
    /// Connection handshake: delay before `connect` completes.
    pub connect_latency: LatencyDistribution,
    /// One-way delivery delay of each write.
    pub write_latency: LatencyDistribution,
    /// Per ordered IP pair, a permanent extra latency drawn once in `[0, max]` at first contact
    /// (one stably slow peer).
    pub pair_latency_max: Duration,
    /// Bytes a direction may hold in flight and unread before writers wait (back-pressure).
    pub send_buffer_bytes: usize,
    /// How long a connect to a dead or partitioned host waits before failing with `TimedOut`.
    pub connect_timeout: Duration,

    /// Per write: clog this direction of the connection (deliveries wait).
    pub clog_probability: f64,
    /// Clog length.
    pub clog_duration: (Duration, Duration),
    /// Per write: partition the two hosts (both directions, new and existing connections).
    pub partition_probability: f64,
    /// Partition length.
    pub partition_duration: (Duration, Duration),
    /// Per read or write: close the connection at random.
    pub random_close_probability: f64,
    /// Minimum simulated time between two random closes in the world.
    pub random_close_cooldown: Duration,
    /// Of random closes, the share that are resets (RST) rather than orderly closes (FIN).
    pub random_close_reset_share: f64,
    /// Of random closes, the share that close one direction only.
    pub random_close_one_way_share: f64,
    /// Per write: cut the connection temporarily (both directions stall, then resume).
    pub cut_probability: f64,
    /// Cut length.
    pub cut_duration: (Duration, Duration),
    /// Per new connection: it silently drops everything written to it, and never errors.
    pub black_hole_probability: f64,
    /// After a peer crashes without closing, how long until its connections error
    /// (`ConnectionReset`); until then they are half-open.
    pub half_open_timeout: Duration,
    /// Per delivery: flip bits in the delivered bytes.
    pub bit_flip_probability: f64,
    /// Minimum simulated time between two bit flips in the world.
    pub bit_flip_cooldown: Duration,
    /// Per write: accept only part of the buffer.
    pub partial_write_probability: f64,
    /// Per read: return only part of the available bytes (never zero).
    pub partial_read_probability: f64,
    /// Per connect: refuse even though a listener exists.
    pub connect_refuse_probability: f64,
    /// Per connect: never complete (only a timeout in the caller gets out).
    pub connect_hang_probability: f64,
}

impl Default for NetworkConfiguration {
    /// FDB-sim2-like chaos: sub-millisecond latencies with a rare slow tail, and every fault on
    /// at a low rate.
    fn default() -> Self {
        Self {
            bind_latency: LatencyDistribution::Uniform {
                min: Duration::from_micros(10),
                max: Duration::from_micros(100),
            },
            accept_latency: LatencyDistribution::Uniform {
                min: Duration::from_micros(10),
                max: Duration::from_micros(200),
            },
            connect_latency: LatencyDistribution::Bimodal {
                fast: (Duration::from_micros(200), Duration::from_millis(2)),
                slow: (Duration::from_millis(20), Duration::from_millis(200)),
                slow_probability: 0.01,
            },
            write_latency: LatencyDistribution::Bimodal {
                fast: (Duration::from_micros(100), Duration::from_micros(800)),
                slow: (Duration::from_millis(10), Duration::from_millis(100)),
                slow_probability: 0.001,
            },
            pair_latency_max: Duration::from_millis(2),
            send_buffer_bytes: 256 * 1024,
            connect_timeout: Duration::from_secs(5),
            clog_probability: 0.0005,
            clog_duration: (Duration::from_millis(10), Duration::from_millis(500)),
            partition_probability: 0.000_05,
            partition_duration: (Duration::from_millis(100), Duration::from_secs(5)),
            random_close_probability: 0.000_05,
            random_close_cooldown: Duration::from_secs(5),
            random_close_reset_share: 0.5,
            random_close_one_way_share: 0.2,
            cut_probability: 0.0001,
            cut_duration: (Duration::from_millis(50), Duration::from_secs(2)),
            black_hole_probability: 0.0005,
            half_open_timeout: Duration::from_secs(30),
            bit_flip_probability: 0.0001,
            bit_flip_cooldown: Duration::from_secs(1),
            partial_write_probability: 0.1,
            partial_read_probability: 0.1,
            connect_refuse_probability: 0.001,
            connect_hang_probability: 0.0005,
        }
    }
}

impl NetworkConfiguration {
    /// A fast, faultless network: fixed 50 µs latencies, no faults.
    pub fn fast_local() -> Self {
        Self::with_fixed_latency(Duration::from_micros(50))
    }

    /// No faults and a fixed one-way latency for every write (and a handshake of the same length).
    pub fn with_fixed_latency(latency: Duration) -> Self {
        Self {
            bind_latency: LatencyDistribution::Fixed(Duration::ZERO),
            accept_latency: LatencyDistribution::Fixed(Duration::ZERO),
            connect_latency: LatencyDistribution::Fixed(latency),
            write_latency: LatencyDistribution::Fixed(latency),
            pair_latency_max: Duration::ZERO,
            ..Self::disabled()
        }
    }

    /// Every fault off; latencies as in the default. Turn single faults on from here in tests.
    pub fn disabled() -> Self {
        Self {
            clog_probability: 0.0,
            partition_probability: 0.0,
            random_close_probability: 0.0,
            cut_probability: 0.0,
            black_hole_probability: 0.0,
            bit_flip_probability: 0.0,
            partial_write_probability: 0.0,
            partial_read_probability: 0.0,
            connect_refuse_probability: 0.0,
            connect_hang_probability: 0.0,
            pair_latency_max: Duration::ZERO,
            ..Self::default()
        }
    }

    /// The same latencies and buffers with every fault off (the settle phase after chaos).
    pub fn without_faults(&self) -> Self {
        let quiet = Self::disabled();
        Self {
            bind_latency: self.bind_latency.clone(),
            accept_latency: self.accept_latency.clone(),
            connect_latency: self.connect_latency.clone(),
            write_latency: self.write_latency.clone(),
            pair_latency_max: self.pair_latency_max,
            send_buffer_bytes: self.send_buffer_bytes,
            connect_timeout: self.connect_timeout,
            half_open_timeout: self.half_open_timeout,
            ..quiet
        }
    }

    /// Swarm testing for one seed: each fault family is on or fully off (about half each, all
    /// off possible), and the ones on get a probability drawn from a range around the default.
    /// The same seed always gives the same configuration.
    pub fn random_for_seed(seed: u64) -> Self {
        let mut rng = WorldRng::new(seed ^ 0x6e65_7477_6f72_6b00);
        let mut config = Self::default();
        let family = |rng: &mut WorldRng, base: f64| -> f64 {
            if rng.chance(0.5) {
                base * rng.range(0.1..10.0)
            } else {
                0.0
            }
        };
        config.clog_probability = family(&mut rng, config.clog_probability);
        config.partition_probability = family(&mut rng, config.partition_probability);
        config.random_close_probability = family(&mut rng, config.random_close_probability);
        config.cut_probability = family(&mut rng, config.cut_probability);
        config.black_hole_probability = family(&mut rng, config.black_hole_probability);
        config.bit_flip_probability = family(&mut rng, config.bit_flip_probability);
        config.partial_write_probability = family(&mut rng, 0.05).min(0.9);
        config.partial_read_probability = family(&mut rng, 0.05).min(0.9);
        config.connect_refuse_probability = family(&mut rng, config.connect_refuse_probability);
        config.connect_hang_probability = family(&mut rng, config.connect_hang_probability);
        if rng.chance(0.5) {
            config.pair_latency_max = Duration::ZERO;
        }
        config
    }

    /// Checks every field; the error names the first bad one and its value.
    pub fn validate(&self) -> Result<(), String> {
        self.bind_latency.validate("bind_latency")?;
        self.accept_latency.validate("accept_latency")?;
        self.connect_latency.validate("connect_latency")?;
        self.write_latency.validate("write_latency")?;
        for (field, p) in [
            ("clog_probability", self.clog_probability),
            ("partition_probability", self.partition_probability),
            ("random_close_probability", self.random_close_probability),
            ("random_close_reset_share", self.random_close_reset_share),
            (
                "random_close_one_way_share",
                self.random_close_one_way_share,
            ),
            ("cut_probability", self.cut_probability),
            ("black_hole_probability", self.black_hole_probability),
            ("bit_flip_probability", self.bit_flip_probability),
            ("partial_write_probability", self.partial_write_probability),
            ("partial_read_probability", self.partial_read_probability),
            (
                "connect_refuse_probability",
                self.connect_refuse_probability,
            ),
            ("connect_hang_probability", self.connect_hang_probability),
        ] {
            check_probability(field, p)?;
        }
        check_range("clog_duration", self.clog_duration)?;
        check_range("partition_duration", self.partition_duration)?;
        check_range("cut_duration", self.cut_duration)?;
        if self.send_buffer_bytes == 0 {
            return Err("send_buffer_bytes is 0; writers could never make progress".into());
        }
        Ok(())
    }
}
