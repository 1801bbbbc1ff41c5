//! Tests of the `email` kind against a local SMTP server (Python's `aiosmtpd`, started by
//! the test; `OCTOFLOW_TEST_AIOSMTPD` names the Python that has it, default `python3`): the
//! message arrives with its recipients, subject, text and attachment; load errors; a refused
//! connection names the server.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use octoflow_core::step::Registry;
use octoflow_core::store::RunStatus;
use octoflow_testkit::harness::Harness;
use octoflow_testkit::tools::Tool;
use serde_json::json;

use crate::config::{SmtpServer, StepsConfig};

fn harness(url: &str) -> Harness {
    let config = StepsConfig {
        smtp: BTreeMap::from([(
            "default".to_owned(),
            SmtpServer::new(url, Some("octoflow@example.org".to_owned())),
        )]),
        ..StepsConfig::default()
    };
    let mut registry = Registry::new();
    crate::register_builtin_with(&mut registry, &config);
    Harness::new(registry)
}

/// aiosmtpd writing every message it receives into `maildir`.
async fn smtp_server(maildir: &std::path::Path) -> Option<Tool> {
    let maildir = maildir.display().to_string();
    Tool::start(
        "aiosmtpd",
        "OCTOFLOW_TEST_AIOSMTPD",
        "python3",
        move |port| {
            [
                "-m",
                "aiosmtpd",
                "-n",
                "-c",
                "aiosmtpd.handlers.Mailbox",
                &maildir,
                "-l",
                &format!("127.0.0.1:{port}"),
            ]
            .map(str::to_owned)
            .to_vec()
        },
    )
    .await
}

/// The messages delivered into `maildir`, waiting (bounded) for at least one.
async fn delivered(maildir: &std::path::Path) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let messages: Vec<String> = std::fs::read_dir(maildir.join("new"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
            .collect();
        if !messages.is_empty() || Instant::now() > deadline {
            return messages;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_message_arrives_with_its_attachment() {
    let mail = tempfile::tempdir().unwrap();
    let maildir = mail.path().join("maildir");
    let Some(server) = smtp_server(&maildir).await else {
        return;
    };
    let url = format!("smtp://127.0.0.1:{}", server.port);
    let report = harness(&url)
        .file("out/report.csv", "isbn,status\n9781,failed\n")
        .flow(
            r#"
steps:
  - name: tell
    email:
      to: ["Ops <ops@example.org>"]
      cc: [lead@example.org]
      subject: "preflight failed for {{ isbn }}"
      body: "The file for {{ isbn }} did not pass."
      attach: [out/report.csv]
"#,
        )
        .input(json!({"isbn": "9781"}))
        .run()
        .await;
    report.assert_status(RunStatus::Succeeded);
    let id = report.step("tell").result.clone().unwrap()["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(id.starts_with('<') && id.ends_with('>'), "{id}");
    let messages = delivered(&maildir).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    for needle in [
        "Subject: preflight failed for 9781",
        "To: Ops <ops@example.org>",
        "Cc: lead@example.org",
        "From: octoflow@example.org",
        "The file for 9781 did not pass.",
        "filename=\"report.csv\"",
        &format!("Message-ID: {id}"),
    ] {
        assert!(message.contains(needle), "no {needle:?} in:\n{message}");
    }
    // The attachment's part holds the file (as it is, or as base64 for binary files).
    let (_, part) = message.split_once("filename=\"report.csv\"").unwrap();
    assert!(
        part.contains("isbn,status\n9781,failed"),
        "no attachment in:\n{message}"
    );
}

#[tokio::test]
async fn load_errors_and_a_refused_connection_are_named() {
    let h = harness("smtp://127.0.0.1:1");
    let problems = h
        .flow(
            r"
steps:
  - { name: a, email: { to: [x@example.org], subject: s } }
  - { name: b, email: { to: [x@example.org], subject: s, body: t, smtp: other } }
",
        )
        .load()
        .unwrap_err()
        .join("\n");
    assert!(
        problems.contains("steps[0].email.body: give `body` or `template`"),
        "{problems}"
    );
    assert!(
        problems.contains("steps[1].email.smtp: unknown mail server `other`; known: default"),
        "{problems}"
    );
    let report = harness("smtp://127.0.0.1:1")
        .flow("steps: [{ name: a, email: { to: [x@example.org], subject: s, body: t } }]")
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    let error = report.step("a").error.clone().unwrap();
    assert!(error.starts_with("mail server `default`: "), "{error}");
}
