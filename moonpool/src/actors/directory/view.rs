//! Moving a partition to a new membership view: dropping the entries it no longer owns and
//! starting quiet periods for the identities it may have gained.

use std::collections::BTreeSet;
use std::time::Duration;

use moonpool_core::{NetworkAddress, StorageProvider};

use super::DirectoryPartition;
use crate::actors::error::ActorError;
use crate::actors::identity::ActorId;
use crate::actors::membership::MembershipView;

impl<S: StorageProvider> DirectoryPartition<S> {
    /// Moves the partition to membership view `view` (from `previous`, the view it last acted on,
    /// if known): drops the entries `me` no longer owns (all of them unless `view` directly
    /// follows `previous`), and starts a quiet period of `quiet` from `now` when `me` may have
    /// gained identities. Returns how many entries were dropped.
    pub(crate) async fn adopt_view(
        &self,
        me: NetworkAddress,
        view: &MembershipView,
        previous: Option<&MembershipView>,
        now: Duration,
        quiet: Duration,
    ) -> Result<usize, ActorError> {
        let _turn = self.disk.lock().await;
        let (table, dropped) = {
            let mut memory = self.memory()?;
            if view.version() <= memory.view && previous.is_some() {
                return Ok(0);
            }
            let follows = previous.is_some_and(|p| p.version() + 1 == view.version())
                || memory.view == view.version();
            // With rendezvous hashing a member gains identities when another member leaves, or
            // when it joins itself.
            let gained = match previous {
                Some(p) if follows => {
                    !p.contains(me) || p.members().iter().any(|m| !view.contains(*m))
                }
                _ => !follows,
            };
            if gained {
                // Only identities this node did not own under `previous` may have been granted
                // elsewhere (all of them when versions were skipped).
                let previous = previous.filter(|_| follows).cloned();
                memory.quiet.retain(|(_, until)| now < *until);
                memory.quiet.push((previous, now.saturating_add(quiet)));
            }
            let before = memory.entries.len();
            memory
                .entries
                .retain(|id, _| follows && view.owner(id).is_ok_and(|owner| owner == me));
            let dropped = before - memory.entries.len();
            let kept: BTreeSet<ActorId> = memory.entries.keys().cloned().collect();
            memory.revoking.retain(|id| kept.contains(id));
            memory.view = view.version();
            (memory.table(), dropped)
        };
        if dropped > 0 {
            moonpool_core::assert_sometimes!(true, "a view change drops directory entries");
        }
        self.persist(&table).await?;
        Ok(dropped)
    }
}
