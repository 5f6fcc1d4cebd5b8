//! Durable reminders and activation-local timers on Tokio over real loopback TCP, with the
//! cluster process's tables in real files of a temporary directory: a periodic reminder fires,
//! survives in its file (a reload of the table lists it), keeps firing on the other node after
//! the node that delivered it leaves, and stops once unregistered; a timer ticks and stops when
//! its activation idles out; the table's operations, reload and corruption; a node without a
//! reminder table and a bad reminder configuration are typed errors.
#![cfg(feature = "actors")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default,
    missing_docs
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool::actors::{
    Actor, ActorConfig, ActorContext, ActorError, ActorId, ActorNode, ActorStartError,
    MembershipView, Placement, ReminderConfig, ReminderError, ReminderServer, ReminderTable,
    ReminderTick, RemoteReminderTable, StorageReminderTable, TimerTick, actor_impl,
};
use moonpool::{NetworkAddress, Providers, TimeProvider, TokioProviders, service};

mod tokio_support;
use tokio_support::{
    actor_config, cluster_config, cluster_process, eventually, gateway, listening, runtime, sleep,
};

/// What the actors saw: (what, name, tick or count, node).
#[derive(Default)]
pub struct Log {
    seen: Mutex<Vec<(String, String, u64, NetworkAddress)>>,
    node: Mutex<Option<NetworkAddress>>,
}

pub struct Shared {
    log: Arc<Log>,
    node: NetworkAddress,
}

impl Log {
    fn count(&self, what: &str, name: &str) -> usize {
        self.entries(what, name).len()
    }

    fn entries(&self, what: &str, name: &str) -> Vec<(String, String, u64, NetworkAddress)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|entry| entry.0 == what && entry.1 == name)
            .cloned()
            .collect()
    }
}

/// Registers reminders and starts timers on request.
#[service]
pub trait Beeper {
    /// Registers reminder `name`.
    async fn arm(&mut self, name: String, delay_ms: u64, period_ms: u64) -> Result<(), String>;
    /// Removes reminder `name`.
    async fn disarm(&mut self, name: String) -> Result<bool, String>;
    /// Starts a periodic timer.
    async fn timer(&mut self, period_ms: u64) -> Result<u64, String>;
}

pub struct BeeperActor {
    context: ActorContext,
    shared: Arc<Shared>,
}

impl Actor for BeeperActor {
    async fn on_activate(context: ActorContext) -> Result<Self, ActorError> {
        let shared = context.data::<Shared>().unwrap();
        Ok(Self { context, shared })
    }

    async fn receive_reminder(&mut self, reminder: ReminderTick) {
        let entry = (
            "reminder".to_string(),
            reminder.name,
            reminder.tick,
            self.shared.node,
        );
        self.shared.log.seen.lock().unwrap().push(entry);
    }

    async fn receive_timer(&mut self, tick: TimerTick) {
        let entry = ("timer".to_string(), tick.name, tick.count, self.shared.node);
        self.shared.log.seen.lock().unwrap().push(entry);
        *self.shared.log.node.lock().unwrap() = Some(self.shared.node);
    }
}

#[actor_impl]
impl Beeper for BeeperActor {
    async fn arm(&mut self, name: String, delay_ms: u64, period_ms: u64) -> Result<(), String> {
        self.context
            .register_reminder(
                &name,
                Duration::from_millis(delay_ms),
                Some(Duration::from_millis(period_ms)),
            )
            .await
            .map(|_| ())
            .map_err(|error| error.to_string())
    }

    async fn disarm(&mut self, name: String) -> Result<bool, String> {
        self.context
            .unregister_reminder(&name)
            .await
            .map_err(|error| error.to_string())
    }

    async fn timer(&mut self, period_ms: u64) -> Result<u64, String> {
        self.context
            .start_timer(
                "tick",
                Duration::from_millis(period_ms),
                Some(Duration::from_millis(period_ms)),
            )
            .map_err(|error| error.to_string())
    }
}

/// The shared actor settings, with activations idling out after 600 ms.
fn reminder_actor_config() -> ActorConfig {
    let mut config = actor_config();
    config.idle_timeout = Duration::from_millis(600);
    config
}

fn reminder_config() -> ReminderConfig {
    let mut config = ReminderConfig::default();
    config.poll_interval = Duration::from_millis(100);
    config
}

