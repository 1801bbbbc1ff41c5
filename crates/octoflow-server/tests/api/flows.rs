//! Flows: list, show, write, remove, validate, start and dry run.

use serde_json::json;

use crate::support::{App, HELLO, delete, get, post, put};

#[tokio::test]
async fn flows_are_listed_with_params_triggers_and_problems() {
    let app = App::standard().build();
    let list = app.send(get("/api/v1/flows")).await.expect(200).json();
    assert_eq!(list["total"], 3);
    assert_eq!(
        (list["page"].clone(), list["per_page"].clone()),
        (json!(1), json!(50))
    );
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["broken", "hello", "skipper"]);
    let hello = &list["items"][1];
    assert_eq!(hello["description"], "says hello");
    assert_eq!(hello["path"], "hello.yml");
    assert_eq!(hello["valid"], true);
    assert_eq!(hello["params"]["count"]["type"], "integer");
    assert_eq!(hello["params"]["count"]["default"], 1);
    assert_eq!(hello["triggers"][0]["kind"], "schedule");
    assert_eq!(hello["triggers"][0]["cron"], "0 * * * *");
    assert_eq!(hello["last_run"], json!(null));
    // The scheduler's test clock shows 2026-06-01T08:00:00Z; `hello` fires hourly.
    assert_eq!(hello["next_fire"], json!("2026-06-01T09:00:00Z"));
    let broken = &list["items"][0];
    assert_eq!(broken["valid"], false);
    assert_eq!(broken["version"], json!(null));
    let problem = &broken["problems"][0];
    assert_eq!(problem["line"], 4);
    assert!(problem["column"].is_number());
    assert!(
        problem["message"].as_str().unwrap().contains("comand"),
        "{problem}"
    );

    let run = app
        .send(post("/api/v1/flows/hello/runs"))
        .await
        .expect(201)
        .json();
    let list = app
        .send(get("/api/v1/flows?per_page=1&page=2"))
        .await
        .expect(200)
        .json();
    assert_eq!(list["items"][0]["name"], "hello");
    assert_eq!(list["items"][0]["last_run"]["id"], run["id"]);
    assert_eq!(list["items"][0]["last_run"]["status"], "queued");
}

#[tokio::test]
async fn a_flow_shows_its_source_version_and_steps() {
    let app = App::standard().build();
    let flow = app
        .send(get("/api/v1/flows/hello"))
        .await
        .expect(200)
        .json();
    assert_eq!(flow["source"], HELLO);
    assert!(!flow["version"].as_str().unwrap().is_empty(), "{flow}");
    assert_eq!(
        flow["steps"][0],
        json!({"name": "greet", "type": "exec", "when": [], "depends": null, "result_key": "greet"})
    );
    assert_eq!(flow["concurrency"], json!(null));
    let skipper = app
        .send(get("/api/v1/flows/skipper"))
        .await
        .expect(200)
        .json();
    assert_eq!(skipper["concurrency"]["policy"], "skip");
    app.send(get("/api/v1/flows/nope")).await.expect(404);
}

#[tokio::test]
async fn flows_are_written_replaced_and_removed() {
    let app = App::standard().build();
    let v1 = "name: fresh\nsteps:\n  - name: a\n    set_fact: { value: 1 }\n";
    let v2 = "name: fresh\ndescription: two\nsteps:\n  - name: a\n    set_fact: { value: 2 }\n";
    let created = app
        .send(put("/api/v1/flows/fresh").text(v1))
        .await
        .expect(201)
        .json();
    assert_eq!(created["source"], v1);
    assert_eq!(
        std::fs::read_to_string(app.dir.path().join("flows/fresh.yml")).unwrap(),
        v1
    );
    let replaced = app
        .send(put("/api/v1/flows/fresh").text(v2))
        .await
        .expect(200)
        .json();
    assert_eq!(replaced["description"], "two");
    assert_ne!(created["version"], replaced["version"]);
    assert!(app.flows.flow("fresh").is_some());

    // A name that differs from the path is refused.
    let answer = app
        .send(put("/api/v1/flows/other").text(v1))
        .await
        .expect(422)
        .json();
    assert_eq!(answer["error"]["details"]["errors"][0]["path"], "name");

    app.send(delete("/api/v1/flows/fresh")).await.expect(204);
    assert!(!app.dir.path().join("flows/fresh.yml").exists());
    app.send(delete("/api/v1/flows/fresh")).await.expect(404);
}

