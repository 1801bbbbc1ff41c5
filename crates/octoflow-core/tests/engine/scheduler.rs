//! The scheduler on a hand-moved clock: DST changes, month ends, catch-up after downtime,
//! API changes, `autostart`, concurrency rules; and one real-time interval test.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use octoflow_core::flow::{Catchup, Schedule};
use octoflow_core::scheduler::{Autostart, Clock, ManualClock, SystemClock};
use octoflow_core::store::{MemoryStore, RunStatus, Store};
use octoflow_testkit::scheduler::SchedulerRig;
use serde_json::Map;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// A flow named `name` with these top-level lines (its schedule).
/// A flow with `schedule` (YAML at the top level). The runs these cases make stay queued
/// (no workers), so a flow in the spooler's form, which skips a tick while its last run
/// holds its key, says `concurrency: {policy: allow}` unless the case chooses otherwise.
fn flow(name: &str, schedule: &str) -> String {
    let spooler_form = !schedule.contains("schedule:") && !schedule.contains("concurrency:");
    let allow = if spooler_form {
        "concurrency: { policy: allow }\n"
    } else {
        ""
    };
    format!(
        "name: {name}\n{schedule}\n{allow}steps:\n  - {{ name: look, state: {{ get: seen, default: 0 }} }}\n"
    )
}

fn memory() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

/// Moves the clock to `until` in steps of `step`, letting the scheduler catch up each time.
async fn walk(rig: &SchedulerRig, clock: &ManualClock, until: DateTime<Utc>, step: Duration) {
    while clock.now() < until {
        clock.set((clock.now() + step).min(until));
        rig.scheduler.settle().await;
    }
}

#[tokio::test]
async fn spring_forward_fires_a_0230_schedule_once() {
    let clock = Arc::new(ManualClock::new(utc(2026, 3, 28, 12, 0)));
    let yaml = flow(
        "nightly",
        "schedule: { cron: \"30 2 * * *\", timezone: Europe/Brussels }",
    );
    let rig = SchedulerRig::new(memory(), clock.clone())
        .flow("nightly.yml", &yaml)
        .start()
        .await;
    walk(&rig, &clock, utc(2026, 3, 30, 12, 0), Duration::minutes(10)).await;
    // 02:30 does not exist on 29 March (02:00 CET jumps to 03:00 CEST): it fires once, at
    // 03:00 CEST; the next day at 02:30 CEST.
    assert_eq!(
        rig.ticks("flow:nightly:0").await,
        ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
    );
}

#[tokio::test]
async fn fall_back_fires_a_0230_schedule_once() {
    let clock = Arc::new(ManualClock::new(utc(2026, 10, 24, 12, 0)));
    let yaml = flow(
        "nightly",
        "triggers:\n  - schedule: { cron: \"30 2 * * *\", timezone: Europe/Brussels }",
    );
    let rig = SchedulerRig::new(memory(), clock.clone())
        .flow("nightly.yml", &yaml)
        .start()
        .await;
    walk(
        &rig,
        &clock,
        utc(2026, 10, 26, 12, 0),
        Duration::minutes(10),
    )
    .await;
    // 02:30 happens twice on 25 October (03:00 CEST falls back to 02:00 CET): it fires at the
    // first one, 02:30 CEST.
    assert_eq!(
        rig.ticks("flow:nightly:0").await,
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    );
}

#[tokio::test]
async fn month_ends_skip_short_months_and_l_is_the_last_day() {
    let clock = Arc::new(ManualClock::new(utc(2027, 1, 15, 0, 0)));
    let rig = SchedulerRig::new(memory(), clock.clone())
        .flow(
            "thirty_first.yml",
            &flow("thirty_first", "cron: \"0 0 31 * *\""),
        )
        .flow(
            "last_day.yml",
            &flow("last_day", "schedule: { cron: \"0 0 L * *\" }"),
        )
        .start()
        .await;
    walk(&rig, &clock, utc(2027, 5, 15, 0, 0), Duration::hours(6)).await;
    assert_eq!(
        rig.ticks("flow:thirty_first:0").await,
        ["2027-01-31T00:00:00Z", "2027-03-31T00:00:00Z"]
    );
    assert_eq!(
        rig.ticks("flow:last_day:0").await,
        [
            "2027-01-31T00:00:00Z",
            "2027-02-28T00:00:00Z",
            "2027-03-31T00:00:00Z",
            "2027-04-30T00:00:00Z",
        ]
    );
}

