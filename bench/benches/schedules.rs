//! Schedule lateness: 1,000 `every_seconds: 1` schedules on the `SQLite` store for 30 s, with
//! the runs left queued (the scheduler alone) and with this node's workers running them; and
//! one schedule alone, for comparison.
//! Reports the lateness of each fire (when its transaction committed minus its tick) and
//! checks that every schedule fired every tick once: none missed, none doubled.
//!
//! Then the floor under those figures: how long the store takes to fire a round of 1,000
//! ticks in one call (`ScheduleStore::fire`: 1,000 marks and 1,000 queued runs, one
//! commit), and how long `SQLite` alone takes for the same rows as bare prepared `INSERT`s
//! into the same schema.
//!
//! `cargo bench -p octoflow-bench --bench schedules` (a plain binary: the measurement is one
//! long session, not criterion's repeated iterations).

#![allow(clippy::print_stdout)] // a benchmark reports its figures on stdout
#![allow(missing_docs)] // a bench binary

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use octoflow_core::flow::{Catchup, Schedule};
use octoflow_core::scheduler::{Clock, SystemClock, file_key};
use octoflow_core::store::{
    Admission, Fire, Page, Run, RunFilter, RunId, RunStatus, ScheduleStore, Store, StoredSchedule,
    TriggerInfo,
};
use octoflow_store_sqlite::SqliteStore;
use octoflow_testkit::scheduler::SchedulerRig;
use serde_json::Map;
use tokio_util::sync::CancellationToken;

const SESSION: Duration = Duration::from_secs(30);
const FLOW: &str = "name: tick\nsteps:\n  - { name: look, state: { get: seen, default: 0 } }\n";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for (schedules, workers) in [(1_000, false), (1_000, true), (1, false)] {
        runtime.block_on(session(schedules, workers));
    }
    runtime.block_on(store_rounds());
}

/// Rounds of 1,000 fires timed on their own.
const ROUNDS: i64 = 30;
const FIRES_PER_ROUND: usize = 1_000;

/// Times [`ROUNDS`] rounds of 1,000 fires through the store, then the same rows as bare
/// `INSERT`s; prints the median and slowest round of each.
async fn store_rounds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("octoflow.db");
    let store = SqliteStore::open(&path).await.expect("store");
    let start = Utc::now();
    let mut took = Vec::new();
    for round in 0..ROUNDS {
        let tick = start + chrono::Duration::seconds(round);
        let fires: Vec<Fire> = (0..FIRES_PER_ROUND)
            .map(|i| Fire {
                key: file_key("tick", i),
                tick,
                run: queued_run(&file_key("tick", i), tick),
                admission: Admission::allow(),
            })
            .collect();
        let begun = Instant::now();
        let answers = store.fire(&fires).await.expect("fire");
        took.push(begun.elapsed());
        assert!(answers.iter().all(Option::is_some), "every tick fires");
    }
    drop(store);
    report("the store's `fire`", &mut took);
    let mut took = bare_inserts(&path, start + chrono::Duration::seconds(ROUNDS));
    report("bare `INSERT`s", &mut took);
}

/// The same rows as a round of fires, as prepared `INSERT`s on a plain connection: one
/// upsert into `schedule_marks` and one insert into `runs` per tick, one commit a round.
fn bare_inserts(path: &std::path::Path, start: DateTime<Utc>) -> Vec<Duration> {
    let mut conn = rusqlite::Connection::open(path).expect("open");
    conn.pragma_update(None, "synchronous", "NORMAL")
        .expect("pragma");
    let mut took = Vec::new();
    for round in 0..ROUNDS {
        let tick = start + chrono::Duration::seconds(round);
        let at = tick.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let rows: Vec<(String, String, String)> = (0..FIRES_PER_ROUND)
            .map(|i| {
                let key = file_key("tick", i);
                let run = queued_run(&key, tick);
                let trigger = serde_json::to_string(&run.trigger).expect("json");
                (key, run.id.to_string(), trigger)
            })
            .collect();
        let begun = Instant::now();
        let tx = conn.transaction().expect("begin");
        {
            let mut mark = tx
                .prepare_cached(
                    "INSERT INTO schedule_marks (key, last_fire, paused, updated_at) \
                     VALUES (?1, ?2, NULL, ?2) ON CONFLICT (key) DO UPDATE \
                     SET last_fire = excluded.last_fire, updated_at = excluded.updated_at",
                )
                .expect("prepare");
            let mut run = tx
                .prepare_cached(
                    "INSERT INTO runs (id, flow, flow_version, status, params, trigger, \
                     created_at, data) VALUES (?1, 'tick', 'sha256:0', 'queued', '{}', ?2, ?3, '{}')",
                )
                .expect("prepare");
            for (key, id, trigger) in &rows {
                mark.execute(rusqlite::params![key, at]).expect("mark");
                run.execute(rusqlite::params![id, trigger, at])
                    .expect("run");
            }
        }
        tx.commit().expect("commit");
        took.push(begun.elapsed());
    }
    took
}

/// A queued run of the `tick` flow fired by `key` at `tick`.
fn queued_run(key: &str, tick: DateTime<Utc>) -> Run {
    Run {
        id: RunId::new(),
        flow: "tick".to_owned(),
        flow_version: "sha256:0".to_owned(),
        status: RunStatus::Queued,
        params: serde_json::json!({}),
        trigger: TriggerInfo {
            kind: "schedule".to_owned(),
            detail: serde_json::json!({"schedule": key, "tick": tick.to_rfc3339()}),
        },
        concurrency_key: None,
        parent_run_id: None,
        created_at: Utc::now(),
        started_at: None,
        finished_at: None,
        error: None,
        data: serde_json::json!({}),
        node: None,
        message: None,
        progress: None,
        generation: 0,
    }
}

