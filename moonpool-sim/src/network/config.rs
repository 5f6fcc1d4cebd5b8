//! [`NetworkConfiguration`]: latencies and fault probabilities of the simulated network.
//!
//! Every probability is per operation (per write, per read, per new connection) and every fault is
//! off at probability zero without consuming randomness. See `docs/fault-injection.md` for what
//! each fault exposes and its FoundationDB counterpart.
//!
//! The TCP-layer faults (read clogs, random closes on reads, loss as retransmission, loss bursts,
//! bandwidth-delay send buffers) are off in `default()` and in `random_for_seed`, so existing
//! seeds keep their behaviour; [`NetworkConfiguration::with_tcp_faults`] and
//! [`NetworkConfiguration::with_random_tcp_faults`] turn them on.

use std::fmt;
use std::time::Duration;

use crate::kernel::clock::scaled;
use crate::kernel::rng::{StreamRng, WorldRng};

/// A latency distribution.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
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

/// The longest latency a configuration may give (100 years of 365 days): a bound far past any
/// time budget, low enough that no instant plus a latency overflows.
pub const MAX_LATENCY: Duration = crate::kernel::clock::HUNDRED_YEARS;

impl LatencyDistribution {
    /// The latency when it is fixed (sampling it draws nothing).
    #[inline]
    pub(crate) fn fixed(&self) -> Option<Duration> {
        match self {
            LatencyDistribution::Fixed(latency) => Some(*latency),
            _ => None,
        }
    }

    /// Draws a latency.
    pub(crate) fn sample(&self, rng: &mut StreamRng) -> Duration {
        match self {
            LatencyDistribution::Fixed(latency) => *latency,
            LatencyDistribution::Uniform { min, max } => rng.duration(*min, *max),
            LatencyDistribution::Exponential { mean, max } => {
                if mean.is_zero() {
                    return Duration::ZERO;
                }
                let u = rng.ratio();
                let factor = -(1.0 - u).ln();
                // `mean.mul_f64(factor)`, saturating where that would overflow.
                scaled(*mean, factor).min(*max)
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
            check_range(format_args!("{field}: {name}"), (lo, hi))
        };
        match self {
            LatencyDistribution::Fixed(latency) if *latency > MAX_LATENCY => Err(format!(
                "{field}: fixed latency {latency:?} is over the {MAX_LATENCY:?} (100-year) limit"
            )),
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
                check_probability(format_args!("{field}.slow_probability"), *slow_probability)
            }
        }
    }
}

impl LatencyDistribution {
    /// The mean of the distribution (for sizing, not drawing: uses no randomness).
    pub fn mean(&self) -> Duration {
        // `(a + b) / 2` without overflowing (the same value: `a` is whole nanoseconds).
        let mid = |a: Duration, b: Duration| a.min(b) + (a.max(b) - a.min(b)) / 2;
        match self {
            LatencyDistribution::Fixed(latency) => *latency,
            LatencyDistribution::Uniform { min, max } => mid(*min, *max),
            LatencyDistribution::Exponential { mean, max } => (*mean).min(*max),
            LatencyDistribution::Bimodal {
                fast,
                slow,
                slow_probability,
            } => scaled(mid(fast.0, fast.1), 1.0 - slow_probability)
                .saturating_add(scaled(mid(slow.0, slow.1), *slow_probability)),
        }
    }
}

/// How each connection's send buffer capacity is chosen when it is created.
#[derive(Debug, Clone, PartialEq)]
pub enum SendBufferSizing {
    /// Every connection gets `NetworkConfiguration::send_buffer_bytes` (the default).
    Fixed,
    /// The link's bandwidth-delay product: `capacity = clamp(bandwidth × rtt, floor, ceiling)`
    /// with `rtt = 2 × mean(write_latency) + extra latency of both directions` (the per-pair
    /// latency drawn for the pair). Draws no randomness.
    BandwidthDelay {
        /// Link bandwidth in bytes per second.
        bandwidth_bytes_per_second: u64,
        /// Smallest capacity.
        floor: usize,
        /// Largest capacity.
        ceiling: usize,
    },
}

impl SendBufferSizing {
    /// The capacity for a connection with round-trip time `rtt`, or `fixed` for [`Self::Fixed`].
    pub fn capacity(&self, fixed: usize, rtt: Duration) -> usize {
        match self {
            SendBufferSizing::Fixed => fixed,
            SendBufferSizing::BandwidthDelay {
                bandwidth_bytes_per_second,
                floor,
                ceiling,
            } => {
                let bdp = (*bandwidth_bytes_per_second as f64 * rtt.as_secs_f64()) as usize;
                bdp.clamp(*floor, (*ceiling).max(*floor))
            }
        }
    }
}

/// The opt-in switch of [`NetworkConfiguration::random_for_seed`] for the TCP-layer faults.
pub const TCP_FAULTS_ENV: &str = "MOONPOOL_NETWORK_TCP_FAULTS";

