//! The directory partition's table: its durable part (written on every change), the records in
//! it, and what is kept only in memory (holds, revocations in progress, quiet periods).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use moonpool_core::{NetworkAddress, UID};
use serde::{Deserialize, Serialize};

use crate::actors::identity::ActorId;
use crate::actors::membership::MembershipView;
use crate::actors::wire::Entry;

/// Why the partition grants nothing right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Quiet {
    pub(crate) left: Duration,
}

/// The durable part of a partition.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Table {
    /// The last grant issued: the next one is above it.
    pub(super) last_grant: u64,
    /// The entries (a list: JSON maps take only string keys).
    pub(super) entries: Vec<(ActorId, Record)>,
    /// The membership version the entries are owned under.
    #[serde(default)]
    pub(super) view: u64,
}

/// An entry and the activation that confirmed it (none before confirmation). Every activation a
/// host starts has a fresh random id, so a late release from an activation that already ended
/// cannot remove the entry a later activation of the same grant confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Record {
    pub(super) entry: Entry,
    pub(super) activation: Option<UID>,
    /// Until when (local clock) the entry's grant may be live: not stored (a reloaded entry is
    /// held for a whole grant from the reload).
    #[serde(skip, default)]
    pub(super) hold_until: Duration,
}

#[derive(Debug, Default)]
pub(super) struct Memory {
    pub(super) last_grant: u64,
    pub(super) entries: BTreeMap<ActorId, Record>,
    /// Entries being revoked (not durable: a reboot forgets a revocation in progress, which
    /// only leaves the entry in place).
    pub(super) revoking: BTreeSet<ActorId>,
    /// Quiet periods: no new grant before `until` (local clock) of an identity this node did not
    /// own under `previous` (`None`: of any identity).
    pub(super) quiet: Vec<(Option<MembershipView>, Duration)>,
    pub(super) view: u64,
}

impl Memory {
    /// The end of the quiet period that applies to `id` at `now`, if one does.
    pub(super) fn quiet_for(
        &self,
        id: &ActorId,
        me: NetworkAddress,
        now: Duration,
    ) -> Option<Duration> {
        self.quiet
            .iter()
            .filter(|(previous, until)| {
                now < *until
                    && previous
                        .as_ref()
                        .is_none_or(|view| view.owner(id).ok() != Some(me))
            })
            .map(|(_, until)| *until)
            .max()
    }

    pub(super) fn table(&self) -> Table {
        Table {
            view: self.view,
            last_grant: self.last_grant,
            entries: self
                .entries
                .iter()
                .map(|(id, entry)| (id.clone(), *entry))
                .collect(),
        }
    }
}
