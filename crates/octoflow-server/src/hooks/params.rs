//! A webhook request's params and input.
//!
//! - `{name}` path segments and query fields are params: each must be declared by the flow
//!   and is read by its declared type (`400 invalid_params` naming the field otherwise).
//! - The body is the run's input (`data.__input__`, an object's keys also at the top of
//!   `data`); the fields of a JSON object or a form that the flow declares are params too
//!   (JSON values keep their type; form text is read by the declared type). Undeclared body
//!   fields are input only, so a large payload (GitHub's) needs no declarations.
//! - Uploaded files are form fields holding the saved file's path.
//! - The trigger's fixed `params` win over everything the request says.
//!
//! Later sources win: query, then body, then path, then the fixed params. The whole set is
//! then checked against the declarations (types, `enum`, `required`, …) when the run is made.

use octoflow_core::engine::AcceptError;
use octoflow_core::flow::{Flow, ParamError, Webhook};
use serde_json::{Map, Value};

use super::Refused;
use super::upload::{Payload, form_input};

/// The params and input of a request.
#[derive(Debug)]
pub(super) struct Collected {
    /// The params, not yet checked against `required`, `enum`, bounds.
    pub(super) params: Map<String, Value>,
    /// The run's input.
    pub(super) input: Value,
}

/// Gathers params from the path values, the query (without the `token` of `token` auth) and
/// the payload, which becomes the input.
pub(super) fn collect(
    flow: &Flow,
    hook: &Webhook,
    path: &[(String, String)],
    query: &[(String, String)],
    payload: Payload,
) -> Result<Collected, Refused> {
    let declared = &flow.params;
    let mut errors: Vec<ParamError> = Vec::new();
    let mut params = Map::new();
    // Uploads stay uploads: a name a file part fills, or a `type: file` param, takes no
    // value from the query, a field, JSON or the path.
    let uploaded: Vec<String> = match &payload {
        Payload::Form(_, files) => files.iter().map(|f| f.field.clone()).collect(),
        _ => Vec::new(),
    };
    let upload_only = |name: &str| declared.is_file(name) || uploaded.iter().any(|u| u == name);
    let not_text = |name: &str| {
        ParamError {
        name: name.to_owned(),
        message: "must be an uploaded file (a multipart part of that name), not a field, a query value or JSON".to_owned(),
    }
    };
    let mut refused: Vec<ParamError> = Vec::new();
    let mut read_text = |pairs: &[(String, String)], params: &mut Map<String, Value>| {
        let (files, text): (Vec<_>, Vec<_>) =
            pairs.iter().cloned().partition(|(k, _)| upload_only(k));
        errors.extend(files.iter().map(|(k, _)| not_text(k)));
        match declared.coerce_text(&text) {
            Ok(values) => params.extend(values),
            Err(problems) => errors.extend(problems),
        }
    };
    read_text(query, &mut params);
    let input = match payload {
        Payload::Empty => Value::Null,
        Payload::Text(text) => Value::String(text),
        Payload::Json(value) => {
            if let Value::Object(map) = &value {
                for (name, v) in map.iter().filter(|(k, _)| declared.declares(k)) {
                    if declared.is_file(name) {
                        refused.push(not_text(name));
                    } else {
                        params.insert(name.clone(), v.clone());
                    }
                }
            }
            value
        }
        Payload::Form(fields, files) => {
            let known: Vec<(String, String)> = fields
                .iter()
                .filter(|(k, _)| declared.declares(k))
                .cloned()
                .collect();
            read_text(&known, &mut params);
            for file in files.iter().filter(|f| declared.declares(&f.field)) {
                params.insert(
                    file.field.clone(),
                    Value::String(file.path.display().to_string()),
                );
            }
            form_input(&fields, &files)
        }
    };
    read_text(path, &mut params);
    errors.extend(refused);
    if !errors.is_empty() {
        return Err(AcceptError::Params(errors).into());
    }
    for (name, value) in &hook.params {
        params.insert(name.clone(), value.clone());
    }
    Ok(Collected { params, input })
}

/// The query's fields, decoded; `token` is left out when it is the caller's credential.
pub(super) fn query_pairs(query: Option<&str>, drop_token: bool) -> Vec<(String, String)> {
    query.map_or_else(Vec::new, |q| {
        form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .filter(|(k, _)| !(drop_token && k == "token"))
            .collect()
    })
}
