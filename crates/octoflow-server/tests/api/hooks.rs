//! Webhooks: routing (`/hooks/…`, root paths, `{name}` segments, methods, reloads), params
//! from the path, query, JSON and forms, dry runs, waiting, response templates, overload.

use std::time::Duration;

use axum::body::Body;
use octoflow_server::HookSettings;
use serde_json::{Value, json};

use crate::support::{App, get, post, put, request};

/// A flow with a hook per way of calling it.
const GREET: &str = r#"name: greet
params:
  who: { type: string, required: true }
  count: { type: integer, default: 1 }
  loud: { type: boolean, default: false }
triggers:
  - webhook: { path: greet }
  - webhook: { path: "/greet/{who}", methods: [GET, POST] }
  - webhook: { path: "greet/fixed/{count}", params: { who: fixed } }
steps:
  - name: say
    set_fact: { value: "hello {{ params.who }} x{{ params.count }}" }
"#;

fn app() -> App {
    App::builder().flow("greet.yml", GREET).workers().build()
}

/// The run of an answer `{run_id}`, once ended.
async fn ended(app: &App, answer: &Value) -> Value {
    app.finished(answer["run_id"].as_str().unwrap()).await
}

#[tokio::test]
async fn hooks_start_runs_with_params_from_path_query_json_and_forms() {
    let app = app();
    // Query.
    let answer = app
        .send(post("/hooks/greet?who=query&count=2"))
        .await
        .expect(202)
        .json();
    let run = ended(&app, &answer).await;
    assert_eq!(run["data"]["say"], "hello query x2");
    assert_eq!(run["trigger"]["kind"], "webhook");
    assert_eq!(run["trigger"]["detail"]["path"], "/hooks/greet");
    assert_eq!(run["trigger"]["detail"]["method"], "POST");

    // JSON: declared keys are params; the whole body is the input.
    let answer = app
        .send(post("/hooks/greet").json(&json!({"who": "json", "count": 3, "extra": {"a": 1}})))
        .await
        .expect(202)
        .json();
    let run = ended(&app, &answer).await;
    assert_eq!(
        run["params"],
        json!({"who": "json", "count": 3, "loud": false})
    );
    assert_eq!(run["data"]["extra"], json!({"a": 1}));
    assert_eq!(run["data"]["say"], "hello json x3");

    // A form: text read by the declared types.
    let answer = app
        .send(
            post("/hooks/greet")
                .header("content-type", "application/x-www-form-urlencoded")
                .raw(b"who=form&count=4&loud=yes&other=x".to_vec()),
        )
        .await
        .expect(202)
        .json();
    let run = ended(&app, &answer).await;
    assert_eq!(
        run["params"],
        json!({"who": "form", "count": 4, "loud": true})
    );
    assert_eq!(run["data"]["other"], "x");

    // A root-mounted path with a `{name}` segment, percent-decoded, and another method.
    let answer = app.send(get("/greet/J%C3%BCrgen")).await.expect(202).json();
    let run = ended(&app, &answer).await;
    assert_eq!(run["data"]["say"], "hello Jürgen x1");

    // Fixed params win over what the request says.
    let answer = app
        .send(post("/hooks/greet/fixed/5").json(&json!({"who": "caller"})))
        .await
        .expect(202)
        .json();
    let run = ended(&app, &answer).await;
    assert_eq!(run["data"]["say"], "hello fixed x5");
}

