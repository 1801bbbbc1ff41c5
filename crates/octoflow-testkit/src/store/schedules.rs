//! Conformance cases for schedules (SPEC §7): API schedules, pause flags, and fires that
//! record a tick and admit its run at most once, even when raced.

use chrono::{DateTime, Utc};
use octoflow_core::flow::{Catchup, ConcurrencyPolicy, Schedule};
use octoflow_core::store::{
    Admission, Admitted, Fire, Run, RunStatus, ScheduleMark, Store, StoreError, StoredSchedule,
};
use serde_json::{Map, json};

use super::{at, keyed, read};

/// A schedule added through the API.
fn stored(id: &str, flow: &str, paused: bool, secs: i64) -> StoredSchedule {
    let mut params = Map::new();
    params.insert("env".to_owned(), json!("prd"));
    StoredSchedule {
        id: id.to_owned(),
        flow: flow.to_owned(),
        schedule: Schedule {
            cron: (secs % 2 == 0).then(|| "30 2 * * *".to_owned()),
            every_seconds: (secs % 2 != 0).then_some(90),
            timezone: (secs % 2 == 0).then(|| "Europe/Brussels".to_owned()),
            catchup: if paused { Catchup::All } else { Catchup::None },
            params,
        },
        paused,
        created_at: at(secs, 0),
    }
}

/// The mark of `key`, if the store keeps one.
async fn mark_of(store: &dyn Store, key: &str) -> Option<ScheduleMark> {
    store
        .schedule_marks()
        .await
        .expect("schedule marks")
        .into_iter()
        .find(|m| m.key == key)
}

/// One fire of `key` at `tick`.
fn fire(key: &str, tick: DateTime<Utc>, run: &Run, admission: &Admission) -> Fire {
    Fire {
        key: key.to_owned(),
        tick,
        run: run.clone(),
        admission: admission.clone(),
    }
}

/// Fires one tick; what came of it.
async fn fire_one(
    store: &dyn Store,
    key: &str,
    tick: DateTime<Utc>,
    run: &Run,
    admission: &Admission,
) -> Result<Option<Admitted>, StoreError> {
    let mut answers = store.fire(&[fire(key, tick, run, admission)]).await?;
    assert_eq!(answers.len(), 1, "one answer per fire");
    Ok(answers.remove(0))
}

/// Fires `key` at second `secs` with a fresh run; what came of it.
async fn fire_at(store: &dyn Store, key: &str, secs: i64) -> Option<Admitted> {
    fire_one(
        store,
        key,
        at(secs, 0),
        &keyed("ticked", None),
        &Admission::allow(),
    )
    .await
    .expect("fire")
}

/// API schedules are kept with every field, listed oldest first, refused twice under one id
/// and removed with their mark.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn schedules_add_list_remove(store: &dyn Store) {
    assert!(store.schedules().await.expect("list").is_empty());
    let late = stored("sch-b", "report", true, 11);
    let early = stored("sch-a", "poll", false, 10);
    store.add_schedule(&late).await.expect("add late");
    store.add_schedule(&early).await.expect("add early");
    assert_eq!(
        store.schedules().await.expect("list"),
        vec![early.clone(), late.clone()],
        "every field kept, oldest first"
    );
    let again = store
        .add_schedule(&stored("sch-a", "other", false, 12))
        .await;
    assert!(
        matches!(again, Err(StoreError::Conflict { .. })),
        "a second schedule with one id: {again:?}"
    );
    assert_eq!(
        mark_of(store, "sch-b").await.and_then(|m| m.paused),
        Some(true),
        "a paused schedule's flag is its mark"
    );

    assert!(fire_at(store, "sch-a", 20).await.is_some());
    assert!(store.remove_schedule("sch-a").await.expect("remove"));
    assert!(!store.remove_schedule("sch-a").await.expect("remove again"));
    assert_eq!(store.schedules().await.expect("list"), vec![late]);
    assert_eq!(mark_of(store, "sch-a").await, None, "its mark went with it");
}

