//! Chaos surfaces for swarm testing, attrition, and fault injectors.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use moonpool_core::{Providers, RandomProvider, TimeProvider};

use super::context::FaultContext;
use crate::kernel::fault::{FaultKind, FaultSet};
use crate::world::RebootKind;

/// A fault family that swarm testing turns on or off per seed.
///
/// With [`SimulationBuilder::enable_chaos`](super::SimulationBuilder::enable_chaos), each listed
/// family is on in about half the seeds and fully off in the others (all off is possible), as in
/// swarm testing (Groce et al., ISSTA 2012): a seed that runs a few faults hard finds bugs that
/// every fault at a low rate hides. Families not listed are off.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Chaos {
    /// Network faults: per seed, your network configuration perturbed
    /// (`NetworkConfiguration::perturbed_for_seed`: each fault you have on kept at 0.1x to 10x
    /// or turned off, your latencies kept).
    Network,
    /// Storage faults: per seed, your storage configuration perturbed
    /// (`StorageConfiguration::perturbed_for_seed`).
    Storage,
    /// Clock drift and buggified sleep delays.
    Clock,
    /// `buggify!` points and `buggify_knob!` values.
    Buggify,
    /// Random partitions and clogs between processes.
    Partitions,
    /// Processes rebooted at random.
    Attrition(Attrition),
}

impl Chaos {
    /// Every family, attrition with its default settings: swarm testing of everything the
    /// configuration can inject. Narrow what a seed may inject with
    /// [`SimulationBuilder::faults`](super::SimulationBuilder::faults) and a preset
    /// ([`FaultSet::crash_consistent`](crate::FaultSet::crash_consistent), ...).
    pub fn all() -> Vec<Chaos> {
        vec![
            Chaos::Network,
            Chaos::Storage,
            Chaos::Clock,
            Chaos::Buggify,
            Chaos::Partitions,
            Chaos::Attrition(Attrition::default()),
        ]
    }

    /// The fault kinds the family can inject.
    pub fn kinds(&self) -> FaultSet {
        match self {
            Chaos::Network => FaultSet::group("network"),
            Chaos::Storage => FaultSet::group("storage"),
            Chaos::Clock => FaultSet::group("clock"),
            Chaos::Buggify => FaultSet::only([FaultKind::Buggify]),
            Chaos::Partitions => FaultSet::only([FaultKind::Partitions]),
            Chaos::Attrition(_) => FaultSet::only([FaultKind::Attrition]),
        }
    }

    /// The family's name, used to derive its per-seed switch.
    pub fn family(&self) -> &'static str {
        match self {
            Chaos::Network => "network",
            Chaos::Storage => "storage",
            Chaos::Clock => "clock",
            Chaos::Buggify => "buggify",
            Chaos::Partitions => "partitions",
            Chaos::Attrition(_) => "attrition",
        }
    }
}

/// Random reboots of server processes during the chaos phase, never more than `max_dead` down at
/// once.
///
/// `#[non_exhaustive]`: start from [`default`](Self::default) and use the `with_*` methods,
/// e.g. `Attrition::default().with_max_dead(2)`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Attrition {
    /// Most processes down at the same time.
    pub max_dead: usize,
    /// Time between two reboot attempts, drawn uniformly.
    pub interval: (Duration, Duration),
    /// How long a rebooted process stays down, drawn uniformly.
    pub recovery_delay: (Duration, Duration),
    /// Kinds of reboot, one drawn uniformly each time.
    pub kinds: Vec<RebootKind>,
}

impl Default for Attrition {
    /// One process down at a time, a reboot every 1 to 5 s, back after 0.5 to 3 s; graceful,
    /// crash and crash-and-wipe equally likely.
    fn default() -> Self {
        Self {
            max_dead: 1,
            interval: (Duration::from_secs(1), Duration::from_secs(5)),
            recovery_delay: (Duration::from_millis(500), Duration::from_secs(3)),
            kinds: vec![
                RebootKind::Graceful,
                RebootKind::Crash,
                RebootKind::CrashAndWipe,
            ],
        }
    }
}

