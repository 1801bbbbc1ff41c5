//! `octoflow flows list|show|trigger`: a server's flows (SPEC §11.2, §14).

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use octoflow_core::flow::{ParamSpec, Params};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::cli::{FlowsArgs, FlowsCommand, JsonArg, TriggerArgs};
use crate::output;
use crate::remote::{self, FlowView, Remote, RunView, Table, parse, print_json};

/// Runs `octoflow flows …`.
pub(crate) fn flows(args: &FlowsArgs) -> Result<ExitCode> {
    let remote = Remote::new(&args.server)?;
    remote::runtime()?.block_on(async {
        match &args.command {
            FlowsCommand::List(json) => list(&remote, json).await,
            FlowsCommand::Show { name, json } => show(&remote, name, json).await,
            FlowsCommand::Trigger(trigger_args) => trigger(&remote, trigger_args).await,
        }
    })
}

async fn list(remote: &Remote, json: &JsonArg) -> Result<ExitCode> {
    let answer = remote
        .get(&["flows"], &[("page", "1"), ("per_page", "500")])
        .await?;
    if json.json {
        print_json(&answer)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&["NAME", "TRIGGERS", "LAST RUN", "NEXT RUN", "DESCRIPTION"]);
    for item in remote::items(&answer)? {
        table.row(parse::<FlowView>(item, "a flow")?.row());
    }
    if table.is_empty() {
        eprintln!("no flows");
    } else {
        output::stdout(&table.render(std::io::stdout().is_terminal()))?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(remote: &Remote, name: &str, json: &JsonArg) -> Result<ExitCode> {
    let answer = remote.get(&["flows", name], &[]).await?;
    if json.json {
        print_json(&answer)?;
    } else {
        output::stdout(&parse::<FlowView>(&answer, "a flow")?.details())?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn trigger(remote: &Remote, args: &TriggerArgs) -> Result<ExitCode> {
    let params = if args.params.is_empty() {
        Map::new()
    } else {
        let flow = remote.get(&["flows", &args.name], &[]).await?;
        typed_params(&flow, &args.params)?
    };
    let mut body = json!({ "params": params });
    if let Some(key) = &args.idempotency_key {
        body["idempotency_key"] = Value::String(key.clone());
    }
    let answer = remote
        .call(
            Method::POST,
            &["flows", &args.name, "runs"],
            &[],
            Some(&body),
        )
        .await?;
    let run: RunView = parse(&answer.body, "a run")?;
    let admission = answer
        .headers
        .get("x-octoflow-admission")
        .and_then(|v| v.to_str().ok());
    if admission == Some("replaced") {
        eprintln!(
            "run {} of flow `{}` {}; the runs it replaces are being cancelled",
            run.id, run.flow, run.status
        );
    } else if answer.status == StatusCode::CREATED {
        eprintln!("run {} of flow `{}` {}", run.id, run.flow, run.status);
    } else if admission == Some("existing")
        || (admission.is_none() && args.idempotency_key.is_some())
    {
        eprintln!(
            "run {} was made earlier with this idempotency key ({}); no new run was made",
            run.id, run.status
        );
    } else {
        eprintln!(
            "flow `{}` already has run {} ({}); no new run was made",
            args.name, run.id, run.status
        );
    }
    super::runs::started(remote, &answer.body, &run, &args.wait, args.json.json).await
}

/// `-p` values read by the types the flow declares (as `octoflow run` reads them), so
/// `-p batch=50` sends the number 50; a param the flow does not declare is sent as text for
/// the server to judge.
fn typed_params(flow: &Value, given: &[(String, String)]) -> Result<Map<String, Value>> {
    let declared = declared_params(flow.get("params").unwrap_or(&Value::Null));
    let mut params = Map::new();
    let mut errors = Vec::new();
    for pair in given {
        let (name, text) = pair;
        if declared.declares(name) {
            match declared.coerce_text(std::slice::from_ref(pair)) {
                Ok(one) => params.extend(one),
                Err(e) => errors.extend(e.iter().map(ToString::to_string)),
            }
        } else {
            params.insert(name.clone(), Value::String(text.clone()));
        }
    }
    if errors.is_empty() {
        Ok(params)
    } else {
        Err(anyhow!(errors.join("\n")))
    }
}

/// The params a flow of `GET /flows/{name}` declares: `{name: spec}` or `[{name, …spec}]`;
/// declarations this client cannot read are left out (their values go as text).
fn declared_params(value: &Value) -> Params {
    let spec = |v: &Value| {
        let mut v = v.clone();
        if let Value::Object(map) = &mut v {
            map.remove("name");
        }
        serde_json::from_value::<ParamSpec>(v).ok()
    };
    let specs: Vec<(String, ParamSpec)> = match value {
        Value::Object(map) => map
            .iter()
            .filter_map(|(n, v)| Some((n.clone(), spec(v)?)))
            .collect(),
        Value::Array(list) => list
            .iter()
            .filter_map(|v| Some((v.get("name")?.as_str()?.to_owned(), spec(v)?)))
            .collect(),
        _ => Vec::new(),
    };
    Params::from_specs(specs).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn params_are_read_by_their_declared_types() {
        let flow = json!({"params": {
            "batch": {"type": "integer"}, "env": {"type": "string"}, "ids": {"type": "array"}
        }});
        let got = typed_params(
            &flow,
            &pairs(&[
                ("batch", "50"),
                ("env", "007"),
                ("ids", "[1,2]"),
                ("other", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(
            Value::Object(got),
            json!({"batch": 50, "env": "007", "ids": [1, 2], "other": "x"})
        );
        let err = typed_params(&flow, &pairs(&[("batch", "many")])).unwrap_err();
        assert!(err.to_string().starts_with("param `batch`"), "{err}");

        let listed = json!({"params": [{"name": "n", "type": "number"}]});
        let got = typed_params(&listed, &pairs(&[("n", "1.5")])).unwrap();
        assert_eq!(Value::Object(got), json!({"n": 1.5}));
        let unknown = json!({});
        let got = typed_params(&unknown, &pairs(&[("n", "1")])).unwrap();
        assert_eq!(Value::Object(got), json!({"n": "1"}));
    }
}
