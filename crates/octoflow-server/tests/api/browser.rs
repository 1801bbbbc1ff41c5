//! The rules that keep a browser from driving the API (docs/auth.md): writes carry their
//! content type, the `Host` is this server's, run files are downloads.

use serde_json::json;

use crate::support::{App, get, post, put};

/// Regression (issue 12): an open server accepted `POST …/runs` without a content type, so
/// any web page its user visited could start flows.
#[tokio::test]
async fn writes_without_json_are_refused_and_change_nothing() {
    let app = App::standard().build();
    let cases = [
        ("text/plain", "{\"params\": {}}"),
        ("application/x-www-form-urlencoded", "params=1"),
        ("multipart/form-data; boundary=x", "--x--"),
    ];
    for (content_type, body) in cases {
        let refused = app
            .send(
                post("/api/v1/flows/hello/runs")
                    .header("content-type", content_type)
                    .raw(body.as_bytes().to_vec()),
            )
            .await
            .expect(415)
            .json();
        assert_eq!(refused["error"]["code"], "unsupported_media_type");
        assert_eq!(
            refused["error"]["details"]["expected"],
            json!(["application/json"])
        );
    }
    // No content type at all: refused too, naming what was missing.
    let refused = app
        .send(post("/api/v1/runs/0190/cancel").header("content-type", ""))
        .await
        .expect(415)
        .json();
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("a write to the API needs `Content-Type: application/json`"),
        "{refused}"
    );
    let runs = app.send(get("/api/v1/runs")).await.expect(200).json();
    assert_eq!(runs["total"], 0, "nothing was started");

    // A flow's YAML as plain text (what a cross-site form could send) is refused; as YAML
    // it is taken.
    let yaml = "steps:\n  - name: a\n    set_fact: { value: 1 }\n";
    app.send(
        put("/api/v1/flows/fresh")
            .header("content-type", "text/plain")
            .raw(yaml.as_bytes().to_vec()),
    )
    .await
    .expect(415);
    assert!(app.flows.entry("fresh").is_none());
    app.send(put("/api/v1/flows/fresh").text(yaml))
        .await
        .expect(201);

    // The login also takes a form.
    app.send(
        post("/api/v1/auth/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .raw(b"username=nobody&password=x".to_vec()),
    )
    .await
    .expect(401);
}

/// Regression (issue 12): a DNS-rebinding page (its own domain resolving to this machine)
/// could `PUT` a flow with an `exec` step.
#[tokio::test]
async fn a_foreign_host_is_refused() {
    let app = App::standard()
        .public_url("https://flows.example.org")
        .build();
    let yaml = "steps:\n  - name: a\n    exec: { command: [id] }\n";
    let refused = app
        .send(
            put("/api/v1/flows/pwn")
                .header("host", "attacker.example:8080")
                .text(yaml),
        )
        .await
        .expect(400)
        .json();
    assert_eq!(
        refused["error"]["message"],
        "this server does not answer to host `attacker.example`; set `public_url` in config to serve the API under that name"
    );
    assert!(app.flows.entry("pwn").is_none());
    for host in [
        "127.0.0.1:8080",
        "localhost:8080",
        "[::1]:8080",
        "flows.example.org",
    ] {
        app.send(get("/api/v1/flows").header("host", host))
            .await
            .expect(200);
    }
    // Probes answer whatever the name.
    app.send(get("/healthz").header("host", "attacker.example"))
        .await
        .expect(200);
}

/// A file a run wrote is a download: an HTML page from a run is never shown as a page of
/// this server.
#[tokio::test]
async fn run_files_are_served_as_attachments() {
    let app = App::standard().build();
    let id = crate::runs::start(&app, "hello", &json!({})).await;
    let workspace = app.dir.path().join("runs").join(&id);
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::write(workspace.join("page.html"), "<script>alert(1)</script>").unwrap();
    let file = app
        .send(get(&format!("/api/v1/runs/{id}/files/page.html")))
        .await
        .expect(200);
    assert_eq!(
        file.header("content-disposition"),
        Some("attachment; filename=\"page.html\"")
    );
    assert_eq!(file.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(file.header("content-security-policy"), Some("sandbox"));
}
