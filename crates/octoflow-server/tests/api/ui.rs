//! The web UI through HTTP, as a browser uses it: pages, the stylesheet, the login form with
//! its session cookie and CSRF token, and logout.

use octoflow_core::store::Role;

use crate::support::{Answer, App, Req, get, post};

pub(crate) const FLOW: &str = "name: nightly\ndescription: The nightly export\ntriggers:\n  - schedule: { cron: \"0 2 * * *\" }\nsteps:\n  - name: a\n    set_fact: { value: 1 }\n";

/// The `name=value` parts of an answer's `Set-Cookie` headers, joined as a `Cookie` header.
pub(crate) fn cookies(answer: &Answer) -> String {
    answer
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The value of the page's hidden `csrf` field.
pub(crate) fn csrf(page: &Answer) -> String {
    let rest = page.text.split("name=\"csrf\" value=\"").nth(1).unwrap();
    rest.split('"').next().unwrap().to_owned()
}

pub(crate) fn form(path: &str, cookie: &str, body: &str) -> Req {
    post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .raw(body.as_bytes().to_vec())
}

#[tokio::test]
async fn an_open_server_shows_its_flows_with_a_cached_stylesheet() {
    let app = App::builder().flow("nightly.yml", FLOW).build();
    let root = app.send(get("/")).await;
    assert_eq!(root.status.as_u16(), 303);
    assert_eq!(root.header("location"), Some("/ui/"));
    let moved = app.send(get("/ui")).await;
    assert_eq!(moved.status.as_u16(), 308);
    assert_eq!(moved.header("location"), Some("/ui/"));

    let page = app.send(get("/ui/")).await.expect(200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    for text in [
        "nightly",
        "The nightly export",
        "none yet",
        "<html lang=\"en\">",
    ] {
        assert!(page.text.contains(text), "{text}: {}", page.text);
    }
    let css = page
        .text
        .split("href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(
        css.starts_with("/ui/assets/app.")
            && std::path::Path::new(css).extension() == Some("css".as_ref()),
        "{css}"
    );
    let sheet = app.send(get(css)).await.expect(200);
    assert_eq!(
        sheet.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert!(sheet.text.contains("prefers-color-scheme: dark"));
    app.send(get("/ui/assets/app.000000000000.css"))
        .await
        .expect(404);
}

#[tokio::test]
async fn a_user_logs_in_with_the_form_and_out_again() {
    let app = App::builder().flow("nightly.yml", FLOW).build();
    app.user("ada", Role::Operator, "correct horse").await;

    // Not logged in: the flows page sends the browser to the login form.
    let away = app.send(get("/ui/")).await;
    assert_eq!(away.status.as_u16(), 303);
    assert_eq!(away.header("location"), Some("/ui/login"));
    let login = app.send(get("/ui/login")).await.expect(200);
    let seed = cookies(&login);
    assert!(seed.starts_with("octoflow_csrf="), "{seed}");
    let token = csrf(&login);

    // A form without the browser's token changes nothing; a page says why.
    let forged = app
        .send(form(
            "/ui/login",
            &seed,
            "username=ada&password=correct+horse&csrf=0",
        ))
        .await
        .expect(403);
    assert!(
        forged
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        forged.text.contains("That was not done") && forged.text.contains("CSRF token"),
        "{}",
        forged.text
    );
    assert!(forged.header("set-cookie").is_none(), "no session");
    let wrong = app
        .send(form(
            "/ui/login",
            &seed,
            &format!("username=ada&password=nope&csrf={token}"),
        ))
        .await
        .expect(401);
    assert!(
        wrong.text.contains("Wrong user name or password."),
        "{}",
        wrong.text
    );
    assert!(wrong.text.contains("value=\"ada\""), "the name is kept");

    let welcome = app
        .send(form(
            "/ui/login",
            &seed,
            &format!("username=ada&password=correct+horse&csrf={token}"),
        ))
        .await
        .expect(303);
    let set = welcome.header("set-cookie").unwrap().to_owned();
    for part in [
        "octoflow_session=oft_",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/ui",
    ] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains("Secure"), "no https here: {set}");
    let cookie = format!("{seed}; {}", cookies(&welcome));
    let page = app
        .send(get("/ui/").header("cookie", &cookie))
        .await
        .expect(200);
    assert!(page.text.contains("ada (operator)"), "{}", page.text);
    assert!(page.text.contains("nightly"));

    // Logout needs the session's own token (the login form's is not it), then ends it.
    let session_csrf = csrf(&page);
    assert_ne!(session_csrf, token);
    app.send(form("/ui/logout", &cookie, &format!("csrf={token}")))
        .await
        .expect(403);
    let out = app
        .send(form("/ui/logout", &cookie, &format!("csrf={session_csrf}")))
        .await
        .expect(303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    // The old cookie works no more: its token was revoked.
    let again = app.send(get("/ui/").header("cookie", &cookie)).await;
    assert_eq!(again.status.as_u16(), 303, "{}", again.text);
}

#[tokio::test]
async fn runs_are_listed_filtered_and_shown_with_their_steps() {
    let flow = "name: sums\nparams: { n: { type: integer, default: 1 } }\nsteps:\n  - name: add\n    set_fact: { value: { total: \"{{ params.n + 1 }}\" } }\n  - name: check\n    exec: { command: [sh, -c, \"test {{ params.n }} -lt 3\"] }\n";
    let app = App::builder().flow("sums.yml", flow).workers().build();
    let mut ids = Vec::new();
    for n in [1, 5] {
        let run = app
            .send(post("/api/v1/flows/sums/runs").json(&serde_json::json!({"params": {"n": n}})))
            .await
            .expect(201)
            .json();
        let id = run["id"].as_str().unwrap().to_owned();
        app.finished(&id).await;
        ids.push(id);
    }

    let all = app.send(get("/ui/runs")).await.expect(200);
    assert!(all.text.contains("2 runs"), "{}", all.text);
    for id in &ids {
        assert!(all.text.contains(&format!("/ui/runs/{id}")), "{id}");
    }
    let failed = app.send(get("/ui/runs?status=failed")).await.expect(200);
    assert!(failed.text.contains(&ids[1]) && !failed.text.contains(&ids[0]));
    let bad = app.send(get("/ui/runs?status=lost")).await.expect(400);
    assert!(
        bad.text.contains("unknown run status `lost`"),
        "{}",
        bad.text
    );

    let page = app
        .send(get(&format!("/ui/runs/{}", ids[1])))
        .await
        .expect(200);
    for text in [
        "add",
        "check",
        "failed",
        "succeeded",
        "<details><summary>JSON</summary>",
        "\"total\": 6",
    ] {
        assert!(page.text.contains(text), "{text}: {}", page.text);
    }
    app.send(get("/ui/runs/0193a0e0-0000-7000-8000-000000000000"))
        .await
        .expect(404);
}

/// Waits (at most 20 s) until run `id` has ended; its record, read with `token`.
async fn ended(app: &App, token: &str, id: &str) -> serde_json::Value {
    for _ in 0..400 {
        let run = app
            .send(get(&format!("/api/v1/runs/{id}")).bearer(token))
            .await
            .json();
        if !matches!(run["status"].as_str(), Some("queued" | "running")) {
            return run;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("run {id} did not end");
}

/// Logs `user` in through the form; the browser's `Cookie` header afterwards.
pub(crate) async fn logged_in(app: &App, user: &str, password: &str) -> String {
    let login = app.send(get("/ui/login")).await.expect(200);
    let seed = cookies(&login);
    let body = format!("username={user}&password={password}&csrf={}", csrf(&login));
    let welcome = app.send(form("/ui/login", &seed, &body)).await.expect(303);
    format!("{seed}; {}", cookies(&welcome))
}

const STEPS: &str = "name: steps\nparams: { fail: { type: boolean, default: false }, nap: { type: number, default: 0 } }\nsteps:\n  - name: first\n    set_fact: { value: 1 }\n  - name: second\n    exec: { command: [sh, -c, \"sleep {{ params.nap }}; test {{ params.fail | lower }} = false\"] }\n";

/// A server with workers, the flow `steps`, an operator `olga` and a viewer `vic`; and an
/// admin token.
async fn steps_app() -> (App, String) {
    let app = App::builder().flow("steps.yml", STEPS).workers().build();
    app.user("olga", Role::Operator, "pw-olga-1").await;
    app.user("vic", Role::Viewer, "pw-vic-1").await;
    let admin = app.token(Role::Admin, None).await;
    (app, admin)
}

/// Starts a run of `steps` with `params`; its id.
async fn start(app: &App, admin: &str, params: serde_json::Value) -> String {
    let run = app
        .send(
            post("/api/v1/flows/steps/runs")
                .bearer(admin)
                .json(&serde_json::json!({ "params": params })),
        )
        .await
        .expect(201)
        .json();
    run["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_viewer_sees_no_buttons_and_is_refused_the_actions() {
    let (app, admin) = steps_app().await;
    let long = start(&app, &admin, serde_json::json!({"nap": 30})).await;
    let viewer = logged_in(&app, "vic", "pw-vic-1").await;
    let page = app
        .send(get(&format!("/ui/runs/{long}")).header("cookie", &viewer))
        .await
        .expect(200);
    assert!(
        !page.text.contains(&format!("action=\"/ui/runs/{long}/")),
        "no action buttons: {}",
        page.text
    );
    let refused = app
        .send(form(
            &format!("/ui/runs/{long}/cancel"),
            &viewer,
            &format!("csrf={}", csrf(&page)),
        ))
        .await
        .expect(403);
    assert!(refused.text.contains("operator"), "{}", refused.text);
    app.send(post(&format!("/api/v1/runs/{long}/cancel")).bearer(&admin))
        .await
        .expect(200);
}

#[tokio::test]
async fn an_operator_cancels_a_run_and_retries_one_from_its_failed_step() {
    let (app, admin) = steps_app().await;
    let failed = start(&app, &admin, serde_json::json!({"fail": true})).await;
    let long = start(&app, &admin, serde_json::json!({"nap": 30})).await;

    let operator = logged_in(&app, "olga", "pw-olga-1").await;
    let page = app
        .send(get(&format!("/ui/runs/{long}")).header("cookie", &operator))
        .await
        .expect(200);
    assert!(
        page.text
            .contains("<button type=\"submit\">Cancel</button>")
    );
    let token = csrf(&page);
    app.send(form(
        &format!("/ui/runs/{long}/cancel"),
        &operator,
        "csrf=stale",
    ))
    .await
    .expect(403);
    let done = app
        .send(form(
            &format!("/ui/runs/{long}/cancel"),
            &operator,
            &format!("csrf={token}"),
        ))
        .await
        .expect(303);
    assert_eq!(
        done.header("location"),
        Some(format!("/ui/runs/{long}").as_str())
    );
    assert_eq!(ended(&app, &admin, &long).await["status"], "cancelled");

    // The failed run is retried from its failed step: a new run, shown next.
    assert_eq!(ended(&app, &admin, &failed).await["status"], "failed");
    let page = app
        .send(get(&format!("/ui/runs/{failed}")).header("cookie", &operator))
        .await
        .expect(200);
    assert!(page.text.contains("Retry from the failed step"));
    let moved = app
        .send(form(
            &format!("/ui/runs/{failed}/retry"),
            &operator,
            &format!("csrf={token}&from_failed=1"),
        ))
        .await
        .expect(303);
    let new = moved
        .header("location")
        .unwrap()
        .trim_start_matches("/ui/runs/")
        .to_owned();
    assert_ne!(new, failed);
    assert_eq!(ended(&app, &admin, &new).await["trigger"]["kind"], "retry");

    // A run that has not ended is not retried: a page says why.
    let running = start(&app, &admin, serde_json::json!({"nap": 30})).await;
    let refused = app
        .send(form(
            &format!("/ui/runs/{running}/retry"),
            &operator,
            &format!("csrf={token}"),
        ))
        .await
        .expect(409);
    assert!(
        refused.text.contains("has not ended yet"),
        "{}",
        refused.text
    );
    app.send(post(&format!("/api/v1/runs/{running}/cancel")).bearer(&admin))
        .await
        .expect(200);
}

const LAUNCH: &str = r#"name: launch
description: Starts a job
params:
  project: { type: string, required: true, description: The project }
  env: { type: string, enum: [qas, prd], default: qas }
  count: { type: integer, default: 1, minimum: 1 }
triggers:
  - webhook: { path: launch }
steps:
  - name: a
    set_fact: { value: "{{ params.project }}-{{ params.env }}-{{ params.count }}" }
"#;

#[tokio::test]
async fn a_flow_is_started_from_its_form_and_a_bad_value_is_shown_at_its_field() {
    let app = App::builder().flow("launch.yml", LAUNCH).workers().build();
    let page = app.send(get("/ui/flows/launch")).await.expect(200);
    // HTML escapes `/` as `&#x2f;`: read the text as a browser shows it.
    let shown = page.text.replace("&#x2f;", "/");
    for text in [
        "Starts a job",
        "<code>/hooks/launch</code>",
        "name=\"p.project\"",
        "<option>prd</option>",
        "inputmode=\"decimal\"",
        "set_fact",
    ] {
        assert!(shown.contains(text), "{text}: {shown}");
    }
    let seed = cookies(&page);
    let token = csrf(&page);

    // A count that is not a number, then one below the minimum: each shown at its field,
    // with what was typed kept; nothing runs.
    let bad = app
        .send(form(
            "/ui/flows/launch/run",
            &seed,
            &format!("csrf={token}&p.project=apollo&p.env=prd&p.count=many"),
        ))
        .await
        .expect(400);
    assert!(bad.text.contains("id=\"err-count\""), "{}", bad.text);
    assert!(
        bad.text.contains("`many` is not a valid integer"),
        "{}",
        bad.text
    );
    assert!(bad.text.contains("value=\"apollo\""));
    let missing = app
        .send(form(
            "/ui/flows/launch/run",
            &seed,
            &format!("csrf={token}&p.count=0"),
        ))
        .await
        .expect(400);
    assert!(
        missing.text.contains("id=\"err-project\""),
        "{}",
        missing.text
    );
    let runs = app.send(get("/api/v1/runs")).await.json();
    assert_eq!(runs["total"], 0, "nothing ran");

    let started = app
        .send(form(
            "/ui/flows/launch/run",
            &seed,
            &format!("csrf={token}&p.project=apollo&p.env=prd&p.count="),
        ))
        .await
        .expect(303);
    let id = started
        .header("location")
        .unwrap()
        .trim_start_matches("/ui/runs/")
        .to_owned();
    let run = app.finished(&id).await;
    assert_eq!(
        run["params"],
        serde_json::json!({"project": "apollo", "env": "prd", "count": 1})
    );
    assert_eq!(run["trigger"]["detail"]["via"], "ui");
}

#[tokio::test]
async fn a_run_page_links_its_child_runs_and_draws_its_steps_on_a_timeline() {
    let child = "name: child\nsteps:\n  - name: work\n    set_fact: { value: 1 }\n";
    let parent = "name: parent\nsteps:\n  - name: items\n    set_fact: { value: [1, 2, 3] }\n  - name: each\n    flow_loop: { name: child, data_key: items }\n";
    let app = App::builder()
        .flow("child.yml", child)
        .flow("parent.yml", parent)
        .workers()
        .build();
    let run = app
        .send(post("/api/v1/flows/parent/runs").json(&serde_json::json!({})))
        .await
        .expect(201)
        .json();
    let id = run["id"].as_str().unwrap().to_owned();
    app.finished(&id).await;
    let children = app
        .send(get(&format!("/api/v1/runs?parent={id}")))
        .await
        .expect(200)
        .json();
    assert_eq!(children["total"], 3, "{children}");

    let page = app.send(get(&format!("/ui/runs/{id}"))).await.expect(200);
    assert!(page.text.contains("Child runs"), "{}", page.text);
    for child in children["items"].as_array().unwrap() {
        let link = format!("/ui/runs/{}", child["id"].as_str().unwrap());
        assert!(page.text.contains(&link), "{link}: {}", page.text);
    }
    let bars = page.text.matches("<svg class=\"bar\"").count();
    assert_eq!(bars, 2, "one bar for each step attempt");
    assert!(page.text.contains("<rect class=\"succeeded\" x=\"0\""));

    let child = children["items"][0]["id"].as_str().unwrap();
    let page = app
        .send(get(&format!("/ui/runs/{child}")))
        .await
        .expect(200);
    assert!(
        page.text.contains(&format!("href=\"/ui/runs/{id}\"")),
        "a child links its parent: {}",
        page.text
    );
    assert!(!page.text.contains("Child runs"));
    let listed = app
        .send(get(&format!("/ui/runs?parent={id}")))
        .await
        .expect(200);
    assert!(listed.text.contains("3 runs"), "{}", listed.text);
}

#[tokio::test]
async fn a_flow_page_shows_its_schedules_with_their_next_fire_and_full_webhook_urls() {
    let app = App::builder()
        .flow("launch.yml", LAUNCH)
        .flow("nightly.yml", FLOW)
        .public_url("https://flows.example.org/")
        .build();
    let page = app
        .send(get("/ui/flows/launch").header("host", "flows.example.org"))
        .await
        .expect(200);
    let shown = page.text.replace("&#x2f;", "/");
    assert!(
        shown.contains("<code>https://flows.example.org/hooks/launch</code>"),
        "{shown}"
    );
    assert!(!shown.contains("every 3600 s"), "no schedule yet: {shown}");

    // A schedule added through the API is shown with its next fire, as is the file's.
    app.send(post("/api/v1/schedules").json(&serde_json::json!({
        "flow": "launch", "every_seconds": 3600, "params": {"project": "apollo"},
    })))
    .await
    .expect(201);
    let page = app.send(get("/ui/flows/launch")).await.expect(200);
    let shown = page.text.replace("&#x2f;", "/");
    for text in [
        "every 3600 s",
        "added through the API",
        "next fire <time datetime=\"2026-06-01T09:00:00Z\"",
    ] {
        assert!(shown.contains(text), "{text}: {shown}");
    }
    let nightly = app.send(get("/ui/flows/nightly")).await.expect(200);
    let shown = nightly.text.replace("&#x2f;", "/");
    for text in [
        "cron <code>0 2 * * *</code>",
        "from the flow file",
        "next fire <time datetime=\"2026-06-02T02:00:00Z\"",
    ] {
        assert!(shown.contains(text), "{text}: {shown}");
    }
    assert!(!shown.contains("launch"), "only its own schedules");
}
