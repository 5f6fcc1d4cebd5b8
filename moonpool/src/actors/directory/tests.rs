//! Unit tests of the directory partition (on Tokio's storage, in temp dirs).

#![allow(clippy::unwrap_used)]

use super::*;
use crate::actors::membership::MembershipView;
use moonpool_core::TokioStorageProvider;

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

const HOLD: Duration = Duration::from_secs(4);

async fn register(
    partition: &DirectoryPartition<TokioStorageProvider>,
    id: &ActorId,
    proposal: NetworkAddress,
    now: Duration,
) -> Registration {
    partition
        .register(id.clone(), proposal, 1, now, HOLD)
        .await
        .unwrap()
        .unwrap()
}

#[test]
fn test_partition_grants_once_fences_releases_and_survives_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("actor-directory.json");
    let me: NetworkAddress = "10.0.0.1:1".parse().unwrap();
    let host: NetworkAddress = "10.0.0.2:1".parse().unwrap();
    let id = ActorId::new("A", 1);
    let (first, second) = (UID::new(1, 1), UID::new(2, 2));
    let t = Duration::ZERO;
    let base = 1u64 << 32;
    block_on(async {
        let storage = TokioStorageProvider::new();
        let partition = DirectoryPartition::load(me, storage.clone(), path.clone(), t, HOLD, t)
            .await
            .unwrap();
        let made = register(&partition, &id, host, t).await;
        assert!(made.created);
        assert_eq!(made.entry.grant, base, "the first grant of version 1");
        // A second registration, elsewhere, finds the same entry.
        let again = register(&partition, &id, me, t).await;
        assert_eq!((again.created, again.entry), (false, made.entry));
        let entry = made.entry;
        assert!(
            partition
                .confirm(&id, &entry, first, t, HOLD)
                .await
                .unwrap()
        );
        // A later activation of the same grant confirms; the first one's late release
        // must not remove the entry.
        assert!(
            partition
                .confirm(&id, &entry, second, t, HOLD)
                .await
                .unwrap()
        );
        partition
            .release(&id, &entry, first, HOLD * 2)
            .await
            .unwrap();
        assert_eq!(partition.len(), 1);
        // Revocation in progress refuses confirmation; a refused revocation keeps it.
        assert!(partition.begin_revoke(&id, &entry).unwrap());
        assert!(!partition.begin_revoke(&id, &entry).unwrap());
        assert!(
            !partition
                .confirm(&id, &entry, second, t, HOLD)
                .await
                .unwrap()
        );
        partition.finish_revoke(&id, &entry, false).await.unwrap();
        assert!(
            partition
                .confirm(&id, &entry, second, t, HOLD)
                .await
                .unwrap()
        );
        // Its own release removes it, once the hold has run out (not before: an activation
        // of the same grant may have confirmed since and still run).
        partition.release(&id, &entry, second, t).await.unwrap();
        assert_eq!(partition.len(), 1);
        partition.release(&id, &entry, second, HOLD).await.unwrap();
        assert_eq!(partition.len(), 0);
        assert!(
            !partition
                .confirm(&id, &entry, second, t, HOLD)
                .await
                .unwrap()
        );
        let next = register(&partition, &id, host, t).await;
        assert_eq!(next.entry.grant, base + 1);
        drop(partition);
        // Reloaded from disk: the entry and the grant counter are back.
        let reloaded = DirectoryPartition::load(me, storage, path, t, HOLD, t)
            .await
            .unwrap();
        assert_eq!(reloaded.len(), 1);
        let found = register(&reloaded, &id, me, t).await;
        assert_eq!((found.created, found.entry), (false, next.entry));
        let other = register(&reloaded, &ActorId::new("A", 2), me, t).await;
        assert_eq!(
            other.entry.grant,
            base + 2,
            "grants are never reused after a reload"
        );
        // A grant not renewed within its hold is replaced (its host has stopped).
        assert!(!reloaded.expired(&id, &next.entry, HOLD - Duration::from_millis(1)));
        assert!(reloaded.expired(&id, &next.entry, HOLD));
        let replaced = register(&reloaded, &id, me, HOLD).await;
        assert!(replaced.created);
        assert_eq!(replaced.entry.grant, base + 3);
    });
}