/// Fires the hourly schedule once at 09:00, stops for five hours (10:00 to 14:00 missed),
/// restarts at 14:30 and goes on to 15:30; the ticks each catch-up fires.
async fn after_downtime(catchup: &str) -> Vec<String> {
    let clock = Arc::new(ManualClock::new(utc(2026, 6, 1, 8, 30)));
    let yaml = flow(
        "hourly",
        &format!("schedule: {{ cron: \"0 * * * *\", catchup: {catchup} }}"),
    );
    let store = memory();
    let mut rig = SchedulerRig::new(store.clone(), clock.clone())
        .flow("hourly.yml", &yaml)
        .start()
        .await;
    walk(&rig, &clock, utc(2026, 6, 1, 9, 30), Duration::minutes(15)).await;
    rig.stop().await;
    clock.set(utc(2026, 6, 1, 14, 30));
    let rig = rig.restarted(store).await.start().await;
    rig.scheduler.settle().await;
    walk(&rig, &clock, utc(2026, 6, 1, 15, 30), Duration::minutes(15)).await;
    rig.ticks("flow:hourly:0").await
}

#[tokio::test]
async fn catchup_none_skips_the_missed_ticks() {
    assert_eq!(
        after_downtime("none").await,
        ["2026-06-01T09:00:00Z", "2026-06-01T15:00:00Z"]
    );
}

#[tokio::test]
async fn catchup_last_fires_the_last_missed_tick_once() {
    assert_eq!(
        after_downtime("last").await,
        [
            "2026-06-01T09:00:00Z",
            "2026-06-01T14:00:00Z",
            "2026-06-01T15:00:00Z"
        ]
    );
}

#[tokio::test]
async fn catchup_all_fires_each_missed_tick_in_order() {
    assert_eq!(
        after_downtime("all").await,
        [
            "2026-06-01T09:00:00Z",
            "2026-06-01T10:00:00Z",
            "2026-06-01T11:00:00Z",
            "2026-06-01T12:00:00Z",
            "2026-06-01T13:00:00Z",
            "2026-06-01T14:00:00Z",
            "2026-06-01T15:00:00Z"
        ]
    );
}

#[tokio::test]
async fn a_never_fired_schedule_starts_from_now_and_intervals_follow_the_last_fire() {
    let start = utc(2026, 6, 1, 8, 0) + Duration::milliseconds(250);
    let clock = Arc::new(ManualClock::new(start));
    let yaml = flow("poll", "every_seconds: 90\n");
    let rig = SchedulerRig::new(memory(), clock.clone())
        .flow("poll.yml", &yaml)
        .start()
        .await;
    rig.scheduler.settle().await;
    assert!(rig.ticks("flow:poll:0").await.is_empty(), "no catch-up");
    walk(
        &rig,
        &clock,
        start + Duration::seconds(200),
        Duration::seconds(10),
    )
    .await;
    assert_eq!(
        rig.ticks("flow:poll:0").await,
        ["2026-06-01T08:01:30.250Z", "2026-06-01T08:03:00.250Z"]
    );
    let runs = rig.runs("flow:poll:0").await;
    assert_eq!(runs[0].trigger.kind, "schedule");
    assert_eq!(runs[0].status, RunStatus::Queued, "the workers run it");
}

