//! The API against its own `OpenAPI` document, tried by schemathesis (from `PyPI`) on a real
//! `octoflow serve` with an admin token: generated requests to every operation, valid and
//! invalid, never get a `5xx`, and every answer's status, content type, headers and body
//! match the document.
//!
//! Needs `schemathesis` (`OCTOFLOW_TEST_SCHEMATHESIS`, default on `PATH`; `.ci/run` installs
//! it); skipped without it, and failing under CI.

use std::process::{Command, Stdio};
use std::time::Duration;

use octoflow_testkit::cli::Output;
use octoflow_testkit::services;

use crate::octo;
use crate::server::Server;

const TOKEN: &str = "admin-token-for-conformance-1";
const FLOW: &str = "name: hello\nparams: { n: { type: integer, default: 1 } }\nsteps:\n  - name: a\n    set_fact: { value: 1 }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_matches_the_openapi_document_and_none_is_a_5xx() {
    let program = services::url("OCTOFLOW_TEST_SCHEMATHESIS", "schemathesis");
    #[allow(clippy::disallowed_methods)] // the test asks the tool for its version
    let found = Command::new(&program).arg("--version").output();
    if !found.is_ok_and(|out| out.status.success()) {
        return services::unreachable(
            "schemathesis",
            "OCTOFLOW_TEST_SCHEMATHESIS",
            &format!("`{program} --version` did not run"),
        )
        .unwrap_or(());
    }
    let o = octo().flow("hello", FLOW).env("OCTOFLOW_API_TOKEN", TOKEN);
    let server = Server::start(&o, &[]);
    #[allow(clippy::disallowed_methods)] // the test runs the tool
    let run = Command::new(&program)
        .args([
            "run",
            &format!("{}/api/v1/openapi.json", server.url),
            "--url",
            &server.url,
            "-H",
            &format!("Authorization: Bearer {TOKEN}"),
            "--max-examples",
            "20",
            "--seed",
            "17",
            // Sequences of calls are left out: the links schemathesis infers from `Location`
            // headers can name the wrong operation, and it then reports its own error.
            "--phases",
            "examples,coverage,fuzzing",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
        ])
        .env("NO_COLOR", "1")
        // Its cache of findings goes into the test's own directory, not the source tree.
        .current_dir(o.root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || Output::wait(run, Duration::from_secs(600)))
        .await
        .unwrap();
    assert_eq!(
        out.exit_code(),
        Some(0),
        "schemathesis found answers that break the document:\n{}\n{}",
        out.stdout(),
        out.stderr()
    );
    let (code, _) = server.get("/readyz").await;
    assert_eq!(code, 200, "the server is still up");
}