/// Pause flags are kept by key (file keys too); resuming with `caught_up` moves the last fire
/// time forward, never back.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn schedules_pause_and_resume(store: &dyn Store) {
    let key = "flow:poll:0";
    assert_eq!(mark_of(store, key).await, None, "no mark before anything");
    store
        .set_schedule_paused(key, true, None)
        .await
        .expect("pause");
    assert_eq!(
        mark_of(store, key).await,
        Some(ScheduleMark {
            key: key.to_owned(),
            last_fire: None,
            paused: Some(true),
            removed: None,
        })
    );
    assert_eq!(
        fire_at(store, key, 5).await,
        None,
        "a paused key does not fire"
    );
    store
        .set_schedule_paused(key, false, Some(at(30, 0)))
        .await
        .expect("resume");
    let mark = mark_of(store, key).await.expect("mark");
    assert_eq!(
        (mark.paused, mark.last_fire),
        (Some(false), Some(at(30, 0)))
    );
    store
        .set_schedule_paused(key, false, Some(at(10, 0)))
        .await
        .expect("resume again");
    assert_eq!(
        mark_of(store, key).await.expect("mark").last_fire,
        Some(at(30, 0)),
        "an earlier `caught_up` does not move the last fire back"
    );
    assert_eq!(
        fire_at(store, key, 30).await,
        None,
        "a caught-up tick counts as fired"
    );
    assert!(
        fire_at(store, key, 31).await.is_some(),
        "a later tick fires"
    );
}

/// A file schedule's removal is kept in its mark beside its last fire time and pause flag,
/// counts as a change, and a later removal replaces the cadence kept.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn schedules_file_removal_is_kept(store: &dyn Store) {
    let key = "flow:report:0";
    assert!(fire_at(store, key, 5).await.is_some());
    let before = store.schedule_changes().await.expect("changes");
    store
        .remove_file_schedule(key, "every:60")
        .await
        .expect("remove");
    assert!(store.schedule_changes().await.expect("changes") > before);
    let mark = mark_of(store, key).await.expect("mark");
    assert_eq!(
        (mark.last_fire, mark.paused, mark.removed.as_deref()),
        (Some(at(5, 0)), None, Some("every:60")),
        "the removal joins the mark and keeps its last fire"
    );
    store
        .remove_file_schedule(key, "cron:0 * * * *@UTC")
        .await
        .expect("remove again");
    assert_eq!(
        mark_of(store, key).await.and_then(|m| m.removed).as_deref(),
        Some("cron:0 * * * *@UTC")
    );
    store
        .remove_file_schedule("flow:other:2", "every:5")
        .await
        .expect("remove a key never fired");
    assert_eq!(
        mark_of(store, "flow:other:2").await,
        Some(ScheduleMark {
            key: "flow:other:2".to_owned(),
            last_fire: None,
            paused: None,
            removed: Some("every:5".to_owned()),
        })
    );
}

/// A tick fires once: the run is admitted `queued` and the tick recorded; the same or an
/// earlier tick does not fire again; a later one does. A removed API schedule, or an API id
/// that never existed, does not fire.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn schedules_fire_once_per_tick(store: &dyn Store) {
    let key = "flow:poll:1";
    let run = keyed("poll", None);
    let fired = fire_one(store, key, at(60, 0), &run, &Admission::allow())
        .await
        .expect("fire");
    let mut queued = run.clone();
    queued.status = RunStatus::Queued;
    assert_eq!(fired, Some(Admitted::Created(queued.clone())));
    assert_eq!(read(store, &run.id).await, queued, "the run is recorded");
    assert_eq!(
        mark_of(store, key).await.expect("mark").last_fire,
        Some(at(60, 0))
    );
    assert_eq!(fire_at(store, key, 60).await, None, "the same tick again");
    assert_eq!(fire_at(store, key, 59).await, None, "an earlier tick");
    assert!(fire_at(store, key, 120).await.is_some(), "the next tick");

    assert_eq!(
        fire_at(store, "sch-gone", 60).await,
        None,
        "no such schedule"
    );
    store
        .add_schedule(&stored("sch-live", "poll", false, 1))
        .await
        .expect("add");
    assert!(fire_at(store, "sch-live", 60).await.is_some());
    store.remove_schedule("sch-live").await.expect("remove");
    assert_eq!(fire_at(store, "sch-live", 120).await, None, "removed");
}

/// The fire and the run are one transaction: a run that cannot be recorded leaves the tick
/// unfired, and a tick whose run `skip` refuses still counts as fired.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn schedules_fire_is_atomic(store: &dyn Store) {
    let key = "flow:poll:2";
    let first = keyed("poll", None);
    fire_one(store, key, at(10, 0), &first, &Admission::allow())
        .await
        .expect("fire");
    let clash = fire_one(store, key, at(20, 0), &first, &Admission::allow()).await;
    assert!(
        matches!(clash, Err(StoreError::Conflict { .. })),
        "a run id recorded twice: {clash:?}"
    );
    assert_eq!(
        mark_of(store, key).await.expect("mark").last_fire,
        Some(at(10, 0)),
        "the failed fire recorded nothing"
    );

    let skip = Admission {
        policy: ConcurrencyPolicy::Skip,
        limit: 1,
        idempotency_key: None,
    };
    let holder = keyed("poll", Some("poll"));
    let admitted = fire_one(store, key, at(20, 0), &holder, &skip)
        .await
        .expect("fire");
    assert!(matches!(admitted, Some(Admitted::Created(_))));
    let refused = fire_one(store, key, at(30, 0), &keyed("poll", Some("poll")), &skip)
        .await
        .expect("fire");
    match refused {
        Some(Admitted::Skipped(blocking)) => assert_eq!(blocking.id, holder.id),
        other => panic!("expected the tick skipped by the running run, got {other:?}"),
    }
    assert_eq!(
        mark_of(store, key).await.expect("mark").last_fire,
        Some(at(30, 0)),
        "a skipped tick counts as fired"
    );
}