pub(crate) fn tcp_faults_from_env() -> bool {
    std::env::var(TCP_FAULTS_ENV).is_ok_and(|v| v == "1")
}

/// A probability in `[0, 1]`, or an error naming `field` and the value.
///
/// The field is anything displayable (a `&str`, or `format_args!` for a composed name), so the
/// name is only written out when the check fails: validating a good configuration allocates
/// nothing (a world validates its configuration once per seed).
pub(crate) fn check_probability(field: impl fmt::Display, p: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(format!("{field} is {p}, expected a probability in [0, 1]"))
    }
}

/// `min <= max <= 100 years`, or an error naming `field` (written out only on failure).
pub(crate) fn check_range(
    field: impl fmt::Display,
    range: (Duration, Duration),
) -> Result<(), String> {
    if range.0 > range.1 {
        Err(format!(
            "{field} minimum {:?} exceeds maximum {:?}",
            range.0, range.1
        ))
    } else {
        check_duration(format_args!("{field} maximum"), range.1)
    }
}

/// At most 100 years ([`MAX_LATENCY`]), or an error naming `field` and the value: a longer
/// span added to the simulated clock could overflow, and no simulation waits that long.
pub(crate) fn check_duration(field: impl fmt::Display, value: Duration) -> Result<(), String> {
    if value > MAX_LATENCY {
        Err(format!(
            "{field} is {value:?}, past the 100-year bound ({MAX_LATENCY:?})"
        ))
    } else {
        Ok(())
    }
}

