//! Schedules end to end: a schedule added through the real server's API starts runs that
//! its workers run; paused, it survives a restart paused; removed, it stops.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::octo;
use crate::server::Server;

const TICK: &str = "steps:\n  - name: note\n    set_fact: { value: '{{ params.n }}' }\nparams:\n  n: { type: integer, default: 0 }\n";
const NIGHTLY: &str = "schedule: { cron: '30 2 * * *', timezone: Europe/Brussels }\nsteps:\n  - name: note\n    set_fact: { value: 1 }\n";

/// The runs schedule `id` started that have succeeded.
async fn succeeded(server: &Server, id: &str) -> Vec<Value> {
    let (code, page) = server
        .get("/api/v1/runs?trigger=schedule&per_page=500")
        .await;
    assert_eq!(code, 200, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["trigger"]["detail"]["schedule"] == id && r["status"] == "succeeded")
        .cloned()
        .collect()
}

/// Every run schedule `id` started, whatever its status.
async fn started(server: &Server, id: &str) -> usize {
    let (_, page) = server
        .get("/api/v1/runs?trigger=schedule&per_page=500")
        .await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["trigger"]["detail"]["schedule"] == id)
        .count()
}

/// Waits (bounded) until schedule `id` has at least `n` succeeded runs.
async fn until_runs(server: &Server, id: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let runs = succeeded(server, id).await;
        if runs.len() >= n {
            return runs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "schedule {id} made {} runs in 20 s, expected {n}",
            runs.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn post_empty(server: &Server, path: &str) -> (u16, Value) {
    server.post(path, &json!({})).await
}

async fn delete(server: &Server, path: &str) -> u16 {
    server
        .http
        .delete(format!("{}{path}", server.url))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_schedule_runs_survives_a_restart_and_stops_when_removed() {
    let octo = octo().flow("tick", TICK).flow("nightly", NIGHTLY);
    let server = Server::start(&octo, &[]);
    let (code, flows) = server.get("/api/v1/flows").await;
    assert_eq!(code, 200, "{flows}");
    let next: Vec<(&str, bool)> = flows["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["next_fire"].is_string()))
        .collect();
    assert_eq!(next, [("nightly", true), ("tick", false)]);

    let (code, added) = server
        .post(
            "/api/v1/schedules",
            &json!({"flow": "tick", "every_seconds": 1, "params": {"n": 7}}),
        )
        .await;
    assert_eq!(code, 201, "{added}");
    let id = added["id"].as_str().unwrap().to_owned();
    let runs = until_runs(&server, &id, 2).await;
    assert_eq!(runs[0]["data"]["note"], 7);
    assert_eq!(runs[0]["trigger"]["kind"], "schedule");

    let (code, paused) = post_empty(&server, &format!("/api/v1/schedules/{id}/pause")).await;
    assert_eq!((code, &paused["paused"]), (200, &json!(true)), "{paused}");
    let (out, _) = server.signal_and_wait(Signal::SIGTERM);
    out.success();

    let server = Server::start(&octo, &[]);
    let (_, list) = server.get("/api/v1/schedules").await;
    let mine = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(mine["paused"], true, "the pause survived the restart");
    let before = started(&server, &id).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(started(&server, &id).await, before, "paused: nothing fired");

    let (code, _) = post_empty(&server, &format!("/api/v1/schedules/{id}/resume")).await;
    assert_eq!(code, 200);
    until_runs(&server, &id, before + 2).await;

    assert_eq!(
        delete(&server, &format!("/api/v1/schedules/{id}")).await,
        204
    );
    let after = started(&server, &id).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(started(&server, &id).await, after, "removed: nothing fired");
    assert_eq!(
        delete(&server, &format!("/api/v1/schedules/{id}")).await,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_scheduler_fires_nothing_but_the_api_still_adds() {
    let server = Server::start(&octo().flow("tick", TICK), &["--no-scheduler"]);
    let (code, added) = server
        .post(
            "/api/v1/schedules",
            &json!({"flow": "tick", "every_seconds": 1}),
        )
        .await;
    assert_eq!(code, 201, "{added}");
    assert!(added["next_fire"].is_string());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(started(&server, added["id"].as_str().unwrap()).await, 0);
}

/// A flow in the spooler's form (top-level `every_seconds`, no `concurrency`) under `serve`:
/// a run that outlasts the interval holds the flow's lock, visible in `GET /api/v1/locks`,
/// and the ticks meanwhile are skipped — no run overlaps, none piles up in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spooler_flow_never_overlaps_itself() {
    never_overlaps("every_seconds: 1").await;
}

/// The same with the spooler's other form, a top-level `cron` (6 fields, seconds first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spooler_cron_flow_never_overlaps_itself() {
    never_overlaps("cron: '* * * * * *'").await;
}

/// A flow with this top-level cadence (one second) and a 2.5 s step, under `serve`: at
/// most one run is queued or running at a time, its lock shows in `GET /api/v1/locks`, and
/// in 6 s no more than 3 runs start.
async fn never_overlaps(cadence: &str) {
    let flow =
        format!("{cadence}\nsteps:\n  - name: long\n    exec: {{ command: [sleep, '2.5'] }}\n");
    let o = octo().flow("spool", &flow);
    let server = Server::start(&o, &[]);
    let mut saw_lock = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    while tokio::time::Instant::now() < deadline {
        let (_, runs) = server.get("/api/v1/runs?flow=spool&per_page=100").await;
        let statuses: Vec<&str> = runs["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["status"].as_str())
            .collect();
        let active = statuses
            .iter()
            .filter(|s| ["queued", "running"].contains(s))
            .count();
        assert!(active <= 1, "runs overlap or pile up: {statuses:?}");
        let (_, locks) = server.get("/api/v1/locks").await;
        if locks["items"]
            .as_array()
            .is_some_and(|l| l.iter().any(|lock| lock["flow"] == "spool"))
        {
            saw_lock = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saw_lock, "the flow's lock never showed in /api/v1/locks");
    let (_, runs) = server.get("/api/v1/runs?flow=spool&per_page=100").await;
    let total = runs["total"].as_u64().unwrap();
    assert!((1..=3).contains(&total), "{runs}");
}

/// A top-level 6-field cron with seconds first (`* * * * * *`) fires every second: its
/// runs' ticks are whole seconds, one after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_with_seconds_fires_each_second() {
    let flow = "cron: '* * * * * *'\nsteps:\n  - name: note\n    set_fact: { value: 1 }\n";
    let server = Server::start(&octo().flow("second", flow), &[]);
    let (_, list) = server.get("/api/v1/schedules").await;
    assert_eq!(list["items"][0]["cron"], "* * * * * *", "{list}");
    let runs = until_runs(&server, "flow:second:0", 3).await;
    let mut ticks: Vec<chrono::DateTime<chrono::Utc>> = runs
        .iter()
        .map(|r| {
            r["trigger"]["detail"]["tick"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    ticks.sort();
    for pair in ticks.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::TimeDelta::seconds(1),
            "{ticks:?}"
        );
    }
    assert!(
        ticks.iter().all(|t| t.timestamp_subsec_nanos() == 0),
        "{ticks:?}"
    );
}
