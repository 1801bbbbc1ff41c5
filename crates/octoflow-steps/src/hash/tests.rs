//! Tests of the `hash` kind: the digests Python gives (`vectors.json`, made by
//! `gen_vectors.py`), records and fields, secrets, errors that show no value or secret,
//! load-time checks, cancel and timeout.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use octoflow_core::secrets::Secrets;
use octoflow_core::store::{RunStatus, StepStatus};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::HashSettings;
use super::digest::{BadSalt, BcryptSalt, Hasher, digest_all};
use super::records::Records;
use crate::testing::harness;

/// `vectors.json`: digests computed by Python for fixed test secrets.
#[derive(Debug, Deserialize)]
struct Vectors {
    secrets: BTreeMap<String, String>,
    cases: Vec<Case>,
}

/// One algorithm and secret, its inputs and their digests.
#[derive(Debug, Deserialize)]
struct Case {
    algorithm: String,
    salt: Option<String>,
    key: Option<String>,
    inputs: Vec<Value>,
    digests: Vec<String>,
    /// bcrypt: the digests without their 29-character salt prefix.
    #[serde(default)]
    stripped: Vec<String>,
}

impl Case {
    /// The settings block hashing field `v` of each record.
    fn block(&self, strip_salt: bool) -> Value {
        let mut block = json!({"fields": ["v"], "algorithm": self.algorithm});
        if let Some(salt) = &self.salt {
            block["salt"] = json!(salt);
        }
        if let Some(key) = &self.key {
            block["key"] = json!(key);
        }
        if strip_salt {
            block["strip_salt"] = json!(true);
        }
        block
    }

    /// A record `{v: input}` per input.
    fn records(&self) -> Value {
        self.inputs.iter().map(|v| json!({"v": v})).collect()
    }
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("vectors.json")).expect("vectors.json parses")
}

/// `secrets.yml` text holding every secret of `vectors.json` as a `value` secret.
fn secrets_yaml(vectors: &Vectors) -> String {
    let mut yaml = String::new();
    for (name, value) in &vectors.secrets {
        writeln!(
            yaml,
            "- {{ name: {name}, type: value, value: {} }}",
            json!(value)
        )
        .expect("writing to a String");
    }
    yaml
}

/// Field `v` of each record of a result.
fn field_v(result: &Value) -> Vec<String> {
    result
        .as_array()
        .expect("a list of records")
        .iter()
        .map(|r| r["v"].as_str().expect("a digest").to_owned())
        .collect()
}

/// The step's work without the engine (so without its redaction): the records of `case`
/// hashed with `block`.
async fn hash_directly(block: Value, records: Value, secrets: &Secrets) -> Value {
    let settings: HashSettings = serde_json::from_value(block).expect("settings");
    assert!(settings.problems().is_empty(), "{:?}", settings.problems());
    let hasher = Hasher::new(&settings, secrets).expect("hasher");
    let records = Records::from_input(records, "x").expect("records");
    let most = hasher.max_bytes().map(|m| (m, "bcrypt"));
    let mut values = records.values(&settings.fields, most).expect("values");
    let texts = std::mem::take(&mut values.texts);
    let digests = digest_all(hasher.into(), texts, &CancellationToken::new())
        .await
        .expect("digests");
    records.replace(&settings.fields, &values, &digests)
}

#[tokio::test]
async fn digests_are_those_python_gives() {
    let vectors = vectors();
    let secrets =
        Secrets::parse(&secrets_yaml(&vectors), "secrets.yml", &BTreeMap::new()).expect("secrets");
    for case in &vectors.cases {
        let result = hash_directly(case.block(false), case.records(), &secrets).await;
        assert_eq!(field_v(&result), case.digests, "{case:?}");
        if case.algorithm == "bcrypt" {
            let result = hash_directly(case.block(true), case.records(), &secrets).await;
            assert_eq!(field_v(&result), case.stripped, "{case:?}");
        }
    }
}

#[tokio::test]
async fn the_kind_gives_those_digests_in_a_flow() {
    let vectors = vectors();
    for case in &vectors.cases {
        if case.salt.as_deref() == Some("bcrypt_cost12") {
            continue; // slow; `digests_are_those_python_gives` covers it
        }
        let strip = case.algorithm == "bcrypt";
        let flow =
            json!({"steps": [{"name": "h", "data_key": "__input__", "hash": case.block(strip)}]});
        let report = harness()
            .secrets(&secrets_yaml(&vectors))
            .input(case.records())
            .flow(&flow.to_string())
            .run()
            .await;
        report.assert_status(RunStatus::Succeeded);
        let expected = if strip { &case.stripped } else { &case.digests };
        assert_eq!(field_v(&report.run.data["h"]), *expected, "{case:?}");
    }
}

