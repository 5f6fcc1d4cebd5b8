//! Floor 5, beside `node`: a node's side of a [`MembershipTable`]. Every `heartbeat_interval` the
//! node heartbeats (the answer is the view it may act on for `membership_lease` from when it
//! asked), joins when the table does not list it, pings the other members so that its
//! transport's failure monitor knows them, and asks the table to declare dead a member whose
//! connection has been failed for `failure_timeout`. A newer version moves the directory
//! partition ([`DirectoryPartition::adopt_view`](super::directory::DirectoryPartition)).

use std::sync::{Arc, Weak};
use std::time::Duration;

use moonpool_core::{NetworkAddress, Providers, TimeProvider, UID, assert_sometimes};
use moonpool_transport::AddressStatus;

use super::fencing::ClusterConfig;
use super::membership::{Adoption, MembershipTable, MembershipView};
use super::node::NodeInner;

/// The first view the table answers (joining if this node is not in it), and the local time the
/// answering request was sent. Retries every heartbeat interval until the table answers.
pub(crate) async fn first_view<P: Providers>(
    providers: &P,
    table: &dyn MembershipTable,
    me: NetworkAddress,
    incarnation: UID,
    config: &ClusterConfig,
) -> (MembershipView, Duration) {
    let time = providers.time();
    loop {
        let sent = time.timer();
        if let Ok(view) = table.heartbeat(me, incarnation).await {
            if view.contains(me) {
                return (view, sent);
            }
            let sent = time.timer();
            if let Ok(view) = table.join(me).await {
                assert_sometimes!(true, "a node joins the membership table");
                return (view, sent);
            }
        }
        time.sleep(config.heartbeat_interval).await;
    }
}

/// Takes a view the table answered to a request sent at local `sent`.
pub(crate) async fn take<P: Providers>(node: &NodeInner<P>, view: MembershipView, sent: Duration) {
    let until = sent.saturating_add(node.cluster.membership_lease);
    if let Adoption::Newer { previous } = node.view.adopt(view.clone(), until) {
        assert_sometimes!(true, "a node adopts a newer membership version");
        let now = node.timer();
        // A failure leaves the partition on the old version; it refuses nothing it should not
        // grant (entries it no longer owns are refused by the ownership check).
        let _ = node
            .directory
            .adopt_view(
                node.me,
                &view,
                Some(&previous),
                now,
                node.cluster.quiet_period(),
            )
            .await;
    }
}

/// The heartbeat loop; ends when the node is gone.
pub(crate) async fn run<P: Providers>(node: Weak<NodeInner<P>>, table: Arc<dyn MembershipTable>) {
    loop {
        let Some(inner) = node.upgrade() else {
            return;
        };
        beat(&inner, table.as_ref()).await;
        let pause = inner.cluster.heartbeat_interval;
        let time = inner.providers.time().clone();
        drop(inner);
        time.sleep(pause).await;
    }
}

async fn beat<P: Providers>(node: &NodeInner<P>, table: &dyn MembershipTable) {
    let sent = node.timer();
    match table.heartbeat(node.me, node.incarnation).await {
        Ok(view) if view.contains(node.me) => take(node, view, sent).await,
        Ok(view) => rejoin(node, table, view, sent).await,
        Err(_) => unanswered(),
    }
    let view = node.view.current();
    let others: Vec<NetworkAddress> = view
        .members()
        .iter()
        .copied()
        .filter(|member| *member != node.me)
        .collect();
    let time = node.providers.time().clone();
    let interval = node.cluster.heartbeat_interval;
    let pings = others.iter().map(|member| {
        let ping = node.transport.ping(*member);
        let time = time.clone();
        async move {
            let _ = time.timeout(interval, ping).await;
        }
    });
    futures::future::join_all(pings).await;
    let monitor = node.transport.failure_monitor();
    let now = time.now();
    for member in others {
        if let AddressStatus::Failed { since } = monitor.status(&member)
            && now.saturating_sub(since) >= node.cluster.failure_timeout
        {
            suspect(node, table, member).await;
        }
    }
}

// Each assertion below has a function of its own: a seed that never reaches one keeps it out
// of its coverage scope.

fn unanswered() {
    assert_sometimes!(true, "a heartbeat gets no answer");
}

/// Removed (declared dead while it could not heartbeat): the view still fences what it owned;
/// join again.
async fn rejoin<P: Providers>(
    node: &NodeInner<P>,
    table: &dyn MembershipTable,
    view: MembershipView,
    sent: Duration,
) {
    take(node, view, sent).await;
    let sent = node.timer();
    if let Ok(view) = table.join(node.me).await {
        assert_sometimes!(true, "a removed node joins again");
        take(node, view, sent).await;
    }
}

/// `member`'s connection has been failed for the failure timeout: ask the table.
async fn suspect<P: Providers>(
    node: &NodeInner<P>,
    table: &dyn MembershipTable,
    member: NetworkAddress,
) {
    let sent = node.timer();
    match table.declare_dead(member, node.me).await {
        Ok(view) => {
            if !view.contains(member) {
                declared();
            }
            take(node, view, sent).await;
        }
        Err(_) => refused(),
    }
}

fn declared() {
    assert_sometimes!(true, "a failed member is declared dead");
}

fn refused() {
    assert_sometimes!(true, "the table refuses to declare a member dead");
}
