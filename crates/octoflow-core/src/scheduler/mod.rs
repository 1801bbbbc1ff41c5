//! The scheduler (SPEC §7, §9): fires the ticks of every schedule — declared in flow files or
//! added through the API — as runs, at most once per tick.
//!
//! A [`Scheduler`] is a handle; [`Scheduler::run`] is its loop. The loop keeps each active
//! schedule's next tick (`tick.rs` computes them), sleeps on its [`Clock`] until the earliest
//! one (no polling), and wakes at once when the flows change ([`FlowLibrary::subscribe`]) or
//! the API changes a schedule ([`Scheduler::add`], [`pause`](Scheduler::pause), …). A due
//! tick fires through [`Service::start_scheduled`]: the store records the tick and admits
//! the run in one transaction, so a tick never fires twice, across restarts and processes;
//! the store's wake-up then lets the workers run it. The run's trigger is
//! `{kind: "schedule", detail: {schedule: <key>, tick: <RFC 3339>}}`.
//!
//! Keys: a file schedule is `flow:<name>:<index>` (its place among the flow's `schedule:`,
//! `cron:`/`every_seconds:` and `triggers: - schedule:` entries, in that order); an API
//! schedule is its id. The store keeps each key's last fire time (the tick, not the wall
//! time) and pause flag.
//!
//! After downtime, `catchup` decides from the last fire time: `none` skips the missed ticks,
//! `last` (the default) fires the latest missed tick once, `all` fires each, oldest first,
//! each with its own tick time. A schedule that never fired starts from now; one whose
//! definition changes while the scheduler runs starts again from now; one resumed after a
//! pause does not catch up the ticks missed while paused. `autostart` (config) lists the flows
//! whose file schedules run from boot; the others start paused until resumed through the API.

mod clock;
mod looper;
mod table;
mod tick;
mod views;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use clock::{Clock, ManualClock, SystemClock};
pub use views::{ScheduleError, ScheduleView};

use crate::flow::{Flow, Schedule, Trigger};
use crate::library::{FlowEntry, FlowLibrary};
use crate::service::Service;
use crate::store::{RunId, StoreError};

/// One tick that fired, as the scheduler tells those who [`subscribe`](Scheduler::subscribe).
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    /// The schedule's key.
    pub key: String,
    /// The tick.
    pub tick: DateTime<Utc>,
    /// When the fire was recorded (its lateness is `at - tick`).
    pub at: DateTime<Utc>,
    /// The run it made; `None` when the flow's concurrency rule refused one (`skip`,
    /// `dedupe`).
    pub run: Option<RunId>,
}

/// Which flows' file schedules run from boot (config `autostart`); the others start paused.
#[derive(Debug, Clone, Default)]
pub struct Autostart(Option<Vec<String>>);

impl Autostart {
    /// Every flow's schedules start.
    pub fn all() -> Self {
        Self(None)
    }

    /// Only these flows' schedules start: each item is a flow file's path (relative to the
    /// data directory like the spooler's `flows/poll.yml`, or to the flows directory) or a
    /// flow name.
    pub fn only(items: Vec<String>) -> Self {
        Self(Some(items))
    }

    /// Whether the file schedules of this flow start.
    pub fn allows(&self, entry: &FlowEntry) -> bool {
        let Some(items) = &self.0 else {
            return true;
        };
        items.iter().any(|item| {
            let item = item.trim();
            let path = Path::new(item.strip_prefix("./").unwrap_or(item));
            item == entry.name || (!item.is_empty() && entry.path.ends_with(path))
        })
    }
}

/// The schedules a flow file declares, in key order: `schedule:`, then `cron:`/
/// `every_seconds:`, then `triggers: - schedule:`.
pub fn file_schedules(flow: &Flow) -> impl Iterator<Item = &Schedule> {
    flow.schedules
        .iter()
        .chain(flow.triggers.iter().filter_map(|t| match t {
            Trigger::Schedule(s) => Some(s),
            _ => None,
        }))
}