/// Several ticks in one call: answered in order, one transaction, all or none.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn schedules_fire_batch(store: &dyn Store) {
    let allow = Admission::allow();
    let runs: Vec<Run> = (0..4).map(|_| keyed("batch", None)).collect();
    let answers = store
        .fire(&[
            fire("flow:a:0", at(10, 0), &runs[0], &allow),
            fire("flow:a:0", at(20, 0), &runs[1], &allow),
            fire("flow:a:0", at(20, 0), &runs[2], &allow),
            fire("flow:b:0", at(5, 0), &runs[3], &allow),
        ])
        .await
        .expect("fire");
    let fired: Vec<bool> = answers.iter().map(Option::is_some).collect();
    assert_eq!(
        fired,
        [true, true, false, true],
        "a key's ticks in order; a tick once"
    );
    let last =
        |key: &'static str| async move { mark_of(store, key).await.and_then(|m| m.last_fire) };
    assert_eq!(last("flow:a:0").await, Some(at(20, 0)));

    let taken = runs[0].clone();
    let clash = store
        .fire(&[
            fire("flow:b:0", at(30, 0), &keyed("batch", None), &allow),
            fire("flow:c:0", at(30, 0), &taken, &allow),
        ])
        .await;
    assert!(
        matches!(clash, Err(StoreError::Conflict { .. })),
        "a run id recorded twice: {clash:?}"
    );
    assert_eq!(
        last("flow:b:0").await,
        Some(at(5, 0)),
        "a failed batch records none of its ticks"
    );
    assert_eq!(last("flow:c:0").await, None);
    assert!(store.fire(&[]).await.expect("empty").is_empty());
}

/// Every change to the schedules through one handle — an add, a pause, a resume, a remove —
/// shows in the count another handle reads (how a scheduler learns of changes made by
/// another node); fires do not count.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn schedule_changes_are_counted(store: &dyn Store, other: &dyn Store) {
    let mut seen = store.schedule_changes().await.expect("changes");
    let mut changed = async |what: &str| {
        let now = store.schedule_changes().await.expect("changes");
        assert!(now > seen, "{what} through another handle was not counted");
        seen = now;
    };
    other
        .add_schedule(&stored("counted", "flow-a", false, 0))
        .await
        .expect("add");
    changed("an add").await;
    other
        .set_schedule_paused("counted", true, None)
        .await
        .expect("pause");
    changed("a pause").await;
    other
        .set_schedule_paused("counted", false, None)
        .await
        .expect("resume");
    changed("a resume").await;
    assert!(other.remove_schedule("counted").await.expect("remove"));
    changed("a remove").await;
    assert!(fire_at(other, "flow:counted:0", 5).await.is_some());
    assert_eq!(
        store.schedule_changes().await.expect("changes"),
        seen,
        "a fire is not a change of the schedules"
    );
}

/// Many fires of one tick at once: exactly one fires.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn schedules_fire_raced(store: &dyn Store, other: &dyn Store) {
    for tick in [100, 200, 300] {
        let fires = (0..8).map(|i| {
            let handle = if i % 2 == 0 { store } else { other };
            fire_at(handle, "flow:raced:0", tick)
        });
        let outcomes = futures::future::join_all(fires).await;
        let count = outcomes.into_iter().flatten().count();
        assert_eq!(count, 1, "tick {tick} fired {count} times");
    }
}

/// A fire that admits a run wakes `wait_for_work`.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn schedules_fire_wakes_workers(store: &dyn Store) {
    let long = std::time::Duration::from_secs(20);
    let started = std::time::Instant::now();
    let (woken, ()) = tokio::join!(store.wait_for_work(long), async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(fire_at(store, "flow:wake:0", 1).await.is_some());
    });
    woken.expect("wait");
    assert!(
        started.elapsed() < long / 2,
        "a fire did not wake the waiter"
    );
}
