//! The command line itself: help, version, completions, manual pages, usage errors, config
//! errors.

use insta::assert_snapshot;

use crate::octo;

#[test]
fn help_lists_every_command() {
    let out = octo().args(["--help"]).run();
    out.success();
    assert_snapshot!("help", out.stdout());
}

#[test]
fn run_help_documents_flags_and_the_data_dir_rule() {
    let out = octo().args(["run", "--help"]).run();
    out.success();
    assert_snapshot!("run_help", out.stdout());
}

#[test]
fn validate_and_init_have_help() {
    octo()
        .args(["validate", "--help"])
        .run()
        .success()
        .stdout_contains("file:line:column");
    octo()
        .args(["init", "--help"])
        .run()
        .success()
        .stdout_contains("--force");
}

#[test]
fn version() {
    octo()
        .args(["--version"])
        .run()
        .success()
        .stdout_contains(env!("CARGO_PKG_VERSION"));
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        octo()
            .args(["completions", shell])
            .run()
            .success()
            .stdout_contains("octoflow");
    }
    octo()
        .args(["completions", "tcsh"])
        .run()
        .code(2)
        .stderr_contains("invalid value 'tcsh'");
}

#[test]
fn manual_pages_are_made_from_the_command_line() {
    octo()
        .args(["man"])
        .run()
        .success()
        .stdout_contains(".TH octoflow 1")
        .stdout_contains("Serve the HTTP API");
    let o = octo().args(["man", "--dir", "pages"]);
    o.run().success().stderr_contains("pages written to pages");
    let serve = std::fs::read_to_string(o.path("pages/octoflow-serve.1")).unwrap();
    assert!(serve.contains(".TH octoflow-serve 1"), "{serve}");
    assert!(serve.contains("workers"), "{serve}");
    for page in [
        "octoflow.1",
        "octoflow-run.1",
        "octoflow-runs-list.1",
        "octoflow-user-add.1",
    ] {
        assert!(o.path(&format!("pages/{page}")).is_file(), "{page}");
    }
}

#[test]
fn usage_errors_exit_2() {
    octo()
        .args(["frobnicate"])
        .run()
        .code(2)
        .stderr_contains("unrecognized subcommand");
    octo().args(["run"]).run().code(2).stderr_contains("<FLOW>");
    octo()
        .args(["run", "x", "-p", "novalue"])
        .run()
        .code(2)
        .stderr_contains("expected KEY=VALUE, got `novalue`");
}

#[test]
fn an_unknown_config_key_names_its_file_line_and_a_suggestion() {
    let out = octo()
        .file(
            "data/config.yml",
            "workers: 2\nlimits:\n  max_result_byte: 1MiB\n",
        )
        .args(["validate"])
        .run();
    out.code(2);
    assert_snapshot!(out.stderr(), @r"error: data/config.yml:3:3: unknown field `max_result_byte`; did you mean `max_result_bytes`?");
}

#[test]
fn config_comes_from_the_file_then_the_environment_then_flags() {
    let flow = "steps: [{name: a, set_fact: {value: 1}}]";
    // config.yml names a store that cannot be reached: every command that opens it fails…
    let base = octo()
        .flow("a", flow)
        .file("data/config.yml", "database: postgres://u:pw@db/x\n");
    let out = base.clone().args(["run", "a"]).run();
    out.code(2)
        .stderr_contains("error: cannot open the store `postgres://***@db/x`");
    assert!(
        !out.stderr().contains("pw"),
        "the URL's password is not shown"
    );
    // …unless the environment overrides it…
    base.clone()
        .env("OCTOFLOW_DATABASE_URL", "sqlite://env.db")
        .args(["run", "a"])
        .run()
        .success();
    assert!(base.path("env.db").exists());
    // …and a flag overrides both.
    base.clone()
        .env("OCTOFLOW_DATABASE_URL", "mysql://x")
        .args(["run", "a", "--database", "sqlite:flag.db"])
        .run()
        .success();
    assert!(base.path("flag.db").exists());
}

#[test]
fn an_environment_file_is_merged_over_the_config_file() {
    // Only the `qa` file lets steps see STAGE; both files set the database.
    let o = octo()
        .flow(
            "a",
            "steps: [{name: stage, set_fact: {value: '{{ env.STAGE }}'}}]",
        )
        .file("data/config.yml", "database: sqlite://base.db\n")
        .file(
            "data/config.qa.yml",
            "database: sqlite://qa.db\nsteps: { env_pass: [STAGE] }\n",
        )
        .env("STAGE", "qa-stage");
    let qa = o.clone().args(["--env", "qa", "run", "a", "--json"]).run();
    qa.success();
    assert_eq!(qa.json()["data"]["stage"], "qa-stage");
    assert!(o.path("qa.db").exists() && !o.path("base.db").exists());
    o.clone()
        .env("OCTOFLOW_ENV", "qa")
        .args(["run", "a"])
        .run()
        .success();
    // Without it the variable is not passed; an unknown environment is an error.
    o.clone().args(["run", "a"]).run().failure();
    o.clone()
        .args(["--env", "prd", "run", "a"])
        .run()
        .code(2)
        .stderr_contains("`--env prd`: no `data/config.prd.yml` beside `data/config.yml`");
}