#[tokio::test]
async fn validate_always_answers_200() {
    let app = App::standard().build();
    let ok = app
        .send(post("/api/v1/validate").text(HELLO))
        .await
        .expect(200)
        .json();
    assert_eq!(ok, json!({"valid": true, "errors": []}));
    let bad = app
        .send(post("/api/v1/validate").text("name: x\nsteps:\n  - name: a\n    nope: {}\n"))
        .await
        .expect(200)
        .json();
    assert_eq!(bad["valid"], false);
    assert_eq!(bad["errors"][0]["line"], 3, "{bad}");
    let syntax = app
        .send(post("/api/v1/validate").text("steps: [\n"))
        .await
        .expect(200)
        .json();
    assert_eq!(syntax["valid"], false);
    assert!(syntax["errors"][0]["line"].is_number(), "{syntax}");
    // Nothing was written.
    assert!(app.flows.entry("x").is_none());
}

#[tokio::test]
async fn runs_are_started_once_per_idempotency_key() {
    let app = App::standard().build();
    let answer = app
        .send(
            post("/api/v1/flows/hello/runs")
                .json(&json!({"params": {"count": 3}, "idempotency_key": "k1"})),
        )
        .await
        .expect(201);
    assert_eq!(answer.header("x-octoflow-admission"), Some("created"));
    let run = answer.json();
    assert_eq!(
        answer.header("location"),
        Some(format!("/api/v1/runs/{}", run["id"].as_str().unwrap()).as_str())
    );
    assert_eq!(run["status"], "queued");
    assert_eq!(run["params"], json!({"count": 3}));
    assert_eq!(run["flow"], "hello");
    let again = app
        .send(
            post("/api/v1/flows/hello/runs")
                .json(&json!({"params": {"count": 3}, "idempotency_key": "k1"})),
        )
        .await
        .expect(200);
    assert_eq!(again.header("x-octoflow-admission"), Some("existing"));
    assert_eq!(again.json()["id"], run["id"]);
}

#[tokio::test]
async fn a_flow_without_a_valid_version_cannot_run() {
    let app = App::standard().build();
    let answer = app
        .send(post("/api/v1/flows/broken/runs"))
        .await
        .expect(422)
        .json();
    assert_eq!(answer["error"]["code"], "invalid_flow");
    assert_eq!(answer["error"]["details"]["errors"][0]["line"], 4);
    app.send(post("/api/v1/flows/broken/dryrun"))
        .await
        .expect(422);
}

#[tokio::test]
async fn dry_runs_render_steps_without_running() {
    let app = App::standard().build();
    let dry = app
        .send(post("/api/v1/flows/hello/dryrun").json(&json!({"params": {"count": 7}})))
        .await
        .expect(200)
        .json();
    assert_eq!(dry["flow"], "hello");
    assert_eq!(dry["params"], json!({"count": 7}));
    assert_eq!(dry["steps"][0]["name"], "greet");
    assert_eq!(dry["steps"][0]["type"], "exec");
    assert_eq!(
        dry["steps"][0]["settings"]["command"],
        json!(["echo", "hello 7"])
    );
    assert_eq!(dry["steps"][0]["skipped"], false);
    let runs = app.send(get("/api/v1/runs")).await.expect(200).json();
    assert_eq!(runs["total"], 0);
    let bad = app
        .send(post("/api/v1/flows/hello/dryrun").json(&json!({"params": {"count": "x"}})))
        .await
        .expect(400)
        .json();
    assert_eq!(bad["error"]["code"], "invalid_params");
}

#[tokio::test]
async fn bodies_past_the_limit_are_413() {
    let app = App::standard().build();
    let big = "#".repeat(1024 * 1024 + 1);
    let answer = app
        .send(post("/api/v1/validate").text(&big))
        .await
        .expect(413)
        .json();
    assert_eq!(answer["error"]["code"], "payload_too_large");
    let fits = "#".repeat(1024 * 1024 - 10);
    app.send(post("/api/v1/validate").text(&fits))
        .await
        .expect(200);
    // A login or a callback takes a few fields: 64 KiB.
    let login = format!(
        r#"{{"username": "u", "password": "{}"}}"#,
        "p".repeat(70 * 1024)
    );
    app.send(
        post("/api/v1/auth/login")
            .header("content-type", "application/json")
            .raw(login.into_bytes()),
    )
    .await
    .expect(413);
    let callback = format!(r#"{{"message": "{}"}}"#, "m".repeat(70 * 1024));
    app.send(
        post(&format!(
            "/api/v1/runs/{}/callback",
            octoflow_core::store::RunId::new()
        ))
        .header("content-type", "application/json")
        .raw(callback.into_bytes()),
    )
    .await
    .expect(413);
}