#[tokio::test]
async fn bad_params_are_refused_naming_the_field_and_nothing_runs() {
    let app = app();
    let error = app
        .send(post("/hooks/greet?who=a&count=many"))
        .await
        .expect(400)
        .json();
    assert_eq!(error["error"]["code"], "invalid_params");
    assert_eq!(error["error"]["details"]["errors"][0]["param"], "count");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("count")
    );

    let error = app
        .send(post("/hooks/greet?who=a&cuont=1"))
        .await
        .expect(400)
        .json();
    assert_eq!(error["error"]["details"]["errors"][0]["param"], "cuont");

    let error = app
        .send(post("/hooks/greet").json(&json!({"who": 5})))
        .await
        .expect(400)
        .json();
    assert_eq!(error["error"]["details"]["errors"][0]["param"], "who");

    let error = app.send(post("/hooks/greet")).await.expect(400).json();
    assert_eq!(error["error"]["details"]["errors"][0]["param"], "who");
    assert_eq!(
        error["error"]["details"]["errors"][0]["message"],
        "is required"
    );

    let error = app
        .send(
            post("/hooks/greet")
                .json(&json!(null))
                .raw(b"{nope".to_vec()),
        )
        .await
        .expect(400)
        .json();
    assert_eq!(error["error"]["code"], "bad_request");

    let runs = app.send(get("/api/v1/runs")).await.expect(200).json();
    assert_eq!(runs["total"], 0);
    assert!(!app.dir.path().join("runs").exists());
}

#[tokio::test]
async fn unknown_hooks_are_404_and_wrong_methods_405_and_the_api_is_not_shadowed() {
    let app = app();
    let error = app.send(post("/hooks/nope")).await.expect(404).json();
    assert_eq!(error["error"]["code"], "not_found");
    assert_eq!(error["error"]["message"], "no route `POST /hooks/nope`");
    app.send(post("/nope/at/all")).await.expect(404);
    app.send(get("/api/v1/nope")).await.expect(404);

    let answer = app.send(put("/hooks/greet")).await.expect(405);
    assert_eq!(answer.header("allow"), Some("POST"));
    let error = answer.json();
    assert_eq!(error["error"]["code"], "method_not_allowed");
    assert_eq!(error["error"]["details"]["allowed"], json!(["POST"]));
    let answer = app
        .send(request(axum::http::Method::DELETE, "/greet/x"))
        .await;
    assert_eq!(answer.expect(405).header("allow"), Some("GET, POST"));

    // The API keeps its routes.
    app.send(get("/healthz")).await.expect(200);
    app.send(get("/api/v1/flows")).await.expect(200);
}

#[tokio::test]
async fn the_routes_follow_the_flows_directory() {
    let app = App::builder().build();
    app.send(post("/hooks/later")).await.expect(404);
    let flow = "name: later\ntriggers:\n  - webhook: { path: later }\nsteps:\n  - name: a\n    set_fact: { value: 1 }\n";
    app.send(put("/api/v1/flows/later").text(flow))
        .await
        .expect(201);
    app.send(post("/hooks/later")).await.expect(202);
    app.send(request(axum::http::Method::DELETE, "/api/v1/flows/later"))
        .await
        .expect(204);
    app.send(post("/hooks/later")).await.expect(404);
}

#[tokio::test]
async fn webhook_definitions_are_checked_when_the_flow_loads() {
    let app = App::builder().build();
    let flow = r#"name: bad
params: { a: { type: string } }
triggers:
  - webhook: { path: "/api/x" }
  - webhook: { path: "x/{b}" }
  - webhook: { path: "x/pre{a}" }
  - webhook: { path: x, wait: true, dryrun: true }
  - webhook: { path: y, wait_timeout: 5s }
  - webhook: { path: z, response: { body: "{{ oops" } }
  - webhook: { path: j, auth: { jwt: { secret: k, algorithm: ES256 } } }
steps:
  - name: a
    set_fact: { value: 1 }
"#;
    let answer = app
        .send(post("/api/v1/validate").text(flow))
        .await
        .expect(200)
        .json();
    let paths: Vec<&str> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "triggers[0].webhook.path",
            "triggers[1].webhook.path",
            "triggers[2].webhook.path",
            "triggers[3].webhook.dryrun",
            "triggers[4].webhook.wait_timeout",
            "triggers[5].webhook.response.body",
            "triggers[6].webhook.auth.jwt.algorithm",
        ],
        "{answer}"
    );
}

/// A flow answering like an existing API: dry run on GET, start on POST, `dedupe`.
const LAUNCH: &str = r#"name: launch
params:
  project: { type: string }
  env: { type: string, default: qas }
