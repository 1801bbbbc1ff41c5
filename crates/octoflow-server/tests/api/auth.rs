//! Who may call what: the auth matrix over every guarded route, login, open mode,
//! `OCTOFLOW_API_TOKEN` and `public_read`.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::Method;
use octoflow_core::secrets::Secret;
use octoflow_core::store::{AuthStore, Role};
use octoflow_server::{Access, AuthSettings, routes};
use serde_json::{Value, json};

use crate::support::{App, Req, delete, get, post, put, request};

/// One guarded route, with a body that succeeds for the right role.
struct Case {
    method: Method,
    path: String,
    body: Option<Body>,
    role: Role,
    /// The answer for the right role (past the auth check).
    ok: u16,
}

enum Body {
    Json(Value),
    Yaml(&'static str),
}

impl Case {
    fn new(method: Method, path: impl Into<String>, role: Role, ok: u16) -> Self {
        Self {
            method,
            path: path.into(),
            body: None,
            role,
            ok,
        }
    }

    fn json(mut self, body: Value) -> Self {
        self.body = Some(Body::Json(body));
        self
    }

    fn yaml(mut self, body: &'static str) -> Self {
        self.body = Some(Body::Yaml(body));
        self
    }

    fn request(&self) -> Req {
        let req = request(self.method.clone(), &self.path);
        match &self.body {
            Some(Body::Json(value)) => req.json(value),
            Some(Body::Yaml(text)) => req.text(text),
            None => req,
        }
    }

