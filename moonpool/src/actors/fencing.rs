//! Floor 1: the time bounds that fence activations, and their arithmetic.
//!
//! Every decision below reads the node's local clock (`TimeProvider::timer`), which may be off
//! the real time by at most [`ClusterConfig::max_clock_drift`] (the bound also has to cover how
//! late a timer may fire). Write `D` for that bound, `G` for
//! [`grant_duration`](ClusterConfig::grant_duration), `L` for
//! [`membership_lease`](ClusterConfig::membership_lease):
//!
//! - a host that sent a successful renewal when its clock read `s` processes messages only while
//!   its clock reads below `s + G`, so it stops by real time `S + G + D` (where `S <= s` is when
//!   it sent);
//! - the owner that answered at local `o` (real `O >= S`, `o >= O`) considers the grant live until
//!   its clock reads `o + G + M` with the margin `M = 2D`, which is not before real `S + G + D`:
//!   it never grants the identity again while the old activation may still process;
//! - a node acts on a membership view only while its clock is below `h + L` (`h`: when it sent
//!   the heartbeat the view answered), so by real `C + L + D` after the view's successor was
//!   committed at `C`, nobody acts on the old view; a node that gains identities with a new view
//!   waits [`quiet_period`](ClusterConfig::quiet_period) `= L + G + 4D` on its clock before
//!   granting them: the old owner's last renewal was answered by real `C + L + D`, that grant
//!   ends by `C + L + G + 2D`, and the wait ends no earlier than real `C + L + G + 3D` (the new
//!   owner learned the view at local `b >= C` and its clock is at most `D` ahead).

use std::time::Duration;

/// The fencing knobs of a cluster (grant leases, membership leases, failure detection).
///
/// Build it from [`ClusterConfig::default`] and assign fields; [`validate`](Self::validate) names
/// the first bad value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// How long one successful renewal lets an activation process messages (on its host's clock).
    /// Hosts renew every quarter of it. Default 4 s.
    pub grant_duration: Duration,
    /// The largest difference between any node's clock and real time, plus how late a timer may
    /// fire. Grants and quiet periods add margins of twice this. Default 250 ms.
    pub max_clock_drift: Duration,
    /// How long a membership view answered by the table may be acted on (from when the heartbeat
    /// was sent). Default 4 s.
    pub membership_lease: Duration,
    /// How often a node heartbeats to the membership table (and pings the other members).
    /// Default 500 ms.
    pub heartbeat_interval: Duration,
    /// How long a member's connection must have failed (the transport's failure monitor) before
    /// a node asks the table to declare it dead; the table also refuses while the member still
    /// heartbeats within this time. Default 3 s.
    pub failure_timeout: Duration,
    /// Test-only: see [`ClusterConfig::plant_bug`].
    pub(crate) planted: Option<PlantedBug>,
}

/// A deliberately wrong variant of the fencing rules, for checking that the tests catch it.
/// Only reachable through [`ClusterConfig::plant_bug`].
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlantedBug {
    /// Renewal without margins: owners hold a renewed grant for exactly `grant_duration` (no
    /// drift margin, `M = 0`), and hosts count each renewal from when its answer arrived
    /// instead of from when the request left (no margin for the round trip).
    RenewalWithoutDriftMargin,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            grant_duration: Duration::from_secs(4),
            max_clock_drift: Duration::from_millis(250),
            membership_lease: Duration::from_secs(4),
            heartbeat_interval: Duration::from_millis(500),
            failure_timeout: Duration::from_secs(3),
            planted: None,
        }
    }
}