impl Attrition {
    /// This configuration with `max_dead` set (most processes down at the same time).
    #[must_use]
    pub fn with_max_dead(mut self, max_dead: usize) -> Self {
        self.max_dead = max_dead;
        self
    }

    /// This configuration with `interval` set (time between two reboot attempts).
    #[must_use]
    pub fn with_interval(mut self, interval: (Duration, Duration)) -> Self {
        self.interval = interval;
        self
    }

    /// This configuration with `recovery_delay` set (how long a rebooted process stays down).
    #[must_use]
    pub fn with_recovery_delay(mut self, recovery_delay: (Duration, Duration)) -> Self {
        self.recovery_delay = recovery_delay;
        self
    }

    /// This configuration with `kinds` set (the reboot kinds to draw from).
    #[must_use]
    pub fn with_kinds(mut self, kinds: Vec<RebootKind>) -> Self {
        self.kinds = kinds;
        self
    }

    /// Checks the configuration; the error names the field and its bad value.
    ///
    /// Refused:
    /// - `max_dead` of 0: attrition could never reboot a process, so listing it only pretends
    ///   to test reboots (leave `Chaos::Attrition` out instead);
    /// - an `interval` or `recovery_delay` whose minimum exceeds its maximum;
    /// - an `interval` of zero (both bounds zero): the injector would loop without simulated time
    ///   passing, rebooting as fast as it can or, once `max_dead` are down, spinning in a busy
    ///   loop. A zero *lower* bound with a positive upper bound is accepted: a draw of exactly
    ///   zero is then vanishingly rare and time passes on average;
    /// - an empty `kinds`: there would be no reboot kind to draw.
    ///
    /// A zero `recovery_delay` is accepted (a process restarted at once is a legitimate fault).
    pub fn validate(&self) -> Result<(), String> {
        if self.max_dead == 0 {
            return Err(
                "max_dead is 0: attrition would never reboot a process (remove Chaos::Attrition \
                 instead)"
                    .to_string(),
            );
        }
        let (lo, hi) = self.interval;
        if lo > hi {
            return Err(format!("interval minimum {lo:?} exceeds maximum {hi:?}"));
        }
        if hi.is_zero() {
            return Err(format!(
                "interval is ({lo:?}, {hi:?}): reboots would follow each other without simulated \
                 time passing"
            ));
        }
        let (lo, hi) = self.recovery_delay;
        if lo > hi {
            return Err(format!(
                "recovery_delay minimum {lo:?} exceeds maximum {hi:?}"
            ));
        }
        if self.kinds.is_empty() {
            return Err("kinds is empty: there is no reboot kind to draw".to_string());
        }
        Ok(())
    }
}

/// A boxed injector body.
pub type FaultFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Injects faults during the chaos phase; stopped when the chaos phase ends.
pub trait FaultInjector: Send + Sync + 'static {
    /// The injector's name (its task is named after it).
    fn name(&self) -> &str;
    /// Runs the injector for one seed.
    fn inject(&self, ctx: FaultContext) -> FaultFuture;
}

/// A fault injector made from a closure.
pub(crate) struct FnInjector<F> {
    pub(crate) name: String,
    pub(crate) body: F,
}

impl<F, Fut> FaultInjector for FnInjector<F>
where
    F: Fn(FaultContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn inject(&self, ctx: FaultContext) -> FaultFuture {
        Box::pin((self.body)(ctx))
    }
}

/// One scripted fault.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FaultAction {
    /// Partition two hosts for a while.
    Partition {
        /// One side.
        a: IpAddr,
        /// The other side.
        b: IpAddr,
        /// How long.
        duration: Duration,
    },
    /// End every partition.
    Heal,
    /// Clog traffic from one host to another for a while.
    Clog {
        /// Sender.
        from: IpAddr,
        /// Receiver.
        to: IpAddr,
        /// How long.
        duration: Duration,
    },
    /// Reboot a process by name.
    Reboot {
        /// The process name.
        process: String,
        /// How.
        kind: RebootKind,
        /// When it comes back (`None`: never).
        restart_after: Option<Duration>,
    },
}