concurrency: { key: "{{ params.project }}", policy: dedupe }
triggers:
  - webhook:
      path: "/launch/{project}"
      methods: [GET]
      dryrun: true
      response:
        body: { job_id: dryrun, result: "{{ dryrun.steps[0].settings.command | join(' ') }}", ENV: "{{ params.env }}" }
  - webhook:
      path: "/launch/{project}"
      methods: [POST]
      response:
        status: "{{ 201 if admission == 'created' else 200 }}"
        headers: { x-job: "{{ run.id }}" }
        body: { job_id: "{{ run.id }}", result: "{{ 'starting' if admission == 'created' else 'running' }}" }
steps:
  - name: start
    exec: { command: [sleep, "5"] }
  - name: echo
    exec: { command: [echo, "{{ params.project }}"] }
"#;

#[tokio::test]
async fn dry_runs_and_response_templates_reproduce_an_existing_api() {
    let app = App::builder().flow("launch.yml", LAUNCH).workers().build();
    let answer = app
        .send(get("/launch/avo?env=prd"))
        .await
        .expect(200)
        .json();
    assert_eq!(
        answer,
        json!({"job_id": "dryrun", "result": "sleep 5", "ENV": "prd"})
    );
    let runs = app.send(get("/api/v1/runs")).await.expect(200).json();
    assert_eq!(runs["total"], 0);

    let first = app.send(post("/launch/avo")).await.expect(201);
    let id = first.json()["job_id"].as_str().unwrap().to_owned();
    assert_eq!(first.header("x-job"), Some(id.as_str()));
    assert_eq!(first.json(), json!({"job_id": id, "result": "starting"}));
    // The same project while it runs: the same job.
    let second = app.send(post("/launch/avo")).await.expect(200).json();
    assert_eq!(second, json!({"job_id": id, "result": "running"}));
    app.send(post(&format!("/api/v1/runs/{id}/cancel")))
        .await
        .expect(200);
}

#[tokio::test]
async fn a_plain_dry_run_answers_the_rendered_steps() {
    let flow = "name: dry\nparams: { n: { type: integer } }\ntriggers:\n  - webhook: { path: dry, dryrun: true }\nsteps:\n  - name: a\n    exec: { command: [echo, '{{ params.n }}'] }\n";
    let app = App::builder().flow("dry.yml", flow).build();
    let answer = app.send(post("/hooks/dry?n=7")).await.expect(200).json();
    assert_eq!(answer["flow"], "dry");
    assert_eq!(answer["params"], json!({"n": 7}));
    assert_eq!(
        answer["steps"][0]["settings"]["command"],
        json!(["echo", 7])
    );
}

#[tokio::test]
async fn wait_answers_the_finished_run_or_202_after_its_timeout() {
    let flow = r#"name: waits
params: { secs: { type: number, default: 0 } }
triggers:
  - webhook: { path: quick, wait: true }
  - webhook: { path: slow, wait: true, wait_timeout: 300ms }
  - webhook:
      path: shaped
      wait: true
      response: { status: 200, body: { status: "{{ run.status }}", out: "{{ data.nap.stdout | trim }}" } }
steps:
  - name: nap
    exec: { command: [sh, -c, "sleep {{ params.secs }}; echo done"] }
"#;
    let app = App::builder().flow("waits.yml", flow).workers().build();
    let run = app.send(post("/hooks/quick")).await.expect(200).json();
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["flow"], "waits");
    // The answer is the run as stored, field for field (times to the microsecond included),
    // though it is not read back from the store.
    let id = run["id"].as_str().unwrap();
    let stored = app.send(get(&format!("/api/v1/runs/{id}"))).await.json();
    for (field, value) in run.as_object().unwrap() {
        assert_eq!(&stored[field], value, "{field}: {stored}");
    }

    let started = std::time::Instant::now();
    let answer = app
        .send(post("/hooks/slow?secs=5"))
        .await
        .expect(202)
        .json();
    assert!(started.elapsed() < Duration::from_secs(3));
    let id = answer["run_id"].as_str().unwrap();
    app.send(post(&format!("/api/v1/runs/{id}/cancel")))
        .await
        .expect(200);

    let answer = app.send(post("/hooks/shaped")).await.expect(200).json();
    assert_eq!(answer, json!({"status": "succeeded", "out": "done"}));
}