#[tokio::test]
async fn a_full_bcrypt_digest_holds_the_salt_so_the_engine_masks_it() {
    let vectors = vectors();
    let case = &vectors.cases[0];
    assert_eq!(case.salt.as_deref(), Some("bcrypt_cost4"));
    let flow =
        json!({"steps": [{"name": "h", "data_key": "__input__", "hash": case.block(false)}]});
    let report = harness()
        .secrets(&secrets_yaml(&vectors))
        .input(case.records())
        .flow(&flow.to_string())
        .run()
        .await;
    report.assert_status(RunStatus::Succeeded);
    let masked: Vec<String> = case.stripped.iter().map(|d| format!("***{d}")).collect();
    assert_eq!(field_v(&report.run.data["h"]), masked);
}

#[tokio::test]
async fn lists_single_records_and_dotted_fields() {
    let sha = |text: &str| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    };
    let input = json!({
        "list": [
            {"patron": {"id": "P-1", "name": "Ann"}, "cards": [{"number": 42}], "n": 1},
            {"patron": {"id": "P-1"}, "cards": [], "n": 2},
            {"patron": {"id": null}, "n": 3},
            {"patron": "not an object", "n": 4},
        ],
        "one": {"patron": {"id": 7}, "n": 5},
    });
    let report = harness()
        .input(input)
        .flow(
            r"
steps:
  - { name: list, hash: { data_key: __input__.list, fields: [patron.id, cards.0.number], algorithm: sha256 } }
  - name: one
    type: hash
    data_key: __input__.one
    hash: { fields: [patron.id], algorithm: sha256 }
  - { name: empty, hash: { data_key: nothing, fields: [a], algorithm: sha256 } }
",
        )
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    assert_eq!(
        report.run.data["list"],
        json!([
            {"patron": {"id": sha("P-1"), "name": "Ann"}, "cards": [{"number": sha("42")}], "n": 1},
            {"patron": {"id": sha("P-1")}, "cards": [], "n": 2},
            {"patron": {"id": null}, "n": 3},
            {"patron": "not an object", "n": 4},
        ])
    );
    assert_eq!(
        report.run.data["one"],
        json!({"patron": {"id": sha("7")}, "n": 5})
    );
    assert_eq!(
        report.log_text("list"),
        "Hashing 3 values (2 distinct) in 4 records with sha256.\n\
         Field `patron.id` is missing from 1 of 4 records; left as they are.\n\
         Field `cards.0.number` is missing from 3 of 4 records; left as they are."
    );
    assert_eq!(
        report.step("empty").error.as_deref(),
        Some("data_key `nothing` is not in data")
    );

    harness()
        .flow(
            "steps: [{name: none, set_fact: {value: []}}, \
             {name: h, data_key: none, hash: {fields: [a], algorithm: sha256}}]",
        )
        .run()
        .await
        .assert_status(RunStatus::Succeeded)
        .assert_data("h", json!([]));
}

#[tokio::test]
async fn secrets_are_named_by_name_or_name_and_field() {
    let secrets = "
- { name: pepper, type: value, value: pepper-2024 }
- { name: jira, type: credential, username: bot, password: hmac-key-for-tests }
- { name: api, type: token, token: hmac-key-for-tests }
";
    let vectors = vectors();
    let hmac = vectors
        .cases
        .iter()
        .find(|c| c.algorithm == "hmac-sha256")
        .expect("an hmac case");
    let salted = vectors
        .cases
        .iter()
        .find(|c| c.algorithm == "sha256" && c.salt.is_some())
        .expect("a salted sha256 case");
    let report = harness()
        .secrets(secrets)
        .input(json!([{"v": "12345"}]))
        .flow(
            r"
steps:
  - { name: by_name, data_key: __input__, hash: { fields: [v], algorithm: hmac-sha256, key: api } }
  - { name: by_field, data_key: __input__, hash: { fields: [v], algorithm: hmac-sha256, key: jira.password } }
  - { name: credential, data_key: __input__, hash: { fields: [v], algorithm: hmac-sha256, key: jira } }
  - { name: value, data_key: __input__, hash: { fields: [v], algorithm: sha256, salt: pepper.value } }
",
        )
        .run()
        .await;
    report.assert_status(RunStatus::Succeeded);
    for step in ["by_name", "by_field", "credential"] {
        assert_eq!(field_v(&report.run.data[step]), [hmac.digests[0].clone()]);
    }
    assert_eq!(
        field_v(&report.run.data["value"]),
        [salted.digests[0].clone()]
    );
}

