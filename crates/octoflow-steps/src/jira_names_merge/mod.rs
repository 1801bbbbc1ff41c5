//! The `jira_names_merge` kind (the spooler's `JiraNamesMergeStep`): takes a Jira search
//! result fetched with `expand=names` and returns its list of issues, each with readable
//! `fields` — null and empty-list fields dropped, `customfield_N` keys renamed after their
//! display name in `names` (`Story Points` → `story_points`).

#[cfg(test)]
mod tests;

use std::collections::HashSet;

use octoflow_core::step::prelude::*;
use serde_json::Map;

/// The `jira_names_merge` kind.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JiraNamesMerge;

/// The settings of a `jira_names_merge` step.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct JiraNamesMergeSettings {
    /// Where in `data` the Jira search result is (`"."` for all of `data`); the step's own
    /// `data_key` works the same. Required.
    data_key: Option<String>,
    /// The key of the result's list of items. Default `issues`.
    #[serde(default = "default_list_key")]
    list_key: String,
}

fn default_list_key() -> String {
    "issues".to_owned()
}

/// The prefix of the keys that are renamed.
const CUSTOM_PREFIX: &str = "customfield_";

impl StepKind for JiraNamesMerge {
    const NAME: &'static str = "jira_names_merge";
    type Settings = JiraNamesMergeSettings;

    fn check(&self, settings: &JiraNamesMergeSettings, _cx: &CheckCx<'_>) -> Vec<Problem> {
        if settings.list_key.trim().is_empty() {
            return vec![Problem::at(
                "list_key",
                "`list_key` is empty; name the key of the list of items (default `issues`)",
            )];
        }
        Vec::new()
    }

    async fn run(
        &self,
        settings: &JiraNamesMergeSettings,
        cx: &mut StepCx<'_>,
    ) -> Result<Value, StepError> {
        let input = cx
            .input_with(settings.data_key.as_deref())?
            .ok_or_else(|| {
                StepError::fatal(
                    "`jira_names_merge` reads a Jira search result from `data`; set `data_key`",
                )
            })?;
        merge(input, &settings.list_key).map_err(StepError::fatal)
    }
}

/// The items of `result[list_key]` with their `fields` merged with `result.names`.
fn merge(result: Value, list_key: &str) -> Result<Value, String> {
    let Value::Object(mut result) = result else {
        return Err(format!(
            "the input is {}, not a Jira search result (an object with `{list_key}` and `names`)",
            value_kind(&result)
        ));
    };
    let names = match result.remove("names") {
        Some(Value::Object(names)) => names,
        Some(other) => {
            return Err(format!("`names` is {}, not an object", value_kind(&other)));
        }
        None => {
            return Err(
                "the input has no `names`; add `expand=names` to the Jira search request"
                    .to_owned(),
            );
        }
    };
    let items = match result.remove(list_key) {
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(format!(
                "`{list_key}` is {}, not a list",
                value_kind(&other)
            ));
        }
        None => {
            return Err(format!(
                "the input has no `{list_key}`; set `list_key` to the key of its list of items"
            ));
        }
    };
    let items = items
        .into_iter()
        .map(|item| match item {
            Value::Object(mut item) => {
                if let Some(Value::Object(fields)) = item.remove("fields") {
                    item.insert(
                        "fields".to_owned(),
                        Value::Object(merge_fields(fields, &names)),
                    );
                }
                Value::Object(item)
            }
            other => other,
        })
        .collect();
    Ok(Value::Array(items))
}

/// Drops null and empty-list fields and renames `customfield_N` after `names`. Other keys stay
/// as they are, even when `names` lists them. A renamed key that would replace a key already
/// there keeps its `customfield_N` key instead, so nothing is lost.
fn merge_fields(fields: Map<String, Value>, names: &Map<String, Value>) -> Map<String, Value> {
    let kept: Vec<(String, Value)> = fields
        .into_iter()
        .filter(|(_, v)| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
        .collect();
    let plain: HashSet<String> = kept
        .iter()
        .filter(|(k, _)| !k.starts_with(CUSTOM_PREFIX))
        .map(|(k, _)| k.clone())
        .collect();
    let mut out = Map::new();
    for (key, value) in kept {
        let display = key
            .starts_with(CUSTOM_PREFIX)
            .then(|| names.get(&key).and_then(Value::as_str).map(normalize))
            .flatten()
            .filter(|name| !name.is_empty() && !plain.contains(name) && !out.contains_key(name));
        out.insert(display.unwrap_or(key), value);
    }
    out
}

/// A display name as a key: lower-case, with `.`, `-` and spaces turned into `_`.
fn normalize(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '.' | '-' | ' ' => '_',
            other => other,
        })
        .collect::<String>()
        .to_lowercase()
}
