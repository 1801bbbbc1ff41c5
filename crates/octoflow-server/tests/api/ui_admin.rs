//! The web UI's admin and operator pages through HTTP: schedules (paused, resumed, removed,
//! added from a form), held locks freed, users and tokens — each form checked for its CSRF
//! token and its role.

use octoflow_core::store::Role;

use crate::support::{App, get, post};
use crate::ui::{FLOW, cookies, csrf, form, logged_in};

/// The first schedule, as the API lists it.
async fn schedule(app: &App) -> serde_json::Value {
    app.send(get("/api/v1/schedules")).await.json()["items"][0].clone()
}

#[tokio::test]
async fn schedules_are_paused_resumed_and_removed_from_their_page() {
    let app = App::builder().flow("nightly.yml", FLOW).scheduler().build();
    let page = app.send(get("/ui/schedules")).await.expect(200);
    let shown = page.text.replace("&#x2f;", "/");
    assert!(
        shown.contains("<code>0 2 * * *</code>") && shown.contains("active"),
        "{shown}"
    );
    let seed = cookies(&page);
    let token = csrf(&page);
    let id = "flow:nightly:0";
    app.send(form(&format!("/ui/schedules/{id}/pause"), &seed, "csrf=0"))
        .await
        .expect(403);
    assert_eq!(
        schedule(&app).await["paused"],
        false,
        "a forged form changes nothing"
    );
    let back = app
        .send(form(
            &format!("/ui/schedules/{id}/pause"),
            &seed,
            &format!("csrf={token}"),
        ))
        .await
        .expect(303);
    assert_eq!(back.header("location"), Some("/ui/schedules"));
    assert_eq!(schedule(&app).await["paused"], true);
    app.send(form(
        &format!("/ui/schedules/{id}/resume"),
        &seed,
        &format!("csrf={token}"),
    ))
    .await
    .expect(303);
    assert_eq!(schedule(&app).await["paused"], false);
    app.send(form(
        &format!("/ui/schedules/{id}/remove"),
        &seed,
        &format!("csrf={token}"),
    ))
    .await
    .expect(303);
    assert_eq!(schedule(&app).await["removed"], true);
    let page = app
        .send(get("/ui/schedules").header("cookie", &seed))
        .await
        .expect(200);
    assert!(page.text.contains("removed"));
    let refused = app
        .send(form(
            &format!("/ui/schedules/{id}/resume"),
            &seed,
            &format!("csrf={token}"),
        ))
        .await
        .expect(409);
    assert!(
        refused.text.contains("That was not done"),
        "{}",
        refused.text
    );
}

#[tokio::test]
async fn a_schedule_is_added_from_its_form_and_a_bad_cron_is_shown_at_its_field() {
    let app = App::builder().flow("nightly.yml", FLOW).scheduler().build();
    let page = app.send(get("/ui/schedules")).await.expect(200);
    assert!(page.text.contains("Add a schedule"), "{}", page.text);
    let seed = cookies(&page);
    let token = csrf(&page);

    let refused = app
        .send(form(
            "/ui/schedules",
            &seed,
            &format!("csrf={token}&flow=nightly&cron=61+*+*+*+*&timezone=Europe%2FBrussels"),
        ))
        .await
        .expect(400);
    let shown = refused.text.replace("&#x2f;", "/");
    assert!(
        shown.contains(
            "name=\"cron\" value=\"61 * * * *\" aria-invalid=\"true\" aria-describedby=\"err-cron\""
        ) && shown.contains("id=\"err-cron\"")
            && shown.contains("value=\"Europe/Brussels\""),
        "the error at its field, what was typed kept: {shown}"
    );
    let refused = app
        .send(form(
            "/ui/schedules",
            &seed,
            &format!("csrf={token}&flow=nightly&every_seconds=60&params=%5B1%5D"),
        ))
        .await
        .expect(400);
    assert!(
        refused.text.contains("id=\"err-params\""),
        "{}",
        refused.text
    );
    app.send(form(
        "/ui/schedules",
        &seed,
        "csrf=0&flow=nightly&every_seconds=60",
    ))
    .await
    .expect(403);
    let listed = app.send(get("/api/v1/schedules")).await.json();
    assert_eq!(listed["total"], 1, "refused forms add nothing: {listed}");

    let added = app
        .send(form(
            "/ui/schedules",
            &seed,
            &format!("csrf={token}&flow=nightly&every_seconds=3600&catchup=none"),
        ))
        .await
        .expect(303);
    assert_eq!(added.header("location"), Some("/ui/schedules"));
    let listed = app.send(get("/api/v1/schedules")).await.json();
    assert_eq!(listed["total"], 2, "{listed}");
    let new = &listed["items"][1];
    assert_eq!(
        (new["flow"].as_str(), new["every_seconds"].as_u64()),
        (Some("nightly"), Some(3600)),
        "{new}"
    );
    let page = app
        .send(get("/ui/schedules").header("cookie", &seed))
        .await
        .expect(200);
    assert!(page.text.contains("every 3600 s"), "{}", page.text);
}

