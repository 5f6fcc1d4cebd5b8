//! A changing membership on Tokio over real loopback TCP: a cluster process (`ClusterServer`,
//! its membership table and the actors' state in files of a temporary directory) and three nodes
//! that join it, serve calls, and leave; the table's versions move and the nodes follow them;
//! state written before a node left is read after. A bad drift bound is a typed error.
#![cfg(feature = "actors")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default,
    missing_docs
)]

use std::time::Duration;

use moonpool::actors::{
    Actor, ActorClient, ActorContext, ActorError, ActorNode, ActorStartError, MembershipView,
    PersistentState, Placement, StorageMembershipTable, actor_impl,
};
use moonpool::{Providers, TimeProvider, TokioProviders, service};

mod tokio_support;
use tokio_support::{
    actor_config, cluster_config, cluster_process, eventually, gateway, listening, runtime,
};

/// A counter per key, persisted.
#[service]
pub trait Tally {
    /// Adds `by`; the new value.
    async fn add(&mut self, by: u64) -> Result<u64, String>;
}

pub struct TallyActor {
    state: PersistentState<u64>,
}

impl Actor for TallyActor {
    async fn on_activate(context: ActorContext) -> Result<Self, ActorError> {
        Ok(Self {
            state: context.load_state().await?,
        })
    }
}

#[actor_impl]
impl Tally for TallyActor {
    async fn add(&mut self, by: u64) -> Result<u64, String> {
        *self.state.state_mut() += by;
        if let Err(error) = self.state.write_state().await {
            let _ = self.state.reload().await;
            return Err(error.to_string());
        }
        Ok(*self.state.state())
    }
}

/// Adds through `client` until it answers (the new owners may be in their quiet period).
async fn add(client: &ActorClient, key: &str, by: u64) -> u64 {
    let time = TokioProviders::new().time().clone();
    let deadline = time.now() + Duration::from_secs(20);
    loop {
        match TallyRef::new(key).add(client, by).await {
            Ok(Ok(value)) => return value,
            other if time.now() < deadline => {
                let _ = other;
                time.sleep(Duration::from_millis(100)).await;
            }
            other => panic!("{key} did not answer within 20 s: {other:?}"),
        }
    }
}

#[test]
fn test_cluster_on_loopback_joins_serves_and_leaves() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let providers = TokioProviders::new();
        let process = cluster_process(dir.path()).await;
        let (table, server, cluster) = (&process.table, &process.server, process.address);
        assert_eq!(table.view().version(), 1);
        assert!(table.view().members().is_empty());

        let mut nodes = Vec::new();
        let mut addresses = Vec::new();
        let node_dirs: Vec<tempfile::TempDir> =
            (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        for node_dir in &node_dirs {
            let transport = listening().await;
            addresses.push(transport.local_address().unwrap());
            let node =
                ActorNode::builder(TokioProviders::new(), transport, MembershipView::new(0, []))
                    .config(actor_config())
                    .cluster_config(cluster_config())
                    // The directory partition's file goes there; state is at the cluster.
                    .state_dir(node_dir.path())
                    .cluster(cluster)
                    .actor::<TallyActor>(Placement::Random)
                    .start()
                    .await
                    .unwrap();
            nodes.push(node);
        }
        // Every node joins: three versions after the first, and every node follows.
        assert!(
            eventually(Duration::from_secs(10), || table.view().members().len()
                == 3)
            .await,
            "{:?}",
            table.view()
        );
        let joined = table.view().version();
        assert_eq!(joined, 4, "{:?}", server.table().view());
        assert!(
            eventually(Duration::from_secs(10), || nodes
                .iter()
                .all(|node| node.membership_version() == joined))
            .await
        );

        let gateway = gateway(&addresses);
        for expected in 1..=5 {
            assert_eq!(add(&gateway, "visits", 1).await, expected);
        }

        // A node leaves: a new version without it, which the others follow; the counter's
        // state is at the cluster process, so it continues where it was.
        let leaving = nodes.pop().unwrap();
        let left = leaving.address();
        assert_eq!(leaving.shutdown().await, 0);
        let after = table.view();
        assert_eq!(after.version(), joined + 1);
        assert!(!after.contains(left));
        assert!(
            eventually(Duration::from_secs(10), || nodes
                .iter()
                .all(|node| node.membership_version() == after.version()))
            .await
        );
        assert_eq!(add(&gateway, "visits", 1).await, 6);

        // The table is in its file: a reload knows the latest version.
        let reloaded = StorageMembershipTable::load(
            providers.clone(),
            dir.path().join("membership.json"),
            [],
            cluster_config().failure_timeout,
        )
        .await
        .unwrap();
        assert_eq!(reloaded.view(), after);
        for node in nodes {
            node.shutdown().await;
        }
    });
}

