//! Floor 5, beside `node`: a node's side of a [`MembershipTable`]. Every `heartbeat_interval` the
//! node heartbeats (the answer is the view it may act on for `membership_lease` from when it
//! asked), joins when the table does not list it, pings the other members so that its
//! transport's failure monitor knows them, and asks the table to declare dead a member whose
//! connection has been failed for `failure_timeout`. A newer version moves the directory
//! partition ([`DirectoryPartition::adopt_view`](super::directory::DirectoryPartition)).

use std::sync::{Arc, Weak};
use std::time::Duration;

use moonpool_core::{NetworkAddress, Providers, TimeProvider, assert_sometimes};
use moonpool_transport::AddressStatus;

use super::membership::{MembershipTable, MembershipView};
use super::node::NodeInner;

/// Takes a view the table answered to a request sent at local `sent`. A newer version moves
/// the directory partition first; if that fails (its disk), the node stays on the old version
/// (whose lease then runs out: it stops acting as an owner) and tries again on the next beat.
pub(crate) async fn take<P: Providers>(node: &NodeInner<P>, view: MembershipView, sent: Duration) {
    let until = sent.saturating_add(node.cluster.membership_lease);
    let current = node.view.current();
    if view.version() > current.version() {
        // Version 0 is the placeholder a node starts with: it knows nothing before.
        let previous = Some(current).filter(|previous| previous.version() > 0);
        let moved = node
            .directory
            .adopt_view(
                node.me,
                &view,
                previous.as_ref(),
                node.timer(),
                node.cluster.quiet_period(),
            )
            .await;
        if moved.is_err() {
            return;
        }
        if previous.is_some() {
            assert_sometimes!(true, "a node adopts a newer membership version");
        }
    }
    node.view.adopt(view, until);
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

/// Without a table: pings the other members every heartbeat interval, so that the transport
/// keeps connections to them and notices a restarted member (a request its old incarnation
/// answered "endpoint not found" makes the transport refuse that endpoint until it sees the new
/// incarnation, which only a connection shows). Ends when the node is gone.
pub(crate) async fn keepalive<P: Providers>(node: Weak<NodeInner<P>>) {
    loop {
        let Some(inner) = node.upgrade() else {
            return;
        };
        ping_others(&inner).await;
        let pause = inner.cluster.heartbeat_interval;
        let time = inner.providers.time().clone();
        drop(inner);
        time.sleep(pause).await;
    }
}

/// Pings every other member (answers or not within a heartbeat interval); the members pinged.
async fn ping_others<P: Providers>(node: &NodeInner<P>) -> Vec<NetworkAddress> {
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
    others
}

async fn beat<P: Providers>(node: &NodeInner<P>, table: &dyn MembershipTable) {
    let sent = node.timer();
    match table.heartbeat(node.me, node.incarnation).await {
        Ok(view) if view.contains(node.me) => take(node, view, sent).await,
        Ok(view) if node.view.current().version() == 0 => join(node, table, view, sent).await,
        Ok(view) => rejoin(node, table, view, sent).await,
        Err(_) => unanswered(),
    }
    let others = ping_others(node).await;
    let time = node.providers.time().clone();
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

/// A starting node that is not a member yet.
async fn join<P: Providers>(
    node: &NodeInner<P>,
    table: &dyn MembershipTable,
    view: MembershipView,
    sent: Duration,
) {
    take(node, view, sent).await;
    let sent = node.timer();
    if let Ok(view) = table.join(node.me).await {
        assert_sometimes!(true, "a node joins the membership table");
        take(node, view, sent).await;
    }
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