#[tokio::test]
async fn api_schedules_take_effect_at_once() {
    let clock = Arc::new(ManualClock::new(utc(2026, 6, 1, 8, 0)));
    let rig = SchedulerRig::new(memory(), clock.clone())
        .flow("report.yml", "name: report\nparams:\n  env: { type: string }\nsteps:\n  - { name: look, state: { get: seen, default: 0 } }\n")
        .start().await;
    let flow = rig.library.flow("report").unwrap();
    let mut params = Map::new();
    params.insert("env".to_owned(), "prd".into());
    let schedule = Schedule {
        cron: Some("*/5 * * * *".to_owned()),
        every_seconds: None,
        timezone: None,
        catchup: Catchup::All,
        params,
    };
    let view = rig.scheduler.add(&flow, schedule).await.unwrap();
    let id = view.id.clone();
    assert_eq!(view.next_fire, Some(utc(2026, 6, 1, 8, 5)));
    walk(&rig, &clock, utc(2026, 6, 1, 8, 12), Duration::minutes(1)).await;
    assert_eq!(
        rig.ticks(&id).await,
        ["2026-06-01T08:05:00Z", "2026-06-01T08:10:00Z"]
    );
    assert_eq!(rig.runs(&id).await[0].params["env"], "prd");

    let paused = rig.scheduler.pause(&id).await.unwrap();
    assert!(paused.paused && paused.next_fire.is_none());
    walk(&rig, &clock, utc(2026, 6, 1, 8, 32), Duration::minutes(1)).await;
    assert_eq!(rig.ticks(&id).await.len(), 2, "paused: nothing fires");
    let resumed = rig.scheduler.resume(&id).await.unwrap();
    assert_eq!(
        resumed.last_fire,
        Some(utc(2026, 6, 1, 8, 30)),
        "missed ticks passed"
    );
    assert_eq!(resumed.next_fire, Some(utc(2026, 6, 1, 8, 35)));
    rig.scheduler.settle().await;
    walk(&rig, &clock, utc(2026, 6, 1, 8, 36), Duration::minutes(1)).await;
    assert_eq!(
        rig.ticks(&id).await.len(),
        3,
        "the ticks missed while paused are not caught up"
    );

    rig.scheduler.remove(&id).await.unwrap();
    walk(&rig, &clock, utc(2026, 6, 1, 9, 0), Duration::minutes(1)).await;
    assert_eq!(rig.ticks(&id).await.len(), 3, "removed: nothing fires");
    assert!(rig.scheduler.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn autostart_leaves_other_flows_paused_until_resumed() {
    let clock = Arc::new(ManualClock::new(utc(2026, 6, 1, 8, 0)));
    let rig = SchedulerRig::new(memory(), clock.clone())
        .flow("a.yml", &flow("a", "every_seconds: 60"))
        .flow("b.yml", &flow("b", "every_seconds: 60"))
        .autostart(Autostart::only(vec!["flows/a.yml".to_owned()]))
        .start()
        .await;
    walk(&rig, &clock, utc(2026, 6, 1, 8, 2), Duration::seconds(30)).await;
    assert_eq!(rig.ticks("flow:a:0").await.len(), 2);
    assert!(rig.ticks("flow:b:0").await.is_empty());
    let views = rig.scheduler.list().await.unwrap();
    let b = views.iter().find(|v| v.id == "flow:b:0").unwrap();
    assert!(b.paused && b.next_fire.is_none(), "{b:?}");

    rig.scheduler.resume("flow:b:0").await.unwrap();
    rig.scheduler.settle().await;
    walk(&rig, &clock, utc(2026, 6, 1, 8, 3), Duration::seconds(30)).await;
    assert_eq!(rig.ticks("flow:b:0").await.len(), 1, "resumed from now");
}

#[tokio::test]
async fn a_removed_file_schedule_stays_removed_until_its_cadence_changes() {
    let clock = Arc::new(ManualClock::new(utc(2026, 6, 1, 8, 0)));
    let store = memory();
    let rig = SchedulerRig::new(store.clone(), clock.clone())
        .flow("a.yml", &flow("a", "every_seconds: 60"))
        .start()
        .await;
    walk(&rig, &clock, utc(2026, 6, 1, 8, 2), Duration::seconds(30)).await;
    assert_eq!(rig.ticks("flow:a:0").await.len(), 2);

    rig.scheduler.remove("flow:a:0").await.unwrap();
    rig.scheduler.remove("flow:a:0").await.unwrap();
    rig.scheduler.settle().await;
    walk(&rig, &clock, utc(2026, 6, 1, 8, 5), Duration::seconds(30)).await;
    assert_eq!(
        rig.ticks("flow:a:0").await.len(),
        2,
        "no tick after the removal"
    );
    let view = rig.scheduler.get("flow:a:0").await.unwrap().unwrap();
    assert!(view.removed && view.next_fire.is_none(), "{view:?}");
    assert!(matches!(
        rig.scheduler.resume("flow:a:0").await,
        Err(octoflow_core::scheduler::ScheduleError::Removed(_))
    ));

    // The same file read again (a reload, or another scheduler on the store): still removed.
    let again = SchedulerRig::new(store.clone(), clock.clone())
        .flow("a.yml", &flow("a", "every_seconds: 60"))
        .start()
        .await;
    walk(&again, &clock, utc(2026, 6, 1, 8, 8), Duration::seconds(30)).await;
    assert_eq!(
        again.ticks("flow:a:0").await.len(),
        2,
        "removed across a restart"
    );

    // Another cadence at that place is a new schedule.
    let library = again.library.clone();
    tokio::task::spawn_blocking(move || library.put("a", &flow("a", "every_seconds: 120")))
        .await
        .unwrap()
        .unwrap();
    again.scheduler.settle().await;
    walk(
        &again,
        &clock,
        utc(2026, 6, 1, 8, 12),
        Duration::seconds(30),
    )
    .await;
    assert!(
        again.ticks("flow:a:0").await.len() > 2,
        "the new cadence fires"
    );
    assert!(
        !again
            .scheduler
            .get("flow:a:0")
            .await
            .unwrap()
            .unwrap()
            .removed
    );
}

#[tokio::test]
async fn a_flow_saved_with_a_schedule_is_picked_up_at_once() {
    let clock = Arc::new(ManualClock::new(utc(2026, 6, 1, 8, 0)));
    let rig = SchedulerRig::new(memory(), clock.clone()).start().await;
    rig.scheduler.settle().await;
    let library = rig.library.clone();
    tokio::task::spawn_blocking(move || library.put("late", &flow("late", "every_seconds: 30")))
        .await
        .unwrap()
        .unwrap();
    rig.scheduler.settle().await;
    let next = rig.scheduler.next_fires().await.unwrap();
    assert_eq!(
        next.get("late"),
        Some(&(utc(2026, 6, 1, 8, 0) + Duration::seconds(30)))
    );
    walk(&rig, &clock, utc(2026, 6, 1, 8, 1), Duration::seconds(10)).await;
    assert_eq!(rig.ticks("flow:late:0").await.len(), 2);
}

#[tokio::test]
async fn a_tick_whose_run_is_still_going_follows_the_concurrency_rule() {
    let clock = Arc::new(ManualClock::new(utc(2026, 6, 1, 8, 0)));
    let yaml = flow("single", "every_seconds: 60\nconcurrency: { policy: skip }");
    let rig = SchedulerRig::new(memory(), clock.clone())
        .flow("single.yml", &yaml)
        .start()
        .await;
    let mut fired = rig.scheduler.subscribe();
    walk(&rig, &clock, utc(2026, 6, 1, 8, 3), Duration::seconds(30)).await;
    // No worker runs the first run, so it keeps the key: the later ticks are skipped.
    assert_eq!(rig.ticks("flow:single:0").await.len(), 1);
    let mut skipped = 0;
    while let Ok(f) = fired.try_recv() {
        if f.run.is_none() {
            skipped += 1;
        }
    }
    assert_eq!(skipped, 2, "the skipped ticks count as fired");
    let mark = rig.store.schedule_marks().await.unwrap();
    assert_eq!(mark[0].last_fire, Some(utc(2026, 6, 1, 8, 3)));
}

#[tokio::test]
async fn the_loop_sleeps_between_ticks() {
    let clock = Arc::new(ManualClock::new(utc(2026, 6, 1, 8, 0)));
    let rig = SchedulerRig::new(memory(), clock.clone())
        .flow("hourly.yml", &flow("hourly", "cron: \"0 * * * *\""))
        .start()
        .await;
    rig.scheduler.settle().await;
    let before = clock.sleeps();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(clock.sleeps(), before, "the loop woke with nothing to do");
}

/// Real time: `every_seconds: 1` fires at 1 s, 2 s and 3 s after the scheduler first sees
/// the schedule, so 3.5 s give exactly three runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_second_in_real_time() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut rig = SchedulerRig::new(memory(), clock)
        .flow("tick.yml", &flow("tick", "every_seconds: 1"))
        .start()
        .await;
    let mut fired = rig.scheduler.subscribe();
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    rig.stop().await;
    let ticks = rig.ticks("flow:tick:0").await;
    assert_eq!(ticks.len(), 3, "{ticks:?}");
    let mut late = Vec::new();
    while let Ok(f) = fired.try_recv() {
        late.push((f.at - f.tick).num_milliseconds());
    }
    assert!(
        late.iter().all(|ms| (0..200).contains(ms)),
        "lateness {late:?} ms"
    );
}