    /// The route pattern this case exercises.
    fn pattern(&self) -> (String, String) {
        let pattern = routes()
            .iter()
            .find(|r| r.method == self.method && matches(r.path, &self.path))
            .map_or_else(|| self.path.clone(), |r| r.path.to_owned());
        (self.method.to_string(), pattern)
    }
}

fn matches(pattern: &str, path: &str) -> bool {
    let (p, s): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    p.len() == s.len() && p.iter().zip(&s).all(|(p, s)| p.starts_with('{') || p == s)
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one table, read top to bottom
async fn every_guarded_mutation_checks_the_token_and_role() {
    let app = App::standard().build();
    let viewer = app.token(Role::Viewer, None).await;
    let operator = app.token(Role::Operator, None).await;
    let admin = app.token(Role::Admin, None).await;
    let expired = app.token(Role::Admin, Some(Duration::ZERO)).await;
    let revoked = app.token(Role::Admin, None).await;
    let revoked_id = app.store.tokens().await.unwrap()[0].id.clone();
    assert!(app.store.revoke_token(&revoked_id).await.unwrap());
    let queued = app
        .send(post("/api/v1/flows/hello/runs").bearer(&admin))
        .await
        .expect(201)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ended = app
        .send(post("/api/v1/flows/hello/runs").bearer(&admin))
        .await
        .expect(201)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.send(post(&format!("/api/v1/runs/{ended}/cancel")).bearer(&admin))
        .await
        .expect(200);
    let spare = app.token(Role::Viewer, None).await;
    let spare_id = app.store.tokens().await.unwrap()[0].id.clone();
    assert_ne!(spare, viewer);

    let flow = "name: extra\nsteps:\n  - name: a\n    set_fact: { value: 1 }\n";
    let cases = [
        Case::new(Method::PUT, "/api/v1/flows/extra", Role::Admin, 201).yaml(flow),
        Case::new(Method::DELETE, "/api/v1/flows/extra", Role::Admin, 204),
        Case::new(
            Method::POST,
            "/api/v1/flows/hello/runs",
            Role::Operator,
            201,
        )
        .json(json!({})),
        Case::new(
            Method::POST,
            "/api/v1/flows/hello/dryrun",
            Role::Operator,
            200,
        )
        .json(json!({})),
        Case::new(Method::POST, "/api/v1/validate", Role::Viewer, 200).yaml(flow),
        Case::new(
            Method::POST,
            format!("/api/v1/runs/{queued}/cancel"),
            Role::Operator,
            200,
        ),
        Case::new(
            Method::POST,
            format!("/api/v1/runs/{ended}/retry"),
            Role::Operator,
            201,
        ),
        Case::new(Method::DELETE, "/api/v1/locks", Role::Operator, 200),
        Case::new(Method::DELETE, "/api/v1/locks/none", Role::Operator, 404),
        Case::new(Method::POST, "/api/v1/schedules", Role::Admin, 201)
            .json(json!({"flow": "hello", "every_seconds": 60})),
        Case::new(
            Method::POST,
            "/api/v1/schedules/flow:hello:0/pause",
            Role::Admin,
            200,
        ),
        Case::new(
            Method::POST,
            "/api/v1/schedules/flow:hello:0/resume",
            Role::Admin,
            200,
        ),
        Case::new(Method::DELETE, "/api/v1/schedules/none", Role::Admin, 404),
        Case::new(
            Method::PATCH,
            format!("/api/v1/runs/{ended}/context"),
            Role::Operator,
            409,
        )
        .json(json!({"note": 1})),
        Case::new(Method::PUT, "/api/v1/state/hello/cursor", Role::Admin, 200).json(json!(42)),
        Case::new(Method::PUT, "/api/v1/users/ann", Role::Admin, 201)
            .json(json!({"role": "viewer", "password": "pw"})),
        Case::new(Method::DELETE, "/api/v1/users/nobody", Role::Admin, 404),
        Case::new(Method::POST, "/api/v1/tokens", Role::Admin, 201)
            .json(json!({"name": "ci", "role": "operator"})),
        Case::new(
            Method::DELETE,
            format!("/api/v1/tokens/{spare_id}"),
            Role::Admin,
            204,
        ),
    ];

    let mut covered = BTreeSet::new();
    for case in &cases {
        let what = format!("{} {}", case.method, case.path);
        covered.insert(case.pattern());
        let lower = match case.role {
            Role::Admin => Some(&operator),
            Role::Operator => Some(&viewer),
            Role::Viewer => None,
        };
        let refusals = [
            (None, 401, "unauthenticated"),
            (Some("oft_not_a_token"), 401, "unauthenticated"),
            (Some(expired.as_str()), 401, "unauthenticated"),
            (Some(revoked.as_str()), 401, "unauthenticated"),
            (lower.map(String::as_str), 403, "forbidden"),
        ];
        for (token, status, code) in refusals {
            if status == 403 && token.is_none() {
                continue;
            }
            let mut req = case.request();
            if let Some(token) = token {
                req = req.bearer(token);
            }
            let answer = app.send(req).await;
            assert_eq!(
                answer.status.as_u16(),
                status,
                "{what} with {token:?}: {}",
                answer.text
            );
            assert_eq!(answer.json()["error"]["code"], code, "{what}");
        }
        let right = match case.role {
            Role::Admin => &admin,
            Role::Operator => &operator,
            Role::Viewer => &viewer,
        };
        let answer = app.send(case.request().bearer(right)).await;
        assert_eq!(
            answer.status.as_u16(),
            case.ok,
            "{what} as {}: {}",
            case.role,
            answer.text
        );
    }

    // Every guarded route that is not a read is in the table above.
    let guarded: BTreeSet<(String, String)> = routes()
        .iter()
        .filter(|r| r.access != Access::Open && r.method != Method::GET)
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    let missing: Vec<_> = guarded.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the auth matrix: {missing:?}"
    );
}

#[tokio::test]
async fn reads_need_a_viewer_token_unless_public() {
    let app = App::standard().build();
    app.token(Role::Admin, None).await;
    let answer = app.send(get("/api/v1/flows")).await.expect(401);
    assert_eq!(answer.json()["error"]["code"], "unauthenticated");
    app.send(get("/healthz")).await.expect(200);
    app.send(get("/readyz")).await.expect(200);

    let app = App::standard()
        .auth(AuthSettings {
            public_read: true,
            ..AuthSettings::default()
        })
        .build();
    app.token(Role::Admin, None).await;
    app.send(get("/api/v1/flows")).await.expect(200);
    app.send(request(Method::HEAD, "/api/v1/runs"))
        .await
        .expect(200);
    app.send(post("/api/v1/flows/hello/runs")).await.expect(401);
    app.send(get("/api/v1/users")).await.expect(401);
}

#[tokio::test]
async fn without_users_or_tokens_the_api_is_open() {
    let app = App::standard().build();
    app.send(post("/api/v1/flows/hello/runs")).await.expect(201);
    app.send(get("/api/v1/users")).await.expect(200);
}

#[tokio::test]
async fn the_api_token_is_an_admin_token() {
    let app = App::standard()
        .auth(AuthSettings {
            admin_token: Some(Secret::new("spooler-token".to_owned())),
            ..AuthSettings::default()
        })
        .build();
    app.send(post("/api/v1/flows/hello/runs")).await.expect(401);
    app.send(post("/api/v1/flows/hello/runs").bearer("spooler-tokem"))
        .await
        .expect(401);
    let run = app
        .send(post("/api/v1/flows/hello/runs").bearer("spooler-token"))
        .await
        .expect(201)
        .json();
    assert_eq!(
        run["trigger"],
        json!({"kind": "manual", "detail": {"via": "api", "by": "api_token"}})
    );
    app.send(
        put("/api/v1/state/hello/k")
            .bearer("spooler-token")
            .json(&json!(1)),
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn login_gives_a_session_token_of_the_users_role() {
    let app = App::standard()
        .auth(AuthSettings {
            token_ttl: Duration::from_secs(60),
            ..AuthSettings::default()
        })
        .build();
    app.user("ann", Role::Operator, "s3cret").await;

    let answer = app
        .send(post("/api/v1/auth/login").json(&json!({"username": "ann", "password": "s3cret"})))
        .await
        .expect(200)
        .json();
    assert_eq!(answer["token_type"], "bearer");
    assert_eq!(answer["expires_in"], 60);
    let token = answer["access_token"].as_str().unwrap();
    assert!(token.starts_with("oft_"));
    app.send(post("/api/v1/flows/hello/runs").bearer(token))
        .await
        .expect(201);
    let answer = app
        .send(
            put("/api/v1/flows/hello")
                .bearer(token)
                .text(crate::support::HELLO),
        )
        .await
        .expect(403);
    assert_eq!(
        answer.json()["error"]["message"],
        "this needs the `admin` role; the token has `operator`"
    );

    // A form works too.
    let form = post("/api/v1/auth/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .raw(b"username=ann&password=s3cret".to_vec());
    app.send(form).await.expect(200);

    // Wrong password and unknown user answer alike.
    let wrong = app
        .send(post("/api/v1/auth/login").json(&json!({"username": "ann", "password": "nope"})))
        .await
        .expect(401);
    let unknown = app
        .send(post("/api/v1/auth/login").json(&json!({"username": "bob", "password": "nope"})))
        .await
        .expect(401);
    assert_eq!(wrong.text, unknown.text);
    assert_eq!(
        wrong.json()["error"]["message"],
        "wrong username or password"
    );
}

#[tokio::test]
async fn expired_sessions_ask_to_log_in_again() {
    let app = App::standard()
        .auth(AuthSettings {
            token_ttl: Duration::ZERO,
            ..AuthSettings::default()
        })
        .build();
    app.user("ann", Role::Admin, "pw").await;
    let answer = app
        .send(post("/api/v1/auth/login").json(&json!({"username": "ann", "password": "pw"})))
        .await
        .expect(200)
        .json();
    let token = answer["access_token"].as_str().unwrap();
    let answer = app
        .send(get("/api/v1/flows").bearer(token))
        .await
        .expect(401);
    assert_eq!(
        answer.json()["error"]["message"],
        "bearer token has expired; log in again"
    );
}

#[tokio::test]
async fn admins_manage_users_and_tokens() {
    let app = App::standard().build();
    let admin = app.token(Role::Admin, None).await;
    let made = app
        .send(
            post("/api/v1/tokens")
                .bearer(&admin)
                .json(&json!({"name": "ci", "role": "viewer", "ttl_seconds": 3600})),
        )
        .await
        .expect(201)
        .json();
    let secret = made["secret"].as_str().unwrap();
    assert_eq!(made["token"]["role"], "viewer");
    assert!(made["token"]["expires_at"].is_string());
    app.send(get("/api/v1/runs").bearer(secret))
        .await
        .expect(200);
    let list = app
        .send(get("/api/v1/tokens").bearer(&admin))
        .await
        .expect(200);
    assert!(!list.text.contains(secret));
    let id = made["token"]["id"].as_str().unwrap();
    app.send(delete(&format!("/api/v1/tokens/{id}")).bearer(&admin))
        .await
        .expect(204);
    app.send(get("/api/v1/runs").bearer(secret))
        .await
        .expect(401);
    app.send(delete("/api/v1/tokens/tok_nope").bearer(&admin))
        .await
        .expect(404);

    app.send(
        put("/api/v1/users/ann")
            .bearer(&admin)
            .json(&json!({"role": "viewer", "password": "pw"})),
    )
    .await
    .expect(201);
    app.send(
        put("/api/v1/users/ann")
            .bearer(&admin)
            .json(&json!({"role": "admin", "password": "pw2"})),
    )
    .await
    .expect(200);
    let users = app
        .send(get("/api/v1/users").bearer(&admin))
        .await
        .expect(200);
    assert_eq!(users.json()[0]["role"], "admin");
    assert!(!users.text.contains("argon2"));
    app.send(
        put("/api/v1/users/bad%20name")
            .bearer(&admin)
            .json(&json!({"role": "viewer", "password": "pw"})),
    )
    .await
    .expect(400);
}

/// Logs `user` in; its session token.
async fn session(app: &App, user: &str, password: &str) -> String {
    app.send(post("/api/v1/auth/login").json(&json!({"username": user, "password": password})))
        .await
        .expect(200)
        .json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_new_password_or_role_or_removal_ends_the_users_sessions() {
    let app = App::standard().build();
    let admin = app.token(Role::Admin, None).await;
    app.user("ann", Role::Admin, "first-pw").await;
    let before = session(&app, "ann", "first-pw").await;
    app.send(get("/api/v1/users").bearer(&before))
        .await
        .expect(200);
    app.send(
        put("/api/v1/users/ann")
            .bearer(&admin)
            .json(&json!({"role": "viewer", "password": "second-pw"})),
    )
    .await
    .expect(200);
    app.send(get("/api/v1/runs").bearer(&before))
        .await
        .expect(401);
    let after = session(&app, "ann", "second-pw").await;
    app.send(get("/api/v1/users").bearer(&after))
        .await
        .expect(403);
    app.send(get("/api/v1/runs").bearer(&admin))
        .await
        .expect(200);

    // Removed: its sessions end, and it logs in no more.
    app.send(delete("/api/v1/users/ann").bearer(&admin))
        .await
        .expect(204);
    app.send(get("/api/v1/runs").bearer(&after))
        .await
        .expect(401);
    app.send(post("/api/v1/auth/login").json(&json!({"username": "ann", "password": "second-pw"})))
        .await
        .expect(401);
    app.send(delete("/api/v1/users/ann").bearer(&admin))
        .await
        .expect(404);
}

#[tokio::test]
async fn a_hundred_bad_logins_meet_a_429_and_the_server_stays_responsive() {
    let app = App::standard().build();
    app.user("ops", Role::Operator, "right-pw").await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for n in 0..100 {
        let answer = app
            .send(
                post("/api/v1/auth/login")
                    .json(&json!({"username": "ops", "password": format!("guess-{n}")})),
            )
            .await;
        if answer.status.as_u16() == 429 {
            retry_after = answer.header("retry-after").map(str::to_owned);
        }
        statuses.push(answer.status.as_u16());
    }
    let refused = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(refused, 10, "ten wrong passwords are checked: {statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
    let seconds: u64 = retry_after.unwrap().parse().unwrap();
    assert!((1..=300).contains(&seconds), "{seconds}");
    // Even the right password waits now: the guesses could have found it.
    let answer = app
        .send(post("/api/v1/auth/login").json(&json!({"username": "ops", "password": "right-pw"})))
        .await
        .expect(429)
        .json();
    assert_eq!(answer["error"]["code"], "overloaded");
    // Other users and other routes are served as before.
    app.user("ann", Role::Viewer, "ann-pw").await;
    session(&app, "ann", "ann-pw").await;
    app.send(get("/healthz")).await.expect(200);
}