/// A waited run takes one of the node's worker slots, never one more: with both slots held
/// by long runs it waits in the queue, and runs once a slot frees.
#[tokio::test]
async fn a_waited_run_waits_for_a_free_worker_slot() {
    let flow = r#"name: naps
params: { secs: { type: number, default: 0 } }
triggers:
  - webhook: { path: long }
  - webhook: { path: quick, wait: true, wait_timeout: 300ms }
steps:
  - name: nap
    exec: { command: [sh, -c, "sleep {{ params.secs }}"] }
"#;
    // Two workers.
    let app = App::builder().flow("naps.yml", flow).workers().build();
    let run = app.send(post("/hooks/quick")).await.expect(200).json();
    assert_eq!(run["status"], "succeeded", "a free slot: it ran at once");
    let mut long = Vec::new();
    for _ in 0..2 {
        let answer = app
            .send(post("/hooks/long?secs=2"))
            .await
            .expect(202)
            .json();
        long.push(answer["run_id"].as_str().unwrap().to_owned());
    }
    for id in &long {
        while app.send(get(&format!("/api/v1/runs/{id}"))).await.json()["status"] != "running" {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let answer = app.send(post("/hooks/quick")).await.expect(202).json();
    let id = answer["run_id"].as_str().unwrap();
    let run = app.send(get(&format!("/api/v1/runs/{id}"))).await.json();
    assert_eq!(run["status"], "queued", "both slots are held: {run}");
    assert_eq!(app.finished(id).await["status"], "succeeded");
}

#[tokio::test]
async fn a_waiting_hook_sees_a_queued_run_cancelled() {
    let flow = "name: q\ntriggers:\n  - webhook: { path: q, wait: true, wait_timeout: 20s }\nsteps:\n  - name: a\n    set_fact: { value: 1 }\n";
    // No workers: the run stays queued until it is cancelled.
    let app = App::builder().flow("q.yml", flow).build();
    let router = app.router();
    let waiting = tokio::spawn(async move {
        use tower::ServiceExt;
        router.oneshot(post("/hooks/q").build()).await.unwrap()
    });
    let id = loop {
        let runs = app.send(get("/api/v1/runs")).await.json();
        if let Some(id) = runs["items"][0]["id"].as_str() {
            break id.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let asked = std::time::Instant::now();
    app.send(post(&format!("/api/v1/runs/{id}/cancel")))
        .await
        .expect(200);
    let response = waiting.await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        asked.elapsed() < Duration::from_millis(900),
        "{:?}",
        asked.elapsed()
    );
}

#[tokio::test]
async fn too_many_requests_at_once_are_answered_429() {
    let app = App::builder()
        .flow("greet.yml", GREET)
        .hooks(HookSettings {
            max_in_flight: 1,
            ..HookSettings::default()
        })
        .build();
    // A request whose body never ends holds the only slot.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body = Body::from_stream(tokio_stream_of(rx));
    let router = app.router();
    let held = tokio::spawn(async move {
        use tower::ServiceExt;
        let request = post("/hooks/greet")
            .header("content-type", "application/json")
            .build_with(body);
        router.oneshot(request).await.unwrap()
    });
    tx.send(Ok(b"{\"who\":".to_vec())).await.unwrap();
    let mut answer = app.send(post("/hooks/greet?who=x")).await;
    for _ in 0..100 {
        if answer.status.as_u16() == 429 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        answer = app.send(post("/hooks/greet?who=x")).await;
    }
    let answer = answer.expect(429);
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert_eq!(answer.json()["error"]["code"], "overloaded");
    tx.send(Ok(b"\"held\"}".to_vec())).await.unwrap();
    drop(tx);
    assert_eq!(held.await.unwrap().status().as_u16(), 202);
    app.send(post("/hooks/greet?who=x")).await.expect(202);
}

/// The receiver as a body stream.
pub(crate) fn tokio_stream_of(
    rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}
