//! Whole error bodies, pinned: a change of wording is a visible diff.

use insta::assert_json_snapshot;
use octoflow_core::store::Role;
use octoflow_server::AuthSettings;
use octoflow_server::error::Code;
use serde_json::json;

use crate::support::{App, get, post, put};

#[tokio::test]
async fn a_bad_json_field_names_its_path() {
    let app = App::standard().build();
    let answer = app
        .send(
            post("/api/v1/flows/hello/runs")
                .json(&json!({"params": {"count": "x"}, "idempotency_key": 3})),
        )
        .await
        .expect(400);
    assert_json_snapshot!(answer.json(), @r#"
    {
      "error": {
        "code": "bad_request",
        "message": "invalid JSON body: idempotency_key: invalid type: integer `3`, expected a string at line 1 column 43",
        "details": {
          "path": "idempotency_key",
          "line": 1,
          "column": 43
        }
      }
    }
    "#);
}

#[tokio::test]
async fn bad_params_are_listed() {
    let app = App::standard().build();
    let answer = app
        .send(post("/api/v1/flows/hello/runs").json(&json!({"params": {"count": "x", "other": 1}})))
        .await
        .expect(400);
    assert_json_snapshot!(answer.json(), @r#"
    {
      "error": {
        "code": "invalid_params",
        "message": "invalid params: param `other`: is not declared by the flow (declared: count); param `count`: `\"x\"` is not of type integer",
        "details": {
          "errors": [
            {
              "param": "other",
              "message": "is not declared by the flow (declared: count)"
            },
            {
              "param": "count",
              "message": "`\"x\"` is not of type integer"
            }
          ]
        }
      }
    }
    "#);
}

#[tokio::test]
async fn an_invalid_flow_answers_422_with_places() {
    let app = App::standard().build();
    let yaml = "name: fresh\nsteps:\n  - name: a\n    exec: { command: [echo], timeout: soon }\n  - name: b\n    set_fact: { valu: 1 }\n";
    let answer = app
        .send(put("/api/v1/flows/fresh").text(yaml))
        .await
        .expect(422);
    assert_json_snapshot!(answer.json(), @r#"
    {
      "error": {
        "code": "invalid_flow",
        "message": "flow `fresh` is not valid (2 problems)",
        "details": {
          "errors": [
            {
              "line": 4,
              "column": 39,
              "path": "steps[0].exec.timeout",
              "message": "invalid duration `soon`; use 500ms, 30s, 5m, 2h or 1d"
            },
            {
              "line": 6,
              "column": 17,
              "path": "steps[1].set_fact.valu",
              "message": "unknown field `valu`; did you mean `value`?"
            }
          ]
        }
      }
    }
    "#);
    assert!(!app.dir.path().join("flows/fresh.yml").exists());
}

#[tokio::test]
async fn an_unknown_flow_is_404() {
    let app = App::standard().build();
    let answer = app.send(post("/api/v1/flows/nope/runs")).await.expect(404);
    assert_json_snapshot!(answer.json(), @r#"
    {
      "error": {
        "code": "not_found",
        "message": "no flow named `nope`",
        "details": {}
      }
    }
    "#);
    let answer = app.send(get("/api/v1/nothing/here")).await.expect(404);
    assert_json_snapshot!(answer.json(), @r#"
    {
      "error": {
        "code": "not_found",
        "message": "no route `GET /api/v1/nothing/here`",
        "details": {}
      }
    }
    "#);
}

#[tokio::test]
async fn a_skipped_run_names_the_blocking_one() {
    let app = App::standard().build();
    let first = app
        .send(post("/api/v1/flows/skipper/runs"))
        .await
        .expect(201)
        .json();
    let mut answer = app
        .send(post("/api/v1/flows/skipper/runs"))
        .await
        .expect(409)
        .json();
    assert_eq!(answer["error"]["details"]["run_id"], first["id"]);
    answer["error"]["details"]["run_id"] = json!("[run_id]");
    let message = answer["error"]["message"]
        .as_str()
        .unwrap()
        .replace(first["id"].as_str().unwrap(), "[run_id]");
    answer["error"]["message"] = json!(message);
    assert_json_snapshot!(answer, @r#"
    {
      "error": {
        "code": "conflict",
        "message": "flow `skipper` already has run `[run_id]` holding concurrency key `skipper`; the new run was skipped",
        "details": {
          "run_id": "[run_id]",
          "status": "queued",
          "concurrency_key": "skipper"
        }
      }
    }
    "#);
}

#[tokio::test]
async fn missing_tokens_and_low_roles_are_refused() {
    let app = App::standard().build();
    let viewer = app.token(Role::Viewer, None).await;
    let answer = app.send(post("/api/v1/flows/hello/runs")).await.expect(401);
    assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
    assert_json_snapshot!(answer.json(), @r#"
    {
      "error": {
        "code": "unauthenticated",
        "message": "missing bearer token; send `Authorization: Bearer <token>`",
        "details": {}
      }
    }
    "#);
    let answer = app
        .send(post("/api/v1/flows/hello/runs").bearer("oft_wrong"))
        .await
        .expect(401);
    assert_json_snapshot!(answer.json(), @r#"
    {
      "error": {
        "code": "unauthenticated",
        "message": "invalid bearer token",
        "details": {}
      }
    }
    "#);
    let answer = app
        .send(post("/api/v1/flows/hello/runs").bearer(&viewer))
        .await
        .expect(403);
    assert_json_snapshot!(answer.json(), @r#"
    {
      "error": {
        "code": "forbidden",
        "message": "this needs the `operator` role; the token has `viewer`",
        "details": {
          "needed": "operator",
          "role": "viewer"
        }
      }
    }
    "#);
}

#[tokio::test]
async fn internal_errors_show_only_a_request_id() {
    let app = App::standard().auth(AuthSettings::default()).build();
    // A directory where the new flow's file would go: writing it fails.
    std::fs::create_dir_all(app.dir.path().join("flows/clash.yml")).unwrap();
    let answer = app
        .send(
            put("/api/v1/flows/clash")
                .text("name: clash\nsteps:\n  - name: a\n    set_fact: { value: 1 }\n"),
        )
        .await
        .expect(500);
    let mut body = answer.json();
    let id = body["error"]["details"]["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(answer.header("x-request-id"), Some(id.as_str()));
    assert_eq!(id.len(), 36, "a UUID: {id}");
    body["error"]["details"]["request_id"] = json!("[request_id]");
    assert_json_snapshot!(body, @r#"
    {
      "error": {
        "code": "internal",
        "message": "internal error",
        "details": {
          "request_id": "[request_id]"
        }
      }
    }
    "#);
    assert!(!answer.text.contains("clash.yml"), "{}", answer.text);
}

#[test]
fn docs_list_every_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/errors.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    for code in Code::ALL {
        let row = format!("| `{}` | {} |", code.as_str(), code.status().as_u16());
        assert!(doc.contains(&row), "docs/errors.md lacks the row `{row}`");
    }
}
