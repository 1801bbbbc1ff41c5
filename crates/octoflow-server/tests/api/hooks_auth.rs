//! Webhook auth: each mode accepts the right caller and refuses others with `401` (or `403`),
//! running nothing and leaving nothing on disk.

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use octoflow_core::store::Role;
use octoflow_server::AuthSettings;
use serde_json::{Value, json};

use crate::support::{App, Req, get, post};

const SECRETS: &str = r"
- { name: hook_user, type: credential, username: bookmaker, password: s3cret }
- { name: hook_token, type: token, token: tok-123 }
- { name: gh, type: value, value: gh-key }
- { name: jwt_hs, type: value, value: jwt-key-of-32-bytes-or-more-0000 }
- { name: jwt_b64, type: value, value: c2VjcmV0LWJ5dGVzLWZvci1qd3QtaHMyNTYtdGVzdHM= }
";

const FLOW: &str = r"name: guarded
params: { n: { type: integer, default: 1 } }
triggers:
  - webhook: { path: basic, auth: { basic: { secret: hook_user } } }
  - webhook: { path: bearer, auth: bearer }
  - webhook: { path: token, auth: { token: { secret: hook_token } } }
  - webhook: { path: hmac, auth: { hmac: { secret: gh, header: X-Hub-Signature-256 } } }
  - webhook: { path: jwt, auth: { jwt: { secret: jwt_hs, audience: syncrator } } }
  - webhook: { path: jwt64, auth: { jwt: { secret: jwt_b64 } } }
  - webhook: { path: rs256, auth: { jwt: { secret: rsa, algorithm: RS256, audience: syncrator } } }
  - webhook: { path: missing, auth: { token: { secret: nowhere } } }
steps:
  - name: a
    set_fact: { value: 1 }
";

fn app_with(auth: AuthSettings) -> App {
    let public = include_str!("fixtures/jwt_rs256_test_only.pub");
    let secrets = format!(
        "{SECRETS}- name: rsa\n  type: value\n  value: |\n    {}\n",
        public.trim().replace('\n', "\n    ")
    );
    App::builder()
        .flow("guarded.yml", FLOW)
        .secrets(&secrets)
        .auth(auth)
        .workers()
        .build()
}

fn app() -> App {
    app_with(AuthSettings::default())
}

