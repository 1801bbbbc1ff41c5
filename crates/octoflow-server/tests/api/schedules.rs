//! `/api/v1/schedules` and the flows' `next_fire`: file and API schedules listed, added with
//! checks, paused, resumed and removed, taking effect at once.

use chrono::Duration;
use insta::assert_json_snapshot;
use octoflow_core::store::{Role, RunStatus};
use serde_json::{Value, json};

use crate::support::{App, delete, get, post};

/// The runs a schedule started, oldest first.
async fn runs_of(app: &App, id: &str) -> Vec<Value> {
    let answer = app
        .send(get("/api/v1/runs?trigger=schedule&per_page=500"))
        .await
        .expect(200)
        .json();
    let mut runs: Vec<Value> = answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["trigger"]["detail"]["schedule"] == id)
        .cloned()
        .collect();
    runs.reverse();
    runs
}

/// Moves the scheduler's clock on by `minutes`, a minute at a time.
async fn minutes(app: &App, minutes: i64) {
    for _ in 0..minutes {
        app.clock.advance(Duration::minutes(1));
        app.scheduler.settle().await;
    }
}

#[tokio::test]
async fn file_schedules_are_listed_with_their_next_fire() {
    let app = App::standard().build();
    let list = app.send(get("/api/v1/schedules")).await.expect(200).json();
    assert_json_snapshot!(list, @r#"
    {
      "items": [
        {
          "id": "flow:hello:0",
          "flow": "hello",
          "source": "file",
          "cron": "0 * * * *",
          "every_seconds": null,
          "timezone": null,
          "catchup": "last",
          "params": {},
          "paused": false,
          "removed": false,
          "last_fire": null,
          "next_fire": "2026-06-01T09:00:00Z",
          "created_at": null
        }
      ],
      "page": 1,
      "per_page": 50,
      "total": 1
    }
    "#);
    let flows = app.send(get("/api/v1/flows")).await.expect(200).json();
    let next: Vec<(&str, &Value)> = flows["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), &f["next_fire"]))
        .collect();
    assert_eq!(
        next,
        [
            ("broken", &Value::Null),
            ("hello", &json!("2026-06-01T09:00:00Z")),
            ("skipper", &Value::Null)
        ]
    );
    let hello = app
        .send(get("/api/v1/flows/hello"))
        .await
        .expect(200)
        .json();
    assert_eq!(hello["next_fire"], "2026-06-01T09:00:00Z");
}

#[tokio::test]
async fn an_added_schedule_fires_until_paused_and_stops_when_removed() {
    let app = App::standard().scheduler().build();
    let answer = app
        .send(post("/api/v1/schedules").json(&json!({
            "flow": "hello",
            "cron": "*/10 * * * *",
            "timezone": "Europe/Brussels",
            "catchup": "all",
            "params": {"count": 3}
        })))
        .await
        .expect(201);
    let added = answer.json();
    let id = added["id"].as_str().unwrap().to_owned();
    assert_eq!(
        answer.header("location"),
        Some(format!("/api/v1/schedules/{id}").as_str())
    );
    assert_eq!(added["source"], "api");
    assert_eq!(added["next_fire"], "2026-06-01T08:10:00Z");
    assert_eq!(added["created_at"], "2026-06-01T08:00:00Z");

    minutes(&app, 25).await;
    let runs = runs_of(&app, &id).await;
    let ticks: Vec<&Value> = runs
        .iter()
        .map(|r| &r["trigger"]["detail"]["tick"])
        .collect();
    assert_eq!(
        ticks,
        [
            &json!("2026-06-01T08:10:00Z"),
            &json!("2026-06-01T08:20:00Z")
        ]
    );
    assert_eq!(runs[0]["params"], json!({"count": 3}));
    assert_eq!(runs[0]["trigger"]["kind"], "schedule");
    let status: RunStatus = serde_json::from_value(runs[0]["status"].clone()).unwrap();
    assert_eq!(status, RunStatus::Queued);

    let paused = app
        .send(post(&format!("/api/v1/schedules/{id}/pause")))
        .await
        .expect(200)
        .json();
    assert_eq!(
        (&paused["paused"], &paused["next_fire"]),
        (&json!(true), &Value::Null)
    );
    assert_eq!(paused["last_fire"], "2026-06-01T08:20:00Z");
    minutes(&app, 20).await;
    assert_eq!(runs_of(&app, &id).await.len(), 2, "paused: nothing fired");

    let resumed = app
        .send(post(&format!("/api/v1/schedules/{id}/resume")))
        .await
        .expect(200)
        .json();
    assert_eq!(resumed["paused"], false);
    assert_eq!(resumed["next_fire"], "2026-06-01T08:50:00Z");
    minutes(&app, 10).await;
    assert_eq!(
        runs_of(&app, &id).await.len(),
        3,
        "resumed without catching up"
    );

    app.send(delete(&format!("/api/v1/schedules/{id}")))
        .await
        .expect(204);
    app.send(delete(&format!("/api/v1/schedules/{id}")))
        .await
        .expect(404);
    minutes(&app, 30).await;
    assert_eq!(runs_of(&app, &id).await.len(), 3, "removed: nothing fired");
    let list = app.send(get("/api/v1/schedules")).await.expect(200).json();
    assert_eq!(list["total"], 1, "only the file schedule is left");
}

#[tokio::test]
async fn a_file_schedule_pauses_resumes_and_is_removed_for_good() {
    let app = App::standard().scheduler().build();
    let paused = app
        .send(post("/api/v1/schedules/flow:hello:0/pause"))
        .await
        .expect(200)
        .json();
    assert_eq!(paused["paused"], true);
    app.scheduler.settle().await;
    let hello = app
        .send(get("/api/v1/flows/hello"))
        .await
        .expect(200)
        .json();
    assert_eq!(hello["next_fire"], Value::Null);
    minutes(&app, 70).await;
    assert!(runs_of(&app, "flow:hello:0").await.is_empty());

    app.send(post("/api/v1/schedules/flow:hello:9/pause"))
        .await
        .expect(404);
    app.send(post("/api/v1/schedules/flow:hello:0/resume"))
        .await
        .expect(200);
    minutes(&app, 60).await;
    assert_eq!(runs_of(&app, "flow:hello:0").await.len(), 1);

    app.send(delete("/api/v1/schedules/flow:hello:0"))
        .await
        .expect(204);
    app.send(delete("/api/v1/schedules/flow:hello:0"))
        .await
        .expect(204);
    app.send(delete("/api/v1/schedules/flow:hello:9"))
        .await
        .expect(404);
    minutes(&app, 130).await;
    assert_eq!(
        runs_of(&app, "flow:hello:0").await.len(),
        1,
        "removed: nothing fired"
    );
    let list = app.send(get("/api/v1/schedules")).await.expect(200).json();
    let view = &list["items"][0];
    assert_eq!(view["id"], "flow:hello:0");
    assert_eq!(
        (&view["removed"], &view["next_fire"]),
        (&Value::Bool(true), &Value::Null)
    );
    let refused = app
        .send(post("/api/v1/schedules/flow:hello:0/resume"))
        .await
        .expect(409)
        .json();
    assert_json_snapshot!(refused, @r#"
    {
      "error": {
        "code": "conflict",
        "message": "schedule `flow:hello:0` was removed; declare another cadence in its flow file, or add a schedule",
        "details": {}
      }
    }
    "#);
}

#[tokio::test]
async fn a_bad_schedule_names_its_field() {
    fn field(answer: &Value) -> &str {
        answer["error"]["details"]["field"].as_str().unwrap_or("")
    }
    let app = App::standard().build();
    let answer = app
        .send(post("/api/v1/schedules").json(&json!({"flow": "hello", "cron": "61 * * * *"})))
        .await
        .expect(400);
    assert_json_snapshot!(answer.json(), @r#"
    {
      "error": {
        "code": "bad_request",
        "message": "invalid schedule: `cron`: invalid cron expression `61 * * * *`: number out of bounds",
        "details": {
          "field": "cron",
          "errors": [
            {
              "field": "cron",
              "message": "invalid cron expression `61 * * * *`: number out of bounds"
            }
          ]
        }
      }
    }
    "#);
    let cases = [
        (
            json!({"flow": "hello", "cron": "0 * * * *", "every_seconds": 5}),
            400,
            "cron",
        ),
        (json!({"flow": "hello"}), 400, "cron"),
        (
            json!({"flow": "hello", "every_seconds": 0}),
            400,
            "every_seconds",
        ),
        (
            json!({"flow": "hello", "every_seconds": 5, "timezone": "Mars/Base"}),
            400,
            "timezone",
        ),
    ];
    for (body, status, expected) in cases {
        let answer = app
            .send(post("/api/v1/schedules").json(&body))
            .await
            .expect(status)
            .json();
        assert_eq!(field(&answer), expected, "{body}: {answer}");
    }
    let unknown = app
        .send(
            post("/api/v1/schedules")
                .json(&json!({"flow": "hello", "every_seconds": 5, "catchup": "some"})),
        )
        .await
        .expect(400)
        .json();
    assert_eq!(unknown["error"]["details"]["path"], "catchup");
    let params = app
        .send(
            post("/api/v1/schedules")
                .json(&json!({"flow": "hello", "every_seconds": 5, "params": {"count": "x"}})),
        )
        .await
        .expect(400)
        .json();
    assert_eq!(params["error"]["code"], "invalid_params");
    app.send(post("/api/v1/schedules").json(&json!({"flow": "nope", "every_seconds": 5})))
        .await
        .expect(404);
    app.send(post("/api/v1/schedules").json(&json!({"flow": "broken", "every_seconds": 5})))
        .await
        .expect(422);
    let list = app.send(get("/api/v1/schedules")).await.expect(200).json();
    assert_eq!(list["total"], 1, "nothing was added");
}

#[tokio::test]
async fn changing_schedules_needs_the_admin_role() {
    let app = App::standard().build();
    let viewer = app.token(Role::Viewer, None).await;
    let operator = app.token(Role::Operator, None).await;
    let admin = app.token(Role::Admin, None).await;
    app.send(get("/api/v1/schedules").bearer(&viewer))
        .await
        .expect(200);
    let body = json!({"flow": "hello", "every_seconds": 60});
    app.send(post("/api/v1/schedules").bearer(&operator).json(&body))
        .await
        .expect(403);
    let added = app
        .send(post("/api/v1/schedules").bearer(&admin).json(&body))
        .await
        .expect(201)
        .json();
    let id = added["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/schedules/{id}/pause"),
        format!("/api/v1/schedules/{id}/resume"),
    ] {
        app.send(post(&path).bearer(&operator)).await.expect(403);
        app.send(post(&path).bearer(&admin)).await.expect(200);
    }
    app.send(delete(&format!("/api/v1/schedules/{id}")).bearer(&operator))
        .await
        .expect(403);
    app.send(delete(&format!("/api/v1/schedules/{id}")).bearer(&admin))
        .await
        .expect(204);
}
