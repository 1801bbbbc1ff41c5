//! Runs: list and filters, show, logs (text and followed), files, cancel, retry, tracker
//! and callbacks — with this node's workers running them.

use std::time::Duration;

use axum::http::StatusCode;
use http_body_util::BodyExt;
use insta::assert_json_snapshot;
use octoflow_core::store::RunId;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::{App, CALLBACK_KEY, get, post};

pub(crate) async fn start(app: &App, flow: &str, body: &Value) -> String {
    let run = app
        .send(post(&format!("/api/v1/flows/{flow}/runs")).json(body))
        .await
        .expect(201)
        .json();
    run["id"].as_str().unwrap().to_owned()
}

pub(crate) fn callback_token(id: &str) -> String {
    let signer = octoflow_core::service::CallbackSigner::new(CALLBACK_KEY, None);
    signer.token(&id.parse::<RunId>().unwrap())
}

#[tokio::test]
async fn a_finished_run_shows_steps_logs_and_tracker() {
    let app = App::standard().workers().build();
    let id = start(&app, "hello", &json!({"params": {"count": 2}})).await;
    let run = app.finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["steps"][0]["step"], "greet");
    assert_eq!(run["steps"][1]["status"], "succeeded");
    assert!(run.get("callback_url").is_none());

    let logs = app
        .send(get(&format!("/api/v1/runs/{id}/logs")))
        .await
        .expect(200);
    assert!(
        logs.header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(
        logs.text
            .lines()
            .any(|l| l.ends_with(" stdout greet: hello 2")),
        "{}",
        logs.text
    );
    let only = app
        .send(get(&format!("/api/v1/runs/{id}/logs?step=done")))
        .await
        .expect(200);
    assert!(!only.text.contains("hello 2"), "{}", only.text);

    let tracker = app
        .send(get(&format!("/api/v1/runs/{id}/tracker")))
        .await
        .expect(200)
        .json();
    assert_eq!(tracker["job_ticket_id"], id);
    assert_eq!(tracker["job_name"], "hello");
    assert_eq!(
        tracker["job_management"]["steps"],
        json!({"1": "greet", "2": "done"})
    );
    assert_eq!(tracker["job_management"]["job_status"], "succeeded");
}