/// Sends the request; asserts the status; for a refusal, that no run was recorded.
async fn expect(app: &App, request: Req, status: u16) -> Value {
    let answer = app.send(request).await.expect(status);
    let body = answer.json();
    if status >= 400 {
        let runs = app.send(get("/api/v1/runs")).await.json();
        assert!(
            runs["total"] == 0 || runs["error"]["code"] == "unauthenticated",
            "a refused call recorded a run: {runs}"
        );
        assert!(!app.dir.path().join("runs").exists());
    }
    body
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

#[tokio::test]
async fn basic_auth_checks_the_credential_secret() {
    let app = app();
    let error = expect(&app, post("/hooks/basic"), 401).await;
    assert_eq!(error["error"]["code"], "unauthenticated");
    let answer = app.send(post("/hooks/basic")).await;
    assert_eq!(
        answer.header("www-authenticate"),
        Some("Basic realm=\"octoflow\"")
    );
    expect(
        &app,
        post("/hooks/basic").header("authorization", &basic("bookmaker", "wrong")),
        401,
    )
    .await;
    expect(
        &app,
        post("/hooks/basic").header("authorization", &basic("other", "s3cret")),
        401,
    )
    .await;
    expect(
        &app,
        post("/hooks/basic").header("authorization", "Basic !!!"),
        401,
    )
    .await;
    let answer = expect(
        &app,
        post("/hooks/basic").header("authorization", &basic("bookmaker", "s3cret")),
        202,
    )
    .await;
    let run = app.finished(answer["run_id"].as_str().unwrap()).await;
    assert_eq!(run["trigger"]["detail"]["by"], "bookmaker");
}

#[tokio::test]
async fn bearer_auth_takes_an_octoflow_token_with_the_operator_role() {
    let app = app_with(AuthSettings::default());
    let operator = app.token(Role::Operator, None).await;
    let viewer = app.token(Role::Viewer, None).await;
    expect(&app, post("/hooks/bearer"), 401).await;
    expect(&app, post("/hooks/bearer").bearer("oft_wrong"), 401).await;
    let error = expect(&app, post("/hooks/bearer").bearer(&viewer), 403).await;
    assert_eq!(error["error"]["code"], "forbidden");
    expect(&app, post("/hooks/bearer").bearer(&operator), 202).await;
}

#[tokio::test]
async fn token_auth_reads_the_header_x_token_or_the_query() {
    let app = app();
    expect(&app, post("/hooks/token"), 401).await;
    expect(&app, post("/hooks/token?token=nope"), 401).await;
    expect(&app, post("/hooks/token").header("x-token", "tok-12"), 401).await;
    expect(&app, post("/hooks/token").bearer("tok-123"), 202).await;
    expect(&app, post("/hooks/token").header("x-token", "tok-123"), 202).await;
    // The query's token is the credential, not a param.
    let answer = expect(&app, post("/hooks/token?token=tok-123&n=4"), 202).await;
    let run = app.finished(answer["run_id"].as_str().unwrap()).await;
    assert_eq!(run["params"], json!({"n": 4}));
}

fn signature(key: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn hmac_auth_checks_the_signature_of_the_raw_body() {
    let app = app();
    let body = br#"{"action": "opened", "n": 2}"#.to_vec();
    let signed = |sig: &str| {
        post("/hooks/hmac")
            .header("content-type", "application/json")
            .header("x-hub-signature-256", sig)
            .raw(body.clone())
    };
    expect(&app, post("/hooks/hmac").raw(body.clone()), 401).await;
    expect(&app, signed(&signature("wrong-key", &body)), 401).await;
    expect(&app, signed("sha256=zz"), 401).await;
    let tampered = post("/hooks/hmac")
        .header("x-hub-signature-256", &signature("gh-key", &body))
        .raw(br#"{"action": "closed", "n": 2}"#.to_vec());
    expect(&app, tampered, 401).await;
    let answer = expect(&app, signed(&signature("gh-key", &body)), 202).await;
    let run = app.finished(answer["run_id"].as_str().unwrap()).await;
    assert_eq!(run["params"], json!({"n": 2}));
    assert_eq!(run["data"]["action"], "opened");
    // The bare hex form works too.
    let bare = signature("gh-key", &body).replace("sha256=", "");
    expect(&app, signed(&bare), 202).await;
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hs256(key: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(&Header::default(), claims, &EncodingKey::from_secret(key)).unwrap()
}

#[tokio::test]
async fn jwt_auth_checks_signature_expiry_and_audience() {
    let app = app();
    let key = b"jwt-key-of-32-bytes-or-more-0000";
    let good = json!({"sub": "ci", "aud": "syncrator", "exp": now() + 600});
    expect(&app, post("/hooks/jwt"), 401).await;
    let wrong_key = hs256(b"another-key-of-32-bytes-or-more!", &good);
    let error = expect(&app, post("/hooks/jwt").bearer(&wrong_key), 401).await;
    assert_eq!(
        error["error"]["message"],
        "the JWT's signature does not verify"
    );
    let expired = hs256(key, &json!({"aud": "syncrator", "exp": now() - 3600}));
    let error = expect(&app, post("/hooks/jwt").bearer(&expired), 401).await;
    assert_eq!(error["error"]["message"], "the JWT has expired");
    let foreign = hs256(key, &json!({"aud": "other", "exp": now() + 600}));
    let error = expect(&app, post("/hooks/jwt").bearer(&foreign), 401).await;
    assert_eq!(
        error["error"]["message"],
        "the JWT's audience is not `syncrator`"
    );
    let no_exp = hs256(key, &json!({"aud": "syncrator"}));
    expect(&app, post("/hooks/jwt").bearer(&no_exp), 401).await;
    let answer = expect(&app, post("/hooks/jwt").bearer(&hs256(key, &good)), 202).await;
    let run = app.finished(answer["run_id"].as_str().unwrap()).await;
    assert_eq!(run["trigger"]["detail"]["by"], "ci");

    // A base64 secret: the key is the bytes it encodes.
    let bytes = base64::engine::general_purpose::STANDARD
        .decode("c2VjcmV0LWJ5dGVzLWZvci1qd3QtaHMyNTYtdGVzdHM=")
        .unwrap();
    let token = hs256(&bytes, &json!({"exp": now() + 600}));
    expect(&app, post("/hooks/jwt64").bearer(&token), 202).await;
}

#[tokio::test]
async fn jwt_auth_takes_rs256_with_a_public_key() {
    let app = app();
    let private = include_bytes!("fixtures/jwt_rs256_test_only.key");
    let key = EncodingKey::from_rsa_pem(private).unwrap();
    let claims = json!({"aud": "syncrator", "exp": now() + 600});
    let token = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap();
    // An HS256 token signed with the public key text is refused (algorithm confusion).
    let public = include_bytes!("fixtures/jwt_rs256_test_only.pub");
    let confused = hs256(public, &claims);
    expect(&app, post("/hooks/rs256").bearer(&confused), 401).await;
    expect(&app, post("/hooks/rs256").bearer(&token), 202).await;
}

#[tokio::test]
async fn a_missing_secret_is_an_internal_error_not_an_open_door() {
    let app = app();
    let error = app
        .send(post("/hooks/missing?token=x"))
        .await
        .expect(500)
        .json();
    assert_eq!(error["error"]["code"], "internal");
    let runs = app.send(get("/api/v1/runs")).await.json();
    assert_eq!(runs["total"], 0);
}