/// Runs one `hash` step named `h` over `input`; returns its error.
async fn error_of(secrets: &str, input: Value, block: &str) -> String {
    let flow = format!("steps: [{{name: h, data_key: __input__, hash: {block}}}]");
    let report = harness()
        .secrets(secrets)
        .input(input)
        .flow(&flow)
        .run()
        .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("h", StepStatus::Failed);
    report.step("h").error.clone().unwrap_or_default()
}

const SECRETS: &str = "
- { name: short, type: value, value: '$2b$12$tooShort' }
- { name: badcost, type: value, value: '$2b$99$abcdefghijklmnopqrstuu' }
- { name: tiny, type: value, value: 'seven77' }
- { name: jira, type: credential, username: bot, password: s3cret-pass }
";

#[tokio::test]
async fn missing_and_unusable_secrets_are_named_never_shown() {
    let input = json!({"v": "PLAIN-4711"});
    let cases = [
        (
            "{fields: [v], algorithm: bcrypt, salt: nope}",
            "unknown secret `nope` in `salt`; add it to secrets.yml",
        ),
        (
            "{fields: [v], algorithm: hmac-sha256, key: nope.value}",
            "unknown secret `nope.value` in `key`; add it to secrets.yml",
        ),
        (
            "{fields: [v], algorithm: sha256, salt: jira.username}",
            "secret `jira` in `salt` has no secret field `username`",
        ),
        (
            "{fields: [v], algorithm: bcrypt, salt: short}",
            "secret `short` in `salt` is not a bcrypt salt: it is not 29 characters long; bcrypt needs one such as `$2b$12$` followed by 22 characters",
        ),
        (
            "{fields: [v], algorithm: bcrypt, salt: badcost}",
            "secret `badcost` in `salt` is not a bcrypt salt: its cost is not a two-digit number from 04 to 31 followed by `$`; bcrypt needs one such as `$2b$12$` followed by 22 characters",
        ),
        (
            "{fields: [v], algorithm: argon2, salt: tiny}",
            "secret `tiny` in `salt` is too short for argon2: it has 7 bytes, argon2 needs at least 8",
        ),
    ];
    for (block, expected) in cases {
        let error = error_of(SECRETS, input.clone(), block).await;
        assert_eq!(error, expected);
        assert!(!error.contains("PLAIN-4711"), "{error}");
    }
}

#[test]
fn bcrypt_salts_are_checked_part_by_part() {
    let parse = |text: &str| BcryptSalt::parse(text).err();
    assert_eq!(parse("$2b$12$abcdefghijklmnopqrstuu"), None);
    assert_eq!(parse("$2y$04$N9qo8uLOickgx2ZMRZoMye"), None);
    assert_eq!(parse("$2b$12$abcdefghijklmnopqrstu"), Some(BadSalt::Length));
    assert_eq!(
        parse("$2b$12$abcdefghijklmnopqrstué"),
        Some(BadSalt::Length)
    );
    assert_eq!(
        parse("$3b$12$abcdefghijklmnopqrstuu"),
        Some(BadSalt::Version)
    );
    assert_eq!(parse("$2b$03$abcdefghijklmnopqrstuu"), Some(BadSalt::Cost));
    assert_eq!(parse("$2b$1x$abcdefghijklmnopqrstuu"), Some(BadSalt::Cost));
    assert_eq!(parse("$2b$12/abcdefghijklmnopqrstuu"), Some(BadSalt::Cost));
    // The last character carries 2 of the salt's bits and 4 unused ones, which must be 0;
    // Python's `bcrypt.hashpw` refuses `…v` too.
    assert_eq!(
        parse("$2b$12$abcdefghijklmnopqrstuv"),
        Some(BadSalt::Base64)
    );
    assert_eq!(
        parse("$2b$12$abcdefghijklmnopqrst+u"),
        Some(BadSalt::Base64)
    );
}

