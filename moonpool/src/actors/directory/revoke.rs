//! Revocation and expiry of a partition's entries: removal by anyone but the host goes through
//! revocation, or waits for the entry's hold to run out.

use std::time::Duration;

use moonpool_core::StorageProvider;

use super::DirectoryPartition;
use crate::actors::error::ActorError;
use crate::actors::identity::ActorId;
use crate::actors::wire::Entry;

impl<S: StorageProvider> DirectoryPartition<S> {
    /// Marks `entry` as being revoked; false when it is not current or already being revoked
    /// (then there is nothing for this caller to do).
    pub(crate) fn begin_revoke(&self, id: &ActorId, entry: &Entry) -> Result<bool, ActorError> {
        let mut memory = self.memory()?;
        if memory.entries.get(id).map(|record| record.entry) != Some(*entry)
            || memory.revoking.contains(id)
        {
            return Ok(false);
        }
        memory.revoking.insert(id.clone());
        Ok(true)
    }

    /// Ends a revocation: removes the entry when the host revoked it.
    pub(crate) async fn finish_revoke(
        &self,
        id: &ActorId,
        entry: &Entry,
        revoked: bool,
    ) -> Result<(), ActorError> {
        let result = if revoked {
            self.remove(id, entry, None).await
        } else {
            Ok(())
        };
        self.memory()?.revoking.remove(id);
        result
    }

    /// True when `entry` is `id`'s entry and its hold ran out at local time `now` (its host has
    /// stopped processing).
    pub(crate) fn expired(&self, id: &ActorId, entry: &Entry, now: Duration) -> bool {
        self.memory().is_ok_and(|memory| {
            memory
                .entries
                .get(id)
                .is_some_and(|record| record.entry == *entry && now >= record.hold_until)
        })
    }
}