/// Latencies and faults of the simulated network.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
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
    /// Per write: close the connection at random (reads have their own
    /// `random_close_read_probability`, off by default).
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

    // TCP-layer faults, all off in `default()` and `random_for_seed` (see `with_tcp_faults`).
    /// How each connection's send buffer capacity is chosen (fixed, or bandwidth-delay product).
    pub send_buffer_sizing: SendBufferSizing,
    /// Per read that finds data: hold the delivered data back from the reader (read-side clog).
    pub read_clog_probability: f64,
    /// Read clog length.
    pub read_clog_duration: (Duration, Duration),
    /// Per read: close the connection at random (same cooldown and shares as on writes).
    pub random_close_read_probability: f64,
    /// Per transmission of a write (segment): the segment is lost and retransmitted after the
    /// retransmission timeout (doubling at each further loss). Bytes are never missing.
    pub loss_probability: f64,
    /// Per write: a loss burst starts on this direction; every transmission is lost until it ends.
    pub loss_burst_probability: f64,
    /// Loss burst length.
    pub loss_burst_duration: (Duration, Duration),
    /// First retransmission timeout (RTO); it doubles at each consecutive loss of a segment.
    pub retransmit_timeout: Duration,
    /// Retransmissions of one segment before the connection fails with `TimedOut`
    /// (Linux `tcp_retries2`, smaller).
    pub max_retransmits: u32,
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
            send_buffer_sizing: SendBufferSizing::Fixed,
            read_clog_probability: 0.0,
            read_clog_duration: (Duration::from_millis(10), Duration::from_millis(500)),
            random_close_read_probability: 0.0,
            loss_probability: 0.0,
            loss_burst_probability: 0.0,
            loss_burst_duration: (Duration::from_millis(100), Duration::from_secs(30)),
            retransmit_timeout: Duration::from_millis(200),
            max_retransmits: 6,
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

    /// True when no fault a write decides can fire: random close, partial write, partition,
    /// clog, cut, loss and loss burst all at probability zero (or NaN, which the draws treat as
    /// zero). A write then draws nothing but its latency and the buggify site.
    pub(crate) fn quiet_writes(&self) -> bool {
        [
            self.random_close_probability,
            self.partial_write_probability,
            self.partition_probability,
            self.clog_probability,
            self.cut_probability,
            self.loss_probability,
            self.loss_burst_probability,
        ]
        .iter()
        .all(|p| p.is_nan() || *p <= 0.0)
    }

    /// True when no fault a delivery decides can fire: bit flips and read-side clogs at
    /// probability zero (or NaN, which the draws treat as zero).
    pub(crate) fn quiet_deliveries(&self) -> bool {
        [self.bit_flip_probability, self.read_clog_probability]
            .iter()
            .all(|p| p.is_nan() || *p <= 0.0)
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
            send_buffer_sizing: self.send_buffer_sizing.clone(),
            retransmit_timeout: self.retransmit_timeout,
            max_retransmits: self.max_retransmits,
            ..quiet
        }
    }

    /// This configuration with the TCP-layer faults on at low rates: read-side clogs, random
    /// closes on reads, segment loss surfacing as retransmission delays, loss bursts that can
    /// fail a connection, and send buffers sized by a 1 Gbit/s bandwidth-delay product (64 KiB
    /// to 4 MiB). Opt-in: `default()` and `random_for_seed` leave them off, so pinned seeds
    /// keep their behaviour.
    pub fn with_tcp_faults(mut self) -> Self {
        self.read_clog_probability = 0.0005;
        self.random_close_read_probability = 0.000_05;
        self.loss_probability = 0.01;
        self.loss_burst_probability = 0.000_02;
        self.send_buffer_sizing = SendBufferSizing::BandwidthDelay {
            bandwidth_bytes_per_second: 125_000_000,
            floor: 64 * 1024,
            ceiling: 4 * 1024 * 1024,
        };
        self
    }

    /// Swarm testing of the TCP-layer faults for one seed: each of read clog, random close on
    /// reads, loss and loss bursts is on (at 0.1× to 10× its `with_tcp_faults` rate) or off with
    /// even odds, and BDP sizing is on in half the seeds. Drawn from its own stream, so it does
    /// not change what [`random_for_seed`](Self::random_for_seed) draws for the other faults.
    pub fn with_random_tcp_faults(mut self, seed: u64) -> Self {
        let mut rng = WorldRng::new(seed ^ 0x7463_705f_6661_756c);
        let rates = Self::default().with_tcp_faults();
        let family = |rng: &mut StreamRng, base: f64| -> f64 {
            if rng.chance(0.5) {
                (base * rng.range(0.1..10.0)).min(1.0)
            } else {
                0.0
            }
        };
        self.read_clog_probability = family(&mut rng, rates.read_clog_probability);
        self.random_close_read_probability = family(&mut rng, rates.random_close_read_probability);
        self.loss_probability = family(&mut rng, rates.loss_probability);
        self.loss_burst_probability = family(&mut rng, rates.loss_burst_probability);
        self.send_buffer_sizing = if rng.chance(0.5) {
            rates.send_buffer_sizing
        } else {
            SendBufferSizing::Fixed
        };
        self
    }

    /// Total time a segment may wait for retransmissions before the connection fails:
    /// `rto × (2^(max_retransmits + 1) − 1)`.
    pub fn retransmission_budget(&self) -> Duration {
        let mut total = Duration::ZERO;
        let mut rto = self.retransmit_timeout;
        for _ in 0..=self.max_retransmits {
            total = total.saturating_add(rto);
            rto = rto.saturating_mul(2);
        }
        total
    }

    /// Swarm testing for one seed: [`perturbed_for_seed`](Self::perturbed_for_seed) of the
    /// default configuration. The same seed always gives the same configuration.
    ///
    /// The TCP-layer faults stay off, unless the environment variable
    /// `MOONPOOL_NETWORK_TCP_FAULTS` is `1` (read at each call): then they are drawn too (see
    /// [`perturbed_for_seed`](Self::perturbed_for_seed)). This is how existing chaos suites run
    /// with the new faults without changing their pinned fingerprints.
    pub fn random_for_seed(seed: u64) -> Self {
        Self::default().perturbed_for_seed(seed)
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
            ("read_clog_probability", self.read_clog_probability),
            (
                "random_close_read_probability",
                self.random_close_read_probability,
            ),
            ("loss_probability", self.loss_probability),
            ("loss_burst_probability", self.loss_burst_probability),
        ] {
            check_probability(field, p)?;
        }
        check_range("clog_duration", self.clog_duration)?;
        check_range("partition_duration", self.partition_duration)?;
        check_range("cut_duration", self.cut_duration)?;
        check_range("read_clog_duration", self.read_clog_duration)?;
        check_range("loss_burst_duration", self.loss_burst_duration)?;
        for (field, value) in [
            ("pair_latency_max", self.pair_latency_max),
            ("connect_timeout", self.connect_timeout),
            ("random_close_cooldown", self.random_close_cooldown),
            ("half_open_timeout", self.half_open_timeout),
            ("bit_flip_cooldown", self.bit_flip_cooldown),
            ("retransmit_timeout", self.retransmit_timeout),
        ] {
            check_duration(field, value)?;
        }
        if self.loss_probability > 0.0 && self.retransmit_timeout.is_zero() {
            return Err(
                "retransmit_timeout is 0s while loss_probability > 0; a lost segment would \
                 be retransmitted at once"
                    .into(),
            );
        }
        if self.max_retransmits > 30 {
            return Err(format!(
                "max_retransmits is {}, expected at most 30 (the timeout doubles each time)",
                self.max_retransmits
            ));
        }
        if let SendBufferSizing::BandwidthDelay {
            bandwidth_bytes_per_second,
            floor,
            ceiling,
        } = &self.send_buffer_sizing
        {
            if *bandwidth_bytes_per_second == 0 {
                return Err("send_buffer_sizing.bandwidth_bytes_per_second is 0".into());
            }
            if *floor == 0 {
                return Err(
                    "send_buffer_sizing.floor is 0; writers could never make progress".into(),
                );
            }
            if floor > ceiling {
                return Err(format!(
                    "send_buffer_sizing floor {floor} exceeds ceiling {ceiling}"
                ));
            }
        }
        if self.send_buffer_bytes == 0 {
            return Err("send_buffer_bytes is 0; writers could never make progress".into());
        }
        Ok(())
    }
}