#[tokio::test]
async fn values_that_cannot_be_hashed_are_named_never_shown() {
    let secrets = "- { name: salt, type: value, value: '$2b$04$N9qo8uLOickgx2ZMRZoMye' }";
    let cases = [
        (
            json!([{"v": "ok"}, {"v": {"secret": "PLAIN-4711"}}]),
            "{fields: [v], algorithm: sha256}",
            "cannot hash `v` of record 1: it is an object; only text, numbers and booleans are hashed",
        ),
        (
            json!({"v": ["PLAIN-4711"]}),
            "{fields: [v], algorithm: sha256}",
            "cannot hash `v` of the record: it is a list; only text, numbers and booleans are hashed",
        ),
        (
            json!([{"v": format!("PLAIN-4711{}", "x".repeat(63))}]),
            "{fields: [v], algorithm: bcrypt, salt: salt}",
            "cannot hash `v` of record 0: it is 73 bytes long and `bcrypt` takes at most 72",
        ),
        (
            json!([{"v": 1}, "PLAIN-4711"]),
            "{fields: [v], algorithm: sha256}",
            "record 1 at `data_key` `__input__` is a string, not a record (an object)",
        ),
        (
            json!("PLAIN-4711"),
            "{fields: [v], algorithm: sha256}",
            "`data_key` `__input__` holds a string; `hash` needs a record (an object) or a list of records",
        ),
    ];
    for (input, block, expected) in cases {
        let error = error_of(secrets, input, block).await;
        assert_eq!(error, expected);
        assert!(!error.contains("PLAIN-4711"), "{error}");
    }

    let report = harness()
        .flow("steps: [{name: h, hash: {fields: [v], algorithm: sha256}}]")
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    assert_eq!(
        report.step("h").error.as_deref(),
        Some("`hash` needs `data_key`: where the records are in `data`")
    );
}

#[tokio::test]
async fn plain_values_reach_neither_the_result_nor_the_log() {
    let secrets = "- { name: salt, type: value, value: '$2b$04$N9qo8uLOickgx2ZMRZoMye' }";
    let input = json!([
        {"id": "PLAIN-4711", "card": {"no": "PLAIN-0815"}, "keep": "visible"},
        {"id": "PLAIN-4711", "card": {"no": "PLAIN-0816"}, "keep": "visible"},
    ]);
    for block in [
        "{fields: [id, card.no], algorithm: sha256}",
        "{fields: [id, card.no], algorithm: bcrypt, salt: salt, strip_salt: true}",
        "{fields: [id, card.no], algorithm: argon2, salt: salt}",
    ] {
        let flow = format!("steps: [{{name: h, data_key: __input__, hash: {block}}}]");
        let report = harness()
            .secrets(secrets)
            .input(input.clone())
            .flow(&flow)
            .run()
            .await;
        report.assert_status(RunStatus::Succeeded);
        let result = serde_json::to_string(&report.step("h").result).expect("json");
        let log = report.log_text("h");
        for text in [&result, &log] {
            assert!(!text.contains("PLAIN-"), "{block}: {text}");
        }
        assert!(result.contains("visible"), "{result}");
        assert_eq!(
            log,
            format!(
                "Hashing 4 values (3 distinct) in 2 records with {}.",
                if block.contains("bcrypt") {
                    "bcrypt"
                } else if block.contains("argon2") {
                    "argon2"
                } else {
                    "sha256"
                }
            )
        );
        let out = &report.run.data["h"];
        assert_eq!(out[0]["id"], out[1]["id"], "same value, same digest");
        assert_ne!(out[0]["card"]["no"], out[1]["card"]["no"]);
    }
}

/// Records with `count` distinct values of field `v`.
fn many(count: usize) -> Value {
    (0..count)
        .map(|i| json!({"v": format!("patron-{i}")}))
        .collect()
}

const COST_12: &str = "- { name: salt, type: value, value: '$2b$12$abcdefghijklmnopqrstuu' }";