#[tokio::test]
async fn runs_are_listed_with_filters() {
    let app = App::standard().build();
    let a = start(&app, "hello", &json!({})).await;
    let _b = start(&app, "skipper", &json!({})).await;
    app.send(post(&format!("/api/v1/runs/{a}/cancel")))
        .await
        .expect(200);

    let all = app.send(get("/api/v1/runs")).await.expect(200).json();
    assert_eq!(all["total"], 2);
    let hello = app
        .send(get("/api/v1/runs?flow=hello"))
        .await
        .expect(200)
        .json();
    assert_eq!(hello["items"][0]["id"], a);
    let cancelled = app
        .send(get(
            "/api/v1/runs?status=cancelled,failed&trigger=manual&since=2000-01-01T00:00:00Z",
        ))
        .await
        .expect(200)
        .json();
    assert_eq!(cancelled["total"], 1);
    let none = app
        .send(get("/api/v1/runs?until=2000-01-01T00:00:00Z"))
        .await
        .expect(200)
        .json();
    assert_eq!(none["total"], 0);
    let paged = app
        .send(get("/api/v1/runs?per_page=1&page=2"))
        .await
        .expect(200)
        .json();
    assert_eq!(
        (
            paged["items"].as_array().unwrap().len(),
            paged["per_page"].clone()
        ),
        (1, json!(1))
    );

    let bad = app
        .send(get("/api/v1/runs?status=done"))
        .await
        .expect(400)
        .json();
    assert_json_snapshot!(bad, @r#"
    {
      "error": {
        "code": "bad_request",
        "message": "invalid query field `status`: unknown run status `done`; use queued, running, succeeded, failed, cancelled, timed_out",
        "details": {
          "field": "status"
        }
      }
    }
    "#);
    let bad = app
        .send(get("/api/v1/runs?since=yesterday"))
        .await
        .expect(400)
        .json();
    assert_eq!(bad["error"]["details"]["field"], "since");
    let bad = app
        .send(get("/api/v1/runs?parent=nope"))
        .await
        .expect(400)
        .json();
    assert_eq!(bad["error"]["details"]["field"], "parent");
    let orphans = app
        .send(get(&format!("/api/v1/runs?parent={a}")))
        .await
        .expect(200)
        .json();
    assert_eq!(orphans["total"], 0, "a run without children");
    let bad = app
        .send(get("/api/v1/runs?per_page=501"))
        .await
        .expect(400)
        .json();
    assert_eq!(bad["error"]["details"]["field"], "per_page");
    app.send(get("/api/v1/runs/not-a-uuid")).await.expect(404);
    app.send(get(&format!("/api/v1/runs/{}", RunId::new())))
        .await
        .expect(404);
}

#[tokio::test]
async fn cancel_and_retry_follow_the_run_status() {
    let app = App::standard().build();
    let id = start(&app, "hello", &json!({"params": {"count": 5}})).await;
    let answer = app
        .send(post(&format!("/api/v1/runs/{id}/retry")))
        .await
        .expect(409)
        .json();
    assert_eq!(answer["error"]["details"]["status"], "queued");
    let run = app
        .send(post(&format!("/api/v1/runs/{id}/cancel")))
        .await
        .expect(200)
        .json();
    assert_eq!(run["status"], "cancelled");
    let again = app
        .send(post(&format!("/api/v1/runs/{id}/cancel")))
        .await
        .expect(409)
        .json();
    assert_eq!(again["error"]["code"], "conflict");
    let retried = app
        .send(post(&format!("/api/v1/runs/{id}/retry")).json(&json!({"from_failed": true})))
        .await
        .expect(201)
        .json();
    assert_ne!(retried["id"], run["id"]);
    assert_eq!(retried["params"], json!({"count": 5}));
    assert_eq!(retried["trigger"]["kind"], "retry");
    app.send(post(&format!("/api/v1/runs/{}/cancel", RunId::new())))
        .await
        .expect(404);
}

#[tokio::test]
async fn run_files_are_confined_to_the_workspace() {
    let app = App::standard().build();
    let id = start(&app, "hello", &json!({})).await;
    let workspace = app.dir.path().join("runs").join(&id);
    std::fs::create_dir_all(workspace.join("out")).unwrap();
    std::fs::write(workspace.join("out/report.csv"), "a,b\n1,2\n").unwrap();
    std::fs::write(app.dir.path().join("secret.txt"), "no").unwrap();
    std::os::unix::fs::symlink(app.dir.path().join("secret.txt"), workspace.join("link")).unwrap();

    let file = app
        .send(get(&format!("/api/v1/runs/{id}/files/out/report.csv")))
        .await
        .expect(200);
    assert_eq!(file.text, "a,b\n1,2\n");
    assert_eq!(file.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(file.header("content-length"), Some("8"));
    let up = app
        .send(get(&format!(
            "/api/v1/runs/{id}/files/out/..%2F..%2Fsecret.txt"
        )))
        .await
        .expect(400)
        .json();
    assert_eq!(up["error"]["code"], "bad_request");
    app.send(get(&format!("/api/v1/runs/{id}/files/link")))
        .await
        .expect(400);
    app.send(get(&format!("/api/v1/runs/{id}/files/out")))
        .await
        .expect(400);
    app.send(get(&format!("/api/v1/runs/{id}/files/nope.txt")))
        .await
        .expect(404);
}

#[tokio::test]
async fn callbacks_need_the_runs_token_and_end_the_wait() {
    let app = App::standard().workers().build();
    let id = start(&app, "skipper", &json!({})).await;
    let token = callback_token(&id);
    let url = format!("/api/v1/runs/{id}/callback");

    let missing = app
        .send(post(&url).json(&json!({})))
        .await
        .expect(401)
        .json();
    assert_eq!(missing["error"]["code"], "unauthenticated");
    app.send(
        post(&format!(
            "{url}?token={}",
            callback_token(&RunId::new().to_string())
        ))
        .json(&json!({})),
    )
    .await
    .expect(401);
    app.send(post(&format!("{url}?token={token}")).json(&json!({"bogus": 1})))
        .await
        .expect(400);

    // Follow the log while the job reports.
    let router = app.router();
    let follow = tokio::spawn({
        let req = get(&format!("/api/v1/runs/{id}/logs?follow=true")).build();
        async move {
            let response = router.oneshot(req).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                response.headers()["content-type"].to_str().unwrap(),
                "text/event-stream"
            );
            let body =
                tokio::time::timeout(Duration::from_secs(20), response.into_body().collect())
                    .await
                    .expect("the event stream ends with the run")
                    .unwrap()
                    .to_bytes();
            String::from_utf8(body.to_vec()).unwrap()
        }
    });

    let progress = app
        .send(
            post(&url)
                .header("x-octoflow-callback-token", &token)
                .json(&json!({"progress": {"current": 1, "total": 2}, "message": "half way"})),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(progress["run_id"], id);
    let shown = app
        .send(get(&format!("/api/v1/runs/{id}")))
        .await
        .expect(200)
        .json();
    assert_eq!(shown["progress"]["current"], 1.0);

    // The wait step must be waiting before the end is reported.
    for _ in 0..200 {
        let run = app.send(get(&format!("/api/v1/runs/{id}"))).await.json();
        if run["steps"].as_array().is_some_and(|s| !s.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    app.send(
        post(&format!("{url}?token={token}"))
            .json(&json!({"status": "succeeded", "data": {"n": 1}})),
    )
    .await
    .expect(200);
    let run = app.finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");

    let events = follow.await.unwrap();
    assert!(events.contains("event: log\n"), "{events}");
    assert!(events.contains("callback: half way"), "{events}");
    assert!(
        events
            .trim_end()
            .ends_with("event: end\ndata: {\"status\":\"succeeded\"}"),
        "{events}"
    );

    let ended = app
        .send(post(&format!("{url}?token={token}")).json(&json!({"message": "late"})))
        .await
        .expect(409)
        .json();
    assert_eq!(ended["error"]["code"], "conflict");
}

#[tokio::test]
async fn following_an_ended_run_sends_its_lines_and_the_end() {
    let app = App::standard().workers().build();
    let id = start(&app, "hello", &json!({})).await;
    app.finished(&id).await;
    let response = app
        .router()
        .oneshot(get(&format!("/api/v1/runs/{id}/logs?follow=true")).build())
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains("\"line\":\"hello 1\""), "{text}");
    assert!(
        text.contains("event: end\ndata: {\"status\":\"succeeded\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn locks_and_state() {
    let app = App::standard().build();
    let locks = app.send(get("/api/v1/locks")).await.expect(200).json();
    assert_eq!(
        locks,
        json!({"items": [], "page": 1, "per_page": 50, "total": 0})
    );
    app.send(crate::support::delete("/api/v1/locks"))
        .await
        .expect(200);

    let state = app
        .send(get("/api/v1/state/hello"))
        .await
        .expect(200)
        .json();
    assert_eq!(state, json!({}));
    let state = app
        .send(crate::support::put("/api/v1/state/hello/cursor").json(&json!({"at": 42})))
        .await
        .expect(200)
        .json();
    assert_eq!(state, json!({"cursor": {"at": 42}}));
    app.send(crate::support::put("/api/v1/state/hello/cursor"))
        .await
        .expect(400);
    let state = app
        .send(get("/api/v1/state/hello"))
        .await
        .expect(200)
        .json();
    assert_eq!(state["cursor"]["at"], 42);
}

#[tokio::test]
async fn probes_and_metrics() {
    let app = App::standard().build();
    assert_eq!(
        app.send(get("/healthz")).await.expect(200).json(),
        json!({"status": "ok"})
    );
    assert_eq!(
        app.send(get("/readyz")).await.expect(200).json(),
        json!({"status": "ready"})
    );
    app.send(get("/metrics")).await.expect(404);
    let app = App::standard()
        .flow(
            "ping.yml",
            "name: ping\ntriggers:\n  - webhook: { path: \"/ping/{who}\", methods: [GET], dryrun: true }\nparams:\n  who: { type: string }\nsteps:\n  - { name: one, debug: { msg: hi } }\n",
        )
        .metrics()
        .build();
    let id = start(&app, "hello", &json!({})).await;
    app.send(get(&format!("/api/v1/runs/{id}")))
        .await
        .expect(200);
    app.send(get("/ping/ann")).await.expect(200);
    app.send(get("/nowhere")).await.expect(404);
    for made_up in ["BREW", "X-ONE", "X-TWO"] {
        let method = axum::http::Method::from_bytes(made_up.as_bytes()).unwrap();
        app.send(crate::support::request(method, "/nowhere")).await;
    }
    let metrics = app.send(get("/metrics")).await.expect(200);
    assert!(
        !metrics.text.contains("BREW") && !metrics.text.contains("X-ONE"),
        "made-up methods make no series of their own"
    );
    // Each answer is timed under the route it matched, never under its own path.
    for series in [
        r#"octoflow_http_request_seconds_count{method="POST",route="/api/v1/flows/{name}/runs",status="201"}"#,
        r#"octoflow_http_request_seconds_count{method="GET",route="/api/v1/runs/{id}",status="200"}"#,
        r#"octoflow_http_request_seconds_count{method="GET",route="/ping/{who}",status="200"}"#,
        r#"octoflow_http_request_seconds_count{method="GET",route="unmatched",status="404"}"#,
        r#"octoflow_http_request_seconds_count{method="other",route="unmatched",status="404"}"#,
    ] {
        assert!(
            metrics.text.contains(series),
            "{series} in {}",
            metrics.text
        );
    }
    // Durations are histograms, whose buckets add up across nodes.
    for bucket in [
        r#"octoflow_http_request_seconds_bucket{method="GET",route="/ping/{who}",status="200",le="0.0005"}"#,
        r#"octoflow_http_request_seconds_bucket{method="GET",route="/ping/{who}",status="200",le="+Inf"} 1"#,
    ] {
        assert!(
            metrics.text.contains(bucket),
            "{bucket} in {}",
            metrics.text
        );
    }
    assert!(!metrics.text.contains(&id), "{}", metrics.text);
    assert!(!metrics.text.contains("/ping/ann"), "{}", metrics.text);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(
        metrics.text.contains("octoflow_queue_depth"),
        "{}",
        metrics.text
    );
}