/// Calls until it answers (a new owner may be in its quiet period), for at most 20 s.
async fn until_ok<T, F, Fut>(mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ActorError>>,
{
    let time = TokioProviders::new().time().clone();
    let deadline = time.now() + Duration::from_secs(20);
    loop {
        match call().await {
            Ok(value) => return value,
            Err(error) if time.now() < deadline => {
                let _ = error;
                sleep(100).await;
            }
            Err(error) => panic!("no answer within 20 s: {error}"),
        }
    }
}

#[test]
fn test_reminders_and_timers_on_loopback() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let providers = TokioProviders::new();
        let reminders =
            StorageReminderTable::load(providers.clone(), dir.path().join("reminders.json"))
                .await
                .unwrap();
        let process = cluster_process(dir.path()).await;
        let (table, cluster_transport, cluster) =
            (&process.table, &process.transport, process.address);
        let _reminder_server =
            ReminderServer::serve(cluster_transport, Arc::new(reminders.clone())).unwrap();

        let log = Arc::new(Log::default());
        let mut nodes = Vec::new();
        let mut addresses = Vec::new();
        let node_dirs: Vec<tempfile::TempDir> =
            (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        for node_dir in &node_dirs {
            let transport = listening().await;
            let me = transport.local_address().unwrap();
            addresses.push(me);
            let remote =
                RemoteReminderTable::new(transport.clone(), cluster, Duration::from_secs(1));
            let node =
                ActorNode::builder(TokioProviders::new(), transport, MembershipView::new(0, []))
                    .config(reminder_actor_config())
                    .cluster_config(cluster_config())
                    .state_dir(node_dir.path())
                    .cluster(cluster)
                    .reminders(Arc::new(remote), reminder_config())
                    .actor::<BeeperActor>(Placement::Random)
                    .data(Shared {
                        log: Arc::clone(&log),
                        node: me,
                    })
                    .start()
                    .await
                    .unwrap();
            nodes.push(node);
        }
        assert!(
            eventually(Duration::from_millis(10_000), || table
                .view()
                .members()
                .len()
                == 2)
            .await
        );
        let gateway = gateway(&addresses);
        let beeper = BeeperRef::new("b");
        until_ok(|| beeper.arm(&gateway, "beat".into(), 100, 300))
            .await
            .unwrap();
        assert!(
            eventually(Duration::from_millis(10_000), || log
                .count("reminder", "beat")
                >= 3)
            .await
        );

        // The registration is in the file: a reload of the table has it.
        let reloaded =
            StorageReminderTable::load(providers.clone(), dir.path().join("reminders.json"))
                .await
                .unwrap();
        assert_eq!(reloaded.names(&ActorId::new("Beeper", "b")), ["beat"]);

        // The owner of the identity's directory partition (the node that delivers its
        // reminders) leaves: the other one delivers from then on.
        let owner = table.view().owner(&ActorId::new("Beeper", "b")).unwrap();
        let index = nodes
            .iter()
            .position(|node| node.address() == owner)
            .unwrap();
        let leaving = nodes.remove(index);
        let left = leaving.address();
        let before = log.count("reminder", "beat");
        assert_eq!(leaving.shutdown().await, 0);
        assert!(
            eventually(Duration::from_millis(15_000), || {
                log.entries("reminder", "beat")
                    .iter()
                    .skip(before)
                    .any(|entry| entry.3 != left)
            })
            .await,
            "the reminder fires on the remaining node: {:?}",
            log.entries("reminder", "beat")
        );

        // Unregistered: at most a delivery already claimed still arrives.
        assert!(
            until_ok(|| beeper.disarm(&gateway, "beat".into()))
                .await
                .unwrap()
        );
        let stopped = log.count("reminder", "beat");
        sleep(1_500).await;
        assert!(log.count("reminder", "beat") <= stopped + 1);
        assert!(reminders.is_empty());

        // A timer ticks on its activation and ends with it: no message for idle_timeout.
        until_ok(|| beeper.timer(&gateway, 50)).await.unwrap();
        assert!(
            eventually(Duration::from_millis(5_000), || log.count("timer", "tick")
                >= 4)
            .await
        );
        assert!(
            eventually(Duration::from_millis(5_000), || nodes
                .iter()
                .all(|node| node.activations() == 0))
            .await,
            "ticks do not keep the activation alive"
        );
        let ticks = log.count("timer", "tick");
        sleep(500).await;
        assert_eq!(
            log.count("timer", "tick"),
            ticks,
            "no tick after the activation ended"
        );
        for node in nodes {
            node.shutdown().await;
        }
    });
}