#[tokio::test]
async fn cancel_stops_a_long_bcrypt_list() {
    let started = Instant::now();
    let report = harness()
        .secrets(COST_12)
        .input(many(200))
        .cancel_after(Duration::from_millis(300))
        .flow(
            "steps: [{name: h, data_key: __input__, hash: {fields: [v], algorithm: bcrypt, salt: salt}}, \
             {name: after, set_fact: {value: 1}}]",
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Cancelled)
        .assert_step("h", StepStatus::Cancelled)
        .assert_step("after", StepStatus::Skipped);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_step_timeout_stops_a_long_bcrypt_list() {
    let started = Instant::now();
    let report = harness()
        .secrets(COST_12)
        .input(many(200))
        .flow(
            "steps: [{name: h, timeout: 300ms, data_key: __input__, hash: {fields: [v], algorithm: bcrypt, salt: salt}}]",
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("h", StepStatus::TimedOut);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_cancelled_token_stops_the_threads_before_their_next_value() {
    let secrets = Secrets::parse(COST_12, "secrets.yml", &BTreeMap::new()).expect("secrets");
    let settings: HashSettings =
        serde_json::from_value(json!({"fields": ["v"], "algorithm": "bcrypt", "salt": "salt"}))
            .expect("settings");
    let hasher = Hasher::new(&settings, &secrets).expect("hasher");
    let cancel = CancellationToken::new();
    cancel.cancel();
    let texts = (0..100).map(|i| format!("patron-{i}")).collect();
    let started = Instant::now();
    let outcome = digest_all(hasher.into(), texts, &cancel).await;
    assert!(
        matches!(outcome, Err(octoflow_core::step::StepError::Cancelled)),
        "{outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(200));
}

#[test]
fn settings_problems_are_load_errors() {
    let load = |block: &str| {
        harness()
            .flow(&format!("steps: [{{name: a, hash: {block}}}]"))
            .load()
            .expect_err("should not load")
    };
    assert_eq!(
        load("{fields: [v], algorithm: md5}"),
        [
            "flow.yml:1:50: steps[0].hash.algorithm: unknown variant `md5`; expected one of `sha256`, `hmac-sha256`, `bcrypt`, `argon2`"
        ]
    );
    assert_eq!(
        load("{fields: [v], algorithm: hmac-sha256}"),
        [
            "flow.yml:1:25: steps[0].hash: `hmac-sha256` needs `key`, the name of the secret holding the HMAC key"
        ]
    );
    assert_eq!(
        load("{fields: [v], algorithm: bcrypt}"),
        [
            "flow.yml:1:25: steps[0].hash: `bcrypt` needs `salt`, the name of the secret holding the salt (a bcrypt salt such as `$2b$12$` and 22 characters)"
        ]
    );
    assert_eq!(
        load("{fields: [v], algorithm: argon2, key: k}"),
        [
            "flow.yml:1:25: steps[0].hash: `argon2` needs `salt`, the name of the secret holding the salt (at least 8 bytes)",
            "flow.yml:1:63: steps[0].hash.key: `argon2` takes no `key`; use `salt`",
        ]
    );
    assert_eq!(
        load("{fields: [v], algorithm: hmac-sha256, key: k, salt: s}"),
        ["flow.yml:1:77: steps[0].hash.salt: `hmac-sha256` takes no `salt`; its secret is `key`"]
    );
    assert_eq!(
        load("{fields: [v], algorithm: sha256, strip_salt: true}"),
        [
            "flow.yml:1:70: steps[0].hash.strip_salt: `strip_salt` is for `bcrypt` only, not `sha256`"
        ]
    );
    assert_eq!(
        load("{fields: [], algorithm: sha256}"),
        [
            "flow.yml:1:34: steps[0].hash.fields: `fields` is empty; name the fields to hash, such as `[patron.id]`"
        ]
    );
    assert_eq!(
        load("{fields: [a, a], algorithm: sha256}"),
        ["flow.yml:1:38: steps[0].hash.fields[1]: field `a` is listed twice"]
    );
    assert_eq!(
        load("{fields: [patron..id], algorithm: sha256}"),
        [
            "flow.yml:1:35: steps[0].hash.fields[0]: invalid field path `patron..id`; write keys joined by dots, such as `patron.id`"
        ]
    );
    assert_eq!(
        load("{fields: [v], algorithm: sha256, salt: ''}"),
        ["flow.yml:1:64: steps[0].hash.salt: `salt` is empty; name a secret in secrets.yml"]
    );
    assert_eq!(
        load("{fields: [v], algoritm: sha256}"),
        [
            "flow.yml:1:39: steps[0].hash.algoritm: unknown field `algoritm`; did you mean `algorithm`?"
        ]
    );
}