#[tokio::test]
async fn a_held_key_is_shown_and_freed_from_the_locks_page() {
    let flow = "name: deploy\nconcurrency: { key: prod, policy: queue }\nsteps:\n  - name: nap\n    exec: { command: [sleep, \"30\"] }\n";
    let app = App::builder().flow("deploy.yml", flow).workers().build();
    let run = app
        .send(post("/api/v1/flows/deploy/runs"))
        .await
        .expect(201)
        .json();
    let id = run["id"].as_str().unwrap().to_owned();
    let mut page = app.send(get("/ui/locks")).await.expect(200);
    for _ in 0..100 {
        if page.text.contains("<code>prod</code>") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        page = app.send(get("/ui/locks")).await.expect(200);
    }
    assert!(
        page.text.contains("<code>prod</code>") && page.text.contains(&format!("/ui/runs/{id}")),
        "{}",
        page.text
    );
    let seed = cookies(&page);
    let freed = app
        .send(form(
            "/ui/locks/free",
            &seed,
            &format!("csrf={}&key=prod", csrf(&page)),
        ))
        .await
        .expect(303);
    assert_eq!(freed.header("location"), Some("/ui/locks"));
    let locks = app.send(get("/api/v1/locks")).await.json();
    assert_eq!(locks["total"], 0, "{locks}");
    app.send(post(&format!("/api/v1/runs/{id}/cancel")))
        .await
        .expect(200);
}

#[tokio::test]
async fn an_admin_adds_a_user_makes_a_token_sees_its_secret_once_and_revokes_it() {
    let app = App::builder().build();
    app.user("root", Role::Admin, "pw-root-1").await;
    let admin = logged_in(&app, "root", "pw-root-1").await;
    let page = app
        .send(get("/ui/access").header("cookie", &admin))
        .await
        .expect(200);
    let token = csrf(&page);

    app.send(form(
        "/ui/access/user",
        &admin,
        &format!("csrf={token}&name=bob&role=viewer&password=pw-bob-1"),
    ))
    .await
    .expect(303);
    let bad = app
        .send(form(
            "/ui/access/user",
            &admin,
            &format!("csrf={token}&name=no+spaces&role=viewer&password=x"),
        ))
        .await
        .expect(400);
    assert!(bad.text.contains("invalid user name"), "{}", bad.text);

    let made = app
        .send(form(
            "/ui/access/token",
            &admin,
            &format!("csrf={token}&name=ci&role=operator&days=30"),
        ))
        .await
        .expect(200);
    let secret = made
        .text
        .split("aria-label=\"The new token\"><code>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("oft_"), "{}", made.text);
    // The secret works, and is not shown again.
    app.send(get("/api/v1/runs").bearer(&secret))
        .await
        .expect(200);
    let again = app
        .send(get("/ui/access").header("cookie", &admin))
        .await
        .expect(200);
    assert!(!again.text.contains(&secret));
    let id = again
        .text
        .split("<code class=\"muted\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    assert!(again.text.contains("bob") && again.text.contains("ci"));

    app.send(form(
        "/ui/access/revoke",
        &admin,
        &format!("csrf={token}&id={id}"),
    ))
    .await
    .expect(303);
    app.send(get("/api/v1/runs").bearer(&secret))
        .await
        .expect(401);

    // A viewer may not even see the page.
    let viewer = logged_in(&app, "bob", "pw-bob-1").await;
    app.send(get("/ui/access").header("cookie", &viewer))
        .await
        .expect(403);
}
