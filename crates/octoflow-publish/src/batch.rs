//! Records made ready to send (message id, key, encoded bytes) and cut into batches by
//! count and, where the sink has a limit, by bytes.

use std::ops::Range;

use octoflow_core::expr::{Expr, Scope};
use octoflow_core::step::prelude::*;

/// One record, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    /// Its place in the input list, from 0.
    pub(crate) index: usize,
    /// Its message id: stable across the attempts of one step visit.
    pub(crate) id: String,
    /// Its key, when the step's `key` gives one.
    pub(crate) key: Option<String>,
    /// The encoded record.
    pub(crate) payload: Vec<u8>,
}

impl Item {
    /// The partition key: the `key`, else the message id.
    pub(crate) fn partition_key(&self) -> &str {
        self.key.as_deref().unwrap_or(&self.id)
    }
}

/// How records are named: the default message id's parts and the step's expressions.
pub(crate) struct Naming<'a> {
    /// The run's id.
    pub(crate) run_id: String,
    /// The step's name.
    pub(crate) step: &'a str,
    /// The step's visit in this run, from 1.
    pub(crate) visit: u32,
    /// The `message_id` expression, if any.
    pub(crate) message_id: Option<&'a Expr>,
    /// The `key` expression, if any.
    pub(crate) key: Option<&'a Expr>,
    /// Names the expressions see besides `record` and `index` (`params`, `run`).
    pub(crate) names: Vec<(&'static str, Value)>,
}

impl Naming<'_> {
    /// `<run id>:<step>:<visit>:<index>`.
    fn default_id(&self, index: usize) -> String {
        format!("{}:{}:{}:{index}", self.run_id, self.step, self.visit)
    }
}

/// Pairs each record with its encoded bytes, message id and key.
pub(crate) fn prepare(
    records: Vec<Value>,
    payloads: Vec<Vec<u8>>,
    naming: &Naming<'_>,
) -> Result<Vec<Item>, StepError> {
    let evaluates = naming.message_id.is_some() || naming.key.is_some();
    records
        .into_iter()
        .zip(payloads)
        .enumerate()
        .map(|(index, (record, payload))| {
            let scope = evaluates.then(|| {
                naming
                    .names
                    .iter()
                    .fold(Scope::builder(), |b, (name, value)| {
                        b.name(name, value.clone())
                    })
                    .name("record", record)
                    .name("index", json!(index))
                    .build()
            });
            let id = match (naming.message_id, &scope) {
                (Some(expr), Some(scope)) => eval_text("message_id", expr, scope, index)?,
                _ => naming.default_id(index),
            };
            let key = match (naming.key, &scope) {
                (Some(expr), Some(scope)) => Some(eval_text("key", expr, scope, index)?),
                _ => None,
            };
            Ok(Item {
                index,
                id,
                key,
                payload,
            })
        })
        .collect()
}

/// An expression's value as text: a string as it is, a number or boolean as written.
fn eval_text(setting: &str, expr: &Expr, scope: &Scope, index: usize) -> Result<String, StepError> {
    let value = expr.eval(scope).map_err(|e| {
        StepError::fatal(format!("record {index}: cannot evaluate `{setting}`: {e}"))
    })?;
    let text = match value {
        Value::String(text) => text,
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => {
            return Err(StepError::fatal(format!(
                "record {index}: `{setting}` gave {}; it must give text",
                value_kind(&other)
            )));
        }
    };
    if text.is_empty() {
        return Err(StepError::fatal(format!(
            "record {index}: `{setting}` gave empty text"
        )));
    }
    Ok(text)
}

/// The batches: runs of at most `max_count` items and, with `max_bytes`, at most that many
/// bytes by `size` (an item larger than the limit alone is a batch of its own; the sink
/// refuses it with its own words).
pub(crate) fn plan(
    items: &[Item],
    max_count: usize,
    max_bytes: Option<usize>,
    size: impl Fn(&Item) -> usize,
) -> Vec<Range<usize>> {
    let max_count = max_count.max(1);
    let mut batches = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, item) in items.iter().enumerate() {
        let item_bytes = size(item);
        let full = i - start == max_count
            || max_bytes.is_some_and(|max| i > start && bytes + item_bytes > max);
        if full {
            batches.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += item_bytes;
    }
    if start < items.len() {
        batches.push(start..items.len());
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naming<'a>(message_id: Option<&'a Expr>, key: Option<&'a Expr>) -> Naming<'a> {
        Naming {
            run_id: "r1".to_owned(),
            step: "send",
            visit: 2,
            message_id,
            key,
            names: vec![("params", json!({"env": "qas"}))],
        }
    }

    fn items(n: usize, size: usize) -> Vec<Item> {
        (0..n)
            .map(|index| Item {
                index,
                id: index.to_string(),
                key: None,
                payload: vec![0; size],
            })
            .collect()
    }

    #[test]
    fn default_ids_name_run_step_visit_and_index() {
        let items = prepare(
            vec![json!(1), json!(2)],
            vec![vec![1], vec![2]],
            &naming(None, None),
        )
        .unwrap();
        assert_eq!(items[1].id, "r1:send:2:1");
        assert_eq!(items[1].key, None);
        assert_eq!(items[1].partition_key(), "r1:send:2:1");
        assert_eq!(items[1].payload, [2]);
    }

    #[test]
    fn expressions_see_record_index_and_params() {
        let id = Expr::parse("params.env ~ '-' ~ record.id").unwrap();
        let key = Expr::parse("record.branch if record.branch is defined else index").unwrap();
        let records = vec![json!({"id": 5, "branch": "east"}), json!({"id": 6})];
        let items = prepare(
            records,
            vec![vec![], vec![]],
            &naming(Some(&id), Some(&key)),
        )
        .unwrap();
        assert_eq!(items[0].id, "qas-5");
        assert_eq!(items[0].key.as_deref(), Some("east"));
        assert_eq!(items[1].key.as_deref(), Some("1"));
        let null = Expr::parse("record.nope").unwrap();
        let err = prepare(
            vec![json!({"nope": null})],
            vec![vec![]],
            &naming(Some(&null), None),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "record 0: `message_id` gave null; it must give text"
        );
    }

    #[test]
    fn batches_by_count_and_bytes() {
        let all = items(7, 10);
        assert_eq!(plan(&all, 3, None, |i| i.payload.len()), [0..3, 3..6, 6..7]);
        assert_eq!(
            plan(&all, 500, Some(25), |i| i.payload.len()),
            [0..2, 2..4, 4..6, 6..7]
        );
        assert_eq!(plan(&all, 500, Some(5), |i| i.payload.len()).len(), 7);
        assert!(plan(&[], 3, None, |i| i.payload.len()).is_empty());
    }
}