#[test]
fn the_data_dir_comes_from_the_flag_or_the_environment() {
    let flow = "steps: [{name: a, set_fact: {value: 1}}]";
    let o = octo().file("elsewhere/flows/f.yml", flow);
    o.clone()
        .args(["run", "f", "--data", "elsewhere"])
        .run()
        .success();
    assert!(o.path("elsewhere/octoflow.db").exists());
    o.clone()
        .env("OCTOFLOW_DATA_PATH", "elsewhere")
        .args(["validate"])
        .run()
        .success();
    o.clone()
        .env("OCTOFLOW_FLOWS_PATH", "elsewhere/flows")
        .args(["run", "f"])
        .run()
        .success();
    assert!(o.path("data/octoflow.db").exists());
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    use std::io::{BufRead, BufReader};

    let mut o = octo();
    for i in 0..1500 {
        o = o.flow(
            &format!("f{i}"),
            "steps:\n  - name: a\n    reslt_key: x\n    set_fact: {value: 1}\n",
        );
    }
    let mut child = o.args(["validate"]).spawn();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("unknown field `reslt_key`"), "{first}");
    drop(stdout); // like `octoflow validate | head -1`
    let out = child.wait(std::time::Duration::from_secs(30));
    out.success();
    assert_eq!(out.stderr(), "");
}

#[test]
fn a_sealed_secret_opens_only_with_its_key() {
    let o = octo().flow(
        "check",
        "steps: [{name: same, set_fact: {value: \"{{ secrets.db.value == 'pg-pass' }}\"}}]",
    );
    let key = o.clone().args(["secret", "key"]).run();
    key.success();
    let key = key.stdout().trim().to_owned();
    let sealed = o
        .clone()
        .env("OCTOFLOW_SECRETS_KEY", &key)
        .args(["secret", "seal"])
        .stdin("pg-pass\n")
        .run();
    sealed.success();
    let sealed = sealed.stdout().trim().to_owned();
    assert!(
        sealed.starts_with("ENC[v1:") && !sealed.contains("pg-pass"),
        "{sealed}"
    );

    let o = o.file(
        "data/secrets.yml",
        &format!("- {{ name: db, type: encrypted, value: '{sealed}' }}\n"),
    );
    let run = o
        .clone()
        .env("OCTOFLOW_SECRETS_KEY", &key)
        .args(["run", "check", "--json"])
        .run();
    run.success();
    assert_eq!(run.json()["data"]["same"], true);
    let other = octo()
        .args(["secret", "key"])
        .run()
        .stdout()
        .trim()
        .to_owned();
    o.clone()
        .env("OCTOFLOW_SECRETS_KEY", &other)
        .args(["run", "check"])
        .run()
        .code(2)
        .stderr_contains("secret `db`: the value does not open with this key");
    o.clone()
        .args(["run", "check"])
        .run()
        .code(2)
        .stderr_contains("secret `db` is sealed; give the key in OCTOFLOW_SECRETS_KEY");
    // The key may also come from the file `secrets_key_file` names.
    o.clone()
        .file("data/config.yml", "secrets_key_file: secrets.key\n")
        .file("data/secrets.key", &format!("{key}\n"))
        .args(["run", "check"])
        .run()
        .success();

    octo()
        .args(["secret", "seal"])
        .stdin("x\n")
        .run()
        .code(2)
        .stderr_contains("no key to seal with");
}

#[test]
fn vault_secrets_are_read_at_start_with_the_token() {
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;
    // A double of Vault's KV v2 read: one secret, one token.
    let vault = crate::peer::serve(axum::Router::new().route(
        "/v1/secret/data/app",
        get(|headers: HeaderMap| async move {
            if headers.get("x-vault-token").and_then(|v| v.to_str().ok()) != Some("vault-tok-91") {
                let denied = serde_json::json!({"errors": ["permission denied"]});
                return (StatusCode::FORBIDDEN, axum::Json(denied));
            }
            let body = serde_json::json!({"data": {"data": {"password": "from-vault-pw"},
                                                   "metadata": {"version": 3}}});
            (StatusCode::OK, axum::Json(body))
        }),
    ));
    let o = octo()
        .flow(
            "check",
            "steps: [{name: same, set_fact: {value: \"{{ secrets.kv.value == 'from-vault-pw' }}\"}}]",
        )
        .file(
            "data/secrets.yml",
            "- { name: kv, type: vault, path: secret/data/app, key: password }\n",
        )
        .env("VAULT_ADDR", &vault.url);
    let run = o
        .clone()
        .env("VAULT_TOKEN", "vault-tok-91")
        .args(["run", "check", "--json"])
        .run();
    run.success();
    assert_eq!(run.json()["data"]["same"], true);
    o.clone()
        .env("VAULT_TOKEN", "wrong-token")
        .args(["run", "check"])
        .run()
        .code(2)
        .stderr_contains("secret `kv` (Vault `secret/data/app`): Vault answered 403 Forbidden: permission denied");
    o.clone()
        .args(["run", "check"])
        .run()
        .code(2)
        .stderr_contains("secret `kv` is in Vault; set VAULT_ADDR and VAULT_TOKEN");
}