#[test]
fn test_reminder_table_in_a_file() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reminders.json");
        let providers = TokioProviders::new();
        let table = StorageReminderTable::load(providers.clone(), &path)
            .await
            .unwrap();
        let id = ActorId::new("Beeper", 1);
        let node: NetworkAddress = "127.0.0.1:1".parse().unwrap();
        let registration = table
            .register(
                id.clone(),
                "r".into(),
                Duration::ZERO,
                Some(Duration::from_millis(100)),
            )
            .await
            .unwrap();
        let listed = table.list(vec![node], node).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].due, Some(0));
        // Another node owns nothing of a one-member list it is not in.
        let other: NetworkAddress = "127.0.0.1:2".parse().unwrap();
        assert!(table.list(vec![node], other).await.unwrap().is_empty());
        assert!(
            table
                .claim(id.clone(), "r".into(), registration, 0)
                .await
                .unwrap()
        );
        table
            .acknowledge(id.clone(), "r".into(), registration, 0)
            .await
            .unwrap();
        assert!(
            !table
                .claim(id.clone(), "r".into(), registration, 0)
                .await
                .unwrap()
        );
        assert_eq!(table.list(vec![node], node).await.unwrap()[0].due, None);
        // The clock and the acknowledged tick survive a reload.
        let clock = table.clock();
        let reloaded = StorageReminderTable::load(providers.clone(), &path)
            .await
            .unwrap();
        assert!(reloaded.clock() >= clock.saturating_sub(Duration::from_millis(50)));
        assert!(
            !reloaded
                .claim(id.clone(), "r".into(), registration, 0)
                .await
                .unwrap()
        );
        sleep(250).await;
        let due = reloaded.list(vec![node], node).await.unwrap()[0]
            .due
            .unwrap();
        assert!(due >= 1, "{due}");
        // Bad values are refused by the table too.
        match reloaded
            .register(id.clone(), "z".into(), Duration::ZERO, Some(Duration::ZERO))
            .await
        {
            Err(ReminderError::ZeroPeriod { name, .. }) => assert_eq!(name, "z"),
            other => panic!("expected ZeroPeriod, got {other:?}"),
        }
        // Unregistered: claims are refused.
        assert!(reloaded.unregister(id.clone(), "r".into()).await.unwrap());
        assert!(!reloaded.unregister(id.clone(), "r".into()).await.unwrap());
        assert!(
            !reloaded
                .claim(id.clone(), "r".into(), registration, due)
                .await
                .unwrap()
        );
        // A one-shot reminder is removed by its acknowledgement.
        let once = reloaded
            .register(id.clone(), "once".into(), Duration::ZERO, None)
            .await
            .unwrap();
        reloaded
            .acknowledge(id.clone(), "once".into(), once, 0)
            .await
            .unwrap();
        assert!(reloaded.is_empty());
        std::fs::write(&path, b"{not json").unwrap();
        match StorageReminderTable::load(providers, &path).await {
            Err(ReminderError::Storage { reason }) => {
                assert!(reason.contains("reminders.json"), "{reason}");
            }
            other => panic!("expected a storage error, got {other:?}"),
        }
    });
}

#[test]
fn test_no_reminder_table_and_bad_reminder_config_are_typed_errors() {
    runtime().block_on(async {
        // A bad poll interval.
        let mut bad = reminder_config();
        bad.poll_interval = Duration::ZERO;
        let transport = listening().await;
        let me = transport.local_address().unwrap();
        let remote = RemoteReminderTable::new(transport.clone(), me, Duration::from_secs(1));
        let started = ActorNode::builder(
            TokioProviders::new(),
            transport,
            MembershipView::new(1, [me]),
        )
        .reminders(Arc::new(remote), bad)
        .actor::<BeeperActor>(Placement::Local)
        .start()
        .await;
        match started {
            Err(ActorStartError::ReminderConfig(error)) => {
                assert!(error.to_string().contains("poll_interval"), "{error}");
                assert!(error.to_string().contains("0ns"), "{error}");
            }
            other => panic!("expected a ReminderConfig error, got {other:?}"),
        }
        // A node without a reminder table: registering is an error naming the identity.
        let dir = tempfile::tempdir().unwrap();
        let transport = listening().await;
        let me = transport.local_address().unwrap();
        let node = ActorNode::builder(
            TokioProviders::new(),
            transport,
            MembershipView::new(1, [me]),
        )
        .state_dir(dir.path())
        .actor::<BeeperActor>(Placement::Local)
        .data(Shared {
            log: Arc::new(Log::default()),
            node: me,
        })
        .start()
        .await
        .unwrap();
        let error = BeeperRef::new("lonely")
            .arm(&node.client(), "r".into(), 10, 100)
            .await
            .unwrap()
            .unwrap_err();
        assert!(error.contains("no reminder table"), "{error}");
        assert!(error.contains("lonely"), "{error}");
        node.shutdown().await;
    });
}
