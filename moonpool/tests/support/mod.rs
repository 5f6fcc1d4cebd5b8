//! What the simulated actor suites share (`actors_sim`, `actors_reentrant`, `actors_phase5`,
//! `actors_banking`, `actors_grant_cuts`): the census of live activations kept on the
//! blackboard, the one-activation check, the seed count, the cluster knobs of the cluster suites
//! and the report they print. Each file takes what it needs (`mod support;`).
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use moonpool::NetworkAddress;
use moonpool::actors::{ActivationObserver, ActorId, ClusterConfig, PlantedBug};
use moonpool::sim::{SimulationReport, StateHandle};

/// Live activations on the blackboard (key `"alive"`): identity -> [(node, grant)].
pub type Alive = BTreeMap<String, Vec<(NetworkAddress, u64)>>;

/// An observer on every node that keeps the live activations on the blackboard (`"alive"`, an
/// [`Alive`]), the newest grant each identity started (`"newest"`) and how many activations
/// started (`"activations"`). A crash drops an activation's task, which tells the observer.
pub struct Census(pub StateHandle);

impl ActivationObserver for Census {
    fn activated(&self, id: &ActorId, grant: u64, node: NetworkAddress) {
        self.0.update("alive", |alive: &mut Alive| {
            alive.entry(id.to_string()).or_default().push((node, grant));
        });
        self.0
            .update("newest", |newest: &mut BTreeMap<String, u64>| {
                let entry = newest.entry(id.to_string()).or_default();
                *entry = (*entry).max(grant);
            });
        self.0.update("activations", |count: &mut u64| *count += 1);
    }

    fn deactivated(&self, id: &ActorId, grant: u64, node: NetworkAddress) {
        self.0.update("alive", |alive: &mut Alive| {
            if let Some(list) = alive.get_mut(&id.to_string()) {
                list.retain(|entry| *entry != (node, grant));
                if list.is_empty() {
                    alive.remove(&id.to_string());
                }
            }
        });
    }
}

/// Marks a turn of `id` on the blackboard (key `"turns"`: identity -> turns running) while it
/// runs, and until its future is dropped.
pub struct Turn {
    state: StateHandle,
    id: String,
}

impl Turn {
    pub fn begin(state: &StateHandle, id: &ActorId) -> Self {
        let id = id.to_string();
        state.update("turns", |turns: &mut BTreeMap<String, u32>| {
            *turns.entry(id.clone()).or_default() += 1;
        });
        Self {
            state: state.clone(),
            id,
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.state
            .update("turns", |turns: &mut BTreeMap<String, u32>| {
                if let Some(count) = turns.get_mut(&self.id) {
                    *count -= 1;
                }
            });
    }
}

/// The identity that holds two activations at once, if one does.
pub fn two_activations(state: &StateHandle) -> Result<(), String> {
    let alive = state.get::<Alive>("alive").unwrap_or_default();
    if let Some((id, list)) = alive.iter().find(|(_, list)| list.len() > 1) {
        return Err(format!(
            "{id} has {} activations at once: {list:?}",
            list.len()
        ));
    }
    Ok(())
}

/// At most one activation and one turn (as [`Turn`] marks them) per identity.
pub fn one_activation(state: &StateHandle) -> Result<(), String> {
    two_activations(state)?;
    let turns = state
        .get::<BTreeMap<String, u32>>("turns")
        .unwrap_or_default();
    if let Some((id, count)) = turns.iter().find(|(_, count)| **count > 1) {
        return Err(format!("{id} runs {count} turns at once"));
    }
    Ok(())
}

/// True when a failure is a broken single activation: two activations or two turns of one
/// identity at once.
pub fn single_activation_broken(failure: &str) -> bool {
    failure.contains("activations at once") || failure.contains("turns at once")
}

/// The seed count: `MOONPOOL_ACTOR_SEEDS` when set, else `default`.
pub fn seeds(default: usize) -> usize {
    std::env::var("MOONPOOL_ACTOR_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The cluster suites' knobs: grants of 2 s, a drift bound of 350 ms (the clocks are off by up
/// to 200 ms and sleeps end up to 100 ms late), membership leases of 2 s, heartbeats every
/// 250 ms, a failure timeout of 1.5 s; with `planted`, the planted renewal bug.
pub fn cluster_config(planted: bool) -> ClusterConfig {
    let mut config = ClusterConfig::default();
    config.grant_duration = Duration::from_secs(2);
    config.max_clock_drift = Duration::from_millis(350);
    config.membership_lease = Duration::from_secs(2);
    config.heartbeat_interval = Duration::from_millis(250);
    config.failure_timeout = Duration::from_millis(1500);
    if planted {
        config.plant_bug(PlantedBug::RenewalWithoutDriftMargin);
    }
    config
}

/// Prints a report and the wall time since `started`.
pub fn report(report: &SimulationReport, started: std::time::Instant) {
    println!("{report}");
    println!(
        "{} seeds in {:.1} s of wall time",
        report.seeds_run(),
        started.elapsed().as_secs_f64()
    );
}
