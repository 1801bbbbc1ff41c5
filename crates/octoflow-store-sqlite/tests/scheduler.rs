//! The scheduler over a `SQLite` file: restarts (a new store and scheduler over the same file)
//! neither double nor lose a tick with `catchup: all`, and two schedulers over one file fire
//! each tick once.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use octoflow_core::scheduler::{Clock, ManualClock, SystemClock};
use octoflow_core::store::Store;
use octoflow_store_sqlite::SqliteStore;
use octoflow_testkit::scheduler::SchedulerRig;

/// An `every_seconds: 60` flow with this catch-up.
fn poll(catchup: &str) -> String {
    format!(
        "name: poll\nschedule: {{ every_seconds: 60, catchup: {catchup} }}\nsteps:\n  - {{ name: look, state: {{ get: seen, default: 0 }} }}\n"
    )
}

async fn open(path: &Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(path).await.unwrap())
}

fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap()
}

/// Moves the clock to `until` in steps, letting the scheduler catch up each time.
async fn walk(rig: &SchedulerRig, clock: &ManualClock, until: DateTime<Utc>, step: Duration) {
    while clock.now() < until {
        clock.set((clock.now() + step).min(until));
        rig.scheduler.settle().await;
    }
}

/// The grid's ticks from `first`, `n` of them, as the runs show them.
fn grid(first: DateTime<Utc>, n: i64) -> Vec<String> {
    (0..n)
        .map(|k| {
            (first + Duration::seconds(60 * k)).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_neither_double_nor_lose_ticks() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("octoflow.db");
    let clock = Arc::new(ManualClock::new(start_time()));
    let mut rig = SchedulerRig::new(open(&db).await, clock.clone())
        .flow("poll.yml", &poll("all"))
        .start()
        .await;
    // Up: ticks at 08:01 … 08:05.
    walk(
        &rig,
        &clock,
        start_time() + Duration::seconds(330),
        Duration::seconds(20),
    )
    .await;
    for downtime in [
        Duration::seconds(250),
        Duration::seconds(30),
        Duration::seconds(3600),
    ] {
        rig.stop().await;
        clock.advance(downtime);
        // A new process: a new store over the same file, a new scheduler.
        rig = rig.restarted(open(&db).await).await.start().await;
        let until = clock.now() + Duration::seconds(130);
        walk(&rig, &clock, until, Duration::seconds(20)).await;
    }
    let ticks = rig.ticks("flow:poll:0").await;
    let elapsed = (clock.now() - start_time()).num_seconds();
    assert_eq!(
        ticks,
        grid(start_time() + Duration::seconds(60), elapsed / 60)
    );
    let unique: BTreeSet<&String> = ticks.iter().collect();
    assert_eq!(unique.len(), ticks.len(), "a tick fired twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_over_one_file_fire_each_tick_once() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("octoflow.db");
    let clock = Arc::new(ManualClock::new(start_time()));
    let one = SchedulerRig::new(open(&db).await, clock.clone())
        .flow("poll.yml", &poll("all"))
        .start()
        .await;
    let two = one_more(&one, &db, clock.clone()).await;
    for _ in 0..30 {
        clock.advance(Duration::seconds(20));
        tokio::join!(one.scheduler.settle(), two.scheduler.settle());
    }
    let ticks = one.ticks("flow:poll:0").await;
    assert_eq!(ticks, grid(start_time() + Duration::seconds(60), 10));
}

/// A second scheduler (another process) with the same flows over the same file.
async fn one_more(rig: &SchedulerRig, db: &Path, clock: Arc<ManualClock>) -> SchedulerRig {
    let yaml = std::fs::read_to_string(rig.dir().join("flows/poll.yml")).unwrap();
    SchedulerRig::new(open(db).await, clock)
        .flow("poll.yml", &yaml)
        .start()
        .await
}

/// Real time: a scheduler fires `every_seconds: 1` for 2.5 s, stops for 2 s, and a new one
/// over the same file catches up every missed tick; the ticks are one second apart, none
/// doubled, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_restart_catches_up_every_second() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("octoflow.db");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let yaml = "name: tick\nschedule: { every_seconds: 1, catchup: all }\nsteps:\n  - { name: look, state: { get: seen, default: 0 } }\n";
    let mut rig = SchedulerRig::new(open(&db).await, clock)
        .flow("tick.yml", yaml)
        .start()
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    rig.stop().await;
    assert_eq!(rig.ticks("flow:tick:0").await.len(), 2);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let rig = rig.restarted(open(&db).await).await.start().await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let ticks: Vec<DateTime<Utc>> = rig
        .ticks("flow:tick:0")
        .await
        .iter()
        .map(|t| DateTime::parse_from_rfc3339(t).unwrap().to_utc())
        .collect();
    assert!((5..=6).contains(&ticks.len()), "{ticks:?}");
    for pair in ticks.windows(2) {
        assert_eq!(pair[1] - pair[0], Duration::seconds(1), "{ticks:?}");
    }
}

/// A schedule added through another handle of the store (another node, a CLI) reaches a
/// running scheduler without any notice to it in this process: the scheduler reads the
/// store's count of schedule changes (every 5 s), and fires the new schedule. Real time:
/// the rig's `settle` would reload the schedules itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_added_by_another_node_is_taken_up() {
    use octoflow_core::flow::{Catchup, Schedule};
    use octoflow_core::store::StoredSchedule;

    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("octoflow.db");
    let rig = SchedulerRig::new(open(&db).await, Arc::new(SystemClock))
        .flow(
            "poll.yml",
            "name: poll\nsteps:\n  - { name: look, state: { get: seen, default: 0 } }\n",
        )
        .start()
        .await;
    // Another node's handle adds an API schedule for `poll`, every second.
    let other = open(&db).await;
    other
        .add_schedule(&StoredSchedule {
            id: "added-elsewhere".to_owned(),
            flow: "poll".to_owned(),
            schedule: Schedule {
                cron: None,
                every_seconds: Some(1),
                timezone: None,
                catchup: Catchup::None,
                params: serde_json::Map::new(),
            },
            paused: false,
            created_at: Utc::now(),
        })
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while rig.ticks("added-elsewhere").await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the schedule added through another handle never fired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