/// The key of a flow file's `index`-th schedule.
pub fn file_key(flow: &str, index: usize) -> String {
    format!("{}{flow}:{index}", crate::store::FILE_KEY_PREFIX)
}

/// The scheduler of a node. Cloning is cheap; clones share the loop.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    service: Service,
    library: Arc<FlowLibrary>,
    clock: Arc<dyn Clock>,
    autostart: Autostart,
    /// Wakes the loop after an API change.
    changed: Notify,
    /// Requests to answer once the loop has caught up (tests).
    settle: mpsc::UnboundedSender<oneshot::Sender<()>>,
    settle_rx: Mutex<Option<mpsc::UnboundedReceiver<oneshot::Sender<()>>>>,
    /// Each active schedule's next tick as the loop sees it (`None` paused); empty while the
    /// loop does not run.
    published: Mutex<Option<HashMap<String, Published>>>,
    /// Where fired ticks are told, made by the first [`Scheduler::subscribe`]: a node
    /// nobody subscribes on keeps no room for them.
    fired: OnceLock<broadcast::Sender<Fired>>,
}

/// Fired ticks kept for a subscriber that lags (the oldest are lost past it).
const FIRED_KEPT: usize = 4096;

/// What the loop shows of one schedule.
#[derive(Debug, Clone)]
struct Published {
    flow: String,
    next: Option<DateTime<Utc>>,
}

impl Scheduler {
    /// A scheduler firing `library`'s and the store's schedules through `service`.
    pub fn new(
        service: Service,
        library: Arc<FlowLibrary>,
        autostart: Autostart,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let (settle, settle_rx) = mpsc::unbounded_channel();
        Self {
            inner: Arc::new(Inner {
                service,
                library,
                clock,
                autostart,
                changed: Notify::new(),
                settle,
                settle_rx: Mutex::new(Some(settle_rx)),
                published: Mutex::new(None),
                fired: OnceLock::new(),
            }),
        }
    }

    /// Fires ticks until `shutdown` is cancelled. One loop per scheduler: a second call
    /// returns at once.
    pub async fn run(&self, shutdown: CancellationToken) {
        let Some(settle) = self
            .inner
            .settle_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            tracing::warn!("The scheduler already runs.");
            return;
        };
        looper::Looper::new(self.clone(), settle)
            .run(shutdown)
            .await;
        *self.published() = None;
    }

    /// Tells the loop that schedules changed (it reloads them at once).
    pub fn changed(&self) {
        self.inner.changed.notify_one();
    }

    /// Resolves once the running loop has taken up every change made before the call and
    /// fired every tick due at the clock's current time. Waits for the loop to start.
    pub async fn settle(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.settle.send(tx).is_ok() {
            let _ = rx.await;
        }
    }

    /// The ticks that fire from now on (for tests, benchmarks and metrics); a receiver that
    /// lags loses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<Fired> {
        self.inner
            .fired
            .get_or_init(|| broadcast::channel(FIRED_KEPT).0)
            .subscribe()
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The earliest next fire time of each flow that has an active schedule.
    pub async fn next_fires(&self) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
        let mut out: HashMap<String, DateTime<Utc>> = HashMap::new();
        let mut add = |flow: &str, next: Option<DateTime<Utc>>| {
            if let Some(next) = next {
                let slot = out.entry(flow.to_owned()).or_insert(next);
                *slot = (*slot).min(next);
            }
        };
        if let Some(published) = self.published().as_ref() {
            for p in published.values() {
                add(&p.flow, p.next);
            }
            return Ok(out);
        }
        for view in self.list().await? {
            add(&view.flow, view.next_fire);
        }
        Ok(out)
    }

    fn published(&self) -> std::sync::MutexGuard<'_, Option<HashMap<String, Published>>> {
        self.inner
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("clock", &self.inner.clock)
            .field("autostart", &self.inner.autostart)
            .finish_non_exhaustive()
    }
}
