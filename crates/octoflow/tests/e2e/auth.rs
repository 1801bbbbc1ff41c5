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

/// The `name=value` parts of an answer's `Set-Cookie` headers.
fn cookies(answer: &reqwest::Response) -> Vec<String> {
    answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect()
}

/// The value of a page's hidden `csrf` field.
fn csrf(page: &str) -> String {
    let rest = page.split("name=\"csrf\" value=\"").nth(1).unwrap();
    rest.split('"').next().unwrap().to_owned()
}

/// A user name is sometimes a password typed into the wrong field: the server's log shows
/// names only as digests — when a user is saved, logs in (through the API and the web UI's
/// form), fails to, logs out and is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_names_reach_the_log_only_as_digests() {
    const NAME: &str = "Tr0ub4dor-typed-as-a-name";
    let o = octo().flow("hello", HELLO);
    let admin = token(&o, "admin", &[]);
    let server = Server::start(&o.clone().env("OCTOFLOW_LOG", "debug"), &[]).bearer(&admin);
    let url = |path: &str| format!("{}{path}", server.url);
    let user = json!({"role": "operator", "password": "correct horse"});
    for expected in [201, 200] {
        let saved = server
            .http
            .put(url(&format!("/api/v1/users/{NAME}")))
            .json(&user)
            .send()
            .await
            .unwrap();
        assert_eq!(saved.status(), expected);
    }
    for (password, expected) in [("wrong", 401), ("correct horse", 200)] {
        let login = server
            .http
            .post(url("/api/v1/auth/login"))
            .json(&json!({"username": NAME, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), expected);
    }

    // The web UI's form, then its logout (cookies and CSRF tokens as a browser keeps them).
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = browser.get(url("/ui/login")).send().await.unwrap();
    let seed = cookies(&form).join("; ");
    let token = csrf(&form.text().await.unwrap());
    let welcome = browser
        .post(url("/ui/login"))
        .header("cookie", &seed)
        .form(&[
            ("username", NAME),
            ("password", "correct horse"),
            ("csrf", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(welcome.status(), 303);
    let cookie = format!("{seed}; {}", cookies(&welcome).join("; "));
    let page = browser
        .get(url("/ui/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let token = csrf(&page.text().await.unwrap());
    let out = browser
        .post(url("/ui/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);

    let removed = server
        .http
        .delete(url(&format!("/api/v1/users/{NAME}")))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);

    let (_, log) = server.signal_and_wait(nix::sys::signal::Signal::SIGTERM);
    let log = regex::Regex::new("\x1b\\[[0-9;]*m")
        .unwrap()
        .replace_all(&log, "")
        .into_owned();
    let shown = regex::Regex::new(r"user=[0-9a-f]{12}\b").unwrap();
    for (event, times) in [
        ("User saved.", 2),
        ("Login refused.", 1),
        ("Logged in.", 2),
        ("Logged out.", 1),
        ("User removed.", 1),
    ] {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(event)).collect();
        assert_eq!(lines.len(), times, "{event}:\n{log}");
        for line in lines {
            assert!(shown.is_match(line), "{line}");
        }
    }
    let lower = log.to_lowercase();
    assert!(
        !lower.contains(&NAME.to_lowercase()),
        "the raw name is in the log:\n{log}"
    );
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

/// The key the outside issuer of `auth_jwt` signs with.
const ISSUER_KEY: &str = "outside-issuer-hs256-key-5b2e";

/// A JWT signed with `key`, with these claims and `exp` `expires_in` seconds from now.
fn jwt(key: &str, claims: serde_json::Value, expires_in: i64) -> String {
    let mut claims = claims;
    claims["exp"] = json!(chrono::Utc::now().timestamp() + expires_in);
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

/// A server that takes the outside issuer's tokens: HS256 with [`ISSUER_KEY`], its issuer
/// and audience, the role in the claim `octoflow_role`.
fn outside_issuer() -> Server {
    let o = octo()
        .flow("hello", HELLO)
        .file(
            "data/config.yml",
            "auth:\n  jwt: { issuer: https://sso.example.org, audience: syncrator, algorithms: [HS256], key: sso, role_claim: octoflow_role }\n",
        )
        .file(
            "data/secrets.yml",
            &format!("- {{ name: sso, type: value, value: {ISSUER_KEY} }}\n"),
        );
    Server::start(&o, &[])
}

/// Asks `server` with `token`: the status and the error's message (empty when none).
async fn ask(server: &Server, token: String, method: Method, path: &str) -> (u16, String) {
    let answer = server
        .http
        .request(method, format!("{}{path}", server.url))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    (status, message.to_owned())
}

/// The outside issuer's claims for this server, with `octoflow_role` when `role` is given.
fn issued(role: Option<&str>) -> serde_json::Value {
    let mut claims = json!({"iss": "https://sso.example.org", "aud": "syncrator", "sub": "ci-bot"});
    if let Some(role) = role {
        claims["octoflow_role"] = json!(role);
    }
    claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_an_outside_issuer_are_checked_and_carry_their_role() {
    let server = outside_issuer();
    let ask = |token: String, method: Method, path: &'static str| ask(&server, token, method, path);
    let base = issued(None);
    let with_role = |role: &str| issued(Some(role));

    // An operator may start a run; a token without the role claim is a viewer.
    let operator = jwt(ISSUER_KEY, with_role("operator"), 300);
    assert_eq!(
        ask(operator, Method::POST, "/api/v1/flows/hello/runs")
            .await
            .0,
        201
    );
    let viewer = jwt(ISSUER_KEY, base.clone(), 300);
    assert_eq!(
        ask(viewer.clone(), Method::GET, "/api/v1/runs").await.0,
        200
    );
    assert_eq!(
        ask(viewer, Method::POST, "/api/v1/flows/hello/runs")
            .await
            .0,
        403
    );

    // Refused: expired, signed by another key, for another audience or issuer, a bad role.
    let refused = [
        (
            jwt(ISSUER_KEY, with_role("admin"), -120),
            "the JWT has expired",
        ),
        (
            jwt("someone-else's-key", with_role("admin"), 300),
            "the JWT's signature does not verify",
        ),
        (
            jwt(
                ISSUER_KEY,
                json!({"iss": "https://sso.example.org", "aud": "other", "octoflow_role": "admin"}),
                300,
            ),
            "the JWT's audience is not `syncrator`",
        ),
        (
            jwt(
                ISSUER_KEY,
                json!({"iss": "https://evil.example.org", "aud": "syncrator", "octoflow_role": "admin"}),
                300,
            ),
            "the JWT's issuer is not `https://sso.example.org`",
        ),
        (
            jwt(ISSUER_KEY, with_role("root"), 300),
            "the JWT's `octoflow_role` claim is `root`; expected viewer, operator or admin",
        ),
    ];
    for (token, reason) in refused {
        assert_eq!(
            ask(token, Method::GET, "/api/v1/runs").await,
            (401, reason.to_owned())
        );
    }
    // Without any token the API is closed.
    let answer = server
        .http
        .get(format!("{}/api/v1/runs", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
}

/// An outside issuer's token with `nbf` (not before) still to come is refused, beyond the
/// one-minute leeway for clocks; once its `nbf` has passed, the same kind of token is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_issuer_s_token_is_refused_before_its_nbf() {
    let server = outside_issuer();
    let not_before = |offset: i64| {
        let mut claims = issued(Some("viewer"));
        claims["nbf"] = json!(chrono::Utc::now().timestamp() + offset);
        jwt(ISSUER_KEY, claims, 600)
    };
    assert_eq!(
        ask(&server, not_before(300), Method::GET, "/api/v1/runs").await,
        (401, "the JWT is not valid yet (`nbf`)".to_owned())
    );
    assert_eq!(
        ask(&server, not_before(-120), Method::GET, "/api/v1/runs").await,
        (200, String::new())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_tokens_verify_with_the_public_key_and_hs256_forgeries_with_it_do_not() {
    let fixture = |name: &str| {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/e2e/fixtures")
                .join(name),
        )
        .unwrap()
    };
    let (private, public) = (fixture("issuer-rs256.key"), fixture("issuer-rs256.pub"));
    let indented = public
        .lines()
        .fold(String::new(), |text, line| text + "    " + line + "\n");
    let o = octo()
        .flow("hello", HELLO)
        .file(
            "data/config.yml",
            "auth:\n  jwt: { audience: syncrator, algorithms: [RS256], key: sso_public }\n",
        )
        .file(
            "data/secrets.yml",
            &format!("- name: sso_public\n  type: value\n  value: |\n{indented}"),
        );
    let server = Server::start(&o, &[]);
    let claims = json!({"aud": "syncrator", "role": "viewer",
                        "exp": chrono::Utc::now().timestamp() + 300});
    let signed = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(private.as_bytes()).unwrap(),
    )
    .unwrap();
    // The classic forgery: HS256 with the public key's text as the HMAC key.
    let forged = jwt(&public, claims.clone(), 300);
    let status = |token: String| {
        let request = server
            .http
            .get(format!("{}/api/v1/runs", server.url))
            .bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(signed).await, 200);
    assert_eq!(status(forged).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_s_published_keys_verify_its_tokens() {
    let private = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/e2e/fixtures/issuer-rs256.key"),
    )
    .unwrap();
    let signing = jsonwebtoken::EncodingKey::from_rsa_pem(private.as_bytes()).unwrap();
    let mut jwk =
        jsonwebtoken::jwk::Jwk::from_encoding_key(&signing, jsonwebtoken::Algorithm::RS256)
            .unwrap();
    jwk.common.key_id = Some("k1".to_owned());
    let set = jsonwebtoken::jwk::JwkSet { keys: vec![jwk] };
    let o = octo()
        .flow("hello", HELLO)
        .file(
            "data/config.yml",
            "auth:\n  jwt: { audience: syncrator, algorithms: [RS256], jwks_file: jwks.json }\n",
        )
        .file("data/jwks.json", &serde_json::to_string(&set).unwrap());
    let server = Server::start(&o, &[]);
    let claims = json!({"aud": "syncrator", "role": "viewer",
                        "exp": chrono::Utc::now().timestamp() + 300});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("k1".to_owned());
    let signed = jsonwebtoken::encode(&header, &claims, &signing).unwrap();
    let status = |token: String| {
        let request = server
            .http
            .get(format!("{}/api/v1/runs", server.url))
            .bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(signed).await, 200);
    assert_eq!(status(jwt("guess", claims, 300)).await, 401);
}
