//! `octoflow schema flow|config|secrets`: the schemas an editor uses accept every flow,
//! config and secrets file the project ships (examples and the flows in the docs) and refuse
//! a misspelt field, as the loader does.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::octo;

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The schema the binary prints for `file`, compiled, and as printed.
fn validator(file: &str) -> (jsonschema::Validator, Value) {
    let out = octo().args(["schema", file]).run();
    out.success();
    let schema: Value = serde_json::from_str(out.stdout()).unwrap();
    assert_eq!(
        schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "{file}: a draft 2020-12 schema"
    );
    let validator =
        jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{file}: not a schema: {e}"));
    (validator, schema)
}

/// The schema's complaints about `document`, one line each.
fn complaints(validator: &jsonschema::Validator, document: &Value) -> Vec<String> {
    validator
        .iter_errors(document)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn yaml(text: &str) -> Value {
    octoflow_core::yaml::from_str::<Option<Value>>(text)
        .unwrap()
        .unwrap_or(Value::Null)
}

/// Files under `dir` (recursively) whose path satisfies `wanted`, sorted.
fn files(dir: &Path, wanted: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path, wanted));
        } else if wanted(&path) {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn is_yaml(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "yml" || e == "yaml")
}

/// The YAML blocks of a Markdown file, parsed, with the line each starts on.
fn yaml_blocks(text: &str) -> Vec<(usize, Value)> {
    let mut out = Vec::new();
    let mut block: Option<(usize, String)> = None;
    for (number, line) in text.lines().enumerate() {
        match &mut block {
            None if line.trim_start().starts_with("```yaml") => {
                block = Some((number + 2, String::new()));
            }
            Some((start, body)) if line.trim_start().starts_with("```") => {
                if let Ok(Some(value)) = octoflow_core::yaml::from_str::<Option<Value>>(body) {
                    out.push((*start, value));
                }
                block = None;
            }
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    out
}

/// The top-level fields a schema allows.
fn fields(schema: &Value) -> Vec<&str> {
    schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

/// The kinds of entry of `secrets.yml`.
const SECRET_TYPES: &[&str] = &[
    "credential",
    "token",
    "api-key",
    "value",
    "env",
    "encrypted",
    "vault",
];

/// The config sections a step kind's page shows (the rest of a kind page's blocks are
/// steps, or parts of one).
const KIND_SECTIONS: &[&str] = &["sinks", "connections", "smtp", "http"];

/// A documentation block as a file of its own: a whole flow; a list of steps, or flow
/// fields without steps, made whole with a step; a part of `config.yml`; a `secrets.yml`.
/// `None` for the rest (a lone step setting, an API body).
fn as_file(block: &Value, kind_page: bool, fields: &Fields<'_>) -> Option<(&'static str, Value)> {
    let a_step = serde_json::json!([{"name": "a", "exec": {"command": ["true"]}}]);
    let is_secret = |item: &Value| {
        item.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| SECRET_TYPES.contains(&t))
    };
    let all = |map: &serde_json::Map<String, Value>, names: &[&str]| {
        map.keys().all(|k| names.contains(&k.as_str()))
    };
    match block {
        Value::Array(items) if items.iter().all(is_secret) => Some(("secrets", block.clone())),
        Value::Array(items) if items.iter().all(|i| i.get("name").is_some()) => {
            Some(("flow", serde_json::json!({"steps": block})))
        }
        Value::Object(map) if map.get("steps").is_some_and(Value::is_array) => {
            Some(("flow", block.clone()))
        }
        Value::Object(map) if all(map, &fields.flow) => {
            let mut whole = map.clone();
            whole.insert("steps".to_owned(), a_step);
            Some(("flow", Value::Object(whole)))
        }
        Value::Object(map)
            if all(map, &fields.config) && (!kind_page || all(map, KIND_SECTIONS)) =>
        {
            Some(("config", block.clone()))
        }
        _ => None,
    }
}

/// The top-level fields of a flow file and of `config.yml`.
struct Fields<'a> {
    flow: Vec<&'a str>,
    config: Vec<&'a str>,
}

#[test]
fn every_shipped_flow_fits_the_flow_schema() {
    let (flow, flow_schema) = validator("flow");
    let (config, config_schema) = validator("config");
    let (secrets, _) = validator("secrets");
    let mut wrong = Vec::new();
    let examples = files(&root().join("examples"), &|p| {
        is_yaml(p) && p.parent().is_some_and(|d| d.ends_with("flows"))
    });
    for path in &examples {
        let document = yaml(&std::fs::read_to_string(path).unwrap());
        for complaint in complaints(&flow, &document) {
            wrong.push(format!("{}: {complaint}", path.display()));
        }
    }
    let markdown = files(&root().join("docs"), &|p| {
        p.extension().is_some_and(|e| e == "md")
    });
    let fields = Fields {
        flow: fields(&flow_schema),
        config: fields(&config_schema),
    };
    let mut from_docs = 0;
    for path in markdown.iter().chain([&root().join("README.md")]) {
        for (line, block) in yaml_blocks(&std::fs::read_to_string(path).unwrap()) {
            let kind_page = path.parent().is_some_and(|d| d.ends_with("step-kinds"));
            let Some((file, document)) = as_file(&block, kind_page, &fields) else {
                continue;
            };
            let schema = match file {
                "flow" => &flow,
                "config" => &config,
                _ => &secrets,
            };
            for complaint in complaints(schema, &document) {
                wrong.push(format!("{}:{line}: {file}: {complaint}", path.display()));
            }
            from_docs += 1;
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        examples.len() >= 15 && from_docs >= 70,
        "{} example flows, {from_docs} blocks of the docs",
        examples.len()
    );
}

#[test]
fn every_shipped_config_and_secrets_file_fits_its_schema() {
    for (file, name) in [("config", "config.yml"), ("secrets", "secrets.yml")] {
        let (schema, _) = validator(file);
        let found = files(&root().join("examples"), &|p| {
            p.file_name().is_some_and(|n| n == name)
        });
        assert!(found.len() >= 4, "{name}: {found:?}");
        for path in found {
            let document = yaml(&std::fs::read_to_string(&path).unwrap());
            let wrong = complaints(&schema, &document);
            assert!(wrong.is_empty(), "{}: {}", path.display(), wrong.join("\n"));
        }
    }
}

#[test]
fn a_misspelt_field_is_refused_by_the_schema_as_by_the_loader() {
    let (schema, _) = validator("flow");
    let good = "name: spelt\nretry: {attempts: 2}\nsteps:\n  - name: a\n    exec: {command: [echo, hi]}\n    timeout: 5s\n  - name: b\n    debug:\n";
    assert_eq!(complaints(&schema, &yaml(good)), Vec::<String>::new());
    octo()
        .flow("spelt", good)
        .args(["validate", "data/flows/spelt.yml"])
        .run()
        .success();
    for (from, to, field) in [
        ("retry: {attempts: 2}", "retyr: {attempts: 2}", "retyr"),
        ("timeout: 5s\n", "timeuot: 5s\n", "timeuot"),
        ("command: [echo, hi]", "comand: [echo, hi]", "comand"),
        ("retry: {attempts: 2}", "retry: {atempts: 2}", "atempts"),
    ] {
        let text = good.replace(from, to);
        assert!(
            !complaints(&schema, &yaml(&text)).is_empty(),
            "the schema takes `{field}`:\n{text}"
        );
        let o = octo().flow("spelt", &text);
        let out = o.clone().args(["validate", "data/flows/spelt.yml"]).run();
        out.failure()
            .stdout_contains(&format!("unknown field `{field}`"));
    }
    let (config, _) = validator("config");
    assert!(complaints(&config, &yaml("listen: 127.0.0.1:9000\nworkers: 2\n")).is_empty());
    let o = octo().file("data/config.yml", "listen: 127.0.0.1:9000\nworkrs: 2\n");
    assert!(!complaints(&config, &yaml("listen: 127.0.0.1:9000\nworkrs: 2\n")).is_empty());
    o.clone()
        .args(["validate"])
        .run()
        .code(2)
        .stderr_contains("unknown field `workrs`");
}