#[test]
fn test_a_bad_drift_bound_is_a_typed_error() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut config = cluster_config();
        config.max_clock_drift = Duration::from_millis(300);
        let started = ActorNode::builder(
            TokioProviders::new(),
            listening().await,
            MembershipView::new(0, []),
        )
        .cluster_config(config)
        .cluster("127.0.0.1:9".parse().unwrap())
        .actor::<TallyActor>(Placement::Random)
        .start()
        .await;
        match started {
            Err(ActorStartError::ClusterConfig(error)) => {
                assert_eq!(error.field, "max_clock_drift");
                assert!(error.to_string().contains("300ms"), "{error}");
            }
            other => panic!("expected a ClusterConfig error, got {other:?}"),
        }
    });
}

#[test]
fn test_membership_table_versions_refusals_and_corruption() {
    use moonpool::UID;
    use moonpool::actors::{MembershipError, MembershipTable};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("membership.json");
        let node = |port: u16| -> moonpool::NetworkAddress {
            format!("127.0.0.1:{port}").parse().unwrap()
        };
        let (a, b, c) = (node(1), node(2), node(3));
        let timeout = Duration::from_millis(200);
        let table = StorageMembershipTable::load(TokioProviders::new(), &path, [a, b], timeout)
            .await
            .unwrap();
        assert_eq!(table.view(), MembershipView::new(1, [a, b]));
        // Every change is a new version; a change that changes nothing is none.
        assert_eq!(
            table.join(c).await.unwrap(),
            MembershipView::new(2, [a, b, c])
        );
        assert_eq!(table.join(c).await.unwrap().version(), 2);
        assert_eq!(
            table.leave(b).await.unwrap(),
            MembershipView::new(3, [a, c])
        );
        assert_eq!(table.leave(b).await.unwrap().version(), 3);
        // A member that heartbeats is not declared dead on a suspicion.
        table.heartbeat(a, UID::new(1, 1)).await.unwrap();
        match table.declare_dead(a, c).await {
            Err(MembershipError::Refused { node, reason }) => {
                assert_eq!(node, a);
                assert!(reason.contains("heartbeat"), "{reason}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Silent for longer than the failure timeout: removed.
        TokioProviders::new()
            .time()
            .sleep(Duration::from_millis(300))
            .await;
        assert_eq!(
            table.declare_dead(a, c).await.unwrap(),
            MembershipView::new(4, [c])
        );
        // The file keeps the latest version; a corrupt file is a typed error naming it.
        let reloaded = StorageMembershipTable::load(TokioProviders::new(), &path, [], timeout)
            .await
            .unwrap();
        assert_eq!(reloaded.view(), MembershipView::new(4, [c]));
        std::fs::write(&path, b"{not json").unwrap();
        match StorageMembershipTable::load(TokioProviders::new(), &path, [], timeout).await {
            Err(MembershipError::Storage { reason }) => {
                assert!(reason.contains("membership.json"), "{reason}");
            }
            other => panic!("expected a storage error, got {other:?}"),
        }
    });
}