/// A bad [`ClusterConfig`] value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cluster configuration: {field} = {value}: {reason}")]
pub struct ClusterConfigError {
    /// The field.
    pub field: &'static str,
    /// Its value, printed.
    pub value: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl ClusterConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// The first bad value, named.
    pub fn validate(&self) -> Result<(), ClusterConfigError> {
        let bad = |field, value: Duration, reason| {
            Err(ClusterConfigError {
                field,
                value: format!("{value:?}"),
                reason,
            })
        };
        for (field, value) in [
            ("grant_duration", self.grant_duration),
            ("membership_lease", self.membership_lease),
            ("heartbeat_interval", self.heartbeat_interval),
            ("failure_timeout", self.failure_timeout),
        ] {
            if value.is_zero() {
                return bad(field, value, "must be more than zero");
            }
        }
        if self.max_clock_drift.saturating_mul(4) >= self.grant_duration {
            return bad(
                "max_clock_drift",
                self.max_clock_drift,
                "must be less than a quarter of grant_duration (renewals would not keep up)",
            );
        }
        if self.heartbeat_interval.saturating_mul(2) >= self.membership_lease {
            return bad(
                "heartbeat_interval",
                self.heartbeat_interval,
                "must be less than half of membership_lease",
            );
        }
        if self.max_clock_drift.saturating_mul(4) >= self.membership_lease {
            return bad(
                "max_clock_drift",
                self.max_clock_drift,
                "must be less than a quarter of membership_lease",
            );
        }
        Ok(())
    }

    /// Plants `bug` (tests only: it breaks single activation on purpose).
    #[doc(hidden)]
    pub fn plant_bug(&mut self, bug: PlantedBug) {
        self.planted = Some(bug);
    }

    /// True with the planted renewal bug (hosts count renewals from the answer).
    pub(crate) fn planted_renewal(&self) -> bool {
        self.planted == Some(PlantedBug::RenewalWithoutDriftMargin)
    }

    /// The owner's margin on top of a grant: `2 * max_clock_drift` (zero with the planted bug).
    pub fn grant_margin(&self) -> Duration {
        if self.planted == Some(PlantedBug::RenewalWithoutDriftMargin) {
            Duration::ZERO
        } else {
            self.max_clock_drift.saturating_mul(2)
        }
    }

    /// How long an owner holds a grant it renewed, on its clock: `grant_duration + grant_margin`.
    pub fn grant_hold(&self) -> Duration {
        self.grant_duration.saturating_add(self.grant_margin())
    }

    /// How often a host renews: a quarter of the grant.
    pub fn renew_interval(&self) -> Duration {
        self.grant_duration / 4
    }

    /// How long a node that gains identities with a new membership view (or starts) waits before
    /// granting them: `membership_lease + grant_duration + 4 * max_clock_drift`.
    pub fn quiet_period(&self) -> Duration {
        self.membership_lease
            .saturating_add(self.grant_duration)
            .saturating_add(self.max_clock_drift.saturating_mul(4))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cluster_config_bounds_are_checked_and_named() {
        assert_eq!(ClusterConfig::default().validate(), Ok(()));
        let config = ClusterConfig {
            max_clock_drift: Duration::from_secs(1),
            ..ClusterConfig::default()
        };
        let error = config.validate().unwrap_err();
        assert_eq!(error.field, "max_clock_drift");
        assert!(
            error.to_string().contains("max_clock_drift = 1s"),
            "{error}"
        );
        let config = ClusterConfig {
            grant_duration: Duration::ZERO,
            ..ClusterConfig::default()
        };
        assert_eq!(config.validate().unwrap_err().field, "grant_duration");
        let config = ClusterConfig {
            heartbeat_interval: Duration::from_secs(2),
            ..ClusterConfig::default()
        };
        assert_eq!(config.validate().unwrap_err().field, "heartbeat_interval");
        let config = ClusterConfig::default();
        assert_eq!(config.grant_margin(), Duration::from_millis(500));
        assert_eq!(config.grant_hold(), Duration::from_millis(4500));
        assert_eq!(config.quiet_period(), Duration::from_millis(9000));
        let mut planted = ClusterConfig::default();
        planted.plant_bug(PlantedBug::RenewalWithoutDriftMargin);
        assert_eq!(planted.grant_margin(), Duration::ZERO);
    }
}
