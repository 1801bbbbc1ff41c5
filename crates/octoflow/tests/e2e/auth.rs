//! The auth matrix against the real `octoflow serve`: every mutating route of the API × no
//! token, a wrong token, an expired token and a too-low role → 401/403, and the right role
//! gets past the check. Tokens are made with `octoflow token create`.

use std::time::Duration;

use octoflow_core::store::Role;
use octoflow_server::{Access, routes};
use reqwest::Method;
use serde_json::json;

use crate::octo;
use crate::server::Server;

const HELLO: &str = "steps:\n  - name: greet\n    set_fact: { value: hi }\n";

/// A token made with `octoflow token create`.
fn token(o: &octoflow_testkit::cli::Octo, role: &str, extra: &[&str]) -> String {
    let mut args = vec!["token", "create", "--role", role, "--name", role];
    args.extend_from_slice(extra);
    let out = o.clone().args(args).run();
    out.success();
    out.stdout().trim().to_owned()
}

/// The path with its `{…}` segments filled in.
fn concrete(path: &str, run: &str) -> String {
    path.replace("{name}", "hello")
        .replace("{flow}", "hello")
        .replace("{id}", run)
        .replace("{key}", "some-key")
        .replace("{*path}", "file.txt")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutating_route_checks_the_token_and_the_role() {
    let o = octo().flow("hello", HELLO);
    let viewer = token(&o, "viewer", &[]);
    let operator = token(&o, "operator", &[]);
    let admin = token(&o, "admin", &[]);
    let expired = token(&o, "admin", &["--expires", "1s"]);
    let server = Server::start(&o, &[]);
    let start = server
        .http
        .post(format!("{}/api/v1/flows/hello/runs", server.url))
        .bearer_auth(&admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 201);
    let run: serde_json::Value = start.json().await.unwrap();
    let run = run["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1100)).await; // the expired token's second

    let mut checked = 0;
    for route in routes() {
        let Some(needed) = route.access.role() else {
            continue;
        };
        if route.method == Method::GET {
            continue;
        }
        let too_low = match route.access {
            Access::Operator => Some(&viewer),
            Access::Admin => Some(&operator),
            Access::Viewer | Access::Open => None,
        };
        let url = format!("{}{}", server.url, concrete(route.path, &run));
        let send = |bearer: Option<&str>| {
            let mut request = server
                .http
                .request(route.method.clone(), &url)
                .header("content-type", "application/json")
                .body("{}");
            if let Some(bearer) = bearer {
                request = request.bearer_auth(bearer);
            }
            async move { request.send().await.unwrap().status().as_u16() }
        };
        let what = format!("{} {}", route.method, route.path);
        assert_eq!(send(None).await, 401, "{what} without a token");
        assert_eq!(
            send(Some("oft_wrong")).await,
            401,
            "{what} with a wrong token"
        );
        assert_eq!(
            send(Some(&expired)).await,
            401,
            "{what} with an expired token"
        );
        if let Some(low) = too_low {
            assert_eq!(send(Some(low)).await, 403, "{what} with a too-low role");
        }
        let right = match needed {
            Role::Viewer => &viewer,
            Role::Operator => &operator,
            Role::Admin => &admin,
        };
        let code = send(Some(right)).await;
        assert!(
            ![401, 403].contains(&code),
            "{what} with the {needed} role answered {code}"
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} mutating routes checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_gives_a_token_with_the_users_role_that_expires() {
    let o = octo()
        .flow("hello", HELLO)
        .file("data/config.yml", "auth: { token_ttl: 1s }\n");
    let added = o
        .clone()
        .args([
            "user",
            "add",
            "ops",
            "--role",
            "operator",
            "--password-stdin",
        ])
        .stdin("correct horse\n")
        .run();
    added.success();
    let server = Server::start(&o, &[]);
    let login = |password: &'static str| {
        server
            .http
            .post(format!("{}/api/v1/auth/login", server.url))
            .json(&json!({"username": "ops", "password": password}))
            .send()
    };
    assert_eq!(login("wrong").await.unwrap().status(), 401);
    let answer: serde_json::Value = login("correct horse").await.unwrap().json().await.unwrap();
    assert_eq!(answer["token_type"], "bearer");
    assert_eq!(answer["expires_in"], 1);
    let bearer = answer["access_token"].as_str().unwrap();
    let started = server
        .http
        .post(format!("{}/api/v1/flows/hello/runs", server.url))
        .bearer_auth(bearer)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 201);
    let denied = server
        .http
        .put(format!("{}/api/v1/flows/hello", server.url))
        .bearer_auth(bearer)
        .header("content-type", "application/yaml")
        .body(HELLO)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired = server
        .http
        .get(format!("{}/api/v1/runs", server.url))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 401);
}

/// An open server (no users, no tokens) would let anyone who reaches it run commands: it
/// listens on loopback only, until an admin exists.
#[test]
fn an_open_server_refuses_to_listen_beyond_loopback() {
    let o = octo().flow("hello", HELLO);
    o.clone()
        .args(["serve", "--listen", "0.0.0.0:0"])
        .run()
        .code(2)
        .stderr_contains("refusing to listen on `0.0.0.0:")
        .stderr_contains("with no users or tokens");
    // With a token, it may.
    o.clone()
        .args(["token", "create", "--role", "admin", "--name", "first"])
        .run()
        .success();
    let mut serving = o.clone().args(["serve", "--listen", "0.0.0.0:0"]).spawn();
    let stderr = serving.stderr.take().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stderr), &mut line).unwrap();
    crate::run::nix_kill(serving.id(), nix::sys::signal::Signal::SIGKILL);
    serving.wait(Duration::from_secs(10));
    assert!(line.contains("listening on http://0.0.0.0:"), "{line}");
}
