//! `octoflow init`: the data directory it makes, and that its examples run as documented.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::octo;

#[test]
fn init_then_run_hello_as_the_readme_says() {
    let o = octo();
    let out = o.clone().args(["init", "demo"]).run();
    out.success()
        .stdout_contains("octoflow run demo/flows/hello.yml")
        .stdout_contains("demo/secrets.yml");
    for file in [
        "config.yml",
        "secrets.yml",
        "flows/hello.yml",
        "flows/dag.yml",
        "flows/greet.yml",
    ] {
        assert!(o.path("demo").join(file).is_file(), "{file}");
    }
    let mode = std::fs::metadata(o.path("demo/secrets.yml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let value = o
        .clone()
        .args(["run", "demo/flows/hello.yml", "--json"])
        .run()
        .success()
        .json();
    assert_eq!(value["status"], "succeeded");
    assert_eq!(
        value["data"]["count"],
        json!({"line": "hello from octoflow, world!", "words": 4})
    );
    // The data directory is `demo`, inferred from the flow's place beside demo/config.yml.
    assert!(o.path("demo/octoflow.db").is_file());
    let report = std::fs::read_to_string(o.path("demo/out/hello.json")).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&report).unwrap()["words"],
        4
    );
    assert!(!o.path("data/octoflow.db").exists());
}

#[test]
fn every_example_validates_and_runs() {
    let o = octo();
    o.clone().args(["init", "demo"]).run().success();
    o.clone()
        .args(["validate", "demo/flows"])
        .run()
        .success()
        .stderr_contains("3 flows ok");

    let value = o
        .clone()
        .args(["run", "demo/flows/dag.yml", "--json"])
        .run()
        .success()
        .json();
    assert_eq!(value["data"]["join"], "alpha + beta");

    let args = [
        "run",
        "demo/flows/greet.yml",
        "--json",
        "-p",
        "name=Ada",
        "-p",
        "tone=loud",
        "-p",
        "times=2",
    ];
    let value = o.clone().args(args).run().success().json();
    assert_eq!(value["data"]["say"]["stdout"], "HEY ADA! HEY ADA!\n");
    let value = o
        .clone()
        .args(["run", "demo/flows/greet.yml", "--json"])
        .run()
        .success()
        .json();
    assert_eq!(value["data"]["text"], "Hello, dear world!");
    let steps = value["steps"].as_array().unwrap();
    assert_eq!(steps[1]["status"], "skipped");
}

#[test]
fn init_refuses_to_overwrite_unless_forced() {
    let o = octo().file("demo/flows/hello.yml", "mine");
    let out = o.clone().args(["init", "demo"]).run();
    out.code(2).stderr_contains(
        "error: refusing to overwrite `demo/flows/hello.yml`; pass --force to replace them",
    );
    assert_eq!(
        std::fs::read_to_string(o.path("demo/flows/hello.yml")).unwrap(),
        "mine"
    );
    assert!(
        !o.path("demo/config.yml").exists(),
        "nothing is written when refusing"
    );
    o.clone().args(["init", "demo", "--force"]).run().success();
    assert_ne!(
        std::fs::read_to_string(o.path("demo/flows/hello.yml")).unwrap(),
        "mine"
    );
}

#[test]
fn init_defaults_to_the_data_dir() {
    let o = octo();
    o.clone()
        .args(["init"])
        .run()
        .success()
        .stdout_contains("octoflow run data/flows/hello.yml");
    o.clone().args(["run", "hello"]).run().success();
    assert!(o.path("data/octoflow.db").is_file());
}