fn report(what: &str, took: &mut [Duration]) {
    took.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = took[took.len() / 2];
    println!(
        "{} rounds of {} fires, {what}: median {:.2} ms a round ({:.1} µs a fire), slowest {:.2} ms",
        took.len(),
        FIRES_PER_ROUND,
        ms(median),
        ms(median) * 1000.0 / f64::from(u32::try_from(FIRES_PER_ROUND).unwrap_or(u32::MAX)),
        ms(took[took.len() - 1]),
    );
}

async fn session(schedules: usize, workers: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("octoflow.db"))
            .await
            .expect("store"),
    );
    for i in 0..schedules {
        let schedule = StoredSchedule {
            id: format!("s{i:04}"),
            flow: "tick".to_owned(),
            schedule: Schedule {
                cron: None,
                every_seconds: Some(1),
                timezone: None,
                catchup: Catchup::All,
                params: Map::new(),
            },
            paused: false,
            created_at: Utc::now(),
        };
        store.add_schedule(&schedule).await.expect("add schedule");
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let rig = SchedulerRig::new(store.clone(), clock).flow("tick.yml", FLOW);
    let mut fired = rig.scheduler.subscribe();
    let shutdown = CancellationToken::new();
    let work = workers.then(|| {
        let service = rig.service.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { service.run_workers(shutdown).await })
    });
    let usage = Usage::now();
    let mut rig = rig.start().await;
    let begun = Utc::now();
    let collect = tokio::spawn(async move {
        let mut late_us = Vec::new();
        while let Ok(f) = fired.recv().await {
            late_us.push((f.at - f.tick).num_microseconds().unwrap_or(i64::MAX));
        }
        late_us
    });
    tokio::time::sleep(SESSION).await;
    rig.stop().await;
    let ended = Utc::now();
    let cpu = usage.elapsed();
    shutdown.cancel();
    if let Some(work) = work {
        work.await.expect("workers");
    }
    drop(rig);
    let mut late_us = collect.await.expect("collector");
    late_us.sort_unstable();
    let checked = check(store.as_ref(), schedules, begun, ended).await;
    // The lateness at a quantile given in thousandths, in milliseconds.
    let pick = |permille: usize| {
        let i = late_us.len().saturating_sub(1) * permille / 1000;
        let us = late_us.get(i).copied().unwrap_or_default();
        Duration::from_micros(u64::try_from(us).unwrap_or(0)).as_secs_f64() * 1000.0
    };
    println!(
        "{} schedules, every_seconds: 1, {} s, {}: {} fires; lateness p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} missed, {} doubled; {} runs succeeded; process CPU {:.1} s",
        schedules,
        SESSION.as_secs(),
        if workers {
            "workers running the runs"
        } else {
            "runs left queued"
        },
        late_us.len(),
        pick(500),
        pick(900),
        pick(990),
        pick(1000),
        checked.missed,
        checked.doubled,
        checked.succeeded,
        cpu.as_secs_f64(),
    );
}

struct Checked {
    missed: usize,
    doubled: usize,
    succeeded: usize,
}

/// Every schedule's ticks: one second apart from the first, each once, up to the last tick
/// that was due a second before the session ended (later ones may be mid-round).
async fn check(
    store: &dyn Store,
    schedules: usize,
    begun: DateTime<Utc>,
    ended: DateTime<Utc>,
) -> Checked {
    let page = Page {
        page: 1,
        per_page: 1_000_000,
    };
    let runs = store
        .list_runs(&RunFilter::default(), page)
        .await
        .expect("runs")
        .items;
    let succeeded = runs
        .iter()
        .filter(|r| r.status == RunStatus::Succeeded)
        .count();
    let mut ticks: BTreeMap<String, Vec<DateTime<Utc>>> = BTreeMap::new();
    for run in &runs {
        let key = run.trigger.detail["schedule"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        let tick = run.trigger.detail["tick"].as_str().unwrap_or("");
        let tick = DateTime::parse_from_rfc3339(tick).expect("tick").to_utc();
        ticks.entry(key).or_default().push(tick);
    }
    let first = ticks.values().flatten().min().copied().unwrap_or(begun);
    let cutoff = ended - chrono::Duration::seconds(1);
    let expected = usize::try_from((cutoff - first).num_milliseconds() / 1000 + 1).unwrap_or(0);
    let (mut missed, mut doubled) = (0, 0);
    for i in 0..schedules {
        let mut mine = ticks.remove(&format!("s{i:04}")).unwrap_or_default();
        mine.retain(|t| *t <= cutoff);
        mine.sort_unstable();
        let before = mine.len();
        mine.dedup();
        doubled += before - mine.len();
        missed += expected.saturating_sub(mine.len());
    }
    Checked {
        missed,
        doubled,
        succeeded,
    }
}

/// Process CPU time (user + system) since it was made.
struct Usage(Duration);

impl Usage {
    fn now() -> Self {
        Self(cpu())
    }

    fn elapsed(&self) -> Duration {
        cpu().saturating_sub(self.0)
    }
}

fn cpu() -> Duration {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let time = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
    };
    time(usage.user_time()) + time(usage.system_time())
}