/// Faults at fixed simulated times: `(at, action)` pairs, applied in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScriptedFaults {
    /// The script.
    pub steps: Vec<(Duration, FaultAction)>,
}

impl FaultInjector for ScriptedFaults {
    fn name(&self) -> &str {
        "scripted-faults"
    }

    fn inject(&self, ctx: FaultContext) -> FaultFuture {
        let steps = self.steps.clone();
        Box::pin(async move {
            for (at, action) in steps {
                let now = ctx.providers.time().now();
                if at > now {
                    ctx.providers.time().sleep(at - now).await;
                }
                apply_action(&ctx, &action);
            }
        })
    }
}

fn apply_action(ctx: &FaultContext, action: &FaultAction) {
    let control = ctx.control();
    match action {
        FaultAction::Partition { a, b, duration } => control.partition(*a, *b, *duration),
        FaultAction::Heal => control.heal_partitions(),
        FaultAction::Clog { from, to, duration } => control.clog(*from, *to, *duration),
        FaultAction::Reboot {
            process,
            kind,
            restart_after,
        } => {
            if let Ok(id) = control.process(process) {
                control.reboot(id, *kind, *restart_after);
            }
        }
    }
}

/// Random partitions and clogs between any two members of the topology; with `live` false, the
/// same draws and sleeps without injecting anything (the kind is masked off).
pub(crate) async fn random_partitions(ctx: FaultContext, live: bool) {
    let ips: Vec<IpAddr> = ctx
        .topology
        .processes
        .iter()
        .chain(ctx.topology.workloads.iter())
        .map(|m| m.ip)
        .collect();
    if ips.len() < 2 {
        return;
    }
    let random = ctx.providers.random().clone();
    let time = ctx.providers.time().clone();
    while ctx.chaos_active() {
        time.sleep(random.random_range(Duration::from_millis(500)..Duration::from_secs(4)))
            .await;
        let a = ips[random.random_range(0..ips.len())];
        let b = ips[random.random_range(0..ips.len())];
        if a == b {
            continue;
        }
        let duration = random.random_range(Duration::from_millis(100)..Duration::from_secs(3));
        let partition = random.random_bool(0.7);
        if !live {
            continue;
        }
        ctx.control().mark_fault(FaultKind::Partitions);
        if partition {
            ctx.control().partition(a, b, duration);
        } else {
            ctx.control().clog(a, b, duration);
        }
    }
}

/// Reboots random server processes, keeping at most `max_dead` down; with `live` false, the same
/// draws and sleeps without rebooting (the kind is masked off).
pub(crate) async fn attrition(ctx: FaultContext, config: Arc<Attrition>, live: bool) {
    let names: Vec<String> = ctx
        .topology
        .processes
        .iter()
        .map(|m| m.name.clone())
        .collect();
    if names.is_empty() || config.kinds.is_empty() {
        return;
    }
    let random = ctx.providers.random().clone();
    let time = ctx.providers.time().clone();
    while ctx.chaos_active() {
        time.sleep(random.random_range(config.interval.0..=config.interval.1))
            .await;
        let control = ctx.control();
        let ids: Vec<_> = names
            .iter()
            .filter_map(|n| control.process(n).ok())
            .collect();
        let up =
            |id: &crate::executor::ProcessId| control.is_alive(*id) && !control.is_stopping(*id);
        let dead = ids.iter().filter(|id| !up(id)).count();
        if dead >= config.max_dead {
            continue;
        }
        let alive: Vec<_> = ids.iter().filter(|id| up(id)).copied().collect();
        if alive.is_empty() {
            continue;
        }
        let victim = alive[random.random_range(0..alive.len())];
        let kind = config.kinds[random.random_range(0..config.kinds.len())];
        let delay = random.random_range(config.recovery_delay.0..=config.recovery_delay.1);
        if live {
            control.mark_fault(FaultKind::Attrition);
            control.reboot(victim, kind, Some(delay));
        }
    }
}