#[test]
fn test_partition_drops_moved_entries_and_keeps_quiet_after_a_member_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("actor-directory.json");
    let a: NetworkAddress = "10.0.0.1:1".parse().unwrap();
    let b: NetworkAddress = "10.0.0.2:1".parse().unwrap();
    let c: NetworkAddress = "10.0.0.3:1".parse().unwrap();
    let t = Duration::ZERO;
    let quiet = Duration::from_secs(10);
    block_on(async {
        let storage = TokioStorageProvider::new();
        let partition = DirectoryPartition::load(a, storage, path, t, HOLD, t)
            .await
            .unwrap();
        let v1 = MembershipView::new(1, [a, b]);
        partition.adopt_view(a, &v1, None, t, quiet).await.unwrap();
        // Version 1 is new to the partition (it had none): quiet.
        let id = (0..100)
            .map(|key| ActorId::new("A", key))
            .find(|id| v1.owner(id).unwrap() == a)
            .unwrap();
        let refused = partition.register(id.clone(), a, 1, t, HOLD).await.unwrap();
        assert_eq!(refused, Err(Quiet { left: quiet }));
        let made = partition
            .register(id.clone(), a, 1, quiet, HOLD)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(made.entry.grant, 1 << 32);
        // A join (version 2) that keeps `id` at `a`: kept, no quiet.
        let v2 = MembershipView::new(2, [a, b, c]);
        partition
            .adopt_view(a, &v2, Some(&v1), quiet, quiet)
            .await
            .unwrap();
        let kept = v2.owner(&id).unwrap() == a;
        assert_eq!(partition.len(), usize::from(kept));
        // A leave (version 3): `a` gains what `b` owned, and is quiet for those only.
        let v3 = MembershipView::new(3, [a, c]);
        let now = quiet + Duration::from_secs(1);
        partition
            .adopt_view(a, &v3, Some(&v2), now, quiet)
            .await
            .unwrap();
        let keys = 0..1000;
        let gained = keys
            .clone()
            .map(|key| ActorId::new("A", key))
            .find(|id| v2.owner(id).unwrap() == b && v3.owner(id).unwrap() == a)
            .unwrap();
        assert!(matches!(
            partition.register(gained, a, 3, now, HOLD).await.unwrap(),
            Err(Quiet { .. })
        ));
        let kept = keys
            .map(|key| ActorId::new("A", key + 1000))
            .find(|id| v2.owner(id).unwrap() == a && v3.owner(id).unwrap() == a)
            .unwrap();
        assert!(
            partition
                .register(kept, a, 3, now, HOLD)
                .await
                .unwrap()
                .is_ok(),
            "an identity owned all along is granted at once"
        );
        // A member that joins gains identities: quiet for all it owns now.
        let joiner = DirectoryPartition::load(
            b,
            TokioStorageProvider::new(),
            dir.path().join("b.json"),
            now,
            HOLD,
            now,
        )
        .await
        .unwrap();
        joiner.adopt_view(b, &v3, None, now, quiet).await.unwrap();
        let back = MembershipView::new(4, [a, b, c]);
        joiner
            .adopt_view(b, &back, Some(&v3), now + quiet, quiet)
            .await
            .unwrap();
        let regained = (0..1000)
            .map(|key| ActorId::new("A", key))
            .find(|id| back.owner(id).unwrap() == b)
            .unwrap();
        assert!(matches!(
            joiner
                .register(regained, b, 4, now + quiet, HOLD)
                .await
                .unwrap(),
            Err(Quiet { .. })
        ));
        // Skipping versions drops everything.
        let v5 = MembershipView::new(5, [a, c]);
        partition
            .adopt_view(a, &v5, Some(&v3), now, quiet)
            .await
            .unwrap();
        assert_eq!(partition.len(), 0);
    });
}
